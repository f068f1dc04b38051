/* test_batchnorm: batch normalization (batchnorm.c) against a reference in double.
 *
 * Forward (training): y = gamma * (x - mean) / sqrt(biased var + 1e-5) + beta, the
 * saved mean / invstd / count, and the running statistics (momentum 0.1, unbiased
 * variance), for inputs with a large offset, a single-element channel and a
 * constant channel. Forward (evaluation) uses the running statistics and changes
 * nothing. Backward for L = sum(y * r): dx, dgamma and dbeta against central finite
 * differences in double of the reference forward; dgamma/dbeta (double) accumulate; dx may
 * alias dy.
 *
 * Synchronized BN: a fake reducer runs 2 and 3 simulated ranks as threads whose
 * sum() exchanges buffers through a barrier. Every rank holds its own (c, m_r) slice
 * of the channel rows (uneven splits). Outputs, saved statistics, running stats and
 * dx of every rank must equal the whole-batch op on the concatenated batch; the
 * ranks' dgamma/dbeta must ADD UP to the whole-batch ones (each rank holds its share
 * for the later gradient allreduce). */
#include "batchnorm.h"
#include "testutil.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#define EPS 1e-5
#define MOM 0.1

/* ------------------------------------------------------------ reference */

/* y = BN(x) in double with batch statistics; mean/var (biased) out if non-NULL. */
static void ref_forward(int c, size_t m, const double *x, const double *gamma,
                        const double *beta, double *y, double *mean_out, double *var_out)
{
    for (int ch = 0; ch < c; ch++) {
        const double *row = x + (size_t)ch * m;
        double mean = 0.0, var = 0.0;
        for (size_t i = 0; i < m; i++) mean += row[i];
        mean /= (double)m;
        for (size_t i = 0; i < m; i++) var += (row[i] - mean) * (row[i] - mean);
        var /= (double)m;
        double invstd = 1.0 / sqrt(var + EPS);
        for (size_t i = 0; i < m; i++)
            y[(size_t)ch * m + i] = gamma[ch] * (row[i] - mean) * invstd + beta[ch];
        if (mean_out) mean_out[ch] = mean;
        if (var_out) var_out[ch] = var;
    }
}

static double ref_loss(int c, size_t m, const double *x, const double *gamma, const double *beta,
                       const double *r, double *ybuf)
{
    ref_forward(c, m, x, gamma, beta, ybuf, NULL, NULL);
    double l = 0.0;
    for (size_t i = 0; i < (size_t)c * m; i++) l += ybuf[i] * r[i];
    return l;
}

struct bn_loss {
    int c;
    size_t m;
    const double *x, *gamma, *beta, *r;
    double *y;
};

static double bn_loss(void *ctx, enum gc_point at)
{
    (void)at;
    struct bn_loss *l = ctx;
    return ref_loss(l->c, l->m, l->x, l->gamma, l->beta, l->r, l->y);
}

static void to_double(const float *src, double *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = (double)src[i];
}

/* ------------------------------------------------------- single process */

struct bn_data {
    int c;
    size_t m;
    float *x, *gamma, *beta, *r;
    double *xd, *gd, *bd, *rd;
};

static void make_data(struct bn_data *d, int c, size_t m, double offset, double spread)
{
    d->c = c;
    d->m = m;
    size_t n = (size_t)c * m;
    d->x = xalloc(sizeof(float) * n);
    d->r = xalloc(sizeof(float) * n);
    d->gamma = xalloc(sizeof(float) * (size_t)c);
    d->beta = xalloc(sizeof(float) * (size_t)c);
    d->xd = xalloc(sizeof(double) * n);
    d->rd = xalloc(sizeof(double) * n);
    d->gd = xalloc(sizeof(double) * (size_t)c);
    d->bd = xalloc(sizeof(double) * (size_t)c);
    for (size_t i = 0; i < n; i++) {
        d->x[i] = (float)(offset + spread * urand(-1, 1));
        d->r[i] = (float)urand(-1, 1);
        d->xd[i] = (double)d->x[i];
        d->rd[i] = (double)d->r[i];
    }
    for (int ch = 0; ch < c; ch++) {
        d->gamma[ch] = (float)urand(0.5, 2.0);
        d->beta[ch] = (float)urand(-1, 1);
        d->gd[ch] = (double)d->gamma[ch];
        d->bd[ch] = (double)d->beta[ch];
    }
}

static void free_data(struct bn_data *d)
{
    free(d->x);
    free(d->r);
    free(d->gamma);
    free(d->beta);
    free(d->xd);
    free(d->rd);
    free(d->gd);
    free(d->bd);
}

/* tol bounds y; gradients get 2 * tol. Float rounding of x * scale + shift grows
 * with |mean| / std, so the offset case passes a larger tol. */
static void check_single(const char *tag, struct bn_data *d, double tol)
{
    const int c = d->c;
    const size_t m = d->m, n = (size_t)c * m;
    char name[160];
    float *y = xalloc(sizeof(float) * n), *rm = xalloc(sizeof(float) * (size_t)c);
    float *rv = xalloc(sizeof(float) * (size_t)c), *rm0 = xalloc(sizeof(float) * (size_t)c);
    float *rv0 = xalloc(sizeof(float) * (size_t)c);
    struct bn_saved saved = {xalloc(sizeof(float) * (size_t)c),
                             xalloc(sizeof(float) * (size_t)c), 0};
    double *work = xalloc(sizeof(double) * (2 * (size_t)c + 1));
    double *got = xalloc(sizeof(double) * n), *want = xalloc(sizeof(double) * n);
    double *mean = xalloc(sizeof(double) * (size_t)c), *var = xalloc(sizeof(double) * (size_t)c);
    for (int ch = 0; ch < c; ch++) {
        rm[ch] = rm0[ch] = (float)urand(-1, 1);
        rv[ch] = rv0[ch] = (float)urand(0.5, 2);
    }

    /* forward, training mode */
    batchnorm_forward_train(c, m, d->x, d->gamma, d->beta, y, &saved, rm, rv, NULL, work);
    ref_forward(c, m, d->xd, d->gd, d->bd, want, mean, var);
    to_double(y, got, n);
    snprintf(name, sizeof name, "%s: y (train)", tag);
    expect_close(name, got, want, n, tol);
    EXPECT(saved.count == (double)m, "%s: saved count %g, want %zu", tag, saved.count, m);
    for (int ch = 0; ch < c; ch++) {
        got[ch] = (double)saved.mean[ch];
        want[ch] = mean[ch];
    }
    snprintf(name, sizeof name, "%s: saved mean", tag);
    expect_close(name, got, want, (size_t)c, 1e-6);
    for (int ch = 0; ch < c; ch++) {
        got[ch] = (double)saved.invstd[ch];
        want[ch] = 1.0 / sqrt(var[ch] + EPS);
    }
    snprintf(name, sizeof name, "%s: saved invstd", tag);
    expect_close(name, got, want, (size_t)c, 1e-5);
    for (int ch = 0; ch < c; ch++) {
        got[ch] = (double)rm[ch];
        want[ch] = (1 - MOM) * (double)rm0[ch] + MOM * mean[ch];
    }
    snprintf(name, sizeof name, "%s: running_mean", tag);
    expect_close(name, got, want, (size_t)c, 1e-6);
    for (int ch = 0; ch < c; ch++) {
        got[ch] = (double)rv[ch];
        double unbiased = m > 1 ? var[ch] * (double)m / (double)(m - 1) : var[ch];
        want[ch] = (1 - MOM) * (double)rv0[ch] + MOM * unbiased;
    }
    snprintf(name, sizeof name, "%s: running_var", tag);
    expect_close(name, got, want, (size_t)c, 1e-6);

    /* forward, evaluation mode: the running statistics, left unchanged */
    memcpy(rm0, rm, sizeof(float) * (size_t)c);
    memcpy(rv0, rv, sizeof(float) * (size_t)c);
    batchnorm_forward_eval(c, m, d->x, d->gamma, d->beta, rm, rv, y);
    for (int ch = 0; ch < c; ch++)
        for (size_t i = 0; i < m; i++) {
            size_t k = (size_t)ch * m + i;
            want[k] = d->gd[ch] * (d->xd[k] - (double)rm[ch]) / sqrt((double)rv[ch] + EPS) +
                      d->bd[ch];
        }
    to_double(y, got, n);
    snprintf(name, sizeof name, "%s: y (eval)", tag);
    expect_close(name, got, want, n, tol);
    EXPECT(memcmp(rm0, rm, sizeof(float) * (size_t)c) == 0 &&
               memcmp(rv0, rv, sizeof(float) * (size_t)c) == 0,
           "%s: eval forward changed the running statistics", tag);

    /* backward against finite differences of the double reference */
    batchnorm_forward_train(c, m, d->x, d->gamma, d->beta, y, &saved, rm, rv, NULL, work);
    float *dx = xalloc(sizeof(float) * n);
    double *dg = xalloc(sizeof(double) * (size_t)c), *db = xalloc(sizeof(double) * (size_t)c);
    double *dg0 = xalloc(sizeof(double) * (size_t)c), *db0 = xalloc(sizeof(double) * (size_t)c);
    for (int ch = 0; ch < c; ch++) {
        dg[ch] = dg0[ch] = urand(-1, 1);
        db[ch] = db0[ch] = urand(-1, 1);
    }
    for (size_t i = 0; i < n; i++) dx[i] = NAN;
    batchnorm_backward(c, m, d->x, d->r, d->gamma, &saved, dx, grad_of_doubles(dg), grad_of_doubles(db), NULL, work);
    struct bn_loss bl = {c, m, d->xd, d->gd, d->bd, d->rd, want}; /* want: scratch for y */
    struct gradcheck gc = {.op = tag, .loss = bn_loss, .ctx = &bl, .step = 1e-5, .tol = 2 * tol};
    to_double(dx, got, n);
    gc.tensor = "dx";
    gradcheck_double(&gc, d->xd, got, n);
    for (int ch = 0; ch < c; ch++) got[ch] = dg[ch] - dg0[ch];
    gc.tensor = "dgamma (accumulated)";
    gradcheck_double(&gc, d->gd, got, (size_t)c);
    for (int ch = 0; ch < c; ch++) got[ch] = db[ch] - db0[ch];
    gc.tensor = "dbeta (accumulated)";
    gradcheck_double(&gc, d->bd, got, (size_t)c);

    /* dx may alias dy */
    float *inplace = xalloc(sizeof(float) * n);
    memcpy(inplace, d->r, sizeof(float) * n);
    batchnorm_backward(c, m, d->x, inplace, d->gamma, &saved, inplace, grad_of_doubles(dg), grad_of_doubles(db), NULL, work);
    EXPECT(memcmp(inplace, dx, sizeof(float) * n) == 0, "%s: dx aliased to dy differs", tag);

    free(inplace);
    free(dx);
    free(dg);
    free(db);
    free(dg0);
    free(db0);
    free(y);
    free(rm);
    free(rv);
    free(rm0);
    free(rv0);
    free(saved.mean);
    free(saved.invstd);
    free(work);
    free(got);
    free(want);
    free(mean);
    free(var);
}

/* A constant channel has zero variance: y = beta, finite, and dx finite. */
static void check_constant_channel(void)
{
    enum { M = 6 };
    float x[M], y[M], dy[M], dx[M], gamma = 1.5f, beta = 0.25f, rm = 0, rv = 1, mean, invstd;
    double dg = 0, db = 0;
    double work[3];
    struct bn_saved saved = {&mean, &invstd, 0};
    for (int i = 0; i < M; i++) {
        x[i] = 0.7f;
        dy[i] = (float)urand(-1, 1);
    }
    batchnorm_forward_train(1, M, x, &gamma, &beta, y, &saved, &rm, &rv, NULL, work);
    int ok = 1;
    for (int i = 0; i < M; i++) ok &= fabsf(y[i] - beta) < 1e-6f;
    EXPECT(ok, "constant channel: y != beta");
    EXPECT(fabs((double)rv - 0.9) < 1e-7, "constant channel: running_var %g, want 0.9", (double)rv);
    batchnorm_backward(1, M, x, dy, &gamma, &saved, dx, grad_of_doubles(&dg), grad_of_doubles(&db), NULL, work);
    ok = 1;
    for (int i = 0; i < M; i++) ok &= isfinite(dx[i]);
    EXPECT(ok && isfinite(dg) && isfinite(db), "constant channel: non-finite gradients");
}

/* ------------------------------------------------------------ fake ranks */

#define MAX_RANKS 4

struct fake_group {
    int nranks;
    pthread_barrier_t barrier;
    double *slots[MAX_RANKS];
    size_t lens[MAX_RANKS];
    int calls[MAX_RANKS];
    int mismatch;
};

struct fake_rank {
    struct fake_group *group;
    int rank;
    double *tmp; /* scratch as large as any sum */
};

/* Sum buf over the simulated ranks: publish, wait, read everyone's, wait, write. */
static void fake_sum(void *ctx, double *buf, size_t n)
{
    struct fake_rank *me = ctx;
    struct fake_group *g = me->group;
    g->slots[me->rank] = buf;
    g->lens[me->rank] = n;
    g->calls[me->rank]++;
    pthread_barrier_wait(&g->barrier);
    for (size_t i = 0; i < n; i++) me->tmp[i] = 0.0;
    for (int r = 0; r < g->nranks; r++) {
        if (g->lens[r] != n) g->mismatch = 1;
        for (size_t i = 0; i < n && i < g->lens[r]; i++) me->tmp[i] += g->slots[r][i];
    }
    pthread_barrier_wait(&g->barrier);
    memcpy(buf, me->tmp, sizeof(double) * n);
}

struct rank_job {
    struct fake_rank fr;
    struct reducer red;
    int c;
    size_t m;
    float *x, *dy, *gamma, *beta, *y, *dx, *rm, *rv;
    double *dgamma, *dbeta;
    struct bn_saved saved;
    double *work;
};

static void *rank_main(void *arg)
{
    struct rank_job *j = arg;
    batchnorm_forward_train(j->c, j->m, j->x, j->gamma, j->beta, j->y, &j->saved, j->rm, j->rv,
                            &j->red, j->work);
    batchnorm_backward(j->c, j->m, j->x, j->dy, j->gamma, &j->saved, j->dx, grad_of_doubles(j->dgamma),
                       grad_of_doubles(j->dbeta), &j->red, j->work);
    return NULL;
}

/* Slice rows [off, off + len) of every channel of a (c, m) tensor into (c, len). */
static void slice_rows(int c, size_t m, const float *src, size_t off, size_t len, float *dst)
{
    for (int ch = 0; ch < c; ch++)
        memcpy(dst + (size_t)ch * len, src + (size_t)ch * m + off, sizeof(float) * len);
}

static void check_sync(int nranks, const size_t *split)
{
    const int c = 4;
    size_t m = 0;
    for (int r = 0; r < nranks; r++) m += split[r];
    const size_t n = (size_t)c * m;
    char tag[64], name[160];
    snprintf(tag, sizeof tag, "sync %d ranks", nranks);

    struct bn_data d;
    make_data(&d, c, m, -2.0, 3.0);

    /* Whole batch, one process. */
    float *y = xalloc(sizeof(float) * n), *dx = xalloc(sizeof(float) * n);
    double *dg = xalloc(sizeof(double) * (size_t)c), *db = xalloc(sizeof(double) * (size_t)c);
    float *rm = xalloc(sizeof(float) * (size_t)c), *rv = xalloc(sizeof(float) * (size_t)c);
    for (int ch = 0; ch < c; ch++) rv[ch] = 1.0f;
    struct bn_saved saved = {xalloc(sizeof(float) * (size_t)c),
                             xalloc(sizeof(float) * (size_t)c), 0};
    double *work = xalloc(sizeof(double) * (2 * (size_t)c + 1));
    batchnorm_forward_train(c, m, d.x, d.gamma, d.beta, y, &saved, rm, rv, NULL, work);
    batchnorm_backward(c, m, d.x, d.r, d.gamma, &saved, dx, grad_of_doubles(dg), grad_of_doubles(db), NULL, work);

    /* The same batch over simulated ranks. */
    struct fake_group group;
    memset(&group, 0, sizeof group);
    group.nranks = nranks;
    pthread_barrier_init(&group.barrier, NULL, (unsigned)nranks);
    struct rank_job jobs[MAX_RANKS];
    pthread_t threads[MAX_RANKS];
    size_t off = 0;
    for (int r = 0; r < nranks; r++) {
        struct rank_job *j = &jobs[r];
        size_t len = split[r], cl = (size_t)c * len;
        memset(j, 0, sizeof *j);
        j->fr.group = &group;
        j->fr.rank = r;
        j->fr.tmp = xalloc(sizeof(double) * (2 * (size_t)c + 1));
        j->red.sum = fake_sum;
        j->red.ctx = &j->fr;
        j->c = c;
        j->m = len;
        j->x = xalloc(sizeof(float) * cl);
        j->dy = xalloc(sizeof(float) * cl);
        j->y = xalloc(sizeof(float) * cl);
        j->dx = xalloc(sizeof(float) * cl);
        slice_rows(c, m, d.x, off, len, j->x);
        slice_rows(c, m, d.r, off, len, j->dy);
        j->gamma = d.gamma;
        j->beta = d.beta;
        j->dgamma = xalloc(sizeof(double) * (size_t)c);
        j->dbeta = xalloc(sizeof(double) * (size_t)c);
        j->rm = xalloc(sizeof(float) * (size_t)c);
        j->rv = xalloc(sizeof(float) * (size_t)c);
        for (int ch = 0; ch < c; ch++) j->rv[ch] = 1.0f;
        j->saved.mean = xalloc(sizeof(float) * (size_t)c);
        j->saved.invstd = xalloc(sizeof(float) * (size_t)c);
        j->work = xalloc(sizeof(double) * (2 * (size_t)c + 1));
        off += len;
    }
    for (int r = 0; r < nranks; r++) pthread_create(&threads[r], NULL, rank_main, &jobs[r]);
    for (int r = 0; r < nranks; r++) pthread_join(threads[r], NULL);
    pthread_barrier_destroy(&group.barrier);
    EXPECT(!group.mismatch, "%s: ranks reduced buffers of different lengths", tag);

    double *got = xalloc(sizeof(double) * n), *want = xalloc(sizeof(double) * n);
    double *gsum = xalloc(sizeof(double) * 2 * (size_t)c);
    off = 0;
    for (int r = 0; r < nranks; r++) {
        struct rank_job *j = &jobs[r];
        size_t len = split[r], cl = (size_t)c * len;
        EXPECT(group.calls[r] == 2, "%s rank %d: %d reducer calls, want 2 (forward, backward)", tag,
               r, group.calls[r]);
        EXPECT(j->saved.count == (double)m, "%s rank %d: saved count %g, want %zu", tag, r,
               j->saved.count, m);
        for (int ch = 0; ch < c; ch++)
            for (size_t i = 0; i < len; i++) {
                got[(size_t)ch * len + i] = (double)j->y[(size_t)ch * len + i];
                want[(size_t)ch * len + i] = (double)y[(size_t)ch * m + off + i];
            }
        snprintf(name, sizeof name, "%s rank %d: y", tag, r);
        expect_close(name, got, want, cl, 1e-5);
        for (int ch = 0; ch < c; ch++)
            for (size_t i = 0; i < len; i++) {
                got[(size_t)ch * len + i] = (double)j->dx[(size_t)ch * len + i];
                want[(size_t)ch * len + i] = (double)dx[(size_t)ch * m + off + i];
            }
        snprintf(name, sizeof name, "%s rank %d: dx", tag, r);
        expect_close(name, got, want, cl, 1e-5);
        for (int ch = 0; ch < c; ch++) {
            got[ch] = (double)j->saved.mean[ch];
            want[ch] = (double)saved.mean[ch];
            got[c + ch] = (double)j->saved.invstd[ch];
            want[c + ch] = (double)saved.invstd[ch];
            got[2 * c + ch] = (double)j->rm[ch];
            want[2 * c + ch] = (double)rm[ch];
            got[3 * c + ch] = (double)j->rv[ch];
            want[3 * c + ch] = (double)rv[ch];
        }
        snprintf(name, sizeof name, "%s rank %d: mean, invstd, running_mean, running_var", tag, r);
        expect_close(name, got, want, 4 * (size_t)c, 1e-5);
        for (int ch = 0; ch < c; ch++) {
            gsum[ch] += j->dgamma[ch];
            gsum[c + ch] += j->dbeta[ch];
        }
        off += len;
    }
    for (int ch = 0; ch < c; ch++) {
        want[ch] = dg[ch];
        want[c + ch] = db[ch];
    }
    snprintf(name, sizeof name, "%s: sum over ranks of (dgamma, dbeta)", tag);
    expect_close(name, gsum, want, 2 * (size_t)c, 1e-5);

    for (int r = 0; r < nranks; r++) {
        struct rank_job *j = &jobs[r];
        free(j->fr.tmp);
        free(j->x);
        free(j->dy);
        free(j->y);
        free(j->dx);
        free(j->dgamma);
        free(j->dbeta);
        free(j->rm);
        free(j->rv);
        free(j->saved.mean);
        free(j->saved.invstd);
        free(j->work);
    }
    free(got);
    free(want);
    free(gsum);
    free(y);
    free(dx);
    free(dg);
    free(db);
    free(rm);
    free(rv);
    free(saved.mean);
    free(saved.invstd);
    free(work);
    free_data(&d);
}

int main(void)
{
    urand_seed(0xba7c4ull, 2);
    struct bn_data d;
    make_data(&d, 3, 40, 0.0, 1.0);
    check_single("c=3 m=40", &d, 1e-5);
    free_data(&d);
    make_data(&d, 5, 7, 10.0, 0.5); /* large offset: the variance must not cancel badly */
    check_single("c=5 m=7 offset 10", &d, 5e-5);
    free_data(&d);
    make_data(&d, 2, 2, -1.0, 2.0);
    check_single("c=2 m=2", &d, 1e-5);
    free_data(&d);
    check_constant_channel();

    static const size_t split2[] = {13, 11};
    static const size_t split3[] = {9, 9, 5};
    static const size_t split3_tiny[] = {1, 2, 1};
    check_sync(2, split2);
    check_sync(3, split3);
    check_sync(3, split3_tiny);
    return test_summary("test_batchnorm");
}
