/* fuzz_file: the per-process input file of fuzz.h. */
#include "fuzz.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

/* A copy: the caller's struct may be gone by the time atexit runs. */
static char to_remove[sizeof ((struct fuzz_file *)0)->path];

static void remove_file(void)
{
    unlink(to_remove);
}

static _Noreturn void fail(const char *what)
{
    fprintf(stderr, "fuzz: %s: %s\n", what, strerror(errno));
    abort();
}

void fuzz_file_open(struct fuzz_file *f, const char *name)
{
    FUZZ_REQUIRE(to_remove[0] == '\0'); /* one per process */
    const char *dir = getenv("TMPDIR");
    if (!dir || !dir[0]) dir = "/tmp";
    int n = snprintf(f->path, sizeof f->path, "%s/resnet_ddp_%s.XXXXXX", dir, name);
    FUZZ_REQUIRE(n > 0 && (size_t)n < sizeof f->path);
    f->fd = mkstemp(f->path);
    if (f->fd < 0) fail(f->path);
    memcpy(to_remove, f->path, sizeof to_remove);
    atexit(remove_file);
}

void fuzz_file_set(struct fuzz_file *f, const uint8_t *data, size_t size)
{
    if (ftruncate(f->fd, 0) != 0) fail("ftruncate");
    size_t done = 0;
    while (done < size) {
        ssize_t n = pwrite(f->fd, data + done, size - done, (off_t)done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fail("pwrite");
        done += (size_t)n;
    }
}
