/* resnet: the model of d2l.ai's "Residual Networks (ResNet)" chapter, in C.
 *
 * ResNet-18 is exactly the seed's nn.Sequential(b1, b2, b3, b4, b5,
 * AdaptiveAvgPool2d(1), Flatten, Linear): a 7x7/2 stem convolution (with bias) + BN +
 * ReLU + 3x3/2 max-pool; four stages of residual blocks (conv3x3-BN-ReLU-conv3x3-BN,
 * plus a 1x1 convolution WITHOUT BN on the shortcut where the shape changes, then
 * ReLU of the sum); global average pooling; a linear layer. All convolutions carry a
 * bias, as nn.Conv2d does by default. ResNet-34 uses (3, 4, 6, 3) basic blocks;
 * ResNet-50 uses (3, 4, 6, 3) bottleneck blocks (1x1, 3x3 with the stride, 1x1 with
 * 4x the channels; each conv followed by BN) built the same way.
 *
 * Memory: parameters, gradients (grad.h: double with micro-shards, else float) and
 * momentum are three flat arenas with the same offsets. Parameters are laid out in
 * REVERSE forward order (linear first, stem last), the order in which backward
 * finishes them, so the gradients that are ready first form one contiguous prefix that
 * can be sent while backward goes on. Activations are planned once for the largest
 * batch and never reallocated. */
#ifndef RESNET_DDP_RESNET_H
#define RESNET_DDP_RESNET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "batchnorm.h"
#include "config.h"
#include "conv.h"
#include "stem.h"
#include "pool.h"
#include "profile.h"
#include "reducer.h"

#define RESNET_NAME_MAX 48
#define RESNET_MAX_UNITS 3

enum tensor_role {
    ROLE_WEIGHT,       /* conv or linear weight */
    ROLE_BIAS,         /* conv or linear bias */
    ROLE_BN_WEIGHT,    /* gamma */
    ROLE_BN_BIAS,      /* beta */
    ROLE_RUNNING_MEAN,
    ROLE_RUNNING_VAR,
};

/* A named view into a flat arena (parameters or buffers), PyTorch state_dict naming. */
struct tensor_view {
    char name[RESNET_NAME_MAX];
    int ndim;
    int shape[4];
    size_t offset; /* in floats, into the arena */
    size_t count;
    enum tensor_role role;
    int fan_in, fan_out; /* for initialization (weights and biases) */
};

struct model_spec {
    int depth;        /* 18, 34, 50 */
    int width;        /* channels of the first stage (64) */
    int num_classes;
    int in_channels;  /* 1 for Fashion-MNIST */
    int image_size;   /* square input side (28 or the resize) */
    int max_batch;    /* largest per-rank batch forward will see */
    int shard;        /* samples per micro-shard (conv.h); 0 = none */
    int align;        /* without micro-shards: the alignment block of chunks (conv.h); 0 = none */
    size_t col_budget_floats; /* im2col workspace; 0 = a default */
    bool winograd;    /* 3x3 stride-1 pad-1 convolutions by Winograd (winograd.h) */
    bool float_grads; /* a float gradient arena (grad.h); false: double (micro-shards, tests) */
    bool ema;         /* keep an average of the weights and BN buffers (ema.h) */
    bool stem_no_pool; /* the stem without its max-pool ([model] stem = nopool): unfused */
    /* The stem chunk by chunk (stem.h): its two full-size tensors are never stored.
     * Off: conv, BN, ReLU and max-pool as separate layers over the whole batch. */
    bool fused_stem;
    int stem_chunk;   /* samples per fused-stem chunk; 0 = stem_chunk_samples (tests) */
    /* Label smoothing of the training loss (loss.h), in [0, 1). Evaluation forwards
     * use plain cross-entropy, so test losses compare with the literature. */
    double label_smoothing;
};

struct conv_layer {
    int weight, bias;          /* indices into the parameter table */
    int prof;                  /* index into the profile's per-convolution entries */
    struct conv_shape shape;   /* at max_batch */
};

struct bn_layer {
    int weight, bias;              /* gamma, beta: parameter indices */
    int running_mean, running_var; /* buffer indices */
    int c;
    struct bn_saved saved;
};

/* conv -> BN (-> ReLU except on the last unit of a block). Only the BN input is
 * kept: the BN + ReLU output feeding the next convolution lives in the block's
 * scratch buffer and is recomputed from `a` in backward (bit-identical, as cheap
 * as a copy), which saves one activation per unit. */
struct block_unit {
    struct conv_layer conv;
    struct bn_layer bn;
    float *a; /* (c, n, h, w) conv output = BN input */
};

struct block {
    int nunits;
    struct block_unit units[RESNET_MAX_UNITS];
    bool has_shortcut;
    struct conv_layer shortcut; /* 1x1, stride of the block; its output is used only in
                                 * forward, so it lives in the scratch buffer */
    const float *x;             /* (cin, n, h, w) block input (previous output) */
    float *y;                   /* (cout, n, ho, wo) relu(main + shortcut) */
    int cin, cout, h, w, ho, wo;
    /* Work buffers, in memory of later blocks' activations (dead while this block
     * runs: not yet computed in forward, used up in backward) or past them
     * (plan_work_buffers): */
    float *scratch;             /* (cout, n, ho, wo) forward: a unit's BN + ReLU output
                                 * or the shortcut's; backward: the recomputed one */
    float *dt;                  /* (cout, n, ho, wo) backward: gradients inside the block */
    float *dx;                  /* (cin, n, h, w) backward: gradient at the input */
};

struct resnet {
    struct model_spec spec;
    struct resnet_profile prof;

    /* Parameters: table + three arenas with the same offsets. */
    int nparams;
    struct tensor_view *params;
    size_t param_floats;   /* arena length including alignment padding */
    size_t trainable;      /* sum of counts (no padding) */
    float *weights, *momentum;
    struct grad_arena grads; /* double or float (spec.float_grads), grad.h */
    float *ema;              /* spec.ema: the weights' average, same offsets; else NULL */

    /* BN running statistics (running_mean, running_var) and num_batches_tracked. */
    int nbuffers;
    struct tensor_view *buffers;
    size_t buffer_floats;
    float *buffer_data;
    float *ema_buffers;       /* spec.ema: the BN buffers' average; else NULL */
    int64_t num_batches_tracked; /* the same for every BN layer */
    bool backward_ready;         /* a training forward ran since the last backward */

    /* Layers. */
    struct conv_layer stem_conv;
    struct bn_layer stem_bn;
    struct maxpool_shape stem_pool;
    int nblocks;
    struct block *blocks;
    int fc_weight, fc_bias, fc_in;
    int nbn;

    /* Activations (planned for max_batch). */
    struct arena arena;
    float *input;     /* (in_channels, n, S, S) == (n, S, S) for one channel */
    float *stem_a;    /* conv output (unfused stem only) */
    float *stem_h;    /* BN + ReLU output (unfused stem only) */
    float *stem_p;    /* max-pool output */
    int32_t *stem_argmax; /* (unfused stem only) */
    struct stem stem; /* chunk buffers of the fused stem (spec.fused_stem) */
    float *pooled;    /* (fc_in, n) */
    float *logits;    /* (n, num_classes) */
    float *dlogits;   /* (n, num_classes) */
    float *dpooled;   /* (fc_in, n) */
    float *dy_last;       /* gradient at the last block's output (plan_work_buffers) */
    struct conv_workspace ws; /* im2col columns and one shard's weight gradient */
    double *bn_work;      /* (2 * max channels + 1) */
};

/* Build the model (parameter table, layer shapes, activation plan). Exits with a
 * usage error for an unsupported depth or an input too small for the network. */
void resnet_init(struct resnet *m, const struct model_spec *spec);
void resnet_free(struct resnet *m);

/* Deterministic initialization from seed (d2l: Xavier-uniform conv/linear weights,
 * PyTorch default biases, BN gamma 1, beta 0, running mean 0, var 1). */
void resnet_init_params(struct resnet *m, enum init_scheme scheme, uint64_t seed);

/* Forward over the first n (<= max_batch) images of m->input. In training mode BN
 * uses (reduced) batch statistics and updates the running ones, the loss is smoothed
 * by spec.label_smoothing, and dlogits is prepared with loss_scale for backward.
 * Returns the sum of the per-sample losses and adds the number of correct predictions
 * to *correct. */
double resnet_forward(struct resnet *m, int n, const int32_t *labels, bool train,
                      float loss_scale, const struct reducer *red, int64_t *correct);

/* Called during backward each time the gradients in [0, ready_floats) are final. */
struct grad_ready_hook {
    void (*ready)(void *ctx, size_t ready_floats);
    void *ctx;
};

/* Backward after a training forward of the same n: ACCUMULATES into m->grads (the
 * caller zeroes the arena once per step). It uses up the forward's activations (their
 * memory holds its work buffers, plan_work_buffers): another backward needs another
 * training forward first, as PyTorch's backward frees its graph. */
void resnet_backward(struct resnet *m, int n, const struct reducer *red,
                     const struct grad_ready_hook *hook);

/* Lookups by PyTorch state_dict name; -1 if absent. */
int resnet_find_param(const struct resnet *m, const char *name);
int resnet_find_buffer(const struct resnet *m, const char *name);

/* With spec.ema: the averages start from the current weights and buffers. */
void resnet_ema_reset(struct resnet *m);
/* With spec.ema: one average update after optimizer update `update` (1-based). */
void resnet_ema_update(struct resnet *m, double decay, int64_t update);
/* Exchanges the weights and buffers with their averages (evaluating the average; a
 * second call swaps back). */
void resnet_ema_swap(struct resnet *m);

/* Profiling (profile.h): per convolution and per kind of op, forward and backward. */
void resnet_profile_enable(struct resnet *m, bool on);

/* FLOPs of one training image (forward + backward = 3x forward multiply-adds x 2). */
double resnet_flops_per_image(const struct resnet *m);

#endif
