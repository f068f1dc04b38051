/* train: the loop of DESIGN.md "The flow of one step": batch -> forward -> backward
 * (gradient buckets summed over ranks while backward goes on) -> SGD, evaluation
 * after every epoch, one line per epoch on rank 0. Train loss and accuracy are those
 * of the model in training mode over the epoch's batches, over all ranks (as d2l's
 * train_ch6 reports them); test accuracy uses BN in evaluation mode and counts every
 * test image exactly once. */
#include "train.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "gemm.h"
#include "loss.h"
#include "timer.h"

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig) { stop_signal = sig; }

void trainer_install_signal_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART; /* let interrupted system calls (file I/O, MPI progress) go on */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

/* Without micro-shards, chunks of samples are cut at multiples of 64 (conv.h): the
 * slices of a batch of 256 on 1, 2 and 4 ranks start at such multiples, so those
 * runs compute every activation alike and after one step differ only by the order of
 * the weight gradients' sums (docs/DESIGN.md "Numerics"). */
#define ALIGN_SAMPLES 64

static int auto_threads(const struct comm_info *comm)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1) cores = 1;
    long t = cores / (comm->local_world > 0 ? comm->local_world : 1);
    return t < 1 ? 1 : (int)t;
}

void trainer_init(struct trainer *t, const struct config *cfg, const struct comm_info *comm)
{
    memset(t, 0, sizeof *t);
    t->cfg = cfg;
    t->comm = *comm;
    /* Data first, on every rank, so a bad file fails everywhere before any collective. */
    dataset_load(&t->train_set, cfg->data_dir, true, cfg->train_limit, cfg->num_classes);
    dataset_load(&t->test_set, cfg->data_dir, false, cfg->test_limit, cfg->num_classes);
    if (t->train_set.rows != t->test_set.rows || t->train_set.cols != t->test_set.cols)
        FAIL_INPUT("%s: training images are %dx%d but test images are %dx%d", cfg->data_dir,
                   t->train_set.rows, t->train_set.cols, t->test_set.rows, t->test_set.cols);
    if (t->train_set.rows != t->train_set.cols && cfg->resize == 0)
        FAIL_INPUT("%s: images are %dx%d; non-square images need [data] resize", cfg->data_dir,
                   t->train_set.rows, t->train_set.cols);
    if (cfg->batch_size < comm->world)
        FAIL_INPUT("[train] batch_size = %d is smaller than the %d ranks: expected at least "
                   "one sample per rank", cfg->batch_size, comm->world);
    t->image_size = cfg->resize ? cfg->resize : t->train_set.rows;
    comm_start_watchdog(cfg->timeout);
    comm_set_phase("start-up", 0);

    /* An uneven split is allowed (ranks differ by one sample): the loss is scaled by
     * the global batch, so summed gradients are the global mean whatever the split. */
    t->global_batch = cfg->batch_size;
    t->rank_batch = (t->global_batch + comm->world - 1) / comm->world;
    if (cfg->shard_size > 0) {
        /* Ranks take whole shards, so the largest slice is a whole number of them. */
        int shards = (t->global_batch + cfg->shard_size - 1) / cfg->shard_size;
        int per_rank = (shards + comm->world - 1) / comm->world;
        t->rank_batch = per_rank * cfg->shard_size;
        if (t->rank_batch > t->global_batch) t->rank_batch = t->global_batch;
    }
    t->eval_batch = cfg->eval_batch_size ? cfg->eval_batch_size : t->rank_batch;
    t->threads = cfg->threads ? cfg->threads : auto_threads(comm);
    gemm_set_threads(t->threads);

    struct model_spec spec = {
        .depth = cfg->depth, .width = cfg->width, .num_classes = cfg->num_classes,
        .in_channels = 1, .image_size = t->image_size,
        .max_batch = t->rank_batch > t->eval_batch ? t->rank_batch : t->eval_batch,
        .shard = cfg->shard_size, .align = ALIGN_SAMPLES, .winograd = cfg->winograd,
        /* Float gradients, summed as floats as in PyTorch DDP, except with micro-shards
         * (grad.h). */
        .float_grads = cfg->shard_size == 0, .ema = cfg->ema_decay > 0, .fused_stem = true,
        .label_smoothing = cfg->label_smoothing, .stem_no_pool = cfg->stem == STEM_NOPOOL,
    };
    resnet_init(&t->model, &spec);
    if (comm->rank == 0) resnet_init_params(&t->model, cfg->init, cfg->seed);
    /* Rank 0's initialization is everyone's: one broadcast of each flat arena. */
    comm_bcast_floats(t->model.weights, t->model.param_floats, 0);
    comm_bcast_floats(t->model.buffer_data, t->model.buffer_floats, 0);
    resnet_ema_reset(&t->model);

    resizer_init(&t->resizer, t->train_set.rows, t->train_set.cols, cfg->resize);
    t->augment = (struct augment){.seed = cfg->seed, .crop = cfg->augment_crop,
                                  .flip = cfg->augment_flip, .erase = cfg->augment_erase};
    sampler_init(&t->order, t->train_set.count, t->global_batch, cfg->seed, true);
    t->steps_per_epoch = sampler_steps_per_epoch(&t->order);
    t->indices = xcalloc((size_t)spec.max_batch, sizeof *t->indices);
    t->labels = xcalloc((size_t)spec.max_batch, sizeof *t->labels);
    if (cfg->eval_flip)
        t->eval_logits = xcalloc((size_t)t->eval_batch * (size_t)cfg->num_classes, sizeof(float));
    sgd_init(&t->opt, cfg);
    t->bn_reducer = cfg->sync_bn ? comm_world_reducer(&t->bn_sync_seconds)
                                 : (struct reducer){NULL, NULL};
    t->grad_sync = grad_sync_create(&t->model.grads, cfg->bucket_mb, cfg->overlap,
                                    cfg->shared_memory);
    resnet_profile_enable(&t->model, cfg->profile);
}

static bool all_finite(const float *v, size_t n)
{
    for (size_t j = 0; j < n; j++)
        if (!isfinite(v[j])) return false;
    return true;
}

const char *trainer_first_nonfinite(const struct resnet *m)
{
    static char name[2 * RESNET_NAME_MAX];
    for (int i = 0; i < m->nparams; i++)
        if (!all_finite(m->weights + m->params[i].offset, m->params[i].count)) return m->params[i].name;
    for (int i = 0; i < m->nparams; i++)
        if (!all_finite(m->momentum + m->params[i].offset, m->params[i].count)) {
            snprintf(name, sizeof name, "momentum of %s", m->params[i].name);
            return name;
        }
    for (int i = 0; i < m->nbuffers; i++)
        if (!all_finite(m->buffer_data + m->buffers[i].offset, m->buffers[i].count))
            return m->buffers[i].name;
    return NULL;
}

bool trainer_step(struct trainer *t)
{
    struct resnet *m = &t->model;
    double t0 = timer_now();
    comm_set_phase("a training step", (long long)t->global_step + 1);
    int n = sampler_rank_shards(&t->order, t->epoch, t->step_in_epoch, t->comm.rank,
                                t->comm.world, t->cfg->shard_size, t->indices);
    int g = sampler_global_count(&t->order, t->step_in_epoch);
    batch_assemble(&t->train_set, &t->resizer, &t->augment, t->epoch, t->indices, n, m->input,
                   t->labels);
    double t1 = timer_now();
    const double bn0 = t->bn_sync_seconds;

    grad_arena_zero(&m->grads);
    int64_t correct = 0;
    double loss = resnet_forward(m, n, t->labels, true, 1.0f / (float)g, &t->bn_reducer,
                                 &correct);
    double t2 = timer_now();
    grad_sync_begin_step(t->grad_sync);
    struct grad_ready_hook hook = {grad_sync_ready, t->grad_sync};
    resnet_backward(m, n, &t->bn_reducer, &hook);
    double t3 = timer_now();
    double wait = grad_sync_finish(t->grad_sync);
    double t4 = timer_now();
    float lr = (float)lr_at_step(t->cfg, t->global_step, t->steps_per_epoch);
    sgd_step(&t->opt, lr, m->weights, &m->grads, m->momentum);
    resnet_ema_update(m, t->cfg->ema_decay, t->global_step + 1);
    double t5 = timer_now();

    t->timers.data += t1 - t0;
    t->timers.forward += t2 - t1;
    t->timers.backward += t3 - t2;
    t->timers.allreduce_wait += wait;
    t->timers.optimizer += t5 - t4;
    t->timers.bn_sync += t->bn_sync_seconds - bn0;
    /* The step's global figures and the stop flag in one small collective. */
    double sums[4] = {loss, (double)correct, (double)n, stop_signal ? 1.0 : 0.0};
    comm_allreduce_sum_double(sums, 4);
    t->step_loss_sum = sums[0];
    t->step_count = sums[2];
    t->epoch_loss_sum += sums[0];
    t->epoch_correct += sums[1];
    t->epoch_count += sums[2];
    t->stop_requested = sums[3] > 0;
    t->step_seconds = timer_now() - t0;
    t->global_step++;
    if (++t->step_in_epoch == t->steps_per_epoch) {
        t->step_in_epoch = 0;
        t->epoch++;
    }
    return isfinite(t->step_loss_sum);
}

void trainer_report_divergence(const struct trainer *t)
{
    if (t->comm.rank != 0) return;
    const char *bad = trainer_first_nonfinite(&t->model);
    error_report("training diverged: the loss is %g at global step %lld (epoch %lld); %s%s; "
                 "expected finite values: lower [train] lr (the last checkpoint is kept)",
                 t->step_loss_sum, (long long)t->global_step, (long long)t->epoch + 1,
                 bad ? "first tensor with a non-finite value: " : "all parameters were "
                 "finite before this step, the forward pass overflowed", bad ? bad : "");
}

/* Mirrors every row of n images (h, w) in place: the flipped view of test-time
 * augmentation. */
static void flip_images(float *images, int n, int h, int w)
{
    for (size_t row = 0; row < (size_t)n * h; row++) {
        float *r = images + row * w;
        for (int x = 0; x < w / 2; x++) {
            const float v = r[x];
            r[x] = r[w - 1 - x];
            r[w - 1 - x] = v;
        }
    }
}

/* Predictions of the summed logits of both views (the first largest wins). */
static int64_t count_correct(const float *logits, int n, int classes, const int32_t *labels)
{
    int64_t correct = 0;
    for (int i = 0; i < n; i++)
        correct += logits_argmax(logits + (size_t)i * classes, classes) == labels[i];
    return correct;
}

/* One test batch; with eval_flip also its mirror image, whose logits are added. */
static void evaluate_batch(struct trainer *t, int n, double *loss, int64_t *correct,
                           int64_t *correct_flip)
{
    struct resnet *m = &t->model;
    const int classes = m->spec.num_classes;
    *loss += resnet_forward(m, n, t->labels, false, 1.0f, NULL, correct);
    if (!t->cfg->eval_flip) return;
    memcpy(t->eval_logits, m->logits, sizeof(float) * (size_t)n * classes);
    flip_images(m->input, n, t->image_size, t->image_size);
    resnet_forward(m, n, NULL, false, 1.0f, NULL, NULL);
    for (size_t i = 0; i < (size_t)n * classes; i++) t->eval_logits[i] += m->logits[i];
    *correct_flip += count_correct(t->eval_logits, n, classes, t->labels);
}

struct eval_sums trainer_evaluate(struct trainer *t, bool average)
{
    struct sampler order;
    comm_set_phase("evaluation", (long long)t->global_step);
    const bool profiling = t->model.prof.enabled;
    resnet_profile_enable(&t->model, false); /* the profile is of training steps */
    if (average) resnet_ema_swap(&t->model);
    sampler_init(&order, t->test_set.count, t->eval_batch * t->comm.world, 0, false);
    double loss = 0.0, count = 0.0;
    int64_t correct = 0, correct_flip = 0;
    for (int64_t step = 0; step < sampler_steps_per_epoch(&order); step++) {
        int n = sampler_rank_batch(&order, 0, step, t->comm.rank, t->comm.world, t->indices);
        batch_assemble(&t->test_set, &t->resizer, NULL, 0, t->indices, n, t->model.input,
                       t->labels);
        evaluate_batch(t, n, &loss, &correct, &correct_flip);
        count += n;
    }
    sampler_free(&order);
    if (average) resnet_ema_swap(&t->model);
    resnet_profile_enable(&t->model, profiling);
    double sums[4] = {loss, (double)correct, (double)correct_flip, count};
    comm_allreduce_sum_double(sums, 4);
    return (struct eval_sums){sums[0], sums[1], sums[2], sums[3]};
}

void trainer_free(struct trainer *t)
{
    grad_sync_free(t->grad_sync);
    free(t->indices);
    free(t->labels);
    free(t->eval_logits);
    sampler_free(&t->order);
    resizer_free(&t->resizer);
    resnet_free(&t->model);
    dataset_free(&t->train_set);
    dataset_free(&t->test_set);
}

