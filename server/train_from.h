/*
 * train_from.h — `strata train ID --from FILE.onnx`: an architecture taken
 * from an ONNX file made a new model to train on a dataset.
 *
 * The model folder is made as `strata import` makes one (model_import.h),
 * with the dataset's class folders as the classes; when the file's
 * classifier gives another number of scores (1,000 for an ImageNet model),
 * its weight and bias are replaced by ones with a score per class, drawn at
 * random (classifier.h). The folder is written under a temporary name,
 * opened as a model to check it, and only then renamed into place.
 */
#ifndef STRATA_TRAIN_FROM_H
#define STRATA_TRAIN_FROM_H

#include <stddef.h>
#include <stdint.h>

struct train_from {
    const char *file;        /* the ONNX file */
    const char *id;          /* the new model */
    const char *models_root; /* where it goes: <models_root>/<id> */
    const char *data_root;   /* datasets folder */
    const char *dataset;     /* its dataset (class folders of <data_root>/<dataset>/train) */
    double mean[3], std[3];  /* input normalisation */
    int height, width;       /* input size when the file leaves it open, else 0 */
    uint64_t seed;           /* for a new classifier's weights */
};

/* Makes <models_root>/<id> from o, and writes its folder into dir[cap].
 * Says on stderr what it changed (a new classifier). Returns 0 or a
 * negative status with err (an id in use, a dataset with fewer than two
 * classes, a file strata cannot run or whose classifier it cannot find);
 * nothing is left behind then. */
int train_from_onnx(const struct train_from *o, char *dir, size_t cap, char *err);

#endif
