/* test_config: defaults, the shipped configs, overrides, strict value checks, the
 * file-level error messages and the config_format round trip.
 *
 * config_load exits on error, so file and override errors are checked in a forked
 * child whose stderr goes to a temp file: exit status 2 and the one-line message. */
#include "config.h"
#include "testutil.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEFAULT_DATA_DIR "/usr/share/datasets/fashion-mnist"

/* Write `text` to a fresh temp file; `path` receives its name. */
static void write_temp(const char *text, char *path, size_t size)
{
    snprintf(path, size, "/tmp/test_config_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) {
        perror("mkstemp");
        exit(1);
    }
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t)len) {
        perror("write");
        exit(1);
    }
    close(fd);
}

/* Read a whole small file into `out` (NUL-terminated, truncated to `size`). */
static void read_file(const char *path, char *out, size_t size)
{
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return;
    size_t n = fread(out, 1, size - 1, f);
    out[n] = '\0';
    fclose(f);
}

/* Run config_load in a child; returns its exit status (-1 if it died on a signal)
 * and leaves what it printed on stderr in `err`. */
static int load_in_child(const char *path, int noverrides, char *const overrides[], char *err,
                         size_t err_size)
{
    char err_path[64];
    write_temp("", err_path, sizeof err_path);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        FILE *f = freopen(err_path, "w", stderr);
        if (!f) _exit(99);
        struct config cfg;
        config_load(&cfg, path, noverrides, overrides);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    read_file(err_path, err, err_size);
    unlink(err_path);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Load `text` as a config file in a child and expect exit 2 with one line that
 * starts with "resnet_ddp: error: <file>:<line>: " (line 0: no line number) and
 * contains each of the NULL-terminated `needles`. */
static void expect_file_error(int line, const char *text, const char *const *needles)
{
    char path[64], err[4096], prefix[256];
    write_temp(text, path, sizeof path);
    int status = load_in_child(path, 0, NULL, err, sizeof err);
    EXPECT(status == 2, "exit status %d for %s (stderr: %s)", status, text, err);
    if (line > 0)
        snprintf(prefix, sizeof prefix, "resnet_ddp: error: %s:%d: ", path, line);
    else
        snprintf(prefix, sizeof prefix, "resnet_ddp: error: %s", path);
    EXPECT(strncmp(err, prefix, strlen(prefix)) == 0, "message '%s' does not start with '%s'", err,
           prefix);
    char *nl = strchr(err, '\n');
    EXPECT(nl && nl[1] == '\0', "not exactly one line: '%s'", err);
    for (const char *const *n = needles; *n; n++)
        EXPECT(strstr(err, *n), "message '%s' lacks '%s'", err, *n);
    unlink(path);
}

/* Same for command-line overrides (over an empty file): exact message. */
static void expect_override_error(const char *override, const char *message)
{
    char path[64], err[4096], want[1024];
    write_temp("", path, sizeof path);
    char *overrides[] = {(char *)override};
    int status = load_in_child(path, 1, overrides, err, sizeof err);
    snprintf(want, sizeof want, "resnet_ddp: error: %s\n", message);
    EXPECT(status == 2, "exit status %d for override '%s'", status, override);
    EXPECT(strcmp(err, want) == 0, "override '%s': got '%s', want '%s'", override, err, want);
    unlink(path);
}

static void test_defaults(void)
{
    struct config c;
    unsetenv("RESNET_DDP_DATA");
    config_defaults(&c);
    EXPECT(strcmp(c.data_dir, DEFAULT_DATA_DIR) == 0, "data_dir %s", c.data_dir);
    EXPECT(c.resize == 0 && c.train_limit == 0 && c.test_limit == 0, "data defaults");
    EXPECT(c.augment_crop == 0 && !c.augment_flip && c.augment_erase == 0, "augmentation is on");
    EXPECT(c.depth == 18 && c.num_classes == 10 && c.width == 64 && c.init == INIT_XAVIER,
           "model defaults");
    EXPECT(c.epochs == 10 && c.batch_size == 256, "epochs %d batch %d", c.epochs, c.batch_size);
    EXPECT(c.lr == 0.05 && c.momentum == 0 && c.weight_decay == 0 && !c.nesterov &&
               c.label_smoothing == 0,
           "optimizer defaults");
    EXPECT(c.schedule == LR_SCHEDULE_CONSTANT && c.lr_step_epochs == 30 && c.lr_gamma == 0.1 &&
               c.warmup_epochs == 0,
           "schedule defaults");
    EXPECT(c.seed == 0 && c.max_steps == 0 && c.threads == 0 && c.eval_batch_size == 0 && c.progress,
           "train defaults");
    EXPECT(c.sync_bn && c.bucket_mb == 25 && c.overlap && c.shared_memory, "dist defaults");
    EXPECT(strcmp(c.checkpoint_dir, "checkpoints") == 0 && c.checkpoint_every_steps == 0 &&
               c.checkpoint_every_epochs == 1 && c.checkpoint_keep == 3 &&
               strcmp(c.checkpoint_resume, "none") == 0,
           "checkpoint defaults");
    EXPECT(c.metrics_path[0] == '\0' && c.source_path[0] == '\0', "metrics/source defaults");
}

static void test_env_data_dir(void)
{
    struct config c;
    setenv("RESNET_DDP_DATA", "/data/fmnist", 1);
    config_defaults(&c);
    EXPECT(strcmp(c.data_dir, "/data/fmnist") == 0, "env data_dir: %s", c.data_dir);
    config_load(&c, "configs/r18.ini", 0, NULL);
    EXPECT(strcmp(c.data_dir, "/data/fmnist") == 0, "env data_dir through config_load: %s", c.data_dir);

    setenv("RESNET_DDP_DATA", "", 1);
    config_defaults(&c);
    EXPECT(strcmp(c.data_dir, DEFAULT_DATA_DIR) == 0, "empty env: %s", c.data_dir);
    unsetenv("RESNET_DDP_DATA");
}

static void test_shipped_configs(void)
{
    struct config c;
    config_load(&c, "configs/r18.ini", 0, NULL);
    EXPECT(strcmp(c.source_path, "configs/r18.ini") == 0, "source_path %s", c.source_path);
    EXPECT(strcmp(c.data_dir, DEFAULT_DATA_DIR) == 0, "data_dir %s", c.data_dir);
    EXPECT(c.resize == 96, "resize %d", c.resize);
    EXPECT(c.depth == 18 && c.num_classes == 10 && c.width == 64 && c.init == INIT_XAVIER, "model");
    EXPECT(c.epochs == 10 && c.batch_size == 256 && c.lr == 0.05 && c.momentum == 0 &&
               c.weight_decay == 0 && c.schedule == LR_SCHEDULE_CONSTANT && c.seed == 0,
           "train");
    EXPECT(c.sync_bn, "sync_bn");
    EXPECT(strcmp(c.checkpoint_dir, "checkpoints/r18") == 0, "checkpoint_dir %s", c.checkpoint_dir);
    EXPECT(strcmp(c.metrics_path, "") == 0, "metrics %s", c.metrics_path);

    config_load(&c, "configs/r18-28.ini", 0, NULL);
    EXPECT(c.resize == 0, "resize %d", c.resize);
    EXPECT(c.depth == 18 && c.epochs == 10 && c.batch_size == 256 && c.lr == 0.05, "r18-28 recipe");
    EXPECT(strcmp(c.checkpoint_dir, "checkpoints/r18-28") == 0, "checkpoint_dir %s", c.checkpoint_dir);
    EXPECT(strcmp(c.metrics_path, "") == 0, "metrics %s", c.metrics_path);
}

static void test_overrides(void)
{
    struct config c;
    char *overrides[] = {"train.lr=0.1",       "train.epochs=3",     "checkpoint.dir=/tmp/ck",
                         "data.resize=0",      "train.momentum=0.9", "train.nesterov=yes",
                         "metrics.path=a=b.h5", "train.epochs=4"};
    config_load(&c, "configs/r18.ini", (int)(sizeof overrides / sizeof overrides[0]), overrides);
    EXPECT(c.lr == 0.1, "lr %g", c.lr);
    EXPECT(c.epochs == 4, "the last override wins: epochs %d", c.epochs);
    EXPECT(strcmp(c.checkpoint_dir, "/tmp/ck") == 0, "checkpoint_dir %s", c.checkpoint_dir);
    EXPECT(c.resize == 0 && c.momentum == 0.9 && c.nesterov, "resize/momentum/nesterov");
    EXPECT(strcmp(c.metrics_path, "a=b.h5") == 0, "'=' inside a value: %s", c.metrics_path);
    EXPECT(c.batch_size == 256, "untouched key keeps the file value: %d", c.batch_size);

    /* No file at all: defaults plus overrides. */
    char *one[] = {"model.depth=50"};
    config_load(&c, NULL, 1, one);
    EXPECT(c.depth == 50 && c.source_path[0] == '\0', "NULL path: depth %d", c.depth);
}

/* A file in the accepted but unusual shapes: indentation, inline comments,
 * "key: value", repeated keys, upper-case booleans. */
static void test_file_forms(void)
{
    char path[64];
    write_temp("; comment\n# comment\n\n[train]\n  epochs = 3 ; three\nepochs = 5\nlr: 0.125\n"
               "progress = OFF\n[dist]\noverlap = No\n[train]\nseed = 9223372036854775807",
               path, sizeof path);
    struct config c;
    config_load(&c, path, 0, NULL);
    EXPECT(c.epochs == 5, "last of a repeated key wins: %d", c.epochs);
    EXPECT(c.lr == 0.125 && !c.progress && !c.overlap, "lr %g", c.lr);
    EXPECT(c.seed == INT64_MAX, "seed without a final newline: %llu", (unsigned long long)c.seed);
    unlink(path);
}

struct set_case {
    const char *section, *key, *value;
    const char *error; /* NULL: accepted; otherwise the exact message */
};

static void test_config_set(void)
{
#define INT_BATCH "expected an integer in 1..1048576"
#define NUM_LR "expected a number > 0 and <= 100"
#define BOOLEAN "expected true or false"
    static const struct set_case cases[] = {
        /* non-numbers */
        {"train", "batch_size", "abc", INT_BATCH},
        {"train", "batch_size", "12abc", INT_BATCH},
        {"train", "batch_size", "", INT_BATCH},
        {"train", "batch_size", " 12", INT_BATCH},
        {"train", "batch_size", "1e3", INT_BATCH},
        {"train", "batch_size", "12.0", INT_BATCH},
        {"train", "batch_size", "0x10", INT_BATCH},
        {"train", "lr", "abc", NUM_LR},
        {"train", "lr", "0.1x", NUM_LR},
        {"train", "lr", "nan", NUM_LR},
        {"train", "lr", "inf", NUM_LR},
        {"train", "lr", "", NUM_LR},
        /* ranges */
        {"train", "batch_size", "1", NULL},
        {"train", "batch_size", "1048576", NULL},
        {"train", "batch_size", "0", INT_BATCH},
        {"train", "batch_size", "1048577", INT_BATCH},
        {"train", "batch_size", "-5", INT_BATCH},
        {"train", "batch_size", "99999999999999999999", INT_BATCH},
        {"data", "resize", "0", NULL},
        {"data", "resize", "8", NULL},
        {"data", "resize", "512", NULL},
        {"data", "resize", "7", "expected 0 (keep 28x28) or an integer in 8..512"},
        {"data", "resize", "513", "expected 0 (keep 28x28) or an integer in 8..512"},
        {"data", "train_limit", "9223372036854775807", NULL},
        {"data", "train_limit", "-1", "expected an integer >= 0 (0 = all images)"},
        {"data", "test_limit", "9223372036854775808", "expected an integer >= 0 (0 = all images)"},
        {"data", "augment_crop", "64", NULL},
        {"data", "augment_crop", "-1", "expected an integer in 0..64 (0 = off)"},
        {"data", "augment_crop", "65", "expected an integer in 0..64 (0 = off)"},
        {"data", "augment_flip", "yes", NULL},
        {"data", "augment_flip", "half", "expected true or false"},
        {"data", "augment_erase", "1", NULL},
        {"data", "augment_erase", "1.5", "expected a number >= 0 and <= 1 (0 = off)"},
        {"data", "augment_erase", "-0.1", "expected a number >= 0 and <= 1 (0 = off)"},
        {"model", "depth", "34", NULL},
        {"model", "depth", "20", "expected one of 18, 34, 50"},
        {"model", "num_classes", "1", "expected an integer in 2..1000"},
        {"model", "num_classes", "1000", NULL},
        {"model", "width", "1025", "expected an integer in 1..1024"},
        {"train", "epochs", "0", "expected an integer in 1..100000"},
        {"train", "lr", "0", NUM_LR},
        {"train", "lr", "100", NULL},
        {"train", "lr", "100.000001", NUM_LR},
        {"train", "lr", "1e-3", NULL},
        {"train", "momentum", "0", NULL},
        {"train", "momentum", "0.99", NULL},
        {"train", "momentum", "1", "expected a number >= 0 and < 1"},
        {"train", "momentum", "-0.1", "expected a number >= 0 and < 1"},
        {"train", "weight_decay", "1", NULL},
        {"train", "weight_decay", "1.5", "expected a number >= 0 and <= 1"},
        {"train", "label_smoothing", "0.1", NULL},
        {"train", "label_smoothing", "0.999", NULL},
        {"train", "label_smoothing", "1", "expected a number >= 0 and < 1"},
        {"train", "label_smoothing", "-0.1", "expected a number >= 0 and < 1"},
        {"train", "lr_step_epochs", "0", "expected an integer >= 1"},
        {"train", "lr_gamma", "0", "expected a number > 0 and <= 1"},
        {"train", "lr_gamma", "1", NULL},
        {"train", "warmup_epochs", "-1", "expected a number >= 0 and <= [train] epochs"},
        {"train", "warmup_epochs", "2.5", NULL},
        {"train", "seed", "9223372036854775807", NULL},
        {"train", "seed", "9223372036854775808", "expected an integer in 0..9223372036854775807"},
        {"train", "seed", "-1", "expected an integer in 0..9223372036854775807"},
        {"train", "seed", "18446744073709551616", "expected an integer in 0..9223372036854775807"},
        {"train", "max_steps", "-1", "expected an integer >= 0 (0 = no limit)"},
        {"train", "threads", "1025", "expected an integer in 0..1024 (0 = auto)"},
        {"train", "eval_batch_size", "1048577", "expected an integer in 0..1048576 (0 = train batch per rank)"},
        {"dist", "bucket_mb", "0", "expected a number > 0 and <= 4096"},
        {"dist", "bucket_mb", "4096", NULL},
        {"dist", "bucket_mb", "4097", "expected a number > 0 and <= 4096"},
        {"checkpoint", "every_steps", "-1", "expected an integer >= 0 (0 = off)"},
        {"checkpoint", "every_epochs", "-1", "expected an integer >= 0 (0 = off)"},
        {"checkpoint", "keep", "0", "expected an integer in 1..1000"},
        {"checkpoint", "keep", "1001", "expected an integer in 1..1000"},
        /* booleans */
        {"train", "nesterov", "maybe", BOOLEAN},
        {"train", "nesterov", "", BOOLEAN},
        {"train", "nesterov", "2", BOOLEAN},
        {"train", "nesterov", "TRUE", NULL},
        {"train", "nesterov", "Yes", NULL},
        {"train", "nesterov", "on", NULL},
        {"train", "nesterov", "0", NULL},
        {"dist", "sync_bn", "ofF", NULL},
        /* enums: exact lower-case words */
        {"model", "init", "kaiming", NULL},
        {"model", "init", "Xavier", "expected one of xavier, kaiming"},
        {"model", "init", "he", "expected one of xavier, kaiming"},
        {"train", "schedule", "cosine", NULL},
        {"train", "schedule", "onecycle", NULL},
        {"train", "schedule", "linear", "expected one of constant, step, cosine, onecycle"},
        {"train", "schedule", "OneCycle", "expected one of constant, step, cosine, onecycle"},
        /* strings */
        {"data", "dir", "", "expected a non-empty path shorter than 1024 characters"},
        {"checkpoint", "dir", "", "expected a non-empty path shorter than 1024 characters"},
        {"checkpoint", "resume", "auto", NULL},
        {"checkpoint", "resume", "", "expected auto, none or a checkpoint path shorter than 1024 characters"},
        {"metrics", "path", "", NULL},
    };
    struct config c;
    config_defaults(&c);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct set_case *t = &cases[i];
        const char *got = config_set(&c, t->section, t->key, t->value);
        if (t->error)
            EXPECT(got && strcmp(got, t->error) == 0, "[%s] %s = \"%s\": got '%s', want '%s'",
                   t->section, t->key, t->value, got ? got : "(accepted)", t->error);
        else
            EXPECT(!got, "[%s] %s = \"%s\" rejected: %s", t->section, t->key, t->value, got);
    }

    /* A rejected value leaves the field alone; an accepted one is stored. */
    config_defaults(&c);
    EXPECT(config_set(&c, "train", "batch_size", "0") && c.batch_size == 256, "batch %d", c.batch_size);
    EXPECT(!config_set(&c, "train", "batch_size", "+64") && c.batch_size == 64, "batch %d", c.batch_size);
    EXPECT(!config_set(&c, "train", "schedule", "step") && c.schedule == LR_SCHEDULE_STEP, "schedule");
    EXPECT(!config_set(&c, "model", "init", "kaiming") && c.init == INIT_KAIMING, "init");
    EXPECT(!config_set(&c, "train", "seed", "12345678901234") && c.seed == 12345678901234u, "seed");

    char long_path[CONFIG_PATH_MAX + 1];
    memset(long_path, 'p', sizeof long_path - 1);
    long_path[CONFIG_PATH_MAX] = '\0';
    EXPECT(config_set(&c, "data", "dir", long_path), "a %d-character path", CONFIG_PATH_MAX);
    long_path[CONFIG_PATH_MAX - 1] = '\0';
    EXPECT(!config_set(&c, "data", "dir", long_path) && strlen(c.data_dir) == CONFIG_PATH_MAX - 1,
           "a %d-character path", CONFIG_PATH_MAX - 1);

    const char *msg = config_set(&c, "train", "bacth_size", "5");
    EXPECT(msg && strstr(msg, "unknown key"), "unknown key: %s", msg ? msg : "(accepted)");
    msg = config_set(&c, "trian", "batch_size", "5");
    EXPECT(msg && strstr(msg, "unknown section"), "unknown section: %s", msg ? msg : "(accepted)");
    msg = config_set(&c, "model", "batch_size", "5");
    EXPECT(msg && strstr(msg, "unknown key"), "key of another section: %s", msg ? msg : "(accepted)");
}

static void test_file_errors(void)
{
    expect_file_error(3, "[train]\nepochs = 2\nbatch_size = abc\n",
                      (const char *const[]){"[train] batch_size = \"abc\": expected an integer in 1..1048576\n",
                                            NULL});
    expect_file_error(2, "[train]\nbatch_size = 0\n",
                      (const char *const[]){"[train] batch_size = \"0\": expected an integer in 1..1048576", NULL});
    expect_file_error(4, "[data]\nresize = 96\n[model]\ninit = he\n",
                      (const char *const[]){"[model] init = \"he\": expected one of xavier, kaiming", NULL});
    expect_file_error(2, "[dist]\nsync_bn = maybe\n",
                      (const char *const[]){"[dist] sync_bn = \"maybe\": expected true or false", NULL});
    expect_file_error(2, "[train]\nlr = -1\n",
                      (const char *const[]){"[train] lr = \"-1\": expected a number > 0 and <= 100", NULL});
    expect_file_error(7, "[train]\nepochs = 2\n\n\n\n; typo below\nbacth_size = 5\n",
                      (const char *const[]){"unknown key [train] bacth_size (known keys: epochs, batch_size, ",
                                            "progress, profile, winograd, ema_decay, eval_flip)", NULL});
    expect_file_error(4, "[train]\nepochs = 2\n[trian]\nepochs = 3\n",
                      (const char *const[]){"unknown section [trian] (known sections: data, model, "
                                            "train, dist, checkpoint, metrics)",
                                            NULL});
    expect_file_error(1, "epochs = 2\n", (const char *const[]){"key 'epochs' is outside any section", NULL});
    expect_file_error(3, "[train]\nepochs = 2\nthis is not ini\nbatch_size = abc\n",
                      (const char *const[]){"INI syntax error (expected \"[section]\" or \"key = value\")\n",
                                            NULL});
    expect_file_error(2, "[train]\n[model\ndepth = 18\n", (const char *const[]){"INI syntax error", NULL});
    /* The first error is the one reported. */
    expect_file_error(2, "[train]\nepochs = x\nbatch_size = y\n", (const char *const[]){"epochs", NULL});

    /* A line that does not fit the reader's buffer is refused, not split. */
    size_t long_len = 20000;
    char *text = malloc(long_len + 64);
    strcpy(text, "[data]\ndir = ");
    size_t n = strlen(text);
    memset(text + n, 'd', long_len);
    strcpy(text + n + long_len, "\n");
    expect_file_error(2, text, (const char *const[]){"line longer than", NULL});
    free(text);

    /* Cross-key checks run after the file and the overrides. */
    expect_file_error(0, "[train]\nnesterov = true\n",
                      (const char *const[]){": [train] nesterov = true requires [train] momentum > 0", NULL});
    expect_file_error(0, "[train]\nwarmup_epochs = 3\nepochs = 2\n",
                      (const char *const[]){"[train] warmup_epochs = 3 is more than [train] epochs = 2", NULL});

    char path[64], err[4096];
    write_temp("[train]\nnesterov = true\n", path, sizeof path);
    char *fix[] = {"train.momentum=0.9"};
    int status = load_in_child(path, 1, fix, err, sizeof err);
    EXPECT(status == 0, "override fixes nesterov: status %d, %s", status, err);
    unlink(path);

    status = load_in_child("/nonexistent/x.ini", 0, NULL, err, sizeof err);
    EXPECT(status == 2, "missing file: status %d", status);
    EXPECT(strcmp(err, "resnet_ddp: error: cannot open config file '/nonexistent/x.ini': "
                       "No such file or directory\n") == 0,
           "missing file: %s", err);

    status = load_in_child("configs", 0, NULL, err, sizeof err);
    EXPECT(status == 2 && strstr(err, "cannot read config file 'configs'"), "directory: %d %s", status, err);

    status = load_in_child("configs/r18.ini", 0, NULL, err, sizeof err);
    EXPECT(status == 0 && err[0] == '\0', "a good file in the child: %d %s", status, err);
}

static void test_override_errors(void)
{
    expect_override_error("train.lr=abc",
                          "command line override 'train.lr=abc': [train] lr: expected a number > 0 and <= 100");
    expect_override_error("foo", "command line override 'foo': expected section.key=value");
    expect_override_error("train.lr", "command line override 'train.lr': expected section.key=value");
    expect_override_error("lr=0.1", "command line override 'lr=0.1': expected section.key=value");
    expect_override_error(".lr=0.1", "command line override '.lr=0.1': expected section.key=value");
    expect_override_error("train.=0.1", "command line override 'train.=0.1': expected section.key=value");
    expect_override_error("model.depth=20",
                          "command line override 'model.depth=20': [model] depth: expected one of 18, 34, 50");
    expect_override_error("data.augment_erase=1.5",
                          "command line override 'data.augment_erase=1.5': [data] augment_erase: "
                          "expected a number >= 0 and <= 1 (0 = off)");
    expect_override_error("dist.overlap=maybe",
                          "command line override 'dist.overlap=maybe': [dist] overlap: expected true or false");
    expect_override_error("dist.bucketmb=5",
                          "command line override 'dist.bucketmb=5': unknown key [dist] bucketmb "
                          "(known keys: sync_bn, bucket_mb, overlap, shared_memory, timeout, shard_size)");
    expect_override_error("distr.bucket_mb=5",
                          "command line override 'distr.bucket_mb=5': unknown section [distr] "
                          "(known sections: data, model, train, dist, checkpoint, metrics)");
}

static void expect_same(const struct config *a, const struct config *b)
{
    EXPECT(strcmp(a->data_dir, b->data_dir) == 0, "data_dir %s vs %s", a->data_dir, b->data_dir);
    EXPECT(a->resize == b->resize && a->train_limit == b->train_limit && a->test_limit == b->test_limit,
           "data");
    EXPECT(a->augment_crop == b->augment_crop && a->augment_flip == b->augment_flip &&
               a->augment_erase == b->augment_erase,
           "augmentation");
    EXPECT(a->depth == b->depth && a->num_classes == b->num_classes && a->width == b->width &&
               a->init == b->init,
           "model");
    EXPECT(a->epochs == b->epochs && a->batch_size == b->batch_size, "epochs/batch");
    EXPECT(a->lr == b->lr, "lr %.17g vs %.17g", a->lr, b->lr);
    EXPECT(a->momentum == b->momentum && a->weight_decay == b->weight_decay && a->nesterov == b->nesterov,
           "momentum %.17g vs %.17g, weight_decay %.17g vs %.17g", a->momentum, b->momentum,
           a->weight_decay, b->weight_decay);
    EXPECT(a->label_smoothing == b->label_smoothing, "label_smoothing %.17g vs %.17g",
           a->label_smoothing, b->label_smoothing);
    EXPECT(a->schedule == b->schedule && a->lr_step_epochs == b->lr_step_epochs &&
               a->lr_gamma == b->lr_gamma && a->warmup_epochs == b->warmup_epochs,
           "schedule");
    EXPECT(a->seed == b->seed && a->max_steps == b->max_steps && a->threads == b->threads &&
               a->eval_batch_size == b->eval_batch_size && a->progress == b->progress,
           "train");
    EXPECT(a->sync_bn == b->sync_bn && a->bucket_mb == b->bucket_mb && a->overlap == b->overlap &&
               a->shared_memory == b->shared_memory,
           "dist");
    EXPECT(strcmp(a->checkpoint_dir, b->checkpoint_dir) == 0 &&
               a->checkpoint_every_steps == b->checkpoint_every_steps &&
               a->checkpoint_every_epochs == b->checkpoint_every_epochs &&
               a->checkpoint_keep == b->checkpoint_keep &&
               strcmp(a->checkpoint_resume, b->checkpoint_resume) == 0,
           "checkpoint");
    EXPECT(strcmp(a->metrics_path, b->metrics_path) == 0, "metrics %s vs %s", a->metrics_path,
           b->metrics_path);
}

static void round_trip(const struct config *a)
{
    size_t need = config_format(a, NULL, 0);
    char *text = malloc(need + 1);
    size_t wrote = config_format(a, text, need + 1);
    EXPECT(wrote == need && strlen(text) == need, "needed %zu, wrote %zu, strlen %zu", need, wrote,
           strlen(text));

    char small[16];
    EXPECT(config_format(a, small, sizeof small) == need && strlen(small) == sizeof small - 1 &&
               strncmp(small, text, sizeof small - 1) == 0,
           "truncated output: '%s'", small);

    const char *order[] = {"[data]\n", "[model]\n", "[train]\n", "[dist]\n", "[checkpoint]\n", "[metrics]\n"};
    const char *prev = text;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        const char *at = strstr(text, order[i]);
        EXPECT(at && at >= prev, "section %s missing or out of order", order[i]);
        if (at) prev = at;
    }
    EXPECT(text == strstr(text, "[data]\ndir = "), "output starts '%.20s'", text);

    char path[64];
    write_temp(text, path, sizeof path);
    struct config b;
    config_load(&b, path, 0, NULL);
    expect_same(a, &b);
    EXPECT(strcmp(b.source_path, path) == 0, "source_path %s", b.source_path);
    unlink(path);
    free(text);
}

static void test_format_round_trip(void)
{
    struct config a;
    config_defaults(&a);
    round_trip(&a);

    /* Every field away from its default, with doubles that need 17 digits. */
    strcpy(a.data_dir, "/srv/data/fashion mnist");
    a.resize = 64;
    a.train_limit = 5000000000;
    a.test_limit = 1000;
    a.augment_crop = 4;
    a.augment_flip = true;
    a.augment_erase = 0.1 + 0.2;
    a.depth = 50;
    a.num_classes = 1000;
    a.width = 8;
    a.init = INIT_KAIMING;
    a.epochs = 90;
    a.batch_size = 1024;
    a.lr = 0.1 + 0.2;
    a.momentum = 0.9;
    a.weight_decay = 1.0 / 3.0;
    a.nesterov = true;
    a.label_smoothing = 0.1;
    a.schedule = LR_SCHEDULE_COSINE;
    a.lr_step_epochs = 7;
    a.lr_gamma = 1e-7;
    a.warmup_epochs = 2.5;
    a.seed = 9223372036854775807u;
    a.max_steps = 123456789012;
    a.threads = 4;
    a.eval_batch_size = 512;
    a.progress = false;
    a.sync_bn = false;
    a.bucket_mb = 0.1;
    a.overlap = false;
    a.shared_memory = false;
    strcpy(a.checkpoint_dir, "/tmp/ck=1");
    a.checkpoint_every_steps = 100;
    a.checkpoint_every_epochs = 0;
    a.checkpoint_keep = 1000;
    strcpy(a.checkpoint_resume, "auto");
    strcpy(a.metrics_path, "/tmp/m.h5");
    round_trip(&a);

    /* Short decimals stay short in the text. */
    config_defaults(&a);
    char text[4096];
    config_format(&a, text, sizeof text);
    EXPECT(strstr(text, "\nlr = 0.05\n") && strstr(text, "\nlr_gamma = 0.1\n"), "doubles: %s", text);
}

int main(void)
{
    unsetenv("RESNET_DDP_DATA");
    test_defaults();
    test_env_data_dir();
    test_shipped_configs();
    test_overrides();
    test_file_forms();
    test_config_set();
    test_file_errors();
    test_override_errors();
    test_format_round_trip();
    return test_summary("test_config");
}
