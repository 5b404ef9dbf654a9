/*
 * model.h — a sequential CNN: its definition (model.json), its weights
 * (weights.safetensors), and forward/backward over a batch.
 *
 * Memory: a model owns two slabs of floats, `params` and (when training)
 * `grads`, laid out alike; each layer's struct layer_tensors points into
 * them in layer order, tensors in the order layer_ops.params lists them.
 * Everything a batch needs (every layer's output, their gradients, im2col
 * scratch, layer state) lives in a struct model_workspace sized once for a
 * maximum batch; forward and backward allocate nothing.
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
    float *grads;           /* slab of n_params floats, NULL until model_enable_grads */
    size_t n_params;
    void *json;             /* the parsed model.json (json_t *), kept for the
                               training section and for the API; owned */
    char onnx[256];         /* imported models: the ONNX file in dir ("" for strata's own) */
    struct model_graph *graph; /* the graph inference runs on (model_graph.h): an imported
                                  model's, or, once opened, one of strata's own written
                                  as ONNX; NULL: the layers run it. Owned */
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

/* For one of strata's own models with its weights loaded: makes inference
 * run on the graph executor (model_graph_from_layers; model_open does it).
 * Where the graph cannot be built the layers run it. Returns 0, or
 * STRATA_E_NOMEM. Nothing to do for an imported model or one that has its
 * graph. */
int model_run_on_graph(struct model *m, char *err);

/* For a model.json that names an "onnx" file (m->onnx): loads that file from
 * m->dir and makes its graph the model (model_graph.h). Returns 0 or a
 * negative status naming the node, op or shape at fault; m is unchanged then. */
int model_load_onnx(struct model *m, char *err);

void model_free(struct model *m);

/* He-uniform (relu) or Glorot-uniform kernels, zero biases, unit gammas. */
void model_init_params(struct model *m, uint64_t seed);

/* Allocates the gradient slab (zeroed). Returns 0 or STRATA_E_NOMEM. */
int model_enable_grads(struct model *m, char *err);

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
    int training;           /* allocated with backward buffers and layer state */
    float *input;           /* [max_batch * shape_size(input)] staging for callers */
    float **outputs;        /* [n_layers] -> [max_batch * shape_size(out)] */
    float **douts;          /* [n_layers] gradients of outputs (training only) */
    float *col;             /* shared im2col scratch */
    size_t col_len;
    void *state_block;      /* layer_state storage */
    struct rng rng;         /* dropout */
    struct graph_ws *graph; /* models run on a graph (inference): the graph's workspace */
    float *nchw;            /* the batch in the graph's layout */
    uint8_t *stale;         /* [n_layers] or NULL: layer i's output is still only in the
                               graph's workspace; model_output copies it on first read */
    int *layer_value;       /* [n_layers] the graph value each layer shows, -1: none */
    int graph_n;            /* images in the graph's values since the last forward */
};

/* With training, binds every layer's l->state into this workspace: a model
 * has at most one live training workspace (the last initialised). Inference
 * workspaces leave l->state alone and may run concurrently, one per thread. */
int model_workspace_init(struct model_workspace *ws, struct model *m, int max_batch,
                         int training, char *err);
void model_workspace_free(struct model_workspace *ws);

/* Runs the batch in[n * input] (n <= max_batch) through every layer — on
 * the layers, or, for a model with a graph (m->graph) and a workspace made
 * without training, on the graph executor (model_graph.h). After it,
 * model_output(ws, i) is layer i's output for the batch (borrowed; valid
 * until the next call; from a graph, copied on first read). `training`
 * selects batch statistics and dropout and requires a training workspace. */
void model_forward(struct model *m, struct model_workspace *ws, const float *in, int n,
                   int training);

/* Copies layer's output from the graph's workspace into ws->outputs[layer]
 * (NCHW to NHWC) and marks it current. model_graph.c; model_output calls it. */
void model_workspace_materialise(const struct model_workspace *ws, int layer);

/* Layer's output for the batch as the graph executor holds it, NCHW and
 * borrowed, without the copy model_output makes; NULL when there is none
 * (a model run on its layers, or a batch the graph ran in pieces): then
 * read model_output. Valid until the next forward. model_graph.c. */
const float *model_output_nchw(const struct model_workspace *ws, int layer);

static inline const float *model_output(const struct model_workspace *ws, int layer)
{
    if (ws->stale && ws->stale[layer])
        model_workspace_materialise(ws, layer);
    return ws->outputs[layer];
}

/* Back-propagates from d_last, the gradient w.r.t. the last layer's
 * pre-activation output (softmax cross-entropy gives (p - y)/n directly),
 * accumulating into m->grads. Needs a training workspace and the forward of
 * the same batch just before. d_last may be overwritten. */
void model_backward(struct model *m, struct model_workspace *ws, const float *in,
                    float *d_last, int n);

/* Resizes img to the model's input size and writes normalised floats into
 * out[shape_size(m->input)]. Returns 0 or a negative status. */
int model_preprocess(const struct model *m, const struct image *img, float *out, char *err);

/* Preprocesses an RGB8 image already at the input size (no resize). */
void model_normalise(const struct model *m, const uint8_t *rgb, float *out);

#endif
