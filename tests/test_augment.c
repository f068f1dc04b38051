/* test_augment: training-time augmentation (data.c): augment_apply against pixels
 * worked out by hand and against a literal pad-then-crop, the parameter draws
 * (deterministic, in range, with the right frequencies), and batches that are the
 * same on one rank and on two. */
#include "data.h"
#include "testutil.h"

#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------ apply */

#define ROWS 4
#define COLS 5

/* in(y, x) = 10 y + x + 1: every pixel distinct, and its row and column readable. */
static void small_image(float *img)
{
    for (int y = 0; y < ROWS; y++)
        for (int x = 0; x < COLS; x++) img[y * COLS + x] = (float)(10 * y + x + 1);
}

static void expect_image(const char *what, const float *got, const float want[ROWS * COLS])
{
    for (int i = 0; i < ROWS * COLS; i++)
        if (got[i] != want[i]) {
            EXPECT(got[i] == want[i], "%s: pixel (%d, %d) = %g, want %g", what, i / COLS,
                   i % COLS, (double)got[i], (double)want[i]);
            return;
        }
}

static void test_apply_by_hand(void)
{
    float img[ROWS * COLS];

    /* Window at row 1, column 3 of the image padded by 2: out(y, x) = in(y - 1, x + 1). */
    const float crop[ROWS * COLS] = {0,  0,  0,  0,  0,  2,  3,  4,  5,  0,
                                     12, 13, 14, 15, 0,  22, 23, 24, 25, 0};
    small_image(img);
    augment_apply(img, ROWS, COLS, &(struct augment_params){.pad = 2, .dy = 1, .dx = 3});
    expect_image("crop (1, 3) of pad 2", img, crop);

    /* Window at row 3, column 0: out(y, x) = in(y + 1, x - 2). */
    const float crop2[ROWS * COLS] = {0, 0, 11, 12, 13, 0, 0, 21, 22, 23,
                                      0, 0, 31, 32, 33, 0, 0, 0,  0,  0};
    small_image(img);
    augment_apply(img, ROWS, COLS, &(struct augment_params){.pad = 2, .dy = 3, .dx = 0});
    expect_image("crop (3, 0) of pad 2", img, crop2);

    const float flip[ROWS * COLS] = {5,  4,  3,  2,  1,  15, 14, 13, 12, 11,
                                     25, 24, 23, 22, 21, 35, 34, 33, 32, 31};
    small_image(img);
    augment_apply(img, ROWS, COLS, &(struct augment_params){.flip = true});
    expect_image("flip", img, flip);

    const float erase[ROWS * COLS] = {1,  2,  3,  4,  5,  11, 12, 0,  0,  0,
                                      21, 22, 0,  0,  0,  31, 32, 33, 34, 35};
    small_image(img);
    augment_apply(img, ROWS, COLS, &(struct augment_params){.ey = 1, .ex = 2, .eh = 2, .ew = 3});
    expect_image("erase rows 1-2, columns 2-4", img, erase);

    /* All three, in torchvision's order: crop, then flip, then erase. */
    const float all[ROWS * COLS] = {0, 0,  0, 0, 0, 0,  5,  0,  0,  0,
                                    0, 15, 0, 0, 0, 0,  25, 24, 23, 22};
    small_image(img);
    augment_apply(img, ROWS, COLS,
                  &(struct augment_params){.pad = 2, .dy = 1, .dx = 3, .flip = true, .ey = 1,
                                           .ex = 2, .eh = 2, .ew = 3});
    expect_image("crop, flip, erase", img, all);

    float untouched[ROWS * COLS];
    small_image(img);
    small_image(untouched);
    augment_apply(img, ROWS, COLS, &(struct augment_params){.pad = 2, .dy = 2, .dx = 2});
    expect_image("centre window", img, untouched);
}

/* Every window of pad P (also P larger than the image) against torchvision's
 * definition taken literally: pad by P zeros, then cut the size x size window. */
static void test_crop_reference(void)
{
    enum { N = 8, MAXP = 9, SIDE = N + 2 * MAXP };
    float img[N * N], padded[SIDE * SIDE];
    const int pads[] = {1, 3, 9};
    for (size_t k = 0; k < sizeof pads / sizeof pads[0]; k++) {
        int p = pads[k], side = N + 2 * p, bad = 0;
        for (int dy = 0; dy <= 2 * p; dy++)
            for (int dx = 0; dx <= 2 * p; dx++) {
                memset(padded, 0, sizeof padded);
                for (int y = 0; y < N; y++)
                    for (int x = 0; x < N; x++)
                        padded[(y + p) * side + x + p] = img[y * N + x] = (float)(y * N + x + 1);
                augment_apply(img, N, N, &(struct augment_params){.pad = p, .dy = dy, .dx = dx});
                for (int y = 0; y < N; y++)
                    for (int x = 0; x < N; x++)
                        bad += img[y * N + x] != padded[(y + dy) * side + x + dx];
            }
        EXPECT(bad == 0, "pad %d: %d pixels differ from pad-then-crop", p, bad);
    }
}

/* ------------------------------------------------------------------ draws */

static int same_params(const struct augment_params *a, const struct augment_params *b)
{
    return a->pad == b->pad && a->dx == b->dx && a->dy == b->dy && a->flip == b->flip &&
           a->ey == b->ey && a->ex == b->ex && a->eh == b->eh && a->ew == b->ew;
}

static void test_draw_off(void)
{
    const struct augment off = {.seed = 5};
    const struct augment_params none = {0};
    int all_none = 1;
    for (int64_t i = 0; i < 100; i++) {
        struct augment_params p = augment_draw(&off, 3, i, 28, 28);
        all_none &= same_params(&p, &none);
    }
    EXPECT(all_none, "augmentation switched off still draws parameters");
}

static void test_draw_ranges(void)
{
    enum { SAMPLES = 20000, P = 3 };
    const struct augment a = {.seed = 11, .crop = P, .flip = true, .erase = 0.3};
    int seen_dx[2 * P + 1] = {0}, seen_dy[2 * P + 1] = {0}, flips = 0, erased = 0, bad = 0;
    int diagonal = 0;
    int repeat_differs = 0, epoch_same = 0, seed_same = 0;
    const struct augment other_seed = {.seed = 12, .crop = P, .flip = true, .erase = 0.3};
    for (int64_t i = 0; i < SAMPLES; i++) {
        struct augment_params p = augment_draw(&a, 4, i, 28, 28);
        struct augment_params again = augment_draw(&a, 4, i, 28, 28);
        struct augment_params next = augment_draw(&a, 5, i, 28, 28);
        struct augment_params seeded = augment_draw(&other_seed, 4, i, 28, 28);
        repeat_differs += !same_params(&p, &again);
        epoch_same += same_params(&p, &next);
        seed_same += same_params(&p, &seeded);
        if (p.pad != P || p.dx < 0 || p.dx > 2 * P || p.dy < 0 || p.dy > 2 * P) {
            bad++;
            continue;
        }
        seen_dx[p.dx]++;
        seen_dy[p.dy]++;
        diagonal += p.dx == p.dy;
        flips += p.flip;
        if (p.eh == 0 && p.ew == 0) continue;
        erased++;
        double frac = (double)p.eh * p.ew / (28.0 * 28.0), ratio = (double)p.eh / p.ew;
        /* Target fraction 0.02..0.33 and ratio 0.3..3.3, before h and w are rounded. */
        bad += p.eh < 1 || p.ew < 1 || p.eh >= 28 || p.ew >= 28 || p.ey < 0 || p.ex < 0 ||
               p.ey + p.eh > 28 || p.ex + p.ew > 28 || frac < 0.01 || frac > 0.40 ||
               ratio < 0.2 || ratio > 5.0;
    }
    EXPECT(bad == 0, "%d draws out of range", bad);
    EXPECT(repeat_differs == 0, "%d draws changed when repeated", repeat_differs);
    /* Two epochs agree by chance on crop, flip and erase: (1/49) (1/2) (0.7^2) ~ 0.5%. */
    EXPECT(epoch_same < SAMPLES / 50, "%d of %d samples drawn alike in epochs 4 and 5",
           epoch_same, SAMPLES);
    EXPECT(seed_same < SAMPLES / 50, "%d of %d samples drawn alike by seeds 11 and 12",
           seed_same, SAMPLES);
    /* Binomial counts within 5 standard deviations. */
    for (int v = 0; v <= 2 * P; v++)
        EXPECT(fabs(seen_dx[v] - SAMPLES / 7.0) < 5 * sqrt(SAMPLES / 7.0 * 6 / 7) &&
                   fabs(seen_dy[v] - SAMPLES / 7.0) < 5 * sqrt(SAMPLES / 7.0 * 6 / 7),
               "crop offset %d drawn %d (dx) / %d (dy) times of %d", v, seen_dx[v], seen_dy[v],
               SAMPLES);
    EXPECT(fabs(diagonal - SAMPLES / 7.0) < 5 * sqrt(SAMPLES / 7.0 * 6 / 7),
           "dx == dy in %d of %d draws: the offsets are not independent", diagonal, SAMPLES);
    EXPECT(fabs(flips - SAMPLES * 0.5) < 5 * sqrt(SAMPLES * 0.25), "%d flips of %d", flips,
           SAMPLES);
    EXPECT(fabs(erased - SAMPLES * 0.3) < 5 * sqrt(SAMPLES * 0.21), "%d erased of %d", erased,
           SAMPLES);
}

/* Each augmentation draws from its own stream: switching the others on or off does
 * not move its parameters. p = 1 always erases a 28x28 image (a fit in one of 10
 * tries); a 1 x 100 image never fits (h < 1 needs s A r < 1/4), so nothing is erased. */
static void test_draw_streams(void)
{
    const struct augment all = {.seed = 3, .crop = 4, .flip = true, .erase = 1.0};
    const struct augment crop = {.seed = 3, .crop = 4}, flip = {.seed = 3, .flip = true};
    const struct augment erase = {.seed = 3, .erase = 1.0};
    int moved = 0, always = 1, never = 1;
    for (int64_t i = 0; i < 2000; i++) {
        struct augment_params p = augment_draw(&all, 0, i, 28, 28);
        struct augment_params c = augment_draw(&crop, 0, i, 28, 28);
        struct augment_params f = augment_draw(&flip, 0, i, 28, 28);
        struct augment_params e = augment_draw(&erase, 0, i, 28, 28);
        moved += p.dx != c.dx || p.dy != c.dy || p.flip != f.flip || p.ey != e.ey ||
                 p.ex != e.ex || p.eh != e.eh || p.ew != e.ew;
        always &= p.eh > 0 && p.ew > 0;
        struct augment_params thin = augment_draw(&erase, 0, i, 1, 100);
        never &= thin.eh == 0 && thin.ew == 0;
    }
    EXPECT(moved == 0, "%d samples drew differently with the other augmentations on", moved);
    EXPECT(always, "erase probability 1 left a 28x28 image unerased");
    EXPECT(never, "a 1x100 image was erased, but no rectangle fits");
}

/* ------------------------------------------------------------------ batches */

/* 37 images of 28x28: a global batch of 16 leaves a short last batch of 5. */
static void make_dataset(struct dataset *ds)
{
    *ds = (struct dataset){.count = 37, .rows = 28, .cols = 28};
    ds->images = malloc(37 * 784);
    ds->labels = malloc(37);
    for (int i = 0; i < 37; i++) {
        for (int j = 0; j < 784; j++) ds->images[i * 784 + j] = (uint8_t)((j * 7 + i * 31) ^ j);
        ds->labels[i] = (uint8_t)(i % 10);
    }
}

/* One epoch, as rank 0 of 1 and as ranks 0 and 1 of 2: the slices put together are
 * the one-rank batch, bit for bit. */
static void check_ranks(const struct dataset *ds, struct resizer *r, const struct augment *a,
                        int64_t epoch)
{
    enum { B = 16 };
    const size_t px = (size_t)r->out_rows * r->out_cols;
    float *one = xalloc(B * px * sizeof *one), *two = xalloc(B * px * sizeof *two);
    int64_t idx[B];
    int32_t lab1[B], lab2[B];
    struct sampler s1, s2;
    sampler_init(&s1, ds->count, B, a->seed, true);
    sampler_init(&s2, ds->count, B, a->seed, true);
    for (int64_t step = 0; step < sampler_steps_per_epoch(&s1); step++) {
        int g = sampler_rank_batch(&s1, epoch, step, 0, 1, idx);
        batch_assemble(ds, r, a, epoch, idx, g, one, lab1);
        int pos = 0;
        for (int rank = 0; rank < 2; rank++) {
            int n = sampler_rank_batch(&s2, epoch, step, rank, 2, idx);
            batch_assemble(ds, r, a, epoch, idx, n, two + (size_t)pos * px, lab2 + pos);
            pos += n;
        }
        bool same = pos == g && memcmp(one, two, (size_t)g * px * sizeof *one) == 0 &&
                    memcmp(lab1, lab2, (size_t)g * sizeof *lab1) == 0;
        EXPECT(same, "epoch %lld step %lld: 2 ranks assemble another batch than 1 rank",
               (long long)epoch, (long long)step);
    }
    sampler_free(&s1);
    sampler_free(&s2);
    free(one);
    free(two);
}

/* Every image of the data set, in index order, augmented as in `epoch` (a == NULL: not). */
static float *all_images(const struct dataset *ds, struct resizer *r, const struct augment *a,
                         int64_t epoch)
{
    const size_t px = (size_t)r->out_rows * r->out_cols;
    float *out = xalloc((size_t)ds->count * px * sizeof *out);
    int64_t *idx = xalloc((size_t)ds->count * sizeof *idx);
    int32_t *lab = xalloc((size_t)ds->count * sizeof *lab);
    for (int64_t i = 0; i < ds->count; i++) idx[i] = i;
    batch_assemble(ds, r, a, epoch, idx, (int)ds->count, out, lab);
    free(idx);
    free(lab);
    return out;
}

static void test_batches(void)
{
    struct dataset ds;
    make_dataset(&ds);
    const struct augment a = {.seed = 9, .crop = 4, .flip = true, .erase = 0.5};
    const int sizes[] = {0, 20};
    for (size_t k = 0; k < 2; k++) {
        struct resizer r;
        resizer_init(&r, 28, 28, sizes[k]);
        const size_t px = (size_t)r.out_rows * r.out_cols;
        check_ranks(&ds, &r, &a, 0);
        check_ranks(&ds, &r, &a, 1);

        /* In every epoch, the batch path is augment_draw + augment_apply on the plain
         * image. */
        float *e0 = all_images(&ds, &r, &a, 0), *e1 = all_images(&ds, &r, &a, 1);
        float *plain = xalloc(px * sizeof *plain);
        int mismatch = 0, epochs_alike = 0;
        for (int64_t i = 0; i < ds.count; i++) {
            for (int64_t epoch = 0; epoch < 2; epoch++) {
                batch_assemble(&ds, &r, NULL, 0, &i, 1, plain, &(int32_t){0});
                struct augment_params p = augment_draw(&a, epoch, i, r.out_rows, r.out_cols);
                augment_apply(plain, r.out_rows, r.out_cols, &p);
                mismatch += memcmp(plain, (epoch ? e1 : e0) + i * px, px * sizeof *plain) != 0;
            }
            epochs_alike += memcmp(e0 + i * px, e1 + i * px, px * sizeof *plain) == 0;
        }
        EXPECT(mismatch == 0, "resize %d: %d of 74 batch images differ from augment_apply",
               sizes[k], mismatch);
        EXPECT(epochs_alike < 3, "resize %d: %d of 37 images augmented alike in epochs 0 and 1",
               sizes[k], epochs_alike);

        /* Switched off, augmentation is the evaluation path exactly. */
        const struct augment off = {.seed = 9};
        float *none = all_images(&ds, &r, NULL, 0), *zero = all_images(&ds, &r, &off, 7);
        EXPECT(memcmp(none, zero, (size_t)ds.count * px * sizeof *none) == 0,
               "resize %d: augmentation switched off changes the images", sizes[k]);
        free(plain);
        free(e0);
        free(e1);
        free(none);
        free(zero);
        resizer_free(&r);
    }
    dataset_free(&ds);
}

int main(void)
{
    test_apply_by_hand();
    test_crop_reference();
    test_draw_off();
    test_draw_ranges();
    test_draw_streams();
    test_batches();
    return test_summary("test_augment");
}
