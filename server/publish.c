/*
 * publish.c — making results visible: states, the replies that change with
 * them, and the replies of a READY model (see publish.h for the rule that
 * makes them safe to read without locks).
 */
#include "publish.h"

#include <stdlib.h>
#include <string.h>

#include "blob.h"

/* Keeps a replaced blob until publish_free (see publish.h). Called with app->mu. */
static void retire(struct app *app, struct blob *b)
{
    if (!b)
        return;
    if (app->n_retired == app->cap_retired) {
        size_t cap = app->cap_retired ? 2 * app->cap_retired : 32;
        struct blob **r = realloc(app->retired, cap * sizeof *r);
        if (!r)
            return; /* leaks one small blob rather than freeing bytes in use */
        app->retired = r;
        app->cap_retired = cap;
    }
    app->retired[app->n_retired++] = b;
}

int publish_state(struct app *app, struct app_model *am, int state, const char *error)
{
    pthread_mutex_lock(&app->mu);
    struct blob *detail = NULL;
    if (am) {
        if (state == APP_FAILED && error)
            snprintf(am->error, sizeof am->error, "%s", error);
        atomic_store_explicit(&am->state, state, memory_order_release);
        detail = blob_json_steal(app->replies->model_detail(am));
        if (detail)
            retire(app, atomic_exchange(&am->detail, detail));
    }
    struct blob *list = app->replies->models_list(app);
    if (list)
        retire(app, atomic_exchange(&app->models_list, list));
    pthread_mutex_unlock(&app->mu);
    return (am && !detail) || !list ? STRATA_E_NOMEM : 0;
}

int publish_ready(struct app *app, struct app_model *am, char *err)
{
    const struct analysis *a = &am->a;
    snprintf(am->image_dir, sizeof am->image_dir, "%s/%s/%s", am->data_root, a->dataset,
             a->split);
    am->dims = malloc((size_t)(a->n_layers ? a->n_layers : 1) * sizeof(int));
    am->thumbs = calloc((size_t)a->n, sizeof *am->thumbs);
    am->expl = calloc((size_t)a->n, sizeof *am->expl);
    am->layers = calloc((size_t)(a->n_layers ? a->n_layers : 1), sizeof *am->layers);
    if (!am->dims || !am->thumbs || !am->expl || !am->layers)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory preparing the replies of %s",
                           am->id);
    for (int i = 0; i < a->n; i++)
        atomic_init(&am->thumbs[i], NULL);
    am->n_dims = 0;
    for (int l = 0; l < a->n_layers; l++) {
        if (a->layers[l].same_as < 0)
            am->dims[am->n_dims++] = l;
        for (int k = 0; k <= ANALYSIS_DEFAULT_K_MAX; k++) {
            atomic_init(&am->layers[l].scatter_k[k], NULL);
            atomic_init(&am->layers[l].clustering_k[k], NULL);
        }
    }
    /* The cover: the image the model recognises with the most confidence. */
    am->cover = a->n ? 0 : -1;
    float best = -1;
    for (int i = 0; i < a->n; i++) {
        float p = a->probs[(size_t)i * a->n_classes + a->pred[i]];
        if (a->pred[i] == a->labels[i] && p > best) {
            best = p;
            am->cover = i;
        }
    }
    int rc = app->replies->layers(am, err);
    if (rc == 0)
        rc = app->replies->paths(am, err);
    return rc;
}

void publish_doubt(struct app *app, struct app_model *am, struct doubt_model *dm)
{
    if (!dm) {
        atomic_store_explicit(&am->doubt_state, APP_DOUBT_UNAVAILABLE, memory_order_release);
    } else {
        atomic_store_explicit(&am->doubt, dm, memory_order_release);
        atomic_store_explicit(&am->doubt_state, APP_DOUBT_READY, memory_order_release);
    }
    publish_state(app, am, APP_READY, NULL); /* the detail shows the doubt's state */
}

struct blob *publish_doubt_eval_blob(struct app *app, const struct doubt_report *r)
{
    return app->replies->doubt_eval(r);
}

void publish_doubt_eval(struct app *app, struct app_model *am, struct blob *b)
{
    if (!b) {
        atomic_store_explicit(&am->doubt_eval_state, APP_DOUBT_UNAVAILABLE, memory_order_release);
    } else {
        atomic_store_explicit(&am->doubt_eval, b, memory_order_release);
        atomic_store_explicit(&am->doubt_eval_state, APP_DOUBT_READY, memory_order_release);
    }
    publish_state(app, am, APP_READY, NULL); /* the detail shows the evaluation's state */
}

void publish_no_doubt(struct app *app, struct app_model *am)
{
    if (atomic_load(&am->doubt_state) == APP_DOUBT_PENDING)
        atomic_store(&am->doubt_state, APP_DOUBT_UNAVAILABLE);
    snprintf(am->doubt_eval_note, sizeof am->doubt_eval_note,
             "no doubt evaluation for %s: it has no doubt score (%.300s)", am->id,
             am->doubt_note[0] ? am->doubt_note : "its analysis failed");
    atomic_store_explicit(&am->doubt_eval_state, APP_DOUBT_UNAVAILABLE, memory_order_release);
    publish_state(app, am, atomic_load(&am->state), NULL);
}

void publish_free(struct app *app)
{
    for (size_t i = 0; i < app->n_retired; i++)
        free(app->retired[i]);
    free(app->retired);
    app->retired = NULL;
    app->n_retired = app->cap_retired = 0;
    free(atomic_load(&app->models_list));
    atomic_store(&app->models_list, NULL);
}
