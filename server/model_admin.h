/*
 * model_admin.h — changing the set of models while the server runs: a model
 * imported through the API is added, one whose model.json changed is
 * loaded again, an uploaded one is deleted. Each change goes into the
 * registry (registry.h), is published (publish.h) and, when there is
 * something new to analyse, wakes the analysis thread (analyser.h).
 *
 * Requests in flight keep the entries they hold (references): a replaced
 * or deleted model stops its analysis and is freed when the last of them
 * is done.
 *
 * Threading: any thread.
 */
#ifndef STRATA_MODEL_ADMIN_H
#define STRATA_MODEL_ADMIN_H

#include "state.h"

/* Loads the model folder `dir` (uploaded: made by POST /api/models, with
 * its images under data_root) into the registry and queues its analysis.
 * Returns 0, or STRATA_E_ARG (the id is taken) / STRATA_E_NOMEM with err;
 * a model that loads but cannot run is added as FAILED, as at start. */
int app_add_model(struct app *app, const char *dir, const char *data_root, int uploaded,
                  char *err);

/* Takes the model out of the registry (its analysis stops, requests in
 * flight finish) and removes its folder and, for uploaded images, its
 * dataset folder. Only uploaded models: STRATA_E_ARG for others,
 * STRATA_E_NOTFOUND for an unknown id, with err. */
int app_delete_model(struct app *app, const char *id, char *err);

/* Loads the model `id` again from its folder (after its model.json
 * changed) in place of the one in the registry, which stops its analysis
 * and goes when the requests using it are done; the new one is analysed
 * anew. Returns 0, or STRATA_E_NOTFOUND / STRATA_E_NOMEM with err. */
int app_reload_model(struct app *app, const char *id, char *err);

#endif
