/* data: Fashion-MNIST in memory, the distributed sampler and batch assembly.
 *
 * The files are the IDX pairs of https://github.com/zalandoresearch/fashion-mnist
 * (read by idx.c). The sampler implements the policy stated in data.h. The resize
 * reproduces Pillow's Image.resize(size, Image.BILINEAR) on 8-bit "L" images, i.e.
 * libImaging/Resample.c: precompute_coeffs() builds one triangle-filter window per
 * output coordinate, normalize_coeffs_8bpc() turns the weights into fixed point with
 * PRECISION_BITS = 22, and ImagingResampleInner() runs the horizontal pass into a
 * uint8 intermediate, then the vertical pass, skipping a pass whose size is unchanged.
 * That is what torchvision's transforms.Resize does to FashionMNIST's PIL images.
 * Augmentation follows torchvision's RandomCrop, RandomHorizontalFlip and
 * RandomErasing (transforms.py), with draws from rng.h instead of torch's generator. */
#include "data.h"

#include "error.h"
#include "idx.h"
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------ data set */

#define DATA_MAX_FILE_BYTES ((size_t)1 << 30)

static char *join_path(const char *dir, const char *name)
{
    int n = snprintf(NULL, 0, "%s/%s", dir, name);
    CHECK(n >= 0, "cannot format path");
    char *p = xmalloc((size_t)n + 1);
    snprintf(p, (size_t)n + 1, "%s/%s", dir, name);
    return p;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* "<dir>/<base>.gz" if present, else "<dir>/<base>"; neither is a usage error. A .gz
 * that exists but cannot be read is reported as such rather than silently skipped. */
static char *find_data_file(const char *dir, const char *base)
{
    char name[64];
    snprintf(name, sizeof name, "%s.gz", base);
    char *gz = join_path(dir, name);
    if (file_exists(gz)) return gz;
    char *raw = join_path(dir, base);
    if (file_exists(raw)) {
        free(gz);
        return raw;
    }
    FAIL_INPUT("data file '%s' not found, nor its uncompressed form (set [data] dir or "
               "RESNET_DDP_DATA to the directory holding the Fashion-MNIST IDX files)",
               gz);
}

static void read_or_fail(const char *path, uint8_t **buf, size_t *len)
{
    char msg[512];
    if (idx_read_file(path, DATA_MAX_FILE_BYTES, buf, len, msg, sizeof msg))
        FAIL_INPUT("%s: %s", path, msg);
}

void dataset_load(struct dataset *ds, const char *dir, bool train, int64_t limit, int num_classes)
{
    CHECK(num_classes > 0, "num_classes = %d", num_classes);
    memset(ds, 0, sizeof *ds);
    const char *prefix = train ? "train" : "t10k";
    char base[64];
    snprintf(base, sizeof base, "%s-images-idx3-ubyte", prefix);
    char *images_path = find_data_file(dir, base);
    snprintf(base, sizeof base, "%s-labels-idx1-ubyte", prefix);
    char *labels_path = find_data_file(dir, base);

    char msg[512];
    uint8_t *buf;
    size_t len;

    /* The parse keeps only `limit` images, but the count check below compares whole
     * files, so the file's image count comes from its validated size (16-byte header). */
    struct idx_images im;
    read_or_fail(images_path, &buf, &len);
    if (idx_parse_images(buf, len, limit, &im, msg, sizeof msg))
        FAIL_INPUT("%s: %s", images_path, msg);
    int64_t file_images = (int64_t)((len - 16) / ((size_t)im.rows * (size_t)im.cols));
    free(buf);

    struct idx_labels lb;
    read_or_fail(labels_path, &buf, &len);
    if (idx_parse_labels(buf, len, 0, &lb, msg, sizeof msg))
        FAIL_INPUT("%s: %s", labels_path, msg);
    free(buf);

    if (lb.count != file_images)
        FAIL_INPUT("%s: holds %lld labels but %s holds %lld images, expected equal counts",
                   labels_path, (long long)lb.count, images_path, (long long)file_images);
    if (file_images == 0) FAIL_INPUT("%s: holds no images", images_path);
    for (int64_t i = 0; i < lb.count; i++)
        if (lb.labels[i] >= num_classes)
            FAIL_INPUT("%s: label %d at index %lld is not below [model] num_classes = %d",
                       labels_path, lb.labels[i], (long long)i, num_classes);

    ds->count = im.count;
    ds->rows = im.rows;
    ds->cols = im.cols;
    ds->images = im.pixels;
    ds->labels = lb.labels; /* only the first im.count are used */
    free(images_path);
    free(labels_path);
}

void dataset_free(struct dataset *ds)
{
    free(ds->images);
    free(ds->labels);
    memset(ds, 0, sizeof *ds);
}

/* ------------------------------------------------------------------ sampler */

/* RNG stream of epoch e's permutation: "ZMPLER" tag in the high bytes, epoch below. */
#define SAMPLER_STREAM UINT64_C(0x5A4D504C45520000)

void sampler_init(struct sampler *s, int64_t count, int global_batch, uint64_t seed, bool shuffle)
{
    CHECK(count > 0, "sampler over %lld images", (long long)count);
    CHECK(global_batch > 0, "global batch %d", global_batch);
    s->count = count;
    s->global_batch = global_batch;
    s->seed = seed;
    s->shuffle = shuffle;
    s->perm = xcalloc((size_t)count, sizeof *s->perm);
    for (int64_t i = 0; i < count; i++) s->perm[i] = i;
    s->perm_epoch = -1;
}

void sampler_free(struct sampler *s)
{
    free(s->perm);
    memset(s, 0, sizeof *s);
}

/* Fisher-Yates from the identity, i = n-1 down to 1, swapping i with
 * j = rng_below(seed, SAMPLER_STREAM + epoch, i, i + 1): a pure function of
 * (seed, epoch), whatever epochs were drawn before and however many ranks there are. */
static void sampler_shuffle(struct sampler *s, int64_t epoch)
{
    int64_t *p = s->perm;
    for (int64_t i = 0; i < s->count; i++) p[i] = i;
    uint64_t stream = SAMPLER_STREAM + (uint64_t)epoch;
    for (int64_t i = s->count - 1; i > 0; i--) {
        int64_t j = (int64_t)rng_below(s->seed, stream, (uint64_t)i, (uint64_t)i + 1);
        int64_t t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    s->perm_epoch = epoch;
}

int64_t sampler_steps_per_epoch(const struct sampler *s)
{
    return (s->count + s->global_batch - 1) / s->global_batch;
}

int sampler_global_count(const struct sampler *s, int64_t step)
{
    CHECK(step >= 0 && step < sampler_steps_per_epoch(s), "step %lld out of range 0..%lld",
          (long long)step, (long long)sampler_steps_per_epoch(s) - 1);
    int64_t left = s->count - step * s->global_batch;
    return left < s->global_batch ? (int)left : s->global_batch;
}

int sampler_rank_offset(int global_count, int rank, int world)
{
    int base = global_count / world, extra = global_count % world;
    return rank * base + (rank < extra ? rank : extra);
}

int sampler_rank_batch(struct sampler *s, int64_t epoch, int64_t step, int rank, int world,
                       int64_t *indices)
{
    CHECK(world > 0 && rank >= 0 && rank < world, "rank %d of %d", rank, world);
    CHECK(epoch >= 0, "epoch %lld", (long long)epoch);
    int g = sampler_global_count(s, step);
    if (s->shuffle && s->perm_epoch != epoch) sampler_shuffle(s, epoch);
    int n = g / world + (rank < g % world ? 1 : 0);
    const int64_t *src = s->perm + step * s->global_batch + sampler_rank_offset(g, rank, world);
    for (int i = 0; i < n; i++) indices[i] = src[i];
    return n;
}

int sampler_rank_shards(struct sampler *s, int64_t epoch, int64_t step, int rank, int world,
                        int shard_size, int64_t *indices)
{
    if (shard_size <= 0) return sampler_rank_batch(s, epoch, step, rank, world, indices);
    CHECK(world > 0 && rank >= 0 && rank < world, "rank %d of %d", rank, world);
    int g = sampler_global_count(s, step);
    if (s->shuffle && s->perm_epoch != epoch) sampler_shuffle(s, epoch);
    int shards = (g + shard_size - 1) / shard_size;
    int first = sampler_rank_offset(shards, rank, world);
    int count = shards / world + (rank < shards % world ? 1 : 0);
    int lo = first * shard_size, hi = (first + count) * shard_size;
    if (hi > g) hi = g;
    if (lo > g) lo = g;
    const int64_t *src = s->perm + step * s->global_batch + lo;
    for (int i = 0; i < hi - lo; i++) indices[i] = src[i];
    return hi - lo;
}

/* ------------------------------------------------------------------ resize */

#define RESIZE_PRECISION_BITS (32 - 8 - 2)

static double bilinear_filter(double x)
{
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Pillow's precompute_coeffs() for the bilinear filter (support 1) followed by
 * normalize_coeffs_8bpc(). Returns ksize, the row stride of *coef. */
static int precompute_coeffs(int in_size, int out_size, int **bounds_out, int32_t **coef_out)
{
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    int *bounds = xcalloc((size_t)out_size * 2, sizeof *bounds);
    int32_t *coef = xcalloc((size_t)out_size * (size_t)ksize, sizeof *coef);
    double *w = xcalloc((size_t)ksize, sizeof *w);
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale;
        double ss = 1.0 / filterscale;
        /* (int) truncates toward zero, exactly as Pillow rounds here. */
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double ww = 0.0;
        for (int x = 0; x < xmax; x++) {
            w[x] = bilinear_filter((x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        for (int x = 0; x < xmax; x++) {
            double k = ww != 0.0 ? w[x] / ww : w[x];
            coef[(size_t)xx * ksize + x] =
                (int32_t)(k < 0 ? k * (1 << RESIZE_PRECISION_BITS) - 0.5
                                : k * (1 << RESIZE_PRECISION_BITS) + 0.5);
        }
        bounds[xx * 2 + 0] = xmin;
        bounds[xx * 2 + 1] = xmax;
    }
    free(w);
    *bounds_out = bounds;
    *coef_out = coef;
    return ksize;
}

void resizer_init(struct resizer *r, int in_rows, int in_cols, int out)
{
    CHECK(in_rows > 0 && in_cols > 0 && out >= 0, "resize %dx%d -> %d", in_rows, in_cols, out);
    memset(r, 0, sizeof *r);
    r->in_rows = in_rows;
    r->in_cols = in_cols;
    r->out_rows = out ? out : in_rows;
    r->out_cols = out ? out : in_cols;
    if (r->out_cols != in_cols)
        r->xmax_h = precompute_coeffs(in_cols, r->out_cols, &r->bounds_h, &r->coef_h);
    if (r->out_rows != in_rows)
        r->xmax_v = precompute_coeffs(in_rows, r->out_rows, &r->bounds_v, &r->coef_v);
    r->tmp = xcalloc((size_t)in_rows * (size_t)r->out_cols, 1);
    r->out8 = xcalloc((size_t)r->out_rows * (size_t)r->out_cols, 1);
}

void resizer_free(struct resizer *r)
{
    free(r->bounds_h);
    free(r->bounds_v);
    free(r->coef_h);
    free(r->coef_v);
    free(r->tmp);
    free(r->out8);
    memset(r, 0, sizeof *r);
}

/* Pillow's clip8(): round-to-nearest already added as 1 << (PRECISION_BITS - 1). */
static uint8_t clip8(int32_t v)
{
    if (v >= (INT32_C(1) << RESIZE_PRECISION_BITS << 8)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> RESIZE_PRECISION_BITS);
}

/* Weights of a bilinear window are non-negative and sum to about 2^22, so the int32
 * accumulator (as in Pillow) stays below 255 * 2^22 + 2^21 < 2^31. */
static void resample_horizontal(uint8_t *dst, const uint8_t *src, int rows, int in_cols,
                                int out_cols, int ksize, const int *bounds, const int32_t *coef)
{
    for (int y = 0; y < rows; y++) {
        const uint8_t *row = src + (size_t)y * in_cols;
        for (int xx = 0; xx < out_cols; xx++) {
            int xmin = bounds[xx * 2], xmax = bounds[xx * 2 + 1];
            const int32_t *k = coef + (size_t)xx * ksize;
            int32_t ss = INT32_C(1) << (RESIZE_PRECISION_BITS - 1);
            for (int x = 0; x < xmax; x++) ss += row[x + xmin] * k[x];
            dst[(size_t)y * out_cols + xx] = clip8(ss);
        }
    }
}

static void resample_vertical(uint8_t *dst, const uint8_t *src, int cols, int out_rows, int ksize,
                              const int *bounds, const int32_t *coef)
{
    for (int yy = 0; yy < out_rows; yy++) {
        int ymin = bounds[yy * 2], ymax = bounds[yy * 2 + 1];
        const int32_t *k = coef + (size_t)yy * ksize;
        for (int x = 0; x < cols; x++) {
            int32_t ss = INT32_C(1) << (RESIZE_PRECISION_BITS - 1);
            for (int y = 0; y < ymax; y++) ss += src[(size_t)(y + ymin) * cols + x] * k[y];
            dst[(size_t)yy * cols + x] = clip8(ss);
        }
    }
}

const uint8_t *resizer_apply(struct resizer *r, const uint8_t *in)
{
    bool need_h = r->coef_h != NULL, need_v = r->coef_v != NULL;
    if (!need_h && !need_v) {
        memcpy(r->out8, in, (size_t)r->in_rows * (size_t)r->in_cols);
        return r->out8;
    }
    const uint8_t *src = in;
    if (need_h) {
        uint8_t *dst = need_v ? r->tmp : r->out8;
        resample_horizontal(dst, in, r->in_rows, r->in_cols, r->out_cols, r->xmax_h, r->bounds_h,
                            r->coef_h);
        src = dst;
    }
    if (need_v)
        resample_vertical(r->out8, src, r->out_cols, r->out_rows, r->xmax_v, r->bounds_v,
                          r->coef_v);
    return r->out8;
}

/* ------------------------------------------------------------------ augmentation */

/* RNG stream of one augmentation in one epoch: "AG" tag in the two high bytes, the
 * augmentation below it, the epoch in the low 40 bits ([train] epochs <= 100000). */
#define AUGMENT_STREAM UINT64_C(0x4147000000000000)
enum { AUGMENT_CROP = 1, AUGMENT_FLIP, AUGMENT_ERASE };

/* Counters per sample and augmentation: the erase takes 1 + 2 * tries + 2 draws. */
#define AUGMENT_DRAWS 32
_Static_assert(1 + 2 * AUGMENT_ERASE_TRIES + 2 <= AUGMENT_DRAWS, "erase draws overlap");

struct augment_rng {
    uint64_t seed, stream, counter;
};

static struct augment_rng augment_rng(const struct augment *a, int kind, int64_t epoch,
                                      int64_t index)
{
    return (struct augment_rng){a->seed, AUGMENT_STREAM | (uint64_t)kind << 40 | (uint64_t)epoch,
                                (uint64_t)index * AUGMENT_DRAWS};
}

/* RandomErasing.get_params: a target area and a log-uniform aspect ratio, rounded as
 * Python's round() (half to even, rint's default mode); the rectangle must be
 * strictly smaller than the image in both directions. */
static void draw_erase(struct augment_rng g, int rows, int cols, struct augment_params *p)
{
    const double area = (double)rows * cols, lo = log(0.3), hi = log(3.3);
    for (int t = 0; t < AUGMENT_ERASE_TRIES; t++) {
        double s = area * (0.02 + 0.31 * rng_uniform(g.seed, g.stream, g.counter + 1 + 2 * t));
        double r = exp(lo + (hi - lo) * rng_uniform(g.seed, g.stream, g.counter + 2 + 2 * t));
        int h = (int)rint(sqrt(s * r)), w = (int)rint(sqrt(s / r));
        if (h >= rows || w >= cols) continue;
        uint64_t c = g.counter + 1 + 2 * AUGMENT_ERASE_TRIES;
        p->ey = (int)rng_below(g.seed, g.stream, c, (uint64_t)(rows - h + 1));
        p->ex = (int)rng_below(g.seed, g.stream, c + 1, (uint64_t)(cols - w + 1));
        p->eh = h;
        p->ew = w;
        return;
    }
}

struct augment_params augment_draw(const struct augment *a, int64_t epoch, int64_t index, int rows,
                                   int cols)
{
    CHECK(epoch >= 0 && epoch < (INT64_C(1) << 40) && index >= 0, "augment epoch %lld index %lld",
          (long long)epoch, (long long)index);
    struct augment_params p = {0};
    if (a->crop > 0) {
        struct augment_rng g = augment_rng(a, AUGMENT_CROP, epoch, index);
        uint64_t n = 2 * (uint64_t)a->crop + 1;
        p.pad = a->crop;
        p.dy = (int)rng_below(g.seed, g.stream, g.counter, n);
        p.dx = (int)rng_below(g.seed, g.stream, g.counter + 1, n);
    }
    if (a->flip) {
        struct augment_rng g = augment_rng(a, AUGMENT_FLIP, epoch, index);
        p.flip = rng_uniform(g.seed, g.stream, g.counter) < 0.5;
    }
    if (a->erase > 0) {
        struct augment_rng g = augment_rng(a, AUGMENT_ERASE, epoch, index);
        if (rng_uniform(g.seed, g.stream, g.counter) < a->erase) draw_erase(g, rows, cols, &p);
    }
    return p;
}

/* out(y, x) = in(y + sy, x + sx), 0 outside, in place: rows are visited so that each
 * reads a row not yet written, and memmove copes with the overlap within a row. */
static void shift_image(float *img, int rows, int cols, int sy, int sx)
{
    if (sy == 0 && sx == 0) return;
    int to = sx < 0 ? -sx : 0, from = sx > 0 ? sx : 0;
    int n = cols - to - from;
    for (int k = 0; k < rows; k++) {
        int y = sy > 0 ? k : rows - 1 - k;
        float *dst = img + (size_t)y * cols;
        int src_y = y + sy;
        if (n <= 0 || src_y < 0 || src_y >= rows) {
            memset(dst, 0, (size_t)cols * sizeof *dst);
            continue;
        }
        memmove(dst + to, img + (size_t)src_y * cols + from, (size_t)n * sizeof *dst);
        memset(dst, 0, (size_t)to * sizeof *dst);
        memset(dst + to + n, 0, (size_t)from * sizeof *dst);
    }
}

void augment_apply(float *img, int rows, int cols, const struct augment_params *p)
{
    shift_image(img, rows, cols, p->dy - p->pad, p->dx - p->pad);
    if (p->flip)
        for (int y = 0; y < rows; y++) {
            float *row = img + (size_t)y * cols;
            for (int x = 0, z = cols - 1; x < z; x++, z--) {
                float t = row[x];
                row[x] = row[z];
                row[z] = t;
            }
        }
    for (int y = p->ey; y < p->ey + p->eh; y++)
        for (int x = p->ex; x < p->ex + p->ew; x++) img[(size_t)y * cols + x] = 0.0f;
}

void batch_assemble(const struct dataset *ds, struct resizer *r, const struct augment *aug,
                    int64_t epoch, const int64_t *indices, int n, float *images,
                    int32_t *labels)
{
    CHECK(r->in_rows == ds->rows && r->in_cols == ds->cols,
          "resizer for %dx%d images applied to %dx%d", r->in_rows, r->in_cols, ds->rows,
          ds->cols);
    size_t in_pixels = (size_t)ds->rows * (size_t)ds->cols;
    size_t out_pixels = (size_t)r->out_rows * (size_t)r->out_cols;
    for (int i = 0; i < n; i++) {
        int64_t idx = indices[i];
        CHECK(idx >= 0 && idx < ds->count, "sample index %lld out of range 0..%lld",
              (long long)idx, (long long)ds->count - 1);
        const uint8_t *px = resizer_apply(r, ds->images + (size_t)idx * in_pixels);
        float *dst = images + (size_t)i * out_pixels;
        /* torchvision's ToTensor: float32(pixel) / 255 */
        for (size_t j = 0; j < out_pixels; j++) dst[j] = (float)px[j] / 255.0f;
        if (aug) {
            struct augment_params p = augment_draw(aug, epoch, idx, r->out_rows, r->out_cols);
            augment_apply(dst, r->out_rows, r->out_cols, &p);
        }
        labels[i] = ds->labels[idx];
    }
}
