/*
 * onnx.h — reads ONNX files into a struct graph (graph.h).
 *
 * What is read: the default-domain opset (6 to 17 accepted), the graph's
 * inputs (those that are not initializers: old files list initializers among
 * the inputs too), its outputs, every node with its attributes, and every
 * initializer, stored raw (little-endian raw_data) or in typed fields
 * (float_data, int64_data, int32_data, double_data), or in an external file
 * (location/offset/length, relative to the model's folder, which it must not
 * leave). Float16/double/int8/int32... initializers become float or int64.
 * Everything read is checked against the file's own size: a dimension, a
 * count or an offset the file cannot hold is refused, never allocated.
 *
 * Failure messages name the node and the op (or the initializer) and say what
 * the user can do.
 */
#ifndef STRATA_ONNX_H
#define STRATA_ONNX_H

#include <stddef.h>
#include <stdint.h>

#include "graph.h"

#define ONNX_MIN_OPSET 6
#define ONNX_MAX_OPSET 17
/* A model file larger than this is refused before it is read. */
#define ONNX_MAX_FILE_BYTES ((size_t)2 << 30)

/* Loads the ONNX file at `path` into g (zeroed by the caller) and finishes it
 * (graph_finish). External data is looked up beside the file. On failure g is
 * left zeroed (graph_deinit done) and err says why. */
int onnx_load(struct graph *g, const char *path, char *err);

/* Same, from bytes in memory. `dir` is the folder external data is relative
 * to, or NULL to refuse external data. */
int onnx_load_bytes(struct graph *g, const uint8_t *bytes, size_t len, const char *dir,
                    char *err);

/* The ModelProto of an ONNX file's len bytes, decoded with the limits
 * onnx_load applies (free with onnx_model_free: its strings and arrays are
 * malloc'd, so that a caller may swap one for its own malloc'd copy). NULL,
 * with err naming `what`, when the bytes are not a valid model. */
struct Onnx__ModelProto;
struct Onnx__ModelProto *onnx_unpack_model(const uint8_t *bytes, size_t len, const char *what,
                                           char *err);
void onnx_model_free(struct Onnx__ModelProto *m);

/* The metadata_props of an ONNX model: key → value strings, in the file's
 * order (strata's export writes strata.classes, strata.mean, strata.std and
 * strata.title; other exporters write their own). */
struct onnx_metadata {
    int n;
    char **keys, **values; /* [n] each, malloc'd */
};

/* Reads the metadata of the ONNX file at path into *md (zeroed on failure).
 * Returns 0, or a negative status with err when the file cannot be read or
 * is not an ONNX model. */
int onnx_read_metadata(const char *path, struct onnx_metadata *md, char *err);

/* The value of key, or NULL (borrowed from md). */
const char *onnx_metadata_get(const struct onnx_metadata *md, const char *key);
void onnx_metadata_free(struct onnx_metadata *md);

/* Reads a serialized TensorProto file (the .pb files of ONNX's test cases)
 * into t: float or int64 (other numeric types converted), data malloc'd by
 * the call (free(t->data)). Returns 0 or a negative status. */
int onnx_read_tensor(struct tview *t, const char *path, char *err);

/* Same, from the n bytes of a serialized TensorProto in memory (external
 * data refused). */
int onnx_read_tensor_bytes(struct tview *t, const uint8_t *b, size_t n, char *err);

#endif
