/*
 * image_archive.h — an uploaded archive of labelled photos (.zip, .tar,
 * .tar.gz, read with libarchive) unpacked into a dataset folder:
 *
 *     <dest>/train/<class>/<file>   <dest>/test/<class>/<file>
 *
 * The archive holds class folders of .jpg/.jpeg/.png files, either inside
 * train/ and test/ folders or not (then image_archive_extract keeps 20 % of
 * each class, chosen with a fixed seed, as the test split, and says so). A
 * common top folder ("felines/train/cat/1.jpg") is allowed.
 *
 * Archives are hostile input. What is written is only ever a new regular
 * file under dest, named by strata (the entry's own name when it is plain,
 * else image-<n>.<ext>); nothing is followed or overwritten. Entries are
 * skipped, each with its reason in the report, when they are: absolute or
 * contain "..", links (symbolic or hard), devices, FIFOs or sockets, hidden
 * (a component starting with '.', or __MACOSX), nested archives (never
 * opened), not JPEG or PNG (by extension and by their first bytes), not
 * inside a class folder, or directly in train/ or test/. The whole archive
 * is refused (STRATA_E_LIMIT) past max_entries entries or max_bytes
 * decompressed bytes, counted as they are read (headers are not trusted).
 */
#ifndef STRATA_IMAGE_ARCHIVE_H
#define STRATA_IMAGE_ARCHIVE_H

#include <stdint.h>

#include <jansson.h>

#include "status.h"

struct image_archive_limits {
    uint64_t max_entries; /* default 100,000 */
    uint64_t max_bytes;   /* decompressed, default 4 GiB */
};

/* The defaults above. Can't fail. */
void image_archive_limits_default(struct image_archive_limits *lim);

/* Skipped entries listed in the report, at most (n_skipped counts all). */
#define IMAGE_ARCHIVE_MAX_LISTED 100

/* Percent of each class kept for testing when the archive has no split. */
#define IMAGE_ARCHIVE_TEST_PERCENT 20

/*
 * Unpacks the archive at `path` into dest (an existing, empty folder).
 * On success returns 0 and *report (a new JSON object, the caller's):
 *   {"format": "ZIP 2.0 (deflation)", "entries": 1234, "bytes": 5678,
 *    "images": 1200, "split": "archive" | "made", "split_note": "...",
 *    "classes": [{"name": "cat", "train": 240, "test": 60}, ...],
 *    "skipped": [{"entry": "...", "reason": "..."}, ...], "n_skipped": 3}
 * Fails with err (and files left in dest, which the caller removes):
 *   STRATA_E_FORMAT  not an archive strata reads, corrupt, no image kept,
 *                    a single class, or a class without a training image;
 *   STRATA_E_LIMIT   over lim's entries or bytes;
 *   STRATA_E_IO      writing under dest failed;  STRATA_E_NOMEM.
 */
int image_archive_extract(const char *path, const char *dest,
                          const struct image_archive_limits *lim, json_t **report, char *err);

#endif
