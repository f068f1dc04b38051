/* config: struct config from defaults, an INI file (parsed by libinih) and
 * command-line overrides "section.key=value".
 *
 * Every key is described once in the `keys` table below; setting, range checking,
 * error messages and config_format() all walk that table, so a new key needs one
 * struct field and one table row. Values are parsed strictly: the whole string must
 * be a number in range, a known boolean word or a known enum word. The first error
 * stops loading with one line naming the file, the line, the key and what was
 * expected (exit code 2). */
#include "config.h"

#include "error.h"

#include <ini.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Longest accepted INI line including "\n\0": room for a full-length path value,
 * its key and a comment. Longer lines are an error rather than silently split. */
#define CONFIG_LINE_MAX (4 * CONFIG_PATH_MAX)

enum value_kind {
    KIND_INT,      /* int in [imin, imax] */
    KIND_INT64,    /* int64_t in [imin, imax] */
    KIND_UINT64,   /* uint64_t in [0, imax]; a leading '-' is rejected */
    KIND_DOUBLE,   /* finite double in the (open or closed) range [dmin, dmax] */
    KIND_BOOL,
    KIND_STRING,   /* shorter than CONFIG_PATH_MAX; non-empty unless allow_empty */
    KIND_DEPTH,    /* 18, 34 or 50 */
    KIND_RESIZE,   /* 0 or [imin, imax] */
    KIND_INIT,     /* enum init_scheme */
    KIND_SCHEDULE, /* enum lr_schedule */
    KIND_STEM,     /* enum stem_kind */
};

struct key_spec {
    const char *section;
    const char *key;
    enum value_kind kind;
    size_t offset;
    int64_t imin, imax;
    double dmin, dmax;
    bool dmin_open, dmax_open;
    bool allow_empty;
    const char *expected; /* returned by config_set when the value is rejected */
    const char *def;      /* the default, as config text: the only place defaults live */
    const char *doc;      /* how README.md shows the default, when not `def` */
};

#define FIELD(name) offsetof(struct config, name)

/* Word lists indexed by the enum values of config.h. */
static const char *const init_names[] = {[INIT_XAVIER] = "xavier", [INIT_KAIMING] = "kaiming"};
static const char *const stem_names[] = {[STEM_D2L] = "d2l", [STEM_NOPOOL] = "nopool"};
static const char *const schedule_names[] = {
    [LR_SCHEDULE_CONSTANT] = "constant", [LR_SCHEDULE_STEP] = "step",
    [LR_SCHEDULE_COSINE] = "cosine", [LR_SCHEDULE_ONECYCLE] = "onecycle"};

/* Rows are grouped by section in the order config_format() writes them. */
static const struct key_spec keys[] = {
    {.section = "data", .key = "dir", .def = "/usr/share/datasets/fashion-mnist",
     .doc = "$RESNET_DDP_DATA, else /usr/share/datasets/fashion-mnist",
     .kind = KIND_STRING, .offset = FIELD(data_dir),
     .expected = "expected a non-empty path shorter than 1024 characters"},
    {.section = "data", .key = "resize", .def = "0", .kind = KIND_RESIZE, .offset = FIELD(resize),
     .imin = 8, .imax = 512, .expected = "expected 0 (keep 28x28) or an integer in 8..512"},
    {.section = "data", .key = "train_limit", .def = "0",
     .kind = KIND_INT64, .offset = FIELD(train_limit),
     .imin = 0, .imax = INT64_MAX, .expected = "expected an integer >= 0 (0 = all images)"},
    {.section = "data", .key = "test_limit", .def = "0",
     .kind = KIND_INT64, .offset = FIELD(test_limit),
     .imin = 0, .imax = INT64_MAX, .expected = "expected an integer >= 0 (0 = all images)"},
    {.section = "data", .key = "augment_crop", .def = "0",
     .kind = KIND_INT, .offset = FIELD(augment_crop),
     .imin = 0, .imax = 64, .expected = "expected an integer in 0..64 (0 = off)"},
    {.section = "data", .key = "augment_flip", .def = "false",
     .kind = KIND_BOOL, .offset = FIELD(augment_flip),
     .expected = "expected true or false"},
    {.section = "data", .key = "augment_erase", .def = "0",
     .kind = KIND_DOUBLE, .offset = FIELD(augment_erase),
     .dmin = 0, .dmax = 1, .expected = "expected a number >= 0 and <= 1 (0 = off)"},

    {.section = "model", .key = "depth", .def = "18", .kind = KIND_DEPTH, .offset = FIELD(depth),
     .expected = "expected one of 18, 34, 50"},
    {.section = "model", .key = "num_classes", .def = "10",
     .kind = KIND_INT, .offset = FIELD(num_classes),
     .imin = 2, .imax = 1000, .expected = "expected an integer in 2..1000"},
    {.section = "model", .key = "width", .def = "64", .kind = KIND_INT, .offset = FIELD(width),
     .imin = 1, .imax = 1024, .expected = "expected an integer in 1..1024"},
    {.section = "model", .key = "init", .def = "xavier", .kind = KIND_INIT, .offset = FIELD(init),
     .expected = "expected one of xavier, kaiming"},
    {.section = "model", .key = "stem", .def = "d2l", .kind = KIND_STEM, .offset = FIELD(stem),
     .expected = "expected one of d2l, nopool"},

    {.section = "train", .key = "epochs", .def = "10", .kind = KIND_INT, .offset = FIELD(epochs),
     .imin = 1, .imax = 100000, .expected = "expected an integer in 1..100000"},
    {.section = "train", .key = "batch_size", .def = "256",
     .kind = KIND_INT, .offset = FIELD(batch_size),
     .imin = 1, .imax = 1048576, .expected = "expected an integer in 1..1048576"},
    {.section = "train", .key = "lr", .def = "0.05", .kind = KIND_DOUBLE, .offset = FIELD(lr),
     .dmin = 0, .dmin_open = true, .dmax = 100, .expected = "expected a number > 0 and <= 100"},
    {.section = "train", .key = "momentum", .def = "0",
     .kind = KIND_DOUBLE, .offset = FIELD(momentum),
     .dmin = 0, .dmax = 1, .dmax_open = true, .expected = "expected a number >= 0 and < 1"},
    {.section = "train", .key = "weight_decay", .def = "0",
     .kind = KIND_DOUBLE, .offset = FIELD(weight_decay),
     .dmin = 0, .dmax = 1, .expected = "expected a number >= 0 and <= 1"},
    {.section = "train", .key = "nesterov", .def = "false",
     .kind = KIND_BOOL, .offset = FIELD(nesterov),
     .expected = "expected true or false"},
    {.section = "train", .key = "label_smoothing", .def = "0",
     .kind = KIND_DOUBLE, .offset = FIELD(label_smoothing),
     .dmin = 0, .dmax = 1, .dmax_open = true, .expected = "expected a number >= 0 and < 1"},
    {.section = "train", .key = "schedule", .def = "constant",
     .kind = KIND_SCHEDULE, .offset = FIELD(schedule),
     .expected = "expected one of constant, step, cosine, onecycle"},
    {.section = "train", .key = "lr_step_epochs", .def = "30",
     .kind = KIND_INT, .offset = FIELD(lr_step_epochs),
     .imin = 1, .imax = INT_MAX, .expected = "expected an integer >= 1"},
    {.section = "train", .key = "lr_gamma", .def = "0.1",
     .kind = KIND_DOUBLE, .offset = FIELD(lr_gamma),
     .dmin = 0, .dmin_open = true, .dmax = 1, .expected = "expected a number > 0 and <= 1"},
    /* The upper bound (epochs) is checked once everything is set, in validate(). */
    {.section = "train", .key = "warmup_epochs", .def = "0",
     .kind = KIND_DOUBLE, .offset = FIELD(warmup_epochs),
     .dmin = 0, .dmax = HUGE_VAL, .expected = "expected a number >= 0 and <= [train] epochs"},
    {.section = "train", .key = "seed", .def = "0", .kind = KIND_UINT64, .offset = FIELD(seed),
     .imax = INT64_MAX, .expected = "expected an integer in 0..9223372036854775807"},
    {.section = "train", .key = "max_steps", .def = "0",
     .kind = KIND_INT64, .offset = FIELD(max_steps),
     .imin = 0, .imax = INT64_MAX, .expected = "expected an integer >= 0 (0 = no limit)"},
    {.section = "train", .key = "threads", .def = "0", .kind = KIND_INT, .offset = FIELD(threads),
     .imin = 0, .imax = 1024, .expected = "expected an integer in 0..1024 (0 = auto)"},
    {.section = "train", .key = "eval_batch_size", .def = "0",
     .kind = KIND_INT, .offset = FIELD(eval_batch_size),
     .imin = 0, .imax = 1048576, .expected = "expected an integer in 0..1048576 (0 = train batch per rank)"},
    {.section = "train", .key = "eval_every_epochs", .def = "1", .kind = KIND_INT,
     .offset = FIELD(eval_every_epochs), .imin = 1, .imax = 100000,
     .expected = "expected an integer in 1..100000 (the last epoch is always evaluated)"},
    {.section = "train", .key = "progress", .def = "true",
     .kind = KIND_BOOL, .offset = FIELD(progress),
     .expected = "expected true or false"},
    {.section = "train", .key = "profile", .def = "false",
     .kind = KIND_BOOL, .offset = FIELD(profile),
     .expected = "expected true or false"},
    {.section = "train", .key = "winograd", .def = "true",
     .kind = KIND_BOOL, .offset = FIELD(winograd),
     .expected = "expected true or false"},
    {.section = "train", .key = "ema_decay", .def = "0", .kind = KIND_DOUBLE,
     .offset = FIELD(ema_decay), .dmin = 0, .dmax = 1, .dmax_open = true,
     .expected = "expected a number >= 0 and < 1 (0 = no weight average)"},
    {.section = "train", .key = "eval_flip", .def = "false", .kind = KIND_BOOL,
     .offset = FIELD(eval_flip), .expected = "expected true or false"},

    {.section = "dist", .key = "sync_bn", .def = "true",
     .kind = KIND_BOOL, .offset = FIELD(sync_bn),
     .expected = "expected true or false"},
    {.section = "dist", .key = "bucket_mb", .def = "25",
     .kind = KIND_DOUBLE, .offset = FIELD(bucket_mb),
     .dmin = 0, .dmin_open = true, .dmax = 4096, .expected = "expected a number > 0 and <= 4096"},
    {.section = "dist", .key = "overlap", .def = "true",
     .kind = KIND_BOOL, .offset = FIELD(overlap),
     .expected = "expected true or false"},
    {.section = "dist", .key = "shared_memory", .def = "true",
     .kind = KIND_BOOL, .offset = FIELD(shared_memory),
     .expected = "expected true or false"},
    {.section = "dist", .key = "timeout", .def = "600",
     .kind = KIND_DOUBLE, .offset = FIELD(timeout),
     .dmin = 0, .dmax = 1e6, .expected = "expected seconds >= 0 and <= 1e6 (0 = no hang guard)"},
    {.section = "dist", .key = "shard_size", .def = "0",
     .kind = KIND_INT, .offset = FIELD(shard_size),
     .imin = 0, .imax = 1048576,
     .expected = "expected an integer in 0..1048576 (0 = one shard per rank)"},

    {.section = "checkpoint", .key = "dir", .def = "checkpoints",
     .kind = KIND_STRING, .offset = FIELD(checkpoint_dir),
     .expected = "expected a non-empty path shorter than 1024 characters"},
    {.section = "checkpoint", .key = "every_steps", .def = "0", .kind = KIND_INT64,
     .offset = FIELD(checkpoint_every_steps), .imin = 0, .imax = INT64_MAX,
     .expected = "expected an integer >= 0 (0 = off)"},
    {.section = "checkpoint", .key = "every_epochs", .def = "1", .kind = KIND_INT,
     .offset = FIELD(checkpoint_every_epochs), .imin = 0, .imax = INT_MAX,
     .expected = "expected an integer >= 0 (0 = off)"},
    {.section = "checkpoint", .key = "keep", .def = "3",
     .kind = KIND_INT, .offset = FIELD(checkpoint_keep),
     .imin = 1, .imax = 1000, .expected = "expected an integer in 1..1000"},
    {.section = "checkpoint", .key = "resume", .def = "none",
     .kind = KIND_STRING, .offset = FIELD(checkpoint_resume),
     .expected = "expected auto, none or a checkpoint path shorter than 1024 characters"},

    /* Empty is the default ("<checkpoint dir>/metrics.h5"), so config_format's
     * "path = " must load back. */
    {.section = "metrics", .key = "path", .def = "", .doc = "<checkpoint dir>/metrics.h5",
     .kind = KIND_STRING, .offset = FIELD(metrics_path),
     .allow_empty = true,
     .expected = "expected a path shorter than 1024 characters (empty = <checkpoint dir>/metrics.h5)"},
};

#define NKEYS (sizeof keys / sizeof keys[0])

/* config_set's two lookup failures; config_load recognises them by address and
 * adds the offending name and the list of valid names. */
static const char unknown_section_msg[] =
    "unknown section (known sections: data, model, train, dist, checkpoint, metrics)";
static const char unknown_key_msg[] = "unknown key for this section";

/* config_format writes a string as "key = value" and inih reads that back whole only
 * if the value has no blank at either end, no line break, no ';' first and no blank
 * before a ';' (an inline comment). Other values are refused, else the resolved
 * config in logs and checkpoints would not be the one used (found by tests/fuzz:
 * "dir =;x" loaded, but its "dir = ;x" reads back empty). */
static const char unwritable_msg[] =
    "expected no blank at either end, no line break, no ';' first and no blank before a "
    "';' (the value must survive being written back as INI)";

static bool ini_writable(const char *s)
{
    size_t n = strlen(s);
    if (n > 0 && (isspace((unsigned char)s[0]) || isspace((unsigned char)s[n - 1]))) return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n' || s[i] == '\r') return false;
        if (s[i] == ';' && (i == 0 || isspace((unsigned char)s[i - 1]))) return false;
    }
    return true;
}

static bool set_value(struct config *cfg, const struct key_spec *k, const char *value);

void config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < NKEYS; i++)
        CHECK(set_value(cfg, &keys[i], keys[i].def), "bad default [%s] %s = %s", keys[i].section,
              keys[i].key, keys[i].def);
    const char *env = getenv("RESNET_DDP_DATA");
    if (env && env[0]) {
        if (strlen(env) >= CONFIG_PATH_MAX)
            FAIL_INPUT("environment variable RESNET_DDP_DATA is longer than %d characters",
                       CONFIG_PATH_MAX - 1);
        strcpy(cfg->data_dir, env);
    }
}

int config_key_count(void) { return (int)NKEYS; }

void config_key_default(int i, const char **section, const char **key, const char **shown)
{
    const struct key_spec *k = &keys[i];
    *section = k->section;
    *key = k->key;
    *shown = k->doc ? k->doc : k->def;
}

/* Whole-string base-10 integer; leading blanks are rejected too (strtoll would
 * skip them) so that a value is either exactly a number or an error. */
static bool parse_int64(const char *s, int64_t *out)
{
    if (!s[0] || isspace((unsigned char)s[0])) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) return false;
    *out = (int64_t)v;
    return true;
}

/* strtoull accepts "-1" and wraps it, so the sign is rejected up front. */
static bool parse_uint64(const char *s, uint64_t *out)
{
    if (!s[0] || isspace((unsigned char)s[0]) || s[0] == '-') return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end) return false;
    *out = (uint64_t)v;
    return true;
}

static bool parse_double(const char *s, double *out)
{
    if (!s[0] || isspace((unsigned char)s[0])) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) return false;
    *out = v;
    return true;
}

static bool parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "1", "on"};
    static const char *const no[] = {"false", "no", "0", "off"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

static int parse_word(const char *s, const char *const *words, int nwords)
{
    for (int i = 0; i < nwords; i++)
        if (strcmp(s, words[i]) == 0) return i;
    return -1;
}

static bool known_section(const char *section)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(section, keys[i].section) == 0) return true;
    return false;
}

static const struct key_spec *find_key(const char *section, const char *key)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].key, key) == 0) return &keys[i];
    return NULL;
}

/* Nothing is written unless the whole value is valid. */
static bool set_value(struct config *cfg, const struct key_spec *k, const char *value)
{
    char *field = (char *)cfg + k->offset;
    int64_t i;
    uint64_t u;
    double d;
    bool b;
    int w;

    switch (k->kind) {
    case KIND_INT:
    case KIND_INT64:
        if (!parse_int64(value, &i) || i < k->imin || i > k->imax) return false;
        if (k->kind == KIND_INT)
            *(int *)(void *)field = (int)i;
        else
            *(int64_t *)(void *)field = i;
        return true;
    case KIND_RESIZE:
        if (!parse_int64(value, &i) || (i != 0 && (i < k->imin || i > k->imax))) return false;
        *(int *)(void *)field = (int)i;
        return true;
    case KIND_DEPTH:
        if (!parse_int64(value, &i) || (i != 18 && i != 34 && i != 50)) return false;
        *(int *)(void *)field = (int)i;
        return true;
    case KIND_UINT64:
        if (!parse_uint64(value, &u) || u > (uint64_t)k->imax) return false;
        *(uint64_t *)(void *)field = u;
        return true;
    case KIND_DOUBLE:
        if (!parse_double(value, &d)) return false;
        if (k->dmin_open ? d <= k->dmin : d < k->dmin) return false;
        if (k->dmax_open ? d >= k->dmax : d > k->dmax) return false;
        *(double *)(void *)field = d;
        return true;
    case KIND_BOOL:
        if (!parse_bool(value, &b)) return false;
        *(bool *)(void *)field = b;
        return true;
    case KIND_STRING:
        if ((!value[0] && !k->allow_empty) || strlen(value) >= CONFIG_PATH_MAX) return false;
        strcpy(field, value);
        return true;
    case KIND_INIT:
        w = parse_word(value, init_names, (int)(sizeof init_names / sizeof init_names[0]));
        if (w < 0) return false;
        *(enum init_scheme *)(void *)field = (enum init_scheme)w;
        return true;
    case KIND_SCHEDULE:
        w = parse_word(value, schedule_names, (int)(sizeof schedule_names / sizeof schedule_names[0]));
        if (w < 0) return false;
        *(enum lr_schedule *)(void *)field = (enum lr_schedule)w;
        return true;
    case KIND_STEM:
        w = parse_word(value, stem_names, (int)(sizeof stem_names / sizeof stem_names[0]));
        if (w < 0) return false;
        *(enum stem_kind *)(void *)field = (enum stem_kind)w;
        return true;
    }
    return false;
}

const char *config_set(struct config *cfg, const char *section, const char *key, const char *value)
{
    if (!known_section(section)) return unknown_section_msg;
    const struct key_spec *k = find_key(section, key);
    if (!k) return unknown_key_msg;
    if (k->kind == KIND_STRING && !ini_writable(value)) return unwritable_msg;
    return set_value(cfg, k, value) ? NULL : k->expected;
}

/* Append to a bounded buffer, tracking the length the full text needs. */
struct text {
    char *buf;
    size_t size;
    size_t len;
};

static void text_add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_add(struct text *t, const char *fmt, ...)
{
    char *dst = NULL;
    size_t room = 0;
    if (t->buf && t->len < t->size) {
        dst = t->buf + t->len;
        room = t->size - t->len;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst, room, fmt, ap);
    va_end(ap);
    if (n > 0) t->len += (size_t)n;
}

/* Explain a config_set failure for one key: the offending name with the valid
 * names, or the value with what was expected. `show_value` is off for command-line
 * overrides, whose text (with the value) is already quoted in the message. */
static void describe_error(struct text *t, const char *section, const char *key, const char *value,
                           const char *msg, bool show_value)
{
    if (msg == unknown_section_msg) {
        if (section[0])
            text_add(t, "unknown section [%s] (known sections:", section);
        else
            text_add(t, "key '%s' is outside any section (known sections:", key);
        for (size_t i = 0; i < NKEYS; i++)
            if (i == 0 || strcmp(keys[i].section, keys[i - 1].section) != 0)
                text_add(t, "%s %s", i ? "," : "", keys[i].section);
        text_add(t, ")");
    } else if (msg == unknown_key_msg) {
        text_add(t, "unknown key [%s] %s (known keys:", section, key);
        bool first = true;
        for (size_t i = 0; i < NKEYS; i++) {
            if (strcmp(keys[i].section, section) != 0) continue;
            text_add(t, "%s %s", first ? "" : ",", keys[i].key);
            first = false;
        }
        text_add(t, ")");
    } else if (show_value) {
        /* A runaway value (a whole path, say) is cut so the line stays readable. */
        int shown = strlen(value) > 80 ? 80 : (int)strlen(value);
        text_add(t, "[%s] %s = \"%.*s%s\": %s", section, key, shown, value,
                 value[shown] ? "..." : "", msg);
    } else {
        text_add(t, "[%s] %s: %s", section, key, msg);
    }
}

/* State shared by the line reader and the key handler while one file is parsed. */
struct parse_ctx {
    struct config *cfg;
    const char *path;
    FILE *file;
    int lineno;        /* lines read so far, i.e. the line the handler is called for */
    int read_errno;    /* errno of a failed read, 0 if none */
    bool failed;
    char error[2048];  /* the first error, already prefixed with path:line */
};

/* fgets for inih that counts lines and refuses lines that do not fit in the buffer
 * (or hide a NUL byte): inih would otherwise split them into several "lines", with
 * wrong line numbers and possibly a bogus key. Returning NULL ends the parse. */
static char *read_line(char *str, int num, void *stream)
{
    struct parse_ctx *ctx = stream;
    if (ctx->failed) return NULL;
    errno = 0;
    if (!fgets(str, num, ctx->file)) {
        if (ferror(ctx->file)) ctx->read_errno = errno ? errno : EIO;
        return NULL;
    }
    ctx->lineno++;
    size_t n = strlen(str);
    if (n > 0 && str[n - 1] == '\n') return str;
    int c = getc(ctx->file);
    if (c == EOF) return str; /* last line without a newline */
    ungetc(c, ctx->file);

    struct text t = {ctx->error, sizeof ctx->error, 0};
    if (n + 1 == (size_t)num)
        text_add(&t, "%s:%d: line longer than %d characters", ctx->path, ctx->lineno, num - 2);
    else
        text_add(&t, "%s:%d: line contains a NUL byte", ctx->path, ctx->lineno);
    ctx->failed = true;
    return NULL;
}

static int handle_key(void *user, const char *section, const char *name, const char *value)
{
    struct parse_ctx *ctx = user;
    const char *msg = config_set(ctx->cfg, section, name, value);
    if (!msg) return 1;
    if (!ctx->failed) {
        struct text t = {ctx->error, sizeof ctx->error, 0};
        text_add(&t, "%s:%d: ", ctx->path, ctx->lineno);
        describe_error(&t, section, name, value, msg, true);
        ctx->failed = true;
    }
    return 0;
}

int config_parse_stream(struct config *cfg, FILE *file, const char *name, char *error,
                        size_t error_size)
{
    /* Debian's libinih exposes its compile-time options as variables. A heap line
     * buffer of our size (no realloc, so read_line sees every physical line whole),
     * no multi-line values (an indented "key = value" is a key, not a continuation)
     * and a stop at the first error, which is the one reported. */
    ini_use_stack = false;
    ini_allow_realloc = false;
    ini_initial_alloc = CONFIG_LINE_MAX;
    ini_max_line = CONFIG_LINE_MAX;
    ini_allow_multiline = false;
    ini_allow_no_value = false;
    ini_stop_on_first_error = true;

    struct parse_ctx ctx = {.cfg = cfg, .path = name, .file = file};
    int rc = ini_parse_stream(read_line, &ctx, handle_key, &ctx);

    if (error_size) error[0] = '\0';
    if (ctx.failed) {
        error_message(error, error_size, "%s", ctx.error);
        return EXIT_CODE_USAGE;
    }
    if (ctx.read_errno) {
        error_message(error, error_size, "cannot read config file '%s': %s", name,
                      strerror(ctx.read_errno));
        return EXIT_CODE_USAGE;
    }
    if (rc == -2) {
        error_message(error, error_size, "out of memory parsing config file '%s'", name);
        return EXIT_CODE_INTERNAL;
    }
    if (rc != 0) {
        error_message(error, error_size,
                      "%s:%d: INI syntax error (expected \"[section]\" or \"key = value\")", name, rc);
        return EXIT_CODE_USAGE;
    }
    return EXIT_CODE_OK;
}

static void parse_file(struct config *cfg, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) FAIL_INPUT("cannot open config file '%s': %s", path, strerror(errno));
    char error[2048];
    int code = config_parse_stream(cfg, f, path, error, sizeof error);
    fclose(f);
    if (code != EXIT_CODE_OK) error_exit(code, "%s", error);
}

static void apply_override(struct config *cfg, const char *text)
{
    /* "section.key=value": the first '=' ends the name, the first '.' before it
     * splits section from key; the value may contain both characters. */
    const char *eq = strchr(text, '=');
    const char *dot = eq ? memchr(text, '.', (size_t)(eq - text)) : NULL;
    if (!eq || !dot || dot == text || dot + 1 == eq)
        FAIL_INPUT("command line override '%s': expected section.key=value", text);

    char *section = xstrdup(text);
    section[dot - text] = '\0';
    char *key = section + (dot - text) + 1;
    key[eq - dot - 1] = '\0';
    const char *value = eq + 1;

    const char *msg = config_set(cfg, section, key, value);
    if (msg) {
        char line[2048];
        struct text t = {line, sizeof line, 0};
        describe_error(&t, section, key, value, msg, false);
        FAIL_INPUT("command line override '%s': %s", text, line);
    }
    free(section);
}

/* Rules that involve two keys, checked once the file and all overrides are in. */
static void validate(const struct config *cfg, const char *where)
{
    if (cfg->nesterov && !(cfg->momentum > 0))
        FAIL_INPUT("%s: [train] nesterov = true requires [train] momentum > 0 (momentum = %g)", where,
                   cfg->momentum);
    if (cfg->warmup_epochs > cfg->epochs)
        FAIL_INPUT("%s: [train] warmup_epochs = %g is more than [train] epochs = %d", where,
                   cfg->warmup_epochs, cfg->epochs);
}

void config_load(struct config *cfg, const char *path, int noverrides, char *const overrides[])
{
    config_defaults(cfg);
    if (path) {
        if (strlen(path) >= CONFIG_PATH_MAX)
            FAIL_INPUT("config file path is longer than %d characters", CONFIG_PATH_MAX - 1);
        strcpy(cfg->source_path, path);
        parse_file(cfg, path);
    }
    for (int i = 0; i < noverrides; i++) apply_override(cfg, overrides[i]);

    char where[CONFIG_PATH_MAX + 64];
    snprintf(where, sizeof where, "%s%s", path ? path : "config",
             noverrides > 0 ? " (with command line overrides)" : "");
    validate(cfg, where);
}

/* Shortest of %.15g..%.17g that reads back to the same double: "0.05", not
 * "0.050000000000000003", yet the text always round-trips. */
static void format_double(char *out, size_t size, double v)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, size, "%.*g", prec, v);
        if (strtod(out, NULL) == v) return;
    }
}

size_t config_format(const struct config *cfg, char *buf, size_t size)
{
    struct text t = {buf, size, 0};
    if (buf && size) buf[0] = '\0';

    for (size_t i = 0; i < NKEYS; i++) {
        const struct key_spec *k = &keys[i];
        const char *field = (const char *)cfg + k->offset;
        if (i == 0 || strcmp(k->section, keys[i - 1].section) != 0)
            text_add(&t, "%s[%s]\n", i ? "\n" : "", k->section);

        char num[64];
        text_add(&t, "%s = ", k->key);
        switch (k->kind) {
        case KIND_INT:
        case KIND_RESIZE:
        case KIND_DEPTH:
            text_add(&t, "%d\n", *(const int *)(const void *)field);
            break;
        case KIND_INT64:
            text_add(&t, "%" PRId64 "\n", *(const int64_t *)(const void *)field);
            break;
        case KIND_UINT64:
            text_add(&t, "%" PRIu64 "\n", *(const uint64_t *)(const void *)field);
            break;
        case KIND_DOUBLE:
            format_double(num, sizeof num, *(const double *)(const void *)field);
            text_add(&t, "%s\n", num);
            break;
        case KIND_BOOL:
            text_add(&t, "%s\n", *(const bool *)(const void *)field ? "true" : "false");
            break;
        case KIND_STRING:
            text_add(&t, "%s\n", field);
            break;
        case KIND_INIT:
            text_add(&t, "%s\n", init_names[*(const enum init_scheme *)(const void *)field]);
            break;
        case KIND_SCHEDULE:
            text_add(&t, "%s\n", schedule_names[*(const enum lr_schedule *)(const void *)field]);
            break;
        case KIND_STEM:
            text_add(&t, "%s\n", stem_names[*(const enum stem_kind *)(const void *)field]);
            break;
        }
    }
    return t.len;
}
