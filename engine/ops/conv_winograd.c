/*
 * conv_winograd.c — F(2×2, 3×3) and F(4×4, 3×3) for the forward pass (see
 * conv_winograd.h).
 *
 * With d a (t + 2)×(t + 2) patch of one input channel and g a 3×3 kernel,
 * the t×t outputs of the patch are
 *
 *   Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
 *
 * F(2×2, 3×3), t = 2:
 *
 *   Bᵀ = | 1  0 −1  0 |    G = | 1    0    0  |    Aᵀ = | 1  1  1  0 |
 *        | 0  1  1  0 |        | ½    ½    ½  |         | 0  1 −1 −1 |
 *        | 0 −1  1  0 |        | ½   −½    ½  |
 *        | 0  1  0 −1 |        | 0    0    1  |
 *
 * F(4×4, 3×3), t = 4 (Lavin and Gray's interpolation points 0, ±1, ±2):
 *
 *   Bᵀ = | 4  0 −5  0  1  0 |   G = |  1/4     0     0  |   Aᵀ = | 1  1  1  1  1  0 |
 *        | 0 −4 −4  1  1  0 |       | −1/6  −1/6  −1/6  |        | 0  1 −1  2 −2  0 |
 *        | 0  4 −4 −1  1  0 |       | −1/6   1/6  −1/6  |        | 0  1  1  4  4  0 |
 *        | 0 −2 −1  2  1  0 |       |  1/24  1/12  1/6  |        | 0  1 −1  8 −8  1 |
 *        | 0  2 −1 −2  1  0 |       |  1/24 −1/12  1/6  |
 *        | 0  4  0 −5  0  1 |       |   0     0     1   |
 *
 * Summed over input channels, the element-wise product becomes X = (t + 2)²
 * matrix products, one per position ξ of the transformed patch:
 *   M_ξ[m, b] = Σ_c U_ξ[m, c] · V_ξ[c, b],  U = G g Gᵀ per (m, c), V = Bᵀ d B per (c, b)
 * over the output's t×t blocks b (every image of the batch): 16 products
 * per 4 outputs (F(2×2)) or 36 per 16 (F(4×4)) where the direct
 * convolution needs 9 per output. The products are sgemm's. U depends on
 * the weights alone: the caller keeps it between runs where the weights are
 * constants (conv.c, through the graph's cache).
 *
 * The blocks are taken at most WG_TC at a time (a chunk), each chunk by one
 * thread from start to end: transform its input patches into V (X × C ×
 * WG_TC floats), the X products into M (X × M × WG_TC), and M back into
 * t×t outputs, with the bias and a fused clamp. The transforms work on 16
 * horizontally adjacent blocks at once: each input row is loaded as vectors
 * (masked, so the padding reads as zeros and nothing outside the row is
 * touched) and split two or four ways by column, so that the columns of the
 * 16 patches are whole vectors; the outputs are interleaved back the same
 * way. The chunks do not depend on the thread count, and each is computed
 * the same way by whichever thread takes it, so results do not depend on the
 * thread count either.
 */
#include "conv_winograd.h"

#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "../parallel.h"
#include "../sgemm.h"

/* Blocks per chunk: two sgemm panels. */
#define WG_TC (2 * SGEMM_NR)

#define WG_TARGET __attribute__((target("avx512f")))

static size_t round16(size_t n)
{
    return (n + 15) / 16 * 16;
}

int winograd_tile(int C, int M, int Ho, int Wo)
{
    /* Decided per image, never by the batch size: an image's result must
     * not depend on the batch it came in. Measured per layer at batch 16 (2
     * threads): F(4×4) is 1.4–1.6× faster than F(2×2) on 32 and 64 channels
     * at 48×48; on a model whose largest layer is 32×32 it was 2 % slower,
     * and on 64 channels at 24×24 no faster (at 14×14 it computes 16×16).
     * Its rounding grows with the channels summed (about 2e-4 of an output
     * near 1 with 128 input channels, against 2e-5 with 17): it is kept to
     * the large early layers, where channels are few. Below F(2×2)'s 36
     * blocks an image, or with fewer than 16 channels, the products are too
     * small to share between threads at batch 1 (ResNet-18's 7×7 layers,
     * measured): the direct convolution. At 12×12 (36 blocks) F(2×2) wins:
     * `felines`' 64 → 128 layer took 1.47 ms at batch 16 against 2.0 ms
     * direct, and no longer at batch 1. */
    if (C < 16 || M < 16)
        return 0;
    if (Ho >= 40 && Wo >= 40)
        return 4;
    return ((Ho + 1) / 2) * ((Wo + 1) / 2) >= 36 ? 2 : 0;
}

/* Positions of a transformed patch: (t + 2)². */
static int wg_positions(int tile)
{
    return (tile + 2) * (tile + 2);
}

static size_t per_thread(int tile, int C, int M)
{
    const size_t X = (size_t)wg_positions(tile);
    return round16(X * C * WG_TC) + round16(X * M * WG_TC) + round16(sgemm_scratch(M, WG_TC, C, 1));
}

size_t winograd_weights_size(int tile, int C, int M)
{
    return (size_t)wg_positions(tile) * M * C;
}

size_t winograd_scratch(int tile, int C, int M, int threads)
{
    if (threads < 1)
        threads = 1;
    return (size_t)threads * per_thread(tile, C, M);
}

/* ---- the weights: U = G g Gᵀ ------------------------------------------------ */

struct wg_job {
    const struct winograd_conv *cv;
    const float *U;     /* [X][M][C] */
    float *U_out;       /* winograd_weights: where U goes */
    float *regions;     /* one per piece: V, M, sgemm scratch */
    size_t region_len;
    int tiles_h, tiles_w, tiles, chunks, pieces;
    int tc;             /* blocks per chunk, at most WG_TC */
};

static void wg_weights2_piece(void *ctx, int m0, int m1)
{
    const struct wg_job *j = ctx;
    const struct winograd_conv *cv = j->cv;
    for (int m = m0; m < m1; m++)
        for (int c = 0; c < cv->C; c++) {
            const float *g = cv->w + ((size_t)m * cv->C + c) * 9;
            float gg[4][3]; /* G g */
            for (int k = 0; k < 3; k++) {
                gg[0][k] = g[k];
                gg[1][k] = 0.5f * (g[k] + g[3 + k] + g[6 + k]);
                gg[2][k] = 0.5f * (g[k] - g[3 + k] + g[6 + k]);
                gg[3][k] = g[6 + k];
            }
            for (int i = 0; i < 4; i++) {
                const float a = gg[i][0], b = gg[i][1], cc = gg[i][2];
                const float u[4] = {a, 0.5f * (a + b + cc), 0.5f * (a - b + cc), cc};
                for (int k = 0; k < 4; k++)
                    j->U_out[((size_t)(i * 4 + k) * cv->M + m) * cv->C + c] = u[k];
            }
        }
}

/* G·(a, b, c): the six rows of G applied to one column of three. */
static void wg_g(double a, double b, double c, double out[6])
{
    out[0] = a / 4;
    out[1] = -(a + b + c) / 6;
    out[2] = -(a - b + c) / 6;
    out[3] = a / 24 + b / 12 + c / 6;
    out[4] = a / 24 - b / 12 + c / 6;
    out[5] = c;
}

static void wg_weights4_piece(void *ctx, int m0, int m1)
{
    const struct wg_job *j = ctx;
    const struct winograd_conv *cv = j->cv;
    for (int m = m0; m < m1; m++)
        for (int c = 0; c < cv->C; c++) {
            const float *g = cv->w + ((size_t)m * cv->C + c) * 9;
            double gg[3][6]; /* (G g)ᵀ: column k of g through G */
            for (int k = 0; k < 3; k++)
                wg_g(g[k], g[3 + k], g[6 + k], gg[k]);
            for (int i = 0; i < 6; i++) {
                double u[6];
                wg_g(gg[0][i], gg[1][i], gg[2][i], u);
                for (int k = 0; k < 6; k++)
                    j->U_out[((size_t)(i * 6 + k) * cv->M + m) * cv->C + c] = (float)u[k];
            }
        }
}

/* ---- the input: V = Bᵀ d B, 16 blocks at a time -------------------------- */

/* Lanes l of a 16-float load at input column s + l that lie in [0, W). */
static inline __mmask16 wg_cols(int s, int W)
{
    const int a = s < 0 ? -s : 0, b = W - s < 16 ? W - s : 16;
    if (b <= a)
        return 0;
    return (__mmask16)(((1u << b) - 1) & ~((1u << a) - 1));
}

/* Columns s + 2l + k (k = 0 … 3) of one input row (NULL: a padding row), for
 * l = 0 … 15: four vectors. mask[h] holds the lanes of the loads at s + 16h
 * (h = 0, 1) and s + 2 + 16(h − 2) (h = 2, 3) that lie in the row. */
WG_TARGET static inline void wg_row_columns(const float *row, int s, const __mmask16 mask[4],
                                            __m512 col[4])
{
    if (!row) {
        col[0] = col[1] = col[2] = col[3] = _mm512_setzero_ps();
        return;
    }
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    for (int h = 0; h < 2; h++) {
        const int s0 = s + 2 * h;   /* columns s0 … s0 + 31 */
        const __m512 a = _mm512_maskz_loadu_ps(mask[2 * h], row + s0);
        const __m512 b = _mm512_maskz_loadu_ps(mask[2 * h + 1], row + s0 + 16);
        col[2 * h] = _mm512_permutex2var_ps(a, even, b);
        col[2 * h + 1] = _mm512_permutex2var_ps(a, odd, b);
    }
}

/* V for blocks (n, ty, tx0 … tx0 + L − 1) of every channel, at chunk columns
 * tt … tt + L − 1. */
WG_TARGET static void wg_input2(const struct winograd_conv *cv, float *V, int n, int ty, int tx0,
                               int L, int tt)
{
    const __mmask16 keep = (__mmask16)(L >= 16 ? 0xffff : (1u << L) - 1);
    const int s = 2 * tx0 - cv->pl;
    /* the same for every channel: which rows exist, which lanes */
    const __mmask16 mask[4] = {wg_cols(s, cv->W), wg_cols(s + 16, cv->W), wg_cols(s + 2, cv->W),
                               wg_cols(s + 18, cv->W)};
    ptrdiff_t row_off[4];
    for (int r = 0; r < 4; r++) {
        const int iy = 2 * ty - cv->pt + r;
        row_off[r] = iy >= 0 && iy < cv->H ? (ptrdiff_t)iy * cv->W : -1;
    }
    const size_t plane = (size_t)cv->H * cv->W, v_plane = (size_t)cv->C * WG_TC;
    const float *xc = cv->x + (size_t)n * cv->image_stride;
    float *vc = V + tt;
    for (int c = 0; c < cv->C; c++, xc += plane, vc += WG_TC) {
        __m512 d[4][4];
        for (int r = 0; r < 4; r++)
            wg_row_columns(row_off[r] >= 0 ? xc + row_off[r] : NULL, s, mask, d[r]);
        __m512 t[4][4];
        for (int k = 0; k < 4; k++) {
            t[0][k] = _mm512_sub_ps(d[0][k], d[2][k]);
            t[1][k] = _mm512_add_ps(d[1][k], d[2][k]);
            t[2][k] = _mm512_sub_ps(d[2][k], d[1][k]);
            t[3][k] = _mm512_sub_ps(d[1][k], d[3][k]);
        }
        for (int i = 0; i < 4; i++) {
            const __m512 v[4] = {_mm512_sub_ps(t[i][0], t[i][2]), _mm512_add_ps(t[i][1], t[i][2]),
                                 _mm512_sub_ps(t[i][2], t[i][1]), _mm512_sub_ps(t[i][1], t[i][3])};
            for (int k = 0; k < 4; k++) {
                float *dst = vc + (size_t)(i * 4 + k) * v_plane;
                if (L >= 16)
                    _mm512_storeu_ps(dst, v[k]);
                else
                    _mm512_mask_storeu_ps(dst, keep, v[k]);
            }
        }
    }
}

/* F(4×4): the same for 6×6 patches at a stride of 4. */

/* Permutation indices: QUARTER[p] takes floats p, p + 4, …, p + 28 of two
 * vectors into lanes 0 … 7; HALVES joins lanes 0 … 7 of two vectors. */
static const int32_t QUARTER[4][16] __attribute__((aligned(64))) = {
    {0, 4, 8, 12, 16, 20, 24, 28}, {1, 5, 9, 13, 17, 21, 25, 29},
    {2, 6, 10, 14, 18, 22, 26, 30}, {3, 7, 11, 15, 19, 23, 27, 31}};
static const int32_t HALVES[16] __attribute__((aligned(64))) = {0,  1,  2,  3,  4,  5,  6,  7,
                                                                16, 17, 18, 19, 20, 21, 22, 23};

/* Floats p, p + 4, …, p + 60 of the 64 in a[0 … 3]. */
WG_TARGET static inline __m512 wg_quarter(const __m512 a[4], int p)
{
    const __m512i q = _mm512_load_si512(QUARTER[p]), h = _mm512_load_si512(HALVES);
    return _mm512_permutex2var_ps(_mm512_permutex2var_ps(a[0], q, a[1]), h,
                                  _mm512_permutex2var_ps(a[2], q, a[3]));
}

/* Columns s + 4l + j (j = 0 … 5) of one input row (NULL: a padding row), for
 * l = 0 … 15: six vectors. mask[h] holds the lanes of the load at s + 16h
 * (h < 4) and s + 4 + 16(h − 4) (h ≥ 4) that lie in the row. */
WG_TARGET static inline void wg_row_columns4(const float *row, int s, const __mmask16 mask[8],
                                            __m512 col[6])
{
    if (!row) {
        for (int j = 0; j < 6; j++)
            col[j] = _mm512_setzero_ps();
        return;
    }
    __m512 a[4], b[4];
    for (int h = 0; h < 4; h++) {
        a[h] = _mm512_maskz_loadu_ps(mask[h], row + s + 16 * h);
        b[h] = _mm512_maskz_loadu_ps(mask[4 + h], row + s + 4 + 16 * h);
    }
    for (int p = 0; p < 4; p++)
        col[p] = wg_quarter(a, p);
    col[4] = wg_quarter(b, 0);
    col[5] = wg_quarter(b, 1);
}

/* Bᵀ applied to six vectors (one per row, or column, of the patches). */
WG_TARGET static inline void wg_bt(const __m512 d[6], __m512 v[6])
{
    const __m512 four = _mm512_set1_ps(4.0f), five = _mm512_set1_ps(5.0f),
                 two = _mm512_set1_ps(2.0f);
    const __m512 d4_d2 = _mm512_sub_ps(d[4], d[2]), d1_d3 = _mm512_sub_ps(d[1], d[3]);
    v[0] = _mm512_fmadd_ps(four, d[0], _mm512_fnmadd_ps(five, d[2], d[4]));
    v[1] = _mm512_fnmadd_ps(four, _mm512_add_ps(d[1], d[2]), _mm512_add_ps(d[3], d[4]));
    v[2] = _mm512_fmadd_ps(four, _mm512_sub_ps(d[1], d[2]), _mm512_sub_ps(d[4], d[3]));
    v[3] = _mm512_fnmadd_ps(two, d1_d3, d4_d2);
    v[4] = _mm512_fmadd_ps(two, d1_d3, d4_d2);
    v[5] = _mm512_fmadd_ps(four, d[1], _mm512_fnmadd_ps(five, d[3], d[5]));
}

/* V for blocks (n, ty, tx0 … tx0 + L − 1) of every channel, at chunk columns
 * tt … tt + L − 1. */
WG_TARGET static void wg_input4(const struct winograd_conv *cv, float *V, int n, int ty, int tx0,
                               int L, int tt)
{
    const __mmask16 keep = (__mmask16)(L >= 16 ? 0xffff : (1u << L) - 1);
    const int s = 4 * tx0 - cv->pl;
    /* the same for every channel: which rows exist, which lanes */
    __mmask16 mask[8];
    for (int h = 0; h < 4; h++) {
        mask[h] = wg_cols(s + 16 * h, cv->W);
        mask[4 + h] = wg_cols(s + 4 + 16 * h, cv->W);
    }
    ptrdiff_t row_off[6];
    for (int r = 0; r < 6; r++) {
        const int iy = 4 * ty - cv->pt + r;
        row_off[r] = iy >= 0 && iy < cv->H ? (ptrdiff_t)iy * cv->W : -1;
    }
    const size_t plane = (size_t)cv->H * cv->W, v_plane = (size_t)cv->C * WG_TC;
    const float *xc = cv->x + (size_t)n * cv->image_stride;
    float *vc = V + tt;
    for (int c = 0; c < cv->C; c++, xc += plane, vc += WG_TC) {
        __m512 h[6][6]; /* h[r][k]: row r of the patches through Bᵀ along the row */
        for (int r = 0; r < 6; r++) {
            __m512 d[6];
            wg_row_columns4(row_off[r] >= 0 ? xc + row_off[r] : NULL, s, mask, d);
            wg_bt(d, h[r]);
        }
        for (int k = 0; k < 6; k++) {
            const __m512 col[6] = {h[0][k], h[1][k], h[2][k], h[3][k], h[4][k], h[5][k]};
            __m512 v[6];
            wg_bt(col, v);
            for (int i = 0; i < 6; i++) {
                float *dst = vc + (size_t)(i * 6 + k) * v_plane;
                if (L >= 16)
                    _mm512_storeu_ps(dst, v[i]);
                else
                    _mm512_mask_storeu_ps(dst, keep, v[i]);
            }
        }
    }
}

/* ---- the output: Y = Aᵀ M A, 16 blocks at a time ------------------------- */

/* The maximum of a window's four outputs in row-major order, each taken
 * only when strictly larger than the maximum so far, from −∞: what
 * MaxPool computes (pool.c), bit for bit (_mm512_max_ps(x, m) is
 * x > m ? x : m). */
WG_TARGET static inline __m512 wg_max4(__m512 a, __m512 b, __m512 c, __m512 d)
{
    __m512 m = _mm512_max_ps(a, _mm512_set1_ps(-INFINITY));
    m = _mm512_max_ps(b, m);
    m = _mm512_max_ps(c, m);
    return _mm512_max_ps(d, m);
}

/* Lanes [0, n) of 16, n clipped to [0, 16]. */
static inline __mmask16 wg_first(int n)
{
    return (__mmask16)(n >= 16 ? 0xffff : n > 0 ? (1u << n) - 1 : 0);
}

/* Stores v through mask (nothing when it is empty). */
WG_TARGET static inline void wg_store(float *dst, __mmask16 mask, __m512 v)
{
    if (mask == 0xffff)
        _mm512_storeu_ps(dst, v);
    else if (mask)
        _mm512_mask_storeu_ps(dst, mask, v);
}

WG_TARGET static void wg_output2(const struct winograd_conv *cv, const float *Mo, int n, int ty,
                                int tx0, int L, int tt)
{
    const __mmask16 keep = (__mmask16)(L >= 16 ? 0xffff : (1u << L) - 1);
    /* interleave two vectors: lanes 0 … 7 (lo) and 8 … 15 (hi) of each */
    const __m512i lo_idx = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i hi_idx =
        _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    const __m512 vlo = _mm512_set1_ps(cv->lo), vhi = _mm512_set1_ps(cv->hi);
    /* output columns 2·tx0 … that exist */
    const int col0 = 2 * tx0, cols = cv->Wo - col0 < 2 * L ? cv->Wo - col0 : 2 * L;
    const __mmask16 m_lo = wg_first(cols), m_hi = wg_first(cols - 16); /* cols ≤ 32 */
    /* pooled: block (ty, tx) is window (ty, tx), there when both its rows
     * and columns are */
    const int Hp = cv->Ho / 2, Wp = cv->Wo / 2;
    const __mmask16 m_pool = cv->pool_y && ty < Hp ? wg_first(Wp - tx0 < L ? Wp - tx0 : L) : 0;
    if (cv->pool_y && !m_pool)
        return;
    const int rows = cv->Ho - 2 * ty < 2 ? cv->Ho - 2 * ty : 2;
    for (int m = 0; m < cv->M; m++) {
        __m512 mv[16];
        for (int x = 0; x < 16; x++)
            mv[x] = _mm512_maskz_loadu_ps(keep, Mo + ((size_t)x * cv->M + m) * WG_TC + tt);
        __m512 r[2][4];
        for (int k = 0; k < 4; k++) {
            r[0][k] = _mm512_add_ps(_mm512_add_ps(mv[k], mv[4 + k]), mv[8 + k]);
            r[1][k] = _mm512_sub_ps(_mm512_sub_ps(mv[4 + k], mv[8 + k]), mv[12 + k]);
        }
        const __m512 b = _mm512_set1_ps(cv->bias ? cv->bias[m] : 0.0f);
        __m512 y[2][2]; /* y[i][c]: row i, column c of each block */
        for (int i = 0; i < 2; i++) {
            y[i][0] = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(r[i][0], r[i][1]), r[i][2]), b);
            y[i][1] = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(r[i][1], r[i][2]), r[i][3]), b);
            if (cv->clamp) {
                y[i][0] = _mm512_min_ps(_mm512_max_ps(y[i][0], vlo), vhi);
                y[i][1] = _mm512_min_ps(_mm512_max_ps(y[i][1], vlo), vhi);
            }
        }
        if (cv->pool_y) {
            float *dst = cv->pool_y + (size_t)n * cv->pool_image_stride +
                         ((size_t)m * Hp + ty) * Wp + tx0;
            wg_store(dst, m_pool, wg_max4(y[0][0], y[0][1], y[1][0], y[1][1]));
            continue;
        }
        for (int i = 0; i < rows; i++) {
            float *dst = cv->y + (size_t)n * cv->y_image_stride +
                         ((size_t)m * cv->Ho + 2 * ty + i) * cv->Wo + col0;
            wg_store(dst, m_lo, _mm512_permutex2var_ps(y[i][0], lo_idx, y[i][1]));
            wg_store(dst + 16, m_hi, _mm512_permutex2var_ps(y[i][0], hi_idx, y[i][1]));
        }
    }
}

/* F(4×4): 4×4 outputs from each 6×6 block of M. */

/* Aᵀ applied to six vectors. */
WG_TARGET static inline void wg_at(const __m512 m[6], __m512 r[4])
{
    const __m512 s12 = _mm512_add_ps(m[1], m[2]), d12 = _mm512_sub_ps(m[1], m[2]);
    const __m512 s34 = _mm512_add_ps(m[3], m[4]), d34 = _mm512_sub_ps(m[3], m[4]);
    r[0] = _mm512_add_ps(_mm512_add_ps(m[0], s12), s34);
    r[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), d34, d12);
    r[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), s34, s12);
    r[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), d34, d12), m[5]);
}

/* Interleaving indices: PAIRS[h] takes lanes 8h … 8h + 7 of two vectors
 * alternately; FOURS[h] takes pairs of lanes 8h … 8h + 7 of two such
 * results alternately, so that four vectors y[0 … 3] come out as y[0][l],
 * y[1][l], y[2][l], y[3][l] for l = 4h' … 4h' + 3. */
static const int32_t PAIRS[2][16] __attribute__((aligned(64))) = {
    {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23},
    {8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31}};
static const int32_t FOURS[2][16] __attribute__((aligned(64))) = {
    {0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23},
    {8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31}};

WG_TARGET static void wg_output4(const struct winograd_conv *cv, const float *Mo, int n, int ty,
                                int tx0, int L, int tt)
{
    const __mmask16 keep = (__mmask16)(L >= 16 ? 0xffff : (1u << L) - 1);
    const __m512i pair_lo = _mm512_load_si512(PAIRS[0]), pair_hi = _mm512_load_si512(PAIRS[1]);
    const __m512i four_lo = _mm512_load_si512(FOURS[0]), four_hi = _mm512_load_si512(FOURS[1]);
    const __m512 vlo = _mm512_set1_ps(cv->lo), vhi = _mm512_set1_ps(cv->hi);
    /* output columns 4·tx0 … that exist, in four stores of 16 */
    const int col0 = 4 * tx0, cols = cv->Wo - col0 < 4 * L ? cv->Wo - col0 : 4 * L;
    __mmask16 store[4];
    for (int q = 0; q < 4; q++)
        store[q] = wg_first(cols - 16 * q);
    /* pooled: block (ty, tx) holds windows 2ty, 2ty + 1 by 2tx, 2tx + 1,
     * each there when both its rows and columns are */
    const int Hp = cv->Ho / 2, Wp = cv->Wo / 2;
    const int pcols = Wp - 2 * tx0 < 2 * L ? Wp - 2 * tx0 : 2 * L;
    const __mmask16 pool_store[2] = {wg_first(pcols), wg_first(pcols - 16)};
    if (cv->pool_y && (2 * ty >= Hp || pcols <= 0))
        return;
    for (int m = 0; m < cv->M; m++) {
        __m512 r[4][6]; /* r[i][k]: column k of the blocks' M through Aᵀ */
        for (int k = 0; k < 6; k++) {
            __m512 col[6];
            for (int x = 0; x < 6; x++)
                col[x] = _mm512_maskz_loadu_ps(keep, Mo + ((size_t)(x * 6 + k) * cv->M + m) * WG_TC + tt);
            __m512 t[4];
            wg_at(col, t);
            for (int i = 0; i < 4; i++)
                r[i][k] = t[i];
        }
        const __m512 b = _mm512_set1_ps(cv->bias ? cv->bias[m] : 0.0f);
        /* with pooling: the row before, the top of its windows */
        __m512 above[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                           _mm512_setzero_ps()};
        for (int i = 0; i < 4; i++) {
            const int oy = 4 * ty + i;
            if (oy >= cv->Ho)
                break;
            __m512 y[4];
            wg_at(r[i], y);
            for (int c = 0; c < 4; c++) {
                y[c] = _mm512_add_ps(y[c], b);
                if (cv->clamp)
                    y[c] = _mm512_min_ps(_mm512_max_ps(y[c], vlo), vhi);
            }
            if (cv->pool_y) {
                if (i % 2 == 0) {
                    for (int c = 0; c < 4; c++)
                        above[c] = y[c];
                    continue;
                }
                const int py = oy / 2;
                /* lanes are blocks: windows 2tx (columns 0, 1) and 2tx + 1
                 * (columns 2, 3), interleaved into consecutive windows */
                const __m512 w0 = wg_max4(above[0], above[1], y[0], y[1]);
                const __m512 w1 = wg_max4(above[2], above[3], y[2], y[3]);
                float *dst = cv->pool_y + (size_t)n * cv->pool_image_stride +
                             ((size_t)m * Hp + py) * Wp + 2 * tx0;
                wg_store(dst, pool_store[0], _mm512_permutex2var_ps(w0, pair_lo, w1));
                wg_store(dst + 16, pool_store[1], _mm512_permutex2var_ps(w0, pair_hi, w1));
                continue;
            }
            /* lanes are blocks, y[c] their column c: row oy is
             * y[0][0], y[1][0], y[2][0], y[3][0], y[0][1], … */
            const __m512 p01[2] = {_mm512_permutex2var_ps(y[0], pair_lo, y[1]),
                                   _mm512_permutex2var_ps(y[0], pair_hi, y[1])};
            const __m512 p23[2] = {_mm512_permutex2var_ps(y[2], pair_lo, y[3]),
                                   _mm512_permutex2var_ps(y[2], pair_hi, y[3])};
            float *dst = cv->y + (size_t)n * cv->y_image_stride +
                         ((size_t)m * cv->Ho + oy) * cv->Wo + col0;
            for (int q = 0; q < 4 && store[q]; q++)
                wg_store(dst + 16 * q, store[q],
                         _mm512_permutex2var_ps(p01[q / 2], q % 2 ? four_hi : four_lo, p23[q / 2]));
        }
    }
}

/* ---- chunks ------------------------------------------------------------------ */

/* Calls fn for every run of at most 16 blocks of one block row inside
 * blocks [t0, t1). */
#define WG_FOR_RUNS(j, t0, t1, BODY)                                                       \
    for (int t = (t0); t < (t1);) {                                                        \
        const int per_image = (j)->tiles_h * (j)->tiles_w;                                 \
        const int n = t / per_image, ty = t % per_image / (j)->tiles_w,                    \
                  tx = t % per_image % (j)->tiles_w;                                       \
        int L = (j)->tiles_w - tx;                                                         \
        if (L > 16)                                                                        \
            L = 16;                                                                        \
        if (L > (t1) - t)                                                                  \
            L = (t1) - t;                                                                  \
        BODY;                                                                              \
        t += L;                                                                            \
    }

/* sgemm's B in place, for any panel of a chunk: V's rows are WG_TC floats,
 * and wg_chunk zeroes each row's columns past the chunk's blocks up to a
 * whole vector (the kernel reads them; a narrow last panel is not copied). */
static const float *wg_direct(const void *ctx, int k0, int j0, int ncols, size_t *ldb)
{
    (void)ncols;
    const struct sgemm_dense_b *d = ctx;
    *ldb = d->ldb;
    return d->b + (size_t)k0 * d->ldb + j0;
}

/* Zeroes columns tc … of each of V's `rows` rows up to a whole vector: one
 * store a row (a memset call per row took 2 % of a small layer), of 16
 * floats where the row has room for them (masked stores are slow on AMD's
 * cores). */
WG_TARGET static void wg_zero_tails(float *V, int rows, int tc)
{
    const int tail = (int)round16((size_t)tc) - tc;
    if (!tail)
        return;
    const __mmask16 m = (__mmask16)(tc + 16 <= WG_TC ? 0xffff : (1u << tail) - 1);
    for (int r = 0; r < rows; r++)
        _mm512_mask_storeu_ps(V + (size_t)r * WG_TC + tc, m, _mm512_setzero_ps());
}

/* Chunk k in `region`; sgemm gets the floats from the region's own sgemm
 * part up to region_end: one slice (one thread) when every thread has a
 * chunk, all of the scratch when the chunks are too few to share. */
static void wg_chunk(const struct wg_job *j, int k, float *region, const float *region_end,
                     int *tails_zeroed)
{
    const struct winograd_conv *cv = j->cv;
    const int X = wg_positions(cv->tile);
    const int t0 = k * j->tc, t1 = t0 + j->tc < j->tiles ? t0 + j->tc : j->tiles, tc = t1 - t0;
    float *V = region, *Mo = V + round16((size_t)X * cv->C * WG_TC);
    float *S = Mo + round16((size_t)X * cv->M * WG_TC);
    const size_t s_len = (size_t)(region_end - S);
    if (cv->tile == 4) {
        WG_FOR_RUNS(j, t0, t1, wg_input4(cv, V, n, ty, tx, L, t - t0));
    } else {
        WG_FOR_RUNS(j, t0, t1, wg_input2(cv, V, n, ty, tx, L, t - t0));
    }
    /* the input transforms write columns below tc alone: one zeroing
     * serves every chunk of the same width in this region */
    if (*tails_zeroed != tc) {
        wg_zero_tails(V, X * cv->C, tc);
        *tails_zeroed = tc;
    }
    for (int x = 0; x < X; x++) {
        const struct sgemm_dense_b b = {.b = V + (size_t)x * cv->C * WG_TC, .ldb = WG_TC};
        const struct sgemm_out o = {.c = Mo + (size_t)x * cv->M * WG_TC, .ldc = WG_TC,
                                    .block_cols = WG_TC};
        sgemm_run(cv->M, tc, cv->C, j->U + (size_t)x * cv->M * cv->C, (size_t)cv->C,
                  sgemm_pack_dense, wg_direct, &b, &o, S, s_len);
    }
    if (cv->tile == 4) {
        WG_FOR_RUNS(j, t0, t1, wg_output4(cv, Mo, n, ty, tx, L, t - t0));
    } else {
        WG_FOR_RUNS(j, t0, t1, wg_output2(cv, Mo, n, ty, tx, L, t - t0));
    }
}

static void wg_piece(void *ctx, int i0, int i1)
{
    const struct wg_job *j = ctx;
    float *region = j->regions + (size_t)i0 * j->region_len;
    int tails_zeroed = -1;
    for (int i = i0; i < i1; i++) {
        const int k0 = (int)((int64_t)j->chunks * i / j->pieces);
        const int k1 = (int)((int64_t)j->chunks * (i + 1) / j->pieces);
        for (int k = k0; k < k1; k++)
            wg_chunk(j, k, region, region + j->region_len, &tails_zeroed);
    }
}

void winograd_weights(const struct winograd_conv *cv, float *U)
{
    struct wg_job j = {.cv = cv, .U_out = U};
    parallel_for_grain(cv->M, parallel_grain((size_t)cv->C * (cv->tile == 4 ? 45 : 25)),
                       cv->tile == 4 ? wg_weights4_piece : wg_weights2_piece, &j);
}

void winograd_forward(const struct winograd_conv *cv, const float *U, float *scratch,
                      size_t scratch_len)
{
    struct wg_job j = {.cv = cv, .U = U};
    j.tiles_h = (cv->Ho + cv->tile - 1) / cv->tile;
    j.tiles_w = (cv->Wo + cv->tile - 1) / cv->tile;
    j.tiles = cv->N * j.tiles_h * j.tiles_w;
    j.regions = scratch;
    j.region_len = per_thread(cv->tile, cv->C, cv->M);
    int regions = (int)(scratch_len / j.region_len);
    int threads = parallel_threads();
    j.pieces = threads < regions ? threads : regions;
    if (j.pieces < 1)
        j.pieces = 1;
    /* as many chunks of at most `cap` blocks as make every thread's share
     * the same: a 24×24 output at batch 1 (144 blocks) is two chunks of 72,
     * not 96 and 48. A block's outputs do not depend on the chunk it is in:
     * its patches and outputs are transformed alone, and the products sum
     * over channels in the same order whatever their width. */
    /* F(4×4)'s patches and products are 2.25 times F(2×2)'s: half as many
     * blocks keep a chunk's V, M and U within the 1 MB L2 cache */
    const int cap = cv->tile == 4 ? WG_TC / 2 : WG_TC;
    const int rounds = (j.tiles + j.pieces * cap - 1) / (j.pieces * cap);
    j.chunks = j.pieces * rounds;
    j.tc = (j.tiles + j.chunks - 1) / j.chunks;
    j.chunks = (j.tiles + j.tc - 1) / j.tc;
    if (j.chunks < j.pieces) {
        /* fewer blocks than threads: one chunk, each product shared by the
         * threads (sgemm splits its rows), the scratch beyond the first
         * region its slices */
        int tails_zeroed = -1;
        for (int k = 0; k < j.chunks; k++)
            wg_chunk(&j, k, j.regions, scratch + scratch_len, &tails_zeroed);
        return;
    }
    parallel_for(j.pieces, wg_piece, &j);
}
