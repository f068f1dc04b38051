/* activation: ReLU and the residual join relu(a + b), elementwise. */
#ifndef RESNET_DDP_ACTIVATION_H
#define RESNET_DDP_ACTIVATION_H

#include <stddef.h>

/* x (n) = max(x, 0), in place. */
void relu_forward(size_t n, float *x);
/* y (n) = max(a + b, 0); y may alias a. */
void add_relu_forward(size_t n, const float *a, const float *b, float *y);
/* dy (n) *= [y > 0], in place, where y is the ReLU output. */
void relu_backward(size_t n, const float *y, float *dy);

#endif
