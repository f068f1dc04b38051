/* batchnorm: 2-D batch normalization over channel-major (C, N, H, W) tensors.
 *
 * Semantics of PyTorch's nn.BatchNorm2d: training normalizes with the biased batch
 * variance and updates running_var with the unbiased one (n/(n-1)); momentum 0.1;
 * eps 1e-5. With a reducer the statistics are those of the global batch over all
 * ranks (synchronized BN as torch.nn.SyncBatchNorm): forward reduces per-channel
 * (sum, sum of squares, count), backward reduces per-channel (sum dy, sum dy*xhat).
 * Sums accumulate in double. Each channel is one contiguous row of m = N*H*W. */
#ifndef RESNET_DDP_BATCHNORM_H
#define RESNET_DDP_BATCHNORM_H

#include <stdbool.h>
#include <stddef.h>

#include "grad.h"
#include "reducer.h"

#define BN_EPS 1e-5f
#define BN_MOMENTUM 0.1f

/* What training-mode forward saves for backward, per BN layer. */
struct bn_saved {
    float *mean;   /* (c) batch mean */
    float *invstd; /* (c) 1 / sqrt(biased var + eps) */
    double count;  /* elements per channel over the global batch */
};

/* y (c, m) = gamma * (x - mean) * invstd + beta with batch statistics; updates the
 * running statistics. work: (2c + 1) doubles of scratch. */
void batchnorm_forward_train(int c, size_t m, const float *x, const float *gamma,
                             const float *beta, float *y, struct bn_saved *saved,
                             float *running_mean, float *running_var,
                             const struct reducer *red, double *work);

/* The two halves of forward_train's statistics, for callers that see x in pieces:
 * sum, sumsq (c each) += the per-channel sums of x (c, m) ... */
void batchnorm_accumulate(int c, size_t m, const float *x, double *sum, double *sumsq);
/* ... then, with work = (sum, sumsq, one spare) and count = this rank's elements per
 * channel: sums over ranks, saved mean / invstd, running buffers. False if the global
 * batch is empty (nothing updated). */
bool batchnorm_finish_stats(int c, double count, struct bn_saved *saved, float *running_mean,
                            float *running_var, const struct reducer *red, double *work);

/* Evaluation mode: running statistics, no update. */
void batchnorm_forward_eval(int c, size_t m, const float *x, const float *gamma,
                            const float *beta, const float *running_mean,
                            const float *running_var, float *y);

/* y (c, m) = relu(BN(x)) with the statistics a training-mode forward saved, computed
 * exactly as that forward computed it (recomputation for backward). */
void batchnorm_relu_recompute(int c, size_t m, const float *x, const float *gamma,
                              const float *beta, const struct bn_saved *saved, float *y);

/* dy (c, m) *= [BN output > 0]: the mask of a ReLU that followed a training-mode BN,
 * recomputed from the BN input x with the same arithmetic as the forward pass, so the
 * BN output itself need not be kept for backward. */
void batchnorm_relu_mask(int c, size_t m, const float *x, const float *gamma, const float *beta,
                         const struct bn_saved *saved, float *dy);

/* dx (c, m) = dL/dx; dgamma, dbeta += this rank's share of dL/dgamma, dL/dbeta
 * (gradients are summed over ranks later, like every other parameter). dx may alias dy.
 * work: (2c) doubles. */
void batchnorm_backward(int c, size_t m, const float *x, const float *dy, const float *gamma,
                        const struct bn_saved *saved, float *dx, struct grad dgamma,
                        struct grad dbeta, const struct reducer *red, double *work);

#endif
