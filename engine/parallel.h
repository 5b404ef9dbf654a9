/*
 * parallel.h — a small persistent thread pool for the engine's loops that
 * OpenBLAS does not run (strata's own sgemm, im2col, write-back, pooling,
 * batch-norm passes, activations, augmentation), so that they use every core.
 *
 * parallel_for(n, fn, ctx) runs fn(ctx, begin, end) over contiguous ranges
 * that cover [0, n) exactly once, on the calling thread and the pool's
 * workers, and returns when all of them are done. Between loops the workers
 * watch for the next one for 50 µs (a forward pass posts them microseconds
 * apart, and a wake-up through the kernel costs as much as a small loop),
 * then sleep on a condition variable, leaving the cores to OpenBLAS's
 * threads and to other processes.
 *
 * Determinism is the caller's side of the contract: how [0, n) is cut
 * depends on the thread count and on timing, so fn must compute every output
 * element in exactly one range, with the same arithmetic whatever the range
 * (no reduction across ranges). Then the result is bit-identical to
 * fn(ctx, 0, n) on one thread.
 *
 * Concurrency. The pool serves one loop at a time. A parallel_for that finds
 * it busy (another thread's loop, or a parallel_for nested inside fn) runs
 * its loop inline on the calling thread, so concurrent and nested callers
 * never wait for each other and never deadlock. Nothing is allocated per
 * call; the workers are started on first use.
 *
 * The worker threads run each range with the calling thread's floating-point
 * environment (rounding, flush-to-zero, enabled traps), so a range computes
 * what the caller would have computed.
 */
#ifndef STRATA_PARALLEL_H
#define STRATA_PARALLEL_H

#include <stddef.h>

/* Upper bound on parallel_set_threads. */
#define PARALLEL_MAX_THREADS 64

/* Work, in floats read plus written, below which a piece of a loop costs
 * less than handing it to another thread (a wake-up is a few microseconds;
 * 32 K floats take 10–30 µs). */
#define PARALLEL_MIN_WORK 32768

typedef void (*parallel_fn)(void *ctx, int begin, int end);

/* Sets how many threads (the caller included) later loops use; call it where
 * the BLAS thread count is set, with the same number. n ≥ 1 is taken as is
 * (capped at PARALLEL_MAX_THREADS); n ≤ 0 restores the default: the
 * environment variable STRATA_THREADS when it holds a number ≥ 1, otherwise
 * the number of online CPUs capped at 8. Safe to call at any time from any
 * thread; a loop already running keeps the count it started with. Starting a
 * worker can fail (out of threads): loops then use the workers that exist.
 * Can't fail. */
void parallel_set_threads(int n);

/* The thread count loops use now (≥ 1). Can't fail. */
int parallel_threads(void);

/* Runs fn over [0, n) split in ranges of at least `grain` indices (fewer
 * only when n < grain), on up to parallel_threads() threads, and returns when
 * every range is done. n ≤ 0 does nothing; n < 2·grain, one thread, a busy
 * pool, or a pool backing off after loops that a loaded machine made slower
 * than one thread (see parallel.c) runs fn(ctx, 0, n) inline. fn must not
 * assume any particular split (see the file comment). Can't fail. */
void parallel_for_grain(int n, int grain, parallel_fn fn, void *ctx);

/* parallel_for_grain with grain 1: for loops whose every index is already
 * worth a thread hand-off. */
void parallel_for(int n, parallel_fn fn, void *ctx);

/* Checking modes, for tests:
 *   PARALLEL_CHECK_OFF      normal operation.
 *   PARALLEL_CHECK_REVERSE  every loop is cut as a parallel run on
 *                           parallel_threads() (at least 2) threads would cut
 *                           it, and its pieces run on the calling thread, last
 *                           piece first: a kernel whose result depends on the
 *                           split or on the order of its pieces shows it
 *                           deterministically.
 *   PARALLEL_CHECK_EAGER    the pool never backs off (see parallel.c): every
 *                           loop that can be split is offered to the workers,
 *                           even on a loaded machine.
 * Process-wide; set it while no loop runs. Can't fail. */
enum parallel_check { PARALLEL_CHECK_OFF, PARALLEL_CHECK_REVERSE, PARALLEL_CHECK_EAGER };
void parallel_set_check(enum parallel_check mode);

/* How many pieces the pool's workers (not the calling threads) have run
 * since the process started: shows that loops really are shared. Can't
 * fail. */
long parallel_worker_pieces(void);

/* The grain that gives each range at least PARALLEL_MIN_WORK of work when
 * one index costs `work_per_index` (floats read plus written). */
static inline int parallel_grain(size_t work_per_index)
{
    if (work_per_index >= PARALLEL_MIN_WORK)
        return 1;
    if (work_per_index == 0)
        work_per_index = 1;
    return (int)((PARALLEL_MIN_WORK + work_per_index - 1) / work_per_index);
}

#endif
