/* main: the command line. resnet_ddp CONFIG [section.key=value ...]
 * Without mpirun it is a single process (MPI singleton); under mpirun or srun every
 * rank runs this same code. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "blas_kernel.h"
#include "comm.h"
#include "config.h"
#include "error.h"
#include "run.h"

static const char usage[] =
    "usage: resnet_ddp CONFIG.ini [section.key=value ...]\n"
    "       resnet_ddp --help | --version\n"
    "\n"
    "Trains a ResNet on Fashion-MNIST as CONFIG.ini says; each section.key=value\n"
    "overrides the file (e.g. train.epochs=1 data.dir=/path). Run under\n"
    "`mpirun -np N` for N data-parallel ranks.\n"
    "\n"
    "Exit codes: 0 success, 1 internal error, 2 bad command line/config/data/\n"
    "checkpoint/OPENBLAS_CORETYPE, 3 training diverged (non-finite loss).\n"
    "Environment: RESNET_DDP_DATA overrides the default data directory\n"
    "(/usr/share/datasets/fashion-mnist); OPENBLAS_CORETYPE names OpenBLAS's kernel\n"
    "(by default the best for this CPU).\n";

int main(int argc, char **argv)
{
    /* --help and --version need no MPI and must work anywhere. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return EXIT_CODE_OK;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("resnet_ddp %s\n", RESNET_DDP_VERSION);
            return EXIT_CODE_OK;
        }
    }

    /* A file-size limit (ulimit -f) must fail a write with EFBIG, reported like a full
     * disk, instead of killing the process mid-checkpoint. */
    signal(SIGXFSZ, SIG_IGN);
    /* Before MPI_Init: a bad OPENBLAS_CORETYPE then ends every rank with one line. */
    blas_kernel_select();
    struct comm_info comm;
    comm_init(&argc, &argv, &comm);
    if (argc < 2) {
        if (comm.rank == 0) fputs(usage, stderr);
        error_exit(EXIT_CODE_USAGE, "missing CONFIG argument (expected: resnet_ddp CONFIG.ini [section.key=value ...])");
    }
    for (int i = 1; i < argc; i++)
        if (argv[i][0] == '-')
            error_exit(EXIT_CODE_USAGE, "unknown option '%s' (expected --help, --version or CONFIG.ini)", argv[i]);

    struct config cfg;
    config_defaults(&cfg);
    config_load(&cfg, argv[1], argc - 2, argv + 2);
    int code = train_run(&cfg, &comm);
    comm_finalize();
    return code;
}
