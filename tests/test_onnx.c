/*
 * test_onnx.c — the ONNX reader (engine/onnx.c).
 *
 * Models are built in memory with the protobuf-c API generated from
 * onnx.proto and serialized with onnx__model_proto__pack, so each test
 * states exactly which bytes the reader gets. Evidence, by kind:
 *   - a Conv+Relu model run through the graph executor and compared with a
 *     direct 7-loop convolution written here (weights, bias, attributes and
 *     wiring all have to be read right for the numbers to match);
 *   - element-type conversions checked bit for bit against references
 *     computed here from the formats' definitions (all 65536 float16 bit
 *     patterns; doubles narrowed by the compiler's own conversion);
 *   - refusals (opset, shapes, sizes, external paths, types) checked by
 *     status code and by the words of the message a user will read;
 *   - robustness: every prefix of a valid model, every single-byte
 *     corruption, deep nesting and a decoding bomb are refused or loaded,
 *     never crash (ASan/UBSan builds make "never crash" checkable);
 *   - a real test case of ONNX's suite (test_relu) read with
 *     onnx_read_tensor.
 */
#include "check.h"
#include "graph.h"
#include "onnx.h"
#include "onnx.pb-c.h"
#include "onnx_weights.h"
#include "status.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- building models -------------------------------------------------------
 * Everything is calloc'd from a list freed at the end of each test. */

static void *arena[8192];
static int arena_n;

static void *mk(size_t n)
{
    if (arena_n == (int)(sizeof arena / sizeof arena[0]))
        abort();
    void *p = calloc(1, n ? n : 1);
    if (!p)
        abort();
    return arena[arena_n++] = p;
}

static void arena_free(void)
{
    while (arena_n)
        free(arena[--arena_n]);
}

static char *mkstr(const char *s)
{
    char *p = mk(strlen(s) + 1);
    memcpy(p, s, strlen(s));
    return p;
}

#define CAP 64

struct model {
    Onnx__ModelProto m;
    Onnx__GraphProto g;
    Onnx__OperatorSetIdProto op;
};

static struct model *model_new(int64_t opset)
{
    struct model *b = mk(sizeof *b);
    Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
    Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
    Onnx__OperatorSetIdProto op = ONNX__OPERATOR_SET_ID_PROTO__INIT;
    b->m = m;
    b->g = g;
    b->op = op;
    b->m.has_ir_version = 1;
    b->m.ir_version = 8;
    b->m.graph = &b->g;
    b->op.domain = mkstr("");
    b->op.has_version = 1;
    b->op.version = opset;
    b->m.n_opset_import = 1;
    b->m.opset_import = mk(CAP * sizeof(void *));
    b->m.opset_import[0] = &b->op;
    b->g.name = mkstr("g");
    b->g.node = mk(CAP * sizeof(void *));
    b->g.initializer = mk(CAP * sizeof(void *));
    b->g.input = mk(CAP * sizeof(void *));
    b->g.output = mk(CAP * sizeof(void *));
    return b;
}

static Onnx__TensorProto *tensor_new(const char *name, int type, int ndim, const int64_t *dims)
{
    Onnx__TensorProto *t = mk(sizeof *t);
    Onnx__TensorProto init = ONNX__TENSOR_PROTO__INIT;
    *t = init;
    t->name = name ? mkstr(name) : NULL;
    t->has_data_type = 1;
    t->data_type = type;
    t->n_dims = (size_t)ndim;
    t->dims = mk((size_t)(ndim ? ndim : 1) * sizeof(int64_t));
    if (ndim)
        memcpy(t->dims, dims, (size_t)ndim * sizeof(int64_t));
    return t;
}

static void tensor_raw(Onnx__TensorProto *t, const void *bytes, size_t n)
{
    t->has_raw_data = 1;
    t->raw_data.len = n;
    t->raw_data.data = mk(n);
    memcpy(t->raw_data.data, bytes, n);
}

static void tensor_floats(Onnx__TensorProto *t, const float *v, size_t n)
{
    t->n_float_data = n;
    t->float_data = mk(n * sizeof(float));
    memcpy(t->float_data, v, n * sizeof(float));
}

static void tensor_int32s(Onnx__TensorProto *t, const int32_t *v, size_t n)
{
    t->n_int32_data = n;
    t->int32_data = mk(n * sizeof(int32_t));
    memcpy(t->int32_data, v, n * sizeof(int32_t));
}

static Onnx__TensorProto *init_add(struct model *b, Onnx__TensorProto *t)
{
    b->g.initializer[b->g.n_initializer++] = t;
    return t;
}

/* A tensor-typed value info; dims < 0 become the symbolic dimension "N". */
static Onnx__ValueInfoProto *value_info(const char *name, int elem, int ndim, const int64_t *dims)
{
    Onnx__ValueInfoProto *vi = mk(sizeof *vi);
    Onnx__ValueInfoProto v0 = ONNX__VALUE_INFO_PROTO__INIT;
    Onnx__TypeProto *tp = mk(sizeof *tp);
    Onnx__TypeProto t0 = ONNX__TYPE_PROTO__INIT;
    Onnx__TypeProto__Tensor *tt = mk(sizeof *tt);
    Onnx__TypeProto__Tensor tt0 = ONNX__TYPE_PROTO__TENSOR__INIT;
    Onnx__TensorShapeProto *sh = mk(sizeof *sh);
    Onnx__TensorShapeProto sh0 = ONNX__TENSOR_SHAPE_PROTO__INIT;
    *vi = v0;
    *tp = t0;
    *tt = tt0;
    *sh = sh0;
    vi->name = mkstr(name);
    vi->type = tp;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    tt->has_elem_type = 1;
    tt->elem_type = elem;
    tt->shape = sh;
    sh->n_dim = (size_t)ndim;
    sh->dim = mk((size_t)(ndim ? ndim : 1) * sizeof(void *));
    for (int i = 0; i < ndim; i++) {
        Onnx__TensorShapeProto__Dimension *d = mk(sizeof *d);
        Onnx__TensorShapeProto__Dimension d0 = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
        *d = d0;
        if (dims[i] >= 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i];
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = mkstr("N");
        }
        sh->dim[i] = d;
    }
    return vi;
}

static void input_add(struct model *b, const char *name, int elem, int ndim, const int64_t *dims)
{
    b->g.input[b->g.n_input++] = value_info(name, elem, ndim, dims);
}

static void output_add(struct model *b, const char *name)
{
    b->g.output[b->g.n_output++] = value_info(name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 0, NULL);
}

/* A node; inputs and outputs as a NULL-terminated list each. */
static Onnx__NodeProto *node_add(struct model *b, const char *op, const char *name,
                                 const char *const *in, const char *const *out)
{
    Onnx__NodeProto *n = mk(sizeof *n);
    Onnx__NodeProto n0 = ONNX__NODE_PROTO__INIT;
    *n = n0;
    n->op_type = mkstr(op);
    n->name = name ? mkstr(name) : NULL;
    n->input = mk(CAP * sizeof(char *));
    n->output = mk(CAP * sizeof(char *));
    n->attribute = mk(CAP * sizeof(void *));
    for (; in && *in; in++)
        n->input[n->n_input++] = mkstr(*in);
    for (; out && *out; out++)
        n->output[n->n_output++] = mkstr(*out);
    b->g.node[b->g.n_node++] = n;
    return n;
}

static Onnx__AttributeProto *attr_add(Onnx__NodeProto *n, const char *name, int type)
{
    Onnx__AttributeProto *a = mk(sizeof *a);
    Onnx__AttributeProto a0 = ONNX__ATTRIBUTE_PROTO__INIT;
    *a = a0;
    a->name = mkstr(name);
    a->has_type = 1;
    a->type = type;
    n->attribute[n->n_attribute++] = a;
    return a;
}

static void attr_ints(Onnx__NodeProto *n, const char *name, const int64_t *v, size_t k)
{
    Onnx__AttributeProto *a = attr_add(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    a->n_ints = k;
    a->ints = mk(k * sizeof(int64_t));
    memcpy(a->ints, v, k * sizeof(int64_t));
}

static uint8_t *pack(const struct model *b, size_t *len)
{
    *len = onnx__model_proto__get_packed_size(&b->m);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (!buf)
        abort();
    CHECK_EQ_INT(onnx__model_proto__pack(&b->m, buf), *len);
    return buf;
}

/* Packs and loads b from memory (dir NULL). */
static int load(struct graph *g, const struct model *b, char *err)
{
    size_t len;
    uint8_t *buf = pack(b, &len);
    memset(g, 0, sizeof *g);
    err[0] = 0;
    int rc = onnx_load_bytes(g, buf, len, NULL, err);
    free(buf);
    return rc;
}

static int graph_is_zero(const struct graph *g)
{
    static const struct graph zero;
    return memcmp(g, &zero, sizeof zero) == 0;
}

/* Loads b expecting failure with `code` and every word of `words` (a
 * NULL-terminated list) in the message. */
static void expect_refusal(const struct model *b, int code, const char *const *words)
{
    struct graph g;
    char err[STRATA_ERR_LEN];
    int rc = load(&g, b, err);
    CHECK_MSG(rc == code, "rc %d (%s), expected %d; message: %s", rc, strata_status_name(rc),
              code, err);
    CHECK(graph_is_zero(&g));
    for (; words && *words; words++)
        CHECK_MSG(strstr(err, *words) != NULL, "'%s' not in: %s", *words, err);
    if (rc == 0)
        graph_deinit(&g);
}

/* A graph input X [N, C, H, W] and Relu X -> Y: the smallest graph that
 * loads, to which the tests attach what they check. */
static struct model *relu_model(int64_t opset)
{
    struct model *b = model_new(opset);
    input_add(b, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 4, (const int64_t[]){-1, 2, 3, 3});
    node_add(b, "Relu", "relu", (const char *[]){"X", NULL}, (const char *[]){"Y", NULL});
    output_add(b, "Y");
    return b;
}

static const struct graph_value *value_named(const struct graph *g, const char *name)
{
    int v = graph_find_value(g, name);
    return v >= 0 ? &g->values[v] : NULL;
}

/* ---- Conv + Relu, run against a direct convolution ------------------------- */

enum { CN = 2, CC = 2, CH = 5, CW = 4, CM = 3, CK = 3 };

static float conv_x(int n, int c, int y, int x) { return (float)((n * 7 + c * 5 + y * 3 + x) % 11) - 5.0f; }
static float conv_w(int m, int c, int ky, int kx) { return (float)((m * 13 + c * 7 + ky * 3 + kx * 2) % 9) * 0.25f - 1.0f; }
static float conv_b(int m) { return 0.5f * (float)m - 0.75f; }

/* Builds X -> Conv(W raw, B float_data; pads 1, strides 1) -> Relu -> Y, with
 * the Relu written first in the file (its input comes from a later node). */
static struct model *conv_model(void)
{
    struct model *b = model_new(11);
    float w[CM * CC * CK * CK], bias[CM];
    for (int m = 0; m < CM; m++)
        for (int c = 0; c < CC; c++)
            for (int ky = 0; ky < CK; ky++)
                for (int kx = 0; kx < CK; kx++)
                    w[((m * CC + c) * CK + ky) * CK + kx] = conv_w(m, c, ky, kx);
    for (int m = 0; m < CM; m++)
        bias[m] = conv_b(m);
    Onnx__TensorProto *W = init_add(b, tensor_new("conv.weight", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
                                                  4, (const int64_t[]){CM, CC, CK, CK}));
    tensor_raw(W, w, sizeof w);
    Onnx__TensorProto *B = init_add(b, tensor_new("conv.bias", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
                                                  1, (const int64_t[]){CM}));
    tensor_floats(B, bias, CM);
    input_add(b, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 4, (const int64_t[]){-1, CC, CH, CW});
    node_add(b, "Relu", NULL, (const char *[]){"conv_out", NULL}, (const char *[]){"Y", NULL});
    Onnx__NodeProto *conv = node_add(b, "Conv", "conv1", (const char *[]){"X", "conv.weight", "conv.bias", NULL},
                                     (const char *[]){"conv_out", NULL});
    attr_ints(conv, "kernel_shape", (const int64_t[]){CK, CK}, 2);
    attr_ints(conv, "pads", (const int64_t[]){1, 1, 1, 1}, 4);
    attr_ints(conv, "strides", (const int64_t[]){1, 1}, 2);
    output_add(b, "Y");
    return b;
}

TEST(conv_relu_model)
{
    struct model *b = conv_model();
    struct graph g;
    char err[STRATA_ERR_LEN];
    int rc = load(&g, b, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc) {
        arena_free();
        return;
    }
    CHECK_EQ_INT(g.opset, 11);
    CHECK_EQ_INT(g.n_inputs, 1);
    CHECK_EQ_INT(g.n_outputs, 1);
    CHECK_EQ_INT(g.n_nodes, 2);
    const struct graph_value *x = &g.values[g.inputs[0]];
    CHECK(strcmp(x->name, "X") == 0 && x->kind == VALUE_INPUT);
    CHECK(x->init.dtype == DTYPE_FLOAT && x->init.ndim == 4 && x->init.data == NULL);
    CHECK(x->init.dims[0] == -1 && x->init.dims[1] == CC && x->init.dims[2] == CH &&
          x->init.dims[3] == CW);
    CHECK(strcmp(g.values[g.outputs[0]].name, "Y") == 0);
    /* Sorted: Conv first, then the Relu named after its op and file index. */
    CHECK(strcmp(g.nodes[0].op_type, "Conv") == 0 && strcmp(g.nodes[0].name, "conv1") == 0);
    CHECK(strcmp(g.nodes[1].op_type, "Relu") == 0 && strcmp(g.nodes[1].name, "Relu_0") == 0);
    CHECK_EQ_INT(g.nodes[0].opset, 11);
    CHECK_EQ_INT(g.nodes[0].n_inputs, 3);
    CHECK_EQ_INT(g.nodes[0].n_attrs, 3);
    const struct attr *pads = node_attr(&g.nodes[0], "pads");
    CHECK(pads && pads->type == ATTR_INTS && pads->n == 4 && pads->ints[0] == 1 && pads->ints[3] == 1);
    const struct graph_value *w = value_named(&g, "conv.weight");
    CHECK(w && w->kind == VALUE_INITIALIZER && w->init.dtype == DTYPE_FLOAT && w->init.ndim == 4);
    CHECK(w && w->init.dims[0] == CM && w->init.dims[1] == CC && w->init.dims[3] == CK);
    CHECK(w && tview_f(&w->init)[5] == conv_w(0, 0, 1, 2));
    const struct graph_value *bias = value_named(&g, "conv.bias");
    CHECK(bias && bias->init.ndim == 1 && tview_f(&bias->init)[2] == conv_b(2));
    CHECK_EQ_INT(graph_param_count(&g), CM * CC * CK * CK + CM);

    /* Run it and compare with the direct convolution. */
    static float xin[CN * CC * CH * CW];
    for (int n = 0; n < CN; n++)
        for (int c = 0; c < CC; c++)
            for (int y = 0; y < CH; y++)
                for (int xx = 0; xx < CW; xx++)
                    xin[((n * CC + c) * CH + y) * CW + xx] = conv_x(n, c, y, xx);
    struct tview in = {.dtype = DTYPE_FLOAT, .ndim = 4, .dims = {CN, CC, CH, CW}, .data = xin};
    struct graph_ws ws = {0};
    rc = graph_ws_init(&ws, &g, &in, 0, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc == 0) {
        rc = graph_run(&ws, &in, err);
        CHECK_MSG(rc == 0, "%s", err);
        const struct tview *y = graph_value_view(&ws, g.outputs[0]);
        CHECK(y->ndim == 4 && y->dims[0] == CN && y->dims[1] == CM && y->dims[2] == CH &&
              y->dims[3] == CW);
        double maxdiff = 0;
        for (int n = 0; n < CN && rc == 0; n++)
            for (int m = 0; m < CM; m++)
                for (int oy = 0; oy < CH; oy++)
                    for (int ox = 0; ox < CW; ox++) {
                        double s = conv_b(m);
                        for (int c = 0; c < CC; c++)
                            for (int ky = 0; ky < CK; ky++)
                                for (int kx = 0; kx < CK; kx++) {
                                    int iy = oy - 1 + ky, ix = ox - 1 + kx;
                                    if (iy >= 0 && iy < CH && ix >= 0 && ix < CW)
                                        s += (double)conv_w(m, c, ky, kx) * conv_x(n, c, iy, ix);
                                }
                        s = s > 0 ? s : 0;
                        double d = fabs(s - tview_f(y)[((n * CM + m) * CH + oy) * CW + ox]);
                        maxdiff = d > maxdiff ? d : maxdiff;
                    }
        CHECK_NEAR(maxdiff, 0, 1e-5);
    }
    graph_ws_free(&ws);
    graph_deinit(&g);
    CHECK(graph_is_zero(&g));
    arena_free();
}

/* ---- element types ------------------------------------------------------------ */

/* binary16 from its definition: (-1)^s · 2^(e-15) · (1 + m/1024), or
 * 2^-14 · m/1024 when e = 0. Returns the float's bits. */
static uint32_t half_reference_bits(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    float f;
    if (e == 31) {
        uint32_t bits = (uint32_t)s << 31 | 0x7f800000u | (uint32_t)m << 13;
        return bits;
    }
    f = e ? ldexpf(1.0f + (float)m / 1024.0f, e - 15) : ldexpf((float)m / 1024.0f, -14);
    if (s)
        f = -f;
    uint32_t bits;
    memcpy(&bits, &f, 4);
    return bits;
}

static uint32_t float_bits(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

TEST(initializer_conversions)
{
    struct model *b = relu_model(13);
    /* Every float16 bit pattern, raw. */
    static uint16_t halves[65536];
    for (int i = 0; i < 65536; i++)
        halves[i] = (uint16_t)i;
    tensor_raw(init_add(b, tensor_new("h_raw", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16, 1,
                                      (const int64_t[]){65536})), halves, sizeof halves);
    /* float16 in int32_data, as the typed form stores it. */
    tensor_int32s(init_add(b, tensor_new("h_typed", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16, 1,
                                         (const int64_t[]){3})),
                  (const int32_t[]){0x3c00, 0xc100, 0x0001}, 3);
    /* double, raw and typed. */
    const double dv[4] = {0.1, -1e30, 1e-50, 3.4028234663852886e38};
    tensor_raw(init_add(b, tensor_new("d_raw", ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE, 2,
                                      (const int64_t[]){2, 2})), dv, sizeof dv);
    Onnx__TensorProto *dt = init_add(b, tensor_new("d_typed", ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE,
                                                   1, (const int64_t[]){4}));
    dt->n_double_data = 4;
    dt->double_data = mk(sizeof dv);
    memcpy(dt->double_data, dv, sizeof dv);
    /* bfloat16: 1.0, -3.140625. */
    tensor_raw(init_add(b, tensor_new("bf16", ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16, 1,
                                      (const int64_t[]){2})),
               (const uint16_t[]){0x3f80, 0xc049}, 4);
    /* Integers, raw. */
    const int32_t i32[3] = {-7, INT32_MAX, INT32_MIN};
    tensor_raw(init_add(b, tensor_new("i32_raw", ONNX__TENSOR_PROTO__DATA_TYPE__INT32, 1,
                                      (const int64_t[]){3})), i32, sizeof i32);
    tensor_int32s(init_add(b, tensor_new("i32_typed", ONNX__TENSOR_PROTO__DATA_TYPE__INT32, 1,
                                         (const int64_t[]){3})), i32, 3);
    tensor_raw(init_add(b, tensor_new("i8", ONNX__TENSOR_PROTO__DATA_TYPE__INT8, 1,
                                      (const int64_t[]){4})), (const int8_t[]){-128, 127, 0, -1}, 4);
    tensor_raw(init_add(b, tensor_new("u8", ONNX__TENSOR_PROTO__DATA_TYPE__UINT8, 1,
                                      (const int64_t[]){2})), (const uint8_t[]){255, 0}, 2);
    tensor_raw(init_add(b, tensor_new("b_raw", ONNX__TENSOR_PROTO__DATA_TYPE__BOOL, 1,
                                      (const int64_t[]){3})), (const uint8_t[]){0, 1, 2}, 3);
    tensor_int32s(init_add(b, tensor_new("b_typed", ONNX__TENSOR_PROTO__DATA_TYPE__BOOL, 1,
                                         (const int64_t[]){2})), (const int32_t[]){0, 3}, 2);
    tensor_raw(init_add(b, tensor_new("i16", ONNX__TENSOR_PROTO__DATA_TYPE__INT16, 1,
                                      (const int64_t[]){2})), (const int16_t[]){-32768, 300}, 4);
    tensor_raw(init_add(b, tensor_new("u16", ONNX__TENSOR_PROTO__DATA_TYPE__UINT16, 1,
                                      (const int64_t[]){1})), (const uint16_t[]){65535}, 2);
    tensor_raw(init_add(b, tensor_new("u32", ONNX__TENSOR_PROTO__DATA_TYPE__UINT32, 1,
                                      (const int64_t[]){1})), (const uint32_t[]){4294967295u}, 4);
    Onnx__TensorProto *u64 = init_add(b, tensor_new("u64", ONNX__TENSOR_PROTO__DATA_TYPE__UINT64,
                                                    0, NULL));
    u64->n_uint64_data = 1;
    u64->uint64_data = mk(8);
    u64->uint64_data[0] = INT64_MAX;
    Onnx__TensorProto *i64 = init_add(b, tensor_new("i64", ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 1,
                                                    (const int64_t[]){2}));
    i64->n_int64_data = 2;
    i64->int64_data = mk(16);
    i64->int64_data[0] = INT64_MIN;
    i64->int64_data[1] = 42;
    /* An empty tensor still gets data (an initializer is known, not an activation). */
    init_add(b, tensor_new("empty", ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 1, (const int64_t[]){0}));

    struct graph g;
    char err[STRATA_ERR_LEN];
    int rc = load(&g, b, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc) {
        arena_free();
        return;
    }
    const struct graph_value *v = value_named(&g, "h_raw");
    CHECK(v && v->init.dtype == DTYPE_FLOAT && tview_count(&v->init) == 65536);
    int bad = 0;
    for (int i = 0; v && i < 65536; i++) {
        uint32_t got = float_bits(tview_f(&v->init)[i]), want = half_reference_bits((uint16_t)i);
        if (got != want && bad++ < 5)
            printf("#   half 0x%04x -> 0x%08x, expected 0x%08x\n", i, got, want);
    }
    CHECK_EQ_INT(bad, 0);
    /* A few written out: 1, 2^-24 (the smallest subnormal), 65504 (the largest). */
    CHECK(v && tview_f(&v->init)[0x3c00] == 1.0f && tview_f(&v->init)[0x0001] == 5.9604644775390625e-08f &&
          tview_f(&v->init)[0x7bff] == 65504.0f && tview_f(&v->init)[0x3555] == 0.333251953125f);
    v = value_named(&g, "h_typed");
    CHECK(v && tview_f(&v->init)[0] == 1.0f && tview_f(&v->init)[1] == -2.5f &&
          tview_f(&v->init)[2] == 5.9604644775390625e-08f);
    const char *dnames[2] = {"d_raw", "d_typed"};
    for (int k = 0; k < 2; k++) {
        v = value_named(&g, dnames[k]);
        CHECK(v && v->init.dtype == DTYPE_FLOAT && tview_count(&v->init) == 4);
        for (int i = 0; v && i < 4; i++)
            CHECK_MSG(tview_f(&v->init)[i] == (float)dv[i], "%s[%d] = %g", dnames[k], i,
                      (double)tview_f(&v->init)[i]);
    }
    v = value_named(&g, "d_raw");
    CHECK(v && v->init.ndim == 2 && v->init.dims[0] == 2 && v->init.dims[1] == 2);
    v = value_named(&g, "bf16");
    CHECK(v && tview_f(&v->init)[0] == 1.0f && tview_f(&v->init)[1] == -3.140625f);
    const char *inames[2] = {"i32_raw", "i32_typed"};
    for (int k = 0; k < 2; k++) {
        v = value_named(&g, inames[k]);
        CHECK(v && v->init.dtype == DTYPE_INT64);
        CHECK(v && tview_i(&v->init)[0] == -7 && tview_i(&v->init)[1] == INT32_MAX &&
              tview_i(&v->init)[2] == INT32_MIN);
    }
    v = value_named(&g, "i8");
    CHECK(v && tview_i(&v->init)[0] == -128 && tview_i(&v->init)[1] == 127 &&
          tview_i(&v->init)[2] == 0 && tview_i(&v->init)[3] == -1);
    v = value_named(&g, "u8");
    CHECK(v && tview_i(&v->init)[0] == 255 && tview_i(&v->init)[1] == 0);
    v = value_named(&g, "b_raw");
    CHECK(v && tview_i(&v->init)[0] == 0 && tview_i(&v->init)[1] == 1 && tview_i(&v->init)[2] == 1);
    v = value_named(&g, "b_typed");
    CHECK(v && tview_i(&v->init)[0] == 0 && tview_i(&v->init)[1] == 1);
    v = value_named(&g, "i16");
    CHECK(v && tview_i(&v->init)[0] == -32768 && tview_i(&v->init)[1] == 300);
    v = value_named(&g, "u16");
    CHECK(v && tview_i(&v->init)[0] == 65535);
    v = value_named(&g, "u32");
    CHECK(v && tview_i(&v->init)[0] == 4294967295LL);
    v = value_named(&g, "u64");
    CHECK(v && v->init.ndim == 0 && tview_i(&v->init)[0] == INT64_MAX);
    v = value_named(&g, "i64");
    CHECK(v && tview_i(&v->init)[0] == INT64_MIN && tview_i(&v->init)[1] == 42);
    v = value_named(&g, "empty");
    CHECK(v && v->init.ndim == 1 && v->init.dims[0] == 0 && v->init.data != NULL);
    CHECK_EQ_INT(g.n_inputs, 1);
    graph_deinit(&g);
    arena_free();
}

TEST(unsupported_initializers)
{
    struct model *b = relu_model(13);
    Onnx__TensorProto *s = init_add(b, tensor_new("vocab", ONNX__TENSOR_PROTO__DATA_TYPE__STRING, 1,
                                                  (const int64_t[]){1}));
    s->n_string_data = 1;
    s->string_data = mk(sizeof(ProtobufCBinaryData));
    s->string_data[0].data = (uint8_t *)mkstr("a");
    s->string_data[0].len = 1;
    expect_refusal(b, STRATA_E_UNSUPPORTED, (const char *[]){"initializer 'vocab'", "string", NULL});
    arena_free();

    b = relu_model(13);
    tensor_raw(init_add(b, tensor_new("big", ONNX__TENSOR_PROTO__DATA_TYPE__UINT64, 1,
                                      (const int64_t[]){1})), (const uint64_t[]){1ull << 63}, 8);
    expect_refusal(b, STRATA_E_UNSUPPORTED, (const char *[]){"initializer 'big'", "int64", NULL});
    arena_free();

    b = relu_model(13);
    tensor_raw(init_add(b, tensor_new("huge", ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE, 1,
                                      (const int64_t[]){1})), (const double[]){1e300}, 8);
    expect_refusal(b, STRATA_E_UNSUPPORTED, (const char *[]){"initializer 'huge'", "float32's range", NULL});
    arena_free();

    b = relu_model(13);
    init_add(b, tensor_new("c", ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX64, 1, (const int64_t[]){1}));
    expect_refusal(b, STRATA_E_UNSUPPORTED, (const char *[]){"initializer 'c'", "complex64", NULL});
    arena_free();

    b = relu_model(13);
    init_add(b, tensor_new("nine", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 9,
                           (const int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}));
    expect_refusal(b, STRATA_E_UNSUPPORTED, (const char *[]){"initializer 'nine'", "9 dimensions", NULL});
    arena_free();

    b = relu_model(13);
    Onnx__TensorProto *nt = init_add(b, tensor_new("untyped", 0, 1, (const int64_t[]){1}));
    nt->has_data_type = 0;
    expect_refusal(b, STRATA_E_FORMAT, (const char *[]){"initializer 'untyped'", "no element type", NULL});
    arena_free();
}

/* ---- shapes against data ----------------------------------------------------- */

TEST(shape_checks)
{
    /* The message a user sees for a tensor shorter than its shape. */
    struct model *b = relu_model(13);
    static uint8_t bytes[1200];
    tensor_raw(init_add(b, tensor_new("conv1.weight", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 4,
                                      (const int64_t[]){64, 3, 7, 7})), bytes, sizeof bytes);
    expect_refusal(b, STRATA_E_FORMAT,
                   (const char *[]){"model: initializer 'conv1.weight': raw_data holds 1200 bytes, "
                                    "but its float32 shape 64x3x7x7 needs 37632", NULL});
    arena_free();

    /* Longer than its shape is refused too. */
    b = relu_model(13);
    tensor_raw(init_add(b, tensor_new("w", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 1,
                                      (const int64_t[]){2})), bytes, 12);
    expect_refusal(b, STRATA_E_FORMAT, (const char *[]){"holds 12 bytes", "needs 8", NULL});
    arena_free();

    /* Typed data with fewer values than the shape. */
    b = relu_model(13);
    tensor_floats(init_add(b, tensor_new("w", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2,
                                         (const int64_t[]){2, 3})), (const float[]){1, 2, 3}, 3);
    expect_refusal(b, STRATA_E_FORMAT, (const char *[]){"float_data holds 3 values", "2x3", NULL});
    arena_free();

    /* No data at all. */
    b = relu_model(13);
    init_add(b, tensor_new("w", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 1, (const int64_t[]){5}));
    expect_refusal(b, STRATA_E_FORMAT, (const char *[]){"initializer 'w' holds no data", NULL});
    arena_free();

    /* Dimensions whose product overflows int64: refused before any size is
     * computed from them. */
    b = relu_model(13);
    tensor_floats(init_add(b, tensor_new("w", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 3,
                                         (const int64_t[]){1ll << 32, 1ll << 32, 4})),
                  (const float[]){1}, 1);
    expect_refusal(b, STRATA_E_FORMAT, (const char *[]){"initializer 'w'", "more elements", NULL});
    arena_free();

    /* A product that fits int64 but not any file: compared with the data
     * first, never allocated. */
    b = relu_model(13);
    tensor_raw(init_add(b, tensor_new("w", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2,
                                      (const int64_t[]){1ll << 30, 1ll << 30})), bytes, 16);
    expect_refusal(b, STRATA_E_FORMAT, (const char *[]){"holds 16 bytes", NULL});
    arena_free();

    b = relu_model(13);
    tensor_floats(init_add(b, tensor_new("w", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2,
                                         (const int64_t[]){-1, 2})), (const float[]){1, 2}, 2);
    expect_refusal(b, STRATA_E_FORMAT, (const char *[]){"negative", NULL});
    arena_free();
}

/* ---- opsets, domains, inputs -------------------------------------------------- */

TEST(opsets)
{
    int64_t bad[] = {1, 5, 18, 100};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct model *b = relu_model(bad[i]);
        char num[32];
        snprintf(num, sizeof num, "opset %lld", (long long)bad[i]);
        expect_refusal(b, STRATA_E_UNSUPPORTED, (const char *[]){num, "6 to 17", NULL});
        arena_free();
    }
    int64_t good[] = {6, 17};
    for (size_t i = 0; i < 2; i++) {
        struct model *b = relu_model(good[i]);
        struct graph g;
        char err[STRATA_ERR_LEN];
        int rc = load(&g, b, err);
        CHECK_MSG(rc == 0, "%s", err);
        CHECK_EQ_INT(g.opset, good[i]);
        CHECK(rc || g.nodes[0].opset == good[i]);
        graph_deinit(&g);
        arena_free();
    }
    /* "ai.onnx" names the default domain too; other domains' imports are
     * allowed as long as no node uses them. */
    struct model *b = relu_model(12);
    b->op.domain = mkstr("ai.onnx");
    Onnx__OperatorSetIdProto ml = ONNX__OPERATOR_SET_ID_PROTO__INIT;
    ml.domain = mkstr("ai.onnx.ml");
    ml.has_version = 1;
    ml.version = 3;
    b->m.opset_import[b->m.n_opset_import++] = &ml;
    struct graph g;
    char err[STRATA_ERR_LEN];
    int rc = load(&g, b, err);
    CHECK_MSG(rc == 0 && g.opset == 12, "%s", err);
    graph_deinit(&g);
    arena_free();

    b = relu_model(12);
    b->op.domain = mkstr("ai.onnx.preview.training");
    expect_refusal(b, STRATA_E_UNSUPPORTED, (const char *[]){"no standard ONNX opset", NULL});
    arena_free();
}

TEST(other_domains_listed_as_unsupported)
{
    struct model *b = relu_model(13);
    Onnx__NodeProto *n = node_add(b, "FusedConv", "fc", (const char *[]){"Y", NULL},
                                  (const char *[]){"Z", NULL});
    n->domain = mkstr("com.microsoft");
    n = node_add(b, "Scaler", "sc", (const char *[]){"Z", NULL}, (const char *[]){"Z2", NULL});
    n->domain = mkstr("ai.onnx.ml");
    n = node_add(b, "Relu", "r2", (const char *[]){"Z2", NULL}, (const char *[]){"Z3", NULL});
    n->domain = mkstr("ai.onnx");
    b->g.output[0]->name = mkstr("Z3");
    expect_refusal(b, STRATA_E_UNSUPPORTED,
                   (const char *[]){"com.microsoft:FusedConv", "'fc'", "ai.onnx.ml:Scaler", NULL});
    arena_free();
}

TEST(inputs)
{
    /* A uint8 image input is refused by name. */
    struct model *b = model_new(13);
    input_add(b, "image", ONNX__TENSOR_PROTO__DATA_TYPE__UINT8, 4, (const int64_t[]){1, 3, 8, 8});
    node_add(b, "Relu", "r", (const char *[]){"image", NULL}, (const char *[]){"Y", NULL});
    output_add(b, "Y");
    expect_refusal(b, STRATA_E_UNSUPPORTED, (const char *[]){"input 'image'", "uint8", NULL});
    arena_free();

    /* IR 3: the initializers are also listed among the inputs; they stay
     * initializers, and only X is an input. */
    b = conv_model();
    b->m.ir_version = 3;
    b->op.version = 6;
    input_add(b, "conv.weight", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 4,
              (const int64_t[]){CM, CC, CK, CK});
    input_add(b, "conv.bias", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 1, (const int64_t[]){CM});
    struct graph g;
    char err[STRATA_ERR_LEN];
    int rc = load(&g, b, err);
    CHECK_MSG(rc == 0, "%s", err);
    CHECK_EQ_INT(g.n_inputs, 1);
    CHECK(rc || strcmp(g.values[g.inputs[0]].name, "X") == 0);
    CHECK(rc || value_named(&g, "conv.weight")->kind == VALUE_INITIALIZER);
    CHECK(rc || value_named(&g, "conv.weight")->init.data != NULL);
    graph_deinit(&g);
    arena_free();

    /* Two inputs, an int64 one among them, with their declared shapes. */
    b = relu_model(13);
    input_add(b, "ids", ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 2, (const int64_t[]){-1, 7});
    node_add(b, "Identity", "id", (const char *[]){"ids", NULL}, (const char *[]){"ids_out", NULL});
    output_add(b, "ids_out");
    rc = load(&g, b, err);
    CHECK_MSG(rc == 0, "%s", err);
    CHECK_EQ_INT(g.n_inputs, 2);
    CHECK_EQ_INT(g.n_outputs, 2);
    if (rc == 0) {
        const struct graph_value *v = &g.values[g.inputs[1]];
        CHECK(strcmp(v->name, "ids") == 0 && v->init.dtype == DTYPE_INT64 && v->init.ndim == 2 &&
              v->init.dims[0] == -1 && v->init.dims[1] == 7);
    }
    graph_deinit(&g);
    arena_free();

    /* An input listed twice, an input without a shape, a sequence input. */
    b = relu_model(13);
    input_add(b, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 4, (const int64_t[]){1, 2, 3, 3});
    expect_refusal(b, STRATA_E_FORMAT, (const char *[]){"'X' is listed twice", NULL});
    arena_free();
    b = relu_model(13);
    b->g.input[0]->type->tensor_type->shape = NULL;
    expect_refusal(b, STRATA_E_UNSUPPORTED, (const char *[]){"'X' declares no shape", NULL});
    arena_free();
    b = relu_model(13);
    b->g.input[0]->type->value_case = ONNX__TYPE_PROTO__VALUE__NOT_SET;
    expect_refusal(b, STRATA_E_UNSUPPORTED, (const char *[]){"'X' is not a tensor", NULL});
    arena_free();
}

/* ---- nodes and attributes ----------------------------------------------------- */

TEST(attributes)
{
    struct model *b = relu_model(13);
    Onnx__NodeProto *n = node_add(b, "Identity", "", (const char *[]){"Y", NULL},
                                  (const char *[]){"Z", "", NULL});
    b->g.output[0]->name = mkstr("Z");
    Onnx__AttributeProto *a = attr_add(n, "f", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    a->has_f = 1;
    a->f = 0.25f;
    a = attr_add(n, "i", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    a->has_i = 1;
    a->i = -3;
    a = attr_add(n, "s", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    a->has_s = 1;
    a->s.data = (uint8_t *)mkstr("SAME_UPPERxx");
    a->s.len = 10; /* not NUL-terminated in the file */
    a = attr_add(n, "fs", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS);
    a->n_floats = 3;
    a->floats = mk(3 * sizeof(float));
    a->floats[0] = 1.5f;
    a->floats[2] = -2.0f;
    attr_ints(n, "is", (const int64_t[]){7, INT64_MIN}, 2);
    a = attr_add(n, "t", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
    a->t = tensor_new("", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16, 1, (const int64_t[]){2});
    tensor_raw(a->t, (const uint16_t[]){0x3c00, 0xc000}, 4);
    a = attr_add(n, "ti", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
    a->t = tensor_new("", ONNX__TENSOR_PROTO__DATA_TYPE__INT32, 0, NULL);
    tensor_int32s(a->t, (const int32_t[]){-9}, 1);
    a = attr_add(n, "body", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH);
    Onnx__GraphProto sub = ONNX__GRAPH_PROTO__INIT;
    a->g = &sub;
    a = attr_add(n, "names", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS);
    /* IR 1 attributes have no type field: guessed from the field set. */
    a = attr_add(n, "old", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED);
    a->has_type = 0;
    a->has_i = 1;
    a->i = 5;

    struct graph g;
    char err[STRATA_ERR_LEN];
    int rc = load(&g, b, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc) {
        arena_free();
        return;
    }
    const struct node *id = NULL;
    for (int i = 0; i < g.n_nodes; i++)
        if (strcmp(g.nodes[i].op_type, "Identity") == 0)
            id = &g.nodes[i];
    CHECK(id != NULL);
    if (id) {
        CHECK(strcmp(id->name, "Identity_1") == 0);
        CHECK_EQ_INT(id->n_outputs, 1); /* the trailing "" output is dropped */
        CHECK_EQ_INT(id->n_attrs, 8);   /* body and names skipped */
        const struct attr *x = node_attr(id, "f");
        CHECK(x && x->type == ATTR_FLOAT && x->f == 0.25f);
        x = node_attr(id, "i");
        CHECK(x && x->type == ATTR_INT && x->i == -3);
        x = node_attr(id, "s");
        CHECK(x && x->type == ATTR_STRING && strcmp(x->s, "SAME_UPPER") == 0);
        x = node_attr(id, "fs");
        CHECK(x && x->type == ATTR_FLOATS && x->n == 3 && x->floats[0] == 1.5f &&
              x->floats[1] == 0.0f && x->floats[2] == -2.0f);
        x = node_attr(id, "is");
        CHECK(x && x->type == ATTR_INTS && x->n == 2 && x->ints[0] == 7 && x->ints[1] == INT64_MIN);
        x = node_attr(id, "t");
        CHECK(x && x->type == ATTR_TENSOR && x->t.dtype == DTYPE_FLOAT && x->t.ndim == 1 &&
              tview_f(&x->t)[0] == 1.0f && tview_f(&x->t)[1] == -2.0f);
        x = node_attr(id, "ti");
        CHECK(x && x->type == ATTR_TENSOR && x->t.dtype == DTYPE_INT64 && x->t.ndim == 0 &&
              tview_i(&x->t)[0] == -9);
        CHECK(node_attr(id, "body") == NULL && node_attr(id, "names") == NULL);
        x = node_attr(id, "old");
        CHECK(x && x->type == ATTR_INT && x->i == 5);
    }
    graph_deinit(&g);
    arena_free();

    /* A tensor attribute that does not convert names the node and attribute. */
    b = relu_model(13);
    n = node_add(b, "Constant", "k", NULL, (const char *[]){"K", NULL});
    a = attr_add(n, "value", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
    a->t = tensor_new("", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 1, (const int64_t[]){4});
    tensor_floats(a->t, (const float[]){1}, 1);
    expect_refusal(b, STRATA_E_FORMAT, (const char *[]){"node 'k' (Constant): attribute 'value'",
                                                        "holds 1 values", NULL});
    arena_free();
}

TEST(wiring)
{
    /* A value written by two nodes. */
    struct model *b = relu_model(13);
    node_add(b, "Relu", "again", (const char *[]){"X", NULL}, (const char *[]){"Y", NULL});
    expect_refusal(b, STRATA_E_FORMAT, (const char *[]){"'Y' is written by both node 'relu'",
                                                        "node 'again'", NULL});
    arena_free();

    /* A node writing over an initializer. */
    b = relu_model(13);
    tensor_floats(init_add(b, tensor_new("w", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 0, NULL)),
                  (const float[]){1}, 1);
    node_add(b, "Relu", "over", (const char *[]){"X", NULL}, (const char *[]){"w", NULL});
    expect_refusal(b, STRATA_E_FORMAT, (const char *[]){"writes 'w'", "initializer", NULL});
    arena_free();

    /* An input nothing produces (found by graph_finish), an output nothing
     * computes, a duplicated initializer. */
    b = relu_model(13);
    node_add(b, "Relu", "orphan", (const char *[]){"nowhere", NULL}, (const char *[]){"Q", NULL});
    expect_refusal(b, STRATA_E_FORMAT, (const char *[]){"model: ", "'nowhere'", NULL});
    arena_free();
    b = relu_model(13);
    output_add(b, "ghost");
    expect_refusal(b, STRATA_E_FORMAT, (const char *[]){"output 'ghost' is computed by no node", NULL});
    arena_free();
    b = relu_model(13);
    tensor_floats(init_add(b, tensor_new("w", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 0, NULL)),
                  (const float[]){1}, 1);
    tensor_floats(init_add(b, tensor_new("w", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 0, NULL)),
                  (const float[]){2}, 1);
    expect_refusal(b, STRATA_E_FORMAT, (const char *[]){"initializer 'w' is given twice", NULL});
    arena_free();

    b = relu_model(13);
    Onnx__SparseTensorProto sp = ONNX__SPARSE_TENSOR_PROTO__INIT;
    Onnx__SparseTensorProto *sps[1] = {&sp};
    b->g.n_sparse_initializer = 1;
    b->g.sparse_initializer = sps;
    expect_refusal(b, STRATA_E_UNSUPPORTED, (const char *[]){"sparse", NULL});
    arena_free();
}

/* ---- external data ------------------------------------------------------------- */

static char tmpdir[64];

static void write_file(const char *rel, const void *data, size_t n)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        CHECK(fwrite(data, 1, n, f) == n);
        fclose(f);
    }
}

/* ---- an Identity of an initializer ------------------------------------------------ */

/* Two BatchNormalizations that read one shared pair of statistics through
 * an Identity each, as PyTorch writes the running statistics it keeps and
 * shares when they start equal: each Identity becomes an initializer of its
 * own (a copy: changing one leaves the other), the graph runs as the file
 * says, and onnx_save_weights writes the copies as initializers in place of
 * the Identity nodes, values kept. */
TEST(identity_of_an_initializer_is_an_initializer_of_its_own)
{
    char err[STRATA_ERR_LEN], path[160];
    snprintf(tmpdir, sizeof tmpdir, "/tmp/strata_onnx_XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
    struct model *b = model_new(13);
    input_add(b, "x", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 4, (int64_t[]){1, 2, 1, 2});
    const float one[2] = {1, 1}, zero[2] = {0, 0}, mean[2] = {0.5f, -1}, var[2] = {4, 0.25f};
    const char *names[4] = {"scale", "bias", "mean", "var"};
    const float *vals[4] = {one, zero, mean, var};
    for (int i = 0; i < 4; i++) {
        Onnx__TensorProto *t = tensor_new(names[i], ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 1,
                                          (int64_t[]){2});
        tensor_floats(t, vals[i], 2);
        init_add(b, t);
    }
    node_add(b, "Identity", "id_m1", (const char *[]){"mean", NULL}, (const char *[]){"m1", NULL});
    node_add(b, "Identity", "id_v1", (const char *[]){"var", NULL}, (const char *[]){"v1", NULL});
    node_add(b, "Identity", "id_m2", (const char *[]){"mean", NULL}, (const char *[]){"m2", NULL});
    node_add(b, "Identity", "id_v2", (const char *[]){"var", NULL}, (const char *[]){"v2", NULL});
    node_add(b, "BatchNormalization", "bn1", (const char *[]){"x", "scale", "bias", "m1", "v1", NULL},
             (const char *[]){"y1", NULL});
    node_add(b, "BatchNormalization", "bn2", (const char *[]){"y1", "scale", "bias", "m2", "v2", NULL},
             (const char *[]){"y", NULL});
    output_add(b, "y");
    struct graph g, back;
    CHECK(load(&g, b, err) == 0);
    CHECK_EQ_INT(g.n_nodes, 2); /* the Identities are gone */
    const struct graph_value *m1 = value_named(&g, "m1"), *m2 = value_named(&g, "m2");
    CHECK(m1 && m2 && m1->kind == VALUE_INITIALIZER && m2->kind == VALUE_INITIALIZER);
    if (!m1 || !m2 || m1->kind != VALUE_INITIALIZER || m2->kind != VALUE_INITIALIZER) {
        graph_deinit(&g);
        arena_free();
        return;
    }
    CHECK(m1->init.data != m2->init.data);
    CHECK(tview_f(&m1->init)[0] == 0.5f && tview_f(&m2->init)[1] == -1.0f);

    /* y = ((x − m)/√v − m)/√v per channel (ε default 1e-5) */
    float xv[2][2] = {{2.5f, 0.5f}, {-1.5f, 0.0f}}, want[4];
    for (int c = 0; c < 2; c++)
        for (int k = 0; k < 2; k++) {
            double y1 = (xv[c][k] - mean[c]) / sqrt(var[c] + 1e-5);
            want[c * 2 + k] = (float)((y1 - mean[c]) / sqrt(var[c] + 1e-5));
        }
    struct tview in = {.dtype = DTYPE_FLOAT, .ndim = 4, .dims = {1, 2, 1, 2}, .data = xv};
    struct graph_ws ws;
    CHECK(graph_ws_init(&ws, &g, &in, 0, err) == 0);
    CHECK(graph_run(&ws, &in, err) == 0);
    const float *y = tview_f(graph_value_view(&ws, g.outputs[0]));
    for (int k = 0; k < 4; k++)
        CHECK_NEAR(y[k], want[k], 1e-5);
    graph_ws_free(&ws);

    /* the second layer's statistics change alone, and the file keeps that */
    tview_f(&g.values[graph_find_value(&g, "m2")].init)[0] = 3.0f;
    snprintf(path, sizeof path, "%s/identities.onnx", tmpdir);
    size_t len;
    uint8_t *bytes = pack(b, &len);
    write_file("identities-src.onnx", bytes, len);
    free(bytes);
    char src[160];
    snprintf(src, sizeof src, "%s/identities-src.onnx", tmpdir);
    CHECK(onnx_save_weights(src, &g, 2, path, err) == 0);
    memset(&back, 0, sizeof back);
    CHECK(onnx_load(&back, path, err) == 0);
    CHECK_EQ_INT(back.n_nodes, 2);
    const struct graph_value *b1 = value_named(&back, "m1"), *b2 = value_named(&back, "m2");
    CHECK(b1 && b2 && b1->kind == VALUE_INITIALIZER && b2->kind == VALUE_INITIALIZER);
    if (b1 && b2) {
        CHECK(tview_f(&b1->init)[0] == 0.5f);
        CHECK(tview_f(&b2->init)[0] == 3.0f && tview_f(&b2->init)[1] == -1.0f);
    }
    unlink(path);
    unlink(src);
    rmdir(tmpdir);
    graph_deinit(&back);
    graph_deinit(&g);
    arena_free();
}

static void set_external(Onnx__TensorProto *t, const char *loc, const char *off, const char *len)
{
    t->has_data_location = 1;
    t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    t->external_data = mk(3 * sizeof(void *));
    const char *keys[3] = {"location", "offset", "length"}, *vals[3] = {loc, off, len};
    for (int i = 0; i < 3; i++) {
        if (!vals[i])
            continue;
        Onnx__StringStringEntryProto *e = mk(sizeof *e);
        Onnx__StringStringEntryProto e0 = ONNX__STRING_STRING_ENTRY_PROTO__INIT;
        *e = e0;
        e->key = mkstr(keys[i]);
        e->value = mkstr(vals[i]);
        t->external_data[t->n_external_data++] = e;
    }
}

/* Writes a model with one external float initializer w [2, 3] to
 * tmpdir/model.onnx and loads it from there. */
static int load_external(const char *loc, const char *off, const char *len, int type,
                         struct graph *g, char *err)
{
    struct model *b = relu_model(13);
    Onnx__TensorProto *t = init_add(b, tensor_new("w", type, 2, (const int64_t[]){2, 3}));
    set_external(t, loc, off, len);
    size_t n;
    uint8_t *buf = pack(b, &n);
    write_file("model.onnx", buf, n);
    free(buf);
    char path[256];
    snprintf(path, sizeof path, "%s/model.onnx", tmpdir);
    memset(g, 0, sizeof *g);
    err[0] = 0;
    int rc = onnx_load(g, path, err);
    arena_free();
    return rc;
}

TEST(external_data)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/strata_onnx_XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
    char sub[128];
    snprintf(sub, sizeof sub, "%s/sub", tmpdir);
    CHECK(mkdir(sub, 0700) == 0);
    /* 16 bytes of something else, then the 6 floats, then 8 more bytes. */
    uint8_t blob[16 + 24 + 8];
    memset(blob, 0xAB, sizeof blob);
    const float w[6] = {1, -2, 3.5f, 0.125f, -0.0f, 1e-3f};
    memcpy(blob + 16, w, sizeof w);
    write_file("weights.bin", blob, sizeof blob);
    write_file("sub/w.bin", w, sizeof w);
    double wd[6];
    for (int i = 0; i < 6; i++)
        wd[i] = w[i];
    write_file("w64.bin", wd, sizeof wd);

    struct graph g;
    char err[STRATA_ERR_LEN];
    int rc = load_external("weights.bin", "16", "24", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, &g, err);
    CHECK_MSG(rc == 0, "%s", err);
    const struct graph_value *v = rc ? NULL : value_named(&g, "w");
    CHECK(v && v->init.ndim == 2 && memcmp(v->init.data, w, sizeof w) == 0);
    graph_deinit(&g);

    /* No offset or length: from the start, the tensor's size. In a subfolder. */
    rc = load_external("sub/w.bin", NULL, NULL, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, &g, err);
    CHECK_MSG(rc == 0, "%s", err);
    v = rc ? NULL : value_named(&g, "w");
    CHECK(v && memcmp(v->init.data, w, sizeof w) == 0);
    graph_deinit(&g);

    /* Converted from float64. */
    rc = load_external("w64.bin", "0", "48", ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE, &g, err);
    CHECK_MSG(rc == 0, "%s", err);
    v = rc ? NULL : value_named(&g, "w");
    CHECK(v && v->init.dtype == DTYPE_FLOAT && memcmp(v->init.data, w, sizeof w) == 0);
    graph_deinit(&g);

    struct {
        const char *loc, *off, *len;
        int code;
        const char *word;
    } bad[] = {
        {"../weights.bin", NULL, NULL, STRATA_E_FORMAT, "'..'"},
        {"sub/../../weights.bin", NULL, NULL, STRATA_E_FORMAT, "'..'"},
        {"sub/..", NULL, NULL, STRATA_E_FORMAT, "'..'"},
        {"/etc/passwd", NULL, NULL, STRATA_E_FORMAT, "absolute"},
        {"weights.bin", "40", NULL, STRATA_E_FORMAT, "runs past the end"},
        {"weights.bin", "18446744073709551615", NULL, STRATA_E_FORMAT, "runs past the end"},
        {"weights.bin", "16", "20", STRATA_E_FORMAT, "needs 24"},
        {"weights.bin", "-1", NULL, STRATA_E_FORMAT, "offset '-1'"},
        {"weights.bin", "16", "24x", STRATA_E_FORMAT, "length '24x'"},
        {"missing.bin", NULL, NULL, STRATA_E_NOTFOUND, "missing.bin"},
        {"sub", NULL, NULL, STRATA_E_IO, "not a regular file"},
        {"", NULL, NULL, STRATA_E_FORMAT, "no location"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc = load_external(bad[i].loc, bad[i].off, bad[i].len, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
                           &g, err);
        CHECK_MSG(rc == bad[i].code, "location '%s': rc %d, expected %d: %s", bad[i].loc, rc,
                  bad[i].code, err);
        CHECK_MSG(strstr(err, bad[i].word) != NULL, "'%s' not in: %s", bad[i].word, err);
        CHECK_MSG(strstr(err, "initializer 'w'") != NULL, "%s", err);
        CHECK(graph_is_zero(&g));
        if (rc == 0)
            graph_deinit(&g);
    }

    /* From memory there is no folder to look in. */
    struct model *b = relu_model(13);
    set_external(init_add(b, tensor_new("w", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 1,
                                        (const int64_t[]){6})), "weights.bin", NULL, NULL);
    expect_refusal(b, STRATA_E_UNSUPPORTED, (const char *[]){"external", NULL});
    arena_free();

    const char *files[] = {"model.onnx", "weights.bin", "sub/w.bin", "w64.bin"};
    for (size_t i = 0; i < 4; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", tmpdir, files[i]);
        unlink(path);
    }
    rmdir(sub);
    rmdir(tmpdir);
}

/* ---- robustness ------------------------------------------------------------------ */

TEST(every_prefix_and_byte_flip)
{
    struct model *b = conv_model();
    size_t len;
    uint8_t *full = pack(b, &len);
    arena_free();
    uint8_t *buf = malloc(len);
    char err[STRATA_ERR_LEN];
    int loaded = 0, refused = 0;
    for (size_t n = 0; n <= len; n++) {
        /* A copy of exactly n bytes, so ASan sees any read past the prefix. */
        uint8_t *p = malloc(n ? n : 1);
        memcpy(p, full, n);
        struct graph g = {0};
        int rc = onnx_load_bytes(&g, p, n, NULL, err);
        if (rc == 0) {
            loaded++;
            graph_deinit(&g);
        } else {
            refused++;
            CHECK(rc < 0 && graph_is_zero(&g));
        }
        free(p);
    }
    printf("#   %zu prefixes: %d loaded, %d refused\n", len + 1, loaded, refused);
    CHECK(refused > 0 && loaded >= 1);
    const uint8_t flips[] = {0x00, 0xff, 0x80, 0x7f, 0x01};
    for (size_t i = 0; i < len; i++)
        for (size_t k = 0; k < sizeof flips; k++) {
            memcpy(buf, full, len);
            buf[i] = flips[k];
            struct graph g = {0};
            if (onnx_load_bytes(&g, buf, len, NULL, err) == 0)
                graph_deinit(&g);
            CHECK(graph_is_zero(&g));
        }
    struct graph g = {0};
    CHECK(onnx_load_bytes(&g, full, len, NULL, err) == 0);
    graph_deinit(&g);
    free(buf);
    free(full);
}

/* A field header: tag, wire type 2, and a varint length. */
static size_t put_len_field(uint8_t *p, int field, size_t len)
{
    size_t n = 0;
    p[n++] = (uint8_t)(field << 3 | 2);
    do {
        p[n++] = (uint8_t)((len & 0x7f) | (len > 0x7f ? 0x80 : 0));
        len >>= 7;
    } while (len);
    return n;
}

TEST(hostile_bytes)
{
    char err[STRATA_ERR_LEN];
    struct graph g = {0};
    /* Nodes in attributes' subgraphs in nodes ..., 200 deep: built inside
     * out, graph (1) -> node (field 1) -> attribute (field 5) -> g (field 6). */
    size_t cap = 1 << 16;
    uint8_t *a = malloc(cap), *t = malloc(cap);
    size_t n = 0;
    for (int level = 0; level < 200; level++) {
        const int fields[3] = {6, 5, 1}; /* attribute.g, node.attribute, graph.node */
        for (int k = 0; k < 3; k++) {
            size_t h = put_len_field(t, fields[k], n);
            memcpy(t + h, a, n);
            n += h;
            memcpy(a, t, n);
        }
    }
    size_t h = put_len_field(t, 7, n); /* ModelProto.graph */
    memcpy(t + h, a, n);
    n += h;
    int rc = onnx_load_bytes(&g, t, n, NULL, err);
    CHECK_MSG(rc == STRATA_E_LIMIT && strstr(err, "nested"), "rc %d: %s", rc, err);
    CHECK(graph_is_zero(&g));
    free(a);
    free(t);

    /* 4 MB of empty nodes: 2 bytes each in the file, a NodeProto struct each
     * once decoded. Refused before decoding. */
    size_t nodes = 2 << 20;
    uint8_t *bomb = malloc(2 * nodes + 16);
    size_t at = put_len_field(bomb, 7, 2 * nodes);
    for (size_t i = 0; i < nodes; i++) {
        bomb[at++] = 1 << 3 | 2;
        bomb[at++] = 0;
    }
    rc = onnx_load_bytes(&g, bomb, at, NULL, err);
    CHECK_MSG(rc == STRATA_E_LIMIT && strstr(err, "corrupt"), "rc %d: %s", rc, err);
    free(bomb);

    /* Not protobuf at all, and a length running past the end. */
    const uint8_t junk[] = "this is not an ONNX model";
    rc = onnx_load_bytes(&g, junk, sizeof junk - 1, NULL, err);
    CHECK_MSG(rc == STRATA_E_FORMAT, "rc %d: %s", rc, err);
    const uint8_t past[] = {0x3a, 0x7f, 0x0a};
    rc = onnx_load_bytes(&g, past, sizeof past, NULL, err);
    CHECK_MSG(rc == STRATA_E_FORMAT && strstr(err, "truncated"), "rc %d: %s", rc, err);
    CHECK(graph_is_zero(&g));

    /* Files that are not regular, or missing. */
    rc = onnx_load(&g, "/tmp", err);
    CHECK_MSG(rc == STRATA_E_IO, "rc %d: %s", rc, err);
    rc = onnx_load(&g, "/nonexistent/model.onnx", err);
    CHECK_MSG(rc == STRATA_E_NOTFOUND, "rc %d: %s", rc, err);
    CHECK(graph_is_zero(&g));
}

/* ---- TensorProto files ---------------------------------------------------------- */

#define RELU_CASE "/usr/share/libonnx-testdata/data/node/test_relu/test_data_set_0/"

TEST(read_tensor_relu_case)
{
    struct tview x, y;
    char err[STRATA_ERR_LEN];
    int rc = onnx_read_tensor(&x, RELU_CASE "input_0.pb", err);
    CHECK_MSG(rc == 0, "%s", err);
    int rc2 = onnx_read_tensor(&y, RELU_CASE "output_0.pb", err);
    CHECK_MSG(rc2 == 0, "%s", err);
    if (rc == 0 && rc2 == 0) {
        CHECK(x.dtype == DTYPE_FLOAT && x.ndim == 3 && x.dims[0] == 3 && x.dims[1] == 4 &&
              x.dims[2] == 5);
        CHECK(y.ndim == 3 && tview_count(&y) == 60);
        int neg = 0, bad = 0;
        for (int i = 0; i < 60; i++) {
            float xi = tview_f(&x)[i];
            neg += xi < 0;
            bad += tview_f(&y)[i] != (xi > 0 ? xi : 0.0f);
        }
        CHECK_EQ_INT(bad, 0);
        CHECK(neg > 5 && neg < 55); /* both sides of the kink are exercised */
    }
    if (rc == 0)
        free(x.data);
    if (rc2 == 0)
        free(y.data);

    /* The same bytes from memory; then every prefix of them. */
    FILE *f = fopen(RELU_CASE "input_0.pb", "rb");
    CHECK(f != NULL);
    if (!f)
        return;
    uint8_t bytes[4096];
    size_t n = fread(bytes, 1, sizeof bytes, f);
    fclose(f);
    struct tview t;
    CHECK(onnx_read_tensor_bytes(&t, bytes, n, err) == 0 && tview_count(&t) == 60);
    free(t.data);
    for (size_t k = 0; k < n; k++) {
        uint8_t *p = malloc(k ? k : 1);
        memcpy(p, bytes, k);
        rc = onnx_read_tensor_bytes(&t, p, k, err);
        CHECK(rc < 0 || (rc == 0 && t.data != NULL));
        if (rc == 0)
            free(t.data);
        else
            CHECK(t.data == NULL);
        free(p);
    }
}

TEST(read_tensor_other_values)
{
    /* An OptionalProto / SequenceProto starts with its name, field 1, as a
     * string; field 2 is its element kind. Such a file is unsupported. */
    const uint8_t seq[] = {0x0a, 0x03, 's', 'e', 'q', 0x10, 0x01};
    struct tview t;
    char err[STRATA_ERR_LEN];
    int rc = onnx_read_tensor_bytes(&t, seq, sizeof seq, err);
    CHECK_MSG(rc == STRATA_E_UNSUPPORTED && strstr(err, "sequence"), "rc %d: %s", rc, err);
    CHECK(t.data == NULL);
    /* An empty optional: no element type. */
    const uint8_t opt[] = {0x0a, 0x01, 'o', 0x10, 0x00};
    rc = onnx_read_tensor_bytes(&t, opt, sizeof opt, err);
    CHECK_MSG(rc == STRATA_E_UNSUPPORTED, "rc %d: %s", rc, err);
    const char *real = "/usr/share/libonnx-testdata/data/node/test_sequence_insert_at_back/"
                       "test_data_set_0/input_0.pb";
    if (access(real, R_OK) == 0) {
        rc = onnx_read_tensor(&t, real, err);
        CHECK_MSG(rc == STRATA_E_UNSUPPORTED && strstr(err, real), "rc %d: %s", rc, err);
    }
    /* A scalar int64 tensor written by hand: dims none, data_type 7,
     * int64_data [-3] (packed, field 7). */
    const uint8_t scalar[] = {0x10, 0x07, 0x3a, 0x0a, 0xfd, 0xff, 0xff, 0xff, 0xff,
                              0xff, 0xff, 0xff, 0xff, 0x01};
    rc = onnx_read_tensor_bytes(&t, scalar, sizeof scalar, err);
    CHECK_MSG(rc == 0, "%s", err);
    CHECK(rc || (t.dtype == DTYPE_INT64 && t.ndim == 0 && tview_i(&t)[0] == -3));
    if (rc == 0)
        free(t.data);
}

int main(void)
{
    RUN(conv_relu_model);
    RUN(initializer_conversions);
    RUN(unsupported_initializers);
    RUN(shape_checks);
    RUN(opsets);
    RUN(other_domains_listed_as_unsupported);
    RUN(inputs);
    RUN(attributes);
    RUN(wiring);
    RUN(external_data);
    RUN(identity_of_an_initializer_is_an_initializer_of_its_own);
    RUN(every_prefix_and_byte_flip);
    RUN(hostile_bytes);
    if (access(RELU_CASE "input_0.pb", R_OK) == 0) {
        RUN(read_tensor_relu_case);
    } else {
        SKIP(read_tensor_relu_case, "libonnx-testdata is not installed");
    }
    RUN(read_tensor_other_values);
    return check_done();
}
