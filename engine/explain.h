/*
 * explain.h — LIME explanations of a model's prediction.
 *
 * Connects the model-agnostic LIME engine (lime.h) to a strata model: the
 * image is resized once to the model's input size, and LIME's perturbed
 * images are classified in batches through one inference workspace. The
 * explanation (segments, overlays) refers to that resized image.
 */
#ifndef STRATA_EXPLAIN_H
#define STRATA_EXPLAIN_H

#include "image.h"
#include "lime.h"
#include "model.h"

/* Explains img (any size) for the classes in labels[n_labels] (n_labels 0:
 * the top p->top_labels predicted classes). On success fills *res (free with
 * lime_result_free) and *resized with the image at the model's input size
 * (free with image_free), which is what overlays are drawn on. */
int explain_image(struct model *m, const struct image *img, const struct lime_params *p,
                  const int *labels, int n_labels, struct lime_result *res, struct image *resized,
                  char *err);

#endif
