/*
 * batch_norm.c — BatchNormalization (ONNX) in inference mode, float32:
 * forward and backward.
 *
 *   X [N, C, D1, ..., Dk] (k ≥ 0; a 1-D X of N values has C = 1),
 *   scale, B, input_mean, input_var [C]  ->  Y like X
 *
 *   Y[n, c, ...] = scale[c] · (X[n, c, ...] − mean[c]) / √(var[c] + ε) + B[c]
 *                = a[c] · X[n, c, ...] + b[c],
 *   a[c] = scale[c] / √(var[c] + ε),  b[c] = B[c] − mean[c] · a[c]
 *
 * with the stored statistics, never the batch's: training mode is refused.
 * Attributes by opset: epsilon (all), momentum (ignored: it only updates
 * running statistics), is_test (opset 6; any value accepted: the stored
 * statistics are always used), spatial (opset 6–8; must be 1: per-channel
 * statistics), training_mode (opset 14+; must be 0). Outputs beyond Y (the
 * running or saved statistics of training) are refused.
 *
 * Backward, with mean and var held constant (their din is never written):
 *   dX[n, c, ...] += a[c] · dY[n, c, ...]
 *   dscale[c]     += Σ_{n, ...} dY · (X − mean[c]) / √(var[c] + ε)
 *   dB[c]         += Σ_{n, ...} dY
 * Channels are independent: forward runs planes (n, c), backward channels,
 * on the engine's threads (parallel.h), each output in exactly one piece.
 */
#include "op.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>

#include "../parallel.h"
#include "../status.h"

struct bn_params {
    float epsilon;
};

static int bn_setup(struct node *node, char *err)
{
    struct bn_params p;
    int64_t spatial, training_mode, is_test;
    int rc;
    if ((rc = node_attr_float(node, "epsilon", 1e-5f, &p.epsilon, err)) < 0 ||
        (rc = node_attr_int(node, "spatial", 1, &spatial, err)) < 0 ||
        (rc = node_attr_int(node, "training_mode", 0, &training_mode, err)) < 0 ||
        (rc = node_attr_int(node, "is_test", 0, &is_test, err)) < 0)
        return rc;
    if (!(p.epsilon >= 0.0f) || !isfinite(p.epsilon))
        return node_fail(node, err, STRATA_E_FORMAT,
                         "attribute 'epsilon' is %g; it must be a finite value >= 0",
                         (double)p.epsilon);
    if (spatial != 1)
        return node_fail(node, err, STRATA_E_UNSUPPORTED,
                         "attribute 'spatial' is %lld; only spatial = 1 (statistics per "
                         "channel) is supported",
                         (long long)spatial);
    if (training_mode != 0)
        return node_fail(node, err, STRATA_E_UNSUPPORTED,
                         "attribute 'training_mode' is %lld; only inference mode "
                         "(training_mode = 0, the stored mean and variance) is supported: "
                         "export the model in evaluation mode",
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
    float eps;
    const float *x, *scale, *bias, *mean, *var, *dy;
    float *y, *dx, *dscale, *dbias;
};

static struct bn_job bn_job_of(const struct node *node, const struct tview *const *in)
{
    const struct tview *x = in[0];
    const struct bn_params *p = node->params;
    struct bn_job j = {.eps = p->epsilon, .x = tview_f(x), .scale = tview_f(in[1]),
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

static void bn_forward_piece(void *ctx, int i0, int i1)
{
    const struct bn_job *j = ctx;
    for (int i = i0; i < i1; i++) {
        const int c = i % j->C;
        const float a = j->scale[c] / sqrtf(j->var[c] + j->eps);
        const float b = j->bias[c] - j->mean[c] * a;
        const float *xp = j->x + (size_t)i * j->inner;
        float *yp = j->y + (size_t)i * j->inner;
        for (int k = 0; k < j->inner; k++)
            yp[k] = a * xp[k] + b;
    }
}

static void bn_forward(const struct node *node, const struct tview *const *in,
                       struct tview *const *out, struct op_ctx *ctx)
{
    struct bn_job j = bn_job_of(node, in);
    j.y = tview_f(out[0]);
    parallel_for_grain(j.outer * j.C, parallel_grain(2 * (size_t)j.inner), bn_forward_piece, &j);
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
    parallel_for_grain(j.C, parallel_grain(4 * (size_t)j.outer * j.inner), bn_backward_piece,
                       &j);
}

/* BatchNormalization: inputs X, scale, B, input_mean, input_var; output Y.
 * setup refuses spatial != 1, training_mode != 0 and extra outputs; infer
 * refuses non-float inputs, parameters not of shape [C], and (when var is
 * known) var + epsilon <= 0. */
const struct op op_batch_normalization = {
    .name = "BatchNormalization",
    .min_inputs = 5,
    .max_inputs = 5,
    .min_outputs = 1,
    .max_outputs = 5,
    .setup = bn_setup,
    .infer = bn_infer,
    .forward = bn_forward,
    .backward = bn_backward,
};
