/* checkpoint: write and verify the HDF5 training checkpoint (layout in checkpoint.h).
 *
 * Every failure returns -1 with a one-line message; nothing here exits or prints,
 * because the caller decides what a bad checkpoint means (and ckpt_read must survive
 * arbitrary bytes). HDF5's automatic error printing is switched off for the duration
 * of each call; when a reason is needed it is taken from the innermost entry of the
 * HDF5 error stack, which must be read right after the failing call, before any
 * cleanup call clears it.
 *
 * Checksum: FNV-1a 64 over, in this order, the weights of params 0..nparams-1, the
 * momentum of params 0..nparams-1, the data of buffers 0..nbuffers-1 (each float as
 * its 4 little-endian bytes, alignment padding excluded) and num_batches_tracked as 8
 * little-endian bytes. */
#include "checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hdf5.h>

#include "ckpt_seal.h"
#include "error.h"

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull
#define NBT_SUFFIX ".num_batches_tracked"
#define MEAN_SUFFIX ".running_mean"
#define MAX_STRING_ATTR ((size_t)1 << 24) /* refuse absurd fixed-length strings */

/* ---- messages ------------------------------------------------------------------ */

struct h5_reason {
    char text[200];
};

/* Keep the useful part of an HDF5 description: the errno text of a failed system
 * call ("... error message = 'No space left on device', ...") if there is one, else
 * the description up to its first comma ("truncated file: eof = 512"). */
static herr_t reason_walk(unsigned n, const H5E_error2_t *e, void *data)
{
    struct h5_reason *r = data;
    if (n != 0 || !e->desc) return 0;
    const char *key = "error message = '";
    const char *s = strstr(e->desc, key);
    size_t len;
    if (s) {
        s += strlen(key);
        const char *end = strchr(s, '\'');
        len = end ? (size_t)(end - s) : strlen(s);
    } else {
        s = e->desc;
        len = strcspn(s, ",");
    }
    if (len >= sizeof r->text) len = sizeof r->text - 1;
    memcpy(r->text, s, len);
    r->text[len] = '\0';
    return 0;
}

/* Reason of the HDF5 call that just failed (its error stack is still current). */
static void h5_reason(char *buf, size_t size)
{
    struct h5_reason r = {"HDF5 error"};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, reason_walk, &r);
    if (r.text[0] == '\0') strcpy(r.text, "HDF5 error");
    snprintf(buf, size, "%s", r.text);
}

static void format_shape(char *buf, size_t size, int ndim, const hsize_t *dims)
{
    size_t used = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%llu", i ? ", " : "",
                                 (unsigned long long)dims[i]);
    if (used < size) snprintf(buf + used, size - used, ")");
}

/* ---- checksum ------------------------------------------------------------------ */

static uint64_t fnv_floats(uint64_t h, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        for (int b = 0; b < 4; b++) {
            h ^= (u >> (8 * b)) & 0xffu;
            h *= FNV_PRIME;
        }
    }
    return h;
}

/* Over arenas laid out like m's (ckpt_read checks the copies it has read); the weight
 * average's, when there is one, go after the rest (without one the sum is as before). */
static uint64_t checksum_of(const struct resnet *m, const float *weights, const float *momentum,
                            const float *buffers, int64_t nbt, const float *ema,
                            const float *ema_buffers)
{
    uint64_t h = FNV_OFFSET;
    for (int i = 0; i < m->nparams; i++)
        h = fnv_floats(h, weights + m->params[i].offset, m->params[i].count);
    for (int i = 0; i < m->nparams; i++)
        h = fnv_floats(h, momentum + m->params[i].offset, m->params[i].count);
    for (int i = 0; i < m->nbuffers; i++)
        h = fnv_floats(h, buffers + m->buffers[i].offset, m->buffers[i].count);
    uint64_t u = (uint64_t)nbt;
    for (int b = 0; b < 8; b++) {
        h ^= (u >> (8 * b)) & 0xffu;
        h *= FNV_PRIME;
    }
    if (!ema) return h;
    for (int i = 0; i < m->nparams; i++)
        h = fnv_floats(h, ema + m->params[i].offset, m->params[i].count);
    for (int i = 0; i < m->nbuffers; i++)
        h = fnv_floats(h, ema_buffers + m->buffers[i].offset, m->buffers[i].count);
    return h;
}

uint64_t ckpt_checksum(const struct resnet *m)
{
    return checksum_of(m, m->weights, m->momentum, m->buffer_data, m->num_batches_tracked, m->ema,
                       m->ema_buffers);
}

/* "<prefix>.num_batches_tracked" for a running_mean buffer; false for other buffers. */
static bool nbt_name(const struct tensor_view *b, char *out, size_t size)
{
    size_t len = strlen(b->name), sl = strlen(MEAN_SUFFIX);
    if (b->role != ROLE_RUNNING_MEAN || len < sl || strcmp(b->name + len - sl, MEAN_SUFFIX) != 0)
        return false;
    snprintf(out, size, "%.*s%s", (int)(len - sl), b->name, NBT_SUFFIX);
    return true;
}

/* ---- writing ------------------------------------------------------------------- */

/* Each helper returns 0 or -1 with the reason in why (HDF5 stack read at once). */
struct why {
    char text[320];
};

static int h5_fail(struct why *w, const char *what, const char *name)
{
    char r[200];
    h5_reason(r, sizeof r);
    if (name)
        snprintf(w->text, sizeof w->text, "%s '%s': %s", what, name, r);
    else
        snprintf(w->text, sizeof w->text, "%s: %s", what, r);
    return -1;
}

static int sys_fail(struct why *w, const char *what, const char *name, int errnum)
{
    snprintf(w->text, sizeof w->text, "%s '%s': %s", what, name, strerror(errnum));
    return -1;
}

static int write_attr(hid_t loc, const char *name, hid_t file_type, hid_t mem_type,
                      const void *value, struct why *w)
{
    hid_t space = H5Screate(H5S_SCALAR);
    if (space < 0) return h5_fail(w, "cannot create the dataspace of attribute", name);
    hid_t attr = H5Acreate2(loc, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Sclose(space);
    if (attr < 0) return h5_fail(w, "cannot create attribute", name);
    if (H5Awrite(attr, mem_type, value) < 0) {
        h5_fail(w, "cannot write attribute", name);
        H5Aclose(attr);
        return -1;
    }
    if (H5Aclose(attr) < 0) return h5_fail(w, "cannot close attribute", name);
    return 0;
}

static int write_attr_i64(hid_t loc, const char *name, int64_t v, struct why *w)
{
    return write_attr(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v, w);
}

static int write_attr_u64(hid_t loc, const char *name, uint64_t v, struct why *w)
{
    return write_attr(loc, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &v, w);
}

static int write_attr_f64(hid_t loc, const char *name, double v, struct why *w)
{
    return write_attr(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v, w);
}

/* Fixed-length (the terminator included), stored inside the attribute itself: a
 * variable-length string would live in the global heap, and HDF5 1.10 reads that
 * unsafely from a corrupt file, so ckpt_read refuses variable-length strings. */
static int write_attr_str(hid_t loc, const char *name, const char *v, struct why *w)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    if (type < 0 || H5Tset_size(type, strlen(v) + 1) < 0 || H5Tset_cset(type, H5T_CSET_UTF8) < 0) {
        h5_fail(w, "cannot make the string type of attribute", name);
        if (type >= 0) H5Tclose(type);
        return -1;
    }
    int rc = write_attr(loc, name, type, type, v, w);
    H5Tclose(type);
    return rc;
}

static int write_dataset(hid_t group, const char *name, hid_t file_type, hid_t mem_type, int ndim,
                         const int *shape, const void *data, struct why *w)
{
    hsize_t dims[4];
    for (int i = 0; i < ndim; i++) dims[i] = (hsize_t)shape[i];
    hid_t space = ndim ? H5Screate_simple(ndim, dims, NULL) : H5Screate(H5S_SCALAR);
    if (space < 0) return h5_fail(w, "cannot create the dataspace of tensor", name);
    hid_t ds = H5Dcreate2(group, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Sclose(space);
    if (ds < 0) return h5_fail(w, "cannot create tensor", name);
    if (H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        h5_fail(w, "cannot write tensor", name);
        H5Dclose(ds);
        return -1;
    }
    if (H5Dclose(ds) < 0) return h5_fail(w, "cannot close tensor", name);
    return 0;
}

static int write_views(hid_t group, const struct tensor_view *v, int count, const float *arena,
                       struct why *w)
{
    for (int i = 0; i < count; i++)
        if (write_dataset(group, v[i].name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, v[i].ndim, v[i].shape,
                          arena + v[i].offset, w) < 0)
            return -1;
    return 0;
}

static int write_model_group(hid_t file, const struct resnet *m, struct why *w)
{
    hid_t g = H5Gcreate2(file, "model", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return h5_fail(w, "cannot create group", "/model");
    int rc = write_views(g, m->params, m->nparams, m->weights, w);
    if (rc == 0) rc = write_views(g, m->buffers, m->nbuffers, m->buffer_data, w);
    for (int i = 0; rc == 0 && i < m->nbuffers; i++) {
        char name[RESNET_NAME_MAX + sizeof NBT_SUFFIX];
        if (nbt_name(&m->buffers[i], name, sizeof name))
            rc = write_dataset(g, name, H5T_STD_I64LE, H5T_NATIVE_INT64, 0, NULL,
                               &m->num_batches_tracked, w);
    }
    if (H5Gclose(g) < 0 && rc == 0) rc = h5_fail(w, "cannot close group", "/model");
    return rc;
}

static int write_optimizer_group(hid_t file, const struct resnet *m, struct why *w)
{
    hid_t g = H5Gcreate2(file, "optimizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return h5_fail(w, "cannot create group", "/optimizer");
    int rc = write_views(g, m->params, m->nparams, m->momentum, w);
    if (H5Gclose(g) < 0 && rc == 0) rc = h5_fail(w, "cannot close group", "/optimizer");
    return rc;
}

/* /ema: the weight average's parameters and BN buffers, under the /model names. */
static int write_ema_group(hid_t file, const struct resnet *m, struct why *w)
{
    hid_t g = H5Gcreate2(file, "ema", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return h5_fail(w, "cannot create group", "/ema");
    int rc = write_views(g, m->params, m->nparams, m->ema, w);
    if (rc == 0) rc = write_views(g, m->buffers, m->nbuffers, m->ema_buffers, w);
    if (H5Gclose(g) < 0 && rc == 0) rc = h5_fail(w, "cannot close group", "/ema");
    return rc;
}

static int write_root_attrs(hid_t file, const struct resnet *m, const struct ckpt_state *st,
                            struct why *w)
{
    char created[32];
    time_t now = time(NULL);
    struct tm tm;
    if (now == (time_t)-1 || !gmtime_r(&now, &tm) ||
        strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        strcpy(created, "unknown");
    /* config_text may be unterminated if the caller filled all of it. */
    size_t clen = strnlen(st->config_text, sizeof st->config_text);
    char *config = xmalloc(clen + 1);
    memcpy(config, st->config_text, clen);
    config[clen] = '\0';
    int rc = 0;
    if (rc == 0) rc = write_attr_i64(file, "format_version", CKPT_FORMAT_VERSION, w);
    if (rc == 0) rc = write_attr_str(file, "program_version", RESNET_DDP_VERSION, w);
    if (rc == 0) rc = write_attr_i64(file, "epoch", st->epoch, w);
    if (rc == 0) rc = write_attr_i64(file, "step_in_epoch", st->step_in_epoch, w);
    if (rc == 0) rc = write_attr_i64(file, "global_step", st->global_step, w);
    if (rc == 0) rc = write_attr_f64(file, "epoch_loss_sum", st->epoch_loss_sum, w);
    if (rc == 0) rc = write_attr_f64(file, "epoch_correct", st->epoch_correct, w);
    if (rc == 0) rc = write_attr_f64(file, "epoch_count", st->epoch_count, w);
    if (rc == 0) rc = write_attr_u64(file, "seed", st->seed, w);
    if (rc == 0) rc = write_attr_i64(file, "world_size", st->world_size, w);
    if (rc == 0) rc = write_attr_i64(file, "global_batch", st->global_batch, w);
    if (rc == 0) rc = write_attr_i64(file, "depth", m->spec.depth, w);
    if (rc == 0) rc = write_attr_i64(file, "width", m->spec.width, w);
    if (rc == 0) rc = write_attr_i64(file, "num_classes", m->spec.num_classes, w);
    if (rc == 0) rc = write_attr_str(file, "stem", m->spec.stem_no_pool ? "nopool" : "d2l", w);
    if (rc == 0) rc = write_attr_i64(file, "image_size", st->image_size, w);
    if (rc == 0) rc = write_attr_str(file, "config", config, w);
    if (rc == 0) rc = write_attr_u64(file, "checksum", ckpt_checksum(m), w);
    if (rc == 0) rc = write_attr_str(file, "created", created, w);
    free(config);
    return rc;
}

/* Builds the whole file in memory (HDF5's core driver, no backing store) and returns
 * its image. HDF5 1.10 cannot recover from a write error inside H5Fclose: the file
 * stays half-open and the library crashes when it closes it again at exit. So HDF5
 * never touches the disk here; every byte goes out through write_image, whose errors
 * (ENOSPC, EFBIG, EIO, ...) are ordinary and fully recoverable. */
static int build_image(const char *tmp, const struct resnet *m, const struct ckpt_state *st,
                       void **image, size_t *size, struct why *w)
{
    /* One allocation of about the final size instead of many reallocs. */
    size_t estimate = ((m->ema ? 3 : 2) * m->trainable + (m->ema ? 2 : 1) * m->buffer_floats) *
                          sizeof(float) + ((size_t)1 << 20);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return h5_fail(w, "cannot create file access properties", NULL);
    /* STRONG: closing the file also closes whatever an error path left open. */
    if (H5Pset_fapl_core(fapl, estimate, 0) < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0) {
        h5_fail(w, "cannot set file access properties", NULL);
        H5Pclose(fapl);
        return -1;
    }
    /* The user block is where ckpt_seal_image puts the integrity header. */
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (fcpl < 0 || H5Pset_userblock(fcpl, CKPT_SEAL_SIZE) < 0) {
        h5_fail(w, "cannot set file creation properties", NULL);
        if (fcpl >= 0) H5Pclose(fcpl);
        H5Pclose(fapl);
        return -1;
    }
    hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, fapl);
    if (file < 0) h5_fail(w, "cannot create", tmp); /* before H5Pclose resets the stack */
    H5Pclose(fcpl);
    H5Pclose(fapl);
    if (file < 0) return -1;
    int rc = write_model_group(file, m, w);
    if (rc == 0) rc = write_optimizer_group(file, m, w);
    if (rc == 0 && m->ema) rc = write_ema_group(file, m, w);
    if (rc == 0) rc = write_root_attrs(file, m, st, w);
    if (rc == 0 && H5Fflush(file, H5F_SCOPE_GLOBAL) < 0) rc = h5_fail(w, "cannot flush", tmp);
    ssize_t len = rc == 0 ? H5Fget_file_image(file, NULL, 0) : -1;
    if (rc == 0 && len <= 0) rc = h5_fail(w, "cannot get the file image of", tmp);
    if (rc == 0) {
        /* The core driver's image starts at the superblock: the user block is not in
         * it, so it goes after a header-sized gap. */
        *size = CKPT_SEAL_SIZE + (size_t)len;
        unsigned char *bytes = xmalloc(*size);
        *image = bytes;
        if (H5Fget_file_image(file, bytes + CKPT_SEAL_SIZE, (size_t)len) != len)
            rc = h5_fail(w, "cannot get the file image of", tmp);
        else
            ckpt_seal_image(bytes, *size);
    }
    if (H5Fclose(file) < 0 && rc == 0) rc = h5_fail(w, "cannot close", tmp);
    return rc;
}

/* Writes the image to tmp and makes it durable. */
static int write_image(const char *tmp, const void *image, size_t size, struct why *w)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) return sys_fail(w, "cannot create", tmp, errno);
    const char *p = image;
    while (size > 0) {
        ssize_t n = write(fd, p, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            close(fd);
            return sys_fail(w, "cannot write", tmp, e);
        }
        p += n;
        size -= (size_t)n;
    }
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        return sys_fail(w, "cannot fsync", tmp, e);
    }
    if (close(fd) != 0) return sys_fail(w, "cannot close", tmp, errno);
    return 0;
}

/* The directory holding path ("." for a bare name), for fsync after the rename. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return xstrdup(".");
    size_t len = slash == path ? 1 : (size_t)(slash - path);
    char *d = xmalloc(len + 1);
    memcpy(d, path, len);
    d[len] = '\0';
    return d;
}

/* Publishes the complete tmp under path and makes the rename durable. */
static int rename_durably(const char *tmp, const char *path, struct why *w)
{
    if (rename(tmp, path) != 0) return sys_fail(w, "cannot rename to", path, errno);
    char *dir = dir_of(path);
    int rc = 0;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        rc = sys_fail(w, "cannot open directory", dir, errno);
    } else {
        /* EINVAL: a file system that cannot sync directories; the rename stands. */
        if (fsync(dfd) != 0 && errno != EINVAL) rc = sys_fail(w, "cannot fsync directory", dir, errno);
        close(dfd);
    }
    free(dir);
    return rc;
}

int ckpt_write(const char *path, const struct resnet *m, const struct ckpt_state *st, char *err,
               size_t errsize)
{
    H5E_auto2_t old_func = NULL;
    void *old_data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &old_func, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);

    size_t len = strlen(path);
    char *tmp = xmalloc(len + sizeof ".tmp");
    memcpy(tmp, path, len);
    memcpy(tmp + len, ".tmp", sizeof ".tmp");
    struct why w = {""};
    void *image = NULL;
    size_t size = 0;
    int rc = build_image(tmp, m, st, &image, &size, &w);
    if (rc == 0) rc = write_image(tmp, image, size, &w);
    free(image);
    if (rc == 0) rc = rename_durably(tmp, path, &w);
    if (rc != 0) {
        unlink(tmp);
        error_message(err, errsize, "cannot write checkpoint '%s': %s", path, w.text);
    }
    free(tmp);
    H5Eset_auto2(H5E_DEFAULT, old_func, old_data);
    return rc;
}

/* ---- reading ------------------------------------------------------------------- */

struct reader {
    const char *path;
    const struct resnet *m;
    char *err;
    size_t errsize;
};

/* Everything read, kept apart from the model until it has all been verified. */
struct loaded {
    float *weights, *momentum, *buffers;
    float *ema, *ema_buffers; /* read when the model keeps an average and the file has one */
    int64_t nbt;
    bool have_nbt;
    struct ckpt_state st;
};

static int rfail(const struct reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "checkpoint '<path>': <message>" */
static int rfail(const struct reader *r, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    error_message(r->err, r->errsize, "checkpoint '%s': %s", r->path, msg);
    return -1;
}

/* Opens an attribute of the root group whose value is a single element of `cls`. */
static hid_t open_attr(const struct reader *r, hid_t file, const char *name, H5T_class_t cls,
                       const char *kind)
{
    htri_t exists = H5Aexists(file, name);
    if (exists < 0) return rfail(r, "cannot look up attribute '%s'", name);
    if (exists == 0) return rfail(r, "missing attribute '%s'", name);
    hid_t attr = H5Aopen(file, name, H5P_DEFAULT);
    if (attr < 0) return rfail(r, "cannot open attribute '%s'", name);
    hid_t type = H5Aget_type(attr), space = H5Aget_space(attr);
    H5T_class_t got = type >= 0 ? H5Tget_class(type) : H5T_NO_CLASS;
    hssize_t npoints = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    if (got != cls || npoints != 1) {
        H5Aclose(attr);
        return rfail(r, "attribute '%s' is not a single %s", name, kind);
    }
    return attr;
}

static int read_attr_int(const struct reader *r, hid_t file, const char *name, int64_t *out)
{
    hid_t attr = open_attr(r, file, name, H5T_INTEGER, "integer");
    if (attr < 0) return -1;
    herr_t st = H5Aread(attr, H5T_NATIVE_INT64, out);
    H5Aclose(attr);
    return st < 0 ? rfail(r, "cannot read attribute '%s'", name) : 0;
}

static int read_attr_f64(const struct reader *r, hid_t file, const char *name, double *out)
{
    hid_t attr = open_attr(r, file, name, H5T_FLOAT, "number");
    if (attr < 0) return -1;
    herr_t st = H5Aread(attr, H5T_NATIVE_DOUBLE, out);
    H5Aclose(attr);
    if (st < 0) return rfail(r, "cannot read attribute '%s'", name);
    if (!isfinite(*out) || *out < 0) return rfail(r, "attribute '%s' is %g, expected a finite number >= 0", name, *out);
    return 0;
}

static int read_attr_uint(const struct reader *r, hid_t file, const char *name, uint64_t *out)
{
    hid_t attr = open_attr(r, file, name, H5T_INTEGER, "integer");
    if (attr < 0) return -1;
    herr_t st = H5Aread(attr, H5T_NATIVE_UINT64, out);
    H5Aclose(attr);
    return st < 0 ? rfail(r, "cannot read attribute '%s'", name) : 0;
}

/* An int field of ckpt_state: the attribute must lie in [lo, INT_MAX]. */
static int read_attr_intfield(const struct reader *r, hid_t file, const char *name, int64_t lo,
                              int *out)
{
    int64_t v;
    if (read_attr_int(r, file, name, &v) < 0) return -1;
    if (v < lo || v > INT_MAX)
        return rfail(r, "attribute '%s' = %" PRId64 " is out of range", name, v);
    *out = (int)v;
    return 0;
}

/* A fixed-length string attribute, truncated to fit out. */
static int read_attr_string(const struct reader *r, hid_t file, const char *name, char *out,
                            size_t outsize)
{
    hid_t attr = open_attr(r, file, name, H5T_STRING, "string");
    if (attr < 0) return -1;
    int rc = -1;
    hid_t ftype = H5Aget_type(attr);
    hid_t mtype = H5Tcopy(H5T_C_S1);
    htri_t var = ftype >= 0 ? H5Tis_variable_str(ftype) : -1;
    size_t fsize = ftype >= 0 ? H5Tget_size(ftype) : 0;
    /* HDF5 does not convert between ASCII and UTF-8, so read in the file's cset. */
    H5T_cset_t cset = ftype >= 0 ? H5Tget_cset(ftype) : H5T_CSET_ERROR;
    if (mtype < 0 || var < 0 || cset == H5T_CSET_ERROR || H5Tset_cset(mtype, cset) < 0) {
        rfail(r, "cannot read the type of attribute '%s'", name);
    } else if (var > 0) {
        rfail(r, "attribute '%s' is a variable-length string (checkpoints use fixed-length)", name);
    } else if (fsize == 0 || fsize > MAX_STRING_ATTR) {
        rfail(r, "attribute '%s' has an unsupported string size %zu", name, fsize);
    } else {
        char *buf = xmalloc(fsize + 1);
        if (H5Tset_size(mtype, fsize) < 0 || H5Aread(attr, mtype, buf) < 0) {
            rfail(r, "cannot read attribute '%s'", name);
        } else {
            buf[fsize] = '\0';
            snprintf(out, outsize, "%s", buf);
            rc = 0;
        }
        free(buf);
    }
    if (mtype >= 0) H5Tclose(mtype);
    if (ftype >= 0) H5Tclose(ftype);
    H5Aclose(attr);
    return rc;
}

/* The "stem" attribute says "nopool" ([model] stem); files without it hold d2l's. */
static bool stem_no_pool_of(hid_t file)
{
    if (H5Aexists(file, "stem") <= 0) return false;
    hid_t a = H5Aopen(file, "stem", H5P_DEFAULT), type = a >= 0 ? H5Aget_type(a) : -1;
    char value[16] = "";
    bool no_pool = false;
    if (type >= 0 && H5Tget_class(type) == H5T_STRING && H5Tget_size(type) < sizeof value &&
        H5Aread(a, type, value) >= 0)
        no_pool = strncmp(value, "nopool", sizeof value) == 0;
    if (type >= 0) H5Tclose(type);
    if (a >= 0) H5Aclose(a);
    return no_pool;
}

static int read_attrs(const struct reader *r, hid_t file, struct ckpt_state *st, uint64_t *checksum)
{
    const struct model_spec *spec = &r->m->spec;
    int64_t version, depth, width, classes;
    if (read_attr_int(r, file, "format_version", &version) < 0) return -1;
    if (version != CKPT_FORMAT_VERSION)
        return rfail(r, "format version %" PRId64 ", but this program reads version %d", version,
                     CKPT_FORMAT_VERSION);
    if (read_attr_int(r, file, "depth", &depth) < 0 || read_attr_int(r, file, "width", &width) < 0 ||
        read_attr_int(r, file, "num_classes", &classes) < 0)
        return -1;
    const bool no_pool = stem_no_pool_of(file);
    if (no_pool != spec->stem_no_pool)
        return rfail(r, "its stem is %s but the config's [model] stem is %s: expected the same "
                     "stem to resume", no_pool ? "nopool" : "d2l", spec->stem_no_pool ? "nopool" : "d2l");
    if (depth != spec->depth || width != spec->width || classes != spec->num_classes) {
        error_message(r->err, r->errsize,
                "checkpoint '%s' is ResNet-%" PRId64 " (width %" PRId64 ", %" PRId64
                " classes) but the config builds ResNet-%d (width %d, %d classes)",
                r->path, depth, width, classes, spec->depth, spec->width, spec->num_classes);
        return -1;
    }
    if (read_attr_int(r, file, "epoch", &st->epoch) < 0 ||
        read_attr_int(r, file, "step_in_epoch", &st->step_in_epoch) < 0 ||
        read_attr_int(r, file, "global_step", &st->global_step) < 0 ||
        read_attr_f64(r, file, "epoch_loss_sum", &st->epoch_loss_sum) < 0 ||
        read_attr_f64(r, file, "epoch_correct", &st->epoch_correct) < 0 ||
        read_attr_f64(r, file, "epoch_count", &st->epoch_count) < 0 ||
        read_attr_uint(r, file, "seed", &st->seed) < 0 ||
        read_attr_intfield(r, file, "world_size", 1, &st->world_size) < 0 ||
        read_attr_intfield(r, file, "global_batch", 1, &st->global_batch) < 0 ||
        read_attr_intfield(r, file, "image_size", 1, &st->image_size) < 0 ||
        read_attr_string(r, file, "config", st->config_text, sizeof st->config_text) < 0 ||
        read_attr_uint(r, file, "checksum", checksum) < 0)
        return -1;
    if (st->epoch < 0 || st->step_in_epoch < 0 || st->global_step < 0)
        return rfail(r, "negative position (epoch %" PRId64 ", step_in_epoch %" PRId64
                        ", global_step %" PRId64 ")",
                     st->epoch, st->step_in_epoch, st->global_step);
    return 0;
}

/* Opens /<group>/<name>, which must be a dataset reached by a hard link (so an
 * external link cannot make us open another file). */
static hid_t open_dataset(const struct reader *r, hid_t group, const char *gname, const char *label,
                          const char *name)
{
    htri_t exists = H5Lexists(group, name, H5P_DEFAULT);
    if (exists < 0) return rfail(r, "cannot look up %s '%s'", label, name);
    if (exists == 0) return rfail(r, "%s '%s' is missing from /%s", label, name, gname);
    H5L_info_t info;
    if (H5Lget_info(group, name, &info, H5P_DEFAULT) < 0 || info.type != H5L_TYPE_HARD)
        return rfail(r, "%s '%s' is not a plain dataset", label, name);
    hid_t ds = H5Dopen2(group, name, H5P_DEFAULT);
    if (ds < 0) return rfail(r, "%s '%s' is not a dataset", label, name);
    return ds;
}

/* What H5Dread may be pointed at: ckpt_write stores every tensor contiguously in the
 * file itself, with elements of at most 8 bytes. Anything else is refused before
 * reading, because HDF5 1.10 trusts a corrupt file there (found by tests/fuzz): it
 * reads a compact dataset without data from a NULL pointer and allocates gigabytes
 * for a huge element size. External raw data (other files, FIFOs), chunks, filters
 * and virtual datasets are refused with them. */
static bool plain_storage(hid_t ds, hid_t type)
{
    size_t size = type >= 0 ? H5Tget_size(type) : 0;
    if (size == 0 || size > 8) return false;
    hid_t dcpl = H5Dget_create_plist(ds);
    if (dcpl < 0) return false;
    bool ok = H5Pget_layout(dcpl) == H5D_CONTIGUOUS && H5Pget_external_count(dcpl) == 0;
    H5Pclose(dcpl);
    return ok;
}

/* Reads one float tensor with the exact shape of v into dst; all values finite. */
static int read_tensor(const struct reader *r, hid_t group, const char *gname, const char *label,
                       const struct tensor_view *v, float *dst)
{
    hid_t ds = open_dataset(r, group, gname, label, v->name);
    if (ds < 0) return -1;
    int rc = -1;
    hid_t type = H5Dget_type(ds), space = H5Dget_space(ds);
    H5T_class_t cls = type >= 0 ? H5Tget_class(type) : H5T_NO_CLASS;
    H5S_class_t scls = space >= 0 ? H5Sget_simple_extent_type(space) : H5S_NO_CLASS;
    int nd = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    hsize_t dims[H5S_MAX_RANK], want[4];
    for (int i = 0; i < v->ndim; i++) want[i] = (hsize_t)v->shape[i];
    bool same = nd == v->ndim;
    if (nd >= 0 && nd <= H5S_MAX_RANK && H5Sget_simple_extent_dims(space, dims, NULL) < 0) nd = -1;
    for (int i = 0; same && i < nd; i++) same = dims[i] == want[i];
    if (cls != H5T_FLOAT) {
        rfail(r, "%s '%s' is not floating-point", label, v->name);
    } else if (nd < 0 || nd > H5S_MAX_RANK || (scls != H5S_SIMPLE && scls != H5S_SCALAR)) {
        rfail(r, "%s '%s' has an unreadable shape", label, v->name);
    } else if (!same) {
        char got_s[160], want_s[160];
        format_shape(got_s, sizeof got_s, nd, dims);
        format_shape(want_s, sizeof want_s, v->ndim, want);
        rfail(r, "%s '%s' has shape %s, expected %s", label, v->name, got_s, want_s);
    } else if (!plain_storage(ds, type)) {
        rfail(r, "%s '%s' is not stored as a plain contiguous array", label, v->name);
    } else if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0) {
        char why[200];
        h5_reason(why, sizeof why);
        rfail(r, "cannot read %s '%s': %s", label, v->name, why);
    } else {
        rc = 0;
        for (size_t j = 0; j < v->count; j++)
            if (!isfinite(dst[j])) {
                rc = rfail(r, "%s '%s' holds a non-finite value at index %zu", label, v->name, j);
                break;
            }
    }
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    H5Dclose(ds);
    return rc;
}

/* One "<bn>.num_batches_tracked": an integer scalar, equal across all BN layers. */
static int read_nbt(const struct reader *r, hid_t group, const char *name, struct loaded *out,
                    char *first_name, size_t first_size)
{
    hid_t ds = open_dataset(r, group, "model", "tensor", name);
    if (ds < 0) return -1;
    int rc = -1;
    int64_t v = 0;
    hid_t type = H5Dget_type(ds), space = H5Dget_space(ds);
    H5T_class_t cls = type >= 0 ? H5Tget_class(type) : H5T_NO_CLASS;
    H5S_class_t scls = space >= 0 ? H5Sget_simple_extent_type(space) : H5S_NO_CLASS;
    if (cls != H5T_INTEGER || scls != H5S_SCALAR)
        rfail(r, "tensor '%s' is not an integer scalar", name);
    else if (!plain_storage(ds, type))
        rfail(r, "tensor '%s' is not stored as a plain contiguous scalar", name);
    else if (H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) < 0)
        rfail(r, "cannot read tensor '%s'", name);
    else if (out->have_nbt && v != out->nbt)
        rfail(r, "'%s' is %" PRId64 " but '%s' is %" PRId64 " (num_batches_tracked must agree)",
              name, v, first_name, out->nbt);
    else
        rc = 0;
    if (rc == 0 && !out->have_nbt) {
        out->have_nbt = true;
        out->nbt = v;
        snprintf(first_name, first_size, "%s", name);
    }
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    H5Dclose(ds);
    return rc;
}

static bool expected_in_model(const struct resnet *m, const char *name)
{
    if (resnet_find_param(m, name) >= 0 || resnet_find_buffer(m, name) >= 0) return true;
    for (int i = 0; i < m->nbuffers; i++) {
        char nbt[RESNET_NAME_MAX + sizeof NBT_SUFFIX];
        if (nbt_name(&m->buffers[i], nbt, sizeof nbt) && strcmp(nbt, name) == 0) return true;
    }
    return false;
}

/* Every expected link has been found, so the group holds extras iff it holds more
 * links than expected; only then are names listed, to report the first extra. */
static int check_no_extras(const struct reader *r, hid_t group, const char *gname,
                           hsize_t expected, bool model)
{
    H5G_info_t info;
    if (H5Gget_info(group, &info) < 0) return rfail(r, "cannot list /%s", gname);
    if (info.nlinks == expected) return 0;
    for (hsize_t i = 0; i < info.nlinks; i++) {
        char name[128];
        ssize_t len = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name,
                                         sizeof name, H5P_DEFAULT);
        if (len < 0) return rfail(r, "cannot list /%s", gname);
        bool known = (size_t)len < sizeof name &&
                     (model ? expected_in_model(r->m, name) : resnet_find_param(r->m, name) >= 0);
        if (!known) return rfail(r, "unexpected tensor '/%s/%s'", gname, name);
    }
    return rfail(r, "/%s holds %llu entries, expected %llu", gname,
                 (unsigned long long)info.nlinks, (unsigned long long)expected);
}

static hid_t open_group(const struct reader *r, hid_t file, const char *name)
{
    htri_t exists = H5Lexists(file, name, H5P_DEFAULT);
    if (exists < 0) return rfail(r, "cannot look up group /%s", name);
    if (exists == 0) return rfail(r, "missing group /%s", name);
    hid_t g = H5Gopen2(file, name, H5P_DEFAULT);
    if (g < 0) return rfail(r, "/%s is not a group", name);
    return g;
}

static int read_model_group(const struct reader *r, hid_t file, struct loaded *out)
{
    const struct resnet *m = r->m;
    hid_t g = open_group(r, file, "model");
    if (g < 0) return -1;
    int rc = 0;
    hsize_t expected = (hsize_t)m->nparams + (hsize_t)m->nbuffers;
    char first_nbt[RESNET_NAME_MAX + sizeof NBT_SUFFIX] = "";
    for (int i = 0; rc == 0 && i < m->nparams; i++)
        rc = read_tensor(r, g, "model", "tensor", &m->params[i], out->weights + m->params[i].offset);
    for (int i = 0; rc == 0 && i < m->nbuffers; i++)
        rc = read_tensor(r, g, "model", "tensor", &m->buffers[i],
                         out->buffers + m->buffers[i].offset);
    for (int i = 0; rc == 0 && i < m->nbuffers; i++) {
        char name[RESNET_NAME_MAX + sizeof NBT_SUFFIX];
        if (!nbt_name(&m->buffers[i], name, sizeof name)) continue;
        expected++;
        rc = read_nbt(r, g, name, out, first_nbt, sizeof first_nbt);
    }
    if (rc == 0) rc = check_no_extras(r, g, "model", expected, true);
    H5Gclose(g);
    return rc;
}

static int read_optimizer_group(const struct reader *r, hid_t file, struct loaded *out)
{
    const struct resnet *m = r->m;
    hid_t g = open_group(r, file, "optimizer");
    if (g < 0) return -1;
    int rc = 0;
    for (int i = 0; rc == 0 && i < m->nparams; i++)
        rc = read_tensor(r, g, "optimizer", "optimizer tensor", &m->params[i],
                         out->momentum + m->params[i].offset);
    if (rc == 0) rc = check_no_extras(r, g, "optimizer", (hsize_t)m->nparams, false);
    H5Gclose(g);
    return rc;
}

/* /ema, when the model keeps an average and the file holds one (a file without one
 * leaves out->ema NULL: the average then starts from the weights). */
static int read_ema_group(const struct reader *r, hid_t file, struct loaded *out)
{
    const struct resnet *m = r->m;
    htri_t exists = H5Lexists(file, "ema", H5P_DEFAULT);
    if (exists < 0) return rfail(r, "cannot look up group /ema");
    if (!m->ema || exists == 0) return 0;
    hid_t g = open_group(r, file, "ema");
    if (g < 0) return -1;
    out->ema = xcalloc(m->param_floats ? m->param_floats : 1, sizeof(float));
    out->ema_buffers = xcalloc(m->buffer_floats ? m->buffer_floats : 1, sizeof(float));
    int rc = 0;
    for (int i = 0; rc == 0 && i < m->nparams; i++)
        rc = read_tensor(r, g, "ema", "average tensor", &m->params[i], out->ema + m->params[i].offset);
    for (int i = 0; rc == 0 && i < m->nbuffers; i++)
        rc = read_tensor(r, g, "ema", "average tensor", &m->buffers[i],
                         out->ema_buffers + m->buffers[i].offset);
    if (rc == 0) rc = check_no_extras(r, g, "ema", (hsize_t)(m->nparams + m->nbuffers), true);
    H5Gclose(g);
    return rc;
}

/* Opens path read-only: the whole file is read and its integrity header checked
 * (ckpt_seal.h) before HDF5 parses any of it, from that same memory. */
static hid_t open_file(const struct reader *r)
{
    unsigned char *image = NULL;
    size_t size = 0;
    if (ckpt_unseal_file(r->path, &image, &size, r->err, r->errsize) != 0) return -1;
    /* The image HDF5 sees starts at the superblock, as build_image got it. The core
     * driver copies it, so ours can go right after. */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0 ||
        H5Pset_fapl_core(fapl, (size_t)1 << 20, 0) < 0 ||
        H5Pset_file_image(fapl, image + CKPT_SEAL_SIZE, size - CKPT_SEAL_SIZE) < 0) {
        if (fapl >= 0) H5Pclose(fapl);
        free(image);
        error_message(r->err, r->errsize, "cannot open checkpoint '%s': HDF5 error", r->path);
        return -1;
    }
    free(image);
    /* The core driver refuses an image whose name exists on disk; under a regular
     * file nothing can. */
    size_t len = strlen(r->path);
    char *name = xmalloc(len + sizeof "/in-memory");
    memcpy(name, r->path, len);
    memcpy(name + len, "/in-memory", sizeof "/in-memory");
    hid_t file = H5Fopen(name, H5F_ACC_RDONLY, fapl);
    free(name);
    char why[200] = "";
    if (file < 0) h5_reason(why, sizeof why);
    H5Pclose(fapl);
    if (file < 0) {
        error_message(r->err, r->errsize, "'%s' is not a readable HDF5 checkpoint (%s)", r->path, why);
        return -1;
    }
    return file;
}

static int read_all(const struct reader *r, hid_t file, struct loaded *out)
{
    const struct resnet *m = r->m;
    uint64_t stored;
    if (read_attrs(r, file, &out->st, &stored) < 0 || read_model_group(r, file, out) < 0 ||
        read_optimizer_group(r, file, out) < 0 || read_ema_group(r, file, out) < 0)
        return -1;
    uint64_t computed = checksum_of(m, out->weights, out->momentum, out->buffers, out->nbt,
                                    out->ema, out->ema_buffers);
    if (computed != stored)
        return rfail(r, "checksum mismatch: stored 0x%016" PRIx64 ", computed 0x%016" PRIx64,
                     stored, computed);
    return 0;
}

/* The average read, or the weights read when the file holds none. */
static void copy_average(struct resnet *m, const struct loaded *in)
{
    if (!m->ema) return;
    const float *w = in->ema ? in->ema : in->weights, *b = in->ema ? in->ema_buffers : in->buffers;
    for (int i = 0; i < m->nparams; i++) {
        const struct tensor_view *p = &m->params[i];
        memcpy(m->ema + p->offset, w + p->offset, p->count * sizeof(float));
    }
    for (int i = 0; i < m->nbuffers; i++) {
        const struct tensor_view *v = &m->buffers[i];
        memcpy(m->ema_buffers + v->offset, b + v->offset, v->count * sizeof(float));
    }
}

int ckpt_read(const char *path, struct resnet *m, struct ckpt_state *st, char *err, size_t errsize)
{
    H5E_auto2_t old_func = NULL;
    void *old_data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &old_func, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);

    const struct reader r = {path, m, err, errsize};
    hid_t file = open_file(&r);
    if (file < 0) {
        H5Eset_auto2(H5E_DEFAULT, old_func, old_data);
        return -1;
    }
    struct loaded *in = xcalloc(1, sizeof *in);
    in->weights = xcalloc(m->param_floats ? m->param_floats : 1, sizeof(float));
    in->momentum = xcalloc(m->param_floats ? m->param_floats : 1, sizeof(float));
    in->buffers = xcalloc(m->buffer_floats ? m->buffer_floats : 1, sizeof(float));
    int rc = read_all(&r, file, in);
    H5Fclose(file);
    if (rc == 0) {
        /* Tensor by tensor, so the arenas' alignment padding is left as it was. */
        for (int i = 0; i < m->nparams; i++) {
            const struct tensor_view *p = &m->params[i];
            memcpy(m->weights + p->offset, in->weights + p->offset, p->count * sizeof(float));
            memcpy(m->momentum + p->offset, in->momentum + p->offset, p->count * sizeof(float));
        }
        for (int i = 0; i < m->nbuffers; i++) {
            const struct tensor_view *b = &m->buffers[i];
            memcpy(m->buffer_data + b->offset, in->buffers + b->offset, b->count * sizeof(float));
        }
        m->num_batches_tracked = in->nbt;
        *st = in->st;
        copy_average(m, in);
    }
    free(in->ema);
    free(in->ema_buffers);
    free(in->weights);
    free(in->momentum);
    free(in->buffers);
    free(in);
    H5Eset_auto2(H5E_DEFAULT, old_func, old_data);
    return rc;
}

int ckpt_read_spec(const char *path, struct model_spec *spec, char *err, size_t errsize)
{
    H5E_auto2_t old_func = NULL;
    void *old_data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &old_func, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    const struct reader r = {path, NULL, err, errsize};
    hid_t file = open_file(&r);
    int rc = -1;
    if (file >= 0) {
        int64_t depth, width, classes, image;
        if (read_attr_int(&r, file, "depth", &depth) == 0 &&
            read_attr_int(&r, file, "width", &width) == 0 &&
            read_attr_int(&r, file, "num_classes", &classes) == 0 &&
            read_attr_int(&r, file, "image_size", &image) == 0) {
            if (width < 1 || width > 1024 || classes < 2 || classes > 1000 || image < 1 ||
                image > 4096 || (depth != 18 && depth != 34 && depth != 50)) {
                rfail(&r, "implausible architecture attributes");
            } else {
                memset(spec, 0, sizeof *spec);
                spec->depth = (int)depth;
                spec->width = (int)width;
                spec->num_classes = (int)classes;
                spec->image_size = (int)image;
                spec->in_channels = 1;
                spec->max_batch = 1;
                spec->ema = H5Lexists(file, "ema", H5P_DEFAULT) > 0;
                spec->stem_no_pool = stem_no_pool_of(file);
                rc = 0;
            }
        }
        H5Fclose(file);
    }
    H5Eset_auto2(H5E_DEFAULT, old_func, old_data);
    return rc;
}
