/* resnet: parameter table, activation plan, forward and backward of the whole
 * network; see resnet.h for the architecture (d2l.ai, "Residual Networks"). */
#include "resnet.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "activation.h"
#include "ema.h"
#include "error.h"
#include "linear.h"
#include "loss.h"
#include "rng.h"
#include "timer.h"

#define PARAM_ALIGN_FLOATS 16 /* 64 bytes, so every tensor starts on a cache line */

/* ---- parameter table --------------------------------------------------------- */

static int add_view(struct tensor_view **table, int *count, const char *name, enum tensor_role role,
                    int ndim, const int *shape, int fan_in, int fan_out)
{
    *table = realloc(*table, sizeof **table * (size_t)(*count + 1));
    CHECK(*table, "out of memory");
    struct tensor_view *v = &(*table)[*count];
    memset(v, 0, sizeof *v);
    CHECK(strlen(name) < RESNET_NAME_MAX, "tensor name too long: %s", name);
    strcpy(v->name, name);
    v->ndim = ndim;
    v->count = 1;
    for (int i = 0; i < ndim; i++) {
        v->shape[i] = shape[i];
        v->count *= (size_t)shape[i];
    }
    v->role = role;
    v->fan_in = fan_in;
    v->fan_out = fan_out;
    return (*count)++;
}

static void add_conv(struct resnet *m, struct conv_layer *layer, const char *prefix, int cin,
                     int cout, int k, int stride, int pad, int h, int w)
{
    char name[2 * RESNET_NAME_MAX];
    int wshape[4] = {cout, cin, k, k}, bshape[1] = {cout};
    snprintf(name, sizeof name, "%s.weight", prefix);
    layer->weight = add_view(&m->params, &m->nparams, name, ROLE_WEIGHT, 4, wshape, cin * k * k,
                             cout * k * k);
    snprintf(name, sizeof name, "%s.bias", prefix);
    layer->bias = add_view(&m->params, &m->nparams, name, ROLE_BIAS, 1, bshape, cin * k * k,
                           cout * k * k);
    conv_shape_init(&layer->shape, cin, cout, k, stride, pad, m->spec.max_batch, h, w);
    layer->shape.algo = conv_plan(&layer->shape, m->spec.winograd);
    layer->prof = m->prof.nconv++;
}

static void add_bn(struct resnet *m, struct bn_layer *bn, const char *prefix, int c)
{
    char name[2 * RESNET_NAME_MAX];
    int shape[1] = {c};
    snprintf(name, sizeof name, "%s.weight", prefix);
    bn->weight = add_view(&m->params, &m->nparams, name, ROLE_BN_WEIGHT, 1, shape, 0, 0);
    snprintf(name, sizeof name, "%s.bias", prefix);
    bn->bias = add_view(&m->params, &m->nparams, name, ROLE_BN_BIAS, 1, shape, 0, 0);
    snprintf(name, sizeof name, "%s.running_mean", prefix);
    bn->running_mean = add_view(&m->buffers, &m->nbuffers, name, ROLE_RUNNING_MEAN, 1, shape, 0, 0);
    snprintf(name, sizeof name, "%s.running_var", prefix);
    bn->running_var = add_view(&m->buffers, &m->nbuffers, name, ROLE_RUNNING_VAR, 1, shape, 0, 0);
    bn->c = c;
    m->nbn++;
}

/* Offsets: parameters in reverse registration order (see resnet.h), buffers in order. */
static void assign_offsets(struct resnet *m)
{
    size_t off = 0;
    m->trainable = 0;
    for (int i = m->nparams - 1; i >= 0; i--) {
        m->params[i].offset = off;
        off += (m->params[i].count + PARAM_ALIGN_FLOATS - 1) / PARAM_ALIGN_FLOATS * PARAM_ALIGN_FLOATS;
        m->trainable += m->params[i].count;
    }
    m->param_floats = off;
    off = 0;
    for (int i = 0; i < m->nbuffers; i++) {
        m->buffers[i].offset = off;
        off += m->buffers[i].count;
    }
    m->buffer_floats = off;
}

/* ---- architecture -------------------------------------------------------------- */

struct arch {
    int blocks[4];
    bool bottleneck;
};

static struct arch arch_for_depth(int depth)
{
    switch (depth) {
    case 18: return (struct arch){{2, 2, 2, 2}, false};
    case 34: return (struct arch){{3, 4, 6, 3}, false};
    case 50: return (struct arch){{3, 4, 6, 3}, true};
    default: FAIL_INPUT("[model] depth = %d: expected one of 18, 34, 50", depth);
    }
}

static void build_block(struct resnet *m, struct block *b, const char *prefix, int cin, int cout,
                        int stride, bool bottleneck, int h, int w)
{
    char name[2 * RESNET_NAME_MAX];
    b->cin = cin;
    b->cout = cout;
    b->h = h;
    b->w = w;
    if (!bottleneck) {
        /* d2l Residual: conv1 3x3 (stride) + bn1 + relu, conv2 3x3 + bn2. */
        b->nunits = 2;
        snprintf(name, sizeof name, "%s.conv1", prefix);
        add_conv(m, &b->units[0].conv, name, cin, cout, 3, stride, 1, h, w);
        snprintf(name, sizeof name, "%s.bn1", prefix);
        add_bn(m, &b->units[0].bn, name, cout);
        int ho = b->units[0].conv.shape.ho, wo = b->units[0].conv.shape.wo;
        snprintf(name, sizeof name, "%s.conv2", prefix);
        add_conv(m, &b->units[1].conv, name, cout, cout, 3, 1, 1, ho, wo);
        snprintf(name, sizeof name, "%s.bn2", prefix);
        add_bn(m, &b->units[1].bn, name, cout);
    } else {
        /* Bottleneck: 1x1 reduce, 3x3 (stride), 1x1 expand to 4x. */
        int mid = cout / 4;
        b->nunits = 3;
        snprintf(name, sizeof name, "%s.conv1", prefix);
        add_conv(m, &b->units[0].conv, name, cin, mid, 1, 1, 0, h, w);
        snprintf(name, sizeof name, "%s.bn1", prefix);
        add_bn(m, &b->units[0].bn, name, mid);
        snprintf(name, sizeof name, "%s.conv2", prefix);
        add_conv(m, &b->units[1].conv, name, mid, mid, 3, stride, 1, h, w);
        snprintf(name, sizeof name, "%s.bn2", prefix);
        add_bn(m, &b->units[1].bn, name, mid);
        int ho = b->units[1].conv.shape.ho, wo = b->units[1].conv.shape.wo;
        snprintf(name, sizeof name, "%s.conv3", prefix);
        add_conv(m, &b->units[2].conv, name, mid, cout, 1, 1, 0, ho, wo);
        snprintf(name, sizeof name, "%s.bn3", prefix);
        add_bn(m, &b->units[2].bn, name, cout);
    }
    const struct conv_shape *last = &b->units[b->nunits - 1].conv.shape;
    b->ho = last->ho;
    b->wo = last->wo;
    b->has_shortcut = stride != 1 || cin != cout;
    if (b->has_shortcut) {
        /* The seed names the 1x1 shortcut conv3; bottlenecks already use conv3. */
        snprintf(name, sizeof name, bottleneck ? "%s.shortcut" : "%s.conv3", prefix);
        add_conv(m, &b->shortcut, name, cin, cout, 1, stride, 0, h, w);
        CHECK(b->shortcut.shape.ho == b->ho && b->shortcut.shape.wo == b->wo,
              "shortcut shape mismatch");
    }
}

/* Planning takes every buffer from one arena; a sizing pass and the real pass run the
 * same code (arena.h). */
static void *take(struct arena *a, size_t bytes) { return arena_take(a, bytes); }
static float *take_floats(struct arena *a, size_t floats) { return take(a, sizeof(float) * floats); }

/* The input and the stem's buffers: the fused stem's per-thread and per-chunk ones, or
 * the unfused layers' full-size tensors. */
static void plan_stem(struct resnet *m, struct arena *a)
{
    const size_t n = (size_t)m->spec.max_batch, S = (size_t)m->spec.image_size;
    const struct conv_shape *sc = &m->stem_conv.shape;
    m->input = take(a, sizeof(float) * (size_t)m->spec.in_channels * n * S * S);
    const size_t pooled = (size_t)sc->cout * n * m->stem_pool.ho * m->stem_pool.wo;
    if (m->spec.fused_stem) {
        const struct stem_sizes z = m->stem.per_thread;
        const size_t threads = (size_t)m->stem.threads, chunks = (size_t)m->stem.max_chunks;
        m->stem.a = take(a, sizeof(float) * threads * z.out);
        m->stem.col = take(a, sizeof(float) * threads * z.col);
        m->stem.wtap = take(a, sizeof(float) * threads * z.wtap);
        m->stem.padded = take(a, sizeof(float) * threads * z.padded);
        m->stem.gram = take(a, sizeof(double) * threads * z.gram);
        m->stem.list_at = take(a, sizeof(int) * threads * z.list);
        m->stem.list_g = take(a, sizeof(float) * threads * z.list);
        m->stem.sums = take(a, sizeof(double) * chunks * 2 * (size_t)sc->cout);
        m->stem.colsum = take(a, sizeof(double) * chunks * STEM_TAPS);
        m->stem.wg = take(a, sizeof(float) * chunks * (size_t)sc->cout * STEM_TAPS);
        m->stem.dsum = take(a, sizeof(float) * chunks * (size_t)sc->cout * STEM_TAPS);
        m->stem_p = take_floats(a, pooled);
        m->stem.argmax = take(a, sizeof(uint8_t) * pooled);
    } else {
        /* The stem's two tensors are the largest; the stem's backward works inside
         * stem_h (see resnet_backward). */
        const size_t stem_out = (size_t)sc->cout * n * sc->ho * sc->wo;
        m->stem_a = take(a, sizeof(float) * stem_out);
        if (m->spec.stem_no_pool) { /* the ReLU output is the stem's output */
            m->stem_h = m->stem_p = take_floats(a, stem_out);
            return;
        }
        m->stem_h = take(a, sizeof(float) * stem_out);
        m->stem_p = take_floats(a, pooled);
        m->stem_argmax = take(a, sizeof(int32_t) * pooled);
    }
}

/* Each block's pre-BN conv outputs and its output (the next block's input), block
 * after block; end[i]: the arena offset where block i's end. */
static void plan_blocks(struct resnet *m, struct arena *a, size_t *end)
{
    const size_t n = (size_t)m->spec.max_batch;
    const float *x = m->stem_p;
    for (int i = 0; i < m->nblocks; i++) {
        struct block *b = &m->blocks[i];
        b->x = x;
        for (int u = 0; u < b->nunits; u++) {
            const struct conv_shape *s = &b->units[u].conv.shape;
            b->units[u].a = take_floats(a, (size_t)s->cout * n * s->ho * s->wo);
        }
        b->y = take_floats(a, (size_t)b->cout * n * b->ho * b->wo);
        x = b->y;
        end[i] = a->used;
    }
}

/* Arena offsets [lo, hi). */
struct span {
    size_t lo, hi;
};

/* The lowest 64-byte-aligned offset from `from` on where `bytes` overlap none of the
 * busy spans. */
static size_t first_fit(size_t from, size_t bytes, const struct span *busy, int nbusy)
{
    size_t at = (from + 63) / 64 * 64;
    for (bool moved = true; moved;) {
        moved = false;
        for (int k = 0; k < nbusy; k++)
            if (at < busy[k].hi && busy[k].lo < at + bytes) {
                at = (busy[k].hi + 63) / 64 * 64;
                moved = true;
            }
    }
    return at;
}

/* Each block's work buffers (scratch, dt, dx) and the gradient at the last block's
 * output. While block i runs, the activations of the blocks after it are dead: in
 * forward not yet computed, in backward used up. Its buffers go there, first fit
 * from the end of its own activations, clear of the gradient at its output (the next
 * block's dx); what does not fit goes past the last block's activations, into a
 * region taken here (a few tensors of the last stage's size). Stage 1's buffers, the
 * largest, thus live in the memory of stages 2-4. */
static void plan_work_buffers(struct resnet *m, struct arena *a, const size_t *end)
{
    const size_t n = (size_t)m->spec.max_batch, top = a->used;
    size_t *scratch = xcalloc((size_t)m->nblocks * 3, sizeof *scratch), *dt = scratch + m->nblocks,
           *dx = dt + m->nblocks;
    const struct block *last = &m->blocks[m->nblocks - 1];
    struct span dy = {top, top + sizeof(float) * (size_t)last->cout * n * last->ho * last->wo};
    const size_t dy_last = dy.lo;
    size_t need = dy.hi;
    for (int i = m->nblocks - 1; i >= 0; i--) {
        const struct block *b = &m->blocks[i];
        const size_t out = sizeof(float) * (size_t)b->cout * n * b->ho * b->wo;
        const size_t in = sizeof(float) * (size_t)b->cin * n * b->h * b->w;
        struct span busy[4] = {dy};
        int nbusy = 1;
        const size_t want[3] = {in, out, out};
        size_t *at[3] = {&dx[i], &dt[i], &scratch[i]};
        for (int k = 0; k < 3; k++) {
            *at[k] = first_fit(end[i], want[k], busy, nbusy);
            busy[nbusy++] = (struct span){*at[k], *at[k] + want[k]};
            if (*at[k] + want[k] > need) need = *at[k] + want[k];
        }
        dy = busy[1]; /* this block's dx is the gradient at the previous block's output */
    }
    take(a, need - top);
    char *base = a->base;
    m->dy_last = base ? (float *)(base + dy_last) : NULL;
    for (int i = 0; i < m->nblocks; i++) {
        struct block *b = &m->blocks[i];
        b->scratch = base ? (float *)(base + scratch[i]) : NULL;
        b->dt = base ? (float *)(base + dt[i]) : NULL;
        b->dx = base ? (float *)(base + dx[i]) : NULL;
    }
    free(scratch);
}

/* The largest per-layer workspaces over every convolution of the model. */
struct conv_needs {
    size_t col, tap_weights, wino, wino_out, dw_pieces;
    int max_channels;
};

static void need_conv(struct conv_needs *nd, const struct conv_shape *s, bool own_col)
{
    if (own_col && conv2d_col_floats(s) > nd->col) nd->col = conv2d_col_floats(s);
    if (conv2d_tap_weight_floats(s) > nd->tap_weights) nd->tap_weights = conv2d_tap_weight_floats(s);
    if (conv2d_winograd_floats(s) > nd->wino) nd->wino = conv2d_winograd_floats(s);
    if (conv2d_winograd_out_floats(s) > nd->wino_out) nd->wino_out = conv2d_winograd_out_floats(s);
    /* Chunks span at most the whole batch. */
    const size_t pieces = conv2d_dw_pieces_floats(s, s->n);
    if (pieces > nd->dw_pieces) nd->dw_pieces = pieces;
    if (s->cout > nd->max_channels) nd->max_channels = s->cout;
}

static struct conv_needs conv_needs_of(const struct resnet *m)
{
    struct conv_needs nd = {0};
    /* The fused stem has its own column buffers. */
    need_conv(&nd, &m->stem_conv.shape, !m->spec.fused_stem);
    for (int i = 0; i < m->nblocks; i++) {
        const struct block *b = &m->blocks[i];
        for (int u = 0; u < b->nunits; u++) need_conv(&nd, &b->units[u].conv.shape, true);
        if (b->has_shortcut) need_conv(&nd, &b->shortcut.shape, true);
    }
    return nd;
}

/* The head's tensors, the convolution workspace and the BN statistics. */
static void plan_rest(struct resnet *m, struct arena *a)
{
    const size_t n = (size_t)m->spec.max_batch;
    const struct conv_needs nd = conv_needs_of(m);
    size_t max_weight = (size_t)m->fc_in * m->spec.num_classes;
    for (int i = 0; i < m->nparams; i++)
        if (m->params[i].count > max_weight) max_weight = m->params[i].count;
    m->pooled = take(a, sizeof(float) * (size_t)m->fc_in * n);
    m->dpooled = take(a, sizeof(float) * (size_t)m->fc_in * n);
    m->logits = take(a, sizeof(float) * n * (size_t)m->spec.num_classes);
    m->dlogits = take(a, sizeof(float) * n * (size_t)m->spec.num_classes);
    /* im2col workspace: a budget of samples per chunk, at least one sample, at most
     * the whole batch of the largest layer. 4 M floats (16 MiB): Winograd's chunks are
     * smaller still, and im2col's stride-2 layers run as fast as with 8 M. */
    size_t budget = m->spec.col_budget_floats ? m->spec.col_budget_floats : (size_t)4 << 20;
    if (budget < nd.col) budget = nd.col;
    if (budget > nd.col * n) budget = nd.col * n;
    m->ws.col = take(a, sizeof(float) * budget);
    m->ws.col_floats = budget;
    m->ws.shard = m->spec.shard;
    m->ws.align = m->spec.shard > 0 ? 0 : m->spec.align;
    m->ws.dw = take(a, sizeof(float) * max_weight);
    m->ws.wtap = take(a, sizeof(float) * nd.tap_weights);
    m->ws.wino = take(a, sizeof(float) * nd.wino);
    /* Zero from the start (the arena's pages are fresh), as winograd.h requires. */
    m->ws.wino_out = take(a, sizeof(float) * nd.wino_out);
    m->ws.wino_out_floats = nd.wino_out;
    m->ws.dw_pieces = nd.dw_pieces ? take(a, sizeof(float) * nd.dw_pieces) : NULL;
    const int maxc = nd.max_channels > m->stem_bn.c ? nd.max_channels : m->stem_bn.c;
    m->bn_work = take(a, sizeof(double) * (2 * (size_t)maxc + 1));
    for (int i = 0; i < m->nblocks; i++)
        for (int u = 0; u < m->blocks[i].nunits; u++) {
            struct bn_layer *bn = &m->blocks[i].units[u].bn;
            bn->saved.mean = take(a, sizeof(float) * (size_t)bn->c);
            bn->saved.invstd = take(a, sizeof(float) * (size_t)bn->c);
        }
    m->stem_bn.saved.mean = take(a, sizeof(float) * (size_t)m->stem_bn.c);
    m->stem_bn.saved.invstd = take(a, sizeof(float) * (size_t)m->stem_bn.c);
}

/* Lay out every activation and workspace. */
static void plan_activations(struct resnet *m, struct arena *a)
{
    size_t *end = xcalloc((size_t)m->nblocks, sizeof *end);
    plan_stem(m, a);
    plan_blocks(m, a, end);
    plan_work_buffers(m, a, end);
    plan_rest(m, a);
    free(end);
}

void resnet_init(struct resnet *m, const struct model_spec *spec)
{
    memset(m, 0, sizeof *m);
    m->spec = *spec;
    CHECK(spec->max_batch > 0 && spec->in_channels > 0 && spec->num_classes > 1 && spec->width > 0,
          "bad model spec");
    if (spec->image_size < 1 || spec->image_size > 4096)
        FAIL_INPUT("image size %d: expected 1..4096", spec->image_size);
    struct arch arch = arch_for_depth(spec->depth);

    /* Stem (b1 in the seed): Conv2d(in, width, 7, 2, 3), BN, ReLU, MaxPool2d(3, 2, 1). */
    add_conv(m, &m->stem_conv, "0.0", spec->in_channels, spec->width, 7, 2, 3, spec->image_size,
             spec->image_size);
    add_bn(m, &m->stem_bn, "0.1", spec->width);
    maxpool_shape_init(&m->stem_pool, 3, 2, 1, m->stem_conv.shape.ho, m->stem_conv.shape.wo);
    CHECK(!spec->fused_stem || spec->in_channels == 1, "the fused stem needs one input channel");
    /* The fused stem pools; without the pool the stem runs as separate layers. */
    if (spec->stem_no_pool) m->spec.fused_stem = false;
    spec = &m->spec;
    if (spec->fused_stem)
        stem_plan(&m->stem, &m->stem_conv.shape, &m->stem_pool,
                  spec->stem_chunk > 0 ? spec->stem_chunk : stem_chunk_samples(&m->stem_conv.shape),
                  omp_get_max_threads(), spec->shard > 0 ? spec->shard : spec->align);

    /* Stages b2..b5: the first block of stages 2-4 halves the size (stride 2). */
    m->nblocks = arch.blocks[0] + arch.blocks[1] + arch.blocks[2] + arch.blocks[3];
    m->blocks = xcalloc((size_t)m->nblocks, sizeof *m->blocks);
    int h = spec->stem_no_pool ? m->stem_conv.shape.ho : m->stem_pool.ho;
    int w = spec->stem_no_pool ? m->stem_conv.shape.wo : m->stem_pool.wo, cin = spec->width, bi = 0;
    for (int s = 0; s < 4; s++) {
        int cout = (spec->width << s) * (arch.bottleneck ? 4 : 1);
        for (int j = 0; j < arch.blocks[s]; j++, bi++) {
            char prefix[RESNET_NAME_MAX];
            snprintf(prefix, sizeof prefix, "%d.%d", s + 1, j);
            int stride = (s > 0 && j == 0) ? 2 : 1;
            build_block(m, &m->blocks[bi], prefix, cin, cout, stride, arch.bottleneck, h, w);
            h = m->blocks[bi].ho;
            w = m->blocks[bi].wo;
            cin = cout;
        }
    }

    /* Head: AdaptiveAvgPool2d(1), Flatten, Linear(cin, classes) at index 7. */
    m->fc_in = cin;
    int wshape[2] = {spec->num_classes, cin}, bshape[1] = {spec->num_classes};
    m->fc_weight = add_view(&m->params, &m->nparams, "7.weight", ROLE_WEIGHT, 2, wshape, cin,
                            spec->num_classes);
    m->fc_bias = add_view(&m->params, &m->nparams, "7.bias", ROLE_BIAS, 1, bshape, cin,
                          spec->num_classes);
    assign_offsets(m);

    m->weights = xcalloc(m->param_floats, sizeof(float));
    grad_arena_init(&m->grads, m->param_floats, !spec->float_grads);
    if (spec->ema) {
        m->ema = xcalloc(m->param_floats, sizeof(float));
        m->ema_buffers = xcalloc(m->buffer_floats ? m->buffer_floats : 1, sizeof(float));
    }
    m->momentum = zeroed_pages(sizeof(float) * m->param_floats);
    m->buffer_data = xcalloc(m->buffer_floats ? m->buffer_floats : 1, sizeof(float));

    m->prof.conv = xcalloc((size_t)m->prof.nconv, sizeof *m->prof.conv);
    arena_begin_sizing(&m->arena);
    plan_activations(m, &m->arena);
    arena_allocate(&m->arena);
    plan_activations(m, &m->arena);
}

void resnet_free(struct resnet *m)
{
    free(m->params);
    free(m->buffers);
    free(m->blocks);
    free(m->weights);
    grad_arena_free(&m->grads);
    free(m->ema);
    free(m->ema_buffers);
    free_pages(m->momentum, sizeof(float) * m->param_floats);
    free(m->buffer_data);
    arena_free(&m->arena);
    free(m->prof.conv);
    memset(m, 0, sizeof *m);
}

/* ---- initialization ------------------------------------------------------------ */

void resnet_init_params(struct resnet *m, enum init_scheme scheme, uint64_t seed)
{
    for (int i = 0; i < m->nparams; i++) {
        const struct tensor_view *p = &m->params[i];
        float *v = m->weights + p->offset;
        const uint64_t stream = 0x494e4954ull << 16 | (uint64_t)i; /* "INIT" + index */
        double bound = 0.0;
        bool uniform = true;
        switch (p->role) {
        case ROLE_WEIGHT:
            if (scheme == INIT_XAVIER) {
                bound = sqrt(6.0 / (p->fan_in + p->fan_out)); /* xavier_uniform_ */
            } else if (p->ndim == 4) {
                bound = sqrt(2.0 / p->fan_out); /* kaiming_normal_(fan_out, relu): std */
                uniform = false;
            } else {
                bound = 1.0 / sqrt(p->fan_in); /* nn.Linear's default */
            }
            break;
        case ROLE_BIAS: bound = 1.0 / sqrt(p->fan_in); break; /* PyTorch default bias init */
        case ROLE_BN_WEIGHT:
            for (size_t j = 0; j < p->count; j++) v[j] = 1.0f;
            continue;
        default:
            for (size_t j = 0; j < p->count; j++) v[j] = 0.0f;
            continue;
        }
        for (size_t j = 0; j < p->count; j++) {
            if (uniform) {
                v[j] = (float)((2.0 * rng_uniform(seed, stream, j) - 1.0) * bound);
            } else { /* Box-Muller from two independent uniforms */
                double u1 = 1.0 - rng_uniform(seed, stream, 2 * j);
                double u2 = rng_uniform(seed, stream, 2 * j + 1);
                v[j] = (float)(bound * sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2));
            }
        }
    }
    for (int i = 0; i < m->nbuffers; i++) {
        const struct tensor_view *b = &m->buffers[i];
        float value = b->role == ROLE_RUNNING_VAR ? 1.0f : 0.0f;
        for (size_t j = 0; j < b->count; j++) m->buffer_data[b->offset + j] = value;
    }
    m->num_batches_tracked = 0;
    /* Only the non-zero floats are written: a run without momentum never writes its
     * buffer, so its pages (45 MB for ResNet-18) are never allocated. */
    for (size_t i = 0; i < m->param_floats; i++)
        if (m->momentum[i] != 0.0f) m->momentum[i] = 0.0f;
}

/* ---- forward --------------------------------------------------------------------- */

#define PARAM(m, idx) ((m)->weights + (m)->params[idx].offset)
#define GRAD(m, idx) grad_arena_at(&(m)->grads, (m)->params[idx].offset)
#define BUFFER(m, idx) ((m)->buffer_data + (m)->buffers[idx].offset)


static double conv_macs(const struct conv_shape *s);

/* The block of samples no chunk crosses (conv.h): a micro-shard, or the alignment. */
static int chunk_block(const struct resnet *m) { return m->ws.shard > 0 ? m->ws.shard : m->ws.align; }

static void conv_fwd(struct resnet *m, const struct conv_layer *l, int n, const float *x, float *y)
{
    struct conv_shape s = l->shape;
    s.n = n;
    double t0 = m->prof.enabled ? timer_now() : 0.0;
    conv2d_forward(&s, x, PARAM(m, l->weight), PARAM(m, l->bias), y, &m->ws);
    if (m->prof.enabled) {
        m->prof.conv[l->prof].fwd += timer_now() - t0;
        m->prof.conv[l->prof].macs += conv_macs(&l->shape) * n;
    }
}

static void bn_fwd(struct resnet *m, struct bn_layer *bn, size_t per_channel, const float *x,
                   float *y, bool train, const struct reducer *red)
{
    double t0 = m->prof.enabled ? timer_now() : 0.0;
    if (train)
        batchnorm_forward_train(bn->c, per_channel, x, PARAM(m, bn->weight), PARAM(m, bn->bias), y,
                                &bn->saved, BUFFER(m, bn->running_mean),
                                BUFFER(m, bn->running_var), red, m->bn_work);
    else
        batchnorm_forward_eval(bn->c, per_channel, x, PARAM(m, bn->weight), PARAM(m, bn->bias),
                               BUFFER(m, bn->running_mean), BUFFER(m, bn->running_var), y);
    if (m->prof.enabled) m->prof.fwd[PROF_BN] += timer_now() - t0;
}

static struct stem_params stem_params_of(struct resnet *m)
{
    return (struct stem_params){
        .w = PARAM(m, m->stem_conv.weight), .b = PARAM(m, m->stem_conv.bias),
        .gamma = PARAM(m, m->stem_bn.weight), .beta = PARAM(m, m->stem_bn.bias),
        .running_mean = BUFFER(m, m->stem_bn.running_mean),
        .running_var = BUFFER(m, m->stem_bn.running_var), .saved = &m->stem_bn.saved,
        .dw = GRAD(m, m->stem_conv.weight), /* no bias gradient: BN follows (see conv_bwd) */
        .dgamma = GRAD(m, m->stem_bn.weight), .dbeta = GRAD(m, m->stem_bn.bias)};
}

double resnet_forward(struct resnet *m, int n, const int32_t *labels, bool train,
                      float loss_scale, const struct reducer *red, int64_t *correct)
{
    CHECK(n >= 0 && n <= m->spec.max_batch, "batch %d exceeds the planned %d", n,
          m->spec.max_batch);
    const struct conv_shape *sc = &m->stem_conv.shape;
    size_t stem_pc = (size_t)n * sc->ho * sc->wo;
    if (m->spec.fused_stem) {
        double t0 = m->prof.enabled ? timer_now() : 0.0;
        const struct stem_params sp = stem_params_of(m);
        stem_forward(&m->stem, &sp, n, m->input, train, m->stem_p, red, m->bn_work);
        if (m->prof.enabled) {
            m->prof.conv[m->stem_conv.prof].fwd += timer_now() - t0;
            m->prof.conv[m->stem_conv.prof].macs += conv_macs(sc) * n;
        }
    } else {
        conv_fwd(m, &m->stem_conv, n, m->input, m->stem_a);
        bn_fwd(m, &m->stem_bn, stem_pc, m->stem_a, m->stem_h, train, red);
        TIMED(m->prof.enabled, m->prof.fwd[PROF_RELU],
              relu_forward((size_t)sc->cout * stem_pc, m->stem_h));
        if (!m->spec.stem_no_pool)
            TIMED(m->prof.enabled, m->prof.fwd[PROF_POOL],
                  maxpool_forward(&m->stem_pool, (size_t)sc->cout * n, m->stem_h, m->stem_p,
                                  m->stem_argmax));
    }

    for (int i = 0; i < m->nblocks; i++) {
        struct block *b = &m->blocks[i];
        const float *in = b->x;
        for (int u = 0; u < b->nunits; u++) {
            struct block_unit *un = &b->units[u];
            const struct conv_shape *s = &un->conv.shape;
            size_t pc = (size_t)n * s->ho * s->wo;
            bool last = u + 1 == b->nunits;
            conv_fwd(m, &un->conv, n, in, un->a);
            bn_fwd(m, &un->bn, pc, un->a, last ? b->y : b->scratch, train, red);
            if (!last) TIMED(m->prof.enabled, m->prof.fwd[PROF_RELU], relu_forward((size_t)s->cout * pc, b->scratch));
            in = b->scratch;
        }
        const float *shortcut = b->x;
        if (b->has_shortcut) {
            conv_fwd(m, &b->shortcut, n, b->x, b->scratch);
            shortcut = b->scratch;
        }
        TIMED(m->prof.enabled, m->prof.fwd[PROF_RELU],
                 add_relu_forward((size_t)b->cout * n * b->ho * b->wo, b->y, shortcut, b->y));
    }
    if (train) m->num_batches_tracked++;
    m->backward_ready = train;

    const struct block *last = &m->blocks[m->nblocks - 1];
    double t0 = m->prof.enabled ? timer_now() : 0.0;
    avgpool_forward((size_t)last->cout * n, last->ho * last->wo, last->y, m->pooled);
    linear_forward(n, m->fc_in, m->spec.num_classes, m->pooled, PARAM(m, m->fc_weight),
                   PARAM(m, m->fc_bias), m->logits, chunk_block(m));
    double loss = labels ? softmax_xent(n, m->spec.num_classes, m->logits, labels,
                                        train ? m->spec.label_smoothing : 0.0, loss_scale,
                                        train ? m->dlogits : NULL, correct)
                         : 0.0;
    if (m->prof.enabled) m->prof.fwd[PROF_HEAD] += timer_now() - t0;
    return loss;
}

/* ---- backward -------------------------------------------------------------------- */

/* A convolution followed by batch-norm gets no bias gradient: BN subtracts the batch
 * mean, so the bias changes nothing and its true gradient is exactly zero. What
 * backward would sum there is rounding noise (relative differences of 1e-3 to 3e-2
 * between rank counts after one step, docs/DESIGN.md "Numerics"), so the bias is left
 * to weight decay alone. */
static void conv_bwd(struct resnet *m, const struct conv_layer *l, int n, const float *x,
                     const float *dy, float *dx, bool accumulate, bool before_bn)
{
    struct conv_shape s = l->shape;
    s.n = n;
    double t0 = m->prof.enabled ? timer_now() : 0.0;
    conv2d_backward(&s, x, PARAM(m, l->weight), dy, GRAD(m, l->weight),
                    before_bn ? grad_none() : GRAD(m, l->bias), dx, accumulate, &m->ws);
    if (m->prof.enabled) {
        m->prof.conv[l->prof].bwd += timer_now() - t0;
        m->prof.conv[l->prof].input_grad = dx != NULL;
    }
}

static void bn_bwd(struct resnet *m, const struct bn_layer *bn, size_t per_channel, const float *x,
                   float *dy_dx, const struct reducer *red)
{
    TIMED(m->prof.enabled, m->prof.bwd[PROF_BN],
             batchnorm_backward(bn->c, per_channel, x, dy_dx, PARAM(m, bn->weight), &bn->saved,
                                dy_dx, GRAD(m, bn->weight), GRAD(m, bn->bias), red, m->bn_work));
}

static void report_ready(const struct resnet *m, int first_param, const struct grad_ready_hook *hook)
{
    /* Layers' parameters are laid out in reverse, so a layer's first registered
     * parameter is its highest one: everything below its end is final, including the
     * alignment padding up to the next tensor (or the end of the arena). */
    if (hook && hook->ready)
        hook->ready(hook->ctx, first_param == 0 ? m->param_floats : m->params[first_param - 1].offset);
}

void resnet_backward(struct resnet *m, int n, const struct reducer *red,
                     const struct grad_ready_hook *hook)
{
    CHECK(m->backward_ready, "resnet_backward needs a training forward since the last backward "
                             "(backward uses up the activations)");
    m->backward_ready = false;
    TIMED(m->prof.enabled, m->prof.bwd[PROF_HEAD],
             linear_backward(n, m->fc_in, m->spec.num_classes, m->pooled, PARAM(m, m->fc_weight),
                             m->dlogits, GRAD(m, m->fc_weight), GRAD(m, m->fc_bias), m->dpooled,
                             m->ws.shard, chunk_block(m), m->ws.dw));
    report_ready(m, m->fc_weight, hook);

    const struct block *lastb = &m->blocks[m->nblocks - 1];
    /* dy: the gradient at the block's output, the later block's dx (plan_work_buffers). */
    float *dy = m->dy_last;
    TIMED(m->prof.enabled, m->prof.bwd[PROF_POOL], avgpool_backward((size_t)lastb->cout * n, lastb->ho * lastb->wo,
                                                 m->dpooled, dy));
    for (int i = m->nblocks - 1; i >= 0; i--) {
        struct block *b = &m->blocks[i];
        float *dx = b->dx;
        size_t out = (size_t)b->cout * n * b->ho * b->wo;
        TIMED(m->prof.enabled, m->prof.bwd[PROF_RELU], relu_backward(out, b->y, dy));
        if (b->has_shortcut)
            conv_bwd(m, &b->shortcut, n, b->x, dy, dx, false, false);
        else
            memcpy(dx, dy, sizeof(float) * out);
        float *g = dy, *o = b->dt;
        for (int u = b->nunits - 1; u >= 0; u--) {
            struct block_unit *un = &b->units[u];
            const struct conv_shape *s = &un->conv.shape;
            bn_bwd(m, &un->bn, (size_t)n * s->ho * s->wo, un->a, g, red);
            if (u == 0) {
                conv_bwd(m, &un->conv, n, b->x, g, dx, true, true);
            } else {
                /* The previous unit's BN + ReLU output, as forward computed it. */
                const struct block_unit *prev = &b->units[u - 1];
                float *h_prev = b->scratch;
                TIMED(m->prof.enabled, m->prof.bwd[PROF_BN],
                         batchnorm_relu_recompute(prev->bn.c, (size_t)n * s->h * s->w, prev->a,
                                                  PARAM(m, prev->bn.weight), PARAM(m, prev->bn.bias),
                                                  &prev->bn.saved, h_prev));
                conv_bwd(m, &un->conv, n, h_prev, g, o, false, true);
                TIMED(m->prof.enabled, m->prof.bwd[PROF_RELU], relu_backward((size_t)s->cin * n * s->h * s->w, h_prev, o));
                float *tmp = g;
                g = o;
                o = tmp;
            }
        }
        report_ready(m, b->units[0].conv.weight, hook);
        dy = dx;
    }

    /* Stem: max-pool, ReLU, BN, conv (no input gradient needed). The forward output
     * stem_h is not needed any more (max-pool backward uses the argmax, the ReLU mask is
     * recomputed from stem_a), so its memory holds the gradient: no scratch buffer has
     * to be as large as the stem's output. */
    const struct conv_shape *sc = &m->stem_conv.shape;
    size_t stem_pc = (size_t)n * sc->ho * sc->wo;
    if (m->spec.fused_stem) {
        double t0 = m->prof.enabled ? timer_now() : 0.0;
        const struct stem_params sp = stem_params_of(m);
        stem_backward(&m->stem, &sp, n, m->input, dy, red, m->bn_work);
        if (m->prof.enabled) m->prof.conv[m->stem_conv.prof].bwd += timer_now() - t0;
    } else {
        /* Without the pool the gradient at the stem's output is the ReLU's. */
        float *dh = m->spec.stem_no_pool ? dy : m->stem_h;
        if (!m->spec.stem_no_pool)
            TIMED(m->prof.enabled, m->prof.bwd[PROF_POOL],
                  maxpool_backward(&m->stem_pool, (size_t)sc->cout * n, dy,
                                   m->stem_argmax, dh));
        TIMED(m->prof.enabled, m->prof.bwd[PROF_RELU],
                 batchnorm_relu_mask(sc->cout, stem_pc, m->stem_a, PARAM(m, m->stem_bn.weight),
                                     PARAM(m, m->stem_bn.bias), &m->stem_bn.saved, dh));
        bn_bwd(m, &m->stem_bn, stem_pc, m->stem_a, dh, red);
        conv_bwd(m, &m->stem_conv, n, m->input, dh, NULL, false, true);
    }
    report_ready(m, m->stem_conv.weight, hook);
}

/* ---- the weight average ----------------------------------------------------------- */

void resnet_ema_reset(struct resnet *m)
{
    if (!m->ema) return;
    memcpy(m->ema, m->weights, sizeof(float) * m->param_floats);
    memcpy(m->ema_buffers, m->buffer_data, sizeof(float) * m->buffer_floats);
}

void resnet_ema_update(struct resnet *m, double decay, int64_t update)
{
    if (!m->ema) return;
    const float d = (float)ema_decay_at(decay, update);
    ema_update(m->ema, m->weights, m->param_floats, d);
    ema_update(m->ema_buffers, m->buffer_data, m->buffer_floats, d);
}

void resnet_ema_swap(struct resnet *m)
{
    if (!m->ema) return;
    float *w = m->weights, *b = m->buffer_data;
    m->weights = m->ema;
    m->buffer_data = m->ema_buffers;
    m->ema = w;
    m->ema_buffers = b;
}

/* ---- lookups and accounting ---------------------------------------------------- */

static int find_view(const struct tensor_view *t, int count, const char *name)
{
    for (int i = 0; i < count; i++)
        if (strcmp(t[i].name, name) == 0) return i;
    return -1;
}

int resnet_find_param(const struct resnet *m, const char *name)
{
    return find_view(m->params, m->nparams, name);
}

int resnet_find_buffer(const struct resnet *m, const char *name)
{
    return find_view(m->buffers, m->nbuffers, name);
}

static double conv_macs(const struct conv_shape *s)
{
    return (double)s->cout * s->cin * s->k * s->k * s->ho * s->wo;
}

double resnet_flops_per_image(const struct resnet *m)
{
    /* Forward multiply-adds; backward costs twice that (weight and input gradients)
     * except for the stem, which needs no input gradient. */
    double fwd = conv_macs(&m->stem_conv.shape), bwd = conv_macs(&m->stem_conv.shape);
    for (int i = 0; i < m->nblocks; i++) {
        const struct block *b = &m->blocks[i];
        for (int u = 0; u < b->nunits; u++) {
            fwd += conv_macs(&b->units[u].conv.shape);
            bwd += 2 * conv_macs(&b->units[u].conv.shape);
        }
        if (b->has_shortcut) {
            fwd += conv_macs(&b->shortcut.shape);
            bwd += 2 * conv_macs(&b->shortcut.shape);
        }
    }
    fwd += (double)m->fc_in * m->spec.num_classes;
    bwd += 2.0 * m->fc_in * m->spec.num_classes;
    return 2.0 * (fwd + bwd);
}

/* ---- profile ---------------------------------------------------------------------- */

static void name_convs(struct resnet *m)
{
    struct conv_profile *c = m->prof.conv;
    c[m->stem_conv.prof].name = m->params[m->stem_conv.weight].name;
    for (int i = 0; i < m->nblocks; i++) {
        const struct block *b = &m->blocks[i];
        for (int u = 0; u < b->nunits; u++)
            c[b->units[u].conv.prof].name = m->params[b->units[u].conv.weight].name;
        if (b->has_shortcut) c[b->shortcut.prof].name = m->params[b->shortcut.weight].name;
    }
}

void resnet_profile_enable(struct resnet *m, bool on)
{
    m->prof.enabled = on;
    m->ws.timing = on ? &m->prof.parts : NULL;
    name_convs(m);
}
