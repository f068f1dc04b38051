/* test_activation: relu_forward (in place), add_relu_forward (also with y aliasing
 * a) and relu_backward (mask from the ReLU output, in place) against direct
 * definitions, on inputs kept at least 0.05 away from 0 so the kink is never hit,
 * plus exact zeros: relu(0) = 0 and its gradient is 0, as in PyTorch. */
#include "activation.h"
#include "testutil.h"

#include <string.h>

#define N 257

/* Uniform in +-[0.05, 3), either sign. */
static float away_from_zero(void)
{
    double u = urand(0, 1), mag = urand(0.05, 3.0);
    return (float)(u < 0.5 ? -mag : mag);
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
    return test_summary("test_activation");
}
