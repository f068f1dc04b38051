/* rng: a counter-based random generator.
 *
 * A value is a pure function of (seed, stream, counter), so data order, augmentation
 * and initialization do not depend on the number of ranks or on where a run was
 * resumed. The mixer is SplitMix64's finalizer (Steele, Lea, Flood 2014) applied to
 * a combination of the three words; it passes BigCrush as a counter-based generator. */
#ifndef RESNET_DDP_RNG_H
#define RESNET_DDP_RNG_H

#include <stdint.h>

static inline uint64_t rng_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* 64 random bits for (seed, stream, counter). */
static inline uint64_t rng_u64(uint64_t seed, uint64_t stream, uint64_t counter)
{
    uint64_t k = rng_mix64(seed + 0x9e3779b97f4a7c15ULL * (stream + 1));
    return rng_mix64(k ^ (counter * 0xd1b54a32d192ed03ULL + 0x8cb92ba72f3d8dd7ULL));
}

/* Uniform double in [0, 1) with 53 random bits. */
static inline double rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter)
{
    return (double)(rng_u64(seed, stream, counter) >> 11) * 0x1.0p-53;
}

/* Uniform integer in [0, n) for n > 0 (Lemire's multiply-shift; bias below 2^-32 for n < 2^32). */
static inline uint64_t rng_below(uint64_t seed, uint64_t stream, uint64_t counter, uint64_t n)
{
    __extension__ typedef unsigned __int128 u128; /* GCC/Clang; silences -Wpedantic */
    return (uint64_t)(((u128)rng_u64(seed, stream, counter) * n) >> 64);
}

#endif
