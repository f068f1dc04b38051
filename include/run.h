/* run: the program's loop (resume, epochs, evaluation, metrics, checkpoints) around
 * the trainer (train.h). */
#ifndef RESNET_DDP_RUN_H
#define RESNET_DDP_RUN_H

#include "comm.h"
#include "config.h"

/* Train as the config says on this rank; returns the process exit code. */
int train_run(const struct config *cfg, const struct comm_info *comm);

#endif
