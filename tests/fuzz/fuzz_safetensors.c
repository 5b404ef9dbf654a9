/*
 * fuzz_safetensors.c — libFuzzer target for the weights reader (st_parse):
 * every tensor a parsed file lists lies inside it, with a shape that its
 * bytes cover; a refusal is a negative status with a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1); /* exact size: ASan sees overreads */
    memcpy(buf, data, size);
    struct st_file f;
    char err[STRATA_ERR_LEN] = "";
    int rc = st_parse(&f, buf, size, "fuzz", err);
    if (rc != 0) {
        if (rc > 0 || !err[0])
            abort();
        free(buf);
        return 0;
    }
    for (int i = 0; i < f.n; i++) {
        const struct st_tensor *t = &f.tensors[i];
        if (t->begin > t->end || t->end > f.data_len || f.data + f.data_len > buf + size)
            abort();
        size_t floats = (t->end - t->begin) / 4;
        if (t->dtype == ST_F32 && floats) {
            float *dst = malloc(floats * sizeof *dst);
            st_copy_f32(&f, t, dst); /* reads every byte of its span */
            free(dst);
        }
    }
    st_free(&f);
    free(buf);
    return 0;
}
