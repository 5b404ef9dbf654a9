/*
 * test_ops_conv.c — the graph ops Conv, MaxPool, AveragePool,
 * GlobalAveragePool, GlobalMaxPool, BatchNormalization and Pad, run one at a
 * time through opcheck.h.
 *
 * Evidence, by kind:
 *   - Conv against a direct seven-loop convolution written here (in double,
 *     padding by bounds checks, groups by index arithmetic) over a grid of
 *     strides, pads (asymmetric ones included), dilations, groups (1, 2,
 *     depthwise, depthwise with a channel multiplier), 1x1 kernels, auto_pad
 *     modes, with and without bias, batch 1 and 3. The grid reaches each of
 *     conv.c's three paths (im2col + GEMM, direct 1x1 GEMM, direct depthwise).
 *   - Hand-worked small cases: ONNX's 5x5 all-ones convolution, SAME_UPPER
 *     against SAME_LOWER, pools with ceil_mode, count_include_pad and
 *     asymmetric pads, Pad's modes. Pool values were computed in numpy by a
 *     direct loop over each window and agree with PyTorch where PyTorch has
 *     the same semantics (symmetric pads); Pad values are numpy.pad's.
 *   - Central finite differences (opcheck_gradients) of every backward, for
 *     every variant that changes the maths, and a check that backward adds
 *     into din rather than overwriting it.
 *   - Refusals: error codes and the words of the message (strstr).
 *   - Threading: the kernels split their loops over threads (parallel.h);
 *     larger shapes are run with the pool's reverse-order check mode and
 *     must give bit-identical results to a normal run.
 *
 * Finite-difference tolerance. opcheck's loss is L = Σ w·y in double over
 * float outputs, step h = 1e-3. Outputs an element does not reach are
 * recomputed identically and cancel exactly; the few dozen it reaches carry
 * float rounding of ~1e-7 each, so the quotient is known to ~1e-3. Conv,
 * average pooling, batch norm and Pad are linear in the perturbed input, so
 * truncation error is nil; max pooling is linear away from ties, and its
 * inputs here are distinct values 0.05 apart, far more than 2h. Accepting
 * |analytic − numeric| ≤ 1e-2·|numeric| + 5e-3 leaves room for the rounding
 * while a wrong tap, a missing term or a wrong divisor is off by 0.1 or more.
 */
#include "check.h"
#include "opcheck.h"
#include "ops/ops.h"
#include "parallel.h"
#include "sgemm.h"
#include "status.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define FD_RTOL 1e-2
#define FD_ATOL 5e-3

/* ---- helpers --------------------------------------------------------------- */

static struct tview tensor4(int64_t a, int64_t b, int64_t c, int64_t d, uint64_t seed)
{
    return opcheck_tensor(4, (int64_t[]){a, b, c, d}, seed);
}

/* A float tensor viewing caller-owned values (not freed by anyone). */
static struct tview view(int ndim, const int64_t *dims, float *data)
{
    struct tview t = {.dtype = DTYPE_FLOAT, .ndim = ndim, .data = data};
    if (ndim)
        memcpy(t.dims, dims, (size_t)ndim * sizeof *dims);
    return t;
}

/* A float tensor whose values are distinct, 0.05 apart, in a shuffled order:
 * max pooling has no ties and no finite-difference step can reorder two
 * values. */
static struct tview distinct_tensor(int ndim, const int64_t *dims, uint64_t seed)
{
    struct tview t = opcheck_tensor(ndim, dims, seed);
    int64_t n = tview_count(&t);
    float *p = tview_f(&t);
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)(0.05 * (double)i - 0.025 * (double)n);
    uint64_t s = seed * 7919u + 1;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(opcheck_rng(&s) % (uint64_t)(i + 1));
        float v = p[i];
        p[i] = p[j];
        p[j] = v;
    }
    return t;
}

/* Compares out[0] of r with `want` (count values and shape `dims`). */
static void check_output(const struct opcheck_run *r, int ndim, const int64_t *dims,
                         const float *want, double tol, const char *what)
{
    const struct tview *y = &r->out[0];
    CHECK_MSG(y->ndim == ndim, "%s: output rank %d, expected %d", what, y->ndim, ndim);
    if (y->ndim != ndim)
        return;
    for (int i = 0; i < ndim; i++)
        CHECK_MSG(y->dims[i] == dims[i], "%s: output dim %d is %lld, expected %lld", what, i,
                  (long long)y->dims[i], (long long)dims[i]);
    int64_t n = tview_count(y);
    int shown = 0;
    for (int64_t k = 0; k < n; k++) {
        double a = tview_f(y)[k], b = want[k];
        if (!(fabs(a - b) <= tol * (1 + fabs(b)))) {
            if (shown++ < 4)
                CHECK_MSG(0, "%s: element %lld is %.7g, expected %.7g", what, (long long)k, a,
                          b);
        }
    }
}

/* Runs backward twice from the same dout into the same din buffers (inputs
 * selected by mask) and checks that the second pass added exactly as much
 * again: gradients are accumulated, never overwritten. */
static void check_accumulates(struct opcheck_run *r, unsigned mask, const char *what)
{
    struct tview dout = r->out[0], din[OPCHECK_MAX_IO];
    struct tview *dinp[OPCHECK_MAX_IO] = {0};
    float *first[OPCHECK_MAX_IO] = {0};
    int64_t cy = tview_count(&r->out[0]);
    float *dy = malloc((size_t)(cy ? cy : 1) * sizeof *dy);
    uint64_t s = 99;
    for (int64_t k = 0; k < cy; k++)
        dy[k] = (float)((opcheck_rng(&s) >> 11) * (1.0 / 9007199254740992.0)) - 0.5f;
    dout.data = dy;
    for (int i = 0; i < r->n_in; i++) {
        if (!r->in[i] || !(mask >> i & 1))
            continue;
        din[i] = *r->in[i];
        int64_t c = tview_count(r->in[i]);
        din[i].data = calloc((size_t)(c ? c : 1), sizeof(float));
        first[i] = malloc((size_t)(c ? c : 1) * sizeof(float));
        dinp[i] = &din[i];
    }
    struct op_ctx ctx = opcheck_ctx(r);
    const struct tview *outc[] = {&r->out[0]};
    const struct tview *doutc[] = {&dout};
    r->node.op->backward(&r->node, (const struct tview *const *)r->in, outc, doutc, dinp, &ctx);
    for (int i = 0; i < r->n_in; i++)
        if (dinp[i])
            memcpy(first[i], din[i].data, (size_t)tview_count(&din[i]) * sizeof(float));
    r->node.op->backward(&r->node, (const struct tview *const *)r->in, outc, doutc, dinp, &ctx);
    int bad = 0;
    double any = 0;
    for (int i = 0; i < r->n_in; i++) {
        if (!dinp[i])
            continue;
        for (int64_t k = 0; k < tview_count(&din[i]); k++) {
            double a = tview_f(&din[i])[k], b = 2.0 * first[i][k];
            any += fabs(b);
            if (fabs(a - b) > 1e-5 * (1 + fabs(b)))
                bad++;
        }
        free(din[i].data);
        free(first[i]);
    }
    CHECK_MSG(bad == 0, "%s: %d gradient values were not accumulated", what, bad);
    CHECK_MSG(any > 0, "%s: backward produced no gradient at all", what);
    free(dy);
}

/* setup + infer must fail with `code`, the node-naming prefix, and `needle`
 * in the message. */
static void check_refused(const struct op *op, int opset, struct attr *a, int na,
                          struct tview **in, int n_in, int n_out, int code, const char *needle)
{
    struct opcheck_run r;
    int rc = opcheck_forward(&r, op, opset, a, na, in, n_in, n_out);
    CHECK_MSG(rc == code, "%s: status %d, expected %d (message: %s)", needle, rc, code, r.err);
    CHECK_MSG(strstr(r.err, needle) != NULL, "message \"%s\" lacks \"%s\"", r.err, needle);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "node 't' (%s): ", op->name);
    CHECK_MSG(strncmp(r.err, prefix, strlen(prefix)) == 0, "message \"%s\" lacks the prefix",
              r.err);
    opcheck_free(&r);
}

/* ---- Conv: the direct reference --------------------------------------------- */

struct conv_case {
    const char *name;
    int N, C, H, W, M, kh, kw;
    int sh, sw, dh, dw;
    int pads[4];            /* top, left, bottom, right; used when auto_pad is NULL */
    int group;
    const char *auto_pad;   /* NULL: attribute absent */
    int bias;               /* 0: no B; 1: B given; 2: B slot present but empty */
};

/* Padding before the first element and output size along one axis under
 * auto_pad (ONNX: SAME_* gives ⌈in / s⌉ outputs and splits the padding that
 * needs, the odd one at the end for SAME_UPPER; VALID pads nothing). */
static void ref_auto_pad(const char *mode, int in, int k, int s, int d, int *pb, int *out)
{
    int dk = (k - 1) * d + 1;
    if (strcmp(mode, "VALID") == 0) {
        *pb = 0;
        *out = (in - dk) / s + 1;
        return;
    }
    *out = (in + s - 1) / s;
    int need = (*out - 1) * s + dk - in;
    if (need < 0)
        need = 0;
    *pb = strcmp(mode, "SAME_UPPER") == 0 ? need / 2 : need - need / 2;
}

/* y[n][m][oy][ox] = b[m] + Σ_c Σ_ky Σ_kx w[m][c][ky][kx] · x[n][g·Cg + c][iy][ix]
 * with iy = oy·sh − pt + ky·dh, ix = ox·sw − pl + kx·dw and zero outside. */
static void ref_conv(double *y, const float *x, const float *w, const float *b,
                     const struct conv_case *c, int pt, int pl, int Ho, int Wo)
{
    const int Cg = c->C / c->group, Mg = c->M / c->group;
    for (int n = 0; n < c->N; n++)
        for (int m = 0; m < c->M; m++)
            for (int oy = 0; oy < Ho; oy++)
                for (int ox = 0; ox < Wo; ox++) {
                    double s = b ? b[m] : 0.0;
                    const int g = m / Mg;
                    for (int ci = 0; ci < Cg; ci++)
                        for (int ky = 0; ky < c->kh; ky++)
                            for (int kx = 0; kx < c->kw; kx++) {
                                int iy = oy * c->sh - pt + ky * c->dh;
                                int ix = ox * c->sw - pl + kx * c->dw;
                                if (iy < 0 || iy >= c->H || ix < 0 || ix >= c->W)
                                    continue;
                                s += (double)w[((m * Cg + ci) * c->kh + ky) * c->kw + kx] *
                                     x[((n * c->C + g * Cg + ci) * c->H + iy) * c->W + ix];
                            }
                    y[((n * c->M + m) * Ho + oy) * Wo + ox] = s;
                }
}

/* Forward against the reference; with `gradients`, backward against finite
 * differences and accumulation too. */
/* |y − ref| ≤ mag_tol · (Σ |x|·|w| + |b|) for every output, the sums of
 * magnitudes from the reference convolution of |x| and |w|. */
static void check_against_magnitude(const struct opcheck_run *r, const struct tview *x,
                                    const struct tview *w, const struct tview *b,
                                    const struct conv_case *c, int pt, int pl, int Ho, int Wo,
                                    const double *ref, double mag_tol)
{
    const size_t nx = (size_t)tview_count(x), nw = (size_t)tview_count(w);
    const size_t ny = (size_t)c->N * c->M * Ho * Wo;
    float *ax = malloc(nx * sizeof *ax), *aw = malloc(nw * sizeof *aw), *ab = NULL;
    for (size_t i = 0; i < nx; i++)
        ax[i] = fabsf(tview_f(x)[i]);
    for (size_t i = 0; i < nw; i++)
        aw[i] = fabsf(tview_f(w)[i]);
    if (b) {
        ab = malloc((size_t)c->M * sizeof *ab);
        for (int i = 0; i < c->M; i++)
            ab[i] = fabsf(tview_f(b)[i]);
    }
    double *mag = malloc(ny * sizeof *mag), worst = 0;
    ref_conv(mag, ax, aw, ab, c, pt, pl, Ho, Wo);
    for (size_t i = 0; i < ny; i++) {
        const double e = fabs(tview_f(&r->out[0])[i] - ref[i]) / mag[i];
        worst = e > worst ? e : worst;
    }
    CHECK_MSG(worst <= mag_tol, "%s: error %.3g of the summed magnitude (bound %.3g)", c->name,
              worst, mag_tol);
    free(ax), free(aw), free(ab), free(mag);
}

/* Each output within tol·(1 + |reference|) of the reference, or, with
 * mag_tol > 0, within mag_tol times what it sums (Σ |x|·|w| + |b|: the
 * bound rounding errors scale with). */
static void conv_case_check(const struct conv_case *c, uint64_t seed, int gradients, double tol,
                            double mag_tol)
{
    struct tview x = tensor4(c->N, c->C, c->H, c->W, seed);
    struct tview w = tensor4(c->M, c->C / c->group, c->kh, c->kw, seed + 1);
    struct tview b = opcheck_tensor(1, (int64_t[]){c->M}, seed + 2);
    struct attr a[] = {
        OPCHECK_INTS("strides", c->sh, c->sw),
        OPCHECK_INTS("dilations", c->dh, c->dw),
        OPCHECK_INT("group", c->group),
        OPCHECK_INTS("kernel_shape", c->kh, c->kw),
        OPCHECK_INTS("pads", c->pads[0], c->pads[1], c->pads[2], c->pads[3]),
    };
    const int na = 5;
    if (c->auto_pad) /* instead of pads */
        a[4] = (struct attr)OPCHECK_STRING("auto_pad", c->auto_pad);
    struct tview *in[] = {&x, &w, c->bias == 1 ? &b : NULL};
    int n_in = c->bias ? 3 : 2;
    struct opcheck_run r;
    int rc = opcheck_forward(&r, &op_conv, 11, a, na, in, n_in, 1);
    CHECK_MSG(rc == 0, "%s: %s", c->name, r.err);
    if (rc == 0) {
        int pt, pl, Ho, Wo;
        if (c->auto_pad) {
            ref_auto_pad(c->auto_pad, c->H, c->kh, c->sh, c->dh, &pt, &Ho);
            ref_auto_pad(c->auto_pad, c->W, c->kw, c->sw, c->dw, &pl, &Wo);
        } else {
            pt = c->pads[0];
            pl = c->pads[1];
            Ho = (c->H + c->pads[0] + c->pads[2] - (c->kh - 1) * c->dh - 1) / c->sh + 1;
            Wo = (c->W + c->pads[1] + c->pads[3] - (c->kw - 1) * c->dw - 1) / c->sw + 1;
        }
        size_t ny = (size_t)c->N * c->M * Ho * Wo;
        double *ref = malloc(ny * sizeof *ref);
        float *want = malloc(ny * sizeof *want);
        ref_conv(ref, tview_f(&x), tview_f(&w), c->bias == 1 ? tview_f(&b) : NULL, c, pt, pl,
                 Ho, Wo);
        for (size_t i = 0; i < ny; i++)
            want[i] = (float)ref[i];
        if (mag_tol > 0)
            check_against_magnitude(&r, &x, &w, c->bias == 1 ? &b : NULL, c, pt, pl, Ho, Wo, ref,
                                    mag_tol);
        else
            check_output(&r, 4, (int64_t[]){c->N, c->M, Ho, Wo}, want, tol, c->name);
        if (gradients) {
            int bad = opcheck_gradients(&r, c->bias == 1 ? 7u : 3u, FD_RTOL, FD_ATOL);
            CHECK_MSG(bad == 0, "%s: %d gradient mismatches", c->name, bad);
            check_accumulates(&r, c->bias == 1 ? 7u : 3u, c->name);
        }
        free(ref);
        free(want);
    }
    opcheck_free(&r);
    free(x.data);
    free(w.data);
    free(b.data);
}

/* N, C, H, W, M, kh, kw, sh, sw, dh, dw, pads, group, auto_pad, bias */
static const struct conv_case conv_grid[] = {
    {"3x3 s1 p1", 1, 3, 6, 6, 4, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, 1, NULL, 1},
    {"3x3 s2 p1 batch 3", 3, 2, 7, 7, 3, 3, 3, 2, 2, 1, 1, {1, 1, 1, 1}, 1, NULL, 1},
    {"3x3 s1 no pad no bias", 1, 2, 5, 6, 3, 3, 3, 1, 1, 1, 1, {0, 0, 0, 0}, 1, NULL, 0},
    {"asymmetric pads, strides 2x1", 2, 2, 6, 5, 3, 3, 3, 2, 1, 1, 1, {0, 1, 2, 0}, 1, NULL, 1},
    {"asymmetric pads 2,0,1,3", 1, 2, 5, 5, 2, 2, 3, 1, 2, 1, 1, {2, 0, 1, 3}, 1, NULL, 2},
    {"dilation 2 pad 2", 1, 2, 7, 7, 3, 3, 3, 1, 1, 2, 2, {2, 2, 2, 2}, 1, NULL, 1},
    {"dilation 2x1 stride 2", 2, 2, 8, 6, 2, 3, 2, 2, 2, 2, 1, {1, 0, 1, 1}, 1, NULL, 1},
    {"group 2", 1, 4, 5, 5, 6, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, 2, NULL, 1},
    {"group 2 stride 2 batch 3", 3, 4, 6, 6, 4, 3, 3, 2, 2, 1, 1, {1, 1, 0, 0}, 2, NULL, 0},
    {"depthwise 3x3 s1", 1, 4, 6, 6, 4, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, 4, NULL, 1},
    {"depthwise s2 asymmetric", 3, 3, 7, 6, 3, 3, 3, 2, 2, 1, 1, {1, 0, 0, 1}, 3, NULL, 1},
    {"depthwise dilation 2", 1, 2, 7, 7, 2, 3, 3, 1, 1, 2, 2, {2, 2, 2, 2}, 2, NULL, 0},
    {"depthwise strides 1x2 dil 1x2", 2, 3, 6, 8, 3, 3, 3, 1, 2, 1, 2, {0, 2, 1, 2}, 3, NULL, 1},
    {"depthwise multiplier 2", 1, 3, 5, 5, 6, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, 3, NULL, 1},
    {"depthwise 5x5 s2", 2, 2, 9, 8, 2, 5, 5, 2, 2, 1, 1, {2, 2, 2, 2}, 2, NULL, 1},
    {"depthwise 5x5 s1 asymmetric", 1, 2, 7, 6, 2, 5, 5, 1, 1, 1, 1, {2, 1, 1, 3}, 2, NULL, 1},
    {"depthwise 3x3 s3", 1, 2, 8, 10, 2, 3, 3, 3, 3, 1, 1, {1, 1, 1, 1}, 2, NULL, 1},
    {"depthwise 2x4 kernel", 1, 2, 6, 7, 2, 2, 4, 1, 1, 1, 1, {0, 2, 1, 1}, 2, NULL, 1},
    /* planes too large to copy whole: border rows from padded row copies,
     * border columns tap by tap, the rest in place */
    {"depthwise large plane", 1, 2, 70, 70, 2, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, 2, NULL, 1},
    {"depthwise large s2 dil 2", 1, 2, 66, 71, 2, 3, 3, 2, 2, 2, 2, {2, 1, 1, 2}, 2, NULL, 1},
    {"depthwise large 5x5 s2", 1, 2, 80, 75, 4, 5, 5, 2, 2, 1, 1, {2, 2, 1, 1}, 2, NULL, 0},
    /* rows too wide for the row copy: border rows tap by tap */
    {"depthwise wide rows", 1, 2, 5, 1100, 2, 5, 5, 1, 1, 1, 1, {2, 2, 2, 2}, 2, NULL, 1},
    {"1x1", 1, 5, 4, 4, 3, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, 1, NULL, 1},
    {"1x1 batch 3 no bias", 3, 4, 3, 5, 6, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, 1, NULL, 0},
    {"1x1 group 2", 2, 4, 4, 3, 6, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, 2, NULL, 1},
    {"1x1 stride 2", 2, 3, 5, 5, 4, 1, 1, 2, 2, 1, 1, {0, 0, 0, 0}, 1, NULL, 1},
    {"1x1 pad 1", 1, 3, 3, 3, 2, 1, 1, 1, 1, 1, 1, {1, 1, 1, 1}, 1, NULL, 1},
    {"2x3 kernel on 5x7", 1, 2, 5, 7, 3, 2, 3, 1, 1, 1, 1, {0, 1, 1, 1}, 1, NULL, 1},
    {"SAME_UPPER s2 even kernel", 1, 2, 6, 5, 3, 4, 2, 2, 2, 1, 1, {0, 0, 0, 0}, 1, "SAME_UPPER", 1},
    {"SAME_LOWER s2 even kernel", 1, 2, 6, 5, 3, 4, 2, 2, 2, 1, 1, {0, 0, 0, 0}, 1, "SAME_LOWER", 1},
    {"SAME_UPPER s1 batch 3", 3, 2, 5, 5, 2, 3, 3, 1, 1, 1, 1, {0, 0, 0, 0}, 1, "SAME_UPPER", 0},
    {"SAME_LOWER dilation 2", 1, 2, 6, 6, 2, 2, 2, 1, 1, 2, 2, {0, 0, 0, 0}, 1, "SAME_LOWER", 1},
    {"VALID s2", 2, 2, 7, 6, 3, 3, 3, 2, 2, 1, 1, {0, 0, 0, 0}, 1, "VALID", 1},
    {"depthwise SAME_UPPER s2", 1, 4, 7, 7, 4, 3, 3, 2, 2, 1, 1, {0, 0, 0, 0}, 4, "SAME_UPPER", 1},
    {"group 2 SAME_LOWER", 1, 4, 5, 4, 2, 2, 2, 1, 1, 1, 1, {0, 0, 0, 0}, 2, "SAME_LOWER", 1},
    /* 64 columns (images × positions) and more: dX on strata's sgemm (Wᵀ · dY)
     * where it runs */
    {"3x3 s1 p1 batch 4", 4, 3, 6, 5, 5, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, 1, NULL, 1},
    {"group 2 stride 2 batch 6", 6, 4, 7, 6, 6, 3, 3, 2, 2, 1, 1, {1, 0, 1, 1}, 2, NULL, 1},
    {"1x1 batch 5 group 2", 5, 4, 3, 5, 6, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, 2, NULL, 0},
};

TEST(conv_matches_direct_reference)
{
    for (size_t i = 0; i < sizeof conv_grid / sizeof conv_grid[0]; i++)
        conv_case_check(&conv_grid[i], 100 + 10 * i, 1, 1e-5, 0);
}

/* ONNX's basic_conv example: a 5x5 input holding 0 … 24 under an all-ones
 * 3x3 kernel. Each output is the sum of its window, e.g. the first is
 * 0+1+2+5+6+7+10+11+12 = 54; with pads 1 the corner is 0+1+5+6 = 12. */
TEST(conv_hand_worked)
{
    float xv[25], wv[9];
    for (int i = 0; i < 25; i++)
        xv[i] = (float)i;
    for (int i = 0; i < 9; i++)
        wv[i] = 1.0f;
    struct tview x = view(4, (int64_t[]){1, 1, 5, 5}, xv);
    struct tview w = view(4, (int64_t[]){1, 1, 3, 3}, wv);
    struct opcheck_run r;

    struct attr none[] = {OPCHECK_INTS("kernel_shape", 3, 3)};
    CHECK(opcheck_forward(&r, &op_conv, 11, none, 1, (struct tview *[]){&x, &w}, 2, 1) == 0);
    check_output(&r, 4, (int64_t[]){1, 1, 3, 3},
                 (float[]){54, 63, 72, 99, 108, 117, 144, 153, 162}, 0, "no padding");
    opcheck_free(&r);

    struct attr pad1[] = {OPCHECK_INTS("pads", 1, 1, 1, 1), OPCHECK_INTS("strides", 2, 2)};
    CHECK(opcheck_forward(&r, &op_conv, 11, pad1, 2, (struct tview *[]){&x, &w}, 2, 1) == 0);
    check_output(&r, 4, (int64_t[]){1, 1, 3, 3}, (float[]){12, 27, 24, 63, 108, 81, 72, 117, 84},
                 0, "pads 1 strides 2");
    opcheck_free(&r);

    /* 4x4 input 0 … 15, 2x2 ones, SAME: one row and column of padding.
     * SAME_UPPER puts it after the input, so output (0,0) = 0+1+4+5 = 10 and
     * the last is 15 alone; SAME_LOWER puts it before: output (0,0) = 0. */
    float x4[16];
    for (int i = 0; i < 16; i++)
        x4[i] = (float)i;
    struct tview xs = view(4, (int64_t[]){1, 1, 4, 4}, x4);
    struct tview ws = view(4, (int64_t[]){1, 1, 2, 2}, wv);
    struct attr up[] = {OPCHECK_STRING("auto_pad", "SAME_UPPER")};
    CHECK(opcheck_forward(&r, &op_conv, 11, up, 1, (struct tview *[]){&xs, &ws}, 2, 1) == 0);
    check_output(&r, 4, (int64_t[]){1, 1, 4, 4},
                 (float[]){10, 14, 18, 10, 26, 30, 34, 18, 42, 46, 50, 26, 25, 27, 29, 15}, 0,
                 "SAME_UPPER");
    opcheck_free(&r);
    struct attr lo[] = {OPCHECK_STRING("auto_pad", "SAME_LOWER")};
    CHECK(opcheck_forward(&r, &op_conv, 11, lo, 1, (struct tview *[]){&xs, &ws}, 2, 1) == 0);
    check_output(&r, 4, (int64_t[]){1, 1, 4, 4},
                 (float[]){0, 1, 3, 5, 4, 10, 14, 18, 12, 26, 30, 34, 20, 42, 46, 50}, 0,
                 "SAME_LOWER");
    opcheck_free(&r);
}

/* Shapes that exercise sgemm's edges through the convolution: K over one
 * packed slice (192), rows not a multiple of the 8-row tile, panels that span
 * several images (P < 48), a 1×1 layer with a long K, a strided 7×7 stem and
 * a dilated grouped layer; and Winograd's; forward only, against the
 * reference. */
TEST(conv_sgemm_shapes)
{
    static const struct conv_case big[] = {
        {"K 216 over two slices, M 20", 3, 24, 9, 9, 20, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, 1, NULL, 1},
        {"P 16: panels across images", 5, 8, 4, 4, 9, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, 1, NULL, 1},
        {"1x1 K 200", 2, 200, 7, 7, 10, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, 1, NULL, 0},
        {"7x7 s2 stem", 2, 3, 30, 30, 16, 7, 7, 2, 2, 1, 1, {3, 3, 3, 3}, 1, NULL, 1},
        {"group 2 dilation 2", 2, 16, 11, 10, 12, 3, 3, 1, 2, 2, 2, {2, 1, 2, 3}, 2, NULL, 1},
        {"P 1: one column per image", 7, 40, 3, 3, 17, 3, 3, 1, 1, 1, 1, {0, 0, 0, 0}, 1, NULL, 1},
        /* Winograd F(2x2, 3x3) (3x3, stride 1, enough 2x2 blocks, outputs
         * under 40x40): odd output sizes, asymmetric padding, chunks across
         * images, channels not a multiple of 8 */
        {"winograd 2 31x29 pad 1", 2, 17, 31, 29, 19, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, 1, NULL, 1},
        {"winograd 2 no pad, odd output", 1, 16, 20, 21, 16, 3, 3, 1, 1, 1, 1, {0, 0, 0, 0}, 1, NULL, 0},
        {"winograd 2 asymmetric pads", 3, 20, 14, 15, 24, 3, 3, 1, 1, 1, 1, {0, 1, 2, 0}, 1, NULL, 1},
        {"winograd 2 group 2", 2, 40, 14, 13, 36, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, 2, NULL, 1},
        /* F(4x4, 3x3) (outputs of 40x40 and more): block rows wider than 16
         * blocks, output sizes that are not multiples of 4, asymmetric
         * padding, 64 channels */
        {"winograd 4 41x43 pad 1", 2, 17, 41, 43, 19, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, 1, NULL, 1},
        {"winograd 4 no pad 70x42", 1, 16, 72, 44, 16, 3, 3, 1, 1, 1, 1, {0, 0, 0, 0}, 1, NULL, 0},
        {"winograd 4 asymmetric pads", 2, 20, 41, 42, 24, 3, 3, 1, 1, 1, 1, {0, 1, 2, 0}, 1, NULL, 1},
        {"winograd 4 64 channels 40x40", 1, 64, 40, 40, 64, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, 1, NULL, 1},
    };
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        /* F(4x4)'s transforms multiply by up to 8 and add 36 terms: its
         * rounding is checked against what each output sums (measured: at
         * most 2.7e-6 of it, and 2e-7 on the direct convolution; a wrong tap or
         * block is off by tenths) */
        const int f4 = strncmp(big[i].name, "winograd 4", 10) == 0;
        conv_case_check(&big[i], 700 + 10 * i, 0, 1e-5, f4 ? 1e-5 : 0);
    }
}

/* Scratch: im2col needs K·P = (C/group)·kH·kW·Ho·Wo floats (backward still
 * builds it), and with sgemm the packed panels of every thread too; backward
 * on sgemm keeps col, Wᵀ [K × Mg] and the product's panels (dX = Wᵀ·dY, per
 * image: P columns), each rounded up to 16 floats; the depthwise path needs
 * none. */
static size_t want_scratch(size_t col, int Mg, int N, int K, int P)
{
    size_t need = col;
    if (sgemm_available()) {
        size_t forward = sgemm_scratch(Mg, N, K, parallel_threads());
        size_t back = ((col + 15) & ~(size_t)15) + (((size_t)K * Mg + 15) & ~(size_t)15) +
                      sgemm_scratch(K, P, Mg, parallel_threads());
        need = forward > need ? forward : need;
        need = back > need ? back : need;
    }
    return need;
}

/* With one group, backward on sgemm goes a chunk of images at a time: col
 * [K × nb·P], Wᵀ [K × M] and the gathered dY [M × nb·P], each rounded up to
 * 16 floats, then the larger of the two products' panels; nb images, as
 * many as 2^21 floats of col and dY hold (at least 1, at most the batch). */
static size_t want_scratch_batched(int N, int M, int K, int P)
{
    size_t need = sgemm_scratch(M, N * P, K, parallel_threads());
    size_t nb = ((size_t)1 << 21) / (((size_t)K + M) * P);
    nb = nb < 1 ? 1 : nb > (size_t)N ? (size_t)N : nb;
    size_t cols = nb * P;
    size_t dw = sgemm_scratch(M, K, (int)cols, parallel_threads()),
           dx = sgemm_scratch(K, (int)cols, M, parallel_threads());
    size_t back = (((size_t)K * cols + 15) & ~(size_t)15) + (((size_t)K * M + 15) & ~(size_t)15) +
                  (((size_t)M * cols + 15) & ~(size_t)15) + (dw > dx ? dw : dx);
    return back > need ? back : need;
}

TEST(conv_scratch_sizes)
{
    struct tview x = tensor4(2, 4, 6, 6, 1), w3 = tensor4(6, 2, 3, 3, 2), w1 = tensor4(6, 4, 1, 1, 3),
                 wd = tensor4(4, 1, 3, 3, 4);
    struct opcheck_run r;
    struct attr g2[] = {OPCHECK_INT("group", 2), OPCHECK_INTS("pads", 1, 1, 1, 1)};
    CHECK(opcheck_forward(&r, &op_conv, 13, g2, 2, (struct tview *[]){&x, &w3}, 2, 1) == 0);
    CHECK_EQ_INT(r.scratch_len, want_scratch(2 * 3 * 3 * 6 * 6, 3, 2 * 36, 18, 36));
    opcheck_free(&r);
    CHECK(opcheck_forward(&r, &op_conv, 13, NULL, 0, (struct tview *[]){&x, &w1}, 2, 1) == 0);
    CHECK_EQ_INT(r.scratch_len,
                 sgemm_available() ? want_scratch_batched(2, 6, 4, 36) : want_scratch(0, 6, 72, 4, 36));
    opcheck_free(&r);
    struct attr dw[] = {OPCHECK_INT("group", 4)};
    CHECK(opcheck_forward(&r, &op_conv, 13, dw, 1, (struct tview *[]){&x, &wd}, 2, 1) == 0);
    CHECK_EQ_INT(r.scratch_len, 0);
    opcheck_free(&r);
    free(x.data);
    free(w3.data);
    free(w1.data);
    free(wd.data);
}

TEST(conv_refusals)
{
    struct tview x = tensor4(1, 4, 5, 5, 1), w = tensor4(2, 3, 3, 3, 2), w2 = tensor4(3, 2, 3, 3, 3);
    struct tview wok = tensor4(2, 4, 3, 3, 4);
    struct tview x3 = opcheck_tensor(3, (int64_t[]){1, 4, 5}, 5);
    struct tview w3 = opcheck_tensor(3, (int64_t[]){2, 4, 3}, 6);
    struct tview b = opcheck_tensor(1, (int64_t[]){3}, 7);
    struct tview big = tensor4(2, 4, 7, 7, 8);

    check_refused(&op_conv, 11, NULL, 0, (struct tview *[]){&x, &w}, 2, 1, STRATA_E_FORMAT,
                  "W.dims[1] must be C/group");
    struct attr g2[] = {OPCHECK_INT("group", 2)};
    check_refused(&op_conv, 11, g2, 1, (struct tview *[]){&x, &w2}, 2, 1, STRATA_E_FORMAT,
                  "not a multiple of group 2");
    check_refused(&op_conv, 11, NULL, 0, (struct tview *[]){&x3, &w3}, 2, 1,
                  STRATA_E_UNSUPPORTED, "only 2-D convolution");
    struct attr k1[] = {OPCHECK_INTS("kernel_shape", 3)};
    check_refused(&op_conv, 11, k1, 1, (struct tview *[]){&x3, &w3}, 2, 1,
                  STRATA_E_UNSUPPORTED, "only 2-D convolution");
    struct attr k3[] = {OPCHECK_INTS("kernel_shape", 3, 3, 3)};
    check_refused(&op_conv, 11, k3, 1, (struct tview *[]){&x, &wok}, 2, 1,
                  STRATA_E_UNSUPPORTED, "3-D convolution");
    struct attr kbad[] = {OPCHECK_INTS("kernel_shape", 2, 2)};
    check_refused(&op_conv, 11, kbad, 1, (struct tview *[]){&x, &wok}, 2, 1, STRATA_E_FORMAT,
                  "kernel_shape is 2x2 but W is 2x4x3x3");
    check_refused(&op_conv, 11, NULL, 0, (struct tview *[]){&x, &wok, &b}, 3, 1,
                  STRATA_E_FORMAT, "bias B is 3");
    struct attr ap[] = {OPCHECK_STRING("auto_pad", "SAME")};
    check_refused(&op_conv, 11, ap, 1, (struct tview *[]){&x, &wok}, 2, 1, STRATA_E_FORMAT,
                  "auto_pad");
    struct attr g0[] = {OPCHECK_INT("group", 0)};
    check_refused(&op_conv, 11, g0, 1, (struct tview *[]){&x, &wok}, 2, 1, STRATA_E_FORMAT,
                  "'group' is 0");
    struct attr s0[] = {OPCHECK_INTS("strides", 1, 0)};
    check_refused(&op_conv, 11, s0, 1, (struct tview *[]){&x, &wok}, 2, 1, STRATA_E_FORMAT,
                  "'strides'");
    struct attr negpad[] = {OPCHECK_INTS("pads", 0, -1, 0, 0)};
    check_refused(&op_conv, 11, negpad, 1, (struct tview *[]){&x, &wok}, 2, 1, STRATA_E_FORMAT,
                  "'pads'");
    /* a 7x7 kernel on 5x5 without padding; with dilation 3 a 3x3 one spans 7 */
    check_refused(&op_conv, 11, NULL, 0, (struct tview *[]){&x, &big}, 2, 1, STRATA_E_FORMAT,
                  "does not fit");
    struct attr dil3[] = {OPCHECK_INTS("dilations", 3, 3)};
    check_refused(&op_conv, 11, dil3, 1, (struct tview *[]){&x, &wok}, 2, 1, STRATA_E_FORMAT,
                  "does not fit");
    free(x.data);
    free(w.data);
    free(w2.data);
    free(wok.data);
    free(x3.data);
    free(w3.data);
    free(b.data);
    free(big.data);
}

/* ---- pools ---------------------------------------------------------------------- */

static void run_pool(const struct op *op, int opset, struct attr *a, int na, struct tview *x,
                     int64_t ho, int64_t wo, const float *want, const char *what)
{
    struct opcheck_run r;
    int rc = opcheck_forward(&r, op, opset, a, na, (struct tview *[]){x}, 1, 1);
    CHECK_MSG(rc == 0, "%s: %s", what, r.err);
    if (rc == 0)
        check_output(&r, 4, (int64_t[]){x->dims[0], x->dims[1], ho, wo}, want, 1e-6, what);
    opcheck_free(&r);
}

/* Values computed in numpy by a direct loop over each window (taps inside
 * the input for the max and the sum; the divisor as count_include_pad
 * says), cross-checked against torch.nn.functional.{max,avg}_pool2d where
 * the pads are symmetric. */
TEST(pool_hand_worked)
{
    float v25[25], v9[9], v16[16];
    for (int i = 0; i < 25; i++)
        v25[i] = (float)(i + 1);
    for (int i = 0; i < 9; i++)
        v9[i] = (float)(i + 1);
    for (int i = 0; i < 16; i++)
        v16[i] = (float)i;
    struct tview x5 = view(4, (int64_t[]){1, 1, 5, 5}, v25);
    struct tview x3 = view(4, (int64_t[]){1, 1, 3, 3}, v9);
    struct tview x4 = view(4, (int64_t[]){1, 1, 4, 4}, v16);

    struct attr k2s2[] = {OPCHECK_INTS("kernel_shape", 2, 2), OPCHECK_INTS("strides", 2, 2)};
    run_pool(&op_max_pool, 12, k2s2, 2, &x5, 2, 2, (float[]){7, 9, 17, 19}, "max floor");
    struct attr k2s2c[] = {OPCHECK_INTS("kernel_shape", 2, 2), OPCHECK_INTS("strides", 2, 2),
                           OPCHECK_INT("ceil_mode", 1)};
    run_pool(&op_max_pool, 12, k2s2c, 3, &x5, 3, 3, (float[]){7, 9, 10, 17, 19, 20, 22, 24, 25},
             "max ceil");
    run_pool(&op_average_pool, 11, k2s2, 2, &x5, 2, 2, (float[]){4, 6, 14, 16}, "avg floor");
    run_pool(&op_average_pool, 11, k2s2c, 3, &x5, 3, 3,
             (float[]){4, 6, 7.5f, 14, 16, 17.5f, 21.5f, 23.5f, 25}, "avg ceil");

    /* count_include_pad: a corner window of 2x2 over pads 1 holds one input */
    struct attr p1[] = {OPCHECK_INTS("kernel_shape", 2, 2), OPCHECK_INTS("pads", 1, 1, 1, 1)};
    run_pool(&op_average_pool, 11, p1, 2, &x3, 4, 4,
             (float[]){1, 1.5f, 2.5f, 3, 2.5f, 3, 4, 4.5f, 5.5f, 6, 7, 7.5f, 7, 7.5f, 8.5f, 9},
             "avg pads, count_include_pad 0");
    struct attr p1c[] = {OPCHECK_INTS("kernel_shape", 2, 2), OPCHECK_INTS("pads", 1, 1, 1, 1),
                         OPCHECK_INT("count_include_pad", 1)};
    run_pool(&op_average_pool, 11, p1c, 3, &x3, 4, 4,
             (float[]){0.25f, 0.75f, 1.25f, 0.75f, 1.25f, 3, 4, 2.25f, 2.75f, 6, 7, 3.75f, 1.75f,
                       3.75f, 4.25f, 2.25f},
             "avg pads, count_include_pad 1");

    /* ceil_mode with begin pads only: the last window (taps 3, 4, 5) hangs
     * past the end of the padded extent [-1, 5), so even with
     * count_include_pad it counts 2 taps per axis, not 3. */
    struct attr cc0[] = {OPCHECK_INTS("kernel_shape", 3, 3), OPCHECK_INTS("strides", 2, 2),
                         OPCHECK_INTS("pads", 1, 1, 0, 0), OPCHECK_INT("ceil_mode", 1)};
    run_pool(&op_average_pool, 11, cc0, 4, &x5, 3, 3,
             (float[]){4, 5.5f, 7, 11.5f, 13, 14.5f, 19, 20.5f, 22}, "avg ceil pads cip 0");
    struct attr cc1[] = {OPCHECK_INTS("kernel_shape", 3, 3), OPCHECK_INTS("strides", 2, 2),
                         OPCHECK_INTS("pads", 1, 1, 0, 0), OPCHECK_INT("ceil_mode", 1),
                         OPCHECK_INT("count_include_pad", 1)};
    run_pool(&op_average_pool, 11, cc1, 5, &x5, 3, 3,
             (float[]){16.0f / 9, 11.0f / 3, 14.0f / 3, 23.0f / 3, 13, 14.5f, 38.0f / 3, 20.5f,
                       22},
             "avg ceil pads cip 1");

    /* asymmetric pads: one row on top, one column on the right */
    float m9[9] = {3, 1, 4, 1, 5, 9, 2, 6, 5};
    struct tview xm = view(4, (int64_t[]){1, 1, 3, 3}, m9);
    struct attr asym[] = {OPCHECK_INTS("kernel_shape", 2, 2), OPCHECK_INTS("pads", 1, 0, 0, 1)};
    run_pool(&op_max_pool, 12, asym, 2, &xm, 3, 3, (float[]){3, 4, 4, 5, 9, 9, 6, 9, 9},
             "max asymmetric pads");
    run_pool(&op_average_pool, 11, asym, 2, &xm, 3, 3,
             (float[]){2, 2.5f, 4, 2.5f, 4.75f, 6.5f, 3.5f, 6.25f, 7}, "avg asymmetric pads");

    /* ceil_mode never starts a window in the end padding: 4 + 1 pad, k2 s2
     * gives ⌈3/2⌉ + 1 = 3 windows, the third starting at 4 = H: dropped. */
    struct attr cend[] = {OPCHECK_INTS("kernel_shape", 2, 2), OPCHECK_INTS("strides", 2, 2),
                          OPCHECK_INTS("pads", 0, 0, 1, 1), OPCHECK_INT("ceil_mode", 1)};
    run_pool(&op_max_pool, 12, cend, 4, &x4, 2, 2, (float[]){5, 7, 13, 15},
             "ceil drops a window in the end padding");

    /* dilations 2: taps 0 and 2 of each axis */
    struct attr dil[] = {OPCHECK_INTS("kernel_shape", 2, 2), OPCHECK_INTS("dilations", 2, 2)};
    run_pool(&op_max_pool, 12, dil, 2, &x4, 2, 2, (float[]){10, 11, 14, 15}, "max dilations");

    /* SAME_UPPER/LOWER on 4x4, k3 s2: 2 outputs, total pad 1 */
    struct attr su[] = {OPCHECK_INTS("kernel_shape", 3, 3), OPCHECK_INTS("strides", 2, 2),
                        OPCHECK_STRING("auto_pad", "SAME_UPPER")};
    run_pool(&op_average_pool, 11, su, 3, &x4, 2, 2, (float[]){5, 6.5f, 11, 12.5f}, "avg SAME_UPPER");
    struct attr sl[] = {OPCHECK_INTS("kernel_shape", 3, 3), OPCHECK_INTS("strides", 2, 2),
                        OPCHECK_STRING("auto_pad", "SAME_LOWER")};
    run_pool(&op_average_pool, 11, sl, 3, &x4, 2, 2, (float[]){2.5f, 4, 8.5f, 10},
             "avg SAME_LOWER");
    run_pool(&op_max_pool, 12, sl, 3, &x4, 2, 2, (float[]){5, 7, 13, 15}, "max SAME_LOWER");
}

TEST(global_pool_hand_worked)
{
    float v[8] = {1, 2, 3, 4, 5, 9, 7, 8};
    struct tview x = view(4, (int64_t[]){1, 2, 2, 2}, v);
    struct opcheck_run r;
    CHECK(opcheck_forward(&r, &op_global_average_pool, 1, NULL, 0, (struct tview *[]){&x}, 1,
                          1) == 0);
    check_output(&r, 4, (int64_t[]){1, 2, 1, 1}, (float[]){2.5f, 7.25f}, 1e-7, "global avg");
    opcheck_free(&r);
    CHECK(opcheck_forward(&r, &op_global_max_pool, 1, NULL, 0, (struct tview *[]){&x}, 1, 1) ==
          0);
    check_output(&r, 4, (int64_t[]){1, 2, 1, 1}, (float[]){4, 9}, 0, "global max");
    opcheck_free(&r);
    /* N x C x L: any number of spatial axes */
    struct tview x3 = view(3, (int64_t[]){2, 2, 2}, v);
    CHECK(opcheck_forward(&r, &op_global_average_pool, 1, NULL, 0, (struct tview *[]){&x3}, 1,
                          1) == 0);
    check_output(&r, 3, (int64_t[]){2, 2, 1}, (float[]){1.5f, 3.5f, 7, 7.5f}, 1e-7,
                 "global avg rank 3");
    opcheck_free(&r);
}

/* Every window variant's backward against finite differences (distinct
 * inputs, so max pooling is smooth at them), and accumulation. */
TEST(pool_gradients)
{
    struct variant {
        const char *name;
        const struct op *op;
        struct attr a[5];
        int na;
    } v[] = {
        {"max k3 s2 p1", &op_max_pool,
         {OPCHECK_INTS("kernel_shape", 3, 3), OPCHECK_INTS("strides", 2, 2),
          OPCHECK_INTS("pads", 1, 1, 1, 1)}, 3},
        {"max ceil asym", &op_max_pool,
         {OPCHECK_INTS("kernel_shape", 2, 3), OPCHECK_INTS("strides", 2, 2),
          OPCHECK_INTS("pads", 1, 0, 0, 1), OPCHECK_INT("ceil_mode", 1)}, 4},
        {"max dilations", &op_max_pool,
         {OPCHECK_INTS("kernel_shape", 2, 2), OPCHECK_INTS("dilations", 2, 3),
          OPCHECK_INTS("pads", 1, 1, 0, 1)}, 3},
        {"max SAME_UPPER", &op_max_pool,
         {OPCHECK_INTS("kernel_shape", 2, 2), OPCHECK_INTS("strides", 2, 2),
          OPCHECK_STRING("auto_pad", "SAME_UPPER")}, 3},
        {"max SAME_LOWER overlapping", &op_max_pool,
         {OPCHECK_INTS("kernel_shape", 3, 2), OPCHECK_STRING("auto_pad", "SAME_LOWER")}, 2},
        {"avg cip 0", &op_average_pool,
         {OPCHECK_INTS("kernel_shape", 3, 3), OPCHECK_INTS("strides", 2, 2),
          OPCHECK_INTS("pads", 1, 1, 1, 1)}, 3},
        {"avg cip 1", &op_average_pool,
         {OPCHECK_INTS("kernel_shape", 3, 3), OPCHECK_INTS("strides", 2, 2),
          OPCHECK_INTS("pads", 1, 1, 1, 1), OPCHECK_INT("count_include_pad", 1)}, 4},
        {"avg ceil cip 1 asym", &op_average_pool,
         {OPCHECK_INTS("kernel_shape", 3, 2), OPCHECK_INTS("strides", 2, 2),
          OPCHECK_INTS("pads", 1, 0, 0, 1), OPCHECK_INT("ceil_mode", 1),
          OPCHECK_INT("count_include_pad", 1)}, 5},
        {"avg SAME_LOWER", &op_average_pool,
         {OPCHECK_INTS("kernel_shape", 2, 2), OPCHECK_STRING("auto_pad", "SAME_LOWER")}, 2},
        {"avg VALID s2", &op_average_pool,
         {OPCHECK_INTS("kernel_shape", 3, 3), OPCHECK_INTS("strides", 2, 1),
          OPCHECK_STRING("auto_pad", "VALID")}, 3},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        struct tview x = distinct_tensor(4, (int64_t[]){2, 2, 7, 6}, 40 + i);
        struct opcheck_run r;
        int rc = opcheck_forward(&r, v[i].op, 12, v[i].a, v[i].na, (struct tview *[]){&x}, 1, 1);
        CHECK_MSG(rc == 0, "%s: %s", v[i].name, r.err);
        if (rc == 0) {
            int bad = opcheck_gradients(&r, 1, FD_RTOL, FD_ATOL);
            CHECK_MSG(bad == 0, "%s: %d gradient mismatches", v[i].name, bad);
            check_accumulates(&r, 1, v[i].name);
        }
        /* in training mode (MaxPool records where each maximum is): the same
         * output, and the gradient through the recorded places */
        struct opcheck_run t;
        rc = opcheck_forward_training(&t, v[i].op, 12, v[i].a, v[i].na, (struct tview *[]){&x}, 1,
                                      1, 1);
        CHECK_MSG(rc == 0, "%s training: %s", v[i].name, t.err);
        if (rc == 0) {
            CHECK_MSG(memcmp(t.out[0].data, r.out[0].data,
                             (size_t)tview_count(&r.out[0]) * sizeof(float)) == 0,
                      "%s: training forward differs", v[i].name);
            int bad = opcheck_gradients(&t, 1, FD_RTOL, FD_ATOL);
            CHECK_MSG(bad == 0, "%s training: %d gradient mismatches", v[i].name, bad);
            check_accumulates(&t, 1, v[i].name);
        }
        opcheck_free(&t);
        opcheck_free(&r);
        free(x.data);
    }
    const struct op *globals[] = {&op_global_average_pool, &op_global_max_pool};
    for (int i = 0; i < 2; i++) {
        struct tview x = distinct_tensor(4, (int64_t[]){2, 3, 4, 5}, 77 + i);
        struct opcheck_run r;
        CHECK(opcheck_forward(&r, globals[i], 13, NULL, 0, (struct tview *[]){&x}, 1, 1) == 0);
        int bad = opcheck_gradients(&r, 1, FD_RTOL, FD_ATOL);
        CHECK_MSG(bad == 0, "%s: %d gradient mismatches", globals[i]->name, bad);
        check_accumulates(&r, 1, globals[i]->name);
        opcheck_free(&r);
        free(x.data);
    }
}

/* Ties: the gradient goes to the first maximum in row-major window order,
 * the element forward reports. */
TEST(max_pool_ties_route_to_first)
{
    float v[8] = {1, 2, 2, 0, 5, 5, 5, 5};
    struct tview x = view(4, (int64_t[]){1, 2, 2, 2}, v);
    const struct op *ops[] = {&op_max_pool, &op_global_max_pool};
    struct attr k2[] = {OPCHECK_INTS("kernel_shape", 2, 2)};
    for (int i = 0; i < 2; i++) {
        struct opcheck_run r;
        CHECK(opcheck_forward(&r, ops[i], 12, k2, i == 0 ? 1 : 0, (struct tview *[]){&x}, 1,
                              1) == 0);
        float dyv[2] = {1, 10}, dxv[8] = {0};
        struct tview dy = view(4, (int64_t[]){1, 2, 1, 1}, dyv);
        struct tview dx = view(4, (int64_t[]){1, 2, 2, 2}, dxv);
        struct op_ctx ctx = {0};
        ops[i]->backward(&r.node, (const struct tview *const *)r.in,
                         (const struct tview *const[]){&r.out[0]},
                         (const struct tview *const[]){&dy}, (struct tview *[]){&dx}, &ctx);
        const float want[8] = {0, 1, 0, 0, 10, 0, 0, 0};
        for (int k = 0; k < 8; k++)
            CHECK_NEAR(dxv[k], want[k], 0);
        opcheck_free(&r);
    }
}

/* Max pooling with many ties (small integers, NaN, −∞), inference and
 * training mode, on the 2×2 stride-2 windows the fast path takes (even and
 * odd planes, so the last row or column is left out) and on windows it does
 * not (3×3 stride 2 with padding, 2×2 stride 1): the output and the place
 * each gradient goes to against a direct scan of each window in row-major
 * order that keeps the first strictly larger value, from −∞ (a window with
 * nothing larger sends its gradient to its first tap). */
TEST(max_pool_ties_agree_in_every_mode)
{
    struct variant {
        const char *name;
        struct attr a[3];
        int na, k, s, pad;
    } v[] = {
        {"k2 s2", {OPCHECK_INTS("kernel_shape", 2, 2), OPCHECK_INTS("strides", 2, 2)}, 2, 2, 2, 0},
        {"k3 s2 p1",
         {OPCHECK_INTS("kernel_shape", 3, 3), OPCHECK_INTS("strides", 2, 2),
          OPCHECK_INTS("pads", 1, 1, 1, 1)},
         3, 3, 2, 1},
        {"k2 s1", {OPCHECK_INTS("kernel_shape", 2, 2)}, 1, 2, 1, 0},
    };
    const int64_t shapes[][2] = {{6, 8}, {7, 9}, {5, 4}};
    uint32_t seed = 12345;
    fedisableexcept(FE_INVALID); /* NaN is compared on purpose */
    for (size_t i = 0; i < sizeof v / sizeof *v; i++)
        for (size_t sh = 0; sh < sizeof shapes / sizeof *shapes; sh++) {
            const int64_t H = shapes[sh][0], W = shapes[sh][1];
            const int64_t Ho = (H + 2 * v[i].pad - v[i].k) / v[i].s + 1;
            const int64_t Wo = (W + 2 * v[i].pad - v[i].k) / v[i].s + 1;
            float *xv = malloc((size_t)(2 * 3 * H * W) * sizeof *xv);
            for (int64_t e = 0; e < 2 * 3 * H * W; e++) {
                seed = seed * 1664525u + 1013904223u;
                xv[e] = (float)((seed >> 24) % 3); /* 0, 1 or 2: ties everywhere */
            }
            xv[5] = NAN;
            xv[H * W + 3] = -INFINITY;
            /* a window of NaN and −∞ only, wherever the first window lies */
            xv[2 * H * W] = xv[2 * H * W + 1] = NAN;
            xv[2 * H * W + W] = xv[2 * H * W + W + 1] = -INFINITY;
            struct tview x = view(4, (int64_t[]){2, 3, H, W}, xv);
            /* the reference: values and the index each output's gradient goes to */
            const int64_t outs = 2 * 3 * Ho * Wo;
            float *want = malloc((size_t)outs * sizeof *want);
            int64_t *to = malloc((size_t)outs * sizeof *to);
            for (int64_t pl = 0; pl < 6; pl++)
                for (int64_t oy = 0; oy < Ho; oy++)
                    for (int64_t ox = 0; ox < Wo; ox++) {
                        float m = -INFINITY;
                        int64_t at = -1, first = -1;
                        for (int ky = 0; ky < v[i].k; ky++)
                            for (int kx = 0; kx < v[i].k; kx++) {
                                const int64_t iy = oy * v[i].s - v[i].pad + ky;
                                const int64_t ix = ox * v[i].s - v[i].pad + kx;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                                    continue;
                                const float e = xv[pl * H * W + iy * W + ix];
                                if (first < 0)
                                    first = iy * W + ix;
                                if (e > m)
                                    m = e, at = iy * W + ix;
                            }
                        if (at < 0) /* nothing above −∞: the first tap */
                            at = first;
                        const int64_t o = (pl * Ho + oy) * Wo + ox;
                        want[o] = m;
                        to[o] = pl * H * W + at;
                    }
            for (int training = 0; training < 2; training++) {
                char what[80];
                snprintf(what, sizeof what, "%s %lldx%lld %s", v[i].name, (long long)H,
                         (long long)W, training ? "training" : "inference");
                struct opcheck_run r;
                int rc = training ? opcheck_forward_training(&r, &op_max_pool, 12, v[i].a,
                                                             v[i].na, (struct tview *[]){&x}, 1,
                                                             1, 1)
                                  : opcheck_forward(&r, &op_max_pool, 12, v[i].a, v[i].na,
                                                    (struct tview *[]){&x}, 1, 1);
                CHECK_MSG(rc == 0, "%s: %s", what, r.err);
                if (rc) {
                    opcheck_free(&r);
                    continue;
                }
                CHECK(tview_count(&r.out[0]) == outs);
                const float *y = r.out[0].data;
                int bad = 0;
                for (int64_t o = 0; o < outs; o++)
                    bad += !(y[o] == want[o] || (isnan(y[o]) && isnan(want[o])));
                CHECK_MSG(bad == 0, "%s: %d outputs differ", what, bad);
                /* each output's gradient alone: one at its place, nothing elsewhere */
                float *dyv = calloc((size_t)outs, sizeof *dyv);
                float *dxv = calloc((size_t)(2 * 3 * H * W), sizeof *dxv);
                struct tview dy = view(4, (int64_t[]){2, 3, Ho, Wo}, dyv);
                struct tview dx = view(4, (int64_t[]){2, 3, H, W}, dxv);
                int misrouted = 0;
                for (int64_t o = 0; o < outs; o++) {
                    dyv[o] = 1;
                    memset(dxv, 0, (size_t)(2 * 3 * H * W) * sizeof *dxv);
                    struct op_ctx ctx = opcheck_ctx(&r);
                    op_max_pool.backward(&r.node, (const struct tview *const *)r.in,
                                         (const struct tview *const[]){&r.out[0]},
                                         (const struct tview *const[]){&dy},
                                         (struct tview *[]){&dx}, &ctx);
                    for (int64_t e = 0; e < 2 * 3 * H * W; e++)
                        misrouted += dxv[e] != (e == to[o] ? 1.0f : 0.0f);
                    dyv[o] = 0;
                }
                CHECK_MSG(misrouted == 0, "%s: %d gradient values misplaced", what, misrouted);
                free(dyv);
                free(dxv);
                opcheck_free(&r);
            }
            free(want);
            free(to);
            free(xv);
        }
    feenableexcept(FE_INVALID);
}

TEST(pool_refusals)
{
    struct tview x = tensor4(1, 2, 5, 5, 3);
    struct tview x5 = opcheck_tensor(5, (int64_t[]){1, 2, 4, 4, 4}, 4);
    struct tview x2 = opcheck_tensor(2, (int64_t[]){1, 2}, 5);
    struct attr k2[] = {OPCHECK_INTS("kernel_shape", 2, 2)};

    check_refused(&op_max_pool, 12, NULL, 0, (struct tview *[]){&x}, 1, 1, STRATA_E_FORMAT,
                  "'kernel_shape' is required");
    struct attr k1[] = {OPCHECK_INTS("kernel_shape", 2)};
    check_refused(&op_max_pool, 12, k1, 1, (struct tview *[]){&x}, 1, 1, STRATA_E_UNSUPPORTED,
                  "only 2-D pooling");
    check_refused(&op_average_pool, 11, k2, 1, (struct tview *[]){&x5}, 1, 1,
                  STRATA_E_UNSUPPORTED, "only 2-D pooling");
    struct attr so[] = {OPCHECK_INTS("kernel_shape", 2, 2), OPCHECK_INT("storage_order", 1)};
    check_refused(&op_max_pool, 12, so, 2, (struct tview *[]){&x}, 1, 1, STRATA_E_UNSUPPORTED,
                  "storage_order");
    check_refused(&op_max_pool, 12, k2, 1, (struct tview *[]){&x}, 1, 2, STRATA_E_UNSUPPORTED,
                  "Indices");
    struct attr ceil[] = {OPCHECK_INTS("kernel_shape", 2, 2), OPCHECK_INT("ceil_mode", 1)};
    check_refused(&op_max_pool, 9, ceil, 2, (struct tview *[]){&x}, 1, 1, STRATA_E_UNSUPPORTED,
                  "exists from opset 10");
    struct attr cip[] = {OPCHECK_INTS("kernel_shape", 2, 2), OPCHECK_INT("count_include_pad", 1)};
    check_refused(&op_average_pool, 6, cip, 2, (struct tview *[]){&x}, 1, 1,
                  STRATA_E_UNSUPPORTED, "exists from opset 7");
    struct attr adil[] = {OPCHECK_INTS("kernel_shape", 2, 2), OPCHECK_INTS("dilations", 2, 2)};
    check_refused(&op_average_pool, 11, adil, 2, (struct tview *[]){&x}, 1, 1,
                  STRATA_E_UNSUPPORTED, "dilations");
    struct attr big[] = {OPCHECK_INTS("kernel_shape", 6, 2)};
    check_refused(&op_max_pool, 12, big, 1, (struct tview *[]){&x}, 1, 1, STRATA_E_FORMAT,
                  "does not fit");
    /* pads 2 with a 2-wide window: the first window is padding only */
    struct attr onlypad[] = {OPCHECK_INTS("kernel_shape", 2, 2),
                             OPCHECK_INTS("pads", 2, 0, 0, 0)};
    check_refused(&op_average_pool, 11, onlypad, 2, (struct tview *[]){&x}, 1, 1,
                  STRATA_E_UNSUPPORTED, "see only padding");
    check_refused(&op_global_average_pool, 11, NULL, 0, (struct tview *[]){&x2}, 1, 1,
                  STRATA_E_FORMAT, "at least one spatial axis");
    /* a 1-D-by-attribute model on 3-D input is also refused */
    free(x.data);
    free(x5.data);
    free(x2.data);
}

/* ---- BatchNormalization ------------------------------------------------------ */

/* Channel 0: (x − 1) / 1 · 1 + 0; channel 1: (x − 3) / 2 · 2 + 1, ε = 0. */
TEST(batch_norm_hand_worked)
{
    float xv[4] = {1, 2, 3, 4}, sc[2] = {1, 2}, bv[2] = {0, 1}, mv[2] = {1, 3}, vv[2] = {1, 4};
    struct tview x = view(4, (int64_t[]){1, 2, 1, 2}, xv);
    struct tview s = view(1, (int64_t[]){2}, sc), b = view(1, (int64_t[]){2}, bv),
                 m = view(1, (int64_t[]){2}, mv), v = view(1, (int64_t[]){2}, vv);
    struct attr eps0[] = {OPCHECK_FLOAT("epsilon", 0.0f)};
    struct opcheck_run r;
    CHECK(opcheck_forward(&r, &op_batch_normalization, 15, eps0, 1,
                          (struct tview *[]){&x, &s, &b, &m, &v}, 5, 1) == 0);
    check_output(&r, 4, (int64_t[]){1, 2, 1, 2}, (float[]){0, 1, 1, 2}, 1e-7, "bn");
    opcheck_free(&r);
    /* opset 6 form: is_test accepted, spatial = 1 accepted */
    struct attr old[] = {OPCHECK_FLOAT("epsilon", 0.0f), OPCHECK_INT("is_test", 1),
                         OPCHECK_INT("spatial", 1), OPCHECK_FLOAT("momentum", 0.9f)};
    CHECK(opcheck_forward(&r, &op_batch_normalization, 6, old, 4,
                          (struct tview *[]){&x, &s, &b, &m, &v}, 5, 1) == 0);
    check_output(&r, 4, (int64_t[]){1, 2, 1, 2}, (float[]){0, 1, 1, 2}, 1e-7, "bn opset 6");
    opcheck_free(&r);
}

/* Against the formula in double, for ranks 2 to 5 (and 1: C = 1), then the
 * gradients of X, scale and B; mean and var receive nothing. */
TEST(batch_norm_reference_and_gradients)
{
    const int64_t shapes[][5] = {{3, 4}, {2, 3, 5}, {2, 3, 4, 3}, {1, 2, 2, 3, 2}, {6}};
    const int ranks[] = {2, 3, 4, 5, 1};
    for (int t = 0; t < 5; t++) {
        struct tview x = opcheck_tensor(ranks[t], shapes[t], 300 + t);
        const int64_t C = ranks[t] >= 2 ? shapes[t][1] : 1;
        struct tview s = opcheck_tensor(1, &C, 310 + t), b = opcheck_tensor(1, &C, 320 + t),
                     m = opcheck_tensor(1, &C, 330 + t), v = opcheck_tensor(1, &C, 340 + t);
        for (int64_t c = 0; c < C; c++)
            tview_f(&v)[c] = fabsf(tview_f(&v)[c]) + 0.5f;
        struct attr eps[] = {OPCHECK_FLOAT("epsilon", 1e-3f)};
        struct opcheck_run r;
        int rc = opcheck_forward(&r, &op_batch_normalization, 14, eps, 1,
                                 (struct tview *[]){&x, &s, &b, &m, &v}, 5, 1);
        CHECK_MSG(rc == 0, "rank %d: %s", ranks[t], r.err);
        if (rc < 0)
            continue;
        int64_t n = tview_count(&x), inner = 1;
        for (int i = 2; i < ranks[t]; i++)
            inner *= shapes[t][i];
        float *want = malloc((size_t)n * sizeof *want);
        for (int64_t i = 0; i < n; i++) {
            int64_t c = (i / inner) % C;
            double sv = tview_f(&s)[c], bv = tview_f(&b)[c], mv = tview_f(&m)[c],
                   vv = tview_f(&v)[c];
            want[i] = (float)(sv * (tview_f(&x)[i] - mv) / sqrt(vv + 1e-3) + bv);
        }
        char what[32];
        snprintf(what, sizeof what, "bn rank %d", ranks[t]);
        check_output(&r, ranks[t], shapes[t], want, 1e-5, what);
        int bad = opcheck_gradients(&r, 7, FD_RTOL, FD_ATOL);
        CHECK_MSG(bad == 0, "%s: %d gradient mismatches", what, bad);
        check_accumulates(&r, 7, what);

        /* mean and var: their din buffers are left as they were */
        float sentinel[2][8];
        struct tview dm = m, dv = v, dx = x;
        dm.data = sentinel[0];
        dv.data = sentinel[1];
        for (int k = 0; k < 8; k++)
            sentinel[0][k] = sentinel[1][k] = 7.0f;
        float *dxv = calloc((size_t)n, sizeof *dxv);
        dx.data = dxv;
        struct op_ctx ctx = {0};
        op_batch_normalization.backward(
            &r.node, (const struct tview *const *)r.in, (const struct tview *const[]){&r.out[0]},
            (const struct tview *const[]){&r.out[0]},
            (struct tview *[]){&dx, NULL, NULL, &dm, &dv}, &ctx);
        for (int k = 0; k < C; k++)
            CHECK(sentinel[0][k] == 7.0f && sentinel[1][k] == 7.0f);
        free(dxv);
        free(want);
        opcheck_free(&r);
        free(x.data);
        free(s.data);
        free(b.data);
        free(m.data);
        free(v.data);
    }
}

/* Training mode, against the formulas in double: Y with the batch's mean and
 * biased variance, the running statistics updated (momentum 0.8, the
 * unbiased variance), and the gradients of X, scale and B through the
 * batch statistics by finite differences. The third case has a mean of
 * 1000 and a standard deviation near 0.6: the variance must not cancel
 * away. */
TEST(batch_norm_training)
{
    const int64_t shapes[][4] = {{5, 3}, {3, 2, 2, 3}, {4, 2, 9, 9}};
    const int ranks[] = {2, 4, 4};
    for (int t = 0; t < 3; t++) {
        struct tview x = opcheck_tensor(ranks[t], shapes[t], 400 + t);
        if (t == 2)
            for (int64_t i = 0; i < tview_count(&x); i++)
                tview_f(&x)[i] += 1000.0f;
        const int64_t C = shapes[t][1];
        struct tview s = opcheck_tensor(1, &C, 410 + t), b = opcheck_tensor(1, &C, 420 + t),
                     m = opcheck_tensor(1, &C, 430 + t), v = opcheck_tensor(1, &C, 440 + t);
        for (int64_t c = 0; c < C; c++)
            tview_f(&v)[c] = fabsf(tview_f(&v)[c]) + 0.5f;
        float m0[4], v0[4];
        memcpy(m0, m.data, (size_t)C * sizeof(float));
        memcpy(v0, v.data, (size_t)C * sizeof(float));
        struct attr a[] = {OPCHECK_FLOAT("epsilon", 1e-3f), OPCHECK_FLOAT("momentum", 0.8f)};
        struct opcheck_run r;
        int rc = opcheck_forward_training(&r, &op_batch_normalization, 15, a, 2,
                                          (struct tview *[]){&x, &s, &b, &m, &v}, 5, 1, 1);
        CHECK_MSG(rc == 0, "rank %d: %s", ranks[t], r.err);
        if (rc < 0)
            continue;
        int64_t n = tview_count(&x), inner = 1;
        for (int i = 2; i < ranks[t]; i++)
            inner *= shapes[t][i];
        const double M = (double)n / C;
        double mu[4] = {0}, var[4] = {0};
        for (int64_t i = 0; i < n; i++)
            mu[(i / inner) % C] += tview_f(&x)[i] / M;
        for (int64_t i = 0; i < n; i++) {
            double d = tview_f(&x)[i] - mu[(i / inner) % C];
            var[(i / inner) % C] += d * d / M;
        }
        float *want = malloc((size_t)n * sizeof *want);
        for (int64_t i = 0; i < n; i++) {
            int64_t c = (i / inner) % C;
            want[i] = (float)(tview_f(&s)[c] * (tview_f(&x)[i] - mu[c]) / sqrt(var[c] + 1e-3) +
                              tview_f(&b)[c]);
        }
        char what[40];
        snprintf(what, sizeof what, "bn training rank %d", ranks[t]);
        check_output(&r, ranks[t], shapes[t], want, t == 2 ? 2e-4 : 1e-5, what);
        for (int64_t c = 0; c < C; c++) {
            CHECK_NEAR(tview_f(&m)[c], 0.8 * m0[c] + 0.2 * mu[c], t == 2 ? 1e-3 : 1e-6);
            CHECK_NEAR(tview_f(&v)[c], 0.8 * v0[c] + 0.2 * var[c] * M / (M - 1), t == 2 ? 1e-4 : 1e-6);
        }
        /* finite differences of x at 1000 are too coarse in float */
        int bad = opcheck_gradients(&r, t == 2 ? 6 : 7, FD_RTOL, FD_ATOL);
        CHECK_MSG(bad == 0, "%s: %d gradient mismatches", what, bad);
        check_accumulates(&r, 7, what);
        opcheck_free(&r);
        free(want);
        free(x.data), free(s.data), free(b.data), free(m.data), free(v.data);
    }
}

TEST(batch_norm_refusals)
{
    struct tview x = tensor4(1, 2, 2, 2, 1);
    int64_t c2 = 2, c3 = 3;
    struct tview s = opcheck_tensor(1, &c2, 2), b = opcheck_tensor(1, &c2, 3),
                 m = opcheck_tensor(1, &c2, 4), v = opcheck_tensor(1, &c2, 5),
                 s3 = opcheck_tensor(1, &c3, 6);
    tview_f(&v)[0] = 1.0f;
    tview_f(&v)[1] = 2.0f;
    struct tview *in[] = {&x, &s, &b, &m, &v};
    struct attr train[] = {OPCHECK_INT("training_mode", 1)};
    check_refused(&op_batch_normalization, 15, train, 1, in, 5, 1, STRATA_E_UNSUPPORTED,
                  "'training_mode' is 1; only inference mode");
    struct attr spatial0[] = {OPCHECK_INT("spatial", 0)};
    check_refused(&op_batch_normalization, 7, spatial0, 1, in, 5, 1, STRATA_E_UNSUPPORTED,
                  "spatial = 1");
    check_refused(&op_batch_normalization, 9, NULL, 0, in, 5, 3, STRATA_E_UNSUPPORTED,
                  "training statistic");
    check_refused(&op_batch_normalization, 9, NULL, 0, (struct tview *[]){&x, &s3, &b, &m, &v},
                  5, 1, STRATA_E_FORMAT, "input scale is 3");
    tview_f(&v)[1] = -1.0f;
    check_refused(&op_batch_normalization, 9, NULL, 0, in, 5, 1, STRATA_E_FORMAT,
                  "input_var[1] + epsilon");
    free(x.data);
    free(s.data);
    free(b.data);
    free(m.data);
    free(v.data);
    free(s3.data);
}

/* ---- Pad ----------------------------------------------------------------------- */

/* Runs Pad-11 (pads input, optional constant_value input) on x. */
static int run_pad11(struct opcheck_run *r, struct tview *x, const int64_t *pads, int n_pads,
                     const char *mode, struct tview *value, struct tview *pads_out)
{
    *pads_out = opcheck_ints(1, (int64_t[]){n_pads}, pads);
    struct attr a[] = {OPCHECK_STRING("mode", mode)};
    return opcheck_forward(r, &op_pad, 13, a, 1, (struct tview *[]){x, pads_out, value},
                           value ? 3 : 2, 1);
}

/* Expected values are numpy.pad's (with slicing first for negative pads). */
TEST(pad_hand_worked)
{
    float v6[6] = {1, 2, 3, 4, 5, 6};
    struct tview x = view(2, (int64_t[]){2, 3}, v6);
    struct tview pads;
    struct opcheck_run r;

    CHECK(run_pad11(&r, &x, (int64_t[]){1, 2, 1, 2}, 4, "reflect", NULL, &pads) == 0);
    check_output(&r, 2, (int64_t[]){4, 7},
                 (float[]){6, 5, 4, 5, 6, 5, 4, 3, 2, 1, 2, 3, 2, 1,
                           6, 5, 4, 5, 6, 5, 4, 3, 2, 1, 2, 3, 2, 1},
                 0, "reflect");
    opcheck_free(&r);
    free(pads.data);

    CHECK(run_pad11(&r, &x, (int64_t[]){1, 2, 1, 2}, 4, "edge", NULL, &pads) == 0);
    check_output(&r, 2, (int64_t[]){4, 7},
                 (float[]){1, 1, 1, 2, 3, 3, 3, 1, 1, 1, 2, 3, 3, 3,
                           4, 4, 4, 5, 6, 6, 6, 4, 4, 4, 5, 6, 6, 6},
                 0, "edge");
    opcheck_free(&r);
    free(pads.data);

    float cv = -1;
    struct tview value = view(0, NULL, &cv);
    CHECK(run_pad11(&r, &x, (int64_t[]){1, 0, 0, 2}, 4, "constant", &value, &pads) == 0);
    check_output(&r, 2, (int64_t[]){3, 5},
                 (float[]){-1, -1, -1, -1, -1, 1, 2, 3, -1, -1, 4, 5, 6, -1, -1}, 0,
                 "constant -1");
    opcheck_free(&r);
    free(pads.data);

    /* negative pads crop: X[1:, :2] of a 3x4, then one zero column before */
    float v12[12];
    for (int i = 0; i < 12; i++)
        v12[i] = (float)(i + 1);
    struct tview x34 = view(2, (int64_t[]){3, 4}, v12);
    CHECK(run_pad11(&r, &x34, (int64_t[]){-1, 1, 0, -2}, 4, "constant", NULL, &pads) == 0);
    check_output(&r, 2, (int64_t[]){2, 3}, (float[]){0, 5, 6, 0, 9, 10}, 0, "crop");
    opcheck_free(&r);
    free(pads.data);

    /* 4-D, cropping one side and padding the other: numpy.pad of
     * X[:, :, 1:, :-1] by (0, 1) rows and (1, 0) columns */
    struct tview x4 = view(4, (int64_t[]){1, 1, 3, 4}, v12);
    const int64_t p4[8] = {0, 0, -1, 1, 0, 0, 1, -1};
    CHECK(run_pad11(&r, &x4, p4, 8, "reflect", NULL, &pads) == 0);
    check_output(&r, 4, (int64_t[]){1, 1, 3, 4}, (float[]){6, 5, 6, 7, 10, 9, 10, 11, 6, 5, 6, 7},
                 0, "reflect with crop");
    opcheck_free(&r);
    free(pads.data);
    CHECK(run_pad11(&r, &x4, p4, 8, "edge", NULL, &pads) == 0);
    check_output(&r, 4, (int64_t[]){1, 1, 3, 4}, (float[]){5, 5, 6, 7, 9, 9, 10, 11, 9, 9, 10, 11},
                 0, "edge with crop");
    opcheck_free(&r);
    free(pads.data);

    /* opset 2 form: attributes pads and value */
    struct attr old[] = {OPCHECK_STRING("mode", "constant"), OPCHECK_INTS("pads", 1, 0, 0, 2),
                         OPCHECK_FLOAT("value", -1.0f)};
    CHECK(opcheck_forward(&r, &op_pad, 10, old, 3, (struct tview *[]){&x}, 1, 1) == 0);
    check_output(&r, 2, (int64_t[]){3, 5},
                 (float[]){-1, -1, -1, -1, -1, 1, 2, 3, -1, -1, 4, 5, 6, -1, -1}, 0,
                 "constant, opset 10 attributes");
    opcheck_free(&r);

    /* rank 1 and rank 5, constant */
    struct tview x1 = view(1, (int64_t[]){3}, v6);
    CHECK(run_pad11(&r, &x1, (int64_t[]){2, 1}, 2, "constant", NULL, &pads) == 0);
    check_output(&r, 1, (int64_t[]){6}, (float[]){0, 0, 1, 2, 3, 0}, 0, "rank 1");
    opcheck_free(&r);
    free(pads.data);
    struct tview x5 = view(5, (int64_t[]){1, 2, 1, 1, 3}, v6);
    CHECK(run_pad11(&r, &x5, (int64_t[]){0, 0, 1, 0, 0, 0, -1, 0, 0, 1}, 10, "constant", NULL,
                    &pads) == 0);
    check_output(&r, 5, (int64_t[]){1, 1, 2, 1, 4}, (float[]){0, 0, 0, 0, 1, 2, 3, 0}, 0,
                 "rank 5");
    opcheck_free(&r);
    free(pads.data);
}

TEST(pad_gradients)
{
    struct variant {
        const char *mode;
        int64_t pads[8];
        int with_value;
    } v[] = {
        {"constant", {1, 0, 2, 1, 0, 1, 1, 2}, 1},
        {"constant", {0, -1, 1, -2, 1, 0, -1, 1}, 0},
        {"reflect", {0, 0, 2, 3, 0, 0, 1, 2}, 0},
        {"reflect", {0, 1, -1, 2, 0, 0, 2, -1}, 0},
        {"edge", {1, 0, 3, 1, 0, 2, 2, 4}, 0},
        {"edge", {0, 0, -2, 2, 0, 0, 3, -1}, 0},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        struct tview x = tensor4(2, 3, 4, 5, 500 + i);
        float cv = 0.25f;
        struct tview value = view(0, NULL, &cv), pads;
        struct opcheck_run r;
        int rc = run_pad11(&r, &x, v[i].pads, 8, v[i].mode, v[i].with_value ? &value : NULL,
                           &pads);
        CHECK_MSG(rc == 0, "%s %zu: %s", v[i].mode, i, r.err);
        if (rc == 0) {
            unsigned mask = v[i].with_value ? 5u : 1u;
            int bad = opcheck_gradients(&r, mask, FD_RTOL, FD_ATOL);
            CHECK_MSG(bad == 0, "%s %zu: %d gradient mismatches", v[i].mode, i, bad);
            check_accumulates(&r, mask, v[i].mode);
        }
        opcheck_free(&r);
        free(pads.data);
        free(x.data);
    }
    /* the opset-10 attribute form */
    struct tview x = tensor4(1, 2, 3, 3, 600);
    struct attr a[] = {OPCHECK_STRING("mode", "reflect"), OPCHECK_INTS("pads", 0, 0, 2, 1, 0, 0, 1, 2)};
    struct opcheck_run r;
    CHECK(opcheck_forward(&r, &op_pad, 10, a, 2, (struct tview *[]){&x}, 1, 1) == 0);
    CHECK(opcheck_gradients(&r, 1, FD_RTOL, FD_ATOL) == 0);
    opcheck_free(&r);
    free(x.data);
}

TEST(pad_refusals)
{
    struct tview x = tensor4(1, 1, 3, 3, 1), pads;
    struct opcheck_run r;
    CHECK(run_pad11(&r, &x, (int64_t[]){0, 0, 3, 0, 0, 0, 0, 0}, 8, "reflect", NULL, &pads) ==
          STRATA_E_FORMAT);
    CHECK(strstr(r.err, "must be smaller than the 3 elements kept") != NULL);
    opcheck_free(&r);
    free(pads.data);
    CHECK(run_pad11(&r, &x, (int64_t[]){0, 0, 1, 1}, 4, "constant", NULL, &pads) ==
          STRATA_E_FORMAT);
    CHECK(strstr(r.err, "pads has 4 values; input 1x1x3x3 (rank 4) needs 8") != NULL);
    opcheck_free(&r);
    free(pads.data);
    CHECK(run_pad11(&r, &x, (int64_t[]){0, 0, -2, 0, 0, 0, -2, 0}, 8, "constant", NULL, &pads) ==
          STRATA_E_FORMAT);
    CHECK(strstr(r.err, "negative") != NULL);
    opcheck_free(&r);
    free(pads.data);
    CHECK(run_pad11(&r, &x, (int64_t[]){0, 0, -3, 0, 0, 0, 1, 0}, 8, "edge", NULL, &pads) ==
          STRATA_E_FORMAT);
    CHECK(strstr(r.err, "keeps no element") != NULL);
    opcheck_free(&r);
    free(pads.data);

    /* pads computed at run time (data unknown while inferring) */
    struct tview dyn = {.dtype = DTYPE_INT64, .ndim = 1, .dims = {8}, .data = NULL};
    struct attr cm[] = {OPCHECK_STRING("mode", "constant")};
    check_refused(&op_pad, 11, cm, 1, (struct tview *[]){&x, &dyn}, 2, 1, STRATA_E_UNSUPPORTED,
                  "must be a constant");
    struct attr wrap[] = {OPCHECK_STRING("mode", "wrap")};
    check_refused(&op_pad, 13, wrap, 1, (struct tview *[]){&x, &dyn}, 2, 1,
                  STRATA_E_UNSUPPORTED, "wrap");
    check_refused(&op_pad, 10, cm, 1, (struct tview *[]){&x}, 1, 1, STRATA_E_FORMAT,
                  "'pads' is required");
    check_refused(&op_pad, 11, cm, 1, (struct tview *[]){&x}, 1, 1, STRATA_E_FORMAT,
                  "'pads' is required from opset 11");
    free(x.data);
}

/* ---- threads ------------------------------------------------------------------ */

/* Forward output and backward gradients of one op on fixed inputs. */
struct snapshot {
    float *y, *d[3];
    int64_t ny, nd[3];
};

static void snapshot_take(struct snapshot *s, const struct op *op, int opset, struct attr *a,
                          int na, struct tview **in, int n_in, unsigned mask)
{
    struct opcheck_run r;
    memset(s, 0, sizeof *s);
    int rc = opcheck_forward(&r, op, opset, a, na, in, n_in, 1);
    CHECK_MSG(rc == 0, "%s: %s", op->name, r.err);
    if (rc < 0) {
        opcheck_free(&r);
        return;
    }
    s->ny = tview_count(&r.out[0]);
    s->y = malloc((size_t)s->ny * sizeof(float));
    memcpy(s->y, r.out[0].data, (size_t)s->ny * sizeof(float));
    struct tview din[3], *dinp[3] = {0};
    for (int i = 0; i < n_in && i < 3; i++)
        if (in[i] && (mask >> i & 1)) {
            din[i] = *in[i];
            s->nd[i] = tview_count(in[i]);
            s->d[i] = calloc((size_t)s->nd[i], sizeof(float));
            din[i].data = s->d[i];
            dinp[i] = &din[i];
        }
    struct op_ctx ctx = {.scratch = r.scratch, .scratch_len = r.scratch_len};
    op->backward(&r.node, (const struct tview *const *)r.in,
                 (const struct tview *const[]){&r.out[0]},
                 (const struct tview *const[]){&r.out[0]}, dinp, &ctx);
    opcheck_free(&r);
}

static void snapshot_same(const struct snapshot *a, const struct snapshot *b, const char *what)
{
    CHECK_MSG(a->ny == b->ny && memcmp(a->y, b->y, (size_t)a->ny * sizeof(float)) == 0,
              "%s: forward differs between thread splits", what);
    for (int i = 0; i < 3; i++)
        CHECK_MSG(a->nd[i] == b->nd[i] &&
                      (!a->d[i] || memcmp(a->d[i], b->d[i], (size_t)a->nd[i] * 4) == 0),
                  "%s: gradient %d differs between thread splits", what, i);
}

static void snapshot_free(struct snapshot *s)
{
    free(s->y);
    for (int i = 0; i < 3; i++)
        free(s->d[i]);
}

/* Shapes large enough that every loop is cut into pieces; the reverse check
 * mode runs the pieces last first. Results must not change by a bit, and the
 * convolutions must still match the direct reference. */
TEST(thread_splits_do_not_change_results)
{
    parallel_set_threads(4);
    struct {
        const char *name;
        const struct op *op;
        struct conv_case c;
        int is_conv;
    } cases[] = {
        {"conv im2col", &op_conv, {"im2col", 2, 8, 24, 24, 8, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}, 1, NULL, 1}, 1},
        {"conv depthwise", &op_conv, {"depthwise", 2, 16, 24, 24, 16, 3, 3, 2, 2, 1, 1, {1, 1, 1, 1}, 16, NULL, 1}, 1},
        {"conv 1x1", &op_conv, {"1x1", 2, 16, 20, 20, 8, 1, 1, 1, 1, 1, 1, {0, 0, 0, 0}, 1, NULL, 1}, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct conv_case *c = &cases[i].c;
        struct tview x = tensor4(c->N, c->C, c->H, c->W, 900 + i);
        struct tview w = tensor4(c->M, c->C / c->group, c->kh, c->kw, 910 + i);
        struct tview b = opcheck_tensor(1, (int64_t[]){c->M}, 920 + i);
        struct attr a[] = {OPCHECK_INTS("strides", c->sh, c->sw), OPCHECK_INT("group", c->group),
                           OPCHECK_INTS("pads", c->pads[0], c->pads[1], c->pads[2], c->pads[3])};
        struct tview *in[] = {&x, &w, &b};
        struct snapshot s0, s1;
        parallel_set_check(PARALLEL_CHECK_OFF);
        snapshot_take(&s0, &op_conv, 13, a, 3, in, 3, 7);
        parallel_set_check(PARALLEL_CHECK_REVERSE);
        snapshot_take(&s1, &op_conv, 13, a, 3, in, 3, 7);
        parallel_set_check(PARALLEL_CHECK_OFF);
        snapshot_same(&s0, &s1, cases[i].name);
        int Ho = (c->H + c->pads[0] + c->pads[2] - c->kh) / c->sh + 1;
        int Wo = (c->W + c->pads[1] + c->pads[3] - c->kw) / c->sw + 1;
        double *ref = malloc((size_t)s1.ny * sizeof *ref);
        ref_conv(ref, tview_f(&x), tview_f(&w), tview_f(&b), c, c->pads[0], c->pads[1], Ho, Wo);
        double worst = 0;
        for (int64_t k = 0; k < s1.ny; k++)
            worst = fmax(worst, fabs(s1.y[k] - ref[k]) / (1 + fabs(ref[k])));
        CHECK_MSG(worst < 1e-5, "%s: differs from the reference by %g", cases[i].name, worst);
        free(ref);
        snapshot_free(&s0);
        snapshot_free(&s1);
        free(x.data);
        free(w.data);
        free(b.data);
    }

    struct tview x = tensor4(2, 16, 30, 30, 950);
    int64_t c16 = 16;
    struct tview s = opcheck_tensor(1, &c16, 951), b = opcheck_tensor(1, &c16, 952),
                 m = opcheck_tensor(1, &c16, 953), v = opcheck_tensor(1, &c16, 954);
    for (int c = 0; c < 16; c++)
        tview_f(&v)[c] = fabsf(tview_f(&v)[c]) + 0.5f;
    struct attr mp[] = {OPCHECK_INTS("kernel_shape", 3, 3), OPCHECK_INTS("strides", 2, 2),
                        OPCHECK_INTS("pads", 1, 1, 1, 1)};
    struct attr ap[] = {OPCHECK_INTS("kernel_shape", 3, 3), OPCHECK_INTS("pads", 1, 1, 1, 1),
                        OPCHECK_INT("count_include_pad", 1)};
    struct {
        const char *name;
        const struct op *op;
        struct attr *a;
        int na;
        struct tview *in[5];
        int n_in;
        unsigned mask;
    } others[] = {
        {"max pool", &op_max_pool, mp, 3, {&x}, 1, 1},
        {"average pool", &op_average_pool, ap, 3, {&x}, 1, 1},
        {"global average pool", &op_global_average_pool, NULL, 0, {&x}, 1, 1},
        {"global max pool", &op_global_max_pool, NULL, 0, {&x}, 1, 1},
        {"batch norm", &op_batch_normalization, NULL, 0, {&x, &s, &b, &m, &v}, 5, 7},
    };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        struct snapshot s0, s1;
        parallel_set_check(PARALLEL_CHECK_OFF);
        snapshot_take(&s0, others[i].op, 13, others[i].a, others[i].na, others[i].in,
                      others[i].n_in, others[i].mask);
        parallel_set_check(PARALLEL_CHECK_REVERSE);
        snapshot_take(&s1, others[i].op, 13, others[i].a, others[i].na, others[i].in,
                      others[i].n_in, others[i].mask);
        parallel_set_check(PARALLEL_CHECK_OFF);
        snapshot_same(&s0, &s1, others[i].name);
        snapshot_free(&s0);
        snapshot_free(&s1);
    }
    /* Pad: forward rows are split */
    struct tview pads;
    struct opcheck_run r;
    float *y0 = NULL;
    int64_t ny = 0;
    for (int pass = 0; pass < 2; pass++) {
        parallel_set_check(pass ? PARALLEL_CHECK_REVERSE : PARALLEL_CHECK_OFF);
        CHECK(run_pad11(&r, &x, (int64_t[]){0, 0, 2, 3, 0, 0, 1, 2}, 8, "reflect", NULL,
                        &pads) == 0);
        if (!pass) {
            ny = tview_count(&r.out[0]);
            y0 = malloc((size_t)ny * sizeof *y0);
            memcpy(y0, r.out[0].data, (size_t)ny * sizeof *y0);
        } else {
            CHECK(memcmp(y0, r.out[0].data, (size_t)ny * sizeof *y0) == 0);
        }
        opcheck_free(&r);
        free(pads.data);
    }
    parallel_set_check(PARALLEL_CHECK_OFF);
    parallel_set_threads(0);
    free(y0);
    free(x.data);
    free(s.data);
    free(b.data);
    free(m.data);
    free(v.data);
}

/* Every convolution test, with sgemm (where the CPU has AVX-512) and with
 * the BLAS fallback every machine runs. */
static void run_conv_tests(const char *mode)
{
    char name[96];
#define RUN_MODE(t) (snprintf(name, sizeof name, "%s (%s)", #t, mode), check_run(test_##t, name))
    RUN_MODE(conv_matches_direct_reference);
    RUN_MODE(conv_hand_worked);
    RUN_MODE(conv_sgemm_shapes);
    RUN_MODE(conv_scratch_sizes);
    RUN_MODE(thread_splits_do_not_change_results);
#undef RUN_MODE
}

int main(void)
{
    if (sgemm_available())
        run_conv_tests("sgemm");
    else
        SKIP(conv_tests_with_sgemm, "this CPU has no AVX-512: only the fallback runs");
    sgemm_set_enabled(0);
    run_conv_tests("fallback");
    sgemm_set_enabled(1);
    RUN(conv_refusals);
    RUN(pool_hand_worked);
    RUN(global_pool_hand_worked);
    RUN(pool_gradients);
    RUN(max_pool_ties_route_to_first);
    RUN(max_pool_ties_agree_in_every_mode);
    RUN(pool_refusals);
    RUN(batch_norm_hand_worked);
    RUN(batch_norm_reference_and_gradients);
    RUN(batch_norm_training);
    RUN(batch_norm_refusals);
    RUN(pad_hand_worked);
    RUN(pad_gradients);
    RUN(pad_refusals);
    return check_done();
}
