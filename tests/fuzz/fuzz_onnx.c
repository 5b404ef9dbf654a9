/*
 * fuzz_onnx.c — libFuzzer target for the ONNX model reader: any bytes must
 * load or be refused with a negative status and a message, without a crash,
 * a leak or undefined behaviour, leaving the graph zeroed when refused.
 *
 * External data is refused for bytes without a folder; set STRATA_FUZZ_DIR
 * to a scratch folder (holding, say, a w.bin) to fuzz the external-data
 * reader too: the reader must then never open anything outside it.
 *
 * Build and run: see tests/fuzz/README.md.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct graph zero;
    static int init;
    static const char *dir;
    if (!init) {
        dir = getenv("STRATA_FUZZ_DIR");
        init = 1;
    }
    struct graph g = {0};
    char err[STRATA_ERR_LEN];
    err[0] = 0;
    int rc = onnx_load_bytes(&g, data, size, dir, err);
    if (rc != 0 && (rc > 0 || memcmp(&g, &zero, sizeof g) != 0 || !err[0]))
        abort(); /* a refusal must be negative, leave g zeroed and say why */
    graph_deinit(&g);
    return 0;
}
