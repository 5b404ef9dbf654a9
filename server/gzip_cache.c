/*
 * gzip_cache.c — compressed copies of static files (see gzip_cache.h),
 * made with zlib at its best compression: a copy is made once per version
 * of a file, so the time spent compressing is paid once.
 */
#include "gzip_cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <zlib.h>

struct entry {
    struct gzip_copy copy; /* first: a copy pointer is its entry's */
    atomic_int refs;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

struct gzip_cache {
    pthread_mutex_t mu;
    int n, next;
    struct entry **slots; /* [n] */
};

struct gzip_cache *gzip_cache_new(int max_entries)
{
    struct gzip_cache *c = calloc(1, sizeof *c);
    if (!c || !(c->slots = calloc((size_t)max_entries, sizeof *c->slots))) {
        free(c);
        return NULL;
    }
    c->n = max_entries;
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

void gzip_copy_unref(void *copy)
{
    struct entry *e = copy;
    if (e && atomic_fetch_sub(&e->refs, 1) == 1) {
        free((void *)e->copy.data);
        free(e);
    }
}

void gzip_cache_free(struct gzip_cache *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n; i++)
        gzip_copy_unref(c->slots[i]);
    pthread_mutex_destroy(&c->mu);
    free(c->slots);
    free(c);
}

static int same_file(const struct entry *e, const struct stat *st)
{
    return e->dev == st->st_dev && e->ino == st->st_ino && e->size == st->st_size &&
           e->mtime.tv_sec == st->st_mtim.tv_sec && e->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

/* The whole file compressed as one gzip member, into a new entry. */
static struct entry *compress_file(int fd, const struct stat *st, char *err)
{
    unsigned char *in = malloc((size_t)st->st_size + 1);
    struct entry *e = calloc(1, sizeof *e);
    size_t bound = compressBound((uLong)st->st_size) + 32; /* + the gzip header and trailer */
    unsigned char *out = malloc(bound);
    if (!in || !e || !out) {
        free(in);
        free(e);
        free(out);
        strata_fail(err, STRATA_E_NOMEM, "out of memory compressing a file");
        return NULL;
    }
    size_t got = 0;
    while (got < (size_t)st->st_size) {
        ssize_t r = pread(fd, in + got, (size_t)st->st_size - got, (off_t)got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    z_stream z = {0};
    int ok = got == (size_t)st->st_size &&
             deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16 /* gzip wrapper */, 9,
                          Z_DEFAULT_STRATEGY) == Z_OK;
    if (ok) {
        z.next_in = in;
        z.avail_in = (uInt)got;
        z.next_out = out;
        z.avail_out = (uInt)bound;
        ok = deflate(&z, Z_FINISH) == Z_STREAM_END;
        deflateEnd(&z);
    }
    free(in);
    if (!ok) {
        free(out);
        free(e);
        strata_fail(err, STRATA_E_IO, "compressing a static file failed");
        return NULL;
    }
    e->copy.data = out;
    e->copy.len = z.total_out;
    e->dev = st->st_dev;
    e->ino = st->st_ino;
    e->size = st->st_size;
    e->mtime = st->st_mtim;
    atomic_init(&e->refs, 1); /* the cache's */
    return e;
}

const struct gzip_copy *gzip_cache_get(struct gzip_cache *c, int fd, const struct stat *st,
                                       char *err)
{
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->n; i++)
        if (c->slots[i] && same_file(c->slots[i], st)) {
            struct entry *e = c->slots[i];
            atomic_fetch_add(&e->refs, 1);
            pthread_mutex_unlock(&c->mu);
            return &e->copy;
        }
    pthread_mutex_unlock(&c->mu);
    /* Compressed outside the lock: two requests may both compress a new
     * file; the second copy replaces the first, both stay valid. */
    struct entry *e = compress_file(fd, st, err);
    if (!e)
        return NULL;
    atomic_fetch_add(&e->refs, 1); /* the caller's */
    pthread_mutex_lock(&c->mu);
    int slot = -1;
    for (int i = 0; i < c->n && slot < 0; i++) /* the same file's older version, or a free slot */
        if (!c->slots[i] || (c->slots[i]->dev == st->st_dev && c->slots[i]->ino == st->st_ino))
            slot = i;
    if (slot < 0)
        slot = c->next++ % c->n;
    struct entry *old = c->slots[slot];
    c->slots[slot] = e;
    pthread_mutex_unlock(&c->mu);
    gzip_copy_unref(old);
    return &e->copy;
}

int gzip_accepted(const char *v)
{
    if (!v)
        return 0;
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        const char *tok = v;
        while (*v && *v != ',' && *v != ';' && *v != ' ' && *v != '\t')
            v++;
        size_t n = (size_t)(v - tok);
        int match = (n == 4 && !strncasecmp(tok, "gzip", 4)) ||
                    (n == 6 && !strncasecmp(tok, "x-gzip", 6)) || (n == 1 && *tok == '*');
        /* parameters: only q matters; q=0 (0, 0.0, 0.00, 0.000) refuses */
        int refused = 0;
        while (*v && *v != ',') {
            while (*v == ' ' || *v == '\t' || *v == ';')
                v++;
            if ((v[0] == 'q' || v[0] == 'Q') && v[1] == '=') {
                const char *q = v + 2;
                refused = q[0] == '0' && (q[1] == '\0' || q[1] == ',' || q[1] == ' ' ||
                                          q[1] == ';' ||
                                          (q[1] == '.' && strspn(q + 2, "0") == strcspn(q + 2, ", ;")));
            }
            while (*v && *v != ',' && *v != ';')
                v++;
        }
        if (match)
            return !refused;
    }
    return 0;
}
