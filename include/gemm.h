/* gemm: the one wrapper over cblas_sgemm (row-major). */
#ifndef RESNET_DDP_GEMM_H
#define RESNET_DDP_GEMM_H

#include <stdbool.h>

/* C (M, N) = alpha * op(A) * op(B) + beta * C, all row-major.
 * op(A) is (M, K): A is (M, K) with leading dimension lda, or (K, M) when trans_a.
 * op(B) is (K, N): B is (K, N) with leading dimension ldb, or (N, K) when trans_b. */
void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
          const float *b, int ldb, float beta, float *c, int ldc);

/* BLAS threads for this process (OpenBLAS). */
void gemm_set_threads(int threads);
int gemm_get_threads(void);

#endif
