/* fuzz_config: the INI config parser (config_parse_stream, what config_load runs on
 * a file) on arbitrary bytes, opened with fmemopen. A rejected input must come with a
 * one-line message.
 *
 * A config that loads must also round-trip: config_format's text (what checkpoints
 * and logs record, and what config.c promises loads back) must parse without error
 * into a config that formats to the same text. */
#include "config.h"
#include "error.h"
#include "fuzz.h"

#include <stdbool.h>
#include <string.h>

/* Parses text over the defaults; true when config_load would accept it (before the
 * cross-key checks of its validate()). */
static bool parse(struct config *cfg, const uint8_t *text, size_t size)
{
    config_defaults(cfg);
    /* fmemopen's "r" stream only reads the buffer. */
    FILE *f = fmemopen((void *)(uintptr_t)text, size, "r");
    FUZZ_REQUIRE(f != NULL);
    char error[2048];
    int code = config_parse_stream(cfg, f, "fuzz.ini", error, sizeof error);
    fclose(f);
    FUZZ_REQUIRE(code != EXIT_CODE_INTERNAL); /* out of memory: never for lines this short */
    FUZZ_REQUIRE(code == EXIT_CODE_OK || (error[0] != '\0' && !strchr(error, '\n')));
    return code == EXIT_CODE_OK;
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

/* Nothing to set up: config_parse_stream sets inih's options itself. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
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
