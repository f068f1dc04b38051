/* pool: max pooling (with argmax for backward) and global average pooling. */
#include "pool.h"

#include "error.h"

void maxpool_shape_init(struct maxpool_shape *s, int k, int stride, int pad, int h, int w)
{
    CHECK(k > 0 && stride > 0 && pad >= 0 && pad * 2 <= k && h > 0 && w > 0, "bad max-pool shape");
    s->k = k;
    s->stride = stride;
    s->pad = pad;
    s->h = h;
    s->w = w;
    s->ho = (h + 2 * pad - k) / stride + 1;
    s->wo = (w + 2 * pad - k) / stride + 1;
}

void maxpool_forward(const struct maxpool_shape *s, size_t planes, const float *x, float *y,
                     int32_t *argmax)
{
    const size_t in_plane = (size_t)s->h * s->w, out_plane = (size_t)s->ho * s->wo;
#pragma omp parallel for schedule(static)
    for (size_t p = 0; p < planes; p++) {
        const float *xp = x + p * in_plane;
        float *yp = y + p * out_plane;
        int32_t *ap = argmax + p * out_plane;
        for (int oy = 0; oy < s->ho; oy++)
            for (int ox = 0; ox < s->wo; ox++) {
                int y0 = oy * s->stride - s->pad, x0 = ox * s->stride - s->pad;
                float best = 0.0f;
                int32_t best_i = -1;
                for (int ky = 0; ky < s->k; ky++) {
                    int iy = y0 + ky;
                    if (iy < 0 || iy >= s->h) continue;
                    for (int kx = 0; kx < s->k; kx++) {
                        int ix = x0 + kx;
                        if (ix < 0 || ix >= s->w) continue;
                        float v = xp[iy * s->w + ix];
                        /* NaN propagates as in PyTorch: a NaN always wins. */
                        if (best_i < 0 || v > best || v != v) {
                            best = v;
                            best_i = iy * s->w + ix;
                            if (v != v) goto done;
                        }
                    }
                }
            done:
                yp[oy * s->wo + ox] = best;
                ap[oy * s->wo + ox] = best_i;
            }
    }
}

void maxpool_backward(const struct maxpool_shape *s, size_t planes, const float *dy,
                      const int32_t *argmax, float *dx)
{
    const size_t in_plane = (size_t)s->h * s->w, out_plane = (size_t)s->ho * s->wo;
#pragma omp parallel for schedule(static)
    for (size_t p = 0; p < planes; p++) {
        float *dp = dx + p * in_plane;
        const float *gp = dy + p * out_plane;
        const int32_t *ap = argmax + p * out_plane;
        for (size_t i = 0; i < in_plane; i++) dp[i] = 0.0f;
        for (size_t o = 0; o < out_plane; o++) dp[ap[o]] += gp[o];
    }
}

void avgpool_forward(size_t planes, int hw, const float *x, float *y)
{
#pragma omp parallel for schedule(static)
    for (size_t p = 0; p < planes; p++) {
        const float *xp = x + p * (size_t)hw;
        double acc = 0.0;
        for (int i = 0; i < hw; i++) acc += (double)xp[i];
        y[p] = (float)(acc / hw);
    }
}

void avgpool_backward(size_t planes, int hw, const float *dy, float *dx)
{
#pragma omp parallel for schedule(static)
    for (size_t p = 0; p < planes; p++) {
        float g = dy[p] / (float)hw;
        float *dp = dx + p * (size_t)hw;
        for (int i = 0; i < hw; i++) dp[i] = g;
    }
}
