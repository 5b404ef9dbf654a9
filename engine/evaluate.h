/*
 * evaluate.h — a model's predictions on labelled images, and what they add
 * up to: accuracy, per-class accuracy (recall), balanced accuracy, and the
 * confusion matrix.
 */
#ifndef STRATA_EVALUATE_H
#define STRATA_EVALUATE_H

#include <stdint.h>

#include "model.h"

struct evaluation {
    int n, n_classes;
    int *pred;              /* [n] predicted class */
    float *probs;           /* [n × n_classes] */
    int *confusion;         /* [true × predicted], n_classes² */
    double accuracy;
    double balanced_accuracy; /* mean of per-class recalls over classes present */
    double *per_class;      /* [n_classes] recall; 0 for a class with no image */
    int *per_class_n;       /* [n_classes] images of each class */
};

/* Runs the model on n images (RGB8 at the input size) in batches of
 * `batch` and fills ev (owned; evaluation_free). */
int evaluate_images(struct model *m, const uint8_t *pixels, const int *labels, int n, int batch,
                    struct evaluation *ev, char *err);

/* Fills the summary fields of ev from pred and labels (already set). */
void evaluation_summarise(struct evaluation *ev, const int *labels);

void evaluation_free(struct evaluation *ev);

#endif
