/* progress.c — a terminal progress bar (see progress.h). */
#include "progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

double progress_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int progress_is_tty(void)
{
    return isatty(STDERR_FILENO);
}

void progress_begin(struct progress *p, const char *label)
{
    p->label = label;
    p->enabled = progress_is_tty();
    p->last_draw = 0;
    p->started = progress_now();
}

void progress_update(struct progress *p, long done, long total, const char *detail)
{
    if (!p->enabled)
        return;
    double t = progress_now();
    if (done < total && t - p->last_draw < 0.1)
        return;
    p->last_draw = t;
    enum { WIDTH = 28 };
    int filled = total > 0 ? (int)(WIDTH * done / total) : 0;
    char bar[WIDTH + 1];
    for (int i = 0; i < WIDTH; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[WIDTH] = 0;
    fprintf(stderr, "\r\033[K%s [%s] %ld/%ld%s%s", p->label, bar, done, total,
            detail ? "  " : "", detail ? detail : "");
    fflush(stderr);
}

void progress_end(struct progress *p)
{
    if (p->enabled) {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
    }
}
