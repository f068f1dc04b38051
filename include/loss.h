/* loss: softmax cross-entropy over logits, nn.CrossEntropyLoss semantics. */
#ifndef RESNET_DDP_LOSS_H
#define RESNET_DDP_LOSS_H

#include <stdint.h>

/* For logits (n, classes) and labels (n): returns the SUM of the per-sample losses,
 * counts correct argmax predictions (first maximum wins) into *correct, and, if
 * dlogits != NULL, writes dlogits (n, classes) = (softmax - target) * scale. The
 * trainer passes scale = 1 / global batch, so per-rank gradients are partial sums of
 * the global mean gradient and an allreduce-sum completes them.
 *
 * smoothing in [0, 1) is nn.CrossEntropyLoss's label_smoothing: the target is
 * (1 - smoothing) * onehot + smoothing / classes, so a sample's loss is
 * (1 - smoothing) * -log p_label + smoothing * mean_c(-log p_c). smoothing = 0 gives
 * plain cross-entropy, bit for bit as without the term. */
double softmax_xent(int n, int classes, const float *logits, const int32_t *labels,
                    double smoothing, float scale, float *dlogits, int64_t *correct);

/* The class of the largest of classes logits z (the first of equal ones, as argmax). */
int logits_argmax(const float *z, int classes);

#endif
