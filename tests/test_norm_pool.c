/*
 * test_norm_pool.c — batch_norm, maxpool2d, global_avg_pool, the activations
 * (fused into a layer and as layers of their own) and the layer registry:
 * what these layers of strata's models mean, as the graph executor runs
 * them.
 *
 * A layer type's own code is its configuration: configure (output shapes,
 * messages naming the layer and the field), params and init, called
 * directly here, with the activation names and the registry. Everything
 * else goes through a strata model (model.json text, model_parse_json,
 * weights written into the layers, then model_forward, train_graph or
 * model_grad), so what is checked is strata's semantics as the graph
 * executes them. Evidence:
 *   - hand-worked cases, values written out below: softmax over the
 *     channels, saturating sigmoid, relu at ±0, max-pool windows with
 *     TensorFlow's "same" padding (the odd pad after, padding never winning),
 *     ties going to the first element, global average pooling; and the
 *     gradients of max-pool (to each window's winner) and of global average
 *     pooling (1/positions to each) with respect to the image (model_grad);
 *   - independent references: a naive max-pool over an explicitly padded
 *     grid on 48 shapes; batch norm from its formula in double, with the
 *     stored statistics and, in training mode (train_graph), with the batch's
 *     — over 600 channels on large per-channel offsets too;
 *   - batch norm's running statistics after training-mode steps: Keras's
 *     momentum (the weight of the old value), the unbiased batch variance,
 *     a batch of one value per channel; and Σ over a channel of the input's
 *     gradient being 0 in training mode.
 * Finite-difference checks of each op's backward (Relu, Sigmoid, Softmax,
 * MaxPool, GlobalAveragePool, BatchNormalization in both modes) are the graph
 * ops' tests (test_ops_math.c, test_ops_conv.c); of a whole strata model on
 * the training graph, test_model.c's backward_matches_finite_differences.
 *
 * A strata model's input has 3 channels. A layer tested on C ≠ 3 channels
 * reads them from a 1×1 convolution (the "feeder") before it, and the
 * references take that layer's output, as the graph computed it, for their
 * input.
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
#include "train_graph.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- a layer configured by hand ------------------------------------------- */

struct fixture {
    struct layer l;
    const struct layer_ops *ops;
    float *params;
};

static float **tensor_slot(struct layer_tensors *t, const char *name)
{
    if (strcmp(name, "kernel") == 0) return &t->kernel;
    if (strcmp(name, "bias") == 0) return &t->bias;
    if (strcmp(name, "gamma") == 0) return &t->gamma;
    if (strcmp(name, "beta") == 0) return &t->beta;
    if (strcmp(name, "moving_mean") == 0) return &t->moving_mean;
    if (strcmp(name, "moving_variance") == 0) return &t->moving_var;
    return NULL;
}

/* Configures, lays the tensors params() lists out in one slab, points w at
 * them and calls init; returns configure's status. */
static int fixture_init(struct fixture *f, const struct layer_ops *ops, struct layer_config cfg,
                        struct shape in, char *err)
{
    memset(f, 0, sizeof *f);
    f->ops = ops;
    f->l.cfg = cfg;
    f->l.cfg.kind = ops->kind;
    f->l.in = in;
    int rc = ops->configure(&f->l, err);
    if (rc)
        return rc;
    struct param_desc d[LAYER_MAX_PARAMS];
    int np = ops->params(&f->l, d);
    size_t total = 0;
    for (int i = 0; i < np; i++) {
        size_t k = 1;
        for (int j = 0; j < d[i].ndim; j++)
            k *= (size_t)d[i].dims[j];
        total += k;
    }
    f->params = calloc(total + 1, sizeof(float));
    size_t off = 0;
    for (int i = 0; i < np; i++) {
        size_t k = 1;
        for (int j = 0; j < d[i].ndim; j++)
            k *= (size_t)d[i].dims[j];
        *tensor_slot(&f->l.w, d[i].name) = f->params + off;
        off += k;
    }
    struct rng r;
    rng_seed(&r, 1);
    ops->init(&f->l, &r);
    return 0;
}

static void fixture_free(struct fixture *f)
{
    free(f->params);
}

static void fill_normal(struct rng *r, float *v, size_t n, double mean, double sd)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(mean + sd * rng_normal(r));
}

static void fill_uniform(struct rng *r, float *v, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(lo + (hi - lo) * rng_uniform(r));
}

/* ---- a strata model --------------------------------------------------------- */

/* A workspace for m and one forward of in[n]; returns 0 or the status (the
 * workspace is then freed already). */
static int run_model(struct model *m, struct model_workspace *ws, const float *in, int n,
                     char *err)
{
    model_graph_close(m); /* built anew from the weights as they are now */
    int rc = model_workspace_init(ws, m, n, err);
    if (rc) {
        model_workspace_free(ws);
        return rc;
    }
    model_forward(m, ws, in, n);
    return 0;
}

/* A model that is one 1×1 convolution over a 1×len×3 image with the identity
 * kernel (output channel c = input channel c: x·1 plus two exact zeros) and
 * no bias, fused with act: its output is act of the image itself, as strata
 * applies a fused activation (channels last). Runs in[len·3] and copies the
 * output to out. Returns 0 or a status. */
static int fused_identity(enum activation act, int len, const float *in, float *out, char *err)
{
    char layer[256];
    snprintf(layer, sizeof layer,
             "{\"type\": \"conv2d\", \"filters\": 3, \"kernel_size\": 1, \"activation\": \"%s\","
             " \"use_bias\": false}",
             activation_name(act));
    struct model m;
    int rc = layer_model_make(&m, 1, len, 3 * len, layer, err);
    if (rc)
        return rc;
    for (int i = 0; i < 3; i++)
        for (int o = 0; o < 3; o++)
            m.layers[0].w.kernel[i * 3 + o] = i == o ? 1.0f : 0.0f;
    struct model_workspace ws;
    if ((rc = run_model(&m, &ws, in, 1, err)) == 0) {
        memcpy(out, model_output(&ws, 0), (size_t)len * 3 * sizeof(float));
        model_workspace_free(&ws);
    }
    model_free(&m);
    return rc;
}

/* ---- activations: hand-worked -------------------------------------------- */

TEST(softmax_known_vector)
{
    /* exp(1−3) = 0.1353352832, exp(2−3) = 0.3678794412, exp(0) = 1,
     * sum = 1.5032147244 → 0.0900305732, 0.2447284711, 0.6652409558.
     * The second row is the first shifted by 1000: same result, and no
     * overflow (exp(1002) would trap). Fused into a 1×1 convolution (softmax
     * over the channels of each position, the two rows being two
     * positions), and into a dense layer with the identity kernel (over its
     * units, the two rows being two images). */
    const float x[6] = {1, 2, 3, 1001, 1002, 1003};
    const double p[3] = {0.0900305732, 0.2447284711, 0.6652409558};
    char err[STRATA_ERR_LEN] = "";
    float y[6];
    int rc = fused_identity(ACT_SOFTMAX, 2, x, y, err);
    CHECK_MSG(rc == 0, "%s", err);
    for (int r = 0; rc == 0 && r < 2; r++)
        for (int i = 0; i < 3; i++)
            CHECK_NEAR(y[r * 3 + i], p[i], 1e-6);

    struct model m;
    rc = layer_model_make(&m, 1, 1, 3,
                    "{\"type\": \"dense\", \"units\": 3, \"activation\": \"softmax\"}", err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc)
        return;
    for (int i = 0; i < 9; i++)
        m.layers[0].w.kernel[i] = i % 4 == 0 ? 1.0f : 0.0f; /* [in][units], the identity */
    memset(m.layers[0].w.bias, 0, 3 * sizeof(float));
    struct model_workspace ws;
    rc = run_model(&m, &ws, x, 2, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc == 0) {
        const float *o = model_output(&ws, 0);
        for (int r = 0; r < 2; r++)
            for (int i = 0; i < 3; i++)
                CHECK_NEAR(o[r * 3 + i], p[i], 1e-6);
        model_workspace_free(&ws);
    }
    model_free(&m);
}

TEST(sigmoid_relu_values)
{
    /* Fused into a 1×1 convolution with the identity kernel (fused_identity).
     * σ(0) = 1/2; σ(2) = 1/(1 + e^-2) = 1/1.1353352832 = 0.8807970780;
     * σ(−2) = 1 − σ(2) = 0.1192029220; σ(0.5) = 1/(1 + e^-0.5) =
     * 1/1.6065306597 = 0.6224593312, σ(−0.5) = 0.3775406688; ±100 and ±1000
     * saturate without an overflow trap. */
    char err[STRATA_ERR_LEN] = "";
    const float sx[9] = {0, 2, -2, 100, -100, 1000, -1000, 0.5f, -0.5f};
    float s[9];
    int rc = fused_identity(ACT_SIGMOID, 3, sx, s, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc == 0) {
        CHECK_NEAR(s[0], 0.5, 1e-7);
        CHECK_NEAR(s[1], 0.8807970780, 1e-6);
        CHECK_NEAR(s[2], 0.1192029220, 1e-6);
        CHECK(s[3] == 1.0f);
        CHECK(s[4] >= 0.0f && s[4] < 1e-40f);
        CHECK(s[5] == 1.0f);
        CHECK(s[6] == 0.0f);
        CHECK_NEAR(s[7], 0.6224593312, 1e-6);
        CHECK_NEAR(s[8], 0.3775406688, 1e-6);
    }

    const float rx[6] = {-1.5f, 0.0f, 2.5f, -0.0f, 1e-30f, 7.0f};
    float r[6];
    rc = fused_identity(ACT_RELU, 2, rx, r, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc == 0)
        CHECK(r[0] == 0.0f && r[1] == 0.0f && r[2] == 2.5f && r[3] == 0.0f && r[4] == 1e-30f &&
              r[5] == 7.0f);

    const float ix[3] = {-4, 0.5f, 7};
    float id[3];
    rc = fused_identity(ACT_NONE, 1, ix, id, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc == 0)
        CHECK(id[0] == -4 && id[1] == 0.5f && id[2] == 7);
}

TEST(activation_names)
{
    const char *names[] = {"relu", "sigmoid", "softmax", "linear", "none"};
    const enum activation acts[] = {ACT_RELU, ACT_SIGMOID, ACT_SOFTMAX, ACT_NONE, ACT_NONE};
    for (int i = 0; i < 5; i++) {
        enum activation a = ACT_SOFTMAX;
        if (i == 2)
            a = ACT_NONE;
        CHECK_EQ_INT(activation_parse(names[i], &a), 0);
        CHECK_EQ_INT(a, acts[i]);
        enum activation back = ACT_RELU;
        CHECK_EQ_INT(activation_parse(activation_name(acts[i]), &back), 0);
        CHECK_EQ_INT(back, acts[i]);
    }
    enum activation a = ACT_SIGMOID;
    CHECK(activation_parse("tanh", &a) < 0);
    CHECK(activation_parse("Relu", &a) < 0);
    CHECK(activation_parse("", &a) < 0);
    CHECK_EQ_INT(a, ACT_SIGMOID);
}

/* ---- standalone activation layers ---------------------------------------- */

static const struct layer_ops *const act_layer_ops[3] = {&relu_ops, &sigmoid_ops,
                                                         &softmax_ops};
static const enum activation act_of_layer[3] = {ACT_RELU, ACT_SIGMOID, ACT_SOFTMAX};

/* A 1×2×3 map through a model that is the one layer relu, sigmoid or softmax:
 * against the formula in double (softmax over the 3 channels of each
 * position), and bit for bit against the same activation fused into a
 * layer. */
TEST(standalone_activation_forward)
{
    struct shape in = {1, 2, 3};
    const float x[6] = {1, 2, 3, -1, 0, 4};
    char err[STRATA_ERR_LEN] = "";
    for (int k = 0; k < 3; k++) {
        struct fixture f;
        CHECK_EQ_INT(fixture_init(&f, act_layer_ops[k], (struct layer_config){.name = "a"}, in,
                                  err),
                     0);
        CHECK(f.l.out.h == 1 && f.l.out.w == 2 && f.l.out.c == 3);
        struct param_desc d[LAYER_MAX_PARAMS];
        CHECK_EQ_INT(f.ops->params(&f.l, d), 0);
        fixture_free(&f);

        char layer[64];
        snprintf(layer, sizeof layer, "{\"type\": \"%s\"}", act_layer_ops[k]->type);
        struct model m;
        int rc = layer_model_make(&m, 1, 2, 6, layer, err);
        CHECK_MSG(rc == 0, "%s", err);
        if (rc)
            continue;
        struct model_workspace ws;
        rc = run_model(&m, &ws, x, 1, err);
        CHECK_MSG(rc == 0, "%s", err);
        if (rc == 0) {
            const float *y = model_output(&ws, 0);
            for (int p = 0; p < 2; p++) {
                double sum = 0;
                for (int c = 0; c < 3; c++)
                    sum += exp(x[p * 3 + c]);
                for (int c = 0; c < 3; c++) {
                    double v = x[p * 3 + c];
                    double want = k == 0 ? (v > 0 ? v : 0) : k == 1 ? 1 / (1 + exp(-v))
                                                                    : exp(v) / sum;
                    CHECK_NEAR(y[p * 3 + c], want, 1e-7 * (1 + fabs(want)));
                }
            }
            float fused[6];
            CHECK_EQ_INT(fused_identity(act_of_layer[k], 2, x, fused, err), 0);
            CHECK_MSG(memcmp(fused, y, sizeof fused) == 0, "%s: standalone and fused differ",
                      act_layer_ops[k]->type);
            if (k == 2) {
                /* by hand: (1,2,3) as in softmax_known_vector */
                CHECK_NEAR(y[0], 0.0900305732, 1e-6);
                CHECK_NEAR(y[2], 0.6652409558, 1e-6);
                CHECK_NEAR(y[3] + y[4] + y[5], 1.0, 1e-6);
            }
            model_workspace_free(&ws);
        }
        model_free(&m);
    }
}

/* ---- max-pool ------------------------------------------------------------ */

static struct layer_config pool_cfg(int pool, int stride, enum padding pad)
{
    struct layer_config c = {.pool = pool, .stride = stride, .padding = pad};
    strcpy(c.name, "pool_1");
    return c;
}

/* A model that is one maxpool2d over an h×w×3 image (then a flatten when
 * `flat`, for model_grad, whose logits are a vector per image). */
static int pool_model(struct model *m, int h, int w, int pool, int stride, enum padding pad,
                      int out_size, int flat, char *err)
{
    char layers[256];
    int k = snprintf(layers, sizeof layers,
                     "{\"type\": \"maxpool2d\", \"name\": \"pool_1\", \"pool_size\": %d", pool);
    if (stride)
        k += snprintf(layers + k, sizeof layers - (size_t)k, ", \"strides\": %d", stride);
    snprintf(layers + k, sizeof layers - (size_t)k, ", \"padding\": \"%s\"}%s",
             pad == PADDING_SAME ? "same" : "valid", flat ? ", {\"type\": \"flatten\"}" : "");
    return layer_model_make(m, h, w, out_size, layers, err);
}

/* Windows (stride 2) of x:  [1 5 | 2 0]      maxima 5 (index 1)  8 (index 6)
 *                           [3 4 | 8 7]
 *                           [-1 -2 | 6 9]    maxima -1 (index 8) 11 (index 15)
 *                           [-3 -4 | 10 11]
 * The image has x in channel 0; in channel 1 −x, whose maxima are the
 * negated window minima: −min{1,5,3,4} = −1 (index 0), −min{2,0,8,7} = 0
 * (index 3), −min{−1,−2,−3,−4} = 4 (index 13), −min{6,9,10,11} = −6 (index
 * 10); in channel 2 flat windows — 7 7 / 7 7, 1 2 / 2 2, 0 0 / 0 0,
 * 3 3 / 3 3 — whose ties go to the first element in scan order: indices 0,
 * 3, 8, 10. The gradient of each output with respect to the image
 * (model_grad, through a flatten) is 1 at that window's winner and 0
 * elsewhere. */
TEST(maxpool_2x2_on_4x4)
{
    const float x[16] = {1, 5, 2, 0, 3, 4, 8, 7, -1, -2, 6, 9, -3, -4, 10, 11};
    const float flat[16] = {7, 7, 1, 2, 7, 7, 2, 2, 0, 0, 3, 3, 0, 0, 3, 3};
    const float want[4][3] = {{5, -1, 7}, {8, 0, 2}, {-1, 4, 0}, {11, -6, 3}};
    const int winner[4][3] = {{1, 0, 0}, {6, 3, 3}, {8, 13, 8}, {15, 10, 10}};
    char err[STRATA_ERR_LEN] = "";
    struct fixture f;
    CHECK_EQ_INT(fixture_init(&f, &maxpool2d_ops, pool_cfg(2, 0, PADDING_VALID),
                              (struct shape){4, 4, 1}, err),
                 0);
    CHECK_EQ_INT(f.l.cfg.stride, 2); /* stride 0 defaults to the pool size */
    CHECK(f.l.out.h == 2 && f.l.out.w == 2 && f.l.out.c == 1);
    fixture_free(&f);

    float img[48], xc[48];
    for (int i = 0; i < 16; i++) {
        img[3 * i] = x[i];
        img[3 * i + 1] = -x[i];
        img[3 * i + 2] = flat[i];
    }
    struct model m;
    int rc = pool_model(&m, 4, 4, 2, 0, PADDING_VALID, 12, 1, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc)
        return;
    CHECK_EQ_INT(m.layers[0].cfg.stride, 2);
    struct model_workspace ws;
    rc = run_model(&m, &ws, img, 1, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc == 0) {
        const float *y = model_output(&ws, 0);
        for (int w = 0; w < 4; w++)
            for (int c = 0; c < 3; c++)
                CHECK_MSG(y[w * 3 + c] == want[w][c], "window %d channel %d: %g", w, c,
                          y[w * 3 + c]);
        model_workspace_free(&ws);
    }

    struct model_grad mg;
    rc = model_grad_init(&mg, &m, 1, err);
    CHECK_MSG(rc == 0, "%s", err);
    nhwc_to_nchw(xc, img, 1, 4, 4, 3);
    for (int k = 0; rc == 0 && k < 12; k++) {
        rc = model_grad_run(&mg, xc, 1, &k, err);
        CHECK_MSG(rc == 0, "%s", err);
        if (rc)
            break;
        const float *dx = tview_f(model_grad_gradient(&mg, mg.input));
        int wrong = 0;
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < 16; p++)
                wrong += dx[c * 16 + p] != (c == k % 3 && p == winner[k / 3][k % 3] ? 1.0f : 0.0f);
        CHECK_MSG(wrong == 0, "output %d (window %d, channel %d): %d gradients wrong", k, k / 3,
                  k % 3, wrong);
    }
    model_grad_deinit(&mg);
    model_free(&m);
}

/* Runs a model that is one max-pool over the h×w×3 image img and compares
 * its output with want (exactly); returns the number of mismatches, or -1. */
static int pool_case(int h, int w, int pool, int stride, enum padding pad, const float *img,
                     const float *want, int out_size)
{
    char err[STRATA_ERR_LEN] = "";
    struct model m;
    int rc = pool_model(&m, h, w, pool, stride, pad, out_size, 0, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc)
        return -1;
    struct model_workspace ws;
    rc = run_model(&m, &ws, img, 1, err);
    CHECK_MSG(rc == 0, "%s", err);
    int bad = -1;
    if (rc == 0) {
        const float *y = model_output(&ws, 0);
        bad = 0;
        for (int i = 0; i < out_size; i++)
            if (y[i] != want[i]) {
                if (bad < 3)
                    printf("#   [%d] got %g want %g\n", i, y[i], want[i]);
                bad++;
            }
        model_workspace_free(&ws);
    }
    model_free(&m);
    return bad;
}

TEST(maxpool_same_padding_odd_input)
{
    /* 3×3 of negative values, pool 2 stride 2, same: out ceil(3/2) = 2,
     * pad_total = (2−1)·2 + 2 − 3 = 1, all of it after. Windows:
     * {−1,−2,−4,−5} → −1, {−3,−6} → −3, {−7,−8} → −7, {−9} → −9.
     * A padded zero taking part would have won the last three. Channel 1
     * holds x − 10 and channel 2 holds 2x (the same winners). */
    const float x[9] = {-1, -2, -3, -4, -5, -6, -7, -8, -9};
    float img[27], want[27];
    for (int i = 0; i < 9; i++) {
        img[3 * i] = x[i];
        img[3 * i + 1] = x[i] - 10;
        img[3 * i + 2] = 2 * x[i];
    }
    const float w22[4] = {-1, -3, -7, -9};
    for (int i = 0; i < 4; i++) {
        want[3 * i] = w22[i];
        want[3 * i + 1] = w22[i] - 10;
        want[3 * i + 2] = 2 * w22[i];
    }
    CHECK_EQ_INT(pool_case(3, 3, 2, 2, PADDING_SAME, img, want, 12), 0);

    /* Pool 3 stride 1 same: pad 1 each side; each output is the max of its
     * clipped 3×3 neighbourhood, i.e. of its top-left-most member here. */
    const float w33[9] = {-1, -1, -2, -1, -1, -2, -4, -4, -5};
    for (int i = 0; i < 9; i++) {
        want[3 * i] = w33[i];
        want[3 * i + 1] = w33[i] - 10;
        want[3 * i + 2] = 2 * w33[i];
    }
    CHECK_EQ_INT(pool_case(3, 3, 3, 1, PADDING_SAME, img, want, 27), 0);

    /* Uneven split: width 4, pool 3, stride 2, same → out 2, pad_total 1,
     * TensorFlow puts it after: windows {0,1,2} and {2,3}.
     *   channel 0 = 1 2 3 0:     (3, 3); padding before would give (2, 3)
     *   channel 1 = 0 3 2 1:     (3, 2); before: (3, 3)
     *   channel 2 = −1 −2 −3 −4: (−1, −3); before: (−1, −2); a padded zero
     *   taking part: (−1, 0) */
    const float row[12] = {1, 0, -1, 2, 3, -2, 3, 2, -3, 0, 1, -4};
    const float wrow[6] = {3, 3, -1, 3, 2, -3};
    CHECK_EQ_INT(pool_case(1, 4, 3, 2, PADDING_SAME, row, wrow, 6), 0);

    /* Output sizes: 5×7 with pool 2: same → 3×4, valid → 2×3; pool 3
     * stride 2 valid on 7 → floor(4/2)+1 = 3. */
    struct fixture f;
    fixture_init(&f, &maxpool2d_ops, pool_cfg(2, 0, PADDING_SAME), (struct shape){5, 7, 2}, NULL);
    CHECK(f.l.out.h == 3 && f.l.out.w == 4 && f.l.out.c == 2);
    fixture_free(&f);
    fixture_init(&f, &maxpool2d_ops, pool_cfg(2, 0, PADDING_VALID), (struct shape){5, 7, 2}, NULL);
    CHECK(f.l.out.h == 2 && f.l.out.w == 3);
    fixture_free(&f);
    fixture_init(&f, &maxpool2d_ops, pool_cfg(3, 2, PADDING_VALID), (struct shape){7, 7, 1}, NULL);
    CHECK(f.l.out.h == 3 && f.l.out.w == 3);
    fixture_free(&f);
}

/* TensorFlow's output size and leading padding for a window p, stride s. */
static void pool_geometry(int in, int p, int s, enum padding pad, int *out, int *before)
{
    if (pad == PADDING_SAME) {
        *out = (int)ceil((double)in / s);
        int total = (*out - 1) * s + p - in;
        *before = total > 0 ? total / 2 : 0;
    } else {
        *out = (int)floor((double)(in - p) / s) + 1;
        *before = 0;
    }
}

/* Naive reference: pad the input explicitly with −∞ (TensorFlow's split:
 * the smaller half before), then take plain window maxima. */
static void maxpool_reference(float *out, const float *in, int n, int H, int W, int C, int p,
                              int s, enum padding pad, int *OHp, int *OWp)
{
    int OH, OW, pt, pl;
    pool_geometry(H, p, s, pad, &OH, &pt);
    pool_geometry(W, p, s, pad, &OW, &pl);
    int PH = OH * s + p, PW = OW * s + p;
    float *padded = malloc((size_t)PH * PW * C * sizeof(float));
    for (int b = 0; b < n; b++) {
        for (int i = 0; i < PH * PW * C; i++)
            padded[i] = -INFINITY;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int c = 0; c < C; c++)
                    padded[((y + pt) * PW + x + pl) * C + c] =
                        in[(((size_t)b * H + y) * W + x) * C + c];
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++)
                for (int c = 0; c < C; c++) {
                    float m = -INFINITY;
                    for (int ky = 0; ky < p; ky++)
                        for (int kx = 0; kx < p; kx++) {
                            float v = padded[((oy * s + ky) * PW + ox * s + kx) * C + c];
                            m = v > m ? v : m;
                        }
                    out[(((size_t)b * OH + oy) * OW + ox) * C + c] = m;
                }
    }
    free(padded);
    *OHp = OH;
    *OWp = OW;
}

/* 48 configurations (pools 1 to 4, strides 1 to 3, both paddings, four
 * sizes, 1 to 5 channels), two images each, mostly negative values so that
 * padding must lose: a model [feeder →] maxpool against the reference,
 * exactly. */
TEST(maxpool_matches_reference)
{
    struct rng r;
    rng_seed(&r, 5);
    const int pools[] = {1, 2, 3, 2, 3, 4}, strides[] = {1, 2, 2, 1, 3, 3};
    const int sizes[][2] = {{4, 4}, {5, 7}, {8, 6}, {9, 9}};
    int configs = 0;
    for (int pi = 0; pi < 6; pi++)
        for (int si = 0; si < 4; si++)
            for (int pad = 0; pad < 2; pad++) {
                int H = sizes[si][0], W = sizes[si][1], C = 1 + (pi + si) % 5, n = 2;
                int OH, OW, before;
                pool_geometry(H, pools[pi], strides[pi], (enum padding)pad, &OH, &before);
                pool_geometry(W, pools[pi], strides[pi], (enum padding)pad, &OW, &before);
                const int feeder = C != 3, L = feeder;
                char err[STRATA_ERR_LEN] = "", layers[512];
                int k = 0;
                if (feeder)
                    k = snprintf(layers, sizeof layers,
                                 "{\"type\": \"conv2d\", \"name\": \"feeder\", \"filters\": %d,"
                                 " \"kernel_size\": 1}, ",
                                 C);
                snprintf(layers + k, sizeof layers - (size_t)k,
                         "{\"type\": \"maxpool2d\", \"pool_size\": %d, \"strides\": %d,"
                         " \"padding\": \"%s\"}",
                         pools[pi], strides[pi], pad ? "same" : "valid");
                struct model m;
                int rc = layer_model_make(&m, H, W, OH * OW * C, layers, err);
                CHECK_MSG(rc == 0, "pool %d stride %d pad %d in %dx%dx%d: %s", pools[pi],
                          strides[pi], pad, H, W, C, err);
                if (rc)
                    continue;
                CHECK(m.layers[L].out.h == OH && m.layers[L].out.w == OW);
                size_t ni = (size_t)n * H * W * 3, no = (size_t)n * OH * OW * C;
                float *img = malloc(ni * 4), *ref = malloc(no * 4);
                if (feeder) {
                    /* N(0, 1) pixels, kernel in ±0.3, bias −3: values near −3 */
                    fill_normal(&r, img, ni, 0.0, 1.0);
                    fill_uniform(&r, m.layers[0].w.kernel, (size_t)3 * C, -0.3, 0.3);
                    for (int c = 0; c < C; c++)
                        m.layers[0].w.bias[c] = -3.0f;
                } else {
                    fill_normal(&r, img, ni, -3.0, 1.0);
                }
                struct model_workspace ws;
                rc = run_model(&m, &ws, img, n, err);
                CHECK_MSG(rc == 0, "%s", err);
                if (rc == 0) {
                    const float *x = feeder ? model_output(&ws, 0) : img;
                    maxpool_reference(ref, x, n, H, W, C, pools[pi], strides[pi],
                                      (enum padding)pad, &OH, &OW);
                    const float *y = model_output(&ws, L);
                    int bad = 0;
                    for (size_t i = 0; i < no; i++)
                        bad += y[i] != ref[i];
                    CHECK_MSG(bad == 0, "pool %d stride %d pad %d in %dx%dx%d: %d mismatches",
                              pools[pi], strides[pi], pad, H, W, C, bad);
                    configs++;
                    model_workspace_free(&ws);
                }
                free(img), free(ref);
                model_free(&m);
            }
    CHECK_EQ_INT(configs, 48);
}

TEST(maxpool_configure_errors)
{
    char err[STRATA_ERR_LEN];
    struct fixture f;
    err[0] = 0;
    CHECK_EQ_INT(fixture_init(&f, &maxpool2d_ops, pool_cfg(0, 0, PADDING_VALID),
                              (struct shape){4, 4, 1}, err),
                 STRATA_E_ARG);
    CHECK(strstr(err, "pool_1") && strstr(err, "pool_size"));
    CHECK_EQ_INT(fixture_init(&f, &maxpool2d_ops, pool_cfg(2, -1, PADDING_VALID),
                              (struct shape){4, 4, 1}, err),
                 STRATA_E_ARG);
    CHECK(strstr(err, "pool_1") && strstr(err, "strides"));
    CHECK_EQ_INT(fixture_init(&f, &maxpool2d_ops, pool_cfg(5, 0, PADDING_VALID),
                              (struct shape){4, 4, 1}, err),
                 STRATA_E_ARG);
    CHECK(strstr(err, "pool_1") && strstr(err, "larger"));
    /* the same pool with same padding is fine: one 1×1 output */
    CHECK_EQ_INT(fixture_init(&f, &maxpool2d_ops, pool_cfg(5, 0, PADDING_SAME),
                              (struct shape){4, 4, 1}, err),
                 0);
    CHECK(f.l.out.h == 1 && f.l.out.w == 1);
    fixture_free(&f);
    struct layer_config c = pool_cfg(2, 0, PADDING_VALID);
    c.activation = ACT_RELU;
    CHECK_EQ_INT(fixture_init(&f, &maxpool2d_ops, c, (struct shape){4, 4, 1}, err),
                 STRATA_E_ARG);
    CHECK(strstr(err, "pool_1") && strstr(err, "activation"));
}

/* ---- global average pool ------------------------------------------------- */

TEST(gap_hand_worked)
{
    /* 2×2×3, two images. Image 0: channel 0 = 1,2,3,4 → 2.5; channel 1 =
     * −1,5,0,4 → 2; channel 2 = 0.5,1.5,−1,3 → 1. Image 1: channel 0 =
     * 10,10,10,−2 → 7; channel 1 = 0 → 0; channel 2 = 8,−8,4,0 → 1.
     * The gradient of output c with respect to the image (model_grad) is
     * 1/4 at each of channel c's four positions and 0 elsewhere. */
    const float x[24] = {1, -1, 0.5f, 2, 5, 1.5f, 3, 0, -1, 4, 4, 3,
                         10, 0, 8, 10, 0, -8, 10, 0, 4, -2, 0, 0};
    char err[STRATA_ERR_LEN] = "";
    struct fixture f;
    CHECK_EQ_INT(fixture_init(&f, &global_avg_pool_ops, (struct layer_config){.name = "gap"},
                              (struct shape){2, 2, 2}, err),
                 0);
    CHECK(f.l.out.h == 1 && f.l.out.w == 1 && f.l.out.c == 2);
    fixture_free(&f);

    struct model m;
    int rc = layer_model_make(&m, 2, 2, 3, "{\"type\": \"global_avg_pool\", \"name\": \"gap\"}", err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc)
        return;
    struct model_workspace ws;
    rc = run_model(&m, &ws, x, 2, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc == 0) {
        const float *y = model_output(&ws, 0);
        CHECK(y[0] == 2.5f && y[1] == 2.0f && y[2] == 1.0f);
        CHECK(y[3] == 7.0f && y[4] == 0.0f && y[5] == 1.0f);
        model_workspace_free(&ws);
    }
    struct model_grad mg;
    rc = model_grad_init(&mg, &m, 2, err);
    CHECK_MSG(rc == 0, "%s", err);
    float xc[24];
    nhwc_to_nchw(xc, x, 2, 2, 2, 3);
    const int cls[3][2] = {{0, 2}, {1, 1}, {2, 0}};
    for (int t = 0; rc == 0 && t < 3; t++) {
        rc = model_grad_run(&mg, xc, 2, cls[t], err);
        CHECK_MSG(rc == 0, "%s", err);
        if (rc)
            break;
        const float *dx = tview_f(model_grad_gradient(&mg, mg.input));
        int wrong = 0;
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < 3; c++)
                for (int p = 0; p < 4; p++)
                    wrong += dx[(b * 3 + c) * 4 + p] != (c == cls[t][b] ? 0.25f : 0.0f);
        CHECK_EQ_INT(wrong, 0);
    }
    model_grad_deinit(&mg);
    model_free(&m);
}

/* ---- batch norm ---------------------------------------------------------- */

static struct layer_config bn_cfg(enum activation act, float eps, float momentum)
{
    struct layer_config c = {.activation = act, .epsilon = eps, .momentum = momentum};
    strcpy(c.name, "bn_1");
    return c;
}

static double act_ref(enum activation act, double z)
{
    switch (act) {
    case ACT_RELU: return z > 0 ? z : 0;
    case ACT_SIGMOID: return 1.0 / (1.0 + exp(-z));
    default: return z;
    }
}

TEST(batch_norm_params_and_init)
{
    struct fixture f;
    CHECK_EQ_INT(fixture_init(&f, &batch_norm_ops, bn_cfg(ACT_NONE, 1e-3f, 0.99f),
                              (struct shape){2, 2, 3}, NULL),
                 0);
    struct param_desc d[LAYER_MAX_PARAMS];
    CHECK_EQ_INT(f.ops->params(&f.l, d), 4);
    const char *names[4] = {"gamma", "beta", "moving_mean", "moving_variance"};
    for (int i = 0; i < 4; i++) {
        CHECK(strcmp(d[i].name, names[i]) == 0);
        CHECK(d[i].ndim == 1 && d[i].dims[0] == 3);
        CHECK_EQ_INT(d[i].trainable, i < 2);
    }
    for (int c = 0; c < 3; c++)
        CHECK(f.l.w.gamma[c] == 1 && f.l.w.beta[c] == 0 && f.l.w.moving_mean[c] == 0 &&
              f.l.w.moving_var[c] == 1);
    CHECK(f.l.out.h == 2 && f.l.out.w == 2 && f.l.out.c == 3);
    fixture_free(&f);

    char err[STRATA_ERR_LEN];
    CHECK_EQ_INT(fixture_init(&f, &batch_norm_ops, bn_cfg(ACT_NONE, 0.0f, 0.99f),
                              (struct shape){2, 2, 3}, err),
                 STRATA_E_ARG);
    CHECK(strstr(err, "bn_1") && strstr(err, "epsilon"));
    CHECK_EQ_INT(fixture_init(&f, &batch_norm_ops, bn_cfg(ACT_NONE, 1e-3f, 1.5f),
                              (struct shape){2, 2, 3}, err),
                 STRATA_E_ARG);
    CHECK(strstr(err, "bn_1") && strstr(err, "momentum"));
}

/* A feeder (1×1, 3 → 5 channels) and batch_norm with each fused activation,
 * on the stored statistics: against γ·(x − mean)/√(var + ε) + β and the
 * activation (softmax over the 5 channels of each position), in double.
 * Inference leaves the running statistics alone: the model's are unchanged
 * and a second forward gives the same output. */
TEST(batch_norm_inference_formula)
{
    struct rng r;
    rng_seed(&r, 21);
    const enum activation acts[] = {ACT_NONE, ACT_RELU, ACT_SIGMOID, ACT_SOFTMAX};
    const int n = 3, C = 5;
    char err[STRATA_ERR_LEN] = "";
    for (int ai = 0; ai < 4; ai++) {
        char layers[512];
        snprintf(layers, sizeof layers,
                 "{\"type\": \"conv2d\", \"name\": \"feeder\", \"filters\": 5, \"kernel_size\": 1},"
                 " {\"type\": \"batch_norm\", \"name\": \"bn_1\", \"epsilon\": 0.001,"
                 " \"momentum\": 0.99, \"activation\": \"%s\"}",
                 activation_name(acts[ai]));
        struct model m;
        int rc = layer_model_make(&m, 2, 3, 2 * 3 * C, layers, err);
        CHECK_MSG(rc == 0, "%s", err);
        if (rc)
            continue;
        fill_uniform(&r, m.layers[0].w.kernel, 15, -1.0, 1.0);
        fill_uniform(&r, m.layers[0].w.bias, 5, -1.0, 1.0);
        const struct layer_tensors *w = &m.layers[1].w;
        fill_normal(&r, w->gamma, C, 1.0, 0.5);
        fill_normal(&r, w->beta, C, 0.0, 0.5);
        fill_normal(&r, w->moving_mean, C, 0.0, 2.0);
        fill_uniform(&r, w->moving_var, C, 0.01, 4.0);
        float keep[20], img[3 * 18], y1[3 * 30];
        memcpy(keep, w->gamma, sizeof keep); /* gamma, beta, mean, var: one run */
        fill_normal(&r, img, sizeof img / sizeof img[0], 0.5, 2.0);
        struct model_workspace ws;
        rc = run_model(&m, &ws, img, n, err);
        CHECK_MSG(rc == 0, "%s", err);
        if (rc) {
            model_free(&m);
            continue;
        }
        const float *x = model_output(&ws, 0), *y = model_output(&ws, 1);
        memcpy(y1, y, sizeof y1);
        double maxd = 0;
        for (int p = 0; p < n * 6; p++) {
            double z[5], sum = 0, mx = -INFINITY;
            for (int c = 0; c < C; c++) {
                z[c] = w->gamma[c] * ((double)x[p * C + c] - w->moving_mean[c]) /
                           sqrt((double)w->moving_var[c] + 1e-3) +
                       w->beta[c];
                mx = fmax(mx, z[c]);
            }
            if (acts[ai] == ACT_SOFTMAX) {
                for (int c = 0; c < C; c++)
                    sum += exp(z[c] - mx);
                for (int c = 0; c < C; c++)
                    z[c] = exp(z[c] - mx) / sum;
            } else {
                for (int c = 0; c < C; c++)
                    z[c] = act_ref(acts[ai], z[c]);
            }
            for (int c = 0; c < C; c++)
                maxd = fmax(maxd, fabs(y[p * C + c] - z[c]) / (1 + fabs(z[c])));
        }
        CHECK_MSG(maxd < 2e-6, "%s: max relative difference %.3g", activation_name(acts[ai]),
                  maxd);
        CHECK(memcmp(keep, w->gamma, sizeof keep) == 0);
        model_forward(&m, &ws, img, n);
        CHECK(memcmp(y1, model_output(&ws, 1), sizeof y1) == 0);
        model_workspace_free(&ws);
        model_free(&m);
    }
}

/* Training mode on a model batch_norm(ε 1e-3, momentum 0.9) → flatten over
 * 3×5×3 images, 8 of them: M = 8·3·5 = 120 values per channel. Channel c
 * has mean 5c − 3 and sd 1 + c; channel 2 sits on an offset of 1000, where
 * a one-pass E[x²] − E[x]² would lose the variance. A training-mode forward
 * (train_graph) normalises with the batch's mean and biased variance:
 * y = (x − μ)/√(σ² + ε) for γ = 1, β = 0, so each channel of y has mean 0
 * and variance σ²/(σ² + ε); and it moves the running statistics as Keras
 * does, momentum being the weight of the old value:
 *   moving_mean = 0.9·old + 0.1·μ,  moving_var = 0.9·old + 0.1·σ²·M/(M − 1)
 * (read back into the model with train_graph_to_model). A second batch,
 * 2x + 1, moves them again from where they are. */
TEST(batch_norm_training_statistics)
{
    struct rng r;
    rng_seed(&r, 22);
    const int n = 8, C = 3, H = 3, W = 5;
    const size_t M = (size_t)n * H * W, ni = M * C;
    char err[STRATA_ERR_LEN] = "";
    struct model m;
    int rc = layer_model_make(&m, H, W, H * W * C,
                        "{\"type\": \"batch_norm\", \"name\": \"bn_1\", \"epsilon\": 0.001,"
                        " \"momentum\": 0.9}, {\"type\": \"flatten\"}",
                        err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc)
        return;
    struct layer_tensors *w = &m.layers[0].w;
    for (int c = 0; c < C; c++) {
        w->gamma[c] = 1;
        w->beta[c] = 0;
        w->moving_mean[c] = 0;
        w->moving_var[c] = 1;
    }
    struct train_graph t;
    rc = train_graph_init(&t, &m, n, 1, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc) {
        model_free(&m);
        return;
    }
    float *x = malloc(ni * 4), *y = malloc(ni * 4);
    for (size_t p = 0; p < M; p++)
        for (int c = 0; c < C; c++)
            x[p * C + c] = (float)((c == 2 ? 1000.0 : 5.0 * c - 3.0) + (1 + c) * rng_normal(&r));
    double mean_b[3] = {0}, var_b[3] = {0};
    for (int c = 0; c < C; c++) {
        for (size_t p = 0; p < M; p++)
            mean_b[c] += x[p * C + c];
        mean_b[c] /= M;
        for (size_t p = 0; p < M; p++)
            var_b[c] += (x[p * C + c] - mean_b[c]) * (x[p * C + c] - mean_b[c]);
        var_b[c] /= M;
    }
    CHECK_MSG(train_graph_forward(&t, x, n, 1, err) != NULL, "%s", err);
    nchw_to_nhwc(y, tview_f(graph_value_view(&t.ws, t.mg->shown[0])), n, H, W, C);
    train_graph_to_model(&t, &m);
    for (int c = 0; c < C; c++) {
        double mu = 0, v = 0, worst = 0;
        for (size_t p = 0; p < M; p++) {
            double want = (x[p * C + c] - mean_b[c]) / sqrt(var_b[c] + 1e-3);
            worst = fmax(worst, fabs(y[p * C + c] - want));
            mu += y[p * C + c];
        }
        mu /= M;
        for (size_t p = 0; p < M; p++)
            v += (y[p * C + c] - mu) * (y[p * C + c] - mu);
        v /= M;
        /* channel 2's x is known to ~6e-5 (float at 1000), ~2e-5 after ÷ σ */
        CHECK_MSG(worst < 2e-4, "channel %d: max |y − formula| %.3g", c, worst);
        CHECK_NEAR(mu, 0.0, 1e-5);
        CHECK_NEAR(v, var_b[c] / (var_b[c] + 1e-3), 2e-5);
        CHECK_NEAR(v, 1.0, 1e-3);
        CHECK_NEAR(w->moving_mean[c], 0.1 * mean_b[c], 1e-5 * (1 + fabs(mean_b[c])));
        CHECK_NEAR(w->moving_var[c], 0.9 + 0.1 * var_b[c] * M / (M - 1.0),
                   1e-5 * (1 + var_b[c]));
    }
    double mm1[3], mv1[3];
    for (int c = 0; c < C; c++)
        mm1[c] = w->moving_mean[c], mv1[c] = w->moving_var[c];
    for (size_t i = 0; i < ni; i++)
        x[i] = 2.0f * x[i] + 1.0f; /* mean → 2μ + 1, variance → 4σ² */
    CHECK_MSG(train_graph_forward(&t, x, n, 1, err) != NULL, "%s", err);
    train_graph_to_model(&t, &m);
    for (int c = 0; c < C; c++) {
        CHECK_NEAR(w->moving_mean[c], 0.9 * mm1[c] + 0.1 * (2 * mean_b[c] + 1),
                   1e-5 * (1 + fabs(mean_b[c])));
        CHECK_NEAR(w->moving_var[c], 0.9 * mv1[c] + 0.1 * 4 * var_b[c] * M / (M - 1.0),
                   2e-5 * (1 + var_b[c]));
    }
    /* an inference-mode forward leaves them where they are */
    CHECK_MSG(train_graph_forward(&t, x, n, 0, err) != NULL, "%s", err);
    float mm2[3], mv2[3];
    memcpy(mm2, w->moving_mean, sizeof mm2);
    memcpy(mv2, w->moving_var, sizeof mv2);
    train_graph_to_model(&t, &m);
    CHECK(memcmp(mm2, w->moving_mean, sizeof mm2) == 0 && memcmp(mv2, w->moving_var, sizeof mv2) == 0);
    free(x), free(y);
    train_graph_free(&t);
    model_free(&m);
}

/* Many channels, batch statistics in training mode (train_graph): a feeder
 * (1×1, 3 → 600 channels, its bias putting channel c on an offset of
 * (c mod 7)·300 − 900, sd 2), batch_norm(ε 1e-3), flatten, dense of 2. Each
 * channel has M = 3·6·6 = 108 values; y against the formula with the
 * batch's statistics, from the values the graph computed for x. Then, with
 * the feeder's bias set to 0 in the graph (with the offsets, x itself is
 * only known to ~6e-5), a training step's gradient of that bias: it is
 * Σ over a channel of dL/dx, which is 0 in training mode for any dL/dy
 * (shifting a channel's inputs changes nothing); without the batch-mean
 * term it would be ~1.
 * And a batch of one image of 1×1: each channel has one value, the variance
 * is 0, the output is β; the running mean moves halfway to the value
 * (momentum 0.5) and the running variance is fed 0 (not 0/0): 0.5·1 + 0.5·0. */
TEST(batch_norm_wide_and_single)
{
    struct rng r;
    rng_seed(&r, 41);
    const int C = 600, n = 3, S = 6;
    char err[STRATA_ERR_LEN] = "";
    struct model m;
    int rc = layer_model_make(&m, S, S, 2,
                        "{\"type\": \"conv2d\", \"name\": \"feeder\", \"filters\": 600,"
                        " \"kernel_size\": 1},"
                        " {\"type\": \"batch_norm\", \"name\": \"bn_1\", \"momentum\": 0.5},"
                        " {\"type\": \"flatten\"}, {\"type\": \"dense\", \"units\": 2}",
                        err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc)
        return;
    fill_uniform(&r, m.layers[0].w.kernel, (size_t)3 * C, -2.0, 2.0);
    for (int c = 0; c < C; c++)
        m.layers[0].w.bias[c] = (float)((c % 7) * 300.0 - 900.0);
    const struct layer_tensors *w = &m.layers[1].w;
    fill_normal(&r, w->gamma, C, 1.0, 0.3);
    fill_normal(&r, w->beta, C, 0.0, 0.3);
    fill_uniform(&r, w->moving_mean, C, -1.0, 1.0);
    fill_uniform(&r, w->moving_var, C, 0.5, 2.0);
    fill_uniform(&r, m.layers[3].w.kernel, (size_t)S * S * C * 2, -1.0, 1.0);
    struct train_graph t;
    rc = train_graph_init(&t, &m, n, 1, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc) {
        model_free(&m);
        return;
    }
    const size_t M = (size_t)n * S * S, ni = M * C;
    float *img = malloc((size_t)n * S * S * 3 * 4), *x = malloc(ni * 4), *y = malloc(ni * 4);
    fill_normal(&r, img, (size_t)n * S * S * 3, 0.0, 1.0);
    CHECK_MSG(train_graph_forward(&t, img, n, 1, err) != NULL, "%s", err);
    nchw_to_nhwc(x, tview_f(graph_value_view(&t.ws, t.mg->shown[0])), n, S, S, C);
    nchw_to_nhwc(y, tview_f(graph_value_view(&t.ws, t.mg->shown[1])), n, S, S, C);
    double worst = 0;
    for (int c = 0; c < C; c++) {
        double mu = 0, v = 0;
        for (size_t p = 0; p < M; p++)
            mu += x[p * C + c];
        mu /= M;
        for (size_t p = 0; p < M; p++)
            v += (x[p * C + c] - mu) * (x[p * C + c] - mu);
        v /= M;
        for (size_t p = 0; p < M; p++) {
            double want = w->gamma[c] * (x[p * C + c] - mu) / sqrt(v + 1e-3) + w->beta[c];
            worst = fmax(worst, fabs(y[p * C + c] - want));
        }
    }
    CHECK_MSG(worst < 1e-4, "600 channels: max |diff| %.3g", worst);

    struct optim_tensor ot[8];
    const int nt = train_graph_optim_tensors(&t, ot);
    CHECK_EQ_INT(nt, 6); /* feeder kernel, bias; gamma, beta; dense kernel, bias */
    if (nt == 6 && ot[1].len == (size_t)C) {
        memset(ot[1].param, 0, (size_t)C * sizeof(float));
        float g[6];
        fill_uniform(&r, g, 6, -1.0, 1.0);
        CHECK_MSG(train_graph_forward(&t, img, n, 1, err) != NULL, "%s", err);
        CHECK_EQ_INT(train_graph_backward(&t, g, err), 0);
        worst = 0;
        double typical = 0;
        for (int c = 0; c < C; c++) {
            worst = fmax(worst, fabs(ot[1].grad[c]));
            typical += fabs(ot[3].grad[c]) / C; /* Σ dL/dy over the channel: dβ */
        }
        printf("#   Σ dL/dx over a channel: at most %.3g (Σ dL/dy: %.3g on average)\n", worst,
               typical);
        CHECK_MSG(worst < 1e-4, "Σ dx over a channel: %.3g", worst);
        CHECK(typical > 0.1);
    }
    free(img), free(x), free(y);
    train_graph_free(&t);
    model_free(&m);

    rc = layer_model_make(&m, 1, 1, 3,
                    "{\"type\": \"batch_norm\", \"name\": \"bn_1\", \"momentum\": 0.5}", err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc)
        return;
    const float beta[3] = {0.25f, -1.0f, 2.0f}, gamma[3] = {1.5f, 0.5f, -1.0f};
    memcpy(m.layers[0].w.gamma, gamma, sizeof gamma);
    memcpy(m.layers[0].w.beta, beta, sizeof beta);
    for (int c = 0; c < 3; c++) {
        m.layers[0].w.moving_mean[c] = 0;
        m.layers[0].w.moving_var[c] = 1;
    }
    rc = train_graph_init(&t, &m, 1, 1, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc == 0) {
        const float x1[3] = {7, -3, 0.5f};
        CHECK_MSG(train_graph_forward(&t, x1, 1, 1, err) != NULL, "%s", err);
        const float *y1 = tview_f(graph_value_view(&t.ws, t.mg->shown[0]));
        CHECK(y1[0] == 0.25f && y1[1] == -1.0f && y1[2] == 2.0f);
        train_graph_to_model(&t, &m);
        CHECK_NEAR(m.layers[0].w.moving_mean[0], 3.5, 1e-6);
        CHECK_NEAR(m.layers[0].w.moving_mean[1], -1.5, 1e-6);
        CHECK_NEAR(m.layers[0].w.moving_mean[2], 0.25, 1e-6);
        for (int c = 0; c < 3; c++)
            CHECK_NEAR(m.layers[0].w.moving_var[c], 0.5, 1e-6);
    }
    train_graph_free(&t);
    model_free(&m);
}

/* ---- registry ------------------------------------------------------------ */

TEST(registry)
{
    const char *types[LAYER_KIND_COUNT] = {
        [LAYER_CONV2D] = "conv2d",       [LAYER_BATCH_NORM] = "batch_norm",
        [LAYER_MAXPOOL2D] = "maxpool2d", [LAYER_GLOBAL_AVG_POOL] = "global_avg_pool",
        [LAYER_FLATTEN] = "flatten",     [LAYER_DENSE] = "dense",
        [LAYER_DROPOUT] = "dropout",     [LAYER_RELU] = "relu",
        [LAYER_SIGMOID] = "sigmoid",     [LAYER_SOFTMAX] = "softmax",
        [LAYER_ADD] = "add",             [LAYER_CONCAT] = "concat",
    };
    for (int k = 0; k < LAYER_KIND_COUNT; k++) {
        const struct layer_ops *ops = layer_ops_of((enum layer_kind)k);
        CHECK(ops != NULL);
        CHECK_EQ_INT(ops->kind, k);
        CHECK_MSG(strcmp(ops->type, types[k]) == 0, "kind %d has type %s", k, ops->type);
        CHECK(layer_ops_find(types[k]) == ops);
        CHECK(ops->configure && ops->params && ops->init);
        /* only the layers that join take several inputs */
        CHECK_EQ_INT(ops->joins, k == LAYER_ADD || k == LAYER_CONCAT);
    }
    CHECK(layer_ops_find("Conv2D") == NULL);
    CHECK(layer_ops_find("lstm") == NULL);
    CHECK(layer_ops_find("") == NULL);
    CHECK(layer_ops_find("batch_norm") == &batch_norm_ops);
}

int main(void)
{
    RUN(softmax_known_vector);
    RUN(sigmoid_relu_values);
    RUN(activation_names);
    RUN(standalone_activation_forward);
    RUN(maxpool_2x2_on_4x4);
    RUN(maxpool_same_padding_odd_input);
    RUN(maxpool_matches_reference);
    RUN(maxpool_configure_errors);
    RUN(gap_hand_worked);
    RUN(batch_norm_params_and_init);
    RUN(batch_norm_inference_formula);
    RUN(batch_norm_training_statistics);
    RUN(batch_norm_wide_and_single);
    RUN(registry);
    return check_done();
}
