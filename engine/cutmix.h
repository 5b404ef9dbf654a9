/*
 * cutmix.h — CutMix (Yun et al. 2019, "CutMix: regularization strategy to
 * train strong classifiers with localizable features"): a training image
 * gets a rectangle of another image of its batch pasted in, and its target
 * becomes the two labels mixed by the areas they show. A network can then
 * lean on no single region of an image, and it learns from every pixel it
 * is shown, where erasing the rectangle would waste it.
 */
#ifndef STRATA_CUTMIX_H
#define STRATA_CUTMIX_H

#include "rng.h"

/* What image i of a batch shows: its own pixels on `keep` of its area, and
 * image `partner`'s on the rest (partner = i, keep = 1: not mixed). */
struct cutmix_pair {
    int partner;
    float keep;
};

/* With probability p for each of the n images of batch (n × h × w × c
 * floats, HWC), pastes the same rectangle of another image of the batch,
 * as it was before any pasting, into it: λ is drawn uniform in (0, 1), the
 * rectangle is h·√(1−λ) by w·√(1−λ) about a uniform centre, clipped to the
 * image, and keep is 1 − its area / (h·w) once clipped. Writes pairs[n].
 * copy is caller-owned scratch of n × h × w × c floats. Draws nothing from
 * r when p is 0 or n < 2, so switching CutMix off changes no other draw. */
void cutmix_batch(float *batch, float *copy, int n, int h, int w, int c, float p,
                  struct cutmix_pair *pairs, struct rng *r);

#endif
