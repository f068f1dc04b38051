/* ckpt_store: the directory of checkpoints — names, listing, rotation and the choice
 * of the checkpoint to resume from. File contents are checkpoint.c's business.
 *
 * A checkpoint of global step S is "<dir>/ckpt-<S, 10 digits>.h5"; its temporary
 * is the same name + ".tmp" and is never listed. Newer means a larger step. */
#ifndef RESNET_DDP_CKPT_STORE_H
#define RESNET_DDP_CKPT_STORE_H

#include <stddef.h>
#include <stdint.h>

struct ckpt_entry {
    char *path;
    int64_t step;
};

/* Create the directory (and parents) if needed and check it is writable.
 * Returns 0, or -1 with a message naming the directory. */
int ckpt_store_prepare(const char *dir, char *err, size_t errsize);

/* "<dir>/ckpt-<step>.h5" into out. */
void ckpt_store_path(const char *dir, int64_t step, char *out, size_t size);

/* The checkpoints in dir, newest first. Returns the count (0 if the directory does
 * not exist); *entries is malloc'ed, free with ckpt_store_free. */
int ckpt_store_list(const char *dir, struct ckpt_entry **entries);
void ckpt_store_free(struct ckpt_entry *entries, int count);

/* Delete all but the newest `keep` checkpoints (called after a new one is in place).
 * Returns how many were deleted. */
int ckpt_store_prune(const char *dir, int keep);

#endif
