/*
 * gemv.c — Y += X · Bᵀ for a few rows of X, AVX-512 (see gemv.h).
 *
 * A step takes 4 rows of B and up to 4 rows of X and keeps their 16 dot
 * products in 16 zmm registers: per 16 floats of k, 4 + 4 loads feed 16
 * fused multiply-adds. On one image the step is 4 + 1 loads for 4
 * multiply-adds and the layer runs at the speed B streams from memory,
 * which is what a dense layer on one image costs anywhere.
 *
 * The last k % 16 floats are read through a mask (lanes past k load zero
 * and never touch memory). Threads share the rows of B in steps of 4;
 * every dot product is computed whole by one thread.
 */
#include "gemv.h"

#include <assert.h>
#include <immintrin.h>
#include <stdint.h>

#include "parallel.h"
#include "sgemm.h"

/* Rows of B, and rows of X, per step. */
#define STEP_ROWS 4
#define STEP_IMAGES 4

int gemv_available(void)
{
    return sgemm_available();
}

#define GEMV_TARGET __attribute__((target("avx512f,fma")))

/* Y[i][j] += X[i]·B[j] for the R rows of B at b and the I rows of X at x. */
GEMV_TARGET static inline __attribute__((always_inline)) void
dot_step(const int R, const int I, int k, const float *x, size_t ldx, const float *b, size_t ldb,
         float *y, size_t ldy)
{
    __m512 acc[STEP_ROWS][STEP_IMAGES];
    for (int r = 0; r < R; r++)
        for (int i = 0; i < I; i++)
            acc[r][i] = _mm512_setzero_ps();
    int kk = 0;
    for (; kk + 16 <= k; kk += 16) {
        __m512 xv[STEP_IMAGES];
        for (int i = 0; i < I; i++)
            xv[i] = _mm512_loadu_ps(x + (size_t)i * ldx + kk);
        for (int r = 0; r < R; r++) {
            const __m512 bv = _mm512_loadu_ps(b + (size_t)r * ldb + kk);
            for (int i = 0; i < I; i++)
                acc[r][i] = _mm512_fmadd_ps(bv, xv[i], acc[r][i]);
        }
    }
    if (kk < k) {
        const __mmask16 tail = (__mmask16)((1u << (k - kk)) - 1);
        __m512 xv[STEP_IMAGES];
        for (int i = 0; i < I; i++)
            xv[i] = _mm512_maskz_loadu_ps(tail, x + (size_t)i * ldx + kk);
        for (int r = 0; r < R; r++) {
            const __m512 bv = _mm512_maskz_loadu_ps(tail, b + (size_t)r * ldb + kk);
            for (int i = 0; i < I; i++)
                acc[r][i] = _mm512_fmadd_ps(bv, xv[i], acc[r][i]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int i = 0; i < I; i++)
            y[(size_t)i * ldy + r] += _mm512_reduce_add_ps(acc[r][i]);
}

/* The rows of X in groups of STEP_IMAGES against R rows of B. */
GEMV_TARGET static void dot_rows(const int R, int m, int k, const float *X, size_t ldx,
                                 const float *b, size_t ldb, float *y, size_t ldy)
{
    int i = 0;
    for (; i + STEP_IMAGES <= m; i += STEP_IMAGES)
        dot_step(R, STEP_IMAGES, k, X + (size_t)i * ldx, ldx, b, ldb, y + (size_t)i * ldy, ldy);
    const float *x = X + (size_t)i * ldx;
    float *yi = y + (size_t)i * ldy;
    switch (m - i) {
    case 3: dot_step(R, 3, k, x, ldx, b, ldb, yi, ldy); break;
    case 2: dot_step(R, 2, k, x, ldx, b, ldb, yi, ldy); break;
    case 1: dot_step(R, 1, k, x, ldx, b, ldb, yi, ldy); break;
    default: break;
    }
}

struct gemv_job {
    int m, n, k;
    const float *X, *B;
    size_t ldx, ldb;
    float *Y;
    size_t ldy;
};

/* Steps [s0, s1): rows 4·s0 … of B. */
GEMV_TARGET static void gemv_piece(void *ctx, int s0, int s1)
{
    const struct gemv_job *jb = ctx;
    for (int s = s0; s < s1; s++) {
        const int j = s * STEP_ROWS;
        const float *b = jb->B + (size_t)j * jb->ldb;
        float *y = jb->Y + j;
        switch (jb->n - j < STEP_ROWS ? jb->n - j : STEP_ROWS) {
        case 4: dot_rows(4, jb->m, jb->k, jb->X, jb->ldx, b, jb->ldb, y, jb->ldy); break;
        case 3: dot_rows(3, jb->m, jb->k, jb->X, jb->ldx, b, jb->ldb, y, jb->ldy); break;
        case 2: dot_rows(2, jb->m, jb->k, jb->X, jb->ldx, b, jb->ldb, y, jb->ldy); break;
        default: dot_rows(1, jb->m, jb->k, jb->X, jb->ldx, b, jb->ldb, y, jb->ldy); break;
        }
    }
}

void gemv_rows_bt(int m, int n, int k, const float *X, size_t ldx, const float *B, size_t ldb,
                  float *Y, size_t ldy)
{
    assert(gemv_available() && m >= 0 && n >= 0 && k >= 0);
    if (m == 0 || n == 0 || k == 0)
        return;
    assert(X && B && Y);
    const struct gemv_job jb = {.m = m, .n = n, .k = k, .X = X, .B = B, .ldx = ldx, .ldb = ldb,
                                .Y = Y, .ldy = ldy};
    const int steps = (n + STEP_ROWS - 1) / STEP_ROWS;
    /* a step reads 4 rows of B and the rows of X */
    parallel_for_grain(steps, parallel_grain((size_t)(STEP_ROWS + m) * k), gemv_piece,
                       (void *)&jb);
}
