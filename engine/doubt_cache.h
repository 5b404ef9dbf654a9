/*
 * doubt_cache.h — doubt models kept on disk: a calibration (doubt_calibrate.h)
 * is computed once per model, data and parameters, and read back after.
 *
 * Files are cachefile.h frames (magic "STRDOUBT", DOUBT_FORMAT_VERSION, the
 * key, checksums) named <cache_dir>/<model-id>-<key>.doubt. The key covers
 * the model's JSON and parameters, every train file's name, size and
 * modification time, the doubt parameters, the resolved hold-out and the
 * score's recipe (doubt_recipe), so a stale file is never read.
 *
 * The caller owns the doubt model it gets back (doubt_free).
 */
#ifndef STRATA_DOUBT_CACHE_H
#define STRATA_DOUBT_CACHE_H

#include <stdint.h>

#include "analysis.h"
#include "doubt_calibrate.h"
#include "doubt_score.h"
#include "model.h"

#define DOUBT_FORMAT_VERSION 3 /* 2: rows hold per-channel spatial std too; 3: cachefile.h framing */

/* Loads the doubt model for (m, p, train data) from
 * <cache_dir>/<model-id>-<key>.doubt if a valid one is there, else
 * calibrates and writes it (temporary file + rename; folder created). A
 * refused or unwritable cache file is not an error: the reason goes to
 * out->cache_note. cache_dir NULL disables the cache. Fails like
 * doubt_calibrate. */
int doubt_load_or_calibrate(struct model *m, const struct doubt_params *p, const char *data_root,
                            const char *cache_dir, struct doubt_model *out,
                            analysis_progress_fn progress, void *user, char *err);

/* Writes / reads a doubt model (format in doubt_cache.c: magic, version,
 * key, checksum). doubt_load refuses a file with another key when
 * expect_key is not 0 (STRATA_E_FORMAT), a corrupt or truncated one
 * (STRATA_E_FORMAT), another version (STRATA_E_UNSUPPORTED); missing file:
 * STRATA_E_NOTFOUND; unreadable: STRATA_E_IO. */
int doubt_save(const struct doubt_model *dm, const char *path, char *err);
int doubt_load(const char *path, uint64_t expect_key, struct doubt_model *out, char *err);

#endif
