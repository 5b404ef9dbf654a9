/*
 * global_avg_pool.c — the mean of each channel over all H·W positions of a
 * sample: H×W×C in, 1×1×C out. Backward spreads each output gradient evenly,
 * dout / (H·W), over the positions it averaged.
 *
 * NHWC makes both directions a sum of H·W rows of C contiguous floats, so the
 * channel loop is innermost and vectorises. The sums are in float: H·W is a
 * feature map's area (tens to a few thousand values), where float
 * accumulation loses far less than the model's own precision.
 *
 * Both directions run on the pool (parallel.h), cut in samples: each
 * sample's sums are formed by one piece in the serial order.
 */
#include "layer.h"

#include <string.h>

#include "../parallel.h"
#include "../status.h"

static int gap_configure(struct layer *l, char *err)
{
    if (l->in.h < 1 || l->in.w < 1 || l->in.c < 1)
        return strata_fail(err, STRATA_E_ARG, "layer '%s': input shape %dx%dx%d is empty",
                           l->cfg.name, l->in.h, l->in.w, l->in.c);
    if (l->cfg.activation != ACT_NONE)
        return strata_fail(err, STRATA_E_ARG,
                           "layer '%s': global_avg_pool takes no activation (got \"%s\")",
                           l->cfg.name, activation_name(l->cfg.activation));
    l->out = (struct shape){.h = 1, .w = 1, .c = l->in.c};
    return 0;
}

static int gap_params(const struct layer *l, struct param_desc *desc)
{
    return 0;
}

static size_t gap_state_size(const struct layer *l, int n)
{
    return 0;
}

static void gap_state_bind(struct layer *l, void *block, int n)
{
}

static void gap_init(struct layer *l, struct rng *r)
{
}

struct gap_job {
    const struct layer *l;
    float *out;         /* forward: out; backward: din */
    const float *in;    /* forward: in */
    float *dout;        /* backward */
};

/* Samples [b0, b1). */
static void gap_forward_piece(void *p, int b0, int b1)
{
    const struct gap_job *j = p;
    const struct layer *l = j->l;
    const float *in = j->in;
    float *out = j->out;
    const size_t HW = (size_t)l->in.h * (size_t)l->in.w;
    const int C = l->in.c;
    const float inv = 1.0f / (float)HW;
    for (int b = b0; b < b1; b++) {
        const float *restrict x = in + (size_t)b * HW * C;
        float *restrict o = out + (size_t)b * C;
        memcpy(o, x, (size_t)C * sizeof(float));
        for (size_t p = 1; p < HW; p++) {
            const float *r = x + p * C;
            for (int c = 0; c < C; c++)
                o[c] += r[c];
        }
        for (int c = 0; c < C; c++)
            o[c] *= inv;
    }
}

static void gap_forward(const struct layer *l, float *out, const float *in, int n,
                        struct layer_ctx *ctx)
{
    struct gap_job j = {.l = l, .out = out, .in = in};
    parallel_for_grain(n, parallel_grain(shape_size(l->in)), gap_forward_piece, &j);
}

/* Samples [b0, b1). */
static void gap_backward_piece(void *p, int b0, int b1)
{
    const struct gap_job *j = p;
    const struct layer *l = j->l;
    float *din = j->out, *dout = j->dout;
    const size_t HW = (size_t)l->in.h * (size_t)l->in.w;
    const int C = l->in.c;
    const float inv = 1.0f / (float)HW;
    for (int b = b0; b < b1; b++) {
        float *restrict g = dout + (size_t)b * C;
        /* dout may be overwritten: scale it once instead of per position. */
        for (int c = 0; c < C; c++)
            g[c] *= inv;
        float *restrict d = din + (size_t)b * HW * C;
        for (size_t p = 0; p < HW; p++) {
            float *r = d + p * C;
            for (int c = 0; c < C; c++)
                r[c] += g[c];
        }
    }
}

static void gap_backward(struct layer *l, float *din, float *dout, const float *in,
                         const float *out, int n, struct layer_ctx *ctx)
{
    if (!din)
        return;
    struct gap_job j = {.l = l, .out = din, .dout = dout};
    parallel_for_grain(n, parallel_grain(2 * shape_size(l->in)), gap_backward_piece, &j);
}

const struct layer_ops global_avg_pool_ops = {
    .type = "global_avg_pool",
    .kind = LAYER_GLOBAL_AVG_POOL,
    .configure = gap_configure,
    .params = gap_params,
    .col_size = NULL,
    .state_size = gap_state_size,
    .state_bind = gap_state_bind,
    .init = gap_init,
    .forward = gap_forward,
    .backward = gap_backward,
};
