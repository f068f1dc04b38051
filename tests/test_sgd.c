/* test_sgd: sgd_init / sgd_step and lr_at_step (sgd.c).
 *
 * sgd_step against a hand-written double reference of torch.optim.SGD (dampening 0,
 * the first step's buffer = g, weight decay added to the gradient, Nesterov
 * g + momentum * buf) over six steps with changing learning rates, for momentum 0
 * with and without weight decay, momentum 0.9, and Nesterov with weight decay;
 * parameters and momentum buffers must match to 1e-5 relative after every step.
 * lr_at_step: constant, step decay (x0.1 every 2 epochs), cosine (lr at the start,
 * half way at the middle, near 0 at the end, never increasing), linear warm-up
 * (lr * (step + 1) / warmup steps, also for a fractional epoch, and never above lr
 * for a fractional step count) before constant, step and cosine schedules;
 * one-cycle (ramp over the first quarter of the run, in whole steps, or over
 * warmup_epochs; lr at the peak, half of it half way down, lr / decay steps at the
 * last step, 0 after the end; never above lr, rising then falling). */
#include "config.h"
#include "sgd.h"
#include "testutil.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define N 37
#define STEPS 6

static void check_sgd(const char *tag, double momentum, double weight_decay, bool nesterov)
{
    struct config cfg;
    config_defaults(&cfg);
    cfg.momentum = momentum;
    cfg.weight_decay = weight_decay;
    cfg.nesterov = nesterov;
    struct sgd opt;
    sgd_init(&opt, &cfg);
    EXPECT(opt.momentum == momentum && opt.weight_decay == weight_decay &&
               (opt.nesterov != 0) == nesterov,
           "%s: sgd_init copied momentum %g, weight_decay %g, nesterov %d", tag, opt.momentum,
           opt.weight_decay, opt.nesterov);

    float p[N], buf[N], pf[N], buff[N], gf[N];
    double g[N];
    /* The same steps from a double and from a float arena: SGD reads a double as the
     * float it rounds to, so both must give the same bits. */
    struct grad_arena ad = {.n = N, .d = g}, af = {.n = N, .f = gf};
    double pd[N], bufd[N], got[N];
    for (int i = 0; i < N; i++) {
        p[i] = (float)urand(-1, 1);
        pd[i] = (double)p[i];
        buf[i] = 0.0f;
        bufd[i] = 0.0;
        pf[i] = p[i];
        buff[i] = 0.0f;
    }
    static const float lrs[STEPS] = {0.1f, 0.1f, 0.05f, 0.2f, 0.01f, 0.1f};
    for (int t = 0; t < STEPS; t++) {
        for (int i = 0; i < N; i++) {
            g[i] = urand(-1, 1);
            gf[i] = (float)g[i];
        }
        sgd_step(&opt, lrs[t], p, &ad, buf);
        sgd_step(&opt, lrs[t], pf, &af, buff);
        EXPECT(memcmp(p, pf, sizeof p) == 0 && memcmp(buf, buff, sizeof buf) == 0,
               "%s step %d: float and double gradient arenas give different parameters", tag, t);
        /* torch.optim.SGD.step() for one parameter, in double */
        for (int i = 0; i < N; i++) {
            double d = g[i];
            if (weight_decay != 0) d += weight_decay * pd[i];
            if (momentum != 0) {
                bufd[i] = t == 0 ? d : momentum * bufd[i] + d;
                d = nesterov ? d + momentum * bufd[i] : bufd[i];
            }
            pd[i] -= (double)lrs[t] * d;
        }
        char name[128];
        for (int i = 0; i < N; i++) got[i] = (double)p[i];
        snprintf(name, sizeof name, "%s: params after step %d", tag, t + 1);
        expect_close(name, got, pd, N, 1e-5);
        if (momentum != 0) {
            for (int i = 0; i < N; i++) got[i] = (double)buf[i];
            snprintf(name, sizeof name, "%s: momentum buffer after step %d", tag, t + 1);
            expect_close(name, got, bufd, N, 1e-5);
        }
    }
}

static void expect_lr(const char *tag, const struct config *cfg, int64_t step, int64_t spe,
                      double want)
{
    double got = lr_at_step(cfg, step, spe);
    char name[128];
    snprintf(name, sizeof name, "%s: lr at step %lld", tag, (long long)step);
    expect_close(name, &got, &want, 1, 1e-12);
}

static void check_schedules(void)
{
    const double pi = 3.14159265358979323846;
    struct config cfg;
    config_defaults(&cfg);
    cfg.lr = 0.1;

    cfg.schedule = LR_SCHEDULE_CONSTANT;
    expect_lr("constant", &cfg, 0, 10, 0.1);
    expect_lr("constant", &cfg, 5, 10, 0.1);
    expect_lr("constant", &cfg, 12345, 10, 0.1);

    cfg.schedule = LR_SCHEDULE_STEP;
    cfg.lr_step_epochs = 2;
    cfg.lr_gamma = 0.1;
    expect_lr("step", &cfg, 0, 10, 0.1);
    expect_lr("step", &cfg, 19, 10, 0.1);
    expect_lr("step", &cfg, 20, 10, 0.01);
    expect_lr("step", &cfg, 39, 10, 0.01);
    expect_lr("step", &cfg, 40, 10, 0.001);
    expect_lr("step", &cfg, 45, 10, 0.001);

    cfg.schedule = LR_SCHEDULE_COSINE;
    cfg.epochs = 5;
    expect_lr("cosine", &cfg, 0, 10, 0.1);
    expect_lr("cosine", &cfg, 25, 10, 0.05);
    double prev = INFINITY;
    int monotone = 1;
    for (int64_t s = 0; s < 50; s++) {
        double lr = lr_at_step(&cfg, s, 10);
        double want = 0.5 * 0.1 * (1 + cos(pi * (double)s / 50.0));
        char name[64];
        snprintf(name, sizeof name, "cosine: lr at step %lld", (long long)s);
        expect_close(name, &lr, &want, 1, 1e-12);
        monotone &= lr <= prev;
        prev = lr;
    }
    EXPECT(monotone, "cosine: the rate increased somewhere");
    double last = lr_at_step(&cfg, 49, 10);
    EXPECT(last > 0 && last < 1e-3 * 0.1, "cosine: last rate %g is not near 0", last);

    /* Warm-up: one epoch of 10 steps, linear from lr/10 to lr. */
    cfg.warmup_epochs = 1;
    cfg.schedule = LR_SCHEDULE_CONSTANT;
    for (int64_t s = 0; s < 10; s++)
        expect_lr("warmup+constant", &cfg, s, 10, 0.1 * (double)(s + 1) / 10.0);
    expect_lr("warmup+constant", &cfg, 10, 10, 0.1);
    expect_lr("warmup+constant", &cfg, 99, 10, 0.1);

    cfg.schedule = LR_SCHEDULE_STEP;
    expect_lr("warmup+step", &cfg, 3, 10, 0.04);
    expect_lr("warmup+step", &cfg, 10, 10, 0.1);
    expect_lr("warmup+step", &cfg, 20, 10, 0.01);

    cfg.schedule = LR_SCHEDULE_COSINE;
    expect_lr("warmup+cosine", &cfg, 4, 10, 0.05);
    expect_lr("warmup+cosine", &cfg, 10, 10, 0.1); /* cosine starts after the warm-up */
    expect_lr("warmup+cosine", &cfg, 30, 10, 0.05);
    last = lr_at_step(&cfg, 49, 10);
    EXPECT(last > 0 && last < 2e-3 * 0.1, "warmup+cosine: last rate %g is not near 0", last);

    cfg.schedule = LR_SCHEDULE_CONSTANT;
    cfg.warmup_epochs = 0.5; /* 5 steps */
    expect_lr("half-epoch warmup", &cfg, 0, 10, 0.02);
    expect_lr("half-epoch warmup", &cfg, 4, 10, 0.1);
    expect_lr("half-epoch warmup", &cfg, 5, 10, 0.1);
    cfg.warmup_epochs = 0.55; /* 5.5 steps: step 5 would get 6 / 5.5 of lr */
    expect_lr("5.5-step warmup", &cfg, 4, 10, 0.1 * 5.0 / 5.5);
    expect_lr("5.5-step warmup", &cfg, 5, 10, 0.1);
}

/* One-cycle over epochs x spe steps with the ramp ending at `peak` steps: every step
 * against the triangle, rising up to the peak, falling after it, never above lr. */
static void check_onecycle_shape(const char *tag, const struct config *cfg, int64_t spe,
                                 int64_t peak)
{
    const int64_t total = cfg->epochs * spe;
    double prev = 0.0;
    int rising = 1, falling = 1, bounded = 1;
    for (int64_t s = 0; s < total; s++) {
        double lr = lr_at_step(cfg, s, spe);
        double want = s < peak ? cfg->lr * (double)(s + 1) / (double)peak
                               : cfg->lr * (double)(total - s) / (double)(total - peak);
        char name[96];
        snprintf(name, sizeof name, "%s: lr at step %lld", tag, (long long)s);
        expect_close(name, &lr, &want, 1, 1e-12);
        if (s < peak) rising &= lr > prev;
        if (s > peak) falling &= lr < prev;
        bounded &= lr > 0 && lr <= cfg->lr * (1 + 1e-15); /* lr * k / k may round up */
        prev = lr;
    }
    EXPECT(rising, "%s: the rate does not rise over the warm-up", tag);
    EXPECT(falling, "%s: the rate does not fall after the peak", tag);
    EXPECT(bounded, "%s: a rate is not in (0, lr]", tag);
}

static void check_onecycle(void)
{
    struct config cfg;
    config_defaults(&cfg);
    cfg.lr = 0.1;
    cfg.schedule = LR_SCHEDULE_ONECYCLE;

    /* 4 epochs of 10 steps, no warmup_epochs: up over steps 0..9, down over 10..39. */
    cfg.epochs = 4;
    expect_lr("onecycle", &cfg, 0, 10, 0.01);
    expect_lr("onecycle", &cfg, 9, 10, 0.1);
    expect_lr("onecycle", &cfg, 10, 10, 0.1);
    expect_lr("onecycle", &cfg, 25, 10, 0.05);
    expect_lr("onecycle", &cfg, 39, 10, 0.1 / 30.0);
    expect_lr("onecycle", &cfg, 40, 10, 0.0);
    check_onecycle_shape("onecycle", &cfg, 10, 10);

    /* 3 epochs of 7 steps: a quarter is 5.25 steps, so the ramp takes 6 and ends at lr. */
    cfg.epochs = 3;
    expect_lr("onecycle 21 steps", &cfg, 5, 7, 0.1);
    expect_lr("onecycle 21 steps", &cfg, 6, 7, 0.1);
    check_onecycle_shape("onecycle 21 steps", &cfg, 7, 6);

    /* warmup_epochs sets the ramp instead: 2 of 4 epochs. */
    cfg.epochs = 4;
    cfg.warmup_epochs = 2;
    expect_lr("onecycle warmup 2", &cfg, 0, 10, 0.005);
    expect_lr("onecycle warmup 2", &cfg, 19, 10, 0.1);
    expect_lr("onecycle warmup 2", &cfg, 30, 10, 0.05);
    check_onecycle_shape("onecycle warmup 2", &cfg, 10, 20);

    /* All warm-up: the rate reaches lr at the last step. */
    cfg.warmup_epochs = 4;
    expect_lr("onecycle all warm-up", &cfg, 39, 10, 0.1);
    expect_lr("onecycle all warm-up", &cfg, 40, 10, 0.0);
}

int main(void)
{
    urand_seed(0x56dull, 8);
    check_sgd("plain", 0.0, 0.0, false);
    check_sgd("weight decay", 0.0, 1e-2, false);
    check_sgd("momentum 0.9", 0.9, 0.0, false);
    check_sgd("momentum 0.9 + weight decay", 0.9, 5e-4, false);
    check_sgd("nesterov 0.9 + weight decay", 0.9, 1e-2, true);
    check_schedules();
    check_onecycle();
    return test_summary("test_sgd");
}
