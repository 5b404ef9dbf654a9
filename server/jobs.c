/*
 * jobs.c — the bounded worker pool (see jobs.h).
 *
 * One mutex guards the queue and every job's state; jobs are few and long
 * (milliseconds to seconds), so contention on it is irrelevant. A waiting
 * jobs_run keeps its job record on its own stack with its own condition
 * variable, so finishing a job wakes exactly its submitter. The worker never
 * touches a stack job after marking it done under the mutex: the submitter
 * may return (and its stack frame vanish) as soon as the mutex is released.
 */
#include "jobs.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

struct job {
    job_fn fn;
    void *arg;
    void (*done)(void *arg, int result); /* fire-and-forget jobs only */
    int heap; /* allocated by jobs_submit, freed by the worker */
    enum job_state state;
    int result;
    atomic_int cancel;
    pthread_cond_t finished; /* jobs_run only */
    struct job *prev, *next;
};

struct job_pool {
    pthread_mutex_t mu;
    pthread_cond_t work;
    struct job *head, *tail;
    int queued, running, max_queue, stopping;
    unsigned long long completed, rejected, abandoned;
    int n_threads;
    pthread_t *threads;
};

static void queue_remove(struct job_pool *p, struct job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        p->head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        p->tail = j->prev;
    j->prev = j->next = NULL;
    p->queued--;
}

static void *worker_main(void *cls)
{
    struct job_pool *p = cls;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->work, &p->mu);
        if (!p->head)
            break; /* stopping and nothing left to run */
        struct job *j = p->head;
        queue_remove(p, j);
        j->state = JOB_RUNNING;
        p->running++;
        pthread_mutex_unlock(&p->mu);

        int result = j->fn(j->arg, &j->cancel);

        if (j->heap) {
            if (j->done)
                j->done(j->arg, result);
            free(j);
            pthread_mutex_lock(&p->mu);
        } else {
            pthread_mutex_lock(&p->mu);
            j->result = result;
            j->state = JOB_DONE;
            pthread_cond_signal(&j->finished);
            /* j may be gone once the mutex is released. */
        }
        p->running--;
        p->completed++;
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int jobs_new(int workers, int max_queue, struct job_pool **out, char *err)
{
    *out = NULL;
    if (workers < 1 || workers > 1024 || max_queue < 0)
        return strata_fail(err, STRATA_E_ARG,
                           "a worker pool needs 1 to 1024 workers and a queue of >= 0 jobs "
                           "(got %d and %d)",
                           workers, max_queue);
    struct job_pool *p = calloc(1, sizeof *p);
    if (!p)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory creating the worker pool");
    p->threads = calloc((size_t)workers, sizeof *p->threads);
    if (!p->threads) {
        free(p);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory creating the worker pool");
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    p->max_queue = max_queue;
    for (int i = 0; i < workers; i++) {
        int rc = pthread_create(&p->threads[i], NULL, worker_main, p);
        if (rc != 0) {
            jobs_free(p); /* joins the ones that started */
            return strata_fail(err, STRATA_E_NOMEM, "could not start worker thread %d: %s", i,
                               strerror(rc));
        }
        p->n_threads++;
    }
    *out = p;
    return 0;
}

void jobs_free(struct job_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}

/* Appends j to the queue if there is room. Called with the mutex held. */
static int enqueue_locked(struct job_pool *p, struct job *j, char *err)
{
    if (p->stopping)
        return strata_fail(err, STRATA_E_INTERRUPTED, "the server is shutting down");
    /* A job may also wait while every worker is busy only if the queue has
     * room; with idle workers it is picked up at once. */
    int idle = p->n_threads - p->running - p->queued;
    if (idle <= 0 && p->queued >= p->max_queue) {
        p->rejected++;
        return strata_fail(err, STRATA_E_LIMIT,
                           "all %d workers are busy and %d jobs are queued", p->n_threads,
                           p->queued);
    }
    j->state = JOB_QUEUED;
    j->prev = p->tail;
    j->next = NULL;
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    p->queued++;
    pthread_cond_signal(&p->work);
    return 0;
}

int jobs_submit(struct job_pool *p, job_fn fn, void *arg, void (*done)(void *arg, int result),
                char *err)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory queuing a job");
    j->fn = fn;
    j->arg = arg;
    j->done = done;
    j->heap = 1;
    pthread_mutex_lock(&p->mu);
    int rc = enqueue_locked(p, j, err);
    pthread_mutex_unlock(&p->mu);
    if (rc < 0)
        free(j);
    return rc;
}

/* The monotonic time s seconds from now. */
static struct timespec time_in(double s)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    double whole = (double)(long)s;
    t.tv_sec += (time_t)whole;
    t.tv_nsec += (long)((s - whole) * 1e9);
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

static int time_before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

int jobs_run(struct job_pool *p, job_fn fn, void *arg, double timeout_s, char *err)
{
    return jobs_run_watch(p, fn, arg, timeout_s, NULL, NULL, err);
}

int jobs_run_watch(struct job_pool *p, job_fn fn, void *arg, double timeout_s,
                   int (*gone)(void *cls), void *gone_cls, char *err)
{
    struct job j;
    memset(&j, 0, sizeof j);
    j.fn = fn;
    j.arg = arg;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j.finished, &ca);
    pthread_condattr_destroy(&ca);
    struct timespec deadline = time_in(timeout_s > 0 ? timeout_s : 0);

    pthread_mutex_lock(&p->mu);
    int rc = enqueue_locked(p, &j, err);
    if (rc == 0) {
        /* Wake at the deadline, and every JOBS_WATCH_INTERVAL_S to ask
         * whether the submitter is still there; neither once the job has
         * been asked to stop: then only its end is awaited. */
        while (j.state != JOB_DONE) {
            int cancelled = atomic_load(&j.cancel);
            int timing = timeout_s > 0 && !cancelled, watching = gone && !cancelled;
            if (!timing && !watching) {
                pthread_cond_wait(&j.finished, &p->mu);
                continue;
            }
            struct timespec wake = deadline;
            if (watching) {
                struct timespec next = time_in(JOBS_WATCH_INTERVAL_S);
                if (!timing || time_before(&next, &deadline))
                    wake = next;
            }
            if (pthread_cond_timedwait(&j.finished, &p->mu, &wake) != ETIMEDOUT ||
                j.state == JOB_DONE)
                continue;
            struct timespec now = time_in(0);
            int expired = timing && !time_before(&now, &deadline), left = 0;
            if (!expired) {
                if (!watching)
                    continue;
                /* A watch tick. The mutex is released for the call: the
                 * worker may take or finish the job meanwhile. */
                pthread_mutex_unlock(&p->mu);
                left = gone(gone_cls) != 0;
                pthread_mutex_lock(&p->mu);
                if (!left || j.state == JOB_DONE)
                    continue;
                p->abandoned++;
            }
            if (j.state == JOB_QUEUED) {
                queue_remove(p, &j);
                if (left)
                    rc = strata_fail(err, STRATA_E_INTERRUPTED,
                                     "the client went away before the job started");
                else
                    rc = strata_fail(err, STRATA_E_INTERRUPTED,
                                     "the job waited %.1f s in the queue without starting",
                                     timeout_s);
                break;
            }
            atomic_store(&j.cancel, 1); /* running: ask it to stop, then wait */
        }
        if (j.state == JOB_DONE)
            rc = j.result; /* the job reports its own failures through arg */
    }
    pthread_mutex_unlock(&p->mu);
    pthread_cond_destroy(&j.finished);
    return rc;
}

void jobs_get_stats(struct job_pool *p, struct jobs_stats *out)
{
    pthread_mutex_lock(&p->mu);
    out->workers = p->n_threads;
    out->max_queue = p->max_queue;
    out->queued = p->queued;
    out->running = p->running;
    out->completed = p->completed;
    out->rejected = p->rejected;
    out->abandoned = p->abandoned;
    pthread_mutex_unlock(&p->mu);
}
