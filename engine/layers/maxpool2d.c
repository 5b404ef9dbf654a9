/*
 * maxpool2d.c — max pooling over pool×pool windows with a stride: its
 * configuration. The graph computes it (ops/pool.c).
 *
 * Output size (TensorFlow's rules):
 *   valid  out = floor((in − pool) / stride) + 1
 *   same   out = ceil(in / stride); the window grid is padded by
 *          pad_total = max((out − 1)·stride + pool − in, 0), the smaller half
 *          (pad_total / 2) before and the rest after; padded positions never
 *          win.
 */
#include "layer.h"

#include <stdint.h>

#include "../status.h"

static int mp_out_size(int in, int pool, int stride, enum padding pad)
{
    if (pad == PADDING_SAME)
        return (in + stride - 1) / stride;
    return (in - pool) / stride + 1;
}

static int mp_configure(struct layer *l, char *err)
{
    struct layer_config *c = &l->cfg;
    if (l->in.h < 1 || l->in.w < 1 || l->in.c < 1)
        return strata_fail(err, STRATA_E_ARG, "layer '%s': input shape %dx%dx%d is empty",
                           c->name, l->in.h, l->in.w, l->in.c);
    if (c->pool < 1)
        return strata_fail(err, STRATA_E_ARG, "layer '%s': pool_size is %d, it must be >= 1",
                           c->name, c->pool);
    if (c->stride == 0)
        c->stride = c->pool;
    if (c->stride < 1)
        return strata_fail(err, STRATA_E_ARG, "layer '%s': strides is %d, it must be >= 1",
                           c->name, c->stride);
    if (c->padding != PADDING_VALID && c->padding != PADDING_SAME)
        return strata_fail(err, STRATA_E_ARG,
                           "layer '%s': padding must be \"valid\" or \"same\"", c->name);
    if (c->activation != ACT_NONE)
        return strata_fail(err, STRATA_E_ARG,
                           "layer '%s': maxpool2d takes no activation (got \"%s\")", c->name,
                           activation_name(c->activation));
    if (c->padding == PADDING_VALID && (l->in.h < c->pool || l->in.w < c->pool))
        return strata_fail(err, STRATA_E_ARG,
                           "layer '%s': pool_size %d is larger than the %dx%d input; "
                           "use padding \"same\" or a smaller pool",
                           c->name, c->pool, l->in.h, l->in.w);
    if (shape_size(l->in) > (size_t)INT32_MAX)
        return strata_fail(err, STRATA_E_LIMIT,
                           "layer '%s': input of %zu values per sample is too large",
                           c->name, shape_size(l->in));
    l->out = (struct shape){
        .h = mp_out_size(l->in.h, c->pool, c->stride, c->padding),
        .w = mp_out_size(l->in.w, c->pool, c->stride, c->padding),
        .c = l->in.c,
    };
    return 0;
}

static int mp_params(const struct layer *l, struct param_desc *desc)
{
    return 0;
}

static void mp_init(struct layer *l, struct rng *r)
{
}

const struct layer_ops maxpool2d_ops = {
    .type = "maxpool2d",
    .kind = LAYER_MAXPOOL2D,
    .configure = mp_configure,
    .params = mp_params,
    .init = mp_init,
};
