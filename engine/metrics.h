/*
 * metrics.h — how good a clustering is, and how well it matches the true
 * classes: contingency table, purity, adjusted Rand index, normalised mutual
 * information, confusion matrix and accuracy, silhouette.
 *
 * Labels are ints in 0..k-1 (clusters) and 0..c-1 (classes); a label value
 * that never occurs is allowed (an empty cluster, a class absent from a
 * sample) and is ignored by the scores, which only see the non-empty rows and
 * columns of the contingency table. Definitions and special cases follow
 * scikit-learn (adjusted_rand_score, normalized_mutual_info_score with the
 * arithmetic mean, silhouette_score with the euclidean metric), computed in
 * double from exact integer counts.
 */
#ifndef STRATA_METRICS_H
#define STRATA_METRICS_H

#include "status.h"

/* table[a*kb + b] = number of i with la[i] = a and lb[i] = b (ka x kb,
 * caller-owned, overwritten). Labels out of range are a programmer error
 * (asserted). Can't fail. */
void metrics_contingency(const int *la, int ka, const int *lb, int kb, int n, long *table);

/* The confusion matrix of a classifier: metrics_contingency(truth, pred),
 * rows = true class, columns = predicted class, n_classes x n_classes. */
void metrics_confusion(const int *truth, const int *pred, int n, int n_classes, long *cm);

/* Share of i with truth[i] == pred[i]; 0 when n = 0. */
double metrics_accuracy(const int *truth, const int *pred, int n);

/* Per-class recall (diagonal / row sum) and precision (diagonal / column sum)
 * from a confusion matrix; a class with an empty row (or column) gets 0.
 * Either output may be NULL. */
void metrics_recall_precision(const long *cm, int n_classes, double *recall, double *precision);

/* Purity of clusters against classes, from a k x c contingency table
 * (clusters as rows): overall = sum over clusters of the majority class count
 * / n. Optionally per_cluster[k] = majority count / cluster size (0 for an
 * empty cluster) and majority[k] = that class (lowest index on ties; -1 for an
 * empty cluster). Returns 0 when the table is empty. */
double metrics_purity(const long *table, int k, int c, double *per_cluster, int *majority);

/* Adjusted Rand index of two labelings (Hubert & Arabie 1985):
 *   ARI = (sum_ij C(n_ij,2) - E) / ((sum_i C(a_i,2) + sum_j C(b_j,2)) / 2 - E),
 *   E = sum_i C(a_i,2) * sum_j C(b_j,2) / C(n,2),
 * a_i, b_j the row and column sums. 1 for identical partitions (up to
 * renaming), about 0 for independent ones, can be negative. When the
 * denominator is 0 (both labelings put everything in one cluster, or both
 * put every item in its own) the partitions are identical and 1 is returned,
 * as scikit-learn does. n >= 1 (asserted). */
double metrics_ari(const int *la, int ka, const int *lb, int kb, int n);

/* Normalised mutual information with the arithmetic mean:
 *   NMI = I(A;B) / ((H(A) + H(B)) / 2), natural logs (the base cancels).
 * 1 when both labelings have a single class (a perfect match of trivial
 * partitions), 0 when I = 0 otherwise, as scikit-learn does. n >= 1. */
double metrics_nmi(const int *la, int ka, const int *lb, int kb, int n);

/* metrics_ari and metrics_nmi build the ka x kb table on the heap and return
 * NaN if that allocation fails. The two below take a table already built
 * (ka x kb) and cannot fail. */
double metrics_ari_table(const long *table, int ka, int kb);
double metrics_nmi_table(const long *table, int ka, int kb);

/* Mean silhouette coefficient (Rousseeuw 1987) of the n rows of X (n x d)
 * labelled 0..k-1, euclidean distances: for row i in cluster A,
 *   a(i) = mean distance to the other rows of A,
 *   b(i) = min over other non-empty clusters B of the mean distance to B,
 *   s(i) = (b - a) / max(a, b), and s(i) = 0 when A holds only i.
 * Exact O(n^2 d): distances of a block of rows to all rows come from
 * cblas_sgemm (||x||^2 - 2 x.y + ||y||^2 on mean-centred float data, which
 * keeps the norms small; a coincident pair is exactly 0), sums in double.
 * Written to *score; per-row values to per_row[n] when it is not NULL.
 * Fails with STRATA_E_ARG when fewer than 2 or more than n - 1 clusters are
 * non-empty (the score is undefined, as in scikit-learn), or STRATA_E_NOMEM.
 * Symmetry halves the GEMM work. Memory: O(n * (d + k)) allocated once.
 * Measured: n = 2400, d = 512 in ~0.04 s; n = 3000, d = 2048 in ~0.2 s
 * (2 cores, OpenBLAS threads). */
int metrics_silhouette(const float *X, int n, int d, const int *labels, int k, double *score,
                       double *per_row, char *err);

#endif
