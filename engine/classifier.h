/*
 * classifier.h — the node of an imported graph that gives the class scores,
 * and giving it another number of classes: what training an architecture
 * taken from an ONNX file on a dataset of its own needs (an ImageNet model
 * scores 1,000 classes; felines has four).
 *
 * The classifier is found from the graph's output back through the ops that
 * only reshape, pool or activate (Softmax, LogSoftmax, Flatten, Reshape,
 * Squeeze, Identity, Dropout, GlobalAveragePool, Relu): a Gemm or MatMul
 * with a constant weight (and, for MatMul, the Add of a constant bias after
 * it), or a 1×1 Conv with one group (SqueezeNet's).
 */
#ifndef STRATA_CLASSIFIER_H
#define STRATA_CLASSIFIER_H

#include <stdint.h>

#include "graph.h"

struct classifier {
    int node;           /* the Gemm, MatMul or Conv */
    int weight, bias;   /* initializer values; bias -1 when there is none */
    int outputs;        /* class scores it gives now */
    int out_axis;       /* the weight's axis that counts the classes */
};

/* Finds the classifier of g. Returns 0, or STRATA_E_UNSUPPORTED with a
 * message naming the op found instead. */
int classifier_find(const struct graph *g, struct classifier *c, char *err);

/* Gives the classifier n outputs: a new weight drawn Glorot-uniform from a
 * generator seeded with `seed`, and a zero bias. Returns 0, or
 * STRATA_E_NOMEM (c and g unchanged then). */
int classifier_resize(struct graph *g, struct classifier *c, int n, uint64_t seed, char *err);

#endif
