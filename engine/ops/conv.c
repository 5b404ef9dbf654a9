/*
 * conv.c — Conv (ONNX), 2-D, NCHW, float32: forward and backward.
 *
 *   X [N, C, H, W], W [M, C/group, kH, kW], optional B [M]  ->  Y [N, M, Ho, Wo]
 *
 *   Y[n, m, oy, ox] = B[m] + Σ_{c, ky, kx} W[m, c, ky, kx] ·
 *                     X[n, g·Cg + c, oy·sh − pt + ky·dh, ox·sw − pl + kx·dw]
 *
 * where g = m / Mg is the group of output channel m, Cg = C / group and
 * Mg = M / group; taps that fall outside the input read zero (the padding).
 * Attributes: pads [top, left, bottom, right] (ONNX's begin-then-end order),
 * strides, dilations, group, kernel_shape (checked against W) and auto_pad:
 *   NOTSET      Ho = ⌊(H + pt + pb − dkh) / sh⌋ + 1, dkh = (kH − 1)·dh + 1
 *   VALID       the same with no padding
 *   SAME_UPPER  Ho = ⌈H / sh⌉; total = max(0, (Ho − 1)·sh + dkh − H) split
 *   SAME_LOWER  evenly, the odd one at the end (UPPER) or the start (LOWER)
 * (and likewise along the width). Explicit pads are ignored when auto_pad is
 * set, as ONNX Runtime does.
 *
 * Three ways to compute it, chosen from the shapes (conv_geom_of):
 *   CONV_1X1     1×1 kernel, stride 1, no padding: the input plane of a group
 *                already is the [Cg × H·W] matrix the GEMM needs:
 *                Y_g[Mg × P] = W_g[Mg × Cg] · X_g[Cg × P].
 *   CONV_GEMM    the im2col matrix col[K × P], K = Cg·kH·kW, row (c, ky, kx)
 *                holding the input value each output pixel's tap (ky, kx) of
 *                channel c sees (zero over the padding), and
 *                Y_g[Mg × P] = W_g[Mg × K] · col[K × P].
 *   CONV_DIRECT  one input channel per group (Cg = 1, group > 1: depthwise,
 *                possibly with a channel multiplier Mg): each output plane is
 *                a weighted sum of kH·kW shifted copies of one input plane,
 *                computed a row at a time (or a small padded plane as one
 *                long row) with every tap of a window in one unrolled chain
 *                (vectorised; the padding comes from zero-padded copies of
 *                small planes or border rows in a 16 KB stack buffer, see
 *                conv_direct_forward_piece). As a GEMM this would be
 *                Mg × 9 × P products, all overhead.
 * Where the CPU has AVX-512 (sgemm_available), the two GEMM paths are one
 * strata sgemm per group over the whole batch (columns: every output pixel
 * of every image), its panels packed straight from the input by
 * conv_pack_taps (the col matrix is never built; a 1×1 input is read in
 * place); and 3×3 stride-1 layers large enough go through Winograd
 * F(2×2, 3×3) instead (conv_winograd.c). Elsewhere: im2col per image and
 * OpenBLAS. A Relu or Clip the graph fuses into the Conv (op_ctx.clamp) is
 * applied as sgemm and Winograd store their tiles, plane by plane on the
 * depthwise path, in a pass afterwards on the OpenBLAS one. On the OpenBLAS
 * paths the bias is written into Y first and the GEMM adds onto it
 * (beta = 1); sgemm and Winograd add it as they store.
 *
 * Backward, with dY [N, M, Ho, Wo]:
 *   dB[m]   += Σ_{n, p} dY[n, m, p]
 *   dW_g    += dY_g[Mg × P] · colᵀ[P × K]          (col rebuilt by im2col)
 *   dX      += col2im(W_gᵀ[K × Mg] · dY_g[Mg × P])  (dcol in the col buffer;
 *                                                    col2im adds every tap's
 *                                                    value back onto the input
 *                                                    element it was read from)
 * CONV_1X1 multiplies with X_g and adds onto dX_g directly; CONV_DIRECT runs
 * the forward loops in reverse (dW[m, ky, kx] += Σ dY·X at the tap, dX at the
 * tap += W·dY).
 *
 * Scratch: one col buffer, K·P floats (CONV_GEMM only), shared by forward
 * and backward, or sgemm's panels and Winograd's work space where they run
 * (whichever is larger). Kept between runs (op_ctx.cache): Winograd's
 * transform of the weights. Loops that are not GEMM (im2col, col2im, the direct
 * convolution) run on the engine's threads (parallel.h), each output element
 * in exactly one piece, so results do not depend on the thread count.
 *
 * Only 2-D convolution is supported: 1-D and 3-D inputs are refused with
 * STRATA_E_UNSUPPORTED.
 */
#include "op.h"
#include "conv_winograd.h"

#include <assert.h>
#include <cblas.h>
#include <immintrin.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "../parallel.h"
#include "../sgemm.h"
#include "../status.h"

enum conv_auto_pad { CONV_PAD_NOTSET, CONV_PAD_SAME_UPPER, CONV_PAD_SAME_LOWER, CONV_PAD_VALID };

struct conv_params {
    int has_kernel_shape;
    int64_t kernel_shape[2];
    int64_t pads[4];                /* top, left, bottom, right */
    int64_t strides[2], dilations[2];
    int64_t group;
    enum conv_auto_pad auto_pad;
};

enum conv_path { CONV_GEMM, CONV_1X1, CONV_DIRECT };

/* One call's geometry, from the params and the shapes of X and W. */
struct conv_geom {
    int N, C, H, W;         /* input */
    int M, Ho, Wo;          /* output */
    int kh, kw, sh, sw, dh, dw;
    int pt, pl;             /* padding before the first row / column */
    int group, Cg, Mg;      /* groups, input and output channels per group */
    int K, P;               /* Cg·kH·kW (GEMM reduction), Ho·Wo (pixels) */
    enum conv_path path;
};

/* ---- attributes and shapes ------------------------------------------------ */

static int conv_parse_auto_pad(const struct node *node, enum conv_auto_pad *out, char *err)
{
    const char *s;
    int rc = node_attr_string(node, "auto_pad", "NOTSET", &s, err);
    if (rc < 0)
        return rc;
    if (strcmp(s, "NOTSET") == 0 || s[0] == 0)
        *out = CONV_PAD_NOTSET;
    else if (strcmp(s, "SAME_UPPER") == 0)
        *out = CONV_PAD_SAME_UPPER;
    else if (strcmp(s, "SAME_LOWER") == 0)
        *out = CONV_PAD_SAME_LOWER;
    else if (strcmp(s, "VALID") == 0)
        *out = CONV_PAD_VALID;
    else
        return node_fail(node, err, STRATA_E_FORMAT,
                         "attribute 'auto_pad' is \"%s\"; expected NOTSET, SAME_UPPER, "
                         "SAME_LOWER or VALID",
                         s);
    return 0;
}

/* Reads an ints attribute with `per_axis` values (1 or 2) per spatial axis
 * into out. Returns 1 when read, 0 when absent or empty (out untouched), or a
 * negative status. A length for another spatial rank means a 1-D or 3-D
 * convolution: unsupported. */
static int conv_read_axes(const struct node *node, const char *name, int per_axis, int64_t *out,
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
                             "attribute '%s' has %d values, that is a %d-D convolution; only "
                             "2-D convolution is supported",
                             name, n, n / per_axis);
        return node_fail(node, err, STRATA_E_FORMAT,
                         "attribute '%s' has %d values; a 2-D convolution needs %d", name, n,
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

static int conv_setup(struct node *node, char *err)
{
    struct conv_params p = {.strides = {1, 1}, .dilations = {1, 1}, .group = 1};
    int rc;
    if ((rc = conv_parse_auto_pad(node, &p.auto_pad, err)) < 0 ||
        (rc = p.has_kernel_shape =
             conv_read_axes(node, "kernel_shape", 1, p.kernel_shape, 1, err)) < 0 ||
        (rc = conv_read_axes(node, "pads", 2, p.pads, 0, err)) < 0 ||
        (rc = conv_read_axes(node, "strides", 1, p.strides, 1, err)) < 0 ||
        (rc = conv_read_axes(node, "dilations", 1, p.dilations, 1, err)) < 0 ||
        (rc = node_attr_int(node, "group", 1, &p.group, err)) < 0)
        return rc;
    if (p.group < 1 || p.group > INT_MAX)
        return node_fail(node, err, STRATA_E_FORMAT, "attribute 'group' is %lld; it must be >= 1",
                         (long long)p.group);
    struct conv_params *q = malloc(sizeof *q);
    if (!q)
        return node_fail(node, err, STRATA_E_NOMEM, "out of memory");
    *q = p;
    node->params = q;
    return 0;
}

/* a·b for a, b ≥ 0, saturating at INT64_MAX. */
static int64_t conv_mul(int64_t a, int64_t b)
{
    int64_t r;
    return __builtin_mul_overflow(a, b, &r) ? INT64_MAX : r;
}

/* Output size and padding before the first element along one axis (see the
 * file comment). Returns the output size, < 1 when the kernel does not fit. */
static int64_t conv_axis(int64_t in, int64_t k, int64_t s, int64_t d, enum conv_auto_pad ap,
                         int64_t pad_begin, int64_t pad_end, int64_t *pb)
{
    const int64_t dk = (k - 1) * d + 1;
    switch (ap) {
    case CONV_PAD_SAME_UPPER:
    case CONV_PAD_SAME_LOWER: {
        int64_t out = (in + s - 1) / s;
        int64_t total = (out - 1) * s + dk - in;
        if (total < 0)
            total = 0;
        *pb = ap == CONV_PAD_SAME_UPPER ? total / 2 : total - total / 2;
        return out;
    }
    case CONV_PAD_VALID:
        pad_begin = pad_end = 0;
        break;
    case CONV_PAD_NOTSET:
        break;
    }
    *pb = pad_begin;
    int64_t span = in + pad_begin + pad_end - dk;
    return span < 0 ? 0 : span / s + 1;
}

/* The geometry for inputs already checked by conv_infer. */
static struct conv_geom conv_geom_of(const struct conv_params *p, const struct tview *x,
                                     const struct tview *w)
{
    struct conv_geom g = {
        .N = (int)x->dims[0], .C = (int)x->dims[1], .H = (int)x->dims[2], .W = (int)x->dims[3],
        .M = (int)w->dims[0], .kh = (int)w->dims[2], .kw = (int)w->dims[3],
        .sh = (int)p->strides[0], .sw = (int)p->strides[1],
        .dh = (int)p->dilations[0], .dw = (int)p->dilations[1], .group = (int)p->group,
    };
    int64_t pt, pl;
    g.Ho = (int)conv_axis(g.H, g.kh, g.sh, g.dh, p->auto_pad, p->pads[0], p->pads[2], &pt);
    g.Wo = (int)conv_axis(g.W, g.kw, g.sw, g.dw, p->auto_pad, p->pads[1], p->pads[3], &pl);
    g.pt = (int)pt;
    g.pl = (int)pl;
    g.Cg = g.C / g.group;
    g.Mg = g.M / g.group;
    g.K = g.Cg * g.kh * g.kw;
    g.P = g.Ho * g.Wo;
    if (g.Cg == 1 && g.group > 1)
        g.path = CONV_DIRECT;
    else if (g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.pt == 0 && g.pl == 0 &&
             g.Ho == g.H && g.Wo == g.W)
        g.path = CONV_1X1;
    else
        g.path = CONV_GEMM;
    return g;
}

/* 3×3, stride 1, no dilation, and large enough: Winograd's tile for this
 * layer (winograd_tile); 0: not Winograd. */
static int conv_use_winograd(const struct conv_geom *g)
{
    if (g->path != CONV_GEMM || g->kh != 3 || g->kw != 3 || g->sh != 1 || g->sw != 1 ||
        g->dh != 1 || g->dw != 1 || !sgemm_available())
        return 0;
    return winograd_tile(g->Cg, g->Mg, g->Ho, g->Wo);
}

static int conv_infer(const struct node *node, const struct tview *const *in,
                      struct tview *const *out, char *err)
{
    const struct conv_params *p = node->params;
    const struct tview *x = in[0], *w = in[1], *b = node->n_inputs > 2 ? in[2] : NULL;
    char sx[96], sw[96];
    if (!x || !w)
        return node_fail(node, err, STRATA_E_FORMAT, "inputs X and W are required");
    if (x->dtype != DTYPE_FLOAT || w->dtype != DTYPE_FLOAT || (b && b->dtype != DTYPE_FLOAT))
        return node_fail(node, err, STRATA_E_UNSUPPORTED, "only float32 tensors are supported");
    if (x->ndim == 3 || x->ndim == 5)
        return node_fail(node, err, STRATA_E_UNSUPPORTED,
                         "input X is %s, a %d-D convolution; only 2-D convolution (X of "
                         "N x C x H x W) is supported",
                         dims_format(x, sx, sizeof sx), x->ndim - 2);
    if (x->ndim != 4)
        return node_fail(node, err, STRATA_E_FORMAT,
                         "input X is %s; a 2-D convolution needs N x C x H x W",
                         dims_format(x, sx, sizeof sx));
    if (w->ndim != 4)
        return node_fail(node, err, STRATA_E_FORMAT,
                         "weight W is %s; a 2-D convolution needs M x C/group x kH x kW",
                         dims_format(w, sw, sizeof sw));
    for (int i = 0; i < 4; i++)
        if (x->dims[i] < 1 || x->dims[i] > INT_MAX || w->dims[i] < 1 || w->dims[i] > INT_MAX)
            return node_fail(node, err, STRATA_E_FORMAT, "X %s and W %s must be non-empty",
                             dims_format(x, sx, sizeof sx), dims_format(w, sw, sizeof sw));
    const int64_t C = x->dims[1], M = w->dims[0], G = p->group;
    if (C % G != 0 || w->dims[1] * G != C)
        return node_fail(node, err, STRATA_E_FORMAT,
                         "W %s has %lld input channels per group, but X %s has %lld channels "
                         "in %lld groups: W.dims[1] must be C/group",
                         dims_format(w, sw, sizeof sw), (long long)w->dims[1],
                         dims_format(x, sx, sizeof sx), (long long)C, (long long)G);
    if (M % G != 0)
        return node_fail(node, err, STRATA_E_FORMAT,
                         "W %s has %lld output channels, not a multiple of group %lld",
                         dims_format(w, sw, sizeof sw), (long long)M, (long long)G);
    if (p->has_kernel_shape &&
        (p->kernel_shape[0] != w->dims[2] || p->kernel_shape[1] != w->dims[3]))
        return node_fail(node, err, STRATA_E_FORMAT,
                         "attribute kernel_shape is %lldx%lld but W is %s",
                         (long long)p->kernel_shape[0], (long long)p->kernel_shape[1],
                         dims_format(w, sw, sizeof sw));
    if (b && (b->ndim != 1 || b->dims[0] != M))
        return node_fail(node, err, STRATA_E_FORMAT, "bias B is %s; expected %lld (W's M)",
                         dims_format(b, sx, sizeof sx), (long long)M);
    int64_t pt, pl;
    int64_t ho = conv_axis(x->dims[2], w->dims[2], p->strides[0], p->dilations[0], p->auto_pad,
                           p->pads[0], p->pads[2], &pt);
    int64_t wo = conv_axis(x->dims[3], w->dims[3], p->strides[1], p->dilations[1], p->auto_pad,
                           p->pads[1], p->pads[3], &pl);
    if (ho < 1 || wo < 1)
        return node_fail(node, err, STRATA_E_FORMAT,
                         "the %lldx%lld kernel (dilations %lldx%lld) does not fit in input X %s "
                         "with its padding",
                         (long long)w->dims[2], (long long)w->dims[3],
                         (long long)p->dilations[0], (long long)p->dilations[1],
                         dims_format(x, sx, sizeof sx));
    /* GEMM dimensions, plane counts and loop indices stay in an int; the col
     * buffer stays addressable. */
    const int64_t K = conv_mul(conv_mul(w->dims[1], w->dims[2]), w->dims[3]);
    const int64_t dkh = (w->dims[2] - 1) * p->dilations[0] + 1,
                  dkw = (w->dims[3] - 1) * p->dilations[1] + 1;
    if (K > INT_MAX / 4 || dkh > INT_MAX / 4 || dkw > INT_MAX / 4 ||
        x->dims[2] > INT_MAX / 4 || x->dims[3] > INT_MAX / 4 ||
        conv_mul(ho, wo) > INT_MAX || conv_mul(x->dims[0], C) > INT_MAX ||
        conv_mul(x->dims[0], M) > INT_MAX || conv_mul(x->dims[2], x->dims[3]) > INT_MAX ||
        conv_mul(conv_mul(K, ho), wo) > (int64_t)1 << 40)
        return node_fail(node, err, STRATA_E_LIMIT,
                         "X %s with W %s is too large for this implementation",
                         dims_format(x, sx, sizeof sx), dims_format(w, sw, sizeof sw));
    struct tview *y = out[0];
    y->dtype = DTYPE_FLOAT;
    y->ndim = 4;
    y->dims[0] = x->dims[0];
    y->dims[1] = M;
    y->dims[2] = ho;
    y->dims[3] = wo;
    return 0;
}

/* The batched backward (conv_backward_batched): a convolution with one
 * group on the GEMM or 1×1 path, where strata's sgemm runs. */
static int conv_backward_batches(const struct conv_geom *g)
{
    return g->group == 1 && (g->path == CONV_GEMM || g->path == CONV_1X1) && sgemm_available();
}

/* Floats of col and of the gathered dY a chunk of the batched backward may
 * hold: large enough that the products span several images, small enough to
 * stay near the cache. */
#define CONV_BACKWARD_CHUNK_FLOATS (1u << 21)

/* Images per chunk of the batched backward: a function of the shapes alone
 * (never of the thread count), so that the sums come out the same. */
static int conv_backward_batch(const struct conv_geom *g)
{
    size_t per_image = ((size_t)g->K + g->M) * g->P;
    size_t nb = per_image ? CONV_BACKWARD_CHUNK_FLOATS / per_image : 1;
    if (nb < 1)
        nb = 1;
    return nb < (size_t)g->N ? (int)nb : g->N;
}

/* Scratch of the batched backward for chunks of nb images: col [K × nb·P],
 * Wᵀ [K × M], dY gathered [M × nb·P], then the products' own. */
static size_t conv_batched_scratch(const struct conv_geom *g, int nb)
{
    const size_t cols = (size_t)nb * g->P, t = (size_t)parallel_threads();
    size_t dw = sgemm_scratch(g->M, g->K, (int)cols, (int)t),
           dx = sgemm_scratch(g->K, (int)cols, g->M, (int)t);
    return (((size_t)g->K * cols + 15) & ~(size_t)15) + (((size_t)g->K * g->M + 15) & ~(size_t)15) +
           (((size_t)g->M * cols + 15) & ~(size_t)15) + (dw > dx ? dw : dx);
}

static size_t conv_scratch(const struct node *node, const struct tview *const *in,
                           const struct tview *const *out)
{
    struct conv_geom g = conv_geom_of(node->params, in[0], in[1]);
    size_t col = g.path == CONV_GEMM ? (size_t)g.K * (size_t)g.P : 0;
    size_t packed = g.path != CONV_DIRECT && sgemm_available()
                        ? sgemm_scratch(g.Mg, g.N * g.P, g.K, parallel_threads())
                        : 0;
    const int tile = conv_use_winograd(&g);
    if (tile) {
        /* the weights' transform, then each thread's region (the transform
         * lives in the graph's cache instead where it keeps one) */
        size_t wg = winograd_weights_size(tile, g.Cg, g.Mg) * g.group +
                    winograd_scratch(tile, g.Cg, g.Mg, parallel_threads());
        packed = wg > packed ? wg : packed;
    }
    /* backward builds the col matrix and, on strata's sgemm, multiplies by
     * a transposed copy of the weights (dX needs Wᵀ · dY) */
    size_t back = col;
    if (conv_backward_batches(&g))
        back = conv_batched_scratch(&g, conv_backward_batch(&g));
    else if (g.path != CONV_DIRECT && sgemm_available()) {
        /* the products dX (K × P, over Mg) and dW (Mg × K, over P) one after
         * the other, in the same place */
        size_t dx_product = sgemm_scratch(g.K, g.P, g.Mg, parallel_threads()),
               dw_product = sgemm_scratch(g.Mg, g.K, g.P, parallel_threads());
        back = ((col + 15) & ~(size_t)15) + (((size_t)g.K * g.Mg + 15) & ~(size_t)15) +
               (dx_product > dw_product ? dx_product : dw_product);
    }
    if (back > packed)
        packed = back;
    return col > packed ? col : packed;
}

/* Kept between runs: Winograd's transform of the weights, every group's. */
static size_t conv_cache(const struct node *node, const struct tview *const *in,
                         const struct tview *const *out)
{
    (void)out;
    struct conv_geom g = conv_geom_of(node->params, in[0], in[1]);
    const int tile = conv_use_winograd(&g);
    return tile ? winograd_weights_size(tile, g.Cg, g.Mg) * g.group : 0;
}

/* Output positions o in [*lo, *hi) of an axis of `out` positions whose tap
 * o·s + off lies inside [0, n). */
static void conv_tap_range(int n, int off, int s, int out, int *lo, int *hi)
{
    int a = off >= 0 ? 0 : (-off + s - 1) / s;
    int b = n - off <= 0 ? 0 : (n - off - 1) / s + 1;
    if (a > out)
        a = out;
    if (b > out)
        b = out;
    if (b < a)
        b = a;
    *lo = a;
    *hi = b;
}

/* ---- im2col and col2im ---------------------------------------------------- */

struct conv_col_job {
    const struct conv_geom *g;
    float *col;           /* [K × P], rows ldc floats apart (P when 0) */
    size_t ldc;
    const float *x;       /* one group's Cg input planes */
    float *dx;            /* col2im: one group's Cg input-gradient planes */
    int images;           /* batched backward: images of C planes one after the other,
                             image i's columns at col + i·P (0: one image) */
};

/* col row r = (c·kH + ky)·kW + kx, column oy·Wo + ox: the input value at
 * (c, oy·sh − pt + ky·dh, ox·sw − pl + kx·dw), zero outside the input. */
static void conv_im2col_piece(void *ctx, int r0, int r1)
{
    const struct conv_col_job *j = ctx;
    const struct conv_geom *g = j->g;
    const size_t ldc = j->ldc ? j->ldc : (size_t)g->P;
    for (int rr = r0; rr < r1; rr++) {
        /* with images, rr counts (image, row) pairs */
        const int image = j->images ? rr / g->K : 0, r = j->images ? rr % g->K : rr;
        const int kx = r % g->kw, ky = r / g->kw % g->kh, c = r / (g->kw * g->kh);
        const int off = kx * g->dw - g->pl;
        int lo, hi;
        conv_tap_range(g->W, off, g->sw, g->Wo, &lo, &hi);
        const float *xc = j->x + ((size_t)image * g->C + c) * g->H * g->W;
        float *dst = j->col + (size_t)r * ldc + (size_t)image * g->P;
        for (int oy = 0; oy < g->Ho; oy++, dst += g->Wo) {
            const int iy = oy * g->sh - g->pt + ky * g->dh;
            if (iy < 0 || iy >= g->H) {
                memset(dst, 0, (size_t)g->Wo * sizeof *dst);
                continue;
            }
            memset(dst, 0, (size_t)lo * sizeof *dst);
            if (hi > lo) {
                /* the tap of column lo, inside the input row */
                const float *src = xc + (size_t)iy * g->W + (lo * g->sw + off);
                if (g->sw == 1)
                    memcpy(dst + lo, src, (size_t)(hi - lo) * sizeof *dst);
                else
                    for (int k = 0; k < hi - lo; k++)
                        dst[lo + k] = src[(size_t)k * g->sw];
            }
            memset(dst + hi, 0, (size_t)(g->Wo - hi) * sizeof *dst);
        }
    }
}

static void conv_im2col(float *col, const float *x, const struct conv_geom *g)
{
    struct conv_col_job j = {.g = g, .col = col, .x = x};
    parallel_for_grain(g->K, parallel_grain(2 * (size_t)g->P), conv_im2col_piece, &j);
}

/* The adjoint of im2col for channels [c0, c1): every col value is added onto
 * the input element it was read from (padding taps are dropped). A channel's
 * plane receives only its own rows, so channels split across threads. */
static void conv_col2im_piece(void *ctx, int c0, int c1)
{
    const struct conv_col_job *j = ctx;
    const struct conv_geom *g = j->g;
    const size_t ldc = j->ldc ? j->ldc : (size_t)g->P;
    for (int cc = c0; cc < c1; cc++) {
        /* with images, cc counts (image, channel) pairs */
        const int image = j->images ? cc / g->C : 0, c = j->images ? cc % g->C : cc;
        float *dxc = j->dx + ((size_t)image * g->C + c) * g->H * g->W;
        for (int ky = 0; ky < g->kh; ky++)
            for (int kx = 0; kx < g->kw; kx++) {
                const int r = (c * g->kh + ky) * g->kw + kx;
                const int off = kx * g->dw - g->pl;
                int lo, hi;
                conv_tap_range(g->W, off, g->sw, g->Wo, &lo, &hi);
                if (hi <= lo)
                    continue;
                const float *src = j->col + (size_t)r * ldc + (size_t)image * g->P + lo;
                for (int oy = 0; oy < g->Ho; oy++, src += g->Wo) {
                    const int iy = oy * g->sh - g->pt + ky * g->dh;
                    if (iy < 0 || iy >= g->H)
                        continue;
                    float *dst = dxc + (size_t)iy * g->W + (lo * g->sw + off);
                    for (int k = 0; k < hi - lo; k++)
                        dst[(size_t)k * g->sw] += src[k];
                }
            }
    }
}

static void conv_col2im_add(float *dx, const float *col, const struct conv_geom *g)
{
    struct conv_col_job j = {.g = g, .col = (float *)col, .dx = dx};
    parallel_for_grain(g->Cg, parallel_grain((size_t)g->kh * g->kw * g->P * 2),
                       conv_col2im_piece, &j);
}

/* ---- direct (depthwise) convolution -------------------------------------- */

struct conv_direct_job {
    const struct conv_geom *g;
    const float *x, *w, *b, *dy;
    float *y, *dx, *dw, *db;
    int clamp;          /* forward: a fused Relu or Clip, applied plane by plane */
    float lo, hi;
};

/* One output of plane (n, m) with every tap checked against the input's
 * bounds: for the border, where some taps fall on the padding. */
static float conv_dw_point(const float *xc, const float *wm, float acc, const struct conv_geom *g,
                           int oy, int ox)
{
    for (int ky = 0; ky < g->kh; ky++) {
        const int iy = oy * g->sh - g->pt + ky * g->dh;
        if (iy < 0 || iy >= g->H)
            continue;
        for (int kx = 0; kx < g->kw; kx++) {
            const int ix = ox * g->sw - g->pl + kx * g->dw;
            if (ix >= 0 && ix < g->W)
                acc += wm[ky * g->kw + kx] * xc[(size_t)iy * g->W + ix];
        }
    }
    return acc;
}

/* n outputs of a row whose windows lie wholly inside the input:
 *   y[o] = bias + Σ_{ky<KH} Σ_{kx<KW} w[ky·KW + kx] · x[ky·row + o·SW + kx·DW]
 * with x at the first tap of output 0 and `row` floats between kernel rows.
 * Inlined with constant sizes the taps unroll and the loop over o
 * vectorises (for SW = DW = 1 the taps of consecutive outputs are
 * consecutive floats); every output is one chain of multiply-adds in tap
 * order, whatever the vector width. */
static inline __attribute__((always_inline)) void
conv_dw_interior(float *restrict y, const float *restrict x, const float *restrict w, float bias,
                 int n, size_t row, const int SW, const int DW, const int KH, const int KW)
{
    for (int o = 0; o < n; o++) {
        float acc = bias;
        for (int ky = 0; ky < KH; ky++)
            for (int kx = 0; kx < KW; kx++)
                acc += w[ky * KW + kx] * x[ky * row + (size_t)o * SW + (size_t)kx * DW];
        y[o] = acc;
    }
}

/* conv_dw_interior with the common shapes (3x3 and 5x5, stride 1 or 2, no
 * column dilation) as constants. Compiled three times, for baseline x86-64,
 * for AVX2 + FMA and for AVX-512 (chosen once, by the CPU the process runs
 * on): on the latter two the multiply-adds are fused, so results agree with
 * the baseline to rounding, and are the same from run to run on one
 * machine. */
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
static void conv_dw_interior_any(float *y, const float *x, const float *w, float bias, int n,
                                 size_t row, const struct conv_geom *g)
{
    if (g->dw == 1 && g->kh == 3 && g->kw == 3) {
        if (g->sw == 1)
            conv_dw_interior(y, x, w, bias, n, row, 1, 1, 3, 3);
        else if (g->sw == 2)
            conv_dw_interior(y, x, w, bias, n, row, 2, 1, 3, 3);
        else
            conv_dw_interior(y, x, w, bias, n, row, g->sw, 1, 3, 3);
    } else if (g->dw == 1 && g->kh == 5 && g->kw == 5) {
        if (g->sw == 1)
            conv_dw_interior(y, x, w, bias, n, row, 1, 1, 5, 5);
        else if (g->sw == 2)
            conv_dw_interior(y, x, w, bias, n, row, 2, 1, 5, 5);
        else
            conv_dw_interior(y, x, w, bias, n, row, g->sw, 1, 5, 5);
    } else {
        conv_dw_interior(y, x, w, bias, n, row, g->sw, g->dw, g->kh, g->kw);
    }
}

/* Floats of the stack buffer that holds a padded copy of a small input
 * plane, or of one output row's kernel rows (see conv_direct_forward_piece). */
#define CONV_DW_BUF_FLOATS 4096

/* Copies input rows into dst, `rows` rows of wp floats starting at input
 * row iy0, `step` input rows apart: dst row r, column t holds input
 * (iy0 + r·step, t − pl), zero outside the input. With zero_pad 0 only the
 * input's values are written (the zeros are already in place). */
static void conv_dw_pad_rows(float *dst, const float *xc, const struct conv_geom *g, int iy0,
                             int step, int rows, int wp, int zero_pad)
{
    const int t0 = g->pl < wp ? g->pl : wp;
    const int t1 = g->pl + g->W < wp ? g->pl + g->W : wp;
    for (int r = 0; r < rows; r++, dst += wp) {
        const int iy = iy0 + r * step;
        if (iy < 0 || iy >= g->H || t1 <= t0) {
            if (zero_pad)
                memset(dst, 0, (size_t)wp * sizeof *dst);
            continue;
        }
        if (zero_pad)
            memset(dst, 0, (size_t)t0 * sizeof *dst);
        memcpy(dst + t0, xc + (size_t)iy * g->W + (t0 - g->pl), (size_t)(t1 - t0) * sizeof *dst);
        if (zero_pad)
            memset(dst + t1, 0, (size_t)(wp - t1) * sizeof *dst);
    }
}


/* Output plane (n, m) = b[m] + Σ_{ky,kx} w[m, ky, kx] · (input plane n, m / Mg,
 * shifted by the tap), a row at a time, every output through
 * conv_dw_interior from input rows that hold the padding as zeros:
 *   small planes   the whole padded plane, hp × wp floats with
 *                  hp = (Ho − 1)·sh + (kH − 1)·dh + 1 and
 *                  wp = (Wo − 1)·sw + (kW − 1)·dw + 1, is copied once;
 *   large planes   rows whose windows lie inside the input's rows read it
 *                  in place for the columns [ox_lo, ox_hi) whose windows
 *                  lie inside its columns, and take the border columns tap
 *                  by tap (conv_dw_point); the top and bottom rows are
 *                  computed from a padded copy of their kH input rows.
 * Kernels too wide for the buffer go tap by tap where the padding is. */
static void conv_direct_forward_piece(void *ctx, int i0, int i1)
{
    const struct conv_direct_job *j = ctx;
    const struct conv_geom *g = j->g;
    float buf[CONV_DW_BUF_FLOATS];
    const int hp = (g->Ho - 1) * g->sh + (g->kh - 1) * g->dh + 1;
    const int wp = (g->Wo - 1) * g->sw + (g->kw - 1) * g->dw + 1;
    const int whole = (int64_t)hp * wp <= CONV_DW_BUF_FLOATS;
    /* the flattened plane's outputs (see below), up to the last one read */
    float flat[CONV_DW_BUF_FLOATS];
    const int flat_fits = (int64_t)(g->Ho - 1) * wp + g->Wo <= CONV_DW_BUF_FLOATS;
    const int rows_fit = (int64_t)g->kh * wp <= CONV_DW_BUF_FLOATS;
    int oy_lo, oy_hi, ox_lo, ox_hi;
    conv_tap_range(g->H - (g->kh - 1) * g->dh, -g->pt, g->sh, g->Ho, &oy_lo, &oy_hi);
    conv_tap_range(g->W - (g->kw - 1) * g->dw, -g->pl, g->sw, g->Wo, &ox_lo, &ox_hi);
    if (ox_hi < ox_lo)
        ox_hi = ox_lo;
    if (whole) /* the padding is the same zeros for every plane */
        memset(buf, 0, (size_t)hp * wp * sizeof *buf);
    for (int i = i0; i < i1; i++) {
        const int n = i / g->M, m = i % g->M, c = m / g->Mg;
        const float *xc = j->x + ((size_t)n * g->C + c) * g->H * g->W;
        const float *wm = j->w + (size_t)m * g->kh * g->kw;
        const float bias = j->b ? j->b[m] : 0.0f;
        float *yp = j->y + (size_t)i * g->P;
        if (whole) {
            conv_dw_pad_rows(buf, xc, g, -g->pt, 1, hp, wp, 0);
            if (g->sh == g->sw && flat_fits) {
                /* The plane as one long row: output p = oy·wp + ox reads
                 * buf[p·s + tap], which is (oy, ox)'s window for ox < Wo;
                 * the other positions are computed and dropped. Small
                 * planes (14×14, 7×7) become one vector loop instead of a
                 * short loop and a scalar tail per row. */
                const int n_flat = (g->Ho - 1) * wp + g->Wo;
                conv_dw_interior_any(flat, buf, wm, bias, n_flat, (size_t)g->dh * wp, g);
                for (int oy = 0; oy < g->Ho; oy++)
                    memcpy(yp + (size_t)oy * g->Wo, flat + (size_t)oy * wp,
                           (size_t)g->Wo * sizeof *yp);
            }
            else
                for (int oy = 0; oy < g->Ho; oy++)
                    conv_dw_interior_any(yp + (size_t)oy * g->Wo, buf + (size_t)oy * g->sh * wp,
                                         wm, bias, g->Wo, (size_t)g->dh * wp, g);
            if (j->clamp)
                op_clamp(yp, g->P, j->lo, j->hi);
            continue;
        }
        for (int oy = 0; oy < g->Ho; oy++) {
            float *yr = yp + (size_t)oy * g->Wo;
            if (oy < oy_lo || oy >= oy_hi) {
                if (rows_fit) {
                    conv_dw_pad_rows(buf, xc, g, oy * g->sh - g->pt, g->dh, g->kh, wp, 1);
                    conv_dw_interior_any(yr, buf, wm, bias, g->Wo, (size_t)wp, g);
                } else {
                    for (int ox = 0; ox < g->Wo; ox++)
                        yr[ox] = conv_dw_point(xc, wm, bias, g, oy, ox);
                }
                continue;
            }
            for (int ox = 0; ox < ox_lo; ox++)
                yr[ox] = conv_dw_point(xc, wm, bias, g, oy, ox);
            if (ox_hi > ox_lo)
                conv_dw_interior_any(yr + ox_lo,
                                     xc + (size_t)(oy * g->sh - g->pt) * g->W +
                                         (size_t)(ox_lo * g->sw - g->pl),
                                     wm, bias, ox_hi - ox_lo, (size_t)g->dh * g->W, g);
            for (int ox = ox_hi; ox < g->Wo; ox++)
                yr[ox] = conv_dw_point(xc, wm, bias, g, oy, ox);
        }
        if (j->clamp)
            op_clamp(yp, g->P, j->lo, j->hi);
    }
}

/* Backward for the groups [g0, g1) (one input channel each): a group owns its
 * input channel's dX planes and its Mg output channels' dW and dB, so groups
 * split across threads; within a group images go in order. */
static void conv_direct_backward_piece(void *ctx, int g0, int g1)
{
    const struct conv_direct_job *j = ctx;
    const struct conv_geom *g = j->g;
    const int kk = g->kh * g->kw;
    for (int c = g0; c < g1; c++)
        for (int m = c * g->Mg; m < (c + 1) * g->Mg; m++) {
            const float *wm = j->w + (size_t)m * kk;
            float *dwm = j->dw ? j->dw + (size_t)m * kk : NULL;
            for (int n = 0; n < g->N; n++) {
                const size_t xoff = ((size_t)n * g->C + c) * g->H * g->W;
                const float *xc = j->x + xoff;
                float *dxc = j->dx ? j->dx + xoff : NULL;
                const float *dyp = j->dy + ((size_t)n * g->M + m) * g->P;
                if (j->db) {
                    double s = 0;
                    for (int p = 0; p < g->P; p++)
                        s += dyp[p];
                    j->db[m] += (float)s;
                }
                for (int ky = 0; ky < g->kh; ky++)
                    for (int kx = 0; kx < g->kw; kx++) {
                        const int off = kx * g->dw - g->pl;
                        int lo, hi;
                        conv_tap_range(g->W, off, g->sw, g->Wo, &lo, &hi);
                        if (hi <= lo)
                            continue;
                        const int len = hi - lo;
                        const float wv = wm[ky * g->kw + kx];
                        double acc = 0;
                        for (int oy = 0; oy < g->Ho; oy++) {
                            const int iy = oy * g->sh - g->pt + ky * g->dh;
                            if (iy < 0 || iy >= g->H)
                                continue;
                            const float *dyr = dyp + (size_t)oy * g->Wo + lo;
                            /* input index of column lo's tap */
                            const size_t base = (size_t)iy * g->W + (size_t)(lo * g->sw + off);
                            if (dwm) {
                                float s = 0;
                                for (int k = 0; k < len; k++)
                                    s += dyr[k] * xc[base + (size_t)k * g->sw];
                                acc += s;
                            }
                            if (dxc)
                                for (int k = 0; k < len; k++)
                                    dxc[base + (size_t)k * g->sw] += wv * dyr[k];
                        }
                        if (dwm)
                            dwm[ky * g->kw + kx] += (float)acc;
                    }
            }
        }
}

/* ---- the taps, packed for sgemm ------------------------------------------- */

/* sgemm's B for one group: row k = (c, ky, kx) as in im2col, column
 * j = n·P + oy·Wo + ox over every image of the batch, packed straight from
 * the input (the col matrix is never built). */
struct conv_pack_ctx {
    const struct conv_geom *g;
    const float *x;         /* the group's first input channel, image 0 */
    size_t image_stride;    /* C·H·W */
    /* 0, or the columns in pooled panels (sgemm_out.pool) of this many 2×2
     * windows an image, ⌊Ho/2⌋·⌊Wo/2⌋ */
    int pool_windows;
};

/* The packer runs only where sgemm does, that is with AVX-512. */
#define CONV_AVX512 __attribute__((target("avx512f")))

/* A run of packed columns that is one output row of one image. */
struct conv_segment {
    int jj, len;        /* packed columns jj … jj + len − 1 */
    int n, oy, ox;      /* the first one's image, output row and column */
};

/* How many channels ahead the packer asks for the input rows it will read.
 * Each channel's rows are a few short runs far apart (a plane away from the
 * last channel's), which the hardware prefetchers do not guess: without
 * this, the packer of a 3×3 layer waits on memory for as long as the
 * products take. */
#define CONV_PREFETCH_CHANNELS 4

/* Prefetches channel c's input rows under the segments (every kernel row). */
CONV_AVX512 static void conv_prefetch_channel(const struct conv_pack_ctx *pc,
                                              const struct conv_segment *seg, int nseg, int c)
{
    const struct conv_geom *g = pc->g;
    if (c >= g->Cg)
        return;
    const float *xc = pc->x + (size_t)c * g->H * g->W;
    for (int i = 0; i < nseg; i++) {
        int x0 = seg[i].ox * g->sw - g->pl, x1 = (seg[i].ox + seg[i].len - 1) * g->sw - g->pl +
                                                 (g->kw - 1) * g->dw + 1;
        x0 = x0 < 0 ? 0 : x0;
        x1 = x1 > g->W ? g->W : x1;
        for (int ky = 0; ky < g->kh; ky++) {
            const int iy = seg[i].oy * g->sh - g->pt + ky * g->dh;
            if (iy < 0 || iy >= g->H || x1 <= x0)
                continue;
            const float *row = xc + (size_t)seg[i].n * pc->image_stride + (size_t)iy * g->W;
            for (int x = x0; x < x1; x += 16)
                _mm_prefetch((const char *)(row + x), _MM_HINT_T0);
            _mm_prefetch((const char *)(row + x1 - 1), _MM_HINT_T0);
        }
    }
}

/* A run of input that fills some lanes of one panel row: lane l of the run's
 * lanes reads the channel plane at off + l·sw. */
struct conv_run {
    ptrdiff_t off;
    uint64_t lanes;     /* bit l: lane l of the 48 */
};

/* Most runs one tap can need over SGEMM_NC columns: a run per segment, plus
 * one more per panel edge a segment crosses. */
#define CONV_RUNS_MAX (SGEMM_NC + SGEMM_NC / SGEMM_NR)
/* Kernels up to this many taps have every tap's runs found once per call
 * (36 KB of stack); larger ones find them per row of taps. */
#define CONV_TAPS_TABLED 9

/* The runs of tap (ky, kx) for every panel: panel p's are
 * runs[start[p]] … runs[start[p + 1] − 1]. Padding is simply no run. */
static void conv_tap_runs(const struct conv_pack_ctx *pc, const struct conv_segment *seg,
                          int nseg, const int *first, int panels, int nc, int ky, int kx,
                          struct conv_run *runs, int *start)
{
    const struct conv_geom *g = pc->g;
    const int offx = kx * g->dw - g->pl;
    int lo, hi, n = 0;
    conv_tap_range(g->W, offx, g->sw, g->Wo, &lo, &hi);
    for (int p = 0; p < panels; p++) {
        start[p] = n;
        const int pj0 = p * SGEMM_NR, pj1 = nc < pj0 + SGEMM_NR ? nc : pj0 + SGEMM_NR;
        for (int i = first[p]; i < nseg && seg[i].jj < pj1; i++) {
            const struct conv_segment *sg = &seg[i];
            const int iy = sg->oy * g->sh - g->pt + ky * g->dh;
            if (iy < 0 || iy >= g->H)
                continue;
            /* the segment's columns inside this panel, then those whose tap
             * lies inside the input row */
            const int ja = sg->jj > pj0 ? sg->jj : pj0;
            const int jb = sg->jj + sg->len < pj1 ? sg->jj + sg->len : pj1;
            const int oxa = sg->ox + (ja - sg->jj), oxb = oxa + (jb - ja);
            const int a = lo > oxa ? lo : oxa, b = hi < oxb ? hi : oxb;
            if (b <= a)
                continue;
            const int l0 = ja - pj0 + (a - oxa), l1 = l0 + (b - a);
            /* lane l reads the plane at (iy, (a + l − l0)·sw + offx) */
            runs[n++] = (struct conv_run){
                .off = (ptrdiff_t)((size_t)sg->n * pc->image_stride + (size_t)iy * g->W) +
                       (ptrdiff_t)a * g->sw + offx - (ptrdiff_t)l0 * g->sw,
                .lanes = ((1ull << (l1 - l0)) - 1) << l0,
            };
        }
    }
    start[panels] = n;
}

/* Packs as sgemm_pack_fn says. Each 48-float row of a panel is gathered in
 * three registers — masked loads of the runs that fall in it (lanes over the
 * padding, or past nc, stay zero) — and stored whole: masked stores are slow
 * on some CPUs (AMD's), masked loads are not, and a masked-off lane's address
 * is never read. Where a run is depends only on the tap (ky, kx), not on the
 * channel: for small kernels every tap's runs are found once, and each row
 * of taps is then a handful of loads and three stores. */
CONV_AVX512 static void conv_pack_taps(const void *vctx, int k0, int kc, int j0, int nc, float *dst)
{
    const struct conv_pack_ctx *pc = vctx;
    const struct conv_geom *g = pc->g;
    /* sgemm packs at most SGEMM_NC columns at a time: at most that many
     * segments; first[p] is the first segment that reaches into panel p */
    struct conv_segment seg[SGEMM_NC];
    int first[SGEMM_NC / SGEMM_NR + 1];
    int nseg = 0;
    assert(nc <= SGEMM_NC);
    if (pc->pool_windows) {
        /* whole pooled panels: the upper taps of 12 windows, then their
         * lower taps, a segment per row of windows they cover (an odd last
         * column belongs to none) */
        const int Wp = g->Wo / 2, W2 = SGEMM_POOL_WINDOWS;
        const int per_image = (pc->pool_windows + W2 - 1) / W2;
        assert(j0 % SGEMM_NR == 0 && nc % SGEMM_NR == 0);
        for (int p = j0 / SGEMM_NR; p < (j0 + nc) / SGEMM_NR; p++) {
            const int n = p / per_image, w0 = p % per_image * W2;
            const int w1 = pc->pool_windows - w0 < W2 ? pc->pool_windows : w0 + W2;
            for (int lower = 0; lower < 2; lower++)
                for (int w = w0; w < w1;) {
                    const int wy = w / Wp, end = w1 < (wy + 1) * Wp ? w1 : (wy + 1) * Wp;
                    seg[nseg++] = (struct conv_segment){
                        .jj = p * SGEMM_NR - j0 + lower * 2 * W2 + 2 * (w - w0),
                        .len = 2 * (end - w), .n = n, .oy = 2 * wy + lower, .ox = 2 * (w % Wp)};
                    w = end;
                }
        }
    } else {
        for (int j = j0; j < j0 + nc; nseg++) {
            const int n = j / g->P, p = j % g->P, oy = p / g->Wo, ox = p % g->Wo;
            const int end = j0 + nc < j + (g->Wo - ox) ? j0 + nc : j + (g->Wo - ox);
            seg[nseg] = (struct conv_segment){.jj = j - j0, .len = end - j, .n = n, .oy = oy,
                                              .ox = ox};
            j = end;
        }
    }
    const int panels = (nc + SGEMM_NR - 1) / SGEMM_NR;
    for (int p = 0, i = 0; p < panels; p++) {
        while (seg[i].jj + seg[i].len <= p * SGEMM_NR)
            i++;
        first[p] = i;
    }
    const int taps = g->kh * g->kw, tabled = taps <= CONV_TAPS_TABLED;
    struct conv_run runs[CONV_TAPS_TABLED][CONV_RUNS_MAX];
    int start[CONV_TAPS_TABLED][SGEMM_NC / SGEMM_NR + 1];
    if (tabled)
        for (int t = 0; t < taps; t++)
            conv_tap_runs(pc, seg, nseg, first, panels, nc, t / g->kw, t % g->kw, runs[t],
                          start[t]);
    const __m512i lane_offsets =
        _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                           _mm512_set1_epi32(g->sw));
    for (int kk = 0; kk < kc; kk++) {
        const int r = k0 + kk, t = r % taps, c = r / taps;
        if (kk == 0 || t == 0)
            conv_prefetch_channel(pc, seg, nseg, c + CONV_PREFETCH_CHANNELS);
        const int slot = tabled ? t : 0;
        if (!tabled)
            conv_tap_runs(pc, seg, nseg, first, panels, nc, t / g->kw, t % g->kw, runs[0],
                          start[0]);
        const float *xc = pc->x + (size_t)c * g->H * g->W;
        for (int p = 0; p < panels; p++) {
            __m512 row3[3] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
            for (int i = start[slot][p]; i < start[slot][p + 1]; i++) {
                const struct conv_run *run = &runs[slot][i];
                for (int v = 0; v < 3; v++) {
                    const __mmask16 m = (__mmask16)(run->lanes >> (16 * v));
                    if (!m)
                        continue;
                    const float *base = xc + run->off + (ptrdiff_t)16 * v * g->sw;
                    row3[v] = g->sw == 1 ? _mm512_mask_loadu_ps(row3[v], m, base)
                                         : _mm512_mask_i32gather_ps(row3[v], m, lane_offsets, base, 4);
                }
            }
            float *d = dst + (size_t)p * kc * SGEMM_NR + (size_t)kk * SGEMM_NR;
            _mm512_storeu_ps(d, row3[0]);
            _mm512_storeu_ps(d + 16, row3[1]);
            _mm512_storeu_ps(d + 32, row3[2]);
        }
    }
}

/* A 1×1 convolution's B is its input: a panel of 48 pixels of one image is
 * read in place (rows = channels, H·W floats apart). */
static const float *conv_direct_taps(const void *vctx, int k0, int j0, int ncols, size_t *ldb)
{
    const struct conv_pack_ctx *pc = vctx;
    const struct conv_geom *g = pc->g;
    const int n = j0 / g->P, p = j0 % g->P;
    if (ncols != SGEMM_NR || p + SGEMM_NR > g->P)
        return NULL; /* the panel spans two images */
    *ldb = (size_t)g->P;
    return pc->x + (size_t)n * pc->image_stride + (size_t)k0 * g->P + p;
}

/* ---- forward and backward ------------------------------------------------- */

/* Where sgemm cannot run: per image and group, im2col (or the input itself
 * for 1×1) and OpenBLAS. */
static void conv_blas_forward(const struct conv_geom *gp, const float *x, const float *w,
                              const float *bias, float *y, struct op_ctx *ctx)
{
    const struct conv_geom g = *gp;
    const size_t plane_in = (size_t)g.H * g.W;
    assert(g.path != CONV_GEMM || (ctx && ctx->scratch_len >= (size_t)g.K * g.P));
    for (int n = 0; n < g.N; n++)
        for (int gi = 0; gi < g.group; gi++) {
            const float *xg = x + ((size_t)n * g.C + (size_t)gi * g.Cg) * plane_in;
            const float *wg = w + (size_t)gi * g.Mg * g.K;
            float *yg = y + ((size_t)n * g.M + (size_t)gi * g.Mg) * g.P;
            if (bias)
                for (int m = 0; m < g.Mg; m++)
                    for (int p = 0; p < g.P; p++)
                        yg[(size_t)m * g.P + p] = bias[gi * g.Mg + m];
            const float *a = xg; /* CONV_1X1: X_g is [Cg × P] already */
            if (g.path == CONV_GEMM) {
                conv_im2col(ctx->scratch, xg, &g);
                a = ctx->scratch;
            }
            /* Y_g[Mg × P] (+)= W_g[Mg × K] · col[K × P] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g.Mg, g.P, g.K, 1.0f, wg,
                        g.K, a, g.P, bias ? 1.0f : 0.0f, yg, g.P);
        }
}

/* The fused Relu or Clip after the BLAS path, in chunks of
 * CONV_CLAMP_CHUNK on the engine's threads (sgemm and Winograd apply it as
 * they write, the depthwise path plane by plane). */
#define CONV_CLAMP_CHUNK 4096

struct conv_clamp_job {
    float *y;
    size_t n;
    float lo, hi;
};

static void conv_clamp_piece(void *ctx, int c0, int c1)
{
    const struct conv_clamp_job *j = ctx;
    const size_t begin = (size_t)c0 * CONV_CLAMP_CHUNK;
    const size_t end = (size_t)c1 * CONV_CLAMP_CHUNK < j->n ? (size_t)c1 * CONV_CLAMP_CHUNK : j->n;
    op_clamp(j->y + begin, (int64_t)(end - begin), j->lo, j->hi);
}

/* Whether sgemm computes a fused 2×2 max pooling (ctx->pool) itself, in
 * pooled panels: where K fits in one slice of the product (a first layer,
 * few channels in; the maxima need the finished sums) and there is a window
 * at all. */
static int pooled_by_product(const struct conv_geom *g, const struct op_ctx *ctx)
{
    return ctx && ctx->pool && g->K <= SGEMM_KC && g->Ho >= 2 && g->Wo >= 2;
}

/* The Conv's forward; returns 1 when it wrote ctx->pool itself, 0 when
 * the output is in out[0] whole. */
static int conv_forward_whole(const struct node *node, const struct tview *const *in,
                              struct tview *const *out, struct op_ctx *ctx)
{
    const struct tview *b = node->n_inputs > 2 ? in[2] : NULL;
    const struct conv_geom g = conv_geom_of(node->params, in[0], in[1]);
    const float *x = tview_f(in[0]), *w = tview_f(in[1]), *bias = b ? tview_f(b) : NULL;
    float *y = tview_f(out[0]);
    const int clamp = ctx && ctx->clamp;

    const int tile = conv_use_winograd(&g);
    if (tile) {
        const size_t plane_in = (size_t)g.H * g.W, u_len = winograd_weights_size(tile, g.Cg, g.Mg);
        /* U from the cache, made on the first run after a plan; else in
         * the scratch, before each thread's region */
        const int cached = ctx->cache && ctx->cache_len >= u_len * g.group;
        float *U = cached ? ctx->cache : ctx->scratch;
        float *rest = cached ? ctx->scratch : ctx->scratch + u_len * g.group;
        const size_t rest_len = cached ? ctx->scratch_len : ctx->scratch_len - u_len * g.group;
        const int fresh = !cached || !*ctx->cache_valid;
        float *pooled = ctx->pool ? tview_f(ctx->pool) : NULL;
        for (int gi = 0; gi < g.group; gi++) {
            const struct winograd_conv cv = {
                .N = g.N, .C = g.Cg, .H = g.H, .W = g.W, .M = g.Mg, .Ho = g.Ho, .Wo = g.Wo,
                .pt = g.pt, .pl = g.pl, .x = x + (size_t)gi * g.Cg * plane_in,
                .w = w + (size_t)gi * g.Mg * g.K, .bias = bias ? bias + (size_t)gi * g.Mg : NULL,
                .image_stride = (size_t)g.C * plane_in, .y_image_stride = (size_t)g.M * g.P,
                .y = y + (size_t)gi * g.Mg * g.P, .clamp = clamp,
                .lo = clamp ? ctx->clamp_lo : 0.0f, .hi = clamp ? ctx->clamp_hi : 0.0f,
                .tile = tile,
                .pool_y = pooled ? pooled + (size_t)gi * g.Mg * (g.Ho / 2) * (g.Wo / 2) : NULL,
                .pool_image_stride = (size_t)g.M * (g.Ho / 2) * (g.Wo / 2)};
            if (fresh)
                winograd_weights(&cv, U + gi * u_len);
            winograd_forward(&cv, U + gi * u_len, rest, rest_len);
        }
        if (cached)
            *ctx->cache_valid = 1;
        return pooled != NULL;
    }
    if (g.path != CONV_DIRECT && sgemm_available() && pooled_by_product(&g, ctx)) {
        /* the same, with the columns in 2×2 windows and the windows'
         * maxima stored: the output is never written whole */
        const size_t plane_in = (size_t)g.H * g.W;
        const int windows = (g.Ho / 2) * (g.Wo / 2);
        const int panels = (windows + SGEMM_POOL_WINDOWS - 1) / SGEMM_POOL_WINDOWS;
        float *pooled = tview_f(ctx->pool);
        for (int gi = 0; gi < g.group; gi++) {
            struct conv_pack_ctx pc = {.g = &g, .x = x + (size_t)gi * g.Cg * plane_in,
                                       .image_stride = (size_t)g.C * plane_in,
                                       .pool_windows = windows};
            struct sgemm_out o = {.c = pooled + (size_t)gi * g.Mg * windows,
                                  .ldc = (size_t)windows, .block_stride = (size_t)g.M * windows,
                                  .bias = bias ? bias + (size_t)gi * g.Mg : NULL,
                                  .clamp = clamp, .lo = clamp ? ctx->clamp_lo : 0.0f,
                                  .hi = clamp ? ctx->clamp_hi : 0.0f, .pool = 1,
                                  .pool_windows = windows};
            sgemm_run(g.Mg, g.N * panels * SGEMM_NR, g.K, w + (size_t)gi * g.Mg * g.K,
                      (size_t)g.K, conv_pack_taps, NULL, &pc, &o, ctx->scratch, ctx->scratch_len);
        }
        return 1;
    }
    if (g.path != CONV_DIRECT && sgemm_available()) {
        /* one product per group over the whole batch, taps packed on demand,
         * the fused clamp applied as the tiles are written */
        const size_t plane_in = (size_t)g.H * g.W;
        for (int gi = 0; gi < g.group; gi++) {
            struct conv_pack_ctx pc = {.g = &g, .x = x + (size_t)gi * g.Cg * plane_in,
                                       .image_stride = (size_t)g.C * plane_in};
            struct sgemm_out o = {.c = y + (size_t)gi * g.Mg * g.P, .ldc = (size_t)g.P,
                                  .block_cols = g.P, .block_stride = (size_t)g.M * g.P,
                                  .bias = bias ? bias + (size_t)gi * g.Mg : NULL,
                                  .clamp = clamp, .lo = clamp ? ctx->clamp_lo : 0.0f,
                                  .hi = clamp ? ctx->clamp_hi : 0.0f};
            sgemm_run(g.Mg, g.N * g.P, g.K, w + (size_t)gi * g.Mg * g.K, (size_t)g.K,
                      conv_pack_taps, g.path == CONV_1X1 ? conv_direct_taps : NULL, &pc, &o,
                      ctx->scratch, ctx->scratch_len);
        }
        return 0;
    }
    if (g.path == CONV_DIRECT) {
        struct conv_direct_job j = {.g = &g, .x = x, .w = w, .b = bias, .y = y, .clamp = clamp,
                                    .lo = clamp ? ctx->clamp_lo : 0.0f,
                                    .hi = clamp ? ctx->clamp_hi : 0.0f};
        parallel_for_grain(g.N * g.M,
                           parallel_grain((size_t)g.P * (g.kh * g.kw + 1) + (size_t)g.H * g.W),
                           conv_direct_forward_piece, &j);
        return 0;
    }
    conv_blas_forward(&g, x, w, bias, y, ctx);
    if (clamp) {
        struct conv_clamp_job j = {.y = y, .n = (size_t)g.N * g.M * g.P, .lo = ctx->clamp_lo,
                                   .hi = ctx->clamp_hi};
        const size_t chunks = (j.n + CONV_CLAMP_CHUNK - 1) / CONV_CLAMP_CHUNK;
        parallel_for_grain((int)chunks, parallel_grain(2 * CONV_CLAMP_CHUNK), conv_clamp_piece, &j);
    }
    return 0;
}

/* With a fused 2×2 max pooling (ctx->pool), Winograd's path and sgemm's
 * pooled panels (where the sums fit one pass of the kernel) take the
 * windows' maxima while the outputs are in registers and never write the
 * Conv's output; the other paths write it whole (out[0] is room for it),
 * then pool it. */
static void conv_forward(const struct node *node, const struct tview *const *in,
                         struct tview *const *out, struct op_ctx *ctx)
{
    if (!conv_forward_whole(node, in, out, ctx) && ctx && ctx->pool) {
        const struct tview *y = out[0];
        op_max_pool_2x2(tview_f(y), (int)(y->dims[0] * y->dims[1]), (int)y->dims[2],
                        (int)y->dims[3], tview_f(ctx->pool));
    }
}

/* Columns (images × output positions) a backward's product must have for
 * dX to run on strata's sgemm. */
#define CONV_SGEMM_DX_MIN_COLUMNS 64

/* dst[cols × rows] = src[rows × cols]ᵀ, in 16 × 16 tiles (a row-by-row
 * transpose of a large kernel misses the cache on every write). */
static void transpose_tiled(float *dst, const float *src, int rows, int cols)
{
    for (int r0 = 0; r0 < rows; r0 += 16)
        for (int c0 = 0; c0 < cols; c0 += 16) {
            int r1 = r0 + 16 < rows ? r0 + 16 : rows, c1 = c0 + 16 < cols ? c0 + 16 : cols;
            for (int r = r0; r < r1; r++)
                for (int c = c0; c < c1; c++)
                    dst[(size_t)c * rows + r] = src[(size_t)r * cols + c];
        }
}

/* out[K × P] (=, or += with accumulate) W_gᵀ[K × Mg] · dY_g[Mg × P], on
 * strata's sgemm: the product dX needs, for one image and group. */
static void conv_backward_dx(const struct conv_geom *g, const float *wt, const float *dyg,
                             float *out, int accumulate, float *scratch, size_t scratch_len)
{
    struct sgemm_dense_b b = {.b = dyg, .ldb = (size_t)g->P};
    struct sgemm_out o = {.c = out, .ldc = (size_t)g->P, .block_cols = g->P,
                          .block_stride = 0, .accumulate = accumulate};
    sgemm_run(g->K, g->P, g->Mg, wt, (size_t)g->Mg, sgemm_pack_dense, sgemm_direct_dense, &b, &o,
              scratch, scratch_len);
}

/* dW_g[Mg × K] += dY_g[Mg × P] · colᵀ, col [K × P] (the im2col matrix, or the
 * input itself for a 1×1 convolution), on strata's sgemm. */
static void conv_backward_dw(const struct conv_geom *g, const float *dyg, const float *col,
                             float *dw, float *scratch, size_t scratch_len)
{
    struct sgemm_dense_b b = {.b = col, .ldb = (size_t)g->P};
    struct sgemm_out o = {.c = dw, .ldc = (size_t)g->K, .block_cols = g->K, .block_stride = 0,
                          .accumulate = 1};
    sgemm_run(g->Mg, g->K, g->P, dyg, (size_t)g->P, sgemm_pack_transposed, NULL, &b, &o, scratch,
              scratch_len);
}

/* The bias gradient of output channels [m0, m1): db[m] += Σ_{n, p} dY[n, m, p],
 * each channel's sum in double, in eight interleaved partial sums (a fixed
 * order that vectorises), one channel in one piece. */
struct conv_bias_job {
    const struct conv_geom *g;
    const float *dy;
    float *db;
};

__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
static void conv_bias_backward_piece(void *arg, int m0, int m1)
{
    const struct conv_bias_job *j = arg;
    const struct conv_geom *g = j->g;
    for (int m = m0; m < m1; m++) {
        double part[8] = {0};
        for (int n = 0; n < g->N; n++) {
            const float *p = j->dy + ((size_t)n * g->M + m) * g->P;
            int i = 0;
            for (; i + 8 <= g->P; i += 8)
                for (int l = 0; l < 8; l++)
                    part[l] += p[i + l];
            for (int l = 0; i < g->P; i++, l++)
                part[l] += p[i];
        }
        double s = 0;
        for (int l = 0; l < 8; l++)
            s += part[l];
        j->db[m] += (float)s;
    }
}

/* Backward on strata's sgemm a chunk of images at a time (see
 * conv_backward_batch), for one group: with col [K × nb·P] the chunk's
 * im2col matrices side by side and dYc [M × nb·P] its output gradients
 * gathered likewise,
 *   dW[M × K] += dYc · colᵀ           (one product over the chunk's pixels)
 *   dcol       = Wᵀ · dYc, added back onto dX by col2im (dcol reuses col).
 * Each product covers many images, so the engine's threads share large
 * tiles instead of meeting after every image. */
static void conv_backward_batched(const struct conv_geom *g, const float *x, const float *w,
                                  const float *dy, float *dx, float *dw, struct op_ctx *ctx)
{
    const int nb_max = conv_backward_batch(g);
    const size_t cols_max = (size_t)nb_max * g->P;
    float *col = ctx->scratch;
    float *wt = col + (((size_t)g->K * cols_max + 15) & ~(size_t)15);
    float *dyc = wt + (((size_t)g->K * g->M + 15) & ~(size_t)15);
    float *prod = dyc + (((size_t)g->M * cols_max + 15) & ~(size_t)15);
    const size_t prod_len = ctx->scratch_len - (size_t)(prod - ctx->scratch);
    if (dx)
        transpose_tiled(wt, w, g->M, g->K); /* W [M × K] -> Wᵀ [K × M] */
    for (int n0 = 0; n0 < g->N; n0 += nb_max) {
        const int nb = g->N - n0 < nb_max ? g->N - n0 : nb_max;
        const size_t cols = (size_t)nb * g->P;
        for (int m = 0; m < g->M; m++)
            for (int i = 0; i < nb; i++)
                memcpy(dyc + (size_t)m * cols + (size_t)i * g->P,
                       dy + ((size_t)(n0 + i) * g->M + m) * g->P, (size_t)g->P * sizeof *dyc);
        struct conv_col_job cj = {.g = g, .col = col, .ldc = cols,
                                  .x = x + (size_t)n0 * g->C * g->H * g->W, .images = nb};
        if (dw) {
            parallel_for_grain(g->K * nb, parallel_grain(2 * (size_t)g->P), conv_im2col_piece,
                               &cj);
            struct sgemm_dense_b b = {.b = col, .ldb = cols};
            struct sgemm_out o = {.c = dw, .ldc = (size_t)g->K, .block_cols = g->K,
                                  .accumulate = 1};
            sgemm_run(g->M, g->K, (int)cols, dyc, cols, sgemm_pack_transposed, NULL, &b, &o, prod,
                      prod_len);
        }
        if (dx) {
            struct sgemm_dense_b b = {.b = dyc, .ldb = cols};
            struct sgemm_out o = {.c = col, .ldc = cols, .block_cols = (int)cols};
            sgemm_run(g->K, (int)cols, g->M, wt, (size_t)g->M, sgemm_pack_dense, sgemm_direct_dense,
                      &b, &o, prod, prod_len);
            cj.dx = dx + (size_t)n0 * g->C * g->H * g->W;
            parallel_for_grain(g->C * nb, parallel_grain((size_t)g->kh * g->kw * g->P * 2),
                               conv_col2im_piece, &cj);
        }
    }
}

static void conv_backward(const struct node *node, const struct tview *const *in,
                          const struct tview *const *out, const struct tview *const *dout,
                          struct tview *const *din, struct op_ctx *ctx)
{
    const int has_b = node->n_inputs > 2 && in[2];
    const struct conv_geom g = conv_geom_of(node->params, in[0], in[1]);
    const float *x = tview_f(in[0]), *w = tview_f(in[1]), *dy = tview_f(dout[0]);
    float *dx = din[0] ? tview_f(din[0]) : NULL;
    float *dw = din[1] ? tview_f(din[1]) : NULL;
    float *db = has_b && din[2] ? tview_f(din[2]) : NULL;

    if (g.path == CONV_DIRECT) {
        struct conv_direct_job j = {.g = &g, .x = x, .w = w, .dy = dy, .dx = dx, .dw = dw,
                                    .db = db};
        parallel_for_grain(g.group, parallel_grain((size_t)g.N * g.Mg * g.P * 3 * g.kh * g.kw),
                           conv_direct_backward_piece, &j);
        return;
    }
    if (db) {
        struct conv_bias_job bj = {.g = &g, .dy = dy, .db = db};
        parallel_for_grain(g.M, parallel_grain((size_t)g.N * g.P), conv_bias_backward_piece, &bj);
    }
    if (!dx && !dw)
        return;
    if (conv_backward_batches(&g) && ctx &&
        ctx->scratch_len >= conv_batched_scratch(&g, conv_backward_batch(&g))) {
        conv_backward_batched(&g, x, w, dy, dx, dw, ctx);
        return;
    }
    const size_t plane_in = (size_t)g.H * g.W;
    assert(g.path != CONV_GEMM || (ctx && ctx->scratch_len >= (size_t)g.K * g.P));
    /* dX on strata's sgemm where it runs (OpenBLAS's threads collapse beside
     * other busy processes, and explanations are mostly dX), where the
     * product has enough columns (images × positions) that transposing the
     * weights once per call costs little beside it (ResNet's last layers at
     * batch 1: 49 columns for 2.4 M weights, would not). Scratch holds col
     * [K × P], then Wᵀ [K × Mg], then the product's own scratch. */
    const size_t col_len = g.path == CONV_GEMM ? ((size_t)g.K * g.P + 15) & ~(size_t)15 : 0;
    const size_t wt_len = ((size_t)g.K * g.Mg + 15) & ~(size_t)15;
    const int dx_on_sgemm = dx && (size_t)g.N * g.P >= CONV_SGEMM_DX_MIN_COLUMNS &&
                            sgemm_available() && ctx &&
                            ctx->scratch_len >= col_len + wt_len + sgemm_scratch(g.K, g.P, g.Mg, 1);
    float *wt = dx_on_sgemm ? ctx->scratch + col_len : NULL;
    /* dW on strata's sgemm too where the scratch has room for its product:
     * a training step then leaves OpenBLAS's threads asleep, where they
     * would spin beside the engine's own between the products */
    const int dw_on_sgemm = dw && sgemm_available() && ctx &&
                            ctx->scratch_len >= col_len + wt_len + sgemm_scratch(g.Mg, g.K, g.P, 1);
    for (int n = 0; n < g.N; n++)
        for (int gi = 0; gi < g.group; gi++) {
            const size_t xoff = ((size_t)n * g.C + (size_t)gi * g.Cg) * plane_in;
            const float *wg = w + (size_t)gi * g.Mg * g.K;
            const float *dyg = dy + ((size_t)n * g.M + (size_t)gi * g.Mg) * g.P;
            if (dx_on_sgemm && (n == 0 || g.group > 1))
                transpose_tiled(wt, wg, g.Mg, g.K); /* W_g [Mg × K] -> W_gᵀ [K × Mg] */
            if (g.path == CONV_1X1) {
                /* dW_g[Mg × Cg] += dY_g · X_gᵀ;  dX_g[Cg × P] += W_gᵀ · dY_g */
                if (dw_on_sgemm)
                    conv_backward_dw(&g, dyg, x + xoff, dw + (size_t)gi * g.Mg * g.K,
                                     ctx->scratch + col_len + wt_len,
                                     ctx->scratch_len - col_len - wt_len);
                else if (dw)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g.Mg, g.K, g.P, 1.0f,
                                dyg, g.P, x + xoff, g.P, 1.0f, dw + (size_t)gi * g.Mg * g.K,
                                g.K);
                if (dx_on_sgemm)
                    conv_backward_dx(&g, wt, dyg, dx + xoff, 1, ctx->scratch + col_len + wt_len,
                                     ctx->scratch_len - col_len - wt_len);
                else if (dx)
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g.K, g.P, g.Mg, 1.0f,
                                wg, g.K, dyg, g.P, 1.0f, dx + xoff, g.P);
                continue;
            }
            float *col = ctx->scratch;
            if (dw) { /* dW_g[Mg × K] += dY_g[Mg × P] · colᵀ[P × K] */
                conv_im2col(col, x + xoff, &g);
                if (dw_on_sgemm)
                    conv_backward_dw(&g, dyg, col, dw + (size_t)gi * g.Mg * g.K,
                                     ctx->scratch + col_len + wt_len,
                                     ctx->scratch_len - col_len - wt_len);
                else
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g.Mg, g.K, g.P, 1.0f,
                                dyg, g.P, col, g.P, 1.0f, dw + (size_t)gi * g.Mg * g.K, g.K);
            }
            if (dx) { /* dcol[K × P] = W_gᵀ[K × Mg] · dY_g[Mg × P], added back onto dX */
                if (dx_on_sgemm)
                    conv_backward_dx(&g, wt, dyg, col, 0, ctx->scratch + col_len + wt_len,
                                     ctx->scratch_len - col_len - wt_len);
                else
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g.K, g.P, g.Mg, 1.0f,
                                wg, g.K, dyg, g.P, 0.0f, col, g.P);
                conv_col2im_add(dx + xoff, col, &g);
            }
        }
}

/* Conv: inputs X, W and optional B; one output. setup refuses malformed or
 * non-2-D attributes; infer refuses non-float tensors, inputs of rank other
 * than 4 (3-D and 5-D as unsupported), W channels that do not match C/group,
 * M not a multiple of group, a kernel_shape that differs from W, a bias not of
 * shape [M], and kernels that do not fit the padded input. */
const struct op op_conv = {
    .name = "Conv",
    .min_inputs = 2,
    .max_inputs = 3,
    .min_outputs = 1,
    .max_outputs = 1,
    .setup = conv_setup,
    .infer = conv_infer,
    .scratch = conv_scratch,
    .cache = conv_cache,
    .forward = conv_forward,
    .backward = conv_backward,
};
