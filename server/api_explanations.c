/*
 * api_explanations.c — LIME explanations as the API serves them:
 * building one (JSON + overlay and heat-map PNGs) from a LIME result, and
 *   GET /api/explanations/{eid}, …/overlay.png, …/heatmap.png
 * for the explanations of uploads ("e<n>") and of dataset images
 * ("<model>~<index>"), both kept in the bounded store of expl_store.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "blob.h"
#include "expl_store.h"
#include "json.h"
#include "lime.h"
#include "registry.h"
#include "state.h"
#include "url.h"

/* Scales img so that its longer side is EXPLANATION_DISPLAY_SIDE and
 * encodes it as PNG into a new blob. */
static int display_png(const struct image *img, struct blob **out, int *w, int *h, char *err)
{
    int side = img->w > img->h ? img->w : img->h;
    *w = (img->w * EXPLANATION_DISPLAY_SIDE + side / 2) / side;
    *h = (img->h * EXPLANATION_DISPLAY_SIDE + side / 2) / side;
    struct image big = {0};
    uint8_t *png = NULL;
    size_t len = 0;
    int rc = image_resize(img, *w < 1 ? 1 : *w, *h < 1 ? 1 : *h, &big, err);
    if (rc == 0)
        rc = image_encode_png(&big, &png, &len, err);
    if (rc == 0 && !(*out = blob_new(png, len)))
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory");
    free(png);
    image_free(&big);
    return rc;
}

/* One to three sentences a person reads under the pictures. Class names
 * are quoted, without an article: they are nouns like "buildings" or
 * "sea" as much as "tiger". */
static void describe(char *out, size_t len, const char *cls, double prob, const char *truth,
                     double score)
{
    size_t n = (size_t)snprintf(out, len, "Taken for \xe2\x80\x9c%s\xe2\x80\x9d (%.0f\xc2\xa0%%).", cls,
                                100 * prob);
    if (n < len && truth)
        n += (size_t)snprintf(out + n, len - n,
                              strcmp(truth, cls) == 0 ? " Right: it is \xe2\x80\x9c%s\xe2\x80\x9d."
                                                     : " It is \xe2\x80\x9c%s\xe2\x80\x9d.",
                              truth);
    if (n < len)
        snprintf(out + n, len - n,
                 score >= 0.5 ? " The outlined regions pushed the model towards \xe2\x80\x9c%s\xe2\x80\x9d most; the "
                                "explanation fits the model well here (R² %.2f)."
                              : " The outlined regions pushed the model towards \xe2\x80\x9c%s\xe2\x80\x9d most; read "
                                "them with care, the explanation fits the model only roughly "
                                "here (R² %.2f).",
                 cls, score);
}

int explanation_build(const struct app_model *am, const char *id, const struct lime_result *res,
                      const struct image *resized, const char *image_id, int truth,
                      struct explanation **out, char *err)
{
    *out = NULL;
    const struct lime_class *lc = &res->classes[0];
    const struct model *m = &am->m;
    struct explanation *e = calloc(1, sizeof *e);
    if (!e)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    atomic_init(&e->refs, 1);
    snprintf(e->id, sizeof e->id, "%s", id);

    struct image overlay = {0}, heat = {0};
    struct lime_overlay_opts oo;
    lime_overlay_opts_default(&oo);
    int w = 0, h = 0;
    int rc = lime_render_overlay(res, resized->rgb, lc->label, &oo, &overlay, NULL, err);
    if (rc == 0)
        rc = lime_render_heatmap(res, resized->rgb, lc->label, &heat, err);
    if (rc == 0)
        rc = display_png(&overlay, &e->overlay, &w, &h, err);
    if (rc == 0)
        rc = display_png(&heat, &e->heatmap, &w, &h, err);
    image_free(&overlay);
    image_free(&heat);
    if (rc < 0) {
        explanation_unref(e);
        return rc;
    }

    char seg[200], base[240], url_o[280], url_h[280], text[600];
    snprintf(base, sizeof base, "/api/explanations/%s", url_segment(id, seg, sizeof seg));
    snprintf(url_o, sizeof url_o, "%s/overlay.png", base);
    snprintf(url_h, sizeof url_h, "%s/heatmap.png", base);
    const char *cls = m->classes[lc->label];
    const char *truth_name = truth >= 0 && truth < m->n_classes ? m->classes[truth] : NULL;
    describe(text, sizeof text, cls, lc->prob, truth_name, lc->score);

    json_t *weights = json_array();
    for (int i = 0; weights && i < lc->n_features; i++)
        json_array_append_new(weights, json_pack("{s:i, s:f}", "segment", lc->features[i].segment,
                                                 "weight", lc->features[i].weight));
    json_t *j = json_pack(
        "{s:s, s:s, s:o, s:s, s:i, s:f, s:o, s:o, s:f, s:o, s:o, s:i, s:i, "
        "s:{s:f, s:f, s:f, s:f, s:f}, s:s, s:s, s:s, s:[i, i], s:s}",
        "id", id, "model", am->id, "image", image_id ? json_str(image_id) : json_null(), "class",
        cls, "label", lc->label, "probability", (double)lc->prob, "true",
        truth_name ? json_string(truth_name) : json_null(), "weights", weights, "intercept",
        lc->intercept, "score", json_number_or_null(lc->score), "local_pred",
        json_number_or_null(lc->local_pred), "segments", res->n_segments, "samples",
        res->num_samples, "timings_ms", "segmentation", res->ms_segment, "perturbation",
        res->ms_perturb, "inference", res->ms_classify, "regression", res->ms_regression, "total",
        res->ms_total, "url", base, "overlay", url_o, "heatmap", url_h, "display_size", w, h,
        "description", text);
    e->json = blob_json_steal(j);
    if (!e->json) {
        explanation_unref(e);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    }
    *out = e;
    return 0;
}

static void explanation_unref_cb(void *cls)
{
    explanation_unref(cls);
}

int explanation_reply(const struct request *req, struct response *res, struct explanation *e,
                      int part)
{
    const struct blob *b = part == 0 ? e->json : part == 1 ? e->overlay : e->heatmap;
    const char *type = part == 0 ? "application/json" : "image/png";
    if (http_etag_match(request_header(req, "If-None-Match"), b->etag)) {
        response_empty(res, 304);
    } else {
        atomic_fetch_add(&e->refs, 1); /* dropped when the bytes are sent */
        response_bytes(res, 200, type, b->data, b->len, explanation_unref_cb, e);
    }
    response_header(res, "ETag", "%s", b->etag);
    /* An explanation never changes under its id. */
    response_header(res, "Cache-Control", "private, max-age=3600");
    return 0;
}

void app_lime_params(struct lime_params *p)
{
    lime_params_default(p);
    p->batch_size = 100;
}

/* The explanation with that id — an upload's "e<n>" or a dataset image's
 * "<model>~<index>" — with a new reference (explanation_unref), or NULL. */
static struct explanation *explanation_get(struct app *app, const char *id)
{
    char *end;
    if (id[0] == 'e' && id[1] >= '1' && id[1] <= '9') {
        errno = 0;
        unsigned long long n = strtoull(id + 1, &end, 10);
        if (errno || *end)
            return NULL;
        return expl_store_get(app->store, n);
    }
    /* A dataset image's: "<model>~<index>" (model ids never hold '~'). */
    const char *tilde = strrchr(id, '~');
    if (!tilde || tilde == id || tilde[1] < '0' || tilde[1] > '9')
        return NULL;
    char model[64];
    size_t ml = (size_t)(tilde - id);
    if (ml >= sizeof model)
        return NULL;
    memcpy(model, id, ml);
    model[ml] = '\0';
    struct app_model *am = app_model_get(app, model);
    if (!am || atomic_load_explicit(&am->state, memory_order_acquire) != APP_READY) {
        app_model_put(am);
        return NULL;
    }
    int i = analysis_parse_index(tilde + 1, am->a.n);
    struct explanation *e = i < 0 ? NULL : expl_store_image_get(app->store, am->expl, i);
    app_model_put(am);
    return e;
}

static int reply_part(const struct request *req, struct response *res, int part)
{
    struct app *app = req->app;
    const char *id = request_param(req, "eid");
    struct explanation *e = id ? explanation_get(app, id) : NULL;
    if (!e)
        return response_error(res, 404, "not_found",
                              "no explanation \"%.100s\": the server keeps the last %d uploads' "
                              "explanations; post the image again",
                              id ? id : "", app->cfg.max_explanations);
    explanation_reply(req, res, e, part);
    explanation_unref(e);
    return 0;
}

int handle_explanation(const struct request *req, struct response *res)
{
    return reply_part(req, res, 0);
}

int handle_explanation_overlay(const struct request *req, struct response *res)
{
    return reply_part(req, res, 1);
}

int handle_explanation_heatmap(const struct request *req, struct response *res)
{
    return reply_part(req, res, 2);
}
