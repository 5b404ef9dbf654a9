/*
 * explain.h — LIME explanations of a model's prediction.
 *
 * Connects the model-agnostic LIME engine (lime.h) to a strata model: the
 * image is resized once to the model's input size, and LIME's samples are
 * classified through the receptive-field tables of lime_local.h when the
 * model starts with local layers and that pays for this image (the seed
 * architecture: about 50× faster), else as perturbed images in batches
 * through one inference workspace, a batch at a time (explain_batch). Both
 * give the same probabilities up to float rounding. The explanation (segments, overlays) refers to the
 * resized image.
 */
#ifndef STRATA_EXPLAIN_H
#define STRATA_EXPLAIN_H

#include "image.h"
#include "lime.h"
#include "model.h"

/* Explains img (any size) for the classes in labels[n_labels] (n_labels 0:
 * the top p->top_labels predicted classes). On success fills *res (free with
 * lime_result_free; res->mask_path says whether the tables were used) and
 * *resized with the image at the model's input size (free with image_free),
 * which is what overlays are drawn on. Fails with STRATA_E_NOTFOUND for a
 * label that is not a class, STRATA_E_ARG for batch_size < 1, and as
 * image_resize and lime_explain do; nothing is left allocated then. */
/* The images LIME's samples go through the model at a time: requested (the
 * params' batch_size), or fewer, so that their activations stay within
 * EXPLAIN_BATCH_BYTES. Larger batches buy nothing here: on felines, 12
 * images a batch ran LIME in 354 ms and 81 MB, 100 in 566 ms and 608 MB —
 * a batch that fits in the caches is faster than one that streams through
 * memory. At least 1. */
#define EXPLAIN_BATCH_BYTES ((size_t)48 << 20)
int explain_batch(const struct model *m, int requested);

int explain_image(struct model *m, const struct image *img, const struct lime_params *p,
                  const int *labels, int n_labels, struct lime_result *res, struct image *resized,
                  char *err);

#endif
