/* test_stem: the fused, chunked stem (stem.c) against the unfused layers.
 *
 * Two copies of a small ResNet-18 (width 4, 10 classes, 36x36 inputs, batch 5 of a
 * planned 6) with the same parameters, random BN affine parameters (some scales
 * negative) and the same input, one with spec.fused_stem: after a training forward
 * and backward, the loss, the pooled stem output, every parameter gradient and the
 * running statistics must agree to rounding (the sums are taken in another order),
 * and so must an evaluation forward. Chunks of 1, 2, 3 samples and the default, with
 * and without micro-shards of 2 (chunks then end at shard boundaries). */
#include "resnet.h"
#include "testutil.h"

#include <math.h>
#include <string.h>

#define N 5
#define SIZE 36

/* Largest |a - b| over the tensor, relative to its largest |b| (or 1 if smaller). */
static double rel_diff_double(const double *a, const double *b, size_t n)
{
    double d = 0, scale = 1e-30;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs(a[i] - b[i]));
        scale = fmax(scale, fabs(b[i]));
    }
    return d / fmax(scale, 1e-3);
}

static double rel_diff_float(const float *a, const float *b, size_t n)
{
    double d = 0, scale = 1e-30;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - (double)b[i]));
        scale = fmax(scale, fabs((double)b[i]));
    }
    return d / fmax(scale, 1e-3);
}

static void setup(struct resnet *m, bool fused, int chunk, int shard)
{
    const struct model_spec spec = {.depth = 18, .width = 4, .num_classes = 10, .in_channels = 1,
                                    .image_size = SIZE, .max_batch = N + 1, .shard = shard,
                                    .fused_stem = fused, .stem_chunk = chunk};
    resnet_init(m, &spec);
    resnet_init_params(m, INIT_XAVIER, 11);
    urand_seed(0x57e3ull, 3); /* the same random BN parameters and input for both copies */
    for (int i = 0; i < m->nparams; i++) {
        const struct tensor_view *p = &m->params[i];
        if (strstr(p->name, "bn") || strcmp(p->name, "0.1.weight") == 0 ||
            strcmp(p->name, "0.1.bias") == 0)
            for (size_t j = 0; j < p->count; j++)
                m->weights[p->offset + j] = (float)urand(-1.0, 1.5);
    }
    for (size_t i = 0; i < (size_t)N * SIZE * SIZE; i++) m->input[i] = (float)urand(0.0, 1.0);
    grad_arena_zero(&m->grads);
}

static void compare(int chunk, int shard)
{
    struct resnet ref, fused;
    setup(&ref, false, 0, shard);
    setup(&fused, true, chunk, shard);
    char tag[64];
    snprintf(tag, sizeof tag, "chunk %d shard %d", fused.stem.chunk, shard);
    const int32_t labels[N] = {3, 1, 4, 1, 5};
    int64_t c1 = 0, c2 = 0;
    double l1 = resnet_forward(&ref, N, labels, true, 1.0f / N, NULL, &c1);
    double l2 = resnet_forward(&fused, N, labels, true, 1.0f / N, NULL, &c2);
    EXPECT(fabs(l1 - l2) <= 1e-5 * fabs(l1), "%s: loss %.9g vs %.9g", tag, l2, l1);
    const size_t pooled = (size_t)ref.stem_conv.shape.cout * N * ref.stem_pool.ho * ref.stem_pool.wo;
    double dp = rel_diff_float(fused.stem_p, ref.stem_p, pooled);
    EXPECT(dp <= 1e-5, "%s: pooled stem output differs by %.3g", tag, dp);
    resnet_backward(&ref, N, NULL, NULL);
    resnet_backward(&fused, N, NULL, NULL);
    double worst = 0, stem_w = 0, stem_g = 0;
    const char *worst_name = "";
    for (int i = 0; i < ref.nparams; i++) {
        const struct tensor_view *p = &ref.params[i];
        double d = rel_diff_double(fused.grads.d + p->offset, ref.grads.d + p->offset, p->count);
        /* Every conv bias feeds a training BN: its true gradient is zero and both
         * hold rounding only; compare it against its weight's gradient instead. */
        size_t len = strlen(p->name);
        if ((strstr(p->name, "conv") || strncmp(p->name, "0.0.", 4) == 0) &&
            strcmp(p->name + len - 5, ".bias") == 0) {
            char wname[64];
            snprintf(wname, sizeof wname, "%.*s.weight", (int)(len - 5), p->name);
            const struct tensor_view *w = &ref.params[resnet_find_param(&ref, wname)];
            double scale = 0;
            for (size_t j = 0; j < w->count; j++) scale = fmax(scale, fabs(ref.grads.d[w->offset + j]));
            double dd = 0;
            for (size_t j = 0; j < p->count; j++)
                dd = fmax(dd, fabs(fused.grads.d[p->offset + j] - ref.grads.d[p->offset + j]));
            d = dd / scale;
        }
        if (strcmp(p->name, "0.0.weight") == 0) stem_w = d;
        if (strcmp(p->name, "0.1.weight") == 0) stem_g = d;
        if (d > worst) {
            worst = d;
            worst_name = p->name;
        }
    }
    EXPECT(worst <= 1e-5, "%s: gradient of %s differs by %.3g", tag, worst_name, worst);
    double db = rel_diff_float(fused.buffer_data, ref.buffer_data, ref.buffer_floats);
    EXPECT(db <= 1e-5, "%s: running statistics differ by %.3g", tag, db);
    double e1 = resnet_forward(&ref, N, labels, false, 1.0f, NULL, &c1);
    double e2 = resnet_forward(&fused, N, labels, false, 1.0f, NULL, &c2);
    EXPECT(fabs(e1 - e2) <= 1e-5 * fabs(e1), "%s: eval loss %.9g vs %.9g", tag, e2, e1);
    printf("  %-16s loss %.3g  pooled %.2g  gradients %.2g (%s; 0.0.weight %.2g, 0.1.weight "
           "%.2g)  running %.2g\n",
           tag, fabs(l1 - l2) / fabs(l1), dp, worst, worst_name, stem_w, stem_g, db);
    resnet_free(&ref);
    resnet_free(&fused);
}

int main(void)
{
    compare(0, 0);
    compare(1, 0);
    compare(2, 0);
    compare(3, 0);
    compare(2, 2);
    compare(4, 2);
    return test_summary("test_stem");
}
