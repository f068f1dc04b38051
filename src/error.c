/* error: one-line messages and the abort path shared by every module. */
#include "error.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static error_abort_hook abort_hook;
static int error_rank = -1;

void error_set_abort_hook(error_abort_hook hook) { abort_hook = hook; }
void error_set_rank(int rank) { error_rank = rank; }

static _Noreturn void stop(int code)
{
    fflush(stdout);
    fflush(stderr);
    if (abort_hook) abort_hook(code);
    exit(code);
}

void error_exit(int code, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Bad input is usually seen by every rank at once: rank 0 reports it and its
     * MPI_Abort ends the others before they repeat it. A rank that fails alone still
     * reports, a moment later. */
    if (abort_hook && error_rank > 0 && code == EXIT_CODE_USAGE) {
        struct timespec pause = {0, 300 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    fprintf(stderr, "resnet_ddp: error: %s\n", msg);
    stop(code);
}

static void print_line(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
static void print_line(const char *fmt, va_list ap)
{
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    fprintf(stderr, "resnet_ddp: error: %s\n", msg);
}

/* This process's rank as the launcher tells it before MPI_Init (Open MPI's mpirun,
 * PMIx, SLURM's srun); 0 when run alone. */
static int launcher_rank(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *value = getenv(vars[i]);
        if (value && *value) return atoi(value);
    }
    return 0;
}

void error_exit_before_mpi(int code, const char *fmt, ...)
{
    if (launcher_rank() > 0) {
        /* Rank 0 prints the line; a moment for it before the launcher, seeing this
         * rank's exit, ends the job. */
        struct timespec pause = {1, 0};
        nanosleep(&pause, NULL);
        stop(code);
    }
    va_list ap;
    va_start(ap, fmt);
    print_line(fmt, ap);
    va_end(ap);
    stop(code);
}

void error_report(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    print_line(fmt, ap);
    va_end(ap);
    fflush(stderr);
}

void error_internal(const char *file, int line, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (error_rank >= 0)
        fprintf(stderr, "resnet_ddp: error: [rank %d] %s:%d: %s\n", error_rank, file, line, msg);
    else
        fprintf(stderr, "resnet_ddp: error: %s:%d: %s\n", file, line, msg);
    stop(EXIT_CODE_INTERNAL);
}

void *xmalloc(size_t size)
{
    void *p = NULL;
    size_t rounded = (size + 63) / 64 * 64;
    if (rounded == 0) rounded = 64;
    if (posix_memalign(&p, 64, rounded) != 0 || !p)
        error_exit(EXIT_CODE_INTERNAL, "out of memory allocating %zu bytes", size);
    return p;
}

void *xcalloc(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        error_exit(EXIT_CODE_INTERNAL, "allocation of %zu x %zu bytes overflows", count, size);
    void *p = xmalloc(count * size);
    memset(p, 0, count * size);
    return p;
}

char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = xmalloc(n);
    memcpy(p, s, n);
    return p;
}

void error_message(char *err, size_t errsize, const char *fmt, ...)
{
    if (!err || errsize == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsize, fmt, ap);
    va_end(ap);
}
