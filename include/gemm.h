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

/* C (M, N) = A B^T + beta C for a small C from a long K (a weight gradient: the
 * output gradient times the columns over a chunk's positions), with results that do
 * not depend on the number of threads. gemm_tiled would cut so small a C into tiles
 * that each pack their rows of A and B over the whole of K again (A nine times for a
 * 128 x 576 gradient). Instead K is cut into GEMM_K_PIECES fixed pieces, each
 * piece's product is one single-threaded sgemm into `pieces` (GEMM_K_PIECES * M * N
 * floats), the pieces spread over the threads and then added to beta C in piece
 * order. Cut where gemm_splits_k; otherwise (or with pieces NULL) gemm_tiled. */
#define GEMM_K_PIECES 8
#define GEMM_LONG_K 2048
bool gemm_splits_k(int m, int n, int k);
void gemm_tiled_long_k(int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                       float beta, float *c, int ldc, float *pieces);

/* BLAS threads for this process (OpenBLAS). */
void gemm_set_threads(int threads);

#endif
