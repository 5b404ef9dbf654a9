/*
 * test_gemv.c — Y += X · Bᵀ for a few rows of X (engine/gemv.c) against a
 * double-precision reference: row counts around its steps of 4 (rows of B
 * and of X), k around its 16-float vectors (masked tails), rows at strides
 * wider than they are with sentinels in the gaps that must stay untouched;
 * results that do not depend on the thread count, nor on which other rows
 * of X came in the same call.
 */
#include "check.h"
#include "gemv.h"
#include "parallel.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SENTINEL 12345.0f
#define GAP 3 /* floats after each row of X, B and Y */

struct product {
    int m, n, k;
};

struct buffers {
    float *x, *b, *y, *y0;
    size_t ldx, ldb, ldy;
};

static float uniform(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return (float)((*s >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static float *filled(size_t rows, size_t cols, size_t ld, uint64_t *s)
{
    float *v = malloc((rows * ld + 1) * sizeof *v);
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < ld; c++)
            v[r * ld + c] = c < cols ? uniform(s) : SENTINEL;
    return v;
}

static void make(struct buffers *bf, const struct product *p, uint64_t seed)
{
    uint64_t s = seed * 2654435761u + 1;
    bf->ldx = (size_t)p->k + GAP, bf->ldb = (size_t)p->k + GAP, bf->ldy = (size_t)p->n + GAP;
    bf->x = filled((size_t)p->m, (size_t)p->k, bf->ldx, &s);
    bf->b = filled((size_t)p->n, (size_t)p->k, bf->ldb, &s);
    bf->y0 = filled((size_t)p->m, (size_t)p->n, bf->ldy, &s); /* what Y held: it is added onto */
    bf->y = malloc(((size_t)p->m * bf->ldy + 1) * sizeof *bf->y);
}

static void release(struct buffers *bf)
{
    free(bf->x), free(bf->b), free(bf->y), free(bf->y0);
}

static void run(struct buffers *bf, const struct product *p)
{
    memcpy(bf->y, bf->y0, (size_t)p->m * bf->ldy * sizeof *bf->y);
    gemv_rows_bt(p->m, p->n, p->k, bf->x, bf->ldx, bf->b, bf->ldb, bf->y, bf->ldy);
}

static const struct product shapes[] = {
    /* m, n, k */
    {1, 1, 1},    {1, 4, 16},   {1, 5, 17},   {1, 128, 6273}, {2, 3, 15},   {3, 7, 33},
    {4, 4, 32},   {5, 9, 47},   {7, 13, 203}, {8, 6, 256},    {13, 11, 95}, {16, 17, 1000},
    {17, 5, 31},  {6, 1, 2},    {1, 1000, 512},
};

TEST(matches_double_precision)
{
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        const struct product *p = &shapes[t];
        struct buffers bf;
        make(&bf, p, t + 1);
        run(&bf, p);
        double worst = 0;
        int outside = 0;
        for (int i = 0; i < p->m; i++) {
            for (int j = 0; j < p->n; j++) {
                const float old = bf.y0[(size_t)i * bf.ldy + j];
                double sum = old, mag = fabs(old);
                for (int k = 0; k < p->k; k++) {
                    const double v = (double)bf.x[(size_t)i * bf.ldx + k] * bf.b[(size_t)j * bf.ldb + k];
                    sum += v, mag += fabs(v);
                }
                const double err = fabs(bf.y[(size_t)i * bf.ldy + j] - sum) / mag;
                worst = err > worst ? err : worst;
            }
            for (size_t c = (size_t)p->n; c < bf.ldy; c++)
                outside += bf.y[(size_t)i * bf.ldy + c] != SENTINEL;
        }
        CHECK_MSG(worst < 2e-6, "m %d n %d k %d: error %g of the summed magnitude", p->m, p->n,
                  p->k, worst);
        CHECK_MSG(outside == 0, "m %d n %d k %d: %d floats written outside Y", p->m, p->n, p->k,
                  outside);
        release(&bf);
    }
}

/* Nothing to sum: Y keeps what it held. */
TEST(empty_sum)
{
    const struct product p = {3, 5, 0};
    struct buffers bf;
    make(&bf, &p, 77);
    run(&bf, &p);
    CHECK(memcmp(bf.y, bf.y0, 3 * bf.ldy * sizeof *bf.y) == 0);
    release(&bf);
}

TEST(threads_do_not_change_results)
{
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        const struct product *p = &shapes[t];
        struct buffers bf;
        make(&bf, p, 40 + t);
        const size_t len = (size_t)p->m * bf.ldy;
        parallel_set_threads(1);
        run(&bf, p);
        float *one = malloc(len * sizeof *one);
        memcpy(one, bf.y, len * sizeof *one);
        /* pieces run last first on one thread, then shared with the pool */
        const enum parallel_check modes[] = {PARALLEL_CHECK_REVERSE, PARALLEL_CHECK_EAGER};
        const char *mode_names[] = {"reversed", "pool"};
        for (int c = 2; c <= 4; c++)
            for (int mode = 0; mode < 2; mode++) {
                parallel_set_threads(c);
                parallel_set_check(modes[mode]);
                run(&bf, p);
                parallel_set_check(PARALLEL_CHECK_OFF);
                CHECK_MSG(memcmp(one, bf.y, len * sizeof *one) == 0,
                          "m %d n %d k %d: %d threads (%s) differ from one", p->m, p->n, p->k, c,
                          mode_names[mode]);
            }
        parallel_set_threads(0);
        free(one);
        release(&bf);
    }
}

/* Each row of X alone gives, bit for bit, its row of the whole call: an
 * image's probabilities do not depend on the batch it came in. */
TEST(rows_do_not_depend_on_the_batch)
{
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        const struct product *p = &shapes[t];
        struct buffers bf;
        make(&bf, p, 90 + t);
        run(&bf, p);
        int differ = 0;
        float *row = malloc(((size_t)p->n + 1) * sizeof *row);
        for (int i = 0; i < p->m; i++) {
            memcpy(row, bf.y0 + (size_t)i * bf.ldy, (size_t)p->n * sizeof *row);
            gemv_rows_bt(1, p->n, p->k, bf.x + (size_t)i * bf.ldx, bf.ldx, bf.b, bf.ldb, row,
                         (size_t)p->n);
            differ += memcmp(row, bf.y + (size_t)i * bf.ldy, (size_t)p->n * sizeof *row) != 0;
        }
        CHECK_MSG(differ == 0, "m %d n %d k %d: %d rows differ when alone", p->m, p->n, p->k,
                  differ);
        free(row);
        release(&bf);
    }
}

int main(void)
{
    if (!gemv_available()) {
        SKIP(matches_double_precision, "this CPU has no AVX-512: strata uses BLAS instead");
        SKIP(empty_sum, "no AVX-512");
        SKIP(threads_do_not_change_results, "no AVX-512");
        SKIP(rows_do_not_depend_on_the_batch, "no AVX-512");
        return check_done();
    }
    RUN(matches_double_precision);
    RUN(empty_sum);
    RUN(threads_do_not_change_results);
    RUN(rows_do_not_depend_on_the_batch);
    return check_done();
}
