/*
 * model_graph.c — an imported ONNX model behind struct model (see
 * model_graph.h): the checks that make a graph an image classifier, the
 * layers shown by default, and the forward that fills the layer buffers.
 */
#include "model_graph.h"

#include <assert.h>
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "onnx.h"
#include "onnx_export.h"
#include "tensor.h"

/* ---- what a classifier looks like ------------------------------------------ */

static const char *dtype_name(enum dtype t)
{
    return t == DTYPE_INT64 ? "int64" : "float";
}

/* One float input N x 3 x H x W whose H and W agree with model.json. */
static int check_input(const struct model *m, const struct graph *g, const char *file, char *err)
{
    if (g->n_inputs != 1) {
        char names[256] = "";
        size_t used = 0;
        for (int i = 0; i < g->n_inputs && used < sizeof names; i++)
            used += (size_t)snprintf(names + used, sizeof names - used, "%s'%s'", i ? ", " : "",
                                     g->values[g->inputs[i]].name);
        return strata_fail(err, STRATA_E_UNSUPPORTED,
                           "%s: the model has %d inputs (%s); strata runs models that take one "
                           "image batch",
                           file, g->n_inputs, names);
    }
    const struct graph_value *in = &g->values[g->inputs[0]];
    const struct tview *d = &in->init;
    char s[96];
    if (d->dtype != DTYPE_FLOAT)
        return strata_fail(err, STRATA_E_UNSUPPORTED,
                           "%s: input '%s' is %s; strata feeds float images (export the model "
                           "with a float32 input)",
                           file, in->name, dtype_name(d->dtype));
    if (d->ndim != 4 || (d->dims[1] >= 0 && d->dims[1] != 3))
        return strata_fail(err, STRATA_E_UNSUPPORTED,
                           "%s: input '%s' has shape %s; strata feeds one batch of RGB images, "
                           "N x 3 x H x W (channels first)",
                           file, in->name, dims_format(d, s, sizeof s));
    if ((d->dims[2] >= 0 && d->dims[2] != m->input.h) ||
        (d->dims[3] >= 0 && d->dims[3] != m->input.w))
        return strata_fail(err, STRATA_E_ARG,
                           "%s: input '%s' has shape %s, but model.json says %dx%d pixels", file,
                           in->name, dims_format(d, s, sizeof s), m->input.h, m->input.w);
    if (d->dims[0] > 1)
        return strata_fail(err, STRATA_E_UNSUPPORTED,
                           "%s: input '%s' has a fixed batch of %lld; export it with a dynamic "
                           "batch axis or a batch of 1",
                           file, in->name, (long long)d->dims[0]);
    return 0;
}

/* ---- the layers shown ---------------------------------------------------- */

static int is_activation(const char *op)
{
    static const char *const acts[] = {"Relu", "Clip", "LeakyRelu", "PRelu", "HardSwish",
                                       "Sigmoid", "HardSigmoid", "Tanh"};
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        if (strcmp(op, acts[i]) == 0)
            return 1;
    return 0;
}

/* A node output is worth showing when it ends a step of the network: an
 * activation, a residual sum, a pooling or a concatenation, at a spatial size
 * above 1x1 — unless its one consumer is an activation (then that is shown),
 * or it is the x*sigmoid(x) of a SiLU/HardSwish, shown as the Mul. */
static int worth_showing(const struct graph *g, const struct graph_ws *ws, int v)
{
    const struct tview *t = graph_value_view(ws, v);
    int p = g->values[v].producer;
    if (p < 0 || t->dtype != DTYPE_FLOAT || t->ndim != 4 || t->dims[2] * t->dims[3] < 2 ||
        ws->is_static[v])
        return 0;
    const char *op = g->nodes[p].op_type;
    int kind = is_activation(op) || !strcmp(op, "Add") || !strcmp(op, "MaxPool") ||
               !strcmp(op, "AveragePool") || !strcmp(op, "Concat");
    if (!strcmp(op, "Mul")) {
        /* x * sigmoid(x): one input is an activation of the other */
        const struct node *n = &g->nodes[p];
        for (int k = 0; k < 2 && n->n_inputs == 2; k++) {
            int a = n->inputs[k], b = n->inputs[1 - k];
            int pb = b >= 0 ? g->values[b].producer : -1;
            if (a >= 0 && pb >= 0 && is_activation(g->nodes[pb].op_type) &&
                g->nodes[pb].inputs[0] == a && graph_value_view(ws, a)->ndim == 4 &&
                graph_value_view(ws, a)->dims[1] == t->dims[1])
                kind = 1;
        }
    }
    if (!kind)
        return 0;
    if (g->values[v].n_consumers == 1) {
        for (int i = p + 1; i < g->n_nodes; i++) {
            const struct node *c = &g->nodes[i];
            if (c->n_inputs >= 1 && c->inputs[0] == v && is_activation(c->op_type) &&
                graph_value_view(ws, c->outputs[0])->ndim == 4)
                return 0;
            if (c->n_inputs >= 1 && c->inputs[0] == v && !strcmp(c->op_type, "Mul"))
                return 0;
        }
    }
    /* a sigmoid whose consumer multiplies it into another tensor is a gate */
    if (!strcmp(op, "Sigmoid") || !strcmp(op, "HardSigmoid")) {
        for (int i = p + 1; i < g->n_nodes; i++)
            for (int k = 0; k < g->nodes[i].n_inputs; k++)
                if (g->nodes[i].inputs[k] == v && !strcmp(g->nodes[i].op_type, "Mul"))
                    return 0;
    }
    return 1;
}

/* A readable layer name from the node: "/layer1/layer1.0/relu/Relu" gives
 * "layer1.0/relu"; an empty or numeric name gives "relu_12". At most
 * len - 1 characters, keeping the end. */
static void layer_name(const struct graph *g, int v, int index, char *out, size_t len)
{
    const struct node *n = &g->nodes[g->values[v].producer];
    const char *src = n->name;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", src[0] == '/' ? src + 1 : src);
    size_t bl = strlen(buf), ol = strlen(n->op_type);
    if (bl > ol + 1 && buf[bl - ol - 1] == '/' && strcmp(buf + bl - ol, n->op_type) == 0)
        buf[bl - ol - 1] = 0;
    /* "layer1/layer1.0/relu" -> "layer1.0/relu": drop a first part repeated */
    char *slash = strchr(buf, '/');
    if (slash && strncmp(slash + 1, buf, (size_t)(slash - buf)) == 0)
        memmove(buf, slash + 1, strlen(slash + 1) + 1);
    int numeric = 1;
    for (const char *c = buf; *c; c++)
        numeric &= isdigit((unsigned char)*c) || *c == '_';
    if (!buf[0] || numeric) {
        snprintf(buf, sizeof buf, "%s_%d", n->op_type, index);
        for (char *c = buf; *c; c++)
            *c = (char)tolower((unsigned char)*c);
    }
    bl = strlen(buf);
    const char *keep = bl >= len ? buf + bl - (len - 1) : buf;
    memcpy(out, keep, strlen(keep) + 1);
}

static struct shape shape_of(const struct tview *t)
{
    if (t->ndim == 4)
        return (struct shape){(int)t->dims[2], (int)t->dims[3], (int)t->dims[1]};
    int64_t f = 1;
    for (int d = 1; d < t->ndim; d++)
        f *= t->dims[d];
    return (struct shape){1, 1, (int)f};
}

/* Whether value v can be shown as a layer: a float activation per image
 * (N x C x H x W or N x F), computed from the input (not a constant). */
static int showable(const struct graph *g, const struct graph_ws *ws, int v)
{
    const struct tview *t = graph_value_view(ws, v);
    return g->values[v].producer >= 0 && t->dtype == DTYPE_FLOAT &&
           (t->ndim == 4 || t->ndim == 2) && !ws->is_static[v];
}

/* Does `name` name value v: its tensor name, its node's name, or the layer
 * name strata shows for it? */
static int names_value(const struct graph *g, int v, const char *name)
{
    char shown[64];
    layer_name(g, v, 0, shown, sizeof shown);
    return !strcmp(g->values[v].name, name) || !strcmp(g->nodes[g->values[v].producer].name, name) ||
           !strcmp(shown, name);
}

/* The layers model.json names ("shown"), in the order the graph computes
 * them. */
static int choose_named(struct model_graph *mg, const struct graph_ws *ws, const json_t *names,
                        char *err)
{
    const struct graph *g = &mg->g;
    int logits_node = g->values[mg->logits].producer;
    mg->shown = malloc((json_array_size(names) + 1) * sizeof *mg->shown);
    if (!mg->shown)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory choosing layers");
    mg->n_shown = 0;
    for (int i = 0; i < logits_node; i++)
        for (int k = 0; k < g->nodes[i].n_outputs; k++) {
            int v = g->nodes[i].outputs[k], hit = 0;
            size_t j;
            const json_t *name;
            json_array_foreach(names, j, name) hit |= names_value(g, v, json_string_value(name));
            if (hit && showable(g, ws, v))
                mg->shown[mg->n_shown++] = v;
        }
    size_t j;
    const json_t *name;
    json_array_foreach(names, j, name)
    {
        int found = 0;
        for (int l = 0; l < mg->n_shown && !found; l++)
            found = names_value(g, mg->shown[l], json_string_value(name));
        if (!found)
            return strata_fail(err, STRATA_E_NOTFOUND,
                               "model.json \"shown\": \"%.100s\" is not a value of the graph "
                               "computed before the class scores, per image (N x C x H x W or "
                               "N x F); `strata analyze ID --layers list` lists the candidates",
                               json_string_value(name));
    }
    return 0;
}

/* Picks the shown values: the ones model.json names, else every candidate,
 * thinned evenly (keeping the last) when there are more than fit. */
static int choose_layers(struct model_graph *mg, const struct graph_ws *ws, const json_t *names,
                         char *err)
{
    if (names)
        return choose_named(mg, ws, names, err);
    const struct graph *g = &mg->g;
    int *cand = malloc(((size_t)g->n_nodes + 1) * sizeof *cand);
    if (!cand)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory choosing layers");
    int nc = 0, logits_node = g->values[mg->logits].producer;
    for (int i = 0; i < g->n_nodes && i < logits_node; i++)
        for (int k = 0; k < g->nodes[i].n_outputs; k++)
            if (worth_showing(g, ws, g->nodes[i].outputs[k]))
                cand[nc++] = g->nodes[i].outputs[k];
    /* the features the classifier reads: the last pooled vector before it */
    int feat = -1;
    for (int i = logits_node - 1; i >= 0 && feat < 0; i--) {
        const char *op = g->nodes[i].op_type;
        int v = g->nodes[i].outputs[0];
        if ((!strcmp(op, "GlobalAveragePool") || !strcmp(op, "GlobalMaxPool") ||
             !strcmp(op, "ReduceMean")) && !ws->is_static[v])
            feat = v;
    }
    int max = MODEL_GRAPH_MAX_SHOWN - 2 - (feat >= 0);
    int take = nc < max ? nc : max;
    mg->shown = malloc(((size_t)take + 2) * sizeof *mg->shown);
    if (!mg->shown) {
        free(cand);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory choosing layers");
    }
    for (int j = 0; j < take; j++) /* evenly spaced, the last candidate always in */
        mg->shown[j] = cand[take == 1 ? nc - 1 : (int)((int64_t)j * (nc - 1) / (take - 1))];
    mg->n_shown = take;
    if (feat >= 0)
        mg->shown[mg->n_shown++] = feat;
    free(cand);
    return 0;
}

/* The weights of Conv, Gemm, MatMul, BatchNormalization and PRelu nodes are
 * finite numbers: a NaN or an infinity there (a diverged training, a damaged
 * export) makes every answer the same, or NaN. */
static int check_finite_weights(const struct graph *g, const char *file, char *err)
{
    static const char *const weighted[] = {"Conv", "Gemm", "MatMul", "BatchNormalization",
                                           "PRelu"};
    for (int i = 0; i < g->n_nodes; i++) {
        const struct node *n = &g->nodes[i];
        int is_weighted = 0;
        for (size_t k = 0; k < sizeof weighted / sizeof *weighted; k++)
            is_weighted |= strcmp(n->op_type, weighted[k]) == 0;
        for (int k = 0; is_weighted && k < n->n_inputs; k++) {
            int v = n->inputs[k];
            if (v < 0 || g->values[v].kind != VALUE_INITIALIZER ||
                g->values[v].init.dtype != DTYPE_FLOAT)
                continue;
            const float *x = tview_f(&g->values[v].init);
            int64_t count = tview_count(&g->values[v].init), bad = 0, first = 0;
            for (int64_t j = 0; j < count; j++)
                if (!isfinite(x[j]) && bad++ == 0)
                    first = j;
            if (bad)
                return strata_fail(err, STRATA_E_FORMAT,
                                   "%s: initializer '%s' of node '%s' (%s) holds %lld values that "
                                   "are not finite numbers (NaN or infinity; the first at index "
                                   "%lld): the weights are broken, export the model again",
                                   file, g->values[v].name, n->name, n->op_type, (long long)bad,
                                   (long long)first);
        }
    }
    return 0;
}

/* ---- opening --------------------------------------------------------------- */

/* The logits: the output itself, or the input of a final Softmax/LogSoftmax
 * over the class axis, seen through any Identity after it (strata's own
 * export names its output so). */
static int find_logits(const struct graph *g, const struct graph_ws *ws, int out)
{
    int v = out;
    while (graph_produced_by(g, v, "Identity"))
        v = g->nodes[g->values[v].producer].inputs[0];
    if (graph_produced_by(g, v, "Softmax") || graph_produced_by(g, v, "LogSoftmax"))
        out = v;
    if (graph_produced_by(g, out, "Softmax") || graph_produced_by(g, out, "LogSoftmax")) {
        const struct node *n = &g->nodes[g->values[out].producer];
        int in = n->inputs[0];
        const struct tview *t = graph_value_view(ws, in);
        /* [N, K], or a 1×1 map [N, K, 1, 1] (the same floats) */
        const int flat = t->ndim == 2 || (t->ndim == 4 && t->dims[2] == 1 && t->dims[3] == 1);
        if (flat && !ws->is_static[in])
            return in;
    }
    return out;
}

static int fill_layers(struct model *m, struct model_graph *mg, const struct graph_ws *ws,
                       char *err)
{
    const struct graph *g = &mg->g;
    int n = mg->n_shown + 2;
    m->layers = calloc((size_t)n, sizeof *m->layers);
    if (!m->layers)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    m->n_layers = n;
    struct shape prev = m->input;
    for (int l = 0; l < n; l++) {
        struct layer *L = &m->layers[l];
        L->in = prev;
        if (l < mg->n_shown) {
            int v = mg->shown[l];
            L->cfg.kind = LAYER_RELU;
            layer_name(g, v, l, L->cfg.name, sizeof L->cfg.name);
            L->out = shape_of(graph_value_view(ws, v));
        } else if (l == n - 2) {
            L->cfg.kind = LAYER_DENSE; /* the classifier's scores, before the softmax */
            snprintf(L->cfg.name, sizeof L->cfg.name, "logits");
            L->cfg.units = m->n_classes;
            L->out = (struct shape){1, 1, m->n_classes};
        } else {
            L->cfg.kind = LAYER_SOFTMAX;
            snprintf(L->cfg.name, sizeof L->cfg.name, "probabilities");
            L->out = (struct shape){1, 1, m->n_classes};
        }
        for (int j = 0; j < l; j++) /* unique names */
            if (strcmp(m->layers[j].cfg.name, L->cfg.name) == 0) {
                char tail[16];
                snprintf(tail, sizeof tail, "~%d", l);
                size_t room = sizeof L->cfg.name - strlen(tail) - 1;
                L->cfg.name[room < strlen(L->cfg.name) ? room : strlen(L->cfg.name)] = 0;
                strcat(L->cfg.name, tail);
                j = -1;
            }
        /* listed as a chain (what each reads in the graph: model_graph_layer_inputs) */
        L->n_inputs = 1;
        L->inputs[0] = l - 1;
        L->ins[0] = L->in;
        prev = L->out;
    }
    return 0;
}

/* Bytes of activations one image takes in a workspace planned for `batch`
 * images: every value a batch computes (not the weights, not what is known
 * before the batch runs). */
static size_t bytes_per_image(const struct graph_ws *ws, int batch)
{
    const struct graph *g = ws->g;
    size_t total = 0;
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].kind == VALUE_NODE && !ws->is_static[v])
            total += ws->cap[v];
    return total / (size_t)(batch > 0 ? batch : 1);
}

int model_graph_open(struct model *m, const char *onnx_path, char *err)
{
    assert(m && onnx_path && !m->graph);
    struct model_graph *mg = calloc(1, sizeof *mg);
    if (!mg)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    struct graph_ws ws = {0};
    int rc = onnx_load(&mg->g, onnx_path, err);
    if (rc < 0)
        goto fail;
    if ((rc = check_input(m, &mg->g, onnx_path, err)) < 0 ||
        (rc = check_finite_weights(&mg->g, onnx_path, err)) < 0)
        goto fail;
    /* plan at batch 2 (batch 1 when the file fixes it) to learn every shape */
    const struct graph_value *in = &mg->g.values[mg->g.inputs[0]];
    int batch = in->init.dims[0] == 1 ? 1 : 2;
    struct tview shape = {.dtype = DTYPE_FLOAT, .ndim = 4,
                          .dims = {batch, 3, m->input.h, m->input.w}};
    if ((rc = graph_ws_init(&ws, &mg->g, &shape, 0, err)) < 0)
        goto fail;
    int out = mg->g.outputs[0];
    const struct tview *o = graph_value_view(&ws, out);
    char s[96];
    if (o->dtype != DTYPE_FLOAT || o->ndim != 2 || o->dims[0] != batch) {
        rc = strata_fail(err, STRATA_E_UNSUPPORTED,
                         "%s: output '%s' has shape %s for %d images; strata needs one vector "
                         "of class scores per image (N x classes)",
                         onnx_path, mg->g.values[out].name, dims_format(o, s, sizeof s), batch);
        goto fail;
    }
    if (o->dims[1] != m->n_classes) {
        rc = strata_fail(err, STRATA_E_ARG,
                         "%s: the model gives %lld class scores, but %d class names were given; "
                         "they must match",
                         onnx_path, (long long)o->dims[1], m->n_classes);
        goto fail;
    }
    mg->logits = find_logits(&mg->g, &ws, out);
    mg->bytes_per_image = bytes_per_image(&ws, batch);
    const json_t *names = m->json ? json_object_get(m->json, "shown") : NULL;
    if ((rc = choose_layers(mg, &ws, names, err)) < 0 || (rc = fill_layers(m, mg, &ws, err)) < 0)
        goto fail;
    graph_ws_free(&ws);
    m->graph = mg;
    return 0;
fail:
    graph_ws_free(&ws);
    graph_deinit(&mg->g);
    free(mg->shown);
    free(mg);
    free(m->layers);
    m->layers = NULL;
    m->n_layers = 0;
    return rc;
}

int model_graph_values(const struct model *m, struct model_graph_value **out, int *n, char *err)
{
    *out = NULL;
    *n = 0;
    const struct model_graph *mgc = m->graph;
    if (!mgc || mgc->own)
        return strata_fail(err, STRATA_E_ARG,
                           "%s is one of strata's own models: every layer of it is shown", m->id);
    const struct graph *g = &mgc->g;
    struct graph_ws ws = {0};
    const struct graph_value *in = &g->values[g->inputs[0]];
    struct tview shape = {.dtype = DTYPE_FLOAT, .ndim = 4,
                          .dims = {in->init.dims[0] == 1 ? 1 : 2, 3, m->input.h, m->input.w}};
    int rc = graph_ws_init(&ws, g, &shape, 0, err);
    if (rc < 0)
        return rc;
    /* the default choice, for by_default */
    struct model_graph probe = {.g = *g, .logits = mgc->logits};
    if ((rc = choose_layers(&probe, &ws, NULL, err)) < 0) {
        graph_ws_free(&ws);
        return rc;
    }
    struct model_graph_value *list = calloc((size_t)g->n_values + 1, sizeof *list);
    int logits_node = g->values[mgc->logits].producer, count = 0;
    for (int i = 0; list && i < logits_node; i++)
        for (int k = 0; k < g->nodes[i].n_outputs; k++) {
            int v = g->nodes[i].outputs[k];
            if (v < 0 || !showable(g, &ws, v))
                continue;
            struct model_graph_value *x = &list[count++];
            layer_name(g, v, i, x->name, sizeof x->name);
            x->tensor = g->values[v].name;
            x->op = g->nodes[i].op_type;
            x->shape = shape_of(graph_value_view(&ws, v));
            x->shown = -1;
            for (int l = 0; l < mgc->n_shown; l++)
                if (mgc->shown[l] == v)
                    x->shown = l;
            for (int l = 0; l < probe.n_shown; l++)
                x->by_default |= probe.shown[l] == v;
        }
    free(probe.shown);
    graph_ws_free(&ws);
    if (!list)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    *out = list;
    *n = count;
    return 0;
}

int model_graph_layer_inputs(const struct model *m, int l, int *from, int max)
{
    const struct model_graph *mg = m->graph;
    if (l < 0 || l >= m->n_layers || max < 1)
        return 0;
    if (!m->onnx[0]) {
        /* strata's own layers name what they read: sorted, without repeats */
        const struct layer *ly = &m->layers[l];
        int n = 0;
        for (int k = 0; k < ly->n_inputs; k++) {
            int v = ly->inputs[k], j = n;
            for (int d = 0; d < n; d++)
                if (from[d] == v)
                    v = INT_MIN;
            if (v == INT_MIN || n == max)
                continue;
            while (j > 0 && from[j - 1] > v) {
                from[j] = from[j - 1];
                j--;
            }
            from[j] = v;
            n++;
        }
        return n;
    }
    if (!mg || l >= mg->n_shown) {
        /* the logits and the probabilities: a chain */
        from[0] = l - 1;
        return 1;
    }
    const struct graph *g = &mg->g;
    char *seen = calloc((size_t)g->n_values, 1);
    int *stack = malloc(((size_t)g->n_values + 1) * sizeof *stack);
    int n = 0, top = 0;
    if (!seen || !stack) {
        free(seen);
        free(stack);
        return 0;
    }
    stack[top++] = mg->shown[l];
    seen[mg->shown[l]] = 1;
    while (top > 0) {
        int v = stack[--top];
        int p = g->values[v].producer;
        if (p < 0) {
            /* the image (an initializer or constant feeds nothing worth showing) */
            if (g->values[v].kind != VALUE_INITIALIZER && n < max) {
                int dup = 0;
                for (int j = 0; j < n; j++)
                    dup |= from[j] == -1;
                if (!dup)
                    from[n++] = -1;
            }
            continue;
        }
        for (int k = 0; k < g->nodes[p].n_inputs; k++) {
            int u = g->nodes[p].inputs[k];
            if (u < 0 || seen[u])
                continue;
            seen[u] = 1;
            int shown = -1;
            for (int j = 0; j < mg->n_shown && shown < 0; j++)
                if (mg->shown[j] == u)
                    shown = j;
            if (shown >= 0) {
                if (n < max)
                    from[n++] = shown;
            } else {
                stack[top++] = u;
            }
        }
    }
    free(seen);
    free(stack);
    for (int i = 1; i < n; i++) /* increasing order */
        for (int j = i; j > 0 && from[j - 1] > from[j]; j--) {
            int t = from[j];
            from[j] = from[j - 1];
            from[j - 1] = t;
        }
    return n;
}

const char *model_graph_layer_op(const struct model *m, int l)
{
    const struct model_graph *mg = m->graph;
    if (!mg || mg->own || l < 0 || l >= mg->n_shown)
        return NULL;
    return mg->g.nodes[mg->g.values[mg->shown[l]].producer].op_type;
}

void model_graph_free(struct model_graph *mg)
{
    if (!mg)
        return;
    graph_deinit(&mg->g);
    free(mg->shown);
    free(mg);
}

int model_graph_of_layers(const struct model *m, struct model_graph **out, char *err)
{
    assert(m && !m->onnx[0] && m->n_layers >= 1);
    *out = NULL;
    struct model_graph *mg = calloc(1, sizeof *mg);
    char (*names)[ONNX_EXPORT_NAME_LEN] = calloc((size_t)m->n_layers, sizeof *names);
    if (!mg || !names) {
        free(mg);
        free(names);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    }
    mg->own = 1;
    struct graph_ws ws = {0};
    uint8_t *bytes = NULL;
    size_t len = 0;
    int rc = onnx_export_bytes(m, &bytes, &len, names, err);
    if (rc == 0)
        rc = onnx_load_bytes(&mg->g, bytes, len, m->dir, err);
    free(bytes);
    if (rc == 0 && !(mg->shown = malloc((size_t)m->n_layers * sizeof *mg->shown)))
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory");
    struct tview shape = {.dtype = DTYPE_FLOAT, .ndim = 4, .dims = {2, 3, m->input.h, m->input.w}};
    if (rc == 0)
        rc = graph_ws_init(&ws, &mg->g, &shape, 0, err);
    for (int l = 0; rc == 0 && l < m->n_layers; l++) {
        int v = graph_find_value(&mg->g, names[l]);
        const struct tview *t = v >= 0 ? graph_value_view(&ws, v) : NULL;
        if (!t || t->dtype != DTYPE_FLOAT || tview_count(t) != 2 * (int64_t)shape_size(m->layers[l].out))
            rc = strata_fail(err, STRATA_E_FORMAT,
                             "model '%s': layer %d (%s) has no value of its size in its graph",
                             m->id, l, m->layers[l].cfg.name);
        else
            mg->shown[l] = v;
    }
    if (rc == 0) {
        mg->n_shown = m->n_layers;
        mg->logits = find_logits(&mg->g, &ws, mg->shown[m->n_layers - 1]);
        mg->bytes_per_image = bytes_per_image(&ws, 2);
        *out = mg;
    }
    else
        model_graph_free(mg);
    graph_ws_free(&ws);
    free(names);
    return rc;
}

int model_graph_from_layers(struct model *m, char *err)
{
    assert(!m->graph);
    return model_graph_of_layers(m, &m->graph, err);
}

void model_graph_close(struct model *m)
{
    model_graph_free(m->graph);
    m->graph = NULL;
}

/* ---- running ----------------------------------------------------------------- */

static int fixed_batch_one(const struct model_graph *mg)
{
    return mg->g.values[mg->g.inputs[0]].init.dims[0] == 1;
}

int model_graph_ws_init(struct model_workspace *ws, const struct model *m, int max_batch,
                        char *err)
{
    const struct model_graph *mg = m->graph;
    int b = fixed_batch_one(mg) ? 1 : max_batch;
    ws->graph = calloc(1, sizeof *ws->graph);
    ws->nchw = tensor_alloc((size_t)max_batch * shape_size(m->input));
    if (!ws->graph || !ws->nchw)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory for a batch of %d", max_batch);
    struct tview shape = {.dtype = DTYPE_FLOAT, .ndim = 4, .dims = {b, 3, m->input.h, m->input.w}};
    int rc = graph_ws_init(ws->graph, &mg->g, &shape, 0, err);
    if (rc < 0)
        return rc;
    ws->stale = calloc((size_t)m->n_layers, 1);
    ws->layer_value = malloc((size_t)m->n_layers * sizeof *ws->layer_value);
    if (!ws->stale || !ws->layer_value)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory for the graph workspace");
    for (int l = 0; l < m->n_layers; l++)
        ws->layer_value[l] = l < mg->n_shown ? mg->shown[l] : -1;
    if (!mg->own)
        ws->layer_value[m->n_layers - 2] = mg->logits; /* the last is the softmax, computed here */
    /* Relu and Clip run inside the Conv before them, except where that Conv's
     * output is a layer shown or the logits */
    int *keep = malloc(((size_t)mg->n_shown + 1) * sizeof *keep);
    if (!keep)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory for the graph workspace");
    memcpy(keep, mg->shown, (size_t)mg->n_shown * sizeof *keep);
    keep[mg->n_shown] = mg->logits;
    rc = graph_ws_fuse(ws->graph, keep, mg->n_shown + 1);
    free(keep);
    return rc < 0 ? strata_fail(err, rc, "out of memory for the graph workspace") : 0;
}

void model_graph_ws_free(struct model_workspace *ws)
{
    if (ws->graph) {
        graph_ws_free(ws->graph);
        free(ws->graph);
        ws->graph = NULL;
    }
    tensor_free(ws->nchw);
    ws->nchw = NULL;
    free(ws->stale);
    ws->stale = NULL;
    free(ws->layer_value);
    ws->layer_value = NULL;
}

/* Copies images [0, n) of an NCHW (or N x F) value into the NHWC layer
 * buffer dst at image offset `first`. */
static void copy_layer(float *dst, const struct tview *t, int first, int n)
{
    if (t->ndim == 4) {
        int64_t C = t->dims[1], HW = t->dims[2] * t->dims[3];
        for (int i = 0; i < n; i++) {
            const float *src = tview_f(t) + (size_t)i * C * HW;
            float *o = dst + (size_t)(first + i) * C * HW;
            for (int64_t c = 0; c < C; c++)
                for (int64_t p = 0; p < HW; p++)
                    o[p * C + c] = src[c * HW + p];
        }
    } else {
        int64_t F = tview_count(t) / t->dims[0];
        memcpy(dst + (size_t)first * F, t->data, (size_t)n * F * sizeof(float));
    }
}

/* probs = softmax(logits) per row, in double so that large logits are exact. */
static void softmax_rows(float *probs, const float *logits, int n, int K)
{
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * K;
        double mx = z[0], sum = 0;
        for (int k = 1; k < K; k++)
            mx = z[k] > mx ? z[k] : mx;
        for (int k = 0; k < K; k++)
            sum += exp((double)z[k] - mx);
        for (int k = 0; k < K; k++)
            probs[(size_t)i * K + k] = (float)(exp((double)z[k] - mx) / sum);
    }
}

int model_workspace_probabilities_only(struct model_workspace *ws, const struct model *m,
                                       char *err)
{
    const struct model_graph *mg = m->graph;
    /* the logits (the probabilities are computed from them here for an
     * imported model) and the probabilities themselves */
    int keep[2], n_keep = 0;
    if (mg->logits >= 0)
        keep[n_keep++] = mg->logits;
    if (ws->layer_value[m->n_layers - 1] >= 0)
        keep[n_keep++] = ws->layer_value[m->n_layers - 1];
    int rc = graph_ws_fuse(ws->graph, keep, n_keep);
    if (rc < 0)
        return strata_fail(err, rc, "out of memory for the graph workspace");
    ws->kept_from = mg->own ? m->n_layers - 1 : m->n_layers - 2;
    return 0;
}

void model_workspace_materialise(const struct model_workspace *ws, int layer)
{
    assert(layer >= ws->kept_from);
    copy_layer(ws->outputs[layer], graph_value_view(ws->graph, ws->layer_value[layer]), 0,
               ws->graph_n);
    ws->stale[layer] = 0;
}

const float *model_output_nchw(const struct model_workspace *ws, int layer)
{
    assert(layer >= ws->kept_from);
    /* stale[layer]: the graph holds the whole batch's value of the layer */
    if (!ws->graph || !ws->stale || !ws->stale[layer] || ws->layer_value[layer] < 0)
        return NULL;
    return tview_f(graph_value_view(ws->graph, ws->layer_value[layer]));
}

void model_graph_forward(const struct model *m, struct model_workspace *ws, const float *in, int n)
{
    const struct model_graph *mg = m->graph;
    const int H = m->input.h, W = m->input.w, HW = H * W;
    for (int i = 0; i < n; i++) /* NHWC -> NCHW */
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < HW; p++)
                ws->nchw[((size_t)i * 3 + c) * HW + p] = in[((size_t)i * HW + p) * 3 + c];
    const int step = fixed_batch_one(mg) ? 1 : n, pieces = step < n;
    char err[STRATA_ERR_LEN];
    for (int first = 0; first < n; first += step) {
        int b = n - first < step ? n - first : step;
        struct tview x = {.dtype = DTYPE_FLOAT, .ndim = 4, .dims = {b, 3, H, W},
                          .data = ws->nchw + (size_t)first * 3 * HW};
        int rc = graph_run(ws->graph, &x, err);
        if (rc < 0) {
            fprintf(stderr, "strata: %s\n", err);
            assert(!"a graph that planned at open failed to run");
        }
        /* the graph keeps one piece only: its layers are copied now */
        for (int l = ws->kept_from; pieces && l < m->n_layers; l++)
            if (ws->layer_value[l] >= 0)
                copy_layer(ws->outputs[l], graph_value_view(ws->graph, ws->layer_value[l]), first, b);
    }
    ws->graph_n = n;
    for (int l = 0; l < m->n_layers; l++)
        ws->stale[l] = !pieces && ws->layer_value[l] >= 0;
    if (!mg->own) {
        const float *logits = pieces ? ws->outputs[m->n_layers - 2]
                                     : tview_f(graph_value_view(ws->graph, mg->logits));
        softmax_rows(ws->outputs[m->n_layers - 1], logits, n, m->n_classes);
    }
}
