/* explain.c — LIME on a strata model (see explain.h).
 *
 * Two ways to classify LIME's samples. When the model starts with spatially
 * local layers (lime_local.h), LIME first offers all its masks to the
 * receptive-field tables, which compute the same probabilities many times
 * faster; when that declines for this image (or the model has no such
 * layers), the perturbed images are rendered and run through the whole
 * model in batches. The whole-model workspace is only allocated then, so
 * the fast path never pays for a batch of full-size activations. */
#include "explain.h"

#include "model_graph.h"

#include <string.h>

#include "lime_local.h"

struct classifier {
    struct model *m;
    int batch;
    struct model_workspace ws; /* allocated by the first classify_batch */
    struct lime_local *local;  /* NULL when the model has no local prefix */
};

/* lime_classify_fn: the batch arrives at the input size, RGB8. */
static int classify_batch(void *user, const uint8_t *rgb, int n, float *probs, char *err)
{
    struct classifier *c = user;
    if (!c->ws.outputs) {
        /* only the probabilities are read: every chain the graph can fuse is */
        int rc = model_workspace_init(&c->ws, c->m, c->batch, err);
        if (rc == 0 && (rc = model_workspace_probabilities_only(&c->ws, c->m, err)) < 0)
            model_workspace_free(&c->ws);
        if (rc < 0)
            return rc;
    }
    size_t per = shape_size(c->m->input);
    for (int first = 0; first < n; first += c->ws.max_batch) {
        int b = n - first < c->ws.max_batch ? n - first : c->ws.max_batch;
        for (int i = 0; i < b; i++)
            model_normalise(c->m, rgb + (size_t)(first + i) * per, c->ws.input + (size_t)i * per);
        model_forward(c->m, &c->ws, c->ws.input, b);
        memcpy(probs + (size_t)first * c->m->n_classes, model_output(&c->ws, c->m->n_layers - 1),
               (size_t)b * c->m->n_classes * sizeof(float));
    }
    return 0;
}

/* lime_classify_masks_fn: the receptive-field tables, when the model has a
 * local prefix. */
static int classify_masks(void *user, const struct lime_perturbation *pert, const uint8_t *masks,
                          int n, float *probs, char *err)
{
    struct classifier *c = user;
    if (!c->local)
        return LIME_DECLINED;
    return lime_local_classify_masks(c->local, pert, masks, n, probs, err);
}

int explain_batch(const struct model *m, int requested)
{
    /* the graph's values, and the layers' channels-last copies beside them */
    size_t per_image = m->graph ? m->graph->bytes_per_image : 0;
    for (int l = 0; l < m->n_layers; l++)
        per_image += shape_size(m->layers[l].out) * sizeof(float);
    if (per_image == 0 || requested < 1)
        return requested;
    const size_t fits = EXPLAIN_BATCH_BYTES / per_image;
    return fits < 1 ? 1 : fits < (size_t)requested ? (int)fits : requested;
}

int explain_image(struct model *m, const struct image *img, const struct lime_params *p,
                  const int *labels, int n_labels, struct lime_result *res, struct image *resized,
                  char *err)
{
    memset(resized, 0, sizeof *resized);
    for (int i = 0; i < n_labels; i++)
        if (labels[i] < 0 || labels[i] >= m->n_classes)
            return strata_fail(err, STRATA_E_NOTFOUND, "class %d is not one of the %d classes of %s",
                               labels[i], m->n_classes, m->id);
    if (p->batch_size < 1)
        return strata_fail(err, STRATA_E_ARG, "LIME: batch_size is %d; it must be >= 1",
                           p->batch_size);
    int rc = image_resize(img, m->input.w, m->input.h, resized, err);
    if (rc < 0)
        return rc;
    struct classifier c = {.m = m, .batch = explain_batch(m, p->batch_size)};
    struct lime_local_geom g;
    /* an imported graph has no chain of local layers to reuse between masks */
    if (!m->onnx[0] && lime_local_analyse(m, &g, NULL)) {
        rc = lime_local_new(m, c.batch, NULL, &c.local, err);
        if (rc < 0) {
            image_free(resized);
            return rc;
        }
    }
    const struct lime_classifier clf = {
        .classify = classify_batch, .classify_masks = classify_masks, .user = &c};
    rc = lime_explain_with(resized->rgb, resized->w, resized->h, p, &clf, m->n_classes, labels,
                           n_labels, res, err);
    lime_local_free(c.local);
    model_workspace_free(&c.ws);
    if (rc < 0)
        image_free(resized);
    return rc;
}
