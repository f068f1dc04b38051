/* grad_sum: how long the program's own gradient synchronization (grad_sync in comm.h)
 * takes to sum a float gradient of ResNet-18's size (44.7 MB) across the ranks of
 * mpirun, as the trainer runs it: begin_step, ready reports during an emulated
 * backward pass, finish. Per iteration it takes the slowest rank's time; rank 0
 * prints the median over the timed iterations. The sums are checked after the first
 * iteration. OpenMP threads as OMP_NUM_THREADS says (the shared-memory sum uses them).
 *
 * usage: grad_sum [--mb 44.7] [--iters 10] [--warmup 2] [--shared-memory 0|1]
 *                 [--overlap 0|1] [--bucket-mb 25] [--backward-ms 0] */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "error.h"
#include "grad.h"
#include "timer.h"

/* Ready reports of the emulated backward pass, in equal steps (the model reports after
 * the classifier, each residual block and the stem). */
#define BACKWARD_REPORTS 20

static const char usage[] =
    "usage: grad_sum [--mb 44.7] [--iters 10] [--warmup 2] [--shared-memory 0|1]\n"
    "                [--overlap 0|1] [--bucket-mb 25] [--backward-ms 0]\n"
    "\n"
    "Times grad_sync's sum of an --mb MB float gradient over the ranks of mpirun;\n"
    "--backward-ms emulates a backward pass of that length (busy, with ready reports)\n"
    "before grad_sync_finish. Prints the median over --iters of the slowest rank.\n";

struct options {
    double mb, bucket_mb, backward_ms;
    int iters, warmup, shared_memory, overlap;
};

/* ---- command line ----------------------------------------------------------------- */

static _Noreturn void bad_value(const char *name, const char *value, const char *expected)
{
    error_exit_before_mpi(EXIT_CODE_USAGE, "grad_sum: bad %s '%s' (expected %s)", name, value,
                          expected);
}

/* Whole-string finite number in [lo, hi]. */
static double parse_number(const char *name, const char *s, double lo, double hi,
                           const char *expected)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!s[0] || errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
        bad_value(name, s, expected);
    return v;
}

/* Whole-string integer in [lo, hi]. */
static int parse_int(const char *name, const char *s, int lo, int hi, const char *expected)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!s[0] || errno || end == s || *end || v < lo || v > hi) bad_value(name, s, expected);
    return (int)v;
}

static struct options parse_options(int argc, char **argv)
{
    struct options o = {.mb = 44.7, .bucket_mb = 25.0, .iters = 10, .warmup = 2,
                        .shared_memory = 1, .overlap = 1};
    for (int i = 1; i < argc; i++) {
        const char *name = argv[i];
        if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
            fputs(usage, stdout);
            exit(EXIT_CODE_OK);
        }
        if (i + 1 == argc)
            error_exit_before_mpi(EXIT_CODE_USAGE, "grad_sum: %s needs a value (see --help)", name);
        const char *v = argv[++i];
        if (strcmp(name, "--mb") == 0)
            o.mb = parse_number(name, v, 1e-5, 1e5, "a size in MB from 1e-5 to 1e5");
        else if (strcmp(name, "--iters") == 0)
            o.iters = parse_int(name, v, 1, 1000000, "a whole number >= 1");
        else if (strcmp(name, "--warmup") == 0)
            o.warmup = parse_int(name, v, 0, 1000000, "a whole number >= 0");
        else if (strcmp(name, "--shared-memory") == 0)
            o.shared_memory = parse_int(name, v, 0, 1, "0 or 1");
        else if (strcmp(name, "--overlap") == 0)
            o.overlap = parse_int(name, v, 0, 1, "0 or 1");
        else if (strcmp(name, "--bucket-mb") == 0)
            o.bucket_mb = parse_number(name, v, 1e-5, 1e5, "a size in MB from 1e-5 to 1e5");
        else if (strcmp(name, "--backward-ms") == 0)
            o.backward_ms = parse_number(name, v, 0, 1e6, "milliseconds, >= 0");
        else
            error_exit_before_mpi(EXIT_CODE_USAGE, "grad_sum: unknown option '%s' (expected %s)",
                                  name, "--mb, --iters, --warmup, --shared-memory, --overlap, "
                                        "--bucket-mb or --backward-ms");
    }
    return o;
}

/* ---- nodes ------------------------------------------------------------------------- */

struct node_shape {
    int nodes, min_per, max_per;
};

/* Nodes as grad_sync sees them: RESNET_DDP_NODE_SIZE=k cuts each machine's ranks into
 * groups of k (comm.c), which comm_info's local_world does not show. Collective. */
static struct node_shape node_shape(const struct comm_info *c)
{
    const char *env = getenv("RESNET_DDP_NODE_SIZE");
    const int k = env && atoi(env) > 0 ? atoi(env) : 0;
    int local = c->local_rank, size = c->local_world;
    if (k) {
        const int first = local / k * k;
        size = size - first < k ? size - first : k;
        local -= first;
    }
    double leaders = local == 0, sizes[2] = {size, -size};
    comm_allreduce_sum_double(&leaders, 1);
    comm_allreduce_max_double(sizes, 2);
    return (struct node_shape){(int)leaders, (int)-sizes[1], (int)sizes[0]};
}

/* ---- one iteration ------------------------------------------------------------------ */

/* Exact in float, and so are their sums over up to a thousand ranks. */
static float fill_value(int rank, size_t i) { return (float)((rank + 1) * (int)(i % 7 + 1)); }

static void fill(float *g, size_t n, int rank)
{
    for (size_t i = 0; i < n; i++) g[i] = fill_value(rank, i);
}

/* Every rank must hold the sum of all ranks' fills. */
static void check_sum(const float *g, size_t n, int world)
{
    const int ranks_sum = world * (world + 1) / 2;
    for (size_t i = 0; i < n; i++) {
        const float want = fill_value(ranks_sum - 1, i);
        if (g[i] != want)
            error_exit(EXIT_CODE_INTERNAL,
                       "grad_sum: element %zu of the summed gradient is %g, expected %g", i,
                       (double)g[i], (double)want);
    }
}

/* Busy, as a real backward pass keeps its core busy. */
static void spin(double seconds)
{
    const double end = timer_now() + seconds;
    while (timer_now() < end) continue;
}

struct times {
    double total, exposed, wait; /* wait: what grad_sync_finish itself reports */
};

static struct times sync_once(struct grad_sync *gs, size_t n, double backward_seconds)
{
    struct times t;
    comm_barrier();
    const double t0 = timer_now();
    grad_sync_begin_step(gs);
    if (backward_seconds > 0)
        for (int k = 1; k <= BACKWARD_REPORTS; k++) {
            spin(backward_seconds / BACKWARD_REPORTS);
            grad_sync_ready(gs, n * (size_t)k / BACKWARD_REPORTS);
        }
    const double t1 = timer_now();
    t.wait = grad_sync_finish(gs);
    const double t2 = timer_now();
    t.total = t2 - t0;
    t.exposed = t2 - t1;
    return t;
}

/* ---- report ------------------------------------------------------------------------- */

static int compare_doubles(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v. */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, compare_doubles);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static const char *plural(int n) { return n == 1 ? "" : "s"; }

static void print_result(const struct options *o, const struct comm_info *c,
                         struct node_shape shape, const struct grad_sync *gs, size_t n,
                         const struct times *runs)
{
    double *total = xcalloc(3 * (size_t)o->iters, sizeof *total);
    double *exposed = total + o->iters, *wait = exposed + o->iters;
    for (int i = 0; i < o->iters; i++) {
        total[i] = runs[i].total;
        exposed[i] = runs[i].exposed;
        wait[i] = runs[i].wait;
    }
    char per_node[64];
    if (shape.min_per == shape.max_per)
        snprintf(per_node, sizeof per_node, "%d per node", shape.min_per);
    else
        snprintf(per_node, sizeof per_node, "%d to %d per node", shape.min_per, shape.max_per);
    const int overlaps = grad_sync_overlaps(gs);
    const double mt = median(total, o->iters), me = median(exposed, o->iters);
    printf("grad_sum: %d rank%s on %d node%s (%s), %.2f MB float (%zu floats), method \"%s\", "
           "overlap %s%s, bucket %g MB (%d bucket%s), backward %g ms: median total %.3f s, "
           "exposed %.3f s (finish reports %.3f s waiting), min %.3f max %.3f "
           "over %d iteration%s\n",
           c->world, plural(c->world), shape.nodes, plural(shape.nodes), per_node,
           (double)n * 4 / 1e6, n, c->world > 1 ? grad_sync_method(gs) : "none (one rank)",
           overlaps ? "on" : "off", o->overlap && !overlaps ? " (asked for on)" : "", o->bucket_mb,
           grad_sync_buckets(gs), plural(grad_sync_buckets(gs)), o->backward_ms, mt, me,
           median(wait, o->iters), total[0], total[o->iters - 1], o->iters, plural(o->iters));
    fflush(stdout);
    free(total);
}

int main(int argc, char **argv)
{
    const struct options o = parse_options(argc, argv);
    struct comm_info c;
    comm_init(&argc, &argv, &c);
    const struct node_shape shape = node_shape(&c);
    const size_t n = (size_t)llround(o.mb * 1e6 / 4.0);

    struct grad_arena arena;
    grad_arena_init(&arena, n, false);
    /* May lend the arena the node's shared window: arena.f is read only after this. */
    struct grad_sync *gs = grad_sync_create(&arena, o.bucket_mb, o.overlap, o.shared_memory);
    struct times *runs = xcalloc((size_t)o.iters, sizeof *runs);
    for (int it = 0; it < o.warmup + o.iters; it++) {
        fill(arena.f, n, c.rank); /* the sum is in place */
        struct times t = sync_once(gs, n, o.backward_ms / 1e3);
        if (it == 0) check_sum(arena.f, n, c.world);
        double slowest[3] = {t.total, t.exposed, t.wait};
        comm_allreduce_max_double(slowest, 3);
        if (it >= o.warmup)
            runs[it - o.warmup] = (struct times){slowest[0], slowest[1], slowest[2]};
    }
    if (c.rank == 0) print_result(&o, &c, shape, gs, n, runs);

    free(runs);
    grad_sync_free(gs);
    grad_arena_free(&arena);
    comm_finalize();
    return EXIT_CODE_OK;
}
