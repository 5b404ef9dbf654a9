/*
 * router.c — route table compilation and matching, request lookups, response
 * building, and the request-body helpers (multipart/form-data, images).
 *
 * Matching splits the raw path into segments once and compares them with
 * each compiled pattern; a table of a few dozen routes makes a linear scan
 * cheaper than any index. Parameters are decoded only for the chosen route.
 */
#include "router.h"

#include <assert.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "json.h"

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

/* --- percent-decoding ---------------------------------------------------- */

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long http_percent_decode(const char *s, size_t len, char *out, int plus_is_space)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (len - i < 3)
                return -1; /* fewer than two hex digits follow */
            int hi = hex_value((unsigned char)s[i + 1]), lo = hex_value((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out[o++] = ' ';
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
    return (long)o;
}

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

static int compile_route(const struct route *in, struct compiled_route *c, char *err)
{
    memset(c, 0, sizeof *c);
    if (!in->method || !in->pattern || !in->handler)
        return strata_fail(err, STRATA_E_ARG, "route with a NULL method, pattern or handler");
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

int router_new(const struct route *routes, size_t n_routes, struct router **out, char *err)
{
    *out = NULL;
    struct router *r = calloc(1, sizeof *r);
    if (!r)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory compiling routes");
    r->routes = calloc(n_routes ? n_routes : 1, sizeof *r->routes);
    if (!r->routes) {
        free(r);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory compiling routes");
    }
    for (size_t i = 0; i < n_routes; i++) {
        int rc = compile_route(&routes[i], &r->routes[i], err);
        r->n = i + 1; /* so that router_free releases the partial one too */
        if (rc < 0) {
            router_free(r);
            return rc;
        }
    }
    *out = r;
    return 0;
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
    int rc = m->route->handler(req, res);
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

/* --- header values: media types and parameters --------------------------- */

/* Copies the media type of a Content-Type value (before any ';'), trimmed
 * and lower-cased, into out. */
static void media_type(const char *value, char *out, size_t len)
{
    size_t o = 0;
    if (value) {
        while (*value == ' ' || *value == '\t')
            value++;
        for (; *value && *value != ';' && o + 1 < len; value++)
            out[o++] = (char)tolower((unsigned char)*value);
    }
    while (o > 0 && (out[o - 1] == ' ' || out[o - 1] == '\t'))
        o--;
    out[o] = '\0';
}

/* Finds parameter `key` (ignoring case) in the ';'-separated parameters of a
 * header value of length vlen — `form-data; name="image"; filename="a.png"`
 * or `multipart/form-data; boundary=xyz` — and copies its value, unquoted,
 * into out. Returns the value's length, -1 when absent, -2 when it does not
 * fit or a quoted string is not closed. */
static long header_param(const char *v, size_t vlen, const char *key, char *out, size_t len)
{
    size_t klen = strlen(key), i = 0;
    /* Skip the leading token (the media type or disposition type). */
    while (i < vlen && v[i] != ';')
        i++;
    while (i < vlen) {
        i++; /* past ';' */
        while (i < vlen && (v[i] == ' ' || v[i] == '\t'))
            i++;
        size_t name = i;
        while (i < vlen && v[i] != '=' && v[i] != ';')
            i++;
        size_t name_end = i;
        while (name_end > name && (v[name_end - 1] == ' ' || v[name_end - 1] == '\t'))
            name_end--;
        if (i >= vlen || v[i] == ';')
            continue; /* a parameter without a value */
        i++; /* past '=' */
        while (i < vlen && (v[i] == ' ' || v[i] == '\t'))
            i++;
        int match = name_end - name == klen && strncasecmp(v + name, key, klen) == 0;
        size_t o = 0;
        if (i < vlen && v[i] == '"') {
            i++;
            int closed = 0;
            while (i < vlen) {
                char c = v[i++];
                if (c == '"') {
                    closed = 1;
                    break;
                }
                if (c == '\\' && i < vlen)
                    c = v[i++];
                if (match) {
                    if (o + 1 >= len)
                        return -2;
                    out[o++] = c;
                }
            }
            if (!closed)
                return -2;
            while (i < vlen && v[i] != ';')
                i++;
        } else {
            size_t start = i;
            while (i < vlen && v[i] != ';')
                i++;
            size_t end = i;
            while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
                end--;
            if (match) {
                if (end - start + 1 > len)
                    return -2;
                memcpy(out, v + start, end - start);
                o = end - start;
            }
        }
        if (match) {
            out[o] = '\0';
            return (long)o;
        }
    }
    return -1;
}

/* --- multipart/form-data ------------------------------------------------- */

long multipart_boundary(const char *content_type, char *boundary, size_t len, char *err)
{
    char type[64];
    media_type(content_type, type, sizeof type);
    if (strcmp(type, "multipart/form-data") != 0)
        return strata_fail(err, STRATA_E_UNSUPPORTED, "the body is %s, not multipart/form-data",
                           type[0] ? type : "untyped");
    /* RFC 2046: a boundary is 1 to 70 characters. */
    long blen = header_param(content_type, strlen(content_type), "boundary", boundary, len);
    if (blen < 1 || blen > 70)
        return strata_fail(err, STRATA_E_FORMAT,
                           "multipart/form-data needs a boundary parameter of 1 to 70 "
                           "characters in its Content-Type");
    return blen;
}

int multipart_part_headers(const char *h, size_t len, int index, struct multipart_part *ph,
                           char *err)
{
    memset(ph, 0, sizeof *ph);
    int has_disposition = 0;
    size_t i = 0;
    while (i < len) {
        const char *eol = memmem(h + i, len - i, "\r\n", 2);
        size_t line_end = eol ? (size_t)(eol - h) : len;
        const char *line = h + i;
        size_t llen = line_end - i;
        const char *colon = memchr(line, ':', llen);
        if (!colon)
            return strata_fail(err, STRATA_E_FORMAT,
                               "multipart part %d has a header line without ':'", index);
        size_t nlen = (size_t)(colon - line);
        const char *val = colon + 1;
        size_t vlen = llen - nlen - 1;
        while (vlen && (*val == ' ' || *val == '\t')) {
            val++;
            vlen--;
        }
        if (nlen == 19 && strncasecmp(line, "Content-Disposition", 19) == 0) {
            has_disposition = 1;
            long n = header_param(val, vlen, "name", ph->name, sizeof ph->name);
            if (n == -2)
                return strata_fail(err, STRATA_E_FORMAT,
                                   "multipart part %d: malformed or overlong name", index);
            ph->has_name = n >= 0;
            n = header_param(val, vlen, "filename", ph->filename, sizeof ph->filename);
            if (n == -2)
                ph->filename[0] = '\0'; /* an overlong filename is only informative */
        } else if (nlen == 12 && strncasecmp(line, "Content-Type", 12) == 0) {
            char tmp[sizeof ph->content_type];
            size_t n = vlen < sizeof tmp - 1 ? vlen : sizeof tmp - 1;
            memcpy(tmp, val, n);
            tmp[n] = '\0';
            media_type(tmp, ph->content_type, sizeof ph->content_type);
        }
        i = line_end + 2;
    }
    if (!has_disposition || !ph->has_name)
        return strata_fail(err, STRATA_E_FORMAT,
                           "multipart part %d has no Content-Disposition with a name", index);
    return 0;
}

int request_form_part(const struct request *req, const char *name, struct upload *out,
                      char *err)
{
    memset(out, 0, sizeof *out);
    char boundary[80];
    long blen = multipart_boundary(req->content_type, boundary, sizeof boundary, err);
    if (blen < 0)
        return (int)blen;
    char delim[2 + 80 + 2]; /* "\r\n--" + boundary */
    size_t dlen = (size_t)snprintf(delim, sizeof delim, "\r\n--%s", boundary);

    const char *b = (const char *)req->body;
    size_t len = req->body ? req->body_len : 0;
    size_t p;
    /* The first delimiter may open the body or follow a preamble. */
    if (len >= dlen - 2 && memcmp(b, delim + 2, dlen - 2) == 0) {
        p = dlen - 2;
    } else {
        const char *d = len ? memmem(b, len, delim, dlen) : NULL;
        if (!d)
            return strata_fail(err, STRATA_E_FORMAT,
                               "the multipart body does not contain its boundary \"%s\"",
                               boundary);
        p = (size_t)(d - b) + dlen;
    }

    int found = 0;
    for (int index = 1;; index++) {
        /* After a delimiter: "--" closes the body, else CRLF starts a part
         * (optional spaces before it are transport padding). */
        if (len - p >= 2 && b[p] == '-' && b[p + 1] == '-')
            break;
        while (p < len && (b[p] == ' ' || b[p] == '\t'))
            p++;
        if (len - p < 2 || b[p] != '\r' || b[p + 1] != '\n')
            return strata_fail(err, STRATA_E_FORMAT,
                               "the multipart body ends without its closing boundary "
                               "\"--%s--\"",
                               boundary);
        p += 2;
        size_t window = len - p < MULTIPART_MAX_HEADER_BLOCK ? len - p : MULTIPART_MAX_HEADER_BLOCK;
        const char *hend = memmem(b + p, window, "\r\n\r\n", 4);
        if (!hend)
            return strata_fail(err, STRATA_E_FORMAT,
                               "multipart part %d has no end of headers (or over %d bytes of "
                               "headers)",
                               index, MULTIPART_MAX_HEADER_BLOCK);
        struct multipart_part ph;
        int rc = multipart_part_headers(b + p, (size_t)(hend - (b + p)), index, &ph, err);
        if (rc < 0)
            return rc;
        size_t content = (size_t)(hend - b) + 4;
        const char *d = memmem(b + content, len - content, delim, dlen);
        if (!d)
            return strata_fail(err, STRATA_E_FORMAT,
                               "multipart part %d has no closing boundary \"--%s\" after it: "
                               "the body is truncated or the boundary is wrong",
                               index, boundary);
        if (!found && strcmp(ph.name, name) == 0) {
            found = 1;
            out->data = (const unsigned char *)b + content;
            out->len = (size_t)(d - (b + content));
            snprintf(out->content_type, sizeof out->content_type, "%s", ph.content_type);
            snprintf(out->filename, sizeof out->filename, "%s", ph.filename);
        }
        p = (size_t)(d - b) + dlen;
    }
    if (!found) {
        memset(out, 0, sizeof *out);
        return strata_fail(err, STRATA_E_NOTFOUND, "the form has no field named \"%s\"", name);
    }
    return 0;
}

static int is_image_type(const char *t)
{
    return strcmp(t, "image/png") == 0 || strcmp(t, "image/jpeg") == 0 ||
           strcmp(t, "image/jpg") == 0;
}

int request_image_body(const struct request *req, const char *field, struct upload *out,
                       char *err)
{
    memset(out, 0, sizeof *out);
    if (!field)
        field = "image";
    char type[64];
    media_type(req->content_type, type, sizeof type);
    if (is_image_type(type)) {
        if (req->body_len == 0 || !req->body)
            return strata_fail(err, STRATA_E_FORMAT, "the request body is empty: send the image "
                                                     "bytes");
        out->data = req->body;
        out->len = req->body_len;
        snprintf(out->content_type, sizeof out->content_type, "%s", type);
        return 0;
    }
    if (strcmp(type, "multipart/form-data") == 0) {
        int rc = request_form_part(req, field, out, err);
        if (rc == STRATA_E_NOTFOUND)
            return strata_fail(err, STRATA_E_FORMAT,
                               "the form has no field \"%s\": send the image in a file field "
                               "named \"%s\"",
                               field, field);
        if (rc < 0)
            return rc;
        const char *pt = out->content_type;
        if (pt[0] && !is_image_type(pt) && strcmp(pt, "application/octet-stream") != 0) {
            int code = strata_fail(err, STRATA_E_UNSUPPORTED,
                                   "the form field \"%s\" is %s: send a PNG or JPEG image", field,
                                   pt);
            memset(out, 0, sizeof *out);
            return code;
        }
        if (out->len == 0) {
            memset(out, 0, sizeof *out);
            return strata_fail(err, STRATA_E_FORMAT, "the form field \"%s\" is empty", field);
        }
        return 0;
    }
    return strata_fail(err, STRATA_E_UNSUPPORTED,
                       "a body of type %s is not an image: send image/png, image/jpeg or "
                       "multipart/form-data with a field \"%s\"",
                       type[0] ? type : "(none)", field);
}
