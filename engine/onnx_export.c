/*
 * onnx_export.c — strata's own models as ONNX files (see
 * onnx_export.h), built as protobuf-c messages and packed once.
 *
 * Every string, array and message is allocated through one list owned by
 * the export (struct out) and freed together at the end, so no error path
 * has to unpick a half-built message tree.
 *
 * Layouts: strata keeps a convolution kernel as [k][k][cin/groups][filters]
 * (HWIO) and feature maps channels last; ONNX wants
 * [filters][cin/groups][k][k] and channels first. Kernels are transposed on
 * the way out; the feature maps
 * need nothing until a Flatten, whose order must stay strata's (h, w, c):
 * a Transpose to channels last goes before it. Dense kernels are [in][units]
 * in strata; they are written [units][in] with transB = 1, PyTorch's form.
 */
#include "onnx_export.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers/layer.h"
#include "onnx.pb-c.h"

struct out {
    void **owned;
    size_t n_owned, cap_owned;
    Onnx__NodeProto **nodes;
    size_t n_nodes, cap_nodes;
    Onnx__TensorProto **inits;
    size_t n_inits, cap_inits;
    int failed;
};

/* Zeroed memory owned by the export; NULL (and failed set) when out of it. */
static void *out_alloc(struct out *o, size_t bytes)
{
    if (o->failed)
        return NULL;
    if (o->n_owned == o->cap_owned) {
        size_t cap = o->cap_owned ? 2 * o->cap_owned : 64;
        void **grown = realloc(o->owned, cap * sizeof *grown);
        if (!grown) {
            o->failed = 1;
            return NULL;
        }
        o->owned = grown, o->cap_owned = cap;
    }
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p) {
        o->failed = 1;
        return NULL;
    }
    return o->owned[o->n_owned++] = p;
}

static char *out_str(struct out *o, const char *s)
{
    char *p = out_alloc(o, strlen(s) + 1);
    if (p)
        memcpy(p, s, strlen(s) + 1);
    return p;
}

/* Appends p to a growing array of pointers (nodes or initializers). */
static void out_push(struct out *o, void ***arr, size_t *n, size_t *cap, void *p)
{
    if (o->failed || !p)
        return;
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 32;
        void **grown = realloc(*arr, c * sizeof *grown);
        if (!grown) {
            o->failed = 1;
            return;
        }
        *arr = grown, *cap = c;
    }
    (*arr)[(*n)++] = p;
}

/* ---- initializers ------------------------------------------------------------ */

/* A float initializer `name` of the given dims; its data (floats, copied). */
static void add_init(struct out *o, const char *name, int ndim, const int64_t *dims,
                     const float *data)
{
    Onnx__TensorProto *t = out_alloc(o, sizeof *t);
    int64_t *d = out_alloc(o, (size_t)ndim * sizeof *d);
    size_t count = 1;
    for (int i = 0; i < ndim; i++)
        count *= (size_t)dims[i];
    float *copy = out_alloc(o, count * sizeof *copy);
    char *n = out_str(o, name);
    if (!t || !d || !copy || !n)
        return;
    onnx__tensor_proto__init(t);
    memcpy(d, dims, (size_t)ndim * sizeof *d);
    memcpy(copy, data, count * sizeof *copy);
    t->name = n;
    t->n_dims = (size_t)ndim;
    t->dims = d;
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    t->has_raw_data = 1;
    t->raw_data.data = (uint8_t *)copy; /* little-endian floats, as ONNX stores them */
    t->raw_data.len = count * sizeof *copy;
    out_push(o, (void ***)&o->inits, &o->n_inits, &o->cap_inits, t);
}

/* ---- nodes ------------------------------------------------------------------- */

static Onnx__AttributeProto *attr_new(struct out *o, const char *name,
                                      Onnx__AttributeProto__AttributeType type)
{
    Onnx__AttributeProto *a = out_alloc(o, sizeof *a);
    char *n = out_str(o, name);
    if (!a || !n)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = n;
    a->has_type = 1;
    a->type = type;
    return a;
}

static Onnx__AttributeProto *attr_ints2(struct out *o, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = attr_new(o, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *ints = out_alloc(o, 2 * sizeof *ints);
    if (!a || !ints)
        return NULL;
    ints[0] = ints[1] = v;
    a->n_ints = 2;
    a->ints = ints;
    return a;
}

static Onnx__AttributeProto *attr_ints(struct out *o, const char *name, int n, const int64_t *v)
{
    Onnx__AttributeProto *a = attr_new(o, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *ints = out_alloc(o, (size_t)n * sizeof *ints);
    if (!a || !ints)
        return NULL;
    memcpy(ints, v, (size_t)n * sizeof *ints);
    a->n_ints = (size_t)n;
    a->ints = ints;
    return a;
}

static Onnx__AttributeProto *attr_int(struct out *o, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = attr_new(o, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a)
        a->has_i = 1, a->i = v;
    return a;
}

static Onnx__AttributeProto *attr_float(struct out *o, const char *name, float v)
{
    Onnx__AttributeProto *a = attr_new(o, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a)
        a->has_f = 1, a->f = v;
    return a;
}

static Onnx__AttributeProto *attr_string(struct out *o, const char *name, const char *v)
{
    Onnx__AttributeProto *a = attr_new(o, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    char *s = out_str(o, v);
    if (!a || !s)
        return NULL;
    a->has_s = 1;
    a->s.data = (uint8_t *)s;
    a->s.len = strlen(v);
    return a;
}

/* Adds node `name` of `op` from the inputs (NULL-terminated) to `output`,
 * with up to four attributes (NULL ones are left out). */
static void add_node(struct out *o, const char *op, const char *name, const char *const *inputs,
                     const char *output, Onnx__AttributeProto *a0, Onnx__AttributeProto *a1,
                     Onnx__AttributeProto *a2, Onnx__AttributeProto *a3)
{
    Onnx__NodeProto *n = out_alloc(o, sizeof *n);
    size_t n_in = 0;
    while (inputs[n_in])
        n_in++;
    char **in = out_alloc(o, n_in * sizeof *in);
    char **outs = out_alloc(o, sizeof *outs);
    Onnx__AttributeProto **attrs = out_alloc(o, 4 * sizeof *attrs);
    if (!n || !in || !outs || !attrs)
        return;
    onnx__node_proto__init(n);
    n->op_type = out_str(o, op);
    n->name = out_str(o, name);
    for (size_t i = 0; i < n_in; i++)
        in[i] = out_str(o, inputs[i]);
    outs[0] = out_str(o, output);
    n->n_input = n_in;
    n->input = in;
    n->n_output = 1;
    n->output = outs;
    Onnx__AttributeProto *all[4] = {a0, a1, a2, a3};
    for (int i = 0; i < 4; i++)
        if (all[i])
            attrs[n->n_attribute++] = all[i];
    n->attribute = attrs;
    out_push(o, (void ***)&o->nodes, &o->n_nodes, &o->cap_nodes, n);
}

/* A node with one input and one output. */
static void add_unary(struct out *o, const char *op, const char *name, const char *in,
                      const char *output, Onnx__AttributeProto *a0)
{
    const char *inputs[] = {in, NULL};
    add_node(o, op, name, inputs, output, a0, NULL, NULL, NULL);
}

/* ---- the model --------------------------------------------------------------- */

/* The fused activation of layer l after `value`, into a new value; returns
 * the name of what comes out (value itself when there is none). */
static const char *add_activation(struct out *o, const struct layer *l, const char *value,
                                  char *buf, size_t cap)
{
    if (l->cfg.activation == ACT_RELU6) {
        /* Clip, its bounds inputs (opset 11 on) */
        char lo[96], hi[96];
        snprintf(lo, sizeof lo, "%s/relu6_min", l->cfg.name);
        snprintf(hi, sizeof hi, "%s/relu6_max", l->cfg.name);
        add_init(o, lo, 0, (int64_t[]){1}, (const float[]){0.0f}); /* scalars */
        add_init(o, hi, 0, (int64_t[]){1}, (const float[]){6.0f});
        snprintf(buf, cap, "%s/Relu6", l->cfg.name);
        add_node(o, "Clip", buf, (const char *[]){value, lo, hi, NULL}, buf, NULL, NULL, NULL,
                 NULL);
        return buf;
    }
    if (l->cfg.activation == ACT_HARDSWISH) {
        /* x · HardSigmoid(x; 1/6, 1/2): HardSwish itself is opset 14 */
        char gate[96];
        snprintf(gate, sizeof gate, "%s/HardSigmoid", l->cfg.name);
        add_unary(o, "HardSigmoid", gate, value, gate, attr_float(o, "alpha", 1.0f / 6.0f));
        snprintf(buf, cap, "%s/HardSwish", l->cfg.name);
        add_node(o, "Mul", buf, (const char *[]){value, gate, NULL}, buf, NULL, NULL, NULL, NULL);
        return buf;
    }
    const char *op = l->cfg.activation == ACT_RELU      ? "Relu"
                     : l->cfg.activation == ACT_SIGMOID ? "Sigmoid"
                     : l->cfg.activation == ACT_SOFTMAX ? "Softmax"
                                                        : NULL;
    if (!op)
        return value;
    snprintf(buf, cap, "%s/%s", l->cfg.name, op);
    /* softmax over the channels: axis 1 both for [N, C] and [N, C, H, W] */
    add_unary(o, op, buf, value, buf,
              l->cfg.activation == ACT_SOFTMAX ? attr_int(o, "axis", 1) : NULL);
    return buf;
}

static Onnx__ValueInfoProto *value_info(struct out *o, const char *name, int ndim,
                                        const int64_t *dims)
{
    Onnx__ValueInfoProto *vi = out_alloc(o, sizeof *vi);
    Onnx__TypeProto *tp = out_alloc(o, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = out_alloc(o, sizeof *tt);
    Onnx__TensorShapeProto *sh = out_alloc(o, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dim = out_alloc(o, (size_t)ndim * sizeof *dim);
    if (!vi || !tp || !tt || !sh || !dim)
        return NULL;
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    for (int i = 0; i < ndim; i++) {
        Onnx__TensorShapeProto__Dimension *d = out_alloc(o, sizeof *d);
        if (!d)
            return NULL;
        onnx__tensor_shape_proto__dimension__init(d);
        if (dims[i] < 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = out_str(o, "batch");
        }
        else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i];
        }
        dim[i] = d;
    }
    sh->n_dim = (size_t)ndim;
    sh->dim = dim;
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sh;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    vi->name = out_str(o, name);
    vi->type = tp;
    return vi;
}

/* Add or Concat of layer l's inputs ins[0 … n_inputs) (in_rank4[k]: whether
 * each is still a feature map, else [N, C]); returns the name of the output
 * (in buf_out, or buf_act after a fused activation). Inputs of 1×1 maps
 * given in both forms are flattened to [N, C] first: the same values.
 * flat[2 · LAYER_MAX_INPUTS] is scratch for the names of the values in
 * between. */
static const char *add_join(struct out *o, const struct layer *l, const char *const *ins,
                            const int *in_rank4, char (*flat)[96], char *buf_out, char *buf_act,
                            size_t cap, int *rank4)
{
    const char *names[LAYER_MAX_INPUTS + 1] = {0};
    int all4 = 1;
    for (int k = 0; k < l->n_inputs; k++)
        all4 &= in_rank4[k];
    for (int k = 0; k < l->n_inputs; k++) {
        names[k] = ins[k];
        if (!all4 && in_rank4[k]) {
            snprintf(flat[k], sizeof flat[k], "%s/flat%d", l->cfg.name, k);
            add_unary(o, "Flatten", flat[k], ins[k], flat[k], attr_int(o, "axis", 1));
            names[k] = flat[k];
        }
    }
    *rank4 = all4;
    if (l->cfg.kind == LAYER_ADD) {
        /* a chain of two-input Adds: Add in opset 13 takes exactly two */
        const char *acc = names[0];
        for (int k = 1; k < l->n_inputs; k++) {
            const int last = k == l->n_inputs - 1;
            char *dst = last ? buf_out : flat[LAYER_MAX_INPUTS + k];
            snprintf(dst, last ? cap : sizeof flat[0], last ? "%s/add" : "%s/add%d", l->cfg.name,
                     k);
            add_node(o, "Add", dst, (const char *[]){acc, names[k], NULL}, dst, NULL, NULL, NULL,
                     NULL);
            acc = dst;
        }
        return add_activation(o, l, buf_out, buf_act, cap);
    }
    snprintf(buf_out, cap, "%s/concat", l->cfg.name);
    add_node(o, "Concat", buf_out, names, buf_out, attr_int(o, "axis", 1), NULL, NULL, NULL);
    return buf_out;
}

/* Adds layer l's nodes after `value` (its name in buf_in); returns the name
 * of its output (in buf_out, or value itself for a layer that adds nothing).
 * *rank4 says whether the value is still a feature map. */
static const char *add_layer(struct out *o, const struct layer *l, const char *value,
                             char *buf_out, char *buf_act, size_t cap, int *rank4)
{
    const struct layer_config *c = &l->cfg;
    char wname[96], bname[96], m[96], v[96];
    switch (c->kind) {
    case LAYER_CONV2D: {
        /* cin: the channels one filter reads (all of them, or its group's) */
        const int k = c->kernel, cin = l->in.c / c->groups, f = c->filters;
        float *oihw = out_alloc(o, (size_t)f * cin * k * k * sizeof *oihw);
        if (!oihw)
            return value;
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++)
                for (int ci = 0; ci < cin; ci++)
                    for (int fo = 0; fo < f; fo++)
                        oihw[((size_t)(fo * cin + ci) * k + ky) * k + kx] =
                            l->w.kernel[(((size_t)ky * k + kx) * cin + ci) * f + fo];
        snprintf(wname, sizeof wname, "%s/kernel", c->name);
        add_init(o, wname, 4, (int64_t[]){f, cin, k, k}, oihw);
        const char *inputs[4] = {value, wname, NULL, NULL};
        if (c->use_bias) {
            snprintf(bname, sizeof bname, "%s/bias", c->name);
            add_init(o, bname, 1, (int64_t[]){f}, l->w.bias);
            inputs[2] = bname;
        }
        snprintf(buf_out, cap, "%s/conv", c->name);
        add_node(o, "Conv", buf_out, inputs, buf_out, attr_ints2(o, "kernel_shape", k),
                 attr_ints2(o, "strides", c->stride),
                 attr_string(o, "auto_pad", c->padding == PADDING_SAME ? "SAME_UPPER" : "VALID"),
                 c->groups > 1 ? attr_int(o, "group", c->groups) : NULL);
        return add_activation(o, l, buf_out, buf_act, cap);
    }
    case LAYER_BATCH_NORM: {
        const int ch = l->in.c;
        const char *names[4] = {"gamma", "beta", "moving_mean", "moving_variance"};
        const float *data[4] = {l->w.gamma, l->w.beta, l->w.moving_mean, l->w.moving_var};
        char pn[4][96];
        for (int i = 0; i < 4; i++) {
            snprintf(pn[i], sizeof pn[i], "%s/%s", c->name, names[i]);
            add_init(o, pn[i], 1, (int64_t[]){ch}, data[i]);
        }
        const char *inputs[] = {value, pn[0], pn[1], pn[2], pn[3], NULL};
        snprintf(buf_out, cap, "%s/bn", c->name);
        /* ONNX's momentum is Keras's: the weight of the old running value */
        add_node(o, "BatchNormalization", buf_out, inputs, buf_out,
                 attr_float(o, "epsilon", c->epsilon), attr_float(o, "momentum", c->momentum),
                 NULL, NULL);
        return add_activation(o, l, buf_out, buf_act, cap);
    }
    case LAYER_MAXPOOL2D:
        snprintf(buf_out, cap, "%s/pool", c->name);
        add_node(o, "MaxPool", buf_out, (const char *[]){value, NULL}, buf_out,
                 attr_ints2(o, "kernel_shape", c->pool), attr_ints2(o, "strides", c->stride),
                 attr_string(o, "auto_pad", c->padding == PADDING_SAME ? "SAME_UPPER" : "VALID"),
                 NULL);
        return buf_out;
    case LAYER_GLOBAL_AVG_POOL:
        /* [N, C, 1, 1], then [N, C]: the same order channels last or first */
        snprintf(m, sizeof m, "%s/pool", c->name);
        add_unary(o, "GlobalAveragePool", m, value, m, NULL);
        snprintf(buf_out, cap, "%s/flat", c->name);
        add_unary(o, "Flatten", buf_out, m, buf_out, attr_int(o, "axis", 1));
        *rank4 = 0;
        return buf_out;
    case LAYER_FLATTEN:
        if (!*rank4)
            return value;
        /* strata flattens (h, w, c): channels last first */
        snprintf(v, sizeof v, "%s/nhwc", c->name);
        add_unary(o, "Transpose", v, value, v, attr_ints(o, "perm", 4, (int64_t[]){0, 2, 3, 1}));
        snprintf(buf_out, cap, "%s/flat", c->name);
        add_unary(o, "Flatten", buf_out, v, buf_out, attr_int(o, "axis", 1));
        *rank4 = 0;
        return buf_out;
    case LAYER_DENSE: {
        const char *x = value;
        if (*rank4) { /* a dense layer straight after a feature map reads it flattened */
            snprintf(v, sizeof v, "%s/nhwc", c->name);
            add_unary(o, "Transpose", v, value, v,
                      attr_ints(o, "perm", 4, (int64_t[]){0, 2, 3, 1}));
            snprintf(m, sizeof m, "%s/flat", c->name);
            add_unary(o, "Flatten", m, v, m, attr_int(o, "axis", 1));
            x = m;
            *rank4 = 0;
        }
        /* [units][in] with transB = 1, as PyTorch writes a Linear layer */
        const int in = (int)shape_size(l->in), units = c->units;
        float *t = out_alloc(o, (size_t)in * units * sizeof *t);
        if (!t)
            return value;
        for (int i = 0; i < in; i++)
            for (int u = 0; u < units; u++)
                t[(size_t)u * in + i] = l->w.kernel[(size_t)i * units + u];
        snprintf(wname, sizeof wname, "%s/kernel", c->name);
        add_init(o, wname, 2, (int64_t[]){units, in}, t);
        const char *inputs[4] = {x, wname, NULL, NULL};
        if (c->use_bias) {
            snprintf(bname, sizeof bname, "%s/bias", c->name);
            add_init(o, bname, 1, (int64_t[]){units}, l->w.bias);
            inputs[2] = bname;
        }
        snprintf(buf_out, cap, "%s/gemm", c->name);
        add_node(o, "Gemm", buf_out, inputs, buf_out, attr_int(o, "transB", 1), NULL, NULL, NULL);
        return add_activation(o, l, buf_out, buf_act, cap);
    }
    case LAYER_DROPOUT: {
        /* the identity at inference; written so that training on the graph
         * drops (opset 13: the ratio is an input) */
        snprintf(wname, sizeof wname, "%s/ratio", c->name);
        add_init(o, wname, 0, (int64_t[]){1}, &c->rate); /* a scalar */
        snprintf(buf_out, cap, "%s/dropout", c->name);
        add_node(o, "Dropout", buf_out, (const char *[]){value, wname, NULL}, buf_out, NULL, NULL,
                 NULL, NULL);
        return buf_out;
    }
    case LAYER_RELU:
    case LAYER_SIGMOID:
    case LAYER_SOFTMAX: {
        const char *op = c->kind == LAYER_RELU ? "Relu" : c->kind == LAYER_SIGMOID ? "Sigmoid"
                                                                                 : "Softmax";
        snprintf(buf_out, cap, "%s/%s", c->name, op);
        add_unary(o, op, buf_out, value, buf_out,
                  c->kind == LAYER_SOFTMAX ? attr_int(o, "axis", 1) : NULL);
        return buf_out;
    }
    case LAYER_ADD:
    case LAYER_CONCAT: /* add_join */
    case LAYER_KIND_COUNT:
        break;
    }
    return value;
}

/* The model's class names as a JSON array (malloc'd), or NULL. */
static char *classes_json(const struct model *m)
{
    json_t *a = json_array();
    for (int i = 0; a && i < m->n_classes; i++)
        if (json_array_append_new(a, json_string(m->classes[i])) < 0) {
            json_decref(a);
            return NULL;
        }
    char *s = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return s;
}

/* n floats as a JSON array of numbers (malloc'd), or NULL. */
static char *floats_json(const float *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_real((double)v[i])) < 0) {
            json_decref(a);
            return NULL;
        }
    char *s = a ? json_dumps(a, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(a);
    return s;
}

int onnx_export_bytes(const struct model *m, uint8_t **bytes_out, size_t *len_out,
                      char (*layer_values)[ONNX_EXPORT_NAME_LEN], char *err)
{
    *bytes_out = NULL;
    *len_out = 0;
    if (m->onnx[0])
        return strata_fail(err, STRATA_E_ARG,
                           "model '%s' was imported from ONNX: its file %s/%s is the export",
                           m->id, m->dir, m->onnx);
    struct out o = {0};
    char *meta_values[4] = {0}; /* the metadata's values, made before packing */
    /* each layer's value names live until the model is packed: two buffers
     * per layer (its output and its activation's) */
    char (*names)[2][ONNX_EXPORT_NAME_LEN] = calloc((size_t)m->n_layers + 1, sizeof *names);
    if (!names)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory exporting '%s'", m->id);
    /* each layer's output value and whether it is still a feature map */
    const char **values = calloc((size_t)m->n_layers + 1, sizeof *values);
    int *ranks4 = calloc((size_t)m->n_layers + 1, sizeof *ranks4);
    if (!values || !ranks4) {
        free(values);
        free(ranks4);
        free(names);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory exporting '%s'", m->id);
    }
    const char *value = "input";
    for (int i = 0; i < m->n_layers; i++) {
        const struct layer *l = &m->layers[i];
        const char *ins[LAYER_MAX_INPUTS];
        int in_rank4[LAYER_MAX_INPUTS];
        for (int k = 0; k < l->n_inputs; k++) {
            ins[k] = l->inputs[k] < 0 ? "input" : values[l->inputs[k]];
            in_rank4[k] = l->inputs[k] < 0 ? 1 : ranks4[l->inputs[k]];
        }
        int rank4 = in_rank4[0];
        if (layer_ops_of(l->cfg.kind)->joins) {
            char flat[2 * LAYER_MAX_INPUTS][96];
            value = add_join(&o, l, ins, in_rank4, flat, names[i][0], names[i][1],
                             sizeof names[i][0], &rank4);
        } else {
            value = add_layer(&o, l, ins[0], names[i][0], names[i][1], sizeof names[i][0], &rank4);
        }
        values[i] = value;
        ranks4[i] = rank4;
        if (layer_values)
            snprintf(layer_values[i], ONNX_EXPORT_NAME_LEN, "%s", value);
    }
    free(ranks4);
    /* the last value keeps a name of its own */
    add_unary(&o, "Identity", "output", value, "probabilities", NULL);

    Onnx__GraphProto graph = ONNX__GRAPH_PROTO__INIT;
    Onnx__ModelProto model = ONNX__MODEL_PROTO__INIT;
    Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT;
    Onnx__OperatorSetIdProto *opsets[1] = {&opset};
    Onnx__ValueInfoProto *in = value_info(&o, "input", 4,
                                          (int64_t[]){-1, 3, m->input.h, m->input.w});
    Onnx__ValueInfoProto *out = value_info(&o, "probabilities", 2, (int64_t[]){-1, m->n_classes});
    int rc = 0;
    if (o.failed || !in || !out) {
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory exporting '%s'", m->id);
        goto done;
    }
    graph.name = (char *)m->id;
    graph.n_node = o.n_nodes;
    graph.node = o.nodes;
    graph.n_initializer = o.n_inits;
    graph.initializer = o.inits;
    graph.n_input = 1;
    graph.input = &in;
    graph.n_output = 1;
    graph.output = &out;
    opset.domain = "";
    opset.has_version = 1;
    opset.version = 13;
    model.has_ir_version = 1;
    model.ir_version = 7;
    model.producer_name = "strata";
    model.n_opset_import = 1;
    model.opset_import = opsets;
    model.graph = &graph;
    /* what ONNX does not say, for whoever imports the file: strata's own
     * import reads these when it is not told otherwise */
    Onnx__StringStringEntryProto meta[4], *meta_ptrs[4];
    const char *keys[4] = {"strata.classes", "strata.mean", "strata.std", "strata.title"};
    meta_values[0] = classes_json(m);
    meta_values[1] = floats_json(m->mean, 3);
    meta_values[2] = floats_json(m->std, 3);
    meta_values[3] = strdup(m->title);
    for (int i = 0; i < 4; i++) {
        if (!meta_values[i]) {
            rc = strata_fail(err, STRATA_E_NOMEM, "out of memory exporting '%s'", m->id);
            goto done;
        }
        onnx__string_string_entry_proto__init(&meta[i]);
        meta[i].key = (char *)keys[i];
        meta[i].value = meta_values[i];
        meta_ptrs[i] = &meta[i];
    }
    model.n_metadata_props = 4;
    model.metadata_props = meta_ptrs;

    size_t len = onnx__model_proto__get_packed_size(&model);
    uint8_t *bytes = malloc(len ? len : 1);
    if (!bytes) {
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory: the ONNX file of '%s' is %zu bytes",
                         m->id, len);
        goto done;
    }
    onnx__model_proto__pack(&model, bytes);
    *bytes_out = bytes;
    *len_out = len;
done:
    for (size_t i = 0; i < o.n_owned; i++)
        free(o.owned[i]);
    free(o.owned);
    free(o.nodes);
    free(o.inits);
    free(names);
    free(values);
    for (int k = 0; k < 4; k++)
        free(meta_values[k]);
    return rc;
}

int onnx_export(const struct model *m, const char *path, char *err)
{
    uint8_t *bytes;
    size_t len;
    int rc = onnx_export_bytes(m, &bytes, &len, NULL, err);
    if (rc < 0)
        return rc;
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(bytes, 1, len, f) != len) {
        rc = strata_fail(err, STRATA_E_IO, "%s: cannot write: %s", path, strerror(errno));
        if (f)
            fclose(f);
    }
    else if (fclose(f) != 0)
        rc = strata_fail(err, STRATA_E_IO, "%s: cannot write: %s", path, strerror(errno));
    free(bytes);
    return rc;
}
