/* vec8: eight floats as one vector (GCC's vector extension), the unit of the
 * hand-vectorized loops (Winograd's transforms, the stem's moments and weight
 * gradient): one AVX register under -march=x86-64-v3, two SSE ones without. Lane-wise
 * operations round as the same scalar operations do, so vectorizing a loop this way
 * keeps its results. */
#ifndef RESNET_DDP_VEC8_H
#define RESNET_DDP_VEC8_H

#include <string.h>

#define VEC8_LANES 8
typedef float vec8 __attribute__((vector_size(VEC8_LANES * sizeof(float))));
typedef int vec8_index __attribute__((vector_size(VEC8_LANES * sizeof(int))));

/* Eight floats from or to any address (no alignment needed). */
static inline vec8 vec8_load(const float *p)
{
    vec8 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void vec8_store(float *p, vec8 v) { memcpy(p, &v, sizeof v); }

#endif
