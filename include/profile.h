/* profile: where the time of training steps goes, per convolution and per kind of
 * op, filled by the model while profiling is on ([train] profile), and the table
 * printed after each epoch (docs/PERFORMANCE.md shows one). */
#ifndef RESNET_DDP_PROFILE_H
#define RESNET_DDP_PROFILE_H

#include <stdbool.h>
#include <stdint.h>

#include "conv.h"

enum prof_kind { PROF_BN, PROF_RELU, PROF_POOL, PROF_HEAD, PROF_KINDS };

struct conv_profile {
    const char *name;  /* the conv's weight name */
    double fwd, bwd;   /* seconds */
    double macs;       /* forward multiply-adds summed over the images seen */
    bool input_grad;   /* backward computes dx too (all but the stem) */
};

struct resnet_profile {
    bool enabled;
    int nconv;
    struct conv_profile *conv;
    double fwd[PROF_KINDS], bwd[PROF_KINDS];
    struct conv_timing parts; /* im2col, col2im, GEMM inside the convolutions */
};

/* Prints the table of `steps` steps (ms per step, GFLOP/s) with the step's other
 * phases, then clears the counts. */
void profile_print(struct resnet_profile *p, int64_t steps, double allreduce_wait, double bn_sync,
                   double optimizer);

#endif
