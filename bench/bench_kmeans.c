/*
 * bench_kmeans.c — times strata's elbow sweep (k = 1..10, n_init 10,
 * max_iter 300) on a deterministic 1000 x 512 matrix and writes per-k inertia
 * and timings as JSON; bench/sklearn_elbow.py runs scikit-learn on the same
 * matrix (saved as .npy) and compares.
 *
 *   bench_kmeans [--npy PATH] [--json PATH] [--runs N] [--threads T]
 *                [--n N] [--d D] [--clusters C] [--seed S]
 *
 * Defaults: /tmp/strata_bench_kmeans.npy (the blob of each row goes to
 * ..._truth.npy beside it), /tmp/strata_bench_kmeans.json, 5 runs, threads 0
 * (one per CPU), 1000 x 512, 8 clusters, seed 2024. Each k's result from the
 * sweep is also checked to equal kmeans_fit's for that k.
 *
 * The matrix: C Gaussian clusters (centres N(0, 1) per feature, unequal
 * weights, per-cluster noise scale 0.7..1.3) plus a common offset of 3 (like
 * post-ReLU activations), so the centring and the float precision matter.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kmeans.h"
#include "npy.h"
#include "rng.h"

#define K_MAX 10

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void make_data(float *X, int *truth, int n, int d, int C, uint64_t seed)
{
    struct rng r;
    rng_seed(&r, seed);
    float *centers = malloc(sizeof(float) * (size_t)C * d);
    double w[64], scale[64], tot = 0;
    for (int c = 0; c < C; c++) {
        for (int t = 0; t < d; t++)
            centers[(size_t)c * d + t] = (float)rng_normal(&r);
        w[c] = 0.5 + rng_uniform(&r);
        scale[c] = 0.7 + 0.6 * rng_uniform(&r);
        tot += w[c];
    }
    for (int i = 0; i < n; i++) {
        double u = rng_uniform(&r) * tot, acc = 0;
        int c = 0;
        while (c < C - 1 && (acc += w[c]) <= u)
            c++;
        truth[i] = c;
        for (int t = 0; t < d; t++)
            X[(size_t)i * d + t] =
                (float)(3.0 + centers[(size_t)c * d + t] + scale[c] * rng_normal(&r));
    }
    free(centers);
}

int main(int argc, char **argv)
{
    const char *npy_path = "/tmp/strata_bench_kmeans.npy";
    const char *json_path = "/tmp/strata_bench_kmeans.json";
    int runs = 5, threads = 0, n = 1000, d = 512, C = 8;
    uint64_t seed = 2024;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--npy"))
            npy_path = argv[i + 1];
        else if (!strcmp(argv[i], "--json"))
            json_path = argv[i + 1];
        else if (!strcmp(argv[i], "--runs"))
            runs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--n"))
            n = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--d"))
            d = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--clusters"))
            C = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed"))
            seed = strtoull(argv[i + 1], NULL, 10);
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (runs < 1 || n < K_MAX || d < 1 || C < 1 || C > 64) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    char err[STRATA_ERR_LEN];
    float *X = malloc(sizeof(float) * (size_t)n * d);
    int *truth = malloc(sizeof(int) * (size_t)n);
    make_data(X, truth, n, d, C, seed);
    /* The true blob of each row goes next to the matrix: X.npy -> X_truth.npy. */
    char truth_path[1024];
    size_t len = strlen(npy_path);
    if (len > 4 && !strcmp(npy_path + len - 4, ".npy"))
        len -= 4;
    snprintf(truth_path, sizeof truth_path, "%.*s_truth.npy", (int)len, npy_path);
    long shape[2] = {n, d};
    if (npy_write_f32(npy_path, X, 2, shape, err) ||
        npy_write_i32(truth_path, truth, 1, shape, err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }

    struct kmeans_params p = kmeans_params_default(K_MAX);
    p.n_threads = threads;
    double inertia[K_MAX], t_sweep[64];
    int n_iter[K_MAX];
    for (int r = 0; r < runs && r < 64; r++) {
        struct kmeans_result res[K_MAX];
        double t0 = now();
        if (kmeans_elbow(X, n, d, K_MAX, &p, inertia, res, err)) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        t_sweep[r] = now() - t0;
        for (int k = 0; k < K_MAX; k++) {
            n_iter[k] = res[k].n_iter;
            kmeans_result_free(&res[k]);
        }
    }
    double sweep = median(t_sweep, runs < 64 ? runs : 64);

    /* Per-k times: each k alone through kmeans_fit (same results as the sweep). */
    double t_k[K_MAX];
    for (int k = 1; k <= K_MAX; k++) {
        double tk[64];
        for (int r = 0; r < runs && r < 64; r++) {
            struct kmeans_params q = p;
            q.k = k;
            struct kmeans_result res;
            double t0 = now();
            if (kmeans_fit(X, n, d, &q, &res, err)) {
                fprintf(stderr, "%s\n", err);
                return 1;
            }
            tk[r] = now() - t0;
            if (res.inertia != inertia[k - 1]) {
                fprintf(stderr, "k=%d: kmeans_fit inertia %.17g differs from the sweep's %.17g\n",
                        k, res.inertia, inertia[k - 1]);
                return 1;
            }
            kmeans_result_free(&res);
        }
        t_k[k - 1] = median(tk, runs < 64 ? runs : 64);
    }

    FILE *f = fopen(json_path, "w");
    if (!f) {
        perror(json_path);
        return 1;
    }
    fprintf(f, "{\n  \"n\": %d, \"d\": %d, \"clusters\": %d, \"seed\": %llu,\n", n, d, C,
            (unsigned long long)seed);
    fprintf(f, "  \"n_init\": %d, \"max_iter\": %d, \"tol\": %g, \"threads\": %d, \"runs\": %d,\n",
            p.n_init, p.max_iter, p.tol, threads, runs);
    fprintf(f, "  \"sweep_seconds_median\": %.6f,\n  \"chosen_k\": %d,\n  \"per_k\": [\n", sweep,
            elbow_choose_k(inertia, K_MAX));
    for (int k = 1; k <= K_MAX; k++)
        fprintf(f, "    {\"k\": %d, \"inertia\": %.6f, \"n_iter\": %d, \"seconds\": %.6f}%s\n", k,
                inertia[k - 1], n_iter[k - 1], t_k[k - 1], k < K_MAX ? "," : "");
    fprintf(f, "  ]\n}\n");
    fclose(f);
    printf("elbow sweep k=1..%d on %dx%d: median %.4f s over %d runs; chosen k = %d\n", K_MAX, n,
           d, sweep, runs, elbow_choose_k(inertia, K_MAX));
    for (int k = 1; k <= K_MAX; k++)
        printf("  k=%2d inertia %.6e  n_iter %3d  %.4f s\n", k, inertia[k - 1], n_iter[k - 1],
               t_k[k - 1]);
    printf("wrote %s, %s and %s\n", npy_path, truth_path, json_path);
    free(X);
    free(truth);
    return 0;
}
