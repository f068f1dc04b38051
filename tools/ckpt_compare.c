/* ckpt_compare: compare two resnet_ddp checkpoints (and optionally two metrics logs).
 *
 *   ckpt_compare A.h5 B.h5 [--rtol X]
 *   ckpt_compare --metrics A.h5 B.h5
 *
 * Checkpoints: every parameter, momentum buffer, BN buffer, num_batches_tracked and,
 * when both hold one, the weight average (/ema).
 * Without --rtol they must be equal bit for bit; with it, every tensor's relative L2
 * difference ||a - b||_2 / ||b||_2 must be <= X. Prints the largest difference.
 * Metrics: every logged column except the wall-clock ones (seconds, images/s) must
 * be equal bit for bit, row by row. Exit 0 when equal, 1 when not, 2 on bad input. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "error.h"
#include "resnet.h"

static void load(const char *path, struct resnet *m)
{
    char err[1024];
    struct model_spec spec;
    if (ckpt_read_spec(path, &spec, err, sizeof err) != 0) FAIL_INPUT("%s", err);
    resnet_init(m, &spec);
    struct ckpt_state st;
    if (ckpt_read(path, m, &st, err, sizeof err) != 0) FAIL_INPUT("%s", err);
}

static double rel_l2(const float *a, const float *b, size_t n, size_t *bits_differ)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) (*bits_differ)++;
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static int compare_checkpoints(const char *pa, const char *pb, double rtol)
{
    struct resnet a, b;
    load(pa, &a);
    load(pb, &b);
    if (a.spec.depth != b.spec.depth || a.spec.width != b.spec.width ||
        a.spec.num_classes != b.spec.num_classes || a.spec.stem_no_pool != b.spec.stem_no_pool)
        FAIL_INPUT("%s and %s hold different architectures", pa, pb);
    if (a.spec.ema != b.spec.ema)
        FAIL_INPUT("%s holds a weight average (/ema) and %s does not", a.spec.ema ? pa : pb,
                   a.spec.ema ? pb : pa);
    double worst = 0;
    size_t differ = 0, total = 0;
    char worst_name[128] = "-";
    /* Parameters, momentum, BN buffers, then the average's parameters and buffers. */
    const float *xs[5] = {a.weights, a.momentum, a.buffer_data, a.ema, a.ema_buffers};
    const float *ys[5] = {b.weights, b.momentum, b.buffer_data, b.ema, b.ema_buffers};
    static const char *prefix[5] = {"", "momentum of ", "", "average of ", "average of "};
    for (int kind = 0; kind < (a.ema ? 5 : 3); kind++) {
        const bool buffers = kind == 2 || kind == 4;
        int count = buffers ? a.nbuffers : a.nparams;
        for (int i = 0; i < count; i++) {
            const struct tensor_view *v = buffers ? &a.buffers[i] : &a.params[i];
            const float *x = xs[kind], *y = ys[kind];
            size_t d = 0;
            double r = rel_l2(x + v->offset, y + v->offset, v->count, &d);
            differ += d;
            total += v->count;
            if (r > worst || isnan(r)) {
                worst = r;
                snprintf(worst_name, sizeof worst_name, "%s%s", prefix[kind], v->name);
            }
        }
    }
    bool nbt_equal = a.num_batches_tracked == b.num_batches_tracked;
    printf("%zu of %zu values differ in their bits; largest relative L2 difference %.3g (%s); "
           "num_batches_tracked %s\n", differ, total, worst, worst_name, nbt_equal ? "equal" : "DIFFERS");
    resnet_free(&a);
    resnet_free(&b);
    if (!nbt_equal) return 1;
    return rtol < 0 ? differ != 0 : !(worst <= rtol);
}

/* ---- metrics ---------------------------------------------------------------------- */

static double *read_column(hid_t file, const char *name, hsize_t *n)
{
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
    if (ds < 0) FAIL_INPUT("metrics file has no dataset %s", name);
    hid_t space = H5Dget_space(ds);
    H5Sget_simple_extent_dims(space, n, NULL);
    double *v = xcalloc(*n ? *n : 1, sizeof *v);
    if (*n && H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0)
        FAIL_INPUT("cannot read %s", name);
    H5Sclose(space);
    H5Dclose(ds);
    return v;
}

static int compare_metrics(const char *pa, const char *pb)
{
    static const char *columns[] = {"/steps/step", "/steps/epoch", "/steps/loss", "/steps/lr",
                                    "/epochs/epoch", "/epochs/train_loss", "/epochs/train_acc",
                                    "/epochs/test_loss", "/epochs/test_acc",
                                    "/epochs/test_acc_flip", "/epochs/ema_test_loss",
                                    "/epochs/ema_test_acc", "/epochs/ema_test_acc_flip"};
    hid_t fa = H5Fopen(pa, H5F_ACC_RDONLY, H5P_DEFAULT), fb = H5Fopen(pb, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (fa < 0 || fb < 0) FAIL_INPUT("cannot open %s", fa < 0 ? pa : pb);
    int bad = 0;
    for (size_t c = 0; c < sizeof columns / sizeof *columns; c++) {
        hsize_t na, nb;
        double *x = read_column(fa, columns[c], &na), *y = read_column(fb, columns[c], &nb);
        if (na != nb) {
            printf("%s: %llu rows vs %llu rows\n", columns[c], (unsigned long long)na, (unsigned long long)nb);
            bad = 1;
        } else {
            for (hsize_t i = 0; i < na; i++)
                if (memcmp(&x[i], &y[i], sizeof(double)) != 0) {
                    printf("%s: row %llu differs: %.17g vs %.17g\n", columns[c], (unsigned long long)i, x[i], y[i]);
                    bad = 1;
                    break;
                }
        }
        if (!bad) printf("%s: %llu rows equal\n", columns[c], (unsigned long long)na);
        free(x);
        free(y);
    }
    H5Fclose(fa);
    H5Fclose(fb);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--metrics") == 0) return compare_metrics(argv[2], argv[3]);
    if (argc == 3) return compare_checkpoints(argv[1], argv[2], -1);
    if (argc == 5 && strcmp(argv[3], "--rtol") == 0) return compare_checkpoints(argv[1], argv[2], atof(argv[4]));
    fprintf(stderr, "usage: ckpt_compare A.h5 B.h5 [--rtol X] | ckpt_compare --metrics A.h5 B.h5\n");
    return 2;
}
