/*
 * tensor.h — shapes and aligned float buffers.
 *
 * strata's tensors are NHWC float32, batch first: element (n, y, x, c) of a
 * batch of shape (N, H, W, C) lives at ((n*H + y)*W + x)*C + c. A dense
 * layer's output is the special case H = W = 1. A struct shape describes one
 * sample; the batch size travels separately, because the same buffers serve
 * any batch up to the size they were allocated for.
 */
#ifndef STRATA_TENSOR_H
#define STRATA_TENSOR_H

#include <stddef.h>

struct shape {
    int h, w, c;
};

/* Number of floats in one sample of shape s. */
static inline size_t shape_size(struct shape s)
{
    return (size_t)s.h * (size_t)s.w * (size_t)s.c;
}

/* Allocates n floats aligned to 64 bytes, zeroed. Returns NULL on failure
 * (or when n is 0). Free with tensor_free. */
float *tensor_alloc(size_t n);
void tensor_free(float *p);

/* Formats a shape as "HxWxC" (or "C" when H = W = 1) into buf. Returns buf. */
char *shape_format(struct shape s, char *buf, size_t len);

#endif
