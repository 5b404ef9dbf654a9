/*
 * train.h — training a model on labelled images.
 *
 * Minibatch gradient descent on softmax cross-entropy (optionally class-
 * weighted and label-smoothed), with seeded shuffling, augmentation, a
 * stratified validation split taken from the training images, a learning-
 * rate schedule, and early stopping on validation accuracy that keeps the
 * best weights. Hyper-parameters come from the "training" object of
 * model.json (docs/training.md lists every field).
 *
 * Determinism: for a given seed and OpenBLAS thread count, a run is
 * bit-for-bit repeatable. A different thread count changes the order of
 * floating-point sums inside GEMM, and so the last bits of every weight.
 */
#ifndef STRATA_TRAIN_H
#define STRATA_TRAIN_H

#include <signal.h>
#include <stdint.h>

#include "augment.h"
#include "cutmix.h"
#include "model.h"
#include "optim.h"

enum lr_schedule { SCHEDULE_CONSTANT, SCHEDULE_STEP, SCHEDULE_COSINE };

struct train_config {
    int epochs;
    int batch_size;
    uint64_t seed;
    struct optim_config optim;
    enum lr_schedule schedule;
    float warmup_epochs;      /* linear ramp from 0 (cosine and step) */
    int step_epochs;          /* step: multiply lr by step_gamma every step_epochs */
    float step_gamma;
    struct augment_config augment;
    float validation_split;   /* fraction of each class held out; 0 = none */
    int patience;             /* epochs without a better validation accuracy; 0 = never stop early */
    int keep_last;            /* keep the last epoch's weights rather than the best validation epoch's */
    int balanced_classes;     /* weight the loss by N / (C · n_class) */
    float label_smoothing;    /* target = (1 - s)·one-hot + s/C */
    float rotation_labels;    /* turned copies of each image per epoch, 0 (off) to 3 (every
                                 turn); each (class, turn) pair its own label (see train_run) */
};

/* Fills c with defaults, then overrides them with the fields of the JSON
 * object `training` (a json_t *, may be NULL). Unknown or ill-typed fields
 * are errors naming `what` (the file) and the field. */
int train_config_parse(struct train_config *c, const void *training, const char *what, char *err);

struct train_epoch {
    int epoch;                /* from 1 */
    double train_loss, train_acc;
    double val_loss, val_acc; /* NaN-free: 0 when there is no validation split */
    double lr;                /* at the epoch's end */
    double seconds;           /* wall time of the epoch */
};

/* What a progress callback sees: mid-epoch (epoch_done NULL) after each
 * batch, and once after each epoch with its summary. */
struct train_progress {
    int epoch, epochs;
    int batch, batches;
    double loss, acc;         /* running means over the epoch so far */
    double images_per_s;
    double eta_s;             /* for the whole run, from the pace so far */
};
typedef void (*train_progress_fn)(void *user, const struct train_progress *p,
                                  const struct train_epoch *epoch_done);

struct train_report {
    int n_epochs;             /* epochs run */
    struct train_epoch *epochs; /* [n_epochs], owned; train_report_free */
    int best_epoch;           /* whose weights the model holds at the end */
    double best_val_acc;
    double seconds;
    int n_train, n_val;
    int stopped_early;
    int interrupted;          /* *stop became non-zero */
    int threads;
};

void train_report_free(struct train_report *r);

/* Trains m (whose parameters the caller has initialised or loaded) on n
 * images (pixels: n × input.h × input.w × 3 RGB8 at the model's input size,
 * labels in [0, n_classes)). The last layer must end in softmax. When it
 * returns 0 the model holds the weights of the best validation epoch (or of
 * the last epoch without a validation split), including after *stop was set
 * (checked between batches; the run then ends with report->interrupted).
 * With cfg->keep_last the model holds the last epoch's weights instead (a
 * small validation split is a noisy judge; a cosine schedule ends where it
 * should). best_epoch then names the last epoch.
 *
 * With cfg->rotation_labels = f > 0 (self-supervised label augmentation,
 * Lee et al. 2020) the run trains a copy of m whose output layer has 4 × C
 * units, unit k·C + c standing for class c turned k quarter turns
 * clockwise. Each epoch shows every training image upright and
 * round(f × n_train) turned copies drawn at random from the 3 × n_train
 * (image, 90/180/270) pairs — all of them when f = 3. m gets the copy's
 * weights with the output layer cut back to the upright units (k = 0), so
 * the saved model is a plain C-class model. Learning to tell a turned image from an upright one
 * makes the features describe how images of the known classes look, which
 * makes images of other kinds stand out (docs/doubt.md). The output layer
 * must be dense with softmax activation and the input square. Validation
 * accuracy and loss are those of the cut-back model; the training accuracy
 * counts an image right when its class is, whatever turn is predicted.
 *
 * The steps run on the model's graph (train_graph.h): the graph executor's
 * ops in training mode, the same kernels inference runs. m's own inference
 * graph, if it had one, is closed (its copy of the weights would be stale):
 * model_run_on_graph builds it anew.
 *
 * Allocates everything it needs once, up front. */
int train_run(struct model *m, const struct train_config *cfg, const uint8_t *pixels,
              const int *labels, int n, train_progress_fn progress, void *user,
              volatile sig_atomic_t *stop, struct train_report *report, char *err);

/* Softmax cross-entropy of probabilities p[n × C] against labels, with
 * per-class weights (NULL = 1) and label smoothing s. Returns the weighted
 * mean loss and writes d = ∂loss/∂logits into dlogits[n × C] (may be NULL):
 * w_y (p - t) / Σ w_y, the gradient through the softmax in closed form. */
double train_softmax_xent(const float *p, const int *labels, int n, int C,
                          const float *class_weight, float smoothing, float *dlogits);

/* The same with image i's target mixed by CutMix (cutmix.h): keep_i times
 * its own label's (smoothed) and 1 − keep_i times its partner's, and its
 * weight mixed alike. pairs NULL is train_softmax_xent. */
double train_softmax_xent_mixed(const float *p, const int *labels, const struct cutmix_pair *pairs,
                                int n, int C, const float *class_weight, float smoothing,
                                float *dlogits);

#endif
