/* stem: chunked, fused stem of the network, a chunk per thread; see stem.h. */
#include "stem.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "error.h"

/* Per-thread buffers of about a core's L2: larger chunks spill to the shared cache. */
#define STEM_THREAD_BYTES ((size_t)1 << 20)
/* Widest pooled row (a 4096-pixel image): the pool's row maxima live on the stack. */
#define STEM_POOL_MAX_W 1024

/* Floats per sample of a thread's buffers: a, d and the columns. */
static size_t floats_per_sample(const struct conv_shape *conv)
{
    return 2 * (size_t)conv->cout * conv->ho * conv->wo + conv2d_col_floats(conv);
}

int stem_chunk_samples(const struct conv_shape *conv)
{
    size_t nc = STEM_THREAD_BYTES / sizeof(float) / floats_per_sample(conv);
    if (nc < 1) nc = 1;
    return nc > (size_t)conv->n ? conv->n : (int)nc;
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

#define STEM_KEEP_BYTES ((size_t)32 << 20)

bool stem_keeps_output(const struct conv_shape *conv)
{
    return (size_t)conv->cout * conv->n * conv->ho * conv->wo * sizeof(float) <= STEM_KEEP_BYTES;
}

void stem_plan(struct stem *st, const struct conv_shape *conv, const struct maxpool_shape *pool,
               int chunk, int threads, int shard, bool keep)
{
    CHECK(conv->cin == 1, "the fused stem needs one input channel");
    CHECK(pool->k == 3 && pool->stride == 2 && pool->pad == 1 && pool->wo <= STEM_POOL_MAX_W,
          "the fused stem pools 3x3/2 pad 1 over at most %d columns", STEM_POOL_MAX_W);
    CHECK(chunk > 0 && chunk <= conv->n && threads > 0, "stem chunk %d of a batch of %d", chunk,
          conv->n);
    st->conv = *conv;
    st->pool = *pool;
    st->chunk = chunk;
    st->threads = threads;
    st->shard = shard;
    st->keep = keep;
    const int s = shard_len(st, conv->n);
    st->max_chunks = (conv->n + s - 1) / s * chunks_per_shard(st, s);
    st->per_thread = (struct stem_sizes){
        .out = (size_t)conv->cout * chunk * conv->ho * conv->wo,
        .col = conv2d_col_floats(conv) * (size_t)chunk,
        .wtap = conv2d_tap_weight_floats(conv),
        .dw = (size_t)conv->cout * conv->k * conv->k};
}

static size_t grads_per_chunk(const struct stem *st)
{
    return (size_t)st->conv.cout * st->conv.k * st->conv.k + (size_t)st->conv.cout;
}

/* Thread t's convolution workspace: whole chunks, no shards, no profiling. */
static struct conv_workspace thread_workspace(const struct stem *st, int t)
{
    const struct stem_sizes z = st->per_thread;
    return (struct conv_workspace){.col = st->col + (size_t)t * z.col, .col_floats = z.col,
                                   .dw = st->dw_work + (size_t)t * z.dw,
                                   .wtap = st->wtap + (size_t)t * z.wtap};
}

/* The convolution of chunk i of a batch of n, samples [*n0, *n0 + *nc), into thread
 * t's buffer a, or into the chunk's kept output (keep_it); returned. */
static float *convolve_chunk(const struct stem *st, const struct stem_params *p, const float *input,
                             int n, int i, int t, int *n0, int *nc, bool keep_it)
{
    chunk_at(st, n, i, n0, nc);
    struct conv_shape cs = st->conv;
    cs.n = *nc;
    const struct conv_workspace ws = thread_workspace(st, t);
    float *a = keep_it ? st->kept + (size_t)i * st->per_thread.out
                       : st->a + (size_t)t * st->per_thread.out;
    conv2d_forward(&cs, input + (size_t)*n0 * cs.h * cs.w, p->w, p->b, a, &ws);
    return a;
}

/* Chunk i's convolution output for the passes after the training forward's first:
 * the kept one, or convolved again into thread t's buffer. */
static const float *chunk_output(const struct stem *st, const struct stem_params *p,
                                 const float *input, int n, int i, int t, int *n0, int *nc)
{
    if (!st->keep) return convolve_chunk(st, p, input, n, i, t, n0, nc, false);
    chunk_at(st, n, i, n0, nc);
    return st->kept + (size_t)i * st->per_thread.out;
}

/* BN with the given per-channel scale and shift, then ReLU. fmaf, so the forward
 * pass and the backward's ReLU mask compute exactly the same value. */
static inline float bn_relu(float a, float scale, float shift)
{
    float v = fmaf(a, scale, shift);
    return v > 0.0f ? v : 0.0f;
}

/* BN's per-channel scale and shift with the last training batch's statistics, as
 * batchnorm.c computes them. */
static inline void train_affine(const struct stem_params *p, int ch, float *scale, float *shift)
{
    *scale = p->gamma[ch] * p->saved->invstd[ch];
    *shift = p->beta[ch] - p->saved->mean[ch] * *scale;
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

/* The 3x3/2 pad-1 max-pool of one plane x (h, w): y (ho, wo), and idx the window
 * position ky * 3 + kx of each maximum, the first in raster order as in
 * nn.MaxPool2d: row maxima (first kx), then the first row holding the largest. */
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
        for (int ox = 0; ox < wo; ox++) io[ox] = (uint8_t)best_k[ox];
    }
}

/* Offsets within a conv-output plane of width w from a window's centre (2oy, 2ox)
 * to its position ky * 3 + kx. */
static void window_offsets(int w, int off[9])
{
    for (int k = 0; k < 9; k++) off[k] = (k / 3 - 1) * w + k % 3 - 1;
}

/* Where in its conv-output plane pooled output (oy, ox) took its maximum, from its
 * window position k (st->argmax) and window_offsets. */
static inline int max_position(const struct maxpool_shape *ps, const int off[9], int oy, int ox,
                               uint8_t k)
{
    return 2 * oy * ps->w + 2 * ox + off[k];
}

void stem_forward(const struct stem *st, const struct stem_params *p, int n, const float *input,
                  bool train, float *pooled, const struct reducer *red, double *work)
{
    const int c = st->conv.cout, nchunks = count_chunks(st, n);
    const size_t conv_plane = (size_t)st->conv.ho * st->conv.wo;
    CHECK(n <= st->conv.n, "stem batch %d above the planned %d", n, st->conv.n);
    if (train) {
        /* Pass 1: each chunk's BN statistics. */
#pragma omp parallel num_threads(team(st))
        {
            const int t = omp_get_thread_num();
#pragma omp for schedule(dynamic)
            for (int i = 0; i < nchunks; i++) {
                int n0, nc;
                const float *a = convolve_chunk(st, p, input, n, i, t, &n0, &nc, st->keep);
                double *sum = st->sums + (size_t)i * 2 * c, *sumsq = sum + c;
                for (int ch = 0; ch < 2 * c; ch++) sum[ch] = 0.0;
                batchnorm_accumulate(c, (size_t)nc * conv_plane, a, sum, sumsq);
            }
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
        if (train) {
            train_affine(p, ch, &scale[ch], &shift[ch]);
            continue;
        }
        float invstd = (float)(1.0 / sqrt((double)p->running_var[ch] + (double)BN_EPS));
        scale[ch] = p->gamma[ch] * invstd;
        shift[ch] = p->beta[ch] - p->running_mean[ch] * scale[ch];
    }
    /* Pass 2: BN, ReLU (in place) and the max-pool of each chunk. */
    const struct maxpool_shape *ps = &st->pool;
    const size_t out_plane = (size_t)ps->ho * ps->wo;
#pragma omp parallel num_threads(team(st))
    {
        const int t = omp_get_thread_num();
#pragma omp for schedule(dynamic)
        for (int i = 0; i < nchunks; i++) {
            int n0, nc;
            /* BN + ReLU into the thread's buffer: in place, or from the kept output
             * (training), which stays for the backward passes. */
            float *h = st->a + (size_t)t * st->per_thread.out;
            const float *a = train && st->keep
                                 ? chunk_output(st, p, input, n, i, t, &n0, &nc)
                                 : convolve_chunk(st, p, input, n, i, t, &n0, &nc, false);
            for (int ch = 0; ch < c; ch++) {
                const float sc = scale[ch], sh = shift[ch];
                const float *ap = a + (size_t)ch * nc * conv_plane;
                float *hp = h + (size_t)ch * nc * conv_plane;
#pragma omp simd
                for (size_t j = 0; j < (size_t)nc * conv_plane; j++) hp[j] = bn_relu(ap[j], sc, sh);
                for (int j = 0; j < nc; j++) {
                    const size_t plane = ((size_t)ch * n + n0 + j) * out_plane;
                    pool_plane(ps, hp + j * conv_plane, pooled + plane, st->argmax + plane);
                }
            }
        }
    }
}

/* Backward pass 1 for chunk i: BN's gradient sums (sum dy, sum dy * xhat per channel)
 * into sums[0, 2c). A pooled gradient reaches the BN output only at its window's
 * maximum, and only if that passed the ReLU. */
static void chunk_bn_grad_sums(const struct stem *st, const struct stem_params *p, int n,
                               const float *input, const float *dpooled, int i, int t,
                               double *sums)
{
    const struct maxpool_shape *ps = &st->pool;
    const int c = st->conv.cout;
    const size_t in_plane = (size_t)ps->h * ps->w, out_plane = (size_t)ps->ho * ps->wo;
    int off[9], n0, nc;
    window_offsets(ps->w, off);
    const float *a = chunk_output(st, p, input, n, i, t, &n0, &nc);
    for (int ch = 0; ch < c; ch++) {
        float scale, shift;
        train_affine(p, ch, &scale, &shift);
        const double mean = p->saved->mean[ch], invstd = p->saved->invstd[ch];
        double s = 0.0, sx = 0.0;
        for (int j = 0; j < nc; j++) {
            const float *ap = a + ((size_t)ch * nc + j) * in_plane;
            const size_t plane = ((size_t)ch * n + n0 + j) * out_plane;
            const uint8_t *mp = st->argmax + plane;
            const float *gp = dpooled + plane;
            for (int oy = 0; oy < ps->ho; oy++)
                for (int ox = 0; ox < ps->wo; ox++) {
                    const int o = oy * ps->wo + ox;
                    const float v = ap[max_position(ps, off, oy, ox, mp[o])];
                    if (!(bn_relu(v, scale, shift) > 0.0f)) continue;
                    const double g = gp[o];
                    s += g;
                    sx += g * (((double)v - mean) * invstd);
                }
        }
        sums[ch] = s;
        sums[c + ch] = sx;
    }
}

/* Backward pass 2 for chunk i: the dense gradient of its convolution output (BN's
 * backward from the sums), then the chunk's weight (and bias) gradient into g. */
static void chunk_conv_grads(const struct stem *st, const struct stem_params *p, int n,
                             const float *input, const float *dpooled, const double *sum_dy,
                             const double *sum_dy_xhat, int i, int t, double *g)
{
    const struct maxpool_shape *ps = &st->pool;
    const struct bn_saved *sv = p->saved;
    const int c = st->conv.cout;
    const size_t in_plane = (size_t)ps->h * ps->w, out_plane = (size_t)ps->ho * ps->wo;
    const double count = sv->count;
    int off[9], n0, nc;
    window_offsets(ps->w, off);
    const float *a = chunk_output(st, p, input, n, i, t, &n0, &nc);
    float *d = st->d + (size_t)t * st->per_thread.out;
    for (int ch = 0; ch < c; ch++) {
        float scale, shift;
        train_affine(p, ch, &scale, &shift);
        const float mean = sv->mean[ch], invstd = sv->invstd[ch];
        const float k = p->gamma[ch] * invstd;
        const float mean_dy = (float)(sum_dy[ch] / count);
        const float mean_dy_xhat = (float)(sum_dy_xhat[ch] / count);
        for (int j = 0; j < nc; j++) {
            const float *ap = a + ((size_t)ch * nc + j) * in_plane;
            float *dp = d + ((size_t)ch * nc + j) * in_plane;
            const size_t plane = ((size_t)ch * n + n0 + j) * out_plane;
            const uint8_t *mp = st->argmax + plane;
            const float *gp = dpooled + plane;
            memset(dp, 0, sizeof(float) * in_plane);
            for (int oy = 0; oy < ps->ho; oy++)
                for (int ox = 0; ox < ps->wo; ox++) {
                    const int o = oy * ps->wo + ox;
                    const int pos = max_position(ps, off, oy, ox, mp[o]);
                    if (bn_relu(ap[pos], scale, shift) > 0.0f) dp[pos] += gp[o];
                }
#pragma omp simd
            for (size_t e = 0; e < in_plane; e++) {
                const float xhat = (ap[e] - mean) * invstd;
                dp[e] = k * (dp[e] - mean_dy - xhat * mean_dy_xhat);
            }
        }
    }
    const size_t per_chunk = grads_per_chunk(st), nw = per_chunk - (size_t)c;
    memset(g, 0, sizeof(double) * per_chunk);
    struct conv_shape cs = st->conv;
    cs.n = nc;
    const struct conv_workspace ws = thread_workspace(st, t);
    conv2d_backward(&cs, input + (size_t)n0 * cs.h * cs.w, p->w, d, grad_of_doubles(g),
                    grad_wanted(p->db) ? grad_of_doubles(g + nw) : grad_none(), NULL, false, &ws);
}

void stem_backward(const struct stem *st, const struct stem_params *p, int n, const float *input,
                   const float *dpooled, const struct reducer *red, double *work)
{
    const int c = st->conv.cout, nchunks = count_chunks(st, n);
    double *sum_dy = work, *sum_dy_xhat = work + c;
#pragma omp parallel num_threads(team(st))
    {
        const int t = omp_get_thread_num();
#pragma omp for schedule(dynamic)
        for (int i = 0; i < nchunks; i++)
            chunk_bn_grad_sums(st, p, n, input, dpooled, i, t, st->sums + (size_t)i * 2 * c);
    }
    for (int i = 0; i < 2 * c; i++) work[i] = 0.0;
    add_chunk_sums(nchunks, 2 * (size_t)c, 2 * (size_t)c, st->sums, grad_of_doubles(work));
    /* This rank's shares are its parameter gradients (summed over ranks later). */
    for (int ch = 0; ch < c; ch++) {
        grad_add(p->dbeta, (size_t)ch, sum_dy[ch]);
        grad_add(p->dgamma, (size_t)ch, sum_dy_xhat[ch]);
    }
    reducer_sum(red, work, 2 * (size_t)c);
    if (p->saved->count == 0) return;
    const size_t per_chunk = grads_per_chunk(st), nw = per_chunk - (size_t)c;
#pragma omp parallel num_threads(team(st))
    {
        const int t = omp_get_thread_num();
#pragma omp for schedule(dynamic)
        for (int i = 0; i < nchunks; i++)
            chunk_conv_grads(st, p, n, input, dpooled, sum_dy, sum_dy_xhat, i, t,
                             st->grads + (size_t)i * per_chunk);
    }
    add_chunk_sums(nchunks, per_chunk, nw, st->grads, p->dw);
    if (grad_wanted(p->db)) add_chunk_sums(nchunks, per_chunk, (size_t)c, st->grads + nw, p->db);
}
