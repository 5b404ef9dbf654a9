/*
 * conv2d.c — 2-D convolution (Keras Conv2D), NHWC, on OpenBLAS GEMM.
 *
 * Shapes: input H×W×C, kernel [k][k][C][F] (HWIO), bias [F], output Ho×Wo×F.
 *   valid  Ho = floor((H − k) / s) + 1
 *   same   Ho = ceil(H / s); pad_total = max((Ho − 1)·s + k − H, 0), of which
 *          pad_total / 2 goes on top and the rest (one more when odd) at the
 *          bottom — TensorFlow's rule. Likewise for the width.
 *
 * As a matrix product. The reduction index is κ = (ky·k + kx)·C + c, so
 * K = k·k·C and the kernel read as a row-major K×F matrix is exactly the HWIO
 * tensor. im2col writes, for every output pixel p, the K input values its
 * window sees (zeros over the padding) as row p of col [P×K], and then
 * out[P×F] = col · W. In NHWC one kernel row of a window (fixed ky) is
 * kc = k·C consecutive input floats, so im2col is k short copies per pixel.
 *
 * Three ways to build the left operand, by layer:
 *   CONV_DIRECT  1×1, stride 1: the input already is col [P×C].
 *   CONV_ROWS    stride 1, large images, kc ≥ CONV_ROWS_MIN_KC: a pixel's
 *                window is k consecutive rows of the same "row-expanded"
 *                image X[py][ox] = kc floats (the kernel row starting at
 *                padded input row py, column ox). Output row oy needs X rows
 *                oy … oy + k − 1, so with X stored row after row,
 *                  out = Σ_ky X[ky·Wo …] · W[ky]      (k GEMMs, K = kc each)
 *                where X shifted by ky rows is again a plain P×kc matrix.
 *                X is k times smaller than col, and so is its memory traffic;
 *                OpenBLAS runs K = 96 as fast as K = 288.
 *   CONV_IM2COL  everything else (strided, or small images where a chunk must
 *                span several of them, or kc too short for an efficient GEMM
 *                like a 3×3 kernel over RGB): full im2col, one GEMM.
 *
 * GEMM orientation. The product is tall and skinny (P pixels, F = 32 … 128
 * filters), and OpenBLAS is far from its peak when the short F dimension
 * comes first in its column-major view, as it does for out[P×F] row-major:
 * its micro-kernel is tall along that dimension. It runs 1.3–2× faster on
 * the transposed problem outᵀ[F×P] = Wᵀ · colᵀ (measured for F = 32, 64,
 * 128 and K = 27 … 576). So the forward computes outᵀ into scratch and
 * writes it back transposed into NHWC, adding the bias and applying the
 * fused activation on the way. Only layers with more than
 * CONV_TRANSPOSE_MAX_F filters compute out = col · W directly.
 *
 * Direct convolution for small windows (CONV_SMALL_*). A first layer over
 * RGB has K = 27: as a GEMM it is all overhead — im2col writes 27 floats per
 * pixel, OpenBLAS packs them again, the product is written transposed and
 * transposed back — for only 27 multiply-adds per output value. With
 * AVX-512 and F a multiple of 16 (up to 48), the forward instead computes
 * each output row straight from the input: 8 pixels × F filters stay in
 * registers while the K window values are broadcast against the kernel's
 * rows, and bias and relu are applied before the one store. Pixels whose
 * window crosses the padding go through a one-pixel version that adds the
 * same terms in the same order with the same fused multiply-adds, so a
 * pixel's value depends neither on which of the two computed it nor on the
 * batch. Rows are spread over the engine's threads (parallel.h). The
 * backward is unchanged (it builds its own im2col).
 *
 * Chunking. The batch is processed a block of whole output rows at a time
 * (CONV_ROWS blocks stay within one image; the others may span images),
 * sized to about CONV_CHUNK_FLOATS floats of scratch: large enough that each
 * GEMM is efficient and amortises OpenBLAS's thread start-up, small enough
 * that the scratch stays in the cache between building col, the GEMM and the
 * write-back. Never more than CONV_COL_CAP floats (32 MB) unless a single
 * output row needs more. The chunk size depends only on the layer, so
 * col_size(n) bounds every call with a batch ≤ n.
 *
 * Backward, per chunk (a pixel's gradient needs only its own dout row):
 *   dz  = dout turned into the pre-activation gradient in place
 *         (activation_backward)
 *   db += Σ_p dz[p]                         (in double)
 *   dW += colᵀ · dz                          (CONV_ROWS: dW[ky] += Xᵀ·dz per ky;
 *                                             with AVX-512 and F = 16 … 64 a
 *                                             multiple of 16, without GEMM:
 *                                             see "direct weight gradient")
 *   din += col2im(dz · Wᵀ)                   (dcol reuses the col buffer;
 *                                             CONV_ROWS accumulates the k
 *                                             shifted products into dX;
 *                                             CONV_DIRECT adds dz·Wᵀ to din)
 *
 * Threads. The GEMMs run on OpenBLAS's threads; everything else of a chunk
 * runs on the pool (parallel.h): col / X built a range of rows per piece,
 * the write-back 16 pixels per unit, the bias gradient a range of filters,
 * the direct weight gradient a range of dW row blocks,
 * col2im a range of input rows and X's scatter a range of X rows. Each
 * output value is computed by one piece with the same operations in the
 * same order as in one serial pass, so results are bit-identical whatever
 * the thread count.
 */
#include "layer.h"

#include <assert.h>
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <xmmintrin.h>
#endif

#include "../parallel.h"
#include "../status.h"

/* Scratch floats per chunk (col + outᵀ) to aim for, a floor on the pixels of
 * a chunk so that GEMMs stay efficient when a pixel needs much scratch, and a
 * hard cap of 32 MB. Tuned on the seed architecture (see the file comment). */
#define CONV_CHUNK_FLOATS ((size_t)1 << 20)
#define CONV_CHUNK_MIN_PIXELS 1024
#define CONV_COL_CAP ((size_t)8 << 20)
/* Above this many filters, out = col · W is computed directly. */
#define CONV_TRANSPOSE_MAX_F 2048
/* CONV_ROWS needs GEMMs with K = kc of at least this, and images of at least
 * this many output pixels (its chunks cannot span images). */
#define CONV_ROWS_MIN_KC 32
#define CONV_ROWS_MIN_PIXELS 1024
/* Layer outputs larger than this (bytes) are written with non-temporal
 * stores; smaller ones are left in the cache for the next layer. */
#define CONV_STREAM_BYTES ((size_t)16 << 20)

/* The direct forward: windows of at most this many values (k·k·C), at most
 * this many filters (a multiple of 16), CONV_SMALL_PX pixels per block. */
#define CONV_SMALL_MAX_K 32
#define CONV_SMALL_MAX_F 48
#define CONV_SMALL_PX 8

enum conv_mode { CONV_DIRECT, CONV_ROWS, CONV_IM2COL };

/* Everything the kernels need about one layer's geometry. */
struct conv_geom {
    int H, W, C;        /* input sample */
    int Ho, Wo, F;      /* output sample */
    int k, s;           /* kernel side, stride */
    int pt, pl;         /* padding before the first row / column */
    int kc;             /* k·C: one kernel row of a window */
    int K;              /* k·k·C */
    int ox_lo, ox_hi;   /* output columns [ox_lo, ox_hi) have their whole window
                           inside the input's columns */
    enum conv_mode mode;
    int transposed;     /* compute outᵀ = Wᵀ colᵀ, then transpose */
    int chunk_rows;     /* output rows per chunk (before clamping to the batch) */
    int terms;          /* GEMMs per chunk: k for CONV_ROWS, else 1 */
    int Kt;             /* reduction length of each: kc for CONV_ROWS, else K
                           (C for CONV_DIRECT, where K = C) */
};

static int conv_out_size(int in, int k, int s, enum padding pad)
{
    if (pad == PADDING_SAME)
        return (in + s - 1) / s;
    return in >= k ? (in - k) / s + 1 : 0;
}

static int conv_pad_before(int in, int out, int k, int s, enum padding pad)
{
    if (pad != PADDING_SAME)
        return 0;
    int total = (out - 1) * s + k - in;
    return total > 0 ? total / 2 : 0;
}

/* Scratch floats for a chunk of R output rows: the left operand (col, or X
 * with its k − 1 extra rows) and outᵀ. */
static size_t conv_chunk_floats(const struct conv_geom *g, size_t R)
{
    size_t a = g->mode == CONV_IM2COL ? R * g->Wo * g->K
             : g->mode == CONV_ROWS   ? (R + g->k - 1) * g->Wo * g->kc
                                      : 0;
    return a + (g->transposed ? R * g->Wo * g->F : 0);
}

static struct conv_geom conv_geom_of(const struct layer *l)
{
    const struct layer_config *c = &l->cfg;
    struct conv_geom g = {
        .H = l->in.h, .W = l->in.w, .C = l->in.c,
        .Ho = l->out.h, .Wo = l->out.w, .F = l->out.c,
        .k = c->kernel, .s = c->stride,
    };
    g.pt = conv_pad_before(g.H, g.Ho, g.k, g.s, c->padding);
    g.pl = conv_pad_before(g.W, g.Wo, g.k, g.s, c->padding);
    g.kc = g.k * g.C;
    g.K = g.k * g.kc;
    /* ox·s − pl ≥ 0 and ox·s − pl + k ≤ W */
    g.ox_lo = (g.pl + g.s - 1) / g.s;
    g.ox_hi = g.W - g.k + g.pl >= 0 ? (g.W - g.k + g.pl) / g.s + 1 : 0;
    g.ox_lo = g.ox_lo < g.Wo ? g.ox_lo : g.Wo;
    g.ox_hi = g.ox_hi < g.Wo ? g.ox_hi : g.Wo;
    g.ox_hi = g.ox_hi > g.ox_lo ? g.ox_hi : g.ox_lo;
    if (g.k == 1 && g.s == 1)
        g.mode = CONV_DIRECT;
    else if (g.s == 1 && g.kc >= CONV_ROWS_MIN_KC && g.Ho * g.Wo >= CONV_ROWS_MIN_PIXELS)
        g.mode = CONV_ROWS;
    else
        g.mode = CONV_IM2COL;
    g.terms = g.mode == CONV_ROWS ? g.k : 1;
    g.Kt = g.mode == CONV_ROWS ? g.kc : g.K;
    g.transposed = g.F <= CONV_TRANSPOSE_MAX_F;

    size_t per_pixel = (g.mode == CONV_IM2COL ? (size_t)g.K
                        : g.mode == CONV_ROWS ? (size_t)g.kc : 0) +
                       (g.transposed ? (size_t)g.F : 0);
    size_t pixels = per_pixel ? CONV_CHUNK_FLOATS / per_pixel : CONV_CHUNK_FLOATS;
    if (pixels < CONV_CHUNK_MIN_PIXELS)
        pixels = CONV_CHUNK_MIN_PIXELS;
    if (per_pixel && pixels * per_pixel > CONV_COL_CAP)
        pixels = CONV_COL_CAP / per_pixel;
    size_t rows = pixels / (size_t)g.Wo;
    if (g.mode == CONV_ROWS && rows > (size_t)g.Ho)
        rows = g.Ho;
    g.chunk_rows = rows < 1 ? 1 : rows > (size_t)INT_MAX ? INT_MAX : (int)rows;
    return g;
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
    if (c->padding != PADDING_VALID && c->padding != PADDING_SAME)
        return strata_fail(err, STRATA_E_ARG,
                           "layer '%s': padding must be \"valid\" or \"same\"", c->name);
    if (c->activation != ACT_NONE && c->activation != ACT_RELU &&
        c->activation != ACT_SIGMOID && c->activation != ACT_SOFTMAX)
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
        .dims = {c->kernel, c->kernel, l->in.c, c->filters}, .trainable = 1};
    if (!c->use_bias)
        return 1;
    desc[1] = (struct param_desc){
        .name = "bias", .ndim = 1, .dims = {c->filters}, .trainable = 1};
    return 2;
}

/* Scratch for one chunk of at most chunk_rows output rows. */
static size_t conv_col_size(const struct layer *l, int n)
{
    struct conv_geom g = conv_geom_of(l);
    size_t rows = (size_t)n * g.Ho;
    if (rows > (size_t)g.chunk_rows)
        rows = g.chunk_rows;
    return conv_chunk_floats(&g, rows);
}

static size_t conv_state_size(const struct layer *l, int n)
{
    return 0;
}

static void conv_state_bind(struct layer *l, void *block, int n)
{
}

/* Keras's defaults: He-uniform ahead of a relu (keeps the activations'
 * variance from layer to layer), Glorot-uniform otherwise; fan_in = k·k·C and
 * fan_out = k·k·F. Biases start at zero. */
static void conv_init(struct layer *l, struct rng *r)
{
    const struct layer_config *c = &l->cfg;
    double fan_in = (double)c->kernel * c->kernel * l->in.c;
    double fan_out = (double)c->kernel * c->kernel * c->filters;
    double limit = c->activation == ACT_RELU ? sqrt(6.0 / fan_in)
                                             : sqrt(6.0 / (fan_in + fan_out));
    size_t nk = (size_t)c->kernel * c->kernel * l->in.c * c->filters;
    for (size_t i = 0; i < nk; i++)
        l->w.kernel[i] = (float)((2.0 * rng_uniform(r) - 1.0) * limit);
    if (c->use_bias)
        memset(l->w.bias, 0, (size_t)c->filters * sizeof(float));
}

/* ---- building the left operand, and scattering its gradient back ---------- */

/* n runs of len floats: d + i·dstep ← s + i·sstep. One kernel row of a window
 * is short (9 floats for a 3×3 RGB kernel), so a library memcpy call or a
 * generic vector loop with its prologue and tail would cost more than the
 * copy; the usual lengths get a fixed-size memcpy, which compiles to a few
 * unaligned moves. */
static void conv_copy_runs(float *restrict d, size_t dstep, const float *restrict s,
                           size_t sstep, int n, int len)
{
#define CONV_RUNS(LEN)                                                       \
    for (int i = 0; i < n; i++)                                              \
        memcpy(d + i * dstep, s + i * sstep, (LEN) * sizeof(float));         \
    return
    switch (len) {
    case 3: CONV_RUNS(3);
    case 9: CONV_RUNS(9);
    case 15: CONV_RUNS(15);
    case 21: CONV_RUNS(21);
    case 32: CONV_RUNS(32);
    case 48: CONV_RUNS(48);
    case 64: CONV_RUNS(64);
    case 96: CONV_RUNS(96);
    case 192: CONV_RUNS(192);
    default:
        if (len >= 64) { /* long enough for the library's copy to pay off */
            for (int i = 0; i < n; i++)
                memcpy(d + i * dstep, s + i * sstep, (size_t)len * sizeof(float));
        } else {
            for (int i = 0; i < n; i++)
                for (int j = 0; j < len; j++)
                    d[i * dstep + j] = s[i * sstep + j];
        }
    }
#undef CONV_RUNS
}

/* d + i·dstep += s + i·sstep, n runs of len floats, in order (with stride 1
 * consecutive destinations overlap, and each run must see the previous). */
static void conv_add_runs(float *restrict d, size_t dstep, const float *restrict s,
                          size_t sstep, int n, int len)
{
#define CONV_ADDS(LEN)                                                       \
    for (int i = 0; i < n; i++)                                              \
        for (int j = 0; j < (LEN); j++)                                      \
            d[i * dstep + j] += s[i * sstep + j];                            \
    return
    switch (len) {
    case 3: CONV_ADDS(3);
    case 9: CONV_ADDS(9);
    case 32: CONV_ADDS(32);
    case 48: CONV_ADDS(48);
    case 96: CONV_ADDS(96);
    default: CONV_ADDS(len);
    }
#undef CONV_ADDS
}

/* The part [lo, hi) of kernel columns of the window at output column ox
 * that falls inside the input, and the window's first input column. */
static inline int conv_window_cols(const struct conv_geom *g, int ox, int *lo, int *hi)
{
    const int ix0 = ox * g->s - g->pl;
    *lo = ix0 < 0 ? -ix0 : 0;
    *hi = g->W - ix0 < g->k ? g->W - ix0 : g->k;
    if (*hi < *lo)
        *hi = *lo;
    return ix0;
}

/* One kernel row of every window along an output row: for each output
 * column ox, the kc floats of input row `srow` at columns ox·s − pl …
 * ox·s − pl + k − 1 (zeros outside the input) go to d + ox·dstep. A NULL srow
 * is a padding row: all zeros. */
static void conv_window_row(float *restrict d, size_t dstep, const float *restrict srow,
                            const struct conv_geom *g)
{
    const int kc = g->kc, C = g->C;
    if (!srow) {
        for (int ox = 0; ox < g->Wo; ox++)
            memset(d + ox * dstep, 0, (size_t)kc * sizeof(float));
        return;
    }
    if (g->ox_hi > g->ox_lo)
        conv_copy_runs(d + g->ox_lo * dstep, dstep,
                       srow + (size_t)(g->ox_lo * g->s - g->pl) * C, (size_t)g->s * C,
                       g->ox_hi - g->ox_lo, kc);
    for (int ox = 0; ox < g->Wo; ox++) {
        if (ox == g->ox_lo)
            ox = g->ox_hi; /* the interior is done */
        if (ox >= g->Wo)
            break;
        int lo, hi;
        const int ix0 = conv_window_cols(g, ox, &lo, &hi);
        float *w = d + ox * dstep;
        memset(w, 0, (size_t)lo * C * sizeof(float));
        if (hi > lo)
            memcpy(w + lo * C, srow + (size_t)(ix0 + lo) * C, (size_t)(hi - lo) * C * sizeof(float));
        memset(w + hi * C, 0, (size_t)(kc - hi * C) * sizeof(float));
    }
}

/* The transpose of conv_window_row: adds each window's kernel row, read at
 * s + ox·sstep, back onto input row drow (padding entries are dropped). */
static void conv_window_row_add(float *restrict drow, const float *restrict s, size_t sstep,
                                const struct conv_geom *g)
{
    const int C = g->C;
    if (g->ox_hi > g->ox_lo)
        conv_add_runs(drow + (size_t)(g->ox_lo * g->s - g->pl) * C, (size_t)g->s * C,
                      s + g->ox_lo * sstep, sstep, g->ox_hi - g->ox_lo, g->kc);
    for (int ox = 0; ox < g->Wo; ox++) {
        if (ox == g->ox_lo)
            ox = g->ox_hi;
        if (ox >= g->Wo)
            break;
        int lo, hi;
        const int ix0 = conv_window_cols(g, ox, &lo, &hi);
        float *d = drow + (size_t)(ix0 + lo) * C;
        const float *src = s + ox * sstep + lo * C;
        for (int j = 0; j < (hi - lo) * C; j++)
            d[j] += src[j];
    }
}

/* Offset of input row iy of image img in an input-shaped tensor, or −1 when
 * iy lies in the padding. */
static inline ptrdiff_t conv_in_row(const struct conv_geom *g, int img, int iy)
{
    if (iy < 0 || iy >= g->H)
        return -1;
    return (ptrdiff_t)(((size_t)img * g->H + iy) * g->W) * g->C;
}

/* CONV_IM2COL: rows [rb, re) of col [nr·Wo × K] for the chunk of output
 * rows starting at r0 (row r is output row r mod Ho of image r / Ho, and
 * goes to col row r − r0). */
static void conv_im2col(float *restrict col, const float *restrict in,
                        const struct conv_geom *g, int r0, int rb, int re)
{
    for (int r = rb; r < re; r++) {
        const int img = r / g->Ho, oy = r % g->Ho;
        float *dst = col + (size_t)(r - r0) * g->Wo * g->K;
        for (int ky = 0; ky < g->k; ky++) {
            const ptrdiff_t row = conv_in_row(g, img, oy * g->s - g->pt + ky);
            conv_window_row(dst + ky * g->kc, (size_t)g->K, row < 0 ? NULL : in + row, g);
        }
    }
}

/* din += col2im(dcol), the transpose of conv_im2col, for the chunk of nr
 * output rows starting at r0 — restricted to the input rows whose global
 * index img·H + iy lies in [gb, ge). Overlapping windows add up; each input
 * row receives its windows' rows in the order of r, whatever [gb, ge) is, so
 * cutting the input rows between threads leaves every sum as it is. */
static void conv_col2im(float *restrict din, const float *restrict dcol,
                        const struct conv_geom *g, int r0, int nr, int64_t gb, int64_t ge)
{
    for (int r = r0; r < r0 + nr; r++) {
        const int img = r / g->Ho, oy = r % g->Ho;
        const float *src = dcol + (size_t)(r - r0) * g->Wo * g->K;
        for (int ky = 0; ky < g->k; ky++) {
            const int iy = oy * g->s - g->pt + ky;
            const int64_t gi = (int64_t)img * g->H + iy;
            if (gi < gb || gi >= ge)
                continue;
            const ptrdiff_t row = conv_in_row(g, img, iy);
            if (row >= 0)
                conv_window_row_add(din + row, src + ky * g->kc, (size_t)g->K, g);
        }
    }
}

/* CONV_ROWS: rows [ib, ie) of X [(nr + k − 1)·Wo × kc] for the chunk of
 * output rows starting at r0, all in one image: X row i holds the kernel rows
 * starting at padded input row oy0 + i. */
static void conv_rowcol(float *restrict x, const float *restrict in, const struct conv_geom *g,
                        int r0, int ib, int ie)
{
    const int img = r0 / g->Ho, oy0 = r0 % g->Ho;
    for (int i = ib; i < ie; i++) {
        const ptrdiff_t row = conv_in_row(g, img, oy0 + i - g->pt);
        conv_window_row(x + (size_t)i * g->Wo * g->kc, (size_t)g->kc,
                        row < 0 ? NULL : in + row, g);
    }
}

/* din += the transpose of conv_rowcol applied to rows [ib, ie) of dX. Each
 * X row maps to its own input row, so ranges of i touch disjoint rows. */
static void conv_rowcol_add(float *restrict din, const float *restrict dx,
                            const struct conv_geom *g, int r0, int ib, int ie)
{
    const int img = r0 / g->Ho, oy0 = r0 % g->Ho;
    for (int i = ib; i < ie; i++) {
        const ptrdiff_t row = conv_in_row(g, img, oy0 + i - g->pt);
        if (row >= 0)
            conv_window_row_add(din + row, dx + (size_t)i * g->Wo * g->kc, (size_t)g->kc, g);
    }
}

/* ---- the same, cut between threads ---------------------------------------- *
 *
 * Building col or X, and scattering their gradients back, run on the pool
 * (parallel.h) a range of rows per piece. Every row of col / X is written by
 * one piece, and every input row of din is updated by one piece with its
 * terms in the serial order, so the results do not depend on the split. */

struct conv_rows_job {
    float *dst;             /* col or X; din for the scatters */
    const float *src;       /* the input; dcol or dX for the scatters */
    const struct conv_geom *g;
    int r0, nr;             /* the chunk */
    int64_t g0;             /* col2im: global index of the first input row touched */
};

static void conv_im2col_piece(void *p, int b, int e)
{
    const struct conv_rows_job *j = p;
    conv_im2col(j->dst, j->src, j->g, j->r0, j->r0 + b, j->r0 + e);
}

static void conv_rowcol_piece(void *p, int b, int e)
{
    const struct conv_rows_job *j = p;
    conv_rowcol(j->dst, j->src, j->g, j->r0, b, e);
}

static void conv_rowcol_add_piece(void *p, int b, int e)
{
    const struct conv_rows_job *j = p;
    conv_rowcol_add(j->dst, j->src, j->g, j->r0, b, e);
}

static void conv_col2im_piece(void *p, int b, int e)
{
    const struct conv_rows_job *j = p;
    conv_col2im(j->dst, j->src, j->g, j->r0, j->nr, j->g0 + b, j->g0 + e);
}

/* The chunk's left operand: the input itself, col or X (built into scratch). */
static const float *conv_operand(float *scratch, const float *in, const struct conv_geom *g,
                                 int r0, int nr)
{
    struct conv_rows_job j = {.dst = scratch, .src = in, .g = g, .r0 = r0, .nr = nr};
    switch (g->mode) {
    case CONV_DIRECT:
        return in + (size_t)r0 * g->Wo * g->C;
    case CONV_ROWS:
        parallel_for_grain(nr + g->k - 1, parallel_grain(2 * (size_t)g->Wo * g->kc),
                           conv_rowcol_piece, &j);
        return scratch;
    case CONV_IM2COL:
        parallel_for_grain(nr, parallel_grain(2 * (size_t)g->Wo * g->K), conv_im2col_piece, &j);
        return scratch;
    }
    return NULL;
}

/* din += col2im(dcol) for the chunk, cut by input rows. */
static void conv_col2im_parallel(float *din, const float *dcol, const struct conv_geom *g,
                                 int r0, int nr)
{
    const int r1 = r0 + nr - 1;
    int top = (r0 % g->Ho) * g->s - g->pt, bottom = (r1 % g->Ho) * g->s - g->pt + g->k - 1;
    top = top < 0 ? 0 : top;
    bottom = bottom > g->H - 1 ? g->H - 1 : bottom;
    const int64_t g0 = (int64_t)(r0 / g->Ho) * g->H + top;
    const int64_t g1 = (int64_t)(r1 / g->Ho) * g->H + bottom + 1;
    if (g1 <= g0)
        return;
    assert(g1 - g0 <= INT_MAX);
    struct conv_rows_job j = {.dst = din, .src = dcol, .g = g, .r0 = r0, .nr = nr, .g0 = g0};
    parallel_for_grain((int)(g1 - g0), parallel_grain(2 * (size_t)g->W * g->C * g->k),
                       conv_col2im_piece, &j);
}

/* din += the transpose of conv_rowcol applied to dX, cut by X rows. */
static void conv_rowcol_add_parallel(float *din, const float *dx, const struct conv_geom *g,
                                     int r0, int nr)
{
    struct conv_rows_job j = {.dst = din, .src = dx, .g = g, .r0 = r0, .nr = nr};
    parallel_for_grain(nr + g->k - 1, parallel_grain(2 * (size_t)g->Wo * g->kc),
                       conv_rowcol_add_piece, &j);
}

/* ---- write-back ------------------------------------------------------------- */

/* The transposed forward's write-back: out[p][f] = act(outT[f][p] + bias[f])
 * for a chunk of P pixels, where outT [F×P] is the chunk's GEMM result.
 *
 * relu (and no activation) are applied in registers during the transpose:
 * max(x, 0) returns 0 for x ≤ 0, −0 and NaN alike, exactly what
 * activation_forward computes as x > 0 ? x : 0. The other activations are
 * applied with activation_forward to an L1-sized tile before it is stored.
 *
 * Large outputs are written with non-temporal stores: the output is written
 * once and not read again until the next layer, long after it would have
 * left the cache, and bypassing the cache saves reading each line before it
 * is overwritten — which halves the memory traffic of the write-back. */

/* Floats per write-back tile (32 KB, L1-sized): 8192 / F pixels, at least
 * 4 since F ≤ CONV_TRANSPOSE_MAX_F. */
#define CONV_TILE_FLOATS 8192

/* tile[j][f] = outT[f][p0 + j] + bias[f] for j < pn (row stride F), then
 * relu if asked. 4×4 blocks are transposed in SSE registers; leftover
 * filters (F % 4) and pixels (pn % 4) go one by one. */
static void conv_transpose_tile(float *restrict tile, const float *restrict outT,
                                const float *restrict bias, int P, int F, int p0, int pn,
                                int relu)
{
    const float *src = outT + p0;
    int j = 0;
#ifdef __SSE2__
    const int F4 = F & ~3;
    const __m128 zero = _mm_setzero_ps();
    for (; j + 4 <= pn; j += 4) {
        float *d = tile + (size_t)j * F;
        for (int f = 0; f < F4; f += 4) {
            const float *s0 = src + (size_t)f * P + j;
            __m128 r0 = _mm_loadu_ps(s0), r1 = _mm_loadu_ps(s0 + P);
            __m128 r2 = _mm_loadu_ps(s0 + 2 * (size_t)P), r3 = _mm_loadu_ps(s0 + 3 * (size_t)P);
            _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
            const __m128 b = bias ? _mm_loadu_ps(bias + f) : zero;
            r0 = _mm_add_ps(r0, b);
            r1 = _mm_add_ps(r1, b);
            r2 = _mm_add_ps(r2, b);
            r3 = _mm_add_ps(r3, b);
            if (relu) {
                r0 = _mm_max_ps(r0, zero);
                r1 = _mm_max_ps(r1, zero);
                r2 = _mm_max_ps(r2, zero);
                r3 = _mm_max_ps(r3, zero);
            }
            _mm_storeu_ps(d + f, r0);
            _mm_storeu_ps(d + F + f, r1);
            _mm_storeu_ps(d + 2 * F + f, r2);
            _mm_storeu_ps(d + 3 * F + f, r3);
        }
        for (int f = F4; f < F; f++)
            for (int i = 0; i < 4; i++) {
                float v = src[(size_t)f * P + j + i] + (bias ? bias[f] : 0.0f);
                d[i * F + f] = relu ? (v > 0.0f ? v : 0.0f) : v;
            }
    }
#endif
    for (; j < pn; j++)
        for (int f = 0; f < F; f++) {
            float v = src[(size_t)f * P + j] + (bias ? bias[f] : 0.0f);
            tile[(size_t)j * F + f] = relu ? (v > 0.0f ? v : 0.0f) : v;
        }
}

/* dst[0..len) = src[0..len), streamed when asked and dst is 16-byte aligned. */
static void conv_store(float *restrict dst, const float *restrict src, size_t len, int stream)
{
#ifdef __SSE2__
    if (stream && ((uintptr_t)dst & 15) == 0) {
        size_t i = 0;
        for (; i + 4 <= len; i += 4)
            _mm_stream_ps(dst + i, _mm_loadu_ps(src + i));
        for (; i < len; i++)
            dst[i] = src[i];
        return;
    }
#endif
    memcpy(dst, src, len * sizeof(float));
}

#if defined(__x86_64__) && defined(__GNUC__)
#define CONV_AVX512 1
#include <immintrin.h>

/* The write-back of pixels [0, pn) (pn % 16 == 0) for F % 16 == 0 and relu
 * or no activation, on a CPU with AVX-512F (the caller checks): 16×16 blocks
 * are transposed in registers (unpack pairs, then quads, then two rounds of
 * 128-bit lane shuffles) and stored straight to out. Each store is 16
 * filters of one pixel — a whole 64-byte line when out is 64-byte aligned,
 * which is what lets it be streamed. */
__attribute__((target("avx512f"))) static void
conv_untranspose_avx512(float *restrict out, const float *restrict outT,
                        const float *restrict bias, int P, int F, int pn, int relu,
                        int stream)
{
    const __m512 zero = _mm512_setzero_ps();
    for (int j = 0; j < pn; j += 16) {
        for (int f = 0; f < F; f += 16) {
            const __m512 b = bias ? _mm512_loadu_ps(bias + f) : zero;
            const float *src = outT + (size_t)f * P + j;
            __m512 r[16], t[16], u[16], v[16];
            for (int i = 0; i < 16; i++)
                r[i] = _mm512_loadu_ps(src + (size_t)i * P);
            for (int i = 0; i < 16; i += 2) {
                t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
                t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
            }
            for (int i = 0; i < 16; i += 4) {
                __m512d a0 = _mm512_castps_pd(t[i]), a1 = _mm512_castps_pd(t[i + 1]);
                __m512d a2 = _mm512_castps_pd(t[i + 2]), a3 = _mm512_castps_pd(t[i + 3]);
                u[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
                u[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
                u[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
                u[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
            }
            /* u[q + 4m] holds columns q, q+4, q+8, q+12 of rows 4m … 4m+3;
             * v[c] becomes column c: pixel j + c, filters f … f + 15. */
            for (int q = 0; q < 4; q++) {
                __m512 va = _mm512_shuffle_f32x4(u[q], u[q + 4], 0x88);
                __m512 vb = _mm512_shuffle_f32x4(u[q], u[q + 4], 0xdd);
                __m512 vc = _mm512_shuffle_f32x4(u[q + 8], u[q + 12], 0x88);
                __m512 vd = _mm512_shuffle_f32x4(u[q + 8], u[q + 12], 0xdd);
                v[q] = _mm512_shuffle_f32x4(va, vc, 0x88);
                v[q + 8] = _mm512_shuffle_f32x4(va, vc, 0xdd);
                v[q + 4] = _mm512_shuffle_f32x4(vb, vd, 0x88);
                v[q + 12] = _mm512_shuffle_f32x4(vb, vd, 0xdd);
            }
            float *d = out + (size_t)j * F + f;
            for (int c = 0; c < 16; c++) {
                __m512 x = _mm512_add_ps(v[c], b);
                if (relu)
                    x = _mm512_max_ps(x, zero);
                if (stream)
                    _mm512_stream_ps(d + (size_t)c * F, x);
                else
                    _mm512_storeu_ps(d + (size_t)c * F, x);
            }
        }
    }
}
#endif

/* The write-back of pixels [pb, pe) of a chunk of P. Pieces start at
 * multiples of 16 pixels, so each pixel takes the same path (AVX-512 block or
 * tile) as in one call over [0, P) — and both paths compute the same
 * act(x + b) anyway. */
static void conv_untranspose(float *restrict out, const float *restrict outT,
                             const float *restrict bias, int P, int F, int pb, int pe,
                             enum activation act, int stream)
{
    assert(F <= CONV_TRANSPOSE_MAX_F);
    const int in_registers = act == ACT_NONE || act == ACT_RELU;
    const int relu = act == ACT_RELU;
    int p0 = pb;
#ifdef CONV_AVX512
    if (in_registers && F % 16 == 0 && __builtin_cpu_supports("avx512f")) {
        const int pn = (pe - pb) & ~15;
        float *o = out + (size_t)pb * F;
        conv_untranspose_avx512(o, outT + pb, bias, P, F, pn, relu,
                                stream && ((uintptr_t)o & 63) == 0);
        p0 = pb + pn;
    }
#endif
    float tile[CONV_TILE_FLOATS];
    const int tile_px = CONV_TILE_FLOATS / F;
    for (; p0 < pe; p0 += tile_px) {
        const int pn = pe - p0 < tile_px ? pe - p0 : tile_px;
        conv_transpose_tile(tile, outT, bias, P, F, p0, pn, relu);
        if (!in_registers)
            activation_forward(act, tile, pn, F);
        conv_store(out + (size_t)p0 * F, tile, (size_t)pn * F, stream);
    }
#ifdef __SSE2__
    if (stream)
        _mm_sfence(); /* order the streamed stores before anything that follows */
#endif
}

static void conv_add_bias(float *restrict out, const float *restrict bias, int P, int F)
{
    for (int p = 0; p < P; p++)
        for (int f = 0; f < F; f++)
            out[(size_t)p * F + f] += bias[f];
}

/* The write-back of one chunk on the pool: the transposed forward's
 * untranspose cut in groups of 16 pixels, or the direct forward's bias and
 * activation cut in pixels. Each output pixel is written by one piece. */
struct conv_wb_job {
    float *out;
    const float *outT;
    const float *bias;
    int P, F;
    enum activation act;
    int stream;
};

static void conv_untranspose_piece(void *p, int b, int e)
{
    const struct conv_wb_job *j = p;
    const int pe = (int64_t)e * 16 < j->P ? e * 16 : j->P;
    conv_untranspose(j->out, j->outT, j->bias, j->P, j->F, b * 16, pe, j->act, j->stream);
}

static void conv_bias_act_piece(void *p, int b, int e)
{
    const struct conv_wb_job *j = p;
    float *o = j->out + (size_t)b * j->F;
    if (j->bias)
        conv_add_bias(o, j->bias, e - b, j->F);
    activation_forward(j->act, o, e - b, j->F);
}

/* db[f] += Σ_p dz[p][f] for filters [fb, fe). A chunk sums tens of
 * thousands of terms, so the sums run in double (a float running sum would
 * lose ~1e-3 relative); filters go in blocks of 64 so the partial sums live
 * on the stack. Each filter's sum runs over p in order, so cutting the
 * filters between threads changes nothing. */
static void conv_bias_grad(float *restrict db, const float *restrict dz, int P, int F, int fb,
                           int fe)
{
    for (int f0 = fb; f0 < fe; f0 += 64) {
        const int fn = fe - f0 < 64 ? fe - f0 : 64;
        double acc[64] = {0};
        for (int p = 0; p < P; p++) {
            const float *row = dz + (size_t)p * F + f0;
            for (int f = 0; f < fn; f++)
                acc[f] += row[f];
        }
        for (int f = 0; f < fn; f++)
            db[f0 + f] += (float)acc[f];
    }
}

struct conv_db_job {
    float *db;
    const float *dz;
    int P, F;
};

static void conv_bias_grad_piece(void *p, int b, int e)
{
    const struct conv_db_job *j = p;
    conv_bias_grad(j->db, j->dz, j->P, j->F, b, e);
}

/* ---- forward / backward ---------------------------------------------------- */

/* Rows in the chunk starting at global output row r0 (CONV_ROWS chunks end
 * at the image's last row). */
static inline int conv_chunk_len(const struct conv_geom *g, int r0, int rows, int R)
{
    int nr = rows - r0 < R ? rows - r0 : R;
    if (g->mode == CONV_ROWS && nr > g->Ho - r0 % g->Ho)
        nr = g->Ho - r0 % g->Ho;
    return nr;
}

/* ---- direct forward for small windows --------------------------------------- */

struct conv_small_job {
    const struct conv_geom *g;
    float *out;
    const float *in, *kernel, *bias;
    int relu, stream;
    int off[CONV_SMALL_MAX_K]; /* offset of window term t from the window's first input value */
};

#ifdef CONV_AVX512
/* Whether the direct forward applies (see the file comment). */
static int conv_small_applies(const struct conv_geom *g, enum activation act)
{
    return g->s == 1 && g->K <= CONV_SMALL_MAX_K && g->F % 16 == 0 && g->F <= CONV_SMALL_MAX_F &&
           (act == ACT_NONE || act == ACT_RELU) && g->ox_hi - g->ox_lo >= CONV_SMALL_PX &&
           __builtin_cpu_supports("avx512f");
}

/* One output pixel, any position: the window's terms in order (ky, kx, c),
 * those over the padding skipped — the arithmetic of conv_small_block, so a
 * pixel's value does not depend on which of the two computed it. */
__attribute__((target("avx512f"))) static void
conv_small_pixel(const struct conv_small_job *j, const float *in_img, int oy, int ox,
                 float *restrict o)
{
    const struct conv_geom *g = j->g;
    const int NF = g->F / 16;
    __m512 acc[3] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int ky = 0; ky < g->k; ky++) {
        const int iy = oy - g->pt + ky;
        if (iy < 0 || iy >= g->H)
            continue;
        for (int kx = 0; kx < g->k; kx++) {
            const int ix = ox - g->pl + kx;
            if (ix < 0 || ix >= g->W)
                continue;
            const float *x = in_img + ((size_t)iy * g->W + ix) * g->C;
            const float *w = j->kernel + (size_t)((ky * g->k + kx) * g->C) * g->F;
            for (int c = 0; c < g->C; c++) {
                const __m512 xb = _mm512_set1_ps(x[c]);
                for (int v = 0; v < NF; v++)
                    acc[v] = _mm512_fmadd_ps(xb, _mm512_loadu_ps(w + (size_t)c * g->F + 16 * v),
                                             acc[v]);
            }
        }
    }
    const __m512 zero = _mm512_setzero_ps();
    for (int v = 0; v < NF; v++) {
        __m512 r = acc[v];
        if (j->bias)
            r = _mm512_add_ps(r, _mm512_loadu_ps(j->bias + 16 * v));
        if (j->relu)
            r = _mm512_max_ps(r, zero);
        _mm512_storeu_ps(o + 16 * v, r);
    }
}

/* CONV_SMALL_PX consecutive interior pixels starting at input value x0 (the
 * first pixel's window corner), NF = F / 16 vectors per pixel. */
static inline __attribute__((always_inline, target("avx512f"))) void
conv_small_block(const struct conv_small_job *j, const float *x0, float *o, const int NF)
{
    const struct conv_geom *g = j->g;
    const int C = g->C, F = g->F;
    __m512 acc[CONV_SMALL_PX][3];
    for (int p = 0; p < CONV_SMALL_PX; p++)
        for (int v = 0; v < NF; v++)
            acc[p][v] = _mm512_setzero_ps();
    for (int t = 0; t < g->K; t++) {
        const float *x = x0 + j->off[t];
        const float *w = j->kernel + (size_t)t * F;
        __m512 wv[3];
        for (int v = 0; v < NF; v++)
            wv[v] = _mm512_loadu_ps(w + 16 * v);
        for (int p = 0; p < CONV_SMALL_PX; p++) {
            const __m512 xb = _mm512_set1_ps(x[p * C]);
            for (int v = 0; v < NF; v++)
                acc[p][v] = _mm512_fmadd_ps(xb, wv[v], acc[p][v]);
        }
    }
    const __m512 zero = _mm512_setzero_ps();
    for (int p = 0; p < CONV_SMALL_PX; p++)
        for (int v = 0; v < NF; v++) {
            __m512 r = acc[p][v];
            if (j->bias)
                r = _mm512_add_ps(r, _mm512_loadu_ps(j->bias + 16 * v));
            if (j->relu)
                r = _mm512_max_ps(r, zero);
            float *d = o + (size_t)p * F + 16 * v;
            if (j->stream)
                _mm512_stream_ps(d, r);
            else
                _mm512_storeu_ps(d, r);
        }
}

/* The interior columns [ox_lo, ox_hi) of output row oy, in blocks; a last
 * partial block is computed as the block ending at ox_hi (its first pixels
 * are computed twice, to the same values). */
__attribute__((target("avx512f"))) static void
conv_small_interior(const struct conv_small_job *j, const float *in_img, int oy, float *o_row)
{
    const struct conv_geom *g = j->g;
    const int NF = g->F / 16;
    for (int ox = g->ox_lo; ox < g->ox_hi; ox += CONV_SMALL_PX) {
        if (ox > g->ox_hi - CONV_SMALL_PX)
            ox = g->ox_hi - CONV_SMALL_PX;
        const float *x0 = in_img + ((size_t)(oy - g->pt) * g->W + (ox - g->pl)) * g->C;
        float *o = o_row + (size_t)ox * g->F;
        if (NF == 1)
            conv_small_block(j, x0, o, 1);
        else if (NF == 2)
            conv_small_block(j, x0, o, 2);
        else
            conv_small_block(j, x0, o, 3);
    }
}

/* Output rows [b, e) of the batch (row r is row r % Ho of image r / Ho). */
static void conv_small_piece(void *p, int b, int e)
{
    const struct conv_small_job *j = p;
    const struct conv_geom *g = j->g;
    const size_t in_size = (size_t)g->H * g->W * g->C;
    for (int r = b; r < e; r++) {
        const int oy = r % g->Ho;
        const float *in_img = j->in + (size_t)(r / g->Ho) * in_size;
        float *o_row = j->out + (size_t)r * g->Wo * g->F;
        /* The whole window inside the input's rows: blocks for the interior
         * columns, pixel by pixel at the edges. */
        if (oy - g->pt >= 0 && oy - g->pt + g->k <= g->H) {
            for (int ox = 0; ox < g->ox_lo; ox++)
                conv_small_pixel(j, in_img, oy, ox, o_row + (size_t)ox * g->F);
            conv_small_interior(j, in_img, oy, o_row);
            for (int ox = g->ox_hi; ox < g->Wo; ox++)
                conv_small_pixel(j, in_img, oy, ox, o_row + (size_t)ox * g->F);
        } else {
            for (int ox = 0; ox < g->Wo; ox++)
                conv_small_pixel(j, in_img, oy, ox, o_row + (size_t)ox * g->F);
        }
    }
    if (j->stream)
        _mm_sfence();
}

static void conv_small_forward(const struct layer *l, const struct conv_geom *g, float *out,
                               const float *in, int n)
{
    struct conv_small_job j = {.g = g, .out = out, .in = in, .kernel = l->w.kernel,
                               .bias = l->cfg.use_bias ? l->w.bias : NULL,
                               .relu = l->cfg.activation == ACT_RELU};
    for (int ky = 0, t = 0; ky < g->k; ky++)
        for (int kx = 0; kx < g->k; kx++)
            for (int c = 0; c < g->C; c++)
                j.off[t++] = (ky * g->W + kx) * g->C + c;
    /* F is a multiple of 16: every block store is a whole 64-byte line when
     * out is 64-byte aligned. */
    j.stream = (size_t)n * g->Ho * g->Wo * g->F * sizeof(float) > CONV_STREAM_BYTES &&
               ((uintptr_t)out & 63) == 0;
    parallel_for_grain(n * g->Ho, parallel_grain((size_t)g->Wo * (g->F + g->K)), conv_small_piece,
                       &j);
}
#endif

/* ---- direct weight gradient -------------------------------------------------- */

/* dWₜ[Kt×F] += aₜᵀ · dz has a short output (Kt × F, F ≤ 64) and a long
 * reduction (the chunk's P pixels). As a GEMM, OpenBLAS packs both operands
 * again for only Kt and F uses of each value: the packing costs about as
 * much as the multiply-adds. With AVX-512 and F a multiple of 16 (up to
 * CONV_DW_MAX_F) the product is computed straight from aₜ and dz: a block of
 * NK rows of dW (NK × F/16 vectors, at most CONV_DW_ACC) stays in registers
 * while the pixels stream past, each pixel's dz row loaded once per block
 * and each of its NK a-values broadcast against it. Pixels go by tiles of
 * CONV_DW_TILE_FLOATS / F (the tile's dz stays in L1 across the blocks of a
 * thread). Every value of dW is one fused multiply-add chain over a tile's
 * pixels in order, starting from zero, then added to dW, tile after tile:
 * the arithmetic depends neither on the blocks nor on the threads. Blocks
 * are spread over the engine's threads. */
#define CONV_DW_MAX_F 64
#define CONV_DW_ACC 24
#define CONV_DW_TILE_FLOATS 4096

struct conv_dw_job {
    float *dw;       /* Kt×F, row-major */
    const float *a;  /* P×Kt, row-major */
    const float *dz; /* P×F, row-major */
    int P, F, Kt;
    int nk;          /* rows of dW per block; the last block ends at Kt */
};

#ifdef CONV_AVX512
/* Whether the direct weight gradient applies (see above). */
static int conv_dw_applies(const struct conv_geom *g)
{
    return g->F % 16 == 0 && g->F <= CONV_DW_MAX_F && __builtin_cpu_supports("avx512f");
}

/* dW rows [k0, k0 + NK) over pixels [p0, p1), storing only rows ≥ k_store
 * (the last block may start before the previous block's end; those rows
 * belong to that block). VF = F / 16. */
static inline __attribute__((always_inline, target("avx512f"))) void
conv_dw_block(const struct conv_dw_job *j, int k0, int k_store, int p0, int p1, const int VF,
              const int NK)
{
    const int F = j->F, Kt = j->Kt;
    __m512 acc[CONV_DW_ACC];
    for (int i = 0; i < NK * VF; i++)
        acc[i] = _mm512_setzero_ps();
    const float *ap = j->a + (size_t)p0 * Kt + k0;
    const float *dp = j->dz + (size_t)p0 * F;
    for (int p = p0; p < p1; p++, ap += Kt, dp += F) {
        __m512 d[CONV_DW_MAX_F / 16];
        for (int v = 0; v < VF; v++)
            d[v] = _mm512_loadu_ps(dp + 16 * v);
        for (int r = 0; r < NK; r++) {
            const __m512 b = _mm512_set1_ps(ap[r]);
            for (int v = 0; v < VF; v++)
                acc[r * VF + v] = _mm512_fmadd_ps(b, d[v], acc[r * VF + v]);
        }
    }
    for (int r = k_store - k0; r < NK; r++)
        for (int v = 0; v < VF; v++) {
            float *w = j->dw + (size_t)(k0 + r) * F + 16 * v;
            _mm512_storeu_ps(w, _mm512_add_ps(_mm512_loadu_ps(w), acc[r * VF + v]));
        }
}

typedef void (*conv_dw_fn)(const struct conv_dw_job *, int, int, int, int);
#define CONV_DW_FN(VF, NK)                                                                   \
    __attribute__((target("avx512f"))) static void conv_dw_##VF##_##NK(                      \
        const struct conv_dw_job *j, int k0, int k_store, int p0, int p1)                    \
    {                                                                                        \
        conv_dw_block(j, k0, k_store, p0, p1, VF, NK);                                       \
    }
/* One instance per (F / 16, NK) with NK · F / 16 ≤ CONV_DW_ACC. */
#define CONV_DW_FNS_1_TO_6(VF) CONV_DW_FN(VF, 1) CONV_DW_FN(VF, 2) CONV_DW_FN(VF, 3) \
    CONV_DW_FN(VF, 4) CONV_DW_FN(VF, 5) CONV_DW_FN(VF, 6)
#define CONV_DW_FNS_7_TO_8(VF) CONV_DW_FN(VF, 7) CONV_DW_FN(VF, 8)
#define CONV_DW_FNS_9_TO_12(VF) CONV_DW_FN(VF, 9) CONV_DW_FN(VF, 10) CONV_DW_FN(VF, 11) \
    CONV_DW_FN(VF, 12)
CONV_DW_FNS_1_TO_6(1) CONV_DW_FNS_7_TO_8(1) CONV_DW_FNS_9_TO_12(1)
CONV_DW_FN(1, 13) CONV_DW_FN(1, 14) CONV_DW_FN(1, 15) CONV_DW_FN(1, 16) CONV_DW_FN(1, 17)
CONV_DW_FN(1, 18) CONV_DW_FN(1, 19) CONV_DW_FN(1, 20) CONV_DW_FN(1, 21) CONV_DW_FN(1, 22)
CONV_DW_FN(1, 23) CONV_DW_FN(1, 24)
CONV_DW_FNS_1_TO_6(2) CONV_DW_FNS_7_TO_8(2) CONV_DW_FNS_9_TO_12(2)
CONV_DW_FNS_1_TO_6(3) CONV_DW_FNS_7_TO_8(3)
CONV_DW_FNS_1_TO_6(4)

#define CONV_DW_ROW_1_TO_6(VF) conv_dw_##VF##_1, conv_dw_##VF##_2, conv_dw_##VF##_3, \
    conv_dw_##VF##_4, conv_dw_##VF##_5, conv_dw_##VF##_6
static const conv_dw_fn conv_dw_fns[4][CONV_DW_ACC] = {
    {CONV_DW_ROW_1_TO_6(1), conv_dw_1_7, conv_dw_1_8, conv_dw_1_9, conv_dw_1_10, conv_dw_1_11,
     conv_dw_1_12, conv_dw_1_13, conv_dw_1_14, conv_dw_1_15, conv_dw_1_16, conv_dw_1_17,
     conv_dw_1_18, conv_dw_1_19, conv_dw_1_20, conv_dw_1_21, conv_dw_1_22, conv_dw_1_23,
     conv_dw_1_24},
    {CONV_DW_ROW_1_TO_6(2), conv_dw_2_7, conv_dw_2_8, conv_dw_2_9, conv_dw_2_10, conv_dw_2_11,
     conv_dw_2_12},
    {CONV_DW_ROW_1_TO_6(3), conv_dw_3_7, conv_dw_3_8},
    {CONV_DW_ROW_1_TO_6(4)},
};

/* Blocks [b, e) of dW, tile by tile. */
static void conv_dw_piece(void *p, int b, int e)
{
    const struct conv_dw_job *j = p;
    const conv_dw_fn fn = conv_dw_fns[j->F / 16 - 1][j->nk - 1];
    const int tile = CONV_DW_TILE_FLOATS / j->F;
    for (int p0 = 0; p0 < j->P; p0 += tile) {
        const int p1 = j->P - p0 < tile ? j->P : p0 + tile;
        for (int blk = b; blk < e; blk++) {
            const int k_store = blk * j->nk;
            const int k0 = k_store + j->nk <= j->Kt ? k_store : j->Kt - j->nk;
            fn(j, k0, k_store, p0, p1);
        }
    }
}

/* dW[Kt×F] += aᵀ[Kt×P] · dz[P×F]. */
static void conv_dw_direct(float *dw, const float *a, const float *dz, int P, int F, int Kt)
{
    const int vf = F / 16, nk_max = CONV_DW_ACC / vf;
    /* As few blocks as the registers allow, their count rounded up to a
     * multiple of the thread count so that the threads share them evenly
     * (blocks are then evened out in size, which can leave fewer of them:
     * 27 rows over 8 threads make 7 blocks of 4). The cut changes nothing in
     * the result. */
    const int threads = parallel_threads();
    int blocks = (Kt + nk_max - 1) / nk_max;
    if (blocks % threads)
        blocks += threads - blocks % threads;
    if (blocks > Kt)
        blocks = Kt;
    struct conv_dw_job j = {.dw = dw, .a = a, .dz = dz, .P = P, .F = F, .Kt = Kt,
                            .nk = (Kt + blocks - 1) / blocks};
    blocks = (Kt + j.nk - 1) / j.nk;
    parallel_for_grain(blocks, parallel_grain((size_t)P * (j.nk + F)), conv_dw_piece, &j);
}
#endif

static void conv_forward(const struct layer *l, float *out, const float *in, int n,
                         struct layer_ctx *ctx)
{
    const struct conv_geom g = conv_geom_of(l);
    assert(n >= 0 && (int64_t)n * g.Ho <= INT_MAX);
#ifdef CONV_AVX512
    if (n > 0 && conv_small_applies(&g, l->cfg.activation)) {
        conv_small_forward(l, &g, out, in, n);
        return;
    }
#endif
    const int rows = n * g.Ho;
    const int R = rows < g.chunk_rows ? rows : g.chunk_rows;
    if (rows <= 0)
        return;
    assert(ctx && conv_chunk_floats(&g, R) <= ctx->col_len &&
           "conv2d: ctx->col smaller than col_size()");
    const size_t a_len = conv_chunk_floats(&g, R) - (g.transposed ? (size_t)R * g.Wo * g.F : 0);
    float *outT = ctx->col + a_len;
    const float *bias = l->cfg.use_bias ? l->w.bias : NULL;
    const int stream = (size_t)n * shape_size(l->out) * sizeof(float) > CONV_STREAM_BYTES;

    for (int r0 = 0, nr; r0 < rows; r0 += nr) {
        nr = conv_chunk_len(&g, r0, rows, R);
        const int P = nr * g.Wo;
        const float *a = conv_operand(ctx->col, in, &g, r0, nr);
        float *o = out + (size_t)r0 * g.Wo * g.F;
        for (int t = 0; t < g.terms; t++) {
            const float *at = a + (size_t)t * g.Wo * g.Kt;
            const float *wt = l->w.kernel + (size_t)t * g.Kt * g.F;
            const float beta = t ? 1.0f : 0.0f;
            if (g.transposed) /* outᵀ[F×P] (+)= Wₜᵀ[F×Kt] · aₜᵀ[Kt×P] */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, g.F, P, g.Kt, 1.0f, wt, g.F,
                            at, g.Kt, beta, outT, P);
            else /* out[P×F] (+)= aₜ[P×Kt] · Wₜ[Kt×F] */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, P, g.F, g.Kt, 1.0f, at,
                            g.Kt, wt, g.F, beta, o, g.F);
        }
        struct conv_wb_job wb = {.out = o, .outT = outT, .bias = bias, .P = P, .F = g.F,
                                 .act = l->cfg.activation, .stream = stream};
        if (g.transposed)
            parallel_for_grain((P + 15) / 16, parallel_grain(32 * (size_t)g.F),
                               conv_untranspose_piece, &wb);
        else
            parallel_for_grain(P, parallel_grain(2 * (size_t)g.F), conv_bias_act_piece, &wb);
    }
}

static void conv_backward(struct layer *l, float *din, float *dout, const float *in,
                          const float *out, int n, struct layer_ctx *ctx)
{
    const struct conv_geom g = conv_geom_of(l);
    assert(n >= 0 && (int64_t)n * g.Ho <= INT_MAX);
    const int rows = n * g.Ho;
    const int R = rows < g.chunk_rows ? rows : g.chunk_rows;
    if (rows <= 0)
        return;
    assert(ctx && conv_chunk_floats(&g, R) <= ctx->col_len &&
           "conv2d: ctx->col smaller than col_size()");
    assert(l->grad.kernel && (!l->cfg.use_bias || l->grad.bias));
    float *scratch = ctx->col;
#ifdef CONV_AVX512
    const int dw_direct = conv_dw_applies(&g);
#endif

    for (int r0 = 0, nr; r0 < rows; r0 += nr) {
        nr = conv_chunk_len(&g, r0, rows, R);
        const int P = nr * g.Wo;
        float *dz = dout + (size_t)r0 * g.Wo * g.F;
        if (!ctx->dout_is_preact)
            activation_backward(l->cfg.activation, dz, out + (size_t)r0 * g.Wo * g.F, P,
                                g.F);
        if (l->cfg.use_bias) {
            /* Pieces of at least 16 filters: a 64-byte line of each row. */
            int grain = parallel_grain((size_t)P);
            struct conv_db_job db = {.db = l->grad.bias, .dz = dz, .P = P, .F = g.F};
            parallel_for_grain(g.F, grain > 16 ? grain : 16, conv_bias_grad_piece, &db);
        }
        const float *a = conv_operand(scratch, in, &g, r0, nr);
        /* dWₜ[Kt×F] += aₜᵀ[Kt×P] · dz[P×F] */
        for (int t = 0; t < g.terms; t++) {
            const float *at = a + (size_t)t * g.Wo * g.Kt;
            float *dwt = l->grad.kernel + (size_t)t * g.Kt * g.F;
#ifdef CONV_AVX512
            if (dw_direct) {
                conv_dw_direct(dwt, at, dz, P, g.F, g.Kt);
                continue;
            }
#endif
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g.Kt, g.F, P, 1.0f, at, g.Kt,
                        dz, g.F, 1.0f, dwt, g.F);
        }
        if (!din)
            continue;
        switch (g.mode) {
        case CONV_DIRECT: /* din[P×C] += dz[P×F] · Wᵀ[F×C] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, P, g.C, g.F, 1.0f, dz, g.F,
                        l->w.kernel, g.F, 1.0f, din + (size_t)r0 * g.Wo * g.C, g.C);
            break;
        case CONV_IM2COL: /* dcol[P×K] = dz · Wᵀ, scattered back onto din */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, P, g.K, g.F, 1.0f, dz, g.F,
                        l->w.kernel, g.F, 0.0f, scratch, g.K);
            conv_col2im_parallel(din, scratch, &g, r0, nr);
            break;
        case CONV_ROWS: {
            /* dX[(nr + k − 1)·Wo × kc]: row block ky … ky + nr − 1 receives
             * dz · W[ky]ᵀ. The first product covers rows 0 … nr − 1 and
             * overwrites them; the k − 1 rows after start at zero. */
            const size_t row_len = (size_t)g.Wo * g.kc;
            memset(scratch + nr * row_len, 0, (size_t)(g.k - 1) * row_len * sizeof(float));
            for (int t = 0; t < g.k; t++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, P, g.kc, g.F, 1.0f, dz,
                            g.F, l->w.kernel + (size_t)t * g.kc * g.F, g.F, t ? 1.0f : 0.0f,
                            scratch + t * row_len, g.kc);
            conv_rowcol_add_parallel(din, scratch, &g, r0, nr);
            break;
        }
        }
    }
}

/* The "conv2d" layer type. Kernels follow layer.h: nothing allocated (the
 * scratch is ctx->col, at least col_size(n) floats), gradients accumulated,
 * dout overwritten with the pre-activation gradient, din may be NULL.
 * configure fails (STRATA_E_ARG / STRATA_E_LIMIT, message naming the layer and
 * the field) on filters, kernel_size or strides < 1, an unknown padding or
 * activation, a kernel larger than a valid-padded input, or sizes that would
 * overflow. A stride of 0 means "not given" and becomes 1, as in Keras. */
const struct layer_ops conv2d_ops = {
    .type = "conv2d",
    .kind = LAYER_CONV2D,
    .configure = conv_configure,
    .params = conv_params,
    .col_size = conv_col_size,
    .state_size = conv_state_size,
    .state_bind = conv_state_bind,
    .init = conv_init,
    .forward = conv_forward,
    .backward = conv_backward,
};
