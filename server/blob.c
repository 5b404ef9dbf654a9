/*
 * blob.c — reply bytes and their ETag (FNV-1a 64 of the bytes: cheap, and
 * stable across restarts, so a client's cached copy stays valid).
 */
#include "blob.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

struct blob *blob_new(const void *data, size_t len)
{
    struct blob *b = malloc(sizeof *b + len + 1);
    if (!b)
        return NULL;
    b->len = len;
    if (len)
        memcpy(b->data, data, len);
    b->data[len] = 0;
    snprintf(b->etag, sizeof b->etag, "\"%016llx\"", (unsigned long long)fnv1a(b->data, len));
    return b;
}

struct blob *blob_json(const json_t *j)
{
    if (!j)
        return NULL;
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(7));
    if (!s)
        return NULL;
    struct blob *b = blob_new(s, strlen(s));
    free(s);
    return b;
}

struct blob *blob_json_steal(json_t *j)
{
    struct blob *b = blob_json(j);
    json_decref(j);
    return b;
}

int blob_reply(const struct request *req, struct response *res, const struct blob *b,
               const char *content_type, const char *cache_control)
{
    if (http_etag_match(request_header(req, "If-None-Match"), b->etag))
        response_empty(res, 304);
    else
        response_bytes(res, 200, content_type, b->data, b->len, NULL, NULL);
    response_header(res, "ETag", "%s", b->etag);
    response_header(res, "Cache-Control", "%s", cache_control ? cache_control : "no-cache");
    return 0;
}
