/* blas_kernel: OpenBLAS's kernel chosen from the CPU's features; see blas_kernel.h.
 *
 * OpenBLAS (driver/others/dynamic.c) reads OPENBLAS_CORETYPE once, in
 * gotoblas_dynamic_init(), which its library constructor runs at load time.
 * gotoblas_dynamic_quit() only forgets the table of kernels, and a second
 * gotoblas_dynamic_init() installs the table the variable then names. Every BLAS call
 * goes through that table, so swapping it before the first call switches the kernels
 * of the whole process. The switch is made in the process, not by re-executing the
 * program with the variable set, so that it works the same alone, under mpirun or
 * srun --mpi=pmix, and under gdb or valgrind (which lose a re-executed program unless
 * told --trace-children=yes). */
#define _GNU_SOURCE /* RTLD_DEFAULT */
#include "blas_kernel.h"

#include <cblas.h>
#include <cpuid.h>
#include <ctype.h>
#include <dlfcn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"

/* What each level of kernel needs; each includes the one before. */
enum {
    NEEDS_PRESCOTT = BLAS_CPU_SSE3,
    NEEDS_CORE2 = NEEDS_PRESCOTT | BLAS_CPU_SSSE3,
    NEEDS_PENRYN = NEEDS_CORE2 | BLAS_CPU_SSE41,
    NEEDS_NEHALEM = NEEDS_PENRYN | BLAS_CPU_SSE42,
    NEEDS_SANDYBRIDGE = NEEDS_NEHALEM | BLAS_CPU_AVX,
    /* Bulldozer's to Excavator's kernels are written with FMA4, which came with XOP. */
    NEEDS_BULLDOZER = NEEDS_SANDYBRIDGE | BLAS_CPU_FMA4 | BLAS_CPU_XOP,
    NEEDS_HASWELL = NEEDS_SANDYBRIDGE | BLAS_CPU_AVX2 | BLAS_CPU_FMA,
    NEEDS_SKYLAKEX = NEEDS_HASWELL | BLAS_CPU_AVX512F | BLAS_CPU_AVX512CD | BLAS_CPU_AVX512BW |
                     BLAS_CPU_AVX512DQ | BLAS_CPU_AVX512VL,
    NEEDS_COOPERLAKE = NEEDS_SKYLAKEX | BLAS_CPU_AVX512_BF16,
};

struct kernel {
    const char *name; /* as OpenBLAS spells it */
    unsigned needs;
    int rank;         /* instruction-set level: of two kernels a CPU runs, the higher is faster */
    const char *isa;  /* what the CPU has for it, for the start-up line */
    bool x86_32;      /* a 32-bit kernel: on x86-64 OpenBLAS runs Prescott's instead */
};

/* In the order of OpenBLAS's corename[], so that lists of names read as its own. */
static const struct kernel kernels[] = {
    {"Katmai", NEEDS_PRESCOTT, 1, "SSE3", true},
    {"Coppermine", NEEDS_PRESCOTT, 1, "SSE3", true},
    {"Northwood", NEEDS_PRESCOTT, 1, "SSE3", true},
    {"Prescott", NEEDS_PRESCOTT, 1, "SSE3", false},
    {"Banias", NEEDS_PRESCOTT, 1, "SSE3", true},
    {"Atom", NEEDS_CORE2, 2, "SSSE3", false},
    {"Core2", NEEDS_CORE2, 2, "SSSE3", false},
    {"Penryn", NEEDS_PENRYN, 3, "SSE4.1", false},
    {"Dunnington", NEEDS_PENRYN, 3, "SSE4.1", false},
    {"Nehalem", NEEDS_NEHALEM, 4, "SSE4.2", false},
    {"Athlon", NEEDS_PRESCOTT, 1, "SSE3", true},
    {"Opteron", 0, 0, "SSE2", false},
    {"Opteron_SSE3", NEEDS_PRESCOTT, 1, "SSE3", false},
    {"Barcelona", NEEDS_PRESCOTT, 1, "SSE3", false},
    {"Nano", NEEDS_CORE2, 2, "SSSE3", false},
    {"Sandybridge", NEEDS_SANDYBRIDGE, 5, "AVX", false},
    {"Bobcat", NEEDS_CORE2, 2, "SSSE3", false},
    {"Bulldozer", NEEDS_BULLDOZER, 6, "AVX and FMA4", false},
    {"Piledriver", NEEDS_BULLDOZER, 6, "AVX and FMA4", false},
    {"Haswell", NEEDS_HASWELL, 7, "AVX2 and FMA", false},
    {"Steamroller", NEEDS_BULLDOZER, 6, "AVX and FMA4", false},
    {"Excavator", NEEDS_BULLDOZER, 6, "AVX and FMA4", false},
    {"Zen", NEEDS_HASWELL, 7, "AVX2 and FMA", false},
    {"SkylakeX", NEEDS_SKYLAKEX, 8, "AVX-512", false},
    {"Cooperlake", NEEDS_COOPERLAKE, 8, "AVX-512 and BF16", false},
};
#define KERNEL_COUNT (sizeof kernels / sizeof kernels[0])

static char description[768];

/* ---- the CPU ------------------------------------------------------------------------ */

static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}

static unsigned bit(unsigned reg, int n, unsigned feature) { return reg >> n & 1u ? feature : 0; }

void blas_cpu_detect(struct blas_cpu *cpu)
{
    memset(cpu, 0, sizeof *cpu);
    unsigned a, b, c, d;
    const unsigned max_leaf = __get_cpuid_max(0, NULL);
    if (max_leaf == 0) {
        snprintf(cpu->vendor, sizeof cpu->vendor, "unknown");
        return;
    }
    __cpuid(0, a, b, c, d);
    memcpy(cpu->vendor, &b, 4);
    memcpy(cpu->vendor + 4, &d, 4);
    memcpy(cpu->vendor + 8, &c, 4);
    __cpuid(1, a, b, c, d);
    cpu->family = (int)(a >> 8 & 0xf);
    cpu->model = (int)(a >> 4 & 0xf);
    if (cpu->family == 0xf) cpu->family += (int)(a >> 20 & 0xff);
    if (cpu->family >= 6) cpu->model += (int)(a >> 16 & 0xf) << 4;
    unsigned f = bit(c, 0, BLAS_CPU_SSE3) | bit(c, 9, BLAS_CPU_SSSE3) | bit(c, 12, BLAS_CPU_FMA) |
                 bit(c, 19, BLAS_CPU_SSE41) | bit(c, 20, BLAS_CPU_SSE42) | bit(c, 28, BLAS_CPU_AVX);
    /* The OS must save the YMM (XCR0 bits 1-2) and ZMM (bits 5-7) registers too. */
    const uint64_t xcr0 = c >> 27 & 1u ? xgetbv0() : 0;
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        f |= bit(b, 5, BLAS_CPU_AVX2) | bit(b, 16, BLAS_CPU_AVX512F) | bit(b, 17, BLAS_CPU_AVX512DQ) |
             bit(b, 28, BLAS_CPU_AVX512CD) | bit(b, 30, BLAS_CPU_AVX512BW) |
             bit(b, 31, BLAS_CPU_AVX512VL);
        if (a >= 1) {
            __cpuid_count(7, 1, a, b, c, d);
            f |= bit(a, 5, BLAS_CPU_AVX512_BF16);
        }
    }
    if (__get_cpuid_max(0x80000000u, NULL) >= 0x80000001u) {
        __cpuid(0x80000001u, a, b, c, d);
        f |= bit(c, 11, BLAS_CPU_XOP) | bit(c, 16, BLAS_CPU_FMA4);
    }
    const unsigned ymm = BLAS_CPU_AVX | BLAS_CPU_AVX2 | BLAS_CPU_FMA | BLAS_CPU_FMA4 | BLAS_CPU_XOP;
    const unsigned zmm = BLAS_CPU_AVX512F | BLAS_CPU_AVX512CD | BLAS_CPU_AVX512BW |
                         BLAS_CPU_AVX512DQ | BLAS_CPU_AVX512VL | BLAS_CPU_AVX512_BF16;
    cpu->os_disabled = ((xcr0 & 0x6) == 0x6 ? 0 : f & ymm) | ((xcr0 & 0xe6) == 0xe6 ? 0 : f & zmm);
    cpu->features = f & ~cpu->os_disabled;
}

/* ---- the kernels -------------------------------------------------------------------- */

/* As OpenBLAS's force_coretype() compares: case-insensitive, at most 20 characters. */
static const struct kernel *find(const char *name)
{
    for (size_t i = 0; i < KERNEL_COUNT; i++)
        if (strncasecmp(name, kernels[i].name, 20) == 0) return &kernels[i];
    return NULL;
}

unsigned blas_kernel_missing(const struct blas_cpu *cpu, const char *name)
{
    const struct kernel *k = find(name);
    return k ? k->needs & ~cpu->features : 0;
}

const char *blas_kernel_best(const struct blas_cpu *cpu, bool (*available)(const char *name))
{
    static const char *const ladder[] = {"SkylakeX", "Zen", "Haswell", "Sandybridge",
                                         "Nehalem", "Core2", "Prescott"};
    /* Zen's kernels are Haswell's with AMD's cache sizes. */
    const bool amd = strcmp(cpu->vendor, "AuthenticAMD") == 0 || strcmp(cpu->vendor, "HygonGenuine") == 0;
    for (size_t i = 0; i < sizeof ladder / sizeof ladder[0]; i++) {
        if (!amd && strcmp(ladder[i], "Zen") == 0) continue;
        if (blas_kernel_missing(cpu, ladder[i]) == 0 && (!available || available(ladder[i])))
            return ladder[i];
    }
    return NULL;
}

/* Whether this OpenBLAS has the kernel: DYNAMIC_ARCH builds export a table
 * gotoblas_<NAME> for each kernel built in. */
static bool built_in(const char *name)
{
    const struct kernel *k = find(name);
    if (!k) return false;
    if (k->x86_32) return true;
    char symbol[64] = "gotoblas_";
    for (size_t i = strlen(symbol), j = 0; k->name[j] && i + 1 < sizeof symbol; i++, j++)
        symbol[i] = (char)toupper((unsigned char)k->name[j]);
    return dlsym(RTLD_DEFAULT, symbol) != NULL;
}

/* "0.3.21" from openblas_get_config()'s "OpenBLAS 0.3.21 DYNAMIC_ARCH ...". */
static const char *openblas_version(void)
{
    static char version[32];
    if (sscanf(openblas_get_config(), "OpenBLAS %31s", version) != 1)
        snprintf(version, sizeof version, "(unknown version)");
    return version;
}

/* OpenBLAS before 0.3.22 matches OPENBLAS_CORETYPE against its first 24 names only. */
static bool accepted(const struct kernel *k)
{
    int major = 0, minor = 0, patch = 0;
    if (strcmp(k->name, "Cooperlake") != 0) return true;
    sscanf(openblas_version(), "%d.%d.%d", &major, &minor, &patch);
    return major > 0 || minor > 3 || (minor == 3 && patch >= 22);
}

/* Appends to a NUL-terminated buffer, truncating at its end. */
static void append(char *out, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void append(char *out, size_t size, const char *fmt, ...)
{
    size_t used = strlen(out);
    if (used + 1 >= size) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + used, size - used, fmt, ap);
    va_end(ap);
}

/* The names OPENBLAS_CORETYPE can usefully take here: kernels this OpenBLAS has and
 * this CPU runs. */
static void usable_names(const struct blas_cpu *cpu, char *out, size_t size)
{
    out[0] = '\0';
    for (size_t i = 0; i < KERNEL_COUNT; i++) {
        const struct kernel *k = &kernels[i];
        if (!k->x86_32 && accepted(k) && (k->needs & ~cpu->features) == 0 && built_in(k->name))
            append(out, size, "%s%s", out[0] ? ", " : "", k->name);
    }
}

static void feature_names(unsigned set, unsigned os_disabled, char *out, size_t size)
{
    static const char *const names[] = {"sse3", "ssse3", "sse4.1", "sse4.2", "avx", "avx2",
                                        "fma", "fma4", "xop", "avx512f", "avx512cd", "avx512bw",
                                        "avx512dq", "avx512vl", "avx512_bf16"};
    out[0] = '\0';
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
        if (set >> i & 1u)
            append(out, size, "%s%s%s", out[0] ? " " : "", names[i],
                   os_disabled >> i & 1u ? " (not enabled by the OS)" : "");
}

/* ---- choosing ----------------------------------------------------------------------- */

static void cpu_text(const struct blas_cpu *cpu, char *out, size_t size)
{
    snprintf(out, size, "this CPU (%s family %d model %d)", cpu->vendor, cpu->family, cpu->model);
}

/* Stops the program unless `var`=`value` names a kernel OpenBLAS accepts and this CPU
 * runs, as does the kernel OpenBLAS installed for it (`running`; NULL if none yet). */
static void check_kernel(const struct blas_cpu *cpu, const char *var, const char *value,
                         const char *running)
{
    char expected[512], what[128];
    usable_names(cpu, expected, sizeof expected);
    const struct kernel *k = find(value);
    if (!k)
        error_exit_before_mpi(EXIT_CODE_USAGE, "%s=%s: unknown OpenBLAS kernel (expected one of %s)",
                              var, value, expected);
    if (!accepted(k))
        error_exit_before_mpi(EXIT_CODE_USAGE, "%s=%s: OpenBLAS %s does not accept this name "
                              "(expected one of %s)", var, value, openblas_version(), expected);
    unsigned missing = k->needs & ~cpu->features;
    const struct kernel *run = running ? find(running) : NULL;
    const char *instead = "";
    if (!missing && run && (run->needs & ~cpu->features)) {
        missing = run->needs & ~cpu->features;
        instead = running; /* OpenBLAS does not have `value` and runs another */
    }
    if (!missing) return;
    char lacks[256];
    feature_names(missing, cpu->os_disabled, lacks, sizeof lacks);
    cpu_text(cpu, what, sizeof what);
    error_exit_before_mpi(EXIT_CODE_USAGE, "%s=%s: %s lacks %s that kernel%s%s needs (expected one of %s)",
                          var, value, what, lacks, instead[0] ? " " : "", instead, expected);
}

/* Installs OpenBLAS's kernel `name` and leaves the environment as it was. Returns NULL,
 * or why it could not. */
static const char *force_kernel(const char *name)
{
    void (*quit)(void), (*init)(void);
    void *quit_symbol = dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit");
    void *init_symbol = dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init");
    if (!quit_symbol || !init_symbol) return "this OpenBLAS is not built with DYNAMIC_ARCH";
    /* ISO C has no cast from object to function pointer; POSIX guarantees the bytes. */
    memcpy(&quit, &quit_symbol, sizeof quit);
    memcpy(&init, &init_symbol, sizeof init);
    setenv("OPENBLAS_CORETYPE", name, 1);
    quit();
    init();
    unsetenv("OPENBLAS_CORETYPE");
    static char why[96];
    if (strcasecmp(openblas_get_corename(), name) == 0) return NULL;
    snprintf(why, sizeof why, "OpenBLAS installed %s instead", openblas_get_corename());
    return why;
}

static int rank_of(const char *name)
{
    const struct kernel *k = name ? find(name) : NULL;
    return k ? k->rank : -1;
}

/* No OPENBLAS_CORETYPE: keeps OpenBLAS's choice unless the best kernel ranks higher. */
static void choose(const struct blas_cpu *cpu, const char *best, char *reason, size_t size)
{
    char what[128];
    cpu_text(cpu, what, sizeof what);
    const char *origin = "OpenBLAS's choice for";
    const char *fallback = getenv("RESNET_DDP_TEST_BLAS_FALLBACK");
    if (fallback && fallback[0]) {
        check_kernel(cpu, "RESNET_DDP_TEST_BLAS_FALLBACK", fallback, NULL);
        const char *why = force_kernel(fallback);
        if (why) error_exit_before_mpi(EXIT_CODE_USAGE, "RESNET_DDP_TEST_BLAS_FALLBACK=%s: %s", fallback, why);
        origin = "forced by RESNET_DDP_TEST_BLAS_FALLBACK on";
    }
    const char *chosen = openblas_get_corename();
    const int have = rank_of(chosen), want = rank_of(best);
    if (have < 0 || have >= want) {
        /* A kernel this table does not know is newer than it: OpenBLAS knows better. */
        snprintf(reason, size, "%s %s%s", origin, what, have >= 0 && have == want ? ", its best" : "");
        return;
    }
    const char *why = force_kernel(best);
    if (!why)
        snprintf(reason, size, "switched from %s, %s %s, which has %s", chosen, origin, what,
                 find(best)->isa);
    else
        snprintf(reason, size, "%s %s, which has %s: switching to %s failed: %s", origin, what,
                 find(best)->isa, best, why);
}

/* "OpenBLAS 0.3.21 (OpenMP), kernel Zen" */
static void describe_openblas(void)
{
    const int parallel = openblas_get_parallel();
    snprintf(description, sizeof description, "OpenBLAS %s (%s), kernel %s", openblas_version(),
             parallel == 2 ? "OpenMP" : parallel == 1 ? "pthreads" : "sequential",
             openblas_get_corename());
}

void blas_kernel_select(void)
{
    struct blas_cpu cpu;
    blas_cpu_detect(&cpu);
    const char *best = blas_kernel_best(&cpu, built_in);
    char reason[512];
    const char *user = getenv("OPENBLAS_CORETYPE");
    if (user) {
        check_kernel(&cpu, "OPENBLAS_CORETYPE", user, openblas_get_corename());
        snprintf(reason, sizeof reason, "OPENBLAS_CORETYPE=%s, set by the user", user);
        if (rank_of(openblas_get_corename()) < rank_of(best))
            append(reason, sizeof reason, " (this CPU's best is %s)", best);
    } else {
        choose(&cpu, best, reason, sizeof reason);
    }
    describe_openblas();
    append(description, sizeof description, ": %s", reason);
}

const char *blas_kernel_description(void)
{
    if (!description[0]) describe_openblas();
    return description;
}
