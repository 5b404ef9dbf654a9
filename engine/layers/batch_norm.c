/*
 * batch_norm.c — batch normalisation per channel over N·H·W, Keras
 * semantics, with an optional fused activation after it: its configuration,
 * its tensors and their initial values. The graph computes it
 * (ops/batch_norm.c):
 *
 *   inference  y = act(gamma · (x − moving_mean) / sqrt(moving_var + eps) + beta)
 *   training   y = act(gamma · xhat + beta),  xhat = (x − μ_B) / sqrt(σ²_B + eps),
 *              μ_B and σ²_B the batch mean and biased variance of a channel;
 *              the running statistics move towards them, momentum being the
 *              weight of the old value (default 0.99), the variance with
 *              Bessel's correction.
 */
#include "layer.h"

#include <math.h>

#include "../status.h"

static int bn_configure(struct layer *l, char *err)
{
    const struct layer_config *c = &l->cfg;
    if (l->in.h < 1 || l->in.w < 1 || l->in.c < 1)
        return strata_fail(err, STRATA_E_ARG, "layer '%s': input shape %dx%dx%d is empty",
                           c->name, l->in.h, l->in.w, l->in.c);
    if (!(c->epsilon > 0.0f) || !isfinite(c->epsilon))
        return strata_fail(err, STRATA_E_ARG,
                           "layer '%s': epsilon is %g, it must be a positive number "
                           "(Keras default 1e-3)",
                           c->name, (double)c->epsilon);
    if (!(c->momentum >= 0.0f && c->momentum <= 1.0f))
        return strata_fail(err, STRATA_E_ARG,
                           "layer '%s': momentum is %g, it must be in [0, 1] "
                           "(Keras default 0.99)",
                           c->name, (double)c->momentum);
    if ((unsigned)c->activation >= ACT_COUNT)
        return strata_fail(err, STRATA_E_ARG, "layer '%s': unknown activation %d", c->name,
                           (int)c->activation);
    l->out = l->in;
    return 0;
}

static int bn_params(const struct layer *l, struct param_desc *desc)
{
    static const char *const names[4] = {"gamma", "beta", "moving_mean", "moving_variance"};
    for (int i = 0; i < 4; i++) {
        desc[i] = (struct param_desc){
            .name = names[i], .ndim = 1, .dims = {l->in.c}, .trainable = i < 2};
    }
    return 4;
}

static void bn_init(struct layer *l, struct rng *r)
{
    for (int i = 0; i < l->in.c; i++) {
        l->w.gamma[i] = 1.0f;
        l->w.beta[i] = 0.0f;
        l->w.moving_mean[i] = 0.0f;
        l->w.moving_var[i] = 1.0f;
    }
}

const struct layer_ops batch_norm_ops = {
    .type = "batch_norm",
    .kind = LAYER_BATCH_NORM,
    .configure = bn_configure,
    .params = bn_params,
    .init = bn_init,
};
