/* replay_main: run a fuzz harness over saved inputs without libFuzzer.
 *
 *   fuzz_replay_<target> PATH...
 *
 * Each PATH is a file or a directory whose regular files (not dotfiles) are fed to
 * LLVMFuzzerTestOneInput in name order, each in a heap buffer of exactly its size so
 * that AddressSanitizer catches reads past the end. Fails when no input was found,
 * so a mistyped corpus path cannot pass as an empty success. */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* "fuzz replay: <what> <path>[: <errno text>]" and exit 1. */
static _Noreturn void die(const char *what, const char *path, int errnum)
{
    fprintf(stderr, "fuzz replay: %s %s%s%s\n", what, path, errnum ? ": " : "",
            errnum ? strerror(errnum) : "");
    exit(1);
}

static void run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open", path, errno);
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    if (!buf) die("out of memory reading", path, 0);
    for (;;) {
        if (len == cap) {
            uint8_t *bigger = realloc(buf, cap *= 2);
            if (!bigger) die("out of memory reading", path, 0);
            buf = bigger;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    if (ferror(f)) die("cannot read", path, errno);
    fclose(f);
    /* An exact-size copy: the slack of buf would hide overreads. */
    uint8_t *exact = malloc(len ? len : 1);
    if (!exact) die("out of memory reading", path, 0);
    if (len) memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every regular file of dir in name order; returns how many. */
static size_t run_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) die("cannot open directory", dir, errno);
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **bigger = realloc(names, cap * sizeof *names);
            if (!bigger) die("out of memory listing", dir, 0);
            names = bigger;
        }
        size_t len = strlen(dir) + 1 + strlen(e->d_name) + 1;
        names[n] = malloc(len);
        if (!names[n]) die("out of memory listing", dir, 0);
        snprintf(names[n], len, "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_names);
    size_t ran = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat sb;
        if (stat(names[i], &sb) == 0 && S_ISREG(sb.st_mode)) {
            run_file(names[i]);
            ran++;
        }
        free(names[i]);
    }
    free(names);
    return ran;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    LLVMFuzzerInitialize(&argc, &argv);
    size_t total = 0;
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) != 0) die("cannot stat", argv[i], errno);
        if (S_ISDIR(sb.st_mode)) {
            total += run_dir(argv[i]);
        } else {
            run_file(argv[i]);
            total++;
        }
    }
    if (total == 0) die("no inputs found in", argv[1], 0);
    printf("fuzz replay: %zu inputs, no crash\n", total);
    return 0;
}
