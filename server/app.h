/*
 * app.h — `strata serve`'s application: the models, their analyses, the
 * precomputed replies, the caches and the worker pool, put together.
 *
 * Life of a model. app_new loads every models/<id>/model.json with its
 * weights and card.json (registry.h; a model that cannot be loaded is kept
 * as FAILED, so that the API can say why). app_start_analyses then starts
 * the analysis thread (analyser.h), which builds the bundles one model
 * after another while the server already answers: QUEUED -> ANALYSING ->
 * READY or FAILED, then each ready model's doubt score and its evaluation.
 * Results become visible through publish.h; the handlers (api.h) only read
 * them.
 *
 * The parts, each in its own file with its own header:
 *   state.h       the data and the rules for reading it without locks
 *   registry.h    model entries, their references, the registry
 *   analyser.h    the analysis thread and its work queue
 *   publish.h     states and replies made visible
 *   expl_store.h  the bounded store of explanations
 *   model_admin.h models added, reloaded, deleted while serving
 *   workspace.h   the import workspace's folders
 *   resource.h    what the handlers share (404/409 preconditions, jobs)
 *   api.h         the handlers, and the replies they build for the others
 * This file is the only one that knows them all: it wires the API's
 * replies into publication (app->replies), so that nothing below the
 * handlers calls up into them.
 *
 * Threading: app_new, app_start_analyses and app_free from one thread;
 * everything else from any HTTP or worker thread.
 */
#ifndef STRATA_APP_H
#define STRATA_APP_H

#include "api.h"
#include "state.h"
#include "workspace.h"

/* Loads every model folder under cfg->models_root (and the workspace's, when
 * cfg->workspace is set; a folder without a model.json is skipped with a
 * note on the log; a broken model is kept as FAILED), starts the worker
 * pool and precomputes the replies that do not need an analysis. Returns 0
 * and *out, or STRATA_E_IO (the models folder cannot be read),
 * STRATA_E_ARG (bad config) or STRATA_E_NOMEM with err. Free with
 * app_free. */
int app_new(const struct app_config *cfg, struct app **out, char *err);

/* Starts the background thread that loads or computes each model's
 * analysis, one after another, printing progress on the log. Returns 0 or
 * STRATA_E_NOMEM (the thread could not start). */
int app_start_analyses(struct app *app, char *err);

/* Interrupts and joins the analysis thread, stops the worker pool (after
 * the jobs already queued), frees everything. Stop the HTTP server first.
 * NULL-safe. */
void app_free(struct app *app);

#endif
