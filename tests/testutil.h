/* testutil: helpers shared by the unit tests (header-only, tests only): EXPECT and its
 * failure counter, array comparison, a seeded random sequence, an aborting allocator,
 * a scratch directory, and the one gradient checker every op test uses. */
#ifndef RESNET_DDP_TESTUTIL_H
#define RESNET_DDP_TESTUTIL_H

#include "rng.h"

#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int test_failures;

#define EXPECT(cond, ...)                                                  \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: FAILED: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fprintf(stderr, "\n");                                         \
            test_failures++;                                               \
        }                                                                  \
    } while (0)

/* Compare two arrays; on failure print the name, max abs / rel difference and the
 * first mismatching index. tol is relative to max(|ref|, 1). Returns 1 if equal. */
static inline int expect_close(const char *name, const double *got, const double *ref, size_t n,
                               double tol)
{
    double max_abs = 0, max_rel = 0;
    size_t first_bad = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(got[i] - ref[i]);
        double scale = fabs(ref[i]) > 1.0 ? fabs(ref[i]) : 1.0;
        if (d > max_abs) max_abs = d;
        if (d / scale > max_rel) max_rel = d / scale;
        if ((d / scale > tol || isnan(got[i])) && first_bad == (size_t)-1) first_bad = i;
    }
    if (first_bad != (size_t)-1) {
        fprintf(stderr, "FAILED %s: max abs diff %.3g, max rel diff %.3g (tol %.3g), first at [%zu]: got %.9g want %.9g\n",
                name, max_abs, max_rel, tol, first_bad, got[first_bad], ref[first_bad]);
        test_failures++;
        return 0;
    }
    return 1;
}

static inline int test_summary(const char *name)
{
    if (test_failures) {
        fprintf(stderr, "%s: %d failure(s)\n", name, test_failures);
        return 1;
    }
    printf("%s: all checks passed\n", name);
    return 0;
}

/* ------------------------------------------------------------ random numbers */

/* One random sequence per test program, a pure function of (seed, stream, position)
 * (rng.h), so every run draws the same data. urand_seed starts it (again). */
struct urand_state {
    uint64_t seed, stream, counter;
};

static inline struct urand_state *urand_state(void)
{
    static struct urand_state state;
    return &state;
}

static inline void urand_seed(uint64_t seed, uint64_t stream)
{
    *urand_state() = (struct urand_state){seed, stream, 0};
}

/* The next value of the sequence, uniform in [lo, hi). */
static inline double urand(double lo, double hi)
{
    struct urand_state *s = urand_state();
    return lo + (hi - lo) * rng_uniform(s->seed, s->stream, s->counter++);
}

/* calloc that never returns NULL (zeroed; 0 bytes is a valid, distinct block). */
static inline void *xalloc(size_t bytes)
{
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", bytes);
        abort();
    }
    return p;
}

/* ------------------------------------------------------ scratch directory */

/* The test's scratch directory, made by test_tmpdir_make. */
static inline char *test_tmpdir(void)
{
    static char dir[64];
    return dir;
}

/* Makes /tmp/<name>.XXXXXX the scratch directory; false (with perror) on failure. */
static inline bool test_tmpdir_make(const char *name)
{
    snprintf(test_tmpdir(), 64, "/tmp/%s.XXXXXX", name);
    if (mkdtemp(test_tmpdir())) return true;
    perror("mkdtemp");
    return false;
}

/* test_tmpdir()/name, in one of 8 rotating buffers: copy it to keep it longer. */
static inline const char *tmp_path(const char *name)
{
    static char buf[8][256];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", test_tmpdir(), name);
    return p;
}

/* Removes path and everything below it. */
static inline void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char sub[1024];
        int len = snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        if (len > 0 && (size_t)len < sizeof sub) remove_tree(sub);
    }
    closedir(d);
    rmdir(path);
}

/* ------------------------------------------------------- gradient checker */

/* Compares an analytic gradient with difference quotients of a scalar loss, element
 * by element, after Caffe's GradientChecker and ggml's test-backend-ops: every op is
 * checked the same way and a failure names the op, the tensor, the element, the
 * analytic and the numeric value.
 *
 * Element i of x is moved to x0 + t (stored in x's own precision; the quotient uses
 * the offset actually stored) and loss() is evaluated there. The estimate is the
 * central difference over [-h, h]. With a kinked() callback the loss is piecewise
 * smooth (ReLU, max-pool): if a non-smooth decision changes between x0 and x0 +- h,
 * the one-sided second-order stencil (-3 L(0) + 4 L(s h) - L(2 s h)) / (2 s h) on a
 * smooth side s is used instead, h is halved up to `halvings` times, and an element
 * with no smooth interval is skipped (counted, for the caller to bound).
 *
 * An element passes when |numeric - analytic| <= tol * scale + 2 * noise * sum|c|:
 * scale is the smaller of |analytic| and |numeric| (so the bound holds relative to
 * either), raised to 1 unless `relative`; c are the stencil's coefficients, so the
 * second term is twice the worst effect of a loss that is only known to +-noise. */

/* The stencil points, passed to loss() so that kinked() can compare the decisions
 * taken at two of them. */
enum gc_point { GC_BASE, GC_PLUS, GC_MINUS, GC_FAR };

struct gradcheck {
    const char *op;     /* for the report: the op and its shape */
    const char *tensor; /* for the report: the tensor perturbed */
    double (*loss)(void *ctx, enum gc_point at); /* the loss at the current values */
    /* Optional: did a non-smooth decision change between the evaluations at a and b? */
    bool (*kinked)(void *ctx, enum gc_point a, enum gc_point b);
    void *ctx;
    double step;     /* h of the first central difference */
    double tol;      /* relative tolerance, see above */
    bool relative;   /* scale without the floor of 1 (gradients far below 1) */
    double noise;    /* bound on the loss's rounding noise; 0 when negligible */
    /* > 0: an element whose noise allowance exceeds this share of |analytic| is
     * inconclusive, neither passed nor failed. */
    double max_noise_share;
    int halvings;    /* with kinked(): h is halved up to this many times */
    const size_t *idx; /* NULL: every element; else exactly these nidx */
    size_t nidx;
    int verbose;     /* 1: a summary line; 2: also a line per element */
};

struct gradcheck_result {
    size_t checked, failed, skipped, inconclusive;
    size_t one_sided; /* of the checked, those next to a kink (one-sided stencil) */
    double worst; /* largest |numeric - analytic| / allowed over the checked elements */
    char worst_desc[192];
};

/* The derivative estimate at one element. */
struct gc_estimate {
    double deriv;
    double h;    /* the step of the stencil used */
    double coef; /* sum of |stencil coefficients| */
    int kind;    /* 0 none, 1 central, 2 one-sided */
    bool lost;   /* the step was below the value's precision */
};

static inline double gc_load(const void *x, bool is_float, size_t i)
{
    return is_float ? (double)((const float *)x)[i] : ((const double *)x)[i];
}

/* Moves x[i] to x0 + t, evaluates the loss at `at` and returns the offset stored. */
static inline double gc_eval(const struct gradcheck *gc, void *x, bool is_float, size_t i,
                             double x0, double t, enum gc_point at, double *loss)
{
    if (is_float)
        ((float *)x)[i] = (float)(x0 + t);
    else
        ((double *)x)[i] = x0 + t;
    double moved = gc_load(x, is_float, i) - x0;
    *loss = gc->loss(gc->ctx, at);
    return moved;
}

static inline struct gc_estimate gc_derivative(const struct gradcheck *gc, void *x, bool is_float,
                                               size_t i, double l0)
{
    struct gc_estimate e = {0.0, gc->step, 0.0, 0, false};
    const double x0 = gc_load(x, is_float, i);
    const int attempts = gc->kinked ? gc->halvings + 1 : 1;
    for (int attempt = 0; attempt < attempts; attempt++, e.h /= 2) {
        double lp, lm;
        double a = gc_eval(gc, x, is_float, i, x0, e.h, GC_PLUS, &lp);
        double b = gc_eval(gc, x, is_float, i, x0, -e.h, GC_MINUS, &lm);
        bool kp = gc->kinked && gc->kinked(gc->ctx, GC_BASE, GC_PLUS);
        bool km = gc->kinked && gc->kinked(gc->ctx, GC_BASE, GC_MINUS);
        if (a == 0 || b == 0) {
            e.lost = true;
            break;
        }
        if (!kp && !km) {
            e.deriv = (lp - lm) / (a - b);
            e.coef = 2.0 / fabs(a - b);
            e.kind = 1;
            break;
        }
        /* Three points 0, a, b on one side: the quadratic through them, differentiated
         * at 0 ((-3, 4, -1) / 2h for a = h, b = 2h). */
        for (int side = 1; gc->kinked && side >= -1 && !e.kind; side -= 2) {
            if (side > 0 ? kp : km) continue;
            double l1 = side > 0 ? lp : lm, l2, near = side > 0 ? a : b;
            double far = gc_eval(gc, x, is_float, i, x0, 2 * side * e.h, GC_FAR, &l2);
            if (gc->kinked(gc->ctx, GC_BASE, GC_FAR) || far == near) continue;
            double c0 = -(near + far) / (near * far), c1 = far / (near * (far - near)),
                   c2 = -near / (far * (far - near));
            e.deriv = c0 * l0 + c1 * l1 + c2 * l2;
            e.coef = fabs(c0) + fabs(c1) + fabs(c2);
            e.kind = 2;
        }
        if (e.kind) break;
    }
    if (is_float)
        ((float *)x)[i] = (float)x0;
    else
        ((double *)x)[i] = x0;
    return e;
}

static inline struct gradcheck_result gc_run(const struct gradcheck *gc, void *x, bool is_float,
                                             const double *analytic, size_t n)
{
    struct gradcheck_result r = {0, 0, 0, 0, 0, 0.0, ""};
    const size_t nsel = gc->idx ? gc->nidx : n;
    const double l0 = gc->kinked && nsel ? gc->loss(gc->ctx, GC_BASE) : 0.0;
    for (size_t k = 0; k < nsel; k++) {
        const size_t i = gc->idx ? gc->idx[k] : k;
        const double an = analytic[i];
        const struct gc_estimate e = gc_derivative(gc, x, is_float, i, l0);
        const double nu = e.deriv;
        const char *how = e.kind == 1 ? "central"
                          : e.kind == 2 ? "one-sided"
                          : e.lost    ? "step below the value's precision"
                                      : "no smooth interval";
        double noise_allowed = 2.0 * gc->noise * e.coef;
        double scale = fmin(fabs(an), fabs(nu));
        if (!gc->relative) scale = fmax(scale, 1.0);
        double allowed = gc->tol * scale + noise_allowed, err = fabs(nu - an);
        bool inconclusive = e.kind && gc->max_noise_share > 0 &&
                            noise_allowed > gc->max_noise_share * fabs(an);
        bool skip = !e.kind && !e.lost; /* a lost step is the test's error: it fails */
        bool bad = !skip && !inconclusive && !(e.kind && err <= allowed);
        if (skip && gc->verbose >= 2)
            printf("  %s %s[%zu]: analytic %.9g, skipped (%s down to h %.3g)\n", gc->op, gc->tensor,
                   i, an, how, e.h);
        else if (gc->verbose >= 2 || (bad && r.failed < 8))
            fprintf(bad ? stderr : stdout,
                    "%s%s %s[%zu]: analytic %.9g, numeric %.9g (h %.3g, %s)%s, |diff| %.3g, allowed %.3g\n",
                    bad ? "FAILED gradient: " : "  ", gc->op, gc->tensor, i, an, nu, e.h, how,
                    inconclusive ? ", inconclusive" : "", err, allowed);
        if (skip) {
            r.skipped++;
            continue;
        }
        if (inconclusive) {
            r.inconclusive++;
            continue;
        }
        r.checked++;
        r.failed += bad;
        r.one_sided += e.kind == 2;
        double ratio = err == 0 ? 0.0 : err / allowed; /* infinite when nothing is allowed */
        if (isnan(ratio) || e.lost) ratio = (double)INFINITY;
        if (r.checked == 1 || ratio > r.worst) {
            r.worst = ratio;
            snprintf(r.worst_desc, sizeof r.worst_desc,
                     "%s %s[%zu]: analytic %.6g, numeric %.6g (h %.2g, %s)", gc->op, gc->tensor,
                     i, an, nu, e.h, how);
        }
    }
    if (r.failed) {
        fprintf(stderr, "FAILED gradient check %s %s: %zu of %zu elements off (tol %.3g%s), worst %.3g x allowed at %s\n",
                gc->op, gc->tensor, r.failed, r.checked, gc->tol,
                gc->relative ? " relative" : " relative to max(., 1)", r.worst, r.worst_desc);
        test_failures++;
    } else if (gc->verbose >= 1) {
        printf("  %s %s: %zu checked, %zu skipped (kinks), %zu inconclusive, worst %.3f x allowed\n",
               gc->op, gc->tensor, r.checked, r.skipped, r.inconclusive, r.worst);
    }
    return r;
}

/* Check d loss / d x against analytic[0 .. n) (see struct gradcheck). */
static inline struct gradcheck_result gradcheck_double(const struct gradcheck *gc, double *x,
                                                       const double *analytic, size_t n)
{
    return gc_run(gc, x, false, analytic, n);
}

static inline struct gradcheck_result gradcheck_float(const struct gradcheck *gc, float *x,
                                                      const double *analytic, size_t n)
{
    return gc_run(gc, x, true, analytic, n);
}

/* Adds r's counts to *total and keeps the worst element of both. */
static inline void gradcheck_merge(struct gradcheck_result *total, const struct gradcheck_result *r)
{
    bool worse = r->checked && (!total->checked || r->worst > total->worst);
    total->checked += r->checked;
    total->failed += r->failed;
    total->skipped += r->skipped;
    total->inconclusive += r->inconclusive;
    total->one_sided += r->one_sided;
    if (worse) {
        total->worst = r->worst;
        snprintf(total->worst_desc, sizeof total->worst_desc, "%s", r->worst_desc);
    }
}

#endif
