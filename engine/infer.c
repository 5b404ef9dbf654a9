/* infer.c — batched inference (see infer.h). */
#include "infer.h"

#include <assert.h>
#include <string.h>

int infer_images(struct model *m, struct model_workspace *ws, const uint8_t *pixels, int n,
                 float *probs, infer_capture_fn capture, void *user)
{
    assert(ws->max_batch > 0);
    size_t in_size = shape_size(m->input);
    const struct layer *last = &m->layers[m->n_layers - 1];
    assert(shape_size(last->out) == (size_t)m->n_classes);

    for (int first = 0; first < n; first += ws->max_batch) {
        int b = n - first < ws->max_batch ? n - first : ws->max_batch;
        for (int i = 0; i < b; i++)
            model_normalise(m, pixels + (size_t)(first + i) * in_size, ws->input + (size_t)i * in_size);
        model_forward(m, ws, ws->input, b);
        if (probs)
            memcpy(probs + (size_t)first * m->n_classes, model_output(ws, m->n_layers - 1),
                   (size_t)b * m->n_classes * sizeof(float));
        if (capture) {
            int rc = capture(user, m, ws, first, b);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

int infer_argmax(const float *v, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}
