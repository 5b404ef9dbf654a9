/*
 * api_features.c — POST /api/models/{id}/features: what one layer sees in
 * one image (feature_maps.h): every channel's mean activation, and the
 * channels that respond most, each with its map of where.
 *
 * The image is the body (raw image/jpeg or image/png, or the multipart field
 * "image"), or, with ?image=<index | class/file>, one of the analysed split's
 * images, as for POST .../explain. Query parameters:
 *   layer  the layer, by index or name (required)
 *   top    how many channels to map, 1..64 (default 12)
 * Maps come back as numbers for the page to draw with its own colours: at
 * most FEATURE_MAP_SIDE per side (area averages of the layer's output when
 * it is larger), as integers from 0 to 1000 of the channel's own range
 * [min, max] — a map shows where the channel responds, its min and max say
 * how much. A layer without spatial extent (1 x 1 x F) gets its means
 * alone. One forward pass, run as a job on the worker pool.
 */
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "feature_maps.h"
#include "json.h"
#include "multipart.h"
#include "registry.h"
#include "resource.h"
#include "state.h"

#define FEATURE_MAP_SIDE 56
#define FEATURE_MAX_TOP 64

struct features_job {
    struct app_model *am;
    const unsigned char *data; /* the upload, or NULL for a dataset image */
    size_t len;
    int index;                 /* dataset image, or -1 */
    int layer, top;
    int rc, decoding;
    char err[STRATA_ERR_LEN];
    /* results */
    int width, height, n_top, map_w, map_h, predicted;
    float *means;                      /* [c] */
    struct feature_channel *channels;  /* [top] */
    float *maps;                       /* [n_top][map_h * map_w] */
};

static int run_features(void *arg, const atomic_int *cancel)
{
    struct features_job *j = arg;
    struct model *m = &j->am->m;
    struct image img = {0};
    (void)cancel;
    if (j->index >= 0) {
        char path[2200];
        j->rc = app_image_path(j->am, j->index, path, sizeof path) < 0
                    ? strata_fail(j->err, STRATA_E_NOTFOUND, "image %d has no usable file name",
                                  j->index)
                    : image_load(path, &img, j->err);
    } else {
        j->decoding = 1;
        j->rc = image_decode(j->data, j->len, &img, j->err);
    }
    if (j->rc < 0)
        return 0;
    j->decoding = 0;
    j->width = img.w;
    j->height = img.h;
    struct model_workspace *ws = app_workspace_take(j->am, j->err);
    if (!ws) {
        j->rc = STRATA_E_NOMEM;
        image_free(&img);
        return 0;
    }
    j->rc = model_preprocess(m, &img, ws->input, j->err);
    image_free(&img);
    if (j->rc == 0) {
        model_forward(m, ws, ws->input, 1);
        const struct shape s = m->layers[j->layer].out;
        const float *out = model_output(ws, j->layer);
        const float *probs = model_output(ws, m->n_layers - 1);
        j->predicted = 0;
        for (int c = 1; c < m->n_classes; c++)
            j->predicted = probs[c] > probs[j->predicted] ? c : j->predicted;
        j->map_w = s.w < FEATURE_MAP_SIDE ? s.w : FEATURE_MAP_SIDE;
        j->map_h = s.h < FEATURE_MAP_SIDE ? s.h : FEATURE_MAP_SIDE;
        int spatial = s.h * s.w > 1;
        j->means = malloc((size_t)s.c * sizeof *j->means);
        j->channels = malloc((size_t)j->top * sizeof *j->channels);
        j->maps = spatial ? malloc((size_t)j->top * j->map_w * j->map_h * sizeof *j->maps) : NULL;
        if (!j->means || !j->channels || (spatial && !j->maps)) {
            j->rc = strata_fail(j->err, STRATA_E_NOMEM, "out of memory");
        } else {
            j->n_top = feature_maps_rank(out, s, j->means, j->channels, j->top);
            for (int t = 0; spatial && t < j->n_top; t++)
                feature_maps_sample(out, s, j->channels[t].index, j->map_w, j->map_h,
                                    j->maps + (size_t)t * j->map_w * j->map_h);
        }
    }
    app_workspace_give(j->am, ws);
    return 0;
}

static json_t *reply_json(const struct features_job *j)
{
    const struct model *m = &j->am->m;
    const struct layer *L = &m->layers[j->layer];
    int shape[3] = {L->out.h, L->out.w, L->out.c}, input[3] = {m->input.h, m->input.w, 3};
    json_t *channels = json_array();
    for (int t = 0; channels && t < j->n_top; t++) {
        const struct feature_channel *c = &j->channels[t];
        json_t *map = json_null();
        if (j->maps) {
            map = json_array();
            const float *v = j->maps + (size_t)t * j->map_w * j->map_h;
            float span = c->max - c->min;
            for (int i = 0; map && i < j->map_w * j->map_h; i++)
                json_array_append_new(
                    map, json_integer(span > 0 ? (json_int_t)(1000 * (v[i] - c->min) / span + 0.5f)
                                               : 0));
        }
        json_array_append_new(channels,
                              json_pack("{s:i, s:f, s:f, s:f, s:o}", "index", c->index, "mean",
                                        (double)c->mean, "min", (double)c->min, "max",
                                        (double)c->max, "map", map));
    }
    return json_pack("{s:s, s:{s:i, s:s, s:o}, s:o, s:{s:i, s:i}, s:s, s:o, s:{s:i, s:i}, s:o}",
                     "model", j->am->id, "layer", "index", j->layer, "name", L->cfg.name,
                     "shape", json_int_array(shape, 3), "input", json_int_array(input, 3),
                     "image", "width", j->width, "height", j->height, "predicted",
                     m->classes[j->predicted], "means", json_float_array(j->means, (size_t)L->out.c),
                     "map_size", "width", j->maps ? j->map_w : 0, "height",
                     j->maps ? j->map_h : 0, "channels", channels);
}

/* A layer by index (plain digits) or by name; -1 when none. */
static int layer_of(const struct model *m, const char *v)
{
    char *end;
    long i = strtol(v, &end, 10);
    if (*v >= '0' && *v <= '9' && !*end && i >= 0 && i < m->n_layers)
        return (int)i;
    for (int l = 0; l < m->n_layers; l++)
        if (strcmp(m->layers[l].cfg.name, v) == 0)
            return l;
    return -1;
}

int handle_features(const struct request *req, struct response *res)
{
    struct app_model *am = req->model; /* the route's APP_NEEDS_ANALYSIS: READY */
    const struct model *m = &am->m;
    struct features_job j = {.am = am, .index = -1, .top = 12};
    const char *v = request_query(req, "layer");
    if (!v || (j.layer = layer_of(m, v)) < 0)
        return response_error(res, 400, "bad_parameter",
                              "layer must be one of model %s's layers, by index 0..%d or name; "
                              "got \"%.60s\"",
                              am->id, m->n_layers - 1, v ? v : "");
    if ((v = request_query(req, "top"))) {
        char *end;
        long t = strtol(v, &end, 10);
        if (*v < '0' || *v > '9' || *end || t < 1 || t > FEATURE_MAX_TOP)
            return response_error(res, 400, "bad_parameter",
                                  "top must be an integer from 1 to %d, got \"%.40s\"",
                                  FEATURE_MAX_TOP, v);
        j.top = (int)t;
    }
    struct upload up = {0};
    if (app_image_of_request(req, res, am, &j.index, &up) < 0)
        return 0;
    j.data = up.data;
    j.len = up.len;
    if (app_run_job(req, run_features, &j, res) < 0)
        goto done;
    if (j.rc == 0)
        response_json(res, 200, reply_json(&j));
    else if (j.rc == STRATA_E_NOMEM)
        response_error(res, 503, "out_of_memory", "the server is out of memory: %s", j.err);
    else if (j.decoding && j.rc == STRATA_E_LIMIT)
        response_error(res, 400, "image_too_large", "%s", j.err);
    else if (j.decoding)
        response_error(res, 400, "bad_image", "the upload is not a readable image: %s", j.err);
    else
        response_error(res, 500, "internal", "the forward pass failed: %s", j.err);
done:
    free(j.means);
    free(j.channels);
    free(j.maps);
    return 0;
}
