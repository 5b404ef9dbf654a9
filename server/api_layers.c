/*
 * api_layers.c — GET /api/models/{id}/layers/{layer}/scatter[?k=N] and
 * …/elbow: one layer's images in its PCA plane with their clusters, and the
 * inertia curve k was chosen from.
 *
 * Both replies for the bundle's own k are serialised when the model becomes
 * ready. Another k (1..10) re-runs k-means on the layer's stored features on
 * the worker pool; the reply is kept, so each (layer, k) is computed once.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "blob.h"
#include "json.h"
#include "resource.h"
#include "state.h"

static json_t *layer_json(const struct analysis *a, int l)
{
    const struct analysis_layer *L = &a->layers[l];
    int shape[3] = {L->out.h, L->out.w, L->out.c};
    return json_pack("{s:i, s:s, s:s, s:o, s:i, s:o}", "index", l, "name", L->name, "type",
                     L->type, "output_shape", json_int_array(shape, 3), "feature_size", L->d,
                     "same_as", L->same_as >= 0 ? json_integer(L->same_as) : json_null());
}

static json_t *scatter_json(const struct app_model *am, int l, const struct analysis_clustering *c)
{
    const struct analysis *a = &am->a;
    const struct analysis_layer *L = &a->layers[l];
    int n = a->n;
    json_t *ids = json_array(), *xs = json_array(), *ys = json_array(), *dist = json_array();
    for (int i = 0; ids && xs && ys && dist && i < n; i++) {
        json_array_append_new(ids, json_str(a->image_ids[i]));
        json_array_append_new(xs, json_number_or_null(L->points[2 * i]));
        json_array_append_new(ys, json_number_or_null(L->points[2 * i + 1]));
        /* in the layer's feature space, where the clusters were made */
        json_array_append_new(dist, json_number_or_null(sqrt((double)c->dist2[i])));
    }
    json_t *cx = json_array(), *cy = json_array();
    for (int j = 0; cx && cy && j < c->k; j++) {
        json_array_append_new(cx, json_number_or_null(c->center_points[2 * j]));
        json_array_append_new(cy, json_number_or_null(c->center_points[2 * j + 1]));
    }
    json_t *points = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id", ids, "x", xs, "y",
                               ys, "true", json_int_array(a->labels, (size_t)n), "pred",
                               json_int_array(a->pred, (size_t)n), "cluster",
                               json_int_array(c->labels, (size_t)n), "distance", dist);
    json_t *centers = json_pack("{s:o, s:o, s:o, s:o, s:o}", "x", cx, "y", cy, "size",
                                json_int_array(c->sizes, (size_t)c->k), "majority",
                                json_int_array(c->cluster_majority, (size_t)c->k), "purity",
                                json_double_array(c->cluster_purity, (size_t)c->k));
    return json_pack("{s:o, s:i, s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                     "layer", layer_json(a, l), "k", c->k, "k_auto", L->k_auto, "k_override",
                     L->k_override ? json_integer(L->k_override) : json_null(),
                     "explained_variance_ratio", json_double_array(L->pca_ratio, 2),
                     "silhouette", json_number_or_null(c->silhouette), "purity",
                     json_number_or_null(c->purity), "ari", json_number_or_null(c->ari), "nmi",
                     json_number_or_null(c->nmi), "inertia", json_number_or_null(c->inertia),
                     "classes", json_string_array((const char *const *)a->classes,
                                                  (size_t)a->n_classes),
                     "points", points, "centers", centers);
}

static json_t *elbow_json(const struct app_model *am, int l)
{
    const struct analysis *a = &am->a;
    const struct analysis_layer *L = &a->layers[l];
    json_t *ks = json_array();
    for (int k = 1; ks && k <= a->k_max; k++)
        json_array_append_new(ks, json_integer(k));
    return json_pack("{s:o, s:o, s:o, s:i, s:i, s:o}", "layer", layer_json(a, l), "k_values", ks,
                     "inertia", json_double_array(L->elbow, (size_t)a->k_max), "k", L->c.k,
                     "k_auto", L->k_auto, "silhouette", json_number_or_null(L->c.silhouette));
}

int api_layers_precompute(struct app_model *am, char *err)
{
    for (int l = 0; l < am->a.n_layers; l++) {
        am->layers[l].scatter = blob_json_steal(scatter_json(am, l, &am->a.layers[l].c));
        am->layers[l].elbow = blob_json_steal(elbow_json(am, l));
        if (!am->layers[l].scatter || !am->layers[l].elbow)
            return strata_fail(err, STRATA_E_NOMEM, "out of memory serialising layer %d of %s",
                               l, am->id);
    }
    return 0;
}

/* The {layer} parameter of a ready model; on failure res holds the 404. */
static int layer_or_404(const struct request *req, struct response *res,
                        const struct app_model *am)
{
    const char *name = request_param(req, "layer");
    int l = name ? analysis_layer_index(&am->a, name) : -1;
    if (l < 0)
        response_error(res, 404, "not_found",
                       "model %s has no layer \"%.100s\": use a name or an index 0..%d", am->id,
                       name ? name : "", am->a.n_layers - 1);
    return l;
}

struct recluster_job {
    struct app_model *am;
    int layer, k;
    int rc;
    char err[STRATA_ERR_LEN];
    struct blob *reply;
};

int app_layer_clustering(struct app_model *am, int l, int k,
                         const struct analysis_clustering **out, char *err)
{
    const struct analysis *a = &am->a;
    *out = NULL;
    if (k == a->layers[l].c.k) {
        *out = &a->layers[l].c;
        return 0;
    }
    int k_hi = a->n < ANALYSIS_DEFAULT_K_MAX ? a->n : ANALYSIS_DEFAULT_K_MAX;
    if (k < 1 || k > k_hi)
        return strata_fail(err, STRATA_E_ARG, "k must be from 1 to %d, got %d", k_hi, k);
    _Atomic(struct analysis_clustering *) *slot = &am->layers[l].clustering_k[k];
    struct analysis_clustering *c = atomic_load(slot);
    if (!c) {
        if (!(c = calloc(1, sizeof *c)))
            return strata_fail(err, STRATA_E_NOMEM, "out of memory");
        int rc = analysis_recluster(a, l, k, c, err);
        if (rc < 0) {
            free(c);
            return rc;
        }
        struct analysis_clustering *expected = NULL;
        if (!atomic_compare_exchange_strong(slot, &expected, c)) {
            analysis_clustering_free(c); /* another request made it meanwhile */
            free(c);
            c = expected;
        }
    }
    *out = c;
    return 0;
}

static int run_recluster(void *arg, const atomic_int *cancel)
{
    struct recluster_job *j = arg;
    const struct analysis_clustering *c;
    if ((j->rc = app_layer_clustering(j->am, j->layer, j->k, &c, j->err)) < 0)
        return 0;
    j->reply = blob_json_steal(scatter_json(j->am, j->layer, c));
    if (!j->reply)
        j->rc = strata_fail(j->err, STRATA_E_NOMEM, "out of memory serialising the clusters");
    return 0;
}

int handle_scatter(const struct request *req, struct response *res)
{
    struct app_model *am = req->model; /* the route's APP_NEEDS_ANALYSIS: READY */
    int l = layer_or_404(req, res, am);
    if (l < 0)
        return 0;
    struct app_layer *AL = &am->layers[l];
    const char *kq = request_query(req, "k");
    if (!kq)
        return blob_reply(req, res, AL->scatter, "application/json", NULL);

    int k_hi = am->a.n < ANALYSIS_DEFAULT_K_MAX ? am->a.n : ANALYSIS_DEFAULT_K_MAX;
    int k = analysis_parse_index(kq, k_hi + 1); /* plain digits, no sign or spaces */
    if (k < 1)
        return response_error(res, 400, "bad_parameter",
                              "k must be an integer from 1 to %d in plain digits, got \"%.40s\"",
                              k_hi, kq);
    if (k == am->a.layers[l].c.k)
        return blob_reply(req, res, AL->scatter, "application/json", NULL);
    struct blob *b = atomic_load(&AL->scatter_k[k]);
    if (!b) {
        struct recluster_job j = {.am = am, .layer = l, .k = k};
        if (app_run_job(req, run_recluster, &j, res) < 0)
            return 0;
        if (j.rc < 0)
            return response_fail(res, j.rc, j.err);
        struct blob *expected = NULL;
        if (atomic_compare_exchange_strong(&AL->scatter_k[k], &expected, j.reply)) {
            b = j.reply;
        } else {
            free(j.reply); /* another request computed it meanwhile */
            b = expected;
        }
    }
    return blob_reply(req, res, b, "application/json", NULL);
}

int handle_elbow(const struct request *req, struct response *res)
{
    struct app_model *am = req->model; /* the route's APP_NEEDS_ANALYSIS: READY */
    int l = layer_or_404(req, res, am);
    if (l < 0)
        return 0;
    return blob_reply(req, res, am->layers[l].elbow, "application/json", NULL);
}
