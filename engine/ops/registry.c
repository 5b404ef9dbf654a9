/*
 * registry.c — the table of graph ops, by ONNX op_type. Looked up once per
 * node when a model is loaded; a linear scan of a few dozen names.
 */
#include "op.h"

#include <assert.h>
#include <string.h>

#include "ops.h"

static const struct op *const op_table[] = {
    /* conv.c */
    &op_conv,
    /* pool.c */
    &op_max_pool, &op_average_pool, &op_global_average_pool, &op_global_max_pool,
    /* batch_norm.c */
    &op_batch_normalization,
    /* pad.c */
    &op_pad,
    /* elementwise.c */
    &op_add, &op_sub, &op_mul, &op_div,
    /* activation.c */
    &op_relu, &op_leaky_relu, &op_prelu, &op_clip, &op_sigmoid, &op_hard_sigmoid,
    &op_hard_swish, &op_tanh,
    /* softmax.c */
    &op_softmax, &op_log_softmax,
    /* gemm.c */
    &op_gemm, &op_matmul,
    /* reshape.c */
    &op_flatten, &op_reshape, &op_squeeze, &op_unsqueeze, &op_identity, &op_dropout,
    /* transpose.c */
    &op_transpose,
    /* concat.c */
    &op_concat,
    /* shape.c */
    &op_shape, &op_gather, &op_slice, &op_cast, &op_constant,
    /* reduce_mean.c */
    &op_reduce_mean,
};

const struct op *op_find(const char *op_type)
{
    assert(op_type);
    for (size_t i = 0; i < sizeof op_table / sizeof op_table[0]; i++)
        if (strcmp(op_table[i]->name, op_type) == 0)
            return op_table[i];
    return NULL;
}
