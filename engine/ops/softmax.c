/*
 * softmax.c — Softmax and LogSoftmax on float32 tensors.
 *
 * Which elements form one distribution changed in opset 13:
 *   opset < 13   the input is read as a 2-D matrix at `axis` (default 1):
 *                rows = d0·…·d(axis-1), and each row of d(axis)·…·d(r-1)
 *                elements, all axes from `axis` on flattened, is one
 *                distribution;
 *   opset >= 13  each line along the single axis `axis` (default -1) is one.
 * Both are written as an (outer, len, inner) view of the contiguous input:
 * a distribution is the `len` elements at stride `inner` — inner is 1 for the
 * old form, the product of the axes after `axis` for the new one.
 *
 * Forward, with m = max_k x_k over one distribution:
 *   softmax     y_k = e^(x_k - m) / Σ_j e^(x_j - m)
 *   logsoftmax  y_k = x_k - m - log Σ_j e^(x_j - m)
 * Subtracting m changes nothing mathematically but makes every exponent ≤ 0
 * (no overflow, whatever |x|) and the sum ≥ 1 (its log is finite). LogSoftmax
 * forms (x_k - m) first: for large nearby x that difference is exact, where
 * x_k - (m + log Σ) would round at the scale of |x|.
 *
 * Backward, the Jacobian-vector product for one distribution:
 *   softmax     dx_k = y_k (dy_k - Σ_j dy_j y_j)
 *   logsoftmax  dx_k = dy_k - e^(y_k) Σ_j dy_j      (e^y is the softmax)
 *
 * When inner > 1 the `inner` distributions of one outer index are processed
 * together, row by row along the axis, so memory is read contiguously; their
 * running maxima and sums live in scratch (2·inner floats).
 */
#include "op.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../status.h"

struct softmax_params {
    int log;            /* LogSoftmax */
    int flatten;        /* opset < 13: everything from axis on is one distribution */
    int64_t axis;
};

static int softmax_setup_common(struct node *node, char *err, int is_log)
{
    struct softmax_params *p = calloc(1, sizeof *p);
    if (!p)
        return node_fail(node, err, STRATA_E_NOMEM, "out of memory");
    node->params = p;
    p->log = is_log;
    p->flatten = node->opset < 13;
    return node_attr_int(node, "axis", p->flatten ? 1 : -1, &p->axis, err);
}

static int softmax_setup(struct node *node, char *err)
{
    return softmax_setup_common(node, err, 0);
}

static int log_softmax_setup(struct node *node, char *err)
{
    return softmax_setup_common(node, err, 1);
}

/* The (outer, len, inner) view of x for this node; the axis is valid (infer
 * checked it). */
static void softmax_view(const struct node *node, const struct tview *x, int64_t *outer,
                         int64_t *len, int64_t *inner)
{
    const struct softmax_params *p = node->params;
    int axis;
    int rc = node_axis(node, p->axis, x->ndim, &axis, NULL);
    assert(rc == 0);
    (void)rc;
    *outer = *len = *inner = 1;
    for (int i = 0; i < axis; i++)
        *outer *= x->dims[i];
    if (p->flatten) {
        for (int i = axis; i < x->ndim; i++)
            *len *= x->dims[i];
    } else {
        *len = x->dims[axis];
        for (int i = axis + 1; i < x->ndim; i++)
            *inner *= x->dims[i];
    }
}

static int softmax_infer(const struct node *node, const struct tview *const *in,
                         struct tview *const *out, char *err)
{
    const struct softmax_params *p = node->params;
    if (in[0]->dtype != DTYPE_FLOAT)
        return node_fail(node, err, STRATA_E_UNSUPPORTED,
                         "input is int64; only float is supported");
    int axis;
    int rc = node_axis(node, p->axis, in[0]->ndim, &axis, err);
    if (rc < 0)
        return rc;
    *out[0] = *in[0];
    out[0]->data = NULL;
    return 0;
}

static size_t softmax_scratch(const struct node *node, const struct tview *const *in,
                              const struct tview *const *out)
{
    int64_t outer, len, inner;
    softmax_view(node, in[0], &outer, &len, &inner);
    return inner > 1 ? 2 * (size_t)inner : 0;
}

/* One distribution of n contiguous values. */
static void softmax_line(float *y, const float *x, int64_t n, int is_log)
{
    float m = x[0];
    for (int64_t k = 1; k < n; k++)
        m = x[k] > m ? x[k] : m;
    double s = 0.0;
    for (int64_t k = 0; k < n; k++)
        s += expf(x[k] - m);
    if (is_log) {
        float ls = (float)log(s); /* s ≥ 1 */
        for (int64_t k = 0; k < n; k++)
            y[k] = (x[k] - m) - ls;
    } else {
        float inv = (float)(1.0 / s);
        for (int64_t k = 0; k < n; k++)
            y[k] = expf(x[k] - m) * inv;
    }
}

/* `inner` interleaved distributions of n values each: element k of
 * distribution j is at k·inner + j. m and s are scratch[inner] each. */
static void softmax_block(float *y, const float *x, int64_t n, int64_t inner, int is_log,
                          float *m, float *s)
{
    memcpy(m, x, (size_t)inner * sizeof *m);
    for (int64_t k = 1; k < n; k++)
        for (int64_t j = 0; j < inner; j++)
            m[j] = x[k * inner + j] > m[j] ? x[k * inner + j] : m[j];
    memset(s, 0, (size_t)inner * sizeof *s);
    for (int64_t k = 0; k < n; k++)
        for (int64_t j = 0; j < inner; j++)
            s[j] += expf(x[k * inner + j] - m[j]);
    if (is_log) {
        for (int64_t j = 0; j < inner; j++)
            s[j] = logf(s[j]);
        for (int64_t k = 0; k < n; k++)
            for (int64_t j = 0; j < inner; j++)
                y[k * inner + j] = (x[k * inner + j] - m[j]) - s[j];
    } else {
        for (int64_t j = 0; j < inner; j++)
            s[j] = 1.0f / s[j];
        for (int64_t k = 0; k < n; k++)
            for (int64_t j = 0; j < inner; j++)
                y[k * inner + j] = expf(x[k * inner + j] - m[j]) * s[j];
    }
}

static void softmax_forward(const struct node *node, const struct tview *const *in,
                            struct tview *const *out, struct op_ctx *ctx)
{
    const struct softmax_params *p = node->params;
    int64_t outer, len, inner;
    softmax_view(node, in[0], &outer, &len, &inner);
    if (outer * len * inner == 0)
        return;
    const float *x = tview_f(in[0]);
    float *y = tview_f(out[0]);
    for (int64_t o = 0; o < outer; o++) {
        size_t off = (size_t)(o * len * inner);
        if (inner == 1) {
            softmax_line(y + off, x + off, len, p->log);
        } else {
            assert(ctx->scratch_len >= 2 * (size_t)inner);
            softmax_block(y + off, x + off, len, inner, p->log, ctx->scratch,
                          ctx->scratch + inner);
        }
    }
}

/* dx_k += y_k (g_k - Σ g_j y_j)   (softmax)
 * dx_k += g_k - e^(y_k) Σ g_j     (logsoftmax)
 * for `inner` interleaved distributions of n values; t is scratch[inner]. */
static void softmax_grad_block(float *dx, const float *y, const float *g, int64_t n,
                               int64_t inner, int is_log, float *t)
{
    memset(t, 0, (size_t)inner * sizeof *t);
    for (int64_t k = 0; k < n; k++)
        for (int64_t j = 0; j < inner; j++)
            t[j] += is_log ? g[k * inner + j] : g[k * inner + j] * y[k * inner + j];
    for (int64_t k = 0; k < n; k++)
        for (int64_t j = 0; j < inner; j++) {
            size_t e = (size_t)(k * inner + j);
            dx[e] += is_log ? g[e] - expf(y[e]) * t[j] : y[e] * (g[e] - t[j]);
        }
}

static void softmax_grad_line(float *dx, const float *y, const float *g, int64_t n, int is_log)
{
    double t = 0.0;
    for (int64_t k = 0; k < n; k++)
        t += is_log ? g[k] : (double)g[k] * y[k];
    float tf = (float)t;
    for (int64_t k = 0; k < n; k++)
        dx[k] += is_log ? g[k] - expf(y[k]) * tf : y[k] * (g[k] - tf);
}

static void softmax_backward(const struct node *node, const struct tview *const *in,
                             const struct tview *const *out, const struct tview *const *dout,
                             struct tview *const *din, struct op_ctx *ctx)
{
    const struct softmax_params *p = node->params;
    if (!din[0])
        return;
    int64_t outer, len, inner;
    softmax_view(node, in[0], &outer, &len, &inner);
    const float *y = tview_f(out[0]), *g = tview_f(dout[0]);
    float *dx = tview_f(din[0]);
    for (int64_t o = 0; o < outer; o++) {
        size_t off = (size_t)(o * len * inner);
        if (inner == 1) {
            softmax_grad_line(dx + off, y + off, g + off, len, p->log);
        } else {
            assert(ctx->scratch_len >= (size_t)inner);
            softmax_grad_block(dx + off, y + off, g + off, len, inner, p->log, ctx->scratch);
        }
    }
}

const struct op op_softmax = {
    .name = "Softmax",
    .min_inputs = 1, .max_inputs = 1, .min_outputs = 1, .max_outputs = 1,
    .setup = softmax_setup,
    .infer = softmax_infer,
    .scratch = softmax_scratch,
    .forward = softmax_forward,
    .backward = softmax_backward,
};

const struct op op_log_softmax = {
    .name = "LogSoftmax",
    .min_inputs = 1, .max_inputs = 1, .min_outputs = 1, .max_outputs = 1,
    .setup = log_softmax_setup,
    .infer = softmax_infer,
    .scratch = softmax_scratch,
    .forward = softmax_forward,
    .backward = softmax_backward,
};
