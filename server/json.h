/*
 * json.h — JSON in the API: request bodies parsed as JSON, and the builders
 * the replies share (arrays of numbers and strings, numbers that may not be
 * finite, strings from bytes that may not be UTF-8).
 *
 * Replies themselves (response_json) and the error envelope
 * (response_error) are request.h's.
 */
#ifndef STRATA_JSON_H
#define STRATA_JSON_H

#include <stddef.h>

#include <jansson.h>

#include "request.h"

/* Parses a JSON request body into *out (a new reference the caller
 * decrefs). Returns 0, or fills res with a 415 (Content-Type is not
 * application/json) or 400 (empty or invalid JSON, with line and column)
 * reply and returns STRATA_E_UNSUPPORTED or STRATA_E_FORMAT; *out is then
 * NULL. */
int request_json_body(const struct request *req, json_t **out, struct response *res);

/* Builders for arrays; each returns a new reference or NULL when out of
 * memory. Non-finite floats become null (JSON has no NaN). */
json_t *json_float_array(const float *v, size_t n);
json_t *json_double_array(const double *v, size_t n);
json_t *json_int_array(const int *v, size_t n);
json_t *json_string_array(const char *const *v, size_t n);

/* A number as JSON: a real for finite x, null otherwise. */
json_t *json_number_or_null(double x);

/* A JSON string of s; bytes that are not valid UTF-8 become '?' (file
 * names need not be UTF-8, JSON strings must). NULL when out of memory. */
json_t *json_str(const char *s);

#endif
