/* tinymap: one GEMM per (output position, live tap) pair on tiny maps; see tinymap.h.
 *
 * Transposed tensors are (position, channel, sample of the chunk): xt for the input
 * (h * w positions), yt for the output or its gradient (ho * wo positions), dxt for
 * the input gradient. */
#include "tinymap.h"

#include <string.h>

#include "gemm.h"

size_t tinymap_chunk_floats(const struct conv_shape *s)
{
    return 2 * (size_t)s->cin * s->h * s->w + (size_t)s->cout * s->ho * s->wo;
}

size_t tinymap_weight_floats(const struct conv_shape *s)
{
    return (size_t)s->ntaps * s->cout * s->cin;
}

/* The input position that output position p reads through live tap t, or -1 for
 * padding. */
static int input_position(const struct conv_shape *s, int p, int t)
{
    const int ky = s->taps[t] / s->k, kx = s->taps[t] % s->k;
    const int iy = p / s->wo * s->stride - s->pad + ky, ix = p % s->wo * s->stride - s->pad + kx;
    return iy >= 0 && iy < s->h && ix >= 0 && ix < s->w ? iy * s->w + ix : -1;
}

void tinymap_transpose_weights(const struct conv_shape *s, const float *w, float *wt)
{
    const size_t kk = (size_t)s->k * s->k, pairs = (size_t)s->cout * s->cin;
    /* By filter, so that w is read once and both threads share the work whatever the
     * number of taps. */
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < pairs; r++)
        for (int t = 0; t < s->ntaps; t++) wt[t * pairs + r] = w[r * kk + s->taps[t]];
}

/* to (positions, c, nc) from samples [n0, n0 + nc) of from (c, n, positions). Per
 * channel this transposes one contiguous (nc, positions) block into positions rows
 * of nc floats; walking the rows keeps the writes contiguous and the reads inside
 * the block (a sample-major walk writes every float to another page). */
static void to_position_major(const float *from, int c, int n, int positions, int n0, int nc,
                              float *to)
{
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < c; ch++) {
        const float *block = from + ((size_t)ch * n + n0) * positions;
        for (int q = 0; q < positions; q++) {
            float *row = to + ((size_t)q * c + ch) * nc;
            for (int j = 0; j < nc; j++) row[j] = block[(size_t)j * positions + q];
        }
    }
}

/* Samples [n0, n0 + nc) of to (c, n, positions) = (or +=) from (positions, c, nc):
 * the inverse walk. */
static void from_position_major(const float *from, int c, int n, int positions, int n0, int nc,
                                float *to, bool accumulate)
{
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < c; ch++) {
        float *block = to + ((size_t)ch * n + n0) * positions;
        for (int q = 0; q < positions; q++) {
            const float *row = from + ((size_t)q * c + ch) * nc;
            if (accumulate)
                for (int j = 0; j < nc; j++) block[(size_t)j * positions + q] += row[j];
            else
                for (int j = 0; j < nc; j++) block[(size_t)j * positions + q] = row[j];
        }
    }
}

/* The GEMMs below run one output matrix per thread (a position, or a tap), each
 * single-threaded: OpenBLAS does so inside a parallel region, and every output
 * matrix then sums its pairs in the same order whatever the thread count. */

void tinymap_forward(const struct conv_shape *s, const float *wt, const float *x, int n0, int nc,
                     float *y, float *work)
{
    const int in_pos = s->h * s->w, out_pos = s->ho * s->wo;
    const size_t wsize = (size_t)s->cout * s->cin;
    float *xt = work, *yt = work + (size_t)in_pos * s->cin * nc;
    to_position_major(x, s->cin, s->n, in_pos, n0, nc, xt);
#pragma omp parallel for schedule(dynamic, 1)
    for (int p = 0; p < out_pos; p++) {
        float *out = yt + (size_t)p * s->cout * nc;
        float beta = 0.0f;
        for (int t = 0; t < s->ntaps; t++) {
            const int q = input_position(s, p, t);
            if (q < 0) continue;
            gemm(false, false, s->cout, nc, s->cin, 1.0f, wt + t * wsize, s->cin,
                 xt + (size_t)q * s->cin * nc, nc, beta, out, nc);
            beta = 1.0f;
        }
        if (beta == 0.0f) memset(out, 0, sizeof(float) * s->cout * nc); /* reads only padding */
    }
    from_position_major(yt, s->cout, s->n, out_pos, n0, nc, y, false);
}

void tinymap_backward(const struct conv_shape *s, const float *wt, const float *x, const float *dy,
                      int n0, int nc, float beta, float *dwt, float *dx, bool accumulate,
                      float *work)
{
    const int in_pos = s->h * s->w, out_pos = s->ho * s->wo;
    const size_t wsize = (size_t)s->cout * s->cin;
    float *xt = work, *dyt = work + (size_t)in_pos * s->cin * nc;
    float *dxt = dyt + (size_t)out_pos * s->cout * nc;
    to_position_major(x, s->cin, s->n, in_pos, n0, nc, xt);
    to_position_major(dy, s->cout, s->n, out_pos, n0, nc, dyt);
#pragma omp parallel for schedule(dynamic, 1)
    for (int t = 0; t < s->ntaps; t++) { /* dW[t] = sum over its pairs of dy[p] . x[q]^T */
        float b = beta;
        for (int p = 0; p < out_pos; p++) {
            const int q = input_position(s, p, t);
            if (q < 0) continue;
            gemm(false, true, s->cout, s->cin, nc, 1.0f, dyt + (size_t)p * s->cout * nc, nc,
                 xt + (size_t)q * s->cin * nc, nc, b, dwt + t * wsize, s->cin);
            b = 1.0f;
        }
    }
    if (!dx) return;
#pragma omp parallel for schedule(dynamic, 1)
    for (int q = 0; q < in_pos; q++) { /* dx[q] = sum over its pairs of W[t]^T . dy[p] */
        float *out = dxt + (size_t)q * s->cin * nc;
        float b = 0.0f;
        for (int p = 0; p < out_pos; p++)
            for (int t = 0; t < s->ntaps; t++) {
                if (input_position(s, p, t) != q) continue;
                gemm(true, false, s->cin, nc, s->cout, 1.0f, wt + t * wsize, s->cin,
                     dyt + (size_t)p * s->cout * nc, nc, b, out, nc);
                b = 1.0f;
            }
        if (b == 0.0f) memset(out, 0, sizeof(float) * s->cin * nc); /* never read */
    }
    from_position_major(dxt, s->cin, s->n, in_pos, n0, nc, dx, accumulate);
}
