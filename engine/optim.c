/* optim.c — SGD with momentum and Adam with decoupled weight decay. */
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int optim_init(struct optim *o, const struct model *m, const struct optim_config *cfg, char *err)
{
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    int cap = 0;
    for (int i = 0; i < m->n_layers; i++) {
        struct param_desc d[LAYER_MAX_PARAMS];
        cap += layer_ops_of(m->layers[i].cfg.kind)->params(&m->layers[i], d);
    }
    o->groups = calloc(cap ? cap : 1, sizeof *o->groups);
    o->m = tensor_alloc(m->n_params);
    o->v = cfg->kind == OPTIM_ADAM ? tensor_alloc(m->n_params) : NULL;
    if (!o->groups || !o->m || (cfg->kind == OPTIM_ADAM && !o->v)) {
        optim_free(o);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory for optimiser state (%zu parameters)",
                           m->n_params);
    }
    /* Tensors sit in the slab in layer order, each layer's in params() order. */
    size_t offset = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const struct layer *l = &m->layers[i];
        struct param_desc d[LAYER_MAX_PARAMS];
        int np = layer_ops_of(l->cfg.kind)->params(l, d);
        for (int j = 0; j < np; j++) {
            size_t len = 1;
            for (int k = 0; k < d[j].ndim; k++)
                len *= (size_t)d[j].dims[k];
            if (d[j].trainable)
                o->groups[o->n_groups++] =
                    (struct optim_group){offset, len, strcmp(d[j].name, "kernel") == 0};
            offset += len;
        }
    }
    return 0;
}

void optim_free(struct optim *o)
{
    free(o->groups);
    tensor_free(o->m);
    tensor_free(o->v);
    memset(o, 0, sizeof *o);
}

void optim_step(struct optim *o, struct model *m, float lr)
{
    const struct optim_config *c = &o->cfg;
    o->step++;
    /* Adam's bias corrections folded into the step size, the "efficient
     * version" of Kingma & Ba (2015, section 2): eps then acts on the
     * uncorrected second moment, which only matters in the first steps. */
    float bc1 = 1.0f - powf(c->beta1, (float)o->step);
    float bc2 = 1.0f - powf(c->beta2, (float)o->step);
    float adam_lr = lr * sqrtf(bc2) / bc1;

    for (int g = 0; g < o->n_groups; g++) {
        float *restrict p = m->params + o->groups[g].offset;
        const float *restrict grad = m->grads + o->groups[g].offset;
        float *restrict mom = o->m + o->groups[g].offset;
        size_t len = o->groups[g].len;
        float shrink = o->groups[g].decay ? 1.0f - lr * c->weight_decay : 1.0f;

        if (c->kind == OPTIM_ADAM) {
            float *restrict v = o->v + o->groups[g].offset;
            for (size_t i = 0; i < len; i++) {
                mom[i] = c->beta1 * mom[i] + (1.0f - c->beta1) * grad[i];
                v[i] = c->beta2 * v[i] + (1.0f - c->beta2) * grad[i] * grad[i];
                p[i] = p[i] * shrink - adam_lr * mom[i] / (sqrtf(v[i]) + c->eps);
            }
        } else {
            for (size_t i = 0; i < len; i++) {
                mom[i] = c->momentum * mom[i] + grad[i];
                float step = c->nesterov ? grad[i] + c->momentum * mom[i] : mom[i];
                p[i] = p[i] * shrink - lr * step;
            }
        }
    }
}
