/*
 * test_analysis.c — the layer-analysis pipeline on a tiny model with
 * hand-set weights that sorts solid-colour images by their dominant channel.
 *
 * The model (8x8 RGB input, classes blue, green, red):
 *   conv  1x1, 3 filters, identity kernel, bias -0.1, relu  -> 8x8x3
 *   pool  max 2x2                                          -> 4x4x3
 *   gap   global average                                   -> 3
 *   flat, drop (same values: their features are gap's)
 *   out   dense 3, kernel 10 * (r -> red, g -> green, b -> blue), softmax
 * Images (PNG files in a temporary dataset tree, so the loader runs too):
 * one dominant channel near 190, the others near 40, uniform noise; three
 * "confusers" sit in a folder whose colour is not theirs and are
 * misclassified on purpose.
 *
 * Every expected value comes from a direct re-implementation of that model
 * in double over the generated pixels (never from the engine): predictions,
 * probabilities, confusion matrix, misclassified list, the feature rows of
 * the conv and gap layers; the clusters of every layer must be the partition
 * by dominant colour (the data has exactly three tight groups), hence the
 * paths; elbow k = 1 is the total sum of squares; the silhouette is
 * recomputed naively. Then the cache: save/load identical to the byte,
 * corrupt and truncated files refused, keys that change with weights, data
 * and parameters; analysis_locate on images of the set; recluster.
 */
#include "analysis.h"
#include "check.h"

#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "feature_maps.h"
#include "image.h"
#include "infer.h"
#include "model.h"
#include "rng.h"

#define W 8
#define N_IMG 33

static const char *tiny_json =
    "{\"id\": \"tiny\", \"dataset\": \"tiny\","
    " \"input\": {\"height\": 8, \"width\": 8, \"channels\": 3},"
    " \"classes\": [\"blue\", \"green\", \"red\"],"
    " \"layers\": ["
    "  {\"type\": \"conv2d\", \"name\": \"conv\", \"filters\": 3, \"kernel_size\": 1,"
    "   \"activation\": \"relu\"},"
    "  {\"type\": \"maxpool2d\", \"name\": \"pool\", \"pool_size\": 2},"
    "  {\"type\": \"global_avg_pool\", \"name\": \"gap\"},"
    "  {\"type\": \"flatten\", \"name\": \"flat\"},"
    "  {\"type\": \"dropout\", \"name\": \"drop\", \"rate\": 0.5},"
    "  {\"type\": \"dense\", \"name\": \"out\", \"units\": 3, \"activation\": \"softmax\"}"
    " ]}";

/* RGB channel -> class: r -> red (2), g -> green (1), b -> blue (0). */
static const int class_of_channel[3] = {2, 1, 0};

static char root[64];
static uint8_t pixels[N_IMG][W * W * 3];
static int truth[N_IMG], colour[N_IMG]; /* folder class, class of the dominant colour */
static char ids[N_IMG][32];

static const struct {
    const char *name;
    int count;
    int confusers[2]; /* image numbers within the class painted in another colour */
    int confuser_class;
} folders[3] = {{"blue", 10, {4, -1}, 2}, {"green", 12, {-1, -1}, 0}, {"red", 11, {3, 8}, 1}};

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void make_dir(const char *rel)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    if (mkdir(path, 0755) != 0)
        abort();
}

/* Generates the images and writes them as root/tiny/test/<class>/iNN.png,
 * in the order the dataset lists them (class-major, names sorted). */
static void build_tree(void)
{
    snprintf(root, sizeof root, "/tmp/strata-test-analysis-XXXXXX");
    if (!mkdtemp(root))
        abort();
    make_dir("tiny");
    make_dir("tiny/test");
    make_dir("clean");
    make_dir("clean/test");
    struct rng r;
    rng_seed(&r, 42);
    int i = 0;
    for (int c = 0; c < 3; c++) {
        char rel[128];
        snprintf(rel, sizeof rel, "tiny/test/%s", folders[c].name);
        make_dir(rel);
        snprintf(rel, sizeof rel, "clean/test/%s", folders[c].name);
        make_dir(rel);
        for (int j = 0; j < folders[c].count; j++, i++) {
            int cls = c;
            if (j == folders[c].confusers[0] || j == folders[c].confusers[1])
                cls = folders[c].confuser_class;
            int channel = cls == 0 ? 2 : cls == 1 ? 1 : 0;
            truth[i] = c;
            colour[i] = cls;
            for (int p = 0; p < W * W; p++)
                for (int ch = 0; ch < 3; ch++) {
                    int base = ch == channel ? 190 : 40;
                    pixels[i][p * 3 + ch] = (uint8_t)(base - 20 + (int)rng_below(&r, 41));
                }
            struct image img = {W, W, pixels[i]};
            uint8_t *png;
            size_t len;
            char err[STRATA_ERR_LEN], path[256];
            if (image_encode_png(&img, &png, &len, err))
                abort();
            snprintf(ids[i], sizeof ids[i], "%s/i%02d.png", folders[c].name, j);
            snprintf(path, sizeof path, "%s/tiny/test/%s", root, ids[i]);
            if (image_write_file(path, png, len, err))
                abort();
            /* The "clean" dataset: the same images without the confusers. */
            snprintf(path, sizeof path, "%s/clean/test/%s", root, ids[i]);
            if (cls == c && image_write_file(path, png, len, err))
                abort();
            free(png);
        }
    }
    if (i != N_IMG)
        abort();
}

static int open_tiny(struct model *m)
{
    char err[STRATA_ERR_LEN];
    int rc = model_parse_json(m, tiny_json, "tests/tiny/model.json", err);
    if (rc) {
        printf("# %s\n", err);
        return rc;
    }
    struct layer *conv = &m->layers[0], *out = &m->layers[5];
    for (int ci = 0; ci < 3; ci++)
        for (int co = 0; co < 3; co++)
            conv->w.kernel[ci * 3 + co] = ci == co ? 1.0f : 0.0f;
    for (int co = 0; co < 3; co++)
        conv->w.bias[co] = -0.1f;
    for (int ch = 0; ch < 3; ch++)
        for (int u = 0; u < 3; u++)
            out->w.kernel[ch * 3 + u] = class_of_channel[ch] == u ? 10.0f : 0.0f;
    return 0;
}

/* The model, by hand, in double: conv features (2x2 grid averages of the
 * conv map), gap features, probabilities. */
static void reference(int i, double conv_feat[12], double pool_feat[12], double gap[3],
                      double prob[3])
{
    double conv[W][W][3], pool[4][4][3];
    for (int y = 0; y < W; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) {
                double v = pixels[i][(y * W + x) * 3 + c] / 255.0 - 0.1;
                conv[y][x][c] = v > 0 ? v : 0;
            }
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++)
            for (int c = 0; c < 3; c++) {
                double mx = conv[2 * y][2 * x][c];
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++)
                        if (conv[2 * y + dy][2 * x + dx][c] > mx)
                            mx = conv[2 * y + dy][2 * x + dx][c];
                pool[y][x][c] = mx;
            }
    for (int gy = 0; gy < 2; gy++)
        for (int gx = 0; gx < 2; gx++)
            for (int c = 0; c < 3; c++) {
                double s = 0, t = 0;
                for (int y = 0; y < 4; y++)
                    for (int x = 0; x < 4; x++)
                        s += conv[4 * gy + y][4 * gx + x][c];
                for (int y = 0; y < 2; y++)
                    for (int x = 0; x < 2; x++)
                        t += pool[2 * gy + y][2 * gx + x][c];
                conv_feat[(gy * 2 + gx) * 3 + c] = s / 16;
                pool_feat[(gy * 2 + gx) * 3 + c] = t / 4;
            }
    for (int c = 0; c < 3; c++) {
        double s = 0;
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 4; x++)
                s += pool[y][x][c];
        gap[c] = s / 16;
    }
    double logit[3] = {0}, mx = -1e300, z = 0;
    for (int ch = 0; ch < 3; ch++)
        logit[class_of_channel[ch]] += 10 * gap[ch];
    for (int u = 0; u < 3; u++)
        mx = logit[u] > mx ? logit[u] : mx;
    for (int u = 0; u < 3; u++)
        z += exp(logit[u] - mx);
    for (int u = 0; u < 3; u++)
        prob[u] = exp(logit[u] - mx) / z;
}

static int argmax3(const double *v)
{
    int b = 0;
    for (int i = 1; i < 3; i++)
        if (v[i] > v[b])
            b = i;
    return b;
}

/* labels equal ref up to a renaming of the ids (a bijection). */
static int same_partition(const int *labels, const int *ref, int n)
{
    int map[300], back[300];
    for (int j = 0; j < 300; j++)
        map[j] = back[j] = -1;
    for (int i = 0; i < n; i++) {
        int a = labels[i], b = ref[i];
        if (map[a] < 0 && back[b] < 0) {
            map[a] = b;
            back[b] = a;
        }
        if (map[a] != b || back[b] != a)
            return 0;
    }
    return 1;
}

static int run_default(struct model *m, struct analysis *a, struct analysis_params *p)
{
    char err[STRATA_ERR_LEN];
    int rc = analysis_run(m, p, root, a, NULL, NULL, err);
    if (rc)
        printf("# analysis_run: %s\n", err);
    return rc;
}

TEST(predictions_confusion_and_misclassified)
{
    struct model m;
    if (open_tiny(&m))
        return;
    struct analysis_params p;
    analysis_params_default(&p);
    struct analysis a;
    CHECK_EQ_INT(run_default(&m, &a, &p), 0);
    if (!a.n) {
        model_free(&m);
        return;
    }
    CHECK_EQ_INT(a.n, N_IMG);
    CHECK_EQ_INT(a.n_layers, 6);
    CHECK_EQ_INT(a.n_classes, 3);
    CHECK(strcmp(a.model_id, "tiny") == 0 && strcmp(a.split, "test") == 0);
    long cm[9] = {0};
    int correct = 0, n_miss = 0;
    for (int i = 0; i < N_IMG; i++) {
        double cf[12], pf[12], gap[3], prob[3];
        reference(i, cf, pf, gap, prob);
        int pred = argmax3(prob);
        CHECK_EQ_INT(pred, colour[i]); /* the model reads the dominant colour */
        CHECK(strcmp(a.image_ids[i], ids[i]) == 0);
        CHECK_EQ_INT(a.labels[i], truth[i]);
        CHECK_EQ_INT(a.pred[i], pred);
        for (int u = 0; u < 3; u++)
            CHECK_NEAR(a.probs[i * 3 + u], prob[u], 1e-5);
        cm[truth[i] * 3 + pred]++;
        correct += pred == truth[i];
        if (pred != truth[i]) {
            CHECK(n_miss < a.n_missed);
            if (n_miss < a.n_missed) {
                const struct analysis_miss *ms = &a.missed[n_miss];
                CHECK_EQ_INT(ms->index, i);
                CHECK_EQ_INT(ms->truth, truth[i]);
                CHECK_EQ_INT(ms->pred, pred);
                CHECK_NEAR(ms->prob, prob[pred], 1e-5);
                CHECK_NEAR(ms->prob_true, prob[truth[i]], 1e-5);
            }
            n_miss++;
        }
    }
    CHECK_EQ_INT(n_miss, 3);
    CHECK_EQ_INT(a.n_missed, n_miss);
    for (int t = 0; t < 9; t++)
        CHECK_EQ_INT(a.confusion[t], cm[t]);
    CHECK_NEAR(a.accuracy, (double)correct / N_IMG, 1e-12);
    analysis_free(&a);
    model_free(&m);
}

TEST(features_clusters_paths_and_scores)
{
    struct model m;
    if (open_tiny(&m))
        return;
    struct analysis_params p;
    analysis_params_default(&p);
    struct analysis a;
    if (run_default(&m, &a, &p)) {
        CHECK(0);
        model_free(&m);
        return;
    }
    /* Feature sizes and sharing. */
    const int want_d[6] = {12, 12, 3, 3, 3, 3};
    const int want_same[6] = {-1, -1, -1, 2, 2, -1};
    for (int l = 0; l < 6; l++) {
        CHECK_EQ_INT(a.layers[l].d, want_d[l]);
        CHECK_EQ_INT(a.layers[l].same_as, want_same[l]);
    }
    CHECK(a.layers[3].features == a.layers[2].features);
    CHECK(analysis_features(&a, 4) == a.layers[2].features);
    CHECK(strcmp(a.layers[3].type, "flatten") == 0 && a.layers[3].out.c == 3);
    CHECK_EQ_INT(a.layers[0].grid, 2);
    CHECK_EQ_INT(a.layers[2].grid, 0);

    double max_err = 0;
    for (int i = 0; i < N_IMG; i++) {
        double cf[12], pf[12], gap[3], prob[3];
        reference(i, cf, pf, gap, prob);
        for (int j = 0; j < 12; j++) {
            max_err = fmax(max_err, fabs(a.layers[0].features[i * 12 + j] - cf[j]));
            max_err = fmax(max_err, fabs(a.layers[1].features[i * 12 + j] - pf[j]));
        }
        for (int j = 0; j < 3; j++) {
            max_err = fmax(max_err, fabs(a.layers[2].features[i * 3 + j] - gap[j]));
            max_err = fmax(max_err, fabs(a.layers[5].features[i * 3 + j] - prob[j]));
        }
    }
    CHECK_MSG(max_err < 1e-5, "max feature error %g", max_err);

    /* Every layer sees three tight groups, one per dominant colour: the
     * automatic k is 3 and the clusters are that partition, so each image's
     * path is determined by its colour and there are exactly 3 paths. */
    int per_colour[3] = {0};
    for (int i = 0; i < N_IMG; i++)
        per_colour[colour[i]]++;
    for (int l = 0; l < 6; l++) {
        const struct analysis_layer *L = &a.layers[l];
        CHECK_MSG(L->k_auto == 3 && L->c.k == 3, "layer %s: k_auto %d, k %d", L->name,
                  L->k_auto, L->c.k);
        CHECK_MSG(same_partition(L->c.labels, colour, N_IMG), "layer %s", L->name);
        /* Elbow at k = 1: the total sum of squares around the mean. */
        const float *X = analysis_features(&a, l);
        double mean[12] = {0}, tss = 0, sum_d2 = 0;
        for (int i = 0; i < N_IMG; i++)
            for (int j = 0; j < L->d; j++)
                mean[j] += X[i * L->d + j] / (double)N_IMG;
        for (int i = 0; i < N_IMG; i++)
            for (int j = 0; j < L->d; j++)
                tss += (X[i * L->d + j] - mean[j]) * (X[i * L->d + j] - mean[j]);
        CHECK_NEAR(L->elbow[0], tss, 1e-6 * tss + 1e-9);
        CHECK(L->elbow[2] < 0.1 * L->elbow[0]);
        for (int i = 0; i < N_IMG; i++)
            sum_d2 += L->c.dist2[i];
        CHECK_NEAR(L->c.inertia, sum_d2, 1e-5 * sum_d2 + 1e-9);
        /* Scores against the true classes, counted here. */
        long table[3][3] = {{0}};
        for (int i = 0; i < N_IMG; i++)
            table[L->c.labels[i]][truth[i]]++;
        long maj_sum = 0;
        for (int j = 0; j < 3; j++) {
            long mx = 0;
            int arg = 0;
            for (int t = 0; t < 3; t++)
                if (table[j][t] > mx)
                    mx = table[j][t], arg = t;
            maj_sum += mx;
            CHECK_EQ_INT(L->c.cluster_majority[j], arg);
            CHECK_EQ_INT(L->c.sizes[j], per_colour[L->c.cluster_majority[j]]);
        }
        CHECK_NEAR(L->c.purity, (double)maj_sum / N_IMG, 1e-12);
        CHECK_NEAR(L->c.purity, 30.0 / 33.0, 1e-12); /* the 3 confusers are the minority */
        CHECK(L->c.ari > 0.5 && L->c.ari < 1);
        /* Silhouette, naively. */
        double s_sum = 0;
        for (int i = 0; i < N_IMG; i++) {
            double dsum[3] = {0};
            for (int j = 0; j < N_IMG; j++) {
                double dd = 0;
                for (int t = 0; t < L->d; t++) {
                    double v = (double)X[i * L->d + t] - X[j * L->d + t];
                    dd += v * v;
                }
                dsum[L->c.labels[j]] += sqrt(dd);
            }
            int own = L->c.labels[i];
            double ai = dsum[own] / (L->c.sizes[own] - 1), bi = 1e300;
            for (int j = 0; j < 3; j++)
                if (j != own && dsum[j] / L->c.sizes[j] < bi)
                    bi = dsum[j] / L->c.sizes[j];
            s_sum += (bi - ai) / fmax(ai, bi);
        }
        CHECK_NEAR(L->c.silhouette, s_sum / N_IMG, 1e-4);
        /* PCA: centred points, PC1 carries more variance than PC2. */
        double mx = 0, my = 0, vx = 0, vy = 0;
        for (int i = 0; i < N_IMG; i++) {
            mx += L->points[2 * i];
            my += L->points[2 * i + 1];
            vx += L->points[2 * i] * L->points[2 * i];
            vy += L->points[2 * i + 1] * L->points[2 * i + 1];
        }
        CHECK_NEAR(mx / N_IMG, 0, 1e-5);
        CHECK_NEAR(my / N_IMG, 0, 1e-5);
        CHECK(vx >= vy);
        CHECK(L->pca_ratio[0] >= L->pca_ratio[1] && L->pca_ratio[0] + L->pca_ratio[1] <= 1 + 1e-9);
        CHECK(L->pca_ratio[0] + L->pca_ratio[1] > 0.9); /* three groups lie in a plane */
        /* Distance statistics of cluster 0. */
        const struct analysis_dist_stats *st = &L->c.dist_stats[0];
        double dmax = 0, dsum0 = 0;
        for (int i = 0; i < N_IMG; i++)
            if (L->c.labels[i] == 0) {
                dmax = fmax(dmax, L->c.dist2[i]);
                dsum0 += L->c.dist2[i];
            }
        CHECK_EQ_INT(st->count, L->c.sizes[0]);
        CHECK_NEAR(st->max, dmax, 1e-12);
        CHECK_NEAR(st->mean, dsum0 / st->count, 1e-6 * dmax + 1e-12);
        CHECK(st->q50 <= st->q90 && st->q90 <= st->q95 && st->q95 <= st->max);
    }
    CHECK_EQ_INT(a.n_paths, 3);
    for (int i = 0; i < N_IMG; i++) {
        CHECK_EQ_INT(a.path_count[a.path_id[i]], per_colour[colour[i]]);
        for (int j = 0; j < i; j++)
            CHECK((a.path_id[i] == a.path_id[j]) == (colour[i] == colour[j]));
        int path[6];
        analysis_path(&a, i, path);
        for (int l = 0; l < 6; l++)
            CHECK_EQ_INT(path[l], a.layers[l].c.labels[i]);
    }
    analysis_free(&a);
    model_free(&m);
}

TEST(overrides_recluster_and_errors)
{
    struct model m;
    if (open_tiny(&m))
        return;
    struct analysis_params p;
    analysis_params_default(&p);
    char err[STRATA_ERR_LEN];
    CHECK_EQ_INT(analysis_params_add_k(&p, "pool=4", err), 0);
    CHECK_EQ_INT(analysis_params_add_k(&p, "3=2", err), 0);  /* flat, by index */
    CHECK_EQ_INT(analysis_params_add_k(&p, "pool=5", err), 0); /* replaces pool=4 */
    CHECK_EQ_INT(p.n_overrides, 2);
    CHECK_EQ_INT(analysis_params_add_k(&p, "pool", err), STRATA_E_ARG);
    CHECK_EQ_INT(analysis_params_add_k(&p, "pool=0", err), STRATA_E_ARG);
    CHECK_EQ_INT(analysis_params_add_k(&p, "=3", err), STRATA_E_ARG);
    CHECK_EQ_INT(analysis_params_add_k(&p, "pool=x", err), STRATA_E_ARG);
    /* K in plain digits only. */
    CHECK_EQ_INT(analysis_params_add_k(&p, "pool=+3", err), STRATA_E_ARG);
    CHECK_EQ_INT(analysis_params_add_k(&p, "pool= 3", err), STRATA_E_ARG);
    CHECK_EQ_INT(analysis_params_add_k(&p, "pool=03", err), STRATA_E_ARG);
    struct analysis a;
    if (run_default(&m, &a, &p)) {
        CHECK(0);
        model_free(&m);
        return;
    }
    CHECK_EQ_INT(a.layers[1].c.k, 5);
    CHECK_EQ_INT(a.layers[1].k_override, 5);
    CHECK_EQ_INT(a.layers[1].k_auto, 3);
    CHECK_EQ_INT(a.layers[3].c.k, 2); /* flat reclustered though its features are gap's */
    CHECK_EQ_INT(a.layers[2].c.k, 3);
    CHECK_EQ_INT(a.layers[4].c.k, 3); /* drop follows gap */
    CHECK(same_partition(a.layers[4].c.labels, a.layers[2].c.labels, N_IMG));
    /* More layer clusters, more distinct paths: still at least 3. */
    CHECK(a.n_paths >= 3);

    /* Reclustering with the bundle's own k and seed reproduces it. */
    struct analysis_clustering c;
    CHECK_EQ_INT(analysis_recluster(&a, 0, 3, &c, err), 0);
    CHECK_EQ_INT(c.k, 3);
    CHECK(memcmp(c.labels, a.layers[0].c.labels, N_IMG * sizeof(int)) == 0);
    CHECK(memcmp(c.centers, a.layers[0].c.centers, 3 * 12 * sizeof(float)) == 0);
    CHECK_NEAR(c.ari, a.layers[0].c.ari, 0);
    analysis_clustering_free(&c);
    /* k = 3 on the layer clustered with 5. */
    CHECK_EQ_INT(analysis_recluster(&a, 1, 3, &c, err), 0);
    CHECK_EQ_INT(c.k, 3);
    int sum = 0;
    for (int j = 0; j < c.k; j++)
        sum += c.sizes[j];
    CHECK_EQ_INT(sum, N_IMG);
    for (int i = 0; i < N_IMG; i++)
        CHECK(c.labels[i] >= 0 && c.labels[i] < 3);
    CHECK(same_partition(c.labels, colour, N_IMG));
    CHECK(isfinite(c.center_points[0]) && isfinite(c.center_points[5]));
    CHECK_NEAR(c.purity, 30.0 / 33.0, 1e-12);
    analysis_clustering_free(&c);
    CHECK_EQ_INT(analysis_recluster(&a, 1, 7, &c, err), 0);
    CHECK_EQ_INT(c.k, 7);
    analysis_clustering_free(&c);
    CHECK_EQ_INT(analysis_recluster(&a, 6, 3, &c, err), STRATA_E_ARG);
    CHECK_EQ_INT(analysis_recluster(&a, 0, 0, &c, err), STRATA_E_ARG);
    CHECK_EQ_INT(analysis_recluster(&a, 0, N_IMG + 1, &c, err), STRATA_E_ARG);
    CHECK_EQ_INT(analysis_layer_index(&a, "gap"), 2);
    CHECK_EQ_INT(analysis_layer_index(&a, "5"), 5);
    CHECK_EQ_INT(analysis_layer_index(&a, "6"), -1);
    CHECK_EQ_INT(analysis_layer_index(&a, "nope"), -1);
    CHECK_EQ_INT(analysis_layer_index(&a, "0"), 0);
    /* An index is plain digits: no sign, space or leading zero. */
    static const char *const loose[] = {"+1", " 1", "1 ", "01", "00", "-0", "1e0", "0x1", ""};
    for (size_t i = 0; i < sizeof loose / sizeof loose[0]; i++)
        CHECK_MSG(analysis_layer_index(&a, loose[i]) == -1, "\"%s\"", loose[i]);
    CHECK_EQ_INT(analysis_parse_index("9", 10), 9);
    CHECK_EQ_INT(analysis_parse_index("10", 10), -1);
    CHECK_EQ_INT(analysis_parse_index("0", 0), -1);
    CHECK_EQ_INT(analysis_parse_index("99999999999999999999999", 2147483647), -1);
    CHECK_EQ_INT(analysis_parse_index(NULL, 5), -1);
    CHECK_EQ_INT(analysis_image_index(&a, ids[7]), 7);
    CHECK_EQ_INT(analysis_image_index(&a, "red/none.png"), -1);
    analysis_free(&a);

    /* Errors: unknown layer, k above n, classes that do not match. */
    analysis_params_default(&p);
    analysis_params_add_k(&p, "fc9=3", err);
    CHECK_EQ_INT(analysis_run(&m, &p, root, &a, NULL, NULL, err), STRATA_E_ARG);
    CHECK(strstr(err, "fc9") != NULL);
    CHECK(a.n == 0 && a.layers == NULL);
    analysis_params_default(&p);
    analysis_params_add_k(&p, "out=34", err);
    CHECK_EQ_INT(analysis_run(&m, &p, root, &a, NULL, NULL, err), STRATA_E_ARG);
    analysis_params_default(&p);
    snprintf(m.dataset, sizeof m.dataset, "nothere");
    CHECK(analysis_run(&m, &p, root, &a, NULL, NULL, err) < 0);
    model_free(&m);
}

/* Without the confusers, classes and colours agree: every layer's clusters
 * are the classes (ARI = NMI = purity = 1), nothing is misclassified. */
TEST(clean_classes_are_recovered)
{
    struct model m;
    if (open_tiny(&m))
        return;
    snprintf(m.dataset, sizeof m.dataset, "clean");
    struct analysis_params p;
    analysis_params_default(&p);
    struct analysis a;
    if (run_default(&m, &a, &p)) {
        CHECK(0);
        model_free(&m);
        return;
    }
    CHECK_EQ_INT(a.n, N_IMG - 3);
    CHECK_EQ_INT(a.n_missed, 0);
    CHECK_NEAR(a.accuracy, 1, 0);
    for (int l = 0; l < a.n_layers; l++) {
        const struct analysis_layer *L = &a.layers[l];
        CHECK_EQ_INT(L->c.k, 3);
        CHECK(same_partition(L->c.labels, a.labels, a.n));
        CHECK_NEAR(L->c.ari, 1, 1e-12);
        CHECK_NEAR(L->c.nmi, 1, 1e-12);
        CHECK_NEAR(L->c.purity, 1, 0);
        for (int j = 0; j < 3; j++)
            CHECK_NEAR(L->c.cluster_purity[j], 1, 0);
    }
    CHECK_EQ_INT(a.n_paths, 3);
    analysis_free(&a);
    model_free(&m);
}

static long forward_done;

static int stop_at_forward(void *user, const char *stage, long done, long total)
{
    (void)total;
    int *calls = user;
    ++*calls;
    forward_done = done;
    return strcmp(stage, "forward") == 0;
}

TEST(interrupt)
{
    struct model m;
    if (open_tiny(&m))
        return;
    struct analysis_params p;
    analysis_params_default(&p);
    p.batch = 8;
    struct analysis a;
    char err[STRATA_ERR_LEN];
    int calls = 0;
    CHECK_EQ_INT(analysis_run(&m, &p, root, &a, stop_at_forward, &calls, err),
                 STRATA_E_INTERRUPTED);
    /* the images are decoded batch by batch: the first call reports the
     * first batch through the model, and stops the run */
    CHECK_EQ_INT(calls, 1);
    CHECK_EQ_INT((int)forward_done, 8);
    CHECK(a.n == 0 && a.layers == NULL);
    model_free(&m);
}

/* Every stored and derived array of two bundles, byte for byte. */
static int bundles_equal(const struct analysis *x, const struct analysis *y)
{
    int n = x->n, C = x->n_classes;
#define SAME(f, bytes) \
    if (memcmp(x->f, y->f, (bytes)) != 0) { printf("# differs: %s\n", #f); return 0; }
#define SAME_V(f) \
    if (memcmp(&x->f, &y->f, sizeof x->f) != 0) { printf("# differs: %s\n", #f); return 0; }
    SAME_V(n);
    SAME_V(n_classes);
    SAME_V(n_layers);
    SAME_V(model_id);
    SAME_V(dataset);
    SAME_V(split);
    SAME_V(grid);
    SAME_V(k_max);
    SAME_V(n_init);
    SAME_V(max_iter);
    SAME_V(tol);
    SAME_V(seed);
    SAME_V(accuracy);
    SAME_V(n_missed);
    SAME_V(n_paths);
    SAME_V(seconds);
    for (int c = 0; c < C; c++)
        if (strcmp(x->classes[c], y->classes[c]))
            return 0;
    for (int i = 0; i < n; i++)
        if (strcmp(x->image_ids[i], y->image_ids[i]))
            return 0;
    SAME(labels, n * sizeof(int));
    SAME(pred, n * sizeof(int));
    SAME(probs, (size_t)n * C * sizeof(float));
    SAME(confusion, (size_t)C * C * sizeof(long));
    SAME(missed, x->n_missed * sizeof(struct analysis_miss));
    SAME(path_id, n * sizeof(int));
    SAME(path_count, x->n_paths * sizeof(int));
    for (int l = 0; l < x->n_layers; l++) {
        const struct analysis_layer *A = &x->layers[l], *B = &y->layers[l];
        int d = A->d, k = A->c.k;
        if (strcmp(A->name, B->name) || strcmp(A->type, B->type) ||
            memcmp(&A->out, &B->out, sizeof A->out) || A->d != B->d || A->grid != B->grid ||
            A->same_as != B->same_as || A->k_override != B->k_override ||
            A->k_auto != B->k_auto || k != B->c.k) {
            printf("# layer %d: descriptions differ\n", l);
            return 0;
        }
        const struct analysis_clustering *P = &A->c, *Q = &B->c;
        if (memcmp(analysis_features(x, l), analysis_features(y, l), (size_t)n * d * 4) ||
            memcmp(A->elbow, B->elbow, x->k_max * 8) ||
            memcmp(A->pca_mean, B->pca_mean, d * 4) ||
            memcmp(A->pca_components, B->pca_components, 2 * d * 4) ||
            memcmp(A->pca_ratio, B->pca_ratio, sizeof A->pca_ratio) ||
            memcmp(A->points, B->points, 2 * n * 4) || memcmp(P->centers, Q->centers, k * d * 4) ||
            memcmp(P->labels, Q->labels, n * 4) || memcmp(P->sizes, Q->sizes, k * 4) ||
            memcmp(&P->inertia, &Q->inertia, 8) || memcmp(&P->silhouette, &Q->silhouette, 8) ||
            memcmp(&P->purity, &Q->purity, 8) || memcmp(&P->ari, &Q->ari, 8) ||
            memcmp(&P->nmi, &Q->nmi, 8) || memcmp(P->cluster_purity, Q->cluster_purity, k * 8) ||
            memcmp(P->cluster_majority, Q->cluster_majority, k * 4) ||
            memcmp(P->center_points, Q->center_points, 2 * k * 4) ||
            memcmp(P->dist2, Q->dist2, n * 4) ||
            memcmp(P->dist_stats, Q->dist_stats, k * sizeof *P->dist_stats)) {
            printf("# layer %d: arrays differ\n", l);
            return 0;
        }
    }
#undef SAME
#undef SAME_V
    return 1;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void copy_file(const char *from, const char *to, long keep, long flip_at)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    if (!in || !out)
        abort();
    long pos = 0;
    int ch;
    while ((ch = fgetc(in)) != EOF && (keep < 0 || pos < keep)) {
        if (pos == flip_at)
            ch ^= 0x10;
        fputc(ch, out);
        pos++;
    }
    fclose(in);
    fclose(out);
}

TEST(cache_roundtrip_and_corruption)
{
    struct model m;
    if (open_tiny(&m))
        return;
    struct analysis_params p;
    analysis_params_default(&p);
    char err[STRATA_ERR_LEN], cache[128], path[1024], bad[256];
    snprintf(cache, sizeof cache, "%s/cache/sub", root);

    struct analysis a, b;
    int rc = analysis_load_or_run(&m, &p, root, cache, &a, NULL, NULL, err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc) {
        model_free(&m);
        return;
    }
    CHECK_EQ_INT(a.cached, 0);
    CHECK(a.key != 0);
    CHECK(a.cache_note[0] == 0);
    CHECK(file_size(a.cache_path) > 48);
    snprintf(path, sizeof path, "%s", a.cache_path);

    /* Second call: from the file, identical. */
    rc = analysis_load_or_run(&m, &p, root, cache, &b, NULL, NULL, err);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(b.cached, 1);
    CHECK(b.key == a.key);
    CHECK(bundles_equal(&a, &b));
    analysis_free(&b);

    /* Explicit save/load elsewhere; a wrong expected key is refused. */
    snprintf(bad, sizeof bad, "%s/copy.analysis", root);
    CHECK_EQ_INT(analysis_save(&a, bad, err), 0);
    CHECK_EQ_INT(analysis_load(bad, a.key, &b, err), 0);
    CHECK(bundles_equal(&a, &b));
    analysis_free(&b);
    CHECK_EQ_INT(analysis_load(bad, a.key ^ 1, &b, err), STRATA_E_FORMAT);
    CHECK(b.layers == NULL);

    /* Corruption: a flipped byte anywhere (header, payload start, middle,
     * last byte), truncation, a file with junk appended, not a bundle. */
    long size = file_size(path);
    const long flips[] = {0, 9, 20, 30, 44, 48, 60, size / 3, size / 2, size - 1};
    for (size_t f = 0; f < sizeof flips / sizeof flips[0]; f++) {
        copy_file(path, bad, -1, flips[f]);
        rc = analysis_load(bad, 0, &b, err);
        CHECK_MSG(rc == STRATA_E_FORMAT || (flips[f] >= 8 && flips[f] < 16 && rc == STRATA_E_UNSUPPORTED),
                  "flip at %ld: rc %d (%s)", flips[f], rc, err);
        CHECK(b.layers == NULL && b.n == 0);
    }
    const long cuts[] = {0, 10, 47, 48, 100, size / 2, size - 1};
    for (size_t f = 0; f < sizeof cuts / sizeof cuts[0]; f++) {
        copy_file(path, bad, cuts[f], -1);
        rc = analysis_load(bad, 0, &b, err);
        CHECK_MSG(rc == STRATA_E_FORMAT, "cut at %ld: rc %d (%s)", cuts[f], rc, err);
    }
    copy_file(path, bad, -1, -1);
    FILE *fp = fopen(bad, "ab");
    fputs("junk", fp);
    fclose(fp);
    CHECK_EQ_INT(analysis_load(bad, 0, &b, err), STRATA_E_FORMAT);
    CHECK(strstr(err, "truncated or padded") != NULL);
    CHECK_EQ_INT(analysis_load("/nonexistent/x.analysis", 0, &b, err), STRATA_E_NOTFOUND);

    /* A corrupted cache file in place: recomputed, noted, rewritten. */
    copy_file(path, bad, -1, size / 2);
    rename(bad, path);
    rc = analysis_load_or_run(&m, &p, root, cache, &b, NULL, NULL, err);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(b.cached, 0);
    CHECK_MSG(strstr(b.cache_note, "checksum") != NULL, "note: %s", b.cache_note);
    memcpy(b.seconds, a.seconds, sizeof b.seconds); /* timings of another run */
    CHECK(bundles_equal(&a, &b));
    analysis_free(&b);
    rc = analysis_load_or_run(&m, &p, root, cache, &b, NULL, NULL, err);
    CHECK_EQ_INT(b.cached, 1);
    analysis_free(&b);

    /* The key follows weights, data, and parameters (not threads or batch). */
    struct dataset ds;
    CHECK_EQ_INT(dataset_open(&ds, root, "tiny", "test", err), 0);
    uint64_t k0, k1;
    CHECK_EQ_INT(analysis_cache_key(&m, &p, &ds, &k0, err), 0);
    CHECK(k0 == a.key);
    struct analysis_params q = p;
    q.n_threads = 3;
    q.batch = 5;
    CHECK_EQ_INT(analysis_cache_key(&m, &q, &ds, &k1, err), 0);
    CHECK(k1 == k0);
    q.grid = 1;
    CHECK_EQ_INT(analysis_cache_key(&m, &q, &ds, &k1, err), 0);
    CHECK(k1 != k0);
    q = p;
    q.seed = 1;
    CHECK_EQ_INT(analysis_cache_key(&m, &q, &ds, &k1, err), 0);
    CHECK(k1 != k0);
    q = p;
    analysis_params_add_k(&q, "gap=4", err);
    CHECK_EQ_INT(analysis_cache_key(&m, &q, &ds, &k1, err), 0);
    CHECK(k1 != k0);
    struct analysis_params q2 = p;
    analysis_params_add_k(&q2, "2=4", err); /* the same layer by index */
    uint64_t k2;
    CHECK_EQ_INT(analysis_cache_key(&m, &q2, &ds, &k2, err), 0);
    CHECK(k2 == k1);
    m.layers[5].w.kernel[0] += 1e-3f;
    CHECK_EQ_INT(analysis_cache_key(&m, &p, &ds, &k1, err), 0);
    CHECK(k1 != k0);
    m.layers[5].w.kernel[0] -= 1e-3f;
    CHECK_EQ_INT(analysis_cache_key(&m, &p, &ds, &k1, err), 0);
    CHECK(k1 == k0);
    struct timespec ts[2] = {{1000000, 0}, {1000000, 0}};
    CHECK_EQ_INT(utimensat(AT_FDCWD, ds.items[4].path, ts, 0), 0);
    CHECK_EQ_INT(analysis_cache_key(&m, &p, &ds, &k1, err), 0);
    CHECK(k1 != k0);
    dataset_free(&ds);

    analysis_free(&a);
    model_free(&m);
}

/* Edges: grid 1 (global average per channel), an elbow of k = 1 only (the
 * automatic k is still 2, fitted on its own), a bundle that round-trips. */
TEST(grid_one_and_k_max_one)
{
    struct model m;
    if (open_tiny(&m))
        return;
    struct analysis_params p;
    analysis_params_default(&p);
    p.grid = 1;
    p.k_max = 1;
    struct analysis a, b;
    if (run_default(&m, &a, &p)) {
        CHECK(0);
        model_free(&m);
        return;
    }
    CHECK_EQ_INT(a.k_max, 1);
    CHECK_EQ_INT(a.layers[0].d, 3);
    CHECK_EQ_INT(a.layers[1].d, 3);
    for (int l = 0; l < a.n_layers; l++) {
        CHECK_EQ_INT(a.layers[l].k_auto, 2);
        CHECK_EQ_INT(a.layers[l].c.k, 2);
    }
    /* conv at grid 1 is the mean of the conv map, by hand. */
    double err_max = 0;
    for (int i = 0; i < N_IMG; i++) {
        double cf[12], pf[12], gap[3], prob[3];
        reference(i, cf, pf, gap, prob);
        for (int c = 0; c < 3; c++) {
            double mean = (cf[c] + cf[3 + c] + cf[6 + c] + cf[9 + c]) / 4;
            err_max = fmax(err_max, fabs(a.layers[0].features[i * 3 + c] - mean));
        }
    }
    CHECK_MSG(err_max < 1e-5, "grid-1 features off by %g", err_max);
    char err[STRATA_ERR_LEN], path[128];
    snprintf(path, sizeof path, "%s/k1.analysis", root);
    CHECK_EQ_INT(analysis_save(&a, path, err), 0);
    CHECK_EQ_INT(analysis_load(path, 0, &b, err), 0);
    CHECK(bundles_equal(&a, &b));
    analysis_free(&b);
    analysis_free(&a);
    p.grid = 0;
    CHECK_EQ_INT(analysis_run(&m, &p, root, &a, NULL, NULL, err), STRATA_E_ARG);
    model_free(&m);
}

TEST(locate_images_of_the_set)
{
    struct model m;
    if (open_tiny(&m))
        return;
    struct analysis_params p;
    analysis_params_default(&p);
    analysis_params_add_k(&p, "flat=2", NULL);
    struct analysis a;
    if (run_default(&m, &a, &p)) {
        CHECK(0);
        model_free(&m);
        return;
    }
    struct model_workspace ws;
    char err[STRATA_ERR_LEN];
    CHECK_EQ_INT(model_workspace_init(&ws, &m, 4, err), 0);
    size_t in = shape_size(m.input);
    struct analysis_point pt[6];
    double worst = 0;
    for (int i = 0; i + 4 <= N_IMG; i += 3) {
        /* Four images in one batch; locate the third (b = 2). */
        for (int b = 0; b < 4; b++)
            model_normalise(&m, pixels[i + b], ws.input + b * in);
        model_forward(&m, &ws, ws.input, 4);
        CHECK_EQ_INT(analysis_locate(&a, &m, &ws, 2, pt, err), 0);
        int j = i + 2;
        for (int l = 0; l < 6; l++) {
            const struct analysis_layer *L = &a.layers[l];
            CHECK_EQ_INT(pt[l].cluster, L->c.labels[j]);
            CHECK_NEAR(pt[l].dist2, L->c.dist2[j], 1e-5 * L->c.dist2[j] + 1e-7);
            worst = fmax(worst, fabs(pt[l].x - L->points[2 * j]));
            worst = fmax(worst, fabs(pt[l].y - L->points[2 * j + 1]));
        }
    }
    CHECK_MSG(worst < 1e-5, "PCA points differ by %g", worst);

    /* A new image, pure blue without noise: blue's cluster everywhere. */
    uint8_t blue[W * W * 3];
    for (int q = 0; q < W * W; q++)
        blue[q * 3] = 40, blue[q * 3 + 1] = 40, blue[q * 3 + 2] = 190;
    model_normalise(&m, blue, ws.input);
    model_forward(&m, &ws, ws.input, 1);
    CHECK_EQ_INT(analysis_locate(&a, &m, &ws, 0, pt, err), 0);
    int blue_img = 0; /* blue/i00.png is blue */
    for (int l = 0; l < 6; l++)
        CHECK_EQ_INT(pt[l].cluster, a.layers[l].c.labels[blue_img]);
    model_workspace_free(&ws);

    /* Another model is refused. */
    struct model other;
    CHECK_EQ_INT(model_parse_json(&other,
                                  "{\"input\": {\"height\": 8, \"width\": 8, \"channels\": 3},"
                                  " \"classes\": [\"a\", \"b\", \"c\"], \"layers\": ["
                                  " {\"type\": \"global_avg_pool\"}, {\"type\": \"softmax\"}]}",
                                  "x/other/model.json", err),
                 0);
    CHECK_EQ_INT(model_workspace_init(&ws, &other, 1, err), 0);
    CHECK_EQ_INT(analysis_locate(&a, &other, &ws, 0, pt, err), STRATA_E_ARG);
    model_workspace_free(&ws);
    model_free(&other);
    analysis_free(&a);
    model_free(&m);
}

/* The split is decoded batch by batch: with batches of 4 and one file that
 * is not an image, the bundle is the one of the images already decoded
 * without it — rows, probabilities and features alike. */
TEST(streamed_batches_skip_an_unreadable_file)
{
    struct model m;
    if (open_tiny(&m))
        return;
    char path[256], err[STRATA_ERR_LEN];
    make_dir("broken");
    make_dir("broken/test");
    const int bad = 13; /* green/i02.png */
    char *kept_ids[N_IMG];
    int kept_labels[N_IMG], n = 0;
    static uint8_t kept_px[N_IMG][W * W * 3];
    for (int c = 0; c < 3; c++) {
        char rel[64];
        snprintf(rel, sizeof rel, "broken/test/%s", folders[c].name);
        make_dir(rel);
    }
    for (int i = 0; i < N_IMG; i++) {
        snprintf(path, sizeof path, "%s/broken/test/%s", root, ids[i]);
        if (i == bad) {
            CHECK(image_write_file(path, (const uint8_t *)"not a png", 9, err) == 0);
            continue;
        }
        struct image img = {W, W, pixels[i]};
        uint8_t *png;
        size_t len;
        CHECK(image_encode_png(&img, &png, &len, err) == 0);
        CHECK(image_write_file(path, png, len, err) == 0);
        free(png);
        kept_ids[n] = ids[i];
        kept_labels[n] = truth[i];
        memcpy(kept_px[n++], pixels[i], sizeof pixels[i]);
    }
    snprintf(m.dataset, sizeof m.dataset, "broken");
    struct analysis_params p;
    analysis_params_default(&p);
    p.batch = 4;
    struct analysis a, b;
    CHECK_EQ_INT(analysis_run(&m, &p, root, &a, NULL, NULL, err), 0);
    CHECK_EQ_INT(analysis_run_images(&m, &p, &kept_px[0][0], kept_ids, kept_labels, n, &b, NULL,
                                     NULL, err),
                 0);
    CHECK_EQ_INT(a.n, N_IMG - 1);
    CHECK_EQ_INT(b.n, N_IMG - 1);
    for (int i = 0; i < a.n && i < b.n; i++) {
        CHECK(strcmp(a.image_ids[i], b.image_ids[i]) == 0);
        CHECK_EQ_INT(a.labels[i], b.labels[i]);
        for (int u = 0; u < 3; u++)
            CHECK(a.probs[i * 3 + u] == b.probs[i * 3 + u]);
    }
    for (int l = 0; l < a.n_layers; l++)
        CHECK(memcmp(analysis_features(&a, l), analysis_features(&b, l),
                     (size_t)a.n * a.layers[l].d * sizeof(float)) == 0);
    CHECK(a.n_paths == b.n_paths && a.accuracy == b.accuracy);
    analysis_free(&a);
    analysis_free(&b);
    model_free(&m);
}

/* A 2 x 3 x 3 output worked by hand: channel means, their order, min and
 * max, and a map sampled to 1 x 3 and 2 x 1 by area averages. */
TEST(feature_maps_by_hand)
{
    /* NHWC: position (y, x) holds channels {c0, c1, c2} */
    const float out[2 * 3 * 3] = {
        1, 0, 5,   2, 0, 5,   3, 9, 5, /* y = 0 */
        4, 0, 5,   5, 0, 5,   6, 0, 5, /* y = 1 */
    };
    const struct shape s = {2, 3, 3};
    float means[3];
    struct feature_channel top[3];
    CHECK_EQ_INT(feature_maps_rank(out, s, means, top, 2), 2);
    CHECK_NEAR(means[0], 3.5, 1e-6);
    CHECK_NEAR(means[1], 1.5, 1e-6);
    CHECK_NEAR(means[2], 5.0, 1e-6);
    CHECK(top[0].index == 2 && top[1].index == 0);
    CHECK(top[0].min == 5 && top[0].max == 5);
    CHECK(top[1].min == 1 && top[1].max == 6);
    CHECK_EQ_INT(feature_maps_rank(out, s, means, top, 5), 3);
    CHECK_EQ_INT(top[2].index, 1);
    float map[3];
    feature_maps_sample(out, s, 0, 3, 1, map); /* columns averaged over the 2 rows */
    CHECK(map[0] == 2.5f && map[1] == 3.5f && map[2] == 4.5f);
    feature_maps_sample(out, s, 1, 1, 2, map); /* rows averaged over the 3 columns */
    CHECK(map[0] == 3.0f && map[1] == 0.0f);
}

/* Over 2,048 images k-means is fitted on a seeded sample and every image
 * assigned to its nearest centre: each label is the nearest centre, the
 * inertia and sizes count every image, the elbow is over every image, and
 * three clean colour classes are still recovered. */
TEST(many_images_fit_on_a_sample_then_assign_all)
{
    struct model m;
    if (open_tiny(&m))
        return;
    enum { N = 2600 };
    uint8_t *px = malloc((size_t)N * W * W * 3);
    char **idp = malloc(N * sizeof *idp);
    int *lab = malloc(N * sizeof *lab);
    static char names[N][16];
    struct rng r;
    rng_seed(&r, 7);
    for (int i = 0; i < N; i++) {
        int c = i % 3, channel = c == 0 ? 2 : c == 1 ? 1 : 0;
        for (int p = 0; p < W * W; p++)
            for (int ch = 0; ch < 3; ch++)
                px[((size_t)i * W * W + p) * 3 + ch] =
                    (uint8_t)((ch == channel ? 170 : 40) - 20 + (int)rng_below(&r, 41));
        snprintf(names[i], sizeof names[i], "c%d/%04d.png", c, i);
        idp[i] = names[i];
        lab[i] = c;
    }
    struct analysis_params p;
    analysis_params_default(&p);
    struct analysis a;
    char err[STRATA_ERR_LEN];
    CHECK_EQ_INT(analysis_run_images(&m, &p, px, idp, lab, N, &a, NULL, NULL, err), 0);
    CHECK_EQ_INT(a.n, N);
    const int l = 2; /* gap: 3 features */
    const struct analysis_layer *L = &a.layers[l];
    const float *X = analysis_features(&a, l);
    double inertia = 0;
    int sizes[16] = {0}, nearest_ok = 1;
    for (int i = 0; i < N; i++) {
        double best = INFINITY;
        int arg = -1;
        for (int c = 0; c < L->c.k; c++) {
            double d2 = 0;
            for (int j = 0; j < L->d; j++) {
                double e = X[(size_t)i * L->d + j] - L->c.centers[(size_t)c * L->d + j];
                d2 += e * e;
            }
            if (d2 < best)
                best = d2, arg = c;
        }
        nearest_ok &= arg == L->c.labels[i];
        inertia += best;
        sizes[L->c.labels[i]]++;
    }
    CHECK(nearest_ok);
    CHECK_NEAR(L->c.inertia, inertia, 1e-3 * inertia + 1e-6);
    for (int c = 0; c < L->c.k; c++)
        CHECK_EQ_INT(L->c.sizes[c], sizes[c]);
    CHECK_NEAR(L->elbow[L->c.k - 1], L->c.inertia, 1e-6 * L->c.inertia + 1e-9);
    CHECK_EQ_INT(L->c.k, 3);
    CHECK(L->c.purity > 0.99);
    /* a re-clustering asks the same sample: the same fit as the elbow's */
    struct analysis_clustering again;
    CHECK_EQ_INT(analysis_recluster(&a, l, 3, &again, err), 0);
    CHECK(memcmp(again.labels, L->c.labels, N * sizeof(int)) == 0);
    analysis_clustering_free(&again);
    analysis_free(&a);
    model_free(&m);
    free(px);
    free(idp);
    free(lab);
}

int main(void)
{
    build_tree();
    RUN(predictions_confusion_and_misclassified);
    RUN(features_clusters_paths_and_scores);
    RUN(clean_classes_are_recovered);
    RUN(overrides_recluster_and_errors);
    RUN(interrupt);
    RUN(cache_roundtrip_and_corruption);
    RUN(grid_one_and_k_max_one);
    RUN(locate_images_of_the_set);
    RUN(streamed_batches_skip_an_unreadable_file);
    RUN(feature_maps_by_hand);
    RUN(many_images_fit_on_a_sample_then_assign_all);
    nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return check_done();
}
