/*
 * optim.h — gradient-descent optimisers over a list of parameter tensors
 * (the initializers of the graph a model trains on).
 *
 * SGD with momentum and Adam, both with decoupled weight decay (AdamW's rule
 * for Adam: θ -= lr·λ·θ before the Adam step), applied only to the tensors
 * that should decay (conv and dense kernels, not biases or batch-norm
 * parameters). Batch-norm running statistics are not trainable and are never
 * touched. The optimiser owns its state (momentum / moment slabs), allocated
 * once by optim_init_tensors.
 */
#ifndef STRATA_OPTIM_H
#define STRATA_OPTIM_H

#include <stddef.h>

enum optim_kind { OPTIM_SGD, OPTIM_ADAM };

struct optim_config {
    enum optim_kind kind;
    float lr;            /* base learning rate (the schedule scales it) */
    float momentum;      /* SGD (0.9) */
    float beta1, beta2, eps; /* Adam (0.9, 0.999, 1e-8) */
    float weight_decay;  /* decoupled, per step: θ -= lr · weight_decay · θ */
    int nesterov;        /* SGD */
};

/* One parameter tensor with one update rule: the optimiser reads its
 * gradient and updates it in place (both borrowed: they must outlive the
 * optimiser). */
struct optim_tensor {
    float *param;
    const float *grad;
    size_t len;
    int decay;           /* 1 for kernels */
};

struct optim {
    struct optim_config cfg;
    int n_groups;
    struct optim_tensor *groups; /* trainable tensors only */
    float *m, *v;        /* moments, the groups' one after the other */
    long step;
};

/* For the n tensors t[0 … n) (copied). Returns 0 or STRATA_E_NOMEM. */
int optim_init_tensors(struct optim *o, const struct optim_tensor *t, int n,
                       const struct optim_config *cfg, char *err);

void optim_free(struct optim *o);

/* One update of every tensor from its gradient at learning rate lr. */
void optim_step(struct optim *o, float lr);

#endif
