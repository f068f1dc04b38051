/* test_metrics: the HDF5 metrics log (metrics.c), read back with the HDF5 C API.
 *
 * Files go into a mkdtemp() directory. Cases: a fresh log of 1000 steps and 3 epochs
 * read back value by value; resuming in the middle (rows after the resume point are
 * dropped, the new ones follow without duplicates); the error messages for a missing
 * directory, a file that is not HDF5 and HDF5 files with the wrong layout, with
 * nothing printed by HDF5 itself; and jobs that die without closing the file: a
 * fork()ed child appends, flushes and then _exit()s or SIGKILLs itself, and the
 * parent must find every flushed row and be able to resume the log. */
#include "metrics.h"
#include "testutil.h"

#include <hdf5.h>

#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { STEPS_PER_EPOCH = 334 };

/* ------------------------------------------------------------------ helpers */

/* Row values depend on the step and on `run`, so rows of a resumed run are told
 * apart from the rows they replace. */
static struct step_record make_step(int64_t step, int run)
{
    double s = (double)step;
    return (struct step_record){
        .step = step,
        .epoch = (step - 1) / STEPS_PER_EPOCH + 1,
        .loss = 2.5 / (1.0 + 0.01 * s) + 100.0 * run,
        .lr = 0.1 * (1.0 - s / 2000.0),
        .images_per_second = 1000.0 + s / 3.0,
        .seconds = 0.05 + s * 1e-4,
    };
}

static struct epoch_record make_epoch(int64_t epoch, int run)
{
    double e = (double)epoch;
    return (struct epoch_record){
        .epoch = epoch,
        .train_loss = 1.0 / e + 100.0 * run,
        .train_acc = 0.7 + e / 100.0,
        .test_loss = 1.1 / e,
        .test_acc = 0.69 + e / 100.0,
        .seconds = 60.0 + e,
        .images_per_second = 950.0 + e,
    };
}

static struct metrics_log *open_or_die(const char *path, bool resume, int64_t step,
                                       int64_t epoch)
{
    char err[512];
    struct metrics_log *log = metrics_open(path, resume, step, epoch, err, sizeof err);
    if (!log) {
        fprintf(stderr, "metrics_open(%s): %s\n", path, err);
        exit(1);
    }
    return log;
}

static void append_steps(struct metrics_log *log, int64_t first, int64_t last, int run)
{
    char err[512];
    for (int64_t s = first; s <= last; s++) {
        struct step_record r = make_step(s, run);
        if (metrics_append_step(log, &r, err, sizeof err) != 0) {
            fprintf(stderr, "append step %" PRId64 ": %s\n", s, err);
            exit(1);
        }
    }
}

static void append_epoch(struct metrics_log *log, int64_t epoch, int run)
{
    char err[512];
    struct epoch_record r = make_epoch(epoch, run);
    if (metrics_append_epoch(log, &r, err, sizeof err) != 0) {
        fprintf(stderr, "append epoch %" PRId64 ": %s\n", epoch, err);
        exit(1);
    }
}

/* Read a whole 1-D dataset as int64 or double (HDF5 converts); *n = its length. */
static void *read_column(hid_t file, const char *name, hid_t mem_type, hsize_t *n)
{
    *n = 0;
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    if (d < 0) {
        fprintf(stderr, "cannot open dataset %s\n", name);
        test_failures++;
        return NULL;
    }
    hid_t space = H5Dget_space(d);
    H5Sget_simple_extent_dims(space, n, NULL);
    void *v = malloc(*n ? *n * 8 : 1);
    if (!v || H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0) {
        fprintf(stderr, "cannot read dataset %s\n", name);
        test_failures++;
    }
    H5Sclose(space);
    H5Dclose(d);
    return v;
}

static hid_t open_readonly(const char *path)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        fprintf(stderr, "H5Fopen(%s) read-only failed\n", path);
        exit(1);
    }
    return f;
}

/* Check that /steps holds steps 1..nsteps with the values of make_step, run
 * `run_before` for steps <= switch_step and `run_after` above. */
static void check_steps(hid_t f, int64_t nsteps, int64_t switch_step, int run_before,
                        int run_after)
{
    static const char *dnames[] = {"/steps/loss", "/steps/lr", "/steps/images_per_second",
                                   "/steps/seconds"};
    hsize_t n = 0, n2 = 0;
    int64_t *step = read_column(f, "/steps/step", H5T_NATIVE_INT64, &n);
    int64_t *epoch = read_column(f, "/steps/epoch", H5T_NATIVE_INT64, &n2);
    EXPECT(n == (hsize_t)nsteps && n2 == n, "/steps has %llu and %llu rows, want %" PRId64,
           (unsigned long long)n, (unsigned long long)n2, nsteps);
    double *want = malloc((size_t)nsteps * sizeof *want);
    for (int k = 0; k < 4; k++) {
        hsize_t nd = 0;
        double *got = read_column(f, dnames[k], H5T_NATIVE_DOUBLE, &nd);
        EXPECT(nd == n, "%s has %llu rows", dnames[k], (unsigned long long)nd);
        for (int64_t i = 0; i < nsteps; i++) {
            struct step_record r = make_step(i + 1, i + 1 <= switch_step ? run_before : run_after);
            double v[] = {r.loss, r.lr, r.images_per_second, r.seconds};
            want[i] = v[k];
        }
        if (nd == (hsize_t)nsteps) expect_close(dnames[k], got, want, (size_t)nsteps, 0.0);
        free(got);
    }
    for (hsize_t i = 0; i < n && n == (hsize_t)nsteps; i++) {
        struct step_record r = make_step((int64_t)i + 1, 0);
        if (step[i] != r.step || epoch[i] != r.epoch) {
            EXPECT(0, "row %llu: step %" PRId64 " epoch %" PRId64 ", want %" PRId64 " %" PRId64,
                   (unsigned long long)i, step[i], epoch[i], r.step, r.epoch);
            break;
        }
    }
    free(want);
    free(step);
    free(epoch);
}

/* Check that /epochs holds epochs 1..nepochs, values of make_epoch(e, runs[e-1]). */
static void check_epochs(hid_t f, int64_t nepochs, const int *runs)
{
    static const char *dnames[] = {"/epochs/train_loss", "/epochs/train_acc",
                                   "/epochs/test_loss",  "/epochs/test_acc",
                                   "/epochs/seconds",    "/epochs/images_per_second"};
    hsize_t n = 0;
    int64_t *epoch = read_column(f, "/epochs/epoch", H5T_NATIVE_INT64, &n);
    EXPECT(n == (hsize_t)nepochs, "/epochs has %llu rows, want %" PRId64,
           (unsigned long long)n, nepochs);
    for (hsize_t i = 0; i < n; i++)
        EXPECT(epoch[i] == (int64_t)i + 1, "/epochs/epoch[%llu] = %" PRId64,
               (unsigned long long)i, epoch[i]);
    for (int k = 0; k < 6; k++) {
        hsize_t nd = 0;
        double *got = read_column(f, dnames[k], H5T_NATIVE_DOUBLE, &nd);
        EXPECT(nd == (hsize_t)nepochs, "%s has %llu rows", dnames[k], (unsigned long long)nd);
        for (hsize_t i = 0; i < nd && nd == (hsize_t)nepochs; i++) {
            struct epoch_record r = make_epoch((int64_t)i + 1, runs[i]);
            double v[] = {r.train_loss, r.train_acc, r.test_loss,
                          r.test_acc,   r.seconds,   r.images_per_second};
            EXPECT(got[i] == v[k], "%s[%llu] = %.17g, want %.17g", dnames[k],
                   (unsigned long long)i, got[i], v[k]);
        }
        free(got);
    }
    free(epoch);
}

/* Expect metrics_open to fail with exactly `want`, and HDF5 to print nothing: the
 * open runs in a child whose stderr goes to a file. */
static void expect_open_error(const char *path, bool resume, const char *want)
{
    char errfile[256];
    snprintf(errfile, sizeof errfile, "%s/stderr.txt", test_tmpdir());
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, STDERR_FILENO);
        char err[512] = "";
        struct metrics_log *log = metrics_open(path, resume, 0, 0, err, sizeof err);
        if (log) _exit(2);
        _exit(strcmp(err, want) == 0 ? 0 : 3);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0,
           "metrics_open(%s): status %d, want failure with \"%s\"", path, status, want);
    /* Repeat in this process to show the actual message on failure. */
    char err[512] = "";
    struct metrics_log *log = metrics_open(path, resume, 0, 0, err, sizeof err);
    EXPECT(!log && strcmp(err, want) == 0, "got \"%s\", want \"%s\"", err, want);
    metrics_close(log);
    FILE *fe = fopen(errfile, "r");
    char line[512] = "";
    size_t nread = fe ? fread(line, 1, sizeof line - 1, fe) : 0;
    if (fe) fclose(fe);
    EXPECT(nread == 0, "metrics_open(%s) printed to stderr: %s", path, line);
}

/* ------------------------------------------------------------------ cases */

static void test_create_and_read(void)
{
    const char *path = tmp_path("fresh.h5");
    struct metrics_log *log = open_or_die(path, false, 0, 0);
    for (int64_t e = 1; e <= 3; e++) {
        int64_t last = e == 3 ? 1000 : e * STEPS_PER_EPOCH;
        append_steps(log, (e - 1) * STEPS_PER_EPOCH + 1, last, 0);
        append_epoch(log, e, 0);
    }
    metrics_close(log);

    hid_t f = open_readonly(path);
    check_steps(f, 1000, 1000, 0, 0);
    check_epochs(f, 3, (const int[]){0, 0, 0});

    /* Layout: int64 keys, chunked and extendable. */
    hid_t d = H5Dopen2(f, "/steps/step", H5P_DEFAULT);
    hid_t type = H5Dget_type(d), space = H5Dget_space(d), dcpl = H5Dget_create_plist(d);
    hsize_t dims = 0, maxdims = 0, chunk = 0;
    H5Sget_simple_extent_dims(space, &dims, &maxdims);
    EXPECT(H5Tequal(type, H5T_STD_I64LE) > 0, "/steps/step is not int64");
    EXPECT(maxdims == H5S_UNLIMITED, "/steps/step is not extendable");
    EXPECT(H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, 1, &chunk) == 1 && chunk > 0,
           "/steps/step is not chunked");
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Tclose(type);
    H5Dclose(d);
    d = H5Dopen2(f, "/epochs/test_acc", H5P_DEFAULT);
    type = H5Dget_type(d);
    EXPECT(H5Tequal(type, H5T_IEEE_F64LE) > 0, "/epochs/test_acc is not float64");
    H5Tclose(type);
    H5Dclose(d);
    H5Fclose(f);

    /* A step that does not follow the last one is refused. */
    log = open_or_die(path, true, 1000, 3);
    char err[512] = "";
    struct step_record r = make_step(1000, 0);
    EXPECT(metrics_append_step(log, &r, err, sizeof err) == -1 &&
               strstr(err, "step 1000 is not after the last logged step 1000"),
           "repeated step: \"%s\"", err);
    metrics_close(log);
}

static void test_resume(void)
{
    const char *path = tmp_path("fresh.h5"); /* from test_create_and_read */
    struct metrics_log *log = open_or_die(path, true, 600, 2);
    append_steps(log, 601, 700, 1);
    append_epoch(log, 3, 1);
    metrics_close(log);

    hid_t f = open_readonly(path);
    check_steps(f, 700, 600, 0, 1);
    check_epochs(f, 3, (const int[]){0, 0, 1});
    H5Fclose(f);

    /* Resuming with a log that does not exist yet starts a new one. */
    const char *fresh = tmp_path("resume_new.h5");
    log = open_or_die(fresh, true, 500, 2);
    append_steps(log, 501, 510, 0);
    metrics_close(log);
    f = open_readonly(fresh);
    hsize_t n = 0;
    int64_t *step = read_column(f, "/steps/step", H5T_NATIVE_INT64, &n);
    EXPECT(n == 10 && step[0] == 501 && step[9] == 510, "new log on resume: %llu rows",
           (unsigned long long)n);
    free(step);
    H5Fclose(f);

    /* Resuming before the first row empties both groups. */
    log = open_or_die(path, true, 0, 0);
    metrics_close(log);
    f = open_readonly(path);
    check_steps(f, 0, 0, 0, 0);
    check_epochs(f, 0, NULL);
    H5Fclose(f);
}

static void test_errors(void)
{
    char want[1024];
    const char *nodir = tmp_path("no_such_dir/metrics.h5");
    snprintf(want, sizeof want,
             "cannot create metrics file '%s': No such file or directory", nodir);
    expect_open_error(nodir, false, want);
    expect_open_error(nodir, true, want);

    const char *text = tmp_path("text.h5");
    FILE *fp = fopen(text, "w");
    fputs("step,loss\n1,2.3\n", fp);
    fclose(fp);
    snprintf(want, sizeof want, "'%s' is not a resnet_ddp metrics file: not an HDF5 file", text);
    expect_open_error(text, true, want);

    /* HDF5 files without the expected layout. */
    const char *empty = tmp_path("empty.h5");
    H5Fclose(H5Fcreate(empty, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    snprintf(want, sizeof want, "'%s' is not a resnet_ddp metrics file: no group /steps", empty);
    expect_open_error(empty, true, want);

    const char *partial = tmp_path("partial.h5");
    metrics_close(open_or_die(partial, false, 0, 0));
    hid_t f = H5Fopen(partial, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(f, "/steps/lr", H5P_DEFAULT);
    H5Fclose(f);
    snprintf(want, sizeof want, "'%s' is not a resnet_ddp metrics file: no dataset /steps/lr",
             partial);
    expect_open_error(partial, true, want);

    const char *wrongtype = tmp_path("wrongtype.h5");
    metrics_close(open_or_die(wrongtype, false, 0, 0));
    f = H5Fopen(wrongtype, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(f, "/epochs/test_acc", H5P_DEFAULT);
    hsize_t dims = 3;
    hid_t space = H5Screate_simple(1, &dims, NULL);
    H5Dclose(H5Dcreate2(f, "/epochs/test_acc", H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT,
                        H5P_DEFAULT));
    H5Sclose(space);
    H5Fclose(f);
    snprintf(want, sizeof want,
             "'%s' is not a resnet_ddp metrics file: /epochs/test_acc is not a 1-D extendable "
             "float64 dataset",
             wrongtype);
    expect_open_error(wrongtype, true, want);

    metrics_close(NULL);
}

enum death { DIE_EXIT, DIE_SIGKILL };

/* Run `body` in a child that then dies without closing the log. */
static void die_after(const char *path, enum death how, void (*body)(const char *))
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        body(path);
        if (how == DIE_SIGKILL) raise(SIGKILL);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (how == DIE_SIGKILL)
        EXPECT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %d", status);
    else
        EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
}

/* 310 flushed steps and one epoch, then 5 steps that were never flushed. */
static void flushed_then_more(const char *path)
{
    char err[512];
    struct metrics_log *log = open_or_die(path, false, 0, 0);
    append_steps(log, 1, 300, 0);
    append_epoch(log, 1, 0);
    append_steps(log, 301, 310, 0);
    if (metrics_flush(log, err, sizeof err) != 0) {
        fprintf(stderr, "metrics_flush: %s\n", err);
        _exit(1);
    }
    append_steps(log, 311, 315, 0);
}

/* 600 steps, never flushed or closed: the automatic flushes must have kept most. */
static void steps_without_flush(const char *path)
{
    append_steps(open_or_die(path, false, 0, 0), 1, 600, 0);
}

static void test_killed(void)
{
    for (int how = DIE_EXIT; how <= DIE_SIGKILL; how++) {
        const char *path = tmp_path(how == DIE_EXIT ? "exited.h5" : "killed.h5");
        die_after(path, (enum death)how, flushed_then_more);
        hid_t f = open_readonly(path);
        check_steps(f, 310, 310, 0, 0);
        check_epochs(f, 1, (const int[]){0});
        H5Fclose(f);

        /* The killed job's log can be resumed and closed normally. */
        struct metrics_log *log = open_or_die(path, true, 300, 1);
        append_steps(log, 301, 400, 1);
        append_epoch(log, 2, 1);
        metrics_close(log);
        f = open_readonly(path);
        check_steps(f, 400, 300, 0, 1);
        check_epochs(f, 2, (const int[]){0, 1});
        H5Fclose(f);
    }

    const char *path = tmp_path("autoflush.h5");
    die_after(path, DIE_SIGKILL, steps_without_flush);
    hid_t f = open_readonly(path);
    hsize_t n = 0;
    int64_t *step = read_column(f, "/steps/step", H5T_NATIVE_INT64, &n);
    EXPECT(n >= 600 - 255 && n <= 600, "%llu of 600 unflushed steps survived, want >= 345",
           (unsigned long long)n);
    for (hsize_t i = 0; i < n; i++)
        if (step[i] != (int64_t)i + 1) {
            EXPECT(0, "step[%llu] = %" PRId64, (unsigned long long)i, step[i]);
            break;
        }
    free(step);
    H5Fclose(f);
}

int main(void)
{
    if (!test_tmpdir_make("test_metrics")) return 1;
    test_create_and_read();
    test_resume();
    test_errors();
    test_killed();
    /* Keep the files of a failed run for inspection. */
    if (test_failures == 0) remove_tree(test_tmpdir());
    else fprintf(stderr, "files kept in %s\n", test_tmpdir());
    return test_summary("test_metrics");
}
