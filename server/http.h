/*
 * http.h — strata's HTTP server: libmicrohttpd set up with explicit limits,
 * bodies read and size-capped before any handler runs, one log line per
 * request, graceful shutdown.
 *
 *     struct http_config cfg;
 *     http_config_defaults(&cfg);
 *     cfg.router = router;   // router.h
 *     cfg.files = files;     // static.h, optional
 *     cfg.app = app;         // handed to every handler as req->app
 *     struct http_server *srv;
 *     if (http_server_start(&cfg, &srv, err) < 0) ...
 *     printf("listening on port %u\n", http_server_port(srv));
 *     ...
 *     http_server_stop(srv);
 *
 * Deadlines, beside the flow below: a request's headers must arrive whole
 * within header_timeout_s of the connection opening (or of the previous
 * reply on a kept-alive connection), and a body at min_body_rate after its
 * first body_grace_s; a watchdog thread shuts down the connections that
 * miss them (one log line each), as libmicrohttpd's idle timeout cannot:
 * every byte restarts it.
 *
 * What a request goes through, in order (all replies but the handler's are
 * the JSON error envelope of request.h):
 *   1. server stopping                 -> 503 shutting_down, Connection: close
 *   2. two Content-Length headers that disagree -> 400, a Transfer-Encoding
 *      other than chunked -> 501, both with Connection: close
 *      request headers over max_header_bytes -> 431
 *      path + query over max_url bytes (as sent) -> 414
 *   3. router: no pattern              -> GET/HEAD: static files, else 404
 *              wrong method            -> 405 with Allow (also on a static
 *                                         file: GET, HEAD); bad parameter -> 400
 *   4. declared Content-Length over max_body -> 413 at once, before the body
 *      is read (curl and browsers that sent "Expect: 100-continue" never send
 *      it); a chunked body growing past max_body is dropped as it arrives
 *      and answered 413 at its end — or, past 2 x max_body, the connection
 *      is closed (libmicrohttpd 0.9 cannot reply in the middle of a body)
 *      A body that does not fit in what is left of max_body_total (every
 *      body being received or handled counts, a declared one for its whole
 *      Content-Length from the headers on) -> 503 busy with Retry-After and
 *      Connection: close, at once for a declared length, at the end of the
 *      (dropped) body otherwise
 *   5. the whole body is buffered (or, on a ROUTE_SPOOL_BODY route, written
 *      to an unlinked file: see spool_dir), then the handler runs on this
 *      thread
 *   6. its reply is sent; HEAD gets the headers of the GET reply, no body
 *
 * Threading: by default one thread per connection (threads = 0), so a
 * handler may block — on jobs_run (jobs.h) waiting for a worker — without
 * holding up other connections; max_connections bounds the threads, and
 * per_ip_connections keeps one address from taking them all (a slow client
 * trickling header lines resets the idle timeout with every byte). Slow
 * clients from many addresses cannot take them all either: a new connection
 * that leaves fewer than max_connections/8 free (at least 2) closes the one
 * that has waited longest for its headers (an idle keep-alive connection is
 * one too), or else the slowest body below min_body_rate. While a
 * handler waits, request_client_gone (request.h) tells it whether the client
 * has closed the connection. Set
 * threads = N for N event-loop threads instead, only when no handler blocks
 * (a malformed Content-Length then gets libmicrohttpd 0.9.75's own 400, whose
 * header it sends twice; see answer_bad_length in http.c).
 * Handlers run concurrently: app state they share must be thread-safe.
 *
 * Request log line (to cfg.log, default stderr), written when the reply has
 * been sent:  GET /api/models 200 1234 0.42ms
 * (method, path without query, status, body bytes, milliseconds from the
 * request's headers to the end of the reply; "aborted" is appended when the
 * connection failed before the reply was complete).
 */
#ifndef STRATA_HTTP_H
#define STRATA_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "router.h"
#include "static.h"

struct http_config {
    const char *host; /* address to bind, default "127.0.0.1" ("::1", "0.0.0.0" ...) */
    unsigned port; /* default 0: any free port (see http_server_port) */
    const struct router *router; /* borrowed, required */
    const struct static_files *files; /* borrowed, may be NULL */
    void *app; /* req->app for handlers */
    size_t max_body; /* request body limit, default 10 MiB */
    size_t max_url; /* path + query string limit, default 2048 bytes */
    unsigned max_connections; /* default 256; near it the slowest connection makes room */
    unsigned per_ip_connections; /* connections one client address may hold, default 32;
                                    0: no limit. Over it, a new connection is closed at once */
    size_t max_body_total; /* request bodies held at once, all connections together,
                              default 256 MiB (raised to max_body if below it) */
    size_t ip_body_share; /* of max_body_total, what one client address may hold (0, the
                             default: half of it, at least max_body); more: 503 busy */
    size_t max_header_bytes; /* request header lines together, default 16 KiB */
    size_t connection_memory; /* per-connection buffer (headers, query parameters, reads),
                                 default 192 KiB: room for the parameters a URL of max_url
                                 bytes can hold, each an entry in libmicrohttpd's pool */
    /* Bodies of ROUTE_SPOOL_BODY routes (model imports) go to an unlinked
     * file in spool_dir (NULL: the system's temporary folder), up to
     * max_spool_body bytes each (default 1.5 GiB; a declared larger one is
     * answered 413 from its headers), at most max_spooling at once (default
     * 2; more: 503 busy). They do not count in max_body_total: they hold
     * disk, not memory. A disk that fills up: 507. */
    const char *spool_dir;
    uint64_t max_spool_body;
    unsigned max_spooling;
    unsigned timeout_s; /* idle connection timeout, default 30 */
    /* A request's headers must arrive whole within header_timeout_s of the
     * connection opening or of the previous reply (default 10; 0: no
     * deadline), and a body at min_body_rate bytes/s at least, measured
     * from body_grace_s after it starts (defaults 4096 and 10; 0: no
     * minimum): a client trickling bytes (every byte resets the idle
     * timeout) loses its connection then, so that slow clients cannot hold
     * the connections and upload budget others need. */
    double header_timeout_s;
    double min_body_rate;
    double body_grace_s;
    unsigned threads; /* 0 (default): a thread per connection; N: N polling threads */
    double shutdown_grace_s; /* http_server_stop waits this long for requests, default 30 */
    FILE *log; /* request log and libmicrohttpd errors, NULL means stderr;
                  not flushed per line: make a file line-buffered to follow it */
    int quiet; /* non-zero: no per-request lines (errors are still logged) */
};

/* Fills cfg with the defaults above (router NULL). Can't fail. */
void http_config_defaults(struct http_config *cfg);

struct http_server;

/* Binds and starts serving. The config is copied (the router, static files,
 * app and log it points to must outlive the server). Returns 0 and *out, or
 * STRATA_E_ARG (no router, bad limits, host that does not resolve) or
 * STRATA_E_IO (the address is in use, no permission) with err. */
int http_server_start(const struct http_config *cfg, struct http_server **out, char *err);

/* The port the server listens on (the chosen one when cfg.port was 0). */
unsigned http_server_port(const struct http_server *srv);

/* Number of requests received and not yet completed. Can't fail. */
unsigned http_server_in_flight(struct http_server *srv);

/* Stops accepting connections (the listening socket closes: a new
 * connection is refused at once), answers new requests on open keep-alive
 * connections with 503, waits up to shutdown_grace_s for the requests in
 * flight to complete — but not for uploads that stopped sending (when every
 * request left is still receiving its body and no byte came for a second) —
 * then closes every connection and frees the server.
 * NULL is allowed. Stop the server before freeing what handlers use (the
 * worker pool, the app state): requests in flight still run handlers. */
void http_server_stop(struct http_server *srv);

#endif
