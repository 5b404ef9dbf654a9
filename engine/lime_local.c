/*
 * lime_local.c — LIME samples through receptive-field tables (see
 * lime_local.h for the idea and when it applies).
 *
 * Vocabulary. The prefix is layers [0, L) with L chosen per image among the
 * model's local, unpadded leading layers (a cut after any of them is exact;
 * the cost model picks the cheapest). Its output has P = Ho·Wo positions of
 * C channels; position p = oy·Wo + ox sees the input window of rf_h × rf_w
 * pixels whose top-left corner is (oy·stride_h, ox·stride_w). The segments
 * that window meets, by increasing id, are p's j_p bits; a pattern
 * t < 2^j_p has bit k set when p's k-th segment is kept.
 *
 * Per image:
 *   1. plan: for each candidate cut, j_p of every position, hence the number
 *      of windows Σ 2^j_p and an estimated cost; keep the cheapest cut, or
 *      decline;
 *   2. tables: every (p, t) rendered as a normalised window — photo where
 *      the bit is set, hiding colour where not, exactly the floats the
 *      whole-image forward would read — and run in batches through a view
 *      of the model's graph from the image to the prefix's output, planned
 *      on one window (same nodes, weights and kernels), whose 1×1×C output
 *      is table row (p, t);
 *   3. samples: per sample, each position's pattern from the mask picks one
 *      table row (C floats) into the input of the rest of the model, a view
 *      of the graph from the prefix's output on, which runs in batches.
 * The windows are laid out p-major, so the table of p starts at row
 * Σ_{p'<p} 2^j_p' and a batch of windows maps to consecutive table rows.
 *
 * With a dense layer folded in (lime_local.h), step 2 multiplies each batch
 * of window outputs by the C×units block W_p of the dense kernel that reads
 * their position (one small GEMM per position), so a table row holds that
 * position's share of the dense pre-activation. Positions whose windows
 * meet the same segments read the same bits, so their shares are summed
 * into one group's rows (231 groups for 1296 positions on the benchmark
 * image). Step 3 then starts each sample from the bias, adds one row per
 * group, and runs the rest of the graph from the dense's pre-activation
 * (its activation, then the layers after it).
 */
#include "lime_local.h"
#include "graph.h"
#include "model_graph.h"
#include "tensor.h"

#include <assert.h>
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Cost model, in flop-equivalents: GEMM flops count 1, an elementwise pass
 * or a copy costs ELEM_COST per float (those are memory- or scalar-bound,
 * GEMM runs near peak). Only ratios matter; the decision needs to be right
 * by a wide margin, not precise. */
#define ELEM_COST 4.0
/* Floats of window activations per batch of window evaluations. */
#define WINDOW_BATCH_FLOATS ((size_t)1 << 20)
#define WINDOW_BATCH_MAX 4096
/* Hard cap on max_bits: table indices stay well inside an int. */
#define LIME_LOCAL_BITS_CAP 20

/* How the samples go through the model for one cut of the prefix. */
struct cut {
    int L;              /* prefix: layers [0, L) */
    int fold;           /* the dense layer `dense` is folded into the tables */
    int dense;
    int tail_start;     /* first layer run per batch of samples (n_layers: none) */
    int row;            /* floats per table row: C, or the folded dense's units */
    struct lime_local_geom g;
    double row_cost;    /* flop-equivalents per table row */
    double sample_cost; /* per sample, after the tables */
};

struct lime_local {
    const struct model *m;
    struct lime_local_opts opts;
    int max_batch;
    int n_local; /* layers [0, n_local) may form the prefix */

    /* The graph the model runs on (m->graph, or one built for it). */
    const struct model_graph *mg;
    struct model_graph *own_graph; /* built here when m has no graph of its own */

    /* The window prefix and the tail as built for `cut` (cut.L 0: none):
     * parts of mg's graph (graph_view) with their workspaces. */
    struct cut cut;
    struct graph win;         /* the image to the prefix's output */
    struct graph_ws win_ws;   /* planned on windows, win_batch at a time */
    float *win_in;            /* [win_batch][3][rf_h][rf_w] */
    int win_batch;
    struct graph tail;        /* the tail's input to the probabilities */
    struct graph_ws tail_ws;
    float *tail_in;           /* [max_batch][tail_floats] */
    int has_tail;
    int tail_rank4;           /* the tail starts from the prefix's feature map */

    struct lime_local_stats stats;
};
static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

void lime_local_opts_default(struct lime_local_opts *o)
{
    assert(o);
    *o = (struct lime_local_opts){
        .max_bits = 10,
        .max_table_bytes = (size_t)256 << 20,
        .min_speedup = 2.0,
        .prefix_layers = 0,
        .fold_dense = 1,
    };
}

/* ---- geometry ------------------------------------------------------------- */

/* Whether a layer computes each output position from a bounded window of its
 * input, at inference. Softmax (fused or standalone) runs over the channels
 * of one position, so it is local too; dense, flatten and global pooling mix
 * all positions. */
static int kind_is_local(enum layer_kind k)
{
    switch (k) {
    case LAYER_CONV2D:
    case LAYER_BATCH_NORM:
    case LAYER_MAXPOOL2D:
    case LAYER_DROPOUT:
    case LAYER_RELU:
    case LAYER_SIGMOID:
    case LAYER_SOFTMAX:
        return 1;
    default:
        return 0;
    }
}

/* The window side and stride of a layer (1 and 1 for pointwise ones). */
static void layer_window(const struct layer *l, int *k, int *s)
{
    *k = 1;
    *s = 1;
    if (l->cfg.kind == LAYER_CONV2D) {
        *k = l->cfg.kernel;
        *s = l->cfg.stride;
    } else if (l->cfg.kind == LAYER_MAXPOOL2D) {
        *k = l->cfg.pool;
        *s = l->cfg.stride;
    }
}

/* Padding the layer adds along one axis: TensorFlow's total for "same",
 * none for "valid" (see conv2d.c and maxpool2d.c). */
static int layer_pad_total(const struct layer *l, int in, int out)
{
    if ((l->cfg.kind != LAYER_CONV2D && l->cfg.kind != LAYER_MAXPOOL2D) ||
        l->cfg.padding != PADDING_SAME)
        return 0;
    int k, s;
    layer_window(l, &k, &s);
    int total = (out - 1) * s + k - in;
    return total > 0 ? total : 0;
}

/* Flop-equivalents of one sample through l, its output being oh×ow (the
 * channel counts are the layer's). */
static double layer_cost(const struct layer *l, int oh, int ow)
{
    const double pos = (double)oh * ow, cout = l->out.c;
    switch (l->cfg.kind) {
    case LAYER_CONV2D:
        return 2.0 * pos * cout * l->cfg.kernel * l->cfg.kernel * (l->in.c / l->cfg.groups) +
               ELEM_COST * pos * cout;
    case LAYER_DENSE:
        return 2.0 * (double)shape_size(l->in) * l->cfg.units + ELEM_COST * l->cfg.units;
    case LAYER_MAXPOOL2D:
        return pos * cout * l->cfg.pool * l->cfg.pool;
    default:
        return ELEM_COST * (double)shape_size(l->out);
    }
}

/* Geometry of the prefix [0, L) of m: window, stride, output, and costs. */
static void prefix_geom(const struct model *m, int L, struct lime_local_geom *g)
{
    memset(g, 0, sizeof *g);
    g->n_prefix = L;
    g->out = m->layers[L - 1].out;
    /* Backwards from one output position: r positions at a layer's output
     * need (r − 1)·s + k at its input, starting s times further. */
    int rh = 1, rw = 1, sh = 1, sw = 1;
    for (int i = L - 1; i >= 0; i--) {
        const struct layer *l = &m->layers[i];
        int k, s;
        layer_window(l, &k, &s);
        g->window_flops += layer_cost(l, rh, rw);
        g->prefix_flops += layer_cost(l, l->out.h, l->out.w);
        rh = (rh - 1) * s + k;
        rw = (rw - 1) * s + k;
        sh *= s;
        sw *= s;
    }
    g->rf_h = rh;
    g->rf_w = rw;
    g->stride_h = sh;
    g->stride_w = sw;
    for (int i = L; i < m->n_layers; i++)
        g->tail_flops += layer_cost(&m->layers[i], m->layers[i].out.h, m->layers[i].out.w);
}

/* Whether layer l, at index i, reads the layer before it alone (a chain). */
static int reads_previous(const struct layer *l, int i)
{
    return l->n_inputs == 1 && l->inputs[0] == i - 1;
}

/* The number of leading layers that may form a prefix, and why no more. */
static int local_layers(const struct model *m, char *why)
{
    int n = 0;
    const struct layer *last = &m->layers[m->n_layers - 1];
    if (last->out.h != 1 || last->out.w != 1) {
        /* the tables give the class scores as a vector */
        if (why)
            snprintf(why, STRATA_ERR_LEN, "the last layer ('%s') gives a %dx%d map", last->cfg.name,
                     last->out.h, last->out.w);
        return 0;
    }
    for (; n < m->n_layers; n++) {
        const struct layer *l = &m->layers[n];
        if (!reads_previous(l, n)) {
            if (why)
                snprintf(why, STRATA_ERR_LEN, "layer %d ('%s') does not read the layer before it",
                         n, l->cfg.name);
            break;
        }
        if (!kind_is_local(l->cfg.kind)) {
            if (why)
                snprintf(why, STRATA_ERR_LEN, "layer %d ('%s') mixes all positions", n,
                         l->cfg.name);
            break;
        }
        if (layer_pad_total(l, l->in.h, l->out.h) || layer_pad_total(l, l->in.w, l->out.w)) {
            if (why)
                snprintf(why, STRATA_ERR_LEN,
                         "layer %d ('%s') pads its input (\"same\"), so a window cropped "
                         "from the image would not see the padding",
                         n, l->cfg.name);
            break;
        }
    }
    /* A cut after L layers leaves the rest of the model reading layer L − 1
     * alone: no later layer may read one before it (a skip connection over
     * the cut), so L − 1 is at most the earliest layer read from beyond the
     * chain. */
    for (int j = n; j < m->n_layers; j++)
        for (int k = 0; k < m->layers[j].n_inputs; k++) {
            const int r = m->layers[j].inputs[k];
            if (r + 1 < n) {
                n = r + 1;
                if (why)
                    snprintf(why, STRATA_ERR_LEN,
                             "layer %d ('%s') reads %s, before the cut a window could take",
                             j, m->layers[j].cfg.name,
                             r < 0 ? "the image" : m->layers[r].cfg.name);
            }
        }
    return n;
}

int lime_local_analyse(const struct model *m, struct lime_local_geom *g, char *why)
{
    assert(m && g && m->n_layers >= 1);
    char reason[STRATA_ERR_LEN] = "";
    int n = local_layers(m, reason);
    if (n == 0) {
        memset(g, 0, sizeof *g);
        if (why)
            snprintf(why, STRATA_ERR_LEN, "no local leading layers: %s", reason);
        return 0;
    }
    prefix_geom(m, n, g);
    if (why)
        why[0] = '\0';
    return 1;
}

/* ---- cuts ------------------------------------------------------------------ */

/* Describes the cut after L layers: the prefix geometry, whether a dense
 * layer follows (past identities) and is folded, where the per-sample tail
 * starts, and the costs. */
static void cut_describe(const struct model *m, int L, int fold_dense, struct cut *c)
{
    memset(c, 0, sizeof *c);
    c->L = L;
    prefix_geom(m, L, &c->g);
    /* Flatten and inference-time dropout only copy: skipping them leaves the
     * next layer reading the same floats in the same order. */
    int t = L;
    while (t < m->n_layers && reads_previous(&m->layers[t], t) &&
           (m->layers[t].cfg.kind == LAYER_FLATTEN || m->layers[t].cfg.kind == LAYER_DROPOUT))
        t++;
    const int P = c->g.out.h * c->g.out.w, C = c->g.out.c;
    c->fold = fold_dense && t < m->n_layers && m->layers[t].cfg.kind == LAYER_DENSE &&
              reads_previous(&m->layers[t], t);
    /* The folded tail starts at the dense layer's output: no layer after it
     * may read what comes before it (a skip over the dense layer). */
    for (int j = t + 1; c->fold && j < m->n_layers; j++)
        for (int k = 0; k < m->layers[j].n_inputs; k++)
            if (m->layers[j].inputs[k] < t)
                c->fold = 0;
    c->dense = c->fold ? t : -1;
    c->tail_start = c->fold ? t + 1 : t;
    c->row = c->fold ? m->layers[t].cfg.units : C;
    c->row_cost = c->g.window_flops + ELEM_COST * (double)c->g.rf_h * c->g.rf_w * m->input.c +
                  (c->fold ? 2.0 * C * c->row : 0.0);
    /* A gathered row is a copy; a folded one an addition (vectorised). */
    c->sample_cost = c->fold ? (double)P * c->row + ELEM_COST * c->row
                             : ELEM_COST * (double)P * C;
    for (int i = c->tail_start; i < m->n_layers; i++)
        c->sample_cost += layer_cost(&m->layers[i], m->layers[i].out.h, m->layers[i].out.w);
}

/* Estimated cost of n samples by brute force: the whole model, plus
 * rendering and normalising each image (two passes over its floats). */
static double brute_cost(const struct model *m, int n)
{
    double per = 2.0 * ELEM_COST * (double)shape_size(m->input);
    for (int i = 0; i < m->n_layers; i++)
        per += layer_cost(&m->layers[i], m->layers[i].out.h, m->layers[i].out.w);
    return per * n;
}

/* ---- object ---------------------------------------------------------------- */

static void release_cut(struct lime_local *ll)
{
    graph_ws_free(&ll->win_ws);
    graph_ws_free(&ll->tail_ws);
    graph_deinit(&ll->win);
    graph_deinit(&ll->tail);
    tensor_free(ll->win_in);
    tensor_free(ll->tail_in);
    ll->win_in = ll->tail_in = NULL;
    ll->has_tail = 0;
    memset(&ll->cut, 0, sizeof ll->cut);
}

int lime_local_new(const struct model *m, int max_batch, const struct lime_local_opts *opts,
                   struct lime_local **out, char *err)
{
    assert(m && out && max_batch >= 1 && m->n_layers >= 1);
    *out = NULL;
    struct lime_local_opts o;
    if (opts)
        o = *opts;
    else
        lime_local_opts_default(&o);
    assert(o.max_bits >= 1 && o.max_bits <= LIME_LOCAL_BITS_CAP && o.min_speedup >= 0 &&
           o.prefix_layers >= 0);
    char why[STRATA_ERR_LEN];
    int n = local_layers(m, why);
    if (n == 0)
        return strata_fail(err, STRATA_E_UNSUPPORTED,
                           "fast LIME does not apply to model '%s': %s", m->id, why);
    struct lime_local *ll = calloc(1, sizeof *ll);
    if (!ll)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory for fast LIME");
    ll->m = m;
    ll->opts = o;
    ll->max_batch = max_batch;
    ll->n_local = n;
    if (m->graph && m->graph->own) {
        ll->mg = m->graph;
    } else {
        int rc = model_graph_of_layers(m, &ll->own_graph, err);
        if (rc) {
            free(ll);
            return rc;
        }
        ll->mg = ll->own_graph;
    }
    *out = ll;
    return STRATA_OK;
}

void lime_local_free(struct lime_local *ll)
{
    if (!ll)
        return;
    release_cut(ll);
    model_graph_free(ll->own_graph);
    free(ll);
}

void lime_local_last_stats(const struct lime_local *ll, struct lime_local_stats *st)
{
    assert(ll && st);
    *st = ll->stats;
}

/* Bytes of activations one run of ws computes (not the weights, not what is
 * known before the batch runs). */
static size_t run_bytes(const struct graph_ws *ws)
{
    size_t total = 0;
    for (int v = 0; v < ws->g->n_values; v++)
        if (ws->g->values[v].kind == VALUE_NODE && !ws->is_static[v])
            total += ws->cap[v];
    return total;
}

/* Builds the window part of the graph for c (the image to the prefix's
 * output, planned on windows) and the tail (the values after the prefix, or
 * after the folded dense layer, to the probabilities), with their
 * workspaces, kept while the next image takes the same cut. Both are views
 * of the model's graph: the same nodes and weights, run by the same
 * kernels, only at other shapes. */
static int build_cut(struct lime_local *ll, const struct cut *c, char *err)
{
    if (ll->cut.L == c->L && ll->cut.fold == c->fold)
        return STRATA_OK;
    release_cut(ll);
    const struct model *m = ll->m;
    const struct graph *g = &ll->mg->g;
    const int C = c->g.out.c;
    int rc = graph_view(&ll->win, g, g->inputs[0], ll->mg->shown[c->L - 1], err);
    struct tview shape = {.dtype = DTYPE_FLOAT, .ndim = 4,
                          .dims = {1, m->input.c, c->g.rf_h, c->g.rf_w}};
    if (rc == STRATA_OK) {
        /* one window first, to size the batches by what a window computes */
        rc = graph_ws_init(&ll->win_ws, &ll->win, &shape, 0, err);
        if (rc == STRATA_OK) {
            size_t per_window = run_bytes(&ll->win_ws) / sizeof(float) +
                                (size_t)c->g.rf_h * c->g.rf_w * m->input.c;
            size_t b = WINDOW_BATCH_FLOATS / (per_window ? per_window : 1);
            ll->win_batch = b < 1 ? 1 : b > WINDOW_BATCH_MAX ? WINDOW_BATCH_MAX : (int)b;
            graph_ws_free(&ll->win_ws);
            shape.dims[0] = ll->win_batch;
            rc = graph_ws_init(&ll->win_ws, &ll->win, &shape, 0, err);
        }
    }
    if (rc == STRATA_OK) {
        const struct tview *o = graph_value_view(&ll->win_ws, ll->win.outputs[0]);
        /* The prefix's geometry makes one window give one position. */
        assert(o->ndim == 4 && o->dims[1] == C && o->dims[2] == 1 && o->dims[3] == 1);
        (void)o;
        graph_ws_fuse(&ll->win_ws, NULL, 0);
        ll->win_in = tensor_alloc((size_t)ll->win_batch * m->input.c * c->g.rf_h * c->g.rf_w);
        if (!ll->win_in)
            rc = strata_fail(err, STRATA_E_NOMEM, "fast LIME: out of memory for %d windows",
                             ll->win_batch);
    }
    /* The tail: from the prefix's feature map (NCHW), or from the folded
     * dense layer's Gemm (N × units: its activation, if any, runs in the
     * tail), to the last layer's output, the probabilities. None when the
     * tables give those already. */
    int from = ll->mg->shown[c->fold ? c->dense : c->L - 1];
    const int to = ll->mg->shown[m->n_layers - 1];
    if (c->fold) {
        const struct node *act = &g->nodes[g->values[from].producer];
        if (strcmp(act->op_type, "Gemm") != 0)
            from = act->inputs[0];
        assert(graph_produced_by(g, from, "Gemm"));
    }
    if (rc == STRATA_OK && from != to) {
        ll->tail_rank4 = !c->fold;
        struct tview in = {.dtype = DTYPE_FLOAT, .ndim = 2, .dims = {ll->max_batch, c->row}};
        if (ll->tail_rank4)
            in = (struct tview){.dtype = DTYPE_FLOAT, .ndim = 4,
                                .dims = {ll->max_batch, C, c->g.out.h, c->g.out.w}};
        rc = graph_view(&ll->tail, g, from, to, err);
        if (rc == STRATA_OK)
            rc = graph_ws_init(&ll->tail_ws, &ll->tail, &in, 0, err);
        if (rc == STRATA_OK) {
            graph_ws_fuse(&ll->tail_ws, NULL, 0);
            ll->has_tail = 1;
            ll->tail_in = tensor_alloc((size_t)tview_count(&in));
            if (!ll->tail_in)
                rc = strata_fail(err, STRATA_E_NOMEM, "fast LIME: out of memory for %d samples",
                                 ll->max_batch);
        }
    }
    if (rc) {
        release_cut(ll);
        return rc;
    }
    ll->cut = *c;
    return STRATA_OK;
}

/* ---- planning -------------------------------------------------------------- */

/* The segments of every position's window for the prefix geometry g:
 * seg_off[p]..seg_off[p+1] index seg_list (both may be NULL to only count).
 * stamp[n_segments] is scratch. Stops early, returning PLAN_BITS when a
 * window meets more than max_bits segments or PLAN_BUDGET when the windows
 * exceed max_windows; else returns PLAN_OK with the window count, Σ_p j_p
 * and the largest j_p. */
enum { PLAN_OK, PLAN_BITS, PLAN_BUDGET };

static int plan_positions(const struct lime_local_geom *g, const struct lime_perturbation *pert,
                          int max_bits, double max_windows, int *stamp, int *seg_off,
                          int *seg_list, long *windows, long *bits, int *max_j)
{
    const int Ho = g->out.h, Wo = g->out.w;
    long total = 0;
    int jmax = 0;
    long listed = 0;
    for (int s = 0; s < pert->n_segments; s++)
        stamp[s] = -1;
    for (int oy = 0; oy < Ho; oy++) {
        for (int ox = 0; ox < Wo; ox++) {
            const int p = oy * Wo + ox, y0 = oy * g->stride_h, x0 = ox * g->stride_w;
            int j = 0;
            if (seg_off)
                seg_off[p] = (int)listed;
            for (int y = y0; y < y0 + g->rf_h; y++) {
                const int *row = pert->segments + (size_t)y * pert->w + x0;
                for (int x = 0; x < g->rf_w; x++) {
                    int s = row[x];
                    if (stamp[s] == p)
                        continue;
                    stamp[s] = p;
                    if (++j > max_bits)
                        return PLAN_BITS;
                    if (seg_list)
                        seg_list[listed + j - 1] = s;
                }
            }
            listed += j;
            total += 1L << j;
            jmax = j > jmax ? j : jmax;
            if ((double)total > max_windows)
                return PLAN_BUDGET;
        }
    }
    if (seg_off)
        seg_off[Ho * Wo] = (int)listed;
    *windows = total;
    *bits = listed;
    *max_j = jmax;
    return PLAN_OK;
}

/* The cheapest cut for this image within the options' caps, or 0 (with the
 * reason in why[160]). stamp is scratch of n_segments ints. */
static int choose_cut(const struct lime_local *ll, const struct lime_perturbation *pert, int n,
                      int *stamp, struct cut *best, long *best_windows, double *speedup,
                      char *why)
{
    const struct model *m = ll->m;
    const struct lime_local_opts *o = &ll->opts;
    const double brute = brute_cost(m, n);
    double best_cost = 0;
    int found = 0, over_bits = 0, over_budget = 0;
    int lo = 1, hi = ll->n_local;
    if (o->prefix_layers > 0)
        lo = hi = o->prefix_layers;
    if (hi > ll->n_local) {
        snprintf(why, 160, "the model has only %d local leading layers, %d were asked",
                 ll->n_local, o->prefix_layers);
        return 0;
    }
    for (int L = lo; L <= hi; L++) {
        struct cut c;
        cut_describe(m, L, o->fold_dense, &c);
        /* Windows this cut may afford: under the table cap, and cheap enough
         * to beat brute force by min_speedup and the best cut so far. */
        double budget = o->min_speedup > 0 ? brute / o->min_speedup : 1e300;
        if (found && best_cost < budget)
            budget = best_cost;
        double max_windows = (budget - c.sample_cost * n) / c.row_cost;
        double rows_cap = (double)o->max_table_bytes / ((double)c.row * sizeof(float));
        if (rows_cap < max_windows)
            max_windows = rows_cap;
        if (max_windows < 1) {
            over_budget = 1;
            continue;
        }
        long windows, bits;
        int j;
        int plan = plan_positions(&c.g, pert, o->max_bits, max_windows, stamp, NULL, NULL,
                                  &windows, &bits, &j);
        over_bits |= plan == PLAN_BITS;
        over_budget |= plan == PLAN_BUDGET;
        if (plan != PLAN_OK)
            continue;
        double cost = c.row_cost * (double)windows + c.sample_cost * n;
        if (!found || cost < best_cost) {
            *best = c;
            *best_windows = windows;
            best_cost = cost;
            found = 1;
        }
    }
    *speedup = found ? brute / best_cost : 0;
    if (!found)
        snprintf(why, 160, "%s%s%s",
                 over_budget ? "the tables would not be faster than brute force" : "",
                 over_budget && over_bits ? "; " : "",
                 over_bits ? "receptive fields meet too many segments" : "");
    return found;
}

/* ---- the mask classifier --------------------------------------------------- */

/* Which window pixels belong to which of p's segments: bit[i] is the index
 * in p's list segs[0..j) of the segment of window pixel i. */
static void window_bits(const struct lime_local_geom *g, const struct lime_perturbation *pert,
                        int p, const int *segs, int j, uint8_t *bit)
{
    const int y0 = (p / g->out.w) * g->stride_h, x0 = (p % g->out.w) * g->stride_w;
    for (int y = 0; y < g->rf_h; y++) {
        const int *row = pert->segments + (size_t)(y0 + y) * pert->w + x0;
        for (int x = 0; x < g->rf_w; x++) {
            int k = 0;
            while (k < j && segs[k] != row[x])
                k++;
            assert(k < j);
            bit[y * g->rf_w + x] = (uint8_t)k;
        }
    }
}

/* Everything one call allocates, freed together. */
struct call {
    int *stamp, *seg_off, *seg_list;
    size_t *tab_off;   /* [P + 1] first window of each position */
    /* Table rows belong to groups: with a folded dense layer, positions that
     * meet the same segments share their rows (the sum over positions is
     * taken per group in advance); otherwise each position is its own group. */
    int n_groups;
    int *grp_of;       /* [P] group of each position */
    int *grp_pos;      /* [n_groups] its first position (whose list it uses) */
    size_t *gtab_off;  /* [n_groups + 1] first table row of each group */
    float *photo, *hidden, *table;
    uint8_t *hidden_rgb, *bit;
};

static void call_free(struct call *k)
{
    free(k->stamp);
    free(k->seg_off);
    free(k->seg_list);
    free(k->tab_off);
    free(k->grp_of);
    free(k->grp_pos);
    free(k->gtab_off);
    free(k->photo);
    free(k->hidden);
    free(k->table);
    free(k->hidden_rgb);
    free(k->bit);
}

/* The segment lists of positions p and q compared as (length, list). */
static int cmp_segments(const struct call *k, int p, int q)
{
    const int jp = k->seg_off[p + 1] - k->seg_off[p], jq = k->seg_off[q + 1] - k->seg_off[q];
    if (jp != jq)
        return jp < jq ? -1 : 1;
    const int *lp = k->seg_list + k->seg_off[p], *lq = k->seg_list + k->seg_off[q];
    for (int i = 0; i < jp; i++)
        if (lp[i] != lq[i])
            return lp[i] < lq[i] ? -1 : 1;
    return 0;
}

/* qsort_r order of positions: by segment list, then by position — a total
 * order, so the groups and their first positions are the same every run. */
static int cmp_positions(const void *a, const void *b, void *arg)
{
    const int p = *(const int *)a, q = *(const int *)b;
    int c = cmp_segments(arg, p, q);
    return c ? c : (p > q) - (p < q);
}

/* Sorts each position's segments (so that equal sets are equal lists and
 * bit b means the same segment for every position of a group) and forms the
 * groups: equal lists when merge, else one per position. Returns 0 or
 * STRATA_E_NOMEM. */
static int make_groups(struct call *k, int P, int merge, char *err)
{
    for (int p = 0; p < P; p++) {
        int *l = k->seg_list + k->seg_off[p];
        const int j = k->seg_off[p + 1] - k->seg_off[p];
        for (int i = 1; i < j; i++) {
            int v = l[i], b = i - 1;
            for (; b >= 0 && l[b] > v; b--)
                l[b + 1] = l[b];
            l[b + 1] = v;
        }
    }
    int *order = malloc((size_t)P * sizeof(int));
    k->grp_of = malloc((size_t)P * sizeof(int));
    k->grp_pos = malloc((size_t)P * sizeof(int));
    k->gtab_off = malloc(((size_t)P + 1) * sizeof(size_t));
    if (!order || !k->grp_of || !k->grp_pos || !k->gtab_off) {
        free(order);
        return strata_fail(err, STRATA_E_NOMEM, "fast LIME: out of memory for %d positions", P);
    }
    int G = 0;
    if (merge) {
        for (int p = 0; p < P; p++)
            order[p] = p;
        qsort_r(order, (size_t)P, sizeof(int), cmp_positions, k);
        for (int i = 0; i < P; i++) {
            const int p = order[i];
            if (i == 0 || cmp_segments(k, order[i - 1], p) != 0)
                k->grp_pos[G++] = p;
            k->grp_of[p] = G - 1;
        }
    } else {
        for (int p = 0; p < P; p++)
            k->grp_of[p] = k->grp_pos[G++] = p;
    }
    free(order);
    k->n_groups = G;
    k->gtab_off[0] = 0;
    for (int g = 0; g < G; g++) {
        const int p = k->grp_pos[g];
        k->gtab_off[g + 1] = k->gtab_off[g] + ((size_t)1 << (k->seg_off[p + 1] - k->seg_off[p]));
    }
    return STRATA_OK;
}

/* Adds the window outputs out[nb × C] of windows [w0, w0 + nb) into the
 * table: a copy into their position's rows, or with a folded dense layer,
 * per position p, rows · W_p added to their group's rows, W_p being the
 * C×units block of the dense kernel that reads p (rows p·C .. p·C + C − 1 of
 * the [P·C][units] kernel, flatten keeping NHWC order). */
static void store_rows(const struct lime_local *ll, const struct call *k, const float *out,
                       long w0, int nb)
{
    const struct cut *c = &ll->cut;
    const int C = c->g.out.c, U = c->row;
    if (!c->fold) {
        memcpy(k->table + (size_t)w0 * C, out, (size_t)nb * C * sizeof(float));
        return;
    }
    const float *W = ll->m->layers[c->dense].w.kernel;
    /* The first position with a row in the batch, by binary search. */
    int lo = 0, hi = c->g.out.h * c->g.out.w - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (k->tab_off[mid] <= (size_t)w0)
            lo = mid;
        else
            hi = mid - 1;
    }
    const size_t end = (size_t)w0 + nb;
    for (int p = lo; k->tab_off[p] < end; p++) {
        size_t r0 = k->tab_off[p] > (size_t)w0 ? k->tab_off[p] : (size_t)w0;
        size_t r1 = k->tab_off[p + 1] < end ? k->tab_off[p + 1] : end;
        /* Pattern t of p is row t of its group: same sorted list. */
        const size_t g0 = k->gtab_off[k->grp_of[p]] + (r0 - k->tab_off[p]);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(r1 - r0), U, C, 1.0f,
                    out + (r0 - w0) * C, C, W + (size_t)p * C * U, U, 1.0f,
                    k->table + g0 * U, U);
    }
}

int lime_local_classify_masks(void *user, const struct lime_perturbation *pert,
                              const uint8_t *masks, int n, float *probs, char *err)
{
    struct lime_local *ll = user;
    assert(ll && pert && masks && probs && n >= 1);
    const struct model *m = ll->m;
    const double t0 = now_ms();
    struct lime_local_stats *st = &ll->stats;
    memset(st, 0, sizeof *st);
    if (pert->w != m->input.w || pert->h != m->input.h || m->input.c != 3)
        return strata_fail(err, STRATA_E_ARG,
                           "fast LIME: the image is %dx%d RGB but model '%s' takes %dx%dx%d; "
                           "resize it first",
                           pert->w, pert->h, m->id, m->input.w, m->input.h, m->input.c);

    /* 1. The cut, the positions' segments, the normalised images. */
    const int nseg = pert->n_segments;
    struct call k = {0};
    k.stamp = malloc((size_t)nseg * sizeof(int));
    if (!k.stamp)
        return strata_fail(err, STRATA_E_NOMEM, "fast LIME: out of memory");
    struct cut cut;
    long windows = 0;
    if (!choose_cut(ll, pert, n, k.stamp, &cut, &windows, &st->est_speedup, st->reason)) {
        call_free(&k);
        st->ms_plan = now_ms() - t0;
        strata_fail(err, STRATA_E_UNSUPPORTED, "fast LIME declined: %s", st->reason);
        return LIME_DECLINED;
    }
    int rc = build_cut(ll, &cut, err);
    if (rc == STRATA_E_ARG) {
        /* a part of the graph that does not stand alone (graph_view says
         * why): brute force will do */
        call_free(&k);
        snprintf(st->reason, sizeof st->reason, "%s", err);
        return LIME_DECLINED;
    }
    if (rc) {
        call_free(&k);
        return rc;
    }
    const struct lime_local_geom *g = &ll->cut.g;
    const int P = g->out.h * g->out.w, C = g->out.c, row = ll->cut.row;
    const size_t npix = (size_t)pert->w * pert->h;
    k.seg_off = malloc((size_t)(P + 1) * sizeof(int));
    /* Σ_p j_p < Σ_p 2^j_p = windows, which the table cap bounds. */
    k.seg_list = malloc(((size_t)windows + 1) * sizeof(int));
    k.tab_off = malloc((size_t)(P + 1) * sizeof(size_t));
    k.photo = malloc(npix * 3 * sizeof(float));
    k.hidden = malloc(npix * 3 * sizeof(float));
    k.hidden_rgb = malloc(npix * 3);
    k.bit = malloc((size_t)g->rf_h * g->rf_w);
    if (!k.seg_off || !k.seg_list || !k.tab_off || !k.photo || !k.hidden || !k.hidden_rgb ||
        !k.bit) {
        call_free(&k);
        return strata_fail(err, STRATA_E_NOMEM, "fast LIME: out of memory for %d positions",
                           P);
    }
    long counted, bits;
    int max_j;
    int ok = plan_positions(g, pert, ll->opts.max_bits, 1e300, k.stamp, k.seg_off, k.seg_list,
                            &counted, &bits, &max_j);
    assert(ok == PLAN_OK && counted == windows);
    (void)ok;
    k.tab_off[0] = 0;
    for (int p = 0; p < P; p++)
        k.tab_off[p + 1] = k.tab_off[p] + ((size_t)1 << (k.seg_off[p + 1] - k.seg_off[p]));
    rc = make_groups(&k, P, ll->cut.fold, err);
    if (rc == STRATA_OK) {
        /* Zeroed: folded rows are accumulated into. */
        k.table = calloc(k.gtab_off[k.n_groups] * row, sizeof(float));
        if (!k.table)
            rc = strata_fail(err, STRATA_E_NOMEM,
                             "fast LIME: out of memory for %zu table rows of %d floats",
                             k.gtab_off[k.n_groups], row);
    }
    if (rc) {
        call_free(&k);
        return rc;
    }
    /* The photo and the fully hidden image, normalised as the model does it:
     * a window takes each pixel's floats from one or the other, so it holds
     * exactly what the whole-image forward of that sample would read. */
    model_normalise(m, pert->rgb, k.photo);
    for (size_t q = 0; q < npix; q++)
        memcpy(k.hidden_rgb + 3 * q, pert->hide_rgb + 3 * (size_t)pert->segments[q], 3);
    model_normalise(m, k.hidden_rgb, k.hidden);
    const double t_plan = now_ms();
    st->ms_plan = t_plan - t0;

    /* 2. Tables: window rows in p-major order, a batch at a time. */
    {
        const int rh = g->rf_h, rw = g->rf_w;
        const size_t win_floats = (size_t)rh * rw * 3;
        int p = 0, bit_p = -1;
        for (long w0 = 0; w0 < windows; w0 += ll->win_batch) {
            int nb = windows - w0 < ll->win_batch ? (int)(windows - w0) : ll->win_batch;
            for (int b = 0; b < nb; b++) {
                while ((size_t)(w0 + b) >= k.tab_off[p + 1])
                    p++;
                const size_t t = (size_t)(w0 + b) - k.tab_off[p];
                if (bit_p != p) {
                    window_bits(g, pert, p, k.seg_list + k.seg_off[p],
                                k.seg_off[p + 1] - k.seg_off[p], k.bit);
                    bit_p = p;
                }
                const int y0 = (p / g->out.w) * g->stride_h, x0 = (p % g->out.w) * g->stride_w;
                /* channels first, as the graph takes images */
                float *dst = ll->win_in + (size_t)b * win_floats;
                const size_t plane = (size_t)rh * rw;
                for (int y = 0; y < rh; y++) {
                    const size_t q0 = ((size_t)(y0 + y) * pert->w + x0) * 3;
                    const uint8_t *brow = k.bit + (size_t)y * rw;
                    float *d = dst + (size_t)y * rw;
                    for (int x = 0; x < rw; x++) {
                        const float *src = ((t >> brow[x]) & 1 ? k.photo : k.hidden) + q0 + 3 * x;
                        d[x] = src[0];
                        d[plane + x] = src[1];
                        d[2 * plane + x] = src[2];
                    }
                }
            }
            const struct tview in = {.dtype = DTYPE_FLOAT, .ndim = 4,
                                     .dims = {nb, 3, rh, rw}, .data = ll->win_in};
            if ((rc = graph_run(&ll->win_ws, &in, err)) < 0) {
                call_free(&k);
                return rc;
            }
            /* nb × C × 1 × 1: each window's C floats in a row */
            store_rows(ll, &k, graph_value_view(&ll->win_ws, ll->win.outputs[0])->data, w0, nb);
        }
    }
    const double t_tables = now_ms();
    st->ms_tables = t_tables - t_plan;

    /* 3. Samples: one table row per position into the tail's input (or, with
     * no tail, into probs), then the tail. */
    {
        const struct cut *c = &ll->cut;
        const size_t per = (size_t)(c->fold ? row : P * C);
        const struct layer *dense = c->fold ? &m->layers[c->dense] : NULL;
        const float *bias = dense && dense->cfg.use_bias ? dense->w.bias : NULL;
        for (int i0 = 0; i0 < n; i0 += ll->max_batch) {
            int nb = n - i0 < ll->max_batch ? n - i0 : ll->max_batch;
            float *dst0 = ll->has_tail ? ll->tail_in : probs + (size_t)i0 * per;
            for (int i = 0; i < nb; i++) {
                const uint8_t *mk = masks + (size_t)(i0 + i) * nseg;
                float *restrict dst = dst0 + (size_t)i * per;
                if (c->fold) {
                    if (bias)
                        memcpy(dst, bias, (size_t)row * sizeof(float));
                    else
                        memset(dst, 0, (size_t)row * sizeof(float));
                }
                for (int gi = 0; gi < k.n_groups; gi++) {
                    const int p = k.grp_pos[gi];
                    const int *sl = k.seg_list + k.seg_off[p];
                    const int jp = k.seg_off[p + 1] - k.seg_off[p];
                    size_t t = 0;
                    for (int b = 0; b < jp; b++)
                        t |= (size_t)(mk[sl[b]] != 0) << b;
                    const float *restrict src = k.table + (k.gtab_off[gi] + t) * row;
                    if (c->fold) {
                        for (int u = 0; u < row; u++)
                            dst[u] += src[u];
                    } else {
                        /* the feature map channels first: channel c of
                         * position p at c·P + p */
                        for (int ch = 0; ch < C; ch++)
                            dst[(size_t)ch * P + p] = src[ch];
                    }
                }
            }
            if (ll->has_tail) {
                struct tview in = {.dtype = DTYPE_FLOAT, .ndim = 2, .dims = {nb, row},
                                   .data = ll->tail_in};
                if (ll->tail_rank4)
                    in = (struct tview){.dtype = DTYPE_FLOAT, .ndim = 4,
                                        .dims = {nb, C, g->out.h, g->out.w},
                                        .data = ll->tail_in};
                if ((rc = graph_run(&ll->tail_ws, &in, err)) < 0) {
                    call_free(&k);
                    return rc;
                }
                memcpy(probs + (size_t)i0 * m->n_classes,
                       graph_value_view(&ll->tail_ws, ll->tail.outputs[0])->data,
                       (size_t)nb * m->n_classes * sizeof(float));
            }
        }
    }
    st->ms_samples = now_ms() - t_tables;
    st->used = 1;
    st->prefix_layers = ll->cut.L;
    st->folded = ll->cut.fold;
    st->positions = P;
    st->groups = k.n_groups;
    st->max_bits = max_j;
    st->windows = windows;
    call_free(&k);
    return STRATA_OK;
}
