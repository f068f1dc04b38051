/* fuzz_idx: the IDX reader (idx.c) on arbitrary bytes.
 *
 * Every input is parsed as an image file and as a label file, in memory
 * (idx_parse_*, with no limit and with a limit of 2) and through a path
 * (idx_read_file with a small size cap, idx_load_*: gzip or raw via zlib). Besides
 * the sanitizers, the results are checked against the input: a parse that succeeds
 * must hold exactly the header's dimensions and the bytes after the header, a parse
 * that fails must say why, and reading a raw (non-gzip) file must return its bytes. */
#include "fuzz.h"
#include "idx.h"

#include <stdbool.h>
#include <string.h>

enum { IMAGES_HEADER = 16, LABELS_HEADER = 8, SMALL_LIMIT = 2, READ_CAP = 1 << 16 };

static struct fuzz_file file;

/* A checksum of every byte, so ASan checks the whole allocation is readable. */
static volatile uint8_t sink;

static void touch(const uint8_t *p, size_t n)
{
    uint8_t x = 0;
    for (size_t i = 0; i < n; i++) x ^= p[i];
    sink = x;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static int64_t kept(int64_t count, int64_t limit)
{
    return limit > 0 && limit < count ? limit : count;
}

static void check_images(const uint8_t *data, size_t size, int64_t limit)
{
    struct idx_images im;
    char err[512] = "";
    if (idx_parse_images(data, size, limit, &im, err, sizeof err) != 0) {
        FUZZ_REQUIRE(err[0] != '\0' && im.pixels == NULL);
        return;
    }
    FUZZ_REQUIRE(size >= IMAGES_HEADER);
    uint32_t count = be32(data + 4);
    FUZZ_REQUIRE(im.rows == (int)be32(data + 8) && im.cols == (int)be32(data + 12));
    FUZZ_REQUIRE(im.rows >= 1 && im.cols >= 1);
    size_t image = (size_t)im.rows * (size_t)im.cols;
    FUZZ_REQUIRE((size - IMAGES_HEADER) == (size_t)count * image);
    FUZZ_REQUIRE(im.count == kept(count, limit));
    FUZZ_REQUIRE(memcmp(im.pixels, data + IMAGES_HEADER, (size_t)im.count * image) == 0);
    idx_images_free(&im);
}

static void check_labels(const uint8_t *data, size_t size, int64_t limit)
{
    struct idx_labels lb;
    char err[512] = "";
    if (idx_parse_labels(data, size, limit, &lb, err, sizeof err) != 0) {
        FUZZ_REQUIRE(err[0] != '\0' && lb.labels == NULL);
        return;
    }
    FUZZ_REQUIRE(size >= LABELS_HEADER);
    uint32_t count = be32(data + 4);
    FUZZ_REQUIRE(size - LABELS_HEADER == count);
    FUZZ_REQUIRE(lb.count == kept(count, limit));
    FUZZ_REQUIRE(memcmp(lb.labels, data + LABELS_HEADER, (size_t)lb.count) == 0);
    idx_labels_free(&lb);
}

/* Through the file: zlib reads gzip data and passes anything else through. */
static void check_files(const uint8_t *data, size_t size)
{
    fuzz_file_set(&file, data, size);
    bool gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    char err[1024] = "";

    uint8_t *buf;
    size_t len;
    if (idx_read_file(file.path, READ_CAP, &buf, &len, err, sizeof err) == 0) {
        FUZZ_REQUIRE(len <= READ_CAP);
        if (!gzip) FUZZ_REQUIRE(len == size && (len == 0 || memcmp(buf, data, len) == 0));
        touch(buf, len);
        free(buf);
    } else {
        FUZZ_REQUIRE(err[0] != '\0' && buf == NULL);
        /* Raw data is copied, so the only way to fail is to be too big. */
        if (!gzip) FUZZ_REQUIRE(size > READ_CAP);
    }

    struct idx_images im;
    err[0] = '\0';
    if (idx_load_images(file.path, 0, &im, err, sizeof err) == 0) {
        touch(im.pixels, (size_t)im.count * (size_t)im.rows * (size_t)im.cols);
        idx_images_free(&im);
    } else {
        FUZZ_REQUIRE(err[0] != '\0');
    }
    struct idx_labels lb;
    err[0] = '\0';
    if (idx_load_labels(file.path, SMALL_LIMIT, &lb, err, sizeof err) == 0) {
        touch(lb.labels, (size_t)lb.count);
        idx_labels_free(&lb);
    } else {
        FUZZ_REQUIRE(err[0] != '\0');
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_file_open(&file, "fuzz_idx");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_images(data, size, 0);
    check_images(data, size, SMALL_LIMIT);
    check_labels(data, size, 0);
    check_labels(data, size, SMALL_LIMIT);
    check_files(data, size);
    return 0;
}
