/* train: the trainer: data, model, optimizer and gradient sums of one rank, one step
 * at a time, and evaluation. Exposed as a struct so that tests and the program's loop
 * (run.h) can drive it step by step and look at its state. */
#ifndef RESNET_DDP_TRAIN_H
#define RESNET_DDP_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "comm.h"
#include "config.h"
#include "data.h"
#include "resnet.h"
#include "sgd.h"

/* Seconds per phase, summed over the steps of an epoch on this rank. */
struct step_timers {
    double data, forward, backward, allreduce_wait, bn_sync, optimizer;
};

/* Global sums over all ranks (correct_flip: with flip test-time augmentation). */
struct eval_sums {
    double loss_sum, correct, correct_flip, count;
};

struct trainer {
    const struct config *cfg;
    struct comm_info comm;
    struct dataset train_set, test_set;
    struct resizer resizer;
    struct augment augment; /* of training batches */
    struct sampler order;
    struct resnet model;
    struct sgd opt;
    struct reducer bn_reducer;
    struct grad_sync *grad_sync;
    int global_batch, rank_batch, eval_batch, threads, image_size;
    int64_t steps_per_epoch;
    /* Position: the next step to run is step_in_epoch of epoch (both 0-based). */
    int64_t epoch, step_in_epoch, global_step;
    int64_t *indices; /* (max batch) sample indices of this rank's slice */
    int32_t *labels;  /* (max batch) */
    float *eval_logits; /* with eval_flip: (eval batch, classes) logits of both views */
    /* This epoch so far, summed over all ranks (identical on every rank, and saved in
     * checkpoints so that a resumed epoch reports what an uninterrupted one does). */
    double epoch_loss_sum, epoch_correct, epoch_count;
    /* The last step, over all ranks. */
    double step_loss_sum, step_count, step_seconds;
    bool stop_requested; /* a rank got SIGTERM/SIGUSR1; all ranks agree on it */
    struct step_timers timers;
    double bn_sync_seconds; /* accumulated by the BN reducer */
};

/* Load data (validated on every rank before any collective), build the model,
 * initialize it on rank 0 and broadcast it. Errors exit with a message. */
void trainer_init(struct trainer *t, const struct config *cfg, const struct comm_info *comm);
/* Run the step at the current position and advance it. Ends with one small allreduce
 * of the step's loss, accuracy, count and the preemption flag, so every rank knows the
 * global figures and whether to stop. Returns false when the global loss is not
 * finite (training diverged: every rank sees it at the same step). */
bool trainer_step(struct trainer *t);
/* Rank 0 says where a diverged step went wrong (one error line). */
void trainer_report_divergence(const struct trainer *t);
/* Name of the first parameter (forward order), then momentum buffer, then BN buffer
 * holding a NaN or Inf, or NULL: what a checkpoint would refuse to hold. */
const char *trainer_first_nonfinite(const struct resnet *m);
/* SIGTERM and SIGUSR1 request a stop at the next step boundary (SLURM preemption). */
void trainer_install_signal_handlers(void);
/* Evaluate on the whole test set (BN in eval mode), sharded over ranks: the model, or
 * with `average` its weight average (ema.h). With [train] eval_flip, also each image
 * with its mirror image, their logits added. */
struct eval_sums trainer_evaluate(struct trainer *t, bool average);
void trainer_free(struct trainer *t);

#endif
