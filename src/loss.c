/* loss: numerically stable log-softmax cross-entropy (max subtracted), in double. */
#include "loss.h"

#include <math.h>
#include <stddef.h>

double softmax_xent(int n, int classes, const float *logits, const int32_t *labels, float scale,
                    float *dlogits, int64_t *correct)
{
    double total = 0.0;
    int64_t right = 0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * classes;
        int best = 0;
        for (int c = 1; c < classes; c++)
            if (z[c] > z[best]) best = c;
        right += best == labels[i];
        double zmax = z[best], sum = 0.0;
        for (int c = 0; c < classes; c++) sum += exp((double)z[c] - zmax);
        double log_sum = log(sum) + zmax;
        total += log_sum - (double)z[labels[i]];
        if (dlogits) {
            float *d = dlogits + (size_t)i * classes;
            for (int c = 0; c < classes; c++) {
                double p = exp((double)z[c] - log_sum);
                d[c] = (float)((p - (c == labels[i])) * (double)scale);
            }
        }
    }
    if (correct) *correct += right;
    return total;
}
