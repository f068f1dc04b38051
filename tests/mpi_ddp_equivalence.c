/* mpi_ddp_equivalence: the central data-parallel test.
 *
 * Runs K optimizer steps of ResNet-18 (BN in training mode, momentum and weight decay
 * on, a partial last batch, an epoch boundary) on the real data with the trainer
 * itself, under `mpiexec -n N`. With --out, rank 0 writes every parameter, BN buffer
 * and momentum value to a file (the reference, from another rank or thread count);
 * with --ref, rank 0 compares its state with it:
 *
 * - with micro-shards (dist.shard_size > 0, DESIGN.md "Numerics") the states must be
 *   equal bit for bit, whatever the number of ranks and of threads per rank;
 * - without, the number of threads changes nothing either (--exact: equal bit for
 *   bit), and on another number of ranks (--tol X) every tensor's relative L2 norm ||x - ref||_2 / ||ref||_2 must
 *   be <= X: they agree to float rounding after one step, but ReLU and max-pool
 *   decisions on values within rounding of a kink (whole zero backgrounds of
 *   Fashion-MNIST sit on one) amplify that within a few steps, so they are compared
 *   after one step (--steps 1). Weight decay makes the momentum of a convolution bias
 *   followed by BN (whose true gradient is zero) the decayed bias, not rounding noise;
 * - --expect differ: some tensor must differ by more than 1e-3 (proves the comparison
 *   can fail).
 *
 * The default model is 8 channels wide at 28x28; --full makes it ResNet-18's 64
 * (the seed's) and --size 96 resizes the images. Extra arguments are config overrides
 * (section.key=value), applied last. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "config.h"
#include "error.h"
#include "train.h"

#define TOL_DIFFER 1e-3

/* Parameters, momentum (same views), then buffers: one flat float vector. */
static size_t state_floats(const struct resnet *m) { return 2 * m->param_floats + m->buffer_floats; }

static void state_copy(const struct resnet *m, float *out)
{
    memcpy(out, m->weights, sizeof(float) * m->param_floats);
    memcpy(out + m->param_floats, m->momentum, sizeof(float) * m->param_floats);
    memcpy(out + 2 * m->param_floats, m->buffer_data, sizeof(float) * m->buffer_floats);
}

static double rel_l2(const float *a, const float *ref, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)ref[i];
        num += d * d;
        den += (double)ref[i] * (double)ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

struct tensor_diff {
    double rel;
    char name[96];
};

static int by_rel_desc(const void *a, const void *b)
{
    const double x = ((const struct tensor_diff *)a)->rel, y = ((const struct tensor_diff *)b)->rel;
    return (y > x) - (y < x);
}

/* Largest relative L2 difference, per tensor (or, with global, per arena: all
 * parameters, all momentum, all buffers); reports where, and prints the `show`
 * largest. */
static double compare(const struct resnet *m, const float *got, const float *ref, bool global,
                      int show, char *worst, size_t worst_size)
{
    const size_t cap = 2 * (size_t)m->nparams + (size_t)m->nbuffers + 3;
    struct tensor_diff *d = xcalloc(cap, sizeof *d);
    size_t nd = 0;
    if (global) {
        const size_t n[3] = {m->param_floats, m->param_floats, m->buffer_floats};
        const char *what[3] = {"all parameters", "all momentum", "all BN buffers"};
        size_t base = 0;
        for (int kind = 0; kind < 3; kind++, nd++) {
            d[nd].rel = rel_l2(got + base, ref + base, n[kind]);
            snprintf(d[nd].name, sizeof d[nd].name, "%s", what[kind]);
            base += n[kind];
        }
    } else {
        for (int kind = 0; kind < 3; kind++) {
            int count = kind == 2 ? m->nbuffers : m->nparams;
            for (int i = 0; i < count; i++, nd++) {
                const struct tensor_view *v = kind == 2 ? &m->buffers[i] : &m->params[i];
                size_t base = kind == 0 ? 0 : kind == 1 ? m->param_floats : 2 * m->param_floats;
                d[nd].rel = rel_l2(got + base + v->offset, ref + base + v->offset, v->count);
                snprintf(d[nd].name, sizeof d[nd].name, "%s%s", kind == 1 ? "momentum of " : "", v->name);
            }
        }
    }
    for (size_t i = 0; i < nd; i++)
        if (isnan(d[i].rel)) d[i].rel = INFINITY;
    qsort(d, nd, sizeof *d, by_rel_desc);
    for (int i = 0; i < show && (size_t)i < nd; i++) printf("  %-36s %.3g\n", d[i].name, d[i].rel);
    snprintf(worst, worst_size, "%s", nd ? d[0].name : "-");
    const double max = nd ? d[0].rel : 0.0;
    free(d);
    return max;
}

static size_t bits_differ(const float *a, const float *b, size_t n)
{
    size_t d = 0;
    for (size_t i = 0; i < n; i++) d += memcmp(&a[i], &b[i], sizeof(float)) != 0;
    return d;
}

int main(int argc, char **argv)
{
    struct comm_info comm;
    comm_init(&argc, &argv, &comm);
    const char *out = NULL, *ref = NULL, *expect = "same";
    int steps = 7;
    double tol = 0.0;
    bool global = false, full = false, exact = false;
    int show = 0;
    char *overrides[40];
    int nover = 0;
    overrides[nover++] = "train.momentum=0.9";
    overrides[nover++] = "train.weight_decay=0.0005";
    overrides[nover++] = "train.lr=0.05";
    overrides[nover++] = "train.threads=1";
    overrides[nover++] = "train.seed=3";
    overrides[nover++] = "data.test_limit=10";
    /* Micro-shards of 6 samples: 4 per global batch of 24, so 1, 2, 3 and 4 ranks all
     * hold whole shards (3 ranks unevenly: 2, 1, 1). */
    overrides[nover++] = "dist.shard_size=6";
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--full") == 0) full = true;
    if (full) {
        /* 8 shards of 6 per batch of 48 (8 ranks: one each; 3 ranks: 3, 3, 2), and an
         * epoch of 100 images ends with a batch of 4: less than a shard. */
        overrides[nover++] = "train.batch_size=48";
        overrides[nover++] = "data.train_limit=100";
    } else {
        overrides[nover++] = "train.batch_size=24";
        overrides[nover++] = "data.train_limit=100"; /* 5 steps an epoch, the last of 4 images */
        overrides[nover++] = "model.width=8";
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) out = argv[++i];
        else if (strcmp(argv[i], "--ref") == 0 && i + 1 < argc) ref = argv[++i];
        else if (strcmp(argv[i], "--expect") == 0 && i + 1 < argc) expect = argv[++i];
        else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) steps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--tol") == 0 && i + 1 < argc) tol = atof(argv[++i]);
        else if (strcmp(argv[i], "--show") == 0 && i + 1 < argc) show = atoi(argv[++i]);
        else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc) {
            static char resize[32];
            snprintf(resize, sizeof resize, "data.resize=%s", argv[++i]);
            overrides[nover++] = resize;
        } else if (strcmp(argv[i], "--node-size") == 0 && i + 1 < argc)
            /* Pretend nodes of k ranks: the hierarchical sum on one machine (comm.c). */
            setenv("RESNET_DDP_NODE_SIZE", argv[++i], 1);
        else if (strcmp(argv[i], "--global-norm") == 0) global = true;
        else if (strcmp(argv[i], "--exact") == 0) exact = true;
        else if (strcmp(argv[i], "--full") == 0) continue;
        else if (nover < 40) overrides[nover++] = argv[i];
    }
    struct config cfg;
    config_load(&cfg, NULL, nover, overrides);
    struct trainer t;
    trainer_init(&t, &cfg, &comm);
    for (int s = 0; s < steps; s++) trainer_step(&t);

    int failed = 0;
    if (comm.rank == 0) {
        size_t n = state_floats(&t.model);
        float *state = xmalloc(sizeof(float) * n);
        state_copy(&t.model, state);
        if (out) {
            FILE *f = fopen(out, "wb");
            CHECK(f && fwrite(state, sizeof(float), n, f) == n && fclose(f) == 0,
                  "cannot write %s", out);
            printf("%d rank(s) x %d thread(s): wrote reference state (%zu floats) after %d steps to %s\n",
                   comm.world, t.threads, n, steps, out);
        }
        if (ref) {
            float *want = xmalloc(sizeof(float) * n);
            FILE *f = fopen(ref, "rb");
            CHECK(f && fread(want, sizeof(float), n, f) == n, "cannot read reference %s", ref);
            fclose(f);
            char worst[128] = "";
            double diff = compare(&t.model, state, want, global, show, worst, sizeof worst);
            const size_t differ = bits_differ(state, want, n);
            const bool same = strcmp(expect, "same") == 0;
            exact = exact || cfg.shard_size > 0;
            printf("%d rank(s) x %d thread(s), %s, %s: %zu of %zu values differ in their bits; "
                   "max over %s of ||x - ref||_2 / ||ref||_2 = %.3g (%s); expected %s\n",
                   comm.world, t.threads, cfg.sync_bn ? "sync BN" : "per-rank BN",
                   cfg.shard_size > 0 ? "micro-shards" : "no micro-shards", differ, n,
                   global ? "parameters/momentum/buffers" : "tensors", diff, worst,
                   !same ? "> 1e-3" : exact ? "0 values differing" : "<= --tol");
            if (!same) failed = !(diff > TOL_DIFFER);
            else if (exact) failed = differ != 0;
            else failed = !(diff <= tol);
            free(want);
        }
        free(state);
    }
    trainer_free(&t);
    comm_finalize();
    if (failed) fprintf(stderr, "FAILED\n");
    return failed;
}
