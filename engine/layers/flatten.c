/*
 * flatten.c — H×W×C read as 1×1×(H·W·C) in NHWC order, as Keras's Flatten:
 * its configuration. The graph writes it as a Transpose to channels last and
 * a Flatten.
 */
#include "layer.h"

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

static void flatten_init(struct layer *l, struct rng *r)
{
}

/* The "flatten" layer type; configure fails only on an empty input. */
const struct layer_ops flatten_ops = {
    .type = "flatten",
    .kind = LAYER_FLATTEN,
    .configure = flatten_configure,
    .params = flatten_params,
    .init = flatten_init,
};
