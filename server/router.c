/*
 * router.c — route table compilation and matching, the dispatcher's own
 * replies (404, 405, 400, 414, and 500 for a handler that failed), and the
 * guard's check of a route's preconditions before its handler.
 *
 * Matching splits the raw path into segments once and compares them with
 * each compiled pattern; a table of a few dozen routes makes a linear scan
 * cheaper than any index. Parameters are decoded only for the chosen route.
 */
#include "router.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "url.h"

/* --- route table --------------------------------------------------------- */

struct segment {
    char *literal; /* NULL for a parameter */
    size_t len;
    int param; /* index into the route's parameter names, -1 for a literal */
};

struct compiled_route {
    struct route route; /* strings owned by the router */
    unsigned method;
    int n_segments;
    struct segment segments[ROUTER_MAX_SEGMENTS];
    int n_params;
    char *param_names[ROUTER_MAX_PARAMS];
};

struct router {
    size_t n;
    struct compiled_route *routes;
    route_guard guard;
};

static void compiled_free(struct compiled_route *c)
{
    free((char *)c->route.method);
    free((char *)c->route.pattern);
    for (int i = 0; i < c->n_segments; i++)
        free(c->segments[i].literal);
    for (int i = 0; i < c->n_params; i++)
        free(c->param_names[i]);
}

static int compile_route(const struct route *in, route_guard guard, struct compiled_route *c,
                         char *err)
{
    memset(c, 0, sizeof *c);
    if (!in->method || !in->pattern || !in->handler)
        return strata_fail(err, STRATA_E_ARG, "route with a NULL method, pattern or handler");
    if ((in->flags & ROUTE_NEEDS_MASK) && !guard)
        return strata_fail(err, STRATA_E_ARG,
                           "route %s has preconditions and the router no guard to check them",
                           in->pattern);
    c->method = http_method_bit(in->method);
    if (!c->method)
        return strata_fail(err, STRATA_E_ARG, "route %s: unknown method \"%s\"", in->pattern,
                           in->method);
    const char *p = in->pattern;
    if (p[0] != '/')
        return strata_fail(err, STRATA_E_ARG, "route %s: a pattern starts with '/'", p);
    c->route.method = strdup(in->method);
    c->route.pattern = strdup(in->pattern);
    c->route.handler = in->handler;
    c->route.flags = in->flags;
    if (!c->route.method || !c->route.pattern)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory compiling routes");
    if (strcmp(p, "/") == 0)
        return 0; /* the root: zero segments */
    p++;
    while (*p) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0)
            return strata_fail(err, STRATA_E_ARG, "route %s: empty segment", in->pattern);
        if (c->n_segments >= ROUTER_MAX_SEGMENTS)
            return strata_fail(err, STRATA_E_ARG, "route %s: over %d segments", in->pattern,
                               ROUTER_MAX_SEGMENTS);
        struct segment *s = &c->segments[c->n_segments++];
        s->param = -1;
        if (p[0] == '{') {
            if (len < 3 || p[len - 1] != '}')
                return strata_fail(err, STRATA_E_ARG,
                                   "route %s: a parameter is a whole segment \"{name}\"",
                                   in->pattern);
            for (size_t i = 1; i + 1 < len; i++)
                if (!(isalnum((unsigned char)p[i]) || p[i] == '_'))
                    return strata_fail(err, STRATA_E_ARG,
                                       "route %s: parameter names use [A-Za-z0-9_]",
                                       in->pattern);
            if (c->n_params >= ROUTER_MAX_PARAMS)
                return strata_fail(err, STRATA_E_ARG, "route %s: over %d parameters",
                                   in->pattern, ROUTER_MAX_PARAMS);
            c->param_names[c->n_params] = strndup(p + 1, len - 2);
            if (!c->param_names[c->n_params])
                return strata_fail(err, STRATA_E_NOMEM, "out of memory compiling routes");
            s->param = c->n_params++;
        } else {
            for (size_t i = 0; i < len; i++)
                if (p[i] == '{' || p[i] == '}' || p[i] == '%' || p[i] == '?')
                    return strata_fail(err, STRATA_E_ARG,
                                       "route %s: literal segments hold plain characters",
                                       in->pattern);
            s->literal = strndup(p, len);
            if (!s->literal)
                return strata_fail(err, STRATA_E_NOMEM, "out of memory compiling routes");
            s->len = len;
        }
        p += len;
        if (*p == '/') {
            p++;
            if (!*p)
                return strata_fail(err, STRATA_E_ARG, "route %s: trailing '/'", in->pattern);
        }
    }
    return 0;
}

int router_new_guarded(const struct route *routes, size_t n_routes, route_guard guard,
                       struct router **out, char *err)
{
    *out = NULL;
    struct router *r = calloc(1, sizeof *r);
    if (!r)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory compiling routes");
    r->guard = guard;
    r->routes = calloc(n_routes ? n_routes : 1, sizeof *r->routes);
    if (!r->routes) {
        free(r);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory compiling routes");
    }
    for (size_t i = 0; i < n_routes; i++) {
        int rc = compile_route(&routes[i], guard, &r->routes[i], err);
        r->n = i + 1; /* so that router_free releases the partial one too */
        if (rc < 0) {
            router_free(r);
            return rc;
        }
    }
    *out = r;
    return 0;
}

int router_new(const struct route *routes, size_t n_routes, struct router **out, char *err)
{
    return router_new_guarded(routes, n_routes, NULL, out, err);
}

void router_free(struct router *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        compiled_free(&r->routes[i]);
    free(r->routes);
    free(r);
}

struct span {
    size_t off, len;
};

/* Does the compiled pattern match the path's segments? */
static int pattern_matches(const struct compiled_route *c, const char *path,
                           const struct span *segs, int n_segs)
{
    if (c->n_segments != n_segs)
        return 0;
    for (int i = 0; i < n_segs; i++) {
        const struct segment *s = &c->segments[i];
        if (s->literal) {
            if (s->len != segs[i].len || memcmp(s->literal, path + segs[i].off, s->len) != 0)
                return 0;
        } else if (segs[i].len == 0) {
            return 0; /* a parameter is never empty */
        }
    }
    return 1;
}

enum route_result router_match(const struct router *r, const char *method, const char *path,
                               struct route_match *m)
{
    m->route = NULL;
    m->guard = r->guard;
    m->allow = 0;
    m->n_params = 0;
    size_t plen = strlen(path);
    if (plen > ROUTER_MAX_PATH)
        return ROUTE_TOO_LONG;
    if (path[0] != '/')
        return ROUTE_NOT_FOUND;

    struct span segs[ROUTER_MAX_SEGMENTS];
    int n_segs = 0;
    if (plen > 1) {
        size_t start = 1;
        for (;;) {
            if (n_segs == ROUTER_MAX_SEGMENTS)
                return ROUTE_NOT_FOUND; /* deeper than any pattern can be */
            const char *slash = memchr(path + start, '/', plen - start);
            size_t end = slash ? (size_t)(slash - path) : plen;
            segs[n_segs].off = start;
            segs[n_segs].len = end - start;
            n_segs++;
            if (!slash)
                break;
            start = end + 1;
        }
    }

    unsigned want = http_method_bit(method);
    const struct compiled_route *chosen = NULL, *get_for_head = NULL;
    for (size_t i = 0; i < r->n; i++) {
        const struct compiled_route *c = &r->routes[i];
        if (!pattern_matches(c, path, segs, n_segs))
            continue;
        m->allow |= c->method | (c->method == HTTP_GET ? HTTP_HEAD : 0);
        if (!chosen && c->method == want)
            chosen = c;
        if (!get_for_head && want == HTTP_HEAD && c->method == HTTP_GET)
            get_for_head = c;
    }
    if (!chosen)
        chosen = get_for_head;
    if (!chosen)
        return m->allow ? ROUTE_BAD_METHOD : ROUTE_NOT_FOUND;

    /* Decode the parameters into m->buf, one after another. */
    size_t used = 0;
    for (int i = 0; i < n_segs; i++) {
        const struct segment *s = &chosen->segments[i];
        if (s->param < 0)
            continue;
        char *out = m->buf + used;
        long n = http_percent_decode(path + segs[i].off, segs[i].len, out, 0);
        if (n < 0 || memchr(out, '/', (size_t)n) || memchr(out, '\0', (size_t)n))
            return ROUTE_BAD_PARAM;
        m->params[m->n_params].name = chosen->param_names[s->param];
        m->params[m->n_params].value = out;
        m->n_params++;
        used += (size_t)n + 1;
    }
    m->route = &chosen->route;
    return ROUTE_OK;
}

int router_answer_miss(const struct route_match *m, enum route_result rr, const char *path,
                       struct response *res)
{
    switch (rr) {
    case ROUTE_NOT_FOUND:
        return response_error(res, 404, "not_found", "no resource at %.200s", path);
    case ROUTE_BAD_METHOD: {
        char allow[96];
        http_allow_format(m->allow, allow, sizeof allow);
        response_error(res, 405, "method_not_allowed", "%.200s allows %s", path, allow);
        response_header(res, "Allow", "%s", allow);
        return 0;
    }
    case ROUTE_BAD_PARAM:
        return response_error(res, 400, "bad_path",
                              "a path parameter in %.200s is a malformed escape or decodes to "
                              "'/' or NUL",
                              path);
    case ROUTE_TOO_LONG:
        return response_error(res, 414, "uri_too_long", "the path is over %d bytes",
                              ROUTER_MAX_PATH);
    case ROUTE_OK:
        break;
    }
    assert(!"router_answer_miss called with ROUTE_OK");
    return 0;
}

int router_call(const struct route_match *m, struct request *req, struct response *res)
{
    assert(m->route);
    req->params = m->params;
    req->n_params = m->n_params;
    req->model = NULL;
    /* A refusal goes through the checks below like a handler's reply, so
     * that a guard which forgot to fill res still sends a valid 500. */
    unsigned needs = m->route->flags & ROUTE_NEEDS_MASK;
    int rc = 0;
    if (!needs || m->guard(needs, req, res) > 0)
        rc = m->route->handler(req, res);
    if (rc < 0) {
        return response_error(res, 500, "internal", "%s %s failed (%s)", req->method,
                              m->route->pattern, strata_status_name(rc));
    }
    if (res->status < 100 || res->status > 599)
        return response_error(res, 500, "internal", "%s %s produced no valid reply",
                              req->method, m->route->pattern);
    return 0;
}

int router_dispatch(const struct router *r, struct request *req, struct response *res)
{
    struct route_match *m = malloc(sizeof *m); /* 4 KiB: too big for some thread stacks */
    if (!m)
        return response_error(res, 503, "out_of_memory", "the server is out of memory");
    enum route_result rr = router_match(r, req->method, req->path, m);
    int rc = rr == ROUTE_OK ? router_call(m, req, res) : router_answer_miss(m, rr, req->path, res);
    free(m);
    return rc;
}
