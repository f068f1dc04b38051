/* stem: the network's first layers (7x7/2 convolution with bias, batch-norm, ReLU,
 * 3x3/2 max-pool) computed a chunk of samples at a time, one chunk per thread.
 *
 * The convolution's output and the BN + ReLU output are the two largest tensors of
 * the network (at 96x96: 64 x 48 x 48 floats per image each, 151 MB per 256 images,
 * four times the pooled output). Here neither is ever stored whole: the convolution
 * (1.5% of the network's FLOPs) is recomputed chunk by chunk instead.
 *   forward (train): pass 1 convolves each chunk and adds up the BN statistics;
 *     after they are summed over ranks, pass 2 convolves again and goes straight
 *     through BN, ReLU and max-pool to the pooled output, keeping for each pooled
 *     value the position of its maximum in the 3x3 window (one byte);
 *   backward: pass 1 convolves each chunk again and adds up BN's two gradient sums
 *     from the pooled gradients alone (each lands on its window's maximum, if that
 *     passed the ReLU); pass 2 convolves once more, scatters the pooled gradient,
 *     applies BN's input gradient and computes the chunk's weight gradient.
 * Where the convolution's output is small (stem_keeps_output: 28x28 inputs), it is
 * kept, chunk by chunk, from the forward's pass 1 until the backward, and the three
 * later passes read it instead of convolving again.
 * Each thread takes whole chunks with its own buffers and single-threaded GEMMs, so
 * a chunk's convolution output never leaves the thread's cache: a K = 49 GEMM split
 * across threads by OpenBLAS ran slower on 2 threads than on 1. Per-chunk sums (BN
 * statistics, gradient sums, weight gradients) are kept apart and added in chunk
 * order, so results do not depend on the number of threads. Chunks never straddle a
 * micro-shard (conv.h). Results equal the unfused layers up to rounding
 * (tests/test_stem.c). The pooled output and the window positions are (C, N, ho,
 * wo), like every activation. Needs one input channel (the input of a chunk is then
 * contiguous) and nn.MaxPool2d(3, 2, 1). */
#ifndef RESNET_DDP_STEM_H
#define RESNET_DDP_STEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batchnorm.h"
#include "conv.h"
#include "pool.h"
#include "reducer.h"

/* Floats of each per-thread buffer: a and d, col, wtap, dw_work. */
struct stem_sizes {
    size_t out, col, wtap, dw;
};

struct stem {
    struct conv_shape conv;    /* at the planned batch */
    struct maxpool_shape pool; /* over the convolution's output */
    int chunk;                 /* samples per chunk (a thread's unit of work) */
    int threads;               /* threads with buffers of their own */
    int max_chunks;            /* chunks of the planned batch, at most */
    int shard;                 /* block (conv.h: a micro-shard or the alignment): chunks end at its boundaries */
    bool keep;                 /* the convolution's output is kept in `kept` */
    struct stem_sizes per_thread;
    /* Per thread: */
    float *a;                  /* (cout, chunk, conv ho, wo): the convolution's output */
    float *d;                  /* same size: its gradient */
    float *col;                /* the convolution's column workspace for a chunk */
    float *wtap;               /* its live-tap weights (conv.h), if it needs them */
    float *dw_work;            /* one chunk's float weight gradient */
    /* Per chunk: */
    float *kept;               /* (max_chunks, per_thread.out) if keep: chunk i's output */
    double *sums;              /* 2 * cout: BN statistics, then BN's gradient sums */
    double *grads;             /* cout * k * k + cout: the weight and bias gradient */
    uint8_t *argmax;           /* (cout, batch, pool ho, wo): ky * 3 + kx of each maximum */
};

/* Parameters, buffers and gradient accumulators of the stem's convolution and BN. */
struct stem_params {
    const float *w, *b, *gamma, *beta;
    float *running_mean, *running_var;
    struct bn_saved *saved;
    struct grad dw, db, dgamma, dbeta;
};

/* Samples per chunk for a convolution of this shape: about 1 MB of buffers per
 * thread (a core's L2), at least one sample, at most the planned batch. */
int stem_chunk_samples(const struct conv_shape *conv);

/* Whether the convolution's output is worth keeping for a batch of this shape: at
 * most 32 MiB (28x28 at batch 256 yes, 96x96 never). Keeping it saves three of the
 * four convolution passes (docs/DESIGN.md "Fused stem"). */
bool stem_keeps_output(const struct conv_shape *conv);

/* Sets everything in st but its buffers: shapes, chunk, threads, shard, keep,
 * max_chunks and per_thread (the caller allocates the buffers by those; kept holds
 * max_chunks * per_thread.out floats when keep). */
void stem_plan(struct stem *st, const struct conv_shape *conv, const struct maxpool_shape *pool,
               int chunk, int threads, int shard, bool keep);

/* pooled (cout, n, ho, wo) = maxpool(relu(bn(conv(input)))) for input (1, n, h, w).
 * train: batch statistics (summed through red; work: 2 * cout + 1 doubles) and
 * running buffers updated; else running statistics. */
void stem_forward(const struct stem *st, const struct stem_params *p, int n, const float *input,
                  bool train, float *pooled, const struct reducer *red, double *work);

/* Given dpooled (cout, n, pool ho, wo) of the last training forward: dw, db, dgamma,
 * dbeta += this rank's gradients (the input needs none; db none when grad_none()). */
void stem_backward(const struct stem *st, const struct stem_params *p, int n, const float *input,
                   const float *dpooled, const struct reducer *red, double *work);

#endif
