/* pca.c — exact PCA through the covariance or the Gram matrix (see pca.h). */
#include "pca.h"

#include <assert.h>
#include <cblas.h>
#include <fenv.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

/* When min(n, d) is above this, the subspace solver is tried first: below
 * it forming the matrix and dsyevr take < 50 ms; at 2048 they take ~0.6 s
 * against ~0.05 s for a converging subspace iteration. */
#define PCA_SUBSPACE_MIN 1024
#define PCA_OVERSAMPLE 10        /* extra block vectors: speed up convergence */
#define PCA_SUBSPACE_TOL 1e-10   /* residual, relative to the top eigenvalue */
#define PCA_SUBSPACE_MIN_ITER 20  /* steps allowed however small the matrix */

void pca_result_free(struct pca_result *p)
{
    if (!p)
        return;
    free(p->mean);
    free(p->components);
    free(p->explained_variance);
    free(p->explained_variance_ratio);
    memset(p, 0, sizeof *p);
}

/* Removes from v (length d) its projections on the first `have` rows of V
 * (orthonormal), twice (classical Gram-Schmidt needs the second pass to stay
 * orthogonal to working precision), and returns the remaining norm. */
static double orthogonalise(double *v, const double *V, int have, int d)
{
    for (int pass = 0; pass < 2; pass++)
        for (int c = 0; c < have; c++) {
            const double *u = V + (size_t)c * d;
            double dot = 0;
            for (int t = 0; t < d; t++)
                dot += u[t] * v[t];
            for (int t = 0; t < d; t++)
                v[t] -= dot * u[t];
        }
    double nn = 0;
    for (int t = 0; t < d; t++)
        nn += v[t] * v[t];
    return sqrt(nn);
}

/* Fills row `c` of V with a unit vector orthogonal to rows 0..c-1, trying
 * the unit vectors e_0, e_1, ... in turn (deterministic). */
static void complete_basis(double *V, int c, int d)
{
    double *v = V + (size_t)c * d;
    for (int e = 0; e < d; e++) {
        memset(v, 0, sizeof(double) * d);
        v[e] = 1;
        double nn = orthogonalise(v, V, c, d);
        if (nn > 0.5) { /* at least half of e survives: well conditioned */
            for (int t = 0; t < d; t++)
                v[t] /= nn;
            return;
        }
    }
    assert(!"no unit vector left to complete the basis (c < d is checked)");
}

/* LAPACK's ieeeck (called by dsyevr and through ilaenv) divides by zero and
 * makes NaNs on purpose to learn whether IEEE special values are safe to
 * use: with floating-point traps enabled (as in strata's tests, or a caller
 * hunting NaNs) that would kill the process. So traps are masked around the
 * eigen-solvers, the flags they leave are cleared, and the caller's traps are
 * restored. */
static int mask_traps(void)
{
    int traps = fegetexcept();
    if (traps)
        fedisableexcept(traps);
    return traps;
}

static void restore_traps(int traps)
{
    if (traps) {
        feclearexcept(FE_ALL_EXCEPT);
        feenableexcept(traps);
    }
}

/* Top nc eigenpairs of the symmetric m x m matrix whose upper triangle is in
 * M, by dsyevr (range 'I': tridiagonal reduction, then only the wanted
 * pairs): w[c] descending, eigenvector c in column c of Z (m x nc). M is
 * destroyed. Returns 0 or STRATA_E_UNSUPPORTED with LAPACK's code. */
static int eig_exact(double *M, int m, int nc, double *w, double *Z, char *err)
{
    double *wa = malloc(sizeof(double) * (size_t)m);
    double *Za = malloc(sizeof(double) * (size_t)m * nc);
    lapack_int *isuppz = malloc(sizeof(lapack_int) * 2 * (size_t)nc);
    if (!wa || !Za || !isuppz) {
        free(wa);
        free(Za);
        free(isuppz);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory for a %d x %d eigenproblem", m,
                           m);
    }
    lapack_int found = 0;
    /* abstol = safe minimum: LAPACK's advice for the most accurate eigenvalues. */
    lapack_int info = LAPACKE_dsyevr(LAPACK_ROW_MAJOR, 'V', 'I', 'U', m, M, m, 0.0, 0.0,
                                     m - nc + 1, m, LAPACKE_dlamch('S'), &found, wa, Za, nc,
                                     isuppz);
    int rc = STRATA_OK;
    if (info != 0 || found != nc) {
        rc = strata_fail(err, STRATA_E_UNSUPPORTED,
                         "LAPACK dsyevr failed on a %d x %d PCA (info %d, found %d of %d)", m, m,
                         (int)info, (int)found, nc);
    } else {
        /* dsyevr lists them in ascending order. */
        for (int c = 0; c < nc; c++) {
            int j = nc - 1 - c;
            w[c] = wa[j];
            for (int i = 0; i < m; i++)
                Z[(size_t)i * nc + c] = Za[(size_t)i * nc + j];
        }
    }
    free(wa);
    free(Za);
    free(isuppz);
    return rc;
}

/* Orthonormalises the l columns of Q (m x l, row-major) in place by QR.
 * Returns 0, or non-zero if LAPACK failed or memory ran out. */
static int orthonormalise(double *Q, int m, int l, double *tau)
{
    if (LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, m, l, Q, l, tau))
        return -1;
    return LAPACKE_dorgqr(LAPACK_ROW_MAJOR, m, l, l, Q, l, tau) ? -1 : 0;
}

/* Top nc principal axes by subspace iteration with Rayleigh-Ritz (Saad,
 * "Numerical Methods for Large Eigenvalue Problems", ch. 5) on the
 * covariance operator S q = Xc' (Xc q) / (n - 1), which is never formed: a
 * block of l = nc + PCA_OVERSAMPLE vectors Q (d x l), Q <- orth(S Q), and
 * after each product the Ritz pairs of Q' S Q; stops when every wanted pair
 * has a residual ||S v - theta v|| <= PCA_SUBSPACE_TOL * theta_1. One step
 * costs 2 n d l multiply-adds, forming S costs n d min(n, d), so at most
 * max_it steps are tried before the caller falls back to the exact solver.
 * The start block comes from a fixed seed: the result is deterministic.
 * On success writes the variances to var[nc] (descending) and the axes to
 * the rows of V (nc x d) and returns 1; returns 0 when not converged, out of
 * memory, or LAPACK failed. */
static int eig_subspace(const double *Xc, int n, int d, int nc, int max_it, double *var,
                        double *V)
{
    int l = nc + PCA_OVERSAMPLE;
    size_t dl = (size_t)d * l;
    double *Q = malloc(sizeof(double) * dl);
    double *Y = malloc(sizeof(double) * dl);
    double *R = malloc(sizeof(double) * dl);
    double *P = malloc(sizeof(double) * (size_t)n * l);
    double *T = malloc(sizeof(double) * (size_t)l * l);
    double *theta = malloc(sizeof(double) * (size_t)l);
    double *tau = malloc(sizeof(double) * (size_t)l);
    int converged = 0;
    if (!Q || !Y || !R || !P || !T || !theta || !tau)
        goto out;
    struct rng r;
    rng_seed(&r, 0x5ca1ab1eULL);
    for (size_t i = 0; i < dl; i++)
        Q[i] = rng_normal(&r);
    if (orthonormalise(Q, d, l, tau))
        goto out;
    for (int it = 0; it < max_it && !converged; it++) {
        /* Y = S Q = Xc' (Xc Q) / (n - 1) */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, l, d, 1.0, Xc, d, Q, l, 0.0, P,
                    l);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, l, n, 1.0 / (n - 1), Xc, d, P,
                    l, 0.0, Y, l);
        /* T = Q' S Q, symmetrised against rounding; its eigenvectors (columns,
         * ascending) rotate Q into the Ritz vectors R = Q W, and Y W = S R. */
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, l, l, d, 1.0, Q, l, Y, l, 0.0, T, l);
        for (int i = 0; i < l; i++)
            for (int j = i + 1; j < l; j++)
                T[i * l + j] = T[j * l + i] = 0.5 * (T[i * l + j] + T[j * l + i]);
        if (LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'V', 'U', l, T, l, theta))
            goto out;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d, l, l, 1.0, Q, l, T, l, 0.0, R,
                    l);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d, l, l, 1.0, Y, l, T, l, 0.0, Q,
                    l);
        double top = fabs(theta[l - 1]);
        converged = top > 0;
        for (int c = 0; c < nc && converged; c++) {
            int j = l - 1 - c;
            double res = 0;
            for (int t = 0; t < d; t++) {
                double e = Q[(size_t)t * l + j] - theta[j] * R[(size_t)t * l + j];
                res += e * e;
            }
            converged = sqrt(res) <= PCA_SUBSPACE_TOL * top;
        }
        if (converged) {
            for (int c = 0; c < nc; c++) {
                int j = l - 1 - c;
                var[c] = theta[j];
                for (int t = 0; t < d; t++)
                    V[(size_t)c * d + t] = R[(size_t)t * l + j];
            }
        } else if (orthonormalise(Q, d, l, tau)) { /* Q holds S R: the next block */
            goto out;
        }
    }
out:
    free(Q);
    free(Y);
    free(R);
    free(P);
    free(T);
    free(theta);
    free(tau);
    return converged;
}

int pca_fit(const float *X, int n, int d, int n_components, struct pca_result *out, char *err)
{
    struct pca_options o = {PCA_MATRIX_AUTO, PCA_SOLVER_AUTO};
    return pca_fit_opts(X, n, d, n_components, &o, out, err);
}

int pca_fit_opts(const float *X, int n, int d, int n_components, const struct pca_options *opt,
                 struct pca_result *out, char *err)
{
    assert(X && opt && out);
    memset(out, 0, sizeof *out);
    int nc = n_components;
    if (n < 2 || d < 1)
        return strata_fail(err, STRATA_E_ARG, "PCA needs at least 2 rows and 1 feature (got %d x %d)",
                           n, d);
    int lim = n < d ? n : d;
    lim = lim < PCA_MAX_COMPONENTS ? lim : PCA_MAX_COMPONENTS;
    if (nc < 1 || nc > lim)
        return strata_fail(err, STRATA_E_ARG,
                           "PCA of %d x %d data can give 1..%d components (asked for %d)", n, d,
                           lim, nc);
    int gram = opt->matrix == PCA_MATRIX_GRAM || (opt->matrix == PCA_MATRIX_AUTO && n < d);
    int m = gram ? n : d, small = n < d ? n : d;
    enum pca_solver solver = opt->solver;
    if (solver == PCA_SOLVER_AUTO)
        solver = small > PCA_SUBSPACE_MIN ? PCA_SOLVER_SUBSPACE : PCA_SOLVER_EXACT;
    if (solver == PCA_SOLVER_SUBSPACE && nc + PCA_OVERSAMPLE >= small)
        solver = PCA_SOLVER_EXACT; /* the block would span (nearly) everything */

    double *Xc = malloc(sizeof(double) * (size_t)n * d);
    double *mean = calloc((size_t)d, sizeof(double));
    double *var = malloc(sizeof(double) * (size_t)nc);
    double *V = malloc(sizeof(double) * (size_t)nc * d);
    double *M = NULL, *Z = NULL;
    out->mean = malloc(sizeof(float) * (size_t)d);
    out->components = malloc(sizeof(float) * (size_t)nc * d);
    out->explained_variance = malloc(sizeof(double) * (size_t)nc);
    out->explained_variance_ratio = malloc(sizeof(double) * (size_t)nc);
    int rc = STRATA_OK;
    if (!Xc || !mean || !var || !V || !out->mean || !out->components ||
        !out->explained_variance || !out->explained_variance_ratio) {
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory for the PCA of %d x %d data", n, d);
        goto done;
    }

    for (int i = 0; i < n; i++)
        for (int t = 0; t < d; t++) {
            float x = X[(size_t)i * d + t];
            if (!isfinite(x)) {
                rc = strata_fail(err, STRATA_E_ARG,
                                 "feature matrix holds a non-finite value at row %d, column %d", i,
                                 t);
                goto done;
            }
            mean[t] += x;
        }
    for (int t = 0; t < d; t++)
        mean[t] /= n;
    double ss = 0;
    for (int i = 0; i < n; i++)
        for (int t = 0; t < d; t++) {
            double v = X[(size_t)i * d + t] - mean[t];
            Xc[(size_t)i * d + t] = v;
            ss += v * v;
        }
    double total = ss / (n - 1);

    int traps = mask_traps();
    int solved = 0;
    if (solver == PCA_SOLVER_SUBSPACE) {
        /* Steps allowed: about the cost of forming the m x m matrix. */
        int max_it = small / (2 * (nc + PCA_OVERSAMPLE));
        max_it = max_it < PCA_SUBSPACE_MIN_ITER ? PCA_SUBSPACE_MIN_ITER : max_it;
        solved = eig_subspace(Xc, n, d, nc, max_it, var, V);
    }
    if (!solved) {
        M = malloc(sizeof(double) * (size_t)m * m);
        Z = malloc(sizeof(double) * (size_t)m * nc);
        if (!M || !Z) {
            restore_traps(traps);
            rc = strata_fail(err, STRATA_E_NOMEM, "out of memory for the PCA of %d x %d data", n,
                             d);
            goto done;
        }
        /* Upper triangle of S = Xc' Xc / (n-1) (d x d) or of G = Xc Xc' (n x n). */
        if (gram)
            cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, n, d, 1.0, Xc, d, 0.0, M, n);
        else
            cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, n, 1.0 / (n - 1), Xc, d, 0.0,
                        M, d);
        rc = eig_exact(M, m, nc, var, Z, err);
    }
    restore_traps(traps);
    if (rc)
        goto done;

    /* Axes from the exact solver: the eigenvectors themselves (covariance),
     * or v = Xc' u / sqrt(l) with variance l / (n - 1) (Gram). */
    for (int c = 0; c < nc && !solved; c++) {
        double *v = V + (size_t)c * d;
        if (!gram) {
            for (int t = 0; t < d; t++)
                v[t] = Z[(size_t)t * nc + c];
            continue;
        }
        double lam = var[c] > 0 ? var[c] : 0;
        var[c] = lam / (n - 1);
        for (int t = 0; t < d; t++)
            v[t] = 0;
        if (!(var[c] > 1e-12 * total))
            continue; /* completed below */
        for (int i = 0; i < n; i++) {
            double u = Z[(size_t)i * nc + c];
            const double *x = Xc + (size_t)i * d;
            for (int t = 0; t < d; t++)
                v[t] += u * x[t];
        }
        double inv = 1.0 / sqrt(lam);
        for (int t = 0; t < d; t++)
            v[t] *= inv;
    }
    /* A component whose variance is at rounding level of the total carries
     * none and is completed to an orthonormal set. */
    for (int c = 0; c < nc; c++) {
        if (!(var[c] > 1e-12 * total)) {
            var[c] = 0;
            complete_basis(V, c, d);
        }
        out->explained_variance[c] = var[c];
        out->explained_variance_ratio[c] = total > 0 ? var[c] / total : 0;
    }

    /* Sign rule: largest-magnitude entry positive, first one on ties. */
    for (int c = 0; c < nc; c++) {
        double *v = V + (size_t)c * d;
        int arg = 0;
        for (int t = 1; t < d; t++)
            if (fabs(v[t]) > fabs(v[arg]))
                arg = t;
        double s = v[arg] < 0 ? -1.0 : 1.0;
        for (int t = 0; t < d; t++)
            out->components[(size_t)c * d + t] = (float)(s * v[t]);
    }
    for (int t = 0; t < d; t++)
        out->mean[t] = (float)mean[t];
    out->d = d;
    out->n_components = nc;
    out->n_samples = n;
    out->total_variance = total;

done:
    free(Xc);
    free(mean);
    free(var);
    free(V);
    free(M);
    free(Z);
    if (rc)
        pca_result_free(out);
    return rc;
}

void pca_transform(const struct pca_result *p, const float *X, int n, float *Y)
{
    assert(p && p->components && (X || n == 0) && (Y || n == 0));
    int d = p->d, nc = p->n_components;
    for (int i = 0; i < n; i++) {
        const float *x = X + (size_t)i * d;
        for (int c = 0; c < nc; c++) {
            const float *v = p->components + (size_t)c * d;
            /* Four accumulators: independent chains the compiler can
             * vectorise (one chain would be latency-bound). */
            double a[4] = {0, 0, 0, 0};
            int t = 0;
            for (; t + 4 <= d; t += 4)
                for (int u = 0; u < 4; u++)
                    a[u] += ((double)x[t + u] - p->mean[t + u]) * v[t + u];
            double s = (a[0] + a[2]) + (a[1] + a[3]);
            for (; t < d; t++)
                s += ((double)x[t] - p->mean[t]) * v[t];
            Y[(size_t)i * nc + c] = (float)s;
        }
    }
}
