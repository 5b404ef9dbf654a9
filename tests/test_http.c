/* test_http.c — the HTTP layer: router, request/response helpers, multipart,
 * JSON envelope, static files, worker pool, and a real server on a free
 * loopback port driven with libcurl and raw sockets. */
#include "check.h"
#include "gzip_cache.h"
#include "http.h"
#include "jobs.h"
#include "json.h"
#include "multipart.h"
#include "request.h"
#include "rng.h"
#include "router.h"
#include "static.h"
#include "url.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* test application: routes and handlers                                    */

static __attribute__((returns_nonnull)) void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        abort();
    return p;
}

struct test_app {
    struct job_pool *pool;
};

static pthread_mutex_t upload_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned char *last_upload; /* copy of what the upload handler got */
static size_t last_upload_len;
static char last_upload_type[128], last_upload_name[256];

static void remember_upload(const struct upload *up)
{
    pthread_mutex_lock(&upload_mu);
    free(last_upload);
    last_upload = xmalloc(up->len ? up->len : 1);
    memcpy(last_upload, up->data, up->len);
    last_upload_len = up->len;
    snprintf(last_upload_type, sizeof last_upload_type, "%s", up->content_type);
    snprintf(last_upload_name, sizeof last_upload_name, "%s", up->filename);
    pthread_mutex_unlock(&upload_mu);
}

static void forget_upload(void)
{
    pthread_mutex_lock(&upload_mu);
    free(last_upload);
    last_upload = NULL;
    last_upload_len = 0;
    last_upload_type[0] = last_upload_name[0] = '\0';
    pthread_mutex_unlock(&upload_mu);
}

static int handle_item_part(const struct request *req, struct response *res)
{
    const char *q = request_query(req, "q"), *n = request_query(req, "n");
    json_t *j = json_pack("{s:s,s:s,s:s?,s:s?,s:s?}", "id", request_param(req, "id"), "part",
                          request_param(req, "part"), "q", q, "n", n, "accept",
                          request_header(req, "accept"));
    response_header(res, "Cache-Control", "max-age=60");
    return response_json(res, 200, j);
}

static int handle_items(const struct request *req, struct response *res)
{
    static const char *const names[] = {"alpha", "beta", "gamma"};
    return response_json(res, 200, json_pack("{s:o}", "items", json_string_array(names, 3)));
}

static int handle_items_compare(const struct request *req, struct response *res)
{
    return response_json(res, 200, json_pack("{s:s}", "route", "compare"));
}

static int handle_item(const struct request *req, struct response *res)
{
    return response_json(res, 200, json_pack("{s:s,s:s}", "route", "item", "id",
                                             request_param(req, "id")));
}

static int handle_create(const struct request *req, struct response *res)
{
    response_json(res, 201, json_pack("{s:b}", "created", 1));
    response_header(res, "Location", "/api/items/new");
    return 0;
}

static int handle_upload(const struct request *req, struct response *res)
{
    struct upload up;
    char err[STRATA_ERR_LEN];
    int rc = request_image_body(req, request_query(req, "field"), &up, err);
    if (rc < 0)
        return response_fail(res, rc, err);
    remember_upload(&up);
    return response_json(res, 200, json_pack("{s:I,s:s,s:s}", "len", (json_int_t)up.len, "type",
                                              up.content_type, "filename", up.filename));
}

static int handle_form(const struct request *req, struct response *res)
{
    struct upload up;
    char err[STRATA_ERR_LEN], note[64];
    int rc = request_form_part(req, "note", &up, err);
    if (rc < 0)
        return response_fail(res, rc, err);
    snprintf(note, sizeof note, "%.*s", (int)up.len, (const char *)up.data);
    return response_json(res, 200, json_pack("{s:s}", "note", note));
}

static int handle_echo_json(const struct request *req, struct response *res)
{
    json_t *in;
    if (request_json_body(req, &in, res) < 0)
        return 0;
    return response_json(res, 200, json_pack("{s:o}", "got", in));
}

static int handle_fail(const struct request *req, struct response *res)
{
    return STRATA_E_IO; /* a handler that failed without replying */
}

static int handle_slow(const struct request *req, struct response *res)
{
    const char *ms = request_query(req, "ms");
    usleep((useconds_t)(ms ? atoi(ms) : 300) * 1000);
    static const char text[] = "slow but done";
    return response_bytes(res, 200, "text/plain", text, sizeof text - 1, NULL, NULL);
}

static int square_job(void *arg, const atomic_int *cancel)
{
    int *v = arg;
    *v = *v * *v;
    return 0;
}

static int handle_job(const struct request *req, struct response *res)
{
    struct test_app *app = req->app;
    int v = 7;
    char err[STRATA_ERR_LEN];
    int rc = jobs_run(app->pool, square_job, &v, 5.0, err);
    if (rc == STRATA_E_LIMIT)
        return response_busy(res, 1);
    if (rc < 0)
        return response_fail(res, rc, err);
    return response_json(res, 200, json_pack("{s:i}", "result", v));
}

/* /api/watch?ms=N: a job of N ms on the pool that gives up when the
 * client goes away (jobs_run_watch + request_client_gone). */
static atomic_int watch_started, watch_cancelled, watch_finished;

static int watched_job(void *arg, const atomic_int *cancel)
{
    const int *ms = arg;
    atomic_fetch_add(&watch_started, 1);
    for (int t = 0; t < *ms; t++) {
        if (job_cancelled(cancel)) {
            atomic_fetch_add(&watch_cancelled, 1);
            return STRATA_E_INTERRUPTED;
        }
        usleep(1000);
    }
    atomic_fetch_add(&watch_finished, 1);
    return 0;
}

static int request_gone(void *cls)
{
    return request_client_gone(cls);
}

static int handle_watch(const struct request *req, struct response *res)
{
    struct test_app *app = req->app;
    const char *ms = request_query(req, "ms");
    int v = ms ? atoi(ms) : 0;
    char err[STRATA_ERR_LEN];
    int rc = jobs_run_watch(app->pool, watched_job, &v, 0, request_gone, (void *)req, err);
    if (rc == STRATA_E_LIMIT)
        return response_busy(res, 1);
    if (rc < 0)
        return response_fail(res, rc, err);
    return response_json(res, 200, json_pack("{s:i}", "ms", v));
}

static const struct route test_routes[] = {
    {"GET", "/api/items", handle_items, 0},
    {"POST", "/api/items", handle_create, 0},
    {"GET", "/api/items/compare", handle_items_compare, 0},
    {"GET", "/api/items/{id}", handle_item, 0},
    {"GET", "/api/items/{id}/parts/{part}", handle_item_part, 0},
    {"POST", "/api/upload", handle_upload, 0},
    {"POST", "/api/form", handle_form, 0},
    {"POST", "/api/json", handle_echo_json, 0},
    {"GET", "/api/fail", handle_fail, 0},
    {"GET", "/api/slow", handle_slow, 0},
    {"POST", "/api/job", handle_job, 0},
    {"GET", "/api/watch", handle_watch, 0},
};
#define N_TEST_ROUTES (sizeof test_routes / sizeof test_routes[0])

/* ------------------------------------------------------------------------ */
/* the shared server and its temp folder of static files                    */

static struct router *g_router;
static struct static_files *g_files;
static struct http_server *g_srv;
static struct test_app g_app;
static FILE *g_log;
static char g_root[64];
static unsigned g_port;

static void write_file(const char *rel, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", g_root, rel);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fwrite(data, 1, len, f);
    fclose(f);
}

static void write_text(const char *rel, const char *text)
{
    write_file(rel, text, strlen(text));
}

static void make_dir(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", g_root, rel);
    mkdir(path, 0755);
}

static const unsigned char png_bytes[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13};

static void make_tree(void)
{
    strcpy(g_root, "/tmp/strata-http-XXXXXX");
    if (!mkdtemp(g_root)) {
        perror("mkdtemp");
        exit(1);
    }
    make_dir("web");
    make_dir("web/sub");
    make_dir("static");
    make_dir("node");
    make_dir("outside");
    write_text("web/index.html", "<!doctype html><title>index</title>");
    write_text("web/model.html", "<!doctype html><title>model page</title>");
    write_text("web/app.js", "export const x = 1;\n");
    write_text("web/app.mjs", "export const y = 2;\n");
    write_text("web/style.css", "body { margin: 0 }\n");
    write_text("web/data.json", "{\"a\":1}");
    write_text("web/app.js.map", "{\"version\":3}");
    write_file("web/pic.png", png_bytes, sizeof png_bytes);
    write_text("web/photo.JPG", "jpegish");
    write_text("web/font.woff2", "wOF2");
    write_text("web/favicon.ico", "ico");
    write_text("web/notes.txt", "plain notes\n");
    write_text("web/blob.bin", "bin");
    write_text("web/sub/index.html", "sub index");
    write_text("web/.hidden", "hidden stuff");
    write_text("static/logo.svg", "<svg xmlns=\"http://www.w3.org/2000/svg\"/>");
    write_text("node/lib.js", "vendored library");
    write_text("outside/secret.txt", "TOPSECRET");
    write_text("secret.txt", "TOPSECRET");
    char target[512], link[512];
    snprintf(target, sizeof target, "%s/outside/secret.txt", g_root);
    snprintf(link, sizeof link, "%s/web/link_out.txt", g_root);
    if (symlink(target, link) != 0)
        perror("symlink");
    snprintf(target, sizeof target, "%s/outside", g_root);
    snprintf(link, sizeof link, "%s/web/dir_out", g_root);
    if (symlink(target, link) != 0)
        perror("symlink");
    /* A symlink that stays inside is fine. */
    snprintf(link, sizeof link, "%s/web/alias.js", g_root);
    if (symlink("app.js", link) != 0)
        perror("symlink");
}

static void remove_tree(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", g_root);
}

static void start_server(void)
{
    char err[STRATA_ERR_LEN];
    make_tree();
    if (router_new(test_routes, N_TEST_ROUTES, &g_router, err) < 0) {
        fprintf(stderr, "router: %s\n", err);
        exit(1);
    }
    static const struct static_mount mounts[] = {
        {"/", "web", NULL},
        {"/static/", "static", "public, max-age=3600"},
        {"/vendor/lib.js", "node/lib.js", "public, max-age=86400"},
        {"/vendor/missing.js", "node/missing.js", NULL},
    };
    if (static_new(g_root, mounts, 4, &g_files, err) < 0) {
        fprintf(stderr, "static: %s\n", err);
        exit(1);
    }
    if (jobs_new(1, 1, &g_app.pool, err) < 0) {
        fprintf(stderr, "jobs: %s\n", err);
        exit(1);
    }
    g_log = tmpfile();
    struct http_config cfg;
    http_config_defaults(&cfg);
    cfg.router = g_router;
    cfg.files = g_files;
    cfg.app = &g_app;
    cfg.log = g_log;
    if (http_server_start(&cfg, &g_srv, err) < 0) {
        fprintf(stderr, "server: %s\n", err);
        exit(1);
    }
    g_port = http_server_port(g_srv);
}

static void stop_server(void)
{
    http_server_stop(g_srv);
    jobs_free(g_app.pool);
    static_free(g_files);
    router_free(g_router);
    fclose(g_log);
    remove_tree();
    forget_upload();
}

/* ------------------------------------------------------------------------ */
/* client helpers                                                           */

struct reply {
    CURLcode rc;
    long status;
    char *body;
    size_t len;
    char headers[8192];
    size_t hlen;
    double seconds;
};

static size_t on_write(char *data, size_t size, size_t n, void *cls)
{
    struct reply *r = cls;
    size_t len = size * n;
    char *b = realloc(r->body, r->len + len + 1);
    if (!b)
        return 0;
    memcpy(b + r->len, data, len);
    r->body = b;
    r->len += len;
    r->body[r->len] = '\0';
    return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *cls)
{
    struct reply *r = cls;
    size_t len = size * n;
    if (r->hlen + len < sizeof r->headers) {
        memcpy(r->headers + r->hlen, data, len);
        r->hlen += len;
        r->headers[r->hlen] = '\0';
    }
    return len;
}

static void reply_free(struct reply *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* The value of response header `name` (last one wins) copied into out. */
static const char *reply_header(const struct reply *r, const char *name, char *out, size_t cap)
{
    const char *found = NULL;
    size_t nlen = strlen(name);
    for (const char *p = r->headers; *p;) {
        const char *eol = strstr(p, "\r\n");
        if (!eol)
            break;
        if ((size_t)(eol - p) > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            while (*v == ' ')
                v++;
            snprintf(out, cap, "%.*s", (int)(eol - v), v);
            found = out;
        }
        p = eol + 2;
    }
    return found;
}

struct body_source {
    size_t total, sent;
};

static size_t on_read(char *buf, size_t size, size_t n, void *cls)
{
    struct body_source *src = cls;
    size_t want = size * n, left = src->total - src->sent;
    if (want > left)
        want = left;
    memset(buf, 'x', want);
    src->sent += want;
    return want;
}

struct request_opts {
    const char *method;
    const char *ctype;
    const void *body;
    size_t len;
    const char *header; /* one extra request header line */
    struct body_source *stream; /* body produced by a callback */
    int chunked; /* with stream: no Content-Length */
    int no_expect; /* suppress "Expect: 100-continue" */
    CURL *handle; /* reuse (keep-alive) */
};

static void http_do(const char *path, const struct request_opts *o, struct reply *r)
{
    memset(r, 0, sizeof *r);
    CURL *c = o && o->handle ? o->handle : curl_easy_init();
    char url[8192];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", g_port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    struct curl_slist *hdrs = NULL;
    const char *method = o && o->method ? o->method : "GET";
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        if (o->stream) {
            curl_easy_setopt(c, CURLOPT_POST, 1L);
            curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
            curl_easy_setopt(c, CURLOPT_READDATA, o->stream);
            if (!o->chunked)
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->stream->total);
        } else {
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, o->body ? (const char *)o->body : "");
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->len);
        }
    }
    char ct[256];
    if (o && o->ctype) {
        snprintf(ct, sizeof ct, "Content-Type: %s", o->ctype);
        hdrs = curl_slist_append(hdrs, ct);
    } else if (o && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        hdrs = curl_slist_append(hdrs, "Content-Type:"); /* none at all */
    }
    if (o && o->header)
        hdrs = curl_slist_append(hdrs, o->header);
    if (o && o->no_expect)
        hdrs = curl_slist_append(hdrs, "Expect:");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    r->rc = curl_easy_perform(c);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    r->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    if (!(o && o->handle))
        curl_easy_cleanup(c);
}

static void http_get(const char *path, struct reply *r)
{
    http_do(path, NULL, r);
}

static void http_post(const char *path, const char *ctype, const void *body, size_t len,
                      struct reply *r)
{
    struct request_opts o = {.method = "POST", .ctype = ctype, .body = body, .len = len};
    http_do(path, &o, r);
}

/* The error code of a JSON error envelope ("" if the body is not one). */
static const char *envelope_code(const struct reply *r, char *out, size_t cap)
{
    out[0] = '\0';
    json_t *j = r->body ? json_loads(r->body, 0, NULL) : NULL;
    const char *code = NULL, *msg = NULL;
    if (j && json_unpack(j, "{s:{s:s,s:s}}", "error", "code", &code, "message", &msg) == 0 &&
        msg[0])
        snprintf(out, cap, "%s", code);
    json_decref(j);
    return out;
}

static int body_has(const struct reply *r, const char *needle)
{
    return r->body && memmem(r->body, r->len, needle, strlen(needle)) != NULL;
}

/* Raw TCP connection to the server for requests curl will not send. */
static int raw_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Raw TCP connection to 127.0.0.1:port from the local address src (another
 * loopback address stands for another client), or -1. */
static int raw_connect_from(unsigned port, const char *src)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in from = {.sin_family = AF_INET};
    inet_pton(AF_INET, src, &from.sin_addr);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&from, sizeof from) != 0 ||
        connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Reads until the peer closes or the timeout; returns bytes read. */
static size_t raw_read_all(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    while (got + 1 < cap) {
        ssize_t n = recv(fd, buf + got, cap - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    return got;
}

/* Reads one response (headers, then Content-Length bytes of body), or until
 * the peer closes or the timeout; returns bytes read. */
static size_t raw_read_response(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    while (got + 1 < cap) {
        buf[got] = '\0';
        const char *end = strstr(buf, "\r\n\r\n");
        if (end) {
            const char *cl = strcasestr(buf, "\r\nContent-Length:");
            size_t body = cl && cl < end ? (size_t)atol(cl + 17) : 0;
            if (got >= (size_t)(end + 4 - buf) + body)
                break;
        }
        ssize_t n = recv(fd, buf + got, cap - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    return got;
}

static void wait_idle(void)
{
    for (int i = 0; i < 200 && http_server_in_flight(g_srv) > 0; i++)
        usleep(10000);
}

/* ------------------------------------------------------------------------ */
/* unit tests: no server                                                    */

TEST(percent_decode)
{
    char out[64];
    CHECK_EQ_INT(http_percent_decode("a%20b%2Fc", 9, out, 0), 5);
    CHECK(memcmp(out, "a b/c", 6) == 0);
    CHECK_EQ_INT(http_percent_decode("x+y%2b", 6, out, 1), 4);
    CHECK(strcmp(out, "x y+") == 0);
    CHECK_EQ_INT(http_percent_decode("x+y", 3, out, 0), 3);
    CHECK(strcmp(out, "x+y") == 0);
    CHECK_EQ_INT(http_percent_decode("%00z", 4, out, 0), 2);
    CHECK(out[0] == '\0' && out[1] == 'z');
    CHECK_EQ_INT(http_percent_decode("%zz", 3, out, 0), -1);
    CHECK_EQ_INT(http_percent_decode("ab%4", 4, out, 0), -1);
    CHECK_EQ_INT(http_percent_decode("ab%", 3, out, 0), -1);
    CHECK_EQ_INT(http_percent_decode("%C3%A9", 6, out, 0), 2);
    CHECK((unsigned char)out[0] == 0xc3 && (unsigned char)out[1] == 0xa9);
}

TEST(router_rejects_bad_tables)
{
    char err[STRATA_ERR_LEN];
    struct router *r = NULL;
    const struct route bad[][1] = {
        {{"GET", "api/x", handle_items, 0}},        {{"FETCH", "/api/x", handle_items, 0}},
        {{"GET", "/api/{x", handle_items, 0}},      {{"GET", "/api/a{x}", handle_items, 0}},
        {{"GET", "/api//x", handle_items, 0}},      {{"GET", "/api/x/", handle_items, 0}},
        {{"GET", "/api/{x-y}", handle_items, 0}},   {{"GET", "/api/x", NULL, 0}},
        {{"GET", "/api/%41", handle_items, 0}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        CHECK_MSG(router_new(bad[i], 1, &r, err) == STRATA_E_ARG, "route %zu accepted", i);
        CHECK(r == NULL);
        CHECK(err[0] != '\0');
    }
    const struct route many[] = {
        {"GET", "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}", handle_items, 0}};
    CHECK(router_new(many, 1, &r, err) == STRATA_E_ARG);
    CHECK(router_new(test_routes, N_TEST_ROUTES, &r, err) == 0);
    router_free(r);
}

TEST(router_matching)
{
    char err[STRATA_ERR_LEN];
    struct router *r;
    CHECK(router_new(test_routes, N_TEST_ROUTES, &r, err) == 0);
    struct route_match *m = xmalloc(sizeof *m);

    CHECK_EQ_INT(router_match(r, "GET", "/api/items/a%20b/parts/x%C3%A9", m), ROUTE_OK);
    CHECK(m->route->handler == handle_item_part);
    CHECK_EQ_INT(m->n_params, 2);
    CHECK(strcmp(m->params[0].name, "id") == 0 && strcmp(m->params[0].value, "a b") == 0);
    CHECK(strcmp(m->params[1].name, "part") == 0 && strcmp(m->params[1].value, "x\xc3\xa9") == 0);

    /* Table order: the literal route listed first wins over {id}. */
    CHECK_EQ_INT(router_match(r, "GET", "/api/items/compare", m), ROUTE_OK);
    CHECK(m->route->handler == handle_items_compare);
    CHECK_EQ_INT(router_match(r, "GET", "/api/items/other", m), ROUTE_OK);
    CHECK(m->route->handler == handle_item);

    /* HEAD falls back to GET; the allow mask lists every method of the path. */
    CHECK_EQ_INT(router_match(r, "HEAD", "/api/items", m), ROUTE_OK);
    CHECK(m->route->handler == handle_items);
    CHECK_EQ_INT(router_match(r, "DELETE", "/api/items", m), ROUTE_BAD_METHOD);
    CHECK_EQ_INT(m->allow, HTTP_GET | HTTP_HEAD | HTTP_POST);
    char allow[64];
    CHECK(strcmp(http_allow_format(m->allow, allow, sizeof allow), "GET, HEAD, POST") == 0);
    CHECK_EQ_INT(router_match(r, "BREW", "/api/items", m), ROUTE_BAD_METHOD);

    CHECK_EQ_INT(router_match(r, "GET", "/api/item", m), ROUTE_NOT_FOUND);
    CHECK_EQ_INT(router_match(r, "GET", "/api/items/", m), ROUTE_NOT_FOUND);
    CHECK_EQ_INT(router_match(r, "GET", "/api//items", m), ROUTE_NOT_FOUND);
    CHECK_EQ_INT(router_match(r, "GET", "/api/items//parts/x", m), ROUTE_NOT_FOUND);
    CHECK_EQ_INT(router_match(r, "GET", "/", m), ROUTE_NOT_FOUND);
    CHECK_EQ_INT(router_match(r, "GET", "", m), ROUTE_NOT_FOUND);

    /* Parameters that would smuggle a separator or NUL, or bad escapes. */
    CHECK_EQ_INT(router_match(r, "GET", "/api/items/a%2Fb", m), ROUTE_BAD_PARAM);
    CHECK_EQ_INT(router_match(r, "GET", "/api/items/a%2fb/parts/x", m), ROUTE_BAD_PARAM);
    CHECK_EQ_INT(router_match(r, "GET", "/api/items/a%00b", m), ROUTE_BAD_PARAM);
    CHECK_EQ_INT(router_match(r, "GET", "/api/items/a%zz", m), ROUTE_BAD_PARAM);

    char *longp = xmalloc(ROUTER_MAX_PATH + 10);
    memset(longp, 'a', ROUTER_MAX_PATH + 9);
    longp[0] = '/';
    longp[ROUTER_MAX_PATH + 9] = '\0';
    CHECK_EQ_INT(router_match(r, "GET", longp, m), ROUTE_TOO_LONG);
    free(longp);
    free(m);
    router_free(r);
}

TEST(router_dispatch_direct)
{
    /* Handlers are plain functions: call them through the router without a
     * server and read the response struct. */
    char err[STRATA_ERR_LEN];
    struct router *r;
    CHECK(router_new(test_routes, N_TEST_ROUTES, &r, err) == 0);
    struct http_param q[] = {{"q", "hi"}};
    struct http_param h[] = {{"Accept", "application/json"}};
    struct request req = {.method = "GET", .path = "/api/items/7/parts/wheel", .query = q,
                          .n_query = 1, .headers = h, .n_headers = 1};
    struct response res;
    response_init(&res);
    router_dispatch(r, &req, &res);
    CHECK_EQ_INT(res.status, 200);
    CHECK(res.json != NULL);
    CHECK(strcmp(json_string_value(json_object_get(res.json, "id")), "7") == 0);
    CHECK(strcmp(json_string_value(json_object_get(res.json, "part")), "wheel") == 0);
    CHECK(strcmp(json_string_value(json_object_get(res.json, "q")), "hi") == 0);
    CHECK(strcmp(json_string_value(json_object_get(res.json, "accept")), "application/json") == 0);
    CHECK(json_is_null(json_object_get(res.json, "n"))); /* absent query key */
    CHECK(strcmp(response_get_header(&res, "cache-control"), "max-age=60") == 0);
    response_deinit(&res);

    struct request bad = {.method = "PUT", .path = "/api/items"};
    router_dispatch(r, &bad, &res);
    CHECK_EQ_INT(res.status, 405);
    CHECK(strcmp(response_get_header(&res, "Allow"), "GET, HEAD, POST") == 0);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(res.json, "error"), "code")),
                 "method_not_allowed") == 0);
    response_deinit(&res);

    struct request fail = {.method = "GET", .path = "/api/fail"};
    router_dispatch(r, &fail, &res);
    CHECK_EQ_INT(res.status, 500);
    response_deinit(&res);
    router_free(r);
}

/* Preconditions, with a guard of the test's own: TEST_NEEDS_KNOWN wants
 * the {id} parameter to be "known" and hands the handler a string as its
 * model; TEST_NEEDS_NOTHING_SAID refuses without filling the reply. */
#define TEST_NEEDS_KNOWN (1u << ROUTE_NEEDS_SHIFT)
#define TEST_NEEDS_NOTHING_SAID (2u << ROUTE_NEEDS_SHIFT)
static int guard_calls, guarded_calls;
static const char known_thing[] = "the known thing";

static int test_guard(unsigned needs, struct request *req, struct response *res)
{
    guard_calls++;
    if (needs & TEST_NEEDS_NOTHING_SAID)
        return 0;
    const char *id = request_param(req, "id");
    if (strcmp(id, "known") != 0) {
        response_error(res, 404, "not_found", "no thing named %s", id);
        return 0;
    }
    req->model = (void *)known_thing;
    return 1;
}

static int handle_guarded(const struct request *req, struct response *res)
{
    guarded_calls++;
    return response_json(res, 200, json_pack("{s:b, s:b}", "known", req->model == known_thing,
                                             "null", req->model == NULL));
}

TEST(router_preconditions)
{
    static const struct route routes[] = {
        {"GET", "/api/things/{id}", handle_guarded, TEST_NEEDS_KNOWN},
        {"PUT", "/api/things/{id}", handle_guarded, 0},
        {"GET", "/api/mute/{id}", handle_guarded, TEST_NEEDS_NOTHING_SAID},
    };
    const size_t n = sizeof routes / sizeof routes[0];
    char err[STRATA_ERR_LEN];
    struct router *r = NULL;
    /* Preconditions that nothing would check are a broken table. */
    CHECK_EQ_INT(router_new(routes, n, &r, err), STRATA_E_ARG);
    CHECK(r == NULL && strstr(err, "/api/things/{id}") != NULL);
    CHECK(router_new_guarded(routes, n, test_guard, &r, err) == 0);

    struct {
        const char *method, *path;
        int status, guard_calls, handler_calls;
        const char *code; /* the error envelope's, or NULL for the handler's reply */
    } cases[] = {
        {"GET", "/api/things/known", 200, 1, 1, NULL},
        {"HEAD", "/api/things/known", 200, 1, 1, NULL},
        {"GET", "/api/things/other", 404, 1, 0, "not_found"},
        /* the dispatcher's own answers come first: the guard never runs */
        {"POST", "/api/things/other", 405, 0, 0, "method_not_allowed"},
        {"GET", "/api/things/a%zz", 400, 0, 0, "bad_path"},
        {"GET", "/api/things", 404, 0, 0, "not_found"},
        /* a route without preconditions: no guard, no model */
        {"PUT", "/api/things/other", 200, 0, 1, NULL},
        /* a refusal without a reply is the server's fault */
        {"GET", "/api/mute/x", 500, 1, 0, "internal"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        guard_calls = guarded_calls = 0;
        /* a stale model in the request must not reach the handler */
        struct request req = {.method = cases[i].method, .path = cases[i].path,
                              .model = (void *)"stale"};
        struct response res;
        response_init(&res);
        router_dispatch(r, &req, &res);
        CHECK_MSG(res.status == cases[i].status, "%s %s: %d", cases[i].method, cases[i].path,
                  res.status);
        CHECK_MSG(guard_calls == cases[i].guard_calls, "%s %s: guard ran %d times",
                  cases[i].method, cases[i].path, guard_calls);
        CHECK_MSG(guarded_calls == cases[i].handler_calls, "%s %s: handler ran %d times",
                  cases[i].method, cases[i].path, guarded_calls);
        json_t *e = json_object_get(res.json, "error");
        if (cases[i].code) {
            CHECK_MSG(e && strcmp(json_string_value(json_object_get(e, "code")),
                                  cases[i].code) == 0,
                      "%s %s", cases[i].method, cases[i].path);
        } else {
            int known = strcmp(cases[i].path, "/api/things/known") == 0;
            CHECK(e == NULL);
            CHECK(json_is_true(json_object_get(res.json, known ? "known" : "null")));
        }
        response_deinit(&res);
    }
    router_free(r);
}

TEST(json_envelope_and_helpers)
{
    struct response res;
    response_init(&res);
    response_header(&res, "ETag", "\"abc\"");
    response_error(&res, 404, "not_found", "no model named %s", "cats\xff\xfe");
    CHECK_EQ_INT(res.status, 404);
    CHECK(response_get_header(&res, "ETag") == NULL); /* dropped with the success reply */
    CHECK(strcmp(response_get_header(&res, "Cache-Control"), "no-store") == 0);
    CHECK(response_serialize_json(&res) == 0);
    CHECK(strcmp(res.content_type, "application/json") == 0);
    CHECK_MSG(res.body_len == strlen("{\"error\":{\"code\":\"not_found\",\"message\":\"no model "
                                     "named cats??\"}}") &&
                  memcmp(res.body,
                         "{\"error\":{\"code\":\"not_found\",\"message\":\"no model named "
                         "cats??\"}}",
                         res.body_len) == 0,
              "%.*s", (int)res.body_len, (const char *)res.body);
    response_deinit(&res);

    /* Valid multi-byte UTF-8 is kept as is. */
    response_error(&res, 400, "bad_request", "caf\xc3\xa9 \xe2\x82\xac");
    const char *msg = json_string_value(json_object_get(json_object_get(res.json, "error"),
                                                        "message"));
    CHECK(msg && strcmp(msg, "caf\xc3\xa9 \xe2\x82\xac") == 0);
    response_deinit(&res);

    static const int rcs[] = {STRATA_E_NOTFOUND, STRATA_E_ARG, STRATA_E_FORMAT, STRATA_E_LIMIT,
                              STRATA_E_UNSUPPORTED, STRATA_E_NOMEM, STRATA_E_IO};
    static const int statuses[] = {404, 400, 400, 413, 415, 503, 500};
    for (int i = 0; i < 7; i++) {
        response_fail(&res, rcs[i], "why");
        CHECK_EQ_INT(res.status, statuses[i]);
        response_deinit(&res);
    }

    response_busy(&res, 1);
    CHECK_EQ_INT(res.status, 503);
    CHECK(strcmp(response_get_header(&res, "Retry-After"), "1") == 0);
    response_deinit(&res);

    /* Float arrays: 9 significant digits read back to the same float; NaN
     * becomes null. */
    float v[4] = {0.1f, -3.5f, 1e-7f, 0};
    volatile float zero = 0;
    fedisableexcept(FE_INVALID);
    v[3] = zero / zero;
    response_json(&res, 200, json_float_array(v, 4));
    feenableexcept(FE_INVALID);
    response_serialize_json(&res);
    json_t *back = json_loadb(res.body, res.body_len, 0, NULL);
    CHECK(json_array_size(back) == 4);
    for (int i = 0; i < 3; i++)
        CHECK((float)json_real_value(json_array_get(back, (size_t)i)) == v[i]);
    CHECK(json_is_null(json_array_get(back, 3)));
    json_decref(back);
    response_deinit(&res);

    /* Header limits and header injection. */
    for (int i = 0; i < RESPONSE_MAX_HEADERS; i++)
        CHECK(response_header(&res, "X-N", "%d", i) == 0);
    CHECK(response_header(&res, "X-N", "overflow") == STRATA_E_LIMIT);
    response_deinit(&res);
    CHECK(response_header(&res, "X-Bad", "a\r\nSet-Cookie: x") == STRATA_E_ARG);
    CHECK_EQ_INT(res.n_headers, 0);

    /* Owned bytes are freed exactly once, also when replaced. */
    char *owned = strdup("owned");
    response_bytes(&res, 200, "text/plain", owned, 5, free, owned);
    response_json(&res, 200, json_true()); /* frees `owned` (ASan would flag a leak) */
    response_deinit(&res);
}

TEST(json_body)
{
    struct response res;
    response_init(&res);
    json_t *j;
    const char good[] = "{\"k\": 3}";
    struct request req = {.method = "POST", .content_type = "application/json; charset=utf-8",
                          .body = (const unsigned char *)good, .body_len = sizeof good - 1};
    CHECK(request_json_body(&req, &j, &res) == 0);
    CHECK(json_integer_value(json_object_get(j, "k")) == 3);
    json_decref(j);
    const char bad[] = "{\"k\": ";
    req.body = (const unsigned char *)bad;
    req.body_len = sizeof bad - 1;
    CHECK(request_json_body(&req, &j, &res) == STRATA_E_FORMAT && !j);
    CHECK_EQ_INT(res.status, 400);
    response_deinit(&res);
    req.content_type = "text/plain";
    CHECK(request_json_body(&req, &j, &res) == STRATA_E_UNSUPPORTED && !j);
    CHECK_EQ_INT(res.status, 415);
    response_deinit(&res);
    req.content_type = "application/jsonx";
    CHECK(request_json_body(&req, &j, &res) == STRATA_E_UNSUPPORTED);
    response_deinit(&res);
}

/* Builds a multipart body: fields given as name, filename (or NULL),
 * content type (or NULL), data, length. */
struct field {
    const char *name, *filename, *ctype;
    const void *data;
    size_t len;
};

static size_t put(unsigned char *out, size_t o, const char *s)
{
    size_t n = strlen(s);
    memcpy(out + o, s, n);
    return o + n;
}

static size_t build_multipart(unsigned char *out, const char *boundary, const struct field *f,
                              int n, int close)
{
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        o = put(out, o, "--");
        o = put(out, o, boundary);
        o = put(out, o, "\r\nContent-Disposition: form-data; name=\"");
        o = put(out, o, f[i].name);
        o = put(out, o, "\"");
        if (f[i].filename) {
            o = put(out, o, "; filename=\"");
            o = put(out, o, f[i].filename);
            o = put(out, o, "\"");
        }
        o = put(out, o, "\r\n");
        if (f[i].ctype) {
            o = put(out, o, "Content-Type: ");
            o = put(out, o, f[i].ctype);
            o = put(out, o, "\r\n");
        }
        o = put(out, o, "\r\n");
        memcpy(out + o, f[i].data, f[i].len);
        o += f[i].len;
        o = put(out, o, "\r\n");
    }
    if (close) {
        o = put(out, o, "--");
        o = put(out, o, boundary);
        o = put(out, o, "--\r\n");
    }
    return o;
}

/* Random bytes that include CR, LF, '-' and NUL: a parser that trusts them
 * to be text would cut them short. */
static void random_bytes(unsigned char *p, size_t n, uint64_t seed)
{
    struct rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)rng_next(&r);
    if (n > 8)
        memcpy(p + n / 2, "\r\n--\r\n\0", 7);
}

TEST(multipart_parsing)
{
    unsigned char img[3000];
    random_bytes(img, sizeof img, 1);
    unsigned char *body = xmalloc(10000);
    char err[STRATA_ERR_LEN];
    struct upload up;
    struct field fields[] = {
        {"title", NULL, NULL, "hello", 5},
        {"image", "cat \\\"1\\\".png", "image/PNG", img, sizeof img},
        {"note", NULL, "text/plain", "n", 1},
    };
    size_t len = build_multipart(body, "XyZ-boundary", fields, 3, 1);
    struct request req = {.method = "POST",
                          .content_type = "multipart/form-data; boundary=XyZ-boundary",
                          .body = body, .body_len = len};
    CHECK(request_image_body(&req, NULL, &up, err) == 0);
    CHECK(up.len == sizeof img && memcmp(up.data, img, sizeof img) == 0);
    CHECK(strcmp(up.content_type, "image/png") == 0);
    CHECK(strcmp(up.filename, "cat \"1\".png") == 0);
    CHECK(request_form_part(&req, "title", &up, err) == 0);
    CHECK(up.len == 5 && memcmp(up.data, "hello", 5) == 0 && up.filename[0] == '\0');
    CHECK(request_form_part(&req, "missing", &up, err) == STRATA_E_NOTFOUND);
    /* A field under another name is the image when asked for. */
    CHECK(request_image_body(&req, "note", &up, err) == STRATA_E_UNSUPPORTED); /* text/plain */
    CHECK(request_image_body(&req, "nope", &up, err) == STRATA_E_FORMAT);
    CHECK(strstr(err, "nope") != NULL);

    /* Quoted boundary, a preamble, no part Content-Type. */
    struct field plain[] = {{"image", NULL, NULL, img, 100}};
    memcpy(body, "preamble\r\n", 10);
    len = 10 + build_multipart(body + 10, "a b", plain, 1, 1);
    req.content_type = "Multipart/Form-Data; charset=x; boundary=\"a b\"";
    req.body_len = len;
    CHECK(request_image_body(&req, NULL, &up, err) == 0);
    CHECK(up.len == 100 && memcmp(up.data, img, 100) == 0 && up.content_type[0] == '\0');

    /* Broken ones. */
    len = build_multipart(body, "b1", plain, 1, 0); /* no closing delimiter */
    req.content_type = "multipart/form-data; boundary=b1";
    req.body_len = len;
    CHECK(request_image_body(&req, NULL, &up, err) == STRATA_E_FORMAT);
    CHECK(strstr(err, "closing") != NULL);
    req.body_len = len - 30; /* truncated inside the part */
    CHECK(request_image_body(&req, NULL, &up, err) == STRATA_E_FORMAT);
    req.content_type = "multipart/form-data";
    CHECK(request_image_body(&req, NULL, &up, err) == STRATA_E_FORMAT);
    CHECK(strstr(err, "boundary") != NULL);
    req.content_type = "multipart/form-data; boundary=other";
    CHECK(request_image_body(&req, NULL, &up, err) == STRATA_E_FORMAT);
    const char noname[] = "--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--";
    req.content_type = "multipart/form-data; boundary=b";
    req.body = (const unsigned char *)noname;
    req.body_len = sizeof noname - 1;
    CHECK(request_image_body(&req, NULL, &up, err) == STRATA_E_FORMAT);
    const char nohdr[] = "--b\r\nContent-Disposition: form-data; name=\"image\"\r\nx";
    req.body = (const unsigned char *)nohdr;
    req.body_len = sizeof nohdr - 1;
    CHECK(request_image_body(&req, NULL, &up, err) == STRATA_E_FORMAT);
    const char empty_img[] =
        "--b\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\n\r\n--b--";
    req.body = (const unsigned char *)empty_img;
    req.body_len = sizeof empty_img - 1;
    CHECK(request_image_body(&req, NULL, &up, err) == STRATA_E_FORMAT);
    const char only_close[] = "--b--\r\n";
    req.body = (const unsigned char *)only_close;
    req.body_len = sizeof only_close - 1;
    CHECK(request_image_body(&req, NULL, &up, err) == STRATA_E_FORMAT);
    req.body = NULL;
    req.body_len = 0;
    CHECK(request_image_body(&req, NULL, &up, err) == STRATA_E_FORMAT);

    /* Raw bodies. */
    req.content_type = "image/jpeg";
    req.body = img;
    req.body_len = 10;
    CHECK(request_image_body(&req, NULL, &up, err) == 0 && up.data == img && up.len == 10);
    req.body_len = 0;
    CHECK(request_image_body(&req, NULL, &up, err) == STRATA_E_FORMAT);
    req.content_type = "text/plain";
    req.body_len = 10;
    CHECK(request_image_body(&req, NULL, &up, err) == STRATA_E_UNSUPPORTED);
    req.content_type = NULL;
    CHECK(request_image_body(&req, NULL, &up, err) == STRATA_E_UNSUPPORTED);
    free(body);
}

/* Random multipart-looking inputs must never crash or read out of bounds
 * (ASan watches); they may parse or fail. */
TEST(multipart_fuzz)
{
    unsigned char img[64];
    random_bytes(img, sizeof img, 2);
    struct field f[] = {{"a", NULL, NULL, "1", 1}, {"image", "x.png", "image/png", img, 64}};
    unsigned char good[1024];
    size_t len = build_multipart(good, "zz", f, 2, 1);
    struct rng r;
    rng_seed(&r, 99);
    int parsed = 0;
    for (int iter = 0; iter < 4000; iter++) {
        size_t n = rng_below(&r, len + 1);
        unsigned char *b = xmalloc(n ? n : 1); /* exact size: ASan sees overreads */
        memcpy(b, good, n);
        int flips = (int)rng_below(&r, 4);
        for (int k = 0; k < flips && n; k++)
            b[rng_below(&r, n)] = "-\r\n\"zab;=:"[rng_below(&r, 10)];
        struct request req = {.content_type = "multipart/form-data; boundary=zz", .body = b,
                              .body_len = n};
        struct upload up;
        char err[STRATA_ERR_LEN];
        int rc = request_image_body(&req, NULL, &up, err);
        if (rc == 0) {
            parsed++;
            CHECK(up.data >= b && up.data + up.len <= b + n);
        } else {
            CHECK(rc == STRATA_E_FORMAT || rc == STRATA_E_UNSUPPORTED);
        }
        free(b);
    }
    CHECK(parsed > 0);
}

static int sleepy_job(void *arg, const atomic_int *cancel)
{
    atomic_int *gate = arg;
    while (!atomic_load(gate) && !job_cancelled(cancel))
        usleep(1000);
    return job_cancelled(cancel) ? STRATA_E_INTERRUPTED : 0;
}

static atomic_int done_count, done_sum;

static void count_done(void *arg, int result)
{
    atomic_fetch_add(&done_count, 1);
    atomic_fetch_add(&done_sum, *(int *)arg);
}

static int add_one(void *arg, const atomic_int *cancel)
{
    usleep(2000);
    (*(int *)arg)++;
    return 0;
}

TEST(job_pool)
{
    char err[STRATA_ERR_LEN];
    struct job_pool *p;
    CHECK(jobs_new(0, 1, &p, err) == STRATA_E_ARG);
    CHECK(jobs_new(1, 1, &p, err) == 0);
    int v = 9;
    CHECK(jobs_run(p, square_job, &v, 0, err) == 0 && v == 81);

    /* Occupy the worker, fill the one queue slot, then the pool refuses. */
    atomic_int gate1 = 0, gate2 = 0;
    CHECK(jobs_submit(p, sleepy_job, &gate1, NULL, err) == 0);
    struct jobs_stats st;
    for (int i = 0; i < 5000; i++) {
        jobs_get_stats(p, &st);
        if (st.running == 1)
            break;
        usleep(1000);
    }
    CHECK_EQ_INT(st.running, 1);
    CHECK(jobs_submit(p, sleepy_job, &gate2, NULL, err) == 0);
    CHECK(jobs_submit(p, sleepy_job, &gate2, NULL, err) == STRATA_E_LIMIT);
    CHECK(jobs_run(p, square_job, &v, 0, err) == STRATA_E_LIMIT);
    jobs_get_stats(p, &st);
    CHECK_EQ_INT(st.queued, 1);
    CHECK_EQ_INT(st.rejected, 2);
    atomic_store(&gate1, 1);
    atomic_store(&gate2, 1);

    for (int i = 0; i < 5000; i++) {
        jobs_get_stats(p, &st);
        if (st.running == 0 && st.queued == 0)
            break;
        usleep(1000);
    }
    /* A queued job that times out is removed and never runs. */
    atomic_int gate3 = 0;
    CHECK(jobs_submit(p, sleepy_job, &gate3, NULL, err) == 0);
    for (int i = 0; i < 5000; i++) {
        jobs_get_stats(p, &st);
        if (st.running == 1 && st.queued == 0)
            break;
        usleep(1000);
    }
    int w = 5;
    CHECK(jobs_run(p, square_job, &w, 0.05, err) == STRATA_E_INTERRUPTED);
    CHECK_EQ_INT(w, 5);
    /* A running job that times out sees its cancel flag. */
    atomic_store(&gate3, 1);
    atomic_int never = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(jobs_run(p, sleepy_job, &never, 0.05, err) == STRATA_E_INTERRUPTED);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double dt = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK(dt >= 0.05 && dt < 2.0);
    jobs_free(p);

    /* Shutdown runs everything queued; done callbacks see the results. */
    CHECK(jobs_new(2, 50, &p, err) == 0);
    static int vals[40];
    atomic_store(&done_count, 0);
    atomic_store(&done_sum, 0);
    for (int i = 0; i < 40; i++) {
        vals[i] = i;
        CHECK(jobs_submit(p, add_one, &vals[i], count_done, err) == 0);
    }
    jobs_free(p);
    CHECK_EQ_INT(atomic_load(&done_count), 40);
    CHECK_EQ_INT(atomic_load(&done_sum), 40 * 39 / 2 + 40);
}


TEST(etag_matching)
{
    static const char tag[] = "\"abc\"";
    static const char *const match[] = {
        "\"abc\"", " \"abc\" ", "\t\"abc\"", "W/\"abc\"", "\"x\", \"abc\"", "\"x\",\"abc\",\"y\"",
        "*", " * ", "*, \"x\"", "\"x\", *", "\"a,b\", \"abc\"", ",,\"abc\"", "W/\"x\" , W/\"abc\"",
    };
    static const char *const miss[] = {
        "", " ", "\"abcd\"", "\"ab\"", "xx\"abc\"", "\"abc\"xx", "abc", "\"x\"", "W/ \"abc\"",
        "w/\"abc\"", "**", "\"abc", "abc\"", "\"ab\"c\"", "x*", "\"*\"", "\"a,\"abc\"",
    };
    for (size_t i = 0; i < sizeof match / sizeof match[0]; i++)
        CHECK_MSG(http_etag_match(match[i], tag), "[%s] should match", match[i]);
    for (size_t i = 0; i < sizeof miss / sizeof miss[0]; i++)
        CHECK_MSG(!http_etag_match(miss[i], tag), "[%s] should not match", miss[i]);
    CHECK(!http_etag_match(NULL, tag));
    /* Weak comparison from either side. */
    CHECK(http_etag_match("\"abc\"", "W/\"abc\""));
    CHECK(http_etag_match("W/\"abc\"", "W/\"abc\""));
    CHECK(!http_etag_match("\"abd\"", "W/\"abc\""));
}

/* A watcher that says "gone" once *flag is set. */
static int flag_gone(void *cls)
{
    return atomic_load((atomic_int *)cls);
}

struct watch_arg {
    struct job_pool *p;
    atomic_int *gone;
    int ms, rc;
};

static void *watch_main(void *cls)
{
    struct watch_arg *w = cls;
    char err[STRATA_ERR_LEN];
    w->rc = jobs_run_watch(w->p, watched_job, &w->ms, 0, flag_gone, w->gone, err);
    return NULL;
}

TEST(job_pool_watch)
{
    char err[STRATA_ERR_LEN];
    struct job_pool *p;
    CHECK(jobs_new(1, 2, &p, err) == 0);
    atomic_store(&watch_started, 0);
    atomic_store(&watch_cancelled, 0);
    atomic_store(&watch_finished, 0);
    /* A watcher that never fires changes nothing. */
    atomic_int stay = 0;
    int ms = 30;
    CHECK(jobs_run_watch(p, watched_job, &ms, 0, flag_gone, &stay, err) == 0);
    CHECK_EQ_INT(atomic_load(&watch_finished), 1);

    /* The worker is taken; a queued job whose submitter leaves is dropped
     * within a watch interval and never runs. */
    atomic_int gate = 0;
    CHECK(jobs_submit(p, sleepy_job, &gate, NULL, err) == 0);
    struct jobs_stats st;
    for (int i = 0; i < 5000; i++) {
        jobs_get_stats(p, &st);
        if (st.running == 1)
            break;
        usleep(1000);
    }
    atomic_int gone = 0;
    struct watch_arg w = {.p = p, .gone = &gone, .ms = 10};
    pthread_t t;
    pthread_create(&t, NULL, watch_main, &w);
    for (int i = 0; i < 5000; i++) {
        jobs_get_stats(p, &st);
        if (st.queued == 1)
            break;
        usleep(1000);
    }
    CHECK_EQ_INT(st.queued, 1);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    atomic_store(&gone, 1);
    pthread_join(t, NULL);
    double dt = seconds_since(&t0);
    CHECK_EQ_INT(w.rc, STRATA_E_INTERRUPTED);
    CHECK_MSG(dt < JOBS_WATCH_INTERVAL_S + 0.5, "left the queue after %.2f s", dt);
    jobs_get_stats(p, &st);
    CHECK_EQ_INT(st.queued, 0);
    CHECK_EQ_INT(st.abandoned, 1);
    atomic_store(&gate, 1);
    for (int i = 0; i < 5000; i++) {
        jobs_get_stats(p, &st);
        if (st.running == 0)
            break;
        usleep(1000);
    }
    CHECK_EQ_INT(atomic_load(&watch_started), 1); /* only the first one ever ran */

    /* A running job whose submitter leaves sees its cancel flag, and the
     * submitter waits for it (its result comes back). */
    atomic_store(&gone, 0);
    w = (struct watch_arg){.p = p, .gone = &gone, .ms = 20000};
    pthread_create(&t, NULL, watch_main, &w);
    for (int i = 0; i < 5000 && atomic_load(&watch_started) < 2; i++)
        usleep(1000);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    atomic_store(&gone, 1);
    pthread_join(t, NULL);
    dt = seconds_since(&t0);
    CHECK_EQ_INT(w.rc, STRATA_E_INTERRUPTED);
    CHECK_EQ_INT(atomic_load(&watch_cancelled), 1);
    CHECK_MSG(dt < JOBS_WATCH_INTERVAL_S + 0.5, "stopped after %.2f s", dt);
    jobs_get_stats(p, &st);
    CHECK_EQ_INT(st.abandoned, 2);
    jobs_free(p);
}

/* Several threads calling jobs_run at once all get their own result. */
struct run_arg {
    struct job_pool *p;
    int ok;
};

static void *run_many(void *cls)
{
    struct run_arg *a = cls;
    char err[STRATA_ERR_LEN];
    a->ok = 1;
    for (int i = 0; i < 50; i++) {
        int v = i + 3;
        int rc = jobs_run(a->p, square_job, &v, 0, err);
        if (rc == STRATA_E_LIMIT)
            continue;
        if (rc != 0 || v != (i + 3) * (i + 3))
            a->ok = 0;
    }
    return NULL;
}

TEST(job_pool_concurrent)
{
    char err[STRATA_ERR_LEN];
    struct job_pool *p;
    CHECK(jobs_new(2, 4, &p, err) == 0);
    pthread_t t[8];
    struct run_arg a[8];
    for (int i = 0; i < 8; i++) {
        a[i].p = p;
        pthread_create(&t[i], NULL, run_many, &a[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        CHECK(a[i].ok);
    }
    struct jobs_stats st;
    jobs_get_stats(p, &st);
    CHECK(st.completed + st.rejected == 400);
    CHECK(st.completed > 0);
    jobs_free(p);
}

/* ------------------------------------------------------------------------ */
/* the real server                                                          */

TEST(get_with_params_and_query)
{
    struct reply r;
    http_get("/api/items/a%20b/parts/x%2Dy?q=hello+world&n=%C3%A9&q=second", &r);
    CHECK(r.rc == CURLE_OK);
    CHECK_EQ_INT(r.status, 200);
    json_t *j = json_loads(r.body ? r.body : "", 0, NULL);
    CHECK(j != NULL);
    CHECK(strcmp(json_string_value(json_object_get(j, "id")), "a b") == 0);
    CHECK(strcmp(json_string_value(json_object_get(j, "part")), "x-y") == 0);
    CHECK(strcmp(json_string_value(json_object_get(j, "q")), "hello world") == 0);
    CHECK(strcmp(json_string_value(json_object_get(j, "n")), "\xc3\xa9") == 0);
    json_decref(j);
    char h[256];
    CHECK(reply_header(&r, "Content-Type", h, sizeof h) && strcmp(h, "application/json") == 0);
    CHECK(reply_header(&r, "Cache-Control", h, sizeof h) && strcmp(h, "max-age=60") == 0);
    reply_free(&r);

    struct request_opts o = {.method = "POST", .ctype = "application/json"};
    http_do("/api/items", &o, &r);
    CHECK_EQ_INT(r.status, 201);
    CHECK(reply_header(&r, "Location", h, sizeof h) && strcmp(h, "/api/items/new") == 0);
    reply_free(&r);

    const char js[] = "{\"a\":[1,2]}";
    http_post("/api/json", "application/json", js, sizeof js - 1, &r);
    CHECK_EQ_INT(r.status, 200);
    CHECK(body_has(&r, "{\"got\":{\"a\":[1,2]}}"));
    reply_free(&r);
    http_post("/api/json", "application/json", "{", 1, &r);
    CHECK_EQ_INT(r.status, 400);
    reply_free(&r);
}

TEST(head_is_get_without_body)
{
    struct reply g, h;
    http_get("/api/items", &g);
    struct request_opts o = {.method = "HEAD"};
    http_do("/api/items", &o, &h);
    CHECK_EQ_INT(g.status, 200);
    CHECK_EQ_INT(h.status, 200);
    CHECK(h.len == 0);
    char cl[32];
    CHECK(reply_header(&h, "Content-Length", cl, sizeof cl) && (size_t)atol(cl) == g.len);
    reply_free(&g);
    reply_free(&h);
}

TEST(errors_from_the_dispatcher)
{
    struct reply r;
    char code[64], h[128];
    http_get("/api/nothing/here", &r);
    CHECK_EQ_INT(r.status, 404);
    CHECK(strcmp(envelope_code(&r, code, sizeof code), "not_found") == 0);
    CHECK(reply_header(&r, "Content-Type", h, sizeof h) && strcmp(h, "application/json") == 0);
    reply_free(&r);

    struct request_opts o = {.method = "DELETE"};
    http_do("/api/items/3", &o, &r);
    CHECK_EQ_INT(r.status, 405);
    CHECK(strcmp(envelope_code(&r, code, sizeof code), "method_not_allowed") == 0);
    CHECK(reply_header(&r, "Allow", h, sizeof h) && strcmp(h, "GET, HEAD") == 0);
    reply_free(&r);

    o.method = "POST";
    http_do("/api/items/3", &o, &r);
    CHECK_EQ_INT(r.status, 405);
    reply_free(&r);

    char path[3100] = "/api/items/";
    memset(path + 11, 'a', 3000);
    path[3011] = '\0';
    http_get(path, &r);
    CHECK_EQ_INT(r.status, 414);
    CHECK(strcmp(envelope_code(&r, code, sizeof code), "uri_too_long") == 0);
    reply_free(&r);
    /* The limit counts the query string too. */
    char qpath[3100] = "/api/items?q=";
    memset(qpath + 13, 'b', 2100);
    qpath[2113] = '\0';
    http_get(qpath, &r);
    CHECK_EQ_INT(r.status, 414);
    reply_free(&r);

    http_get("/api/items/a%2Fb", &r);
    CHECK_EQ_INT(r.status, 400);
    CHECK(strcmp(envelope_code(&r, code, sizeof code), "bad_path") == 0);
    reply_free(&r);
    http_get("/api/items/a%00b", &r);
    CHECK_EQ_INT(r.status, 400);
    reply_free(&r);
    http_get("/api/items?q=%zz", &r);
    CHECK_EQ_INT(r.status, 400);
    reply_free(&r);

    http_get("/api/fail", &r);
    CHECK_EQ_INT(r.status, 500);
    CHECK(strcmp(envelope_code(&r, code, sizeof code), "internal") == 0);
    reply_free(&r);
}

TEST(raw_png_upload_is_byte_exact)
{
    size_t n = 300000;
    unsigned char *img = xmalloc(n);
    random_bytes(img, n, 3);
    memcpy(img, png_bytes, sizeof png_bytes);
    struct reply r;
    http_post("/api/upload", "image/png", img, n, &r);
    CHECK_EQ_INT(r.status, 200);
    pthread_mutex_lock(&upload_mu);
    CHECK(last_upload_len == n && memcmp(last_upload, img, n) == 0);
    CHECK(strcmp(last_upload_type, "image/png") == 0);
    pthread_mutex_unlock(&upload_mu);
    reply_free(&r);

    /* Chunked transfer encoding arrives the same. */
    struct body_source src = {.total = 200000};
    struct request_opts o = {.method = "POST", .ctype = "image/jpeg", .stream = &src,
                             .chunked = 1};
    http_do("/api/upload", &o, &r);
    CHECK_EQ_INT(r.status, 200);
    pthread_mutex_lock(&upload_mu);
    CHECK(last_upload_len == 200000 && last_upload[0] == 'x' && last_upload[199999] == 'x');
    pthread_mutex_unlock(&upload_mu);
    reply_free(&r);
    free(img);
}

TEST(multipart_upload_is_byte_exact)
{
    size_t n = 120000;
    unsigned char *img = xmalloc(n), *body = xmalloc(n + 4096);
    random_bytes(img, n, 4);
    struct field f[] = {
        {"title", NULL, NULL, "a cat", 5},
        {"image", "photo 1.jpg", "image/jpeg", img, n},
        {"note", NULL, NULL, "after", 5},
    };
    size_t len = build_multipart(body, "----strataBoundary42", f, 3, 1);
    struct reply r;
    http_post("/api/upload", "multipart/form-data; boundary=----strataBoundary42", body, len, &r);
    CHECK_EQ_INT(r.status, 200);
    pthread_mutex_lock(&upload_mu);
    CHECK(last_upload_len == n && memcmp(last_upload, img, n) == 0);
    CHECK(strcmp(last_upload_type, "image/jpeg") == 0);
    CHECK(strcmp(last_upload_name, "photo 1.jpg") == 0);
    pthread_mutex_unlock(&upload_mu);
    json_t *j = json_loads(r.body ? r.body : "", 0, NULL);
    CHECK(json_integer_value(json_object_get(j, "len")) == (json_int_t)n);
    json_decref(j);
    reply_free(&r);

    /* A configurable field name and the other fields. */
    http_post("/api/upload?field=note", "multipart/form-data; boundary=----strataBoundary42",
              body, len, &r);
    CHECK_EQ_INT(r.status, 200);
    pthread_mutex_lock(&upload_mu);
    CHECK(last_upload_len == 5 && memcmp(last_upload, "after", 5) == 0);
    pthread_mutex_unlock(&upload_mu);
    reply_free(&r);
    http_post("/api/form", "multipart/form-data; boundary=----strataBoundary42", body, len, &r);
    CHECK(body_has(&r, "\"note\":\"after\""));
    reply_free(&r);

    /* What curl's own form API sends (its boundary, its headers). */
    CURL *c = curl_easy_init();
    curl_mime *mime = curl_mime_init(c);
    curl_mimepart *part = curl_mime_addpart(mime);
    curl_mime_name(part, "title");
    curl_mime_data(part, "x", CURL_ZERO_TERMINATED);
    part = curl_mime_addpart(mime);
    curl_mime_name(part, "image");
    curl_mime_data(part, (const char *)img, n);
    curl_mime_filename(part, "up.png");
    curl_mime_type(part, "image/png");
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/api/upload", g_port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
    memset(&r, 0, sizeof r);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    CHECK(curl_easy_perform(c) == CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    CHECK_EQ_INT(r.status, 200);
    pthread_mutex_lock(&upload_mu);
    CHECK(last_upload_len == n && memcmp(last_upload, img, n) == 0);
    CHECK(strcmp(last_upload_name, "up.png") == 0);
    pthread_mutex_unlock(&upload_mu);
    reply_free(&r);
    curl_mime_free(mime);
    curl_easy_cleanup(c);
    free(img);
    free(body);
}

TEST(bad_uploads)
{
    struct reply r;
    char code[64];
    unsigned char body[512];
    struct field f[] = {{"image", "a.png", "image/png", "PNGDATA", 7}};
    size_t len = build_multipart(body, "bb", f, 1, 0); /* no closing boundary */
    http_post("/api/upload", "multipart/form-data; boundary=bb", body, len, &r);
    CHECK_EQ_INT(r.status, 400);
    CHECK(body_has(&r, "closing boundary"));
    reply_free(&r);
    len = build_multipart(body, "bb", f, 1, 1);
    http_post("/api/upload", "multipart/form-data", body, len, &r);
    CHECK_EQ_INT(r.status, 400);
    CHECK(body_has(&r, "boundary"));
    reply_free(&r);
    struct field other[] = {{"file", "a.png", "image/png", "PNGDATA", 7}};
    len = build_multipart(body, "bb", other, 1, 1);
    http_post("/api/upload", "multipart/form-data; boundary=bb", body, len, &r);
    CHECK_EQ_INT(r.status, 400);
    CHECK(body_has(&r, "no field \\\"image\\\""));
    reply_free(&r);

    http_post("/api/upload", "text/plain", "hello", 5, &r);
    CHECK_EQ_INT(r.status, 415);
    CHECK(strcmp(envelope_code(&r, code, sizeof code), "unsupported_media_type") == 0);
    reply_free(&r);
    http_post("/api/upload", NULL, "hello", 5, &r);
    CHECK_EQ_INT(r.status, 415);
    reply_free(&r);
    http_post("/api/upload", "image/png", "", 0, &r);
    CHECK_EQ_INT(r.status, 400);
    CHECK(body_has(&r, "empty"));
    reply_free(&r);
}

TEST(oversized_bodies)
{
    struct reply r;
    char code[64];
    /* Declared 50 MB against the 10 MB limit: refused from the headers. */
    struct body_source src = {.total = 50u << 20};
    struct request_opts o = {.method = "POST", .ctype = "image/png", .stream = &src};
    http_do("/api/upload", &o, &r);
    CHECK_EQ_INT(r.status, 413);
    CHECK(strcmp(envelope_code(&r, code, sizeof code), "payload_too_large") == 0);
    CHECK_MSG(r.seconds < 2.0, "took %.2f s", r.seconds);
    CHECK_MSG(src.sent < (10u << 20), "the client sent %zu bytes", src.sent);
    reply_free(&r);

    /* Same without "Expect: 100-continue": the client starts sending at once. */
    struct body_source src2 = {.total = 50u << 20};
    o.stream = &src2;
    o.no_expect = 1;
    http_do("/api/upload", &o, &r);
    CHECK_MSG(r.status == 413 || r.rc != CURLE_OK, "status %ld rc %d", r.status, r.rc);
    CHECK_MSG(r.seconds < 5.0, "took %.2f s", r.seconds);
    reply_free(&r);

    /* Chunked, no length declared, a little over the limit: read, dropped,
     * answered 413. */
    struct body_source src5 = {.total = 12u << 20};
    struct request_opts oc5 = {.method = "POST", .ctype = "image/png", .stream = &src5,
                               .chunked = 1};
    http_do("/api/upload", &oc5, &r);
    CHECK_EQ_INT(r.status, 413);
    CHECK(strcmp(envelope_code(&r, code, sizeof code), "payload_too_large") == 0);
    reply_free(&r);

    /* Chunked and far over: the connection is dropped before the end. */
    struct body_source src3 = {.total = 50u << 20};
    struct request_opts oc = {.method = "POST", .ctype = "image/png", .stream = &src3,
                              .chunked = 1};
    http_do("/api/upload", &oc, &r);
    CHECK_MSG(r.status == 413 || r.rc != CURLE_OK, "status %ld rc %d", r.status, r.rc);
    CHECK_MSG(src3.sent < (40u << 20), "the client sent %zu bytes", src3.sent);
    CHECK_MSG(r.seconds < 5.0, "took %.2f s", r.seconds);
    reply_free(&r);

    /* Exactly at the limit is fine. */
    struct body_source src4 = {.total = 10u << 20};
    o.stream = &src4;
    o.no_expect = 0;
    http_do("/api/upload", &o, &r);
    CHECK_EQ_INT(r.status, 200);
    reply_free(&r);

    http_get("/api/items", &r);
    CHECK_EQ_INT(r.status, 200);
    reply_free(&r);
    wait_idle();
    CHECK_EQ_INT(http_server_in_flight(g_srv), 0);
}

TEST(content_length_lies)
{
    char buf[4096];
    /* Declares 4 bytes, sends 10: the body is the first 4; the rest is not a
     * valid next request. */
    forget_upload();
    int fd = raw_connect();
    CHECK(fd >= 0);
    const char req1[] = "POST /api/upload HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n"
                        "Content-Length: 4\r\n\r\nABCDEFGHIJ";
    CHECK(send(fd, req1, sizeof req1 - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof req1 - 1));
    raw_read_response(fd, buf, sizeof buf);
    CHECK(strncmp(buf, "HTTP/1.1 200", 12) == 0);
    close(fd);
    pthread_mutex_lock(&upload_mu);
    CHECK(last_upload_len == 4 && memcmp(last_upload, "ABCD", 4) == 0);
    pthread_mutex_unlock(&upload_mu);

    /* Declares 1000, sends 10 and closes. */
    fd = raw_connect();
    const char req2[] = "POST /api/upload HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n"
                        "Content-Length: 1000\r\n\r\n0123456789";
    CHECK(send(fd, req2, sizeof req2 - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof req2 - 1));
    usleep(50000);
    close(fd);

    /* Garbage request line and a header with no end. */
    fd = raw_connect();
    const char req3[] = "\x01\x02 nonsense\r\n\r\n";
    send(fd, req3, sizeof req3 - 1, MSG_NOSIGNAL);
    raw_read_all(fd, buf, sizeof buf);
    close(fd);
    fd = raw_connect();
    const char req4[] = "GET /api/items HTTP/1.1\r\nHost: t\r\nX-Long: aaaa";
    send(fd, req4, sizeof req4 - 1, MSG_NOSIGNAL);
    close(fd);

    wait_idle();
    CHECK_EQ_INT(http_server_in_flight(g_srv), 0);
    struct reply r;
    http_get("/api/items", &r);
    CHECK_EQ_INT(r.status, 200);
    reply_free(&r);
}

/* Framing a proxy could read otherwise: two Content-Length headers that
 * disagree (request smuggling) get 400, and a Transfer-Encoding other than
 * chunked 501, at once and closed; agreeing duplicates are one length.
 * Headers over the limit get 431 in JSON. Many query parameters are
 * counted as the bytes they are on the wire: a URL just under the limit
 * made of a thousand empty parameters is served, one just over it gets 414
 * in JSON, and so do tens of thousands of them. */
TEST(framing_a_proxy_could_read_otherwise)
{
    char buf[4096];
    static const char *const refused[][2] = {
        {"POST /api/upload HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n"
         "Content-Length: 4\r\nContent-Length: 40\r\n\r\nABCD",
         "HTTP/1.1 400"},
        {"POST /api/upload HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n"
         "Transfer-Encoding: xchunked\r\n\r\nABCD",
         "HTTP/1.1 501"},
        {"POST /api/upload HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n"
         "Transfer-Encoding: chunked, identity\r\n\r\nABCD",
         "HTTP/1.1 501"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        int fd = raw_connect();
        CHECK(fd >= 0);
        send(fd, refused[i][0], strlen(refused[i][0]), MSG_NOSIGNAL);
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        size_t n = raw_read_all(fd, buf, sizeof buf - 1); /* the server closes */
        double waited = seconds_since(&t0);
        buf[n] = '\0';
        CHECK_MSG(strncmp(buf, refused[i][1], 12) == 0, "case %zu: %.80s", i, buf);
        CHECK(strstr(buf, "Connection: close") != NULL);
        CHECK(strstr(buf, "{\"error\":") != NULL);
        CHECK(waited < 2.0);
        close(fd);
    }
    /* the same length twice, and chunked in any case, are fine */
    forget_upload();
    int fd = raw_connect();
    const char same[] = "POST /api/upload HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n"
                        "Content-Length: 4\r\nContent-Length: 4\r\nConnection: close\r\n\r\nABCD";
    send(fd, same, sizeof same - 1, MSG_NOSIGNAL);
    raw_read_all(fd, buf, sizeof buf);
    CHECK(strncmp(buf, "HTTP/1.1 200", 12) == 0);
    close(fd);
    fd = raw_connect();
    const char chunked[] = "POST /api/upload HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n"
                           "Transfer-Encoding: Chunked\r\nConnection: close\r\n\r\n"
                           "4\r\nWXYZ\r\n0\r\n\r\n";
    send(fd, chunked, sizeof chunked - 1, MSG_NOSIGNAL);
    raw_read_all(fd, buf, sizeof buf);
    CHECK(strncmp(buf, "HTTP/1.1 200", 12) == 0);
    close(fd);
    pthread_mutex_lock(&upload_mu);
    CHECK(last_upload_len == 4 && memcmp(last_upload, "WXYZ", 4) == 0);
    pthread_mutex_unlock(&upload_mu);

    /* 20 KB of header lines: over the 16 KB of headers a request may have */
    {
        size_t cap = 24 << 10, len = 0;
        char *req = malloc(cap);
        len += (size_t)snprintf(req, cap, "GET /api/items HTTP/1.1\r\nHost: t\r\n");
        for (int i = 0; i < 200; i++)
            len += (size_t)snprintf(req + len, cap - len, "X-Filler-%03d: %090d\r\n", i, i);
        len += (size_t)snprintf(req + len, cap - len, "Connection: close\r\n\r\n");
        fd = raw_connect();
        send(fd, req, len, MSG_NOSIGNAL);
        size_t got = raw_read_all(fd, buf, sizeof buf - 1);
        buf[got] = '\0';
        close(fd);
        free(req);
        CHECK_MSG(strncmp(buf, "HTTP/1.1 431", 12) == 0 && strstr(buf, "headers_too_large"), "%.80s",
                  buf);
    }

    /* "/api/items?" and "a&" × n: 11 + 2n − 1 bytes; the limit is 2048. From
     * about 3,000 parameters on, libmicrohttpd's own parsing of the query
     * used to exhaust the connection's memory and close it without a reply;
     * 40,000 (80 KB) still fit in its read buffer. */
    static const int counts[] = {1000, 1100, 3000, 8000, 40000};
    for (size_t k = 0; k < sizeof counts / sizeof *counts; k++) {
        int n = counts[k];
        size_t len = 0, cap = 2 * (size_t)n + 256;
        char *req = malloc(cap);
        len += (size_t)snprintf(req, cap, "GET /api/items?");
        for (int i = 0; i < n; i++)
            len += (size_t)snprintf(req + len, cap - len, i ? "&a" : "a");
        len += (size_t)snprintf(req + len, cap - len, " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        fd = raw_connect();
        send(fd, req, len, MSG_NOSIGNAL);
        size_t got = raw_read_all(fd, buf, sizeof buf - 1);
        buf[got] = '\0';
        close(fd);
        free(req);
        if (n == 1000)
            CHECK_MSG(strncmp(buf, "HTTP/1.1 200", 12) == 0, "%d parameters: %.60s", n, buf);
        else
            CHECK_MSG(strncmp(buf, "HTTP/1.1 414", 12) == 0 && strstr(buf, "uri_too_long"),
                      "%d parameters: %.60s", n, buf);
    }
}

/* How many times needle occurs in hay. */
static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* A Content-Length that is not a number of bytes gets one well-formed 400
 * in JSON (413 when it is digits too many for 64 bits), then the close: one
 * status line, headers, and a body of exactly the length they give. On a
 * kept-alive connection too, after a request that was answered. (libmicrohttpd
 * 0.9.75 answers these itself and sends its status line and headers twice.) */
TEST(malformed_content_length_gets_one_reply)
{
    char buf[8192];
    static const struct {
        const char *value;
        const char *status, *code;
    } cases[] = {
        {"abc", "HTTP/1.1 400 ", "\"code\":\"bad_request\""},
        {"-1", "HTTP/1.1 400 ", "\"code\":\"bad_request\""},
        {"1e6", "HTTP/1.1 400 ", "\"code\":\"bad_request\""},
        {"12 13", "HTTP/1.1 400 ", "\"code\":\"bad_request\""},
        {"99999999999999999999999", "HTTP/1.1 413 ", "\"code\":\"payload_too_large\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        for (int kept_alive = 0; kept_alive < 2; kept_alive++) {
            char req[512];
            snprintf(req, sizeof req,
                     "%sPOST /api/upload HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n"
                     "Content-Length: %s\r\n\r\n",
                     kept_alive ? "GET /api/items HTTP/1.1\r\nHost: t\r\n\r\n" : "",
                     cases[i].value);
            int fd = raw_connect();
            CHECK(fd >= 0);
            send(fd, req, strlen(req), MSG_NOSIGNAL);
            size_t n = raw_read_all(fd, buf, sizeof buf); /* the server closes */
            close(fd);
            CHECK_MSG(count_of(buf, "HTTP/1.1 ") == 1 + kept_alive, "%s: %d status lines: %.300s",
                      cases[i].value, count_of(buf, "HTTP/1.1 "), buf);
            const char *reply = buf;
            if (kept_alive) {
                CHECK(strncmp(buf, "HTTP/1.1 200 ", 13) == 0);
                reply = strstr(buf + 1, "HTTP/1.1 ");
                if (!reply)
                    continue;
            }
            CHECK_MSG(strncmp(reply, cases[i].status, 13) == 0, "%s: %.60s", cases[i].value, reply);
            CHECK(strstr(reply, "\r\nConnection: close\r\n") != NULL);
            CHECK(strstr(reply, "\r\nContent-Type: application/json\r\n") != NULL);
            const char *cl = strstr(reply, "\r\nContent-Length: ");
            const char *body = strstr(reply, "\r\n\r\n");
            CHECK(cl && body);
            if (!cl || !body)
                continue;
            body += 4;
            CHECK_EQ_INT((long)strtoul(cl + 18, NULL, 10), (long)(buf + n - body));
            CHECK(strstr(body, cases[i].code) != NULL);
            char echoed[64];
            snprintf(echoed, sizeof echoed, "Content-Length \\\"%s\\\"", cases[i].value);
            CHECK_MSG(strstr(body, echoed) != NULL, "%s", body);
        }
    }
    /* and the server goes on answering */
    struct reply r;
    http_get("/api/items", &r);
    CHECK_EQ_INT(r.status, 200);
    reply_free(&r);
}

/* Reads a file of the temp tree into a malloc'd buffer; *len its size. */
static char *slurp(const char *rel, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", g_root, rel);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *b = calloc(1, 4096);
    size_t n = fread(b, 1, 4095, f);
    b[n] = '\0';
    *len = n;
    fclose(f);
    return b;
}

TEST(static_files)
{
    static const struct {
        const char *url, *file, *type;
    } cases[] = {
        {"/", "web/index.html", "text/html; charset=utf-8"},
        {"/index.html", "web/index.html", "text/html; charset=utf-8"},
        {"/model", "web/model.html", "text/html; charset=utf-8"},
        {"/app.js", "web/app.js", "text/javascript; charset=utf-8"},
        {"/app.mjs", "web/app.mjs", "text/javascript; charset=utf-8"},
        {"/alias.js", "web/app.js", "text/javascript; charset=utf-8"},
        {"/style.css", "web/style.css", "text/css; charset=utf-8"},
        {"/data.json", "web/data.json", "application/json"},
        {"/app.js.map", "web/app.js.map", "application/json"},
        {"/pic.png", "web/pic.png", "image/png"},
        {"/photo.JPG", "web/photo.JPG", "image/jpeg"},
        {"/font.woff2", "web/font.woff2", "font/woff2"},
        {"/favicon.ico", "web/favicon.ico", "image/x-icon"},
        {"/notes.txt", "web/notes.txt", "text/plain; charset=utf-8"},
        {"/blob.bin", "web/blob.bin", "application/octet-stream"},
        {"/sub/", "web/sub/index.html", "text/html; charset=utf-8"},
        {"/sub", "web/sub/index.html", "text/html; charset=utf-8"},
        {"/st%79le.css", "web/style.css", "text/css; charset=utf-8"},
        {"/static/logo.svg", "static/logo.svg", "image/svg+xml"},
        {"/vendor/lib.js", "node/lib.js", "text/javascript; charset=utf-8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct reply r;
        char h[256];
        http_get(cases[i].url, &r);
        size_t want_len = 0;
        char *want = slurp(cases[i].file, &want_len);
        CHECK_MSG(r.status == 200, "%s: %ld", cases[i].url, r.status);
        CHECK_MSG(want && r.len == want_len && memcmp(r.body, want, r.len) == 0, "%s",
                  cases[i].url);
        CHECK_MSG(reply_header(&r, "Content-Type", h, sizeof h) && strcmp(h, cases[i].type) == 0,
                  "%s: %s", cases[i].url, h);
        CHECK(reply_header(&r, "ETag", h, sizeof h) && h[0] == '"');
        CHECK(reply_header(&r, "X-Content-Type-Options", h, sizeof h));
        free(want);
        reply_free(&r);
    }
    struct reply r;
    char h[256], etag[128];
    http_get("/static/logo.svg", &r);
    CHECK(reply_header(&r, "Cache-Control", h, sizeof h) && strcmp(h, "public, max-age=3600") == 0);
    reply_free(&r);
    /* another method on a file that is there: 405 with Allow, as on the API's
     * routes; on a path that is nothing, 404 */
    http_post("/static/logo.svg", "text/plain", "x", 1, &r);
    CHECK_EQ_INT(r.status, 405);
    CHECK(reply_header(&r, "Allow", h, sizeof h) && strcmp(h, "GET, HEAD") == 0);
    CHECK(body_has(&r, "method_not_allowed"));
    reply_free(&r);
    http_post("/static/nothing.svg", "text/plain", "x", 1, &r);
    CHECK_EQ_INT(r.status, 404);
    reply_free(&r);

    /* ETag, then If-None-Match -> 304 with no body; a stale tag -> 200. */
    http_get("/app.js", &r);
    CHECK(reply_header(&r, "ETag", etag, sizeof etag));
    CHECK(reply_header(&r, "Cache-Control", h, sizeof h) && strcmp(h, "no-cache") == 0);
    reply_free(&r);
    char inm[200];
    snprintf(inm, sizeof inm, "If-None-Match: \"other\", %s", etag);
    struct request_opts o = {.method = "GET", .header = inm};
    http_do("/app.js", &o, &r);
    CHECK_EQ_INT(r.status, 304);
    CHECK(r.len == 0);
    CHECK(reply_header(&r, "ETag", h, sizeof h) && strcmp(h, etag) == 0);
    reply_free(&r);
    snprintf(inm, sizeof inm, "If-None-Match: W/%s", etag);
    http_do("/app.js", &o, &r);
    CHECK_EQ_INT(r.status, 304);
    reply_free(&r);
    o.header = "If-None-Match: \"stale\"";
    http_do("/app.js", &o, &r);
    CHECK_EQ_INT(r.status, 200);
    reply_free(&r);
    /* "*" is any current file, also in a list; a tag inside junk is not a tag. */
    o.header = "If-None-Match: *, \"stale\"";
    http_do("/app.js", &o, &r);
    CHECK_EQ_INT(r.status, 304);
    reply_free(&r);
    snprintf(inm, sizeof inm, "If-None-Match: xx%s", etag);
    o.header = inm;
    http_do("/app.js", &o, &r);
    CHECK_EQ_INT(r.status, 200);
    reply_free(&r);
    /* Changing the file changes the tag. */
    usleep(20000);
    write_text("web/app.js", "export const x = 22;\n");
    snprintf(inm, sizeof inm, "If-None-Match: %s", etag);
    o.header = inm;
    http_do("/app.js", &o, &r);
    CHECK_EQ_INT(r.status, 200);
    CHECK(body_has(&r, "x = 22"));
    reply_free(&r);

    /* HEAD of a file: headers and length, no body. */
    struct request_opts head = {.method = "HEAD"};
    http_do("/model", &head, &r);
    CHECK_EQ_INT(r.status, 200);
    CHECK(r.len == 0);
    CHECK(reply_header(&r, "Content-Length", h, sizeof h) && atoi(h) == 40);
    reply_free(&r);

    char code[64];
    http_get("/missing.html", &r);
    CHECK_EQ_INT(r.status, 404);
    CHECK(strcmp(envelope_code(&r, code, sizeof code), "not_found") == 0);
    reply_free(&r);
    http_get("/vendor/missing.js", &r);
    CHECK_EQ_INT(r.status, 404);
    reply_free(&r);
    http_get("/.hidden", &r);
    CHECK_EQ_INT(r.status, 404);
    reply_free(&r);
    o.method = "POST";
    o.header = NULL;
    http_do("/index.html", &o, &r);
    CHECK_EQ_INT(r.status, 405); /* the page is there; POST is not how to get it */
    reply_free(&r);
}

TEST(static_refuses_escapes)
{
    static const char *const attacks[] = {
        "/../secret.txt",           "/..%2fsecret.txt",       "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",       "/sub/../../secret.txt",  "/static/../secret.txt",
        "/%2fetc/passwd",           "//etc/passwd",           "/static//etc/passwd",
        "/..\\secret.txt",          "/%5c..%5csecret.txt",    "/index.html%00.png",
        "/link_out.txt",            "/dir_out/secret.txt",    "/./index.html",
        "/sub/%2e/index.html",      "/static/%2e%2e/secret.txt", "/%zz",
        "/static/..",               "/..",
    };
    for (size_t i = 0; i < sizeof attacks / sizeof attacks[0]; i++) {
        struct reply r;
        http_get(attacks[i], &r);
        CHECK_MSG(r.status == 400 || r.status == 404, "%s: %ld", attacks[i], r.status);
        CHECK_MSG(!body_has(&r, "TOPSECRET") && !body_has(&r, "root:"), "%s leaked", attacks[i]);
        reply_free(&r);
    }
    /* A raw request line with an absolute path is refused as well. */
    int fd = raw_connect();
    const char req[] = "GET /etc/passwd HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    send(fd, req, sizeof req - 1, MSG_NOSIGNAL);
    char buf[4096];
    raw_read_all(fd, buf, sizeof buf);
    CHECK(strncmp(buf, "HTTP/1.1 404", 12) == 0);
    CHECK(strstr(buf, "root:") == NULL);
    close(fd);
}

TEST(static_units)
{
    CHECK(strcmp(static_mime_type("a/b/c.HTML"), "text/html; charset=utf-8") == 0);
    CHECK(strcmp(static_mime_type("x.tar.gz"), "application/octet-stream") == 0);
    CHECK(strcmp(static_mime_type("noext"), "application/octet-stream") == 0);
    CHECK(strcmp(static_mime_type("dir.d/noext"), "application/octet-stream") == 0);
    CHECK(strcmp(static_mime_type("x.jpeg"), "image/jpeg") == 0);
    char err[STRATA_ERR_LEN];
    struct static_files *sf;
    const struct static_mount bad[] = {{"static/", "static", NULL}};
    CHECK(static_new(".", bad, 1, &sf, err) == STRATA_E_ARG);
    /* Called directly, without a server: no mount covers /api. */
    const struct static_mount one[] = {{"/static/", "static", NULL}};
    CHECK(static_new(g_root, one, 1, &sf, err) == 0);
    struct request req = {.method = "GET", .path = "/api/x"};
    struct response res;
    response_init(&res);
    CHECK(static_serve(sf, &req, &res) == 0);
    CHECK_EQ_INT(res.status, 0);
    req.path = "/static/logo.svg";
    CHECK(static_serve(sf, &req, &res) == 1);
    CHECK_EQ_INT(res.status, 200);
    CHECK(res.fd >= 0 && res.fd_size == strlen("<svg xmlns=\"http://www.w3.org/2000/svg\"/>"));
    response_deinit(&res);
    CHECK(res.fd == -1);
    static_free(sf);
}


TEST(query_values_with_nul_are_refused)
{
    /* A value or key that decodes to NUL would be cut short as a C string:
     * 400, as for path segments. */
    static const char *const bad[] = {"/api/items/a/parts/b?q=3%00abc",
                                      "/api/items/a/parts/b?q%00x=1", "/api/items/a/parts/b?q=%00",
                                      "/api/items?q=%zz"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct reply r;
        char code[64];
        http_get(bad[i], &r);
        CHECK_MSG(r.status == 400, "%s: %ld", bad[i], r.status);
        CHECK_MSG(strcmp(envelope_code(&r, code, sizeof code), "bad_parameter") == 0, "%s: %s",
                  bad[i], r.body ? r.body : "");
        reply_free(&r);
    }
    struct reply r;
    http_get("/api/items/a/parts/b?q=3%01abc", &r); /* other control bytes are data */
    CHECK_EQ_INT(r.status, 200);
    reply_free(&r);
}

/* Sends `req` on a new connection, waits `hold_ms`, closes it without
 * reading the answer. */
static void send_and_vanish(const char *req, int hold_ms)
{
    int fd = raw_connect();
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    CHECK(send(fd, req, strlen(req), 0) == (ssize_t)strlen(req));
    usleep((useconds_t)hold_ms * 1000);
    close(fd);
}

TEST(a_client_that_leaves_cancels_its_job)
{
    atomic_store(&watch_started, 0);
    atomic_store(&watch_cancelled, 0);
    atomic_store(&watch_finished, 0);
    struct jobs_stats before, st;
    jobs_get_stats(g_app.pool, &before);

    /* Running: a 20 s job stops soon after its client closes the connection. */
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    send_and_vanish("GET /api/watch?ms=20000 HTTP/1.1\r\nHost: x\r\n\r\n", 200);
    for (int i = 0; i < 500 && atomic_load(&watch_cancelled) == 0; i++)
        usleep(10000);
    double dt = seconds_since(&t0);
    CHECK_EQ_INT(atomic_load(&watch_started), 1);
    CHECK_EQ_INT(atomic_load(&watch_cancelled), 1);
    CHECK_MSG(dt < 1.5, "the job stopped %.2f s after the request", dt);
    wait_idle();
    CHECK_EQ_INT(http_server_in_flight(g_srv), 0);

    /* Queued: with the worker taken, the request's job is dropped from the
     * queue when its client leaves, and never runs. */
    char err[STRATA_ERR_LEN];
    atomic_int gate = 0;
    CHECK(jobs_submit(g_app.pool, sleepy_job, &gate, NULL, err) == 0);
    for (int i = 0; i < 5000; i++) {
        jobs_get_stats(g_app.pool, &st);
        if (st.running == 1)
            break;
        usleep(1000);
    }
    int fd = raw_connect();
    const char req[] = "GET /api/watch?ms=1 HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK(send(fd, req, sizeof req - 1, 0) == (ssize_t)(sizeof req - 1));
    for (int i = 0; i < 5000; i++) {
        jobs_get_stats(g_app.pool, &st);
        if (st.queued == 1)
            break;
        usleep(1000);
    }
    CHECK_EQ_INT(st.queued, 1);
    close(fd);
    for (int i = 0; i < 150; i++) {
        jobs_get_stats(g_app.pool, &st);
        if (st.queued == 0)
            break;
        usleep(10000);
    }
    CHECK_EQ_INT(st.queued, 0);
    CHECK_EQ_INT(st.abandoned - before.abandoned, 2);
    atomic_store(&gate, 1);
    for (int i = 0; i < 5000; i++) {
        jobs_get_stats(g_app.pool, &st);
        if (st.running == 0)
            break;
        usleep(1000);
    }
    CHECK_EQ_INT(atomic_load(&watch_started), 1);
    wait_idle();

    /* A client that stays gets its answer. */
    struct reply r;
    http_get("/api/watch?ms=300", &r);
    CHECK_EQ_INT(r.status, 200);
    CHECK(body_has(&r, "\"ms\":300"));
    reply_free(&r);
    CHECK_EQ_INT(atomic_load(&watch_finished), 1);
}

struct hammer {
    int id, ok, requests;
};

static void *hammer_main(void *cls)
{
    struct hammer *h = cls;
    CURL *c = curl_easy_init(); /* one handle: requests reuse the connection */
    h->ok = 1;
    for (int i = 0; i < 20; i++) {
        char path[128], want[128];
        struct reply r;
        struct request_opts o = {.method = "GET", .handle = c};
        if (i % 5 == 4) {
            http_do("/api/slow?ms=20", &o, &r);
            snprintf(want, sizeof want, "slow but done");
        } else {
            snprintf(path, sizeof path, "/api/items/t%d/parts/r%d", h->id, i);
            snprintf(want, sizeof want, "\"id\":\"t%d\",\"part\":\"r%d\"", h->id, i);
            http_do(path, &o, &r);
        }
        if (r.rc != CURLE_OK || r.status != 200 || !body_has(&r, want))
            h->ok = 0;
        h->requests++;
        reply_free(&r);
    }
    curl_easy_cleanup(c);
    return NULL;
}

TEST(concurrent_clients)
{
    pthread_t t[16];
    struct hammer h[16];
    for (int i = 0; i < 16; i++) {
        h[i] = (struct hammer){.id = i};
        pthread_create(&t[i], NULL, hammer_main, &h[i]);
    }
    for (int i = 0; i < 16; i++) {
        pthread_join(t[i], NULL);
        CHECK_MSG(h[i].ok && h[i].requests == 20, "client %d", i);
    }
}

TEST(keep_alive_survives_every_kind_of_reply)
{
    /* Replies decided from the headers (static files, 404, 405, 414) must
     * not cost the client its connection: the second and later requests on
     * one handle open no new connection. */
    static const char *const paths[] = {"/api/items", "/index.html", "/api/nothing",
                                        "/app.js", "/api/items/a%2Fb", "/api/items"};
    CURL *c = curl_easy_init();
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        struct reply r;
        struct request_opts o = {.method = "GET", .handle = c};
        http_do(paths[i], &o, &r);
        long connects = -1;
        curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &connects);
        CHECK(r.rc == CURLE_OK);
        CHECK_MSG(connects == (i == 0 ? 1 : 0), "%s opened %ld connections", paths[i], connects);
        reply_free(&r);
    }
    struct reply r;
    struct request_opts o = {.method = "DELETE", .handle = c};
    http_do("/api/items", &o, &r);
    long connects = -1;
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &connects);
    CHECK_EQ_INT(r.status, 405);
    CHECK_EQ_INT(connects, 0);
    reply_free(&r);
    curl_easy_cleanup(c);
}

TEST(busy_pool_answers_503)
{
    char err[STRATA_ERR_LEN];
    struct reply r;
    http_post("/api/job", NULL, "", 0, &r);
    CHECK_EQ_INT(r.status, 200);
    CHECK(body_has(&r, "\"result\":49"));
    reply_free(&r);

    /* Occupy the single worker and the single queue slot. */
    atomic_int gate = 0;
    CHECK(jobs_submit(g_app.pool, sleepy_job, &gate, NULL, err) == 0);
    struct jobs_stats st;
    for (int i = 0; i < 5000; i++) {
        jobs_get_stats(g_app.pool, &st);
        if (st.running == 1)
            break;
        usleep(1000);
    }
    CHECK(jobs_submit(g_app.pool, sleepy_job, &gate, NULL, err) == 0);
    http_post("/api/job", NULL, "", 0, &r);
    CHECK_EQ_INT(r.status, 503);
    char h[64], code[64];
    CHECK(reply_header(&r, "Retry-After", h, sizeof h) && strcmp(h, "1") == 0);
    CHECK(strcmp(envelope_code(&r, code, sizeof code), "busy") == 0);
    reply_free(&r);
    atomic_store(&gate, 1);
    for (int i = 0; i < 5000; i++) {
        jobs_get_stats(g_app.pool, &st);
        if (st.running == 0 && st.queued == 0)
            break;
        usleep(1000);
    }
    http_post("/api/job", NULL, "", 0, &r);
    CHECK_EQ_INT(r.status, 200);
    reply_free(&r);
}

TEST(request_log)
{
    struct reply r;
    http_get("/api/items/logme?x=1", &r);
    reply_free(&r);
    wait_idle();
    fflush(g_log);
    long end = ftell(g_log);
    char *text = calloc(1, (size_t)end + 1);
    rewind(g_log);
    size_t n = fread(text, 1, (size_t)end, g_log);
    text[n] = '\0';
    fseek(g_log, 0, SEEK_END);
    /* method path status bytes milliseconds */
    const char *line = strstr(text, "GET /api/items/logme 200 ");
    CHECK(line != NULL);
    if (line) {
        size_t bytes;
        double ms;
        CHECK(sscanf(line, "GET /api/items/logme 200 %zu %lfms", &bytes, &ms) == 2);
        CHECK(bytes == strlen("{\"route\":\"item\",\"id\":\"logme\"}"));
        CHECK(ms >= 0 && ms < 5000);
    }
    CHECK(strstr(text, "GET /api/nothing/here 404 ") != NULL);
    CHECK(strstr(text, "POST /api/upload 413 ") != NULL);
    free(text);
}

struct slow_client {
    unsigned port;
    struct reply r;
};

static void *slow_client_main(void *cls)
{
    struct slow_client *sc = cls;
    CURL *c = curl_easy_init();
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/api/slow?ms=1000", sc->port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sc->r);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    sc->r.rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &sc->r.status);
    curl_easy_cleanup(c);
    return NULL;
}

struct stop_arg {
    struct http_server *srv;
    struct timespec t0, t1;
};

static void *stop_main(void *cls)
{
    struct stop_arg *sa = cls;
    clock_gettime(CLOCK_MONOTONIC, &sa->t0);
    http_server_stop(sa->srv);
    clock_gettime(CLOCK_MONOTONIC, &sa->t1);
    return NULL;
}

TEST(shutdown_lets_requests_finish)
{
    char err[STRATA_ERR_LEN];
    struct router *rt;
    CHECK(router_new(test_routes, N_TEST_ROUTES, &rt, err) == 0);
    struct http_config cfg;
    http_config_defaults(&cfg);
    cfg.router = rt;
    cfg.quiet = 1;
    struct http_server *srv;
    CHECK(http_server_start(&cfg, &srv, err) == 0);
    unsigned port = http_server_port(srv);
    CHECK(port > 0 && port != g_port);

    /* The port is taken now. */
    struct http_server *dup;
    FILE *quiet_log = tmpfile(); /* MHD logs the failed bind */
    cfg.log = quiet_log;
    cfg.port = port;
    CHECK(http_server_start(&cfg, &dup, err) == STRATA_E_IO);
    cfg.port = 70000;
    CHECK(http_server_start(&cfg, &dup, err) == STRATA_E_ARG);
    cfg.port = 0;
    cfg.host = "no.such.host.invalid";
    CHECK(http_server_start(&cfg, &dup, err) == STRATA_E_ARG);
    fclose(quiet_log);

    /* A keep-alive connection opened before the shutdown. */
    CURL *idle = curl_easy_init();
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/api/items", port);
    struct reply ir;
    memset(&ir, 0, sizeof ir);
    curl_easy_setopt(idle, CURLOPT_URL, url);
    curl_easy_setopt(idle, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(idle, CURLOPT_WRITEDATA, &ir);
    CHECK(curl_easy_perform(idle) == CURLE_OK);
    reply_free(&ir);
    /* Its completion may trail the reply a little. */
    for (int i = 0; i < 2500 && http_server_in_flight(srv) > 0; i++)
        usleep(2000);

    struct slow_client sc;
    memset(&sc, 0, sizeof sc);
    sc.port = port;
    pthread_t t, stopper;
    pthread_create(&t, NULL, slow_client_main, &sc);
    for (int i = 0; i < 500 && http_server_in_flight(srv) == 0; i++)
        usleep(2000);
    CHECK_EQ_INT(http_server_in_flight(srv), 1);
    struct stop_arg sa = {.srv = srv};
    pthread_create(&stopper, NULL, stop_main, &sa);
    /* While the server drains, a new request on the old connection is
     * told to go away (and the connection closes), and a new connection is
     * refused at once rather than left waiting for the grace to end. */
    usleep(200000);
    CHECK(raw_connect_from(port, "127.0.0.1") < 0);
    curl_easy_setopt(idle, CURLOPT_WRITEDATA, &ir);
    CHECK(curl_easy_perform(idle) == CURLE_OK);
    curl_easy_getinfo(idle, CURLINFO_RESPONSE_CODE, &ir.status);
    long connects = -1;
    curl_easy_getinfo(idle, CURLINFO_NUM_CONNECTS, &connects);
    CHECK_EQ_INT(ir.status, 503);
    CHECK_EQ_INT(connects, 0);
    char code[64];
    CHECK(strcmp(envelope_code(&ir, code, sizeof code), "shutting_down") == 0);
    reply_free(&ir);
    curl_easy_cleanup(idle);
    pthread_join(stopper, NULL);
    pthread_join(t, NULL);
    struct timespec t0 = sa.t0, t1 = sa.t1;
    CHECK(sc.r.rc == CURLE_OK);
    CHECK_EQ_INT(sc.r.status, 200);
    CHECK(body_has(&sc.r, "slow but done"));
    double dt = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK_MSG(dt > 0.5 && dt < 5.0, "stop took %.2f s", dt);
    reply_free(&sc.r);

    /* Nobody listens any more. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) != 0);
    close(fd);
    router_free(rt);
}


/* A server of its own with cfg tweaked by the caller; NULL on failure. */
static struct http_server *start_own(struct http_config *cfg, struct router **rt, FILE **log)
{
    char err[STRATA_ERR_LEN];
    if (router_new(test_routes, N_TEST_ROUTES, rt, err) < 0)
        return NULL;
    *log = tmpfile();
    cfg->router = *rt;
    cfg->app = &g_app;
    cfg->log = *log;
    cfg->quiet = 1;
    struct http_server *srv = NULL;
    if (http_server_start(cfg, &srv, err) < 0) {
        printf("# %s\n", err);
        router_free(*rt);
        fclose(*log);
        return NULL;
    }
    return srv;
}

static void stop_own(struct http_server *srv, struct router *rt, FILE *log)
{
    http_server_stop(srv);
    router_free(rt);
    fclose(log);
}

/* A stalled upload (headers, then a few bytes of a long body, then nothing)
 * does not hold the shutdown for the whole grace: once every request left is
 * only receiving a body and no byte came for a second, the server stops. */
TEST(shutdown_does_not_wait_for_stalled_uploads)
{
    struct http_config cfg;
    http_config_defaults(&cfg);
    cfg.shutdown_grace_s = 10;
    struct router *rt;
    FILE *log;
    struct http_server *srv = start_own(&cfg, &rt, &log);
    CHECK(srv != NULL);
    if (!srv)
        return;
    unsigned port = http_server_port(srv);
    int fd = raw_connect_from(port, "127.0.0.1");
    CHECK(fd >= 0);
    const char req[] = "POST /api/upload HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n"
                       "Content-Length: 100000\r\n\r\n0123456789";
    CHECK(send(fd, req, sizeof req - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof req - 1));
    for (int i = 0; i < 500 && http_server_in_flight(srv) == 0; i++)
        usleep(2000);
    CHECK_EQ_INT(http_server_in_flight(srv), 1);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    stop_own(srv, rt, log);
    double dt = seconds_since(&t0);
    CHECK_MSG(dt < 4.0, "stop took %.2f s with a stalled upload (grace 10 s)", dt);
    close(fd);
}

/* GET /api/items on fd; the status, or 0 when the server closed without
 * answering. */
static int raw_status(int fd)
{
    const char req[] = "GET /api/items HTTP/1.1\r\nHost: x\r\n\r\n";
    char buf[2048];
    if (send(fd, req, sizeof req - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof req - 1))
        return 0;
    raw_read_response(fd, buf, sizeof buf);
    int status = 0;
    return sscanf(buf, "HTTP/1.1 %d", &status) == 1 ? status : 0;
}

TEST(one_address_cannot_take_every_connection)
{
    struct http_config cfg;
    http_config_defaults(&cfg);
    cfg.max_connections = 8;
    cfg.per_ip_connections = 3;
    struct router *rt;
    FILE *log;
    struct http_server *srv = start_own(&cfg, &rt, &log);
    CHECK(srv != NULL);
    if (!srv)
        return;
    unsigned port = http_server_port(srv);
    /* 127.0.0.1 holds its 3 connections, slowly sending a header line. */
    int held[3];
    for (int i = 0; i < 3; i++) {
        held[i] = raw_connect_from(port, "127.0.0.1");
        CHECK(held[i] >= 0);
        const char part[] = "GET /api/items HTTP/1.1\r\nX-Slow: 1\r\n";
        CHECK(send(held[i], part, sizeof part - 1, 0) == (ssize_t)(sizeof part - 1));
    }
    usleep(100000);
    /* A fourth from the same address is closed unanswered ... */
    int extra = raw_connect_from(port, "127.0.0.1");
    CHECK(extra >= 0);
    if (extra >= 0) {
        CHECK_EQ_INT(raw_status(extra), 0);
        close(extra);
    }
    /* ... while another address is served. */
    int other = raw_connect_from(port, "127.0.0.2");
    CHECK(other >= 0);
    if (other >= 0) {
        CHECK_EQ_INT(raw_status(other), 200);
        close(other);
    }
    /* The held ones still work once they finish their headers. */
    const char rest[] = "Host: x\r\n\r\n";
    char buf[2048];
    CHECK(send(held[0], rest, sizeof rest - 1, 0) == (ssize_t)(sizeof rest - 1));
    raw_read_response(held[0], buf, sizeof buf);
    CHECK(strncmp(buf, "HTTP/1.1 200", 12) == 0);
    for (int i = 0; i < 3; i++)
        close(held[i]);
    /* Once they are gone the address may connect again. */
    int again = -1;
    for (int i = 0; i < 100; i++) {
        again = raw_connect_from(port, "127.0.0.1");
        if (again >= 0 && raw_status(again) == 200)
            break;
        if (again >= 0)
            close(again);
        again = -1;
        usleep(20000);
    }
    CHECK(again >= 0);
    if (again >= 0)
        close(again);
    stop_own(srv, rt, log);
}

/* Slow clients from many addresses, each under the per-address cap, fill
 * the server; a newcomer is still served, because each new connection near
 * the limit closes the one that has waited longest for its headers. */
TEST(slow_clients_from_many_addresses_leave_room)
{
    struct http_config cfg;
    http_config_defaults(&cfg);
    cfg.max_connections = 16; /* 2 kept free */
    cfg.per_ip_connections = 4;
    cfg.header_timeout_s = 60; /* no deadline in this test's time */
    cfg.timeout_s = 60;
    struct router *rt;
    FILE *log;
    struct http_server *srv = start_own(&cfg, &rt, &log);
    CHECK(srv != NULL);
    if (!srv)
        return;
    unsigned port = http_server_port(srv);
    enum { SLOW = 16 };
    int slow[SLOW];
    char from[32];
    for (int i = 0; i < SLOW; i++) {
        snprintf(from, sizeof from, "127.0.0.%d", 2 + i / 4);
        slow[i] = raw_connect_from(port, from);
        CHECK(slow[i] >= 0);
        const char part[] = "GET /api/items HTTP/1.1\r\nX-Slow: 1\r\n";
        if (slow[i] >= 0)
            CHECK(send(slow[i], part, sizeof part - 1, 0) == (ssize_t)(sizeof part - 1));
        usleep(20000);
    }
    /* a newcomer is served, again and again */
    for (int k = 0; k < 5; k++) {
        snprintf(from, sizeof from, "127.0.0.%d", 20 + k);
        int fd = raw_connect_from(port, from);
        CHECK(fd >= 0);
        if (fd >= 0) {
            CHECK_EQ_INT(raw_status(fd), 200);
            close(fd);
        }
    }
    /* the oldest slow ones made the room: the first is closed, the last open */
    char b[64];
    struct pollfd p = {.fd = slow[0], .events = POLLIN};
    CHECK(poll(&p, 1, 2000) == 1 && recv(slow[0], b, sizeof b, MSG_DONTWAIT) <= 0);
    p.fd = slow[SLOW - 1];
    CHECK(poll(&p, 1, 200) == 0);
    for (int i = 0; i < SLOW; i++)
        if (slow[i] >= 0)
            close(slow[i]);
    stop_own(srv, rt, log);
}

/* Seconds until the server closes fd (a read gives 0 or an error), sending
 * one byte of `drip` every 0.2 s meanwhile (each would restart an idle
 * timeout); -1 when it is still open after `limit` seconds. */
static double seconds_until_closed(int fd, const char *drip, double limit)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t at = 0;
    while (seconds_since(&t0) < limit) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 200) > 0) {
            char b[512];
            ssize_t r = recv(fd, b, sizeof b, MSG_DONTWAIT);
            if (r <= 0 && !(r < 0 && (errno == EAGAIN || errno == EINTR)))
                return seconds_since(&t0);
        }
        if (drip && drip[at] && send(fd, drip + at, 1, MSG_NOSIGNAL) == 1)
            at++;
    }
    return -1;
}

static int start_upload(unsigned port, size_t len, size_t sent);

/* Headers trickled a byte at a time, or a body far below the minimum rate,
 * lose their connection at the deadline although every byte restarts the
 * idle timeout; a client that sends its request in time is served, also
 * from the same address meanwhile. */
TEST(slow_headers_and_bodies_meet_a_deadline)
{
    struct http_config cfg;
    http_config_defaults(&cfg);
    cfg.header_timeout_s = 1;
    cfg.body_grace_s = 1;
    cfg.min_body_rate = 1000;
    cfg.timeout_s = 30;
    struct router *rt;
    FILE *log;
    struct http_server *srv = start_own(&cfg, &rt, &log);
    CHECK(srv != NULL);
    if (!srv)
        return;
    unsigned port = http_server_port(srv);
    int slow = raw_connect_from(port, "127.0.0.1");
    CHECK(slow >= 0);
    int quick = raw_connect_from(port, "127.0.0.1");
    CHECK(quick >= 0);
    CHECK_EQ_INT(raw_status(quick), 200);
    double t = seconds_until_closed(slow, "GET /api/items HTTP/1.1\r\nHost: x\r\nX-Pad: "
                                          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                                    6);
    CHECK_MSG(t > 0.9 && t < 2.5, "headers trickled: closed after %.2f s (deadline 1 s)", t);
    /* the quick client's connection, idle since its reply, is closed at the
     * same deadline: waiting for its next request's headers */
    t = seconds_until_closed(quick, NULL, 6);
    CHECK_MSG(t > 0 && t < 2.5, "an idle keep-alive connection: closed after %.2f s", t);
    close(slow);
    close(quick);

    int up = start_upload(port, 100000, 10);
    CHECK(up >= 0);
    char drip[64];
    memset(drip, 'x', sizeof drip - 1);
    drip[sizeof drip - 1] = 0;
    t = seconds_until_closed(up, drip, 6); /* 5 bytes/s against 1000 */
    CHECK_MSG(t > 0.9 && t < 2.5, "a body at 5 bytes/s: closed after %.2f s", t);
    close(up);
    /* a fast upload of the same size is not touched */
    int fast = start_upload(port, 2000, 2000);
    CHECK(fast >= 0);
    char buf[2048];
    raw_read_response(fast, buf, sizeof buf);
    CHECK(strncmp(buf, "HTTP/1.1 ", 9) == 0);
    close(fast);
    stop_own(srv, rt, log);
}

/* Opens a POST /api/upload announcing `len` body bytes and sends `sent` of
 * them; returns the connection. */
static int start_upload_from(unsigned port, const char *src, size_t len, size_t sent)
{
    int fd = raw_connect_from(port, src);
    if (fd < 0)
        return -1;
    char head[256];
    int n = snprintf(head, sizeof head,
                     "POST /api/upload HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     len);
    send(fd, head, (size_t)n, MSG_NOSIGNAL);
    char *body = xmalloc(sent);
    memset(body, 'x', sent);
    for (size_t off = 0; off < sent;) {
        ssize_t k = send(fd, body + off, sent - off, MSG_NOSIGNAL);
        if (k <= 0)
            break;
        off += (size_t)k;
    }
    free(body);
    return fd;
}

static int start_upload(unsigned port, size_t len, size_t sent)
{
    return start_upload_from(port, "127.0.0.1", len, sent);
}

static size_t send_rest(int fd, size_t n)
{
    char *body = xmalloc(n);
    memset(body, 'x', n);
    size_t off = 0;
    while (off < n) {
        ssize_t k = send(fd, body + off, n - off, MSG_NOSIGNAL);
        if (k <= 0)
            break;
        off += (size_t)k;
    }
    free(body);
    return off;
}

/* Posts n_chunks chunks of 64 KiB as a chunked body (no Content-Length) on
 * a new connection from 127.0.0.1 and returns it, the reply still unread. */
static int post_chunked(unsigned port, int n_chunks)
{
    int fd = raw_connect_from(port, "127.0.0.1");
    const char head[] = "POST /api/upload HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n";
    send(fd, head, sizeof head - 1, MSG_NOSIGNAL);
    char chunk[64];
    for (int i = 0; i < n_chunks; i++) {
        int n = snprintf(chunk, sizeof chunk, "%x\r\n", 65536);
        send(fd, chunk, (size_t)n, MSG_NOSIGNAL);
        send_rest(fd, 65536);
        send(fd, "\r\n", 2, MSG_NOSIGNAL);
    }
    send(fd, "0\r\n\r\n", 5, MSG_NOSIGNAL);
    return fd;
}

TEST(uploads_share_a_memory_budget)
{
    struct http_config cfg;
    http_config_defaults(&cfg);
    cfg.max_body = 1u << 20;
    cfg.max_body_total = (3u << 20) / 2; /* 1.5 MiB for every body together */
    struct router *rt;
    FILE *log;
    struct http_server *srv = start_own(&cfg, &rt, &log);
    CHECK(srv != NULL);
    if (!srv)
        return;
    unsigned port = http_server_port(srv);
    char buf[4096];
    /* A holds 1 MiB of the budget: it announced it, sent half, and stalls. */
    int a = start_upload(port, 1u << 20, 1u << 19);
    CHECK(a >= 0);
    usleep(100000);
    /* B announces another 1 MiB: 503 busy with Retry-After, at once. */
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int b = start_upload(port, 1u << 20, 0);
    raw_read_response(b, buf, sizeof buf);
    CHECK_MSG(strncmp(buf, "HTTP/1.1 503", 12) == 0, "%.80s", buf);
    CHECK(strcasestr(buf, "\r\nRetry-After:") != NULL);
    CHECK(strstr(buf, "\"busy\"") != NULL);
    CHECK(seconds_since(&t0) < 2.0);
    close(b);
    /* 400 KB fit in what is left of the budget, but not in A's address's
     * share (1 MiB here, all held by A): 503 from that address ... */
    int c = start_upload(port, 400000, 0);
    raw_read_response(c, buf, sizeof buf);
    CHECK_MSG(strncmp(buf, "HTTP/1.1 503", 12) == 0, "%.80s", buf);
    close(c);
    /* ... while another address's is answered. */
    c = start_upload_from(port, "127.0.0.2", 400000, 400000);
    raw_read_response(c, buf, sizeof buf);
    CHECK_MSG(strncmp(buf, "HTTP/1.1 200", 12) == 0, "%.80s", buf);
    CHECK(strstr(buf, "\"len\":400000") != NULL);
    close(c);
    /* A body without a length that grows past what is left: 503 at its end. */
    int d = post_chunked(port, 12); /* 768 KiB */
    raw_read_response(d, buf, sizeof buf);
    CHECK_MSG(strncmp(buf, "HTTP/1.1 503", 12) == 0, "%.80s", buf);
    CHECK(strstr(buf, "uploads are in progress") != NULL);
    close(d);
    /* The same, but the body goes on past max_body (1.25 MiB): 413, since
     * a retry of it could never succeed. */
    d = post_chunked(port, 20);
    raw_read_response(d, buf, sizeof buf);
    CHECK_MSG(strncmp(buf, "HTTP/1.1 413", 12) == 0, "%.80s", buf);
    close(d);
    /* A completes; its share returns, and B's upload now goes through. */
    CHECK(send_rest(a, 1u << 19) == 1u << 19);
    raw_read_response(a, buf, sizeof buf);
    CHECK_MSG(strncmp(buf, "HTTP/1.1 200", 12) == 0, "%.80s", buf);
    close(a);
    for (int i = 0; i < 200 && http_server_in_flight(srv) > 0; i++)
        usleep(10000);
    b = start_upload(port, 1u << 20, 1u << 20);
    raw_read_response(b, buf, sizeof buf);
    CHECK_MSG(strncmp(buf, "HTTP/1.1 200", 12) == 0, "%.80s", buf);
    close(b);
    stop_own(srv, rt, log);
}

TEST(ipv6_and_thread_pool_mode)
{
    char err[STRATA_ERR_LEN];
    struct router *rt;
    CHECK(router_new(test_routes, N_TEST_ROUTES, &rt, err) == 0);
    struct http_config cfg;
    http_config_defaults(&cfg);
    cfg.router = rt;
    cfg.quiet = 1;
    cfg.threads = 2;
    cfg.host = "::1";
    struct http_server *srv;
    int rc = http_server_start(&cfg, &srv, err);
    if (rc != 0) {
        printf("# no IPv6 loopback here (%s); trying 127.0.0.1\n", err);
        cfg.host = "127.0.0.1";
        rc = http_server_start(&cfg, &srv, err);
    }
    CHECK(rc == 0);
    if (rc == 0) {
        CURL *c = curl_easy_init();
        char url[128];
        snprintf(url, sizeof url, "http://%s:%u/api/items",
                 strcmp(cfg.host, "::1") == 0 ? "[::1]" : "127.0.0.1", http_server_port(srv));
        struct reply r;
        memset(&r, 0, sizeof r);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
        CHECK(curl_easy_perform(c) == CURLE_OK);
        CHECK(body_has(&r, "\"items\":[\"alpha\",\"beta\",\"gamma\"]"));
        reply_free(&r);
        curl_easy_cleanup(c);
        http_server_stop(srv);
    }
    router_free(rt);
}

TEST(gzip_accepted_reads_accept_encoding)
{
    const char *yes[] = {"gzip", "GZIP", "deflate, gzip", "gzip;q=0.5", "br;q=1, gzip;q=0.001",
                         "x-gzip", "*", " gzip ; q=1"};
    const char *no[] = {"deflate", "gzip;q=0", "gzip; q=0.0", "gzip;q=0.000, br", "gzipx",
                        "identity", "", "br, *;q=0"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        CHECK_MSG(gzip_accepted(yes[i]), "%s", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        CHECK_MSG(!gzip_accepted(no[i]), "%s", no[i]);
    CHECK(!gzip_accepted(NULL));
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    RUN(percent_decode);
    RUN(router_rejects_bad_tables);
    RUN(router_matching);
    RUN(router_dispatch_direct);
    RUN(router_preconditions);
    RUN(json_envelope_and_helpers);
    RUN(json_body);
    RUN(multipart_parsing);
    RUN(multipart_fuzz);
    RUN(job_pool);
    RUN(job_pool_concurrent);
    RUN(etag_matching);
    RUN(job_pool_watch);

    start_server();
    RUN(get_with_params_and_query);
    RUN(head_is_get_without_body);
    RUN(errors_from_the_dispatcher);
    RUN(raw_png_upload_is_byte_exact);
    RUN(multipart_upload_is_byte_exact);
    RUN(bad_uploads);
    RUN(oversized_bodies);
    RUN(content_length_lies);
    RUN(framing_a_proxy_could_read_otherwise);
    RUN(malformed_content_length_gets_one_reply);
    RUN(static_files);
    RUN(static_refuses_escapes);
    RUN(static_units);
    RUN(concurrent_clients);
    RUN(keep_alive_survives_every_kind_of_reply);
    RUN(busy_pool_answers_503);
    RUN(request_log);
    RUN(query_values_with_nul_are_refused);
    RUN(a_client_that_leaves_cancels_its_job);
    stop_server();

    RUN(shutdown_lets_requests_finish);
    RUN(shutdown_does_not_wait_for_stalled_uploads);
    RUN(ipv6_and_thread_pool_mode);
    RUN(one_address_cannot_take_every_connection);
    RUN(slow_clients_from_many_addresses_leave_room);
    RUN(uploads_share_a_memory_budget);
    RUN(gzip_accepted_reads_accept_encoding);
    RUN(slow_headers_and_bodies_meet_a_deadline);
    curl_global_cleanup();
    return check_done();
}
