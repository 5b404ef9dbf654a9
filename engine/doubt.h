/*
 * doubt.h — the doubt score: how much a prediction should be distrusted,
 * because the image is unlike anything the model was trained on (a car shown
 * to a model of big cats) or because the model's own layers disagree with
 * its answer.
 *
 * Idea: three questions about an image x with predicted class y, each
 * answered relative to held-out in-distribution images (robust z-scores on
 * the calibration set: log-distance minus its median, over its spread):
 *   - distance (the deeper half of the probed layers): how far its feature
 *     row (per channel: the mean and the standard deviation over space)
 *     lies from the training images, as the mean of two standardised
 *     log-distances: to its K nearest training rows (Deep k-NN, Papernot &
 *     McDaniel, 2018; Sun et al., 2022) and, in Mahalanobis metric, to the
 *     nearest class centre of Gaussians with a shared covariance fitted on
 *     those rows (Lee et al., 2018);
 *   - agreement (every probed layer): the layer's own vote, the posterior of
 *     y under those class Gaussians, P_l(y | x) = softmax_c(-M_l,c / 2)[y];
 *   - energy (the output): E(x) = -log sum_c exp(logit_c) (Liu et al.,
 *     2020), standardised on the calibration set; only an energy above the
 *     held-out median adds doubt (an unusually confident output does not
 *     vouch for an image that is far from everything).
 * Added into one nonconformity (the DkNN recipe), each term with weight 1
 *   alpha(x, y) = mean_{deep l} z_l(x) + mean_l (1 - P_l(y | x))
 *                 + max(0, z_E(x)),
 * and calibrated on held-out images into a credibility (the share of
 * held-out images at least as nonconforming, a conformal p-value, with
 * linear interpolation and exponential tails so that the score keeps
 * ordering beyond the calibration range):
 *   doubt = 1 - credibility, in (0, 1).
 * docs/doubt.md has the formula, the reasons for every term and the
 * measured results (including the variants that did worse).
 *
 * Data. Reference (neighbours, Gaussian fit) = the model's training images
 * minus its validation hold-out (exactly what the weights were fitted on);
 * calibration = that hold-out, reconstructed from model.json "training"
 * (seed, validation_split) the way train.c draws it (doubt_split_train).
 * The test split is never used: it is what doubt-eval reports on.
 *
 * Levels. Because calibration images are held-out in-distribution images,
 * the doubt of a new in-distribution image is roughly uniform on [0, 1]:
 * doubt >= DOUBT_HIGH means "less typical than 95 % of held-out images of the
 * classes the model knows", doubt >= DOUBT_MEDIUM "less typical than 80 %".
 *   low:    doubt <  DOUBT_MEDIUM (0.80)
 *   medium: DOUBT_MEDIUM <= doubt < DOUBT_HIGH
 *   high:   doubt >= DOUBT_HIGH (0.95)
 *
 * Baselines, computed on the same forward pass: the maximum softmax
 * probability (Hendrycks & Gimpel, 2017) and the energy score
 * E(x) = -log sum_c exp(logit_c) (Liu et al., 2020), the logits recomputed
 * from the last dense layer's input when it fuses the softmax.
 *
 * Evaluation convention (doubt_auroc, doubt_fpr_at_tpr): a score is
 * "higher = more doubtful"; the positives are the images to be flagged
 * (out-of-distribution images, or wrong predictions), the negatives the
 * others (in-distribution images, or right predictions). For the baselines
 * the doubtful direction is 1 - MSP and E(x).
 *
 * Threading: a doubt model is read-only after calibration or loading; the
 * const functions may run concurrently on it (each call allocates its own
 * scratch).
 */
#ifndef STRATA_DOUBT_H
#define STRATA_DOUBT_H

#include <stdint.h>

#include "analysis.h"
#include "model.h"
#include "status.h"

#define DOUBT_FORMAT_VERSION 3 /* 2: rows hold per-channel spatial std too; 3: cachefile.h framing */
#define DOUBT_MEDIUM 0.80f      /* doubt >= this: medium */
#define DOUBT_HIGH 0.95f        /* doubt >= this: high */
#define DOUBT_DEFAULT_GRID 1    /* features: global average pooling per channel (+ spatial std) */
#define DOUBT_DEFAULT_SHRINKAGE 0.01f /* covariance shrinkage towards its mean variance */
#define DOUBT_K 10              /* neighbours per layer */
#define DOUBT_EXPLAIN_LEN 512

enum doubt_level { DOUBT_LEVEL_LOW, DOUBT_LEVEL_MEDIUM, DOUBT_LEVEL_HIGH };

/* "low", "medium", "high". Can't fail. */
const char *doubt_level_name(enum doubt_level level);

/* The level of a doubt value (thresholds above). Can't fail. */
enum doubt_level doubt_level_of(float doubt);

struct doubt_params {
    float shrinkage;        /* in [0, 1): S' = (1 - s) S + s (tr S / d) I (DOUBT_DEFAULT_SHRINKAGE) */
    int grid;               /* pooling grid of the channel means of convolution outputs
                               (DOUBT_DEFAULT_GRID) */
    float validation_split; /* calibration share of each class of the train split; < 0 = take
                               the model's training.validation_split (the default) */
    uint64_t split_seed;    /* seed of that split; used only when validation_split >= 0 */
    int batch;              /* forward batch size (32); not part of the result */
};

/* Features per row of an h x w x c output: the channel means pooled to
 * `grid` (reduce_avgpool_dim), plus c spatial standard deviations when the
 * output has more than one position (h * w > 1). Can't fail. */
int doubt_feature_dim(int h, int w, int c, int grid);

/* The feature rows of n activations act[n][h][w][c] (NHWC) into
 * out[n][doubt_feature_dim(h, w, c, grid)]: per row, the channel means
 * average-pooled to the grid (reduce_avgpool layout), then, when h * w > 1,
 * per channel the population standard deviation over all h * w positions,
 * sqrt(mean_p (a_p - mean)^2). Sums in double, two passes. Allocates
 * nothing; can't fail (shapes >= 1, asserted). */
void doubt_features(float *out, const float *act, int n, int h, int w, int c, int grid);

/* Fills p with the defaults above (validation_split -1: the model's). Can't fail. */
void doubt_params_default(struct doubt_params *p);

/* One probed layer of a calibrated doubt model. Read-only for users. */
struct doubt_layer_ref {
    int layer;              /* index in the model */
    char name[48];
    int d;                  /* feature size (doubt_feature_dim) */
    int grid;               /* grid used (0: 1x1 output taken as is) */
    int in_distance;        /* 1 when the layer is in the deeper half (the distance term) */
    float *ref;             /* [n_ref * d] feature rows of the reference images, owned */
    float *ref_norm2;       /* [n_ref] their squared norms, owned */
    float *mean;            /* [d] mean reference row, owned */
    float *white;           /* [d * d] W = U^-1 for the shrunk covariance S' = U^T U (upper
                               triangular, row-major): ((x - mean) W) is whitened, owned */
    float *centres;         /* [n_classes * d] class means, centred and whitened, owned */
    float knn_median, knn_scale;   /* median and spread of log K-NN distance (calibration) */
    float maha_median, maha_scale; /* same for the Mahalanobis distance */
    float *cal_z;           /* [n_cal] sorted standardised distances of the calibration
                               images, for percentiles, owned */
};

/* A calibrated doubt model for one trained model. Free with doubt_free. */
struct doubt_model {
    uint64_t key;           /* cache key (0 when not computed through the cache) */
    char model_id[64];
    int grid;
    float shrinkage;
    float validation_split;
    uint64_t split_seed;
    int n_classes;
    int n_ref;              /* reference (training) images */
    int n_cal;              /* calibration (held-out) images */
    float energy_median, energy_scale; /* of the calibration images' energies */
    float *cal_alpha;       /* [n_cal] sorted nonconformity of the calibration images, owned */
    int n_layers;           /* probed layers */
    struct doubt_layer_ref *layers; /* [n_layers], owned */
    double seconds;         /* time the calibration took */
    int cached;             /* 1 when doubt_load_or_calibrate read it from the cache */
    char cache_path[1024];
    char cache_note[STRATA_ERR_LEN]; /* why a cache file was refused or not written */
};

/* What one probed layer says about an image. */
struct doubt_layer_view {
    int layer;              /* index in the model */
    char name[48];
    int cluster;            /* nearest cluster of the analysis at this layer; -1 without one */
    int cluster_class;      /* that cluster's majority class (-1 if empty or no analysis) */
    int neighbour_class;    /* the layer's vote: the class whose training images' centre is
                               nearest (Mahalanobis; lowest index on ties) */
    float agreement;        /* the layer's posterior of the predicted class, in [0, 1] */
    int agrees;             /* neighbour_class == predicted class */
    float dist;             /* standardised distance z_l: mean of the log K-NN and log
                               Mahalanobis distances, each less its held-out median, over its
                               held-out spread (0: typical; 3: far out) */
    float dist_percentile;  /* share of held-out images nearer to the training images at this
                               layer, in [0, 1] (0.97: further than 97 % of them) */
    int in_distance;        /* 1 when this layer counts in the distance term */
};

struct doubt_result {
    float doubt;            /* in [0, 1] */
    enum doubt_level level;
    int predicted;          /* argmax of the probabilities */
    float msp;              /* maximum softmax probability */
    float energy;           /* -log sum exp(logits) (higher = more unusual) */
    float distance;         /* the distance term (mean z_l over the deeper layers) */
    float disagreement;     /* the agreement term, mean_l (1 - P_l(predicted)) */
    float energy_excess;    /* the energy term, max(0, z_E) */
    float nonconformity;    /* alpha, before calibration */
    float credibility;      /* 1 - doubt */
    int n_layers;
    struct doubt_layer_view layers[MODEL_MAX_LAYERS];
    char explanation[DOUBT_EXPLAIN_LEN]; /* a few English sentences */
};

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

/* Loads the doubt model for (m, p, train data) from
 * <cache_dir>/<model-id>-<key>.doubt if a valid one is there, else
 * calibrates and writes it (temporary file + rename; folder created). A
 * refused or unwritable cache file is not an error: the reason goes to
 * out->cache_note. cache_dir NULL disables the cache. Fails like
 * doubt_calibrate. */
int doubt_load_or_calibrate(struct model *m, const struct doubt_params *p, const char *data_root,
                            const char *cache_dir, struct doubt_model *out,
                            analysis_progress_fn progress, void *user, char *err);

/* Writes / reads a doubt model (format in doubt.c: magic, version, key,
 * checksum). doubt_load refuses a file with another key when expect_key is
 * not 0 (STRATA_E_FORMAT), a corrupt or truncated one (STRATA_E_FORMAT),
 * another version (STRATA_E_UNSUPPORTED); missing file: STRATA_E_NOTFOUND;
 * unreadable: STRATA_E_IO. */
int doubt_save(const struct doubt_model *dm, const char *path, char *err);
int doubt_load(const char *path, uint64_t expect_key, struct doubt_model *out, char *err);

/* Frees what a doubt model owns and empties it. NULL-safe. */
void doubt_free(struct doubt_model *dm);

/* Scores sample b of the batch last run through model_forward(m, ws, ...):
 * the doubt, its level, MSP, energy, the per-layer view and the
 * explanation. `a` (may be NULL) supplies the analysis clusters shown per
 * layer; without it cluster and cluster_class are -1. m must be the model
 * dm was calibrated for (layer shapes checked). Returns 0, STRATA_E_ARG for
 * another model or analysis, or STRATA_E_NOMEM (scratch of a few rows). */
int doubt_score(const struct doubt_model *dm, const struct model *m, const struct analysis *a,
                const struct model_workspace *ws, int b, struct doubt_result *out, char *err);

struct json_t;

/* The JSON of one result (a new jansson object, the caller owns it; NULL if
 * out of memory):
 *   {"score", "level", "credibility", "thresholds": {"medium", "high"},
 *    "msp", "energy", "nonconformity",
 *    "terms": {"distance", "disagreement", "energy"},
 *    "explanation",
 *    "layers": [{"index", "name", "class", "agreement", "agrees", "distance",
 *                "percentile", "in_distance", "cluster", "cluster_class"}]}
 * "class" and "cluster_class" are class names ("cluster" and
 * "cluster_class" null without an analysis). */
struct json_t *doubt_result_json(const struct doubt_result *r, const struct model *m);

/* Scores n images (RGB8 at the model's input size) in batches: doubt[n],
 * msp[n], energy[n], pred[n] (each may be NULL). Fails like doubt_score or
 * with STRATA_E_NOMEM for the workspace. */
int doubt_score_images(const struct doubt_model *dm, struct model *m, const uint8_t *pixels,
                       int n, float *doubt, float *msp, float *energy, int *pred, char *err);

/* ---- evaluation ------------------------------------------------------------ */

enum doubt_method { DOUBT_METHOD_DOUBT, DOUBT_METHOD_MSP, DOUBT_METHOD_ENERGY, DOUBT_N_METHODS };

/* "doubt", "msp", "energy". Can't fail. */
const char *doubt_method_name(enum doubt_method m);

/* Area under the ROC curve of scores where the positives should score
 * higher: the Mann-Whitney statistic P(pos > neg) + P(pos = neg) / 2 over
 * all (positive, negative) pairs, ties counting one half. O((n+m) log(n+m)).
 * NAN when either list is empty. Scores must not be NaN (asserted). */
double doubt_auroc(const float *neg, int n_neg, const float *pos, int n_pos);

/* False-positive rate at a true-positive rate of at least `tpr` (0.95 for
 * FPR95): an image is flagged when its score is >= t; t is the largest
 * score threshold that flags at least ceil(tpr * n_pos) positives; the result
 * is the share of negatives flagged at that t (negatives tied with t are
 * flagged). NAN when either list is empty. */
double doubt_fpr_at_tpr(const float *neg, int n_neg, const float *pos, int n_pos, double tpr);

/* One set of images scored for the evaluation. */
struct doubt_eval_source {
    char name[128];         /* "felines/test" (in-distribution), "paysages/test", a folder */
    int ood;
    int n;
};

#define DOUBT_MAX_SOURCES 16

/* What `strata doubt-eval` reports, with every per-image score (for the
 * histograms of the model page). Scores are "higher = more doubtful":
 * doubt, 1 - MSP, energy. */
struct doubt_report {
    char model_id[64];
    int n_id, n_ood;
    float *id_score[DOUBT_N_METHODS];   /* [n_id] each, owned */
    float *ood_score[DOUBT_N_METHODS];  /* [n_ood] each, owned */
    uint8_t *id_correct;                /* [n_id] 1 when the prediction was right, owned */
    double accuracy;                    /* on the in-distribution images */
    double auroc[DOUBT_N_METHODS];      /* in-distribution vs out-of-distribution */
    double fpr95[DOUBT_N_METHODS];      /* FPR at 95 % TPR, positives = out-of-distribution */
    double auroc_errors[DOUBT_N_METHODS]; /* in-distribution: wrong (positive) vs right */
    int n_sources;
    struct doubt_eval_source sources[DOUBT_MAX_SOURCES];
};

/* Fills the metrics of r (auroc, fpr95, auroc_errors, accuracy) from its
 * scores. Can't fail; a metric with an empty side is NAN. */
void doubt_report_metrics(struct doubt_report *r);

/* Runs the evaluation: in-distribution = root/<m->dataset>/test; out-of-
 * distribution = the test split of every other dataset folder under
 * data_root when default_ood is set, plus every folder in ood_dirs (all
 * .jpg/.jpeg/.png files under it, recursively). Unreadable images are
 * skipped. On success fills *out (doubt_report_free) and returns 0. Fails
 * with STRATA_E_IO / STRATA_E_NOTFOUND for the data, STRATA_E_ARG when
 * there is no out-of-distribution image or more than DOUBT_MAX_SOURCES
 * sources, STRATA_E_NOMEM, STRATA_E_INTERRUPTED. progress may be NULL. */
int doubt_report_run(const struct doubt_model *dm, struct model *m, const char *data_root,
                     const char *const *ood_dirs, int n_ood_dirs, int default_ood,
                     struct doubt_report *out, analysis_progress_fn progress, void *user,
                     char *err);

/* The default evaluation (no extra folder) for the model page: the test
 * splits of the datasets under ood_root (NULL: data_root) are the
 * out-of-distribution images — the dataset named like the model's is left
 * out only when the two roots are the same. Cached as
 * <cache_dir>/<model-id>-<key>.doubteval, the key covering dm->key and the
 * listed test files of every dataset used. Computes and writes it when
 * missing or refused (a refused or unwritable file is not an error).
 * cache_dir NULL disables the cache. Fails like doubt_report_run. */
int doubt_report_load_or_run(const struct doubt_model *dm, struct model *m,
                             const char *data_root, const char *ood_root, const char *cache_dir,
                             struct doubt_report *out, analysis_progress_fn progress,
                             void *user, char *err);

/* Frees what a report owns and empties it. NULL-safe. */
void doubt_report_free(struct doubt_report *r);

/* The JSON of a report (a new jansson object, the caller owns it; NULL if
 * out of memory): {"model", "n_id", "n_ood", "accuracy", "sources":
 * [{"name", "ood", "n"}], "auroc", "fpr95", "auroc_errors" (each {"doubt",
 * "msp", "energy"}, null when undefined), "levels": {"medium", "high"},
 * "histogram": {"edges": [bins + 1], "id": [bins], "ood": [bins]}} — the
 * doubt of the in- and out-of-distribution images counted in `bins` equal
 * bins over [0, 1] (the last bin includes 1); bins in 1..100. */
struct json_t *doubt_report_json(const struct doubt_report *r, int bins);

#endif
