/*
 * check.h — a minimal TAP producer for strata's C tests.
 *
 *   TEST(name) { CHECK(cond); CHECK_NEAR(a, b, tol); }
 *   int main(void) { RUN(name); return check_done(); }
 *
 * Each RUN prints "ok N - name" or "not ok N - name" with the failing
 * checks (file:line, the expression, and values) as TAP diagnostics.
 * Floating-point traps (invalid, divide-by-zero, overflow) are on while
 * tests run, so a NaN born in numerical code stops the test where it
 * happens.
 */
#ifndef STRATA_CHECK_H
#define STRATA_CHECK_H

#include <fenv.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int check_count, check_failed_total, check_current_failed;

#define TEST(name) static void test_##name(void)

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            printf("#   %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);            \
            check_current_failed++;                                                        \
        }                                                                                  \
    } while (0)

#define CHECK_MSG(cond, ...)                                                               \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            printf("#   %s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);            \
            printf(__VA_ARGS__);                                                           \
            printf("\n");                                                                  \
            check_current_failed++;                                                        \
        }                                                                                  \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                              \
    do {                                                                                   \
        double check_a_ = (double)(a), check_b_ = (double)(b);                             \
        if (!(fabs(check_a_ - check_b_) <= (tol))) {                                       \
            printf("#   %s:%d: %s = %.9g, %s = %.9g, |diff| %.3g > %.3g\n", __FILE__,      \
                   __LINE__, #a, check_a_, #b, check_b_, fabs(check_a_ - check_b_),        \
                   (double)(tol));                                                         \
            check_current_failed++;                                                        \
        }                                                                                  \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                 \
    do {                                                                                   \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                    \
        if (check_a_ != check_b_) {                                                        \
            printf("#   %s:%d: %s = %lld, expected %s = %lld\n", __FILE__, __LINE__, #a,  \
                   check_a_, #b, check_b_);                                                \
            check_current_failed++;                                                        \
        }                                                                                  \
    } while (0)

static inline void check_run(void (*fn)(void), const char *name)
{
    check_current_failed = 0;
    feenableexcept(FE_INVALID | FE_DIVBYZERO | FE_OVERFLOW);
    fn();
    fedisableexcept(FE_ALL_EXCEPT);
    check_count++;
    if (check_current_failed) {
        check_failed_total++;
        printf("not ok %d - %s\n", check_count, name);
    } else {
        printf("ok %d - %s\n", check_count, name);
    }
    fflush(stdout);
}

/* Skips a test with a reason (TAP "# SKIP"); counts as neither pass nor fail. */
#define SKIP(name, reason)                                                                 \
    do {                                                                                   \
        check_count++;                                                                     \
        printf("ok %d - %s # SKIP %s\n", check_count, #name, reason);                      \
    } while (0)

#define RUN(name) check_run(test_##name, #name)

static inline int check_done(void)
{
    printf("1..%d\n", check_count);
    return check_failed_total ? 1 : 0;
}

#endif
