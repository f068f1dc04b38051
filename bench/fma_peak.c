/* fma_peak: the floating-point ceiling of this machine right now, for
 * bench/compare.py's "of FMA peak" column: single-precision FMA throughput with the
 * given thread count, 12 independent accumulator chains per thread, with 256-bit
 * (AVX2) and, where the CPU has it, 512-bit (AVX-512) vectors. A VM can give far
 * less than the CPU's data sheet, so ratios are taken against this (figures:
 * docs/PERFORMANCE.md).
 * Prints "<best GFLOP/s> <256-bit GFLOP/s> <512-bit GFLOP/s or 0>". */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CHAINS 12
#define ROUNDS 100000000L

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Each returns a sum of its chains, printed nowhere but kept so nothing is elided. */
__attribute__((target("avx2,fma"))) static float chains_256(long rounds)
{
    __m256 acc[CHAINS];
    const __m256 mul = _mm256_set1_ps(1.0000001f), add = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_set1_ps((float)i);
    for (long r = 0; r < rounds; r++)
        for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_fmadd_ps(acc[i], mul, add);
    float out[8], sum = 0.0f;
    for (int i = 0; i < CHAINS; i++) {
        _mm256_storeu_ps(out, acc[i]);
        sum += out[0];
    }
    return sum;
}

__attribute__((target("avx512f"))) static float chains_512(long rounds)
{
    __m512 acc[CHAINS];
    const __m512 mul = _mm512_set1_ps(1.0000001f), add = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long r = 0; r < rounds; r++)
        for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_fmadd_ps(acc[i], mul, add);
    float sum = 0.0f;
    for (int i = 0; i < CHAINS; i++) sum += _mm512_reduce_add_ps(acc[i]);
    return sum;
}

/* GFLOP/s of all threads running the kernel of `width` bits at once. */
static double measure(int threads, int width)
{
    volatile float sink = 0.0f;
    double t = now();
#pragma omp parallel num_threads(threads)
    {
        float s = width == 512 ? chains_512(ROUNDS / 2) : chains_256(ROUNDS / 2);
#pragma omp atomic
        sink += s;
    }
    t = now() - t;
    (void)sink;
    const double lanes = width / 32.0;
    return 2.0 * lanes * CHAINS * (double)(ROUNDS / 2) * threads / t / 1e9;
}

int main(int argc, char **argv)
{
    const int threads = argc > 1 && atoi(argv[1]) > 0 ? atoi(argv[1]) : 2;
    __builtin_cpu_init();
    const int has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    const int has_512 = __builtin_cpu_supports("avx512f");
    if (!has_avx2) {
        fprintf(stderr, "fma_peak: this CPU has no AVX2 FMA; expected an x86-64-v3 machine\n");
        return 1;
    }
    double g256 = 0.0, g512 = 0.0;
    for (int r = 0; r < 2; r++) { /* best of 2 */
        double g = measure(threads, 256);
        if (g > g256) g256 = g;
        if (has_512) {
            g = measure(threads, 512);
            if (g > g512) g512 = g;
        }
    }
    printf("%.1f %.1f %.1f\n", g512 > g256 ? g512 : g256, g256, g512);
    return 0;
}
