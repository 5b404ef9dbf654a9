/*
 * test_graph.c — the graph executor: building, checking, planning, running
 * and differentiating graphs put together by hand.
 *
 * Evidence:
 *  - a residual graph (Conv, Tanh, Conv, Add, GlobalAveragePool, Flatten,
 *    Gemm) differentiated end to end against central finite differences of
 *    L = sum(w * output), for the input and for every weight: this checks how
 *    the executor chains the ops' backwards, sums the gradients of a value read
 *    twice (the skip connection) and reaches initializers;
 *  - a batch of 3 gives, image by image, what three batches of 1 give;
 *  - the Shape -> Gather -> Unsqueeze -> Concat -> Reshape subgraph of a
 *    dynamic batch is folded into the plan (its nodes are static and never
 *    run per batch) and still gives the right shape at every batch size;
 *  - refusals: a cycle, every unsupported op listed at once, an input nobody
 *    produces, a batch larger than the workspace was sized for;
 *  - Relu and Clip fused into the Conv before them give, bit for bit, what
 *    the two nodes give apart (with strata's sgemm and with the fallback), and
 *    are not fused where the Conv's output is read (a graph output, a value
 *    the caller keeps) or gradients are wanted; Mul(x, Sigmoid(x)) run as
 *    one node gives what the two give; a 2×2 MaxPool at stride 2 computed
 *    inside the Conv before it (with or without a BatchNormalization and a
 *    Relu between) gives what the nodes give apart, on F(4×4), F(2×2) and
 *    direct shapes cut at odd edges;
 *  - Flatten and Reshape view their input's bytes where the workspace owns
 *    them, and copy the caller's input or where gradients are wanted;
 *  - a Transpose to channels last flattened for a Gemm is folded into the
 *    Gemm's weights: the same outputs, with B either way round;
 *  - a view (graph_view) of the part after a value gives, from that value as
 *    the full graph computed it, the full graph's output bit for bit; a view
 *    of the first nodes plans at an image size the graph does not declare;
 *    a part that needs a second value, or does not read the first, is
 *    refused naming the value.
 */
#include "check.h"
#include "graph.h"
#include "sgemm.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- building graphs by hand ----------------------------------------------- */

static uint64_t seed_state = 99;

static float uniform(void)
{
    seed_state ^= seed_state << 13;
    seed_state ^= seed_state >> 7;
    seed_state ^= seed_state << 17;
    return (float)((seed_state >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static int value(struct graph *g, const char *name)
{
    int v = graph_find_value(g, name);
    if (v < 0)
        v = graph_add_value(g, name, VALUE_NODE, NULL);
    return v;
}

static void input(struct graph *g, const char *name, int ndim, const int64_t *dims)
{
    int v = graph_add_value(g, name, VALUE_INPUT, NULL);
    g->values[v].init.dtype = DTYPE_FLOAT;
    g->values[v].init.ndim = ndim;
    memcpy(g->values[v].init.dims, dims, (size_t)ndim * sizeof *dims);
    g->inputs = realloc(g->inputs, (size_t)(g->n_inputs + 1) * sizeof *g->inputs);
    g->inputs[g->n_inputs++] = v;
}

static void output(struct graph *g, const char *name)
{
    g->outputs = realloc(g->outputs, (size_t)(g->n_outputs + 1) * sizeof *g->outputs);
    g->outputs[g->n_outputs++] = value(g, name);
}

static void weight(struct graph *g, const char *name, int ndim, const int64_t *dims)
{
    int v = graph_add_value(g, name, VALUE_INITIALIZER, NULL);
    struct tview *t = &g->values[v].init;
    t->dtype = DTYPE_FLOAT;
    t->ndim = ndim;
    memcpy(t->dims, dims, (size_t)ndim * sizeof *dims);
    int64_t n = tview_count(t);
    float *p = malloc((size_t)n * sizeof *p);
    for (int64_t i = 0; i < n; i++)
        p[i] = 0.5f * uniform();
    t->data = p;
}

static void int_const(struct graph *g, const char *name, int n, const int64_t *vals)
{
    int v = graph_add_value(g, name, VALUE_INITIALIZER, NULL);
    struct tview *t = &g->values[v].init;
    t->dtype = DTYPE_INT64;
    t->ndim = 1;
    t->dims[0] = n;
    t->data = malloc((size_t)n * sizeof(int64_t));
    memcpy(t->data, vals, (size_t)n * sizeof(int64_t));
}

/* Adds node `name` of `op` reading the comma-separated inputs ("" = absent)
 * and writing one output named `out`. */
static struct node *node(struct graph *g, const char *op, const char *name, const char *ins,
                         const char *out)
{
    int i = graph_add_node(g, NULL);
    struct node *n = &g->nodes[i];
    n->name = strdup(name);
    n->op_type = strdup(op);
    n->opset = 13;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", ins);
    n->inputs = malloc(8 * sizeof *n->inputs);
    for (char *save = NULL, *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save))
        n->inputs[n->n_inputs++] = strcmp(p, "-") == 0 ? -1 : value(g, p);
    n->outputs = malloc(sizeof *n->outputs);
    n->outputs[n->n_outputs++] = value(g, out);
    return n;
}

static void attr_ints(struct node *n, const char *name, int count, const int64_t *v)
{
    n->attrs = realloc(n->attrs, (size_t)(n->n_attrs + 1) * sizeof *n->attrs);
    struct attr *a = &n->attrs[n->n_attrs++];
    memset(a, 0, sizeof *a);
    a->name = strdup(name);
    a->type = ATTR_INTS;
    a->ints = malloc((size_t)count * sizeof *a->ints);
    memcpy(a->ints, v, (size_t)count * sizeof *v);
    a->n = count;
}

static void attr_int(struct node *n, const char *name, int64_t v)
{
    n->attrs = realloc(n->attrs, (size_t)(n->n_attrs + 1) * sizeof *n->attrs);
    struct attr *a = &n->attrs[n->n_attrs++];
    memset(a, 0, sizeof *a);
    a->name = strdup(name);
    a->type = ATTR_INT;
    a->i = v;
}

/* x[N,3,6,6] -> Conv 3x3 pad 1 (4) -> Tanh -> Conv 3x3 pad 1 (4) -> Add(tanh) ->
 * GlobalAveragePool -> Flatten -> Gemm (5 classes). Nodes are added out of
 * order on purpose: graph_finish must sort them. */
static void residual_graph(struct graph *g)
{
    memset(g, 0, sizeof *g);
    input(g, "x", 4, (int64_t[]){-1, 3, 6, 6});
    weight(g, "w1", 4, (int64_t[]){4, 3, 3, 3});
    weight(g, "b1", 1, (int64_t[]){4});
    weight(g, "w2", 4, (int64_t[]){4, 4, 3, 3});
    weight(g, "wf", 2, (int64_t[]){5, 4});
    weight(g, "bf", 1, (int64_t[]){5});
    struct node *n = node(g, "Gemm", "fc", "flat,wf,bf", "logits");
    attr_int(n, "transB", 1);
    node(g, "Flatten", "flatten", "pool", "flat");
    node(g, "GlobalAveragePool", "gap", "sum", "pool");
    node(g, "Add", "add", "c2,r1", "sum");
    n = node(g, "Conv", "conv2", "r1,w2", "c2");
    attr_ints(n, "pads", 4, (int64_t[]){1, 1, 1, 1});
    node(g, "Tanh", "tanh1", "c1", "r1"); /* smooth: finite differences see no kinks */
    n = node(g, "Conv", "conv1", "x,w1,b1", "c1");
    attr_ints(n, "pads", 4, (int64_t[]){1, 1, 1, 1});
    output(g, "logits");
}

static struct tview batch_of(int n, float *data)
{
    return (struct tview){.dtype = DTYPE_FLOAT, .ndim = 4, .dims = {n, 3, 6, 6}, .data = data};
}

/* ---- tests ------------------------------------------------------------------- */

TEST(residual_forward_batch_matches_single_images)
{
    struct graph g;
    residual_graph(&g);
    char err[STRATA_ERR_LEN] = "";
    CHECK_MSG(graph_finish(&g, err) == 0, "%s", err);
    float x[3 * 108];
    for (int i = 0; i < 3 * 108; i++)
        x[i] = uniform();
    struct tview b3 = batch_of(3, x);
    struct graph_ws ws;
    CHECK_MSG(graph_ws_init(&ws, &g, &b3, 0, err) == 0, "%s", err);
    CHECK(graph_run(&ws, &b3, err) == 0);
    int out = g.outputs[0];
    float all[15];
    memcpy(all, graph_value_view(&ws, out)->data, sizeof all);
    CHECK_EQ_INT(graph_value_view(&ws, out)->dims[0], 3);
    CHECK_EQ_INT(graph_value_view(&ws, out)->dims[1], 5);
    for (int i = 0; i < 3; i++) {
        struct tview b1 = batch_of(1, x + i * 108);
        CHECK_MSG(graph_run(&ws, &b1, err) == 0, "%s", err); /* replans at batch 1 */
        for (int k = 0; k < 5; k++)
            CHECK_NEAR(tview_f(graph_value_view(&ws, out))[k], all[i * 5 + k], 1e-5);
    }
    /* larger than sized: refused, not overrun */
    float big[4 * 108] = {0};
    struct tview b4 = batch_of(4, big);
    CHECK(graph_run(&ws, &b4, err) == STRATA_E_LIMIT);
    CHECK(strstr(err, "sized") != NULL);
    graph_ws_free(&ws);
    graph_deinit(&g);
}

/* L = sum(w * logits) for fixed w, in double. */
static double loss(struct graph_ws *ws, const struct graph *g, struct tview *x, const float *w)
{
    char err[STRATA_ERR_LEN];
    graph_run(ws, x, err);
    const struct tview *o = graph_value_view(ws, g->outputs[0]);
    double L = 0;
    for (int64_t i = 0; i < tview_count(o); i++)
        L += (double)w[i] * tview_f(o)[i];
    return L;
}

static int fd_check(struct graph_ws *ws, const struct graph *g, struct tview *x, const float *w,
                    float *p, int64_t n, const float *analytic, const char *what)
{
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float keep = p[i], h = 1e-2f;
        p[i] = keep + h;
        double lp = loss(ws, g, x, w);
        p[i] = keep - h;
        double lm = loss(ws, g, x, w);
        p[i] = keep;
        double num = (lp - lm) / (2.0 * h);
        if (fabs(num - analytic[i]) > 2e-3 + 2e-2 * fabs(num)) {
            if (bad++ < 4)
                printf("#   %s[%lld]: backward %.6g, finite difference %.6g\n", what,
                       (long long)i, analytic[i], num);
        }
    }
    return bad;
}

TEST(residual_backward_matches_finite_differences)
{
    struct graph g;
    residual_graph(&g);
    char err[STRATA_ERR_LEN] = "";
    CHECK_MSG(graph_finish(&g, err) == 0, "%s", err);
    float x[2 * 108], w[10];
    for (int i = 0; i < 2 * 108; i++)
        x[i] = uniform();
    for (int i = 0; i < 10; i++)
        w[i] = uniform();
    struct tview b = batch_of(2, x);
    struct graph_ws ws;
    CHECK_MSG(graph_ws_init(&ws, &g, &b, 1, err) == 0, "%s", err);
    loss(&ws, &g, &b, w);
    CHECK_MSG(graph_backward(&ws, g.outputs[0], w, err) == 0, "%s", err);
    /* copy the analytic gradients before finite differences rerun forward */
    const char *names[] = {"x", "w1", "b1", "w2", "wf", "bf"};
    for (int k = 0; k < 6; k++) {
        int v = graph_find_value(&g, names[k]);
        float *p = k == 0 ? x : tview_f(&g.values[v].init);
        int64_t n = k == 0 ? 2 * 108 : tview_count(&g.values[v].init);
        CHECK(ws.grads[v].data != NULL);
        if (!ws.grads[v].data)
            continue;
        float *an = malloc((size_t)n * sizeof *an);
        memcpy(an, ws.grads[v].data, (size_t)n * sizeof *an);
        double norm = 0;
        for (int64_t i = 0; i < n; i++)
            norm += fabs(an[i]);
        CHECK(norm > 1e-3); /* a gradient that is all zero would pass anything */
        CHECK_EQ_INT(fd_check(&ws, &g, &b, w, p, n, an, names[k]), 0);
        free(an);
    }
    graph_ws_free(&ws);
    graph_deinit(&g);
}

/* x[N,4,2,2] reshaped to [N,16] through the shape arithmetic an exporter
 * writes for x.view(x.size(0), -1). */
TEST(dynamic_batch_shape_arithmetic_is_folded)
{
    struct graph g = {0};
    input(&g, "x", 4, (int64_t[]){-1, 4, 2, 2});
    int_const(&g, "zero", 1, (int64_t[]){0});
    int_const(&g, "minus_one", 1, (int64_t[]){-1});
    node(&g, "Shape", "shape", "x", "s");
    struct node *n = node(&g, "Gather", "gather", "s,zero", "batch");
    attr_int(n, "axis", 0);
    node(&g, "Concat", "concat", "batch,minus_one", "target");
    attr_int(&g.nodes[g.n_nodes - 1], "axis", 0);
    node(&g, "Reshape", "reshape", "x,target", "y");
    node(&g, "Relu", "relu", "y", "out");
    output(&g, "out");
    char err[STRATA_ERR_LEN] = "";
    CHECK_MSG(graph_finish(&g, err) == 0, "%s", err);
    float x[3 * 16];
    for (int i = 0; i < 48; i++)
        x[i] = (float)(i % 7) - 3.0f;
    struct tview in = {.dtype = DTYPE_FLOAT, .ndim = 4, .dims = {3, 4, 2, 2}, .data = x};
    struct graph_ws ws;
    CHECK_MSG(graph_ws_init(&ws, &g, &in, 0, err) == 0, "%s", err);
    int target = graph_find_value(&g, "target"), out = graph_find_value(&g, "out");
    CHECK(ws.is_static[target]);
    CHECK(!ws.is_static[out]);
    for (int b = 3; b >= 1; b -= 2) {
        in.dims[0] = b;
        CHECK_MSG(graph_run(&ws, &in, err) == 0, "%s", err);
        const struct tview *t = graph_value_view(&ws, target);
        CHECK_EQ_INT(tview_i(t)[0], b);
        CHECK_EQ_INT(tview_i(t)[1], -1);
        const struct tview *o = graph_value_view(&ws, out);
        CHECK_EQ_INT(o->ndim, 2);
        CHECK_EQ_INT(o->dims[0], b);
        CHECK_EQ_INT(o->dims[1], 16);
        for (int i = 0; i < b * 16; i++)
            CHECK_NEAR(tview_f(o)[i], x[i] > 0 ? x[i] : 0, 0);
    }
    graph_ws_free(&ws);
    graph_deinit(&g);
}

TEST(refuses_cycles_unknown_ops_and_dangling_inputs)
{
    char err[STRATA_ERR_LEN] = "";
    struct graph g = {0};
    input(&g, "x", 2, (int64_t[]){1, 4});
    node(&g, "Relu", "a", "x,c", "b");
    g.nodes[0].n_inputs = 1;
    node(&g, "Relu", "r2", "b", "c");
    node(&g, "Add", "r3", "c,d", "d");
    output(&g, "d");
    CHECK(graph_finish(&g, err) == STRATA_E_FORMAT);
    CHECK_MSG(strstr(err, "cycle") != NULL, "%s", err);
    graph_deinit(&g);

    memset(&g, 0, sizeof g);
    input(&g, "x", 2, (int64_t[]){1, 4});
    node(&g, "Resize", "up1", "x", "a");
    node(&g, "LSTM", "rnn", "a", "b");
    node(&g, "Resize", "up2", "b", "c");
    output(&g, "c");
    CHECK(graph_finish(&g, err) == STRATA_E_UNSUPPORTED);
    CHECK_MSG(strstr(err, "2 op types") && strstr(err, "Resize (2 nodes: 'up1', 'up2')") &&
                  strstr(err, "LSTM (1 node: 'rnn')"),
              "%s", err);
    graph_deinit(&g);

    memset(&g, 0, sizeof g);
    input(&g, "x", 2, (int64_t[]){1, 4});
    node(&g, "Add", "add", "x,ghost", "y");
    output(&g, "y");
    CHECK(graph_finish(&g, err) == STRATA_E_FORMAT);
    CHECK_MSG(strstr(err, "'ghost' is produced by no node"), "%s", err);
    graph_deinit(&g);
}

/* Runs ws on `in` and copies out the values named names[0 … k), each into
 * a buffer of its own (the caller frees them). */
static void run_and_copy(struct graph_ws *ws, const struct graph *g, const struct tview *in,
                         const char *const *names, int k, float **copies)
{
    char err[STRATA_ERR_LEN] = "";
    CHECK_MSG(graph_run(ws, in, err) == 0, "%s", err);
    for (int i = 0; i < k; i++) {
        const struct tview *t = graph_value_view(ws, graph_find_value(g, names[i]));
        copies[i] = malloc((size_t)tview_count(t) * sizeof(float));
        memcpy(copies[i], t->data, (size_t)tview_count(t) * sizeof(float));
    }
}

/* The batch the fusion tests run: 3 images of 16 × 14 × 13. */
enum { APART_N = 3, APART_LEN = APART_N * 16 * 14 * 13 };

/* Finishes g, fills x[APART_LEN] with uniform values, plans ws for that
 * batch and runs it node by node, copying out the values named
 * names[0 … k). Returns the batch. */
static struct tview run_apart(struct graph *g, struct graph_ws *ws, float *x,
                              const char *const *names, int k, float **apart)
{
    char err[STRATA_ERR_LEN] = "";
    CHECK_MSG(graph_finish(g, err) == 0, "%s", err);
    for (int i = 0; i < APART_LEN; i++)
        x[i] = uniform();
    struct tview in = {.dtype = DTYPE_FLOAT, .ndim = 4, .dims = {APART_N, 16, 14, 13}, .data = x};
    CHECK_MSG(graph_ws_init(ws, g, &in, 0, err) == 0, "%s", err);
    run_and_copy(ws, g, &in, names, k, apart);
    return in;
}

/* x -> Conv 3x3 (16 channels in and out: Winograd's path where sgemm runs)
 * -> Relu -> Conv 1x1 -> Clip [0, 0.3] -> Conv 3x3 stride 2 -> Relu;
 * outputs: the last Relu and the last Conv's own output (so that one is
 * never fused). */
static void conv_act_graph(struct graph *g)
{
    memset(g, 0, sizeof *g);
    input(g, "x", 4, (int64_t[]){-1, 16, 14, 13});
    weight(g, "w1", 4, (int64_t[]){16, 16, 3, 3});
    weight(g, "b1", 1, (int64_t[]){16});
    weight(g, "w2", 4, (int64_t[]){6, 16, 1, 1});
    weight(g, "w3", 4, (int64_t[]){5, 6, 3, 3});
    weight(g, "lo", 0, (int64_t[]){1}); /* scalars: no dims read */
    weight(g, "hi", 0, (int64_t[]){1});
    tview_f(&g->values[graph_find_value(g, "lo")].init)[0] = 0.0f;
    tview_f(&g->values[graph_find_value(g, "hi")].init)[0] = 0.3f;
    struct node *n = node(g, "Conv", "conv1", "x,w1,b1", "c1");
    attr_ints(n, "pads", 4, (int64_t[]){1, 1, 1, 1});
    node(g, "Relu", "relu1", "c1", "r1");
    node(g, "Conv", "conv2", "r1,w2", "c2");
    node(g, "Clip", "clip2", "c2,lo,hi", "r2");
    n = node(g, "Conv", "conv3", "r2,w3", "c3");
    attr_ints(n, "strides", 2, (int64_t[]){2, 2});
    node(g, "Relu", "relu3", "c3", "r3");
    output(g, "r3");
    output(g, "c3");
}

static void fused_matches_apart(const char *mode)
{
    struct graph g;
    conv_act_graph(&g);
    char err[STRATA_ERR_LEN] = "";
    const char *names[] = {"c1", "r1", "r2", "c3", "r3"};
    float *apart[5], x[APART_LEN];
    struct graph_ws ws;
    const struct tview in = run_apart(&g, &ws, x, names, 5, apart);
    int clamped = 0;
    const struct tview *r2 = graph_value_view(&ws, graph_find_value(&g, "r2"));
    for (int64_t i = 0; i < tview_count(r2); i++)
        clamped += apart[2][i] == 0.0f || apart[2][i] == 0.3f;
    CHECK_MSG(clamped > 0, "%s: the Clip never clamped: the test would show nothing", mode);
    graph_ws_free(&ws);

    /* fused: the first two pairs; the third Conv's output is a graph output */
    CHECK_MSG(graph_ws_init(&ws, &g, &in, 0, err) == 0, "%s", err);
    CHECK_EQ_INT(graph_ws_fuse(&ws, NULL, 0), 2);
    CHECK(graph_run(&ws, &in, err) == 0);
    for (int k = 1; k < 5; k++) {
        const struct tview *t = graph_value_view(&ws, graph_find_value(&g, names[k]));
        CHECK_MSG(memcmp(t->data, apart[k], (size_t)tview_count(t) * sizeof(float)) == 0,
                  "%s: %s differs once fused", mode, names[k]);
    }
    /* keeping c1 leaves conv1 and relu1 apart, and c1 up to date */
    const int c1 = graph_find_value(&g, "c1");
    CHECK_EQ_INT(graph_ws_fuse(&ws, &c1, 1), 1);
    CHECK(graph_run(&ws, &in, err) == 0);
    const struct tview *t1 = graph_value_view(&ws, c1);
    CHECK_MSG(memcmp(t1->data, apart[0], (size_t)tview_count(t1) * sizeof(float)) == 0,
              "%s: a kept Conv output is stale", mode);
    /* a batch of one replans (what the Conv keeps between runs is made
     * again): the first image's result */
    struct tview one = in;
    one.dims[0] = 1;
    CHECK(graph_run(&ws, &one, err) == 0);
    const struct tview *r3 = graph_value_view(&ws, graph_find_value(&g, "r3"));
    CHECK_MSG(memcmp(r3->data, apart[4], (size_t)tview_count(r3) * sizeof(float)) == 0,
              "%s: batch 1 after batch 3 differs", mode);
    graph_ws_free(&ws);

    /* with gradients nothing is fused: backward reads every output */
    CHECK_MSG(graph_ws_init(&ws, &g, &in, 1, err) == 0, "%s", err);
    CHECK_EQ_INT(graph_ws_fuse(&ws, NULL, 0), 0);
    graph_ws_free(&ws);
    for (int k = 0; k < 5; k++)
        free(apart[k]);
    graph_deinit(&g);
}

/* fn on strata's sgemm where the CPU has it, then on the fallback. */
static void with_and_without_sgemm(void (*fn)(const char *mode))
{
    if (sgemm_available())
        fn("sgemm");
    sgemm_set_enabled(0);
    fn("fallback");
    sgemm_set_enabled(1);
}

TEST(relu_and_clip_fuse_into_conv)
{
    with_and_without_sgemm(fused_matches_apart);
}

/* Parameters of BatchNormalization `name` over c channels: scale in
 * [0.5, 1.5), shift and mean in [-0.5, 0.5), variance in [0.2, 1.2). */
static void bn_params(struct graph *g, const char *name, int c)
{
    const char *parts[] = {"scale", "shift", "mean", "var"};
    for (int k = 0; k < 4; k++) {
        char v[64];
        snprintf(v, sizeof v, "%s_%s", name, parts[k]);
        weight(g, v, 1, (int64_t[]){c});
        float *p = tview_f(&g->values[graph_find_value(g, v)].init);
        for (int i = 0; i < c; i++)
            p[i] += k == 0 ? 1.0f : k == 3 ? 0.7f : 0.0f;
    }
}

/* x -> Conv 3x3 (16 -> 16, bias; Winograd's path where sgemm runs) -> BN ->
 * Relu -> Conv 1x1 (no bias) -> BN -> Conv 3x3 stride 2 (bias) -> BN ->
 * Relu; outputs: the last Relu and the last BN's own output (so that Relu
 * stays apart). */
static void conv_bn_graph(struct graph *g)
{
    memset(g, 0, sizeof *g);
    input(g, "x", 4, (int64_t[]){-1, 16, 14, 13});
    weight(g, "w1", 4, (int64_t[]){16, 16, 3, 3});
    weight(g, "b1", 1, (int64_t[]){16});
    weight(g, "w2", 4, (int64_t[]){6, 16, 1, 1});
    weight(g, "w3", 4, (int64_t[]){5, 6, 3, 3});
    weight(g, "b3", 1, (int64_t[]){5});
    bn_params(g, "bn1", 16);
    bn_params(g, "bn2", 6);
    bn_params(g, "bn3", 5);
    struct node *n = node(g, "Conv", "conv1", "x,w1,b1", "c1");
    attr_ints(n, "pads", 4, (int64_t[]){1, 1, 1, 1});
    node(g, "BatchNormalization", "bn1", "c1,bn1_scale,bn1_shift,bn1_mean,bn1_var", "n1");
    node(g, "Relu", "relu1", "n1", "r1");
    node(g, "Conv", "conv2", "r1,w2", "c2");
    node(g, "BatchNormalization", "bn2", "c2,bn2_scale,bn2_shift,bn2_mean,bn2_var", "n2");
    n = node(g, "Conv", "conv3", "n2,w3,b3", "c3");
    attr_ints(n, "strides", 2, (int64_t[]){2, 2});
    node(g, "BatchNormalization", "bn3", "c3,bn3_scale,bn3_shift,bn3_mean,bn3_var", "n3");
    node(g, "Relu", "relu3", "n3", "r3");
    output(g, "r3");
    output(g, "n3");
}

/* Largest |a − b| over value `name` of ws against `apart`. */
static double worst_diff(const struct graph_ws *ws, const struct graph *g, const char *name,
                         const float *apart)
{
    const struct tview *t = graph_value_view(ws, graph_find_value(g, name));
    double worst = 0;
    for (int64_t i = 0; i < tview_count(t); i++) {
        const double d = fabs((double)tview_f(t)[i] - apart[i]);
        worst = d > worst ? d : worst;
    }
    return worst;
}

static void folded_matches_apart(const char *mode)
{
    struct graph g;
    conv_bn_graph(&g);
    char err[STRATA_ERR_LEN] = "";
    const char *names[] = {"c1", "r1", "n2", "n3", "r3"};
    float *apart[5], x[APART_LEN];
    struct graph_ws ws;
    const struct tview in = run_apart(&g, &ws, x, names, 5, apart);
    double biggest = 0;
    for (int k = 0; k < 5; k++) {
        const int64_t n = tview_count(graph_value_view(&ws, graph_find_value(&g, names[k])));
        for (int64_t i = 0; i < n; i++)
            biggest = fabs(apart[k][i]) > biggest ? fabs(apart[k][i]) : biggest;
    }
    /* a BN that did nothing would show nothing: bn3 moves its input */
    CHECK_MSG(worst_diff(&ws, &g, "c3", apart[3]) > 0.05, "%s: bn3 is close to identity", mode);

    /* in the same workspace, after a run that made Winograd's weights from
     * the unfolded ones: conv1+bn1+relu1, conv2+bn2, conv3+bn3 (n3 is an
     * output, so relu3 stays apart) */
    CHECK_EQ_INT(graph_ws_fuse(&ws, NULL, 0), 3);
    CHECK(graph_run(&ws, &in, err) == 0);
    /* the same values, rounded otherwise: each output is a sum of at most
     * 144 products of numbers below 2 */
    const double tol = 2e-5 * (1.0 + biggest);
    for (int k = 1; k < 5; k++) {
        const double d = worst_diff(&ws, &g, names[k], apart[k]);
        if (k == 1)
            continue; /* r1 is inside a chain: no longer written */
        CHECK_MSG(d <= tol, "%s: %s differs by %g once folded", mode, names[k], d);
    }
    /* keeping c1 leaves conv1 and bn1 apart, and c1 up to date, bit for bit */
    const int c1 = graph_find_value(&g, "c1");
    CHECK_EQ_INT(graph_ws_fuse(&ws, &c1, 1), 2);
    CHECK(graph_run(&ws, &in, err) == 0);
    CHECK_MSG(worst_diff(&ws, &g, "c1", apart[0]) == 0, "%s: a kept Conv output is stale", mode);
    CHECK_MSG(worst_diff(&ws, &g, "r3", apart[4]) <= tol, "%s: r3 with c1 kept", mode);
    /* a batch of one replans, and folds again: the first image's result */
    CHECK_EQ_INT(graph_ws_fuse(&ws, NULL, 0), 3);
    struct tview one = in;
    one.dims[0] = 1;
    CHECK(graph_run(&ws, &one, err) == 0);
    CHECK_MSG(worst_diff(&ws, &g, "r3", apart[4]) <= tol, "%s: batch 1 after batch 3 differs",
              mode);
    graph_ws_free(&ws);
    for (int k = 0; k < 5; k++)
        free(apart[k]);
    graph_deinit(&g);
}

TEST(batch_norm_folds_into_conv)
{
    with_and_without_sgemm(folded_matches_apart);
}

/* A residual block, x -> Conv -> BN -> Add(x) -> Relu, then Add of a
 * per-channel constant -> Clip [0, 0.3]: each Add runs its activation
 * inside (bit for bit what the activation computes apart), and with the
 * Conv's output not kept the BN folds into the Conv too. */
TEST(relu_and_clip_fuse_into_add)
{
    struct graph g;
    memset(&g, 0, sizeof g);
    input(&g, "x", 4, (int64_t[]){-1, 6, 9, 11});
    weight(&g, "wa", 4, (int64_t[]){6, 6, 3, 3});
    weight(&g, "ba", 1, (int64_t[]){6});
    weight(&g, "shift", 3, (int64_t[]){6, 1, 1});
    weight(&g, "lo", 0, (int64_t[]){1});
    weight(&g, "hi", 0, (int64_t[]){1});
    tview_f(&g.values[graph_find_value(&g, "lo")].init)[0] = 0.0f;
    tview_f(&g.values[graph_find_value(&g, "hi")].init)[0] = 0.3f;
    bn_params(&g, "bna", 6);
    struct node *n = node(&g, "Conv", "conva", "x,wa,ba", "ca");
    attr_ints(n, "pads", 4, (int64_t[]){1, 1, 1, 1});
    node(&g, "BatchNormalization", "bna", "ca,bna_scale,bna_shift,bna_mean,bna_var", "na");
    node(&g, "Add", "sum", "na,x", "s");
    node(&g, "Relu", "relu", "s", "r");
    node(&g, "Add", "plus", "r,shift", "p");
    node(&g, "Clip", "clip", "p,lo,hi", "out");
    output(&g, "out");
    output(&g, "r");
    char err[STRATA_ERR_LEN] = "";
    CHECK_MSG(graph_finish(&g, err) == 0, "%s", err);
    enum { N = 2, LEN = N * 6 * 9 * 11 };
    float x[LEN];
    for (int i = 0; i < LEN; i++)
        x[i] = uniform();
    struct tview in = {.dtype = DTYPE_FLOAT, .ndim = 4, .dims = {N, 6, 9, 11}, .data = x};
    struct graph_ws ws;
    CHECK_MSG(graph_ws_init(&ws, &g, &in, 0, err) == 0, "%s", err);
    CHECK(graph_run(&ws, &in, err) == 0);
    float r[LEN], out[LEN];
    memcpy(r, graph_value_view(&ws, graph_find_value(&g, "r"))->data, sizeof r);
    memcpy(out, graph_value_view(&ws, graph_find_value(&g, "out"))->data, sizeof out);
    int zeros = 0, tops = 0;
    for (int i = 0; i < LEN; i++)
        zeros += r[i] == 0.0f, tops += out[i] == 0.3f;
    CHECK_MSG(zeros > 0 && tops > 0, "nothing was clamped: the test would show nothing");
    /* the Conv's output kept: the two Adds take their activations */
    const int ca = graph_find_value(&g, "ca");
    CHECK_EQ_INT(graph_ws_fuse(&ws, &ca, 1), 2);
    CHECK(graph_run(&ws, &in, err) == 0);
    CHECK_MSG(memcmp(graph_value_view(&ws, graph_find_value(&g, "r"))->data, r, sizeof r) == 0,
              "Add + Relu differs once fused");
    CHECK_MSG(memcmp(graph_value_view(&ws, graph_find_value(&g, "out"))->data, out, sizeof out) == 0,
              "Add + Clip differs once fused");
    /* and with the Conv's output free, the BN folds into it as well */
    CHECK_EQ_INT(graph_ws_fuse(&ws, NULL, 0), 3);
    CHECK(graph_run(&ws, &in, err) == 0);
    CHECK_MSG(worst_diff(&ws, &g, "r", r) <= 2e-5, "Conv + BN, Add + Relu: r differs by %g",
              worst_diff(&ws, &g, "r", r));
    CHECK_MSG(worst_diff(&ws, &g, "out", out) <= 2e-5, "Add + Clip after them: differs by %g",
              worst_diff(&ws, &g, "out", out));
    graph_ws_free(&ws);
    graph_deinit(&g);
}

/* x -> Sigmoid -> Mul(x, s) -> Sigmoid -> Mul(s2, y) (the other operand
 * order) -> Sigmoid -> Mul by the first Mul's output (not x·σ(x): never
 * fused); outputs: the last Mul, and the second Sigmoid's own output (read,
 * so not fused). One pair fuses. */
TEST(silu_fuses_into_sigmoid)
{
    struct graph g;
    memset(&g, 0, sizeof g);
    input(&g, "x", 4, (int64_t[]){-1, 2, 5, 7});
    node(&g, "Sigmoid", "sig1", "x", "s1");
    node(&g, "Mul", "mul1", "x,s1", "y1");
    node(&g, "Sigmoid", "sig2", "y1", "s2");
    node(&g, "Mul", "mul2", "s2,y1", "y2");
    node(&g, "Sigmoid", "sig3", "y2", "s3");
    node(&g, "Mul", "mul3", "s3,y1", "y3");
    output(&g, "y3");
    output(&g, "s2");
    char err[STRATA_ERR_LEN] = "";
    CHECK_MSG(graph_finish(&g, err) == 0, "%s", err);
    float x[2 * 70];
    for (int i = 0; i < 140; i++)
        x[i] = 8.0f * uniform();
    struct tview in = {.dtype = DTYPE_FLOAT, .ndim = 4, .dims = {2, 2, 5, 7}, .data = x};
    const char *names[] = {"y1", "y2", "y3", "s2"};
    float apart[4][140];
    struct graph_ws ws;
    CHECK_MSG(graph_ws_init(&ws, &g, &in, 0, err) == 0, "%s", err);
    CHECK(graph_run(&ws, &in, err) == 0);
    for (int k = 0; k < 4; k++)
        memcpy(apart[k], graph_value_view(&ws, graph_find_value(&g, names[k]))->data, sizeof apart[k]);
    CHECK_EQ_INT(graph_ws_fuse(&ws, NULL, 0), 1);
    CHECK(graph_run(&ws, &in, err) == 0);
    for (int k = 0; k < 4; k++)
        CHECK_MSG(memcmp(graph_value_view(&ws, graph_find_value(&g, names[k]))->data, apart[k],
                         sizeof apart[k]) == 0,
                  "%s differs once fused", names[k]);
    graph_ws_free(&ws);
    graph_deinit(&g);
}

/* x [N, C, H, W] -> Conv 3x3 pad 1 (C -> 16, bias) -> [BatchNormalization]
 * -> [Relu] -> MaxPool (k × k, stride 2) -> "p": the chains a Conv may
 * pool inside. */
static void conv_pool_graph(struct graph *g, int C, int H, int W, int with_bn, int with_relu,
                            int k)
{
    memset(g, 0, sizeof *g);
    input(g, "x", 4, (int64_t[]){-1, C, H, W});
    weight(g, "w", 4, (int64_t[]){16, C, 3, 3});
    weight(g, "b", 1, (int64_t[]){16});
    struct node *n = node(g, "Conv", "conv", "x,w,b", "c");
    attr_ints(n, "pads", 4, (int64_t[]){1, 1, 1, 1});
    const char *last = "c";
    if (with_bn) {
        bn_params(g, "bn", 16);
        node(g, "BatchNormalization", "bn", "c,bn_scale,bn_shift,bn_mean,bn_var", "n");
        last = "n";
    }
    if (with_relu) {
        node(g, "Relu", "relu", last, "r");
        last = "r";
    }
    n = node(g, "MaxPool", "pool", last, "p");
    attr_ints(n, "kernel_shape", 2, (int64_t[]){k, k});
    attr_ints(n, "strides", 2, (int64_t[]){2, 2});
    output(g, "p");
}

/* The chains above on one shape, against the nodes run apart: bit for bit
 * without a BatchNormalization; with one, bit for bit against the same
 * fold with the pooling apart (the Relu's output kept), and within
 * rounding of the nodes apart. */
static void pooled_matches_apart(const char *mode, int C, int H, int W, int with_bn,
                                 int with_relu)
{
    struct graph g;
    conv_pool_graph(&g, C, H, W, with_bn, with_relu, 2);
    char err[STRATA_ERR_LEN] = "";
    CHECK_MSG(graph_finish(&g, err) == 0, "%s", err);
    enum { N = 2 };
    const size_t len = (size_t)N * C * H * W;
    float *x = malloc(len * sizeof *x);
    for (size_t i = 0; i < len; i++)
        x[i] = uniform();
    struct tview in = {.dtype = DTYPE_FLOAT, .ndim = 4, .dims = {N, C, H, W}, .data = x};
    struct graph_ws ws;
    CHECK_MSG(graph_ws_init(&ws, &g, &in, 0, err) == 0, "%s", err);
    const int p = graph_find_value(&g, "p");
    float *apart[1], *kept_apart[1];
    const char *names[] = {"p"};
    run_and_copy(&ws, &g, &in, names, 1, apart);
    const size_t plen = (size_t)tview_count(graph_value_view(&ws, p));
    CHECK_EQ_INT((int)plen, N * 16 * (H / 2) * (W / 2));
    int zeros = 0;
    for (size_t i = 0; i < plen; i++)
        zeros += apart[0][i] == 0.0f;
    CHECK_MSG(!with_relu || zeros > 0, "%s: the Relu never clamped a maximum", mode);

    /* the same values, rounded otherwise once folded (F(4×4) rounds the
     * most: about 1e-5 of the sum of |x·w|) */
    double biggest = 0;
    for (size_t i = 0; i < plen; i++)
        biggest = fabs(apart[0][i]) > biggest ? fabs(apart[0][i]) : biggest;
    const double tol = with_bn ? 1e-4 * (1.0 + biggest) : 0.0;
    const int kind = (with_bn ? (with_relu ? GRAPH_FUSE_BN_CLAMP : GRAPH_FUSE_BN)
                              : (with_relu ? GRAPH_FUSE_CLAMP : GRAPH_FUSE_NONE));
    CHECK_EQ_INT(graph_ws_fuse(&ws, NULL, 0), 1);
    CHECK_MSG(ws.fuse_next[0] == (kind | GRAPH_FUSE_POOL), "%s %dx%d: chain %d", mode, H, W,
              ws.fuse_next[0]);
    CHECK(graph_run(&ws, &in, err) == 0);
    const float *fused = tview_f(graph_value_view(&ws, p));
    if (!with_bn) {
        CHECK_MSG(memcmp(fused, apart[0], plen * sizeof *fused) == 0,
                  "%s %dx%dx%d: pooled inside the Conv differs", mode, C, H, W);
    } else {
        CHECK_MSG(worst_diff(&ws, &g, "p", apart[0]) <= tol,
                  "%s %dx%dx%d: folded and pooled differs by %g", mode, C, H, W,
                  worst_diff(&ws, &g, "p", apart[0]));
        /* the value before the pool kept: the fold without the pool */
        const int before = graph_find_value(&g, with_relu ? "r" : "n");
        CHECK_EQ_INT(graph_ws_fuse(&ws, &before, 1), 1);
        CHECK(ws.fuse_next[0] == kind);
        run_and_copy(&ws, &g, &in, names, 1, kept_apart);
        CHECK_EQ_INT(graph_ws_fuse(&ws, NULL, 0), 1);
        CHECK(graph_run(&ws, &in, err) == 0);
        CHECK_MSG(memcmp(tview_f(graph_value_view(&ws, p)), kept_apart[0],
                         plen * sizeof(float)) == 0,
                  "%s %dx%dx%d: pooled inside the folded Conv differs", mode, C, H, W);
        free(kept_apart[0]);
    }
    /* a batch of one replans: the first image's result */
    struct tview one = in;
    one.dims[0] = 1;
    CHECK(graph_run(&ws, &one, err) == 0);
    CHECK_MSG(worst_diff(&ws, &g, "p", apart[0]) <= tol,
              "%s %dx%dx%d: batch 1 after batch 2 differs", mode, C, H, W);
    graph_ws_free(&ws);
    free(apart[0]);
    free(x);
    graph_deinit(&g);
}

static void pooled_shapes(const char *mode)
{
    /* F(4×4) with blocks cut at both edges; F(2×2) with an odd height; too
     * few channels for Winograd (sgemm pools as it stores; the fallback
     * pools after) */
    pooled_matches_apart(mode, 16, 45, 43, 0, 1);
    pooled_matches_apart(mode, 16, 45, 42, 1, 1);
    pooled_matches_apart(mode, 17, 29, 30, 0, 1);
    pooled_matches_apart(mode, 16, 30, 29, 1, 0);
    pooled_matches_apart(mode, 16, 29, 31, 0, 0);
    pooled_matches_apart(mode, 3, 20, 21, 0, 1);
    pooled_matches_apart(mode, 3, 21, 20, 1, 1);
    /* sgemm's pooled panels of 12 windows across rows of 26 and 25 windows
     * and of one, and across images */
    pooled_matches_apart(mode, 3, 29, 53, 0, 1);
    pooled_matches_apart(mode, 8, 30, 50, 1, 0);
    pooled_matches_apart(mode, 3, 27, 3, 0, 1);
}

/* A 2×2 MaxPool at stride 2 runs inside the Conv before it (after its
 * BatchNormalization and Relu); a 3×3 one, or one whose input is kept, does
 * not. */
TEST(max_pool_runs_inside_conv)
{
    with_and_without_sgemm(pooled_shapes);
    struct graph g;
    conv_pool_graph(&g, 16, 12, 12, 0, 1, 3);
    char err[STRATA_ERR_LEN] = "";
    CHECK_MSG(graph_finish(&g, err) == 0, "%s", err);
    float x[16 * 12 * 12] = {0};
    struct tview in = {.dtype = DTYPE_FLOAT, .ndim = 4, .dims = {1, 16, 12, 12}, .data = x};
    struct graph_ws ws;
    CHECK_MSG(graph_ws_init(&ws, &g, &in, 0, err) == 0, "%s", err);
    CHECK_EQ_INT(graph_ws_fuse(&ws, NULL, 0), 1);
    CHECK_EQ_INT(ws.fuse_next[0], GRAPH_FUSE_CLAMP);
    graph_ws_free(&ws);
    graph_deinit(&g);
    conv_pool_graph(&g, 16, 12, 12, 0, 1, 2);
    CHECK_MSG(graph_finish(&g, err) == 0, "%s", err);
    CHECK_MSG(graph_ws_init(&ws, &g, &in, 0, err) == 0, "%s", err);
    const int r = graph_find_value(&g, "r");
    CHECK_EQ_INT(graph_ws_fuse(&ws, &r, 1), 1);
    CHECK_EQ_INT(ws.fuse_next[0], GRAPH_FUSE_CLAMP);
    graph_ws_free(&ws);
    graph_deinit(&g);
}

/* Flatten and Reshape leave their output as a view of their input's bytes
 * where the input is the workspace's own (a chain of them too), and copy
 * where it is the caller's (borrowed for the call alone) or gradients are
 * wanted; the values are the same either way, after a replan too. */
TEST(reshapes_view_their_input)
{
    struct graph g;
    memset(&g, 0, sizeof g);
    input(&g, "x", 4, (int64_t[]){-1, 2, 3, 4});
    int_const(&g, "shape", 2, (int64_t[]){-1, 24});
    node(&g, "Flatten", "flat_x", "x", "fx");
    node(&g, "Relu", "relu", "x", "r");
    node(&g, "Flatten", "flat_r", "r", "fr");
    node(&g, "Reshape", "reshape", "fr,shape", "rr");
    node(&g, "Add", "sum", "fx,rr", "out");
    output(&g, "out");
    output(&g, "fr");
    char err[STRATA_ERR_LEN] = "";
    CHECK_MSG(graph_finish(&g, err) == 0, "%s", err);
    float x[3 * 24];
    for (int i = 0; i < 3 * 24; i++)
        x[i] = uniform() - 0.5f;
    struct tview in = {.dtype = DTYPE_FLOAT, .ndim = 4, .dims = {3, 2, 3, 4}, .data = x};
    for (int grads = 0; grads <= 1; grads++) {
        struct graph_ws ws;
        CHECK_MSG(graph_ws_init(&ws, &g, &in, grads, err) == 0, "%s", err);
        for (int n = 3; n >= 1; n -= 2) {
            in.dims[0] = n;
            CHECK(graph_run(&ws, &in, err) == 0);
            const float *r = tview_f(graph_value_view(&ws, graph_find_value(&g, "r")));
            const float *fx = tview_f(graph_value_view(&ws, graph_find_value(&g, "fx")));
            const float *fr = tview_f(graph_value_view(&ws, graph_find_value(&g, "fr")));
            const float *rr = tview_f(graph_value_view(&ws, graph_find_value(&g, "rr")));
            const float *out = tview_f(graph_value_view(&ws, graph_find_value(&g, "out")));
            CHECK_MSG(fx != x, "grads %d: a view of the caller's input", grads);
            CHECK_MSG((fr == r && rr == r) == !grads, "grads %d, batch %d: fr %s, rr %s", grads,
                      n, fr == r ? "a view" : "a copy", rr == r ? "a view" : "a copy");
            int bad = 0;
            for (int i = 0; i < n * 24; i++)
                bad += fx[i] != x[i] || fr[i] != (x[i] > 0 ? x[i] : 0.0f) || rr[i] != fr[i] ||
                       out[i] != x[i] + fr[i];
            CHECK_MSG(bad == 0, "grads %d, batch %d: %d values wrong", grads, n, bad);
        }
        in.dims[0] = 3;
        graph_ws_free(&ws);
    }
    graph_deinit(&g);
}

/* x [N, 5, 3, 4] -> Relu -> Transpose (0, 2, 3, 1) -> Flatten -> Gemm (B
 * constant, with or without transB; bias) -> "y": the flattening a
 * channels-last model does, folded into the Gemm's weights. */
static void nhwc_gemm_graph(struct graph *g, int trans_b)
{
    memset(g, 0, sizeof *g);
    input(g, "x", 4, (int64_t[]){-1, 5, 3, 4});
    weight(g, "b", 2, trans_b ? (int64_t[]){7, 60} : (int64_t[]){60, 7});
    weight(g, "c", 1, (int64_t[]){7});
    node(g, "Relu", "relu", "x", "r");
    struct node *n = node(g, "Transpose", "nhwc", "r", "t");
    attr_ints(n, "perm", 4, (int64_t[]){0, 2, 3, 1});
    node(g, "Flatten", "flat", "t", "f");
    n = node(g, "Gemm", "dense", "f,b,c", "y");
    attr_int(n, "transB", trans_b);
    output(g, "y");
}

/* The Gemm after a Transpose to channels last and a Flatten reads the input
 * as it is with its weights permuted: the same outputs to rounding (the sums
 * run in another order), with B as [units, K] or [K, units], after a replan
 * too; not where the Transpose's output is kept. */
TEST(channels_last_flatten_folds_into_gemm)
{
    for (int trans_b = 0; trans_b <= 1; trans_b++) {
        struct graph g;
        nhwc_gemm_graph(&g, trans_b);
        char err[STRATA_ERR_LEN] = "";
        CHECK_MSG(graph_finish(&g, err) == 0, "%s", err);
        enum { N = 3, LEN = N * 60 };
        float x[LEN];
        for (int i = 0; i < LEN; i++)
            x[i] = uniform() - 0.25f;
        struct tview in = {.dtype = DTYPE_FLOAT, .ndim = 4, .dims = {N, 5, 3, 4}, .data = x};
        struct graph_ws ws;
        CHECK_MSG(graph_ws_init(&ws, &g, &in, 0, err) == 0, "%s", err);
        float *apart[1];
        const char *names[] = {"y"};
        run_and_copy(&ws, &g, &in, names, 1, apart);
        double biggest = 0;
        for (int i = 0; i < N * 7; i++)
            biggest = fabs(apart[0][i]) > biggest ? fabs(apart[0][i]) : biggest;
        CHECK_MSG(biggest > 0.1, "trans_b %d: the outputs are all near 0", trans_b);
        CHECK_EQ_INT(graph_ws_fuse(&ws, NULL, 0), 1);
        CHECK_EQ_INT(ws.fuse_next[1], GRAPH_FUSE_NHWC_GEMM);
        CHECK(graph_run(&ws, &in, err) == 0);
        /* sums of 60 products of numbers below 1 */
        CHECK_MSG(worst_diff(&ws, &g, "y", apart[0]) <= 1e-5 * (1.0 + biggest),
                  "trans_b %d: differs by %g once folded", trans_b,
                  worst_diff(&ws, &g, "y", apart[0]));
        struct tview one = in;
        one.dims[0] = 1;
        CHECK(graph_run(&ws, &one, err) == 0);
        CHECK_MSG(worst_diff(&ws, &g, "y", apart[0]) <= 1e-5 * (1.0 + biggest),
                  "trans_b %d: batch 1 after batch 3 differs", trans_b);
        /* a kept Transpose output stays computed */
        const int t = graph_find_value(&g, "t");
        CHECK_EQ_INT(graph_ws_fuse(&ws, &t, 1), 0);
        graph_ws_free(&ws);
        free(apart[0]);
        graph_deinit(&g);
    }
}

TEST(views_run_parts_of_the_graph)
{
    struct graph g;
    residual_graph(&g);
    char err[STRATA_ERR_LEN] = "";
    CHECK_MSG(graph_finish(&g, err) == 0, "%s", err);
    float x[2 * 108];
    for (int i = 0; i < 2 * 108; i++)
        x[i] = uniform();
    struct tview b2 = batch_of(2, x);
    struct graph_ws ws;
    CHECK_MSG(graph_ws_init(&ws, &g, &b2, 0, err) == 0, "%s", err);
    CHECK(graph_run(&ws, &b2, err) == 0);
    const int sum = graph_find_value(&g, "sum"), logits = g.outputs[0];
    float sum_copy[2 * 4 * 36], want[10];
    memcpy(sum_copy, graph_value_view(&ws, sum)->data, sizeof sum_copy);
    memcpy(want, graph_value_view(&ws, logits)->data, sizeof want);

    /* the tail: GlobalAveragePool, Flatten, Gemm from the residual sum */
    struct graph tail;
    CHECK_MSG(graph_view(&tail, &g, sum, logits, err) == 0, "%s", err);
    CHECK_EQ_INT(tail.n_nodes, 3);
    struct tview in = {.dtype = DTYPE_FLOAT, .ndim = 4, .dims = {2, 4, 6, 6}, .data = sum_copy};
    struct graph_ws tws;
    CHECK_MSG(graph_ws_init(&tws, &tail, &in, 0, err) == 0, "%s", err);
    CHECK_MSG(graph_run(&tws, &in, err) == 0, "%s", err);
    CHECK(memcmp(graph_value_view(&tws, logits)->data, want, sizeof want) == 0);
    graph_ws_free(&tws);
    graph_deinit(&tail);

    /* the head at 8×8 (the graph declares 6×6): conv1 keeps the size */
    struct graph head;
    const int r1 = graph_find_value(&g, "r1");
    CHECK_MSG(graph_view(&head, &g, g.inputs[0], r1, err) == 0, "%s", err);
    CHECK_EQ_INT(head.n_nodes, 2);
    float big[3 * 64];
    for (int i = 0; i < 3 * 64; i++)
        big[i] = uniform();
    struct tview b8 = {.dtype = DTYPE_FLOAT, .ndim = 4, .dims = {1, 3, 8, 8}, .data = big};
    struct graph_ws hws;
    CHECK_MSG(graph_ws_init(&hws, &head, &b8, 0, err) == 0, "%s", err);
    CHECK_MSG(graph_run(&hws, &b8, err) == 0, "%s", err);
    const struct tview *o = graph_value_view(&hws, r1);
    CHECK(o->ndim == 4 && o->dims[1] == 4 && o->dims[2] == 8 && o->dims[3] == 8);
    /* r1[0][0][0][0] = tanh(b1[0] + Σ w1[0][c][1..2][1..2] · x[c][0..1][0..1]) */
    const float *w1 = g.values[graph_find_value(&g, "w1")].init.data;
    const float *b1 = g.values[graph_find_value(&g, "b1")].init.data;
    double z = b1[0];
    for (int c = 0; c < 3; c++)
        for (int ky = 1; ky < 3; ky++)
            for (int kx = 1; kx < 3; kx++)
                z += (double)w1[(c * 3 + ky) * 3 + kx] * big[c * 64 + (ky - 1) * 8 + (kx - 1)];
    CHECK_NEAR(tview_f(o)[0], tanh(z), 1e-5);
    graph_ws_free(&hws);
    graph_deinit(&head);

    /* the Add needs r1, hence the image, besides c2; logits do not lead to r1 */
    struct graph bad;
    CHECK(graph_view(&bad, &g, graph_find_value(&g, "c2"), sum, err) == STRATA_E_ARG);
    CHECK_MSG(strstr(err, "needs 'x' besides 'c2'") != NULL, "%s", err);
    CHECK(bad.nodes == NULL && bad.n_nodes == 0);
    CHECK(graph_view(&bad, &g, logits, r1, err) == STRATA_E_ARG);
    CHECK_MSG(strstr(err, "not computed from") != NULL, "%s", err);
    graph_ws_free(&ws);
    graph_deinit(&g);
}

int main(void)
{
    RUN(residual_forward_batch_matches_single_images);
    RUN(residual_backward_matches_finite_differences);
    RUN(dynamic_batch_shape_arithmetic_is_folded);
    RUN(refuses_cycles_unknown_ops_and_dangling_inputs);
    RUN(relu_and_clip_fuse_into_conv);
    RUN(batch_norm_folds_into_conv);
    RUN(relu_and_clip_fuse_into_add);
    RUN(silu_fuses_into_sigmoid);
    RUN(max_pool_runs_inside_conv);
    RUN(reshapes_view_their_input);
    RUN(channels_last_flatten_folds_into_gemm);
    RUN(views_run_parts_of_the_graph);
    return check_done();
}
