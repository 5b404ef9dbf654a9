/*
 * analyser.h — the background thread that prepares every model, and its
 * work queue.
 *
 * The queue is the registry itself: the thread looks for the next thing to
 * do on a model, in this order — every analysis first (what the pages show:
 * analysis_load_or_run with the cache folder, QUEUED -> ANALYSING -> READY
 * or FAILED), then the doubt scores (doubt_load_or_calibrate, cached beside
 * the analyses; what predictions carry, "doubt": null and the reason until
 * then, or when a model cannot have one), then their evaluations (the model
 * pages' GET /api/models/{id}/doubt) — and sleeps on app->work when there is
 * none. A model added or reloaded wakes it (analyser_wake). While it works,
 * the model's progress_* fields say where it is (app->mu). The results are
 * made visible through publish.h.
 *
 * A run stops early when the server stops or the model leaves the
 * registry; nothing is published then.
 */
#ifndef STRATA_ANALYSER_H
#define STRATA_ANALYSER_H

#include "state.h"

/* Starts the thread, printing progress on the log. Returns 0 or
 * STRATA_E_NOMEM with err (the thread could not start). */
int analyser_start(struct app *app, char *err);

/* Tells the thread that there may be new work (a model was added). Any
 * thread. */
void analyser_wake(struct app *app);

/* Sets app->stopping, interrupts the thread's run and joins it (nothing
 * when it never started). */
void analyser_stop(struct app *app);

#endif
