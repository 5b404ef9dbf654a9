/*
 * model_graph.h — a struct model backed by an ONNX graph: an imported model,
 * or one of strata's own run on the graph executor for inference.
 *
 * The graph runs NCHW, as ONNX defines it. To the rest of strata (analysis,
 * doubt, LIME, the pages), an imported model shows as a chain of "layers":
 * chosen node outputs of the graph (model_graph_choose_layers), then the
 * logits, then the probabilities. After each forward their values are copied
 * into the model workspace's NHWC layer buffers, the layout the analysis reads;
 * graph_value_view gives the graph's own borrowed NCHW views.
 *
 * If the graph's output is a Softmax over the classes, its input is taken as
 * the logits; otherwise the output is the logits and strata applies the
 * softmax itself (the logits are kept for the energy score).
 */
#ifndef STRATA_MODEL_GRAPH_H
#define STRATA_MODEL_GRAPH_H

#include "graph.h"
#include "model.h"

/* Most chosen layers an imported model shows by default. */
#define MODEL_GRAPH_MAX_SHOWN 24

struct model_graph {
    struct graph g;
    int own;             /* strata's own model run as a graph (model_graph_from_layers):
                            every layer is a value; imported models are not */
    int logits;          /* value index of the class scores before any softmax */
    int n_shown;         /* imported: chosen node outputs shown as layers (before logits,
                            probs); own: one per layer, the value holding its output */
    int *shown;          /* [n_shown] value indices */
    size_t bytes_per_image; /* activations one image takes in an inference workspace */
};

/* Loads the ONNX file `onnx_path` for m, whose model.json part (classes,
 * input size, normalisation) is already parsed, checks that the graph takes
 * one float image batch N x 3 x H x W at m->input and gives N x n_classes
 * scores, chooses the layers shown, and fills m->layers, m->n_layers and
 * m->graph. Returns 0 or a negative status whose message names the node, the
 * op or the shapes; m->graph is then NULL. */
int model_graph_open(struct model *m, const char *onnx_path, char *err);

/* For one of strata's own models with its weights loaded: writes it as ONNX
 * in memory (onnx_export_bytes, the file `strata export` writes), reads that
 * back as m->graph with every layer shown as the value that holds its
 * output, and checks that each has the layer's size. model_forward then
 * runs on it. The graph holds a copy of the weights: model_init_params and
 * model_load_weights drop it (model_graph_close). Returns 0, or a negative
 * status with m->graph left NULL. */
int model_graph_from_layers(struct model *m, char *err);

/* The same graph, built for the caller (*out, free with model_graph_free)
 * and not attached to m. Returns 0 or a negative status, *out NULL then. */
int model_graph_of_layers(const struct model *m, struct model_graph **out, char *err);
void model_graph_free(struct model_graph *mg);

/* A node output of an imported model that could be shown as a layer. */
struct model_graph_value {
    char name[64];      /* the layer name strata shows for it */
    const char *tensor; /* its ONNX value name (borrowed from m->graph) */
    const char *op;     /* the op that computes it (borrowed) */
    struct shape shape; /* per image: H x W x C, or 1 x 1 x F */
    int shown;          /* its index among m's layers, or -1 */
    int by_default;     /* among the layers strata picks when model.json names none */
};

/* Every value of an imported model's graph that "shown" in model.json may
 * name, in the order the graph computes them: *out (free() it) and *n.
 * Returns 0, STRATA_E_ARG for a model that is not imported, or
 * STRATA_E_NOMEM. */
int model_graph_values(const struct model *m, struct model_graph_value **out, int *n, char *err);

/* The layers whose outputs layer l of m reads, directly or through values
 * not shown (-1 for the image itself), into from[<= max], in increasing
 * order; a residual sum reads two. For strata's own models, the layers its
 * "inputs" name (the layer before, in a chain). Returns the count. */
int model_graph_layer_inputs(const struct model *m, int l, int *from, int max);

/* The ONNX op that computes layer l of an imported model ("Relu", "Add",
 * ...; borrowed), or NULL for strata's own models and for the logits and
 * probabilities. */
const char *model_graph_layer_op(const struct model *m, int l);

/* Frees m->graph and sets it to NULL. Safe when it is NULL. */
void model_graph_close(struct model *m);

/* Sizes the graph workspace of ws for max_batch images (ws->graph). Returns 0
 * or a negative status. */
int model_graph_ws_init(struct model_workspace *ws, const struct model *m, int max_batch,
                        char *err);
void model_graph_ws_free(struct model_workspace *ws);

/* Runs in[n] (NHWC, normalised, as model_normalise writes) through the graph.
 * The layers' NHWC outputs are copied from the graph's values when
 * model_output first reads them (a caller that wants the probabilities alone
 * copies nothing else), or at once when the graph runs the batch in pieces
 * (a file with a fixed batch of 1). Can't fail for n <= max_batch (planning
 * was checked at open). */
void model_graph_forward(const struct model *m, struct model_workspace *ws, const float *in, int n);

#endif
