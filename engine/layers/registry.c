/*
 * registry.c — the table of layer types: by kind (an index) and by the
 * "type" name model.json uses (a scan of the same table; twelve entries, looked
 * up once per layer when a model is parsed).
 */
#include "layer.h"

#include <assert.h>
#include <string.h>

static const struct layer_ops *const layer_table[LAYER_KIND_COUNT] = {
    [LAYER_CONV2D] = &conv2d_ops,
    [LAYER_BATCH_NORM] = &batch_norm_ops,
    [LAYER_MAXPOOL2D] = &maxpool2d_ops,
    [LAYER_GLOBAL_AVG_POOL] = &global_avg_pool_ops,
    [LAYER_FLATTEN] = &flatten_ops,
    [LAYER_DENSE] = &dense_ops,
    [LAYER_DROPOUT] = &dropout_ops,
    [LAYER_RELU] = &relu_ops,
    [LAYER_SIGMOID] = &sigmoid_ops,
    [LAYER_SOFTMAX] = &softmax_ops,
    [LAYER_ADD] = &add_ops,
    [LAYER_CONCAT] = &concat_ops,
};

/* The ops of a kind; kind must be a valid enum layer_kind (asserts). Never
 * NULL; the result is static. */
const struct layer_ops *layer_ops_of(enum layer_kind kind)
{
    assert((int)kind >= 0 && kind < LAYER_KIND_COUNT);
    const struct layer_ops *ops = layer_table[kind];
    assert(ops && ops->kind == kind);
    return ops;
}

/* The ops whose type name is `type` (exact, case-sensitive), or NULL if no
 * layer type has that name. The result is static. */
const struct layer_ops *layer_ops_find(const char *type)
{
    assert(type);
    for (int k = 0; k < LAYER_KIND_COUNT; k++) {
        if (strcmp(layer_table[k]->type, type) == 0)
            return layer_table[k];
    }
    return NULL;
}
