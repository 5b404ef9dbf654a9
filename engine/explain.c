/* explain.c — LIME on a strata model (see explain.h). */
#include "explain.h"

#include <string.h>

struct classifier {
    struct model *m;
    struct model_workspace ws;
};

/* lime_classify_fn: the batch arrives at the input size, RGB8. */
static int classify_batch(void *user, const uint8_t *rgb, int n, float *probs, char *err)
{
    struct classifier *c = user;
    size_t per = shape_size(c->m->input);
    for (int first = 0; first < n; first += c->ws.max_batch) {
        int b = n - first < c->ws.max_batch ? n - first : c->ws.max_batch;
        for (int i = 0; i < b; i++)
            model_normalise(c->m, rgb + (size_t)(first + i) * per, c->ws.input + (size_t)i * per);
        model_forward(c->m, &c->ws, c->ws.input, b, 0);
        memcpy(probs + (size_t)first * c->m->n_classes, model_output(&c->ws, c->m->n_layers - 1),
               (size_t)b * c->m->n_classes * sizeof(float));
    }
    (void)err;
    return 0;
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
    int rc = image_resize(img, m->input.w, m->input.h, resized, err);
    if (rc < 0)
        return rc;
    struct classifier c = {.m = m};
    rc = model_workspace_init(&c.ws, m, p->batch_size, 0, err);
    if (rc < 0) {
        image_free(resized);
        return rc;
    }
    rc = lime_explain(resized->rgb, resized->w, resized->h, p, classify_batch, &c, m->n_classes,
                      labels, n_labels, res, err);
    model_workspace_free(&c.ws);
    if (rc < 0)
        image_free(resized);
    return rc;
}
