/*
 * question.h — one question to a model: what is in this image, and how far
 * to trust the answer.
 *
 *   encoded bytes -> decode (image.h's size limits) -> preprocess -> one
 *   forward pass, every layer's output kept -> from that same pass: the
 *   class probabilities, where the image lands at every layer of the
 *   analysis (nearest cluster, PCA point), the doubt of the answer
 *   (doubt_score.h) -> LIME's explanation of the predicted class.
 *
 * `strata predict` and POST /api/models/{id}/predict both ask here and
 * differ only in how they print the answer; both print its doubt with
 * doubt_result_json, so the two never disagree.
 *
 * Ownership: the caller owns the model, the analysis, the doubt model, the
 * LIME settings and the workspace it passes (only the workspace is written:
 * the forward pass overwrites its outputs); the answer owns what it holds
 * (question_answer_free).
 *
 * Threading: questions to one model, analysis and doubt model may run
 * concurrently, each with its own workspace.
 */
#ifndef STRATA_QUESTION_H
#define STRATA_QUESTION_H

#include <stddef.h>
#include <stdint.h>

#include "analysis.h"
#include "doubt_score.h"
#include "image.h"
#include "lime.h"
#include "model.h"
#include "status.h"

/* What is asked besides the probabilities; every part may be NULL. */
struct question {
    const struct analysis *analysis; /* the model's bundle: cluster and PCA point per layer */
    const struct doubt_model *doubt; /* calibrated for the model: the doubt of the answer */
    const struct lime_params *lime;  /* LIME of the predicted class (one label); a raised
                                        lime->cancel also skips it before it starts */
};

/* How far a question got: where a failure happened. */
enum question_stage { QUESTION_DECODE, QUESTION_FORWARD };

struct question_answer {
    enum question_stage stage;
    int width, height;              /* of the image as given */
    int predicted;                  /* argmax of probs (the first on ties) */
    float *probs;                   /* [m->n_classes] in class order, owned */
    struct analysis_point *points;  /* [analysis->n_layers], owned; NULL without an analysis */
    struct doubt_result *doubt;     /* owned; NULL when not asked, or when it could not be
                                       scored (doubt_error says why) */
    char doubt_error[STRATA_ERR_LEN];
    int explained;                  /* 1: lime and resized hold the explanation */
    struct lime_result lime;        /* LIME of the predicted class, owned */
    struct image resized;           /* the image at the model's input size (what LIME's
                                       overlays are drawn on), owned */
    char explain_error[STRATA_ERR_LEN]; /* why an explanation asked for is missing */
    double ms_decode, ms_forward, ms_explain; /* wall time of each part */
};

/* Asks m about the JPEG or PNG image data[len]. ws is an inference
 * workspace of m (model_workspace_init, any batch size), or NULL for one
 * made and freed here. Returns 0 when the image went through the model:
 * probs, predicted and (with an analysis) points are set; a doubt or an
 * explanation asked for may still be missing, with doubt_error or
 * explain_error saying why — the rest of the answer stands. Fails with
 * out->stage telling where: QUESTION_DECODE with image_decode's errors
 * (STRATA_E_LIMIT for an image over the limits), QUESTION_FORWARD with
 * model_preprocess's, STRATA_E_NOMEM, or STRATA_E_ARG when the analysis was
 * not computed for m. Free the answer with question_answer_free either way. */
int question_ask(struct model *m, struct model_workspace *ws, const uint8_t *data, size_t len,
                 const struct question *q, struct question_answer *out, char *err);

/* The same for an image already decoded (a file read with image_load):
 * starts at QUESTION_FORWARD, ms_decode 0. */
int question_ask_image(struct model *m, struct model_workspace *ws, const struct image *img,
                       const struct question *q, struct question_answer *out, char *err);

/* Frees what an answer owns and empties it. NULL-safe. */
void question_answer_free(struct question_answer *a);

#endif
