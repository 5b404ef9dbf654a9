/*
 * conv_winograd.h — the forward pass of a 3×3, stride 1, undilated
 * convolution by Winograd's minimal filtering (Lavin and Gray, 2016):
 * F(2×2, 3×3), 16 multiplications per 2×2 block of outputs and input
 * channel instead of 36, or F(4×4, 3×3), 36 per 4×4 block instead of 144;
 * the products done by strata's sgemm. Used by conv.c where AVX-512 is
 * present and the layer is large enough; its results differ from the direct
 * convolution's by rounding only (the transforms' coefficients are small
 * integers and fractions: ±½ for F(2×2), down to 1/24 for F(4×4)), checked
 * against a double-precision reference in test_ops_conv.
 */
#ifndef STRATA_CONV_WINOGRAD_H
#define STRATA_CONV_WINOGRAD_H

#include <stddef.h>

/* One group of a convolution: X [N, C, H, W] (images image_stride floats
 * apart, channel planes H·W apart), weights [M, C, 3, 3], optional bias [M],
 * output Y [N, M, Ho, Wo] (images y_image_stride apart), padding pt, pl
 * before the first row and column. */
struct winograd_conv {
    int N, C, H, W, M, Ho, Wo, pt, pl;
    const float *x, *w, *bias;
    size_t image_stride, y_image_stride;
    float *y;
    int clamp;          /* a fused Relu or Clip: min(max(y, lo), hi) */
    float lo, hi;
    int tile;           /* 2: F(2×2, 3×3); 4: F(4×4, 3×3) (winograd_tile) */
    /* Or NULL: a fused 2×2 max pooling at stride 2 (op_ctx.pool). Its
     * output [N, M, ⌊Ho/2⌋, ⌊Wo/2⌋] (images pool_image_stride floats apart)
     * is written instead of y, from each block's outputs while they are in
     * registers: y is not touched. */
    float *pool_y;
    size_t pool_image_stride;
};

/* The form that pays for this layer, from its channels and its output size
 * per image (never the batch size): 4 for F(4×4, 3×3), 2 for F(2×2, 3×3),
 * 0 for neither. */
int winograd_tile(int C, int M, int Ho, int Wo);

/* Floats of the weights' transform U ((tile + 2)²·M·C). */
size_t winograd_weights_size(int tile, int C, int M);

/* Computes U from cv->w into U (winograd_weights_size floats), on the
 * engine's threads. Can't fail. */
void winograd_weights(const struct winograd_conv *cv, float *U);

/* Floats of scratch winograd_forward needs, on up to `threads` threads,
 * besides U. */
size_t winograd_scratch(int tile, int C, int M, int threads);

/* Computes Y from U (winograd_weights of the same cv). scratch is 64-byte
 * aligned, scratch_len floats (at least winograd_scratch(C, M, 1)). Runs on
 * the engine's threads. Requires sgemm_available(). Can't fail. */
void winograd_forward(const struct winograd_conv *cv, const float *U, float *scratch,
                      size_t scratch_len);

#endif
