/*
 * conv2d.c — 2-D convolution layer (Keras Conv2D): its configuration, its
 * tensors and their initial values. The graph computes it (ops/conv.c).
 *
 * Shapes: input H×W×C, kernel [k][k][C/G][F] (HWIO), bias [F], output Ho×Wo×F.
 * With G groups, filters [g·F/G, (g+1)·F/G) read channels [g·C/G, (g+1)·C/G)
 * alone (ONNX's group); G = C is a depthwise convolution.
 *   valid  Ho = floor((H − k) / s) + 1
 *   same   Ho = ceil(H / s); pad_total = max((Ho − 1)·s + k − H, 0), of which
 *          pad_total / 2 goes on top and the rest (one more when odd) at the
 *          bottom — TensorFlow's rule, ONNX's SAME_UPPER. Likewise for the
 *          width.
 */
#include "layer.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../status.h"

static int conv_out_size(int in, int k, int s, enum padding pad)
{
    if (pad == PADDING_SAME)
        return (in + s - 1) / s;
    return in >= k ? (in - k) / s + 1 : 0;
}

static int conv_configure(struct layer *l, char *err)
{
    struct layer_config *c = &l->cfg;
    if (l->in.h < 1 || l->in.w < 1 || l->in.c < 1)
        return strata_fail(err, STRATA_E_ARG,
                           "layer '%s': input shape %dx%dx%d is empty or its channel "
                           "count is unknown",
                           c->name, l->in.h, l->in.w, l->in.c);
    if (c->filters < 1)
        return strata_fail(err, STRATA_E_ARG, "layer '%s': filters is %d, it must be >= 1",
                           c->name, c->filters);
    if (c->kernel < 1)
        return strata_fail(err, STRATA_E_ARG,
                           "layer '%s': kernel_size is %d, it must be >= 1", c->name,
                           c->kernel);
    /* 0 means "not given": Keras's default stride is 1. */
    if (c->stride == 0)
        c->stride = 1;
    if (c->stride < 1)
        return strata_fail(err, STRATA_E_ARG, "layer '%s': strides is %d, it must be >= 1",
                           c->name, c->stride);
    if (c->groups == 0)
        c->groups = 1; /* not given */
    if (c->groups < 1 || l->in.c % c->groups || c->filters % c->groups)
        return strata_fail(err, STRATA_E_ARG,
                           "layer '%s': groups is %d; it must divide both the %d input "
                           "channels and the %d filters (groups = channels: depthwise)",
                           c->name, c->groups, l->in.c, c->filters);
    if (c->padding != PADDING_VALID && c->padding != PADDING_SAME)
        return strata_fail(err, STRATA_E_ARG,
                           "layer '%s': padding must be \"valid\" or \"same\"", c->name);
    if ((unsigned)c->activation >= ACT_COUNT)
        return strata_fail(err, STRATA_E_ARG, "layer '%s': unknown activation %d", c->name,
                           (int)c->activation);
    /* Keeps every index of the kernels (and K, a GEMM dimension) in an int. */
    if ((int64_t)c->kernel * c->kernel * l->in.c > (1 << 24) ||
        (int64_t)c->kernel * c->kernel * l->in.c * c->filters > (1 << 28) ||
        shape_size(l->in) > (size_t)INT32_MAX)
        return strata_fail(err, STRATA_E_LIMIT,
                           "layer '%s': a %dx%d kernel over %d channels with %d filters on a "
                           "%dx%d input is too large",
                           c->name, c->kernel, c->kernel, l->in.c, c->filters, l->in.h,
                           l->in.w);
    int ho = conv_out_size(l->in.h, c->kernel, c->stride, c->padding);
    int wo = conv_out_size(l->in.w, c->kernel, c->stride, c->padding);
    if (ho < 1 || wo < 1)
        return strata_fail(err, STRATA_E_ARG,
                           "layer '%s': kernel_size %d is larger than the %dx%d input; use "
                           "padding \"same\" or a smaller kernel",
                           c->name, c->kernel, l->in.h, l->in.w);
    if ((int64_t)ho * wo * c->filters > INT32_MAX)
        return strata_fail(err, STRATA_E_LIMIT,
                           "layer '%s': output of %dx%dx%d values per sample is too large",
                           c->name, ho, wo, c->filters);
    l->out = (struct shape){.h = ho, .w = wo, .c = c->filters};
    return 0;
}

static int conv_params(const struct layer *l, struct param_desc *desc)
{
    const struct layer_config *c = &l->cfg;
    desc[0] = (struct param_desc){
        .name = "kernel", .ndim = 4,
        .dims = {c->kernel, c->kernel, l->in.c / c->groups, c->filters}, .trainable = 1};
    if (!c->use_bias)
        return 1;
    desc[1] = (struct param_desc){
        .name = "bias", .ndim = 1, .dims = {c->filters}, .trainable = 1};
    return 2;
}

/* Keras's defaults: He-uniform ahead of a relu or relu6 (keeps the
 * activations' variance from layer to layer), Glorot-uniform otherwise;
 * fan_in = k·k·C/groups (what one filter reads) and fan_out = k·k·F/groups.
 * Biases start at zero. */
static void conv_init(struct layer *l, struct rng *r)
{
    const struct layer_config *c = &l->cfg;
    const int cin = l->in.c / c->groups; /* what one filter reads */
    double fan_in = (double)c->kernel * c->kernel * cin;
    double fan_out = (double)c->kernel * c->kernel * c->filters / c->groups;
    double limit = c->activation == ACT_RELU || c->activation == ACT_RELU6 ? sqrt(6.0 / fan_in)
                                                                         : sqrt(6.0 / (fan_in + fan_out));
    size_t nk = (size_t)c->kernel * c->kernel * cin * c->filters;
    for (size_t i = 0; i < nk; i++)
        l->w.kernel[i] = (float)((2.0 * rng_uniform(r) - 1.0) * limit);
    if (c->use_bias)
        memset(l->w.bias, 0, (size_t)c->filters * sizeof(float));
}

/* The "conv2d" layer type. configure fails (STRATA_E_ARG / STRATA_E_LIMIT,
 * message naming the layer and the field) on filters, kernel_size or strides
 * < 1, an unknown padding or activation, a kernel larger than a valid-padded
 * input, or sizes that would overflow. A stride of 0 means "not given" and
 * becomes 1, as in Keras. */
const struct layer_ops conv2d_ops = {
    .type = "conv2d",
    .kind = LAYER_CONV2D,
    .configure = conv_configure,
    .params = conv_params,
    .init = conv_init,
};
