/* evaljson.c — evaluation results as JSON (see evaljson.h). */
#include "evaljson.h"

json_t *evaluation_to_json(const struct evaluation *ev, const struct model *m)
{
    int C = ev->n_classes;
    json_t *classes = json_array(), *per_class = json_object(), *confusion = json_array();
    for (int k = 0; k < C; k++) {
        json_array_append_new(classes, json_string(m->classes[k]));
        json_object_set_new(per_class, m->classes[k], json_real(ev->per_class[k]));
        json_t *row = json_array();
        for (int p = 0; p < C; p++)
            json_array_append_new(row, json_integer(ev->confusion[k * C + p]));
        json_array_append_new(confusion, row);
    }
    return json_pack("{s:f, s:f, s:i, s:o, s:o, s:o}", "accuracy", ev->accuracy, "balanced_accuracy",
                     ev->balanced_accuracy, "n", ev->n, "classes", classes, "per_class", per_class,
                     "confusion", confusion);
}
