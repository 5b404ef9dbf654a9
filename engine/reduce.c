/* reduce.c — activation maps to feature rows (see reduce.h). */
#include "reduce.h"

#include <assert.h>
#include <limits.h>
#include <cblas.h>
#include <math.h>
#include <stdlib.h>

#include "parallel.h"
#include "rng.h"

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
 * adder busy, few enough planes read at once to stay in the cache. */
#define NCHW_BLOCK 8

struct avgpool_nchw_job {
    const float *act;
    float *out;
    int h, w, c, gh, gw, blocks;
};

/* Units [u0, u1) of an avgpool_nchw_job: unit u is image u / blocks and its
 * block u % blocks of NCHW_BLOCK channels, every bin of them. */
static void avgpool_nchw_piece(void *ctx, int u0, int u1)
{
    const struct avgpool_nchw_job *j = ctx;
    const int h = j->h, w = j->w, c = j->c, gh = j->gh, gw = j->gw;
    const size_t plane = (size_t)h * w, out_size = (size_t)gh * gw * c;
    double acc[NCHW_BLOCK];
    for (int u = u0; u < u1; u++) {
        const int s = u / j->blocks, c0 = u % j->blocks * NCHW_BLOCK;
        const int cn = c - c0 < NCHW_BLOCK ? c - c0 : NCHW_BLOCK;
        const float *a = j->act + ((size_t)s * c + c0) * plane;
        float *o = j->out + (size_t)s * out_size;
        for (int by = 0; by < gh; by++) {
            int y0 = by * h / gh, y1 = ((by + 1) * h + gh - 1) / gh;
            for (int bx = 0; bx < gw; bx++) {
                int x0 = bx * w / gw, x1 = ((bx + 1) * w + gw - 1) / gw;
                double inv = 1.0 / ((double)(y1 - y0) * (x1 - x0));
                /* a block of channels at once: independent sums, so that
                 * they do not wait on one another; each channel's additions
                 * are reduce_avgpool's, in the same order */
                for (int k = 0; k < cn; k++)
                    acc[k] = 0;
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++) {
                        const float *px = a + (size_t)y * w + x;
                        for (int k = 0; k < cn; k++)
                            acc[k] += px[(size_t)k * plane];
                    }
                float *ob = o + ((size_t)by * gw + bx) * c + c0;
                for (int k = 0; k < cn; k++)
                    ob[k] = (float)(acc[k] * inv);
            }
        }
    }
}

void reduce_avgpool_nchw(const float *act, int n, int h, int w, int c, int grid, float *out)
{
    assert(act && out && n >= 0 && c >= 1);
    struct avgpool_nchw_job j = {.act = act, .out = out, .h = h, .w = w, .c = c,
                                 .blocks = (c + NCHW_BLOCK - 1) / NCHW_BLOCK};
    reduce_avgpool_grid(h, w, grid, &j.gh, &j.gw);
    const size_t units = (size_t)n * j.blocks;
    assert(units <= INT_MAX);
    /* every unit's outputs are its own: any split gives the same features
     * (the analysis pools every layer of every batch: a quarter of its
     * forward pass on one thread) */
    parallel_for_grain((int)units, parallel_grain((size_t)h * w * NCHW_BLOCK), avgpool_nchw_piece,
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
