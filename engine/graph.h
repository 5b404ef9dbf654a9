/*
 * graph.h — a model as a directed acyclic graph of ops (ops/op.h) over named
 * tensors, with one image batch in and one vector of class scores out.
 *
 * The graph itself is immutable once built and can be shared by threads:
 * values (inputs, initializers, node outputs) and nodes in topological order.
 * Everything that depends on a batch size lives in a struct graph_ws, one per
 * thread: every value's shape, the buffers of activations, the results of
 * shape arithmetic, scratch, and (for backward) gradients.
 *
 * Planning a workspace for a batch size n runs every op's infer in order and
 * evaluates "static" nodes, those whose inputs are all known before the batch
 * runs (initializers, Constant, Shape of anything, and what is computed from
 * those): the Shape/Gather/Concat/Reshape subgraphs that exporters write for a
 * dynamic batch axis are thus folded once per batch size, never run per image.
 * graph_forward only runs the other nodes.
 */
#ifndef STRATA_GRAPH_H
#define STRATA_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "ops/op.h"
#include "rng.h"
#include "status.h"

enum value_kind {
    VALUE_INPUT,        /* fed by the caller at run time */
    VALUE_INITIALIZER,  /* weights and constants stored in the file */
    VALUE_NODE,         /* produced by a node */
};

struct graph_value {
    char *name;
    enum value_kind kind;
    int producer;       /* node index for VALUE_NODE, else -1 */
    struct tview init;  /* VALUE_INITIALIZER: dtype, shape, data (owned).
                           VALUE_INPUT: the declared dtype and shape, -1 for a
                           dimension the file leaves open (data NULL) */
    int n_consumers;    /* nodes that read it, plus one per graph output it is */
};

struct graph {
    int n_values, n_nodes;
    struct graph_value *values;  /* owned */
    struct node *nodes;          /* owned; topological order after graph_finish */
    int n_inputs, n_outputs;
    int *inputs, *outputs;       /* value indices, in the file's order */
    int64_t opset;               /* default-domain opset the file imports */
    void *index;                 /* name -> value hash, built by graph_finish */
    int is_view;                 /* made by graph_view: values and nodes' contents borrowed */
};

/* Frees everything the graph owns and zeroes it (not the struct itself).
 * Safe on a zeroed struct. */
void graph_deinit(struct graph *g);

/* Building, for loaders. graph_add_value appends a value named `name`
 * (copied) and returns its index, or a negative status (STRATA_E_NOMEM, or
 * STRATA_E_LIMIT past GRAPH_MAX_ENTRIES values). graph_add_node appends a
 * zeroed node and returns its index likewise; the loader fills it (strings and
 * arrays malloc'd: the graph frees them). */
#define GRAPH_MAX_ENTRIES 1000000
int graph_add_value(struct graph *g, const char *name, enum value_kind kind, char *err);
int graph_add_node(struct graph *g, char *err);
/* Value index by name, or -1. */
int graph_find_value(const struct graph *g, const char *name);

/* Whether value v is the output of a node of that op type ("Softmax"). */
int graph_produced_by(const struct graph *g, int v, const char *op_type);

/* Sorts nodes topologically (refusing cycles, values produced twice, and
 * inputs nothing produces), binds every node to its op (listing every
 * unsupported op at once, with its nodes), runs each op's setup, and counts
 * consumers. First, each Identity of an initializer becomes an initializer
 * of its own (a copy, under the Identity's output name): what training
 * updates is then one tensor per layer, kept from plan to plan.
 * Returns 0 or a negative status with a message naming the node. */
int graph_finish(struct graph *g, char *err);

/* A part of g as a graph of its own: the nodes of g that compute value `to`
 * from value `from` and initializers, in g's order. Its one input is `from`,
 * its one output `to`; a workspace planned on it runs only those nodes, at
 * whatever shape `from` is given — a window of the image instead of the
 * whole, say, or the activations of a layer as the input of the layers
 * after it. The view borrows g's values, weights and nodes' contents: g must
 * outlive it, unchanged. graph_deinit frees what the view owns (its node
 * list); graph_find_value and graph_produced_by do not apply to a view (ask
 * g). For inference: a view's workspace has no gradients.
 * Returns 0, or STRATA_E_ARG when `to` does not depend on `from` or depends
 * on another input or node value of g besides it (naming the value), or
 * STRATA_E_NOMEM; the view is zeroed then. */
int graph_view(struct graph *view, const struct graph *g, int from, int to, char *err);

/* ---- running ------------------------------------------------------------- */

struct graph_ws {
    const struct graph *g;
    int with_grads;              /* backward buffers allocated */
    struct tview *vals;          /* [n_values] shapes and data, as last planned */
    struct tview *grads;         /* [n_values] gradients (with_grads; NULL data where none) */
    size_t *cap;                 /* [n_values] bytes allocated for each value's buffer */
    uint8_t *is_static;          /* [n_values] known before the batch runs */
    void **owned;                /* [n_values] buffers owned by the workspace */
    void **grad_owned;           /* [n_values] */
    uint8_t *needed;             /* [n_values] backward: leads to the value differentiated */
    const struct tview **in_ptrs;  /* [max node inputs] argument arrays for the ops */
    struct tview **out_ptrs;     /* [max node outputs] */
    const struct tview **dout_ptrs;
    struct tview **din_ptrs;
    float *scratch;
    size_t scratch_len;
    int planned;                 /* shapes in vals match the last inputs */
    uint8_t *fuse_next;          /* [n_nodes] or NULL: how node i + 1 runs inside node i
                                    (enum graph_fuse); see graph_ws_fuse */
    float **cache;               /* [n_nodes] what each op keeps between runs (no gradients) */
    size_t *cache_len;           /* [n_nodes] */
    int *cache_valid;            /* [n_nodes] reset by every plan */
    float **fold;                /* [n_nodes] or NULL: a Conv's weights and bias with the
                                    BatchNormalization after it folded in, or a Gemm's
                                    weights permuted for a Transpose folded away
                                    (graph_ws_fuse), made again whenever cache_valid is 0 */
    /* Training (workspaces with gradients only): when `training` is set by
     * the caller, graph_run runs every op in training mode (op_ctx.training:
     * batch statistics, dropout drawn from `rng`, which the caller seeds) and
     * the next backward differentiates that run. Each node's op->train_state
     * floats live in state[i]. */
    int training;
    struct rng rng;
    float **state;               /* [n_nodes] or NULL */
    size_t *state_len;           /* [n_nodes] */
    size_t *clear_end;           /* [n_values] with gradients: where each value's gradient
                                    ends in the bytes a backward clears */
};

enum graph_fuse {
    GRAPH_FUSE_NONE,
    GRAPH_FUSE_CLAMP,   /* a Relu or Clip inside the Conv or Add before it */
    GRAPH_FUSE_SILU,    /* Mul(x, Sigmoid(x)) inside the Sigmoid: x·σ(x) */
    GRAPH_FUSE_BN,      /* a BatchNormalization folded into the Conv before it */
    GRAPH_FUSE_BN_CLAMP, /* that, and the Relu or Clip after the BatchNormalization */
    GRAPH_FUSE_NHWC_GEMM, /* a Transpose to channels last, the Flatten after it and the
                             Gemm after that: the Gemm reads the channels-first input
                             flattened, with its weights permuted to match */
    GRAPH_FUSE_POOL = 8, /* a flag beside the above (or alone) on a Conv: the 2×2
                            MaxPool after its chain runs inside it too */
};

/* Plans a workspace for inputs of the given shapes (inputs[i] for
 * g->inputs[i]; data ignored) and sizes every buffer for them: later runs may
 * use smaller or equal sizes (a smaller batch). with_grads also allocates a
 * gradient buffer per float value. Returns 0 or a negative status (shapes that
 * do not infer, naming the node; memory). */
int graph_ws_init(struct graph_ws *ws, const struct graph *g, const struct tview *inputs,
                  int with_grads, char *err);
void graph_ws_free(struct graph_ws *ws);

/* Lets graph_run run short chains of nodes as one, where each one's output
 * goes nowhere but the next:
 *   - a Relu or Clip with the Conv just before it (the Conv writes the
 *     activation's output, clamped as its tiles are stored: one pass over
 *     memory instead of two), or with the Add just before it (a residual
 *     block's sum, clamped piece by piece while in cache);
 *   - a BatchNormalization with constant parameters after a Conv with
 *     constant weights: its scale and shift are folded into the Conv's
 *     weights and bias (a copy, in fold[]), and a Relu or Clip after it
 *     joins them as above: three passes become one;
 *   - a MaxPool of 2×2 windows at stride 2 after a Conv (or after either
 *     chain above): the Conv pools its blocks as it computes them, where
 *     it can, and its own output is never written;
 *   - a Transpose of [N, C, H, W] to [N, H, W, C] that is only flattened for a
 *     Gemm with constant weights (how a Keras-style model flattens; strata's
 *     own export writes it): the Gemm reads the input flattened as it is, and
 *     its weights are permuted once, in fold[], to match;
 *   - a Mul of a value by its own Sigmoid (x·σ(x), SiLU) with that Sigmoid.
 * The outputs inside a chain are then no longer kept up to date. keep[0 …
 * n_keep) are the values the caller reads after a run besides the graph's
 * outputs: a node that produces one of them is never fused. Not for
 * workspaces with gradients (backward reads every output): nothing is fused
 * there. Replaces any earlier call's choice. Returns how many chains will be
 * fused, or STRATA_E_NOMEM. */
int graph_ws_fuse(struct graph_ws *ws, const int *keep, int n_keep);

/* Runs the graph on inputs[g->n_inputs] (data borrowed for the call). Replans
 * shapes when they differ from the last run (cheap; reallocates only the small
 * results of shape arithmetic). Returns 0, or a negative status if the shapes
 * do not infer or a value would outgrow the buffer graph_ws_init sized. */
int graph_run(struct graph_ws *ws, const struct tview *inputs, char *err);

/* Borrowed view of a value after graph_run (valid until the next call). */
static inline const struct tview *graph_value_view(const struct graph_ws *ws, int value)
{
    return &ws->vals[value];
}

/* Back-propagates dout (the gradient of value `from`, shaped like it) through
 * every node, after graph_run on the same inputs. Clears all gradients first;
 * afterwards ws->grads[v] holds dL/dv for every float value that leads to
 * `from` (the inputs' among them, and every float initializer's). Needs
 * with_grads. Returns 0 or a negative status. */
int graph_backward(struct graph_ws *ws, int from, const float *dout, char *err);

/* Same, but only for the values that both lead to `from` and depend on a
 * graph input: the gradients an explanation needs (w.r.t. the image and the
 * activations), without the weights' (a third of the work, often more).
 * ws->grads[v] of other values has NULL data afterwards. Fails with
 * STRATA_E_ARG when `from` does not depend on any input. */
int graph_backward_inputs(struct graph_ws *ws, int from, const float *dout, char *err);

/* Same as graph_backward, but no gradient is computed for the graph's inputs
 * (the first Conv's dX is skipped): what a training step needs. */
int graph_backward_weights(struct graph_ws *ws, int from, const float *dout, char *err);

/* Number of floats in the float initializers (the model's parameters). */
size_t graph_param_count(const struct graph *g);

#endif
