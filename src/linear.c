/* linear: fully connected layer through the gemm wrapper; see linear.h. */
#include "linear.h"

#include <stddef.h>

#include "gemm.h"

void linear_forward(int n, int in, int out, const float *x, const float *w, const float *b,
                    float *y)
{
    if (n == 0) return;
    gemm(true, true, n, out, in, 1.0f, x, n, w, in, 0.0f, y, out);
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) y[(size_t)i * out + o] += b[o];
}

void linear_backward(int n, int in, int out, const float *x, const float *w, const float *dy,
                     float *dw, float *db, float *dx)
{
    for (int o = 0; o < out; o++) {
        double acc = 0.0;
        for (int i = 0; i < n; i++) acc += (double)dy[(size_t)i * out + o];
        db[o] += (float)acc;
    }
    if (n == 0) return;
    gemm(true, true, out, in, n, 1.0f, dy, out, x, n, 1.0f, dw, in);
    if (dx) gemm(true, true, in, n, out, 1.0f, w, in, dy, out, 0.0f, dx, n);
}
