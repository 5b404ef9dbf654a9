/*
 * ref_forward.h — a test oracle: the forward pass of one of strata's own
 * models (a chain of layers, or layers that name their inputs), computed
 * naively in double precision straight from m->layers and the parameters
 * they point to.
 *
 * It shares no code with what strata runs (engine/ops, engine/onnx_export,
 * the graph executor): plain loops over NHWC arrays, no BLAS, its own output
 * sizes. Tests compare model_forward, and an exported ONNX file run back,
 * with it. Slow on purpose; keep batches small.
 */
#ifndef STRATA_TEST_REF_FORWARD_H
#define STRATA_TEST_REF_FORWARD_H

#include "model.h"
#include "status.h"

/* Runs in[n · shape_size(m->input)] (NHWC, normalised, as model_normalise
 * writes it) through every layer of m in inference mode. Returns an array of
 * m->n_layers outputs, out[l] = layer l's output for the batch, NHWC,
 * [n · shape_size(m->layers[l].out)] doubles; the last one is the
 * probabilities. The caller frees it with ref_forward_free.
 *
 * Returns NULL with a message in err when the output size the reference
 * works out for a layer differs from m->layers[l].out (a configure bug) or
 * when out of memory. m must be one of strata's own models (m->onnx empty). */
double **ref_forward(const struct model *m, const float *in, int n, char *err);

/* Frees what ref_forward returned (NULL is fine). */
void ref_forward_free(const struct model *m, double **out);

#endif
