/* grad: the gradient arena and its views; see grad.h. */
#include "grad.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

void grad_add_floats(struct grad g, const float *src, size_t n)
{
    if (g.f) {
        float *dst = g.f;
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) dst[i] += src[i];
    } else {
        double *dst = g.d;
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) dst[i] += (double)src[i];
    }
}

void grad_arena_init(struct grad_arena *a, size_t n, bool doubles)
{
    memset(a, 0, sizeof *a);
    a->n = n;
    if (doubles)
        a->d = xcalloc(n ? n : 1, sizeof *a->d);
    else
        a->f = xcalloc(n ? n : 1, sizeof *a->f);
}

void grad_arena_lend(struct grad_arena *a, void *storage)
{
    CHECK(storage != NULL, "no storage to lend the gradient arena");
    if (a->d) {
        if (!a->lent) free(a->d);
        a->d = storage;
    } else {
        if (!a->lent) free(a->f);
        a->f = storage;
    }
    a->lent = true;
}

void grad_arena_zero(struct grad_arena *a)
{
    if (a->d)
        memset(a->d, 0, sizeof *a->d * a->n);
    else
        memset(a->f, 0, sizeof *a->f * a->n);
}

void grad_arena_free(struct grad_arena *a)
{
    if (!a->lent) {
        free(a->d);
        free(a->f);
    }
    memset(a, 0, sizeof *a);
}
