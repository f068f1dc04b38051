/* test_loss: softmax_xent (loss.c), nn.CrossEntropyLoss with reduction "sum".
 *
 * The returned sum against a naive log-sum-exp in double; dlogits = (softmax -
 * onehot) * scale against central finite differences of scale * loss taken through
 * softmax_xent itself (perturbations of 2^-10, exact in float for these logits);
 * the correct count adds onto *correct with the first maximum winning ties; NULL
 * dlogits / correct are accepted; logits of +-1000 give a finite loss and gradient
 * equal to the stable reference. */
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

struct xent_loss {
    int n, classes;
    const float *z;
    const int32_t *labels;
    float scale;
};

/* scale * loss through softmax_xent itself, whose gradient is (softmax - onehot) * scale. */
static double xent_loss(void *ctx, enum gc_point at)
{
    (void)at;
    struct xent_loss *l = ctx;
    return (double)l->scale * softmax_xent(l->n, l->classes, l->z, l->labels, l->scale, NULL, NULL);
}

static void check_random(int n, int classes, double spread, float scale)
{
    char tag[96], name[160];
    snprintf(tag, sizeof tag, "xent n=%d classes=%d spread=%g scale=%g", n, classes, spread,
             (double)scale);
    size_t nz = (size_t)n * classes;
    float *z = xalloc(sizeof(float) * nz), *dz = xalloc(sizeof(float) * nz);
    int32_t *labels = xalloc(sizeof(int32_t) * (size_t)n);
    double *got = xalloc(sizeof(double) * nz);
    for (size_t i = 0; i < nz; i++) z[i] = (float)urand(-spread, spread);
    for (int i = 0; i < n; i++) labels[i] = (int32_t)urand(0, classes);

    int64_t correct = 3, want_correct = 3;
    double total = softmax_xent(n, classes, z, labels, scale, dz, &correct);
    double ref = 0.0;
    for (int i = 0; i < n; i++) {
        const float *row = z + (size_t)i * classes;
        ref += naive_row_loss(classes, row, labels[i]);
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
    struct xent_loss xl = {n, classes, z, labels, scale};
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
    double total = softmax_xent(4, 4, &z[0][0], labels, 1.0f, NULL, &correct);
    EXPECT(correct == 12, "ties: correct %lld, want 12 (rows 0 and 2; first maximum wins)",
           (long long)(correct));
    double ref = 0.0;
    for (int i = 0; i < 4; i++) ref += naive_row_loss(4, z[i], labels[i]);
    expect_close("ties: loss sum", &total, &ref, 1, 1e-12);
    double l = softmax_xent(4, 4, &z[0][0], labels, 1.0f, NULL, NULL);
    EXPECT(l == total, "NULL correct changes the loss");
}

static void check_large(void)
{
    const float z[2][3] = {{1000, -1000, 999}, {-1000, 1000, 1000}};
    const int32_t labels[2] = {1, 2};
    float dz[6];
    int64_t correct = 0;
    double total = softmax_xent(2, 3, &z[0][0], labels, 0.5f, dz, &correct);
    double ref = naive_row_loss(3, z[0], 1) + naive_row_loss(3, z[1], 2);
    EXPECT(isfinite(total), "large logits: loss %g is not finite", total);
    expect_close("large logits: loss sum", &total, &ref, 1, 1e-12);
    /* softmax row 0: (1/(1+e^-1), 0, e^-1/(1+e^-1)); row 1: (0, 1/2, 1/2) */
    double p0 = 1.0 / (1.0 + exp(-1.0)), p2 = exp(-1.0) / (1.0 + exp(-1.0));
    double want[6] = {0.5 * p0, 0.5 * -1.0, 0.5 * p2, 0.0, 0.5 * 0.5, 0.5 * -0.5};
    double got[6];
    for (int i = 0; i < 6; i++) got[i] = (double)dz[i];
    expect_close("large logits: dlogits", got, want, 6, 1e-6);
    EXPECT(correct == 0, "large logits: correct %lld, want 0", (long long)correct);
}

int main(void)
{
    urand_seed(0x1055ull, 7);
    check_random(7, 10, 3.0, 1.0f / 7.0f);
    check_random(1, 2, 1.0, 1.0f);
    check_random(16, 10, 1.0, 0.25f);
    check_random(4, 1000, 3.0, 1.0f);
    check_ties();
    check_large();
    return test_summary("test_loss");
}
