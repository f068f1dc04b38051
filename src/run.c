/* run: the program's loop around the trainer (train.h): resume, epochs of steps with
 * their metrics and progress line, evaluation, the checkpoint cadence, and the final
 * checkpoint and summary. */
#include "run.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blas_kernel.h"
#include "checkpoint.h"
#include "ckpt_store.h"
#include "error.h"
#include "metrics.h"
#include "profile.h"
#include "timer.h"
#include "train.h"

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
    const char *bad = trainer_first_nonfinite(&t->model);
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

/* Rank 0: the checkpoint to resume from (resume = auto | none | PATH), read into the
 * model and *st; "" in chosen when training starts fresh. */
static void pick_checkpoint(struct trainer *t, struct ckpt_state *st, char *chosen, size_t size)
{
    const struct config *cfg = t->cfg;
    char err[1024];
    struct ckpt_entry *list;
    int n = ckpt_store_list(cfg->checkpoint_dir, &list);
    chosen[0] = '\0';
    if (strcmp(cfg->checkpoint_resume, "none") == 0) {
        if (n > 0)
            FAIL_INPUT("[checkpoint] dir '%s' already holds checkpoints of another run (newest "
                       "%s) and [checkpoint] resume = none: expected resume = auto to continue "
                       "it, or an empty or new [checkpoint] dir", cfg->checkpoint_dir, list[0].path);
    } else if (strcmp(cfg->checkpoint_resume, "auto") == 0) {
        for (int i = 0; i < n && !chosen[0]; i++) {
            if (ckpt_read(list[i].path, &t->model, st, err, sizeof err) == 0)
                snprintf(chosen, size, "%s", list[i].path);
            else
                printf("# resume: skipping %s: %s\n", list[i].path, err);
        }
        if (!chosen[0])
            printf("# resume = auto: no usable checkpoint in %s, starting fresh\n", cfg->checkpoint_dir);
    } else {
        if (ckpt_read(cfg->checkpoint_resume, &t->model, st, err, sizeof err) != 0)
            FAIL_INPUT("[checkpoint] resume = %s: %s", cfg->checkpoint_resume, err);
        snprintf(chosen, size, "%s", cfg->checkpoint_resume);
    }
    ckpt_store_free(list, n);
}

/* Rank 0 picks and reads the checkpoint to resume from; the state then goes to every
 * rank. Returns whether training resumes. */
static bool resume_from_checkpoint(struct trainer *t)
{
    double info[7] = {0};
    if (t->comm.rank == 0) {
        char chosen[CONFIG_PATH_MAX + 64];
        struct ckpt_state st;
        pick_checkpoint(t, &st, chosen, sizeof chosen);
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

/* ---- the loop ------------------------------------------------------------------------ */

/* What the loop carries from step to step. */
struct run {
    struct trainer t;
    const struct config *cfg;
    bool leader, progress;
    struct metrics_log *log; /* rank 0 */
    double *rates;           /* images/s of each step of this run */
    int64_t run_steps, rate_cap;
    double started;
    int code;
};

static void log_or_fail(int rc, const char *err)
{
    if (rc != 0) error_exit(EXIT_CODE_INTERNAL, "%s", err);
}

static void print_config(const struct config *cfg)
{
    char text[8192];
    config_format(cfg, text, sizeof text);
    printf("# resnet_ddp %s, config %s resolved:\n", RESNET_DDP_VERSION, cfg->source_path);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) printf("#   %s\n", line);
}

/* Rank 0's start-up lines. */
static void print_banner(const struct run *r, const char *metrics_path)
{
    const struct trainer *t = &r->t;
    const struct config *cfg = r->cfg;
    print_config(cfg);
    printf("# model ResNet-%d: %zu trainable parameters, %.1f MFLOP per training image at %dx%d; "
           "memory: %.0f MiB activations (batch %d per rank), %.0f MiB parameters + "
           "gradients + momentum\n",
           cfg->depth, t->model.trainable, resnet_flops_per_image(&t->model) / 1e6, t->image_size,
           t->image_size, (double)t->model.arena.size / 1048576.0, t->model.spec.max_batch,
           (double)t->model.param_floats *
               (2 * sizeof(float) + grad_arena_value_bytes(&t->model.grads)) / 1048576.0);
    printf("# data %lld training / %lld test images; %d rank(s) x %d thread(s); %d node(s); "
           "global batch %d, %lld steps per epoch; sync BN %s; %d gradient bucket(s), overlap %s, "
           "summed by %s\n",
           (long long)t->train_set.count, (long long)t->test_set.count, t->comm.world, t->threads,
           t->comm.nodes,
           t->global_batch, (long long)t->steps_per_epoch, cfg->sync_bn ? "on" : "off",
           grad_sync_buckets(t->grad_sync), grad_sync_overlaps(t->grad_sync) ? "on" : "off",
           t->comm.world > 1 ? grad_sync_method(t->grad_sync) : "none (one rank)");
    printf("# BLAS: %s\n", blas_kernel_description());
    /* Rank 0 alone writes them: say where it runs, for multi-node jobs. */
    char host[256] = "?";
    gethostname(host, sizeof host - 1);
    printf("# checkpoints in %s (written by rank 0, on host %s), metrics in %s\n",
           cfg->checkpoint_dir, host, metrics_path);
    fflush(stdout);
}

/* Prepares the checkpoint directory, resumes, opens the metrics log. */
static void run_open(struct run *r, const struct config *cfg, const struct comm_info *comm)
{
    memset(r, 0, sizeof *r);
    r->cfg = cfg;
    r->leader = comm->rank == 0;
    trainer_init(&r->t, cfg, comm);
    trainer_install_signal_handlers();
    char metrics_path[2 * CONFIG_PATH_MAX], err[1024];
    if (cfg->metrics_path[0])
        snprintf(metrics_path, sizeof metrics_path, "%s", cfg->metrics_path);
    else
        snprintf(metrics_path, sizeof metrics_path, "%s/metrics.h5", cfg->checkpoint_dir);
    if (r->leader && ckpt_store_prepare(cfg->checkpoint_dir, err, sizeof err) != 0)
        FAIL_INPUT("%s", err);
    const bool resumed = resume_from_checkpoint(&r->t);
    if (r->leader) {
        r->log = metrics_open(metrics_path, resumed, r->t.global_step, r->t.epoch, err, sizeof err);
        if (!r->log) FAIL_INPUT("%s ([metrics] path)", err);
        print_banner(r, metrics_path);
    }
    r->progress = r->leader && cfg->progress && isatty(STDERR_FILENO);
    r->rate_cap = 1024;
    r->rates = xcalloc((size_t)r->rate_cap, sizeof *r->rates);
    r->started = timer_now();
    r->code = EXIT_CODE_OK;
}

static void print_progress(const struct trainer *t, double started, double images)
{
    fprintf(stderr, "\repoch %lld step %lld/%lld  loss %.4f  acc %.4f  %.1f img/s   ",
            (long long)t->epoch + 1, (long long)t->step_in_epoch, (long long)t->steps_per_epoch,
            t->epoch_loss_sum / t->epoch_count, t->epoch_correct / t->epoch_count,
            images / (timer_now() - started));
}

/* After a step of `epoch`: its rate, its metrics row, the step cadence of checkpoints. */
static void record_step(struct run *r, int64_t epoch)
{
    struct trainer *t = &r->t;
    if (r->run_steps == r->rate_cap) {
        r->rate_cap *= 2;
        r->rates = realloc(r->rates, sizeof *r->rates * (size_t)r->rate_cap);
        CHECK(r->rates, "out of memory");
    }
    r->rates[r->run_steps++] = t->step_count / t->step_seconds;
    if (!r->leader) return;
    char err[1024];
    struct step_record rec = {
        .step = t->global_step, .epoch = epoch + 1, .loss = t->step_loss_sum / t->step_count,
        .lr = lr_at_step(r->cfg, t->global_step - 1, t->steps_per_epoch),
        .images_per_second = t->step_count / t->step_seconds, .seconds = t->step_seconds,
    };
    log_or_fail(metrics_append_step(r->log, &rec, err, sizeof err), err);
    if (r->cfg->checkpoint_every_steps && t->global_step % r->cfg->checkpoint_every_steps == 0) {
        log_or_fail(metrics_flush(r->log, err, sizeof err), err);
        save_checkpoint(t, "every_steps");
    }
}

/* The phase times of this epoch's steps, the largest over ranks, on one line (and the
 * evaluation's when eval_seconds >= 0); the profile table when profiling. */
static void report_times(struct run *r, int64_t steps, double eval_seconds)
{
    const struct step_timers *tm = &r->t.timers;
    double times[6] = {tm->data, tm->forward, tm->backward, tm->allreduce_wait, tm->bn_sync,
                       tm->optimizer};
    comm_allreduce_max_double(times, 6);
    if (!r->leader) return;
    printf("  time (s, max over ranks): data %.2f  forward %.2f  backward %.2f  "
           "allreduce wait %.2f  bn sync %.2f  optimizer %.2f",
           times[0], times[1], times[2], times[3], times[4], times[5]);
    if (eval_seconds >= 0) printf("  eval %.2f", eval_seconds);
    printf("\n");
    if (r->cfg->profile)
        profile_print(&r->t.model.prof, steps, tm->allreduce_wait, tm->bn_sync, tm->optimizer);
    fflush(stdout);
}

/* " test acc X (flip Y)": NaN parts are not evaluated. */
static void print_test(const char *what, double loss, double acc, double acc_flip)
{
    printf("  %s loss %.4f  %s acc %.4f", what, loss, what, acc);
    if (!isnan(acc_flip)) printf(" (flip %.4f)", acc_flip);
}

/* A finished epoch: evaluation (the model, and its weight average if any), its line
 * and metrics row, the epoch cadence of checkpoints. */
static void finish_epoch(struct run *r, int64_t epoch, int64_t steps, double images,
                         double epoch_start)
{
    struct trainer *t = &r->t;
    double train_seconds = timer_now() - epoch_start;
    comm_allreduce_max_double(&train_seconds, 1);
    /* Evaluation every eval_every_epochs epochs and after the last; NaN in between. */
    const bool evaluate =
        (epoch + 1) % r->cfg->eval_every_epochs == 0 || epoch + 1 == r->cfg->epochs;
    const struct eval_sums none = {(double)NAN, (double)NAN, (double)NAN, 1.0};
    const struct eval_sums ev = evaluate ? trainer_evaluate(t, false) : none;
    const struct eval_sums avg = evaluate && t->model.ema ? trainer_evaluate(t, true) : none;
    const double flip = r->cfg->eval_flip ? 1.0 : (double)NAN;
    const double epoch_seconds = timer_now() - epoch_start;
    if (r->leader) {
        char err[1024];
        struct epoch_record rec = {
            .epoch = epoch + 1, .train_loss = t->epoch_loss_sum / t->epoch_count,
            .train_acc = t->epoch_correct / t->epoch_count, .test_loss = ev.loss_sum / ev.count,
            .test_acc = ev.correct / ev.count, .seconds = epoch_seconds,
            .images_per_second = images / train_seconds,
            .test_acc_flip = flip * ev.correct_flip / ev.count,
            .ema_test_loss = avg.loss_sum / avg.count, .ema_test_acc = avg.correct / avg.count,
            .ema_test_acc_flip = flip * avg.correct_flip / avg.count,
        };
        log_or_fail(metrics_append_epoch(r->log, &rec, err, sizeof err), err);
        printf("epoch %lld/%d  train loss %.4f  train acc %.4f", (long long)epoch + 1,
               r->cfg->epochs, rec.train_loss, rec.train_acc);
        if (evaluate) print_test("test", rec.test_loss, rec.test_acc, rec.test_acc_flip);
        if (evaluate && t->model.ema)
            print_test("ema test", rec.ema_test_loss, rec.ema_test_acc, rec.ema_test_acc_flip);
        printf("  %.1f img/s  %.1f s\n", rec.images_per_second, epoch_seconds);
    }
    report_times(r, steps, epoch_seconds - train_seconds);
    if (r->leader && r->cfg->checkpoint_every_epochs &&
        (epoch + 1) % r->cfg->checkpoint_every_epochs == 0)
        save_checkpoint(t, "every_epochs");
    t->epoch_loss_sum = t->epoch_correct = t->epoch_count = 0;
}

/* One epoch from the current position. Returns false when the run stops inside it
 * (max_steps, a stop signal, divergence: r->code says which). */
static bool run_epoch(struct run *r)
{
    struct trainer *t = &r->t;
    const int64_t epoch = t->epoch;
    const double epoch_start = timer_now();
    double last_progress = epoch_start, images = 0;
    int64_t steps = 0;
    memset(&t->timers, 0, sizeof t->timers);
    if (t->step_in_epoch == 0) t->epoch_loss_sum = t->epoch_correct = t->epoch_count = 0;
    while (t->epoch == epoch) {
        if (r->cfg->max_steps && t->global_step >= r->cfg->max_steps) break;
        if (!trainer_step(t)) { /* every rank sees the same global loss */
            trainer_report_divergence(t);
            r->code = EXIT_CODE_DIVERGED;
            break;
        }
        steps++;
        images += t->step_count;
        record_step(r, epoch);
        if (t->stop_requested) { /* every rank saw the flag in the same allreduce */
            r->code = EXIT_CODE_PREEMPTED;
            break;
        }
        if (r->progress && timer_now() - last_progress > 1.0) {
            last_progress = timer_now();
            print_progress(t, epoch_start, images);
        }
    }
    if (r->progress) fprintf(stderr, "\r%*s\r", 78, "");
    if (t->epoch != epoch) {
        finish_epoch(r, epoch, steps, images, epoch_start);
        return true;
    }
    if (r->code == EXIT_CODE_DIVERGED) return false;
    if (r->leader && t->epoch_count > 0) /* stopped inside the epoch: no evaluation */
        printf("epoch %lld/%d stopped at step %lld/%lld  train loss %.4f  train acc %.4f  "
               "%.1f img/s  %.1f s\n", (long long)epoch + 1, r->cfg->epochs,
               (long long)t->step_in_epoch, (long long)t->steps_per_epoch,
               t->epoch_loss_sum / t->epoch_count, t->epoch_correct / t->epoch_count,
               images / (timer_now() - epoch_start), timer_now() - epoch_start);
    report_times(r, steps, -1.0);
    return false;
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

/* The final checkpoint (not after a divergence: the last good one stays) and summary. */
static void run_close(struct run *r)
{
    struct trainer *t = &r->t;
    if (r->leader) {
        char err[1024];
        log_or_fail(metrics_flush(r->log, err, sizeof err), err);
        if (r->code != EXIT_CODE_DIVERGED)
            save_checkpoint(t, r->code == EXIT_CODE_PREEMPTED ? "preempted" : "end of training");
        metrics_close(r->log);
        if (r->code == EXIT_CODE_PREEMPTED)
            printf("# stopped by a signal at global step %lld; exit code %d, resume with "
                   "[checkpoint] resume = auto\n", (long long)t->global_step, EXIT_CODE_PREEMPTED);
        else if (r->code == EXIT_CODE_OK)
            printf("# done: %lld steps, %.1f s\n", (long long)t->global_step, timer_now() - r->started);
        if (r->code != EXIT_CODE_DIVERGED)
            printf("# throughput: median %.1f img/s per step over %lld steps of this run "
                   "(first 3 excluded as warm-up)\n", median_rate(r->rates, r->run_steps, 3),
                   (long long)(r->run_steps > 3 ? r->run_steps - 3 : r->run_steps));
        fflush(stdout);
    }
    free(r->rates);
    /* No rank leaves before rank 0 has the checkpoint on disk. */
    comm_set_phase("the final checkpoint", (long long)t->global_step);
    comm_barrier();
    trainer_free(t);
}

int train_run(const struct config *cfg, const struct comm_info *comm)
{
    struct run r;
    run_open(&r, cfg, comm);
    while (r.t.epoch < cfg->epochs && run_epoch(&r)) {
    }
    run_close(&r);
    return r.code;
}
