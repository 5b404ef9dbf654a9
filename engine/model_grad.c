/*
 * model_grad.c — a model's graph with gradient buffers (see model_grad.h).
 */
#include "model_grad.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_graph.h"

int model_grad_init(struct model_grad *mg, const struct model *m, int max_batch, char *err)
{
    memset(mg, 0, sizeof *mg);
    mg->m = m;
    mg->n_classes = m->n_classes;
    mg->h = m->input.h;
    mg->w = m->input.w;
    int rc;
    /* an opened model runs on its graph already; one built in memory gets
     * the same graph, for this struct alone */
    if (!m->graph && (rc = model_graph_of_layers(m, &mg->own, err)) < 0)
        return rc;
    const struct model_graph *source = m->graph ? m->graph : mg->own;
    mg->g = &source->g;
    mg->logits = source->logits;
    const struct graph *g = mg->g;
    mg->input = g->inputs[0];
    mg->max_batch = g->values[mg->input].init.dims[0] == 1 ? 1 : (max_batch < 1 ? 1 : max_batch);
    struct tview shape = {.dtype = DTYPE_FLOAT, .ndim = 4,
                          .dims = {mg->max_batch, 3, mg->h, mg->w}};
    if ((rc = graph_ws_init(&mg->ws, g, &shape, 1, err)) < 0)
        return rc;
    mg->dout = calloc((size_t)mg->max_batch * (size_t)mg->n_classes, sizeof *mg->dout);
    mg->to_logits = calloc((size_t)g->n_values, 1);
    if (!mg->dout || !mg->to_logits)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory for the gradients of '%s'", m->id);
    mg->to_logits[mg->logits] = 1;
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        const struct node *n = &g->nodes[i];
        int any = 0;
        for (int k = 0; k < n->n_outputs; k++)
            any |= mg->to_logits[n->outputs[k]];
        for (int k = 0; any && k < n->n_inputs; k++)
            if (n->inputs[k] >= 0)
                mg->to_logits[n->inputs[k]] = 1;
    }
    return 0;
}

void model_grad_deinit(struct model_grad *mg)
{
    graph_ws_free(&mg->ws);
    model_graph_free(mg->own);
    free(mg->dout);
    free(mg->to_logits);
    memset(mg, 0, sizeof *mg);
}

void model_grad_image(const struct model_grad *mg, const uint8_t *rgb, float *x)
{
    const struct model *m = mg->m;
    const size_t HW = (size_t)mg->h * (size_t)mg->w;
    for (int c = 0; c < 3; c++) {
        float a = (float)(1.0 / (255.0 * m->std[c]));
        float b = (float)(-m->mean[c] / (double)m->std[c]);
        for (size_t p = 0; p < HW; p++)
            x[c * HW + p] = (float)rgb[3 * p + c] * a + b;
    }
}

int model_grad_run(struct model_grad *mg, const float *x, int n, const int *classes, char *err)
{
    if (n < 1 || n > mg->max_batch)
        return strata_fail(err, STRATA_E_ARG, "a run takes 1 to %d images, not %d", mg->max_batch, n);
    struct tview in = {.dtype = DTYPE_FLOAT, .ndim = 4, .dims = {n, 3, mg->h, mg->w},
                       .data = (void *)x};
    int rc = graph_run(&mg->ws, &in, err);
    if (rc < 0 || !classes)
        return rc;
    const int K = mg->n_classes;
    memset(mg->dout, 0, (size_t)n * (size_t)K * sizeof *mg->dout);
    for (int i = 0; i < n; i++) {
        if (classes[i] < 0 || classes[i] >= K)
            return strata_fail(err, STRATA_E_ARG, "class %d is not one of the model's %d", classes[i], K);
        mg->dout[(size_t)i * K + classes[i]] = 1.0f;
    }
    return graph_backward_inputs(&mg->ws, mg->logits, mg->dout, err);
}

const float *model_grad_logits(const struct model_grad *mg)
{
    return tview_f(graph_value_view(&mg->ws, mg->logits));
}

const struct tview *model_grad_value(const struct model_grad *mg, int v)
{
    return graph_value_view(&mg->ws, v);
}

const struct tview *model_grad_gradient(const struct model_grad *mg, int v)
{
    return &mg->ws.grads[v];
}

size_t model_grad_activation_bytes(const struct model_grad *mg)
{
    size_t bytes = 0;
    for (int v = 0; v < mg->g->n_values; v++)
        if (mg->g->values[v].kind != VALUE_INITIALIZER)
            bytes += mg->ws.cap[v] + (mg->ws.grad_owned[v] ? mg->ws.cap[v] : 0);
    return bytes;
}

/* A 4-D activation with more than one position that is not just another
 * value's bytes in another order, and on the way to the logits. */
static int is_spatial(const struct model_grad *mg, int v)
{
    static const char *const reshapes[] = {"Transpose", "Reshape", "Flatten", "Identity",
                                           "Squeeze", "Unsqueeze", "Dropout"};
    const struct graph *g = mg->g;
    const struct tview *t = graph_value_view(&mg->ws, v);
    if (g->values[v].kind != VALUE_NODE || mg->ws.is_static[v] || !mg->to_logits[v] ||
        t->dtype != DTYPE_FLOAT || t->ndim != 4 || t->dims[2] * t->dims[3] < 2)
        return 0;
    for (size_t i = 0; i < sizeof reshapes / sizeof *reshapes; i++)
        if (graph_produced_by(g, v, reshapes[i]))
            return 0;
    return 1;
}

int model_grad_find_layer(const struct model_grad *mg, const char *name, char *err)
{
    const struct graph *g = mg->g;
    int found = -1;
    if (name) {
        int v = graph_find_value(g, name);
        if (v >= 0 && is_spatial(mg, v))
            return v;
    }
    /* nodes are in topological order: the last match is the deepest; the
     * graph of one of strata's own models names values "<layer>/<op>" */
    const int own = mg->own || mg->m->graph->own;
    size_t len = name ? strlen(name) : 0;
    for (int i = 0; i < g->n_nodes; i++) {
        int v = g->nodes[i].outputs[0];
        if (!is_spatial(mg, v))
            continue;
        if (!name || (own && strncmp(g->values[v].name, name, len) == 0 &&
                      g->values[v].name[len] == '/'))
            found = v;
    }
    if (found >= 0)
        return found;
    char list[400] = "";
    size_t used = 0;
    int shown = 0;
    for (int i = 0; i < g->n_nodes && used < sizeof list - 40; i++) {
        int v = g->nodes[i].outputs[0];
        if (!is_spatial(mg, v))
            continue;
        used += (size_t)snprintf(list + used, sizeof list - used, "%s'%s'", shown++ ? ", " : "",
                                 g->values[v].name);
    }
    if (!shown)
        return strata_fail(err, STRATA_E_NOTFOUND,
                           "model '%s' has no spatial layer (a 4-D activation with more than one "
                           "position) before its class scores: Grad-CAM needs one",
                           mg->m->id);
    return strata_fail(err, STRATA_E_NOTFOUND,
                       "model '%s' has no spatial layer '%s'; the spatial layers are %s%s",
                       mg->m->id, name, list, used >= sizeof list - 40 ? ", ..." : "");
}
