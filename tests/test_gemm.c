/* test_gemm: gemm_tiled and gemm_tiled_long_k (gemm.c), the products whose bits must
 * not depend on the number of threads.
 *
 * C = A B^T + beta C for weight-gradient shapes (a small C from a long K) and others,
 * with leading dimensions larger than the matrices: against a double product, then
 * bit for bit across 1, 2 and 3 threads and from inside a parallel region (where
 * OpenBLAS runs single-threaded and the pieces run in turn). A long K is cut into
 * pieces only where gemm_splits_k says so, and with no pieces buffer the product is
 * gemm_tiled's, bit for bit. */
#include "error.h"
#include "gemm.h"
#include "testutil.h"

#include <omp.h>
#include <string.h>

#define TOL 1e-5

struct shape {
    int m, n, k;
    float beta;
};

/* c = a b^T + beta c0 in double; a (m, lda), b (n, ldb), c (m, ldc). */
static void naive(const struct shape *s, const float *a, int lda, const float *b, int ldb,
                  const float *c0, int ldc, double *c)
{
    for (int i = 0; i < s->m; i++)
        for (int j = 0; j < s->n; j++) {
            double acc = (double)s->beta * (double)c0[(size_t)i * ldc + j];
            for (int p = 0; p < s->k; p++)
                acc += (double)a[(size_t)i * lda + p] * (double)b[(size_t)j * ldb + p];
            c[(size_t)i * s->n + j] = acc;
        }
}

static float *random_matrix(size_t n)
{
    float *p = xmalloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) p[i] = (float)urand(-1, 1);
    return p;
}

/* One product with `threads` threads, from the top level or inside a region. */
static void product(const struct shape *s, const float *a, int lda, const float *b, int ldb,
                    const float *c0, int ldc, float *c, float *pieces, int threads, bool nested)
{
    memcpy(c, c0, sizeof(float) * (size_t)s->m * ldc);
    gemm_set_threads(threads);
    if (nested) {
#pragma omp parallel num_threads(threads)
#pragma omp single
        gemm_tiled_long_k(s->m, s->n, s->k, a, lda, b, ldb, s->beta, c, ldc, pieces);
    } else {
        gemm_tiled_long_k(s->m, s->n, s->k, a, lda, b, ldb, s->beta, c, ldc, pieces);
    }
}

static void run_shape(const struct shape *s)
{
    const int lda = s->k + 3, ldb = s->k + 5, ldc = s->n + 2;
    float *a = random_matrix((size_t)s->m * lda), *b = random_matrix((size_t)s->n * ldb);
    float *c0 = random_matrix((size_t)s->m * ldc);
    float *c = xmalloc(sizeof(float) * (size_t)s->m * ldc);
    float *first = xmalloc(sizeof(float) * (size_t)s->m * ldc);
    float *pieces = random_matrix((size_t)GEMM_K_PIECES * s->m * s->n);
    double *want = xmalloc(sizeof(double) * (size_t)s->m * s->n);
    double *got = xmalloc(sizeof(double) * (size_t)s->m * s->n);
    char name[120];
    snprintf(name, sizeof name, "%dx%d k=%d beta=%g%s", s->m, s->n, s->k, (double)s->beta,
             gemm_splits_k(s->m, s->n, s->k) ? " (K cut)" : "");

    naive(s, a, lda, b, ldb, c0, ldc, want);
    /* Cut or not, every thread count gives the same bits; the pieces also inside a
     * region, while gemm_tiled there is one plain sgemm (gemm.h), so an uncut product
     * is compared only with others from inside a region. */
    const bool cut = gemm_splits_k(s->m, s->n, s->k);
    static const int threads[] = {1, 2, 3};
    for (int nested = 0; nested < 2; nested++)
        for (int t = 0; t < 3; t++) {
            product(s, a, lda, b, ldb, c0, ldc, c, pieces, threads[t], nested);
            if (nested && !cut && t == 0) memcpy(first, c, sizeof(float) * (size_t)s->m * ldc);
            if (nested && !cut && t == 0) continue;
            if (t == 0 && !nested) {
                for (int i = 0; i < s->m; i++)
                    for (int j = 0; j < s->n; j++) got[(size_t)i * s->n + j] = c[(size_t)i * ldc + j];
                expect_close(name, got, want, (size_t)s->m * s->n, TOL * (1 + s->k / 1000.0));
                bool pad_kept = true;
                for (int i = 0; i < s->m; i++)
                    for (int j = s->n; j < ldc; j++) pad_kept &= c[(size_t)i * ldc + j] == c0[(size_t)i * ldc + j];
                EXPECT(pad_kept, "%s: wrote past N into C's leading dimension", name);
                memcpy(first, c, sizeof(float) * (size_t)s->m * ldc);
                continue;
            }
            EXPECT(memcmp(c, first, sizeof(float) * (size_t)s->m * ldc) == 0,
                   "%s: %d thread(s)%s differs from 1 thread%s", name, threads[t],
                   nested ? " inside a parallel region" : "",
                   nested && !cut ? " inside one" : " at the top level");
        }
    /* Without a pieces buffer: gemm_tiled's product. */
    product(s, a, lda, b, ldb, c0, ldc, c, NULL, 2, false);
    memcpy(first, c0, sizeof(float) * (size_t)s->m * ldc);
    gemm_tiled(false, true, s->m, s->n, s->k, 1.0f, a, lda, b, ldb, s->beta, first, ldc);
    EXPECT(memcmp(c, first, sizeof(float) * (size_t)s->m * ldc) == 0,
           "%s: with no pieces buffer differs from gemm_tiled", name);
    free(a);
    free(b);
    free(c0);
    free(c);
    free(first);
    free(pieces);
    free(want);
    free(got);
}

int main(void)
{
    urand_seed(0x9e3779b9ull, 1);
    static const struct shape shapes[] = {
        {24, 40, GEMM_LONG_K, 0.0f},      /* the shortest K that is cut */
        {24, 40, 3 * GEMM_LONG_K + 7, 1.0f}, /* a short last piece, accumulating */
        {16, 72, 9216, 0.0f},             /* a stage entry's gradient over a chunk */
        {24, 40, GEMM_LONG_K - 1, 1.0f},  /* just below: gemm_tiled */
        {300, 40, 64, 0.0f},              /* a short K: gemm_tiled */
    };
    EXPECT(gemm_splits_k(24, 40, GEMM_LONG_K) && !gemm_splits_k(24, 40, GEMM_LONG_K - 1),
           "gemm_splits_k's threshold moved");
    EXPECT(!gemm_splits_k(1024, 1024, 1 << 16), "a C of 16 whole tiles or more is never cut");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) run_shape(&shapes[i]);
    return test_summary("test_gemm");
}
