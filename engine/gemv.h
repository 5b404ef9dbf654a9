/*
 * gemv.h — Y += X · Bᵀ when X has only a few rows: a dense layer on one
 * image, or a handful.
 *
 * sgemm (sgemm.h) tiles C in 48 columns; a dense layer on one image has one,
 * so 47 of every 48 multiply-adds were thrown away and the layer's weights
 * were repacked on every call. Here every element of Y is a dot product of a
 * row of X with a row of B, read where they are: B (the weights, [n × k],
 * the form PyTorch's Linear and strata's export use) streams past once, and
 * the few rows of X stay in cache.
 *
 * Each dot product is summed in 16 lanes over k, then across the lanes, the
 * same way whatever the thread count and whichever other rows share the
 * call: an image's result does not depend on the batch it came in.
 */
#ifndef STRATA_GEMV_H
#define STRATA_GEMV_H

#include <stddef.h>

/* The most rows of X gemv_rows_bt is meant for: beyond it sgemm's tiles are
 * full enough to win. */
#define GEMV_MAX_ROWS 16

/* 1 when the AVX-512 kernel can run (the CPU has it, and sgemm is enabled:
 * sgemm_set_enabled(0) turns both off for tests). Can't fail. */
int gemv_available(void);

/* Y[i][j] += Σ_k X[i][k] · B[j][k] for i < m, j < n: X is row-major [m × k]
 * with row stride ldx, B row-major [n × k] with row stride ldb, Y row-major
 * [m × n] with row stride ldy. Reads X and B, writes only Y's m × n
 * elements. Runs on the engine's threads (parallel.h), sharing the rows of
 * B. Requires gemv_available(); any m ≥ 0 works (m > GEMV_MAX_ROWS is only
 * slower than sgemm). Allocates nothing; can't fail. */
void gemv_rows_bt(int m, int n, int k, const float *X, size_t ldx, const float *B, size_t ldb,
                  float *Y, size_t ldy);

#endif
