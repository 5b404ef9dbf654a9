/* test_routes.c — the API's route preconditions (resource.h): the {id}
 * parameter names a loaded model (404 otherwise), whose analysis is ready
 * (409 otherwise), checked by the router before the handler runs — on a
 * table of the test's own, and on the server's table with its handlers.
 * The app is a real one (app_new) over a temporary models folder: felines
 * (weights, so QUEUED: no analysis is started here) and broken (no
 * weights, so FAILED). */
#include "api.h"
#include "app.h"
#include "check.h"
#include "registry.h"
#include "resource.h"
#include "router.h"

#include <limits.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct app *g_app;
static char g_root[64];

/* --- the app over a temporary models folder ------------------------------ */

static void make_models(void)
{
    const char *models = getenv("STRATA_MODELS") ? getenv("STRATA_MODELS") : "models";
    char src[1024], path[1024];
    strcpy(g_root, "/tmp/strata-routes-XXXXXX");
    if (!mkdtemp(g_root)) {
        perror("mkdtemp");
        exit(1);
    }
    snprintf(src, sizeof src, "%s/felines/model.json", models);
    json_error_t je;
    json_t *j = json_load_file(src, 0, &je);
    if (!j) {
        fprintf(stderr, "%s: %s\n", src, je.text);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/felines", g_root);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/felines/model.json", g_root);
    json_dump_file(j, path, JSON_INDENT(1));
    snprintf(src, sizeof src, "%s/felines/weights.safetensors", models);
    char abs[PATH_MAX];
    snprintf(path, sizeof path, "%s/felines/weights.safetensors", g_root);
    if (!realpath(src, abs) || symlink(abs, path) != 0) {
        perror(src);
        exit(1);
    }
    /* The same description under another id, without weights. */
    json_object_set_new(j, "id", json_string("broken"));
    snprintf(path, sizeof path, "%s/broken", g_root);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/broken/model.json", g_root);
    json_dump_file(j, path, JSON_INDENT(1));
    json_decref(j);
}

static void start_app(void)
{
    make_models();
    struct app_config cfg;
    app_config_defaults(&cfg);
    cfg.models_root = g_root;
    cfg.cache_dir = NULL;
    cfg.workers = 1;
    cfg.log = fopen("/dev/null", "w");
    char err[STRATA_ERR_LEN];
    if (app_new(&cfg, &g_app, err) < 0) {
        fprintf(stderr, "app_new: %s\n", err);
        exit(1);
    }
}

static void stop_app(void)
{
    FILE *log = g_app->cfg.log;
    app_free(g_app);
    fclose(log);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", g_root);
}

static int model_refs(const char *id)
{
    struct app_model *am = app_model_get(g_app, id);
    if (!am)
        return -1;
    int n = atomic_load(&am->refs) - 1; /* not counting ours */
    app_model_put(am);
    return n;
}

/* Dispatches method path (no body) to r; the reply stays in *res. */
static void dispatch(const struct router *r, const char *method, const char *path,
                     struct response *res)
{
    struct request req = {.method = method, .path = path, .app = g_app, .body_fd = -1};
    response_init(res);
    router_dispatch(r, &req, res);
}

/* NULL-safe: a check on a reply that lacks a field fails, not crashes. */
static int starts_with(const char *s, const char *prefix)
{
    return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The reply's serialised body equals want (a JSON text)? */
static int body_is(struct response *res, const char *want)
{
    if (response_serialize_json(res) < 0)
        return 0;
    int same = res->body_len == strlen(want) && memcmp(res->body, want, res->body_len) == 0;
    if (!same)
        printf("#   body %.*s\n#   want %s\n", (int)res->body_len, (const char *)res->body, want);
    return same;
}

/* --- a table of the test's own -------------------------------------------- */

static int handler_calls;
static struct app_model *handler_model;
static int handler_refs; /* the model's references while the handler runs */

static int handle_counted(const struct request *req, struct response *res)
{
    handler_calls++;
    handler_model = req->model;
    handler_refs = handler_model ? atomic_load(&handler_model->refs) : 0;
    return response_json(res, 200, json_pack("{s:b}", "ok", 1));
}

static const struct route guarded_routes[] = {
    {"GET", "/api/models/{id}/any", handle_counted, APP_NEEDS_MODEL},
    {"GET", "/api/models/{id}/ready", handle_counted, APP_NEEDS_ANALYSIS},
};

TEST(a_route_needing_a_model)
{
    char err[STRATA_ERR_LEN];
    struct router *r;
    CHECK(router_new_guarded(guarded_routes, 2, app_route_guard, &r, err) == 0);
    struct response res;
    int base = model_refs("felines");
    CHECK_EQ_INT(base, 1); /* the registry's */

    /* An unknown id: the documented 404 envelope, and the handler never runs. */
    handler_calls = 0;
    dispatch(r, "GET", "/api/models/cats/any", &res);
    CHECK_EQ_INT(res.status, 404);
    CHECK_EQ_INT(handler_calls, 0);
    CHECK(starts_with(response_get_header(&res, "Cache-Control"), "no-store"));
    CHECK(body_is(&res, "{\"error\":{\"code\":\"not_found\",\"message\":\"no model named "
                        "\\\"cats\\\": GET /api/models lists them\"}}"));
    response_deinit(&res);

    /* A loaded model, analysed or not: the handler gets it, referenced
     * until the reply is done with. */
    const char *ids[] = {"felines", "broken"};
    for (int i = 0; i < 2; i++) {
        char path[128];
        snprintf(path, sizeof path, "/api/models/%s/any", ids[i]);
        handler_calls = 0;
        handler_model = NULL;
        int before = model_refs(ids[i]);
        dispatch(r, "GET", path, &res);
        CHECK_EQ_INT(res.status, 200);
        CHECK_EQ_INT(handler_calls, 1);
        CHECK(handler_model && strcmp(handler_model->id, ids[i]) == 0);
        CHECK_EQ_INT(handler_refs, before + 1);
        CHECK_EQ_INT(model_refs(ids[i]), before + 1);
        response_deinit(&res);
        CHECK_EQ_INT(model_refs(ids[i]), before);
    }

    /* The dispatcher's own answers come before the guard's. */
    handler_calls = 0;
    dispatch(r, "POST", "/api/models/cats/any", &res);
    CHECK_EQ_INT(res.status, 405);
    response_deinit(&res);
    dispatch(r, "GET", "/api/models/c%zzats/any", &res);
    CHECK_EQ_INT(res.status, 400);
    response_deinit(&res);
    CHECK_EQ_INT(handler_calls, 0);
    router_free(r);
}

TEST(a_route_needing_an_analysis)
{
    char err[STRATA_ERR_LEN];
    struct router *r;
    CHECK(router_new_guarded(guarded_routes, 2, app_route_guard, &r, err) == 0);
    struct response res;
    handler_calls = 0;

    dispatch(r, "GET", "/api/models/cats/ready", &res);
    CHECK_EQ_INT(res.status, 404);
    response_deinit(&res);

    int base = model_refs("felines");
    dispatch(r, "GET", "/api/models/felines/ready", &res);
    CHECK_EQ_INT(res.status, 409);
    CHECK(body_is(&res, "{\"error\":{\"code\":\"analysing\",\"message\":\"model felines is being "
                        "analysed (queued); try again when GET /api/health says \\\"ready\\\"\"}}"));
    response_deinit(&res);
    CHECK_EQ_INT(model_refs("felines"), base); /* a refusal gives the reference back too */

    dispatch(r, "GET", "/api/models/broken/ready", &res);
    CHECK_EQ_INT(res.status, 409);
    json_t *e = json_object_get(res.json, "error");
    CHECK(starts_with(json_string_value(json_object_get(e, "code")), "analysis_failed"));
    CHECK(starts_with(json_string_value(json_object_get(e, "message")),
                      "model broken cannot be analysed: model broken has no weights"));
    response_deinit(&res);
    CHECK_EQ_INT(handler_calls, 0);

    /* READY lets the handler run (nothing here reads the analysis). */
    struct app_model *am = app_model_get(g_app, "felines");
    atomic_store(&am->state, APP_READY);
    dispatch(r, "GET", "/api/models/felines/ready", &res);
    CHECK_EQ_INT(res.status, 200);
    CHECK_EQ_INT(handler_calls, 1);
    CHECK(handler_model == am);
    response_deinit(&res);
    atomic_store(&am->state, APP_QUEUED);
    app_model_put(am);
    router_free(r);
}

/* --- the server's table ---------------------------------------------------- */

/* Fills a route's pattern with id for {id} and "x" for any other parameter. */
static void fill_pattern(const char *pattern, const char *id, char *out, size_t len)
{
    size_t o = 0;
    for (const char *p = pattern; *p && o + 1 < len;) {
        if (*p == '{') {
            const char *end = strchr(p, '}');
            const char *v = strncmp(p, "{id}", 4) == 0 ? id : "x";
            o += (size_t)snprintf(out + o, len - o, "%s", v);
            p = end + 1;
        } else {
            out[o++] = *p++;
        }
    }
    out[o < len ? o : len - 1] = '\0';
}

TEST(the_table_names_the_preconditions)
{
    /* Routes on a model name it in their flags, so that their handlers can
     * take req->model as given; what needs no analysis is listed. */
    static const char *const model_only[] = {
        "GET /api/models/{id}", "GET /api/models/{id}/graph", "PUT /api/models/{id}/layers",
        "GET /api/models/{id}/doubt",
    };
    for (size_t i = 0; i < app_n_routes; i++) {
        const struct route *rt = &app_routes[i];
        char name[160];
        snprintf(name, sizeof name, "%s %s", rt->method, rt->pattern);
        unsigned want = 0;
        if (strncmp(rt->pattern, "/api/models/{id}", 16) == 0 && strcmp(rt->method, "DELETE")) {
            want = APP_NEEDS_ANALYSIS;
            for (size_t m = 0; m < sizeof model_only / sizeof model_only[0]; m++)
                if (strcmp(name, model_only[m]) == 0)
                    want = APP_NEEDS_MODEL;
        }
        CHECK_MSG((rt->flags & ROUTE_NEEDS_MASK) == want, "%s: needs %#x, want %#x", name,
                  rt->flags & ROUTE_NEEDS_MASK, want);
    }
}

TEST(every_model_route_refuses_an_unknown_model)
{
    char err[STRATA_ERR_LEN];
    struct router *r;
    CHECK(router_new_guarded(app_routes, app_n_routes, app_route_guard, &r, err) == 0);
    int seen = 0;
    for (size_t i = 0; i < app_n_routes; i++) {
        const struct route *rt = &app_routes[i];
        if (strncmp(rt->pattern, "/api/models/{id}", 16) != 0)
            continue;
        char path[256];
        fill_pattern(rt->pattern, "cats", path, sizeof path);
        struct response res;
        dispatch(r, rt->method, path, &res);
        CHECK_MSG(res.status == 404, "%s %s: %d", rt->method, rt->pattern, res.status);
        /* DELETE, which finds the model itself (model_admin.h), says it alike. */
        CHECK_MSG(body_is(&res, "{\"error\":{\"code\":\"not_found\",\"message\":\"no model "
                                "named \\\"cats\\\": GET /api/models lists them\"}}"),
                  "%s %s", rt->method, rt->pattern);
        response_deinit(&res);
        seen++;
    }
    CHECK(seen >= 18);
    router_free(r);
}

TEST(model_routes_before_the_analysis)
{
    /* What each route under /api/models/{id} answers for a model whose
     * analysis is queued and for one that failed, without a body: the
     * preconditions' refusals, or what the handler says first. */
    static const struct {
        const char *method, *pattern;
        int queued;
        const char *queued_code;
        int failed;
        const char *failed_code;
    } want[] = {
        {"GET", "/api/models/{id}", 200, NULL, 200, NULL},
        {"DELETE", "/api/models/{id}", 403, "not_deletable", 403, "not_deletable"},
        {"GET", "/api/models/{id}/graph", 400, "not_imported", 409, "analysis_failed"},
        {"PUT", "/api/models/{id}/layers", 400, "not_imported", 400, "not_imported"},
        {"GET", "/api/models/{id}/doubt", 409, "evaluating", 409, "evaluating"},
    };
    char err[STRATA_ERR_LEN];
    struct router *r;
    CHECK(router_new_guarded(app_routes, app_n_routes, app_route_guard, &r, err) == 0);
    for (size_t i = 0; i < app_n_routes; i++) {
        const struct route *rt = &app_routes[i];
        if (strncmp(rt->pattern, "/api/models/{id}", 16) != 0)
            continue;
        /* Every other route needs the analysis: 409 analysing / analysis_failed. */
        int queued = 409, failed = 409;
        const char *queued_code = "analysing", *failed_code = "analysis_failed";
        for (size_t w = 0; w < sizeof want / sizeof want[0]; w++)
            if (!strcmp(want[w].method, rt->method) && !strcmp(want[w].pattern, rt->pattern)) {
                queued = want[w].queued, queued_code = want[w].queued_code;
                failed = want[w].failed, failed_code = want[w].failed_code;
            }
        for (int f = 0; f < 2; f++) {
            char path[256];
            fill_pattern(rt->pattern, f ? "broken" : "felines", path, sizeof path);
            int before = model_refs(f ? "broken" : "felines");
            struct response res;
            dispatch(r, rt->method, path, &res);
            int status = f ? failed : queued;
            const char *code = f ? failed_code : queued_code;
            CHECK_MSG(res.status == status, "%s %s: %d, want %d", rt->method, path, res.status,
                      status);
            json_t *e = json_object_get(res.json, "error");
            const char *got = json_string_value(json_object_get(e, "code"));
            CHECK_MSG(code ? got && strcmp(got, code) == 0 : e == NULL, "%s %s: %s, want %s",
                      rt->method, path, got ? got : "(none)", code ? code : "(none)");
            response_deinit(&res);
            CHECK_MSG(model_refs(f ? "broken" : "felines") == before, "%s %s keeps a reference",
                      rt->method, path);
        }
    }
    router_free(r);
}

int main(void)
{
    start_app();
    RUN(a_route_needing_a_model);
    RUN(a_route_needing_an_analysis);
    RUN(the_table_names_the_preconditions);
    RUN(every_model_route_refuses_an_unknown_model);
    RUN(model_routes_before_the_analysis);
    stop_app();
    return check_done();
}
