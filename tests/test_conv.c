/* test_conv: conv2d_forward and conv2d_backward (conv.c) against a naive direct
 * convolution written here in double.
 *
 * Shapes cover stride 1 and 2, padding 0/1/3, kernels 1x1 (the pointwise fast path
 * 1x1/s1/p0 and the im2col path 1x1/s2), 3x3 and 7x7, non-square inputs, a kernel
 * larger than the input, and batches of 1..5. Every shape runs with a column
 * workspace of exactly one sample (one sample per chunk), of two samples plus one
 * float (chunks of two with a remainder) and of twice the whole batch, each with
 * micro-shards of the whole batch, one sample and two samples. With shards, one call
 * over the batch must equal separate calls over its shards: y, dx and the double
 * dw bit for bit, db to double rounding.
 *
 * Backward is checked for L = sum(y * r) with random r: the reference gradients are
 * the adjoint of the naive double convolution, which is itself validated, every
 * element, against central finite differences of the double forward (testutil.h's
 * gradient checker, to 1e-8). The float op must then match
 * the reference to 1e-4 relative to max(|g|, 1). dw and db (double accumulators)
 * must ACCUMULATE onto existing values, dx must be overwritten (its old contents are
 * NaN) or accumulated with accumulate_dx, and dx == NULL must leave dw and db
 * correct. Guard floats after every output catch writes past the end. A Winograd
 * layer that runs its chunks in groups gives the bits it gives one chunk at a time. */
#include "conv.h"
#include "winograd.h"
#include "gemm.h"
#include "testutil.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define GUARD 16
#define GUARD_VALUE 12345.0f
#define TOL 1e-4

static float *alloc_floats(size_t n)
{
    float *p = xalloc(sizeof(float) * (n + GUARD));
    for (size_t i = 0; i < n + GUARD; i++) p[i] = GUARD_VALUE;
    return p;
}

static double *alloc_doubles(size_t n)
{
    return xalloc(sizeof(double) * n);
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

struct conv_loss {
    const struct conv_shape *s;
    const double *x, *w, *b, *r;
    double *y;
};

/* L = sum(y * r) of the direct convolution. */
static double conv_loss(void *ctx, enum gc_point at)
{
    (void)at;
    struct conv_loss *c = ctx;
    size_t ny = (size_t)c->s->cout * c->s->n * c->s->ho * c->s->wo;
    naive_forward(c->s, c->x, c->w, c->b, c->y);
    double l = 0.0;
    for (size_t i = 0; i < ny; i++) l += c->y[i] * c->r[i];
    return l;
}

/* The analytic reference must agree with finite differences of the double forward
 * (the loss is linear in each variable, so this holds to rounding). */
static void validate_reference(const char *tag, const struct conv_shape *s, double *x, double *w,
                               double *b, const double *r, const double *dw, const double *db,
                               const double *dx)
{
    double *ybuf = alloc_doubles((size_t)s->cout * s->n * s->ho * s->wo);
    char op[160];
    snprintf(op, sizeof op, "%s: reference", tag);
    struct conv_loss cl = {s, x, w, b, r, ybuf};
    struct gradcheck gc = {.op = op, .loss = conv_loss, .ctx = &cl, .step = 1e-3, .tol = 1e-8};
    gc.tensor = "dw";
    gradcheck_double(&gc, w, dw, (size_t)s->cout * s->cin * s->k * s->k);
    gc.tensor = "dx";
    gradcheck_double(&gc, x, dx, (size_t)s->cin * s->n * s->h * s->w);
    gc.tensor = "db";
    gradcheck_double(&gc, b, db, (size_t)s->cout);
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
    int expect_direct; /* one live tap reading x in place: no im2col */
};

/* Copy samples [n0, n0 + nc) of a (c, n, plane) tensor into a (c, nc, plane) one. */
static void take_samples(const float *src, int c, int n, size_t plane, int n0, int nc, float *dst)
{
    for (int ch = 0; ch < c; ch++)
        memcpy(dst + (size_t)ch * nc * plane, src + ((size_t)ch * n + n0) * plane,
               sizeof(float) * (size_t)nc * plane);
}

/* Micro-shards: one call over the whole batch with ws->shard = S must give exactly
 * what separate calls over each shard of S samples give (y, dx and dw bit for bit,
 * since dw is summed per shard in double; db to double rounding). */
static void check_shard_split(const char *tag, const struct conv_shape *s, const float *x,
                              const float *w, const float *b, const float *r,
                              const struct conv_workspace *ws, const float *y_whole,
                              const double *dw_whole, const double *db_whole,
                              const float *dx_whole)
{
    const size_t xplane = (size_t)s->h * s->w, yplane = (size_t)s->ho * s->wo;
    const size_t nw = (size_t)s->cout * s->cin * s->k * s->k;
    const int shard = ws->shard;
    double *dw = alloc_doubles(nw), *db = alloc_doubles((size_t)s->cout);
    bool y_same = true, dx_same = true;
    double db_diff = 0.0;
    for (int n0 = 0; n0 < s->n; n0 += shard) {
        int nc = s->n - n0 < shard ? s->n - n0 : shard;
        struct conv_shape part = *s;
        part.n = nc;
        float *xs = alloc_floats((size_t)s->cin * nc * xplane);
        float *rs = alloc_floats((size_t)s->cout * nc * yplane);
        float *ys = alloc_floats((size_t)s->cout * nc * yplane);
        float *dxs = alloc_floats((size_t)s->cin * nc * xplane);
        float *cmp = alloc_floats((size_t)(s->cout > s->cin ? s->cout : s->cin) * nc *
                                  (xplane > yplane ? xplane : yplane));
        take_samples(x, s->cin, s->n, xplane, n0, nc, xs);
        take_samples(r, s->cout, s->n, yplane, n0, nc, rs);
        conv2d_forward(&part, xs, w, b, ys, ws);
        take_samples(y_whole, s->cout, s->n, yplane, n0, nc, cmp);
        y_same &= memcmp(ys, cmp, sizeof(float) * (size_t)s->cout * nc * yplane) == 0;
        conv2d_backward(&part, xs, w, rs, grad_of_doubles(dw), grad_of_doubles(db), dxs, false, ws);
        take_samples(dx_whole, s->cin, s->n, xplane, n0, nc, cmp);
        dx_same &= memcmp(dxs, cmp, sizeof(float) * (size_t)s->cin * nc * xplane) == 0;
        free(xs);
        free(rs);
        free(ys);
        free(dxs);
        free(cmp);
    }
    for (int c = 0; c < s->cout; c++)
        db_diff = fmax(db_diff, fabs(db[c] - db_whole[c]) / fmax(fabs(db_whole[c]), 1.0));
    EXPECT(y_same, "%s shard=%d: y of separate shards differs from the whole batch", tag, shard);
    EXPECT(dx_same, "%s shard=%d: dx of separate shards differs from the whole batch", tag, shard);
    EXPECT(memcmp(dw, dw_whole, sizeof(double) * nw) == 0,
           "%s shard=%d: dw summed over separate shards differs from the whole batch", tag, shard);
    EXPECT(db_diff < 1e-12, "%s shard=%d: db over separate shards differs by %.3g", tag, shard,
           db_diff);
    free(dw);
    free(db);
}

static int winograd_cases, tiny_cases;

/* How run_case computes a shape: as conv_shape_init chose (im2col, or tinymap on tiny
 * output maps), by Winograd (F(m x m, 3x3) with m = 2, 3 or 4), or by im2col where
 * the choice was tinymap. */
enum algorithm { AS_CHOSEN, WINOGRAD, IM2COL };

static void run_case(const struct conv_case *cc, enum algorithm algo)
{
    struct conv_shape s;
    conv_shape_init(&s, cc->cin, cc->cout, cc->k, cc->stride, cc->pad, cc->n, cc->h, cc->w);
    EXPECT(s.algo != CONV_WINOGRAD, "conv_shape_init turned Winograd on");
    /* tinymap is chosen for tiny output maps where im2col would multiply padding:
     * some output reads padding through a live tap. */
    bool pads = false;
    for (int i = 0; i < s.ntaps; i++)
        for (int oy = 0; oy < s.ho; oy++)
            for (int ox = 0; ox < s.wo; ox++) {
                int iy = oy * s.stride - s.pad + s.taps[i] / s.k;
                int ix = ox * s.stride - s.pad + s.taps[i] % s.k;
                pads |= iy < 0 || iy >= s.h || ix < 0 || ix >= s.w;
            }
    const bool direct = s.algo == CONV_DIRECT;
    bool tiny_expected = !direct && s.ho * s.wo <= CONV_TINY_OUTPUTS && pads;
    EXPECT((s.algo == CONV_TINYMAP) == tiny_expected, "conv_shape_init: algorithm %d for a %dx%d output",
           (int)s.algo, s.ho, s.wo);
    const bool winograd = algo == WINOGRAD;
    if (winograd) {
        if (!winograd_applies(&s)) return;
        s.algo = CONV_WINOGRAD;
        winograd_cases++;
    } else if (algo == IM2COL) {
        if (s.algo != CONV_TINYMAP) return; /* AS_CHOSEN was im2col already */
        s.algo = CONV_IM2COL;
    } else if (s.algo == CONV_TINYMAP) {
        tiny_cases++;
    }
    const bool tiny = s.algo == CONV_TINYMAP;
    char tag[110];
    snprintf(tag, sizeof tag, "cin=%d cout=%d k=%d s=%d p=%d n=%d %dx%d%s", cc->cin, cc->cout,
             cc->k, cc->stride, cc->pad, cc->n, cc->h, cc->w,
             winograd ? " winograd" : tiny ? " tinymap" : "");
    EXPECT(s.ho == (cc->h + 2 * cc->pad - cc->k) / cc->stride + 1 &&
               s.wo == (cc->w + 2 * cc->pad - cc->k) / cc->stride + 1,
           "%s: output %dx%d", tag, s.ho, s.wo);
    bool pointwise = cc->k == 1 && cc->stride == 1 && cc->pad == 0;
    EXPECT(conv_is_pointwise(&s) == pointwise, "%s: conv_is_pointwise", tag);
    /* Live taps, counted by brute force: a tap is live if some output reads a real
     * input pixel through it. */
    int live = 0;
    for (int ky = 0; ky < s.k; ky++)
        for (int kx = 0; kx < s.k; kx++) {
            bool any = false;
            for (int oy = 0; oy < s.ho; oy++)
                for (int ox = 0; ox < s.wo; ox++) {
                    int iy = oy * s.stride - s.pad + ky, ix = ox * s.stride - s.pad + kx;
                    any |= iy >= 0 && iy < s.h && ix >= 0 && ix < s.w;
                }
            if (any) {
                EXPECT(live < s.ntaps && s.taps[live] == ky * s.k + kx, "%s: live tap %d", tag, live);
                live++;
            }
        }
    EXPECT(live == s.ntaps, "%s: %d live taps, conv_shape says %d", tag, live, s.ntaps);
    EXPECT(direct == (cc->expect_direct || pointwise), "%s: direct = %d", tag, direct);
    size_t per_sample = conv2d_col_floats(&s);
    bool no_col = direct && !winograd;
    /* Winograd's tiles: m x m outputs ((m + 2)^2 positions) for the m of 2, 3, 4 that
     * multiplies least, ties to the smaller m. */
    size_t positions = 0, tiles = 0;
    for (size_t m = 2; m <= 4; m++) {
        size_t t = ((s.ho + m - 1) / m) * ((s.wo + m - 1) / m);
        if (!positions || (m + 2) * (m + 2) * t < positions * tiles) {
            positions = (m + 2) * (m + 2);
            tiles = t;
        }
    }
    /* Winograd's per sample: its tiles' transformed inputs and products, and 64 floats
     * per position for the padding of their strides. */
    EXPECT(per_sample == (winograd  ? positions * (tiles * (size_t)(cc->cin + cc->cout) + 64)
                          : tiny    ? 2 * (size_t)cc->cin * s.h * s.w + (size_t)cc->cout * s.ho * s.wo
                          : no_col ? 0
                                   : (size_t)cc->cin * live * s.ho * s.wo),
           "%s: conv2d_col_floats = %zu", tag, per_sample);
    EXPECT(conv2d_tap_weight_floats(&s) ==
               (winograd || (live == s.k * s.k && !tiny) ? 0 : (size_t)cc->cout * cc->cin * live),
           "%s: conv2d_tap_weight_floats = %zu", tag, conv2d_tap_weight_floats(&s));
    EXPECT(conv2d_winograd_floats(&s) == (winograd ? positions * cc->cout * cc->cin : 0),
           "%s: conv2d_winograd_floats = %zu", tag, conv2d_winograd_floats(&s));

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

    /* Column workspaces: one sample per chunk, two per chunk (+1 float), twice the
     * batch; shards: the whole batch, one sample, two samples (a short last shard
     * for odd n). */
    size_t spaces[3] = {per_sample, 2 * per_sample + 1, 2 * per_sample * (size_t)s.n};
    int nspaces = no_col ? 1 : 3;
    if (no_col) spaces[0] = 0;
    static const int shards[3] = {0, 1, 2};

    float *y = alloc_floats(ny), *dx = alloc_floats(nx), *dx0 = alloc_floats(nx);
    float *ws_dw = alloc_floats(nw);
    float *ws_wtap = conv2d_tap_weight_floats(&s) ? alloc_floats(conv2d_tap_weight_floats(&s)) : NULL;
    float *ws_wino = winograd ? alloc_floats(conv2d_winograd_floats(&s)) : NULL;
    /* Winograd's products buffer: zero to start with, and after every call (winograd.h). */
    const size_t nwo = conv2d_winograd_out_floats(&s);
    float *ws_wino_out = winograd ? alloc_floats(nwo) : NULL;
    if (ws_wino_out) memset(ws_wino_out, 0, sizeof(float) * nwo);
    double *dw = alloc_doubles(nw), *db = alloc_doubles(nb), *dw0 = alloc_doubles(nw);
    double *db0 = alloc_doubles(nb);
    size_t big = nx > nw ? (nx > ny ? nx : ny) : (nw > ny ? nw : ny);
    double *got = alloc_doubles(big), *want = alloc_doubles(big);
    for (int sp = 0; sp < nspaces; sp++)
        for (int sh = 0; sh < 3; sh++) {
            size_t col_floats = spaces[sp];
            float *col = col_floats ? alloc_floats(col_floats) : NULL;
            struct conv_workspace ws = {.col = col, .col_floats = col_floats, .dw = ws_dw, .shard = shards[sh], .wtap = ws_wtap, .wino = ws_wino, .wino_out = ws_wino_out, .wino_out_floats = nwo};
            char name[200], where[140];
            snprintf(where, sizeof where, "%s col=%zu shard=%d", tag, col_floats, shards[sh]);

            /* forward, with and without bias */
            conv2d_forward(&s, x, w, b, y, &ws);
            to_double(y, got, ny);
            snprintf(name, sizeof name, "%s: y", where);
            expect_close(name, got, yd, ny, TOL);
            check_guard(name, y, ny);
            conv2d_forward(&s, x, w, NULL, y, &ws);
            to_double(y, got, ny);
            snprintf(name, sizeof name, "%s: y (no bias)", where);
            expect_close(name, got, yd_nobias, ny, TOL);
            if (col) check_guard("col", col, col_floats);

            /* backward, dx overwritten: dw/db start from random values and accumulate */
            for (size_t i = 0; i < nw; i++) dw[i] = dw0[i] = urand(-1, 1);
            for (size_t i = 0; i < nb; i++) db[i] = db0[i] = urand(-1, 1);
            for (size_t i = 0; i < nx; i++) dx[i] = NAN;
            conv2d_backward(&s, x, w, r, grad_of_doubles(dw), grad_of_doubles(db), dx, false, &ws);
            for (size_t i = 0; i < nw; i++) {
                got[i] = dw[i];
                want[i] = dw0[i] + gw[i];
            }
            snprintf(name, sizeof name, "%s: dw (accumulated)", where);
            expect_close(name, got, want, nw, TOL);
            check_guard("ws.dw", ws_dw, nw);
            for (size_t i = 0; i < nb; i++) {
                got[i] = db[i];
                want[i] = db0[i] + gb[i];
            }
            snprintf(name, sizeof name, "%s: db (accumulated)", where);
            expect_close(name, got, want, nb, TOL);
            to_double(dx, got, nx);
            snprintf(name, sizeof name, "%s: dx (overwritten)", where);
            expect_close(name, got, gx, nx, TOL);
            check_guard(name, dx, nx);

            /* the same batch as separate shards */
            if (shards[sh] > 0 && shards[sh] < s.n) {
                conv2d_forward(&s, x, w, b, y, &ws);
                for (size_t i = 0; i < nw; i++) dw[i] = 0.0;
                for (size_t i = 0; i < nb; i++) db[i] = 0.0;
                conv2d_backward(&s, x, w, r, grad_of_doubles(dw), grad_of_doubles(db), dx, false, &ws);
                check_shard_split(where, &s, x, w, b, r, &ws, y, dw, db, dx);
            }

            /* backward with accumulate_dx: dx starts from random values */
            for (size_t i = 0; i < nx; i++) dx[i] = dx0[i] = (float)urand(-2, 2);
            for (size_t i = 0; i < nw; i++) dw[i] = 0.0;
            for (size_t i = 0; i < nb; i++) db[i] = 0.0;
            conv2d_backward(&s, x, w, r, grad_of_doubles(dw), grad_of_doubles(db), dx, true, &ws);
            for (size_t i = 0; i < nx; i++) {
                got[i] = (double)dx[i];
                want[i] = (double)dx0[i] + gx[i];
            }
            snprintf(name, sizeof name, "%s: dx (accumulate_dx)", where);
            expect_close(name, got, want, nx, TOL);
            check_guard(name, dx, nx);
            snprintf(name, sizeof name, "%s: dw (from zero)", where);
            expect_close(name, dw, gw, nw, TOL);

            /* backward without an input gradient */
            for (size_t i = 0; i < nw; i++) dw[i] = 0.0;
            for (size_t i = 0; i < nb; i++) db[i] = 0.0;
            conv2d_backward(&s, x, w, r, grad_of_doubles(dw), grad_of_doubles(db), NULL, false, &ws);
            snprintf(name, sizeof name, "%s: dw (dx NULL)", where);
            expect_close(name, dw, gw, nw, TOL);
            snprintf(name, sizeof name, "%s: db (dx NULL)", where);
            expect_close(name, db, gb, nb, TOL);
            if (col) check_guard("col", col, col_floats);
            if (ws_wino_out) {
                size_t nonzero = 0;
                for (size_t i = 0; i < nwo; i++) nonzero += ws_wino_out[i] != 0.0f;
                EXPECT(nonzero == 0, "%s: %zu of Winograd's %zu product floats left nonzero", where,
                       nonzero, nwo);
                check_guard("ws.wino_out", ws_wino_out, nwo);
            }
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
    free(ws_dw);
    free(ws_wtap);
    free(ws_wino);
    free(ws_wino_out);
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
    float w[54], b[3] = {1, 2, 3}, col[2 * 9 * 25], ws_dw[54];
    double dw[54], db[3] = {4, 5, 6};
    float x[1] = {7}, y[1] = {8}, dy[1] = {9};
    for (int i = 0; i < 54; i++) {
        w[i] = (float)i;
        dw[i] = i;
    }
    struct conv_workspace ws = {.col = col, .col_floats = sizeof col / sizeof col[0], .dw = ws_dw};
    conv2d_forward(&s, x, w, b, y, &ws);
    conv2d_backward(&s, x, w, dy, grad_of_doubles(dw), grad_of_doubles(db), NULL, false, &ws);
    EXPECT(y[0] == 8.0f, "n = 0 forward wrote to y");
    int same = 1;
    for (int i = 0; i < 54; i++) same &= dw[i] == i;
    EXPECT(same && db[0] == 4.0 && db[1] == 5.0 && db[2] == 6.0, "n = 0 backward changed dw/db");
}

/* A Winograd layer whose filter bank is large enough for its chunks to run in groups
 * (winograd.h) computes the same bits as with groups of one chunk: a workspace of
 * one chunk's transformed input allows no more. Four chunks of two samples (shards
 * of two) in one group against four groups. */
static void check_winograd_groups(void)
{
    struct conv_shape s;
    conv_shape_init(&s, 384, 384, 3, 1, 1, 8, 4, 4);
    s.algo = conv_plan(&s, true);
    EXPECT(s.algo == CONV_WINOGRAD && winograd_groups_chunks(&s),
           "a 384-channel 4x4 layer should group its Winograd chunks");
    if (s.algo != CONV_WINOGRAD) return;
    const size_t nx = (size_t)s.cin * s.n * 16, ny = (size_t)s.cout * s.n * 16;
    const size_t nw = (size_t)s.cout * s.cin * 9, per_sample = conv2d_col_floats(&s);
    float *x = alloc_floats(nx), *w = alloc_floats(nw), *r = alloc_floats(ny);
    for (size_t i = 0; i < nx; i++) x[i] = (float)urand(-1, 1);
    for (size_t i = 0; i < nw; i++) w[i] = (float)urand(-0.1, 0.1);
    for (size_t i = 0; i < ny; i++) r[i] = (float)urand(-1, 1);
    float *y[2], *dx[2], *col = alloc_floats(per_sample * s.n), *ws_dw = alloc_floats(nw);
    float *bank = alloc_floats(conv2d_winograd_floats(&s));
    const size_t nwo = conv2d_winograd_out_floats(&s);
    float *out = alloc_floats(nwo);
    memset(out, 0, sizeof(float) * nwo);
    double *dw[2];
    for (int g = 0; g < 2; g++) {
        y[g] = alloc_floats(ny);
        dx[g] = alloc_floats(nx);
        dw[g] = alloc_doubles(nw);
        memset(dw[g], 0, sizeof(double) * nw);
        /* g = 0: room for one chunk of two samples; g = 1: for all four. */
        struct conv_workspace ws = {.col = col, .col_floats = per_sample * (g ? s.n : 2),
                                    .dw = ws_dw, .shard = 2, .wino = bank, .wino_out = out,
                                    .wino_out_floats = nwo};
        conv2d_forward(&s, x, w, NULL, y[g], &ws);
        conv2d_backward(&s, x, w, r, grad_of_doubles(dw[g]), grad_none(), dx[g], false, &ws);
    }
    EXPECT(memcmp(y[0], y[1], sizeof(float) * ny) == 0, "grouped Winograd chunks: y differs");
    EXPECT(memcmp(dx[0], dx[1], sizeof(float) * nx) == 0, "grouped Winograd chunks: dx differs");
    EXPECT(memcmp(dw[0], dw[1], sizeof(double) * nw) == 0, "grouped Winograd chunks: dw differs");
    size_t nonzero = 0;
    for (size_t i = 0; i < nwo; i++) nonzero += out[i] != 0.0f;
    EXPECT(nonzero == 0, "grouped Winograd chunks left %zu product floats nonzero", nonzero);
    for (int g = 0; g < 2; g++) {
        free(y[g]);
        free(dx[g]);
        free(dw[g]);
    }
    free(x);
    free(w);
    free(r);
    free(col);
    free(ws_dw);
    free(bank);
    free(out);
}

int main(void)
{
    gemm_set_threads(1); /* the shard checks compare bit for bit */
    urand_seed(0xc0417e57ull, 1);
    static const struct conv_case cases[] = {
        {3, 4, 3, 1, 1, 2, 7, 5, 0}, /* 3x3/1 pad 1, non-square */
        {2, 3, 3, 2, 1, 3, 9, 8, 0}, /* 3x3/2 pad 1 */
        {3, 2, 3, 2, 0, 2, 8, 7, 0}, /* 3x3/2 pad 0: last row/column dropped */
        {2, 2, 3, 1, 0, 1, 6, 4, 0}, /* 3x3/1 pad 0, one sample */
        {3, 5, 1, 1, 0, 4, 5, 6, 0}, /* pointwise fast path */
        {5, 3, 1, 1, 0, 1, 3, 7, 0}, /* pointwise, one sample */
        {4, 3, 1, 2, 0, 3, 7, 7, 0}, /* 1x1/2 through im2col (the shortcut) */
        {2, 3, 1, 2, 0, 5, 6, 5, 0}, /* 1x1/2, even and odd sides */
        {1, 4, 7, 2, 3, 5, 16, 13, 0}, /* the stem: 7x7/2 pad 3 */
        {2, 3, 7, 1, 3, 2, 5, 4, 0}, /* 7x7 larger than the input */
        {3, 2, 7, 2, 3, 3, 11, 12, 0}, /* 7x7/2 pad 3, odd/even */
        {4, 3, 3, 1, 1, 3, 1, 1, 1}, /* 3x3 pad 1 on a 1x1 map: the centre tap only, direct */
        {3, 4, 3, 2, 1, 3, 2, 2, 0}, /* 3x3/2 pad 1, 2x2 -> 1x1: four live taps */
        {3, 2, 3, 1, 1, 2, 2, 2, 0}, /* 3x3 pad 1 on a 2x2 map: all taps live */
        {2, 3, 3, 1, 1, 3, 1, 3, 0}, /* 3x3 pad 1 on a 1x3 map: the middle row of taps */
        {2, 2, 3, 2, 1, 2, 1, 1, 1}, /* 3x3/2 pad 1 on a 1x1 map: the centre, direct */
        {5, 6, 3, 1, 1, 3, 6, 6, 0}, /* 6x6 map: four whole F(3x3) tiles */
        {3, 4, 3, 1, 1, 2, 5, 5, 0}, /* 5x5 map: F(3x3) tiles sticking out on both edges */
        {3, 4, 3, 1, 1, 2, 8, 8, 0}, /* whole Winograd tiles (4x4 outputs each) */
        {2, 3, 3, 1, 1, 2, 13, 10, 0}, /* several tiles, both edges cut */
        {4, 3, 3, 1, 1, 2, 3, 2, 0}, /* odd rows: the last tile row sticks out */
        {2, 3, 3, 1, 1, 2, 9, 4, 0}, /* odd/even, several tiles */
        {4, 3, 3, 1, 1, 2, 3, 3, 0}, /* 3x3 pad 1 on a 3x3 map (the last stage at 96x96) */
        {3, 4, 3, 2, 1, 2, 6, 6, 0}, /* 3x3/2 pad 1, 6x6 -> 3x3 (its entry) */
        {3, 4, 1, 2, 0, 2, 6, 6, 0}, /* 1x1/2, 6x6 -> 3x3 (its shortcut) */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_case(&cases[i], AS_CHOSEN);
        run_case(&cases[i], WINOGRAD);
        run_case(&cases[i], IM2COL);
    }
    check_empty_batch();
    check_winograd_groups();
    EXPECT(winograd_cases == 9, "%d shapes went through Winograd, expected 9", winograd_cases);
    EXPECT(tiny_cases == 12, "%d shapes went through tinymap, expected 12", tiny_cases);
    return test_summary("test_conv");
}
