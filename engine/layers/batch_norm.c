/*
 * batch_norm.c — batch normalisation per channel over N·H·W, Keras semantics,
 * with an optional fused activation after it.
 *
 *   inference  y = act(gamma · (x − moving_mean) / sqrt(moving_var + eps) + beta)
 *   training   y = act(gamma · xhat + beta),  xhat = (x − μ_B) · invstd,
 *              invstd = 1 / sqrt(σ²_B + eps), μ_B and σ²_B the batch mean and
 *              the *biased* batch variance over the M = N·H·W values of a channel.
 *
 * Training also updates the running statistics, Keras style (momentum is the
 * weight of the old value, default 0.99):
 *   moving_mean ← momentum · moving_mean + (1 − momentum) · μ_B
 *   moving_var  ← momentum · moving_var  + (1 − momentum) · σ²_B · M/(M − 1)
 * The variance fed to the running average is the unbiased one (Bessel's
 * correction), as PyTorch and TensorFlow's fused kernel do: the running value
 * estimates the population variance used at inference. With M = 1 the batch
 * variance is 0 and is used as is.
 *
 * Memory is NHWC, so each position holds C consecutive channels: every loop
 * runs over positions outside and channels inside, which keeps reads
 * sequential and lets the compiler vectorise the channel loop. Per-channel
 * accumulators live on the stack in blocks of BN_BLOCK channels; nothing is
 * allocated.
 *
 * Training state (layer_state, bound by state_bind into one block):
 *   xhat [n · H·W·C] floats, then mean [C], invstd [C].
 */
#include "layer.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#include "../status.h"

#define BN_BLOCK 256

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
    if (c->activation != ACT_NONE && c->activation != ACT_RELU &&
        c->activation != ACT_SIGMOID && c->activation != ACT_SOFTMAX)
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

static size_t bn_state_size(const struct layer *l, int n)
{
    return ((size_t)n * shape_size(l->in) + 2 * (size_t)l->in.c) * sizeof(float);
}

static void bn_state_bind(struct layer *l, void *block, int n)
{
    float *f = block;
    l->state.xhat = f;
    l->state.mean = f + (size_t)n * shape_size(l->in);
    l->state.invstd = l->state.mean + l->in.c;
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

/* out[p][c] = act(x[p][c] · scale[c] + shift[c]) for P positions of C channels,
 * channels [c0, c0 + cb). relu is applied here, in the same pass; the other
 * activations by the caller afterwards (softmax needs whole rows). */
static void bn_affine(float *restrict out, const float *restrict in, size_t P, int C, int c0,
                      int cb, const float *restrict scale, const float *restrict shift,
                      int relu)
{
    for (size_t p = 0; p < P; p++) {
        const float *x = in + p * (size_t)C + c0;
        float *y = out + p * (size_t)C + c0;
        if (relu) {
            for (int j = 0; j < cb; j++) {
                float v = x[j] * scale[j] + shift[j];
                y[j] = v > 0.0f ? v : 0.0f;
            }
        } else {
            for (int j = 0; j < cb; j++)
                y[j] = x[j] * scale[j] + shift[j];
        }
    }
}

static void bn_forward_inference(const struct layer *l, float *out, const float *in, size_t P)
{
    const int C = l->in.c;
    const int relu = l->cfg.activation == ACT_RELU;
    float scale[BN_BLOCK], shift[BN_BLOCK];
    for (int c0 = 0; c0 < C; c0 += BN_BLOCK) {
        int cb = C - c0 < BN_BLOCK ? C - c0 : BN_BLOCK;
        for (int j = 0; j < cb; j++) {
            int c = c0 + j;
            float s = l->w.gamma[c] / sqrtf(l->w.moving_var[c] + l->cfg.epsilon);
            scale[j] = s;
            shift[j] = l->w.beta[c] - l->w.moving_mean[c] * s;
        }
        bn_affine(out, in, P, C, c0, cb, scale, shift, relu);
    }
}

/* xhat = (x − mean)·invstd and y = gamma·xhat + beta (relu fused), one pass
 * over positions; restrict and the hoisted relu test let the channel loop
 * vectorise. */
static void bn_normalise(float *restrict out, float *restrict xhat, const float *restrict in,
                         size_t P, int C, const float *restrict mean,
                         const float *restrict invstd, const float *restrict gamma,
                         const float *restrict beta, int relu)
{
    for (size_t p = 0; p < P; p++) {
        const float *x = in + p * (size_t)C;
        float *xh = xhat + p * (size_t)C, *y = out + p * (size_t)C;
        if (relu) {
            for (int c = 0; c < C; c++) {
                float h = (x[c] - mean[c]) * invstd[c];
                float v = gamma[c] * h + beta[c];
                xh[c] = h;
                y[c] = v > 0.0f ? v : 0.0f;
            }
        } else {
            for (int c = 0; c < C; c++) {
                float h = (x[c] - mean[c]) * invstd[c];
                xh[c] = h;
                y[c] = gamma[c] * h + beta[c];
            }
        }
    }
}

/* Batch statistics in one pass over the input, the running-average update,
 * then xhat and y in a second pass.
 *
 * The statistics use shifted sums: with K a value of the channel (its first
 * one), S1 = Σ (x − K) and S2 = Σ (x − K)², mean = K + S1/M and
 * var = S2/M − (S1/M)². Plain E[x²] − E[x]² cancels catastrophically when
 * |mean| ≫ std; shifting by a sample of the same channel keeps both terms of
 * the order of var. The sums run in float over chunks of BN_CHUNK positions
 * (vectorised 4 or 8 wide, error ~BN_CHUNK·2⁻²⁴ relative) and the chunk sums
 * are added in double, so M can be 10⁶ without drift: 2.5× faster than
 * double throughout, and as accurate as the float input warrants. */
#define BN_CHUNK 64
static void bn_forward_training(const struct layer *l, float *out, const float *in, size_t P)
{
    const int C = l->in.c;
    float *mean = l->state.mean, *invstd = l->state.invstd, *xhat = l->state.xhat;
    assert(mean && invstd && xhat && "batch_norm: training forward needs state_bind");
    const float mom = l->cfg.momentum, eps = l->cfg.epsilon;
    double s1[BN_BLOCK], s2[BN_BLOCK];
    float k[BN_BLOCK], f1[BN_BLOCK], f2[BN_BLOCK];

    for (int c0 = 0; c0 < C; c0 += BN_BLOCK) {
        int cb = C - c0 < BN_BLOCK ? C - c0 : BN_BLOCK;
        for (int j = 0; j < cb; j++) {
            k[j] = in[c0 + j];
            s1[j] = s2[j] = 0.0;
        }
        for (size_t p0 = 0; p0 < P; p0 += BN_CHUNK) {
            size_t pe = P - p0 < BN_CHUNK ? P : p0 + BN_CHUNK;
            for (int j = 0; j < cb; j++)
                f1[j] = f2[j] = 0.0f;
            for (size_t p = p0; p < pe; p++) {
                const float *x = in + p * (size_t)C + c0;
                for (int j = 0; j < cb; j++) {
                    float d = x[j] - k[j];
                    f1[j] += d;
                    f2[j] += d * d;
                }
            }
            for (int j = 0; j < cb; j++) {
                s1[j] += f1[j];
                s2[j] += f2[j];
            }
        }
        for (int j = 0; j < cb; j++) {
            int c = c0 + j;
            double dm = s1[j] / (double)P;
            double var = s2[j] / (double)P - dm * dm;
            var = var > 0.0 ? var : 0.0;
            mean[c] = (float)((double)k[j] + dm);
            double unbiased = P > 1 ? var * (double)P / (double)(P - 1) : var;
            invstd[c] = (float)(1.0 / sqrt(var + (double)eps));
            l->w.moving_mean[c] = mom * l->w.moving_mean[c] + (1.0f - mom) * mean[c];
            l->w.moving_var[c] = mom * l->w.moving_var[c] + (1.0f - mom) * (float)unbiased;
        }
    }

    bn_normalise(out, xhat, in, P, C, mean, invstd, l->w.gamma, l->w.beta,
                 l->cfg.activation == ACT_RELU);
}

static void bn_forward(const struct layer *l, float *out, const float *in, int n,
                       struct layer_ctx *ctx)
{
    size_t P = (size_t)n * (size_t)l->in.h * (size_t)l->in.w;
    if (P == 0)
        return;
    if (ctx->training)
        bn_forward_training(l, out, in, P);
    else
        bn_forward_inference(l, out, in, P);
    if (l->cfg.activation != ACT_RELU)
        activation_forward(l->cfg.activation, out, (int)P, l->in.c);
}

/* Training mode. With g = dL/dy (pre-activation) and M values per channel,
 *   dbeta  = Σ g          dgamma = Σ g · xhat
 *   dx     = gamma · invstd / M · (M g − Σ g − xhat · Σ g·xhat)
 * the last being the chain rule through xhat, μ_B and σ²_B together. */
static void bn_backward_training(struct layer *l, float *din, const float *g, size_t P)
{
    const int C = l->in.c;
    const float *xhat = l->state.xhat, *invstd = l->state.invstd;
    assert(xhat && invstd && "batch_norm: backward needs the training forward's state");
    double sg[BN_BLOCK], sgx[BN_BLOCK];
    float k[BN_BLOCK], a[BN_BLOCK], b[BN_BLOCK], f1[BN_BLOCK], f2[BN_BLOCK];

    for (int c0 = 0; c0 < C; c0 += BN_BLOCK) {
        int cb = C - c0 < BN_BLOCK ? C - c0 : BN_BLOCK;
        for (int j = 0; j < cb; j++)
            sg[j] = sgx[j] = 0.0;
        /* float within a chunk, double across chunks, as in the forward */
        for (size_t p0 = 0; p0 < P; p0 += BN_CHUNK) {
            size_t pe = P - p0 < BN_CHUNK ? P : p0 + BN_CHUNK;
            for (int j = 0; j < cb; j++)
                f1[j] = f2[j] = 0.0f;
            for (size_t p = p0; p < pe; p++) {
                const float *gp = g + p * (size_t)C + c0, *xp = xhat + p * (size_t)C + c0;
                for (int j = 0; j < cb; j++) {
                    f1[j] += gp[j];
                    f2[j] += gp[j] * xp[j];
                }
            }
            for (int j = 0; j < cb; j++) {
                sg[j] += f1[j];
                sgx[j] += f2[j];
            }
        }
        if (l->grad.gamma) {
            for (int j = 0; j < cb; j++) {
                l->grad.gamma[c0 + j] += (float)sgx[j];
                l->grad.beta[c0 + j] += (float)sg[j];
            }
        }
        if (!din)
            continue;
        /* dx = k · (g − a − xhat · b), k = gamma·invstd, a = Σg/M, b = Σg·xhat/M */
        for (int j = 0; j < cb; j++) {
            k[j] = l->w.gamma[c0 + j] * invstd[c0 + j];
            a[j] = (float)(sg[j] / (double)P);
            b[j] = (float)(sgx[j] / (double)P);
        }
        for (size_t p = 0; p < P; p++) {
            const float *gp = g + p * (size_t)C + c0, *xp = xhat + p * (size_t)C + c0;
            float *dx = din + p * (size_t)C + c0;
            for (int j = 0; j < cb; j++)
                dx[j] += k[j] * (gp[j] - a[j] - xp[j] * b[j]);
        }
    }
}

/* Inference mode (frozen statistics, e.g. a saliency gradient through a
 * trained model): the layer is affine per channel, y = s·x + t with
 * s = gamma/sqrt(moving_var + eps), so dx = s·g, dgamma = Σ g·(x − mm)/sd,
 * dbeta = Σ g. The running statistics get no gradient. */
static void bn_backward_inference(struct layer *l, float *din, const float *g, const float *in,
                                  size_t P)
{
    const int C = l->in.c;
    double sg[BN_BLOCK], sgx[BN_BLOCK];
    float s[BN_BLOCK], inv[BN_BLOCK];

    for (int c0 = 0; c0 < C; c0 += BN_BLOCK) {
        int cb = C - c0 < BN_BLOCK ? C - c0 : BN_BLOCK;
        for (int j = 0; j < cb; j++) {
            inv[j] = 1.0f / sqrtf(l->w.moving_var[c0 + j] + l->cfg.epsilon);
            s[j] = l->w.gamma[c0 + j] * inv[j];
            sg[j] = sgx[j] = 0.0;
        }
        for (size_t p = 0; p < P; p++) {
            const float *gp = g + p * (size_t)C + c0, *xp = in + p * (size_t)C + c0;
            if (din) {
                float *dx = din + p * (size_t)C + c0;
                for (int j = 0; j < cb; j++)
                    dx[j] += s[j] * gp[j];
            }
            if (l->grad.gamma) {
                for (int j = 0; j < cb; j++) {
                    sg[j] += gp[j];
                    sgx[j] += (double)gp[j] * ((xp[j] - l->w.moving_mean[c0 + j]) * inv[j]);
                }
            }
        }
        if (l->grad.gamma) {
            for (int j = 0; j < cb; j++) {
                l->grad.gamma[c0 + j] += (float)sgx[j];
                l->grad.beta[c0 + j] += (float)sg[j];
            }
        }
    }
}

/* ctx->training selects which forward is being differentiated: it must match
 * the forward that produced `out`. */
static void bn_backward(struct layer *l, float *din, float *dout, const float *in,
                        const float *out, int n, struct layer_ctx *ctx)
{
    size_t P = (size_t)n * (size_t)l->in.h * (size_t)l->in.w;
    if (P == 0)
        return;
    if (!ctx->dout_is_preact)
        activation_backward(l->cfg.activation, dout, out, (int)P, l->in.c);
    if (ctx->training)
        bn_backward_training(l, din, dout, P);
    else
        bn_backward_inference(l, din, dout, in, P);
}

const struct layer_ops batch_norm_ops = {
    .type = "batch_norm",
    .kind = LAYER_BATCH_NORM,
    .configure = bn_configure,
    .params = bn_params,
    .col_size = NULL,
    .state_size = bn_state_size,
    .state_bind = bn_state_bind,
    .init = bn_init,
    .forward = bn_forward,
    .backward = bn_backward,
};
