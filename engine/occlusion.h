/*
 * occlusion.h — attribution by occlusion (Zeiler & Fergus 2014).
 *
 * A square patch of the model's mean colour (what its normalisation maps to
 * zero: grey for photos) slides over the image; each pixel's attribution is
 * the mean, over the patch positions that cover it, of how much the class's
 * probability drops when the patch hides it (p(image) − p(occluded)).
 * Positions run every `stride` pixels, plus one flush with the far edge, so
 * that every pixel is covered. All occluded copies go through the model in
 * batches.
 */
#ifndef STRATA_OCCLUSION_H
#define STRATA_OCCLUSION_H

#include <stdint.h>

#include "model.h"

/* Default patch side for a side×side input: about a sixth of it. */
int occlusion_default_patch(int side);

/* Occlusion map of class cls for rgb[H][W][3] (RGB8 at the model's input
 * size) into map[H][W] (the caller's), using the inference workspace ws.
 * patch in [1, min(H, W)], stride >= 1. Returns 0 or a negative status
 * (STRATA_E_ARG for sizes, memory). */
int occlusion_compute(struct model *m, struct model_workspace *ws, const uint8_t *rgb, int cls,
                      int patch, int stride, float *map, char *err);

#endif
