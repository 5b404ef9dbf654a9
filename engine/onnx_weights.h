/*
 * onnx_weights.h — an ONNX file written again with the weights of a graph
 * read from it: what training an imported model saves.
 *
 * Everything but the float initializers is kept as the file has it (nodes,
 * attributes, opsets, metadata). Each float initializer the graph holds under
 * the same name is replaced by the graph's (its dims and values, inline as
 * raw data: a tensor the file kept in an external file comes inside); an
 * Identity of an initializer, which the graph holds as an initializer of its
 * own (graph.h), is written as one. The
 * shape annotations of intermediate values (value_info) are dropped, since a
 * new number of classes may contradict them, and the graph output's class
 * axis is set to the graph's class count where the file fixes it.
 */
#ifndef STRATA_ONNX_WEIGHTS_H
#define STRATA_ONNX_WEIGHTS_H

#include "graph.h"

/* Writes dst (through a temporary file beside it and a rename) from the ONNX
 * file src and the graph g read from it, whose output gives n_classes
 * scores. src and dst may be the same path. Returns 0 or a negative status
 * with err naming the file. */
int onnx_save_weights(const char *src, const struct graph *g, int n_classes, const char *dst,
                      char *err);

#endif
