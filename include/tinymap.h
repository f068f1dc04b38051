/* tinymap: convolutions whose output map is tiny (at most CONV_TINY_OUTPUTS
 * positions: ResNet-18 at 28x28 has 7x7, 4x4, 2x2 and 1x1 maps, at 96x96 its last
 * stage 3x3 ones), as one GEMM per (output position, live tap) pair.
 *
 * im2col on such a map multiplies a lot of padding: a 3x3 pad-1 convolution on a 3x3
 * map has 49 real (position, tap) pairs out of 81, so 40% of its multiplications are
 * by zero. Here each real pair is one GEMM over channels with the chunk's samples as
 * columns:
 *   y_t[p] (cout, n) += W[t] (cout, cin) . x_t[q] (cin, n),  q = input position of (p, t)
 * with the input transposed to (position, cin, n) and the weights to (tap, cout, cin)
 * first (small: the maps are tiny), so every operand is a plain row-major matrix. The
 * input gradient is the same pairs with W[t] transposed, summed per input position;
 * the weight gradient of tap t sums dy_t[p] . x_t[q]^T over its pairs. Where im2col
 * multiplies no padding (1x1 convolutions, pad 0, live-tap-only outputs) it is the
 * same work in smaller GEMMs, so conv_plan leaves those to im2col.
 *
 * Tensors are (C, N, H, W); the caller (conv.c) cuts the batch into chunks of samples
 * and passes the chunk's first sample n0 and count nc. */
#ifndef RESNET_DDP_TINYMAP_H
#define RESNET_DDP_TINYMAP_H

#include <stdbool.h>
#include <stddef.h>

#include "conv.h"

/* Floats of chunk workspace per sample: the transposed input, output (gradient) and
 * input gradient. */
size_t tinymap_chunk_floats(const struct conv_shape *s);

/* Floats of the tap-major weights: ntaps * cout * cin. */
size_t tinymap_weight_floats(const struct conv_shape *s);

/* wt (ntaps, cout, cin) = the live taps of w (cout, cin, k, k). */
void tinymap_transpose_weights(const struct conv_shape *s, const float *w, float *wt);

/* y (cout, n, ho, wo) samples [n0, n0 + nc) = conv(x) without bias. */
void tinymap_forward(const struct conv_shape *s, const float *wt, const float *x, int n0, int nc,
                     float *y, float *work);

/* dwt (ntaps, cout, cin) = beta * dwt + this chunk's weight gradient; if dx != NULL,
 * dx (cin, n, h, w) samples [n0, n0 + nc) = (or += when accumulate) the input gradient. */
void tinymap_backward(const struct conv_shape *s, const float *wt, const float *x, const float *dy,
                      int n0, int nc, float beta, float *dwt, float *dx, bool accumulate,
                      float *work);

#endif
