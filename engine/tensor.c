/* tensor.c — aligned buffers and shape formatting (see tensor.h). */
#include "tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

float *tensor_alloc(size_t n)
{
    if (n == 0 || n > ((size_t)1 << 40) / sizeof(float))
        return NULL;
    size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

void tensor_free(float *p)
{
    free(p);
}

char *shape_format(struct shape s, char *buf, size_t len)
{
    if (s.h == 1 && s.w == 1)
        snprintf(buf, len, "%d", s.c);
    else
        snprintf(buf, len, "%dx%dx%d", s.h, s.w, s.c);
    return buf;
}
