/*
 * merge.c — the layers that join several inputs, so that a model.json can
 * describe a residual block (a block's input added to its output) or
 * branches put side by side: their configuration. The graph computes them
 * (Add, Concat on the channel axis: ops/elementwise.c, ops/concat.c).
 *
 *   add     the element-wise sum of 2 … LAYER_MAX_INPUTS inputs of one shape,
 *           then an optional fused activation (ResNet's add-then-relu)
 *   concat  the inputs side by side along the channels: they share h and w,
 *           and the output has the sum of their channels, in input order
 */
#include "layer.h"

#include <stdio.h>

#include "../status.h"

static int merge_check_inputs(const struct layer *l, char *err)
{
    for (int k = 0; k < l->n_inputs; k++)
        if (l->ins[k].h < 1 || l->ins[k].w < 1 || l->ins[k].c < 1)
            return strata_fail(err, STRATA_E_ARG, "layer '%s': input %d is empty", l->cfg.name,
                               k + 1);
    if (l->n_inputs < 2 || l->n_inputs > LAYER_MAX_INPUTS)
        return strata_fail(err, STRATA_E_ARG, "layer '%s': %s joins 2 to %d inputs, not %d",
                           l->cfg.name, l->cfg.kind == LAYER_ADD ? "add" : "concat",
                           LAYER_MAX_INPUTS, l->n_inputs);
    return 0;
}

static int add_configure(struct layer *l, char *err)
{
    int rc = merge_check_inputs(l, err);
    if (rc)
        return rc;
    const struct layer_config *c = &l->cfg;
    if ((unsigned)c->activation >= ACT_COUNT)
        return strata_fail(err, STRATA_E_ARG, "layer '%s': unknown activation %d", c->name,
                           (int)c->activation);
    for (int k = 1; k < l->n_inputs; k++)
        if (l->ins[k].h != l->ins[0].h || l->ins[k].w != l->ins[0].w ||
            l->ins[k].c != l->ins[0].c) {
            char a[48], b[48];
            return strata_fail(err, STRATA_E_ARG,
                               "layer '%s': add needs inputs of one shape; input 1 is %s, "
                               "input %d is %s",
                               c->name, shape_format(l->ins[0], a, sizeof a), k + 1,
                               shape_format(l->ins[k], b, sizeof b));
        }
    l->out = l->ins[0];
    return 0;
}

static int concat_configure(struct layer *l, char *err)
{
    int rc = merge_check_inputs(l, err);
    if (rc)
        return rc;
    long channels = 0;
    for (int k = 0; k < l->n_inputs; k++) {
        if (l->ins[k].h != l->ins[0].h || l->ins[k].w != l->ins[0].w) {
            char a[48], b[48];
            return strata_fail(err, STRATA_E_ARG,
                               "layer '%s': concat joins inputs of one height and width; "
                               "input 1 is %s, input %d is %s",
                               l->cfg.name, shape_format(l->ins[0], a, sizeof a), k + 1,
                               shape_format(l->ins[k], b, sizeof b));
        }
        channels += l->ins[k].c;
    }
    if ((double)channels * l->ins[0].h * l->ins[0].w > (double)(1u << 31) - 1)
        return strata_fail(err, STRATA_E_LIMIT, "layer '%s': the output is too large",
                           l->cfg.name);
    l->out = (struct shape){.h = l->ins[0].h, .w = l->ins[0].w, .c = (int)channels};
    return 0;
}

static int merge_params(const struct layer *l, struct param_desc *desc)
{
    (void)l;
    (void)desc;
    return 0;
}

static void merge_init(struct layer *l, struct rng *r)
{
    (void)l;
    (void)r;
}

/* The "add" layer type: configure fails (STRATA_E_ARG, naming the layer and
 * the inputs) on fewer than 2 inputs, inputs of different shapes or an
 * unknown activation. */
const struct layer_ops add_ops = {
    .type = "add",
    .kind = LAYER_ADD,
    .joins = 1,
    .configure = add_configure,
    .params = merge_params,
    .init = merge_init,
};

/* The "concat" layer type: configure fails (STRATA_E_ARG) on fewer than 2
 * inputs or inputs whose height or width differ. */
const struct layer_ops concat_ops = {
    .type = "concat",
    .kind = LAYER_CONCAT,
    .joins = 1,
    .configure = concat_configure,
    .params = merge_params,
    .init = merge_init,
};
