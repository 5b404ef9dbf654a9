/*
 * dense.c — fully connected layer (Keras Dense): its configuration, its
 * tensors and their initial values.
 *
 * Each sample is read as a flat vector of I = h·w·c floats (NHWC order, so a
 * dense layer straight after a convolution sees exactly what Keras's Flatten
 * gives it), the kernel is [I][U] row-major and the bias [U]:
 * out[n×U] = in[n×I] · W[I×U] + b, then the fused activation (the graph's
 * Gemm, ops/gemm.c). The output shape is 1×1×U.
 */
#include "layer.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../status.h"

static int dense_configure(struct layer *l, char *err)
{
    struct layer_config *c = &l->cfg;
    if (l->in.h < 1 || l->in.w < 1 || l->in.c < 1)
        return strata_fail(err, STRATA_E_ARG, "layer '%s': input shape %dx%dx%d is empty",
                           c->name, l->in.h, l->in.w, l->in.c);
    if (c->units < 1)
        return strata_fail(err, STRATA_E_ARG, "layer '%s': units is %d, it must be >= 1",
                           c->name, c->units);
    if ((unsigned)c->activation >= ACT_COUNT)
        return strata_fail(err, STRATA_E_ARG, "layer '%s': unknown activation %d", c->name,
                           (int)c->activation);
    /* GEMM dimensions are ints; the kernel must also be addressable. */
    if (shape_size(l->in) > (size_t)INT32_MAX ||
        (double)shape_size(l->in) * c->units > (double)((size_t)1 << 31))
        return strata_fail(err, STRATA_E_LIMIT,
                           "layer '%s': %zu inputs x %d units is too large; put a pooling "
                           "layer before it",
                           c->name, shape_size(l->in), c->units);
    l->out = (struct shape){.h = 1, .w = 1, .c = c->units};
    return 0;
}

static int dense_params(const struct layer *l, struct param_desc *desc)
{
    const struct layer_config *c = &l->cfg;
    desc[0] = (struct param_desc){
        .name = "kernel", .ndim = 2, .dims = {(int)shape_size(l->in), c->units},
        .trainable = 1};
    if (!c->use_bias)
        return 1;
    desc[1] = (struct param_desc){.name = "bias", .ndim = 1, .dims = {c->units},
                                  .trainable = 1};
    return 2;
}

/* He-uniform ahead of a relu, Glorot-uniform otherwise (Keras's defaults),
 * fan_in = I, fan_out = U; zero bias. */
static void dense_init(struct layer *l, struct rng *r)
{
    const struct layer_config *c = &l->cfg;
    double fan_in = (double)shape_size(l->in), fan_out = c->units;
    double limit = c->activation == ACT_RELU ? sqrt(6.0 / fan_in)
                                             : sqrt(6.0 / (fan_in + fan_out));
    size_t nk = shape_size(l->in) * (size_t)c->units;
    for (size_t i = 0; i < nk; i++)
        l->w.kernel[i] = (float)((2.0 * rng_uniform(r) - 1.0) * limit);
    if (c->use_bias)
        memset(l->w.bias, 0, (size_t)c->units * sizeof(float));
}

/* The "dense" layer type. configure fails (STRATA_E_ARG / STRATA_E_LIMIT, message naming the
 * layer and the field) on units < 1 or an unknown activation. */
const struct layer_ops dense_ops = {
    .type = "dense",
    .kind = LAYER_DENSE,
    .configure = dense_configure,
    .params = dense_params,
    .init = dense_init,
};
