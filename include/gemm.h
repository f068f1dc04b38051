/* gemm: the one wrapper over cblas_sgemm (row-major). */
#ifndef RESNET_DDP_GEMM_H
#define RESNET_DDP_GEMM_H

#include <stdbool.h>

/* C (M, N) = alpha * op(A) * op(B) + beta * C, all row-major.
 * op(A) is (M, K): A is (M, K) with leading dimension lda, or (K, M) when trans_a.
 * op(B) is (K, N): B is (K, N) with leading dimension ldb, or (N, K) when trans_b. */
void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
          const float *b, int ldb, float beta, float *c, int ldc);

/* The same product with results that do not depend on the number of threads: C is
 * cut into fixed tiles of at most GEMM_TILE x GEMM_TILE, each computed by a
 * single-threaded sgemm, the tiles spread over the threads. An OpenBLAS sgemm split
 * among threads rounds differently for different thread counts (its Haswell and Zen
 * kernels treat the edges of their register blocks apart), and so does one sgemm
 * against the same product cut differently: an element's bits depend on the shape
 * of the call and its place in it. The tiles are a function of (m, n) alone. Inside
 * a parallel region it is plain gemm. */
#define GEMM_TILE 256
void gemm_tiled(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
                int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* BLAS threads for this process (OpenBLAS). */
void gemm_set_threads(int threads);

#endif
