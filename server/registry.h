/*
 * registry.h — the models the server holds: loading a model folder into an
 * entry (struct app_model, state.h), the array of entries (app->models,
 * guarded by app->models_lock) and the references that keep an entry alive.
 *
 * Life of an entry. A folder is loaded with its model.json, its weights and
 * card.json; a model that cannot be loaded (no weights, a broken file) is
 * kept, in state FAILED with a message, so that the API can say why. The
 * registry holds one reference until the entry leaves it (deleted, or
 * replaced by a reload); every user — a request being handled or sent, the
 * analysis thread — holds one more while it works on it, and the last
 * reference frees the entry with everything it holds.
 *
 * What the caller owns: app_model_get's reference (give it back with
 * app_model_put); an entry from app_model_load until registry_add takes it.
 * Nothing here publishes a state or wakes the analysis thread: model_admin.h
 * and app.h do.
 *
 * Threading: every function may be called from any thread, except
 * registry_load_folder (app_new only).
 */
#ifndef STRATA_REGISTRY_H
#define STRATA_REGISTRY_H

#include "state.h"

/* Loads the model folder dir into a new entry holding one reference (the
 * caller's, e.g. for registry_add): state QUEUED, or FAILED with the reason
 * in am->error when it cannot run. data_root is the datasets folder its
 * dataset is in; uploaded: made by POST /api/models. NULL when out of
 * memory. */
struct app_model *app_model_load(struct app *app, const char *dir, const char *data_root,
                                 int uploaded);

/* Adds am to the registry, which takes over the caller's reference, unless
 * its id is taken. Returns 0, STRATA_E_ARG (taken; am is untouched and
 * still the caller's) or STRATA_E_NOMEM. */
int registry_add(struct app *app, struct app_model *am);

/* Loads every model folder under root (sorted by folder name; a folder
 * without a model.json is skipped with a note on the log) into the
 * registry, uploaded ones with their images where import.json says; a
 * second folder declaring an id already loaded is skipped. The folders
 * added are sorted by id. A missing root is an error only when required.
 * Returns 0, or STRATA_E_IO / STRATA_E_NOMEM with err. */
int registry_load_folder(struct app *app, const char *root, int uploaded, int required,
                         char *err);

/* Puts am in old's place in the registry: the registry takes over the
 * caller's reference to am, and its reference to old becomes the caller's.
 * Returns 1, or 0 when old is no longer in the registry (nothing changed). */
int registry_replace(struct app *app, struct app_model *old, struct app_model *am);

/* Takes the uploaded model id out of the registry and marks it deleted;
 * the registry's reference moves to *out. Returns 0, or STRATA_E_NOTFOUND
 * (no such model) / STRATA_E_ARG (not an uploaded model) with err. */
int registry_remove_uploaded(struct app *app, const char *id, struct app_model **out,
                             char *err);

/* The model with that id with a new reference (give it back with
 * app_model_put), or NULL. */
struct app_model *app_model_get(struct app *app, const char *id);
void app_model_put(struct app_model *am);

/* Calls fn on every model in the registry, in order, under its read lock
 * (fn must not add or delete models). */
void app_models_each(struct app *app, void (*fn)(struct app_model *am, void *user), void *user);

/* Frees what a READY model holds beyond its description (the bundle, the
 * replies of publish_ready, the caches filled on demand), resetting them
 * to NULL: for an entry being freed, or one whose replies could not be
 * built. Can't fail. */
void app_model_release_ready(struct app_model *am);

/* A batch-1 inference workspace for am (reused, else allocated); NULL with
 * err when out of memory. Give it back with app_workspace_give. */
struct model_workspace *app_workspace_take(struct app_model *am, char *err);
void app_workspace_give(struct app_model *am, struct model_workspace *ws);

#endif
