/*
 * dropout.c — Keras Dropout, inverted: at training time each input element is
 * kept with probability 1 − rate and scaled by 1 / (1 − rate), so that the
 * expected output equals the input and inference is a plain copy.
 *
 * A training forward draws the mask from ctx->rng (one uniform per element,
 * kept when u ≥ rate) and records it in l->state.mask [n · in] (1 = kept),
 * which backward reuses: din += mask · dout / (1 − rate).
 */
#include "layer.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#include "../status.h"

static int dropout_configure(struct layer *l, char *err)
{
    const struct layer_config *c = &l->cfg;
    if (l->in.h < 1 || l->in.w < 1 || l->in.c < 1)
        return strata_fail(err, STRATA_E_ARG, "layer '%s': input shape %dx%dx%d is empty",
                           c->name, l->in.h, l->in.w, l->in.c);
    /* isnan first: an ordered comparison with NaN would raise FE_INVALID. */
    if (isnan(c->rate) || c->rate < 0.0f || c->rate >= 1.0f)
        return strata_fail(err, STRATA_E_ARG,
                           "layer '%s': rate is %g, it must be in [0, 1)", c->name,
                           (double)c->rate);
    l->out = l->in;
    return 0;
}

static int dropout_params(const struct layer *l, struct param_desc *desc)
{
    return 0;
}

static size_t dropout_state_size(const struct layer *l, int n)
{
    return (size_t)n * shape_size(l->in) * sizeof(uint8_t);
}

static void dropout_state_bind(struct layer *l, void *block, int n)
{
    l->state.mask = block;
}

static void dropout_init(struct layer *l, struct rng *r)
{
}

static void dropout_forward(const struct layer *l, float *out, const float *in, int n,
                            struct layer_ctx *ctx)
{
    size_t total = (size_t)n * shape_size(l->in);
    if (total == 0)
        return;
    if (!ctx->training) {
        if (out != in)
            memcpy(out, in, total * sizeof(float));
        return;
    }
    assert(l->state.mask && ctx->rng && "dropout: training forward needs a mask and an rng");
    const double rate = l->cfg.rate;
    const float scale = (float)(1.0 / (1.0 - rate));
    uint8_t *mask = l->state.mask;
    for (size_t i = 0; i < total; i++) {
        uint8_t keep = rng_uniform(ctx->rng) >= rate;
        mask[i] = keep;
        out[i] = keep ? in[i] * scale : 0.0f;
    }
}

/* Needs the mask of a training forward on the same batch. */
static void dropout_backward(struct layer *l, float *din, float *dout, const float *in,
                             const float *out, int n, struct layer_ctx *ctx)
{
    if (!din)
        return;
    assert(l->state.mask && "dropout: backward needs a training forward's mask");
    const float scale = (float)(1.0 / (1.0 - (double)l->cfg.rate));
    const uint8_t *mask = l->state.mask;
    size_t total = (size_t)n * shape_size(l->in);
    for (size_t i = 0; i < total; i++)
        din[i] += mask[i] ? dout[i] * scale : 0.0f;
}

/* The "dropout" layer type. A training forward needs ctx->rng and the mask
 * bound by state_bind (state_size(n) bytes); backward needs that forward's
 * mask. configure fails (STRATA_E_ARG) unless 0 <= rate < 1. */
const struct layer_ops dropout_ops = {
    .type = "dropout",
    .kind = LAYER_DROPOUT,
    .configure = dropout_configure,
    .params = dropout_params,
    .col_size = NULL,
    .state_size = dropout_state_size,
    .state_bind = dropout_state_bind,
    .init = dropout_init,
    .forward = dropout_forward,
    .backward = dropout_backward,
};
