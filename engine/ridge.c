/*
 * ridge.c — weighted ridge regression and LIME's feature selection (see
 * ridge.h for the semantics being matched).
 *
 * Every fit goes through the same centred normal equations. With
 * s_i = sqrt(w_i), Z = diag(s)(X − 1x̄_wᵀ) and t = diag(s)(y − ȳ_w):
 *     A = ZᵀZ = XcᵀWXc,   b = Zᵀt = XcᵀWyc,   (A + αI)β = b.
 * The weighted residual sum of squares of such a fit is, because the
 * intercept makes the weighted residuals sum to zero,
 *     SSE = tᵀt − 2βᵀb + βᵀAβ,
 * so a fit on any subset of columns needs only the matching rows and columns
 * of A and b. Forward selection exploits this: it forms A, b once for all d
 * features and then solves only small k×k systems, instead of refitting from
 * the n×k data for each of its O(d·num_features) candidates.
 */
#include "ridge.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <lapacke.h>

/* Eigenvalues below this fraction of the largest are treated as zero by the
 * minimum-norm fallback: a Gram matrix formed in double carries rounding of
 * about 1e-16 of its largest eigenvalue, and a direction that weak is noise. */
#define RIDGE_PINV_RTOL 1e-12

/* The centred, weighted normal equations of one column subset. */
struct normal_eq {
    int k;
    double *a;    /* k×k, XcᵀWXc (symmetric, both triangles filled) */
    double *b;    /* k, XcᵀWyc */
    double *xmean; /* k, weighted column means */
    double ymean; /* weighted mean of y */
    double tt;    /* Σ w (y − ȳ_w)² */
};

static int check_weights(const double *y, const double *w, int n, double *wsum, char *err)
{
    double s = 0;
    for (int i = 0; i < n; i++) {
        if (!(w[i] >= 0) || !isfinite(w[i]))
            return strata_fail(err, STRATA_E_ARG,
                               "ridge: sample weight %d is %g; weights must be finite and >= 0",
                               i, w[i]);
        if (!isfinite(y[i]))
            return strata_fail(err, STRATA_E_ARG, "ridge: target %d is not a finite number", i);
        s += w[i];
    }
    if (!(s > 0))
        return strata_fail(err, STRATA_E_ARG, "ridge: all %d sample weights are zero", n);
    *wsum = s;
    return STRATA_OK;
}

/* Forms the normal equations of columns cols[0..k-1] (all d when cols is
 * NULL). z is n×k scratch, t is n scratch. */
static int normal_eq_build(struct normal_eq *ne, const double *x, int n, int d, const int *cols,
                           int k, const double *y, const double *w, double *z, double *t,
                           char *err)
{
    double wsum;
    int rc = check_weights(y, w, n, &wsum, err);
    if (rc)
        return rc;
    ne->k = k;
    memset(ne->xmean, 0, (size_t)k * sizeof(double));
    double ym = 0;
    for (int i = 0; i < n; i++) {
        const double *xi = x + (size_t)i * d;
        for (int j = 0; j < k; j++)
            ne->xmean[j] += w[i] * xi[cols ? cols[j] : j];
        ym += w[i] * y[i];
    }
    for (int j = 0; j < k; j++)
        ne->xmean[j] /= wsum;
    ne->ymean = ym / wsum;

    double tt = 0;
    for (int i = 0; i < n; i++) {
        const double *xi = x + (size_t)i * d;
        double s = sqrt(w[i]);
        double *zi = z + (size_t)i * k;
        for (int j = 0; j < k; j++)
            zi[j] = s * (xi[cols ? cols[j] : j] - ne->xmean[j]);
        t[i] = s * (y[i] - ne->ymean);
        tt += t[i] * t[i];
    }
    ne->tt = tt;
    /* A = ZᵀZ into the upper triangle, mirrored below so that any solver or
     * sub-matrix gather can read either half. */
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, k, n, 1.0, z, k, 0.0, ne->a, k);
    for (int r = 0; r < k; r++)
        for (int c = 0; c < r; c++)
            ne->a[(size_t)r * k + c] = ne->a[(size_t)c * k + r];
    cblas_dgemv(CblasRowMajor, CblasTrans, n, k, 1.0, z, k, t, 1, 0.0, ne->b, 1);
    return STRATA_OK;
}

/* Minimum-norm solution of the symmetric positive semi-definite system a·β = b
 * through an eigendecomposition (a is destroyed). Only used when Cholesky
 * fails, so its allocation is off the common path. */
static int solve_pinv(double *a, const double *b, double *beta, int k, char *err)
{
    double *buf = malloc((size_t)k * 2 * sizeof(double));
    if (!buf)
        return strata_fail(err, STRATA_E_NOMEM, "ridge: out of memory for a %d-feature solve", k);
    double *ev = buf, *proj = buf + k;
    int info = LAPACKE_dsyev(LAPACK_COL_MAJOR, 'V', 'L', k, a, k, ev);
    if (info != 0) {
        free(buf);
        return strata_fail(err, STRATA_E_ARG,
                           "ridge: the eigen-solver did not converge (LAPACK info %d); the "
                           "design matrix is numerically degenerate",
                           info);
    }
    double tol = ev[k - 1] * RIDGE_PINV_RTOL; /* dsyev sorts ascending */
    /* Column-major eigenvectors: v_j = a[j*k .. j*k+k-1]. β = Σ_j v_j (v_jᵀb)/λ_j. */
    for (int j = 0; j < k; j++) {
        double p = 0;
        for (int r = 0; r < k; r++)
            p += a[(size_t)j * k + r] * b[r];
        proj[j] = ev[j] > tol ? p / ev[j] : 0.0;
    }
    for (int r = 0; r < k; r++) {
        double s = 0;
        for (int j = 0; j < k; j++)
            s += a[(size_t)j * k + r] * proj[j];
        beta[r] = s;
    }
    free(buf);
    return STRATA_OK;
}

/* Solves (a + αI)β = b. a is k×k symmetric and is left intact; m is k×k
 * scratch. Cholesky first; on failure (only possible when α = 0) the
 * minimum-norm solution. */
static int solve_ridge(const double *a, const double *b, int k, double alpha, double *beta,
                       double *m, char *err)
{
    memcpy(m, a, (size_t)k * k * sizeof(double));
    for (int j = 0; j < k; j++)
        m[(size_t)j * k + j] += alpha;
    memcpy(beta, b, (size_t)k * sizeof(double));
    /* The _work variant in column-major order neither allocates nor transposes;
     * m is symmetric so its row-major storage is also its column-major one. */
    lapack_int info = LAPACKE_dposv_work(LAPACK_COL_MAJOR, 'L', k, 1, m, k, beta, k);
    if (info == 0 && alpha == 0) {
        /* Without a penalty a column that is constant up to rounding (its
         * weighted mean is not exactly representable) passes Cholesky with a
         * pivot of rounding size and explodes the coefficients; treat such a
         * near-singular matrix as singular. */
        double amax = 0, lmin = INFINITY;
        for (int j = 0; j < k; j++) {
            double ljj = m[(size_t)j * k + j];
            amax = fmax(amax, a[(size_t)j * k + j]);
            lmin = fmin(lmin, ljj * ljj);
        }
        if (lmin < amax * RIDGE_PINV_RTOL)
            info = 1;
    }
    if (info == 0)
        return STRATA_OK;
    if (info < 0)
        return strata_fail(err, STRATA_E_ARG, "ridge: LAPACK dposv rejected argument %d",
                           (int)-info);
    memcpy(m, a, (size_t)k * k * sizeof(double));
    for (int j = 0; j < k; j++)
        m[(size_t)j * k + j] += alpha;
    return solve_pinv(m, b, beta, k, err);
}

int ridge_fit(const double *x, int n, int d, const int *cols, int k, const double *y,
              const double *w, double alpha, double *coef, double *intercept, char *err)
{
    assert(x && y && w && coef && intercept && n > 0 && d > 0 && k > 0);
    assert(cols || k == d);
    if (!(alpha >= 0) || !isfinite(alpha))
        return strata_fail(err, STRATA_E_ARG, "ridge: alpha is %g; it must be >= 0", alpha);
    size_t nd = (size_t)n * k + n + 3 * (size_t)k * k + 2 * (size_t)k;
    double *buf = malloc(nd * sizeof(double));
    if (!buf)
        return strata_fail(err, STRATA_E_NOMEM,
                           "ridge: out of memory for %d samples × %d features", n, k);
    double *z = buf, *t = z + (size_t)n * k, *m = t + n;
    struct normal_eq ne = {.a = m + (size_t)k * k, .b = m + 2 * (size_t)k * k};
    ne.xmean = ne.b + k;
    int rc = normal_eq_build(&ne, x, n, d, cols, k, y, w, z, t, err);
    if (rc == STRATA_OK)
        rc = solve_ridge(ne.a, ne.b, k, alpha, coef, m, err);
    if (rc == STRATA_OK) {
        double c = ne.ymean;
        for (int j = 0; j < k; j++)
            c -= ne.xmean[j] * coef[j];
        *intercept = c;
    }
    free(buf);
    return rc;
}

double ridge_score(const double *x, int n, int d, const int *cols, int k, const double *y,
                   const double *w, const double *coef, double intercept)
{
    assert(x && y && w && (coef || k == 0) && n > 0);
    double wsum = 0, ym = 0;
    for (int i = 0; i < n; i++) {
        wsum += w[i];
        ym += w[i] * y[i];
    }
    ym = wsum > 0 ? ym / wsum : 0;
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        const double *xi = x + (size_t)i * d;
        double p = intercept;
        for (int j = 0; j < k; j++)
            p += coef[j] * xi[cols ? cols[j] : j];
        num += w[i] * (y[i] - p) * (y[i] - p);
        den += w[i] * (y[i] - ym) * (y[i] - ym);
    }
    if (den == 0)
        return num == 0 ? 1.0 : 0.0;
    return 1.0 - num / den;
}

/* Greedy forward selection on precomputed normal equations of all d
 * features. Scratch: sub-matrix, solve matrix and vectors of size num_features. */
static int forward_selection(const struct normal_eq *all, int d, int num_features, int *selected,
                             char *err)
{
    int kmax = num_features < d ? num_features : d;
    size_t need = 2 * (size_t)kmax * kmax + 2 * (size_t)kmax;
    double *buf = malloc(need * sizeof(double));
    char *used = calloc((size_t)d, 1);
    if (!buf || !used) {
        free(buf);
        free(used);
        return strata_fail(err, STRATA_E_NOMEM, "ridge: out of memory for forward selection");
    }
    double *sa = buf, *m = sa + (size_t)kmax * kmax, *sb = m + (size_t)kmax * kmax,
           *beta = sb + kmax;
    int rc = STRATA_OK;
    for (int step = 0; step < kmax && rc == STRATA_OK; step++) {
        int k = step + 1, best = 0;
        double best_score = -1e8; /* LIME's starting "max_" */
        for (int f = 0; f < d; f++) {
            if (used[f])
                continue;
            selected[step] = f; /* candidate set = selected[0..step] */
            for (int r = 0; r < k; r++) {
                for (int c = 0; c < k; c++)
                    sa[(size_t)r * k + c] = all->a[(size_t)selected[r] * d + selected[c]];
                sb[r] = all->b[selected[r]];
            }
            rc = solve_ridge(sa, sb, k, 0.0, beta, m, err);
            if (rc)
                break;
            double btb = 0, bab = 0;
            for (int r = 0; r < k; r++) {
                btb += beta[r] * sb[r];
                double ar = 0;
                for (int c = 0; c < k; c++)
                    ar += sa[(size_t)r * k + c] * beta[c];
                bab += beta[r] * ar;
            }
            double sse = all->tt - 2 * btb + bab;
            if (sse < 0)
                sse = 0; /* rounding on an exact fit */
            double score = all->tt > 0 ? 1.0 - sse / all->tt : (sse == 0 ? 1.0 : 0.0);
            if (score > best_score) {
                best_score = score;
                best = f;
            }
        }
        selected[step] = best;
        used[best] = 1;
    }
    free(buf);
    free(used);
    return rc;
}

/* Index sort by |v| descending; ties keep the lower index first, as Python's
 * stable sorted() over range(d) does. Insertion sort: d is a superpixel count. */
static void argsort_abs_desc(const double *v, int *idx, int d)
{
    for (int i = 0; i < d; i++)
        idx[i] = i;
    for (int i = 1; i < d; i++) {
        int cur = idx[i];
        double a = fabs(v[cur]);
        int j = i - 1;
        while (j >= 0 && fabs(v[idx[j]]) < a) {
            idx[j + 1] = idx[j];
            j--;
        }
        idx[j + 1] = cur;
    }
}

int ridge_select_features(const double *x, int n, int d, const double *y, const double *w,
                          enum feature_selection method, int num_features, int *selected,
                          int *n_selected, char *err)
{
    assert(x && y && w && selected && n_selected && n > 0 && d > 0);
    if (num_features < 1)
        return strata_fail(err, STRATA_E_ARG,
                           "ridge: num_features is %d; at least one feature must be kept",
                           num_features);
    if (method == FEATURE_SELECTION_AUTO)
        method = num_features <= 6 ? FEATURE_SELECTION_FORWARD : FEATURE_SELECTION_HIGHEST;
    int keep = num_features < d ? num_features : d;

    if (method == FEATURE_SELECTION_NONE) {
        for (int j = 0; j < d; j++)
            selected[j] = j;
        *n_selected = d;
        return STRATA_OK;
    }
    if (method == FEATURE_SELECTION_HIGHEST) {
        double *buf = malloc((size_t)d * sizeof(double));
        int *idx = malloc((size_t)d * sizeof(int));
        int rc = buf && idx ? STRATA_OK
                            : strata_fail(err, STRATA_E_NOMEM,
                                          "ridge: out of memory for feature selection");
        double icpt;
        /* LIME's highest_weights uses a light penalty of 0.01. */
        if (rc == STRATA_OK)
            rc = ridge_fit(x, n, d, NULL, d, y, w, 0.01, buf, &icpt, err);
        if (rc == STRATA_OK) {
            argsort_abs_desc(buf, idx, d);
            memcpy(selected, idx, (size_t)keep * sizeof(int));
            *n_selected = keep;
        }
        free(buf);
        free(idx);
        return rc;
    }
    assert(method == FEATURE_SELECTION_FORWARD);
    size_t need = (size_t)n * d + n + (size_t)d * d + 2 * (size_t)d;
    double *buf = malloc(need * sizeof(double));
    if (!buf)
        return strata_fail(err, STRATA_E_NOMEM,
                           "ridge: out of memory for %d samples × %d features", n, d);
    double *z = buf, *t = z + (size_t)n * d;
    struct normal_eq all = {.a = t + n};
    all.b = all.a + (size_t)d * d;
    all.xmean = all.b + d;
    int rc = normal_eq_build(&all, x, n, d, NULL, d, y, w, z, t, err);
    if (rc == STRATA_OK)
        rc = forward_selection(&all, d, keep, selected, err);
    if (rc == STRATA_OK)
        *n_selected = keep;
    free(buf);
    return rc;
}

int feature_selection_parse(const char *name)
{
    static const struct {
        const char *name;
        enum feature_selection value;
    } table[] = {
        {"auto", FEATURE_SELECTION_AUTO},
        {"forward_selection", FEATURE_SELECTION_FORWARD},
        {"highest_weights", FEATURE_SELECTION_HIGHEST},
        {"none", FEATURE_SELECTION_NONE},
    };
    if (!name)
        return -1;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(name, table[i].name) == 0)
            return (int)table[i].value;
    return -1;
}
