/* test_conv: conv2d_forward and conv2d_backward (conv.c) against a naive direct
 * convolution written here in double.
 *
 * Shapes cover stride 1 and 2, padding 0/1/3, kernels 1x1 (the pointwise fast path
 * 1x1/s1/p0 and the im2col path 1x1/s2), 3x3 and 7x7, non-square inputs, a kernel
 * larger than the input, and batches of 1..5. Every shape runs with a column
 * workspace of exactly one sample (one sample per chunk), of two samples plus one
 * float (chunks of two with a remainder) and of twice the whole batch.
 *
 * Backward is checked for L = sum(y * r) with random r: the reference gradients are
 * the adjoint of the naive double convolution, which is itself validated against
 * central finite differences of the double forward. The float op must then match
 * the reference to 1e-4 relative to max(|g|, 1). dw and db must ACCUMULATE onto
 * existing values, dx must be overwritten (its old contents are NaN) or accumulated
 * with accumulate_dx, and dx == NULL must leave dw and db correct. Guard floats after
 * every output catch writes past the end. */
#include "conv.h"
#include "rng.h"
#include "testutil.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define GUARD 16
#define GUARD_VALUE 12345.0f
#define TOL 1e-4

static uint64_t rand_counter;

/* Uniform in [lo, hi). */
static double urand(double lo, double hi)
{
    return lo + (hi - lo) * rng_uniform(0xc0417e57ull, 1, rand_counter++);
}

static float *alloc_floats(size_t n)
{
    float *p = malloc(sizeof(float) * (n + GUARD));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n + GUARD; i++) p[i] = GUARD_VALUE;
    return p;
}

static double *alloc_doubles(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof(double));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

static void check_guard(const char *name, const float *p, size_t n)
{
    for (size_t i = n; i < n + GUARD; i++)
        if (p[i] != GUARD_VALUE) {
            EXPECT(p[i] == GUARD_VALUE, "%s: write past the end at [%zu]", name, i);
            return;
        }
}

static size_t xidx(const struct conv_shape *s, int c, int n, int y, int x)
{
    return (((size_t)c * s->n + n) * s->h + y) * s->w + x;
}

static size_t yidx(const struct conv_shape *s, int c, int n, int y, int x)
{
    return (((size_t)c * s->n + n) * s->ho + y) * s->wo + x;
}

static size_t widx(const struct conv_shape *s, int co, int ci, int ky, int kx)
{
    return (((size_t)co * s->cin + ci) * s->k + ky) * s->k + kx;
}

/* Direct convolution in double; b may be NULL. */
static void naive_forward(const struct conv_shape *s, const double *x, const double *w,
                          const double *b, double *y)
{
    for (int co = 0; co < s->cout; co++)
        for (int n = 0; n < s->n; n++)
            for (int oy = 0; oy < s->ho; oy++)
                for (int ox = 0; ox < s->wo; ox++) {
                    double acc = b ? b[co] : 0.0;
                    for (int ci = 0; ci < s->cin; ci++)
                        for (int ky = 0; ky < s->k; ky++)
                            for (int kx = 0; kx < s->k; kx++) {
                                int iy = oy * s->stride - s->pad + ky;
                                int ix = ox * s->stride - s->pad + kx;
                                if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w) continue;
                                acc += w[widx(s, co, ci, ky, kx)] * x[xidx(s, ci, n, iy, ix)];
                            }
                    y[yidx(s, co, n, oy, ox)] = acc;
                }
}

/* Gradients of L = sum(y * r) of the direct convolution (its adjoint), in double. */
static void naive_backward(const struct conv_shape *s, const double *x, const double *w,
                           const double *r, double *dw, double *db, double *dx)
{
    size_t nx = (size_t)s->cin * s->n * s->h * s->w;
    size_t nw = (size_t)s->cout * s->cin * s->k * s->k;
    memset(dx, 0, sizeof(double) * nx);
    memset(dw, 0, sizeof(double) * nw);
    memset(db, 0, sizeof(double) * (size_t)s->cout);
    for (int co = 0; co < s->cout; co++)
        for (int n = 0; n < s->n; n++)
            for (int oy = 0; oy < s->ho; oy++)
                for (int ox = 0; ox < s->wo; ox++) {
                    double g = r[yidx(s, co, n, oy, ox)];
                    db[co] += g;
                    for (int ci = 0; ci < s->cin; ci++)
                        for (int ky = 0; ky < s->k; ky++)
                            for (int kx = 0; kx < s->k; kx++) {
                                int iy = oy * s->stride - s->pad + ky;
                                int ix = ox * s->stride - s->pad + kx;
                                if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w) continue;
                                dw[widx(s, co, ci, ky, kx)] += g * x[xidx(s, ci, n, iy, ix)];
                                dx[xidx(s, ci, n, iy, ix)] += g * w[widx(s, co, ci, ky, kx)];
                            }
                }
}

static double loss_of(const struct conv_shape *s, const double *x, const double *w,
                      const double *b, const double *r, double *ybuf)
{
    size_t ny = (size_t)s->cout * s->n * s->ho * s->wo;
    naive_forward(s, x, w, b, ybuf);
    double l = 0.0;
    for (size_t i = 0; i < ny; i++) l += ybuf[i] * r[i];
    return l;
}

/* Central finite difference of the double loss with respect to v[i]. */
static double fd(const struct conv_shape *s, double *x, double *w, double *b, const double *r,
                 double *ybuf, double *v, size_t i)
{
    const double h = 1e-3, old = v[i];
    v[i] = old + h;
    double lp = loss_of(s, x, w, b, r, ybuf);
    v[i] = old - h;
    double lm = loss_of(s, x, w, b, r, ybuf);
    v[i] = old;
    return (lp - lm) / (2 * h);
}

/* The analytic reference must agree with finite differences of the double forward
 * (the loss is linear in each variable, so this holds to rounding). */
static void validate_reference(const char *tag, const struct conv_shape *s, double *x, double *w,
                               double *b, const double *r, const double *dw, const double *db,
                               const double *dx)
{
    size_t nx = (size_t)s->cin * s->n * s->h * s->w;
    size_t nw = (size_t)s->cout * s->cin * s->k * s->k;
    double *ybuf = alloc_doubles((size_t)s->cout * s->n * s->ho * s->wo);
    char name[160];
    enum { SAMPLES = 12 };
    double got[SAMPLES], want[SAMPLES];
    for (int t = 0; t < SAMPLES; t++) {
        size_t i = (size_t)urand(0, (double)nw);
        got[t] = fd(s, x, w, b, r, ybuf, w, i);
        want[t] = dw[i];
    }
    snprintf(name, sizeof name, "%s: reference dw vs finite differences", tag);
    expect_close(name, got, want, SAMPLES, 1e-8);
    for (int t = 0; t < SAMPLES; t++) {
        size_t i = (size_t)urand(0, (double)nx);
        got[t] = fd(s, x, w, b, r, ybuf, x, i);
        want[t] = dx[i];
    }
    snprintf(name, sizeof name, "%s: reference dx vs finite differences", tag);
    expect_close(name, got, want, SAMPLES, 1e-8);
    for (int t = 0; t < s->cout && t < SAMPLES; t++) {
        got[t] = fd(s, x, w, b, r, ybuf, b, (size_t)t);
        want[t] = db[t];
    }
    snprintf(name, sizeof name, "%s: reference db vs finite differences", tag);
    expect_close(name, got, want, (size_t)(s->cout < SAMPLES ? s->cout : SAMPLES), 1e-8);
    free(ybuf);
}

static void to_double(const float *src, double *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = (double)src[i];
}

static void random_floats(float *p, double *pd, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (float)urand(lo, hi);
        pd[i] = (double)p[i];
    }
}

struct conv_case {
    int cin, cout, k, stride, pad, n, h, w;
};

static void run_case(const struct conv_case *cc)
{
    struct conv_shape s;
    conv_shape_init(&s, cc->cin, cc->cout, cc->k, cc->stride, cc->pad, cc->n, cc->h, cc->w);
    char tag[96];
    snprintf(tag, sizeof tag, "cin=%d cout=%d k=%d s=%d p=%d n=%d %dx%d", cc->cin, cc->cout, cc->k,
             cc->stride, cc->pad, cc->n, cc->h, cc->w);
    EXPECT(s.ho == (cc->h + 2 * cc->pad - cc->k) / cc->stride + 1 &&
               s.wo == (cc->w + 2 * cc->pad - cc->k) / cc->stride + 1,
           "%s: output %dx%d", tag, s.ho, s.wo);
    bool pointwise = cc->k == 1 && cc->stride == 1 && cc->pad == 0;
    EXPECT(conv_is_pointwise(&s) == pointwise, "%s: conv_is_pointwise", tag);
    size_t per_sample = conv2d_col_floats(&s);
    EXPECT(per_sample == (pointwise ? 0 : (size_t)cc->cin * cc->k * cc->k * s.ho * s.wo),
           "%s: conv2d_col_floats = %zu", tag, per_sample);

    const size_t nx = (size_t)s.cin * s.n * s.h * s.w, nw = (size_t)s.cout * s.cin * s.k * s.k;
    const size_t ny = (size_t)s.cout * s.n * s.ho * s.wo, nb = (size_t)s.cout;
    float *x = alloc_floats(nx), *w = alloc_floats(nw), *b = alloc_floats(nb);
    double *xd = alloc_doubles(nx), *wd = alloc_doubles(nw), *bd = alloc_doubles(nb);
    double *rd = alloc_doubles(ny), *yd = alloc_doubles(ny), *yd_nobias = alloc_doubles(ny);
    float *r = alloc_floats(ny);
    random_floats(x, xd, nx, -1, 1);
    random_floats(w, wd, nw, -1, 1);
    random_floats(b, bd, nb, -1, 1);
    random_floats(r, rd, ny, -1, 1);
    naive_forward(&s, xd, wd, bd, yd);
    naive_forward(&s, xd, wd, NULL, yd_nobias);

    double *gw = alloc_doubles(nw), *gb = alloc_doubles(nb), *gx = alloc_doubles(nx);
    naive_backward(&s, xd, wd, rd, gw, gb, gx);
    validate_reference(tag, &s, xd, wd, bd, rd, gw, gb, gx);

    /* Workspaces: one sample per chunk, two per chunk (+1 float), twice the batch. */
    size_t spaces[3] = {per_sample, 2 * per_sample + 1, 2 * per_sample * (size_t)s.n};
    int nspaces = pointwise ? 1 : 3;
    if (pointwise) spaces[0] = 0;

    float *y = alloc_floats(ny), *dw = alloc_floats(nw), *db = alloc_floats(nb);
    float *dx = alloc_floats(nx), *dw0 = alloc_floats(nw), *db0 = alloc_floats(nb);
    float *dx0 = alloc_floats(nx);
    double *got = alloc_doubles(nx > nw ? (nx > ny ? nx : ny) : (nw > ny ? nw : ny));
    double *want = alloc_doubles(nx > nw ? (nx > ny ? nx : ny) : (nw > ny ? nw : ny));
    for (int sp = 0; sp < nspaces; sp++) {
        size_t col_floats = spaces[sp];
        float *col = col_floats ? alloc_floats(col_floats) : NULL;
        char name[200];

        /* forward, with and without bias */
        conv2d_forward(&s, x, w, b, y, col, col_floats);
        to_double(y, got, ny);
        snprintf(name, sizeof name, "%s col=%zu: y", tag, col_floats);
        expect_close(name, got, yd, ny, TOL);
        check_guard(name, y, ny);
        conv2d_forward(&s, x, w, NULL, y, col, col_floats);
        to_double(y, got, ny);
        snprintf(name, sizeof name, "%s col=%zu: y (no bias)", tag, col_floats);
        expect_close(name, got, yd_nobias, ny, TOL);
        if (col) check_guard("col", col, col_floats);

        /* backward, dx overwritten: dw/db start from random values and accumulate */
        for (size_t i = 0; i < nw; i++) dw[i] = dw0[i] = (float)urand(-1, 1);
        for (size_t i = 0; i < nb; i++) db[i] = db0[i] = (float)urand(-1, 1);
        for (size_t i = 0; i < nx; i++) dx[i] = NAN;
        conv2d_backward(&s, x, w, r, dw, db, dx, false, col, col_floats);
        for (size_t i = 0; i < nw; i++) {
            got[i] = (double)dw[i];
            want[i] = (double)dw0[i] + gw[i];
        }
        snprintf(name, sizeof name, "%s col=%zu: dw (accumulated)", tag, col_floats);
        expect_close(name, got, want, nw, TOL);
        check_guard(name, dw, nw);
        for (size_t i = 0; i < nb; i++) {
            got[i] = (double)db[i];
            want[i] = (double)db0[i] + gb[i];
        }
        snprintf(name, sizeof name, "%s col=%zu: db (accumulated)", tag, col_floats);
        expect_close(name, got, want, nb, TOL);
        check_guard(name, db, nb);
        to_double(dx, got, nx);
        snprintf(name, sizeof name, "%s col=%zu: dx (overwritten)", tag, col_floats);
        expect_close(name, got, gx, nx, TOL);
        check_guard(name, dx, nx);

        /* backward with accumulate_dx: dx starts from random values */
        for (size_t i = 0; i < nx; i++) dx[i] = dx0[i] = (float)urand(-2, 2);
        for (size_t i = 0; i < nw; i++) dw[i] = 0.0f;
        for (size_t i = 0; i < nb; i++) db[i] = 0.0f;
        conv2d_backward(&s, x, w, r, dw, db, dx, true, col, col_floats);
        for (size_t i = 0; i < nx; i++) {
            got[i] = (double)dx[i];
            want[i] = (double)dx0[i] + gx[i];
        }
        snprintf(name, sizeof name, "%s col=%zu: dx (accumulate_dx)", tag, col_floats);
        expect_close(name, got, want, nx, TOL);
        check_guard(name, dx, nx);
        to_double(dw, got, nw);
        snprintf(name, sizeof name, "%s col=%zu: dw (from zero)", tag, col_floats);
        expect_close(name, got, gw, nw, TOL);

        /* backward without an input gradient */
        for (size_t i = 0; i < nw; i++) dw[i] = 0.0f;
        for (size_t i = 0; i < nb; i++) db[i] = 0.0f;
        conv2d_backward(&s, x, w, r, dw, db, NULL, false, col, col_floats);
        to_double(dw, got, nw);
        snprintf(name, sizeof name, "%s col=%zu: dw (dx NULL)", tag, col_floats);
        expect_close(name, got, gw, nw, TOL);
        to_double(db, got, nb);
        snprintf(name, sizeof name, "%s col=%zu: db (dx NULL)", tag, col_floats);
        expect_close(name, got, gb, nb, TOL);
        if (col) check_guard("col", col, col_floats);
        free(col);
    }
    free(got);
    free(want);
    free(x);
    free(w);
    free(b);
    free(r);
    free(y);
    free(dw);
    free(db);
    free(dx);
    free(dw0);
    free(db0);
    free(dx0);
    free(xd);
    free(wd);
    free(bd);
    free(rd);
    free(yd);
    free(yd_nobias);
    free(gw);
    free(gb);
    free(gx);
}

/* An empty batch is a no-op forward and adds nothing but zeros. */
static void check_empty_batch(void)
{
    struct conv_shape s;
    conv_shape_init(&s, 2, 3, 3, 1, 1, 0, 5, 5);
    float w[54], b[3] = {1, 2, 3}, dw[54], db[3] = {4, 5, 6}, col[2 * 9 * 25];
    float x[1] = {7}, y[1] = {8}, dy[1] = {9};
    for (int i = 0; i < 54; i++) w[i] = dw[i] = (float)i;
    conv2d_forward(&s, x, w, b, y, col, sizeof col / sizeof col[0]);
    conv2d_backward(&s, x, w, dy, dw, db, NULL, false, col, sizeof col / sizeof col[0]);
    EXPECT(y[0] == 8.0f, "n = 0 forward wrote to y");
    int same = 1;
    for (int i = 0; i < 54; i++) same &= dw[i] == (float)i;
    EXPECT(same && db[0] == 4.0f && db[1] == 5.0f && db[2] == 6.0f,
           "n = 0 backward changed dw/db");
}

int main(void)
{
    static const struct conv_case cases[] = {
        {3, 4, 3, 1, 1, 2, 7, 5},   /* 3x3/1 pad 1, non-square */
        {2, 3, 3, 2, 1, 3, 9, 8},   /* 3x3/2 pad 1 */
        {3, 2, 3, 2, 0, 2, 8, 7},   /* 3x3/2 pad 0: last row/column dropped */
        {2, 2, 3, 1, 0, 1, 6, 4},   /* 3x3/1 pad 0, one sample */
        {3, 5, 1, 1, 0, 4, 5, 6},   /* pointwise fast path */
        {5, 3, 1, 1, 0, 1, 3, 7},   /* pointwise, one sample */
        {4, 3, 1, 2, 0, 3, 7, 7},   /* 1x1/2 through im2col (the shortcut) */
        {2, 3, 1, 2, 0, 5, 6, 5},   /* 1x1/2, even and odd sides */
        {1, 4, 7, 2, 3, 5, 16, 13}, /* the stem: 7x7/2 pad 3 */
        {2, 3, 7, 1, 3, 2, 5, 4},   /* 7x7 larger than the input */
        {3, 2, 7, 2, 3, 3, 11, 12}, /* 7x7/2 pad 3, odd/even */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);
    check_empty_batch();
    return test_summary("test_conv");
}
