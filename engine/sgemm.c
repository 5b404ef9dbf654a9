/*
 * sgemm.c — C = A · B for the forward pass, AVX-512 (see sgemm.h).
 *
 * Blocking. The columns of C are shared among the threads (or, when there
 * are too few columns, the rows). Each thread walks its columns in blocks of
 * SGEMM_NC; for each block and each slice of K (SGEMM_KC rows) it has the
 * caller pack that slice of B into panels of SGEMM_NR columns (kc × 48
 * floats, 36 KB, which stays in the 48 KB L1 cache while every row tile of
 * A streams past it) — or, where the caller says a panel can be read in
 * place (`direct`: a 1×1 convolution's input already is B), reads it there
 * and packs only the others — then runs the kernel over every (row tile,
 * panel). A is read in place: a row tile is SGEMM_MR rows of kc consecutive
 * floats, each float broadcast once per panel — eight short sequential
 * streams the prefetchers follow, with the whole M × kc slice of A in L2.
 *
 * The kernel holds an 8 × 48 tile of C in 24 zmm registers and, for each k,
 * loads three vectors of B and broadcasts eight values of A: 24 fused
 * multiply-adds per 11 loads. The first K slice starts from zero (plus the
 * bias and, with accumulate, what C held); later slices add onto C; the last
 * applies the clamp (a fused ReLU or ReLU6). Sums over K are in the same
 * order for every element whatever the split, so results do not depend on
 * the thread count.
 *
 * Pooled panels (sgemm_out.pool): a convolution with a 2×2 max pooling
 * after it packs each panel as the upper and the lower taps of 12 windows;
 * the kernel takes the windows' maxima from its registers (even and odd
 * columns of both halves, gathered by permutes) and stores 12 per row of C,
 * so the convolution's own output never reaches memory.
 *
 * Edges: rows past M read row 0 of the tile again and are not stored;
 * columns past N are zero in the packed panel and masked off when storing;
 * a tile that spans two or more column blocks (images) is stored one block
 * at a time, each through a mask (masked lanes are never touched).
 */
#include "sgemm.h"

#include <assert.h>
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "parallel.h"
#include "transpose8.h"

static int sgemm_enabled = 1;

int sgemm_available(void)
{
    static int cpu = -1;
    if (cpu < 0) {
        __builtin_cpu_init();
        cpu = __builtin_cpu_supports("avx512f") ? 1 : 0;
    }
    return cpu && sgemm_enabled;
}

void sgemm_set_enabled(int on)
{
    sgemm_enabled = on != 0;
}

static int ceil_div(int a, int b)
{
    return (a + b - 1) / b;
}

size_t sgemm_scratch(int M, int N, int K, int threads)
{
    (void)M, (void)N, (void)K;
    if (threads < 1)
        threads = 1;
    return (size_t)threads * SGEMM_KC * SGEMM_NC;
}

void sgemm_pack_dense(const void *ctx, int k0, int kc, int j0, int nc, float *dst)
{
    const struct sgemm_dense_b *d = ctx;
    for (int p = 0; p * SGEMM_NR < nc; p++) {
        const int w = nc - p * SGEMM_NR < SGEMM_NR ? nc - p * SGEMM_NR : SGEMM_NR;
        float *panel = dst + (size_t)p * kc * SGEMM_NR;
        for (int kk = 0; kk < kc; kk++) {
            const float *src = d->b + (size_t)(k0 + kk) * d->ldb + j0 + p * SGEMM_NR;
            float *row = panel + (size_t)kk * SGEMM_NR;
            memcpy(row, src, (size_t)w * sizeof *row);
            memset(row + w, 0, (size_t)(SGEMM_NR - w) * sizeof *row);
        }
    }
}

#define SGEMM_TARGET __attribute__((target("avx512f,fma")))

/* dst[i · SGEMM_NR + l] = src[l · ld + i] for i, l < 8. */
SGEMM_TARGET static inline void transpose_8x8(const float *src, size_t ld, float *dst)
{
    __m256 r[8];
    for (int l = 0; l < 8; l++)
        r[l] = _mm256_loadu_ps(src + (size_t)l * ld);
    transpose8x8_ps(r);
    for (int i = 0; i < 8; i++)
        _mm256_storeu_ps(dst + (size_t)i * SGEMM_NR, r[i]);
}

SGEMM_TARGET void sgemm_pack_transposed(const void *ctx, int k0, int kc, int j0, int nc,
                                        float *dst)
{
    const struct sgemm_dense_b *d = ctx;
    for (int p = 0; p * SGEMM_NR < nc; p++) {
        const int w = nc - p * SGEMM_NR < SGEMM_NR ? nc - p * SGEMM_NR : SGEMM_NR;
        float *panel = dst + (size_t)p * kc * SGEMM_NR;
        /* 8 rows of A at a time, in 8 × 8 blocks transposed in registers
         * (a weight gradient's B is the input's columns, read across: done
         * a float at a time, this packing took 7 % of a residual model's
         * training step) */
        int jj = 0;
        for (; jj + 8 <= w; jj += 8) {
            const float *src = d->b + (size_t)(j0 + p * SGEMM_NR + jj) * d->ldb + k0;
            int kk = 0;
            for (; kk + 8 <= kc; kk += 8)
                transpose_8x8(src + kk, d->ldb, panel + (size_t)kk * SGEMM_NR + jj);
            for (; kk < kc; kk++) {
                float *row = panel + (size_t)kk * SGEMM_NR + jj;
                for (int l = 0; l < 8; l++)
                    row[l] = src[(size_t)l * d->ldb + kk];
            }
        }
        for (; jj < w; jj++) {
            const float *src = d->b + (size_t)(j0 + p * SGEMM_NR + jj) * d->ldb + k0;
            for (int kk = 0; kk < kc; kk++)
                panel[(size_t)kk * SGEMM_NR + jj] = src[kk];
        }
        for (int kk = 0; kk < kc && w < SGEMM_NR; kk++)
            memset(panel + (size_t)kk * SGEMM_NR + w, 0, (size_t)(SGEMM_NR - w) * sizeof *panel);
    }
}

const float *sgemm_direct_dense(const void *ctx, int k0, int j0, int ncols, size_t *ldb)
{
    const struct sgemm_dense_b *d = ctx;
    if (ncols != SGEMM_NR)
        return NULL;
    *ldb = d->ldb;
    return d->b + (size_t)k0 * d->ldb + j0;
}

/* ---- the kernel ----------------------------------------------------------- */

/* Stores one row's three vectors through `mask` (bit l: lane l of the 48),
 * lane l going to base + l. */
SGEMM_TARGET static inline void store_row(float *base, const __m512 acc[3], uint64_t mask,
                                          int add_old, float bias, int clamp, float lo, float hi)
{
    const __m512 b = _mm512_set1_ps(bias), vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    for (int v = 0; v < 3; v++) {
        const __mmask16 m = (__mmask16)(mask >> (16 * v));
        if (!m)
            continue;
        /* whole vectors without masks: a masked store is slow on AMD's
         * cores, even with every lane set */
        const int whole = m == 0xffff;
        __m512 x = _mm512_add_ps(acc[v], b);
        if (add_old)
            x = _mm512_add_ps(x, whole ? _mm512_loadu_ps(base + 16 * v)
                                       : _mm512_maskz_loadu_ps(m, base + 16 * v));
        if (clamp)
            x = _mm512_min_ps(_mm512_max_ps(x, vlo), vhi);
        if (whole)
            _mm512_storeu_ps(base + 16 * v, x);
        else
            _mm512_mask_storeu_ps(base + 16 * v, m, x);
    }
}

/* A pooled panel's row (sgemm_out.pool): acc[0] and the low half of acc[1]
 * are the 12 windows' upper taps, the high half of acc[1] and acc[2] their
 * lower taps; the windows' maxima go to dst through mask. */
SGEMM_TARGET static inline void store_pooled_row(float *dst, const __m512 acc[3], __mmask16 mask,
                                                 float bias, int clamp, float lo, float hi)
{
    const __m512 b = _mm512_set1_ps(bias), vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    __m512 x[3];
    for (int v = 0; v < 3; v++) {
        x[v] = _mm512_add_ps(acc[v], b);
        if (clamp)
            x[v] = _mm512_min_ps(_mm512_max_ps(x[v], vlo), vhi);
    }
    /* the even and odd columns of each row, window by window */
    const __m512i up_even = _mm512_set_epi32(0, 0, 0, 0, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i up_odd = _mm512_set_epi32(0, 0, 0, 0, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    const __m512i low_even =
        _mm512_set_epi32(0, 0, 0, 0, 30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8);
    const __m512i low_odd =
        _mm512_set_epi32(0, 0, 0, 0, 31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9);
    /* taps in MaxPool's order: upper left, upper right, lower left, lower
     * right; _mm512_max_ps(t, m) is t > m ? t : m */
    __m512 m = _mm512_max_ps(_mm512_permutex2var_ps(x[0], up_even, x[1]),
                             _mm512_set1_ps(-__builtin_inff()));
    m = _mm512_max_ps(_mm512_permutex2var_ps(x[0], up_odd, x[1]), m);
    m = _mm512_max_ps(_mm512_permutex2var_ps(x[1], low_even, x[2]), m);
    m = _mm512_max_ps(_mm512_permutex2var_ps(x[1], low_odd, x[2]), m);
    _mm512_mask_storeu_ps(dst, mask, m);
}

/* The tile of C at rows m0…m0+mr−1, columns j0…j0+ncols−1 (ncols ≤ 16·NV),
 * from kc columns of A starting at `a` (row r at a + r·lda) and one packed
 * panel of B, of which the first NV vectors are used: a narrow last tile
 * (a 7×7 layer at batch 1 has 49 columns: 48 + 1) costs what it computes. */
SGEMM_TARGET static inline __attribute__((always_inline)) void
sgemm_tile(const int NV, int kc, const float *a, size_t lda, int mr, const float *bp, size_t ldb,
           const struct sgemm_out *o, int m0, int j0, int ncols, int first, int last)
{
    const float *ar[SGEMM_MR];
    for (int r = 0; r < SGEMM_MR; r++)
        ar[r] = a + (size_t)(r < mr ? r : 0) * lda;
    __m512 c[SGEMM_MR][3];
    for (int r = 0; r < SGEMM_MR; r++)
        c[r][0] = c[r][1] = c[r][2] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++, bp += ldb) {
        __m512 b[3];
        for (int v = 0; v < NV; v++)
            b[v] = _mm512_loadu_ps(bp + 16 * v);
#pragma GCC unroll 8
        for (int r = 0; r < SGEMM_MR; r++) {
            const __m512 av = _mm512_set1_ps(ar[r][k]);
            for (int v = 0; v < NV; v++)
                c[r][v] = _mm512_fmadd_ps(av, b[v], c[r][v]);
        }
    }

    const int add_old = !first || o->accumulate, clamp = last && o->clamp;
    if (o->pool) {
        /* a whole panel (j0 is a multiple of SGEMM_NR), in one slice of K */
        const int p = j0 / SGEMM_NR;
        const int per_image = (o->pool_windows + SGEMM_POOL_WINDOWS - 1) / SGEMM_POOL_WINDOWS;
        const int w0 = p % per_image * SGEMM_POOL_WINDOWS;
        const int count = o->pool_windows - w0 < SGEMM_POOL_WINDOWS ? o->pool_windows - w0
                                                                   : SGEMM_POOL_WINDOWS;
        float *base = o->c + (size_t)(p / per_image) * o->block_stride + (size_t)m0 * o->ldc + w0;
        for (int r = 0; r < mr; r++)
            store_pooled_row(base + (size_t)r * o->ldc, c[r], (__mmask16)((1u << count) - 1),
                             o->bias ? o->bias[m0 + r] : 0.0f, o->clamp, o->lo, o->hi);
        return;
    }
    /* one store per column block the tile touches */
    for (int j = j0; j < j0 + ncols;) {
        const int blk = j / o->block_cols, in_blk = j % o->block_cols;
        int end = j0 + ncols;
        if (end - j > o->block_cols - in_blk)
            end = j + (o->block_cols - in_blk);
        const int lane0 = j - j0, lanes = end - j;
        const uint64_t mask = ((1ull << lanes) - 1) << lane0; /* lanes ≤ 48 */
        /* lane l of the tile goes to base + l */
        float *base = o->c + (size_t)blk * o->block_stride + (size_t)m0 * o->ldc + in_blk - lane0;
        for (int r = 0; r < mr; r++)
            store_row(base + (size_t)r * o->ldc, c[r], mask, add_old,
                      first && o->bias ? o->bias[m0 + r] : 0.0f, clamp, o->lo, o->hi);
        j = end;
    }
}

SGEMM_TARGET static void sgemm_kernel(int kc, const float *a, size_t lda, int mr, const float *bp,
                                      size_t ldb, const struct sgemm_out *o, int m0, int j0,
                                      int ncols, int first, int last)
{
    if (ncols > 32 || o->pool)
        sgemm_tile(3, kc, a, lda, mr, bp, ldb, o, m0, j0, ncols, first, last);
    else if (ncols > 16)
        sgemm_tile(2, kc, a, lda, mr, bp, ldb, o, m0, j0, ncols, first, last);
    else
        sgemm_tile(1, kc, a, lda, mr, bp, ldb, o, m0, j0, ncols, first, last);
}

/* ---- the loops ------------------------------------------------------------ */

struct sgemm_job {
    int M, N, K;
    const float *A;
    size_t lda;
    sgemm_pack_fn pack;
    sgemm_direct_fn direct;
    const void *pack_ctx;
    const struct sgemm_out *out;
    float *scratch;
    int pieces;
    int split_rows; /* 1: pieces share the rows (each does every column) */
};

static void sgemm_block(const struct sgemm_job *jb, int m_lo, int m_hi, int j_lo, int j_hi,
                        float *bp)
{
    for (int jc = j_lo; jc < j_hi; jc += SGEMM_NC) {
        const int nc = j_hi - jc < SGEMM_NC ? j_hi - jc : SGEMM_NC;
        for (int pc = 0; pc < jb->K; pc += SGEMM_KC) {
            const int kc = jb->K - pc < SGEMM_KC ? jb->K - pc : SGEMM_KC;
            const int first = pc == 0, last = pc + kc == jb->K;
            /* without `direct`, the whole block is packed at once: the
             * packer's own work per call (finding where each column's taps
             * are) is shared by more columns */
            if (!jb->direct)
                jb->pack(jb->pack_ctx, pc, kc, jc, nc, bp);
            for (int jr = 0; jr < nc; jr += SGEMM_NR) {
                const int ncols = nc - jr < SGEMM_NR ? nc - jr : SGEMM_NR;
                size_t ldb = SGEMM_NR;
                const float *panel = bp + (size_t)(jr / SGEMM_NR) * kc * SGEMM_NR;
                if (jb->direct) {
                    panel = jb->direct(jb->pack_ctx, pc, jc + jr, ncols, &ldb);
                    if (!panel) {
                        ldb = SGEMM_NR;
                        jb->pack(jb->pack_ctx, pc, kc, jc + jr, ncols, bp);
                        panel = bp;
                    }
                }
                for (int ir = m_lo; ir < m_hi; ir += SGEMM_MR) {
                    const int mr = m_hi - ir < SGEMM_MR ? m_hi - ir : SGEMM_MR;
                    sgemm_kernel(kc, jb->A + (size_t)ir * jb->lda + pc, jb->lda, mr, panel, ldb,
                                 jb->out, ir, jc + jr, ncols, first, last);
                }
            }
        }
    }
}

/* Piece i of jb->pieces: a share of the column tiles, or of the row tiles. */
static void sgemm_piece(void *ctx, int i0, int i1)
{
    const struct sgemm_job *jb = ctx;
    float *bp = jb->scratch + (size_t)i0 * SGEMM_KC * SGEMM_NC;
    for (int i = i0; i < i1; i++) {
        if (jb->split_rows) {
            const int tiles = ceil_div(jb->M, SGEMM_MR);
            const int t0 = tiles * i / jb->pieces, t1 = tiles * (i + 1) / jb->pieces;
            const int m1 = t1 * SGEMM_MR < jb->M ? t1 * SGEMM_MR : jb->M;
            if (t0 * SGEMM_MR < m1)
                sgemm_block(jb, t0 * SGEMM_MR, m1, 0, jb->N, bp);
        }
        else {
            const int tiles = ceil_div(jb->N, SGEMM_NR);
            const int t0 = tiles * i / jb->pieces, t1 = tiles * (i + 1) / jb->pieces;
            const int j1 = t1 * SGEMM_NR < jb->N ? t1 * SGEMM_NR : jb->N;
            if (t0 * SGEMM_NR < j1)
                sgemm_block(jb, 0, jb->M, t0 * SGEMM_NR, j1, bp);
        }
    }
}

void sgemm_run(int M, int N, int K, const float *A, size_t lda, sgemm_pack_fn pack,
               sgemm_direct_fn direct, const void *pack_ctx, const struct sgemm_out *out,
               float *scratch, size_t scratch_len)
{
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0) {
        assert(!out->pool);
        /* an empty sum: C is the bias (plus what it held), through the clamp */
        for (int m = 0; m < M; m++)
            for (int j = 0; j < N; j++) {
                float *c = out->c + (size_t)(j / out->block_cols) * out->block_stride +
                           (size_t)m * out->ldc + j % out->block_cols;
                float v = (out->accumulate ? *c : 0.0f) + (out->bias ? out->bias[m] : 0.0f);
                if (out->clamp)
                    v = v > out->lo ? v : out->lo, v = v < out->hi ? v : out->hi;
                *c = v;
            }
        return;
    }
    assert(scratch_len >= sgemm_scratch(M, N, K, 1));
    assert(!out->pool || (K <= SGEMM_KC && !out->accumulate && N % SGEMM_NR == 0));
    int slices = (int)(scratch_len / ((size_t)SGEMM_KC * SGEMM_NC));
    int threads = parallel_threads();
    if (threads > slices)
        threads = slices;
    if (threads < 1)
        threads = 1;
    const int col_tiles = ceil_div(N, SGEMM_NR), row_tiles = ceil_div(M, SGEMM_MR);
    struct sgemm_job jb = {.M = M, .N = N, .K = K, .A = A, .lda = lda, .pack = pack,
                           .direct = direct, .pack_ctx = pack_ctx, .out = out, .scratch = scratch};
    /* Columns when each thread gets at least two panels, else rows (each
     * thread then packs every column: K × N copies against M/T × K × N
     * products). */
    jb.split_rows = col_tiles < 2 * threads && row_tiles >= 2 * threads;
    jb.pieces = jb.split_rows ? (row_tiles < threads ? row_tiles : threads)
                              : (col_tiles < threads ? col_tiles : threads);
    if (jb.pieces < 1)
        jb.pieces = 1;
    parallel_for(jb.pieces, sgemm_piece, &jb);
}
