/* config: the INI file (parsed with inih) -> struct config.
 *
 * All defaults live in the keys table of config.c (README.md's table is checked
 * against it by tests/test_readme_config.c). Unknown sections or keys and bad values
 * are errors naming the file, the line, the key and the expected value. Command-line
 * overrides "section.key=value" are applied after the file and win over it. */
#ifndef RESNET_DDP_CONFIG_H
#define RESNET_DDP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_PATH_MAX 1024

/* The stem: d2l's (7x7/2 conv, BN, ReLU, 3x3/2 max-pool) or the same without the
 * max-pool (the first stage then works at twice the resolution). */
enum stem_kind { STEM_D2L, STEM_NOPOOL };

enum lr_schedule {
    LR_SCHEDULE_CONSTANT,
    LR_SCHEDULE_STEP,
    LR_SCHEDULE_COSINE,
    LR_SCHEDULE_ONECYCLE, /* linear up over the warm-up, linear down to 0 at the end */
};
enum init_scheme { INIT_XAVIER, INIT_KAIMING };

struct config {
    /* [data] */
    char data_dir[CONFIG_PATH_MAX]; /* default /usr/share/datasets/fashion-mnist, or $RESNET_DDP_DATA */
    int resize;                     /* 0 = keep 28x28; otherwise output side, bilinear (8..512) */
    int64_t train_limit;            /* 0 = all images; otherwise use the first N */
    int64_t test_limit;             /* 0 = all images */
    /* Training-time augmentation (data.h, struct augment); 0 / false = off. */
    int augment_crop;               /* RandomCrop padding in pixels (0..64) */
    bool augment_flip;              /* RandomHorizontalFlip(0.5) */
    double augment_erase;           /* RandomErasing probability (0..1) */

    /* [model] */
    int depth;        /* 18, 34 or 50 */
    int num_classes;  /* 2..1000, labels must be below it */
    int width;        /* channels of the first stage (64 in the seed); small values for tests */
    enum init_scheme init;
    enum stem_kind stem;

    /* [train] */
    int epochs;
    int batch_size;   /* the GLOBAL batch, split across ranks */
    double lr;
    double momentum;
    double weight_decay;
    bool nesterov;
    double label_smoothing; /* nn.CrossEntropyLoss's, training loss only; [0, 1) */
    enum lr_schedule schedule;
    int lr_step_epochs;   /* schedule=step: multiply lr by lr_gamma every this many epochs */
    double lr_gamma;
    double warmup_epochs; /* linear warm-up from lr/steps to lr over this many epochs
                           * (onecycle: 0 = a quarter of the run) */
    uint64_t seed;
    int64_t max_steps;    /* stop after this many optimizer steps; 0 = no limit */
    int threads;          /* BLAS threads per process; 0 = auto */
    int eval_batch_size;  /* per-rank batch used for evaluation; 0 = per-rank train batch */
    bool progress;        /* live progress line on a terminal */
    bool profile;         /* per-layer time table after every epoch (rank 0) */
    bool winograd;        /* 3x3 stride-1 convolutions by Winograd where it pays */
    double ema_decay;     /* exponential moving average of the weights; 0 = none */
    int eval_every_epochs; /* evaluate every this many epochs, and after the last */
    bool eval_flip;       /* evaluation also with horizontal-flip test-time augmentation */

    /* [dist] */
    bool sync_bn;
    double bucket_mb;
    bool overlap;
    bool shared_memory; /* sum gradients of the ranks on one node in shared memory */
    int shard_size;  /* samples per micro-shard; 0 = each rank's slice is one shard */
    double timeout;  /* seconds a rank may wait in one collective; 0 = no hang guard */

    /* [checkpoint] */
    char checkpoint_dir[CONFIG_PATH_MAX];
    int64_t checkpoint_every_steps;  /* 0 = off */
    int checkpoint_every_epochs;     /* 0 = off */
    int checkpoint_keep;
    char checkpoint_resume[CONFIG_PATH_MAX]; /* "auto", "none" or a path */

    /* [metrics] */
    char metrics_path[CONFIG_PATH_MAX]; /* "" = <checkpoint dir>/metrics.h5 */

    /* Where the values came from, for error messages and the checkpoint. */
    char source_path[CONFIG_PATH_MAX];
};

/* Fill every field with its default (reads $RESNET_DDP_DATA for data_dir). */
void config_defaults(struct config *cfg);

/* The keys, for checking the README's table against them: key i's section, name and
 * default as README.md shows it. */
int config_key_count(void);
void config_key_default(int i, const char **section, const char **key, const char **shown);

/* Parse `path` over the defaults, then apply `noverrides` strings "section.key=value".
 * On any error prints one line and exits with EXIT_CODE_USAGE. */
void config_load(struct config *cfg, const char *path, int noverrides, char *const overrides[]);

/* Parse INI text from `file` over what `cfg` holds (config_load's parser, without its
 * cross-key checks), naming it `name` in messages. Returns EXIT_CODE_OK, or the exit
 * code of the first problem (EXIT_CODE_USAGE for bad text or a read error,
 * EXIT_CODE_INTERNAL when out of memory) with its one-line message in `error`. */
int config_parse_stream(struct config *cfg, FILE *file, const char *name, char *error,
                        size_t error_size);

/* Set one key from text; returns NULL on success or a static message naming the
 * expected value. Used by the INI handler and by the overrides. */
const char *config_set(struct config *cfg, const char *section, const char *key, const char *value);

/* The fully resolved config as INI text (every key), for logs and checkpoints.
 * Writes at most `size` bytes including the NUL; returns the length it needed. */
size_t config_format(const struct config *cfg, char *buf, size_t size);

#endif
