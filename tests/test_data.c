/* test_data: the distributed sampler, the PIL-compatible bilinear resize and batch
 * assembly (data.c).
 *
 * Resize references come from two places: an independent per-pixel evaluation of the
 * formula of Pillow's libImaging/Resample.c written out below, and pixel values and
 * FNV-1a hashes of whole images produced by Pillow 9.4's
 * Image.frombytes("L", ...).resize((out, out), Image.BILINEAR) on pattern() below. */
#include "data.h"
#include "testutil.h"

#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------ sampler */

static int is_permutation(const int64_t *p, int64_t n)
{
    char *seen = calloc((size_t)n, 1);
    int ok = 1;
    for (int64_t i = 0; i < n && ok; i++) {
        if (p[i] < 0 || p[i] >= n || seen[p[i]]) ok = 0;
        else seen[p[i]] = 1;
    }
    free(seen);
    return ok;
}

/* The whole order of one epoch as seen through rank 0 of a single-rank world. */
static void epoch_order(struct sampler *s, int64_t epoch, int64_t *order)
{
    int64_t pos = 0;
    for (int64_t step = 0; step < sampler_steps_per_epoch(s); step++)
        pos += sampler_rank_batch(s, epoch, step, 0, 1, order + pos);
    EXPECT(pos == s->count, "epoch covers %lld of %lld", (long long)pos, (long long)s->count);
}

static void test_permutation(void)
{
    const int64_t n = 1000;
    int64_t *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
    struct sampler s1, s2, s3;
    sampler_init(&s1, n, 256, 42, true);
    sampler_init(&s2, n, 100, 42, true); /* batch size must not change the order */
    sampler_init(&s3, n, 256, 43, true);

    epoch_order(&s1, 0, a);
    EXPECT(is_permutation(a, n), "epoch 0 order is not a permutation");
    int64_t fixed = 0;
    for (int64_t i = 0; i < n; i++) fixed += a[i] == i;
    EXPECT(fixed < 20, "shuffled order keeps %lld of %lld in place", (long long)fixed,
           (long long)n);

    epoch_order(&s2, 0, b);
    EXPECT(memcmp(a, b, n * sizeof *a) == 0, "same (seed, epoch) gives a different order");

    epoch_order(&s1, 1, b);
    EXPECT(is_permutation(b, n), "epoch 1 order is not a permutation");
    EXPECT(memcmp(a, b, n * sizeof *a) != 0, "epochs 0 and 1 have the same order");

    /* Going back to an epoch recomputes the same order (nothing depends on history). */
    epoch_order(&s1, 0, c);
    EXPECT(memcmp(a, c, n * sizeof *a) == 0, "epoch 0 order changed after epoch 1");

    epoch_order(&s3, 0, c);
    EXPECT(memcmp(a, c, n * sizeof *a) != 0, "seeds 42 and 43 give the same order");

    struct sampler id;
    sampler_init(&id, n, 256, 42, false);
    epoch_order(&id, 3, c);
    int identity = 1;
    for (int64_t i = 0; i < n; i++) identity &= c[i] == i;
    EXPECT(identity, "shuffle=false is not the identity order");

    sampler_free(&s1);
    sampler_free(&s2);
    sampler_free(&s3);
    sampler_free(&id);
    free(a);
    free(b);
    free(c);
}

static void test_steps(void)
{
    struct sampler s;
    sampler_init(&s, 1000, 256, 1, true);
    EXPECT(sampler_steps_per_epoch(&s) == 4, "steps %lld", (long long)sampler_steps_per_epoch(&s));
    EXPECT(sampler_global_count(&s, 0) == 256, "step 0 holds %d", sampler_global_count(&s, 0));
    EXPECT(sampler_global_count(&s, 2) == 256, "step 2 holds %d", sampler_global_count(&s, 2));
    EXPECT(sampler_global_count(&s, 3) == 232, "last step holds %d", sampler_global_count(&s, 3));
    sampler_free(&s);

    sampler_init(&s, 1024, 256, 1, true);
    EXPECT(sampler_steps_per_epoch(&s) == 4, "exact fit: steps %lld",
           (long long)sampler_steps_per_epoch(&s));
    EXPECT(sampler_global_count(&s, 3) == 256, "exact fit: last holds %d",
           sampler_global_count(&s, 3));
    sampler_free(&s);

    sampler_init(&s, 5, 256, 1, true);
    EXPECT(sampler_steps_per_epoch(&s) == 1, "tiny set: steps %lld",
           (long long)sampler_steps_per_epoch(&s));
    EXPECT(sampler_global_count(&s, 0) == 5, "tiny set: holds %d", sampler_global_count(&s, 0));
    sampler_free(&s);

    EXPECT(sampler_rank_offset(10, 0, 3) == 0, "offset");
    EXPECT(sampler_rank_offset(10, 1, 3) == 4, "offset %d", sampler_rank_offset(10, 1, 3));
    EXPECT(sampler_rank_offset(10, 2, 3) == 7, "offset %d", sampler_rank_offset(10, 2, 3));
    EXPECT(sampler_rank_offset(3, 7, 8) == 3, "offset %d", sampler_rank_offset(3, 7, 8));
}

/* For each world size, the rank slices of every step, in rank order, are exactly the
 * global batch of the single-rank view, contiguous at sampler_rank_offset(). */
static void check_split(int64_t count, int batch, int world)
{
    struct sampler one, many;
    sampler_init(&one, count, batch, 7, true);
    sampler_init(&many, count, batch, 7, true);
    int64_t *global = malloc((size_t)batch * sizeof *global);
    int room = (batch + world - 1) / world;
    int64_t *slice = malloc((size_t)room * sizeof *slice);
    int64_t *seen = calloc((size_t)count, sizeof *seen);
    for (int64_t epoch = 0; epoch < 2; epoch++) {
        for (int64_t step = 0; step < sampler_steps_per_epoch(&one); step++) {
            int g = sampler_rank_batch(&one, epoch, step, 0, 1, global);
            EXPECT(g == sampler_global_count(&one, step), "global count");
            int pos = 0, lo = batch, hi = 0;
            for (int r = 0; r < world; r++) {
                int n = sampler_rank_batch(&many, epoch, step, r, world, slice);
                EXPECT(n <= room, "rank %d takes %d > room %d", r, n, room);
                EXPECT(pos == sampler_rank_offset(g, r, world),
                       "world %d rank %d: slice at %d, offset says %d", world, r, pos,
                       sampler_rank_offset(g, r, world));
                for (int i = 0; i < n && pos + i < g; i++)
                    EXPECT(slice[i] == global[pos + i],
                           "world %d step %lld rank %d: [%d] = %lld, global has %lld", world,
                           (long long)step, r, i, (long long)slice[i],
                           (long long)global[pos + i]);
                for (int i = 0; i < n; i++)
                    if (slice[i] >= 0 && slice[i] < count) seen[slice[i]]++;
                pos += n;
                if (n < lo) lo = n;
                if (n > hi) hi = n;
            }
            EXPECT(pos == g, "world %d step %lld: ranks hold %d of %d", world, (long long)step,
                   pos, g);
            EXPECT(hi - lo <= 1, "world %d step %lld: rank counts %d..%d", world,
                   (long long)step, lo, hi);
        }
    }
    for (int64_t i = 0; i < count; i++)
        EXPECT(seen[i] == 2, "world %d: index %lld visited %lld times in 2 epochs", world,
               (long long)i, (long long)seen[i]);
    free(global);
    free(slice);
    free(seen);
    sampler_free(&one);
    sampler_free(&many);
}

static void test_split(void)
{
    const int worlds[] = {1, 2, 3, 4, 8};
    for (size_t w = 0; w < sizeof worlds / sizeof worlds[0]; w++) {
        check_split(1000, 256, worlds[w]);
        check_split(1001, 10, worlds[w]);
        check_split(5, 4, worlds[w]); /* last batch of 1: most ranks get nothing */
    }
}

/* ------------------------------------------------------------------ resize */

/* Deterministic 8-bit pattern with sharp edges; Pillow saw the same bytes. */
static void pattern(uint8_t *img, int rows, int cols)
{
    for (int y = 0; y < rows; y++)
        for (int x = 0; x < cols; x++)
            img[y * cols + x] = (uint8_t)(((x * 37 + y * 91 + x * y * 13) ^ (x * 5)) & 255);
}

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

/* Fixed-point weight of input coordinate `x` for output coordinate `o` of a pass from
 * `in` to `out` samples, evaluated from scratch (Pillow: precompute_coeffs then
 * normalize_coeffs_8bpc, triangle filter of support 1 widened by the scale). */
static int32_t ref_weight(int in, int out, int o, int x)
{
    double scale = (double)in / out;
    double fs = scale > 1.0 ? scale : 1.0;
    double center = (o + 0.5) * scale;
    int lo = (int)(center - fs + 0.5);
    int hi = (int)(center + fs + 0.5);
    if (lo < 0) lo = 0;
    if (hi > in) hi = in;
    if (x < lo || x >= hi) return 0;
    double sum = 0.0, wx = 0.0;
    for (int i = lo; i < hi; i++) {
        double t = fabs((i - center + 0.5) / fs);
        double w = t < 1.0 ? 1.0 - t : 0.0;
        sum += w;
        if (i == x) wx = w;
    }
    return (int32_t)(wx / sum * 4194304.0 + 0.5);
}

static uint8_t ref_clip(int64_t acc)
{
    int64_t v = (acc + 2097152) >> 22;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Output pixel (oy, ox) of a square `out` resize: horizontal pass rounded to uint8, then
 * vertical, each pass skipped when its size does not change. */
static uint8_t ref_pixel(const uint8_t *img, int rows, int cols, int out, int oy, int ox)
{
    uint8_t col[4096];
    for (int y = 0; y < rows; y++) {
        if (cols == out) {
            col[y] = img[y * cols + ox];
            continue;
        }
        int64_t acc = 0;
        for (int x = 0; x < cols; x++)
            acc += (int64_t)img[y * cols + x] * ref_weight(cols, out, ox, x);
        col[y] = ref_clip(acc);
    }
    if (rows == out) return col[oy];
    int64_t acc = 0;
    for (int y = 0; y < rows; y++) acc += (int64_t)col[y] * ref_weight(rows, out, oy, y);
    return ref_clip(acc);
}

/* The same without any rounding: the ideal separable bilinear value. */
static double ideal_pixel(const uint8_t *img, int rows, int cols, int out, int oy, int ox)
{
    double acc = 0.0;
    for (int y = 0; y < rows; y++) {
        double wy = rows == out ? (y == oy) : ref_weight(rows, out, oy, y) / 4194304.0;
        for (int x = 0; x < cols; x++) {
            double wx = cols == out ? (x == ox) : ref_weight(cols, out, ox, x) / 4194304.0;
            acc += wy * wx * img[y * cols + x];
        }
    }
    return acc;
}

struct pil_case {
    int rows, cols, out;
    uint32_t hash;
    long sum;
    int npx;
    int px[6][3]; /* y, x, value */
};

/* From Pillow 9.4.0 (see the top of the file). */
static const struct pil_case pil_cases[] = {
    {28, 28, 96, 0x3458a937u, 1131162, 6,
     {{0, 0, 0}, {0, 95, 96}, {95, 0, 153}, {48, 32, 168}, {95, 95, 2}, {17, 50, 57}}},
    {28, 28, 20, 0x72c542f0u, 49207, 6,
     {{0, 0, 43}, {0, 19, 91}, {19, 0, 107}, {10, 6, 163}, {19, 19, 71}, {17, 10, 178}}},
    {20, 28, 28, 0x33151cb3u, 95600, 6, /* vertical pass only */
     {{0, 0, 0}, {0, 27, 96}, {27, 0, 193}, {14, 9, 80}, {27, 27, 50}, {17, 22, 180}}},
    {28, 20, 28, 0xba08677bu, 96582, 6, /* horizontal pass only */
     {{0, 0, 0}, {0, 27, 224}, {27, 0, 153}, {14, 9, 62}, {27, 27, 58}, {17, 22, 112}}},
    {28, 28, 1, 0xfe0c521au, 123, 1, {{0, 0, 123}}},
};

static void test_resize_pil(void)
{
    for (size_t c = 0; c < sizeof pil_cases / sizeof pil_cases[0]; c++) {
        const struct pil_case *pc = &pil_cases[c];
        uint8_t *img = malloc((size_t)pc->rows * pc->cols);
        pattern(img, pc->rows, pc->cols);
        struct resizer r;
        resizer_init(&r, pc->rows, pc->cols, pc->out);
        EXPECT(r.out_rows == pc->out && r.out_cols == pc->out, "output size");
        const uint8_t *o = resizer_apply(&r, img);
        size_t n = (size_t)pc->out * pc->out;
        long sum = 0;
        for (size_t i = 0; i < n; i++) sum += o[i];
        EXPECT(fnv1a(o, n) == pc->hash && sum == pc->sum,
               "%dx%d -> %d: hash 0x%08x sum %ld, Pillow 0x%08x sum %ld", pc->rows, pc->cols,
               pc->out, (unsigned)fnv1a(o, n), sum, (unsigned)pc->hash, pc->sum);
        for (int k = 0; k < pc->npx; k++) {
            int y = pc->px[k][0], x = pc->px[k][1], want = pc->px[k][2];
            EXPECT(o[y * pc->out + x] == want, "%dx%d -> %d: pixel (%d,%d) = %d, Pillow %d",
                   pc->rows, pc->cols, pc->out, y, x, o[y * pc->out + x], want);
        }
        /* Every pixel against the independent formula, and within rounding of the ideal. */
        int mismatches = 0, far = 0;
        for (int y = 0; y < pc->out; y++)
            for (int x = 0; x < pc->out; x++) {
                uint8_t got = o[y * pc->out + x];
                if (got != ref_pixel(img, pc->rows, pc->cols, pc->out, y, x)) mismatches++;
                if (fabs(got - ideal_pixel(img, pc->rows, pc->cols, pc->out, y, x)) > 1.0) far++;
            }
        EXPECT(mismatches == 0, "%dx%d -> %d: %d pixels differ from the reference formula",
               pc->rows, pc->cols, pc->out, mismatches);
        EXPECT(far == 0, "%dx%d -> %d: %d pixels more than 1 from the unrounded value",
               pc->rows, pc->cols, pc->out, far);
        resizer_free(&r);
        free(img);
    }
}

static void test_resize_properties(void)
{
    uint8_t img[28 * 28];
    pattern(img, 28, 28);
    struct resizer r;

    resizer_init(&r, 28, 28, 0);
    EXPECT(r.out_rows == 28 && r.out_cols == 28, "out 0 keeps 28x28");
    EXPECT(memcmp(resizer_apply(&r, img), img, sizeof img) == 0, "out 0 is not the identity");
    resizer_free(&r);

    resizer_init(&r, 28, 28, 28);
    EXPECT(memcmp(resizer_apply(&r, img), img, sizeof img) == 0, "out 28 is not the identity");
    resizer_free(&r);

    resizer_init(&r, 28, 28, 96);
    EXPECT(r.xmax_h == 3 && r.xmax_v == 3, "upscale window %d/%d, Pillow uses 3", r.xmax_h,
           r.xmax_v);
    uint8_t flat[28 * 28];
    memset(flat, 137, sizeof flat);
    const uint8_t *o = resizer_apply(&r, flat);
    int constant = 1;
    for (int i = 0; i < 96 * 96; i++) constant &= o[i] == 137;
    EXPECT(constant, "a constant image does not stay constant");

    /* Left half black, right half white: the ends keep 0 and 255, nothing overshoots,
     * and every row is the same monotone ramp. */
    uint8_t halves[28 * 28];
    for (int y = 0; y < 28; y++)
        for (int x = 0; x < 28; x++) halves[y * 28 + x] = x < 14 ? 0 : 255;
    o = resizer_apply(&r, halves);
    int lo = 255, hi = 0, monotone = 1, rows_equal = 1;
    for (int y = 0; y < 96; y++)
        for (int x = 0; x < 96; x++) {
            int v = o[y * 96 + x];
            if (v < lo) lo = v;
            if (v > hi) hi = v;
            if (x > 0 && v < o[y * 96 + x - 1]) monotone = 0;
            if (v != o[x]) rows_equal = 0;
        }
    EXPECT(lo == 0 && hi == 255, "min/max %d/%d, want 0/255", lo, hi);
    EXPECT(monotone && rows_equal, "step edge is not a monotone ramp repeated on every row");

    /* Values in [30, 200] stay in [30, 200]. */
    uint8_t mid[28 * 28];
    for (int i = 0; i < 28 * 28; i++) mid[i] = (uint8_t)(30 + img[i] * 170 / 255);
    o = resizer_apply(&r, mid);
    lo = 255;
    hi = 0;
    for (int i = 0; i < 96 * 96; i++) {
        if (o[i] < lo) lo = o[i];
        if (o[i] > hi) hi = o[i];
    }
    EXPECT(lo >= 30 && hi <= 200, "range [30,200] became [%d,%d]", lo, hi);
    resizer_free(&r);
}

/* ------------------------------------------------------------------ batches */

static void test_batch_assemble(void)
{
    struct dataset ds = {.count = 5, .rows = 28, .cols = 28};
    ds.images = malloc(5 * 28 * 28);
    ds.labels = malloc(5);
    for (int i = 0; i < 5; i++) {
        pattern(ds.images + i * 784, 28, 28);
        for (int j = 0; j < 784; j++)
            ds.images[i * 784 + j] = (uint8_t)(ds.images[i * 784 + j] + 50 * i);
        ds.labels[i] = (uint8_t)(9 - i);
    }
    const int64_t idx[3] = {3, 0, 4};
    float images[3 * 96 * 96];
    int32_t labels[3];

    struct resizer r;
    resizer_init(&r, 28, 28, 0);
    batch_assemble(&ds, &r, NULL, 0, idx, 3, images, labels);
    int exact = 1, in_range = 1;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 784; j++) {
            float v = images[i * 784 + j];
            exact &= v == (float)ds.images[idx[i] * 784 + j] / 255.0f;
            in_range &= v >= 0.0f && v <= 1.0f;
        }
    EXPECT(exact && in_range, "unresized batch is not pixel/255 in [0,1]");
    EXPECT(labels[0] == 6 && labels[1] == 9 && labels[2] == 5, "labels %d %d %d", labels[0],
           labels[1], labels[2]);
    resizer_free(&r);

    resizer_init(&r, 28, 28, 96);
    batch_assemble(&ds, &r, NULL, 0, idx, 3, images, labels);
    exact = 1;
    in_range = 1;
    for (int i = 0; i < 3; i++) {
        const uint8_t *o = resizer_apply(&r, ds.images + idx[i] * 784);
        for (int j = 0; j < 96 * 96; j++) {
            float v = images[i * 96 * 96 + j];
            exact &= v == (float)o[j] / 255.0f;
            in_range &= v >= 0.0f && v <= 1.0f;
        }
    }
    EXPECT(exact && in_range, "resized batch is not resized pixel/255 in [0,1]");
    EXPECT(labels[2] == 5, "label %d", labels[2]);
    resizer_free(&r);
    dataset_free(&ds);
}

int main(void)
{
    test_permutation();
    test_steps();
    test_split();
    test_resize_pil();
    test_resize_properties();
    test_batch_assemble();
    return test_summary("test_data");
}
