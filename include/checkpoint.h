/* checkpoint: the full training state in one HDF5 file, written by rank 0.
 *
 * Layout (format version 2; version 1 lacked the integrity header):
 *   user block        512 bytes: text header with the file size and CRC-32 (ckpt_seal.h)
 *   /model/<key>      every parameter and BN buffer, named by the PyTorch state_dict
 *                     key of the seed's nn.Sequential ResNet ("0.0.weight",
 *                     "1.0.bn1.running_mean", "7.bias", ...), float32 in PyTorch's
 *                     shapes (conv OIHW); "<bn>.num_batches_tracked" int64 scalars
 *   /optimizer/<key>  the SGD momentum buffer of every parameter, same names/shapes
 *   /ema/<key>        with [train] ema_decay > 0: the weight average (ema.h) of every
 *                     parameter and BN buffer, same names and shapes as /model (no
 *                     num_batches_tracked); a file without it resumes the average
 *                     from the weights
 *   attributes of /   format_version, program_version, epoch, step_in_epoch,
 *                     global_step, epoch_loss_sum, epoch_correct, epoch_count (the
 *                     running epoch's global training sums, so a resumed epoch
 *                     reports what an uninterrupted one does), seed, world_size, global_batch, depth, width,
 *                     num_classes, image_size, config (resolved INI text),
 *                     checksum (FNV-1a 64 over parameters, momentum, buffers,
 *                     num_batches_tracked and the average if saved; exact order in
 *                     checkpoint.c), created
 *                     (UTC ISO-8601)
 * Writing is atomic: NAME.tmp is written, flushed, fsync'ed and renamed, and the
 * directory is fsync'ed, so a file named NAME is always complete. */
#ifndef RESNET_DDP_CHECKPOINT_H
#define RESNET_DDP_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "resnet.h"

#define CKPT_FORMAT_VERSION 2

/* Where training stands when the checkpoint is taken. epoch/step_in_epoch name the
 * NEXT step to run: (2, 0) means epochs 0 and 1 are complete. */
struct ckpt_state {
    int64_t epoch;
    int64_t step_in_epoch;
    int64_t global_step;
    double epoch_loss_sum, epoch_correct, epoch_count; /* global sums of the running epoch */
    uint64_t seed;
    int world_size;
    int global_batch;
    int image_size;
    char config_text[16384];
};

/* Write `m` (weights, buffers, momentum) and `st` to `path` atomically. Returns 0, or
 * -1 with a one-line message in err (naming the file); never leaves `path` partial. */
int ckpt_write(const char *path, const struct resnet *m, const struct ckpt_state *st, char *err,
               size_t errsize);

/* Read and verify `path` into `m` and `st`: architecture attributes (depth, width,
 * num_classes) must equal m's, every tensor of m must be present with the same shape,
 * no extra tensors, all values finite, checksum must match. On failure returns -1 with
 * a message and leaves `m` unchanged. */
int ckpt_read(const char *path, struct resnet *m, struct ckpt_state *st, char *err,
              size_t errsize);

/* The architecture a checkpoint holds (depth, width, num_classes, image_size; one
 * input channel, max_batch 1), to build a model to read it into. 0 or -1. */
int ckpt_read_spec(const char *path, struct model_spec *spec, char *err, size_t errsize);

/* Checksum of the state in `m` (what ckpt_write stores). */
uint64_t ckpt_checksum(const struct resnet *m);

#endif
