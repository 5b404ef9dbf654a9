/*
 * router.h — the request/response model of strata's HTTP API and the route
 * table that maps (method, path pattern) to a handler.
 *
 * A handler never sees libmicrohttpd. It receives a `struct request` (method,
 * raw path, decoded path and query parameters, headers, the whole body) and
 * fills a `struct response` (status, content type, a JSON value or raw bytes
 * or a file, a few extra headers):
 *
 *     static int handle_layer(const struct request *req, struct response *res)
 *     {
 *         const char *id = request_param(req, "id");
 *         struct app *app = req->app;
 *         ...
 *         if (!model)
 *             return response_error(res, 404, "not_found", "no model named %s", id);
 *         return response_json(res, 200, reply);
 *     }
 *
 *     static const struct route routes[] = {
 *         {"GET",  "/api/models",                               handle_models},
 *         {"GET",  "/api/models/{id}/layers/{layer}/scatter",   handle_scatter},
 *         {"POST", "/api/models/{id}/predict",                  handle_predict},
 *     };
 *
 * The dispatcher alone answers 404 (no pattern matches the path), 405 (a
 * pattern matches but not for this method; with an Allow header), 400 (a
 * path parameter that does not decode to a clean segment) and 414 (path
 * longer than ROUTER_MAX_PATH); the HTTP layer (http.h) adds 413 and 414
 * for its configured limits. A GET route also answers HEAD (the HTTP layer
 * sends the headers without the body).
 *
 * Because the structs are plain data, tests build a `struct request` by hand
 * and call a handler or router_dispatch() directly, then read the
 * `struct response` and release it with response_deinit().
 *
 * Thread safety: a router is immutable after router_new() and may be used by
 * any number of threads at once.
 */
#ifndef STRATA_ROUTER_H
#define STRATA_ROUTER_H

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

/* --- request bodies ------------------------------------------------------ */

/* One part of a multipart/form-data body, or a whole raw body. The bytes
 * are borrowed from the request body; the strings are copies (truncated to
 * their buffers; empty when the part did not declare them). */
struct upload {
    const unsigned char *data;
    size_t len;
    char content_type[128]; /* the part's (or body's) declared type, lower case */
    char filename[256];
};

/* Finds the form field `name` in a multipart/form-data body. Returns 0 and
 * fills *out; STRATA_E_NOTFOUND when the body is well-formed multipart
 * without that field; STRATA_E_UNSUPPORTED when the body is not multipart;
 * STRATA_E_FORMAT when the multipart structure is broken (no boundary
 * parameter, no closing delimiter, a part without headers or name). An
 * actionable message goes into err (may be NULL). */
int request_form_part(const struct request *req, const char *name, struct upload *out,
                      char *err);

/* The image an upload endpoint received: either the raw body of an
 * image/png or image/jpeg request, or the form field `field` (NULL means
 * "image") of a multipart/form-data request whose declared part type is
 * image/png, image/jpeg, application/octet-stream or absent (the decoder
 * sniffs the bytes). Returns 0 and fills *out, or
 *   STRATA_E_UNSUPPORTED — the request (or part) has another content type: 415;
 *   STRATA_E_FORMAT      — empty body, broken multipart, missing field: 400;
 * with a message in err. response_fail() maps these codes to the reply. */
int request_image_body(const struct request *req, const char *field, struct upload *out,
                       char *err);

/* The pieces of multipart/form-data parsing that a streaming reader
 * (form_spool.h) shares with request_form_part. */
#define MULTIPART_MAX_HEADER_BLOCK 16384

struct multipart_part {
    char name[256];
    int has_name;
    char filename[256];
    char content_type[128]; /* lower case, without parameters */
};

/* The boundary parameter of a multipart/form-data Content-Type (1 to 70
 * characters) into boundary (at least 80 bytes). Returns its length, or
 * STRATA_E_UNSUPPORTED (another media type) / STRATA_E_FORMAT (no usable
 * boundary) with err. */
long multipart_boundary(const char *content_type, char *boundary, size_t len, char *err);

/* Parses the header block of part `index` (1-based, for messages): h[0..len)
 * without the blank line that ends it. Returns 0, or STRATA_E_FORMAT with
 * err (a line without ':', no Content-Disposition with a name). */
int multipart_part_headers(const char *h, size_t len, int index, struct multipart_part *ph,
                           char *err);

/* Decodes %XX escapes of s[0..len) into out (at least len + 1 bytes), also
 * '+' to a space when plus_is_space. NUL-terminates. Returns the decoded
 * length, or -1 for a malformed escape. The result may contain NUL bytes
 * (from %00); callers that need a C string check the length. */
long http_percent_decode(const char *s, size_t len, char *out, int plus_is_space);

/* --- routes -------------------------------------------------------------- */

typedef int (*route_handler)(const struct request *req, struct response *res);

/*
 * A route. The pattern is an absolute path whose segments are literals or
 * `{name}` parameters, each parameter a whole segment: "/api/models/{id}".
 * A handler returns 0 once it has filled the response (success or an error
 * reply built with response_error); a negative status means it failed
 * without replying, and the dispatcher answers 500.
 */
struct route {
    const char *method;
    const char *pattern;
    route_handler handler;
    unsigned flags; /* ROUTE_SPOOL_BODY, or 0 */
};

/* The body goes to an unlinked temporary file instead of memory (for
 * uploads of hundreds of MB): the handler reads it from req->body_fd, and
 * the HTTP layer's spool limits apply instead of max_body (http.h). */
#define ROUTE_SPOOL_BODY 1u

#define ROUTER_MAX_PARAMS 8
#define ROUTER_MAX_PATH 4096
#define ROUTER_MAX_SEGMENTS 32

struct router;

/* Compiles a route table (which is copied; the strings are copied too).
 * Routes are tried in table order, so list a literal route before a
 * parameterised one it overlaps ("/api/models/compare" before
 * "/api/models/{id}"). Returns 0, or STRATA_E_ARG with the offending route
 * in err (unknown method, pattern not starting with '/', malformed or
 * non-segment `{param}`, over ROUTER_MAX_PARAMS parameters, NULL handler),
 * or STRATA_E_NOMEM. Free with router_free. */
int router_new(const struct route *routes, size_t n_routes, struct router **out, char *err);
void router_free(struct router *r);

enum route_result {
    ROUTE_OK = 0,
    ROUTE_NOT_FOUND, /* no pattern matches the path: 404 */
    ROUTE_BAD_METHOD, /* a pattern matches, not for this method: 405 + Allow */
    ROUTE_BAD_PARAM, /* a parameter is a bad escape or decodes to '/' or NUL: 400 */
    ROUTE_TOO_LONG, /* the path is over ROUTER_MAX_PATH: 414 */
};

/* The outcome of matching one request; path parameters are decoded into
 * buf, so the match must outlive the handler call that uses them. */
struct route_match {
    const struct route *route; /* the route to call (ROUTE_OK) */
    unsigned allow; /* methods that a matching pattern allows (for 405) */
    size_t n_params;
    struct http_param params[ROUTER_MAX_PARAMS];
    char buf[ROUTER_MAX_PATH + ROUTER_MAX_PARAMS + 1];
};

/* Matches a method and raw path. Can't fail beyond the returned result. */
enum route_result router_match(const struct router *r, const char *method, const char *path,
                               struct route_match *m);

/* Fills res with the error reply for a match that is not ROUTE_OK (404,
 * 405 with Allow, 400, 414). Returns 0. */
int router_answer_miss(const struct route_match *m, enum route_result rr, const char *path,
                       struct response *res);

/* Points req->params at the match's parameters and calls its handler,
 * turning a handler failure (negative return, or no status set) into a 500
 * reply. Returns 0. */
int router_call(const struct route_match *m, struct request *req, struct response *res);

/* router_match + router_answer_miss or router_call, for callers (tests)
 * without a body to wait for. Returns 0; the reply is in res. */
int router_dispatch(const struct router *r, struct request *req, struct response *res);

#endif
