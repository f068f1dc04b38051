/* metrics: the HDF5 metrics log written by rank 0.
 *
 * Two groups of extendable, chunked 1-D datasets, one row per record:
 *   /steps:  step (int64), epoch (int64), loss (float64, global mean), lr (float64),
 *            images_per_second (float64), seconds (float64, wall time of the step)
 *   /epochs: epoch (int64), train_loss, train_acc, test_loss, test_acc,
 *            seconds, images_per_second, test_acc_flip, ema_test_loss, ema_test_acc,
 *            ema_test_acc_flip (float64; the last four NaN when not evaluated)
 * The file is flushed at least at every epoch (metrics_flush), so a killed job keeps
 * what it logged. Opening an existing file for a resumed run truncates each group to
 * the rows before the resume point, so steps are neither duplicated nor lost. */
#ifndef RESNET_DDP_METRICS_H
#define RESNET_DDP_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct metrics_log;

struct step_record {
    int64_t step;   /* global optimizer step, 1-based */
    int64_t epoch;  /* 1-based */
    double loss, lr, images_per_second, seconds;
};

struct epoch_record {
    int64_t epoch;  /* 1-based */
    double train_loss, train_acc, test_loss, test_acc, seconds, images_per_second;
    /* NaN when off: with [train] eval_flip, and of the weight average (ema_decay) */
    double test_acc_flip, ema_test_loss, ema_test_acc, ema_test_acc_flip;
};

/* Create `path`, or (resume) open it and drop step rows with step > resume_step and
 * epoch rows with epoch > resume_epoch. Returns NULL with a one-line message in err
 * naming the file on failure (missing directory, not an HDF5 file, wrong layout). */
struct metrics_log *metrics_open(const char *path, bool resume, int64_t resume_step,
                                 int64_t resume_epoch, char *err, size_t errsize);
/* Append one row. Return 0 or -1 with a message. */
int metrics_append_step(struct metrics_log *log, const struct step_record *r, char *err,
                        size_t errsize);
int metrics_append_epoch(struct metrics_log *log, const struct epoch_record *r, char *err,
                         size_t errsize);
int metrics_flush(struct metrics_log *log, char *err, size_t errsize);
void metrics_close(struct metrics_log *log);

#endif
