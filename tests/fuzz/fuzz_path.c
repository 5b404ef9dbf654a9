/*
 * fuzz_path.c — libFuzzer target for request paths and query strings:
 * router_match on the API's shapes of routes (parameters decoded in place,
 * refused when they decode to '/' or NUL) and http_percent_decode on the
 * query. The input is "<method> <path>[?<query>]".
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"
#include "url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int handler(const struct request *req, struct response *res)
{
    (void)req;
    (void)res;
    return 0;
}

static const struct route routes[] = {
    {"GET", "/api/health", handler, 0},
    {"GET", "/api/models/{id}", handler, 0},
    {"GET", "/api/models/{id}/layers/{layer}/scatter", handler, 0},
    {"GET", "/api/models/{id}/images/{image}/thumb", handler, 0},
    {"GET", "/api/models/{id}/images/{class}/{file}", handler, 0},
    {"POST", "/api/models/{id}/explain", handler, 0},
    {"POST", "/api/models/{id}/predict", handler, 0},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct router *router;
    if (!router && router_new(routes, sizeof routes / sizeof *routes, &router, NULL) != 0)
        abort();
    if (size > 8192)
        return 0;
    char *line = malloc(size + 1);
    memcpy(line, data, size);
    line[size] = '\0';
    if (strlen(line) != size) { /* a request line holds no NUL */
        free(line);
        return 0;
    }
    char *sp = strchr(line, ' ');
    const char *method = sp ? line : "GET", *path = sp ? sp + 1 : line;
    if (sp)
        *sp = '\0';
    char *q = strchr(path, '?');
    if (q) {
        *q++ = '\0';
        char *out = malloc(strlen(q) + 1);
        long n = http_percent_decode(q, strlen(q), out, 1);
        if (n > (long)strlen(q))
            abort();
        free(out);
    }
    struct route_match *m = malloc(sizeof *m);
    enum route_result rr = router_match(router, method, path, m);
    if (rr == ROUTE_OK) {
        if (m->n_params > ROUTER_MAX_PARAMS)
            abort();
        for (size_t i = 0; i < m->n_params; i++)
            if (strchr(m->params[i].value, '/'))
                abort(); /* a parameter never decodes to a path separator */
    }
    struct response res;
    response_init(&res);
    if (rr != ROUTE_OK)
        router_answer_miss(m, rr, path, &res);
    response_deinit(&res);
    free(m);
    free(line);
    return 0;
}
