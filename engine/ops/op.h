/*
 * op.h — the ops of a graph model, with ONNX semantics, and the table that
 * names them.
 *
 * Tensors are N-D, row-major, batch first (NCHW for images), as ONNX defines
 * them. Float32 is what runs per batch; int64 exists for shape arithmetic
 * (Shape, Gather, Concat, ... on constants), which the graph evaluates when it
 * is planned for a batch size, never per image.
 *
 * An op is a table entry with plain functions, one file per op family, forward
 * and backward side by side:
 *
 *   setup(node, err)                  attributes -> node->params (once, at load)
 *   infer(node, in, out, err)         input shapes -> output dtypes and shapes
 *   scratch(node, in, out)            floats of scratch forward/backward need
 *   forward(node, in, out, ctx)       out = f(in) for the whole batch
 *   backward(node, in, out, dout, din, ctx)
 *                                     din[i] += df/din[i] · dout, for every i
 *                                     whose din[i] is not NULL
 *
 * Gradients are accumulated (+=): the caller clears them. Nothing is
 * allocated in forward or backward: buffers and scratch are sized by the
 * graph workspace from what infer and scratch report.
 *
 * Inputs an op does not get (an absent optional input) are NULL in `in`.
 * During infer, an input whose value is known before the batch runs (an
 * initializer, a Constant, the result of shape arithmetic) has data != NULL;
 * an activation has data == NULL. Ops that take shapes or axes as tensor
 * inputs (Reshape, Pad-11, Squeeze-13, Slice-10 ...) refuse non-constant ones
 * with a clear message.
 */
#ifndef STRATA_OP_H
#define STRATA_OP_H

#include <stddef.h>
#include <stdint.h>

#include "../rng.h"

#define OP_MAX_DIMS 8

/* Element types, numbered as ONNX's TensorProto.DataType. */
enum dtype { DTYPE_FLOAT = 1, DTYPE_INT64 = 7 };

/* A tensor as ops see it: borrowed data, dims outermost first. */
struct tview {
    enum dtype dtype;
    int ndim;                       /* 0 for a scalar */
    int64_t dims[OP_MAX_DIMS];
    void *data;                     /* NULL while inferring an activation */
};

static inline int64_t tview_count(const struct tview *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->dims[i];
    return n;
}

static inline float *tview_f(const struct tview *t) { return (float *)t->data; }
static inline int64_t *tview_i(const struct tview *t) { return (int64_t *)t->data; }

/* One node attribute as the model file gives it. Arrays are owned by the
 * node and freed with it. */
enum attr_type { ATTR_FLOAT, ATTR_INT, ATTR_STRING, ATTR_TENSOR, ATTR_FLOATS, ATTR_INTS };

struct attr {
    char *name;
    enum attr_type type;
    float f;                /* ATTR_FLOAT */
    int64_t i;              /* ATTR_INT */
    char *s;                /* ATTR_STRING, NUL-terminated */
    float *floats;          /* ATTR_FLOATS [n] */
    int64_t *ints;          /* ATTR_INTS [n] */
    int n;
    struct tview t;         /* ATTR_TENSOR: float or int64, data owned */
};

struct op;

struct node {
    char *name;             /* the file's node name, or "<op_type>_<index>" */
    char *op_type;          /* as in the file, e.g. "Conv" */
    const struct op *op;    /* NULL while unsupported (the load refuses) */
    int opset;              /* version of the default domain the model imports */
    int n_inputs, n_outputs;
    int *inputs, *outputs;  /* value indices in the graph; -1 = optional input absent */
    int n_attrs;
    struct attr *attrs;
    void *params;           /* op-private, set by op->setup, freed with free() */
};

/* Shared for one forward or backward call. */
struct op_ctx {
    float *scratch;         /* op->scratch floats, 64-byte aligned */
    size_t scratch_len;
    /* Training mode (a training step of strata's trainer): BatchNormalization
     * normalises with the batch's statistics and updates its running ones in
     * place (its input_mean and input_var, which the trainer owns);
     * Dropout drops. Ops keep what their backward needs in `state`
     * (op->train_state floats, for this node alone, from a training forward
     * to the backward of the same batch) and draw from `rng`. Off (0,
     * state and rng NULL) for inference and for the explanations' gradients,
     * which differentiate the model as it predicts. */
    int training;
    float *state;
    size_t state_len;
    struct rng *rng;
    /* Forward of a Conv or an Add only (the graph fuses the Relu or Clip that
     * follows it): clamp every output to [clamp_lo, clamp_hi] as it is
     * written. */
    int clamp;
    float clamp_lo, clamp_hi;
    /* Forward of a Conv only (the graph fuses a MaxPool after it, and the
     * ReLU or Clip between, whose is_max_pool_2x2 holds): write the 2×2
     * maxima of the output (after the clamp) to `pool`, [N, M, ⌊Ho/2⌋,
     * ⌊Wo/2⌋]. out[0] is then room the size of the Conv's output that the op
     * may write or leave as it is. NULL otherwise. */
    struct tview *pool;
    /* Forward of a Sigmoid only (the graph fuses the Mul by its input that
     * follows it, x·σ(x): SiLU, Swish): write x·σ(x) instead of σ(x). */
    int times_input;
    /* Forward only, in workspaces without gradients (where the weights are
     * constants): op->cache floats kept for this node from run to run, and
     * whether they still hold what the op last put there (0 after every
     * plan; the op sets it). NULL when the workspace keeps none. */
    float *cache;
    size_t cache_len;
    int *cache_valid;
};

enum op_flags {
    OP_INT64 = 1 << 0,      /* forward also computes int64 tensors (shape arithmetic) */
    OP_SHAPE_ONLY = 1 << 1, /* output depends only on input shapes (Shape): known before the batch */
    OP_ALIAS = 1 << 2,      /* output is the input's bytes reinterpreted (Reshape, Flatten,
                               Identity, Squeeze, Unsqueeze, Dropout at inference): the graph
                               may point the output at the input instead of copying */
};

struct op {
    const char *name;       /* ONNX op_type */
    int min_inputs, max_inputs;   /* max_inputs -1: any number (Concat) */
    int min_outputs, max_outputs;
    unsigned flags;
    /* Reads node->attrs (and node->opset, for forms that changed between
     * opsets) into node->params. Returns 0 or a negative status with a
     * message naming the node, the op and the attribute. May be NULL. */
    int (*setup)(struct node *node, char *err);
    /* Sets every out[j]'s dtype, ndim and dims from the inputs. Returns 0 or
     * a negative status naming the node, the op and the shapes. */
    int (*infer)(const struct node *node, const struct tview *const *in, struct tview *const *out,
                 char *err);
    /* Floats of scratch that forward and backward need for these shapes. May
     * be NULL (no scratch). */
    size_t (*scratch)(const struct node *node, const struct tview *const *in,
                      const struct tview *const *out);
    /* Floats this node may keep between forward runs (op_ctx.cache): what it
     * computes from its constant inputs alone, such as a Conv's transformed
     * weights. May be NULL (nothing kept). */
    size_t (*cache)(const struct node *node, const struct tview *const *in,
                    const struct tview *const *out);
    void (*forward)(const struct node *node, const struct tview *const *in,
                    struct tview *const *out, struct op_ctx *ctx);
    /* For ops that are a clamp y = min(max(x, lo), hi) (Relu, Clip): sets the
     * bounds from the node and its inputs (as gathered for forward) and
     * returns 1; the graph then lets the producing Conv apply it. NULL for
     * the others. */
    int (*as_clamp)(const struct node *node, const struct tview *const *in, float *lo, float *hi);
    /* For ops that are, at inference, a per-channel affine map over axis 1,
     * y = x·scale[c] + shift[c] (BatchNormalization): writes scale and shift
     * for the node's channels from its inputs (as gathered for forward),
     * computed as its forward computes them, and returns 1; the graph then
     * folds them into the weights and bias of the Conv before it. NULL for
     * the others. */
    int (*as_affine)(const struct node *node, const struct tview *const *in, float *scale,
                     float *shift);
    /* For ops that are a 2×2 max pooling at stride 2 without padding or
     * dilation, flooring (MaxPool): returns 1 for such a node; the graph
     * then lets the Conv before it pool its output as it writes it
     * (op_ctx.pool). NULL for the others. */
    int (*is_max_pool_2x2)(const struct node *node);
    /* Floats this node keeps from a training forward to its backward
     * (op_ctx.state), for these shapes. May be NULL (none: the op trains as it
     * infers). */
    size_t (*train_state)(const struct node *node, const struct tview *const *in,
                          const struct tview *const *out);
    /* NULL only for ops whose outputs carry no gradient (Shape, int64-only). */
    void (*backward)(const struct node *node, const struct tview *const *in,
                     const struct tview *const *out, const struct tview *const *dout,
                     struct tview *const *din, struct op_ctx *ctx);
};

/* The op named `op_type` (exact, as ONNX spells it), or NULL. Static. */
const struct op *op_find(const char *op_type);

/* Attribute lookup on a node: the attribute named `name`, or NULL. */
const struct attr *node_attr(const struct node *node, const char *name);

/* Typed attribute readers with a default for an absent attribute. They return
 * 0, or a negative status with "node N (Op): attribute A: ..." in err when the
 * attribute has another type. node_attr_ints copies at most `cap` values into
 * out and sets *n; more than cap is an error. */
int node_attr_int(const struct node *node, const char *name, int64_t dflt, int64_t *out,
                  char *err);
int node_attr_float(const struct node *node, const char *name, float dflt, float *out, char *err);
int node_attr_string(const struct node *node, const char *name, const char *dflt,
                     const char **out, char *err);
int node_attr_ints(const struct node *node, const char *name, int64_t *out, int cap, int *n,
                   char *err);

/* "node 'conv1' (Conv): " + message, into err; returns code. */
int node_fail(const struct node *node, char *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* y = min(max(y, lo), hi) over n floats, written as Clip computes it (NaN
 * becomes lo): the clamp a Conv or an Add applies for a fused Relu or Clip,
 * on a piece of its output while it is still in cache. Can't fail. */
void op_clamp(float *y, int64_t n, float lo, float hi);

/* y[p] = the 2×2 maxima of each H × W plane p of x at stride 2, each
 * ⌊H/2⌋ × ⌊W/2⌋, as MaxPool computes them (the first of equal values, NaN
 * never taken): the pooling a Conv runs after writing its whole output when
 * it cannot pool as it writes. On the engine's threads (pool.c). Can't
 * fail. */
void op_max_pool_2x2(const float *x, int planes, int H, int W, float *y);

/* Formats dims as "1x3x224x224" (or "scalar") into buf; returns buf. */
char *dims_format(const struct tview *t, char *buf, size_t len);

/* Numpy-style (multidirectional) broadcast of a and b into out's dtype-less
 * shape. Returns 0, or a negative status naming the node and both shapes. */
int broadcast_shapes(const struct node *node, const struct tview *a, const struct tview *b,
                     struct tview *out, char *err);

/* Normalises an axis in [-rank, rank) to [0, rank). Returns 0, or a
 * negative status naming the node. */
int node_axis(const struct node *node, int64_t axis, int rank, int *out, char *err);

/* Every op, one extern per file family; registry.c lists them by name. */
#endif
