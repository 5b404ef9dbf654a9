/*
 * model.h — a CNN: its definition (model.json), its weights
 * (weights.safetensors, or the ONNX file it was imported from), and the
 * forward pass over a batch, which runs on the graph executor (graph.h,
 * model_graph.h): strata's own models are written as its nodes, layer by
 * layer.
 *
 * Memory: one of strata's own models owns a slab of floats, `params`; each
 * layer's struct layer_tensors points into it in layer order, tensors in the
 * order layer_ops.params lists them. The graph it runs on holds a copy of
 * them (m->graph). Everything a batch needs (every layer's output, the
 * graph's values) lives in a struct model_workspace sized once for a
 * maximum batch; a forward allocates nothing. Training runs on the graph
 * too (train_graph.h).
 */
#ifndef STRATA_MODEL_H
#define STRATA_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"
#include "layers/layer.h"
#include "status.h"

#define MODEL_MAX_CLASSES 1000  /* ImageNet classifiers import as they are */
#define MODEL_MAX_LAYERS 64

struct model {
    char id[64];            /* folder name, e.g. "felines" */
    char title[128];        /* "Felines" */
    char dataset[64];       /* dataset folder under the data directory */
    char dir[1024];         /* folder the model was loaded from ("" if built in memory) */
    struct shape input;     /* input size the images are resized to */
    float mean[3], std[3];  /* input normalisation: x = (pixel/255 - mean) / std */
    int n_classes;
    char **classes;         /* [n_classes], sorted as the dataset's class folders */
    int n_layers;
    struct layer *layers;   /* [n_layers] */
    float *params;          /* slab of n_params floats */
    size_t n_params;
    void *json;             /* the parsed model.json (json_t *), kept for the
                               training section and for the API; owned */
    char onnx[256];         /* imported models: the ONNX file in dir ("" for strata's own) */
    struct model_graph *graph; /* the graph inference runs on (model_graph.h): an imported
                                  model's, or one of strata's own written as ONNX, built
                                  by model_run_on_graph (model_open and
                                  model_workspace_init call it); NULL until then. Owned */
};

struct model_graph;
struct graph_ws;

/* Parses a model.json file. The parameters are zeroed (call model_init_params
 * or model_load_weights). `path` is the model.json file. On failure returns a
 * negative status and err names the file and the field; on any failure the
 * struct is left zeroed (model_free is safe). The same holds for
 * model_parse_json and model_open. */
int model_load_json(struct model *m, const char *path, char *err);

/* Same, from a JSON text already in memory (tests build models this way). */
int model_parse_json(struct model *m, const char *text, const char *what, char *err);

/* Loads `<dir>/model.json` and `<dir>/weights.safetensors` — or, for an
 * imported model (model.json names an "onnx" file), that ONNX file. `dir` may
 * be a model id, resolved as `<models_root>/<id>`, or a path to a folder.
 * Either way the model's inference then runs on a graph (m->graph). */
int model_open(struct model *m, const char *models_root, const char *id_or_dir, char *err);

/* For one of strata's own models with its weights loaded: builds the graph
 * it runs on (model_graph_from_layers; model_open and model_workspace_init
 * call it). The graph holds a copy of the weights: after changing m->params
 * directly, call model_graph_close(m) (model_graph.h) so that the next
 * workspace builds it anew (model_init_params and model_load_weights do).
 * Returns 0 or a negative status (memory). Nothing to do for an imported
 * model or one that has its graph. */
int model_run_on_graph(struct model *m, char *err);

/* For a model.json that names an "onnx" file (m->onnx): loads that file from
 * m->dir and makes its graph the model (model_graph.h). Returns 0 or a
 * negative status naming the node, op or shape at fault; m is unchanged then. */
int model_load_onnx(struct model *m, char *err);

void model_free(struct model *m);

/* He-uniform (relu) or Glorot-uniform kernels, zero biases, unit gammas.
 * Drops the graph built from the old values. */
void model_init_params(struct model *m, uint64_t seed);

/* Weights in safetensors format: tensors named `layers.<i>.<param>` in F32,
 * little-endian, shapes as in layer_ops.params. Loading checks every name,
 * dtype, shape and offset and says exactly what is wrong. A file written by
 * model_save_weights loads back bit-identical. */
int model_load_weights(struct model *m, const char *path, char *err);
int model_save_weights(const struct model *m, const char *path, char *err);

/* Total trainable parameter count (excluding batch-norm running statistics). */
size_t model_trainable_count(const struct model *m);

/* Index of the class named `name`, or -1. */
int model_class_index(const struct model *m, const char *name);

/* Everything one batch needs. Owned by the caller; model_workspace_free. */
struct model_workspace {
    int max_batch;
    float *input;           /* [max_batch * shape_size(input)] staging for callers */
    float **outputs;        /* [n_layers] -> [max_batch * shape_size(out)] NHWC copies of
                               the layers' outputs, made when model_output reads them */
    struct graph_ws *graph; /* the graph's workspace */
    float *nchw;            /* the batch in the graph's layout */
    uint8_t *stale;         /* [n_layers]: layer i's output is still only in the graph's
                               workspace; model_output copies it on first read */
    int *layer_value;       /* [n_layers] the graph value each layer shows, -1: none */
    int graph_n;            /* images in the graph's values since the last forward */
    int kept_from;          /* layers before it are not computed
                               (model_workspace_probabilities_only); 0: all are */
};

/* Sizes a workspace for batches of up to max_batch images of m, building
 * the graph m runs on first if it has none (model_run_on_graph: that call
 * changes m, so it must not race with others on m; model_open leaves every
 * model with its graph). Workspaces may run concurrently, one per thread.
 * Returns 0 or a negative status (memory, naming the batch; ws left
 * empty). */
int model_workspace_init(struct model_workspace *ws, struct model *m, int max_batch,
                         char *err);
void model_workspace_free(struct model_workspace *ws);

/* Declares that only the probabilities (the last layer) will be read from
 * ws after model_forward, as LIME's samples and an evaluation read them: the
 * graph then runs every chain it can as one (a batch normalisation folded
 * into the convolution before it, with the activation after that), and the
 * other layers' outputs are no longer kept up to date. Reading another layer
 * (model_output, model_output_nchw) is then a programming error, asserted.
 * model_graph.c. Returns 0 or STRATA_E_NOMEM. */
int model_workspace_probabilities_only(struct model_workspace *ws, const struct model *m,
                                       char *err);

/* Runs the batch in[n * input] (n <= max_batch; NHWC, normalised, as
 * model_normalise writes it) through the graph. After it, model_output(ws, i)
 * is layer i's output for the batch (borrowed; valid until the next call;
 * copied from the graph on first read). Can't fail. */
void model_forward(const struct model *m, struct model_workspace *ws, const float *in, int n);

/* Copies layer's output from the graph's workspace into ws->outputs[layer]
 * (NCHW to NHWC) and marks it current. model_graph.c; model_output calls it. */
void model_workspace_materialise(const struct model_workspace *ws, int layer);

/* Layer's output for the batch as the graph executor holds it, NCHW and
 * borrowed, without the copy model_output makes; NULL when the graph does
 * not hold the whole batch's (a batch it ran in pieces) or model_output has
 * copied it already: then read model_output. Valid until the next forward.
 * model_graph.c. */
const float *model_output_nchw(const struct model_workspace *ws, int layer);

static inline const float *model_output(const struct model_workspace *ws, int layer)
{
    if (ws->stale && ws->stale[layer])
        model_workspace_materialise(ws, layer);
    return ws->outputs[layer];
}

/* Resizes img to the model's input size and writes normalised floats into
 * out[shape_size(m->input)]. Returns 0 or a negative status. */
int model_preprocess(const struct model *m, const struct image *img, float *out, char *err);

/* Preprocesses an RGB8 image already at the input size (no resize). */
void model_normalise(const struct model *m, const uint8_t *rgb, float *out);

#endif
