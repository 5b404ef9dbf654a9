/*
 * global_avg_pool.c — the mean of each channel over all positions
 * (H×W×C → 1×1×C): its configuration. The graph computes it
 * (GlobalAveragePool, ops/pool.c).
 */
#include "layer.h"

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

static void gap_init(struct layer *l, struct rng *r)
{
}

const struct layer_ops global_avg_pool_ops = {
    .type = "global_avg_pool",
    .kind = LAYER_GLOBAL_AVG_POOL,
    .configure = gap_configure,
    .params = gap_params,
    .init = gap_init,
};
