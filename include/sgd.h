/* sgd: stochastic gradient descent over the flat parameter arena, torch.optim.SGD
 * semantics (dampening 0):
 *   g = grad + weight_decay * p
 *   buf = momentum * buf + g            (buf starts at zero, which equals PyTorch's
 *                                        first-step buf = g)
 *   step = nesterov ? g + momentum * buf : buf   (momentum 0: step = g)
 *   p -= lr * step
 * Learning-rate schedules are functions of the global step, so a resumed run and any
 * number of ranks get the same rate. */
#ifndef RESNET_DDP_SGD_H
#define RESNET_DDP_SGD_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "grad.h"

struct sgd {
    double momentum, weight_decay;
    int nesterov;
};

void sgd_init(struct sgd *opt, const struct config *cfg);
/* One update of the n = grads->n parameter floats. */
void sgd_step(const struct sgd *opt, float lr, float *params, const struct grad_arena *grads,
              float *momentum_buf);

/* Learning rate at optimizer step `step` (0-based) with `steps_per_epoch` steps an
 * epoch: warm-up linearly over warmup_epochs (lr * (step + 1) / warm-up steps, at
 * most lr), then constant, step decay every lr_step_epochs epochs, cosine to zero
 * over the rest of the run, or one-cycle: linear from lr to zero at the end of the
 * last epoch, after a warm-up of warmup_epochs or, when that is 0, of the first
 * quarter of the run (rounded up to whole steps). */
double lr_at_step(const struct config *cfg, int64_t step, int64_t steps_per_epoch);

#endif
