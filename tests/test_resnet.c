/* test_resnet: the whole model (resnet.c).
 *
 * (a) Structure. ResNet-18 at width 64, 10 classes, 1 channel, 28x28 has exactly
 *     11,178,378 trainable parameters with PyTorch state_dict names and shapes (stem
 *     "0.0", "0.1", stages "1".."4" with the 1x1 shortcut "conv3" only where the
 *     shape changes, head "7"); BN running statistics are buffers, not parameters.
 *     Parameters are laid out in reverse registration order (the head at offset 0,
 *     the stem last), 16-float aligned, without overlaps. ResNet-34 ((3,4,6,3) basic
 *     blocks) and ResNet-50 ((3,4,6,3) bottlenecks) must match a parameter count
 *     computed here from the architecture. Initialization follows resnet.h.
 *
 * (b) Gradients. Tiny networks with random BN affine parameters: ResNet-18 width 4
 *     on 32x32, batch 4 of a planned 5, micro-shards of 3, im2col budget of one
 *     sample; ResNet-50 width 2 on 48x48, batch 4. resnet_forward(train,
 *     loss_scale = 1/n) + resnet_backward (double gradients) is compared with finite
 *     differences of the mean loss by testutil.h's gradient checker, whose kink test
 *     here compares the ReLU outputs and max-pool argmaxes of two forwards:
 *       - the float forward is noisy, so the noise is measured first: the stem conv
 *         bias feeds a training-mode BN, so the loss does not depend on it at all and
 *         any change of the loss when it moves is rounding. It must stay below 2e-5,
 *         and every difference quotient is allowed 2 * w * noise / eps (w = 1 for a
 *         central, 4 for a one-sided stencil);
 *       - ReLU and max-pool make the loss piecewise smooth, so a quotient is only
 *         used over an interval on which no ReLU or argmax decision changes
 *         significantly (flips between values within 1e-5 of each other are
 *         rounding): the central difference over [-eps, eps], else the one-sided
 *         second-order stencil on a smooth side; eps is halved up to five times;
 *       - three random elements of every tensor (ResNet-18), one of 48 tensors spread
 *         over ResNet-50: |fd - g| <= 3e-2 min(|g|, |fd|) + allowance, at most a
 *         quarter of the checks may find no smooth interval;
 *       - directional derivatives over ALL parameters, along the gradient and three
 *         random directions: |fd - g.v| <= 2e-2 min(|g.v|, |fd|) + allowance, counted
 *         when 2e-2 |g.v| + allowance is below |g.v| / 4 (ResNet-18 needs 2 such;
 *         ResNet-50 crosses kinks at every step above its noise floor, so its
 *         directions are reported only);
 *       - every conv bias that feeds a BN has a zero gradient (BN's input gradient
 *         sums to zero over each channel), up to 1e-3 of its weight's gradient;
 *       - backward accumulates: a second backward doubles the gradients.
 *     On mutated copies of the engine, dropping either term of BN's input gradient,
 *     overwriting instead of accumulating dgamma, dropping the shortcut's input
 *     gradient or the stem ReLU's mask each fail these checks.
 *
 * (c) The grad_ready hook reports non-decreasing prefixes that end at param_floats
 *     (the arena's end, padding included), and every reported prefix is
 *     final: its bytes at the time of the call equal those after backward.
 *
 * (d) spec.label_smoothing reaches the loss of a training forward (its loss and
 *     dlogits are softmax_xent's with that smoothing, bit for bit) but not of an
 *     evaluation forward (plain cross-entropy). */
#include "batchnorm.h"
#include "gemm.h"
#include "loss.h"
#include "resnet.h"
#include "testutil.h"

#include <math.h>
#include <string.h>

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* ------------------------------------------------------------- (a) structure */

static size_t conv_params(int cin, int cout, int k)
{
    return (size_t)cout * cin * k * k + (size_t)cout;
}

/* Trainable parameters of the architecture described in resnet.h. */
static size_t expected_count(int depth, int width, int classes, int in_channels)
{
    static const int blocks[4] = {3, 4, 6, 3};
    const bool bottleneck = depth == 50;
    const int *nb = depth == 18 ? (const int[4]){2, 2, 2, 2} : blocks;
    size_t total = conv_params(in_channels, width, 7) + 2 * (size_t)width;
    int cin = width;
    for (int s = 0; s < 4; s++) {
        int cout = (width << s) * (bottleneck ? 4 : 1);
        for (int j = 0; j < nb[s]; j++) {
            int stride = (s > 0 && j == 0) ? 2 : 1;
            if (bottleneck) {
                int mid = cout / 4;
                total += conv_params(cin, mid, 1) + 2 * (size_t)mid;
                total += conv_params(mid, mid, 3) + 2 * (size_t)mid;
                total += conv_params(mid, cout, 1) + 2 * (size_t)cout;
            } else {
                total += conv_params(cin, cout, 3) + 2 * (size_t)cout;
                total += conv_params(cout, cout, 3) + 2 * (size_t)cout;
            }
            if (stride != 1 || cin != cout) total += conv_params(cin, cout, 1);
            cin = cout;
        }
    }
    return total + (size_t)cin * classes + (size_t)classes;
}

static void expect_view(const struct resnet *m, const char *name, bool buffer, int ndim, int s0,
                        int s1, int s2, int s3)
{
    int i = buffer ? resnet_find_buffer(m, name) : resnet_find_param(m, name);
    if (i < 0) {
        EXPECT(i >= 0, "%s %s is missing", buffer ? "buffer" : "parameter", name);
        return;
    }
    const struct tensor_view *v = buffer ? &m->buffers[i] : &m->params[i];
    const int want[4] = {s0, s1, s2, s3};
    bool same = v->ndim == ndim;
    size_t count = 1;
    for (int d = 0; d < ndim && same; d++) {
        same = v->shape[d] == want[d];
        count *= (size_t)want[d];
    }
    EXPECT(same && v->count == count, "%s: ndim %d shape (%d, %d, %d, %d) count %zu", name, v->ndim,
           v->shape[0], v->shape[1], v->shape[2], v->shape[3], v->count);
}

/* Offsets: reverse registration order, aligned, disjoint, within the arena. */
static void check_layout(const struct resnet *m, const char *tag)
{
    bool reverse = true, aligned = true, disjoint = true;
    size_t sum = 0;
    for (int i = 0; i < m->nparams; i++) {
        const struct tensor_view *p = &m->params[i];
        sum += p->count;
        aligned &= p->offset % 16 == 0;
        if (i + 1 < m->nparams) {
            const struct tensor_view *q = &m->params[i + 1];
            reverse &= q->offset < p->offset;
            disjoint &= q->offset + q->count <= p->offset;
        }
    }
    const struct tensor_view *last = &m->params[0];
    EXPECT(reverse, "%s: parameter offsets are not in reverse registration order", tag);
    EXPECT(aligned, "%s: a parameter offset is not 16-float aligned", tag);
    EXPECT(disjoint, "%s: parameters overlap", tag);
    EXPECT(m->params[m->nparams - 1].offset == 0, "%s: the last parameter is not at offset 0", tag);
    EXPECT(last->offset + last->count <= m->param_floats &&
               m->param_floats - (last->offset + last->count) < 16,
           "%s: param_floats %zu vs end of the stem weight %zu", tag, m->param_floats,
           last->offset + last->count);
    EXPECT(sum == m->trainable, "%s: trainable %zu, sum of counts %zu", tag, m->trainable, sum);
    bool buffers_ok = m->nbuffers == 2 * m->nbn;
    size_t off = 0;
    for (int i = 0; i < m->nbuffers; i++) {
        buffers_ok &= m->buffers[i].offset == off;
        off += m->buffers[i].count;
    }
    EXPECT(buffers_ok && off == m->buffer_floats, "%s: buffer table (%d for %d BN layers)", tag,
           m->nbuffers, m->nbn);
}

static void check_init(const struct resnet *m, const char *tag)
{
    bool ok = true;
    for (int i = 0; i < m->nparams && ok; i++) {
        const struct tensor_view *p = &m->params[i];
        const float *v = m->weights + p->offset;
        double bound = 0.0, maxabs = 0.0;
        for (size_t j = 0; j < p->count; j++) maxabs = fmax(maxabs, fabs((double)v[j]));
        switch (p->role) {
        case ROLE_WEIGHT: bound = sqrt(6.0 / (p->fan_in + p->fan_out)); break;
        case ROLE_BIAS: bound = 1.0 / sqrt(p->fan_in); break;
        case ROLE_BN_WEIGHT:
            for (size_t j = 0; j < p->count; j++) ok &= v[j] == 1.0f;
            EXPECT(ok, "%s: %s is not all ones", tag, p->name);
            continue;
        default:
            ok &= maxabs == 0.0;
            EXPECT(ok, "%s: %s is not all zeros", tag, p->name);
            continue;
        }
        ok &= maxabs <= bound && maxabs > 0.5 * bound;
        EXPECT(ok, "%s: %s max |value| %g, Xavier/default bound %g", tag, p->name, maxabs, bound);
    }
    bool bufs = true;
    for (int i = 0; i < m->nbuffers; i++) {
        float want = m->buffers[i].role == ROLE_RUNNING_VAR ? 1.0f : 0.0f;
        for (size_t j = 0; j < m->buffers[i].count; j++)
            bufs &= m->buffer_data[m->buffers[i].offset + j] == want;
    }
    EXPECT(bufs, "%s: running statistics are not (mean 0, var 1)", tag);
}

static void check_structure(void)
{
    struct model_spec spec = {.depth = 18, .width = 64, .num_classes = 10, .in_channels = 1,
                              .image_size = 28, .max_batch = 2};
    struct resnet m;
    resnet_init(&m, &spec);
    resnet_init_params(&m, INIT_XAVIER, 1);
    EXPECT(m.trainable == 11178378, "ResNet-18: %zu trainable parameters, want 11178378",
           m.trainable);
    EXPECT(m.trainable == expected_count(18, 64, 10, 1), "ResNet-18: formula disagrees");
    printf("ResNet-18: %zu parameters in %d tensors, %d BN layers, %.3g GFLOP per image\n",
           m.trainable, m.nparams, m.nbn, resnet_flops_per_image(&m) * 1e-9);
    expect_view(&m, "0.0.weight", false, 4, 64, 1, 7, 7);
    expect_view(&m, "0.0.bias", false, 1, 64, 0, 0, 0);
    expect_view(&m, "0.1.weight", false, 1, 64, 0, 0, 0);
    expect_view(&m, "0.1.bias", false, 1, 64, 0, 0, 0);
    expect_view(&m, "0.1.running_mean", true, 1, 64, 0, 0, 0);
    expect_view(&m, "0.1.running_var", true, 1, 64, 0, 0, 0);
    EXPECT(resnet_find_param(&m, "0.1.running_mean") < 0, "running_mean is a parameter");
    expect_view(&m, "1.0.conv1.weight", false, 4, 64, 64, 3, 3);
    expect_view(&m, "1.0.bn1.weight", false, 1, 64, 0, 0, 0);
    expect_view(&m, "1.1.conv2.bias", false, 1, 64, 0, 0, 0);
    EXPECT(resnet_find_param(&m, "1.0.conv3.weight") < 0, "1.0.conv3.weight exists");
    EXPECT(resnet_find_param(&m, "1.1.conv3.weight") < 0, "1.1.conv3.weight exists");
    expect_view(&m, "2.0.conv1.weight", false, 4, 128, 64, 3, 3);
    expect_view(&m, "2.0.conv3.weight", false, 4, 128, 64, 1, 1);
    expect_view(&m, "2.0.conv3.bias", false, 1, 128, 0, 0, 0);
    EXPECT(resnet_find_param(&m, "2.1.conv3.weight") < 0, "2.1.conv3.weight exists");
    expect_view(&m, "3.0.conv3.weight", false, 4, 256, 128, 1, 1);
    expect_view(&m, "4.1.bn2.bias", false, 1, 512, 0, 0, 0);
    expect_view(&m, "4.1.bn2.running_var", true, 1, 512, 0, 0, 0);
    EXPECT(resnet_find_param(&m, "4.2.conv1.weight") < 0, "ResNet-18 has a third block in stage 4");
    expect_view(&m, "7.weight", false, 2, 10, 512, 0, 0);
    expect_view(&m, "7.bias", false, 1, 10, 0, 0, 0);
    EXPECT(m.nparams == 76 && m.nbn == 17, "ResNet-18: %d tensors, %d BN layers, want 76, 17",
           m.nparams, m.nbn);
    check_layout(&m, "ResNet-18");
    {
        size_t head_max = 0, stem_min = (size_t)-1;
        for (int i = 0; i < m.nparams; i++) {
            const struct tensor_view *p = &m.params[i];
            if (strncmp(p->name, "7.", 2) == 0 && p->offset + p->count > head_max)
                head_max = p->offset + p->count;
            if (strncmp(p->name, "0.", 2) == 0 && p->offset < stem_min) stem_min = p->offset;
        }
        EXPECT(head_max <= stem_min, "head ends at %zu, after the stem starts at %zu", head_max,
               stem_min);
        EXPECT(m.params[resnet_find_param(&m, "7.bias")].offset == 0, "7.bias is not at offset 0");
    }
    check_init(&m, "ResNet-18");
    resnet_free(&m);

    spec.depth = 34;
    resnet_init(&m, &spec);
    printf("ResNet-34: %zu parameters in %d tensors, %d BN layers\n", m.trainable, m.nparams,
           m.nbn);
    EXPECT(m.trainable == expected_count(34, 64, 10, 1), "ResNet-34: %zu parameters, want %zu",
           m.trainable, expected_count(34, 64, 10, 1));
    EXPECT(m.nblocks == 16 && m.nbn == 33, "ResNet-34: %d blocks, %d BN layers", m.nblocks, m.nbn);
    expect_view(&m, "1.2.conv2.weight", false, 4, 64, 64, 3, 3);
    expect_view(&m, "3.5.conv2.weight", false, 4, 256, 256, 3, 3);
    expect_view(&m, "4.0.conv3.weight", false, 4, 512, 256, 1, 1);
    EXPECT(resnet_find_param(&m, "3.6.conv1.weight") < 0, "ResNet-34 has 7 blocks in stage 3");
    expect_view(&m, "7.weight", false, 2, 10, 512, 0, 0);
    check_layout(&m, "ResNet-34");
    resnet_free(&m);

    spec.depth = 50;
    resnet_init(&m, &spec);
    printf("ResNet-50: %zu parameters in %d tensors, %d BN layers\n", m.trainable, m.nparams,
           m.nbn);
    EXPECT(m.trainable == expected_count(50, 64, 10, 1), "ResNet-50: %zu parameters, want %zu",
           m.trainable, expected_count(50, 64, 10, 1));
    EXPECT(m.nblocks == 16 && m.nbn == 49, "ResNet-50: %d blocks, %d BN layers", m.nblocks, m.nbn);
    expect_view(&m, "1.0.conv1.weight", false, 4, 64, 64, 1, 1);
    expect_view(&m, "1.0.conv2.weight", false, 4, 64, 64, 3, 3);
    expect_view(&m, "1.0.conv3.weight", false, 4, 256, 64, 1, 1);
    expect_view(&m, "1.0.bn3.weight", false, 1, 256, 0, 0, 0);
    expect_view(&m, "1.0.shortcut.weight", false, 4, 256, 64, 1, 1);
    EXPECT(resnet_find_param(&m, "1.1.shortcut.weight") < 0, "1.1 has a shortcut conv");
    expect_view(&m, "2.0.conv2.weight", false, 4, 128, 128, 3, 3);
    expect_view(&m, "2.0.shortcut.weight", false, 4, 512, 256, 1, 1);
    expect_view(&m, "4.2.bn3.weight", false, 1, 2048, 0, 0, 0);
    expect_view(&m, "7.weight", false, 2, 10, 2048, 0, 0);
    check_layout(&m, "ResNet-50");
    resnet_free(&m);
}

/* --------------------------------------------------------------- (b) gradients */

/* A change of a ReLU or max-pool decision between two forwards counts as a kink
 * crossed only when it is significant: an element clearly active (> KINK_DELTA) at one
 * end and inactive at the other, or an argmax moving between values that differ by
 * more than KINK_DELTA at either end. Rounding alone flips decisions between values
 * that close, and such a flip moves the loss by a negligible amount. */
#define KINK_DELTA 1e-5f

/* Every non-smooth decision of one forward: the ReLU outputs (stem, inside blocks,
 * block outputs) and the max-pool argmaxes. */
struct snapshot {
    float *relu;
    int32_t *argmax;
};

struct model_check {
    struct resnet m;
    int n;
    int32_t labels[16];
    size_t nrelu, nargmax, stem_plane, pool_plane;

    struct snapshot snap[4]; /* one per stencil point (enum gc_point) */

    /* The directional check moves every parameter to base + t * dir. */
    const float *base;
    const double *dir;
    double t;
};

static void snapshot_plan(struct model_check *g)
{
    const struct resnet *m = &g->m;
    const struct conv_shape *sc = &m->stem_conv.shape;
    g->stem_plane = (size_t)sc->ho * sc->wo;
    g->pool_plane = (size_t)m->stem_pool.ho * m->stem_pool.wo;
    g->nrelu = (size_t)sc->cout * g->n * g->stem_plane;
    g->nargmax = (size_t)sc->cout * g->n * g->pool_plane;
    for (int i = 0; i < m->nblocks; i++) {
        const struct block *b = &m->blocks[i];
        for (int u = 0; u + 1 < b->nunits; u++) {
            const struct conv_shape *s = &b->units[u].conv.shape;
            g->nrelu += (size_t)s->cout * g->n * s->ho * s->wo;
        }
        g->nrelu += (size_t)b->cout * g->n * b->ho * b->wo;
    }
    for (int k = 0; k < 4; k++) {
        g->snap[k].relu = xalloc(sizeof(float) * g->nrelu);
        g->snap[k].argmax = xalloc(sizeof(int32_t) * g->nargmax);
    }
}

static void snapshot_take(const struct model_check *g, struct snapshot *snap)
{
    const struct resnet *m = &g->m;
    float *out = snap->relu;
    size_t len = (size_t)m->stem_conv.shape.cout * g->n * g->stem_plane;
    memcpy(out, m->stem_h, sizeof(float) * len);
    out += len;
    for (int i = 0; i < m->nblocks; i++) {
        const struct block *b = &m->blocks[i];
        for (int u = 0; u + 1 < b->nunits; u++) {
            const struct conv_shape *s = &b->units[u].conv.shape;
            const struct bn_layer *bn = &b->units[u].bn;
            len = (size_t)s->cout * g->n * s->ho * s->wo;
            /* The model keeps only the BN input; its ReLU output is recomputed. */
            batchnorm_relu_recompute(bn->c, (size_t)g->n * s->ho * s->wo, b->units[u].a,
                                     m->weights + m->params[bn->weight].offset,
                                     m->weights + m->params[bn->bias].offset, &bn->saved, out);
            out += len;
        }
        len = (size_t)b->cout * g->n * b->ho * b->wo;
        memcpy(out, b->y, sizeof(float) * len);
        out += len;
    }
    memcpy(snap->argmax, m->stem_argmax, sizeof(int32_t) * g->nargmax);
}

static bool kink_between(const struct model_check *g, const struct snapshot *a,
                         const struct snapshot *b)
{
    for (size_t i = 0; i < g->nrelu; i++) {
        if ((a->relu[i] > KINK_DELTA && b->relu[i] == 0.0f) ||
            (b->relu[i] > KINK_DELTA && a->relu[i] == 0.0f))
            return true;
    }
    for (size_t o = 0; o < g->nargmax; o++) {
        if (a->argmax[o] == b->argmax[o]) continue;
        size_t plane = o / g->pool_plane * g->stem_plane;
        size_t ia = plane + (size_t)a->argmax[o], ib = plane + (size_t)b->argmax[o];
        if (fabsf(a->relu[ia] - a->relu[ib]) > KINK_DELTA ||
            fabsf(b->relu[ia] - b->relu[ib]) > KINK_DELTA)
            return true;
    }
    return false;
}

static double mean_loss(struct model_check *g, struct snapshot *snap)
{
    double l = resnet_forward(&g->m, g->n, g->labels, true, 1.0f / (float)g->n, NULL, NULL);
    if (snap) snapshot_take(g, snap);
    return l / g->n;
}

/* Largest change of the loss when a parameter it provably does not depend on moves. */
static double measure_noise(struct model_check *g, const char *independent)
{
    float *w = g->m.weights + g->m.params[resnet_find_param(&g->m, independent)].offset;
    const float old = w[0];
    double base = mean_loss(g, NULL), noise = 0.0;
    for (int k = -8; k <= 8; k++) {
        w[0] = old + (float)k * 1e-3f;
        noise = fmax(noise, fabs(mean_loss(g, NULL) - base));
    }
    w[0] = old;
    return noise;
}

/* The gradient checker's callbacks: the mean loss with the parameters as they are
 * (one element moved by the checker), or at base + t * dir; the kink test compares
 * the snapshots of two stencil points. */
static double param_loss(void *ctx, enum gc_point at)
{
    struct model_check *g = ctx;
    return mean_loss(g, &g->snap[at]);
}

static double direction_loss(void *ctx, enum gc_point at)
{
    struct model_check *g = ctx;
    float *w = g->m.weights;
    for (size_t i = 0; i < g->m.param_floats; i++)
        w[i] = (float)((double)g->base[i] + g->t * g->dir[i]);
    double l = mean_loss(g, &g->snap[at]);
    memcpy(w, g->base, sizeof(float) * g->m.param_floats);
    return l;
}

static bool model_kinked(void *ctx, enum gc_point a, enum gc_point b)
{
    struct model_check *g = ctx;
    return kink_between(g, &g->snap[a], &g->snap[b]);
}

/* Is this conv bias followed by a training-mode BN (so its gradient is zero)? */
static bool feeds_bn(const struct resnet *m, const struct tensor_view *p)
{
    if (p->role != ROLE_BIAS || strcmp(p->name, "7.bias") == 0) return false;
    if (ends_with(p->name, "shortcut.bias")) return false;
    if (m->spec.depth != 50 && ends_with(p->name, "conv3.bias")) return false;
    return true;
}

struct gradcheck_spec {
    const char *tag;
    int depth, width, image_size, n, max_batch, shard;
    size_t col_budget;
    int max_tensors;    /* tensors checked (spread over the network); 0 = all */
    int per_tensor;     /* elements checked per tensor */
    double eps;         /* first eps of the per-parameter differences */
    double dir_eps;     /* eps of the directional derivative */
    double max_noise;   /* the loss noise must stay below this */
    int min_directions; /* conclusive directional checks required */
};

static void run_gradcheck(const struct gradcheck_spec *gs)
{
    struct model_check g;
    struct model_spec spec = {.depth = gs->depth, .width = gs->width, .num_classes = 10,
                              .in_channels = 1, .image_size = gs->image_size,
                              .max_batch = gs->max_batch, .shard = gs->shard,
                              .col_budget_floats = gs->col_budget};
    resnet_init(&g.m, &spec);
    resnet_init_params(&g.m, INIT_XAVIER, 42);
    g.n = gs->n;
    snapshot_plan(&g);
    struct resnet *m = &g.m;
    /* BN affine parameters in general position. */
    for (int i = 0; i < m->nparams; i++) {
        const struct tensor_view *p = &m->params[i];
        for (size_t j = 0; j < p->count; j++) {
            if (p->role == ROLE_BN_WEIGHT) m->weights[p->offset + j] = (float)urand(0.5, 1.5);
            if (p->role == ROLE_BN_BIAS) m->weights[p->offset + j] = (float)urand(-0.5, 0.5);
        }
    }
    const size_t S = (size_t)gs->image_size;
    for (size_t i = 0; i < (size_t)g.n * S * S; i++) m->input[i] = (float)urand(0, 1);
    for (int i = 0; i < g.n; i++) g.labels[i] = (int32_t)urand(0, 10);

    const size_t nf = m->param_floats;
    grad_arena_zero(&m->grads);
    double loss = mean_loss(&g, NULL);
    resnet_backward(m, g.n, NULL, NULL);
    double *grads = xalloc(sizeof(double) * nf);
    float *base = xalloc(sizeof(float) * nf);
    memcpy(grads, m->grads.d, sizeof(double) * nf);
    memcpy(base, m->weights, sizeof(float) * nf);
    bool finite = true;
    for (size_t i = 0; i < nf; i++) finite &= isfinite(grads[i]);
    EXPECT(finite && isfinite(loss), "%s: non-finite loss or gradient", gs->tag);

    /* Backward accumulates: the same forward again (backward used up the first's
     * activations), then a second backward. */
    EXPECT(mean_loss(&g, NULL) == loss, "%s: a second forward changed the loss", gs->tag);
    resnet_backward(m, g.n, NULL, NULL);
    {
        double *got = xalloc(sizeof(double) * nf), *want = xalloc(sizeof(double) * nf);
        for (size_t i = 0; i < nf; i++) {
            got[i] = m->grads.d[i];
            want[i] = 2.0 * grads[i];
        }
        char name[96];
        snprintf(name, sizeof name, "%s: gradients after a second backward", gs->tag);
        expect_close(name, got, want, nf, 1e-5);
        free(got);
        free(want);
    }

    const double noise = measure_noise(&g, "0.0.bias");
    printf("%s: %zu parameters, mean loss %.5f, loss noise %.3g\n", gs->tag, m->trainable, loss,
           noise);
    EXPECT(noise < gs->max_noise, "%s: loss noise %.3g exceeds %.3g, the checks would be blunt",
           gs->tag, noise, gs->max_noise);

    /* Conv biases before BN: zero gradient up to rounding, relative to their weights. */
    double worst_bias = 0.0;
    const char *worst_bias_name = "";
    for (int i = 0; i < m->nparams; i++) {
        const struct tensor_view *p = &m->params[i];
        if (!feeds_bn(m, p)) continue;
        const struct tensor_view *wv = &m->params[i - 1]; /* the conv weight, registered first */
        double gw = 0.0, gb = 0.0;
        for (size_t j = 0; j < wv->count; j++) gw = fmax(gw, fabs(grads[wv->offset + j]));
        for (size_t j = 0; j < p->count; j++) gb = fmax(gb, fabs(grads[p->offset + j]));
        double ratio = gb / fmax(gw, 1e-3);
        if (ratio > worst_bias) {
            worst_bias = ratio;
            worst_bias_name = p->name;
        }
    }
    printf("%s: largest |grad| of a bias feeding BN: %.3g of its weight's\n", gs->tag, worst_bias);
    EXPECT(worst_bias < 1e-3, "%s: %s has gradient %.3g of its weight's, want ~0", gs->tag,
           worst_bias_name, worst_bias);

    /* per_tensor elements of every (sampled) tensor, each the largest of 5 random picks;
     * the stencil keeps off kinks (halving eps up to five times) and gets
     * |fd - g| <= 3e-2 min(|g|, |fd|) + 2 * noise * sum|c| (2 w noise / eps). */
    struct gradcheck gc = {.op = gs->tag, .loss = param_loss, .kinked = model_kinked, .ctx = &g,
                           .step = gs->eps, .tol = 3e-2, .relative = true, .noise = noise,
                           .halvings = 5};
    struct gradcheck_result total = {0};
    size_t *idx = xalloc(sizeof(size_t) * (size_t)gs->per_tensor);
    const int stride = gs->max_tensors ? (m->nparams + gs->max_tensors - 1) / gs->max_tensors : 1;
    for (int t = (int)urand(0, stride); t < m->nparams; t += stride) {
        const struct tensor_view *p = &m->params[t];
        for (int e = 0; e < gs->per_tensor; e++) {
            size_t j = (size_t)urand(0, (double)p->count);
            for (int k = 0; k < 4; k++) {
                size_t c = (size_t)urand(0, (double)p->count);
                if (fabs(grads[p->offset + c]) > fabs(grads[p->offset + j])) j = c;
            }
            idx[e] = j;
        }
        gc.tensor = p->name;
        gc.idx = idx;
        gc.nidx = (size_t)gs->per_tensor;
        struct gradcheck_result r = gradcheck_float(&gc, m->weights + p->offset, grads + p->offset,
                                                    p->count);
        gradcheck_merge(&total, &r);
    }
    printf("%s: %zu parameters checked, %zu skipped (kinks), %zu one-sided, worst |fd - g| / allowed = %.3f at %s\n",
           gs->tag, total.checked, total.skipped, total.one_sided, total.worst, total.worst_desc);
    EXPECT(total.checked >= 20 && total.skipped * 4 <= total.checked + total.skipped,
           "%s: only %zu checks were smooth (%zu skipped)", gs->tag, total.checked, total.skipped);

    /* Directional derivatives over all parameters: along the gradient (the largest
     * signal) and along random directions, as the derivative of L(base + t dir) at
     * t = 0, against g.v. The estimate is only conclusive when its noise allowance is
     * below a quarter of g.v less the 2e-2 tolerance. */
    double *dir = xalloc(sizeof(double) * nf);
    g.base = base;
    g.dir = dir;
    g.t = 0.0;
    struct gradcheck dgc = {.op = gs->tag, .loss = direction_loss, .kinked = model_kinked, .ctx = &g,
                            .step = gs->dir_eps, .tol = 2e-2, .relative = true, .noise = noise,
                            .max_noise_share = 0.25 - 2e-2, .halvings = 5, .verbose = 2};
    size_t sharp = 0;
    for (int rep = 0; rep < 4; rep++) {
        double gmax = 0.0;
        for (size_t i = 0; i < nf; i++) gmax = fmax(gmax, fabs(grads[i]));
        for (int i = 0; i < m->nparams; i++)
            for (size_t j = 0; j < m->params[i].count; j++) {
                size_t k = m->params[i].offset + j;
                dir[k] = rep == 0 ? grads[k] / gmax : urand(-1, 1);
            }
        double dot = 0.0;
        for (size_t i = 0; i < nf; i++) dot += grads[i] * dir[i];
        dgc.tensor = rep == 0 ? "along the gradient" : "along a random direction";
        sharp += gradcheck_double(&dgc, &g.t, &dot, 1).checked;
    }
    EXPECT(sharp >= (size_t)gs->min_directions, "%s: only %zu conclusive directional checks, want %d",
           gs->tag, sharp, gs->min_directions);
    free(idx);
    free(dir);
    free(grads);
    free(base);
    for (int k = 0; k < 4; k++) {
        free(g.snap[k].relu);
        free(g.snap[k].argmax);
    }
    resnet_free(m);
}

/* ------------------------------------------------------------ (c) ready hook */

static uint64_t prefix_hash(const double *a, size_t n)
{
    uint64_t h = 7;
    for (size_t i = 0; i < n; i++) {
        uint64_t bits;
        memcpy(&bits, &a[i], sizeof bits);
        h = (h ^ bits) * 0x100000001b3ull;
    }
    return h;
}

#define MAX_READY 64

struct ready_log {
    const double *grads;
    int calls;
    size_t ready[MAX_READY];
    uint64_t hash[MAX_READY];
};

static void on_ready(void *ctx, size_t ready_floats)
{
    struct ready_log *log = ctx;
    if (log->calls < MAX_READY) {
        log->ready[log->calls] = ready_floats;
        log->hash[log->calls] = prefix_hash(log->grads, ready_floats);
    }
    log->calls++;
}

static void check_hook(int width, int image_size, int n)
{
    struct model_spec spec = {.depth = 18, .width = width, .num_classes = 10, .in_channels = 1,
                              .image_size = image_size, .max_batch = n};
    struct resnet m;
    resnet_init(&m, &spec);
    resnet_init_params(&m, INIT_XAVIER, 5);
    for (size_t i = 0; i < (size_t)n * image_size * image_size; i++)
        m.input[i] = (float)urand(0, 1);
    int32_t labels[8];
    for (int i = 0; i < n; i++) labels[i] = (int32_t)urand(0, 10);
    grad_arena_zero(&m.grads);
    resnet_forward(&m, n, labels, true, 1.0f / (float)n, NULL, NULL);
    struct ready_log log = {.grads = m.grads.d};
    struct grad_ready_hook hook = {on_ready, &log};
    resnet_backward(&m, n, NULL, &hook);

    size_t end = 0;
    for (int i = 0; i < m.nparams; i++)
        if (m.params[i].offset + m.params[i].count > end)
            end = m.params[i].offset + m.params[i].count;
    EXPECT(log.calls >= 2 && log.calls <= MAX_READY, "width %d: %d ready calls", width, log.calls);
    bool monotone = true, final_ok = true;
    for (int k = 0; k < log.calls && k < MAX_READY; k++) {
        if (k > 0) monotone &= log.ready[k] >= log.ready[k - 1];
        final_ok &= log.hash[k] == prefix_hash(m.grads.d, log.ready[k]);
    }
    EXPECT(monotone, "width %d: ready_floats decreased", width);
    EXPECT(final_ok, "width %d: a reported prefix changed after it was reported", width);
    size_t last = log.ready[(log.calls < MAX_READY ? log.calls : MAX_READY) - 1];
    /* The last report covers the whole arena, alignment padding included, so the
     * last gradient bucket can start before backward returns. */
    EXPECT(last == m.param_floats, "width %d: last ready_floats %zu, param_floats %zu", width,
           last, m.param_floats);
    printf("hook (width %d): %d calls, first %zu, last %zu of %zu floats\n", width, log.calls,
           log.ready[0], last, m.param_floats);
    resnet_free(&m);
}

static void check_smoothing(void)
{
    enum { N = 3, S = 32, C = 10 };
    const double eps = 0.2;
    struct model_spec spec = {.depth = 18, .width = 4, .num_classes = C, .in_channels = 1,
                              .image_size = S, .max_batch = N, .label_smoothing = eps};
    struct resnet m;
    resnet_init(&m, &spec);
    resnet_init_params(&m, INIT_XAVIER, 11);
    for (size_t i = 0; i < (size_t)N * S * S; i++) m.input[i] = (float)urand(0, 1);
    int32_t labels[N];
    for (int i = 0; i < N; i++) labels[i] = (int32_t)urand(0, C);
    float want_d[N * C];
    double train = resnet_forward(&m, N, labels, true, 0.5f, NULL, NULL);
    double want = softmax_xent(N, C, m.logits, labels, eps, 0.5f, want_d, NULL);
    EXPECT(train == want, "smoothing: training loss %.17g, softmax_xent with %g gives %.17g",
           train, eps, want);
    EXPECT(memcmp(m.dlogits, want_d, sizeof want_d) == 0,
           "smoothing: training dlogits are not softmax_xent's with %g", eps);
    double eval = resnet_forward(&m, N, labels, false, 1.0f, NULL, NULL);
    want = softmax_xent(N, C, m.logits, labels, 0.0, 1.0f, NULL, NULL);
    EXPECT(eval == want, "smoothing: evaluation loss %.17g, plain cross-entropy %.17g", eval,
           want);
    resnet_free(&m);
}

int main(void)
{
    gemm_set_threads(1); /* small GEMMs; also makes every run identical */
    urand_seed(0x7e57ull, 9);
    check_structure();
    static const struct gradcheck_spec checks[] = {
        {"ResNet-18 tiny", 18, 4, 32, 4, 5, 3, 1, 0, 3, 1e-3, 1e-4, 2e-5, 2},
        {"ResNet-50 tiny", 50, 2, 48, 4, 4, 0, 0, 48, 1, 1e-3, 1e-4, 2e-5, 0},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) run_gradcheck(&checks[i]);
    check_hook(64, 28, 2);
    check_hook(4, 32, 3);
    check_smoothing();
    return test_summary("test_resnet");
}
