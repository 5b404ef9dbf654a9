/* optim.c — SGD with momentum and Adam with decoupled weight decay. */
#include "optim.h"

#include <assert.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "parallel.h"
#include "status.h"
#include "tensor.h"

int optim_init_tensors(struct optim *o, const struct optim_tensor *t, int n,
                       const struct optim_config *cfg, char *err)
{
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += t[i].len;
    o->groups = malloc((size_t)(n ? n : 1) * sizeof *o->groups);
    o->m = tensor_alloc(total ? total : 1);
    o->v = cfg->kind == OPTIM_ADAM ? tensor_alloc(total ? total : 1) : NULL;
    if (!o->groups || !o->m || (cfg->kind == OPTIM_ADAM && !o->v)) {
        optim_free(o);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory for optimiser state (%zu parameters)",
                           total);
    }
    if (n)
        memcpy(o->groups, t, (size_t)n * sizeof *t);
    o->n_groups = n;
    return 0;
}

void optim_free(struct optim *o)
{
    free(o->groups);
    tensor_free(o->m);
    tensor_free(o->v);
    memset(o, 0, sizeof *o);
}

/* One group's update of elements [b, e): each element on its own, so the
 * pool (parallel.h) may cut the range anywhere and the result is the same. */
struct optim_job {
    const struct optim_config *c;
    float *p, *mom, *v;
    const float *grad;
    float shrink, lr, adam_lr;
};

static void optim_piece(void *arg, int b, int e)
{
    const struct optim_job *j = arg;
    const struct optim_config *c = j->c;
    float *restrict p = j->p, *restrict mom = j->mom, *restrict v = j->v;
    const float *restrict grad = j->grad;
    const float shrink = j->shrink;
    if (c->kind == OPTIM_ADAM) {
        for (int i = b; i < e; i++) {
            mom[i] = c->beta1 * mom[i] + (1.0f - c->beta1) * grad[i];
            v[i] = c->beta2 * v[i] + (1.0f - c->beta2) * grad[i] * grad[i];
            p[i] = p[i] * shrink - j->adam_lr * mom[i] / (sqrtf(v[i]) + c->eps);
        }
    } else {
        for (int i = b; i < e; i++) {
            mom[i] = c->momentum * mom[i] + grad[i];
            float step = c->nesterov ? grad[i] + c->momentum * mom[i] : mom[i];
            p[i] = p[i] * shrink - j->lr * step;
        }
    }
}

void optim_step(struct optim *o, float lr)
{
    const struct optim_config *c = &o->cfg;
    o->step++;
    /* Adam's bias corrections folded into the step size, the "efficient
     * version" of Kingma & Ba (2015, section 2): eps then acts on the
     * uncorrected second moment, which only matters in the first steps. */
    float bc1 = 1.0f - powf(c->beta1, (float)o->step);
    float bc2 = 1.0f - powf(c->beta2, (float)o->step);
    float adam_lr = lr * sqrtf(bc2) / bc1;

    /* Memory-bound (Adam reads and writes four arrays the size of the
     * model): spread over the engine's threads. */
    size_t off = 0;
    for (int g = 0; g < o->n_groups; g++) {
        const struct optim_tensor *t = &o->groups[g];
        struct optim_job j = {.c = c, .p = t->param, .grad = t->grad, .mom = o->m + off,
                              .v = c->kind == OPTIM_ADAM ? o->v + off : NULL,
                              .shrink = t->decay ? 1.0f - lr * c->weight_decay : 1.0f,
                              .lr = lr, .adam_lr = adam_lr};
        assert(t->len <= INT_MAX);
        parallel_for_grain((int)t->len, parallel_grain(c->kind == OPTIM_ADAM ? 7 : 5),
                           optim_piece, &j);
        off += t->len;
    }
}
