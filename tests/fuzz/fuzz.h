/* fuzz: the libFuzzer entry points every harness of tests/fuzz defines.
 *
 * Built two ways: with clang -fsanitize=fuzzer, whose main() calls these, and with
 * replay_main.c, a plain main() that feeds them every file of a corpus directory so
 * CTest can replay the corpus in any build (gcc, no libFuzzer). */
#ifndef RESNET_DDP_FUZZ_H
#define RESNET_DDP_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* A property the code under test must keep: a violation is a finding, so it stops
 * the run the way a sanitizer report does (libFuzzer saves the input). */
#define FUZZ_REQUIRE(cond)                                                       \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "fuzz: %s:%d: property violated: %s\n", __FILE__,    \
                    __LINE__, #cond);                                            \
            abort();                                                             \
        }                                                                        \
    } while (0)

/* Once at start-up. Always defined (possibly empty), so the replay driver needs no
 * weak symbols. */
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* One input; returns 0. A bug shows up as a crash, a sanitizer report or abort(). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A per-process temporary file, for code under test that opens files by name
 * (zlib's gzopen, HDF5's H5Fopen; HDF5 cannot open a memfd's /proc/self/fd path, it
 * fails to resolve its real path). $TMPDIR or /tmp; removed at a normal exit (a
 * crash leaves it behind). One per process. */
struct fuzz_file {
    int fd;
    char path[256];
};

/* Create it; aborts on failure (a harness cannot run without it). */
void fuzz_file_open(struct fuzz_file *f, const char *name);

/* Replace its contents with data[0..size). Aborts on failure. */
void fuzz_file_set(struct fuzz_file *f, const uint8_t *data, size_t size);

#endif
