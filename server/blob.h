/*
 * blob.h — immutable reply bytes with their entity tag: what the server
 * serialises once (a model's paths, a layer's scatter, a thumbnail) and
 * then sends as many times as it is asked, answering 304 when the client
 * already holds the bytes.
 *
 * A blob never changes. Whoever stores one decides when it is freed (with
 * free()); a reply borrows it, so it must outlive the reply (state.h and
 * publish.h say how the app guarantees that).
 */
#ifndef STRATA_BLOB_H
#define STRATA_BLOB_H

#include <stddef.h>

#include <jansson.h>

#include "request.h"

struct blob {
    size_t len;
    char etag[24]; /* "\"<16 hex digits>\"": FNV-1a 64 of the bytes */
    unsigned char data[];
};

/* Copies len bytes into a new blob (free with free()). NULL when out of
 * memory. */
struct blob *blob_new(const void *data, size_t len);

/* Serialises j compactly (7 significant digits: a float32 read back within
 * one unit of its last digit) into a new blob; j is not consumed. NULL when
 * out of memory (or j is NULL). */
struct blob *blob_json(const json_t *j);

/* blob_json, then drops the reference to j (NULL-safe). */
struct blob *blob_json_steal(json_t *j);

/* Replies 200 with the blob's bytes (borrowed: the blob must outlive the
 * reply), its ETag and Cache-Control (NULL means "no-cache": revalidate,
 * answered 304 when If-None-Match holds the ETag). Returns 0. */
int blob_reply(const struct request *req, struct response *res, const struct blob *b,
               const char *content_type, const char *cache_control);

#endif
