/*
 * ops.h — every graph op, one extern per op; the files that define them are
 * named beside each group. Only registry.c and tests include this.
 */
#ifndef STRATA_OPS_H
#define STRATA_OPS_H

#include "op.h"

extern const struct op op_conv;                                          /* conv.c */
extern const struct op op_max_pool, op_average_pool, op_global_average_pool,
    op_global_max_pool;                                                  /* pool.c */
extern const struct op op_batch_normalization;                           /* batch_norm.c */
extern const struct op op_pad;                                           /* pad.c */
extern const struct op op_add, op_sub, op_mul, op_div;                   /* elementwise.c */
extern const struct op op_relu, op_leaky_relu, op_prelu, op_clip, op_sigmoid,
    op_hard_sigmoid, op_hard_swish, op_tanh;                             /* activation.c */
extern const struct op op_softmax, op_log_softmax;                       /* softmax.c */
extern const struct op op_gemm, op_matmul;                               /* gemm.c */
extern const struct op op_flatten, op_reshape, op_squeeze, op_unsqueeze,
    op_identity;                                                         /* reshape.c */
extern const struct op op_dropout;                                       /* dropout.c */
extern const struct op op_transpose;                                     /* transpose.c */
extern const struct op op_concat;                                        /* concat.c */
extern const struct op op_shape, op_gather, op_slice, op_cast, op_constant; /* shape.c */
extern const struct op op_reduce_mean;                                   /* reduce_mean.c */

#endif
