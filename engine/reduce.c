/* reduce.c — activation maps to feature rows (see reduce.h). */
#include "reduce.h"

#include <assert.h>
#include <limits.h>
#include <cblas.h>
#include <math.h>
#include <stdlib.h>

#include "parallel.h"
#include "rng.h"
#include "transpose8.h"

/* Channels summed at once: a double accumulator per channel on the stack. */
#define REDUCE_CHUNK 256

void reduce_avgpool_grid(int h, int w, int grid, int *gh, int *gw)
{
    assert(h >= 1 && w >= 1 && grid >= 1);
    *gh = grid < h ? grid : h;
    *gw = grid < w ? grid : w;
}

int reduce_avgpool_dim(int h, int w, int c, int grid)
{
    int gh, gw;
    reduce_avgpool_grid(h, w, grid, &gh, &gw);
    return gh * gw * c;
}

void reduce_avgpool(const float *act, int n, int h, int w, int c, int grid, float *out)
{
    assert(act && out && n >= 0 && c >= 1);
    int gh, gw;
    reduce_avgpool_grid(h, w, grid, &gh, &gw);
    size_t in_size = (size_t)h * w * c, out_size = (size_t)gh * gw * c;
    double acc[REDUCE_CHUNK];
    for (int s = 0; s < n; s++) {
        const float *a = act + (size_t)s * in_size;
        float *o = out + (size_t)s * out_size;
        for (int by = 0; by < gh; by++) {
            /* [floor(i L / g), ceil((i + 1) L / g)) */
            int y0 = by * h / gh, y1 = ((by + 1) * h + gh - 1) / gh;
            for (int bx = 0; bx < gw; bx++) {
                int x0 = bx * w / gw, x1 = ((bx + 1) * w + gw - 1) / gw;
                double inv = 1.0 / ((double)(y1 - y0) * (x1 - x0));
                for (int c0 = 0; c0 < c; c0 += REDUCE_CHUNK) {
                    int cn = c - c0 < REDUCE_CHUNK ? c - c0 : REDUCE_CHUNK;
                    for (int j = 0; j < cn; j++)
                        acc[j] = 0;
                    for (int y = y0; y < y1; y++)
                        for (int x = x0; x < x1; x++) {
                            const float *px = a + ((size_t)y * w + x) * c + c0;
                            for (int j = 0; j < cn; j++)
                                acc[j] += px[j];
                        }
                    float *ob = o + ((size_t)by * gw + bx) * c + c0;
                    for (int j = 0; j < cn; j++)
                        ob[j] = (float)(acc[j] * inv);
                }
            }
        }
    }
}

/* Channels summed together from NCHW: enough independent sums to keep the
 * adder busy, few enough planes read at once to stay in the cache. A unit
 * of work is two blocks (bin_sums16). */
#define NCHW_BLOCK 8
#define NCHW_UNIT 16

struct avgpool_nchw_job {
    const float *act;
    float *out;
    int h, w, c, gh, gw, blocks;
    int vector; /* bin_sums16 where a unit is whole */
};

static int avgpool_vector_enabled = 1;

void reduce_set_vector(int on)
{
    avgpool_vector_enabled = on != 0;
}

static int avgpool_vector(void)
{
    static int cpu = -1;
    if (cpu < 0) {
        __builtin_cpu_init();
        cpu = __builtin_cpu_supports("avx512f") ? 1 : 0;
    }
    return cpu && avgpool_vector_enabled;
}

/* One bin of cn ≤ NCHW_BLOCK channels (channel k's plane at a + k·plane)
 * into ob[0 … cn): a block of channels at once, independent sums so that
 * they do not wait on one another; each channel's additions are
 * reduce_avgpool's, in the same order (row by row, left to right, in
 * double, from 0). */
static void bin_sums(const float *a, size_t plane, int w, int cn, int y0, int y1, int x0, int x1,
                     double inv, float *ob)
{
    double acc[NCHW_BLOCK];
    for (int k = 0; k < cn; k++)
        acc[k] = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            const float *px = a + (size_t)y * w + x;
            for (int k = 0; k < cn; k++)
                acc[k] += px[(size_t)k * plane];
        }
    for (int k = 0; k < cn; k++)
        ob[k] = (float)(acc[k] * inv);
}

/* bin_sums for two blocks of 8 channels (16 planes from a), the same sums
 * bit for bit: 8 columns of 8 channels are read as rows and transposed in
 * registers, so that lane k of a vector is channel k at one column, and
 * each column is added in turn, as bin_sums does. Two blocks give two
 * independent chains of additions. */
__attribute__((target("avx512f"))) static void bin_sums16(const float *a, size_t plane, int w,
                                                          int y0, int y1, int x0, int x1,
                                                          double inv, float *ob)
{
    __m512d acc[2] = {_mm512_setzero_pd(), _mm512_setzero_pd()};
    for (int y = y0; y < y1; y++) {
        const float *row = a + (size_t)y * w;
        int x = x0;
        for (; x + 8 <= x1; x += 8) {
            __m256 r[2][8];
            for (int b = 0; b < 2; b++)
                for (int k = 0; k < 8; k++)
                    r[b][k] = _mm256_loadu_ps(row + (size_t)(8 * b + k) * plane + x);
            transpose8x8_ps(r[0]);
            transpose8x8_ps(r[1]);
            for (int i = 0; i < 8; i++)
                for (int b = 0; b < 2; b++)
                    acc[b] = _mm512_add_pd(acc[b], _mm512_cvtps_pd(r[b][i]));
        }
        for (; x < x1; x++)
            for (int b = 0; b < 2; b++) {
                float v[8];
                for (int k = 0; k < 8; k++)
                    v[k] = row[(size_t)(8 * b + k) * plane + x];
                acc[b] = _mm512_add_pd(acc[b], _mm512_cvtps_pd(_mm256_loadu_ps(v)));
            }
    }
    const __m512d vinv = _mm512_set1_pd(inv);
    for (int b = 0; b < 2; b++)
        _mm256_storeu_ps(ob + 8 * b, _mm512_cvtpd_ps(_mm512_mul_pd(acc[b], vinv)));
}

/* Units [u0, u1) of an avgpool_nchw_job: unit u is image u / blocks and its
 * block u % blocks of NCHW_UNIT channels, every bin of them. */
static void avgpool_nchw_piece(void *ctx, int u0, int u1)
{
    const struct avgpool_nchw_job *j = ctx;
    const int h = j->h, w = j->w, c = j->c, gh = j->gh, gw = j->gw;
    const size_t plane = (size_t)h * w, out_size = (size_t)gh * gw * c;
    const int vector = j->vector;
    for (int u = u0; u < u1; u++) {
        const int s = u / j->blocks, c0 = u % j->blocks * NCHW_UNIT;
        const int cn = c - c0 < NCHW_UNIT ? c - c0 : NCHW_UNIT;
        const float *a = j->act + ((size_t)s * c + c0) * plane;
        float *o = j->out + (size_t)s * out_size;
        for (int by = 0; by < gh; by++) {
            int y0 = by * h / gh, y1 = ((by + 1) * h + gh - 1) / gh;
            for (int bx = 0; bx < gw; bx++) {
                int x0 = bx * w / gw, x1 = ((bx + 1) * w + gw - 1) / gw;
                double inv = 1.0 / ((double)(y1 - y0) * (x1 - x0));
                float *ob = o + ((size_t)by * gw + bx) * c + c0;
                if (vector && cn == NCHW_UNIT) {
                    bin_sums16(a, plane, w, y0, y1, x0, x1, inv, ob);
                    continue;
                }
                for (int k0 = 0; k0 < cn; k0 += NCHW_BLOCK)
                    bin_sums(a + (size_t)k0 * plane, plane, w,
                             cn - k0 < NCHW_BLOCK ? cn - k0 : NCHW_BLOCK, y0, y1, x0, x1, inv,
                             ob + k0);
            }
        }
    }
}

void reduce_avgpool_nchw(const float *act, int n, int h, int w, int c, int grid, float *out)
{
    assert(act && out && n >= 0 && c >= 1);
    struct avgpool_nchw_job j = {.act = act, .out = out, .h = h, .w = w, .c = c,
                                 .blocks = (c + NCHW_UNIT - 1) / NCHW_UNIT,
                                 .vector = avgpool_vector()};
    reduce_avgpool_grid(h, w, grid, &j.gh, &j.gw);
    const size_t units = (size_t)n * j.blocks;
    assert(units <= INT_MAX);
    /* every unit's outputs are its own: any split gives the same features
     * (the analysis pools every layer of every batch: a quarter of its
     * forward pass on one thread) */
    parallel_for_grain((int)units, parallel_grain((size_t)h * w * NCHW_UNIT), avgpool_nchw_piece,
                       &j);
}

void reduce_projection_matrix(int d_in, int d_out, uint64_t seed, float *R)
{
    assert(R && d_in >= 1 && d_out >= 1);
    struct rng r;
    rng_seed(&r, seed);
    double sd = 1.0 / sqrt((double)d_out);
    for (size_t i = 0; i < (size_t)d_in * d_out; i++)
        R[i] = (float)(sd * rng_normal(&r));
}

void reduce_project(const float *in, int n, int d_in, const float *R, int d_out, float *out)
{
    assert(in && R && out && d_in >= 1 && d_out >= 1);
    if (n <= 0)
        return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, d_out, d_in, 1.0f, in, d_in, R,
                d_out, 0.0f, out, d_out);
}

int reduce_random_projection(const float *in, int n, int d_in, int d_out, uint64_t seed,
                             float *out, char *err)
{
    if (d_in < 1 || d_out < 1)
        return strata_fail(err, STRATA_E_ARG,
                           "random projection needs d_in >= 1 and d_out >= 1 (got %d, %d)", d_in,
                           d_out);
    float *R = malloc(sizeof(float) * (size_t)d_in * d_out);
    if (!R)
        return strata_fail(err, STRATA_E_NOMEM,
                           "out of memory for a %d x %d projection matrix", d_in, d_out);
    reduce_projection_matrix(d_in, d_out, seed, R);
    reduce_project(in, n, d_in, R, d_out, out);
    free(R);
    return STRATA_OK;
}
