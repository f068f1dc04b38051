/* fuzz_checkpoint: the HDF5 checkpoint reader (ckpt_read, ckpt_read_spec) on
 * arbitrary bytes.
 *
 * Built twice. fuzz_checkpoint takes each input as a whole file, as the program
 * would meet it: the integrity header (ckpt_seal.h) must hold first. With
 * FUZZ_SEAL_INPUT (fuzz_checkpoint_body) the input is the HDF5 part only and the
 * harness puts a valid header in front, so the mutations reach HDF5 and the checks
 * behind it: what a file that passed the CRC could still contain.
 *
 * ckpt_read takes a path, so each input is written to the process's temporary file
 * (fuzz_file). The model is built once: ResNet-18, width 2, 10 classes,
 * the architecture of the seed checkpoint (ckpt_read checks depth, width and classes;
 * the image size only sizes activations, so a small one keeps start-up cheap).
 * Besides the sanitizers: a failure must come with a message, a success must leave
 * a state within the documented ranges, and no HDF5 file or object may stay open. */
#include "checkpoint.h"
#include "ckpt_seal.h"
#include "fuzz.h"
#include "resnet.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

static struct fuzz_file file;
static struct resnet model;
static struct ckpt_state state;

static void check_closed(void)
{
    FUZZ_REQUIRE(H5Fget_obj_count((hid_t)H5F_OBJ_ALL, H5F_OBJ_ALL) == 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_file_open(&file, "fuzz_checkpoint");
    const struct model_spec spec = {.depth = 18, .width = 2, .num_classes = 10,
                                    .in_channels = 1, .image_size = 8, .max_batch = 1};
    resnet_init(&model, &spec);
    /* HDF5's one-time set-up now, not inside the first input's leak check. */
    H5open();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
#ifdef FUZZ_SEAL_INPUT
    unsigned char *sealed = calloc(1, CKPT_SEAL_SIZE + size);
    FUZZ_REQUIRE(sealed != NULL);
    if (size) memcpy(sealed + CKPT_SEAL_SIZE, data, size);
    ckpt_seal_image(sealed, CKPT_SEAL_SIZE + size);
    fuzz_file_set(&file, sealed, CKPT_SEAL_SIZE + size);
    free(sealed);
#else
    fuzz_file_set(&file, data, size);
#endif
    char err[1024] = "";
    if (ckpt_read(file.path, &model, &state, err, sizeof err) == 0) {
        FUZZ_REQUIRE(state.epoch >= 0 && state.step_in_epoch >= 0 && state.global_step >= 0);
        FUZZ_REQUIRE(state.world_size >= 1 && state.global_batch >= 1 && state.image_size >= 1);
        FUZZ_REQUIRE(memchr(state.config_text, '\0', sizeof state.config_text) != NULL);
        for (int i = 0; i < model.nparams; i++) {
            const struct tensor_view *p = &model.params[i];
            for (size_t j = p->offset; j < p->offset + p->count; j++)
                FUZZ_REQUIRE(isfinite(model.weights[j]) && isfinite(model.momentum[j]));
        }
    } else {
        FUZZ_REQUIRE(err[0] != '\0');
    }
    check_closed();

    struct model_spec spec;
    err[0] = '\0';
    if (ckpt_read_spec(file.path, &spec, err, sizeof err) == 0) {
        FUZZ_REQUIRE(spec.depth == 18 || spec.depth == 34 || spec.depth == 50);
        FUZZ_REQUIRE(spec.width >= 1 && spec.width <= 1024);
        FUZZ_REQUIRE(spec.num_classes >= 2 && spec.num_classes <= 1000);
        FUZZ_REQUIRE(spec.image_size >= 1 && spec.image_size <= 4096);
    } else {
        FUZZ_REQUIRE(err[0] != '\0');
    }
    check_closed();
    return 0;
}
