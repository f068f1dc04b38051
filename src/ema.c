/* ema: the weight average's arithmetic; see ema.h. */
#include "ema.h"

double ema_decay_at(double decay, int64_t update)
{
    const double warm = (1.0 + (double)update) / (10.0 + (double)update);
    return warm < decay ? warm : decay;
}

void ema_update(float *ema, const float *w, size_t n, float d)
{
    const float keep = d, take = 1.0f - d;
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) ema[i] = keep * ema[i] + take * w[i];
}
