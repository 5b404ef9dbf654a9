/*
 * test_doubt.c — the doubt score: the feature rows (channel means and
 * spatial spreads) against a hand-worked map; AUROC and FPR at 95 % TPR
 * against hand-worked values and a pairwise reference (ties included); the
 * calibration hold-out; the conformal calibration (held-out images get their
 * rank); a tiny model on two well-separated colour blobs (far-away images
 * get high doubt, including one the softmax is sure about); determinism; the
 * per-layer view and its explanation; the cache files (round trip,
 * corruption); the evaluation over dataset folders; and one question
 * (question.h), whose answer is what its parts give on one forward pass.
 */
#include <jansson.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analysis.h"
#include "check.h"
#include "doubt.h"
#include "image.h"
#include "question.h"
#include "rng.h"

/* ---- features ----------------------------------------------------------------- */

TEST(features_hand_worked)
{
    /* A 2 x 2 map of 2 channels (NHWC), positions (y, x) = (0,0) (0,1) (1,0) (1,1):
     *   channel 0: 1 3 5 7 -> mean 4, deviations -3 -1 1 3, variance 20/4 = 5;
     *   channel 1: 0 2 2 4 -> mean 2, deviations -2 0 0 2, variance 8/4 = 2.
     * Row: the means, then the spatial standard deviations. */
    const float act[2 * 2 * 2 * 2] = {1, 0, 3, 2, 5, 2, 7, 4, /* second image: constant */
                                      6, -1, 6, -1, 6, -1, 6, -1};
    float out[2 * 10];
    CHECK_EQ_INT(doubt_feature_dim(2, 2, 2, 1), 4);
    doubt_features(out, act, 2, 2, 2, 2, 1);
    const float want1[4] = {4, 2, sqrtf(5), sqrtf(2)};
    for (int j = 0; j < 4; j++)
        CHECK_NEAR(out[j], want1[j], 1e-6);
    /* A constant map has no spread. */
    const float want2[4] = {6, -1, 0, 0};
    for (int j = 0; j < 4; j++)
        CHECK_NEAR(out[4 + j], want2[j], 1e-6);
    /* Grid 2 on a 2 x 2 map: every position is its own cell, then the
     * spreads over the whole map. */
    CHECK_EQ_INT(doubt_feature_dim(2, 2, 2, 2), 10);
    doubt_features(out, act, 1, 2, 2, 2, 2);
    const float want3[10] = {1, 0, 3, 2, 5, 2, 7, 4, sqrtf(5), sqrtf(2)};
    for (int j = 0; j < 10; j++)
        CHECK_NEAR(out[j], want3[j], 1e-6);
    /* A 1 x 1 output (dense, global pooling) passes through unchanged. */
    const float dense[3] = {0.5f, -2, 7};
    CHECK_EQ_INT(doubt_feature_dim(1, 1, 3, 1), 3);
    doubt_features(out, dense, 1, 1, 1, 3, 1);
    for (int j = 0; j < 3; j++)
        CHECK_NEAR(out[j], dense[j], 0);
    /* More channels than one block of the two-pass loop (64): channel k of a
     * 1 x 2 map holds (k, 3k) -> mean 2k, standard deviation k. */
    float wide[2 * 150], row[300];
    for (int k = 0; k < 150; k++) {
        wide[k] = (float)k;
        wide[150 + k] = (float)(3 * k);
    }
    CHECK_EQ_INT(doubt_feature_dim(1, 2, 150, 1), 300);
    doubt_features(row, wide, 1, 1, 2, 150, 1);
    double worst = 0;
    for (int k = 0; k < 150; k++)
        worst = fmax(worst, fmax(fabs(row[k] - 2.0 * k), fabs(row[150 + k] - (double)k)));
    CHECK_MSG(worst < 1e-4, "wide map: max difference %.3g", worst);
}

/* ---- metrics ------------------------------------------------------------------ */

TEST(auroc_hand_worked_with_ties)
{
    /* Pairs (positive, negative): 0.4 beats 0.1, ties 0.4 twice (1/2 each),
     * loses to 0.7 -> 2; 0.8 beats all four -> 4; 0.3 beats 0.1 -> 1.
     * 7 of 12 pairs. */
    const float neg[] = {0.1f, 0.4f, 0.4f, 0.7f}, pos[] = {0.4f, 0.8f, 0.3f};
    CHECK_NEAR(doubt_auroc(neg, 4, pos, 3), 7.0 / 12.0, 1e-12);
    const float lo[] = {1, 2, 3}, hi[] = {4, 5};
    CHECK_NEAR(doubt_auroc(lo, 3, hi, 2), 1.0, 0);
    CHECK_NEAR(doubt_auroc(hi, 2, lo, 3), 0.0, 0);
    const float same[] = {2, 2, 2};
    CHECK_NEAR(doubt_auroc(same, 3, same, 2), 0.5, 0);
    CHECK(isnan(doubt_auroc(lo, 3, hi, 0)));
    CHECK(isnan(doubt_auroc(lo, 0, hi, 2)));
}

TEST(auroc_matches_pairwise_count)
{
    struct rng r;
    rng_seed(&r, 11);
    for (int trial = 0; trial < 20; trial++) {
        int nn = 1 + (int)rng_below(&r, 60), np = 1 + (int)rng_below(&r, 60);
        float neg[60], pos[60];
        /* Few distinct values: many ties within and across the lists. */
        for (int i = 0; i < nn; i++)
            neg[i] = (float)rng_below(&r, 8);
        for (int i = 0; i < np; i++)
            pos[i] = (float)rng_below(&r, 8) + (trial % 3 == 0 ? 2 : 0);
        double wins = 0;
        for (int i = 0; i < np; i++)
            for (int j = 0; j < nn; j++)
                wins += pos[i] > neg[j] ? 1 : pos[i] == neg[j] ? 0.5 : 0;
        CHECK_NEAR(doubt_auroc(neg, nn, pos, np), wins / ((double)nn * np), 1e-12);
    }
}

TEST(fpr95_hand_worked)
{
    float pos[20];
    for (int i = 0; i < 20; i++)
        pos[i] = (float)(i + 1);
    /* ceil(0.95 * 20) = 19 positives must be flagged: t = 2 (flags 2..20);
     * negatives >= 2 (ties with t flagged): 2, 2, 3, 10 -> 4 of 6. */
    const float neg[] = {0.5f, 1, 2, 2, 3, 10};
    CHECK_NEAR(doubt_fpr_at_tpr(neg, 6, pos, 20, 0.95), 4.0 / 6.0, 1e-12);
    /* All positives: t = 1, negatives >= 1: 5 of 6. */
    CHECK_NEAR(doubt_fpr_at_tpr(neg, 6, pos, 20, 1.0), 5.0 / 6.0, 1e-12);
    /* Tied positives: need 2 of {5, 5, 5, 1} -> t = 5 flags three; the
     * negative 5 is flagged, 4 is not. */
    const float tp[] = {5, 5, 5, 1}, tn[] = {5, 4};
    CHECK_NEAR(doubt_fpr_at_tpr(tn, 2, tp, 4, 0.5), 0.5, 0);
    /* Perfect separation: nothing flagged. */
    const float n2[] = {0, 0.1f}, p2[] = {1, 2, 3};
    CHECK_NEAR(doubt_fpr_at_tpr(n2, 2, p2, 3, 0.95), 0.0, 0);
    CHECK(isnan(doubt_fpr_at_tpr(n2, 0, p2, 3, 0.95)));
}

TEST(fpr_matches_threshold_scan)
{
    struct rng r;
    rng_seed(&r, 5);
    for (int trial = 0; trial < 30; trial++) {
        int nn = 1 + (int)rng_below(&r, 40), np = 1 + (int)rng_below(&r, 40);
        float neg[40], pos[40];
        for (int i = 0; i < nn; i++)
            neg[i] = (float)rng_below(&r, 10);
        for (int i = 0; i < np; i++)
            pos[i] = (float)rng_below(&r, 10) + 1;
        /* Scan every candidate threshold from the top: the first (largest)
         * one whose true-positive rate reaches 95 %. */
        double want = NAN;
        for (int t = 20; t >= -1; t--) {
            int tp = 0, fp = 0;
            for (int i = 0; i < np; i++)
                tp += pos[i] >= t;
            for (int i = 0; i < nn; i++)
                fp += neg[i] >= t;
            if (tp >= 0.95 * np - 1e-9) {
                want = (double)fp / nn;
                break;
            }
        }
        CHECK_NEAR(doubt_fpr_at_tpr(neg, nn, pos, np, 0.95), want, 1e-12);
    }
}

TEST(levels_and_names)
{
    CHECK_EQ_INT(doubt_level_of(0.0f), DOUBT_LEVEL_LOW);
    CHECK_EQ_INT(doubt_level_of(0.7999f), DOUBT_LEVEL_LOW);
    CHECK_EQ_INT(doubt_level_of(DOUBT_MEDIUM), DOUBT_LEVEL_MEDIUM);
    CHECK_EQ_INT(doubt_level_of(0.9499f), DOUBT_LEVEL_MEDIUM);
    CHECK_EQ_INT(doubt_level_of(DOUBT_HIGH), DOUBT_LEVEL_HIGH);
    CHECK(strcmp(doubt_level_name(DOUBT_LEVEL_HIGH), "high") == 0);
    CHECK(strcmp(doubt_method_name(DOUBT_METHOD_MSP), "msp") == 0);
    CHECK(strcmp(doubt_method_name(DOUBT_METHOD_ENERGY), "energy") == 0);
}

/* ---- the calibration hold-out ------------------------------------------------- */

TEST(split_is_stratified_and_seeded)
{
    /* Classes of 10, 7 and 3 images, interleaved; 20 % held out:
     * lround(2) = 2, lround(1.4) = 1, lround(0.6) = 1. */
    int labels[20], n = 0;
    for (int i = 0; i < 10; i++) {
        labels[n++] = 0;
        if (i < 7)
            labels[n++] = 1;
        if (i < 3)
            labels[n++] = 2;
    }
    uint8_t a[20], b[20], c[20];
    CHECK_EQ_INT(doubt_split_train(labels, n, 3, 0.2f, 1, a), 4);
    int per[3] = {0};
    for (int i = 0; i < n; i++)
        per[labels[i]] += a[i];
    CHECK_EQ_INT(per[0], 2);
    CHECK_EQ_INT(per[1], 1);
    CHECK_EQ_INT(per[2], 1);
    doubt_split_train(labels, n, 3, 0.2f, 1, b);
    CHECK(memcmp(a, b, sizeof a) == 0);
    /* The held-out images are the first of each class in the order a
     * generator seeded with the seed shuffles 0..n-1 into (train.c). */
    int order[20];
    for (int i = 0; i < n; i++)
        order[i] = i;
    struct rng r;
    rng_seed(&r, 1);
    rng_shuffle_int(&r, order, n);
    int need[3] = {2, 1, 1};
    uint8_t want[20] = {0};
    for (int i = 0; i < n; i++)
        if (need[labels[order[i]]] > 0) {
            need[labels[order[i]]]--;
            want[order[i]] = 1;
        }
    CHECK(memcmp(a, want, sizeof a) == 0);
    /* Another seed holds out other images (checked: it does for seed 2). */
    doubt_split_train(labels, n, 3, 0.2f, 2, c);
    CHECK(memcmp(a, c, sizeof a) != 0);
}

/* ---- a tiny model on two colour blobs ------------------------------------------ */

#define S 4 /* image side */
#define FRAME (S * S * 3)

/* Colour -> 1x1 convolution (r, g, b, relu(r - b)) -> global average ->
 * dense: blue logit 4 (b - r), red logit 4 (r - b). */
static const char *blob_json =
    "{\"id\": \"blobs\", \"dataset\": \"blobs\","
    " \"input\": {\"height\": 4, \"width\": 4, \"channels\": 3},"
    " \"classes\": [\"blue\", \"red\"],"
    " \"layers\": ["
    "  {\"type\": \"conv2d\", \"name\": \"conv\", \"filters\": 4, \"kernel_size\": 1,"
    "   \"activation\": \"relu\"},"
    "  {\"type\": \"global_avg_pool\", \"name\": \"gap\"},"
    "  {\"type\": \"dense\", \"name\": \"out\", \"units\": 2, \"activation\": \"softmax\"}"
    " ],"
    " \"training\": {\"seed\": 3, \"validation_split\": 0.25}}";

static int open_blobs(struct model *m)
{
    char err[STRATA_ERR_LEN];
    int rc = model_parse_json(m, blob_json, "tests/blobs/model.json", err);
    if (rc) {
        printf("# %s\n", err);
        return rc;
    }
    float *k = m->layers[0].w.kernel; /* [1][1][3][4] */
    const float conv[3][4] = {{1, 0, 0, 1}, {0, 1, 0, 0}, {0, 0, 1, -1}};
    for (int ci = 0; ci < 3; ci++)
        for (int f = 0; f < 4; f++)
            k[ci * 4 + f] = conv[ci][f];
    float *d = m->layers[2].w.kernel; /* [4][2] */
    const float dense[4][2] = {{-4, 4}, {0, 0}, {4, -4}, {0, 0}};
    for (int i = 0; i < 4; i++)
        for (int u = 0; u < 2; u++)
            d[i * 2 + u] = dense[i][u];
    return 0;
}

/* An image of colour (r, g, b): an image-wide offset plus pixel noise. */
static void paint(uint8_t *px, struct rng *r, double red, double green, double blue)
{
    double base[3] = {red, green, blue}, off[3];
    for (int c = 0; c < 3; c++)
        off[c] = 10 * rng_normal(r);
    for (int p = 0; p < S * S; p++)
        for (int c = 0; c < 3; c++) {
            double v = base[c] + off[c] + 12 * rng_normal(r);
            px[p * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lround(v));
        }
}

enum { N_REF = 60, N_CAL = 20, N_TEST = 20, N_OOD = 20 };

struct blobs {
    uint8_t ref[2 * N_REF][FRAME], cal[2 * N_CAL][FRAME], test[2 * N_TEST][FRAME];
    uint8_t green[N_OOD][FRAME], yellow[N_OOD][FRAME];
    int ref_y[2 * N_REF], cal_y[2 * N_CAL], test_y[2 * N_TEST];
};

static void make_blobs(struct blobs *b, uint64_t seed)
{
    struct rng r;
    rng_seed(&r, seed);
    uint8_t(*sets[3])[FRAME] = {b->ref, b->cal, b->test};
    int *ys[3] = {b->ref_y, b->cal_y, b->test_y}, per[3] = {N_REF, N_CAL, N_TEST};
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < 2 * per[s]; i++) {
            int y = i % 2; /* 0 blue, 1 red */
            ys[s][i] = y;
            if (y)
                paint(sets[s][i], &r, 200, 50, 50);
            else
                paint(sets[s][i], &r, 50, 50, 200);
        }
    for (int i = 0; i < N_OOD; i++) {
        paint(b->green[i], &r, 50, 220, 50);
        paint(b->yellow[i], &r, 250, 250, 0); /* red to the softmax: r - b is large */
    }
}

static int calibrate_blobs(struct model *m, const struct blobs *b, struct doubt_model *dm)
{
    char err[STRATA_ERR_LEN];
    struct doubt_params p;
    doubt_params_default(&p);
    int rc = doubt_calibrate_images(m, &p, b->ref[0], b->ref_y, 2 * N_REF, b->cal[0], b->cal_y,
                                    2 * N_CAL, dm, err);
    if (rc)
        printf("# doubt_calibrate_images: %s\n", err);
    return rc;
}

/* The analysis bundle of the test images (ids "c/<i>.png"). */
static int analyse_blobs(struct model *m, const struct blobs *b, struct analysis *a, char *err)
{
    struct analysis_params ap;
    analysis_params_default(&ap);
    char ids[2 * N_TEST][16], *idp[2 * N_TEST];
    for (int i = 0; i < 2 * N_TEST; i++) {
        snprintf(ids[i], sizeof ids[i], "c/%d.png", i);
        idp[i] = ids[i];
    }
    return analysis_run_images(m, &ap, b->test[0], idp, b->test_y, 2 * N_TEST, a, NULL, NULL, err);
}

static double mean(const float *v, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    return s / n;
}

TEST(far_away_images_get_high_doubt)
{
    struct model m;
    struct blobs *b = malloc(sizeof *b);
    if (!b || open_blobs(&m)) {
        free(b);
        CHECK(0);
        return;
    }
    make_blobs(b, 7);
    struct doubt_model dm;
    if (calibrate_blobs(&m, b, &dm)) {
        CHECK(0);
        goto done;
    }
    CHECK_EQ_INT(dm.n_layers, 2); /* conv and gap; the output is not probed */
    CHECK_EQ_INT(dm.n_ref, 2 * N_REF);
    CHECK_EQ_INT(dm.n_cal, 2 * N_CAL);
    CHECK_EQ_INT(dm.layers[0].in_distance, 0);
    CHECK_EQ_INT(dm.layers[1].in_distance, 1);

    char err[STRATA_ERR_LEN];
    float id_d[2 * N_TEST], id_msp[2 * N_TEST], g_d[N_OOD], g_msp[N_OOD], y_d[N_OOD], y_msp[N_OOD];
    int id_pred[2 * N_TEST], y_pred[N_OOD];
    CHECK_EQ_INT(doubt_score_images(&dm, &m, b->test[0], 2 * N_TEST, id_d, id_msp, NULL, id_pred, err), 0);
    CHECK_EQ_INT(doubt_score_images(&dm, &m, b->green[0], N_OOD, g_d, g_msp, NULL, NULL, err), 0);
    CHECK_EQ_INT(doubt_score_images(&dm, &m, b->yellow[0], N_OOD, y_d, y_msp, NULL, y_pred, err), 0);
    int right = 0;
    for (int i = 0; i < 2 * N_TEST; i++)
        right += id_pred[i] == b->test_y[i];
    CHECK_EQ_INT(right, 2 * N_TEST);
    for (int i = 0; i < 2 * N_TEST; i++)
        CHECK(id_d[i] > 0 && id_d[i] < 1);
    /* Every far-away image is more doubtful than every known one. */
    float id_max = 0;
    for (int i = 0; i < 2 * N_TEST; i++)
        id_max = fmaxf(id_max, id_d[i]);
    for (int i = 0; i < N_OOD; i++) {
        CHECK_MSG(g_d[i] > id_max, "green %d: %.4f <= %.4f", i, (double)g_d[i], (double)id_max);
        CHECK_MSG(y_d[i] > id_max, "yellow %d: %.4f <= %.4f", i, (double)y_d[i], (double)id_max);
        CHECK(g_d[i] >= DOUBT_HIGH && y_d[i] >= DOUBT_HIGH);
    }
    CHECK_NEAR(doubt_auroc(id_d, 2 * N_TEST, y_d, N_OOD), 1.0, 0);
    /* Held-out-like images: doubt spread over (0, 1), mean near 1/2. */
    CHECK(mean(id_d, 2 * N_TEST) > 0.2 && mean(id_d, 2 * N_TEST) < 0.8);
    /* The softmax is sure about the yellow images (called red), so MSP cannot
     * tell them from known ones; the doubt can. */
    for (int i = 0; i < N_OOD; i++) {
        CHECK_EQ_INT(y_pred[i], 1);
        CHECK(y_msp[i] > 0.99f);
    }
    float id_u[2 * N_TEST], y_u[N_OOD];
    for (int i = 0; i < 2 * N_TEST; i++)
        id_u[i] = 1 - id_msp[i];
    for (int i = 0; i < N_OOD; i++)
        y_u[i] = 1 - y_msp[i];
    CHECK(doubt_auroc(id_u, 2 * N_TEST, y_u, N_OOD) < 0.6);
    doubt_free(&dm);
done:
    model_free(&m);
    free(b);
}

TEST(held_out_images_get_their_rank)
{
    /* Scoring the calibration images themselves (every one classified
     * right, so the predicted label is the true label used in calibration)
     * gives alpha = a calibration value, and the doubt its plotting position
     * (rank + 1) / (n + 1). */
    struct model m;
    struct blobs *b = malloc(sizeof *b);
    if (!b || open_blobs(&m)) {
        free(b);
        CHECK(0);
        return;
    }
    make_blobs(b, 9);
    struct doubt_model dm;
    if (calibrate_blobs(&m, b, &dm)) {
        CHECK(0);
        goto done;
    }
    int n = 2 * N_CAL;
    float d[2 * N_CAL];
    int pred[2 * N_CAL];
    char err[STRATA_ERR_LEN];
    CHECK_EQ_INT(doubt_score_images(&dm, &m, b->cal[0], n, d, NULL, NULL, pred, err), 0);
    int ranks_seen[2 * N_CAL] = {0};
    for (int i = 0; i < n; i++) {
        CHECK_EQ_INT(pred[i], b->cal_y[i]);
        double pos = d[i] * (n + 1) - 1; /* should be an integer rank */
        long r = lround(pos);
        CHECK_MSG(fabs(pos - r) < 1e-3 && r >= 0 && r < n, "image %d: doubt %.6f", i, (double)d[i]);
        if (r >= 0 && r < n)
            ranks_seen[r]++;
    }
    for (int r = 0; r < n; r++)
        CHECK_EQ_INT(ranks_seen[r], 1);
    doubt_free(&dm);
done:
    model_free(&m);
    free(b);
}

TEST(calibration_is_deterministic)
{
    struct model m;
    struct blobs *b = malloc(sizeof *b);
    if (!b || open_blobs(&m)) {
        free(b);
        CHECK(0);
        return;
    }
    make_blobs(b, 13);
    struct doubt_model x, y;
    if (calibrate_blobs(&m, b, &x) || calibrate_blobs(&m, b, &y)) {
        CHECK(0);
        goto done;
    }
    CHECK(memcmp(x.cal_alpha, y.cal_alpha, (size_t)x.n_cal * sizeof(float)) == 0);
    CHECK(x.energy_median == y.energy_median && x.energy_scale == y.energy_scale);
    for (int l = 0; l < x.n_layers; l++) {
        const struct doubt_layer_ref *a = &x.layers[l], *c = &y.layers[l];
        size_t d = (size_t)a->d;
        CHECK(memcmp(a->white, c->white, d * d * sizeof(float)) == 0);
        CHECK(memcmp(a->centres, c->centres, 2 * d * sizeof(float)) == 0);
        CHECK(memcmp(a->ref, c->ref, (size_t)x.n_ref * d * sizeof(float)) == 0);
        CHECK(memcmp(a->cal_z, c->cal_z, (size_t)x.n_cal * sizeof(float)) == 0);
        CHECK(a->knn_median == c->knn_median && a->maha_scale == c->maha_scale);
    }
    doubt_free(&x);
    doubt_free(&y);
done:
    model_free(&m);
    free(b);
}

TEST(whitening_gives_the_mahalanobis_distance)
{
    /* For each probed layer, |(x - mu_c) W|^2 must equal (x - mu_c)^T S'^-1
     * (x - mu_c) with S' rebuilt from the reference rows by hand, here
     * checked through S' W W^T = I (W W^T = S'^-1). */
    struct model m;
    struct blobs *b = malloc(sizeof *b);
    if (!b || open_blobs(&m)) {
        free(b);
        CHECK(0);
        return;
    }
    make_blobs(b, 17);
    struct doubt_model dm;
    if (calibrate_blobs(&m, b, &dm)) {
        CHECK(0);
        goto done;
    }
    /* conv (4 x 4 x 4): 4 means + 4 spatial spreads; gap (1 x 1 x 4): as is. */
    CHECK_EQ_INT(dm.n_layers, 2);
    CHECK_EQ_INT(dm.layers[0].d, 8);
    CHECK_EQ_INT(dm.layers[1].d, 4);
    for (int l = 0; l < dm.n_layers; l++) {
        const struct doubt_layer_ref *R = &dm.layers[l];
        int d = R->d, n = dm.n_ref;
        double mu[2][8] = {{0}}, cnt[2] = {0}, Sg[8][8] = {{0}};
        for (int i = 0; i < n; i++) {
            int y = b->ref_y[i];
            cnt[y]++;
            for (int j = 0; j < d; j++)
                mu[y][j] += R->ref[(size_t)i * d + j];
        }
        for (int c = 0; c < 2; c++)
            for (int j = 0; j < d; j++)
                mu[c][j] /= cnt[c];
        for (int i = 0; i < n; i++)
            for (int a = 0; a < d; a++)
                for (int c = 0; c < d; c++)
                    Sg[a][c] += (R->ref[(size_t)i * d + a] - mu[b->ref_y[i]][a]) *
                                (R->ref[(size_t)i * d + c] - mu[b->ref_y[i]][c]) / n;
        double tr = 0;
        for (int a = 0; a < d; a++)
            tr += Sg[a][a];
        double s = DOUBT_DEFAULT_SHRINKAGE;
        for (int a = 0; a < d; a++)
            for (int c = 0; c < d; c++)
                Sg[a][c] = (1 - s) * Sg[a][c] + (a == c ? s * tr / d : 0);
        /* S' W W^T should be the identity. */
        double worst = 0;
        for (int a = 0; a < d; a++)
            for (int c = 0; c < d; c++) {
                double v = 0;
                for (int k = 0; k < d; k++) {
                    double wwt = 0;
                    for (int t = 0; t < d; t++)
                        wwt += (double)R->white[k * d + t] * R->white[c * d + t];
                    v += Sg[a][k] * wwt;
                }
                worst = fmax(worst, fabs(v - (a == c)));
            }
        CHECK_MSG(worst < 2e-3, "layer %s: |S' W W^T - I| = %.3g", R->name, worst);
        /* And the whitened centres are (mu_c - mean) W. */
        for (int c = 0; c < 2; c++)
            for (int t = 0; t < d; t++) {
                double v = 0;
                for (int k = 0; k <= t; k++)
                    v += (mu[c][k] - R->mean[k]) * R->white[k * d + t];
                CHECK_NEAR(R->centres[c * d + t], v, 1e-3 * (1 + fabs(v)));
            }
    }
    doubt_free(&dm);
done:
    model_free(&m);
    free(b);
}

TEST(per_layer_view_and_explanation)
{
    struct model m;
    struct blobs *b = malloc(sizeof *b);
    if (!b || open_blobs(&m)) {
        free(b);
        CHECK(0);
        return;
    }
    make_blobs(b, 21);
    struct doubt_model dm;
    struct analysis a = {0};
    struct model_workspace ws = {0};
    char err[STRATA_ERR_LEN];
    if (calibrate_blobs(&m, b, &dm)) {
        CHECK(0);
        goto done;
    }
    /* An analysis of the test images, for the cluster part of the view. */
    if (analyse_blobs(&m, b, &a, err)) {
        printf("# %s\n", err);
        CHECK(0);
        doubt_free(&dm);
        goto done;
    }
    CHECK_EQ_INT(model_workspace_init(&ws, &m, 2, err), 0);
    model_normalise(&m, b->test[1], ws.input);         /* red */
    model_normalise(&m, b->yellow[0], ws.input + FRAME); /* far away, called red */
    model_forward(&m, &ws, ws.input, 2);
    struct doubt_result *r = malloc(2 * sizeof *r);
    CHECK_EQ_INT(doubt_score(&dm, &m, &a, &ws, 0, &r[0], err), 0);
    CHECK_EQ_INT(doubt_score(&dm, &m, NULL, &ws, 1, &r[1], err), 0);
    CHECK_EQ_INT(r[0].predicted, 1);
    CHECK_EQ_INT(r[1].predicted, 1);
    CHECK(r[0].doubt < r[1].doubt);
    CHECK_EQ_INT(r[1].level, DOUBT_LEVEL_HIGH);
    CHECK_NEAR(r[0].credibility + r[0].doubt, 1.0, 1e-6);
    CHECK_EQ_INT(r[0].n_layers, 2);
    CHECK(strcmp(r[0].layers[0].name, "conv") == 0 && strcmp(r[0].layers[1].name, "gap") == 0);
    CHECK_EQ_INT(r[0].layers[1].layer, 1);
    for (int l = 0; l < 2; l++) {
        const struct doubt_layer_view *v = &r[0].layers[l];
        CHECK(v->agreement >= 0 && v->agreement <= 1);
        CHECK_EQ_INT(v->neighbour_class, 1);
        CHECK_EQ_INT(v->agrees, 1);
        CHECK(v->dist_percentile >= 0 && v->dist_percentile <= 1);
        /* The analysis cluster and its majority class, as the bundle has them. */
        CHECK(v->cluster >= 0 && v->cluster < a.layers[v->layer].c.k);
        if (v->cluster >= 0 && v->cluster < a.layers[v->layer].c.k)
            CHECK_EQ_INT(v->cluster_class, a.layers[v->layer].c.cluster_majority[v->cluster]);
        CHECK_EQ_INT(r[1].layers[l].cluster, -1);
        CHECK_EQ_INT(r[1].layers[l].cluster_class, -1);
        /* The far image is further out than every held-out image. */
        CHECK(r[1].layers[l].dist_percentile == 1.0f);
    }
    /* The nonconformity is the documented sum of the three terms. */
    double ez = (r[1].energy - dm.energy_median) / dm.energy_scale;
    CHECK_NEAR(r[1].nonconformity, r[1].distance + r[1].disagreement + fmax(0.0, ez),
               1e-4 * (1 + fabs(r[1].nonconformity)));
    CHECK_NEAR(r[1].distance, r[1].layers[1].dist, 1e-5 * (1 + fabs(r[1].distance)));
    CHECK(strstr(r[0].explanation, "Low doubt") || strstr(r[0].explanation, "Medium doubt"));
    CHECK(strstr(r[0].explanation, "red") != NULL);
    CHECK(strstr(r[1].explanation, "High doubt") != NULL);
    CHECK(strstr(r[1].explanation, "gap") != NULL);
    printf("# %s\n# %s\n", r[0].explanation, r[1].explanation);
    /* Its JSON carries the same values, class names for classes. */
    json_t *j = doubt_result_json(&r[0], &m);
    CHECK(j != NULL);
    if (j) {
        CHECK_NEAR(json_real_value(json_object_get(j, "score")), r[0].doubt, 1e-6);
        CHECK(strcmp(json_string_value(json_object_get(j, "level")), doubt_level_name(r[0].level)) == 0);
        CHECK_NEAR(json_real_value(json_object_get(json_object_get(j, "thresholds"), "high")), DOUBT_HIGH, 1e-7);
        CHECK_NEAR(json_real_value(json_object_get(json_object_get(j, "terms"), "disagreement")),
                   r[0].disagreement, 1e-6);
        json_t *ls = json_object_get(j, "layers");
        CHECK_EQ_INT(json_array_size(ls), 2);
        json_t *l1 = json_array_get(ls, 1);
        CHECK(strcmp(json_string_value(json_object_get(l1, "name")), "gap") == 0);
        CHECK(strcmp(json_string_value(json_object_get(l1, "neighbour_class")), "red") == 0);
        CHECK(json_is_true(json_object_get(l1, "agrees")));
        CHECK_EQ_INT(json_integer_value(json_object_get(l1, "cluster")), r[0].layers[1].cluster);
        CHECK(json_is_string(json_object_get(l1, "cluster_class")));
        CHECK_NEAR(json_real_value(json_object_get(l1, "dist_percentile")), r[0].layers[1].dist_percentile, 1e-6);
        CHECK(json_is_boolean(json_object_get(l1, "in_distance")));
        CHECK(strcmp(json_string_value(json_object_get(j, "explanation")), r[0].explanation) == 0);
        json_decref(j);
    }
    j = doubt_result_json(&r[1], &m);
    CHECK(j && json_is_null(json_object_get(json_array_get(json_object_get(j, "layers"), 0), "cluster")));
    json_decref(j);
    /* An explanation too long for its buffer is cut between characters, not
     * inside one: a class name of 300 two-byte characters overflows it, and
     * of the two names, 'x' in front or not, one has a character across the
     * end of the buffer. */
    char *red = m.classes[1], longname[602];
    for (int shift = 0; shift < 2; shift++) {
        longname[0] = 'x';
        for (int i = 0; i < 300; i++)
            memcpy(longname + shift + 2 * i, "\xc3\xa9", 2); /* e acute */
        longname[shift + 600] = 0;
        m.classes[1] = longname;
        CHECK_EQ_INT(doubt_score(&dm, &m, NULL, &ws, 1, &r[1], err), 0);
        CHECK(strlen(r[1].explanation) >= DOUBT_EXPLAIN_LEN - 2);
        j = doubt_result_json(&r[1], &m);
        CHECK_MSG(j != NULL, "explanation of %zu bytes is not UTF-8", strlen(r[1].explanation));
        json_decref(j);
    }
    m.classes[1] = red;
    /* Another model is refused. */
    struct model other;
    if (model_parse_json(&other,
                         "{\"id\": \"o\", \"dataset\": \"o\", \"input\": {\"height\": 4, \"width\": 4,"
                         " \"channels\": 3}, \"classes\": [\"blue\", \"red\"], \"layers\": ["
                         " {\"type\": \"conv2d\", \"name\": \"conv\", \"filters\": 3, \"kernel_size\": 1},"
                         " {\"type\": \"global_avg_pool\", \"name\": \"gap\"},"
                         " {\"type\": \"dense\", \"name\": \"out\", \"units\": 2, \"activation\": \"softmax\"}]}",
                         "other", err) == 0) {
        CHECK_EQ_INT(doubt_score(&dm, &other, NULL, &ws, 0, &r[0], err), STRATA_E_ARG);
        model_free(&other);
    }
    free(r);
    doubt_free(&dm);
done:
    model_workspace_free(&ws);
    analysis_free(&a);
    model_free(&m);
    free(b);
}

/* ---- one question (question.h) ---------------------------------------------------- */

TEST(question_reads_one_forward_pass)
{
    struct model m;
    struct blobs *b = malloc(sizeof *b);
    struct doubt_result *r = malloc(sizeof *r);
    if (!b || !r || open_blobs(&m)) {
        free(b);
        free(r);
        CHECK(0);
        return;
    }
    make_blobs(b, 5);
    struct doubt_model dm = {0};
    struct analysis a = {0};
    struct model_workspace ws = {0};
    struct question_answer qa = {0}, qb = {0};
    uint8_t *png = NULL;
    size_t len = 0;
    char err[STRATA_ERR_LEN];
    const struct image far = {.w = S, .h = S, .rgb = b->yellow[0]};
    if (calibrate_blobs(&m, b, &dm) || analyse_blobs(&m, b, &a, err) ||
        image_encode_png(&far, &png, &len, err) || model_workspace_init(&ws, &m, 1, err)) {
        printf("# %s\n", err);
        CHECK(0);
        goto done;
    }
    /* The far-away image as PNG bytes: everything read off one forward pass
     * is what the parts give on that pass. LIME refuses a 4 x 4 image; the
     * rest of the answer stands. */
    struct lime_params lp;
    lime_params_default(&lp);
    struct question q = {.analysis = &a, .doubt = &dm, .lime = &lp};
    CHECK_EQ_INT(question_ask(&m, NULL, png, len, &q, &qa, err), 0);
    CHECK_EQ_INT(qa.width, S);
    CHECK_EQ_INT(qa.height, S);
    model_normalise(&m, b->yellow[0], ws.input);
    model_forward(&m, &ws, ws.input, 1);
    CHECK_EQ_INT(doubt_score(&dm, &m, &a, &ws, 0, r, err), 0);
    CHECK(qa.probs && memcmp(qa.probs, model_output(&ws, m.n_layers - 1), 2 * sizeof(float)) == 0);
    CHECK_EQ_INT(qa.predicted, r->predicted);
    CHECK_MSG(qa.doubt && qa.doubt->doubt == r->doubt && qa.doubt->nonconformity == r->nonconformity &&
                  strcmp(qa.doubt->explanation, r->explanation) == 0,
              "doubt %s", qa.doubt_error);
    CHECK(qa.doubt && qa.doubt->level == DOUBT_LEVEL_HIGH);
    struct analysis_point pts[8];
    CHECK(a.n_layers <= 8);
    CHECK_EQ_INT(analysis_locate(&a, &m, &ws, 0, pts, err), 0);
    for (int l = 0; qa.points && l < a.n_layers && l < 8; l++)
        CHECK(qa.points[l].cluster == pts[l].cluster && qa.points[l].x == pts[l].x &&
              qa.points[l].y == pts[l].y);
    CHECK(!qa.explained && qa.explain_error[0]);
    /* With the caller's workspace, the same answer; a cancelled question
     * skips LIME before it starts. */
    atomic_int stop = 1;
    lp.cancel = &stop;
    CHECK_EQ_INT(question_ask(&m, &ws, png, len, &q, &qb, err), 0);
    CHECK(qb.doubt && qa.doubt && qb.doubt->doubt == qa.doubt->doubt);
    CHECK(qb.probs && qa.probs && memcmp(qb.probs, qa.probs, 2 * sizeof(float)) == 0);
    CHECK(strncmp(qb.explain_error, "skipped", 7) == 0);
    question_answer_free(&qb);
    /* Nothing asked but the probabilities: no points, no doubt, no error. */
    const struct question bare = {0};
    CHECK_EQ_INT(question_ask_image(&m, NULL, &far, &bare, &qb, err), 0);
    CHECK(qb.probs && !qb.points && !qb.doubt && !qb.doubt_error[0] && qb.ms_decode == 0);
    CHECK_EQ_INT(qb.predicted, qa.predicted);
    question_answer_free(&qb);
    /* Bytes that are no image fail at decoding. */
    CHECK(question_ask(&m, NULL, (const uint8_t *)"not an image", 12, &q, &qb, err) < 0);
    CHECK_EQ_INT(qb.stage, QUESTION_DECODE);
    question_answer_free(&qb);
done:
    question_answer_free(&qa);
    free(png);
    model_workspace_free(&ws);
    analysis_free(&a);
    doubt_free(&dm);
    model_free(&m);
    free(b);
    free(r);
}

TEST(bad_inputs_are_refused)
{
    struct model m;
    struct blobs *b = malloc(sizeof *b);
    if (!b || open_blobs(&m)) {
        free(b);
        CHECK(0);
        return;
    }
    make_blobs(b, 3);
    char err[STRATA_ERR_LEN];
    struct doubt_params p;
    doubt_params_default(&p);
    struct doubt_model dm;
    int only_blue[2 * N_REF];
    for (int i = 0; i < 2 * N_REF; i++)
        only_blue[i] = 0;
    CHECK_EQ_INT(doubt_calibrate_images(&m, &p, b->ref[0], only_blue, 2 * N_REF, b->cal[0], b->cal_y,
                                        2 * N_CAL, &dm, err),
                 STRATA_E_ARG);
    CHECK(strstr(err, "red") != NULL);
    CHECK_EQ_INT(doubt_calibrate_images(&m, &p, b->ref[0], b->ref_y, 2 * N_REF, b->cal[0], b->cal_y, 1,
                                        &dm, err),
                 STRATA_E_ARG);
    int bad[2 * N_CAL];
    memcpy(bad, b->cal_y, sizeof bad);
    bad[3] = 2;
    CHECK_EQ_INT(doubt_calibrate_images(&m, &p, b->ref[0], b->ref_y, 2 * N_REF, b->cal[0], bad,
                                        2 * N_CAL, &dm, err),
                 STRATA_E_ARG);
    p.shrinkage = 1.5f;
    CHECK_EQ_INT(doubt_calibrate_images(&m, &p, b->ref[0], b->ref_y, 2 * N_REF, b->cal[0], b->cal_y,
                                        2 * N_CAL, &dm, err),
                 STRATA_E_ARG);
    CHECK(dm.layers == NULL && dm.cal_alpha == NULL);
    model_free(&m);
    free(b);
}

/* ---- files and folders ---------------------------------------------------------------- */

static char tmp_root[64];

static int write_png(const char *path, const uint8_t *rgb)
{
    char err[STRATA_ERR_LEN];
    struct image img = {S, S, (uint8_t *)rgb};
    uint8_t *buf;
    size_t len;
    int rc = image_encode_png(&img, &buf, &len, err);
    if (rc == 0) {
        rc = image_write_file(path, buf, len, err);
        free(buf);
    }
    if (rc)
        printf("# %s\n", err);
    return rc;
}

/* root/blobs/{train,test}/{blue,red}, root/other/test/x (another dataset),
 * root/extra/a/b (a loose folder with a text file and a broken PNG). */
static int make_tree(const struct blobs *b)
{
    snprintf(tmp_root, sizeof tmp_root, "/tmp/strata-doubt-XXXXXX");
    if (!mkdtemp(tmp_root))
        return -1;
    const char *dirs[] = {"blobs", "blobs/train", "blobs/train/blue", "blobs/train/red",
                          "blobs/test", "blobs/test/blue", "blobs/test/red", "other",
                          "other/test", "other/test/x", "extra", "extra/a", "extra/a/b", "cache"};
    char path[256];
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        snprintf(path, sizeof path, "%s/%s", tmp_root, dirs[i]);
        if (mkdir(path, 0755))
            return -1;
    }
    const char *cls[2] = {"blue", "red"};
    for (int i = 0; i < 2 * N_REF; i++) {
        snprintf(path, sizeof path, "%s/blobs/train/%s/%03d.png", tmp_root, cls[b->ref_y[i]], i);
        if (write_png(path, b->ref[i]))
            return -1;
    }
    for (int i = 0; i < 2 * N_TEST; i++) {
        snprintf(path, sizeof path, "%s/blobs/test/%s/%03d.png", tmp_root, cls[b->test_y[i]], i);
        if (write_png(path, b->test[i]))
            return -1;
    }
    for (int i = 0; i < 8; i++) {
        snprintf(path, sizeof path, "%s/other/test/x/%d.png", tmp_root, i);
        if (write_png(path, b->green[i]))
            return -1;
        snprintf(path, sizeof path, "%s/extra/%s%d.png", tmp_root, i % 2 ? "a/b/" : "", i);
        if (write_png(path, b->yellow[i]))
            return -1;
    }
    snprintf(path, sizeof path, "%s/extra/a/notes.txt", tmp_root);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs("not an image\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/extra/a/broken.png", tmp_root);
    if (!(f = fopen(path, "w")))
        return -1;
    fputs("\x89PNG but not really", f);
    fclose(f);
    return 0;
}

static void remove_tree(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (strncmp(dir, "/tmp/strata-doubt-", 18) == 0 && system(cmd) != 0)
        printf("# could not remove %s\n", dir);
}

TEST(cache_files_and_evaluation)
{
    struct model m;
    struct blobs *b = malloc(sizeof *b);
    if (!b || open_blobs(&m)) {
        free(b);
        CHECK(0);
        return;
    }
    make_blobs(b, 29);
    if (make_tree(b)) {
        printf("# cannot build the test folders\n");
        CHECK(0);
        model_free(&m);
        free(b);
        return;
    }
    char err[STRATA_ERR_LEN], cache[128], path[256];
    snprintf(cache, sizeof cache, "%s/cache", tmp_root);
    struct doubt_params p;
    doubt_params_default(&p);
    struct doubt_model x = {0}, y = {0}, z = {0};
    struct doubt_report r = {0}, r2 = {0};
    int rc = doubt_load_or_calibrate(&m, &p, tmp_root, cache, &x, NULL, NULL, err);
    CHECK_EQ_INT(rc, 0);
    if (rc) {
        printf("# %s\n", err);
        goto done;
    }
    /* model.json: validation_split 0.25 of 60 per class -> 15 held out. */
    CHECK_EQ_INT(x.cached, 0);
    CHECK_EQ_INT(x.n_cal, 30);
    CHECK_EQ_INT(x.n_ref, 90);
    CHECK(x.key != 0 && x.cache_path[0]);
    CHECK_EQ_INT(doubt_load_or_calibrate(&m, &p, tmp_root, cache, &y, NULL, NULL, err), 0);
    CHECK_EQ_INT(y.cached, 1);
    CHECK(y.key == x.key);
    CHECK(memcmp(x.cal_alpha, y.cal_alpha, (size_t)x.n_cal * sizeof(float)) == 0);
    CHECK(memcmp(x.layers[1].white, y.layers[1].white,
                 (size_t)x.layers[1].d * x.layers[1].d * sizeof(float)) == 0);

    /* Same scores from the loaded model. */
    float dx[2 * N_TEST], dy[2 * N_TEST];
    CHECK_EQ_INT(doubt_score_images(&x, &m, b->test[0], 2 * N_TEST, dx, NULL, NULL, NULL, err), 0);
    CHECK_EQ_INT(doubt_score_images(&y, &m, b->test[0], 2 * N_TEST, dy, NULL, NULL, NULL, err), 0);
    CHECK(memcmp(dx, dy, sizeof dx) == 0);

    /* Refusals: another key, a flipped byte, a truncated file, no file. */
    CHECK_EQ_INT(doubt_load(x.cache_path, x.key ^ 1, &z, err), STRATA_E_FORMAT);
    snprintf(path, sizeof path, "%s/copy.doubt", tmp_root);
    CHECK_EQ_INT(doubt_save(&x, path, err), 0);
    CHECK_EQ_INT(doubt_load(path, 0, &z, err), 0);
    CHECK(z.n_layers == x.n_layers && z.cal_alpha[3] == x.cal_alpha[3]);
    doubt_free(&z);
    FILE *f = fopen(path, "r+b");
    if (f) {
        fseek(f, 200, SEEK_SET);
        int c = fgetc(f);
        fseek(f, 200, SEEK_SET);
        fputc(c ^ 0x40, f);
        fclose(f);
    }
    CHECK_EQ_INT(doubt_load(path, 0, &z, err), STRATA_E_FORMAT);
    CHECK(strstr(err, "checksum") != NULL);
    CHECK_EQ_INT(doubt_save(&x, path, err), 0);
    CHECK_EQ_INT(truncate(path, 100), 0);
    CHECK_EQ_INT(doubt_load(path, 0, &z, err), STRATA_E_FORMAT);
    snprintf(path, sizeof path, "%s/none.doubt", tmp_root);
    CHECK_EQ_INT(doubt_load(path, 0, &z, err), STRATA_E_NOTFOUND);
    /* A corrupt cache file is recomputed, with a note. */
    f = fopen(x.cache_path, "r+b");
    if (f) {
        fseek(f, 300, SEEK_SET);
        int c = fgetc(f);
        fseek(f, 300, SEEK_SET);
        fputc(c ^ 0x01, f);
        fclose(f);
    }
    CHECK_EQ_INT(doubt_load_or_calibrate(&m, &p, tmp_root, cache, &z, NULL, NULL, err), 0);
    CHECK_EQ_INT(z.cached, 0);
    CHECK(strstr(z.cache_note, "recomputed") != NULL);
    CHECK(memcmp(x.cal_alpha, z.cal_alpha, (size_t)x.n_cal * sizeof(float)) == 0);

    /* The evaluation: blobs/test in distribution; other/test and extra out. */
    snprintf(path, sizeof path, "%s/extra", tmp_root);
    const char *extra[1] = {path};
    rc = doubt_report_run(&x, &m, tmp_root, extra, 1, 1, &r, NULL, NULL, err);
    CHECK_EQ_INT(rc, 0);
    if (rc) {
        printf("# %s\n", err);
        goto done;
    }
    CHECK_EQ_INT(r.n_sources, 3);
    CHECK(strcmp(r.sources[0].name, "blobs/test") == 0 && !r.sources[0].ood);
    CHECK(strcmp(r.sources[1].name, "other/test") == 0 && r.sources[1].ood);
    CHECK_EQ_INT(r.sources[2].n, 8); /* the broken PNG skipped, the text file ignored */
    CHECK_EQ_INT(r.n_id, 2 * N_TEST);
    CHECK_EQ_INT(r.n_ood, 16);
    CHECK_NEAR(r.accuracy, 1.0, 0);
    CHECK_NEAR(r.auroc[DOUBT_METHOD_DOUBT], 1.0, 0);
    CHECK_NEAR(r.fpr95[DOUBT_METHOD_DOUBT], 0.0, 0);
    CHECK(isnan(r.auroc_errors[DOUBT_METHOD_DOUBT])); /* no wrong prediction */
    CHECK_NEAR(r.auroc[DOUBT_METHOD_DOUBT],
               doubt_auroc(r.id_score[0], r.n_id, r.ood_score[0], r.n_ood), 0);
    /* The report's JSON: metrics by method, a null for the undefined one,
     * histograms that count every image once. */
    json_t *j = doubt_report_json(&r, 10);
    CHECK(j != NULL);
    if (j) {
        CHECK_NEAR(json_real_value(json_object_get(json_object_get(j, "auroc"), "doubt")), 1.0, 0);
        CHECK(json_is_null(json_object_get(json_object_get(j, "auroc_errors"), "msp")));
        CHECK(json_is_real(json_object_get(json_object_get(j, "fpr95"), "energy")));
        json_t *h = json_object_get(j, "histogram");
        CHECK_EQ_INT(json_array_size(json_object_get(h, "edges")), 11);
        long n_id = 0, n_ood = 0;
        for (size_t k = 0; k < 10; k++) {
            n_id += json_integer_value(json_array_get(json_object_get(h, "id"), k));
            n_ood += json_integer_value(json_array_get(json_object_get(h, "ood"), k));
        }
        CHECK_EQ_INT(n_id, r.n_id);
        CHECK_EQ_INT(n_ood, r.n_ood);
        /* Far-away images sit in the top bin. */
        CHECK_EQ_INT(json_integer_value(json_array_get(json_object_get(h, "ood"), 9)), r.n_ood);
        CHECK_EQ_INT(json_array_size(json_object_get(j, "sources")), 3);
        json_decref(j);
    }
    /* The baselines' scores are 1 - MSP and the energy, same images. */
    float msp[2 * N_TEST], en[2 * N_TEST];
    CHECK_EQ_INT(doubt_score_images(&x, &m, b->test[0], 2 * N_TEST, NULL, msp, en, NULL, err), 0);
    /* The folder lists blue/000.png, blue/002.png, ..., then red/001.png, ... */
    double worst = 0;
    int at = 0;
    for (int y = 0; y < 2; y++)
        for (int i = 0; i < 2 * N_TEST; i++)
            if (b->test_y[i] == y) {
                worst = fmax(worst, fabs(r.id_score[DOUBT_METHOD_MSP][at] - (1 - msp[i])));
                worst = fmax(worst, fabs(r.id_score[DOUBT_METHOD_ENERGY][at] - en[i]));
                at++;
            }
    CHECK_MSG(worst < 1e-6, "largest difference %.3g", worst);

    /* The cached default evaluation: computed, then read back identical. */
    CHECK_EQ_INT(doubt_report_load_or_run(&x, &m, tmp_root, NULL, cache, &r2, NULL, NULL, err), 0);
    struct doubt_report r3 = {0};
    CHECK_EQ_INT(doubt_report_load_or_run(&x, &m, tmp_root, NULL, cache, &r3, NULL, NULL, err), 0);
    CHECK_EQ_INT(r2.n_ood, 8);
    CHECK_EQ_INT(r3.n_ood, 8);
    CHECK_EQ_INT(r3.n_sources, 2);
    if (r2.n_ood == r3.n_ood && r2.n_id == r3.n_id)
        for (int k = 0; k < DOUBT_N_METHODS; k++)
            CHECK(memcmp(r2.ood_score[k], r3.ood_score[k], (size_t)r2.n_ood * sizeof(float)) == 0);
    CHECK(r2.auroc[0] == r3.auroc[0]);
    doubt_report_free(&r3);
    /* No out-of-distribution image at all is an error. */
    struct doubt_report r4;
    CHECK_EQ_INT(doubt_report_run(&x, &m, tmp_root, NULL, 0, 0, &r4, NULL, NULL, err), STRATA_E_ARG);
done:
    doubt_report_free(&r);
    doubt_report_free(&r2);
    doubt_free(&x);
    doubt_free(&y);
    doubt_free(&z);
    remove_tree(tmp_root);
    model_free(&m);
    free(b);
}

int main(void)
{
    RUN(features_hand_worked);
    RUN(auroc_hand_worked_with_ties);
    RUN(auroc_matches_pairwise_count);
    RUN(fpr95_hand_worked);
    RUN(fpr_matches_threshold_scan);
    RUN(levels_and_names);
    RUN(split_is_stratified_and_seeded);
    RUN(far_away_images_get_high_doubt);
    RUN(held_out_images_get_their_rank);
    RUN(calibration_is_deterministic);
    RUN(whitening_gives_the_mahalanobis_distance);
    RUN(per_layer_view_and_explanation);
    RUN(question_reads_one_forward_pass);
    RUN(bad_inputs_are_refused);
    RUN(cache_files_and_evaluation);
    return check_done();
}
