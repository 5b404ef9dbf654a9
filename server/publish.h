/*
 * publish.h — how the analysis thread's results (and any change of a
 * model's state) become visible to the handlers.
 *
 * Before a model becomes READY, everything its GET endpoints return (paths,
 * misclassified, every layer's scatter and elbow) is serialised once into
 * immutable blobs (publish_ready); handlers then only pick a blob and send
 * its bytes.
 *
 * The rule. `state` is an atomic written last (release); a handler that
 * reads READY (acquire) sees the bundle and every blob built before, and
 * none of them changes again. The doubt model and the doubt evaluation are
 * published the same way, through an atomic pointer and a state written
 * after it. The few replies that do change with the state (the models
 * list, a model's detail) are rebuilt and swapped atomically; the replaced
 * blobs are kept until publish_free (a handful per model), so a reply still
 * being sent never loses its bytes.
 *
 * The replies are the API's (api.h); publication only calls them, through
 * the struct app_replies that app_new installs in app->replies, so that
 * nothing below the handlers depends on them.
 *
 * Threading: any thread; app->mu serialises the changes.
 */
#ifndef STRATA_PUBLISH_H
#define STRATA_PUBLISH_H

#include "state.h"

/* How the replies that publication stores are built. */
struct app_replies {
    /* GET /api/models/{id} (called with app->mu held). NULL when out of
     * memory. */
    json_t *(*model_detail)(const struct app_model *am);
    /* GET /api/models (called with app->mu held). NULL when out of memory. */
    struct blob *(*models_list)(struct app *app);
    /* The replies of a model about to be READY, stored in am: every layer's
     * (am->layers), the paths' (am->paths, am->misclassified). Return 0 or
     * STRATA_E_NOMEM with err. */
    int (*layers)(struct app_model *am, char *err);
    int (*paths)(struct app_model *am, char *err);
    /* GET /api/models/{id}/doubt for report r. NULL when out of memory. */
    struct blob *(*doubt_eval)(const struct doubt_report *r);
};

/* Publishes am's new state (and error, for FAILED): rebuilds its detail
 * and the models list (am NULL: only the list). Returns 0 or
 * STRATA_E_NOMEM (the old replies stay). */
int publish_state(struct app *app, struct app_model *am, int state, const char *error);

/* Builds everything a READY model serves from its bundle (am->a, loaded):
 * the image folder, the path dimensions, the cover, the caches' slots and
 * the replies. Call it before publishing READY. Returns 0, or
 * STRATA_E_NOMEM with err (then free what was built with
 * app_model_release_ready). */
int publish_ready(struct app *app, struct app_model *am, char *err);

/* Publishes am's doubt model dm (the entry owns it from now on), or that
 * it has none (dm NULL: am->doubt_note says why), then am's detail. */
void publish_doubt(struct app *app, struct app_model *am, struct doubt_model *dm);

/* The reply of am's doubt evaluation for report r, as a blob, NULL when
 * out of memory. */
struct blob *publish_doubt_eval_blob(struct app *app, const struct doubt_report *r);

/* Publishes am's doubt evaluation b (the entry owns it from now on), or
 * that it has none (b NULL: am->doubt_eval_note says why), then am's
 * detail. */
void publish_doubt_eval(struct app *app, struct app_model *am, struct blob *b);

/* A model without a doubt score (its analysis or calibration failed): its
 * evaluation cannot be either. Publishes both as unavailable, with the
 * reason. */
void publish_no_doubt(struct app *app, struct app_model *am);

/* Frees the retired replies and the models list (app_free, once nothing
 * is sent any more). */
void publish_free(struct app *app);

#endif
