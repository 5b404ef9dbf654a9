/* train_graph.c — a model's training graph (see train_graph.h). */
#include "train_graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_graph.h"
#include "tensor.h"

/* What a train_param holds, and how it is laid out in the graph. The names
 * and layouts are those onnx_export.c writes. */
enum train_param_kind {
    PARAM_CONV_KERNEL,  /* graph [f][cin][k][k] (OIHW), layer [k][k][cin][f] (HWIO) */
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
        *len = (size_t)l->cfg.kernel * l->cfg.kernel * l->in.c * l->cfg.filters;
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
    model_graph_free(t->mg);
    tensor_free(t->nchw);
    free(t->params);
    memset(t, 0, sizeof *t);
}

int train_graph_init(struct train_graph *t, const struct model *m, int max_batch, uint64_t seed,
                     char *err)
{
    memset(t, 0, sizeof *t);
    int rc = model_graph_of_layers(m, &t->mg, err);
    if (rc < 0)
        return rc;
    const struct graph *g = &t->mg->g;
    t->max_batch = max_batch;
    t->n_classes = m->n_classes;
    t->h = m->input.h;
    t->w = m->input.w;
    t->input = g->inputs[0];
    t->logits = t->mg->logits;
    t->probs = g->outputs[0];
    t->nchw = tensor_alloc((size_t)max_batch * 3 * t->h * t->w);
    t->params = calloc((size_t)m->n_layers * 4 + 1, sizeof *t->params);
    if (!t->nchw || !t->params) {
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory setting up training");
        goto fail;
    }
    for (int l = 0; l < m->n_layers; l++) {
        int kinds[4], nk = layer_params(&m->layers[l], kinds);
        for (int k = 0; k < nk; k++) {
            char name[128];
            snprintf(name, sizeof name, "%s/%s", m->layers[l].cfg.name, param_suffix[kinds[k]]);
            struct train_param p = {.layer = l, .value = graph_find_value(g, name),
                                    .which = kinds[k]};
            size_t len;
            layer_tensor(m, &p, &len);
            if (p.value < 0 || g->values[p.value].kind != VALUE_INITIALIZER ||
                g->values[p.value].init.dtype != DTYPE_FLOAT ||
                tview_count(&g->values[p.value].init) != (int64_t)len) {
                rc = strata_fail(err, STRATA_E_FORMAT,
                                 "model '%s': the graph has no tensor '%s' of %zu values to train",
                                 m->id, name, len);
                goto fail;
            }
            t->params[t->n_params++] = p;
        }
    }
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
        if (p->which == PARAM_MOVING_MEAN || p->which == PARAM_MOVING_VAR)
            continue;
        const struct tview *init = &t->mg->g.values[p->value].init;
        out[n++] = (struct optim_tensor){
            .param = tview_f(init),
            .grad = t->ws.grad_owned[p->value],
            .len = (size_t)tview_count(init),
            .decay = p->which == PARAM_CONV_KERNEL || p->which == PARAM_DENSE_KERNEL};
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
    return tview_f(graph_value_view(&t->ws, t->probs));
}

int train_graph_backward(struct train_graph *t, const float *dlogits, int n, char *err)
{
    (void)n; /* the shapes of the last forward */
    return graph_backward_weights(&t->ws, t->logits, dlogits, err);
}

void train_graph_to_model(const struct train_graph *t, struct model *m)
{
    for (int i = 0; i < t->n_params; i++) {
        const struct train_param *p = &t->params[i];
        const struct layer *l = &m->layers[p->layer];
        const float *src = tview_f(&t->mg->g.values[p->value].init);
        size_t len;
        float *dst = layer_tensor(m, p, &len);
        if (p->which == PARAM_CONV_KERNEL) {
            const int k = l->cfg.kernel, cin = l->in.c, f = l->cfg.filters;
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
