/*
 * api_predict.c — POST /api/models/{id}/predict[?explain=0]: an uploaded
 * photo through the model, and where it lands in every layer's clusters.
 *
 * The body is the image, raw (image/jpeg, image/png) or as the multipart
 * field "image" (multipart.h's request_image_body). The question itself —
 * decoding with the decoder's size limits, the forward pass, the nearest
 * cluster and PCA point per layer, the doubt, LIME — is the engine's
 * (question.h), the same as `strata predict` asks; it runs as one job on the
 * worker pool, so at most `workers` uploads compute at a time and a full
 * queue answers 503 at once. The forward pass uses a batch-1 workspace
 * taken from the model's free list (allocating one costs more than the
 * forward pass of a small model). LIME, unless ?explain=0, goes into the
 * bounded explanation store and the reply carries its id and URLs.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "expl_store.h"
#include "json.h"
#include "lime.h"
#include "multipart.h"
#include "question.h"
#include "readfile.h"
#include "registry.h"
#include "resource.h"
#include "state.h"

struct predict_job {
    struct app *app;
    struct app_model *am;
    const unsigned char *data; /* the upload, or NULL for a dataset image */
    size_t len;
    int index;                 /* dataset image (?image=), or -1 */
    int explain;
    int n_at; /* ?k<layer>=<k>: where the upload falls at layers re-clustered with another k */
    struct {
        int layer, k, cluster;
    } at[MODEL_MAX_LAYERS];
    /* results */
    int rc;
    char err[STRATA_ERR_LEN];
    struct question_answer a;  /* its doubt_error also says why a model has no doubt yet */
    unsigned long long expl_n; /* 0: no explanation */
    double ms_lime;            /* LIME and the explanation's images */
};

/* The answer's LIME, stored as upload explanation e<n>. A failure here
 * leaves the prediction intact (explain_error says why). */
static void store_explanation(struct predict_job *j)
{
    unsigned long long n = expl_store_reserve(j->app->store);
    char id[32];
    snprintf(id, sizeof id, "e%llu", n);
    struct explanation *e = NULL;
    if (explanation_build(j->am, id, &j->a.lime, &j->a.resized, NULL, -1, &e,
                          j->a.explain_error) == 0) {
        expl_store_put(j->app->store, n, e);
        j->expl_n = n;
    }
}

static int run_predict(void *arg, const atomic_int *cancel)
{
    struct predict_job *j = arg;
    struct app_model *am = j->am;
    struct lime_params lp;
    app_lime_params(&lp);
    lp.cancel = cancel; /* LIME stops early on a timeout, or when the client left */
    const struct question q = {
        .analysis = &am->a,
        .doubt = atomic_load_explicit(&am->doubt, memory_order_acquire),
        .lime = j->explain ? &lp : NULL,
    };
    uint8_t *file = NULL; /* a dataset image's bytes, read here */
    if (j->index >= 0) {
        char path[2200];
        size_t len = 0;
        j->rc = app_image_path(am, j->index, path, sizeof path) < 0
                    ? strata_fail(j->err, STRATA_E_NOTFOUND, "image %d has no usable file name",
                                  j->index)
                    : read_whole_file(path, (size_t)64 << 20, &file, &len, j->err);
        if (j->rc < 0)
            return 0;
        j->data = file;
        j->len = len;
    }
    struct model_workspace *ws = app_workspace_take(am, j->err);
    if (!ws) {
        j->rc = STRATA_E_NOMEM;
        free(file);
        return 0;
    }
    j->rc = question_ask(&am->m, ws, j->data, j->len, &q, &j->a, j->err);
    free(file);
    j->data = NULL;
    /* ws still holds the upload's forward pass (LIME runs on its own) */
    for (int i = 0; j->rc == 0 && i < j->n_at; i++) {
        const struct analysis_clustering *c;
        j->rc = app_layer_clustering(am, j->at[i].layer, j->at[i].k, &c, j->err);
        if (j->rc == 0)
            j->rc = analysis_locate_in(&am->a, &am->m, ws, 0, j->at[i].layer, c,
                                       &j->at[i].cluster, j->err);
    }
    app_workspace_give(am, ws);
    if (j->rc == 0 && !q.doubt)
        snprintf(j->a.doubt_error, sizeof j->a.doubt_error, "%s",
                 atomic_load(&am->doubt_state) == APP_DOUBT_PENDING
                     ? "the doubt model is being calibrated"
                     : am->doubt_note);
    j->ms_lime = j->a.ms_explain;
    if (j->a.explained) {
        double t = app_now_ms();
        store_explanation(j);
        j->ms_lime += app_now_ms() - t;
    }
    return 0;
}

static json_t *reply_json(const struct predict_job *j)
{
    const struct app_model *am = j->am;
    const struct analysis *a = &am->a;
    const struct model *m = &am->m;
    const struct question_answer *qa = &j->a;
    int pred = qa->predicted;

    json_t *probs = json_array();
    for (int c = 0; probs && c < m->n_classes; c++)
        json_array_append_new(probs, json_pack("{s:s, s:f}", "class", m->classes[c],
                                               "probability", (double)qa->probs[c]));
    json_t *layers = json_array();
    for (int l = 0; layers && l < a->n_layers; l++) {
        const struct analysis_layer *L = &a->layers[l];
        const struct analysis_point *p = &qa->points[l];
        int maj = L->c.cluster_majority[p->cluster];
        json_array_append_new(
            layers, json_pack("{s:i, s:s, s:i, s:o, s:o, s:o, s:o, s:o, s:i}", "index", l, "name",
                              L->name, "cluster", p->cluster, "distance",
                              json_number_or_null(sqrt((double)p->dist2)), "typical_distance",
                              json_number_or_null(sqrt((double)L->c.dist_stats[p->cluster].q50)),
                              "x", json_number_or_null(p->x), "y", json_number_or_null(p->y),
                              "cluster_majority",
                              maj >= 0 ? json_string(a->classes[maj]) : json_null(),
                              "cluster_size", L->c.sizes[p->cluster]));
    }
    json_t *clusters = json_array();
    for (int d = 0; clusters && d < am->n_dims; d++)
        json_array_append_new(clusters, json_integer(qa->points[am->dims[d]].cluster));

    json_t *at = json_array();
    for (int i = 0; at && i < j->n_at; i++)
        json_array_append_new(at, json_pack("{s:i, s:i, s:i}", "layer", j->at[i].layer, "k",
                                            j->at[i].k, "cluster", j->at[i].cluster));

    json_t *expl = json_null();
    if (j->expl_n) {
        char id[32], base[64], overlay[96], heatmap[96];
        snprintf(id, sizeof id, "e%llu", j->expl_n);
        snprintf(base, sizeof base, "/api/explanations/%s", id);
        snprintf(overlay, sizeof overlay, "%s/overlay.png", base);
        snprintf(heatmap, sizeof heatmap, "%s/heatmap.png", base);
        expl = json_pack("{s:s, s:s, s:s, s:s}", "id", id, "url", base, "overlay", overlay,
                         "heatmap", heatmap);
    }
    json_t *r = json_pack(
        "{s:s, s:s, s:i, s:f, s:o, s:o, s:{s:o, s:i}, s:o, s:o, s:{s:i, s:i}, "
        "s:{s:f, s:f, s:f}}",
        "model", am->id, "predicted", m->classes[pred], "label", pred, "probability",
        (double)qa->probs[pred], "probabilities", probs, "layers", layers, "path", "clusters",
        clusters, "pred", pred, "doubt", qa->doubt ? doubt_result_json(qa->doubt, m) : json_null(),
        "explanation", expl, "image", "width", qa->width, "height", qa->height, "timings_ms",
        "decode", qa->ms_decode, "forward", qa->ms_forward, "lime", j->ms_lime);
    if (r)
        json_object_set_new(r, "clusters_at", at);
    else
        json_decref(at);
    if (r && j->explain && !j->expl_n)
        json_object_set_new(r, "explanation_error", json_str(qa->explain_error));
    if (r && !qa->doubt)
        json_object_set_new(r, "doubt_error", json_str(qa->doubt_error));
    return r;
}

/* ?explain= : absent, 1, true, yes -> 1; 0, false, no -> 0; else -1. */
static int parse_flag(const char *v)
{
    if (!v || !strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes") || !v[0])
        return 1;
    if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no"))
        return 0;
    return -1;
}

int handle_predict(const struct request *req, struct response *res)
{
    struct app_model *am = req->model; /* the route's APP_NEEDS_ANALYSIS: READY */
    const char *eq = request_query(req, "explain");
    int explain = parse_flag(eq);
    if (explain < 0)
        return response_error(res, 400, "bad_parameter",
                              "explain must be 0 or 1 (false or true), got \"%.40s\"", eq);
    struct upload up = {0};
    int index;
    if (app_image_of_request(req, res, am, &index, &up) < 0)
        return 0;

    struct predict_job j = {.app = req->app, .am = am, .data = up.data, .len = up.len,
                            .index = index, .explain = explain};
    /* k<layer>=<k>: the upload's cluster at that layer clustered with k */
    const struct analysis *a = &am->a;
    int k_hi = a->n < ANALYSIS_DEFAULT_K_MAX ? a->n : ANALYSIS_DEFAULT_K_MAX;
    for (size_t i = 0; i < req->n_query; i++) {
        const char *name = req->query[i].name, *v = req->query[i].value;
        if (name[0] != 'k' || name[1] < '0' || name[1] > '9')
            continue;
        int layer = analysis_parse_index(name + 1, a->n_layers);
        int k = analysis_parse_index(v, k_hi + 1);
        if (layer < 0 || k < 1)
            return response_error(res, 400, "bad_parameter",
                                  "%.20s=%.20s: k<layer>=<k> takes a layer index 0..%d and a k "
                                  "from 1 to %d, in plain digits",
                                  name, v, a->n_layers - 1, k_hi);
        if (j.n_at == MODEL_MAX_LAYERS)
            return response_error(res, 400, "bad_parameter", "at most %d k<layer> parameters",
                                  MODEL_MAX_LAYERS);
        j.at[j.n_at].layer = layer;
        j.at[j.n_at++].k = k;
    }
    if (app_run_job(req, run_predict, &j, res) == 0) {
        if (j.rc == 0 && j.explain && !j.expl_n && request_client_gone(req))
            /* LIME stopped because the client shut its side: the answer it
             * asked for is not there (docs/api.md) */
            response_error(res, 503, "cancelled",
                           "the connection was closed before the explanation was ready");
        else if (j.rc == 0)
            response_json(res, 200, reply_json(&j));
        else if (j.rc == STRATA_E_INTERRUPTED)
            response_error(res, 503, "timeout", "the prediction took too long; retry");
        else if (j.rc == STRATA_E_NOMEM)
            response_error(res, 503, "out_of_memory", "the server is out of memory: %s", j.err);
        else if (j.index >= 0 && j.a.stage == QUESTION_DECODE)
            response_error(res, 500, "internal", "the dataset image cannot be read: %s", j.err);
        else if (j.a.stage == QUESTION_DECODE && j.rc == STRATA_E_LIMIT)
            response_error(res, 400, "image_too_large", "%s", j.err);
        else if (j.a.stage == QUESTION_DECODE)
            response_error(res, 400, "bad_image", "the upload is not a readable image: %s", j.err);
        else
            response_error(res, 500, "internal", "prediction failed: %s", j.err);
    }
    question_answer_free(&j.a);
    return 0;
}
