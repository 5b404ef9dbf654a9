/*
 * test_kmeans.c — k-means against known optima (exhaustive search, squares),
 * exact recovery of separated blobs, determinism, edge cases, the elbow and
 * Kneedle, and nearest-centre queries against brute force.
 */
#include "check.h"
#include "kmeans.h"
#include "rng.h"

#include <string.h>

/* n rows in d dims: C blobs with centres 10 * N(0,1) per feature and noise
 * sd `noise`; truth[i] = blob of row i (blob sizes as equal as possible). */
static void make_blobs(float *X, int *truth, int n, int d, int C, double noise, uint64_t seed)
{
    struct rng r;
    rng_seed(&r, seed);
    float centers[16 * 64];
    for (int c = 0; c < C; c++)
        for (int t = 0; t < d; t++)
            centers[c * d + t] = (float)(10.0 * rng_normal(&r));
    for (int i = 0; i < n; i++) {
        truth[i] = i % C;
        for (int t = 0; t < d; t++)
            X[(size_t)i * d + t] = (float)(centers[truth[i] * d + t] + noise * rng_normal(&r));
    }
}

/* True when labels equal truth up to a relabelling (a bijection of k ids). */
static int same_partition(const int *labels, const int *truth, int n, int k)
{
    int map[64], back[64];
    for (int j = 0; j < k; j++)
        map[j] = back[j] = -1;
    for (int i = 0; i < n; i++) {
        int a = labels[i], b = truth[i];
        if (map[a] == -1 && back[b] == -1) {
            map[a] = b;
            back[b] = a;
        }
        if (map[a] != b || back[b] != a)
            return 0;
    }
    return 1;
}

/* Sum of squared distances of rows to the means of their groups, in double. */
static double partition_cost(const float *X, int n, int d, const int *g, int k)
{
    double mean[64 * 8] = {0};
    int cnt[64] = {0};
    for (int i = 0; i < n; i++) {
        cnt[g[i]]++;
        for (int t = 0; t < d; t++)
            mean[g[i] * d + t] += X[i * d + t];
    }
    double s = 0;
    for (int i = 0; i < n; i++)
        for (int t = 0; t < d; t++) {
            double v = X[i * d + t] - mean[g[i] * d + t] / cnt[g[i]];
            s += v * v;
        }
    return s;
}

TEST(separated_blobs_recovered_exactly)
{
    enum { N = 300, D = 16, C = 5 };
    static float X[N * D];
    int truth[N];
    make_blobs(X, truth, N, D, C, 0.5, 11);
    struct kmeans_params p = kmeans_params_default(C);
    struct kmeans_result r;
    char err[STRATA_ERR_LEN];
    CHECK_EQ_INT(kmeans_fit(X, N, D, &p, &r, err), 0);
    CHECK(same_partition(r.labels, truth, N, C));
    /* The inertia is the cost of the true partition, computed independently. */
    double want = partition_cost(X, N, D, truth, C);
    CHECK_NEAR(r.inertia, want, 1e-6 * want);
    int total = 0;
    for (int j = 0; j < C; j++)
        total += r.sizes[j];
    CHECK_EQ_INT(total, N);
    CHECK(r.n_iter >= 1 && r.n_iter <= p.max_iter);
    /* The centres are the blob means. */
    for (int j = 0; j < C; j++) {
        double m0 = 0;
        int c = 0;
        for (int i = 0; i < N; i++)
            if (r.labels[i] == j) {
                m0 += X[i * D];
                c++;
            }
        CHECK_NEAR(r.centers[j * D], m0 / c, 1e-4);
    }
    kmeans_result_free(&r);
}

/* 1-D data: every assignment of n points to k groups is tried, so the optimum
 * is known for sure (not assuming contiguity). */
static double exhaustive_optimum(const float *x, int n, int k)
{
    int g[16];
    long total = 1;
    for (int i = 0; i < n; i++)
        total *= k;
    double best = INFINITY;
    for (long code = 0; code < total; code++) {
        long c = code;
        for (int i = 0; i < n; i++) {
            g[i] = (int)(c % k);
            c /= k;
        }
        double s[8] = {0}, s2[8] = {0};
        int cnt[8] = {0};
        for (int i = 0; i < n; i++) {
            s[g[i]] += x[i];
            s2[g[i]] += (double)x[i] * x[i];
            cnt[g[i]]++;
        }
        double cost = 0;
        int empty = 0;
        for (int j = 0; j < k; j++) {
            if (!cnt[j])
                empty = 1;
            else
                cost += s2[j] - s[j] * s[j] / cnt[j];
        }
        if (!empty && cost < best)
            best = cost;
    }
    return best;
}

TEST(one_dimensional_optimum_by_exhaustive_search)
{
    struct rng r;
    rng_seed(&r, 5);
    for (int trial = 0; trial < 4; trial++) {
        float x[10];
        for (int i = 0; i < 10; i++)
            x[i] = (float)(rng_normal(&r) * (1 + (i % 3)));
        for (int k = 2; k <= 3; k++) {
            double opt = exhaustive_optimum(x, 10, k);
            struct kmeans_params p = kmeans_params_default(k);
            p.seed = (uint64_t)trial;
            struct kmeans_result res;
            CHECK_EQ_INT(kmeans_fit(x, 10, 1, &p, &res, NULL), 0);
            CHECK_NEAR(res.inertia, opt, 1e-5 * (1 + opt));
            kmeans_result_free(&res);
        }
    }
}

/* Four squares of side s far apart, a point at each corner: with k = 4 the
 * optimum puts each square in a cluster, centre at its middle, and every
 * corner at distance s/sqrt(2): inertia 16 * s^2 / 2 = 8 s^2. */
static void make_squares(float *X, double s)
{
    const double origin[4][2] = {{0, 0}, {100, 0}, {0, 100}, {100, 100}};
    const double corner[4][2] = {{0, 0}, {1, 0}, {0, 1}, {1, 1}};
    for (int q = 0; q < 4; q++)
        for (int c = 0; c < 4; c++) {
            X[(q * 4 + c) * 2] = (float)(origin[q][0] + s * corner[c][0]);
            X[(q * 4 + c) * 2 + 1] = (float)(origin[q][1] + s * corner[c][1]);
        }
}

TEST(squares_reach_the_optimum_from_any_seed)
{
    float X[32];
    make_squares(X, 2.0);
    for (uint64_t seed = 0; seed < 8; seed++) {
        struct kmeans_params p = kmeans_params_default(4);
        p.seed = seed;
        p.n_init = 1 + (int)(seed % 3); /* even a single restart finds it */
        struct kmeans_result r;
        CHECK_EQ_INT(kmeans_fit(X, 16, 2, &p, &r, NULL), 0);
        CHECK_NEAR(r.inertia, 8 * 2.0 * 2.0, 1e-9);
        for (int j = 0; j < 4; j++)
            CHECK_EQ_INT(r.sizes[j], 4);
        kmeans_result_free(&r);
    }
}

TEST(same_seed_same_result_any_thread_count)
{
    enum { N = 400, D = 24 };
    static float X[N * D];
    int truth[N];
    /* Overlapping blobs, so restarts end in different local optima. */
    make_blobs(X, truth, N, D, 6, 12.0, 3);
    struct kmeans_params p = kmeans_params_default(5);
    p.seed = 99;
    struct kmeans_result a, b, c;
    p.n_threads = 1;
    CHECK_EQ_INT(kmeans_fit(X, N, D, &p, &a, NULL), 0);
    p.n_threads = 2;
    CHECK_EQ_INT(kmeans_fit(X, N, D, &p, &b, NULL), 0);
    p.n_threads = 3;
    CHECK_EQ_INT(kmeans_fit(X, N, D, &p, &c, NULL), 0);
    CHECK(a.inertia == b.inertia && b.inertia == c.inertia);
    CHECK(a.best_init == b.best_init && b.best_init == c.best_init);
    CHECK(!memcmp(a.labels, b.labels, sizeof(int) * N));
    CHECK(!memcmp(a.labels, c.labels, sizeof(int) * N));
    CHECK(!memcmp(a.centers, c.centers, sizeof(float) * 5 * D));
    /* Labels are the nearest final centres (the final relabel). */
    int mism = 0;
    for (int i = 0; i < N; i++)
        mism += kmeans_predict(a.centers, 5, D, X + i * D, NULL) != a.labels[i];
    CHECK_EQ_INT(mism, 0);
    /* The kept restart is the best of n_init: one restart alone, from each
     * seed the pool would use, is never better. */
    struct kmeans_params one = p;
    one.n_init = 1;
    struct kmeans_result s;
    CHECK_EQ_INT(kmeans_fit(X, N, D, &one, &s, NULL), 0);
    CHECK(s.inertia >= a.inertia);
    kmeans_result_free(&s);
    kmeans_result_free(&a);
    kmeans_result_free(&b);
    kmeans_result_free(&c);
}

TEST(bad_arguments_fail_with_a_message)
{
    float X[6] = {0, 1, 2, 3, 4, 5};
    struct kmeans_params p = kmeans_params_default(4);
    struct kmeans_result r;
    char err[STRATA_ERR_LEN] = "";
    CHECK_EQ_INT(kmeans_fit(X, 3, 2, &p, &r, err), STRATA_E_ARG); /* n = 3 < k = 4 */
    CHECK(strstr(err, "3 rows") != NULL);
    CHECK(r.centers == NULL && r.labels == NULL);
    p.k = 0;
    CHECK_EQ_INT(kmeans_fit(X, 3, 2, &p, &r, err), STRATA_E_ARG);
    p.k = 2;
    p.n_init = 0;
    CHECK_EQ_INT(kmeans_fit(X, 3, 2, &p, &r, err), STRATA_E_ARG);
    p.n_init = 1;
    X[3] = NAN;
    CHECK_EQ_INT(kmeans_fit(X, 3, 2, &p, &r, err), STRATA_E_ARG);
    CHECK(strstr(err, "row 1, column 1") != NULL);
    double inertia[5];
    X[3] = 3;
    CHECK_EQ_INT(kmeans_elbow(X, 3, 2, 5, &p, inertia, NULL, err), STRATA_E_ARG);
}

/* Number of non-empty clusters. */
static int used_clusters(const struct kmeans_result *r)
{
    int u = 0;
    for (int j = 0; j < r->k; j++)
        u += r->sizes[j] > 0;
    return u;
}

TEST(duplicate_points)
{
    /* All rows equal: inertia 0; one cluster holds every row, the others are
     * empty with the same centre. */
    float X[10 * 3];
    for (int i = 0; i < 30; i++)
        X[i] = 1.5f;
    struct kmeans_params p = kmeans_params_default(3);
    struct kmeans_result r;
    CHECK_EQ_INT(kmeans_fit(X, 10, 3, &p, &r, NULL), 0);
    CHECK_NEAR(r.inertia, 0, 1e-12);
    CHECK_EQ_INT(used_clusters(&r), 1);
    for (int j = 0; j < 9; j++)
        CHECK_NEAR(r.centers[j], 1.5, 1e-6);
    kmeans_result_free(&r);

    /* Three distinct rows, each five times: k = 3 separates them exactly. */
    float Y[15 * 2];
    int truth[15];
    const float pts[3][2] = {{0, 0}, {5, 1}, {-2, 7}};
    for (int i = 0; i < 15; i++) {
        truth[i] = i % 3;
        Y[i * 2] = pts[i % 3][0];
        Y[i * 2 + 1] = pts[i % 3][1];
    }
    CHECK_EQ_INT(kmeans_fit(Y, 15, 2, &p, &r, NULL), 0);
    CHECK_NEAR(r.inertia, 0, 1e-12);
    CHECK(same_partition(r.labels, truth, 15, 3));
    kmeans_result_free(&r);

    /* Fewer distinct rows (3) than clusters (4): inertia 0, three clusters
     * used, every row counted once. */
    p.k = 4;
    CHECK_EQ_INT(kmeans_fit(Y, 10, 2, &p, &r, NULL), 0);
    CHECK_NEAR(r.inertia, 0, 1e-12);
    CHECK_EQ_INT(used_clusters(&r), 3);
    int total = 0;
    for (int j = 0; j < 4; j++)
        total += r.sizes[j];
    CHECK_EQ_INT(total, 10);
    kmeans_result_free(&r);
}

TEST(elbow_on_four_blobs_chooses_four)
{
    enum { N = 400, D = 8 };
    static float X[N * D];
    int truth[N];
    make_blobs(X, truth, N, D, 4, 1.0, 21);
    struct kmeans_params p = kmeans_params_default(0);
    double inertia[10];
    struct kmeans_result res[10];
    char err[STRATA_ERR_LEN];
    CHECK_EQ_INT(kmeans_elbow(X, N, D, 10, &p, inertia, res, err), 0);
    CHECK_EQ_INT(elbow_choose_k(inertia, 10), 4);
    CHECK(same_partition(res[3].labels, truth, N, 4));
    /* k = 1 is the total sum of squares around the mean. */
    int zero[N] = {0};
    CHECK_NEAR(inertia[0], partition_cost(X, N, D, zero, 1), 1e-7 * inertia[0]);
    for (int k = 1; k <= 10; k++) {
        CHECK_EQ_INT(res[k - 1].k, k);
        /* More clusters never cost more here (each k is near its optimum). */
        if (k > 1)
            CHECK(inertia[k - 1] <= inertia[k - 2] * (1 + 1e-9));
        /* Each entry of the sweep is exactly kmeans_fit for that k. */
        struct kmeans_params q = p;
        q.k = k;
        struct kmeans_result one;
        CHECK_EQ_INT(kmeans_fit(X, N, D, &q, &one, NULL), 0);
        CHECK(one.inertia == inertia[k - 1]);
        CHECK(!memcmp(one.labels, res[k - 1].labels, sizeof(int) * N));
        kmeans_result_free(&one);
        kmeans_result_free(&res[k - 1]);
    }
}

TEST(kneedle_hand_curves)
{
    /* One value: 1. Flat curve: 1. */
    double one[1] = {5};
    CHECK_EQ_INT(elbow_choose_k(one, 1), 1);
    double flat[6] = {3, 3, 3, 3, 3, 3};
    CHECK_EQ_INT(elbow_choose_k(flat, 6), 1);
    double zeros[4] = {0, 0, 0, 0};
    CHECK_EQ_INT(elbow_choose_k(zeros, 4), 1);
    /* Two points: 2 only if the inertia more than halves. */
    double two_a[2] = {10, 4}, two_b[2] = {10, 6};
    CHECK_EQ_INT(elbow_choose_k(two_a, 2), 2);
    CHECK_EQ_INT(elbow_choose_k(two_b, 2), 1);
    /* A geometric curve 2^-(k-1) is a straight line in log scale: D = 0
     * everywhere, no knee. */
    double geo[5] = {16, 8, 4, 2, 1};
    CHECK_EQ_INT(elbow_choose_k(geo, 5), 1);
    /* Sharp knee at k = 3 on 6 points: ln values 6.908, 5.298, 2.303, 2.197,
     * 2.079, 1.946 for 1000, 200, 10, 9, 8, 7; normalised y(3) =
     * (2.303 - 1.946) / (6.908 - 1.946) = 0.072, x(3) = 0.4, so D(3) = 0.528;
     * D(2) = 1 - 0.2 - 0.676 = 0.124, D(4) = 1 - 0.6 - 0.050 = 0.350. */
    double knee3[6] = {1000, 200, 10, 9, 8, 7};
    CHECK_EQ_INT(elbow_choose_k(knee3, 6), 3);
    /* Exact zeros past the knee (k >= number of distinct rows) are fine. */
    double knee4[7] = {50, 20, 6, 0, 0, 0, 0};
    CHECK_EQ_INT(elbow_choose_k(knee4, 7), 4);
}

TEST(predict_and_assign_match_brute_force)
{
    enum { K = 7, D = 33, Q = 200 };
    struct rng r;
    rng_seed(&r, 8);
    static float C[K * D], X[Q * D];
    for (int i = 0; i < K * D; i++)
        C[i] = (float)(5 + rng_normal(&r)); /* a common offset, like ReLU features */
    for (int i = 0; i < Q * D; i++)
        X[i] = (float)(5 + 1.2 * rng_normal(&r));
    int labels[Q];
    float dist2[Q];
    CHECK_EQ_INT(kmeans_assign(X, Q, D, C, K, labels, dist2, NULL), 0);
    for (int q = 0; q < Q; q++) {
        int best = -1;
        double bd = INFINITY;
        for (int j = 0; j < K; j++) {
            double s = 0;
            for (int t = 0; t < D; t++) {
                double v = (double)X[q * D + t] - C[j * D + t];
                s += v * v;
            }
            if (s < bd) {
                bd = s;
                best = j;
            }
        }
        float d2;
        CHECK_EQ_INT(kmeans_predict(C, K, D, X + q * D, &d2), best);
        CHECK_NEAR(d2, bd, 1e-6 * bd);
        /* The GEMM path may differ only on a near-tie. */
        if (labels[q] != best) {
            double s = 0;
            for (int t = 0; t < D; t++) {
                double v = (double)X[q * D + t] - C[labels[q] * D + t];
                s += v * v;
            }
            CHECK_NEAR(s, bd, 1e-5 * bd);
        }
        CHECK_NEAR(dist2[q], bd, 1e-4 * bd);
    }
}

int main(void)
{
    RUN(separated_blobs_recovered_exactly);
    RUN(one_dimensional_optimum_by_exhaustive_search);
    RUN(squares_reach_the_optimum_from_any_seed);
    RUN(same_seed_same_result_any_thread_count);
    RUN(bad_arguments_fail_with_a_message);
    RUN(duplicate_points);
    RUN(elbow_on_four_blobs_chooses_four);
    RUN(kneedle_hand_curves);
    RUN(predict_and_assign_match_brute_force);
    return check_done();
}
