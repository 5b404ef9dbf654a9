/*
 * question.c — one question to a model (question.h): decode, one forward
 * pass, and everything read off that pass, then LIME.
 *
 * Every per-layer answer comes from the same forward pass: analysis_locate
 * reduces each layer's output as the bundle did and finds the nearest
 * centre and the PCA point, doubt_score reads the probed layers' outputs and
 * the logits. LIME runs its own batches afterwards (explain.h) and leaves
 * the workspace alone.
 */
#include "question.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "explain.h"
#include "infer.h"

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

void question_answer_free(struct question_answer *a)
{
    if (!a)
        return;
    free(a->probs);
    free(a->points);
    free(a->doubt);
    lime_result_free(&a->lime);
    image_free(&a->resized);
    memset(a, 0, sizeof *a);
}

/* The forward pass in ws and what is read off it: probabilities, points,
 * doubt. */
static int forward(struct model *m, struct model_workspace *ws, const struct image *img,
                   const struct question *q, struct question_answer *out, char *err)
{
    int rc = model_preprocess(m, img, ws->input, err);
    if (rc < 0)
        return rc;
    model_forward(m, ws, ws->input, 1);
    memcpy(out->probs, model_output(ws, m->n_layers - 1), (size_t)m->n_classes * sizeof(float));
    out->predicted = infer_argmax(out->probs, m->n_classes);
    if (q->analysis && (rc = analysis_locate(q->analysis, m, ws, 0, out->points, err)) < 0)
        return rc;
    if (q->doubt) {
        /* ~5 KB: on the heap, for callers on small thread stacks */
        out->doubt = malloc(sizeof *out->doubt);
        rc = out->doubt ? doubt_score(q->doubt, m, q->analysis, ws, 0, out->doubt, out->doubt_error)
                        : strata_fail(out->doubt_error, STRATA_E_NOMEM, "out of memory");
        if (rc < 0) {
            free(out->doubt);
            out->doubt = NULL;
        }
    }
    return 0;
}

/* LIME of the predicted class; a failure only leaves explain_error. */
static void explain(struct model *m, const struct image *img, const struct lime_params *lp,
                    struct question_answer *out)
{
    if (lp->cancel && atomic_load(lp->cancel)) {
        snprintf(out->explain_error, sizeof out->explain_error,
                 "skipped: the question was cancelled (it ran out of time, or its asker left)");
        return;
    }
    int label = out->predicted;
    out->explained = explain_image(m, img, lp, &label, 1, &out->lime, &out->resized,
                                   out->explain_error) == 0;
}

/* Everything after decoding, into out (emptied by the caller). */
static int ask(struct model *m, struct model_workspace *ws, const struct image *img,
               const struct question *q, struct question_answer *out, char *err)
{
    double t0 = now_ms();
    out->stage = QUESTION_FORWARD;
    out->width = img->w;
    out->height = img->h;
    out->probs = malloc((size_t)m->n_classes * sizeof *out->probs);
    if (q->analysis)
        out->points = malloc((size_t)q->analysis->n_layers * sizeof *out->points);
    if (!out->probs || (q->analysis && !out->points))
        return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    struct model_workspace own;
    int rc = 0;
    if (!ws && (rc = model_workspace_init(&own, m, 1, err)) < 0)
        return rc;
    rc = forward(m, ws ? ws : &own, img, q, out, err);
    if (!ws)
        model_workspace_free(&own);
    double t1 = now_ms();
    out->ms_forward = t1 - t0;
    if (rc == 0 && q->lime) {
        explain(m, img, q->lime, out);
        out->ms_explain = now_ms() - t1;
    }
    return rc;
}

int question_ask_image(struct model *m, struct model_workspace *ws, const struct image *img,
                       const struct question *q, struct question_answer *out, char *err)
{
    memset(out, 0, sizeof *out);
    return ask(m, ws, img, q, out, err);
}

int question_ask(struct model *m, struct model_workspace *ws, const uint8_t *data, size_t len,
                 const struct question *q, struct question_answer *out, char *err)
{
    memset(out, 0, sizeof *out);
    struct image img = {0};
    double t0 = now_ms();
    out->stage = QUESTION_DECODE;
    int rc = image_decode(data, len, &img, err);
    out->ms_decode = now_ms() - t0;
    if (rc == 0)
        rc = ask(m, ws, &img, q, out, err);
    image_free(&img);
    return rc;
}
