/*
 * gzip_cache.h — gzip-compressed copies of the static files, made once per
 * version of a file and kept in memory: Plotly's 4.85 MB bundle is sent as
 * about 1.5 MB to every browser that says "Accept-Encoding: gzip".
 *
 * A copy is keyed by the file's device, inode, size and modification time,
 * so an edited page gets a fresh copy and the stale one is dropped. Copies
 * are reference-counted: a reply still being sent keeps its bytes while a
 * newer version replaces them.
 *
 * Thread safety: every function may be called from any thread.
 */
#ifndef STRATA_GZIP_CACHE_H
#define STRATA_GZIP_CACHE_H

#include <stddef.h>
#include <sys/stat.h>

#include "status.h"

struct gzip_cache;
struct gzip_copy {
    size_t len;
    const unsigned char *data; /* gzip member (RFC 1952) of the whole file */
};

/* A cache of at most max_entries copies (oldest replaced first). NULL when
 * out of memory. */
struct gzip_cache *gzip_cache_new(int max_entries);
void gzip_cache_free(struct gzip_cache *c);

/* The compressed copy of the open file fd (st: its fstat), from the cache
 * or made now (reading fd from its start); a new reference the caller
 * gives back with gzip_copy_unref. NULL on a read or memory failure, with
 * err. */
const struct gzip_copy *gzip_cache_get(struct gzip_cache *c, int fd, const struct stat *st,
                                       char *err);
void gzip_copy_unref(void *copy);

/* Whether an Accept-Encoding value accepts gzip: the token "gzip" (or
 * "x-gzip", or "*") without q=0. NULL accepts nothing. */
int gzip_accepted(const char *accept_encoding);

#endif
