/*
 * test_import.c — what an import from the browser reads: a spooled
 * multipart body split into files (form_spool), archives of photos
 * unpacked under hostile entries (image_archive), checked against the
 * bytes and the folder trees the tests build themselves with libarchive's
 * writer, and the metadata an exported file carries (import_file_meta_read)
 * from ModelProtos written here with protobuf-c.
 */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "form_spool.h"
#include "image_archive.h"
#include "model_import.h"
#include "onnx.pb-c.h"
#include "rng.h"

static char tmp_root[256];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void fresh_dir(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    CHECK(mkdir(path, 0755) == 0);
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

/* --- form_spool ----------------------------------------------------------- */

struct buf {
    unsigned char *p;
    size_t n, cap;
};

static void put(struct buf *b, const void *data, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void puts_(struct buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* A body file holding b; returns its fd. */
static int body_file(const struct buf *b)
{
    char path[300];
    snprintf(path, sizeof path, "%s/body", tmp_root);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK(write(fd, b->p, b->n) == (ssize_t)b->n);
    return fd;
}

/* Bytes that keep coming close to the delimiter: fragments of
 * "\r\n--BOUNDARY" of every length, and random bytes between. */
static void tricky_bytes(unsigned char *out, size_t n, const char *boundary, uint64_t seed)
{
    struct rng r;
    rng_seed(&r, seed);
    char delim[100];
    int dl = snprintf(delim, sizeof delim, "\r\n--%s", boundary);
    size_t i = 0;
    while (i < n) {
        if (rng_below(&r, 4) == 0) {
            /* a strict prefix, then a byte that breaks it off: content
             * never holds the whole delimiter (a client picks its boundary
             * so) */
            size_t k = (size_t)rng_below(&r, (uint64_t)dl);
            for (size_t j = 0; j < k && i < n; j++)
                out[i++] = (unsigned char)delim[j];
            if (i < n)
                out[i++] = (unsigned char)(delim[k] ^ 1);
        } else {
            out[i++] = (unsigned char)rng_below(&r, 256);
        }
    }
}

TEST(form_spool_splits_large_fields_byte_exact)
{
    const char *boundary = "----strataBoundary7MA4YWxkTrZu0gW";
    /* sizes around the 256 KB window, so the delimiter lands on its edges */
    size_t sizes[] = {0, 1, 262144 - 40, 262144, 700001};
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        size_t n = sizes[t];
        unsigned char *model = malloc(n + 1);
        tricky_bytes(model, n, boundary, 11 + t);
        struct buf b = {0};
        puts_(&b, "a preamble that is ignored\r\n");
        puts_(&b, "--");
        puts_(&b, boundary);
        puts_(&b, "\r\nContent-Disposition: form-data; name=\"meta\"\r\n"
                  "Content-Type: application/json\r\n\r\n{\"title\": \"x\"}\r\n--");
        puts_(&b, boundary);
        puts_(&b, "  \r\nContent-Disposition: form-data; name=\"model\"; filename=\"m.onnx\"\r\n"
                  "Content-Type: application/octet-stream\r\n\r\n");
        put(&b, model, n);
        puts_(&b, "\r\n--");
        puts_(&b, boundary);
        puts_(&b, "--\r\nan epilogue, ignored");
        int fd = body_file(&b);
        char dir[300], ct[200], err[STRATA_ERR_LEN];
        snprintf(dir, sizeof dir, "%s/form", tmp_root);
        fresh_dir(dir);
        snprintf(ct, sizeof ct, "multipart/form-data; boundary=\"%s\"", boundary);
        struct form_field f[] = {{.name = "meta", .max_bytes = 1000, .required = 1},
                                 {.name = "model", .max_bytes = 1 << 20, .required = 1},
                                 {.name = "images", .max_bytes = 1 << 20}};
        int rc = form_spool(fd, b.n, ct, dir, f, 3, err);
        CHECK_MSG(rc == 0, "size %zu: %s", n, err);
        CHECK(f[0].present && f[1].present && !f[2].present);
        CHECK(f[1].size == n);
        CHECK(strcmp(f[1].filename, "m.onnx") == 0);
        CHECK(strcmp(f[1].content_type, "application/octet-stream") == 0);
        size_t got_n;
        unsigned char *got = read_all(f[1].path, &got_n);
        CHECK(got && got_n == n && (n == 0 || memcmp(got, model, n) == 0));
        free(got);
        got = read_all(f[0].path, &got_n);
        CHECK(got && got_n == 14 && memcmp(got, "{\"title\": \"x\"}", 14) == 0);
        free(got);
        close(fd);
        free(b.p);
        free(model);
    }
}

/* One form with the given parts' text after the first delimiter. */
static int spool_text(const char *parts, uint64_t model_limit, char *err)
{
    struct buf b = {0};
    puts_(&b, parts);
    int fd = body_file(&b);
    char dir[300];
    snprintf(dir, sizeof dir, "%s/form", tmp_root);
    fresh_dir(dir);
    struct form_field f[] = {{.name = "meta", .max_bytes = 1000, .required = 1},
                             {.name = "model", .max_bytes = model_limit, .required = 1}};
    int rc = form_spool(fd, b.n, "multipart/form-data; boundary=zz", dir, f, 2, err);
    close(fd);
    free(b.p);
    return rc;
}

#define PART(name, body) "--zz\r\nContent-Disposition: form-data; name=\"" name "\"\r\n\r\n" body "\r\n"

TEST(form_spool_refuses_what_is_not_the_form)
{
    char err[STRATA_ERR_LEN];
    CHECK_EQ_INT(spool_text(PART("meta", "{}") PART("model", "abc") "--zz--", 10, err), 0);
    CHECK_EQ_INT(spool_text(PART("meta", "{}") PART("model", "abc") PART("extra", "x") "--zz--",
                            10, err),
                 STRATA_E_FORMAT);
    CHECK(strstr(err, "unexpected field \"extra\""));
    CHECK_EQ_INT(spool_text(PART("meta", "{}") PART("meta", "{}") PART("model", "a") "--zz--", 10,
                            err),
                 STRATA_E_FORMAT);
    CHECK(strstr(err, "given twice"));
    CHECK_EQ_INT(spool_text(PART("meta", "{}") "--zz--", 10, err), STRATA_E_FORMAT);
    CHECK(strstr(err, "no field \"model\""));
    CHECK_EQ_INT(spool_text(PART("meta", "{}") PART("model", "0123456789A") "--zz--", 10, err),
                 STRATA_E_LIMIT);
    CHECK(strstr(err, "\"model\" is over its limit"));
    CHECK_EQ_INT(spool_text(PART("meta", "{}") "--zz\r\nContent-Disposition: form-data; "
                                               "name=\"model\"\r\n\r\ntruncated",
                            10, err),
                 STRATA_E_FORMAT);
    CHECK_EQ_INT(spool_text("no delimiter at all", 10, err), STRATA_E_FORMAT);
    CHECK_EQ_INT(spool_text("--zz\r\nNo-Colon-Here\r\n\r\nx\r\n--zz--", 10, err), STRATA_E_FORMAT);

    struct buf b = {0};
    puts_(&b, "x");
    int fd = body_file(&b);
    struct form_field f[] = {{.name = "meta", .max_bytes = 10, .required = 1}};
    CHECK_EQ_INT(form_spool(fd, 1, "application/json", tmp_root, f, 1, err), STRATA_E_UNSUPPORTED);
    close(fd);
    free(b.p);
}

/* --- image_archive -------------------------------------------------------- */

static const unsigned char jpeg_bytes[] = {0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 'J', 'F', 'I', 'F', 0};
static const unsigned char png_bytes[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 1, 2};

struct writer {
    struct archive *a;
};

static void w_open(struct writer *w, const char *path, int zip)
{
    w->a = archive_write_new();
    if (zip) {
        archive_write_set_format_zip(w->a);
    } else {
        archive_write_set_format_pax_restricted(w->a);
        archive_write_add_filter_gzip(w->a);
    }
    CHECK(archive_write_open_filename(w->a, path) == ARCHIVE_OK);
}

static void w_entry(struct writer *w, const char *name, unsigned type, const void *data, size_t n,
                    const char *link, int hard)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, type == AE_IFREG ? (la_int64_t)n : 0);
    if (link && hard)
        archive_entry_set_hardlink(e, link);
    else if (link)
        archive_entry_set_symlink(e, link);
    if (type == AE_IFCHR)
        archive_entry_set_rdev(e, 0x0103);
    CHECK(archive_write_header(w->a, e) == ARCHIVE_OK);
    if (type == AE_IFREG && n)
        CHECK(archive_write_data(w->a, data, n) == (la_ssize_t)n);
    archive_entry_free(e);
}

static void w_file(struct writer *w, const char *name, const void *data, size_t n)
{
    w_entry(w, name, AE_IFREG, data, n, NULL, 0);
}

static void w_close(struct writer *w)
{
    CHECK(archive_write_close(w->a) == ARCHIVE_OK);
    archive_write_free(w->a);
}

/* Counts regular files under dir; any other kind of entry (a link, a
 * device) fails the check. */
static int n_files;
static int count_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)ftw;
    CHECK_MSG(flag == FTW_F || flag == FTW_D || flag == FTW_DP, "%s is not a file or folder",
              path);
    CHECK_MSG(flag != FTW_F || S_ISREG(st->st_mode), "%s is not a regular file", path);
    n_files += flag == FTW_F;
    return 0;
}

static int files_under(const char *dir)
{
    n_files = 0;
    nftw(dir, count_entry, 16, FTW_PHYS);
    return n_files;
}

static int exists(const char *fmt, const char *a, const char *b)
{
    char path[600];
    snprintf(path, sizeof path, fmt, a, b);
    struct stat st;
    return lstat(path, &st) == 0;
}

static int reason_count(const json_t *report, const char *needle)
{
    int n = 0;
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(report, "skipped"), i, s)
        n += strstr(json_string_value(json_object_get(s, "reason")), needle) != NULL;
    return n;
}

TEST(archive_hostile_entries_are_skipped_and_nothing_lands_outside)
{
    char path[300], dest[300], err[STRATA_ERR_LEN];
    snprintf(path, sizeof path, "%s/hostile.tar.gz", tmp_root);
    snprintf(dest, sizeof dest, "%s/ex/dest", tmp_root);
    char ex[300];
    snprintf(ex, sizeof ex, "%s/ex", tmp_root);
    fresh_dir(ex);
    CHECK(mkdir(dest, 0755) == 0);
    struct writer w;
    w_open(&w, path, 0);
    for (int i = 0; i < 10; i++) {
        char name[64];
        snprintf(name, sizeof name, "photos/cat/%d.jpg", i);
        w_file(&w, name, jpeg_bytes, sizeof jpeg_bytes);
        snprintf(name, sizeof name, "photos/dog/%d.PNG", i);
        w_file(&w, name, png_bytes, sizeof png_bytes);
    }
    w_file(&w, "../escape.jpg", jpeg_bytes, sizeof jpeg_bytes);
    w_file(&w, "photos/cat/../../../escape2.jpg", jpeg_bytes, sizeof jpeg_bytes);
    w_file(&w, "/tmp/strata-absolute.jpg", jpeg_bytes, sizeof jpeg_bytes);
    w_entry(&w, "photos/cat/link.jpg", AE_IFLNK, NULL, 0, "/etc/passwd", 0);
    w_entry(&w, "photos/cat/hard.jpg", AE_IFREG, NULL, 0, "photos/cat/0.jpg", 1);
    w_entry(&w, "photos/cat/dev.jpg", AE_IFCHR, NULL, 0, NULL, 0);
    w_entry(&w, "photos/cat/fifo.jpg", AE_IFIFO, NULL, 0, NULL, 0);
    w_file(&w, "photos/cat/inner.zip", "PK\3\4", 4);
    w_file(&w, "photos/cat/.hidden.jpg", jpeg_bytes, sizeof jpeg_bytes);
    w_file(&w, "__MACOSX/photos/cat/._0.jpg", jpeg_bytes, sizeof jpeg_bytes);
    w_file(&w, "photos/cat/readme.txt", "hello", 5);
    w_file(&w, "photos/cat/fake.jpg", "not a jpeg", 10);
    w_file(&w, "photos/cat/empty.jpg", "", 0);
    w_file(&w, "root.jpg", jpeg_bytes, sizeof jpeg_bytes);
    w_file(&w, "photos/cat/bad\001name.jpg", jpeg_bytes, sizeof jpeg_bytes);
    w_close(&w);

    struct image_archive_limits lim;
    image_archive_limits_default(&lim);
    json_t *report = NULL;
    CHECK_EQ_INT(image_archive_extract(path, dest, &lim, &report, err), 0);
    CHECK(report != NULL);
    /* 20 good images, and the oddly named one kept under a name of strata's */
    CHECK_EQ_INT((int)json_integer_value(json_object_get(report, "images")), 21);
    CHECK_EQ_INT(files_under(dest), 21);
    CHECK_EQ_INT((int)json_integer_value(json_object_get(report, "n_skipped")), 14);
    CHECK_EQ_INT(reason_count(report, "escapes the folder"), 2);
    CHECK_EQ_INT(reason_count(report, "absolute"), 1);
    CHECK_EQ_INT(reason_count(report, "link"), 2);
    CHECK_EQ_INT(reason_count(report, "not a regular file"), 2);
    CHECK_EQ_INT(reason_count(report, "nested archive"), 1);
    CHECK_EQ_INT(reason_count(report, "hidden"), 2);
    CHECK_EQ_INT(reason_count(report, "not a .jpg"), 1);
    CHECK_EQ_INT(reason_count(report, "by its first bytes"), 1);
    CHECK_EQ_INT(reason_count(report, "empty"), 1);
    CHECK_EQ_INT(reason_count(report, "not inside a class folder"), 1);
    /* nothing outside dest */
    CHECK(!exists("%s/escape.jpg", ex, ""));
    CHECK(!exists("%s/../escape2.jpg", ex, ""));
    CHECK(!exists("/tmp/strata-absolute.jpg", "", ""));
    /* no train/test folders: 20 % of each class is the test split */
    CHECK(strcmp(json_string_value(json_object_get(report, "split")), "made") == 0);
    const json_t *classes = json_object_get(report, "classes");
    CHECK_EQ_INT((int)json_array_size(classes), 2);
    const json_t *cat = json_array_get(classes, 0), *dog = json_array_get(classes, 1);
    CHECK(strcmp(json_string_value(json_object_get(cat, "name")), "cat") == 0);
    CHECK_EQ_INT((int)json_integer_value(json_object_get(cat, "train")), 9);
    CHECK_EQ_INT((int)json_integer_value(json_object_get(cat, "test")), 2);
    CHECK_EQ_INT((int)json_integer_value(json_object_get(dog, "train")), 8);
    CHECK_EQ_INT((int)json_integer_value(json_object_get(dog, "test")), 2);
    CHECK(exists("%s/train/dog/%s", dest, "0.png") || exists("%s/test/dog/%s", dest, "0.png"));
    json_decref(report);

    /* the split is the same every time */
    char dest2[300];
    snprintf(dest2, sizeof dest2, "%s/ex/dest2", tmp_root);
    CHECK(mkdir(dest2, 0755) == 0);
    CHECK_EQ_INT(image_archive_extract(path, dest2, &lim, &report, err), 0);
    for (int i = 0; i < 10; i++) {
        char name[32];
        snprintf(name, sizeof name, "%d.jpg", i);
        CHECK(exists("%s/test/cat/%s", dest, name) == exists("%s/test/cat/%s", dest2, name));
    }
    json_decref(report);
}

TEST(archive_with_train_and_test_folders_keeps_them)
{
    char path[300], dest[300], err[STRATA_ERR_LEN];
    snprintf(path, sizeof path, "%s/split.zip", tmp_root);
    snprintf(dest, sizeof dest, "%s/split", tmp_root);
    fresh_dir(dest);
    struct writer w;
    w_open(&w, path, 1);
    const char *names[] = {"data/train/a/1.jpg", "data/train/a/2.jpg", "data/train/b/1.jpg",
                           "data/test/a/3.jpg",  "data/test/b/2.jpg",  "data/test/b/3.jpg",
                           "data/b/stray.jpg"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        w_file(&w, names[i], jpeg_bytes, sizeof jpeg_bytes);
    w_close(&w);
    struct image_archive_limits lim;
    image_archive_limits_default(&lim);
    json_t *report = NULL;
    CHECK_EQ_INT(image_archive_extract(path, dest, &lim, &report, err), 0);
    CHECK(strcmp(json_string_value(json_object_get(report, "split")), "archive") == 0);
    CHECK(strstr(json_string_value(json_object_get(report, "format")), "ZIP") != NULL);
    CHECK_EQ_INT((int)json_integer_value(json_object_get(report, "images")), 6);
    CHECK_EQ_INT(files_under(dest), 6);
    CHECK(exists("%s/train/a/%s", dest, "2.jpg") && exists("%s/test/b/%s", dest, "3.jpg"));
    CHECK(!exists("%s/_all%s", dest, ""));
    CHECK_EQ_INT(reason_count(report, "beside them"), 1);
    json_decref(report);
}

TEST(archive_limits_and_refusals)
{
    char path[300], dest[300], err[STRATA_ERR_LEN];
    snprintf(path, sizeof path, "%s/many.tar.gz", tmp_root);
    snprintf(dest, sizeof dest, "%s/lim", tmp_root);
    struct writer w;
    w_open(&w, path, 0);
    static unsigned char big[4096];
    memcpy(big, jpeg_bytes, sizeof jpeg_bytes);
    for (int i = 0; i < 10; i++) {
        char name[64];
        snprintf(name, sizeof name, "%c/%d.jpg", 'a' + i % 2, i);
        w_file(&w, name, big, sizeof big);
    }
    w_close(&w);
    struct image_archive_limits lim;
    image_archive_limits_default(&lim);
    json_t *report = NULL;

    fresh_dir(dest);
    lim.max_entries = 5;
    CHECK_EQ_INT(image_archive_extract(path, dest, &lim, &report, err), STRATA_E_LIMIT);
    CHECK(strstr(err, "over 5 entries") && !report);

    fresh_dir(dest);
    lim.max_entries = 100;
    lim.max_bytes = 3 * sizeof big;
    CHECK_EQ_INT(image_archive_extract(path, dest, &lim, &report, err), STRATA_E_LIMIT);
    CHECK(strstr(err, "decompressed") && !report);

    fresh_dir(dest);
    image_archive_limits_default(&lim);
    CHECK_EQ_INT(image_archive_extract(path, dest, &lim, &report, err), 0);
    json_decref(report);

    /* not an archive; one class only; no image */
    char junk[300];
    snprintf(junk, sizeof junk, "%s/junk.zip", tmp_root);
    FILE *f = fopen(junk, "wb");
    fputs("this is not an archive at all, just text", f);
    fclose(f);
    fresh_dir(dest);
    CHECK_EQ_INT(image_archive_extract(junk, dest, &lim, &report, err), STRATA_E_FORMAT);
    w_open(&w, path, 0);
    w_file(&w, "only/1.jpg", jpeg_bytes, sizeof jpeg_bytes);
    w_file(&w, "only/2.jpg", jpeg_bytes, sizeof jpeg_bytes);
    w_close(&w);
    fresh_dir(dest);
    CHECK_EQ_INT(image_archive_extract(path, dest, &lim, &report, err), STRATA_E_FORMAT);
    CHECK(strstr(err, "at least 2"));
    /* a class whose only file is skipped is no class */
    w_open(&w, path, 0);
    w_file(&w, "a/1.jpg", jpeg_bytes, sizeof jpeg_bytes);
    w_file(&w, "b/1.jpg", "not a jpeg", 10);
    w_close(&w);
    fresh_dir(dest);
    CHECK_EQ_INT(image_archive_extract(path, dest, &lim, &report, err), STRATA_E_FORMAT);
    CHECK(strstr(err, "1 class folder with images"));
    w_open(&w, path, 1);
    w_file(&w, "notes.txt", "x", 1);
    w_close(&w);
    fresh_dir(dest);
    CHECK_EQ_INT(image_archive_extract(path, dest, &lim, &report, err), STRATA_E_FORMAT);
    CHECK(strstr(err, "no JPEG or PNG image"));
}

/* Writes a ModelProto holding only metadata_props (keys[i] = values[i]) to
 * path: the metadata reader needs no graph. */
static void write_meta_model(const char *path, const char *const *keys, const char *const *values, int n)
{
    Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
    Onnx__StringStringEntryProto e[8], *pe[8];
    for (int i = 0; i < n; i++) {
        onnx__string_string_entry_proto__init(&e[i]);
        e[i].key = (char *)keys[i];
        e[i].value = (char *)values[i];
        pe[i] = &e[i];
    }
    m.n_metadata_props = (size_t)n;
    m.metadata_props = pe;
    m.has_ir_version = 1;
    m.ir_version = 8;
    size_t len = onnx__model_proto__get_packed_size(&m);
    uint8_t *buf = malloc(len);
    CHECK_EQ_INT(onnx__model_proto__pack(&m, buf), len);
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(buf, 1, len, f) == len);
    if (f)
        fclose(f);
    free(buf);
}

TEST(file_metadata_is_taken_when_usable_and_noted_when_not)
{
    char path[400];
    snprintf(path, sizeof path, "%s/meta.onnx", tmp_root);
    struct import_file_meta fm;

    /* What strata export writes: every field used. */
    const char *keys[] = {"strata.title", "strata.classes", "strata.mean", "strata.std", "other"};
    const char *good[] = {"Big cats", "[\"cheetah\",\"jaguar\"]", "[0.5, 0.25, -1]", "[0.2, 1e-3, 4]",
                          "kept out"};
    write_meta_model(path, keys, good, 5);
    import_file_meta_read(&fm, path);
    CHECK(fm.readable);
    CHECK(strcmp(fm.title, "Big cats") == 0);
    CHECK(fm.classes && json_array_size(fm.classes) == 2 &&
          strcmp(json_string_value(json_array_get(fm.classes, 1)), "jaguar") == 0);
    CHECK(fm.has_mean && fm.mean[0] == 0.5 && fm.mean[1] == 0.25 && fm.mean[2] == -1);
    CHECK(fm.has_std && fm.std[0] == 0.2 && fm.std[1] == 1e-3 && fm.std[2] == 4);
    CHECK_EQ_INT(json_object_size(fm.ignored), 0);
    import_file_meta_deinit(&fm);

    /* Present but unusable: each left out, with a sentence naming it. */
    char long_title[260];
    memset(long_title, 'x', 201);
    long_title[201] = '\0';
    const char *bad[] = {long_title, "[\"cheetah\",\"cheetah\"]", "[0.5, 0.25]", "[0.2, 0, 4]"};
    write_meta_model(path, keys, bad, 4);
    import_file_meta_read(&fm, path);
    CHECK(fm.readable);
    CHECK(fm.title[0] == '\0' && !fm.classes && !fm.has_mean && !fm.has_std);
    CHECK_EQ_INT(json_object_size(fm.ignored), 4);
    const char *why = json_string_value(json_object_get(fm.ignored, "std"));
    CHECK_MSG(why && strstr(why, "strata.std") && strstr(why, "positive"), "%s", why ? why : "(none)");
    why = json_string_value(json_object_get(fm.ignored, "classes"));
    CHECK_MSG(why && strstr(why, "strata.classes"), "%s", why ? why : "(none)");
    import_file_meta_deinit(&fm);

    /* Not UTF-8, and not JSON. */
    const char *odd[] = {"caf\xe9", "cheetah,jaguar"};
    write_meta_model(path, keys, odd, 2);
    import_file_meta_read(&fm, path);
    CHECK(fm.title[0] == '\0' && !fm.classes);
    CHECK(json_object_get(fm.ignored, "title") && json_object_get(fm.ignored, "classes"));
    import_file_meta_deinit(&fm);

    /* A file with no metadata, and one that is no ONNX model at all. */
    write_meta_model(path, keys, good, 0);
    import_file_meta_read(&fm, path);
    CHECK(fm.readable && !fm.title[0] && !fm.classes && !fm.has_mean && !fm.has_std);
    import_file_meta_deinit(&fm);
    FILE *f = fopen(path, "wb");
    CHECK(f && fputs("\xff\xff\xff not protobuf", f) >= 0);
    if (f)
        fclose(f);
    import_file_meta_read(&fm, path);
    CHECK(!fm.readable && !fm.classes && json_object_size(fm.ignored) == 0);
    import_file_meta_deinit(&fm);
    unlink(path);
}

int main(void)
{
    snprintf(tmp_root, sizeof tmp_root, "/tmp/strata-test-import-%d", (int)getpid());
    fresh_dir(tmp_root);
    RUN(form_spool_splits_large_fields_byte_exact);
    RUN(form_spool_refuses_what_is_not_the_form);
    RUN(archive_hostile_entries_are_skipped_and_nothing_lands_outside);
    RUN(archive_with_train_and_test_folders_keeps_them);
    RUN(archive_limits_and_refusals);
    RUN(file_metadata_is_taken_when_usable_and_noted_when_not);
    nftw(tmp_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return check_done();
}
