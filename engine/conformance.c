/*
 * conformance.c — one ONNX backend test case against strata's graph
 * executor (see conformance.h).
 */
#include "conformance.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "graph.h"
#include "onnx.h"

#define MAX_IO 16

static void verdict(struct conformance_result *r, enum conformance_verdict v, const char *why)
{
    r->verdict = v;
    snprintf(r->reason, sizeof r->reason, "%s", why);
}

/* The sorted, de-duplicated op types of g into r->ops. */
static void list_ops(const struct graph *g, struct conformance_result *r)
{
    const char *seen[64];
    int n = 0;
    for (int i = 0; i < g->n_nodes && n < 64; i++) {
        int dup = 0;
        for (int j = 0; j < n && !dup; j++)
            dup = strcmp(seen[j], g->nodes[i].op_type) == 0;
        if (!dup)
            seen[n++] = g->nodes[i].op_type;
    }
    for (int a = 1; a < n; a++) /* insertion sort: a handful of names */
        for (int b = a; b > 0 && strcmp(seen[b - 1], seen[b]) > 0; b--) {
            const char *t = seen[b];
            seen[b] = seen[b - 1];
            seen[b - 1] = t;
        }
    size_t used = 0;
    r->ops[0] = 0;
    for (int i = 0; i < n && used < sizeof r->ops; i++)
        used += (size_t)snprintf(r->ops + used, sizeof r->ops - used, "%s%s", i ? "," : "",
                                 seen[i]);
}

static int read_io(const char *dir, const char *kind, struct tview *t, int max, int *n,
                   char *err)
{
    *n = 0;
    for (int i = 0; i < max; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/test_data_set_0/%s_%d.pb", dir, kind, i);
        if (access(path, F_OK) != 0)
            break;
        int rc = onnx_read_tensor(&t[i], path, err);
        if (rc < 0)
            return rc;
        *n = i + 1;
    }
    return 0;
}

/* The test cases feed as graph inputs what real models store as constants:
 * int64 shapes, axes, pads and indices, and scalar parameters (Clip's min and
 * max, Pad's value). Those inputs become initializers, as an exporter would
 * write them; float tensors of rank >= 1 stay inputs, so the ops' batch path
 * is what is tested. Returns the number of inputs left, compacted in `in`. */
static int fold_known_inputs(struct graph *g, struct tview *in, int n_in)
{
    int kept = 0;
    for (int i = 0; i < n_in; i++) {
        int v = g->inputs[i];
        if (in[i].dtype == DTYPE_INT64 || in[i].ndim == 0) {
            g->values[v].kind = VALUE_INITIALIZER;
            g->values[v].init = in[i]; /* the graph owns the data now */
            continue;
        }
        g->inputs[kept] = v;
        in[kept++] = in[i];
    }
    for (int i = kept; i < n_in; i++)
        memset(&in[i], 0, sizeof in[i]);
    g->n_inputs = kept;
    return kept;
}

/* Compares got with want elementwise; NaN matches NaN. */
static int compare(const struct tview *got, const struct tview *want, double *max_error,
                   char *why, size_t len)
{
    char a[96], b[96];
    if (got->ndim != want->ndim || tview_count(got) != tview_count(want)) {
        snprintf(why, len, "shape %s, expected %s", dims_format(got, a, sizeof a),
                 dims_format(want, b, sizeof b));
        return -1;
    }
    for (int d = 0; d < got->ndim; d++)
        if (got->dims[d] != want->dims[d]) {
            snprintf(why, len, "shape %s, expected %s", dims_format(got, a, sizeof a),
                     dims_format(want, b, sizeof b));
            return -1;
        }
    if (got->dtype != want->dtype) {
        snprintf(why, len, "element type differs from the reference");
        return -1;
    }
    int64_t n = tview_count(got);
    for (int64_t i = 0; i < n; i++) {
        double g = got->dtype == DTYPE_FLOAT ? tview_f(got)[i] : (double)tview_i(got)[i];
        double w = want->dtype == DTYPE_FLOAT ? tview_f(want)[i] : (double)tview_i(want)[i];
        if (isnan(g) && isnan(w))
            continue;
        double e = fabs(g - w);
        if (!(e <= CONFORMANCE_ATOL + CONFORMANCE_RTOL * fabs(w)) && !(isinf(g) && g == w)) {
            snprintf(why, len, "element %lld is %.9g, expected %.9g", (long long)i, g, w);
            if (!isnan(e) && e > *max_error)
                *max_error = e;
            return -1;
        }
        if (!isinf(g) && e > *max_error)
            *max_error = e;
    }
    return 0;
}

void conformance_run(const char *dir, struct conformance_result *r)
{
    memset(r, 0, sizeof *r);
    char path[1200], err[STRATA_ERR_LEN];
    struct graph g = {0};
    struct graph_ws ws = {0};
    struct tview in[MAX_IO] = {{0}}, want[MAX_IO] = {{0}};
    int n_in = 0, n_want = 0;
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    int rc = onnx_load(&g, path, err);
    if (rc < 0) {
        verdict(r, rc == STRATA_E_UNSUPPORTED ? CONFORMANCE_SKIP : CONFORMANCE_FAIL, err);
        goto done;
    }
    list_ops(&g, r);
    if ((rc = read_io(dir, "input", in, MAX_IO, &n_in, err)) < 0 ||
        (rc = read_io(dir, "output", want, MAX_IO, &n_want, err)) < 0) {
        verdict(r, rc == STRATA_E_UNSUPPORTED ? CONFORMANCE_SKIP : CONFORMANCE_FAIL, err);
        goto done;
    }
    if (n_in != g.n_inputs || n_want != g.n_outputs) {
        snprintf(err, sizeof err, "the case gives %d inputs and %d outputs; the model has %d and %d",
                 n_in, n_want, g.n_inputs, g.n_outputs);
        verdict(r, CONFORMANCE_FAIL, err);
        goto done;
    }
    n_in = fold_known_inputs(&g, in, n_in);
    if ((rc = graph_ws_init(&ws, &g, in, 0, err)) < 0 || (rc = graph_run(&ws, in, err)) < 0) {
        verdict(r, rc == STRATA_E_UNSUPPORTED ? CONFORMANCE_SKIP : CONFORMANCE_FAIL, err);
        goto done;
    }
    for (int o = 0; o < n_want; o++) {
        char why[300];
        if (compare(graph_value_view(&ws, g.outputs[o]), &want[o], &r->max_error, why,
                    sizeof why) < 0) {
            snprintf(err, sizeof err, "output '%s': %s", g.values[g.outputs[o]].name, why);
            verdict(r, CONFORMANCE_FAIL, err);
            goto done;
        }
    }
    verdict(r, CONFORMANCE_PASS, "");
done:
    graph_ws_free(&ws);
    graph_deinit(&g);
    for (int i = 0; i < MAX_IO; i++) {
        free(in[i].data);
        free(want[i].data);
    }
}
