/* classifier.c — an imported graph's classifier, and a new class count for it
 * (see classifier.h). */
#include "classifier.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "status.h"

/* Ops between the classifier and the output that neither mix classes nor
 * count them. */
static int passes_through(const char *op)
{
    static const char *const ops[] = {"Softmax", "LogSoftmax", "Flatten", "Reshape", "Squeeze",
                                      "Identity", "Dropout", "GlobalAveragePool", "Relu"};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (strcmp(op, ops[i]) == 0)
            return 1;
    return 0;
}

static int float_initializer(const struct graph *g, int v, int ndim)
{
    return v >= 0 && g->values[v].kind == VALUE_INITIALIZER &&
           g->values[v].init.dtype == DTYPE_FLOAT && g->values[v].init.ndim == ndim;
}

/* v when it is a float initializer of `outputs` values (a bias), else -1. */
static int bias_of(const struct graph *g, int v, int64_t outputs)
{
    return v >= 0 && g->values[v].kind == VALUE_INITIALIZER &&
                   g->values[v].init.dtype == DTYPE_FLOAT &&
                   tview_count(&g->values[v].init) == outputs
               ? v
               : -1;
}

int classifier_find(const struct graph *g, struct classifier *c, char *err)
{
    int v = g->outputs[0];
    for (int step = 0; step < g->n_nodes; step++) {
        const int p = g->values[v].producer;
        if (p < 0)
            break;
        const struct node *n = &g->nodes[p];
        const char *op = n->op_type;
        if (strcmp(op, "Gemm") == 0 && float_initializer(g, n->inputs[1], 2)) {
            int64_t trans_b;
            if (node_attr_int(n, "transB", 0, &trans_b, err) < 0)
                return STRATA_E_FORMAT;
            c->node = p;
            c->weight = n->inputs[1];
            c->out_axis = trans_b ? 0 : 1;
            c->outputs = (int)g->values[c->weight].init.dims[c->out_axis];
            c->bias = n->n_inputs > 2 ? bias_of(g, n->inputs[2], c->outputs) : -1;
            return 0;
        }
        if (strcmp(op, "Conv") == 0 && float_initializer(g, n->inputs[1], 4) &&
            g->values[n->inputs[1]].init.dims[2] == 1 && g->values[n->inputs[1]].init.dims[3] == 1) {
            int64_t group;
            if (node_attr_int(n, "group", 1, &group, err) < 0)
                return STRATA_E_FORMAT;
            if (group == 1) {
                c->node = p;
                c->weight = n->inputs[1];
                c->out_axis = 0;
                c->outputs = (int)g->values[c->weight].init.dims[0];
                c->bias = n->n_inputs > 2 ? bias_of(g, n->inputs[2], c->outputs) : -1;
                return 0;
            }
        }
        if (strcmp(op, "Add") == 0 && n->n_inputs == 2) {
            /* MatMul(x, W) + b, as Keras and TensorFlow write a dense layer */
            for (int k = 0; k < 2; k++) {
                const int other = n->inputs[1 - k], q = g->values[other].producer;
                if (q < 0 || strcmp(g->nodes[q].op_type, "MatMul") != 0 ||
                    !float_initializer(g, g->nodes[q].inputs[1], 2))
                    continue;
                c->node = q;
                c->weight = g->nodes[q].inputs[1];
                c->out_axis = 1;
                c->outputs = (int)g->values[c->weight].init.dims[1];
                c->bias = bias_of(g, n->inputs[k], c->outputs);
                if (c->bias >= 0)
                    return 0;
            }
        }
        if (strcmp(op, "MatMul") == 0 && float_initializer(g, n->inputs[1], 2)) {
            c->node = p;
            c->weight = n->inputs[1];
            c->out_axis = 1;
            c->outputs = (int)g->values[c->weight].init.dims[1];
            c->bias = -1;
            return 0;
        }
        if (!passes_through(op))
            return strata_fail(err, STRATA_E_UNSUPPORTED,
                               "the class scores come from node '%s' (%s); strata can give a "
                               "new number of classes to a Gemm, a MatMul (with its bias) or a "
                               "1x1 Conv, which this graph does not end with",
                               n->name, op);
        v = n->inputs[0];
    }
    return strata_fail(err, STRATA_E_UNSUPPORTED,
                       "no node computes the class scores from a constant weight (a Gemm, a "
                       "MatMul or a 1x1 Conv)");
}

/* A copy of t's shape with axis `axis` set to n, and data allocated for it
 * (uninitialised); NULL data when memory runs out. */
static struct tview resized(const struct tview *t, int axis, int64_t n)
{
    struct tview r = *t;
    r.dims[axis] = n;
    const int64_t count = tview_count(&r);
    r.data = malloc((size_t)(count ? count : 1) * sizeof(float));
    return r;
}

int classifier_resize(struct graph *g, struct classifier *c, int n, uint64_t seed, char *err)
{
    struct tview *w = &g->values[c->weight].init;
    struct tview nw = resized(w, c->out_axis, n), nb = {0};
    if (c->bias >= 0) {
        struct tview *b = &g->values[c->bias].init;
        int axis = 0;
        for (int d = 0; d < b->ndim; d++)
            if (b->dims[d] == c->outputs)
                axis = d;
        nb = resized(b, axis, n);
    }
    if (!nw.data || (c->bias >= 0 && !nb.data)) {
        free(nw.data);
        free(nb.data);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory giving the classifier %d outputs",
                           n);
    }
    /* Glorot-uniform over fan-in + fan-out */
    const int64_t count = tview_count(&nw), fan_in = count / n;
    const double limit = sqrt(6.0 / (double)(fan_in + n));
    struct rng r;
    rng_seed(&r, seed);
    float *x = tview_f(&nw);
    for (int64_t k = 0; k < count; k++)
        x[k] = (float)((2.0 * rng_uniform(&r) - 1.0) * limit);
    free(w->data);
    *w = nw;
    if (c->bias >= 0) {
        memset(nb.data, 0, (size_t)n * sizeof(float));
        free(g->values[c->bias].init.data);
        g->values[c->bias].init = nb;
    }
    c->outputs = n;
    return 0;
}
