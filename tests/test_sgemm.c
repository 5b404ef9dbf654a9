/*
 * test_sgemm.c — strata's own matrix product (engine/sgemm.c) against a
 * double-precision reference: shapes on every edge of its tiles (8 rows, 48
 * columns, 192-deep slices of K, 240-column blocks), columns split in blocks
 * at a stride of their own (what a batch of images is to a convolution),
 * bias, accumulate and a clamp (ReLU, ReLU6), nothing written outside C, and results that do
 * not depend on the thread count or on whether rows or columns are shared,
 * nor on whether panels (narrow ones too) are read in place or packed;
 * and the transposing packer against its definition.
 */
#include "check.h"
#include "parallel.h"
#include "sgemm.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SENTINEL 12345.0f

struct product {
    int M, N, K;
    int block_cols, pad;        /* columns per block; floats of gap after each block */
    int bias, accumulate, clamp;  /* clamp: 0 none, 1 ReLU, 2 ReLU6 */
};

struct buffers {
    float *a, *b, *bias, *c, *c0, *scratch;
    size_t c_len, scratch_len;
};

static float uniform(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return (float)((*s >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static size_t c_index(const struct product *p, int m, int j)
{
    const size_t stride = (size_t)p->M * p->block_cols + p->pad;
    return (size_t)(j / p->block_cols) * stride + (size_t)m * p->block_cols + j % p->block_cols;
}

static void make(struct buffers *bf, const struct product *p, uint64_t seed)
{
    const int blocks = (p->N + p->block_cols - 1) / p->block_cols;
    bf->c_len = (size_t)blocks * ((size_t)p->M * p->block_cols + p->pad);
    bf->a = malloc(((size_t)p->M * p->K + 1) * sizeof(float));
    bf->b = malloc(((size_t)p->K * p->N + 1) * sizeof(float));
    bf->bias = malloc(((size_t)p->M + 1) * sizeof(float));
    bf->c = malloc(bf->c_len * sizeof(float));
    bf->c0 = malloc(bf->c_len * sizeof(float));
    bf->scratch_len = sgemm_scratch(p->M, p->N, p->K, 4);
    bf->scratch = aligned_alloc(64, (bf->scratch_len * sizeof(float) + 63) / 64 * 64);
    uint64_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < (size_t)p->M * p->K; i++)
        bf->a[i] = uniform(&s);
    for (size_t i = 0; i < (size_t)p->K * p->N; i++)
        bf->b[i] = uniform(&s);
    for (int i = 0; i < p->M; i++)
        bf->bias[i] = uniform(&s);
    /* C holds the sentinel in the gaps and random values where the product
     * goes (what accumulate adds onto) */
    for (size_t i = 0; i < bf->c_len; i++)
        bf->c0[i] = SENTINEL;
    for (int m = 0; m < p->M; m++)
        for (int j = 0; j < p->N; j++)
            bf->c0[c_index(p, m, j)] = uniform(&s);
}

static void release(struct buffers *bf)
{
    free(bf->a), free(bf->b), free(bf->bias), free(bf->c), free(bf->c0), free(bf->scratch);
}

/* in_place 1: full panels are read from B where it lies rather than
 * packed; 2: every panel, narrow ones too, from a copy of B whose rows run
 * on past N with finite values that are not B's */
static int in_place;

/* A panel of any width read in place, as sgemm_direct_fn allows. */
static const float *direct_any(const void *ctx, int k0, int j0, int ncols, size_t *ldb)
{
    (void)ncols;
    const struct sgemm_dense_b *d = ctx;
    *ldb = d->ldb;
    return d->b + (size_t)k0 * d->ldb + j0;
}

static void run(struct buffers *bf, const struct product *p)
{
    memcpy(bf->c, bf->c0, bf->c_len * sizeof(float));
    struct sgemm_dense_b db = {.b = bf->b, .ldb = (size_t)p->N};
    float *padded = NULL;
    if (in_place == 2) {
        /* rows of N + SGEMM_NR floats, the extra ones 7 */
        db.ldb = (size_t)p->N + SGEMM_NR;
        padded = malloc(((size_t)p->K * db.ldb + 1) * sizeof *padded);
        for (size_t k = 0; k < (size_t)p->K; k++)
            for (size_t j = 0; j < db.ldb; j++)
                padded[k * db.ldb + j] = j < (size_t)p->N ? bf->b[k * p->N + j] : 7.0f;
        db.b = padded;
    }
    struct sgemm_out o = {.c = bf->c, .ldc = (size_t)p->block_cols, .block_cols = p->block_cols,
                          .block_stride = (size_t)p->M * p->block_cols + p->pad,
                          .bias = p->bias ? bf->bias : NULL, .accumulate = p->accumulate,
                          .clamp = p->clamp != 0, .lo = 0.0f,
                          .hi = p->clamp == 2 ? 6.0f : INFINITY};
    sgemm_run(p->M, p->N, p->K, bf->a, (size_t)p->K, sgemm_pack_dense,
              in_place == 2 ? direct_any : in_place ? sgemm_direct_dense : NULL, &db, &o,
              bf->scratch, bf->scratch_len);
    free(padded);
}

/* Worst error over C relative to the size of what was summed, and whether
 * anything outside C changed. */
static void check_against_reference(const struct buffers *bf, const struct product *p,
                                    const char *what)
{
    double worst = 0;
    int outside = 0;
    for (int m = 0; m < p->M; m++)
        for (int j = 0; j < p->N; j++) {
            double sum = 0, mag = 0;
            for (int k = 0; k < p->K; k++) {
                double t = (double)bf->a[(size_t)m * p->K + k] * bf->b[(size_t)k * p->N + j];
                sum += t;
                mag += fabs(t);
            }
            const float old = bf->c0[c_index(p, m, j)];
            if (p->bias)
                sum += bf->bias[m], mag += fabs(bf->bias[m]);
            if (p->accumulate)
                sum += old, mag += fabs(old);
            if (p->clamp && sum < 0)
                sum = 0;
            if (p->clamp == 2 && sum > 6)
                sum = 6;
            const double err = fabs(bf->c[c_index(p, m, j)] - sum) / (mag + 1e-30);
            if (err > worst)
                worst = err;
        }
    for (size_t i = 0; i < bf->c_len; i++)
        if (bf->c0[i] == SENTINEL && bf->c[i] != SENTINEL)
            outside++;
    CHECK_MSG(worst < 2e-6, "%s: error %g of the summed magnitude", what, worst);
    CHECK_MSG(outside == 0, "%s: %d floats written outside C", what, outside);
}

static const struct product shapes[] = {
    /* M, N, K, block_cols, pad, bias, accumulate, clamp */
    {1, 1, 1, 1, 0, 0, 0, 0},
    {8, 48, 192, 48, 0, 1, 0, 0},          /* exactly one tile, one slice */
    {7, 49, 193, 49, 3, 1, 0, 1},          /* one past each edge */
    {17, 100, 1, 100, 0, 0, 1, 0},
    {13, 250, 400, 250, 0, 1, 1, 2},       /* two column blocks of 240, three slices; ReLU6
                                              (sums of 400 products: std 6.7) */
    {64, 500, 20, 500, 0, 0, 0, 1},
    {9, 147, 77, 49, 5, 1, 0, 0},          /* three images of 49 columns */
    {10, 33, 50, 1, 2, 1, 1, 0},           /* one column per block */
    {24, 70, 300, 7, 1, 0, 1, 1},          /* 7-column blocks across panels */
    {64, 40, 96, 40, 0, 1, 0, 0},          /* too few columns: rows are shared */
    {3, 1000, 385, 1000, 0, 1, 0, 1},
};

TEST(matches_double_precision)
{
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const struct product *p = &shapes[i];
        char what[96];
        snprintf(what, sizeof what, "M %d N %d K %d blocks of %d", p->M, p->N, p->K, p->block_cols);
        struct buffers bf;
        make(&bf, p, i + 1);
        run(&bf, p);
        check_against_reference(&bf, p, what);
        release(&bf);
    }
}

/* An empty sum: C is the bias (plus what it held), through the clamp. */
TEST(empty_sum)
{
    const struct product p = {5, 9, 0, 4, 1, 1, 1, 1};
    struct buffers bf;
    make(&bf, &p, 99);
    run(&bf, &p);
    check_against_reference(&bf, &p, "K 0");
    release(&bf);
}

TEST(threads_do_not_change_results)
{
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const struct product *p = &shapes[i];
        struct buffers bf;
        make(&bf, p, 50 + i);
        parallel_set_threads(1);
        run(&bf, p);
        float *one = malloc(bf.c_len * sizeof *one);
        memcpy(one, bf.c, bf.c_len * sizeof *one);
        const int counts[] = {2, 3, 4};
        for (int t = 0; t < 3; t++) {
            parallel_set_threads(counts[t]);
            parallel_set_check(PARALLEL_CHECK_REVERSE);
            run(&bf, p);
            parallel_set_check(PARALLEL_CHECK_OFF);
            CHECK_MSG(memcmp(one, bf.c, bf.c_len * sizeof *one) == 0,
                      "M %d N %d K %d: %d threads differ from one", p->M, p->N, p->K, counts[t]);
            run(&bf, p);
            CHECK_MSG(memcmp(one, bf.c, bf.c_len * sizeof *one) == 0,
                      "M %d N %d K %d: %d threads (pool) differ from one", p->M, p->N, p->K, counts[t]);
        }
        parallel_set_threads(0);
        free(one);
        release(&bf);
    }
}

/* The same products with every full panel read in place (the path a 1×1
 * convolution takes), then with narrow panels too, whose columns past N
 * hold other values (Winograd's products): the same values, bit for bit,
 * as when packed, and nothing written past N. */
TEST(panels_read_in_place)
{
    for (int mode = 1; mode <= 2; mode++)
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            const struct product *p = &shapes[i];
            struct buffers bf;
            make(&bf, p, 200 + i);
            in_place = mode;
            run(&bf, p);
            float *direct = malloc(bf.c_len * sizeof *direct);
            memcpy(direct, bf.c, bf.c_len * sizeof *direct);
            check_against_reference(&bf, p, mode == 1 ? "in place" : "narrow panels in place");
            in_place = 0;
            run(&bf, p);
            CHECK_MSG(memcmp(direct, bf.c, bf.c_len * sizeof *direct) == 0,
                      "M %d N %d K %d: in place (%d) differs from packed", p->M, p->N, p->K, mode);
            free(direct);
            release(&bf);
        }
    in_place = 0;
}

/* The transposing packer (a weight gradient's B = colᵀ) against its
 * definition, B[k][j] = A[j][k], on slices and column ranges that start and
 * end off the 8 × 8 blocks it moves at once: every float of every panel,
 * zeros past the last column included. */
TEST(transposed_packing)
{
    const int N = 61, K = 203; /* A is N × K, in rows of ld = K + 5 floats */
    const size_t ld = (size_t)K + 5;
    float *a = malloc((size_t)N * ld * sizeof *a);
    for (size_t i = 0; i < (size_t)N * ld; i++)
        a[i] = (float)i;
    float *dst = malloc((size_t)SGEMM_KC * SGEMM_NC * sizeof *dst);
    const struct sgemm_dense_b src = {.b = a, .ldb = ld};
    const int slices[][2] = {{0, 192}, {3, 11}, {192, 11}, {5, 7}, {1, 8}, {0, 1}};
    const int cols[][2] = {{0, 61}, {13, 48}, {7, 9}, {0, 8}, {50, 11}, {3, 1}};
    for (size_t s = 0; s < sizeof slices / sizeof *slices; s++)
        for (size_t c = 0; c < sizeof cols / sizeof *cols; c++) {
            const int k0 = slices[s][0], kc = slices[s][1], j0 = cols[c][0], nc = cols[c][1];
            const int panels = (nc + SGEMM_NR - 1) / SGEMM_NR;
            for (size_t i = 0; i < (size_t)panels * kc * SGEMM_NR; i++)
                dst[i] = SENTINEL;
            sgemm_pack_transposed(&src, k0, kc, j0, nc, dst);
            int bad = 0;
            for (int p = 0; p < panels; p++)
                for (int kk = 0; kk < kc; kk++)
                    for (int l = 0; l < SGEMM_NR; l++) {
                        const int j = p * SGEMM_NR + l;
                        const float want =
                            j < nc ? a[(size_t)(j0 + j) * ld + (size_t)(k0 + kk)] : 0.0f;
                        bad += dst[((size_t)p * kc + kk) * SGEMM_NR + l] != want;
                    }
            CHECK_MSG(bad == 0, "k0 %d kc %d j0 %d nc %d: %d floats wrong", k0, kc, j0, nc, bad);
        }
    free(a);
    free(dst);
}

int main(void)
{
    if (!sgemm_available()) {
        SKIP(matches_double_precision, "this CPU has no AVX-512: strata uses BLAS instead");
        SKIP(empty_sum, "no AVX-512");
        SKIP(threads_do_not_change_results, "no AVX-512");
        SKIP(panels_read_in_place, "no AVX-512");
        SKIP(transposed_packing, "no AVX-512");
        return check_done();
    }
    RUN(matches_double_precision);
    RUN(empty_sum);
    RUN(threads_do_not_change_results);
    RUN(panels_read_in_place);
    RUN(transposed_packing);
    return check_done();
}
