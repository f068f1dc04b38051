/* reducer: how an op reaches the other ranks without knowing about MPI.
 *
 * Synchronized batch-norm needs per-channel sums over the global batch. Ops receive a
 * reducer; single-process runs pass NULL (local sums are global), tests pass a fake
 * that combines several simulated ranks, and comm.c supplies an MPI_Allreduce. */
#ifndef RESNET_DDP_REDUCER_H
#define RESNET_DDP_REDUCER_H

#include <stddef.h>

struct reducer {
    /* Replace buf[0..n) by its elementwise sum over all participants. */
    void (*sum)(void *ctx, double *buf, size_t n);
    void *ctx;
};

static inline void reducer_sum(const struct reducer *r, double *buf, size_t n)
{
    if (r && r->sum) r->sum(r->ctx, buf, n);
}

#endif
