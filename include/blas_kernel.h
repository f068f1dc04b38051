/* blas_kernel: which of OpenBLAS's kernels runs, chosen from the CPU before any BLAS call.
 *
 * OpenBLAS built with DYNAMIC_ARCH picks its kernels at load time from a CPUID table
 * that lags new CPUs: Debian 12's 0.3.21 takes an Emerald Rapids Xeon (AVX-512) for a
 * "Prescott" (SSE3), with six times slower sgemm. blas_kernel_select() compares
 * OpenBLAS's choice with the best kernel for the CPU's own feature flags and switches
 * OpenBLAS to it when OpenBLAS chose less. A kernel named by the user in
 * OPENBLAS_CORETYPE is always kept, but one this CPU cannot execute (or a name OpenBLAS
 * does not know) stops the program with exit code 2 instead of a SIGILL at the first
 * sgemm.
 *
 * Test-only: RESNET_DDP_TEST_BLAS_FALLBACK=<kernel>, when OPENBLAS_CORETYPE is not set,
 * first forces OpenBLAS into <kernel>, as if it had fallen back to it on a CPU it does
 * not know, so that the switch can be tested on any machine. Not for production use. */
#ifndef RESNET_DDP_BLAS_KERNEL_H
#define RESNET_DDP_BLAS_KERNEL_H

#include <stdbool.h>

/* CPU features the kernels need, as Linux's /proc/cpuinfo names them (but sse3 for pni
 * and sse4.1/sse4.2 for sse4_1/sse4_2). */
enum blas_cpu_feature {
    BLAS_CPU_SSE3 = 1u << 0,
    BLAS_CPU_SSSE3 = 1u << 1,
    BLAS_CPU_SSE41 = 1u << 2,
    BLAS_CPU_SSE42 = 1u << 3,
    BLAS_CPU_AVX = 1u << 4,
    BLAS_CPU_AVX2 = 1u << 5,
    BLAS_CPU_FMA = 1u << 6,
    BLAS_CPU_FMA4 = 1u << 7,
    BLAS_CPU_XOP = 1u << 8,
    BLAS_CPU_AVX512F = 1u << 9,
    BLAS_CPU_AVX512CD = 1u << 10,
    BLAS_CPU_AVX512BW = 1u << 11,
    BLAS_CPU_AVX512DQ = 1u << 12,
    BLAS_CPU_AVX512VL = 1u << 13,
    BLAS_CPU_AVX512_BF16 = 1u << 14,
};

struct blas_cpu {
    char vendor[13];        /* "GenuineIntel", "AuthenticAMD", ... */
    int family, model;      /* displayed as Linux does (extended fields added) */
    unsigned features;      /* usable: on the CPU and its registers saved by the OS */
    unsigned os_disabled;   /* on the CPU but their YMM/ZMM state not enabled by the OS */
};

/* This CPU, from CPUID and XGETBV. */
void blas_cpu_detect(struct blas_cpu *cpu);

/* The best kernel for `cpu` among those `available` accepts (NULL: all), by the
 * ladder SkylakeX, Zen (AMD, Hygon) or Haswell, Sandybridge, Nehalem, Core2, Prescott;
 * NULL when it can run none of them. */
const char *blas_kernel_best(const struct blas_cpu *cpu, bool (*available)(const char *name));

/* Features kernel `name` (as OpenBLAS spells it, any case) needs that `cpu` lacks;
 * 0 for a name not in the table. */
unsigned blas_kernel_missing(const struct blas_cpu *cpu, const char *name);

/* Checks OPENBLAS_CORETYPE or switches OpenBLAS to the best kernel, as described
 * above. Call before comm_init() (MPI_Init) and any BLAS call: a bad kernel name stops
 * every rank, the launcher's rank 0 printing the one error line. */
void blas_kernel_select(void);

/* One line for the start-up output: OpenBLAS's version and threading, the kernel that
 * runs and why it was chosen. */
const char *blas_kernel_description(void);

#endif
