/* train: the training loop (epochs of steps, evaluation, logging). */
#ifndef RESNET_DDP_TRAIN_H
#define RESNET_DDP_TRAIN_H

#include "comm.h"
#include "config.h"

/* Train as the config says on this rank; returns the process exit code. */
int train_run(const struct config *cfg, const struct comm_info *comm);

#endif
