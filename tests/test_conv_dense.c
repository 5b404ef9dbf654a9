/*
 * test_conv_dense.c — conv2d, dense, flatten and dropout, each against an
 * independent reference:
 *   - hand-worked convolutions (numbers in the comments),
 *   - a direct 7-loop convolution and a naive matrix product in double,
 *   - central finite differences for every gradient,
 *   - a direct (loop) backward for a batch large enough to be processed in
 *     several chunks,
 *   - statistical properties of dropout.
 * Layers are built by hand, the way the model does it: configure, allocate
 * one buffer per tensor that params() lists, point w/grad into them, and give
 * the ctx an im2col buffer of col_size() floats.
 */
#include "check.h"
#include "layers/layer.h"
#include "rng.h"
#include "status.h"
#include "tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- a layer built by hand ------------------------------------------------ */

struct tlayer {
    const struct layer_ops *ops;
    struct layer l;
    int np;
    struct param_desc desc[LAYER_MAX_PARAMS];
    size_t size[LAYER_MAX_PARAMS];
    float *param[LAYER_MAX_PARAMS], *grad[LAYER_MAX_PARAMS];
    float *col;
    size_t col_len;
    void *state;
    int nmax;
};

static struct layer_config conv_cfg(int filters, int k, int stride, enum padding pad,
                                    int use_bias, enum activation act)
{
    struct layer_config c = {.kind = LAYER_CONV2D, .activation = act, .filters = filters,
                             .kernel = k, .stride = stride, .padding = pad,
                             .use_bias = use_bias};
    strcpy(c.name, "conv_t");
    return c;
}

static struct layer_config dense_cfg(int units, int use_bias, enum activation act)
{
    struct layer_config c = {.kind = LAYER_DENSE, .activation = act, .units = units,
                             .use_bias = use_bias};
    strcpy(c.name, "dense_t");
    return c;
}

/* Configures and allocates; returns the configure status (buffers only on 0). */
static int tl_make(struct tlayer *t, const struct layer_ops *ops, struct layer_config cfg,
                   struct shape in, int nmax, char *err)
{
    memset(t, 0, sizeof *t);
    t->ops = ops;
    t->l.cfg = cfg;
    t->l.in = in;
    t->nmax = nmax;
    int rc = ops->configure(&t->l, err);
    if (rc)
        return rc;
    t->np = ops->params(&t->l, t->desc);
    for (int p = 0; p < t->np; p++) {
        size_t sz = 1;
        for (int d = 0; d < t->desc[p].ndim; d++)
            sz *= (size_t)t->desc[p].dims[d];
        t->size[p] = sz;
        t->param[p] = tensor_alloc(sz);
        t->grad[p] = tensor_alloc(sz);
        if (strcmp(t->desc[p].name, "kernel") == 0) {
            t->l.w.kernel = t->param[p];
            t->l.grad.kernel = t->grad[p];
        } else if (strcmp(t->desc[p].name, "bias") == 0) {
            t->l.w.bias = t->param[p];
            t->l.grad.bias = t->grad[p];
        }
    }
    t->col_len = ops->col_size ? ops->col_size(&t->l, nmax) : 0;
    t->col = tensor_alloc(t->col_len ? t->col_len : 1);
    size_t ss = ops->state_size(&t->l, nmax);
    if (ss) {
        t->state = calloc(1, ss);
        ops->state_bind(&t->l, t->state, nmax);
    }
    return 0;
}

static void tl_free(struct tlayer *t)
{
    for (int p = 0; p < t->np; p++) {
        tensor_free(t->param[p]);
        tensor_free(t->grad[p]);
    }
    tensor_free(t->col);
    free(t->state);
}

static struct layer_ctx tl_ctx(struct tlayer *t, int training, struct rng *r)
{
    return (struct layer_ctx){.col = t->col, .col_len = t->col_len, .training = training,
                              .rng = r};
}

static void tl_zero_grads(struct tlayer *t)
{
    for (int p = 0; p < t->np; p++)
        memset(t->grad[p], 0, t->size[p] * sizeof(float));
}

static void fill_uniform(float *x, size_t n, struct rng *r, double lo, double hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(lo + (hi - lo) * rng_uniform(r));
}

static void tl_randomize(struct tlayer *t, struct rng *r)
{
    for (int p = 0; p < t->np; p++)
        fill_uniform(t->param[p], t->size[p], r, -1.0, 1.0);
}

/* ---- references ---------------------------------------------------------- */

/* TensorFlow's output size and leading padding, written out independently of
 * conv2d.c. */
static void ref_geometry(int in, int k, int s, enum padding pad, int *out, int *before)
{
    if (pad == PADDING_SAME) {
        *out = (in + s - 1) / s;
        int total = (*out - 1) * s + k - in;
        *before = total > 0 ? total / 2 : 0;
    } else {
        *out = (in - k) / s + 1;
        *before = 0;
    }
}

static void ref_activate(double *z, int rows, int len, enum activation act)
{
    for (int r = 0; r < rows; r++) {
        double *v = z + (size_t)r * len;
        if (act == ACT_RELU) {
            for (int i = 0; i < len; i++)
                v[i] = v[i] > 0 ? v[i] : 0;
        } else if (act == ACT_SIGMOID) {
            for (int i = 0; i < len; i++)
                v[i] = 1.0 / (1.0 + exp(-v[i]));
        } else if (act == ACT_SOFTMAX) {
            double m = v[0], s = 0;
            for (int i = 1; i < len; i++)
                m = v[i] > m ? v[i] : m;
            for (int i = 0; i < len; i++)
                s += exp(v[i] - m);
            for (int i = 0; i < len; i++)
                v[i] = exp(v[i] - m) / s;
        }
    }
}

/* The direct convolution, one output element at a time (batch, row, column,
 * filter, then the kernel window and channels). `mag` receives Σ |w·x| per
 * output, the scale of its float rounding error. */
static void ref_conv(double *out, double *mag, const float *in, const float *w, const float *b,
                     int n, int H, int W, int C, int F, int k, int s, enum padding pad,
                     enum activation act)
{
    int Ho, Wo, pt, pl;
    ref_geometry(H, k, s, pad, &Ho, &pt);
    ref_geometry(W, k, s, pad, &Wo, &pl);
    for (int b0 = 0; b0 < n; b0++)
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++)
                for (int f = 0; f < F; f++) {
                    double acc = b ? b[f] : 0.0, m = b ? fabs(b[f]) : 0.0;
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++)
                            for (int c = 0; c < C; c++) {
                                int iy = oy * s - pt + ky, ix = ox * s - pl + kx;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                                    continue;
                                double t = (double)in[(((size_t)b0 * H + iy) * W + ix) * C + c] *
                                           w[(((size_t)ky * k + kx) * C + c) * F + f];
                                acc += t;
                                m += fabs(t);
                            }
                    size_t o = (((size_t)b0 * Ho + oy) * Wo + ox) * F + f;
                    out[o] = acc;
                    if (mag)
                        mag[o] = m;
                }
    ref_activate(out, n * Ho * Wo, F, act);
}

/* Compares a float result with a double reference. The float GEMM's rounding
 * error is at most about K·u·Σ|terms| and in practice ~√K·u·Σ|terms|
 * (u = 6e-8); 1e-5·Σ|terms| + 1e-6 covers every K used here, while an
 * indexing mistake moves an output by a whole term (~0.1 or more). An
 * activation only shrinks errors (its slope is ≤ 1). */
static int compare_out(const float *got, const double *want, const double *mag, size_t n,
                       const char *what)
{
    int bad = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(got[i] - want[i]), tol = 1e-5 * (mag ? mag[i] : 1.0) + 1e-6;
        if (d > worst)
            worst = d;
        if (!(d <= tol)) {
            if (bad < 3)
                printf("#   %s: [%zu] got %.9g want %.9g (|diff| %.3g > %.3g)\n", what, i,
                       got[i], want[i], d, tol);
            bad++;
        }
    }
    printf("#   %s: %zu values, max |diff| %.3g\n", what, n, worst);
    return bad;
}

/* ---- conv2d forward ------------------------------------------------------- */

TEST(conv_configure_shapes_and_errors)
{
    char err[STRATA_ERR_LEN];
    struct tlayer t;
    /* valid: floor((7 − 3)/2) + 1 = 3; same: ceil(7/2) = 4 */
    CHECK_EQ_INT(tl_make(&t, &conv2d_ops, conv_cfg(5, 3, 2, PADDING_VALID, 1, ACT_NONE),
                         (struct shape){7, 9, 2}, 1, err), 0);
    CHECK_EQ_INT(t.l.out.h, 3);
    CHECK_EQ_INT(t.l.out.w, 4);
    CHECK_EQ_INT(t.l.out.c, 5);
    CHECK_EQ_INT(t.np, 2);
    CHECK(strcmp(t.desc[0].name, "kernel") == 0 && t.desc[0].ndim == 4);
    CHECK(t.desc[0].dims[0] == 3 && t.desc[0].dims[1] == 3 && t.desc[0].dims[2] == 2 &&
          t.desc[0].dims[3] == 5 && t.desc[0].trainable);
    CHECK(strcmp(t.desc[1].name, "bias") == 0 && t.desc[1].ndim == 1 &&
          t.desc[1].dims[0] == 5);
    tl_free(&t);

    CHECK_EQ_INT(tl_make(&t, &conv2d_ops, conv_cfg(5, 3, 2, PADDING_SAME, 0, ACT_NONE),
                         (struct shape){7, 9, 2}, 1, err), 0);
    CHECK_EQ_INT(t.l.out.h, 4);
    CHECK_EQ_INT(t.l.out.w, 5);
    CHECK_EQ_INT(t.np, 1);
    tl_free(&t);

    struct {
        struct layer_config cfg;
        struct shape in;
        const char *field;
    } bad[] = {
        {conv_cfg(0, 3, 1, PADDING_VALID, 1, ACT_NONE), {8, 8, 3}, "filters"},
        {conv_cfg(4, 0, 1, PADDING_VALID, 1, ACT_NONE), {8, 8, 3}, "kernel_size"},
        {conv_cfg(4, 3, -1, PADDING_VALID, 1, ACT_NONE), {8, 8, 3}, "strides"},
        {conv_cfg(4, 5, 1, PADDING_VALID, 1, ACT_NONE), {4, 8, 3}, "kernel_size"},
        {conv_cfg(4, 3, 1, PADDING_VALID, 1, ACT_NONE), {8, 8, 0}, "channel"},
        {conv_cfg(4, 3, 1, (enum padding)7, 1, ACT_NONE), {8, 8, 3}, "padding"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        int rc = tl_make(&t, &conv2d_ops, bad[i].cfg, bad[i].in, 1, err);
        CHECK_MSG(rc == STRATA_E_ARG, "case %zu returned %d", i, rc);
        CHECK_MSG(strstr(err, "conv_t") && strstr(err, bad[i].field),
                  "case %zu: message \"%s\" should name the layer and '%s'", i, err,
                  bad[i].field);
    }
    /* The same kernel that is too large for a valid convolution is fine with
     * same padding. */
    CHECK_EQ_INT(tl_make(&t, &conv2d_ops, conv_cfg(4, 5, 1, PADDING_SAME, 1, ACT_NONE),
                         (struct shape){4, 8, 3}, 1, err), 0);
    CHECK(t.l.out.h == 4 && t.l.out.w == 8);
    tl_free(&t);
}

/* Input (one channel)      filter 0      filter 1      bias
 *   1 2 3                  1 2           0 -1          0.5, -1
 *   4 5 6                  3 4           1  0
 *   7 8 9
 * valid, stride 1 (2×2 output):
 *   f0 at (0,0) = 1·1 + 2·2 + 3·4 + 4·5 = 37, (0,1) = 2+6+15+24 = 47,
 *      (1,0) = 4+10+21+32 = 67, (1,1) = 5+12+24+36 = 77   → +0.5
 *   f1 = −in(y,x+1) + in(y+1,x) = −2+4, −3+5, −5+7, −6+8 = 2 everywhere → −1
 * same, stride 2: out = ceil(3/2) = 2, pad_total = (2−1)·2 + 2 − 3 = 1, all of
 * it after (pad_top = 1/2 = 0), so windows start at rows/columns 0 and 2:
 *   (0,0) [1 2; 4 5]: f0 = 37,          f1 = −2 + 4 = 2
 *   (0,1) [3 ·; 6 ·]: f0 = 3 + 3·6 = 21, f1 = 6
 *   (1,0) [7 8; · ·]: f0 = 7 + 2·8 = 23, f1 = −8
 *   (1,1) [9 ·; · ·]: f0 = 9,            f1 = 0
 */
TEST(conv_hand_worked)
{
    char err[STRATA_ERR_LEN];
    const float in[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    /* HWIO [2][2][1][2]: element (ky, kx, 0, f) at (ky·2 + kx)·2 + f */
    const float w[8] = {1, 0, 2, -1, 3, 1, 4, 0};
    const float b[2] = {0.5f, -1.0f};
    const float want_valid[8] = {37.5f, 1, 47.5f, 1, 67.5f, 1, 77.5f, 1};
    const float want_same[8] = {37.5f, 1, 21.5f, 5, 23.5f, -9, 9.5f, -1};
    const enum padding pads[2] = {PADDING_VALID, PADDING_SAME};
    const float *wants[2] = {want_valid, want_same};
    for (int i = 0; i < 2; i++) {
        struct tlayer t;
        CHECK_EQ_INT(tl_make(&t, &conv2d_ops, conv_cfg(2, 2, i + 1, pads[i], 1, ACT_NONE),
                             (struct shape){3, 3, 1}, 1, err), 0);
        CHECK(t.l.out.h == 2 && t.l.out.w == 2 && t.l.out.c == 2);
        memcpy(t.l.w.kernel, w, sizeof w);
        memcpy(t.l.w.bias, b, sizeof b);
        float out[8];
        struct layer_ctx ctx = tl_ctx(&t, 0, NULL);
        t.ops->forward(&t.l, out, in, 1, &ctx);
        for (int j = 0; j < 8; j++)
            CHECK_NEAR(out[j], wants[i][j], 1e-5);
        tl_free(&t);
    }
}

struct conv_case {
    int n, H, W, C, F, k, s;
    enum padding pad;
    int bias;
    enum activation act;
};

static void check_conv_forward(const struct conv_case *c, uint64_t seed)
{
    char err[STRATA_ERR_LEN];
    struct tlayer t;
    int rc = tl_make(&t, &conv2d_ops, conv_cfg(c->F, c->k, c->s, c->pad, c->bias, c->act),
                     (struct shape){c->H, c->W, c->C}, c->n, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc)
        return;
    struct rng r;
    rng_seed(&r, seed);
    tl_randomize(&t, &r);
    size_t nin = (size_t)c->n * shape_size(t.l.in), nout = (size_t)c->n * shape_size(t.l.out);
    float *in = tensor_alloc(nin), *out = tensor_alloc(nout);
    double *want = malloc(nout * sizeof(double)), *mag = malloc(nout * sizeof(double));
    fill_uniform(in, nin, &r, -1.0, 1.0);
    struct layer_ctx ctx = tl_ctx(&t, 0, NULL);
    t.ops->forward(&t.l, out, in, c->n, &ctx);
    ref_conv(want, mag, in, t.l.w.kernel, c->bias ? t.l.w.bias : NULL, c->n, c->H, c->W, c->C,
             c->F, c->k, c->s, c->pad, c->act);
    char what[128];
    snprintf(what, sizeof what, "n%d %dx%dx%d F%d k%d s%d %s%s act%d", c->n, c->H, c->W, c->C,
             c->F, c->k, c->s, c->pad == PADDING_SAME ? "same" : "valid",
             c->bias ? " bias" : "", (int)c->act);
    CHECK_MSG(compare_out(out, want, mag, nout, what) == 0, "%s", what);
    /* A smaller batch than the scratch was sized for (as when a model's
     * workspace serves a last, partial batch): the last image alone. */
    if (c->n > 1) {
        size_t one = shape_size(t.l.out);
        CHECK(conv2d_ops.col_size(&t.l, 1) <= t.col_len);
        t.ops->forward(&t.l, out, in + (c->n - 1) * shape_size(t.l.in), 1, &ctx);
        CHECK_MSG(compare_out(out, want + (c->n - 1) * one, mag + (c->n - 1) * one, one,
                              "last image alone") == 0, "%s, n = 1", what);
    }
    tensor_free(in);
    tensor_free(out);
    free(want);
    free(mag);
    tl_free(&t);
}

TEST(conv_forward_matches_direct_convolution)
{
    const struct conv_case cases[] = {
        {2, 5, 7, 3, 4, 3, 1, PADDING_VALID, 1, ACT_NONE},
        {3, 6, 5, 2, 3, 3, 2, PADDING_SAME, 0, ACT_NONE},
        {2, 7, 7, 4, 5, 5, 1, PADDING_SAME, 1, ACT_RELU},
        {2, 8, 6, 3, 2, 1, 1, PADDING_VALID, 1, ACT_NONE},  /* 1×1 stride 1: no im2col */
        {2, 9, 9, 2, 3, 1, 2, PADDING_SAME, 1, ACT_SIGMOID},
        {1, 5, 5, 3, 6, 5, 2, PADDING_VALID, 1, ACT_NONE},
        {2, 4, 9, 5, 3, 3, 2, PADDING_VALID, 1, ACT_SOFTMAX},
        {2, 6, 7, 3, 4, 4, 3, PADDING_SAME, 1, ACT_NONE},   /* even kernel, odd padding */
        {1, 3, 3, 2, 4, 5, 1, PADDING_SAME, 1, ACT_NONE},   /* kernel larger than input */
        {2, 6, 5, 3, 70, 3, 1, PADDING_SAME, 1, ACT_RELU},
        {1, 3, 3, 2, 2100, 3, 1, PADDING_SAME, 1, ACT_RELU}, /* > 2048 filters: out = col·W */
        /* Small windows (k·k·C ≤ 32) with 16, 32 or 48 filters: the direct
         * forward on AVX-512 machines — interior blocks, a last block that
         * overlaps the previous one, padded edges, no bias, one channel. */
        {3, 20, 21, 3, 32, 3, 1, PADDING_VALID, 1, ACT_RELU},
        {2, 17, 19, 3, 16, 3, 1, PADDING_SAME, 0, ACT_RELU},
        {2, 12, 13, 3, 48, 3, 1, PADDING_SAME, 1, ACT_NONE},
        {2, 14, 11, 1, 32, 5, 1, PADDING_SAME, 1, ACT_RELU},
        {1, 10, 8, 3, 16, 3, 1, PADDING_VALID, 1, ACT_RELU}, /* 6 columns: too narrow, GEMM */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_conv_forward(&cases[i], 100 + i);
}

/* The direct forward for small windows (conv2d.c, AVX-512 only) computes
 * each output value as one chain of fused multiply-adds over the window's
 * terms in order (ky, kx, c), padding skipped, then bias, then relu — so
 * its result is known exactly: compare bit for bit with that chain computed
 * here with fmaf, for the whole batch and for one image alone. */
TEST(conv_small_window_forward_is_an_exact_fma_chain)
{
    const struct conv_case cases[] = {
        {3, 13, 21, 3, 32, 3, 1, PADDING_VALID, 1, ACT_RELU},
        {2, 11, 17, 3, 16, 3, 1, PADDING_SAME, 0, ACT_RELU},
        {2, 9, 12, 3, 48, 3, 1, PADDING_SAME, 1, ACT_NONE},
        {1, 10, 14, 1, 32, 5, 1, PADDING_SAME, 1, ACT_RELU},
    };
    char err[STRATA_ERR_LEN];
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const struct conv_case *c = &cases[ci];
        struct tlayer t;
        int rc = tl_make(&t, &conv2d_ops, conv_cfg(c->F, c->k, c->s, c->pad, c->bias, c->act),
                         (struct shape){c->H, c->W, c->C}, c->n, err);
        CHECK_MSG(rc == 0, "%s", err);
        if (rc)
            continue;
        struct rng r;
        rng_seed(&r, 300 + ci);
        tl_randomize(&t, &r);
        const int Ho = t.l.out.h, Wo = t.l.out.w, F = c->F;
        int ho, pt, wo, pl;
        ref_geometry(c->H, c->k, 1, c->pad, &ho, &pt);
        ref_geometry(c->W, c->k, 1, c->pad, &wo, &pl);
        CHECK(ho == Ho && wo == Wo);
        size_t nin = (size_t)c->n * shape_size(t.l.in), one = shape_size(t.l.out);
        float *in = tensor_alloc(nin), *out = tensor_alloc(c->n * one);
        float *alone = tensor_alloc(one), *want = tensor_alloc(c->n * one);
        fill_uniform(in, nin, &r, -1.0, 1.0);
        struct layer_ctx ctx = tl_ctx(&t, 0, NULL);
        t.ops->forward(&t.l, out, in, c->n, &ctx);
        for (int b = 0; b < c->n; b++)
            for (int oy = 0; oy < Ho; oy++)
                for (int ox = 0; ox < Wo; ox++)
                    for (int f = 0; f < F; f++) {
                        float acc = 0;
                        for (int ky = 0; ky < c->k; ky++)
                            for (int kx = 0; kx < c->k; kx++)
                                for (int ch = 0; ch < c->C; ch++) {
                                    int iy = oy - pt + ky, ix = ox - pl + kx;
                                    if (iy < 0 || iy >= c->H || ix < 0 || ix >= c->W)
                                        continue;
                                    float x = in[(((size_t)b * c->H + iy) * c->W + ix) * c->C + ch];
                                    float w = t.l.w.kernel[((size_t)(ky * c->k + kx) * c->C + ch) * F + f];
                                    acc = fmaf(x, w, acc);
                                }
                        if (c->bias)
                            acc += t.l.w.bias[f];
                        if (c->act == ACT_RELU)
                            acc = acc > 0 ? acc : 0;
                        want[(((size_t)b * Ho + oy) * Wo + ox) * F + f] = acc;
                    }
        CHECK_MSG(memcmp(out, want, c->n * one * sizeof(float)) == 0,
                  "case %zu: the batch differs from the fmaf chain", ci);
        t.ops->forward(&t.l, alone, in + (c->n - 1) * shape_size(t.l.in), 1, &ctx);
        CHECK_MSG(memcmp(alone, want + (c->n - 1) * one, one * sizeof(float)) == 0,
                  "case %zu: the last image alone differs", ci);
        tensor_free(in);
        tensor_free(out);
        tensor_free(alone);
        tensor_free(want);
        tl_free(&t);
    }
}

/* Batches big enough to be split into several chunks (with chunk boundaries
 * inside images), covering each way conv2d.c builds its GEMM operand: the
 * 1×1 shortcut, full im2col, and the row-expanded form it uses for stride-1
 * layers over large images (with padding on every side, with many filters,
 * and — the 2×2 kernel over 512 channels — with chunks smaller than one
 * image); the last output is large enough to be written with non-temporal
 * stores. With AVX-512, the cases with 16, 32, 48 and 64 filters take the
 * direct weight gradient (one to four vectors per dW row, blocks that do and
 * do not divide the rows of dW, pixel tiles that do and do not divide a
 * chunk). */
static const struct conv_case multi_chunk_cases[] = {
    {6, 40, 40, 16, 16, 3, 1, PADDING_VALID, 1, ACT_RELU},
    {16, 24, 24, 16, 64, 3, 1, PADDING_SAME, 1, ACT_NONE},
    {20, 64, 64, 4, 16, 1, 1, PADDING_VALID, 1, ACT_SIGMOID},
    {2, 34, 33, 12, 8, 3, 1, PADDING_SAME, 1, ACT_RELU},
    {2, 36, 32, 16, 64, 5, 1, PADDING_SAME, 1, ACT_NONE},
    {1, 40, 40, 512, 8, 2, 1, PADDING_SAME, 1, ACT_NONE},
    {3, 9, 11, 3, 5, 3, 2, PADDING_SAME, 1, ACT_NONE},
    {64, 64, 64, 4, 16, 1, 1, PADDING_VALID, 1, ACT_RELU}, /* 16.8 MB: streamed stores */
    {2, 4, 3, 2, 2100, 3, 1, PADDING_SAME, 1, ACT_SIGMOID}, /* > 2048 filters: out = col·W */
    {100, 40, 40, 3, 32, 3, 1, PADDING_VALID, 1, ACT_RELU}, /* direct forward, 18.5 MB streamed */
    {16, 40, 40, 5, 48, 3, 1, PADDING_SAME, 1, ACT_RELU}, /* 48 filters, K = 45 */
};
#define N_MULTI_CHUNK (sizeof multi_chunk_cases / sizeof multi_chunk_cases[0])

TEST(conv_forward_multi_chunk)
{
    for (size_t i = 0; i < N_MULTI_CHUNK; i++) {
        const struct conv_case *c = &multi_chunk_cases[i];
        if (c->n >= 6) {
            /* The scratch stops growing with the batch: one chunk no longer
             * holds the whole batch. */
            char err[STRATA_ERR_LEN];
            struct tlayer t;
            CHECK_EQ_INT(tl_make(&t, &conv2d_ops,
                                 conv_cfg(c->F, c->k, c->s, c->pad, c->bias, c->act),
                                 (struct shape){c->H, c->W, c->C}, c->n, err), 0);
            CHECK_MSG(conv2d_ops.col_size(&t.l, c->n) == conv2d_ops.col_size(&t.l, 2 * c->n),
                      "case %zu fits in one chunk", i);
            tl_free(&t);
        }
        check_conv_forward(c, 200 + i);
    }
}

/* ---- gradient checks ------------------------------------------------------ */

/* L = Σ r ⊙ out, accumulated in double. */
static double loss_of(struct tlayer *t, const float *in, float *out, const float *rw, int n)
{
    struct layer_ctx ctx = tl_ctx(t, 1, NULL);
    t->ops->forward(&t->l, out, in, n, &ctx);
    size_t nout = (size_t)n * shape_size(t->l.out);
    double L = 0;
    for (size_t i = 0; i < nout; i++)
        L += (double)rw[i] * out[i];
    return L;
}

/* Whether nudging *x by ±eps moves any pre-activation of the layer across
 * zero. `lin` is the same layer without its activation (sharing parameters);
 * central differences are meaningless across relu's kink, so such elements
 * are skipped. */
static int crosses_kink(struct tlayer *lin, float *x, float eps, const float *in, float *z0,
                        float *z1, int n)
{
    size_t nout = (size_t)n * shape_size(lin->l.out);
    struct layer_ctx ctx = tl_ctx(lin, 0, NULL);
    float x0 = *x;
    *x = x0 + eps;
    lin->ops->forward(&lin->l, z0, in, n, &ctx);
    *x = x0 - eps;
    lin->ops->forward(&lin->l, z1, in, n, &ctx);
    *x = x0;
    for (size_t i = 0; i < nout; i++)
        if ((z0[i] > 0) != (z1[i] > 0))
            return 1;
    return 0;
}

/* Central differences (L(x+ε) − L(x−ε)) / 2ε against the analytic gradient,
 * for every element of the input and of every parameter.
 *
 * Tolerance: ε = 1e-2 in float. Truncation error is ε²/6 · L''' — at most
 * ~1e-5 here (sigmoid's third derivative is < 1/8); rounding: only the
 * outputs whose window contains the nudged element change, each by a float
 * rounding of ~1e-7·|out|, so L moves by ~1e-6 spuriously and the quotient by
 * ~1e-4. We accept |num − ana| ≤ 1e-2·max(|num|, |ana|) + 1e-3, an order of
 * magnitude above both, while a wrong index or a missing term is off by a
 * whole gradient contribution (≥ 1e-2 relative and usually O(1)). */
static void gradcheck(const struct layer_ops *ops, struct layer_config cfg, struct shape ins,
                      int n, uint64_t seed, const char *what)
{
    char err[STRATA_ERR_LEN];
    struct tlayer t, lin;
    int rc = tl_make(&t, ops, cfg, ins, n, err);
    CHECK_MSG(rc == 0, "%s: %s", what, err);
    if (rc)
        return;
    struct layer_config lcfg = cfg;
    lcfg.activation = ACT_NONE;
    CHECK_EQ_INT(tl_make(&lin, ops, lcfg, ins, n, err), 0);
    struct rng r;
    rng_seed(&r, seed);
    tl_randomize(&t, &r);
    for (int p = 0; p < t.np; p++) {
        tensor_free(lin.param[p]);
        lin.param[p] = t.param[p];
    }
    lin.l.w = t.l.w;

    size_t nin = (size_t)n * shape_size(t.l.in), nout = (size_t)n * shape_size(t.l.out);
    float *in = tensor_alloc(nin), *out = tensor_alloc(nout), *rw = tensor_alloc(nout);
    float *dout = tensor_alloc(nout), *din = tensor_alloc(nin);
    float *z0 = tensor_alloc(nout), *z1 = tensor_alloc(nout);
    fill_uniform(in, nin, &r, -1.0, 1.0);
    fill_uniform(rw, nout, &r, -1.0, 1.0);

    /* Analytic: forward, then backward with dout = r. */
    loss_of(&t, in, out, rw, n);
    memcpy(dout, rw, nout * sizeof(float));
    tl_zero_grads(&t);
    struct layer_ctx ctx = tl_ctx(&t, 1, NULL);
    t.ops->backward(&t.l, din, dout, in, out, n, &ctx);

    const float eps = 1e-2f;
    int checked = 0, skipped = 0, bad = 0;
    double worst = 0;
    int kinks = cfg.activation == ACT_RELU;
    for (int which = -1; which < t.np; which++) {
        float *x = which < 0 ? in : t.param[which];
        const float *ana = which < 0 ? din : t.grad[which];
        size_t len = which < 0 ? nin : t.size[which];
        for (size_t i = 0; i < len; i++) {
            if (kinks && crosses_kink(&lin, &x[i], eps, in, z0, z1, n)) {
                skipped++;
                continue;
            }
            float x0 = x[i];
            x[i] = x0 + eps;
            double lp = loss_of(&t, in, out, rw, n);
            x[i] = x0 - eps;
            double lm = loss_of(&t, in, out, rw, n);
            x[i] = x0;
            double num = (lp - lm) / (2.0 * eps), d = fabs(num - ana[i]);
            double tol = 1e-2 * fmax(fabs(num), fabs(ana[i])) + 1e-3;
            if (d > worst)
                worst = d;
            if (!(d <= tol)) {
                if (bad < 5)
                    printf("#   %s: %s[%zu] numeric %.6g analytic %.6g\n", what,
                           which < 0 ? "input" : t.desc[which].name, i, num, ana[i]);
                bad++;
            }
            checked++;
        }
    }
    printf("#   %s: %d gradients checked, %d skipped at a relu kink, max |diff| %.3g\n", what,
           checked, skipped, worst);
    CHECK_MSG(bad == 0, "%s: %d gradients off", what, bad);
    /* Skipping must stay the exception, or the check would prove little. */
    CHECK_MSG(skipped * 10 < checked, "%s: %d skipped of %d", what, skipped, checked);

    for (int p = 0; p < t.np; p++)
        lin.param[p] = NULL;
    tensor_free(in);
    tensor_free(out);
    tensor_free(rw);
    tensor_free(dout);
    tensor_free(din);
    tensor_free(z0);
    tensor_free(z1);
    tl_free(&lin);
    tl_free(&t);
}

TEST(conv_gradients_finite_differences)
{
    gradcheck(&conv2d_ops, conv_cfg(4, 3, 1, PADDING_VALID, 1, ACT_NONE),
              (struct shape){5, 6, 3}, 2, 11, "conv 3x3 s1 valid");
    gradcheck(&conv2d_ops, conv_cfg(3, 3, 2, PADDING_SAME, 1, ACT_RELU),
              (struct shape){6, 5, 2}, 2, 12, "conv 3x3 s2 same relu");
    gradcheck(&conv2d_ops, conv_cfg(3, 1, 1, PADDING_VALID, 1, ACT_SIGMOID),
              (struct shape){5, 5, 2}, 2, 13, "conv 1x1 s1 sigmoid");
    gradcheck(&conv2d_ops, conv_cfg(2, 5, 2, PADDING_VALID, 0, ACT_SIGMOID),
              (struct shape){7, 6, 2}, 2, 14, "conv 5x5 s2 valid no-bias sigmoid");
    gradcheck(&conv2d_ops, conv_cfg(3, 4, 3, PADDING_SAME, 1, ACT_SOFTMAX),
              (struct shape){7, 5, 2}, 2, 15, "conv 4x4 s3 same softmax");
    gradcheck(&conv2d_ops, conv_cfg(65, 3, 1, PADDING_SAME, 1, ACT_RELU),
              (struct shape){4, 4, 2}, 1, 16, "conv 65 filters same relu");
}

TEST(dense_gradients_finite_differences)
{
    gradcheck(&dense_ops, dense_cfg(5, 1, ACT_SIGMOID), (struct shape){2, 2, 3}, 3, 21,
              "dense sigmoid");
    gradcheck(&dense_ops, dense_cfg(4, 1, ACT_RELU), (struct shape){1, 1, 9}, 3, 22,
              "dense relu");
    gradcheck(&dense_ops, dense_cfg(3, 0, ACT_SOFTMAX), (struct shape){1, 1, 6}, 2, 23,
              "dense softmax no-bias");
}

/* A direct backward in double, loop by loop, for dz already the
 * pre-activation gradient:
 *   db[f] = Σ dz,  dW[ky,kx,c,f] = Σ x[iy,ix,c]·dz[oy,ox,f],
 *   din[iy,ix,c] = Σ W[ky,kx,c,f]·dz[oy,ox,f]  over windows covering (iy,ix). */
static void ref_conv_backward(double *din, double *dw, double *db, const float *in,
                              const float *w, const float *dz, int n, int H, int W, int C,
                              int F, int k, int s, enum padding pad)
{
    int Ho, Wo, pt, pl;
    ref_geometry(H, k, s, pad, &Ho, &pt);
    ref_geometry(W, k, s, pad, &Wo, &pl);
    for (int b0 = 0; b0 < n; b0++)
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++)
                for (int f = 0; f < F; f++) {
                    double g = dz[(((size_t)b0 * Ho + oy) * Wo + ox) * F + f];
                    db[f] += g;
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++)
                            for (int c = 0; c < C; c++) {
                                int iy = oy * s - pt + ky, ix = ox * s - pl + kx;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                                    continue;
                                size_t xi = (((size_t)b0 * H + iy) * W + ix) * C + c;
                                size_t wi = (((size_t)ky * k + kx) * C + c) * F + f;
                                dw[wi] += in[xi] * g;
                                din[xi] += w[wi] * g;
                            }
                }
}

/* Compares float gradients with a double reference. dW sums n·Ho·Wo ≈ 10^4
 * products of size ≤ 1 in a float GEMM (error ~√P·u·Σ|terms| ≈ 1e-4 at
 * most here); db is summed in double; din sums only k²·F terms. So
 * 1e-4·|want| + 5e-4 absolute, while a dropped or misplaced term costs ~0.1. */
static int compare_grad(const float *got, const double *want, size_t n, const char *what)
{
    int bad = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(got[i] - want[i]);
        worst = d > worst ? d : worst;
        if (!(d <= 1e-4 * fabs(want[i]) + 5e-4)) {
            if (bad < 3)
                printf("#   %s[%zu] got %.7g want %.7g\n", what, i, got[i], want[i]);
            bad++;
        }
    }
    printf("#   %s: %zu values, max |diff| %.3g\n", what, n, worst);
    return bad;
}

/* The backward of batches split into several chunks, against the direct
 * loops; and gradients accumulate: a second backward doubles them. */
TEST(conv_backward_multi_chunk_and_accumulation)
{
    for (size_t ci = 0; ci < N_MULTI_CHUNK; ci++) {
        const struct conv_case *c = &multi_chunk_cases[ci];
        char err[STRATA_ERR_LEN];
        struct tlayer t;
        CHECK_EQ_INT(tl_make(&t, &conv2d_ops,
                             conv_cfg(c->F, c->k, c->s, c->pad, c->bias, c->act),
                             (struct shape){c->H, c->W, c->C}, c->n, err), 0);
        struct rng r;
        rng_seed(&r, 300 + ci);
        tl_randomize(&t, &r);
        size_t nin = (size_t)c->n * shape_size(t.l.in);
        size_t nout = (size_t)c->n * shape_size(t.l.out);
        size_t nw = t.size[0];
        float *in = tensor_alloc(nin), *out = tensor_alloc(nout), *g = tensor_alloc(nout);
        float *dout = tensor_alloc(nout), *din = tensor_alloc(nin), *dz = tensor_alloc(nout);
        double *rdin = calloc(nin, sizeof(double)), *rdw = calloc(nw, sizeof(double));
        double *rdb = calloc((size_t)c->F, sizeof(double));
        fill_uniform(in, nin, &r, -1.0, 1.0);
        fill_uniform(g, nout, &r, -1.0, 1.0);
        struct layer_ctx ctx = tl_ctx(&t, 1, NULL);
        t.ops->forward(&t.l, out, in, c->n, &ctx);

        /* dz: the pre-activation gradient, written out independently. */
        for (size_t i = 0; i < nout; i++) {
            double y = out[i];
            dz[i] = (float)(c->act == ACT_RELU ? (y > 0 ? g[i] : 0.0)
                            : c->act == ACT_SIGMOID ? g[i] * y * (1.0 - y) : g[i]);
        }
        ref_conv_backward(rdin, rdw, rdb, in, t.l.w.kernel, dz, c->n, c->H, c->W, c->C, c->F,
                          c->k, c->s, c->pad);

        tl_zero_grads(&t);
        memcpy(dout, g, nout * sizeof(float));
        t.ops->backward(&t.l, din, dout, in, out, c->n, &ctx);
        CHECK_MSG(compare_grad(din, rdin, nin, "din") == 0, "case %zu din", ci);
        CHECK_MSG(compare_grad(t.l.grad.kernel, rdw, nw, "dkernel") == 0, "case %zu dW", ci);
        CHECK_MSG(compare_grad(t.l.grad.bias, rdb, (size_t)c->F, "dbias") == 0, "case %zu db",
                  ci);

        /* Second pass on a fresh copy of dout (backward may overwrite it):
         * everything doubles. */
        memcpy(dout, g, nout * sizeof(float));
        t.ops->backward(&t.l, din, dout, in, out, c->n, &ctx);
        for (size_t i = 0; i < nin; i++)
            rdin[i] *= 2;
        for (size_t i = 0; i < nw; i++)
            rdw[i] *= 2;
        for (int f = 0; f < c->F; f++)
            rdb[f] *= 2;
        CHECK_MSG(compare_grad(din, rdin, nin, "din x2") == 0, "case %zu din x2", ci);
        CHECK_MSG(compare_grad(t.l.grad.kernel, rdw, nw, "dkernel x2") == 0, "case %zu dW x2",
                  ci);
        CHECK_MSG(compare_grad(t.l.grad.bias, rdb, (size_t)c->F, "dbias x2") == 0,
                  "case %zu db x2", ci);

        /* din may be NULL (first layer): the parameter gradients are the same. */
        float *gk = tensor_alloc(nw);
        memcpy(gk, t.l.grad.kernel, nw * sizeof(float));
        tl_zero_grads(&t);
        memcpy(dout, g, nout * sizeof(float));
        t.ops->backward(&t.l, NULL, dout, in, out, c->n, &ctx);
        int same = 1;
        for (size_t i = 0; i < nw; i++)
            same &= fabsf(2.0f * t.l.grad.kernel[i] - gk[i]) <= 1e-4f * (1 + fabsf(gk[i]));
        CHECK_MSG(same, "case %zu: backward without din changed dW", ci);

        /* dout_is_preact: handing in dz directly skips the activation. */
        tl_zero_grads(&t);
        memcpy(dout, dz, nout * sizeof(float));
        memset(din, 0, nin * sizeof(float));
        ctx.dout_is_preact = 1;
        t.ops->backward(&t.l, din, dout, in, out, c->n, &ctx);
        for (size_t i = 0; i < nin; i++)
            rdin[i] /= 2;
        CHECK_MSG(compare_grad(din, rdin, nin, "din preact") == 0, "case %zu preact", ci);

        free(rdin);
        free(rdw);
        free(rdb);
        tensor_free(gk);
        tensor_free(in);
        tensor_free(out);
        tensor_free(g);
        tensor_free(dout);
        tensor_free(din);
        tensor_free(dz);
        tl_free(&t);
    }
}

TEST(conv_init_he_and_glorot)
{
    char err[STRATA_ERR_LEN];
    const enum activation acts[2] = {ACT_RELU, ACT_SIGMOID};
    for (int a = 0; a < 2; a++) {
        struct tlayer t;
        CHECK_EQ_INT(tl_make(&t, &conv2d_ops, conv_cfg(32, 3, 1, PADDING_SAME, 1, acts[a]),
                             (struct shape){8, 8, 16}, 1, err), 0);
        struct rng r;
        rng_seed(&r, 5);
        fill_uniform(t.l.w.bias, 32, &r, 1, 2);
        t.ops->init(&t.l, &r);
        double fan_in = 3 * 3 * 16, fan_out = 3 * 3 * 32;
        double limit = a == 0 ? sqrt(6 / fan_in) : sqrt(6 / (fan_in + fan_out));
        size_t nk = t.size[0];
        double s2 = 0, mx = 0;
        for (size_t i = 0; i < nk; i++) {
            s2 += (double)t.l.w.kernel[i] * t.l.w.kernel[i];
            mx = fmax(mx, fabs(t.l.w.kernel[i]));
        }
        CHECK(mx <= limit);
        CHECK(mx > 0.99 * limit); /* 4608 draws reach the edge */
        /* U(−a, a) has variance a²/3; with 4608 draws the standard error of
         * the mean square is ~1.4 %, so 7 % is a 5-sigma bound. */
        CHECK_NEAR(s2 / nk, limit * limit / 3, 0.07 * limit * limit / 3);
        for (int f = 0; f < 32; f++)
            CHECK(t.l.w.bias[f] == 0.0f);
        tl_free(&t);
    }
}

/* ---- dense ---------------------------------------------------------------- */

TEST(dense_forward_matches_naive_product)
{
    char err[STRATA_ERR_LEN];
    struct {
        struct shape in;
        int units, bias, n;
        enum activation act;
    } cases[] = {
        {{2, 3, 4}, 7, 1, 5, ACT_NONE},
        {{1, 1, 10}, 3, 0, 1, ACT_SIGMOID},
        {{1, 1, 6}, 4, 1, 3, ACT_SOFTMAX},
        {{3, 3, 2}, 5, 1, 4, ACT_RELU},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        struct tlayer t;
        CHECK_EQ_INT(tl_make(&t, &dense_ops, dense_cfg(cases[ci].units, cases[ci].bias,
                                                       cases[ci].act),
                             cases[ci].in, cases[ci].n, err), 0);
        int ni = (int)shape_size(cases[ci].in), nu = cases[ci].units, n = cases[ci].n;
        CHECK(t.l.out.h == 1 && t.l.out.w == 1 && t.l.out.c == nu);
        CHECK(t.np == (cases[ci].bias ? 2 : 1));
        CHECK(t.desc[0].ndim == 2 && t.desc[0].dims[0] == ni && t.desc[0].dims[1] == nu);
        struct rng r;
        rng_seed(&r, 40 + ci);
        tl_randomize(&t, &r);
        float *in = tensor_alloc((size_t)n * ni), *out = tensor_alloc((size_t)n * nu);
        double *want = calloc((size_t)n * nu, sizeof(double));
        double *mag = calloc((size_t)n * nu, sizeof(double));
        fill_uniform(in, (size_t)n * ni, &r, -1, 1);
        for (int b = 0; b < n; b++)
            for (int u = 0; u < nu; u++) {
                double acc = cases[ci].bias ? t.l.w.bias[u] : 0, m = fabs(acc);
                for (int i = 0; i < ni; i++) {
                    double p = (double)in[b * ni + i] * t.l.w.kernel[i * nu + u];
                    acc += p;
                    m += fabs(p);
                }
                want[b * nu + u] = acc;
                mag[b * nu + u] = m;
            }
        ref_activate(want, n, nu, cases[ci].act);
        struct layer_ctx ctx = tl_ctx(&t, 0, NULL);
        t.ops->forward(&t.l, out, in, n, &ctx);
        CHECK_MSG(compare_out(out, want, mag, (size_t)n * nu, "dense") == 0, "case %zu", ci);
        tensor_free(in);
        tensor_free(out);
        free(want);
        free(mag);
        tl_free(&t);
    }
    struct tlayer t;
    CHECK_EQ_INT(tl_make(&t, &dense_ops, dense_cfg(0, 1, ACT_NONE), (struct shape){1, 1, 4}, 1,
                         err), STRATA_E_ARG);
    CHECK(strstr(err, "dense_t") && strstr(err, "units"));
}

TEST(dense_backward_accumulates)
{
    char err[STRATA_ERR_LEN];
    struct tlayer t;
    const int n = 4, ni = 12, nu = 5;
    CHECK_EQ_INT(tl_make(&t, &dense_ops, dense_cfg(nu, 1, ACT_NONE), (struct shape){2, 2, 3}, n,
                         err), 0);
    struct rng r;
    rng_seed(&r, 50);
    tl_randomize(&t, &r);
    float in[48], out[20], g[20], dout[20], din[48] = {0};
    fill_uniform(in, 48, &r, -1, 1);
    fill_uniform(g, 20, &r, -1, 1);
    struct layer_ctx ctx = tl_ctx(&t, 1, NULL);
    t.ops->forward(&t.l, out, in, n, &ctx);
    tl_zero_grads(&t);
    for (int pass = 1; pass <= 2; pass++) {
        memcpy(dout, g, sizeof g);
        t.ops->backward(&t.l, din, dout, in, out, n, &ctx);
        /* Linear layer: dW = inᵀ g, db = Σ g, din = g Wᵀ, times the pass. */
        for (int i = 0; i < ni; i++)
            for (int u = 0; u < nu; u++) {
                double s = 0;
                for (int b = 0; b < n; b++)
                    s += (double)in[b * ni + i] * g[b * nu + u];
                CHECK_NEAR(t.l.grad.kernel[i * nu + u], pass * s, 1e-5 * pass);
            }
        for (int u = 0; u < nu; u++) {
            double s = 0;
            for (int b = 0; b < n; b++)
                s += g[b * nu + u];
            CHECK_NEAR(t.l.grad.bias[u], pass * s, 1e-5 * pass);
        }
        for (int b = 0; b < n; b++)
            for (int i = 0; i < ni; i++) {
                double s = 0;
                for (int u = 0; u < nu; u++)
                    s += (double)g[b * nu + u] * t.l.w.kernel[i * nu + u];
                CHECK_NEAR(din[b * ni + i], pass * s, 1e-5 * pass);
            }
    }
    tl_free(&t);
}

TEST(dense_init_glorot)
{
    char err[STRATA_ERR_LEN];
    struct tlayer t;
    CHECK_EQ_INT(tl_make(&t, &dense_ops, dense_cfg(64, 1, ACT_SOFTMAX), (struct shape){1, 1, 200},
                         1, err), 0);
    struct rng r;
    rng_seed(&r, 6);
    t.ops->init(&t.l, &r);
    double limit = sqrt(6.0 / (200 + 64)), s2 = 0, mx = 0;
    for (size_t i = 0; i < t.size[0]; i++) {
        s2 += (double)t.l.w.kernel[i] * t.l.w.kernel[i];
        mx = fmax(mx, fabs(t.l.w.kernel[i]));
    }
    CHECK(mx <= limit && mx > 0.99 * limit);
    /* 12800 draws: standard error of the mean square ~0.8 %; 5 % bound. */
    CHECK_NEAR(s2 / t.size[0], limit * limit / 3, 0.05 * limit * limit / 3);
    for (int u = 0; u < 64; u++)
        CHECK(t.l.w.bias[u] == 0.0f);
    tl_free(&t);
}

/* ---- flatten and dropout ---------------------------------------------------- */

TEST(flatten_is_a_copy)
{
    char err[STRATA_ERR_LEN];
    struct tlayer t;
    struct layer_config cfg = {.kind = LAYER_FLATTEN, .name = "flat"};
    CHECK_EQ_INT(tl_make(&t, &flatten_ops, cfg, (struct shape){3, 4, 5}, 2, err), 0);
    CHECK(t.l.out.h == 1 && t.l.out.w == 1 && t.l.out.c == 60);
    CHECK_EQ_INT(t.np, 0);
    float in[120], out[120], dout[120], din[120];
    for (int i = 0; i < 120; i++) {
        in[i] = (float)i * 0.5f - 3;
        dout[i] = (float)(i % 7) - 2;
        din[i] = 1.0f;
    }
    struct layer_ctx ctx = tl_ctx(&t, 0, NULL);
    t.ops->forward(&t.l, out, in, 2, &ctx);
    CHECK(memcmp(out, in, sizeof in) == 0);
    t.ops->backward(&t.l, din, dout, in, out, 2, &ctx);
    for (int i = 0; i < 120; i++)
        CHECK(din[i] == 1.0f + dout[i]);
    tl_free(&t);
    struct layer_config bad = cfg;
    CHECK_EQ_INT(tl_make(&t, &flatten_ops, bad, (struct shape){0, 4, 5}, 1, err), STRATA_E_ARG);
    CHECK(strstr(err, "flat") != NULL);
}

TEST(dropout_inference_identity_training_inverted)
{
    char err[STRATA_ERR_LEN];
    struct tlayer t;
    const int n = 4;
    const struct shape s = {10, 10, 250}; /* 25 000 per sample, 100 000 in all */
    struct layer_config cfg = {.kind = LAYER_DROPOUT, .name = "drop", .rate = 0.3f};
    CHECK_EQ_INT(tl_make(&t, &dropout_ops, cfg, s, n, err), 0);
    CHECK(t.l.out.h == 10 && t.l.out.w == 10 && t.l.out.c == 250);
    CHECK(t.l.state.mask != NULL);
    size_t total = (size_t)n * shape_size(s);
    float *in = tensor_alloc(total), *out = tensor_alloc(total);
    float *dout = tensor_alloc(total), *din = tensor_alloc(total);
    struct rng r;
    rng_seed(&r, 7);
    fill_uniform(in, total, &r, 0.5, 1.5); /* never 0, so a zero output means dropped */
    fill_uniform(dout, total, &r, -1, 1);

    struct layer_ctx ctx = tl_ctx(&t, 0, &r);
    t.ops->forward(&t.l, out, in, n, &ctx);
    CHECK(memcmp(out, in, total * sizeof(float)) == 0);

    ctx.training = 1;
    t.ops->forward(&t.l, out, in, n, &ctx);
    size_t kept = 0;
    int wrong = 0;
    for (size_t i = 0; i < total; i++) {
        int k = t.l.state.mask[i];
        kept += k;
        float want = k ? in[i] / 0.7f : 0.0f;
        wrong += !(fabsf(out[i] - want) <= 1e-6f * fabsf(want)) || (k && out[i] == 0.0f);
    }
    CHECK_EQ_INT(wrong, 0);
    /* Binomial(10^5, 0.7): sd = 145, so ±750 is over 5 sigma. */
    CHECK_NEAR((double)kept, 0.7 * total, 750);

    for (size_t i = 0; i < total; i++)
        din[i] = 2.0f;
    t.ops->backward(&t.l, din, dout, in, out, n, &ctx);
    wrong = 0;
    for (size_t i = 0; i < total; i++) {
        float want = 2.0f + (t.l.state.mask[i] ? dout[i] / 0.7f : 0.0f);
        wrong += !(fabsf(din[i] - want) <= 1e-6f);
    }
    CHECK_EQ_INT(wrong, 0);

    /* Two training passes draw different masks. */
    uint8_t *first = malloc(total);
    memcpy(first, t.l.state.mask, total);
    t.ops->forward(&t.l, out, in, n, &ctx);
    CHECK(memcmp(first, t.l.state.mask, total) != 0);
    free(first);
    tl_free(&t);

    /* rate 0 keeps everything unscaled. */
    cfg.rate = 0.0f;
    CHECK_EQ_INT(tl_make(&t, &dropout_ops, cfg, (struct shape){1, 1, 100}, 1, err), 0);
    ctx = tl_ctx(&t, 1, &r);
    t.ops->forward(&t.l, out, in, 1, &ctx);
    CHECK(memcmp(out, in, 100 * sizeof(float)) == 0);
    tl_free(&t);

    const float bad_rates[3] = {1.0f, -0.1f, NAN};
    for (int i = 0; i < 3; i++) {
        cfg.rate = bad_rates[i];
        err[0] = 0;
        CHECK_EQ_INT(tl_make(&t, &dropout_ops, cfg, (struct shape){1, 1, 4}, 1, err),
                     STRATA_E_ARG);
        CHECK(strstr(err, "drop") && strstr(err, "rate"));
    }
    tensor_free(in);
    tensor_free(out);
    tensor_free(dout);
    tensor_free(din);
}

int main(void)
{
    RUN(conv_configure_shapes_and_errors);
    RUN(conv_hand_worked);
    RUN(conv_forward_matches_direct_convolution);
    if (__builtin_cpu_supports("avx512f"))
        RUN(conv_small_window_forward_is_an_exact_fma_chain);
    else
        SKIP(conv_small_window_forward_is_an_exact_fma_chain,
             "no AVX-512 on this CPU: convolutions with small windows use GEMM");
    RUN(conv_forward_multi_chunk);
    RUN(conv_gradients_finite_differences);
    RUN(conv_backward_multi_chunk_and_accumulation);
    RUN(dense_gradients_finite_differences);
    RUN(conv_init_he_and_glorot);
    RUN(dense_forward_matches_naive_product);
    RUN(dense_backward_accumulates);
    RUN(dense_init_glorot);
    RUN(flatten_is_a_copy);
    RUN(dropout_inference_identity_training_inverted);
    return check_done();
}
