/* test_ridge.c — weighted ridge against an independent closed form, the
 * weighted R² against its formula, and LIME's feature selection. */
#include "check.h"
#include "rng.h"
#include "ridge.h"

#include <string.h>

#define MAXD 16

/* Independent reference: the normal equations of the augmented design
 * [1 | X] with weights, the intercept column unpenalised:
 *   (Aᵀ W A + diag(0, α, …, α)) θ = Aᵀ W y,  θ = (intercept, β).
 * Solved by Gaussian elimination with partial pivoting. No centring — a
 * different route to the same minimiser. */
static void reference_ridge(const double *x, int n, int d, const double *y, const double *w,
                            double alpha, double *coef, double *intercept)
{
    int m = d + 1;
    double a[MAXD + 1][MAXD + 2];
    memset(a, 0, sizeof a);
    for (int i = 0; i < n; i++) {
        double row[MAXD + 1];
        row[0] = 1;
        for (int j = 0; j < d; j++)
            row[j + 1] = x[i * d + j];
        for (int r = 0; r < m; r++) {
            for (int c = 0; c < m; c++)
                a[r][c] += w[i] * row[r] * row[c];
            a[r][m] += w[i] * row[r] * y[i];
        }
    }
    for (int j = 1; j < m; j++)
        a[j][j] += alpha;
    for (int col = 0; col < m; col++) {
        int piv = col;
        for (int r = col + 1; r < m; r++)
            if (fabs(a[r][col]) > fabs(a[piv][col]))
                piv = r;
        for (int c = 0; c <= m; c++) {
            double t = a[col][c];
            a[col][c] = a[piv][c];
            a[piv][c] = t;
        }
        for (int r = col + 1; r < m; r++) {
            double f = a[r][col] / a[col][col];
            for (int c = col; c <= m; c++)
                a[r][c] -= f * a[col][c];
        }
    }
    double theta[MAXD + 1];
    for (int r = m - 1; r >= 0; r--) {
        double s = a[r][m];
        for (int c = r + 1; c < m; c++)
            s -= a[r][c] * theta[c];
        theta[r] = s / a[r][r];
    }
    *intercept = theta[0];
    for (int j = 0; j < d; j++)
        coef[j] = theta[j + 1];
}

static void random_problem(struct rng *r, double *x, int n, int d, double *y, double *w,
                           int binary)
{
    for (int i = 0; i < n; i++) {
        double t = 0.3;
        for (int j = 0; j < d; j++) {
            x[i * d + j] = binary ? (double)(rng_next(r) & 1) : rng_normal(r);
            t += (j % 3 - 1) * 0.5 * x[i * d + j];
        }
        y[i] = t + 0.2 * rng_normal(r);
        w[i] = 0.05 + rng_uniform(r);
    }
}

TEST(matches_closed_form)
{
    struct rng r;
    rng_seed(&r, 11);
    const int n = 200, d = 7;
    double x[200 * 7], y[200], w[200], coef[7], ref[7], icpt, ref_icpt;
    for (int trial = 0; trial < 3; trial++) {
        random_problem(&r, x, n, d, y, w, trial == 2);
        double alpha = trial == 0 ? 1.0 : trial == 1 ? 25.0 : 1.0;
        char err[STRATA_ERR_LEN];
        CHECK_EQ_INT(ridge_fit(x, n, d, NULL, d, y, w, alpha, coef, &icpt, err), STRATA_OK);
        reference_ridge(x, n, d, y, w, alpha, ref, &ref_icpt);
        double md = fabs(icpt - ref_icpt);
        for (int j = 0; j < d; j++)
            md = fmax(md, fabs(coef[j] - ref[j]));
        printf("# trial %d alpha %g: coef[0] %.6f (ref %.6f), intercept %.6f (ref %.6f), "
               "max diff %.2e\n",
               trial, alpha, coef[0], ref[0], icpt, ref_icpt, md);
        CHECK(md < 1e-9);
    }
}

TEST(column_subset_equals_copied_columns)
{
    struct rng r;
    rng_seed(&r, 12);
    const int n = 120, d = 9;
    double x[120 * 9], y[120], w[120], sub[120 * 3], c1[3], c2[3], i1, i2;
    random_problem(&r, x, n, d, y, w, 1);
    int cols[3] = {7, 2, 4};
    for (int i = 0; i < n; i++)
        for (int j = 0; j < 3; j++)
            sub[i * 3 + j] = x[i * d + cols[j]];
    CHECK_EQ_INT(ridge_fit(x, n, d, cols, 3, y, w, 1.0, c1, &i1, NULL), STRATA_OK);
    reference_ridge(sub, n, 3, y, w, 1.0, c2, &i2);
    for (int j = 0; j < 3; j++)
        CHECK_NEAR(c1[j], c2[j], 1e-10);
    CHECK_NEAR(i1, i2, 1e-10);
}

TEST(exact_linear_data_recovered)
{
    /* y = 2 − 1.5 x0 + 0.25 x1 + 3 x2 exactly; with a vanishing penalty the
     * fit is the generating model and R² is 1. */
    struct rng r;
    rng_seed(&r, 13);
    const int n = 50, d = 3;
    double x[150], y[50], w[50], coef[3], icpt;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < d; j++)
            x[i * d + j] = rng_normal(&r);
        y[i] = 2 - 1.5 * x[i * d] + 0.25 * x[i * d + 1] + 3 * x[i * d + 2];
        w[i] = rng_uniform(&r) + 0.1;
    }
    CHECK_EQ_INT(ridge_fit(x, n, d, NULL, d, y, w, 0.0, coef, &icpt, NULL), STRATA_OK);
    CHECK_NEAR(coef[0], -1.5, 1e-10);
    CHECK_NEAR(coef[1], 0.25, 1e-10);
    CHECK_NEAR(coef[2], 3.0, 1e-10);
    CHECK_NEAR(icpt, 2.0, 1e-10);
    CHECK_NEAR(ridge_score(x, n, d, NULL, d, y, w, coef, icpt), 1.0, 1e-12);
    /* A tiny penalty moves the answer only a little. */
    CHECK_EQ_INT(ridge_fit(x, n, d, NULL, d, y, w, 1e-8, coef, &icpt, NULL), STRATA_OK);
    CHECK_NEAR(coef[2], 3.0, 1e-6);
}

TEST(singular_design_falls_back_to_min_norm)
{
    /* Column 1 duplicates column 0 and column 2 is constant: without a
     * penalty the normal equations are singular. The minimum-norm solution
     * splits the coefficient of the duplicated column equally and gives the
     * constant column 0. y = 1 + 4 x0. */
    const int n = 8, d = 3;
    double x[24], y[8], w[8], coef[3], icpt;
    for (int i = 0; i < n; i++) {
        x[i * d] = x[i * d + 1] = (double)(i % 2 + i / 4);
        x[i * d + 2] = 1;
        y[i] = 1 + 4 * x[i * d];
        w[i] = 1 + i;
    }
    char err[STRATA_ERR_LEN];
    CHECK_EQ_INT(ridge_fit(x, n, d, NULL, d, y, w, 0.0, coef, &icpt, err), STRATA_OK);
    CHECK_NEAR(coef[0], 2.0, 1e-9);
    CHECK_NEAR(coef[1], 2.0, 1e-9);
    CHECK_NEAR(coef[2], 0.0, 1e-9);
    CHECK_NEAR(icpt, 1.0, 1e-9);
}

TEST(weighted_r2_by_hand)
{
    /* Four points, hand-worked: y = (1, 2, 4, 3), w = (1, 2, 1, 1/2), model
     * ŷ = 0.5 + 1·x with x = (0, 1, 2, 3) → ŷ = (0.5, 1.5, 2.5, 3.5).
     * Σw = 4.5, ȳ_w = (1 + 4 + 4 + 1.5)/4.5 = 10.5/4.5 = 7/3.
     * SSE = 0.25 + 2·0.25 + 2.25 + 0.5·0.25 = 3.125.
     * SST = (4/3)² + 2(1/3)² + (5/3)² + 0.5(2/3)² = (16 + 2 + 25 + 2)/9 = 5.
     * R² = 1 − 3.125/5 = 0.375. */
    double x[4] = {0, 1, 2, 3}, y[4] = {1, 2, 4, 3}, w[4] = {1, 2, 1, 0.5}, c = 1.0;
    CHECK_NEAR(ridge_score(x, 4, 1, NULL, 1, y, w, &c, 0.5), 0.375, 1e-12);
    /* Constant targets: a perfect fit scores 1, anything else 0. */
    double yc[4] = {2, 2, 2, 2}, zero = 0;
    CHECK_NEAR(ridge_score(x, 4, 1, NULL, 1, yc, w, &zero, 2.0), 1.0, 0);
    CHECK_NEAR(ridge_score(x, 4, 1, NULL, 1, yc, w, &c, 2.0), 0.0, 0);
}

/* Reference forward selection: at each step refit every candidate set from
 * scratch with the independent solver and score it directly. */
static void reference_forward(const double *x, int n, int d, const double *y, const double *w,
                              int k, int *out)
{
    int used[MAXD] = {0};
    static double sub[4000 * MAXD];
    for (int step = 0; step < k; step++) {
        int best = 0;
        double best_score = -1e8;
        for (int f = 0; f < d; f++) {
            if (used[f])
                continue;
            out[step] = f;
            for (int i = 0; i < n; i++)
                for (int j = 0; j <= step; j++)
                    sub[i * (step + 1) + j] = x[i * d + out[j]];
            double coef[MAXD], icpt;
            reference_ridge(sub, n, step + 1, y, w, 0.0, coef, &icpt);
            double s = ridge_score(sub, n, step + 1, NULL, step + 1, y, w, coef, icpt);
            if (s > best_score) {
                best_score = s;
                best = f;
            }
        }
        out[step] = best;
        used[best] = 1;
    }
}

TEST(forward_selection_finds_relevant_features)
{
    /* y depends on features 6 (strongly), 2 and 9 (less) of 12 binary
     * features, plus noise. */
    struct rng r;
    rng_seed(&r, 14);
    const int n = 400, d = 12;
    static double x[400 * 12], y[400], w[400];
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < d; j++)
            x[i * d + j] = (double)(rng_next(&r) & 1);
        y[i] = 0.1 + 0.8 * x[i * d + 6] - 0.4 * x[i * d + 2] + 0.2 * x[i * d + 9] +
               0.02 * rng_normal(&r);
        w[i] = 0.2 + rng_uniform(&r);
    }
    int sel[12], ns = 0;
    char err[STRATA_ERR_LEN];
    CHECK_EQ_INT(ridge_select_features(x, n, d, y, w, FEATURE_SELECTION_FORWARD, 3, sel, &ns, err),
                 STRATA_OK);
    CHECK_EQ_INT(ns, 3);
    CHECK_EQ_INT(sel[0], 6);
    CHECK_EQ_INT(sel[1], 2);
    CHECK_EQ_INT(sel[2], 9);
    /* auto with 3 features is forward selection. */
    int sel2[12], ns2 = 0;
    CHECK_EQ_INT(ridge_select_features(x, n, d, y, w, FEATURE_SELECTION_AUTO, 3, sel2, &ns2, err),
                 STRATA_OK);
    CHECK_EQ_INT(ns2, 3);
    CHECK(memcmp(sel, sel2, 3 * sizeof(int)) == 0);

    /* On pure noise, the greedy order must still agree with the brute-force
     * reference, step for step. */
    for (int i = 0; i < n; i++)
        y[i] = rng_normal(&r);
    CHECK_EQ_INT(ridge_select_features(x, n, d, y, w, FEATURE_SELECTION_FORWARD, 5, sel, &ns, err),
                 STRATA_OK);
    int ref5[5];
    reference_forward(x, n, d, y, w, 5, ref5);
    for (int j = 0; j < 5; j++)
        CHECK_EQ_INT(sel[j], ref5[j]);
}

TEST(highest_weights_and_none)
{
    struct rng r;
    rng_seed(&r, 15);
    const int n = 300, d = 10;
    static double x[300 * 10], y[300], w[300];
    random_problem(&r, x, n, d, y, w, 1);
    double coef[10], icpt;
    reference_ridge(x, n, d, y, w, 0.01, coef, &icpt);
    /* Expected order: by |coef| descending, by hand. */
    int order[10];
    for (int j = 0; j < d; j++)
        order[j] = j;
    for (int a = 0; a < d; a++)
        for (int b = a + 1; b < d; b++)
            if (fabs(coef[order[b]]) > fabs(coef[order[a]])) {
                int t = order[a];
                order[a] = order[b];
                order[b] = t;
            }
    int sel[10], ns = 0;
    CHECK_EQ_INT(ridge_select_features(x, n, d, y, w, FEATURE_SELECTION_HIGHEST, 4, sel, &ns, NULL),
                 STRATA_OK);
    CHECK_EQ_INT(ns, 4);
    for (int j = 0; j < 4; j++)
        CHECK_EQ_INT(sel[j], order[j]);
    /* auto with 7 features is highest weights. */
    CHECK_EQ_INT(ridge_select_features(x, n, d, y, w, FEATURE_SELECTION_AUTO, 7, sel, &ns, NULL),
                 STRATA_OK);
    CHECK_EQ_INT(ns, 7);
    for (int j = 0; j < 7; j++)
        CHECK_EQ_INT(sel[j], order[j]);
    /* More features than columns keeps all of them. */
    CHECK_EQ_INT(ridge_select_features(x, n, d, y, w, FEATURE_SELECTION_HIGHEST, 100000, sel, &ns,
                                       NULL),
                 STRATA_OK);
    CHECK_EQ_INT(ns, d);
    CHECK_EQ_INT(ridge_select_features(x, n, d, y, w, FEATURE_SELECTION_NONE, 2, sel, &ns, NULL),
                 STRATA_OK);
    CHECK_EQ_INT(ns, d);
    for (int j = 0; j < d; j++)
        CHECK_EQ_INT(sel[j], j);
}

TEST(bad_arguments)
{
    double x[4] = {0, 1, 0, 1}, y[4] = {1, 2, 1, 2}, w[4] = {1, 1, 1, 1}, c, i;
    char err[STRATA_ERR_LEN] = "";
    double wneg[4] = {1, -1, 1, 1}, wzero[4] = {0, 0, 0, 0};
    CHECK_EQ_INT(ridge_fit(x, 4, 1, NULL, 1, y, wneg, 1, &c, &i, err), STRATA_E_ARG);
    CHECK(strstr(err, "weight") != NULL);
    CHECK_EQ_INT(ridge_fit(x, 4, 1, NULL, 1, y, wzero, 1, &c, &i, err), STRATA_E_ARG);
    CHECK_EQ_INT(ridge_fit(x, 4, 1, NULL, 1, y, w, -1, &c, &i, err), STRATA_E_ARG);
    int sel[1], ns;
    CHECK_EQ_INT(ridge_select_features(x, 4, 1, y, w, FEATURE_SELECTION_AUTO, 0, sel, &ns, err),
                 STRATA_E_ARG);
    CHECK_EQ_INT(feature_selection_parse("forward_selection"), FEATURE_SELECTION_FORWARD);
    CHECK_EQ_INT(feature_selection_parse("none"), FEATURE_SELECTION_NONE);
    CHECK_EQ_INT(feature_selection_parse("lasso_path"), -1);
}

int main(void)
{
    RUN(matches_closed_form);
    RUN(column_subset_equals_copied_columns);
    RUN(exact_linear_data_recovered);
    RUN(singular_design_falls_back_to_min_norm);
    RUN(weighted_r2_by_hand);
    RUN(forward_selection_finds_relevant_features);
    RUN(highest_weights_and_none);
    RUN(bad_arguments);
    return check_done();
}
