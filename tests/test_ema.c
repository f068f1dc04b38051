/* test_ema: the weight average's arithmetic (ema.c) against a double reference, its
 * decay warm-up, and the model's average (resnet_ema_*): it starts at the weights, an
 * update of equal weights leaves it, swap exchanges it with the weights and back. */
#include "ema.h"
#include "resnet.h"
#include "testutil.h"

#include <string.h>

static void check_decay(void)
{
    /* min(decay, (1 + k) / (10 + k)): 2/11 at the first update, the decay later. */
    EXPECT(fabs(ema_decay_at(0.999, 1) - 2.0 / 11.0) < 1e-15, "d_1 = %.17g", ema_decay_at(0.999, 1));
    EXPECT(fabs(ema_decay_at(0.999, 100) - 101.0 / 110.0) < 1e-15, "d_100");
    EXPECT(ema_decay_at(0.9, 1000000) == 0.9, "d_k capped at the decay");
    for (int64_t k = 1; k < 1000; k++)
        EXPECT(ema_decay_at(0.99, k + 1) >= ema_decay_at(0.99, k), "d_k falls at %lld", (long long)k);
}

static void check_update(void)
{
    enum { N = 1000 };
    float ema[N], w[N];
    double ref[N];
    urand_seed(7, 1);
    for (int i = 0; i < N; i++) ref[i] = ema[i] = (float)urand(-1, 1);
    for (int k = 1; k <= 50; k++) {
        const float d = (float)ema_decay_at(0.95, k);
        for (int i = 0; i < N; i++) w[i] = (float)urand(-1, 1);
        ema_update(ema, w, N, d);
        for (int i = 0; i < N; i++) ref[i] = (double)d * ref[i] + (1.0 - (double)d) * (double)w[i];
    }
    double worst = 0;
    for (int i = 0; i < N; i++) worst = fmax(worst, fabs((double)ema[i] - ref[i]));
    EXPECT(worst < 1e-5, "50 updates: float average off the double one by %.3g", worst);
    for (int i = 0; i < N; i++) w[i] = ema[i];
    ema_update(ema, w, N, 0.5f);
    EXPECT(memcmp(ema, w, sizeof ema) == 0, "averaging with equal weights changed the average");
}

static void check_model(void)
{
    struct model_spec spec = {.depth = 18, .width = 4, .num_classes = 10, .in_channels = 1,
                              .image_size = 28, .max_batch = 2, .ema = true};
    struct resnet m;
    resnet_init(&m, &spec);
    resnet_init_params(&m, INIT_XAVIER, 3);
    resnet_ema_reset(&m);
    EXPECT(memcmp(m.ema, m.weights, sizeof(float) * m.param_floats) == 0, "reset: average != weights");
    float *before = xalloc(sizeof(float) * m.param_floats);
    memcpy(before, m.weights, sizeof(float) * m.param_floats);
    for (size_t i = 0; i < m.param_floats; i++) m.weights[i] += 1.0f;
    resnet_ema_update(&m, 0.9, 1000); /* d = 0.9 */
    double worst = 0;
    for (size_t i = 0; i < m.param_floats; i++)
        worst = fmax(worst, fabs((double)m.ema[i] - ((double)before[i] + 0.1)));
    EXPECT(worst < 1e-6, "one update of +1 moved the average by 0.1 +- %.3g", worst);
    float *w = m.weights, *a = m.ema;
    resnet_ema_swap(&m);
    EXPECT(m.weights == a && m.ema == w, "swap did not exchange the arenas");
    resnet_ema_swap(&m);
    EXPECT(m.weights == w && m.ema == a, "a second swap did not restore them");
    free(before);
    resnet_free(&m);
}

int main(void)
{
    check_decay();
    check_update();
    check_model();
    return test_summary("test_ema");
}
