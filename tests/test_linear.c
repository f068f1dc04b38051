/* test_linear: linear_forward / linear_backward (linear.c), nn.Linear with a
 * channel-major input x (in, n), weight (out, in), output (n, out).
 *
 * Forward against a naive double product. Backward for L = sum(y * r): dw, db and dx
 * against central finite differences of the double forward (the loss is linear in
 * every variable, so the differences are exact to rounding); dw and db (double)
 * accumulate onto existing values, dx is overwritten, and dx == NULL leaves dw/db
 * correct. With micro-shards, dw summed over separate calls per shard equals one
 * call over the batch bit for bit. */
#include "gemm.h"
#include "linear.h"
#include "testutil.h"

#include <math.h>
#include <string.h>

#define TOL 1e-5

static double naive_loss(int n, int in, int out, const double *x, const double *w,
                         const double *b, const double *r, double *y)
{
    double l = 0.0;
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double acc = b[o];
            for (int k = 0; k < in; k++) acc += x[(size_t)k * n + i] * w[(size_t)o * in + k];
            y[(size_t)i * out + o] = acc;
            l += acc * r[(size_t)i * out + o];
        }
    return l;
}

struct linear_loss {
    int n, in, out;
    double *x, *w, *b;
    const double *r;
    double *y;
};

static double linear_loss(void *ctx, enum gc_point at)
{
    (void)at;
    struct linear_loss *c = ctx;
    return naive_loss(c->n, c->in, c->out, c->x, c->w, c->b, c->r, c->y);
}

static void fill(float *f, double *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        f[i] = (float)urand(-1, 1);
        d[i] = (double)f[i];
    }
}

static void check_linear(int n, int in, int out, int shard)
{
    char tag[64], name[128];
    snprintf(tag, sizeof tag, "linear n=%d in=%d out=%d shard=%d", n, in, out, shard);
    size_t nx = (size_t)in * n, nw = (size_t)out * in, ny = (size_t)n * out, nb = (size_t)out;
    float *x = xalloc(sizeof(float) * nx), *w = xalloc(sizeof(float) * nw);
    float *b = xalloc(sizeof(float) * nb), *r = xalloc(sizeof(float) * ny);
    float *y = xalloc(sizeof(float) * ny), *dx = xalloc(sizeof(float) * nx);
    float *dw_tmp = xalloc(sizeof(float) * nw);
    double *dw = xalloc(sizeof(double) * nw), *db = xalloc(sizeof(double) * nb);
    double *dw0 = xalloc(sizeof(double) * nw), *db0 = xalloc(sizeof(double) * nb);
    double *xd = xalloc(sizeof(double) * nx), *wd = xalloc(sizeof(double) * nw);
    double *bd = xalloc(sizeof(double) * nb), *rd = xalloc(sizeof(double) * ny);
    double *yd = xalloc(sizeof(double) * ny);
    size_t big = nx > nw ? nx : nw;
    big = big > ny ? big : ny;
    double *got = xalloc(sizeof(double) * big), *want = xalloc(sizeof(double) * big);
    fill(x, xd, nx);
    fill(w, wd, nw);
    fill(b, bd, nb);
    fill(r, rd, ny);

    linear_forward(n, in, out, x, w, b, y, 0);
    naive_loss(n, in, out, xd, wd, bd, rd, yd);
    for (size_t i = 0; i < ny; i++) got[i] = (double)y[i];
    snprintf(name, sizeof name, "%s: y", tag);
    expect_close(name, got, yd, ny, TOL);

    for (size_t i = 0; i < nw; i++) dw[i] = dw0[i] = urand(-1, 1);
    for (size_t i = 0; i < nb; i++) db[i] = db0[i] = urand(-1, 1);
    for (size_t i = 0; i < nx; i++) dx[i] = NAN;
    linear_backward(n, in, out, x, w, r, grad_of_doubles(dw), grad_of_doubles(db), dx, shard, shard, dw_tmp);

    struct linear_loss ll = {n, in, out, xd, wd, bd, rd, yd}; /* yd is scratch now */
    struct gradcheck gc = {.op = tag, .loss = linear_loss, .ctx = &ll, .step = 1e-3, .tol = TOL};
    for (size_t i = 0; i < nw; i++) want[i] = dw[i] - dw0[i];
    gc.tensor = "dw (accumulated)";
    gradcheck_double(&gc, wd, want, nw);
    for (size_t i = 0; i < nb; i++) want[i] = db[i] - db0[i];
    gc.tensor = "db (accumulated)";
    gradcheck_double(&gc, bd, want, nb);
    for (size_t i = 0; i < nx; i++) want[i] = (double)dx[i];
    gc.tensor = "dx";
    gradcheck_double(&gc, xd, want, nx);

    /* dx == NULL: parameter gradients only */
    memset(dw, 0, sizeof(double) * nw);
    memset(db, 0, sizeof(double) * nb);
    linear_backward(n, in, out, x, w, r, grad_of_doubles(dw), grad_of_doubles(db), NULL, shard, shard, dw_tmp);
    gc.tensor = "dw (dx NULL)";
    gradcheck_double(&gc, wd, dw, nw);
    gc.tensor = "db (dx NULL)";
    gradcheck_double(&gc, bd, db, nb);

    /* Shards: dw summed over separate calls per shard equals one call, bit for bit. */
    if (shard > 0 && shard < n) {
        double *split = xalloc(sizeof(double) * nw), *splitb = xalloc(sizeof(double) * nb);
        for (int s0 = 0; s0 < n; s0 += shard) {
            int ns = n - s0 < shard ? n - s0 : shard;
            float *xs = xalloc(sizeof(float) * (size_t)in * ns);
            for (int k = 0; k < in; k++)
                memcpy(xs + (size_t)k * ns, x + (size_t)k * n + s0, sizeof(float) * (size_t)ns);
            linear_backward(ns, in, out, xs, w, r + (size_t)s0 * out, grad_of_doubles(split), grad_of_doubles(splitb),
                            NULL, shard, shard, dw_tmp);
            free(xs);
        }
        EXPECT(memcmp(split, dw, sizeof(double) * nw) == 0,
               "%s: dw over separate shards differs from one call", tag);
        snprintf(name, sizeof name, "%s: db over separate shards", tag);
        expect_close(name, splitb, db, nb, 1e-12);
        free(split);
        free(splitb);
    }

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
    free(dw_tmp);
    free(xd);
    free(wd);
    free(bd);
    free(rd);
    free(yd);
    free(got);
    free(want);
}

int main(void)
{
    gemm_set_threads(1); /* the shard checks compare bit for bit */
    urand_seed(0x11ea5ull, 6);
    check_linear(5, 7, 3, 0);
    check_linear(5, 7, 3, 2);
    check_linear(1, 4, 10, 0);
    check_linear(6, 1, 2, 1);
    check_linear(16, 64, 10, 0);
    check_linear(16, 64, 10, 5);
    return test_summary("test_linear");
}
