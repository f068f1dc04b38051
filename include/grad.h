/* grad: where an op adds a parameter's gradient.
 *
 * Doubles when the trainer sums micro-shards (their promise of bit-identical results
 * on any number of ranks needs sums that do not depend on the order, DESIGN.md), else
 * floats: one backward per step adds each value once to a zeroed float, which gives
 * the same bits as rounding the double, without 89 MB of doubles to clear, add to and
 * convert every step. Exactly one of the two pointers is set. */
#ifndef RESNET_DDP_GRAD_H
#define RESNET_DDP_GRAD_H

#include <stddef.h>

struct grad {
    double *d;
    float *f;
};

static inline struct grad grad_of_doubles(double *d) { return (struct grad){d, NULL}; }
static inline struct grad grad_of_floats(float *f) { return (struct grad){NULL, f}; }
/* No gradient wanted (an op skips it). */
static inline struct grad grad_none(void) { return (struct grad){NULL, NULL}; }
static inline int grad_wanted(struct grad g) { return g.d != NULL || g.f != NULL; }

/* g[i] += v (rounded to float first for a float gradient). */
static inline void grad_add(struct grad g, size_t i, double v)
{
    if (g.f)
        g.f[i] += (float)v;
    else
        g.d[i] += v;
}

/* g[0..n) += src[0..n), in parallel. */
void grad_add_floats(struct grad g, const float *src, size_t n);

#endif
