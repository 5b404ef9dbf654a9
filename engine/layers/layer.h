/*
 * layer.h — the layer types of a sequential CNN and the table that names them.
 *
 * A layer is a pair of plain functions, forward and backward, in one file per
 * type (conv2d.c, dense.c, ...). Every kernel follows one signature:
 *
 *   forward(l, out, in, n, ctx)        out  = f(in) for a batch of n samples
 *   backward(l, din, dout, in, out, n, ctx)
 *                                      din += df/din · dout   (din may be NULL)
 *                                      l->grad.* += df/dθ · dout
 *
 * Gradients are accumulated (+=) and cleared by the caller with one memset of
 * the gradient slab. `dout` belongs to the caller and may be overwritten by
 * backward (a fused activation turns it into the pre-activation gradient in
 * place). Nothing is allocated inside forward or backward: parameters and
 * gradients point into the model's slabs, and per-layer scratch (max-pool
 * argmax, batch-norm statistics, dropout masks) and the shared im2col buffer
 * are sized once by model_workspace_init from the sizes the ops report.
 *
 * Conv2d and dense may fuse an activation (relu, sigmoid, softmax), as may
 * batch_norm; the layer's captured output is then the activated value, which
 * is also what backward reads to undo the activation.
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
    LAYER_KIND_COUNT
};

enum activation { ACT_NONE, ACT_RELU, ACT_SIGMOID, ACT_SOFTMAX };

enum padding { PADDING_VALID, PADDING_SAME };

/* What model.json says about one layer, already validated. */
struct layer_config {
    enum layer_kind kind;
    char name[48];             /* unique within the model, e.g. "conv2d_1" */
    enum activation activation; /* fused; conv2d, dense and batch_norm only */
    int filters;               /* conv2d: output channels */
    int kernel;                /* conv2d: kernel side k (k×k) */
    int stride;                /* conv2d and maxpool2d */
    enum padding padding;      /* conv2d and maxpool2d */
    int pool;                  /* maxpool2d: window side */
    int units;                 /* dense: outputs */
    float rate;                /* dropout: probability of dropping */
    float epsilon, momentum;   /* batch_norm (Keras meaning of momentum) */
    int use_bias;              /* conv2d and dense */
};

/* Borrowed pointers into the model's parameter slab (or, for `grad`, into the
 * gradient slab laid out alike); NULL where the type has no such tensor. */
struct layer_tensors {
    float *kernel;      /* conv2d: [k][k][cin][filters] (HWIO); dense: [in][units] */
    float *bias;        /* conv2d: [filters]; dense: [units] */
    float *gamma, *beta; /* batch_norm: [c] */
    float *moving_mean, *moving_var; /* batch_norm: [c], not trained by gradient */
};

/* Scratch that a training-mode forward leaves for backward; borrowed pointers
 * into the model workspace, sized by layer_ops.state_size for max_batch. */
struct layer_state {
    int32_t *argmax;    /* maxpool2d: [n * out] index of the chosen input within its sample */
    float *mean, *invstd; /* batch_norm: [c] batch statistics */
    float *xhat;        /* batch_norm: [n * in] normalised input */
    uint8_t *mask;      /* dropout: [n * in] 1 = kept */
};

struct layer {
    struct layer_config cfg;
    struct shape in, out;      /* one sample */
    struct layer_tensors w;    /* parameters */
    struct layer_tensors grad; /* their gradients (NULL when not training) */
    struct layer_state state;
};

/* Shared for one forward or backward call over a batch. */
struct layer_ctx {
    float *col;          /* im2col workspace, col_len floats */
    size_t col_len;
    int training;        /* batch statistics, dropout masks, saving state */
    int dout_is_preact;  /* backward: dout is already d(pre-activation), skip the fused activation */
    struct rng *rng;     /* dropout masks when training */
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
    /* Checks cfg against the input shape and fills l->out. Returns 0 or a
     * negative status with a message naming the layer and the field. */
    int (*configure)(struct layer *l, char *err);
    /* Fills desc (up to LAYER_MAX_PARAMS) and returns how many tensors. */
    int (*params)(const struct layer *l, struct param_desc *desc);
    /* Floats of im2col-like scratch needed for a batch of n. May be NULL. */
    size_t (*col_size)(const struct layer *l, int n);
    /* Bytes of layer_state needed for a batch of n when training; the model
     * calls state_bind to point l->state into a block of that size. */
    size_t (*state_size)(const struct layer *l, int n);
    void (*state_bind)(struct layer *l, void *block, int n);
    /* Fills trainable parameters with their initial values (He or Glorot
     * uniform for kernels, zeros for biases, ones/zeros for batch norm). */
    void (*init)(struct layer *l, struct rng *r);
    void (*forward)(const struct layer *l, float *out, const float *in, int n,
                    struct layer_ctx *ctx);
    void (*backward)(struct layer *l, float *din, float *dout, const float *in,
                     const float *out, int n, struct layer_ctx *ctx);
};

/* The registry: ops by kind, and lookup by model.json type name (NULL if
 * unknown). */
const struct layer_ops *layer_ops_of(enum layer_kind kind);
const struct layer_ops *layer_ops_find(const char *type);

/* Fused activations, shared by every layer that applies one.
 * activation_forward applies act in place to n rows of len values (softmax
 * is taken along each row). activation_backward turns dy (gradient w.r.t. the
 * activated output y) into the gradient w.r.t. the pre-activation, in place. */
void activation_forward(enum activation act, float *x, int rows, int len);
void activation_backward(enum activation act, float *dy, const float *y, int rows, int len);
const char *activation_name(enum activation act);
int activation_parse(const char *name, enum activation *out);

/* Per-type entry points, one file each. */
extern const struct layer_ops conv2d_ops, batch_norm_ops, maxpool2d_ops,
    global_avg_pool_ops, flatten_ops, dense_ops, dropout_ops, relu_ops,
    sigmoid_ops, softmax_ops;

#endif
