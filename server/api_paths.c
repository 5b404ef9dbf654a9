/*
 * api_paths.c — GET /api/models/{id}/paths (every image's way through the
 * layers' clusters, for a parallel-categories plot) and …/misclassified
 * (the images the model gets wrong, with where their path left their class).
 * Both are serialised once, when the model becomes ready.
 */
#include <stdatomic.h>

#include "api.h"
#include "blob.h"
#include "json.h"
#include "resource.h"
#include "state.h"

static json_t *dimensions_json(const struct app_model *am)
{
    const struct analysis *a = &am->a;
    json_t *dims = json_array();
    if (!dims)
        return NULL;
    json_array_append_new(dims, json_pack("{s:s, s:s}", "label", "true class", "kind", "true"));
    for (int j = 0; j < am->n_dims; j++) {
        const struct analysis_layer *L = &a->layers[am->dims[j]];
        json_array_append_new(dims, json_pack("{s:s, s:s, s:i, s:i, s:o, s:o, s:o}", "label",
                                              L->name, "kind", "layer", "layer", am->dims[j], "k",
                                              L->c.k, "purity", json_number_or_null(L->c.purity),
                                              "ari", json_number_or_null(L->c.ari), "nmi",
                                              json_number_or_null(L->c.nmi)));
    }
    json_array_append_new(dims, json_pack("{s:s, s:s}", "label", "predicted", "kind", "pred"));
    return dims;
}

static json_t *paths_json(const struct app_model *am)
{
    const struct analysis *a = &am->a;
    json_t *ids = json_array(), *clusters = json_array();
    for (int i = 0; ids && clusters && i < a->n; i++) {
        json_array_append_new(ids, json_str(a->image_ids[i]));
        json_t *row = json_array();
        for (int j = 0; row && j < am->n_dims; j++)
            json_array_append_new(row, json_integer(a->layers[am->dims[j]].c.labels[i]));
        json_array_append_new(clusters, row);
    }
    return json_pack("{s:o, s:o, s:{s:o, s:o, s:o, s:o, s:o}, s:i}", "classes",
                     json_string_array((const char *const *)a->classes, (size_t)a->n_classes),
                     "dimensions", dimensions_json(am), "images", "id", ids, "true",
                     json_int_array(a->labels, (size_t)a->n), "pred",
                     json_int_array(a->pred, (size_t)a->n), "clusters", clusters, "path",
                     json_int_array(a->path_id, (size_t)a->n), "distinct_paths", a->n_paths);
}

/* The first analysed layer from which image i's cluster never again has
 * the image's true class as its majority; -1 when the last one does. */
static int left_at(const struct app_model *am, int i)
{
    const struct analysis *a = &am->a;
    int t = am->n_dims;
    for (int j = am->n_dims - 1; j >= 0; j--) {
        const struct analysis_clustering *c = &a->layers[am->dims[j]].c;
        if (c->cluster_majority[c->labels[i]] == a->labels[i])
            break;
        t = j;
    }
    return t < am->n_dims ? am->dims[t] : -1;
}

static json_t *misclassified_json(const struct app_model *am)
{
    const struct analysis *a = &am->a;
    json_t *list = json_array();
    for (int m = 0; list && m < a->n_missed; m++) {
        const struct analysis_miss *x = &a->missed[m];
        char thumb[1200], full[1200];
        app_image_url(am, x->index, "/thumb", thumb, sizeof thumb);
        app_image_url(am, x->index, "", full, sizeof full);
        int left = left_at(am, x->index);
        json_t *j = json_pack("{s:i, s:o, s:s, s:s, s:f, s:f, s:o, s:s, s:s}", "index", x->index,
                              "id", json_str(a->image_ids[x->index]), "true",
                              a->classes[x->truth], "pred", a->classes[x->pred], "probability",
                              (double)x->prob, "true_probability", (double)x->prob_true,
                              "left_at", left >= 0 ? json_string(a->layers[left].name) : json_null(),
                              "thumb", thumb, "image", full);
        if (json_array_append_new(list, j) != 0) {
            json_decref(list);
            return NULL;
        }
    }
    return list ? json_pack("{s:o}", "images", list) : NULL;
}

int api_paths_precompute(struct app_model *am, char *err)
{
    am->paths = blob_json_steal(paths_json(am));
    am->misclassified = blob_json_steal(misclassified_json(am));
    if (!am->paths || !am->misclassified)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory serialising the paths of %s",
                           am->id);
    return 0;
}

int handle_paths(const struct request *req, struct response *res)
{
    struct app_model *am = req->model; /* the route's APP_NEEDS_ANALYSIS: READY */
    return blob_reply(req, res, am->paths, "application/json", NULL);
}

int handle_misclassified(const struct request *req, struct response *res)
{
    struct app_model *am = req->model; /* the route's APP_NEEDS_ANALYSIS: READY */
    return blob_reply(req, res, am->misclassified, "application/json", NULL);
}
