/*
 * onnx_export.h — one of strata's own models (model.json and its weights)
 * written as an ONNX file, so that it runs in any ONNX runtime and can be compared
 * with one.
 *
 * The file takes the images as strata's own models do once normalised,
 * x = (pixel/255 − mean)/std, but channels first: input "input"
 * [batch, 3, H, W] (batch left open), output "probabilities" [batch, classes]
 * after a final Softmax. Opset 13. Conv (with its group), BatchNormalization
 * (with its momentum), Relu, Sigmoid, Clip (relu6), HardSigmoid and Mul
 * (hardswish), MaxPool, GlobalAveragePool, Flatten, Gemm, Softmax, Add,
 * Concat (on the channels), Dropout (its ratio an
 * initializer: the identity at inference, as
 * every runtime runs it; it drops when strata trains the graph); a Flatten
 * of a feature map is preceded by a Transpose to channels last, the order
 * strata's dense layers read.
 * The model's metadata_props hold what ONNX has no field for: strata.classes
 * (a JSON array of the class names), strata.mean and strata.std (JSON arrays
 * of three numbers) and strata.title.
 */
#ifndef STRATA_ONNX_EXPORT_H
#define STRATA_ONNX_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "status.h"

/* Writes m to `path` (created or replaced). m must be one of strata's own
 * models (m->onnx empty), with its weights loaded. Returns 0 or a negative
 * status: STRATA_E_ARG for an imported model, STRATA_E_IO naming the path,
 * STRATA_E_NOMEM. */
int onnx_export(const struct model *m, const char *path, char *err);

/* Longest name of a value in the export, with its NUL. */
#define ONNX_EXPORT_NAME_LEN 112

/* Same, into memory: *bytes (malloc'd, the caller frees it) of *len bytes,
 * which strata loads back (onnx_load_bytes) to run its own models on the
 * graph executor. When layer_values is not NULL, layer_values[i] (the
 * caller's, m->n_layers of them) receives the name of the value that holds
 * layer i's output (the same as its input for a layer that adds no node,
 * such as a flatten of what is flat already). */
int onnx_export_bytes(const struct model *m, uint8_t **bytes, size_t *len,
                      char (*layer_values)[ONNX_EXPORT_NAME_LEN], char *err);

#endif
