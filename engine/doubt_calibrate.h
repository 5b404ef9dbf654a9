/*
 * doubt_calibrate.h — a doubt model (doubt_score.h) fitted for one trained
 * model: its reference rows and class Gaussians from the training images,
 * its medians, spreads and conformal nonconformities from held-out ones.
 *
 * Data. Reference (neighbours, Gaussian fit) = the model's training images
 * minus its validation hold-out (exactly what the weights were fitted on);
 * calibration = that hold-out, reconstructed from model.json "training"
 * (seed, validation_split) the way train.c draws it (doubt_split_train).
 * The test split is never used: it is what doubt-eval reports on.
 *
 * The caller owns what it passes in and the doubt model it gets back (free
 * it with doubt_free); nothing else outlives a call.
 */
#ifndef STRATA_DOUBT_CALIBRATE_H
#define STRATA_DOUBT_CALIBRATE_H

#include <stdint.h>

#include "analysis.h"
#include "dataset.h"
#include "doubt_score.h"
#include "model.h"

#define DOUBT_DEFAULT_GRID 1    /* features: global average pooling per channel (+ spatial std) */
#define DOUBT_DEFAULT_SHRINKAGE 0.01f /* covariance shrinkage towards its mean variance */

struct doubt_params {
    float shrinkage;        /* in [0, 1): S' = (1 - s) S + s (tr S / d) I (DOUBT_DEFAULT_SHRINKAGE) */
    int grid;               /* pooling grid of the channel means of convolution outputs
                               (DOUBT_DEFAULT_GRID) */
    float validation_split; /* calibration share of each class of the train split; < 0 = take
                               the model's training.validation_split (the default) */
    uint64_t split_seed;    /* seed of that split; used only when validation_split >= 0 */
    int batch;              /* forward batch size (32); not part of the result */
};

/* Fills p with the defaults above (validation_split -1: the model's). Can't fail. */
void doubt_params_default(struct doubt_params *p);

/* The calibration hold-out of the train split exactly as train.c draws it:
 * order 0..n-1 shuffled once by a generator seeded with `seed`, then per
 * class (in class order) the first lround(count * fraction) images of that
 * class in the shuffled order are held out. Writes is_cal[n] (1 = held out)
 * and returns how many were held out. Can't fail. */
int doubt_split_train(const int *labels, int n, int n_classes, float fraction, uint64_t seed,
                      uint8_t *is_cal);

/* Calibrates a doubt model for m from images already decoded at the model's
 * input size: ref_* are the reference (training) images, cal_* the held-out
 * calibration images; both RGB8 n x h x w x 3 with labels. On success fills
 * *out (free with doubt_free) and returns 0. Fails with STRATA_E_ARG (bad
 * params, fewer than 2 reference images or 2 calibration images, a label out
 * of range, a model without probe-able layers), STRATA_E_NOMEM; *out is then
 * empty. Deterministic: the same images and model give the same bytes. */
int doubt_calibrate_images(struct model *m, const struct doubt_params *p,
                           const uint8_t *ref_pixels, const int *ref_labels, int n_ref,
                           const uint8_t *cal_pixels, const int *cal_labels, int n_cal,
                           struct doubt_model *out, char *err);

/* Calibrates from root/<m->dataset>/train: loads the split, separates the
 * validation hold-out (doubt_split_train with the model's training seed and
 * validation_split, or p's when p->validation_split >= 0) and calls
 * doubt_calibrate_images. Fails with the dataset's errors, STRATA_E_ARG when
 * the classes differ from the model's or the hold-out is empty (a model
 * trained without validation_split: pass p->validation_split), or like
 * doubt_calibrate_images. progress may be NULL (stages "loading images",
 * "calibrating"). */
int doubt_calibrate(struct model *m, const struct doubt_params *p, const char *data_root,
                    struct doubt_model *out, analysis_progress_fn progress, void *user,
                    char *err);

/* doubt_calibrate in two steps, for a caller that needs to know what a
 * calibration will read before it runs (the cache key, doubt_cache.c). */
struct doubt_data {
    float fraction;         /* share of each class held out */
    uint64_t seed;          /* seed of the hold-out */
    struct dataset train;   /* root/<m->dataset>/train, listed (not loaded); owned */
};

/* Checks p, resolves the hold-out (p's, or the model's training section)
 * and lists the train split, in that order: fails like doubt_calibrate does
 * before it loads an image; *out is then empty. Free with doubt_data_free. */
int doubt_data_open(const struct model *m, const struct doubt_params *p, const char *data_root,
                    struct doubt_data *out, char *err);

/* Frees what d owns and empties it. */
void doubt_data_free(struct doubt_data *d);

/* Loads d's images, separates the hold-out and calibrates, as
 * doubt_calibrate does after doubt_data_open. */
int doubt_calibrate_data(struct model *m, const struct doubt_params *p, struct doubt_data *d,
                         struct doubt_model *out, analysis_progress_fn progress, void *user,
                         char *err);

#endif
