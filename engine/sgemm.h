/*
 * sgemm.h — strata's own single-precision matrix product for the forward
 * pass, with AVX-512 kernels:
 *
 *   C[M × N] = A[M × K] · B[K × N]  (+ C)  (+ bias per row)  (then a clamp)
 *
 * written for the shapes a convolution gives: A is the weights (row-major,
 * read in place: nothing is copied), B is whatever the caller packs on
 * demand (for a convolution, the input taps: the im2col matrix is never
 * built), and the columns of C may be split in equal blocks that live at a
 * stride of their own (for a convolution, the images of a batch: one product
 * covers the whole batch, so a 7×7 layer is not 49 columns wide).
 *
 * Where the CPU has no AVX-512 (or sgemm_set_enabled(0) was called, which
 * the tests do to run the fallback), sgemm_available() is 0 and the caller
 * keeps its BLAS path.
 *
 * Results do not depend on the thread count: every element of C is summed
 * over K in the same order whichever thread computes it.
 */
#ifndef STRATA_SGEMM_H
#define STRATA_SGEMM_H

#include <stddef.h>

/* Columns per packed panel of B: the width of the kernel's tile of C. */
#define SGEMM_NR 48
/* Rows of A per tile of C. */
#define SGEMM_MR 8
/* Rows of B packed at a time (a slice of K). */
#define SGEMM_KC 192
/* Columns of B packed at a time: the packer is never asked for more. */
#define SGEMM_NC (5 * SGEMM_NR)

/* Packs rows [k0, k0 + kc) and columns [j0, j0 + nc) of B into dst as
 * ⌈nc / SGEMM_NR⌉ panels, one after the other; panel p holds columns
 * j0 + p·NR … j0 + p·NR + NR − 1 as kc rows of NR floats (row kk at
 * dst + p·kc·NR + kk·NR), columns past nc set to zero. Called from several
 * threads at once with different dst: must only read shared state. */
typedef void (*sgemm_pack_fn)(const void *ctx, int k0, int kc, int j0, int nc, float *dst);

/* Optional, beside the packer: where the panel of columns j0 … j0 + ncols − 1
 * (ncols ≤ SGEMM_NR) can be read in place. Returns a pointer to B[k0][j0]
 * from which the kernel reads ⌈ncols / 16⌉ · 16 consecutive floats, and as
 * many each later row *ldb floats further on (for every row to K): those
 * past ncols must be readable and finite (their products are computed and
 * dropped). Or NULL to have the panel packed. Same threading rule as the
 * packer. */
typedef const float *(*sgemm_direct_fn)(const void *ctx, int k0, int j0, int ncols,
                                        size_t *ldb);

/* Where the columns of C are: column j of row m is at
 *   c + (j / block_cols) · block_stride + m · ldc + j % block_cols. */
struct sgemm_out {
    float *c;
    size_t ldc;
    int block_cols;
    size_t block_stride;
    const float *bias;  /* bias[m] added to row m, or NULL */
    int accumulate;     /* 1: add onto what C holds; 0: overwrite it */
    int clamp;          /* 1: min(max(·, lo), hi) on the final value (ReLU: 0, +inf) */
    float lo, hi;
    /* 1: the columns come in panels of SGEMM_NR that hold 2×2 windows (a
     * convolution with a max pooling after it): an image's windows in
     * row-major order, SGEMM_POOL_WINDOWS a panel, panel columns 2w and
     * 2w + 1 the upper taps of the panel's window w, columns 24 + 2w and
     * 24 + 2w + 1 its lower taps (zero past the image's last window). What
     * is stored is each window's maximum, after the bias and the clamp, as
     * MaxPool takes it (the first of equal values, NaN never taken): row m's
     * maximum of window w of image n goes to
     *   c + n · block_stride + m · ldc + w,
     * the images pool_windows windows (⌈pool_windows / 12⌉ panels) each.
     * block_cols is unused. Needs K ≤ SGEMM_KC and accumulate 0. */
    int pool;
    int pool_windows;
};

/* Windows a pooled panel holds (sgemm_out.pool). */
#define SGEMM_POOL_WINDOWS (SGEMM_NR / 4)

/* 1 when the AVX-512 kernels can run (and are enabled). Can't fail. */
int sgemm_available(void);

/* Turns the kernels off (0) or back on where the CPU has them (1): lets the
 * tests run the fallback paths on any machine. Process-wide; set it while no
 * product runs. Can't fail. */
void sgemm_set_enabled(int on);

/* Floats of scratch sgemm_run needs for a product with these sizes when run
 * on up to `threads` threads (64-byte aligned by the caller). */
size_t sgemm_scratch(int M, int N, int K, int threads);

/* C = A · B as described above. A is row-major with row stride lda; B comes
 * from `pack` (and `direct`, which may be NULL), given pack_ctx. scratch is
 * 64-byte aligned, scratch_len floats, at least sgemm_scratch(M, N, K, 1).
 * Runs on the engine's threads (parallel.h), using at most as many as the
 * scratch was sized for. Requires sgemm_available(). Can't fail. */
void sgemm_run(int M, int N, int K, const float *A, size_t lda, sgemm_pack_fn pack,
               sgemm_direct_fn direct, const void *pack_ctx, const struct sgemm_out *out,
               float *scratch, size_t scratch_len);

/* A packer for a plain row-major B [K × N] with row stride ldb: ctx points to
 * a struct sgemm_dense_b. */
struct sgemm_dense_b {
    const float *b;
    size_t ldb;
};
void sgemm_pack_dense(const void *ctx, int k0, int kc, int j0, int nc, float *dst);
/* Whole panels only (a plain B may end right after its last column). */
const float *sgemm_direct_dense(const void *ctx, int k0, int j0, int ncols, size_t *ldb);

/* A packer for B = Aᵀ where A is a row-major [N × K] matrix with row stride
 * lda (B[k][j] = A[j][k]): ctx points to a struct sgemm_dense_b whose b and
 * ldb describe A. A weight gradient dY · colᵀ packs col this way. Compiled
 * for AVX-512, like the kernel: only where sgemm_available(). */
void sgemm_pack_transposed(const void *ctx, int k0, int kc, int j0, int nc, float *dst);

#endif
