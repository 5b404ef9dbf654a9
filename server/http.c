/*
 * http.c — the libmicrohttpd adapter: turns MHD's access-handler calls into
 * one `struct request`, runs the router, turns the `struct response` into an
 * MHD response (see http.h for the request's path through it).
 *
 * MHD calls the access handler several times per request: once when the
 * headers are in (ctx is NULL), once per chunk of body (*upload_data_size >
 * 0, which we consume entirely), and a last time with no data. Everything that
 * can be decided without the body is decided on the first call, so an
 * unknown route or an oversized upload is never read (see reply_early for
 * when such a reply is sent). The per-request state
 * (struct http_ctx) lives from the first call to MHD's completion callback,
 * which frees it whatever happened (a reply, a client that vanished, a
 * timeout).
 *
 * MHD percent-decodes the URL before handing it over, which would make
 * "/a%2Fb" look like "/a/b" and cut "%00" short. The unescape callback is
 * replaced by one that leaves strings alone, so the router sees the raw
 * path and decodes each parameter itself (and can refuse '/' and NUL).
 */
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "url.h"

struct http_server {
    struct http_config cfg;
    char host[256];
    struct MHD_Daemon *daemon;
    unsigned port;
    atomic_int stopping;
    pthread_mutex_t mu; /* guards in_flight, receiving, last_body; signals idle */
    pthread_cond_t idle;
    unsigned in_flight;
    unsigned receiving; /* of those, still receiving their body */
    struct timespec last_body; /* when a body byte last arrived */
    /* The upload budget (budget_mu): bytes held by request bodies, at most
     * cfg.max_body_total, and per client address at most ip_share of it. */
    pthread_mutex_t budget_mu;
    size_t body_bytes, ip_share;
    struct addr_use *uses; /* [cfg.max_connections]: the addresses holding bytes */
    atomic_uint spooling; /* bodies being written to spool files, at most cfg.max_spooling */

    /* The deadlines (see http.h): every open connection has a watch, which
     * the watchdog thread checks four times a second. */
    pthread_mutex_t watch_mu;
    pthread_cond_t watch_wake;
    struct conn_watch *watches; /* a doubly linked list, newest first */
    unsigned n_watches;
    pthread_t watchdog;
    int watchdog_started, watchdog_stop;
};

/* The bytes one client address holds of the upload budget. */
struct addr_use {
    char addr[48]; /* "" for a free entry */
    size_t bytes;
};

/* What a connection is doing, for the deadlines. */
enum watch_phase { WATCH_HEADERS, WATCH_BODY, WATCH_BUSY };

struct conn_watch {
    struct conn_watch *prev, *next;
    int fd;
    enum watch_phase phase;
    struct timespec since;      /* of the phase */
    unsigned long long body_bytes;
    int closed_by_deadline;
    size_t cut_uri; /* the current request's URI was this long, over max_url, and its query was
                       cut before libmicrohttpd parsed it (on_request_line); 0 otherwise. Only
                       the connection's own thread touches it. */
};

/* Per-request state, from the headers to the completion callback. */
struct http_ctx {
    struct http_server *srv;
    struct MHD_Connection *conn;
    struct timespec start;
    int replied; /* a reply has been queued */
    int status; /* for the log */
    size_t bytes;
    char method[16];
    char log_path[256];

    struct request req;
    struct http_param *headers; /* one block: headers, then query, then query strings */
    struct route_match *match; /* the router's verdict, from the first call */

    unsigned char *body;
    size_t body_len, body_cap;
    size_t declared; /* Content-Length, 0 when none was given */
    size_t reserved; /* taken from the server's body_bytes for this body */
    char addr[48];   /* the client's address, for its share of the budget */
    size_t discarded; /* body bytes dropped after passing max_body or the budget */
    int over_budget; /* dropped because every upload together was over max_body_total */
    int receiving; /* counted in the server's receiving */
    int spool_fd; /* a ROUTE_SPOOL_BODY body's file, -1 otherwise */
    int spool_errno; /* a write to it failed: the rest is dropped, 507 at the end */

    struct response early; /* decided from the headers, sent on the last call */
    int has_early;
};

/* --- small helpers ------------------------------------------------------- */

static double ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

static FILE *log_file(const struct http_server *s)
{
    return s->cfg.log ? s->cfg.log : stderr;
}

/* The connection whose request this thread is reading, in
 * thread-per-connection mode (set by on_request_line); NULL in pool mode,
 * where one thread reads many connections. */
static _Thread_local struct MHD_Connection *thread_connection;
/* answer_bad_length has answered this thread's request: libmicrohttpd's
 * lines about its own reply, which no client sees, are left out of the log. */
static _Thread_local int thread_answered_length;

static void answer_bad_length(struct http_server *s, struct MHD_Connection *c, int status);

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    struct http_server *s = cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n')
        line[--n] = '\0';
    if (thread_answered_length && (!strncmp(line, "Error processing request", 24) ||
                                   !strncmp(line, "Failed to send the response headers", 35)))
        return;
    fprintf(log_file(s), "strata http: %s\n", line);
    /* libmicrohttpd logs these as it refuses a Content-Length, just before
     * it queues its own reply (see answer_bad_length). */
    if (thread_connection) {
        if (!strncmp(line, "Failed to parse `Content-Length' header.", 40))
            answer_bad_length(s, thread_connection, 400);
        else if (!strncmp(line, "Too large value of 'Content-Length' header.", 43))
            answer_bad_length(s, thread_connection, 413);
    }
}

/* The client's address as text ("127.0.0.1", "::1"), "" when unknown. */
static void client_address(struct MHD_Connection *c, char *out, size_t len)
{
    out[0] = '\0';
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)len);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)len);
}

/* --- deadlines ------------------------------------------------------------ */

static double ts_seconds(const struct timespec *t)
{
    return (double)t->tv_sec + (double)t->tv_nsec / 1e9;
}

/* Connections kept free for newcomers: when a new one makes the open
 * connections more than max_connections minus this, the slowest is closed
 * (evict_slowest). Without it, slow clients from enough addresses, each
 * under the per-address cap, hold every connection for as long as they keep
 * reconnecting: each is cut at its deadline, but another takes its place,
 * and libmicrohttpd refuses everyone else at the limit. */
static unsigned headroom(const struct http_server *s)
{
    unsigned h = s->cfg.max_connections / 8;
    return h < 2 ? 2 : h;
}

/* Under watch_mu: closes the connection that has been waiting longest for
 * its headers (a new or idle keep-alive connection, or a slow client), or,
 * when none is, the body slowest below the minimum rate; returns whether
 * there was one. Its own thread then sees it end, as for a deadline. */
static int evict_slowest(struct http_server *s, const struct conn_watch *spare)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    struct conn_watch *pick = NULL;
    double pick_score = 0;
    for (struct conn_watch *w = s->watches; w; w = w->next) {
        if (w == spare || w->closed_by_deadline)
            continue;
        const double age = ts_seconds(&now) - ts_seconds(&w->since);
        double score = -1; /* how much it deserves to go: headers first, oldest first */
        if (w->phase == WATCH_HEADERS)
            score = 1e9 + age;
        else if (w->phase == WATCH_BODY && s->cfg.min_body_rate > 0 && age > 0 &&
                 (double)w->body_bytes < s->cfg.min_body_rate * age)
            score = age;
        if (score >= 0 && (!pick || score > pick_score)) {
            pick = w;
            pick_score = score;
        }
    }
    if (!pick)
        return 0;
    pick->closed_by_deadline = 1;
    shutdown(pick->fd, SHUT_RDWR);
    fprintf(log_file(s), "strata http: connection closed: the server is nearly full and it "
                         "was the slowest to send its request\n");
    return 1;
}

/* MHD_OPTION_NOTIFY_CONNECTION: a watch per connection, from its opening to
 * its closing. libmicrohttpd calls this with "closed" before it closes the
 * socket, so a watch's fd is the connection's own while the watch is in the
 * list (the watchdog shuts it down under watch_mu). A new connection that
 * leaves fewer than headroom() free closes the slowest one. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct http_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct conn_watch *w = calloc(1, sizeof *w);
        if (!w || !ci) {
            free(w);
            return;
        }
        w->fd = ci->connect_fd;
        w->phase = WATCH_HEADERS;
        clock_gettime(CLOCK_MONOTONIC, &w->since);
        pthread_mutex_lock(&s->watch_mu);
        w->next = s->watches;
        if (s->watches)
            s->watches->prev = w;
        s->watches = w;
        s->n_watches++;
        unsigned open = s->n_watches;
        for (struct conn_watch *v = s->watches; v; v = v->next)
            open -= v->closed_by_deadline; /* closing already */
        if (open + headroom(s) > s->cfg.max_connections)
            evict_slowest(s, w);
        pthread_mutex_unlock(&s->watch_mu);
        *socket_context = w;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        struct conn_watch *w = *socket_context;
        pthread_mutex_lock(&s->watch_mu);
        if (w->prev)
            w->prev->next = w->next;
        else
            s->watches = w->next;
        if (w->next)
            w->next->prev = w->prev;
        s->n_watches--;
        pthread_mutex_unlock(&s->watch_mu);
        free(w);
        *socket_context = NULL;
    }
}

static struct conn_watch *watch_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* Moves a connection's watch to another phase. */
static void watch_phase(struct http_server *s, struct MHD_Connection *c, enum watch_phase phase)
{
    struct conn_watch *w = watch_of(c);
    if (!w)
        return;
    pthread_mutex_lock(&s->watch_mu);
    w->phase = phase;
    w->body_bytes = 0;
    clock_gettime(CLOCK_MONOTONIC, &w->since);
    pthread_mutex_unlock(&s->watch_mu);
}

static void watch_body(struct http_server *s, struct MHD_Connection *c, size_t n)
{
    struct conn_watch *w = watch_of(c);
    if (!w)
        return;
    pthread_mutex_lock(&s->watch_mu);
    w->body_bytes += n;
    pthread_mutex_unlock(&s->watch_mu);
}

/* Shuts down the connections past a deadline; their own threads then see
 * the connection end and clean up as for a client that left. */
static void *watchdog_main(void *cls)
{
    struct http_server *s = cls;
    pthread_mutex_lock(&s->watch_mu);
    while (!s->watchdog_stop) {
        struct timespec now, wake;
        clock_gettime(CLOCK_MONOTONIC, &now);
        for (struct conn_watch *w = s->watches; w; w = w->next) {
            double age = ts_seconds(&now) - ts_seconds(&w->since);
            const char *why = NULL;
            if (w->phase == WATCH_HEADERS && s->cfg.header_timeout_s > 0 &&
                age > s->cfg.header_timeout_s)
                why = "the request's headers did not arrive in time";
            else if (w->phase == WATCH_BODY && s->cfg.min_body_rate > 0 &&
                     age > s->cfg.body_grace_s &&
                     (double)w->body_bytes < s->cfg.min_body_rate * age)
                why = "the body came slower than the minimum rate";
            if (why && !w->closed_by_deadline) {
                w->closed_by_deadline = 1;
                shutdown(w->fd, SHUT_RDWR);
                fprintf(log_file(s), "strata http: connection closed: %s\n", why);
            }
        }
        wake = now;
        wake.tv_nsec += 250000000L;
        if (wake.tv_nsec >= 1000000000L) {
            wake.tv_sec++;
            wake.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->watch_wake, &s->watch_mu, &wake);
    }
    pthread_mutex_unlock(&s->watch_mu);
    return NULL;
}

/* MHD_OPTION_URI_LOG_CALLBACK: the request line is in, and libmicrohttpd
 * is about to split its query into parameters in the connection's memory
 * pool. Thousands of parameters would exhaust that pool, and libmicrohttpd
 * 0.9.75 then closes the connection without a reply. A URI over max_url is
 * refused with 414 whatever it holds, so its query is cut here, before the
 * split (the option's contract: the callback runs before the URI or its
 * arguments are modified), and build_request answers the 414 from the
 * length the watch keeps. The URI is the connection's own writable read
 * buffer, handed over as const. Without a watch nothing is cut, so that no
 * request ever runs without the query it was sent with. */
static void *on_request_line(void *cls, const char *uri, struct MHD_Connection *c)
{
    struct http_server *s = cls;
    if (s->cfg.threads == 0) {
        thread_connection = c;
        thread_answered_length = 0;
    }
    struct conn_watch *w = watch_of(c);
    if (!w)
        return NULL;
    size_t len = strlen(uri);
    w->cut_uri = 0;
    if (len > s->cfg.max_url) {
        char *query = strchr(uri, '?');
        if (query)
            query[1] = '\0';
        w->cut_uri = len;
    }
    return NULL;
}

/* Writes all of len bytes to a non-blocking socket, waiting at most a
 * second in all for room. Returns 0, or -1 when they could not all go. */
static int send_all(int fd, const char *p, size_t len)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;
        double left = 1000.0 - ms_since(&t0);
        if (left <= 0)
            return -1;
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        poll(&pfd, 1, (int)left + 1);
    }
    return 0;
}

/* A malformed Content-Length ("abc", "-1", "1e6"), or one too large for 64
 * bits, never reaches the handler: libmicrohttpd refuses it itself. But
 * 0.9.75 to 0.9.77 send that reply's status line and headers twice
 * (parse_connection_headers queues the reply and builds its header, then
 * the state machine overwrites the connection's state and builds the
 * header again; fixed in 1.0.0), which a client or a proxy reads as a
 * garbled reply. So strata answers such a request itself, from the log
 * line libmicrohttpd writes just before it queues its reply, on the
 * connection's own thread: the JSON error is written straight to the
 * socket, whose sending side is then shut, so that libmicrohttpd's reply
 * finds it closed (EPIPE) and the client gets strata's reply alone. In
 * pool mode (no thread_connection) libmicrohttpd's reply goes out as it is. */
static void answer_bad_length(struct http_server *s, struct MHD_Connection *c, int status)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci || ci->connect_fd == MHD_INVALID_SOCKET)
        return;
    const char *sent = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                   MHD_HTTP_HEADER_CONTENT_LENGTH);
    char shown[41];
    size_t n = 0;
    for (; sent && sent[n] && n < sizeof shown - 1; n++)
        shown[n] = sent[n] >= 0x20 && sent[n] < 0x7f ? sent[n] : '?';
    shown[n] = '\0';
    struct response res;
    response_init(&res);
    if (status == 413)
        response_error(&res, 413, "payload_too_large",
                       "the Content-Length \"%s\" is more bytes than any body can be; "
                       "send the body's real length",
                       shown);
    else
        response_error(&res, 400, "bad_request",
                       "the Content-Length \"%s\" is not a number of bytes; send the body's "
                       "length in decimal digits",
                       shown);
    response_serialize_json(&res);
    char head[1024], date[64];
    time_t now = time(NULL);
    struct tm tm;
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&now, &tm));
    int len = snprintf(head, sizeof head,
                       "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Length: %zu\r\n"
                       "Content-Type: %s\r\nDate: %s\r\n",
                       res.status,
                       res.status == 400   ? "Bad Request"
                       : res.status == 413 ? "Content Too Large"
                                           : "Internal Server Error", /* out of memory */
                       res.body_len, res.content_type, date);
    for (size_t i = 0; i < res.n_headers && len > 0 && (size_t)len < sizeof head; i++)
        len += snprintf(head + len, sizeof head - (size_t)len, "%s: %s\r\n",
                        res.headers[i].name, res.headers[i].value);
    if (len > 0 && (size_t)len + 2 < sizeof head) {
        memcpy(head + len, "\r\n", 3);
        if (send_all(ci->connect_fd, head, (size_t)len + 2) == 0)
            send_all(ci->connect_fd, res.body, res.body_len);
    }
    shutdown(ci->connect_fd, SHUT_WR);
    thread_answered_length = 1;
    fprintf(log_file(s), "strata http: answered %d: Content-Length \"%s\"\n", res.status, shown);
    response_deinit(&res);
}

/* Leaves the URL and query strings as sent (see the file comment). */
static size_t keep_escaped(void *cls, struct MHD_Connection *c, char *s)
{
    return strlen(s);
}

/* request.client_gone: has the peer closed the connection? It runs on the
 * connection's own thread (thread-per-connection) while MHD waits for the
 * handler, so nothing else reads the socket meanwhile. A FIN (POLLRDHUP,
 * else a 0-byte MSG_PEEK read), a reset or a hang-up means gone; bytes
 * waiting (a pipelined request) do not. */
static int client_gone(void *cls)
{
    struct http_ctx *ctx = cls;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(ctx->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci || ci->connect_fd == MHD_INVALID_SOCKET)
        return 0;
    struct pollfd pfd = {.fd = ci->connect_fd, .events = POLLIN | POLLRDHUP};
    if (poll(&pfd, 1, 0) <= 0)
        return 0;
    if (pfd.revents & (POLLHUP | POLLERR | POLLNVAL | POLLRDHUP))
        return 1;
    if (!(pfd.revents & POLLIN))
        return 0;
    char b;
    ssize_t n = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* The entry of address addr in the budget's table (made when `make`), or
 * NULL. Called with budget_mu. */
static struct addr_use *addr_use(struct http_server *s, const char *addr, int make)
{
    struct addr_use *free_entry = NULL;
    for (unsigned i = 0; i < s->cfg.max_connections; i++) {
        if (!strcmp(s->uses[i].addr, addr) && s->uses[i].addr[0])
            return &s->uses[i];
        if (!s->uses[i].addr[0] && !free_entry)
            free_entry = &s->uses[i];
    }
    if (make && free_entry) /* one entry per open connection at most: never full */
        snprintf(free_entry->addr, sizeof free_entry->addr, "%s", addr);
    return make ? free_entry : NULL;
}

/* The upload budget: takes n bytes from the server's max_body_total, and
 * from ctx's address's share of it (so that one address, stalling uploads,
 * cannot hold what every other client needs), or returns -1 (nothing
 * taken) when they do not fit. */
static int budget_take(struct http_server *s, struct http_ctx *ctx, size_t n)
{
    int rc = -1;
    pthread_mutex_lock(&s->budget_mu);
    struct addr_use *u = addr_use(s, ctx->addr, 1);
    if (u && n <= s->cfg.max_body_total - s->body_bytes && n <= s->ip_share - u->bytes) {
        s->body_bytes += n;
        u->bytes += n;
        rc = 0;
    }
    if (u && u->bytes == 0)
        u->addr[0] = '\0';
    pthread_mutex_unlock(&s->budget_mu);
    return rc;
}

/* Frees ctx's body and gives its share of the budget back. */
static void body_release(struct http_ctx *ctx)
{
    struct http_server *s = ctx->srv;
    free(ctx->body);
    ctx->body = NULL;
    ctx->body_len = ctx->body_cap = 0;
    if (ctx->reserved) {
        pthread_mutex_lock(&s->budget_mu);
        s->body_bytes -= ctx->reserved;
        struct addr_use *u = addr_use(s, ctx->addr, 0);
        if (u && (u->bytes -= ctx->reserved) == 0)
            u->addr[0] = '\0';
        pthread_mutex_unlock(&s->budget_mu);
    }
    ctx->reserved = 0;
}

/* Turns res into an MHD response and queues it. Ownership of the body
 * passes to MHD when the MHD response is created; res is released either
 * way. */
static enum MHD_Result send_reply(struct MHD_Connection *c, struct http_ctx *ctx,
                                  struct response *res, int close_after)
{
    response_serialize_json(res);
    struct MHD_Response *r;
    if (res->fd >= 0) {
        r = MHD_create_response_from_fd64(res->fd_size, res->fd);
        if (r)
            res->fd = -1;
    } else if (res->body_free) {
        r = MHD_create_response_from_buffer_with_free_callback_cls(
            res->body_len, (void *)res->body, res->body_free, res->body_free_cls);
        if (r)
            res->body_free = NULL;
    } else if (res->done) {
        /* Borrowed bytes kept alive by what `done` releases: it runs when
         * libmicrohttpd has sent them. */
        r = MHD_create_response_from_buffer_with_free_callback_cls(
            res->body_len, (void *)res->body, res->done, res->done_cls);
        if (r)
            res->done = NULL;
    } else {
        r = MHD_create_response_from_buffer(res->body_len, (void *)res->body,
                                            MHD_RESPMEM_PERSISTENT);
    }
    ctx->status = res->status;
    ctx->bytes = res->fd_size ? (size_t)res->fd_size : res->body_len;
    if (!r) {
        response_deinit(res);
        return MHD_NO; /* out of memory: drop the connection */
    }
    if (res->content_type)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, res->content_type);
    for (size_t i = 0; i < res->n_headers; i++)
        MHD_add_response_header(r, res->headers[i].name, res->headers[i].value);
    if (close_after)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)res->status, r);
    MHD_destroy_response(r);
    response_deinit(res);
    ctx->replied = ok == MHD_YES;
    return ok;
}

/* The reply to an upload refused because every upload in progress together
 * holds the whole budget: 503 busy, with a message that says so. */
static enum MHD_Result send_over_budget(struct MHD_Connection *c, struct http_ctx *ctx)
{
    struct response busy;
    response_init(&busy);
    response_error(&busy, 503, "busy",
                   "too many uploads are in progress together (from your address, or from all); "
                   "retry in 5 s");
    response_header(&busy, "Retry-After", "5");
    return send_reply(c, ctx, &busy, 1);
}

static enum MHD_Result send_error(struct MHD_Connection *c, struct http_ctx *ctx, int status,
                                  const char *code, const char *msg, int close_after)
{
    struct response res;
    response_init(&res);
    response_error(&res, status, code, "%s", msg);
    return send_reply(c, ctx, &res, close_after);
}

/* --- building the request ------------------------------------------------ */

/* build_request's answer for headers over max_header_bytes (a positive
 * value beside the negative statuses) */
#define STRATA_E_TOOBIG_HEADERS 1

struct collect {
    struct http_param *out;
    size_t n, cap;
    size_t raw_bytes; /* query only: the length the strings had on the wire */
    size_t str_bytes; /* query only: room for each key and value with its NUL */
};

static enum MHD_Result collect_value(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    struct collect *col = cls;
    /* "key=value" or "key", and the '?' or '&' before it, on the wire;
     * decoded, each string is no longer than on the wire, plus its NUL. */
    col->raw_bytes += strlen(key) + (value ? strlen(value) + 1 : 0) + 1;
    col->str_bytes += strlen(key) + (value ? strlen(value) : 0) + 2;
    if (col->out && col->n < col->cap) {
        col->out[col->n].name = key;
        col->out[col->n].value = value ? value : "";
    }
    col->n++;
    return MHD_YES;
}

/* Decodes one query key or value into out; -1 for a malformed escape or
 * one that decodes to NUL (a C string would silently end there). */
static long decode_query_string(const char *s, char *out)
{
    long n = http_percent_decode(s, strlen(s), out, 1);
    return n < 0 || memchr(out, '\0', (size_t)n) ? -1 : n;
}

/* Fills ctx->req from the connection: headers (borrowed from MHD until the
 * request completes), decoded query parameters. Returns 0, STRATA_E_NOMEM,
 * STRATA_E_TOOBIG_HEADERS (headers over max_header_bytes), STRATA_E_LIMIT
 * (URL over max_url, counted as sent) or STRATA_E_FORMAT (a key or value
 * with a malformed escape or one that decodes to NUL; *bad then points to
 * it, as sent). */
static int build_request(struct MHD_Connection *c, struct http_ctx *ctx, const char *url,
                         const char *method, const char **bad)
{
    struct http_server *s = ctx->srv;
    const struct conn_watch *w = watch_of(c);
    if (w && w->cut_uri)
        return STRATA_E_LIMIT;
    struct collect hc = {0}, qc = {0};
    MHD_get_connection_values(c, MHD_HEADER_KIND, collect_value, &hc);
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_value, &qc);
    /* "name: value\r\n" per header; collect counted name + value + 2 */
    if (hc.raw_bytes + 2 * hc.n > s->cfg.max_header_bytes)
        return STRATA_E_TOOBIG_HEADERS;
    if (strlen(url) + qc.raw_bytes > s->cfg.max_url)
        return STRATA_E_LIMIT;

    /* One block: header pairs, query pairs, decoded query strings. */
    size_t pairs = hc.n + qc.n;
    ctx->headers = malloc(pairs * sizeof(struct http_param) + qc.str_bytes + 1);
    if (!ctx->headers)
        return STRATA_E_NOMEM;
    hc.out = ctx->headers;
    hc.cap = hc.n;
    hc.n = 0;
    MHD_get_connection_values(c, MHD_HEADER_KIND, collect_value, &hc);
    struct http_param *query = ctx->headers + hc.cap;
    qc.out = query;
    qc.cap = qc.n;
    qc.n = 0;
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_value, &qc);

    char *strings = (char *)(ctx->headers + pairs);
    for (size_t i = 0; i < qc.cap; i++) {
        const char *k = query[i].name, *v = query[i].value;
        *bad = k;
        long kn = decode_query_string(k, strings);
        if (kn < 0)
            return STRATA_E_FORMAT;
        query[i].name = strings;
        strings += kn + 1;
        *bad = v;
        long vn = decode_query_string(v, strings);
        if (vn < 0)
            return STRATA_E_FORMAT;
        query[i].value = strings;
        strings += vn + 1;
    }

    struct request *req = &ctx->req;
    req->method = method;
    req->path = url;
    req->headers = ctx->headers;
    req->n_headers = hc.cap;
    req->query = query;
    req->n_query = qc.cap;
    req->content_type = request_header(req, "Content-Type");
    req->app = s->cfg.app;
    req->client_gone = client_gone;
    req->client_gone_cls = ctx;
    return 0;
}

/* --- the access handler -------------------------------------------------- */

/* Does the request announce a body? */
static int has_body(struct MHD_Connection *c)
{
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING))
        return 1;
    return cl && strtoull(cl, NULL, 10) > 0;
}

/* A reply decided from the headers alone. Queued at once, MHD would close
 * the connection after it (it cannot know no body follows), so without a
 * body it is kept for the last call and keep-alive survives; with a body it
 * goes now, with "Connection: close", and the body is never read. */
static enum MHD_Result reply_early(struct MHD_Connection *c, struct http_ctx *ctx,
                                   struct response *res)
{
    if (!has_body(c)) {
        ctx->early = *res; /* ownership moves into ctx */
        ctx->has_early = 1;
        return MHD_YES;
    }
    return send_reply(c, ctx, res, 1);
}

static enum MHD_Result error_early(struct MHD_Connection *c, struct http_ctx *ctx, int status,
                                   const char *code, const char *msg)
{
    struct response res;
    response_init(&res);
    response_error(&res, status, code, "%s", msg);
    return reply_early(c, ctx, &res);
}

struct length_headers {
    int n;
    const char *first, *other; /* the first value, and one that differs from it */
};

static enum MHD_Result collect_lengths(void *cls, enum MHD_ValueKind kind, const char *key,
                                       const char *value)
{
    struct length_headers *l = cls;
    (void)kind;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) != 0)
        return MHD_YES;
    value = value ? value : "";
    if (l->n++ == 0)
        l->first = value;
    else if (!l->other && strcmp(value, l->first) != 0)
        l->other = value;
    return MHD_YES;
}

/* Framing a proxy in front could read otherwise than libmicrohttpd does
 * (which takes the first Content-Length and reads the rest as the next
 * request: request smuggling): two Content-Length headers that disagree, or
 * a Transfer-Encoding other than chunked (which libmicrohttpd would wait on
 * for a body it cannot delimit). Answers (*result), closes and returns 1;
 * 0 when the framing is fine. */
static int refuse_framing(struct MHD_Connection *c, struct http_ctx *ctx,
                          enum MHD_Result *result)
{
    char msg[240];
    struct length_headers l = {0};
    MHD_get_connection_values(c, MHD_HEADER_KIND, collect_lengths, &l);
    if (l.other) {
        snprintf(msg, sizeof msg,
                 "the request has Content-Length headers that disagree (\"%.40s\" and "
                 "\"%.40s\"); send one",
                 l.first, l.other);
        *result = send_error(c, ctx, 400, "bad_request", msg, 1);
        return 1;
    }
    const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (te) {
        size_t len = strlen(te);
        while (len && (te[len - 1] == ' ' || te[len - 1] == '\t'))
            len--;
        while (len && (*te == ' ' || *te == '\t'))
            te++, len--;
        if (len != 7 || strncasecmp(te, "chunked", 7) != 0) {
            snprintf(msg, sizeof msg,
                     "Transfer-Encoding \"%.60s\" is not supported; send the body with "
                     "Content-Length, or as Transfer-Encoding: chunked",
                     te);
            *result = send_error(c, ctx, 501, "not_implemented", msg, 1);
            return 1;
        }
    }
    return 0;
}

/* The start of a ROUTE_SPOOL_BODY request: refuses a declared body over
 * max_spool_body (413) or one spool too many (503), else opens the
 * unlinked file the body will be written to. */
static enum MHD_Result spool_open(struct MHD_Connection *c, struct http_ctx *ctx, const char *cl)
{
    struct http_server *s = ctx->srv;
    char msg[200];
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long declared = strtoull(cl, &end, 10);
        if (errno == 0 && end != cl && declared > s->cfg.max_spool_body) {
            snprintf(msg, sizeof msg, "the body is %llu bytes; the limit is %llu (%llu MB)",
                     declared, (unsigned long long)s->cfg.max_spool_body,
                     (unsigned long long)(s->cfg.max_spool_body >> 20));
            return send_error(c, ctx, 413, "payload_too_large", msg, 1);
        }
    }
    if (!has_body(c))
        return MHD_YES; /* nothing to spool: the handler sees an empty body */
    unsigned cur = atomic_load(&s->spooling);
    do {
        if (cur >= s->cfg.max_spooling) {
            struct response busy;
            response_init(&busy);
            response_error(&busy, 503, "busy",
                           "%u uploads of this kind are already in progress; retry in 30 s",
                           cur);
            response_header(&busy, "Retry-After", "30");
            return send_reply(c, ctx, &busy, 1);
        }
    } while (!atomic_compare_exchange_weak(&s->spooling, &cur, cur + 1));
    const char *dir = s->cfg.spool_dir && s->cfg.spool_dir[0] ? s->cfg.spool_dir : P_tmpdir;
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
        /* a file system without O_TMPFILE: a named file, unlinked at once */
        char path[1100];
        snprintf(path, sizeof path, "%s/strata-body-XXXXXX", dir);
        fd = mkostemp(path, O_CLOEXEC);
        if (fd >= 0)
            unlink(path);
    }
    if (fd < 0) {
        atomic_fetch_sub(&s->spooling, 1);
        snprintf(msg, sizeof msg, "the server cannot store the upload in %.100s: %s", dir,
                 strerror(errno));
        return send_error(c, ctx, 507, "insufficient_storage", msg, 1);
    }
    ctx->spool_fd = fd;
    return MHD_YES;
}

/* A chunk of a spooled body: written out, or dropped once over the limit
 * or after a failed write (answered at the end, as on_body does). */
static enum MHD_Result spool_body(struct http_ctx *ctx, const char *data, size_t n)
{
    struct http_server *s = ctx->srv;
    if (ctx->discarded || n > s->cfg.max_spool_body - ctx->body_len) {
        ctx->discarded += n;
        return ctx->discarded <= s->cfg.max_spool_body ? MHD_YES : MHD_NO;
    }
    if (!ctx->spool_errno) {
        for (size_t off = 0; off < n;) {
            ssize_t w = pwrite(ctx->spool_fd, data + off, n - off, (off_t)(ctx->body_len + off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                ctx->spool_errno = w < 0 ? errno : EIO;
                break;
            }
            off += (size_t)w;
        }
    }
    ctx->body_len += n;
    return MHD_YES;
}

/* A page nobody has: the site's 404 page (/404.html), with status 404,
 * for a person who followed a wrong link; the API keeps its JSON. Returns 1
 * with res filled, 0 when the site has no such page. */
static int not_found_page(struct http_server *s, const struct request *req, struct response *res)
{
    struct request probe = *req;
    probe.path = "/404.html";
    probe.n_headers = 0; /* no If-None-Match: a 404 is never "not modified" */
    probe.n_query = 0;
    if (!static_serve(s->cfg.files, &probe, res))
        return 0;
    if (res->status != 200) {
        response_deinit(res);
        return 0;
    }
    res->status = 404;
    return 1;
}

/* First call: everything that can be decided from the headers. */
static enum MHD_Result on_headers(struct MHD_Connection *c, struct http_ctx *ctx,
                                  const char *url, const char *method)
{
    struct http_server *s = ctx->srv;
    char msg[200];
    if (atomic_load(&s->stopping))
        return send_error(c, ctx, 503, "shutting_down", "the server is shutting down", 1);
    enum MHD_Result refused;
    if (refuse_framing(c, ctx, &refused))
        return refused;

    const char *bad = "";
    int rc = build_request(c, ctx, url, method, &bad);
    if (rc == STRATA_E_TOOBIG_HEADERS) {
        snprintf(msg, sizeof msg, "the request's headers are over %zu bytes",
                 s->cfg.max_header_bytes);
        return error_early(c, ctx, 431, "headers_too_large", msg);
    }
    if (rc == STRATA_E_LIMIT) {
        snprintf(msg, sizeof msg, "the URL is over %zu bytes", s->cfg.max_url);
        return error_early(c, ctx, 414, "uri_too_long", msg);
    }
    if (rc == STRATA_E_FORMAT) {
        snprintf(msg, sizeof msg,
                 "the query string part \"%.60s\" is a malformed %%-escape or decodes to a NUL "
                 "byte",
                 bad);
        return error_early(c, ctx, 400, "bad_parameter", msg);
    }
    if (rc < 0)
        return send_error(c, ctx, 503, "out_of_memory", "the server is out of memory", 1);

    struct response res;
    response_init(&res);
    ctx->match = malloc(sizeof *ctx->match);
    if (!ctx->match)
        return send_error(c, ctx, 503, "out_of_memory", "the server is out of memory", 1);
    enum route_result rr = router_match(s->cfg.router, method, url, ctx->match);
    if (rr == ROUTE_NOT_FOUND && s->cfg.files &&
        (http_method_bit(method) & (HTTP_GET | HTTP_HEAD)) &&
        static_serve(s->cfg.files, &ctx->req, &res)) {
        if (res.status == 404 && strncmp(url, "/api/", 5) != 0) {
            struct response page;
            response_init(&page);
            if (not_found_page(s, &ctx->req, &page)) {
                response_deinit(&res);
                res = page;
            }
        }
        return reply_early(c, ctx, &res);
    }
    if (rr == ROUTE_NOT_FOUND && s->cfg.files && !(http_method_bit(method) & (HTTP_GET | HTTP_HEAD))) {
        /* a page or asset exists there: the method is what is wrong, as
         * for the API's routes */
        struct request probe = ctx->req;
        probe.method = "HEAD";
        struct response found;
        response_init(&found);
        int exists = static_serve(s->cfg.files, &probe, &found) &&
                     (found.status == 200 || found.status == 304);
        response_deinit(&found);
        if (exists) {
            response_error(&res, 405, "method_not_allowed", "%.200s allows GET, HEAD", url);
            response_header(&res, "Allow", "GET, HEAD");
            return reply_early(c, ctx, &res);
        }
    }
    if (rr != ROUTE_OK) {
        router_answer_miss(ctx->match, rr, url, &res);
        return reply_early(c, ctx, &res);
    }

    /* Refuse a declared oversized body before reading a byte of it. */
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (ctx->match->route->flags & ROUTE_SPOOL_BODY)
        return spool_open(c, ctx, cl);
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long declared = strtoull(cl, &end, 10);
        if (errno == 0 && end != cl && declared > s->cfg.max_body) {
            snprintf(msg, sizeof msg, "the body is %llu bytes; the limit is %zu", declared,
                     s->cfg.max_body);
            return send_error(c, ctx, 413, "payload_too_large", msg, 1);
        }
        if (errno == 0 && end != cl && declared > 0) {
            /* The whole declared body is taken from the budget now, so an
             * upload that would not fit is refused before it is read. */
            if (budget_take(s, ctx, (size_t)declared) < 0)
                return send_over_budget(c, ctx);
            ctx->declared = ctx->reserved = (size_t)declared;
        }
    }
    return MHD_YES;
}

/* Body bookkeeping for the shutdown drain (http_server_stop): which
 * requests are still receiving their body, and when a byte last came. */
static void body_arrived(struct http_ctx *ctx)
{
    struct http_server *s = ctx->srv;
    pthread_mutex_lock(&s->mu);
    if (!ctx->receiving) {
        ctx->receiving = 1;
        s->receiving++;
    }
    clock_gettime(CLOCK_MONOTONIC, &s->last_body);
    pthread_mutex_unlock(&s->mu);
}

static void body_done(struct http_ctx *ctx)
{
    if (!ctx->receiving)
        return;
    struct http_server *s = ctx->srv;
    pthread_mutex_lock(&s->mu);
    ctx->receiving = 0;
    s->receiving--;
    pthread_mutex_unlock(&s->mu);
}

/* A chunk of body: append it, or stop keeping it once over the limit. */
static enum MHD_Result on_body(struct MHD_Connection *c, struct http_ctx *ctx, const char *data,
                               size_t *size)
{
    size_t n = *size;
    *size = 0;
    body_arrived(ctx);
    if (ctx->replied || ctx->has_early)
        return MHD_YES; /* the body of a request already refused */
    if (ctx->spool_fd >= 0)
        return spool_body(ctx, data, n);
    struct http_server *s = ctx->srv;
    if (ctx->discarded || n > s->cfg.max_body - ctx->body_len) {
        /* Only a body without Content-Length gets here (a declared one was
         * refused from the headers). libmicrohttpd 0.9 cannot queue a reply
         * in the middle of a body, so the rest is read and dropped, to
         * answer 413 (or 503 over the budget) at its end — up to another
         * max_body bytes (counted from the start of the body when it was
         * dropped for the budget); a client sending more than that loses
         * the connection instead. */
        body_release(ctx);
        ctx->discarded += n;
        size_t allowance = ctx->over_budget ? 2 * s->cfg.max_body : s->cfg.max_body;
        return ctx->discarded <= allowance ? MHD_YES : MHD_NO;
    }
    if (ctx->body_len + n > ctx->body_cap || !ctx->body) {
        /* A declared body gets its length at once; an undeclared one grows
         * by doubling, each step taken from the budget. */
        size_t cap = ctx->declared ? ctx->declared : ctx->body_cap ? ctx->body_cap : 16384;
        while (cap < ctx->body_len + n)
            cap *= 2;
        if (cap > s->cfg.max_body)
            cap = s->cfg.max_body;
        if (cap > ctx->reserved) {
            if (budget_take(s, ctx, cap - ctx->reserved) < 0) {
                /* Dropped from here on; discarded counts the whole body,
                 * so that one over max_body still gets 413, not a 503
                 * whose retry could never succeed. */
                ctx->over_budget = 1;
                ctx->discarded = ctx->body_len + n;
                body_release(ctx); /* body_len + n <= max_body here */
                return MHD_YES;
            }
            ctx->reserved = cap;
        }
        unsigned char *b = realloc(ctx->body, cap);
        if (!b)
            return MHD_NO;
        ctx->body = b;
        ctx->body_cap = cap;
    }
    memcpy(ctx->body + ctx->body_len, data, n);
    ctx->body_len += n;
    return MHD_YES;
}

/* Last call: the body is complete, run the handler. */
static enum MHD_Result on_complete(struct MHD_Connection *c, struct http_ctx *ctx)
{
    char msg[200];
    if (ctx->over_budget && ctx->discarded <= ctx->srv->cfg.max_body)
        return send_over_budget(c, ctx);
    if (ctx->discarded) {
        snprintf(msg, sizeof msg, "the body is over the limit of %llu bytes",
                 (unsigned long long)(ctx->spool_fd >= 0 ? ctx->srv->cfg.max_spool_body
                                                         : ctx->srv->cfg.max_body));
        return send_error(c, ctx, 413, "payload_too_large", msg, 1);
    }
    if (ctx->spool_errno) {
        snprintf(msg, sizeof msg, "the server could not store the upload: %s",
                 strerror(ctx->spool_errno));
        return send_error(c, ctx, 507, "insufficient_storage", msg, 1);
    }
    ctx->req.body = ctx->spool_fd >= 0 ? NULL : ctx->body;
    ctx->req.body_len = ctx->body_len;
    ctx->req.body_fd = ctx->spool_fd;
    struct response res;
    response_init(&res);
    router_call(ctx->match, &ctx->req, &res);
    return send_reply(c, ctx, &res, 0);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_data_size,
                                 void **con_cls)
{
    struct http_server *s = cls;
    struct http_ctx *ctx = *con_cls;
    if (!ctx) {
        ctx = calloc(1, sizeof *ctx);
        if (!ctx)
            return MHD_NO;
        ctx->srv = s;
        ctx->conn = c;
        ctx->spool_fd = -1;
        ctx->req.body_fd = -1;
        client_address(c, ctx->addr, sizeof ctx->addr);
        response_init(&ctx->early);
        clock_gettime(CLOCK_MONOTONIC, &ctx->start);
        snprintf(ctx->method, sizeof ctx->method, "%s", method);
        snprintf(ctx->log_path, sizeof ctx->log_path, "%s", url);
        *con_cls = ctx;
        pthread_mutex_lock(&s->mu);
        s->in_flight++;
        pthread_mutex_unlock(&s->mu);
        watch_phase(s, c, has_body(c) ? WATCH_BODY : WATCH_BUSY);
        return on_headers(c, ctx, url, method);
    }
    if (*upload_data_size) {
        watch_body(s, c, *upload_data_size);
        return on_body(c, ctx, upload_data, upload_data_size);
    }
    watch_phase(s, c, WATCH_BUSY);
    body_done(ctx);
    if (ctx->replied)
        return MHD_YES;
    if (ctx->has_early) {
        ctx->has_early = 0;
        return send_reply(c, ctx, &ctx->early, 0);
    }
    return on_complete(c, ctx);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    struct http_ctx *ctx = *con_cls;
    if (!ctx)
        return;
    *con_cls = NULL;
    if (!s->cfg.quiet || toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        fprintf(log_file(s), "%s %s %d %zu %.2fms%s\n", ctx->method, ctx->log_path,
                ctx->replied ? ctx->status : 0, ctx->bytes, ms_since(&ctx->start),
                toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted");
    if (ctx->has_early)
        response_deinit(&ctx->early); /* the client left before it was sent */
    body_release(ctx);
    if (ctx->spool_fd >= 0) {
        close(ctx->spool_fd);
        atomic_fetch_sub(&s->spooling, 1);
    }
    free(ctx->headers);
    free(ctx->match);
    int receiving = ctx->receiving;
    free(ctx);
    watch_phase(s, c, WATCH_HEADERS); /* the next request on this connection */
    pthread_mutex_lock(&s->mu);
    if (receiving)
        s->receiving--;
    if (--s->in_flight == 0)
        pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->mu);
}

/* --- lifecycle ----------------------------------------------------------- */

void http_config_defaults(struct http_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->host = "127.0.0.1";
    cfg->port = 0;
    cfg->max_body = 10u << 20;
    cfg->max_url = 2048;
    cfg->max_connections = 256;
    cfg->per_ip_connections = 32;
    cfg->max_body_total = (size_t)256 << 20;
    cfg->max_header_bytes = 16u << 10;
    cfg->connection_memory = 192u << 10;
    cfg->timeout_s = 30;
    cfg->threads = 0;
    cfg->shutdown_grace_s = 30;
    cfg->max_spool_body = (uint64_t)3 << 29;
    cfg->max_spooling = 2;
    cfg->header_timeout_s = 10;
    cfg->min_body_rate = 4096;
    cfg->body_grace_s = 10;
}

int http_server_start(const struct http_config *cfg, struct http_server **out, char *err)
{
    *out = NULL;
    if (!cfg->router)
        return strata_fail(err, STRATA_E_ARG, "the HTTP server needs a route table");
    if (cfg->port > 65535 || cfg->max_body == 0 || cfg->max_url == 0 ||
        cfg->max_connections == 0 || cfg->connection_memory < 4096)
        return strata_fail(err, STRATA_E_ARG,
                           "HTTP limits out of range (port <= 65535, body, URL and connection "
                           "limits > 0, connection memory >= 4096)");
    const char *host = cfg->host && cfg->host[0] ? cfg->host : "127.0.0.1";

    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port[8];
    snprintf(port, sizeof port, "%u", cfg->port);
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0)
        return strata_fail(err, STRATA_E_ARG, "cannot resolve host \"%s\": %s", host,
                           gai_strerror(gai));

    struct http_server *s = calloc(1, sizeof *s);
    if (!s) {
        freeaddrinfo(ai);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory starting the HTTP server");
    }
    s->cfg = *cfg;
    if (s->cfg.max_body_total < s->cfg.max_body)
        s->cfg.max_body_total = s->cfg.max_body; /* one upload at the limit always fits */
    /* an address may hold half of the budget, and always one upload at the limit */
    s->ip_share = s->cfg.max_body_total / 2 > s->cfg.max_body ? s->cfg.max_body_total / 2
                                                              : s->cfg.max_body;
    if (s->cfg.ip_body_share)
        s->ip_share = s->cfg.ip_body_share;
    s->uses = calloc(s->cfg.max_connections, sizeof *s->uses);
    if (!s->uses) {
        free(s);
        freeaddrinfo(ai);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory starting the HTTP server");
    }
    pthread_mutex_init(&s->budget_mu, NULL);
    snprintf(s->host, sizeof s->host, "%s", host);
    s->cfg.host = s->host;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->idle, &ca);
    pthread_cond_init(&s->watch_wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->watch_mu, NULL);

    /* poll(), not epoll: with epoll, libmicrohttpd 0.9.75's
     * MHD_quiesce_daemon removes the listening socket from each worker's
     * epoll set while a worker at its connection limit may be removing it
     * too, and aborts the process when it loses that race ("Failed to
     * remove listen FD from epoll set"), seen when stopping right after
     * the per-address limit was reached. With poll(), quiescing only
     * signals the workers. The connection limit (a few hundred) keeps
     * poll()'s cost small. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG | MHD_USE_TURBO;
    if (cfg->threads == 0)
        flags |= MHD_USE_THREAD_PER_CONNECTION;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* Thread pool size must not appear at all in thread-per-connection mode. */
    enum MHD_OPTION pool_opt = cfg->threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END;
    errno = 0;
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)cfg->port, NULL, NULL, on_access, s,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, s,
        MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->per_ip_connections,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)cfg->connection_memory,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->timeout_s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
        MHD_OPTION_UNESCAPE_CALLBACK, keep_escaped, NULL,
        MHD_OPTION_URI_LOG_CALLBACK, on_request_line, s,
        pool_opt, (unsigned)cfg->threads,
        MHD_OPTION_END);
    int saved = errno;
    freeaddrinfo(ai);
    if (!s->daemon) {
        pthread_cond_destroy(&s->idle);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->watch_wake);
        pthread_mutex_destroy(&s->watch_mu);
        pthread_mutex_destroy(&s->budget_mu);
        free(s->uses);
        free(s);
        return strata_fail(err, STRATA_E_IO, "cannot listen on %s port %u%s%s", host,
                           cfg->port, saved ? ": " : " (see the log)",
                           saved ? strerror(saved) : "");
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : cfg->port;
    s->watchdog_started = pthread_create(&s->watchdog, NULL, watchdog_main, s) == 0;
    *out = s;
    return 0;
}

unsigned http_server_port(const struct http_server *srv)
{
    return srv->port;
}

unsigned http_server_in_flight(struct http_server *srv)
{
    pthread_mutex_lock(&srv->mu);
    unsigned n = srv->in_flight;
    pthread_mutex_unlock(&srv->mu);
    return n;
}

/* Seconds without a body byte after which the shutdown stops waiting for
 * requests that are only receiving bodies. */
#define HTTP_STALLED_BODY_S 1.0

void http_server_stop(struct http_server *s)
{
    if (!s)
        return;
    atomic_store(&s->stopping, 1);
    /* Nobody new is let in while the requests in flight finish: the listening
     * socket is closed now, so that a new connection is refused at once
     * instead of waiting in the backlog for the whole grace. */
    MHD_socket listen_fd = MHD_quiesce_daemon(s->daemon);
    if (listen_fd != MHD_INVALID_SOCKET)
        close(listen_fd);

    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    double g = s->cfg.shutdown_grace_s > 0 ? s->cfg.shutdown_grace_s : 0;
    deadline.tv_sec += (time_t)g;
    deadline.tv_nsec += (long)((g - (double)(time_t)g) * 1e9);
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    /* Requests in flight may finish within the grace; but uploads that have
     * stopped sending (every request left is still receiving its body, and
     * no byte came for HTTP_STALLED_BODY_S) hold nothing worth waiting for. */
    pthread_mutex_lock(&s->mu);
    while (s->in_flight > 0) {
        struct timespec now, slice;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (s->in_flight == s->receiving &&
            ts_seconds(&now) - ts_seconds(&s->last_body) > HTTP_STALLED_BODY_S)
            break;
        slice = now;
        slice.tv_nsec += 100000000L;
        if (slice.tv_nsec >= 1000000000L) {
            slice.tv_sec++;
            slice.tv_nsec -= 1000000000L;
        }
        if (ts_seconds(&slice) > ts_seconds(&deadline))
            slice = deadline;
        if (pthread_cond_timedwait(&s->idle, &s->mu, &slice) == ETIMEDOUT &&
            ts_seconds(&slice) >= ts_seconds(&deadline))
            break;
    }
    pthread_mutex_unlock(&s->mu);

    if (s->watchdog_started) {
        pthread_mutex_lock(&s->watch_mu);
        s->watchdog_stop = 1;
        pthread_cond_signal(&s->watch_wake);
        pthread_mutex_unlock(&s->watch_mu);
        pthread_join(s->watchdog, NULL);
    }
    MHD_stop_daemon(s->daemon);
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->watch_wake);
    pthread_mutex_destroy(&s->watch_mu);
    pthread_mutex_destroy(&s->budget_mu);
    free(s->uses);
    free(s);
}
