/* test_train.c — training: the loss gradient against central differences,
 * CutMix's mixed loss by hand and by central differences, the optimisers'
 * steps against hand-worked values, augmentation, the
 * configuration's errors, one training step on the graph (train_graph.h)
 * against a reference forward written in double in this file (the
 * probabilities, the running statistics, every gradient against finite
 * differences of the reference, and the SGD update), an imported graph
 * trained from scratch and saved, rotation labels, and end-to-end runs on
 * synthetic shapes (accuracy, bit-identical repeats). */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "augment.h"
#include "check.h"
#include "classifier.h"
#include "model_graph.h"
#include "onnx.h"
#include "onnx_export.h"
#include "onnx_weights.h"
#include "evaluate.h"
#include "model.h"
#include "optim.h"
#include "train.h"
#include "train_graph.h"

/* Softmax of each row of x[n × C] in place, in double. */
static void softmax_rows(float *x, int n, int C)
{
    for (int i = 0; i < n; i++) {
        float *z = x + (size_t)i * C;
        double top = z[0], sum = 0;
        for (int c = 1; c < C; c++)
            top = fmax(top, z[c]);
        for (int c = 0; c < C; c++)
            sum += exp(z[c] - top);
        for (int c = 0; c < C; c++)
            z[c] = (float)(exp(z[c] - top) / sum);
    }
}

TEST(softmax_xent_gradient_is_closed_form)
{
    /* Loss as a function of logits z: L(z) = xent(softmax(z)). The returned
     * gradient must match central differences of L. */
    enum { N = 3, C = 4 };
    float z[N * C], p[N * C], d[N * C];
    int labels[N] = {2, 0, 3};
    float cw[C] = {1.0f, 2.0f, 0.5f, 1.5f};
    struct rng r;
    rng_seed(&r, 9);
    for (int i = 0; i < N * C; i++)
        z[i] = (float)rng_normal(&r);
    for (int s = 0; s < 2; s++) {
        float smooth = s ? 0.1f : 0.0f;
        memcpy(p, z, sizeof z);
        softmax_rows(p, N, C);
        train_softmax_xent(p, labels, N, C, cw, smooth, d);
        for (int i = 0; i < N * C; i++) {
            double h = 1e-3, lp, lm;
            float zz[N * C];
            memcpy(zz, z, sizeof z);
            zz[i] += (float)h;
            softmax_rows(zz, N, C);
            lp = train_softmax_xent(zz, labels, N, C, cw, smooth, NULL);
            memcpy(zz, z, sizeof z);
            zz[i] -= (float)h;
            softmax_rows(zz, N, C);
            lm = train_softmax_xent(zz, labels, N, C, cw, smooth, NULL);
            CHECK_NEAR(d[i], (lp - lm) / (2 * h), 2e-3);
        }
    }
    /* A confident right answer costs almost nothing: -log(0.999). */
    float q[2] = {0.999f, 0.001f};
    int y = 0;
    CHECK_NEAR(train_softmax_xent(q, &y, 1, 2, NULL, 0, NULL), -log(0.999), 1e-6);
}

/* CutMix's loss (train_softmax_xent_mixed): each image's target mixed by
 * the share of it each label's image shows. */
TEST(mixed_loss_by_hand_and_by_finite_differences)
{
    /* By hand: p = (0.8, 0.2), own label 0, partner's 1, keep 0.25, no
     * smoothing or weights: target (0.25, 0.75), loss −(0.25 ln 0.8 +
     * 0.75 ln 0.2), gradient p − t. */
    float q[4] = {0.8f, 0.2f, 0.5f, 0.5f}, d[4];
    int y[2] = {0, 1};
    struct cutmix_pair pr[2] = {{1, 0.25f}, {1, 1.0f}};
    double loss = train_softmax_xent_mixed(q, y, pr, 1, 2, NULL, 0, d);
    CHECK_NEAR(loss, -(0.25 * log(0.8) + 0.75 * log(0.2)), 1e-6);
    CHECK_NEAR(d[0], 0.8 - 0.25, 1e-7);
    CHECK_NEAR(d[1], 0.2 - 0.75, 1e-7);

    /* keep = 1 everywhere is the plain loss, bit for bit. */
    enum { N = 4, C = 3 };
    float z[N * C], p[N * C], dm[N * C], dp[N * C];
    int labels[N] = {2, 0, 1, 0};
    float cw[C] = {1.0f, 2.0f, 0.5f};
    struct cutmix_pair same[N] = {{0, 1}, {1, 1}, {2, 1}, {3, 1}};
    struct rng r;
    rng_seed(&r, 3);
    for (int i = 0; i < N * C; i++)
        z[i] = (float)rng_normal(&r);
    memcpy(p, z, sizeof z);
    softmax_rows(p, N, C);
    double a = train_softmax_xent_mixed(p, labels, same, N, C, cw, 0.1f, dm);
    double b = train_softmax_xent(p, labels, N, C, cw, 0.1f, dp);
    CHECK(a == b);
    CHECK(memcmp(dm, dp, sizeof dm) == 0);

    /* Mixed pairs, class weights and smoothing: the gradient is that of
     * the loss as a function of the logits. */
    struct cutmix_pair mix[N] = {{1, 0.3f}, {0, 0.9f}, {2, 1.0f}, {2, 0.55f}};
    for (int s = 0; s < 2; s++) {
        float smooth = s ? 0.1f : 0.0f;
        train_softmax_xent_mixed(p, labels, mix, N, C, s ? cw : NULL, smooth, dm);
        for (int i = 0; i < N * C; i++) {
            double h = 1e-3;
            float zz[N * C];
            memcpy(zz, z, sizeof z);
            zz[i] += (float)h;
            softmax_rows(zz, N, C);
            double lp = train_softmax_xent_mixed(zz, labels, mix, N, C, s ? cw : NULL, smooth, NULL);
            memcpy(zz, z, sizeof z);
            zz[i] -= (float)h;
            softmax_rows(zz, N, C);
            double lm = train_softmax_xent_mixed(zz, labels, mix, N, C, s ? cw : NULL, smooth, NULL);
            CHECK_NEAR(dm[i], (lp - lm) / (2 * h), 2e-3);
        }
    }
}

/* The optimisers on two hand-made tensors, as a dense layer 3 -> 2 would
 * give them: a kernel of 6 (decays) and a bias of 2 (does not). */
TEST(adam_and_sgd_steps_match_hand_computation)
{
    char err[STRATA_ERR_LEN];
    float params[8], grads[8];
    for (int i = 0; i < 8; i++) {
        params[i] = 0.5f;
        grads[i] = (float)i - 3.0f;   /* includes a zero gradient at i = 3 */
    }
    const struct optim_tensor t[2] = {{params, grads, 6, 1}, {params + 6, grads + 6, 2, 0}};
    struct optim o;
    struct optim_config adam = {.kind = OPTIM_ADAM, .lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f,
                                .eps = 1e-8f, .weight_decay = 0.01f};
    CHECK(optim_init_tensors(&o, t, 2, &adam, err) == 0);
    CHECK_EQ_INT(o.n_groups, 2);
    optim_step(&o, 0.1f);
    /* Step 1 of Adam moves every parameter with a non-zero gradient by
     * lr · sign(g) (m̂/√v̂ = g/|g|); kernels (the first 6) also shrink by
     * lr · wd · θ = 0.1 · 0.01 · 0.5. */
    for (int i = 0; i < 8; i++) {
        double g = (double)i - 3.0, decay = i < 6 ? 0.1 * 0.01 * 0.5 : 0;
        double expect = 0.5 - decay - (g == 0 ? 0 : 0.1 * (g > 0 ? 1 : -1));
        CHECK_NEAR(params[i], expect, 1e-5);
    }
    /* Step 2, g the same: m̂ = g and v̂ = g² again, so another lr · sign(g);
     * the decay takes lr · wd of the kernels' current values. */
    float before[8];
    memcpy(before, params, sizeof params);
    optim_step(&o, 0.1f);
    for (int i = 0; i < 8; i++) {
        double g = (double)i - 3.0, decay = i < 6 ? 0.1 * 0.01 * before[i] : 0;
        double expect = before[i] - decay - (g == 0 ? 0 : 0.1 * (g > 0 ? 1 : -1));
        CHECK_NEAR(params[i], expect, 1e-5);
    }
    optim_free(&o);

    struct optim_config sgd = {.kind = OPTIM_SGD, .momentum = 0.9f};
    CHECK(optim_init_tensors(&o, t, 2, &sgd, err) == 0);
    for (int i = 0; i < 8; i++)
        params[i] = 1.0f, grads[i] = 2.0f;
    optim_step(&o, 0.1f); /* v = 2, θ = 1 - 0.2 */
    optim_step(&o, 0.1f); /* v = 0.9·2 + 2 = 3.8, θ = 0.8 - 0.38 */
    for (int i = 0; i < 8; i++)
        CHECK_NEAR(params[i], 0.42, 1e-6);
    optim_free(&o);
}

TEST(augment_identity_and_flip)
{
    enum { W = 5, H = 4 };
    uint8_t img[W * H * 3];
    for (int i = 0; i < W * H * 3; i++)
        img[i] = (uint8_t)(i * 7 % 256);
    float mean[3] = {0.5f, 0.25f, 0}, std[3] = {0.5f, 2, 1};
    float out[W * H * 3];
    struct rng r;
    rng_seed(&r, 1);
    struct augment_config none = {0};
    augment_sample(&none, img, W, H, mean, std, out, &r);
    for (int i = 0; i < W * H * 3; i++)
        CHECK_NEAR(out[i], (img[i] / 255.0 - mean[i % 3]) / std[i % 3], 1e-5);

    /* With flipping on, over many draws about half are mirrored exactly. */
    struct augment_config flip = {.flip = 1};
    int mirrored = 0, plain = 0;
    for (int t = 0; t < 200; t++) {
        augment_sample(&flip, img, W, H, mean, std, out, &r);
        int is_plain = 1, is_mirror = 1;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int c = 0; c < 3; c++) {
                    float v = out[(y * W + x) * 3 + c];
                    float a = (img[(y * W + x) * 3 + c] / 255.0f - mean[c]) / std[c];
                    float b = (img[(y * W + (W - 1 - x)) * 3 + c] / 255.0f - mean[c]) / std[c];
                    is_plain &= fabsf(v - a) < 1e-5f;
                    is_mirror &= fabsf(v - b) < 1e-5f;
                }
        mirrored += is_mirror;
        plain += is_plain;
    }
    CHECK(mirrored + plain == 200);
    CHECK(mirrored > 70 && mirrored < 130);

    /* Brightness jitter only scales: a mid-grey image stays grey, within range. */
    struct augment_config bright = {.brightness = 0.5f};
    uint8_t grey[W * H * 3];
    memset(grey, 100, sizeof grey);
    float zero[3] = {0, 0, 0}, one[3] = {1, 1, 1};
    augment_sample(&bright, grey, W, H, zero, one, out, &r);
    for (int i = 1; i < W * H * 3; i++)
        CHECK_NEAR(out[i], out[0], 1e-6);
    CHECK(out[0] >= 0.5f * 100 / 255 - 1e-6 && out[0] <= 1.5f * 100 / 255 + 1e-6);
}

/* Random erasing: with probability 1 every image loses exactly one axis-
 * aligned rectangle (set to 0, the normalised mean) of 2–25 % of its area
 * (within rounding of the sides), everything else untouched; with
 * probability 0.5 about half the images are erased. */
TEST(augment_erase_one_rectangle)
{
    enum { W = 40, H = 30 };
    uint8_t img[W * H * 3];
    memset(img, 200, sizeof img); /* normalised: (200/255 - 0) / 1 > 0 everywhere */
    float zero[3] = {0, 0, 0}, one[3] = {1, 1, 1};
    float out[W * H * 3];
    struct rng r;
    rng_seed(&r, 7);
    struct augment_config always = {.erase = 1};
    for (int t = 0; t < 300; t++) {
        augment_sample(&always, img, W, H, zero, one, out, &r);
        int x0 = W, x1 = -1, y0 = H, y1 = -1, erased = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                const float *p = out + (y * W + x) * 3;
                if (p[0] == 0 && p[1] == 0 && p[2] == 0) {
                    erased++;
                    x0 = x < x0 ? x : x0, x1 = x > x1 ? x : x1;
                    y0 = y < y0 ? y : y0, y1 = y > y1 ? y : y1;
                } else {
                    CHECK_NEAR(p[0], 200 / 255.0, 1e-6);
                }
            }
        /* One filled rectangle: the erased count is its bounding box. */
        CHECK(erased > 0 && erased == (x1 - x0 + 1) * (y1 - y0 + 1));
        double share = (double)erased / (W * H);
        CHECK(share > 0.02 * 0.6 && share < 0.25 * 1.4);
    }
    struct augment_config half = {.erase = 0.5f};
    int hit = 0;
    for (int t = 0; t < 400; t++) {
        augment_sample(&half, img, W, H, zero, one, out, &r);
        int any = 0;
        for (int i = 0; i < W * H * 3; i += 3)
            any |= out[i] == 0;
        hit += any;
    }
    CHECK(hit > 150 && hit < 250);
}

TEST(augment_turn_is_a_clockwise_quarter_turn)
{
    /* A 3×3 image of two channels; channel 0 holds 1..9 row by row,
     * channel 1 the same negated, so that channels travel with their pixel.
     *   1 2 3      one turn    7 4 1     two turns   9 8 7
     *   4 5 6   (clockwise):   8 5 2                 6 5 4
     *   7 8 9                  9 6 3                 3 2 1        */
    float src[18], dst[18], back[18];
    for (int i = 0; i < 9; i++)
        src[2 * i] = (float)(i + 1), src[2 * i + 1] = -(float)(i + 1);
    const float one[9] = {7, 4, 1, 8, 5, 2, 9, 6, 3}, two[9] = {9, 8, 7, 6, 5, 4, 3, 2, 1};
    const float three[9] = {3, 6, 9, 2, 5, 8, 1, 4, 7};
    const float *want[4] = {NULL, one, two, three};
    for (int t = 0; t < 8; t++) {
        augment_turn(src, 3, 2, t, dst);
        for (int i = 0; i < 9; i++) {
            float w = t % 4 ? want[t % 4][i] : (float)(i + 1);
            CHECK_MSG(dst[2 * i] == w && dst[2 * i + 1] == -w, "turns %d pixel %d: %g", t, i,
                      (double)dst[2 * i]);
        }
    }
    /* Three turns then one more is the identity, and -1 is three. */
    augment_turn(src, 3, 2, 3, dst);
    augment_turn(dst, 3, 2, 1, back);
    CHECK(memcmp(back, src, sizeof src) == 0);
    augment_turn(src, 3, 2, -1, back);
    CHECK(memcmp(back, dst, sizeof dst) == 0);
}

TEST(config_parsing_and_errors)
{
    char err[STRATA_ERR_LEN];
    struct train_config c;
    json_t *j = json_loads("{\"epochs\": 7, \"optimizer\": {\"type\": \"sgd\", \"lr\": 0.05},"
                           "\"augment\": {\"flip\": true, \"zoom\": 0.1}, \"class_weight\": \"balanced\"}",
                           0, NULL);
    CHECK(train_config_parse(&c, j, "m.json", err) == 0);
    CHECK_EQ_INT(c.epochs, 7);
    CHECK(c.optim.kind == OPTIM_SGD);
    CHECK_NEAR(c.optim.lr, 0.05, 1e-9);
    CHECK(c.augment.flip == 1);
    CHECK(c.balanced_classes == 1);
    CHECK(c.rotation_labels == 0);
    json_decref(j);
    j = json_loads("{\"rotation_labels\": 0.5}", 0, NULL);
    CHECK(train_config_parse(&c, j, "m.json", err) == 0 && c.rotation_labels == 0.5f);
    json_decref(j);

    const char *bad[][2] = {
        {"{\"epoch\": 3}", "training.epoch"},
        {"{\"epochs\": \"ten\"}", "training.epochs"},
        {"{\"epochs\": -1}", "training.epochs"},
        {"{\"optimizer\": {\"type\": \"rmsprop\"}}", "training.optimizer.type"},
        {"{\"schedule\": {\"type\": \"cosine\", \"warmup\": 1}}", "training.schedule.warmup"},
        {"{\"augment\": {\"flip\": 1}}", "training.augment.flip"},
        {"{\"class_weight\": \"heavy\"}", "training.class_weight"},
        {"{\"early_stopping\": {\"keep\": \"worst\"}}", "training.early_stopping.keep"},
        {"{\"rotation_labels\": true}", "training.rotation_labels"},
        {"{\"rotation_labels\": 3.5}", "training.rotation_labels"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        j = json_loads(bad[i][0], 0, NULL);
        err[0] = 0;
        CHECK(train_config_parse(&c, j, "m.json", err) < 0);
        CHECK_MSG(strstr(err, bad[i][1]) && strstr(err, "m.json"), "'%s' -> '%s'", bad[i][0], err);
        json_decref(j);
    }
}

/* Synthetic shapes: class 0 a filled square, 1 a filled disc, 2 a ring —
 * random size, position and colours on a noisy background, so colour alone
 * cannot tell them apart. */
enum { S = 24 };
static void draw_shape(uint8_t *img, int cls, struct rng *r)
{
    uint8_t bg[3], fg[3];
    for (int c = 0; c < 3; c++) {
        bg[c] = (uint8_t)rng_below(r, 100);
        fg[c] = (uint8_t)(150 + rng_below(r, 106));
    }
    double rad = 4 + rng_uniform(r) * 3;
    double cx = rad + 1 + rng_uniform(r) * (S - 2 * rad - 2), cy = rad + 1 + rng_uniform(r) * (S - 2 * rad - 2);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            double dx = x + 0.5 - cx, dy = y + 0.5 - cy, d = sqrt(dx * dx + dy * dy);
            int in = cls == 0 ? fabs(dx) < rad * 0.85 && fabs(dy) < rad * 0.85
                   : cls == 1 ? d < rad
                              : d < rad && d > rad - 2;
            for (int c = 0; c < 3; c++) {
                int noise = (int)rng_below(r, 30) - 15, v = (in ? fg[c] : bg[c]) + noise;
                img[(y * S + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
}

/* The synthetic shapes both end-to-end tests train on: N_TRAIN training and
 * N_TEST test images (malloc'd), classes in turn, from one seed. */
enum { N_TRAIN = 360, N_TEST = 150 };
static void draw_shapes(uint8_t **train, int *train_y, uint8_t **test, int *test_y)
{
    *train = malloc((size_t)N_TRAIN * S * S * 3);
    *test = malloc((size_t)N_TEST * S * S * 3);
    struct rng r;
    rng_seed(&r, 1234);
    for (int i = 0; i < N_TRAIN; i++)
        draw_shape(*train + (size_t)i * S * S * 3, train_y[i] = i % 3, &r);
    for (int i = 0; i < N_TEST; i++)
        draw_shape(*test + (size_t)i * S * S * 3, test_y[i] = i % 3, &r);
}

static const char *shapes_json =
    "{\"id\":\"shapes\",\"input\":{\"height\":24,\"width\":24,\"channels\":3},"
    "\"normalization\":{\"mean\":[0.4,0.4,0.4],\"std\":[0.3,0.3,0.3]},"
    "\"classes\":[\"square\",\"disc\",\"ring\"],"
    "\"layers\":["
    "{\"type\":\"conv2d\",\"filters\":8,\"kernel_size\":3,\"padding\":\"same\"},"
    "{\"type\":\"batch_norm\",\"momentum\":0.9,\"activation\":\"relu\"},"
    "{\"type\":\"maxpool2d\",\"pool_size\":2},"
    "{\"type\":\"conv2d\",\"filters\":16,\"kernel_size\":3,\"padding\":\"same\",\"activation\":\"relu\"},"
    "{\"type\":\"maxpool2d\",\"pool_size\":2},"
    "{\"type\":\"conv2d\",\"filters\":16,\"kernel_size\":3,\"padding\":\"same\",\"activation\":\"relu\"},"
    "{\"type\":\"global_avg_pool\"},"
    "{\"type\":\"dropout\",\"rate\":0.1},"
    "{\"type\":\"dense\",\"units\":3,\"activation\":\"softmax\"}],"
    "\"training\":{\"epochs\":30,\"batch_size\":16,\"seed\":3,"
    "\"optimizer\":{\"type\":\"adam\",\"lr\":0.01},\"schedule\":{\"type\":\"cosine\"},"
    "\"augment\":{\"flip\":true},\"validation_split\":0.15}}";

static int epochs_seen;
static void count_epochs(void *user, const struct train_progress *p, const struct train_epoch *e)
{
    (void)user;
    (void)p;
    epochs_seen += e != NULL;
}

static double train_shapes(uint64_t seed, float *params_out, size_t *n_params, double *val_acc)
{
    char err[STRATA_ERR_LEN];
    uint8_t *train, *test;
    int train_y[N_TRAIN], test_y[N_TEST];
    draw_shapes(&train, train_y, &test, test_y);

    struct model m = {0};
    struct train_config cfg;
    struct train_report rep;
    struct evaluation ev;
    double acc = -1;
    if (model_parse_json(&m, shapes_json, "shapes", err) < 0 ||
        train_config_parse(&cfg, json_object_get(m.json, "training"), "shapes", err) < 0) {
        printf("# %s\n", err);
        goto out;
    }
    cfg.seed = seed;
    model_init_params(&m, seed);
    epochs_seen = 0;
    if (train_run(&m, &cfg, train, train_y, N_TRAIN, count_epochs, NULL, NULL, &rep, err) < 0) {
        printf("# %s\n", err);
        goto out;
    }
    CHECK_EQ_INT(epochs_seen, rep.n_epochs);
    CHECK_EQ_INT(rep.n_val, 54);
    *val_acc = rep.best_val_acc;
    train_report_free(&rep);
    if (evaluate_images(&m, test, test_y, N_TEST, 32, &ev, err) == 0) {
        acc = ev.accuracy;
        evaluation_free(&ev);
    }
    if (params_out)
        memcpy(params_out, m.params, m.n_params * sizeof(float));
    *n_params = m.n_params;
out:
    model_free(&m);
    free(train);
    free(test);
    return acc;
}

/* Whether every float initializer of a is in b, the same dims and bits. */
static int same_initializers(const struct graph *a, const struct graph *b)
{
    int n = 0;
    for (int v = 0; v < a->n_values; v++) {
        const struct tview *t = &a->values[v].init;
        if (a->values[v].kind != VALUE_INITIALIZER || t->dtype != DTYPE_FLOAT)
            continue;
        const int w = graph_find_value(b, a->values[v].name);
        const struct tview *u = w >= 0 ? &b->values[w].init : NULL;
        if (!u || u->ndim != t->ndim || memcmp(u->dims, t->dims, sizeof t->dims) != 0 ||
            memcmp(u->data, t->data, (size_t)tview_count(t) * sizeof(float)) != 0)
            return 0;
        n++;
    }
    return n > 0;
}

/* An imported graph trains: the shapes model written as ONNX, its
 * classifier found (the Gemm) and given 4 outputs then 3 again, the file
 * written with those weights and read back bit for bit; then imported as a
 * model, drawn at random from scratch (train_graph_randomize), trained on
 * the synthetic shapes to 90 % or more, and saved: the saved file scores the
 * test images exactly as the trained graph did. */
TEST(an_imported_graph_trains_from_scratch_and_saves)
{
    char err[STRATA_ERR_LEN], dir[] = "/tmp/strata-train-XXXXXX", src[128], dst[128], json[128];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(src, sizeof src, "%s/own.onnx", dir);
    snprintf(dst, sizeof dst, "%s/model.onnx", dir);
    snprintf(json, sizeof json, "%s/model.json", dir);
    struct model own = {0};
    CHECK(model_parse_json(&own, shapes_json, "shapes", err) == 0);
    model_init_params(&own, 2);
    CHECK(onnx_export(&own, src, err) == 0);
    model_free(&own);

    struct graph g = {0}, back = {0};
    struct classifier c;
    CHECK(onnx_load(&g, src, err) == 0);
    CHECK(classifier_find(&g, &c, err) == 0);
    CHECK(strcmp(g.nodes[c.node].op_type, "Gemm") == 0);
    CHECK_EQ_INT(c.outputs, 3);
    CHECK_EQ_INT(c.out_axis, 0); /* [units][in], transB = 1 */
    CHECK(c.bias >= 0);
    CHECK(classifier_resize(&g, &c, 4, 7, err) == 0);
    CHECK_EQ_INT((int)g.values[c.weight].init.dims[0], 4);
    CHECK_EQ_INT((int)g.values[c.bias].init.dims[0], 4);
    CHECK(tview_f(&g.values[c.bias].init)[3] == 0.0f);
    CHECK(classifier_resize(&g, &c, 3, 7, err) == 0);
    CHECK(onnx_save_weights(src, &g, 3, dst, err) == 0);
    CHECK(onnx_load(&back, dst, err) == 0);
    CHECK(same_initializers(&g, &back) && same_initializers(&back, &g));
    graph_deinit(&g);
    graph_deinit(&back);

    FILE *f = fopen(json, "w");
    CHECK(f != NULL);
    if (f) {
        fputs("{\"id\":\"imported-shapes\",\"input\":{\"height\":24,\"width\":24,\"channels\":3},"
              "\"normalization\":{\"mean\":[0.4,0.4,0.4],\"std\":[0.3,0.3,0.3]},"
              "\"classes\":[\"square\",\"disc\",\"ring\"],\"onnx\":\"model.onnx\","
              "\"training\":{\"epochs\":30,\"batch_size\":16,\"seed\":3,"
              "\"optimizer\":{\"type\":\"adam\",\"lr\":0.01},\"augment\":{\"flip\":true},"
              "\"validation_split\":0.15}}",
              f);
        fclose(f);
    }
    uint8_t *train, *test;
    int train_y[N_TRAIN], test_y[N_TEST];
    draw_shapes(&train, train_y, &test, test_y);
    struct model m = {0}, saved = {0};
    struct train_config cfg;
    struct train_report rep = {0};
    struct evaluation ev = {0}, ev_saved = {0};
    CHECK(model_open(&m, NULL, dir, err) == 0);
    CHECK(m.onnx[0] && m.graph);
    CHECK(train_config_parse(&cfg, json_object_get(m.json, "training"), "imported", err) == 0);
    CHECK(train_graph_randomize(&m, 5, err) == 0);
    CHECK(evaluate_images(&m, test, test_y, N_TEST, 32, &ev, err) == 0);
    printf("# imported, drawn at random: accuracy %.3f\n", ev.accuracy);
    evaluation_free(&ev);
    CHECK(train_run(&m, &cfg, train, train_y, N_TRAIN, NULL, NULL, NULL, &rep, err) == 0);
    train_report_free(&rep);
    CHECK(evaluate_images(&m, test, test_y, N_TEST, 32, &ev, err) == 0);
    printf("# imported, trained: accuracy %.3f\n", ev.accuracy);
    CHECK(ev.accuracy >= 0.9);
    CHECK(onnx_save_weights(dst, &m.graph->g, 3, dst, err) == 0);
    CHECK(model_open(&saved, NULL, dir, err) == 0);
    CHECK(evaluate_images(&saved, test, test_y, N_TEST, 32, &ev_saved, err) == 0);
    CHECK(ev_saved.accuracy == ev.accuracy);
    CHECK(same_initializers(&m.graph->g, &saved.graph->g));
    evaluation_free(&ev);
    evaluation_free(&ev_saved);
    model_free(&m);
    model_free(&saved);
    free(train);
    free(test);
    unlink(src);
    unlink(dst);
    unlink(json);
    rmdir(dir);
}

/* A model with every trainable kind of layer: a biased conv, batch norm
 * (momentum 0.7) with a fused relu, max pooling, a conv without bias, a
 * flatten of a feature map (the graph transposes it to strata's h, w, c
 * order) and a dense softmax output. */
static const char *step_json =
    "{\"id\":\"step\",\"input\":{\"height\":9,\"width\":7,\"channels\":3},"
    "\"normalization\":{\"mean\":[0.5,0.5,0.5],\"std\":[0.25,0.25,0.25]},"
    "\"classes\":[\"a\",\"b\",\"c\"],\"layers\":["
    "{\"type\":\"conv2d\",\"filters\":5,\"kernel_size\":3,\"padding\":\"same\"},"
    "{\"type\":\"batch_norm\",\"momentum\":0.7,\"activation\":\"relu\"},"
    "{\"type\":\"maxpool2d\",\"pool_size\":2},"
    "{\"type\":\"conv2d\",\"filters\":4,\"kernel_size\":3,\"padding\":\"valid\","
    "\"use_bias\":false,\"activation\":\"relu\"},"
    "{\"type\":\"flatten\"},"
    "{\"type\":\"dense\",\"units\":3,\"activation\":\"softmax\"}]}";

/* step_json's shapes: a batch of SN images 9×7×3 -> conv 9×7×5 -> batch norm
 * -> max-pool 4×3×5 -> conv 2×1×4 -> flatten 8 -> dense 3. */
enum { SN = 6, SH = 9, SW = 7, PH = 4, PW = 3, QH = 2, QW = 1 };
enum { STEP_KINKS = SN * SH * SW * 5 + SN * PH * PW * 5 + SN * QH * QW * 4 };

/* A training-mode forward of step_json written out here, in double, on NHWC
 * arrays and the parameters th laid out as m->params (strata's layout:
 * kernels HWIO and [in][units]): convolution as a direct sum over taps,
 * batch norm with the batch's mean and biased variance, ε from model.json.
 * Returns the mean cross-entropy of the labels y; also the probabilities
 * (probs[SN × 3]), the batch norm's batch statistics (mu, var [5]) and the
 * forward's discrete choices (kinks[STEP_KINKS]: relu signs, max-pool
 * picks), each may be NULL. Shares no code with the graph. */
static double step_reference(const struct model *m, const double *th, const float *x,
                             const int *y, double *probs, double *mu, double *var,
                             uint8_t *kinks)
{
#define STEP_OFF(p) ((size_t)((p) - m->params))
    const double *k0 = th + STEP_OFF(m->layers[0].w.kernel), *b0 = th + STEP_OFF(m->layers[0].w.bias);
    const double *gam = th + STEP_OFF(m->layers[1].w.gamma), *bet = th + STEP_OFF(m->layers[1].w.beta);
    const double *k3 = th + STEP_OFF(m->layers[3].w.kernel);
    const double *k5 = th + STEP_OFF(m->layers[5].w.kernel), *b5 = th + STEP_OFF(m->layers[5].w.bias);
#undef STEP_OFF
    const double eps = m->layers[1].cfg.epsilon;
    static double a[SN][SH][SW][5], p[SN][PH][PW][5], q[SN][QH * QW * 4];
    int nk = 0;
    for (int s = 0; s < SN; s++) /* conv 3×3, same: one pixel of zeros around */
        for (int oy = 0; oy < SH; oy++)
            for (int ox = 0; ox < SW; ox++)
                for (int f = 0; f < 5; f++) {
                    double sum = b0[f];
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++) {
                            const int iy = oy + ky - 1, ix = ox + kx - 1;
                            if (iy < 0 || iy >= SH || ix < 0 || ix >= SW)
                                continue;
                            for (int c = 0; c < 3; c++)
                                sum += (double)x[((s * SH + iy) * SW + ix) * 3 + c] *
                                       k0[((ky * 3 + kx) * 3 + c) * 5 + f];
                        }
                    a[s][oy][ox][f] = sum;
                }
    const double M = SN * SH * SW;
    for (int f = 0; f < 5; f++) { /* batch norm on the batch's statistics, relu */
        double mean = 0, v = 0;
        for (int s = 0; s < SN; s++)
            for (int i = 0; i < SH * SW; i++)
                mean += a[s][i / SW][i % SW][f] / M;
        for (int s = 0; s < SN; s++)
            for (int i = 0; i < SH * SW; i++)
                v += (a[s][i / SW][i % SW][f] - mean) * (a[s][i / SW][i % SW][f] - mean) / M;
        if (mu)
            mu[f] = mean;
        if (var)
            var[f] = v;
        for (int s = 0; s < SN; s++)
            for (int i = 0; i < SH * SW; i++) {
                double *e = &a[s][i / SW][i % SW][f];
                *e = gam[f] * (*e - mean) / sqrt(v + eps) + bet[f];
                if (kinks)
                    kinks[nk++] = *e > 0;
                *e = *e > 0 ? *e : 0;
            }
    }
    for (int s = 0; s < SN; s++) /* max-pool 2×2, stride 2: the first largest */
        for (int py = 0; py < PH; py++)
            for (int px = 0; px < PW; px++)
                for (int f = 0; f < 5; f++) {
                    int best = 0;
                    for (int k = 1; k < 4; k++)
                        if (a[s][2 * py + k / 2][2 * px + k % 2][f] >
                            a[s][2 * py + best / 2][2 * px + best % 2][f])
                            best = k;
                    p[s][py][px][f] = a[s][2 * py + best / 2][2 * px + best % 2][f];
                    if (kinks)
                        kinks[nk++] = (uint8_t)best;
                }
    for (int s = 0; s < SN; s++) /* conv 3×3 valid, no bias, relu; flattened h, w, c */
        for (int oy = 0; oy < QH; oy++)
            for (int ox = 0; ox < QW; ox++)
                for (int f = 0; f < 4; f++) {
                    double sum = 0;
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++)
                            for (int c = 0; c < 5; c++)
                                sum += p[s][oy + ky][ox + kx][c] * k3[((ky * 3 + kx) * 5 + c) * 4 + f];
                    if (kinks)
                        kinks[nk++] = sum > 0;
                    q[s][(oy * QW + ox) * 4 + f] = sum > 0 ? sum : 0;
                }
    double loss = 0;
    for (int s = 0; s < SN; s++) { /* dense, softmax, cross-entropy */
        double z[3], top = -1e300, sum = 0;
        for (int u = 0; u < 3; u++) {
            z[u] = b5[u];
            for (int i = 0; i < QH * QW * 4; i++)
                z[u] += q[s][i] * k5[i * 3 + u];
            top = fmax(top, z[u]);
        }
        for (int u = 0; u < 3; u++)
            sum += exp(z[u] - top);
        for (int u = 0; u < 3; u++)
            if (probs)
                probs[s * 3 + u] = exp(z[u] - top) / sum;
        loss -= z[y[s]] - top - log(sum);
    }
    return loss / SN;
}

/* One training step on the graph (train_graph.h) against the reference
 * above, which shares no code with it: the training forward's
 * probabilities; the running statistics it leaves (momentum · old +
 * (1 − momentum) · the batch's, the variance unbiased: × M/(M − 1)); every
 * trainable tensor's gradient, read back in strata's layout
 * (train_graph_to_model), against central differences of the reference's
 * loss in double; and the weights after an SGD step with weight decay,
 * against optim's rule applied to those finite-difference gradients (kernels
 * decay, biases and batch-norm parameters do not; running statistics stay).
 * Also: a graph built and read back with no step gives the weights bit for
 * bit. */
TEST(graph_training_step_matches_the_reference)
{
    char err[STRATA_ERR_LEN];
    struct model a = {0}, b = {0};
    CHECK(model_parse_json(&a, step_json, "step", err) == 0);
    CHECK(model_parse_json(&b, step_json, "step", err) == 0);
    model_init_params(&a, 3);
    for (size_t i = 0; i < a.n_params; i++) /* biases and statistics away from 0 and 1 */
        a.params[i] += 0.05f * (float)((i * 7919) % 13) / 13.0f;
    memcpy(b.params, a.params, a.n_params * sizeof(float));

    struct train_graph tg;
    CHECK(train_graph_init(&tg, &b, SN, 1, err) == 0);
    memset(b.params, 0, b.n_params * sizeof(float));
    train_graph_to_model(&tg, &b);
    CHECK(memcmp(a.params, b.params, a.n_params * sizeof(float)) == 0);

    size_t in_size = shape_size(a.input);
    float *x = malloc(SN * in_size * sizeof *x);
    struct rng r;
    rng_seed(&r, 8);
    for (size_t i = 0; i < SN * in_size; i++)
        x[i] = (float)rng_normal(&r);
    const int labels[SN] = {0, 1, 2, 2, 1, 0};
    double *th = malloc(a.n_params * sizeof *th), *fd = calloc(a.n_params, sizeof *fd);
    uint8_t *have = calloc(a.n_params, 1); /* fd[j] was taken */
    for (size_t i = 0; i < a.n_params; i++)
        th[i] = a.params[i];
    double ref_p[SN * 3], mu[5], var[5];
    static uint8_t k0[STEP_KINKS], kp[STEP_KINKS], km[STEP_KINKS];
    step_reference(&a, th, x, labels, ref_p, mu, var, k0);

    /* the forward */
    const float *pg = train_graph_forward(&tg, x, SN, 1, err);
    CHECK_MSG(pg != NULL, "%s", err);
    double worst_p = 0;
    float dl[SN * 3];
    for (int i = 0; pg && i < SN * 3; i++)
        worst_p = fmax(worst_p, fabs(pg[i] - ref_p[i]));
    CHECK_MSG(worst_p < 1e-5, "probabilities differ from the reference by %.3g", worst_p);
    if (pg)
        train_softmax_xent(pg, labels, SN, 3, NULL, 0, dl);
    CHECK(pg && train_graph_backward(&tg, dl, err) == 0);

    /* the running statistics the training forward left */
    float *state = malloc(tg.state_len * sizeof *state);
    train_graph_save(&tg, state);
    train_graph_to_model(&tg, &b);
    const double M = SN * SH * SW;
    for (int c = 0; c < 5; c++) {
        const struct layer_tensors *w0 = &a.layers[1].w, *w1 = &b.layers[1].w;
        CHECK_NEAR(w1->moving_mean[c], 0.7 * w0->moving_mean[c] + 0.3 * mu[c], 1e-6);
        CHECK_NEAR(w1->moving_var[c], 0.7 * w0->moving_var[c] + 0.3 * var[c] * M / (M - 1),
                   1e-5 * (1 + var[c]));
    }

    /* the gradients, put where the weights were and read back in strata's
     * layout; against the reference's, by central differences in double
     * (h = 1e-6: truncation and rounding far below float's), skipping a
     * parameter whose ± h changes a relu's sign or a max-pool's pick */
    struct optim_tensor t[16];
    const int nt = train_graph_optim_tensors(&tg, t);
    CHECK_EQ_INT(nt, 7); /* kernel, bias, gamma, beta, kernel, kernel, bias */
    size_t total = 0;
    for (int i = 0; i < nt; i++) {
        memcpy(t[i].param, t[i].grad, t[i].len * sizeof(float));
        total += t[i].len;
    }
    CHECK(total == model_trainable_count(&a));
    train_graph_to_model(&tg, &b);
    train_graph_restore(&tg, state);
    double worst = 0, scale = 0;
    int compared = 0, skipped = 0, at = -1;
    for (int l = 0; l < a.n_layers; l++) {
        const struct layer_tensors *wa = &a.layers[l].w, *gb = &b.layers[l].w;
        const float *pairs[4][2] = {{wa->kernel, gb->kernel}, {wa->bias, gb->bias},
                                    {wa->gamma, gb->gamma}, {wa->beta, gb->beta}};
        size_t lens[4] = {0};
        if (wa->kernel)
            lens[0] = a.layers[l].cfg.kind == LAYER_CONV2D
                          ? (size_t)a.layers[l].cfg.kernel * a.layers[l].cfg.kernel *
                                a.layers[l].in.c * a.layers[l].cfg.filters
                          : shape_size(a.layers[l].in) * (size_t)a.layers[l].cfg.units;
        if (wa->bias)
            lens[1] = (size_t)(a.layers[l].cfg.kind == LAYER_CONV2D ? a.layers[l].cfg.filters
                                                                     : a.layers[l].cfg.units);
        if (wa->gamma)
            lens[2] = lens[3] = (size_t)a.layers[l].in.c;
        for (int k = 0; k < 4; k++)
            for (size_t i = 0; i < lens[k]; i++) {
                const size_t j = (size_t)(pairs[k][0] + i - a.params);
                const double h = 1e-6, keep = th[j];
                th[j] = keep + h;
                const double lp = step_reference(&a, th, x, labels, NULL, NULL, NULL, kp);
                th[j] = keep - h;
                const double lm = step_reference(&a, th, x, labels, NULL, NULL, NULL, km);
                th[j] = keep;
                compared++;
                if (memcmp(k0, kp, STEP_KINKS) || memcmp(k0, km, STEP_KINKS)) {
                    skipped++;
                    continue;
                }
                fd[j] = (lp - lm) / (2 * h);
                have[j] = 1;
                scale = fmax(scale, fabs(fd[j]));
                if (fabs(pairs[k][1][i] - fd[j]) > worst) {
                    worst = fabs(pairs[k][1][i] - fd[j]);
                    at = (int)j;
                }
            }
    }
    printf("# one step: probabilities within %.2g of the reference, %d gradients within %.2g "
           "of its finite differences (largest %.3g, %d skipped at a kink)\n",
           worst_p, compared - skipped, worst, scale, skipped);
    CHECK(compared == (int)model_trainable_count(&a));
    CHECK(skipped <= compared / 50);
    CHECK(scale > 0.01); /* not vacuous */
    CHECK_MSG(worst <= 1e-4 * scale, "gradient of parameter %d differs by %.3g (largest %.3g)",
              at, worst, scale);

    /* SGD with momentum and weight decay, one step: θ·(1 − lr·λ) − lr·g for
     * kernels, θ − lr·g for the other trainable tensors (the velocity starts
     * at g), the running statistics untouched. Which is which, from the
     * slab's layout: layer by layer, tensors in layer_ops.params order. */
    uint8_t *trainable = calloc(a.n_params, 1), *kernel = calloc(a.n_params, 1);
    size_t off = 0;
    for (int l = 0; l < a.n_layers; l++) {
        struct param_desc desc[LAYER_MAX_PARAMS];
        const int np = layer_ops_of(a.layers[l].cfg.kind)->params(&a.layers[l], desc);
        for (int d = 0; d < np; d++) {
            size_t len = 1;
            for (int k = 0; k < desc[d].ndim; k++)
                len *= (size_t)desc[d].dims[k];
            for (size_t i = 0; i < len && off + i < a.n_params; i++) {
                trainable[off + i] = (uint8_t)desc[d].trainable;
                kernel[off + i] = strcmp(desc[d].name, "kernel") == 0;
            }
            off += len;
        }
    }
    CHECK(off == a.n_params);
    float *stats = malloc(a.n_params * sizeof *stats); /* running statistics before the step */
    memcpy(stats, b.params, a.n_params * sizeof *stats);
    const float lr = 0.5f, wd = 0.01f;
    struct optim o;
    const struct optim_config sgd = {.kind = OPTIM_SGD, .momentum = 0.9f, .weight_decay = wd};
    CHECK(optim_init_tensors(&o, t, nt, &sgd, err) == 0);
    optim_step(&o, lr);
    optim_free(&o);
    train_graph_to_model(&tg, &b);
    double worst_step = 0;
    int moved = 0, should_move = 0;
    for (size_t j = 0; j < a.n_params; j++) {
        if (!trainable[j]) {
            CHECK(memcmp(&b.params[j], &stats[j], sizeof(float)) == 0);
            continue;
        }
        if (!have[j]) /* skipped at a kink */
            continue;
        const double want = th[j] * (kernel[j] ? 1.0 - (double)lr * wd : 1.0) - lr * fd[j];
        worst_step = fmax(worst_step, fabs(b.params[j] - want));
        if (fabs(want - th[j]) > 1e-3) { /* far more than the tolerance below */
            should_move++;
            moved += b.params[j] != a.params[j];
        }
    }
    printf("# after an SGD step every weight within %.2g of the rule applied to the "
           "reference's gradients (%d moved by more than 1e-3)\n", worst_step, should_move);
    CHECK(moved == should_move && should_move > (compared - skipped) / 2);
    CHECK_MSG(worst_step <= lr * 1e-4 * scale + 1e-6, "the step is off by %.3g", worst_step);
    free(trainable);
    free(kernel);
    free(stats);
    train_graph_free(&tg);
    model_free(&a);
    model_free(&b);
    free(state);
    free(th);
    free(fd);
    free(have);
    free(x);
}

TEST(end_to_end_shapes_reach_95_percent_and_repeat_exactly)
{
    static float a[20000], b[20000];
    size_t na = 0, nb = 0;
    double va, vb;
    double acc = train_shapes(5, a, &na, &va);
    printf("# synthetic shapes: held-out accuracy %.3f (validation %.3f)\n", acc, va);
    CHECK(acc >= 0.95);
    CHECK(na > 0 && na < 20000);
    /* Same seed, same thread count: bit-identical weights. */
    double acc2 = train_shapes(5, b, &nb, &vb);
    CHECK(acc2 == acc);
    CHECK(na == nb && memcmp(a, b, na * sizeof(float)) == 0);
}

/* log Σ_c exp(z_c) of the output layer's logits (recomputed from its input,
 * since the layer fuses the softmax) for the image in ws->input row i. */
static double logit_lse(const struct model *m, const struct model_workspace *ws, int i)
{
    const struct layer *out = &m->layers[m->n_layers - 1];
    int ni = (int)shape_size(out->in), C = m->n_classes;
    const float *h = model_output(ws, m->n_layers - 2) + (size_t)i * ni;
    double z[8], mx = -1e300, sum = 0;
    for (int c = 0; c < C; c++) {
        z[c] = out->w.bias ? out->w.bias[c] : 0;
        for (int k = 0; k < ni; k++)
            z[c] += (double)h[k] * out->w.kernel[(size_t)k * C + c];
        mx = z[c] > mx ? z[c] : mx;
    }
    for (int c = 0; c < C; c++)
        sum += exp(z[c] - mx);
    return mx + log(sum);
}

static int batches_seen;
static void count_batches(void *user, const struct train_progress *p, const struct train_epoch *e)
{
    (void)user;
    if (e)
        batches_seen = p->batches;
}

TEST(rotation_labels_keep_the_upright_outputs)
{
    /* The shapes with a band of sky along the top, so that which way is up
     * can be learnt. After training with rotation labels the saved model has
     * the C upright outputs only: they must classify upright images, and
     * their logits must be larger for an upright image than for the same
     * image upside down, whose mass the training gave to the "turned 180"
     * outputs that were cut away. Keeping any other block inverts this. */
    char err[STRATA_ERR_LEN];
    enum { N_TRAIN = 240, N_TEST = 90 };
    size_t isz = (size_t)S * S * 3;
    uint8_t *train = malloc(N_TRAIN * isz), *test = malloc(N_TEST * isz);
    int train_y[N_TRAIN], test_y[N_TEST];
    struct rng r;
    rng_seed(&r, 99);
    for (int i = 0; i < N_TRAIN + N_TEST; i++) {
        uint8_t *img = i < N_TRAIN ? train + i * isz : test + (i - N_TRAIN) * isz;
        int cls = i % 3;
        draw_shape(img, cls, &r);
        for (int p = 0; p < 4 * S; p++) {
            static const uint8_t sky[3] = {150, 190, 250};
            for (int c = 0; c < 3; c++)
                img[p * 3 + c] = (uint8_t)(sky[c] - rng_below(&r, 20));
        }
        if (i < N_TRAIN)
            train_y[i] = cls;
        else
            test_y[i - N_TRAIN] = cls;
    }
    struct model m = {0};
    struct train_config cfg;
    struct train_report rep = {0};
    struct evaluation ev = {0};
    struct model_workspace ws = {0};
    if (model_parse_json(&m, shapes_json, "shapes", err) < 0 ||
        train_config_parse(&cfg, json_object_get(m.json, "training"), "shapes", err) < 0) {
        CHECK_MSG(0, "%s", err);
        goto out;
    }
    cfg.rotation_labels = 1;
    cfg.epochs = 15;
    model_init_params(&m, 4);
    batches_seen = 0;
    if (train_run(&m, &cfg, train, train_y, N_TRAIN, count_batches, NULL, NULL, &rep, err) < 0) {
        CHECK_MSG(0, "%s", err);
        goto out;
    }
    CHECK_EQ_INT(m.n_classes, 3);
    CHECK_EQ_INT((int)shape_size(m.layers[m.n_layers - 1].out), 3);
    CHECK_EQ_INT(rep.n_train, N_TRAIN - 36);
    /* One turned copy per image: an epoch shows 2 × 204 = 408 images, 25
     * batches of 16 and a last one of 8. */
    CHECK_EQ_INT(batches_seen, 26);
    CHECK(evaluate_images(&m, test, test_y, N_TEST, 32, &ev, err) == 0);
    printf("# rotation labels: upright accuracy %.3f (validation %.3f)\n", ev.accuracy,
           rep.epochs[rep.n_epochs - 1].val_acc);
    CHECK(ev.accuracy >= 0.9);
    CHECK(model_workspace_init(&ws, &m, 2, err) == 0);
    double gap = 0;
    int higher = 0;
    float *upright = malloc(isz * sizeof(float));
    for (int i = 0; i < N_TEST; i++) {
        model_normalise(&m, test + i * isz, upright);
        memcpy(ws.input, upright, isz * sizeof(float));
        augment_turn(upright, S, 3, 2, ws.input + isz);
        model_forward(&m, &ws, ws.input, 2);
        double a = logit_lse(&m, &ws, 0), b = logit_lse(&m, &ws, 1);
        gap += (a - b) / N_TEST;
        higher += a > b;
    }
    free(upright);
    printf("# log-sum-exp of the logits, upright minus upside down: mean %.2f, larger for %d of %d\n",
           gap, higher, N_TEST);
    CHECK(gap > 0.5);
    CHECK(higher >= N_TEST * 9 / 10);
out:
    model_workspace_free(&ws);
    evaluation_free(&ev);
    train_report_free(&rep);
    model_free(&m);
    free(train);
    free(test);
}

TEST(rotation_labels_need_a_square_input_and_a_dense_softmax_output)
{
    char err[STRATA_ERR_LEN];
    const char *defs[][2] = {
        {"{\"id\":\"wide\",\"input\":{\"height\":4,\"width\":6,\"channels\":3},\"classes\":[\"a\",\"b\"],"
         "\"layers\":[{\"type\":\"global_avg_pool\"},{\"type\":\"dense\",\"units\":2,\"activation\":\"softmax\"}]}",
         "square input (this one is 6×4)"},
        {"{\"id\":\"apart\",\"input\":{\"height\":4,\"width\":4,\"channels\":3},\"classes\":[\"a\",\"b\"],"
         "\"layers\":[{\"type\":\"global_avg_pool\"},{\"type\":\"dense\",\"units\":2},{\"type\":\"softmax\"}]}",
         "dense with softmax activation"},
        {NULL, NULL},
    };
    /* 251 classes would need 1004 outputs, over the 1000 a model may have. */
    static char many[4096];
    int len = snprintf(many, sizeof many, "{\"id\":\"many\",\"input\":{\"height\":4,\"width\":4,"
                       "\"channels\":3},\"classes\":[");
    for (int c = 0; c < 251; c++)
        len += snprintf(many + len, sizeof many - len, "%s\"k%d\"", c ? "," : "", c);
    snprintf(many + len, sizeof many - len, "],\"layers\":[{\"type\":\"global_avg_pool\"},"
             "{\"type\":\"dense\",\"units\":251,\"activation\":\"softmax\"}]}");
    defs[2][0] = many;
    defs[2][1] = "4 × 251 outputs, more than the 1000";
    uint8_t px[4 * 6 * 4 * 3] = {0};
    int labels[4] = {0, 1, 0, 1};
    for (size_t d = 0; d < sizeof defs / sizeof defs[0]; d++) {
        struct model m = {0};
        struct train_config cfg;
        struct train_report rep;
        CHECK(model_parse_json(&m, defs[d][0], "def", err) == 0);
        train_config_parse(&cfg, NULL, "def", err);
        cfg.rotation_labels = 1;
        cfg.validation_split = 0;
        cfg.epochs = 1;
        err[0] = 0;
        CHECK(train_run(&m, &cfg, px, labels, 4, NULL, NULL, NULL, &rep, err) < 0);
        CHECK_MSG(strstr(err, defs[d][1]) && strstr(err, "rotation_labels"), "%s", err);
        /* Without rotation labels the same model trains. */
        cfg.rotation_labels = 0;
        CHECK(train_run(&m, &cfg, px, labels, 4, NULL, NULL, NULL, &rep, err) == 0);
        train_report_free(&rep);
        model_free(&m);
    }
}

int main(void)
{
    RUN(softmax_xent_gradient_is_closed_form);
    RUN(mixed_loss_by_hand_and_by_finite_differences);
    RUN(adam_and_sgd_steps_match_hand_computation);
    RUN(augment_identity_and_flip);
    RUN(augment_turn_is_a_clockwise_quarter_turn);
    RUN(augment_erase_one_rectangle);
    RUN(config_parsing_and_errors);
    RUN(graph_training_step_matches_the_reference);
    RUN(end_to_end_shapes_reach_95_percent_and_repeat_exactly);
    RUN(an_imported_graph_trains_from_scratch_and_saves);
    RUN(rotation_labels_keep_the_upright_outputs);
    RUN(rotation_labels_need_a_square_input_and_a_dense_softmax_output);
    return check_done();
}
