/* test_lime_local.c — the receptive-field tables of lime_local.h against
 * brute force: for small random models (the seed architecture at 40×40, a
 * prefix with batch norm, sigmoid, dropout, a strided conv with a softmax
 * over channels, a fully local model with no tail, one ending in global
 * pooling, "same" layers that pad nothing, a skip connection that reads a
 * layer of the chain again after it, which keeps the cut before that
 * layer, and one over a dense layer, which keeps it from being folded),
 * the probabilities of random
 * masks must equal those of rendering each perturbed image here — the
 * segment's rounded mean colour where hidden, as lime.c does — and running
 * model_forward on it, for every cut of the prefix, with and without the
 * dense layer folded in. Then: the geometry by hand, the window counts
 * counted here, whole LIME explanations equal on both paths (directly and
 * through explain_image), models the tables do not apply to ("same"
 * padding, deep receptive fields, too few samples) declining and falling
 * back, determinism, and lime_explain_with's handling of a mask classifier
 * that fails. */
#include "check.h"
#include "explain.h"
#include "lime_local.h"
#include "rng.h"
#include "slic.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEED_LAYERS                                                                        \
    "{\"type\":\"conv2d\",\"filters\":32,\"kernel_size\":3,\"activation\":\"relu\"},"      \
    "{\"type\":\"maxpool2d\",\"pool_size\":2},"                                            \
    "{\"type\":\"conv2d\",\"filters\":32,\"kernel_size\":3,\"activation\":\"relu\"},"      \
    "{\"type\":\"maxpool2d\",\"pool_size\":2},"                                            \
    "{\"type\":\"flatten\"},"                                                              \
    "{\"type\":\"dense\",\"units\":128,\"activation\":\"relu\"},"                          \
    "{\"type\":\"dense\",\"units\":3,\"activation\":\"softmax\"}"

/* batch_norm, sigmoid, dropout, a strided conv with a softmax over its
 * channels and a standalone relu, all before the flatten. */
#define BN_LAYERS                                                                          \
    "{\"type\":\"conv2d\",\"filters\":8,\"kernel_size\":3},"                               \
    "{\"type\":\"batch_norm\"},"                                                           \
    "{\"type\":\"sigmoid\"},"                                                              \
    "{\"type\":\"maxpool2d\",\"pool_size\":2},"                                            \
    "{\"type\":\"dropout\",\"rate\":0.3},"                                                 \
    "{\"type\":\"conv2d\",\"filters\":8,\"kernel_size\":3,\"strides\":2,"                  \
    "\"activation\":\"softmax\"},"                                                         \
    "{\"type\":\"relu\"},"                                                                 \
    "{\"type\":\"flatten\"},"                                                              \
    "{\"type\":\"dense\",\"units\":16,\"activation\":\"sigmoid\"},"                        \
    "{\"type\":\"dense\",\"units\":3,\"activation\":\"softmax\"}"

/* Every layer local: the last conv covers its whole input. */
#define NOTAIL_LAYERS                                                                      \
    "{\"type\":\"conv2d\",\"filters\":4,\"kernel_size\":3,\"activation\":\"relu\"},"       \
    "{\"type\":\"maxpool2d\",\"pool_size\":2},"                                            \
    "{\"type\":\"conv2d\",\"filters\":3,\"kernel_size\":5,\"activation\":\"softmax\"}"

#define GAP_LAYERS                                                                         \
    "{\"type\":\"conv2d\",\"filters\":8,\"kernel_size\":3,\"activation\":\"relu\"},"       \
    "{\"type\":\"maxpool2d\",\"pool_size\":2},"                                            \
    "{\"type\":\"global_avg_pool\"},"                                                      \
    "{\"type\":\"dense\",\"units\":3,\"activation\":\"softmax\"}"

/* "same" that pads nothing: a 1×1 conv, and a 2×2 pool over an even side. */
#define SAME0_LAYERS                                                                       \
    "{\"type\":\"conv2d\",\"filters\":6,\"kernel_size\":1,\"padding\":\"same\","           \
    "\"activation\":\"relu\"},"                                                            \
    "{\"type\":\"maxpool2d\",\"pool_size\":2,\"padding\":\"same\"},"                       \
    "{\"type\":\"conv2d\",\"filters\":6,\"kernel_size\":3,\"activation\":\"relu\"},"       \
    "{\"type\":\"flatten\"},"                                                              \
    "{\"type\":\"dense\",\"units\":3,\"activation\":\"softmax\"}"

#define SAME_LAYERS                                                                        \
    "{\"type\":\"conv2d\",\"filters\":8,\"kernel_size\":3,\"padding\":\"same\","           \
    "\"activation\":\"relu\"},"                                                            \
    "{\"type\":\"maxpool2d\",\"pool_size\":2},"                                            \
    "{\"type\":\"flatten\"},"                                                              \
    "{\"type\":\"dense\",\"units\":3,\"activation\":\"softmax\"}"

/* A valid conv, then "same": the prefix is the first layer only. */
#define VALID_SAME_LAYERS                                                                  \
    "{\"type\":\"conv2d\",\"filters\":8,\"kernel_size\":3,\"activation\":\"relu\"},"       \
    "{\"type\":\"conv2d\",\"filters\":8,\"kernel_size\":3,\"padding\":\"same\","           \
    "\"activation\":\"relu\"},"                                                            \
    "{\"type\":\"flatten\"},"                                                              \
    "{\"type\":\"dense\",\"units\":3,\"activation\":\"softmax\"}"

/* A skip connection over the chain: c2 is read again after c3, so a cut
 * may fall after c1 or c2 but not after c3 (the rest would need c2 too). */
#define RESIDUAL_LAYERS                                                                    \
    "{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":6,\"kernel_size\":3,"            \
    "\"activation\":\"relu\"},"                                                            \
    "{\"type\":\"conv2d\",\"name\":\"c2\",\"filters\":6,\"kernel_size\":1,"            \
    "\"activation\":\"relu\"},"                                                            \
    "{\"type\":\"conv2d\",\"name\":\"c3\",\"filters\":6,\"kernel_size\":1},"           \
    "{\"type\":\"add\",\"inputs\":[\"c2\",\"c3\"],\"activation\":\"relu\"},"           \
    "{\"type\":\"maxpool2d\",\"pool_size\":2},"                                            \
    "{\"type\":\"flatten\"},"                                                              \
    "{\"type\":\"dense\",\"units\":3,\"activation\":\"softmax\"}"

/* A skip over the dense layer after the cut: the concat reads the
 * flattened prefix again, so that dense layer cannot be folded into the
 * tables (the tail must start before it). */
#define SKIP_DENSE_LAYERS                                                                  \
    "{\"type\":\"conv2d\",\"filters\":4,\"kernel_size\":3,\"activation\":\"relu\"},"       \
    "{\"type\":\"maxpool2d\",\"pool_size\":4},"                                            \
    "{\"type\":\"flatten\",\"name\":\"f1\"},"                                              \
    "{\"type\":\"dense\",\"name\":\"d2\",\"units\":8,\"activation\":\"relu\"},"          \
    "{\"type\":\"concat\",\"inputs\":[\"f1\",\"d2\"]},"                                   \
    "{\"type\":\"dense\",\"units\":3,\"activation\":\"softmax\"}"

/* Seven local layers, a 24×24 receptive field at the end. */
#define DEEP_LAYERS                                                                        \
    "{\"type\":\"conv2d\",\"filters\":8,\"kernel_size\":3,\"activation\":\"relu\"},"       \
    "{\"type\":\"conv2d\",\"filters\":8,\"kernel_size\":3,\"activation\":\"relu\"},"       \
    "{\"type\":\"maxpool2d\",\"pool_size\":2},"                                            \
    "{\"type\":\"conv2d\",\"filters\":8,\"kernel_size\":3,\"activation\":\"relu\"},"       \
    "{\"type\":\"conv2d\",\"filters\":8,\"kernel_size\":3,\"activation\":\"relu\"},"       \
    "{\"type\":\"maxpool2d\",\"pool_size\":2},"                                            \
    "{\"type\":\"conv2d\",\"filters\":8,\"kernel_size\":3,\"activation\":\"relu\"},"       \
    "{\"type\":\"flatten\"},"                                                              \
    "{\"type\":\"dense\",\"units\":3,\"activation\":\"softmax\"}"

/* Parses a model of the given layers at side×side and gives it random
 * parameters: init, then biases and batch-norm statistics drawn too, so that
 * no term of the forward is trivially zero or one. */
static int make_model(struct model *m, const char *layers, int side, uint64_t seed)
{
    char json[4096], err[STRATA_ERR_LEN];
    snprintf(json, sizeof json,
             "{\"id\":\"t\",\"input\":{\"height\":%d,\"width\":%d,\"channels\":3},"
             "\"normalization\":{\"mean\":[0.5,0.4,0.45],\"std\":[0.25,0.3,0.2]},"
             "\"classes\":[\"a\",\"b\",\"c\"],\"layers\":[%s]}",
             side, side, layers);
    if (model_parse_json(m, json, "test model", err) != 0) {
        printf("# %s\n", err);
        return -1;
    }
    model_init_params(m, seed);
    struct rng r;
    rng_seed(&r, seed + 100);
    for (int i = 0; i < m->n_layers; i++) {
        struct layer *l = &m->layers[i];
        int c = l->out.c;
        if (l->w.bias) {
            int nb = l->cfg.kind == LAYER_DENSE ? l->cfg.units : l->cfg.filters;
            for (int j = 0; j < nb; j++)
                l->w.bias[j] = (float)(0.2 * rng_uniform(&r) - 0.1);
        }
        if (l->cfg.kind == LAYER_BATCH_NORM)
            for (int j = 0; j < c; j++) {
                l->w.gamma[j] = (float)(0.5 + rng_uniform(&r));
                l->w.beta[j] = (float)(rng_uniform(&r) - 0.5);
                l->w.moving_mean[j] = (float)(0.6 * rng_uniform(&r) - 0.3);
                l->w.moving_var[j] = (float)(0.5 + 1.5 * rng_uniform(&r));
            }
    }
    return 0;
}

/* Colour fields with a disc and a box, and noise: SLIC finds real edges. */
static void make_image(uint8_t *rgb, int side, uint64_t seed)
{
    struct rng r;
    rng_seed(&r, seed);
    for (int y = 0; y < side; y++)
        for (int x = 0; x < side; x++) {
            uint8_t *p = rgb + 3 * (y * side + x);
            int cx = side / 3, cy = side * 2 / 5, rad = side / 4;
            int disc = (x - cx) * (x - cx) + (y - cy) * (y - cy) < rad * rad;
            int box = x > side * 3 / 5 && y > side / 2;
            int v[3] = {disc ? 220 : box ? 40 : 6 * x, disc ? 60 : box ? 180 : 5 * y,
                        box ? 60 : 120};
            for (int c = 0; c < 3; c++) {
                int q = v[c] + (int)rng_below(&r, 21) - 10;
                p[c] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
            }
        }
}

/* An image, its segments and their hiding colours (the rounded means, as
 * lime.c computes them, recomputed here). */
struct scene {
    int side, nseg;
    uint8_t *rgb;
    int *seg;
    uint8_t *hide;
};

static int scene_make(struct scene *s, int side, int n_segments, uint64_t seed)
{
    char err[STRATA_ERR_LEN];
    s->side = side;
    s->rgb = malloc((size_t)side * side * 3);
    s->seg = malloc((size_t)side * side * sizeof(int));
    make_image(s->rgb, side, seed);
    if (slic_segment(s->rgb, side, side, n_segments, 10.0f, s->seg, &s->nseg, err) != 0) {
        printf("# %s\n", err);
        return -1;
    }
    s->hide = malloc((size_t)s->nseg * 3);
    for (int g = 0; g < s->nseg; g++) {
        long sum[3] = {0, 0, 0}, cnt = 0;
        for (int q = 0; q < side * side; q++)
            if (s->seg[q] == g) {
                for (int c = 0; c < 3; c++)
                    sum[c] += s->rgb[3 * q + c];
                cnt++;
            }
        for (int c = 0; c < 3; c++)
            s->hide[3 * g + c] = (uint8_t)((sum[c] + cnt / 2) / cnt);
    }
    return 0;
}

static void scene_free(struct scene *s)
{
    free(s->rgb);
    free(s->seg);
    free(s->hide);
}

static struct lime_perturbation scene_pert(const struct scene *s)
{
    return (struct lime_perturbation){.rgb = s->rgb, .w = s->side, .h = s->side,
                                      .segments = s->seg, .n_segments = s->nseg,
                                      .hide_rgb = s->hide};
}

/* n random masks; row 0 all kept, row 1 all hidden. */
static uint8_t *random_masks(int n, int nseg, uint64_t seed)
{
    uint8_t *mk = malloc((size_t)n * nseg);
    struct rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < n * nseg; i++)
        mk[i] = (uint8_t)rng_below(&r, 2);
    memset(mk, 1, (size_t)nseg);
    if (n > 1)
        memset(mk + nseg, 0, (size_t)nseg);
    return mk;
}

/* Brute force: every sample rendered, normalised and run through the whole
 * model, 16 at a time. */
static void brute_probs(struct model *m, const struct scene *s, const uint8_t *masks, int n,
                        float *probs)
{
    char err[STRATA_ERR_LEN];
    struct model_workspace ws;
    if (model_workspace_init(&ws, m, 16, err) != 0) {
        printf("# %s\n", err);
        abort();
    }
    const int npix = s->side * s->side;
    uint8_t *img = malloc((size_t)npix * 3);
    const size_t per = shape_size(m->input);
    for (int i0 = 0; i0 < n; i0 += 16) {
        int nb = n - i0 < 16 ? n - i0 : 16;
        for (int i = 0; i < nb; i++) {
            const uint8_t *mk = masks + (size_t)(i0 + i) * s->nseg;
            for (int q = 0; q < npix; q++)
                memcpy(img + 3 * q, mk[s->seg[q]] ? s->rgb + 3 * q : s->hide + 3 * s->seg[q], 3);
            model_normalise(m, img, ws.input + (size_t)i * per);
        }
        model_forward(m, &ws, ws.input, nb);
        memcpy(probs + (size_t)i0 * m->n_classes, model_output(&ws, m->n_layers - 1),
               (size_t)nb * m->n_classes * sizeof(float));
    }
    free(img);
    model_workspace_free(&ws);
}

/* How many of the n×k values a and b differ by more than 1e-4 relative (and
 * 1e-7 absolute, for probabilities near 0); prints the first. Also checks
 * that the reference's log-probabilities vary across samples by more than
 * 1e-2, or the comparison could not tell a sample from another. */
static int count_mismatches(const float *a, const float *b, int n, int k, const char *what)
{
    int bad = 0;
    double spread = 0, worst = 0;
    for (int i = 0; i < n * k; i++) {
        double d = fabs((double)a[i] - b[i]);
        worst = fmax(worst, d / fmax(fabs((double)b[i]), 1e-30));
        if (!(d <= 1e-4 * fabs((double)b[i]) + 1e-7)) {
            if (!bad)
                printf("#   %s: sample %d class %d: fast %.9g, brute %.9g\n", what, i / k,
                       i % k, a[i], b[i]);
            bad++;
        }
        /* In log space: a relative tolerance on probabilities is an
         * absolute one on their logarithms. */
        spread = fmax(spread, fabs(log(fmax(b[i], 1e-30)) - log(fmax(b[i % k], 1e-30))));
    }
    if (getenv("LIME_LOCAL_VERBOSE"))
        printf("#   %s: log-probability spread %.3g, largest relative difference %.3g\n",
               what, spread, worst);
    if (spread < 1e-2) {
        printf("#   %s: the reference barely varies (%.3g)\n", what, spread);
        bad++;
    }
    return bad;
}

/* Fast path forced (min_speedup 0) with the given cut and folding. */
static int fast_probs(struct model *m, const struct scene *s, const uint8_t *masks, int n,
                      int cut, int fold, float *probs, struct lime_local_stats *st)
{
    char err[STRATA_ERR_LEN];
    struct lime_local_opts o;
    lime_local_opts_default(&o);
    o.min_speedup = 0;
    o.prefix_layers = cut;
    o.fold_dense = fold;
    struct lime_local *ll;
    int rc = lime_local_new(m, 7, &o, &ll, err); /* 7: batches that do not divide n */
    if (rc) {
        printf("# %s\n", err);
        return rc;
    }
    struct lime_perturbation pert = scene_pert(s);
    rc = lime_local_classify_masks(ll, &pert, masks, n, probs, err);
    if (rc)
        printf("# classify_masks: %d %s\n", rc, err);
    lime_local_last_stats(ll, st);
    lime_local_free(ll);
    return rc;
}

/* Σ_p 2^j_p for the cut after L layers, counted here directly. */
static long count_windows(const struct model *m, const struct scene *s, int L, int rf, int stride)
{
    const struct shape o = m->layers[L - 1].out;
    char *seen = malloc((size_t)s->nseg);
    long total = 0;
    for (int oy = 0; oy < o.h; oy++)
        for (int ox = 0; ox < o.w; ox++) {
            memset(seen, 0, (size_t)s->nseg);
            int j = 0;
            for (int y = oy * stride; y < oy * stride + rf; y++)
                for (int x = ox * stride; x < ox * stride + rf; x++)
                    if (!seen[s->seg[y * s->side + x]]++)
                        j++;
            total += 1L << j;
        }
    free(seen);
    return total;
}

/* Multiplies every dense kernel by gain: squashing layers (sigmoid, a
 * softmax over channels) leave the outputs of random weights nearly constant,
 * and a comparison of constants could not fail. */
static void scale_dense(struct model *m, float gain)
{
    for (int i = 0; i < m->n_layers; i++) {
        struct layer *l = &m->layers[i];
        if (l->cfg.kind == LAYER_DENSE)
            for (size_t q = 0; q < shape_size(l->in) * (size_t)l->cfg.units; q++)
                l->w.kernel[q] *= gain;
    }
}

/* Every cut of m's prefix, folded and not, against brute force on n masks. */
static void check_all_cuts(const char *layers, int side, int n_segments, int expect_local,
                           float dense_gain)
{
    struct model m = {0};
    struct scene s;
    CHECK(make_model(&m, layers, side, 11) == 0);
    scale_dense(&m, dense_gain);
    CHECK(scene_make(&s, side, n_segments, 5) == 0);
    const int n = 50;
    uint8_t *masks = random_masks(n, s.nseg, 9);
    float *ref = malloc((size_t)n * 3 * sizeof(float));
    float *got = malloc((size_t)n * 3 * sizeof(float));
    brute_probs(&m, &s, masks, n, ref);
    struct lime_local_geom g;
    CHECK(lime_local_analyse(&m, &g, NULL) == 1);
    CHECK_EQ_INT(g.n_prefix, expect_local);
    for (int cut = 1; cut <= g.n_prefix; cut++)
        for (int fold = 0; fold <= 1; fold++) {
            struct lime_local_stats st;
            memset(got, 0, (size_t)n * 3 * sizeof(float));
            CHECK_EQ_INT(fast_probs(&m, &s, masks, n, cut, fold, got, &st), 0);
            CHECK_EQ_INT(st.used, 1);
            CHECK_EQ_INT(st.prefix_layers, cut);
            char what[64];
            snprintf(what, sizeof what, "cut %d fold %d", cut, fold);
            CHECK_MSG(count_mismatches(got, ref, n, 3, what) == 0, "%s", what);
        }
    free(masks);
    free(ref);
    free(got);
    scene_free(&s);
    model_free(&m);
}

TEST(geometry_by_hand)
{
    struct model m = {0};
    struct lime_local_geom g;
    char why[STRATA_ERR_LEN];
    CHECK(make_model(&m, SEED_LAYERS, 150, 1) == 0);
    CHECK_EQ_INT(lime_local_analyse(&m, &g, why), 1);
    /* 150 → conv 148 → pool 74 → conv 72 → pool 36. One pool2 output sees
     * 2 conv2 outputs, 4 pool1 outputs, 8 conv1 outputs, 10 pixels; each
     * pool doubles the stride. */
    CHECK_EQ_INT(g.n_prefix, 4);
    CHECK_EQ_INT(g.rf_h, 10);
    CHECK_EQ_INT(g.rf_w, 10);
    CHECK_EQ_INT(g.stride_h, 4);
    CHECK_EQ_INT(g.out.h, 36);
    CHECK_EQ_INT(g.out.w, 36);
    CHECK_EQ_INT(g.out.c, 32);
    /* conv1 148²·32·27·2 + conv2 72²·32·288·2 multiply-adds dominate. */
    CHECK(g.prefix_flops > 2.0 * (148.0 * 148 * 32 * 27 + 72.0 * 72 * 32 * 288));
    CHECK(g.window_flops > 2.0 * (8.0 * 8 * 32 * 27 + 2.0 * 2 * 32 * 288));
    CHECK(g.window_flops < g.prefix_flops / 500);
    model_free(&m);

    /* The batch-norm model at 40: conv 38, bn, sigmoid, pool 19, dropout,
     * conv stride 2 → 9, relu. Backwards: 1 → 3 (conv k3 s2) → 6 (pool)
     * → 8 (conv k3); stride 2·2 = 4. */
    CHECK(make_model(&m, BN_LAYERS, 40, 1) == 0);
    CHECK_EQ_INT(lime_local_analyse(&m, &g, why), 1);
    CHECK_EQ_INT(g.n_prefix, 7);
    CHECK_EQ_INT(g.rf_h, 8);
    CHECK_EQ_INT(g.stride_w, 4);
    CHECK_EQ_INT(g.out.h, 9);
    CHECK_EQ_INT(g.out.c, 8);
    model_free(&m);
}

TEST(seed_architecture_every_cut)
{
    check_all_cuts(SEED_LAYERS, 40, 30, 4, 1.0f);
}

TEST(batch_norm_sigmoid_prefix_every_cut)
{
    check_all_cuts(BN_LAYERS, 40, 30, 7, 10.0f);
}

TEST(fully_local_model_without_tail)
{
    /* 12 → conv 10 → pool 5 → conv k5 → 1×1×3: the prefix is the model. */
    check_all_cuts(NOTAIL_LAYERS, 12, 6, 3, 1.0f);
}

TEST(global_pool_tail)
{
    check_all_cuts(GAP_LAYERS, 24, 20, 2, 1.0f);
}

TEST(same_padding_that_pads_nothing)
{
    check_all_cuts(SAME0_LAYERS, 40, 30, 3, 1.0f);
}

TEST(a_skip_connection_limits_the_cut)
{
    check_all_cuts(RESIDUAL_LAYERS, 26, 20, 2, 1.0f);
    check_all_cuts(SKIP_DENSE_LAYERS, 26, 20, 2, 1.0f);
}

TEST(window_counts_and_stats)
{
    struct model m = {0};
    struct scene s;
    CHECK(make_model(&m, SEED_LAYERS, 40, 3) == 0);
    CHECK(scene_make(&s, 40, 30, 2) == 0);
    const int n = 20;
    uint8_t *masks = random_masks(n, s.nseg, 4);
    float *got = malloc((size_t)n * 3 * sizeof(float));
    struct lime_local_stats st;
    /* Cut after pool2 (rf 10, stride 4, 8×8 positions), after conv2 (3
     * conv2 inputs, 6 conv1 outputs, 8 pixels; stride 2; 17×17), after
     * conv1 (rf 3, stride 1, 38×38). */
    const int cuts[3][3] = {{4, 10, 4}, {3, 8, 2}, {1, 3, 1}};
    for (int c = 0; c < 3; c++) {
        CHECK_EQ_INT(fast_probs(&m, &s, masks, n, cuts[c][0], 1, got, &st), 0);
        CHECK_EQ_INT(st.windows, count_windows(&m, &s, cuts[c][0], cuts[c][1], cuts[c][2]));
        const struct shape o = m.layers[cuts[c][0] - 1].out;
        CHECK_EQ_INT(st.positions, o.h * o.w);
        CHECK(st.max_bits >= 1 && st.max_bits <= 10);
        /* Folding happens only when the dense layer follows the cut. */
        CHECK_EQ_INT(st.folded, cuts[c][0] == 4);
        CHECK(st.groups >= 1 && st.groups <= st.positions);
        if (!st.folded)
            CHECK_EQ_INT(st.groups, st.positions);
    }
    /* Folded, positions meeting the same segments share their rows: here
     * most windows lie inside one or two superpixels. */
    CHECK_EQ_INT(fast_probs(&m, &s, masks, n, 4, 1, got, &st), 0);
    CHECK(st.groups < st.positions);
    free(masks);
    free(got);
    scene_free(&s);
    model_free(&m);
}

TEST(deterministic)
{
    struct model m = {0};
    struct scene s;
    CHECK(make_model(&m, BN_LAYERS, 40, 7) == 0);
    CHECK(scene_make(&s, 40, 30, 8) == 0);
    const int n = 30;
    uint8_t *masks = random_masks(n, s.nseg, 1);
    float *a = malloc((size_t)n * 3 * sizeof(float)), *b = malloc((size_t)n * 3 * sizeof(float));
    struct lime_local_stats st;
    CHECK_EQ_INT(fast_probs(&m, &s, masks, n, 0, 1, a, &st), 0);
    CHECK_EQ_INT(fast_probs(&m, &s, masks, n, 0, 1, b, &st), 0);
    CHECK(memcmp(a, b, (size_t)n * 3 * sizeof(float)) == 0);
    /* The same object twice, reusing its built cut, in batches of 16: the
     * same bits both times, and within float rounding of the batches of 7
     * (BLAS kernels may block a GEMM of 16 rows differently from one of 7,
     * as OpenBLAS's Haswell kernels do, which changes the last bits). */
    char err[STRATA_ERR_LEN];
    struct lime_local_opts o;
    lime_local_opts_default(&o);
    o.min_speedup = 0;
    struct lime_local *ll;
    CHECK_EQ_INT(lime_local_new(&m, 16, &o, &ll, err), 0);
    struct lime_perturbation pert = scene_pert(&s);
    CHECK_EQ_INT(lime_local_classify_masks(ll, &pert, masks, n, b, err), 0);
    for (int i = 0; i < n * 3; i++)
        CHECK_NEAR(a[i], b[i], 1e-6);
    float *c = malloc((size_t)n * 3 * sizeof(float));
    CHECK_EQ_INT(lime_local_classify_masks(ll, &pert, masks, n, c, err), 0);
    CHECK(memcmp(b, c, (size_t)n * 3 * sizeof(float)) == 0);
    free(c);
    lime_local_free(ll);
    free(masks);
    free(a);
    free(b);
    scene_free(&s);
    model_free(&m);
}

TEST(not_applicable_models)
{
    struct model m = {0};
    struct lime_local_geom g;
    struct lime_local *ll = NULL;
    char why[STRATA_ERR_LEN], err[STRATA_ERR_LEN];
    /* "same" from the first layer on: a cropped window would miss the
     * padding, so there is no prefix. */
    CHECK(make_model(&m, SAME_LAYERS, 40, 1) == 0);
    CHECK_EQ_INT(lime_local_analyse(&m, &g, why), 0);
    CHECK_EQ_INT(g.n_prefix, 0);
    CHECK(strstr(why, "pads") != NULL);
    CHECK_EQ_INT(lime_local_new(&m, 8, NULL, &ll, err), STRATA_E_UNSUPPORTED);
    CHECK(ll == NULL);
    CHECK(strstr(err, "same") != NULL);
    model_free(&m);
    /* A dense layer first. */
    CHECK(make_model(&m,
                     "{\"type\":\"flatten\"},{\"type\":\"dense\",\"units\":3,"
                     "\"activation\":\"softmax\"}",
                     16, 1) == 0);
    CHECK_EQ_INT(lime_local_analyse(&m, &g, why), 0);
    CHECK(strstr(why, "mixes all positions") != NULL);
    model_free(&m);
    /* Valid, then "same": only the first layer, and that cut is exact. */
    check_all_cuts(VALID_SAME_LAYERS, 24, 20, 1, 1.0f);
}

TEST(deep_receptive_field_declines)
{
    struct model m = {0};
    struct scene s;
    CHECK(make_model(&m, DEEP_LAYERS, 40, 2) == 0);
    CHECK(scene_make(&s, 40, 50, 3) == 0);
    struct lime_local_geom g;
    CHECK_EQ_INT(lime_local_analyse(&m, &g, NULL), 1);
    CHECK_EQ_INT(g.n_prefix, 7);
    CHECK_EQ_INT(g.rf_h, 24);
    const int n = 40;
    uint8_t *masks = random_masks(n, s.nseg, 6);
    float *got = malloc((size_t)n * 3 * sizeof(float));
    float *ref = malloc((size_t)n * 3 * sizeof(float));
    for (int i = 0; i < n * 3; i++)
        got[i] = -1.0f;
    /* The whole prefix: 24×24 windows over ~6×6-pixel superpixels meet far
     * more than 10 of them. */
    char err[STRATA_ERR_LEN];
    struct lime_local_opts o;
    lime_local_opts_default(&o);
    o.min_speedup = 0;
    o.prefix_layers = 7;
    struct lime_local *ll;
    CHECK_EQ_INT(lime_local_new(&m, 8, &o, &ll, err), 0);
    struct lime_perturbation pert = scene_pert(&s);
    CHECK_EQ_INT(lime_local_classify_masks(ll, &pert, masks, n, got, err), LIME_DECLINED);
    struct lime_local_stats st;
    lime_local_last_stats(ll, &st);
    CHECK_EQ_INT(st.used, 0);
    CHECK(strstr(st.reason, "too many segments") != NULL);
    CHECK(got[0] == -1.0f && got[n * 3 - 1] == -1.0f); /* untouched */
    lime_local_free(ll);
    /* Left to choose, it may cut earlier, where the fields are small; the
     * result is then exact all the same. */
    brute_probs(&m, &s, masks, n, ref);
    CHECK_EQ_INT(fast_probs(&m, &s, masks, n, 0, 1, got, &st), 0);
    CHECK(st.used && st.prefix_layers < 7);
    CHECK(count_mismatches(got, ref, n, 3, "deep, chosen cut") == 0);
    /* A cut longer than the local layers. */
    o.prefix_layers = 8;
    CHECK_EQ_INT(lime_local_new(&m, 8, &o, &ll, err), 0);
    CHECK_EQ_INT(lime_local_classify_masks(ll, &pert, masks, n, got, err), LIME_DECLINED);
    lime_local_free(ll);
    free(masks);
    free(got);
    free(ref);
    scene_free(&s);
    model_free(&m);
}

TEST(declines_when_brute_force_is_cheaper)
{
    /* Two samples cost two forwards; the tables cost hundreds of windows. */
    struct model m = {0};
    struct scene s;
    CHECK(make_model(&m, SEED_LAYERS, 40, 2) == 0);
    CHECK(scene_make(&s, 40, 30, 3) == 0);
    uint8_t *masks = random_masks(2, s.nseg, 6);
    float probs[6];
    char err[STRATA_ERR_LEN];
    struct lime_local *ll;
    CHECK_EQ_INT(lime_local_new(&m, 8, NULL, &ll, err), 0);
    struct lime_perturbation pert = scene_pert(&s);
    CHECK_EQ_INT(lime_local_classify_masks(ll, &pert, masks, 2, probs, err), LIME_DECLINED);
    struct lime_local_stats st;
    lime_local_last_stats(ll, &st);
    CHECK(strstr(st.reason, "not be faster than brute force") != NULL);
    /* The wrong image size is the caller's error. */
    pert.w = 39;
    CHECK_EQ_INT(lime_local_classify_masks(ll, &pert, masks, 2, probs, err), STRATA_E_ARG);
    CHECK(strstr(err, "resize") != NULL);
    lime_local_free(ll);
    free(masks);
    scene_free(&s);
    model_free(&m);
}

/* The image classifier LIME uses on rendered samples, as explain.c does. */
struct brute {
    struct model *m;
    struct model_workspace ws;
    int images;
    struct lime_local *ll; /* for brute_local_masks */
};

static int brute_local_masks(void *user, const struct lime_perturbation *pert,
                             const uint8_t *masks, int n, float *probs, char *err)
{
    struct brute *b = user;
    return lime_local_classify_masks(b->ll, pert, masks, n, probs, err);
}

static int brute_classify(void *user, const uint8_t *rgb, int n, float *probs, char *err)
{
    struct brute *b = user;
    size_t per = shape_size(b->m->input);
    for (int first = 0; first < n; first += b->ws.max_batch) {
        int nb = n - first < b->ws.max_batch ? n - first : b->ws.max_batch;
        for (int i = 0; i < nb; i++)
            model_normalise(b->m, rgb + (size_t)(first + i) * per, b->ws.input + (size_t)i * per);
        model_forward(b->m, &b->ws, b->ws.input, nb);
        memcpy(probs + (size_t)first * b->m->n_classes, model_output(&b->ws, b->m->n_layers - 1),
               (size_t)nb * b->m->n_classes * sizeof(float));
    }
    b->images += n;
    return 0;
}

/* Two explanations of the same image agree: segments, probabilities, and per
 * class the intercept, score and every segment's weight. */
static void check_same_explanation(const struct lime_result *a, const struct lime_result *b)
{
    CHECK_EQ_INT(a->n_segments, b->n_segments);
    CHECK(memcmp(a->segments, b->segments, (size_t)a->w * a->h * sizeof(int)) == 0);
    for (int c = 0; c < a->n_classes; c++)
        CHECK_NEAR(a->probs[c], b->probs[c], 1e-4 * fabs(b->probs[c]));
    CHECK_EQ_INT(a->n_explained, b->n_explained);
    double wmax = 0;
    for (int e = 0; e < a->n_explained && e < b->n_explained; e++) {
        const struct lime_class *ca = &a->classes[e], *cb = &b->classes[e];
        CHECK_EQ_INT(ca->label, cb->label);
        CHECK_EQ_INT(ca->n_features, cb->n_features);
        CHECK_NEAR(ca->intercept, cb->intercept, 1e-4);
        CHECK_NEAR(ca->score, cb->score, 1e-3);
        double *wa = calloc((size_t)a->n_segments, sizeof(double));
        double *wb = calloc((size_t)a->n_segments, sizeof(double));
        for (int j = 0; j < ca->n_features; j++)
            wa[ca->features[j].segment] = ca->features[j].weight;
        for (int j = 0; j < cb->n_features; j++)
            wb[cb->features[j].segment] = cb->features[j].weight;
        for (int sg = 0; sg < a->n_segments; sg++) {
            CHECK_NEAR(wa[sg], wb[sg], 1e-5 + 1e-3 * fabs(wb[sg]));
            wmax = fmax(wmax, fabs(wb[sg]));
        }
        free(wa);
        free(wb);
    }
    CHECK(wmax > 1e-3); /* the explanations say something */
}

TEST(lime_result_equal_on_both_paths)
{
    struct model m = {0};
    struct scene s;
    CHECK(make_model(&m, SEED_LAYERS, 40, 4) == 0);
    CHECK(scene_make(&s, 40, 30, 1) == 0);
    char err[STRATA_ERR_LEN];
    struct lime_params p;
    lime_params_default(&p);
    p.num_samples = 300;
    p.n_segments = 30;
    p.batch_size = 32;
    p.top_labels = 3;
    struct brute b = {.m = &m};
    CHECK_EQ_INT(model_workspace_init(&b.ws, &m, 32, err), 0);
    struct lime_result slow, fast;
    CHECK_EQ_INT(lime_explain(s.rgb, 40, 40, &p, brute_classify, &b, 3, NULL, 0, &slow, err), 0);
    CHECK_EQ_INT(slow.mask_path, 0);
    CHECK_EQ_INT(b.images, 300);
    struct lime_local_opts o;
    lime_local_opts_default(&o);
    o.min_speedup = 0;
    struct lime_local *ll;
    CHECK_EQ_INT(lime_local_new(&m, 32, &o, &ll, err), 0);
    b.images = 0;
    b.ll = ll;
    const struct lime_classifier clf = {
        .classify = brute_classify, .classify_masks = brute_local_masks, .user = &b};
    CHECK_EQ_INT(lime_explain_with(s.rgb, 40, 40, &p, &clf, 3, NULL, 0, &fast, err), 0);
    CHECK_EQ_INT(fast.mask_path, 1);
    CHECK_EQ_INT(b.images, 0);
    check_same_explanation(&fast, &slow);
    lime_result_free(&fast);
    lime_result_free(&slow);
    lime_local_free(ll);
    model_workspace_free(&b.ws);
    scene_free(&s);
    model_free(&m);
}

TEST(explain_image_takes_the_fast_path_when_it_pays)
{
    char err[STRATA_ERR_LEN];
    struct lime_params p;
    lime_params_default(&p);
    p.num_samples = 400;
    p.n_segments = 30;
    p.batch_size = 25;
    /* The seed model (fast) and a "same"-padded one (rendered images): both
     * equal LIME on rendered images with the brute classifier. */
    const char *layers[2] = {SEED_LAYERS, SAME_LAYERS};
    for (int k = 0; k < 2; k++) {
        struct model m = {0};
        struct scene s;
        CHECK(make_model(&m, layers[k], 40, 8) == 0);
        CHECK(scene_make(&s, 40, 30, 6) == 0);
        struct image img = {.w = 40, .h = 40, .rgb = s.rgb}, resized;
        struct lime_result got, ref;
        CHECK_EQ_INT(explain_image(&m, &img, &p, NULL, 0, &got, &resized, err), 0);
        CHECK_EQ_INT(got.mask_path, k == 0);
        CHECK(memcmp(resized.rgb, s.rgb, 40 * 40 * 3) == 0);
        struct brute b = {.m = &m};
        CHECK_EQ_INT(model_workspace_init(&b.ws, &m, 25, err), 0);
        CHECK_EQ_INT(lime_explain(s.rgb, 40, 40, &p, brute_classify, &b, 3, NULL, 0, &ref, err),
                     0);
        check_same_explanation(&got, &ref);
        lime_result_free(&got);
        lime_result_free(&ref);
        image_free(&resized);
        model_workspace_free(&b.ws);
        scene_free(&s);
        model_free(&m);
    }
}

/* LIME's samples go through the model in batches whose activations stay
 * within EXPLAIN_BATCH_BYTES: as many images as fit (at least one, at most
 * what was asked), and the batch changes nothing in the explanation. */
TEST(explain_batches_fit_the_memory_budget)
{
    struct model big = {0}, small = {0};
    CHECK(make_model(&big, SAME_LAYERS, 256, 3) == 0);
    size_t per_image = 0;
    for (int l = 0; l < big.n_layers; l++)
        per_image += shape_size(big.layers[l].out) * sizeof(float);
    const int b = explain_batch(&big, 100);
    CHECK(b >= 1 && b < 100);
    CHECK((size_t)b * per_image <= EXPLAIN_BATCH_BYTES);
    CHECK((size_t)(b + 1) * per_image > EXPLAIN_BATCH_BYTES);
    char err[STRATA_ERR_LEN];
    CHECK(model_run_on_graph(&big, err) == 0);
    CHECK(big.graph != NULL);
    CHECK(explain_batch(&big, 100) < b); /* the graph's own values count too */
    CHECK(make_model(&small, SAME_LAYERS, 16, 3) == 0);
    CHECK_EQ_INT(explain_batch(&small, 7), 7);
    CHECK_EQ_INT(explain_batch(&small, 1), 1);
    model_free(&big);
    model_free(&small);

    struct model m = {0};
    struct scene s;
    CHECK(make_model(&m, SAME_LAYERS, 40, 8) == 0);
    CHECK(scene_make(&s, 40, 30, 6) == 0);
    struct lime_params p;
    lime_params_default(&p);
    p.num_samples = 300;
    p.n_segments = 30;
    struct image img = {.w = 40, .h = 40, .rgb = s.rgb}, r1, r2;
    struct lime_result one, many;
    p.batch_size = 1;
    CHECK_EQ_INT(explain_image(&m, &img, &p, NULL, 0, &one, &r1, err), 0);
    p.batch_size = 100;
    CHECK_EQ_INT(explain_image(&m, &img, &p, NULL, 0, &many, &r2, err), 0);
    check_same_explanation(&one, &many);
    lime_result_free(&one);
    lime_result_free(&many);
    image_free(&r1);
    image_free(&r2);
    scene_free(&s);
    model_free(&m);
}

/* Mask classifiers that decline, fail, or return NaN, around a counting
 * image classifier. */
struct fake {
    int mode; /* 0 decline, 1 fail, 2 NaN */
    int mask_calls, images;
};

static int fake_masks(void *user, const struct lime_perturbation *pert, const uint8_t *masks,
                      int n, float *probs, char *err)
{
    struct fake *f = user;
    f->mask_calls++;
    if (f->mode == 0)
        return LIME_DECLINED;
    if (f->mode == 1)
        return strata_fail(err, STRATA_E_NOMEM, "no room");
    for (int i = 0; i < n * 2; i++)
        probs[i] = 0.5f;
    probs[2 * (n - 1) + 1] = NAN;
    return 0;
}

static int fake_images(void *user, const uint8_t *rgb, int n, float *probs, char *err)
{
    struct fake *f = user;
    f->images += n;
    for (int i = 0; i < n; i++) {
        probs[2 * i] = rgb[(size_t)i * 40 * 40 * 3] / 255.0f; /* the top-left red */
        probs[2 * i + 1] = 1.0f - probs[2 * i];
    }
    return 0;
}

TEST(lime_explain_with_mask_classifier_outcomes)
{
    struct scene s;
    CHECK(scene_make(&s, 40, 30, 1) == 0);
    char err[STRATA_ERR_LEN];
    struct lime_params p;
    lime_params_default(&p);
    p.num_samples = 64;
    p.n_segments = 30;
    p.batch_size = 10;
    struct lime_result res;
    struct fake f = {.mode = 0};
    struct lime_classifier clf = {.classify = fake_images, .classify_masks = fake_masks,
                                  .user = &f};
    CHECK_EQ_INT(lime_explain_with(s.rgb, 40, 40, &p, &clf, 2, NULL, 0, &res, err), 0);
    CHECK_EQ_INT(f.mask_calls, 1);
    CHECK_EQ_INT(f.images, 64);
    CHECK_EQ_INT(res.mask_path, 0);
    lime_result_free(&res);

    f = (struct fake){.mode = 1};
    CHECK_EQ_INT(lime_explain_with(s.rgb, 40, 40, &p, &clf, 2, NULL, 0, &res, err),
                 STRATA_E_NOMEM);
    CHECK(strstr(err, "no room") != NULL);
    CHECK_EQ_INT(f.images, 0);
    CHECK(res.classes == NULL && res.segments == NULL);

    f = (struct fake){.mode = 2};
    CHECK_EQ_INT(lime_explain_with(s.rgb, 40, 40, &p, &clf, 2, NULL, 0, &res, err),
                 STRATA_E_FORMAT);
    CHECK(strstr(err, "sample 63, class 1") != NULL);
    scene_free(&s);
}

int main(void)
{
    RUN(geometry_by_hand);
    RUN(seed_architecture_every_cut);
    RUN(batch_norm_sigmoid_prefix_every_cut);
    RUN(fully_local_model_without_tail);
    RUN(global_pool_tail);
    RUN(same_padding_that_pads_nothing);
    RUN(a_skip_connection_limits_the_cut);
    RUN(window_counts_and_stats);
    RUN(deterministic);
    RUN(not_applicable_models);
    RUN(deep_receptive_field_declines);
    RUN(declines_when_brute_force_is_cheaper);
    RUN(lime_result_equal_on_both_paths);
    RUN(explain_image_takes_the_fast_path_when_it_pays);
    RUN(explain_batches_fit_the_memory_budget);
    RUN(lime_explain_with_mask_classifier_outcomes);
    return check_done();
}
