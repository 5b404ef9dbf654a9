/*
 * reduce_mean.c — ReduceMean on float32: the mean over the axes listed in
 * the attribute `axes` (all axes when it is absent), keeping them as extent-1
 * axes when keepdims is 1 (the default) and dropping them otherwise.
 * Opsets 6–17 all take axes as an attribute (opset 18 moved it to an input).
 *
 *   y[kept] = (1/count) Σ_{reduced} x          count = product of reduced extents
 *   backward: dx[i] += dy[kept(i)] / count     (every x feeds one mean equally)
 *
 * Iteration. The input is walked in memory order with the output offset kept
 * in step: axes of extent 1 are dropped and neighbouring axes that are both
 * kept or both reduced merged, so reducing H and W of N×C×H×W becomes
 * [N·C kept, H·W reduced] — one contiguous run per output value, summed in
 * double — and reducing the channels of N×C×H×W becomes [N, C reduced, H·W
 * kept]: runs of H·W added onto H·W outputs.
 */
#include "op.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "../status.h"

struct reduce_mean_params {
    int n_axes;                 /* 0: every axis */
    int64_t axes[OP_MAX_DIMS];
    int keepdims;
};

static int reduce_mean_setup(struct node *node, char *err)
{
    struct reduce_mean_params *p = calloc(1, sizeof *p);
    if (!p)
        return node_fail(node, err, STRATA_E_NOMEM, "out of memory");
    node->params = p;
    int64_t keep;
    int rc = node_attr_ints(node, "axes", p->axes, OP_MAX_DIMS, &p->n_axes, err);
    if (rc < 0 || (rc = node_attr_int(node, "keepdims", 1, &keep, err)) < 0)
        return rc;
    p->keepdims = keep != 0;
    return 0;
}

/* Which axes of x are reduced. Returns 0 or a negative status (an axis out of
 * range or listed twice); err may be NULL after infer checked it. */
static int reduce_mean_mask(const struct node *node, const struct tview *x, int *reduced,
                            char *err)
{
    const struct reduce_mean_params *p = node->params;
    for (int i = 0; i < x->ndim; i++)
        reduced[i] = p->n_axes == 0;
    for (int j = 0; j < p->n_axes; j++) {
        int ax;
        int rc = node_axis(node, p->axes[j], x->ndim, &ax, err);
        if (rc < 0)
            return rc;
        if (reduced[ax])
            return node_fail(node, err, STRATA_E_FORMAT, "axis %lld is listed twice in axes",
                             (long long)p->axes[j]);
        reduced[ax] = 1;
    }
    return 0;
}

static int reduce_mean_infer(const struct node *node, const struct tview *const *in,
                             struct tview *const *out, char *err)
{
    const struct reduce_mean_params *p = node->params;
    const struct tview *x = in[0];
    if (x->dtype != DTYPE_FLOAT)
        return node_fail(node, err, STRATA_E_UNSUPPORTED,
                         "input is int64; only float is supported");
    int reduced[OP_MAX_DIMS];
    int rc = reduce_mean_mask(node, x, reduced, err);
    if (rc < 0)
        return rc;
    out[0]->dtype = DTYPE_FLOAT;
    out[0]->ndim = 0;
    for (int i = 0; i < x->ndim; i++) {
        if (reduced[i] && x->dims[i] == 0) {
            char sx[96];
            return node_fail(node, err, STRATA_E_FORMAT,
                             "input %s: the mean over an empty axis %d is undefined",
                             dims_format(x, sx, sizeof sx), i);
        }
        if (!reduced[i])
            out[0]->dims[out[0]->ndim++] = x->dims[i];
        else if (p->keepdims)
            out[0]->dims[out[0]->ndim++] = 1;
    }
    return 0;
}

/* The merged walk: extents n[], whether each merged axis is reduced, and the
 * output's element stride per merged axis (0 on reduced ones). The input is
 * contiguous, so its innermost run has n[rank-1] elements. */
struct rm_plan {
    int rank;
    int64_t n[OP_MAX_DIMS], so[OP_MAX_DIMS];
    int red[OP_MAX_DIMS];
    int64_t count;              /* elements per mean */
};

static void rm_plan_build(const struct node *node, const struct tview *x, struct rm_plan *p)
{
    int reduced[OP_MAX_DIMS];
    int rc = reduce_mean_mask(node, x, reduced, NULL);
    assert(rc == 0);
    (void)rc;
    p->rank = 0;
    p->count = 1;
    for (int i = 0; i < x->ndim; i++) {
        int64_t d = x->dims[i];
        if (reduced[i])
            p->count *= d;
        if (d == 1)
            continue;
        if (p->rank > 0 && p->red[p->rank - 1] == reduced[i]) {
            p->n[p->rank - 1] *= d;
            continue;
        }
        p->n[p->rank] = d;
        p->red[p->rank] = reduced[i];
        p->rank++;
    }
    if (p->rank == 0) {
        p->rank = 1;
        p->n[0] = 1;
        p->red[0] = 1;
    }
    int64_t step = 1;
    for (int i = p->rank - 1; i >= 0; i--) {
        p->so[i] = p->red[i] ? 0 : step;
        if (!p->red[i])
            step *= p->n[i];
    }
}

static inline void rm_next(const struct rm_plan *p, int64_t *idx, int64_t *oo)
{
    for (int k = p->rank - 2; k >= 0; k--) {
        *oo += p->so[k];
        if (++idx[k] < p->n[k])
            return;
        *oo -= p->so[k] * p->n[k];
        idx[k] = 0;
    }
}

static void reduce_mean_forward(const struct node *node, const struct tview *const *in,
                                struct tview *const *out, struct op_ctx *ctx)
{
    const float *x = tview_f(in[0]);
    float *y = tview_f(out[0]);
    int64_t total = tview_count(in[0]), ny = tview_count(out[0]);
    memset(y, 0, (size_t)ny * sizeof *y);
    if (total == 0)
        return;
    struct rm_plan p;
    rm_plan_build(node, in[0], &p);
    int64_t inner = p.n[p.rank - 1], idx[OP_MAX_DIMS] = {0}, oo = 0;
    int inner_red = p.red[p.rank - 1];
    for (int64_t r = 0; r < total / inner; r++) {
        const float *xr = x + r * inner;
        if (inner_red) {
            double s = 0.0;
            for (int64_t i = 0; i < inner; i++)
                s += xr[i];
            y[oo] += (float)s;
        } else {
            for (int64_t i = 0; i < inner; i++)
                y[oo + i] += xr[i];
        }
        rm_next(&p, idx, &oo);
    }
    float inv = (float)(1.0 / (double)p.count);
    for (int64_t j = 0; j < ny; j++)
        y[j] *= inv;
}

static void reduce_mean_backward(const struct node *node, const struct tview *const *in,
                                 const struct tview *const *out, const struct tview *const *dout,
                                 struct tview *const *din, struct op_ctx *ctx)
{
    if (!din[0])
        return;
    int64_t total = tview_count(in[0]);
    if (total == 0)
        return;
    struct rm_plan p;
    rm_plan_build(node, in[0], &p);
    const float *g = tview_f(dout[0]);
    float *dx = tview_f(din[0]);
    float inv = (float)(1.0 / (double)p.count);
    int64_t inner = p.n[p.rank - 1], idx[OP_MAX_DIMS] = {0}, oo = 0;
    int inner_red = p.red[p.rank - 1];
    for (int64_t r = 0; r < total / inner; r++) {
        float *dr = dx + r * inner;
        if (inner_red) {
            float v = g[oo] * inv;
            for (int64_t i = 0; i < inner; i++)
                dr[i] += v;
        } else {
            for (int64_t i = 0; i < inner; i++)
                dr[i] += g[oo + i] * inv;
        }
        rm_next(&p, idx, &oo);
    }
}

const struct op op_reduce_mean = {
    .name = "ReduceMean",
    .min_inputs = 1, .max_inputs = 1, .min_outputs = 1, .max_outputs = 1,
    .setup = reduce_mean_setup,
    .infer = reduce_mean_infer,
    .forward = reduce_mean_forward,
    .backward = reduce_mean_backward,
};
