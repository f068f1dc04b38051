/* pool: max pooling and global average pooling over planes.
 *
 * In the (C, N, H, W) layout every (channel, sample) pair is one contiguous H x W
 * plane, so both pools run over `planes` = C * N independent planes.
 * Max pooling follows nn.MaxPool2d (padding is -inf, the first maximum wins);
 * global average pooling is nn.AdaptiveAvgPool2d((1, 1)). */
#ifndef RESNET_DDP_POOL_H
#define RESNET_DDP_POOL_H

#include <stddef.h>
#include <stdint.h>

struct maxpool_shape {
    int k, stride, pad;
    int h, w, ho, wo;
};

void maxpool_shape_init(struct maxpool_shape *s, int k, int stride, int pad, int h, int w);

/* y (planes, ho, wo) = max over windows of x (planes, h, w); argmax (planes, ho, wo)
 * keeps the index within the input plane for backward. */
void maxpool_forward(const struct maxpool_shape *s, size_t planes, const float *x, float *y,
                     int32_t *argmax);
/* dx (planes, h, w) = scatter of dy through argmax (dx is overwritten). */
void maxpool_backward(const struct maxpool_shape *s, size_t planes, const float *dy,
                      const int32_t *argmax, float *dx);

/* y (planes) = mean of each plane of x (planes, hw). */
void avgpool_forward(size_t planes, int hw, const float *x, float *y);
/* dx (planes, hw) = dy / hw broadcast over each plane. */
void avgpool_backward(size_t planes, int hw, const float *dy, float *dx);

#endif
