/*
 * layer.h — the layer types of strata's own models (model.json: a chain, or
 * layers that name their inputs) and the table that names them.
 *
 * A layer here is a description: its configuration, the shapes it maps, and
 * the parameter tensors it owns, in one file per type (conv2d.c, dense.c,
 * ...) with how each type checks its configuration against its input,
 * lists its tensors and draws their initial values. Running a model is the
 * graph executor's (model_graph.h writes the layers as ONNX nodes; the ops
 * in ops/ compute them, forward and backward).
 *
 * Conv2d, dense, batch_norm and add may fuse an activation (relu, sigmoid,
 * softmax, relu6, hardswish); the layer's output is then the activated
 * value.
 */
#ifndef STRATA_LAYER_H
#define STRATA_LAYER_H

#include <stddef.h>
#include <stdint.h>

#include "../rng.h"
#include "../tensor.h"

enum layer_kind {
    LAYER_CONV2D,
    LAYER_BATCH_NORM,
    LAYER_MAXPOOL2D,
    LAYER_GLOBAL_AVG_POOL,
    LAYER_FLATTEN,
    LAYER_DENSE,
    LAYER_DROPOUT,
    LAYER_RELU,
    LAYER_SIGMOID,
    LAYER_SOFTMAX,
    LAYER_ADD,
    LAYER_CONCAT,
    LAYER_KIND_COUNT
};

/* At most this many inputs for a layer that joins several (add, concat). */
#define LAYER_MAX_INPUTS 8

enum activation {
    ACT_NONE,
    ACT_RELU,
    ACT_SIGMOID,
    ACT_SOFTMAX,
    ACT_RELU6,      /* min(max(x, 0), 6), MobileNet's */
    ACT_HARDSWISH,  /* x · min(max(x + 3, 0), 6) / 6, MobileNetV3's */
    ACT_COUNT
};

enum padding { PADDING_VALID, PADDING_SAME };

/* What model.json says about one layer, already validated. */
struct layer_config {
    enum layer_kind kind;
    char name[48];             /* unique within the model, e.g. "conv2d_1" */
    enum activation activation; /* fused; conv2d, dense, batch_norm and add only */
    int filters;               /* conv2d: output channels */
    int groups;                /* conv2d: channel groups, each its own filters (1; equal to
                                  the input channels: depthwise) */
    int kernel;                /* conv2d: kernel side k (k×k) */
    int stride;                /* conv2d and maxpool2d */
    enum padding padding;      /* conv2d and maxpool2d */
    int pool;                  /* maxpool2d: window side */
    int units;                 /* dense: outputs */
    float rate;                /* dropout: probability of dropping */
    float epsilon, momentum;   /* batch_norm (Keras meaning of momentum) */
    int use_bias;              /* conv2d and dense */
};

/* Borrowed pointers into the model's parameter slab; NULL where the type has
 * no such tensor. */
struct layer_tensors {
    float *kernel;      /* conv2d: [k][k][cin / groups][filters] (HWIO); dense: [in][units] */
    float *bias;        /* conv2d: [filters]; dense: [units] */
    float *gamma, *beta; /* batch_norm: [c] */
    float *moving_mean, *moving_var; /* batch_norm: [c], not trained by gradient */
};

struct layer {
    struct layer_config cfg;
    int n_inputs;              /* what it reads: 1, or 2 … LAYER_MAX_INPUTS for add, concat */
    int inputs[LAYER_MAX_INPUTS]; /* earlier layers' indices; -1 is the image */
    struct shape ins[LAYER_MAX_INPUTS]; /* their outputs' shapes, one sample */
    struct shape in, out;      /* one sample; in is ins[0] */
    struct layer_tensors w;    /* parameters */
};

/* One named parameter tensor of a layer, in slab order. */
struct param_desc {
    const char *name;   /* "kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance" */
    int ndim;
    int dims[4];
    int trainable;      /* 0 for batch-norm running statistics */
};

#define LAYER_MAX_PARAMS 4

struct layer_ops {
    const char *type;   /* model.json "type" */
    enum layer_kind kind;
    /* Whether it joins 2 … LAYER_MAX_INPUTS inputs (else it reads one). */
    int joins;
    /* Checks cfg against the input shapes (l->ins, l->in) and fills l->out.
     * Returns 0 or a negative status with a message naming the layer and
     * the field. */
    int (*configure)(struct layer *l, char *err);
    /* Fills desc (up to LAYER_MAX_PARAMS) and returns how many tensors. */
    int (*params)(const struct layer *l, struct param_desc *desc);
    /* Fills trainable parameters with their initial values (He or Glorot
     * uniform for kernels, zeros for biases, ones/zeros for batch norm). */
    void (*init)(struct layer *l, struct rng *r);
};

/* The registry: ops by kind, and lookup by model.json type name (NULL if
 * unknown). */
const struct layer_ops *layer_ops_of(enum layer_kind kind);
const struct layer_ops *layer_ops_find(const char *type);

/* The fused activations' model.json names. */
const char *activation_name(enum activation act);
int activation_parse(const char *name, enum activation *out);

/* Per-type entry points, one file each. */
extern const struct layer_ops conv2d_ops, batch_norm_ops, maxpool2d_ops,
    global_avg_pool_ops, flatten_ops, dense_ops, dropout_ops, relu_ops,
    sigmoid_ops, softmax_ops, add_ops, concat_ops;

#endif
