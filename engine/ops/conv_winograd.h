/*
 * conv_winograd.h — the forward pass of a 3×3, stride 1, undilated
 * convolution by Winograd's minimal filtering F(2×2, 3×3) (Lavin and Gray,
 * 2016): 16 multiplications per 2×2 block of outputs and input channel
 * instead of 36, the products done by strata's sgemm. Used by conv.c where
 * AVX-512 is present and the layer is large enough; its results differ from
 * the direct convolution's by rounding only (the transforms' coefficients
 * are 0, ±1 and ±½), checked against a double-precision reference in
 * test_ops_conv.
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
};

/* 1 when Winograd pays for this layer (from its channels and its output
 * size per image, never the batch size). */
int winograd_worth_it(int C, int M, int Ho, int Wo);

/* Floats of the weights' transform U (16·M·C). */
size_t winograd_weights_size(int C, int M);

/* Computes U from cv->w into U (winograd_weights_size floats), on the
 * engine's threads. Can't fail. */
void winograd_weights(const struct winograd_conv *cv, float *U);

/* Floats of scratch winograd_forward needs, on up to `threads` threads,
 * besides U. */
size_t winograd_scratch(int C, int M, int threads);

/* Computes Y from U (winograd_weights of the same cv). scratch is 64-byte
 * aligned, scratch_len floats (at least winograd_scratch(C, M, 1)). Runs on
 * the engine's threads. Requires sgemm_available(). Can't fail. */
void winograd_forward(const struct winograd_conv *cv, const float *U, float *scratch,
                      size_t scratch_len);

#endif
