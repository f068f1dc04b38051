/* winograd: F(2x2, 3x3), F(3x3, 3x3) and F(4x4, 3x3) convolutions; see winograd.h.
 *
 * Transform matrices (Lavin & Gray 2016), for m x m output tiles read from
 * (m + 2) x (m + 2) input tiles:
 *   F(2x2, 3x3):
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]     input tile d (4x4): B^T d B
 *   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]  filter g (3x3):     G g G^T
 *   A^T = [1 1 1 0; 0 1 -1 -1]                       product m (4x4):    A^T m A
 *   F(3x3, 3x3) (points 0, 1, -1, 2, infinity; B^T's rows scaled to integers,
 *   G's rows by the inverse):
 *   B^T = [2 -1 -2 1 0;  0 2 1 -1 0;  0 -2 3 -1 0;  0 -1 0 1 0;  0 2 -1 -2 1]
 *   G   = [1/2 0 0; 1/2 1/2 1/2; 1/6 -1/6 1/6; 1/6 1/3 2/3; 0 0 1]
 *   A^T = [1 1 1 1 0;  0 1 -1 2 0;  0 1 1 4 1]
 *   F(4x4, 3x3) (interpolation points 0, 1, -1, 2, -2, infinity):
 *   B^T = [4  0 -5  0  1  0;  0 -4 -4  1  1  0;  0  4 -4 -1  1  0;
 *          0 -2 -1  2  1  0;  0  2 -1 -2  1  0;  0  4  0 -5  0  1]
 *   G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
 *   A^T = [1 1 1 1 1 0;  0 1 -1 2 -2 0;  0 1 1 4 4 0;  0 1 -1 8 -8 1]
 * Each is applied as a step over rows, then the same step over columns (the
 * *_step functions). Transformed arrays are (positions, channels, tiles): position
 * xi = (m + 2) * row + column of the tile, so each xi is a plain row-major matrix
 * for the GEMMs. Tiles are numbered (sample of the chunk, tile row, tile column). */
#include "winograd.h"

#include "gemm.h"
#include "vec8.h"

/* Widest map the data transforms take: their per-thread row buffers are on the stack,
 * sized by this, so the training step allocates nothing. */
#define MAX_W 256
#define MAX_A 6 /* largest tile side m + 2 */

/* The data transforms take eight samples side by side, and the filter transforms
 * eight filters, one per lane of a vec8. */
#define LANES VEC8_LANES
typedef vec8 lanes;
typedef vec8_index lane_index;

bool winograd_applies(const struct conv_shape *s)
{
    return s->k == 3 && s->stride == 1 && s->pad == 1 && s->h >= 2 && s->w >= 2 && s->w <= MAX_W;
}

static int tiles_of(int size, int m) { return (size + m - 1) / m; }

/* Multiplications per channel pair with m x m output tiles: (m + 2)^2 per tile,
 * tiles sticking out of the map counted whole. */
static int tile_multiplications(const struct conv_shape *s, int m)
{
    return (m + 2) * (m + 2) * tiles_of(s->ho, m) * tiles_of(s->wo, m);
}

/* Outputs per tile side: the m of 2, 3, 4 that multiplies least, ties to the
 * smaller m (shorter transforms, wider GEMMs). 24x24 and 12x12 maps take 4, 6x6 and
 * 3x3 maps 3 (four 6x6 tiles or nine 4x4 ones need 1.44x more multiplications than
 * four 5x5 ones on a 6x6 map). */
static int tile_m(const struct conv_shape *s)
{
    int best = 2;
    for (int m = 3; m <= 4; m++)
        if (tile_multiplications(s, m) < tile_multiplications(s, best)) best = m;
    return best;
}

static int positions(const struct conv_shape *s)
{
    const int a = tile_m(s) + 2;
    return a * a;
}

static int tiles_y(const struct conv_shape *s) { return tiles_of(s->ho, tile_m(s)); }
static int tiles_x(const struct conv_shape *s) { return tiles_of(s->wo, tile_m(s)); }

int winograd_multiplications(const struct conv_shape *s)
{
    return tile_multiplications(s, tile_m(s));
}

/* Floats from one position's matrix to the next in a transformed array of c channels
 * and P tiles: c P rounded up to an odd number of 64-byte lines. At a multiple of
 * 4 KiB the a^2 matrices' rows fall into the same cache sets and evict each other. */
static size_t position_stride(int c, size_t P)
{
    const size_t lines = ((size_t)c * P + 15) / 16;
    return (lines | 1) * 16;
}

size_t winograd_chunk_floats(const struct conv_shape *s)
{
    /* Per sample, and room for the strides' padding (at most 31 floats per position
     * in each of the two arrays) counted with every sample. */
    return (size_t)positions(s) * (tiles_y(s) * tiles_x(s) * (size_t)(s->cin + s->cout) + 64);
}

size_t winograd_out_floats(const struct conv_shape *s)
{
    const size_t c = s->cin > s->cout ? (size_t)s->cin : (size_t)s->cout;
    if (winograd_groups_chunks(s)) /* a group of the whole batch, each chunk's stride rounded up */
        return (size_t)positions(s) *
               (c * tiles_y(s) * tiles_x(s) * (size_t)s->n + 32 * WINOGRAD_MAX_GROUP);
    const size_t P = (size_t)winograd_chunk_samples(s) * tiles_y(s) * tiles_x(s);
    return (size_t)positions(s) * position_stride((int)c, P);
}

int winograd_chunk_samples(const struct conv_shape *s)
{
    /* Each GEMM packs its cout x cin filter matrix anew, so wide filter matrices
     * need more columns to pay for it: 256 for 512 x 512, 64 up to 256 x 256. */
    const long wide = (long)s->cin * s->cout / 1024;
    const int tiles = tiles_y(s) * tiles_x(s), min_columns = wide > 64 ? (int)wide : 64;
    const int samples = (min_columns + tiles - 1) / tiles;
    return (samples + LANES - 1) / LANES * LANES;
}

size_t winograd_filter_floats(const struct conv_shape *s)
{
    return (size_t)positions(s) * s->cout * s->cin;
}

/* ---- the data transforms' one-dimensional steps ------------------------------ */


/* o[0..m+1] = B^T d for d[0..m+1]. */
static inline void bt_step(int m, const lanes *d, lanes *o)
{
    if (m == 2) {
        o[0] = d[0] - d[2];
        o[1] = d[1] + d[2];
        o[2] = d[2] - d[1];
        o[3] = d[1] - d[3];
        return;
    }
    if (m == 3) {
        o[0] = 2.0f * (d[0] - d[2]) + d[3] - d[1];
        o[1] = 2.0f * d[1] + d[2] - d[3];
        o[2] = 3.0f * d[2] - 2.0f * d[1] - d[3];
        o[3] = d[3] - d[1];
        o[4] = 2.0f * (d[1] - d[3]) - d[2] + d[4];
        return;
    }
    o[0] = 4.0f * d[0] - 5.0f * d[2] + d[4];
    o[1] = d[3] + d[4] - 4.0f * (d[1] + d[2]);
    o[2] = d[4] - d[3] + 4.0f * (d[1] - d[2]);
    o[3] = d[4] - d[2] + 2.0f * (d[3] - d[1]);
    o[4] = d[4] - d[2] + 2.0f * (d[1] - d[3]);
    o[5] = 4.0f * d[1] - 5.0f * d[3] + d[5];
}

/* o[0..m-1] = A^T p for p[0..m+1]. */
static inline void at_step(int m, const lanes *p, lanes *o)
{
    if (m == 2) {
        o[0] = p[0] + p[1] + p[2];
        o[1] = p[1] - p[2] - p[3];
        return;
    }
    if (m == 3) {
        const lanes p12 = p[1] + p[2];
        o[0] = p[0] + p12 + p[3];
        o[1] = p[1] - p[2] + 2.0f * p[3];
        o[2] = p12 + 4.0f * p[3] + p[4];
        return;
    }
    const lanes p12 = p[1] + p[2], d12 = p[1] - p[2], p34 = p[3] + p[4], d34 = p[3] - p[4];
    o[0] = p[0] + p12 + p34;
    o[1] = d12 + 2.0f * d34;
    o[2] = p12 + 4.0f * p34;
    o[3] = d12 + 8.0f * d34 + p[5];
}

/* o[0..m+1] = A e for e[0..m-1] (the transpose of at_step). */
static inline void a_step(int m, const lanes *e, lanes *o)
{
    if (m == 2) {
        o[0] = e[0];
        o[1] = e[0] + e[1];
        o[2] = e[0] - e[1];
        o[3] = -e[1];
        return;
    }
    if (m == 3) {
        const lanes p02 = e[0] + e[2];
        o[0] = e[0];
        o[1] = p02 + e[1];
        o[2] = p02 - e[1];
        o[3] = e[0] + 2.0f * e[1] + 4.0f * e[2];
        o[4] = e[2];
        return;
    }
    const lanes p02 = e[0] + e[2], p13 = e[1] + e[3];
    const lanes q02 = e[0] + 4.0f * e[2], q13 = 2.0f * e[1] + 8.0f * e[3];
    o[0] = e[0];
    o[1] = p02 + p13;
    o[2] = p02 - p13;
    o[3] = q02 + q13;
    o[4] = q02 - q13;
    o[5] = e[3];
}

/* The transforms below are written once for both tile sizes and compiled for each:
 * with m a constant the steps' branches fold and their loops vectorize. The parallel
 * region is opened outside (its body becomes a function of its own, where m would
 * no longer be a constant); the transforms' loops are its orphaned omp for. */
#define FOR_TILE(s, call)                                                          \
    do {                                                                           \
        const int m_ = tile_m(s);                                                  \
        _Pragma("omp parallel") if (m_ == 4) call(4); else if (m_ == 3) call(3); else call(2); \
    } while (0)
#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* np consecutive floats as lanes (np < LANES at the end of a chunk or of a row of
 * filters). Past np a load reads zeros and a store writes nothing. */
static inline lanes load_lanes(const float *src, int np)
{
    lanes v = {0};
    if (np == LANES) v = vec8_load(src);
    else
        for (int p = 0; p < np; p++) v[p] = src[p];
    return v;
}

static inline void store_lanes(float *dst, lanes v, int np)
{
    if (np == LANES) vec8_store(dst, v);
    else
        for (int p = 0; p < np; p++) dst[p] = v[p];
}

/* The np floats at src, which are then set to zero. */
static inline lanes take_lanes(float *src, int np)
{
    const lanes v = load_lanes(src, np);
    store_lanes(src, (lanes){0}, np);
    return v;
}

/* Items (filters, samples) of the vector that starts at item `at` of `count`. */
static inline int lanes_left(size_t count, size_t at)
{
    return count - at < LANES ? (int)(count - at) : LANES;
}

/* ---- filter transforms ------------------------------------------------------
 * Eight filters at a time, one per lane (the same operations as one at a time, so the
 * same results): the steps' divisions by 6, 12 and 24 then run eight-wide. */

/* o[0..m+1] = G g for g[0..2]. */
static inline void g_step(int m, const lanes *g, lanes *o)
{
    if (m == 2) {
        o[0] = g[0];
        o[1] = 0.5f * (g[0] + g[1] + g[2]);
        o[2] = 0.5f * (g[0] - g[1] + g[2]);
        o[3] = g[2];
        return;
    }
    if (m == 3) {
        o[0] = 0.5f * g[0];
        o[1] = 0.5f * (g[0] + g[1] + g[2]);
        o[2] = (g[0] - g[1] + g[2]) / 6.0f;
        o[3] = (g[0] + 2.0f * g[1] + 4.0f * g[2]) / 6.0f;
        o[4] = g[2];
        return;
    }
    o[0] = 0.25f * g[0];
    o[1] = -(g[0] + g[1] + g[2]) / 6.0f;
    o[2] = -(g[0] - g[1] + g[2]) / 6.0f;
    o[3] = g[0] / 24.0f + g[1] / 12.0f + g[2] / 6.0f;
    o[4] = g[0] / 24.0f - g[1] / 12.0f + g[2] / 6.0f;
    o[5] = g[2];
}

/* o[0..2] = G^T v for v[0..m+1] (the transpose of g_step). */
static inline void gt_step(int m, const lanes *v, lanes *o)
{
    if (m == 2) {
        o[0] = v[0] + 0.5f * (v[1] + v[2]);
        o[1] = 0.5f * (v[1] - v[2]);
        o[2] = 0.5f * (v[1] + v[2]) + v[3];
        return;
    }
    if (m == 3) {
        o[0] = 0.5f * (v[0] + v[1]) + (v[2] + v[3]) / 6.0f;
        o[1] = 0.5f * v[1] + (2.0f * v[3] - v[2]) / 6.0f;
        o[2] = 0.5f * v[1] + (v[2] + 4.0f * v[3]) / 6.0f + v[4];
        return;
    }
    o[0] = 0.25f * v[0] - (v[1] + v[2]) / 6.0f + (v[3] + v[4]) / 24.0f;
    o[1] = (v[2] - v[1]) / 6.0f + (v[3] - v[4]) / 12.0f;
    o[2] = (v[3] + v[4] - v[1] - v[2]) / 6.0f + v[5];
}

/* Lane p of f[0..8] = tap k of the filter at w + p * step (taps in reverse order when
 * flip, for the input gradient's filter), for p < np; zero past np. */
static inline void gather_filters(const float *w, size_t step, int np, bool flip, lanes f[9])
{
    for (int k = 0; k < 9; k++) f[k] = (lanes){0};
    for (int p = 0; p < np; p++)
        for (int k = 0; k < 9; k++) f[k][p] = w[(size_t)p * step + (flip ? 8 - k : k)];
}

/* u (a x a planes `stride` apart, lane p at u + p) = G f G^T, a = m + 2. */
ALWAYS_INLINE void filter_tiles(const lanes f[9], float *u, size_t stride, int np, const int m)
{
    const int a = m + 2;
    lanes t[MAX_A][3], col[3], o[MAX_A];
    for (int c = 0; c < 3; c++) { /* G f, a column at a time */
        for (int i = 0; i < 3; i++) col[i] = f[3 * i + c];
        g_step(m, col, o);
        for (int j = 0; j < a; j++) t[j][c] = o[j];
    }
    for (int j = 0; j < a; j++) { /* ... G^T */
        g_step(m, t[j], o);
        for (int l = 0; l < a; l++) store_lanes(u + (size_t)(a * j + l) * stride, o[l], np);
    }
}

ALWAYS_INLINE void transform_filters(const struct conv_shape *s, const float *w, float *u,
                                     const int m)
{
    const size_t pairs = (size_t)s->cout * s->cin;
#pragma omp for schedule(static)
    for (size_t r = 0; r < pairs; r += LANES) {
        lanes f[9];
        const int np = lanes_left(pairs, r);
        gather_filters(w + 9 * r, 9, np, false, f);
        filter_tiles(f, u + r, pairs, np, m);
    }
}

void winograd_transform_filter(const struct conv_shape *s, const float *w, float *u)
{
#define CALL(m) transform_filters(s, w, u, m)
    FOR_TILE(s, CALL);
#undef CALL
}

/* U (positions, cin, cout): output pair (ci, co) from filter (co, ci), flipped. */
ALWAYS_INLINE void transform_filters_flipped(const struct conv_shape *s, const float *w, float *u,
                                             const int m)
{
    const size_t pairs = (size_t)s->cout * s->cin, cout = (size_t)s->cout;
#pragma omp for schedule(static)
    for (int ci = 0; ci < s->cin; ci++)
        for (size_t co = 0; co < cout; co += LANES) {
            lanes f[9];
            const int np = lanes_left(cout, co);
            gather_filters(w + 9 * (co * s->cin + ci), 9 * (size_t)s->cin, np, true, f);
            filter_tiles(f, u + ci * cout + co, pairs, np, m);
        }
}

void winograd_transform_filter_flipped(const struct conv_shape *s, const float *w, float *u)
{
#define CALL(m) transform_filters_flipped(s, w, u, m)
    FOR_TILE(s, CALL);
#undef CALL
}

/* dw = G^T du G for every pair. */
ALWAYS_INLINE void filter_gradients(const struct conv_shape *s, const float *du, float *dw,
                                    const int m)
{
    const int a = m + 2;
    const size_t pairs = (size_t)s->cout * s->cin;
#pragma omp for schedule(static)
    for (size_t r = 0; r < pairs; r += LANES) {
        const int np = lanes_left(pairs, r);
        lanes t[3][MAX_A], v[MAX_A], o[3], g[9];
        for (int l = 0; l < a; l++) { /* G^T du, a column at a time */
            for (int j = 0; j < a; j++) v[j] = load_lanes(du + (size_t)(a * j + l) * pairs + r, np);
            gt_step(m, v, o);
            for (int i = 0; i < 3; i++) t[i][l] = o[i];
        }
        for (int i = 0; i < 3; i++) { /* ... G */
            gt_step(m, t[i], o);
            for (int k = 0; k < 3; k++) g[3 * i + k] = o[k];
        }
        for (int p = 0; p < np; p++)
            for (int k = 0; k < 9; k++) dw[9 * (r + p) + k] = g[k][p];
    }
}

void winograd_filter_gradient(const struct conv_shape *s, const float *du, float *dw)
{
#define CALL(m) filter_gradients(s, du, dw, m)
    FOR_TILE(s, CALL);
#undef CALL
}

/* ---- data transforms --------------------------------------------------------
 * The transforms work on eight samples of the chunk at once, one per lane of a
 * vector: every step of a tile is then a vector operation whatever the map's width
 * (a row of a small map has too few tiles to fill a vector). A tile's
 * eight samples are adjacent in the transformed arrays, so its values are stored as
 * whole vectors; only the planes are transposed, eight rows at a time, on their way
 * in and out. */

/* r[0..7] = its transpose: lane p of row k becomes lane k of row p. */
static inline void transpose8(lanes r[LANES])
{
    const lane_index lo = {0, 8, 1, 9, 4, 12, 5, 13}, hi = {2, 10, 3, 11, 6, 14, 7, 15};
    const lane_index lo2 = {0, 1, 8, 9, 4, 5, 12, 13}, hi2 = {2, 3, 10, 11, 6, 7, 14, 15};
    const lane_index lo4 = {0, 1, 2, 3, 8, 9, 10, 11}, hi4 = {4, 5, 6, 7, 12, 13, 14, 15};
    lanes t[LANES], u[LANES];
    for (int i = 0; i < LANES; i += 2) {
        t[i] = __builtin_shuffle(r[i], r[i + 1], lo);
        t[i + 1] = __builtin_shuffle(r[i], r[i + 1], hi);
    }
    for (int i = 0; i < LANES; i += 4) /* u[i + q]: columns q and q + 4 of rows i..i+3 */
        for (int j = 0; j < 2; j++) {
            u[i + 2 * j] = __builtin_shuffle(t[i + j], t[i + j + 2], lo2);
            u[i + 2 * j + 1] = __builtin_shuffle(t[i + j], t[i + j + 2], hi2);
        }
    for (int i = 0; i < 4; i++) {
        r[i] = __builtin_shuffle(u[i], u[i + 4], lo4);
        r[i + 4] = __builtin_shuffle(u[i], u[i + 4], hi4);
    }
}

/* dst[k] = (src[0][k], ..., src[7][k]) for k < len: eight rows side by side. */
static inline void load_rows(const float *const src[LANES], int len, lanes *dst)
{
    int k = 0;
    for (; k + LANES <= len; k += LANES) {
        lanes r[LANES];
        for (int p = 0; p < LANES; p++) r[p] = vec8_load(src[p] + k);
        transpose8(r);
        for (int q = 0; q < LANES; q++) dst[k + q] = r[q];
    }
    for (; k < len; k++)
        for (int p = 0; p < LANES; p++) dst[k][p] = src[p][k];
}

/* dst[p][k] = (or +=) lane p of src[k], for the first np rows and k < len. */
static inline void store_rows(const lanes *src, int len, float *const dst[LANES], int np,
                              bool accumulate)
{
    int k = 0;
    for (; k + LANES <= len; k += LANES) {
        lanes r[LANES];
        for (int q = 0; q < LANES; q++) r[q] = src[k + q];
        transpose8(r);
        for (int p = 0; p < np; p++) {
            if (accumulate) {
                r[p] += vec8_load(dst[p] + k);
            }
            vec8_store(dst[p] + k, r[p]);
        }
    }
    for (; k < len; k++)
        for (int p = 0; p < np; p++) dst[p][k] = (accumulate ? dst[p][k] : 0.0f) + src[k][p];
}

/* The planes of a group: channel ch of samples n0 + g LANES + p, p < np, of t (c, n,
 * size); returns np (below LANES at the end of a chunk: the transforms read zero rows
 * for the missing samples). */
static inline int group_planes(const float *t, const struct conv_shape *s, int ch, int n0, int nc,
                               int g, size_t size, const float *plane[LANES])
{
    const int first = g * LANES, np = lanes_left((size_t)nc, (size_t)first);
    for (int p = 0; p < np; p++) plane[p] = t + ((size_t)ch * s->n + n0 + first + p) * size;
    return np;
}

/* The planes of t (c, n, size) that the transforms read, or the output transform
 * writes, for the group after (ch, g) in their loops' order (the next group of the
 * channel, or the next channel's first): adjacent, count floats from the returned
 * address; NULL after the last. */
static inline const float *next_group(const float *t, const struct conv_shape *s, int c, int ch,
                                      int g, int n0, int nc, size_t size, size_t *count)
{
    if (++g * LANES >= nc) {
        if (++ch == c) return NULL;
        g = 0;
    }
    const float *plane[LANES];
    *count = (size_t)group_planes(t, s, ch, n0, nc, g, size, plane) * size;
    return plane[0];
}

/* Part `part` of `parts` of the 64-byte lines of [p, p + count) into the cache. The
 * transforms take the next group's block a tile row at a time while they work on
 * this one: each group's block is a few KB, and the hardware prefetchers lose the
 * stream at every jump to the next channel's. */
static inline void prefetch_part(const float *p, size_t count, int part, int parts)
{
    if (!p) return;
    const size_t lines = (count + 15) / 16;
    for (size_t l = lines * part / parts; l < lines * (part + 1) / parts; l++)
        __builtin_prefetch(p + 16 * l);
}

/* A zero row for the planes a short group lacks and for padding rows, as wide as
 * any map row the transforms take. */
static const float zero_row[MAX_W];

/* v (a^2, c, P) = B^T d B for every tile of channels [0, c) of samples [n0, n0 + nc)
 * of x (c, n, h, w), where P = tiles * nc and a = m + 2. Input tile (ty, tx) starts
 * at (m ty - 1, m tx - 1); outside the map reads zero. Per group of samples and row
 * of tiles: its a input rows side by side (column k holds input column k - 1), B^T's
 * step down every column, then B's step across every tile. */
ALWAYS_INLINE void input_transform_m(const struct conv_shape *s, int c, const float *x, int n0,
                                     int nc, float *v, const int m)
{
    const int a = m + 2, h = s->h, w = s->w, ty_n = tiles_of(s->ho, m), tx_n = tiles_of(s->wo, m);
    const int cols = m * tx_n + 2, groups = (nc + LANES - 1) / LANES;
    const size_t P = (size_t)nc * ty_n * tx_n, plane_stride = position_stride(c, P);
    lanes rows[MAX_A][MAX_W + 8], t[MAX_A][MAX_W + 8];
#pragma omp for collapse(2) schedule(static)
    for (int ch = 0; ch < c; ch++)
        for (int g = 0; g < groups; g++) {
            const float *plane[LANES];
            const int np = group_planes(x, s, ch, n0, nc, g, (size_t)h * w, plane);
            float *out = v + (size_t)ch * P + (size_t)g * LANES * ty_n * tx_n;
            size_t next_count = 0;
            const float *next = next_group(x, s, c, ch, g, n0, nc, (size_t)h * w, &next_count);
            for (int ty = 0; ty < ty_n; ty++) {
                prefetch_part(next, next_count, ty, ty_n);
                for (int i = 0; i < a; i++) {
                    const int iy = m * ty - 1 + i;
                    lanes *row = rows[i];
                    if (iy < 0 || iy >= h) {
                        for (int k = 0; k < cols; k++) row[k] = (lanes){0};
                        continue;
                    }
                    const float *src[LANES];
                    for (int p = 0; p < LANES; p++) src[p] = p < np ? plane[p] + (size_t)iy * w : zero_row;
                    row[0] = (lanes){0};
                    load_rows(src, w, row + 1);
                    for (int k = w + 1; k < cols; k++) row[k] = (lanes){0};
                }
                for (int k = 0; k < cols; k++) { /* B^T d */
                    lanes d[MAX_A], o[MAX_A];
                    for (int i = 0; i < a; i++) d[i] = rows[i][k];
                    bt_step(m, d, o);
                    for (int j = 0; j < a; j++) t[j][k] = o[j];
                }
                for (int tx = 0; tx < tx_n; tx++) { /* ... B */
                    float *dst = out + (size_t)(ty * tx_n + tx) * np;
                    for (int j = 0; j < a; j++) {
                        lanes o[MAX_A];
                        bt_step(m, t[j] + m * tx, o);
                        for (int l = 0; l < a; l++)
                            store_lanes(dst + (size_t)(a * j + l) * plane_stride, o[l], np);
                    }
                }
            }
        }
}

static void input_transform(const struct conv_shape *s, int c, const float *x, int n0, int nc,
                            float *v)
{
#define CALL(m) input_transform_m(s, c, x, n0, nc, v, m)
    FOR_TILE(s, CALL);
#undef CALL
}

/* y (c, n, ho, wo) samples [n0, n0 + nc) = (or +=) A^T p A for every tile of p
 * (a^2, c, P); outputs past the map's edge are dropped. Per group of samples and row
 * of tiles: A^T's step over every tile column into t, then A's step across the tiles
 * into one output row at a time, which goes back into the group's planes. */
ALWAYS_INLINE void output_transform_m(const struct conv_shape *s, int c, float *p, int n0,
                                      int nc, float *y, bool accumulate, const int m)
{
    const int a = m + 2, ho = s->ho, wo = s->wo, ty_n = tiles_of(ho, m), tx_n = tiles_of(wo, m);
    const int groups = (nc + LANES - 1) / LANES;
    const size_t P = (size_t)nc * ty_n * tx_n, plane_stride = position_stride(c, P);
    /* t[(a i + l) tx_n + tx]: row i of A^T p at tile column l, tile tx (m a tx_n <=
     * 6 (MAX_W + 4) for every m). */
    lanes t[MAX_A * (MAX_W + 4)], row[MAX_W + 4];
#pragma omp for collapse(2) schedule(static)
    for (int ch = 0; ch < c; ch++)
        for (int g = 0; g < groups; g++) {
            float *plane[LANES];
            const int first = g * LANES, np = lanes_left((size_t)nc, (size_t)first);
            for (int q = 0; q < np; q++) plane[q] = y + ((size_t)ch * s->n + n0 + first + q) * ho * wo;
            float *in = p + (size_t)ch * P + (size_t)first * ty_n * tx_n;
            size_t next_count = 0;
            const float *next = next_group(y, s, c, ch, g, n0, nc, (size_t)ho * wo, &next_count);
            for (int ty = 0; ty < ty_n; ty++) {
                prefetch_part(next, next_count, ty, ty_n);
                for (int tx = 0; tx < tx_n; tx++) { /* A^T p */
                    float *src = in + (size_t)(ty * tx_n + tx) * np;
                    for (int l = 0; l < a; l++) {
                        lanes d[MAX_A], o[MAX_A] = {0}; /* {0}: GCC cannot see at_step fill it */
                        for (int j = 0; j < a; j++)
                            d[j] = take_lanes(src + (size_t)(a * j + l) * plane_stride, np);
                        at_step(m, d, o);
                        for (int i = 0; i < m; i++) t[(size_t)(a * i + l) * tx_n + tx] = o[i];
                    }
                }
                for (int i = 0; i < m && m * ty + i < ho; i++) { /* ... A, a row at a time */
                    for (int tx = 0; tx < tx_n; tx++) {
                        lanes d[MAX_A], o[MAX_A] = {0};
                        for (int l = 0; l < a; l++) d[l] = t[(size_t)(a * i + l) * tx_n + tx];
                        at_step(m, d, o);
                        for (int q = 0; q < m; q++) row[m * tx + q] = o[q];
                    }
                    float *dst[LANES];
                    for (int q = 0; q < np; q++) dst[q] = plane[q] + (size_t)(m * ty + i) * wo;
                    store_rows(row, wo, dst, np, accumulate);
                }
            }
        }
}

static void output_transform(const struct conv_shape *s, int c, float *p, int n0, int nc,
                             float *y, bool accumulate)
{
#define CALL(m) output_transform_m(s, c, p, n0, nc, y, accumulate, m)
    FOR_TILE(s, CALL);
#undef CALL
}

/* z (a^2, c, P) = A e A^T for every m x m tile e of dy (c, n, ho, wo), samples
 * [n0, n0 + nc); outputs past the map's edge count as zero. Per group of samples and
 * row of tiles, as in input_transform: its m rows side by side, A's step down every
 * column, then A^T's step across every tile. */
ALWAYS_INLINE void gradient_transform_m(const struct conv_shape *s, int c, const float *dy, int n0,
                                        int nc, float *z, const int m)
{
    const int a = m + 2, ho = s->ho, wo = s->wo, ty_n = tiles_of(ho, m), tx_n = tiles_of(wo, m);
    const int cols = m * tx_n, groups = (nc + LANES - 1) / LANES;
    const size_t P = (size_t)nc * ty_n * tx_n, plane_stride = position_stride(c, P);
    lanes rows[MAX_A][MAX_W + 8], r[MAX_A][MAX_W + 8];
#pragma omp for collapse(2) schedule(static)
    for (int ch = 0; ch < c; ch++)
        for (int g = 0; g < groups; g++) {
            const float *plane[LANES];
            const int np = group_planes(dy, s, ch, n0, nc, g, (size_t)ho * wo, plane);
            float *out = z + (size_t)ch * P + (size_t)g * LANES * ty_n * tx_n;
            size_t next_count = 0;
            const float *next = next_group(dy, s, c, ch, g, n0, nc, (size_t)ho * wo, &next_count);
            for (int ty = 0; ty < ty_n; ty++) {
                prefetch_part(next, next_count, ty, ty_n);
                for (int i = 0; i < m; i++) {
                    const int iy = m * ty + i;
                    lanes *row = rows[i];
                    for (int k = wo; k < cols; k++) row[k] = (lanes){0};
                    if (iy >= ho) {
                        for (int k = 0; k < wo; k++) row[k] = (lanes){0};
                        continue;
                    }
                    const float *src[LANES];
                    for (int q = 0; q < LANES; q++) src[q] = q < np ? plane[q] + (size_t)iy * wo : zero_row;
                    load_rows(src, wo, row);
                }
                for (int k = 0; k < cols; k++) { /* A e */
                    lanes d[MAX_A], o[MAX_A];
                    for (int i = 0; i < m; i++) d[i] = rows[i][k];
                    a_step(m, d, o);
                    for (int l = 0; l < a; l++) r[l][k] = o[l];
                }
                for (int tx = 0; tx < tx_n; tx++) { /* ... A^T */
                    float *dst = out + (size_t)(ty * tx_n + tx) * np;
                    for (int l = 0; l < a; l++) {
                        lanes o[MAX_A];
                        a_step(m, r[l] + m * tx, o);
                        for (int k = 0; k < a; k++)
                            store_lanes(dst + (size_t)(a * l + k) * plane_stride, o[k], np);
                    }
                }
            }
        }
}

static void gradient_transform(const struct conv_shape *s, int c, const float *dy, int n0, int nc,
                               float *z)
{
#define CALL(m) gradient_transform_m(s, c, dy, n0, nc, z, m)
    FOR_TILE(s, CALL);
#undef CALL
}

/* ---- the three passes --------------------------------------------------------
 * Each runs its 36 GEMMs, one per tile position, on the threads in turn: they are
 * independent, and OpenBLAS runs single-threaded inside a parallel region. The
 * filter gradient's GEMMs (a cout x cin output from a long K = P) run much faster so
 * than split inside OpenBLAS. Whole calls also round the same for any thread count. */

static size_t chunk_tiles(const struct conv_shape *s, int nc)
{
    return (size_t)nc * tiles_y(s) * tiles_x(s);
}

bool winograd_groups_chunks(const struct conv_shape *s)
{
    return winograd_filter_floats(s) >= WINOGRAD_GROUP_BANK_FLOATS;
}

size_t winograd_group_floats(const struct conv_shape *s, int channels, int nc)
{
    return (size_t)positions(s) * position_stride(channels, chunk_tiles(s, nc));
}

/* dst = (or +=, accumulate) the convolution t of src by the transformed bank u, for
 * each chunk of the group: every chunk's input transformed (each into its own part
 * of work), then each position's GEMMs for every chunk in turn on one thread, then
 * every chunk's products transformed back (each from its own part of out). Each
 * chunk's GEMMs and transforms are the calls a group of one makes, so grouping
 * changes no bits. */
static void filter_group(const struct conv_shape *t, const float *u, const float *src,
                         const struct wino_chunk *group, int count, float *dst, bool accumulate,
                         float *work, float *out)
{
    const int npos = positions(t);
    float *v[WINOGRAD_MAX_GROUP], *m[WINOGRAD_MAX_GROUP];
    for (int c = 0; c < count; c++) {
        v[c] = c ? v[c - 1] + winograd_group_floats(t, t->cin, group[c - 1].nc) : work;
        m[c] = c ? m[c - 1] + winograd_group_floats(t, t->cout, group[c - 1].nc) : out;
        input_transform(t, t->cin, src, group[c].n0, group[c].nc, v[c]);
    }
#pragma omp parallel for schedule(static)
    for (int xi = 0; xi < npos; xi++)
        for (int c = 0; c < count; c++) {
            const size_t P = chunk_tiles(t, group[c].nc);
            const size_t sv = position_stride(t->cin, P), sm = position_stride(t->cout, P);
            gemm(false, false, t->cout, (int)P, t->cin, 1.0f, u + (size_t)xi * t->cout * t->cin,
                 t->cin, v[c] + xi * sv, (int)P, 1.0f, m[c] + xi * sm, (int)P);
        }
    for (int c = 0; c < count; c++)
        output_transform(t, t->cout, m[c], group[c].n0, group[c].nc, dst, accumulate);
}

void winograd_forward(const struct conv_shape *s, const float *u, const float *x,
                      const struct wino_chunk *group, int count, float *y, float *work, float *out)
{
    filter_group(s, u, x, group, count, y, false, work, out);
}

void winograd_backward_data(const struct conv_shape *s, const float *u_flipped, const float *dy,
                            const struct wino_chunk *group, int count, float *dx, bool accumulate,
                            float *work, float *out)
{
    /* The forward pass of a conv from cout to cin channels on dy. Same tiles: the map
     * keeps its size (stride 1, pad 1). */
    struct conv_shape t = *s;
    t.cin = s->cout;
    t.cout = s->cin;
    filter_group(&t, u_flipped, dy, group, count, dx, accumulate, work, out);
}

void winograd_backward_filter(const struct conv_shape *s, const float *x, const float *dy, int n0,
                              int nc, float beta, float *du, float *work)
{
    const size_t P = chunk_tiles(s, nc);
    const int npos = positions(s);
    const size_t sv = position_stride(s->cin, P), sz = position_stride(s->cout, P);
    float *v = work, *z = work + npos * sv;
    input_transform(s, s->cin, x, n0, nc, v);
    gradient_transform(s, s->cout, dy, n0, nc, z);
#pragma omp parallel for schedule(static)
    for (int xi = 0; xi < npos; xi++)
        gemm(false, true, s->cout, s->cin, (int)P, 1.0f, z + xi * sz, (int)P, v + xi * sv, (int)P,
             beta, du + (size_t)xi * s->cout * s->cin, s->cin);
}
