/*
 * reduce.h — turns one layer's activation of each image into a feature row,
 * the input of k-means, PCA and the silhouette.
 *
 * Default: adaptive average pooling of each channel to a g x g grid (g = 2;
 * g = 1 is global average pooling), giving g*g*c features laid out
 * [gy][gx][c] (NHWC order, like the activations). A dense layer's output
 * (1 x 1 x c) passes through unchanged. Why average pooling and not, say, the
 * flattened map:
 *   - it keeps channel identity: feature j of every row is the same unit, so
 *     rows from different images are directly comparable and a cluster
 *     centre reads as "which channels fire, roughly where";
 *   - it is spatially coarse on purpose: images of one class differ in
 *     object position, and a 2 x 2 grid keeps top/bottom/left/right without
 *     making every pixel offset a different feature;
 *   - it is deterministic and cheap (one pass over the activation), and the
 *     size g*g*c stays in the range k-means and PCA handle live (c <= 512
 *     gives <= 2048 features), where a flattened 56 x 56 x 64 map would give
 *     200 704.
 * Option: a seeded Gaussian random projection to D dimensions (Johnson-
 * Lindenstrauss: squared distances kept within a factor 1 +- O(1/sqrt(D)) in
 * expectation), for when even pooled rows are too wide; the matrix is
 * generated from the seed, so analysis and later queries agree.
 *
 * Bins follow adaptive average pooling as deep-learning frameworks define
 * it: bin i of g over a length L covers [floor(i L / g), ceil((i+1) L / g)),
 * so bins overlap by one pixel when g does not divide L.
 */
#ifndef STRATA_REDUCE_H
#define STRATA_REDUCE_H

#include <stdint.h>

#include "status.h"

#define REDUCE_DEFAULT_GRID 2

/* The grid actually used for an h x w map: min(grid, h) x min(grid, w)
 * (grid >= 1, asserted). */
void reduce_avgpool_grid(int h, int w, int grid, int *gh, int *gw);

/* Features per row from reduce_avgpool: gh * gw * c. */
int reduce_avgpool_dim(int h, int w, int c, int grid);

/* Average-pools n activations act[n][h][w][c] (NHWC) into
 * out[n][reduce_avgpool_dim(h, w, c, grid)], sums in double. Allocates
 * nothing; can't fail (shapes >= 1, asserted). */
void reduce_avgpool(const float *act, int n, int h, int w, int c, int grid, float *out);

/* The same features, bit for bit, from activations laid out NCHW
 * (act[n][c][h][w], the graph executor's own layout): no copy to NHWC
 * first. */
void reduce_avgpool_nchw(const float *act, int n, int h, int w, int c, int grid, float *out);

/* reduce_avgpool_nchw reads 16 channels at a time with AVX-512 where the
 * CPU has it; reduce_set_vector(0) makes it take the plain loop it falls
 * back on otherwise (the same features, bit for bit), for tests. Not
 * thread-safe; set it while nothing pools. */
void reduce_set_vector(int on);

/* Fills R (d_in x d_out, row-major) with N(0, 1/d_out) entries drawn from a
 * generator seeded with `seed`: the same seed always gives the same matrix.
 * Can't fail. */
void reduce_projection_matrix(int d_in, int d_out, uint64_t seed, float *R);

/* out[n][d_out] = in[n][d_in] . R (one cblas_sgemm). Can't fail. */
void reduce_project(const float *in, int n, int d_in, const float *R, int d_out, float *out);

/* reduce_projection_matrix + reduce_project, the matrix allocated once for
 * the call (d_in * d_out floats). Returns 0, STRATA_E_ARG for d_out < 1 or
 * d_in < 1, or STRATA_E_NOMEM. Keep the matrix yourself (the two functions
 * above) when projecting many batches. */
int reduce_random_projection(const float *in, int n, int d_in, int d_out, uint64_t seed,
                             float *out, char *err);

#endif
