/*
 * static.c — files from their mount points (see static.h for the rules).
 *
 * The checks are layered on purpose: the textual checks on the decoded
 * segments refuse every traversal spelling before the file system is
 * touched, and the realpath containment check catches what text cannot see
 * (symlinks). Either one alone would be one bug away from serving
 * /etc/passwd.
 */
#include "static.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gzip_cache.h"
#include "url.h"

struct mount {
    char *url;
    size_t url_len;
    int is_dir; /* url ends in '/' */
    char *path; /* as configured, joined with the root */
    char *cache_control;
};

struct static_files {
    size_t n;
    struct mount *mounts;
    struct gzip_cache *gz; /* compressed copies of the text files */
};

/* Text worth compressing: pages, scripts, styles, JSON, SVG, over a few
 * hundred bytes (below that gzip's own header and trailer eat the gain). */
static int compressible(const char *mime, off_t size)
{
    return size >= 1024 && (!strncmp(mime, "text/", 5) || !strcmp(mime, "application/json") ||
                            !strcmp(mime, "image/svg+xml"));
}

static const struct {
    const char *ext;
    const char *type;
} mime_table[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"svg", "image/svg+xml"},
    {"ico", "image/x-icon"},
    {"woff2", "font/woff2"},
    {"txt", "text/plain; charset=utf-8"},
};

const char *static_mime_type(const char *name)
{
    const char *slash = strrchr(name, '/');
    const char *base = slash ? slash + 1 : name;
    const char *dot = strrchr(base, '.');
    if (dot && dot[1])
        for (size_t i = 0; i < sizeof mime_table / sizeof mime_table[0]; i++)
            if (strcasecmp(dot + 1, mime_table[i].ext) == 0)
                return mime_table[i].type;
    return "application/octet-stream";
}

void static_free(struct static_files *sf)
{
    if (!sf)
        return;
    for (size_t i = 0; i < sf->n; i++) {
        free(sf->mounts[i].url);
        free(sf->mounts[i].path);
        free(sf->mounts[i].cache_control);
    }
    free(sf->mounts);
    gzip_cache_free(sf->gz);
    free(sf);
}

int static_new(const char *root, const struct static_mount *mounts, size_t n,
               struct static_files **out, char *err)
{
    *out = NULL;
    struct static_files *sf = calloc(1, sizeof *sf);
    if (!sf || !(sf->mounts = calloc(n ? n : 1, sizeof *sf->mounts)) ||
        !(sf->gz = gzip_cache_new(64))) {
        if (sf)
            free(sf->mounts);
        free(sf);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory creating the static mounts");
    }
    for (size_t i = 0; i < n; i++) {
        const struct static_mount *in = &mounts[i];
        if (!in->url || in->url[0] != '/' || !in->path || !in->path[0]) {
            static_free(sf);
            return strata_fail(err, STRATA_E_ARG,
                               "static mount %zu: the url starts with '/' and the path is set",
                               i);
        }
        struct mount *m = &sf->mounts[sf->n++];
        m->url = strdup(in->url);
        m->url_len = strlen(in->url);
        m->is_dir = in->url[m->url_len - 1] == '/';
        if (in->path[0] == '/' || !root || !root[0]) {
            m->path = strdup(in->path);
        } else {
            size_t len = strlen(root) + strlen(in->path) + 2;
            m->path = malloc(len);
            if (m->path)
                snprintf(m->path, len, "%s/%s", root, in->path);
        }
        m->cache_control = strdup(in->cache_control ? in->cache_control : "no-cache");
        if (!m->url || !m->path || !m->cache_control) {
            static_free(sf);
            return strata_fail(err, STRATA_E_NOMEM, "out of memory creating the static mounts");
        }
    }
    *out = sf;
    return 0;
}

/* The mount with the longest url covering path, or NULL. */
static const struct mount *find_mount(const struct static_files *sf, const char *path)
{
    const struct mount *best = NULL;
    for (size_t i = 0; i < sf->n; i++) {
        const struct mount *m = &sf->mounts[i];
        int covers = m->is_dir ? strncmp(path, m->url, m->url_len) == 0 : strcmp(path, m->url) == 0;
        if (covers && (!best || m->url_len > best->url_len))
            best = m;
    }
    return best;
}

enum { REL_OK = 0, REL_BAD = -1, REL_HIDDEN = -2 };

/* Decodes the raw relative path segment by segment into out (cap bytes),
 * refusing traversal and odd bytes (see static.h). A trailing '/' (or an
 * empty rel) becomes "index.html". Sets *no_ext when the last segment has no
 * '.', so the caller may try "<name>.html". */
static int decode_rel(const char *rel, char *out, size_t cap, int *no_ext)
{
    size_t o = 0, len = strlen(rel);
    *no_ext = 0;
    size_t i = 0;
    int hidden = 0;
    while (i < len) {
        const char *slash = memchr(rel + i, '/', len - i);
        size_t end = slash ? (size_t)(slash - rel) : len;
        size_t seg_len = end - i;
        if (seg_len == 0)
            return REL_BAD; /* "//": an absolute path smuggled in, or sloppiness */
        if (o + seg_len + 2 > cap)
            return REL_BAD;
        long n = http_percent_decode(rel + i, seg_len, out + o, 0);
        if (n <= 0)
            return REL_BAD;
        const char *seg = out + o;
        if (memchr(seg, '/', (size_t)n) || memchr(seg, '\\', (size_t)n) ||
            memchr(seg, '\0', (size_t)n))
            return REL_BAD;
        if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return REL_BAD;
        if (seg[0] == '.')
            hidden = 1;
        *no_ext = memchr(seg, '.', (size_t)n) == NULL;
        o += (size_t)n;
        if (slash) {
            out[o++] = '/';
            i = end + 1;
        } else {
            i = end;
        }
    }
    if (o == 0 || out[o - 1] == '/') {
        static const char index[] = "index.html";
        if (o + sizeof index > cap)
            return REL_BAD;
        memcpy(out + o, index, sizeof index);
        o += sizeof index - 1;
        *no_ext = 0;
    }
    out[o] = '\0';
    return hidden ? REL_HIDDEN : REL_OK;
}

/* Is resolved equal to base or inside it? Both are realpath results. */
static int inside(const char *resolved, const char *base)
{
    size_t n = strlen(base);
    if (strncmp(resolved, base, n) != 0)
        return 0;
    return resolved[n] == '\0' || resolved[n] == '/' || (n == 1 && base[0] == '/');
}

static int not_found(struct response *res, const char *path)
{
    response_error(res, 404, "not_found", "no file at %.300s", path);
    return 1;
}

/* Opens the regular file at resolved and replies with it (or 304): its
 * gzip copy to a client that accepts it (the copy has its own ETag), with
 * "Vary: Accept-Encoding" on every reply of a compressible file. */
static int send_file(const struct static_files *sf, const struct mount *m,
                     const struct request *req, const char *resolved, struct response *res)
{
    int fd = open(resolved, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return not_found(res, req->path);
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return not_found(res, req->path);
    }
    char etag[96];
    const char *mime = static_mime_type(resolved);
    const char *inm = request_header(req, "If-None-Match");
    if (compressible(mime, st.st_size))
        response_header(res, "Vary", "Accept-Encoding");
    int gz = compressible(mime, st.st_size) &&
             gzip_accepted(request_header(req, "Accept-Encoding"));
    for (;;) {
        snprintf(etag, sizeof etag, "\"%llx-%llx-%llx.%lx%s\"", (unsigned long long)st.st_ino,
                 (unsigned long long)st.st_size, (unsigned long long)st.st_mtim.tv_sec,
                 (long)st.st_mtim.tv_nsec, gz ? "-gz" : "");
        if (http_etag_match(inm, etag)) {
            close(fd);
            response_empty(res, 304);
            break;
        }
        char err[STRATA_ERR_LEN];
        const struct gzip_copy *copy = gz ? gzip_cache_get(sf->gz, fd, &st, err) : NULL;
        if (gz && !copy) {
            gz = 0; /* no copy (out of memory): the file as it is, with its own tag */
            continue;
        }
        if (copy) {
            close(fd);
            response_bytes(res, 200, mime, copy->data, copy->len, gzip_copy_unref, (void *)copy);
            response_header(res, "Content-Encoding", "gzip");
        } else {
            response_file(res, 200, mime, fd, (uint64_t)st.st_size);
        }
        response_header(res, "X-Content-Type-Options", "nosniff");
        break;
    }
    response_header(res, "ETag", "%s", etag);
    response_header(res, "Cache-Control", "%s", m->cache_control);
    return 1;
}

int static_serve(const struct static_files *sf, const struct request *req, struct response *res)
{
    const struct mount *m = find_mount(sf, req->path);
    if (!m)
        return 0;

    char base[PATH_MAX];
    if (!realpath(m->path, base))
        return not_found(res, req->path); /* target missing (yet) */
    if (!m->is_dir)
        return send_file(sf, m, req, base, res);

    char rel[PATH_MAX];
    int no_ext;
    int rc = decode_rel(req->path + m->url_len, rel, sizeof rel - 8, &no_ext);
    if (rc == REL_BAD) {
        response_error(res, 400, "bad_path",
                       "%.300s is not a plain file path (empty, '.' or '..' segments, "
                       "encoded '/', '\\' or NUL are refused)",
                       req->path);
        return 1;
    }
    if (rc == REL_HIDDEN)
        return not_found(res, req->path);

    char candidate[2 * PATH_MAX + 16], resolved[PATH_MAX];
    snprintf(candidate, sizeof candidate, "%s/%s", base, rel);
    const char *found = realpath(candidate, resolved);
    if (!found && errno == ENOENT && no_ext) {
        strcat(candidate, ".html");
        found = realpath(candidate, resolved);
    }
    if (!found || !inside(resolved, base))
        return not_found(res, req->path);

    struct stat st;
    if (stat(resolved, &st) == 0 && S_ISDIR(st.st_mode)) {
        /* A folder named without its trailing '/': serve its index. */
        snprintf(candidate, sizeof candidate, "%s/index.html", resolved);
        if (!realpath(candidate, resolved) || !inside(resolved, base))
            return not_found(res, req->path);
    }
    return send_file(sf, m, req, resolved, res);
}
