/*
 * router.h — the route table of strata's HTTP API: (method, path pattern)
 * to a handler, with the request/response model of request.h.
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
 * Tests build a `struct request` by hand and call router_dispatch()
 * directly, then read the `struct response` and release it with
 * response_deinit().
 *
 * Thread safety: a router is immutable after router_new() and may be used by
 * any number of threads at once.
 */
#ifndef STRATA_ROUTER_H
#define STRATA_ROUTER_H

#include <stddef.h>

#include "request.h"

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
