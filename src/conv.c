/* conv: im2col + sgemm convolution over (C, N, H, W) tensors; see conv.h. */
#include "conv.h"

#include <string.h>

#include "error.h"
#include "gemm.h"
#include "timer.h"
#include "tinymap.h"
#include "winograd.h"

/* Output columns [lo, hi) whose input column ox*stride - pad + kx lies inside [0, w). */
static void valid_range(int kx, int stride, int pad, int w, int wo, int *lo, int *hi)
{
    int first = pad - kx; /* smallest ox*stride with a valid input column */
    int l = first <= 0 ? 0 : (first + stride - 1) / stride;
    int last = w - 1 + pad - kx; /* largest ox*stride with a valid input column */
    int h = last < 0 ? 0 : last / stride + 1;
    *lo = l < wo ? l : wo;
    *hi = h < wo ? h : wo;
    if (*hi < *lo) *hi = *lo;
}

void conv_shape_init(struct conv_shape *s, int cin, int cout, int k, int stride, int pad, int n,
                     int h, int w)
{
    CHECK(cin > 0 && cout > 0 && k > 0 && stride > 0 && pad >= 0 && n >= 0 && h > 0 && w > 0,
          "bad convolution shape");
    s->cin = cin;
    s->cout = cout;
    s->k = k;
    s->stride = stride;
    s->pad = pad;
    s->n = n;
    s->h = h;
    s->w = w;
    s->ho = (h + 2 * pad - k) / stride + 1;
    s->wo = (w + 2 * pad - k) / stride + 1;
    CHECK(s->ho > 0 && s->wo > 0, "convolution output would be empty (%dx%d input, k=%d)", h, w, k);
    CHECK(k <= CONV_MAX_K, "kernel size %d above %d", k, CONV_MAX_K);
    s->ntaps = 0;
    for (int ky = 0; ky < k; ky++)
        for (int kx = 0; kx < k; kx++) {
            int ylo, yhi, xlo, xhi;
            valid_range(ky, stride, pad, h, s->ho, &ylo, &yhi);
            valid_range(kx, stride, pad, w, s->wo, &xlo, &xhi);
            if (ylo < yhi && xlo < xhi) s->taps[s->ntaps++] = (unsigned char)(ky * k + kx);
        }
    int real = 0;
    for (int i = 0; i < s->ntaps; i++) {
        int ylo, yhi, xlo, xhi;
        valid_range(s->taps[i] / k, stride, pad, h, s->ho, &ylo, &yhi);
        valid_range(s->taps[i] % k, stride, pad, w, s->wo, &xlo, &xhi);
        real += (yhi - ylo) * (xhi - xlo);
    }
    s->live_pairs = real;
    s->algo = conv_plan(s, false);
}

/* Output (oy, ox) reads input (oy*stride - pad + ky, ...): the same position when the
 * one live tap is the padding offset and the stride is 1 or there is one output. */
static bool reads_in_place(const struct conv_shape *s)
{
    const int t = s->taps[0];
    return s->ntaps == 1 && s->ho == s->h && s->wo == s->w && t / s->k == s->pad &&
           t % s->k == s->pad && (s->stride == 1 || (s->ho == 1 && s->wo == 1));
}

enum conv_algo conv_plan(const struct conv_shape *s, bool winograd)
{
    if (reads_in_place(s)) return CONV_DIRECT;
    const int positions = s->ho * s->wo;
    /* Tiny maps where im2col would multiply padding: fewer real (position, live tap)
     * pairs than positions x live taps. */
    const bool tiny = positions <= CONV_TINY_OUTPUTS && s->live_pairs < positions * s->ntaps;
    if (winograd && winograd_applies(s) && s->cin >= 64) {
        /* Per channel pair: (m + 2)^2 per tile against im2col's 9 per output, or
         * tinymap's real pairs. */
        const int mults = winograd_multiplications(s);
        if (mults <= 0.5 * 9.0 * positions && (!tiny || mults <= 0.6 * s->live_pairs))
            return CONV_WINOGRAD;
    }
    return tiny ? CONV_TINYMAP : CONV_IM2COL;
}

bool conv_is_pointwise(const struct conv_shape *s)
{
    return s->k == 1 && s->stride == 1 && s->pad == 0;
}

static bool all_taps_live(const struct conv_shape *s) { return s->ntaps == s->k * s->k; }

size_t conv2d_col_floats(const struct conv_shape *s)
{
    if (s->algo == CONV_WINOGRAD) return winograd_chunk_floats(s);
    if (s->algo == CONV_TINYMAP) return tinymap_chunk_floats(s);
    if (s->algo == CONV_DIRECT) return 0;
    return (size_t)s->cin * s->ntaps * s->ho * s->wo;
}

size_t conv2d_tap_weight_floats(const struct conv_shape *s)
{
    if (s->algo == CONV_WINOGRAD) return 0;
    if (s->algo == CONV_TINYMAP) return tinymap_weight_floats(s);
    return all_taps_live(s) ? 0 : (size_t)s->cout * s->cin * s->ntaps;
}

size_t conv2d_winograd_floats(const struct conv_shape *s)
{
    return s->algo == CONV_WINOGRAD ? winograd_filter_floats(s) : 0;
}

size_t conv2d_winograd_out_floats(const struct conv_shape *s)
{
    return s->algo == CONV_WINOGRAD ? winograd_out_floats(s) : 0;
}

size_t conv2d_dw_pieces_floats(const struct conv_shape *s, int samples)
{
    if (s->algo != CONV_IM2COL && s->algo != CONV_DIRECT) return 0;
    const int kdim = s->cin * s->ntaps;
    if ((long)samples * s->ho * s->wo < GEMM_LONG_K) return 0; /* no chunk reaches a long K */
    return gemm_splits_k(s->cout, kdim, GEMM_LONG_K) ? (size_t)GEMM_K_PIECES * s->cout * kdim : 0;
}

/* The weights as a (cout, cin*ntaps) matrix: w itself, or its live columns copied. */
static const float *tap_weights(const struct conv_shape *s, const float *w,
                                const struct conv_workspace *ws)
{
    if (all_taps_live(s)) return w;
    const size_t kk = (size_t)s->k * s->k, rows = (size_t)s->cout * s->cin;
#pragma omp parallel for schedule(static) /* 9.4 MB of weights at 512 x 512 */
    for (size_t r = 0; r < rows; r++)
        for (int t = 0; t < s->ntaps; t++) ws->wtap[r * s->ntaps + t] = w[r * kk + s->taps[t]];
    return ws->wtap;
}

/* ---- im2col / col2im over a chunk of samples [n0, n0 + nc) ---------------- */

/* col (cin*ntaps, nc*ho*wo): row (ci, live tap), column (sample, oy, ox). */
static void im2col(const struct conv_shape *s, const float *x, int n0, int nc, float *col)
{
    const size_t plane = (size_t)s->h * s->w, hw_out = (size_t)s->ho * s->wo;
    const size_t cols = (size_t)nc * hw_out;
#pragma omp parallel for collapse(2) schedule(static)
    for (int ci = 0; ci < s->cin; ci++)
        for (int t = 0; t < s->ntaps; t++) {
            const int ky = s->taps[t] / s->k, kx = s->taps[t] % s->k;
            float *row = col + ((size_t)ci * s->ntaps + t) * cols;
            int lo, hi;
            valid_range(kx, s->stride, s->pad, s->w, s->wo, &lo, &hi);
            const int x0 = lo * s->stride - s->pad + kx;
            for (int n = 0; n < nc; n++) {
                const float *xp = x + ((size_t)ci * s->n + n0 + n) * plane;
                float *out = row + n * hw_out;
                for (int oy = 0; oy < s->ho; oy++) {
                    int iy = oy * s->stride - s->pad + ky;
                    float *o = out + (size_t)oy * s->wo;
                    if (iy < 0 || iy >= s->h) {
                        memset(o, 0, sizeof(float) * s->wo);
                        continue;
                    }
                    for (int ox = 0; ox < lo; ox++) o[ox] = 0.0f;
                    for (int ox = hi; ox < s->wo; ox++) o[ox] = 0.0f;
                    if (hi == lo) continue;
                    const float *xr = xp + (size_t)iy * s->w + x0;
                    if (s->stride == 1)
                        memcpy(o + lo, xr, sizeof(float) * (size_t)(hi - lo));
                    else if (s->stride == 2) /* a constant stride vectorizes (the stem, stage entries) */
                        for (int ox = lo; ox < hi; ox++) o[ox] = xr[2 * (ox - lo)];
                    else
                        for (int ox = lo; ox < hi; ox++) o[ox] = xr[(ox - lo) * s->stride];
                }
            }
        }
}

/* dx[chunk] += scatter of col (the adjoint of im2col). Each dx element receives its
 * taps in the fixed order (ky, kx, oy, ox), so results do not depend on threads. */
static void col2im_add(const struct conv_shape *s, const float *col, int n0, int nc, float *dx)
{
    const size_t plane = (size_t)s->h * s->w, hw_out = (size_t)s->ho * s->wo;
    const size_t cols = (size_t)nc * hw_out;
    /* Parallel over input channels only: taps of one channel overlap in dx. */
#pragma omp parallel for schedule(static)
    for (int ci = 0; ci < s->cin; ci++)
        for (int t = 0; t < s->ntaps; t++) {
            const int ky = s->taps[t] / s->k, kx = s->taps[t] % s->k;
            const float *row = col + ((size_t)ci * s->ntaps + t) * cols;
            int lo, hi;
            valid_range(kx, s->stride, s->pad, s->w, s->wo, &lo, &hi);
            const int x0 = lo * s->stride - s->pad + kx;
            for (int n = 0; n < nc; n++) {
                float *dp = dx + ((size_t)ci * s->n + n0 + n) * plane;
                const float *in = row + n * hw_out;
                for (int oy = 0; oy < s->ho; oy++) {
                    int iy = oy * s->stride - s->pad + ky;
                    if (iy < 0 || iy >= s->h || hi == lo) continue;
                    float *dr = dp + (size_t)iy * s->w + x0;
                    const float *ir = in + (size_t)oy * s->wo;
                    if (s->stride == 1)
                        for (int ox = lo; ox < hi; ox++) dr[ox - lo] += ir[ox];
                    else
                        for (int ox = lo; ox < hi; ox++) dr[(ox - lo) * s->stride] += ir[ox];
                }
            }
        }
}

#define WINOGRAD_CHUNK_FLOATS ((size_t)4 << 20)

/* How a batch is cut. Chunks never cross a multiple of `block` samples: a micro-shard,
 * or the alignment block (conv.h), so that every rank count cuts a sample's
 * neighbourhood the same way. With micro-shards each shard's weight gradient is
 * computed alone and joins the accumulator by itself (per_shard); otherwise the
 * weight gradient of the whole batch is one sum. */
struct chunk_plan {
    int n, block, step;
    bool per_shard;
};

/* Winograd's products buffer, checked to hold this layer's. */
static float *winograd_out(const struct conv_shape *s, const struct conv_workspace *ws)
{
    CHECK(ws->wino_out && ws->wino_out_floats >= winograd_out_floats(s),
          "Winograd products buffer of %zu floats is below the %zu this layer needs",
          ws->wino_out_floats, winograd_out_floats(s));
    return ws->wino_out;
}

/* Samples per chunk: as many as the workspace holds, at most one block. */
static int chunk_samples(const struct conv_shape *s, const struct conv_workspace *ws, int block)
{
    if (s->algo == CONV_DIRECT) return block;
    size_t per_sample = conv2d_col_floats(s);
    CHECK(ws->col_floats >= per_sample, "conv workspace of %zu floats is below one sample (%zu)",
          ws->col_floats, per_sample);
    size_t nc = ws->col_floats / per_sample;
    if (s->algo == CONV_WINOGRAD) {
        /* Winograd's transformed tiles are read back right away, so its chunks stay
         * small: as few samples as give its GEMMs enough columns
         * (winograd_chunk_samples), and at most 16 MiB (larger ones left the caches). */
        size_t cap = per_sample < WINOGRAD_CHUNK_FLOATS ? WINOGRAD_CHUNK_FLOATS / per_sample : 1;
        size_t want = (size_t)winograd_chunk_samples(s);
        if (nc > cap) nc = cap;
        if (nc > want) nc = want;
    }
    return nc > (size_t)block ? block : (int)nc;
}

static struct chunk_plan plan_chunks(const struct conv_shape *s, const struct conv_workspace *ws)
{
    const int unit = ws->shard > 0 ? ws->shard : ws->align;
    const int block = unit > 0 && unit < s->n ? unit : s->n;
    return (struct chunk_plan){.n = s->n, .block = block, .step = chunk_samples(s, ws, block),
                               .per_shard = ws->shard > 0};
}

/* Samples of the chunk that starts at n0. */
static int chunk_len(const struct chunk_plan *c, int n0)
{
    int end = (n0 / c->block + 1) * c->block;
    if (end > c->n) end = c->n;
    return end - n0 < c->step ? end - n0 : c->step;
}

/* Whether the chunk [n0, n0 + nc) starts a weight-gradient sum, and whether it ends one
 * (the sum then joins the gradient). */
static bool starts_sum(const struct chunk_plan *c, int n0)
{
    return c->per_shard ? n0 % c->block == 0 : n0 == 0;
}
static bool ends_sum(const struct chunk_plan *c, int n0, int nc)
{
    return n0 + nc == c->n || (c->per_shard && (n0 + nc) % c->block == 0);
}

/* The Winograd group (winograd.h) that starts with the chunk at n0, reading `in`
 * channels and writing `out`: that chunk, and where the layer groups its chunks the
 * ones after it while their transformed inputs fit the workspace and their products
 * the products buffer. Returns the number of chunks. */
static int winograd_group(const struct conv_shape *s, const struct conv_workspace *ws,
                          const struct chunk_plan *plan, int n0, int in, int out,
                          struct wino_chunk *group)
{
    const int most = winograd_groups_chunks(s) ? WINOGRAD_MAX_GROUP : 1;
    size_t work = 0, products = 0;
    int count = 0;
    for (int c0 = n0; c0 < plan->n && count < most; c0 += group[count - 1].nc) {
        const int nc = chunk_len(plan, c0);
        work += winograd_group_floats(s, in, nc);
        products += winograd_group_floats(s, out, nc);
        if (count > 0 && (work > ws->col_floats || products > ws->wino_out_floats)) break;
        group[count++] = (struct wino_chunk){c0, nc};
    }
    return count;
}

#define FOR_CHUNKS(plan, n0, nc) \
    for (int n0 = 0, nc = chunk_len(&(plan), 0); n0 < (plan).n; n0 += nc, nc = chunk_len(&(plan), n0))

/* The Winograd groups of a plan (a pointer), group[0, count) each, reading `in`
 * channels and writing `out`. */
#define FOR_WINOGRAD_GROUPS(s, ws, plan, in, out, group, count)                                \
    for (int n0_ = 0, count = 0; n0_ < (plan)->n && (count = winograd_group(s, ws, plan, n0_, in, out, group)); \
         n0_ = group[count - 1].n0 + group[count - 1].nc)


/* The GEMMs of the im2col and direct paths (Winograd's, tinymap's and the stem's run
 * inside their own parallel loops): with micro-shards or alignment blocks, in fixed
 * tiles, so that the result does not depend on the thread count either (gemm.h). */
static void conv_gemm(const struct conv_workspace *ws, bool trans_a, bool trans_b, int m, int n,
                      int k, const float *a, int lda, const float *b, int ldb, float beta, float *c,
                      int ldc)
{
    (ws->shard > 0 || ws->align > 0 ? gemm_tiled : gemm)(trans_a, trans_b, m, n, k, 1.0f, a, lda,
                                                         b, ldb, beta, c, ldc);
}

/* The weight gradient's GEMM, ws->dw (cout, kdim) = dy (cout, cols) . b (kdim, cols)^T
 * + beta ws->dw: with a long K cut into fixed pieces (gemm_tiled_long_k). */
static void weight_gemm(const struct conv_workspace *ws, int cout, int kdim, int cols,
                        const float *dy, int ldy, const float *b, int ldb, float beta)
{
    if (ws->shard > 0 || ws->align > 0)
        gemm_tiled_long_k(cout, kdim, cols, dy, ldy, b, ldb, beta, ws->dw, kdim, ws->dw_pieces);
    else
        gemm(false, true, cout, kdim, cols, 1.0f, dy, ldy, b, ldb, beta, ws->dw, kdim);
}

/* ---- forward / backward ---------------------------------------------------- */

static void add_bias(const struct conv_shape *s, const float *b, float *y)
{
    if (!b) return;
    const size_t ldy = (size_t)s->n * s->ho * s->wo;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < s->cout; c++) {
        float *row = y + (size_t)c * ldy, bc = b[c];
        for (size_t i = 0; i < ldy; i++) row[i] += bc;
    }
}

/* y[c][0, cols) = b[c] for each output channel c (rows ldy apart). */
static void fill_bias(int cout, int cols, const float *b, float *y, int ldy)
{
#pragma omp parallel for schedule(static)
    for (int c = 0; c < cout; c++) {
        float *row = y + (size_t)c * ldy;
        for (int i = 0; i < cols; i++) row[i] = b[c];
    }
}

void conv2d_forward(const struct conv_shape *s, const float *x, const float *w_all,
                    const float *b, float *y, const struct conv_workspace *ws)
{
    const int kdim = s->cin * s->ntaps;
    const size_t hw_out = (size_t)s->ho * s->wo;
    const int ldy = (int)(s->n * hw_out);
    if (s->n == 0) return;
    const struct chunk_plan plan = plan_chunks(s, ws);
    const bool winograd = s->algo == CONV_WINOGRAD;
    if (winograd || s->algo == CONV_TINYMAP) {
        /* Both prepare the weights once, then take the batch a chunk at a time. */
        float *prepared = winograd ? ws->wino : ws->wtap;
        if (winograd)
            TIMED(ws->timing, ws->timing->transform, winograd_transform_filter(s, w_all, prepared));
        else
            TIMED(ws->timing, ws->timing->transform, tinymap_transpose_weights(s, w_all, prepared));
        if (winograd) {
            struct wino_chunk group[WINOGRAD_MAX_GROUP];
            FOR_WINOGRAD_GROUPS(s, ws, &plan, s->cin, s->cout, group, count)
                TIMED(ws->timing, ws->timing->gemm, winograd_forward(s, prepared, x, group, count, y, ws->col,
                                                                     winograd_out(s, ws)));
        } else {
            FOR_CHUNKS(plan, n0, nc)
                TIMED(ws->timing, ws->timing->gemm, tinymap_forward(s, prepared, x, n0, nc, y, ws->col));
        }
        add_bias(s, b, y);
        return;
    }
    const float *w = tap_weights(s, w_all, ws);
    /* The GEMMs add to the bias: with beta = 0 OpenBLAS would first clear the output,
     * one more pass over it besides adding the bias. */
    const float beta = b ? 1.0f : 0.0f;
    FOR_CHUNKS(plan, n0, nc) {
        const int cols = (int)(nc * hw_out);
        float *yc = y + n0 * hw_out;
        if (b) fill_bias(s->cout, cols, b, yc, ldy);
        if (s->algo == CONV_DIRECT) {
            TIMED(ws->timing, ws->timing->gemm, conv_gemm(ws, false, false, s->cout, cols, kdim, w, kdim,
                                      x + n0 * hw_out, ldy, beta, yc, ldy));
        } else {
            TIMED(ws->timing, ws->timing->im2col, im2col(s, x, n0, nc, ws->col));
            TIMED(ws->timing, ws->timing->gemm, conv_gemm(ws, false, false, s->cout, cols, kdim, w, kdim, ws->col,
                                      cols, beta, yc, ldy));
        }
    }
}

/* conv2d_backward's weight and input gradients by Winograd: the transformed weight
 * gradient sums over the chunks of a sum (plan), then joins dw; then the input
 * gradient, chunk by chunk. The two loops take turns with the one transformed
 * filter bank in ws->wino (at 96x96's last stage a bank is 26 MB). */
static void winograd_backward(const struct conv_shape *s, const float *x, const float *w_all,
                              const float *dy, struct grad dw, float *dx, bool accumulate_dx,
                              const struct conv_workspace *ws, const struct chunk_plan *plan)
{
    const size_t wsize = (size_t)s->cout * s->cin * 9;
    float *bank = ws->wino;
    FOR_CHUNKS(*plan, n0, nc) {
        const float beta = starts_sum(plan, n0) ? 0.0f : 1.0f;
        TIMED(ws->timing, ws->timing->gemm, winograd_backward_filter(s, x, dy, n0, nc, beta, bank, ws->col));
        if (!ends_sum(plan, n0, nc)) continue;
        TIMED(ws->timing, ws->timing->transform, winograd_filter_gradient(s, bank, ws->dw));
        grad_add_floats(dw, ws->dw, wsize);
    }
    if (!dx) return;
    TIMED(ws->timing, ws->timing->transform, winograd_transform_filter_flipped(s, w_all, bank));
    struct wino_chunk group[WINOGRAD_MAX_GROUP];
    FOR_WINOGRAD_GROUPS(s, ws, plan, s->cout, s->cin, group, count)
        TIMED(ws->timing, ws->timing->gemm, winograd_backward_data(s, bank, dy, group, count, dx, accumulate_dx,
                                                                   ws->col, winograd_out(s, ws)));
}

/* conv2d_backward's gradients on a tiny map: the tap-major weight gradient sums over
 * the chunks of a sum (plan), then joins dw's live taps. */
static void tinymap_backward_all(const struct conv_shape *s, const float *x, const float *w_all,
                                 const float *dy, struct grad dw, float *dx, bool accumulate_dx,
                                 const struct conv_workspace *ws, const struct chunk_plan *plan)
{
    TIMED(ws->timing, ws->timing->transform, tinymap_transpose_weights(s, w_all, ws->wtap));
    const size_t kk = (size_t)s->k * s->k, pairs = (size_t)s->cout * s->cin;
    FOR_CHUNKS(*plan, n0, nc) {
        TIMED(ws->timing, ws->timing->gemm, tinymap_backward(s, ws->wtap, x, dy, n0, nc,
                                         starts_sum(plan, n0) ? 0.0f : 1.0f, ws->dw, dx,
                                         accumulate_dx, ws->col));
        if (!ends_sum(plan, n0, nc)) continue;
#pragma omp parallel for schedule(static)
        for (size_t r = 0; r < pairs; r++)
            for (int t = 0; t < s->ntaps; t++)
                grad_add(dw, r * kk + s->taps[t], ws->dw[t * pairs + r]);
    }
}

/* One sum's weight gradient (ws->dw, cout x cin*ntaps) joins dw (live taps only: the
 * others' gradient is exactly zero). */
static void add_weight_gradient(const struct conv_shape *s, const float *sum, struct grad dw)
{
    if (all_taps_live(s)) {
        grad_add_floats(dw, sum, (size_t)s->cout * s->cin * s->ntaps);
        return;
    }
    const size_t kk = (size_t)s->k * s->k, rows = (size_t)s->cout * s->cin;
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++)
        for (int t = 0; t < s->ntaps; t++) grad_add(dw, r * kk + s->taps[t], sum[r * s->ntaps + t]);
}

void conv2d_backward(const struct conv_shape *s, const float *x, const float *w_all,
                     const float *dy, struct grad dw, struct grad db, float *dx,
                     bool accumulate_dx, const struct conv_workspace *ws)
{
    const int kdim = s->cin * s->ntaps;
    const size_t hw_out = (size_t)s->ho * s->wo;
    const int ldy = (int)(s->n * hw_out);
    if (grad_wanted(db))
#pragma omp parallel for schedule(static)
        for (int c = 0; c < s->cout; c++) {
            const float *row = dy + (size_t)c * ldy;
            double acc = 0.0;
#pragma omp simd reduction(+ : acc) /* one double chain ran at a quarter of the loads' rate */
            for (int i = 0; i < ldy; i++) acc += (double)row[i];
            grad_add(db, (size_t)c, acc);
        }
    if (s->n == 0) return;
    const struct chunk_plan plan = plan_chunks(s, ws);
    if (s->algo == CONV_WINOGRAD) {
        winograd_backward(s, x, w_all, dy, dw, dx, accumulate_dx, ws, &plan);
        return;
    }
    if (s->algo == CONV_TINYMAP) {
        tinymap_backward_all(s, x, w_all, dy, dw, dx, accumulate_dx, ws, &plan);
        return;
    }
    if (dx && !accumulate_dx && s->algo != CONV_DIRECT)
        memset(dx, 0, sizeof(float) * (size_t)s->cin * s->n * s->h * s->w);
    const float *w = tap_weights(s, w_all, ws);
    FOR_CHUNKS(plan, n0, nc) {
        const int cols = (int)(nc * hw_out);
        const float *dyc = dy + n0 * hw_out;
        const float beta = starts_sum(&plan, n0) ? 0.0f : 1.0f;
        if (s->algo == CONV_DIRECT) {
            const float *xc = x + n0 * hw_out;
            TIMED(ws->timing, ws->timing->gemm, weight_gemm(ws, s->cout, kdim, cols, dyc, ldy, xc, ldy, beta));
            if (dx)
                TIMED(ws->timing, ws->timing->gemm, conv_gemm(ws, true, false, kdim, cols, s->cout, w, kdim, dyc, ldy,
                                          accumulate_dx ? 1.0f : 0.0f, dx + n0 * hw_out, ldy));
        } else {
            TIMED(ws->timing, ws->timing->im2col, im2col(s, x, n0, nc, ws->col));
            TIMED(ws->timing, ws->timing->gemm, weight_gemm(ws, s->cout, kdim, cols, dyc, ldy, ws->col, cols, beta));
            if (dx) {
                TIMED(ws->timing, ws->timing->gemm, conv_gemm(ws, true, false, kdim, cols, s->cout, w, kdim, dyc, ldy,
                                          0.0f, ws->col, cols));
                TIMED(ws->timing, ws->timing->col2im, col2im_add(s, ws->col, n0, nc, dx));
            }
        }
        if (ends_sum(&plan, n0, nc)) add_weight_gradient(s, ws->dw, dw);
    }
}
