/* comm: everything MPI. Works with and without mpirun (a singleton MPI_Init).
 *
 * Nothing else in the program includes mpi.h: ops get a reducer, the trainer calls
 * the functions here. After comm_init, any error_exit on any rank calls MPI_Abort, so
 * one failing rank stops the whole job instead of leaving the others blocked. */
#ifndef RESNET_DDP_COMM_H
#define RESNET_DDP_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "reducer.h"

struct comm_info {
    int rank, world;
    int local_rank, local_world; /* ranks on this node */
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

/* The reducer for synchronized batch-norm over all ranks (NULL sum for one rank). */
struct reducer comm_world_reducer(void);

double comm_wtime(void);

#endif
