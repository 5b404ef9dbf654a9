/*
 * gradcam.h — Grad-CAM (Selvaraju et al. 2017), as pytorch-grad-cam
 * computes it.
 *
 * At an activation A [C][h][w] of the image, with s the class's logit:
 * α_k = mean over the h×w positions of ∂s/∂A_k, cam = ReLU(Σ_k α_k A_k),
 * upsampled bilinearly to the input size (pixel centres aligned, as
 * OpenCV's resize). The map is not normalised: its scale is the logit's.
 */
#ifndef STRATA_GRADCAM_H
#define STRATA_GRADCAM_H

#include "model_grad.h"

/* Grad-CAM of class cls for the normalised image x[3][H][W] at value
 * `layer` (model_grad_find_layer) into map[H][W] (the caller's). Returns 0
 * or a negative status (model_grad_run's). */
int gradcam_compute(struct model_grad *mg, const float *x, int cls, int layer, float *map,
                    char *err);

/* dst[dh][dw] = src[sh][sw] resized bilinearly with pixel centres aligned
 * (x_src = (x + 0.5)·sw/dw − 0.5, clamped to the edges). Can't fail. */
void gradcam_upsample(const float *src, int sh, int sw, float *dst, int dh, int dw);

#endif
