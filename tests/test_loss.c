/* test_loss: softmax_xent (loss.c), nn.CrossEntropyLoss with reduction "sum" and
 * label_smoothing.
 *
 * The returned sum against a naive log-sum-exp in double (with smoothing eps:
 * (1 - eps) * -log p_label + eps * mean_c(-log p_c), each term from the same naive
 * row loss); dlogits = (softmax - target) * scale against central finite differences
 * of scale * loss taken through softmax_xent itself (perturbations of 2^-10, exact in
 * float for these logits), for eps 0, 0.1 and 0.3; eps 0 gives the bits of the
 * formula without smoothing (a copy of it here); the correct count adds onto *correct
 * with the first maximum winning ties; NULL dlogits / correct are accepted; logits of
 * +-1000 give a finite loss and gradient equal to the stable reference. */
#include "loss.h"
#include "testutil.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Per-sample loss of one row, stable, in double. */
static double naive_row_loss(int classes, const float *z, int label)
{
    double zmax = -INFINITY;
    for (int c = 0; c < classes; c++)
        if ((double)z[c] > zmax) zmax = (double)z[c];
    double s = 0.0;
    for (int c = 0; c < classes; c++) s += exp((double)z[c] - zmax);
    return log(s) + zmax - (double)z[label];
}

/* The same with label smoothing eps: the target's mixture of the row losses. */
static double naive_smoothed_loss(int classes, const float *z, int label, double eps)
{
    double mean = 0.0;
    for (int c = 0; c < classes; c++) mean += naive_row_loss(classes, z, c);
    return (1.0 - eps) * naive_row_loss(classes, z, label) + eps * mean / classes;
}

/* Plain cross-entropy written without any smoothing term: eps = 0 must reproduce its
 * bits, so runs without smoothing keep their exact results. The operations are
 * softmax_xent's, in its order (any maximum gives the same zmax). */
static double unsmoothed_xent(int n, int classes, const float *logits, const int32_t *labels,
                              float scale, float *dlogits)
{
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * classes;
        double zmax = -INFINITY, sum = 0.0;
        for (int c = 0; c < classes; c++) zmax = fmax(zmax, (double)z[c]);
        for (int c = 0; c < classes; c++) sum += exp((double)z[c] - zmax);
        double log_sum = log(sum) + zmax;
        total += log_sum - (double)z[labels[i]];
        float *d = dlogits + (size_t)i * classes;
        for (int c = 0; c < classes; c++) {
            double p = exp((double)z[c] - log_sum);
            d[c] = (float)((p - (c == labels[i])) * (double)scale);
        }
    }
    return total;
}

struct xent_loss {
    int n, classes;
    const float *z;
    const int32_t *labels;
    double eps;
    float scale;
};

/* scale * loss through softmax_xent itself, whose gradient is (softmax - target) * scale. */
static double xent_loss(void *ctx, enum gc_point at)
{
    (void)at;
    struct xent_loss *l = ctx;
    return (double)l->scale *
           softmax_xent(l->n, l->classes, l->z, l->labels, l->eps, l->scale, NULL, NULL);
}

static void check_unsmoothed_bits(const char *tag, int n, int classes, const float *z,
                                  const int32_t *labels, float scale, double total,
                                  const float *dz)
{
    size_t nz = (size_t)n * classes;
    float *old = xalloc(sizeof(float) * nz);
    double want = unsmoothed_xent(n, classes, z, labels, scale, old);
    EXPECT(memcmp(&total, &want, sizeof total) == 0,
           "%s: loss %.17g differs from the unsmoothed formula's %.17g", tag, total, want);
    EXPECT(memcmp(dz, old, sizeof(float) * nz) == 0,
           "%s: dlogits differ from the unsmoothed formula's bits", tag);
    free(old);
}

static void check_random(int n, int classes, double spread, float scale, double eps)
{
    char tag[128], name[192];
    snprintf(tag, sizeof tag, "xent n=%d classes=%d spread=%g scale=%g eps=%g", n, classes,
             spread, (double)scale, eps);
    size_t nz = (size_t)n * classes;
    float *z = xalloc(sizeof(float) * nz), *dz = xalloc(sizeof(float) * nz);
    int32_t *labels = xalloc(sizeof(int32_t) * (size_t)n);
    double *got = xalloc(sizeof(double) * nz);
    for (size_t i = 0; i < nz; i++) z[i] = (float)urand(-spread, spread);
    for (int i = 0; i < n; i++) labels[i] = (int32_t)urand(0, classes);

    int64_t correct = 3, want_correct = 3;
    double total = softmax_xent(n, classes, z, labels, eps, scale, dz, &correct);
    if (eps == 0.0) check_unsmoothed_bits(tag, n, classes, z, labels, scale, total, dz);
    double ref = 0.0;
    for (int i = 0; i < n; i++) {
        const float *row = z + (size_t)i * classes;
        ref += naive_smoothed_loss(classes, row, labels[i], eps);
        int best = 0;
        for (int c = 1; c < classes; c++)
            if (row[c] > row[best]) best = c;
        want_correct += best == labels[i];
    }
    snprintf(name, sizeof name, "%s: loss sum", tag);
    expect_close(name, &total, &ref, 1, 1e-12);
    EXPECT(correct == want_correct, "%s: correct %lld, want %lld", tag, (long long)correct,
           (long long)want_correct);

    for (size_t i = 0; i < nz; i++) got[i] = (double)dz[i];
    struct xent_loss xl = {n, classes, z, labels, eps, scale};
    struct gradcheck gc = {.op = tag, .tensor = "dlogits", .loss = xent_loss, .ctx = &xl,
                           .step = 0x1.0p-10, .tol = 1e-5};
    gradcheck_float(&gc, z, got, nz);
    free(z);
    free(dz);
    free(labels);
    free(got);
}

static void check_ties(void)
{
    const float z[4][4] = {{1, 3, 3, 0}, {1, 3, 3, 0}, {2, 2, 2, 2}, {-1, 5, 0, 5}};
    const int32_t labels[4] = {1, 2, 0, 3};
    int64_t correct = 10;
    double total = softmax_xent(4, 4, &z[0][0], labels, 0.0, 1.0f, NULL, &correct);
    EXPECT(correct == 12, "ties: correct %lld, want 12 (rows 0 and 2; first maximum wins)",
           (long long)(correct));
    double ref = 0.0;
    for (int i = 0; i < 4; i++) ref += naive_row_loss(4, z[i], labels[i]);
    expect_close("ties: loss sum", &total, &ref, 1, 1e-12);
    double l = softmax_xent(4, 4, &z[0][0], labels, 0.0, 1.0f, NULL, NULL);
    EXPECT(l == total, "NULL correct changes the loss");
}

/* Logits of +-1000 with smoothing eps: the log-softmax of the -1000 entries is about
 * -2000, which the smoothing term adds in; it must stay finite and exact. */
static void check_large(double eps)
{
    const float z[2][3] = {{1000, -1000, 999}, {-1000, 1000, 1000}};
    const int32_t labels[2] = {1, 2};
    float dz[6];
    int64_t correct = 0;
    char name[96];
    double total = softmax_xent(2, 3, &z[0][0], labels, eps, 0.5f, dz, &correct);
    double ref = naive_smoothed_loss(3, z[0], 1, eps) + naive_smoothed_loss(3, z[1], 2, eps);
    EXPECT(isfinite(total), "large logits eps=%g: loss %g is not finite", eps, total);
    snprintf(name, sizeof name, "large logits eps=%g: loss sum", eps);
    expect_close(name, &total, &ref, 1, 1e-12);
    /* softmax row 0: (1/(1+e^-1), 0, e^-1/(1+e^-1)); row 1: (0, 1/2, 1/2); the target
     * is 1 - eps + eps/3 at the label and eps/3 elsewhere */
    double p0 = 1.0 / (1.0 + exp(-1.0)), p2 = exp(-1.0) / (1.0 + exp(-1.0));
    double off = eps / 3.0, on = 1.0 - eps + off;
    double want[6] = {0.5 * (p0 - off), 0.5 * -on, 0.5 * (p2 - off),
                      0.5 * -off,       0.5 * (0.5 - off), 0.5 * (0.5 - on)};
    double got[6];
    for (int i = 0; i < 6; i++) got[i] = (double)dz[i];
    snprintf(name, sizeof name, "large logits eps=%g: dlogits", eps);
    expect_close(name, got, want, 6, 1e-6);
    EXPECT(correct == 0, "large logits eps=%g: correct %lld, want 0", eps, (long long)correct);
}

int main(void)
{
    urand_seed(0x1055ull, 7);
    static const double eps[] = {0.0, 0.1, 0.3};
    for (int e = 0; e < 3; e++) {
        check_random(7, 10, 3.0, 1.0f / 7.0f, eps[e]);
        check_random(1, 2, 1.0, 1.0f, eps[e]);
        check_random(16, 10, 1.0, 0.25f, eps[e]);
        check_random(4, 1000, 3.0, 1.0f, eps[e]);
    }
    check_ties();
    for (int e = 0; e < 3; e++) check_large(eps[e]);
    return test_summary("test_loss");
}
