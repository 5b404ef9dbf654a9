/*
 * doubt_cache.c — doubt models on disk (doubt_cache.h): the file's payload,
 * read back with every count, statistic and array checked, and the cache
 * that calibrates only when no valid file is there.
 */
#include "doubt_cache.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cachefile.h"
#include "hash.h"

static const char DOUBT_MAGIC[8] = {'S', 'T', 'R', 'D', 'O', 'U', 'B', 'T'};

/* ---- the file --------------------------------------------------------------------------- */

int doubt_save(const struct doubt_model *dm, const char *path, char *err)
{
    struct cachefile_writer w = {0};
    int C = dm->n_classes;
    size_t nr = (size_t)dm->n_ref, nc = (size_t)dm->n_cal;
    cachefile_put_str(&w, dm->model_id);
    cachefile_put_i32(&w, dm->grid);
    cachefile_put_f32(&w, dm->shrinkage);
    cachefile_put_f32(&w, dm->validation_split);
    cachefile_put_u64(&w, dm->split_seed);
    cachefile_put_i32(&w, C);
    cachefile_put_i32(&w, dm->n_ref);
    cachefile_put_i32(&w, dm->n_cal);
    cachefile_put_i32(&w, dm->n_layers);
    cachefile_put_f64(&w, dm->seconds);
    cachefile_put_f32(&w, dm->energy_median);
    cachefile_put_f32(&w, dm->energy_scale);
    cachefile_put(&w, dm->cal_alpha, nc * sizeof(float));
    for (int l = 0; l < dm->n_layers; l++) {
        const struct doubt_layer_ref *R = &dm->layers[l];
        size_t d = (size_t)R->d;
        cachefile_put_i32(&w, R->layer);
        cachefile_put_str(&w, R->name);
        cachefile_put_i32(&w, R->d);
        cachefile_put_i32(&w, R->grid);
        cachefile_put_i32(&w, R->in_distance);
        cachefile_put_f32(&w, R->knn_median);
        cachefile_put_f32(&w, R->knn_scale);
        cachefile_put_f32(&w, R->maha_median);
        cachefile_put_f32(&w, R->maha_scale);
        cachefile_put(&w, R->ref, nr * d * sizeof(float));
        cachefile_put(&w, R->ref_norm2, nr * sizeof(float));
        cachefile_put(&w, R->mean, d * sizeof(float));
        cachefile_put(&w, R->white, d * d * sizeof(float));
        cachefile_put(&w, R->centres, (size_t)C * d * sizeof(float));
        cachefile_put(&w, R->cal_z, nc * sizeof(float));
    }
    int rc = cachefile_write(path, DOUBT_MAGIC, DOUBT_FORMAT_VERSION, dm->key, &w, err);
    free(w.p);
    return rc;
}

static int sorted_finite(const float *v, int n)
{
    for (int i = 0; i < n; i++)
        if (!isfinite(v[i]) || (i && v[i] < v[i - 1]))
            return 0;
    return 1;
}

/* A positive finite spread and a finite non-negative median. */
static int stats_ok(float median, float scale)
{
    return isfinite(median) && median >= 0 && isfinite(scale) && scale > 0;
}

int doubt_load(const char *path, uint64_t expect_key, struct doubt_model *out, char *err)
{
    memset(out, 0, sizeof *out);
    uint8_t *file;
    struct cachefile_reader r;
    uint64_t key;
    int rc = cachefile_read(path, DOUBT_MAGIC, "doubt", DOUBT_FORMAT_VERSION, expect_key, &file,
                            &r, &key, err);
    if (rc < 0)
        return rc;
    cachefile_get_str(&r, out->model_id, sizeof out->model_id);
    out->grid = cachefile_get_i32(&r);
    out->shrinkage = cachefile_get_f32(&r);
    out->validation_split = cachefile_get_f32(&r);
    out->split_seed = cachefile_get_u64(&r);
    int C = out->n_classes = cachefile_get_i32(&r);
    out->n_ref = cachefile_get_i32(&r);
    out->n_cal = cachefile_get_i32(&r);
    int L = cachefile_get_i32(&r);
    out->seconds = cachefile_get_f64(&r);
    out->energy_median = cachefile_get_f32(&r);
    out->energy_scale = cachefile_get_f32(&r);
    if (r.bad || out->grid < 1 || out->grid > ANALYSIS_MAX_GRID || C < 1 || C > MODEL_MAX_CLASSES ||
        out->n_ref < 2 || out->n_cal < 2 || L < 1 || L > MODEL_MAX_LAYERS ||
        !isfinite(out->energy_median) || !(out->energy_scale > 0) || !isfinite(out->energy_scale))
        goto corrupt;
    size_t nr = (size_t)out->n_ref, nc = (size_t)out->n_cal;
    out->cal_alpha = cachefile_get_array(&r, nc, sizeof(float));
    out->layers = calloc((size_t)L, sizeof *out->layers);
    if (!out->layers)
        r.nomem = 1;
    else
        out->n_layers = L;
    int n_dist = 0;
    for (int l = 0; !r.bad && !r.nomem && l < L; l++) {
        struct doubt_layer_ref *R = &out->layers[l];
        R->layer = cachefile_get_i32(&r);
        cachefile_get_str(&r, R->name, sizeof R->name);
        R->d = cachefile_get_i32(&r);
        R->grid = cachefile_get_i32(&r);
        R->in_distance = cachefile_get_i32(&r);
        R->knn_median = cachefile_get_f32(&r);
        R->knn_scale = cachefile_get_f32(&r);
        R->maha_median = cachefile_get_f32(&r);
        R->maha_scale = cachefile_get_f32(&r);
        if (r.bad || R->layer < 0 || R->layer >= MODEL_MAX_LAYERS || R->d < 1 || R->d > (1 << 14) ||
            (R->in_distance != 0 && R->in_distance != 1) || !stats_ok(R->knn_median, R->knn_scale) ||
            !stats_ok(R->maha_median, R->maha_scale)) {
            r.bad = 1;
            break;
        }
        n_dist += R->in_distance;
        size_t d = (size_t)R->d;
        R->ref = cachefile_get_array(&r, nr * d, sizeof(float));
        R->ref_norm2 = cachefile_get_array(&r, nr, sizeof(float));
        R->mean = cachefile_get_array(&r, d, sizeof(float));
        R->white = cachefile_get_array(&r, d * d, sizeof(float));
        R->centres = cachefile_get_array(&r, (size_t)C * d, sizeof(float));
        R->cal_z = cachefile_get_array(&r, nc, sizeof(float));
        if (!r.bad && !r.nomem && !(cachefile_all_finite(R->ref, nr * d) && cachefile_all_finite(R->ref_norm2, nr) &&
                        cachefile_all_finite(R->mean, d) && cachefile_all_finite(R->white, d * d) &&
                        cachefile_all_finite(R->centres, (size_t)C * d) && sorted_finite(R->cal_z, out->n_cal)))
            r.bad = 1;
    }
    if (r.nomem) {
        free(file);
        doubt_free(out);
        return strata_fail(err, STRATA_E_NOMEM, "%s: out of memory", path);
    }
    if (r.bad || r.left != 0 || n_dist == 0 || !sorted_finite(out->cal_alpha, out->n_cal))
        goto corrupt;
    free(file);
    out->key = key;
    out->cached = 1;
    snprintf(out->cache_path, sizeof out->cache_path, "%s", path);
    return 0;
corrupt:
    free(file);
    doubt_free(out);
    return strata_fail(err, STRATA_E_FORMAT, "%s: inconsistent doubt model (corrupt)", path);
}

/* ---- the cache ------------------------------------------------------------------------------ */

/* The key of a doubt model: the analysis cache key of the train split with
 * the same grid (it covers the model's JSON and every parameter, and every
 * listed data file by name, size and modification time), mixed with the
 * doubt parameters and the resolved hold-out. */
static int doubt_key(const struct model *m, const struct doubt_params *p,
                     const struct doubt_data *d, uint64_t *key, char *err)
{
    struct analysis_params ap;
    analysis_params_default(&ap);
    snprintf(ap.split, sizeof ap.split, "train");
    ap.grid = p->grid;
    uint64_t h;
    int rc = analysis_cache_key(m, &ap, &d->train, &h, err);
    if (rc < 0)
        return rc;
    h = hash_str(hash_u64(HASH_FNV_OFFSET, h), "strata-doubt");
    h = hash_u64(h, DOUBT_FORMAT_VERSION);
    h = hash_str(h, doubt_recipe);
    uint32_t sbits;
    memcpy(&sbits, &p->shrinkage, sizeof sbits);
    h = hash_u64(h, sbits);
    uint32_t fbits;
    memcpy(&fbits, &d->fraction, sizeof fbits);
    h = hash_u64(h, fbits);
    h = hash_u64(h, d->seed);
    *key = h ? h : 1;
    return 0;
}

int doubt_load_or_calibrate(struct model *m, const struct doubt_params *p, const char *data_root,
                            const char *cache_dir, struct doubt_model *out,
                            analysis_progress_fn progress, void *user, char *err)
{
    memset(out, 0, sizeof *out);
    struct doubt_data d;
    uint64_t key;
    int rc = doubt_data_open(m, p, data_root, &d, err);
    if (rc < 0)
        return rc;
    if ((rc = doubt_key(m, p, &d, &key, err)) < 0) {
        doubt_data_free(&d);
        return rc;
    }
    char path[1024] = "", note[STRATA_ERR_LEN] = "";
    if (cache_dir) {
        if (snprintf(path, sizeof path, "%s/%s-%016llx.doubt", cache_dir, m->id,
                     (unsigned long long)key) >= (int)sizeof path) {
            doubt_data_free(&d);
            return strata_fail(err, STRATA_E_ARG, "cache folder name too long");
        }
        char lerr[STRATA_ERR_LEN];
        int lrc = doubt_load(path, key, out, lerr);
        if (lrc == 0 && strcmp(out->model_id, m->id) == 0 && doubt_check_model(out, m, lerr) == 0) {
            doubt_data_free(&d);
            return 0;
        }
        if (lrc == 0) {
            doubt_free(out);
            snprintf(note, sizeof note, "%s: made for another model; recomputed", path);
        } else if (lrc != STRATA_E_NOTFOUND) {
            snprintf(note, sizeof note, "%.400s; recomputed", lerr);
        }
    }
    rc = doubt_calibrate_data(m, p, &d, out, progress, user, err);
    doubt_data_free(&d);
    if (rc < 0)
        return rc;
    out->key = key;
    if (cache_dir) {
        char werr[STRATA_ERR_LEN];
        size_t len = strlen(note);
        if (analysis_cache_create(cache_dir, werr) < 0 || doubt_save(out, path, werr) < 0)
            snprintf(note + len, sizeof note - len, "%scache not written: %.400s",
                     len ? "; " : "", werr);
        else
            snprintf(out->cache_path, sizeof out->cache_path, "%s", path);
    }
    snprintf(out->cache_note, sizeof out->cache_note, "%s", note);
    return 0;
}
