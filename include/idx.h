/* idx: reader for the IDX format of (Fashion-)MNIST, gzip-compressed or raw.
 *
 * Format (http://yann.lecun.com/exdb/mnist/): big-endian magic 0x00000803 (images,
 * u8, 3 dims) or 0x00000801 (labels, u8, 1 dim), then one big-endian u32 per
 * dimension, then the data. The header is never trusted: dimensions are checked
 * against sane limits and against the bytes actually present before anything is
 * allocated from them. The functions return an error text instead of exiting, so
 * the fuzzer and the tests can call them. */
#ifndef RESNET_DDP_IDX_H
#define RESNET_DDP_IDX_H

#include <stddef.h>
#include <stdint.h>

struct idx_images {
    int64_t count;
    int rows, cols;
    uint8_t *pixels; /* (count, rows, cols) */
};

struct idx_labels {
    int64_t count;
    uint8_t *labels; /* (count) */
};

/* Parse an IDX image/label file already in memory (decompressed). `limit` > 0 keeps
 * only the first `limit` items (fewer present is not an error). Return 0 on success,
 * -1 with a message in err (no file name, the caller adds it). */
int idx_parse_images(const uint8_t *buf, size_t len, int64_t limit, struct idx_images *out,
                     char *err, size_t errsize);
int idx_parse_labels(const uint8_t *buf, size_t len, int64_t limit, struct idx_labels *out,
                     char *err, size_t errsize);

/* Read a whole file, gunzipping it when it starts with the gzip magic. At most
 * `max_bytes` decompressed bytes are accepted. Return 0 or -1 with a message. */
int idx_read_file(const char *path, size_t max_bytes, uint8_t **buf, size_t *len, char *err,
                  size_t errsize);

/* File + parse; messages name the file. */
int idx_load_images(const char *path, int64_t limit, struct idx_images *out, char *err,
                    size_t errsize);
int idx_load_labels(const char *path, int64_t limit, struct idx_labels *out, char *err,
                    size_t errsize);

void idx_images_free(struct idx_images *im);
void idx_labels_free(struct idx_labels *lb);

#endif
