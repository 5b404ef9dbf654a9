/*
 * opcheck.h — runs one graph op outside any graph, for op tests: build a
 * node, run infer + forward, and check backward against central finite
 * differences of L = sum(w * out) for a fixed random w.
 *
 *   struct attr a[] = {OPCHECK_INTS("strides", 2, 2), OPCHECK_INT("group", 1)};
 *   struct tview x = opcheck_tensor(4, (int64_t[]){1, 3, 5, 5}, seed);
 *   struct opcheck_run r;
 *   opcheck_forward(&r, &op_conv, 13, a, 2, (struct tview *[]){&x, &w, &b}, 3, 1);
 *   ... r.out[0] ...
 *   opcheck_gradients(&r, 1e-2, 2e-2);   // relative + absolute tolerance
 *   opcheck_free(&r);
 *
 * Include after check.h. Everything here allocates; it is test code.
 */
#ifndef STRATA_OPCHECK_H
#define STRATA_OPCHECK_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/op.h"
#include "status.h"

#define OPCHECK_INT(nm, v) {.name = (char *)(nm), .type = ATTR_INT, .i = (v)}
#define OPCHECK_FLOAT(nm, v) {.name = (char *)(nm), .type = ATTR_FLOAT, .f = (v)}
#define OPCHECK_STRING(nm, v) {.name = (char *)(nm), .type = ATTR_STRING, .s = (char *)(v)}
#define OPCHECK_INTS(nm, ...)                                                               \
    {.name = (char *)(nm), .type = ATTR_INTS, .ints = (int64_t[]){__VA_ARGS__},             \
     .n = (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t))}
#define OPCHECK_FLOATS(nm, ...)                                                             \
    {.name = (char *)(nm), .type = ATTR_FLOATS, .floats = (float[]){__VA_ARGS__},           \
     .n = (int)(sizeof((float[]){__VA_ARGS__}) / sizeof(float))}

#define OPCHECK_MAX_IO 32

struct opcheck_run {
    struct node node;
    int n_in, n_out;
    struct tview *in[OPCHECK_MAX_IO];   /* borrowed from the caller */
    struct tview out[OPCHECK_MAX_IO];   /* data owned */
    float *scratch;
    size_t scratch_len;
    /* Training mode (opcheck_forward_training): the op's
     * train_state floats, and a generator reseeded with rng_seed_value
     * before every forward, so that a forward draws the same (dropout masks)
     * each time and finite differences compare like with like. */
    int training;
    float *state;
    size_t state_len;
    struct rng rng;
    uint64_t rng_seed_value;
    char err[STRATA_ERR_LEN];
};

/* The context a forward or backward of r gets. */
static inline struct op_ctx opcheck_ctx(struct opcheck_run *r)
{
    struct op_ctx ctx = {.scratch = r->scratch, .scratch_len = r->scratch_len};
    if (r->training) {
        rng_seed(&r->rng, r->rng_seed_value);
        ctx.training = 1;
        ctx.state = r->state;
        ctx.state_len = r->state_len;
        ctx.rng = &r->rng;
    }
    return ctx;
}


static inline uint64_t opcheck_rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A float tensor of uniform values in [-1, 1) from `seed`; data malloc'd
 * (free with free(t.data)). */
static inline struct tview opcheck_tensor(int ndim, const int64_t *dims, uint64_t seed)
{
    struct tview t = {.dtype = DTYPE_FLOAT, .ndim = ndim};
    if (ndim)
        memcpy(t.dims, dims, (size_t)ndim * sizeof *dims);
    int64_t n = tview_count(&t);
    float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    uint64_t s = seed * 2654435761u + 88172645463325252ull;
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)((opcheck_rng(&s) >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
    t.data = p;
    return t;
}

/* An int64 tensor holding `vals`; data malloc'd. */
static inline struct tview opcheck_ints(int ndim, const int64_t *dims, const int64_t *vals)
{
    struct tview t = {.dtype = DTYPE_INT64, .ndim = ndim};
    if (ndim)
        memcpy(t.dims, dims, (size_t)ndim * sizeof *dims);
    int64_t n = tview_count(&t);
    int64_t *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    if (n)
        memcpy(p, vals, (size_t)n * sizeof *p);
    t.data = p;
    return t;
}

static inline int opcheck_infer(struct opcheck_run *r)
{
    struct tview *outp[OPCHECK_MAX_IO];
    for (int j = 0; j < r->n_out; j++)
        outp[j] = &r->out[j];
    return r->node.op->infer(&r->node, (const struct tview *const *)r->in, outp, r->err);
}

/* Builds the node, runs setup and infer (inputs with data count as known),
 * allocates the outputs and scratch, and runs forward. Returns 0 or the
 * negative status of setup/infer (message in r->err). in[i] may be NULL for
 * an absent optional input. */
static inline int opcheck_forward_mode(struct opcheck_run *r, const struct op *op, int opset,
                                       struct attr *attrs, int n_attrs, struct tview **in,
                                       int n_in, int n_out, int training, uint64_t seed)
{
    memset(r, 0, sizeof *r);
    r->node.name = (char *)"t";
    r->node.op_type = (char *)op->name;
    r->node.op = op;
    r->node.opset = opset;
    r->node.attrs = attrs;
    r->node.n_attrs = n_attrs;
    r->node.n_inputs = n_in;
    r->node.n_outputs = n_out;
    r->n_in = n_in;
    r->n_out = n_out;
    for (int i = 0; i < n_in; i++)
        r->in[i] = in[i];
    int rc = r->node.op->setup ? r->node.op->setup(&r->node, r->err) : 0;
    if (rc < 0)
        return rc;
    if ((rc = opcheck_infer(r)) < 0)
        return rc;
    for (int j = 0; j < n_out; j++) {
        int64_t c = tview_count(&r->out[j]);
        size_t es = r->out[j].dtype == DTYPE_INT64 ? 8 : 4;
        r->out[j].data = calloc((size_t)(c ? c : 1), es);
    }
    const struct tview *outc[OPCHECK_MAX_IO];
    for (int j = 0; j < n_out; j++)
        outc[j] = &r->out[j];
    r->scratch_len = r->node.op->scratch
                         ? r->node.op->scratch(&r->node, (const struct tview *const *)r->in, outc)
                         : 0;
    r->scratch = aligned_alloc(64, ((r->scratch_len + 16) * sizeof(float) + 63) / 64 * 64);
    if (training) {
        r->training = 1;
        r->rng_seed_value = seed;
        r->state_len = r->node.op->train_state
                           ? r->node.op->train_state(&r->node, (const struct tview *const *)r->in,
                                                     outc)
                           : 0;
        r->state = calloc(r->state_len + 1, sizeof(float));
    }
    struct op_ctx ctx = opcheck_ctx(r);
    struct tview *outp[OPCHECK_MAX_IO];
    for (int j = 0; j < n_out; j++)
        outp[j] = &r->out[j];
    r->node.op->forward(&r->node, (const struct tview *const *)r->in, outp, &ctx);
    return 0;
}

static inline int opcheck_forward(struct opcheck_run *r, const struct op *op, int opset,
                                  struct attr *attrs, int n_attrs, struct tview **in, int n_in,
                                  int n_out)
{
    return opcheck_forward_mode(r, op, opset, attrs, n_attrs, in, n_in, n_out, 0, 0);
}

/* opcheck_forward in training mode: the op's train_state, and dropout drawn
 * from a generator seeded with `seed` (the same draws at every forward). */
static inline int opcheck_forward_training(struct opcheck_run *r, const struct op *op, int opset,
                                           struct attr *attrs, int n_attrs, struct tview **in,
                                           int n_in, int n_out, uint64_t seed)
{
    return opcheck_forward_mode(r, op, opset, attrs, n_attrs, in, n_in, n_out, 1, seed);
}

static inline void opcheck_free(struct opcheck_run *r)
{
    for (int j = 0; j < r->n_out; j++)
        free(r->out[j].data);
    free(r->scratch);
    free(r->state);
    free(r->node.params);
    memset(r, 0, sizeof *r);
}

/* L = sum_j sum(w_j * out_j) for the current inputs (reruns forward). */
static inline double opcheck_loss(struct opcheck_run *r, float *const *w)
{
    struct op_ctx ctx = opcheck_ctx(r);
    struct tview *outp[OPCHECK_MAX_IO];
    for (int j = 0; j < r->n_out; j++)
        outp[j] = &r->out[j];
    r->node.op->forward(&r->node, (const struct tview *const *)r->in, outp, &ctx);
    double L = 0;
    for (int j = 0; j < r->n_out; j++) {
        if (r->out[j].dtype != DTYPE_FLOAT)
            continue;
        int64_t c = tview_count(&r->out[j]);
        for (int64_t k = 0; k < c; k++)
            L += (double)w[j][k] * tview_f(&r->out[j])[k];
    }
    return L;
}

/* Checks backward against central differences (step 1e-3) for every float
 * input whose mask bit is set (bit i = input i), at every element (or a
 * strided sample of at most 400 per input). Prints the first mismatches as
 * TAP diagnostics. Returns the number of mismatches:
 * |analytic - numeric| > atol + rtol * |numeric|. Inputs are perturbed in
 * place and restored. Ops that are not smooth everywhere (relu, max) should
 * be given inputs away from their kinks. */
static inline int opcheck_gradients(struct opcheck_run *r, unsigned mask, double rtol, double atol)
{
    float *w[OPCHECK_MAX_IO] = {0};
    struct tview dout[OPCHECK_MAX_IO], din[OPCHECK_MAX_IO];
    uint64_t s = 12345;
    for (int j = 0; j < r->n_out; j++) {
        int64_t c = tview_count(&r->out[j]);
        w[j] = malloc((size_t)(c ? c : 1) * sizeof(float));
        for (int64_t k = 0; k < c; k++)
            w[j][k] = (float)((opcheck_rng(&s) >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
        dout[j] = r->out[j];
        dout[j].data = w[j];
    }
    for (int i = 0; i < r->n_in; i++) {
        din[i] = r->in[i] ? *r->in[i] : (struct tview){0};
        din[i].data = NULL;
        if (r->in[i] && (mask >> i & 1) && r->in[i]->dtype == DTYPE_FLOAT) {
            int64_t c = tview_count(r->in[i]);
            din[i].data = calloc((size_t)(c ? c : 1), sizeof(float));
        }
    }
    /* forward of the unperturbed inputs, then backward */
    opcheck_loss(r, w);
    struct op_ctx ctx = opcheck_ctx(r);
    const struct tview *doutp[OPCHECK_MAX_IO];
    struct tview *dinp[OPCHECK_MAX_IO];
    for (int j = 0; j < r->n_out; j++)
        doutp[j] = &dout[j];
    for (int i = 0; i < r->n_in; i++)
        dinp[i] = din[i].data ? &din[i] : NULL;
    const struct tview *outc[OPCHECK_MAX_IO];
    for (int j = 0; j < r->n_out; j++)
        outc[j] = &r->out[j];
    r->node.op->backward(&r->node, (const struct tview *const *)r->in, outc, doutp, dinp, &ctx);

    int bad = 0;
    for (int i = 0; i < r->n_in; i++) {
        if (!din[i].data)
            continue;
        float *x = tview_f(r->in[i]);
        int64_t c = tview_count(r->in[i]);
        int64_t step = c > 400 ? c / 400 + 1 : 1;
        for (int64_t k = 0; k < c; k += step) {
            float keep = x[k];
            float h = 1e-3f * (fabsf(keep) > 1 ? fabsf(keep) : 1);
            x[k] = keep + h;
            double lp = opcheck_loss(r, w);
            x[k] = keep - h;
            double lm = opcheck_loss(r, w);
            x[k] = keep;
            double num = (lp - lm) / (2.0 * h);
            double ana = tview_f(&din[i])[k];
            if (fabs(ana - num) > atol + rtol * fabs(num)) {
                if (bad < 5)
                    printf("#   %s input %d element %lld: backward %.6g, finite difference %.6g\n",
                           r->node.op_type, i, (long long)k, ana, num);
                bad++;
            }
        }
        free(din[i].data);
    }
    opcheck_loss(r, w); /* leave outputs as forward of the original inputs */
    for (int j = 0; j < r->n_out; j++)
        free(w[j]);
    return bad;
}

#endif
