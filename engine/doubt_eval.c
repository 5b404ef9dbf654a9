/*
 * doubt_eval.c — the out-of-distribution evaluation of a doubt model
 * (doubt_eval.h, docs/doubt.md): the metrics, the image sets (dataset test
 * splits and folders) scored in batches, and the cached default evaluation
 * of the model page.
 */
#include "doubt_eval.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cachefile.h"
#include "dataset.h"
#include "doubt_cache.h"
#include "hash.h"
#include "image.h"

static const char EVAL_MAGIC[8] = {'S', 'T', 'R', 'D', 'E', 'V', 'A', 'L'};

const char *doubt_method_name(enum doubt_method m)
{
    switch (m) {
    case DOUBT_METHOD_DOUBT: return "doubt";
    case DOUBT_METHOD_MSP: return "msp";
    case DOUBT_METHOD_ENERGY: return "energy";
    case DOUBT_N_METHODS: break;
    }
    return "?";
}

/* ---- evaluation metrics ------------------------------------------------------------------ */

struct scored {
    float s;
    int pos;
};

static int cmp_scored(const void *a, const void *b)
{
    float x = ((const struct scored *)a)->s, y = ((const struct scored *)b)->s;
    return (x > y) - (x < y);
}

double doubt_auroc(const float *neg, int n_neg, const float *pos, int n_pos)
{
    if (n_neg <= 0 || n_pos <= 0)
        return NAN;
    int n = n_neg + n_pos;
    struct scored *v = malloc((size_t)n * sizeof *v);
    if (!v)
        return NAN;
    for (int i = 0; i < n_neg; i++) {
        assert(!isnan(neg[i]));
        v[i] = (struct scored){neg[i], 0};
    }
    for (int i = 0; i < n_pos; i++) {
        assert(!isnan(pos[i]));
        v[n_neg + i] = (struct scored){pos[i], 1};
    }
    qsort(v, (size_t)n, sizeof *v, cmp_scored);
    /* Mann-Whitney: the sum of the positives' ranks (1-based, tied values
     * sharing the mean rank of their run), less its minimum. */
    double rank_sum = 0;
    for (int i = 0; i < n;) {
        int j = i;
        while (j + 1 < n && v[j + 1].s == v[i].s)
            j++;
        double mid = (i + j) / 2.0 + 1;
        for (int t = i; t <= j; t++)
            if (v[t].pos)
                rank_sum += mid;
        i = j + 1;
    }
    free(v);
    double u = rank_sum - (double)n_pos * (n_pos + 1) / 2;
    return u / ((double)n_pos * n_neg);
}

static int cmp_float_desc(const void *a, const void *b)
{
    return doubt_cmp_float(b, a);
}

double doubt_fpr_at_tpr(const float *neg, int n_neg, const float *pos, int n_pos, double tpr)
{
    if (n_neg <= 0 || n_pos <= 0)
        return NAN;
    float *p = malloc((size_t)n_pos * sizeof *p);
    if (!p)
        return NAN;
    memcpy(p, pos, (size_t)n_pos * sizeof *p);
    qsort(p, (size_t)n_pos, sizeof *p, cmp_float_desc);
    /* The need-th largest positive score is the largest threshold that
     * flags at least `need` positives (scores >= t are flagged). The small
     * margin keeps 0.95 * 20 = 19 from becoming 20 through rounding. */
    int need = (int)ceil(tpr * n_pos - 1e-9);
    if (need < 1)
        need = 1;
    if (need > n_pos)
        need = n_pos;
    float t = p[need - 1];
    free(p);
    int flagged = 0;
    for (int i = 0; i < n_neg; i++)
        flagged += neg[i] >= t;
    return (double)flagged / n_neg;
}

void doubt_report_metrics(struct doubt_report *r)
{
    int n_right = 0, n_wrong = 0;
    for (int i = 0; i < r->n_id; i++)
        n_right += r->id_correct[i] != 0;
    n_wrong = r->n_id - n_right;
    r->accuracy = r->n_id ? (double)n_right / r->n_id : NAN;
    float *right = malloc((size_t)(n_right ? n_right : 1) * sizeof(float));
    float *wrong = malloc((size_t)(n_wrong ? n_wrong : 1) * sizeof(float));
    for (int k = 0; k < DOUBT_N_METHODS; k++) {
        r->auroc[k] = doubt_auroc(r->id_score[k], r->n_id, r->ood_score[k], r->n_ood);
        r->fpr95[k] = doubt_fpr_at_tpr(r->id_score[k], r->n_id, r->ood_score[k], r->n_ood, 0.95);
        r->auroc_errors[k] = NAN;
        if (right && wrong) {
            int a = 0, b = 0;
            for (int i = 0; i < r->n_id; i++) {
                if (r->id_correct[i])
                    right[a++] = r->id_score[k][i];
                else
                    wrong[b++] = r->id_score[k][i];
            }
            r->auroc_errors[k] = doubt_auroc(right, a, wrong, b);
        }
    }
    free(right);
    free(wrong);
}

/* ---- the evaluation run ------------------------------------------------------------------ */

/* A set of image files to score. */
struct source {
    char name[128];
    int ood;
    int n, cap;
    char **paths;   /* [n], owned */
    int *labels;    /* [n] for the in-distribution set, else NULL; owned */
};

struct sources {
    int n;
    struct source s[DOUBT_MAX_SOURCES];
};

static void sources_free(struct sources *ss)
{
    for (int i = 0; i < ss->n; i++) {
        for (int j = 0; j < ss->s[i].n; j++)
            free(ss->s[i].paths[j]);
        free(ss->s[i].paths);
        free(ss->s[i].labels);
    }
    memset(ss, 0, sizeof *ss);
}

static int source_add(struct source *s, const char *path)
{
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        char **np = realloc(s->paths, (size_t)cap * sizeof *np);
        if (!np)
            return STRATA_E_NOMEM;
        s->paths = np;
        s->cap = cap;
    }
    if (!(s->paths[s->n] = strdup(path)))
        return STRATA_E_NOMEM;
    s->n++;
    return 0;
}

static struct source *sources_new(struct sources *ss, const char *name, int ood, char *err)
{
    if (ss->n == DOUBT_MAX_SOURCES) {
        strata_fail(err, STRATA_E_ARG, "more than %d image sets to evaluate", DOUBT_MAX_SOURCES);
        return NULL;
    }
    int i = ss->n++;
    memset(&ss->s[i], 0, sizeof ss->s[i]);
    size_t len = strnlen(name, sizeof ss->s[i].name - 1);
    memcpy(ss->s[i].name, name, len);
    ss->s[i].ood = ood;
    return &ss->s[i];
}

/* A dataset split as a source (labels kept when `labels`). */
static int source_from_dataset(struct sources *ss, const char *root, const char *name, int ood,
                               int labels, char *err)
{
    struct dataset ds;
    int rc = dataset_open(&ds, root, name, "test", err);
    if (rc < 0)
        return rc;
    char title[128];
    snprintf(title, sizeof title, "%s/test", name);
    struct source *s = sources_new(ss, title, ood, err);
    if (!s) {
        dataset_free(&ds);
        return STRATA_E_ARG;
    }
    if (labels && !(s->labels = malloc((size_t)(ds.n ? ds.n : 1) * sizeof(int))))
        rc = STRATA_E_NOMEM;
    for (int i = 0; rc == 0 && i < ds.n; i++) {
        if (labels)
            s->labels[i] = ds.items[i].label;
        rc = source_add(s, ds.items[i].path);
    }
    dataset_free(&ds);
    if (rc == STRATA_E_NOMEM)
        return strata_fail(err, rc, "out of memory listing %s", title);
    return rc;
}

static int has_image_ext(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every image file under dir, recursively (hidden entries skipped). */
static int walk(struct source *s, const char *dir, int depth, char *err)
{
    if (depth > 32)
        return strata_fail(err, STRATA_E_LIMIT, "%s: folders nested too deep", dir);
    DIR *d = opendir(dir);
    if (!d)
        return strata_fail(err, STRATA_E_IO, "%s: cannot read: %s", dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
            continue;
        struct stat st;
        if (stat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            rc = walk(s, path, depth + 1, err);
        else if (S_ISREG(st.st_mode) && has_image_ext(e->d_name) && source_add(s, path) < 0)
            rc = strata_fail(err, STRATA_E_NOMEM, "out of memory listing %s", dir);
    }
    closedir(d);
    return rc;
}

/* The sets doubt-eval scores: the model's test split, the other datasets'
 * test splits (default_ood), and the given folders. */
static int list_sources(const struct model *m, const char *root, const char *ood_root,
                        const char *const *ood_dirs, int n_ood_dirs, int default_ood,
                        struct sources *ss, char *err)
{
    memset(ss, 0, sizeof *ss);
    int rc = source_from_dataset(ss, root, m->dataset, 0, 1, err);
    if (rc < 0)
        return rc;
    int same_root = !ood_root || strcmp(ood_root, root) == 0;
    if (!ood_root)
        ood_root = root;
    if (default_ood) {
        DIR *d = opendir(ood_root);
        if (!d)
            return strata_fail(err, STRATA_E_IO, "%s: cannot read: %s", ood_root, strerror(errno));
        char *names[256];
        int nn = 0;
        struct dirent *e;
        while ((e = readdir(d)) && nn < 256) {
            if (e->d_name[0] == '.' || (same_root && strcmp(e->d_name, m->dataset) == 0))
                continue;
            char test[4096];
            struct stat st;
            snprintf(test, sizeof test, "%s/%s/test", ood_root, e->d_name);
            if (stat(test, &st) == 0 && S_ISDIR(st.st_mode) && (names[nn] = strdup(e->d_name)))
                nn++;
        }
        closedir(d);
        qsort(names, (size_t)nn, sizeof *names, cmp_str);
        for (int i = 0; i < nn; i++) {
            if (rc == 0) {
                rc = source_from_dataset(ss, ood_root, names[i], 1, 0, err);
                if (rc == STRATA_E_NOTFOUND) /* a test folder without images */
                    rc = 0;
            }
            free(names[i]);
        }
        if (rc < 0)
            return rc;
    }
    for (int i = 0; i < n_ood_dirs; i++) {
        struct source *s = sources_new(ss, ood_dirs[i], 1, err);
        if (!s)
            return STRATA_E_ARG;
        if ((rc = walk(s, ood_dirs[i], 0, err)) < 0)
            return rc;
        if (s->n == 0)
            return strata_fail(err, STRATA_E_NOTFOUND, "%s: no .jpg, .jpeg or .png image in it",
                               ood_dirs[i]);
        qsort(s->paths, (size_t)s->n, sizeof *s->paths, cmp_str);
    }
    int n_ood = 0;
    for (int i = 0; i < ss->n; i++)
        n_ood += ss->s[i].ood ? ss->s[i].n : 0;
    if (n_ood == 0)
        return strata_fail(err, STRATA_E_ARG,
                           "no out-of-distribution image: no other dataset under %s and no --ood folder",
                           ood_root);
    return 0;
}

/* Decodes the files of a source at the model's input size; unreadable files
 * are skipped (their count added to *skipped). Returns the number kept
 * (labels compacted alike) or a negative status. */
/* Images scored at a time: a source is decoded and scored chunk by chunk,
 * so memory holds one chunk of images whatever the source's size (a
 * multiple of the scoring batch, so that the batches are the same as for
 * the whole source). */
#define EVAL_CHUNK 256

/* Decodes images [first, first + count) of s into pixels, their labels
 * (in-distribution sources) into labels; returns how many were readable. */
static int load_source(const struct model *m, struct source *s, int first, int count,
                       uint8_t *pixels, int *labels, int *skipped, analysis_progress_fn progress,
                       void *user, long *done, long total, char *err)
{
    size_t frame = shape_size(m->input);
    int kept = 0;
    for (int i = first; i < first + count; i++) {
        struct image img = {0}, small = {0};
        char why[STRATA_ERR_LEN];
        int r = image_load(s->paths[i], &img, why);
        const struct image *use = &img;
        if (r == 0 && (img.w != m->input.w || img.h != m->input.h)) {
            r = image_resize(&img, m->input.w, m->input.h, &small, why);
            use = &small;
        }
        if (r == 0) {
            memcpy(pixels + (size_t)kept * frame, use->rgb, frame);
            labels[kept] = s->labels ? s->labels[i] : -1;
            kept++;
        } else {
            (*skipped)++;
        }
        image_free(&img);
        image_free(&small);
        if (r == STRATA_E_NOMEM)
            return strata_fail(err, r, "out of memory decoding %s", s->paths[i]);
        ++*done;
        if (progress && progress(user, "loading images", *done, total))
            return strata_fail(err, STRATA_E_INTERRUPTED, "doubt evaluation interrupted");
    }
    return kept;
}

void doubt_report_free(struct doubt_report *r)
{
    if (!r)
        return;
    for (int k = 0; k < DOUBT_N_METHODS; k++) {
        free(r->id_score[k]);
        free(r->ood_score[k]);
    }
    free(r->id_correct);
    memset(r, 0, sizeof *r);
}

static int report_alloc(struct doubt_report *r, int n_id, int n_ood)
{
    r->n_id = n_id;
    r->n_ood = n_ood;
    int ok = 1;
    for (int k = 0; k < DOUBT_N_METHODS; k++) {
        r->id_score[k] = malloc((size_t)(n_id ? n_id : 1) * sizeof(float));
        r->ood_score[k] = malloc((size_t)(n_ood ? n_ood : 1) * sizeof(float));
        ok = ok && r->id_score[k] && r->ood_score[k];
    }
    r->id_correct = malloc((size_t)(n_id ? n_id : 1));
    return ok && r->id_correct ? 0 : STRATA_E_NOMEM;
}

/* Scores every source into a fresh report. */
static int run_sources(const struct doubt_model *dm, struct model *m, struct sources *ss,
                       struct doubt_report *out, analysis_progress_fn progress, void *user,
                       char *err)
{
    memset(out, 0, sizeof *out);
    snprintf(out->model_id, sizeof out->model_id, "%s", m->id);
    long total = 0, done = 0;
    int n_id = 0, n_ood = 0;
    for (int i = 0; i < ss->n; i++) {
        total += ss->s[i].n;
        *(ss->s[i].ood ? &n_ood : &n_id) += ss->s[i].n;
    }
    const int max_n = EVAL_CHUNK;
    size_t frame = shape_size(m->input);
    uint8_t *pixels = malloc((size_t)max_n * frame);
    float *doubt = malloc((size_t)max_n * sizeof(float)), *msp = malloc((size_t)max_n * sizeof(float));
    float *energy = malloc((size_t)max_n * sizeof(float));
    int *pred = malloc((size_t)max_n * sizeof(int)), *labels = malloc((size_t)max_n * sizeof(int));
    int rc = 0;
    if (!pixels || !doubt || !msp || !energy || !pred || !labels ||
        report_alloc(out, n_id, n_ood) < 0) {
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory for %ld images", total);
        goto done;
    }
    out->n_id = out->n_ood = 0;
    for (int i = 0; i < ss->n; i++) {
        struct source *s = &ss->s[i];
        int skipped = 0, kept_all = 0;
        for (int first = 0; first < s->n; first += EVAL_CHUNK) {
            int count = s->n - first < EVAL_CHUNK ? s->n - first : EVAL_CHUNK;
            int kept = load_source(m, s, first, count, pixels, labels, &skipped, progress, user,
                                   &done, total, err);
            if (kept < 0) {
                rc = kept;
                goto done;
            }
            if ((rc = doubt_score_images(dm, m, pixels, kept, doubt, msp, energy, pred, err)) < 0)
                goto done;
            for (int j = 0; j < kept; j++) {
                int at = s->ood ? out->n_ood++ : out->n_id++;
                float **dst = s->ood ? out->ood_score : out->id_score;
                dst[DOUBT_METHOD_DOUBT][at] = doubt[j];
                dst[DOUBT_METHOD_MSP][at] = 1 - msp[j];
                dst[DOUBT_METHOD_ENERGY][at] = energy[j];
                if (!s->ood)
                    out->id_correct[at] = pred[j] == labels[j];
            }
            kept_all += kept;
        }
        struct doubt_eval_source *es = &out->sources[out->n_sources++];
        snprintf(es->name, sizeof es->name, "%s", s->name);
        es->ood = s->ood;
        es->n = kept_all;
    }
    if (out->n_ood == 0 || out->n_id == 0) {
        rc = strata_fail(err, STRATA_E_ARG, "no readable %s image to evaluate on",
                         out->n_id ? "out-of-distribution" : "in-distribution");
        goto done;
    }
    doubt_report_metrics(out);
done:
    free(pixels);
    free(doubt);
    free(msp);
    free(energy);
    free(pred);
    free(labels);
    if (rc < 0)
        doubt_report_free(out);
    return rc;
}

int doubt_report_run(const struct doubt_model *dm, struct model *m, const char *data_root,
                     const char *const *ood_dirs, int n_ood_dirs, int default_ood,
                     struct doubt_report *out, analysis_progress_fn progress, void *user,
                     char *err)
{
    memset(out, 0, sizeof *out);
    struct sources ss;
    int rc = list_sources(m, data_root, NULL, ood_dirs, n_ood_dirs, default_ood, &ss, err);
    if (rc == 0)
        rc = run_sources(dm, m, &ss, out, progress, user, err);
    sources_free(&ss);
    return rc;
}

/* The key of a default evaluation: the doubt model (its key and calibration
 * values), the model's parameters, and every listed file. */
static int report_key(const struct doubt_model *dm, const struct model *m,
                      const struct sources *ss, uint64_t *key, char *err)
{
    uint64_t h = hash_str(HASH_FNV_OFFSET, "strata-doubteval");
    h = hash_u64(h, DOUBT_FORMAT_VERSION);
    h = hash_str(h, doubt_recipe);
    h = hash_u64(h, dm->key);
    h = hash_u64(h, hash_checksum64(dm->cal_alpha, (size_t)dm->n_cal * sizeof(float)));
    h = hash_str(h, m->id);
    h = hash_u64(h, hash_checksum64(m->params, m->n_params * sizeof(float)));
    for (int i = 0; i < ss->n; i++) {
        const struct source *s = &ss->s[i];
        h = hash_str(h, s->name);
        h = hash_u64(h, (uint64_t)s->ood);
        h = hash_u64(h, (uint64_t)s->n);
        for (int j = 0; j < s->n; j++) {
            struct stat st;
            if (stat(s->paths[j], &st) != 0)
                return strata_fail(err, STRATA_E_IO, "%s: %s", s->paths[j], strerror(errno));
            h = hash_str(h, s->paths[j]);
            h = hash_u64(h, (uint64_t)st.st_size);
            h = hash_u64(h, (uint64_t)st.st_mtim.tv_sec);
            h = hash_u64(h, (uint64_t)st.st_mtim.tv_nsec);
        }
    }
    *key = h ? h : 1;
    return 0;
}

static int report_save(const struct doubt_report *r, uint64_t key, const char *path, char *err)
{
    struct cachefile_writer w = {0};
    cachefile_put_str(&w, r->model_id);
    cachefile_put_i32(&w, r->n_id);
    cachefile_put_i32(&w, r->n_ood);
    cachefile_put_i32(&w, r->n_sources);
    for (int i = 0; i < r->n_sources; i++) {
        cachefile_put_str(&w, r->sources[i].name);
        cachefile_put_i32(&w, r->sources[i].ood);
        cachefile_put_i32(&w, r->sources[i].n);
    }
    for (int k = 0; k < DOUBT_N_METHODS; k++) {
        cachefile_put(&w, r->id_score[k], (size_t)r->n_id * sizeof(float));
        cachefile_put(&w, r->ood_score[k], (size_t)r->n_ood * sizeof(float));
    }
    cachefile_put(&w, r->id_correct, (size_t)r->n_id);
    int rc = cachefile_write(path, EVAL_MAGIC, DOUBT_FORMAT_VERSION, key, &w, err);
    free(w.p);
    return rc;
}

static int report_load(const char *path, uint64_t key, struct doubt_report *out, char *err)
{
    memset(out, 0, sizeof *out);
    uint8_t *file;
    struct cachefile_reader r;
    uint64_t got;
    int rc = cachefile_read(path, EVAL_MAGIC, "doubt evaluation", DOUBT_FORMAT_VERSION, key, &file,
                            &r, &got, err);
    if (rc < 0)
        return rc;
    cachefile_get_str(&r, out->model_id, sizeof out->model_id);
    int n_id = cachefile_get_i32(&r), n_ood = cachefile_get_i32(&r);
    out->n_sources = cachefile_get_i32(&r);
    if (r.bad || n_id < 1 || n_ood < 1 || out->n_sources < 2 || out->n_sources > DOUBT_MAX_SOURCES ||
        (size_t)n_id + (size_t)n_ood > r.left) {
        out->n_sources = 0;
        goto corrupt;
    }
    long sum_id = 0, sum_ood = 0;
    for (int i = 0; i < out->n_sources; i++) {
        cachefile_get_str(&r, out->sources[i].name, sizeof out->sources[i].name);
        out->sources[i].ood = cachefile_get_i32(&r);
        out->sources[i].n = cachefile_get_i32(&r);
        *(out->sources[i].ood ? &sum_ood : &sum_id) += out->sources[i].n;
    }
    if (r.bad || sum_id != n_id || sum_ood != n_ood || report_alloc(out, n_id, n_ood) < 0)
        goto corrupt;
    for (int k = 0; k < DOUBT_N_METHODS; k++) {
        cachefile_get(&r, out->id_score[k], (size_t)n_id * sizeof(float));
        cachefile_get(&r, out->ood_score[k], (size_t)n_ood * sizeof(float));
        if (!cachefile_all_finite(out->id_score[k], (size_t)n_id) || !cachefile_all_finite(out->ood_score[k], (size_t)n_ood))
            r.bad = 1;
    }
    cachefile_get(&r, out->id_correct, (size_t)n_id);
    if (r.bad || r.left != 0)
        goto corrupt;
    free(file);
    doubt_report_metrics(out);
    return 0;
corrupt:
    free(file);
    doubt_report_free(out);
    return strata_fail(err, STRATA_E_FORMAT, "%s: inconsistent doubt evaluation (corrupt)", path);
}

int doubt_report_load_or_run(const struct doubt_model *dm, struct model *m,
                             const char *data_root, const char *ood_root, const char *cache_dir,
                             struct doubt_report *out, analysis_progress_fn progress,
                             void *user, char *err)
{
    memset(out, 0, sizeof *out);
    struct sources ss;
    uint64_t key = 0;
    char path[1024] = "";
    int rc = list_sources(m, data_root, ood_root, NULL, 0, 1, &ss, err);
    if (rc == 0 && cache_dir && (rc = report_key(dm, m, &ss, &key, err)) == 0) {
        if (snprintf(path, sizeof path, "%s/%s-%016llx.doubteval", cache_dir, m->id,
                     (unsigned long long)key) >= (int)sizeof path)
            rc = strata_fail(err, STRATA_E_ARG, "cache folder name too long");
        else if (report_load(path, key, out, err) == 0 && strcmp(out->model_id, m->id) == 0) {
            sources_free(&ss);
            return 0;
        }
        doubt_report_free(out);
    }
    if (rc == 0)
        rc = run_sources(dm, m, &ss, out, progress, user, err);
    sources_free(&ss);
    if (rc == 0 && cache_dir) {
        char werr[STRATA_ERR_LEN];
        /* An unwritable cache only costs the next caller the computation. */
        if (analysis_cache_create(cache_dir, werr) == 0)
            report_save(out, key, path, werr);
    }
    return rc;
}
