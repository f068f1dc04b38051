/* train: the loop of DESIGN.md "The flow of one step": batch -> forward -> backward
 * -> gradient sum over ranks -> SGD, evaluation after every epoch, one line per epoch
 * on rank 0. Train loss and accuracy are those of the model in training mode over the
 * epoch's batches (as d2l's train_ch6 reports them); test accuracy uses BN in
 * evaluation mode and counts every test image exactly once. */
#include "train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data.h"
#include "error.h"
#include "gemm.h"
#include "resnet.h"
#include "sgd.h"
#include "timer.h"

struct epoch_stats {
    double loss_sum;   /* sum of per-sample losses */
    double correct;
    double count;
};

static int auto_threads(const struct comm_info *comm)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1) cores = 1;
    long t = cores / (comm->local_world > 0 ? comm->local_world : 1);
    return t < 1 ? 1 : (int)t;
}

/* Evaluation over the whole test set, sharded like training; returns global sums. */
static struct epoch_stats evaluate(struct resnet *model, const struct dataset *test,
                                   struct resizer *rs, int eval_batch, const struct comm_info *comm,
                                   int64_t *indices, int32_t *labels)
{
    struct sampler order;
    sampler_init(&order, test->count, eval_batch * comm->world, 0, false);
    struct epoch_stats st = {0, 0, 0};
    int64_t correct = 0;
    for (int64_t step = 0; step < sampler_steps_per_epoch(&order); step++) {
        int n = sampler_rank_batch(&order, 0, step, comm->rank, comm->world, indices);
        batch_assemble(test, rs, indices, n, model->input, labels);
        st.loss_sum += resnet_forward(model, n, labels, false, 1.0f, NULL, &correct);
        st.count += n;
    }
    sampler_free(&order);
    st.correct = (double)correct;
    double sums[3] = {st.loss_sum, st.correct, st.count};
    comm_allreduce_sum_double(sums, 3);
    st.loss_sum = sums[0];
    st.correct = sums[1];
    st.count = sums[2];
    return st;
}

static void print_config(const struct config *cfg)
{
    char text[8192];
    config_format(cfg, text, sizeof text);
    printf("# resnet_ddp %s, config %s resolved:\n", RESNET_DDP_VERSION, cfg->source_path);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) printf("#   %s\n", line);
}

int train_run(const struct config *cfg, const struct comm_info *comm)
{
    const bool leader = comm->rank == 0;
    /* Data first, on every rank, so a bad file fails everywhere before any collective. */
    struct dataset train_set, test_set;
    dataset_load(&train_set, cfg->data_dir, true, cfg->train_limit, cfg->num_classes);
    dataset_load(&test_set, cfg->data_dir, false, cfg->test_limit, cfg->num_classes);
    if (train_set.rows != test_set.rows || train_set.cols != test_set.cols)
        FAIL_INPUT("%s: training images are %dx%d but test images are %dx%d", cfg->data_dir,
                   train_set.rows, train_set.cols, test_set.rows, test_set.cols);
    if (train_set.rows != train_set.cols && cfg->resize == 0)
        FAIL_INPUT("%s: images are %dx%d; non-square images need [data] resize", cfg->data_dir,
                   train_set.rows, train_set.cols);
    const int image_size = cfg->resize ? cfg->resize : train_set.rows;

    const int global_batch = cfg->batch_size;
    const int rank_batch = (global_batch + comm->world - 1) / comm->world;
    const int eval_batch = cfg->eval_batch_size ? cfg->eval_batch_size : rank_batch;
    const int threads = cfg->threads ? cfg->threads : auto_threads(comm);
    gemm_set_threads(threads);

    struct model_spec spec = {
        .depth = cfg->depth, .width = cfg->width, .num_classes = cfg->num_classes,
        .in_channels = 1, .image_size = image_size,
        .max_batch = rank_batch > eval_batch ? rank_batch : eval_batch,
    };
    struct resnet model;
    resnet_init(&model, &spec);
    if (leader) resnet_init_params(&model, cfg->init, cfg->seed);
    /* Rank 0's initialization is everyone's: one broadcast of each flat arena. */
    comm_bcast_floats(model.weights, model.param_floats, 0);
    comm_bcast_floats(model.buffer_data, model.buffer_floats, 0);

    struct resizer rs;
    resizer_init(&rs, train_set.rows, train_set.cols, cfg->resize);
    struct sampler order;
    sampler_init(&order, train_set.count, global_batch, cfg->seed, true);
    const int64_t steps_per_epoch = sampler_steps_per_epoch(&order);
    int64_t *indices = xcalloc((size_t)spec.max_batch, sizeof *indices);
    int32_t *labels = xcalloc((size_t)spec.max_batch, sizeof *labels);
    struct sgd opt;
    sgd_init(&opt, cfg);
    struct reducer bn_reducer = cfg->sync_bn ? comm_world_reducer() : (struct reducer){NULL, NULL};
    const bool progress = leader && cfg->progress && isatty(STDERR_FILENO);

    if (leader) {
        print_config(cfg);
        printf("# model ResNet-%d: %zu trainable parameters, %.1f MFLOP per training image at %dx%d\n",
               cfg->depth, model.trainable, resnet_flops_per_image(&model) / 1e6, image_size,
               image_size);
        printf("# data %lld training / %lld test images; %d rank(s) x %d BLAS thread(s); "
               "global batch %d, %lld steps per epoch\n",
               (long long)train_set.count, (long long)test_set.count, comm->world, threads,
               global_batch, (long long)steps_per_epoch);
        fflush(stdout);
    }

    int64_t global_step = 0;
    bool stop = false;
    const double run_start = timer_now();
    for (int epoch = 0; epoch < cfg->epochs && !stop; epoch++) {
        struct epoch_stats st = {0, 0, 0};
        int64_t correct = 0;
        double t_fwd = 0, t_bwd = 0, t_comm = 0, t_opt = 0, t_data = 0;
        const double epoch_start = timer_now();
        double last_progress = epoch_start;
        for (int64_t step = 0; step < steps_per_epoch; step++) {
            if (cfg->max_steps && global_step >= cfg->max_steps) {
                stop = true;
                break;
            }
            double t0 = timer_now();
            int n = sampler_rank_batch(&order, epoch, step, comm->rank, comm->world, indices);
            int g = sampler_global_count(&order, step);
            batch_assemble(&train_set, &rs, indices, n, model.input, labels);
            double t1 = timer_now();
            memset(model.grads, 0, sizeof(float) * model.param_floats);
            double loss = resnet_forward(&model, n, labels, true, 1.0f / (float)g, &bn_reducer,
                                         &correct);
            double t2 = timer_now();
            resnet_backward(&model, n, &bn_reducer, NULL);
            double t3 = timer_now();
            comm_allreduce_sum_float(model.grads, model.param_floats);
            double t4 = timer_now();
            float lr = (float)lr_at_step(cfg, global_step, steps_per_epoch);
            sgd_step(&opt, lr, model.param_floats, model.weights, model.grads, model.momentum);
            double t5 = timer_now();
            t_data += t1 - t0;
            t_fwd += t2 - t1;
            t_bwd += t3 - t2;
            t_comm += t4 - t3;
            t_opt += t5 - t4;
            st.loss_sum += loss;
            st.count += n;
            global_step++;
            if (!isfinite(loss))
                error_exit(EXIT_CODE_DIVERGED,
                           "training diverged: loss is %g at epoch %d step %lld (global step %lld); "
                           "lower [train] lr",
                           loss, epoch + 1, (long long)step + 1, (long long)global_step);
            if (progress && (t5 - last_progress > 1.0 || step + 1 == steps_per_epoch)) {
                last_progress = t5;
                fprintf(stderr, "\repoch %d step %lld/%lld  loss %.4f  acc %.4f  %.1f img/s   ",
                        epoch + 1, (long long)step + 1, (long long)steps_per_epoch,
                        st.loss_sum / st.count, (double)correct / st.count,
                        st.count * comm->world / (t5 - epoch_start));
            }
        }
        if (progress) fprintf(stderr, "\r%*s\r", 78, "");
        const double train_seconds = timer_now() - epoch_start;
        st.correct = (double)correct;
        double sums[3] = {st.loss_sum, st.correct, st.count};
        comm_allreduce_sum_double(sums, 3);
        double times[6] = {t_data, t_fwd, t_bwd, t_comm, t_opt, train_seconds};
        comm_allreduce_max_double(times, 6);
        if (sums[2] == 0) break; /* max_steps reached exactly at an epoch boundary */

        struct epoch_stats ev = evaluate(&model, &test_set, &rs, eval_batch, comm, indices, labels);
        const double epoch_seconds = timer_now() - epoch_start;
        if (leader) {
            printf("epoch %d/%d  train loss %.4f  train acc %.4f  test loss %.4f  test acc %.4f  "
                   "%.1f img/s  %.1f s\n",
                   epoch + 1, cfg->epochs, sums[0] / sums[2], sums[1] / sums[2],
                   ev.loss_sum / ev.count, ev.correct / ev.count, sums[2] / times[5], epoch_seconds);
            printf("  time (s, max over ranks): data %.2f  forward %.2f  backward %.2f  "
                   "allreduce %.2f  optimizer %.2f  eval %.2f\n",
                   times[0], times[1], times[2], times[3], times[4], epoch_seconds - train_seconds);
            fflush(stdout);
        }
    }
    if (leader) {
        printf("# done: %lld steps in %.1f s\n", (long long)global_step, timer_now() - run_start);
        fflush(stdout);
    }

    free(indices);
    free(labels);
    sampler_free(&order);
    resizer_free(&rs);
    resnet_free(&model);
    dataset_free(&train_set);
    dataset_free(&test_set);
    return EXIT_CODE_OK;
}
