/* winograd: F(2x2, 3x3) convolutions; see winograd.h.
 *
 * Transform matrices (Lavin & Gray 2016):
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]     input tile d (4x4): B^T d B
 *   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]  filter g (3x3):     G g G^T
 *   A^T = [1 1 1 0; 0 1 -1 -1]                       product m (4x4):    A^T m A
 * Transformed arrays are (16, channels, tiles): position xi = 4 * row + column of
 * the 4x4 tile, so each xi is a plain row-major matrix for the GEMMs. Tiles are
 * numbered (sample of the chunk, tile row, tile column). */
#include "winograd.h"

#include <string.h>

#include "gemm.h"

/* Widest map the data transforms take: their per-thread row buffers are on the stack,
 * sized by this, so the training step allocates nothing. */
#define MAX_W 256

bool winograd_applies(const struct conv_shape *s)
{
    return s->k == 3 && s->stride == 1 && s->pad == 1 && s->h >= 2 && s->w >= 2 && s->w <= MAX_W;
}

static int tiles_y(const struct conv_shape *s) { return (s->ho + 1) / 2; }
static int tiles_x(const struct conv_shape *s) { return (s->wo + 1) / 2; }

bool winograd_pays(const struct conv_shape *s)
{
    if (!winograd_applies(s) || s->cin < 64) return false;
    /* On maps of up to 16 positions tinymap was measured faster (28x28's 4x4 and 2x2
     * maps: 1.4x and 2.3x); on 6x6 ones (96x96's third stage) it was 1.2x slower. */
    if (s->tiny && s->ho * s->wo <= 16) return false;
    /* Multiplications against im2col's: 16 per tile against 9 per output. */
    double ratio = 16.0 * tiles_y(s) * tiles_x(s) / (9.0 * s->ho * s->wo);
    return ratio <= 0.5;
}

size_t winograd_chunk_floats(const struct conv_shape *s)
{
    return 16 * (size_t)tiles_y(s) * tiles_x(s) * (size_t)(s->cin + s->cout);
}

size_t winograd_filter_floats(const struct conv_shape *s)
{
    return 16 * (size_t)s->cout * s->cin;
}

/* ---- filter transforms ------------------------------------------------------ */

/* u (4x4, at stride `stride` between positions) = G g G^T. */
static void filter_tile(const float g[9], float *u, size_t stride)
{
    float t[4][3];
    for (int j = 0; j < 3; j++) {
        t[0][j] = g[j];
        t[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
        t[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
        t[3][j] = g[6 + j];
    }
    for (int i = 0; i < 4; i++) {
        u[(size_t)(4 * i + 0) * stride] = t[i][0];
        u[(size_t)(4 * i + 1) * stride] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
        u[(size_t)(4 * i + 2) * stride] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
        u[(size_t)(4 * i + 3) * stride] = t[i][2];
    }
}

void winograd_transform_filter(const struct conv_shape *s, const float *w, float *u)
{
    const size_t pairs = (size_t)s->cout * s->cin;
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < pairs; r++) filter_tile(w + 9 * r, u + r, pairs);
}

void winograd_transform_filter_flipped(const struct conv_shape *s, const float *w, float *u)
{
    const size_t pairs = (size_t)s->cout * s->cin;
#pragma omp parallel for schedule(static)
    for (int ci = 0; ci < s->cin; ci++)
        for (int co = 0; co < s->cout; co++) {
            const float *g = w + 9 * ((size_t)co * s->cin + ci);
            float flipped[9];
            for (int i = 0; i < 9; i++) flipped[i] = g[8 - i];
            filter_tile(flipped, u + (size_t)ci * s->cout + co, pairs);
        }
}

void winograd_filter_gradient(const struct conv_shape *s, const float *du, float *dw)
{
    const size_t pairs = (size_t)s->cout * s->cin;
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < pairs; r++) {
        float d[16], t[3][4];
        for (int x = 0; x < 16; x++) d[x] = du[x * pairs + r];
        for (int j = 0; j < 4; j++) { /* G^T d */
            t[0][j] = d[j] + 0.5f * (d[4 + j] + d[8 + j]);
            t[1][j] = 0.5f * (d[4 + j] - d[8 + j]);
            t[2][j] = 0.5f * (d[4 + j] + d[8 + j]) + d[12 + j];
        }
        float *g = dw + 9 * r;
        for (int i = 0; i < 3; i++) { /* ... G */
            g[3 * i + 0] = t[i][0] + 0.5f * (t[i][1] + t[i][2]);
            g[3 * i + 1] = 0.5f * (t[i][1] - t[i][2]);
            g[3 * i + 2] = 0.5f * (t[i][1] + t[i][2]) + t[i][3];
        }
    }
}

/* ---- data transforms -------------------------------------------------------- */

/* v (16, c, P) = B^T d B for every tile of channels [0, c) of samples [n0, n0 + nc)
 * of x (c, n, h, w), where P = nc * tiles. Input tile (ty, tx) starts at
 * (2 ty - 1, 2 tx - 1); outside the map reads zero.
 *
 * One row of tiles at a time: B^T's column step runs over whole padded rows and
 * B's row step over all tiles of the row, so both are loops over contiguous floats
 * that the compiler vectorizes (a tile at a time, the 16 loads and 16 stores of
 * each tile were scalar: 9% of a 96x96 step). */
static void input_transform(const struct conv_shape *s, int c, const float *x, int n0, int nc,
                            float *v)
{
    const int h = s->h, w = s->w, ty_n = tiles_y(s), tx_n = tiles_x(s);
    const size_t tiles = (size_t)ty_n * tx_n, P = (size_t)nc * tiles, plane_stride = (size_t)c * P;
#pragma omp parallel
    {
        /* Per thread: a row of zeros and the 4 column-transformed rows; column k holds
         * input column k - 1, and the padding columns (0 and from w + 1 to 2 tx_n + 1
         * <= w + 2) stay zero. */
        float zero[MAX_W], t[4][MAX_W + 4];
        memset(zero, 0, sizeof zero);
        memset(t, 0, sizeof t);
#pragma omp for collapse(2) schedule(static)
        for (int ch = 0; ch < c; ch++)
            for (int n = 0; n < nc; n++) {
                const float *plane = x + ((size_t)ch * s->n + n0 + n) * h * w;
                float *out = v + (size_t)ch * P + (size_t)n * tiles;
                for (int ty = 0; ty < ty_n; ty++) {
                    const float *r[4];
                    for (int i = 0; i < 4; i++) {
                        const int iy = 2 * ty - 1 + i;
                        r[i] = iy >= 0 && iy < h ? plane + (size_t)iy * w : zero;
                    }
                    for (int k = 0; k < w; k++) { /* B^T d */
                        t[0][k + 1] = r[0][k] - r[2][k];
                        t[1][k + 1] = r[1][k] + r[2][k];
                        t[2][k + 1] = r[2][k] - r[1][k];
                        t[3][k + 1] = r[1][k] - r[3][k];
                    }
                    float *o = out + (size_t)ty * tx_n;
                    for (int i = 0; i < 4; i++) { /* ... B */
                        const float *ti = t[i];
                        float *o0 = o + (4 * i + 0) * plane_stride, *o1 = o + (4 * i + 1) * plane_stride;
                        float *o2 = o + (4 * i + 2) * plane_stride, *o3 = o + (4 * i + 3) * plane_stride;
                        for (int tx = 0; tx < tx_n; tx++) {
                            o0[tx] = ti[2 * tx] - ti[2 * tx + 2];
                            o1[tx] = ti[2 * tx + 1] + ti[2 * tx + 2];
                            o2[tx] = ti[2 * tx + 2] - ti[2 * tx + 1];
                            o3[tx] = ti[2 * tx + 1] - ti[2 * tx + 3];
                        }
                    }
                }
            }
    }
}

/* y (c, n, ho, wo) samples [n0, n0 + nc) = (or +=) A^T m A for every tile of m
 * (16, c, P); outputs past an odd edge are dropped. A row of tiles at a time, as in
 * input_transform: A^T's step over the row's tiles, then A's straight into y. */
static void output_transform(const struct conv_shape *s, int c, const float *m, int n0, int nc,
                             float *y, bool accumulate)
{
    const int ho = s->ho, wo = s->wo, ty_n = tiles_y(s), tx_n = tiles_x(s);
    const size_t tiles = (size_t)ty_n * tx_n, P = (size_t)nc * tiles, plane_stride = (size_t)c * P;
#pragma omp parallel
    {
        float t[8 * MAX_W];  /* per thread: A^T m's 8 rows of tx_n <= MAX_W floats */
        const int full = wo / 2; /* tiles with both columns inside */
#pragma omp for collapse(2) schedule(static)
        for (int ch = 0; ch < c; ch++)
            for (int n = 0; n < nc; n++) {
                float *plane = y + ((size_t)ch * s->n + n0 + n) * ho * wo;
                const float *in = m + (size_t)ch * P + (size_t)n * tiles;
                for (int ty = 0; ty < ty_n; ty++) {
                    const float *p = in + (size_t)ty * tx_n;
                    for (int j = 0; j < 4; j++) { /* A^T m: rows j and 4 + j of t */
                        const float *m0 = p + j * plane_stride, *m1 = p + (4 + j) * plane_stride;
                        const float *m2 = p + (8 + j) * plane_stride, *m3 = p + (12 + j) * plane_stride;
                        float *t0 = t + (size_t)j * tx_n, *t1 = t + (size_t)(4 + j) * tx_n;
                        for (int tx = 0; tx < tx_n; tx++) {
                            t0[tx] = m0[tx] + m1[tx] + m2[tx];
                            t1[tx] = m1[tx] - m2[tx] - m3[tx];
                        }
                    }
                    for (int i = 0; i < 2 && 2 * ty + i < ho; i++) { /* ... A, into the output row */
                        const float *a0 = t + (size_t)(4 * i) * tx_n, *a1 = a0 + tx_n;
                        const float *a2 = a1 + tx_n, *a3 = a2 + tx_n;
                        float *dst = plane + (size_t)(2 * ty + i) * wo;
                        if (accumulate) {
                            for (int tx = 0; tx < full; tx++) {
                                dst[2 * tx] += a0[tx] + a1[tx] + a2[tx];
                                dst[2 * tx + 1] += a1[tx] - a2[tx] - a3[tx];
                            }
                            if (wo % 2) dst[wo - 1] += a0[full] + a1[full] + a2[full];
                        } else {
                            for (int tx = 0; tx < full; tx++) {
                                dst[2 * tx] = a0[tx] + a1[tx] + a2[tx];
                                dst[2 * tx + 1] = a1[tx] - a2[tx] - a3[tx];
                            }
                            if (wo % 2) dst[wo - 1] = a0[full] + a1[full] + a2[full];
                        }
                    }
                }
            }
    }
}

/* z (16, c, P) = A e A^T for every 2x2 tile e of dy (c, n, ho, wo), samples
 * [n0, n0 + nc); outputs past an odd edge count as zero. A row of tiles at a time,
 * as in input_transform. */
static void gradient_transform(const struct conv_shape *s, int c, const float *dy, int n0, int nc,
                               float *z)
{
    const int ho = s->ho, wo = s->wo, ty_n = tiles_y(s), tx_n = tiles_x(s);
    const size_t tiles = (size_t)ty_n * tx_n, P = (size_t)nc * tiles, plane_stride = (size_t)c * P;
    const int wp = 2 * tx_n; /* a row of dy with its odd edge padded by a zero */
#pragma omp parallel
    {
        /* Per thread: the tile row's 2 rows of dy (an odd row's padding column stays
         * zero), then A e's 4 rows; wp <= MAX_W + 1. */
        float e[2][MAX_W + 2], r[4][MAX_W + 2];
        memset(e, 0, sizeof e);
#pragma omp for collapse(2) schedule(static)
        for (int ch = 0; ch < c; ch++)
            for (int n = 0; n < nc; n++) {
                const float *plane = dy + ((size_t)ch * s->n + n0 + n) * ho * wo;
                float *out = z + (size_t)ch * P + (size_t)n * tiles;
                for (int ty = 0; ty < ty_n; ty++) {
                    for (int i = 0; i < 2; i++) {
                        const int iy = 2 * ty + i;
                        for (int k = 0; k < wo; k++) e[i][k] = iy < ho ? plane[(size_t)iy * wo + k] : 0.0f;
                    }
                    for (int k = 0; k < wp; k++) { /* A e */
                        r[0][k] = e[0][k];
                        r[1][k] = e[0][k] + e[1][k];
                        r[2][k] = e[0][k] - e[1][k];
                        r[3][k] = -e[1][k];
                    }
                    float *o = out + (size_t)ty * tx_n;
                    for (int i = 0; i < 4; i++) { /* ... A^T */
                        const float *ri = r[i];
                        float *o0 = o + (4 * i + 0) * plane_stride, *o1 = o + (4 * i + 1) * plane_stride;
                        float *o2 = o + (4 * i + 2) * plane_stride, *o3 = o + (4 * i + 3) * plane_stride;
                        for (int tx = 0; tx < tx_n; tx++) {
                            o0[tx] = ri[2 * tx];
                            o1[tx] = ri[2 * tx] + ri[2 * tx + 1];
                            o2[tx] = ri[2 * tx] - ri[2 * tx + 1];
                            o3[tx] = -ri[2 * tx + 1];
                        }
                    }
                }
            }
    }
}

/* ---- the three passes --------------------------------------------------------
 * Each runs its 16 GEMMs, one per tile position, on the threads in turn: they are
 * independent, and OpenBLAS runs single-threaded inside a parallel region. The
 * filter gradient's GEMMs (a cout x cin output from K = P) ran 1.8x faster so than
 * split inside OpenBLAS (128 x 128 from K = 2304: 98 -> 176 GFLOP/s, 2 threads). */

static size_t chunk_tiles(const struct conv_shape *s, int nc)
{
    return (size_t)nc * tiles_y(s) * tiles_x(s);
}

void winograd_forward(const struct conv_shape *s, const float *u, const float *x, int n0, int nc,
                      float *y, float *work)
{
    const size_t P = chunk_tiles(s, nc);
    float *v = work, *m = work + 16 * (size_t)s->cin * P;
    input_transform(s, s->cin, x, n0, nc, v);
#pragma omp parallel for schedule(static)
    for (int xi = 0; xi < 16; xi++)
        gemm(false, false, s->cout, (int)P, s->cin, 1.0f, u + (size_t)xi * s->cout * s->cin, s->cin,
             v + (size_t)xi * s->cin * P, (int)P, 0.0f, m + (size_t)xi * s->cout * P, (int)P);
    output_transform(s, s->cout, m, n0, nc, y, false);
}

void winograd_backward_data(const struct conv_shape *s, const float *u_flipped, const float *dy,
                            int n0, int nc, float *dx, bool accumulate, float *work)
{
    /* The forward pass of a conv from cout to cin channels on dy. Same tiles: the map
     * keeps its size (stride 1, pad 1). */
    const size_t P = chunk_tiles(s, nc);
    float *v = work, *m = work + 16 * (size_t)s->cout * P;
    struct conv_shape t = *s;
    t.cin = s->cout;
    t.cout = s->cin;
    input_transform(&t, t.cin, dy, n0, nc, v);
#pragma omp parallel for schedule(static)
    for (int xi = 0; xi < 16; xi++)
        gemm(false, false, t.cout, (int)P, t.cin, 1.0f, u_flipped + (size_t)xi * t.cout * t.cin,
             t.cin, v + (size_t)xi * t.cin * P, (int)P, 0.0f, m + (size_t)xi * t.cout * P, (int)P);
    output_transform(&t, t.cout, m, n0, nc, dx, accumulate);
}

void winograd_backward_filter(const struct conv_shape *s, const float *x, const float *dy, int n0,
                              int nc, float beta, float *du, float *work)
{
    const size_t P = chunk_tiles(s, nc);
    float *v = work, *z = work + 16 * (size_t)s->cin * P;
    input_transform(s, s->cin, x, n0, nc, v);
    gradient_transform(s, s->cout, dy, n0, nc, z);
#pragma omp parallel for schedule(static)
    for (int xi = 0; xi < 16; xi++)
        gemm(false, true, s->cout, s->cin, (int)P, 1.0f, z + (size_t)xi * s->cout * P, (int)P,
             v + (size_t)xi * s->cin * P, (int)P, beta, du + (size_t)xi * s->cout * s->cin, s->cin);
}
