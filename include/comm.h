/* comm: everything MPI. Works with and without mpirun (a singleton MPI_Init).
 *
 * Nothing else in the program includes mpi.h: ops get a reducer, the trainer calls
 * the functions here. After comm_init, any error_exit on any rank calls MPI_Abort, so
 * one failing rank stops the whole job instead of leaving the others blocked. */
#ifndef RESNET_DDP_COMM_H
#define RESNET_DDP_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "grad.h"
#include "reducer.h"

struct comm_info {
    int rank, world;
    int local_rank, local_world; /* ranks on this node */
    int nodes;                   /* nodes (shared-memory domains) in the job */
};

void comm_init(int *argc, char ***argv, struct comm_info *info);
void comm_finalize(void);

/* Collectives over MPI_COMM_WORLD (no-ops for one rank). */
void comm_bcast_floats(float *buf, size_t n, int root);
void comm_bcast_bytes(void *buf, size_t n, int root);
void comm_allreduce_sum_double(double *buf, size_t n);
void comm_allreduce_sum_float(float *buf, size_t n);
void comm_allreduce_max_double(double *buf, size_t n);
void comm_barrier(void);

/* The reducer for synchronized batch-norm over all ranks (NULL sum for one rank).
 * Time spent inside it accumulates in *seconds when seconds != NULL. */
struct reducer comm_world_reducer(double *seconds);

/* ---- gradient synchronization (bucketed, overlapped with backward) ---------------
 * The gradient arena (grad.h) is cut into buckets of about bucket_mb MiB (counted as
 * doubles). During backward the model reports that [0, ready) is final (parameters
 * are laid out in the order backward finishes them); every bucket wholly inside it is
 * started at once with MPI_Iallreduce and progressed at later reports.
 * grad_sync_finish starts what is left and waits, so after it every rank holds the
 * SUM of all ranks' gradients, in place. With overlap off, finish does one blocking
 * MPI_Allreduce per bucket instead. A double arena (micro-shards) is summed as
 * doubles. With shared_memory and the same number (> 1) of ranks on every node, the
 * arena (float or double) is lent the node's MPI-3 shared window and the node's
 * ranks sum it together, each taking a slice: on one node after backward; across
 * nodes, with overlap, bucket by bucket as the node's ranks are all done with it (an
 * MPI_Ibarrier, the slice sum, an MPI_Iallreduce of the slice with the other nodes),
 * else after backward with one MPI_Allreduce of the slice. */
struct grad_sync;

struct grad_sync *grad_sync_create(struct grad_arena *grads, double bucket_mb, int overlap,
                                   int shared_memory);
void grad_sync_begin_step(struct grad_sync *gs);
void grad_sync_ready(void *gs, size_t ready_floats); /* matches grad_ready_hook */
/* Returns seconds spent waiting. */
double grad_sync_finish(struct grad_sync *gs);
int grad_sync_buckets(const struct grad_sync *gs);
/* Whether sums start during backward (overlap on, and not summed in the shared memory
 * of a single node). */
int grad_sync_overlaps(const struct grad_sync *gs);
/* How the sums are made, for the start-up line: "MPI_Iallreduce", "MPI_Allreduce",
 * "shared memory", or "shared memory + MPI_Iallreduce (or MPI_Allreduce) across nodes". */
const char *grad_sync_method(const struct grad_sync *gs);
void grad_sync_free(struct grad_sync *gs);

/* ---- hang guard ------------------------------------------------------------------
 * Like PyTorch's NCCL watchdog: a thread checks every second whether this rank has
 * been inside one collective for more than timeout_seconds; if so it prints which
 * collective, in which phase and at which step, and ends the process, so mpirun or
 * srun take the whole job down instead of leaving it blocked. For one rank, or a
 * timeout of 0, nothing is started. */
void comm_start_watchdog(double timeout_seconds);
/* What the program is doing (a static string) and its global step, for the message. */
void comm_set_phase(const char *phase, long long step);

#endif
