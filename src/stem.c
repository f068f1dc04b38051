/* stem: chunked, fused stem of the network, a chunk per thread; see stem.h. */
#include "stem.h"

#include <math.h>
#include <omp.h>
#include <string.h>
#ifdef __FMA__
#include <immintrin.h>
#endif

#include "error.h"
#include "vec8.h"

/* Per-thread buffers of about a core's L2: larger chunks spill to the shared cache. */
#define STEM_THREAD_BYTES ((size_t)1 << 20)
/* Widest pooled row (a 4096-pixel image): the pool's row maxima live on the stack. */
#define STEM_POOL_MAX_W 1024

/* A patch row (STEM_K floats and a spare lane) is one vec8. acc + x * v, fused where
 * the build targets FMA (ISO C mode contracts nothing). */
static inline vec8 fma8(float x, vec8 v, vec8 acc)
{
#ifdef __FMA__
    return (vec8)_mm256_fmadd_ps(_mm256_set1_ps(x), (__m256)v, (__m256)acc);
#else
    return acc + x * v;
#endif
}

/* Floats per sample of a thread's buffers: the convolution's output and columns. */
static size_t floats_per_sample(const struct conv_shape *conv)
{
    return (size_t)conv->cout * conv->ho * conv->wo + conv2d_col_floats(conv);
}

int stem_chunk_samples(const struct conv_shape *conv)
{
    size_t nc = STEM_THREAD_BYTES / sizeof(float) / floats_per_sample(conv);
    if (nc < 1) nc = 1;
    return nc > (size_t)conv->n ? conv->n : (int)nc;
}

/* An image with its zero border: rows and columns. */
static int padded_w(const struct conv_shape *c) { return c->w + 2 * c->pad; }
static size_t padded_plane(const struct conv_shape *c)
{
    return (size_t)(c->h + 2 * c->pad) * (size_t)padded_w(c);
}

/* Threads for a pass: as many as have buffers, at most as many as OpenMP would use. */
static int team(const struct stem *st)
{
    const int t = omp_get_max_threads();
    return t < st->threads ? t : st->threads;
}

/* Samples per shard for a batch of n (the whole batch when there are no shards). */
static int shard_len(const struct stem *st, int n)
{
    return st->shard > 0 && st->shard < n ? st->shard : n;
}

static int chunks_per_shard(const struct stem *st, int len)
{
    return (len + st->chunk - 1) / st->chunk;
}

/* Chunks of a batch of n: whole chunks of each shard, the last one shorter. */
static int count_chunks(const struct stem *st, int n)
{
    if (n == 0) return 0;
    const int s = shard_len(st, n), full = n / s, rem = n % s;
    return full * chunks_per_shard(st, s) + chunks_per_shard(st, rem);
}

/* Samples [*n0, *n0 + *nc) of chunk i of a batch of n. */
static void chunk_at(const struct stem *st, int n, int i, int *n0, int *nc)
{
    const int s = shard_len(st, n), per = chunks_per_shard(st, s), full = n / s;
    int start, len, j;
    if (i < full * per) {
        start = i / per * s;
        len = s;
        j = i % per;
    } else {
        start = full * s;
        len = n % s;
        j = i - full * per;
    }
    *n0 = start + j * st->chunk;
    *nc = len - j * st->chunk < st->chunk ? len - j * st->chunk : st->chunk;
}

void stem_plan(struct stem *st, const struct conv_shape *conv, const struct maxpool_shape *pool,
               int chunk, int threads, int shard)
{
    CHECK(conv->cin == 1 && conv->k == STEM_K, "the fused stem needs one input channel and a %dx%d kernel",
          STEM_K, STEM_K);
    CHECK(pool->k == 3 && pool->stride == 2 && pool->pad == 1 && pool->wo <= STEM_POOL_MAX_W,
          "the fused stem pools 3x3/2 pad 1 over at most %d columns", STEM_POOL_MAX_W);
    CHECK(chunk > 0 && chunk <= conv->n && threads > 0, "stem chunk %d of a batch of %d", chunk,
          conv->n);
    st->conv = *conv;
    st->pool = *pool;
    st->chunk = chunk;
    st->threads = threads;
    st->shard = shard;
    const int s = shard_len(st, conv->n);
    st->max_chunks = (conv->n + s - 1) / s * chunks_per_shard(st, s);
    st->per_thread = (struct stem_sizes){
        .out = (size_t)conv->cout * chunk * conv->ho * conv->wo,
        .col = conv2d_col_floats(conv) * (size_t)chunk,
        .wtap = conv2d_tap_weight_floats(conv),
        .padded = padded_plane(conv) * (size_t)chunk + 8, /* a patch row's spare lane */
        .gram = (size_t)STEM_TAPS * STEM_TAPS,
        .list = (size_t)pool->ho * pool->wo};
}

/* Thread t's convolution workspace: whole chunks, no shards, no profiling. */
static struct conv_workspace thread_workspace(const struct stem *st, int t)
{
    const struct stem_sizes z = st->per_thread;
    return (struct conv_workspace){.col = st->col + (size_t)t * z.col, .col_floats = z.col,
                                   .wtap = st->wtap + (size_t)t * z.wtap};
}

/* Samples [n0, n0 + nc) of the input with their zero border into thread t's buffer
 * (the spare floats after them zero too); returned. */
static const float *pad_chunk(const struct stem *st, const float *input, int n0, int nc, int t)
{
    const struct conv_shape *cs = &st->conv;
    const int pw = padded_w(cs), pad = cs->pad;
    const size_t pp = padded_plane(cs);
    float *xp = st->padded + (size_t)t * st->per_thread.padded;
    memset(xp, 0, sizeof(float) * (pp * (size_t)nc + 8));
    for (int j = 0; j < nc; j++) {
        const float *src = input + (size_t)(n0 + j) * cs->h * cs->w;
        float *dst = xp + (size_t)j * pp + (size_t)pad * pw + pad;
        for (int r = 0; r < cs->h; r++) memcpy(dst + (size_t)r * pw, src + (size_t)r * cs->w,
                                               sizeof(float) * (size_t)cs->w);
    }
    return xp;
}

/* Positions whose products are summed in float before they are added into double. */
#define STEM_FLOAT_SUM 64

/* g (49 x 49) += the Gram matrix of the patches of nc padded images xp, s (49) += their
 * sum. The patch at an output position is STEM_K rows of the image, each one 8-float
 * vector (the spare lane is never used). For each pair of patch rows ky <= j, row
 * ky's pixels times row j give the 7 x 7 block (ky, j) of G: the block upper
 * triangle, the rest being its mirror. Float sums over whole output rows of about
 * STEM_FLOAT_SUM positions are added into double. */
static void add_moments(const struct conv_shape *cs, const float *xp, int nc, double *g, double *s)
{
    const int pw = padded_w(cs), stride = cs->stride;
    const int rows = (STEM_FLOAT_SUM + cs->wo - 1) / cs->wo; /* output rows per float sum */
    const size_t pp = padded_plane(cs);
    for (int ky = 0; ky < STEM_K; ky++)
        for (int j = ky; j < STEM_K; j++)
            for (int n = 0; n < nc; n++)
                for (int y0 = 0; y0 < cs->ho; y0 += rows) {
                    vec8 acc[STEM_K] = {{0}}, sum = {0};
                    for (int oy = y0; oy < y0 + rows && oy < cs->ho; oy++) {
                        const float *img = xp + (size_t)n * pp + (size_t)oy * stride * pw;
                        const float *taps = img + (size_t)ky * pw, *rj = img + (size_t)j * pw;
                        for (int ox = 0; ox < cs->wo; ox++) {
                            const size_t off = (size_t)ox * stride;
                            const vec8 v = vec8_load(rj + off);
                            for (int kx = 0; kx < STEM_K; kx++)
                                acc[kx] = fma8(taps[off + kx], v, acc[kx]);
                            sum += v;
                        }
                    }
                    for (int kx = 0; kx < STEM_K; kx++) {
                        double *row = g + (size_t)(ky * STEM_K + kx) * STEM_TAPS + j * STEM_K;
                        for (int l = 0; l < STEM_K; l++) row[l] += (double)acc[kx][l];
                    }
                    if (j == ky)
                        for (int l = 0; l < STEM_K; l++) s[ky * STEM_K + l] += (double)sum[l];
                }
}

/* Forward pass 1 for chunk i: its patches' sum S and Gram matrix G, and from them w G
 * and BN's statistics (sum y, sum y^2 per channel) into st->sums. */
static void chunk_moments(const struct stem *st, const struct stem_params *p, const float *input,
                          int n, int i, int t)
{
    const struct conv_shape *cs = &st->conv;
    const int c = cs->cout;
    int n0, nc;
    chunk_at(st, n, i, &n0, &nc);
    const float *xp = pad_chunk(st, input, n0, nc, t);
    double *g = st->gram + (size_t)t * st->per_thread.gram;
    double *s = st->colsum + (size_t)i * STEM_TAPS;
    memset(g, 0, sizeof(double) * STEM_TAPS * STEM_TAPS);
    memset(s, 0, sizeof(double) * STEM_TAPS);
    add_moments(cs, xp, nc, g, s);
    for (int a = 0; a < STEM_TAPS; a++) /* the mirror of the rows' upper blocks */
        for (int b = 0; b < a / STEM_K * STEM_K; b++) g[a * STEM_TAPS + b] = g[b * STEM_TAPS + a];
    const double positions = (double)nc * cs->ho * cs->wo;
    double *sum = st->sums + (size_t)i * 2 * c, *sumsq = sum + c;
    float *wg = st->wg + (size_t)i * c * STEM_TAPS;
    for (int ch = 0; ch < c; ch++) {
        const float *w = p->w + (size_t)ch * STEM_TAPS;
        double row[STEM_TAPS] = {0};
        for (int k = 0; k < STEM_TAPS; k++) {
            const double wk = w[k];
            for (int k2 = 0; k2 < STEM_TAPS; k2++) row[k2] += wk * g[k * STEM_TAPS + k2];
        }
        double ws = 0.0, wgw = 0.0;
        for (int k = 0; k < STEM_TAPS; k++) {
            ws += (double)w[k] * s[k];
            wgw += row[k] * (double)w[k];
            wg[(size_t)ch * STEM_TAPS + k] = (float)row[k];
        }
        const double b = p->b[ch];
        sum[ch] = ws + b * positions;
        sumsq[ch] = wgw + 2.0 * b * ws + b * b * positions;
    }
}

/* out[j] += sum over chunks i, in chunk order, of sums[i * stride + j], j < count. */
static void add_chunk_sums(int nchunks, size_t stride, size_t count, const double *sums,
                           struct grad out)
{
#pragma omp parallel for schedule(static)
    for (size_t j = 0; j < count; j++) {
        double s = 0.0;
        for (int i = 0; i < nchunks; i++) s += sums[(size_t)i * stride + j];
        grad_add(out, j, s);
    }
}

/* BN with the given per-channel scale and shift, then ReLU. */
static inline float bn_relu(float a, float scale, float shift)
{
    float v = fmaf(a, scale, shift);
    return v > 0.0f ? v : 0.0f;
}

/* Row maxima of the 3x3/2 pad-1 pool for one row r of w values: m[ox] the largest of
 * columns 2ox - 1 .. 2ox + 1 inside the row, k[ox] its kx (the first of equals). */
static void row_max(const float *r, int w, int wo, float *m, int *k)
{
    int hi = (w - 2) / 2 + 1; /* windows ox < hi have all three columns */
    if (hi > wo) hi = wo;
    for (int ox = 1; ox < hi; ox++) { /* if-updates of locals vectorize; ?: did not */
        const float a = r[2 * ox - 1], b = r[2 * ox], c = r[2 * ox + 1];
        float best = a;
        int kb = 0;
        if (b > best) {
            best = b;
            kb = 1;
        }
        if (c > best) {
            best = c;
            kb = 2;
        }
        m[ox] = best;
        k[ox] = kb;
    }
    for (int ox = 0; ox < wo; ox = ox == 0 && hi > 1 ? hi : ox + 1) { /* the edges */
        float best = -INFINITY;
        int kb = 0;
        for (int kx = 0; kx < 3; kx++) {
            const int ix = 2 * ox - 1 + kx;
            if (ix >= 0 && ix < w && r[ix] > best) {
                best = r[ix];
                kb = kx;
            }
        }
        m[ox] = best;
        k[ox] = kb;
    }
}

/* The 3x3/2 pad-1 max-pool of one plane x (h, w) of ReLU outputs: y (ho, wo), and idx
 * the window position ky * 3 + kx of each maximum, the first in raster order as in
 * nn.MaxPool2d (row maxima, first kx, then the first row holding the largest), with
 * STEM_RELU_PASSED where the maximum is above zero (the ReLU passed it). */
static void pool_plane(const struct maxpool_shape *ps, const float *x, float *y, uint8_t *idx)
{
    float rm[3][STEM_POOL_MAX_W];
    int rk[3][STEM_POOL_MAX_W];
    const int wo = ps->wo;
    int done = -1; /* rows whose maxima are in rm[row % 3] */
    for (int oy = 0; oy < ps->ho; oy++) {
        const int r0 = 2 * oy - 1 < 0 ? 0 : 2 * oy - 1;
        const int r1 = 2 * oy + 1 < ps->h ? 2 * oy + 1 : ps->h - 1;
        for (int r = done + 1 > r0 ? done + 1 : r0; r <= r1; r++)
            row_max(x + (size_t)r * ps->w, ps->w, wo, rm[r % 3], rk[r % 3]);
        done = r1;
        float *yo = y + (size_t)oy * wo;
        int best_k[STEM_POOL_MAX_W];
        const float *m0 = rm[r0 % 3];
        const int *k0 = rk[r0 % 3], ky0 = r0 - (2 * oy - 1);
        for (int ox = 0; ox < wo; ox++) {
            yo[ox] = m0[ox];
            best_k[ox] = ky0 * 3 + k0[ox];
        }
        for (int r = r0 + 1; r <= r1; r++) {
            const float *m = rm[r % 3];
            const int *k = rk[r % 3], ky = r - (2 * oy - 1);
            for (int ox = 0; ox < wo; ox++) {
                float best = yo[ox];
                int kb = best_k[ox];
                if (m[ox] > best) {
                    best = m[ox];
                    kb = ky * 3 + k[ox];
                }
                yo[ox] = best;
                best_k[ox] = kb;
            }
        }
        uint8_t *io = idx + (size_t)oy * wo;
        for (int ox = 0; ox < wo; ox++)
            io[ox] = (uint8_t)(best_k[ox] | (yo[ox] > 0.0f ? STEM_RELU_PASSED : 0));
    }
}

void stem_forward(const struct stem *st, const struct stem_params *p, int n, const float *input,
                  bool train, float *pooled, const struct reducer *red, double *work)
{
    const int c = st->conv.cout, nchunks = count_chunks(st, n);
    const size_t conv_plane = (size_t)st->conv.ho * st->conv.wo;
    CHECK(n <= st->conv.n, "stem batch %d above the planned %d", n, st->conv.n);
    if (train) {
        /* Pass 1: each chunk's moments and BN statistics. */
#pragma omp parallel num_threads(team(st))
        {
            const int t = omp_get_thread_num();
#pragma omp for schedule(dynamic)
            for (int i = 0; i < nchunks; i++) chunk_moments(st, p, input, n, i, t);
        }
        for (int i = 0; i < 2 * c; i++) work[i] = 0.0;
        add_chunk_sums(nchunks, 2 * (size_t)c, 2 * (size_t)c, st->sums, grad_of_doubles(work));
        if (!batchnorm_finish_stats(c, (double)n * conv_plane, p->saved, p->running_mean,
                                    p->running_var, red, work))
            return;
    }
    /* Per-channel scale and shift, as batchnorm.c computes them; in `work`, whose
     * statistics part is used up. */
    float *scale = (float *)work, *shift = scale + c;
    for (int ch = 0; ch < c; ch++) {
        float invstd = train ? p->saved->invstd[ch]
                             : (float)(1.0 / sqrt((double)p->running_var[ch] + (double)BN_EPS));
        const float mean = train ? p->saved->mean[ch] : p->running_mean[ch];
        scale[ch] = p->gamma[ch] * invstd;
        shift[ch] = p->beta[ch] - mean * scale[ch];
    }
    /* Pass 2: convolution, BN and ReLU (in place) and the max-pool of each chunk. */
    const struct maxpool_shape *ps = &st->pool;
    const size_t out_plane = (size_t)ps->ho * ps->wo;
#pragma omp parallel num_threads(team(st))
    {
        const int t = omp_get_thread_num();
        const struct conv_workspace ws = thread_workspace(st, t);
        float *a = st->a + (size_t)t * st->per_thread.out;
#pragma omp for schedule(dynamic)
        for (int i = 0; i < nchunks; i++) {
            int n0, nc;
            chunk_at(st, n, i, &n0, &nc);
            struct conv_shape cs = st->conv;
            cs.n = nc;
            conv2d_forward(&cs, input + (size_t)n0 * cs.h * cs.w, p->w, p->b, a, &ws);
            for (int ch = 0; ch < c; ch++) {
                const float sc = scale[ch], sh = shift[ch];
                float *hp = a + (size_t)ch * nc * conv_plane;
#pragma omp simd
                for (size_t j = 0; j < (size_t)nc * conv_plane; j++) hp[j] = bn_relu(hp[j], sc, sh);
                for (int j = 0; j < nc; j++) {
                    const size_t plane = ((size_t)ch * n + n0 + j) * out_plane;
                    pool_plane(ps, hp + j * conv_plane, pooled + plane, st->argmax + plane);
                }
            }
        }
    }
}

/* The backward pass for chunk i: per channel, D = sum dz p into st->dsum and BN's
 * gradient sums (sum dz, sum dz * xhat) into st->sums. dz, the gradient at the BN
 * output, is the pooled gradient at its window's maximum where that passed the ReLU,
 * and zero everywhere else. The pass first lists where the gradients land (without
 * branching on the ReLU), then adds them up. sum dz y is w . D + b sum dz, so y is
 * never recomputed. */
static void chunk_backward(const struct stem *st, const struct stem_params *p, int n,
                           const float *input, const float *dpooled, int i, int t)
{
    const struct conv_shape *cs = &st->conv;
    const struct maxpool_shape *ps = &st->pool;
    const int c = cs->cout, pw = padded_w(cs), stride = cs->stride;
    const size_t pp = padded_plane(cs), out_plane = (size_t)ps->ho * ps->wo;
    int n0, nc;
    chunk_at(st, n, i, &n0, &nc);
    const float *xp = pad_chunk(st, input, n0, nc, t);
    int *at = st->list_at + (size_t)t * st->per_thread.list;
    float *gl = st->list_g + (size_t)t * st->per_thread.list;
    /* Offset of a window position's patch from that of the window's corner. */
    int koff[9];
    for (int k = 0; k < 9; k++) koff[k] = (k / 3) * stride * pw + (k % 3) * stride;
    double *sums = st->sums + (size_t)i * 2 * c;
    float *dsum = st->dsum + (size_t)i * c * STEM_TAPS;
    for (int ch = 0; ch < c; ch++) {
        vec8 d[STEM_K] = {{0}};
        double sdz = 0.0;
        for (int j = 0; j < nc; j++) {
            const size_t plane = ((size_t)ch * n + n0 + j) * out_plane;
            const uint8_t *mp = st->argmax + plane;
            const float *gp = dpooled + plane, *img = xp + (size_t)j * pp;
            int len = 0;
            for (int oy = 0; oy < ps->ho; oy++) {
                /* The window of (oy, ox) starts at conv output (2oy - 1, 2ox - 1). */
                const int corner = (2 * oy - 1) * stride * pw - stride;
                for (int ox = 0; ox < ps->wo; ox++) {
                    const size_t o = (size_t)oy * ps->wo + ox;
                    const uint8_t m = mp[o];
                    at[len] = corner + 2 * ox * stride + koff[m & (STEM_RELU_PASSED - 1)];
                    gl[len] = gp[o];
                    len += (m & STEM_RELU_PASSED) && gp[o] != 0.0f;
                }
            }
            for (int e = 0; e < len; e++) {
                const float *base = img + at[e], g = gl[e];
                for (int r = 0; r < STEM_K; r++) d[r] = fma8(g, vec8_load(base + (size_t)r * pw), d[r]);
                sdz += (double)g;
            }
        }
        const float *w = p->w + (size_t)ch * STEM_TAPS;
        double wd = 0.0;
        for (int r = 0; r < STEM_K; r++)
            for (int kx = 0; kx < STEM_K; kx++) {
                dsum[(size_t)ch * STEM_TAPS + r * STEM_K + kx] = d[r][kx];
                wd += (double)w[r * STEM_K + kx] * (double)d[r][kx];
            }
        const double shift = (double)p->b[ch] - (double)p->saved->mean[ch];
        sums[ch] = sdz;
        sums[c + ch] = (wd + shift * sdz) * (double)p->saved->invstd[ch];
    }
}

void stem_backward(const struct stem *st, const struct stem_params *p, int n, const float *input,
                   const float *dpooled, const struct reducer *red, double *work)
{
    const int c = st->conv.cout, nchunks = count_chunks(st, n);
    double *sum_dz = work, *sum_dz_xhat = work + c;
#pragma omp parallel num_threads(team(st))
    {
        const int t = omp_get_thread_num();
#pragma omp for schedule(dynamic)
        for (int i = 0; i < nchunks; i++) chunk_backward(st, p, n, input, dpooled, i, t);
    }
    for (int i = 0; i < 2 * c; i++) work[i] = 0.0;
    add_chunk_sums(nchunks, 2 * (size_t)c, 2 * (size_t)c, st->sums, grad_of_doubles(work));
    /* This rank's shares are its parameter gradients (summed over ranks later). */
    for (int ch = 0; ch < c; ch++) {
        grad_add(p->dbeta, (size_t)ch, sum_dz[ch]);
        grad_add(p->dgamma, (size_t)ch, sum_dz_xhat[ch]);
    }
    reducer_sum(red, work, 2 * (size_t)c);
    const struct bn_saved *sv = p->saved;
    if (sv->count == 0) return;
    /* Weight gradient: each chunk's k (D - mean(dz) S - mean(dz xhat) invstd (w G +
     * (b - mean) S)), rounded to float, added in chunk order. */
    const size_t per_chunk = (size_t)c * STEM_TAPS;
#pragma omp parallel for schedule(static)
    for (size_t e = 0; e < per_chunk; e++) {
        const int ch = (int)(e / STEM_TAPS), k = (int)(e % STEM_TAPS);
        const double invstd = sv->invstd[ch], scale = (double)p->gamma[ch] * invstd;
        const double mean_dz = sum_dz[ch] / sv->count, mean_dz_xhat = sum_dz_xhat[ch] / sv->count;
        const double shift = (double)p->b[ch] - (double)sv->mean[ch];
        double total = 0.0;
        for (int i = 0; i < nchunks; i++) {
            const double s = st->colsum[(size_t)i * STEM_TAPS + k];
            const double xhat_p = invstd * ((double)st->wg[(size_t)i * per_chunk + e] + shift * s);
            const double gi = scale * ((double)st->dsum[(size_t)i * per_chunk + e] - mean_dz * s -
                                       mean_dz_xhat * xhat_p);
            total += (double)(float)gi;
        }
        grad_add(p->dw, e, total);
    }
}
