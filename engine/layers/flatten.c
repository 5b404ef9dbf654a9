/*
 * flatten.c — Keras Flatten: a sample of h×w×c becomes 1×1×(h·w·c).
 *
 * NHWC storage already is the row-major flattening Keras uses, so the values
 * do not move: forward is a copy and backward passes the gradient through.
 */
#include "layer.h"

#include <string.h>

#include "../status.h"

static int flatten_configure(struct layer *l, char *err)
{
    if (l->in.h < 1 || l->in.w < 1 || l->in.c < 1)
        return strata_fail(err, STRATA_E_ARG, "layer '%s': input shape %dx%dx%d is empty",
                           l->cfg.name, l->in.h, l->in.w, l->in.c);
    if (shape_size(l->in) > (size_t)INT32_MAX)
        return strata_fail(err, STRATA_E_LIMIT,
                           "layer '%s': %zu values per sample is too many to flatten",
                           l->cfg.name, shape_size(l->in));
    l->out = (struct shape){.h = 1, .w = 1, .c = (int)shape_size(l->in)};
    return 0;
}

static int flatten_params(const struct layer *l, struct param_desc *desc)
{
    return 0;
}

static size_t flatten_state_size(const struct layer *l, int n)
{
    return 0;
}

static void flatten_state_bind(struct layer *l, void *block, int n)
{
}

static void flatten_init(struct layer *l, struct rng *r)
{
}

static void flatten_forward(const struct layer *l, float *out, const float *in, int n,
                            struct layer_ctx *ctx)
{
    if (n > 0 && out != in)
        memcpy(out, in, (size_t)n * shape_size(l->in) * sizeof(float));
}

static void flatten_backward(struct layer *l, float *din, float *dout, const float *in,
                             const float *out, int n, struct layer_ctx *ctx)
{
    if (!din)
        return;
    size_t total = (size_t)n * shape_size(l->in);
    for (size_t i = 0; i < total; i++)
        din[i] += dout[i];
}

/* The "flatten" layer type; configure fails only on an empty input. */
const struct layer_ops flatten_ops = {
    .type = "flatten",
    .kind = LAYER_FLATTEN,
    .configure = flatten_configure,
    .params = flatten_params,
    .col_size = NULL,
    .state_size = flatten_state_size,
    .state_bind = flatten_state_bind,
    .init = flatten_init,
    .forward = flatten_forward,
    .backward = flatten_backward,
};
