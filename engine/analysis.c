/*
 * analysis.c — the layer-analysis pipeline and its cache (see analysis.h).
 *
 * Memory: the forward pass runs in batches through one inference workspace;
 * the capture callback reduces each batch's layer outputs straight into the
 * per-layer feature matrices (n x d), so the peak is the decoded images plus
 * the features, never n full activations. Everything else is per layer and
 * freed before the next one.
 *
 * Cache file: framed as cachefile.h says, magic "STRATAAN", version
 * ANALYSIS_FORMAT_VERSION, key analysis_cache_key; the payload:
 *     str model_id, dataset, split         (str = u32 length + bytes)
 *     u32 grid, k_max, n_init, max_iter; f64 tol; u64 seed
 *     u32 n, n_classes, n_layers
 *     str classes[n_classes], str image_ids[n]
 *     i32 labels[n], i32 pred[n], f32 probs[n * n_classes]
 *     f64 seconds[ANALYSIS_STAGE_COUNT]
 *     per layer:
 *       str name, type; i32 out.h, out.w, out.c, d, grid, same_as,
 *       k_override, k_auto
 *       f32 features[n * d]                 only when same_as = -1
 *       f64 elbow[k_max]
 *       f32 pca_mean[d], pca_components[2 * d]; f64 pca_ratio[2];
 *       f32 points[2 * n]
 *       i32 k; f32 centers[k * d]; i32 labels[n]; f64 inertia, silhouette;
 *       f32 center_points[2 * k]; f32 dist2[n]
 *
 * What is cheap to derive is not stored but recomputed on load by the same
 * code as a run: cluster sizes, purities and majorities, ARI, NMI, distance
 * statistics, confusion matrix, accuracy, misclassified list, paths. Loading
 * checks the magic, version, lengths and both checksums, then every count
 * and index (labels against k and n_classes, same_as chains, sizes against
 * the bytes left), so a corrupt file fails cleanly instead of crashing.
 */
#include "analysis.h"
#include "hash.h"

#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cachefile.h"
#include "infer.h"
#include "kmeans.h"
#include "metrics.h"
#include "pca.h"
#include "reduce.h"
#include "rng.h"

static const char magic[8] = {'S', 'T', 'R', 'A', 'T', 'A', 'A', 'N'};

/* Limits a cache file must respect before anything is allocated from it. */
#define MAX_IMAGES 10000000
#define MAX_STR 4096

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

const char *analysis_stage_name(enum analysis_stage s)
{
    static const char *const names[ANALYSIS_STAGE_COUNT] = {
        "load", "forward", "reduce", "kmeans", "silhouette", "pca", "scores", "total"};
    return (int)s >= 0 && s < ANALYSIS_STAGE_COUNT ? names[s] : "?";
}

void analysis_params_default(struct analysis_params *p)
{
    memset(p, 0, sizeof *p);
    strcpy(p->split, "test");
    p->grid = ANALYSIS_DEFAULT_GRID;
    p->k_max = ANALYSIS_DEFAULT_K_MAX;
    p->n_init = 10;
    p->max_iter = 300;
    p->tol = 1e-4;
    p->seed = 0;
    p->n_threads = 0;
    p->batch = 32;
}

int analysis_params_add_k(struct analysis_params *p, const char *spec, char *err)
{
    const char *eq = strrchr(spec, '=');
    if (!eq || eq == spec || !eq[1])
        return strata_fail(err, STRATA_E_ARG, "--k expects LAYER=K (a layer name or index), got '%s'",
                           spec);
    size_t len = (size_t)(eq - spec);
    if (len >= sizeof p->overrides[0].layer)
        return strata_fail(err, STRATA_E_ARG, "--k '%s': layer name too long", spec);
    int k = analysis_parse_index(eq + 1, KMEANS_MAX_K + 1);
    if (k < 1)
        return strata_fail(err, STRATA_E_ARG, "--k '%s': K must be an integer in 1..%d", spec,
                           KMEANS_MAX_K);
    int slot = p->n_overrides;
    for (int i = 0; i < p->n_overrides; i++)
        if (strlen(p->overrides[i].layer) == len && strncmp(p->overrides[i].layer, spec, len) == 0)
            slot = i;
    if (slot == ANALYSIS_MAX_OVERRIDES)
        return strata_fail(err, STRATA_E_ARG, "too many --k overrides (at most %d)",
                           ANALYSIS_MAX_OVERRIDES);
    memcpy(p->overrides[slot].layer, spec, len);
    p->overrides[slot].layer[len] = 0;
    p->overrides[slot].k = (int)k;
    if (slot == p->n_overrides)
        p->n_overrides++;
    return 0;
}

/* ---- feature reduction ------------------------------------------------ */

/* The grid recorded for a layer output (0: a 1x1 output, taken as is) and the
 * feature size it gives. */
static int feature_grid(struct shape s, int grid)
{
    return s.h == 1 && s.w == 1 ? 0 : grid;
}

static int feature_size(struct shape s, int grid)
{
    return reduce_avgpool_dim(s.h, s.w, s.c, grid);
}

/* Feature rows of n samples of one layer's output. */
static void reduce_rows(const float *out, int n, struct shape s, int grid, float *feat)
{
    reduce_avgpool(out, n, s.h, s.w, s.c, grid, feat);
}

/* ---- small helpers ---------------------------------------------------- */

static char *dup_str(const char *s)
{
    size_t len = strlen(s) + 1;
    char *d = malloc(len);
    if (d)
        memcpy(d, s, len);
    return d;
}

static void *alloc_n(size_t n, size_t size)
{
    return calloc(n ? n : 1, size);
}

static void *dup_mem(const void *src, size_t bytes)
{
    void *d = malloc(bytes ? bytes : 1);
    if (d && bytes)
        memcpy(d, src, bytes);
    return d;
}

/* Squared distance in double, eight accumulators (see kmeans.c). */
static double sqdist(const float *x, const float *c, int d)
{
    double acc[8] = {0};
    int t = 0;
    for (; t + 8 <= d; t += 8)
        for (int u = 0; u < 8; u++) {
            double v = (double)x[t + u] - c[t + u];
            acc[u] += v * v;
        }
    double s = 0;
    for (; t < d; t++) {
        double v = (double)x[t] - c[t];
        s += v * v;
    }
    for (int u = 0; u < 8; u++)
        s += acc[u];
    return s;
}

/* A pca_result view of a layer's stored PCA, for pca_transform. */
static struct pca_result pca_view(const struct analysis_layer *L)
{
    struct pca_result v = {0};
    v.d = L->d;
    v.n_components = 2;
    v.mean = L->pca_mean;
    v.components = L->pca_components;
    return v;
}

/* Resolves the overrides of p against m into k_of[n_layers] (0 = automatic). */
static int resolve_overrides(const struct model *m, const struct analysis_params *p, int *k_of,
                             char *err)
{
    for (int l = 0; l < m->n_layers; l++)
        k_of[l] = 0;
    for (int i = 0; i < p->n_overrides; i++) {
        const char *name = p->overrides[i].layer;
        int l = -1;
        for (int j = 0; j < m->n_layers && l < 0; j++)
            if (strcmp(m->layers[j].cfg.name, name) == 0)
                l = j;
        if (l < 0)
            l = analysis_parse_index(name, m->n_layers);
        if (l < 0)
            return strata_fail(err, STRATA_E_ARG,
                               "--k %s=%d: model %s has no layer named or numbered '%s' "
                               "(layers 0..%d)",
                               name, p->overrides[i].k, m->id, name, m->n_layers - 1);
        k_of[l] = p->overrides[i].k;
    }
    return 0;
}

/* Prefixes the message already in err (strata_fail cannot read and write
 * the same buffer). */
static int fail_in_layer(char *err, int rc, const char *layer, int k)
{
    char inner[STRATA_ERR_LEN] = "";
    if (err)
        snprintf(inner, sizeof inner, "%s", err);
    if (k > 0)
        return strata_fail(err, rc, "layer %s, k = %d: %.400s", layer, k, inner);
    return strata_fail(err, rc, "layer %s: %.400s", layer, inner);
}

static int check_params(const struct analysis_params *p, char *err)
{
    if (p->grid < 1 || p->grid > ANALYSIS_MAX_GRID)
        return strata_fail(err, STRATA_E_ARG, "pooling grid %d out of range 1..%d", p->grid,
                           ANALYSIS_MAX_GRID);
    if (p->k_max < 1 || p->k_max > KMEANS_MAX_K)
        return strata_fail(err, STRATA_E_ARG, "k_max %d out of range 1..%d", p->k_max,
                           KMEANS_MAX_K);
    if (p->n_init < 1 || p->max_iter < 1 || !(p->tol >= 0))
        return strata_fail(err, STRATA_E_ARG, "k-means needs n_init >= 1, max_iter >= 1, tol >= 0");
    if (p->batch < 1)
        return strata_fail(err, STRATA_E_ARG, "batch size must be positive");
    return 0;
}

/* ---- clustering results ------------------------------------------------ */

void analysis_clustering_free(struct analysis_clustering *c)
{
    if (!c)
        return;
    free(c->centers);
    free(c->labels);
    free(c->sizes);
    free(c->cluster_purity);
    free(c->cluster_majority);
    free(c->center_points);
    free(c->dist2);
    free(c->dist_stats);
    memset(c, 0, sizeof *c);
}

/* Linear interpolation between order statistics of sorted v[n] (numpy's
 * default "linear" method). */
static float quantile_sorted(const float *v, int n, double q)
{
    double pos = q * (n - 1);
    int lo = (int)pos;
    if (lo >= n - 1)
        return v[n - 1];
    double frac = pos - lo;
    return (float)(v[lo] + frac * ((double)v[lo + 1] - v[lo]));
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Everything that counting gives from labels and dist2: sizes, purities and
 * majorities, ARI, NMI, distance statistics. Used after a fit and on load. */
static int clustering_derive(struct analysis_clustering *c, int n, const int *truth,
                             int n_classes, char *err)
{
    int k = c->k;
    long *table = alloc_n((size_t)k * n_classes, sizeof(long));
    float *scratch = alloc_n((size_t)n, sizeof(float));
    int *start = alloc_n((size_t)k + 1, sizeof(int));
    if (!c->sizes)
        c->sizes = alloc_n((size_t)k, sizeof(int));
    if (!c->cluster_purity)
        c->cluster_purity = alloc_n((size_t)k, sizeof(double));
    if (!c->cluster_majority)
        c->cluster_majority = alloc_n((size_t)k, sizeof(int));
    if (!c->dist_stats)
        c->dist_stats = alloc_n((size_t)k, sizeof(struct analysis_dist_stats));
    if (!table || !scratch || !start || !c->sizes || !c->cluster_purity || !c->cluster_majority ||
        !c->dist_stats) {
        free(table);
        free(scratch);
        free(start);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory scoring %d clusters", k);
    }
    metrics_contingency(c->labels, k, truth, n_classes, n, table);
    c->purity = metrics_purity(table, k, n_classes, c->cluster_purity, c->cluster_majority);
    c->ari = metrics_ari_table(table, k, n_classes);
    c->nmi = metrics_nmi_table(table, k, n_classes);

    /* Distances grouped by cluster (a counting sort), then sorted per cluster. */
    memset(c->sizes, 0, (size_t)k * sizeof(int));
    for (int i = 0; i < n; i++)
        c->sizes[c->labels[i]]++;
    start[0] = 0;
    for (int j = 0; j < k; j++)
        start[j + 1] = start[j] + c->sizes[j];
    for (int i = 0; i < n; i++)
        scratch[start[c->labels[i]]++] = c->dist2[i];
    for (int j = 0; j < k; j++) {
        int cnt = c->sizes[j];
        float *v = scratch + start[j] - cnt;
        struct analysis_dist_stats *s = &c->dist_stats[j];
        memset(s, 0, sizeof *s);
        if (!cnt)
            continue;
        qsort(v, (size_t)cnt, sizeof(float), cmp_float);
        double sum = 0;
        for (int i = 0; i < cnt; i++)
            sum += v[i];
        s->count = cnt;
        s->mean = (float)(sum / cnt);
        s->q50 = quantile_sorted(v, cnt, 0.50);
        s->q90 = quantile_sorted(v, cnt, 0.90);
        s->q95 = quantile_sorted(v, cnt, 0.95);
        s->max = v[cnt - 1];
    }
    free(table);
    free(scratch);
    free(start);
    return 0;
}

/* Turns a k-means fit of layer L's features into a full clustering:
 * takes over the fit's arrays, then silhouette, centres in the PCA plane,
 * distances and the derived scores. t[] accumulates stage times. */
static int clustering_from_fit(struct analysis_clustering *c, struct kmeans_result *fit,
                               const struct analysis_layer *L, const float *X, int n,
                               const int *truth, int n_classes, double *t, char *err)
{
    memset(c, 0, sizeof *c);
    int d = L->d, k = fit->k;
    c->k = k;
    c->centers = fit->centers;
    c->labels = fit->labels;
    c->sizes = fit->sizes;
    c->inertia = fit->inertia;
    fit->centers = NULL;
    fit->labels = NULL;
    fit->sizes = NULL;
    kmeans_result_free(fit);

    double t0 = now_seconds();
    int rc = metrics_silhouette(X, n, d, c->labels, k, &c->silhouette, NULL, err);
    if (rc == STRATA_E_ARG) {
        c->silhouette = NAN; /* fewer than 2 (or more than n - 1) non-empty clusters */
        rc = 0;
    }
    double t1 = now_seconds();
    t[ANALYSIS_STAGE_SILHOUETTE] += t1 - t0;
    if (rc < 0) {
        analysis_clustering_free(c);
        return rc;
    }
    c->center_points = alloc_n((size_t)k * 2, sizeof(float));
    c->dist2 = alloc_n((size_t)n, sizeof(float));
    if (!c->center_points || !c->dist2) {
        analysis_clustering_free(c);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory for %d images", n);
    }
    struct pca_result view = pca_view(L);
    pca_transform(&view, c->centers, k, c->center_points);
    double t2 = now_seconds();
    t[ANALYSIS_STAGE_PCA] += t2 - t1;
    for (int i = 0; i < n; i++)
        c->dist2[i] = (float)sqdist(X + (size_t)i * d, c->centers + (size_t)c->labels[i] * d, d);
    rc = clustering_derive(c, n, truth, n_classes, err);
    t[ANALYSIS_STAGE_SCORES] += now_seconds() - t2;
    if (rc < 0)
        analysis_clustering_free(c);
    return rc;
}

static int clustering_copy(struct analysis_clustering *dst, const struct analysis_clustering *src,
                           int n, int d)
{
    memset(dst, 0, sizeof *dst);
    *dst = *src;
    int k = src->k;
    dst->centers = dup_mem(src->centers, (size_t)k * d * sizeof(float));
    dst->labels = dup_mem(src->labels, (size_t)n * sizeof(int));
    dst->sizes = dup_mem(src->sizes, (size_t)k * sizeof(int));
    dst->cluster_purity = dup_mem(src->cluster_purity, (size_t)k * sizeof(double));
    dst->cluster_majority = dup_mem(src->cluster_majority, (size_t)k * sizeof(int));
    dst->center_points = dup_mem(src->center_points, (size_t)k * 2 * sizeof(float));
    dst->dist2 = dup_mem(src->dist2, (size_t)n * sizeof(float));
    dst->dist_stats = dup_mem(src->dist_stats, (size_t)k * sizeof(struct analysis_dist_stats));
    if (!dst->centers || !dst->labels || !dst->sizes || !dst->cluster_purity ||
        !dst->cluster_majority || !dst->center_points || !dst->dist2 || !dst->dist_stats) {
        analysis_clustering_free(dst);
        return STRATA_E_NOMEM;
    }
    return 0;
}

static struct kmeans_params km_params(const struct analysis *a, int k)
{
    struct kmeans_params kp = kmeans_params_default(k);
    kp.n_init = a->n_init;
    kp.max_iter = a->max_iter;
    kp.tol = a->tol;
    kp.seed = a->seed;
    kp.n_threads = a->n_threads;
    return kp;
}

/* ---- k-means on many rows ----------------------------------------------- */

/* k-means is fitted on at most this many rows: above it, a sample of them,
 * chosen with the analysis seed, and every row is then assigned to the
 * nearest centre of the fit, the inertia counted over every row. Beyond a
 * couple of thousand rows the centres barely move with more rows, while the
 * fitting cost (restarts x k x iterations x rows) grows with them: an
 * imported ResNet-18's 21 layers over 5,511 photos took 432 s of k-means.
 * Up to it, nothing changes: the fit is over every row. */
#define ANALYSIS_KMEANS_SAMPLE 2048

/* The rows k-means is fitted on: X itself (*owned 0), or a seeded sample
 * of ANALYSIS_KMEANS_SAMPLE of them in their order (*owned 1, free it). */
static const float *fit_rows(const struct analysis *a, const float *X, int n, int d, int layer,
                             int *n_fit, int *owned)
{
    *owned = 0;
    *n_fit = n;
    if (n <= ANALYSIS_KMEANS_SAMPLE)
        return X;
    int *idx = malloc((size_t)n * sizeof *idx);
    float *rows = malloc((size_t)ANALYSIS_KMEANS_SAMPLE * d * sizeof *rows);
    if (!idx || !rows) {
        free(idx);
        free(rows);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        idx[i] = i;
    struct rng r;
    rng_seed(&r, a->seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(layer + 1)));
    for (int i = 0; i < ANALYSIS_KMEANS_SAMPLE; i++) { /* a partial Fisher-Yates */
        int j = i + (int)rng_below(&r, (uint64_t)(n - i));
        int t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
    /* in row order, so that the sample does not depend on the shuffle's order */
    for (int i = 1; i < ANALYSIS_KMEANS_SAMPLE; i++)
        for (int j = i; j > 0 && idx[j - 1] > idx[j]; j--) {
            int t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    for (int i = 0; i < ANALYSIS_KMEANS_SAMPLE; i++)
        memcpy(rows + (size_t)i * d, X + (size_t)idx[i] * d, (size_t)d * sizeof *rows);
    free(idx);
    *owned = 1;
    *n_fit = ANALYSIS_KMEANS_SAMPLE;
    return rows;
}

/* A fit made on a sample, extended to every row of X: labels, sizes and
 * inertia over all n rows. */
static int assign_all(const float *X, int n, int d, struct kmeans_result *fit, char *err)
{
    int *labels = malloc((size_t)n * sizeof *labels);
    float *dist2 = malloc((size_t)n * sizeof *dist2);
    int rc = labels && dist2 ? kmeans_assign(X, n, d, fit->centers, fit->k, labels, dist2, err)
                             : strata_fail(err, STRATA_E_NOMEM, "out of memory");
    if (rc == 0) {
        double inertia = 0;
        for (int c = 0; c < fit->k; c++)
            fit->sizes[c] = 0;
        for (int i = 0; i < n; i++) {
            fit->sizes[labels[i]]++;
            inertia += dist2[i];
        }
        free(fit->labels);
        fit->labels = labels;
        fit->inertia = inertia;
        labels = NULL;
    }
    free(labels);
    free(dist2);
    return rc;
}

/* kmeans_fit of layer `layer`'s n rows with k clusters, on a sample when
 * there are many (see ANALYSIS_KMEANS_SAMPLE). */
static int fit_layer(const struct analysis *a, int layer, const float *X, int n, int d, int k,
                     struct kmeans_result *out, char *err)
{
    int n_fit, owned;
    const float *rows = fit_rows(a, X, n, d, layer, &n_fit, &owned);
    if (!rows)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    struct kmeans_params kp = km_params(a, k);
    int rc = kmeans_fit(rows, n_fit, d, &kp, out, err);
    if (rc == 0 && owned && (rc = assign_all(X, n, d, out, err)) < 0)
        kmeans_result_free(out);
    if (owned)
        free((void *)rows);
    return rc;
}

/* The elbow sweep of layer `layer` (kmeans_elbow), on a sample when there
 * are many rows; inertia[k-1] is then over every row, as the fits are. */
static int elbow_layer(const struct analysis *a, int layer, const float *X, int n, int d,
                       int k_max, double *inertia, struct kmeans_result *fits, char *err)
{
    int n_fit, owned;
    const float *rows = fit_rows(a, X, n, d, layer, &n_fit, &owned);
    if (!rows)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    struct kmeans_params kp = km_params(a, 1);
    int rc = kmeans_elbow(rows, n_fit, d, k_max, &kp, inertia, fits, err);
    for (int j = 0; rc == 0 && owned && j < k_max; j++) {
        rc = assign_all(X, n, d, &fits[j], err);
        inertia[j] = fits[j].inertia;
    }
    if (rc < 0 && owned)
        for (int j = 0; j < k_max; j++)
            kmeans_result_free(&fits[j]);
    if (owned)
        free((void *)rows);
    return rc;
}

/* ---- freeing and accessors --------------------------------------------- */

static void layer_free(struct analysis_layer *L)
{
    if (L->same_as < 0)
        free(L->features);
    free(L->elbow);
    free(L->pca_mean);
    free(L->pca_components);
    free(L->points);
    analysis_clustering_free(&L->c);
    memset(L, 0, sizeof *L);
}

void analysis_free(struct analysis *a)
{
    if (!a)
        return;
    if (a->classes)
        for (int c = 0; c < a->n_classes; c++)
            free(a->classes[c]);
    free(a->classes);
    if (a->image_ids)
        for (int i = 0; i < a->n; i++)
            free(a->image_ids[i]);
    free(a->image_ids);
    free(a->labels);
    free(a->pred);
    free(a->probs);
    free(a->confusion);
    free(a->missed);
    free(a->path_id);
    free(a->path_count);
    if (a->layers)
        for (int l = 0; l < a->n_layers; l++)
            layer_free(&a->layers[l]);
    free(a->layers);
    memset(a, 0, sizeof *a);
}

int analysis_parse_index(const char *s, int n)
{
    if (!s || !*s || (s[0] == '0' && s[1]))
        return -1;
    long long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
        if (v >= n)
            return -1; /* also stops the digits before they overflow */
    }
    return (int)v;
}

int analysis_layer_index(const struct analysis *a, const char *name_or_index)
{
    for (int l = 0; l < a->n_layers; l++)
        if (strcmp(a->layers[l].name, name_or_index) == 0)
            return l;
    return analysis_parse_index(name_or_index, a->n_layers);
}

int analysis_image_index(const struct analysis *a, const char *id)
{
    for (int i = 0; i < a->n; i++)
        if (strcmp(a->image_ids[i], id) == 0)
            return i;
    return -1;
}

const float *analysis_features(const struct analysis *a, int layer)
{
    assert(layer >= 0 && layer < a->n_layers);
    const struct analysis_layer *L = &a->layers[layer];
    return L->same_as >= 0 ? a->layers[L->same_as].features : L->features;
}

void analysis_path(const struct analysis *a, int i, int *clusters)
{
    assert(i >= 0 && i < a->n);
    for (int l = 0; l < a->n_layers; l++)
        clusters[l] = a->layers[l].c.labels[i];
}

/* ---- derived bundle data: confusion, misclassified, paths ---------------- */

/* Distinct cluster sequences over all layers, by open addressing on an
 * FNV-1a hash of each sequence; ids in order of first appearance. */
static int compute_paths(struct analysis *a, char *err)
{
    int n = a->n, L = a->n_layers;
    size_t cap = 1;
    while (cap < (size_t)n * 2)
        cap <<= 1;
    int *slot = malloc(cap * sizeof(int));
    uint64_t *hash = alloc_n((size_t)n, sizeof(uint64_t));
    int *seq = alloc_n((size_t)n * L, sizeof(int));
    int *first = alloc_n((size_t)n, sizeof(int)); /* path id -> its first image */
    free(a->path_id);
    free(a->path_count);
    a->path_id = alloc_n((size_t)n, sizeof(int));
    a->path_count = NULL;
    if (!slot || !hash || !seq || !first || !a->path_id) {
        free(slot);
        free(hash);
        free(seq);
        free(first);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory for the paths of %d images", n);
    }
    for (size_t s = 0; s < cap; s++)
        slot[s] = -1;
    int n_paths = 0;
    for (int i = 0; i < n; i++) {
        int *row = seq + (size_t)i * L;
        analysis_path(a, i, row);
        uint64_t h = hash_fnv1a(HASH_FNV_OFFSET, row, (size_t)L * sizeof(int));
        size_t s = (size_t)h & (cap - 1);
        int id = -1;
        while (slot[s] >= 0) {
            int p = slot[s], j = first[p];
            if (hash[j] == h && memcmp(seq + (size_t)j * L, row, (size_t)L * sizeof(int)) == 0) {
                id = p;
                break;
            }
            s = (s + 1) & (cap - 1);
        }
        if (id < 0) {
            id = n_paths++;
            first[id] = i;
            slot[s] = id;
        }
        hash[i] = h;
        a->path_id[i] = id;
    }
    a->n_paths = n_paths;
    a->path_count = alloc_n((size_t)n_paths, sizeof(int));
    free(slot);
    free(hash);
    free(seq);
    free(first);
    if (!a->path_count)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory for %d paths", n_paths);
    for (int i = 0; i < n; i++)
        a->path_count[a->path_id[i]]++;
    return 0;
}

/* Confusion, accuracy, misclassified list and paths from labels, pred, probs
 * and the layers' labels. */
static int derive_bundle(struct analysis *a, char *err)
{
    int n = a->n, C = a->n_classes;
    free(a->confusion);
    free(a->missed);
    a->confusion = alloc_n((size_t)C * C, sizeof(long));
    a->missed = NULL;
    if (!a->confusion)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    metrics_confusion(a->labels, a->pred, n, C, a->confusion);
    a->accuracy = metrics_accuracy(a->labels, a->pred, n);
    int miss = 0;
    for (int i = 0; i < n; i++)
        miss += a->labels[i] != a->pred[i];
    a->n_missed = miss;
    a->missed = alloc_n((size_t)miss, sizeof(struct analysis_miss));
    if (!a->missed)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    for (int i = 0, j = 0; i < n; i++) {
        if (a->labels[i] == a->pred[i])
            continue;
        const float *p = a->probs + (size_t)i * C;
        a->missed[j++] = (struct analysis_miss){
            .index = i, .truth = a->labels[i], .pred = a->pred[i], .prob = p[a->pred[i]],
            .prob_true = p[a->labels[i]]};
    }
    return compute_paths(a, err);
}

/* ---- the run ------------------------------------------------------------ */

struct capture_ctx {
    struct analysis *a;
    analysis_progress_fn progress;
    void *user;
    int total;
    int offset; /* row of the batch's first image (images before it were kept or skipped) */
    int seen;   /* images read so far, kept or skipped, for the progress */
    double reduce_seconds;
};

static int capture_batch(void *user, const struct model *m, const struct model_workspace *ws,
                         int first, int n)
{
    struct capture_ctx *cx = user;
    struct analysis *a = cx->a;
    double t0 = now_seconds();
    for (int l = 0; l < m->n_layers; l++) {
        struct analysis_layer *L = &a->layers[l];
        if (L->same_as >= 0)
            continue;
        /* straight from the graph's own NCHW values when it has them: no
         * copy of every layer to NHWC first */
        const struct shape s = m->layers[l].out;
        const float *nchw = model_output_nchw(ws, l);
        float *rows = L->features + (size_t)(cx->offset + first) * L->d;
        if (nchw)
            reduce_avgpool_nchw(nchw, n, s.h, s.w, s.c, a->grid, rows);
        else
            reduce_rows(model_output(ws, l), n, s, a->grid, rows);
    }
    cx->reduce_seconds += now_seconds() - t0;
    return 0;
}

/* Elbow, choice of k, fit, PCA and scores of one layer whose features are
 * in place. */
static int analyse_layer(struct analysis *a, int l, double *t, char *err)
{
    struct analysis_layer *L = &a->layers[l];
    int n = a->n, d = L->d, k_max = a->k_max;
    const float *X = analysis_features(a, l);

    L->elbow = alloc_n((size_t)k_max, sizeof(double));
    struct kmeans_result *fits = alloc_n((size_t)k_max, sizeof *fits);
    if (!L->elbow || !fits) {
        free(fits);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    }
    double t0 = now_seconds();
    int rc = elbow_layer(a, l, X, n, d, k_max, L->elbow, fits, err);
    if (rc < 0) {
        free(fits);
        return fail_in_layer(err, rc, L->name, 0);
    }
    /* A single cluster shows nothing about the layer, so the automatic choice
     * is at least 2 even when the curve has no knee. */
    int knee = elbow_choose_k(L->elbow, k_max);
    L->k_auto = knee < 2 ? 2 : knee;
    if (L->k_auto > n)
        L->k_auto = n;
    int k = L->k_override ? L->k_override : L->k_auto;
    struct kmeans_result chosen = {0};
    if (k <= k_max) {
        chosen = fits[k - 1];
        memset(&fits[k - 1], 0, sizeof fits[k - 1]);
    }
    for (int j = 0; j < k_max; j++)
        kmeans_result_free(&fits[j]);
    free(fits);
    if (k > k_max) {
        rc = fit_layer(a, l, X, n, d, k, &chosen, err);
        if (rc < 0)
            return fail_in_layer(err, rc, L->name, k);
    }
    double t1 = now_seconds();
    t[ANALYSIS_STAGE_KMEANS] += t1 - t0;

    struct pca_result pr = {0};
    int nc = d < 2 ? 1 : 2;
    rc = pca_fit(X, n, d, nc, &pr, err);
    if (rc < 0) {
        kmeans_result_free(&chosen);
        return fail_in_layer(err, rc, L->name, 0);
    }
    L->pca_mean = pr.mean;
    pr.mean = NULL;
    L->pca_components = alloc_n((size_t)2 * d, sizeof(float));
    L->points = alloc_n((size_t)2 * n, sizeof(float));
    if (!L->pca_components || !L->points) {
        pca_result_free(&pr);
        kmeans_result_free(&chosen);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    }
    memcpy(L->pca_components, pr.components, (size_t)nc * d * sizeof(float));
    L->pca_ratio[0] = pr.explained_variance_ratio[0];
    L->pca_ratio[1] = nc > 1 ? pr.explained_variance_ratio[1] : 0;
    pca_result_free(&pr);
    struct pca_result view = pca_view(L);
    pca_transform(&view, X, n, L->points);
    t[ANALYSIS_STAGE_PCA] += now_seconds() - t1;

    return clustering_from_fit(&L->c, &chosen, L, X, n, a->labels, a->n_classes, t, err);
}

/* A flatten or dropout layer: same features as its root, hence the same
 * elbow, PCA and (for the same k) clustering; copied rather than recomputed. */
static int copy_layer(struct analysis *a, int l, double *t, char *err)
{
    struct analysis_layer *L = &a->layers[l];
    const struct analysis_layer *R = &a->layers[L->same_as];
    int n = a->n, d = L->d;
    L->elbow = dup_mem(R->elbow, (size_t)a->k_max * sizeof(double));
    L->pca_mean = dup_mem(R->pca_mean, (size_t)d * sizeof(float));
    L->pca_components = dup_mem(R->pca_components, (size_t)2 * d * sizeof(float));
    L->points = dup_mem(R->points, (size_t)2 * n * sizeof(float));
    if (!L->elbow || !L->pca_mean || !L->pca_components || !L->points)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    L->k_auto = R->k_auto;
    memcpy(L->pca_ratio, R->pca_ratio, sizeof L->pca_ratio);
    int k = L->k_override ? L->k_override : L->k_auto;
    if (k == R->c.k)
        return clustering_copy(&L->c, &R->c, n, d) < 0
                   ? strata_fail(err, STRATA_E_NOMEM, "out of memory")
                   : 0;
    double t0 = now_seconds();
    struct kmeans_result fit = {0};
    const float *X = analysis_features(a, l);
    int rc = fit_layer(a, L->same_as, X, n, d, k, &fit, err);
    t[ANALYSIS_STAGE_KMEANS] += now_seconds() - t0;
    if (rc < 0)
        return fail_in_layer(err, rc, L->name, k);
    return clustering_from_fit(&L->c, &fit, L, X, n, a->labels, a->n_classes, t, err);
}

/* Fills the bundle's identity and per-layer descriptions (no numbers yet). */
static int bundle_init(struct analysis *a, const struct model *m, const struct analysis_params *p,
                       const int *k_of, int n, char *err)
{
    memset(a, 0, sizeof *a);
    snprintf(a->model_id, sizeof a->model_id, "%s", m->id);
    snprintf(a->dataset, sizeof a->dataset, "%s", m->dataset);
    snprintf(a->split, sizeof a->split, "%s", p->split);
    a->grid = p->grid;
    a->k_max = p->k_max < n ? p->k_max : n;
    a->n_init = p->n_init;
    a->max_iter = p->max_iter;
    a->tol = p->tol;
    a->seed = p->seed;
    a->n_threads = p->n_threads;
    a->n = n;
    a->n_classes = m->n_classes;
    a->n_layers = m->n_layers;
    a->classes = alloc_n((size_t)m->n_classes, sizeof(char *));
    a->layers = alloc_n((size_t)m->n_layers, sizeof *a->layers);
    if (!a->classes || !a->layers)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    for (int c = 0; c < m->n_classes; c++)
        if (!(a->classes[c] = dup_str(m->classes[c])))
            return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    for (int l = 0; l < m->n_layers; l++) {
        const struct layer *ml = &m->layers[l];
        struct analysis_layer *L = &a->layers[l];
        snprintf(L->name, sizeof L->name, "%s", ml->cfg.name);
        snprintf(L->type, sizeof L->type, "%s", layer_ops_of(ml->cfg.kind)->type);
        L->out = ml->out;
        L->k_override = k_of[l];
        L->same_as = -1;
        /* a flatten or a dropout shows what it reads (the layer before, in
         * a chain): the same features */
        const int src = ml->n_inputs == 1 ? ml->inputs[0] : -1;
        if (src >= 0 && (ml->cfg.kind == LAYER_FLATTEN || ml->cfg.kind == LAYER_DROPOUT)) {
            const struct analysis_layer *P = &a->layers[src];
            L->same_as = P->same_as >= 0 ? P->same_as : src;
        }
        if (L->same_as >= 0) {
            const struct analysis_layer *R = &a->layers[L->same_as];
            L->d = R->d;
            L->grid = R->grid;
            L->features = R->features;
        } else {
            L->grid = feature_grid(ml->out, p->grid);
            L->d = feature_size(ml->out, p->grid);
            L->features = alloc_n((size_t)n * L->d, sizeof(float));
            if (!L->features)
                return strata_fail(err, STRATA_E_NOMEM,
                                   "out of memory for the features of layer %s (%d x %d)",
                                   L->name, n, L->d);
        }
    }
    return 0;
}

/* Where the images come from: decoded already (pixels), or decoded batch by
 * batch from a listed split (ds), so that memory holds one batch of images
 * and the feature matrices, whatever the image count. */
struct image_feed {
    const uint8_t *pixels;     /* n frames, or NULL */
    struct dataset *ds;        /* when pixels is NULL: items [0, n) */
    char *const *ids;          /* with pixels */
    const int *labels;
    double decode_seconds;
};

/* The forward passes with capture over the feed, in batches of the
 * workspace's size: rows are the images kept (an unreadable file of ds is
 * skipped and reported in ds->skipped). Sets a->n to the rows kept. */
static int forward_feed(struct model *m, struct model_workspace *ws, int batch,
                        struct image_feed *feed, int n, struct capture_ctx *cx, char *err)
{
    struct analysis *a = cx->a;
    int C = m->n_classes;
    size_t frame = shape_size(m->input);
    uint8_t *chunk = feed->pixels ? NULL : malloc((size_t)batch * frame);
    if (!feed->pixels && !chunk)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory for a batch of images");
    int kept = 0, rc = 0;
    for (int i0 = 0; i0 < n && rc == 0; i0 += batch) {
        int want = n - i0 < batch ? n - i0 : batch, got = 0;
        const uint8_t *px = chunk;
        double t0 = now_seconds();
        for (int j = 0; j < want && rc == 0; j++) {
            int i = i0 + j;
            const char *id = feed->pixels ? feed->ids[i] : feed->ds->items[i].name;
            int label = feed->pixels ? feed->labels[i] : feed->ds->items[i].label;
            int ok = 1;
            if (!feed->pixels) {
                ok = dataset_decode(feed->ds, i, m->input.w, m->input.h,
                                    chunk + (size_t)got * frame, err);
                if (ok < 0) {
                    rc = ok;
                    break;
                }
            }
            if (!ok)
                continue;
            if (!(a->image_ids[kept + got] = dup_str(id)))
                rc = strata_fail(err, STRATA_E_NOMEM, "out of memory");
            a->labels[kept + got] = label;
            got++;
        }
        feed->decode_seconds += now_seconds() - t0;
        if (feed->pixels)
            px = feed->pixels + (size_t)i0 * frame;
        cx->offset = kept;
        if (rc == 0 && got > 0) {
            rc = infer_images(m, ws, px, got, a->probs + (size_t)kept * C, capture_batch, cx);
            if (rc < 0)
                rc = rc == STRATA_E_INTERRUPTED ? strata_fail(err, rc, "analysis interrupted")
                                                : strata_fail(err, rc, "inference failed");
        }
        kept += got;
        if (rc == 0 && cx->progress && cx->progress(cx->user, "forward", i0 + want, n))
            rc = strata_fail(err, STRATA_E_INTERRUPTED, "analysis interrupted");
    }
    free(chunk);
    a->n = kept;
    return rc;
}

/* The pipeline over a feed of n images: forward with capture, then each
 * layer, then what the bundle derives. */
static int run_feed(struct model *m, const struct analysis_params *p, struct image_feed *feed,
                    int n, struct analysis *out, analysis_progress_fn progress, void *user,
                    char *err)
{
    memset(out, 0, sizeof *out);
    double t_start = now_seconds();
    int rc = check_params(p, err);
    if (rc < 0)
        return rc;
    if (n < 2)
        return strata_fail(err, STRATA_E_ARG, "the analysis needs at least 2 images, got %d", n);
    int k_of[MODEL_MAX_LAYERS];
    if ((rc = resolve_overrides(m, p, k_of, err)) < 0)
        return rc;
    for (int i = 0; feed->labels && i < n; i++)
        if (feed->labels[i] < 0 || feed->labels[i] >= m->n_classes)
            return strata_fail(err, STRATA_E_ARG, "image %d: label %d out of range", i,
                               feed->labels[i]);

    struct analysis *a = out;
    if ((rc = bundle_init(a, m, p, k_of, n, err)) < 0)
        goto fail;
    int C = m->n_classes;
    a->image_ids = alloc_n((size_t)n, sizeof(char *));
    a->labels = alloc_n((size_t)n, sizeof(int));
    a->pred = alloc_n((size_t)n, sizeof(int));
    a->probs = alloc_n((size_t)n * C, sizeof(float));
    if (!a->image_ids || !a->labels || !a->pred || !a->probs) {
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory for %d images", n);
        goto fail;
    }

    /* Forward with capture. */
    struct model_workspace ws;
    int batch = p->batch < n ? p->batch : n;
    if ((rc = model_workspace_init(&ws, m, batch, err)) < 0)
        goto fail;
    struct capture_ctx cx = {.a = a, .progress = progress, .user = user, .total = n};
    double t0 = now_seconds();
    rc = forward_feed(m, &ws, batch, feed, n, &cx, err);
    double t1 = now_seconds();
    model_workspace_free(&ws);
    if (rc < 0)
        goto fail;
    if (a->n < 2) {
        rc = strata_fail(err, STRATA_E_ARG,
                         "the analysis needs at least 2 readable images, got %d of %d", a->n, n);
        goto fail;
    }
    for (int l = 0; l < m->n_layers; l++)
        if (k_of[l] > a->n) {
            rc = strata_fail(err, STRATA_E_ARG, "layer %s: k = %d but only %d images",
                             m->layers[l].cfg.name, k_of[l], a->n);
            goto fail;
        }
    if (a->k_max > a->n)
        a->k_max = a->n;
    a->seconds[ANALYSIS_STAGE_LOAD] = feed->decode_seconds;
    a->seconds[ANALYSIS_STAGE_REDUCE] = cx.reduce_seconds;
    a->seconds[ANALYSIS_STAGE_FORWARD] = (t1 - t0) - cx.reduce_seconds - feed->decode_seconds;
    for (int i = 0; i < a->n; i++)
        a->pred[i] = infer_argmax(a->probs + (size_t)i * C, C);

    /* Per layer. */
    for (int l = 0; l < m->n_layers; l++) {
        if (progress && progress(user, "clustering", l, m->n_layers)) {
            rc = strata_fail(err, STRATA_E_INTERRUPTED, "analysis interrupted");
            goto fail;
        }
        rc = a->layers[l].same_as >= 0 ? copy_layer(a, l, a->seconds, err)
                                       : analyse_layer(a, l, a->seconds, err);
        if (rc < 0)
            goto fail;
    }
    if (progress)
        progress(user, "clustering", m->n_layers, m->n_layers);
    double t2 = now_seconds();
    if ((rc = derive_bundle(a, err)) < 0)
        goto fail;
    a->seconds[ANALYSIS_STAGE_SCORES] += now_seconds() - t2;
    a->seconds[ANALYSIS_STAGE_TOTAL] = now_seconds() - t_start;
    return 0;
fail:
    analysis_free(a);
    return rc;
}

int analysis_run_images(struct model *m, const struct analysis_params *p, const uint8_t *pixels,
                        char *const *ids, const int *labels, int n, struct analysis *out,
                        analysis_progress_fn progress, void *user, char *err)
{
    assert(m && p && pixels && ids && labels && out);
    struct image_feed feed = {.pixels = pixels, .ids = ids, .labels = labels};
    return run_feed(m, p, &feed, n, out, progress, user, err);
}

/* See analysis.h. */
int analysis_open_split(const struct model *m, const char *data_root, const char *split,
                        struct dataset *ds, char *err)
{
    int rc = dataset_open(ds, data_root, m->dataset, split, err);
    if (rc < 0)
        return rc;
    int same = ds->n_classes == m->n_classes;
    for (int c = 0; same && c < m->n_classes; c++)
        same = strcmp(ds->classes[c], m->classes[c]) == 0;
    if (!same) {
        char have[256] = "", want[256] = "";
        for (int c = 0; c < ds->n_classes; c++)
            snprintf(have + strlen(have), sizeof have - strlen(have), "%s%s", c ? ", " : "",
                     ds->classes[c]);
        for (int c = 0; c < m->n_classes; c++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%s", c ? ", " : "",
                     m->classes[c]);
        rc = strata_fail(err, STRATA_E_ARG, "%s has classes [%s] but model %s expects [%s]",
                         ds->dir, have, m->id, want);
        dataset_free(ds);
    }
    return rc;
}

struct load_progress {
    analysis_progress_fn fn;
    void *user;
};

static void on_image_loaded(int done, int total, void *user)
{
    struct load_progress *lp = user;
    if (lp->fn)
        lp->fn(lp->user, "loading images", done, total);
}

/* See analysis.h. */
int analysis_load_pixels(const struct model *m, struct dataset *ds, uint8_t **pixels,
                         analysis_progress_fn progress, void *user, char *err)
{
    *pixels = malloc((size_t)(ds->n ? ds->n : 1) * shape_size(m->input));
    if (!*pixels)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory for %d images", ds->n);
    struct load_progress lp = {progress, user};
    int n = dataset_load_images(ds, m->input.w, m->input.h, *pixels, on_image_loaded, &lp, err);
    if (n < 0) {
        free(*pixels);
        *pixels = NULL;
    }
    return n;
}

/* Runs the analysis on an opened split, decoding it batch by batch. */
static int run_dataset(struct model *m, const struct analysis_params *p, struct dataset *ds,
                       struct analysis *out, analysis_progress_fn progress, void *user, char *err)
{
    for (int i = 0; i < ds->n; i++)
        if (ds->items[i].label < 0 || ds->items[i].label >= m->n_classes)
            return strata_fail(err, STRATA_E_ARG, "%s: label %d out of range", ds->items[i].name,
                               ds->items[i].label);
    struct image_feed feed = {.ds = ds};
    return run_feed(m, p, &feed, ds->n, out, progress, user, err);
}

int analysis_run(struct model *m, const struct analysis_params *p, const char *data_root,
                 struct analysis *out, analysis_progress_fn progress, void *user, char *err)
{
    memset(out, 0, sizeof *out);
    int rc = check_params(p, err);
    if (rc < 0)
        return rc;
    struct dataset ds;
    if ((rc = analysis_open_split(m, data_root, p->split, &ds, err)) < 0)
        return rc;
    rc = run_dataset(m, p, &ds, out, progress, user, err);
    dataset_free(&ds);
    return rc;
}

/* ---- locate and recluster ----------------------------------------------- */

int analysis_locate(const struct analysis *a, const struct model *m,
                    const struct model_workspace *ws, int b, struct analysis_point *out,
                    char *err)
{
    assert(a && m && ws && out && b >= 0 && b < ws->max_batch);
    if (m->n_layers != a->n_layers)
        return strata_fail(err, STRATA_E_ARG, "model %s has %d layers, the analysis %d", m->id,
                           m->n_layers, a->n_layers);
    int max_d = 1;
    for (int l = 0; l < a->n_layers; l++) {
        const struct analysis_layer *L = &a->layers[l];
        const struct shape s = m->layers[l].out;
        if (s.h != L->out.h || s.w != L->out.w || s.c != L->out.c)
            return strata_fail(err, STRATA_E_ARG,
                               "layer %d (%s) of model %s does not match the analysis", l,
                               m->layers[l].cfg.name, m->id);
        if (L->d > max_d)
            max_d = L->d;
    }
    float *feat = malloc((size_t)max_d * sizeof(float));
    if (!feat)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    int have = -1; /* the root layer whose features are in feat */
    for (int l = 0; l < a->n_layers; l++) {
        const struct analysis_layer *L = &a->layers[l];
        int root = L->same_as >= 0 ? L->same_as : l;
        if (root != have) {
            struct shape s = m->layers[root].out;
            reduce_rows(model_output(ws, root) + (size_t)b * shape_size(s), 1, s, a->grid, feat);
            have = root;
        }
        float d2;
        out[l].cluster = kmeans_predict(L->c.centers, L->c.k, L->d, feat, &d2);
        out[l].dist2 = d2;
        float xy[2];
        struct pca_result view = pca_view(L);
        pca_transform(&view, feat, 1, xy);
        out[l].x = xy[0];
        out[l].y = xy[1];
    }
    free(feat);
    return 0;
}

int analysis_locate_in(const struct analysis *a, const struct model *m,
                       const struct model_workspace *ws, int b, int layer,
                       const struct analysis_clustering *c, int *cluster, char *err)
{
    assert(layer >= 0 && layer < a->n_layers && c->k >= 1);
    const struct analysis_layer *L = &a->layers[layer];
    int root = L->same_as >= 0 ? L->same_as : layer;
    const struct shape s = m->layers[root].out;
    float *feat = malloc((size_t)L->d * sizeof *feat);
    if (!feat)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    reduce_rows(model_output(ws, root) + (size_t)b * shape_size(s), 1, s, a->grid, feat);
    *cluster = kmeans_predict(c->centers, c->k, L->d, feat, NULL);
    free(feat);
    return 0;
}

int analysis_recluster(const struct analysis *a, int layer, int k,
                       struct analysis_clustering *out, char *err)
{
    memset(out, 0, sizeof *out);
    if (layer < 0 || layer >= a->n_layers)
        return strata_fail(err, STRATA_E_ARG, "layer %d out of range 0..%d", layer,
                           a->n_layers - 1);
    int k_hi = a->n < KMEANS_MAX_K ? a->n : KMEANS_MAX_K;
    if (k < 1 || k > k_hi)
        return strata_fail(err, STRATA_E_ARG, "k = %d out of range 1..%d", k, k_hi);
    const struct analysis_layer *L = &a->layers[layer];
    const float *X = analysis_features(a, layer);
    struct kmeans_result fit = {0};
    int rc = fit_layer(a, L->same_as >= 0 ? L->same_as : layer, X, a->n, L->d, k, &fit, err);
    if (rc < 0)
        return rc;
    double t[ANALYSIS_STAGE_COUNT] = {0};
    return clustering_from_fit(out, &fit, L, X, a->n, a->labels, a->n_classes, t, err);
}

/* ---- cache key ------------------------------------------------------------ */

const char *analysis_cache_dir(const char *flag)
{
    if (flag && *flag)
        return flag;
    const char *env = getenv("STRATA_CACHE");
    return env && *env ? env : ANALYSIS_DEFAULT_CACHE;
}

int analysis_cache_key(const struct model *m, const struct analysis_params *p,
                       const struct dataset *ds, uint64_t *key, char *err)
{
    int k_of[MODEL_MAX_LAYERS];
    int rc = check_params(p, err);
    if (rc < 0 || (rc = resolve_overrides(m, p, k_of, err)) < 0)
        return rc;
    uint64_t h = hash_str(HASH_FNV_OFFSET, "strata-analysis");
    h = hash_u64(h, ANALYSIS_FORMAT_VERSION);

    /* The model: its architecture as canonical JSON (sorted keys, so two
     * files that differ only in spacing or key order share a key), and every
     * parameter value. */
    char *json = m->json ? json_dumps(m->json, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
    if (m->json && !json)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    h = hash_str(h, json ? json : "");
    free(json);
    h = hash_str(h, m->id);
    h = hash_u64(h, m->n_params);
    h = hash_u64(h, hash_checksum64(m->params, m->n_params * sizeof(float)));
    if (m->onnx[0]) {
        /* an imported model's weights are in its file: a file replaced under
         * the same id (a model deleted and imported again) is another model */
        char file[sizeof m->dir + sizeof m->onnx + 2];
        struct stat st;
        snprintf(file, sizeof file, "%s/%s", m->dir, m->onnx);
        if (stat(file, &st) != 0)
            return strata_fail(err, STRATA_E_IO, "%s: %s", file, strerror(errno));
        h = hash_u64(h, (uint64_t)st.st_size);
        h = hash_u64(h, (uint64_t)st.st_ino);
        h = hash_u64(h, (uint64_t)st.st_mtim.tv_sec);
        h = hash_u64(h, (uint64_t)st.st_mtim.tv_nsec);
    }

    /* The data: every listed file by name, size and modification time. */
    h = hash_str(h, m->dataset);
    h = hash_str(h, p->split);
    h = hash_u64(h, (uint64_t)ds->n);
    for (int i = 0; i < ds->n; i++) {
        struct stat st;
        if (stat(ds->items[i].path, &st) != 0)
            return strata_fail(err, STRATA_E_IO, "%s: %s", ds->items[i].path, strerror(errno));
        h = hash_str(h, ds->items[i].name);
        h = hash_u64(h, (uint64_t)st.st_size);
        h = hash_u64(h, (uint64_t)st.st_mtim.tv_sec);
        h = hash_u64(h, (uint64_t)st.st_mtim.tv_nsec);
    }

    /* The parameters that change the result. */
    h = hash_u64(h, (uint64_t)p->grid);
    h = hash_u64(h, (uint64_t)p->k_max);
    h = hash_u64(h, (uint64_t)p->n_init);
    h = hash_u64(h, (uint64_t)p->max_iter);
    uint64_t tol_bits;
    memcpy(&tol_bits, &p->tol, sizeof tol_bits);
    h = hash_u64(h, tol_bits);
    h = hash_u64(h, p->seed);
    for (int l = 0; l < m->n_layers; l++)
        h = hash_u64(h, (uint64_t)k_of[l]);
    *key = h ? h : 1; /* 0 means "no key" */
    return 0;
}

/* ---- serialisation ---------------------------------------------------------- */

static void serialise(const struct analysis *a, struct cachefile_writer *w)
{
    int n = a->n, C = a->n_classes;
    cachefile_put_str(w, a->model_id);
    cachefile_put_str(w, a->dataset);
    cachefile_put_str(w, a->split);
    cachefile_put_u32(w, (uint32_t)a->grid);
    cachefile_put_u32(w, (uint32_t)a->k_max);
    cachefile_put_u32(w, (uint32_t)a->n_init);
    cachefile_put_u32(w, (uint32_t)a->max_iter);
    cachefile_put_f64(w, a->tol);
    cachefile_put_u64(w, a->seed);
    cachefile_put_u32(w, (uint32_t)n);
    cachefile_put_u32(w, (uint32_t)C);
    cachefile_put_u32(w, (uint32_t)a->n_layers);
    for (int c = 0; c < C; c++)
        cachefile_put_str(w, a->classes[c]);
    for (int i = 0; i < n; i++)
        cachefile_put_str(w, a->image_ids[i]);
    cachefile_put(w, a->labels, (size_t)n * 4);
    cachefile_put(w, a->pred, (size_t)n * 4);
    cachefile_put(w, a->probs, (size_t)n * C * 4);
    cachefile_put(w, a->seconds, sizeof a->seconds);
    for (int l = 0; l < a->n_layers; l++) {
        const struct analysis_layer *L = &a->layers[l];
        int d = L->d, k = L->c.k;
        cachefile_put_str(w, L->name);
        cachefile_put_str(w, L->type);
        cachefile_put_i32(w, L->out.h);
        cachefile_put_i32(w, L->out.w);
        cachefile_put_i32(w, L->out.c);
        cachefile_put_i32(w, d);
        cachefile_put_i32(w, L->grid);
        cachefile_put_i32(w, L->same_as);
        cachefile_put_i32(w, L->k_override);
        cachefile_put_i32(w, L->k_auto);
        if (L->same_as < 0)
            cachefile_put(w, L->features, (size_t)n * d * 4);
        cachefile_put(w, L->elbow, (size_t)a->k_max * 8);
        cachefile_put(w, L->pca_mean, (size_t)d * 4);
        cachefile_put(w, L->pca_components, (size_t)2 * d * 4);
        cachefile_put(w, L->pca_ratio, sizeof L->pca_ratio);
        cachefile_put(w, L->points, (size_t)2 * n * 4);
        cachefile_put_i32(w, k);
        cachefile_put(w, L->c.centers, (size_t)k * d * 4);
        cachefile_put(w, L->c.labels, (size_t)n * 4);
        cachefile_put_f64(w, L->c.inertia);
        cachefile_put_f64(w, L->c.silhouette);
        cachefile_put(w, L->c.center_points, (size_t)2 * k * 4);
        cachefile_put(w, L->c.dist2, (size_t)n * 4);
    }
}

int analysis_save(const struct analysis *a, const char *path, char *err)
{
    struct cachefile_writer w = {0};
    serialise(a, &w);
    int rc = cachefile_write(path, magic, ANALYSIS_FORMAT_VERSION, a->key, &w, err);
    free(w.p);
    return rc;
}

static int all_finite_f32(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}

static int labels_in_range(const int *v, int n, int k)
{
    for (int i = 0; i < n; i++)
        if (v[i] < 0 || v[i] >= k)
            return 0;
    return 1;
}

#define FORMAT_FAIL(...) \
    do { rc = strata_fail(err, STRATA_E_FORMAT, __VA_ARGS__); goto fail; } while (0)
#define NEED(ptr) \
    do { if (!(ptr)) { rc = r.bad ? strata_fail(err, STRATA_E_FORMAT, "%s: truncated payload", path) \
                                  : strata_fail(err, STRATA_E_NOMEM, "%s: out of memory", path); \
                       goto fail; } } while (0)

/* Parses a verified payload into *a. */
static int parse_payload(struct cachefile_reader *reader, const char *path, struct analysis *a,
                         char *err)
{
    struct cachefile_reader r = *reader;
    int rc = 0;
    cachefile_get_str(&r, a->model_id, sizeof a->model_id);
    cachefile_get_str(&r, a->dataset, sizeof a->dataset);
    cachefile_get_str(&r, a->split, sizeof a->split);
    a->grid = (int)cachefile_get_u32(&r);
    a->k_max = (int)cachefile_get_u32(&r);
    a->n_init = (int)cachefile_get_u32(&r);
    a->max_iter = (int)cachefile_get_u32(&r);
    a->tol = cachefile_get_f64(&r);
    a->seed = cachefile_get_u64(&r);
    uint32_t n = cachefile_get_u32(&r), C = cachefile_get_u32(&r), NL = cachefile_get_u32(&r);
    if (r.bad)
        FORMAT_FAIL("%s: truncated header fields", path);
    if (n < 2 || n > MAX_IMAGES || C < 1 || C > MODEL_MAX_CLASSES || NL < 1 ||
        NL > MODEL_MAX_LAYERS || a->grid < 1 || a->grid > ANALYSIS_MAX_GRID || a->k_max < 1 ||
        a->k_max > KMEANS_MAX_K || (uint32_t)a->k_max > n || a->n_init < 1 || a->max_iter < 1)
        FORMAT_FAIL("%s: counts out of range (n %u, classes %u, layers %u, grid %d, k_max %d)",
                    path, n, C, NL, a->grid, a->k_max);
    a->n = (int)n;
    a->n_classes = (int)C;
    a->n_layers = (int)NL;
    a->classes = alloc_n(C, sizeof(char *));
    a->image_ids = alloc_n(n, sizeof(char *));
    a->layers = alloc_n(NL, sizeof *a->layers);
    NEED(a->classes && a->image_ids && a->layers);
    for (uint32_t l = 0; l < NL; l++)
        a->layers[l].same_as = -1; /* so that a partial bundle frees correctly */
    for (uint32_t c = 0; c < C; c++)
        NEED(a->classes[c] = cachefile_get_str_alloc(&r, MAX_STR));
    for (uint32_t i = 0; i < n; i++)
        NEED(a->image_ids[i] = cachefile_get_str_alloc(&r, MAX_STR));
    NEED(a->labels = cachefile_get_array(&r, n, 4));
    NEED(a->pred = cachefile_get_array(&r, n, 4));
    NEED(a->probs = cachefile_get_array(&r, (size_t)n * C, 4));
    cachefile_get(&r, a->seconds, sizeof a->seconds);
    if (!labels_in_range(a->labels, (int)n, (int)C) || !labels_in_range(a->pred, (int)n, (int)C))
        FORMAT_FAIL("%s: a class index is out of range", path);
    if (!all_finite_f32(a->probs, (size_t)n * C))
        FORMAT_FAIL("%s: a probability is not finite", path);

    for (uint32_t l = 0; l < NL; l++) {
        struct analysis_layer *L = &a->layers[l];
        cachefile_get_str(&r, L->name, sizeof L->name);
        cachefile_get_str(&r, L->type, sizeof L->type);
        L->out.h = cachefile_get_i32(&r);
        L->out.w = cachefile_get_i32(&r);
        L->out.c = cachefile_get_i32(&r);
        int d = cachefile_get_i32(&r);
        L->grid = cachefile_get_i32(&r);
        int same_as = cachefile_get_i32(&r);
        L->k_override = cachefile_get_i32(&r);
        L->k_auto = cachefile_get_i32(&r);
        if (r.bad)
            FORMAT_FAIL("%s: truncated at layer %u", path, l);
        if (same_as < -1 || same_as >= (int)l || (same_as >= 0 && a->layers[same_as].same_as >= 0))
            FORMAT_FAIL("%s: layer %u refers to layer %d", path, l, same_as);
        if (L->out.h < 1 || L->out.w < 1 || L->out.c < 1 || d < 1 ||
            (same_as >= 0 && d != a->layers[same_as].d) ||
            (same_as < 0 && (L->grid != feature_grid(L->out, a->grid) ||
                             d != feature_size(L->out, a->grid))) ||
            L->k_override < 0 || L->k_override > KMEANS_MAX_K || (uint32_t)L->k_override > n ||
            L->k_auto < 1 || L->k_auto > KMEANS_MAX_K || (uint32_t)L->k_auto > n)
            FORMAT_FAIL("%s: layer %u has inconsistent sizes", path, l);
        L->d = d;
        if (same_as < 0) {
            NEED(L->features = cachefile_get_array(&r, (size_t)n * d, 4));
        } else {
            L->features = a->layers[same_as].features;
        }
        L->same_as = same_as;
        NEED(L->elbow = cachefile_get_array(&r, (size_t)a->k_max, 8));
        NEED(L->pca_mean = cachefile_get_array(&r, (size_t)d, 4));
        NEED(L->pca_components = cachefile_get_array(&r, (size_t)2 * d, 4));
        cachefile_get(&r, L->pca_ratio, sizeof L->pca_ratio);
        NEED(L->points = cachefile_get_array(&r, (size_t)2 * n, 4));
        int k = cachefile_get_i32(&r);
        if (r.bad || k < 1 || k > KMEANS_MAX_K || (uint32_t)k > n)
            FORMAT_FAIL("%s: layer %u has k = %d", path, l, k);
        L->c.k = k;
        NEED(L->c.centers = cachefile_get_array(&r, (size_t)k * d, 4));
        NEED(L->c.labels = cachefile_get_array(&r, n, 4));
        L->c.inertia = cachefile_get_f64(&r);
        L->c.silhouette = cachefile_get_f64(&r);
        NEED(L->c.center_points = cachefile_get_array(&r, (size_t)2 * k, 4));
        NEED(L->c.dist2 = cachefile_get_array(&r, n, 4));
        if (!labels_in_range(L->c.labels, (int)n, k))
            FORMAT_FAIL("%s: layer %u has a cluster label out of range", path, l);
        if (!all_finite_f32(L->c.dist2, n) || !all_finite_f32(L->c.centers, (size_t)k * d))
            FORMAT_FAIL("%s: layer %u holds a non-finite value", path, l);
        if ((rc = clustering_derive(&L->c, (int)n, a->labels, (int)C, err)) < 0)
            goto fail;
    }
    if (r.bad)
        FORMAT_FAIL("%s: truncated payload", path);
    if (r.left)
        FORMAT_FAIL("%s: %zu unexpected bytes after the payload", path, r.left);
    if ((rc = derive_bundle(a, err)) < 0)
        goto fail;
    return 0;
fail:
    analysis_free(a);
    return rc;
}

#undef FORMAT_FAIL
#undef NEED

int analysis_load(const char *path, uint64_t expect_key, struct analysis *out, char *err)
{
    memset(out, 0, sizeof *out);
    double t0 = now_seconds();
    uint8_t *file;
    struct cachefile_reader r;
    uint64_t key;
    int rc = cachefile_read(path, magic, "analysis", ANALYSIS_FORMAT_VERSION, expect_key, &file,
                            &r, &key, err);
    if (rc < 0)
        return rc;
    rc = parse_payload(&r, path, out, err);
    if (rc == 0) {
        out->key = key;
        out->cached = 1;
        out->load_seconds = now_seconds() - t0;
        snprintf(out->cache_path, sizeof out->cache_path, "%s", path);
    }
    free(file);
    return rc;
}

/* ---- the cache ------------------------------------------------------------- */

int analysis_cache_create(const char *dir, char *err)
{
    char path[1024];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return strata_fail(err, STRATA_E_ARG, "cache folder name too long");
    for (char *p = path + 1;; p++) {
        if (*p == '/' || !*p) {
            char c = *p;
            *p = 0;
            if (mkdir(path, 0755) != 0 && errno != EEXIST)
                return strata_fail(err, STRATA_E_IO, "%s: cannot create: %s", path,
                                   strerror(errno));
            *p = c;
            if (!c)
                break;
        }
    }
    return 0;
}

/* The bundle was loaded for this model: same id, layers and classes. */
static int bundle_matches(const struct analysis *a, const struct model *m)
{
    if (strcmp(a->model_id, m->id) || a->n_layers != m->n_layers || a->n_classes != m->n_classes)
        return 0;
    for (int l = 0; l < m->n_layers; l++) {
        const struct shape s = m->layers[l].out;
        const struct analysis_layer *L = &a->layers[l];
        if (strcmp(L->name, m->layers[l].cfg.name) || s.h != L->out.h || s.w != L->out.w ||
            s.c != L->out.c)
            return 0;
    }
    for (int c = 0; c < m->n_classes; c++)
        if (strcmp(a->classes[c], m->classes[c]))
            return 0;
    return 1;
}

int analysis_load_or_run(struct model *m, const struct analysis_params *p, const char *data_root,
                         const char *cache_dir, struct analysis *out,
                         analysis_progress_fn progress, void *user, char *err)
{
    memset(out, 0, sizeof *out);
    int rc = check_params(p, err);
    if (rc < 0)
        return rc;
    struct dataset ds;
    if ((rc = analysis_open_split(m, data_root, p->split, &ds, err)) < 0)
        return rc;
    uint64_t key;
    if ((rc = analysis_cache_key(m, p, &ds, &key, err)) < 0) {
        dataset_free(&ds);
        return rc;
    }
    char path[1024] = "", note[STRATA_ERR_LEN] = "";
    if (cache_dir) {
        int len = snprintf(path, sizeof path, "%s/%s-%016llx.analysis", cache_dir, m->id,
                           (unsigned long long)key);
        if (len < 0 || (size_t)len >= sizeof path) {
            dataset_free(&ds);
            return strata_fail(err, STRATA_E_ARG, "cache folder name too long");
        }
        char lerr[STRATA_ERR_LEN];
        int lrc = analysis_load(path, key, out, lerr);
        if (lrc == 0 && bundle_matches(out, m)) {
            out->n_threads = p->n_threads;
            dataset_free(&ds);
            return 0;
        }
        if (lrc == 0) {
            analysis_free(out);
            snprintf(note, sizeof note, "%s: made for another model; recomputed", path);
        } else if (lrc != STRATA_E_NOTFOUND) {
            snprintf(note, sizeof note, "%.400s; recomputed", lerr);
        }
    }
    rc = run_dataset(m, p, &ds, out, progress, user, err);
    dataset_free(&ds);
    if (rc < 0)
        return rc;
    out->key = key;
    if (cache_dir) {
        char werr[STRATA_ERR_LEN];
        if (analysis_cache_create(cache_dir, werr) < 0 || analysis_save(out, path, werr) < 0)
            snprintf(note + strlen(note), sizeof note - strlen(note), "%scache not written: %.400s",
                     note[0] ? "; " : "", werr);
        else
            snprintf(out->cache_path, sizeof out->cache_path, "%s", path);
    }
    snprintf(out->cache_note, sizeof out->cache_note, "%s", note);
    return 0;
}
