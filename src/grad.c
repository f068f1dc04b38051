/* grad: see grad.h. */
#include "grad.h"

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
