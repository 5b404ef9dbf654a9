/*
 * json.c — JSON request bodies and the builders of JSON replies.
 */
#include "json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

json_t *json_str(const char *s)
{
    json_t *j = json_string(s);
    if (j || !s)
        return j;
    /* Not UTF-8: keep ASCII, replace the rest. */
    size_t n = strlen(s);
    char *copy = malloc(n + 1);
    if (!copy)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        copy[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
    j = json_string(copy);
    free(copy);
    return j;
}
