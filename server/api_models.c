/*
 * api_models.c — GET /api/models and GET /api/models/{id}: what each model
 * is (architecture, classes, training card) and where its analysis stands.
 *
 * Both replies change only when a model's state does, so they are built
 * when publish_state (publish.c) asks and served here as stored bytes.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "blob.h"
#include "json.h"
#include "model_graph.h"
#include "registry.h"
#include "resource.h"
#include "state.h"

static int is_seed_architecture(const struct app_model *am)
{
    size_t n = strlen(am->id);
    return n > 5 && strcmp(am->id + n - 5, "-seed") == 0;
}

static const char *description_of(const struct app_model *am)
{
    const json_t *d = am->loaded ? json_object_get(am->m.json, "description") : NULL;
    return json_is_string(d) ? json_string_value(d) : "";
}

/* The test accuracy the card reports, else the analysis's (which runs on the
 * test split by default); null when neither is known. */
static json_t *test_accuracy(const struct app_model *am, int state)
{
    json_t *acc = json_object_get(json_object_get(am->card, "test"), "accuracy");
    if (json_is_number(acc))
        return json_real(json_number_value(acc));
    if (state == APP_READY && strcmp(am->a.split, "test") == 0)
        return json_real(am->a.accuracy);
    return json_null();
}

static json_t *input_json(const struct app_model *am)
{
    if (!am->loaded)
        return json_null();
    return json_pack("{s:i, s:i, s:i}", "height", am->m.input.h, "width", am->m.input.w,
                     "channels", am->m.input.c);
}

static json_t *classes_json(const struct app_model *am)
{
    json_t *a = json_array();
    for (int c = 0; a && am->loaded && c < am->m.n_classes; c++)
        json_array_append_new(a, json_str(am->m.classes[c]));
    return a;
}

/* What the analysis thread is doing on the model, null when nothing
 * (app->mu held by the caller). */
static json_t *progress_json(const struct app_model *am)
{
    if (!am->progress_stage[0])
        return json_null();
    return json_pack("{s:s, s:I, s:I}", "stage", am->progress_stage, "done",
                     (json_int_t)am->progress_done, "total", (json_int_t)am->progress_total);
}

json_t *api_model_summary(const struct app_model *am)
{
    int state = atomic_load_explicit(&am->state, memory_order_acquire);
    char cover[1200];
    if (state == APP_READY && am->cover >= 0)
        app_image_url(am, am->cover, "/thumb", cover, sizeof cover);
    json_t *j = json_pack(
        "{s:s, s:s, s:o, s:s, s:o, s:i, s:o, s:o, s:I, s:b, s:s, s:o}", "id", am->id, "title",
        am->loaded ? am->m.title : am->id, "description", json_str(description_of(am)), "dataset",
        am->loaded ? am->m.dataset : "", "classes", classes_json(am), "layers",
        am->loaded ? am->m.n_layers : 0, "input", input_json(am), "test_accuracy",
        test_accuracy(am, state), "parameters",
        (json_int_t)(am->loaded ? model_trainable_count(&am->m) : 0), "seed_architecture",
        is_seed_architecture(am), "analysis", app_state_name(state), "cover",
        state == APP_READY && am->cover >= 0 ? json_string(cover) : json_null());
    if (j && state == APP_FAILED)
        json_object_set_new(j, "error", json_str(am->error));
    if (j) {
        json_object_set_new(j, "uploaded", json_boolean(am->uploaded));
        json_object_set_new(j, "progress", progress_json(am));
    }
    return j;
}

/* Trainable parameters of one layer, from its tensor descriptions. */
static long layer_parameters(const struct layer *l)
{
    struct param_desc desc[LAYER_MAX_PARAMS];
    const struct layer_ops *ops = layer_ops_of(l->cfg.kind);
    int n = ops->params ? ops->params(l, desc) : 0;
    long total = 0;
    for (int i = 0; i < n; i++) {
        if (!desc[i].trainable)
            continue;
        long size = 1;
        for (int d = 0; d < desc[i].ndim; d++)
            size *= desc[i].dims[d];
        total += size;
    }
    return total;
}

/* The settings model.json gave the layer (resolved defaults included). */
static json_t *layer_config_json(const struct layer_config *c)
{
    const char *pad = c->padding == PADDING_SAME ? "same" : "valid";
    switch (c->kind) {
    case LAYER_CONV2D:
        return json_pack("{s:i, s:i, s:i, s:s, s:b, s:i}", "filters", c->filters, "kernel_size",
                         c->kernel, "strides", c->stride, "padding", pad, "use_bias", c->use_bias,
                         "groups", c->groups);
    case LAYER_MAXPOOL2D:
        return json_pack("{s:i, s:i, s:s}", "pool_size", c->pool, "strides", c->stride,
                         "padding", pad);
    case LAYER_DENSE:
        return json_pack("{s:i, s:b}", "units", c->units, "use_bias", c->use_bias);
    case LAYER_DROPOUT:
        return json_pack("{s:f}", "rate", (double)c->rate);
    case LAYER_BATCH_NORM:
        return json_pack("{s:f, s:f}", "epsilon", (double)c->epsilon, "momentum",
                         (double)c->momentum);
    default:
        return json_object();
    }
}

static json_t *activation_json(const struct layer_config *c)
{
    switch (c->kind) {
    case LAYER_CONV2D:
    case LAYER_DENSE:
    case LAYER_BATCH_NORM:
    case LAYER_ADD:
        return json_string(activation_name(c->activation));
    case LAYER_RELU: return json_string("relu");
    case LAYER_SIGMOID: return json_string("sigmoid");
    case LAYER_SOFTMAX: return json_string("softmax");
    default: return json_null();
    }
}

static json_t *layers_json(const struct app_model *am)
{
    json_t *list = json_array();
    for (int i = 0; list && am->loaded && i < am->m.n_layers; i++) {
        const struct layer *l = &am->m.layers[i];
        int shape[3] = {l->out.h, l->out.w, l->out.c};
        json_t *j = json_pack("{s:i, s:s, s:s, s:o, s:o, s:I, s:o}", "index", i, "name",
                              l->cfg.name, "type", layer_ops_of(l->cfg.kind)->type, "activation",
                              activation_json(&l->cfg), "output_shape", json_int_array(shape, 3),
                              "parameters", (json_int_t)layer_parameters(l), "config",
                              layer_config_json(&l->cfg));
        /* what the layer reads: its "inputs" for strata's own models (the
         * layer before, in a chain); the joins of an imported graph */
        int from[LAYER_MAX_INPUTS];
        int n_from = model_graph_layer_inputs(&am->m, i, from, LAYER_MAX_INPUTS);
        const char *op = model_graph_layer_op(&am->m, i);
        if (j) {
            json_object_set_new(j, "inputs", json_int_array(from, (size_t)n_from));
            if (op)
                json_object_set_new(j, "op", json_string(op));
        }
        if (json_array_append_new(list, j) != 0) {
            json_decref(list);
            return NULL;
        }
    }
    return list;
}

static json_t *analysis_json(const struct app_model *am, int state)
{
    if (state == APP_FAILED)
        return json_pack("{s:s, s:o}", "state", "failed", "error", json_str(am->error));
    if (state != APP_READY)
        return json_pack("{s:s}", "state", app_state_name(state));
    const struct analysis *a = &am->a;
    /* the confusion matrix of the analysed split, rows = true classes: what
     * a model without a training card (an imported one) shows */
    json_t *confusion = json_array();
    for (int t = 0; confusion && t < a->n_classes; t++) {
        json_t *row = json_array();
        for (int p = 0; row && p < a->n_classes; p++)
            json_array_append_new(row, json_integer(a->confusion[t * a->n_classes + p]));
        json_array_append_new(confusion, row);
    }
    return json_pack("{s:s, s:s, s:i, s:f, s:i, s:i, s:i, s:i, s:f, s:b, s:f, s:o}", "state", "ready",
                     "split", a->split, "n_images", a->n, "accuracy", a->accuracy,
                     "misclassified", a->n_missed, "distinct_paths", a->n_paths, "layers",
                     a->n_layers, "k_max", a->k_max, "seconds",
                     a->seconds[ANALYSIS_STAGE_TOTAL], "cached", a->cached, "wall_seconds",
                     am->analysis_wall, "confusion", confusion);
}

/* Whether predictions carry a doubt score, and why not. */
static json_t *doubt_json(const struct app_model *am)
{
    int ds = atomic_load_explicit(&am->doubt_state, memory_order_acquire);
    int es = atomic_load_explicit(&am->doubt_eval_state, memory_order_acquire);
    const struct doubt_model *dm = atomic_load(&am->doubt);
    json_t *j;
    if (ds == APP_DOUBT_READY && dm) {
        j = json_pack("{s:s, s:i, s:i, s:i, s:b}", "state", "ready", "reference_images",
                      dm->n_ref, "calibration_images", dm->n_cal, "layers", dm->n_layers,
                      "cached", dm->cached);
    } else {
        j = json_pack("{s:s}", "state", app_doubt_state_name(ds));
        if (j && ds == APP_DOUBT_UNAVAILABLE && am->doubt_note[0])
            json_object_set_new(j, "error", json_str(am->doubt_note));
    }
    /* Where GET /api/models/{id}/doubt stands. */
    if (j)
        json_object_set_new(j, "evaluation", json_string(app_doubt_state_name(es)));
    return j;
}

json_t *api_model_detail(const struct app_model *am)
{
    int state = atomic_load_explicit(&am->state, memory_order_acquire);
    json_t *norm = am->loaded ? json_pack("{s:o, s:o}", "mean", json_float_array(am->m.mean, 3),
                                          "std", json_float_array(am->m.std, 3))
                              : json_null();
    return json_pack("{s:s, s:s, s:o, s:s, s:o, s:o, s:o, s:o, s:O?, s:I, s:b, s:o, s:o, s:o, "
                     "s:b, s:o}",
                     "id",
                     am->id, "title", am->loaded ? am->m.title : am->id, "description",
                     json_str(description_of(am)), "dataset", am->loaded ? am->m.dataset : "",
                     "classes", classes_json(am), "input", input_json(am), "normalization", norm,
                     "layers", layers_json(am), "card", am->card, "parameters",
                     (json_int_t)(am->loaded ? model_trainable_count(&am->m) : 0),
                     "seed_architecture", is_seed_architecture(am), "test_accuracy",
                     test_accuracy(am, state), "analysis", analysis_json(am, state), "doubt",
                     doubt_json(am), "uploaded", am->uploaded, "progress", progress_json(am));
}

static void append_summary(struct app_model *am, void *user)
{
    json_t **list = user;
    if (*list && json_array_append_new(*list, api_model_summary(am)) != 0) {
        json_decref(*list);
        *list = NULL;
    }
}

struct blob *api_models_list_blob(struct app *app)
{
    json_t *list = json_array();
    app_models_each(app, append_summary, &list);
    return blob_json_steal(list ? json_pack("{s:o}", "models", list) : NULL);
}

/* Whether the analysis thread still works on am: then its replies change
 * with every step and are built per request. */
static int settling(const struct app_model *am)
{
    return am->progress_stage[0] || atomic_load(&am->state) == APP_QUEUED ||
           atomic_load(&am->state) == APP_ANALYSING;
}

static void any_settling(struct app_model *am, void *user)
{
    *(int *)user |= settling(am);
}

static void blob_free_cb(void *cls)
{
    free(cls);
}

/* Replies with a blob built for this request alone. */
static int reply_fresh(const struct request *req, struct response *res, struct blob *b)
{
    if (!b)
        return response_error(res, 503, "out_of_memory", "the server is out of memory");
    blob_reply(req, res, b, "application/json", "no-store");
    if (res->status == 200)
        res->body_free = blob_free_cb, res->body_free_cls = b;
    else
        free(b);
    return 0;
}

int handle_models(const struct request *req, struct response *res)
{
    struct app *app = req->app;
    int busy = 0;
    pthread_mutex_lock(&app->mu);
    app_models_each(app, any_settling, &busy);
    struct blob *fresh = busy ? api_models_list_blob(app) : NULL;
    pthread_mutex_unlock(&app->mu);
    if (busy)
        return reply_fresh(req, res, fresh);
    return blob_reply(req, res, atomic_load(&app->models_list), "application/json", NULL);
}

int handle_model(const struct request *req, struct response *res)
{
    struct app_model *am = req->model; /* the route's APP_NEEDS_MODEL */
    struct app *app = req->app;
    pthread_mutex_lock(&app->mu);
    struct blob *fresh = settling(am) ? blob_json_steal(api_model_detail(am)) : NULL;
    int busy = settling(am);
    pthread_mutex_unlock(&app->mu);
    if (busy)
        return reply_fresh(req, res, fresh);
    return blob_reply(req, res, atomic_load(&am->detail), "application/json", NULL);
}
