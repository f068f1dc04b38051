/* test_float_grads: the model's float gradient arena (grad.h, what the
 * trainer uses without micro-shards) against its double gradients.
 *
 * After one backward from zero, every float gradient must have exactly the bits of
 * the double gradient rounded to float (grad.h's promise: each value is added once),
 * over the whole arena, for every kind of layer: the fused and the unfused stem,
 * im2col with all taps, dead taps and 1x1 (ResNet-50's bottlenecks), tinymap, and
 * Winograd F(2x2), F(3x3), F(4x4). A second backward must double them (backward
 * accumulates, into floats too). */
#include "resnet.h"
#include "rng.h"
#include "testutil.h"

#include <stdint.h>
#include <string.h>

struct float_case {
    const char *tag;
    int depth, width, image_size, n;
    bool winograd, fused_stem;
};

static void check_case(const struct float_case *c)
{
    struct model_spec spec = {.depth = c->depth, .width = c->width, .num_classes = 10,
                              .in_channels = 1, .image_size = c->image_size, .max_batch = c->n,
                              .winograd = c->winograd, .fused_stem = c->fused_stem};
    struct resnet m;
    resnet_init(&m, &spec);
    resnet_init_params(&m, INIT_XAVIER, 11);
    uint64_t k = 0;
    /* BN affine parameters in general position, as in test_resnet. (About 2/3 of the
     * gradients are zero at 28x28 and 32x32: dead taps on 1x1 and 2x2 maps.) */
    for (int i = 0; i < m.nparams; i++) {
        const struct tensor_view *p = &m.params[i];
        for (size_t j = 0; j < p->count; j++) {
            if (p->role == ROLE_BN_WEIGHT)
                m.weights[p->offset + j] = (float)(0.5 + rng_uniform(3, 1, k++));
            if (p->role == ROLE_BN_BIAS)
                m.weights[p->offset + j] = (float)(rng_uniform(3, 1, k++) - 0.5);
        }
    }
    const size_t pixels = (size_t)c->n * c->image_size * c->image_size;
    for (size_t i = 0; i < pixels; i++) m.input[i] = (float)rng_uniform(3, 2, i);
    int32_t labels[16];
    for (int i = 0; i < c->n; i++) labels[i] = (int32_t)(rng_uniform(3, 3, (uint64_t)i) * 10);

    const size_t nf = m.param_floats;
    grad_arena_zero(&m.grads);
    resnet_forward(&m, c->n, labels, true, 1.0f / (float)c->n, NULL, NULL);
    resnet_backward(&m, c->n, NULL, NULL);
    float *want = malloc(sizeof(float) * nf);
    for (size_t i = 0; i < nf; i++) want[i] = (float)m.grads.d[i];

    grad_arena_free(&m.grads);
    grad_arena_init(&m.grads, nf, false);
    EXPECT(m.grads.d == NULL && m.grads.f != NULL, "%s: float gradients not in use", c->tag);
    resnet_forward(&m, c->n, labels, true, 1.0f / (float)c->n, NULL, NULL);
    resnet_backward(&m, c->n, NULL, NULL);
    size_t differ = 0, first = 0, nonzero = 0;
    for (size_t i = 0; i < nf; i++) {
        if (memcmp(&want[i], &m.grads.f[i], sizeof(float)) != 0 && differ++ == 0) first = i;
        nonzero += want[i] != 0.0f;
    }
    EXPECT(differ == 0, "%s: %zu of %zu float gradients differ from the rounded doubles, first [%zu]: %.9g vs %.9g",
           c->tag, differ, nf, first, (double)m.grads.f[first], (double)want[first]);
    EXPECT(nonzero > nf / 4, "%s: only %zu of %zu gradients non-zero", c->tag, nonzero, nf);

    /* Backward accumulates: the same forward again (backward used up the first's
     * activations), then a second backward adds exactly the same floats. */
    resnet_forward(&m, c->n, labels, true, 1.0f / (float)c->n, NULL, NULL);
    resnet_backward(&m, c->n, NULL, NULL);
    size_t not_doubled = 0;
    for (size_t i = 0; i < nf; i++) not_doubled += m.grads.f[i] != 2.0f * want[i];
    EXPECT(not_doubled == 0, "%s: a second backward did not double %zu float gradients", c->tag,
           not_doubled);
    printf("%-36s %zu gradients, %zu non-zero: equal\n", c->tag, nf, nonzero);
    free(want);
    resnet_free(&m);
}

int main(void)
{
    const struct float_case cases[] = {
        /* 28x28 at width 64: Winograd F(4x4) on 7x7, tinymap on 4x4 and 2x2, dead taps
         * on 1x1; the fused stem keeps its output. */
        {"ResNet-18 w64 28x28 fused, Winograd", 18, 64, 28, 4, true, true},
        /* 64x64 and 96x96: F(4x4) and F(3x3) on the larger maps, im2col on stride 2. */
        {"ResNet-18 w64 64x64 fused, Winograd", 18, 64, 64, 2, true, true},
        {"ResNet-18 w64 96x96 (F(3x3) on 6x6, 3x3)", 18, 64, 96, 1, true, true},
        {"ResNet-18 w8 32x32 unfused, im2col", 18, 8, 32, 5, false, false},
        {"ResNet-50 w4 48x48 (1x1 convs)", 50, 4, 48, 3, true, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_case(&cases[i]);
    return test_summary("test_float_grads");
}
