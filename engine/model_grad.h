/*
 * model_grad.h — any strata model as a graph with gradients: what the
 * gradient explanations (Grad-CAM, Integrated Gradients) need.
 *
 * An imported model is its ONNX graph already. One of strata's own models is
 * written as ONNX in memory (onnx_export_bytes) and loaded back as a graph,
 * the same graph `strata export` writes and model_forward runs (without
 * gradients, with its own workspace). A struct model_grad owns one workspace
 * with gradient buffers for up to max_batch images: one per thread.
 *
 * Inputs are normalised images channels first, x = (pixel/255 − mean)/std,
 * [n][3][H][W] at the model's input size; gradients are of a class's logit
 * (the score before the softmax) and come back in the same layout.
 */
#ifndef STRATA_MODEL_GRAD_H
#define STRATA_MODEL_GRAD_H

#include <stddef.h>
#include <stdint.h>

#include "graph.h"
#include "model.h"

struct model_grad {
    const struct model *m;  /* borrowed: must outlive this struct */
    struct model_graph *own; /* a model without m->graph: the graph built for it (owned) */
    const struct graph *g;  /* &own, or the imported model's graph */
    int input, logits;      /* value indices */
    int max_batch;          /* images per run (1 for a file with a fixed batch of 1) */
    int n_classes, h, w;
    struct graph_ws ws;     /* with gradients */
    float *dout;            /* [max_batch × n_classes] one-hot rows */
    uint8_t *to_logits;     /* [n_values] values the logits depend on */
};

/* Builds mg for m (with its weights loaded) and up to max_batch images a run.
 * Returns 0, or a negative status (memory; a graph op without a gradient is
 * only refused by model_grad_run). On failure mg is left safe to deinit. */
int model_grad_init(struct model_grad *mg, const struct model *m, int max_batch, char *err);
void model_grad_deinit(struct model_grad *mg);

/* x[3][H][W] = the normalised image rgb[H][W][3] (RGB8 at the input size),
 * with the same arithmetic as model_normalise. Can't fail. */
void model_grad_image(const struct model_grad *mg, const uint8_t *rgb, float *x);

/* Runs the n <= max_batch images x[n][3][H][W] (borrowed for the call).
 * With classes != NULL, also back-propagates the logit of classes[i] for each
 * image i, so that model_grad_gradient holds d logit / d value for the input
 * and every activation that leads to the logits. Returns 0 or a negative
 * status (an op without a gradient, naming the node). */
int model_grad_run(struct model_grad *mg, const float *x, int n, const int *classes, char *err);

/* The logits of the last run: [n][n_classes] (borrowed). */
const float *model_grad_logits(const struct model_grad *mg);

/* A value of the last run and its gradient (borrowed; the gradient's data is
 * NULL for values that do not lead from the input to the logits). */
const struct tview *model_grad_value(const struct model_grad *mg, int v);
const struct tview *model_grad_gradient(const struct model_grad *mg, int v);

/* Bytes of activations and their gradients the workspace holds per run of
 * max_batch images (the weights, shared, not counted). Can't fail. */
size_t model_grad_activation_bytes(const struct model_grad *mg);

/* The value Grad-CAM looks at. name NULL: the last spatial activation
 * before the logits (4-D, more than one position, not a mere reshape or
 * transpose of another). Else the value of that name or, for strata's own
 * models, the last value of the layer of that name ("conv4"). Returns the
 * value index, or STRATA_E_NOTFOUND with a message listing the spatial
 * layers there are. */
int model_grad_find_layer(const struct model_grad *mg, const char *name, char *err);

#endif
