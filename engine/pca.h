/*
 * pca.h — principal component analysis of feature rows, for the 2-D maps of
 * a layer's activations.
 *
 * Exact, in double: X (n x d) is centred, then the top eigenpairs of either
 *   - the d x d covariance S = Xc' Xc / (n - 1), when d <= n, or
 *   - the n x n Gram matrix G = Xc Xc', when n < d; G's eigenvector u with
 *     eigenvalue l gives the component v = Xc' u / sqrt(l) and the variance
 *     l / (n - 1) (the same pairs, as Xc' Xc v = l v),
 * formed with one dsyrk. Its top eigenpairs come from one of two solvers:
 *   - exact: LAPACKE_dsyevr for only the wanted pairs (range 'I'), whose
 *     tridiagonal reduction costs O(m^3), m = min(n, d);
 *   - subspace iteration with Rayleigh-Ritz on a block of n_components + 10
 *     vectors (O(m^2) per step), stopped when every wanted pair's residual
 *     ||M v - l v|| is <= 1e-10 of the top eigenvalue; if it has not
 *     converged after 150 steps (a flat spectrum), the exact solver runs.
 * By default the exact solver serves m <= 1024 and the iterative one larger
 * matrices. Measured on 2 shared cores: 2400 x 512 in ~30 ms; 2400 x 2048 in
 * ~0.5 s exact, ~0.2 s iterative (of which ~0.13 s is forming the matrix).
 * Double precision costs 2x over float in the product but keeps small
 * eigenvalue gaps resolved and the paths in agreement to ~1e-12.
 *
 * Sign rule: eigenvectors have no sign; each component is flipped so that its
 * entry of largest magnitude is positive (the first such entry on ties), so a
 * given X always gives the same picture. scikit-learn 1.2 flips on the scores
 * (svd_flip on U) instead, so a component may come out negated relative to
 * scikit-learn's; the variances and the subspace are the same.
 *
 * When a component is not determined by the data (n_components exceeds the
 * rank, e.g. all rows equal), its variance is 0 and it is completed to an
 * orthonormal set from the unit vectors, so components are always orthonormal.
 */
#ifndef STRATA_PCA_H
#define STRATA_PCA_H

#include "status.h"

#define PCA_MAX_COMPONENTS 64

/* Which matrix to decompose (the result is the same up to rounding). */
enum pca_matrix {
    PCA_MATRIX_AUTO = 0,       /* covariance when d <= n, Gram otherwise */
    PCA_MATRIX_COVARIANCE = 1, /* the d x d covariance */
    PCA_MATRIX_GRAM = 2,       /* the n x n Gram matrix */
};

/* Which eigen-solver to use (the result is the same up to ~1e-9). */
enum pca_solver {
    PCA_SOLVER_AUTO = 0,     /* exact up to 1024 x 1024, subspace iteration above */
    PCA_SOLVER_EXACT = 1,    /* dsyevr */
    PCA_SOLVER_SUBSPACE = 2, /* subspace iteration, exact fallback */
};

struct pca_options {
    enum pca_matrix matrix;
    enum pca_solver solver;
};

struct pca_result {
    int d, n_components, n_samples;
    float *mean;                      /* [d], owned */
    float *components;                /* [n_components*d], orthonormal rows, owned */
    double *explained_variance;       /* [n_components], descending, unbiased (n - 1), owned */
    double *explained_variance_ratio; /* [n_components], share of total_variance, owned */
    double total_variance;            /* sum of the per-feature variances (n - 1) */
};

/* Fits the top n_components principal axes of the n rows of X (n x d,
 * row-major). On success fills *out (free with pca_result_free) and returns
 * 0. Fails, with *out empty, with STRATA_E_ARG when n < 2, d < 1,
 * n_components is not in 1..min(n, d, PCA_MAX_COMPONENTS), or X holds a NaN
 * or infinity; STRATA_E_NOMEM; or STRATA_E_UNSUPPORTED if LAPACK reports a
 * failure to converge (with its code in err). */
int pca_fit(const float *X, int n, int d, int n_components, struct pca_result *out, char *err);

/* Same with the matrix and the solver chosen explicitly (tests compare
 * them; pca_fit uses {PCA_MATRIX_AUTO, PCA_SOLVER_AUTO}). */
int pca_fit_opts(const float *X, int n, int d, int n_components, const struct pca_options *opt,
                 struct pca_result *out, char *err);

/* Projects n rows of X (n x d, the d of the fit) onto the components:
 * Y[i*n_components + c] = (x_i - mean) . component_c, accumulated in double.
 * Allocates nothing; can't fail. */
void pca_transform(const struct pca_result *p, const float *X, int n, float *Y);

/* Frees what pca_fit put in *p and empties it. NULL-safe. */
void pca_result_free(struct pca_result *p);

#endif
