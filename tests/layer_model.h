/*
 * layer_model.h — small strata models for the tests of the layer types
 * (test_conv_dense.c, test_norm_pool.c): a model.json from a list of layer
 * entries, and the two activation layouts.
 */
#ifndef STRATA_TEST_LAYER_MODEL_H
#define STRATA_TEST_LAYER_MODEL_H

#include "model.h"

/* Parses a model.json with an h×w×3 input, the given "layers" entries (JSON
 * objects separated by commas) and n_classes classes named c0, c1, ... (the
 * parser wants the last layer to give n_classes values per image; each test
 * works that size out itself). Returns model_parse_json's status. */
int layer_model_make(struct model *m, int h, int w, int n_classes, const char *layers, char *err);

/* dst[n][c][h][w] = src[n][h][w][c], and the other way. Can't fail. */
void nhwc_to_nchw(float *dst, const float *src, int n, int h, int w, int c);
void nchw_to_nhwc(float *dst, const float *src, int n, int h, int w, int c);

#endif
