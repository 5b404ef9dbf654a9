/* metrics.c — clustering scores against classes, and the silhouette. */
#include "metrics.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void metrics_contingency(const int *la, int ka, const int *lb, int kb, int n, long *table)
{
    assert(ka >= 1 && kb >= 1 && n >= 0 && table);
    memset(table, 0, sizeof(long) * (size_t)ka * kb);
    for (int i = 0; i < n; i++) {
        assert(la[i] >= 0 && la[i] < ka && lb[i] >= 0 && lb[i] < kb);
        table[(size_t)la[i] * kb + lb[i]]++;
    }
}

void metrics_confusion(const int *truth, const int *pred, int n, int n_classes, long *cm)
{
    metrics_contingency(truth, n_classes, pred, n_classes, n, cm);
}

double metrics_accuracy(const int *truth, const int *pred, int n)
{
    if (n <= 0)
        return 0;
    long hit = 0;
    for (int i = 0; i < n; i++)
        hit += truth[i] == pred[i];
    return (double)hit / n;
}

void metrics_recall_precision(const long *cm, int n_classes, double *recall, double *precision)
{
    for (int c = 0; c < n_classes; c++) {
        long row = 0, col = 0;
        for (int j = 0; j < n_classes; j++) {
            row += cm[(size_t)c * n_classes + j];
            col += cm[(size_t)j * n_classes + c];
        }
        long diag = cm[(size_t)c * n_classes + c];
        if (recall)
            recall[c] = row ? (double)diag / row : 0;
        if (precision)
            precision[c] = col ? (double)diag / col : 0;
    }
}

double metrics_purity(const long *table, int k, int c, double *per_cluster, int *majority)
{
    long total = 0, hits = 0;
    for (int i = 0; i < k; i++) {
        const long *row = table + (size_t)i * c;
        long size = 0, best = -1;
        int arg = -1;
        for (int j = 0; j < c; j++) {
            size += row[j];
            if (row[j] > best) {
                best = row[j];
                arg = j;
            }
        }
        if (size == 0)
            arg = -1;
        if (per_cluster)
            per_cluster[i] = size ? (double)best / size : 0;
        if (majority)
            majority[i] = arg;
        total += size;
        hits += size ? best : 0;
    }
    return total ? (double)hits / total : 0;
}

/* n choose 2, exact in double for any n that fits in memory. */
static double comb2(long n)
{
    return 0.5 * (double)n * (double)(n - 1);
}

double metrics_ari_table(const long *table, int ka, int kb)
{
    double sum_ij = 0, sum_a = 0, sum_b = 0;
    long n = 0;
    for (int i = 0; i < ka; i++) {
        long a = 0;
        for (int j = 0; j < kb; j++) {
            long v = table[(size_t)i * kb + j];
            a += v;
            sum_ij += comb2(v);
        }
        sum_a += comb2(a);
        n += a;
    }
    for (int j = 0; j < kb; j++) {
        long b = 0;
        for (int i = 0; i < ka; i++)
            b += table[(size_t)i * kb + j];
        sum_b += comb2(b);
    }
    assert(n >= 1);
    double total = comb2(n);
    double expected = total > 0 ? sum_a * sum_b / total : 0;
    double max_index = 0.5 * (sum_a + sum_b);
    double den = max_index - expected;
    /* den = 0 only for two identical trivial partitions (all in one cluster
     * on both sides, or all singletons on both sides; n = 1 is both). */
    if (den == 0)
        return 1.0;
    return (sum_ij - expected) / den;
}

double metrics_ari(const int *la, int ka, const int *lb, int kb, int n)
{
    assert(n >= 1);
    long *t = calloc((size_t)ka * kb, sizeof *t);
    if (!t)
        return NAN;
    metrics_contingency(la, ka, lb, kb, n, t);
    double r = metrics_ari_table(t, ka, kb);
    free(t);
    return r;
}

double metrics_nmi_table(const long *table, int ka, int kb)
{
    long n = 0;
    int used_a = 0, used_b = 0;
    for (int i = 0; i < ka; i++) {
        long a = 0;
        for (int j = 0; j < kb; j++)
            a += table[(size_t)i * kb + j];
        n += a;
        used_a += a > 0;
    }
    for (int j = 0; j < kb; j++) {
        long b = 0;
        for (int i = 0; i < ka; i++)
            b += table[(size_t)i * kb + j];
        used_b += b > 0;
    }
    assert(n >= 1);
    /* Both labelings trivial (one class each): a perfect match. */
    if (used_a == 1 && used_b == 1)
        return 1.0;
    double N = (double)n, h_a = 0, h_b = 0, mi = 0;
    for (int i = 0; i < ka; i++) {
        long a = 0;
        for (int j = 0; j < kb; j++)
            a += table[(size_t)i * kb + j];
        if (a)
            h_a -= (a / N) * log(a / N);
    }
    for (int j = 0; j < kb; j++) {
        long b = 0;
        for (int i = 0; i < ka; i++)
            b += table[(size_t)i * kb + j];
        if (b)
            h_b -= (b / N) * log(b / N);
    }
    for (int i = 0; i < ka; i++) {
        long a = 0;
        for (int j = 0; j < kb; j++)
            a += table[(size_t)i * kb + j];
        for (int j = 0; j < kb; j++) {
            long v = table[(size_t)i * kb + j];
            if (!v)
                continue;
            long b = 0;
            for (int r = 0; r < ka; r++)
                b += table[(size_t)r * kb + j];
            /* p_ij log(p_ij / (p_i p_j)) = (v/N) log(v N / (a b)) */
            mi += (v / N) * log((double)v * N / ((double)a * (double)b));
        }
    }
    if (mi < 0) /* rounding around an independent pair */
        mi = 0;
    if (mi == 0)
        return 0.0;
    return mi / (0.5 * (h_a + h_b));
}

double metrics_nmi(const int *la, int ka, const int *lb, int kb, int n)
{
    assert(n >= 1);
    long *t = calloc((size_t)ka * kb, sizeof *t);
    if (!t)
        return NAN;
    metrics_contingency(la, ka, lb, kb, n, t);
    double r = metrics_nmi_table(t, ka, kb);
    free(t);
    return r;
}

/* ---- silhouette ---- */

/* Rows per GEMM block: the block's distances to all n rows (rows * n floats)
 * stay in L2 while they are summed per cluster. */
#define SIL_BLOCK_FLOATS (256 * 1024)

int metrics_silhouette(const float *X, int n, int d, const int *labels, int k, double *score,
                       double *per_row, char *err)
{
    assert(X && labels && score && n >= 1 && d >= 1 && k >= 1);
    *score = 0;
    int *count = calloc((size_t)k + 1, sizeof(int));
    if (!count)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory for the silhouette");
    for (int i = 0; i < n; i++) {
        assert(labels[i] >= 0 && labels[i] < k);
        count[labels[i]]++;
    }
    int used = 0;
    for (int j = 0; j < k; j++)
        used += count[j] > 0;
    if (used < 2 || used > n - 1) {
        free(count);
        return strata_fail(err, STRATA_E_ARG,
                           "the silhouette needs 2..n-1 non-empty clusters (got %d for %d rows)",
                           used, n);
    }
    /* Rows are sorted by cluster (a counting sort), so the distances of one
     * row to a cluster are a contiguous run and sum without scatter. */
    int *start = malloc(sizeof(int) * ((size_t)k + 1));
    int *order = malloc(sizeof(int) * (size_t)n);
    float *Xs = malloc(sizeof(float) * (size_t)n * d);
    float *xn = malloc(sizeof(float) * (size_t)n);
    double *mean = calloc((size_t)d, sizeof(double));
    int B = SIL_BLOCK_FLOATS / n;
    B = B < 8 ? 8 : (B > n ? n : B);
    float *G = malloc(sizeof(float) * (size_t)B * n);
    double *sums = malloc(sizeof(double) * (size_t)k);
    double *colsum = calloc((size_t)n * k, sizeof(double));
    int *cl = malloc(sizeof(int) * (size_t)n);
    if (!start || !order || !Xs || !xn || !mean || !G || !sums || !colsum || !cl) {
        free(start); free(order); free(Xs); free(xn); free(mean); free(G); free(sums);
        free(colsum); free(cl); free(count);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory for the silhouette of %d rows",
                           n);
    }
    start[0] = 0;
    for (int j = 0; j < k; j++)
        start[j + 1] = start[j] + count[j];
    for (int j = 0; j < k; j++)
        count[j] = start[j];
    for (int i = 0; i < n; i++) {
        cl[count[labels[i]]] = labels[i];
        order[count[labels[i]]++] = i;
    }
    for (int i = 0; i < n; i++)
        for (int t = 0; t < d; t++)
            mean[t] += X[(size_t)i * d + t];
    for (int t = 0; t < d; t++)
        mean[t] /= n;
    for (int s = 0; s < n; s++) {
        const float *x = X + (size_t)order[s] * d;
        float *y = Xs + (size_t)s * d;
        double nn = 0;
        for (int t = 0; t < d; t++) {
            y[t] = (float)(x[t] - mean[t]);
            nn += (double)y[t] * y[t];
        }
        xn[s] = (float)nn;
    }

    /* Distances are symmetric, so each block of rows [s0, s1) is multiplied
     * only with the rows from s0 on (half the GEMM work overall): a row's
     * distances to later rows are summed for it directly, and handed to
     * those later rows through colsum (per row, per cluster of the giver);
     * its distances to earlier rows arrived the same way. */
    double total = 0;
    for (int s0 = 0; s0 < n; s0 += B) {
        int m = n - s0 < B ? n - s0 : B, s1 = s0 + m, w = n - s0;
        const float *Xb = Xs + (size_t)s0 * d;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, w, d, -2.0f, Xb, d, Xb, d, 0.0f,
                    G, w);
        for (int r = 0; r < m; r++) {
            int s = s0 + r, own = cl[s];
            float *g = G + (size_t)r * w; /* g[j - s0] = distance to row j */
            for (int j = 0; j < w; j++) {
                /* fmaxf, not a conditional: GCC turns `v > 0 ? sqrtf(v) : 0`
                 * into a root of every lane then a mask, and the root of a
                 * negative lane raises the invalid-operation flag. */
                g[j] = sqrtf(fmaxf(g[j] + xn[s] + xn[s0 + j], 0.0f));
            }
            g[r] = 0.0f; /* a row's distance to itself, exactly */
            for (int j = s1; j < n; j++)
                colsum[(size_t)j * k + own] += g[j - s0];
            for (int c = 0; c < k; c++) {
                double acc = colsum[(size_t)s * k + c];
                for (int j = start[c] > s0 ? start[c] : s0; j < start[c + 1]; j++)
                    acc += g[j - s0];
                sums[c] = acc;
            }
            int size = start[own + 1] - start[own];
            double sv = 0;
            if (size > 1) {
                double a = sums[own] / (size - 1), b = INFINITY;
                for (int c = 0; c < k; c++) {
                    int sz = start[c + 1] - start[c];
                    if (c != own && sz > 0 && sums[c] / sz < b)
                        b = sums[c] / sz;
                }
                double mx = a > b ? a : b;
                sv = mx > 0 ? (b - a) / mx : 0;
            }
            total += sv;
            if (per_row)
                per_row[order[s]] = sv;
        }
    }
    *score = total / n;
    free(start); free(order); free(Xs); free(xn); free(mean); free(G); free(sums);
    free(colsum); free(cl); free(count);
    return STRATA_OK;
}
