/*
 * dropout.c — inverted dropout: the identity at inference; in training each
 * value is kept with probability 1 − rate and scaled by 1 / (1 − rate). Its
 * configuration; the graph computes it (ops/dropout.c).
 */
#include "layer.h"

#include <math.h>

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

static void dropout_init(struct layer *l, struct rng *r)
{
}

/* The "dropout" layer type. configure fails (STRATA_E_ARG) unless 0 <= rate < 1. */
const struct layer_ops dropout_ops = {
    .type = "dropout",
    .kind = LAYER_DROPOUT,
    .configure = dropout_configure,
    .params = dropout_params,
    .init = dropout_init,
};
