/*
 * activations.c — the names of the activations a conv2d, dense, batch_norm
 * or add layer may fuse (linear, relu, sigmoid, softmax, relu6, hardswish),
 * and the three standalone
 * layers (relu_ops, sigmoid_ops, softmax_ops), which keep their input's
 * shape. The graph computes them (ops/activation.c, ops/softmax.c; softmax
 * over the channels of one position, or the classes of one sample).
 */
#include "layer.h"

#include <assert.h>
#include <string.h>

#include "../status.h"

/* The name model.json uses; ACT_NONE is Keras's "linear". Static string,
 * can't fail. */
const char *activation_name(enum activation act)
{
    switch (act) {
    case ACT_NONE: return "linear";
    case ACT_RELU: return "relu";
    case ACT_SIGMOID: return "sigmoid";
    case ACT_SOFTMAX: return "softmax";
    case ACT_RELU6: return "relu6";
    case ACT_HARDSWISH: return "hardswish";
    case ACT_COUNT: break;
    }
    return "unknown";
}

static const struct {
    const char *name;
    enum activation act;
} activation_table[] = {
    {"linear", ACT_NONE},
    {"none", ACT_NONE},
    {"relu", ACT_RELU},
    {"sigmoid", ACT_SIGMOID},
    {"softmax", ACT_SOFTMAX},
    {"relu6", ACT_RELU6},
    {"hardswish", ACT_HARDSWISH},
};

/* Parses a model.json activation name into *out. Returns 0, or STRATA_E_ARG
 * for an unknown name (out untouched; the caller writes the message, since it
 * knows which layer and file the name came from). */
int activation_parse(const char *name, enum activation *out)
{
    assert(name && out);
    for (size_t i = 0; i < sizeof activation_table / sizeof activation_table[0]; i++) {
        if (strcmp(name, activation_table[i].name) == 0) {
            *out = activation_table[i].act;
            return 0;
        }
    }
    return STRATA_E_ARG;
}

/* ---- standalone activation layers ---------------------------------------- */

/* Shape-preserving; the fused `activation` field means nothing here and is
 * ignored. */
static int act_configure(struct layer *l, char *err)
{
    if (l->in.h < 1 || l->in.w < 1 || l->in.c < 1)
        return strata_fail(err, STRATA_E_ARG,
                           "layer '%s': input shape %dx%dx%d is empty", l->cfg.name,
                           l->in.h, l->in.w, l->in.c);
    l->out = l->in;
    return 0;
}

static int act_params(const struct layer *l, struct param_desc *desc)
{
    (void)l;
    (void)desc;
    return 0;
}

static void act_init(struct layer *l, struct rng *r)
{
    (void)l;
    (void)r;
}

#define STANDALONE_ACTIVATION(NAME, KIND)                                                   \
    const struct layer_ops NAME##_ops = {                                                   \
        .type = #NAME,                                                                      \
        .kind = KIND,                                                                       \
        .configure = act_configure,                                                         \
        .params = act_params,                                                               \
        .init = act_init,                                                                   \
    };

STANDALONE_ACTIVATION(relu, LAYER_RELU)
STANDALONE_ACTIVATION(sigmoid, LAYER_SIGMOID)
STANDALONE_ACTIVATION(softmax, LAYER_SOFTMAX)
