/*
 * cmd_serve.c — `strata serve`: the web server with the JSON API (app.h,
 * api_*.c) and the pages (web/, static/, Plotly from node_modules).
 *
 * Start-up order: models are loaded (fast), the server starts listening,
 * and only then do the analyses start in the background, so /api/health
 * answers at once and pages show "analysing" rather than a refused
 * connection. SIGINT and SIGTERM are taken by sigwait in the main thread
 * (blocked everywhere else, threads inherit the mask): the server stops
 * accepting, lets requests in flight finish, then everything is freed and
 * the process exits 0.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "cli.h"
#include "dataset.h"
#include "http.h"
#include "resource.h"
#include "static.h"

/* Literal suffixes before the catch-all {class}/{file}: an index route
 * "…/images/17/thumb" has as many segments as an id route
 * "…/images/jaguar/0003.jpg", and dataset files always have an image
 * extension, so "thumb" and "explanation" never name a file. */
const struct route app_routes[] = {
    {"GET", "/api/health", handle_health, 0},
    {"GET", "/api/openapi.json", handle_openapi, 0},
    {"GET", "/api/models", handle_models, 0},
    {"POST", "/api/models", handle_import, ROUTE_SPOOL_BODY},
    {"GET", "/api/datasets", handle_datasets, 0},
    {"GET", "/api/models/{id}", handle_model, APP_NEEDS_MODEL},
    {"DELETE", "/api/models/{id}", handle_delete_model, 0},
    {"GET", "/api/models/{id}/graph", handle_graph, APP_NEEDS_MODEL},
    {"PUT", "/api/models/{id}/layers", handle_set_layers, APP_NEEDS_MODEL},
    {"GET", "/api/models/{id}/layers/{layer}/scatter", handle_scatter, APP_NEEDS_ANALYSIS},
    {"GET", "/api/models/{id}/layers/{layer}/elbow", handle_elbow, APP_NEEDS_ANALYSIS},
    {"GET", "/api/models/{id}/paths", handle_paths, APP_NEEDS_ANALYSIS},
    {"GET", "/api/models/{id}/misclassified", handle_misclassified, APP_NEEDS_ANALYSIS},
    {"GET", "/api/models/{id}/doubt", handle_doubt, APP_NEEDS_MODEL},
    {"GET", "/api/models/{id}/images/{image}", handle_image, APP_NEEDS_ANALYSIS},
    {"GET", "/api/models/{id}/images/{image}/thumb", handle_thumb, APP_NEEDS_ANALYSIS},
    {"GET", "/api/models/{id}/images/{image}/explanation", handle_image_explanation, APP_NEEDS_ANALYSIS},
    {"GET", "/api/models/{id}/images/{class}/{file}", handle_image, APP_NEEDS_ANALYSIS},
    {"GET", "/api/models/{id}/images/{class}/{file}/thumb", handle_thumb, APP_NEEDS_ANALYSIS},
    {"GET", "/api/models/{id}/images/{class}/{file}/explanation", handle_image_explanation, APP_NEEDS_ANALYSIS},
    {"POST", "/api/models/{id}/predict", handle_predict, APP_NEEDS_ANALYSIS},
    {"POST", "/api/models/{id}/explain", handle_explain, APP_NEEDS_ANALYSIS},
    {"POST", "/api/models/{id}/features", handle_features, APP_NEEDS_ANALYSIS},
    {"GET", "/api/explanations/{eid}", handle_explanation, 0},
    {"GET", "/api/explanations/{eid}/overlay.png", handle_explanation_overlay, 0},
    {"GET", "/api/explanations/{eid}/heatmap.png", handle_explanation_heatmap, 0},
};
const size_t app_n_routes = sizeof app_routes / sizeof app_routes[0];

static const struct static_mount mounts[] = {
    {"/", "web", NULL},
    {"/static/", "static", "public, max-age=3600"},
    {"/vendor/plotly.min.js", "node_modules/plotly.js-dist-min/plotly.min.js",
     "public, max-age=86400"},
};

static const char *const serve_help =
    "Usage: strata serve [options]\n\n"
    "Runs the web server: the JSON API under /api (see docs/api.md or\n"
    "/api/openapi.json) and the pages from web/ and static/. Every model under the\n"
    "models folder is loaded at start; their analyses are loaded from the cache or\n"
    "computed in the background, one after another, while the server answers.\n"
    "One log line per request: method, path, status, bytes, milliseconds.\n"
    "Ctrl-C (SIGINT) or SIGTERM: stop listening (new connections are refused), finish\n"
    "the requests in flight (up to 30 s; an upload that has stopped sending is not\n"
    "waited for), then exit.\n\n"
    "  --host ADDR         address to listen on (default 127.0.0.1; 0.0.0.0 for all)\n"
    "  --port N            port (default 8080; 0 picks a free one, printed on stdout)\n"
    "  --models DIR        folder holding the models (default $STRATA_MODELS or ./models)\n"
    "  --data DIR          datasets folder (default $STRATA_DATA or " DATASET_DEFAULT_ROOT ")\n"
    "  --cache DIR         analysis cache (default $STRATA_CACHE or " ANALYSIS_DEFAULT_CACHE ")\n"
    "  --no-cache          neither read nor write the analysis cache\n"
    "  --workspace DIR     where models imported from the browser (POST /api/models) and\n"
    "                      their uploaded images are kept: DIR/models, DIR/data (default\n"
    "                      $STRATA_WORKSPACE or ./workspace)\n"
    "  --max-model-mb N    largest .onnx file an import accepts (default 300)\n"
    "  --max-archive-mb N  largest images archive an import accepts, compressed (default 1024)\n"
    "  --max-archive-entries N  entries an archive may hold (default 100000)\n"
    "  --max-archive-gb N  bytes an archive may unpack to, in GiB (default 4)\n"
    "  --threads N         worker threads for predict, LIME, re-clustering (default: CPUs)\n"
    "  --queue N           requests waiting for a worker before 503 busy (default 32)\n"
    "  --max-upload-mb N   request body limit in MB (default 10)\n"
    "  --explanations N    LIME results of uploads kept in memory, oldest evicted (default 64)\n"
    "  --image-explanations N  LIME results of dataset images kept (default 256)\n"
    "  --timeout S         idle connection timeout in seconds (default 30)\n"
    "  --header-timeout S  a request's headers must arrive within S seconds of the\n"
    "                      connection or the previous reply (default 10; 0: no limit)\n"
    "  --min-body-rate B   a body must come at B bytes/s at least, after its first 10 s\n"
    "                      (default 4096; 0: no minimum)\n"
    "  --per-ip N          connections one client address may hold (default 32; 0: no limit)\n"
    "  --root DIR          folder holding web/, static/ and node_modules/ (default .)\n"
    "  --quiet             no per-request log lines\n";

int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {{"host", required_argument, 0, 'H'},
                                         {"port", required_argument, 0, 'p'},
                                         {"models", required_argument, 0, 'm'},
                                         {"data", required_argument, 0, 'd'},
                                         {"cache", required_argument, 0, 'c'},
                                         {"no-cache", no_argument, 0, 'n'},
                                         {"threads", required_argument, 0, 'T'},
                                         {"queue", required_argument, 0, 'Q'},
                                         {"max-upload-mb", required_argument, 0, 'u'},
                                         {"explanations", required_argument, 0, 'e'},
                                         {"image-explanations", required_argument, 0, 'E'},
                                         {"timeout", required_argument, 0, 't'},
                                         {"header-timeout", required_argument, 0, 'D'},
                                         {"min-body-rate", required_argument, 0, 'B'},
                                         {"per-ip", required_argument, 0, 'P'},
                                         {"root", required_argument, 0, 'r'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"workspace", required_argument, 0, 'w'},
                                         {"max-model-mb", required_argument, 0, 'M'},
                                         {"max-archive-mb", required_argument, 0, 'A'},
                                         {"max-archive-entries", required_argument, 0, 'N'},
                                         {"max-archive-gb", required_argument, 0, 'G'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    struct app_config ac;
    app_config_defaults(&ac);
    struct http_config hc;
    http_config_defaults(&hc);
    hc.port = 8080;
    const char *models = NULL, *data = NULL, *cache = NULL, *root = ".", *workspace = NULL;
    int no_cache = 0, v, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'H': hc.host = optarg; break;
        case 'p':
            if (cli_parse_int(optarg, 0, 65535, &v))
                return cli_usage_error("serve", "--port expects 0 to 65535, got '%s'", optarg);
            hc.port = (unsigned)v;
            break;
        case 'm': models = optarg; break;
        case 'd': data = optarg; break;
        case 'c': cache = optarg; break;
        case 'n': no_cache = 1; break;
        case 'T':
            if (cli_parse_int(optarg, 1, 256, &ac.workers))
                return cli_usage_error("serve", "--threads expects 1 to 256, got '%s'", optarg);
            break;
        case 'Q':
            if (cli_parse_int(optarg, 0, 100000, &ac.max_queue))
                return cli_usage_error("serve", "--queue expects 0 to 100000, got '%s'", optarg);
            break;
        case 'u':
            if (cli_parse_int(optarg, 1, 4096, &v))
                return cli_usage_error("serve", "--max-upload-mb expects 1 to 4096, got '%s'",
                                       optarg);
            hc.max_body = (size_t)v << 20;
            break;
        case 'e':
            if (cli_parse_int(optarg, 1, 100000, &ac.max_explanations))
                return cli_usage_error("serve", "--explanations expects 1 to 100000, got '%s'",
                                       optarg);
            break;
        case 'E':
            if (cli_parse_int(optarg, 1, 100000, &ac.max_image_explanations))
                return cli_usage_error("serve",
                                       "--image-explanations expects 1 to 100000, got '%s'",
                                       optarg);
            break;
        case 't':
            if (cli_parse_int(optarg, 1, 86400, &v))
                return cli_usage_error("serve", "--timeout expects 1 to 86400 seconds, got '%s'",
                                       optarg);
            hc.timeout_s = (unsigned)v;
            break;
        case 'D':
            if (cli_parse_int(optarg, 0, 3600, &v))
                return cli_usage_error("serve", "--header-timeout expects 0 to 3600 seconds, got '%s'",
                                       optarg);
            hc.header_timeout_s = v;
            break;
        case 'B':
            if (cli_parse_int(optarg, 0, 1 << 30, &v))
                return cli_usage_error("serve", "--min-body-rate expects 0 to 1073741824 bytes/s, got '%s'",
                                       optarg);
            hc.min_body_rate = v;
            break;
        case 'P':
            if (cli_parse_int(optarg, 0, 100000, &v))
                return cli_usage_error("serve", "--per-ip expects 0 to 100000, got '%s'", optarg);
            hc.per_ip_connections = (unsigned)v;
            break;
        case 'r': root = optarg; break;
        case 'w': workspace = optarg; break;
        case 'M':
            if (cli_parse_int(optarg, 1, 4096, &v))
                return cli_usage_error("serve", "--max-model-mb expects 1 to 4096, got '%s'",
                                       optarg);
            ac.max_model_bytes = (uint64_t)v << 20;
            break;
        case 'A':
            if (cli_parse_int(optarg, 1, 65536, &v))
                return cli_usage_error("serve", "--max-archive-mb expects 1 to 65536, got '%s'",
                                       optarg);
            ac.max_archive_bytes = (uint64_t)v << 20;
            break;
        case 'N':
            if (cli_parse_int(optarg, 1, 10000000, &v))
                return cli_usage_error("serve",
                                       "--max-archive-entries expects 1 to 10000000, got '%s'",
                                       optarg);
            ac.max_archive_entries = (uint64_t)v;
            break;
        case 'G':
            if (cli_parse_int(optarg, 1, 1024, &v))
                return cli_usage_error("serve", "--max-archive-gb expects 1 to 1024, got '%s'",
                                       optarg);
            ac.max_archive_unpacked = (uint64_t)v << 30;
            break;
        case 'q': hc.quiet = 1; break;
        case 'h': fputs(serve_help, stdout); return EXIT_OK;
        case ':': return cli_usage_error("serve", "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("serve", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc)
        return cli_usage_error("serve", "unexpected argument '%s'", argv[optind]);
    ac.max_upload_bytes = hc.max_body;
    ac.models_root = cli_models_root(models);
    ac.data_root = dataset_root(data);
    ac.cache_dir = no_cache ? NULL : analysis_cache_dir(cache);
    if (!workspace)
        workspace = getenv("STRATA_WORKSPACE") && getenv("STRATA_WORKSPACE")[0]
                        ? getenv("STRATA_WORKSPACE")
                        : "workspace";
    ac.workspace = workspace;
    char spool[1100];
    snprintf(spool, sizeof spool, "%s/.incoming", workspace);
    hc.spool_dir = spool;
    /* the model, the archive, and room for the metadata and the form's framing */
    hc.max_spool_body = ac.max_model_bytes + ac.max_archive_bytes + (1u << 20);

    /* Every thread started from here on inherits this mask, so the
     * signals reach only sigwait below. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* Parallelism comes from the workers; BLAS threads inside each of them
     * would only fight over the same cores. */
    cli_set_threads(1);

    char err[STRATA_ERR_LEN];
    struct app *app = NULL;
    struct router *router = NULL;
    struct static_files *files = NULL;
    struct http_server *srv = NULL;
    int rc = EXIT_FAIL;
    if (app_workspace_prepare(workspace, err) < 0 || app_new(&ac, &app, err) < 0 || router_new_guarded(app_routes, app_n_routes, app_route_guard, &router, err) < 0 ||
        static_new(root, mounts, sizeof mounts / sizeof mounts[0], &files, err) < 0) {
        cli_fail("serve", "%s", err);
        goto done;
    }
    hc.router = router;
    hc.files = files;
    hc.app = app;
    if (http_server_start(&hc, &srv, err) < 0) {
        cli_fail("serve", "%s", err);
        goto done;
    }
    const char *host = hc.host && hc.host[0] ? hc.host : "127.0.0.1";
    int v6 = strchr(host, ':') != NULL;
    printf("strata serve: listening on http://%s%s%s:%u/ (%d models)\n", v6 ? "[" : "", host,
           v6 ? "]" : "", http_server_port(srv), app->n_models);
    fflush(stdout);
    if (app_start_analyses(app, err) < 0) {
        cli_fail("serve", "%s", err);
        goto done;
    }

    int sig = 0;
    sigwait(&stop_signals, &sig);
    fprintf(stderr, "strata serve: %s received, finishing %u request(s) in flight\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM", http_server_in_flight(srv));
    rc = EXIT_OK;
done:
    http_server_stop(srv);
    app_free(app);
    static_free(files);
    router_free(router);
    if (rc == EXIT_OK)
        fprintf(stderr, "strata serve: stopped\n");
    return rc;
}
