/*
 * ridge.h — weighted ridge regression with an intercept, and the feature
 * selection LIME runs before it.
 *
 * The fit is scikit-learn's Ridge(alpha, fit_intercept=True) with
 * sample_weight: X and y are centred with their weighted means x̄_w, ȳ_w, the
 * centred problem (XcᵀWXc + αI)β = XcᵀWyc is solved in double by Cholesky
 * (LAPACK dposv), and the intercept is ȳ_w − x̄_wᵀβ, so the intercept is not
 * penalised. When α = 0 and XcᵀWXc is singular (a constant column, collinear
 * columns) the Cholesky fails and the minimum-norm least-squares solution is
 * used instead, as scikit-learn falls back to its SVD solver.
 *
 * Feature selection follows lime_base.LimeBase.feature_selection:
 *   FEATURE_SELECTION_NONE     all features;
 *   FEATURE_SELECTION_HIGHEST  fit Ridge(alpha=0.01) on all features and keep
 *                              the num_features largest |coef| (LIME weighs
 *                              coef by the first data row, all ones for images);
 *   FEATURE_SELECTION_FORWARD  greedy: start empty, repeatedly add the feature
 *                              whose Ridge(alpha=0) fit on the chosen set plus
 *                              it has the highest weighted R²;
 *   FEATURE_SELECTION_AUTO     FORWARD when num_features <= 6, else HIGHEST.
 *
 * Matrices are row-major doubles: x[i*d + j] is sample i, feature j. Nothing
 * here keeps state between calls.
 */
#ifndef STRATA_RIDGE_H
#define STRATA_RIDGE_H

#include "status.h"

enum feature_selection {
    FEATURE_SELECTION_AUTO,
    FEATURE_SELECTION_FORWARD,
    FEATURE_SELECTION_HIGHEST,
    FEATURE_SELECTION_NONE,
};

/* Fits weighted ridge on the k columns cols[0..k-1] of the n×d matrix x (cols
 * NULL means all d columns in order, and then k must equal d), targets y[n],
 * weights w[n] (>= 0, not all zero), penalty alpha >= 0. Writes coef[k] (in
 * the order of cols) and *intercept. Allocates its own scratch and frees it.
 * Fails with STRATA_E_ARG on negative or all-zero weights or a negative alpha,
 * STRATA_E_NOMEM when scratch cannot be allocated. */
int ridge_fit(const double *x, int n, int d, const int *cols, int k, const double *y,
              const double *w, double alpha, double *coef, double *intercept, char *err);

/* scikit-learn's weighted R² of a fitted model on the same column subset:
 * 1 − Σw(y−ŷ)² / Σw(y−ȳ_w)², where ŷ = intercept + Σ coef[j]·x[i, cols[j]].
 * When Σw(y−ȳ_w)² is 0 it returns 1 for a perfect fit and 0 otherwise, as
 * scikit-learn does. Can't fail. */
double ridge_score(const double *x, int n, int d, const int *cols, int k, const double *y,
                   const double *w, const double *coef, double intercept);

/* Chooses features as LIME does (see the file header). Writes the chosen
 * column indices into selected (room for d ints) in selection order and their
 * count into *n_selected (min(num_features, d), or d for NONE). Fails with
 * STRATA_E_ARG on num_features < 1 or bad weights, STRATA_E_NOMEM. */
int ridge_select_features(const double *x, int n, int d, const double *y, const double *w,
                          enum feature_selection method, int num_features, int *selected,
                          int *n_selected, char *err);

/* "auto", "forward_selection", "highest_weights", "none" → the enum; returns
 * -1 for an unknown name. Can't fail otherwise. */
int feature_selection_parse(const char *name);

#endif
