/*
 * api_explain.c — POST /api/models/{id}/explain: one prediction explained
 * by several methods side by side (attribution.h), each with its deletion
 * and insertion curves, for any class.
 *
 * The image is the body (raw image/jpeg or image/png, or the multipart field
 * "image"), or, with ?image=<index | class/file>, one of the analysed split's
 * images (the body is then ignored). Query parameters:
 *   method    comma-separated gradcam, ig, occlusion, lime, or all (default)
 *   class     the class explained (default: the predicted one)
 *   layer     Grad-CAM's layer (default: the last spatial one)
 *   steps     Integrated Gradients' steps, 1..256 (default 32)
 *   baseline  black (default) or blur
 *   patch, stride   occlusion's, in pixels of the model's input
 * A random map is always added: the yardstick the page compares with.
 *
 * Maps come back as numbers, not pictures, so that the page draws them with
 * its own colour scale: at most EXPLAIN_MAP_SIDE per side (area averages of
 * the model's input when it is larger), as integers from −1000 to 1000 of
 * the map's scale (max |value|). The work runs as one job on the worker pool.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "attribution.h"
#include "json.h"
#include "lime.h"
#include "multipart.h"
#include "resource.h"
#include "state.h"

#define EXPLAIN_MAP_SIDE 112
#define EXPLAIN_MAX_STEPS 256

struct explain_job {
    struct app_model *am;
    const unsigned char *data; /* the upload, or NULL for a dataset image */
    size_t len;
    int index;                 /* dataset image, or -1 */
    struct attribution_params p;
    int rc, decoding;
    char err[STRATA_ERR_LEN];
    struct attribution_result r;
};

static int run_explain(void *arg, const atomic_int *cancel)
{
    struct explain_job *j = arg;
    struct image img = {0};
    j->p.lime.cancel = cancel;
    if (j->index >= 0) {
        char path[2200];
        j->rc = app_image_path(j->am, j->index, path, sizeof path) < 0
                    ? strata_fail(j->err, STRATA_E_NOTFOUND, "image %d has no usable file name", j->index)
                    : image_load(path, &img, j->err);
    }
    else {
        j->decoding = 1;
        j->rc = image_decode(j->data, j->len, &img, j->err);
    }
    if (j->rc < 0)
        return 0;
    j->decoding = 0;
    if (job_cancelled(cancel))
        j->rc = strata_fail(j->err, STRATA_E_INTERRUPTED, "cancelled");
    else
        j->rc = attribution_explain(&j->am->m, &img, &j->p, &j->r, j->err);
    image_free(&img);
    return 0;
}

/* The map at most EXPLAIN_MAP_SIDE per side, as integers of its scale. */
static json_t *map_json(const struct attribution_map *am, int w, int h)
{
    int f = 1;
    while ((w + f - 1) / f > EXPLAIN_MAP_SIDE || (h + f - 1) / f > EXPLAIN_MAP_SIDE)
        f++;
    const int ow = (w + f - 1) / f, oh = (h + f - 1) / f;
    json_t *values = json_array();
    for (int y = 0; values && y < oh; y++)
        for (int x = 0; x < ow; x++) {
            double sum = 0;
            int n = 0;
            for (int yy = y * f; yy < (y + 1) * f && yy < h; yy++)
                for (int xx = x * f; xx < (x + 1) * f && xx < w; xx++, n++)
                    sum += am->map[yy * w + xx];
            double v = am->scale > 0 ? sum / n / am->scale : 0;
            json_array_append_new(values, json_integer(lround(1000 * v)));
        }
    return json_pack("{s:i, s:i, s:f, s:o}", "width", ow, "height", oh, "scale",
                     (double)am->scale, "values", values);
}

static json_t *curve_json(const float *c)
{
    json_t *a = json_array();
    for (int k = 0; a && k <= FAITH_STEPS; k++)
        json_array_append_new(a, json_real(round(c[k] * 1e5) / 1e5));
    return a;
}

static const char *const method_titles[ATTR_N_METHODS] = {
    "Grad-CAM", "Integrated Gradients", "Occlusion", "LIME", "Random map"};

/* What the curves say, in one or two sentences. */
static void summary(char *out, size_t len, const struct attribution_result *r, const char *cls)
{
    const struct attribution_map *rnd = &r->maps[ATTR_RANDOM];
    if (r->best < 0) {
        snprintf(out, len, "No map was scored.");
        return;
    }
    const struct attribution_map *b = &r->maps[r->best];
    double score = b->faith.insertion_auc - b->faith.deletion_auc;
    size_t n = (size_t)snprintf(
        out, len,
        "The model\xe2\x80\x99s own behaviour supports %s best for \xe2\x80\x9c%s\xe2\x80\x9d here: "
        "hiding the pixels it ranks first leaves an area of %.2f under the probability curve, "
        "revealing them on a blurred copy %.2f.",
        method_titles[r->best], cls, b->faith.deletion_auc, b->faith.insertion_auc);
    if (n < len && rnd->done &&
        score <= rnd->faith.insertion_auc - rnd->faith.deletion_auc)
        snprintf(out + n, len - n,
                 " But no map does better than a random one on this image (insertion \xe2\x88\x92 "
                 "deletion %.2f against %.2f): read them with care.",
                 score, rnd->faith.insertion_auc - rnd->faith.deletion_auc);
}

static json_t *reply_json(const struct explain_job *j)
{
    const struct model *m = &j->am->m;
    const struct attribution_result *r = &j->r;
    const int W = m->input.w, H = m->input.h;
    json_t *probs = json_array();
    for (int c = 0; probs && c < m->n_classes; c++)
        json_array_append_new(probs, json_pack("{s:s, s:f}", "class", m->classes[c],
                                               "probability", (double)r->probs[c]));
    json_t *methods = json_array();
    for (int k = 0; methods && k < ATTR_N_METHODS; k++) {
        const struct attribution_map *am = &r->maps[k];
        if (!am->done)
            continue;
        json_t *o = json_pack("{s:s, s:s, s:o, s:f, s:f, s:o, s:o, s:f, s:f}", "method",
                              attribution_method_name(k), "title", method_titles[k], "map",
                              map_json(am, W, H), "deletion_auc", am->faith.deletion_auc,
                              "insertion_auc", am->faith.insertion_auc, "deletion",
                              curve_json(am->faith.deletion), "insertion",
                              curve_json(am->faith.insertion), "ms", am->ms, "ms_faithfulness",
                              am->ms_faith);
        json_t *d = NULL;
        if (k == ATTR_GRADCAM)
            d = json_pack("{s:s, s:i, s:i}", "layer", am->layer, "height", am->layer_h, "width",
                          am->layer_w);
        else if (k == ATTR_IG)
            d = json_pack("{s:i, s:s, s:f}", "steps", am->steps, "baseline",
                          j->p.ig_blurred ? "blur" : "black", "completeness_error",
                          am->ig.completeness);
        else if (k == ATTR_OCCLUSION)
            d = json_pack("{s:i, s:i}", "patch", am->patch, "stride", am->stride);
        else if (k == ATTR_LIME)
            d = json_pack("{s:o, s:i, s:i}", "score", json_number_or_null(am->lime_score),
                          "segments", am->lime_segments, "samples", j->p.lime.num_samples);
        if (o && d)
            json_object_set_new(o, "details", d);
        json_array_append_new(methods, o);
    }
    char text[600];
    summary(text, sizeof text, r, m->classes[r->label]);
    const struct analysis *a = &j->am->a;
    json_t *image = json_null(), *truth = json_null();
    if (j->index >= 0) {
        image = json_pack("{s:i, s:s}", "index", j->index, "id", a->image_ids[j->index]);
        truth = json_string(a->classes[a->labels[j->index]]);
    }
    return json_pack("{s:s, s:o, s:s, s:i, s:f, s:s, s:o, s:o, s:[i, i], s:o, s:o, s:s, "
                     "s:{s:f, s:f}}",
                     "model", j->am->id, "image", image, "class", m->classes[r->label], "label",
                     r->label, "probability", (double)r->probs[r->label], "predicted",
                     m->classes[r->predicted], "true", truth, "probabilities", probs, "input", W,
                     H, "methods", methods, "best",
                     r->best >= 0 ? json_string(attribution_method_name(r->best)) : json_null(),
                     "summary", text, "timings_ms", "gradient_setup", r->ms_gradient_setup,
                     "total", r->ms_total);
}

/* An optional integer query parameter in [lo, hi]; 0 when absent, -1 (and a
 * 400 in res) when malformed. */
static int query_int(const struct request *req, struct response *res, const char *name, int lo,
                     int hi, int *out)
{
    const char *v = request_query(req, name);
    if (!v)
        return 0;
    int x = analysis_parse_index(v, hi + 1);
    if (x < lo) {
        response_error(res, 400, "bad_parameter",
                       "%s must be an integer from %d to %d in plain digits, got \"%.40s\"", name,
                       lo, hi, v);
        return -1;
    }
    *out = x;
    return 0;
}

int handle_explain(const struct request *req, struct response *res)
{
    struct app_model *am = req->model; /* the route's APP_NEEDS_ANALYSIS: READY */
    const struct model *m = &am->m;
    struct explain_job j = {.am = am, .index = -1};
    attribution_params_default(&j.p);
    app_lime_params(&j.p.lime);
    char err[STRATA_ERR_LEN];
    const char *v;
    if ((v = request_query(req, "method")) && attribution_parse_methods(v, &j.p.methods, err) < 0)
        return response_error(res, 400, "bad_parameter", "%s", err);
    j.p.methods |= 1u << ATTR_RANDOM;
    if ((v = request_query(req, "class")) && (j.p.label = model_class_index(m, v)) < 0)
        return response_error(res, 400, "bad_parameter", "model %s has no class \"%.100s\"", am->id, v);
    j.p.layer = request_query(req, "layer");
    const int side = m->input.h < m->input.w ? m->input.h : m->input.w;
    if (query_int(req, res, "steps", 1, EXPLAIN_MAX_STEPS, &j.p.ig_steps) < 0 ||
        query_int(req, res, "patch", 1, side, &j.p.occlusion_patch) < 0 ||
        query_int(req, res, "stride", 1, side, &j.p.occlusion_stride) < 0)
        return 0;
    if ((v = request_query(req, "baseline"))) {
        if (strcmp(v, "black") && strcmp(v, "blur"))
            return response_error(res, 400, "bad_parameter",
                                  "baseline must be black or blur, got \"%.40s\"", v);
        j.p.ig_blurred = strcmp(v, "blur") == 0;
    }
    struct upload up = {0};
    if (app_image_of_request(req, res, am, &j.index, &up) < 0)
        return 0;
    j.data = up.data;
    j.len = up.len;
    if (app_run_job(req, run_explain, &j, res) < 0)
        return 0;
    if (j.rc == 0)
        response_json(res, 200, reply_json(&j));
    else if (j.rc == STRATA_E_INTERRUPTED && request_client_gone(req))
        response_error(res, 503, "cancelled",
                       "the connection was closed before the explanation was ready");
    else if (j.rc == STRATA_E_INTERRUPTED)
        response_error(res, 503, "timeout", "the explanation took too long; retry");
    else if (j.rc == STRATA_E_NOMEM)
        response_error(res, 503, "out_of_memory", "the server is out of memory: %s", j.err);
    else if (j.decoding && j.rc == STRATA_E_LIMIT)
        response_error(res, 400, "image_too_large", "%s", j.err);
    else if (j.decoding)
        response_error(res, 400, "bad_image", "the upload is not a readable image: %s", j.err);
    else if (j.rc == STRATA_E_NOTFOUND || j.rc == STRATA_E_ARG)
        response_error(res, 400, "bad_parameter", "%s", j.err);
    else
        response_error(res, 500, "internal", "explanation failed: %s", j.err);
    attribution_result_free(&j.r);
    return 0;
}
