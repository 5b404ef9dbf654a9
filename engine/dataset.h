/*
 * dataset.h — labelled image folders: root/<split>/<class>/<image>.{jpg,jpeg,png}.
 *
 * Classes are the sub-folders of the split, sorted by name; files within a
 * class are sorted by name. Listing does not decode; dataset_load_images
 * decodes, resizes and reports files it could not read, skipping them rather
 * than failing.
 */
#ifndef STRATA_DATASET_H
#define STRATA_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define DATASET_DEFAULT_ROOT "../shared/datasets"

struct dataset_item {
    char *path;     /* full path, owned */
    char *name;     /* "<class>/<file>", owned; the image's stable id */
    int label;      /* index into classes */
};

struct dataset {
    char *dir;          /* root/<name>/<split>, owned */
    int n_classes;
    char **classes;     /* [n_classes] sorted, owned */
    int n;
    struct dataset_item *items; /* [n], class-major then file order */
    int n_skipped;
    char **skipped;     /* [n_skipped] "path: reason" for files that failed to load */
};

/* The data directory: the --data value if given, else $STRATA_DATA, else
 * DATASET_DEFAULT_ROOT. Borrowed string. */
const char *dataset_root(const char *flag_value);

/* Lists root/<name>/<split>. Fails with STRATA_E_IO if the folder cannot be
 * read, STRATA_E_NOTFOUND if it holds no class with an image, STRATA_E_ARG if
 * name or split is not a plain folder name (no '/', not "." or ".."); ds is
 * left empty on failure. */
int dataset_open(struct dataset *ds, const char *root, const char *name, const char *split,
                 char *err);

void dataset_free(struct dataset *ds);

/* Decodes and resizes every item to w×h RGB8 into pixels[n * h * w * 3]
 * (caller allocates). Unreadable files are recorded in ds->skipped and
 * removed from ds->items (so items and pixels stay aligned). `progress`
 * (may be NULL) is called after each image with (done, total, user).
 * Returns the number of images kept, or a negative status (bad w/h give
 * STRATA_E_ARG). On STRATA_E_NOMEM, ds->items[0..kept) match the first kept
 * frames and the unprocessed items follow them. */
int dataset_load_images(struct dataset *ds, int w, int h, uint8_t *pixels,
                        void (*progress)(int done, int total, void *user), void *user,
                        char *err);

/* Whether a file name ends in .jpg, .jpeg or .png (any case). */
int dataset_is_image_name(const char *name);

/* The names in dir that are not hidden and are (after following links)
 * folders (want_dirs) or regular image files, sorted: *names (free with
 * dataset_names_free) and the count, or -errno (*names NULL). */
int dataset_list(const char *dir, int want_dirs, char ***names);
void dataset_names_free(char **names, int n);

/* Decodes item i alone at w x h into frame (w * h * 3 bytes, the caller's),
 * for a caller that streams a split rather than holding it whole. Returns
 * 1 (decoded), 0 (unreadable: recorded in ds->skipped; ds->items is left
 * as it is), or a negative status (STRATA_E_ARG for bad w/h, STRATA_E_NOMEM). */
int dataset_decode(struct dataset *ds, int i, int w, int h, uint8_t *frame, char *err);

#endif
