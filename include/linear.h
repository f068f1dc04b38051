/* linear: fully connected layer, nn.Linear semantics (y = x W^T + b).
 * The input arrives channel-major from the pooling layer: x is (in, n). */
#ifndef RESNET_DDP_LINEAR_H
#define RESNET_DDP_LINEAR_H

#include "grad.h"

/* y (n, out) = x^T (n, in) . w^T (in, out) + b (out), with x (in, n), w (out, in);
 * one block of samples at a time (a micro-shard or the alignment block, conv.h; 0: the
 * whole batch), as the backward's input gradient. */
void linear_forward(int n, int in, int out, const float *x, const float *w, const float *b,
                    float *y, int block);
/* dw (out, in) += dy^T x^T; db (out) += sum over n of dy; dx (in, n) = w^T dy^T (if
 * dx), a block at a time. The weight gradient of each micro-shard of `shard` samples
 * (0: the whole batch) is computed alone into the float scratch dw_tmp (out, in), as
 * conv does. */
void linear_backward(int n, int in, int out, const float *x, const float *w, const float *dy,
                     struct grad dw, struct grad db, float *dx, int shard, int block,
                     float *dw_tmp);

#endif
