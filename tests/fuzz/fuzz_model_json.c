/*
 * fuzz_model_json.c — libFuzzer target for model.json (model_parse_json):
 * a model that parses has layers whose shapes are positive and chain, and a
 * parameter slab that covers them; a refusal names what is wrong.
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
        if (shape_size(l->out) == 0 || (i && shape_size(l->in) != shape_size(m.layers[i - 1].out)))
            abort();
    }
    if (m.n_params) {
        volatile float last = m.params[m.n_params - 1];
        (void)last;
    }
    model_free(&m);
    free(text);
    return 0;
}
