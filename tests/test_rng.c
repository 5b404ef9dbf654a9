/* test_rng.c — the seeded generator: reproducible, uniform, unbiased. */
#include "check.h"
#include "rng.h"

#include <string.h>

TEST(same_seed_same_sequence)
{
    struct rng a, b;
    rng_seed(&a, 42);
    rng_seed(&b, 42);
    for (int i = 0; i < 1000; i++)
        CHECK(rng_next(&a) == rng_next(&b));
    rng_seed(&b, 43);
    int differ = 0;
    rng_seed(&a, 42);
    for (int i = 0; i < 10; i++)
        differ += rng_next(&a) != rng_next(&b);
    CHECK(differ == 10);
}

TEST(uniform_moments)
{
    /* Mean 1/2 and variance 1/12 for U[0,1); with 1e5 draws the standard
     * error of the mean is 0.0009, so 0.005 is a 5-sigma bound. */
    struct rng r;
    rng_seed(&r, 7);
    double s = 0, s2 = 0;
    int n = 100000;
    for (int i = 0; i < n; i++) {
        double u = rng_uniform(&r);
        CHECK(u >= 0 && u < 1);
        s += u;
        s2 += u * u;
    }
    double mean = s / n, var = s2 / n - mean * mean;
    CHECK_NEAR(mean, 0.5, 0.005);
    CHECK_NEAR(var, 1.0 / 12, 0.002);
}

TEST(below_is_in_range_and_balanced)
{
    struct rng r;
    rng_seed(&r, 1);
    int counts[7] = {0};
    for (int i = 0; i < 70000; i++) {
        uint64_t v = rng_below(&r, 7);
        CHECK(v < 7);
        counts[v]++;
    }
    /* Expected 10000 each, sd ~ 93: 500 is over 5 sigma. */
    for (int i = 0; i < 7; i++)
        CHECK_NEAR(counts[i], 10000, 500);
}

TEST(normal_moments)
{
    struct rng r;
    rng_seed(&r, 3);
    double s = 0, s2 = 0;
    int n = 100000;
    for (int i = 0; i < n; i++) {
        double x = rng_normal(&r);
        s += x;
        s2 += x * x;
    }
    CHECK_NEAR(s / n, 0.0, 0.02);
    CHECK_NEAR(s2 / n, 1.0, 0.03);
}

TEST(shuffle_is_a_permutation)
{
    struct rng r;
    rng_seed(&r, 5);
    int v[100], seen[100];
    for (int i = 0; i < 100; i++)
        v[i] = i;
    rng_shuffle_int(&r, v, 100);
    memset(seen, 0, sizeof seen);
    int moved = 0;
    for (int i = 0; i < 100; i++) {
        CHECK(v[i] >= 0 && v[i] < 100);
        seen[v[i]]++;
        moved += v[i] != i;
    }
    for (int i = 0; i < 100; i++)
        CHECK(seen[i] == 1);
    CHECK(moved > 80);
}

int main(void)
{
    RUN(same_seed_same_sequence);
    RUN(uniform_moments);
    RUN(below_is_in_range_and_balanced);
    RUN(normal_moments);
    RUN(shuffle_is_a_permutation);
    return check_done();
}
