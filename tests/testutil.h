/* testutil: helpers shared by the unit tests (header-only, tests only): EXPECT and its
 * failure counter, array comparison, a seeded random sequence and an aborting
 * allocator. */
#ifndef RESNET_DDP_TESTUTIL_H
#define RESNET_DDP_TESTUTIL_H

#include "rng.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int test_failures;

#define EXPECT(cond, ...)                                                  \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: FAILED: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fprintf(stderr, "\n");                                         \
            test_failures++;                                               \
        }                                                                  \
    } while (0)

/* Compare two arrays; on failure print the name, max abs / rel difference and the
 * first mismatching index. tol is relative to max(|ref|, 1). Returns 1 if equal. */
static inline int expect_close(const char *name, const double *got, const double *ref, size_t n,
                               double tol)
{
    double max_abs = 0, max_rel = 0;
    size_t first_bad = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(got[i] - ref[i]);
        double scale = fabs(ref[i]) > 1.0 ? fabs(ref[i]) : 1.0;
        if (d > max_abs) max_abs = d;
        if (d / scale > max_rel) max_rel = d / scale;
        if ((d / scale > tol || isnan(got[i])) && first_bad == (size_t)-1) first_bad = i;
    }
    if (first_bad != (size_t)-1) {
        fprintf(stderr, "FAILED %s: max abs diff %.3g, max rel diff %.3g (tol %.3g), first at [%zu]: got %.9g want %.9g\n",
                name, max_abs, max_rel, tol, first_bad, got[first_bad], ref[first_bad]);
        test_failures++;
        return 0;
    }
    return 1;
}

static inline int test_summary(const char *name)
{
    if (test_failures) {
        fprintf(stderr, "%s: %d failure(s)\n", name, test_failures);
        return 1;
    }
    printf("%s: all checks passed\n", name);
    return 0;
}

/* ------------------------------------------------------------ random numbers */

/* One random sequence per test program, a pure function of (seed, stream, position)
 * (rng.h), so every run draws the same data. urand_seed starts it (again). */
struct urand_state {
    uint64_t seed, stream, counter;
};

static inline struct urand_state *urand_state(void)
{
    static struct urand_state state;
    return &state;
}

static inline void urand_seed(uint64_t seed, uint64_t stream)
{
    *urand_state() = (struct urand_state){seed, stream, 0};
}

/* The next value of the sequence, uniform in [lo, hi). */
static inline double urand(double lo, double hi)
{
    struct urand_state *s = urand_state();
    return lo + (hi - lo) * rng_uniform(s->seed, s->stream, s->counter++);
}

/* calloc that never returns NULL (zeroed; 0 bytes is a valid, distinct block). */
static inline void *xalloc(size_t bytes)
{
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", bytes);
        abort();
    }
    return p;
}

#endif
