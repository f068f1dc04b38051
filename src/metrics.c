/* metrics: the HDF5 metrics log (layout in metrics.h), written by rank 0.
 *
 * Each column is its own 1-D chunked dataset with an unlimited maximum size. Rows are
 * buffered in memory per column and written as one block (H5Dset_extent, then one
 * hyperslab write per column) followed by H5Fflush: on metrics_flush, on every epoch
 * row and whenever STEP_BUFFER_ROWS step rows are waiting. HDF5 is not called at all
 * between these flushes, so a job killed outside one leaves the file exactly as the
 * last flush wrote it. (H5Fflush hands the data to the kernel, which keeps it when
 * the process dies; there is no fsync against power loss.)
 *
 * The file uses HDF5's default (earliest) format on purpose. Its version 0 superblock
 * has no "file is open for writing" flag, so a file that was flushed but never closed
 * (kill -9, crash) opens again normally, read-only or for a resumed run. With
 * H5Pset_libver_bounds(latest) the version 3 superblock marks the file as open for
 * writing until H5Fclose, and HDF5 then refuses to open a killed job's log until the
 * flag is cleared with `h5clear -s`; SWMR writing (H5Fstart_swmr_write) would avoid
 * that, but needs the latest format and is more than a log of one writer needs.
 * tests/test_metrics.c checks the kill case.
 *
 * HDF5 prints its error stack to stderr by default; every public function turns that
 * off while it runs and instead reports one line naming the file, with the innermost
 * HDF5 message when there is no better reason. */
#include "metrics.h"

#include <hdf5.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

enum {
    MAX_COLUMNS = 12,
    STEP_BUFFER_ROWS = 256, /* step rows per automatic flush */
    EPOCH_BUFFER_ROWS = 16, /* epoch rows flush at once; room for failed flushes */
    STEP_CHUNK_ROWS = 1024,
    EPOCH_CHUNK_ROWS = 64,
    REASON_SIZE = 256,
};

enum column_kind { COL_INT64, COL_FLOAT64 };

struct column_spec {
    const char *name;
    enum column_kind kind;
};

/* Column order is the order of the values passed to table_append; column 0 is the
 * increasing key (step or epoch) that resuming cuts on. */
static const struct column_spec step_columns[] = {
    {"step", COL_INT64},     {"epoch", COL_INT64},
    {"loss", COL_FLOAT64},   {"lr", COL_FLOAT64},
    {"images_per_second", COL_FLOAT64},
    {"seconds", COL_FLOAT64},
};
static const struct column_spec epoch_columns[] = {
    {"epoch", COL_INT64},
    {"train_loss", COL_FLOAT64}, {"train_acc", COL_FLOAT64},
    {"test_loss", COL_FLOAT64},  {"test_acc", COL_FLOAT64},
    {"seconds", COL_FLOAT64},    {"images_per_second", COL_FLOAT64},
    {"test_acc_flip", COL_FLOAT64}, {"ema_test_loss", COL_FLOAT64},
    {"ema_test_acc", COL_FLOAT64}, {"ema_test_acc_flip", COL_FLOAT64},
};

_Static_assert(sizeof step_columns / sizeof step_columns[0] <= MAX_COLUMNS &&
                   sizeof epoch_columns / sizeof epoch_columns[0] <= MAX_COLUMNS,
               "a table has more columns than MAX_COLUMNS");

/* One buffered value; an array of cells holds the column's native int64 or double
 * values at 8-byte stride, so it is passed to H5Dwrite as it is. */
union cell {
    int64_t i;
    double d;
};
_Static_assert(sizeof(union cell) == 8, "a cell must be exactly one int64 or double");

struct table {
    const char *group_name; /* "/steps" */
    const char *key_name;   /* "step": used in messages */
    const struct column_spec *spec;
    int ncols;
    hsize_t chunk_rows;
    size_t capacity;        /* buffered rows that force a flush */
    hid_t group;
    hid_t dset[MAX_COLUMNS];
    union cell *buf[MAX_COLUMNS];
    size_t buffered;
    hsize_t rows_in_file;
    int64_t last_key;       /* key of the last row, INT64_MIN if none */
};

struct metrics_log {
    char *path;
    hid_t file;
    struct table steps, epochs;
};

/* ------------------------------------------------------------ error helpers */

/* HDF5's automatic error printing, saved while we run with it off. */
struct h5_quiet {
    H5E_auto2_t func;
    void *data;
};

static struct h5_quiet quiet_begin(void)
{
    struct h5_quiet q = {NULL, NULL};
    H5Eget_auto2(H5E_DEFAULT, &q.func, &q.data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return q;
}

static void quiet_end(struct h5_quiet q)
{
    H5Eset_auto2(H5E_DEFAULT, q.func, q.data);
}

static herr_t take_innermost(unsigned n, const H5E_error2_t *e, void *out)
{
    if (n == 0 && e->desc) snprintf(out, REASON_SIZE, "%s", e->desc);
    return 0;
}

/* The description of the innermost entry of HDF5's error stack: the place the
 * failure was detected, which names the actual cause (e.g. "unable to lock file"). */
static const char *h5_reason(void)
{
    static char reason[REASON_SIZE];
    snprintf(reason, sizeof reason, "HDF5 error");
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, take_innermost, reason);
    H5Eclear2(H5E_DEFAULT);
    return reason;
}

/* ------------------------------------------------------------ tables */

static void table_init(struct table *t, const char *group_name, const struct column_spec *spec,
                       int ncols, hsize_t chunk_rows, size_t capacity)
{
    t->group_name = group_name;
    t->key_name = spec[0].name;
    t->spec = spec;
    t->ncols = ncols;
    t->chunk_rows = chunk_rows;
    t->capacity = capacity;
    t->group = H5I_INVALID_HID;
    for (int c = 0; c < MAX_COLUMNS; c++) {
        t->dset[c] = H5I_INVALID_HID;
        t->buf[c] = NULL;
    }
    t->buffered = 0;
    t->rows_in_file = 0;
    t->last_key = INT64_MIN;
}

static int table_alloc_buffers(struct table *t)
{
    for (int c = 0; c < t->ncols; c++) {
        t->buf[c] = calloc(t->capacity, sizeof(union cell));
        if (!t->buf[c]) return -1;
    }
    return 0;
}

static void table_close(struct table *t)
{
    for (int c = 0; c < t->ncols; c++) {
        if (t->dset[c] >= 0) H5Dclose(t->dset[c]);
        t->dset[c] = H5I_INVALID_HID;
        free(t->buf[c]);
        t->buf[c] = NULL;
    }
    if (t->group >= 0) H5Gclose(t->group);
    t->group = H5I_INVALID_HID;
}

static hid_t file_type(enum column_kind kind)
{
    return kind == COL_INT64 ? H5T_STD_I64LE : H5T_IEEE_F64LE;
}

static hid_t mem_type(enum column_kind kind)
{
    return kind == COL_INT64 ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE;
}

/* Create the group and its empty, extendable columns. */
static int table_create(struct table *t, hid_t file)
{
    hsize_t dims = 0, maxdims = H5S_UNLIMITED;
    hid_t space = H5Screate_simple(1, &dims, &maxdims);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    int rc = -1;
    if (space < 0 || dcpl < 0 || H5Pset_chunk(dcpl, 1, &t->chunk_rows) < 0) goto out;
    t->group = H5Gcreate2(file, t->group_name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (t->group < 0) goto out;
    for (int c = 0; c < t->ncols; c++) {
        t->dset[c] = H5Dcreate2(t->group, t->spec[c].name, file_type(t->spec[c].kind), space,
                                H5P_DEFAULT, dcpl, H5P_DEFAULT);
        if (t->dset[c] < 0) goto out;
    }
    rc = 0;
out:
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    return rc;
}

/* Is `dset` a 1-D extendable dataset of the column's type? Sets *rows to its length. */
static int column_matches(hid_t dset, enum column_kind kind, hsize_t *rows)
{
    hid_t type = H5Dget_type(dset);
    hid_t space = H5Dget_space(dset);
    int ok = 0;
    if (type >= 0 && space >= 0 && H5Tget_size(type) == 8) {
        H5T_class_t cls = H5Tget_class(type);
        ok = kind == COL_INT64 ? cls == H5T_INTEGER && H5Tget_sign(type) == H5T_SGN_2
                               : cls == H5T_FLOAT;
        hsize_t dims = 0, maxdims = 0;
        ok = ok && H5Sget_simple_extent_ndims(space) == 1 &&
             H5Sget_simple_extent_dims(space, &dims, &maxdims) == 1 && maxdims == H5S_UNLIMITED;
        *rows = dims;
    }
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    return ok;
}

/* Open an existing group and check every column; on a mismatch say what is wrong. */
static int table_open(struct table *t, hid_t file, const char *path, char *err, size_t errsize)
{
    char what[128];
    hsize_t rows = 0;
    if (H5Lexists(file, t->group_name, H5P_DEFAULT) <= 0) {
        snprintf(what, sizeof what, "no group %s", t->group_name);
        goto bad;
    }
    t->group = H5Gopen2(file, t->group_name, H5P_DEFAULT);
    if (t->group < 0) {
        snprintf(what, sizeof what, "%s is not a group", t->group_name);
        goto bad;
    }
    for (int c = 0; c < t->ncols; c++) {
        const char *name = t->spec[c].name;
        if (H5Lexists(t->group, name, H5P_DEFAULT) <= 0) {
            snprintf(what, sizeof what, "no dataset %s/%s", t->group_name, name);
            goto bad;
        }
        t->dset[c] = H5Dopen2(t->group, name, H5P_DEFAULT);
        hsize_t n = 0;
        if (t->dset[c] < 0 || !column_matches(t->dset[c], t->spec[c].kind, &n)) {
            snprintf(what, sizeof what, "%s/%s is not a 1-D extendable %s dataset",
                     t->group_name, name, t->spec[c].kind == COL_INT64 ? "int64" : "float64");
            goto bad;
        }
        /* Columns of unequal length (a job killed inside a flush) are cut to the
         * shortest, so every kept row is complete. */
        if (c == 0 || n < rows) rows = n;
    }
    t->rows_in_file = rows;
    return 0;
bad:
    H5Eclear2(H5E_DEFAULT);
    error_message(err, errsize, "'%s' is not a resnet_ddp metrics file: %s", path, what);
    return -1;
}

/* Write `n` values of column c from `values` at rows [first, first + n). */
static int column_write(struct table *t, int c, hsize_t first, hsize_t n, const void *values)
{
    hid_t fspace = H5Dget_space(t->dset[c]);
    hid_t mspace = H5Screate_simple(1, &n, NULL);
    int rc = -1;
    if (fspace >= 0 && mspace >= 0 &&
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &first, NULL, &n, NULL) >= 0 &&
        H5Dwrite(t->dset[c], mem_type(t->spec[c].kind), mspace, fspace, H5P_DEFAULT, values) >= 0)
        rc = 0;
    if (mspace >= 0) H5Sclose(mspace);
    if (fspace >= 0) H5Sclose(fspace);
    return rc;
}

/* Append the buffered rows to every column. The buffer and row count change only
 * when all columns are written, so a failed write can simply be retried. */
static int table_write_buffered(struct table *t)
{
    if (t->buffered == 0) return 0;
    hsize_t first = t->rows_in_file, n = t->buffered, total = first + n;
    for (int c = 0; c < t->ncols; c++) {
        if (H5Dset_extent(t->dset[c], &total) < 0) return -1;
        if (column_write(t, c, first, n, t->buf[c]) < 0) return -1;
    }
    t->rows_in_file = total;
    t->buffered = 0;
    return 0;
}

/* Read the key column and keep the rows up to the first key above `resume_key`
 * (keys increase, so these are exactly the rows with key <= resume_key). */
static int table_truncate(struct table *t, int64_t resume_key)
{
    hsize_t keep = 0;
    if (t->rows_in_file > 0) {
        int64_t *keys = malloc((size_t)t->rows_in_file * sizeof *keys);
        if (!keys) return -1;
        hid_t fspace = H5Dget_space(t->dset[0]);
        hsize_t zero = 0, n = t->rows_in_file;
        hid_t mspace = H5Screate_simple(1, &n, NULL);
        int ok = fspace >= 0 && mspace >= 0 &&
                 H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &zero, NULL, &n, NULL) >= 0 &&
                 H5Dread(t->dset[0], H5T_NATIVE_INT64, mspace, fspace, H5P_DEFAULT, keys) >= 0;
        if (mspace >= 0) H5Sclose(mspace);
        if (fspace >= 0) H5Sclose(fspace);
        if (!ok) {
            free(keys);
            return -1;
        }
        while (keep < n && keys[keep] <= resume_key) keep++;
        t->last_key = keep > 0 ? keys[keep - 1] : INT64_MIN;
        free(keys);
    }
    for (int c = 0; c < t->ncols; c++)
        if (H5Dset_extent(t->dset[c], &keep) < 0) return -1;
    t->rows_in_file = keep;
    return 0;
}

/* ------------------------------------------------------------ flushing */

static int flush_all(struct metrics_log *log, char *err, size_t errsize)
{
    struct table *tables[] = {&log->steps, &log->epochs};
    for (int i = 0; i < 2; i++) {
        if (table_write_buffered(tables[i]) < 0) {
            error_message(err, errsize, "cannot write %s to metrics file '%s': %s",
                    tables[i]->group_name, log->path, h5_reason());
            return -1;
        }
    }
    if (H5Fflush(log->file, H5F_SCOPE_GLOBAL) < 0) {
        error_message(err, errsize, "cannot flush metrics file '%s': %s", log->path, h5_reason());
        return -1;
    }
    return 0;
}

/* Buffer one row (values in column order). A full buffer is flushed first; if that
 * still fails the row is refused. Keys must increase, which keeps resuming exact. */
static int table_append(struct metrics_log *log, struct table *t, const union cell *row,
                        char *err, size_t errsize)
{
    if (row[0].i <= t->last_key) {
        error_message(err, errsize,
                "metrics file '%s': %s %" PRId64 " is not after the last logged %s %" PRId64,
                log->path, t->key_name, row[0].i, t->key_name, t->last_key);
        return -1;
    }
    if (t->buffered == t->capacity && flush_all(log, err, errsize) < 0) return -1;
    for (int c = 0; c < t->ncols; c++) t->buf[c][t->buffered] = row[c];
    t->buffered++;
    t->last_key = row[0].i;
    return t->buffered == t->capacity ? flush_all(log, err, errsize) : 0;
}

/* ------------------------------------------------------------ public API */

static void log_free(struct metrics_log *log)
{
    table_close(&log->steps);
    table_close(&log->epochs);
    if (log->file >= 0) H5Fclose(log->file);
    free(log->path);
    free(log);
}

/* The directory part of `path` must exist and be writable before HDF5 gets to create
 * the file, whose own error would not say which. */
static int check_parent_dir(const char *path, char *err, size_t errsize)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(dir, sizeof dir, ".");
    } else if (slash == path) {
        snprintf(dir, sizeof dir, "/");
    } else {
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    }
    struct stat st;
    int e = 0;
    if (stat(dir, &st) != 0)
        e = errno;
    else if (!S_ISDIR(st.st_mode))
        e = ENOTDIR;
    else if (access(dir, W_OK | X_OK) != 0)
        e = errno;
    if (e == 0) return 0;
    error_message(err, errsize, "cannot create metrics file '%s': %s", path, strerror(e));
    return -1;
}

static int create_file(struct metrics_log *log, char *err, size_t errsize)
{
    const char *path = log->path;
    if (check_parent_dir(path, err, errsize) < 0) return -1;
    log->file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (log->file < 0) {
        error_message(err, errsize, "cannot create metrics file '%s': %s", path, h5_reason());
        return -1;
    }
    if (table_create(&log->steps, log->file) < 0 || table_create(&log->epochs, log->file) < 0) {
        error_message(err, errsize, "cannot create datasets in metrics file '%s': %s", path,
                h5_reason());
        return -1;
    }
    return 0;
}

static int open_existing(struct metrics_log *log, const struct stat *st, int64_t resume_step,
                         int64_t resume_epoch, char *err, size_t errsize)
{
    const char *path = log->path;
    if (!S_ISREG(st->st_mode)) {
        error_message(err, errsize, "cannot open metrics file '%s': not a regular file", path);
        return -1;
    }
    if (access(path, R_OK | W_OK) != 0) {
        error_message(err, errsize, "cannot open metrics file '%s': %s", path, strerror(errno));
        return -1;
    }
    if (H5Fis_hdf5(path) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        error_message(err, errsize, "'%s' is not a resnet_ddp metrics file: not an HDF5 file", path);
        return -1;
    }
    log->file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (log->file < 0) {
        const char *reason = h5_reason();
        /* HDF5 locks a file while it is open for writing. */
        error_message(err, errsize, "cannot open metrics file '%s': %s%s", path, reason,
                strstr(reason, "lock") ? " (is another run writing it?)" : "");
        return -1;
    }
    if (table_open(&log->steps, log->file, path, err, errsize) < 0 ||
        table_open(&log->epochs, log->file, path, err, errsize) < 0)
        return -1;
    if (table_truncate(&log->steps, resume_step) < 0 ||
        table_truncate(&log->epochs, resume_epoch) < 0) {
        error_message(err, errsize, "cannot truncate metrics file '%s' for resuming: %s", path,
                h5_reason());
        return -1;
    }
    return 0;
}

struct metrics_log *metrics_open(const char *path, bool resume, int64_t resume_step,
                                 int64_t resume_epoch, char *err, size_t errsize)
{
    struct metrics_log *log = calloc(1, sizeof *log);
    char *path_copy = strdup(path);
    if (!log || !path_copy) {
        free(log);
        free(path_copy);
        error_message(err, errsize, "cannot open metrics file '%s': out of memory", path);
        return NULL;
    }
    log->path = path_copy;
    log->file = H5I_INVALID_HID;
    table_init(&log->steps, "/steps", step_columns,
               (int)(sizeof step_columns / sizeof step_columns[0]), STEP_CHUNK_ROWS,
               STEP_BUFFER_ROWS);
    table_init(&log->epochs, "/epochs", epoch_columns,
               (int)(sizeof epoch_columns / sizeof epoch_columns[0]), EPOCH_CHUNK_ROWS,
               EPOCH_BUFFER_ROWS);

    struct h5_quiet q = quiet_begin();
    struct stat st;
    int rc;
    if (table_alloc_buffers(&log->steps) < 0 || table_alloc_buffers(&log->epochs) < 0) {
        error_message(err, errsize, "cannot open metrics file '%s': out of memory", path);
        rc = -1;
    } else if (resume && stat(path, &st) == 0) {
        rc = open_existing(log, &st, resume_step, resume_epoch, err, errsize);
    } else {
        rc = create_file(log, err, errsize);
    }
    /* Flush at once, so even a job killed before its first row leaves a valid file. */
    if (rc == 0) rc = flush_all(log, err, errsize);
    if (rc < 0) {
        log_free(log);
        log = NULL;
    }
    quiet_end(q);
    return log;
}

int metrics_append_step(struct metrics_log *log, const struct step_record *r, char *err,
                        size_t errsize)
{
    union cell row[] = {{.i = r->step}, {.i = r->epoch},
                        {.d = r->loss}, {.d = r->lr},
                        {.d = r->images_per_second}, {.d = r->seconds}};
    struct h5_quiet q = quiet_begin();
    int rc = table_append(log, &log->steps, row, err, errsize);
    quiet_end(q);
    return rc;
}

int metrics_append_epoch(struct metrics_log *log, const struct epoch_record *r, char *err,
                         size_t errsize)
{
    union cell row[] = {{.i = r->epoch},
                        {.d = r->train_loss}, {.d = r->train_acc},
                        {.d = r->test_loss}, {.d = r->test_acc},
                        {.d = r->seconds}, {.d = r->images_per_second},
                        {.d = r->test_acc_flip}, {.d = r->ema_test_loss},
                        {.d = r->ema_test_acc}, {.d = r->ema_test_acc_flip}};
    struct h5_quiet q = quiet_begin();
    int rc = table_append(log, &log->epochs, row, err, errsize);
    /* An epoch is the unit a resumed run restarts from: make it durable now. */
    if (rc == 0) rc = flush_all(log, err, errsize);
    quiet_end(q);
    return rc;
}

int metrics_flush(struct metrics_log *log, char *err, size_t errsize)
{
    struct h5_quiet q = quiet_begin();
    int rc = flush_all(log, err, errsize);
    quiet_end(q);
    return rc;
}

/* Rows still buffered are written here; a failure at this point cannot be reported,
 * so callers that care call metrics_flush first. */
void metrics_close(struct metrics_log *log)
{
    if (!log) return;
    struct h5_quiet q = quiet_begin();
    flush_all(log, NULL, 0);
    log_free(log);
    quiet_end(q);
}
