/*
 * dropout.c — Dropout (ONNX), float32: the identity at inference; inverted
 * dropout in strata's training steps.
 *
 * Training (op_ctx.training): each element is kept when a uniform draw from
 * op_ctx.rng is ≥ ratio, and scaled by 1/(1 − ratio), so that the expected
 * output is the input; the rest are zeroed. The draws are one sequential
 * stream, in element order, on one thread: a seed gives the same mask
 * whatever the thread count. The factor each element got (0 or 1/(1 − ratio))
 * is kept in op_ctx.state, and backward is dX += factor · dY. Outside
 * training, Y = X and dX += dY.
 *
 * Forms by opset (6..17): before 12, `ratio` (default 0.5) and `is_test`
 * (opset 6) are attributes; from 12, `ratio` is an optional scalar input and
 * `training_mode` an optional boolean input, which must be a constant false
 * (a file states no mode: strata's trainer chooses it). The optional `mask`
 * output is refused.
 */
#include "op.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../status.h"

struct dropout_params {
    float ratio; /* before opset 12; from 12 the input, read when the batch runs */
};

static int dropout_setup(struct node *node, char *err)
{
    struct dropout_params p = {.ratio = 0.5f};
    if (node->n_outputs == 2 && !(node->outputs && node->outputs[1] < 0))
        return node_fail(node, err, STRATA_E_UNSUPPORTED,
                         "the optional 'mask' output is not supported");
    int rc;
    if (node->opset < 12) {
        int64_t is_test;
        if (node->n_inputs > 1)
            return node_fail(node, err, STRATA_E_FORMAT,
                             "before opset 12 Dropout has one input; this node has %d (the "
                             "model imports opset %d)",
                             node->n_inputs, node->opset);
        if ((rc = node_attr_float(node, "ratio", 0.5f, &p.ratio, err)) < 0 ||
            (rc = node_attr_int(node, "is_test", 0, &is_test, err)) < 0)
            return rc;
    } else {
        int64_t seed;
        if ((rc = node_attr_int(node, "seed", 0, &seed, err)) < 0)
            return rc;
    }
    if (!(p.ratio >= 0.0f && p.ratio < 1.0f))
        return node_fail(node, err, STRATA_E_FORMAT,
                         "attribute 'ratio' is %g; it must be in [0, 1)", (double)p.ratio);
    struct dropout_params *q = malloc(sizeof *q);
    if (!q)
        return node_fail(node, err, STRATA_E_NOMEM, "out of memory");
    *q = p;
    node->params = q;
    return 0;
}

/* The ratio this node drops: the attribute before opset 12, else the input
 * (0.5 when absent), clamped to [0, 1) for a run-time input that infer could
 * not check. */
static float dropout_ratio(const struct node *node, const struct tview *const *in)
{
    const struct dropout_params *p = node->params;
    if (node->opset < 12)
        return p->ratio;
    const struct tview *r = node->n_inputs > 1 ? in[1] : NULL;
    const float ratio = r && r->data ? tview_f(r)[0] : 0.5f;
    return ratio >= 0.0f && ratio < 1.0f ? ratio : 0.0f;
}

static int dropout_infer(const struct node *node, const struct tview *const *in,
                         struct tview *const *out, char *err)
{
    if (in[0]->dtype != DTYPE_FLOAT)
        return node_fail(node, err, STRATA_E_FORMAT, "the input must be float, not int64");
    const struct tview *ratio = node->n_inputs > 1 ? in[1] : NULL;
    if (ratio) {
        if (ratio->dtype != DTYPE_FLOAT || tview_count(ratio) != 1)
            return node_fail(node, err, STRATA_E_FORMAT, "input 'ratio' must be one float");
        const float r = ratio->data ? tview_f(ratio)[0] : 0.0f;
        if (!(r >= 0.0f && r < 1.0f))
            return node_fail(node, err, STRATA_E_FORMAT,
                             "input 'ratio' is %g; it must be in [0, 1)", (double)r);
    }
    const struct tview *mode = node->n_inputs > 2 ? in[2] : NULL;
    if (mode) {
        if (!mode->data)
            return node_fail(node, err, STRATA_E_UNSUPPORTED,
                             "input 'training_mode' is computed at run time; it must be a "
                             "constant false (strata's trainer chooses the mode)");
        int on = tview_count(mode) > 0 &&
                 (mode->dtype == DTYPE_INT64 ? tview_i(mode)[0] != 0 : tview_f(mode)[0] != 0.0f);
        if (on)
            return node_fail(node, err, STRATA_E_UNSUPPORTED,
                             "training_mode is true; it must be false (strata's trainer "
                             "chooses the mode)");
    }
    out[0]->dtype = DTYPE_FLOAT;
    out[0]->ndim = in[0]->ndim;
    memcpy(out[0]->dims, in[0]->dims, sizeof out[0]->dims);
    return 0;
}

static size_t dropout_train_state(const struct node *node, const struct tview *const *in,
                                  const struct tview *const *out)
{
    (void)node;
    (void)out;
    return (size_t)tview_count(in[0]);
}

static void dropout_forward(const struct node *node, const struct tview *const *in,
                            struct tview *const *out, struct op_ctx *ctx)
{
    const float *x = tview_f(in[0]);
    float *y = tview_f(out[0]);
    const int64_t n = tview_count(in[0]);
    if (!ctx->training) {
        if (y != x)
            memcpy(y, x, (size_t)n * sizeof *y);
        return;
    }
    const float ratio = dropout_ratio(node, in), keep = 1.0f / (1.0f - ratio);
    float *factor = ctx->state;
    for (int64_t k = 0; k < n; k++) {
        factor[k] = ratio > 0.0f && rng_uniform(ctx->rng) < ratio ? 0.0f : keep;
        y[k] = x[k] * factor[k];
    }
}

static void dropout_backward(const struct node *node, const struct tview *const *in,
                             const struct tview *const *out, const struct tview *const *dout,
                             struct tview *const *din, struct op_ctx *ctx)
{
    (void)node;
    (void)out;
    if (!din[0])
        return;
    float *dx = tview_f(din[0]);
    const float *dy = tview_f(dout[0]);
    const int64_t n = tview_count(in[0]);
    if (ctx->training)
        for (int64_t k = 0; k < n; k++)
            dx[k] += ctx->state[k] * dy[k];
    else
        for (int64_t k = 0; k < n; k++)
            dx[k] += dy[k];
}

const struct op op_dropout = {
    .name = "Dropout",
    .min_inputs = 1, .max_inputs = 3, .min_outputs = 1, .max_outputs = 2,
    .setup = dropout_setup,
    .infer = dropout_infer,
    .train_state = dropout_train_state,
    .forward = dropout_forward,
    .backward = dropout_backward,
};
