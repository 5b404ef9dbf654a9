/*
 * doubt_score.h — the doubt score: how much a prediction should be
 * distrusted, because the image is unlike anything the model was trained on
 * (a car shown to a model of big cats) or because the model's own layers
 * disagree with its answer.
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
 * Where the rest lives: a doubt model comes from doubt_calibrate.h (from
 * images or a dataset) or doubt_cache.h (the same, kept on disk); its
 * out-of-distribution evaluation is doubt_eval.h; the JSON of a result and
 * of an evaluation, doubt_json.h.
 *
 * Threading: a doubt model is read-only after calibration or loading; the
 * const functions may run concurrently on it (each call allocates its own
 * scratch).
 */
#ifndef STRATA_DOUBT_SCORE_H
#define STRATA_DOUBT_SCORE_H

#include <stdint.h>

#include "analysis.h"
#include "model.h"
#include "status.h"

#define DOUBT_MEDIUM 0.80f      /* doubt >= this: medium */
#define DOUBT_HIGH 0.95f        /* doubt >= this: high */
#define DOUBT_K 10              /* neighbours per layer */
#define DOUBT_EXPLAIN_LEN 512

enum doubt_level { DOUBT_LEVEL_LOW, DOUBT_LEVEL_MEDIUM, DOUBT_LEVEL_HIGH };

/* "low", "medium", "high". Can't fail. */
const char *doubt_level_name(enum doubt_level level);

/* The level of a doubt value (thresholds above). Can't fail. */
enum doubt_level doubt_level_of(float doubt);

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

/* Frees what a doubt model owns and empties it. NULL-safe. */
void doubt_free(struct doubt_model *dm);

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
    char explanation[DOUBT_EXPLAIN_LEN]; /* a few English sentences (valid UTF-8 when the
                                            model's layer and class names are) */
};

/* Scores sample b of the batch last run through model_forward(m, ws, ...):
 * the doubt, its level, MSP, energy, the per-layer view and the
 * explanation. `a` (may be NULL) supplies the analysis clusters shown per
 * layer; without it cluster and cluster_class are -1. m must be the model
 * dm was calibrated for (layer shapes checked). Returns 0, STRATA_E_ARG for
 * another model or analysis, or STRATA_E_NOMEM (scratch of a few rows). */
int doubt_score(const struct doubt_model *dm, const struct model *m, const struct analysis *a,
                const struct model_workspace *ws, int b, struct doubt_result *out, char *err);

/* Scores n images (RGB8 at the model's input size) in batches: doubt[n],
 * msp[n], energy[n], pred[n] (each may be NULL). Fails like doubt_score or
 * with STRATA_E_NOMEM for the workspace. */
int doubt_score_images(const struct doubt_model *dm, struct model *m, const uint8_t *pixels,
                       int n, float *doubt, float *msp, float *energy, int *pred, char *err);

/* ---- the parts a calibration is built from ------------------------------------
 * For doubt_calibrate.c (which fits a doubt model with them) and the cache
 * keys of doubt_cache.c and doubt_eval.c; a doubt model's users need none of
 * this. */

/* What the numbers of a doubt model mean (features, terms, weights, K,
 * calibration): part of every cache key, so that a change of the recipe
 * never reuses stale files. */
extern const char doubt_recipe[];

/* Whether m's probe for dm matches: same classes, every probed layer in m
 * with the same name and feature size. Returns 0 or STRATA_E_ARG. */
int doubt_check_model(const struct doubt_model *dm, const struct model *m, char *err);

/* Feature rows (doubt_features) of samples [b0, b0 + n) of layer l's output
 * in ws into rows[n * d]. Can't fail. */
void doubt_layer_rows(const struct model_workspace *ws, const struct model *m, int l, int grid,
                      int b0, int n, float *rows);

/* Fits the class Gaussians of layer R (R->d set; R->mean, R->white and
 * R->centres allocated) from the reference rows X[n * d] (overwritten) with
 * labels y[n] in 0..C-1, every class present, shrinkage in [0, 1). Returns
 * 0, STRATA_E_NOMEM, or STRATA_E_ARG when the covariance cannot be
 * factorised even shrunk by one half. */
int doubt_fit_layer(struct doubt_layer_ref *R, int C, float shrinkage, float *X, const int *y,
                    int n, char *err);

/* Per-batch scratch of the scoring path, sized once for max_batch samples
 * of one doubt model. */
struct doubt_scratch {
    int max_batch;
    float *rows;    /* [max_batch * max d] feature rows of one layer */
    float *sims;    /* [max_batch * n_ref] dot products with the reference rows */
    float *ktmp;    /* [max_batch] K-NN distances of one layer */
    float *mtmp;    /* [max_batch] Mahalanobis distances of one layer */
    float *ptmp;    /* [max_batch * n_classes] posteriors of one layer */
    float *knn;     /* [max_batch * n_layers] */
    float *maha;    /* [max_batch * n_layers] */
    float *post;    /* [max_batch * n_layers * n_classes] */
};

/* Allocates s for dm (its layers' d and the classes must be set; the
 * reference rows need not be filled yet). Returns 0 or STRATA_E_NOMEM (s
 * then empty). */
int doubt_scratch_init(struct doubt_scratch *s, const struct doubt_model *dm, int max_batch,
                       char *err);

/* Frees what s owns and empties it. */
void doubt_scratch_free(struct doubt_scratch *s);

/* K-NN and Mahalanobis distances and class posteriors at every probed layer
 * for samples [b0, b0 + nb) of the batch in ws (nb <= s->max_batch):
 * s->knn[i * L + l], s->maha[i * L + l], s->post[(i * L + l) * C + c]. Needs
 * dm's reference rows and Gaussians. Can't fail. */
void doubt_probe_batch(const struct doubt_model *dm, const struct model *m,
                       const struct model_workspace *ws, int b0, int nb, struct doubt_scratch *s);

/* The standardised distance z_l of layer R from its K-NN and Mahalanobis
 * distances: the mean of their log-z (log distance less the held-out
 * median, over the held-out spread). Can't fail. */
double doubt_layer_z(const struct doubt_layer_ref *R, float knn, float maha);

/* alpha(x, y) from the per-layer standardised distances z[L], posteriors
 * post[L * C] and energy of an image, for label y. Can't fail. */
double doubt_nonconformity(const struct doubt_model *dm, const float *z, const float *post,
                           float energy, int y);

/* Arg-max prediction, maximum softmax probability and energy of sample b of
 * the batch in ws. Can't fail. */
void doubt_baselines(const struct model *m, const struct model_workspace *ws, int b, int *pred,
                     float *msp, float *energy);

/* Quantile q of sorted v[n] with linear interpolation (numpy's default). */
double doubt_quantile_sorted(const float *v, int n, double q);

/* qsort comparator of floats, ascending. */
int doubt_cmp_float(const void *a, const void *b);

#endif
