/* timer: monotonic wall-clock seconds, and timing a statement into a sum. */
#ifndef RESNET_DDP_TIMER_H
#define RESNET_DDP_TIMER_H

#include <time.h>

static inline double timer_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runs stmt; when `on`, adds its wall time in seconds to `slot` (an lvalue, evaluated
 * only then). */
#define TIMED(on, slot, stmt)                                                      \
    do {                                                                           \
        const int on_ = (on) != 0;                                                 \
        const double t0_ = on_ ? timer_now() : 0.0;                                \
        stmt;                                                                      \
        if (on_) (slot) += timer_now() - t0_;                                      \
    } while (0)

#endif
