/* sgemm_peak: what OpenBLAS's sgemm reaches on this machine right now, as the
 * ceiling for bench/compare.py's GFLOP/s column: best of 5 square 2048^3 products
 * with the given thread count, with the kernel resnet_ddp would run (blas_kernel.c).
 * Prints "<GFLOP/s> <OpenBLAS core name>". */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "blas_kernel.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
    const int n = 2048, threads = argc > 1 ? atoi(argv[1]) : 2;
    blas_kernel_select();
    openblas_set_num_threads(threads > 0 ? threads : 1);
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n);
    float *c = malloc(sizeof(float) * n * n);
    if (!a || !b || !c) return 1;
    for (long i = 0; i < (long)n * n; i++) {
        a[i] = (float)(i % 7) * 1e-3f;
        b[i] = (float)(i % 5) * 1e-3f;
    }
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        double t = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c,
                    n);
        t = now() - t;
        if (t < best) best = t;
    }
    printf("%.1f %s\n", 2.0 * n * n * (double)n / best / 1e9, openblas_get_corename());
    free(a);
    free(b);
    free(c);
    return 0;
}
