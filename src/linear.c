/* linear: fully connected layer through the gemm wrapper; see linear.h. */
#include "linear.h"

#include <stddef.h>

#include "gemm.h"

void linear_forward(int n, int in, int out, const float *x, const float *w, const float *b,
                    float *y)
{
    if (n == 0) return;
    gemm(true, true, n, out, in, 1.0f, x, n, w, in, 0.0f, y, out);
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) y[(size_t)i * out + o] += b[o];
}

void linear_backward(int n, int in, int out, const float *x, const float *w, const float *dy,
                     struct grad dw, struct grad db, float *dx, int shard, float *dw_tmp)
{
    for (int o = 0; o < out; o++) {
        double acc = 0.0;
        for (int i = 0; i < n; i++) acc += (double)dy[(size_t)i * out + o];
        grad_add(db, (size_t)o, acc);
    }
    if (n == 0) return;
    if (shard <= 0 || shard > n) shard = n;
    for (int s0 = 0; s0 < n; s0 += shard) {
        int ns = n - s0 < shard ? n - s0 : shard;
        gemm(true, true, out, in, ns, 1.0f, dy + (size_t)s0 * out, out, x + s0, n, 0.0f, dw_tmp, in);
        grad_add_floats(dw, dw_tmp, (size_t)out * in);
    }
    if (dx) gemm(true, true, in, n, out, 1.0f, w, in, dy, out, 0.0f, dx, n);
}
