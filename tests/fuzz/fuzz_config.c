/* fuzz_config: the INI config parser (inih driven as config.c drives it, and
 * config_set) on arbitrary bytes.
 *
 * config_load exits on the first error, so the harness repeats its parse_file: the
 * same inih settings, the same line reader (whole lines only, no hidden NUL bytes)
 * and a handler that calls config_set, over the input opened with fmemopen. Keep
 * them in step with config.c.
 *
 * A config that loads must also round-trip: config_format's text (what checkpoints
 * and logs record, and what config.c promises loads back) must parse without error
 * into a config that formats to the same text. */
#include "config.h"
#include "fuzz.h"

#include <ini.h>

#include <stdbool.h>
#include <string.h>

/* config.c's CONFIG_LINE_MAX. */
#define LINE_MAX_BYTES (4 * CONFIG_PATH_MAX)

struct parse_ctx {
    struct config *cfg;
    FILE *file;
    bool failed;
};

/* config.c's read_line without the message text. */
static char *read_line(char *str, int num, void *stream)
{
    struct parse_ctx *ctx = stream;
    if (ctx->failed) return NULL;
    if (!fgets(str, num, ctx->file)) return NULL;
    size_t n = strlen(str);
    if (n > 0 && str[n - 1] == '\n') return str;
    int c = getc(ctx->file);
    if (c == EOF) return str;
    ungetc(c, ctx->file);
    ctx->failed = true;
    return NULL;
}

static int handle_key(void *user, const char *section, const char *name, const char *value)
{
    struct parse_ctx *ctx = user;
    const char *msg = config_set(ctx->cfg, section, name, value);
    if (!msg) return 1;
    FUZZ_REQUIRE(msg[0] != '\0');
    ctx->failed = true;
    return 0;
}

/* Parses text over the defaults; true when config_load would accept it (before the
 * cross-key checks of its validate()). */
static bool parse(struct config *cfg, const uint8_t *text, size_t size)
{
    config_defaults(cfg);
    /* fmemopen's "r" stream only reads the buffer. */
    FILE *f = fmemopen((void *)(uintptr_t)text, size, "r");
    FUZZ_REQUIRE(f != NULL);
    struct parse_ctx ctx = {.cfg = cfg, .file = f};
    int rc = ini_parse_stream(read_line, &ctx, handle_key, &ctx);
    fclose(f);
    FUZZ_REQUIRE(rc != -2); /* out of memory: never for lines this short */
    return rc == 0 && !ctx.failed;
}

/* config_format into a malloc'ed string; checks the length it reports. */
static char *format(const struct config *cfg, size_t *len)
{
    size_t need = config_format(cfg, NULL, 0);
    char *text = malloc(need + 1);
    FUZZ_REQUIRE(text != NULL);
    FUZZ_REQUIRE(config_format(cfg, text, need + 1) == need);
    FUZZ_REQUIRE(strlen(text) == need);
    *len = need;
    return text;
}

static struct config cfg, again;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* parse_file's settings (Debian's libinih exposes them as variables). */
    ini_use_stack = false;
    ini_allow_realloc = false;
    ini_initial_alloc = LINE_MAX_BYTES;
    ini_max_line = LINE_MAX_BYTES;
    ini_allow_multiline = false;
    ini_allow_no_value = false;
    ini_stop_on_first_error = true;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!parse(&cfg, data, size)) return 0;
    size_t len, len2;
    char *text = format(&cfg, &len);
    FUZZ_REQUIRE(parse(&again, (const uint8_t *)text, len));
    char *text2 = format(&again, &len2);
    FUZZ_REQUIRE(len == len2 && memcmp(text, text2, len) == 0);
    free(text);
    free(text2);
    return 0;
}
