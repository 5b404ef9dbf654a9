/*
 * image_archive.c — unpacking an uploaded archive of class folders (see
 * image_archive.h for the rules).
 *
 * Images go to <dest>/<split>/<class>/ as they are read, split being
 * "train" or "test" when the entry sits in such a folder, else "_all". At
 * the end the layout is settled: an archive with train/test folders drops
 * what lay beside them; one without gets its test split made from _all.
 * Every folder under dest is created here, and every file with O_EXCL and
 * O_NOFOLLOW, so no entry can make a later write land elsewhere.
 */
#include "image_archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataset.h"
#include "rng.h"

#define MAX_COMPONENTS 64
#define MAX_NAME 100

void image_archive_limits_default(struct image_archive_limits *lim)
{
    lim->max_entries = 100000;
    lim->max_bytes = (uint64_t)4 << 30;
}

struct extract {
    const char *dest;
    const struct image_archive_limits *lim;
    json_t *skipped;
    long n_skipped, images, in_split, flat, entries;
    uint64_t bytes;
    unsigned char buf[1 << 16];
};

static int skip(struct extract *x, const char *entry, const char *reason)
{
    x->n_skipped++;
    if (json_array_size(x->skipped) >= IMAGE_ARCHIVE_MAX_LISTED)
        return 0;
    char shown[300];
    size_t n = 0;
    /* entry names need not be UTF-8 or printable */
    for (const unsigned char *p = (const unsigned char *)(entry ? entry : ""); *p && n < 240; p++)
        shown[n++] = *p >= 0x20 && *p < 0x7f ? (char)*p : '?';
    shown[n] = '\0';
    json_t *j = json_pack("{s:s, s:s}", "entry", shown, "reason", reason);
    return j && json_array_append_new(x->skipped, j) == 0 ? 0 : STRATA_E_NOMEM;
}

/* A name strata may write as it is: 1..MAX_NAME bytes of valid UTF-8 (it
 * becomes part of JSON replies and URLs) without control characters, no
 * '/', '\\' or characters other systems reserve, no leading '.'. */
static int plain_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_NAME || s[0] == '.')
        return 0;
    json_t *utf8 = json_string(s); /* NULL: not UTF-8 */
    if (!utf8)
        return 0;
    json_decref(utf8);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f || *p == '/' || *p == '\\' || *p == ':' || *p == '*' ||
            *p == '?' || *p == '"' || *p == '<' || *p == '>' || *p == '|')
            return 0;
    return 1;
}

static const char *extension(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && dot != name ? dot + 1 : "";
}

static int is_archive_ext(const char *ext)
{
    static const char *const exts[] = {"zip", "tar", "gz", "tgz", "bz2", "xz", "7z", "rar", "zst"};
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
        if (!strcasecmp(ext, exts[i]))
            return 1;
    return 0;
}

static int mkdir_in(const char *path)
{
    return mkdir(path, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

/* Splits an entry path into components, dropping empty and "." ones.
 * Returns the count, -1 when a component is "..", -2 when there are too
 * many. */
static int components(char *path, char **out)
{
    int n = 0;
    for (char *save = NULL, *c = strtok_r(path, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (strcmp(c, ".") == 0)
            continue;
        if (strcmp(c, "..") == 0)
            return -1;
        if (n == MAX_COMPONENTS)
            return -2;
        out[n++] = c;
    }
    return n;
}

/* Writes the entry's data to a new file in dir (named after `name` when it
 * is plain, else image-<n>.<ext>; a name taken gets "-<n>" before its
 * extension). Returns 1 (kept), 0 (skipped: not an image by its bytes, or
 * unreadable), or a negative status. */
static int write_image(struct extract *x, struct archive *a, const char *dir, const char *name,
                       const char *entry)
{
    char path[1600], base[MAX_NAME + 1], ext[8];
    snprintf(ext, sizeof ext, "%s", extension(name));
    for (char *e = ext; *e; e++)
        *e = (char)(*e >= 'A' && *e <= 'Z' ? *e + 32 : *e);
    if (plain_name(name))
        snprintf(base, sizeof base, "%.*s", (int)(strlen(name) - strlen(ext) - 1), name);
    else
        snprintf(base, sizeof base, "image-%ld", x->images + x->n_skipped + 1);
    int fd = -1;
    for (int attempt = 0; fd < 0 && attempt < 1000; attempt++) {
        if (attempt == 0)
            snprintf(path, sizeof path, "%s/%s.%s", dir, base, ext);
        else
            snprintf(path, sizeof path, "%s/%s-%d.%s", dir, base, attempt + 1, ext);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST)
            return STRATA_E_IO;
    }
    if (fd < 0)
        return skip(x, entry, "too many images with the same name") < 0 ? STRATA_E_NOMEM : 0;

    int rc = 1;
    size_t first = 0;
    for (;;) {
        la_ssize_t n = archive_read_data(a, x->buf, sizeof x->buf);
        if (n == 0)
            break;
        if (n < 0) {
            rc = 0;
            if (skip(x, entry, "unreadable (damaged, encrypted or an unsupported compression)") < 0)
                rc = STRATA_E_NOMEM;
            break;
        }
        x->bytes += (uint64_t)n;
        if (x->bytes > x->lim->max_bytes) {
            rc = STRATA_E_LIMIT;
            break;
        }
        if (first == 0) {
            /* JPEG: FF D8 FF; PNG: 89 'P' 'N' 'G' (checked on the first
             * block, which libarchive never hands over in pieces this small) */
            int jpeg = n >= 3 && x->buf[0] == 0xFF && x->buf[1] == 0xD8 && x->buf[2] == 0xFF;
            int png = n >= 4 && x->buf[0] == 0x89 && !memcmp(x->buf + 1, "PNG", 3);
            if (!jpeg && !png) {
                rc = skip(x, entry, "not a JPEG or PNG image (by its first bytes)") < 0
                         ? STRATA_E_NOMEM
                         : 0;
                break;
            }
        }
        first += (size_t)n;
        for (la_ssize_t off = 0; off < n;) {
            ssize_t w = write(fd, x->buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                rc = STRATA_E_IO;
                break;
            }
            off += w;
        }
        if (rc < 0)
            break;
    }
    if (first == 0 && rc == 1)
        rc = skip(x, entry, "an empty file") < 0 ? STRATA_E_NOMEM : 0;
    if (close(fd) != 0 && rc == 1)
        rc = STRATA_E_IO;
    if (rc != 1)
        unlink(path);
    return rc;
}

/* One entry: skipped with its reason, or written. Returns 0 or a negative
 * status (the archive is refused). */
static int entry(struct extract *x, struct archive *a, struct archive_entry *e, char *err)
{
    const char *raw = archive_entry_pathname(e);
    if (!raw || !raw[0])
        return skip(x, "", "an entry without a name");
    mode_t type = archive_entry_filetype(e);
    if (type == AE_IFDIR)
        return 0;
    if (archive_entry_hardlink(e) || type == AE_IFLNK)
        return skip(x, raw, "a link (links are never followed)");
    if (type != AE_IFREG)
        return skip(x, raw, "not a regular file (a device, FIFO or socket)");
    if (raw[0] == '/' || raw[0] == '\\' || (raw[0] && raw[1] == ':'))
        return skip(x, raw, "an absolute path");
    if (strchr(raw, '\\'))
        return skip(x, raw, "a path with backslashes");
    char copy[4096], *c[MAX_COMPONENTS];
    if (strlen(raw) >= sizeof copy)
        return skip(x, raw, "a path over 4 KB");
    strcpy(copy, raw);
    int n = components(copy, c);
    if (n == -1)
        return skip(x, raw, "escapes the folder (a \"..\" component)");
    if (n < 0)
        return skip(x, raw, "nested too deep");
    if (n == 0)
        return skip(x, raw, "an entry without a name");
    for (int i = 0; i < n; i++)
        if (c[i][0] == '.' || strcmp(c[i], "__MACOSX") == 0)
            return skip(x, raw, "a hidden file or folder");
    const char *file = c[n - 1], *ext = extension(file);
    if (is_archive_ext(ext))
        return skip(x, raw, "a nested archive (never opened)");
    if (!dataset_is_image_name(file))
        return skip(x, raw, "not a .jpg, .jpeg or .png file");
    if (n < 2)
        return skip(x, raw, "not inside a class folder");
    const char *cls = c[n - 2];
    const char *split = "_all";
    if (!strcasecmp(cls, "train") || !strcasecmp(cls, "test"))
        return skip(x, raw, "directly in train/ or test/, not in a class folder");
    if (n >= 3 && (!strcasecmp(c[n - 3], "train") || !strcasecmp(c[n - 3], "test")))
        split = !strcasecmp(c[n - 3], "train") ? "train" : "test";
    if (!plain_name(cls))
        return skip(x, raw, "a class folder name strata cannot use (over 100 bytes, or with "
                            "control or reserved characters)");

    char dir[1400];
    snprintf(dir, sizeof dir, "%s/%s", x->dest, split);
    if (mkdir_in(dir) < 0)
        return strata_fail(err, STRATA_E_IO, "cannot create %s: %s", dir, strerror(errno));
    snprintf(dir, sizeof dir, "%s/%s/%s", x->dest, split, cls);
    if (mkdir_in(dir) < 0)
        return strata_fail(err, STRATA_E_IO, "cannot create %s: %s", dir, strerror(errno));
    int rc = write_image(x, a, dir, file, raw);
    if (rc == STRATA_E_LIMIT)
        return strata_fail(err, rc,
                           "the archive holds over %llu bytes once decompressed (the limit)",
                           (unsigned long long)x->lim->max_bytes);
    if (rc == STRATA_E_IO)
        return strata_fail(err, rc, "writing an image under %s failed: %s", dir, strerror(errno));
    if (rc < 0)
        return strata_fail(err, rc, "out of memory unpacking the archive");
    if (rc == 0) {
        /* a folder made for a file that was then skipped must not become
         * an empty class */
        rmdir(dir);
        snprintf(dir, sizeof dir, "%s/%s", x->dest, split);
        rmdir(dir);
    }
    if (rc == 1) {
        x->images++;
        if (strcmp(split, "_all") == 0)
            x->flat++;
        else
            x->in_split++;
    }
    return 0;
}

/* The class folders (want_dirs) or image files in dir, sorted
 * (dataset_list); a folder that does not exist has none. */
static int list_sorted(const char *dir, int want_dirs, char ***names)
{
    int n = dataset_list(dir, want_dirs, names);
    return n == -ENOENT ? 0 : n;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

/* Moves IMAGE_ARCHIVE_TEST_PERCENT of each class of _all (at least one of a
 * class of two or more) to test/, seeded, then renames _all to train. */
static int make_split(struct extract *x, char *err)
{
    char all[1400], test[1400], train[1400];
    snprintf(all, sizeof all, "%s/_all", x->dest);
    snprintf(test, sizeof test, "%s/test", x->dest);
    snprintf(train, sizeof train, "%s/train", x->dest);
    if (mkdir_in(test) < 0)
        return strata_fail(err, STRATA_E_IO, "cannot create %s: %s", test, strerror(errno));
    char **cls;
    int nc = list_sorted(all, 1, &cls);
    int rc = 0;
    for (int i = 0; rc == 0 && i < nc; i++) {
        char from[1700], to[1700];
        snprintf(from, sizeof from, "%s/%s", all, cls[i]);
        snprintf(to, sizeof to, "%s/%s", test, cls[i]);
        char **files;
        int nf = list_sorted(from, 0, &files);
        int *order = malloc((size_t)(nf > 0 ? nf : 1) * sizeof *order);
        if (nf < 0 || !order || mkdir_in(to) < 0) {
            rc = strata_fail(err, STRATA_E_IO, "cannot split %s: %s", from, strerror(errno));
        } else {
            for (int j = 0; j < nf; j++)
                order[j] = j;
            struct rng r;
            rng_seed(&r, (uint64_t)i);
            rng_shuffle_int(&r, order, nf);
            int n_test = nf * IMAGE_ARCHIVE_TEST_PERCENT / 100;
            if (n_test == 0 && nf >= 2)
                n_test = 1;
            for (int j = 0; rc == 0 && j < n_test; j++) {
                char a[2000], b[2000];
                snprintf(a, sizeof a, "%s/%s", from, files[order[j]]);
                snprintf(b, sizeof b, "%s/%s", to, files[order[j]]);
                if (rename(a, b) != 0)
                    rc = strata_fail(err, STRATA_E_IO, "cannot move %s: %s", a, strerror(errno));
            }
        }
        free(order);
        dataset_names_free(files, nf);
    }
    dataset_names_free(cls, nc);
    if (rc == 0 && rename(all, train) != 0)
        rc = strata_fail(err, STRATA_E_IO, "cannot rename %s: %s", all, strerror(errno));
    return rc;
}

static int count_files(const char *dir)
{
    char **f;
    int n = list_sorted(dir, 0, &f);
    dataset_names_free(f, n);
    return n < 0 ? 0 : n;
}

/* The classes of train/ and test/ with their counts; refuses a layout that
 * cannot train or test a classifier. */
static int settle_classes(struct extract *x, json_t *classes, char *err)
{
    char train[1400], test[1400];
    snprintf(train, sizeof train, "%s/train", x->dest);
    snprintf(test, sizeof test, "%s/test", x->dest);
    char **tr, **te;
    int ntr = list_sorted(train, 1, &tr), nte = list_sorted(test, 1, &te);
    int rc = 0;
    for (int j = 0; rc == 0 && j < nte; j++) {
        int found = 0;
        for (int i = 0; i < ntr; i++)
            found |= strcmp(tr[i], te[j]) == 0;
        if (!found)
            rc = strata_fail(err, STRATA_E_FORMAT,
                             "class \"%.100s\" has test images but no training image", te[j]);
    }
    if (rc == 0 && ntr < 2)
        rc = strata_fail(err, STRATA_E_FORMAT,
                         "the archive has %d class folder%s with images; a classifier needs at "
                         "least 2",
                         ntr < 0 ? 0 : ntr, ntr == 1 ? "" : "s");
    for (int i = 0; rc == 0 && i < ntr; i++) {
        char a[1700], b[1700];
        snprintf(a, sizeof a, "%s/%s", train, tr[i]);
        snprintf(b, sizeof b, "%s/%s", test, tr[i]);
        json_t *j = json_pack("{s:s, s:i, s:i}", "name", tr[i], "train", count_files(a), "test",
                              count_files(b));
        if (!j || json_array_append_new(classes, j) != 0)
            rc = strata_fail(err, STRATA_E_NOMEM, "out of memory");
    }
    dataset_names_free(tr, ntr);
    dataset_names_free(te, nte);
    return rc;
}

int image_archive_extract(const char *path, const char *dest,
                          const struct image_archive_limits *lim, json_t **report, char *err)
{
    *report = NULL;
    struct extract *x = calloc(1, sizeof *x);
    struct archive *a = archive_read_new();
    if (!x || !a) {
        free(x);
        archive_read_free(a);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    }
    x->dest = dest;
    x->lim = lim;
    x->skipped = json_array();
    archive_read_support_filter_gzip(a);
    archive_read_support_format_zip(a);
    archive_read_support_format_tar(a);
    int rc = 0;
    char format[64] = "";
    if (!x->skipped) {
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory");
    } else if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
        rc = strata_fail(err, STRATA_E_FORMAT,
                         "the images are not an archive strata reads (.zip, .tar or .tar.gz): "
                         "%.200s",
                         archive_error_string(a) ? archive_error_string(a) : "unknown format");
    }
    while (rc == 0) {
        struct archive_entry *e;
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_WARN) {
            rc = strata_fail(err, STRATA_E_FORMAT,
                             "the archive is not one strata reads (.zip, .tar or .tar.gz) or is "
                             "damaged after %ld entries: %.200s",
                             x->entries,
                             archive_error_string(a) ? archive_error_string(a) : "unknown error");
            break;
        }
        if (!format[0] && archive_format_name(a))
            snprintf(format, sizeof format, "%s%s%s", archive_format_name(a),
                     archive_filter_count(a) > 1 ? " + " : "",
                     archive_filter_count(a) > 1 ? archive_filter_name(a, 0) : "");
        if ((uint64_t)++x->entries > lim->max_entries) {
            rc = strata_fail(err, STRATA_E_LIMIT, "the archive has over %llu entries (the limit)",
                             (unsigned long long)lim->max_entries);
            break;
        }
        rc = entry(x, a, e, err);
    }
    archive_read_free(a);

    const char *split = "archive";
    char note[200] = "";
    if (rc == 0 && x->images == 0)
        rc = strata_fail(err, STRATA_E_FORMAT,
                         "no JPEG or PNG image in a class folder was found among the archive's "
                         "%ld entries (%ld skipped); lay it out as <class>/<image>.jpg, "
                         "optionally inside train/ and test/",
                         x->entries, x->n_skipped);
    if (rc == 0 && x->in_split && x->flat) {
        char all[1400];
        snprintf(all, sizeof all, "%s/_all", dest);
        nftw(all, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
        char what[80];
        snprintf(what, sizeof what, "%ld images outside train/ and test/", x->flat);
        x->n_skipped += x->flat - 1;
        x->images -= x->flat;
        if (skip(x, what, "the archive has train/ and test/ folders; images beside them are "
                          "left out") < 0)
            rc = strata_fail(err, STRATA_E_NOMEM, "out of memory");
    }
    if (rc == 0 && !x->in_split) {
        split = "made";
        snprintf(note, sizeof note,
                 "no train/ and test/ folders: %d %% of each class was kept for testing "
                 "(chosen with a fixed seed)",
                 IMAGE_ARCHIVE_TEST_PERCENT);
        rc = make_split(x, err);
    }
    json_t *classes = json_array();
    if (rc == 0 && !classes)
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory");
    if (rc == 0)
        rc = settle_classes(x, classes, err);
    if (rc == 0) {
        *report = json_pack("{s:s, s:I, s:I, s:I, s:s, s:s, s:o, s:O, s:I}", "format",
                            format[0] ? format : "unknown", "entries", (json_int_t)x->entries,
                            "bytes", (json_int_t)x->bytes, "images", (json_int_t)x->images,
                            "split", split, "split_note", note, "classes", classes, "skipped",
                            x->skipped, "n_skipped", (json_int_t)x->n_skipped);
        classes = NULL;
        if (!*report)
            rc = strata_fail(err, STRATA_E_NOMEM, "out of memory");
    }
    json_decref(classes);
    json_decref(x->skipped);
    free(x);
    return rc;
}
