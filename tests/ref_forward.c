/*
 * ref_forward.c — the reference forward pass (ref_forward.h): each layer
 * kind of strata's sequential models, in inference mode, as the plainest
 * loops over NHWC arrays of doubles.
 *
 * The semantics implemented, layer by layer (x the input, y the output):
 *   conv2d       y[oy][ox][f] = act(bias[f] + Σ_ky,kx,ci x[oy·s − pt + ky][ox·s − pl + kx][ci]
 *                · kernel[ky][kx][ci][f]), kernel HWIO, positions outside x read 0; with G
 *                groups, filter f reads only the C/G channels of its group (f·G/F)
 *   batch_norm   y = act(gamma · (x − moving_mean) / sqrt(moving_var + eps) + beta), per channel
 *   maxpool2d    y[oy][ox][c] = max over the pool×pool window at (oy·s − pt, ox·s − pl) of the
 *                positions inside x (padded positions never win); stride 0 means stride = pool
 *   global_avg_pool  y[c] = mean over all positions of x[.][.][c]
 *   flatten      y = x read in its NHWC order (h, w, c)
 *   dense        y[u] = act(bias[u] + Σ_i x[i] · kernel[i][u]), x flattened in NHWC order
 *   dropout      y = x (the identity at inference)
 *   relu, sigmoid, softmax   the activation alone
 *   add          y = act(Σ_k x_k), element by element, over the layers "inputs" names
 *   concat       y = those inputs side by side along the channels, in their order
 * Every layer reads the layers its "inputs" name (the one before it in a
 * chain; the image for -1). act is one of: none; relu max(0, v); sigmoid
 * 1 / (1 + e^−v); softmax over the channels of one position (the units of a
 * dense layer); relu6 min(max(v, 0), 6); hardswish v · min(max(v + 3, 0), 6) / 6.
 *
 * Output sizes and padding are TensorFlow's, for conv2d and maxpool2d alike
 * (window k, stride s, input size n):
 *   valid  out = floor((n − k) / s) + 1, no padding
 *   same   out = ceil(n / s); pad_total = max((out − 1)·s + k − n, 0), of which
 *          pt = pad_total / 2 goes before (top, left) and the rest after.
 */
#include "ref_forward.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Output size along one axis and the padding before it (see above). */
static int out_size(int n, int k, int s, enum padding pad, int *before)
{
    if (pad == PADDING_VALID) {
        *before = 0;
        return n >= k ? (n - k) / s + 1 : 0;
    }
    int out = (n + s - 1) / s;
    int total = (out - 1) * s + k - n;
    if (total < 0)
        total = 0;
    *before = total / 2;
    return out;
}

/* A logistic that never overflows (the tests trap on overflow). */
static double sigmoid(double v)
{
    return v >= 0 ? 1 / (1 + exp(-v)) : exp(v) / (1 + exp(v));
}

/* Applies act in place to `positions` groups of `channels` values. */
static void activate(double *y, size_t positions, int channels, enum activation act)
{
    for (size_t p = 0; p < positions; p++) {
        double *v = y + p * channels;
        if (act == ACT_RELU)
            for (int c = 0; c < channels; c++)
                v[c] = v[c] > 0 ? v[c] : 0;
        else if (act == ACT_SIGMOID)
            for (int c = 0; c < channels; c++)
                v[c] = sigmoid(v[c]);
        else if (act == ACT_RELU6)
            for (int c = 0; c < channels; c++)
                v[c] = fmin(fmax(v[c], 0), 6);
        else if (act == ACT_HARDSWISH)
            for (int c = 0; c < channels; c++)
                v[c] = v[c] * fmin(fmax(v[c] + 3, 0), 6) / 6;
        else if (act == ACT_SOFTMAX) {
            double mx = v[0], sum = 0;
            for (int c = 1; c < channels; c++)
                mx = fmax(mx, v[c]);
            for (int c = 0; c < channels; c++)
                sum += v[c] = exp(v[c] - mx);
            for (int c = 0; c < channels; c++)
                v[c] /= sum;
        }
    }
}

static void conv2d(double *y, const double *x, const struct layer *l, int n, int pt, int pl)
{
    const struct layer_config *c = &l->cfg;
    const int H = l->in.h, W = l->in.w, C = l->in.c;
    const int Ho = l->out.h, Wo = l->out.w, F = c->filters, k = c->kernel;
    const int s = c->stride ? c->stride : 1;
    /* filter f of group g = f / (F/G) reads channels [g·C/G, (g+1)·C/G),
     * its kernel slice [ky][kx][ci - g·C/G][f] */
    const int G = c->groups ? c->groups : 1, Cg = C / G, Fg = F / G;
    for (int b = 0; b < n; b++)
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++)
                for (int f = 0; f < F; f++) {
                    double acc = c->use_bias ? l->w.bias[f] : 0;
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int iy = oy * s - pt + ky, ix = ox * s - pl + kx;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                                continue;
                            for (int j = 0; j < Cg; j++)
                                acc += x[(((size_t)b * H + iy) * W + ix) * C + f / Fg * Cg + j] *
                                       l->w.kernel[(((size_t)ky * k + kx) * Cg + j) * F + f];
                        }
                    y[(((size_t)b * Ho + oy) * Wo + ox) * F + f] = acc;
                }
}

static void maxpool2d(double *y, const double *x, const struct layer *l, int n, int pt, int pl)
{
    const int H = l->in.h, W = l->in.w, C = l->in.c, Ho = l->out.h, Wo = l->out.w;
    const int k = l->cfg.pool, s = l->cfg.stride ? l->cfg.stride : k;
    for (int b = 0; b < n; b++)
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++)
                for (int ch = 0; ch < C; ch++) {
                    double mx = -INFINITY;
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int iy = oy * s - pt + ky, ix = ox * s - pl + kx;
                            if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                                mx = fmax(mx, x[(((size_t)b * H + iy) * W + ix) * C + ch]);
                        }
                    y[(((size_t)b * Ho + oy) * Wo + ox) * C + ch] = mx;
                }
}

static void dense(double *y, const double *x, const struct layer *l, int n)
{
    const size_t I = shape_size(l->in);
    const int U = l->cfg.units;
    for (int b = 0; b < n; b++)
        for (int u = 0; u < U; u++) {
            double acc = l->cfg.use_bias ? l->w.bias[u] : 0;
            for (size_t i = 0; i < I; i++)
                acc += x[(size_t)b * I + i] * l->w.kernel[i * U + u];
            y[(size_t)b * U + u] = acc;
        }
}

static void batch_norm(double *y, const double *x, const struct layer *l, size_t positions)
{
    const int C = l->in.c;
    for (size_t p = 0; p < positions; p++)
        for (int ch = 0; ch < C; ch++) {
            double xhat = (x[p * C + ch] - l->w.moving_mean[ch]) /
                          sqrt((double)l->w.moving_var[ch] + l->cfg.epsilon);
            y[p * C + ch] = l->w.gamma[ch] * xhat + l->w.beta[ch];
        }
}

static void global_avg_pool(double *y, const double *x, const struct layer *l, int n)
{
    const int HW = l->in.h * l->in.w, C = l->in.c;
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < C; ch++) {
            double sum = 0;
            for (int p = 0; p < HW; p++)
                sum += x[((size_t)b * HW + p) * C + ch];
            y[(size_t)b * C + ch] = sum / HW;
        }
}

/* The output shape of layer l from its input, by the rules above, and the
 * padding before its windows. */
static struct shape layer_out(const struct layer *l, int *pt, int *pl)
{
    const struct layer_config *c = &l->cfg;
    struct shape in = l->in;
    *pt = *pl = 0;
    switch (c->kind) {
    case LAYER_CONV2D: {
        int s = c->stride ? c->stride : 1;
        return (struct shape){.h = out_size(in.h, c->kernel, s, c->padding, pt),
                              .w = out_size(in.w, c->kernel, s, c->padding, pl),
                              .c = c->filters};
    }
    case LAYER_MAXPOOL2D: {
        int s = c->stride ? c->stride : c->pool;
        return (struct shape){.h = out_size(in.h, c->pool, s, c->padding, pt),
                              .w = out_size(in.w, c->pool, s, c->padding, pl), .c = in.c};
    }
    case LAYER_GLOBAL_AVG_POOL:
        return (struct shape){.h = 1, .w = 1, .c = in.c};
    case LAYER_FLATTEN:
        return (struct shape){.h = 1, .w = 1, .c = in.h * in.w * in.c};
    case LAYER_DENSE:
        return (struct shape){.h = 1, .w = 1, .c = c->units};
    case LAYER_CONCAT: {
        int channels = 0;
        for (int k = 0; k < l->n_inputs; k++)
            channels += l->ins[k].c;
        return (struct shape){.h = in.h, .w = in.w, .c = channels};
    }
    default:
        return in;
    }
}

/* y = Σ_k x_k, element by element (every input of one shape). */
static void add(double *y, double *const *x, int n_inputs, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        double sum = 0;
        for (int k = 0; k < n_inputs; k++)
            sum += x[k][i];
        y[i] = sum;
    }
}

/* y = the inputs side by side along the channels, in input order. */
static void concat(double *y, double *const *x, const struct layer *l, size_t positions)
{
    for (size_t p = 0; p < positions; p++) {
        double *dst = y + p * l->out.c;
        for (int k = 0; k < l->n_inputs; k++) {
            const int c = l->ins[k].c;
            memcpy(dst, x[k] + p * c, (size_t)c * sizeof *dst);
            dst += c;
        }
    }
}

static int same_shape(struct shape a, struct shape b)
{
    return a.h == b.h && a.w == b.w && a.c == b.c;
}

double **ref_forward(const struct model *m, const float *in, int n, char *err)
{
    double **out = calloc((size_t)m->n_layers, sizeof *out);
    size_t n_in = (size_t)n * shape_size(m->input);
    double *x0 = malloc(n_in * sizeof *x0);
    if (!out || !x0) {
        snprintf(err, STRATA_ERR_LEN, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n_in; i++)
        x0[i] = in[i];
    for (int i = 0; i < m->n_layers; i++) {
        const struct layer *l = &m->layers[i];
        /* what it reads: the layers its "inputs" name (-1 the image) */
        double *xs[LAYER_MAX_INPUTS];
        int fed = l->n_inputs >= 1 && l->n_inputs <= LAYER_MAX_INPUTS;
        for (int k = 0; fed && k < l->n_inputs; k++) {
            const int r = l->inputs[k];
            fed = r >= -1 && r < i &&
                  same_shape(l->ins[k], r < 0 ? m->input : m->layers[r].out);
            if (fed)
                xs[k] = r < 0 ? x0 : out[r];
        }
        if (!fed) {
            snprintf(err, STRATA_ERR_LEN, "layer %d (%s): its inputs are not earlier layers "
                     "of the shapes it was configured for", i, l->cfg.name);
            goto fail;
        }
        struct shape feeds = l->ins[0];
        int pt, pl;
        struct shape want = layer_out(l, &pt, &pl);
        if (!same_shape(l->in, feeds) || !same_shape(l->out, want)) {
            snprintf(err, STRATA_ERR_LEN,
                     "layer %d (%s): %dx%dx%d -> %dx%dx%d, the reference makes %dx%dx%d -> "
                     "%dx%dx%d",
                     i, l->cfg.name, l->in.h, l->in.w, l->in.c, l->out.h, l->out.w, l->out.c,
                     feeds.h, feeds.w, feeds.c, want.h, want.w, want.c);
            goto fail;
        }
        const double *x = xs[0];
        const size_t positions = (size_t)n * l->out.h * l->out.w;
        const size_t count = positions * l->out.c;
        double *y = out[i] = malloc(count * sizeof *y);
        if (!y) {
            snprintf(err, STRATA_ERR_LEN, "out of memory");
            goto fail;
        }
        enum activation act = ACT_NONE;
        switch (l->cfg.kind) {
        case LAYER_CONV2D:
            conv2d(y, x, l, n, pt, pl);
            act = l->cfg.activation;
            break;
        case LAYER_BATCH_NORM:
            batch_norm(y, x, l, positions);
            act = l->cfg.activation;
            break;
        case LAYER_MAXPOOL2D:
            maxpool2d(y, x, l, n, pt, pl);
            break;
        case LAYER_GLOBAL_AVG_POOL:
            global_avg_pool(y, x, l, n);
            break;
        case LAYER_DENSE:
            dense(y, x, l, n);
            act = l->cfg.activation;
            break;
        case LAYER_FLATTEN:
        case LAYER_DROPOUT:
        case LAYER_RELU:
        case LAYER_SIGMOID:
        case LAYER_SOFTMAX:
            memcpy(y, x, count * sizeof *y);
            act = l->cfg.kind == LAYER_RELU      ? ACT_RELU
                  : l->cfg.kind == LAYER_SIGMOID ? ACT_SIGMOID
                  : l->cfg.kind == LAYER_SOFTMAX ? ACT_SOFTMAX
                                                 : ACT_NONE;
            break;
        case LAYER_ADD:
            add(y, xs, l->n_inputs, count);
            act = l->cfg.activation;
            break;
        case LAYER_CONCAT:
            concat(y, xs, l, positions);
            break;
        case LAYER_KIND_COUNT:
            snprintf(err, STRATA_ERR_LEN, "layer %d: unknown kind", i);
            goto fail;
        }
        activate(y, positions, l->out.c, act);
    }
    free(x0);
    return out;
fail:
    free(x0);
    ref_forward_free(m, out);
    return NULL;
}

void ref_forward_free(const struct model *m, double **out)
{
    if (!out)
        return;
    for (int i = 0; i < m->n_layers; i++)
        free(out[i]);
    free(out);
}
