/* train_graph.c — a model's training graph (see train_graph.h). */
#include "train_graph.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_graph.h"
#include "tensor.h"

/* What a train_param holds, and how it is laid out in the graph. The names
 * and layouts are those onnx_export.c writes. */
enum train_param_kind {
    PARAM_CONV_KERNEL,  /* graph [f][cin/g][k][k] (OIHW), layer [k][k][cin/g][f] (HWIO) */
    PARAM_DENSE_KERNEL, /* graph [units][in], layer [in][units] */
    PARAM_BIAS,
    PARAM_GAMMA,
    PARAM_BETA,
    PARAM_MOVING_MEAN,  /* not trained by gradient */
    PARAM_MOVING_VAR,
};

static const char *const param_suffix[] = {
    [PARAM_CONV_KERNEL] = "kernel",     [PARAM_DENSE_KERNEL] = "kernel",
    [PARAM_BIAS] = "bias",              [PARAM_GAMMA] = "gamma",
    [PARAM_BETA] = "beta",              [PARAM_MOVING_MEAN] = "moving_mean",
    [PARAM_MOVING_VAR] = "moving_variance",
};

/* The layer's tensor a train_param stands for, and its length. */
static float *layer_tensor(const struct model *m, const struct train_param *p, size_t *len)
{
    const struct layer *l = &m->layers[p->layer];
    switch ((enum train_param_kind)p->which) {
    case PARAM_CONV_KERNEL:
        *len = (size_t)l->cfg.kernel * l->cfg.kernel * (l->in.c / l->cfg.groups) * l->cfg.filters;
        return l->w.kernel;
    case PARAM_DENSE_KERNEL:
        *len = shape_size(l->in) * (size_t)l->cfg.units;
        return l->w.kernel;
    case PARAM_BIAS:
        *len = l->cfg.kind == LAYER_CONV2D ? (size_t)l->cfg.filters : (size_t)l->cfg.units;
        return l->w.bias;
    case PARAM_GAMMA:
        *len = (size_t)l->in.c;
        return l->w.gamma;
    case PARAM_BETA:
        *len = (size_t)l->in.c;
        return l->w.beta;
    case PARAM_MOVING_MEAN:
        *len = (size_t)l->in.c;
        return l->w.moving_mean;
    case PARAM_MOVING_VAR:
        *len = (size_t)l->in.c;
        return l->w.moving_var;
    }
    *len = 0;
    return NULL;
}

/* The kinds of tensor layer l has, into kinds[]; returns how many. */
static int layer_params(const struct layer *l, int *kinds)
{
    int n = 0;
    switch (l->cfg.kind) {
    case LAYER_CONV2D:
        kinds[n++] = PARAM_CONV_KERNEL;
        if (l->cfg.use_bias)
            kinds[n++] = PARAM_BIAS;
        break;
    case LAYER_DENSE:
        kinds[n++] = PARAM_DENSE_KERNEL;
        if (l->cfg.use_bias)
            kinds[n++] = PARAM_BIAS;
        break;
    case LAYER_BATCH_NORM:
        kinds[n++] = PARAM_GAMMA;
        kinds[n++] = PARAM_BETA;
        kinds[n++] = PARAM_MOVING_MEAN;
        kinds[n++] = PARAM_MOVING_VAR;
        break;
    default:
        break;
    }
    return n;
}

void train_graph_free(struct train_graph *t)
{
    graph_ws_free(&t->ws);
    if (t->owns_graph)
        model_graph_free(t->mg);
    tensor_free(t->nchw);
    tensor_free(t->probs_buf);
    free(t->params);
    memset(t, 0, sizeof *t);
}

/* The tensors of strata's own model m in its graph: every layer's, in the
 * model's slab order. */
static int own_params(struct train_graph *t, const struct model *m, char *err)
{
    const struct graph *g = &t->mg->g;
    t->params = calloc((size_t)m->n_layers * 4 + 1, sizeof *t->params);
    if (!t->params)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory setting up training");
    for (int l = 0; l < m->n_layers; l++) {
        int kinds[4], nk = layer_params(&m->layers[l], kinds);
        for (int k = 0; k < nk; k++) {
            char name[128];
            snprintf(name, sizeof name, "%s/%s", m->layers[l].cfg.name, param_suffix[kinds[k]]);
            struct train_param p = {
                .layer = l, .value = graph_find_value(g, name), .which = kinds[k],
                .trainable = kinds[k] != PARAM_MOVING_MEAN && kinds[k] != PARAM_MOVING_VAR,
                .decay = kinds[k] == PARAM_CONV_KERNEL || kinds[k] == PARAM_DENSE_KERNEL};
            size_t len;
            layer_tensor(m, &p, &len);
            if (p.value < 0 || g->values[p.value].kind != VALUE_INITIALIZER ||
                g->values[p.value].init.dtype != DTYPE_FLOAT ||
                tview_count(&g->values[p.value].init) != (int64_t)len)
                return strata_fail(err, STRATA_E_FORMAT,
                                   "model '%s': the graph has no tensor '%s' of %zu values to "
                                   "train",
                                   m->id, name, len);
            t->params[t->n_params++] = p;
        }
    }
    return 0;
}

/* What an imported graph's float initializer is to training, by how a node
 * reads it (train_param.which for imported graphs). */
enum graph_role {
    ROLE_CONSTANT,      /* not trained */
    ROLE_RUNNING_VAR,   /* BatchNormalization's input_var: updated, not trained */
    ROLE_RUNNING_MEAN,  /* its input_mean */
    ROLE_BIAS,          /* a bias or offset: trained, starts at 0 */
    ROLE_SLOPE,         /* PRelu's slope: trained, starts at 0.25 */
    ROLE_SCALE,         /* BatchNormalization's scale: trained, starts at 1 */
    ROLE_WEIGHT,        /* a Conv, Gemm or MatMul weight: trained, decays */
};

/* How node n reads its input k, when that input is a float initializer. */
static enum graph_role initializer_role(const struct graph *g, const struct node *n, int k)
{
    const char *op = n->op_type;
    const int64_t count = tview_count(&g->values[n->inputs[k]].init);
    if (strcmp(op, "Conv") == 0)
        return k == 1 ? ROLE_WEIGHT : k == 2 ? ROLE_BIAS : ROLE_CONSTANT;
    if (strcmp(op, "Gemm") == 0 || strcmp(op, "MatMul") == 0)
        return k <= 1 ? ROLE_WEIGHT : k == 2 ? ROLE_BIAS : ROLE_CONSTANT;
    if (strcmp(op, "BatchNormalization") == 0)
        return k == 1   ? ROLE_SCALE
               : k == 2 ? ROLE_BIAS
               : k == 3 ? ROLE_RUNNING_MEAN
               : k == 4 ? ROLE_RUNNING_VAR
                        : ROLE_CONSTANT;
    if (strcmp(op, "PRelu") == 0)
        return k == 1 ? ROLE_SLOPE : ROLE_CONSTANT;
    if (strcmp(op, "Add") == 0 || strcmp(op, "Sub") == 0)
        return count > 1 ? ROLE_BIAS : ROLE_CONSTANT; /* a scalar: a constant (x + 3) */
    return ROLE_CONSTANT;
}

/* The tensors of an imported graph that training changes: float
 * initializers some node reads as a weight or a running statistic (the
 * strongest role when several nodes read one). */
static int graph_params(struct train_graph *t, char *err)
{
    const struct graph *g = &t->mg->g;
    int *role = calloc((size_t)g->n_values + 1, sizeof *role);
    t->params = calloc((size_t)g->n_values + 1, sizeof *t->params);
    if (!role || !t->params) {
        free(role);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory setting up training");
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const struct node *n = &g->nodes[i];
        for (int k = 0; k < n->n_inputs; k++) {
            const int v = n->inputs[k];
            if (v < 0 || g->values[v].kind != VALUE_INITIALIZER ||
                g->values[v].init.dtype != DTYPE_FLOAT)
                continue;
            const int r = (int)initializer_role(g, n, k);
            if (r > role[v])
                role[v] = r;
        }
    }
    for (int v = 0; v < g->n_values; v++)
        if (role[v] != ROLE_CONSTANT)
            t->params[t->n_params++] = (struct train_param){
                .value = v, .layer = -1, .which = role[v], .trainable = role[v] >= ROLE_BIAS,
                .decay = role[v] == ROLE_WEIGHT};
    free(role);
    return 0;
}

int train_graph_randomize(struct model *m, uint64_t seed, char *err)
{
    if (!m->onnx[0] || !m->graph)
        return strata_fail(err, STRATA_E_ARG,
                           "model '%s' is not imported: model_init_params draws its weights",
                           m->id);
    struct train_graph view = {.mg = m->graph}, *t = &view;
    int rc = graph_params(t, err);
    if (rc < 0)
        return rc;
    struct rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < t->n_params; i++) {
        const struct train_param *p = &t->params[i];
        const struct tview *init = &t->mg->g.values[p->value].init;
        float *x = tview_f(init);
        const int64_t n = tview_count(init);
        float fill = 0.0f;
        switch ((enum graph_role)p->which) {
        case ROLE_WEIGHT: {
            /* He-uniform over the fan-in of a convolution's [M][C/g][kh][kw];
             * Glorot-uniform for a matrix, whichever way it is read */
            double limit;
            if (init->ndim >= 3)
                limit = sqrt(6.0 / (double)(n / init->dims[0]));
            else if (init->ndim == 2)
                limit = sqrt(6.0 / (double)(init->dims[0] + init->dims[1]));
            else
                limit = sqrt(6.0 / (double)(n > 0 ? n : 1));
            for (int64_t k = 0; k < n; k++)
                x[k] = (float)((2.0 * rng_uniform(&r) - 1.0) * limit);
            continue;
        }
        case ROLE_SCALE:
        case ROLE_RUNNING_VAR:
            fill = 1.0f;
            break;
        case ROLE_SLOPE:
            fill = 0.25f;
            break;
        default:
            break;
        }
        for (int64_t k = 0; k < n; k++)
            x[k] = fill;
    }
    free(t->params);
    return 0;
}

int train_graph_init(struct train_graph *t, struct model *m, int max_batch, uint64_t seed,
                     char *err)
{
    memset(t, 0, sizeof *t);
    int rc;
    if (m->onnx[0]) {
        if (!m->graph)
            return strata_fail(err, STRATA_E_ARG, "model '%s' has no graph to train", m->id);
        t->mg = m->graph;
    } else {
        if ((rc = model_graph_of_layers(m, &t->mg, err)) < 0)
            return rc;
        t->owns_graph = 1;
    }
    const struct graph *g = &t->mg->g;
    t->max_batch = max_batch;
    t->n_classes = m->n_classes;
    t->h = m->input.h;
    t->w = m->input.w;
    t->input = g->inputs[0];
    t->logits = t->mg->logits;
    t->probs = graph_produced_by(g, g->outputs[0], "Softmax") ? g->outputs[0] : -1;
    t->nchw = tensor_alloc((size_t)max_batch * 3 * t->h * t->w);
    if (t->probs < 0)
        t->probs_buf = tensor_alloc((size_t)max_batch * t->n_classes);
    if (!t->nchw || (t->probs < 0 && !t->probs_buf)) {
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory setting up training");
        goto fail;
    }
    if ((rc = t->owns_graph ? own_params(t, m, err) : graph_params(t, err)) < 0)
        goto fail;
    for (int i = 0; i < t->n_params; i++)
        t->state_len += (size_t)tview_count(&g->values[t->params[i].value].init);
    struct tview shape = {.dtype = DTYPE_FLOAT, .ndim = 4, .dims = {max_batch, 3, t->h, t->w}};
    if ((rc = graph_ws_init(&t->ws, g, &shape, 1, err)) < 0)
        goto fail;
    rng_seed(&t->ws.rng, seed);
    return 0;
fail:
    train_graph_free(t);
    return rc;
}

int train_graph_optim_tensors(const struct train_graph *t, struct optim_tensor *out)
{
    int n = 0;
    for (int i = 0; i < t->n_params; i++) {
        const struct train_param *p = &t->params[i];
        if (!p->trainable)
            continue;
        const struct tview *init = &t->mg->g.values[p->value].init;
        out[n++] = (struct optim_tensor){.param = tview_f(init),
                                         .grad = t->ws.grad_owned[p->value],
                                         .len = (size_t)tview_count(init),
                                         .decay = p->decay};
    }
    return n;
}

const float *train_graph_forward(struct train_graph *t, const float *in, int n, int training,
                                 char *err)
{
    const size_t plane = (size_t)t->h * t->w;
    for (int i = 0; i < n; i++) {
        const float *src = in + (size_t)i * plane * 3;
        float *dst = t->nchw + (size_t)i * plane * 3;
        for (size_t p = 0; p < plane; p++)
            for (int c = 0; c < 3; c++)
                dst[c * plane + p] = src[p * 3 + c];
    }
    struct tview x = {.dtype = DTYPE_FLOAT, .ndim = 4, .dims = {n, 3, t->h, t->w},
                      .data = t->nchw};
    t->ws.training = training;
    if (graph_run(&t->ws, &x, err) < 0)
        return NULL;
    if (t->probs >= 0)
        return tview_f(graph_value_view(&t->ws, t->probs));
    /* the graph gives logits (or log-probabilities): their softmax */
    const float *z = tview_f(graph_value_view(&t->ws, t->logits));
    const int C = t->n_classes;
    for (int i = 0; i < n; i++) {
        const float *zi = z + (size_t)i * C;
        float *p = t->probs_buf + (size_t)i * C, top = zi[0];
        for (int c = 1; c < C; c++)
            top = zi[c] > top ? zi[c] : top;
        double sum = 0;
        for (int c = 0; c < C; c++)
            sum += p[c] = expf(zi[c] - top);
        for (int c = 0; c < C; c++)
            p[c] = (float)(p[c] / sum);
    }
    return t->probs_buf;
}

int train_graph_backward(struct train_graph *t, const float *dlogits, char *err)
{
    return graph_backward_weights(&t->ws, t->logits, dlogits, err);
}

void train_graph_save(const struct train_graph *t, float *dst)
{
    for (int i = 0; i < t->n_params; i++) {
        const struct tview *init = &t->mg->g.values[t->params[i].value].init;
        const size_t n = (size_t)tview_count(init);
        memcpy(dst, init->data, n * sizeof *dst);
        dst += n;
    }
}

void train_graph_restore(struct train_graph *t, const float *src)
{
    for (int i = 0; i < t->n_params; i++) {
        const struct tview *init = &t->mg->g.values[t->params[i].value].init;
        const size_t n = (size_t)tview_count(init);
        memcpy(init->data, src, n * sizeof *src);
        src += n;
    }
}

void train_graph_to_model(const struct train_graph *t, struct model *m)
{
    if (!t->owns_graph)
        return;
    for (int i = 0; i < t->n_params; i++) {
        const struct train_param *p = &t->params[i];
        const struct layer *l = &m->layers[p->layer];
        const float *src = tview_f(&t->mg->g.values[p->value].init);
        size_t len;
        float *dst = layer_tensor(m, p, &len);
        if (p->which == PARAM_CONV_KERNEL) {
            const int k = l->cfg.kernel, cin = l->in.c / l->cfg.groups, f = l->cfg.filters;
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++)
                    for (int ci = 0; ci < cin; ci++)
                        for (int fo = 0; fo < f; fo++)
                            dst[(((size_t)ky * k + kx) * cin + ci) * f + fo] =
                                src[((size_t)(fo * cin + ci) * k + ky) * k + kx];
        } else if (p->which == PARAM_DENSE_KERNEL) {
            const size_t in = shape_size(l->in), units = (size_t)l->cfg.units;
            for (size_t a = 0; a < in; a++)
                for (size_t u = 0; u < units; u++)
                    dst[a * units + u] = src[u * in + a];
        } else {
            memcpy(dst, src, len * sizeof *dst);
        }
    }
}
