/*
 * parallel.c — the engine's thread pool (see parallel.h).
 *
 * One process-wide pool of sleeping workers. A loop is posted by bumping a
 * generation counter under the pool lock and broadcasting; the caller then
 * works on it too. The loop is cut into up to PARALLEL_SPLIT contiguous
 * pieces per thread, and every thread (caller included) claims the next piece
 * with an atomic counter until none is left.
 *
 * Why pieces claimed at run time rather than one fixed range per thread: on
 * this 2-core machine the other core is often busy (OpenBLAS's threads
 * yielding, another process) and a woken worker may start late or not at all
 * before the loop ends. With claimed pieces the caller never waits for a
 * worker that has not started: it does the whole loop alone if need be, then
 * closes the loop, and only waits for workers already inside a piece. A
 * worker that wakes after the loop was closed goes back to sleep. Which
 * thread computes which piece changes nothing in the result (parallel.h's
 * contract on fn), so timing cannot show in the output.
 *
 * Backing off. A worker that started a piece and was then preempted (the
 * machine busy with other processes) makes the caller wait for a whole
 * scheduler time slice, milliseconds, for a piece worth microseconds: on an
 * oversubscribed machine a parallel loop is slower than a serial one (seen
 * here at load 9 on 2 cores: loops 2× slower, a training step 1.7× slower).
 * So the caller times the pieces it ran itself, which estimates what the
 * whole loop would have cost on one thread; when a loop of at least
 * PARALLEL_JUDGE_S took PARALLEL_STALL times longer than that estimate,
 * loops run inline for a while — 10 ms, doubling on each further stalled
 * loop up to 250 ms, reset by a loop that went well. A loop that merely
 * gained nothing (memory-bound, both cores waiting on the same memory) is
 * not a stall: backing off for it would also stop the loops that do gain.
 * Results do not change, only who computes them.
 *
 * Locking. `busy` is held by the one thread whose loop the pool runs; others
 * find it taken with trylock and run inline (this is also what makes nested
 * calls safe: the inner call's trylock fails). `lock` guards the posted loop
 * and the counters; workers wait on `wake`, the caller on `idle`, each after
 * spinning briefly on `gen` or `active`, which are therefore also written
 * atomically (and read so, without the lock, while spinning).
 */
#include "parallel.h"

#include <assert.h>
#include <fenv.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

/* Pieces per thread: enough that a late worker leaves little for the caller
 * to wait on, few enough that each piece is still worth a claim. */
#define PARALLEL_SPLIT 4

/* How long an idle worker keeps looking for the next loop before it sleeps:
 * a forward pass posts loops microseconds apart, and a kernel wake-up costs
 * about as much as a small loop. Short, because while it spins the core is
 * not free for OpenBLAS's threads or another process. */
#define PARALLEL_SPIN_S 50e-6

/* Loops shorter than this are not judged: their timing is mostly noise. */
#define PARALLEL_JUDGE_S 200e-6
/* A loop that took this many times its one-thread estimate stalled. */
#define PARALLEL_STALL 1.3
#define PARALLEL_BACKOFF_MIN_S 0.01
#define PARALLEL_BACKOFF_MAX_S 0.25

struct worker {
    pthread_t thread;
    unsigned long seen; /* last generation this worker looked at */
};

/* The floating-point state a worker adopts for the caller's loop. */
struct fp_state {
#if defined(__SSE__)
    unsigned int csr; /* MXCSR: rounding, flush-to-zero, denormals-are-zero, trap masks */
#else
    fenv_t env;
#endif
};

static struct {
    pthread_mutex_t busy;
    pthread_mutex_t lock;
    pthread_cond_t wake, idle;
    unsigned long gen;  /* loops posted so far */
    int open;           /* the posted loop still accepts workers */
    int active;         /* workers inside the posted loop */
    int helpers;        /* workers 0 … helpers − 1 may join it */
    int n_workers;      /* started (only grows) */
    struct worker workers[PARALLEL_MAX_THREADS - 1];
    /* the posted loop */
    parallel_fn fn;
    void *ctx;
    int n, parts;
    int next;           /* next piece to claim, taken atomically */
    struct fp_state fp;
    /* back-off after stalls; touched only by the holder of `busy` */
    double inline_until;  /* run loops inline until this time (s) */
    double backoff;       /* length of the last back-off, 0 after a good loop */
} pool = {
    .busy = PTHREAD_MUTEX_INITIALIZER,
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .idle = PTHREAD_COND_INITIALIZER,
};

/* 0 until the default is resolved or a count is set; read and written
 * atomically, as are the two below. */
static int pool_threads;
static int check_mode = PARALLEL_CHECK_OFF;
static long worker_pieces;

static int default_threads(void)
{
    const char *env = getenv("STRATA_THREADS");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end == '\0' && v >= 1)
            return v > PARALLEL_MAX_THREADS ? PARALLEL_MAX_THREADS : (int)v;
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus < 1 ? 1 : cpus > 8 ? 8 : (int)cpus;
}

void parallel_set_threads(int n)
{
    int t = n >= 1 ? (n > PARALLEL_MAX_THREADS ? PARALLEL_MAX_THREADS : n) : default_threads();
    __atomic_store_n(&pool_threads, t, __ATOMIC_RELAXED);
}

void parallel_set_check(enum parallel_check mode)
{
    __atomic_store_n(&check_mode, (int)mode, __ATOMIC_RELAXED);
}

long parallel_worker_pieces(void)
{
    return __atomic_load_n(&worker_pieces, __ATOMIC_RELAXED);
}

int parallel_threads(void)
{
    int t = __atomic_load_n(&pool_threads, __ATOMIC_RELAXED);
    if (t == 0) {
        /* Two first callers may both resolve it; they agree. */
        t = default_threads();
        __atomic_store_n(&pool_threads, t, __ATOMIC_RELAXED);
    }
    return t;
}

static void fp_capture(struct fp_state *s)
{
#if defined(__SSE__)
    s->csr = _mm_getcsr();
#else
    fegetenv(&s->env);
#endif
}

static void fp_apply(const struct fp_state *s)
{
#if defined(__SSE__)
    /* The low six bits are the sticky exception flags: the worker starts
     * with none raised, or an enabled trap could fire on a flag the caller
     * raised long ago. */
    _mm_setcsr(s->csr & ~0x3fu);
#else
    fesetenv(&s->env);
    feclearexcept(FE_ALL_EXCEPT);
#endif
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Claims pieces of the posted loop until none is left; returns how many
 * this thread ran. */
static int run_pieces(parallel_fn fn, void *ctx, int n, int parts)
{
    for (int done = 0;; done++) {
        int i = __atomic_fetch_add(&pool.next, 1, __ATOMIC_RELAXED);
        if (i >= parts)
            return done;
        int begin = (int)((int64_t)n * i / parts);
        int end = (int)((int64_t)n * (i + 1) / parts);
        fn(ctx, begin, end);
    }
}

/* Spins up to PARALLEL_SPIN_S until done(arg) holds (it reads the pool
 * without the lock, atomically); returns whether it did. */
static int spin_until(int (*done)(const void *arg), const void *arg)
{
    const double until = now_seconds() + PARALLEL_SPIN_S;
    for (int i = 0;; i++) {
        if (done(arg))
            return 1;
        if ((i & 63) == 63 && now_seconds() > until)
            return 0;
#if defined(__SSE__)
        _mm_pause();
#endif
    }
}

/* A loop later than generation *seen has been posted. */
static int next_loop_posted(const void *seen)
{
    return __atomic_load_n(&pool.gen, __ATOMIC_ACQUIRE) != *(const unsigned long *)seen;
}

/* No worker is inside a piece of the posted loop. */
static int workers_out(const void *unused)
{
    (void)unused;
    return __atomic_load_n(&pool.active, __ATOMIC_ACQUIRE) == 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    const int index = (int)(w - pool.workers);
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        if (w->seen == pool.gen) {
            /* The next loop usually follows within microseconds (the next
             * op of a forward pass): wait for it awake for a moment before
             * sleeping, which would cost a wake-up through the kernel. */
            pthread_mutex_unlock(&pool.lock);
            spin_until(next_loop_posted, &w->seen);
            pthread_mutex_lock(&pool.lock);
        }
        while (w->seen == pool.gen)
            pthread_cond_wait(&pool.wake, &pool.lock);
        w->seen = pool.gen;
        if (!pool.open || index >= pool.helpers)
            continue;
        /* atomic: a spinning caller reads it without the lock */
        __atomic_store_n(&pool.active, pool.active + 1, __ATOMIC_RELAXED);
        parallel_fn fn = pool.fn;
        void *ctx = pool.ctx;
        int n = pool.n, parts = pool.parts;
        struct fp_state fp = pool.fp;
        pthread_mutex_unlock(&pool.lock);

        fp_apply(&fp);
        int done = run_pieces(fn, ctx, n, parts);
        __atomic_fetch_add(&worker_pieces, (long)done, __ATOMIC_RELAXED);

        pthread_mutex_lock(&pool.lock);
        __atomic_store_n(&pool.active, pool.active - 1, __ATOMIC_RELEASE);
        if (pool.active == 0 && !pool.open)
            pthread_cond_signal(&pool.idle);
    }
    return NULL;
}

/* Starts workers until there are `want` (or pthread_create fails). Called
 * with `busy` held, so no loop is posted meanwhile and pool.gen is stable. */
static void pool_grow(int want)
{
    sigset_t all, old;
    sigfillset(&all);
    /* Workers inherit a full signal mask: signals (SIGINT for the server's
     * shutdown, SIGPIPE, ...) go to the application's own threads. */
    pthread_sigmask(SIG_SETMASK, &all, &old);
    while (pool.n_workers < want) {
        struct worker *w = &pool.workers[pool.n_workers];
        w->seen = pool.gen;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
            break;
        pthread_mutex_lock(&pool.lock);
        pool.n_workers++;
        pthread_mutex_unlock(&pool.lock);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void parallel_for_grain(int n, int grain, parallel_fn fn, void *ctx)
{
    assert(fn);
    if (n <= 0)
        return;
    if (grain < 1)
        grain = 1;
    const int threads = parallel_threads();
    int parts = n / grain;
    const int mode = __atomic_load_n(&check_mode, __ATOMIC_RELAXED);
    if (mode == PARALLEL_CHECK_REVERSE) {
        const int t = threads < 2 ? 2 : threads;
        if (parts > t * PARALLEL_SPLIT)
            parts = t * PARALLEL_SPLIT;
        if (parts < 1)
            parts = 1;
        for (int i = parts - 1; i >= 0; i--)
            fn(ctx, (int)((int64_t)n * i / parts), (int)((int64_t)n * (i + 1) / parts));
        return;
    }
    if (threads < 2 || parts < 2 || pthread_mutex_trylock(&pool.busy) != 0) {
        fn(ctx, 0, n);
        return;
    }
    const double t_start = now_seconds();
    if (t_start < pool.inline_until && mode != PARALLEL_CHECK_EAGER) {
        pthread_mutex_unlock(&pool.busy);
        fn(ctx, 0, n);
        return;
    }
    int helpers = threads - 1;
    if (pool.n_workers < helpers)
        pool_grow(helpers);
    if (helpers > pool.n_workers)
        helpers = pool.n_workers;
    if (helpers == 0) {
        pthread_mutex_unlock(&pool.busy);
        fn(ctx, 0, n);
        return;
    }
    if (parts > (helpers + 1) * PARALLEL_SPLIT)
        parts = (helpers + 1) * PARALLEL_SPLIT;

    pthread_mutex_lock(&pool.lock);
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n = n;
    pool.parts = parts;
    pool.next = 0;
    pool.helpers = helpers;
    pool.open = 1;
    fp_capture(&pool.fp);
    __atomic_store_n(&pool.gen, pool.gen + 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);

    const int mine = run_pieces(fn, ctx, n, parts);
    const double t_done = now_seconds();

    pthread_mutex_lock(&pool.lock);
    pool.open = 0;
    if (pool.active > 0) {
        /* a worker still inside a piece usually ends within microseconds */
        pthread_mutex_unlock(&pool.lock);
        spin_until(workers_out, NULL);
        pthread_mutex_lock(&pool.lock);
    }
    while (pool.active > 0)
        pthread_cond_wait(&pool.idle, &pool.lock);
    pthread_mutex_unlock(&pool.lock);

    const double t_end = now_seconds(), took = t_end - t_start;
    if (mine > 0 && took >= PARALLEL_JUDGE_S) {
        const double serial = (t_done - t_start) / mine * parts;
        if (took > PARALLEL_STALL * serial) {
            pool.backoff = pool.backoff > 0 ? 2 * pool.backoff : PARALLEL_BACKOFF_MIN_S;
            if (pool.backoff > PARALLEL_BACKOFF_MAX_S)
                pool.backoff = PARALLEL_BACKOFF_MAX_S;
            pool.inline_until = t_end + pool.backoff;
        } else if (took <= serial) {
            pool.backoff = 0;
        }
    }
    pthread_mutex_unlock(&pool.busy);
}

void parallel_for(int n, parallel_fn fn, void *ctx)
{
    parallel_for_grain(n, 1, fn, ctx);
}
