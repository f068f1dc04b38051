/* test_learning: the engine learns. A small ResNet-18 (width 16, 28x28 inputs)
 * trained with momentum SGD on the first 64 REAL Fashion-MNIST training images
 * (full batch, 2 BLAS threads) must overfit them: >= 95% accuracy on those images
 * in training mode (batch statistics) within MAX_STEPS steps, with the loss falling
 * well below its start. The budget is in steps, not seconds, so that a loaded
 * machine cannot fail it; the time taken is printed. Eval-mode accuracy (running
 * statistics) is reported. Images go through the same path as training:
 * dataset_load (so RESNET_DDP_DATA works), batch_assemble with a 28 -> 28 resizer,
 * resnet_forward / resnet_backward, sgd_step. A missing data directory is a failure
 * with a clear message: the data set is a dependency installed by the README. */
#include "config.h"
#include "data.h"
#include "gemm.h"
#include "resnet.h"
#include "sgd.h"
#include "testutil.h"

#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define N 64
#define MAX_STEPS 120

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(void)
{
    struct config cfg;
    config_defaults(&cfg);
    struct stat st;
    if (stat(cfg.data_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        EXPECT(false, "Fashion-MNIST directory %s does not exist: install the data set as the "
                      "README says (or point RESNET_DDP_DATA at it)", cfg.data_dir);
        return test_summary("test_learning");
    }
    gemm_set_threads(2);

    struct dataset ds;
    dataset_load(&ds, cfg.data_dir, true, N, 10);
    EXPECT(ds.count == N && ds.rows == 28 && ds.cols == 28, "loaded %lld images of %dx%d",
           (long long)ds.count, ds.rows, ds.cols);
    struct resizer rs;
    resizer_init(&rs, 28, 28, 0);

    struct model_spec spec = {.depth = 18, .width = 16, .num_classes = 10, .in_channels = 1,
                              .image_size = 28, .max_batch = N};
    struct resnet m;
    resnet_init(&m, &spec);
    resnet_init_params(&m, INIT_XAVIER, 1);

    int64_t indices[N];
    int32_t labels[N];
    for (int i = 0; i < N; i++) indices[i] = i;
    batch_assemble(&ds, &rs, NULL, 0, indices, N, m.input, labels);
    int classes_seen = 0;
    for (int c = 0; c < 10; c++) {
        bool seen = false;
        for (int i = 0; i < N; i++) seen |= labels[i] == c;
        classes_seen += seen;
    }
    EXPECT(classes_seen >= 8, "only %d classes among the first %d images", classes_seen, N);

    cfg.momentum = 0.9;
    cfg.weight_decay = 0.0;
    cfg.nesterov = false;
    struct sgd opt;
    sgd_init(&opt, &cfg);
    const float lr = 0.05f;

    const double t0 = now();
    double first_loss = 0.0, loss = 0.0;
    int step = 0, streak = 0;
    printf("step  loss    train-mode accuracy (before the update)\n");
    for (step = 0; step < MAX_STEPS && streak < 3; step++) {
        int64_t correct = 0;
        grad_arena_zero(&m.grads);
        loss = resnet_forward(&m, N, labels, true, 1.0f / N, NULL, &correct) / N;
        if (step == 0) first_loss = loss;
        EXPECT(isfinite(loss), "step %d: loss %g", step, loss);
        if (!isfinite(loss)) break;
        resnet_backward(&m, N, NULL, NULL);
        sgd_step(&opt, lr, m.weights, &m.grads, m.momentum);
        streak = correct == N ? streak + 1 : 0;
        if (step % 10 == 0 || streak == 3)
            printf("%4d  %.4f  %lld/%d\n", step, loss, (long long)correct, N);
    }
    const double seconds = now() - t0;

    int64_t train_correct = 0, eval_correct = 0;
    double train_loss = resnet_forward(&m, N, labels, true, 1.0f / N, NULL, &train_correct) / N;
    double eval_loss = resnet_forward(&m, N, labels, false, 1.0f / N, NULL, &eval_correct) / N;
    printf("after %d steps (%.1f s): loss %.4f -> %.4f; train mode %lld/%d (loss %.4f), "
           "eval mode %lld/%d (loss %.4f)\n",
           step, seconds, first_loss, loss, (long long)train_correct, N, train_loss,
           (long long)eval_correct, N, eval_loss);
    EXPECT(train_correct * 100 >= 95 * N,
           "train-mode accuracy %lld/%d after %d steps is below 95%%", (long long)train_correct, N,
           step);
    EXPECT(train_loss < 0.25 * first_loss, "loss %.4f did not fall well below the first %.4f",
           train_loss, first_loss);

    resnet_free(&m);
    resizer_free(&rs);
    dataset_free(&ds);
    return test_summary("test_learning");
}
