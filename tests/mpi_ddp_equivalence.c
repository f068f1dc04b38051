/* mpi_ddp_equivalence: the central data-parallel test.
 *
 * Runs K optimizer steps of a small ResNet-18 (BN in training mode, momentum and
 * weight decay on, a partial last batch, an epoch boundary) on the real data with the
 * trainer itself, under `mpiexec -n N`, with micro-shards (DESIGN.md "Numerics"):
 * the states are then equal bit for bit, and the tolerance below only says how much
 * we would forgive. Without shards they agree to float rounding after one step, but
 * ReLU and max-pool decisions on values within rounding of a kink (whole zero
 * backgrounds of Fashion-MNIST sit on one) amplify that to 1e-3..1e-1 within a few
 * steps, so a 1e-5 comparison of unsharded runs would test luck, not the code; they
 * are compared after one step (--steps 1 dist.shard_size=0) over whole arenas
 * (--global-norm): a convolution bias followed by BN has a true gradient of zero, so
 * its own relative difference is that of rounding noise. With --out, rank 0 writes every parameter,
 * BN buffer and momentum value to a file (the 1-rank reference). With --ref, rank 0
 * compares its state with the reference: per tensor, the relative L2 norm
 * ||x - ref||_2 / ||ref||_2 must be <= 1e-5 (--expect same), or some tensor must
 * differ by more than 1e-3 (--expect differ: proves the comparison can fail). Extra
 * arguments are config overrides (section.key=value). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "config.h"
#include "error.h"
#include "train.h"

#define TOL_SAME 1e-5
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

/* Largest relative L2 difference, per tensor (or, with global, per arena: all
 * parameters, all momentum, all buffers); reports where. */
static double compare(const struct resnet *m, const float *got, const float *ref, bool global,
                      char *worst, size_t worst_size)
{
    double max = 0;
    if (global) {
        const size_t n[3] = {m->param_floats, m->param_floats, m->buffer_floats};
        const char *what[3] = {"all parameters", "all momentum", "all BN buffers"};
        size_t base = 0;
        for (int kind = 0; kind < 3; kind++) {
            double r = rel_l2(got + base, ref + base, n[kind]);
            if (r > max || isnan(r)) {
                max = r;
                snprintf(worst, worst_size, "%s", what[kind]);
            }
            base += n[kind];
        }
        return max;
    }
    for (int kind = 0; kind < 3; kind++) {
        int count = kind == 2 ? m->nbuffers : m->nparams;
        for (int i = 0; i < count; i++) {
            const struct tensor_view *v = kind == 2 ? &m->buffers[i] : &m->params[i];
            size_t base = kind == 0 ? 0 : kind == 1 ? m->param_floats : 2 * m->param_floats;
            double r = rel_l2(got + base + v->offset, ref + base + v->offset, v->count);
            if (r > max || isnan(r)) {
                max = r;
                snprintf(worst, worst_size, "%s%s", kind == 1 ? "momentum of " : "", v->name);
            }
        }
    }
    return max;
}

int main(int argc, char **argv)
{
    struct comm_info comm;
    comm_init(&argc, &argv, &comm);
    const char *out = NULL, *ref = NULL, *expect = "same";
    int steps = 7;
    bool global = false;
    char *overrides[32];
    int nover = 0;
    overrides[nover++] = "train.batch_size=24";
    overrides[nover++] = "data.train_limit=100"; /* 5 steps an epoch, the last of 4 images */
    overrides[nover++] = "data.test_limit=10";
    overrides[nover++] = "model.width=8";
    overrides[nover++] = "train.momentum=0.9";
    overrides[nover++] = "train.weight_decay=0.0005";
    overrides[nover++] = "train.lr=0.05";
    overrides[nover++] = "train.threads=1";
    overrides[nover++] = "train.seed=3";
    /* Micro-shards of 6 samples: 4 per global batch, so 1, 2, 3 and 4 ranks all hold
     * whole shards (3 ranks unevenly: 2, 1, 1). */
    overrides[nover++] = "dist.shard_size=6";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) out = argv[++i];
        else if (strcmp(argv[i], "--ref") == 0 && i + 1 < argc) ref = argv[++i];
        else if (strcmp(argv[i], "--expect") == 0 && i + 1 < argc) expect = argv[++i];
        else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) steps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--global-norm") == 0) global = true;
        else if (nover < 32) overrides[nover++] = argv[i];
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
            printf("%d rank(s): wrote reference state (%zu floats) after %d steps to %s\n",
                   comm.world, n, steps, out);
        }
        if (ref) {
            float *want = xmalloc(sizeof(float) * n);
            FILE *f = fopen(ref, "rb");
            CHECK(f && fread(want, sizeof(float), n, f) == n, "cannot read reference %s", ref);
            fclose(f);
            char worst[128] = "";
            double diff = compare(&t.model, state, want, global, worst, sizeof worst);
            bool same = strcmp(expect, "same") == 0;
            printf("%d rank(s), %s: max over %s of ||x - ref||_2 / ||ref||_2 = %.3g (%s); "
                   "expected %s %.0e\n",
                   comm.world, cfg.sync_bn ? "sync BN" : "per-rank BN",
                   global ? "parameters/momentum/buffers" : "tensors", diff, worst,
                   same ? "<=" : ">", same ? TOL_SAME : TOL_DIFFER);
            failed = same ? !(diff <= TOL_SAME) : !(diff > TOL_DIFFER);
            free(want);
        }
        free(state);
    }
    trainer_free(&t);
    comm_finalize();
    if (failed) fprintf(stderr, "FAILED\n");
    return failed;
}
