/* ckpt_seal: the integrity header of checkpoint files (layout in ckpt_seal.h). */
#include "ckpt_seal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "error.h"

#define SEAL_MAGIC "resnet_ddp checkpoint format 2\n"
#define MAX_FILE_BYTES ((size_t)1 << 36) /* 64 GiB: far above any model this builds */

static uint32_t crc_of(const unsigned char *p, size_t n)
{
    return (uint32_t)crc32_z(crc32_z(0L, Z_NULL, 0), p, n);
}

/* The canonical header for a file of `size` bytes whose body has CRC `crc`. */
static void format_header(unsigned char header[CKPT_SEAL_SIZE], size_t size, uint32_t crc)
{
    memset(header, 0, CKPT_SEAL_SIZE);
    snprintf((char *)header, CKPT_SEAL_SIZE, SEAL_MAGIC "bytes %zu\ncrc32 %08" PRIx32 "\n", size,
             crc);
}

void ckpt_seal_image(unsigned char *image, size_t size)
{
    format_header(image, size, crc_of(image + CKPT_SEAL_SIZE, size - CKPT_SEAL_SIZE));
}

/* Reads all of fd (a regular file of st_size bytes) into a new buffer. */
static int read_all(int fd, size_t size, unsigned char **out, int *errnum)
{
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf) {
        *errnum = ENOMEM;
        return -1;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            *errnum = n < 0 ? errno : EIO; /* 0: the file shrank while being read */
            free(buf);
            return -1;
        }
        got += (size_t)n;
    }
    *out = buf;
    return 0;
}

/* Checks the header of a whole file image; returns NULL or what is wrong. */
static const char *check_header(const unsigned char *image, size_t size, char *why, size_t whysize)
{
    if (size < sizeof SEAL_MAGIC - 1 || memcmp(image, SEAL_MAGIC, sizeof SEAL_MAGIC - 1) != 0)
        return "is not a resnet_ddp checkpoint: expected it to start with the line "
               "'resnet_ddp checkpoint format 2' (files of older formats cannot be read)";
    if (size <= CKPT_SEAL_SIZE) {
        snprintf(why, whysize, "is truncated: %zu bytes, expected more than the %d-byte header", size,
                 CKPT_SEAL_SIZE);
        return why;
    }
    /* Parse the size field, then compare the whole block with its canonical form. */
    char text[CKPT_SEAL_SIZE];
    memcpy(text, image, CKPT_SEAL_SIZE);
    text[CKPT_SEAL_SIZE - 1] = '\0';
    unsigned long long stated = 0;
    unsigned int stated_crc = 0;
    if (sscanf(text + sizeof SEAL_MAGIC - 1, "bytes %20llu\ncrc32 %8x", &stated, &stated_crc) != 2)
        return "has a damaged header: expected the lines 'bytes N' and 'crc32 X' after the first";
    unsigned char canonical[CKPT_SEAL_SIZE];
    format_header(canonical, (size_t)stated, (uint32_t)stated_crc);
    if (memcmp(canonical, image, CKPT_SEAL_SIZE) != 0)
        return "has a damaged header: not in the form the writer produces";
    if (stated != (unsigned long long)size) {
        snprintf(why, whysize, "is truncated or extended: the header says %llu bytes, the file has %zu",
                 stated, size);
        return why;
    }
    uint32_t crc = crc_of(image + CKPT_SEAL_SIZE, size - CKPT_SEAL_SIZE);
    if (crc != (uint32_t)stated_crc) {
        snprintf(why, whysize, "is corrupt: CRC-32 of its contents is %08" PRIx32
                 ", the header says %08x", crc, stated_crc);
        return why;
    }
    return NULL;
}

int ckpt_unseal_file(const char *path, unsigned char **image, size_t *size, char *err,
                     size_t errsize)
{
    /* O_NONBLOCK: a FIFO must not hang the probe. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        error_message(err, errsize, "cannot open checkpoint '%s': %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        error_message(err, errsize, "checkpoint '%s' is not a regular file", path);
        return -1;
    }
    if ((uint64_t)sb.st_size > MAX_FILE_BYTES) {
        close(fd);
        error_message(err, errsize, "checkpoint '%s' is %jd bytes: expected at most %zu", path,
                (intmax_t)sb.st_size, MAX_FILE_BYTES);
        return -1;
    }
    unsigned char *buf = NULL;
    int errnum = 0;
    int rc = read_all(fd, (size_t)sb.st_size, &buf, &errnum);
    close(fd);
    if (rc != 0) {
        error_message(err, errsize, "cannot read checkpoint '%s': %s", path, strerror(errnum));
        return -1;
    }
    char why[160];
    const char *bad = check_header(buf, (size_t)sb.st_size, why, sizeof why);
    if (bad) {
        free(buf);
        error_message(err, errsize, "checkpoint '%s' %s", path, bad);
        return -1;
    }
    *image = buf;
    *size = (size_t)sb.st_size;
    return 0;
}

int ckpt_reseal_file(const char *path, char *err, size_t errsize)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    struct stat sb;
    unsigned char *buf = NULL;
    int errnum = 0;
    if (fd < 0 || fstat(fd, &sb) != 0 || sb.st_size <= CKPT_SEAL_SIZE ||
        read_all(fd, (size_t)sb.st_size, &buf, &errnum) != 0) {
        error_message(err, errsize, "cannot reseal '%s': %s", path,
                fd < 0 ? strerror(errno) : errnum ? strerror(errnum) : "too short or unreadable");
        if (fd >= 0) close(fd);
        return -1;
    }
    ckpt_seal_image(buf, (size_t)sb.st_size);
    ssize_t n = pwrite(fd, buf, CKPT_SEAL_SIZE, 0);
    int closed = close(fd);
    int rc = n == CKPT_SEAL_SIZE && closed == 0 ? 0 : -1;
    if (rc != 0) error_message(err, errsize, "cannot reseal '%s': write failed", path);
    free(buf);
    return rc;
}
