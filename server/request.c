/*
 * request.c — request lookups, response building, and the error envelope
 * every reply of the API shares.
 *
 * jansson refuses strings that are not valid UTF-8 (json_string returns
 * NULL), and error messages quote what the client sent, so messages are
 * repaired (bad bytes become '?') before they go into the envelope.
 */
#include "request.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* --- methods ------------------------------------------------------------- */

static const struct {
    const char *name;
    unsigned bit;
} method_table[] = {
    {"GET", HTTP_GET},       {"HEAD", HTTP_HEAD},     {"POST", HTTP_POST},
    {"PUT", HTTP_PUT},       {"DELETE", HTTP_DELETE}, {"PATCH", HTTP_PATCH},
    {"OPTIONS", HTTP_OPTIONS},
};

#define N_METHODS (sizeof method_table / sizeof method_table[0])

unsigned http_method_bit(const char *method)
{
    if (!method)
        return 0;
    for (size_t i = 0; i < N_METHODS; i++)
        if (strcmp(method, method_table[i].name) == 0)
            return method_table[i].bit;
    return 0;
}

char *http_allow_format(unsigned mask, char *buf, size_t len)
{
    size_t used = 0;
    assert(len > 0);
    buf[0] = '\0';
    for (size_t i = 0; i < N_METHODS; i++) {
        if (!(mask & method_table[i].bit))
            continue;
        int n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", method_table[i].name);
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
    }
    return buf;
}

/* --- request lookups ----------------------------------------------------- */

static const char *param_find(const struct http_param *p, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(p[i].name, name) == 0)
            return p[i].value;
    return NULL;
}

const char *request_param(const struct request *req, const char *name)
{
    return param_find(req->params, req->n_params, name);
}

const char *request_query(const struct request *req, const char *name)
{
    return param_find(req->query, req->n_query, name);
}

const char *request_header(const struct request *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

int request_client_gone(const struct request *req)
{
    return req->client_gone ? req->client_gone(req->client_gone_cls) : 0;
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* The opaque quoted string of an entity tag, W/ skipped: *tag and *len
 * (the quotes included); 0 when s[0..n) is not exactly one tag. */
static int opaque_tag(const char *s, size_t n, const char **tag, size_t *len)
{
    if (n >= 2 && s[0] == 'W' && s[1] == '/') {
        s += 2;
        n -= 2;
    }
    if (n < 2 || s[0] != '"' || s[n - 1] != '"')
        return 0;
    for (size_t i = 1; i + 1 < n; i++) /* etagc: no DQUOTE, no controls */
        if (s[i] == '"' || (unsigned char)s[i] < 0x21 || s[i] == 0x7f)
            return 0;
    *tag = s;
    *len = n;
    return 1;
}

int http_etag_match(const char *inm, const char *etag)
{
    const char *want;
    size_t want_len;
    if (!inm || !etag || !opaque_tag(etag, strlen(etag), &want, &want_len))
        return 0;
    const char *p = inm;
    for (;;) {
        /* One element: up to the next comma outside quotes (etagc allows
         * a comma inside a tag). */
        const char *start = p;
        int quoted = 0;
        while (*p && (quoted || *p != ',')) {
            if (*p == '"')
                quoted = !quoted;
            p++;
        }
        const char *end = p;
        while (start < end && is_ows(*start))
            start++;
        while (end > start && is_ows(end[-1]))
            end--;
        size_t n = (size_t)(end - start);
        const char *tag;
        size_t len;
        if (n == 1 && *start == '*')
            return 1;
        if (opaque_tag(start, n, &tag, &len) && len == want_len && memcmp(tag, want, len) == 0)
            return 1;
        if (!*p)
            return 0;
        p++; /* the comma */
    }
}

/* --- responses ----------------------------------------------------------- */

void response_init(struct response *res)
{
    memset(res, 0, sizeof *res);
    res->fd = -1;
}

/* Drops whatever body the response owns, leaving status and headers. */
static void release_body(struct response *res)
{
    if (res->json)
        json_decref(res->json);
    if (res->body_free)
        res->body_free(res->body_free_cls);
    if (res->fd >= 0)
        close(res->fd);
    res->json = NULL;
    res->body = NULL;
    res->body_len = 0;
    res->body_free = NULL;
    res->body_free_cls = NULL;
    res->fd = -1;
    res->fd_size = 0;
    res->content_type = NULL;
}

void response_deinit(struct response *res)
{
    release_body(res);
    if (res->done)
        res->done(res->done_cls);
    response_init(res);
}

void response_on_done(struct response *res, void (*done)(void *), void *cls)
{
    if (res->done)
        res->done(res->done_cls);
    res->done = done;
    res->done_cls = cls;
}

int response_header(struct response *res, const char *name, const char *fmt, ...)
{
    assert(strcasecmp(name, "Content-Type") != 0 && strcasecmp(name, "Content-Length") != 0);
    if (res->n_headers >= RESPONSE_MAX_HEADERS || strlen(name) >= RESPONSE_HEADER_NAME)
        return STRATA_E_LIMIT;
    struct response_header *h = &res->headers[res->n_headers];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(h->value, sizeof h->value, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof h->value)
        return STRATA_E_LIMIT;
    /* A CR or LF would let a value smuggle extra headers into the reply. */
    if (strpbrk(h->value, "\r\n"))
        return STRATA_E_ARG;
    strcpy(h->name, name);
    res->n_headers++;
    return 0;
}

const char *response_get_header(const struct response *res, const char *name)
{
    for (size_t i = 0; i < res->n_headers; i++)
        if (strcasecmp(res->headers[i].name, name) == 0)
            return res->headers[i].value;
    return NULL;
}

int response_bytes(struct response *res, int status, const char *content_type,
                   const void *data, size_t len, void (*free_fn)(void *), void *free_cls)
{
    release_body(res);
    res->status = status;
    res->content_type = content_type;
    res->body = data;
    res->body_len = len;
    res->body_free = free_fn;
    res->body_free_cls = free_cls;
    return 0;
}

int response_file(struct response *res, int status, const char *content_type, int fd,
                  uint64_t size)
{
    assert(fd >= 0);
    release_body(res);
    res->status = status;
    res->content_type = content_type;
    res->fd = fd;
    res->fd_size = size;
    return 0;
}

int response_empty(struct response *res, int status)
{
    release_body(res);
    res->status = status;
    return 0;
}

/* --- the error envelope and JSON replies ---------------------------------- */

/* The reply when even the error reply cannot be built. */
static const char oom_reply[] =
    "{\"error\":{\"code\":\"out_of_memory\",\"message\":\"the server is out of memory\"}}";

/* Replaces every byte that does not start or continue a valid UTF-8
 * sequence with '?', in place. */
static void utf8_repair(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        unsigned char c = *p;
        /* continuation bytes that follow a lead byte 0xxxxxxx, 110xxxxx, 1110xxxx, 11110xxx */
        int n = c < 0x80            ? 0
                : (c >> 5) == 0x6   ? 1
                : (c >> 4) == 0xe   ? 2
                : (c >> 3) == 0x1e  ? 3
                                    : -1;
        if (n < 0 || (n == 1 && c < 0xc2) || (n == 3 && c > 0xf4)) {
            *p++ = '?';
            continue;
        }
        int ok = 1;
        for (int i = 1; i <= n; i++)
            if ((p[i] & 0xc0) != 0x80) {
                ok = 0;
                break;
            }
        /* Overlong three-byte forms and UTF-16 surrogates are invalid too. */
        if (ok && n == 2 && ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0)))
            ok = 0;
        if (ok && n == 3 && ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90)))
            ok = 0;
        if (!ok) {
            *p++ = '?';
            continue;
        }
        p += n + 1;
    }
}

static void free_cb(void *p)
{
    free(p);
}

int response_json(struct response *res, int status, json_t *body)
{
    if (!body)
        return response_error(res, 500, "out_of_memory", "could not build the JSON reply");
    /* response_bytes releases any earlier body; then attach the JSON. */
    response_bytes(res, status, "application/json", NULL, 0, NULL, NULL);
    res->json = body;
    return 0;
}

int response_error(struct response *res, int status, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    utf8_repair(msg);

    response_deinit(res); /* no body or headers of an earlier reply */
    json_t *j = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
    if (!j)
        response_bytes(res, status, "application/json", oom_reply, sizeof oom_reply - 1, NULL,
                       NULL);
    else
        response_json(res, status, j);
    res->status = status;
    response_header(res, "Cache-Control", "no-store");
    return 0;
}

int http_status_for(int rc)
{
    switch (rc) {
    case STRATA_E_NOTFOUND: return 404;
    case STRATA_E_ARG: return 400;
    case STRATA_E_FORMAT: return 400;
    case STRATA_E_LIMIT: return 413;
    case STRATA_E_UNSUPPORTED: return 415;
    case STRATA_E_NOMEM: return 503;
    default: return 500;
    }
}

int response_fail(struct response *res, int rc, const char *err)
{
    static const char *const codes[] = {
        [404] = "not_found", [400] = "bad_input", [413] = "too_large",
        [415] = "unsupported_media_type", [503] = "out_of_memory", [500] = "internal",
    };
    int status = http_status_for(rc);
    const char *code = rc == STRATA_E_ARG ? "bad_request" : codes[status];
    const char *msg = err && err[0] ? err : strata_status_name(rc);
    return response_error(res, status, code, "%s", msg);
}

int response_busy(struct response *res, int retry_after_s)
{
    if (retry_after_s < 1)
        retry_after_s = 1;
    response_error(res, 503, "busy",
                   "the server is busy with other computations; retry in %d s", retry_after_s);
    response_header(res, "Retry-After", "%d", retry_after_s);
    return 0;
}

int response_serialize_json(struct response *res)
{
    if (!res->json)
        return 0;
    char *s = json_dumps(res->json, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(9));
    json_decref(res->json);
    res->json = NULL;
    if (!s) {
        res->status = 500;
        res->content_type = "application/json";
        res->body = oom_reply;
        res->body_len = sizeof oom_reply - 1;
        return STRATA_E_NOMEM;
    }
    res->content_type = "application/json";
    res->body = s;
    res->body_len = strlen(s);
    res->body_free = free_cb;
    res->body_free_cls = s;
    return 0;
}
