/*
 * test_pca.c — PCA on hand-worked data (a noisy line, a known diagonal
 * covariance), against an independent Jacobi eigen-solver on random data,
 * the covariance and Gram paths against each other, the sign rule, and
 * degenerate inputs. Also the feature reduction that feeds PCA (reduce.h):
 * average pooling on hand-worked maps, random projection against a naive
 * product and the Johnson-Lindenstrauss norm property.
 */
#include "check.h"
#include "parallel.h"
#include "pca.h"
#include "reduce.h"
#include "rng.h"

#include <string.h>

TEST(noisy_line_by_hand)
{
    /* Points t*u1 + s*u2 + (5, -3) with u1 = (1,2)/sqrt5, u2 = (-2,1)/sqrt5,
     * t = (-3,-1,1,3), s = 0.1*(1,-1,-1,1): sum t = sum s = sum t*s = 0, so
     * u1 and u2 are exactly the principal axes, with variances
     * sum t^2/(n-1) = 20/3 and sum s^2/(n-1) = 0.04/3; the first ratio is
     * 20 / 20.04. Sign rule: u1's largest entry 2/sqrt5 is already positive;
     * u2's largest is -2/sqrt5, so the second component is (2,-1)/sqrt5 and
     * row i projects to (t_i, -s_i). */
    const double t[4] = {-3, -1, 1, 3}, s[4] = {0.1, -0.1, -0.1, 0.1};
    const double r5 = sqrt(5.0);
    float X[8];
    for (int i = 0; i < 4; i++) {
        X[2 * i] = (float)(5 + t[i] * 1 / r5 + s[i] * -2 / r5);
        X[2 * i + 1] = (float)(-3 + t[i] * 2 / r5 + s[i] * 1 / r5);
    }
    struct pca_result p;
    char err[STRATA_ERR_LEN];
    CHECK_EQ_INT(pca_fit(X, 4, 2, 2, &p, err), 0);
    CHECK_NEAR(p.components[0], 1 / r5, 1e-6);
    CHECK_NEAR(p.components[1], 2 / r5, 1e-6);
    CHECK_NEAR(p.components[2], 2 / r5, 1e-6);
    CHECK_NEAR(p.components[3], -1 / r5, 1e-6);
    CHECK_NEAR(p.explained_variance[0], 20.0 / 3, 1e-5);
    CHECK_NEAR(p.explained_variance[1], 0.04 / 3, 1e-6);
    CHECK_NEAR(p.explained_variance_ratio[0], 20 / 20.04, 1e-6);
    CHECK_NEAR(p.total_variance, 20.04 / 3, 1e-5);
    CHECK_NEAR(p.mean[0], 5, 1e-6);
    CHECK_NEAR(p.mean[1], -3, 1e-6);
    float Y[8];
    pca_transform(&p, X, 4, Y);
    for (int i = 0; i < 4; i++) {
        CHECK_NEAR(Y[2 * i], t[i], 1e-5);
        CHECK_NEAR(Y[2 * i + 1], -s[i], 1e-5);
    }
    pca_result_free(&p);
}

TEST(known_diagonal_covariance_3d)
{
    /* +-3 e1, +-2 e2, +-1 e3 around (1, 1, 1): mean (1,1,1), covariance
     * diag(18, 8, 2) / 5, so the components are e1, e2, e3 with variances
     * 3.6, 1.6, 0.4 and ratios 0.6, 0.2667, 0.0667. */
    const float X[18] = {4, 1, 1, -2, 1, 1, 1, 3, 1, 1, -1, 1, 1, 1, 2, 1, 1, 0};
    struct pca_result p;
    CHECK_EQ_INT(pca_fit(X, 6, 3, 3, &p, NULL), 0);
    const double var[3] = {3.6, 1.6, 0.4};
    for (int c = 0; c < 3; c++) {
        CHECK_NEAR(p.explained_variance[c], var[c], 1e-6);
        CHECK_NEAR(p.explained_variance_ratio[c], var[c] / 5.6, 1e-7);
        for (int t = 0; t < 3; t++)
            CHECK_NEAR(p.components[c * 3 + t], c == t ? 1.0 : 0.0, 1e-6);
    }
    pca_result_free(&p);
}

/* Cyclic Jacobi eigenvalue iteration on a symmetric m x m matrix A (destroyed):
 * eigenvalues into ev (unsorted). An independent reference for dsyevr. */
static void jacobi_eigenvalues(double *A, int m, double *ev)
{
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0;
        for (int p = 0; p < m; p++)
            for (int q = p + 1; q < m; q++)
                off += A[p * m + q] * A[p * m + q];
        if (off < 1e-26)
            break;
        for (int p = 0; p < m; p++)
            for (int q = p + 1; q < m; q++) {
                double apq = A[p * m + q];
                if (fabs(apq) < 1e-300)
                    continue;
                double theta = (A[q * m + q] - A[p * m + p]) / (2 * apq);
                double tt = (theta >= 0 ? 1 : -1) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(tt * tt + 1), s = tt * c;
                for (int k = 0; k < m; k++) { /* columns p, q */
                    double akp = A[k * m + p], akq = A[k * m + q];
                    A[k * m + p] = c * akp - s * akq;
                    A[k * m + q] = s * akp + c * akq;
                }
                for (int k = 0; k < m; k++) { /* rows p, q */
                    double apk = A[p * m + k], aqk = A[q * m + k];
                    A[p * m + k] = c * apk - s * aqk;
                    A[q * m + k] = s * apk + c * aqk;
                }
            }
    }
    for (int i = 0; i < m; i++)
        ev[i] = A[i * m + i];
}

static int cmp_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/* Random data with a decaying spectrum: feature t scaled by 1/(1+t/3). */
static void make_data(float *X, int n, int d, uint64_t seed)
{
    struct rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        double z = rng_normal(&r); /* a shared factor correlates features */
        for (int t = 0; t < d; t++)
            X[i * d + t] = (float)(2 + (rng_normal(&r) + 0.5 * z) / (1 + t / 3.0));
    }
}

TEST(random_data_properties_and_jacobi_reference)
{
    enum { N = 60, D = 20, NC = 5 };
    static float X[N * D];
    make_data(X, N, D, 4);
    struct pca_result p;
    CHECK_EQ_INT(pca_fit(X, N, D, NC, &p, NULL), 0);

    /* Covariance in double, by definition. */
    static double mean[D], S[D * D], ev[D];
    for (int t = 0; t < D; t++) {
        mean[t] = 0;
        for (int i = 0; i < N; i++)
            mean[t] += X[i * D + t];
        mean[t] /= N;
    }
    double total = 0;
    for (int a = 0; a < D; a++)
        for (int b = 0; b < D; b++) {
            double s = 0;
            for (int i = 0; i < N; i++)
                s += (X[i * D + a] - mean[a]) * (X[i * D + b] - mean[b]);
            S[a * D + b] = s / (N - 1);
        }
    for (int a = 0; a < D; a++)
        total += S[a * D + a];
    CHECK_NEAR(p.total_variance, total, 1e-9 * total);
    /* Each component v satisfies S v = lambda v. */
    for (int c = 0; c < NC; c++) {
        double res = 0;
        for (int a = 0; a < D; a++) {
            double sv = 0;
            for (int b = 0; b < D; b++)
                sv += S[a * D + b] * p.components[c * D + b];
            double e = sv - p.explained_variance[c] * p.components[c * D + a];
            res += e * e;
        }
        CHECK(sqrt(res) < 1e-5 * p.explained_variance[0]);
    }
    /* The eigenvalues are the top NC of an independent solver's. */
    jacobi_eigenvalues(S, D, ev);
    qsort(ev, D, sizeof(double), cmp_desc);
    for (int c = 0; c < NC; c++)
        CHECK_NEAR(p.explained_variance[c], ev[c], 1e-9 * ev[0]);

    /* Orthonormal rows, descending variance, ratios summing to <= 1. */
    double rsum = 0;
    for (int a = 0; a < NC; a++) {
        for (int b = 0; b < NC; b++) {
            double dot = 0;
            for (int t = 0; t < D; t++)
                dot += (double)p.components[a * D + t] * p.components[b * D + t];
            CHECK_NEAR(dot, a == b ? 1.0 : 0.0, 1e-6);
        }
        if (a > 0)
            CHECK(p.explained_variance[a] <= p.explained_variance[a - 1]);
        rsum += p.explained_variance_ratio[a];
    }
    CHECK(rsum <= 1 + 1e-12 && rsum > 0.5);

    /* The variance of the projected data is the explained variance, and
     * projections on different components are uncorrelated. */
    static float Y[N * NC];
    pca_transform(&p, X, N, Y);
    for (int a = 0; a < NC; a++)
        for (int b = 0; b <= a; b++) {
            double s = 0, ma = 0, mb = 0;
            for (int i = 0; i < N; i++) {
                ma += Y[i * NC + a];
                mb += Y[i * NC + b];
            }
            ma /= N;
            mb /= N;
            CHECK_NEAR(ma, 0, 1e-5);
            for (int i = 0; i < N; i++)
                s += (Y[i * NC + a] - ma) * (Y[i * NC + b] - mb);
            s /= N - 1;
            CHECK_NEAR(s, a == b ? p.explained_variance[a] : 0.0, 1e-5 * p.explained_variance[0]);
        }
    pca_result_free(&p);
}

/* Max |difference| between two fits' components and relative variance gap. */
static void compare_fits(const struct pca_result *a, const struct pca_result *b, double *dv,
                         double *dvar)
{
    *dv = 0;
    *dvar = 0;
    for (int i = 0; i < a->n_components * a->d; i++) {
        double e = fabs((double)a->components[i] - b->components[i]);
        *dv = e > *dv ? e : *dv;
    }
    for (int c = 0; c < a->n_components; c++) {
        double e = fabs(a->explained_variance[c] - b->explained_variance[c]) /
                   a->explained_variance[0];
        *dvar = e > *dvar ? e : *dvar;
    }
}

TEST(covariance_and_gram_paths_agree)
{
    /* n < d (the Gram path is the default) and d <= n (covariance). */
    const int shapes[2][2] = {{30, 50}, {80, 12}};
    for (int sh = 0; sh < 2; sh++) {
        int n = shapes[sh][0], d = shapes[sh][1];
        static float X[80 * 50];
        make_data(X, n, d, 10 + sh);
        struct pca_result a, b, c;
        struct pca_options cov = {PCA_MATRIX_COVARIANCE, PCA_SOLVER_EXACT};
        struct pca_options gram = {PCA_MATRIX_GRAM, PCA_SOLVER_EXACT};
        CHECK_EQ_INT(pca_fit_opts(X, n, d, 4, &cov, &a, NULL), 0);
        CHECK_EQ_INT(pca_fit_opts(X, n, d, 4, &gram, &b, NULL), 0);
        CHECK_EQ_INT(pca_fit(X, n, d, 4, &c, NULL), 0);
        double dv, dvar;
        compare_fits(&a, &b, &dv, &dvar);
        printf("# %dx%d: covariance vs Gram: max |component diff| %.2g, variance %.2g\n", n, d,
               dv, dvar);
        CHECK(dv < 1e-6);
        CHECK(dvar < 1e-10);
        CHECK_NEAR(a.total_variance, b.total_variance, 1e-12 * a.total_variance);
        compare_fits(&a, &c, &dv, &dvar);
        CHECK(dv < 1e-6);
        pca_result_free(&a);
        pca_result_free(&b);
        pca_result_free(&c);
    }
}

TEST(subspace_solver_agrees_with_exact)
{
    /* A decaying spectrum (converges in a few dozen steps) and isotropic
     * noise (eigenvalues packed together: slow, may end in the exact
     * fallback): either way the answer is the exact solver's. Both matrix
     * paths. */
    enum { N = 300, D = 160 };
    static float X[N * D];
    for (int kind = 0; kind < 2; kind++) {
        if (kind == 0) {
            make_data(X, N, D, 31);
        } else {
            struct rng r;
            rng_seed(&r, 32);
            for (int i = 0; i < N * D; i++)
                X[i] = (float)rng_normal(&r);
        }
        for (int mat = 1; mat <= 2; mat++) {
            struct pca_options ex = {(enum pca_matrix)mat, PCA_SOLVER_EXACT};
            struct pca_options it = {(enum pca_matrix)mat, PCA_SOLVER_SUBSPACE};
            struct pca_result a, b;
            CHECK_EQ_INT(pca_fit_opts(X, N, D, 2, &ex, &a, NULL), 0);
            CHECK_EQ_INT(pca_fit_opts(X, N, D, 2, &it, &b, NULL), 0);
            double dv, dvar;
            compare_fits(&a, &b, &dv, &dvar);
            printf("# %s, %s: exact vs subspace: max |component diff| %.2g, variance %.2g\n",
                   kind ? "noise" : "decaying", mat == 1 ? "covariance" : "Gram", dv, dvar);
            CHECK(dv < 1e-5);
            CHECK(dvar < 1e-9);
            pca_result_free(&a);
            pca_result_free(&b);
        }
    }
}

TEST(sign_rule_is_deterministic)
{
    enum { N = 40, D = 9 };
    static float X[N * D], P[N * D];
    make_data(X, N, D, 77);
    /* The same rows in reverse order: the eigen-solver sees a different
     * matrix (Gram) or sums in another order (covariance), the signs must
     * still come out the same. */
    for (int i = 0; i < N; i++)
        memcpy(P + i * D, X + (N - 1 - i) * D, sizeof(float) * D);
    struct pca_result a, b, c;
    CHECK_EQ_INT(pca_fit(X, N, D, 3, &a, NULL), 0);
    CHECK_EQ_INT(pca_fit(X, N, D, 3, &b, NULL), 0);
    struct pca_options gram = {PCA_MATRIX_GRAM, PCA_SOLVER_EXACT};
    CHECK_EQ_INT(pca_fit_opts(P, N, D, 3, &gram, &c, NULL), 0);
    CHECK(!memcmp(a.components, b.components, sizeof(float) * 3 * D));
    double dv, dvar;
    compare_fits(&a, &c, &dv, &dvar);
    CHECK(dv < 1e-6);
    for (int k = 0; k < 3; k++) {
        int arg = 0;
        for (int t = 1; t < D; t++)
            if (fabsf(a.components[k * D + t]) > fabsf(a.components[k * D + arg]))
                arg = t;
        CHECK(a.components[k * D + arg] > 0);
    }
    pca_result_free(&a);
    pca_result_free(&b);
    pca_result_free(&c);
}

TEST(degenerate_data_and_errors)
{
    /* All rows equal: no variance, components still orthonormal (e0, e1). */
    float X[5 * 3];
    for (int i = 0; i < 15; i++)
        X[i] = 2.5f;
    struct pca_result p;
    char err[STRATA_ERR_LEN];
    for (int m = 1; m <= 2; m++) {
        struct pca_options o = {(enum pca_matrix)m, PCA_SOLVER_AUTO};
        CHECK_EQ_INT(pca_fit_opts(X, 5, 3, 2, &o, &p, err), 0);
        CHECK_NEAR(p.explained_variance[0], 0, 0);
        CHECK_NEAR(p.explained_variance_ratio[1], 0, 0);
        double dot = 0, n0 = 0, n1 = 0;
        for (int t = 0; t < 3; t++) {
            dot += p.components[t] * p.components[3 + t];
            n0 += p.components[t] * p.components[t];
            n1 += p.components[3 + t] * p.components[3 + t];
        }
        CHECK_NEAR(dot, 0, 1e-6);
        CHECK_NEAR(n0, 1, 1e-6);
        CHECK_NEAR(n1, 1, 1e-6);
        pca_result_free(&p);
    }
    /* Rank one (points on a line through 4-D space), Gram path, 2 components:
     * the second is completed orthogonal to the first. */
    float L[3 * 4];
    for (int i = 0; i < 3; i++)
        for (int t = 0; t < 4; t++)
            L[i * 4 + t] = (float)((i - 1) * (t + 1));
    CHECK_EQ_INT(pca_fit(L, 3, 4, 2, &p, err), 0);
    double dot = 0;
    for (int t = 0; t < 4; t++)
        dot += p.components[t] * p.components[4 + t];
    CHECK_NEAR(dot, 0, 1e-6);
    CHECK_NEAR(p.explained_variance_ratio[0], 1, 1e-9);
    CHECK_NEAR(p.components[3], 4 / sqrt(30.0), 1e-6); /* (1,2,3,4)/sqrt(30) */
    pca_result_free(&p);

    CHECK_EQ_INT(pca_fit(X, 1, 3, 1, &p, err), STRATA_E_ARG);
    CHECK_EQ_INT(pca_fit(X, 5, 3, 4, &p, err), STRATA_E_ARG);
    CHECK(strstr(err, "1..3") != NULL);
    X[7] = INFINITY;
    CHECK_EQ_INT(pca_fit(X, 5, 3, 2, &p, err), STRATA_E_ARG);
    CHECK(p.components == NULL);
}

TEST(avgpool_by_hand)
{
    /* One 4x4 map, 2 channels: channel 0 = 10y + x, channel 1 = 100 + 10y + x.
     * 2x2 grid: quadrant means are 5.5, 7.5, 25.5, 27.5 (+100 for channel 1);
     * e.g. top-left = mean(0, 1, 10, 11) = 5.5. Layout [gy][gx][c]. */
    float act[4 * 4 * 2], out[8];
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++) {
            act[(y * 4 + x) * 2] = (float)(10 * y + x);
            act[(y * 4 + x) * 2 + 1] = (float)(100 + 10 * y + x);
        }
    CHECK_EQ_INT(reduce_avgpool_dim(4, 4, 2, 2), 8);
    reduce_avgpool(act, 1, 4, 4, 2, 2, out);
    const float want[8] = {5.5f, 105.5f, 7.5f, 107.5f, 25.5f, 125.5f, 27.5f, 127.5f};
    for (int i = 0; i < 8; i++)
        CHECK_NEAR(out[i], want[i], 1e-5);
    /* Grid 1 = global average: mean of 0..33 pattern = 16.5 (+100). */
    reduce_avgpool(act, 1, 4, 4, 2, 1, out);
    CHECK_NEAR(out[0], 16.5, 1e-5);
    CHECK_NEAR(out[1], 116.5, 1e-5);

    /* 5x3 map, value 3y + x, grid 2: rows [0,3) and [2,5), columns [0,2) and
     * [1,3) (bins overlap when g does not divide the size). Top-left holds
     * 0,1,3,4,6,7 -> 3.5; top-right 1,2,4,5,7,8 -> 4.5; bottom-left
     * 6,7,9,10,12,13 -> 9.5; bottom-right 7,8,10,11,13,14 -> 10.5. */
    float m[15], o4[4];
    for (int i = 0; i < 15; i++)
        m[i] = (float)i;
    reduce_avgpool(m, 1, 5, 3, 1, 2, o4);
    CHECK_NEAR(o4[0], 3.5, 1e-6);
    CHECK_NEAR(o4[1], 4.5, 1e-6);
    CHECK_NEAR(o4[2], 9.5, 1e-6);
    CHECK_NEAR(o4[3], 10.5, 1e-6);

    /* The grid is clamped to the map: a 1x1xc dense output passes through,
     * and a 2x2 map with grid 4 is copied (each bin one pixel). Two samples
     * check the batch stride. Channels past one chunk (300) are covered. */
    enum { C = 300 };
    static float dense[2 * C], dout[2 * C];
    for (int i = 0; i < 2 * C; i++)
        dense[i] = (float)(i * 0.25 - 7);
    CHECK_EQ_INT(reduce_avgpool_dim(1, 1, C, 2), C);
    reduce_avgpool(dense, 2, 1, 1, C, 2, dout);
    CHECK(!memcmp(dense, dout, sizeof dense));
    int gh, gw;
    reduce_avgpool_grid(2, 2, 4, &gh, &gw);
    CHECK(gh == 2 && gw == 2);
    float small[2 * 2 * 3], sout[12];
    for (int i = 0; i < 12; i++)
        small[i] = (float)i;
    reduce_avgpool(small, 1, 2, 2, 3, 4, sout);
    CHECK(!memcmp(small, sout, sizeof small));
}

TEST(random_projection)
{
    enum { N = 64, DI = 40, DO = 256 };
    static float in[N * DI], R[DI * DO], R2[DI * DO], out[N * DO], out2[N * DO];
    struct rng r;
    rng_seed(&r, 6);
    for (int i = 0; i < N * DI; i++)
        in[i] = (float)rng_normal(&r);
    reduce_projection_matrix(DI, DO, 42, R);
    reduce_projection_matrix(DI, DO, 42, R2);
    CHECK(!memcmp(R, R2, sizeof R)); /* same seed, same matrix */
    reduce_project(in, N, DI, R, DO, out);
    /* Against the naive product. */
    double worst = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < DO; j++) {
            double s = 0;
            for (int t = 0; t < DI; t++)
                s += (double)in[i * DI + t] * R[t * DO + j];
            double e = fabs(s - out[i * DO + j]);
            worst = e > worst ? e : worst;
        }
    CHECK(worst < 1e-4);
    /* Johnson-Lindenstrauss: E ||x R||^2 = ||x||^2; each ratio has sd about
     * sqrt(2/DO) = 0.09, so the mean of 64 ratios is within 0.05 of 1. */
    double ratio = 0;
    for (int i = 0; i < N; i++) {
        double a = 0, b = 0;
        for (int t = 0; t < DI; t++)
            a += (double)in[i * DI + t] * in[i * DI + t];
        for (int j = 0; j < DO; j++)
            b += (double)out[i * DO + j] * out[i * DO + j];
        ratio += b / a;
    }
    CHECK_NEAR(ratio / N, 1.0, 0.05);
    CHECK_EQ_INT(reduce_random_projection(in, N, DI, DO, 42, out2, NULL), 0);
    CHECK(!memcmp(out, out2, sizeof out));
    CHECK_EQ_INT(reduce_random_projection(in, N, DI, 0, 42, out2, NULL), STRATA_E_ARG);
}

/* From NCHW activations (the graph's layout) the same features, bit for
 * bit, as from the NHWC copy: odd sizes, a grid that does not divide them,
 * several samples, channels that fill blocks of 16 and some that do not;
 * small enough to stay on one thread, and large enough to be shared among
 * threads, and cut and run in reverse order too; with AVX-512 and with the
 * plain loop. */
static void avgpool_nchw_case(int n, int h, int w, int c)
{
    float *nhwc = malloc((size_t)n * h * w * c * sizeof(float));
    float *nchw = malloc((size_t)n * h * w * c * sizeof(float));
    struct rng r;
    rng_seed(&r, 5);
    for (int s = 0; s < n; s++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int ch = 0; ch < c; ch++) {
                    float v = (float)rng_normal(&r) * 3.0f;
                    nhwc[(((size_t)s * h + y) * w + x) * c + ch] = v;
                    nchw[(((size_t)s * c + ch) * h + y) * w + x] = v;
                }
    for (int grid = 1; grid <= 3; grid++) {
        int d = reduce_avgpool_dim(h, w, c, grid);
        float *a = malloc((size_t)n * d * sizeof(float)), *b = malloc((size_t)n * d * sizeof(float));
        reduce_avgpool(nhwc, n, h, w, c, grid, a);
        for (int mode = 0; mode < 4; mode++) {
            parallel_set_check(mode & 1 ? PARALLEL_CHECK_REVERSE : PARALLEL_CHECK_OFF);
            reduce_set_vector(!(mode & 2));
            memset(b, 0xff, (size_t)n * d * sizeof(float));
            reduce_avgpool_nchw(nchw, n, h, w, c, grid, b);
            CHECK_MSG(memcmp(a, b, (size_t)n * d * sizeof(float)) == 0,
                      "%d x %dx%dx%d, grid %d%s%s", n, h, w, c, grid,
                      mode & 1 ? ", reversed" : "", mode & 2 ? ", plain loop" : "");
        }
        parallel_set_check(PARALLEL_CHECK_OFF);
        reduce_set_vector(1);
        free(a);
        free(b);
    }
    free(nhwc);
    free(nchw);
}

TEST(avgpool_nchw_equals_nhwc)
{
    avgpool_nchw_case(3, 7, 5, 9);
    avgpool_nchw_case(40, 33, 31, 21);
    avgpool_nchw_case(5, 9, 33, 32);
}

int main(void)
{
    RUN(noisy_line_by_hand);
    RUN(known_diagonal_covariance_3d);
    RUN(random_data_properties_and_jacobi_reference);
    RUN(covariance_and_gram_paths_agree);
    RUN(subspace_solver_agrees_with_exact);
    RUN(sign_rule_is_deterministic);
    RUN(degenerate_data_and_errors);
    RUN(avgpool_by_hand);
    RUN(avgpool_nchw_equals_nhwc);
    RUN(random_projection);
    return check_done();
}
