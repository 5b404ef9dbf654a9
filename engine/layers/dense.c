/*
 * dense.c — fully connected layer (Keras Dense) as one OpenBLAS GEMM per batch.
 *
 * Each sample is read as a flat vector of I = h·w·c floats (NHWC order, so a
 * dense layer straight after a convolution sees exactly what Keras's Flatten
 * gives it), the kernel is [I][U] row-major and the bias [U]:
 *   forward   out[n×U] = in[n×I] · W[I×U] + b, then the fused activation
 *   backward  dz = dout turned into the pre-activation gradient
 *             db += Σ_rows dz,  dW += inᵀ · dz,  din += dz · Wᵀ
 * The output shape is 1×1×U.
 */
#include "layer.h"

#include <assert.h>
#include <cblas.h>
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
    if (c->activation != ACT_NONE && c->activation != ACT_RELU &&
        c->activation != ACT_SIGMOID && c->activation != ACT_SOFTMAX)
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

static size_t dense_state_size(const struct layer *l, int n)
{
    return 0;
}

static void dense_state_bind(struct layer *l, void *block, int n)
{
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

static void dense_forward(const struct layer *l, float *out, const float *in, int n,
                          struct layer_ctx *ctx)
{
    const int ni = (int)shape_size(l->in), nu = l->cfg.units;
    if (n <= 0)
        return;
    /* Start from the bias (or zero) and let the GEMM add in · W (beta = 1):
     * one pass over out instead of two. */
    if (l->cfg.use_bias) {
        for (int i = 0; i < n; i++)
            memcpy(out + (size_t)i * nu, l->w.bias, (size_t)nu * sizeof(float));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, nu, ni, 1.0f, in, ni,
                l->w.kernel, nu, l->cfg.use_bias ? 1.0f : 0.0f, out, nu);
    activation_forward(l->cfg.activation, out, n, nu);
}

static void dense_backward(struct layer *l, float *din, float *dout, const float *in,
                           const float *out, int n, struct layer_ctx *ctx)
{
    const int ni = (int)shape_size(l->in), nu = l->cfg.units;
    if (n <= 0)
        return;
    assert(l->grad.kernel && (!l->cfg.use_bias || l->grad.bias));
    if (!ctx->dout_is_preact)
        activation_backward(l->cfg.activation, dout, out, n, nu);
    if (l->cfg.use_bias) {
        float *db = l->grad.bias;
        for (int i = 0; i < n; i++)
            for (int u = 0; u < nu; u++)
                db[u] += dout[(size_t)i * nu + u];
    }
    /* dW[I×U] += inᵀ[I×n] · dz[n×U] */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ni, nu, n, 1.0f, in, ni, dout, nu,
                1.0f, l->grad.kernel, nu);
    /* din[n×I] += dz[n×U] · Wᵀ[U×I] */
    if (din)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, ni, nu, 1.0f, dout, nu,
                    l->w.kernel, nu, 1.0f, din, ni);
}

/* The "dense" layer type. Kernels follow layer.h: nothing allocated, gradients
 * accumulated, dout overwritten with the pre-activation gradient, din may be
 * NULL. configure fails (STRATA_E_ARG / STRATA_E_LIMIT, message naming the
 * layer and the field) on units < 1 or an unknown activation. */
const struct layer_ops dense_ops = {
    .type = "dense",
    .kind = LAYER_DENSE,
    .configure = dense_configure,
    .params = dense_params,
    .col_size = NULL,
    .state_size = dense_state_size,
    .state_bind = dense_state_bind,
    .init = dense_init,
    .forward = dense_forward,
    .backward = dense_backward,
};
