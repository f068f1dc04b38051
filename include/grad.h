/* grad: the model's gradient arena, and the views through which ops add into it.
 *
 * The arena holds one value per parameter float, at the parameters' offsets. It is
 * double with micro-shards: each shard's float gradient is added into it, and the
 * double sum of floats does not depend on how ranks group the shards (docs/DESIGN.md
 * "Numerics"). Otherwise it is float, as PyTorch DDP's: one backward adds each value
 * once to a zeroed float, the same bits as rounding a double sum, and half the bytes
 * to clear, sum across ranks and read. The float storage may be lent by grad_sync (an
 * MPI-3 shared window that the ranks of a node sum in place). */
#ifndef RESNET_DDP_GRAD_H
#define RESNET_DDP_GRAD_H

#include <stdbool.h>
#include <stddef.h>

/* Where an op adds one tensor's gradient: exactly one pointer set, or none (no
 * gradient wanted). */
struct grad {
    double *d;
    float *f;
};

static inline struct grad grad_of_doubles(double *d) { return (struct grad){d, NULL}; }
static inline struct grad grad_of_floats(float *f) { return (struct grad){NULL, f}; }
static inline struct grad grad_none(void) { return (struct grad){NULL, NULL}; }
static inline bool grad_wanted(struct grad g) { return g.d != NULL || g.f != NULL; }

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

struct grad_arena {
    size_t n;
    double *d; /* exactly one of d and f is set */
    float *f;
    bool lent; /* the values belong to whoever lent them (grad_arena_lend) */
};

/* n zeroed values, double or float. */
void grad_arena_init(struct grad_arena *a, size_t n, bool doubles);
/* The arena's values move into `storage` (n zeroed values of the arena's type that
 * outlive the arena). */
void grad_arena_lend(struct grad_arena *a, void *storage);
void grad_arena_zero(struct grad_arena *a);
/* The view of the values from `offset` on. */
static inline struct grad grad_arena_at(const struct grad_arena *a, size_t offset)
{
    return a->d ? grad_of_doubles(a->d + offset) : grad_of_floats(a->f + offset);
}
static inline double grad_arena_value(const struct grad_arena *a, size_t i)
{
    return a->d ? a->d[i] : (double)a->f[i];
}
static inline size_t grad_arena_value_bytes(const struct grad_arena *a)
{
    return a->d ? sizeof(double) : sizeof(float);
}
void grad_arena_free(struct grad_arena *a);

#endif
