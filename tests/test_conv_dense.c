/*
 * test_conv_dense.c — conv2d, dense, flatten and dropout: what these layers of
 * strata's models mean, as the graph executor runs them.
 *
 * A layer type's own code is its configuration: configure (output shapes,
 * messages naming the layer and the field), params and init (He or Glorot
 * uniform); those are called directly. Everything else goes through a strata
 * model — model.json text parsed by model_parse_json, weights written into
 * the layers in strata's layouts, then model_forward, train_graph or
 * model_grad — so what is checked is strata's semantics as the graph
 * executes them: TensorFlow's "same" padding, HWIO kernels, [in][units] dense
 * kernels, fused activations, flatten in (h, w, c) order, inverted dropout.
 * Evidence:
 *   - hand-worked convolutions (numbers in the comments);
 *   - a direct 7-loop convolution and a naive matrix product in double, on
 *     odd shapes, strides, even kernels, kernels larger than the input, many
 *     filters and channels, batches of up to 100 images, and one image
 *     through a workspace sized for the whole batch;
 *   - the gradients of a training step (train_graph_backward) for a
 *     convolution's kernel and bias against a direct backward in double on
 *     those large batches, and of its input through the 1×1 convolution that
 *     feeds it; a dense layer's against the closed form inᵀ·g; the input
 *     gradients (model_grad) of dense and flatten against the kernel entries
 *     and the permutation they must be;
 *   - dropout: the identity at inference; in training mode each value either
 *     0 or scaled by 1/(1 − rate), the number kept within 5 sigma of the
 *     binomial mean, a new mask each step, rate 0 the identity.
 * Finite-difference checks of each op's backward (Conv, Gemm, the
 * activations, Flatten, Transpose, Dropout) are the graph ops' tests
 * (test_ops_conv.c, test_ops_math.c, test_ops_shape.c); of a whole strata
 * model on the training graph, test_model.c's.
 *
 * A strata model's input has 3 channels. A layer tested on C ≠ 3 channels
 * reads them from a 1×1 convolution with random weights (the "feeder"), and
 * the references take that layer's output, as the graph computed it, for
 * their input.
 */
#include "check.h"
#include "layer_model.h"
#include "graph.h"
#include "layers/layer.h"
#include "model.h"
#include "model_grad.h"
#include "model_graph.h"
#include "rng.h"
#include "status.h"
#include "tensor.h"
#include "train_graph.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- a layer configured by hand --------------------------------------------- */

struct tlayer {
    const struct layer_ops *ops;
    struct layer l;
    int np;
    struct param_desc desc[LAYER_MAX_PARAMS];
    size_t size[LAYER_MAX_PARAMS];
    float *param[LAYER_MAX_PARAMS];
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

/* Configures, then allocates one buffer per tensor params() lists and points
 * w at them; returns the configure status (buffers only on 0). */
static int tl_make(struct tlayer *t, const struct layer_ops *ops, struct layer_config cfg,
                   struct shape in, char *err)
{
    memset(t, 0, sizeof *t);
    t->ops = ops;
    t->l.cfg = cfg;
    t->l.in = in;
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
        if (strcmp(t->desc[p].name, "kernel") == 0)
            t->l.w.kernel = t->param[p];
        else if (strcmp(t->desc[p].name, "bias") == 0)
            t->l.w.bias = t->param[p];
    }
    return 0;
}

static void tl_free(struct tlayer *t)
{
    for (int p = 0; p < t->np; p++)
        tensor_free(t->param[p]);
}

static void fill_uniform(float *x, size_t n, struct rng *r, double lo, double hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(lo + (hi - lo) * rng_uniform(r));
}

/* ---- a strata model ------------------------------------------------------------ */

/* A conv2d entry of "layers"; returns its length. */
static int conv_json(char *buf, size_t cap, const char *name, int filters, int k, int s,
                     enum padding pad, int bias, enum activation act)
{
    return snprintf(buf, cap,
                    "{\"type\": \"conv2d\", \"name\": \"%s\", \"filters\": %d, \"kernel_size\": "
                    "%d, \"strides\": %d, \"padding\": \"%s\", \"activation\": \"%s\", "
                    "\"use_bias\": %s}",
                    name, filters, k, s, pad == PADDING_SAME ? "same" : "valid",
                    activation_name(act), bias ? "true" : "false");
}

/* Every parameter of m uniform in [−1, 1]; the graph, if any, is dropped so
 * that the next one is built from these values. */
static void randomize_params(struct model *m, struct rng *r)
{
    fill_uniform(m->params, m->n_params, r, -1.0, 1.0);
    model_graph_close(m);
}

/* ---- references ---------------------------------------------------------- */

/* TensorFlow's output size and leading padding, written out independently of
 * conv2d.c and of the graph's Conv. */
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
 * filter, then the kernel window and channels), NHWC in and out, kernel
 * HWIO. `mag` receives Σ |w·x| per output, the scale of its float rounding
 * error. */
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

/* Compares a float result with a double reference. A float sum of K terms
 * carries a rounding error of at most about K·u·Σ|terms| and in practice
 * ~√K·u·Σ|terms| (u = 6e-8); 1e-5·Σ|terms| + 1e-6 covers every K used here,
 * while an indexing mistake moves an output by a whole term (~0.1 or more).
 * An activation only shrinks errors (its slope is ≤ 1). */
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

/* ---- conv2d: configuration --------------------------------------------------- */

TEST(conv_configure_shapes_and_errors)
{
    char err[STRATA_ERR_LEN];
    struct tlayer t;
    /* valid: floor((7 − 3)/2) + 1 = 3; same: ceil(7/2) = 4 */
    CHECK_EQ_INT(tl_make(&t, &conv2d_ops, conv_cfg(5, 3, 2, PADDING_VALID, 1, ACT_NONE),
                         (struct shape){7, 9, 2}, err), 0);
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
                         (struct shape){7, 9, 2}, err), 0);
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
        int rc = tl_make(&t, &conv2d_ops, bad[i].cfg, bad[i].in, err);
        CHECK_MSG(rc == STRATA_E_ARG, "case %zu returned %d", i, rc);
        CHECK_MSG(strstr(err, "conv_t") && strstr(err, bad[i].field),
                  "case %zu: message \"%s\" should name the layer and '%s'", i, err,
                  bad[i].field);
    }
    /* The same kernel that is too large for a valid convolution is fine with
     * same padding. */
    CHECK_EQ_INT(tl_make(&t, &conv2d_ops, conv_cfg(4, 5, 1, PADDING_SAME, 1, ACT_NONE),
                         (struct shape){4, 8, 3}, err), 0);
    CHECK(t.l.out.h == 4 && t.l.out.w == 8);
    tl_free(&t);
}

/* ---- conv2d forward ------------------------------------------------------- */

/* Input, channel 0         filter 0      filter 1      bias
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
 * The model's input has three channels: channels 1 and 2 hold 100 and −50
 * everywhere and their kernel taps are 0, so any mix-up of the kernel's
 * channel axis (HWIO, cin third) would bring them in. The model is that one
 * layer; its 2×2×2 output is the 8 "classes". */
TEST(conv_hand_worked)
{
    char err[STRATA_ERR_LEN] = "";
    const float ch0[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    /* HWIO [2][2][1][2] for channel 0: element (ky, kx, 0, f) at (ky·2 + kx)·2 + f */
    const float w0[8] = {1, 0, 2, -1, 3, 1, 4, 0};
    const float b[2] = {0.5f, -1.0f};
    const float want_valid[8] = {37.5f, 1, 47.5f, 1, 67.5f, 1, 77.5f, 1};
    const float want_same[8] = {37.5f, 1, 21.5f, 5, 23.5f, -9, 9.5f, -1};
    const enum padding pads[2] = {PADDING_VALID, PADDING_SAME};
    const float *wants[2] = {want_valid, want_same};
    float in[27];
    for (int p = 0; p < 9; p++) {
        in[3 * p] = ch0[p];
        in[3 * p + 1] = 100.0f;
        in[3 * p + 2] = -50.0f;
    }
    for (int i = 0; i < 2; i++) {
        char layer[256];
        conv_json(layer, sizeof layer, "conv_t", 2, 2, i + 1, pads[i], 1, ACT_NONE);
        struct model m;
        int rc = layer_model_make(&m, 3, 3, 8, layer, err);
        CHECK_MSG(rc == 0, "%s", err);
        if (rc)
            continue;
        const struct layer *l = &m.layers[0];
        CHECK(l->out.h == 2 && l->out.w == 2 && l->out.c == 2);
        /* HWIO [2][2][3][2]: (ky, kx, c, f) at ((ky·2 + kx)·3 + c)·2 + f */
        memset(l->w.kernel, 0, 24 * sizeof(float));
        for (int t = 0; t < 4; t++)
            for (int f = 0; f < 2; f++)
                l->w.kernel[(t * 3 + 0) * 2 + f] = w0[t * 2 + f];
        memcpy(l->w.bias, b, sizeof b);
        struct model_workspace ws;
        rc = model_workspace_init(&ws, &m, 1, err);
        CHECK_MSG(rc == 0, "%s", err);
        if (rc == 0) {
            model_forward(&m, &ws, in, 1);
            const float *out = model_output(&ws, 0);
            for (int j = 0; j < 8; j++)
                CHECK_NEAR(out[j], wants[i][j], 1e-5);
        }
        model_workspace_free(&ws);
        model_free(&m);
    }
}

struct conv_case {
    int n, H, W, C, F, k, s;
    enum padding pad;
    int bias;
    enum activation act;
};

/* The model for a case: [the feeder (1×1, 3 → C),] conv_t, flatten, and a
 * dense layer of 3 units (the classes) to end it. */
static int conv_model(struct model *m, const struct conv_case *c, int feeder, char *err)
{
    char layers[768];
    int k = 0;
    if (feeder) {
        k += conv_json(layers, sizeof layers, "feeder", c->C, 1, 1, PADDING_VALID, 1,
                       ACT_NONE);
        k += snprintf(layers + k, sizeof layers - (size_t)k, ", ");
    }
    k += conv_json(layers + k, sizeof layers - (size_t)k, "conv_t", c->F, c->k, c->s, c->pad,
                   c->bias, c->act);
    snprintf(layers + k, sizeof layers - (size_t)k,
             ", {\"type\": \"flatten\"}, {\"type\": \"dense\", \"name\": \"tail\", \"units\": 3}");
    return layer_model_make(m, c->H, c->W, 3, layers, err);
}

static void case_name(char *buf, size_t cap, const struct conv_case *c)
{
    snprintf(buf, cap, "n%d %dx%dx%d F%d k%d s%d %s%s %s", c->n, c->H, c->W, c->C, c->F, c->k,
             c->s, c->pad == PADDING_SAME ? "same" : "valid", c->bias ? " bias" : "",
             activation_name(c->act));
}

/* The model's conv_t on the batch against the direct convolution of its
 * input (the image, or the feeder's output); then the last image alone
 * through the same workspace (sized for the batch, as a last partial batch
 * is). */
static void check_conv_forward(const struct conv_case *c, uint64_t seed)
{
    char err[STRATA_ERR_LEN] = "", what[128];
    case_name(what, sizeof what, c);
    const int feeder = c->C != 3, L = feeder;
    struct model m;
    int rc = conv_model(&m, c, feeder, err);
    CHECK_MSG(rc == 0, "%s: %s", what, err);
    if (rc)
        return;
    struct rng r;
    rng_seed(&r, seed);
    randomize_params(&m, &r);
    const struct layer *l = &m.layers[L];
    int Ho, Wo, pad;
    ref_geometry(c->H, c->k, c->s, c->pad, &Ho, &pad);
    ref_geometry(c->W, c->k, c->s, c->pad, &Wo, &pad);
    CHECK_MSG(l->out.h == Ho && l->out.w == Wo && l->out.c == c->F, "%s: output %dx%dx%d",
              what, l->out.h, l->out.w, l->out.c);
    struct model_workspace ws;
    rc = model_workspace_init(&ws, &m, c->n, err);
    CHECK_MSG(rc == 0, "%s: %s", what, err);
    if (rc) {
        model_free(&m);
        return;
    }
    const size_t img = (size_t)c->H * c->W * 3, one = shape_size(l->out);
    float *in = tensor_alloc((size_t)c->n * img);
    double *want = malloc((size_t)c->n * one * sizeof(double));
    double *mag = malloc((size_t)c->n * one * sizeof(double));
    fill_uniform(in, (size_t)c->n * img, &r, -1.0, 1.0);

    model_forward(&m, &ws, in, c->n);
    const float *x = feeder ? model_output(&ws, 0) : in;
    ref_conv(want, mag, x, l->w.kernel, c->bias ? l->w.bias : NULL, c->n, c->H, c->W, c->C,
             c->F, c->k, c->s, c->pad, c->act);
    CHECK_MSG(compare_out(model_output(&ws, L), want, mag, (size_t)c->n * one, what) == 0, "%s",
              what);
    if (c->n > 1) {
        const float *last = in + (size_t)(c->n - 1) * img;
        model_forward(&m, &ws, last, 1);
        x = feeder ? model_output(&ws, 0) : last;
        ref_conv(want, mag, x, l->w.kernel, c->bias ? l->w.bias : NULL, 1, c->H, c->W, c->C,
                 c->F, c->k, c->s, c->pad, c->act);
        CHECK_MSG(compare_out(model_output(&ws, L), want, mag, one, "last image alone") == 0,
                  "%s, n = 1", what);
    }
    tensor_free(in);
    free(want);
    free(mag);
    model_workspace_free(&ws);
    model_free(&m);
}

TEST(conv_forward_matches_direct_convolution)
{
    const struct conv_case cases[] = {
        {2, 5, 7, 3, 4, 3, 1, PADDING_VALID, 1, ACT_NONE},
        {3, 6, 5, 2, 3, 3, 2, PADDING_SAME, 0, ACT_NONE},
        {2, 7, 7, 4, 5, 5, 1, PADDING_SAME, 1, ACT_RELU},
        {2, 8, 6, 3, 2, 1, 1, PADDING_VALID, 1, ACT_NONE},  /* 1×1 stride 1 */
        {2, 9, 9, 2, 3, 1, 2, PADDING_SAME, 1, ACT_SIGMOID},
        {1, 5, 5, 3, 6, 5, 2, PADDING_VALID, 1, ACT_NONE},
        {2, 4, 9, 5, 3, 3, 2, PADDING_VALID, 1, ACT_SOFTMAX},
        {2, 6, 7, 3, 4, 4, 3, PADDING_SAME, 1, ACT_NONE},   /* even kernel, odd padding */
        {1, 3, 3, 2, 4, 5, 1, PADDING_SAME, 1, ACT_NONE},   /* kernel larger than input */
        {2, 6, 5, 3, 70, 3, 1, PADDING_SAME, 1, ACT_RELU},
        {1, 3, 3, 2, 2100, 3, 1, PADDING_SAME, 1, ACT_RELU}, /* > 2048 filters */
        /* Small windows (k·k·C ≤ 32) with 16, 32 or 48 filters, padded edges,
         * no bias, one channel; 3×3 stride-1 layers large enough for
         * Winograd-style blocking. */
        {3, 20, 21, 3, 32, 3, 1, PADDING_VALID, 1, ACT_RELU},
        {2, 17, 19, 3, 16, 3, 1, PADDING_SAME, 0, ACT_RELU},
        {2, 12, 13, 3, 48, 3, 1, PADDING_SAME, 1, ACT_NONE},
        {2, 14, 11, 1, 32, 5, 1, PADDING_SAME, 1, ACT_RELU},
        {1, 10, 8, 3, 16, 3, 1, PADDING_VALID, 1, ACT_RELU},
        {3, 13, 21, 3, 32, 3, 1, PADDING_VALID, 1, ACT_RELU},
        {2, 11, 17, 3, 16, 3, 1, PADDING_SAME, 0, ACT_RELU},
        {2, 9, 12, 3, 48, 3, 1, PADDING_SAME, 1, ACT_NONE},
        {1, 10, 14, 1, 32, 5, 1, PADDING_SAME, 1, ACT_RELU},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_conv_forward(&cases[i], 100 + i);
}

/* Large batches and images: the 1×1 case, 3×3 and 5×5 kernels with padding
 * on every side, many filters, a 2×2 kernel over 512 channels, more than
 * 2048 filters, outputs of 17 and 18 MB. The batches of 64, 100 and 16
 * images are more than one chunk of the graph Conv's batched backward (on
 * strata's sgemm, where the CPU has AVX-512: 2^21 floats of im2col and dY a
 * chunk, so 25, 24 and 14 images), the last chunk a partial one. */
static const struct conv_case multi_chunk_cases[] = {
    {6, 40, 40, 16, 16, 3, 1, PADDING_VALID, 1, ACT_RELU},
    {16, 24, 24, 16, 64, 3, 1, PADDING_SAME, 1, ACT_NONE},
    {20, 64, 64, 4, 16, 1, 1, PADDING_VALID, 1, ACT_SIGMOID},
    {2, 34, 33, 12, 8, 3, 1, PADDING_SAME, 1, ACT_RELU},
    {2, 36, 32, 16, 64, 5, 1, PADDING_SAME, 1, ACT_NONE},
    {1, 40, 40, 512, 8, 2, 1, PADDING_SAME, 1, ACT_NONE},
    {3, 9, 11, 3, 5, 3, 2, PADDING_SAME, 1, ACT_NONE},
    {64, 64, 64, 4, 16, 1, 1, PADDING_VALID, 1, ACT_RELU},
    {2, 4, 3, 2, 2100, 3, 1, PADDING_SAME, 1, ACT_SIGMOID},
    {100, 40, 40, 3, 32, 3, 1, PADDING_VALID, 1, ACT_RELU},
    {16, 40, 40, 5, 48, 3, 1, PADDING_SAME, 1, ACT_RELU},
};
#define N_MULTI_CHUNK (sizeof multi_chunk_cases / sizeof multi_chunk_cases[0])

TEST(conv_forward_multi_chunk)
{
    for (size_t i = 0; i < N_MULTI_CHUNK; i++)
        check_conv_forward(&multi_chunk_cases[i], 200 + i);
}

/* ---- conv2d: the gradients of a training step ------------------------------ */

/* A direct backward in double, loop by loop, for dz the gradient of the
 * pre-activation (NHWC, kernel HWIO):
 *   db[f] = Σ dz,  dW[ky,kx,c,f] = Σ x[iy,ix,c]·dz[oy,ox,f],
 *   din[iy,ix,c] = Σ W[ky,kx,c,f]·dz[oy,ox,f]  over windows covering (iy,ix);
 * the m* arrays receive the matching Σ |terms|. */
static void ref_conv_backward(double *din, double *mdin, double *dw, double *mdw, double *db,
                              double *mdb, const float *in, const float *w, const float *dz,
                              int n, int H, int W, int C, int F, int k, int s, enum padding pad)
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
                    mdb[f] += fabs(g);
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++)
                            for (int c = 0; c < C; c++) {
                                int iy = oy * s - pt + ky, ix = ox * s - pl + kx;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                                    continue;
                                size_t xi = (((size_t)b0 * H + iy) * W + ix) * C + c;
                                size_t wi = (((size_t)ky * k + kx) * C + c) * F + f;
                                dw[wi] += in[xi] * g;
                                mdw[wi] += fabs(in[xi] * g);
                                din[xi] += w[wi] * g;
                                mdin[xi] += fabs(w[wi] * g);
                            }
                }
}

/* Compares float gradients with a double reference, against the scale of
 * each one's float rounding (mag = Σ|terms|), as compare_out does:
 * 1e-5·Σ|terms| + 1e-6. The weight gradients sum up to n·Ho·Wo ≈ 1.4·10^5
 * products, blocked sums whose error stays far below that (the output
 * prints the worst fraction of the tolerance used). An index mistake moves
 * a gradient by a good part of its value, which for these sums of
 * random-signed terms is ~Σ|terms|/√K ≥ 2.6e-3·Σ|terms|: far above it. */
static int compare_grad(const float *got, const double *want, const double *mag, size_t n,
                        const char *what)
{
    int bad = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(got[i] - want[i]), tol = 1e-5 * mag[i] + 1e-6;
        worst = d / tol > worst ? d / tol : worst;
        if (!(d <= tol)) {
            if (bad < 3)
                printf("#   %s[%zu] got %.7g want %.7g (|diff| %.3g > %.3g)\n", what, i, got[i],
                       want[i], d, tol);
            bad++;
        }
    }
    printf("#   %s: %zu values, worst |diff| %.3g of the tolerance\n", what, n, worst);
    return bad;
}

/* One training step's gradients for the model feeder → conv_t → flatten →
 * dense: train_graph_forward in training mode, train_graph_backward of
 * random dlogits g [n][3]. The reference starts from the values the graph
 * computed (the feeder's output x, conv_t's output y): the dense layer's
 * gradient with respect to the flattened y is dflat[i] = Σ_k g[k]·D[i][k]
 * (D = its kernel, [in][units], y flattened (h, w, c)), through the
 * activation dz = dflat·act'(y), and then the direct backward gives conv_t's
 * dW and db and its input's gradient din. The graph does not differentiate
 * its input, but the feeder's gradients are sums of din:
 *   dW_feeder[c][ci] = Σ_{n,p} image[n,p,ci]·din[n,p,c],  db_feeder[c] = Σ din[n,p,c].
 * A second backward gives the same gradients again: they are replaced, not
 * accumulated (train_graph.h). */
static void check_conv_backward(const struct conv_case *c, uint64_t seed)
{
    char err[STRATA_ERR_LEN] = "", what[128];
    case_name(what, sizeof what, c);
    struct model m;
    int rc = conv_model(&m, c, 1, err);
    CHECK_MSG(rc == 0, "%s: %s", what, err);
    if (rc)
        return;
    struct rng r;
    rng_seed(&r, seed);
    randomize_params(&m, &r);
    struct train_graph t;
    rc = train_graph_init(&t, &m, c->n, seed, err);
    CHECK_MSG(rc == 0, "%s: %s", what, err);
    if (rc) {
        model_free(&m);
        return;
    }
    const struct layer *l = &m.layers[1];
    const int n = c->n, H = c->H, W = c->W, C = c->C, F = c->F, k = c->k;
    const int Ho = l->out.h, Wo = l->out.w;
    const size_t nimg = (size_t)n * H * W * 3, nin = (size_t)n * H * W * C;
    const size_t nout = (size_t)n * Ho * Wo * F, nw = (size_t)k * k * C * F;
    float *img = tensor_alloc(nimg), *g = tensor_alloc((size_t)n * 3);
    fill_uniform(img, nimg, &r, -1.0, 1.0);
    fill_uniform(g, (size_t)n * 3, &r, -1.0, 1.0);
    const float *probs = train_graph_forward(&t, img, n, 1, err);
    CHECK_MSG(probs != NULL, "%s: %s", what, err);
    rc = probs ? train_graph_backward(&t, g, err) : -1;
    CHECK_MSG(rc == 0, "%s: %s", what, err);
    struct optim_tensor ot[8];
    const int nt = train_graph_optim_tensors(&t, ot);
    /* feeder kernel and bias, conv_t's kernel (and bias), tail's kernel and bias */
    const int ik = 2, ib = c->bias ? 3 : -1;
    CHECK_EQ_INT(nt, c->bias ? 6 : 5);
    if (rc || nt != (c->bias ? 6 : 5)) {
        tensor_free(img);
        tensor_free(g);
        train_graph_free(&t);
        model_free(&m);
        return;
    }
    CHECK(ot[0].len == (size_t)3 * C && ot[1].len == (size_t)C && ot[ik].len == nw);
    CHECK(ib < 0 || ot[ib].len == (size_t)F);

    /* the feeder's output and conv_t's, as the graph computed them (NCHW) */
    float *x = tensor_alloc(nin), *y = tensor_alloc(nout), *dz = tensor_alloc(nout);
    nchw_to_nhwc(x, tview_f(graph_value_view(&t.ws, t.mg->shown[0])), n, H, W, C);
    nchw_to_nhwc(y, tview_f(graph_value_view(&t.ws, t.mg->shown[1])), n, Ho, Wo, F);
    const float *D = m.layers[3].w.kernel;
    const size_t per = (size_t)Ho * Wo * F;
    for (int b = 0; b < n; b++)
        for (size_t i = 0; i < per; i++) {
            double d = 0;
            for (int u = 0; u < 3; u++)
                d += (double)g[b * 3 + u] * D[i * 3 + u];
            double v = y[b * per + i];
            dz[b * per + i] = (float)(c->act == ACT_RELU      ? (v > 0 ? d : 0.0)
                                      : c->act == ACT_SIGMOID ? d * v * (1.0 - v)
                                                              : d);
        }
    double *rdin = calloc(nin, sizeof(double)), *mdin = calloc(nin, sizeof(double));
    double *rdw = calloc(nw, sizeof(double)), *mdw = calloc(nw, sizeof(double));
    double *rdb = calloc((size_t)F, sizeof(double)), *mdb = calloc((size_t)F, sizeof(double));
    ref_conv_backward(rdin, mdin, rdw, mdw, rdb, mdb, x, l->w.kernel, dz, n, H, W, C, F, k, c->s,
                      c->pad);

    /* conv_t's kernel gradient comes in the graph's layout, [f][c][ky][kx] */
    float *gw = tensor_alloc(nw);
    for (int ky = 0; ky < k; ky++)
        for (int kx = 0; kx < k; kx++)
            for (int ci = 0; ci < C; ci++)
                for (int f = 0; f < F; f++)
                    gw[(((size_t)ky * k + kx) * C + ci) * F + f] =
                        ot[ik].grad[(((size_t)f * C + ci) * k + ky) * k + kx];
    CHECK_MSG(compare_grad(gw, rdw, mdw, nw, "dkernel") == 0, "%s: dkernel", what);
    if (ib >= 0)
        CHECK_MSG(compare_grad(ot[ib].grad, rdb, mdb, (size_t)F, "dbias") == 0, "%s: dbias",
                  what);

    /* din, through the feeder (kernel [c][ci][1][1] in the graph) */
    double *fw = calloc((size_t)3 * C, sizeof(double)), *mfw = calloc((size_t)3 * C, sizeof(double));
    double *fb = calloc((size_t)C, sizeof(double)), *mfb = calloc((size_t)C, sizeof(double));
    for (size_t p = 0; p < nin / C; p++)
        for (int ch = 0; ch < C; ch++) {
            double d = rdin[p * C + ch], md = mdin[p * C + ch];
            fb[ch] += d;
            mfb[ch] += md;
            for (int ci = 0; ci < 3; ci++) {
                fw[ch * 3 + ci] += img[p * 3 + ci] * d;
                mfw[ch * 3 + ci] += fabs(img[p * 3 + ci]) * md;
            }
        }
    CHECK_MSG(compare_grad(ot[0].grad, fw, mfw, (size_t)3 * C, "din through dkernel_feeder") == 0,
              "%s: din (feeder kernel)", what);
    CHECK_MSG(compare_grad(ot[1].grad, fb, mfb, (size_t)C, "din through dbias_feeder") == 0,
              "%s: din (feeder bias)", what);

    /* backward again: the same values, not twice them */
    memcpy(gw, ot[ik].grad, nw * sizeof(float));
    CHECK_EQ_INT(train_graph_backward(&t, g, err), 0);
    CHECK_MSG(memcmp(gw, ot[ik].grad, nw * sizeof(float)) == 0,
              "%s: a second backward changed dkernel", what);

    free(rdin), free(mdin), free(rdw), free(mdw), free(rdb), free(mdb);
    free(fw), free(mfw), free(fb), free(mfb);
    tensor_free(gw);
    tensor_free(x);
    tensor_free(y);
    tensor_free(dz);
    tensor_free(img);
    tensor_free(g);
    train_graph_free(&t);
    model_free(&m);
}

TEST(conv_backward_multi_chunk)
{
    for (size_t i = 0; i < N_MULTI_CHUNK; i++)
        check_conv_backward(&multi_chunk_cases[i], 300 + i);
}

TEST(conv_init_he_and_glorot)
{
    char err[STRATA_ERR_LEN];
    const enum activation acts[2] = {ACT_RELU, ACT_SIGMOID};
    for (int a = 0; a < 2; a++) {
        struct tlayer t;
        CHECK_EQ_INT(tl_make(&t, &conv2d_ops, conv_cfg(32, 3, 1, PADDING_SAME, 1, acts[a]),
                             (struct shape){8, 8, 16}, err), 0);
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

/* A dense entry of "layers"; returns its length. */
static int dense_json(char *buf, size_t cap, int units, int bias, enum activation act)
{
    return snprintf(buf, cap,
                    "{\"type\": \"dense\", \"name\": \"dense_t\", \"units\": %d, \"activation\": "
                    "\"%s\", \"use_bias\": %s}",
                    units, activation_name(act), bias ? "true" : "false");
}

/* dense_t's configuration, then the model [feeder →] dense_t against the
 * naive product of its input flattened (h, w, c) with the [in][units]
 * kernel. */
TEST(dense_forward_matches_naive_product)
{
    char err[STRATA_ERR_LEN] = "";
    struct {
        struct shape in;
        int units, bias, n;
        enum activation act;
    } cases[] = {
        {{2, 3, 4}, 7, 1, 5, ACT_NONE},
        {{1, 1, 10}, 3, 0, 1, ACT_SIGMOID},
        {{1, 1, 6}, 4, 1, 3, ACT_SOFTMAX},
        {{3, 3, 2}, 5, 1, 4, ACT_RELU},
        {{2, 2, 3}, 6, 1, 3, ACT_RELU}, /* the image itself */
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const struct shape s = cases[ci].in;
        const int ni = (int)shape_size(s), nu = cases[ci].units, n = cases[ci].n;
        struct tlayer t;
        CHECK_EQ_INT(tl_make(&t, &dense_ops, dense_cfg(nu, cases[ci].bias, cases[ci].act), s,
                             err), 0);
        CHECK(t.l.out.h == 1 && t.l.out.w == 1 && t.l.out.c == nu);
        CHECK(t.np == (cases[ci].bias ? 2 : 1));
        CHECK(t.desc[0].ndim == 2 && t.desc[0].dims[0] == ni && t.desc[0].dims[1] == nu);
        tl_free(&t);

        const int feeder = s.c != 3, L = feeder;
        char layers[512];
        int k = 0;
        if (feeder) {
            k = conv_json(layers, sizeof layers, "feeder", s.c, 1, 1, PADDING_VALID, 1,
                          ACT_NONE);
            k += snprintf(layers + k, sizeof layers - (size_t)k, ", ");
        }
        dense_json(layers + k, sizeof layers - (size_t)k, nu, cases[ci].bias, cases[ci].act);
        struct model m;
        int rc = layer_model_make(&m, s.h, s.w, nu, layers, err);
        CHECK_MSG(rc == 0, "case %zu: %s", ci, err);
        if (rc)
            continue;
        struct rng r;
        rng_seed(&r, 40 + ci);
        randomize_params(&m, &r);
        const struct layer *l = &m.layers[L];
        struct model_workspace ws;
        rc = model_workspace_init(&ws, &m, n, err);
        CHECK_MSG(rc == 0, "case %zu: %s", ci, err);
        if (rc) {
            model_free(&m);
            continue;
        }
        const size_t img = (size_t)s.h * s.w * 3;
        float *in = tensor_alloc((size_t)n * img);
        fill_uniform(in, (size_t)n * img, &r, -1, 1);
        model_forward(&m, &ws, in, n);
        const float *x = feeder ? model_output(&ws, 0) : in;
        double *want = calloc((size_t)n * nu, sizeof(double));
        double *mag = calloc((size_t)n * nu, sizeof(double));
        for (int b = 0; b < n; b++)
            for (int u = 0; u < nu; u++) {
                double acc = cases[ci].bias ? l->w.bias[u] : 0, mg = fabs(acc);
                for (int i = 0; i < ni; i++) {
                    double p = (double)x[b * ni + i] * l->w.kernel[i * nu + u];
                    acc += p;
                    mg += fabs(p);
                }
                want[b * nu + u] = acc;
                mag[b * nu + u] = mg;
            }
        ref_activate(want, n, nu, cases[ci].act);
        CHECK_MSG(compare_out(model_output(&ws, L), want, mag, (size_t)n * nu, "dense") == 0,
                  "case %zu", ci);
        tensor_free(in);
        free(want);
        free(mag);
        model_workspace_free(&ws);
        model_free(&m);
    }
    struct tlayer t;
    CHECK_EQ_INT(tl_make(&t, &dense_ops, dense_cfg(0, 1, ACT_NONE), (struct shape){1, 1, 4}, err),
                 STRATA_E_ARG);
    CHECK(strstr(err, "dense_t") && strstr(err, "units"));
}

/* A model that is one linear dense layer over a 2×2×3 image, 4 images:
 *   - a training step's gradients are the closed form dW = inᵀ·g,
 *     db = Σ_images g (the graph keeps W as [units][in]), for in the images
 *     flattened (h, w, c), and a second backward gives them again (replaced,
 *     not accumulated);
 *   - the gradient of logit u with respect to pixel (h, w, c) is the kernel
 *     entry W[(h·2 + w)·3 + c][u] (model_grad, the image channels first):
 *     the flatten order, seen from the backward side. */
TEST(dense_gradients_closed_form)
{
    char err[STRATA_ERR_LEN] = "";
    const int n = 4, ni = 12, nu = 5;
    char layer[256];
    dense_json(layer, sizeof layer, nu, 1, ACT_NONE);
    struct model m;
    int rc = layer_model_make(&m, 2, 2, nu, layer, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc)
        return;
    struct rng r;
    rng_seed(&r, 50);
    randomize_params(&m, &r);
    const float *W = m.layers[0].w.kernel, *B = m.layers[0].w.bias;
    float in[48], g[20], xc[48];
    fill_uniform(in, 48, &r, -1, 1);
    fill_uniform(g, 20, &r, -1, 1);

    struct train_graph t;
    rc = train_graph_init(&t, &m, n, 1, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc == 0) {
        const float *p = train_graph_forward(&t, in, n, 1, err);
        CHECK_MSG(p != NULL, "%s", err);
        CHECK_EQ_INT(p ? train_graph_backward(&t, g, err) : -1, 0);
        struct optim_tensor ot[2];
        CHECK_EQ_INT(train_graph_optim_tensors(&t, ot), 2);
        CHECK(ot[0].len == (size_t)ni * nu && ot[1].len == (size_t)nu && ot[0].decay);
        float once[60];
        memcpy(once, ot[0].grad, sizeof once);
        for (int pass = 1; pass <= 2; pass++) {
            for (int i = 0; i < ni; i++)
                for (int u = 0; u < nu; u++) {
                    double s = 0;
                    for (int b = 0; b < n; b++)
                        s += (double)in[b * ni + i] * g[b * nu + u];
                    CHECK_NEAR(ot[0].grad[u * ni + i], s, 1e-5);
                }
            for (int u = 0; u < nu; u++) {
                double s = 0;
                for (int b = 0; b < n; b++)
                    s += g[b * nu + u];
                CHECK_NEAR(ot[1].grad[u], s, 1e-5);
            }
            if (pass == 1)
                CHECK_EQ_INT(train_graph_backward(&t, g, err), 0);
        }
        CHECK(memcmp(once, ot[0].grad, sizeof once) == 0);
    }
    train_graph_free(&t);

    struct model_grad mg;
    rc = model_grad_init(&mg, &m, n, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc == 0) {
        nhwc_to_nchw(xc, in, n, 2, 2, 3);
        const int cls[4] = {0, 3, 4, 1};
        rc = model_grad_run(&mg, xc, n, cls, err);
        CHECK_MSG(rc == 0, "%s", err);
        if (rc == 0) {
            const float *z = model_grad_logits(&mg);
            const float *dx = tview_f(model_grad_gradient(&mg, mg.input));
            for (int b = 0; b < n; b++) {
                for (int u = 0; u < nu; u++) {
                    double s = B[u];
                    for (int i = 0; i < ni; i++)
                        s += (double)in[b * ni + i] * W[i * nu + u];
                    CHECK_NEAR(z[b * nu + u], s, 1e-5);
                }
                for (int c = 0; c < 3; c++)
                    for (int p = 0; p < 4; p++)
                        CHECK_NEAR(dx[(b * 3 + c) * 4 + p], W[(p * 3 + c) * nu + cls[b]], 1e-7);
            }
        }
    }
    model_grad_deinit(&mg);
    model_free(&m);
}

TEST(dense_init_glorot)
{
    char err[STRATA_ERR_LEN];
    struct tlayer t;
    CHECK_EQ_INT(tl_make(&t, &dense_ops, dense_cfg(64, 1, ACT_SOFTMAX), (struct shape){1, 1, 200},
                         err), 0);
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

/* Flatten's configuration; then a model that is one flatten over a 3×4×3
 * image: its output is the image as it is stored, channels last (h, w, c),
 * bit for bit; and the gradient of output k with respect to the image
 * (model_grad, channels first) is 1 at pixel (k / 12, k / 3 % 4, k % 3) and
 * 0 elsewhere. */
TEST(flatten_is_a_copy)
{
    char err[STRATA_ERR_LEN] = "";
    struct tlayer t;
    struct layer_config cfg = {.kind = LAYER_FLATTEN, .name = "flat"};
    CHECK_EQ_INT(tl_make(&t, &flatten_ops, cfg, (struct shape){3, 4, 5}, err), 0);
    CHECK(t.l.out.h == 1 && t.l.out.w == 1 && t.l.out.c == 60);
    CHECK_EQ_INT(t.np, 0);
    tl_free(&t);
    struct layer_config bad = cfg;
    CHECK_EQ_INT(tl_make(&t, &flatten_ops, bad, (struct shape){0, 4, 5}, err), STRATA_E_ARG);
    CHECK(strstr(err, "flat") != NULL);

    struct model m;
    int rc = layer_model_make(&m, 3, 4, 36, "{\"type\": \"flatten\", \"name\": \"flat\"}", err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc)
        return;
    CHECK(m.layers[0].out.h == 1 && m.layers[0].out.w == 1 && m.layers[0].out.c == 36);
    float in[72], xc[72];
    for (int i = 0; i < 72; i++)
        in[i] = (float)i * 0.5f - 3;
    struct model_workspace ws;
    rc = model_workspace_init(&ws, &m, 2, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc == 0) {
        model_forward(&m, &ws, in, 2);
        CHECK(memcmp(model_output(&ws, 0), in, sizeof in) == 0);
    }
    model_workspace_free(&ws);

    struct model_grad mg;
    rc = model_grad_init(&mg, &m, 2, err);
    CHECK_MSG(rc == 0, "%s", err);
    nhwc_to_nchw(xc, in, 2, 3, 4, 3);
    int wrong = 0;
    for (int k = 0; rc == 0 && k < 36; k++) {
        const int cls[2] = {k, 35 - k};
        rc = model_grad_run(&mg, xc, 2, cls, err);
        CHECK_MSG(rc == 0, "%s", err);
        if (rc)
            break;
        const float *dx = tview_f(model_grad_gradient(&mg, mg.input));
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < 3; c++)
                for (int h = 0; h < 3; h++)
                    for (int w = 0; w < 4; w++) {
                        int hot = (h * 4 + w) * 3 + c == cls[b];
                        wrong += dx[((b * 3 + c) * 3 + h) * 4 + w] != (hot ? 1.0f : 0.0f);
                    }
    }
    CHECK_EQ_INT(wrong, 0);
    model_grad_deinit(&mg);
    model_free(&m);
}

/* Dropout's configuration; then a model dropout(0.3) → global_avg_pool over
 * 100×84×3 images, 4 of them (100 800 values):
 *   - model_forward (inference): the dropout's output is its input, bit for
 *     bit;
 *   - a training-mode forward (train_graph): each value is 0 or x/0.7, and
 *     about 70 % are kept; a second step draws another mask; in inference
 *     mode the training graph passes the values through;
 *   - rate 0 in training mode keeps everything unscaled.
 * Its backward (the gradient through the kept values, times 1/0.7) is
 * test_ops_shape.c's dropout_training. */
TEST(dropout_inference_identity_training_inverted)
{
    char err[STRATA_ERR_LEN] = "";
    struct tlayer t;
    struct layer_config cfg = {.kind = LAYER_DROPOUT, .name = "drop", .rate = 0.3f};
    CHECK_EQ_INT(tl_make(&t, &dropout_ops, cfg, (struct shape){10, 10, 250}, err), 0);
    CHECK(t.l.out.h == 10 && t.l.out.w == 10 && t.l.out.c == 250);
    CHECK_EQ_INT(t.np, 0);
    tl_free(&t);
    const float bad_rates[3] = {1.0f, -0.1f, NAN};
    for (int i = 0; i < 3; i++) {
        cfg.rate = bad_rates[i];
        err[0] = 0;
        CHECK_EQ_INT(tl_make(&t, &dropout_ops, cfg, (struct shape){1, 1, 4}, err), STRATA_E_ARG);
        CHECK(strstr(err, "drop") && strstr(err, "rate"));
    }

    const int n = 4, H = 100, W = 84;
    const size_t total = (size_t)n * H * W * 3;
    float *in = tensor_alloc(total), *xc = tensor_alloc(total), *first = tensor_alloc(total);
    struct rng r;
    rng_seed(&r, 7);
    fill_uniform(in, total, &r, 0.5, 1.5); /* never 0, so a zero output means dropped */
    nhwc_to_nchw(xc, in, n, H, W, 3);
    const char *const layers[2] = {
        "{\"type\": \"dropout\", \"name\": \"drop\", \"rate\": 0.3}, {\"type\": \"global_avg_pool\"}",
        "{\"type\": \"dropout\", \"name\": \"drop\", \"rate\": 0}, {\"type\": \"global_avg_pool\"}"};
    for (int v = 0; v < 2; v++) {
        struct model m;
        int rc = layer_model_make(&m, H, W, 3, layers[v], err);
        CHECK_MSG(rc == 0, "%s", err);
        if (rc)
            continue;
        struct model_workspace ws;
        rc = model_workspace_init(&ws, &m, n, err);
        CHECK_MSG(rc == 0, "%s", err);
        if (rc == 0) {
            model_forward(&m, &ws, in, n);
            CHECK(memcmp(model_output(&ws, 0), in, total * sizeof(float)) == 0);
        }
        model_workspace_free(&ws);

        struct train_graph tg;
        rc = train_graph_init(&tg, &m, n, 7, err);
        CHECK_MSG(rc == 0, "%s", err);
        if (rc) {
            model_free(&m);
            continue;
        }
        CHECK(train_graph_forward(&tg, in, n, 1, err) != NULL);
        const float *y = tview_f(graph_value_view(&tg.ws, tg.mg->shown[0]));
        if (v == 1) {
            /* rate 0 */
            CHECK(memcmp(y, xc, total * sizeof(float)) == 0);
        } else {
            size_t kept = 0;
            int wrong = 0;
            for (size_t i = 0; i < total; i++) {
                int k = y[i] != 0.0f;
                kept += (size_t)k;
                wrong += k && !(fabsf(y[i] - xc[i] / 0.7f) <= 1e-6f * (xc[i] / 0.7f));
            }
            CHECK_EQ_INT(wrong, 0);
            /* Binomial(100 800, 0.7): sd = 145, so ±750 is over 5 sigma. */
            CHECK_NEAR((double)kept, 0.7 * total, 750);
            printf("#   dropout 0.3: kept %zu of %zu\n", kept, total);
            /* a second step draws another mask */
            memcpy(first, y, total * sizeof(float));
            CHECK(train_graph_forward(&tg, in, n, 1, err) != NULL);
            y = tview_f(graph_value_view(&tg.ws, tg.mg->shown[0]));
            size_t differ = 0;
            for (size_t i = 0; i < total; i++)
                differ += (y[i] == 0.0f) != (first[i] == 0.0f);
            /* two independent masks differ at 2·0.3·0.7 = 42 % of places */
            CHECK_MSG(differ > total / 3, "the second mask differs at %zu places", differ);
            /* not training: the identity */
            CHECK(train_graph_forward(&tg, in, n, 0, err) != NULL);
            y = tview_f(graph_value_view(&tg.ws, tg.mg->shown[0]));
            CHECK(memcmp(y, xc, total * sizeof(float)) == 0);
        }
        train_graph_free(&tg);
        model_free(&m);
    }
    tensor_free(in);
    tensor_free(xc);
    tensor_free(first);
}

int main(void)
{
    RUN(conv_configure_shapes_and_errors);
    RUN(conv_hand_worked);
    RUN(conv_forward_matches_direct_convolution);
    RUN(conv_forward_multi_chunk);
    RUN(conv_backward_multi_chunk);
    RUN(conv_init_he_and_glorot);
    RUN(dense_forward_matches_naive_product);
    RUN(dense_gradients_closed_form);
    RUN(dense_init_glorot);
    RUN(flatten_is_a_copy);
    RUN(dropout_inference_identity_training_inverted);
    return check_done();
}
