/*
 * doubt_eval.h — how well a doubt model (doubt_score.h) tells the images a
 * model knows from images it does not: `strata doubt-eval`, and the model
 * page's histograms (GET /api/models/{id}/doubt).
 *
 * Convention (doubt_auroc, doubt_fpr_at_tpr): a score is "higher = more
 * doubtful"; the positives are the images to be flagged (out-of-distribution
 * images, or wrong predictions), the negatives the others (in-distribution
 * images, or right predictions). Beside the doubt, two baselines on the same
 * forward pass, oriented alike: 1 - MSP and the energy E(x).
 *
 * The caller owns the report it gets back (doubt_report_free); the doubt
 * model and the model are only read.
 */
#ifndef STRATA_DOUBT_EVAL_H
#define STRATA_DOUBT_EVAL_H

#include <stdint.h>

#include "analysis.h"
#include "doubt_score.h"
#include "model.h"

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

#endif
