/*
 * request.h — the request/response model of strata's HTTP API and its error
 * envelope: what a handler receives and what it fills.
 *
 * A handler never sees libmicrohttpd. It receives a `struct request` (method,
 * raw path, decoded path and query parameters, headers, the whole body) and
 * fills a `struct response` (status, content type, a JSON value or raw bytes
 * or a file, a few extra headers):
 *
 *     static int handle_layer(const struct request *req, struct response *res)
 *     {
 *         const char *name = request_param(req, "layer");
 *         struct app_model *am = req->model; // the route's precondition found it
 *         ...
 *         if (l < 0)
 *             return response_error(res, 404, "not_found", "%s has no layer %s", am->id, name);
 *         return response_json(res, 200, reply);
 *     }
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
 * Because the structs are plain data, tests build a `struct request` by hand
 * and call a handler (or router_dispatch, router.h) directly, then read the
 * `struct response` and release it with response_deinit().
 *
 * Who fills what: the route table (router.h) the path parameters and, through
 * a route's preconditions, the model; the HTTP layer (http.h) everything
 * else. Request bodies are parsed by multipart.h and json.h.
 */
#ifndef STRATA_REQUEST_H
#define STRATA_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "status.h"

/* Methods as bits, so that a path's allowed methods form one mask. */
enum http_method {
    HTTP_GET = 1 << 0,
    HTTP_HEAD = 1 << 1,
    HTTP_POST = 1 << 2,
    HTTP_PUT = 1 << 3,
    HTTP_DELETE = 1 << 4,
    HTTP_PATCH = 1 << 5,
    HTTP_OPTIONS = 1 << 6,
};

/* The bit of a method name ("GET" -> HTTP_GET), 0 for a method strata does
 * not know. Case-sensitive, as method names are (RFC 9110 §9.1). */
unsigned http_method_bit(const char *method);

/* Formats a method mask as an Allow header value ("GET, HEAD, POST") into
 * buf. Returns buf. Can't fail; truncates at len. */
char *http_allow_format(unsigned mask, char *buf, size_t len);

/* A name/value pair: path parameters, query parameters, headers. Both
 * strings are NUL-terminated and borrowed from whoever built the request. */
struct http_param {
    const char *name;
    const char *value;
};

struct request {
    const char *method;  /* "GET", "POST", ... as received */
    const char *path;    /* raw path, still percent-encoded, no query string */
    const struct http_param *params; /* path parameters, percent-decoded */
    size_t n_params;
    const struct http_param *query; /* query parameters, decoded ('+' is a space) */
    size_t n_query;
    const struct http_param *headers; /* request headers, names as received */
    size_t n_headers;
    const char *content_type; /* the Content-Type header, or NULL */
    const unsigned char *body; /* the whole body (NULL when there is none or it is spooled) */
    size_t body_len;
    /* On a ROUTE_SPOOL_BODY route only: the body as an open, unlinked
     * file of body_len bytes (read it with pread; the HTTP layer closes
     * it); body is NULL. Meaningless on other routes. */
    int body_fd;
    void *app; /* the server's application state, opaque to the framework */
    /* What the router's guard resolved from the path for a route with
     * preconditions (router.h) — in the API, the {id} parameter's struct
     * app_model, kept alive until the reply has been sent — else NULL.
     * Opaque to the framework. */
    void *model;
    /* Set by the HTTP layer: has the client closed its connection? (NULL in
     * requests built by hand.) Read it through request_client_gone. */
    int (*client_gone)(void *cls);
    void *client_gone_cls;
};

/* Lookups. Each returns the value (borrowed, lives as long as the request)
 * or NULL when absent. Path parameter and query names compare exactly; the
 * first of repeated query keys wins; header names compare ignoring case. */
const char *request_param(const struct request *req, const char *name);
const char *request_query(const struct request *req, const char *name);
const char *request_header(const struct request *req, const char *name);

/* Whether the client has closed its connection while the request was being
 * handled — for a handler that waits long (jobs_run_watch) to give up on an
 * answer nobody will read. A client that only shut down its sending side
 * after the request counts as gone too (TCP cannot tell the two apart
 * without writing to it). 0 for requests without the HTTP layer's hook.
 * Cheap (one poll of the socket) and non-blocking. */
int request_client_gone(const struct request *req);

/* Does an If-None-Match header value match the current representation's
 * entity tag `etag` (a quoted string such as "abc", with the quotes, or W/"abc")? The value is a
 * comma-separated list of entity tags, each optionally W/-prefixed, with
 * optional whitespace around them, or "*" (any current representation).
 * Tags compare weakly (RFC 9110 §8.8.3.2: the opaque quoted strings are
 * equal, W/ ignored on both sides). A malformed element matches nothing
 * (`xx"<etag>"` is not the tag). NULL inm matches nothing. */
int http_etag_match(const char *inm, const char *etag);

/* --- responses ----------------------------------------------------------- */

#define RESPONSE_MAX_HEADERS 8
#define RESPONSE_HEADER_NAME 40
#define RESPONSE_HEADER_VALUE 256

struct response_header {
    char name[RESPONSE_HEADER_NAME];
    char value[RESPONSE_HEADER_VALUE];
};

/*
 * Exactly one body kind is set by the response_* functions below: a JSON
 * value, raw bytes, a file descriptor, or nothing. Fields are public for
 * tests to read; handlers set them through the functions.
 */
struct response {
    int status; /* 0 until a response_* call sets it */
    const char *content_type; /* borrowed: a literal or a string outliving the response */
    json_t *json; /* owned: the framework serialises it and drops the reference */
    const void *body; /* raw bytes, owned when body_free is set, else borrowed */
    size_t body_len;
    void (*body_free)(void *cls);
    void *body_free_cls;
    int fd; /* owned file descriptor to send (sendfile), -1 when unused */
    uint64_t fd_size;
    /* Called once when the framework is done with the response: after a
     * borrowed body's last byte is sent (so it may release what keeps those
     * bytes alive), else when the reply is queued or dropped. See
     * response_on_done. */
    void (*done)(void *cls);
    void *done_cls;
    size_t n_headers;
    struct response_header headers[RESPONSE_MAX_HEADERS];
};

/* Prepares an empty response (status 0, no body, fd -1). Can't fail. */
void response_init(struct response *res);

/* Releases what the response owns (JSON reference, owned bytes, fd) and
 * resets it to the response_init state. The HTTP layer hands ownership to
 * libmicrohttpd instead; call this when a response is not sent (tests that
 * call handlers directly, or to replace a half-built reply). */
void response_deinit(struct response *res);

/* Adds a header (e.g. "Cache-Control", "ETag", "Retry-After", "Location")
 * with a printf-formatted value. Returns 0, or STRATA_E_LIMIT when the name or
 * value is too long or RESPONSE_MAX_HEADERS are already set (nothing added).
 * Setting Content-Type or Content-Length here is a programmer error. */
int response_header(struct response *res, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The value of a header set on the response (name ignoring case), or NULL. */
const char *response_get_header(const struct response *res, const char *name);

/* Replies with raw bytes. When free_fn is NULL the bytes are borrowed and
 * must stay valid and unchanged until the response has been sent (a cache
 * that lives as long as the server); otherwise free_fn(free_cls) is called
 * exactly once when the framework is done with them — including when this
 * replaces an earlier body or the response is never sent. content_type is
 * borrowed (see struct response). Returns 0 (can't fail). */
int response_bytes(struct response *res, int status, const char *content_type,
                   const void *data, size_t len, void (*free_fn)(void *), void *free_cls);

/* Replies with the first size bytes of an open file, sent with sendfile.
 * Takes ownership of fd (closed by the framework). Returns 0 (can't fail). */
int response_file(struct response *res, int status, const char *content_type, int fd,
                  uint64_t size);

/* Sets the done callback (see struct response); a second call runs the
 * first callback at once. Can't fail. */
void response_on_done(struct response *res, void (*done)(void *), void *cls);

/* Replies with a status and no body (204, 304, ...). Returns 0. */
int response_empty(struct response *res, int status);

/* --- the error envelope and JSON replies ---------------------------------- */

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

/* Serialises res->json into owned bytes (res->body with free()) and drops
 * the JSON value; content type becomes "application/json". Numbers get 9
 * significant digits: enough for any float32 to read back exactly, and about
 * half the size of jansson's default 17. Does nothing
 * when res holds no JSON. Returns 0, or STRATA_E_NOMEM (res then holds a
 * plain-text 500 so that something can still be sent). */
int response_serialize_json(struct response *res);

#endif
