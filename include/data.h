/* data: the data set in memory, the distributed sampler and batch assembly.
 *
 * Images stay uint8 in memory; a batch is converted to float in [0, 1] (torchvision's
 * ToTensor) after an optional bilinear resize that reproduces PIL's Image.resize
 * (BILINEAR), which is what d2l's load_data_fashion_mnist(resize=96) applies before
 * ToTensor: separable passes, horizontal then vertical, each rounded to uint8.
 *
 * Sampler policy (the same for any number of ranks): epoch e visits a permutation of
 * all N images drawn from (seed, e); global batch s holds positions
 * [s*B, min((s+1)*B, N)) of it, so the last batch of an epoch is partial and kept,
 * as d2l's DataLoader does (drop_last=False). A global batch of G samples is split
 * into contiguous slices, rank r taking G/R samples plus one more if r < G%R.
 *
 * With micro-shards of S samples ([dist] shard_size), the global batch is cut into
 * ceil(G/S) shards (the last may be short) and ranks take whole shards, split the
 * same way; the model then computes every shard alone (see DESIGN.md, "Numerics"),
 * so the result does not depend on the number of ranks. */
#ifndef RESNET_DDP_DATA_H
#define RESNET_DDP_DATA_H

#include <stdbool.h>
#include <stdint.h>

struct dataset {
    int64_t count;
    int rows, cols;
    uint8_t *images; /* (count, rows, cols) */
    uint8_t *labels; /* (count) */
};

/* Load "<dir>/train-images-idx3-ubyte.gz" + labels (train) or the t10k pair (test).
 * Accepts the uncompressed names too when the .gz is absent. limit > 0 keeps the first
 * `limit` images. Validates labels < num_classes and equal counts. On error prints
 * one line naming the file and exits with EXIT_CODE_USAGE. */
void dataset_load(struct dataset *ds, const char *dir, bool train, int64_t limit, int num_classes);
void dataset_free(struct dataset *ds);

struct sampler {
    int64_t count;       /* images in the data set */
    int global_batch;
    uint64_t seed;
    bool shuffle;        /* false: identity order (evaluation) */
    int64_t *perm;       /* (count) permutation of the current epoch */
    int64_t perm_epoch;  /* epoch perm belongs to; -1 = none yet */
};

void sampler_init(struct sampler *s, int64_t count, int global_batch, uint64_t seed, bool shuffle);
void sampler_free(struct sampler *s);
int64_t sampler_steps_per_epoch(const struct sampler *s);
/* Global size of batch `step` of any epoch. */
int sampler_global_count(const struct sampler *s, int64_t step);
/* This rank's slice of global batch `step` of `epoch`: writes its sample indices to
 * `indices` (room for ceil(global_batch / world)) and returns how many (may be 0). */
int sampler_rank_batch(struct sampler *s, int64_t epoch, int64_t step, int rank, int world,
                       int64_t *indices);
/* Offset of rank's slice inside the global batch (for tests and logs). */
int sampler_rank_offset(int global_count, int rank, int world);
/* As sampler_rank_batch, but ranks take whole shards of shard_size samples
 * (shard_size 0: the plain split above). */
int sampler_rank_shards(struct sampler *s, int64_t epoch, int64_t step, int rank, int world,
                        int shard_size, int64_t *indices);

/* Precomputed bilinear resize from (in_rows, in_cols) to (out, out). out == 0 or
 * out == in keeps the image as it is. */
struct resizer {
    int in_rows, in_cols, out_rows, out_cols;
    /* PIL-style coefficient tables, one window per output coordinate. */
    int xmax_h, xmax_v;      /* window width of the horizontal / vertical pass */
    int *bounds_h;           /* (out_cols, 2): first input column, window length */
    int *bounds_v;           /* (out_rows, 2) */
    int32_t *coef_h;         /* (out_cols, xmax_h) fixed-point weights */
    int32_t *coef_v;         /* (out_rows, xmax_v) */
    uint8_t *tmp;            /* (in_rows, out_cols) intermediate image */
    uint8_t *out8;           /* (out_rows, out_cols) */
};

void resizer_init(struct resizer *r, int in_rows, int in_cols, int out);
void resizer_free(struct resizer *r);
/* Resize one uint8 image (in_rows, in_cols) into r->out8 (out_rows, out_cols); returns r->out8. */
const uint8_t *resizer_apply(struct resizer *r, const uint8_t *in);

/* Training-time augmentation, torchvision's transforms after ToTensor in this order:
 * RandomCrop(size, padding=crop), RandomHorizontalFlip() when flip, and
 * RandomErasing(erase, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0). Every draw is
 * a function of (seed, epoch, the sample's index in the data set) alone (rng.h), so a
 * sample is augmented alike on any number of ranks and after a resume. */
struct augment {
    uint64_t seed;
    int crop;     /* padding P in pixels; 0 = off */
    bool flip;
    double erase; /* probability; 0 = off */
};

/* The drawn parameters of one sample's augmentation. */
struct augment_params {
    /* Crop: the window at column dx, row dy (each in [0, 2 pad]) of the image padded
     * by pad zeros, i.e. out(y, x) = in(y + dy - pad, x + dx - pad), 0 outside. */
    int pad, dx, dy;
    bool flip;
    /* Erase: rows [ey, ey + eh), columns [ex, ex + ew) set to 0; eh = ew = 0: none. */
    int ey, ex, eh, ew;
};

/* Tries of RandomErasing before it gives up and erases nothing (torchvision's 10). */
#define AUGMENT_ERASE_TRIES 10

/* The parameters of data-set sample `index` in `epoch`, for rows x cols images. */
struct augment_params augment_draw(const struct augment *a, int64_t epoch, int64_t index, int rows,
                                   int cols);
/* Applies p to one image in place: crop, then flip, then erase. */
void augment_apply(float *img, int rows, int cols, const struct augment_params *p);

/* Assemble n images into `images` (n, out_rows, out_cols) as float in [0,1] and their
 * labels into `labels` (n). aug != NULL augments each sample as drawn for `epoch`
 * (training); NULL leaves the images as they are (evaluation). */
void batch_assemble(const struct dataset *ds, struct resizer *r, const struct augment *aug,
                    int64_t epoch, const int64_t *indices, int n, float *images,
                    int32_t *labels);

#endif
