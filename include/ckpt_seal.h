/* ckpt_seal: the integrity header in front of every checkpoint (format 2).
 *
 * A checkpoint is an HDF5 file with a 512-byte user block (HDF5 skips it; h5py,
 * h5dump and PyTorch tooling read the file as usual). The user block holds three
 * text lines, then zero bytes up to 512:
 *
 *   resnet_ddp checkpoint format 2
 *   bytes <total file size in bytes, decimal>
 *   crc32 <zlib CRC-32 of bytes 512..end, 8 lower-case hex digits>
 *
 * Why: HDF5 1.10's parser reads out of bounds on some corrupt files (fuzzing found
 * heap overflows in H5Aexists and huge allocations in H5Fopen). The reader checks
 * this header and the CRC of the whole file in memory first, so HDF5 only ever
 * parses bytes that are exactly what the writer produced. */
#ifndef RESNET_DDP_CKPT_SEAL_H
#define RESNET_DDP_CKPT_SEAL_H

#include <stddef.h>

#define CKPT_SEAL_SIZE 512 /* the HDF5 user block: a power of two >= 512 */

/* Fills the first CKPT_SEAL_SIZE bytes of a complete file image (size bytes,
 * size > CKPT_SEAL_SIZE) with the header describing it. */
void ckpt_seal_image(unsigned char *image, size_t size);

/* Reads the regular file `path` whole into a malloc'ed buffer and checks its header
 * and CRC. Returns 0 with the buffer in image and its length in size (free it), or
 * -1 with a one-line message naming the file in err. */
int ckpt_unseal_file(const char *path, unsigned char **image, size_t *size, char *err,
                     size_t errsize);

/* Rewrites the header of `path` (an HDF5 file with a CKPT_SEAL_SIZE user block) to
 * match its current bytes: for tests and tools that edit a checkpoint through HDF5.
 * Not atomic. 0, or -1 with a message. */
int ckpt_reseal_file(const char *path, char *err, size_t errsize);

#endif
