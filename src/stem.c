/* stem: chunked, fused stem of the network; see stem.h. */
#include "stem.h"

#include <math.h>
#include <string.h>

#include "error.h"

#define STEM_CHUNK_FLOATS ((size_t)2 << 20) /* 8 MB of convolution output per chunk */

int stem_chunk_samples(const struct conv_shape *conv, int shard)
{
    size_t per_sample = (size_t)conv->cout * conv->ho * conv->wo;
    size_t nc = STEM_CHUNK_FLOATS / per_sample;
    if (nc < 1) nc = 1;
    if (shard > 0) nc = nc < (size_t)shard ? (size_t)shard : nc / (size_t)shard * (size_t)shard;
    return nc > (size_t)conv->n ? conv->n : (int)nc;
}

/* BN with the given per-channel scale and shift, then ReLU. fmaf, so the forward
 * pass and the backward's ReLU mask compute exactly the same value. */
static inline float bn_relu(float a, float scale, float shift)
{
    float v = fmaf(a, scale, shift);
    return v > 0.0f ? v : 0.0f;
}

/* BN's per-channel scale and shift with the last training batch's statistics, as
 * batchnorm.c computes them. */
static inline void train_affine(const struct stem_params *p, int ch, float *scale, float *shift)
{
    *scale = p->gamma[ch] * p->saved->invstd[ch];
    *shift = p->beta[ch] - p->saved->mean[ch] * *scale;
}

/* The convolution of samples [n0, n0 + nc) into st->a. */
static void convolve_chunk(const struct stem *st, const struct stem_params *p, const float *input,
                           int n0, int nc, const struct conv_workspace *ws)
{
    struct conv_shape cs = st->conv;
    cs.n = nc;
    conv2d_forward(&cs, input + (size_t)n0 * cs.h * cs.w, p->w, p->b, st->a, ws);
}

/* pooled/argmax for samples [n0, n0 + nc) of a batch of n, from the chunk in st->a,
 * which is overwritten with its BN + ReLU output on the way (backward recomputes the
 * convolution anyway). */
static void pool_chunk(const struct stem *st, int n, int n0, int nc, const float *scale,
                       const float *shift, float *pooled)
{
    const struct maxpool_shape *ps = &st->pool;
    const size_t in_plane = (size_t)ps->h * ps->w, out_plane = (size_t)ps->ho * ps->wo;
#pragma omp parallel for collapse(2) schedule(static)
    for (int ch = 0; ch < st->conv.cout; ch++)
        for (int j = 0; j < nc; j++) {
            float *hp = st->a + ((size_t)ch * nc + j) * in_plane;
            const size_t plane = ((size_t)ch * n + n0 + j) * out_plane;
            float *yp = pooled + plane;
            uint8_t *mp = st->argmax + plane;
            const float sc = scale[ch], sh = shift[ch];
#pragma omp simd
            for (size_t i = 0; i < in_plane; i++) hp[i] = bn_relu(hp[i], sc, sh);
            for (int oy = 0; oy < ps->ho; oy++)
                for (int ox = 0; ox < ps->wo; ox++) {
                    const int y0 = oy * ps->stride - ps->pad, x0 = ox * ps->stride - ps->pad;
                    float best = 0.0f;
                    int best_k = -1;
                    for (int ky = 0; ky < ps->k; ky++) {
                        const int iy = y0 + ky;
                        if (iy < 0 || iy >= ps->h) continue;
                        const float *row = hp + (size_t)iy * ps->w;
                        for (int kx = 0; kx < ps->k; kx++) {
                            const int ix = x0 + kx;
                            if (ix < 0 || ix >= ps->w) continue;
                            if (best_k < 0 || row[ix] > best) { /* the first maximum wins */
                                best = row[ix];
                                best_k = ky * ps->k + kx;
                            }
                        }
                    }
                    yp[oy * ps->wo + ox] = best;
                    mp[oy * ps->wo + ox] = (uint8_t)best_k;
                }
        }
}

void stem_forward(const struct stem *st, const struct stem_params *p, int n, const float *input,
                  bool train, float *pooled, const struct reducer *red, double *work,
                  const struct conv_workspace *ws)
{
    const int c = st->conv.cout;
    const size_t conv_plane = (size_t)st->conv.ho * st->conv.wo;
    CHECK(n <= st->conv.n, "stem batch %d above the planned %d", n, st->conv.n);
    if (train) {
        for (int i = 0; i < 2 * c; i++) work[i] = 0.0;
        for (int n0 = 0; n0 < n; n0 += st->chunk) {
            const int nc = n - n0 < st->chunk ? n - n0 : st->chunk;
            convolve_chunk(st, p, input, n0, nc, ws);
            batchnorm_accumulate(c, (size_t)nc * conv_plane, st->a, work, work + c);
        }
        if (!batchnorm_finish_stats(c, (double)n * conv_plane, p->saved, p->running_mean,
                                    p->running_var, red, work))
            return;
    }
    /* Per-channel scale and shift, as batchnorm.c computes them; in `work`, whose
     * statistics part is used up. */
    float *scale = (float *)work, *shift = scale + c;
    for (int ch = 0; ch < c; ch++) {
        if (train) {
            train_affine(p, ch, &scale[ch], &shift[ch]);
            continue;
        }
        float invstd = (float)(1.0 / sqrt((double)p->running_var[ch] + (double)BN_EPS));
        scale[ch] = p->gamma[ch] * invstd;
        shift[ch] = p->beta[ch] - p->running_mean[ch] * scale[ch];
    }
    for (int n0 = 0; n0 < n; n0 += st->chunk) {
        const int nc = n - n0 < st->chunk ? n - n0 : st->chunk;
        convolve_chunk(st, p, input, n0, nc, ws);
        pool_chunk(st, n, n0, nc, scale, shift, pooled);
    }
}

/* The conv-output position (within its plane) of pooled output o's maximum. */
static inline int max_position(const struct maxpool_shape *ps, int o, uint8_t k)
{
    const int oy = o / ps->wo, ox = o % ps->wo;
    return (oy * ps->stride - ps->pad + k / ps->k) * ps->w + ox * ps->stride - ps->pad + k % ps->k;
}

void stem_backward(const struct stem *st, const struct stem_params *p, int n, const float *input,
                   const float *dpooled, const struct reducer *red, double *work,
                   const struct conv_workspace *ws)
{
    const struct maxpool_shape *ps = &st->pool;
    const int c = st->conv.cout, out_plane = ps->ho * ps->wo;
    const size_t in_plane = (size_t)ps->h * ps->w;
    const struct bn_saved *sv = p->saved;
    double *sum_dy = work, *sum_dy_xhat = work + c;
    for (int i = 0; i < 2 * c; i++) work[i] = 0.0;

    /* Pass 1: BN's gradient sums. A pooled gradient reaches the BN output only at its
     * window's maximum, and only if that passed the ReLU. */
    for (int n0 = 0; n0 < n; n0 += st->chunk) {
        const int nc = n - n0 < st->chunk ? n - n0 : st->chunk;
        convolve_chunk(st, p, input, n0, nc, ws);
#pragma omp parallel for schedule(static)
        for (int ch = 0; ch < c; ch++) {
            float scale, shift;
            train_affine(p, ch, &scale, &shift);
            const double mean = sv->mean[ch], invstd = sv->invstd[ch];
            double s = 0.0, sx = 0.0;
            for (int j = 0; j < nc; j++) {
                const float *ap = st->a + ((size_t)ch * nc + j) * in_plane;
                const size_t plane = ((size_t)ch * n + n0 + j) * out_plane;
                for (int o = 0; o < out_plane; o++) {
                    const float v = ap[max_position(ps, o, st->argmax[plane + o])];
                    if (!(bn_relu(v, scale, shift) > 0.0f)) continue;
                    const double g = dpooled[plane + o];
                    s += g;
                    sx += g * (((double)v - mean) * invstd);
                }
            }
            sum_dy[ch] += s;
            sum_dy_xhat[ch] += sx;
        }
    }
    /* This rank's shares are its parameter gradients (summed over ranks later). */
    for (int ch = 0; ch < c; ch++) {
        p->dbeta[ch] += sum_dy[ch];
        p->dgamma[ch] += sum_dy_xhat[ch];
    }
    reducer_sum(red, work, 2 * (size_t)c);
    const double count = sv->count;
    if (count == 0) return;

    /* Pass 2: the dense gradient of each chunk's convolution output, then its share
     * of the weight gradient. */
    struct conv_shape cs = st->conv;
    for (int n0 = 0; n0 < n; n0 += st->chunk) {
        const int nc = n - n0 < st->chunk ? n - n0 : st->chunk;
        convolve_chunk(st, p, input, n0, nc, ws);
#pragma omp parallel for schedule(static)
        for (int ch = 0; ch < c; ch++) {
            float scale, shift;
            train_affine(p, ch, &scale, &shift);
            const float mean = sv->mean[ch], invstd = sv->invstd[ch];
            const float k = p->gamma[ch] * invstd;
            const float mean_dy = (float)(sum_dy[ch] / count);
            const float mean_dy_xhat = (float)(sum_dy_xhat[ch] / count);
            for (int j = 0; j < nc; j++) {
                const float *ap = st->a + ((size_t)ch * nc + j) * in_plane;
                float *dp = st->d + ((size_t)ch * nc + j) * in_plane;
                const size_t plane = ((size_t)ch * n + n0 + j) * out_plane;
                memset(dp, 0, sizeof(float) * in_plane);
                for (int o = 0; o < out_plane; o++) {
                    const int pos = max_position(ps, o, st->argmax[plane + o]);
                    if (bn_relu(ap[pos], scale, shift) > 0.0f) dp[pos] += dpooled[plane + o];
                }
                for (size_t i = 0; i < in_plane; i++) {
                    const float xhat = (ap[i] - mean) * invstd;
                    dp[i] = k * (dp[i] - mean_dy - xhat * mean_dy_xhat);
                }
            }
        }
        cs.n = nc;
        conv2d_backward(&cs, input + (size_t)n0 * cs.h * cs.w, p->w, st->d, p->dw, p->db, NULL,
                        false, ws);
    }
}
