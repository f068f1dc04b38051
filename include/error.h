/* error: the one error path of the program.
 *
 * Every failure prints exactly one line "resnet_ddp: error: <what>" and stops the
 * process with a documented exit code. Under MPI with more than one rank the stop is
 * an MPI_Abort, so no rank is left blocked in a collective (see comm.c, which
 * installs the abort hook). Invariant checks stay on in release builds. */
#ifndef RESNET_DDP_ERROR_H
#define RESNET_DDP_ERROR_H

#include <stddef.h>

/* Exit codes (documented in README.md). */
enum exit_code {
    EXIT_CODE_OK = 0,
    EXIT_CODE_INTERNAL = 1, /* invariant violated, out of memory, I/O failure */
    EXIT_CODE_USAGE = 2,    /* bad command line, config, data or checkpoint */
    EXIT_CODE_DIVERGED = 3, /* loss or parameters became non-finite */
    EXIT_CODE_PREEMPTED = 4, /* stopped by SIGTERM/SIGUSR1 after writing a checkpoint */
};

/* Called instead of exit() once MPI is up with several ranks; must not return. */
typedef void (*error_abort_hook)(int code);
void error_set_abort_hook(error_abort_hook hook);
/* Rank shown in internal-error messages; -1 (the default) shows none. */
void error_set_rank(int rank);

/* Print "resnet_ddp: error: <message>" without stopping (for an exit all ranks agreed on). */
void error_report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Fill a caller's message buffer (nothing if err is NULL or errsize 0): for
 * functions that report failure to their caller instead of stopping. */
void error_message(char *err, size_t errsize, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Print "resnet_ddp: error: <message>" and stop with `code`. */
_Noreturn void error_exit(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same for an error found before MPI is up, which every rank of a launch finds at
 * once (same environment, same CPU): only the rank that mpirun or srun numbers 0 prints;
 * the others stop with the same code without a word, so the user sees one line. */
_Noreturn void error_exit_before_mpi(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
_Noreturn void error_internal(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Bad input from the user (config, data, checkpoint, command line): exit code 2. */
#define FAIL_INPUT(...) error_exit(EXIT_CODE_USAGE, __VA_ARGS__)

/* Invariant check, always on: prints file:line and stops all ranks. */
#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) error_internal(__FILE__, __LINE__, __VA_ARGS__);     \
    } while (0)

/* Allocation that cannot fail silently; memory is 64-byte aligned and zeroed. */
void *xcalloc(size_t count, size_t size);
void *xmalloc(size_t size);
char *xstrdup(const char *s);

#endif
