/* test_blas_kernel: the choice of OpenBLAS kernel (blas_kernel.c).
 *
 * The best kernel for CPUs described by their feature flags (an Emerald Rapids Xeon,
 * which OpenBLAS 0.3.21 takes for a Prescott, among them), with some kernels missing
 * from OpenBLAS, and with the OS not enabling the ZMM registers; the features a kernel
 * lacks; and this machine's CPUID reading against Linux's /proc/cpuinfo. */
#include "blas_kernel.h"
#include "testutil.h"

#include <string.h>

enum {
    SSE = BLAS_CPU_SSE3 | BLAS_CPU_SSSE3 | BLAS_CPU_SSE41 | BLAS_CPU_SSE42,
    AVX2 = SSE | BLAS_CPU_AVX | BLAS_CPU_AVX2 | BLAS_CPU_FMA,
    AVX512 = BLAS_CPU_AVX512F | BLAS_CPU_AVX512CD | BLAS_CPU_AVX512BW | BLAS_CPU_AVX512DQ |
             BLAS_CPU_AVX512VL,
};

static const char *best(const char *vendor, unsigned features, bool (*available)(const char *))
{
    struct blas_cpu cpu = {.features = features};
    snprintf(cpu.vendor, sizeof cpu.vendor, "%s", vendor);
    const char *name = blas_kernel_best(&cpu, available);
    return name ? name : "(none)";
}

static bool without_skylakex(const char *name) { return strcmp(name, "SkylakeX") != 0; }

#define EXPECT_BEST(want, ...)                                                      \
    do {                                                                            \
        const char *got = best(__VA_ARGS__);                                        \
        EXPECT(strcmp(got, want) == 0, "best kernel %s, want %s", got, want);       \
    } while (0)

static void check_ladder(void)
{
    const unsigned emerald_rapids = AVX2 | AVX512 | BLAS_CPU_AVX512_BF16;
    EXPECT_BEST("SkylakeX", "GenuineIntel", emerald_rapids, NULL);
    EXPECT_BEST("Haswell", "GenuineIntel", emerald_rapids, without_skylakex);
    EXPECT_BEST("SkylakeX", "AuthenticAMD", AVX2 | AVX512, NULL); /* Zen 4 */
    EXPECT_BEST("Zen", "AuthenticAMD", AVX2, NULL);
    EXPECT_BEST("Zen", "HygonGenuine", AVX2, NULL);
    EXPECT_BEST("Haswell", "GenuineIntel", AVX2, NULL);
    EXPECT_BEST("Haswell", "GenuineIntel", AVX2 | (AVX512 & ~BLAS_CPU_AVX512VL), NULL);
    EXPECT_BEST("Sandybridge", "AuthenticAMD", SSE | BLAS_CPU_AVX | BLAS_CPU_FMA4 | BLAS_CPU_XOP, NULL);
    EXPECT_BEST("Nehalem", "GenuineIntel", SSE, NULL);
    EXPECT_BEST("Core2", "GenuineIntel", BLAS_CPU_SSE3 | BLAS_CPU_SSSE3, NULL);
    EXPECT_BEST("Prescott", "GenuineIntel", BLAS_CPU_SSE3, NULL);
    EXPECT_BEST("(none)", "GenuineIntel", 0u, NULL);
}

static void check_missing(void)
{
    struct blas_cpu zen3 = {.vendor = "AuthenticAMD", .family = 25, .model = 1, .features = AVX2};
    EXPECT(blas_kernel_missing(&zen3, "SkylakeX") == AVX512, "SkylakeX on Zen 3");
    EXPECT(blas_kernel_missing(&zen3, "skylakex") == AVX512, "names are case-insensitive");
    EXPECT(blas_kernel_missing(&zen3, "Cooperlake") == (AVX512 | BLAS_CPU_AVX512_BF16), "Cooperlake");
    EXPECT(blas_kernel_missing(&zen3, "Excavator") == (BLAS_CPU_FMA4 | BLAS_CPU_XOP), "Excavator");
    EXPECT(blas_kernel_missing(&zen3, "Zen") == 0 && blas_kernel_missing(&zen3, "Prescott") == 0,
           "Zen 3 runs Zen and Prescott");
    EXPECT(blas_kernel_missing(&zen3, "NoSuchCore") == 0, "unknown names need nothing");
}

/* Linux's flags line lists what the CPU has and the OS enabled, as blas_cpu_detect does. */
static void check_detect(void)
{
    static const struct { const char *flag; unsigned feature; } flags[] = {
        {"pni", BLAS_CPU_SSE3}, {"ssse3", BLAS_CPU_SSSE3}, {"sse4_1", BLAS_CPU_SSE41},
        {"sse4_2", BLAS_CPU_SSE42}, {"avx", BLAS_CPU_AVX}, {"avx2", BLAS_CPU_AVX2},
        {"fma", BLAS_CPU_FMA}, {"fma4", BLAS_CPU_FMA4}, {"xop", BLAS_CPU_XOP},
        {"avx512f", BLAS_CPU_AVX512F}, {"avx512cd", BLAS_CPU_AVX512CD},
        {"avx512bw", BLAS_CPU_AVX512BW}, {"avx512dq", BLAS_CPU_AVX512DQ},
        {"avx512vl", BLAS_CPU_AVX512VL}, {"avx512_bf16", BLAS_CPU_AVX512_BF16},
    };
    struct blas_cpu cpu;
    blas_cpu_detect(&cpu);
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[8192], linux_line[8192] = "";
    int family = -1, model = -1;
    while (fgets(line, sizeof line, f) && !linux_line[0]) {
        if (sscanf(line, "cpu family : %d", &family) == 1 || sscanf(line, "model : %d", &model) == 1)
            continue;
        if (strncmp(line, "flags", 5) == 0) snprintf(linux_line, sizeof linux_line, "%s", line);
    }
    fclose(f);
    linux_line[strcspn(linux_line, "\n")] = ' ';
    EXPECT(cpu.family == family && cpu.model == model, "family %d model %d, Linux says %d %d",
           cpu.family, cpu.model, family, model);
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        char word[32];
        snprintf(word, sizeof word, " %s ", flags[i].flag);
        const bool linux_has = strstr(linux_line, word) != NULL;
        EXPECT(linux_has == ((cpu.features & flags[i].feature) != 0), "%s: Linux says %d",
               flags[i].flag, linux_has);
    }
}

int main(void)
{
    check_ladder();
    check_missing();
    check_detect();
    return test_summary("test_blas_kernel");
}
