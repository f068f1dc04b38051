/* gemm: row-major sgemm through OpenBLAS's cblas interface. */
#include "gemm.h"

#include <cblas.h>
#include <omp.h>

void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
          const float *b, int ldb, float beta, float *c, int ldc)
{
    if (m == 0 || n == 0) return;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void gemm_set_threads(int threads)
{
    /* One OpenMP pool serves both OpenBLAS (OpenMP build) and our loops. */
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
}
int gemm_get_threads(void) { return openblas_get_num_threads(); }
