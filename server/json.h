/*
 * json.h — JSON replies and the error envelope.
 *
 * Every error strata's API sends, whoever detects it (dispatcher, static
 * files, a handler), is built by response_error():
 *
 *     HTTP/1.1 404 Not Found
 *     Content-Type: application/json
 *
 *     {"error":{"code":"not_found","message":"no model named cats"}}
 *
 * `code` is a stable snake_case identifier a client can switch on;
 * `message` is a sentence a person can act on. 4xx statuses are the
 * client's fault, 5xx ours.
 *
 * Numbers are serialised with 9 significant digits: enough for any float32
 * to read back exactly, and about half the size of jansson's default 17.
 */
#ifndef STRATA_JSON_H
#define STRATA_JSON_H

#include <stddef.h>

#include <jansson.h>

#include "router.h"

/* Replies with a JSON value. Steals the reference to body (the framework
 * serialises and decrefs it). A NULL body — what jansson constructors
 * return when out of memory — becomes a 500 error reply. Returns 0. */
int response_json(struct response *res, int status, json_t *body);

/* Replies with status and {"error":{"code":code,"message":<formatted>}}.
 * Drops any body and headers set before (an error reply must not carry a
 * success reply's ETag or Cache-Control) and adds "Cache-Control: no-store".
 * Returns 0, so a handler can `return response_error(...)`. */
int response_error(struct response *res, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Replies with the error reply for an engine status rc (< 0) whose message
 * is err, when the engine failed on input the client supplied:
 *   STRATA_E_NOTFOUND -> 404 not_found, STRATA_E_ARG -> 400 bad_request,
 *   STRATA_E_FORMAT -> 400 bad_input, STRATA_E_LIMIT -> 413 too_large,
 *   STRATA_E_UNSUPPORTED -> 415 unsupported_media_type,
 *   STRATA_E_NOMEM -> 503 out_of_memory, anything else -> 500 internal.
 * A failure on the server's own files (a corrupt model on disk) is ours:
 * answer it with response_error(res, 500, ...) instead. Returns 0. */
int response_fail(struct response *res, int rc, const char *err);

/* The HTTP status response_fail() uses for rc. Can't fail. */
int http_status_for(int rc);

/* Replies 503 {"error":{"code":"busy",...}} with "Retry-After: <seconds>",
 * for when the worker pool's queue is full (jobs_run returned
 * STRATA_E_LIMIT). Returns 0. */
int response_busy(struct response *res, int retry_after_s);

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

/* Serialises res->json into owned bytes (res->body with free()) and drops
 * the JSON value; content type becomes "application/json". Does nothing
 * when res holds no JSON. Returns 0, or STRATA_E_NOMEM (res then holds a
 * plain-text 500 so that something can still be sent). */
int response_serialize_json(struct response *res);

#endif
