/*
 * api_predict.c — POST /api/models/{id}/predict[?explain=0]: an uploaded
 * photo through the model, and where it lands in every layer's clusters.
 *
 * The body is the image, raw (image/jpeg, image/png) or as the multipart
 * field "image" (router.h's request_image_body). Everything CPU-heavy —
 * decoding (with the decoder's size limits), the forward pass, LIME — runs
 * as one job on the worker pool, so at most `workers` uploads compute at a
 * time and a full queue answers 503 at once. The forward pass uses a batch-1
 * workspace taken from the model's free list (allocating one costs more
 * than the forward pass of a small model); analysis_locate then reduces each
 * layer's output as the bundle did and finds the nearest centre and the PCA
 * point; the doubt model, once calibrated, scores the same forward pass
 * (doubt.h). LIME, unless ?explain=0, goes into the bounded explanation store
 * and the reply carries its id and URLs.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "explain.h"
#include "infer.h"
#include "json.h"

enum predict_stage { STAGE_DECODE, STAGE_FORWARD };

struct predict_job {
    struct app *app;
    struct app_model *am;
    const unsigned char *data;
    size_t len;
    int explain;
    /* results */
    int rc, stage;
    char err[STRATA_ERR_LEN];
    int width, height;
    float *probs;               /* [n_classes] */
    struct analysis_point *pts; /* [n_layers] */
    struct doubt_result *doubt; /* scored when the model has a doubt model */
    int has_doubt;
    char doubt_err[STRATA_ERR_LEN];
    unsigned long long expl_n;  /* 0: no explanation */
    char expl_err[STRATA_ERR_LEN];
    double ms_decode, ms_forward, ms_lime;
};

/* LIME of the predicted class, stored as upload explanation e<n>. A
 * failure here leaves the prediction intact (expl_err says why). LIME stops
 * early when the job is cancelled (a timeout, or the client left). */
static void explain_upload(struct predict_job *j, const struct image *img, int label,
                           const atomic_int *cancel)
{
    struct lime_params lp;
    app_lime_params(&lp);
    lp.cancel = cancel;
    struct lime_result lr = {0};
    struct image small = {0};
    struct explanation *e = NULL;
    int rc = explain_image(&j->am->m, img, &lp, &label, 1, &lr, &small, j->expl_err);
    if (rc == 0) {
        unsigned long long n = app_store_reserve(j->app);
        char id[32];
        snprintf(id, sizeof id, "e%llu", n);
        rc = explanation_build(j->am, id, &lr, &small, NULL, -1, &e, j->expl_err);
        if (rc == 0) {
            app_store_put(j->app, n, e);
            j->expl_n = n;
        }
    }
    lime_result_free(&lr);
    image_free(&small);
}

static int run_predict(void *arg, const atomic_int *cancel)
{
    struct predict_job *j = arg;
    struct model *m = &j->am->m;
    struct image img = {0};
    double t0 = app_now_ms();
    j->stage = STAGE_DECODE;
    j->rc = image_decode(j->data, j->len, &img, j->err);
    double t1 = app_now_ms();
    j->ms_decode = t1 - t0;
    if (j->rc < 0)
        return 0;
    j->width = img.w;
    j->height = img.h;

    j->stage = STAGE_FORWARD;
    struct model_workspace *ws = app_workspace_take(j->am, j->err);
    if (!ws) {
        j->rc = STRATA_E_NOMEM;
        image_free(&img);
        return 0;
    }
    j->rc = model_preprocess(m, &img, ws->input, j->err);
    if (j->rc == 0) {
        model_forward(m, ws, ws->input, 1, 0);
        memcpy(j->probs, model_output(ws, m->n_layers - 1), (size_t)m->n_classes * sizeof(float));
        j->rc = analysis_locate(&j->am->a, m, ws, 0, j->pts, j->err);
        const struct doubt_model *dm =
            atomic_load_explicit(&j->am->doubt, memory_order_acquire);
        if (j->rc == 0 && dm)
            j->has_doubt = doubt_score(dm, m, &j->am->a, ws, 0, j->doubt, j->doubt_err) == 0;
        else if (j->rc == 0)
            snprintf(j->doubt_err, sizeof j->doubt_err, "%s",
                     atomic_load(&j->am->doubt_state) == APP_DOUBT_PENDING
                         ? "the doubt model is being calibrated"
                         : j->am->doubt_note);
    }
    app_workspace_give(j->am, ws);
    double t2 = app_now_ms();
    j->ms_forward = t2 - t1;

    if (j->rc == 0 && j->explain) {
        if (job_cancelled(cancel))
            snprintf(j->expl_err, sizeof j->expl_err,
                     "skipped: the request timed out or its client left");
        else
            explain_upload(j, &img, infer_argmax(j->probs, m->n_classes), cancel);
        j->ms_lime = app_now_ms() - t2;
    }
    image_free(&img);
    return 0;
}

/* The doubt of this prediction (doubt.h): the score, its level, the
 * baselines and what each probed layer says. */
static json_t *doubt_json(const struct app_model *am, const struct doubt_result *d)
{
    const struct model *m = &am->m;
    json_t *layers = json_array();
    for (int l = 0; layers && l < d->n_layers; l++) {
        const struct doubt_layer_view *v = &d->layers[l];
        json_array_append_new(
            layers,
            json_pack("{s:i, s:s, s:i, s:o, s:s, s:f, s:b, s:f, s:f}", "index", v->layer, "name",
                      v->name, "cluster", v->cluster, "cluster_class",
                      v->cluster_class >= 0 ? json_string(m->classes[v->cluster_class])
                                            : json_null(),
                      "neighbour_class", m->classes[v->neighbour_class], "agreement",
                      (double)v->agreement, "agrees", v->agrees, "distance", (double)v->dist,
                      "dist_percentile", (double)v->dist_percentile));
    }
    return json_pack("{s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "score",
                     json_number_or_null(d->doubt), "level", doubt_level_name(d->level),
                     "credibility", json_number_or_null(d->credibility), "nonconformity",
                     json_number_or_null(d->nonconformity), "msp", json_number_or_null(d->msp),
                     "energy", json_number_or_null(d->energy), "explanation", json_str(d->explanation),
                     "layers", layers);
}

static json_t *reply_json(const struct predict_job *j)
{
    const struct app_model *am = j->am;
    const struct analysis *a = &am->a;
    const struct model *m = &am->m;
    int pred = infer_argmax(j->probs, m->n_classes);

    json_t *probs = json_array();
    for (int c = 0; probs && c < m->n_classes; c++)
        json_array_append_new(probs, json_pack("{s:s, s:f}", "class", m->classes[c],
                                               "probability", (double)j->probs[c]));
    json_t *layers = json_array();
    for (int l = 0; layers && l < a->n_layers; l++) {
        const struct analysis_layer *L = &a->layers[l];
        const struct analysis_point *p = &j->pts[l];
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
        json_array_append_new(clusters, json_integer(j->pts[am->dims[d]].cluster));

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
        (double)j->probs[pred], "probabilities", probs, "layers", layers, "path", "clusters",
        clusters, "pred", pred, "doubt",
        j->has_doubt ? doubt_json(am, j->doubt) : json_null(), "explanation", expl,
        "image", "width", j->width, "height", j->height, "timings_ms", "decode", j->ms_decode,
        "forward", j->ms_forward, "lime", j->ms_lime);
    if (r && j->explain && !j->expl_n)
        json_object_set_new(r, "explanation_error", json_str(j->expl_err));
    if (r && !j->has_doubt)
        json_object_set_new(r, "doubt_error", json_str(j->doubt_err));
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
    struct app_model *am = app_model_or_404(req, res);
    if (!am || !app_require_ready(am, res))
        return 0;
    const char *eq = request_query(req, "explain");
    int explain = parse_flag(eq);
    if (explain < 0)
        return response_error(res, 400, "bad_parameter",
                              "explain must be 0 or 1 (false or true), got \"%.40s\"", eq);
    char err[STRATA_ERR_LEN];
    struct upload up;
    int rc = request_image_body(req, "image", &up, err);
    if (rc < 0)
        return response_fail(res, rc, err);

    struct predict_job j = {.app = req->app, .am = am, .data = up.data, .len = up.len,
                            .explain = explain};
    j.probs = malloc((size_t)am->m.n_classes * sizeof(float));
    j.pts = malloc((size_t)am->a.n_layers * sizeof *j.pts);
    j.doubt = malloc(sizeof *j.doubt); /* ~5 KB: kept off the connection thread's stack */
    if (!j.probs || !j.pts || !j.doubt) {
        free(j.probs);
        free(j.pts);
        free(j.doubt);
        return response_error(res, 503, "out_of_memory", "the server is out of memory");
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
        else if (j.stage == STAGE_DECODE && j.rc == STRATA_E_LIMIT)
            response_error(res, 400, "image_too_large", "%s", j.err);
        else if (j.stage == STAGE_DECODE)
            response_error(res, 400, "bad_image", "the upload is not a readable image: %s", j.err);
        else
            response_error(res, 500, "internal", "prediction failed: %s", j.err);
    }
    free(j.probs);
    free(j.pts);
    free(j.doubt);
    return 0;
}
