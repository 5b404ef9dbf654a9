/*
 * static.h — serving the web pages, styles and vendored scripts from their
 * folders, and nothing else.
 *
 * A list of mount points maps URL prefixes to folders (or one URL to one
 * file), e.g.
 *
 *     {"/",                     "web",    NULL},
 *     {"/static/",              "static", "public, max-age=3600"},
 *     {"/vendor/plotly.min.js", "node_modules/plotly.js-dist-min/plotly.min.js",
 *                               "public, max-age=86400"},
 *
 * The longest matching prefix wins. Within a folder mount, "/" and any path
 * ending in '/' serve index.html, and a path whose last segment has no
 * extension falls back to "<path>.html" ("/model" -> model.html).
 *
 * Security: each segment of the path is percent-decoded on its own and the
 * request is refused (400) if a segment is empty, "." or "..", or decodes to
 * something holding '/', '\' or NUL — so "..", "%2e%2e", "/%2fetc/passwd"
 * and "//etc/passwd" never reach the file system. Segments starting with '.'
 * (".git", ".env") are 404. The candidate is then resolved with realpath and
 * must stay inside the mount's own resolved folder (a symlink pointing out
 * is 404), and only regular files are sent.
 *
 * Replies carry a MIME type from a small table, a strong ETag built from
 * inode, size and modification time (so "If-None-Match" gets 304 without
 * reading the file), the mount's Cache-Control ("no-cache" by default:
 * revalidate every time, cheap thanks to the ETag) and
 * "X-Content-Type-Options: nosniff". Files are read per request and sent
 * with sendfile (no cache to invalidate when a page is edited).
 *
 * Thread safety: a static_files is immutable after static_new.
 */
#ifndef STRATA_STATIC_H
#define STRATA_STATIC_H

#include <stddef.h>

#include "request.h"

struct static_mount {
    const char *url; /* a prefix ending in '/' (a folder) or an exact path (one file) */
    const char *path; /* folder or file, relative to the root unless absolute */
    const char *cache_control; /* NULL means "no-cache" */
};

struct static_files;

/* Copies the mount table, resolving each path against root (NULL or "" means
 * the current directory). A mount whose target does not exist yet is kept
 * and answers 404 until it appears (e.g. node_modules before `npm ci`).
 * Returns 0, or STRATA_E_ARG (a url not starting with '/', a NULL path) or
 * STRATA_E_NOMEM with err. Free with static_free. */
int static_new(const char *root, const struct static_mount *mounts, size_t n,
               struct static_files **out, char *err);
void static_free(struct static_files *sf);

/* Serves req->path (GET or HEAD) if a mount covers it: returns 1 with res
 * holding the file (200), 304, 400 or 404; returns 0, leaving res alone,
 * when no mount covers the path. */
int static_serve(const struct static_files *sf, const struct request *req, struct response *res);

/* The MIME type for a file name by its extension (ignoring case),
 * "application/octet-stream" when unknown. Returns a static string. */
const char *static_mime_type(const char *name);

#endif
