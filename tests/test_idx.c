/* test_idx: the IDX reader (idx.c) and dataset_load (data.c) on files made here.
 *
 * Valid and corrupt IDX files (format: http://yann.lecun.com/exdb/mnist/) are written
 * raw and gzip-compressed (zlib's gzopen "wb") into a mkdtemp() directory. Errors of
 * dataset_load end the process (FAIL_INPUT), so those cases run in a fork()ed child
 * whose stderr and exit status are checked. When the real Fashion-MNIST files are in
 * /usr/share/datasets/fashion-mnist, their sizes and class balance are checked too. */
#include "data.h"
#include "idx.h"
#include "testutil.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#define REAL_DATA_DIR "/usr/share/datasets/fashion-mnist"

/* ------------------------------------------------------------------ helpers */

static void write_file(const char *path, const uint8_t *data, size_t len, int gz)
{
    if (gz) {
        gzFile f = gzopen(path, "wb");
        if (!f || (len && gzwrite(f, data, (unsigned)len) != (int)len) || gzclose(f) != Z_OK) {
            fprintf(stderr, "cannot write %s\n", path);
            exit(1);
        }
        return;
    }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}

static uint8_t *read_whole(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    *len = n;
    return buf;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* An image file whose header says (magic, count, rows, cols) followed by `data_len`
 * bytes of pixels; pixel i of the file is (i * 7 + 3) mod 256. */
static uint8_t *images_bytes(uint32_t magic, uint32_t count, uint32_t rows, uint32_t cols,
                             size_t data_len, size_t *len)
{
    *len = 16 + data_len;
    uint8_t *b = malloc(*len);
    put_be32(b, magic);
    put_be32(b + 4, count);
    put_be32(b + 8, rows);
    put_be32(b + 12, cols);
    for (size_t i = 0; i < data_len; i++) b[16 + i] = (uint8_t)(i * 7 + 3);
    return b;
}

static uint8_t *labels_bytes(uint32_t magic, uint32_t count, const uint8_t *labels, size_t n,
                             size_t *len)
{
    *len = 8 + n;
    uint8_t *b = malloc(*len);
    put_be32(b, magic);
    put_be32(b + 4, count);
    if (n) memcpy(b + 8, labels, n);
    return b;
}

static void write_images(const char *path, uint32_t count, int rows, int cols, int gz)
{
    size_t len;
    uint8_t *b = images_bytes(0x803, count, (uint32_t)rows, (uint32_t)cols,
                              (size_t)count * rows * cols, &len);
    write_file(path, b, len, gz);
    free(b);
}

static void write_labels(const char *path, const uint8_t *labels, uint32_t n, int gz)
{
    size_t len;
    uint8_t *b = labels_bytes(0x801, n, labels, n, &len);
    write_file(path, b, len, gz);
    free(b);
}

static int contains(const char *text, const char *word)
{
    return text && strstr(text, word) != NULL;
}

#define EXPECT_MSG(msg, word) EXPECT(contains(msg, word), "message \"%s\" lacks \"%s\"", msg, word)

/* Run dataset_load in a child; return its exit code (or -1 if it died by a signal)
 * and its stderr in `out`. The child exits 0 when dataset_load returns. */
static int load_in_child(const char *dir, bool train, int64_t limit, int num_classes, char *out,
                         size_t outsize)
{
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        exit(1);
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], STDERR_FILENO);
        struct dataset ds;
        dataset_load(&ds, dir, train, limit, num_classes);
        dataset_free(&ds);
        _exit(0);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t got;
    while ((got = read(fds[0], out + n, outsize - 1 - n)) > 0) n += (size_t)got;
    out[n] = '\0';
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ------------------------------------------------------------------ tests */

static void test_valid_and_limit(void)
{
    char err[512] = "";
    write_images(tmp_path("a.idx"), 5, 3, 4, 0);
    write_images(tmp_path("a.idx.gz"), 5, 3, 4, 1);

    struct idx_images raw, gz;
    EXPECT(idx_load_images(tmp_path("a.idx"), 0, &raw, err, sizeof err) == 0, "raw: %s", err);
    EXPECT(idx_load_images(tmp_path("a.idx.gz"), 0, &gz, err, sizeof err) == 0, "gz: %s", err);
    EXPECT(raw.count == 5 && raw.rows == 3 && raw.cols == 4, "raw shape %lld %dx%d",
           (long long)raw.count, raw.rows, raw.cols);
    EXPECT(gz.count == 5 && gz.rows == 3 && gz.cols == 4, "gz shape");
    int ok = raw.pixels && gz.pixels;
    for (int i = 0; ok && i < 60; i++)
        ok = raw.pixels[i] == (uint8_t)(i * 7 + 3) && gz.pixels[i] == raw.pixels[i];
    EXPECT(ok, "pixels differ from what was written");
    idx_images_free(&raw);
    idx_images_free(&gz);
    EXPECT(raw.pixels == NULL && raw.count == 0, "free does not reset");

    EXPECT(idx_load_images(tmp_path("a.idx.gz"), 2, &gz, err, sizeof err) == 0, "%s", err);
    EXPECT(gz.count == 2 && gz.pixels[23] == (uint8_t)(23 * 7 + 3), "limit 2 keeps %lld",
           (long long)gz.count);
    idx_images_free(&gz);
    EXPECT(idx_load_images(tmp_path("a.idx"), 100, &raw, err, sizeof err) == 0, "%s", err);
    EXPECT(raw.count == 5, "limit above count keeps %lld", (long long)raw.count);
    idx_images_free(&raw);

    const uint8_t labels[5] = {0, 9, 3, 3, 1};
    write_labels(tmp_path("l.idx.gz"), labels, 5, 1);
    struct idx_labels lb;
    EXPECT(idx_load_labels(tmp_path("l.idx.gz"), 0, &lb, err, sizeof err) == 0, "%s", err);
    EXPECT(lb.count == 5 && memcmp(lb.labels, labels, 5) == 0, "labels differ");
    idx_labels_free(&lb);
    EXPECT(idx_load_labels(tmp_path("l.idx.gz"), 3, &lb, err, sizeof err) == 0, "%s", err);
    EXPECT(lb.count == 3, "label limit keeps %lld", (long long)lb.count);
    idx_labels_free(&lb);

    /* An empty set is a valid IDX file (dataset_load rejects it, not the parser). */
    write_images(tmp_path("empty.idx"), 0, 28, 28, 0);
    EXPECT(idx_load_images(tmp_path("empty.idx"), 0, &raw, err, sizeof err) == 0, "%s", err);
    EXPECT(raw.count == 0, "empty count %lld", (long long)raw.count);
    idx_images_free(&raw);
}

static void test_read_limits(void)
{
    char err[512] = "";
    uint8_t *buf;
    size_t len;
    write_images(tmp_path("m.idx"), 5, 3, 4, 0);
    write_images(tmp_path("m.idx.gz"), 5, 3, 4, 1);
    EXPECT(idx_read_file(tmp_path("m.idx.gz"), 76, &buf, &len, err, sizeof err) == 0,
           "exactly max: %s", err);
    EXPECT(len == 76, "gunzipped %zu bytes, want 76", len);
    free(buf);
    EXPECT(idx_read_file(tmp_path("m.idx.gz"), 75, &buf, &len, err, sizeof err) != 0,
           "75-byte limit accepted 76 bytes");
    EXPECT_MSG(err, "decompressed size exceeds 75 bytes");
    EXPECT(buf == NULL, "buffer left on error");
    EXPECT(idx_read_file(tmp_path("m.idx"), 10, &buf, &len, err, sizeof err) != 0,
           "10-byte limit accepted a raw 76-byte file");
    EXPECT_MSG(err, "exceeds 10 bytes");

    /* Bigger than one read chunk, so the buffer has to grow. */
    write_images(tmp_path("big.idx.gz"), 3000, 28, 28, 1);
    EXPECT(idx_read_file(tmp_path("big.idx.gz"), 1 << 30, &buf, &len, err, sizeof err) == 0,
           "%s", err);
    EXPECT(len == 16 + 3000 * 784, "read %zu bytes", len);
    int ok = 1;
    for (size_t i = 0; ok && i + 16 < len; i++) ok = buf[16 + i] == (uint8_t)(i * 7 + 3);
    EXPECT(ok, "big file content differs");
    free(buf);

    EXPECT(idx_read_file(tmp_path("no-such-file"), 1 << 20, &buf, &len, err, sizeof err) != 0,
           "missing file accepted");
    EXPECT_MSG(err, "cannot open");
    EXPECT_MSG(err, strerror(ENOENT));
    EXPECT(idx_read_file(test_tmpdir(), 1 << 20, &buf, &len, err, sizeof err) != 0,
           "a directory was read as a file");
    EXPECT_MSG(err, strerror(EISDIR));

    struct idx_images im;
    EXPECT(idx_load_images(tmp_path("no-such-file"), 0, &im, err, sizeof err) != 0, "missing");
    EXPECT_MSG(err, tmp_path("no-such-file"));
    EXPECT_MSG(err, ": cannot open: ");
}

/* What zlib itself reports at the end of a truncated stream: the premise of the
 * truncation check in idx_read_file. */
static int zlib_end_error(const char *path)
{
    gzFile f = gzopen(path, "rb");
    if (!f) return -100;
    uint8_t chunk[4096];
    while (gzread(f, chunk, sizeof chunk) > 0) {
    }
    int errnum;
    gzerror(f, &errnum);
    gzclose(f);
    return errnum;
}

static void check_truncated(const uint8_t *gz, size_t keep, const char *what)
{
    char err[512] = "";
    uint8_t *buf = NULL;
    size_t len;
    write_file(tmp_path("cut.gz"), gz, keep, 0);
    EXPECT(idx_read_file(tmp_path("cut.gz"), 1 << 30, &buf, &len, err, sizeof err) != 0,
           "%s: truncated gzip (%zu bytes kept) accepted", what, keep);
    EXPECT_MSG(err, "truncated or corrupt gzip data");
    EXPECT(buf == NULL, "buffer left on error");
}

static void test_truncated_gzip(void)
{
    write_images(tmp_path("t.idx.gz"), 300, 28, 28, 1);
    size_t n;
    uint8_t *gz = read_whole(tmp_path("t.idx.gz"), &n);
    EXPECT(gz && n > 100, "compressed file of %zu bytes", n);
    if (!gz) return;
    check_truncated(gz, n / 2, "half");
    EXPECT(zlib_end_error(tmp_path("cut.gz")) == Z_BUF_ERROR,
           "zlib does not report Z_BUF_ERROR at the end of a cut stream");
    check_truncated(gz, n - 4, "without ISIZE");
    check_truncated(gz, n - 1, "one byte short");
    check_truncated(gz, 12, "header only");

    char err[512] = "";
    uint8_t *buf;
    size_t len;
    gz[n - 6] ^= 0x55; /* inside the CRC-32 of the trailer */
    write_file(tmp_path("crc.gz"), gz, n, 0);
    EXPECT(idx_read_file(tmp_path("crc.gz"), 1 << 30, &buf, &len, err, sizeof err) != 0,
           "gzip with a bad CRC accepted");
    EXPECT_MSG(err, "truncated or corrupt gzip data");
    free(gz);

    /* The same on a real file when it is here. */
    gz = read_whole(REAL_DATA_DIR "/t10k-labels-idx1-ubyte.gz", &n);
    if (gz) {
        check_truncated(gz, n / 2, "real labels, half");
        EXPECT(zlib_end_error(tmp_path("cut.gz")) == Z_BUF_ERROR,
               "zlib does not report Z_BUF_ERROR for the cut real file");
        check_truncated(gz, n - 3, "real labels, trailer cut");
        free(gz);
    }
}

static void test_bad_headers(void)
{
    char err[512] = "";
    size_t len;
    uint8_t *b;
    struct idx_images im;
    struct idx_labels lb;

    b = images_bytes(0x801, 5, 3, 4, 60, &len);
    EXPECT(idx_parse_images(b, len, 0, &im, err, sizeof err) != 0, "label magic accepted");
    EXPECT_MSG(err, "bad magic 0x00000801, expected 0x00000803 (IDX u8 images, 3 dimensions)");
    EXPECT(im.pixels == NULL, "allocated on error");
    free(b);

    b = images_bytes(0x80000000u, 0, 0, 0, 0, &len);
    EXPECT(idx_parse_labels(b, len, 0, &lb, err, sizeof err) != 0, "junk magic accepted");
    EXPECT_MSG(err, "bad magic 0x80000000, expected 0x00000801");
    free(b);

    /* 2^31 images of 28x28 claimed by a 26-byte file. */
    b = images_bytes(0x803, 0x80000000u, 28, 28, 10, &len);
    EXPECT(idx_parse_images(b, len, 0, &im, err, sizeof err) != 0, "2^31 images accepted");
    EXPECT_MSG(err, "2147483648 images");
    EXPECT(im.pixels == NULL && im.count == 0, "allocated on error");
    free(b);

    /* The largest count allowed with the largest images: 2^55 bytes claimed. Had the
     * parser allocated from the header, xmalloc would have ended this test. */
    b = images_bytes(0x803, 0x7fffffffu, 4096, 4096, 10, &len);
    EXPECT(idx_parse_images(b, len, 0, &im, err, sizeof err) != 0, "huge header accepted");
    EXPECT_MSG(err, "header claims 2147483647 images of 4096x4096");
    EXPECT_MSG(err, "the file holds 10 bytes of data");
    EXPECT(im.pixels == NULL, "allocated on error");
    free(b);

    b = images_bytes(0x803, 5, 0, 4, 0, &len);
    EXPECT(idx_parse_images(b, len, 0, &im, err, sizeof err) != 0, "rows = 0 accepted");
    EXPECT_MSG(err, "0x4 out of range");
    free(b);
    b = images_bytes(0x803, 1, 3, 4097, 3 * 4097, &len);
    EXPECT(idx_parse_images(b, len, 0, &im, err, sizeof err) != 0, "cols = 4097 accepted");
    EXPECT_MSG(err, "out of range");
    free(b);

    b = images_bytes(0x803, 5, 3, 4, 59, &len);
    EXPECT(idx_parse_images(b, len, 0, &im, err, sizeof err) != 0, "short data accepted");
    EXPECT_MSG(err, "header claims 5 images of 3x4 (60 bytes) but the file holds 59 bytes of data");
    free(b);
    b = images_bytes(0x803, 5, 3, 4, 61, &len);
    EXPECT(idx_parse_images(b, len, 0, &im, err, sizeof err) != 0, "long data accepted");
    EXPECT_MSG(err, "(60 bytes) but the file holds 61 bytes");
    free(b);
    /* limit does not excuse a wrong size */
    b = images_bytes(0x803, 5, 3, 4, 59, &len);
    EXPECT(idx_parse_images(b, len, 1, &im, err, sizeof err) != 0, "short data with limit");
    free(b);

    b = images_bytes(0x803, 5, 3, 4, 0, &len);
    EXPECT(idx_parse_images(b, 10, 0, &im, err, sizeof err) != 0, "10-byte file accepted");
    EXPECT_MSG(err, "too short");
    EXPECT(idx_parse_images(b, 0, 0, &im, err, sizeof err) != 0, "empty file accepted");
    EXPECT_MSG(err, "too short");
    free(b);

    const uint8_t some[4] = {1, 2, 3, 4};
    b = labels_bytes(0x801, 5, some, 4, &len);
    EXPECT(idx_parse_labels(b, len, 0, &lb, err, sizeof err) != 0, "short labels accepted");
    EXPECT_MSG(err, "header claims 5 labels");
    EXPECT_MSG(err, "holds 4 bytes of data");
    EXPECT(lb.labels == NULL, "allocated on error");
    free(b);
    b = labels_bytes(0x801, 0x80000000u, some, 4, &len);
    EXPECT(idx_parse_labels(b, len, 0, &lb, err, sizeof err) != 0, "2^31 labels accepted");
    EXPECT_MSG(err, "2147483648 labels");
    free(b);

    /* Through the file loader: the message names the file. */
    b = images_bytes(0x801, 5, 3, 4, 60, &len);
    write_file(tmp_path("wrong-magic.gz"), b, len, 1);
    free(b);
    EXPECT(idx_load_images(tmp_path("wrong-magic.gz"), 0, &im, err, sizeof err) != 0,
           "wrong magic accepted from file");
    EXPECT_MSG(err, tmp_path("wrong-magic.gz"));
    EXPECT_MSG(err, "bad magic 0x00000801");
}

static void test_dataset_load(void)
{
    char out[4096];
    char dir[256];
    const uint8_t labels[6] = {0, 1, 2, 3, 4, 5};

    /* .gz pair */
    write_images(tmp_path("train-images-idx3-ubyte.gz"), 6, 28, 28, 1);
    write_labels(tmp_path("train-labels-idx1-ubyte.gz"), labels, 6, 1);
    struct dataset ds;
    dataset_load(&ds, test_tmpdir(), true, 0, 10);
    EXPECT(ds.count == 6 && ds.rows == 28 && ds.cols == 28, "train shape %lld %dx%d",
           (long long)ds.count, ds.rows, ds.cols);
    EXPECT(ds.labels[5] == 5 && ds.images[100] == (uint8_t)(100 * 7 + 3), "train content");
    dataset_free(&ds);
    dataset_load(&ds, test_tmpdir(), true, 4, 10);
    EXPECT(ds.count == 4 && ds.labels[3] == 3, "limit 4 keeps %lld", (long long)ds.count);
    dataset_free(&ds);

    /* Uncompressed fallback for the test pair; and the .gz wins when both exist. */
    write_images(tmp_path("t10k-images-idx3-ubyte"), 3, 28, 28, 0);
    write_labels(tmp_path("t10k-labels-idx1-ubyte"), labels, 3, 0);
    dataset_load(&ds, test_tmpdir(), false, 0, 10);
    EXPECT(ds.count == 3, "raw test set holds %lld", (long long)ds.count);
    dataset_free(&ds);
    write_images(tmp_path("t10k-images-idx3-ubyte.gz"), 2, 28, 28, 1);
    write_labels(tmp_path("t10k-labels-idx1-ubyte.gz"), labels, 2, 1);
    dataset_load(&ds, test_tmpdir(), false, 0, 10);
    EXPECT(ds.count == 2, "with both present, loaded %lld images (the .gz has 2)",
           (long long)ds.count);
    dataset_free(&ds);

    /* label >= num_classes */
    int code = load_in_child(test_tmpdir(), true, 0, 5, out, sizeof out);
    EXPECT(code == 2, "label 5 with 5 classes: exit %d", code);
    EXPECT_MSG(out, "resnet_ddp: error: ");
    EXPECT_MSG(out, "train-labels-idx1-ubyte.gz: label 5 at index 5 is not below "
                    "[model] num_classes = 5");
    /* ... even when the bad label lies beyond the limit */
    code = load_in_child(test_tmpdir(), true, 2, 5, out, sizeof out);
    EXPECT(code == 2, "bad label beyond the limit: exit %d", code);

    /* count mismatch */
    write_labels(tmp_path("train-labels-idx1-ubyte.gz"), labels, 5, 1);
    code = load_in_child(test_tmpdir(), true, 0, 10, out, sizeof out);
    EXPECT(code == 2, "count mismatch: exit %d", code);
    EXPECT_MSG(out, "holds 5 labels but");
    EXPECT_MSG(out, "train-images-idx3-ubyte.gz holds 6 images, expected equal counts");
    code = load_in_child(test_tmpdir(), true, 3, 10, out, sizeof out);
    EXPECT(code == 2, "count mismatch hidden by the limit: exit %d", code);

    /* zero images */
    write_images(tmp_path("train-images-idx3-ubyte.gz"), 0, 28, 28, 1);
    write_labels(tmp_path("train-labels-idx1-ubyte.gz"), labels, 0, 1);
    code = load_in_child(test_tmpdir(), true, 0, 10, out, sizeof out);
    EXPECT(code == 2, "zero images: exit %d", code);
    EXPECT_MSG(out, "no images");

    /* corrupt file: the message names it */
    size_t len;
    uint8_t *b = images_bytes(0x803, 6, 28, 28, 100, &len);
    write_file(tmp_path("train-images-idx3-ubyte.gz"), b, len, 1);
    free(b);
    code = load_in_child(test_tmpdir(), true, 0, 10, out, sizeof out);
    EXPECT(code == 2, "corrupt images: exit %d", code);
    EXPECT_MSG(out, "train-images-idx3-ubyte.gz: header claims 6 images of 28x28");

    /* missing directory */
    snprintf(dir, sizeof dir, "%s/missing", test_tmpdir());
    code = load_in_child(dir, true, 0, 10, out, sizeof out);
    EXPECT(code == 2, "missing dir: exit %d", code);
    EXPECT_MSG(out, "train-images-idx3-ubyte.gz' not found");
    EXPECT_MSG(out, "RESNET_DDP_DATA");
    EXPECT(strchr(out, '\n') == out + strlen(out) - 1, "not one line: %s", out);

    /* images present, labels missing */
    snprintf(dir, sizeof dir, "%s/half", test_tmpdir());
    mkdir(dir, 0700);
    char p[512];
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte", dir);
    write_images(p, 2, 28, 28, 0);
    code = load_in_child(dir, false, 0, 10, out, sizeof out);
    EXPECT(code == 2, "missing labels: exit %d", code);
    EXPECT_MSG(out, "t10k-labels-idx1-ubyte.gz' not found");
}

static void test_real_data(void)
{
    struct stat st;
    if (stat(REAL_DATA_DIR, &st) != 0) {
        printf("test_idx: skip: %s absent, real Fashion-MNIST not checked\n", REAL_DATA_DIR);
        return;
    }
    struct dataset ds;
    dataset_load(&ds, REAL_DATA_DIR, true, 0, 10);
    EXPECT(ds.count == 60000 && ds.rows == 28 && ds.cols == 28, "train %lld %dx%d",
           (long long)ds.count, ds.rows, ds.cols);
    int64_t per_class[10] = {0};
    for (int64_t i = 0; i < ds.count; i++) per_class[ds.labels[i]]++;
    for (int c = 0; c < 10; c++)
        EXPECT(per_class[c] == 6000, "train class %d has %lld images", c,
               (long long)per_class[c]);
    dataset_free(&ds);

    dataset_load(&ds, REAL_DATA_DIR, false, 0, 10);
    EXPECT(ds.count == 10000 && ds.rows == 28 && ds.cols == 28, "test %lld %dx%d",
           (long long)ds.count, ds.rows, ds.cols);
    memset(per_class, 0, sizeof per_class);
    for (int64_t i = 0; i < ds.count; i++) per_class[ds.labels[i]]++;
    for (int c = 0; c < 10; c++)
        EXPECT(per_class[c] == 1000, "test class %d has %lld images", c,
               (long long)per_class[c]);
    dataset_free(&ds);

    dataset_load(&ds, REAL_DATA_DIR, false, 100, 10);
    EXPECT(ds.count == 100, "test limit 100 keeps %lld", (long long)ds.count);
    /* The first test image is an ankle boot (class 9). */
    EXPECT(ds.labels[0] == 9, "first test label %d", ds.labels[0]);
    dataset_free(&ds);
}

int main(void)
{
    if (!test_tmpdir_make("test_idx")) return 1;
    test_valid_and_limit();
    test_read_limits();
    test_truncated_gzip();
    test_bad_headers();
    test_dataset_load();
    test_real_data();
    remove_tree(test_tmpdir());
    return test_summary("test_idx");
}
