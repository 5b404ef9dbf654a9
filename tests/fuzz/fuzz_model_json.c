/*
 * fuzz_model_json.c — libFuzzer target for model.json (model_parse_json):
 * a model that parses has layers whose shapes are positive, each reading
 * the image or earlier layers (its input shapes theirs), and a parameter
 * slab that covers them; a refusal names what is wrong.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    struct model m;
    char err[STRATA_ERR_LEN] = "";
    int rc = model_parse_json(&m, text, "fuzz", err);
    if (rc != 0) {
        if (rc > 0 || !err[0] || m.layers || m.params)
            abort();
        free(text);
        return 0;
    }
    if (m.n_layers < 1 || m.n_classes < 1)
        abort();
    for (int i = 0; i < m.n_layers; i++) {
        const struct layer *l = &m.layers[i];
        if (shape_size(l->out) == 0 || l->n_inputs < 1 || l->n_inputs > LAYER_MAX_INPUTS)
            abort();
        for (int k = 0; k < l->n_inputs; k++) {
            const int r = l->inputs[k];
            if (r < -1 || r >= i ||
                shape_size(l->ins[k]) != shape_size(r < 0 ? m.input : m.layers[r].out))
                abort();
        }
    }
    if (m.n_params) {
        volatile float last = m.params[m.n_params - 1];
        (void)last;
    }
    model_free(&m);
    free(text);
    return 0;
}
