/* comm: MPI start-up, collectives and the agreed abort; see comm.h. */
#include "comm.h"

#include <limits.h>
#include <mpi.h>

#include "error.h"

static int comm_world_size = 1;

static void abort_all(int code)
{
    /* One failing rank takes the job down; the message was printed already. */
    MPI_Abort(MPI_COMM_WORLD, code);
    _Exit(code);
}

void comm_init(int *argc, char ***argv, struct comm_info *info)
{
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        error_exit(EXIT_CODE_INTERNAL, "MPI_Init failed");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    MPI_Comm_rank(MPI_COMM_WORLD, &info->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &info->world);
    comm_world_size = info->world;

    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, info->rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &info->local_rank);
    MPI_Comm_size(node, &info->local_world);
    MPI_Comm_free(&node);

    if (info->world > 1) {
        error_set_abort_hook(abort_all);
        error_set_rank(info->rank);
    }
}

void comm_finalize(void) { MPI_Finalize(); }

/* MPI counts are int: large buffers go in pieces. */
#define CHUNK ((size_t)INT_MAX / 2)

void comm_bcast_floats(float *buf, size_t n, int root)
{
    if (comm_world_size == 1) return;
    for (size_t off = 0; off < n; off += CHUNK)
        MPI_Bcast(buf + off, (int)(n - off < CHUNK ? n - off : CHUNK), MPI_FLOAT, root, MPI_COMM_WORLD);
}

void comm_bcast_bytes(void *buf, size_t n, int root)
{
    if (comm_world_size == 1) return;
    for (size_t off = 0; off < n; off += CHUNK)
        MPI_Bcast((char *)buf + off, (int)(n - off < CHUNK ? n - off : CHUNK), MPI_BYTE, root,
                  MPI_COMM_WORLD);
}

void comm_allreduce_sum_double(double *buf, size_t n)
{
    if (comm_world_size == 1) return;
    for (size_t off = 0; off < n; off += CHUNK)
        MPI_Allreduce(MPI_IN_PLACE, buf + off, (int)(n - off < CHUNK ? n - off : CHUNK),
                      MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

void comm_allreduce_sum_float(float *buf, size_t n)
{
    if (comm_world_size == 1) return;
    for (size_t off = 0; off < n; off += CHUNK)
        MPI_Allreduce(MPI_IN_PLACE, buf + off, (int)(n - off < CHUNK ? n - off : CHUNK),
                      MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}

void comm_allreduce_max_double(double *buf, size_t n)
{
    if (comm_world_size == 1) return;
    MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
}

void comm_barrier(void)
{
    if (comm_world_size > 1) MPI_Barrier(MPI_COMM_WORLD);
}

static void world_sum(void *ctx, double *buf, size_t n)
{
    (void)ctx;
    comm_allreduce_sum_double(buf, n);
}

struct reducer comm_world_reducer(void)
{
    struct reducer r = {comm_world_size > 1 ? world_sum : NULL, NULL};
    return r;
}

double comm_wtime(void) { return MPI_Wtime(); }
