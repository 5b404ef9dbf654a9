/*
 * doubt_score.c — the doubt score of an image (doubt_score.h, docs/doubt.md):
 * the feature rows of the probed layers, the nearest training rows, the
 * class Gaussians, the nonconformity and its conformal calibration into a
 * doubt, the baselines, and the per-layer view with its explanation.
 *
 * Features. A probed layer's row is, per channel, the mean of its output
 * over space (average-pooled to the grid) followed, for an output with more
 * than one position, by the standard deviation over space: the mean says
 * which channels fire, the spread whether they fire everywhere (a
 * homogeneous scene, a texture) or in one place (an object). A 1 x 1 output
 * (dense, global average pooling) is taken as is.
 *
 * Cost. A doubt model keeps per probed layer the reference rows, a mean row,
 * a d x d whitening matrix (from one SYRK for the covariance, one Cholesky
 * factorisation and a triangular inverse, doubt_fit_layer) and the whitened
 * class centres. Scoring an image costs one GEMM row against the reference
 * rows and one triangular matrix product (d^2 / 2 multiply-adds) per probed
 * layer, and C distances in the whitened space; doubt_score_images batches
 * the products.
 */
#include "doubt_score.h"

#include <assert.h>
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer.h"
#include "reduce.h"

const char doubt_recipe[] =
    "features = per-channel spatial mean (grid) + per-channel spatial std (maps > 1x1); "
    "alpha = mean_deep_half(0.5 (logz_knn10 + logz_maha)) + mean(1 - P_lda(y)) + max(0, z_energy); "
    "conformal, plotting positions (i+1)/(n+1), exponential tails";

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

/* ---- features ------------------------------------------------------------------ */

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
void doubt_layer_rows(const struct model_workspace *ws, const struct model *m, int l, int grid,
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
int doubt_fit_layer(struct doubt_layer_ref *R, int C, float shrinkage, float *X, const int *y,
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
double doubt_layer_z(const struct doubt_layer_ref *R, float knn, float maha)
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
double doubt_nonconformity(const struct doubt_model *dm, const float *z, const float *post,
                           float energy, int y)
{
    double dist, dis, ez;
    terms(dm, z, post, energy, y, &dist, &dis, &ez);
    return dist + dis + fmax(0.0, ez);
}

int doubt_cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Quantile q of sorted v[n] with linear interpolation (numpy's default). */
double doubt_quantile_sorted(const float *v, int n, double q)
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
    double med = doubt_quantile_sorted(c, n, 0.5), lnr = log((n + 1) / 2.0);
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

/* ---- scratch and probing ------------------------------------------------------- */

void doubt_scratch_free(struct doubt_scratch *s)
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

int doubt_scratch_init(struct doubt_scratch *s, const struct doubt_model *dm, int max_batch,
                       char *err)
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
        doubt_scratch_free(s);
        return strata_fail(err, STRATA_E_NOMEM, "doubt: out of memory for scoring scratch");
    }
    return 0;
}

/* K-NN and Mahalanobis distances and class posteriors at every probed layer
 * for samples [b0, b0 + nb) of the batch in ws: s->knn[i * L + l],
 * s->maha[i * L + l], s->post[(i * L + l) * C + c]. */
void doubt_probe_batch(const struct doubt_model *dm, const struct model *m,
                       const struct model_workspace *ws, int b0, int nb, struct doubt_scratch *s)
{
    int L = dm->n_layers, C = dm->n_classes;
    assert(nb <= s->max_batch);
    for (int l = 0; l < L; l++) {
        const struct doubt_layer_ref *R = &dm->layers[l];
        doubt_layer_rows(ws, m, R->layer, dm->grid, b0, nb, s->rows);
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
static void batch_z(const struct doubt_model *dm, const struct doubt_scratch *s, int i, float *z)
{
    int L = dm->n_layers;
    for (int l = 0; l < L; l++)
        z[l] = (float)doubt_layer_z(&dm->layers[l], s->knn[(size_t)i * L + l], s->maha[(size_t)i * L + l]);
}

int doubt_check_model(const struct doubt_model *dm, const struct model *m, char *err)
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
 * product); after a standalone softmax layer they are the output of the
 * layer it reads; otherwise the last output is taken as the logits. */
void doubt_baselines(const struct model *m, const struct model_workspace *ws, int b, int *pred,
                     float *msp, float *energy)
{
    int C = m->n_classes, last = m->n_layers - 1;
    const struct layer *Ll = &m->layers[last];
    const float *p = model_output(ws, last) + (size_t)b * C;
    *pred = infer_argmax(p, C);
    *msp = p[*pred];
    double z[MODEL_MAX_CLASSES] = {0};
    /* what the last layer reads: the layer its inputs name (the one before, in a chain) */
    const int src = Ll->n_inputs >= 1 ? Ll->inputs[0] : last - 1;
    if (Ll->cfg.kind == LAYER_DENSE && Ll->cfg.activation == ACT_SOFTMAX) {
        size_t in_size = shape_size(Ll->in);
        const float *in = src >= 0 ? model_output(ws, src) + (size_t)b * in_size
                                   : ws->input + (size_t)b * in_size;
        for (int u = 0; u < C; u++)
            z[u] = Ll->w.bias ? Ll->w.bias[u] : 0;
        for (size_t i = 0; i < in_size; i++) {
            const float *wi = Ll->w.kernel + i * (size_t)C;
            double x = in[i];
            for (int u = 0; u < C; u++)
                z[u] += x * wi[u];
        }
    } else if (Ll->cfg.kind == LAYER_SOFTMAX && src >= 0) {
        const float *in = model_output(ws, src) + (size_t)b * C;
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

/* ---- scoring ------------------------------------------------------------------------- */

/* Appends to buf (capacity cap) like snprintf, never past the end; when the
 * text is cut, a character cut in the middle of its UTF-8 bytes is dropped
 * whole, so that the explanation stays valid UTF-8 (JSON needs it). */
static void appendf(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void appendf(char *buf, size_t cap, const char *fmt, ...)
{
    size_t len = strlen(buf);
    if (len + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + len, cap - len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n < cap - len)
        return;
    /* Cut: back over continuation bytes (10xxxxxx) to the character's
     * first byte; drop it unless all the bytes it announces are there. */
    size_t end = cap - 1, lead = end;
    while (lead > len && ((unsigned char)buf[lead - 1] & 0xC0) == 0x80)
        lead--;
    if (lead == len)
        return;
    unsigned char c = (unsigned char)buf[lead - 1];
    size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if (end - (lead - 1) < need)
        buf[lead - 1] = 0;
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
                         const struct doubt_scratch *s, int i, struct doubt_result *r, char *err)
{
    memset(r, 0, sizeof *r);
    int C = dm->n_classes, L = dm->n_layers;
    float z[MODEL_MAX_LAYERS];
    const float *post = s->post + (size_t)i * L * C;
    doubt_baselines(m, ws, b, &r->predicted, &r->msp, &r->energy);
    batch_z(dm, s, i, z);
    double dist, dis, ez;
    terms(dm, z, post, r->energy, r->predicted, &dist, &dis, &ez);
    r->distance = (float)dist;
    r->disagreement = (float)dis;
    r->energy_excess = (float)fmax(0.0, ez);
    r->nonconformity = (float)doubt_nonconformity(dm, z, post, r->energy, r->predicted);
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
    int rc = doubt_check_model(dm, m, err);
    if (rc < 0)
        return rc;
    struct doubt_scratch s;
    if ((rc = doubt_scratch_init(&s, dm, 1, err)) < 0)
        return rc;
    doubt_probe_batch(dm, m, ws, b, 1, &s);
    rc = finish_result(dm, m, a, ws, b, &s, 0, out, err);
    doubt_scratch_free(&s);
    return rc;
}

/* What doubt_score_images fills, batch by batch (infer_images' user). */
struct image_scores {
    const struct doubt_model *dm;
    struct doubt_scratch s;
    float *doubt, *msp, *energy;
    int *pred;
};

static int score_batch(void *user, const struct model *m, const struct model_workspace *ws,
                       int first, int nb)
{
    struct image_scores *o = user;
    const struct doubt_model *dm = o->dm;
    int L = dm->n_layers, C = dm->n_classes;
    doubt_probe_batch(dm, m, ws, 0, nb, &o->s);
    for (int i = 0; i < nb; i++) {
        int y;
        float p, e, z[MODEL_MAX_LAYERS];
        doubt_baselines(m, ws, i, &y, &p, &e);
        batch_z(dm, &o->s, i, z);
        float alpha = (float)doubt_nonconformity(dm, z, o->s.post + (size_t)i * L * C, e, y);
        if (o->doubt)
            o->doubt[first + i] = (float)calibrated_doubt(dm->cal_alpha, dm->n_cal, alpha);
        if (o->msp)
            o->msp[first + i] = p;
        if (o->energy)
            o->energy[first + i] = e;
        if (o->pred)
            o->pred[first + i] = y;
    }
    return 0;
}

int doubt_score_images(const struct doubt_model *dm, struct model *m, const uint8_t *pixels,
                       int n, float *doubt, float *msp, float *energy, int *pred, char *err)
{
    int rc = doubt_check_model(dm, m, err);
    if (rc < 0)
        return rc;
    enum { B = 32 };
    struct model_workspace ws;
    struct image_scores o = {.dm = dm, .doubt = doubt, .msp = msp, .energy = energy, .pred = pred};
    if ((rc = model_workspace_init(&ws, m, B, err)) < 0)
        return rc;
    if ((rc = doubt_scratch_init(&o.s, dm, B, err)) == 0) {
        infer_images(m, &ws, pixels, n, NULL, score_batch, &o);
        doubt_scratch_free(&o.s);
    }
    model_workspace_free(&ws);
    return rc;
}
