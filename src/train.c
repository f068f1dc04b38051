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

#include "blas_kernel.h"
#include "checkpoint.h"
#include "ckpt_store.h"
#include "error.h"
#include "gemm.h"
#include "metrics.h"
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
        .fused_stem = true,
    };
    resnet_init(&t->model, &spec);
    if (comm->rank == 0) resnet_init_params(&t->model, cfg->init, cfg->seed);
    /* Rank 0's initialization is everyone's: one broadcast of each flat arena. */
    comm_bcast_floats(t->model.weights, t->model.param_floats, 0);
    comm_bcast_floats(t->model.buffer_data, t->model.buffer_floats, 0);

    resizer_init(&t->resizer, t->train_set.rows, t->train_set.cols, cfg->resize);
    sampler_init(&t->order, t->train_set.count, t->global_batch, cfg->seed, true);
    t->steps_per_epoch = sampler_steps_per_epoch(&t->order);
    t->indices = xcalloc((size_t)spec.max_batch, sizeof *t->indices);
    t->labels = xcalloc((size_t)spec.max_batch, sizeof *t->labels);
    sgd_init(&t->opt, cfg);
    t->bn_reducer = cfg->sync_bn ? comm_world_reducer(&t->bn_sync_seconds)
                                 : (struct reducer){NULL, NULL};
    /* Float gradients, summed as floats as in PyTorch DDP, except with micro-shards:
     * their promise of bit-identical results on any number of ranks needs sums that do
     * not depend on the order in which the ranks' gradients are added (doubles,
     * DESIGN.md). grad_sync owns float gradients: they may have to be shared memory. */
    const bool float_grads = cfg->shard_size == 0;
    t->grad_sync = grad_sync_create(float_grads ? NULL : t->model.grads, t->model.param_floats,
                                    cfg->bucket_mb, cfg->overlap, cfg->shared_memory);
    if (float_grads) resnet_use_float_grads(&t->model, grad_sync_floats(t->grad_sync));
    resnet_profile_enable(&t->model, cfg->profile);
}

static bool all_finite(const float *v, size_t n)
{
    for (size_t j = 0; j < n; j++)
        if (!isfinite(v[j])) return false;
    return true;
}

/* Name of the first parameter (forward order), then momentum buffer, then BN buffer
 * holding a NaN or Inf, or NULL: what a checkpoint would refuse to hold. */
static const char *first_nonfinite(const struct resnet *m)
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

double trainer_step(struct trainer *t)
{
    struct resnet *m = &t->model;
    double t0 = timer_now();
    comm_set_phase("a training step", (long long)t->global_step + 1);
    int n = sampler_rank_shards(&t->order, t->epoch, t->step_in_epoch, t->comm.rank,
                                t->comm.world, t->cfg->shard_size, t->indices);
    int g = sampler_global_count(&t->order, t->step_in_epoch);
    batch_assemble(&t->train_set, &t->resizer, t->indices, n, m->input, t->labels);
    double t1 = timer_now();
    const double bn0 = t->bn_sync_seconds;

    if (m->float_grads)
        memset(m->float_grads, 0, sizeof(float) * m->param_floats);
    else
        memset(m->grads, 0, sizeof(double) * m->param_floats);
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
    if (m->float_grads)
        sgd_step_float(&t->opt, lr, m->param_floats, m->weights, m->float_grads, m->momentum);
    else
        sgd_step(&t->opt, lr, m->param_floats, m->weights, m->grads, m->momentum);
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
    if (!isfinite(t->step_loss_sum)) {
        /* Every rank sees the same global sum: all stop here, rank 0 explains. */
        if (t->comm.rank == 0) {
            const char *bad = first_nonfinite(m);
            error_report("training diverged: the loss is %g at global step %lld (epoch %lld); %s%s; "
                         "expected finite values: lower [train] lr (the last checkpoint is kept)",
                         t->step_loss_sum, (long long)t->global_step, (long long)t->epoch + 1,
                         bad ? "first tensor with a non-finite value: " : "all parameters were "
                         "finite before this step, the forward pass overflowed", bad ? bad : "");
        }
        comm_finalize();
        exit(EXIT_CODE_DIVERGED);
    }
    return loss;
}

struct eval_sums trainer_evaluate(struct trainer *t)
{
    struct sampler order;
    comm_set_phase("evaluation", (long long)t->global_step);
    const bool profiling = t->model.prof.enabled;
    resnet_profile_enable(&t->model, false); /* the profile is of training steps */
    sampler_init(&order, t->test_set.count, t->eval_batch * t->comm.world, 0, false);
    double loss = 0.0, count = 0.0;
    int64_t correct = 0;
    for (int64_t step = 0; step < sampler_steps_per_epoch(&order); step++) {
        int n = sampler_rank_batch(&order, 0, step, t->comm.rank, t->comm.world, t->indices);
        batch_assemble(&t->test_set, &t->resizer, t->indices, n, t->model.input, t->labels);
        loss += resnet_forward(&t->model, n, t->labels, false, 1.0f, NULL, &correct);
        count += n;
    }
    sampler_free(&order);
    resnet_profile_enable(&t->model, profiling);
    double sums[3] = {loss, (double)correct, count};
    comm_allreduce_sum_double(sums, 3);
    return (struct eval_sums){sums[0], sums[1], sums[2]};
}

void trainer_free(struct trainer *t)
{
    grad_sync_free(t->grad_sync);
    free(t->indices);
    free(t->labels);
    sampler_free(&t->order);
    resizer_free(&t->resizer);
    resnet_free(&t->model);
    dataset_free(&t->train_set);
    dataset_free(&t->test_set);
}

/* ---- checkpoints ------------------------------------------------------------------- */

static void fill_ckpt_state(const struct trainer *t, struct ckpt_state *st)
{
    memset(st, 0, sizeof *st);
    st->epoch = t->epoch;
    st->step_in_epoch = t->step_in_epoch;
    st->global_step = t->global_step;
    st->epoch_loss_sum = t->epoch_loss_sum;
    st->epoch_correct = t->epoch_correct;
    st->epoch_count = t->epoch_count;
    st->seed = t->cfg->seed;
    st->world_size = t->comm.world;
    st->global_batch = t->global_batch;
    st->image_size = t->image_size;
    config_format(t->cfg, st->config_text, sizeof st->config_text);
}

/* Rank 0: write the checkpoint of the current position, then rotate. */
static void save_checkpoint(struct trainer *t, const char *why)
{
    const struct config *cfg = t->cfg;
    char path[CONFIG_PATH_MAX + 64], err[1024];
    ckpt_store_path(cfg->checkpoint_dir, t->global_step, path, sizeof path);
    if (access(path, F_OK) == 0) return; /* this very state is saved already */
    const char *bad = first_nonfinite(&t->model);
    if (bad)
        error_exit(EXIT_CODE_DIVERGED, "training diverged: %s is not finite after global step "
                   "%lld; not writing a checkpoint (the last one is kept); expected finite values: "
                   "lower [train] lr", bad, (long long)t->global_step);
    struct ckpt_state st;
    fill_ckpt_state(t, &st);
    double t0 = timer_now();
    /* No activation is live between steps; the file image (twice the size of the
     * weights and momentum) then fits in their pages instead of on top of them. */
    arena_release(&t->model.arena);
    if (ckpt_write(path, &t->model, &st, err, sizeof err) != 0)
        error_exit(EXIT_CODE_INTERNAL, "%s (the previous checkpoints are kept)", err);
    int removed = ckpt_store_prune(cfg->checkpoint_dir, cfg->checkpoint_keep);
    printf("# checkpoint %s (%s, epoch %lld step %lld, %.2f s%s)\n", path, why,
           (long long)t->epoch + 1, (long long)t->step_in_epoch, timer_now() - t0,
           removed ? ", older ones rotated out" : "");
    fflush(stdout);
}

/* The config must describe the same run as the checkpoint for an exact resume. */
static void check_resume_fits(const struct trainer *t, const struct ckpt_state *st,
                              const char *path)
{
    if (st->global_batch != t->global_batch)
        FAIL_INPUT("checkpoint '%s' was written with [train] batch_size = %d but the config says "
                   "%d: expected the same global batch to resume", path, st->global_batch,
                   t->global_batch);
    if (st->seed != t->cfg->seed)
        FAIL_INPUT("checkpoint '%s' was written with [train] seed = %llu but the config says %llu: "
                   "expected the same seed to resume", path, (unsigned long long)st->seed,
                   (unsigned long long)t->cfg->seed);
    if (st->image_size != t->image_size)
        FAIL_INPUT("checkpoint '%s' was trained on %dx%d images but the config gives %dx%d: "
                   "expected the same [data] resize", path, st->image_size, st->image_size,
                   t->image_size, t->image_size);
    if (st->step_in_epoch >= t->steps_per_epoch)
        FAIL_INPUT("checkpoint '%s' stands at step %lld of an epoch, but an epoch has %lld steps "
                   "with this data: expected the same [data] train_limit", path,
                   (long long)st->step_in_epoch, (long long)t->steps_per_epoch);
}

/* Rank 0 picks and reads the checkpoint to resume from (resume = auto | none | PATH);
 * the state then goes to every rank. Returns whether training resumes. */
static bool resume_from_checkpoint(struct trainer *t)
{
    const struct config *cfg = t->cfg;
    double info[7] = {0};
    if (t->comm.rank == 0) {
        char err[1024], chosen[CONFIG_PATH_MAX + 64] = "";
        struct ckpt_state st;
        struct ckpt_entry *list;
        int n = ckpt_store_list(cfg->checkpoint_dir, &list);
        if (strcmp(cfg->checkpoint_resume, "none") == 0) {
            if (n > 0)
                FAIL_INPUT("[checkpoint] dir '%s' already holds checkpoints of another run (newest "
                           "%s) and [checkpoint] resume = none: expected resume = auto to continue "
                           "it, or an empty or new [checkpoint] dir", cfg->checkpoint_dir,
                           list[0].path);
        } else if (strcmp(cfg->checkpoint_resume, "auto") == 0) {
            for (int i = 0; i < n && !chosen[0]; i++) {
                if (ckpt_read(list[i].path, &t->model, &st, err, sizeof err) == 0)
                    snprintf(chosen, sizeof chosen, "%s", list[i].path);
                else
                    printf("# resume: skipping %s: %s\n", list[i].path, err);
            }
            if (!chosen[0]) printf("# resume = auto: no usable checkpoint in %s, starting fresh\n",
                                   cfg->checkpoint_dir);
        } else {
            if (ckpt_read(cfg->checkpoint_resume, &t->model, &st, err, sizeof err) != 0)
                FAIL_INPUT("[checkpoint] resume = %s: %s", cfg->checkpoint_resume, err);
            snprintf(chosen, sizeof chosen, "%s", cfg->checkpoint_resume);
        }
        ckpt_store_free(list, n);
        if (chosen[0]) {
            check_resume_fits(t, &st, chosen);
            printf("# resumed from %s: epoch %lld, step %lld of the epoch, global step %lld "
                   "(written by %d rank(s))\n", chosen, (long long)st.epoch + 1,
                   (long long)st.step_in_epoch, (long long)st.global_step, st.world_size);
            fflush(stdout);
            double v[7] = {1, (double)st.epoch, (double)st.step_in_epoch, (double)st.global_step,
                           st.epoch_loss_sum, st.epoch_correct, st.epoch_count};
            memcpy(info, v, sizeof v);
        }
    }
    comm_bcast_bytes(info, sizeof info, 0);
    if (info[0] == 0) return false;
    struct resnet *m = &t->model;
    comm_bcast_floats(m->weights, m->param_floats, 0);
    comm_bcast_floats(m->momentum, m->param_floats, 0);
    comm_bcast_floats(m->buffer_data, m->buffer_floats, 0);
    comm_bcast_bytes(&m->num_batches_tracked, sizeof m->num_batches_tracked, 0);
    t->epoch = (int64_t)info[1];
    t->step_in_epoch = (int64_t)info[2];
    t->global_step = (int64_t)info[3];
    t->epoch_loss_sum = info[4];
    t->epoch_correct = info[5];
    t->epoch_count = info[6];
    return true;
}

/* ---- the program's loop ------------------------------------------------------------ */

static void print_config(const struct config *cfg)
{
    char text[8192];
    config_format(cfg, text, sizeof text);
    printf("# resnet_ddp %s, config %s resolved:\n", RESNET_DDP_VERSION, cfg->source_path);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) printf("#   %s\n", line);
}

static void print_progress(const struct trainer *t, double started, double images)
{
    fprintf(stderr, "\repoch %lld step %lld/%lld  loss %.4f  acc %.4f  %.1f img/s   ",
            (long long)t->epoch + 1, (long long)t->step_in_epoch, (long long)t->steps_per_epoch,
            t->epoch_loss_sum / t->epoch_count, t->epoch_correct / t->epoch_count,
            images / (timer_now() - started));
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of this run's per-step images/s after the first `warmup` steps. */
static double median_rate(double *rates, int64_t n, int64_t warmup)
{
    if (n <= warmup) warmup = 0;
    if (n == 0) return 0;
    qsort(rates + warmup, (size_t)(n - warmup), sizeof *rates, compare_doubles);
    return rates[warmup + (n - warmup) / 2];
}

static void log_or_fail(int rc, const char *err)
{
    if (rc != 0) error_exit(EXIT_CODE_INTERNAL, "%s", err);
}

int train_run(const struct config *cfg, const struct comm_info *comm)
{
    const bool leader = comm->rank == 0;
    struct trainer t;
    trainer_init(&t, cfg, comm);
    trainer_install_signal_handlers();

    char metrics_path[2 * CONFIG_PATH_MAX], err[1024];
    if (cfg->metrics_path[0])
        snprintf(metrics_path, sizeof metrics_path, "%s", cfg->metrics_path);
    else
        snprintf(metrics_path, sizeof metrics_path, "%s/metrics.h5", cfg->checkpoint_dir);
    if (leader && ckpt_store_prepare(cfg->checkpoint_dir, err, sizeof err) != 0)
        FAIL_INPUT("%s", err);
    const bool resumed = resume_from_checkpoint(&t);
    struct metrics_log *log = NULL;
    if (leader) {
        log = metrics_open(metrics_path, resumed, t.global_step, t.epoch, err, sizeof err);
        if (!log) FAIL_INPUT("%s ([metrics] path)", err);
        print_config(cfg);
        printf("# model ResNet-%d: %zu trainable parameters, %.1f MFLOP per training image at %dx%d; "
               "memory: %.0f MiB activations (batch %d per rank), %.0f MiB parameters + "
               "gradients + momentum\n",
               cfg->depth, t.model.trainable, resnet_flops_per_image(&t.model) / 1e6,
               t.image_size, t.image_size, (double)t.model.arena.size / 1048576.0,
               t.model.spec.max_batch, (double)t.model.param_floats * (t.model.float_grads ? 12.0 : 16.0) / 1048576.0);
        printf("# data %lld training / %lld test images; %d rank(s) x %d thread(s); global batch "
               "%d, %lld steps per epoch; sync BN %s; %d gradient bucket(s), overlap %s, summed by %s\n",
               (long long)t.train_set.count, (long long)t.test_set.count, comm->world, t.threads,
               t.global_batch, (long long)t.steps_per_epoch, cfg->sync_bn ? "on" : "off",
               grad_sync_buckets(t.grad_sync), grad_sync_overlaps(t.grad_sync) ? "on" : "off",
               comm->world > 1 ? grad_sync_method(t.grad_sync) : "none (one rank)");
        printf("# BLAS: %s\n", blas_kernel_description());
        printf("# checkpoints in %s, metrics in %s\n", cfg->checkpoint_dir, metrics_path);
        fflush(stdout);
    }
    const bool progress = leader && cfg->progress && isatty(STDERR_FILENO);

    const double run_start = timer_now();
    int64_t run_steps = 0, rate_cap = 1024;
    double *rates = xcalloc((size_t)rate_cap, sizeof *rates); /* images/s of each step */
    int code = EXIT_CODE_OK;
    bool stop = false;
    while (t.epoch < cfg->epochs && !stop) {
        const int64_t epoch = t.epoch;
        const double epoch_start = timer_now();
        double last_progress = epoch_start, images = 0;
        int64_t epoch_steps = 0;
        memset(&t.timers, 0, sizeof t.timers);
        if (t.step_in_epoch == 0) t.epoch_loss_sum = t.epoch_correct = t.epoch_count = 0;
        while (t.epoch == epoch) {
            if (cfg->max_steps && t.global_step >= cfg->max_steps) {
                stop = true;
                break;
            }
            trainer_step(&t);
            epoch_steps++;
            images += t.step_count;
            if (run_steps == rate_cap) {
                rate_cap *= 2;
                rates = realloc(rates, sizeof *rates * (size_t)rate_cap);
                CHECK(rates, "out of memory");
            }
            rates[run_steps++] = t.step_count / t.step_seconds;
            if (leader) {
                struct step_record r = {
                    .step = t.global_step, .epoch = epoch + 1,
                    .loss = t.step_loss_sum / t.step_count,
                    .lr = lr_at_step(cfg, t.global_step - 1, t.steps_per_epoch),
                    .images_per_second = t.step_count / t.step_seconds,
                    .seconds = t.step_seconds,
                };
                log_or_fail(metrics_append_step(log, &r, err, sizeof err), err);
                if (cfg->checkpoint_every_steps && t.global_step % cfg->checkpoint_every_steps == 0) {
                    log_or_fail(metrics_flush(log, err, sizeof err), err);
                    save_checkpoint(&t, "every_steps");
                }
            }
            if (t.stop_requested) {
                /* Every rank saw the flag in the same allreduce: all stop here. */
                stop = true;
                code = EXIT_CODE_PREEMPTED;
                break;
            }
            if (progress && timer_now() - last_progress > 1.0) {
                last_progress = timer_now();
                print_progress(&t, epoch_start, images);
            }
        }
        if (progress) fprintf(stderr, "\r%*s\r", 78, "");
        if (t.epoch == epoch) { /* stopped inside the epoch: report it, no evaluation */
            if (leader && t.epoch_count > 0)
                printf("epoch %lld/%d stopped at step %lld/%lld  train loss %.4f  train acc %.4f  "
                       "%.1f img/s  %.1f s\n", (long long)epoch + 1, cfg->epochs,
                       (long long)t.step_in_epoch, (long long)t.steps_per_epoch,
                       t.epoch_loss_sum / t.epoch_count, t.epoch_correct / t.epoch_count,
                       images / (timer_now() - epoch_start), timer_now() - epoch_start);
            double times[6] = {t.timers.data, t.timers.forward, t.timers.backward,
                               t.timers.allreduce_wait, t.timers.bn_sync, t.timers.optimizer};
            comm_allreduce_max_double(times, 6);
            if (leader)
                printf("  time (s, max over ranks): data %.2f  forward %.2f  backward %.2f  "
                       "allreduce wait %.2f  bn sync %.2f  optimizer %.2f\n",
                       times[0], times[1], times[2], times[3], times[4], times[5]);
            if (leader && cfg->profile)
                resnet_profile_report(&t.model, epoch_steps, t.timers.allreduce_wait,
                                      t.timers.bn_sync, t.timers.optimizer);
            break;
        }

        const double train_seconds = timer_now() - epoch_start;
        if (leader && cfg->profile)
            resnet_profile_report(&t.model, epoch_steps, t.timers.allreduce_wait,
                                  t.timers.bn_sync, t.timers.optimizer);
        double times[7] = {t.timers.data, t.timers.forward, t.timers.backward,
                           t.timers.allreduce_wait, t.timers.bn_sync, t.timers.optimizer,
                           train_seconds};
        comm_allreduce_max_double(times, 7);
        struct eval_sums ev = trainer_evaluate(&t);
        const double epoch_seconds = timer_now() - epoch_start;
        if (leader) {
            struct epoch_record r = {
                .epoch = epoch + 1,
                .train_loss = t.epoch_loss_sum / t.epoch_count,
                .train_acc = t.epoch_correct / t.epoch_count,
                .test_loss = ev.loss_sum / ev.count, .test_acc = ev.correct / ev.count,
                .seconds = epoch_seconds, .images_per_second = images / times[6],
            };
            log_or_fail(metrics_append_epoch(log, &r, err, sizeof err), err);
            printf("epoch %lld/%d  train loss %.4f  train acc %.4f  test loss %.4f  test acc %.4f  "
                   "%.1f img/s  %.1f s\n",
                   (long long)epoch + 1, cfg->epochs, r.train_loss, r.train_acc, r.test_loss,
                   r.test_acc, r.images_per_second, epoch_seconds);
            printf("  time (s, max over ranks): data %.2f  forward %.2f  backward %.2f  "
                   "allreduce wait %.2f  bn sync %.2f  optimizer %.2f  eval %.2f\n",
                   times[0], times[1], times[2], times[3], times[4], times[5],
                   epoch_seconds - train_seconds);
            fflush(stdout);
            if (cfg->checkpoint_every_epochs && (epoch + 1) % cfg->checkpoint_every_epochs == 0)
                save_checkpoint(&t, "every_epochs");
        }
        t.epoch_loss_sum = t.epoch_correct = t.epoch_count = 0;
    }
    if (leader) {
        log_or_fail(metrics_flush(log, err, sizeof err), err);
        save_checkpoint(&t, code == EXIT_CODE_PREEMPTED ? "preempted" : "end of training");
        metrics_close(log);
        if (code == EXIT_CODE_PREEMPTED)
            printf("# stopped by a signal at global step %lld; exit code %d, resume with "
                   "[checkpoint] resume = auto\n", (long long)t.global_step, EXIT_CODE_PREEMPTED);
        else
            printf("# done: %lld steps, %.1f s\n", (long long)t.global_step, timer_now() - run_start);
        printf("# throughput: median %.1f img/s per step over %lld steps of this run "
               "(first 3 excluded as warm-up)\n", median_rate(rates, run_steps, 3),
               (long long)(run_steps > 3 ? run_steps - 3 : run_steps));
        fflush(stdout);
    }
    free(rates);
    /* No rank leaves before rank 0 has the checkpoint on disk. */
    comm_set_phase("the final checkpoint", (long long)t.global_step);
    comm_barrier();
    trainer_free(&t);
    return code;
}
