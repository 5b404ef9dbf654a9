/* evaluate.c — accuracy and confusion of a model on labelled images. */
#include "evaluate.h"

#include <stdlib.h>
#include <string.h>

#include "infer.h"

void evaluation_free(struct evaluation *ev)
{
    free(ev->pred);
    free(ev->probs);
    free(ev->confusion);
    free(ev->per_class);
    free(ev->per_class_n);
    memset(ev, 0, sizeof *ev);
}

void evaluation_summarise(struct evaluation *ev, const int *labels)
{
    int C = ev->n_classes, correct = 0;
    memset(ev->confusion, 0, (size_t)C * C * sizeof(int));
    memset(ev->per_class_n, 0, (size_t)C * sizeof(int));
    for (int i = 0; i < ev->n; i++) {
        ev->confusion[labels[i] * C + ev->pred[i]]++;
        ev->per_class_n[labels[i]]++;
        correct += ev->pred[i] == labels[i];
    }
    ev->accuracy = ev->n ? (double)correct / ev->n : 0;
    double recall_sum = 0;
    int present = 0;
    for (int c = 0; c < C; c++) {
        ev->per_class[c] = ev->per_class_n[c] ? (double)ev->confusion[c * C + c] / ev->per_class_n[c] : 0;
        if (ev->per_class_n[c]) {
            recall_sum += ev->per_class[c];
            present++;
        }
    }
    ev->balanced_accuracy = present ? recall_sum / present : 0;
}

int evaluate_images(struct model *m, const uint8_t *pixels, const int *labels, int n, int batch,
                    struct evaluation *ev, char *err)
{
    memset(ev, 0, sizeof *ev);
    int C = m->n_classes;
    ev->n = n;
    ev->n_classes = C;
    ev->pred = malloc((size_t)(n ? n : 1) * sizeof(int));
    ev->probs = malloc((size_t)(n ? n : 1) * C * sizeof(float));
    ev->confusion = calloc((size_t)C * C, sizeof(int));
    ev->per_class = calloc((size_t)C, sizeof(double));
    ev->per_class_n = calloc((size_t)C, sizeof(int));
    if (!ev->pred || !ev->probs || !ev->confusion || !ev->per_class || !ev->per_class_n) {
        evaluation_free(ev);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory evaluating %d images", n);
    }
    struct model_workspace ws;
    int rc = model_workspace_init(&ws, m, batch < n ? batch : (n ? n : 1), err);
    if (rc == 0 && (rc = model_workspace_probabilities_only(&ws, m, err)) < 0)
        model_workspace_free(&ws);
    if (rc < 0) {
        evaluation_free(ev);
        return rc;
    }
    rc = infer_images(m, &ws, pixels, n, ev->probs, NULL, NULL);
    model_workspace_free(&ws);
    if (rc < 0) {
        evaluation_free(ev);
        return strata_fail(err, rc, "inference failed");
    }
    for (int i = 0; i < n; i++)
        ev->pred[i] = infer_argmax(ev->probs + (size_t)i * C, C);
    evaluation_summarise(ev, labels);
    return 0;
}
