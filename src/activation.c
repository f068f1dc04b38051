/* activation: ReLU forward/backward; backward uses the output, so ReLU can run in place. */
#include "activation.h"

void relu_forward(size_t n, float *x)
{
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void add_relu_forward(size_t n, const float *a, const float *b, float *y)
{
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float v = a[i] + b[i];
        y[i] = v > 0.0f ? v : 0.0f;
    }
}

void relu_backward(size_t n, const float *y, float *dy)
{
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) dy[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}
