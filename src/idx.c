/* idx: reader for the IDX files of (Fashion-)MNIST, raw or gzip-compressed.
 *
 * Format from http://yann.lecun.com/exdb/mnist/ ("THE IDX FILE FORMAT"): a big-endian
 * u32 magic 0x000008TD (T = 0x08 for unsigned bytes, D = number of dimensions), one
 * big-endian u32 per dimension, then the data in row-major order. Decompression uses
 * zlib's gzopen/gzread, which also reads files without the gzip magic as they are.
 * Every header field is checked against limits and against the bytes present before
 * anything is allocated from it, so a hostile file cannot make us allocate much. */
#include "idx.h"

#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

enum {
    IDX_IMAGES_MAGIC = 0x00000803,
    IDX_LABELS_MAGIC = 0x00000801,
    IDX_IMAGES_HEADER = 16,
    IDX_LABELS_HEADER = 8,
    IDX_MAX_SIDE = 4096,
    READ_CHUNK = 1 << 20,
};

#define IDX_MAX_COUNT INT64_C(2147483647)
#define IDX_LOAD_MAX_BYTES ((size_t)1 << 30)

static uint32_t read_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Name the other IDX kind when its magic shows up, since swapped files are the
 * likely mistake. */
static const char *magic_hint(uint32_t found)
{
    if (found == IDX_IMAGES_MAGIC) return "; this is an IDX image file";
    if (found == IDX_LABELS_MAGIC) return "; this is an IDX label file";
    if ((found >> 16) == 0x1f8b) return "; this looks like gzip data";
    return "";
}

static int check_magic(const uint8_t *buf, size_t len, size_t header, uint32_t expected,
                       const char *what, char *err, size_t errsize)
{
    if (len < 4) {
        snprintf(err, errsize, "file too short for an IDX header (%zu bytes, need %zu)", len,
                 header);
        return -1;
    }
    uint32_t magic = read_be32(buf);
    if (magic != expected) {
        snprintf(err, errsize, "bad magic 0x%08x, expected 0x%08x (%s)%s", (unsigned)magic,
                 (unsigned)expected, what, magic_hint(magic));
        return -1;
    }
    if (len < header) {
        snprintf(err, errsize, "file too short for an IDX header (%zu bytes, need %zu)", len,
                 header);
        return -1;
    }
    return 0;
}

int idx_parse_images(const uint8_t *buf, size_t len, int64_t limit, struct idx_images *out,
                     char *err, size_t errsize)
{
    memset(out, 0, sizeof *out);
    if (check_magic(buf, len, IDX_IMAGES_HEADER, IDX_IMAGES_MAGIC, "IDX u8 images, 3 dimensions",
                    err, errsize))
        return -1;
    uint32_t count = read_be32(buf + 4);
    uint32_t rows = read_be32(buf + 8);
    uint32_t cols = read_be32(buf + 12);
    if (rows < 1 || rows > IDX_MAX_SIDE || cols < 1 || cols > IDX_MAX_SIDE) {
        snprintf(err, errsize, "image size %ux%u out of range (rows and columns must be 1..%d)",
                 (unsigned)rows, (unsigned)cols, IDX_MAX_SIDE);
        return -1;
    }
    if ((int64_t)count > IDX_MAX_COUNT) {
        snprintf(err, errsize, "header claims %u images, more than the limit of %lld",
                 (unsigned)count, (long long)IDX_MAX_COUNT);
        return -1;
    }
    /* At most 2^31 * 2^24 = 2^55: no overflow in 64 bits. */
    uint64_t image_bytes = (uint64_t)rows * cols;
    uint64_t want = (uint64_t)count * image_bytes;
    uint64_t have = (uint64_t)(len - IDX_IMAGES_HEADER);
    if (want != have) {
        snprintf(err, errsize,
                 "header claims %u images of %ux%u (%llu bytes) but the file holds %llu bytes "
                 "of data",
                 (unsigned)count, (unsigned)rows, (unsigned)cols, (unsigned long long)want,
                 (unsigned long long)have);
        return -1;
    }
    /* Only now, with the size backed by bytes in memory, allocate. */
    int64_t keep = (limit > 0 && limit < (int64_t)count) ? limit : (int64_t)count;
    size_t bytes = (size_t)keep * (size_t)image_bytes;
    out->count = keep;
    out->rows = (int)rows;
    out->cols = (int)cols;
    out->pixels = xmalloc(bytes);
    if (bytes) memcpy(out->pixels, buf + IDX_IMAGES_HEADER, bytes);
    return 0;
}

int idx_parse_labels(const uint8_t *buf, size_t len, int64_t limit, struct idx_labels *out,
                     char *err, size_t errsize)
{
    memset(out, 0, sizeof *out);
    if (check_magic(buf, len, IDX_LABELS_HEADER, IDX_LABELS_MAGIC, "IDX u8 labels, 1 dimension",
                    err, errsize))
        return -1;
    uint32_t count = read_be32(buf + 4);
    if ((int64_t)count > IDX_MAX_COUNT) {
        snprintf(err, errsize, "header claims %u labels, more than the limit of %lld",
                 (unsigned)count, (long long)IDX_MAX_COUNT);
        return -1;
    }
    uint64_t have = (uint64_t)(len - IDX_LABELS_HEADER);
    if ((uint64_t)count != have) {
        snprintf(err, errsize,
                 "header claims %u labels (%u bytes) but the file holds %llu bytes of data",
                 (unsigned)count, (unsigned)count, (unsigned long long)have);
        return -1;
    }
    int64_t keep = (limit > 0 && limit < (int64_t)count) ? limit : (int64_t)count;
    out->count = keep;
    out->labels = xmalloc((size_t)keep);
    if (keep) memcpy(out->labels, buf + IDX_LABELS_HEADER, (size_t)keep);
    return 0;
}

/* Describe the state of a gzFile after a failed or short read. zlib prefixes its
 * message with the path, which the caller adds anyway. */
static void gz_message(gzFile f, const char *path, char *err, size_t errsize)
{
    int errnum = Z_OK;
    const char *msg = gzerror(f, &errnum);
    size_t plen = strlen(path);
    if (msg && strncmp(msg, path, plen) == 0 && strncmp(msg + plen, ": ", 2) == 0)
        msg += plen + 2;
    if (errnum == Z_ERRNO)
        snprintf(err, errsize, "read error: %s", strerror(errno));
    else
        snprintf(err, errsize, "truncated or corrupt gzip data (zlib: %s)",
                 msg && *msg ? msg : "unknown error");
}

int idx_read_file(const char *path, size_t max_bytes, uint8_t **buf, size_t *len, char *err,
                  size_t errsize)
{
    *buf = NULL;
    *len = 0;
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f) {
        /* gzopen leaves errno at 0 when it failed for lack of memory. */
        snprintf(err, errsize, "cannot open: %s", errno ? strerror(errno) : "out of memory");
        return -1;
    }
    gzbuffer(f, 1 << 17);

    /* One byte beyond max_bytes is read to tell "exactly max" from "too big". */
    size_t hard_cap = max_bytes < SIZE_MAX ? max_bytes + 1 : SIZE_MAX;
    size_t cap = 0, used = 0;
    uint8_t *data = NULL;
    for (;;) {
        if (used == cap) {
            if (cap == hard_cap) break;
            size_t grown = cap ? cap * 2 : READ_CHUNK;
            if (grown > hard_cap || grown < cap) grown = hard_cap;
            uint8_t *bigger = realloc(data, grown);
            if (!bigger) {
                free(data);
                gzclose_r(f);
                snprintf(err, errsize, "out of memory reading %zu bytes", grown);
                return -1;
            }
            data = bigger;
            cap = grown;
        }
        size_t want = cap - used;
        if (want > READ_CHUNK) want = READ_CHUNK;
        int got = gzread(f, data + used, (unsigned)want);
        if (got < 0) {
            gz_message(f, path, err, errsize);
            free(data);
            gzclose_r(f);
            return -1;
        }
        if (got == 0) break;
        used += (size_t)got;
    }
    if (used > max_bytes) {
        snprintf(err, errsize, "decompressed size exceeds %zu bytes", max_bytes);
        free(data);
        gzclose_r(f);
        return -1;
    }
    /* A gzip stream cut short is not a read error for gzread: it returns the data it
     * could inflate and records Z_BUF_ERROR ("unexpected end of file"). */
    int errnum = Z_OK;
    gzerror(f, &errnum);
    if (errnum != Z_OK) {
        gz_message(f, path, err, errsize);
        free(data);
        gzclose_r(f);
        return -1;
    }
    int rc = gzclose_r(f);
    if (rc != Z_OK) {
        if (rc == Z_ERRNO)
            snprintf(err, errsize, "read error: %s", strerror(errno));
        else
            snprintf(err, errsize, "truncated or corrupt gzip data (zlib error %d at close)",
                     rc);
        free(data);
        return -1;
    }
    *buf = data;
    *len = used;
    return 0;
}

/* The file-reading half of idx_load_images / idx_load_labels; messages name the file. */
typedef int (*idx_parser)(const uint8_t *buf, size_t len, int64_t limit, void *out, char *err,
                          size_t errsize);

static int parse_images(const uint8_t *buf, size_t len, int64_t limit, void *out, char *err,
                        size_t errsize)
{
    return idx_parse_images(buf, len, limit, out, err, errsize);
}

static int parse_labels(const uint8_t *buf, size_t len, int64_t limit, void *out, char *err,
                        size_t errsize)
{
    return idx_parse_labels(buf, len, limit, out, err, errsize);
}

static int load_file(const char *path, int64_t limit, idx_parser parse, void *out, char *err,
                     size_t errsize)
{
    char msg[512];
    uint8_t *buf;
    size_t len;
    if (idx_read_file(path, IDX_LOAD_MAX_BYTES, &buf, &len, msg, sizeof msg)) {
        snprintf(err, errsize, "%s: %s", path, msg);
        return -1;
    }
    int rc = parse(buf, len, limit, out, msg, sizeof msg);
    free(buf);
    if (rc) snprintf(err, errsize, "%s: %s", path, msg);
    return rc;
}

int idx_load_images(const char *path, int64_t limit, struct idx_images *out, char *err,
                    size_t errsize)
{
    memset(out, 0, sizeof *out);
    return load_file(path, limit, parse_images, out, err, errsize);
}

int idx_load_labels(const char *path, int64_t limit, struct idx_labels *out, char *err,
                    size_t errsize)
{
    memset(out, 0, sizeof *out);
    return load_file(path, limit, parse_labels, out, err, errsize);
}

void idx_images_free(struct idx_images *im)
{
    free(im->pixels);
    memset(im, 0, sizeof *im);
}

void idx_labels_free(struct idx_labels *lb)
{
    free(lb->labels);
    memset(lb, 0, sizeof *lb);
}
