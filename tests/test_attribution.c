/*
 * test_attribution.c — the explanation methods that compare: Grad-CAM,
 * Integrated Gradients, occlusion, and the deletion/insertion curves that
 * score them.
 *
 * Evidence:
 *  - a hand-set linear network (a 1×1 convolution reading the red channel, a
 *    dense layer with weights 1, 2, 3, 4 over a 2×2 image): its Grad-CAM map
 *    and its Integrated Gradients are worked out by hand and must come out
 *    exactly (IG of a linear function is exact at any number of steps);
 *  - bilinear upsampling against hand-worked values (OpenCV's half-pixel
 *    convention);
 *  - input gradients through strata's own model run as a graph against
 *    central finite differences along random directions; the probabilities
 *    (infer_images, and the softmax of model_grad's logits) against
 *    ref_forward's, a naive double-precision forward pass (ref_forward.c);
 *    the inputs-only backward gives the full backward's input gradient bit
 *    for bit and skips the weights;
 *  - Integrated Gradients converges to completeness as the steps grow (error
 *    shrinking at least as 1/steps) on a demo model;
 *  - occlusion on a model whose output depends on one corner: its maximum is
 *    there and the map is exactly zero where no patch overlaps the corner;
 *  - deletion and insertion curves of a hand-set model against the closed
 *    form σ(Σ w·x) image by image; areas by the trapezoid rule;
 *  - Gaussian blur keeps a flat image flat and blurs an edge monotonically.
 */
#include "check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attribution.h"
#include "dataset.h"
#include "faithfulness.h"
#include "gradcam.h"
#include "infer.h"
#include "integrated_gradients.h"
#include "model_grad.h"
#include "occlusion.h"
#include "ref_forward.h"

/* A model of input side×side, mean 0 and std 1, with a 1×1 conv "c1" that
 * copies the red channel, then a dense layer "d1" to two classes: class 0's
 * weight for position p is w0[p], class 1's are all 0. */
static int linear_model(struct model *m, int side, const float *w0)
{
    char json[2048], err[STRATA_ERR_LEN];
    snprintf(json, sizeof json,
             "{\"id\":\"lin\",\"input\":{\"height\":%d,\"width\":%d,\"channels\":3},"
             "\"normalization\":{\"mean\":[0,0,0],\"std\":[1,1,1]},"
             "\"classes\":[\"yes\",\"no\"],\"layers\":["
             "{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":1,\"kernel_size\":1,\"use_bias\":false},"
             "{\"type\":\"flatten\",\"name\":\"f1\"},"
             "{\"type\":\"dense\",\"name\":\"d1\",\"units\":2,\"activation\":\"softmax\"}]}",
             side, side);
    if (model_parse_json(m, json, "linear model", err) != 0) {
        printf("# %s\n", err);
        return -1;
    }
    struct layer *conv = &m->layers[0], *dense = &m->layers[2];
    conv->w.kernel[0] = 1; /* HWIO [1][1][3][1]: red only */
    conv->w.kernel[1] = 0;
    conv->w.kernel[2] = 0;
    for (int p = 0; p < side * side; p++) {
        dense->w.kernel[p * 2 + 0] = w0[p];
        dense->w.kernel[p * 2 + 1] = 0;
    }
    dense->w.bias[0] = dense->w.bias[1] = 0;
    return 0;
}

static void red_image(uint8_t *rgb, int n, const uint8_t *red)
{
    for (int p = 0; p < n; p++) {
        rgb[3 * p] = red[p];
        rgb[3 * p + 1] = (uint8_t)(37 * p + 11); /* the model ignores green and blue */
        rgb[3 * p + 2] = (uint8_t)(255 - 19 * p);
    }
}

TEST(gradcam_and_ig_hand_worked)
{
    const float w0[4] = {1, 2, 3, 4};
    struct model m = {0};
    CHECK(linear_model(&m, 2, w0) == 0);
    struct model_grad mg;
    char err[STRATA_ERR_LEN];
    CHECK(model_grad_init(&mg, &m, 8, err) == 0);
    uint8_t rgb[12];
    red_image(rgb, 4, (const uint8_t[]){51, 102, 153, 204}); /* x_red = .2 .4 .6 .8 */
    float x[12], map[4];
    model_grad_image(&mg, rgb, x);
    /* A = x_red; logit0 = 1·.2 + 2·.4 + 3·.6 + 4·.8 = 6; ∂logit0/∂A = w0,
     * α = mean(w0) = 2.5, cam = ReLU(2.5·A) = .5 1 1.5 2 (2×2: no resize) */
    int layer = model_grad_find_layer(&mg, "c1", err);
    CHECK(layer >= 0);
    CHECK(model_grad_find_layer(&mg, NULL, err) == layer); /* the last spatial one */
    CHECK(model_grad_find_layer(&mg, "d1", err) == STRATA_E_NOTFOUND);
    CHECK(strstr(err, "c1/conv") != NULL); /* the message lists what there is */
    CHECK(gradcam_compute(&mg, x, 0, layer, map, err) == 0);
    CHECK_NEAR(model_grad_logits(&mg)[0], 6.0, 1e-5);
    const float cam[4] = {0.5f, 1.0f, 1.5f, 2.0f};
    for (int p = 0; p < 4; p++)
        CHECK_NEAR(map[p], cam[p], 1e-5);
    /* class 1 has zero weights: a zero map */
    CHECK(gradcam_compute(&mg, x, 1, layer, map, err) == 0);
    for (int p = 0; p < 4; p++)
        CHECK_NEAR(map[p], 0, 0);
    /* IG against black: (x − 0)·w0 on red, exact at any step count */
    float base[12] = {0};
    const float ig[4] = {0.2f, 0.8f, 1.8f, 3.2f};
    for (int steps = 1; steps <= 20; steps += 19) {
        struct ig_result r;
        CHECK(ig_compute(&mg, x, base, 0, steps, map, &r, err) == 0);
        for (int p = 0; p < 4; p++)
            CHECK_NEAR(map[p], ig[p], 1e-5);
        CHECK_NEAR(r.f_input, 6.0, 1e-5);
        CHECK_NEAR(r.f_baseline, 0.0, 1e-6);
        CHECK_NEAR(r.sum, 6.0, 1e-5);
        CHECK(r.completeness < 1e-5);
    }
    model_grad_deinit(&mg);
    model_free(&m);
}

TEST(upsample_hand_worked)
{
    /* 2×2 -> 4×4, centres aligned: x_src = (x + .5)/2 − .5 = −.25 .25 .75 1.25,
     * clamped: rows and columns weigh (1, 0) (.75, .25) (.25, .75) (0, 1) */
    const float src[4] = {0, 4, 8, 12};
    float dst[16];
    gradcam_upsample(src, 2, 2, dst, 4, 4);
    const float row0[4] = {0, 1, 3, 4}, col0[4] = {0, 2, 6, 8};
    for (int i = 0; i < 4; i++) {
        CHECK_NEAR(dst[i], row0[i], 1e-6);
        CHECK_NEAR(dst[4 * i], col0[i], 1e-6);
    }
    CHECK_NEAR(dst[15], 12, 1e-6);
    CHECK_NEAR(dst[5], 0.75 * 0.75 * 0 + 0.75 * 0.25 * 4 + 0.25 * 0.75 * 8 + 0.25 * 0.25 * 12, 1e-6);
    /* same size: a copy */
    float same[4];
    gradcam_upsample(src, 2, 2, same, 2, 2);
    CHECK(memcmp(same, src, sizeof src) == 0);
}

static int open_demo(struct model *m, const char *id)
{
    char err[STRATA_ERR_LEN];
    const char *root = getenv("STRATA_MODELS") ? getenv("STRATA_MODELS") : "models";
    if (model_open(m, root, id, err) < 0) {
        printf("# %s\n", err);
        return -1;
    }
    return 0;
}

/* A photo-like image: smooth colour gradients with a few edges, so that
 * units switch on and off across it. */
static void test_photo(uint8_t *rgb, int h, int w, int seed)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                int v = (x * (3 + c) + y * (5 - c) + seed * 31) % 256;
                if ((x / 12 + y / 16 + c) % 3 == 0)
                    v = 255 - v;
                rgb[((size_t)y * w + x) * 3 + c] = (uint8_t)v;
            }
}

TEST(demo_model_gradients)
{
    struct model m = {0};
    if (open_demo(&m, "felines") < 0) {
        CHECK(!"felines is one of the demo models");
        return;
    }
    const int H = m.input.h, W = m.input.w, K = m.n_classes;
    const size_t n_in = 3 * (size_t)H * W;
    char err[STRATA_ERR_LEN];
    struct model_grad mg;
    CHECK(model_grad_init(&mg, &m, 4, err) == 0);
    uint8_t *rgb = malloc(n_in);
    float *x = malloc(n_in * sizeof *x), *v = malloc(n_in * sizeof *v), *xp = malloc(n_in * sizeof *xp);
    float *dx = malloc(n_in * sizeof *dx);
    test_photo(rgb, H, W, 1);
    model_grad_image(&mg, rgb, x);

    /* the probabilities inference gives, and those of the logits the
     * gradients are taken of, are the reference's */
    struct model_workspace ws = {0};
    float probs[16];
    CHECK(model_workspace_init(&ws, &m, 4, err) == 0);
    CHECK(infer_images(&m, &ws, rgb, 1, probs, NULL, NULL) == 0);
    int cls = infer_argmax(probs, K);
    CHECK(model_grad_run(&mg, x, 1, &cls, err) == 0);
    float *nhwc = malloc(n_in * sizeof *nhwc); /* x is channels first, the reference's last */
    model_normalise(&m, rgb, nhwc);
    double **ref = ref_forward(&m, nhwc, 1, err);
    CHECK_MSG(ref != NULL, "%s", err);
    const double *want = ref ? ref[m.n_layers - 1] : NULL;
    const float *z = model_grad_logits(&mg);
    double mx = z[0], sum = 0;
    for (int k = 1; k < K; k++)
        mx = fmax(mx, z[k]);
    for (int k = 0; k < K; k++)
        sum += exp(z[k] - mx);
    double off_infer = 0, off_logits = 0;
    for (int k = 0; want && k < K; k++) {
        CHECK_NEAR(probs[k], want[k], 1e-5);
        CHECK_NEAR(exp(z[k] - mx) / sum, want[k], 1e-5);
        off_infer = fmax(off_infer, fabs(probs[k] - want[k]));
        off_logits = fmax(off_logits, fabs(exp(z[k] - mx) / sum - want[k]));
    }
    printf("# felines against the reference: probabilities %.2g off, softmax of the logits %.2g\n",
           off_infer, off_logits);
    ref_forward_free(&m, ref);
    free(nhwc);

    /* d logit / dx against central differences along random unit directions */
    memcpy(dx, tview_f(model_grad_gradient(&mg, mg.input)), n_in * sizeof *dx);
    uint64_t s = 12345;
    for (int trial = 0; trial < 4; trial++) {
        double norm = 0;
        for (size_t j = 0; j < n_in; j++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            v[j] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5);
            norm += (double)v[j] * v[j];
        }
        double analytic = 0;
        for (size_t j = 0; j < n_in; j++) {
            v[j] = (float)(v[j] / sqrt(norm));
            analytic += (double)v[j] * dx[j];
        }
        const double eps = 1e-2;
        double f[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            for (size_t j = 0; j < n_in; j++)
                xp[j] = x[j] + (float)((sgn ? -eps : eps) * v[j]);
            CHECK(model_grad_run(&mg, xp, 1, NULL, err) == 0);
            f[sgn] = model_grad_logits(&mg)[cls];
        }
        double numeric = (f[0] - f[1]) / (2 * eps);
        CHECK_MSG(fabs(numeric - analytic) <= 0.02 * fabs(analytic) + 1e-3,
                  "direction %d: finite differences %.6f, backward %.6f", trial, numeric, analytic);
    }

    /* the inputs-only backward: the full backward's input gradient, bit for
     * bit, and no weight gradient */
    CHECK(model_grad_run(&mg, x, 1, &cls, err) == 0);
    int weight = -1;
    for (int i = 0; i < mg.g->n_values && weight < 0; i++)
        if (mg.g->values[i].kind == VALUE_INITIALIZER && mg.g->values[i].init.ndim == 4)
            weight = i;
    CHECK(weight >= 0 && model_grad_gradient(&mg, weight)->data == NULL);
    CHECK(graph_backward(&mg.ws, mg.logits, mg.dout, err) == 0);
    CHECK(memcmp(dx, tview_f(model_grad_gradient(&mg, mg.input)), n_in * sizeof *dx) == 0);
    CHECK(model_grad_gradient(&mg, weight)->data != NULL);

    /* Integrated Gradients: completeness improves at least as 1/steps */
    float *map = malloc((size_t)H * W * sizeof *map), *black = calloc(n_in, sizeof *black);
    uint8_t *zero = calloc(n_in, 1);
    model_grad_image(&mg, zero, black);
    double prev = 0;
    for (int steps = 16; steps <= 256; steps *= 4) {
        struct ig_result r;
        CHECK(ig_compute(&mg, x, black, cls, steps, map, &r, err) == 0);
        printf("# IG on felines, %d steps: sum %.5f, f(x) - f(black) %.5f, completeness error %.4f\n",
               steps, r.sum, r.f_input - r.f_baseline, r.completeness);
        if (steps > 16)
            CHECK_MSG(r.completeness <= prev / 4 * 1.5 || r.completeness < 0.005,
                      "%d steps: error %.4f after %.4f", steps, r.completeness, prev);
        prev = r.completeness;
    }
    CHECK(prev < 0.05);
    free(map);
    free(black);
    free(zero);
    model_workspace_free(&ws);
    model_grad_deinit(&mg);
    free(rgb);
    free(x);
    free(v);
    free(xp);
    free(dx);
    model_free(&m);
}

/* Integrated Gradients on every demo model, on a real test photo: the
 * completeness error is small at 256 steps and shrinks from 16 steps to 256
 * (the trapezoid rule converges: the gradients are those of the function).
 * 16 against 256 rather than neighbouring counts: across a ReLU network's
 * kinks the error does not fall at every step count, and one count can land
 * on a lucky cancellation (transports-residual: 0.04 % at 64 steps, 0.30 %
 * at 256). */
TEST(ig_on_every_demo_model)
{
    static const char *const ids[] = {"felines",          "paysages",        "transports",
                                      "felines-seed",     "paysages-seed",   "transports-seed",
                                      "felines-residual", "transports-residual"};
    const char *data = getenv("STRATA_DATA") ? getenv("STRATA_DATA") : "../shared/datasets";
    for (size_t k = 0; k < sizeof ids / sizeof *ids; k++) {
        struct model m = {0};
        char err[STRATA_ERR_LEN], path[1200];
        if (open_demo(&m, ids[k]) < 0) {
            CHECK(!"every demo model opens");
            continue;
        }
        struct dataset ds = {0};
        if (dataset_open(&ds, data, m.dataset, "test", err) < 0) {
            printf("# %s: no test photos (%s): IG checked on the synthetic image only\n", ids[k], err);
            model_free(&m);
            continue;
        }
        snprintf(path, sizeof path, "%s", ds.items[ds.n / 2].path);
        dataset_free(&ds);
        struct image img = {0}, small = {0};
        CHECK(image_load(path, &img, err) == 0 && image_resize(&img, m.input.w, m.input.h, &small, err) == 0);
        struct model_grad mg;
        CHECK(model_grad_init(&mg, &m, 32, err) == 0);
        const size_t n_in = 3 * (size_t)m.input.h * m.input.w;
        float *x = malloc(n_in * sizeof *x), *black = malloc(n_in * sizeof *black);
        float *map = malloc((size_t)m.input.h * m.input.w * sizeof *map);
        uint8_t *zero = calloc(n_in, 1);
        model_grad_image(&mg, small.rgb, x);
        model_grad_image(&mg, zero, black);
        CHECK(model_grad_run(&mg, x, 1, NULL, err) == 0);
        int cls = infer_argmax(model_grad_logits(&mg), m.n_classes);
        struct ig_result r16, r256;
        CHECK(ig_compute(&mg, x, black, cls, 16, map, &r16, err) == 0);
        CHECK(ig_compute(&mg, x, black, cls, 256, map, &r256, err) == 0);
        double d = r16.f_input - r16.f_baseline;
        printf("# %s, %s: f(x) - f(black) %.4f; IG sum %.4f at 16 steps (error %.2f %%), %.4f at "
               "256 (%.2f %%)\n",
               ids[k], path, d, r16.sum, 100 * r16.completeness, r256.sum, 100 * r256.completeness);
        CHECK(fabs(r256.sum - d) <= 0.5 * fabs(r16.sum - d) + 1e-3 * fmax(fabs(d), 1));
        CHECK(fabs(r256.sum - d) <= 0.02 * fmax(fabs(d), 1));
        free(x);
        free(black);
        free(map);
        free(zero);
        image_free(&img);
        image_free(&small);
        model_grad_deinit(&mg);
        model_free(&m);
    }
}

TEST(occlusion_finds_the_region)
{
    /* 8×8; class 0 reads only the red of the top-left 2×2 corner */
    float w0[64] = {0};
    w0[0] = w0[1] = w0[8] = w0[9] = 3;
    struct model m = {0};
    CHECK(linear_model(&m, 8, w0) == 0);
    m.mean[0] = m.mean[1] = m.mean[2] = 0.5f; /* the patch's colour: 128 */
    uint8_t red[64], rgb[192];
    for (int p = 0; p < 64; p++)
        red[p] = 255;
    red_image(rgb, 64, red);
    char err[STRATA_ERR_LEN];
    struct model_workspace ws = {0};
    CHECK(model_workspace_init(&ws, &m, 5, err) == 0); /* several batches */
    float map[64];
    CHECK(occlusion_compute(&m, &ws, rgb, 0, 3, 2, map, err) == 0);
    int best = 0;
    for (int p = 1; p < 64; p++)
        best = map[p] > map[best] ? p : best;
    CHECK(best / 8 < 2 && best % 8 < 2);
    CHECK(map[best] > 0);
    /* patches of 3 start at 0, 2, 4 and 5 (flush with the edge) along each
     * side; only the one at (0, 0) hides any of the corner, so every pixel
     * outside rows and columns 0..2 has a map of exactly 0 */
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++)
            if (y >= 3 || x >= 3)
                CHECK_NEAR(map[y * 8 + x], 0, 0);
            else
                CHECK(map[y * 8 + x] > 0);
    CHECK(occlusion_compute(&m, &ws, rgb, 0, 9, 2, map, err) == STRATA_E_ARG);
    model_workspace_free(&ws);
    model_free(&m);
}

static double sigmoid(double t)
{
    return 1 / (1 + exp(-t));
}

TEST(faithfulness_hand_worked)
{
    /* curves */
    float line[FAITH_STEPS + 1], flat[FAITH_STEPS + 1];
    for (int k = 0; k <= FAITH_STEPS; k++) {
        line[k] = 1.0f - (float)k / FAITH_STEPS;
        flat[k] = 0.25f;
    }
    CHECK_NEAR(faith_auc(line), 0.5, 1e-6);
    CHECK_NEAR(faith_auc(flat), 0.25, 1e-6);

    /* a 2×2 model: p(yes) = σ(Σ w_p · red_p/255), w = 1 2 3 4 */
    const float w0[4] = {1, 2, 3, 4};
    struct model m = {0};
    CHECK(linear_model(&m, 2, w0) == 0);
    uint8_t rgb[12], blurred[12];
    red_image(rgb, 4, (const uint8_t[]){255, 200, 100, 50});
    for (int i = 0; i < 12; i++)
        blurred[i] = (uint8_t)(rgb[i] / 2 + 10);
    const float map[4] = {0.1f, 0.9f, 0.5f, 0.5f}; /* order: 1, 2, 3 (tie: reading order), 0 */
    const int order[4] = {1, 2, 3, 0};
    char err[STRATA_ERR_LEN];
    struct model_workspace ws = {0};
    CHECK(model_workspace_init(&ws, &m, 7, err) == 0);
    struct faith_result r;
    CHECK(faith_compute(&m, &ws, rgb, blurred, 0, map, &r, err) == 0);
    for (int k = 0; k <= FAITH_STEPS; k++) {
        int taken = 4 * k / FAITH_STEPS;
        double del = 0, ins = 0;
        for (int t = 0; t < 4; t++) {
            int p = order[t];
            del += t < taken ? 0 : w0[p] * rgb[3 * p] / 255.0;
            ins += w0[p] * (t < taken ? rgb[3 * p] : blurred[3 * p]) / 255.0;
        }
        CHECK_NEAR(r.deletion[k], sigmoid(del), 2e-6);
        CHECK_NEAR(r.insertion[k], sigmoid(ins), 2e-6);
    }
    CHECK_NEAR(r.deletion_auc, faith_auc(r.deletion), 1e-12);
    CHECK(r.insertion_auc > r.deletion_auc);
    model_workspace_free(&ws);
    model_free(&m);
}

TEST(blur)
{
    struct image flat = {0}, edge = {0}, out = {0};
    char err[STRATA_ERR_LEN];
    CHECK(image_alloc(&flat, 9, 7, err) == 0 && image_alloc(&edge, 16, 4, err) == 0);
    memset(flat.rgb, 77, 9 * 7 * 3);
    CHECK(image_blur(&flat, 2.0f, &out, err) == 0);
    for (int i = 0; i < 9 * 7 * 3; i++)
        CHECK_EQ_INT(out.rgb[i], 77);
    image_free(&out);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 16; x++)
            memset(edge.rgb + (y * 16 + x) * 3, x < 8 ? 0 : 240, 3);
    CHECK(image_blur(&edge, 1.5f, &out, err) == 0);
    for (int x = 1; x < 16; x++)
        CHECK(out.rgb[x * 3] >= out.rgb[(x - 1) * 3]);
    CHECK(out.rgb[7 * 3] > 0 && out.rgb[7 * 3] < 120 && out.rgb[8 * 3] > 120 && out.rgb[8 * 3] < 240);
    image_free(&out);
    image_free(&flat);
    image_free(&edge);
}

TEST(method_names)
{
    unsigned mask;
    char err[STRATA_ERR_LEN];
    CHECK(attribution_parse_methods("all", &mask, err) == 0);
    CHECK(mask == ((1u << ATTR_GRADCAM) | (1u << ATTR_IG) | (1u << ATTR_OCCLUSION) | (1u << ATTR_LIME)));
    CHECK(attribution_parse_methods("ig,random", &mask, err) == 0);
    CHECK(mask == ((1u << ATTR_IG) | (1u << ATTR_RANDOM)));
    CHECK(attribution_parse_methods("gradcam,shap", &mask, err) == STRATA_E_ARG);
    CHECK(strstr(err, "'shap'") != NULL);
    CHECK(attribution_parse_methods("", &mask, err) == STRATA_E_ARG);
}

int main(void)
{
    RUN(gradcam_and_ig_hand_worked);
    RUN(upsample_hand_worked);
    RUN(demo_model_gradients);
    RUN(ig_on_every_demo_model);
    RUN(occlusion_finds_the_region);
    RUN(faithfulness_hand_worked);
    RUN(blur);
    RUN(method_names);
    return check_done();
}
