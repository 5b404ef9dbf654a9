/*
 * faithfulness.h — how well a map agrees with the model's own behaviour:
 * the deletion and insertion curves of Petsiuk et al. (RISE, 2018).
 *
 * Pixels are taken in the order of the map, largest first (ties in reading
 * order), FAITH_STEPS at a time by equal shares (5 % each). Deletion starts
 * from the image and paints the taken pixels black; insertion starts from a
 * blurred copy and puts the taken pixels back. At each step the class's
 * probability is recorded; a map that points at what the model uses makes
 * the deletion curve fall fast (small area: better) and the insertion curve
 * rise fast (large area: better). Areas by the trapezoid rule over [0, 1].
 * All 2 × (FAITH_STEPS + 1) images go through the model in batches.
 */
#ifndef STRATA_FAITHFULNESS_H
#define STRATA_FAITHFULNESS_H

#include <stdint.h>

#include "model.h"

#define FAITH_STEPS 20

struct faith_result {
    float deletion[FAITH_STEPS + 1];  /* p(class) after removing k/FAITH_STEPS of the pixels */
    float insertion[FAITH_STEPS + 1]; /* p(class) after revealing k/FAITH_STEPS of them */
    double deletion_auc, insertion_auc;
};

/* Blur applied to the insertion's starting image, for an input side. */
float faith_blur_sigma(int side);

/* Curves of class cls for rgb[H][W][3] (RGB8 at the model's input size)
 * ordered by map[H][W], starting insertion from blurred[H][W][3], through
 * the inference workspace ws. Returns 0 or a negative status (memory). */
int faith_compute(struct model *m, struct model_workspace *ws, const uint8_t *rgb,
                  const uint8_t *blurred, int cls, const float *map, struct faith_result *r,
                  char *err);

/* The area under a curve of FAITH_STEPS + 1 points evenly spaced on [0, 1],
 * by the trapezoid rule. Can't fail. */
double faith_auc(const float *curve);

#endif
