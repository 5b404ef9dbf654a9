/*
 * batch_norm.c — batch normalisation per channel over N·H·W, Keras semantics,
 * with an optional fused activation after it.
 *
 *   inference  y = act(gamma · (x − moving_mean) / sqrt(moving_var + eps) + beta)
 *   training   y = act(gamma · xhat + beta),  xhat = (x − μ_B) · invstd,
 *              invstd = 1 / sqrt(σ²_B + eps), μ_B and σ²_B the batch mean and
 *              the *biased* batch variance over the M = N·H·W values of a channel.
 *
 * Training also updates the running statistics, Keras style (momentum is the
 * weight of the old value, default 0.99):
 *   moving_mean ← momentum · moving_mean + (1 − momentum) · μ_B
 *   moving_var  ← momentum · moving_var  + (1 − momentum) · σ²_B · M/(M − 1)
 * The variance fed to the running average is the unbiased one (Bessel's
 * correction), as PyTorch and TensorFlow's fused kernel do: the running value
 * estimates the population variance used at inference. With M = 1 the batch
 * variance is 0 and is used as is.
 *
 * Memory is NHWC, so each position holds C consecutive channels: every loop
 * runs over positions outside and channels inside, which keeps reads
 * sequential and lets the compiler vectorise the channel loop. Per-channel
 * accumulators live on the stack in blocks of BN_BLOCK channels; nothing is
 * allocated.
 *
 * Training state (layer_state, bound by state_bind into one block):
 *   xhat [n · H·W·C] floats, then mean [C], invstd [C].
 *
 * Threads. Every pass runs on the pool (parallel.h), and every result is
 * bit-identical whatever the thread count:
 *   - the element-wise passes (xhat and y, dx, inference) are cut in
 *     positions;
 *   - the per-channel sums (statistics; backward's Σg and Σg·xhat) are formed
 *     as in one serial pass — a float sum per chunk of BN_CHUNK positions,
 *     the chunk sums added in chunk order in double. With scratch (ctx->col,
 *     sized by col_size) the chunks are summed in parallel into it, then each
 *     channel's chunk sums are added by one piece; without it (a layer driven
 *     by hand with no col) each piece sums whole channels, in groups of
 *     BN_GROUP, straight from the input. Both run the same chunk loop.
 * Cutting by positions wherever the big tensors are written or streamed is
 * measured: two cores each writing or reading half of every position's
 * channels (alternate cache lines) ran up to three times slower than one.
 */
#include "layer.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#include "../parallel.h"
#include "../status.h"

#define BN_BLOCK 256
/* Channels per unit of the training passes' split (see the file comment). */
#define BN_GROUP 16

static int bn_configure(struct layer *l, char *err)
{
    const struct layer_config *c = &l->cfg;
    if (l->in.h < 1 || l->in.w < 1 || l->in.c < 1)
        return strata_fail(err, STRATA_E_ARG, "layer '%s': input shape %dx%dx%d is empty",
                           c->name, l->in.h, l->in.w, l->in.c);
    if (!(c->epsilon > 0.0f) || !isfinite(c->epsilon))
        return strata_fail(err, STRATA_E_ARG,
                           "layer '%s': epsilon is %g, it must be a positive number "
                           "(Keras default 1e-3)",
                           c->name, (double)c->epsilon);
    if (!(c->momentum >= 0.0f && c->momentum <= 1.0f))
        return strata_fail(err, STRATA_E_ARG,
                           "layer '%s': momentum is %g, it must be in [0, 1] "
                           "(Keras default 0.99)",
                           c->name, (double)c->momentum);
    if (c->activation != ACT_NONE && c->activation != ACT_RELU &&
        c->activation != ACT_SIGMOID && c->activation != ACT_SOFTMAX)
        return strata_fail(err, STRATA_E_ARG, "layer '%s': unknown activation %d", c->name,
                           (int)c->activation);
    l->out = l->in;
    return 0;
}

static int bn_params(const struct layer *l, struct param_desc *desc)
{
    static const char *const names[4] = {"gamma", "beta", "moving_mean", "moving_variance"};
    for (int i = 0; i < 4; i++) {
        desc[i] = (struct param_desc){
            .name = names[i], .ndim = 1, .dims = {l->in.c}, .trainable = i < 2};
    }
    return 4;
}

static size_t bn_state_size(const struct layer *l, int n)
{
    return ((size_t)n * shape_size(l->in) + 2 * (size_t)l->in.c) * sizeof(float);
}

static void bn_state_bind(struct layer *l, void *block, int n)
{
    float *f = block;
    l->state.xhat = f;
    l->state.mean = f + (size_t)n * shape_size(l->in);
    l->state.invstd = l->state.mean + l->in.c;
}

static void bn_init(struct layer *l, struct rng *r)
{
    for (int i = 0; i < l->in.c; i++) {
        l->w.gamma[i] = 1.0f;
        l->w.beta[i] = 0.0f;
        l->w.moving_mean[i] = 0.0f;
        l->w.moving_var[i] = 1.0f;
    }
}

/* out[p][c] = act(x[p][c] · scale[c] + shift[c]) for P positions of C channels,
 * channels [c0, c0 + cb). relu is applied here, in the same pass; the other
 * activations by the caller afterwards (softmax needs whole rows). */
static void bn_affine(float *restrict out, const float *restrict in, size_t P, int C, int c0,
                      int cb, const float *restrict scale, const float *restrict shift,
                      int relu)
{
    for (size_t p = 0; p < P; p++) {
        const float *x = in + p * (size_t)C + c0;
        float *y = out + p * (size_t)C + c0;
        if (relu) {
            for (int j = 0; j < cb; j++) {
                float v = x[j] * scale[j] + shift[j];
                y[j] = v > 0.0f ? v : 0.0f;
            }
        } else {
            for (int j = 0; j < cb; j++)
                y[j] = x[j] * scale[j] + shift[j];
        }
    }
}

/* Positions per float partial sum of the statistics (see bn_forward_training). */
#define BN_CHUNK 64

/* One pass's operands, for the pieces run on the pool. */
struct bn_job {
    struct layer *l;
    float *out;         /* forward: y; backward: din (may be NULL) */
    const float *in;    /* forward: x; backward: g, the pre-activation gradient */
    size_t P;           /* positions N·H·W */
    size_t chunks;      /* ⌈P / BN_CHUNK⌉ */
    int c0, cb;         /* the block of channels being summed */
    float *part;        /* [chunks][2·cb] the chunks' float sums, or NULL */
    /* the block's shifts (forward), or dx = k·(g − a − xhat·b) (backward) */
    float k[BN_BLOCK], a[BN_BLOCK], b[BN_BLOCK];
};

/* Channels [c_begin, c_end) of the job's block for units [ub, ue) of
 * BN_GROUP channels. */
static void bn_units(const struct bn_job *j, int ub, int ue, int *c_begin, int *c_end)
{
    *c_begin = j->c0 + ub * BN_GROUP;
    *c_end = j->c0 + ue * BN_GROUP < j->c0 + j->cb ? j->c0 + ue * BN_GROUP : j->c0 + j->cb;
}

static int bn_unit_count(int C)
{
    return (C + BN_GROUP - 1) / BN_GROUP;
}

/* Scratch floats the training passes want for the chunks' sums: a row of
 * 2·min(C, BN_BLOCK) floats per chunk of a batch of n. */
static size_t bn_col_size(const struct layer *l, int n)
{
    size_t P = (size_t)n * (size_t)l->in.h * (size_t)l->in.w;
    size_t cb = l->in.c < BN_BLOCK ? (size_t)l->in.c : BN_BLOCK;
    return (P + BN_CHUNK - 1) / BN_CHUNK * 2 * cb;
}

/* Inference forward of positions [b, e). */
static void bn_inference_piece(void *p, int b, int e)
{
    const struct bn_job *j = p;
    const struct layer *l = j->l;
    const int C = l->in.c;
    const int relu = l->cfg.activation == ACT_RELU;
    const size_t off = (size_t)b * C;
    float scale[BN_BLOCK], shift[BN_BLOCK];
    for (int c0 = 0; c0 < C; c0 += BN_BLOCK) {
        int cb = C - c0 < BN_BLOCK ? C - c0 : BN_BLOCK;
        for (int k = 0; k < cb; k++) {
            int c = c0 + k;
            float s = l->w.gamma[c] / sqrtf(l->w.moving_var[c] + l->cfg.epsilon);
            scale[k] = s;
            shift[k] = l->w.beta[c] - l->w.moving_mean[c] * s;
        }
        bn_affine(j->out + off, j->in + off, (size_t)(e - b), C, c0, cb, scale, shift, relu);
    }
}

static void bn_forward_inference(const struct layer *l, float *out, const float *in, size_t P)
{
    assert(P <= INT32_MAX);
    struct bn_job j = {.l = (struct layer *)l, .out = out, .in = in, .P = P};
    parallel_for_grain((int)P, parallel_grain(2 * (size_t)l->in.c), bn_inference_piece, &j);
}

/* xhat = (x − mean)·invstd and y = gamma·xhat + beta (relu fused), one pass
 * over positions; restrict and the hoisted relu test let the channel loop
 * vectorise. */
static void bn_normalise(float *restrict out, float *restrict xhat, const float *restrict in,
                         size_t P, int C, const float *restrict mean,
                         const float *restrict invstd, const float *restrict gamma,
                         const float *restrict beta, int relu)
{
    for (size_t p = 0; p < P; p++) {
        const float *x = in + p * (size_t)C;
        float *xh = xhat + p * (size_t)C, *y = out + p * (size_t)C;
        if (relu) {
            for (int c = 0; c < C; c++) {
                float h = (x[c] - mean[c]) * invstd[c];
                float v = gamma[c] * h + beta[c];
                xh[c] = h;
                y[c] = v > 0.0f ? v : 0.0f;
            }
        } else {
            for (int c = 0; c < C; c++) {
                float h = (x[c] - mean[c]) * invstd[c];
                xh[c] = h;
                y[c] = gamma[c] * h + beta[c];
            }
        }
    }
}

/* f1[j] = Σ (x − k[j]), f2[j] = Σ (x − k[j])² over positions [p0, pe) of
 * channels [c0, c0 + cb), in float. Both ways of cutting the statistics use
 * this one loop, so both add the same floats in the same order. */
static void bn_chunk_stats(float *restrict f1, float *restrict f2, const float *restrict in,
                           int C, int c0, int cb, const float *restrict k, size_t p0, size_t pe)
{
    for (int j = 0; j < cb; j++)
        f1[j] = f2[j] = 0.0f;
    for (size_t p = p0; p < pe; p++) {
        const float *x = in + p * (size_t)C + c0;
        for (int j = 0; j < cb; j++) {
            float d = x[j] - k[j];
            f1[j] += d;
            f2[j] += d * d;
        }
    }
}

/* Mean, invstd and the running averages of channels [c0, c0 + cb) from
 * their shifted sums (k the shifts). */
static void bn_stats_finish(struct layer *l, int c0, int cb, const float *k, const double *s1,
                            const double *s2, size_t P)
{
    const float mom = l->cfg.momentum, eps = l->cfg.epsilon;
    for (int j = 0; j < cb; j++) {
        int c = c0 + j;
        double dm = s1[j] / (double)P;
        double var = s2[j] / (double)P - dm * dm;
        var = var > 0.0 ? var : 0.0;
        l->state.mean[c] = (float)((double)k[j] + dm);
        double unbiased = P > 1 ? var * (double)P / (double)(P - 1) : var;
        l->state.invstd[c] = (float)(1.0 / sqrt(var + (double)eps));
        l->w.moving_mean[c] = mom * l->w.moving_mean[c] + (1.0f - mom) * l->state.mean[c];
        l->w.moving_var[c] = mom * l->w.moving_var[c] + (1.0f - mom) * (float)unbiased;
    }
}

/* Chunks [qb, qe) of the block: their float sums into part. */
static void bn_stats_chunks_piece(void *p, int qb, int qe)
{
    const struct bn_job *j = p;
    const int C = j->l->in.c;
    for (int q = qb; q < qe; q++) {
        const size_t p0 = (size_t)q * BN_CHUNK;
        const size_t pe = j->P - p0 < BN_CHUNK ? j->P : p0 + BN_CHUNK;
        float *row = j->part + (size_t)q * 2 * j->cb;
        bn_chunk_stats(row, row + j->cb, j->in, C, j->c0, j->cb, j->k, p0, pe);
    }
}

/* Channels of units [ub, ue): the chunks' sums added in chunk order in
 * double, read from part when the chunks were summed there, else summed
 * here over all positions; then the statistics. */
static void bn_stats_piece(void *p, int ub, int ue)
{
    const struct bn_job *j = p;
    const int C = j->l->in.c;
    double s1[BN_BLOCK], s2[BN_BLOCK];
    float f1[BN_BLOCK], f2[BN_BLOCK];
    int cs, ce;
    bn_units(j, ub, ue, &cs, &ce);
    const int o = cs - j->c0, cn = ce - cs;
    for (int i = 0; i < cn; i++)
        s1[i] = s2[i] = 0.0;
    for (size_t q = 0; q < j->chunks; q++) {
        const float *a, *b;
        if (j->part) {
            a = j->part + q * 2 * (size_t)j->cb + o;
            b = a + j->cb;
        } else {
            const size_t p0 = q * BN_CHUNK, pe = j->P - p0 < BN_CHUNK ? j->P : p0 + BN_CHUNK;
            bn_chunk_stats(f1, f2, j->in, C, cs, cn, j->k + o, p0, pe);
            a = f1;
            b = f2;
        }
        for (int i = 0; i < cn; i++) {
            s1[i] += a[i];
            s2[i] += b[i];
        }
    }
    bn_stats_finish(j->l, cs, cn, j->k + o, s1, s2, j->P);
}

/* xhat and y for positions [b, e). */
static void bn_normalise_piece(void *p, int b, int e)
{
    const struct bn_job *jb = p;
    const struct layer *l = jb->l;
    const int C = l->in.c;
    const size_t off = (size_t)b * C;
    bn_normalise(jb->out + off, l->state.xhat + off, jb->in + off, (size_t)(e - b), C,
                 l->state.mean, l->state.invstd, l->w.gamma, l->w.beta,
                 l->cfg.activation == ACT_RELU);
}

/* Points j->part at ctx's scratch when it holds the chunks' sums of a block,
 * else NULL (then the sums run per channel, over all positions). */
static void bn_bind_part(struct bn_job *j, const struct layer_ctx *ctx)
{
    const size_t need = j->chunks * 2 * (size_t)j->cb;
    j->part = ctx && ctx->col && ctx->col_len >= need && j->chunks >= 2 ? ctx->col : NULL;
}

/* Runs the statistics of the job's block: chunks summed in parallel into
 * part, then channels reduced in parallel — or, without scratch, channels
 * summed in parallel straight from the input. */
static void bn_block_sums(struct bn_job *j, parallel_fn chunks_piece, parallel_fn reduce_piece,
                          size_t chunk_work)
{
    if (j->part) {
        parallel_for_grain((int)j->chunks, parallel_grain(chunk_work), chunks_piece, j);
        parallel_for_grain(bn_unit_count(j->cb), parallel_grain(2 * j->chunks * BN_GROUP),
                           reduce_piece, j);
    } else {
        parallel_for_grain(bn_unit_count(j->cb),
                           parallel_grain(chunk_work / (size_t)j->cb * j->chunks * BN_GROUP),
                           reduce_piece, j);
    }
}

/* Batch statistics in one pass over the input, the running-average update,
 * then xhat and y in a second pass.
 *
 * The statistics use shifted sums: with K a value of the channel (its first
 * one), S1 = Σ (x − K) and S2 = Σ (x − K)², mean = K + S1/M and
 * var = S2/M − (S1/M)². Plain E[x²] − E[x]² cancels catastrophically when
 * |mean| ≫ std; shifting by a sample of the same channel keeps both terms of
 * the order of var. The sums run in float over chunks of BN_CHUNK positions
 * (vectorised 4 or 8 wide, error ~BN_CHUNK·2⁻²⁴ relative) and the chunk sums
 * are added in double, so M can be 10⁶ without drift: 2.5× faster than
 * double throughout, and as accurate as the float input warrants. */
static void bn_forward_training(const struct layer *l, float *out, const float *in, size_t P,
                                const struct layer_ctx *ctx)
{
    const int C = l->in.c;
    assert(l->state.mean && l->state.invstd && l->state.xhat &&
           "batch_norm: training forward needs state_bind");
    assert(P <= INT32_MAX);
    struct bn_job j = {.l = (struct layer *)l, .out = out, .in = in, .P = P,
                       .chunks = (P + BN_CHUNK - 1) / BN_CHUNK};
    /* The running averages are parameters the forward updates; each piece
     * writes only its own channels'. */
    for (j.c0 = 0; j.c0 < C; j.c0 += BN_BLOCK) {
        j.cb = C - j.c0 < BN_BLOCK ? C - j.c0 : BN_BLOCK;
        memcpy(j.k, in + j.c0, (size_t)j.cb * sizeof(float)); /* K: the first position */
        bn_bind_part(&j, ctx);
        bn_block_sums(&j, bn_stats_chunks_piece, bn_stats_piece, (size_t)BN_CHUNK * j.cb);
    }
    parallel_for_grain((int)P, parallel_grain(3 * (size_t)C), bn_normalise_piece, &j);
}

static void bn_forward(const struct layer *l, float *out, const float *in, int n,
                       struct layer_ctx *ctx)
{
    size_t P = (size_t)n * (size_t)l->in.h * (size_t)l->in.w;
    if (P == 0)
        return;
    if (ctx->training)
        bn_forward_training(l, out, in, P, ctx);
    else
        bn_forward_inference(l, out, in, P);
    if (l->cfg.activation != ACT_RELU)
        activation_forward(l->cfg.activation, out, (int)P, l->in.c);
}

/* Training mode. With g = dL/dy (pre-activation) and M values per channel,
 *   dbeta  = Σ g          dgamma = Σ g · xhat
 *   dx     = gamma · invstd / M · (M g − Σ g − xhat · Σ g·xhat)
 * the last being the chain rule through xhat, μ_B and σ²_B together. */

/* f1[j] = Σ g, f2[j] = Σ g·xhat over positions [p0, pe) of channels
 * [c0, c0 + cb), in float (float within a chunk, double across chunks, as
 * in the forward). */
static void bn_chunk_grads(float *restrict f1, float *restrict f2, const float *restrict g,
                           const float *restrict xhat, int C, int c0, int cb, size_t p0,
                           size_t pe)
{
    for (int j = 0; j < cb; j++)
        f1[j] = f2[j] = 0.0f;
    for (size_t p = p0; p < pe; p++) {
        const float *gp = g + p * (size_t)C + c0, *xp = xhat + p * (size_t)C + c0;
        for (int j = 0; j < cb; j++) {
            f1[j] += gp[j];
            f2[j] += gp[j] * xp[j];
        }
    }
}

/* Chunks [qb, qe) of the block: their float sums into part. */
static void bn_grad_chunks_piece(void *p, int qb, int qe)
{
    const struct bn_job *j = p;
    const int C = j->l->in.c;
    for (int q = qb; q < qe; q++) {
        const size_t p0 = (size_t)q * BN_CHUNK;
        const size_t pe = j->P - p0 < BN_CHUNK ? j->P : p0 + BN_CHUNK;
        float *row = j->part + (size_t)q * 2 * j->cb;
        bn_chunk_grads(row, row + j->cb, j->in, j->l->state.xhat, C, j->c0, j->cb, p0, pe);
    }
}

/* Channels of units [ub, ue): Σg and Σg·xhat (from part, or over all
 * positions), the gradients of gamma and beta, and dx's factors. */
static void bn_grad_piece(void *p, int ub, int ue)
{
    struct bn_job *j = p;
    struct layer *l = j->l;
    const int C = l->in.c;
    const size_t P = j->P;
    double sg[BN_BLOCK], sgx[BN_BLOCK];
    float f1[BN_BLOCK], f2[BN_BLOCK];
    int cs, ce;
    bn_units(j, ub, ue, &cs, &ce);
    const int o = cs - j->c0, cn = ce - cs;
    for (int i = 0; i < cn; i++)
        sg[i] = sgx[i] = 0.0;
    for (size_t q = 0; q < j->chunks; q++) {
        const float *a, *b;
        if (j->part) {
            a = j->part + q * 2 * (size_t)j->cb + o;
            b = a + j->cb;
        } else {
            const size_t p0 = q * BN_CHUNK, pe = P - p0 < BN_CHUNK ? P : p0 + BN_CHUNK;
            bn_chunk_grads(f1, f2, j->in, l->state.xhat, C, cs, cn, p0, pe);
            a = f1;
            b = f2;
        }
        for (int i = 0; i < cn; i++) {
            sg[i] += a[i];
            sgx[i] += b[i];
        }
    }
    if (l->grad.gamma) {
        for (int i = 0; i < cn; i++) {
            l->grad.gamma[cs + i] += (float)sgx[i];
            l->grad.beta[cs + i] += (float)sg[i];
        }
    }
    /* dx = k · (g − a − xhat · b), k = gamma·invstd, a = Σg/M, b = Σg·xhat/M */
    for (int i = 0; i < cn; i++) {
        j->k[o + i] = l->w.gamma[cs + i] * l->state.invstd[cs + i];
        j->a[o + i] = (float)(sg[i] / (double)P);
        j->b[o + i] = (float)(sgx[i] / (double)P);
    }
}

/* din += dx for positions [pb, pe) of the job's block. */
static void bn_dx_piece(void *p, int pb, int pe)
{
    const struct bn_job *jb = p;
    const int C = jb->l->in.c, c0 = jb->c0, cb = jb->cb;
    const float *restrict k = jb->k, *restrict a = jb->a, *restrict b = jb->b;
    const float *xhat = jb->l->state.xhat;
    for (size_t pp = (size_t)pb; pp < (size_t)pe; pp++) {
        const float *gp = jb->in + pp * (size_t)C + c0, *xp = xhat + pp * (size_t)C + c0;
        float *dx = jb->out + pp * (size_t)C + c0;
        for (int j = 0; j < cb; j++)
            dx[j] += k[j] * (gp[j] - a[j] - xp[j] * b[j]);
    }
}

static void bn_backward_training(struct layer *l, float *din, const float *g, size_t P,
                                 const struct layer_ctx *ctx)
{
    assert(l->state.xhat && l->state.invstd &&
           "batch_norm: backward needs the training forward's state");
    assert(P <= INT32_MAX);
    const int C = l->in.c;
    struct bn_job j = {.l = l, .out = din, .in = g, .P = P,
                       .chunks = (P + BN_CHUNK - 1) / BN_CHUNK};
    for (j.c0 = 0; j.c0 < C; j.c0 += BN_BLOCK) {
        j.cb = C - j.c0 < BN_BLOCK ? C - j.c0 : BN_BLOCK;
        bn_bind_part(&j, ctx);
        bn_block_sums(&j, bn_grad_chunks_piece, bn_grad_piece, 2 * (size_t)BN_CHUNK * j.cb);
        if (din)
            parallel_for_grain((int)P, parallel_grain(4 * (size_t)j.cb), bn_dx_piece, &j);
    }
}

/* Inference mode (frozen statistics, e.g. a saliency gradient through a
 * trained model): the layer is affine per channel, y = s·x + t with
 * s = gamma/sqrt(moving_var + eps), so dx = s·g, dgamma = Σ g·(x − mm)/sd,
 * dbeta = Σ g. The running statistics get no gradient. */
static void bn_backward_inference(struct layer *l, float *din, const float *g, const float *in,
                                  size_t P)
{
    const int C = l->in.c;
    double sg[BN_BLOCK], sgx[BN_BLOCK];
    float s[BN_BLOCK], inv[BN_BLOCK];

    for (int c0 = 0; c0 < C; c0 += BN_BLOCK) {
        int cb = C - c0 < BN_BLOCK ? C - c0 : BN_BLOCK;
        for (int j = 0; j < cb; j++) {
            inv[j] = 1.0f / sqrtf(l->w.moving_var[c0 + j] + l->cfg.epsilon);
            s[j] = l->w.gamma[c0 + j] * inv[j];
            sg[j] = sgx[j] = 0.0;
        }
        for (size_t p = 0; p < P; p++) {
            const float *gp = g + p * (size_t)C + c0, *xp = in + p * (size_t)C + c0;
            if (din) {
                float *dx = din + p * (size_t)C + c0;
                for (int j = 0; j < cb; j++)
                    dx[j] += s[j] * gp[j];
            }
            if (l->grad.gamma) {
                for (int j = 0; j < cb; j++) {
                    sg[j] += gp[j];
                    sgx[j] += (double)gp[j] * ((xp[j] - l->w.moving_mean[c0 + j]) * inv[j]);
                }
            }
        }
        if (l->grad.gamma) {
            for (int j = 0; j < cb; j++) {
                l->grad.gamma[c0 + j] += (float)sgx[j];
                l->grad.beta[c0 + j] += (float)sg[j];
            }
        }
    }
}

/* ctx->training selects which forward is being differentiated: it must match
 * the forward that produced `out`. */
static void bn_backward(struct layer *l, float *din, float *dout, const float *in,
                        const float *out, int n, struct layer_ctx *ctx)
{
    size_t P = (size_t)n * (size_t)l->in.h * (size_t)l->in.w;
    if (P == 0)
        return;
    if (!ctx->dout_is_preact)
        activation_backward(l->cfg.activation, dout, out, (int)P, l->in.c);
    if (ctx->training)
        bn_backward_training(l, din, dout, P, ctx);
    else
        bn_backward_inference(l, din, dout, in, P);
}

const struct layer_ops batch_norm_ops = {
    .type = "batch_norm",
    .kind = LAYER_BATCH_NORM,
    .configure = bn_configure,
    .params = bn_params,
    .col_size = bn_col_size,
    .state_size = bn_state_size,
    .state_bind = bn_state_bind,
    .init = bn_init,
    .forward = bn_forward,
    .backward = bn_backward,
};
