/*
 * kmeans.c — k-means++ / Lloyd as scikit-learn does it, elbow sweep, Kneedle.
 *
 * Layout of one call: the caller's X is copied once, mean-centred, with its
 * squared row norms (struct km_data, read-only afterwards). Work items are
 * (k, restart) pairs taken from a shared counter by worker threads; each
 * thread owns one struct km_work sized for the largest k and reuses it for
 * every restart. A finished restart is compared with the best one kept for
 * its k under a mutex, by (inertia, restart index), which is a total order:
 * the kept result does not depend on which thread finished first.
 */
#include "kmeans.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rng.h"

/* Rows per GEMM block: the block of X (block*d floats) stays in L2 between
 * the distance GEMM and the centre-sum pass that reads it again. */
#define KM_BLOCK_BYTES (256 * 1024)
#define KM_MAX_THREADS 8

/* OpenBLAS runs a GEMM of at most 65536 * 4 multiply-adds on the calling
 * thread and hands larger ones to its own thread pool. Our GEMMs are small
 * (a block of rows against <= k centres), and several worker threads handing
 * them to one shared pool serialise and oversubscribe the cores: measured on
 * a 1000 x 512 elbow sweep with 2 workers and 2 OpenBLAS threads, 0.34 s
 * with whole-matrix GEMMs against 0.16 s with every GEMM kept under this
 * size (OpenBLAS's small-matrix kernel then runs them, at ~90 GFLOPS for
 * d = 512, k = 10, faster than its general path for these shapes). With
 * another BLAS the cut only costs a little call overhead. */
#define KM_GEMM_MNK 262144

/* Rows per GEMM block for m_other x d products (m_other = k or trials). */
static int gemm_rows(int block, int m_other, int d)
{
    long r = KM_GEMM_MNK / ((long)m_other * d);
    if (r > block)
        r = block;
    return r < 8 ? 8 : (int)r;
}

/* Sum of (x - c)^2 in double. Eight independent accumulators: one running
 * sum would chain every addition on the previous one (latency-bound) and
 * cannot be vectorised without reassociation, which -O3 does not do. */
static double sqdist_exact(const float *x, const float *c, int d)
{
    double acc[8] = {0};
    int t = 0;
    for (; t + 8 <= d; t += 8)
        for (int u = 0; u < 8; u++) {
            double v = (double)x[t + u] - c[t + u];
            acc[u] += v * v;
        }
    double s = 0;
    for (; t < d; t++) {
        double v = (double)x[t] - c[t];
        s += v * v;
    }
    return s + ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* Sum of x^2 in double (same scheme). */
static double sqnorm_exact(const float *x, int d)
{
    double acc[8] = {0};
    int t = 0;
    for (; t + 8 <= d; t += 8)
        for (int u = 0; u < 8; u++)
            acc[u] += (double)x[t + u] * x[t + u];
    double s = 0;
    for (; t < d; t++)
        s += (double)x[t] * x[t];
    return s + ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* Sum of v[0..n-1] in double (same scheme). */
static double sum_exact(const float *v, int n)
{
    double acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int u = 0; u < 8; u++)
            acc[u] += v[i + u];
    double s = 0;
    for (; i < n; i++)
        s += v[i];
    return s + ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

struct km_data {
    const float *X;  /* [n*d] centred rows */
    const float *xn; /* [n] squared norms of the centred rows */
    int n, d;
    int block;       /* rows per GEMM block */
    double tol_abs;  /* tol * mean per-feature variance */
    int max_iter;
};

/* Per-thread scratch, sized for k <= kcap. */
struct km_work {
    float *init;        /* [kcap*d] k-means++ centres, in the order chosen */
    float *centers;     /* [kcap*d] current centres */
    float *centers_new; /* [kcap*d] */
    double *sums;       /* [kcap*d] per-cluster sums of rows */
    float *psum;        /* [kcap*d] the same within one block of rows */
    float *cn;          /* [kcap] squared centre norms */
    float *G;           /* [block*kcap] x.c for one block; also [trials*n] for k-means++ */
    int *labels;        /* [n] */
    float *mind;        /* [n] squared distance to the assigned centre */
    int *counts;        /* [kcap] */
    float *closest;     /* [n] k-means++: squared distance to the nearest chosen centre */
    double *cum;        /* [n] k-means++: running sum of closest */
    int kcap, trials_cap;
    void *slab;
};

static int local_trials(int k)
{
    /* scikit-learn: 2 + int(np.log(k)). */
    return 2 + (int)log((double)k);
}

static void work_free(struct km_work *w)
{
    free(w->slab);
    memset(w, 0, sizeof *w);
}

static int work_init(struct km_work *w, const struct km_data *D, int kcap)
{
    memset(w, 0, sizeof *w);
    size_t n = (size_t)D->n, d = (size_t)D->d, k = (size_t)kcap;
    int trials = local_trials(kcap);
    size_t g = (size_t)D->block * k;
    if (g < (size_t)trials * n)
        g = (size_t)trials * n;
    /* One slab; doubles first so every part stays 8-byte aligned. */
    size_t bytes = sizeof(double) * (k * d + n) +
                   sizeof(float) * (4 * k * d + k + g + 2 * n) + sizeof(int) * (n + k);
    char *s = malloc(bytes);
    if (!s)
        return STRATA_E_NOMEM;
    w->slab = s;
    w->sums = (double *)s;
    s += sizeof(double) * k * d;
    w->cum = (double *)s;
    s += sizeof(double) * n;
    w->init = (float *)s;
    s += sizeof(float) * k * d;
    w->centers = (float *)s;
    s += sizeof(float) * k * d;
    w->centers_new = (float *)s;
    s += sizeof(float) * k * d;
    w->psum = (float *)s;
    s += sizeof(float) * k * d;
    w->cn = (float *)s;
    s += sizeof(float) * k;
    w->G = (float *)s;
    s += sizeof(float) * g;
    w->mind = (float *)s;
    s += sizeof(float) * n;
    w->closest = (float *)s;
    s += sizeof(float) * n;
    w->labels = (int *)s;
    s += sizeof(int) * n;
    w->counts = (int *)s;
    w->kcap = kcap;
    w->trials_cap = trials;
    return STRATA_OK;
}

/* Squared distances from m rows R (m x d, squared norms rn) to every row of X:
 * out[j*n + i] = ||x_i||^2 - 2 x_i.r_j + ||r_j||^2, clamped at 0 (rounding can
 * make a zero distance slightly negative). */
static void dist_rows_to_all(const struct km_data *D, const float *R, const float *rn, int m,
                             float *out)
{
    int n = D->n, d = D->d;
    int B = gemm_rows(n, m, d);
    for (int i0 = 0; i0 < n; i0 += B)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n - i0 < B ? n - i0 : B, d,
                    -2.0f, R, d, D->X + (size_t)i0 * d, d, 0.0f, out + i0, n);
    for (int j = 0; j < m; j++) {
        float *o = out + (size_t)j * n;
        for (int i = 0; i < n; i++) {
            float v = o[i] + D->xn[i] + rn[j];
            o[i] = v > 0.0f ? v : 0.0f;
        }
    }
}

/* Index of the first entry of cum (non-decreasing, n entries) that is > r;
 * n - 1 when rounding put r past the end. */
static int search_cum(const double *cum, int n, double r)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (cum[mid] > r)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* k-means++ with greedy local trials into w->init (k x d). The centres come
 * out in the order chosen, and the first j of them are exactly what a run for
 * j clusters would choose when j uses as many trials (2 + floor(ln j)) as k:
 * the random stream and every computation up to centre j are the same. The
 * elbow sweep uses this to seed k = 3..7 (3 trials) from one run for 7, and
 * k = 8..20 (4 trials) from one run for the largest. */
static void kmeanspp(const struct km_data *D, struct km_work *w, int k, struct rng *rng)
{
    int n = D->n, d = D->d;
    int trials = local_trials(k);
    float cand_norm[16];
    int cand_id[16];
    assert(trials <= 16);

    int first = (int)rng_below(rng, (uint64_t)n);
    memcpy(w->init, D->X + (size_t)first * d, sizeof(float) * d);
    dist_rows_to_all(D, w->init, &D->xn[first], 1, w->closest);
    double pot = sum_exact(w->closest, n);

    /* Candidate rows are gathered into centers_new, free until Lloyd. */
    float *cand = w->centers_new;
    for (int c = 1; c < k; c++) {
        double run = 0;
        for (int i = 0; i < n; i++) {
            run += w->closest[i];
            w->cum[i] = run;
        }
        for (int t = 0; t < trials; t++) {
            double r = rng_uniform(rng) * pot;
            int id;
            if (run > 0) {
                id = search_cum(w->cum, n, r);
                /* Rounding can leave r at or past the total: step back to a
                 * row that has positive weight. */
                while (id > 0 && w->closest[id] <= 0.0f)
                    id--;
            } else {
                /* Every row sits on a chosen centre (fewer distinct rows than
                 * k): any row will do; Lloyd's empty-cluster rule takes over. */
                id = (int)rng_below(rng, (uint64_t)n);
            }
            cand_id[t] = id;
            cand_norm[t] = D->xn[id];
            memcpy(cand + (size_t)t * d, D->X + (size_t)id * d, sizeof(float) * d);
        }
        dist_rows_to_all(D, cand, cand_norm, trials, w->G);
        int best = 0;
        double best_pot = INFINITY;
        for (int t = 0; t < trials; t++) {
            float *g = w->G + (size_t)t * n;
            for (int i = 0; i < n; i++)
                g[i] = g[i] < w->closest[i] ? g[i] : w->closest[i];
            double s = sum_exact(g, n);
            if (s < best_pot) {
                best_pot = s;
                best = t;
            }
        }
        pot = best_pot;
        memcpy(w->closest, w->G + (size_t)best * n, sizeof(float) * n);
        memcpy(w->init + (size_t)c * d, D->X + (size_t)cand_id[best] * d, sizeof(float) * d);
    }
}

/* One assignment pass: labels[i] = nearest centre, mind[i] = its squared
 * distance. With `update`, also accumulates per-cluster sums and counts:
 * within a block in float (psum, vectorisable, a few dozen rows), then each
 * block's partial sums into double, so long sums do not lose precision.
 * Returns the number of rows whose label changed. */
static int assign_pass(const struct km_data *D, struct km_work *w, const float *centers, int k,
                       int update)
{
    int n = D->n, d = D->d, B = gemm_rows(D->block, k, d);
    int in_block[KMEANS_MAX_K];
    for (int j = 0; j < k; j++)
        w->cn[j] = (float)sqnorm_exact(centers + (size_t)j * d, d);
    if (update) {
        memset(w->sums, 0, sizeof(double) * (size_t)k * d);
        memset(w->counts, 0, sizeof(int) * (size_t)k);
    }
    int changed = 0;
    for (int i0 = 0; i0 < n; i0 += B) {
        int m = n - i0 < B ? n - i0 : B;
        const float *Xb = D->X + (size_t)i0 * d;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, k, d, -2.0f, Xb, d, centers, d,
                    0.0f, w->G, k);
        if (update)
            memset(in_block, 0, sizeof(int) * (size_t)k);
        for (int r = 0; r < m; r++) {
            const float *g = w->G + (size_t)r * k;
            int best = 0;
            float bv = g[0] + w->cn[0];
            for (int j = 1; j < k; j++) {
                float v = g[j] + w->cn[j];
                if (v < bv) {
                    bv = v;
                    best = j;
                }
            }
            int i = i0 + r;
            float dist = bv + D->xn[i];
            w->mind[i] = dist > 0.0f ? dist : 0.0f;
            changed += w->labels[i] != best;
            w->labels[i] = best;
            if (update) {
                float *ps = w->psum + (size_t)best * d;
                const float *x = Xb + (size_t)r * d;
                if (in_block[best]++)
                    for (int t = 0; t < d; t++)
                        ps[t] += x[t];
                else
                    memcpy(ps, x, sizeof(float) * d);
            }
        }
        if (update)
            for (int j = 0; j < k; j++) {
                if (!in_block[j])
                    continue;
                w->counts[j] += in_block[j];
                double *s = w->sums + (size_t)j * d;
                const float *ps = w->psum + (size_t)j * d;
                for (int t = 0; t < d; t++)
                    s[t] += ps[t];
            }
    }
    return changed;
}

/* Gives every empty cluster the row farthest from its centre, taken from a
 * cluster that keeps at least one row (one exists: n >= k). */
static void relocate_empty(const struct km_data *D, struct km_work *w, int k)
{
    int n = D->n, d = D->d;
    for (int j = 0; j < k; j++) {
        if (w->counts[j])
            continue;
        int far = -1;
        float fd = -1.0f;
        for (int i = 0; i < n; i++)
            if (w->counts[w->labels[i]] > 1 && w->mind[i] > fd) {
                fd = w->mind[i];
                far = i;
            }
        assert(far >= 0);
        int old = w->labels[far];
        const float *x = D->X + (size_t)far * d;
        double *so = w->sums + (size_t)old * d, *sj = w->sums + (size_t)j * d;
        for (int t = 0; t < d; t++) {
            so[t] -= x[t];
            sj[t] = x[t];
        }
        w->counts[old]--;
        w->counts[j] = 1;
        w->labels[far] = j;
        w->mind[far] = -1.0f; /* never picked twice */
    }
}

/* Exact inertia of labels against centers, in double. */
static double exact_inertia(const struct km_data *D, const float *centers, const int *labels)
{
    int n = D->n, d = D->d;
    double s = 0;
    for (int i = 0; i < n; i++)
        s += sqdist_exact(D->X + (size_t)i * d, centers + (size_t)labels[i] * d, d);
    return s;
}

/* Lloyd from the first k centres of w->init. Leaves centres in w->centers
 * and labels in w->labels; returns the inertia measured by the last
 * assignment pass (GEMM distances, summed in double: within ~1e-6 of the
 * exact value, enough to rank restarts) and the iteration count. */
static double lloyd(const struct km_data *D, struct km_work *w, int k, int *n_iter)
{
    int d = D->d;
    memcpy(w->centers, w->init, sizeof(float) * (size_t)k * d);
    for (int i = 0; i < D->n; i++)
        w->labels[i] = -1;
    int strict = 0, it = 0;
    while (it < D->max_iter) {
        int changed = assign_pass(D, w, w->centers, k, 1);
        it++;
        if (changed == 0) {
            /* Same partition as last time, so the centres are already its
             * means: labels and centres agree. */
            strict = 1;
            break;
        }
        relocate_empty(D, w, k);
        double shift = 0;
        for (int j = 0; j < k; j++) {
            const double *s = w->sums + (size_t)j * d;
            double inv = 1.0 / w->counts[j];
            float *cnew = w->centers_new + (size_t)j * d;
            const float *cold = w->centers + (size_t)j * d;
            for (int t = 0; t < d; t++) {
                cnew[t] = (float)(s[t] * inv);
                double v = (double)cnew[t] - cold[t];
                shift += v * v;
            }
        }
        float *tmp = w->centers;
        w->centers = w->centers_new;
        w->centers_new = tmp;
        if (shift <= D->tol_abs)
            break;
    }
    if (!strict)
        assign_pass(D, w, w->centers, k, 0); /* labels = nearest final centres */
    *n_iter = it;
    return sum_exact(w->mind, D->n);
}

/* ---- restarts over a thread pool ---- */

struct km_best {
    double inertia;  /* as lloyd() measured it: ranks the restarts */
    int init, n_iter, have;
    float *centers; /* [k*d], centred */
    int *labels;    /* [n] */
};

struct km_pool {
    const struct km_data *D;
    int n_tasks;
    const int *task_g, *task_r;   /* group and restart of each task */
    const int *group_start;       /* group g is ks[group_start[g] .. group_start[g+1]) */
    const int *ks;                /* ascending */
    const uint64_t *restart_seed; /* [n_init] */
    int kcap;
    struct km_best *best;         /* indexed by k */
    int next;                     /* atomic task counter */
    int failed;                   /* a worker could not allocate */
    pthread_mutex_t lock;
};

static void *pool_worker(void *arg)
{
    struct km_pool *P = arg;
    struct km_work w;
    if (work_init(&w, P->D, P->kcap)) {
        __atomic_store_n(&P->failed, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    int n = P->D->n, d = P->D->d;
    for (;;) {
        int t = __atomic_fetch_add(&P->next, 1, __ATOMIC_RELAXED);
        if (t >= P->n_tasks || __atomic_load_n(&P->failed, __ATOMIC_RELAXED))
            break;
        int g = P->task_g[t], r = P->task_r[t];
        int lo = P->group_start[g], hi = P->group_start[g + 1];
        struct rng rng;
        rng_seed(&rng, P->restart_seed[r]);
        kmeanspp(P->D, &w, P->ks[hi - 1], &rng);
        for (int i = lo; i < hi; i++) {
            int k = P->ks[i], n_iter;
            double inertia = lloyd(P->D, &w, k, &n_iter);
            pthread_mutex_lock(&P->lock);
            struct km_best *b = &P->best[k];
            if (!b->have || inertia < b->inertia || (inertia == b->inertia && r < b->init)) {
                b->have = 1;
                b->inertia = inertia;
                b->init = r;
                b->n_iter = n_iter;
                memcpy(b->centers, w.centers, sizeof(float) * (size_t)k * d);
                memcpy(b->labels, w.labels, sizeof(int) * (size_t)n);
            }
            pthread_mutex_unlock(&P->lock);
        }
    }
    work_free(&w);
    return NULL;
}

static int pick_threads(int requested, int n_tasks)
{
    int t = requested;
    if (t <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        t = c > 0 ? (int)c : 1;
    }
    if (t > KM_MAX_THREADS)
        t = KM_MAX_THREADS;
    if (t > n_tasks)
        t = n_tasks;
    return t < 1 ? 1 : t;
}

/* Runs every restart for each k in ks[] (ascending, all >= 2) and fills
 * best[k]. The ks are grouped by their number of k-means++ trials; a task is
 * (group, restart): one k-means++ run for the group's largest k seeds Lloyd
 * for every k of the group. */
static int run_pool(const struct km_data *D, const int *ks, int nk, const struct kmeans_params *p,
                    struct km_best *best, char *err)
{
    int n_init = p->n_init, kcap = ks[nk - 1];
    int group_start[KMEANS_MAX_K + 1], ng = 0;
    for (int i = 0; i < nk; i++)
        if (i == 0 || local_trials(ks[i]) != local_trials(ks[i - 1]))
            group_start[ng++] = i;
    group_start[ng] = nk;
    int n_tasks = ng * n_init;
    int *task = malloc(sizeof(int) * 2 * (size_t)n_tasks);
    uint64_t *seeds = malloc(sizeof(uint64_t) * (size_t)n_init);
    if (!task || !seeds) {
        free(task);
        free(seeds);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory for k-means restarts");
    }
    /* Restart r's stream depends only on (seed, r). */
    struct rng g;
    rng_seed(&g, p->seed);
    for (int r = 0; r < n_init; r++)
        seeds[r] = rng_next(&g);
    /* Groups of the largest k first, so costly tasks do not straggle. */
    int t = 0;
    for (int i = ng - 1; i >= 0; i--)
        for (int r = 0; r < n_init; r++, t++) {
            task[t] = i;
            task[n_tasks + t] = r;
        }
    struct km_pool P = {.D = D, .n_tasks = n_tasks, .task_g = task, .task_r = task + n_tasks,
                        .group_start = group_start, .ks = ks, .restart_seed = seeds,
                        .kcap = kcap, .best = best};
    pthread_mutex_init(&P.lock, NULL);
    int nt = pick_threads(p->n_threads, n_tasks);
    pthread_t tid[KM_MAX_THREADS];
    int started = 0;
    for (int i = 1; i < nt; i++) {
        if (pthread_create(&tid[started], NULL, pool_worker, &P) != 0)
            break; /* fewer threads is still correct */
        started++;
    }
    pool_worker(&P);
    for (int i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    pthread_mutex_destroy(&P.lock);
    free(task);
    free(seeds);
    if (P.failed)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory for k-means workspaces");
    return STRATA_OK;
}

/* ---- shared preparation ---- */

struct km_prep {
    float *Xc;     /* [n*d] centred copy */
    float *xn;     /* [n] */
    double *mean;  /* [d] */
    double tol_abs;
};

static void prep_free(struct km_prep *q)
{
    free(q->Xc);
    free(q->xn);
    free(q->mean);
    memset(q, 0, sizeof *q);
}

static int prep_init(struct km_prep *q, const float *X, int n, int d, double tol, char *err)
{
    memset(q, 0, sizeof *q);
    q->Xc = malloc(sizeof(float) * (size_t)n * d);
    q->xn = malloc(sizeof(float) * (size_t)n);
    q->mean = calloc((size_t)d, sizeof(double));
    double *m2 = calloc((size_t)d, sizeof(double));
    if (!q->Xc || !q->xn || !q->mean || !m2) {
        free(m2);
        prep_free(q);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory copying a %dx%d matrix", n, d);
    }
    for (int i = 0; i < n; i++) {
        const float *x = X + (size_t)i * d;
        for (int t = 0; t < d; t++) {
            if (!isfinite(x[t])) {
                free(m2);
                prep_free(q);
                return strata_fail(err, STRATA_E_ARG,
                                   "feature matrix holds a non-finite value at row %d, column %d",
                                   i, t);
            }
            q->mean[t] += x[t];
        }
    }
    for (int t = 0; t < d; t++)
        q->mean[t] /= n;
    for (int i = 0; i < n; i++) {
        const float *x = X + (size_t)i * d;
        float *y = q->Xc + (size_t)i * d;
        double s = 0;
        for (int t = 0; t < d; t++) {
            double v = (double)x[t] - q->mean[t];
            y[t] = (float)v;
            m2[t] += v * v;
        }
        for (int t = 0; t < d; t++)
            s += (double)y[t] * y[t];
        q->xn[i] = (float)s;
    }
    double var = 0;
    for (int t = 0; t < d; t++)
        var += m2[t] / n;
    q->tol_abs = tol * var / d;
    free(m2);
    return STRATA_OK;
}

static void data_from_prep(struct km_data *D, const struct km_prep *q, int n, int d,
                           int max_iter)
{
    D->X = q->Xc;
    D->xn = q->xn;
    D->n = n;
    D->d = d;
    D->tol_abs = q->tol_abs;
    D->max_iter = max_iter;
    int b = (int)(KM_BLOCK_BYTES / (sizeof(float) * (size_t)d));
    D->block = b < 16 ? 16 : b;
}

static int check_params(int n, int d, int k, const struct kmeans_params *p, char *err)
{
    if (n <= 0 || d <= 0)
        return strata_fail(err, STRATA_E_ARG, "k-means needs at least one row and one feature "
                           "(got %d x %d)", n, d);
    if (k < 1 || k > KMEANS_MAX_K)
        return strata_fail(err, STRATA_E_ARG, "k = %d is out of range 1..%d", k, KMEANS_MAX_K);
    if (n < k)
        return strata_fail(err, STRATA_E_ARG,
                           "cannot make %d clusters from %d rows: use k <= %d or more images", k,
                           n, n);
    if (p->n_init < 1 || p->max_iter < 1)
        return strata_fail(err, STRATA_E_ARG, "k-means needs n_init >= 1 and max_iter >= 1 "
                           "(got %d, %d)", p->n_init, p->max_iter);
    if (!(p->tol >= 0))
        return strata_fail(err, STRATA_E_ARG, "k-means tolerance must be >= 0 (got %g)", p->tol);
    return STRATA_OK;
}

static int result_alloc(struct kmeans_result *r, int n, int d, int k)
{
    memset(r, 0, sizeof *r);
    r->centers = malloc(sizeof(float) * (size_t)k * d);
    r->labels = malloc(sizeof(int) * (size_t)n);
    r->sizes = calloc((size_t)k, sizeof(int));
    r->k = k;
    r->d = d;
    if (!r->centers || !r->labels || !r->sizes) {
        kmeans_result_free(r);
        return STRATA_E_NOMEM;
    }
    return STRATA_OK;
}

/* Moves a kept restart (centred) into a result (original coordinates), with
 * its inertia recomputed exactly. */
static void result_finish(struct kmeans_result *r, const struct km_data *D,
                          const struct km_prep *q, int n, int d, const struct km_best *b)
{
    r->inertia = exact_inertia(D, b->centers, b->labels);
    r->n_iter = b->n_iter;
    r->best_init = b->init;
    for (int j = 0; j < r->k; j++)
        for (int t = 0; t < d; t++)
            r->centers[(size_t)j * d + t] = (float)(b->centers[(size_t)j * d + t] + q->mean[t]);
    for (int i = 0; i < n; i++)
        r->sizes[b->labels[i]]++;
}

/* k = 1: the centre is the mean; Lloyd would reach it in one step anyway. */
static void fit_one_cluster(struct kmeans_result *r, const struct km_prep *q, int n, int d)
{
    double s = 0;
    for (size_t i = 0; i < (size_t)n * d; i++)
        s += (double)q->Xc[i] * q->Xc[i];
    for (int t = 0; t < d; t++)
        r->centers[t] = (float)q->mean[t];
    for (int i = 0; i < n; i++)
        r->labels[i] = 0;
    r->sizes[0] = n;
    r->inertia = s;
    r->n_iter = 1;
    r->best_init = 0;
}

struct kmeans_params kmeans_params_default(int k)
{
    struct kmeans_params p = {.k = k, .n_init = 10, .max_iter = 300, .tol = 1e-4, .seed = 0,
                              .n_threads = 0};
    return p;
}

/* Fits every k in ks[0..nk-1] (ascending) into results[i]. */
static int fit_ks(const float *X, int n, int d, const int *ks, int nk,
                  const struct kmeans_params *p, struct kmeans_result *results, char *err)
{
    struct km_prep q;
    int rc = prep_init(&q, X, n, d, p->tol, err);
    if (rc)
        return rc;
    struct km_data D;
    data_from_prep(&D, &q, n, d, p->max_iter);
    int kmax = ks[nk - 1];
    struct km_best *best = calloc((size_t)kmax + 1, sizeof *best);
    int nres = 0;
    if (!best) {
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory for k-means results");
        goto done;
    }
    for (; nres < nk; nres++) {
        int k = ks[nres];
        if (result_alloc(&results[nres], n, d, k)) {
            rc = strata_fail(err, STRATA_E_NOMEM, "out of memory for a %d-cluster result", k);
            goto done;
        }
        /* The kept restart is copied straight into the result's buffers
         * (centred), then shifted back in result_finish. */
        best[k].centers = results[nres].centers;
        best[k].labels = results[nres].labels;
    }
    int ks_iter[KMEANS_MAX_K];
    int nki = 0;
    for (int i = 0; i < nk; i++) {
        if (ks[i] == 1)
            fit_one_cluster(&results[i], &q, n, d);
        else
            ks_iter[nki++] = ks[i];
    }
    if (nki) {
        rc = run_pool(&D, ks_iter, nki, p, best, err);
        if (rc)
            goto done;
        for (int i = 0; i < nk; i++)
            if (ks[i] > 1)
                result_finish(&results[i], &D, &q, n, d, &best[ks[i]]);
    }
done:
    if (rc)
        for (int i = 0; i < nres; i++)
            kmeans_result_free(&results[i]);
    free(best);
    prep_free(&q);
    return rc;
}

int kmeans_fit(const float *X, int n, int d, const struct kmeans_params *p,
               struct kmeans_result *out, char *err)
{
    assert(X && p && out);
    memset(out, 0, sizeof *out);
    int rc = check_params(n, d, p->k, p, err);
    if (rc)
        return rc;
    return fit_ks(X, n, d, &p->k, 1, p, out, err);
}

int kmeans_elbow(const float *X, int n, int d, int k_max, const struct kmeans_params *p,
                 double *inertia, struct kmeans_result *results, char *err)
{
    assert(X && p && inertia);
    int rc = check_params(n, d, k_max, p, err);
    if (rc)
        return rc;
    struct kmeans_result local[KMEANS_MAX_K];
    struct kmeans_result *res = results ? results : local;
    int ks[KMEANS_MAX_K] = {0};
    for (int k = 1; k <= k_max; k++)
        ks[k - 1] = k;
    rc = fit_ks(X, n, d, ks, k_max, p, res, err);
    if (rc)
        return rc;
    for (int k = 1; k <= k_max; k++) {
        inertia[k - 1] = res[k - 1].inertia;
        if (!results)
            kmeans_result_free(&res[k - 1]);
    }
    return STRATA_OK;
}

void kmeans_result_free(struct kmeans_result *r)
{
    if (!r)
        return;
    free(r->centers);
    free(r->labels);
    free(r->sizes);
    memset(r, 0, sizeof *r);
}

int kmeans_predict(const float *centers, int k, int d, const float *x, float *dist2_out)
{
    assert(centers && x && k >= 1 && d >= 1);
    int best = 0;
    double bd = INFINITY;
    for (int j = 0; j < k; j++) {
        const float *c = centers + (size_t)j * d;
        double s = 0;
        for (int t = 0; t < d; t++) {
            double v = (double)x[t] - c[t];
            s += v * v;
        }
        if (s < bd) {
            bd = s;
            best = j;
        }
    }
    if (dist2_out)
        *dist2_out = (float)bd;
    return best;
}

int kmeans_assign(const float *X, int n, int d, const float *centers, int k, int *labels,
                  float *dist2, char *err)
{
    assert(X && centers && labels && n >= 0 && d >= 1 && k >= 1);
    if (n == 0)
        return STRATA_OK;
    /* Both sides are shifted by the centres' mean before the GEMM expansion:
     * activations (after ReLU) share a large positive offset that would
     * otherwise dominate the norms and eat the float precision. */
    int B = (int)(KM_BLOCK_BYTES / (sizeof(float) * (size_t)d));
    B = B < 16 ? 16 : B;
    B = B > n ? n : B;
    size_t bytes = sizeof(float) * ((size_t)k * d + d + (size_t)B * d + (size_t)B * k + k);
    float *slab = malloc(bytes);
    if (!slab)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory assigning %d rows", n);
    float *C = slab, *mu = C + (size_t)k * d, *Xb = mu + d, *G = Xb + (size_t)B * d,
          *cn = G + (size_t)B * k;
    for (int t = 0; t < d; t++) {
        double s = 0;
        for (int j = 0; j < k; j++)
            s += centers[(size_t)j * d + t];
        mu[t] = (float)(s / k);
    }
    for (int j = 0; j < k; j++) {
        double s = 0;
        for (int t = 0; t < d; t++) {
            float v = centers[(size_t)j * d + t] - mu[t];
            C[(size_t)j * d + t] = v;
            s += (double)v * v;
        }
        cn[j] = (float)s;
    }
    for (int i0 = 0; i0 < n; i0 += B) {
        int m = n - i0 < B ? n - i0 : B;
        for (int r = 0; r < m; r++)
            for (int t = 0; t < d; t++)
                Xb[(size_t)r * d + t] = X[(size_t)(i0 + r) * d + t] - mu[t];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, k, d, -2.0f, Xb, d, C, d, 0.0f,
                    G, k);
        for (int r = 0; r < m; r++) {
            const float *g = G + (size_t)r * k;
            int best = 0;
            float bv = g[0] + cn[0];
            for (int j = 1; j < k; j++)
                if (g[j] + cn[j] < bv) {
                    bv = g[j] + cn[j];
                    best = j;
                }
            labels[i0 + r] = best;
            if (dist2) {
                const float *x = Xb + (size_t)r * d;
                double s = 0;
                for (int t = 0; t < d; t++)
                    s += (double)x[t] * x[t];
                float v = (float)(s + bv);
                dist2[i0 + r] = v > 0.0f ? v : 0.0f;
            }
        }
    }
    free(slab);
    return STRATA_OK;
}

int elbow_choose_k(const double *inertia, int k_max)
{
    assert(inertia && k_max >= 1);
    for (int i = 0; i < k_max; i++)
        assert(isfinite(inertia[i]) && inertia[i] >= 0);
    if (k_max == 1)
        return 1;
    if (k_max == 2)
        return inertia[1] < 0.5 * inertia[0] ? 2 : 1;
    double lo = inertia[0], hi = inertia[0];
    for (int i = 1; i < k_max; i++) {
        lo = inertia[i] < lo ? inertia[i] : lo;
        hi = inertia[i] > hi ? inertia[i] : hi;
    }
    if (hi - lo <= 1e-9 * hi)
        return 1; /* also catches hi = 0 */
    /* y = ln(inertia + eps): eps keeps an exact zero (k >= distinct rows)
     * finite without moving the other points. */
    double eps = 1e-12 * hi, ylo = log(lo + eps), yhi = log(hi + eps);
    int best = 1;
    double bd = -INFINITY;
    for (int i = 0; i < k_max; i++) {
        double x = (double)i / (k_max - 1);
        double y = (log(inertia[i] + eps) - ylo) / (yhi - ylo);
        double D = 1.0 - x - y;
        if (D > bd) {
            bd = D;
            best = i + 1;
        }
    }
    return bd < 0.05 ? 1 : best;
}
