/* loss: softmax cross-entropy over logits, nn.CrossEntropyLoss semantics. */
#ifndef RESNET_DDP_LOSS_H
#define RESNET_DDP_LOSS_H

#include <stdint.h>

/* For logits (n, classes) and labels (n): returns the SUM of the per-sample losses,
 * counts correct argmax predictions (first maximum wins) into *correct, and, if
 * dlogits != NULL, writes dlogits (n, classes) = (softmax - onehot) * scale. The
 * trainer passes scale = 1 / global batch, so per-rank gradients are partial sums of
 * the global mean gradient and an allreduce-sum completes them. */
double softmax_xent(int n, int classes, const float *logits, const int32_t *labels, float scale,
                    float *dlogits, int64_t *correct);

#endif
