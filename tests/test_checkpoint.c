/* test_checkpoint: ckpt_write / ckpt_read / ckpt_checksum (checkpoint.c).
 *
 * A small ResNet-18 (width 4, 16x16 input) with distinct values in every weight,
 * momentum and buffer is written to a mkdtemp() directory and read back into a model
 * holding other values; everything must come back bit-exactly. Then each way a read
 * or write can fail: missing, truncated and garbage files, another architecture,
 * files edited afterwards with the HDF5 API (changed value, NaN, reshaped, extra or
 * missing tensors and attributes), unwritable destinations and a write that runs out
 * of space (RLIMIT_FSIZE) -- each must return -1 with a message naming the cause,
 * leave the model unchanged and leave no partial file behind. */
#include "checkpoint.h"
#include "ckpt_seal.h"
#include "error.h"
#include "testutil.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

/* ------------------------------------------------------------------ helpers */

static bool file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static bool tmp_exists(const char *path)
{
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    return file_exists(tmp);
}

static uint8_t *read_whole(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = xmalloc(n > 0 ? (size_t)n : 1);
    *len = fread(buf, 1, (size_t)n, f);
    fclose(f);
    return buf;
}

static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}

static void copy_file(const char *from, const char *to)
{
    size_t len = 0;
    uint8_t *data = read_whole(from, &len);
    if (!data) {
        fprintf(stderr, "cannot read %s\n", from);
        exit(1);
    }
    write_bytes(to, data, len);
    free(data);
}

static struct model_spec small_spec(int depth, int width)
{
    return (struct model_spec){.depth = depth, .width = width, .num_classes = 10,
                               .in_channels = 1, .image_size = 16, .max_batch = 2};
}

/* Initialized weights, plus momentum, buffers and num_batches_tracked all distinct
 * and depending on `salt`, so two models filled with different salts differ. */
static void fill_model(struct resnet *m, uint64_t seed, float salt, int64_t nbt)
{
    resnet_init_params(m, INIT_XAVIER, seed);
    for (int i = 0; i < m->nparams; i++) {
        const struct tensor_view *p = &m->params[i];
        for (size_t j = 0; j < p->count; j++)
            m->momentum[p->offset + j] = salt + (float)i * 0.5f + (float)j * 1e-3f;
    }
    for (size_t k = 0; k < m->buffer_floats; k++)
        m->buffer_data[k] = salt * 2.0f + (float)k * 0.25f;
    m->num_batches_tracked = nbt;
}

static void fill_state(struct ckpt_state *st)
{
    memset(st, 0, sizeof *st);
    st->epoch = 3;
    st->step_in_epoch = 5;
    st->global_step = 1234;
    st->seed = 0xfedcba9876543210ull; /* above INT64_MAX: must survive as uint64 */
    st->world_size = 8;
    st->global_batch = 256;
    st->image_size = 16;
    snprintf(st->config_text, sizeof st->config_text,
             "[model]\ndepth = 18\nwidth = 4\n\n[train]\nseed = %" PRIu64 "\n", st->seed);
}

/* Bit-exact comparison of every tensor (padding excluded) and num_batches_tracked. */
static int models_equal(const struct resnet *a, const struct resnet *b, const char *what)
{
    int bad = 0;
    for (int i = 0; i < a->nparams; i++) {
        const struct tensor_view *p = &a->params[i];
        size_t bytes = p->count * sizeof(float);
        if (memcmp(a->weights + p->offset, b->weights + p->offset, bytes) != 0) {
            EXPECT(0, "%s: weights of '%s' differ", what, p->name);
            bad++;
        }
        if (memcmp(a->momentum + p->offset, b->momentum + p->offset, bytes) != 0) {
            EXPECT(0, "%s: momentum of '%s' differs", what, p->name);
            bad++;
        }
    }
    for (int i = 0; i < a->nbuffers; i++) {
        const struct tensor_view *v = &a->buffers[i];
        if (memcmp(a->buffer_data + v->offset, b->buffer_data + v->offset,
                   v->count * sizeof(float)) != 0) {
            EXPECT(0, "%s: buffer '%s' differs", what, v->name);
            bad++;
        }
    }
    if (a->num_batches_tracked != b->num_batches_tracked) {
        EXPECT(0, "%s: num_batches_tracked %" PRId64 " vs %" PRId64, what, a->num_batches_tracked,
               b->num_batches_tracked);
        bad++;
    }
    return bad == 0;
}

/* A full copy of a model's state, to prove a failed read left it untouched. */
struct snapshot {
    float *weights, *momentum, *buffers;
    int64_t nbt;
};

static struct snapshot take_snapshot(const struct resnet *m)
{
    struct snapshot s = {xmalloc(m->param_floats * sizeof(float)),
                         xmalloc(m->param_floats * sizeof(float)),
                         xmalloc(m->buffer_floats * sizeof(float)), m->num_batches_tracked};
    memcpy(s.weights, m->weights, m->param_floats * sizeof(float));
    memcpy(s.momentum, m->momentum, m->param_floats * sizeof(float));
    memcpy(s.buffers, m->buffer_data, m->buffer_floats * sizeof(float));
    return s;
}

static bool snapshot_matches(const struct snapshot *s, const struct resnet *m)
{
    return memcmp(s->weights, m->weights, m->param_floats * sizeof(float)) == 0 &&
           memcmp(s->momentum, m->momentum, m->param_floats * sizeof(float)) == 0 &&
           memcmp(s->buffers, m->buffer_data, m->buffer_floats * sizeof(float)) == 0 &&
           s->nbt == m->num_batches_tracked;
}

static void free_snapshot(struct snapshot *s)
{
    free(s->weights);
    free(s->momentum);
    free(s->buffers);
}

/* Reading `path` into m must fail with every word (NULL-terminated list) in the
 * message, and must not touch m. */
static void expect_read_fails(const char *label, const char *path, struct resnet *m, ...)
{
    struct snapshot snap = take_snapshot(m);
    struct ckpt_state *st = xcalloc(1, sizeof *st);
    char err[1024] = "";
    int rc = ckpt_read(path, m, st, err, sizeof err);
    EXPECT(rc == -1, "%s: ckpt_read returned %d", label, rc);
    EXPECT(strchr(err, '\n') == NULL, "%s: message is not one line: %s", label, err);
    va_list ap;
    va_start(ap, m);
    for (const char *w; (w = va_arg(ap, const char *)) != NULL;)
        EXPECT(strstr(err, w) != NULL, "%s: message lacks '%s': %s", label, w, err);
    va_end(ap);
    EXPECT(snapshot_matches(&snap, m), "%s: the model changed on a failed read", label);
    printf("  %-28s -> %s\n", label, err);
    free_snapshot(&snap);
    free(st);
}

static void expect_write_fails(const char *label, const char *path, const struct resnet *m,
                               const struct ckpt_state *st, const char *word)
{
    char err[1024] = "";
    int rc = ckpt_write(path, m, st, err, sizeof err);
    EXPECT(rc == -1, "%s: ckpt_write returned %d", label, rc);
    EXPECT(strstr(err, "cannot write checkpoint") && strstr(err, path),
           "%s: message lacks the prefix or the path: %s", label, err);
    EXPECT(strstr(err, word) != NULL, "%s: message lacks '%s': %s", label, word, err);
    EXPECT(!tmp_exists(path), "%s: %s.tmp left behind", label, path);
    printf("  %-28s -> %s\n", label, err);
}

/* Edits of a written file through the HDF5 API. Each reseals the file afterwards
 * (ckpt_seal.h), so the reader gets past the CRC to the check under test. */
static void close_edit(hid_t f, const char *path)
{
    char err[512];
    if (H5Fclose(f) < 0 || ckpt_reseal_file(path, err, sizeof err) != 0) {
        fprintf(stderr, "cannot finish editing %s\n", path);
        exit(1);
    }
}

static hid_t open_rw(const char *path)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) {
        fprintf(stderr, "cannot open %s for editing\n", path);
        exit(1);
    }
    return f;
}

static void set_float(const char *path, const char *dataset, size_t index, float value)
{
    hid_t f = open_rw(path);
    hid_t ds = H5Dopen2(f, dataset, H5P_DEFAULT);
    hid_t space = H5Dget_space(ds);
    hssize_t n = ds < 0 ? -1 : H5Sget_simple_extent_npoints(space);
    float *v = n > (hssize_t)index ? xmalloc((size_t)n * sizeof(float)) : NULL;
    if (!v || H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0) {
        fprintf(stderr, "cannot edit %s in %s\n", dataset, path);
        exit(1);
    }
    v[index] = value;
    H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    free(v);
    H5Sclose(space);
    H5Dclose(ds);
    close_edit(f, path);
}

static void set_int_attr(const char *path, const char *name, int64_t value)
{
    hid_t f = open_rw(path);
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, &value);
    H5Aclose(a);
    close_edit(f, path);
}

static void set_int_dataset(const char *path, const char *dataset, int64_t value)
{
    hid_t f = open_rw(path);
    hid_t ds = H5Dopen2(f, dataset, H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &value);
    H5Dclose(ds);
    close_edit(f, path);
}

static void delete_attr(const char *path, const char *name)
{
    hid_t f = open_rw(path);
    if (H5Adelete(f, name) < 0) {
        fprintf(stderr, "cannot delete attribute %s in %s\n", name, path);
        exit(1);
    }
    close_edit(f, path);
}

static void delete_link(const char *path, const char *name)
{
    hid_t f = open_rw(path);
    if (H5Ldelete(f, name, H5P_DEFAULT) < 0) {
        fprintf(stderr, "cannot delete %s in %s\n", name, path);
        exit(1);
    }
    close_edit(f, path);
}

/* Replaces the root attribute `name` with a string: variable-length UTF-8 if
 * fixed_len is 0, else fixed-length ASCII of that size. */
static void put_string_attr(const char *path, const char *name, const char *value, size_t fixed_len)
{
    hid_t f = open_rw(path);
    if (H5Aexists(f, name) > 0) H5Adelete(f, name);
    hid_t type = H5Tcopy(H5T_C_S1);
    if (fixed_len) {
        H5Tset_size(type, fixed_len);
    } else {
        H5Tset_size(type, H5T_VARIABLE);
        H5Tset_cset(type, H5T_CSET_UTF8);
    }
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = fixed_len ? H5Awrite(a, type, value) : H5Awrite(a, type, &value);
    if (rc < 0) {
        fprintf(stderr, "cannot write attribute %s in %s\n", name, path);
        exit(1);
    }
    H5Aclose(a);
    H5Sclose(space);
    H5Tclose(type);
    close_edit(f, path);
}

/* Replaces (or adds) a float dataset with the given shape, filled with zeros. */
static void put_dataset(const char *path, const char *name, int ndim, const hsize_t *dims)
{
    hid_t f = open_rw(path);
    htri_t exists = H5Lexists(f, name, H5P_DEFAULT);
    if (exists > 0) H5Ldelete(f, name, H5P_DEFAULT);
    hid_t space = H5Screate_simple(ndim, dims, NULL);
    hid_t ds = H5Dcreate2(f, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hssize_t n = H5Sget_simple_extent_npoints(space);
    float *zeros = xcalloc((size_t)n, sizeof(float));
    H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros);
    free(zeros);
    H5Dclose(ds);
    H5Sclose(space);
    close_edit(f, path);
}

/* FNV-1a 64 as checkpoint.h specifies it, written out independently. */
static uint64_t fnv(uint64_t h, const void *data, size_t n)
{
    const uint8_t *p = data; /* x86: little-endian already */
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t reference_checksum(const struct resnet *m)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < m->nparams; i++)
        h = fnv(h, m->weights + m->params[i].offset, m->params[i].count * sizeof(float));
    for (int i = 0; i < m->nparams; i++)
        h = fnv(h, m->momentum + m->params[i].offset, m->params[i].count * sizeof(float));
    for (int i = 0; i < m->nbuffers; i++)
        h = fnv(h, m->buffer_data + m->buffers[i].offset, m->buffers[i].count * sizeof(float));
    return fnv(h, &m->num_batches_tracked, sizeof m->num_batches_tracked);
}

/* -------------------------------------------------------------------- tests */

static void test_checksum(struct resnet *a)
{
    uint64_t c = ckpt_checksum(a);
    EXPECT(c == ckpt_checksum(a), "checksum is not deterministic");
    EXPECT(c == reference_checksum(a), "checksum 0x%016" PRIx64 " != reference 0x%016" PRIx64, c,
           reference_checksum(a));
    /* Alignment padding is not part of the state. */
    for (int i = 0; i < a->nparams; i++) {
        const struct tensor_view *p = &a->params[i];
        size_t pad = p->offset + p->count;
        if (pad < a->param_floats && p->count % 16 != 0) {
            a->weights[pad] = 123.0f;
            a->momentum[pad] = -7.0f;
            EXPECT(ckpt_checksum(a) == c, "checksum depends on the padding after '%s'", p->name);
            a->weights[pad] = 0.0f;
            a->momentum[pad] = 0.0f;
            break;
        }
    }
    float saved = a->momentum[a->params[3].offset];
    a->momentum[a->params[3].offset] += 1.0f;
    EXPECT(ckpt_checksum(a) != c, "checksum ignores momentum");
    a->momentum[a->params[3].offset] = saved;
    a->num_batches_tracked++;
    EXPECT(ckpt_checksum(a) != c, "checksum ignores num_batches_tracked");
    a->num_batches_tracked--;
    a->buffer_data[0] += 1.0f;
    EXPECT(ckpt_checksum(a) != c, "checksum ignores the buffers");
    a->buffer_data[0] -= 1.0f;
    EXPECT(ckpt_checksum(a) == c, "checksum did not come back");
}

static void test_round_trip(const struct resnet *a, const struct ckpt_state *st, const char *path)
{
    char err[1024] = "";
    EXPECT(ckpt_write(path, a, st, err, sizeof err) == 0, "write: %s", err);
    EXPECT(file_exists(path), "%s was not created", path);
    EXPECT(!tmp_exists(path), "%s.tmp left behind", path);

    struct model_spec spec = small_spec(18, 4);
    struct resnet b;
    resnet_init(&b, &spec);
    fill_model(&b, 99, 50.0f, 7);
    struct ckpt_state *got = xcalloc(1, sizeof *got);
    memset(got, 0x5a, sizeof *got);
    EXPECT(ckpt_read(path, &b, got, err, sizeof err) == 0, "read: %s", err);
    EXPECT(models_equal(a, &b, "round trip"), "round trip differs");
    EXPECT(ckpt_checksum(&b) == ckpt_checksum(a), "checksum differs after the round trip");
    EXPECT(got->epoch == st->epoch, "epoch %" PRId64, got->epoch);
    EXPECT(got->step_in_epoch == st->step_in_epoch, "step_in_epoch %" PRId64, got->step_in_epoch);
    EXPECT(got->global_step == st->global_step, "global_step %" PRId64, got->global_step);
    EXPECT(got->seed == st->seed, "seed 0x%" PRIx64, got->seed);
    EXPECT(got->world_size == st->world_size, "world_size %d", got->world_size);
    EXPECT(got->global_batch == st->global_batch, "global_batch %d", got->global_batch);
    EXPECT(got->image_size == st->image_size, "image_size %d", got->image_size);
    EXPECT(strcmp(got->config_text, st->config_text) == 0, "config_text '%s'", got->config_text);
    free(got);
    resnet_free(&b);

    /* The layout other tools rely on: root attributes and a scalar int64
     * num_batches_tracked next to each BN layer's buffers. */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    const char *attrs[] = {"format_version", "program_version", "epoch", "step_in_epoch",
                           "global_step", "seed", "world_size", "global_batch", "depth", "width",
                           "num_classes", "image_size", "config", "checksum", "created"};
    for (size_t i = 0; i < sizeof attrs / sizeof *attrs; i++)
        EXPECT(H5Aexists(f, attrs[i]) > 0, "attribute '%s' missing", attrs[i]);
    hid_t a_ck = H5Aopen(f, "checksum", H5P_DEFAULT);
    uint64_t stored = 0;
    H5Aread(a_ck, H5T_NATIVE_UINT64, &stored);
    H5Aclose(a_ck);
    EXPECT(stored == ckpt_checksum(a), "stored checksum 0x%016" PRIx64, stored);
    hid_t ds = H5Dopen2(f, "/model/1.1.bn2.num_batches_tracked", H5P_DEFAULT);
    int64_t nbt = -1;
    EXPECT(ds >= 0 && H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &nbt) >= 0 &&
               nbt == 42,
           "num_batches_tracked dataset: %" PRId64, nbt);
    if (ds >= 0) H5Dclose(ds);
    H5Fclose(f);
}

static void test_small_errsize(const char *path, struct resnet *b)
{
    struct ckpt_state *st = xcalloc(1, sizeof *st);
    char err[24];
    memset(err, 'x', sizeof err);
    EXPECT(ckpt_read(tmp_path("absent-for-small-buffer.h5"), b, st, err, 16) == -1,
           "read of a missing file succeeded");
    EXPECT(memchr(err, '\0', 16) != NULL && err[16] == 'x', "message overflowed errsize 16");
    EXPECT(ckpt_read(path, b, st, NULL, 0) == 0, "read with no message buffer failed");
    free(st);
}

/* config_text: a full, unterminated buffer is written whole and read back
 * truncated to fit with its terminator; longer and fixed-length strings too. */
static void test_config_text(const struct resnet *a, const struct ckpt_state *st, struct resnet *b)
{
    char path[256], err[1024] = "";
    snprintf(path, sizeof path, "%s", tmp_path("config.h5"));
    struct ckpt_state *full = xmalloc(sizeof *full), *got = xcalloc(1, sizeof *got);
    *full = *st;
    memset(full->config_text, 'c', sizeof full->config_text);
    EXPECT(ckpt_write(path, a, full, err, sizeof err) == 0, "write full config: %s", err);
    memset(got->config_text, 'x', sizeof got->config_text);
    EXPECT(ckpt_read(path, b, got, err, sizeof err) == 0, "read full config: %s", err);
    size_t n = strnlen(got->config_text, sizeof got->config_text);
    EXPECT(n == sizeof got->config_text - 1 && got->config_text[0] == 'c' &&
               got->config_text[n - 1] == 'c',
           "full config read back as %zu chars", n);

    size_t big = 3 * sizeof got->config_text;
    char *longer = xmalloc(big);
    memset(longer, 'L', big - 1);
    longer[big - 1] = '\0';
    put_string_attr(path, "config", longer, big);
    EXPECT(ckpt_read(path, b, got, err, sizeof err) == 0, "read long config: %s", err);
    EXPECT(strnlen(got->config_text, sizeof got->config_text) == sizeof got->config_text - 1 &&
               got->config_text[0] == 'L',
           "long config not truncated to fit");
    put_string_attr(path, "config", "variable", 0);
    expect_read_fails("variable-length config", path, b, "'config' is a variable-length string",
                      NULL);
    put_string_attr(path, "config", "[train]\nepochs = 1\n", 20);
    EXPECT(ckpt_read(path, b, got, err, sizeof err) == 0, "read fixed-length config: %s", err);
    EXPECT(strcmp(got->config_text, "[train]\nepochs = 1\n") == 0, "fixed-length config '%s'",
           got->config_text);
    put_string_attr(path, "config", "abc", 3); /* exactly 3 bytes, no terminator */
    EXPECT(ckpt_read(path, b, got, err, sizeof err) == 0, "read 3-byte config: %s", err);
    EXPECT(strcmp(got->config_text, "abc") == 0, "3-byte config '%s'", got->config_text);
    free(longer);
    free(full);
    free(got);
    fill_model(b, 2, 10.0f, 9);
}

static void test_bad_files(const char *good, struct resnet *b)
{
    expect_read_fails("missing file", tmp_path("absent.h5"), b, "absent.h5",
                      "No such file or directory", NULL);

    size_t len = 0;
    uint8_t *bytes = read_whole(good, &len);
    write_bytes(tmp_path("half.h5"), bytes, len / 2);
    char says[64];
    snprintf(says, sizeof says, "the header says %zu bytes", len);
    expect_read_fails("truncated copy", tmp_path("half.h5"), b, "half.h5", "truncated", says,
                      NULL);
    write_bytes(tmp_path("tiny.h5"), bytes, 100);
    expect_read_fails("first 100 bytes", tmp_path("tiny.h5"), b, "truncated: 100 bytes", NULL);
    write_bytes(tmp_path("empty.h5"), bytes, 0);
    expect_read_fails("empty file", tmp_path("empty.h5"), b, "not a resnet_ddp checkpoint", NULL);
    /* One bit of the contents, then one of the header. */
    bytes[len / 2] ^= 0x10;
    write_bytes(tmp_path("bitflip.h5"), bytes, len);
    expect_read_fails("one bit flipped", tmp_path("bitflip.h5"), b, "bitflip.h5", "corrupt: CRC-32",
                      NULL);
    bytes[len / 2] ^= 0x10;
    bytes[40] ^= 0x01;
    write_bytes(tmp_path("header.h5"), bytes, len);
    expect_read_fails("header bit flipped", tmp_path("header.h5"), b, "header.h5", NULL);
    bytes[40] ^= 0x01;
    /* The same HDF5 file without the header (format 1 had none). */
    write_bytes(tmp_path("format1.h5"), bytes + CKPT_SEAL_SIZE, len - CKPT_SEAL_SIZE);
    expect_read_fails("no header (format 1)", tmp_path("format1.h5"), b,
                      "expected it to start with the line 'resnet_ddp checkpoint format 2'", NULL);
    /* Flip bytes all over the file: some error is expected (the checksum covers the
     * data), a crash is not. */
    struct snapshot snap = take_snapshot(b);
    for (int k = 0; k < 4; k++) {
        uint8_t *copy = xmalloc(len);
        memcpy(copy, bytes, len);
        for (size_t i = 64 + (size_t)k * 97; i < len; i += 997 + (size_t)k) copy[i] ^= 0xa5;
        write_bytes(tmp_path("flipped.h5"), copy, len);
        struct ckpt_state *st = xcalloc(1, sizeof *st);
        char err[1024] = "";
        int rc = ckpt_read(tmp_path("flipped.h5"), b, st, err, sizeof err);
        EXPECT(rc == 0 || (rc == -1 && strstr(err, "flipped.h5")), "flipped: rc %d, '%s'", rc, err);
        EXPECT(rc == 0 || snapshot_matches(&snap, b), "flipped: the model changed on a failed read");
        printf("  %-28s -> %s\n", "flipped bytes", rc == 0 ? "(read)" : err);
        free(st);
        free(copy);
    }
    free_snapshot(&snap);
    fill_model(b, 2, 10.0f, 9);
    free(bytes);
    char garbage[4096];
    for (size_t i = 0; i < sizeof garbage; i++) garbage[i] = (char)('a' + i % 26);
    write_bytes(tmp_path("garbage.h5"), garbage, sizeof garbage);
    expect_read_fails("garbage file", tmp_path("garbage.h5"), b, "garbage.h5",
                      "not a resnet_ddp checkpoint", NULL);
    /* A valid header over bytes that are not HDF5. */
    memcpy(garbage, "resnet_ddp checkpoint format 2\n", 31);
    ckpt_seal_image((unsigned char *)garbage, sizeof garbage);
    write_bytes(tmp_path("sealed-garbage.h5"), garbage, sizeof garbage);
    expect_read_fails("sealed garbage", tmp_path("sealed-garbage.h5"), b, "sealed-garbage.h5",
                      "not a readable HDF5 checkpoint", NULL);
    expect_read_fails("a directory", test_tmpdir(), b, "is not a regular file", NULL);

    /* HDF5, but not a checkpoint. */
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_userblock(fcpl, CKPT_SEAL_SIZE);
    hid_t f = H5Fcreate(tmp_path("plain.h5"), H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    H5Pclose(fcpl);
    close_edit(f, tmp_path("plain.h5"));
    expect_read_fails("HDF5 without attributes", tmp_path("plain.h5"), b,
                      "missing attribute 'format_version'", NULL);

    char p[256];
    snprintf(p, sizeof p, "%s", tmp_path("edit.h5"));
    copy_file(good, p);
    set_int_attr(p, "format_version", 3);
    expect_read_fails("format version 3", p, b, "format version 3", NULL);

    copy_file(good, p);
    delete_attr(p, "global_step");
    expect_read_fails("missing attribute", p, b, "missing attribute 'global_step'", NULL);

    copy_file(good, p);
    delete_attr(p, "checksum");
    expect_read_fails("missing checksum", p, b, "'checksum'", NULL);

    copy_file(good, p);
    set_int_attr(p, "world_size", 0);
    expect_read_fails("world_size 0", p, b, "world_size", "out of range", NULL);

    copy_file(good, p);
    delete_link(p, "model");
    expect_read_fails("no /model group", p, b, "missing group /model", NULL);

    copy_file(good, p);
    delete_link(p, "optimizer");
    expect_read_fails("no /optimizer group", p, b, "missing group /optimizer", NULL);

    copy_file(good, p);
    delete_link(p, "/optimizer/7.bias");
    expect_read_fails("missing momentum", p, b, "'7.bias'", "missing", "/optimizer", NULL);

    copy_file(good, p);
    delete_link(p, "/model/0.1.num_batches_tracked");
    expect_read_fails("missing num_batches_tracked", p, b, "0.1.num_batches_tracked", "missing",
                      NULL);

    copy_file(good, p);
    set_int_dataset(p, "/model/2.0.bn1.num_batches_tracked", 41);
    expect_read_fails("num_batches_tracked disagree", p, b, "2.0.bn1.num_batches_tracked", "41",
                      "42", NULL);

    copy_file(good, p);
    put_dataset(p, "/model/extra.weight", 1, (hsize_t[]){3});
    expect_read_fails("extra tensor", p, b, "unexpected tensor '/model/extra.weight'", NULL);

    copy_file(good, p);
    put_dataset(p, "/optimizer/0.1.running_mean", 1, (hsize_t[]){4});
    expect_read_fails("extra momentum", p, b, "unexpected tensor '/optimizer/0.1.running_mean'",
                      NULL);

    copy_file(good, p);
    put_dataset(p, "/model/2.0.conv3.weight", 4, (hsize_t[]){8, 4, 3, 3});
    expect_read_fails("wrong shape", p, b,
                      "tensor '2.0.conv3.weight' has shape (8, 4, 3, 3), expected (8, 4, 1, 1)",
                      NULL);

    copy_file(good, p);
    put_dataset(p, "/model/7.bias", 2, (hsize_t[]){10, 1});
    expect_read_fails("wrong rank", p, b, "'7.bias' has shape (10, 1), expected (10)", NULL);

    copy_file(good, p);
    set_float(p, "/model/3.0.conv1.weight", 7, 0.125f);
    expect_read_fails("value changed", p, b, "checksum mismatch: stored 0x", "computed 0x", NULL);

    copy_file(good, p);
    set_float(p, "/model/1.0.bn1.weight", 3, NAN);
    expect_read_fails("NaN", p, b, "tensor '1.0.bn1.weight' holds a non-finite value at index 3",
                      NULL);

    copy_file(good, p);
    set_float(p, "/optimizer/7.weight", 2, -INFINITY);
    expect_read_fails("infinite momentum", p, b, "'7.weight'", "non-finite", "index 2", NULL);
}

static void test_other_architectures(struct resnet *b, const struct ckpt_state *st)
{
    char err[1024] = "";
    struct model_spec s34 = small_spec(34, 4), s8 = small_spec(18, 8);
    struct resnet r34, w8;
    resnet_init(&r34, &s34);
    fill_model(&r34, 5, 1.0f, 3);
    EXPECT(ckpt_write(tmp_path("r34.h5"), &r34, st, err, sizeof err) == 0, "write r34: %s", err);
    expect_read_fails("ResNet-34 into ResNet-18", tmp_path("r34.h5"), b,
                      "is ResNet-34 (width 4, 10 classes) but the config builds ResNet-18 (width 4, "
                      "10 classes)",
                      NULL);
    resnet_free(&r34);

    resnet_init(&w8, &s8);
    fill_model(&w8, 5, 1.0f, 3);
    EXPECT(ckpt_write(tmp_path("w8.h5"), &w8, st, err, sizeof err) == 0, "write w8: %s", err);
    expect_read_fails("width 8 into width 4", tmp_path("w8.h5"), b, "(width 8,", "(width 4,", NULL);
    resnet_free(&w8);
}

static void test_write_failures(const struct resnet *a, const struct ckpt_state *st)
{
    expect_write_fails("missing directory", tmp_path("nodir/ckpt.h5"), a, st,
                       "No such file or directory");
    EXPECT(!file_exists(tmp_path("nodir/ckpt.h5")), "file appeared in a missing directory");

    /* Root ignores directory permissions, so make the parent a regular file. */
    write_bytes(tmp_path("afile"), "x", 1);
    expect_write_fails("directory is a file", tmp_path("afile/sub/ckpt.h5"), a, st,
                       "Not a directory");

    /* A stale .tmp from a crashed run does not get in the way. */
    const char *p = tmp_path("stale.h5");
    char tmp[300], err[1024] = "";
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    write_bytes(tmp, "half-written", 12);
    EXPECT(ckpt_write(p, a, st, err, sizeof err) == 0, "write over a stale .tmp: %s", err);
    EXPECT(!file_exists(tmp), "stale .tmp survived");
}

/* Disk full, simulated with a file-size limit: the write fails part way through,
 * and the good checkpoint already at the path must survive intact. */
static void test_disk_full(const struct resnet *a, const struct ckpt_state *st, const char *good)
{
    const char *p = tmp_path("full.h5");
    copy_file(good, p);
    struct resnet c;
    struct model_spec spec = small_spec(18, 4);
    resnet_init(&c, &spec);
    fill_model(&c, 11, 9.0f, 5);

    struct rlimit old;
    getrlimit(RLIMIT_FSIZE, &old);
    struct rlimit lim = old;
    lim.rlim_cur = 64 * 1024;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0) {
        printf("  (cannot set RLIMIT_FSIZE; disk-full case skipped)\n");
    } else {
        expect_write_fails("file size limit", p, &c, st, "File too large");
        setrlimit(RLIMIT_FSIZE, &old);
    }
    signal(SIGXFSZ, old_handler);

    struct resnet d;
    resnet_init(&d, &spec);
    struct ckpt_state *got = xcalloc(1, sizeof *got);
    char err[1024] = "";
    EXPECT(ckpt_read(p, &d, got, err, sizeof err) == 0, "old checkpoint damaged: %s", err);
    EXPECT(models_equal(a, &d, "after a failed write"), "old checkpoint changed");
    free(got);
    resnet_free(&d);
    resnet_free(&c);
}

/* Writing over an existing checkpoint replaces it with the new state. */
static void test_overwrite(struct resnet *a, const struct ckpt_state *st, const char *path)
{
    char err[1024] = "";
    struct model_spec spec = small_spec(18, 4);
    struct resnet c;
    resnet_init(&c, &spec);
    fill_model(&c, 12, 3.5f, 43);
    struct ckpt_state st2 = *st;
    st2.epoch = 4;
    st2.step_in_epoch = 0;
    EXPECT(ckpt_write(path, &c, &st2, err, sizeof err) == 0, "overwrite: %s", err);
    EXPECT(!tmp_exists(path), "%s.tmp left behind by the overwrite", path);
    struct ckpt_state *got = xcalloc(1, sizeof *got);
    EXPECT(ckpt_read(path, a, got, err, sizeof err) == 0, "read after overwrite: %s", err);
    EXPECT(models_equal(&c, a, "after overwrite"), "overwrite did not replace the contents");
    EXPECT(got->epoch == 4 && got->step_in_epoch == 0, "state after overwrite: %" PRId64 ", %" PRId64,
           got->epoch, got->step_in_epoch);
    free(got);
    resnet_free(&c);
}

int main(void)
{
    if (!test_tmpdir_make("test_checkpoint")) return 1;
    H5E_auto2_t auto_func = NULL;
    void *auto_data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &auto_func, &auto_data);
    struct model_spec spec = small_spec(18, 4);
    struct resnet a, b;
    resnet_init(&a, &spec);
    resnet_init(&b, &spec);
    fill_model(&a, 1, 0.25f, 42);
    fill_model(&b, 2, 10.0f, 9);
    struct ckpt_state st;
    fill_state(&st);
    char good[256];
    snprintf(good, sizeof good, "%s", tmp_path("good.h5"));

    test_checksum(&a);
    test_round_trip(&a, &st, good);
    test_small_errsize(good, &b);
    fill_model(&b, 2, 10.0f, 9);
    test_config_text(&a, &st, &b);
    test_bad_files(good, &b);
    test_other_architectures(&b, &st);
    test_write_failures(&a, &st);
    test_disk_full(&a, &st, good);
    test_overwrite(&a, &st, good);

    /* Every call silenced HDF5's error printing and restored it; nothing left open. */
    H5E_auto2_t func = NULL;
    void *data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &func, &data);
    EXPECT(func == auto_func && data == auto_data, "HDF5 error printing was not restored");
    EXPECT(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0, "%zd HDF5 objects left open",
           (ssize_t)H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL));

    resnet_free(&a);
    resnet_free(&b);
    remove_tree(test_tmpdir());
    return test_summary("test_checkpoint");
}
