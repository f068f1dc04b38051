/* linear: fully connected layer through the gemm wrapper; see linear.h. */
#include "linear.h"

#include <stddef.h>

#include "gemm.h"

/* Each product covers one block of samples (a micro-shard or an alignment block,
 * conv.h), in fixed tiles: a sample's bits are then those of any other rank count
 * (gemm.h). Block 0: the whole batch at once. */
static int block_len(int n, int block) { return block > 0 && block < n ? block : n; }

typedef void gemm_fn(bool, bool, int, int, int, float, const float *, int, const float *, int,
                     float, float *, int);

void linear_forward(int n, int in, int out, const float *x, const float *w, const float *b,
                    float *y, int block)
{
    if (n == 0) return;
    const int len = block_len(n, block);
    gemm_fn *mul = block > 0 ? gemm_tiled : gemm;
    for (int s0 = 0; s0 < n; s0 += len) {
        const int ns = n - s0 < len ? n - s0 : len;
        mul(true, true, ns, out, in, 1.0f, x + s0, n, w, in, 0.0f, y + (size_t)s0 * out, out);
    }
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) y[(size_t)i * out + o] += b[o];
}

void linear_backward(int n, int in, int out, const float *x, const float *w, const float *dy,
                     struct grad dw, struct grad db, float *dx, int shard, int block,
                     float *dw_tmp)
{
    for (int o = 0; o < out; o++) {
        double acc = 0.0;
        for (int i = 0; i < n; i++) acc += (double)dy[(size_t)i * out + o];
        grad_add(db, (size_t)o, acc);
    }
    if (n == 0) return;
    /* The weight gradient: one sum per micro-shard, or one over the whole batch. */
    gemm_fn *mul = block > 0 ? gemm_tiled : gemm;
    const int per_sum = shard > 0 ? block_len(n, shard) : n;
    for (int s0 = 0; s0 < n; s0 += per_sum) {
        const int ns = n - s0 < per_sum ? n - s0 : per_sum;
        mul(true, true, out, in, ns, 1.0f, dy + (size_t)s0 * out, out, x + s0, n, 0.0f, dw_tmp, in);
        grad_add_floats(dw, dw_tmp, (size_t)out * in);
    }
    if (!dx) return;
    const int len = block_len(n, block);
    for (int s0 = 0; s0 < n; s0 += len) {
        const int ns = n - s0 < len ? n - s0 : len;
        mul(true, true, in, ns, out, 1.0f, w, in, dy + (size_t)s0 * out, out, 0.0f, dx + s0, n);
    }
}
