/*
 * train_graph.h — the graph a model trains on.
 *
 * Training runs on the graph executor, as inference does. For one of
 * strata's own models the graph is the model written as ONNX in memory and
 * read back (model_graph_of_layers, the graph `strata export` writes); for
 * an imported model it is the model's own graph (m->graph). Each step runs
 * the graph in training mode (batch statistics in BatchNormalization,
 * Dropout drawn from a seeded generator) and back-propagates the loss's
 * gradient with respect to the logits to every weight.
 *
 * The graph's initializers are the weights being trained. What is trained:
 * for strata's own models, every layer's kernels, biases and batch-norm
 * scales and offsets; for an imported graph, the float initializers a node
 * reads as weights — Conv's W and B, Gemm's and MatMul's constant operands,
 * BatchNormalization's scale and B, PRelu's slope, and a constant of more
 * than one value added or subtracted (a bias) — never BatchNormalization's
 * running statistics (which training mode updates in place) or other
 * constants. train_graph_to_model copies an own model's weights back into
 * its layers, in strata's layout (kernels HWIO, dense [in][units]); an
 * imported model's graph already holds them.
 *
 * A struct train_graph owns one workspace with gradients for up to
 * max_batch images and the channels-first staging of a batch (and, for an
 * own model, its graph). Nothing is allocated after train_graph_init.
 */
#ifndef STRATA_TRAIN_GRAPH_H
#define STRATA_TRAIN_GRAPH_H

#include <stdint.h>

#include "graph.h"
#include "model.h"
#include "optim.h"

/* One tensor of the graph's weights. */
struct train_param {
    int value;          /* the graph initializer holding it */
    int layer;          /* own models: index in the model's layers; else -1 */
    int which;          /* what it is (train_graph.c): enum train_param_kind for an own
                           model, enum graph_role for an imported graph */
    int trainable;      /* stepped by the optimiser (running statistics are not) */
    int decay;          /* a kernel: weight decay applies */
};

struct train_graph {
    struct model_graph *mg;  /* the graph trained */
    int owns_graph;          /* built for an own model (freed with t); else m->graph */
    struct graph_ws ws;      /* with gradients */
    int input, logits;       /* value indices */
    int probs;               /* the graph's probabilities, or -1: the softmax of the
                                logits, computed into probs_buf */
    int max_batch, n_classes, h, w;
    float *nchw;             /* [max_batch][3][h][w] the batch, channels first */
    float *probs_buf;        /* [max_batch][n_classes] when probs is -1 */
    int n_params;
    struct train_param *params; /* the graph's float initializers that training changes */
    size_t state_len;        /* floats of every params tensor, one after the other */
};

/* Builds t for m — one of strata's own models with its weights set (the
 * starting point), or an imported model (whose graph t trains in place) —
 * and up to max_batch images a step; dropout draws from a generator seeded
 * with `seed`. Returns 0 or a negative status (memory; a model that does
 * not build as a graph). On failure t is left safe to free. */
int train_graph_init(struct train_graph *t, struct model *m, int max_batch, uint64_t seed,
                     char *err);
void train_graph_free(struct train_graph *t);

/* The trainable tensors (kernels and biases, batch-norm scale and offset;
 * not the running statistics) with their gradients, for optim_init_tensors:
 * writes at most t->n_params entries into out and returns how many: for
 * strata's own models layer by layer, each layer's in layer_ops.params
 * order; for an imported graph in the order of its values. Kernels decay. */
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
int train_graph_backward(struct train_graph *t, const float *dlogits, char *err);

/* For an imported model (its graph open): training from scratch rather than
 * from the file's weights — every weight in m->graph drawn He-uniform (a
 * convolution's, over its fan-in) or Glorot-uniform (a matrix's), biases 0,
 * scales 1 (PRelu slopes 0.25), running means 0 and variances 1 — from a
 * generator seeded with `seed`. Returns 0, STRATA_E_ARG for a model that is
 * not imported, or STRATA_E_NOMEM. */
int train_graph_randomize(struct model *m, uint64_t seed, char *err);

/* Copies every params tensor (weights and running statistics) into
 * dst[state_len], or back from src: a snapshot of the model being trained.
 * Can't fail. */
void train_graph_save(const struct train_graph *t, float *dst);
void train_graph_restore(struct train_graph *t, const float *src);

/* For one of strata's own models: copies the graph's weights and running
 * statistics into m's parameters, in strata's layout; m is the model t was
 * built for (or one of the same definition). Nothing to do for an imported
 * model. Can't fail. */
void train_graph_to_model(const struct train_graph *t, struct model *m);

#endif
