/*
 * train_graph.h — one of strata's own models as the graph it trains on.
 *
 * Training runs on the graph executor, as inference does: the model is
 * written as ONNX in memory and read back as a graph (model_graph_of_layers,
 * the graph `strata export` writes), and each step runs that graph in
 * training mode (batch statistics in BatchNormalization, Dropout drawn from a
 * seeded generator) and back-propagates the loss's gradient with respect to
 * the logits to every weight. The graph's initializers are the weights being
 * trained; train_graph_to_model copies them back into the model's layers, in
 * strata's layout (kernels HWIO, dense [in][units]).
 *
 * A struct train_graph owns its graph, one workspace with gradients for up to
 * max_batch images, and the channels-first staging of a batch. Nothing is
 * allocated after train_graph_init.
 */
#ifndef STRATA_TRAIN_GRAPH_H
#define STRATA_TRAIN_GRAPH_H

#include <stdint.h>

#include "graph.h"
#include "model.h"
#include "optim.h"

/* Where one parameter tensor of a layer sits in the graph. */
struct train_param {
    int layer;          /* index in the model's layers */
    int value;          /* the graph initializer holding it */
    int which;          /* enum train_param_kind (train_graph.c) */
};

struct train_graph {
    struct model_graph *mg;  /* owned */
    struct graph_ws ws;      /* with gradients */
    int input, logits, probs; /* value indices */
    int max_batch, n_classes, h, w;
    float *nchw;             /* [max_batch][3][h][w] the batch, channels first */
    int n_params;
    struct train_param *params; /* [n_params] every layer tensor, in the model's slab order */
};

/* Builds t for m (an own model with its weights set: the starting point) and
 * up to max_batch images a step; dropout draws from a generator seeded with
 * `seed`. Returns 0 or a negative status (memory; a model that does not
 * build as a graph). On failure t is left safe to free. */
int train_graph_init(struct train_graph *t, const struct model *m, int max_batch, uint64_t seed,
                     char *err);
void train_graph_free(struct train_graph *t);

/* The trainable tensors (kernels and biases, batch-norm scale and offset;
 * not the running statistics) with their gradients, for optim_init_tensors:
 * writes at most t->n_params entries into out and returns how many. Kernels
 * decay. */
int train_graph_optim_tensors(const struct train_graph *t, struct optim_tensor *out);

/* Runs the n <= max_batch images in[n][h][w][3] (normalised, channels last,
 * as model_normalise writes them) through the graph: in training mode
 * (batch statistics, dropout, running statistics updated) or not. Returns
 * the probabilities [n][n_classes] (borrowed, valid until the next call), or
 * NULL with a message in err. */
const float *train_graph_forward(struct train_graph *t, const float *in, int n, int training,
                                 char *err);

/* After a forward of the same n images: back-propagates dlogits[n][n_classes]
 * (the loss's gradient w.r.t. the logits) through the graph, leaving every
 * trainable tensor's gradient where train_graph_optim_tensors points (not
 * accumulated: each backward replaces them). Returns 0 or a negative status. */
int train_graph_backward(struct train_graph *t, const float *dlogits, int n, char *err);

/* Copies the graph's weights and running statistics into m's parameters, in
 * strata's layout; m is the model t was built for (or one of the same
 * definition). Can't fail. */
void train_graph_to_model(const struct train_graph *t, struct model *m);

#endif
