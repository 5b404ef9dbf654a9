/*
 * optim.h — gradient-descent optimisers over a model's parameter slab.
 *
 * SGD with momentum and Adam, both with decoupled weight decay (AdamW's rule
 * for Adam: θ -= lr·λ·θ before the Adam step), applied only to the tensors
 * that should decay (conv and dense kernels, not biases or batch-norm
 * parameters). Batch-norm running statistics are not trainable and are never
 * touched. The optimiser owns its state (momentum / moment slabs), allocated
 * once by optim_init.
 */
#ifndef STRATA_OPTIM_H
#define STRATA_OPTIM_H

#include <stddef.h>

#include "model.h"

enum optim_kind { OPTIM_SGD, OPTIM_ADAM };

struct optim_config {
    enum optim_kind kind;
    float lr;            /* base learning rate (the schedule scales it) */
    float momentum;      /* SGD (0.9) */
    float beta1, beta2, eps; /* Adam (0.9, 0.999, 1e-8) */
    float weight_decay;  /* decoupled, per step: θ -= lr · weight_decay · θ */
    int nesterov;        /* SGD */
};

/* A contiguous range of the parameter slab with one update rule. */
struct optim_group {
    size_t offset, len;
    int decay;           /* 1 for kernels */
};

struct optim {
    struct optim_config cfg;
    int n_groups;
    struct optim_group *groups; /* trainable ranges only */
    float *m, *v;        /* moments, laid out like the parameter slab */
    long step;
};

/* Builds the trainable groups from the model's layers and allocates state.
 * Returns 0 or STRATA_E_NOMEM. */
int optim_init(struct optim *o, const struct model *m, const struct optim_config *cfg, char *err);
void optim_free(struct optim *o);

/* One update of m->params from m->grads at learning rate lr. */
void optim_step(struct optim *o, struct model *m, float lr);

#endif
