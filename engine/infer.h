/*
 * infer.h — batched inference over many images.
 *
 * The glue every caller of a trained model needs (eval, analysis, LIME, the
 * server): RGB8 images already at the model's input size go through the
 * model in batches of at most the workspace's size; probabilities come back
 * per image, and an optional callback sees every layer's output of each
 * batch before the next batch overwrites it.
 */
#ifndef STRATA_INFER_H
#define STRATA_INFER_H

#include <stdint.h>

#include "model.h"

/* Called once per batch with the images [first, first + n): the outputs are
 * model_output(ws, layer) for each layer (borrowed, valid during the call).
 * Returns 0 to go on, a negative status to stop. */
typedef int (*infer_capture_fn)(void *user, const struct model *m,
                                const struct model_workspace *ws, int first, int n);

/* Runs n images (pixels: n × input.h × input.w × 3 RGB8) through the model
 * using ws (an inference workspace from model_workspace_init), writing
 * probs[n × n_classes] (may be NULL) — the last layer's output. Stops and
 * returns the callback's status if it fails; otherwise 0. */
int infer_images(struct model *m, struct model_workspace *ws, const uint8_t *pixels, int n,
                 float *probs, infer_capture_fn capture, void *user);

/* Index of the largest of n values (the first on ties). */
int infer_argmax(const float *v, int n);

#endif
