/*
 * pool.c — MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool (ONNX),
 * NCHW, float32: forward and backward.
 *
 * Windowed pools, 2-D only: X [N, C, H, W] -> Y [N, C, Ho, Wo]. Output
 * (oy, ox) looks at the taps
 *     iy = oy·sh − pt + ky·dh,  ix = ox·sw − pl + kx·dw,  ky < kH, kx < kW
 * and only those inside the input count (the padding is never a candidate
 * for the max, and never a term of the sum):
 *     MaxPool      Y = max over the taps inside
 *     AveragePool  Y = Σ over the taps inside / divisor, where the divisor
 *                  is the number of taps inside (count_include_pad = 0), or
 *                  the number of taps inside the padded extent
 *                  [−pt, H + pb) × [−pl, W + pr) (count_include_pad = 1) —
 *                  which is kH·kW except for a ceil_mode window hanging past
 *                  the end padding, as in ONNX Runtime and ONNX's reference.
 * Output size per axis, dk = (k − 1)·d + 1:
 *     NOTSET/VALID  ⌊(H + pt + pb − dk) / s⌋ + 1, or with ceil_mode
 *                   ⌈(H + pt + pb − dk) / s⌉ + 1, less one when that last
 *                   window would start past the input and its begin padding
 *                   ((Ho − 1)·s ≥ H + pt; PyTorch's and ONNX's rule)
 *     SAME_*        ⌈H / s⌉, with total padding max(0, (Ho − 1)·s + dk − H)
 *                   split evenly, the odd one at the end (SAME_UPPER) or the
 *                   start (SAME_LOWER).
 * A window that would see no input element at all (possible with large
 * pads or dilations) is refused by infer, so every output has a defined max
 * and a nonzero divisor.
 *
 * Backward: MaxPool routes dY to the window's argmax, recomputed from X
 * (the first maximum in row-major window order wins ties; its value is the
 * one forward output);
 * AveragePool spreads dY / divisor over the taps inside.
 *
 * Global pools take X [N, C, D1, ..., Dk] (k ≥ 1) to [N, C, 1, ..., 1]: the
 * mean or max over each channel's S = D1·...·Dk values; backward spreads
 * dY / S, or routes dY to the first maximum.
 *
 * Attributes by opset: AveragePool's count_include_pad exists from opset 7,
 * ceil_mode (both pools) and MaxPool's dilations from opset 10;
 * non-default values of them in an older model are refused. MaxPool's
 * storage_order = 1 (column-major Indices) and its second output Indices
 * are refused, as are AveragePool dilations (opset 19) other than 1.
 *
 * Forward goes tap by tap over whole output rows (pool_plane), which keeps
 * the inner loops long and free of bounds checks; backward goes window by
 * window. Planes (n, c) are independent: every loop runs on the engine's
 * threads (parallel.h), a plane in exactly one piece. No scratch.
 */
#include "op.h"

#include <assert.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../parallel.h"
#include "../status.h"

enum pool_kind { POOL_MAX, POOL_AVG };
enum pool_auto_pad { POOL_PAD_NOTSET, POOL_PAD_SAME_UPPER, POOL_PAD_SAME_LOWER, POOL_PAD_VALID };

struct pool_params {
    enum pool_kind kind;
    int64_t kernel[2], strides[2], dilations[2];
    int64_t pads[4];                /* top, left, bottom, right */
    enum pool_auto_pad auto_pad;
    int ceil_mode, count_include_pad;
};

/* One call's geometry, from the params and X's shape. */
struct pool_geom {
    int planes;                     /* N·C */
    int H, W, Ho, Wo;
    int kh, kw, sh, sw, dh, dw;
    int pt, pl, pb, pr;             /* padding: top, left, bottom, right */
};

/* ---- attributes and shapes ------------------------------------------------ */

/* Reads an ints attribute with `per_axis` values per spatial axis into out.
 * Returns 1 when read, 0 when absent or empty, or a negative status. */
static int pool_read_axes(const struct node *node, const char *name, int per_axis, int64_t *out,
                          int64_t min, char *err)
{
    int64_t v[2 * OP_MAX_DIMS];
    int n;
    int rc = node_attr_ints(node, name, v, 2 * OP_MAX_DIMS, &n, err);
    if (rc < 0)
        return rc;
    if (n == 0)
        return 0;
    if (n != 2 * per_axis) {
        if (n % per_axis == 0)
            return node_fail(node, err, STRATA_E_UNSUPPORTED,
                             "attribute '%s' has %d values, that is %d-D pooling; only 2-D "
                             "pooling is supported",
                             name, n, n / per_axis);
        return node_fail(node, err, STRATA_E_FORMAT,
                         "attribute '%s' has %d values; 2-D pooling needs %d", name, n,
                         2 * per_axis);
    }
    for (int i = 0; i < n; i++) {
        if (v[i] < min || v[i] > INT_MAX / 4)
            return node_fail(node, err, STRATA_E_FORMAT,
                             "attribute '%s' value %lld is out of range (must be >= %lld)",
                             name, (long long)v[i], (long long)min);
        out[i] = v[i];
    }
    return 1;
}

/* An int attribute that ONNX introduced at opset `since`: in an older model
 * only its default is accepted. */
static int pool_read_flag(const struct node *node, const char *name, int since, int64_t *out,
                          char *err)
{
    int rc = node_attr_int(node, name, 0, out, err);
    if (rc < 0)
        return rc;
    if (*out != 0 && *out != 1)
        return node_fail(node, err, STRATA_E_FORMAT, "attribute '%s' is %lld; expected 0 or 1",
                         name, (long long)*out);
    if (*out && node->opset < since)
        return node_fail(node, err, STRATA_E_UNSUPPORTED,
                         "attribute '%s' exists from opset %d; this model imports opset %d",
                         name, since, node->opset);
    return 0;
}

static int pool_setup_common(struct node *node, enum pool_kind kind, char *err)
{
    struct pool_params p = {.kind = kind, .strides = {1, 1}, .dilations = {1, 1}};
    const char *ap;
    int64_t v;
    int rc;
    if ((rc = node_attr_string(node, "auto_pad", "NOTSET", &ap, err)) < 0)
        return rc;
    if (strcmp(ap, "NOTSET") == 0 || ap[0] == 0)
        p.auto_pad = POOL_PAD_NOTSET;
    else if (strcmp(ap, "SAME_UPPER") == 0)
        p.auto_pad = POOL_PAD_SAME_UPPER;
    else if (strcmp(ap, "SAME_LOWER") == 0)
        p.auto_pad = POOL_PAD_SAME_LOWER;
    else if (strcmp(ap, "VALID") == 0)
        p.auto_pad = POOL_PAD_VALID;
    else
        return node_fail(node, err, STRATA_E_FORMAT,
                         "attribute 'auto_pad' is \"%s\"; expected NOTSET, SAME_UPPER, "
                         "SAME_LOWER or VALID",
                         ap);
    if ((rc = pool_read_axes(node, "kernel_shape", 1, p.kernel, 1, err)) < 0)
        return rc;
    if (rc == 0)
        return node_fail(node, err, STRATA_E_FORMAT, "attribute 'kernel_shape' is required");
    if ((rc = pool_read_axes(node, "strides", 1, p.strides, 1, err)) < 0 ||
        (rc = pool_read_axes(node, "pads", 2, p.pads, 0, err)) < 0 ||
        (rc = pool_read_axes(node, "dilations", 1, p.dilations, 1, err)) < 0)
        return rc;
    if (p.dilations[0] != 1 || p.dilations[1] != 1) {
        if (kind == POOL_AVG)
            return node_fail(node, err, STRATA_E_UNSUPPORTED,
                             "attribute 'dilations' (AveragePool from opset 19) is not "
                             "supported");
        if (node->opset < 10)
            return node_fail(node, err, STRATA_E_UNSUPPORTED,
                             "attribute 'dilations' exists from opset 10; this model imports "
                             "opset %d",
                             node->opset);
    }
    if ((rc = pool_read_flag(node, "ceil_mode", 10, &v, err)) < 0)
        return rc;
    p.ceil_mode = (int)v;
    if (kind == POOL_AVG) {
        if ((rc = pool_read_flag(node, "count_include_pad", 7, &v, err)) < 0)
            return rc;
        p.count_include_pad = (int)v;
    } else {
        if ((rc = node_attr_int(node, "storage_order", 0, &v, err)) < 0)
            return rc;
        if (v != 0)
            return node_fail(node, err, STRATA_E_UNSUPPORTED,
                             "attribute 'storage_order' is %lld; only 0 (row-major) is "
                             "supported",
                             (long long)v);
        if (node->n_outputs > 1 && (!node->outputs || node->outputs[1] >= 0))
            return node_fail(node, err, STRATA_E_UNSUPPORTED,
                             "the second output (Indices) is not supported");
    }
    struct pool_params *q = malloc(sizeof *q);
    if (!q)
        return node_fail(node, err, STRATA_E_NOMEM, "out of memory");
    *q = p;
    node->params = q;
    return 0;
}

static int max_pool_setup(struct node *node, char *err)
{
    return pool_setup_common(node, POOL_MAX, err);
}

static int average_pool_setup(struct node *node, char *err)
{
    return pool_setup_common(node, POOL_AVG, err);
}

/* Output size along one axis and the padding on both sides (see the file
 * comment). Returns < 1 when no window fits. */
static int64_t pool_axis(int64_t in, int64_t k, int64_t s, int64_t d, enum pool_auto_pad ap,
                         int ceil_mode, int64_t pad_begin, int64_t pad_end, int64_t *pb,
                         int64_t *pe)
{
    const int64_t dk = (k - 1) * d + 1;
    if (ap == POOL_PAD_SAME_UPPER || ap == POOL_PAD_SAME_LOWER) {
        int64_t out = (in + s - 1) / s;
        int64_t total = (out - 1) * s + dk - in;
        if (total < 0)
            total = 0;
        *pb = ap == POOL_PAD_SAME_UPPER ? total / 2 : total - total / 2;
        *pe = total - *pb;
        return out;
    }
    if (ap == POOL_PAD_VALID)
        pad_begin = pad_end = 0;
    *pb = pad_begin;
    *pe = pad_end;
    int64_t span = in + pad_begin + pad_end - dk;
    if (span < 0)
        return 0;
    if (!ceil_mode)
        return span / s + 1;
    int64_t out = (span + s - 1) / s + 1;
    if ((out - 1) * s >= in + pad_begin)
        out--;
    return out;
}

/* Taps j in [*j0, *j1) of a window starting at `start` (k taps, d apart)
 * that lie inside [0, n). */
static inline void pool_taps(int start, int k, int d, int n, int *j0, int *j1)
{
    int a, b;
    if (d == 1) {
        a = start >= 0 ? 0 : -start;
        b = n - start;
    } else {
        a = start >= 0 ? 0 : (-start + d - 1) / d;
        b = n - start <= 0 ? 0 : (n - start - 1) / d + 1;
    }
    if (a > k)
        a = k;
    if (b > k)
        b = k;
    if (b < a)
        b = a;
    *j0 = a;
    *j1 = b;
}

static struct pool_geom pool_geom_of(const struct pool_params *p, const struct tview *x)
{
    struct pool_geom g = {
        .planes = (int)(x->dims[0] * x->dims[1]), .H = (int)x->dims[2], .W = (int)x->dims[3],
        .kh = (int)p->kernel[0], .kw = (int)p->kernel[1],
        .sh = (int)p->strides[0], .sw = (int)p->strides[1],
        .dh = (int)p->dilations[0], .dw = (int)p->dilations[1],
    };
    int64_t pt, pb, pl, pr;
    g.Ho = (int)pool_axis(g.H, g.kh, g.sh, g.dh, p->auto_pad, p->ceil_mode, p->pads[0],
                          p->pads[2], &pt, &pb);
    g.Wo = (int)pool_axis(g.W, g.kw, g.sw, g.dw, p->auto_pad, p->ceil_mode, p->pads[1],
                          p->pads[3], &pl, &pr);
    g.pt = (int)pt;
    g.pb = (int)pb;
    g.pl = (int)pl;
    g.pr = (int)pr;
    return g;
}

/* Whether every window along an axis has at least one tap inside [0, n). */
static int pool_axis_covered(int n, int out, int k, int s, int d, int pad)
{
    for (int o = 0; o < out; o++) {
        int j0, j1;
        pool_taps(o * s - pad, k, d, n, &j0, &j1);
        if (j1 <= j0)
            return 0;
    }
    return 1;
}

static int pool_infer(const struct node *node, const struct tview *const *in,
                      struct tview *const *out, char *err)
{
    const struct pool_params *p = node->params;
    const struct tview *x = in[0];
    char sx[96];
    if (x->dtype != DTYPE_FLOAT)
        return node_fail(node, err, STRATA_E_UNSUPPORTED, "only float32 tensors are supported");
    if (x->ndim == 3 || x->ndim == 5)
        return node_fail(node, err, STRATA_E_UNSUPPORTED,
                         "input X is %s, %d-D pooling; only 2-D pooling (X of N x C x H x W) "
                         "is supported",
                         dims_format(x, sx, sizeof sx), x->ndim - 2);
    if (x->ndim != 4)
        return node_fail(node, err, STRATA_E_FORMAT,
                         "input X is %s; 2-D pooling needs N x C x H x W",
                         dims_format(x, sx, sizeof sx));
    for (int i = 0; i < 4; i++)
        if (x->dims[i] < 1 || x->dims[i] > INT_MAX / 4)
            return node_fail(node, err, STRATA_E_FORMAT, "input X %s must be non-empty",
                             dims_format(x, sx, sizeof sx));
    if (x->dims[0] * x->dims[1] > INT_MAX || x->dims[2] * x->dims[3] > INT_MAX ||
        (p->kernel[0] - 1) * p->dilations[0] >= INT_MAX / 4 ||
        (p->kernel[1] - 1) * p->dilations[1] >= INT_MAX / 4)
        return node_fail(node, err, STRATA_E_LIMIT, "input X %s is too large",
                         dims_format(x, sx, sizeof sx));
    int64_t pt, pb, pl, pr;
    int64_t ho = pool_axis(x->dims[2], p->kernel[0], p->strides[0], p->dilations[0], p->auto_pad,
                           p->ceil_mode, p->pads[0], p->pads[2], &pt, &pb);
    int64_t wo = pool_axis(x->dims[3], p->kernel[1], p->strides[1], p->dilations[1], p->auto_pad,
                           p->ceil_mode, p->pads[1], p->pads[3], &pl, &pr);
    if (ho < 1 || wo < 1)
        return node_fail(node, err, STRATA_E_FORMAT,
                         "the %lldx%lld window does not fit in input X %s with its padding",
                         (long long)p->kernel[0], (long long)p->kernel[1],
                         dims_format(x, sx, sizeof sx));
    if (!pool_axis_covered((int)x->dims[2], (int)ho, (int)p->kernel[0], (int)p->strides[0],
                           (int)p->dilations[0], (int)pt) ||
        !pool_axis_covered((int)x->dims[3], (int)wo, (int)p->kernel[1], (int)p->strides[1],
                           (int)p->dilations[1], (int)pl))
        return node_fail(node, err, STRATA_E_UNSUPPORTED,
                         "with these pads and dilations some %lldx%lld windows see only "
                         "padding of input X %s",
                         (long long)p->kernel[0], (long long)p->kernel[1],
                         dims_format(x, sx, sizeof sx));
    struct tview *y = out[0];
    y->dtype = DTYPE_FLOAT;
    y->ndim = 4;
    y->dims[0] = x->dims[0];
    y->dims[1] = x->dims[1];
    y->dims[2] = ho;
    y->dims[3] = wo;
    return 0;
}

/* ---- windowed pools: kernels ---------------------------------------------- */

struct pool_job {
    const struct pool_params *p;
    const struct pool_geom *g;
    const float *x, *dy;
    float *y, *dx;
    int32_t *argmax;    /* training MaxPool: [planes][Ho·Wo] where each maximum is, or NULL */
};

/* The window of output (oy, ox): taps [y0, y1) × [x0, x1) are inside; its
 * top-left tap is input (iy, ix) (possibly in the padding). */
struct pool_win {
    int iy, ix, y0, y1, x0, x1;
};

static inline struct pool_win pool_window(const struct pool_geom *g, int oy, int ox)
{
    struct pool_win w = {.iy = oy * g->sh - g->pt, .ix = ox * g->sw - g->pl};
    pool_taps(w.iy, g->kh, g->dh, g->H, &w.y0, &w.y1);
    pool_taps(w.ix, g->kw, g->dw, g->W, &w.x0, &w.x1);
    return w;
}

/* Index in the plane of the window's first tap inside the plane. */
static inline size_t pool_first_tap(const struct pool_geom *g, struct pool_win w)
{
    return (size_t)(w.iy + w.y0 * g->dh) * g->W + (size_t)(w.ix + w.x0 * g->dw);
}

/* Index in the plane of the window's first maximum (row-major tap order);
 * NaN is never the maximum, as in the forward pass, and a window with no
 * larger value than −∞ answers its first tap. */
static inline size_t pool_argmax(const struct pool_geom *g, const float *xp, struct pool_win w)
{
    size_t best = pool_first_tap(g, w);
    float bv = -INFINITY;
    for (int ky = w.y0; ky < w.y1; ky++) {
        const float *row = xp + (size_t)(w.iy + ky * g->dh) * g->W;
        for (int kx = w.x0; kx < w.x1; kx++) {
            const int ix = w.ix + kx * g->dw;
            if (row[ix] > bv) {
                bv = row[ix];
                best = (size_t)(row - xp) + (size_t)ix;
            }
        }
    }
    return best;
}

/* The average's divisor: taps inside, or taps inside the padded extent. */
static inline float pool_divisor(const struct pool_params *p, const struct pool_geom *g,
                                 struct pool_win w)
{
    if (!p->count_include_pad)
        return (float)((w.y1 - w.y0) * (w.x1 - w.x0));
    int a0, a1, b0, b1;
    pool_taps(w.iy + g->pt, g->kh, g->dh, g->H + g->pt + g->pb, &a0, &a1);
    pool_taps(w.ix + g->pl, g->kw, g->dw, g->W + g->pl + g->pr, &b0, &b1);
    return (float)((a1 - a0) * (b1 - b0));
}

/* Output positions o in [*lo, *hi) of an axis of `out` positions whose tap
 * o·s + off lies inside [0, n). */
static void pool_out_range(int n, int off, int s, int out, int *lo, int *hi)
{
    int a = off >= 0 ? 0 : (-off + s - 1) / s;
    int b = n - off <= 0 ? 0 : (n - off - 1) / s + 1;
    *lo = a < out ? a : out;
    *hi = b < out ? b : out;
    if (*hi < *lo)
        *hi = *lo;
}

/* Max or average pooling of one plane, tap by tap: yp starts at −∞ (max)
 * or 0 (sum), and every kernel tap (ky, kx) takes one pass over the output
 * rows it reaches, keeping the larger value or adding. The maximum does not
 * depend on the order the taps come in, and every window has at least one
 * tap inside (infer checks), so no −∞ survives; sums are then divided by
 * each window's divisor. For stride 1 the passes run over consecutive
 * floats. With ip (max pooling in a training step), ip records where in
 * the plane each output's maximum came from: of the taps that hold it, the
 * one first in row-major window order (the lowest index in the plane), as
 * pool_argmax and the backward without ip choose (the first tap when no
 * tap holds more than −∞). */
static void pool_plane(float *restrict yp, int32_t *restrict ip, const float *restrict xp,
                       const struct pool_params *p, const struct pool_geom *g)
{
    const int is_max = p->kind == POOL_MAX;
    for (size_t k = 0; k < (size_t)g->Ho * g->Wo; k++)
        yp[k] = is_max ? -INFINITY : 0.0f;
    if (ip) /* each window's first tap, until a tap holds more than −∞ */
        for (int oy = 0; oy < g->Ho; oy++)
            for (int ox = 0; ox < g->Wo; ox++)
                ip[(size_t)oy * g->Wo + ox] = (int32_t)pool_first_tap(g, pool_window(g, oy, ox));
    for (int kx = 0; kx < g->kw; kx++) {
        const int off = kx * g->dw - g->pl;
        int lo, hi;
        pool_out_range(g->W, off, g->sw, g->Wo, &lo, &hi);
        if (hi <= lo)
            continue;
        for (int oy = 0; oy < g->Ho; oy++) {
            float *restrict yr = yp + (size_t)oy * g->Wo + lo;
            for (int ky = 0; ky < g->kh; ky++) {
                const int iy = oy * g->sh - g->pt + ky * g->dh;
                if (iy < 0 || iy >= g->H)
                    continue;
                /* the tap of output column lo, inside the input row */
                const int32_t at = iy * g->W + lo * g->sw + off;
                const float *restrict xr = xp + at;
                const int n = hi - lo;
                if (ip) { /* a training step: where each maximum is, too */
                    int32_t *restrict ir = ip + (size_t)oy * g->Wo + lo;
                    for (int k = 0; k < n; k++) {
                        const float v = xr[(size_t)k * g->sw];
                        const int32_t here = at + k * g->sw;
                        const int wins = v > yr[k] || (v == yr[k] && here < ir[k]);
                        yr[k] = wins ? v : yr[k];
                        ir[k] = wins ? here : ir[k];
                    }
                } else if (is_max && g->sw == 1)
                    for (int k = 0; k < n; k++)
                        yr[k] = xr[k] > yr[k] ? xr[k] : yr[k];
                else if (is_max)
                    for (int k = 0; k < n; k++) {
                        const float v = xr[(size_t)k * g->sw];
                        yr[k] = v > yr[k] ? v : yr[k];
                    }
                else if (g->sw == 1)
                    for (int k = 0; k < n; k++)
                        yr[k] += xr[k];
                else
                    for (int k = 0; k < n; k++)
                        yr[k] += xr[(size_t)k * g->sw];
            }
        }
    }
    if (is_max)
        return;
    for (int oy = 0; oy < g->Ho; oy++)
        for (int ox = 0; ox < g->Wo; ox++)
            yp[(size_t)oy * g->Wo + ox] /= pool_divisor(p, g, pool_window(g, oy, ox));
}

/* The common max pooling, 2×2 windows at stride 2 that all lie inside the
 * plane: each output from its four taps in row-major order, from −∞ at
 * the first tap, each taken only when strictly larger, so the maxima and
 * (with ip) their positions are pool_plane's, bit for bit, NaN included.
 * pool_plane's tap-by-tap passes read the plane with a stride of 2; this
 * reads each pair of rows once, and vectorises. */
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
static void max2x2_plane(float *restrict yp, int32_t *restrict ip, const float *restrict xp,
                         int W, int Ho, int Wo)
{
    for (int oy = 0; oy < Ho; oy++) {
        const float *restrict r0 = xp + (size_t)2 * oy * W, *restrict r1 = r0 + W;
        float *restrict yr = yp + (size_t)oy * Wo;
        const int32_t top = 2 * oy * W;
        if (!ip) {
            for (int ox = 0; ox < Wo; ox++) {
                float m = -INFINITY;
                m = r0[2 * ox] > m ? r0[2 * ox] : m;
                m = r0[2 * ox + 1] > m ? r0[2 * ox + 1] : m;
                m = r1[2 * ox] > m ? r1[2 * ox] : m;
                m = r1[2 * ox + 1] > m ? r1[2 * ox + 1] : m;
                yr[ox] = m;
            }
            continue;
        }
        int32_t *restrict ir = ip + (size_t)oy * Wo;
        for (int ox = 0; ox < Wo; ox++) {
            const float a = r0[2 * ox], b = r1[2 * ox], c = r0[2 * ox + 1], d = r1[2 * ox + 1];
            const int32_t at = top + 2 * ox;
            float m = -INFINITY;
            int32_t where = at;
            m = a > m ? a : m;
            where = c > m ? at + 1 : where;
            m = c > m ? c : m;
            where = b > m ? at + W : where;
            m = b > m ? b : m;
            where = d > m ? at + W + 1 : where;
            m = d > m ? d : m;
            yr[ox] = m;
            ir[ox] = where;
        }
    }
}

static int is_max2x2_inside(const struct pool_params *p, const struct pool_geom *g)
{
    return p->kind == POOL_MAX && g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 &&
           g->dh == 1 && g->dw == 1 && g->pt == 0 && g->pl == 0 && 2 * g->Ho <= g->H &&
           2 * g->Wo <= g->W;
}

static void pool_forward_piece(void *ctx, int i0, int i1)
{
    const struct pool_job *j = ctx;
    const struct pool_geom *g = j->g;
    const int fast = is_max2x2_inside(j->p, g);
    for (int i = i0; i < i1; i++) {
        const size_t out = (size_t)i * g->Ho * g->Wo;
        int32_t *ip = j->argmax ? j->argmax + out : NULL;
        const float *xp = j->x + (size_t)i * g->H * g->W;
        if (fast)
            max2x2_plane(j->y + out, ip, xp, g->W, g->Ho, g->Wo);
        else
            pool_plane(j->y + out, ip, xp, j->p, g);
    }
}

/* The outputs of an axis whose every tap lies inside the input: [*lo, *hi). */
static void pool_inner_range(int n, int pad, int k, int d, int s, int out, int *lo, int *hi)
{
    int a0, a1, b0, b1;
    pool_out_range(n, -pad, s, out, &a0, &a1);                /* first tap inside */
    pool_out_range(n, (k - 1) * d - pad, s, out, &b0, &b1);   /* last tap inside */
    *lo = a0 > b0 ? a0 : b0;
    *hi = a1 < b1 ? a1 : b1;
    if (*hi < *lo)
        *hi = *lo;
}

/* Max pooling's backward over the outputs whose window lies inside the input
 * ([oy0, oy1) × [ox0, ox1)): the first maximum in row-major tap order, as
 * pool_argmax finds it, without clipping the window. */
static void max_backward_inner(float *restrict dxp, const float *restrict xp,
                               const float *restrict dyp, const struct pool_geom *g, int oy0,
                               int oy1, int ox0, int ox1)
{
    for (int oy = oy0; oy < oy1; oy++) {
        const size_t top = (size_t)(oy * g->sh - g->pt) * g->W; /* the window's first row */
        for (int ox = ox0; ox < ox1; ox++) {
            const float *w0 = xp + top + (size_t)(ox * g->sw - g->pl);
            /* selects, not branches: which tap holds the maximum is
             * unpredictable, and a mispredicted branch per tap cost more
             * than the rest of the loop */
            size_t best = 0;
            float bv = -INFINITY; /* as pool_argmax */
            for (int ky = 0; ky < g->kh; ky++) {
                const size_t row = (size_t)ky * g->dh * g->W;
                for (int kx = 0; kx < g->kw; kx++) {
                    const size_t at = row + (size_t)kx * g->dw;
                    const float v = w0[at];
                    const int larger = v > bv;
                    best = larger ? at : best;
                    bv = larger ? v : bv;
                }
            }
            dxp[(w0 - xp) + best] += dyp[(size_t)oy * g->Wo + ox];
        }
    }
}

static void pool_backward_piece(void *ctx, int i0, int i1)
{
    const struct pool_job *j = ctx;
    const struct pool_geom *g = j->g;
    int oy0 = 0, oy1 = 0, ox0 = 0, ox1 = 0;
    if (j->p->kind == POOL_MAX) {
        pool_inner_range(g->H, g->pt, g->kh, g->dh, g->sh, g->Ho, &oy0, &oy1);
        pool_inner_range(g->W, g->pl, g->kw, g->dw, g->sw, g->Wo, &ox0, &ox1);
    }
    for (int i = i0; i < i1; i++) {
        const float *xp = j->x + (size_t)i * g->H * g->W;
        float *dxp = j->dx + (size_t)i * g->H * g->W;
        const float *dyp = j->dy + (size_t)i * g->Ho * g->Wo;
        if (j->argmax) { /* a training step: forward recorded each maximum */
            const int32_t *ip = j->argmax + (size_t)i * g->Ho * g->Wo;
            for (size_t k = 0; k < (size_t)g->Ho * g->Wo; k++)
                dxp[ip[k]] += dyp[k];
            continue;
        }
        if (j->p->kind == POOL_MAX)
            max_backward_inner(dxp, xp, dyp, g, oy0, oy1, ox0, ox1);
        for (int oy = 0; oy < g->Ho; oy++)
            for (int ox = 0; ox < g->Wo; ox++) {
                if (oy >= oy0 && oy < oy1 && ox >= ox0 && ox < ox1)
                    continue; /* done above */
                const struct pool_win w = pool_window(g, oy, ox);
                const float d = dyp[(size_t)oy * g->Wo + ox];
                if (j->p->kind == POOL_MAX) {
                    dxp[pool_argmax(g, xp, w)] += d;
                    continue;
                }
                const float share = d / pool_divisor(j->p, g, w);
                for (int ky = w.y0; ky < w.y1; ky++) {
                    float *row = dxp + (size_t)(w.iy + ky * g->dh) * g->W;
                    for (int kx = w.x0; kx < w.x1; kx++)
                        row[w.ix + kx * g->dw] += share;
                }
            }
    }
}

/* MaxPool keeps, from a training forward to its backward, where each
 * output's maximum is: one int32 per output, in the state's floats. */
static size_t max_pool_train_state(const struct node *node, const struct tview *const *in,
                                   const struct tview *const *out)
{
    (void)node;
    (void)in;
    return (size_t)tview_count(out[0]);
}

/* The argmax buffer of a training step of a MaxPool, or NULL. */
static int32_t *pool_argmax_state(const struct node *node, const struct op_ctx *ctx)
{
    const struct pool_params *p = node->params;
    return ctx && ctx->training && p->kind == POOL_MAX && ctx->state ? (int32_t *)ctx->state
                                                                     : NULL;
}

static void pool_forward(const struct node *node, const struct tview *const *in,
                         struct tview *const *out, struct op_ctx *ctx)
{
    const struct pool_geom g = pool_geom_of(node->params, in[0]);
    struct pool_job j = {.p = node->params, .g = &g, .x = tview_f(in[0]), .y = tview_f(out[0]),
                         .argmax = pool_argmax_state(node, ctx)};
    parallel_for_grain(g.planes,
                       parallel_grain((size_t)g.H * g.W + (size_t)g.Ho * g.Wo * g.kh * g.kw),
                       pool_forward_piece, &j);
}

/* One 2×2 pooling job over whole planes: op_max_pool_2x2. */
struct max2x2_job {
    const float *x;
    float *y;
    int H, W, Ho, Wo;
};

static void max2x2_piece(void *ctx, int i0, int i1)
{
    const struct max2x2_job *j = ctx;
    for (int i = i0; i < i1; i++)
        max2x2_plane(j->y + (size_t)i * j->Ho * j->Wo, NULL, j->x + (size_t)i * j->H * j->W,
                     j->W, j->Ho, j->Wo);
}

void op_max_pool_2x2(const float *x, int planes, int H, int W, float *y)
{
    struct max2x2_job j = {.x = x, .y = y, .H = H, .W = W, .Ho = H / 2, .Wo = W / 2};
    parallel_for_grain(planes, parallel_grain((size_t)H * W + (size_t)j.Ho * j.Wo * 4),
                       max2x2_piece, &j);
}

/* A MaxPool whose every window is 2×2 at stride 2, undilated and unpadded,
 * its output ⌊H/2⌋ × ⌊W/2⌋: what a Conv before it may compute inside. */
static int max_pool_is_2x2(const struct node *node)
{
    const struct pool_params *p = node->params;
    return p->kind == POOL_MAX && p->kernel[0] == 2 && p->kernel[1] == 2 && p->strides[0] == 2 &&
           p->strides[1] == 2 && p->dilations[0] == 1 && p->dilations[1] == 1 && !p->ceil_mode &&
           (p->auto_pad == POOL_PAD_NOTSET || p->auto_pad == POOL_PAD_VALID) && !p->pads[0] &&
           !p->pads[1] && !p->pads[2] && !p->pads[3] &&
           (node->n_outputs == 1 || node->outputs[1] < 0);
}

static void pool_backward(const struct node *node, const struct tview *const *in,
                          const struct tview *const *out, const struct tview *const *dout,
                          struct tview *const *din, struct op_ctx *ctx)
{
    if (!din[0])
        return;
    const struct pool_geom g = pool_geom_of(node->params, in[0]);
    struct pool_job j = {.p = node->params, .g = &g, .x = tview_f(in[0]),
                         .dy = tview_f(dout[0]), .dx = tview_f(din[0]),
                         .argmax = pool_argmax_state(node, ctx)};
    parallel_for_grain(g.planes,
                       parallel_grain((size_t)2 * g.H * g.W + (size_t)g.Ho * g.Wo * g.kh * g.kw),
                       pool_backward_piece, &j);
}

/* ---- global pools --------------------------------------------------------- */

static int global_pool_infer(const struct node *node, const struct tview *const *in,
                             struct tview *const *out, char *err)
{
    const struct tview *x = in[0];
    char sx[96];
    if (x->dtype != DTYPE_FLOAT)
        return node_fail(node, err, STRATA_E_UNSUPPORTED, "only float32 tensors are supported");
    if (x->ndim < 3)
        return node_fail(node, err, STRATA_E_FORMAT,
                         "input X is %s; it needs N x C and at least one spatial axis",
                         dims_format(x, sx, sizeof sx));
    for (int i = 0; i < x->ndim; i++)
        if (x->dims[i] < 1)
            return node_fail(node, err, STRATA_E_FORMAT, "input X %s must be non-empty",
                             dims_format(x, sx, sizeof sx));
    if (x->dims[0] * x->dims[1] > INT_MAX || tview_count(x) / (x->dims[0] * x->dims[1]) > INT_MAX)
        return node_fail(node, err, STRATA_E_LIMIT, "input X %s is too large",
                         dims_format(x, sx, sizeof sx));
    struct tview *y = out[0];
    y->dtype = DTYPE_FLOAT;
    y->ndim = x->ndim;
    y->dims[0] = x->dims[0];
    y->dims[1] = x->dims[1];
    for (int i = 2; i < x->ndim; i++)
        y->dims[i] = 1;
    return 0;
}

struct global_job {
    int S;                  /* values per plane */
    const float *x, *dy;
    float *y, *dx;
};

static size_t global_argmax(const float *xp, int S)
{
    size_t best = 0;
    for (int k = 1; k < S; k++)
        if (xp[k] > xp[best])
            best = (size_t)k;
    return best;
}

/* Σ x[0 … n−1] in double, in eight interleaved partial sums added up at the
 * end: a fixed order (the same on every thread and run) that the compiler
 * turns into vector adds, where one running sum would wait on every add. */
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
static double global_sum(const float *x, int n)
{
    double part[8] = {0};
    int k = 0;
    for (; k + 8 <= n; k += 8)
        for (int l = 0; l < 8; l++)
            part[l] += x[k + l];
    for (int l = 0; k < n; k++, l++)
        part[l] += x[k];
    return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
}

static void global_avg_forward_piece(void *ctx, int i0, int i1)
{
    const struct global_job *j = ctx;
    for (int i = i0; i < i1; i++)
        j->y[i] = (float)(global_sum(j->x + (size_t)i * j->S, j->S) / j->S);
}

static void global_max_forward_piece(void *ctx, int i0, int i1)
{
    const struct global_job *j = ctx;
    for (int i = i0; i < i1; i++) {
        const float *xp = j->x + (size_t)i * j->S;
        j->y[i] = xp[global_argmax(xp, j->S)];
    }
}

static void global_avg_backward_piece(void *ctx, int i0, int i1)
{
    const struct global_job *j = ctx;
    for (int i = i0; i < i1; i++) {
        float *dxp = j->dx + (size_t)i * j->S;
        const float share = j->dy[i] / (float)j->S;
        for (int k = 0; k < j->S; k++)
            dxp[k] += share;
    }
}

static void global_max_backward_piece(void *ctx, int i0, int i1)
{
    const struct global_job *j = ctx;
    for (int i = i0; i < i1; i++) {
        const float *xp = j->x + (size_t)i * j->S;
        j->dx[(size_t)i * j->S + global_argmax(xp, j->S)] += j->dy[i];
    }
}

static void global_run(const struct tview *x, struct global_job *j, parallel_fn fn)
{
    const int planes = (int)(x->dims[0] * x->dims[1]);
    j->S = (int)(tview_count(x) / planes);
    parallel_for_grain(planes, parallel_grain((size_t)j->S * 2), fn, j);
}

static void global_avg_forward(const struct node *node, const struct tview *const *in,
                               struct tview *const *out, struct op_ctx *ctx)
{
    struct global_job j = {.x = tview_f(in[0]), .y = tview_f(out[0])};
    global_run(in[0], &j, global_avg_forward_piece);
}

static void global_max_forward(const struct node *node, const struct tview *const *in,
                               struct tview *const *out, struct op_ctx *ctx)
{
    struct global_job j = {.x = tview_f(in[0]), .y = tview_f(out[0])};
    global_run(in[0], &j, global_max_forward_piece);
}

static void global_avg_backward(const struct node *node, const struct tview *const *in,
                                const struct tview *const *out, const struct tview *const *dout,
                                struct tview *const *din, struct op_ctx *ctx)
{
    if (!din[0])
        return;
    struct global_job j = {.dy = tview_f(dout[0]), .dx = tview_f(din[0])};
    global_run(in[0], &j, global_avg_backward_piece);
}

static void global_max_backward(const struct node *node, const struct tview *const *in,
                                const struct tview *const *out, const struct tview *const *dout,
                                struct tview *const *din, struct op_ctx *ctx)
{
    if (!din[0])
        return;
    struct global_job j = {.x = tview_f(in[0]), .dy = tview_f(dout[0]), .dx = tview_f(din[0])};
    global_run(in[0], &j, global_max_backward_piece);
}

/* MaxPool: input X, output Y (a second output, Indices, is refused). setup
 * refuses a missing kernel_shape, non-2-D attributes, storage_order 1 and
 * attributes newer than the model's opset; infer refuses non-float X, ranks
 * other than 4 (3-D and 5-D as unsupported), and windows that do not fit or
 * see only padding. */
const struct op op_max_pool = {
    .name = "MaxPool",
    .min_inputs = 1,
    .max_inputs = 1,
    .min_outputs = 1,
    .max_outputs = 2,
    .setup = max_pool_setup,
    .infer = pool_infer,
    .train_state = max_pool_train_state,
    .forward = pool_forward,
    .backward = pool_backward,
    .is_max_pool_2x2 = max_pool_is_2x2,
};

/* AveragePool: as MaxPool, with count_include_pad; dilations refused. */
const struct op op_average_pool = {
    .name = "AveragePool",
    .min_inputs = 1,
    .max_inputs = 1,
    .min_outputs = 1,
    .max_outputs = 1,
    .setup = average_pool_setup,
    .infer = pool_infer,
    .forward = pool_forward,
    .backward = pool_backward,
};

/* GlobalAveragePool / GlobalMaxPool: X of rank >= 3, float. */
const struct op op_global_average_pool = {
    .name = "GlobalAveragePool",
    .min_inputs = 1,
    .max_inputs = 1,
    .min_outputs = 1,
    .max_outputs = 1,
    .infer = global_pool_infer,
    .forward = global_avg_forward,
    .backward = global_avg_backward,
};

const struct op op_global_max_pool = {
    .name = "GlobalMaxPool",
    .min_inputs = 1,
    .max_inputs = 1,
    .min_outputs = 1,
    .max_outputs = 1,
    .infer = global_pool_infer,
    .forward = global_max_forward,
    .backward = global_max_backward,
};
