/*
 * fuzz_tensor.c — libFuzzer target for the TensorProto reader
 * (onnx_read_tensor_bytes): any bytes give a tensor whose data covers its
 * shape, or a negative status with no data.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.h"
#include "status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tview t;
    char err[STRATA_ERR_LEN];
    int rc = onnx_read_tensor_bytes(&t, data, size, err);
    if (rc != 0) {
        if (rc > 0 || t.data != NULL)
            abort();
        return 0;
    }
    if (!t.data || t.ndim < 0 || t.ndim > OP_MAX_DIMS ||
        (t.dtype != DTYPE_FLOAT && t.dtype != DTYPE_INT64))
        abort();
    /* Touch the last element: ASan reports a buffer shorter than the shape. */
    int64_t n = tview_count(&t);
    if (n > 0) {
        volatile uint8_t *p = t.data;
        size_t esz = t.dtype == DTYPE_FLOAT ? 4 : 8;
        (void)p[(size_t)n * esz - 1];
    }
    free(t.data);
    return 0;
}
