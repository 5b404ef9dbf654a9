/*
 * transpose8.h — an 8 × 8 block of floats transposed in AVX registers, for
 * the kernels that read across rows: the weight gradient's packing
 * (sgemm.c) and the analysis's pooling of NCHW activations (reduce.c).
 *
 * Only for functions compiled for AVX-512 or AVX2 (a target attribute of
 * their own), called where the CPU has it.
 */
#ifndef STRATA_TRANSPOSE8_H
#define STRATA_TRANSPOSE8_H

#include <immintrin.h>

/* r[l] holds row l (8 floats); afterwards r[i] holds column i: element i of
 * every row, row 0 first. Unpacks pairs, then quads, then halves. */
__attribute__((target("avx2"), always_inline)) static inline void transpose8x8_ps(__m256 r[8])
{
    __m256 t[8], q[8];
    for (int l = 0; l < 8; l += 2) {
        t[l] = _mm256_unpacklo_ps(r[l], r[l + 1]);
        t[l + 1] = _mm256_unpackhi_ps(r[l], r[l + 1]);
    }
    for (int l = 0; l < 8; l += 4) {
        q[l] = _mm256_shuffle_ps(t[l], t[l + 2], _MM_SHUFFLE(1, 0, 1, 0));
        q[l + 1] = _mm256_shuffle_ps(t[l], t[l + 2], _MM_SHUFFLE(3, 2, 3, 2));
        q[l + 2] = _mm256_shuffle_ps(t[l + 1], t[l + 3], _MM_SHUFFLE(1, 0, 1, 0));
        q[l + 3] = _mm256_shuffle_ps(t[l + 1], t[l + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(q[i], q[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(q[i], q[i + 4], 0x31);
    }
}

#endif
