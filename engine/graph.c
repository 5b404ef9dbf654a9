/*
 * graph.c — the graph executor: building and checking a graph, planning a
 * workspace for given input shapes (shape inference and evaluation of the
 * static nodes), forward and backward (see graph.h).
 *
 * Plan, once per set of input shapes: every node's infer runs in topological
 * order. A node whose inputs are all known before the batch runs (or whose op
 * reads only shapes, like Shape) is static: it runs right there, in the plan,
 * into buffers the plan owns. The shape subgraphs exporters write for a
 * dynamic batch axis thus cost nothing per image. Every other value gets one
 * buffer, sized when the workspace is initialised for the largest inputs it
 * will see; a later plan for other shapes must fit in them (a smaller batch
 * always does).
 */
#include "graph.h"
#include "ops/ops.h"
#include "parallel.h"

#include <assert.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A value larger than this many elements is refused: no CNN activation comes
 * near it, and it stops a hostile shape from asking for terabytes. */
#define GRAPH_MAX_ELEMENTS ((int64_t)1 << 34)

/* ---- building ------------------------------------------------------------ */

struct value_index {
    int cap;      /* power of two */
    int *slots;   /* value index + 1, 0 = empty */
};

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void index_insert(struct value_index *ix, const struct graph_value *values, int v)
{
    uint64_t mask = (uint64_t)ix->cap - 1;
    for (uint64_t h = name_hash(values[v].name) & mask;; h = (h + 1) & mask) {
        if (!ix->slots[h]) {
            ix->slots[h] = v + 1;
            return;
        }
    }
}

/* Keeps the load factor at most 1/2. Returns 0 or STRATA_E_NOMEM. */
static int index_grow(struct graph *g, char *err)
{
    struct value_index *ix = g->index;
    if (!ix) {
        if (!(ix = calloc(1, sizeof *ix)))
            return strata_fail(err, STRATA_E_NOMEM, "out of memory indexing the graph");
        g->index = ix;
    }
    if ((int64_t)(g->n_values + 1) * 2 <= ix->cap)
        return 0;
    int cap = ix->cap ? ix->cap * 2 : 256;
    int *slots = calloc((size_t)cap, sizeof *slots);
    if (!slots)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory indexing the graph");
    free(ix->slots);
    ix->slots = slots;
    ix->cap = cap;
    for (int v = 0; v < g->n_values; v++)
        index_insert(ix, g->values, v);
    return 0;
}

/* Grows *arr (of n elements of size sz) so that index n is valid, doubling. */
static int grow_array(void **arr, int n, size_t sz)
{
    if (n & (n - 1) && n >= 16)
        return 0; /* capacity is the next power of two >= 16, still room */
    size_t cap = n < 16 ? 16 : (size_t)n * 2;
    if (n < 16 && *arr)
        return 0;
    void *p = realloc(*arr, cap * sz);
    if (!p)
        return -1;
    *arr = p;
    return 0;
}

int graph_add_value(struct graph *g, const char *name, enum value_kind kind, char *err)
{
    if (g->n_values >= GRAPH_MAX_ENTRIES)
        return strata_fail(err, STRATA_E_LIMIT, "the graph has more than %d values",
                           GRAPH_MAX_ENTRIES);
    int rc = index_grow(g, err);
    if (rc < 0)
        return rc;
    if (grow_array((void **)&g->values, g->n_values, sizeof *g->values) < 0)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory building the graph");
    struct graph_value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    if (!(v->name = strdup(name ? name : "")))
        return strata_fail(err, STRATA_E_NOMEM, "out of memory building the graph");
    v->kind = kind;
    v->producer = -1;
    index_insert(g->index, g->values, g->n_values);
    return g->n_values++;
}

int graph_add_node(struct graph *g, char *err)
{
    if (g->n_nodes >= GRAPH_MAX_ENTRIES)
        return strata_fail(err, STRATA_E_LIMIT, "the graph has more than %d nodes",
                           GRAPH_MAX_ENTRIES);
    if (grow_array((void **)&g->nodes, g->n_nodes, sizeof *g->nodes) < 0)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory building the graph");
    memset(&g->nodes[g->n_nodes], 0, sizeof g->nodes[0]);
    return g->n_nodes++;
}

int graph_find_value(const struct graph *g, const char *name)
{
    const struct value_index *ix = g->index;
    if (!ix || !ix->cap)
        return -1;
    uint64_t mask = (uint64_t)ix->cap - 1;
    for (uint64_t h = name_hash(name) & mask; ix->slots[h]; h = (h + 1) & mask) {
        int v = ix->slots[h] - 1;
        if (strcmp(g->values[v].name, name) == 0)
            return v;
    }
    return -1;
}

int graph_produced_by(const struct graph *g, int v, const char *op_type)
{
    int p = g->values[v].producer;
    return p >= 0 && strcmp(g->nodes[p].op_type, op_type) == 0;
}

static void node_deinit(struct node *n)
{
    free(n->name);
    free(n->op_type);
    free(n->inputs);
    free(n->outputs);
    for (int a = 0; a < n->n_attrs; a++) {
        free(n->attrs[a].name);
        free(n->attrs[a].s);
        free(n->attrs[a].floats);
        free(n->attrs[a].ints);
        free(n->attrs[a].t.data);
    }
    free(n->attrs);
    free(n->params);
}

void graph_deinit(struct graph *g)
{
    if (g->is_view) {
        free(g->nodes);
        free(g->inputs);
        free(g->outputs);
        memset(g, 0, sizeof *g);
        return;
    }
    for (int v = 0; v < g->n_values; v++) {
        free(g->values[v].name);
        free(g->values[v].init.data);
    }
    for (int i = 0; i < g->n_nodes; i++)
        node_deinit(&g->nodes[i]);
    free(g->values);
    free(g->nodes);
    free(g->inputs);
    free(g->outputs);
    if (g->index) {
        free(((struct value_index *)g->index)->slots);
        free(g->index);
    }
    memset(g, 0, sizeof *g);
}

/* See graph.h. Nodes are in topological order, so one pass from the last
 * node back marks every value `to` needs; `from` stops the walk. */
int graph_view(struct graph *view, const struct graph *g, int from, int to, char *err)
{
    assert(g->index && from >= 0 && from < g->n_values && to >= 0 && to < g->n_values);
    memset(view, 0, sizeof *view);
    uint8_t *need = calloc((size_t)g->n_values + 1, 1);
    uint8_t *take = calloc((size_t)g->n_nodes + 1, 1);
    int rc = 0, count = 0, reads_from = 0;
    if (!need || !take) {
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory for a part of the graph");
        goto done;
    }
    need[to] = 1;
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        const struct node *n = &g->nodes[i];
        int wanted = 0, makes_from = 0;
        for (int k = 0; k < n->n_outputs; k++) {
            wanted |= need[n->outputs[k]];
            makes_from |= n->outputs[k] == from;
        }
        if (!wanted || makes_from)
            continue;
        take[i] = 1;
        count++;
        for (int k = 0; k < n->n_inputs; k++) {
            int v = n->inputs[k];
            if (v == from)
                reads_from = 1;
            else if (v >= 0)
                need[v] = 1;
        }
    }
    if (!reads_from || to == from) {
        rc = strata_fail(err, STRATA_E_ARG, "'%s' is not computed from '%s'", g->values[to].name,
                         g->values[from].name);
        goto done;
    }
    for (int v = 0; v < g->n_values; v++) {
        const struct graph_value *val = &g->values[v];
        if (!need[v] || v == from || val->kind == VALUE_INITIALIZER ||
            (val->kind == VALUE_NODE && take[val->producer]))
            continue;
        rc = strata_fail(err, STRATA_E_ARG, "'%s' needs '%s' besides '%s'", g->values[to].name,
                         val->name, g->values[from].name);
        goto done;
    }
    view->nodes = malloc((size_t)count * sizeof *view->nodes);
    view->inputs = malloc(sizeof *view->inputs);
    view->outputs = malloc(sizeof *view->outputs);
    if (!view->nodes || !view->inputs || !view->outputs) {
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory for a part of the graph");
        goto done;
    }
    for (int i = 0, j = 0; i < g->n_nodes; i++)
        if (take[i])
            view->nodes[j++] = g->nodes[i]; /* shallow: the contents stay g's */
    view->n_nodes = count;
    view->values = g->values;
    view->n_values = g->n_values;
    view->inputs[0] = from;
    view->outputs[0] = to;
    view->n_inputs = view->n_outputs = 1;
    view->opset = g->opset;
    view->is_view = 1;
done:
    free(need);
    free(take);
    if (rc) {
        view->is_view = 1;
        graph_deinit(view);
    }
    return rc;
}

size_t graph_param_count(const struct graph *g)
{
    size_t n = 0;
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].kind == VALUE_INITIALIZER && g->values[v].init.dtype == DTYPE_FLOAT)
            n += (size_t)tview_count(&g->values[v].init);
    return n;
}

/* ---- finishing: order, ops, setup ---------------------------------------- */

/* Kahn's algorithm over value producers. On success g->nodes is permuted
 * into an order where every node follows the producers of its inputs. */
static int sort_nodes(struct graph *g, char *err)
{
    int N = g->n_nodes, rc = 0;
    int *pending = calloc((size_t)N + 1, sizeof *pending); /* unproduced inputs per node */
    int *order = malloc(((size_t)N + 1) * sizeof *order);
    int *first_use = malloc(((size_t)g->n_values + 1) * sizeof *first_use); /* consumer lists */
    int *next_use = NULL, *use_node = NULL;
    size_t n_uses = 0;
    for (int i = 0; i < N; i++)
        n_uses += (size_t)g->nodes[i].n_inputs;
    next_use = malloc((n_uses + 1) * sizeof *next_use);
    use_node = malloc((n_uses + 1) * sizeof *use_node);
    struct node *sorted = malloc(((size_t)N + 1) * sizeof *sorted);
    if (!pending || !order || !first_use || !next_use || !use_node || !sorted) {
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory sorting the graph");
        goto out;
    }
    for (int v = 0; v < g->n_values; v++)
        first_use[v] = -1;
    size_t u = 0;
    for (int i = 0; i < N; i++) {
        const struct node *n = &g->nodes[i];
        for (int k = 0; k < n->n_inputs; k++) {
            int v = n->inputs[k];
            if (v < 0 || g->values[v].kind != VALUE_NODE)
                continue;
            pending[i]++;
            use_node[u] = i;
            next_use[u] = first_use[v];
            first_use[v] = (int)u++;
        }
    }
    int head = 0, tail = 0;
    for (int i = 0; i < N; i++)
        if (!pending[i])
            order[tail++] = i;
    while (head < tail) {
        const struct node *n = &g->nodes[order[head++]];
        for (int k = 0; k < n->n_outputs; k++)
            for (int e = first_use[n->outputs[k]]; e >= 0; e = next_use[e])
                if (--pending[use_node[e]] == 0)
                    order[tail++] = use_node[e];
    }
    if (tail < N) {
        for (int i = 0; i < N; i++)
            if (pending[i]) {
                rc = node_fail(&g->nodes[i], err, STRATA_E_FORMAT,
                               "the graph has a cycle through this node");
                goto out;
            }
    }
    for (int i = 0; i < N; i++)
        sorted[i] = g->nodes[order[i]];
    if (N)
        memcpy(g->nodes, sorted, (size_t)N * sizeof *sorted);
    for (int i = 0; i < N; i++)
        for (int k = 0; k < g->nodes[i].n_outputs; k++)
            g->values[g->nodes[i].outputs[k]].producer = i;
out:
    free(pending);
    free(order);
    free(first_use);
    free(next_use);
    free(use_node);
    free(sorted);
    return rc;
}

/* Producers and consumers: each node output is a fresh VALUE_NODE produced
 * once; each input exists and is fed by the caller, the file or a node. */
static int check_wiring(struct graph *g, char *err)
{
    for (int v = 0; v < g->n_values; v++) {
        g->values[v].producer = -1;
        g->values[v].n_consumers = 0;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        struct node *n = &g->nodes[i];
        if (!n->name || !n->op_type)
            return strata_fail(err, STRATA_E_FORMAT, "node %d has no name or op type", i);
        for (int k = 0; k < n->n_outputs; k++) {
            int v = n->outputs[k];
            if (v < 0 || v >= g->n_values)
                return node_fail(n, err, STRATA_E_FORMAT, "output %d is missing", k);
            struct graph_value *val = &g->values[v];
            if (val->kind != VALUE_NODE)
                return node_fail(n, err, STRATA_E_FORMAT,
                                 "output '%s' is also a graph input or an initializer", val->name);
            if (val->producer >= 0)
                return node_fail(n, err, STRATA_E_FORMAT,
                                 "output '%s' is already produced by node '%s'", val->name,
                                 g->nodes[val->producer].name);
            val->producer = i;
        }
    }
    for (int i = 0; i < g->n_nodes; i++) {
        struct node *n = &g->nodes[i];
        for (int k = 0; k < n->n_inputs; k++) {
            int v = n->inputs[k];
            if (v < -1 || v >= g->n_values)
                return node_fail(n, err, STRATA_E_FORMAT, "input %d is out of range", k);
            if (v < 0)
                continue;
            if (g->values[v].kind == VALUE_NODE && g->values[v].producer < 0)
                return node_fail(n, err, STRATA_E_FORMAT,
                                 "input '%s' is produced by no node, and is neither a graph "
                                 "input nor an initializer",
                                 g->values[v].name);
            g->values[v].n_consumers++;
        }
    }
    for (int o = 0; o < g->n_outputs; o++) {
        int v = g->outputs[o];
        if (v < 0 || v >= g->n_values)
            return strata_fail(err, STRATA_E_FORMAT, "graph output %d is missing", o);
        if (g->values[v].kind == VALUE_NODE && g->values[v].producer < 0)
            return strata_fail(err, STRATA_E_FORMAT, "graph output '%s' is produced by no node",
                               g->values[v].name);
        g->values[v].n_consumers++;
    }
    return 0;
}

/* Binds ops by op_type; lists every unsupported op type at once with up to
 * three of its nodes, so that a user sees the whole gap in one message. */
static int bind_ops(struct graph *g, char *err)
{
    char msg[STRATA_ERR_LEN] = "";
    size_t used = 0;
    int missing = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        struct node *n = &g->nodes[i];
        n->op = op_find(n->op_type);
        if (n->op)
            continue;
        int seen = 0;
        for (int j = 0; j < i && !seen; j++)
            seen = !g->nodes[j].op && strcmp(g->nodes[j].op_type, n->op_type) == 0;
        if (seen)
            continue;
        int count = 0;
        char names[160] = "";
        size_t nu = 0;
        for (int j = i; j < g->n_nodes; j++) {
            if (strcmp(g->nodes[j].op_type, n->op_type) != 0)
                continue;
            if (count < 3 && nu < sizeof names)
                nu += (size_t)snprintf(names + nu, sizeof names - nu, "%s'%s'", count ? ", " : "",
                                       g->nodes[j].name);
            count++;
        }
        if (used < sizeof msg)
            used += (size_t)snprintf(msg + used, sizeof msg - used, "%s%s (%d node%s: %s%s)",
                                     missing ? "; " : "", n->op_type, count, count == 1 ? "" : "s",
                                     names, count > 3 ? ", ..." : "");
        missing++;
    }
    if (missing)
        return strata_fail(err, STRATA_E_UNSUPPORTED,
                           "the model uses %d op type%s strata does not support: %s", missing,
                           missing == 1 ? "" : "s", msg);
    return 0;
}

static int check_arity(const struct node *n, char *err)
{
    const struct op *op = n->op;
    int present = n->n_inputs;
    while (present > 0 && n->inputs[present - 1] < 0)
        present--;
    if (present < op->min_inputs || (op->max_inputs >= 0 && n->n_inputs > op->max_inputs))
        return node_fail(n, err, STRATA_E_FORMAT, "has %d inputs; %s takes %d to %d", present,
                         op->name, op->min_inputs, op->max_inputs);
    if (n->n_outputs < op->min_outputs || n->n_outputs > op->max_outputs)
        return node_fail(n, err, STRATA_E_UNSUPPORTED, "has %d outputs; strata's %s gives %d to %d",
                         n->n_outputs, op->name, op->min_outputs, op->max_outputs);
    for (int k = 0; k < op->min_inputs && k < n->n_inputs; k++)
        if (n->inputs[k] < 0)
            return node_fail(n, err, STRATA_E_FORMAT, "required input %d is empty", k);
    return 0;
}

/* Each Identity of an initializer becomes an initializer of its own: its
 * output, a copy of the tensor, and the node goes. PyTorch writes a kept
 * BatchNorm's running statistics that way, and shares one initializer
 * between every BatchNorm whose statistics start equal (zeros, ones):
 * folded when the graph is planned, a training step would update a copy
 * that the next plan throws away, or one tensor for several layers. An
 * Identity that gives a graph output stays. Returns 0 or STRATA_E_NOMEM. */
static int fold_identity_initializers(struct graph *g, char *err)
{
    int kept = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        struct node *n = &g->nodes[i];
        int fold = n->op_type && strcmp(n->op_type, "Identity") == 0 && n->n_inputs == 1 &&
                   n->n_outputs == 1 && n->inputs[0] >= 0 && n->inputs[0] < g->n_values &&
                   n->outputs[0] >= 0 && n->outputs[0] < g->n_values &&
                   g->values[n->inputs[0]].kind == VALUE_INITIALIZER &&
                   g->values[n->outputs[0]].kind == VALUE_NODE;
        for (int o = 0; fold && o < g->n_outputs; o++)
            fold = g->outputs[o] != n->outputs[0];
        if (fold) {
            const struct tview *src = &g->values[n->inputs[0]].init;
            const size_t bytes = (size_t)tview_count(src) * (src->dtype == DTYPE_INT64 ? 8 : 4);
            struct graph_value *out = &g->values[n->outputs[0]];
            void *copy = malloc(bytes ? bytes : 1);
            if (!copy)
                return strata_fail(err, STRATA_E_NOMEM, "out of memory reading the graph");
            memcpy(copy, src->data, bytes);
            out->init = *src;
            out->init.data = copy;
            out->kind = VALUE_INITIALIZER;
            node_deinit(n);
            continue;
        }
        g->nodes[kept++] = *n;
    }
    g->n_nodes = kept;
    return 0;
}

int graph_finish(struct graph *g, char *err)
{
    int rc;
    if (g->n_outputs < 1)
        return strata_fail(err, STRATA_E_FORMAT, "the graph has no output");
    if ((rc = fold_identity_initializers(g, err)) < 0 || (rc = check_wiring(g, err)) < 0 ||
        (rc = sort_nodes(g, err)) < 0 ||
        (rc = bind_ops(g, err)) < 0)
        return rc;
    for (int i = 0; i < g->n_nodes; i++) {
        struct node *n = &g->nodes[i];
        if ((rc = check_arity(n, err)) < 0)
            return rc;
        if (n->op->setup && (rc = n->op->setup(n, err)) < 0)
            return rc;
    }
    return 0;
}

/* ---- planning ------------------------------------------------------------- */

static size_t dtype_size(enum dtype t)
{
    return t == DTYPE_INT64 ? sizeof(int64_t) : sizeof(float);
}

static size_t view_bytes(const struct tview *t)
{
    int64_t c = tview_count(t);
    return (size_t)(c > 0 ? c : 0) * dtype_size(t->dtype);
}

static int shapes_equal(const struct tview *a, const struct tview *b)
{
    if (a->dtype != b->dtype || a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->dims[i] != b->dims[i])
            return 0;
    return 1;
}

/* The arguments of node i, as views of the planned values. */
static void gather_args(struct graph_ws *ws, const struct node *n)
{
    for (int k = 0; k < n->n_inputs; k++) {
        int v = n->inputs[k];
        ws->in_ptrs[k] = v < 0 ? NULL : &ws->vals[v];
    }
    for (int k = 0; k < n->n_outputs; k++)
        ws->out_ptrs[k] = &ws->vals[n->outputs[k]];
}

static int check_input(const struct graph *g, int i, const struct tview *t, char *err)
{
    const struct graph_value *val = &g->values[g->inputs[i]];
    /* a view's input takes any shape: only its consumers' infer constrain it */
    static const struct tview undeclared = {.dtype = DTYPE_FLOAT};
    const struct tview *decl = g->is_view ? &undeclared : &val->init;
    char a[96], b[96];
    if (t->dtype != decl->dtype || (decl->ndim && t->ndim != decl->ndim))
        return strata_fail(err, STRATA_E_ARG, "input '%s' is declared %s %s; it was given %s %s",
                           val->name, decl->dtype == DTYPE_INT64 ? "int64" : "float",
                           dims_format(decl, a, sizeof a), t->dtype == DTYPE_INT64 ? "int64" : "float",
                           dims_format(t, b, sizeof b));
    for (int d = 0; d < decl->ndim; d++)
        if (decl->dims[d] >= 0 && decl->dims[d] != t->dims[d])
            return strata_fail(err, STRATA_E_ARG, "input '%s' is declared %s; it was given %s",
                               val->name, dims_format(decl, a, sizeof a),
                               dims_format(t, b, sizeof b));
    for (int d = 0; d < t->ndim; d++)
        if (t->dims[d] < 0)
            return strata_fail(err, STRATA_E_ARG, "input '%s' has a negative dimension",
                               val->name);
    return 0;
}

/* Whether value v is one of g's inputs (for a view, a node value of the
 * graph it shows part of). */
static int is_input(const struct graph *g, int v)
{
    for (int i = 0; i < g->n_inputs; i++)
        if (g->inputs[i] == v)
            return 1;
    return 0;
}

/* Plans every value's shape for these inputs and runs the static nodes.
 * `sizing` (the first plan) allocates every buffer; later plans must fit. */
static int plan(struct graph_ws *ws, const struct tview *inputs, int sizing, char *err)
{
    const struct graph *g = ws->g;
    int rc;
    ws->planned = 0;
    for (int v = 0; v < g->n_values; v++) {
        const struct graph_value *val = &g->values[v];
        ws->is_static[v] = val->kind == VALUE_INITIALIZER;
        if (val->kind == VALUE_INITIALIZER)
            ws->vals[v] = val->init;
    }
    for (int i = 0; i < g->n_inputs; i++) {
        if ((rc = check_input(g, i, &inputs[i], err)) < 0)
            return rc;
        struct tview *t = &ws->vals[g->inputs[i]];
        *t = inputs[i];
        t->data = NULL;
        if (view_bytes(t) > ws->cap[g->inputs[i]] && !sizing)
            return strata_fail(err, STRATA_E_LIMIT,
                               "input '%s' is larger than the workspace was sized for",
                               g->values[g->inputs[i]].name);
        if (sizing)
            ws->cap[g->inputs[i]] = view_bytes(t);
    }
    size_t scratch_need = 0;
    if (ws->cache_valid)
        memset(ws->cache_valid, 0, (size_t)g->n_nodes * sizeof *ws->cache_valid);
    for (int i = 0; i < g->n_nodes; i++) {
        const struct node *n = &g->nodes[i];
        int is_static = 1;
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0 && !ws->is_static[n->inputs[k]])
                is_static = 0;
        if (n->op->flags & OP_SHAPE_ONLY)
            is_static = 1;
        gather_args(ws, n);
        /* activations are shown to infer without data, known values with it */
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0 && !ws->is_static[n->inputs[k]])
                ws->vals[n->inputs[k]].data = NULL;
        for (int k = 0; k < n->n_outputs; k++)
            memset(ws->out_ptrs[k], 0, sizeof *ws->out_ptrs[k]);
        if ((rc = n->op->infer(n, ws->in_ptrs, ws->out_ptrs, err)) < 0)
            return rc;
        for (int k = 0; k < n->n_outputs; k++) {
            int v = n->outputs[k];
            struct tview *t = &ws->vals[v];
            int64_t count = 1;
            for (int d = 0; d < t->ndim; d++) {
                if (t->dims[d] < 0 || (t->dims[d] > 0 && count > GRAPH_MAX_ELEMENTS / t->dims[d]))
                    return node_fail(n, err, STRATA_E_LIMIT,
                                     "output '%s' would have an impossible shape",
                                     g->values[v].name);
                count *= t->dims[d];
            }
            size_t bytes = view_bytes(t);
            if (is_static) {
                free(ws->owned[v]);
                ws->owned[v] = malloc(bytes ? bytes : 1);
                if (!ws->owned[v])
                    return strata_fail(err, STRATA_E_NOMEM, "out of memory planning the graph");
                ws->cap[v] = bytes;
                t->data = ws->owned[v];
            } else if (sizing) {
                ws->cap[v] = bytes;
            } else if (bytes > ws->cap[v]) {
                return node_fail(n, err, STRATA_E_LIMIT,
                                 "output '%s' needs %zu bytes at these input shapes, more than "
                                 "the %zu the workspace was sized for",
                                 g->values[v].name, bytes, ws->cap[v]);
            } else {
                t->data = ws->owned[v];
            }
            ws->is_static[v] = (uint8_t)is_static;
        }
        size_t s = n->op->scratch ? n->op->scratch(n, ws->in_ptrs,
                                                   (const struct tview *const *)ws->out_ptrs)
                                  : 0;
        if (sizing && ws->cache && !is_static && n->op->cache) {
            /* kept from run to run; a later plan that needs more goes without */
            size_t c = n->op->cache(n, ws->in_ptrs, (const struct tview *const *)ws->out_ptrs);
            if (c) {
                ws->cache[i] = aligned_alloc(64, (c * sizeof(float) + 63) / 64 * 64);
                if (!ws->cache[i])
                    return strata_fail(err, STRATA_E_NOMEM, "out of memory planning the graph");
                ws->cache_len[i] = c;
            }
        }
        if (s > scratch_need)
            scratch_need = s;
        if (ws->state && !is_static && n->op->train_state) {
            size_t need = n->op->train_state(n, ws->in_ptrs,
                                             (const struct tview *const *)ws->out_ptrs);
            if (sizing && need) {
                ws->state[i] = aligned_alloc(64, (need * sizeof(float) + 63) / 64 * 64);
                if (!ws->state[i])
                    return strata_fail(err, STRATA_E_NOMEM, "out of memory planning the graph");
                ws->state_len[i] = need;
            } else if (need > ws->state_len[i]) {
                return node_fail(n, err, STRATA_E_LIMIT,
                                 "needs more training state at these input shapes than the "
                                 "workspace was sized for");
            }
        }
        if (is_static) {
            if (s > ws->scratch_len) {
                free(ws->scratch);
                ws->scratch = aligned_alloc(64, (s * sizeof(float) + 63) / 64 * 64);
                ws->scratch_len = ws->scratch ? s : 0;
                if (!ws->scratch)
                    return strata_fail(err, STRATA_E_NOMEM, "out of memory planning the graph");
            }
            for (int k = 0; k < n->n_inputs; k++)
                if (n->inputs[k] >= 0 && !ws->is_static[n->inputs[k]])
                    ws->vals[n->inputs[k]].data = NULL; /* Shape reads dims only */
            struct op_ctx ctx = {.scratch = ws->scratch, .scratch_len = ws->scratch_len};
            n->op->forward(n, ws->in_ptrs, ws->out_ptrs, &ctx);
        }
        for (int k = 0; k < n->n_inputs; k++) {
            int v = n->inputs[k];
            if (v >= 0 && !ws->is_static[v] && g->values[v].kind == VALUE_NODE)
                ws->vals[v].data = ws->owned[v]; /* NULL while sizing, set below */
        }
    }
    if (sizing) {
        for (int v = 0; v < g->n_values; v++) {
            if (ws->is_static[v] || g->values[v].kind == VALUE_INITIALIZER)
                continue;
            if (g->values[v].kind == VALUE_NODE && g->values[v].producer < 0)
                continue;
            size_t bytes = ws->cap[v];
            if (is_input(g, v) && !ws->with_grads)
                continue; /* the caller's data is used in place */
            ws->owned[v] = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
            if (!ws->owned[v])
                return strata_fail(err, STRATA_E_NOMEM,
                                   "out of memory: value '%s' needs %zu bytes",
                                   g->values[v].name, bytes);
            if (g->values[v].kind == VALUE_NODE)
                ws->vals[v].data = ws->owned[v];
        }
        if (scratch_need > ws->scratch_len) {
            free(ws->scratch);
            ws->scratch = aligned_alloc(64, (scratch_need * sizeof(float) + 63) / 64 * 64);
            ws->scratch_len = ws->scratch ? scratch_need : 0;
            if (!ws->scratch)
                return strata_fail(err, STRATA_E_NOMEM, "out of memory: scratch of %zu floats",
                                   scratch_need);
        }
    } else if (scratch_need > ws->scratch_len) {
        return strata_fail(err, STRATA_E_LIMIT,
                           "these input shapes need more scratch than the workspace was sized "
                           "for");
    }
    ws->planned = 1;
    return 0;
}

static int alloc_grads(struct graph_ws *ws, char *err)
{
    const struct graph *g = ws->g;
    for (int v = 0; v < g->n_values; v++) {
        if (ws->vals[v].dtype != DTYPE_FLOAT ||
            (ws->is_static[v] && g->values[v].kind != VALUE_INITIALIZER))
            continue;
        size_t bytes = g->values[v].kind == VALUE_INITIALIZER ? view_bytes(&g->values[v].init)
                                                              : ws->cap[v];
        ws->grad_owned[v] = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
        if (!ws->grad_owned[v])
            return strata_fail(err, STRATA_E_NOMEM, "out of memory for the gradient of '%s'",
                               g->values[v].name);
    }
    return 0;
}

int graph_ws_init(struct graph_ws *ws, const struct graph *g, const struct tview *inputs,
                  int with_grads, char *err)
{
    memset(ws, 0, sizeof *ws);
    ws->g = g;
    ws->with_grads = with_grads;
    size_t nv = (size_t)g->n_values + 1;
    int max_in = 1, max_out = 1;
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].n_inputs > max_in)
            max_in = g->nodes[i].n_inputs;
        if (g->nodes[i].n_outputs > max_out)
            max_out = g->nodes[i].n_outputs;
    }
    ws->vals = calloc(nv, sizeof *ws->vals);
    ws->grads = calloc(nv, sizeof *ws->grads);
    ws->cap = calloc(nv, sizeof *ws->cap);
    ws->is_static = calloc(nv, 1);
    ws->needed = calloc(nv, 1);
    ws->owned = calloc(nv, sizeof *ws->owned);
    ws->grad_owned = calloc(nv, sizeof *ws->grad_owned);
    ws->in_ptrs = calloc((size_t)max_in, sizeof *ws->in_ptrs);
    ws->din_ptrs = calloc((size_t)max_in, sizeof *ws->din_ptrs);
    ws->out_ptrs = calloc((size_t)max_out, sizeof *ws->out_ptrs);
    ws->dout_ptrs = calloc((size_t)max_out, sizeof *ws->dout_ptrs);
    if (with_grads) {
        ws->state = calloc((size_t)g->n_nodes + 1, sizeof *ws->state);
        ws->state_len = calloc((size_t)g->n_nodes + 1, sizeof *ws->state_len);
        ws->clear_end = calloc(nv, sizeof *ws->clear_end);
        if (!ws->state || !ws->state_len || !ws->clear_end) {
            graph_ws_free(ws);
            return strata_fail(err, STRATA_E_NOMEM, "out of memory for the graph workspace");
        }
    } else {
        /* weights are constants here: ops may keep what they derive from them */
        ws->cache = calloc((size_t)g->n_nodes + 1, sizeof *ws->cache);
        ws->cache_len = calloc((size_t)g->n_nodes + 1, sizeof *ws->cache_len);
        ws->cache_valid = calloc((size_t)g->n_nodes + 1, sizeof *ws->cache_valid);
        if (!ws->cache || !ws->cache_len || !ws->cache_valid) {
            graph_ws_free(ws);
            return strata_fail(err, STRATA_E_NOMEM, "out of memory for the graph workspace");
        }
    }
    int rc;
    if (!ws->vals || !ws->grads || !ws->cap || !ws->is_static || !ws->needed || !ws->owned ||
        !ws->grad_owned || !ws->in_ptrs || !ws->din_ptrs || !ws->out_ptrs || !ws->dout_ptrs) {
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory for the graph workspace");
        goto fail;
    }
    if ((rc = plan(ws, inputs, 1, err)) < 0)
        goto fail;
    if (with_grads && (rc = alloc_grads(ws, err)) < 0)
        goto fail;
    return 0;
fail:
    graph_ws_free(ws);
    return rc;
}

static void free_folds(struct graph_ws *ws)
{
    if (ws->fold && ws->g)
        for (int i = 0; i < ws->g->n_nodes; i++)
            free(ws->fold[i]);
    free(ws->fold);
    ws->fold = NULL;
}

void graph_ws_free(struct graph_ws *ws)
{
    if (ws->g) {
        for (int v = 0; v < ws->g->n_values; v++) {
            if (ws->owned)
                free(ws->owned[v]);
            if (ws->grad_owned)
                free(ws->grad_owned[v]);
        }
    }
    free(ws->vals);
    free(ws->grads);
    free(ws->cap);
    free(ws->is_static);
    free(ws->needed);
    free(ws->owned);
    free(ws->grad_owned);
    free(ws->in_ptrs);
    free(ws->din_ptrs);
    free(ws->out_ptrs);
    free(ws->dout_ptrs);
    free(ws->scratch);
    free(ws->fuse_next);
    free_folds(ws);
    if (ws->cache && ws->g)
        for (int i = 0; i < ws->g->n_nodes; i++)
            free(ws->cache[i]);
    free(ws->cache);
    free(ws->cache_len);
    free(ws->cache_valid);
    if (ws->state && ws->g)
        for (int i = 0; i < ws->g->n_nodes; i++)
            free(ws->state[i]);
    free(ws->state);
    free(ws->state_len);
    free(ws->clear_end);
    memset(ws, 0, sizeof *ws);
}

/* ---- running -------------------------------------------------------------- */

/* The bounds of the Relu or Clip `act`, for the node before it to apply as
 * it writes (ctx->clamp). */
static void take_clamp(struct graph_ws *ws, const struct node *act, struct op_ctx *ctx)
{
    gather_args(ws, act);
    ctx->clamp = act->op->as_clamp(act, ws->in_ptrs, &ctx->clamp_lo, &ctx->clamp_hi);
}

/* Conv i's weights and bias with BatchNormalization i + 1 folded in, into
 * ws->fold[i]: W'[m] = W[m]·scale[m] and b'[m] = b[m]·scale[m] + shift[m],
 * laid out [W' | b' | scale]. */
static void fold_batch_norm(struct graph_ws *ws, int i)
{
    const struct node *conv = &ws->g->nodes[i], *bn = &ws->g->nodes[i + 1];
    const struct tview *w = &ws->vals[conv->inputs[1]];
    const int M = (int)w->dims[0];
    const size_t K = (size_t)tview_count(w) / (size_t)M;
    float *fw = ws->fold[i], *fb = fw + (size_t)M * K, *scale = fb + M;
    gather_args(ws, bn);
    bn->op->as_affine(bn, ws->in_ptrs, scale, fb);
    const float *wv = tview_f(w);
    const float *bias = conv->n_inputs > 2 && conv->inputs[2] >= 0
                            ? tview_f(&ws->vals[conv->inputs[2]]) : NULL;
    for (int m = 0; m < M; m++) {
        for (size_t k = 0; k < K; k++)
            fw[(size_t)m * K + k] = wv[(size_t)m * K + k] * scale[m];
        fb[m] += (bias ? bias[m] : 0.0f) * scale[m];
    }
}

/* Runs the chain that starts at Conv i (ws->fuse_next[i]): the
 * BatchNormalization after it folded in, the Relu or Clip after that
 * applied as it writes, the MaxPool after those computed inside it, each
 * where the chain has it, writing the last node's output. Returns how many
 * nodes after i it took. */
static int run_conv_chain(struct graph_ws *ws, int i, const struct op_ctx *ctx)
{
    const struct graph *g = ws->g;
    const struct node *n = &g->nodes[i];
    const int kind = ws->fuse_next[i] & ~GRAPH_FUSE_POOL;
    const int folded = kind == GRAPH_FUSE_BN || kind == GRAPH_FUSE_BN_CLAMP;
    const int clamped = kind == GRAPH_FUSE_CLAMP || kind == GRAPH_FUSE_BN_CLAMP;
    const int pooled = (ws->fuse_next[i] & GRAPH_FUSE_POOL) != 0;
    const int before_pool = folded + clamped; /* nodes after i up to the pool */
    struct op_ctx fused = *ctx;
    if (folded && !ws->cache_valid[i])
        fold_batch_norm(ws, i);
    if (clamped)
        take_clamp(ws, &g->nodes[i + before_pool], &fused);
    gather_args(ws, n);
    struct node with_bias = *n;
    struct tview w, b;
    if (folded) {
        /* the folded weights and bias (a folded Conv always has a bias) */
        w = ws->vals[n->inputs[1]];
        const int M = (int)w.dims[0];
        w.data = ws->fold[i];
        b = (struct tview){.dtype = DTYPE_FLOAT, .ndim = 1, .dims = {M},
                           .data = ws->fold[i] + (size_t)tview_count(&w)};
        ws->in_ptrs[1] = &w;
        ws->in_ptrs[2] = &b;
        with_bias.n_inputs = 3;
    }
    ws->out_ptrs[0] = &ws->vals[g->nodes[i + before_pool].outputs[0]];
    if (pooled)
        fused.pool = &ws->vals[g->nodes[i + before_pool + 1].outputs[0]];
    n->op->forward(&with_bias, ws->in_ptrs, ws->out_ptrs, &fused);
    if (folded)
        ws->cache_valid[i] = 1;
    return before_pool + pooled;
}

/* Whether node n (Flatten, Reshape, Identity, ...: OP_ALIAS) can leave its
 * output as a view of its input's bytes instead of copying them: its input
 * lives in the workspace (its own buffer, or one it is a view of: not the
 * caller's, which is borrowed for the call alone) and no backward will run.
 * The plan points the output at its own buffer again; each run points it
 * back. */
static int aliases_input(const struct graph_ws *ws, const struct node *n)
{
    if (!(n->op->flags & OP_ALIAS) || ws->with_grads || n->n_outputs != 1 || n->n_inputs < 1)
        return 0;
    const int in = n->inputs[0], out = n->outputs[0];
    return ws->owned[in] && ws->vals[in].dtype == ws->vals[out].dtype &&
           tview_count(&ws->vals[in]) == tview_count(&ws->vals[out]);
}

/* The chain of Transpose i to channels last, Flatten i + 1 and Gemm i + 2
 * (GRAPH_FUSE_NHWC_GEMM): the Gemm reads the Transpose's input as the
 * Flatten's output, row k' = c·H·W + p of its weights (column, with transB)
 * being row k = p·C + c of the original, kept in fold[i]. Returns 2, the
 * nodes after i it took. */
static int run_nhwc_gemm(struct graph_ws *ws, int i, const struct op_ctx *ctx)
{
    const struct graph *g = ws->g;
    const struct node *gemm = &g->nodes[i + 2];
    const struct tview *x = &ws->vals[g->nodes[i].inputs[0]];
    const struct tview *b = &ws->vals[gemm->inputs[1]];
    if (!ws->cache_valid[i]) {
        /* once a plan: the shapes are fixed until the next one */
        const int64_t C = x->dims[1], HW = x->dims[2] * x->dims[3];
        int64_t trans_b = 0;
        char err[STRATA_ERR_LEN];
        node_attr_int(gemm, "transB", 0, &trans_b, err); /* read by the fuse already */
        const float *w = tview_f(b);
        float *f = ws->fold[i];
        if (trans_b) { /* [units][K] */
            const int64_t units = b->dims[0];
            for (int64_t u = 0; u < units; u++)
                for (int64_t c = 0; c < C; c++)
                    for (int64_t p = 0; p < HW; p++)
                        f[(u * C + c) * HW + p] = w[(u * HW + p) * C + c];
        } else { /* [K][units] */
            const int64_t units = b->dims[1];
            for (int64_t c = 0; c < C; c++)
                for (int64_t p = 0; p < HW; p++)
                    memcpy(f + (c * HW + p) * units, w + (p * C + c) * units,
                           (size_t)units * sizeof *f);
        }
        ws->cache_valid[i] = 1;
    }
    gather_args(ws, gemm);
    struct tview a = ws->vals[gemm->inputs[0]], wp = *b;
    a.data = x->data;
    wp.data = ws->fold[i];
    ws->in_ptrs[0] = &a;
    ws->in_ptrs[1] = &wp;
    struct op_ctx gctx = *ctx;
    gemm->op->forward(gemm, ws->in_ptrs, ws->out_ptrs, &gctx);
    return 2;
}

int graph_run(struct graph_ws *ws, const struct tview *inputs, char *err)
{
    const struct graph *g = ws->g;
    int rc, same = ws->planned;
    for (int i = 0; i < g->n_inputs && same; i++)
        same = shapes_equal(&inputs[i], &ws->vals[g->inputs[i]]);
    if (!same && (rc = plan(ws, inputs, 0, err)) < 0)
        return rc;
    for (int i = 0; i < g->n_inputs; i++) {
        int v = g->inputs[i];
        if (ws->with_grads && ws->owned[v]) {
            /* keep a copy: backward reads the input after the caller may reuse it */
            memcpy(ws->owned[v], inputs[i].data, view_bytes(&inputs[i]));
            ws->vals[v].data = ws->owned[v];
        } else {
            ws->vals[v].data = inputs[i].data;
        }
    }
    const int training = ws->training && ws->with_grads;
    struct op_ctx ctx = {.scratch = ws->scratch, .scratch_len = ws->scratch_len,
                         .training = training, .rng = training ? &ws->rng : NULL};
    for (int i = 0; i < g->n_nodes; i++) {
        const struct node *n = &g->nodes[i];
        if (ws->is_static[n->outputs[0]])
            continue;
        if (training) {
            ctx.state = ws->state[i];
            ctx.state_len = ws->state_len[i];
        }
        if (ws->cache) {
            ctx.cache = ws->cache[i];
            ctx.cache_len = ws->cache_len[i];
            ctx.cache_valid = &ws->cache_valid[i];
        }
        if (ws->fuse_next && ws->fuse_next[i] && n->op == &op_conv) {
            i += run_conv_chain(ws, i, &ctx);
            continue;
        }
        if (ws->fuse_next && ws->fuse_next[i] == GRAPH_FUSE_NHWC_GEMM) {
            i += run_nhwc_gemm(ws, i, &ctx);
            continue;
        }
        if (ws->fuse_next && ws->fuse_next[i]) {
            /* the Add writes the Relu's or Clip's output, clamped; or the
             * Sigmoid writes the Mul's, x·σ(x) */
            const struct node *act = &g->nodes[i + 1];
            struct op_ctx fused = ctx;
            if (ws->fuse_next[i] == GRAPH_FUSE_CLAMP)
                take_clamp(ws, act, &fused);
            else
                fused.times_input = 1;
            gather_args(ws, n);
            ws->out_ptrs[0] = &ws->vals[act->outputs[0]];
            n->op->forward(n, ws->in_ptrs, ws->out_ptrs, &fused);
            i++;
            continue;
        }
        if (aliases_input(ws, n)) {
            ws->vals[n->outputs[0]].data = ws->vals[n->inputs[0]].data;
            continue;
        }
        gather_args(ws, n);
        n->op->forward(n, ws->in_ptrs, ws->out_ptrs, &ctx);
    }
    return 0;
}

/* 1 if value v is one the caller reads (a graph output, or in keep), or
 * another node reads it too. */
static int fuse_blocked(const struct graph *g, int v, const int *keep, int n_keep)
{
    if (g->values[v].n_consumers != 1)
        return 1;
    for (int k = 0; k < n_keep; k++)
        if (keep[k] == v)
            return 1;
    return 0;
}

static int same_dims(const struct tview *a, const struct tview *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->dims[d] != b->dims[d])
            return 0;
    return 1;
}

/* 1 if node n's inputs from the first-th on are all known before the batch
 * (weights, bounds) or absent. */
static int inputs_static(const struct graph_ws *ws, const struct node *n, int first)
{
    for (int k = first; k < n->n_inputs; k++)
        if (n->inputs[k] >= 0 && !ws->is_static[n->inputs[k]])
            return 0;
    return 1;
}

/* Node j, when it exists, has one output and reads value v first. */
static const struct node *reads_first(const struct graph *g, int j, int v)
{
    if (j >= g->n_nodes)
        return NULL;
    const struct node *n = &g->nodes[j];
    return n->n_outputs == 1 && n->n_inputs >= 1 && n->inputs[0] == v ? n : NULL;
}

/* The chain Conv i runs as one (graph_ws_fuse): sets ws->fuse_next[i] (and
 * makes room for folded weights) and returns how many nodes after i it
 * takes (0: none), or STRATA_E_NOMEM. Its output v is neither kept nor
 * read twice. */
static int conv_chain(struct graph_ws *ws, int i, const int *keep, int n_keep)
{
    const struct graph *g = ws->g;
    const struct node *conv = &g->nodes[i], *next;
    int v = conv->outputs[0], kind = GRAPH_FUSE_NONE, taken = 0;
    if ((next = reads_first(g, i + 1, v)) && next->op->as_affine && inputs_static(ws, conv, 1) &&
        inputs_static(ws, next, 1) &&
        tview_count(&ws->vals[next->inputs[1]]) == ws->vals[conv->inputs[1]].dims[0]) {
        const size_t M = (size_t)ws->vals[conv->inputs[1]].dims[0];
        ws->fold[i] = malloc(((size_t)tview_count(&ws->vals[conv->inputs[1]]) + 2 * M) *
                             sizeof(float));
        if (!ws->fold[i])
            return STRATA_E_NOMEM;
        kind = GRAPH_FUSE_BN;
        taken = 1;
        v = next->outputs[0];
    }
    /* Clip's bounds must be known before the batch (constants) */
    if ((!taken || !fuse_blocked(g, v, keep, n_keep)) &&
        (next = reads_first(g, i + taken + 1, v)) && next->op->as_clamp &&
        inputs_static(ws, next, 1)) {
        kind = taken ? GRAPH_FUSE_BN_CLAMP : GRAPH_FUSE_CLAMP;
        taken++;
        v = next->outputs[0];
    }
    if ((!taken || !fuse_blocked(g, v, keep, n_keep)) &&
        (next = reads_first(g, i + taken + 1, v)) && next->op->is_max_pool_2x2 &&
        next->op->is_max_pool_2x2(next) && ws->vals[v].ndim == 4) {
        kind |= GRAPH_FUSE_POOL;
        taken++;
    }
    ws->fuse_next[i] = (uint8_t)kind;
    return taken;
}

/* Whether Transpose i, Flatten i + 1 and Gemm i + 2 form a chain
 * run_nhwc_gemm runs: a float [N, C, H, W] turned to [N, H, W, C] (perm 0,
 * 2, 3, 1), flattened from axis 1 for nothing but the Gemm's A (transA 0),
 * whose B is known before the batch. */
static int nhwc_gemm_chain(const struct graph_ws *ws, int i, const int *keep, int n_keep)
{
    const struct graph *g = ws->g;
    const struct node *t = &g->nodes[i];
    if (t->op != &op_transpose || i + 2 >= g->n_nodes || t->n_inputs != 1 ||
        ws->vals[t->inputs[0]].ndim != 4 || ws->vals[t->inputs[0]].dtype != DTYPE_FLOAT)
        return 0;
    const struct node *flat = reads_first(g, i + 1, t->outputs[0]);
    if (!flat || flat->op != &op_flatten || fuse_blocked(g, flat->outputs[0], keep, n_keep))
        return 0;
    const struct node *gemm = reads_first(g, i + 2, flat->outputs[0]);
    if (!gemm || gemm->op != &op_gemm || gemm->n_inputs < 2 || !inputs_static(ws, gemm, 1))
        return 0;
    char err[STRATA_ERR_LEN];
    int64_t perm[4], axis = 0, trans_a = 1;
    int n_perm = 0;
    if (node_attr_ints(t, "perm", perm, 4, &n_perm, err) < 0 || n_perm != 4 || perm[0] != 0 ||
        perm[1] != 2 || perm[2] != 3 || perm[3] != 1 ||
        node_attr_int(flat, "axis", 1, &axis, err) < 0 || axis != 1 ||
        node_attr_int(gemm, "transA", 0, &trans_a, err) < 0 || trans_a)
        return 0;
    return 1;
}

/* Drops every choice graph_ws_fuse made, after an allocation failed. */
static int fuse_out_of_memory(struct graph_ws *ws)
{
    free(ws->fuse_next);
    ws->fuse_next = NULL;
    free_folds(ws);
    return STRATA_E_NOMEM;
}

int graph_ws_fuse(struct graph_ws *ws, const int *keep, int n_keep)
{
    const struct graph *g = ws->g;
    free(ws->fuse_next);
    ws->fuse_next = NULL;
    if (ws->with_grads || g->n_nodes < 2)
        return 0;
    free_folds(ws);
    /* what ops derived from the weights (a Winograd transform) may come from
     * weights that are now folded, or no longer */
    memset(ws->cache_valid, 0, (size_t)g->n_nodes * sizeof *ws->cache_valid);
    if (!(ws->fuse_next = calloc((size_t)g->n_nodes, 1)) ||
        !(ws->fold = calloc((size_t)g->n_nodes, sizeof *ws->fold)))
        return fuse_out_of_memory(ws);
    int fused = 0;
    for (int i = 0; i + 1 < g->n_nodes; i++) {
        const struct node *n = &g->nodes[i], *next = &g->nodes[i + 1];
        if (n->n_outputs != 1 || next->n_outputs != 1 || next->n_inputs < 1)
            continue;
        const int v = n->outputs[0];
        if (ws->is_static[v] || fuse_blocked(g, v, keep, n_keep))
            continue;
        int taken = 0;
        if (n->op == &op_conv) {
            if ((taken = conv_chain(ws, i, keep, n_keep)) < 0)
                return fuse_out_of_memory(ws);
        }
        else if (n->op == &op_add && ws->vals[v].dtype == DTYPE_FLOAT && next->op->as_clamp &&
                 next->inputs[0] == v && inputs_static(ws, next, 1)) {
            ws->fuse_next[i] = GRAPH_FUSE_CLAMP;
            taken = 1;
        }
        else if (nhwc_gemm_chain(ws, i, keep, n_keep)) {
            const struct tview *b = &ws->vals[g->nodes[i + 2].inputs[1]];
            if (!(ws->fold[i] = malloc((size_t)tview_count(b) * sizeof(float))))
                return fuse_out_of_memory(ws);
            ws->fuse_next[i] = GRAPH_FUSE_NHWC_GEMM;
            taken = 2;
        }
        else if (n->op == &op_sigmoid && next->op == &op_mul && next->n_inputs == 2 &&
                 ((next->inputs[0] == v && next->inputs[1] == n->inputs[0]) ||
                  (next->inputs[1] == v && next->inputs[0] == n->inputs[0])) &&
                 same_dims(&ws->vals[n->inputs[0]], &ws->vals[next->outputs[0]])) {
            ws->fuse_next[i] = GRAPH_FUSE_SILU;
            taken = 1;
        }
        if (!taken)
            continue;
        fused++;
        i += taken; /* the chain's other nodes are taken */
    }
    return fused;
}

/* Whether any output of node n is marked in ws->needed. */
static int node_needed(const struct graph_ws *ws, const struct node *n)
{
    for (int k = 0; k < n->n_outputs; k++)
        if (ws->needed[n->outputs[k]])
            return 1;
    return 0;
}

/* Which gradients a backward computes, besides the values `from` depends on. */
enum backward_scope {
    BACKWARD_ALL,       /* every one */
    BACKWARD_INPUTS,    /* only values that depend on a graph input: no weight's */
    BACKWARD_WEIGHTS,   /* not the graph inputs' */
};

/* Marks in ws->needed the values whose gradient backward computes: those
 * `from` depends on, within `scope`. */
static void mark_needed(struct graph_ws *ws, int from, enum backward_scope scope)
{
    const struct graph *g = ws->g;
    memset(ws->needed, 0, (size_t)g->n_values);
    ws->needed[from] = 1;
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        const struct node *n = &g->nodes[i];
        if (!node_needed(ws, n) || ws->is_static[n->outputs[0]])
            continue;
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0)
                ws->needed[n->inputs[k]] = 1;
    }
    if (scope == BACKWARD_WEIGHTS)
        for (int i = 0; i < g->n_inputs; i++)
            ws->needed[g->inputs[i]] = 0;
    if (scope != BACKWARD_INPUTS)
        return;
    /* a second pass forwards: keep only what an input reaches (bit 2) */
    for (int i = 0; i < g->n_inputs; i++)
        ws->needed[g->inputs[i]] |= 2;
    for (int i = 0; i < g->n_nodes; i++) {
        const struct node *n = &g->nodes[i];
        int reached = 0;
        for (int k = 0; k < n->n_inputs; k++)
            reached |= n->inputs[k] >= 0 && (ws->needed[n->inputs[k]] & 2);
        if (reached)
            for (int k = 0; k < n->n_outputs; k++)
                ws->needed[n->outputs[k]] |= 2;
    }
    for (int v = 0; v < g->n_values; v++)
        ws->needed[v] = ws->needed[v] == 3;
}

/* Clears the gradient bytes [b, e) of the backward about to run, counted
 * over the needed values one after the other (ws->clear_end). */
#define CLEAR_PIECE ((size_t)1 << 20)

static void clear_bytes(struct graph_ws *ws, size_t b, size_t e)
{
    const struct graph *g = ws->g;
    /* the first value that ends after b */
    int lo = 0, hi = g->n_values;
    while (lo < hi) {
        const int mid = lo + (hi - lo) / 2;
        if (ws->clear_end[mid] > b)
            hi = mid;
        else
            lo = mid + 1;
    }
    for (int v = lo; v < g->n_values && b < e; v++) {
        const size_t start = v ? ws->clear_end[v - 1] : 0, end = ws->clear_end[v];
        if (end <= b)
            continue;
        const size_t upto = end < e ? end : e;
        memset((char *)ws->grads[v].data + (b - start), 0, upto - b);
        b = upto;
    }
}

struct clear_job {
    struct graph_ws *ws;
    size_t total;
};

static void clear_piece(void *arg, int p0, int p1)
{
    const struct clear_job *j = arg;
    const size_t b = (size_t)p0 * CLEAR_PIECE, e = (size_t)p1 * CLEAR_PIECE;
    clear_bytes(j->ws, b, e < j->total ? e : j->total);
}

static int backward(struct graph_ws *ws, int from, const float *dout, enum backward_scope scope,
                    char *err)
{
    const struct graph *g = ws->g;
    if (!ws->with_grads)
        return strata_fail(err, STRATA_E_ARG, "this workspace was made without gradients");
    if (from < 0 || from >= g->n_values || ws->vals[from].dtype != DTYPE_FLOAT ||
        !ws->grad_owned[from])
        return strata_fail(err, STRATA_E_ARG, "value %d carries no gradient", from);
    mark_needed(ws, from, scope);
    if (!ws->needed[from])
        return strata_fail(err, STRATA_E_ARG, "value '%s' does not depend on the inputs",
                           g->values[from].name);
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        const struct node *n = &g->nodes[i];
        if (!node_needed(ws, n) || ws->is_static[n->outputs[0]])
            continue;
        if (!n->op->backward)
            return node_fail(n, err, STRATA_E_UNSUPPORTED, "has no gradient");
    }
    /* the gradients start at zero: cleared on the pool, a training step's
     * are hundreds of megabytes */
    size_t total = 0;
    for (int v = 0; v < g->n_values; v++) {
        struct tview *d = &ws->grads[v];
        *d = ws->vals[v];
        d->data = ws->needed[v] ? ws->grad_owned[v] : NULL;
        ws->clear_end[v] = total += d->data ? view_bytes(d) : 0;
    }
    struct clear_job cj = {.ws = ws, .total = total};
    const size_t pieces = (total + CLEAR_PIECE - 1) / CLEAR_PIECE;
    if (pieces <= INT_MAX)
        parallel_for_grain((int)pieces, 1, clear_piece, &cj);
    else
        clear_bytes(ws, 0, total);
    memcpy(ws->grads[from].data, dout, view_bytes(&ws->grads[from]));
    const int training = ws->training;
    struct op_ctx ctx = {.scratch = ws->scratch, .scratch_len = ws->scratch_len,
                         .training = training};
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        const struct node *n = &g->nodes[i];
        if (!node_needed(ws, n) || ws->is_static[n->outputs[0]])
            continue;
        if (training) {
            ctx.state = ws->state[i];
            ctx.state_len = ws->state_len[i];
        }
        gather_args(ws, n);
        for (int k = 0; k < n->n_outputs; k++)
            ws->dout_ptrs[k] = &ws->grads[n->outputs[k]];
        for (int k = 0; k < n->n_inputs; k++) {
            int v = n->inputs[k];
            ws->din_ptrs[k] = v >= 0 && ws->grads[v].data ? &ws->grads[v] : NULL;
        }
        n->op->backward(n, ws->in_ptrs, (const struct tview *const *)ws->out_ptrs,
                        ws->dout_ptrs, ws->din_ptrs, &ctx);
    }
    return 0;
}

int graph_backward(struct graph_ws *ws, int from, const float *dout, char *err)
{
    return backward(ws, from, dout, BACKWARD_ALL, err);
}

int graph_backward_inputs(struct graph_ws *ws, int from, const float *dout, char *err)
{
    return backward(ws, from, dout, BACKWARD_INPUTS, err);
}

int graph_backward_weights(struct graph_ws *ws, int from, const float *dout, char *err)
{
    return backward(ws, from, dout, BACKWARD_WEIGHTS, err);
}
