/*
 * dataset.c — labelled image folders `root/<name>/<split>/<class>/<image>`.
 *
 * Listing is deterministic: classes are the non-hidden sub-folders that hold
 * at least one image, sorted by strcmp (byte order, independent of locale);
 * files are the non-hidden regular files ending .jpg/.jpeg/.png (any case),
 * sorted the same way. A label is a class's index in that order, so the same
 * folder always yields the same labels. Loading decodes and resizes each file
 * and skips (with a recorded reason) the ones that fail, keeping items and
 * pixels aligned.
 */
#include "dataset.h"

#include "image.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

const char *dataset_root(const char *flag_value)
{
    if (flag_value && flag_value[0])
        return flag_value;
    const char *env = getenv("STRATA_DATA");
    if (env && env[0])
        return env;
    return DATASET_DEFAULT_ROOT;
}

/* A growable list of owned strings. */
struct strlist {
    char **v;
    int n, cap;
};

static int strlist_push(struct strlist *l, char *s)
{
    if (!s)
        return -1;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) {
            free(s);
            return -1;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = s;
    return 0;
}

static void strlist_free(struct strlist *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int dataset_is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && dot != name &&
           (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0 ||
            strcasecmp(dot, ".png") == 0);
}

/* Collects the names in `dir` that are not hidden and, after following
 * symlinks, are directories (want_dirs) or regular image files. Sorted. On
 * failure returns -errno (the list is freed). */
static int list_dir(const char *dir, int want_dirs, struct strlist *out)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    int fd = dirfd(d);
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue; /* hidden files, "." and ".." */
        if (!want_dirs && !dataset_is_image_name(e->d_name))
            continue;
        struct stat st;
        if (fstatat(fd, e->d_name, &st, 0) != 0)
            continue; /* a dangling symlink or a file that just vanished */
        if (want_dirs ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
            continue;
        if (strlist_push(out, strdup(e->d_name))) {
            closedir(d);
            strlist_free(out);
            return -ENOMEM;
        }
        errno = 0;
    }
    int rerr = errno;
    closedir(d);
    if (rerr) {
        strlist_free(out);
        return -rerr;
    }
    if (out->n > 1)
        qsort(out->v, (size_t)out->n, sizeof *out->v, cmp_str);
    return 0;
}

int dataset_list(const char *dir, int want_dirs, char ***names)
{
    struct strlist l = {0};
    int rc = list_dir(dir, want_dirs, &l);
    *names = rc < 0 ? NULL : l.v;
    return rc < 0 ? rc : l.n;
}

void dataset_names_free(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* A single path component: not empty, no '/', not "." or "..". Names come
 * from model files and requests; they must not walk out of the data root. */
static int is_plain_name(const char *s)
{
    return s[0] && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

void dataset_free(struct dataset *ds)
{
    if (!ds)
        return;
    free(ds->dir);
    for (int i = 0; i < ds->n_classes; i++)
        free(ds->classes[i]);
    free(ds->classes);
    for (int i = 0; i < ds->n; i++) {
        free(ds->items[i].path);
        free(ds->items[i].name);
    }
    free(ds->items);
    for (int i = 0; i < ds->n_skipped; i++)
        free(ds->skipped[i]);
    free(ds->skipped);
    memset(ds, 0, sizeof *ds);
}

static int append_item(struct dataset *ds, int *cap, const char *cls, const char *file, int label)
{
    if (ds->n == *cap) {
        int c = *cap ? 2 * *cap : 256;
        struct dataset_item *v = realloc(ds->items, (size_t)c * sizeof *v);
        if (!v)
            return -1;
        ds->items = v;
        *cap = c;
    }
    struct dataset_item *it = &ds->items[ds->n];
    it->label = label;
    if (asprintf(&it->path, "%s/%s/%s", ds->dir, cls, file) < 0)
        return -1;
    if (asprintf(&it->name, "%s/%s", cls, file) < 0) {
        free(it->path);
        return -1;
    }
    ds->n++;
    return 0;
}

int dataset_open(struct dataset *ds, const char *root, const char *name, const char *split,
                 char *err)
{
    assert(ds && root && name && split);
    memset(ds, 0, sizeof *ds);
    if (!is_plain_name(name) || !is_plain_name(split))
        return strata_fail(err, STRATA_E_ARG,
                           "dataset name '%s' and split '%s' must be plain folder names", name,
                           split);
    /* Drop trailing slashes of the root so paths and names read cleanly. */
    size_t rl = strlen(root);
    while (rl > 1 && root[rl - 1] == '/')
        rl--;
    if (asprintf(&ds->dir, "%.*s/%s/%s", (int)rl, root, name, split) < 0) {
        ds->dir = NULL;
        return strata_fail(err, STRATA_E_NOMEM, "out of memory opening a dataset");
    }

    struct strlist classes = {0};
    int rc = list_dir(ds->dir, 1, &classes);
    if (rc == -ENOMEM) {
        dataset_free(ds);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory listing a dataset");
    }
    if (rc) {
        /* If only the split is missing, say which splits there are. */
        struct strlist splits = {0};
        char *ndir = NULL, have[200] = "";
        if (rc == -ENOENT) {
            if (asprintf(&ndir, "%.*s/%s", (int)rl, root, name) < 0) {
                ndir = NULL; /* no hint then; the message stands without it */
            } else if (list_dir(ndir, 1, &splits) == 0 && splits.n > 0) {
                size_t used = (size_t)snprintf(have, sizeof have, "; %s has the splits", name);
                for (int i = 0; i < splits.n && used < sizeof have; i++)
                    used += (size_t)snprintf(have + used, sizeof have - used, "%s %s",
                                             i ? "," : "", splits.v[i]);
            }
        }
        strata_fail(err, STRATA_E_IO,
                    "cannot read the data folder %s (%s)%s; pass --data DIR or set "
                    "STRATA_DATA to the folder that holds %s/%s/<class>/ images",
                    ds->dir, strerror(-rc), have, name, split);
        free(ndir);
        strlist_free(&splits);
        dataset_free(ds);
        return STRATA_E_IO;
    }

    int item_cap = 0;
    ds->classes = calloc(classes.n ? (size_t)classes.n : 1, sizeof *ds->classes);
    if (!ds->classes)
        goto nomem;
    for (int c = 0; c < classes.n; c++) {
        char *cdir;
        if (asprintf(&cdir, "%s/%s", ds->dir, classes.v[c]) < 0)
            goto nomem;
        struct strlist files = {0};
        rc = list_dir(cdir, 0, &files);
        if (rc) {
            if (rc == -ENOMEM) {
                free(cdir);
                goto nomem;
            }
            strata_fail(err, STRATA_E_IO, "cannot read the class folder %s: %s", cdir,
                        strerror(-rc));
            free(cdir);
            strlist_free(&classes);
            dataset_free(ds);
            return STRATA_E_IO;
        }
        free(cdir);
        if (files.n == 0)
            continue; /* a folder without images is not a class */
        int label = ds->n_classes;
        for (int f = 0; f < files.n; f++)
            if (append_item(ds, &item_cap, classes.v[c], files.v[f], label)) {
                strlist_free(&files);
                goto nomem;
            }
        strlist_free(&files);
        /* Ownership of the name moves to ds->classes. */
        ds->classes[ds->n_classes++] = classes.v[c];
        classes.v[c] = NULL;
    }
    strlist_free(&classes);
    if (ds->n == 0) {
        strata_fail(err, STRATA_E_NOTFOUND,
                    "the data folder %s holds no class folder with .jpg, .jpeg or .png images "
                    "(expected %s/<class>/<image>); check --data or STRATA_DATA",
                    ds->dir, ds->dir);
        dataset_free(ds);
        return STRATA_E_NOTFOUND;
    }
    return STRATA_OK;

nomem:
    strlist_free(&classes);
    dataset_free(ds);
    return strata_fail(err, STRATA_E_NOMEM, "out of memory listing a dataset");
}

static int add_skipped(struct dataset *ds, char *msg)
{
    if (!msg)
        return -1;
    char **v = realloc(ds->skipped, (size_t)(ds->n_skipped + 1) * sizeof *v);
    if (!v) {
        free(msg);
        return -1;
    }
    ds->skipped = v;
    ds->skipped[ds->n_skipped++] = msg;
    return 0;
}

/* Decodes item i at w x h into frame (w*h*3 bytes). Returns 1 (decoded),
 * 0 (unreadable: recorded in ds->skipped) or STRATA_E_NOMEM. */
static int decode_item(struct dataset *ds, int i, int w, int h, uint8_t *frame)
{
    const struct dataset_item *it = &ds->items[i];
    struct image img, small = {0};
    const struct image *use = &img;
    char why[STRATA_ERR_LEN];
    /* image_load's messages already begin with the path. */
    int r = image_load(it->path, &img, why);
    char *skip = NULL;
    if (r == STRATA_OK && (img.w != w || img.h != h)) {
        r = image_resize(&img, w, h, &small, why);
        use = &small;
        if (r && r != STRATA_E_NOMEM && asprintf(&skip, "%s: %s", it->path, why) < 0)
            skip = NULL, r = STRATA_E_NOMEM;
    } else if (r && r != STRATA_E_NOMEM && !(skip = strdup(why))) {
        r = STRATA_E_NOMEM;
    }
    if (r == STRATA_OK)
        memcpy(frame, use->rgb, (size_t)w * h * 3);
    image_free(&img);
    image_free(&small);
    if (r != STRATA_OK && r != STRATA_E_NOMEM && add_skipped(ds, skip))
        r = STRATA_E_NOMEM; /* add_skipped freed skip */
    return r == STRATA_OK ? 1 : r == STRATA_E_NOMEM ? STRATA_E_NOMEM : 0;
}

static int check_size(int w, int h, char *err)
{
    if (w <= 0 || h <= 0 || w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE ||
        (long)w * h > IMAGE_MAX_PIXELS)
        return strata_fail(err, STRATA_E_ARG, "cannot load images at %dx%d pixels", w, h);
    return 0;
}

int dataset_decode(struct dataset *ds, int i, int w, int h, uint8_t *frame, char *err)
{
    assert(ds && i >= 0 && i < ds->n && frame);
    int rc = check_size(w, h, err);
    if (rc < 0)
        return rc;
    rc = decode_item(ds, i, w, h, frame);
    return rc == STRATA_E_NOMEM
               ? strata_fail(err, rc, "out of memory loading %s", ds->items[i].path)
               : rc;
}

int dataset_load_images(struct dataset *ds, int w, int h, uint8_t *pixels,
                        void (*progress)(int done, int total, void *user), void *user,
                        char *err)
{
    assert(ds && (pixels || ds->n == 0));
    int rc = check_size(w, h, err);
    if (rc < 0)
        return rc;
    size_t frame = (size_t)w * h * 3;
    int total = ds->n, kept = 0, i;
    for (i = 0; i < total; i++) {
        struct dataset_item it = ds->items[i];
        int r = decode_item(ds, i, w, h, pixels + (size_t)kept * frame);
        if (r == 1) {
            ds->items[kept++] = it;
        } else if (r == STRATA_E_NOMEM) {
            /* Out of memory is not the file's fault: stop, and leave ds
             * consistent: this and the unprocessed items follow the kept
             * ones, so items and the first `kept` frames still line up. */
            memmove(ds->items + kept, ds->items + i, (size_t)(total - i) * sizeof *ds->items);
            ds->n = kept + (total - i);
            return strata_fail(err, STRATA_E_NOMEM, "out of memory loading %s", it.path);
        } else {
            free(it.path);
            free(it.name);
        }
        if (progress)
            progress(i + 1, total, user);
    }
    ds->n = kept;
    return kept;
}
