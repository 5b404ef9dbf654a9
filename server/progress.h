/*
 * progress.h — a one-line progress bar on a terminal.
 *
 * Drawn on stderr only when stderr is a TTY; silent otherwise, so logs and
 * pipes stay clean. Redraws at most ten times a second.
 */
#ifndef STRATA_PROGRESS_H
#define STRATA_PROGRESS_H

struct progress {
    const char *label;
    int enabled;
    double last_draw;
    double started;
};

void progress_begin(struct progress *p, const char *label);

/* Draws `done/total` with a bar and `detail` (may be NULL) after it. */
void progress_update(struct progress *p, long done, long total, const char *detail);

/* Clears the line. */
void progress_end(struct progress *p);

/* Monotonic seconds. */
double progress_now(void);

/* Whether stderr is a terminal (progress bars) — false under CI and pipes. */
int progress_is_tty(void);

#endif
