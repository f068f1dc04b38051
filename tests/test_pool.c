/* test_pool: max pooling and global average pooling (pool.c).
 *
 * Max pooling 3x3/2 pad 1 (the stem's) and 2x2/2 pad 0 against a naive version in
 * which padding is -inf: output values and argmax (index within the input plane)
 * over several plane sizes, with mostly negative inputs so that zero padding would
 * show. Inputs are a random permutation of well-separated values, so there are no
 * ties or kinks, and the backward pass must equal central finite differences of
 * L = sum(y * r) taken through maxpool_forward itself (exact here, since the
 * function is piecewise linear and the perturbation stays within one piece). Ties
 * pick the first maximum in row-major window order; NaN propagates. Backward
 * overwrites dx. Average pooling: forward vs a double mean, backward vs dy / hw. */
#include "pool.h"
#include "testutil.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Naive max pooling with -inf padding, in double; first maximum wins. */
static void naive_maxpool(int k, int stride, int pad, int h, int w, int ho, int wo, size_t planes,
                          const float *x, double *y, int32_t *argmax)
{
    for (size_t p = 0; p < planes; p++)
        for (int oy = 0; oy < ho; oy++)
            for (int ox = 0; ox < wo; ox++) {
                double best = -INFINITY;
                int32_t best_i = -1;
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                        double v = -INFINITY;
                        if (iy >= 0 && iy < h && ix >= 0 && ix < w)
                            v = (double)x[p * (size_t)h * w + (size_t)iy * w + ix];
                        if (v > best) {
                            best = v;
                            best_i = iy * w + ix;
                        }
                    }
                y[p * (size_t)ho * wo + (size_t)oy * wo + ox] = best;
                argmax[p * (size_t)ho * wo + (size_t)oy * wo + ox] = best_i;
            }
}

struct pool_loss {
    const struct maxpool_shape *s;
    size_t planes;
    const float *x;
    const double *r;
    float *y;
    int32_t *argmax;
};

/* L = sum(y * r) through maxpool_forward itself. */
static double pool_loss(void *ctx, enum gc_point at)
{
    (void)at;
    struct pool_loss *p = ctx;
    maxpool_forward(p->s, p->planes, p->x, p->y, p->argmax);
    double l = 0.0;
    for (size_t i = 0; i < p->planes * (size_t)p->s->ho * p->s->wo; i++) l += (double)p->y[i] * p->r[i];
    return l;
}

static void check_maxpool(int k, int stride, int pad, int h, int w, size_t planes)
{
    struct maxpool_shape s;
    maxpool_shape_init(&s, k, stride, pad, h, w);
    char tag[96], name[160];
    snprintf(tag, sizeof tag, "maxpool %dx%d/%d pad %d on %dx%d", k, k, stride, pad, h, w);
    int ho = (h + 2 * pad - k) / stride + 1, wo = (w + 2 * pad - k) / stride + 1;
    EXPECT(s.ho == ho && s.wo == wo, "%s: output %dx%d, want %dx%d", tag, s.ho, s.wo, ho, wo);

    size_t nin = planes * (size_t)h * w, nout = planes * (size_t)ho * wo;
    float *x = xalloc(sizeof(float) * nin), *y = xalloc(sizeof(float) * nout);
    float *dy = xalloc(sizeof(float) * nout), *dx = xalloc(sizeof(float) * nin);
    int32_t *am = xalloc(sizeof(int32_t) * nout), *am_ref = xalloc(sizeof(int32_t) * nout);
    double *yref = xalloc(sizeof(double) * nout), *got = xalloc(sizeof(double) * nin);
    double *r = xalloc(sizeof(double) * nout);

    /* Distinct values 0.25 apart, a random permutation, mostly negative. */
    size_t *perm = xalloc(sizeof(size_t) * nin);
    for (size_t i = 0; i < nin; i++) perm[i] = i;
    for (size_t i = nin - 1; i > 0; i--) {
        size_t j = (size_t)urand(0, (double)(i + 1));
        size_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (size_t i = 0; i < nin; i++) x[i] = 0.25f * (float)perm[i] - 0.25f * 0.9f * (float)nin;
    free(perm);

    maxpool_forward(&s, planes, x, y, am);
    naive_maxpool(k, stride, pad, h, w, ho, wo, planes, x, yref, am_ref);
    for (size_t i = 0; i < nout; i++) got[i] = (double)y[i];
    snprintf(name, sizeof name, "%s: y", tag);
    expect_close(name, got, yref, nout, 0.0);
    size_t bad = (size_t)-1;
    for (size_t i = 0; i < nout && bad == (size_t)-1; i++)
        if (am[i] != am_ref[i]) bad = i;
    EXPECT(bad == (size_t)-1, "%s: argmax differs first at [%zu]: %d, want %d", tag, bad,
           bad == (size_t)-1 ? 0 : am[bad], bad == (size_t)-1 ? 0 : am_ref[bad]);

    /* backward vs finite differences through maxpool_forward */
    for (size_t i = 0; i < nout; i++) {
        r[i] = urand(-1, 1);
        dy[i] = (float)r[i];
        r[i] = (double)dy[i];
    }
    for (size_t i = 0; i < nin; i++) dx[i] = NAN;
    maxpool_backward(&s, planes, dy, am, dx);
    for (size_t i = 0; i < nin; i++) got[i] = (double)dx[i];
    struct pool_loss pl = {&s, planes, x, r, y, am_ref};
    struct gradcheck gc = {.op = tag, .tensor = "dx", .loss = pool_loss, .ctx = &pl, .step = 0.01,
                           .tol = 1e-6};
    gradcheck_float(&gc, x, got, nin);

    free(x);
    free(y);
    free(dy);
    free(dx);
    free(am);
    free(am_ref);
    free(yref);
    free(got);
    free(r);
}

/* Equal values: the first valid position of each window wins. */
static void check_ties(void)
{
    struct maxpool_shape s;
    maxpool_shape_init(&s, 3, 2, 1, 5, 5);
    float x[25], y[9];
    int32_t am[9];
    for (int i = 0; i < 25; i++) x[i] = -3.0f;
    maxpool_forward(&s, 1, x, y, am);
    int ok = 1;
    for (int oy = 0; oy < 3; oy++)
        for (int ox = 0; ox < 3; ox++) {
            int iy = oy * 2 - 1 < 0 ? 0 : oy * 2 - 1, ix = ox * 2 - 1 < 0 ? 0 : ox * 2 - 1;
            ok &= am[oy * 3 + ox] == iy * 5 + ix && y[oy * 3 + ox] == -3.0f;
        }
    EXPECT(ok, "ties: argmax is not the first valid position of the window");
}

/* A NaN in a window makes that output NaN, as in PyTorch. */
static void check_nan(void)
{
    struct maxpool_shape s;
    maxpool_shape_init(&s, 3, 2, 1, 4, 4);
    float x[16], y[4];
    int32_t am[4];
    for (int i = 0; i < 16; i++) x[i] = (float)i;
    x[4] = NAN; /* row 1, column 0: in windows 0 and 2 */
    maxpool_forward(&s, 1, x, y, am);
    EXPECT(isnan(y[0]) && am[0] == 4, "NaN in window 0: y %g argmax %d", (double)y[0], am[0]);
    EXPECT(isnan(y[2]) && am[2] == 4, "NaN in window 2: y %g argmax %d", (double)y[2], am[2]);
    EXPECT(y[1] == 7.0f && am[1] == 7, "window 1: y %g argmax %d", (double)y[1], am[1]);
    EXPECT(y[3] == 15.0f && am[3] == 15, "window 3: y %g argmax %d", (double)y[3], am[3]);
}

static void check_avgpool(size_t planes, int hw)
{
    char name[96];
    size_t n = planes * (size_t)hw;
    float *x = xalloc(sizeof(float) * n), *y = xalloc(sizeof(float) * planes);
    float *dy = xalloc(sizeof(float) * planes), *dx = xalloc(sizeof(float) * n);
    double *got = xalloc(sizeof(double) * n), *want = xalloc(sizeof(double) * n);
    for (size_t i = 0; i < n; i++) x[i] = (float)urand(-2, 3);
    for (size_t p = 0; p < planes; p++) dy[p] = (float)urand(-1, 1);
    avgpool_forward(planes, hw, x, y);
    for (size_t p = 0; p < planes; p++) {
        double acc = 0.0;
        for (int i = 0; i < hw; i++) acc += (double)x[p * (size_t)hw + i];
        want[p] = acc / hw;
        got[p] = (double)y[p];
    }
    snprintf(name, sizeof name, "avgpool planes=%zu hw=%d: y", planes, hw);
    expect_close(name, got, want, planes, 1e-6);
    for (size_t i = 0; i < n; i++) dx[i] = NAN;
    avgpool_backward(planes, hw, dy, dx);
    for (size_t i = 0; i < n; i++) {
        got[i] = (double)dx[i];
        want[i] = (double)dy[i / (size_t)hw] / hw;
    }
    snprintf(name, sizeof name, "avgpool planes=%zu hw=%d: dx", planes, hw);
    expect_close(name, got, want, n, 1e-6);
    free(x);
    free(y);
    free(dy);
    free(dx);
    free(got);
    free(want);
}

int main(void)
{
    urand_seed(0x9001ull, 3);
    check_maxpool(3, 2, 1, 14, 14, 6); /* the stem at 28x28 input */
    check_maxpool(3, 2, 1, 7, 9, 5);
    check_maxpool(3, 2, 1, 8, 6, 4);
    check_maxpool(3, 2, 1, 1, 1, 3);
    check_maxpool(3, 2, 1, 2, 3, 3);
    check_maxpool(2, 2, 0, 6, 5, 4);
    check_maxpool(3, 1, 1, 5, 4, 2);
    check_ties();
    check_nan();
    check_avgpool(12, 1);
    check_avgpool(7, 16);
    check_avgpool(3, 49);
    return test_summary("test_pool");
}
