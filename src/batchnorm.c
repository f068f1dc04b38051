/* batchnorm: batch normalization (Ioffe & Szegedy 2015) with PyTorch's conventions
 * and optional cross-rank synchronization; see batchnorm.h. */
#include "batchnorm.h"

#include <math.h>

#include "error.h"

void batchnorm_accumulate(int c, size_t m, const float *x, double *sum, double *sumsq)
{
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < c; ch++) {
        const float *row = x + (size_t)ch * m;
        double s = 0.0, q = 0.0;
#pragma omp simd reduction(+ : s, q)
        for (size_t i = 0; i < m; i++) {
            double v = row[i];
            s += v;
            q += v * v;
        }
        sum[ch] += s;
        sumsq[ch] += q;
    }
}

bool batchnorm_finish_stats(int c, double count, struct bn_saved *saved, float *running_mean,
                            float *running_var, const struct reducer *red, double *work)
{
    double *sum = work, *sumsq = work + c;
    work[2 * c] = count;
    reducer_sum(red, work, 2 * (size_t)c + 1);
    const double n = work[2 * c];
    saved->count = n;
    /* Only per-rank BN on a rank without samples this step (the short last batch of
     * an epoch split in whole shards) sees nothing: no statistics to take. */
    if (n == 0) return false;
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < c; ch++) {
        double mean = sum[ch] / n;
        double var = sumsq[ch] / n - mean * mean;
        if (var < 0) var = 0; /* rounding when all values are equal */
        saved->mean[ch] = (float)mean;
        saved->invstd[ch] = (float)(1.0 / sqrt(var + (double)BN_EPS));
        double unbiased = n > 1 ? var * n / (n - 1) : var;
        running_mean[ch] = (1.0f - BN_MOMENTUM) * running_mean[ch] + BN_MOMENTUM * (float)mean;
        running_var[ch] = (1.0f - BN_MOMENTUM) * running_var[ch] + BN_MOMENTUM * (float)unbiased;
    }
    return true;
}

void batchnorm_forward_train(int c, size_t m, const float *x, const float *gamma,
                             const float *beta, float *y, struct bn_saved *saved,
                             float *running_mean, float *running_var,
                             const struct reducer *red, double *work)
{
    for (int ch = 0; ch < 2 * c; ch++) work[ch] = 0.0;
    batchnorm_accumulate(c, m, x, work, work + c);
    if (!batchnorm_finish_stats(c, (double)m, saved, running_mean, running_var, red, work))
        return;
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < c; ch++) {
        const float scale = gamma[ch] * saved->invstd[ch];
        const float shift = beta[ch] - saved->mean[ch] * scale;
        const float *row = x + (size_t)ch * m;
        float *out = y + (size_t)ch * m;
        for (size_t i = 0; i < m; i++) out[i] = row[i] * scale + shift;
    }
}

void batchnorm_forward_eval(int c, size_t m, const float *x, const float *gamma,
                            const float *beta, const float *running_mean,
                            const float *running_var, float *y)
{
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < c; ch++) {
        float invstd = (float)(1.0 / sqrt((double)running_var[ch] + (double)BN_EPS));
        const float scale = gamma[ch] * invstd, shift = beta[ch] - running_mean[ch] * scale;
        const float *row = x + (size_t)ch * m;
        float *out = y + (size_t)ch * m;
        for (size_t i = 0; i < m; i++) out[i] = row[i] * scale + shift;
    }
}

void batchnorm_relu_recompute(int c, size_t m, const float *x, const float *gamma,
                              const float *beta, const struct bn_saved *saved, float *y)
{
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < c; ch++) {
        const float scale = gamma[ch] * saved->invstd[ch], shift = beta[ch] - saved->mean[ch] * scale;
        const float *row = x + (size_t)ch * m;
        float *out = y + (size_t)ch * m;
        for (size_t i = 0; i < m; i++) {
            float v = row[i] * scale + shift;
            out[i] = v > 0.0f ? v : 0.0f;
        }
    }
}

void batchnorm_relu_mask(int c, size_t m, const float *x, const float *gamma, const float *beta,
                         const struct bn_saved *saved, float *dy)
{
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < c; ch++) {
        const float scale = gamma[ch] * saved->invstd[ch], shift = beta[ch] - saved->mean[ch] * scale;
        const float *row = x + (size_t)ch * m;
        float *g = dy + (size_t)ch * m;
        for (size_t i = 0; i < m; i++)
            if (!(row[i] * scale + shift > 0.0f)) g[i] = 0.0f;
    }
}

void batchnorm_backward(int c, size_t m, const float *x, const float *dy, const float *gamma,
                        const struct bn_saved *saved, float *dx, struct grad dgamma,
                        struct grad dbeta, const struct reducer *red, double *work)
{
    double *sum_dy = work, *sum_dy_xhat = work + c;
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < c; ch++) {
        const float *xr = x + (size_t)ch * m, *dr = dy + (size_t)ch * m;
        const double mean = saved->mean[ch], invstd = saved->invstd[ch];
        double s = 0.0, sx = 0.0;
#pragma omp simd reduction(+ : s, sx)
        for (size_t i = 0; i < m; i++) {
            s += (double)dr[i];
            sx += (double)dr[i] * (((double)xr[i] - mean) * invstd);
        }
        sum_dy[ch] = s;
        sum_dy_xhat[ch] = sx;
        /* The parameter gradients take the local sums: the gradient allreduce adds
         * the other ranks' shares, as for any other parameter. */
        grad_add(dbeta, (size_t)ch, s);
        grad_add(dgamma, (size_t)ch, sx);
    }
    reducer_sum(red, work, 2 * (size_t)c);
    const double n = saved->count;
    if (n == 0) return;
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < c; ch++) {
        const float *xr = x + (size_t)ch * m, *dr = dy + (size_t)ch * m;
        float *out = dx + (size_t)ch * m;
        const float mean = saved->mean[ch], invstd = saved->invstd[ch];
        const float k = gamma[ch] * invstd;
        const float mean_dy = (float)(sum_dy[ch] / n);
        const float mean_dy_xhat = (float)(sum_dy_xhat[ch] / n);
        for (size_t i = 0; i < m; i++) {
            float xhat = (xr[i] - mean) * invstd;
            out[i] = k * (dr[i] - mean_dy - xhat * mean_dy_xhat);
        }
    }
}
