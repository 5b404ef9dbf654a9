/*
 * augment.h — random image augmentation for training.
 *
 * One pass per training image turns an RGB8 image into the model's
 * normalised float input with, each switchable: a horizontal flip, a zoom
 * (scale up to 1 + zoom about a random centre), a translation (up to
 * translate × side in each direction, border pixels replicated), and colour
 * jitter (brightness, contrast, saturation factors drawn from
 * [1 - x, 1 + x]). Geometry is one bilinear resampling, so the combined
 * transform costs about as much as a copy. Last, random erasing (Zhong et
 * al. 2020, "cutout"): with probability `erase`, a rectangle of 2–25 % of
 * the image, aspect ratio in [0.3, 3.3], is set to 0 after normalisation —
 * the dataset's mean colour — so that no single region can carry a class.
 */
#ifndef STRATA_AUGMENT_H
#define STRATA_AUGMENT_H

#include <stdint.h>

#include "rng.h"

struct augment_config {
    int flip;           /* 0/1: mirror left-right with probability 1/2 */
    float zoom;         /* 0 = off; e.g. 0.15 */
    float translate;    /* 0 = off; fraction of the side, e.g. 0.1 */
    float brightness;   /* 0 = off; e.g. 0.2 */
    float contrast;     /* 0 = off */
    float saturation;   /* 0 = off */
    float erase;        /* 0 = off; probability of erasing one rectangle, e.g. 0.5 */
    float cutmix;       /* 0 = off; probability of pasting a rectangle of another image of
                           the batch, its label mixed in (applied by train_run: cutmix.h) */
};

/* Writes the augmented, normalised image into dst[h*w*3] (NHWC, one
 * sample): x = (p/255 - mean[c]) / std[c]. src is w×h RGB8. Each switched-on
 * transform draws from r (a switched-off one draws nothing, so adding a
 * transform never changes what the others draw). */
void augment_sample(const struct augment_config *a, const uint8_t *src, int w, int h,
                    const float mean[3], const float std[3], float *dst, struct rng *r);

/* dst = src (a size×size image of `channels` floats per pixel, HWC) turned
 * `turns` quarter turns clockwise: dst[y][x] = src[size-1-x][y] for one
 * turn. turns is taken modulo 4; src and dst must not overlap. Training
 * with rotation labels (train.h) shows images turned this way. */
void augment_turn(const float *src, int size, int channels, int turns, float *dst);

#endif
