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
 * Preconditions. A route's flags may name what its handler needs before it
 * can run — "the {id} parameter names a loaded model", "whose analysis is
 * ready" — as bits of ROUTE_NEEDS_MASK:
 *
 *     {"GET", "/api/models/{id}/paths", handle_paths, APP_NEEDS_ANALYSIS},
 *
 * What the bits mean is the application's (resource.h defines the API's):
 * the router hands them to the guard it was built with, which runs after
 * every reply above and just before the handler, and either refuses the
 * request (404, 409 ...) or lets the handler run with what it resolved in
 * req->model. The router itself knows nothing of models.
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
 * Checks a route's preconditions: `needs` is its flags & ROUTE_NEEDS_MASK
 * (never 0), the request has its path parameters and its body. Returns 1
 * to let the handler run — after setting req->model to what it resolved,
 * if anything, and arranging its release with response_on_done — or 0
 * once it has filled res with the refusal; the handler is not called then.
 * A refusal without a valid status becomes a 500, as a handler's does.
 */
typedef int (*route_guard)(unsigned needs, struct request *req, struct response *res);

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
    unsigned flags; /* ROUTE_SPOOL_BODY, preconditions (ROUTE_NEEDS_MASK), or 0 */
};

/* The body goes to an unlinked temporary file instead of memory (for
 * uploads of hundreds of MB): the handler reads it from req->body_fd, and
 * the HTTP layer's spool limits apply instead of max_body (http.h). */
#define ROUTE_SPOOL_BODY 1u

/* The flag bits left to the application for preconditions (see above):
 * it defines each as a bit of (0xff << ROUTE_NEEDS_SHIFT). */
#define ROUTE_NEEDS_SHIFT 8
#define ROUTE_NEEDS_MASK (0xffu << ROUTE_NEEDS_SHIFT)

#define ROUTER_MAX_PARAMS 8
#define ROUTER_MAX_PATH 4096
#define ROUTER_MAX_SEGMENTS 32

struct router;

/* Compiles a route table (which is copied; the strings are copied too)
 * whose preconditions, if any, `guard` checks. Routes are tried in table
 * order, so list a literal route before a parameterised one it overlaps
 * ("/api/models/compare" before "/api/models/{id}"). Returns 0, or
 * STRATA_E_ARG with the offending route in err (unknown method, pattern
 * not starting with '/', malformed or non-segment `{param}`, over
 * ROUTER_MAX_PARAMS parameters, NULL handler, preconditions and no
 * guard), or STRATA_E_NOMEM. Free with router_free. */
int router_new_guarded(const struct route *routes, size_t n_routes, route_guard guard,
                       struct router **out, char *err);

/* router_new_guarded without a guard, for a table without preconditions. */
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
    route_guard guard; /* the router's, for the route's preconditions */
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

/* Points req->params at the match's parameters, clears req->model, has
 * the guard check the route's preconditions and, unless it refuses, calls
 * the handler, turning a handler failure (negative return, or no status
 * set) into a 500 reply. Returns 0. */
int router_call(const struct route_match *m, struct request *req, struct response *res);

/* router_match + router_answer_miss or router_call, for callers (tests)
 * without a body to wait for. Returns 0; the reply is in res. */
int router_dispatch(const struct router *r, struct request *req, struct response *res);

#endif
