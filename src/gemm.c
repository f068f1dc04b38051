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

void gemm_tiled(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
                int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    /* Any enclosing region (even an inactive one of one thread) means the caller
     * spreads its own GEMMs over the threads: one call, single-threaded. */
    if (omp_get_level() > 0) {
        gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    /* Tiles of at most 256 x 256, halved (the longer side first, down to 32) until
     * there are 16, so that a weight gradient (a small output from a long K) still
     * spreads over the threads: a function of the shape alone, never of the threads. */
    int tm = m < GEMM_TILE ? m : GEMM_TILE, tn = n < GEMM_TILE ? n : GEMM_TILE;
    while (((m + tm - 1) / tm) * ((n + tn - 1) / tn) < 16 && (tm > 32 || tn > 32)) {
        if (tm >= tn) tm = (tm + 1) / 2;
        else tn = (tn + 1) / 2;
    }
    const int rows = (m + tm - 1) / tm, cols = (n + tn - 1) / tn;
    /* With one thread the loop runs outside any region, where OpenBLAS, seeing one
     * OpenMP thread, stays single-threaded; with more it runs in an active region,
     * where OpenBLAS always does. */
#pragma omp parallel for schedule(dynamic) if (omp_get_max_threads() > 1)
    for (int t = 0; t < rows * cols; t++) {
        const int i0 = t / cols * tm, j0 = t % cols * tn;
        const int mi = m - i0 < tm ? m - i0 : tm, nj = n - j0 < tn ? n - j0 : tn;
        const float *at = trans_a ? a + i0 : a + (size_t)i0 * lda;
        const float *bt = trans_b ? b + (size_t)j0 * ldb : b + j0;
        gemm(trans_a, trans_b, mi, nj, k, alpha, at, lda, bt, ldb, beta, c + (size_t)i0 * ldc + j0,
             ldc);
    }
}

bool gemm_splits_k(int m, int n, int k)
{
    return k >= GEMM_LONG_K && (size_t)m * n < (size_t)16 * GEMM_TILE * GEMM_TILE;
}

void gemm_tiled_long_k(int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                       float beta, float *c, int ldc, float *pieces)
{
    if (!pieces || !gemm_splits_k(m, n, k)) {
        gemm_tiled(false, true, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    /* Pieces of a multiple of 16 floats (whole cache lines of A's and B's rows); the
     * last is shorter, and never empty for K >= GEMM_LONG_K. */
    const int kp = ((k + GEMM_K_PIECES - 1) / GEMM_K_PIECES + 15) / 16 * 16;
    const size_t mn = (size_t)m * n;
    /* Inside a region (nested) both loops run on the calling thread, OpenBLAS
     * single-threaded there as in gemm_tiled. */
    const bool nested = omp_get_level() > 0;
#pragma omp parallel for schedule(dynamic) if (!nested && omp_get_max_threads() > 1)
    for (int p = 0; p < GEMM_K_PIECES; p++) {
        const int k0 = p * kp;
        gemm(false, true, m, n, k - k0 < kp ? k - k0 : kp, 1.0f, a + k0, lda, b + k0, ldb, 0.0f,
             pieces + (size_t)p * mn, n);
    }
    /* C = beta C + the pieces, added in piece order. */
#pragma omp parallel for schedule(static) if (!nested && omp_get_max_threads() > 1)
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float sum = beta == 0.0f ? 0.0f : beta * c[(size_t)i * ldc + j];
            for (int p = 0; p < GEMM_K_PIECES; p++) sum += pieces[(size_t)p * mn + (size_t)i * n + j];
            c[(size_t)i * ldc + j] = sum;
        }
}

void gemm_set_threads(int threads)
{
    /* One OpenMP pool serves both OpenBLAS (OpenMP build) and our loops. */
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
}
