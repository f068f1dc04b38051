/* profile: the per-layer table of a profiled epoch; see profile.h. */
#include "profile.h"

#include <stdio.h>
#include <string.h>

void profile_print(struct resnet_profile *p, int64_t steps, double allreduce_wait, double bn_sync,
                   double optimizer)
{
    if (steps <= 0) return;
    const double per = 1000.0 / (double)steps; /* ms per step */
    double conv_f = 0, conv_b = 0, other_f = 0, other_b = 0, flops = 0;
    printf("# profile over %lld steps: milliseconds per step (GFLOP/s)\n", (long long)steps);
    printf("#   %-22s %10s %10s %8s %8s\n", "layer", "forward", "backward", "GF/s fw", "GF/s bw");
    for (int i = 0; i < p->nconv; i++) {
        const struct conv_profile *c = &p->conv[i];
        double bwd_flops = 2.0 * c->macs * (c->input_grad ? 2.0 : 1.0);
        printf("#   %-22s %10.2f %10.2f %8.1f %8.1f\n", c->name ? c->name : "?", c->fwd * per,
               c->bwd * per, c->fwd > 0 ? 2.0 * c->macs / c->fwd / 1e9 : 0.0,
               c->bwd > 0 ? bwd_flops / c->bwd / 1e9 : 0.0);
        conv_f += c->fwd;
        conv_b += c->bwd;
        flops += 2.0 * c->macs + bwd_flops;
    }
    static const char *kinds[PROF_KINDS] = {"batch-norm", "relu / add", "pooling", "pool+fc+loss"};
    for (int k = 0; k < PROF_KINDS; k++) {
        printf("#   %-22s %10.2f %10.2f\n", kinds[k], p->fwd[k] * per, p->bwd[k] * per);
        other_f += p->fwd[k];
        other_b += p->bwd[k];
    }
    printf("#   %-22s %10.2f %10.2f   (%.1f GFLOP/s over all convolutions)\n", "convolutions",
           conv_f * per, conv_b * per, conv_f + conv_b > 0 ? flops / (conv_f + conv_b) / 1e9 : 0.0);
    printf("#     of which im2col %.2f, col2im %.2f, GEMM (Winograd, tinymap: with their data "
           "transforms) %.2f, filter transforms (Winograd, tinymap) %.2f\n",
           p->parts.im2col * per, p->parts.col2im * per, p->parts.gemm * per,
           p->parts.transform * per);
    printf("#   %-22s %10.2f %10.2f\n", "total", (conv_f + other_f) * per, (conv_b + other_b) * per);
    printf("#   allreduce wait %.2f, BN synchronization %.2f (inside batch-norm), optimizer %.2f\n",
           allreduce_wait * per, bn_sync * per, optimizer * per);
    for (int i = 0; i < p->nconv; i++) p->conv[i].fwd = p->conv[i].bwd = p->conv[i].macs = 0;
    memset(p->fwd, 0, sizeof p->fwd);
    memset(p->bwd, 0, sizeof p->bwd);
    memset(&p->parts, 0, sizeof p->parts);
}
