/*
 * json.c — JSON replies, the error envelope, array builders.
 *
 * jansson refuses strings that are not valid UTF-8 (json_string returns
 * NULL), and error messages quote what the client sent, so messages are
 * repaired (bad bytes become '?') before they go into the envelope.
 */
#include "json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

int request_json_body(const struct request *req, json_t **out, struct response *res)
{
    *out = NULL;
    const char *ct = req->content_type ? req->content_type : "";
    while (*ct == ' ')
        ct++;
    int is_json = strncasecmp(ct, "application/json", 16) == 0 &&
                  (ct[16] == '\0' || ct[16] == ';' || ct[16] == ' ');
    if (!is_json) {
        response_error(res, 415, "unsupported_media_type",
                       "send the parameters as application/json (got %.100s)",
                       req->content_type ? req->content_type : "no Content-Type");
        return STRATA_E_UNSUPPORTED;
    }
    if (!req->body || req->body_len == 0) {
        response_error(res, 400, "bad_request", "the JSON body is empty");
        return STRATA_E_FORMAT;
    }
    json_error_t je;
    json_t *j = json_loadb((const char *)req->body, req->body_len, 0, &je);
    if (!j) {
        response_error(res, 400, "bad_request", "invalid JSON at line %d, column %d: %s",
                       je.line, je.column, je.text);
        return STRATA_E_FORMAT;
    }
    *out = j;
    return 0;
}

json_t *json_number_or_null(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

json_t *json_float_array(const float *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_number_or_null(v[i])) != 0) {
            json_decref(a);
            a = NULL;
        }
    return a;
}

json_t *json_double_array(const double *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_number_or_null(v[i])) != 0) {
            json_decref(a);
            a = NULL;
        }
    return a;
}

json_t *json_int_array(const int *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_integer(v[i])) != 0) {
            json_decref(a);
            a = NULL;
        }
    return a;
}

json_t *json_string_array(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_string(v[i])) != 0) {
            json_decref(a);
            a = NULL;
        }
    return a;
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
