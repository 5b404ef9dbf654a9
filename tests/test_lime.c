/* test_lime.c — LIME end to end with hand-made classifiers whose answer is
 * known: a classifier that looks at one region must be explained by that
 * region; a classifier linear in the pixels must be explained by exactly the
 * per-segment effects computed here independently. Also the kernel against
 * the cosine-distance formula, determinism, errors, and the renderings. */
#include "check.h"
#include "image.h"
#include "lime.h"
#include "rng.h"

#include <stdint.h>
#include <string.h>

/* 96×96: four 48×48 quadrants, red, green, blue and yellow, with mild
 * noise. */
#define W 96
#define H 96

static void make_quadrants(uint8_t *rgb)
{
    struct rng r;
    rng_seed(&r, 3);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            static const uint8_t col[4][3] = {
                {220, 30, 30}, {40, 190, 50}, {40, 60, 210}, {230, 220, 50}};
            int q = (y >= 48) * 2 + (x >= 48);
            uint8_t c[3];
            memcpy(c, col[q], 3);
            for (int k = 0; k < 3; k++) {
                int v = c[k] + (int)rng_below(&r, 9) - 4;
                rgb[3 * (y * W + x) + k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
}

/* Class 1 = "red in the top-left": a logistic function of the mean redness
 * R − (G + B)/2 of the top-left quadrant. Class 0 is its complement. Counts
 * its calls to check batching. */
struct red_ctx {
    int calls, images, max_batch;
};

static int classify_red(void *user, const uint8_t *batch, int n, float *probs, char *err)
{
    struct red_ctx *ctx = user;
    ctx->calls++;
    ctx->images += n;
    ctx->max_batch = n > ctx->max_batch ? n : ctx->max_batch;
    for (int i = 0; i < n; i++) {
        const uint8_t *img = batch + (size_t)i * W * H * 3;
        double red = 0;
        for (int y = 0; y < 48; y++)
            for (int x = 0; x < 48; x++) {
                const uint8_t *px = img + 3 * (y * W + x);
                red += px[0] - 0.5 * (px[1] + px[2]);
            }
        double f = red / (48.0 * 48.0 * 255.0); /* 0.7 in the photo, 0 all grey */
        double p1 = 1.0 / (1.0 + exp(-8.0 * (f - 0.35)));
        probs[2 * i + 1] = (float)p1;
        probs[2 * i] = (float)(1.0 - p1);
    }
    return 0;
}

/* Which quadrant holds most of segment s. */
static int segment_quadrant(const struct lime_result *res, int s)
{
    int count[4] = {0, 0, 0, 0};
    for (int y = 0; y < res->h; y++)
        for (int x = 0; x < res->w; x++)
            if (res->segments[y * res->w + x] == s)
                count[(y >= 48) * 2 + (x >= 48)]++;
    int best = 0;
    for (int q = 1; q < 4; q++)
        best = count[q] > count[best] ? q : best;
    return best;
}

static int segment_fully_in_quadrant0(const struct lime_result *res, int s)
{
    for (int y = 0; y < res->h; y++)
        for (int x = 0; x < res->w; x++)
            if (res->segments[y * res->w + x] == s && (x >= 48 || y >= 48))
                return 0;
    return 1;
}

TEST(region_classifier_explained_by_its_region)
{
    static uint8_t rgb[W * H * 3];
    make_quadrants(rgb);
    struct lime_params p;
    lime_params_default(&p);
    p.n_segments = 24;
    p.seed = 7;
    /* Hidden superpixels turn grey: with the default mean colour a flat
     * superpixel would look the same hidden or not. */
    p.hide_mode = LIME_HIDE_COLOR;
    memset(p.hide_rgb, 128, 3);
    struct red_ctx ctx = {0};
    struct lime_result res;
    char err[STRATA_ERR_LEN] = "";
    int labels[2] = {1, 0};
    CHECK_EQ_INT(lime_explain(rgb, W, H, &p, classify_red, &ctx, 2, labels, 2, &res, err),
                 STRATA_OK);
    if (res.n_explained != 2) {
        printf("# %s\n", err);
        return;
    }
    printf("# %d segments; batches %d (max %d), %d images\n", res.n_segments, ctx.calls,
           ctx.max_batch, ctx.images);
    CHECK_EQ_INT(ctx.images, 1000);
    CHECK_EQ_INT(ctx.calls, 10);
    CHECK_EQ_INT(ctx.max_batch, 100);

    /* Superpixels lying in the top-left quadrant. */
    int n_tl = 0;
    for (int s = 0; s < res.n_segments; s++)
        n_tl += segment_fully_in_quadrant0(&res, s);
    printf("# %d superpixels in the top-left quadrant\n", n_tl);
    CHECK(n_tl >= 2);

    const struct lime_class *c1 = lime_result_class(&res, 1), *c0 = lime_result_class(&res, 0);
    CHECK(c1 && c0 && c1 == &res.classes[0]);
    CHECK_EQ_INT(c1->n_features, res.n_segments); /* num_features 100000 = all */
    for (int j = 0; j < 5; j++)
        printf("# class 1 rank %d: segment %d (quadrant %d) weight %+.4f\n", j,
               c1->features[j].segment, segment_quadrant(&res, c1->features[j].segment),
               c1->features[j].weight);
    printf("# class 1: intercept %.4f score %.4f local_pred %.4f prob %.4f\n", c1->intercept,
           c1->score, c1->local_pred, c1->prob);
    /* The top-ranked superpixels are the top-left ones, all positive for
     * class 1; everything else is far weaker. */
    for (int j = 0; j < n_tl; j++) {
        CHECK(segment_fully_in_quadrant0(&res, c1->features[j].segment));
        CHECK(c1->features[j].weight > 0);
    }
    CHECK(fabs(c1->features[n_tl].weight) < 0.2 * fabs(c1->features[n_tl - 1].weight));
    /* Class 0 is 1 − class 1, and ridge is linear in y: the same segments
     * with negated weights, intercept 1 − intercept, same R². */
    CHECK_EQ_INT(c0->n_features, c1->n_features);
    for (int j = 0; j < c1->n_features; j++) {
        CHECK_EQ_INT(c0->features[j].segment, c1->features[j].segment);
        CHECK_NEAR(c0->features[j].weight, -c1->features[j].weight, 1e-6);
    }
    CHECK_NEAR(c0->intercept, 1.0 - c1->intercept, 1e-6);
    CHECK_NEAR(c0->score, c1->score, 1e-6);
    CHECK(c1->score > 0.5);
    CHECK_NEAR(c1->prob, res.probs[1], 0);
    CHECK(c1->prob > 0.9);
    CHECK(c1->features[0].weight > 0.02);
    /* local_pred = intercept + Σ weights (row 0 is all ones). */
    double lp = c1->intercept;
    for (int j = 0; j < c1->n_features; j++)
        lp += c1->features[j].weight;
    CHECK_NEAR(c1->local_pred, lp, 1e-9);

    /* Default labels: the single most probable class, which is 1. Forward
     * selection of 3 features picks top-left superpixels. */
    struct lime_result r2;
    p.num_features = 3;
    CHECK_EQ_INT(lime_explain(rgb, W, H, &p, classify_red, &ctx, 2, NULL, 0, &r2, err),
                 STRATA_OK);
    CHECK_EQ_INT(r2.n_explained, 1);
    if (r2.n_explained == 1) {
        CHECK_EQ_INT(r2.classes[0].label, 1);
        CHECK_EQ_INT(r2.classes[0].n_features, 3);
        for (int j = 0; j < 3 && j < n_tl; j++) {
            CHECK(segment_fully_in_quadrant0(&r2, r2.classes[0].features[j].segment));
            CHECK(r2.classes[0].features[j].weight > 0);
        }
    }
    lime_result_free(&r2);
    lime_result_free(&res);
    CHECK(res.segments == NULL && res.classes == NULL);
}

/* A classifier linear in the pixels: score = b + Σ_p g(p)·R(p)/255 with a
 * fixed pattern g. With segments hidden in black, the score of a sample is
 * exactly b + Σ_s z_s·c_s with c_s = Σ_{p∈s} g(p)·R(p)/255, so the surrogate
 * must find those c_s (up to the ridge's small shrinkage). */
static float pattern_g(int x, int y) { return (float)(((x * 7 + y * 13) % 11) - 5) * 2e-4f; }

static int classify_linear(void *user, const uint8_t *batch, int n, float *probs, char *err)
{
    for (int i = 0; i < n; i++) {
        const uint8_t *img = batch + (size_t)i * W * H * 3;
        double s = 0.5;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                s += pattern_g(x, y) * img[3 * (y * W + x)] / 255.0;
        probs[2 * i] = (float)s;
        probs[2 * i + 1] = (float)(1 - s);
    }
    return 0;
}

TEST(linear_classifier_recovers_segment_effects)
{
    static uint8_t rgb[W * H * 3];
    make_quadrants(rgb);
    for (int mode = 0; mode < 2; mode++) {
        struct lime_params p;
        lime_params_default(&p);
        p.n_segments = 30;
        p.hide_mode = mode ? LIME_HIDE_MEAN : LIME_HIDE_COLOR; /* black, or mean colour */
        p.selection = FEATURE_SELECTION_NONE;
        p.batch_size = 64; /* not a divisor of 1000: a short last batch */
        struct lime_result res;
        char err[STRATA_ERR_LEN] = "";
        int label = 0;
        CHECK_EQ_INT(lime_explain(rgb, W, H, &p, classify_linear, NULL, 2, &label, 1, &res, err),
                     STRATA_OK);
        if (res.n_explained != 1)
            return;
        /* The hidden colour of each segment, computed here: black, or the
         * segment's mean red rounded to the nearest integer. */
        double *hidden = calloc((size_t)res.n_segments, sizeof(double));
        int *count = calloc((size_t)res.n_segments, sizeof(int));
        if (mode) {
            for (int q = 0; q < W * H; q++) {
                hidden[res.segments[q]] += rgb[3 * q];
                count[res.segments[q]]++;
            }
            for (int s = 0; s < res.n_segments; s++)
                hidden[s] = floor(hidden[s] / count[s] + 0.5);
        }
        double *c = calloc((size_t)res.n_segments, sizeof(double));
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int s = res.segments[y * W + x];
                c[s] += pattern_g(x, y) * (rgb[3 * (y * W + x)] - hidden[s]) / 255.0;
            }
        const struct lime_class *cl = &res.classes[0];
        double maxc = 0, maxdiff = 0, sumc = 0;
        for (int s = 0; s < res.n_segments; s++) {
            maxc = fmax(maxc, fabs(c[s]));
            sumc += fabs(c[s]);
        }
        /* 2% of the largest effect: ridge shrinks by about α/(Σw/4) < 1%, and
         * the classifier computes in float. */
        for (int j = 0; j < cl->n_features; j++)
            maxdiff = fmax(maxdiff, fabs(cl->features[j].weight - c[cl->features[j].segment]));
        printf("# %s: %d segments, largest effect %.5f, max |weight − effect| %.6f, R² %.6f\n",
               mode ? "mean colour" : "black", res.n_segments, maxc, maxdiff, cl->score);
        CHECK(maxc > 1e-4); /* the mean-colour effects come from the noise alone */
        CHECK(maxdiff < 0.02 * maxc);
        CHECK(cl->score > 0.99);
        CHECK_NEAR(cl->local_pred, cl->prob, 0.02 * sumc);
        free(c);
        free(hidden);
        free(count);
        lime_result_free(&res);
    }
}

TEST(kernel_weights_by_hand)
{
    /* Cosine distance to the all-ones vector computed the long way, then the
     * kernel sqrt(exp(−d²/σ²)). */
    struct rng r;
    rng_seed(&r, 21);
    uint8_t m[40];
    for (int trial = 0; trial < 50; trial++) {
        int n = 2 + (int)rng_below(&r, 39);
        for (int s = 0; s < n; s++)
            m[s] = (uint8_t)(rng_next(&r) & 1);
        if (trial == 0)
            for (int s = 0; s < n; s++)
                m[s] = 1;
        if (trial == 1)
            for (int s = 0; s < n; s++)
                m[s] = 0;
        double dot = 0, nm = 0, no = 0;
        for (int s = 0; s < n; s++) {
            dot += m[s];
            nm += m[s] * m[s];
            no += 1;
        }
        double sim = nm > 0 ? dot / (sqrt(nm) * sqrt(no)) : 0;
        double d = 1 - sim;
        double want = sqrt(exp(-(d * d) / (0.25 * 0.25)));
        CHECK_NEAR(lime_kernel_weight(m, n, 0.25), want, 1e-12);
        if (trial == 0)
            CHECK_NEAR(lime_kernel_weight(m, n, 0.25), 1.0, 1e-12);
        if (trial == 1)
            CHECK_NEAR(lime_kernel_weight(m, n, 0.25), exp(-8.0), 1e-12);
    }
    /* A hand value: 9 of 16 on → d = 1 − 3/4 = 0.25 → weight exp(−1/2). */
    uint8_t h[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0};
    CHECK_NEAR(lime_kernel_weight(h, 16, 0.25), exp(-0.5), 1e-12);
}

TEST(deterministic_for_a_seed)
{
    static uint8_t rgb[W * H * 3];
    make_quadrants(rgb);
    struct lime_params p;
    lime_params_default(&p);
    p.n_segments = 24;
    p.num_samples = 300;
    p.seed = 1234;
    struct red_ctx ctx = {0};
    struct lime_result a, b, c;
    CHECK_EQ_INT(lime_explain(rgb, W, H, &p, classify_red, &ctx, 2, NULL, 0, &a, NULL), 0);
    CHECK_EQ_INT(lime_explain(rgb, W, H, &p, classify_red, &ctx, 2, NULL, 0, &b, NULL), 0);
    p.seed = 1235;
    CHECK_EQ_INT(lime_explain(rgb, W, H, &p, classify_red, &ctx, 2, NULL, 0, &c, NULL), 0);
    CHECK_EQ_INT(a.n_segments, b.n_segments);
    CHECK(memcmp(a.segments, b.segments, sizeof(int) * W * H) == 0);
    CHECK_EQ_INT(a.classes[0].n_features, b.classes[0].n_features);
    int same = 1;
    for (int j = 0; j < a.classes[0].n_features; j++)
        same &= a.classes[0].features[j].segment == b.classes[0].features[j].segment &&
                a.classes[0].features[j].weight == b.classes[0].features[j].weight;
    CHECK(same);
    CHECK(a.classes[0].intercept == b.classes[0].intercept);
    /* Another seed, other samples: the weights differ. */
    int differ = 0;
    for (int j = 0; j < a.classes[0].n_features; j++)
        differ += a.classes[0].features[j].weight != c.classes[0].features[j].weight;
    CHECK(differ > 0);
    lime_result_free(&a);
    lime_result_free(&b);
    lime_result_free(&c);
}

static int classify_fail(void *user, const uint8_t *batch, int n, float *probs, char *err)
{
    int *calls = user;
    if (++*calls == 3)
        return strata_fail(err, STRATA_E_NOMEM, "model workspace exhausted");
    for (int i = 0; i < 2 * n; i++)
        probs[i] = 0.5f;
    return 0;
}

static int classify_nan(void *user, const uint8_t *batch, int n, float *probs, char *err)
{
    for (int i = 0; i < 2 * n; i++)
        probs[i] = i == 5 ? NAN : 0.5f;
    return 0;
}

TEST(errors)
{
    static uint8_t rgb[W * H * 3];
    make_quadrants(rgb);
    struct lime_params p;
    lime_params_default(&p);
    struct lime_result res;
    char err[STRATA_ERR_LEN] = "";
    struct red_ctx ctx = {0};

    CHECK_EQ_INT(lime_explain(rgb, 6, 6, &p, classify_red, &ctx, 2, NULL, 0, &res, err),
                 STRATA_E_ARG);
    CHECK(strstr(err, "6x6") != NULL);
    CHECK(res.segments == NULL && res.classes == NULL);
    p.n_segments = 1;
    CHECK_EQ_INT(lime_explain(rgb, W, H, &p, classify_red, &ctx, 2, NULL, 0, &res, err),
                 STRATA_E_ARG);
    CHECK(strstr(err, "n_segments") != NULL);
    lime_params_default(&p);
    p.num_samples = 1;
    CHECK_EQ_INT(lime_explain(rgb, W, H, &p, classify_red, &ctx, 2, NULL, 0, &res, err),
                 STRATA_E_ARG);
    CHECK(strstr(err, "num_samples") != NULL);
    lime_params_default(&p);
    p.kernel_width = 0;
    CHECK_EQ_INT(lime_explain(rgb, W, H, &p, classify_red, &ctx, 2, NULL, 0, &res, err),
                 STRATA_E_ARG);
    lime_params_default(&p);
    int bad_label = 2;
    CHECK_EQ_INT(lime_explain(rgb, W, H, &p, classify_red, &ctx, 2, &bad_label, 1, &res, err),
                 STRATA_E_ARG);
    CHECK(strstr(err, "label 2") != NULL);
    p.batch_size = 100000; /* 2.6 GiB of 96×96 images */
    CHECK_EQ_INT(lime_explain(rgb, W, H, &p, classify_red, &ctx, 2, NULL, 0, &res, err),
                 STRATA_E_LIMIT);
    CHECK(strstr(err, "batch_size") != NULL);
    lime_params_default(&p);
    /* Too many superpixels for a small image. */
    p.n_segments = 40;
    CHECK_EQ_INT(lime_explain(rgb, 12, 12, &p, classify_red, &ctx, 2, NULL, 0, &res, err),
                 STRATA_E_ARG);
    lime_params_default(&p);

    /* The callback's failure comes back with its code and message. */
    int calls = 0;
    p.num_samples = 500;
    CHECK_EQ_INT(lime_explain(rgb, W, H, &p, classify_fail, &calls, 2, NULL, 0, &res, err),
                 STRATA_E_NOMEM);
    CHECK(strstr(err, "model workspace exhausted") != NULL);
    CHECK(strstr(err, "200..299") != NULL);
    CHECK(res.segments == NULL && res.classes == NULL);
    CHECK_EQ_INT(lime_explain(rgb, W, H, &p, classify_nan, NULL, 2, NULL, 0, &res, err),
                 STRATA_E_FORMAT);
    CHECK(strstr(err, "non-finite") != NULL);

    /* A blank image still has superpixels (SLIC tiles by position) and an
     * explanation with all weights 0 for a classifier that cannot tell. */
    static uint8_t grey[W * H * 3];
    memset(grey, 128, sizeof grey);
    p.num_samples = 100;
    CHECK_EQ_INT(lime_explain(grey, W, H, &p, classify_red, &ctx, 2, NULL, 0, &res, err),
                 STRATA_OK);
    CHECK(res.n_segments >= 2);
    if (res.n_explained == 1)
        for (int j = 0; j < res.classes[0].n_features; j++)
            CHECK_NEAR(res.classes[0].features[j].weight, 0.0, 1e-12);
    lime_result_free(&res);
}

/* An explanation with fixed, known weights on a known segmentation, to test
 * rendering alone: 4×4 grid of 24×24 blocks. */
static void fake_result(struct lime_result *res, struct lime_feature *feat)
{
    static int segs[W * H];
    static struct lime_class cls;
    static float probs[2] = {0.2f, 0.8f};
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            segs[y * W + x] = (y / 24) * 4 + x / 24;
    /* Ranked by |weight|: 5 (+0.4), 10 (−0.3), 0 (+0.2), 15 (−0.1), 6 (+0.05). */
    static const struct lime_feature f[5] = {
        {5, 0.4}, {10, -0.3}, {0, 0.2}, {15, -0.1}, {6, 0.05}};
    memcpy(feat, f, sizeof f);
    cls = (struct lime_class){.label = 1, .n_features = 5, .features = feat};
    memset(res, 0, sizeof *res);
    res->w = W;
    res->h = H;
    res->n_segments = 16;
    res->segments = segs;
    res->n_classes = 2;
    res->probs = probs;
    res->n_explained = 1;
    res->classes = &cls;
}

static int is_yellow(const uint8_t *p) { return p[0] == 255 && p[1] == 255 && p[2] == 0; }

/* classify_red that raises a cancel flag after `after` calls. */
struct cancel_ctx {
    struct red_ctx red;
    atomic_int flag;
    int after;
};

static int classify_then_cancel(void *user, const uint8_t *batch, int n, float *probs, char *err)
{
    struct cancel_ctx *c = user;
    int rc = classify_red(&c->red, batch, n, probs, err);
    if (c->red.calls >= c->after)
        atomic_store(&c->flag, 1);
    return rc;
}

TEST(cancel_stops_between_batches)
{
    static uint8_t rgb[W * H * 3];
    make_quadrants(rgb);
    struct lime_params p;
    lime_params_default(&p);
    p.n_segments = 24;
    p.num_samples = 1000;
    p.batch_size = 100;
    char err[STRATA_ERR_LEN];
    struct lime_result res;
    /* Raised during the third batch: no fourth batch, nothing left allocated. */
    struct cancel_ctx c = {.after = 3};
    p.cancel = &c.flag;
    CHECK_EQ_INT(lime_explain(rgb, W, H, &p, classify_then_cancel, &c, 2, NULL, 0, &res, err),
                 STRATA_E_INTERRUPTED);
    CHECK_EQ_INT(c.red.calls, 3);
    CHECK_MSG(strstr(err, "300 of 1000") != NULL, "%s", err);
    CHECK(res.segments == NULL && res.classes == NULL && res.probs == NULL);
    /* Raised before the call: no sample is classified. */
    struct cancel_ctx early = {.after = 1000};
    atomic_store(&early.flag, 1);
    p.cancel = &early.flag;
    CHECK_EQ_INT(lime_explain(rgb, W, H, &p, classify_then_cancel, &early, 2, NULL, 0, &res, err),
                 STRATA_E_INTERRUPTED);
    CHECK_EQ_INT(early.red.calls, 0);
    /* A flag that stays down changes nothing. */
    struct cancel_ctx never = {.after = 1000};
    p.cancel = &never.flag;
    CHECK_EQ_INT(lime_explain(rgb, W, H, &p, classify_then_cancel, &never, 2, NULL, 0, &res, err),
                 STRATA_OK);
    CHECK_EQ_INT(never.red.calls, 10);
    lime_result_free(&res);
}

TEST(overlay_pixels)
{
    static uint8_t rgb[W * H * 3];
    make_quadrants(rgb);
    struct lime_result res;
    struct lime_feature feat[5];
    fake_result(&res, feat);
    struct lime_overlay_opts o;
    lime_overlay_opts_default(&o);
    o.hide_rest = 1;
    o.num_features = 2;
    static int8_t mask[W * H];
    struct image img;
    char err[STRATA_ERR_LEN];
    /* positive_only, 2 features: segments 5 and 0 (10 is negative). */
    CHECK_EQ_INT(lime_render_overlay(&res, rgb, 1, &o, &img, mask, err), STRATA_OK);
    CHECK_EQ_INT(img.w, W);
    CHECK_EQ_INT(img.h, H);
    int bad_mask = 0, bad_inside = 0, bad_outside = 0, bad_edge = 0, yellow = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int q = y * W + x, s = res.segments[q];
            int sel = s == 5 || s == 0;
            bad_mask += mask[q] != sel;
            const uint8_t *px = img.rgb + 3 * q;
            /* Is some 4-neighbour on the other side of the mask? */
            int edge = 0;
            if (x > 0 && mask[q - 1] != mask[q]) edge = 1;
            if (x < W - 1 && mask[q + 1] != mask[q]) edge = 1;
            if (y > 0 && mask[q - W] != mask[q]) edge = 1;
            if (y < H - 1 && mask[q + W] != mask[q]) edge = 1;
            if (edge && !sel) {
                /* Outer boundary: the ring just outside the selection. */
                bad_edge += !is_yellow(px);
                yellow++;
            } else if (sel) {
                bad_inside += memcmp(px, rgb + 3 * q, 3) != 0;
            } else {
                bad_outside += px[0] || px[1] || px[2];
            }
        }
    printf("# overlay: %d yellow outline pixels\n", yellow);
    CHECK_EQ_INT(bad_mask, 0);
    CHECK_EQ_INT(bad_inside, 0);
    CHECK_EQ_INT(bad_outside, 0);
    CHECK_EQ_INT(bad_edge, 0);
    /* Segment 0 is the 24×24 top-left block: its outline is column 24 for
     * y < 24 and row 24 for x < 24. */
    CHECK(yellow > 0);
    CHECK(is_yellow(img.rgb + 3 * (10 * W + 24)));
    CHECK(is_yellow(img.rgb + 3 * (24 * W + 10)));
    /* The overlay encodes to a PNG that decodes back to the same pixels. */
    uint8_t *png = NULL;
    size_t png_len = 0;
    CHECK_EQ_INT(image_encode_png(&img, &png, &png_len, err), STRATA_OK);
    struct image back;
    CHECK_EQ_INT(image_decode(png, png_len, &back, err), STRATA_OK);
    CHECK(back.w == W && back.h == H && memcmp(back.rgb, img.rgb, (size_t)W * H * 3) == 0);
    free(png);
    image_free(&back);
    image_free(&img);

    /* Neither only-flag: positive segments get green raised to the image's
     * maximum, negative ones red; weights below min_weight are skipped. */
    uint8_t vmax = 0;
    for (int i = 0; i < W * H * 3; i++)
        vmax = rgb[i] > vmax ? rgb[i] : vmax;
    o = (struct lime_overlay_opts){.num_features = 5, .min_weight = 0.15};
    CHECK_EQ_INT(lime_render_overlay(&res, rgb, 1, &o, &img, mask, err), STRATA_OK);
    int q5 = 30 * W + 30, q10 = 60 * W + 60, q15 = 84 * W + 84, q3 = 10 * W + 80;
    CHECK_EQ_INT(mask[q5], 1);
    CHECK_EQ_INT(mask[q10], -1);
    CHECK_EQ_INT(mask[q15], 0); /* |−0.1| < 0.15 */
    CHECK_EQ_INT(mask[q3], 0);
    CHECK_EQ_INT(img.rgb[3 * q5 + 1], vmax);
    CHECK_EQ_INT(img.rgb[3 * q5], rgb[3 * q5]);
    CHECK_EQ_INT(img.rgb[3 * q10], vmax);
    CHECK_EQ_INT(img.rgb[3 * q10 + 2], rgb[3 * q10 + 2]);
    CHECK(memcmp(img.rgb + 3 * q3, rgb + 3 * q3, 3) == 0);
    /* Segments 5 (+) and 10 (−) touch at a corner only; 5 and 6 are not
     * both selected, so the boundary between 5 and 6 is yellow on 6's side. */
    CHECK(is_yellow(img.rgb + 3 * (30 * W + 48)));
    CHECK(!is_yellow(img.rgb + 3 * (30 * W + 46)));
    image_free(&img);

    /* negative_only: only segment 10 and 15. */
    o = (struct lime_overlay_opts){.negative_only = 1, .num_features = 5};
    CHECK_EQ_INT(lime_render_overlay(&res, rgb, 1, &o, &img, mask, err), STRATA_OK);
    CHECK_EQ_INT(mask[q10], 1);
    CHECK_EQ_INT(mask[q15], 1);
    CHECK_EQ_INT(mask[q5], 0);
    image_free(&img);

    o.positive_only = 1;
    CHECK_EQ_INT(lime_render_overlay(&res, rgb, 1, &o, &img, NULL, err), STRATA_E_ARG);
    o.positive_only = 0;
    CHECK_EQ_INT(lime_render_overlay(&res, rgb, 0, &o, &img, NULL, err), STRATA_E_NOTFOUND);
    CHECK(img.rgb == NULL);
}

TEST(heatmap_pixels)
{
    static uint8_t rgb[W * H * 3];
    make_quadrants(rgb);
    struct lime_result res;
    struct lime_feature feat[5];
    fake_result(&res, feat);
    struct image img;
    char err[STRATA_ERR_LEN];
    CHECK_EQ_INT(lime_render_heatmap(&res, rgb, 1, &img, err), STRATA_OK);
    /* Segment 5 holds the largest weight: full red (178, 24, 43) at opacity
     * 0.8 over the pixel's grey. */
    int q = 30 * W + 30;
    const uint8_t *s = rgb + 3 * q;
    float grey = 0.299f * s[0] + 0.587f * s[1] + 0.114f * s[2];
    CHECK_NEAR(img.rgb[3 * q], 0.2 * grey + 0.8 * 178, 1.0);
    CHECK_NEAR(img.rgb[3 * q + 1], 0.2 * grey + 0.8 * 24, 1.0);
    CHECK_NEAR(img.rgb[3 * q + 2], 0.2 * grey + 0.8 * 43, 1.0);
    /* Segment 10 (−0.3 = −3/4 of the maximum) is blue-ish, segment 3 (no
     * weight) is a light grey. */
    q = 60 * W + 60;
    CHECK(img.rgb[3 * q + 2] > img.rgb[3 * q] + 40);
    q = 10 * W + 80;
    CHECK(abs(img.rgb[3 * q] - img.rgb[3 * q + 2]) < 40);
    /* Superpixel boundaries are dark grey. */
    CHECK_EQ_INT(img.rgb[3 * (10 * W + 23)], 48);
    CHECK_EQ_INT(img.rgb[3 * (23 * W + 10) + 1], 48);
    image_free(&img);
    CHECK_EQ_INT(lime_render_heatmap(&res, rgb, 0, &img, err), STRATA_E_NOTFOUND);
}

/* A trivial classifier: the mean red of each image (it reads every pixel,
 * as any model must). */
static int classify_mean(void *user, const uint8_t *batch, int n, float *probs, char *err)
{
    const int npix = *(const int *)user;
    for (int i = 0; i < n; i++) {
        const uint8_t *img = batch + (size_t)i * npix * 3;
        unsigned long s = 0;
        for (int q = 0; q < npix; q++)
            s += img[3 * q];
        float f = (float)s / (255.0f * npix);
        probs[3 * i] = f;
        probs[3 * i + 1] = (1 - f) * 0.5f;
        probs[3 * i + 2] = (1 - f) * 0.5f;
    }
    return 0;
}

TEST(timing_150x150_1000_samples)
{
    /* A photo-like 150×150 image: smooth shading, a few discs, noise. */
    const int w = 150, h = 150, npix = w * h;
    static uint8_t rgb[150 * 150 * 3];
    struct rng r;
    rng_seed(&r, 77);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *px = rgb + 3 * (y * w + x);
            int v[3] = {60 + x, 80 + y / 2, 140 - x / 3};
            for (int k = 0; k < 4; k++) {
                int cx = 30 + 35 * k, cy = 40 + 25 * (k % 3);
                if ((x - cx) * (x - cx) + (y - cy) * (y - cy) < 18 * 18) {
                    v[k % 3] = 230;
                    v[(k + 1) % 3] = 40;
                }
            }
            for (int c = 0; c < 3; c++) {
                int t = v[c] + (int)rng_below(&r, 11) - 5;
                px[c] = (uint8_t)(t < 0 ? 0 : t > 255 ? 255 : t);
            }
        }
    struct lime_params p;
    lime_params_default(&p);
    struct lime_result res;
    char err[STRATA_ERR_LEN] = "";
    int labels[3] = {0, 1, 2};
    int rc = lime_explain(rgb, w, h, &p, classify_mean, (void *)&npix, 3, labels, 3, &res, err);
    CHECK_EQ_INT(rc, STRATA_OK);
    if (rc) {
        printf("# %s\n", err);
        return;
    }
    double ours = res.ms_segment + res.ms_perturb + res.ms_regression;
    printf("# 150x150, %d samples, %d superpixels, 3 classes: segmentation %.2f ms, "
           "perturbation %.2f ms, classifier %.2f ms, regression %.2f ms; total %.2f ms "
           "(LIME's own part %.2f ms)\n",
           res.num_samples, res.n_segments, res.ms_segment, res.ms_perturb, res.ms_classify,
           res.ms_regression, res.ms_total, ours);
    CHECK(res.n_segments >= 30 && res.n_segments <= 70);
    CHECK(res.ms_total >= ours);
    /* Generous even under sanitizers; the normal build needs ~1/20 of it. */
    CHECK(ours < 2000);
    /* Forward selection of 5 features for comparison. */
    p.num_features = 5;
    lime_result_free(&res);
    rc = lime_explain(rgb, w, h, &p, classify_mean, (void *)&npix, 3, labels, 3, &res, err);
    CHECK_EQ_INT(rc, STRATA_OK);
    printf("# with forward selection of 5 features: regression %.2f ms for 3 classes\n",
           res.ms_regression);
    lime_result_free(&res);
}

int main(void)
{
    RUN(region_classifier_explained_by_its_region);
    RUN(linear_classifier_recovers_segment_effects);
    RUN(kernel_weights_by_hand);
    RUN(deterministic_for_a_seed);
    RUN(errors);
    RUN(cancel_stops_between_batches);
    RUN(overlay_pixels);
    RUN(heatmap_pixels);
    RUN(timing_150x150_1000_samples);
    return check_done();
}
