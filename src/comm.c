/* comm: MPI start-up, collectives, the gradient sums and the job-wide abort; see comm.h. */
#include "comm.h"

#include <limits.h>
#include <mpi.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "error.h"

static int comm_world_size = 1;
static int comm_rank;

/* ---- hang guard ------------------------------------------------------------------- */

static _Atomic(const char *) guard_op;      /* collective in progress, or NULL */
static _Atomic(const char *) guard_phase = "start-up";
static _Atomic long long guard_step;
static _Atomic double guard_since;
static double guard_timeout;

static double monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void guard_enter(const char *op)
{
    atomic_store(&guard_since, monotonic_seconds());
    atomic_store(&guard_op, op);
}

static void guard_leave(void) { atomic_store(&guard_op, NULL); }

static void *watchdog(void *arg)
{
    (void)arg;
    for (;;) {
        struct timespec second = {1, 0};
        nanosleep(&second, NULL);
        const char *op = atomic_load(&guard_op);
        double waited = monotonic_seconds() - atomic_load(&guard_since);
        if (op && waited > guard_timeout) {
            /* Only the main thread may call MPI (MPI_THREAD_FUNNELED): end the
             * process; the launcher then takes the other ranks down. */
            fprintf(stderr,
                    "resnet_ddp: error: [rank %d] stuck %.0f s in %s during %s at global step %lld "
                    "(expected at most [dist] timeout = %.0f s): another rank is dead or hung; "
                    "aborting the job\n",
                    comm_rank, waited, op, atomic_load(&guard_phase), atomic_load(&guard_step),
                    guard_timeout);
            fflush(stderr);
            _exit(EXIT_CODE_INTERNAL);
        }
    }
    return NULL;
}

void comm_start_watchdog(double timeout_seconds)
{
    if (comm_world_size == 1 || timeout_seconds <= 0) return;
    guard_timeout = timeout_seconds;
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, watchdog, NULL) == 0, "cannot start the watchdog thread");
    pthread_detach(thread);
}

void comm_set_phase(const char *phase, long long step)
{
    atomic_store(&guard_phase, phase);
    atomic_store(&guard_step, step);
}

static void abort_all(int code)
{
    /* One failing rank takes the job down; the message was printed already. */
    MPI_Abort(MPI_COMM_WORLD, code);
    _Exit(code);
}

void comm_init(int *argc, char ***argv, struct comm_info *info)
{
    int provided = 0;
    /* Open MPI's non-blocking allreduce (libnbc) takes a binomial tree (reduce to one
     * rank, then broadcast) for every in-place call on fewer than 4 ranks, about 4x
     * slower than Rabenseifner's reduce-scatter + allgather (3), which it falls back
     * from to a ring when a bucket is too short. A user's own setting wins; other MPIs
     * ignore the variable. */
    setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "3", 0);
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        error_exit(EXIT_CODE_INTERNAL, "MPI_Init failed");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    MPI_Comm_rank(MPI_COMM_WORLD, &info->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &info->world);
    comm_world_size = info->world;
    comm_rank = info->rank;

    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, info->rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &info->local_rank);
    MPI_Comm_size(node, &info->local_world);
    MPI_Comm_free(&node);
    int leader = info->local_rank == 0;
    MPI_Allreduce(&leader, &info->nodes, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);

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
    guard_enter("MPI_Bcast");
    for (size_t off = 0; off < n; off += CHUNK)
        MPI_Bcast(buf + off, (int)(n - off < CHUNK ? n - off : CHUNK), MPI_FLOAT, root, MPI_COMM_WORLD);
    guard_leave();
}

void comm_bcast_bytes(void *buf, size_t n, int root)
{
    if (comm_world_size == 1) return;
    guard_enter("MPI_Bcast");
    for (size_t off = 0; off < n; off += CHUNK)
        MPI_Bcast((char *)buf + off, (int)(n - off < CHUNK ? n - off : CHUNK), MPI_BYTE, root,
                  MPI_COMM_WORLD);
    guard_leave();
}

void comm_allreduce_sum_double(double *buf, size_t n)
{
    if (comm_world_size == 1) return;
    guard_enter("MPI_Allreduce");
    for (size_t off = 0; off < n; off += CHUNK)
        MPI_Allreduce(MPI_IN_PLACE, buf + off, (int)(n - off < CHUNK ? n - off : CHUNK),
                      MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    guard_leave();
}

void comm_allreduce_sum_float(float *buf, size_t n)
{
    if (comm_world_size == 1) return;
    guard_enter("MPI_Allreduce");
    for (size_t off = 0; off < n; off += CHUNK)
        MPI_Allreduce(MPI_IN_PLACE, buf + off, (int)(n - off < CHUNK ? n - off : CHUNK),
                      MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    guard_leave();
}

void comm_allreduce_max_double(double *buf, size_t n)
{
    if (comm_world_size == 1) return;
    guard_enter("MPI_Allreduce");
    MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    guard_leave();
}

void comm_barrier(void)
{
    if (comm_world_size == 1) return;
    guard_enter("MPI_Barrier");
    MPI_Barrier(MPI_COMM_WORLD);
    guard_leave();
}

static void world_sum(void *ctx, double *buf, size_t n)
{
    double t0 = MPI_Wtime();
    comm_allreduce_sum_double(buf, n);
    if (ctx) *(double *)ctx += MPI_Wtime() - t0;
}

struct reducer comm_world_reducer(double *seconds)
{
    struct reducer r = {comm_world_size > 1 ? world_sum : NULL, seconds};
    return r;
}

/* ---- gradient synchronization ------------------------------------------------------ */

struct grad_sync {
    struct grad_arena *grads; /* the model's; float ones may be lent the node's window */
    size_t n;
    int overlap;
    int nbuckets;
    size_t *bounds;        /* (nbuckets + 1) bucket edges in floats */
    MPI_Request *requests; /* (nbuckets) each bucket's allreduce (over all ranks, or of its
                              slice across nodes) */
    MPI_Request *barriers; /* (nbuckets) across nodes overlapped: the node's ranks are done
                              with the bucket */
    int started;           /* buckets [0, started) are in flight or done */
    int summed;            /* across nodes overlapped: buckets [0, summed) slice-summed */
    struct node_sum *node; /* sums in shared memory, or NULL */
    bool node_overlap;     /* the node sum is overlapped with backward bucket by bucket */
};

/* ---- summing the gradients in the node's shared memory ----------------------------
 * Open MPI's allreduce between ranks of one machine copies every float through its
 * shared-memory FIFOs and sums it on both ranks. With the gradients of a node's ranks
 * in one MPI-3 shared window each rank instead sums its 1/L slice of all L arrays and
 * writes the sum into every array, reading each float once (about 7x faster for
 * ResNet-18 on 2 ranks, docs/DESIGN.md "Memory"). Across nodes the slice is then
 * allreduced with the ranks of the same local rank on the other nodes (hierarchical,
 * like Horovod's). */
struct node_sum {
    MPI_Comm node;   /* the ranks sharing this window */
    MPI_Comm cross;  /* same local rank on every node, or MPI_COMM_NULL (one node) */
    MPI_Win win;
    int local, local_n;
    bool doubles;    /* the arena's values: double (micro-shards) or float */
    void **arrays;   /* (local_n) every local rank's gradients, mapped here */
};

/* Ranks per "node" for tests: RESNET_DDP_NODE_SIZE=k cuts each real node's ranks into
 * groups of k, so one machine can run the cross-node path. */
static int test_node_size(void)
{
    const char *v = getenv("RESNET_DDP_NODE_SIZE");
    return v && atoi(v) > 0 ? atoi(v) : 0;
}

/* Whether the window's backing directory can hold bytes more (Open MPI puts shared
 * windows in /dev/shm, which containers often keep small: running out there would be
 * a SIGBUS at first touch, not an error). */
static int backing_has_room(double bytes)
{
    const char *dir = getenv("OMPI_MCA_osc_sm_backing_directory");
    struct statvfs fs;
    if (statvfs(dir && *dir ? dir : "/dev/shm", &fs) != 0) return 0;
    return (double)fs.f_bavail * (double)fs.f_frsize > 1.25 * bytes;
}

/* Collective over all ranks: the shared window (this rank's n zeroed values, double
 * or float, in *values), or NULL where it does not apply (one rank per node, nodes of
 * different sizes, no room), which every rank agrees on. */
static struct node_sum *node_sum_create(size_t n, bool doubles, void **values)
{
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, comm_rank, MPI_INFO_NULL, &node);
    int local, local_n, k = test_node_size();
    MPI_Comm_rank(node, &local);
    if (k) {
        MPI_Comm part;
        MPI_Comm_split(node, local / k, local, &part);
        MPI_Comm_free(&node);
        node = part;
        MPI_Comm_rank(node, &local);
    }
    MPI_Comm_size(node, &local_n);
    /* Usable only if every node has the same number of ranks, more than one, and room
     * for its arrays: min and max of local_n, and min of "room", over all ranks. */
    const size_t value_bytes = doubles ? sizeof(double) : sizeof(float);
    const size_t bytes = (n ? n : 1) * value_bytes;
    int mine[3] = {local_n, -local_n, backing_has_room((double)bytes * local_n)}, all[3];
    MPI_Allreduce(mine, all, 3, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (all[0] != -all[1] || all[0] < 2 || !all[2]) {
        MPI_Comm_free(&node);
        return NULL;
    }
    struct node_sum *ns = xcalloc(1, sizeof *ns);
    ns->node = node;
    ns->local = local;
    ns->local_n = local_n;
    ns->doubles = doubles;
    MPI_Info info;
    MPI_Info_create(&info);
    MPI_Info_set(info, "alloc_shared_noncontig", "true"); /* each segment on its own pages */
    MPI_Win_allocate_shared((MPI_Aint)bytes, (int)value_bytes, info, node, values, &ns->win);
    MPI_Info_free(&info);
    MPI_Win_lock_all(MPI_MODE_NOCHECK, ns->win); /* for MPI_Win_sync */
    memset(*values, 0, bytes);
    ns->arrays = xcalloc((size_t)local_n, sizeof *ns->arrays);
    for (int r = 0; r < local_n; r++) {
        MPI_Aint size;
        int unit;
        MPI_Win_shared_query(ns->win, r, &size, &unit, &ns->arrays[r]);
    }
    ns->cross = MPI_COMM_NULL;
    if (comm_world_size > local_n)
        MPI_Comm_split(MPI_COMM_WORLD, local, comm_rank, &ns->cross);
    return ns;
}

/* Every local rank's writes visible to every local rank (MPI-3 unified model). */
static void node_fence(struct node_sum *ns)
{
    MPI_Win_sync(ns->win);
    MPI_Barrier(ns->node);
    MPI_Win_sync(ns->win);
}

/* Sums of the slice [lo, hi) of the L arrays a[] in local rank order, so every
 * rank's copy has the same bits, into a[own], and into every other array too when
 * `all` (one node). Each rank reads and writes only its own slice of every array.
 * One definition for both value types. */
#define DEFINE_SLICE_SUM(name, T)                                                          \
    static void name(T *const *a, int L, int own, size_t lo, size_t hi, int all)         \
    {                                                                                      \
        enum { BLOCK = 2048 };                                                             \
        _Pragma("omp parallel for schedule(static)") for (size_t b = lo; b < hi; b += BLOCK) \
        {                                                                                  \
            const size_t e = b + BLOCK < hi ? b + BLOCK : hi;                              \
            T sum[BLOCK];                                                                  \
            for (size_t i = b; i < e; i++) sum[i - b] = a[0][i];                           \
            for (int r = 1; r < L; r++)                                                    \
                for (size_t i = b; i < e; i++) sum[i - b] += a[r][i];                      \
            for (int r = 0; r < L; r++)                                                    \
                if (r == own || all)                                                       \
                    for (size_t i = b; i < e; i++) a[r][i] = sum[i - b];                   \
        }                                                                                  \
    }
DEFINE_SLICE_SUM(slice_sum_floats, float)
DEFINE_SLICE_SUM(slice_sum_doubles, double)

static size_t node_value_bytes(const struct node_sum *ns)
{
    return ns->doubles ? sizeof(double) : sizeof(float);
}

static MPI_Datatype node_mpi_type(const struct node_sum *ns) { return ns->doubles ? MPI_DOUBLE : MPI_FLOAT; }

/* This rank's slice [*lo, *hi) of the values [from, to): edges on 64-byte lines
 * inside the range, so no two ranks write one cache line of it. */
static void node_slice(const struct node_sum *ns, size_t from, size_t to, size_t *lo, size_t *hi)
{
    const size_t line = 64 / node_value_bytes(ns) - 1, len = to - from;
    const size_t k = (size_t)ns->local, L = (size_t)ns->local_n;
    size_t a = (from + len * k / L) & ~line, b = (from + len * (k + 1) / L) & ~line;
    *lo = k == 0 || a < from ? from : a;
    *hi = k + 1 == L ? to : b < from ? from : b;
}

/* The local ranks' sum of this rank's slice of [from, to), into its own array, and
 * into every local array when `all` (one node). */
static void node_slice_sum(struct node_sum *ns, size_t from, size_t to, int all)
{
    size_t lo, hi;
    node_slice(ns, from, to, &lo, &hi);
    if (ns->doubles)
        slice_sum_doubles((double *const *)ns->arrays, ns->local_n, ns->local, lo, hi, all);
    else
        slice_sum_floats((float *const *)ns->arrays, ns->local_n, ns->local, lo, hi, all);
}

/* This rank's slice of [from, to) in its own array, and a pointer to it. */
static void *node_own_slice(const struct node_sum *ns, size_t from, size_t to, size_t *len)
{
    size_t lo, hi;
    node_slice(ns, from, to, &lo, &hi);
    *len = hi - lo;
    return (char *)ns->arrays[ns->local] + lo * node_value_bytes(ns);
}

/* This rank's slice of [from, to), final in its own array, copied into the others. */
static void node_spread_slice(struct node_sum *ns, size_t from, size_t to)
{
    const size_t bytes = node_value_bytes(ns);
    size_t lo, hi;
    node_slice(ns, from, to, &lo, &hi);
    for (int r = 0; r < ns->local_n; r++)
        if (r != ns->local)
            memcpy((char *)ns->arrays[r] + lo * bytes, (char *)ns->arrays[ns->local] + lo * bytes,
                   (hi - lo) * bytes);
}

/* After backward, all n values: all arrays on this node (and, through cross, on
 * every node) end up holding the sum. */
static void node_sum_run(struct node_sum *ns, size_t n)
{
    guard_enter("MPI_Barrier (gradients in shared memory)");
    node_fence(ns);
    const int one_node = ns->cross == MPI_COMM_NULL;
    node_slice_sum(ns, 0, n, one_node);
    if (!one_node) {
        /* The node's sum of this slice, summed with the same slice of every node. */
        guard_enter("MPI_Allreduce (gradients across nodes)");
        size_t len;
        char *own = node_own_slice(ns, 0, n, &len);
        for (size_t off = 0; off < len; off += CHUNK)
            MPI_Allreduce(MPI_IN_PLACE, own + off * node_value_bytes(ns),
                          (int)(len - off < CHUNK ? len - off : CHUNK), node_mpi_type(ns), MPI_SUM,
                          ns->cross);
        node_spread_slice(ns, 0, n);
        guard_enter("MPI_Barrier (gradients in shared memory)");
    }
    node_fence(ns);
    guard_leave();
}

static void node_sum_free(struct node_sum *ns)
{
    if (!ns) return;
    MPI_Win_unlock_all(ns->win);
    MPI_Win_free(&ns->win);
    if (ns->cross != MPI_COMM_NULL) MPI_Comm_free(&ns->cross);
    MPI_Comm_free(&ns->node);
    free(ns->arrays);
    free(ns);
}

struct grad_sync *grad_sync_create(struct grad_arena *grads, double bucket_mb, int overlap,
                                   int shared_memory)
{
    struct grad_sync *gs = xcalloc(1, sizeof *gs);
    const size_t n = grads->n;
    gs->grads = grads;
    void *window = NULL;
    if (shared_memory && comm_world_size > 1) gs->node = node_sum_create(n, grads->d != NULL, &window);
    if (gs->node) grad_arena_lend(grads, window);
    gs->n = n;
    gs->overlap = overlap;
    /* Within one node the shared-memory sum takes a few ms and waits for the end of
     * backward; across nodes each bucket's slice goes out as soon as every local rank
     * is done with the bucket (docs/SCALING.md). */
    gs->node_overlap = overlap && gs->node && gs->node->cross != MPI_COMM_NULL;
    size_t per = (size_t)(bucket_mb * 1024.0 * 1024.0 / sizeof(double));
    if (per < 1024) per = 1024;
    if (per > CHUNK) per = CHUNK;
    gs->nbuckets = n ? (int)((n + per - 1) / per) : 0;
    gs->bounds = xcalloc((size_t)gs->nbuckets + 1, sizeof *gs->bounds);
    for (int b = 0; b <= gs->nbuckets; b++) gs->bounds[b] = (size_t)b * per < n ? (size_t)b * per : n;
    gs->requests = xcalloc((size_t)gs->nbuckets + 1, sizeof *gs->requests);
    gs->barriers = xcalloc((size_t)gs->nbuckets + 1, sizeof *gs->barriers);
    for (int b = 0; b < gs->nbuckets; b++) gs->requests[b] = gs->barriers[b] = MPI_REQUEST_NULL;
    return gs;
}

void grad_sync_begin_step(struct grad_sync *gs) { gs->started = gs->summed = 0; }

static void start_bucket(struct grad_sync *gs, int b)
{
    size_t lo = gs->bounds[b], hi = gs->bounds[b + 1];
    if (gs->node_overlap) {
        /* This rank is done with the bucket: tell the node's other ranks. */
        MPI_Win_sync(gs->node->win);
        MPI_Ibarrier(gs->node->node, &gs->barriers[b]);
    } else if (gs->grads->f) {
        MPI_Iallreduce(MPI_IN_PLACE, gs->grads->f + lo, (int)(hi - lo), MPI_FLOAT, MPI_SUM,
                       MPI_COMM_WORLD, &gs->requests[b]);
    } else {
        MPI_Iallreduce(MPI_IN_PLACE, gs->grads->d + lo, (int)(hi - lo), MPI_DOUBLE, MPI_SUM,
                       MPI_COMM_WORLD, &gs->requests[b]);
    }
}

/* Across nodes overlapped: every started bucket whose node barrier has completed (in
 * order; waiting for it when `wait`) gets its slice summed over the node's ranks and
 * that slice's MPI_Iallreduce with the other nodes started. */
static void sum_node_buckets(struct grad_sync *gs, int wait)
{
    struct node_sum *ns = gs->node;
    while (gs->summed < gs->started) {
        const int b = gs->summed;
        int done = 1;
        if (wait)
            MPI_Wait(&gs->barriers[b], MPI_STATUS_IGNORE);
        else
            MPI_Test(&gs->barriers[b], &done, MPI_STATUS_IGNORE);
        if (!done) break;
        MPI_Win_sync(ns->win);
        node_slice_sum(ns, gs->bounds[b], gs->bounds[b + 1], 0);
        size_t len;
        void *own = node_own_slice(ns, gs->bounds[b], gs->bounds[b + 1], &len);
        MPI_Iallreduce(MPI_IN_PLACE, own, (int)len, node_mpi_type(ns), MPI_SUM, ns->cross,
                       &gs->requests[b]);
        gs->summed++;
    }
}

void grad_sync_ready(void *ctx, size_t ready_floats)
{
    struct grad_sync *gs = ctx;
    if (comm_world_size == 1 || !grad_sync_overlaps(gs)) return;
    while (gs->started < gs->nbuckets && gs->bounds[gs->started + 1] <= ready_floats)
        start_bucket(gs, gs->started++);
    if (gs->node_overlap) sum_node_buckets(gs, 0);
    /* Open MPI progresses non-blocking collectives only inside MPI calls. */
    const int inflight = gs->node_overlap ? gs->summed : gs->started;
    int flag;
    if (inflight > 0) MPI_Testall(inflight, gs->requests, &flag, MPI_STATUSES_IGNORE);
}

/* Across nodes overlapped: the rest of the buckets, then every slice back into the
 * node's other arrays. */
static void node_overlap_finish(struct grad_sync *gs)
{
    while (gs->started < gs->nbuckets) start_bucket(gs, gs->started++);
    guard_enter("MPI_Wait (gradient buckets in shared memory)");
    sum_node_buckets(gs, 1);
    guard_enter("MPI_Waitall (gradient slices across nodes)");
    MPI_Waitall(gs->nbuckets, gs->requests, MPI_STATUSES_IGNORE);
    for (int b = 0; b < gs->nbuckets; b++) node_spread_slice(gs->node, gs->bounds[b], gs->bounds[b + 1]);
    guard_enter("MPI_Barrier (gradients in shared memory)");
    node_fence(gs->node);
    guard_leave();
}

double grad_sync_finish(struct grad_sync *gs)
{
    if (comm_world_size == 1) return 0.0;
    double t0 = MPI_Wtime();
    if (gs->node_overlap) {
        node_overlap_finish(gs);
        return MPI_Wtime() - t0;
    }
    if (gs->node) {
        node_sum_run(gs->node, gs->n);
        return MPI_Wtime() - t0;
    }
    if (!gs->overlap) {
        /* Bucket by bucket: pieces of bucket_mb ran nearly twice as fast as one
         * allreduce of the whole arena. */
        for (int b = 0; b < gs->nbuckets; b++) {
            const size_t lo = gs->bounds[b], len = gs->bounds[b + 1] - lo;
            if (gs->grads->f)
                comm_allreduce_sum_float(gs->grads->f + lo, len);
            else
                comm_allreduce_sum_double(gs->grads->d + lo, len);
        }
        return MPI_Wtime() - t0;
    }
    while (gs->started < gs->nbuckets) start_bucket(gs, gs->started++);
    guard_enter("MPI_Waitall (gradient buckets)");
    MPI_Waitall(gs->nbuckets, gs->requests, MPI_STATUSES_IGNORE);
    guard_leave();
    return MPI_Wtime() - t0;
}

int grad_sync_overlaps(const struct grad_sync *gs) { return gs->node ? gs->node_overlap : gs->overlap; }

int grad_sync_buckets(const struct grad_sync *gs) { return grad_sync_overlaps(gs) ? gs->nbuckets : 1; }

const char *grad_sync_method(const struct grad_sync *gs)
{
    if (gs->node && gs->node->cross != MPI_COMM_NULL)
        return gs->node_overlap ? "shared memory + MPI_Iallreduce across nodes"
                                : "shared memory + MPI_Allreduce across nodes";
    if (gs->node) return "shared memory";
    return gs->overlap ? "MPI_Iallreduce" : "MPI_Allreduce";
}

void grad_sync_free(struct grad_sync *gs)
{
    if (!gs) return;
    node_sum_free(gs->node); /* the arena's values were lent from its window */
    free(gs->bounds);
    free(gs->requests);
    free(gs->barriers);
    free(gs);
}
