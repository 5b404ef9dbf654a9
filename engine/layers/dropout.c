/*
 * dropout.c — Keras Dropout, inverted: at training time each input element is
 * kept with probability 1 − rate and scaled by 1 / (1 − rate), so that the
 * expected output equals the input and inference is a plain copy.
 *
 * A training forward draws the mask from ctx->rng (one uniform per element,
 * kept when u ≥ rate) and records it in l->state.mask [n · in] (1 = kept),
 * which backward reuses: din += mask · dout / (1 − rate).
 *
 * The forward stays on one thread: the mask is one sequential stream of the
 * rng, and drawing it is most of the cost. The backward runs on the pool
 * (parallel.h), cut in elements.
 */
#include "layer.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#include "../parallel.h"
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

/* The backward's pieces are blocks of this many elements. */
#define DROPOUT_BLOCK 4096

struct dropout_job {
    float *din;
    const float *dout;
    const uint8_t *mask;
    size_t total;
    float scale;
};

/* Blocks [b, e). */
static void dropout_backward_piece(void *p, int b, int e)
{
    const struct dropout_job *j = p;
    const size_t end = (size_t)e * DROPOUT_BLOCK < j->total ? (size_t)e * DROPOUT_BLOCK : j->total;
    for (size_t i = (size_t)b * DROPOUT_BLOCK; i < end; i++)
        j->din[i] += j->mask[i] ? j->dout[i] * j->scale : 0.0f;
}

/* Needs the mask of a training forward on the same batch. */
static void dropout_backward(struct layer *l, float *din, float *dout, const float *in,
                             const float *out, int n, struct layer_ctx *ctx)
{
    if (!din)
        return;
    assert(l->state.mask && "dropout: backward needs a training forward's mask");
    size_t total = (size_t)n * shape_size(l->in);
    struct dropout_job j = {.din = din, .dout = dout, .mask = l->state.mask, .total = total,
                            .scale = (float)(1.0 / (1.0 - (double)l->cfg.rate))};
    parallel_for_grain((int)((total + DROPOUT_BLOCK - 1) / DROPOUT_BLOCK),
                       parallel_grain(3 * DROPOUT_BLOCK), dropout_backward_piece, &j);
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
