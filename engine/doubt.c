/*
 * doubt.c — the doubt score: per-layer class Gaussians, nonconformity, conformal calibration, baselines, evaluation metrics, and
 * the cache files (see doubt.h and docs/doubt.md).
 *
 * Features. A probed layer's row is, per channel, the mean of its output
 * over space (average-pooled to the grid) followed, for an output with more
 * than one position, by the standard deviation over space: the mean says
 * which channels fire, the spread whether they fire everywhere (a
 * homogeneous scene, a texture) or in one place (an object). A 1 x 1 output
 * (dense, global average pooling) is taken as is.
 *
 * Cost. Calibration runs every training image through the model once, keeps
 * every probed layer's feature rows only until that layer's Gaussians are
 * fitted (one SYRK for the covariance, one Cholesky factorisation and a
 * triangular inverse), and keeps per layer a mean row, a d x d whitening
 * matrix and the whitened class centres. Scoring an image costs one
 * triangular matrix product per probed layer (d^2 / 2 multiply-adds) and C
 * distances in the whitened space; doubt_score_images batches the products.
 */
#include "doubt.h"
#include "cachefile.h"
#include "hash.h"

#include <assert.h>
#include <cblas.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <lapacke.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "dataset.h"
#include "image.h"
#include "infer.h"
#include "reduce.h"
#include "train.h"

/* What the cached numbers mean: part of every cache key, so that a change
 * of the recipe (terms, weights, layers, K) never reuses stale files. */
static const char DOUBT_RECIPE[] =
    "features = per-channel spatial mean (grid) + per-channel spatial std (maps > 1x1); "
    "alpha = mean_deep_half(0.5 (logz_knn10 + logz_maha)) + mean(1 - P_lda(y)) + max(0, z_energy); "
    "conformal, plotting positions (i+1)/(n+1), exponential tails";



static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* ---- names and levels ------------------------------------------------------ */

const char *doubt_level_name(enum doubt_level level)
{
    switch (level) {
    case DOUBT_LEVEL_LOW: return "low";
    case DOUBT_LEVEL_MEDIUM: return "medium";
    case DOUBT_LEVEL_HIGH: return "high";
    }
    return "?";
}

enum doubt_level doubt_level_of(float doubt)
{
    return doubt >= DOUBT_HIGH ? DOUBT_LEVEL_HIGH
           : doubt >= DOUBT_MEDIUM ? DOUBT_LEVEL_MEDIUM
                                   : DOUBT_LEVEL_LOW;
}

const char *doubt_method_name(enum doubt_method m)
{
    switch (m) {
    case DOUBT_METHOD_DOUBT: return "doubt";
    case DOUBT_METHOD_MSP: return "msp";
    case DOUBT_METHOD_ENERGY: return "energy";
    case DOUBT_N_METHODS: break;
    }
    return "?";
}

void doubt_params_default(struct doubt_params *p)
{
    memset(p, 0, sizeof *p);
    p->shrinkage = DOUBT_DEFAULT_SHRINKAGE;
    p->grid = DOUBT_DEFAULT_GRID;
    p->validation_split = -1;
    p->split_seed = 0;
    p->batch = 32;
}

static int check_params(const struct doubt_params *p, char *err)
{
    if (!(p->shrinkage >= 0 && p->shrinkage < 1))
        return strata_fail(err, STRATA_E_ARG, "doubt: shrinkage %g out of range [0, 1)",
                           (double)p->shrinkage);
    if (p->grid < 1 || p->grid > ANALYSIS_MAX_GRID)
        return strata_fail(err, STRATA_E_ARG, "doubt: grid = %d out of range 1..%d", p->grid,
                           ANALYSIS_MAX_GRID);
    if (p->validation_split >= 1)
        return strata_fail(err, STRATA_E_ARG, "doubt: validation_split %g must be below 1",
                           (double)p->validation_split);
    if (p->batch < 1)
        return strata_fail(err, STRATA_E_ARG, "doubt: batch = %d must be positive", p->batch);
    return 0;
}

/* ---- the train / calibration split ------------------------------------------ */

int doubt_split_train(const int *labels, int n, int n_classes, float fraction, uint64_t seed,
                      uint8_t *is_cal)
{
    /* Mirrors stratified_split in train.c draw for draw: the generator is
     * seeded with the training seed and its first use is this one shuffle. */
    int *order = malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
    assert(order);
    for (int i = 0; i < n; i++)
        order[i] = i;
    struct rng r;
    rng_seed(&r, seed);
    rng_shuffle_int(&r, order, n);
    memset(is_cal, 0, (size_t)n);
    int held = 0;
    for (int c = 0; c < n_classes; c++) {
        int count = 0;
        for (int i = 0; i < n; i++)
            count += labels[i] == c;
        int hold = (int)lround(count * (double)fraction), taken = 0;
        for (int i = 0; i < n && taken < hold; i++)
            if (labels[order[i]] == c) {
                is_cal[order[i]] = 1;
                taken++;
                held++;
            }
    }
    free(order);
    return held;
}

/* ---- features ------------------------------------------------------------------ */

/* A layer is probed when it has features of its own (flatten and dropout
 * repeat the layer before them) and is not the output (its probabilities are
 * what MSP already looks at). */
static int is_probe(const struct model *m, int l)
{
    enum layer_kind k = m->layers[l].cfg.kind;
    return l < m->n_layers - 1 && k != LAYER_FLATTEN && k != LAYER_DROPOUT;
}

int doubt_feature_dim(int h, int w, int c, int grid)
{
    return reduce_avgpool_dim(h, w, c, grid) + (h * w > 1 ? c : 0);
}

void doubt_features(float *out, const float *act, int n, int h, int w, int c, int grid)
{
    assert(out && act && n >= 0 && h >= 1 && w >= 1 && c >= 1 && grid >= 1);
    int d_mean = reduce_avgpool_dim(h, w, c, grid), d = doubt_feature_dim(h, w, c, grid);
    size_t hw = (size_t)h * w, in_size = hw * c;
    enum { CHUNK = 64 };
    double mean[CHUNK], ss[CHUNK];
    for (int s = 0; s < n; s++) {
        const float *a = act + (size_t)s * in_size;
        float *o = out + (size_t)s * d;
        reduce_avgpool(a, 1, h, w, c, grid, o);
        if (hw == 1)
            continue;
        /* Two passes per block of channels (mean, then squared deviations
         * from it), in double: no cancellation of E[x^2] - E[x]^2. */
        for (int c0 = 0; c0 < c; c0 += CHUNK) {
            int cn = c - c0 < CHUNK ? c - c0 : CHUNK;
            for (int j = 0; j < cn; j++)
                mean[j] = ss[j] = 0;
            for (size_t p = 0; p < hw; p++)
                for (int j = 0; j < cn; j++)
                    mean[j] += a[p * c + c0 + j];
            for (int j = 0; j < cn; j++)
                mean[j] /= (double)hw;
            for (size_t p = 0; p < hw; p++)
                for (int j = 0; j < cn; j++) {
                    double t = a[p * c + c0 + j] - mean[j];
                    ss[j] += t * t;
                }
            for (int j = 0; j < cn; j++)
                o[d_mean + c0 + j] = (float)sqrt(ss[j] / (double)hw);
        }
    }
}

/* Feature rows of samples [b0, b0 + n) of layer l's output in ws
 * (doubt_features). */
static void layer_rows(const struct model_workspace *ws, const struct model *m, int l, int grid,
                       int b0, int n, float *rows)
{
    struct shape s = m->layers[l].out;
    doubt_features(rows, model_output(ws, l) + (size_t)b0 * shape_size(s), n, s.h, s.w, s.c, grid);
}

/* ---- nearest training rows ---------------------------------------------------------- */

/* For nq feature rows Q[nq * d] of one layer: the mean squared distance to
 * their DOUBT_K nearest reference rows, dist[nq]. sims is scratch of
 * nq * n_ref floats. Squared distances come from |q|^2 + |r|^2 - 2 q.r
 * (one GEMM for the dot products), clamped at 0 against rounding; ties go
 * to the lower reference index. Insertion into a sorted list of K: K is
 * small and most candidates fail the first comparison. */
static void knn_layer(const struct doubt_layer_ref *R, int n_ref, const float *Q, int nq,
                      float *sims, float *dist)
{
    int d = R->d, K = DOUBT_K < n_ref ? DOUBT_K : n_ref;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, n_ref, d, 1.0f, Q, d, R->ref, d,
                0.0f, sims, n_ref);
    for (int i = 0; i < nq; i++) {
        const float *qi = Q + (size_t)i * d;
        double qn = 0;
        for (int j = 0; j < d; j++)
            qn += (double)qi[j] * qi[j];
        float best[DOUBT_K];
        int have = 0;
        const float *s = sims + (size_t)i * n_ref;
        for (int r = 0; r < n_ref; r++) {
            float d2 = (float)qn + R->ref_norm2[r] - 2.0f * s[r];
            if (d2 < 0)
                d2 = 0;
            if (have == K && d2 >= best[K - 1])
                continue;
            int pos = have < K ? have++ : K - 1;
            while (pos > 0 && best[pos - 1] > d2) {
                best[pos] = best[pos - 1];
                pos--;
            }
            best[pos] = d2;
        }
        double sum = 0;
        for (int t = 0; t < have; t++)
            sum += best[t];
        dist[i] = (float)(sum / have);
    }
}

/* ---- the class Gaussians of one layer -------------------------------------------- */

/* For nq feature rows X[nq * d] of one layer (overwritten: centred, then
 * whitened in place, Z = (X - mean) W with one triangular matrix product):
 * the squared Mahalanobis distance to the nearest class centre, dist[nq],
 * and the class posteriors under equal priors, post[nq * C],
 * P(c) = exp(-M_c / 2) / sum_c' exp(-M_c' / 2), computed relative to the
 * nearest centre so that nothing overflows. */
static void gauss_layer(const struct doubt_layer_ref *R, int C, float *X, int nq, float *dist,
                        float *post)
{
    int d = R->d;
    for (int i = 0; i < nq; i++)
        for (int j = 0; j < d; j++)
            X[(size_t)i * d + j] -= R->mean[j];
    cblas_strmm(CblasRowMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, nq, d, 1.0f,
                R->white, d, X, d);
    double m[MODEL_MAX_CLASSES];
    for (int i = 0; i < nq; i++) {
        const float *z = X + (size_t)i * d;
        double best = INFINITY;
        for (int c = 0; c < C; c++) {
            const float *nu = R->centres + (size_t)c * d;
            double acc = 0;
            for (int j = 0; j < d; j++) {
                double t = (double)z[j] - nu[j];
                acc += t * t;
            }
            m[c] = acc;
            if (acc < best)
                best = acc;
        }
        double sum = 0;
        for (int c = 0; c < C; c++)
            sum += exp(-(m[c] - best) / 2);
        for (int c = 0; c < C; c++)
            post[(size_t)i * C + c] = (float)(exp(-(m[c] - best) / 2) / sum);
        dist[i] = (float)best;
    }
}

/* Fits the class Gaussians of one layer from the reference rows X[n * d]
 * (overwritten) with labels y: the mean row, the class means, the pooled
 * within-class covariance S = (1/n) sum_i (x_i - mu_y_i)(x_i - mu_y_i)^T
 * shrunk towards its mean variance, S' = (1 - s) S + s (tr S / d) I
 * (Ledoit & Wolf's target; with fewer images than features S alone is
 * singular), its Cholesky factor S' = U^T U, and W = U^-1, so that
 * |(x - mu) W|^2 = (x - mu)^T S'^-1 (x - mu). When the factorisation fails
 * (a layer whose features hardly vary) the shrinkage is raised tenfold until
 * it succeeds. */
static int fit_layer(struct doubt_layer_ref *R, int C, float shrinkage, float *X, const int *y,
                     int n, char *err)
{
    int d = R->d;
    double *mu = calloc((size_t)C * d, sizeof *mu), *all = calloc((size_t)d, sizeof *all);
    int *count = calloc((size_t)C, sizeof *count);
    float *S = malloc((size_t)d * d * sizeof *S);
    int rc = 0;
    if (!mu || !all || !count || !S) {
        rc = strata_fail(err, STRATA_E_NOMEM, "doubt: out of memory fitting layer %s", R->name);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        count[y[i]]++;
        for (int j = 0; j < d; j++) {
            mu[(size_t)y[i] * d + j] += X[(size_t)i * d + j];
            all[j] += X[(size_t)i * d + j];
        }
    }
    for (int j = 0; j < d; j++)
        R->mean[j] = (float)(all[j] / n);
    for (int c = 0; c < C; c++)
        for (int j = 0; j < d; j++)
            mu[(size_t)c * d + j] /= count[c];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++)
            X[(size_t)i * d + j] -= (float)mu[(size_t)y[i] * d + j];
    double s = shrinkage;
    for (;;) {
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, d, n, 1.0f / n, X, d, 0.0f, S, d);
        double tr = 0;
        for (int j = 0; j < d; j++)
            tr += S[(size_t)j * d + j];
        /* The floor keeps a layer of constant features (tr = 0) factorisable. */
        double target = tr / d + 1e-12;
        for (int a = 0; a < d; a++) {
            for (int b = a; b < d; b++)
                S[(size_t)a * d + b] = (float)((1 - s) * S[(size_t)a * d + b]);
            S[(size_t)a * d + a] += (float)(s * target + 1e-12);
            for (int b = 0; b < a; b++)
                S[(size_t)a * d + b] = 0;
        }
        if (LAPACKE_spotrf(LAPACK_ROW_MAJOR, 'U', d, S, d) == 0)
            break;
        if (s >= 0.5) {
            rc = strata_fail(err, STRATA_E_ARG,
                             "doubt: the covariance of layer %s cannot be factorised", R->name);
            goto done;
        }
        s = s > 0 ? fmin(10 * s, 0.5) : 1e-3;
    }
    if (LAPACKE_strtri(LAPACK_ROW_MAJOR, 'U', 'N', d, S, d) != 0) {
        rc = strata_fail(err, STRATA_E_ARG, "doubt: the covariance of layer %s is singular", R->name);
        goto done;
    }
    memcpy(R->white, S, (size_t)d * d * sizeof *S);
    /* Whitened class centres (mu_c - mean) W, by the same product as queries. */
    for (int c = 0; c < C; c++)
        for (int j = 0; j < d; j++)
            R->centres[(size_t)c * d + j] = (float)(mu[(size_t)c * d + j] - R->mean[j]);
    cblas_strmm(CblasRowMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, C, d, 1.0f,
                R->white, d, R->centres, d);
done:
    free(mu);
    free(all);
    free(count);
    free(S);
    return rc;
}

/* ---- nonconformity ------------------------------------------------------------------ */

/* A distance on a log scale, less its calibration median, over its spread:
 * squared distances of images to a data set are skewed with a long upper
 * tail, their logs nearly symmetric, so a median and an interquartile
 * spread describe them; 1e-6 keeps a zero distance finite. */
static double log_z(float dist, float median, float scale)
{
    return log((dist + 1e-6) / (median + 1e-6)) / scale;
}

/* The standardised distance of one layer: the mean of the K-NN and the
 * Mahalanobis log-z. */
static double layer_z(const struct doubt_layer_ref *R, float knn, float maha)
{
    return 0.5 * (log_z(knn, R->knn_median, R->knn_scale) + log_z(maha, R->maha_median, R->maha_scale));
}

/* The three terms of an image with label y from its per-layer standardised
 * distances z[L], posteriors post[L * C] and energy. */
static void terms(const struct doubt_model *dm, const float *z, const float *post, float energy,
                  int y, double *distance, double *disagree, double *energy_z)
{
    double s = 0, a = 0;
    int n = 0;
    for (int l = 0; l < dm->n_layers; l++) {
        if (dm->layers[l].in_distance) {
            s += z[l];
            n++;
        }
        a += 1.0 - post[(size_t)l * dm->n_classes + y];
    }
    *distance = s / n;
    *disagree = a / dm->n_layers;
    *energy_z = (energy - dm->energy_median) / dm->energy_scale;
}

/* alpha(x, y) = distance + disagreement + max(0, z_E): every term in units
 * of the held-out images' own spread (the disagreement is a share in
 * [0, 1]), weight 1 each; an energy below the held-out median (a more
 * confident output than usual) adds nothing rather than vouching for the
 * image. docs/doubt.md has why these terms and these weights. */
static double nonconformity(const struct doubt_model *dm, const float *z, const float *post,
                            float energy, int y)
{
    double dist, dis, ez;
    terms(dm, z, post, energy, y, &dist, &dis, &ez);
    return dist + dis + fmax(0.0, ez);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Quantile q of sorted v[n] with linear interpolation (numpy's default). */
static double quantile_sorted(const float *v, int n, double q)
{
    double pos = q * (n - 1);
    int lo = (int)floor(pos);
    if (lo >= n - 1)
        return v[n - 1];
    return v[lo] + (pos - lo) * ((double)v[lo + 1] - v[lo]);
}

/* Number of v[0..n) (sorted) strictly below x, and of those equal to x. */
static void rank_in_sorted(const float *v, int n, float x, int *below, int *equal)
{
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (v[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    int b = lo;
    hi = n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (v[mid] <= x)
            lo = mid + 1;
        else
            hi = mid;
    }
    *below = b;
    *equal = lo - b;
}

/* The calibrated doubt of a nonconformity alpha, against the n sorted
 * calibration values c[]: the empirical distribution function with plotting
 * positions F(c_i) = (i + 1) / (n + 1) (i from 0), linear between them, and
 * exponential tails beyond the ends fitted through the median and the end
 * point (1 - F falls from 1/2 at the median to 1/(n+1) at the maximum; the
 * tail continues that decay), so that the doubt keeps ordering images
 * beyond the most unusual calibration image instead of giving them all the
 * same value. Strictly inside (0, 1). */
static double calibrated_doubt(const float *c, int n, float alpha)
{
    double med = quantile_sorted(c, n, 0.5), lnr = log((n + 1) / 2.0);
    if (alpha < c[0]) {
        double span = med - c[0];
        double decay = span > 0 ? exp(-((double)c[0] - alpha) * lnr / span) : 0;
        return decay / (n + 1);
    }
    if (alpha > c[n - 1]) {
        double span = c[n - 1] - med;
        double decay = span > 0 ? exp(-((double)alpha - c[n - 1]) * lnr / span) : 0;
        return 1 - decay / (n + 1);
    }
    int below, equal;
    rank_in_sorted(c, n, alpha, &below, &equal);
    /* c[below - 1] < alpha <= c[below]; with alpha equal to a run of values
     * take the top of the run. */
    if (equal)
        return (double)(below + equal) / (n + 1);
    double x0 = c[below - 1], x1 = c[below];
    double f0 = (double)below / (n + 1), f1 = (double)(below + 1) / (n + 1);
    return f0 + (alpha - x0) / (x1 - x0) * (f1 - f0);
}



/* ---- memory ------------------------------------------------------------------- */

void doubt_free(struct doubt_model *dm)
{
    if (!dm)
        return;
    for (int l = 0; dm->layers && l < dm->n_layers; l++) {
        struct doubt_layer_ref *R = &dm->layers[l];
        free(R->ref);
        free(R->ref_norm2);
        free(R->mean);
        free(R->white);
        free(R->centres);
        free(R->cal_z);
    }
    free(dm->layers);
    free(dm->cal_alpha);
    memset(dm, 0, sizeof *dm);
}

/* Per-batch scratch of the scoring path, allocated once per call. */
struct scratch {
    int max_batch;
    float *rows;    /* [max_batch * max d] feature rows of one layer */
    float *sims;    /* [max_batch * n_ref] dot products with the reference rows */
    float *ktmp;    /* [max_batch] K-NN distances of one layer */
    float *mtmp;    /* [max_batch] Mahalanobis distances of one layer */
    float *ptmp;    /* [max_batch * n_classes] posteriors of one layer */
    float *knn;     /* [max_batch * n_layers] */
    float *maha;    /* [max_batch * n_layers] */
    float *post;    /* [max_batch * n_layers * n_classes] */
};

static void scratch_free(struct scratch *s)
{
    free(s->rows);
    free(s->sims);
    free(s->ktmp);
    free(s->mtmp);
    free(s->ptmp);
    free(s->knn);
    free(s->maha);
    free(s->post);
    memset(s, 0, sizeof *s);
}

static int scratch_init(struct scratch *s, const struct doubt_model *dm, int max_batch, char *err)
{
    memset(s, 0, sizeof *s);
    int max_d = 1, L = dm->n_layers, C = dm->n_classes;
    for (int l = 0; l < L; l++)
        if (dm->layers[l].d > max_d)
            max_d = dm->layers[l].d;
    size_t B = (size_t)max_batch;
    s->max_batch = max_batch;
    s->rows = malloc(B * max_d * sizeof(float));
    s->sims = malloc(B * dm->n_ref * sizeof(float));
    s->ktmp = malloc(B * sizeof(float));
    s->mtmp = malloc(B * sizeof(float));
    s->ptmp = malloc(B * C * sizeof(float));
    s->knn = malloc(B * L * sizeof(float));
    s->maha = malloc(B * L * sizeof(float));
    s->post = malloc(B * L * C * sizeof(float));
    if (!s->rows || !s->sims || !s->ktmp || !s->mtmp || !s->ptmp || !s->knn || !s->maha || !s->post) {
        scratch_free(s);
        return strata_fail(err, STRATA_E_NOMEM, "doubt: out of memory for scoring scratch");
    }
    return 0;
}

/* K-NN and Mahalanobis distances and class posteriors at every probed layer
 * for samples [b0, b0 + nb) of the batch in ws: s->knn[i * L + l],
 * s->maha[i * L + l], s->post[(i * L + l) * C + c]. */
static void probe_batch(const struct doubt_model *dm, const struct model *m,
                        const struct model_workspace *ws, int b0, int nb, struct scratch *s)
{
    int L = dm->n_layers, C = dm->n_classes;
    assert(nb <= s->max_batch);
    for (int l = 0; l < L; l++) {
        const struct doubt_layer_ref *R = &dm->layers[l];
        layer_rows(ws, m, R->layer, dm->grid, b0, nb, s->rows);
        knn_layer(R, dm->n_ref, s->rows, nb, s->sims, s->ktmp);
        gauss_layer(R, C, s->rows, nb, s->mtmp, s->ptmp); /* overwrites rows */
        for (int i = 0; i < nb; i++) {
            s->knn[(size_t)i * L + l] = s->ktmp[i];
            s->maha[(size_t)i * L + l] = s->mtmp[i];
            memcpy(s->post + ((size_t)i * L + l) * C, s->ptmp + (size_t)i * C, (size_t)C * sizeof(float));
        }
    }
}

/* Standardised per-layer distances z[L] of sample i of a probed batch. */
static void batch_z(const struct doubt_model *dm, const struct scratch *s, int i, float *z)
{
    int L = dm->n_layers;
    for (int l = 0; l < L; l++)
        z[l] = (float)layer_z(&dm->layers[l], s->knn[(size_t)i * L + l], s->maha[(size_t)i * L + l]);
}

static int check_model(const struct doubt_model *dm, const struct model *m, char *err)
{
    if (dm->n_classes != m->n_classes)
        return strata_fail(err, STRATA_E_ARG, "doubt model for %s has %d classes, model %s has %d",
                           dm->model_id, dm->n_classes, m->id, m->n_classes);
    for (int l = 0; l < dm->n_layers; l++) {
        const struct doubt_layer_ref *R = &dm->layers[l];
        if (R->layer >= m->n_layers || strcmp(R->name, m->layers[R->layer].cfg.name) != 0)
            return strata_fail(err, STRATA_E_ARG, "doubt model for %s probes layer %s, not in model %s",
                               dm->model_id, R->name, m->id);
        struct shape s = m->layers[R->layer].out;
        if (doubt_feature_dim(s.h, s.w, s.c, dm->grid) != R->d)
            return strata_fail(err, STRATA_E_ARG,
                               "layer %s of model %s does not match its doubt model", R->name, m->id);
    }
    return 0;
}

/* Arg-max prediction, maximum softmax probability and energy of sample b.
 * The energy needs logits: when the last layer is a dense layer with a fused
 * softmax they are recomputed from its input (one small matrix-vector
 * product); after a standalone softmax layer they are the layer before's
 * output; otherwise the last output is taken as the logits. */
static void baselines(const struct model *m, const struct model_workspace *ws, int b, int *pred,
                      float *msp, float *energy)
{
    int C = m->n_classes, last = m->n_layers - 1;
    const struct layer *Ll = &m->layers[last];
    const float *p = model_output(ws, last) + (size_t)b * C;
    *pred = infer_argmax(p, C);
    *msp = p[*pred];
    double z[MODEL_MAX_CLASSES] = {0};
    if (Ll->cfg.kind == LAYER_DENSE && Ll->cfg.activation == ACT_SOFTMAX) {
        size_t in_size = shape_size(Ll->in);
        const float *in = last > 0 ? model_output(ws, last - 1) + (size_t)b * in_size
                                   : ws->input + (size_t)b * in_size;
        for (int u = 0; u < C; u++)
            z[u] = Ll->w.bias ? Ll->w.bias[u] : 0;
        for (size_t i = 0; i < in_size; i++) {
            const float *wi = Ll->w.kernel + i * (size_t)C;
            double x = in[i];
            for (int u = 0; u < C; u++)
                z[u] += x * wi[u];
        }
    } else if (Ll->cfg.kind == LAYER_SOFTMAX && last > 0) {
        const float *in = model_output(ws, last - 1) + (size_t)b * C;
        for (int u = 0; u < C; u++)
            z[u] = in[u];
    } else {
        for (int u = 0; u < C; u++)
            z[u] = p[u];
    }
    double mx = z[0];
    for (int u = 1; u < C; u++)
        if (z[u] > mx)
            mx = z[u];
    double se = 0;
    for (int u = 0; u < C; u++)
        se += exp(z[u] - mx);
    *energy = (float)-(mx + log(se));
}

/* ---- calibration ------------------------------------------------------------------ */

static int report(analysis_progress_fn progress, void *user, const char *stage, long done,
                  long total, char *err)
{
    if (progress && progress(user, stage, done, total))
        return strata_fail(err, STRATA_E_INTERRUPTED, "doubt calibration interrupted");
    return 0;
}



/* Median and spread of log(v / median) over n values (tmp: n floats of
 * scratch): the interquartile range over 1.349 (the standard deviation of a
 * normal distribution), floored at 0.05 so that a layer whose distances
 * hardly vary cannot dominate the sum. */
static void log_stats(const float *v, int n, float *tmp, float *median, float *scale)
{
    memcpy(tmp, v, (size_t)n * sizeof *tmp);
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_float);
    double med = quantile_sorted(tmp, n, 0.5);
    for (int i = 0; i < n; i++)
        tmp[i] = (float)log((tmp[i] + 1e-6) / (med + 1e-6));
    double iqr = quantile_sorted(tmp, n, 0.75) - quantile_sorted(tmp, n, 0.25);
    *median = (float)med;
    *scale = (float)fmax(iqr / 1.349, 0.05);
}

static int calibrate_core(struct model *m, const struct doubt_params *p,
                          const uint8_t *ref_pixels, const int *ref_labels, int n_ref,
                          const uint8_t *cal_pixels, const int *cal_labels, int n_cal,
                          struct doubt_model *out, analysis_progress_fn progress, void *user,
                          char *err)
{
    memset(out, 0, sizeof *out);
    int rc = check_params(p, err);
    if (rc < 0)
        return rc;
    int C = m->n_classes;
    if (n_ref < 2 || n_cal < 2)
        return strata_fail(err, STRATA_E_ARG,
                           "doubt: %d reference and %d held-out calibration images for %s; at "
                           "least 2 of each are needed", n_ref, n_cal, m->id);
    int count[MODEL_MAX_CLASSES] = {0};
    for (int i = 0; i < n_ref; i++) {
        if (ref_labels[i] < 0 || ref_labels[i] >= C)
            return strata_fail(err, STRATA_E_ARG, "doubt: label %d of reference image %d is not a class of %s",
                               ref_labels[i], i, m->id);
        count[ref_labels[i]]++;
    }
    for (int c = 0; c < C; c++)
        if (!count[c])
            return strata_fail(err, STRATA_E_ARG, "doubt: no reference image of class %s of %s",
                               m->classes[c], m->id);
    for (int i = 0; i < n_cal; i++)
        if (cal_labels[i] < 0 || cal_labels[i] >= C)
            return strata_fail(err, STRATA_E_ARG, "doubt: label %d of calibration image %d is not a class of %s",
                               cal_labels[i], i, m->id);
    int L = 0;
    for (int l = 0; l < m->n_layers; l++)
        L += is_probe(m, l);
    if (L == 0)
        return strata_fail(err, STRATA_E_ARG, "doubt: model %s has no hidden layer to probe", m->id);

    double t0 = now_seconds();
    snprintf(out->model_id, sizeof out->model_id, "%s", m->id);
    out->grid = p->grid;
    out->shrinkage = p->shrinkage;
    out->validation_split = p->validation_split;
    out->split_seed = p->split_seed;
    out->n_classes = C;
    out->n_ref = n_ref;
    out->n_cal = n_cal;
    out->n_layers = L;
    out->cal_alpha = malloc((size_t)n_cal * sizeof(float));
    out->layers = calloc((size_t)L, sizeof *out->layers);
    struct model_workspace ws = {0};
    struct scratch s = {0};
    float **feat = calloc((size_t)L, sizeof *feat);
    float *cal_knn = NULL, *cal_maha = NULL, *cal_post = NULL, *cal_energy = NULL, *tmp = NULL;
    float *z = NULL;
    if (!out->cal_alpha || !out->layers || !feat)
        goto nomem;
    for (int l = 0, j = 0; l < m->n_layers; l++) {
        if (!is_probe(m, l))
            continue;
        struct doubt_layer_ref *R = &out->layers[j];
        struct shape sh = m->layers[l].out;
        R->layer = l;
        snprintf(R->name, sizeof R->name, "%s", m->layers[l].cfg.name);
        R->d = doubt_feature_dim(sh.h, sh.w, sh.c, p->grid);
        R->grid = sh.h == 1 && sh.w == 1 ? 0 : p->grid;
        R->in_distance = j >= L / 2;
        R->ref = malloc((size_t)n_ref * R->d * sizeof(float));
        R->ref_norm2 = malloc((size_t)n_ref * sizeof(float));
        R->mean = malloc((size_t)R->d * sizeof(float));
        R->white = malloc((size_t)R->d * R->d * sizeof(float));
        R->centres = malloc((size_t)C * R->d * sizeof(float));
        R->cal_z = malloc((size_t)n_cal * sizeof(float));
        feat[j] = malloc((size_t)n_ref * R->d * sizeof(float));
        if (!R->ref || !R->ref_norm2 || !R->mean || !R->white || !R->centres || !R->cal_z || !feat[j])
            goto nomem;
        j++;
    }
    int B = p->batch;
    if ((rc = model_workspace_init(&ws, m, B, 0, err)) < 0)
        goto fail;
    size_t in_size = shape_size(m->input);

    /* The reference rows: every training image at every probed layer; kept
     * for the neighbours, and a copy consumed by the Gaussian fit. */
    for (int first = 0; first < n_ref; first += B) {
        int nb = n_ref - first < B ? n_ref - first : B;
        for (int i = 0; i < nb; i++)
            model_normalise(m, ref_pixels + (size_t)(first + i) * in_size, ws.input + (size_t)i * in_size);
        model_forward(m, &ws, ws.input, nb, 0);
        for (int l = 0; l < L; l++)
            layer_rows(&ws, m, out->layers[l].layer, p->grid, 0, nb,
                       out->layers[l].ref + (size_t)first * out->layers[l].d);
        if ((rc = report(progress, user, "calibrating", first + nb, n_ref + n_cal, err)) < 0)
            goto fail;
    }
    for (int l = 0; l < L; l++) {
        struct doubt_layer_ref *R = &out->layers[l];
        for (int i = 0; i < n_ref; i++) {
            const float *r = R->ref + (size_t)i * R->d;
            double ss = 0;
            for (int j = 0; j < R->d; j++)
                ss += (double)r[j] * r[j];
            R->ref_norm2[i] = (float)ss;
        }
        memcpy(feat[l], R->ref, (size_t)n_ref * R->d * sizeof(float));
        if ((rc = fit_layer(R, C, p->shrinkage, feat[l], ref_labels, n_ref, err)) < 0)
            goto fail;
        free(feat[l]);
        feat[l] = NULL;
    }

    /* The calibration images: their distances, posteriors and energies. */
    cal_knn = malloc((size_t)n_cal * L * sizeof(float));
    cal_maha = malloc((size_t)n_cal * L * sizeof(float));
    cal_post = malloc((size_t)n_cal * L * C * sizeof(float));
    cal_energy = malloc((size_t)n_cal * sizeof(float));
    tmp = malloc((size_t)n_cal * sizeof(float));
    z = malloc((size_t)n_cal * L * sizeof(float));
    if (!cal_knn || !cal_maha || !cal_post || !cal_energy || !tmp || !z ||
        scratch_init(&s, out, B, err) < 0)
        goto nomem;
    for (int first = 0; first < n_cal; first += B) {
        int nb = n_cal - first < B ? n_cal - first : B;
        for (int i = 0; i < nb; i++)
            model_normalise(m, cal_pixels + (size_t)(first + i) * in_size, ws.input + (size_t)i * in_size);
        model_forward(m, &ws, ws.input, nb, 0);
        probe_batch(out, m, &ws, 0, nb, &s);
        memcpy(cal_knn + (size_t)first * L, s.knn, (size_t)nb * L * sizeof(float));
        memcpy(cal_maha + (size_t)first * L, s.maha, (size_t)nb * L * sizeof(float));
        memcpy(cal_post + (size_t)first * L * C, s.post, (size_t)nb * L * C * sizeof(float));
        for (int i = 0; i < nb; i++) {
            int y;
            float msp;
            baselines(m, &ws, i, &y, &msp, &cal_energy[first + i]);
        }
        if ((rc = report(progress, user, "calibrating", n_ref + first + nb, n_ref + n_cal, err)) < 0)
            goto fail;
    }

    /* The held-out statistics: per layer, the median and spread of both
     * log-distances, then the sorted standardised distances (for
     * percentiles); the energy's median and spread. */
    for (int l = 0; l < L; l++) {
        struct doubt_layer_ref *R = &out->layers[l];
        for (int i = 0; i < n_cal; i++)
            R->cal_z[i] = cal_knn[(size_t)i * L + l];
        log_stats(R->cal_z, n_cal, tmp, &R->knn_median, &R->knn_scale);
        for (int i = 0; i < n_cal; i++)
            R->cal_z[i] = cal_maha[(size_t)i * L + l];
        log_stats(R->cal_z, n_cal, tmp, &R->maha_median, &R->maha_scale);
        for (int i = 0; i < n_cal; i++) {
            z[(size_t)i * L + l] = (float)layer_z(R, cal_knn[(size_t)i * L + l], cal_maha[(size_t)i * L + l]);
            R->cal_z[i] = z[(size_t)i * L + l];
        }
        qsort(R->cal_z, (size_t)n_cal, sizeof(float), cmp_float);
    }
    memcpy(tmp, cal_energy, (size_t)n_cal * sizeof(float));
    qsort(tmp, (size_t)n_cal, sizeof(float), cmp_float);
    out->energy_median = (float)quantile_sorted(tmp, n_cal, 0.5);
    out->energy_scale = (float)fmax((quantile_sorted(tmp, n_cal, 0.75) - quantile_sorted(tmp, n_cal, 0.25)) / 1.349, 1e-3);
    /* Calibration nonconformity with the true labels (as in DkNN): how
     * unusual a right answer on a held-out image looks. */
    for (int i = 0; i < n_cal; i++)
        out->cal_alpha[i] = (float)nonconformity(out, z + (size_t)i * L, cal_post + (size_t)i * L * C,
                                                 cal_energy[i], cal_labels[i]);
    qsort(out->cal_alpha, (size_t)n_cal, sizeof(float), cmp_float);
    out->seconds = now_seconds() - t0;
    rc = 0;
    goto done;

nomem:
    rc = strata_fail(err, STRATA_E_NOMEM, "doubt: out of memory calibrating %s (%d images)", m->id,
                     n_ref + n_cal);
fail:
    doubt_free(out);
done:
    for (int l = 0; feat && l < L; l++)
        free(feat[l]);
    free(feat);
    free(cal_knn);
    free(cal_maha);
    free(cal_post);
    free(cal_energy);
    free(tmp);
    free(z);
    scratch_free(&s);
    model_workspace_free(&ws);
    return rc;
}

int doubt_calibrate_images(struct model *m, const struct doubt_params *p,
                           const uint8_t *ref_pixels, const int *ref_labels, int n_ref,
                           const uint8_t *cal_pixels, const int *cal_labels, int n_cal,
                           struct doubt_model *out, char *err)
{
    return calibrate_core(m, p, ref_pixels, ref_labels, n_ref, cal_pixels, cal_labels, n_cal, out,
                          NULL, NULL, err);
}

/* ---- scoring ------------------------------------------------------------------------- */

/* Appends to buf (capacity cap) like snprintf, never past the end. */
static void appendf(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void appendf(char *buf, size_t cap, const char *fmt, ...)
{
    size_t len = strlen(buf);
    if (len + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, cap - len, fmt, ap);
    va_end(ap);
}

/* A few sentences a user can check against the per-layer view: how typical
 * the image is, which layers agree with the prediction and which class the
 * others lie nearest (the layer's vote: the nearest class Gaussian, not the
 * majority of the analysis cluster, which can differ), and how far it lies from the training images at the deepest
 * probed layer (and at the layer where it is most unusual). */
static void explain(const struct model *m, struct doubt_result *r)
{
    char *e = r->explanation;
    size_t cap = sizeof r->explanation;
    const char *level = r->level == DOUBT_LEVEL_HIGH     ? "High"
                        : r->level == DOUBT_LEVEL_MEDIUM ? "Medium"
                                                         : "Low";
    const char *said = m->classes[r->predicted];
    e[0] = 0;
    if (r->doubt >= 0.5f)
        appendf(e, cap, "%s doubt (%.2f): the image is less typical than %.0f %% of held-out images of the classes the model knows.",
                level, (double)r->doubt, floor(100.0 * r->doubt));
    else
        appendf(e, cap, "%s doubt (%.2f): the image is more typical than %.0f %% of held-out images of the classes the model knows.",
                level, (double)r->doubt, floor(100.0 * (1 - r->doubt)));

    int n_agree = 0, L = r->n_layers;
    for (int l = 0; l < L; l++)
        n_agree += r->layers[l].agrees;
    if (n_agree == L) {
        if (L == 1)
            appendf(e, cap, " The probed layer lies nearest the %s class, as the model says.", said);
        else
            appendf(e, cap, " All %d probed layers lie nearest the %s class, as the model says.", L, said);
    } else {
        if (n_agree == 0)
            appendf(e, cap, " No probed layer agrees with %s:", said);
        else
            appendf(e, cap, " %d of %d probed layers agree with %s;", n_agree, L, said);
        /* Runs of consecutive disagreeing layers with the same neighbour class. */
        int groups = 0;
        for (int l = 0; l < L;) {
            if (r->layers[l].agrees) {
                l++;
                continue;
            }
            int c = r->layers[l].neighbour_class, end = l;
            while (end + 1 < L && !r->layers[end + 1].agrees && r->layers[end + 1].neighbour_class == c)
                end++;
            if (groups == 3) {
                appendf(e, cap, ", and more");
                break;
            }
            if (end > l)
                appendf(e, cap, "%s %s\xe2\x80\x93%s lie nearest the %s class", groups ? "," : "",
                        r->layers[l].name, r->layers[end].name, m->classes[c]);
            else
                appendf(e, cap, "%s %s lies nearest the %s class", groups ? "," : "",
                        r->layers[l].name, m->classes[c]);
            groups++;
            l = end + 1;
        }
        appendf(e, cap, ".");
    }

    const struct doubt_layer_view *deep = &r->layers[L - 1];
    int most = L - 1;
    for (int l = 0; l < L; l++)
        if (r->layers[l].dist_percentile > r->layers[most].dist_percentile)
            most = l;
    appendf(e, cap, " At %s, the deepest probed layer, it lies further from the training images than %.0f %% of held-out images",
            deep->name, floor(100.0 * deep->dist_percentile));
    if (most != L - 1 && r->layers[most].dist_percentile >= 0.9f)
        appendf(e, cap, "; at %s, than %.0f %%", r->layers[most].name,
                floor(100.0 * r->layers[most].dist_percentile));
    appendf(e, cap, ".");
}

/* Index of the largest of n values (the lowest on ties). */
static int argmax_f(const float *v, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

/* Fills r for sample b (in ws) whose probe results are row i of s. */
static int finish_result(const struct doubt_model *dm, const struct model *m,
                         const struct analysis *a, const struct model_workspace *ws, int b,
                         const struct scratch *s, int i, struct doubt_result *r, char *err)
{
    memset(r, 0, sizeof *r);
    int C = dm->n_classes, L = dm->n_layers;
    float z[MODEL_MAX_LAYERS];
    const float *post = s->post + (size_t)i * L * C;
    baselines(m, ws, b, &r->predicted, &r->msp, &r->energy);
    batch_z(dm, s, i, z);
    double dist, dis, ez;
    terms(dm, z, post, r->energy, r->predicted, &dist, &dis, &ez);
    r->distance = (float)dist;
    r->disagreement = (float)dis;
    r->energy_excess = (float)fmax(0.0, ez);
    r->nonconformity = (float)nonconformity(dm, z, post, r->energy, r->predicted);
    r->doubt = (float)calibrated_doubt(dm->cal_alpha, dm->n_cal, r->nonconformity);
    r->credibility = 1 - r->doubt;
    r->level = doubt_level_of(r->doubt);
    r->n_layers = L;

    struct analysis_point *pts = NULL;
    if (a) {
        pts = malloc((size_t)a->n_layers * sizeof *pts);
        if (!pts)
            return strata_fail(err, STRATA_E_NOMEM, "doubt: out of memory");
        int rc = analysis_locate(a, m, ws, b, pts, err);
        if (rc < 0) {
            free(pts);
            return rc;
        }
    }
    for (int l = 0; l < L; l++) {
        const struct doubt_layer_ref *R = &dm->layers[l];
        struct doubt_layer_view *v = &r->layers[l];
        const float *po = post + (size_t)l * C;
        v->layer = R->layer;
        snprintf(v->name, sizeof v->name, "%s", R->name);
        v->neighbour_class = argmax_f(po, C);
        v->agreement = po[r->predicted];
        v->agrees = v->neighbour_class == r->predicted;
        v->dist = z[l];
        v->in_distance = R->in_distance;
        int below, equal;
        rank_in_sorted(R->cal_z, dm->n_cal, z[l], &below, &equal);
        v->dist_percentile = (float)((below + 0.5 * equal) / dm->n_cal);
        v->cluster = v->cluster_class = -1;
        if (pts) {
            const struct analysis_clustering *c = &a->layers[R->layer].c;
            v->cluster = pts[R->layer].cluster;
            v->cluster_class = c->cluster_majority[v->cluster];
        }
    }
    free(pts);
    explain(m, r);
    return 0;
}

int doubt_score(const struct doubt_model *dm, const struct model *m, const struct analysis *a,
                const struct model_workspace *ws, int b, struct doubt_result *out, char *err)
{
    assert(dm && m && ws && out && b >= 0 && b < ws->max_batch);
    int rc = check_model(dm, m, err);
    if (rc < 0)
        return rc;
    struct scratch s;
    if ((rc = scratch_init(&s, dm, 1, err)) < 0)
        return rc;
    probe_batch(dm, m, ws, b, 1, &s);
    rc = finish_result(dm, m, a, ws, b, &s, 0, out, err);
    scratch_free(&s);
    return rc;
}

int doubt_score_images(const struct doubt_model *dm, struct model *m, const uint8_t *pixels,
                       int n, float *doubt, float *msp, float *energy, int *pred, char *err)
{
    int rc = check_model(dm, m, err);
    if (rc < 0)
        return rc;
    int B = 32, L = dm->n_layers, C = dm->n_classes;
    struct model_workspace ws;
    struct scratch s;
    if ((rc = model_workspace_init(&ws, m, B, 0, err)) < 0)
        return rc;
    if ((rc = scratch_init(&s, dm, B, err)) < 0) {
        model_workspace_free(&ws);
        return rc;
    }
    size_t in_size = shape_size(m->input);
    for (int first = 0; first < n; first += B) {
        int nb = n - first < B ? n - first : B;
        for (int i = 0; i < nb; i++)
            model_normalise(m, pixels + (size_t)(first + i) * in_size, ws.input + (size_t)i * in_size);
        model_forward(m, &ws, ws.input, nb, 0);
        probe_batch(dm, m, &ws, 0, nb, &s);
        for (int i = 0; i < nb; i++) {
            int y;
            float p, e, z[MODEL_MAX_LAYERS];
            baselines(m, &ws, i, &y, &p, &e);
            batch_z(dm, &s, i, z);
            float alpha = (float)nonconformity(dm, z, s.post + (size_t)i * L * C, e, y);
            if (doubt)
                doubt[first + i] = (float)calibrated_doubt(dm->cal_alpha, dm->n_cal, alpha);
            if (msp)
                msp[first + i] = p;
            if (energy)
                energy[first + i] = e;
            if (pred)
                pred[first + i] = y;
        }
    }
    scratch_free(&s);
    model_workspace_free(&ws);
    return 0;
}

/* ---- calibration from the dataset ----------------------------------------------------- */

/* The hold-out to calibrate on: p's when given, else the model's training
 * seed and validation_split. */
static int resolve_split(const struct model *m, const struct doubt_params *p, float *fraction,
                         uint64_t *seed, char *err)
{
    if (p->validation_split >= 0) {
        *fraction = p->validation_split;
        *seed = p->split_seed;
    } else {
        struct train_config cfg;
        json_t *training = m->json ? json_object_get(m->json, "training") : NULL;
        int rc = train_config_parse(&cfg, training, m->id, err);
        if (rc < 0)
            return rc;
        *fraction = cfg.validation_split;
        *seed = cfg.seed;
    }
    if (!(*fraction > 0))
        return strata_fail(err, STRATA_E_ARG,
                           "model %s was trained without a validation split, so no training image "
                           "was held out to calibrate the doubt on; give a validation split",
                           m->id);
    return 0;
}

/* Loads the listed train split, separates the hold-out and calibrates. */
static int calibrate_from(struct model *m, const struct doubt_params *p, float fraction,
                          uint64_t seed, struct dataset *ds, struct doubt_model *out,
                          analysis_progress_fn progress, void *user, char *err)
{
    memset(out, 0, sizeof *out);
    size_t frame = shape_size(m->input);
    uint8_t *pixels;
    int n = analysis_load_pixels(m, ds, &pixels, progress, user, err);
    if (n < 0)
        return n;
    int *labels = malloc((size_t)(n ? n : 1) * sizeof(int));
    uint8_t *is_cal = malloc((size_t)(n ? n : 1));
    if (!labels || !is_cal) {
        free(labels);
        free(is_cal);
        free(pixels);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++)
        labels[i] = ds->items[i].label;
    int n_cal = doubt_split_train(labels, n, m->n_classes, fraction, seed, is_cal);
    uint8_t *cal = malloc((size_t)(n_cal ? n_cal : 1) * frame);
    int *cal_labels = malloc((size_t)(n_cal ? n_cal : 1) * sizeof(int));
    int rc;
    if (!cal || !cal_labels) {
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory");
    } else {
        /* Hold-out frames to their own buffer, the others compacted in place
         * (stable, so reference rows keep the dataset's order). */
        int nr = 0, nc = 0;
        for (int i = 0; i < n; i++) {
            if (is_cal[i]) {
                memcpy(cal + (size_t)nc * frame, pixels + (size_t)i * frame, frame);
                cal_labels[nc++] = labels[i];
            } else {
                if (nr != i)
                    memmove(pixels + (size_t)nr * frame, pixels + (size_t)i * frame, frame);
                labels[nr++] = labels[i];
            }
        }
        rc = calibrate_core(m, p, pixels, labels, nr, cal, cal_labels, nc, out, progress, user, err);
        if (rc == 0) {
            out->validation_split = fraction;
            out->split_seed = seed;
        }
    }
    free(cal);
    free(cal_labels);
    free(labels);
    free(is_cal);
    free(pixels);
    return rc;
}

int doubt_calibrate(struct model *m, const struct doubt_params *p, const char *data_root,
                    struct doubt_model *out, analysis_progress_fn progress, void *user,
                    char *err)
{
    memset(out, 0, sizeof *out);
    float fraction;
    uint64_t seed;
    int rc = check_params(p, err);
    if (rc < 0 || (rc = resolve_split(m, p, &fraction, &seed, err)) < 0)
        return rc;
    struct dataset ds;
    if ((rc = analysis_open_split(m, data_root, "train", &ds, err)) < 0)
        return rc;
    rc = calibrate_from(m, p, fraction, seed, &ds, out, progress, user, err);
    dataset_free(&ds);
    return rc;
}

/* ---- files ---------------------------------------------------------------------------- */

static int all_finite(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}

static const char DOUBT_MAGIC[8] = {'S', 'T', 'R', 'D', 'O', 'U', 'B', 'T'};
static const char EVAL_MAGIC[8] = {'S', 'T', 'R', 'D', 'E', 'V', 'A', 'L'};

int doubt_save(const struct doubt_model *dm, const char *path, char *err)
{
    struct cachefile_writer w = {0};
    int C = dm->n_classes;
    size_t nr = (size_t)dm->n_ref, nc = (size_t)dm->n_cal;
    cachefile_put_str(&w, dm->model_id);
    cachefile_put_i32(&w, dm->grid);
    cachefile_put_f32(&w, dm->shrinkage);
    cachefile_put_f32(&w, dm->validation_split);
    cachefile_put_u64(&w, dm->split_seed);
    cachefile_put_i32(&w, C);
    cachefile_put_i32(&w, dm->n_ref);
    cachefile_put_i32(&w, dm->n_cal);
    cachefile_put_i32(&w, dm->n_layers);
    cachefile_put_f64(&w, dm->seconds);
    cachefile_put_f32(&w, dm->energy_median);
    cachefile_put_f32(&w, dm->energy_scale);
    cachefile_put(&w, dm->cal_alpha, nc * sizeof(float));
    for (int l = 0; l < dm->n_layers; l++) {
        const struct doubt_layer_ref *R = &dm->layers[l];
        size_t d = (size_t)R->d;
        cachefile_put_i32(&w, R->layer);
        cachefile_put_str(&w, R->name);
        cachefile_put_i32(&w, R->d);
        cachefile_put_i32(&w, R->grid);
        cachefile_put_i32(&w, R->in_distance);
        cachefile_put_f32(&w, R->knn_median);
        cachefile_put_f32(&w, R->knn_scale);
        cachefile_put_f32(&w, R->maha_median);
        cachefile_put_f32(&w, R->maha_scale);
        cachefile_put(&w, R->ref, nr * d * sizeof(float));
        cachefile_put(&w, R->ref_norm2, nr * sizeof(float));
        cachefile_put(&w, R->mean, d * sizeof(float));
        cachefile_put(&w, R->white, d * d * sizeof(float));
        cachefile_put(&w, R->centres, (size_t)C * d * sizeof(float));
        cachefile_put(&w, R->cal_z, nc * sizeof(float));
    }
    int rc = cachefile_write(path, DOUBT_MAGIC, DOUBT_FORMAT_VERSION, dm->key, &w, err);
    free(w.p);
    return rc;
}

static int sorted_finite(const float *v, int n)
{
    for (int i = 0; i < n; i++)
        if (!isfinite(v[i]) || (i && v[i] < v[i - 1]))
            return 0;
    return 1;
}

/* A positive finite spread and a finite non-negative median. */
static int stats_ok(float median, float scale)
{
    return isfinite(median) && median >= 0 && isfinite(scale) && scale > 0;
}

int doubt_load(const char *path, uint64_t expect_key, struct doubt_model *out, char *err)
{
    memset(out, 0, sizeof *out);
    uint8_t *file;
    struct cachefile_reader r;
    uint64_t key;
    int rc = cachefile_read(path, DOUBT_MAGIC, "doubt", DOUBT_FORMAT_VERSION, expect_key, &file,
                            &r, &key, err);
    if (rc < 0)
        return rc;
    cachefile_get_str(&r, out->model_id, sizeof out->model_id);
    out->grid = cachefile_get_i32(&r);
    out->shrinkage = cachefile_get_f32(&r);
    out->validation_split = cachefile_get_f32(&r);
    out->split_seed = cachefile_get_u64(&r);
    int C = out->n_classes = cachefile_get_i32(&r);
    out->n_ref = cachefile_get_i32(&r);
    out->n_cal = cachefile_get_i32(&r);
    int L = cachefile_get_i32(&r);
    out->seconds = cachefile_get_f64(&r);
    out->energy_median = cachefile_get_f32(&r);
    out->energy_scale = cachefile_get_f32(&r);
    if (r.bad || out->grid < 1 || out->grid > ANALYSIS_MAX_GRID || C < 1 || C > MODEL_MAX_CLASSES ||
        out->n_ref < 2 || out->n_cal < 2 || L < 1 || L > MODEL_MAX_LAYERS ||
        !isfinite(out->energy_median) || !(out->energy_scale > 0) || !isfinite(out->energy_scale))
        goto corrupt;
    size_t nr = (size_t)out->n_ref, nc = (size_t)out->n_cal;
    out->cal_alpha = cachefile_get_array(&r, nc, sizeof(float));
    out->layers = calloc((size_t)L, sizeof *out->layers);
    if (!out->layers)
        r.nomem = 1;
    else
        out->n_layers = L;
    int n_dist = 0;
    for (int l = 0; !r.bad && !r.nomem && l < L; l++) {
        struct doubt_layer_ref *R = &out->layers[l];
        R->layer = cachefile_get_i32(&r);
        cachefile_get_str(&r, R->name, sizeof R->name);
        R->d = cachefile_get_i32(&r);
        R->grid = cachefile_get_i32(&r);
        R->in_distance = cachefile_get_i32(&r);
        R->knn_median = cachefile_get_f32(&r);
        R->knn_scale = cachefile_get_f32(&r);
        R->maha_median = cachefile_get_f32(&r);
        R->maha_scale = cachefile_get_f32(&r);
        if (r.bad || R->layer < 0 || R->layer >= MODEL_MAX_LAYERS || R->d < 1 || R->d > (1 << 14) ||
            (R->in_distance != 0 && R->in_distance != 1) || !stats_ok(R->knn_median, R->knn_scale) ||
            !stats_ok(R->maha_median, R->maha_scale)) {
            r.bad = 1;
            break;
        }
        n_dist += R->in_distance;
        size_t d = (size_t)R->d;
        R->ref = cachefile_get_array(&r, nr * d, sizeof(float));
        R->ref_norm2 = cachefile_get_array(&r, nr, sizeof(float));
        R->mean = cachefile_get_array(&r, d, sizeof(float));
        R->white = cachefile_get_array(&r, d * d, sizeof(float));
        R->centres = cachefile_get_array(&r, (size_t)C * d, sizeof(float));
        R->cal_z = cachefile_get_array(&r, nc, sizeof(float));
        if (!r.bad && !r.nomem && !(all_finite(R->ref, nr * d) && all_finite(R->ref_norm2, nr) &&
                        all_finite(R->mean, d) && all_finite(R->white, d * d) &&
                        all_finite(R->centres, (size_t)C * d) && sorted_finite(R->cal_z, out->n_cal)))
            r.bad = 1;
    }
    if (r.nomem) {
        free(file);
        doubt_free(out);
        return strata_fail(err, STRATA_E_NOMEM, "%s: out of memory", path);
    }
    if (r.bad || r.left != 0 || n_dist == 0 || !sorted_finite(out->cal_alpha, out->n_cal))
        goto corrupt;
    free(file);
    out->key = key;
    out->cached = 1;
    snprintf(out->cache_path, sizeof out->cache_path, "%s", path);
    return 0;
corrupt:
    free(file);
    doubt_free(out);
    return strata_fail(err, STRATA_E_FORMAT, "%s: inconsistent doubt model (corrupt)", path);
}

/* ---- the cache ------------------------------------------------------------------------------ */

/* The key of a doubt model: the analysis cache key of the train split with
 * the same grid (it covers the model's JSON and every parameter, and every
 * listed data file by name, size and modification time), mixed with the
 * doubt parameters and the resolved hold-out. */
static int doubt_key(const struct model *m, const struct doubt_params *p, float fraction,
                     uint64_t seed, const struct dataset *ds, uint64_t *key, char *err)
{
    struct analysis_params ap;
    analysis_params_default(&ap);
    snprintf(ap.split, sizeof ap.split, "train");
    ap.grid = p->grid;
    uint64_t h;
    int rc = analysis_cache_key(m, &ap, ds, &h, err);
    if (rc < 0)
        return rc;
    h = hash_str(hash_u64(HASH_FNV_OFFSET, h), "strata-doubt");
    h = hash_u64(h, DOUBT_FORMAT_VERSION);
    h = hash_str(h, DOUBT_RECIPE);
    uint32_t sbits;
    memcpy(&sbits, &p->shrinkage, sizeof sbits);
    h = hash_u64(h, sbits);
    uint32_t fbits;
    memcpy(&fbits, &fraction, sizeof fbits);
    h = hash_u64(h, fbits);
    h = hash_u64(h, seed);
    *key = h ? h : 1;
    return 0;
}

int doubt_load_or_calibrate(struct model *m, const struct doubt_params *p, const char *data_root,
                            const char *cache_dir, struct doubt_model *out,
                            analysis_progress_fn progress, void *user, char *err)
{
    memset(out, 0, sizeof *out);
    float fraction;
    uint64_t seed, key;
    int rc = check_params(p, err);
    if (rc < 0 || (rc = resolve_split(m, p, &fraction, &seed, err)) < 0)
        return rc;
    struct dataset ds;
    if ((rc = analysis_open_split(m, data_root, "train", &ds, err)) < 0)
        return rc;
    if ((rc = doubt_key(m, p, fraction, seed, &ds, &key, err)) < 0) {
        dataset_free(&ds);
        return rc;
    }
    char path[1024] = "", note[STRATA_ERR_LEN] = "";
    if (cache_dir) {
        if (snprintf(path, sizeof path, "%s/%s-%016llx.doubt", cache_dir, m->id,
                     (unsigned long long)key) >= (int)sizeof path) {
            dataset_free(&ds);
            return strata_fail(err, STRATA_E_ARG, "cache folder name too long");
        }
        char lerr[STRATA_ERR_LEN];
        int lrc = doubt_load(path, key, out, lerr);
        if (lrc == 0 && strcmp(out->model_id, m->id) == 0 && check_model(out, m, lerr) == 0) {
            dataset_free(&ds);
            return 0;
        }
        if (lrc == 0) {
            doubt_free(out);
            snprintf(note, sizeof note, "%s: made for another model; recomputed", path);
        } else if (lrc != STRATA_E_NOTFOUND) {
            snprintf(note, sizeof note, "%.400s; recomputed", lerr);
        }
    }
    rc = calibrate_from(m, p, fraction, seed, &ds, out, progress, user, err);
    dataset_free(&ds);
    if (rc < 0)
        return rc;
    out->key = key;
    if (cache_dir) {
        char werr[STRATA_ERR_LEN];
        if (analysis_cache_create(cache_dir, werr) < 0 || doubt_save(out, path, werr) < 0)
            appendf(note, sizeof note, "%scache not written: %.400s", note[0] ? "; " : "", werr);
        else
            snprintf(out->cache_path, sizeof out->cache_path, "%s", path);
    }
    snprintf(out->cache_note, sizeof out->cache_note, "%s", note);
    return 0;
}

/* ---- evaluation metrics ------------------------------------------------------------------ */

struct scored {
    float s;
    int pos;
};

static int cmp_scored(const void *a, const void *b)
{
    float x = ((const struct scored *)a)->s, y = ((const struct scored *)b)->s;
    return (x > y) - (x < y);
}

double doubt_auroc(const float *neg, int n_neg, const float *pos, int n_pos)
{
    if (n_neg <= 0 || n_pos <= 0)
        return NAN;
    int n = n_neg + n_pos;
    struct scored *v = malloc((size_t)n * sizeof *v);
    if (!v)
        return NAN;
    for (int i = 0; i < n_neg; i++) {
        assert(!isnan(neg[i]));
        v[i] = (struct scored){neg[i], 0};
    }
    for (int i = 0; i < n_pos; i++) {
        assert(!isnan(pos[i]));
        v[n_neg + i] = (struct scored){pos[i], 1};
    }
    qsort(v, (size_t)n, sizeof *v, cmp_scored);
    /* Mann-Whitney: the sum of the positives' ranks (1-based, tied values
     * sharing the mean rank of their run), less its minimum. */
    double rank_sum = 0;
    for (int i = 0; i < n;) {
        int j = i;
        while (j + 1 < n && v[j + 1].s == v[i].s)
            j++;
        double mid = (i + j) / 2.0 + 1;
        for (int t = i; t <= j; t++)
            if (v[t].pos)
                rank_sum += mid;
        i = j + 1;
    }
    free(v);
    double u = rank_sum - (double)n_pos * (n_pos + 1) / 2;
    return u / ((double)n_pos * n_neg);
}

static int cmp_float_desc(const void *a, const void *b)
{
    return cmp_float(b, a);
}

double doubt_fpr_at_tpr(const float *neg, int n_neg, const float *pos, int n_pos, double tpr)
{
    if (n_neg <= 0 || n_pos <= 0)
        return NAN;
    float *p = malloc((size_t)n_pos * sizeof *p);
    if (!p)
        return NAN;
    memcpy(p, pos, (size_t)n_pos * sizeof *p);
    qsort(p, (size_t)n_pos, sizeof *p, cmp_float_desc);
    /* The need-th largest positive score is the largest threshold that
     * flags at least `need` positives (scores >= t are flagged). The small
     * margin keeps 0.95 * 20 = 19 from becoming 20 through rounding. */
    int need = (int)ceil(tpr * n_pos - 1e-9);
    if (need < 1)
        need = 1;
    if (need > n_pos)
        need = n_pos;
    float t = p[need - 1];
    free(p);
    int flagged = 0;
    for (int i = 0; i < n_neg; i++)
        flagged += neg[i] >= t;
    return (double)flagged / n_neg;
}

void doubt_report_metrics(struct doubt_report *r)
{
    int n_right = 0, n_wrong = 0;
    for (int i = 0; i < r->n_id; i++)
        n_right += r->id_correct[i] != 0;
    n_wrong = r->n_id - n_right;
    r->accuracy = r->n_id ? (double)n_right / r->n_id : NAN;
    float *right = malloc((size_t)(n_right ? n_right : 1) * sizeof(float));
    float *wrong = malloc((size_t)(n_wrong ? n_wrong : 1) * sizeof(float));
    for (int k = 0; k < DOUBT_N_METHODS; k++) {
        r->auroc[k] = doubt_auroc(r->id_score[k], r->n_id, r->ood_score[k], r->n_ood);
        r->fpr95[k] = doubt_fpr_at_tpr(r->id_score[k], r->n_id, r->ood_score[k], r->n_ood, 0.95);
        r->auroc_errors[k] = NAN;
        if (right && wrong) {
            int a = 0, b = 0;
            for (int i = 0; i < r->n_id; i++) {
                if (r->id_correct[i])
                    right[a++] = r->id_score[k][i];
                else
                    wrong[b++] = r->id_score[k][i];
            }
            r->auroc_errors[k] = doubt_auroc(right, a, wrong, b);
        }
    }
    free(right);
    free(wrong);
}

/* ---- the evaluation run ------------------------------------------------------------------ */

/* A set of image files to score. */
struct source {
    char name[128];
    int ood;
    int n, cap;
    char **paths;   /* [n], owned */
    int *labels;    /* [n] for the in-distribution set, else NULL; owned */
};

struct sources {
    int n;
    struct source s[DOUBT_MAX_SOURCES];
};

static void sources_free(struct sources *ss)
{
    for (int i = 0; i < ss->n; i++) {
        for (int j = 0; j < ss->s[i].n; j++)
            free(ss->s[i].paths[j]);
        free(ss->s[i].paths);
        free(ss->s[i].labels);
    }
    memset(ss, 0, sizeof *ss);
}

static int source_add(struct source *s, const char *path)
{
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        char **np = realloc(s->paths, (size_t)cap * sizeof *np);
        if (!np)
            return STRATA_E_NOMEM;
        s->paths = np;
        s->cap = cap;
    }
    if (!(s->paths[s->n] = strdup(path)))
        return STRATA_E_NOMEM;
    s->n++;
    return 0;
}

static struct source *sources_new(struct sources *ss, const char *name, int ood, char *err)
{
    if (ss->n == DOUBT_MAX_SOURCES) {
        strata_fail(err, STRATA_E_ARG, "more than %d image sets to evaluate", DOUBT_MAX_SOURCES);
        return NULL;
    }
    int i = ss->n++;
    memset(&ss->s[i], 0, sizeof ss->s[i]);
    size_t len = strnlen(name, sizeof ss->s[i].name - 1);
    memcpy(ss->s[i].name, name, len);
    ss->s[i].ood = ood;
    return &ss->s[i];
}

/* A dataset split as a source (labels kept when `labels`). */
static int source_from_dataset(struct sources *ss, const char *root, const char *name, int ood,
                               int labels, char *err)
{
    struct dataset ds;
    int rc = dataset_open(&ds, root, name, "test", err);
    if (rc < 0)
        return rc;
    char title[128];
    snprintf(title, sizeof title, "%s/test", name);
    struct source *s = sources_new(ss, title, ood, err);
    if (!s) {
        dataset_free(&ds);
        return STRATA_E_ARG;
    }
    if (labels && !(s->labels = malloc((size_t)(ds.n ? ds.n : 1) * sizeof(int))))
        rc = STRATA_E_NOMEM;
    for (int i = 0; rc == 0 && i < ds.n; i++) {
        if (labels)
            s->labels[i] = ds.items[i].label;
        rc = source_add(s, ds.items[i].path);
    }
    dataset_free(&ds);
    if (rc == STRATA_E_NOMEM)
        return strata_fail(err, rc, "out of memory listing %s", title);
    return rc;
}

static int has_image_ext(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every image file under dir, recursively (hidden entries skipped). */
static int walk(struct source *s, const char *dir, int depth, char *err)
{
    if (depth > 32)
        return strata_fail(err, STRATA_E_LIMIT, "%s: folders nested too deep", dir);
    DIR *d = opendir(dir);
    if (!d)
        return strata_fail(err, STRATA_E_IO, "%s: cannot read: %s", dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
            continue;
        struct stat st;
        if (stat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            rc = walk(s, path, depth + 1, err);
        else if (S_ISREG(st.st_mode) && has_image_ext(e->d_name) && source_add(s, path) < 0)
            rc = strata_fail(err, STRATA_E_NOMEM, "out of memory listing %s", dir);
    }
    closedir(d);
    return rc;
}

/* The sets doubt-eval scores: the model's test split, the other datasets'
 * test splits (default_ood), and the given folders. */
static int list_sources(const struct model *m, const char *root, const char *ood_root,
                        const char *const *ood_dirs, int n_ood_dirs, int default_ood,
                        struct sources *ss, char *err)
{
    memset(ss, 0, sizeof *ss);
    int rc = source_from_dataset(ss, root, m->dataset, 0, 1, err);
    if (rc < 0)
        return rc;
    int same_root = !ood_root || strcmp(ood_root, root) == 0;
    if (!ood_root)
        ood_root = root;
    if (default_ood) {
        DIR *d = opendir(ood_root);
        if (!d)
            return strata_fail(err, STRATA_E_IO, "%s: cannot read: %s", ood_root, strerror(errno));
        char *names[256];
        int nn = 0;
        struct dirent *e;
        while ((e = readdir(d)) && nn < 256) {
            if (e->d_name[0] == '.' || (same_root && strcmp(e->d_name, m->dataset) == 0))
                continue;
            char test[4096];
            struct stat st;
            snprintf(test, sizeof test, "%s/%s/test", ood_root, e->d_name);
            if (stat(test, &st) == 0 && S_ISDIR(st.st_mode) && (names[nn] = strdup(e->d_name)))
                nn++;
        }
        closedir(d);
        qsort(names, (size_t)nn, sizeof *names, cmp_str);
        for (int i = 0; i < nn; i++) {
            if (rc == 0) {
                rc = source_from_dataset(ss, ood_root, names[i], 1, 0, err);
                if (rc == STRATA_E_NOTFOUND) /* a test folder without images */
                    rc = 0;
            }
            free(names[i]);
        }
        if (rc < 0)
            return rc;
    }
    for (int i = 0; i < n_ood_dirs; i++) {
        struct source *s = sources_new(ss, ood_dirs[i], 1, err);
        if (!s)
            return STRATA_E_ARG;
        if ((rc = walk(s, ood_dirs[i], 0, err)) < 0)
            return rc;
        if (s->n == 0)
            return strata_fail(err, STRATA_E_NOTFOUND, "%s: no .jpg, .jpeg or .png image in it",
                               ood_dirs[i]);
        qsort(s->paths, (size_t)s->n, sizeof *s->paths, cmp_str);
    }
    int n_ood = 0;
    for (int i = 0; i < ss->n; i++)
        n_ood += ss->s[i].ood ? ss->s[i].n : 0;
    if (n_ood == 0)
        return strata_fail(err, STRATA_E_ARG,
                           "no out-of-distribution image: no other dataset under %s and no --ood folder",
                           ood_root);
    return 0;
}

/* Decodes the files of a source at the model's input size; unreadable files
 * are skipped (their count added to *skipped). Returns the number kept
 * (labels compacted alike) or a negative status. */
static int load_source(const struct model *m, struct source *s, uint8_t *pixels, int *skipped,
                       analysis_progress_fn progress, void *user, long *done, long total,
                       char *err)
{
    size_t frame = shape_size(m->input);
    int kept = 0;
    for (int i = 0; i < s->n; i++) {
        struct image img = {0}, small = {0};
        char why[STRATA_ERR_LEN];
        int r = image_load(s->paths[i], &img, why);
        const struct image *use = &img;
        if (r == 0 && (img.w != m->input.w || img.h != m->input.h)) {
            r = image_resize(&img, m->input.w, m->input.h, &small, why);
            use = &small;
        }
        if (r == 0) {
            memcpy(pixels + (size_t)kept * frame, use->rgb, frame);
            if (s->labels)
                s->labels[kept] = s->labels[i];
            kept++;
        } else {
            (*skipped)++;
        }
        image_free(&img);
        image_free(&small);
        if (r == STRATA_E_NOMEM)
            return strata_fail(err, r, "out of memory decoding %s", s->paths[i]);
        ++*done;
        if (progress && progress(user, "loading images", *done, total))
            return strata_fail(err, STRATA_E_INTERRUPTED, "doubt evaluation interrupted");
    }
    return kept;
}

void doubt_report_free(struct doubt_report *r)
{
    if (!r)
        return;
    for (int k = 0; k < DOUBT_N_METHODS; k++) {
        free(r->id_score[k]);
        free(r->ood_score[k]);
    }
    free(r->id_correct);
    memset(r, 0, sizeof *r);
}

static int report_alloc(struct doubt_report *r, int n_id, int n_ood)
{
    r->n_id = n_id;
    r->n_ood = n_ood;
    int ok = 1;
    for (int k = 0; k < DOUBT_N_METHODS; k++) {
        r->id_score[k] = malloc((size_t)(n_id ? n_id : 1) * sizeof(float));
        r->ood_score[k] = malloc((size_t)(n_ood ? n_ood : 1) * sizeof(float));
        ok = ok && r->id_score[k] && r->ood_score[k];
    }
    r->id_correct = malloc((size_t)(n_id ? n_id : 1));
    return ok && r->id_correct ? 0 : STRATA_E_NOMEM;
}

/* Scores every source into a fresh report. */
static int run_sources(const struct doubt_model *dm, struct model *m, struct sources *ss,
                       struct doubt_report *out, analysis_progress_fn progress, void *user,
                       char *err)
{
    memset(out, 0, sizeof *out);
    snprintf(out->model_id, sizeof out->model_id, "%s", m->id);
    long total = 0, done = 0;
    int max_n = 1, n_id = 0, n_ood = 0;
    for (int i = 0; i < ss->n; i++) {
        total += ss->s[i].n;
        if (ss->s[i].n > max_n)
            max_n = ss->s[i].n;
        *(ss->s[i].ood ? &n_ood : &n_id) += ss->s[i].n;
    }
    size_t frame = shape_size(m->input);
    uint8_t *pixels = malloc((size_t)max_n * frame);
    float *doubt = malloc((size_t)max_n * sizeof(float)), *msp = malloc((size_t)max_n * sizeof(float));
    float *energy = malloc((size_t)max_n * sizeof(float));
    int *pred = malloc((size_t)max_n * sizeof(int));
    int rc = 0;
    if (!pixels || !doubt || !msp || !energy || !pred || report_alloc(out, n_id, n_ood) < 0) {
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory for %ld images", total);
        goto done;
    }
    out->n_id = out->n_ood = 0;
    for (int i = 0; i < ss->n; i++) {
        struct source *s = &ss->s[i];
        int skipped = 0;
        int kept = load_source(m, s, pixels, &skipped, progress, user, &done, total, err);
        if (kept < 0) {
            rc = kept;
            goto done;
        }
        if ((rc = doubt_score_images(dm, m, pixels, kept, doubt, msp, energy, pred, err)) < 0)
            goto done;
        for (int j = 0; j < kept; j++) {
            int at = s->ood ? out->n_ood++ : out->n_id++;
            float **dst = s->ood ? out->ood_score : out->id_score;
            dst[DOUBT_METHOD_DOUBT][at] = doubt[j];
            dst[DOUBT_METHOD_MSP][at] = 1 - msp[j];
            dst[DOUBT_METHOD_ENERGY][at] = energy[j];
            if (!s->ood)
                out->id_correct[at] = pred[j] == s->labels[j];
        }
        struct doubt_eval_source *es = &out->sources[out->n_sources++];
        snprintf(es->name, sizeof es->name, "%s", s->name);
        es->ood = s->ood;
        es->n = kept;
    }
    if (out->n_ood == 0 || out->n_id == 0) {
        rc = strata_fail(err, STRATA_E_ARG, "no readable %s image to evaluate on",
                         out->n_id ? "out-of-distribution" : "in-distribution");
        goto done;
    }
    doubt_report_metrics(out);
done:
    free(pixels);
    free(doubt);
    free(msp);
    free(energy);
    free(pred);
    if (rc < 0)
        doubt_report_free(out);
    return rc;
}

int doubt_report_run(const struct doubt_model *dm, struct model *m, const char *data_root,
                     const char *const *ood_dirs, int n_ood_dirs, int default_ood,
                     struct doubt_report *out, analysis_progress_fn progress, void *user,
                     char *err)
{
    memset(out, 0, sizeof *out);
    struct sources ss;
    int rc = list_sources(m, data_root, NULL, ood_dirs, n_ood_dirs, default_ood, &ss, err);
    if (rc == 0)
        rc = run_sources(dm, m, &ss, out, progress, user, err);
    sources_free(&ss);
    return rc;
}

/* The key of a default evaluation: the doubt model (its key and calibration
 * values), the model's parameters, and every listed file. */
static int report_key(const struct doubt_model *dm, const struct model *m,
                      const struct sources *ss, uint64_t *key, char *err)
{
    uint64_t h = hash_str(HASH_FNV_OFFSET, "strata-doubteval");
    h = hash_u64(h, DOUBT_FORMAT_VERSION);
    h = hash_str(h, DOUBT_RECIPE);
    h = hash_u64(h, dm->key);
    h = hash_u64(h, hash_checksum64(dm->cal_alpha, (size_t)dm->n_cal * sizeof(float)));
    h = hash_str(h, m->id);
    h = hash_u64(h, hash_checksum64(m->params, m->n_params * sizeof(float)));
    for (int i = 0; i < ss->n; i++) {
        const struct source *s = &ss->s[i];
        h = hash_str(h, s->name);
        h = hash_u64(h, (uint64_t)s->ood);
        h = hash_u64(h, (uint64_t)s->n);
        for (int j = 0; j < s->n; j++) {
            struct stat st;
            if (stat(s->paths[j], &st) != 0)
                return strata_fail(err, STRATA_E_IO, "%s: %s", s->paths[j], strerror(errno));
            h = hash_str(h, s->paths[j]);
            h = hash_u64(h, (uint64_t)st.st_size);
            h = hash_u64(h, (uint64_t)st.st_mtim.tv_sec);
            h = hash_u64(h, (uint64_t)st.st_mtim.tv_nsec);
        }
    }
    *key = h ? h : 1;
    return 0;
}

static int report_save(const struct doubt_report *r, uint64_t key, const char *path, char *err)
{
    struct cachefile_writer w = {0};
    cachefile_put_str(&w, r->model_id);
    cachefile_put_i32(&w, r->n_id);
    cachefile_put_i32(&w, r->n_ood);
    cachefile_put_i32(&w, r->n_sources);
    for (int i = 0; i < r->n_sources; i++) {
        cachefile_put_str(&w, r->sources[i].name);
        cachefile_put_i32(&w, r->sources[i].ood);
        cachefile_put_i32(&w, r->sources[i].n);
    }
    for (int k = 0; k < DOUBT_N_METHODS; k++) {
        cachefile_put(&w, r->id_score[k], (size_t)r->n_id * sizeof(float));
        cachefile_put(&w, r->ood_score[k], (size_t)r->n_ood * sizeof(float));
    }
    cachefile_put(&w, r->id_correct, (size_t)r->n_id);
    int rc = cachefile_write(path, EVAL_MAGIC, DOUBT_FORMAT_VERSION, key, &w, err);
    free(w.p);
    return rc;
}

static int report_load(const char *path, uint64_t key, struct doubt_report *out, char *err)
{
    memset(out, 0, sizeof *out);
    uint8_t *file;
    struct cachefile_reader r;
    uint64_t got;
    int rc = cachefile_read(path, EVAL_MAGIC, "doubt evaluation", DOUBT_FORMAT_VERSION, key, &file,
                            &r, &got, err);
    if (rc < 0)
        return rc;
    cachefile_get_str(&r, out->model_id, sizeof out->model_id);
    int n_id = cachefile_get_i32(&r), n_ood = cachefile_get_i32(&r);
    out->n_sources = cachefile_get_i32(&r);
    if (r.bad || n_id < 1 || n_ood < 1 || out->n_sources < 2 || out->n_sources > DOUBT_MAX_SOURCES ||
        (size_t)n_id + (size_t)n_ood > r.left) {
        out->n_sources = 0;
        goto corrupt;
    }
    long sum_id = 0, sum_ood = 0;
    for (int i = 0; i < out->n_sources; i++) {
        cachefile_get_str(&r, out->sources[i].name, sizeof out->sources[i].name);
        out->sources[i].ood = cachefile_get_i32(&r);
        out->sources[i].n = cachefile_get_i32(&r);
        *(out->sources[i].ood ? &sum_ood : &sum_id) += out->sources[i].n;
    }
    if (r.bad || sum_id != n_id || sum_ood != n_ood || report_alloc(out, n_id, n_ood) < 0)
        goto corrupt;
    for (int k = 0; k < DOUBT_N_METHODS; k++) {
        cachefile_get(&r, out->id_score[k], (size_t)n_id * sizeof(float));
        cachefile_get(&r, out->ood_score[k], (size_t)n_ood * sizeof(float));
        if (!all_finite(out->id_score[k], (size_t)n_id) || !all_finite(out->ood_score[k], (size_t)n_ood))
            r.bad = 1;
    }
    cachefile_get(&r, out->id_correct, (size_t)n_id);
    if (r.bad || r.left != 0)
        goto corrupt;
    free(file);
    doubt_report_metrics(out);
    return 0;
corrupt:
    free(file);
    doubt_report_free(out);
    return strata_fail(err, STRATA_E_FORMAT, "%s: inconsistent doubt evaluation (corrupt)", path);
}

int doubt_report_load_or_run(const struct doubt_model *dm, struct model *m,
                             const char *data_root, const char *ood_root, const char *cache_dir,
                             struct doubt_report *out, analysis_progress_fn progress,
                             void *user, char *err)
{
    memset(out, 0, sizeof *out);
    struct sources ss;
    uint64_t key = 0;
    char path[1024] = "";
    int rc = list_sources(m, data_root, ood_root, NULL, 0, 1, &ss, err);
    if (rc == 0 && cache_dir && (rc = report_key(dm, m, &ss, &key, err)) == 0) {
        if (snprintf(path, sizeof path, "%s/%s-%016llx.doubteval", cache_dir, m->id,
                     (unsigned long long)key) >= (int)sizeof path)
            rc = strata_fail(err, STRATA_E_ARG, "cache folder name too long");
        else if (report_load(path, key, out, err) == 0 && strcmp(out->model_id, m->id) == 0) {
            sources_free(&ss);
            return 0;
        }
        doubt_report_free(out);
    }
    if (rc == 0)
        rc = run_sources(dm, m, &ss, out, progress, user, err);
    sources_free(&ss);
    if (rc == 0 && cache_dir) {
        char werr[STRATA_ERR_LEN];
        /* An unwritable cache only costs the next caller the computation. */
        if (analysis_cache_create(cache_dir, werr) == 0)
            report_save(out, key, path, werr);
    }
    return rc;
}


/* ---- JSON ------------------------------------------------------------------------------------ */

/* A number, or null when it is not finite (an undefined AUROC). */
static json_t *num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

json_t *doubt_result_json(const struct doubt_result *r, const struct model *m)
{
    json_t *layers = json_array();
    for (int l = 0; layers && l < r->n_layers; l++) {
        const struct doubt_layer_view *v = &r->layers[l];
        json_t *j = json_pack("{s:i, s:s, s:s, s:f, s:b, s:f, s:f, s:b}", "index", v->layer, "name",
                              v->name, "class", m->classes[v->neighbour_class], "agreement",
                              (double)v->agreement, "agrees", v->agrees, "distance", (double)v->dist,
                              "percentile", (double)v->dist_percentile, "in_distance", v->in_distance);
        if (!j) {
            json_decref(layers);
            return NULL;
        }
        json_object_set_new(j, "cluster", v->cluster >= 0 ? json_integer(v->cluster) : json_null());
        json_object_set_new(j, "cluster_class", v->cluster_class >= 0
                                                    ? json_string(m->classes[v->cluster_class])
                                                    : json_null());
        json_array_append_new(layers, j);
    }
    if (!layers)
        return NULL;
    return json_pack("{s:f, s:s, s:f, s:{s:f, s:f}, s:f, s:f, s:f, s:{s:f, s:f, s:f}, s:s, s:o}",
                     "score", (double)r->doubt, "level", doubt_level_name(r->level), "credibility",
                     (double)r->credibility, "thresholds", "medium", (double)DOUBT_MEDIUM, "high",
                     (double)DOUBT_HIGH, "msp", (double)r->msp, "energy", (double)r->energy,
                     "nonconformity", (double)r->nonconformity, "terms", "distance",
                     (double)r->distance, "disagreement", (double)r->disagreement, "energy",
                     (double)r->energy_excess, "explanation", r->explanation, "layers", layers);
}

static json_t *by_method(const double *v)
{
    json_t *o = json_object();
    for (int k = 0; o && k < DOUBT_N_METHODS; k++)
        json_object_set_new(o, doubt_method_name(k), num(v[k]));
    return o;
}

static json_t *histogram(const float *v, int n, int bins)
{
    long count[100] = {0};
    for (int i = 0; i < n; i++) {
        int b = (int)(v[i] * bins);
        count[b < 0 ? 0 : b >= bins ? bins - 1 : b]++;
    }
    json_t *a = json_array();
    for (int b = 0; a && b < bins; b++)
        json_array_append_new(a, json_integer(count[b]));
    return a;
}

json_t *doubt_report_json(const struct doubt_report *r, int bins)
{
    assert(bins >= 1 && bins <= 100);
    json_t *src = json_array(), *edges = json_array();
    for (int i = 0; src && i < r->n_sources; i++)
        json_array_append_new(src, json_pack("{s:s, s:b, s:i}", "name", r->sources[i].name, "ood",
                                             r->sources[i].ood, "n", r->sources[i].n));
    for (int b = 0; edges && b <= bins; b++)
        json_array_append_new(edges, json_real((double)b / bins));
    return json_pack("{s:s, s:i, s:i, s:o, s:o, s:o, s:o, s:o, s:{s:f, s:f}, s:{s:o, s:o, s:o}}",
                     "model", r->model_id, "n_id", r->n_id, "n_ood", r->n_ood, "accuracy",
                     num(r->accuracy), "sources", src, "auroc", by_method(r->auroc), "fpr95",
                     by_method(r->fpr95), "auroc_errors", by_method(r->auroc_errors), "levels",
                     "medium", (double)DOUBT_MEDIUM, "high", (double)DOUBT_HIGH, "histogram",
                     "edges", edges, "id", histogram(r->id_score[DOUBT_METHOD_DOUBT], r->n_id, bins),
                     "ood", histogram(r->ood_score[DOUBT_METHOD_DOUBT], r->n_ood, bins));
}
