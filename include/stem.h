/* stem: the network's first layers (7x7/2 convolution with bias, batch-norm, ReLU,
 * 3x3/2 max-pool) computed a chunk of samples at a time, one chunk per thread.
 *
 * The convolution's output and the BN + ReLU output are the two largest tensors of
 * the network (at 96x96: 64 x 48 x 48 floats per image each, 151 MB per 256 images,
 * four times the pooled output). Neither is ever stored: the convolution runs once,
 * in the forward's last pass, and everything else comes from moments of the input.
 * With one input channel, a convolution output is y = w . p + b for the 49-pixel
 * patch p under it, so over a chunk's P positions
 *   sum y = w . S + b P,   sum y^2 = w G w' + 2 b (w . S) + b^2 P,
 *   sum (y - mean) p = w G + (b - mean) S,
 * with S the patches' sum and G = sum p p' their 49 x 49 Gram matrix, in double.
 *   forward (train): pass 1 computes each chunk's S and G (add_moments) and from them
 *     BN's statistics; after they are summed over ranks, pass 2 convolves (sgemm) and
 *     goes straight through BN, ReLU and max-pool to the pooled output, keeping for
 *     each pooled value the position of its maximum in the 3x3 window and whether it
 *     passed the ReLU (one byte);
 *   backward: one pass over the pooled gradients. A pooled gradient g reaches the
 *     BN output only at its window's maximum, if that passed the ReLU (dz there, zero
 *     elsewhere); the pass adds g p into the chunk's D = sum dz p, which also gives
 *     sum dz y = w . D + b sum dz. BN's input gradient dy = k (dz - mean(dz) - xhat
 *     mean(dz xhat)) is never formed: the weight gradient sum dy p' is
 *     k (D - mean(dz) S - mean(dz xhat) invstd (w G + (b - mean) S)).
 * Each thread takes whole chunks with its own buffers and a single-threaded sgemm,
 * so a chunk's convolution output never leaves the thread's cache: a K = 49 GEMM
 * split across threads by OpenBLAS ran slower on 2 threads than on 1. Per-chunk
 * quantities (S, w G, D, BN's sums) are kept apart; each chunk's weight gradient is
 * rounded to float and the chunks are added in chunk order, so results do not depend
 * on the number of threads or on how ranks group the chunks. Chunks never straddle a
 * micro-shard (conv.h). Results equal the unfused layers up to rounding
 * (tests/test_stem.c). The pooled output and the window positions are (C, N, ho, wo),
 * like every activation. Needs one input channel, a 7x7 convolution (a patch row is
 * one 8-float vector) and nn.MaxPool2d(3, 2, 1). The convolution's bias gets no
 * gradient (BN follows it: its true gradient is zero). */
#ifndef RESNET_DDP_STEM_H
#define RESNET_DDP_STEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batchnorm.h"
#include "conv.h"
#include "pool.h"
#include "reducer.h"

/* Per thread: floats of a, col, wtap and padded; doubles of gram; entries of list. */
struct stem_sizes {
    size_t out, col, wtap, padded, gram, list;
};

struct stem {
    struct conv_shape conv;    /* at the planned batch */
    struct maxpool_shape pool; /* over the convolution's output */
    int chunk;                 /* samples per chunk (a thread's unit of work) */
    int threads;               /* threads with buffers of their own */
    int max_chunks;            /* chunks of the planned batch, at most */
    int shard;                 /* block (conv.h: a micro-shard or the alignment): chunks end at its boundaries */
    struct stem_sizes per_thread;
    /* Per thread: */
    float *a;                  /* (cout, chunk, conv ho, wo): the convolution's output */
    float *col;                /* the convolution's column workspace for a chunk */
    float *wtap;               /* its live-tap weights (conv.h), if it needs them */
    float *padded;             /* the chunk's images with their zero border (+ 8 floats) */
    double *gram;              /* (49, 49): the chunk's G */
    int *list_at;              /* (pool ho * wo): where the gradients of a pooled plane land */
    float *list_g;             /* (pool ho * wo): and what they are */
    /* Per chunk, (max_chunks, ...): */
    double *sums;              /* 2 * cout: BN statistics, then BN's gradient sums */
    double *colsum;            /* 49: S */
    float *wg;                 /* (cout, 49): w G */
    float *dsum;               /* (cout, 49): D */
    uint8_t *argmax;           /* (cout, batch, pool ho, wo): ky * 3 + kx of each maximum,
                                * | STEM_RELU_PASSED if it passed the ReLU */
};

/* Parameters, buffers and gradient accumulators of the stem's convolution and BN. */
struct stem_params {
    const float *w, *b, *gamma, *beta;
    float *running_mean, *running_var;
    struct bn_saved *saved;
    struct grad dw, dgamma, dbeta;
};

#define STEM_K 7                /* the convolution's kernel size */
#define STEM_TAPS (STEM_K * STEM_K)
#define STEM_RELU_PASSED 0x80   /* argmax flag */

/* Samples per chunk for a convolution of this shape: about 1 MB of buffers per
 * thread (a core's L2), at least one sample, at most the planned batch. */
int stem_chunk_samples(const struct conv_shape *conv);

/* Sets everything in st but its buffers: shapes, chunk, threads, shard, max_chunks
 * and per_thread (the caller allocates the buffers by those). */
void stem_plan(struct stem *st, const struct conv_shape *conv, const struct maxpool_shape *pool,
               int chunk, int threads, int shard);

/* pooled (cout, n, ho, wo) = maxpool(relu(bn(conv(input)))) for input (1, n, h, w).
 * train: batch statistics (summed through red; work: 2 * cout + 1 doubles) and
 * running buffers updated; else running statistics. */
void stem_forward(const struct stem *st, const struct stem_params *p, int n, const float *input,
                  bool train, float *pooled, const struct reducer *red, double *work);

/* Given dpooled (cout, n, pool ho, wo) of the last training forward: dw, dgamma,
 * dbeta += this rank's gradients (the input needs none). work: 2 * cout doubles. */
void stem_backward(const struct stem *st, const struct stem_params *p, int n, const float *input,
                   const float *dpooled, const struct reducer *red, double *work);

#endif
