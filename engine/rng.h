/*
 * rng.h — the one seeded random generator every stochastic part of strata
 * uses (initialisation, shuffling, augmentation, dropout, k-means++, LIME),
 * so that a seed reproduces a result on any machine.
 *
 * xoshiro256** seeded through splitmix64. The state is a plain struct the
 * caller owns; nothing here allocates or fails.
 */
#ifndef STRATA_RNG_H
#define STRATA_RNG_H

#include <stdint.h>

struct rng {
    uint64_t s[4];
};

/* Seeds the generator; any 64-bit value, including 0, is a valid seed. */
void rng_seed(struct rng *r, uint64_t seed);

/* Next raw 64-bit value. */
uint64_t rng_next(struct rng *r);

/* Uniform double in [0, 1). */
double rng_uniform(struct rng *r);

/* Uniform integer in [0, n); n must be > 0. Unbiased (rejection sampling). */
uint64_t rng_below(struct rng *r, uint64_t n);

/* Standard normal deviate (Box-Muller, one value per call). */
double rng_normal(struct rng *r);

/* Fisher-Yates shuffle of n ints in place. */
void rng_shuffle_int(struct rng *r, int *v, int n);

#endif
