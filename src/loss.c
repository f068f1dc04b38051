/* loss: numerically stable log-softmax cross-entropy (max subtracted), in double,
 * with optional label smoothing (Szegedy et al. 2016). */
#include "loss.h"

#include <math.h>
#include <stddef.h>

double softmax_xent(int n, int classes, const float *logits, const int32_t *labels,
                    double smoothing, float scale, float *dlogits, int64_t *correct)
{
    /* Target probabilities of the label and of every other class. At smoothing 0 they
     * are exactly 1 and 0, and p - 0.0 == p, so the gradient keeps its bits. */
    const double off = smoothing / classes, on = 1.0 - smoothing + off;
    double total = 0.0;
    int64_t right = 0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * classes;
        const int best = logits_argmax(z, classes);
        right += best == labels[i];
        double zmax = z[best], sum = 0.0, zsum = 0.0;
        for (int c = 0; c < classes; c++) {
            sum += exp((double)z[c] - zmax);
            zsum += (double)z[c];
        }
        double log_sum = log(sum) + zmax;
        double nll = log_sum - (double)z[labels[i]];
        /* mean_c(-log p_c) = log_sum - mean(z); skipped at 0 so the sum keeps its bits */
        if (smoothing != 0.0)
            nll = (1.0 - smoothing) * nll + smoothing * (log_sum - zsum / classes);
        total += nll;
        if (dlogits) {
            float *d = dlogits + (size_t)i * classes;
            for (int c = 0; c < classes; c++) {
                double p = exp((double)z[c] - log_sum);
                d[c] = (float)((p - (c == labels[i] ? on : off)) * (double)scale);
            }
        }
    }
    if (correct) *correct += right;
    return total;
}

int logits_argmax(const float *z, int classes)
{
    int best = 0;
    for (int c = 1; c < classes; c++)
        if (z[c] > z[best]) best = c;
    return best;
}
