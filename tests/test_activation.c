/* test_activation: relu_forward (in place), add_relu_forward (also with y aliasing
 * a) and relu_backward (mask from the ReLU output, in place) against direct
 * definitions, on inputs kept at least 0.05 away from 0 so the kink is never hit,
 * plus exact zeros: relu(0) = 0 and its gradient is 0, as in PyTorch.
 *
 * Then the backward against the gradient checker for L = sum(relu(x) * r) and
 * L = sum(relu(a + b) * r) through the forwards themselves, on inputs that include
 * 0, -0 and values closer to 0 than the step: with the ReLU mask as the kink test,
 * every element must be checked (none skipped), those next to 0 by a one-sided
 * stencil on the side where the mask stays as it is at x. */
#include "activation.h"
#include "testutil.h"

#include <string.h>

#define N 257
#define NEAR 6 /* inputs closer to 0 than the step, at the start of the arrays */

/* Uniform in +-[0.05, 3), either sign. */
static float away_from_zero(void)
{
    double u = urand(0, 1), mag = urand(0.05, 3.0);
    return (float)(u < 0.5 ? -mag : mag);
}

/* L = sum(relu(a + b) * r) (b NULL: relu(a)), with the ReLU mask of every stencil
 * point kept for the kink test. */
struct relu_loss {
    const float *a, *b;
    const double *r;
    float y[N];
    bool mask[4][N];
};

static double relu_loss(void *ctx, enum gc_point at)
{
    struct relu_loss *l = ctx;
    if (l->b) {
        add_relu_forward(N, l->a, l->b, l->y);
    } else {
        memcpy(l->y, l->a, sizeof l->y);
        relu_forward(N, l->y);
    }
    double sum = 0.0;
    for (int i = 0; i < N; i++) {
        sum += (double)l->y[i] * l->r[i];
        l->mask[at][i] = l->y[i] > 0.0f;
    }
    return sum;
}

static bool relu_kinked(void *ctx, enum gc_point p, enum gc_point q)
{
    struct relu_loss *l = ctx;
    return memcmp(l->mask[p], l->mask[q], sizeof l->mask[p]) != 0;
}

/* relu_backward as the gradient of L with respect to each of the given inputs. */
static void check_gradient(const char *op, float *a, float *b)
{
    double r[N], grad[N];
    float g[N];
    for (int i = 0; i < N; i++) {
        g[i] = away_from_zero();
        r[i] = (double)g[i];
    }
    struct relu_loss l = {.a = a, .b = b, .r = r};
    relu_loss(&l, GC_BASE);
    relu_backward(N, l.y, g);
    for (int i = 0; i < N; i++) grad[i] = (double)g[i];
    /* relu(x) is exact; a + b is rounded to float (|a + b| < 8: by up to 2^-22), which
     * moves L by up to |r| 2^-22 < 3 * 2^-22. */
    struct gradcheck gc = {.op = op, .loss = relu_loss, .kinked = relu_kinked, .ctx = &l,
                           .step = 0.01, .tol = 1e-9, .noise = b ? 3 * 0x1p-22 : 0.0,
                           .halvings = 5};
    for (int k = 0; k < (b ? 2 : 1); k++) {
        gc.tensor = k ? "b" : "a";
        struct gradcheck_result res = gradcheck_float(&gc, k ? b : a, grad, N);
        EXPECT(res.checked == N && res.skipped == 0 && res.one_sided == NEAR,
               "%s d/d%s: %zu checked, %zu skipped, %zu one-sided; want %d, 0, %d", op, gc.tensor,
               res.checked, res.skipped, res.one_sided, N, NEAR);
    }
}

int main(void)
{
    urand_seed(0xac7ull, 4);
    float x[N], y[N], a[N], b[N], dy[N], g[N];
    double got[N], want[N];

    for (int i = 0; i < N; i++) x[i] = away_from_zero();
    memcpy(y, x, sizeof x);
    relu_forward(N, y);
    for (int i = 0; i < N; i++) {
        got[i] = (double)y[i];
        want[i] = x[i] > 0.0f ? (double)x[i] : 0.0;
    }
    expect_close("relu_forward", got, want, N, 0.0);

    for (int i = 0; i < N; i++) {
        a[i] = away_from_zero();
        b[i] = away_from_zero();
        if (fabsf(a[i] + b[i]) < 0.05f) b[i] = -b[i]; /* keep the sum away from 0 */
    }
    add_relu_forward(N, a, b, y);
    for (int i = 0; i < N; i++) {
        got[i] = (double)y[i];
        double s = (double)(a[i] + b[i]);
        want[i] = s > 0.0 ? s : 0.0;
    }
    expect_close("add_relu_forward", got, want, N, 0.0);
    float alias[N];
    memcpy(alias, a, sizeof a);
    add_relu_forward(N, alias, b, alias);
    for (int i = 0; i < N; i++) got[i] = (double)alias[i];
    expect_close("add_relu_forward (y aliases a)", got, want, N, 0.0);

    /* Backward through the ReLU output of add_relu. */
    for (int i = 0; i < N; i++) dy[i] = g[i] = away_from_zero();
    relu_backward(N, y, g);
    for (int i = 0; i < N; i++) {
        got[i] = (double)g[i];
        want[i] = (double)(a[i] + b[i]) > 0.0 ? (double)dy[i] : 0.0;
    }
    expect_close("relu_backward", got, want, N, 0.0);

    float z[3] = {0.0f, -0.0f, 1.0f}, dz[3] = {2.0f, 3.0f, 4.0f};
    relu_forward(3, z);
    relu_backward(3, z, dz);
    EXPECT(z[0] == 0.0f && z[1] == 0.0f && z[2] == 1.0f, "relu of zeros: %g %g %g", (double)z[0],
           (double)z[1], (double)z[2]);
    EXPECT(dz[0] == 0.0f && dz[1] == 0.0f && dz[2] == 4.0f, "relu_backward at 0: %g %g %g",
           (double)dz[0], (double)dz[1], (double)dz[2]);

    /* Gradients through the kink: x and a + b at 0, -0 and within the step of 0. */
    static const float near[NEAR] = {0.0f, -0.0f, 1e-6f, -1e-6f, 3e-3f, -7e-3f};
    for (int i = 0; i < N; i++) x[i] = i < NEAR ? near[i] : away_from_zero();
    check_gradient("relu_forward", x, NULL);
    for (int i = 0; i < N; i++) {
        a[i] = away_from_zero();
        b[i] = i < NEAR ? near[i] - a[i] : away_from_zero();
        if (i >= NEAR && fabsf(a[i] + b[i]) < 0.05f) b[i] = -b[i];
    }
    check_gradient("add_relu_forward", a, b);
    return test_summary("test_activation");
}
