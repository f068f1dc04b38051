/* sgd: momentum SGD with weight decay and Nesterov, and the learning-rate schedules
 * (step decay; cosine as in Loshchilov & Hutter 2017 without restarts; linear
 * warm-up as in Goyal et al. 2017; the triangular one-cycle of Smith & Topin 2019,
 * as fast-training recipes such as airbench use it). */
#include "sgd.h"

#include <math.h>

void sgd_init(struct sgd *opt, const struct config *cfg)
{
    opt->momentum = cfg->momentum;
    opt->weight_decay = cfg->weight_decay;
    opt->nesterov = cfg->nesterov;
}

/* The update with gradients from gd (double) or else gf (float): one loop for both,
 * compiled for each (the choice is a constant after inlining). */
static inline __attribute__((always_inline)) void step(const struct sgd *opt, float lr, size_t n,
                                                       float *params, const double *gd,
                                                       const float *gf, float *momentum_buf)
{
    const float wd = (float)opt->weight_decay, mu = (float)opt->momentum;
    if (mu == 0.0f) {
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++)
            params[i] -= lr * ((gd ? (float)gd[i] : gf[i]) + wd * params[i]);
        return;
    }
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float g = (gd ? (float)gd[i] : gf[i]) + wd * params[i];
        float buf = mu * momentum_buf[i] + g;
        momentum_buf[i] = buf;
        params[i] -= lr * (opt->nesterov ? g + mu * buf : buf);
    }
}

void sgd_step(const struct sgd *opt, float lr, float *params, const struct grad_arena *grads,
              float *momentum_buf)
{
    if (grads->d)
        step(opt, lr, grads->n, params, grads->d, NULL, momentum_buf);
    else
        step(opt, lr, grads->n, params, NULL, grads->f, momentum_buf);
}

/* The warm-up length in steps. One-cycle without one rises over the first quarter of
 * the run, in whole steps so that its ramp ends at lr rather than above it. */
static double warmup_steps(const struct config *cfg, int64_t steps_per_epoch)
{
    if (cfg->schedule == LR_SCHEDULE_ONECYCLE && cfg->warmup_epochs == 0)
        return ceil(0.25 * (double)cfg->epochs * (double)steps_per_epoch);
    return cfg->warmup_epochs * (double)steps_per_epoch;
}

double lr_at_step(const struct config *cfg, int64_t step, int64_t steps_per_epoch)
{
    const double epoch = (double)step / (double)steps_per_epoch;
    const double warmup = warmup_steps(cfg, steps_per_epoch);
    const double total = (double)cfg->epochs * (double)steps_per_epoch;
    /* A fractional step count would take the ramp's last step above lr. */
    if (warmup > 0 && (double)step < warmup)
        return fmin(cfg->lr, cfg->lr * ((double)step + 1.0) / warmup);
    switch (cfg->schedule) {
    case LR_SCHEDULE_STEP:
        return cfg->lr * pow(cfg->lr_gamma, floor(epoch / cfg->lr_step_epochs));
    case LR_SCHEDULE_COSINE: {
        double span = total - warmup, done = (double)step - warmup;
        if (span <= 0) return cfg->lr;
        return 0.5 * cfg->lr * (1.0 + cos(3.14159265358979323846 * done / span));
    }
    case LR_SCHEDULE_ONECYCLE:
        /* Linear from lr after the warm-up to 0 at the end of the last epoch, so the
         * last step still gets a small positive rate. */
        if ((double)step >= total) return 0.0;
        return cfg->lr * (total - (double)step) / (total - warmup);
    default: return cfg->lr;
    }
}
