/*
 * doubt_calibrate.c — fitting a doubt model (doubt_calibrate.h,
 * docs/doubt.md): every reference image through the model once, its feature
 * rows at every probed layer kept for the neighbours and consumed by that
 * layer's Gaussian fit; then every held-out image, whose distances,
 * posteriors and energies give the medians, spreads and the sorted
 * nonconformities the score is calibrated against.
 */
#include "doubt_calibrate.h"

#include <assert.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "infer.h"
#include "rng.h"
#include "train.h"

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

void doubt_params_default(struct doubt_params *p)
{
    memset(p, 0, sizeof *p);
    p->shrinkage = DOUBT_DEFAULT_SHRINKAGE;
    p->grid = DOUBT_DEFAULT_GRID;
    p->validation_split = -1;
    p->split_seed = 0;
    p->batch = 32;
}

static int check_params(const struct doubt_params *p, char *err)
{
    if (!(p->shrinkage >= 0 && p->shrinkage < 1))
        return strata_fail(err, STRATA_E_ARG, "doubt: shrinkage %g out of range [0, 1)",
                           (double)p->shrinkage);
    if (p->grid < 1 || p->grid > ANALYSIS_MAX_GRID)
        return strata_fail(err, STRATA_E_ARG, "doubt: grid = %d out of range 1..%d", p->grid,
                           ANALYSIS_MAX_GRID);
    if (p->validation_split >= 1)
        return strata_fail(err, STRATA_E_ARG, "doubt: validation_split %g must be below 1",
                           (double)p->validation_split);
    if (p->batch < 1)
        return strata_fail(err, STRATA_E_ARG, "doubt: batch = %d must be positive", p->batch);
    return 0;
}

/* ---- the train / calibration split ------------------------------------------ */

int doubt_split_train(const int *labels, int n, int n_classes, float fraction, uint64_t seed,
                      uint8_t *is_cal)
{
    /* Mirrors stratified_split in train.c draw for draw: the generator is
     * seeded with the training seed and its first use is this one shuffle. */
    int *order = malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
    assert(order);
    for (int i = 0; i < n; i++)
        order[i] = i;
    struct rng r;
    rng_seed(&r, seed);
    rng_shuffle_int(&r, order, n);
    memset(is_cal, 0, (size_t)n);
    int held = 0;
    for (int c = 0; c < n_classes; c++) {
        int count = 0;
        for (int i = 0; i < n; i++)
            count += labels[i] == c;
        int hold = (int)lround(count * (double)fraction), taken = 0;
        for (int i = 0; i < n && taken < hold; i++)
            if (labels[order[i]] == c) {
                is_cal[order[i]] = 1;
                taken++;
                held++;
            }
    }
    free(order);
    return held;
}

/* ---- the probed layers --------------------------------------------------------- */

/* A layer is probed when it has features of its own (flatten and dropout
 * repeat the layer before them) and is not the output (its probabilities are
 * what MSP already looks at). */
static int is_probe(const struct model *m, int l)
{
    enum layer_kind k = m->layers[l].cfg.kind;
    return l < m->n_layers - 1 && k != LAYER_FLATTEN && k != LAYER_DROPOUT;
}

/* ---- calibration ------------------------------------------------------------------ */

static int report(analysis_progress_fn progress, void *user, const char *stage, long done,
                  long total, char *err)
{
    if (progress && progress(user, stage, done, total))
        return strata_fail(err, STRATA_E_INTERRUPTED, "doubt calibration interrupted");
    return 0;
}

/* Median and spread of log(v / median) over n values (tmp: n floats of
 * scratch): the interquartile range over 1.349 (the standard deviation of a
 * normal distribution), floored at 0.05 so that a layer whose distances
 * hardly vary cannot dominate the sum. */
static void log_stats(const float *v, int n, float *tmp, float *median, float *scale)
{
    memcpy(tmp, v, (size_t)n * sizeof *tmp);
    qsort(tmp, (size_t)n, sizeof *tmp, doubt_cmp_float);
    double med = doubt_quantile_sorted(tmp, n, 0.5);
    for (int i = 0; i < n; i++)
        tmp[i] = (float)log((tmp[i] + 1e-6) / (med + 1e-6));
    double iqr = doubt_quantile_sorted(tmp, n, 0.75) - doubt_quantile_sorted(tmp, n, 0.25);
    *median = (float)med;
    *scale = (float)fmax(iqr / 1.349, 0.05);
}

/* What the batches of a calibration write into (infer_images' user). */
struct batches {
    struct doubt_model *out;
    int grid;
    long total;             /* reference and held-out images, for the progress */
    struct doubt_scratch s;
    float *knn, *maha;      /* [n_cal * L] distances of the held-out images */
    float *post;            /* [n_cal * L * C] their posteriors */
    float *energy;          /* [n_cal] their energies */
    analysis_progress_fn progress;
    void *user;
    char *err;
};

/* Reference images [first, first + nb): their feature rows at every probed
 * layer. */
static int reference_batch(void *user, const struct model *m, const struct model_workspace *ws,
                           int first, int nb)
{
    struct batches *c = user;
    for (int l = 0; l < c->out->n_layers; l++) {
        struct doubt_layer_ref *R = &c->out->layers[l];
        doubt_layer_rows(ws, m, R->layer, c->grid, 0, nb, R->ref + (size_t)first * R->d);
    }
    return report(c->progress, c->user, "calibrating", first + nb, c->total, c->err);
}

/* Held-out images [first, first + nb): their distances, posteriors and
 * energies. */
static int held_out_batch(void *user, const struct model *m, const struct model_workspace *ws,
                          int first, int nb)
{
    struct batches *c = user;
    int L = c->out->n_layers, C = c->out->n_classes;
    struct doubt_scratch *s = &c->s;
    doubt_probe_batch(c->out, m, ws, 0, nb, s);
    memcpy(c->knn + (size_t)first * L, s->knn, (size_t)nb * L * sizeof(float));
    memcpy(c->maha + (size_t)first * L, s->maha, (size_t)nb * L * sizeof(float));
    memcpy(c->post + (size_t)first * L * C, s->post, (size_t)nb * L * C * sizeof(float));
    for (int i = 0; i < nb; i++) {
        int y;
        float msp;
        doubt_baselines(m, ws, i, &y, &msp, &c->energy[first + i]);
    }
    return report(c->progress, c->user, "calibrating", c->out->n_ref + first + nb, c->total,
                  c->err);
}

static int calibrate_core(struct model *m, const struct doubt_params *p,
                          const uint8_t *ref_pixels, const int *ref_labels, int n_ref,
                          const uint8_t *cal_pixels, const int *cal_labels, int n_cal,
                          struct doubt_model *out, analysis_progress_fn progress, void *user,
                          char *err)
{
    memset(out, 0, sizeof *out);
    int rc = check_params(p, err);
    if (rc < 0)
        return rc;
    int C = m->n_classes;
    if (n_ref < 2 || n_cal < 2)
        return strata_fail(err, STRATA_E_ARG,
                           "doubt: %d reference and %d held-out calibration images for %s; at "
                           "least 2 of each are needed", n_ref, n_cal, m->id);
    int count[MODEL_MAX_CLASSES] = {0};
    for (int i = 0; i < n_ref; i++) {
        if (ref_labels[i] < 0 || ref_labels[i] >= C)
            return strata_fail(err, STRATA_E_ARG, "doubt: label %d of reference image %d is not a class of %s",
                               ref_labels[i], i, m->id);
        count[ref_labels[i]]++;
    }
    for (int c = 0; c < C; c++)
        if (!count[c])
            return strata_fail(err, STRATA_E_ARG, "doubt: no reference image of class %s of %s",
                               m->classes[c], m->id);
    for (int i = 0; i < n_cal; i++)
        if (cal_labels[i] < 0 || cal_labels[i] >= C)
            return strata_fail(err, STRATA_E_ARG, "doubt: label %d of calibration image %d is not a class of %s",
                               cal_labels[i], i, m->id);
    int L = 0;
    for (int l = 0; l < m->n_layers; l++)
        L += is_probe(m, l);
    if (L == 0)
        return strata_fail(err, STRATA_E_ARG, "doubt: model %s has no hidden layer to probe", m->id);

    double t0 = now_seconds();
    snprintf(out->model_id, sizeof out->model_id, "%s", m->id);
    out->grid = p->grid;
    out->shrinkage = p->shrinkage;
    out->validation_split = p->validation_split;
    out->split_seed = p->split_seed;
    out->n_classes = C;
    out->n_ref = n_ref;
    out->n_cal = n_cal;
    out->n_layers = L;
    out->cal_alpha = malloc((size_t)n_cal * sizeof(float));
    out->layers = calloc((size_t)L, sizeof *out->layers);
    struct model_workspace ws = {0};
    struct batches c = {.out = out, .grid = p->grid, .total = (long)n_ref + n_cal,
                        .progress = progress, .user = user, .err = err};
    float **feat = calloc((size_t)L, sizeof *feat);
    float *tmp = NULL, *z = NULL;
    if (!out->cal_alpha || !out->layers || !feat)
        goto nomem;
    for (int l = 0, j = 0; l < m->n_layers; l++) {
        if (!is_probe(m, l))
            continue;
        struct doubt_layer_ref *R = &out->layers[j];
        struct shape sh = m->layers[l].out;
        R->layer = l;
        snprintf(R->name, sizeof R->name, "%s", m->layers[l].cfg.name);
        R->d = doubt_feature_dim(sh.h, sh.w, sh.c, p->grid);
        R->grid = sh.h == 1 && sh.w == 1 ? 0 : p->grid;
        R->in_distance = j >= L / 2;
        R->ref = malloc((size_t)n_ref * R->d * sizeof(float));
        R->ref_norm2 = malloc((size_t)n_ref * sizeof(float));
        R->mean = malloc((size_t)R->d * sizeof(float));
        R->white = malloc((size_t)R->d * R->d * sizeof(float));
        R->centres = malloc((size_t)C * R->d * sizeof(float));
        R->cal_z = malloc((size_t)n_cal * sizeof(float));
        feat[j] = malloc((size_t)n_ref * R->d * sizeof(float));
        if (!R->ref || !R->ref_norm2 || !R->mean || !R->white || !R->centres || !R->cal_z || !feat[j])
            goto nomem;
        j++;
    }
    if ((rc = model_workspace_init(&ws, m, p->batch, err)) < 0)
        goto fail;

    /* The reference rows: every training image at every probed layer; kept
     * for the neighbours, and a copy consumed by the Gaussian fit. */
    if ((rc = infer_images(m, &ws, ref_pixels, n_ref, NULL, reference_batch, &c)) < 0)
        goto fail;
    for (int l = 0; l < L; l++) {
        struct doubt_layer_ref *R = &out->layers[l];
        for (int i = 0; i < n_ref; i++) {
            const float *r = R->ref + (size_t)i * R->d;
            double ss = 0;
            for (int j = 0; j < R->d; j++)
                ss += (double)r[j] * r[j];
            R->ref_norm2[i] = (float)ss;
        }
        memcpy(feat[l], R->ref, (size_t)n_ref * R->d * sizeof(float));
        if ((rc = doubt_fit_layer(R, C, p->shrinkage, feat[l], ref_labels, n_ref, err)) < 0)
            goto fail;
        free(feat[l]);
        feat[l] = NULL;
    }

    /* The calibration images: their distances, posteriors and energies. */
    c.knn = malloc((size_t)n_cal * L * sizeof(float));
    c.maha = malloc((size_t)n_cal * L * sizeof(float));
    c.post = malloc((size_t)n_cal * L * C * sizeof(float));
    c.energy = malloc((size_t)n_cal * sizeof(float));
    tmp = malloc((size_t)n_cal * sizeof(float));
    z = malloc((size_t)n_cal * L * sizeof(float));
    if (!c.knn || !c.maha || !c.post || !c.energy || !tmp || !z ||
        doubt_scratch_init(&c.s, out, p->batch, err) < 0)
        goto nomem;
    if ((rc = infer_images(m, &ws, cal_pixels, n_cal, NULL, held_out_batch, &c)) < 0)
        goto fail;

    /* The held-out statistics: per layer, the median and spread of both
     * log-distances, then the sorted standardised distances (for
     * percentiles); the energy's median and spread. */
    for (int l = 0; l < L; l++) {
        struct doubt_layer_ref *R = &out->layers[l];
        for (int i = 0; i < n_cal; i++)
            R->cal_z[i] = c.knn[(size_t)i * L + l];
        log_stats(R->cal_z, n_cal, tmp, &R->knn_median, &R->knn_scale);
        for (int i = 0; i < n_cal; i++)
            R->cal_z[i] = c.maha[(size_t)i * L + l];
        log_stats(R->cal_z, n_cal, tmp, &R->maha_median, &R->maha_scale);
        for (int i = 0; i < n_cal; i++) {
            z[(size_t)i * L + l] =
                (float)doubt_layer_z(R, c.knn[(size_t)i * L + l], c.maha[(size_t)i * L + l]);
            R->cal_z[i] = z[(size_t)i * L + l];
        }
        qsort(R->cal_z, (size_t)n_cal, sizeof(float), doubt_cmp_float);
    }
    memcpy(tmp, c.energy, (size_t)n_cal * sizeof(float));
    qsort(tmp, (size_t)n_cal, sizeof(float), doubt_cmp_float);
    out->energy_median = (float)doubt_quantile_sorted(tmp, n_cal, 0.5);
    double iqr = doubt_quantile_sorted(tmp, n_cal, 0.75) - doubt_quantile_sorted(tmp, n_cal, 0.25);
    out->energy_scale = (float)fmax(iqr / 1.349, 1e-3);
    /* Calibration nonconformity with the true labels (as in DkNN): how
     * unusual a right answer on a held-out image looks. */
    for (int i = 0; i < n_cal; i++)
        out->cal_alpha[i] = (float)doubt_nonconformity(
            out, z + (size_t)i * L, c.post + (size_t)i * L * C, c.energy[i], cal_labels[i]);
    qsort(out->cal_alpha, (size_t)n_cal, sizeof(float), doubt_cmp_float);
    out->seconds = now_seconds() - t0;
    rc = 0;
    goto done;

nomem:
    rc = strata_fail(err, STRATA_E_NOMEM, "doubt: out of memory calibrating %s (%d images)", m->id,
                     n_ref + n_cal);
fail:
    doubt_free(out);
done:
    for (int l = 0; feat && l < L; l++)
        free(feat[l]);
    free(feat);
    free(c.knn);
    free(c.maha);
    free(c.post);
    free(c.energy);
    free(tmp);
    free(z);
    doubt_scratch_free(&c.s);
    model_workspace_free(&ws);
    return rc;
}

int doubt_calibrate_images(struct model *m, const struct doubt_params *p,
                           const uint8_t *ref_pixels, const int *ref_labels, int n_ref,
                           const uint8_t *cal_pixels, const int *cal_labels, int n_cal,
                           struct doubt_model *out, char *err)
{
    return calibrate_core(m, p, ref_pixels, ref_labels, n_ref, cal_pixels, cal_labels, n_cal, out,
                          NULL, NULL, err);
}

/* ---- calibration from the dataset ----------------------------------------------------- */

/* The hold-out to calibrate on: p's when given, else the model's training
 * seed and validation_split. */
static int resolve_split(const struct model *m, const struct doubt_params *p, float *fraction,
                         uint64_t *seed, char *err)
{
    if (p->validation_split >= 0) {
        *fraction = p->validation_split;
        *seed = p->split_seed;
    } else {
        struct train_config cfg;
        json_t *training = m->json ? json_object_get(m->json, "training") : NULL;
        int rc = train_config_parse(&cfg, training, m->id, err);
        if (rc < 0)
            return rc;
        *fraction = cfg.validation_split;
        *seed = cfg.seed;
    }
    if (!(*fraction > 0))
        return strata_fail(err, STRATA_E_ARG,
                           "model %s was trained without a validation split, so no training image "
                           "was held out to calibrate the doubt on; give a validation split",
                           m->id);
    return 0;
}

int doubt_data_open(const struct model *m, const struct doubt_params *p, const char *data_root,
                    struct doubt_data *out, char *err)
{
    memset(out, 0, sizeof *out);
    int rc = check_params(p, err);
    if (rc < 0 || (rc = resolve_split(m, p, &out->fraction, &out->seed, err)) < 0 ||
        (rc = analysis_open_split(m, data_root, "train", &out->train, err)) < 0)
        memset(out, 0, sizeof *out);
    return rc;
}

void doubt_data_free(struct doubt_data *d)
{
    dataset_free(&d->train);
    memset(d, 0, sizeof *d);
}

int doubt_calibrate_data(struct model *m, const struct doubt_params *p, struct doubt_data *d,
                         struct doubt_model *out, analysis_progress_fn progress, void *user,
                         char *err)
{
    memset(out, 0, sizeof *out);
    size_t frame = shape_size(m->input);
    uint8_t *pixels;
    int n = analysis_load_pixels(m, &d->train, &pixels, progress, user, err);
    if (n < 0)
        return n;
    int *labels = malloc((size_t)(n ? n : 1) * sizeof(int));
    uint8_t *is_cal = malloc((size_t)(n ? n : 1));
    if (!labels || !is_cal) {
        free(labels);
        free(is_cal);
        free(pixels);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++)
        labels[i] = d->train.items[i].label;
    int n_cal = doubt_split_train(labels, n, m->n_classes, d->fraction, d->seed, is_cal);
    uint8_t *cal = malloc((size_t)(n_cal ? n_cal : 1) * frame);
    int *cal_labels = malloc((size_t)(n_cal ? n_cal : 1) * sizeof(int));
    int rc;
    if (!cal || !cal_labels) {
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory");
    } else {
        /* Hold-out frames to their own buffer, the others compacted in place
         * (stable, so reference rows keep the dataset's order). */
        int nr = 0, nc = 0;
        for (int i = 0; i < n; i++) {
            if (is_cal[i]) {
                memcpy(cal + (size_t)nc * frame, pixels + (size_t)i * frame, frame);
                cal_labels[nc++] = labels[i];
            } else {
                if (nr != i)
                    memmove(pixels + (size_t)nr * frame, pixels + (size_t)i * frame, frame);
                labels[nr++] = labels[i];
            }
        }
        rc = calibrate_core(m, p, pixels, labels, nr, cal, cal_labels, nc, out, progress, user, err);
        if (rc == 0) {
            out->validation_split = d->fraction;
            out->split_seed = d->seed;
        }
    }
    free(cal);
    free(cal_labels);
    free(labels);
    free(is_cal);
    free(pixels);
    return rc;
}

int doubt_calibrate(struct model *m, const struct doubt_params *p, const char *data_root,
                    struct doubt_model *out, analysis_progress_fn progress, void *user,
                    char *err)
{
    memset(out, 0, sizeof *out);
    struct doubt_data d;
    int rc = doubt_data_open(m, p, data_root, &d, err);
    if (rc < 0)
        return rc;
    rc = doubt_calibrate_data(m, p, &d, out, progress, user, err);
    doubt_data_free(&d);
    return rc;
}
