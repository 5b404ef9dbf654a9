/*
 * batch_norm.c — BatchNormalization (ONNX), float32: forward and backward,
 * for inference and for strata's training steps.
 *
 *   X [N, C, D1, ..., Dk] (k ≥ 0; a 1-D X of N values has C = 1),
 *   scale, B, input_mean, input_var [C]  ->  Y like X
 *
 * Inference, with the stored statistics:
 *   Y[n, c, ...] = scale[c] · (X[n, c, ...] − mean[c]) / √(var[c] + ε) + B[c]
 *                = a[c] · X[n, c, ...] + b[c],
 *   a[c] = scale[c] / √(var[c] + ε),  b[c] = B[c] − mean[c] · a[c]
 * Backward, with mean and var held constant (their din is never written):
 *   dX[n, c, ...] += a[c] · dY[n, c, ...]
 *   dscale[c]     += Σ_{n, ...} dY · (X − mean[c]) / √(var[c] + ε)
 *   dB[c]         += Σ_{n, ...} dY
 *
 * Training (op_ctx.training), with the batch's statistics over the M values
 * of a channel: μ = mean, σ² = the biased variance, x̂ = (X − μ)/√(σ² + ε),
 *   Y = scale · x̂ + B
 *   dX += scale/√(σ² + ε) · (dY − Σ dY / M − x̂ · Σ(dY · x̂) / M)
 *   dscale += Σ dY · x̂,  dB += Σ dY
 * and the running statistics in input_mean and input_var are updated in
 * place, momentum being the weight of the old value (ONNX's and Keras's
 * convention; ONNX's default 0.9):
 *   mean ← momentum · mean + (1 − momentum) · μ
 *   var  ← momentum · var  + (1 − momentum) · σ² · M/(M − 1)
 * The variance fed to the running average is the unbiased one, as PyTorch
 * does (σ² itself when M = 1): it estimates the variance inference uses. μ
 * and 1/√(σ² + ε) are kept in op_ctx.state for backward. The sums are
 * taken in one pass over the values shifted by the channel's first one (s):
 * σ² = Σ(x − s)²/M − (μ − s)², each block of 256 values in float and the
 * blocks in double.
 *
 * Attributes by opset: epsilon (all), momentum, is_test (opset 6; any value
 * accepted), spatial (opset 6–8; must be 1: per-channel statistics),
 * training_mode (opset 14+; must be 0: a file states no mode, strata's
 * trainer chooses it). Outputs beyond Y (the running or saved statistics)
 * are refused.
 *
 * Channels are independent: inference forward runs planes (n, c); training
 * forward and every backward run whole channels, on the engine's threads
 * (parallel.h), each sum in one piece and in one order: the results do not
 * depend on the thread count.
 */
#include "op.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>

#include "../parallel.h"
#include "../status.h"

struct bn_params {
    float epsilon;
    float momentum;
};

static int bn_setup(struct node *node, char *err)
{
    struct bn_params p;
    int64_t spatial, training_mode, is_test;
    int rc;
    if ((rc = node_attr_float(node, "epsilon", 1e-5f, &p.epsilon, err)) < 0 ||
        (rc = node_attr_float(node, "momentum", 0.9f, &p.momentum, err)) < 0 ||
        (rc = node_attr_int(node, "spatial", 1, &spatial, err)) < 0 ||
        (rc = node_attr_int(node, "training_mode", 0, &training_mode, err)) < 0 ||
        (rc = node_attr_int(node, "is_test", 0, &is_test, err)) < 0)
        return rc;
    if (!(p.epsilon >= 0.0f) || !isfinite(p.epsilon))
        return node_fail(node, err, STRATA_E_FORMAT,
                         "attribute 'epsilon' is %g; it must be a finite value >= 0",
                         (double)p.epsilon);
    if (!(p.momentum >= 0.0f && p.momentum <= 1.0f))
        return node_fail(node, err, STRATA_E_FORMAT,
                         "attribute 'momentum' is %g; it must be in [0, 1]", (double)p.momentum);
    if (spatial != 1)
        return node_fail(node, err, STRATA_E_UNSUPPORTED,
                         "attribute 'spatial' is %lld; only spatial = 1 (statistics per "
                         "channel) is supported",
                         (long long)spatial);
    if (training_mode != 0)
        return node_fail(node, err, STRATA_E_UNSUPPORTED,
                         "attribute 'training_mode' is %lld; only inference mode "
                         "(training_mode = 0) is supported in a file, strata's trainer "
                         "chooses the mode: export the model in evaluation mode",
                         (long long)training_mode);
    for (int j = 1; j < node->n_outputs; j++)
        if (!node->outputs || node->outputs[j] >= 0)
            return node_fail(node, err, STRATA_E_UNSUPPORTED,
                             "output %d (a training statistic) is not supported; only Y is",
                             j);
    struct bn_params *q = malloc(sizeof *q);
    if (!q)
        return node_fail(node, err, STRATA_E_NOMEM, "out of memory");
    *q = p;
    node->params = q;
    return 0;
}

static int bn_infer(const struct node *node, const struct tview *const *in,
                    struct tview *const *out, char *err)
{
    static const char *const names[] = {"X", "scale", "B", "input_mean", "input_var"};
    const struct bn_params *p = node->params;
    const struct tview *x = in[0];
    char sx[96], sv[96];
    for (int i = 0; i < 5; i++) {
        if (!in[i])
            return node_fail(node, err, STRATA_E_FORMAT, "input %s is required", names[i]);
        if (in[i]->dtype != DTYPE_FLOAT)
            return node_fail(node, err, STRATA_E_UNSUPPORTED,
                             "input %s is not float32; only float32 is supported", names[i]);
    }
    if (x->ndim < 1)
        return node_fail(node, err, STRATA_E_FORMAT, "input X is a scalar");
    const int64_t C = x->ndim >= 2 ? x->dims[1] : 1;
    if (tview_count(x) > INT_MAX || (x->ndim >= 2 && x->dims[0] * C > INT_MAX))
        return node_fail(node, err, STRATA_E_LIMIT, "input X %s is too large",
                         dims_format(x, sx, sizeof sx));
    for (int i = 1; i < 5; i++)
        if (in[i]->ndim != 1 || in[i]->dims[0] != C)
            return node_fail(node, err, STRATA_E_FORMAT,
                             "input %s is %s; X %s has %lld channels", names[i],
                             dims_format(in[i], sv, sizeof sv), dims_format(x, sx, sizeof sx),
                             (long long)C);
    if (in[4]->data) {
        const float *var = tview_f(in[4]);
        for (int64_t c = 0; c < C; c++)
            if (!(var[c] + p->epsilon > 0.0f))
                return node_fail(node, err, STRATA_E_FORMAT,
                                 "input_var[%lld] + epsilon is %g; it must be > 0",
                                 (long long)c, (double)(var[c] + p->epsilon));
    }
    out[0]->dtype = DTYPE_FLOAT;
    out[0]->ndim = x->ndim;
    for (int i = 0; i < x->ndim; i++)
        out[0]->dims[i] = x->dims[i];
    return 0;
}

/* How X is laid out around its channel axis: `outer` blocks (images) of C
 * planes of `inner` values. */
struct bn_job {
    int outer, C, inner;
    float eps, momentum;
    const float *x, *scale, *bias, *mean, *var, *dy;
    float *y, *dx, *dscale, *dbias;
    float *batch_mean, *batch_invstd;   /* training: [C] each, in op_ctx.state */
    float *running_mean, *running_var;  /* training forward: updated in place */
};

static struct bn_job bn_job_of(const struct node *node, const struct tview *const *in)
{
    const struct tview *x = in[0];
    const struct bn_params *p = node->params;
    struct bn_job j = {.eps = p->epsilon, .momentum = p->momentum, .x = tview_f(x),
                       .scale = tview_f(in[1]),
                       .bias = tview_f(in[2]), .mean = tview_f(in[3]), .var = tview_f(in[4])};
    if (x->ndim == 1) {
        j.outer = (int)x->dims[0];
        j.C = j.inner = 1;
    } else {
        j.outer = (int)x->dims[0];
        j.C = (int)x->dims[1];
        int64_t inner = 1;
        for (int i = 2; i < x->ndim; i++)
            inner *= x->dims[i];
        j.inner = (int)inner;
    }
    return j;
}

/* Inference: channel c is y = a·x + b. */
static inline void bn_affine_of(const struct bn_job *j, int c, float *a, float *b)
{
    *a = j->scale[c] / sqrtf(j->var[c] + j->eps);
    *b = j->bias[c] - j->mean[c] * *a;
}

static void bn_forward_piece(void *ctx, int i0, int i1)
{
    const struct bn_job *j = ctx;
    for (int i = i0; i < i1; i++) {
        const int c = i % j->C;
        float a, b;
        bn_affine_of(j, c, &a, &b);
        const float *xp = j->x + (size_t)i * j->inner;
        float *yp = j->y + (size_t)i * j->inner;
        for (int k = 0; k < j->inner; k++)
            yp[k] = a * xp[k] + b;
    }
}

/* Σ (p[k] − shift) and Σ (p[k] − shift)² over n floats, added into *sum and
 * *sq (double): float partial sums in eight lanes over blocks of
 * BN_BLOCK_SUM values, each block added in double. A fixed order, whatever
 * the thread, that vectorises. */
#define BN_BLOCK_SUM 256
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
static void bn_sums(const float *p, int n, float shift, double *sum, double *sq)
{
    for (int b = 0; b < n; b += BN_BLOCK_SUM) {
        const int e = n - b < BN_BLOCK_SUM ? n : b + BN_BLOCK_SUM;
        float s8[8] = {0}, q8[8] = {0};
        int k = b;
        for (; k + 8 <= e; k += 8)
            for (int l = 0; l < 8; l++) {
                const float d = p[k + l] - shift;
                s8[l] += d;
                q8[l] += d * d;
            }
        for (int l = 0; k < e; k++, l++) {
            const float d = p[k] - shift;
            s8[l] += d;
            q8[l] += d * d;
        }
        for (int l = 0; l < 8; l++) {
            *sum += s8[l];
            *sq += q8[l];
        }
    }
}

/* Σ dy[k] and Σ dy[k]·(x[k] − mean), likewise. */
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
static void bn_grad_sums(const float *dy, const float *x, float mean, int n, double *sum_dy,
                         double *sum_dy_xc)
{
    for (int b = 0; b < n; b += BN_BLOCK_SUM) {
        const int e = n - b < BN_BLOCK_SUM ? n : b + BN_BLOCK_SUM;
        float s8[8] = {0}, q8[8] = {0};
        int k = b;
        for (; k + 8 <= e; k += 8)
            for (int l = 0; l < 8; l++) {
                s8[l] += dy[k + l];
                q8[l] += dy[k + l] * (x[k + l] - mean);
            }
        for (int l = 0; k < e; k++, l++) {
            s8[l] += dy[k];
            q8[l] += dy[k] * (x[k] - mean);
        }
        for (int l = 0; l < 8; l++) {
            *sum_dy += s8[l];
            *sum_dy_xc += q8[l];
        }
    }
}

/* Training forward of channels [c0, c1): the batch's statistics, Y, and the
 * running statistics. */
static void bn_train_forward_piece(void *ctx, int c0, int c1)
{
    const struct bn_job *j = ctx;
    const double M = (double)j->outer * j->inner;
    for (int c = c0; c < c1; c++) {
        /* shifted by the channel's first value, so that a mean far from 0
         * does not cancel the variance away */
        const float shift = j->x[(size_t)c * j->inner];
        double sum = 0, sq = 0;
        for (int n = 0; n < j->outer; n++)
            bn_sums(j->x + ((size_t)n * j->C + c) * j->inner, j->inner, shift, &sum, &sq);
        const double d = sum / M, mu = shift + d, var_raw = sq / M - d * d,
                     var = var_raw > 0 ? var_raw : 0;
        const float mean = (float)mu, invstd = (float)(1.0 / sqrt(var + j->eps));
        /* (x − μ)·a + B rather than a·x + (B − μ·a): the latter cancels
         * when μ is large beside the spread */
        const float a = j->scale[c] * invstd, b = j->bias[c];
        for (int n = 0; n < j->outer; n++) {
            const size_t off = ((size_t)n * j->C + c) * j->inner;
            const float *xp = j->x + off;
            float *yp = j->y + off;
            for (int k = 0; k < j->inner; k++)
                yp[k] = (xp[k] - mean) * a + b;
        }
        j->batch_mean[c] = mean;
        j->batch_invstd[c] = invstd;
        const double unbiased = M > 1 ? var * M / (M - 1) : var;
        j->running_mean[c] = (float)(j->momentum * j->running_mean[c] + (1.0 - j->momentum) * mu);
        j->running_var[c] =
            (float)(j->momentum * j->running_var[c] + (1.0 - j->momentum) * unbiased);
    }
}

static size_t bn_train_state(const struct node *node, const struct tview *const *in,
                             const struct tview *const *out)
{
    (void)node;
    (void)out;
    return 2 * (size_t)(in[0]->ndim >= 2 ? in[0]->dims[1] : 1);
}

static void bn_forward(const struct node *node, const struct tview *const *in,
                       struct tview *const *out, struct op_ctx *ctx)
{
    struct bn_job j = bn_job_of(node, in);
    j.y = tview_f(out[0]);
    if (ctx->training) {
        j.batch_mean = ctx->state;
        j.batch_invstd = ctx->state + j.C;
        j.running_mean = tview_f(in[3]);
        j.running_var = tview_f(in[4]);
        parallel_for_grain(j.C, parallel_grain(4 * (size_t)j.outer * j.inner),
                           bn_train_forward_piece, &j);
        return;
    }
    parallel_for_grain(j.outer * j.C, parallel_grain(2 * (size_t)j.inner), bn_forward_piece, &j);
}

/* Training backward of channels [c0, c1), through the batch's statistics. */
static void bn_train_backward_piece(void *ctx, int c0, int c1)
{
    const struct bn_job *j = ctx;
    const double M = (double)j->outer * j->inner;
    for (int c = c0; c < c1; c++) {
        const float mean = j->batch_mean[c], invstd = j->batch_invstd[c];
        double sum_dy = 0, sum_dy_xc = 0;
        for (int n = 0; n < j->outer; n++) {
            const size_t off = ((size_t)n * j->C + c) * j->inner;
            bn_grad_sums(j->dy + off, j->x + off, mean, j->inner, &sum_dy, &sum_dy_xc);
        }
        const double sum_dy_xhat = sum_dy_xc * invstd;
        if (j->dscale)
            j->dscale[c] += (float)sum_dy_xhat;
        if (j->dbias)
            j->dbias[c] += (float)sum_dy;
        if (!j->dx)
            continue;
        const float a = j->scale[c] * invstd, mean_dy = (float)(sum_dy / M),
                    mean_dy_xhat = (float)(sum_dy_xhat / M);
        for (int n = 0; n < j->outer; n++) {
            const size_t off = ((size_t)n * j->C + c) * j->inner;
            const float *dyp = j->dy + off, *xp = j->x + off;
            float *dxp = j->dx + off;
            for (int k = 0; k < j->inner; k++)
                dxp[k] += a * (dyp[k] - mean_dy - (xp[k] - mean) * invstd * mean_dy_xhat);
        }
    }
}

static void bn_backward_piece(void *ctx, int c0, int c1)
{
    const struct bn_job *j = ctx;
    for (int c = c0; c < c1; c++) {
        const float inv_std = 1.0f / sqrtf(j->var[c] + j->eps);
        const float a = j->scale[c] * inv_std, mean = j->mean[c];
        double sum_dy = 0, sum_dy_xhat = 0;
        for (int n = 0; n < j->outer; n++) {
            const size_t off = ((size_t)n * j->C + c) * j->inner;
            const float *dyp = j->dy + off, *xp = j->x + off;
            if (j->dx) {
                float *dxp = j->dx + off;
                for (int k = 0; k < j->inner; k++)
                    dxp[k] += a * dyp[k];
            }
            for (int k = 0; k < j->inner; k++) {
                sum_dy += dyp[k];
                sum_dy_xhat += (double)dyp[k] * (xp[k] - mean);
            }
        }
        if (j->dscale)
            j->dscale[c] += (float)(sum_dy_xhat * inv_std);
        if (j->dbias)
            j->dbias[c] += (float)sum_dy;
    }
}

static void bn_backward(const struct node *node, const struct tview *const *in,
                        const struct tview *const *out, const struct tview *const *dout,
                        struct tview *const *din, struct op_ctx *ctx)
{
    struct bn_job j = bn_job_of(node, in);
    j.dy = tview_f(dout[0]);
    j.dx = din[0] ? tview_f(din[0]) : NULL;
    j.dscale = din[1] ? tview_f(din[1]) : NULL;
    j.dbias = din[2] ? tview_f(din[2]) : NULL;
    if (!j.dx && !j.dscale && !j.dbias)
        return;
    if (ctx->training) {
        j.batch_mean = ctx->state;
        j.batch_invstd = ctx->state + j.C;
        parallel_for_grain(j.C, parallel_grain(6 * (size_t)j.outer * j.inner),
                           bn_train_backward_piece, &j);
        return;
    }
    parallel_for_grain(j.C, parallel_grain(4 * (size_t)j.outer * j.inner), bn_backward_piece,
                       &j);
}

/* Inference's a and b of every channel, for the graph to fold into a Conv. */
static int bn_as_affine(const struct node *node, const struct tview *const *in, float *scale,
                        float *shift)
{
    const struct bn_job j = bn_job_of(node, in);
    for (int c = 0; c < j.C; c++)
        bn_affine_of(&j, c, &scale[c], &shift[c]);
    return 1;
}

/* BatchNormalization: inputs X, scale, B, input_mean, input_var; output Y.
 * setup refuses spatial != 1, training_mode != 0, a momentum outside [0, 1]
 * and extra outputs; infer refuses non-float inputs, parameters not of shape
 * [C], and (when var is known) var + epsilon <= 0. */
const struct op op_batch_normalization = {
    .name = "BatchNormalization",
    .min_inputs = 5,
    .max_inputs = 5,
    .min_outputs = 1,
    .max_outputs = 5,
    .setup = bn_setup,
    .infer = bn_infer,
    .train_state = bn_train_state,
    .forward = bn_forward,
    .as_affine = bn_as_affine,
    .backward = bn_backward,
};
