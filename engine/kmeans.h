/*
 * kmeans.h — k-means clustering of feature rows, the elbow sweep over k, and
 * the automatic choice of k.
 *
 * The algorithm is scikit-learn's KMeans (lloyd) so that strata's clusters are
 * as good as the reference users know:
 *   - k-means++ seeding with greedy local trials: the first centre is a random
 *     row; each next one is the best of 2 + floor(ln k) candidates drawn with
 *     probability proportional to the squared distance to the nearest chosen
 *     centre, "best" meaning the one that lowers the potential (sum of those
 *     squared distances) most;
 *   - Lloyd iterations until the labels stop changing ("strict convergence")
 *     or the squared centre shift summed over clusters is <= tol * (mean of the
 *     per-feature variances of X), or max_iter; then, unless strictly
 *     converged, a final relabel so that labels are the nearest centres;
 *   - an empty cluster takes the row farthest from its centre (among clusters
 *     that keep at least one row);
 *   - n_init restarts, keeping the lowest inertia (the first on ties);
 *   - k = 1 is computed in closed form (the mean), as Lloyd would reach it.
 * The random generator is strata's (rng.h), not NumPy's, so clusters equal
 * scikit-learn's in quality, not bit for bit: on the bench matrix inertias
 * agree per k within 0.5% (either side, by restart luck), and their means over
 * 20 seeds within 0.3%.
 *
 * Distances use ||x||^2 - 2 x.c + ||c||^2 with x.c from cblas_sgemm on blocks
 * of rows, on a mean-centred copy of X (centring loses nothing and avoids the
 * cancellation of large norms, as scikit-learn does). Restarts are ranked by
 * the inertia their last assignment pass measured (float distances summed in
 * double, within ~1e-6 relative); the reported inertia is recomputed exactly
 * (sum of (x - c)^2 in double) for the kept centres.
 *
 * Determinism: a restart's random stream depends only on (seed, restart
 * index), and the best restart is chosen by index order, so a seed gives the
 * same result whatever the number of threads or their timing. Restarts run on
 * `n_threads` worker threads; inside them the BLAS calls are small (a block of
 * rows against k centres).
 *
 * Memory: every function allocates its workspace once per call (O(n*d) for
 * the centred copy plus O(n + k*d) per thread); nothing allocates inside the
 * iterations.
 *
 * Speed (bench/bench_kmeans.c, 2 cores shared with other jobs): the elbow
 * sweep k = 1..10, n_init 10, max_iter 300 takes 0.03-0.09 s on 1000 x 512
 * (scikit-learn 1.2: 1.0-5.6 s on the same matrix) and ~0.5 s on
 * 2400 x 2048. Half of the work on wide data is k-means++ seeding, which the
 * sweep shares between k values with the same number of trials (see
 * kmeans.c); each k still gives exactly what kmeans_fit gives for it.
 */
#ifndef STRATA_KMEANS_H
#define STRATA_KMEANS_H

#include <stdint.h>

#include "status.h"

#define KMEANS_MAX_K 256

struct kmeans_params {
    int k;          /* number of clusters, 1..KMEANS_MAX_K and <= n */
    int n_init;     /* restarts (scikit-learn: 10) */
    int max_iter;   /* Lloyd iterations per restart (300) */
    double tol;     /* relative tolerance on the centre shift (1e-4); 0 = until labels are stable */
    uint64_t seed;  /* the only source of randomness */
    int n_threads;  /* worker threads for the restarts; 0 = one per online CPU (at most 8) */
};

/* scikit-learn's defaults for k clusters: n_init 10, max_iter 300, tol 1e-4,
 * seed 0, n_threads 0. */
struct kmeans_params kmeans_params_default(int k);

struct kmeans_result {
    int k;
    int d;
    float *centers;  /* [k*d] row-major, owned */
    int *labels;     /* [n], each in 0..k-1, owned */
    int *sizes;      /* [k] rows per cluster, owned */
    double inertia;  /* sum over rows of the squared distance to their centre */
    int n_iter;      /* Lloyd iterations of the kept restart */
    int best_init;   /* index of the kept restart */
};

/* Clusters the n rows of X (n x d, row-major) into p->k clusters. On success
 * fills *out (free with kmeans_result_free) and returns 0. Fails, with *out
 * left empty, with STRATA_E_ARG when n < k (fewer rows than clusters), k, n,
 * d, n_init or max_iter is not positive, k > KMEANS_MAX_K or tol < 0, with
 * STRATA_E_ARG when X holds a NaN or infinity (named by row and column), or
 * STRATA_E_NOMEM. If X has fewer than k distinct rows, as many clusters as
 * there are distinct rows hold them all and the others are empty (sizes 0,
 * centres duplicating a used one), as in scikit-learn; callers must accept
 * empty clusters. */
int kmeans_fit(const float *X, int n, int d, const struct kmeans_params *p,
               struct kmeans_result *out, char *err);

/* Frees what kmeans_fit or kmeans_elbow put in *r and empties it. NULL-safe. */
void kmeans_result_free(struct kmeans_result *r);

/* Index of the centre (k x d, row-major) nearest to the vector x[d]; the
 * squared distance, computed exactly in double, goes to *dist2_out when it is
 * not NULL. Ties go to the lower index. Can't fail (k >= 1, asserted). */
int kmeans_predict(const float *centers, int k, int d, const float *x, float *dist2_out);

/* Nearest centre for each of the n rows of X (batched kmeans_predict through
 * GEMM): labels[n] and, when not NULL, dist2[n]. Returns 0 or STRATA_E_NOMEM.
 * Distances here use the GEMM expansion, so a dist2 can differ from the exact
 * one by float rounding (relative to the norms). */
int kmeans_assign(const float *X, int n, int d, const float *centers, int k, int *labels,
                  float *dist2, char *err);

/* The elbow sweep: fits k = 1..k_max with the other fields of *p and writes
 * inertia[k-1]. Each k is exactly kmeans_fit with p->k = k (same seed, same
 * result). When `results` is not NULL it receives the k_max fits
 * (results[k-1]; free each with kmeans_result_free); otherwise they are
 * discarded. k = 1 is computed in closed form (the mean). All (k, restart)
 * pairs share one pool of threads, largest k first. Fails like kmeans_fit
 * (checked before any work, so n < k_max is STRATA_E_ARG); on failure nothing
 * is left allocated in `results`. */
int kmeans_elbow(const float *X, int n, int d, int k_max, const struct kmeans_params *p,
                 double *inertia, struct kmeans_result *results, char *err);

/* Chooses k from an elbow curve inertia[0..k_max-1] (inertia[i] for k = i+1)
 * with Kneedle (Satopaa et al., 2011) on the log of the inertia: normalise
 * x = (k-1)/(k_max-1) and y = ln(inertia) to [0, 1], so the curve runs from
 * (0, 1) down to (1, 0); the knee is the k whose point lies farthest below the
 * chord, i.e. maximises D(k) = 1 - x - y.
 * Why the log: with many noisy clusters the linear curve falls almost
 * straight until the true k, and the linear chord then favours k - 1 (on the
 * bench's 8-cluster matrix the linear rule picks 7, the log one 8); the log
 * measures each drop relative to what is left, and on clear-cut curves both
 * agree (checked on tight, loose, unequal, anisotropic and 2-cluster blobs).
 * Rules at the edges, in order:
 *   - k_max = 1: 1; k_max = 2: 2 if the inertia more than halves, else 1
 *     (two points carry no knee);
 *   - a flat curve (max - min <= 1e-9 * max, e.g. identical rows): 1;
 *   - no knee (max D < 0.05: the curve hugs the chord, no k stands out): 1;
 *   - ties in D go to the smaller k.
 * Kneedle always finds some bend: on data without clusters (one Gaussian
 * blob, a uniform cube) it still returns a k (typically 3-4) with a small D,
 * so a caller that must tell "no structure" apart should also look at how
 * much of the inertia k_max clusters remove.
 * The result is in 1..k_max. Inertias must be finite and >= 0 (asserted). */
int elbow_choose_k(const double *inertia, int k_max);

#endif
