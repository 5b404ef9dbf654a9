/*
 * jobs.h — a bounded worker pool for CPU-heavy requests (predict, LIME,
 * re-clustering).
 *
 * N worker threads take jobs from a FIFO queue of at most Q waiting jobs.
 * A full queue refuses new work at once (STRATA_E_LIMIT) instead of letting
 * latency grow without bound; the handler answers 503 with Retry-After
 * (response_busy in request.h). Running at most N jobs at a time keeps the
 * machine's cores for the jobs themselves rather than for context switches.
 *
 *     struct predict_job pj = {.app = app, .bytes = up.data, ...};
 *     int rc = jobs_run(app->jobs, run_predict, &pj, 60.0, err);
 *     if (rc == STRATA_E_LIMIT)
 *         return response_busy(res, 1);
 *
 * jobs_run blocks the calling HTTP thread until the job is done; the HTTP
 * layer runs one thread per connection (http.h) so that a waiting request
 * does not hold up others.
 *
 * Thread safety: every function may be called from any thread, except
 * jobs_free, which must be called once, after the last submission.
 */
#ifndef STRATA_JOBS_H
#define STRATA_JOBS_H

#include <stdatomic.h>
#include <stddef.h>

#include "status.h"

/*
 * A job. Runs on a worker thread; returns 0 or a negative status (its
 * result). `cancel` becomes non-zero when the submitter stopped waiting
 * (jobs_run timed out, or jobs_run_watch's submitter went away): a long job
 * should poll it between steps (job_cancelled) and return
 * STRATA_E_INTERRUPTED early.
 */
typedef int (*job_fn)(void *arg, const atomic_int *cancel);

static inline int job_cancelled(const atomic_int *cancel)
{
    return cancel && atomic_load_explicit(cancel, memory_order_relaxed);
}

struct job_pool;

struct jobs_stats {
    int workers, max_queue;
    int queued; /* waiting for a worker */
    int running;
    unsigned long long completed, rejected; /* since jobs_new */
    unsigned long long abandoned; /* jobs_run_watch jobs whose submitter left:
                                     dropped from the queue or asked to stop */
};

/* Starts `workers` threads (>= 1) with room for `max_queue` waiting jobs
 * (>= 0; 0 means a job runs only if a worker is idle). Returns 0, or
 * STRATA_E_ARG / STRATA_E_NOMEM (threads could not start) with err. */
int jobs_new(int workers, int max_queue, struct job_pool **out, char *err);

/* Stops taking jobs, lets the workers finish everything already queued,
 * joins them and frees the pool. NULL is allowed. */
void jobs_free(struct job_pool *pool);

/* Queues fn(arg) and returns at once (fire and forget). When the job has
 * run, done(arg, result) is called on the worker thread (done may be NULL);
 * arg must stay valid until then. Returns 0, STRATA_E_LIMIT when the queue
 * is full, or STRATA_E_INTERRUPTED when the pool is shutting down; done is
 * not called in those cases. */
int jobs_submit(struct job_pool *pool, job_fn fn, void *arg, void (*done)(void *arg, int result),
                char *err);

/* Queues fn(arg) and waits for it: returns the job's result, or
 * STRATA_E_LIMIT at once when the queue is full, or STRATA_E_INTERRUPTED
 * when the pool is shutting down or when timeout_s (> 0; <= 0 waits
 * forever) passed while the job was still queued (it is then removed and
 * never runs). A job already running when the timeout passes is asked to
 * stop (its cancel flag) and waited for — arg is the caller's, so the call
 * never returns while the job could still use it; its result is returned.
 * err is written only for the pool's own refusals (LIMIT, INTERRUPTED before
 * running); a job reports its failures through its arg. */
int jobs_run(struct job_pool *pool, job_fn fn, void *arg, double timeout_s, char *err);

/* How often jobs_run_watch asks whether its submitter is still there. */
#define JOBS_WATCH_INTERVAL_S 0.2

/* jobs_run for a submitter that may go away (an HTTP client closing its
 * connection): while it waits, every JOBS_WATCH_INTERVAL_S it calls
 * gone(gone_cls) (without the pool's lock held; it must not block). Once
 * that returns non-zero, a job still queued is removed and never runs
 * (STRATA_E_INTERRUPTED, with err), and a running one is asked to stop (its
 * cancel flag) and waited for, its result returned — as for a timeout.
 * gone NULL makes this jobs_run. */
int jobs_run_watch(struct job_pool *pool, job_fn fn, void *arg, double timeout_s,
                   int (*gone)(void *cls), void *gone_cls, char *err);

/* A snapshot of the pool's counters. Can't fail. */
void jobs_get_stats(struct job_pool *pool, struct jobs_stats *out);

#endif
