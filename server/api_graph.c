/*
 * api_graph.c — the layers of an imported model: GET /api/models/{id}/graph
 * lists every value of its graph that can be shown as a layer (the page's
 * layer chooser), and PUT /api/models/{id}/layers chooses them (written
 * into its model.json, then the model is loaded again and analysed anew).
 * strata's own models show every layer and answer 400.
 */
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "json.h"
#include "model_admin.h"
#include "model_graph.h"
#include "model_import.h"
#include "registry.h"
#include "state.h"

int handle_graph(const struct request *req, struct response *res)
{
    struct app_model *am = req->model; /* the route's APP_NEEDS_MODEL */
    char err[STRATA_ERR_LEN];
    struct model_graph_value *v;
    int n;
    if (!am->has_weights)
        return response_error(res, 409, "analysis_failed", "model %s cannot run: %s", am->id,
                              am->error);
    int rc = model_graph_values(&am->m, &v, &n, err);
    if (rc == STRATA_E_ARG)
        return response_error(res, 400, "not_imported", "%s", err);
    if (rc < 0)
        return response_fail(res, rc, err);
    json_t *list = json_array();
    for (int i = 0; list && i < n; i++) {
        int shape[3] = {v[i].shape.h, v[i].shape.w, v[i].shape.c};
        json_array_append_new(list, json_pack("{s:s, s:o, s:s, s:o, s:o, s:b}", "name", v[i].name,
                                              "value", json_str(v[i].tensor), "op", v[i].op,
                                              "shape", json_int_array(shape, 3), "shown",
                                              v[i].shown >= 0 ? json_integer(v[i].shown)
                                                              : json_null(),
                                              "default", v[i].by_default));
    }
    free(v);
    const json_t *chosen = json_object_get(am->m.json, "shown");
    response_json(res, 200, json_pack("{s:s, s:o, s:O}", "model", am->id, "values", list,
                                      "chosen", chosen ? chosen : json_null()));
    response_header(res, "Cache-Control", "no-cache");
    return 0;
}

int handle_set_layers(const struct request *req, struct response *res)
{
    struct app_model *am = req->model; /* the route's APP_NEEDS_MODEL */
    char err[STRATA_ERR_LEN];
    if (!am->m.onnx[0])
        return response_error(res, 400, "not_imported",
                              "%s is one of strata's own models: every layer of it is shown",
                              am->id);
    json_error_t je;
    json_t *body = req->body ? json_loadb((const char *)req->body, req->body_len,
                                          JSON_REJECT_DUPLICATES, &je)
                             : NULL;
    json_t *shown = json_object_get(body, "shown");
    if (!json_is_object(body) || !shown || json_object_size(body) != 1 ||
        !(json_is_null(shown) || (json_is_array(shown) && json_array_size(shown) > 0))) {
        json_decref(body);
        return response_error(res, 400, "bad_request",
                              "send {\"shown\": [names]} (one or more value, node or layer "
                              "names from GET /api/models/%s/graph) or {\"shown\": null} for "
                              "strata's choice",
                              am->id);
    }
    int rc = import_set_shown(am->dir, json_is_null(shown) ? NULL : shown, err);
    json_decref(body);
    /* the messages name model.json by its path: the client knows it as the model's */
    char *at = strstr(err, am->dir);
    if (at) {
        char msg[STRATA_ERR_LEN];
        snprintf(msg, sizeof msg, "%.*smodel %s%s", (int)(at - err), err, am->id,
                 at + strlen(am->dir));
        snprintf(err, sizeof err, "%s", msg);
    }
    if (rc == STRATA_E_NOTFOUND || rc == STRATA_E_ARG || rc == STRATA_E_FORMAT)
        return response_error(res, 400, "bad_request", "%s", err);
    if (rc < 0)
        return response_error(res, 500, "internal", "%s", err);
    if ((rc = app_reload_model(req->app, am->id, err)) < 0)
        return response_fail(res, rc, err);
    struct app_model *fresh = app_model_get(req->app, am->id);
    struct app *app = req->app;
    pthread_mutex_lock(&app->mu);
    json_t *detail = fresh ? api_model_detail(fresh) : json_null();
    pthread_mutex_unlock(&app->mu);
    app_model_put(fresh);
    return response_json(res, 200, detail);
}
