/* ema: an exponential moving average of the weights (Polyak averaging, as timm's
 * ModelEma and torch.optim.swa_utils.AveragedModel). After optimizer update k (1-based)
 *   ema = d_k * ema + (1 - d_k) * w,   d_k = min(decay, (1 + k) / (10 + k))
 * so that the first updates follow the weights closely (TensorFlow's
 * ExponentialMovingAverage with num_updates). BN's running statistics are averaged the
 * same way. Every rank holds the same weights, so every rank's average is the same. */
#ifndef RESNET_DDP_EMA_H
#define RESNET_DDP_EMA_H

#include <stddef.h>
#include <stdint.h>

/* d_k of update k >= 1. */
double ema_decay_at(double decay, int64_t update);
/* ema[0..n) = d * ema + (1 - d) * w, in float. */
void ema_update(float *ema, const float *w, size_t n, float d);

#endif
