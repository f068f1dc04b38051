/* winograd: 3x3 stride-1 pad-1 convolutions by Winograd's minimal filtering
 * F(m x m, 3x3) with m = 2, 3 or 4 (Lavin & Gray 2016), forward, input gradient and
 * weight gradient.
 *
 * The output is cut into m x m tiles, each read from an a x a input tile, a = m + 2.
 * With the input tiles transformed (V = B^T d B) and the filters transformed
 * (U = G g G^T), every one of the a^2 positions xi of a tile is one GEMM over
 * channels:
 *   M[xi] (cout, tiles) = U[xi] (cout, cin) . V[xi] (cin, tiles)
 * and an output tile is A^T M A. Per channel pair that is 36 multiplications for
 * 4x4 outputs (m = 4: 4 times fewer than im2col's 144), 25 for 3x3 (3.24 times
 * fewer) or 16 for 2x2 (2.25 times fewer). Each map takes the m that multiplies
 * least (tiles sticking out of the map count whole; conv_plan keeps 4x4 tiles
 * off tiny maps): 4 on 96x96's 24x24 and 12x12 maps, 3 on its 6x6 and 3x3 ones. The
 * larger transform constants of m = 3 and 4 cost accuracy, still within test_conv's
 * 1e-4. The input gradient is the same
 * computation with the filter flipped and its channels swapped; the weight gradient
 * is G^T (sum over tiles of (A dy A^T) * V) G, a^2 GEMMs with the tiles as the inner
 * dimension. Tiles that stick out of the map read zeros and their extra outputs are
 * dropped.
 *
 * Tensors are (C, N, H, W); the caller cuts the batch into chunks of samples (conv.c)
 * and passes the chunk's first sample n0 and count nc; the workspace holds
 * winograd_chunk_floats(s) floats per sample of a chunk.
 *
 * The products M of the forward pass and of the input gradient go to a buffer of
 * their own, `out` (winograd_out_floats), which is all zero between calls: the GEMMs
 * add into it (beta = 1) and the output transform clears what it reads. With beta =
 * 0, OpenBLAS would clear M in a pass of its own before each GEMM; a zero M added to
 * gives the same bits. */
#ifndef RESNET_DDP_WINOGRAD_H
#define RESNET_DDP_WINOGRAD_H

#include <stdbool.h>
#include <stddef.h>

#include "conv.h"

/* True for shapes this module computes (3x3, stride 1, pad 1, maps of at least 2x2
 * and at most 256 columns). */
bool winograd_applies(const struct conv_shape *s);

/* Multiplications per channel pair with the tiles it takes: (m + 2)^2 per tile, tiles
 * sticking out of the map counted whole (conv_plan weighs them against im2col's and
 * tinymap's). */
int winograd_multiplications(const struct conv_shape *s);

/* Floats of chunk workspace per sample: the transformed inputs and, for the weight
 * gradient, the transformed output gradients (cin + cout channels of tiles). */
size_t winograd_chunk_floats(const struct conv_shape *s);

/* Floats of the products buffer `out` for a chunk of up to winograd_chunk_samples(s)
 * samples (the most conv.c gives it), forward or input gradient. */
size_t winograd_out_floats(const struct conv_shape *s);

/* Samples per chunk it runs best with: the fewest whole groups of eight samples (its
 * transforms' vector lanes) that give the GEMMs enough columns (tiles), so that the
 * transformed chunk stays near the caches (larger chunks ran slower at 96x96 and
 * 28x28 alike). */
int winograd_chunk_samples(const struct conv_shape *s);

/* Floats of one transformed filter bank: a^2 * cout * cin. */
size_t winograd_filter_floats(const struct conv_shape *s);

/* U (a^2, cout, cin) = G w G^T for w (cout, cin, 3, 3). */
void winograd_transform_filter(const struct conv_shape *s, const float *w, float *u);

/* U (a^2, cin, cout) for the input gradient: the filter flipped, channels swapped. */
void winograd_transform_filter_flipped(const struct conv_shape *s, const float *w, float *u);

/* Chunks of samples [n0, n0 + nc), and groups of them. The forward and input-gradient
 * passes take a group of chunks at once where the filter bank is large (at 96x96's
 * last stage 26 MB, 1 MB per position): each position's GEMMs for every chunk of the
 * group then run back to back, its filter matrix packed from the cache after the
 * first instead of from memory. A group needs winograd_group_floats(s, cin, nc)
 * floats of work and winograd_group_floats(s, cout, nc) of products (cin and cout
 * swapped for the input gradient) for each of its chunks. */
#define WINOGRAD_MAX_GROUP 64
#define WINOGRAD_GROUP_BANK_FLOATS ((size_t)2 << 20)
struct wino_chunk {
    int n0, nc;
};
bool winograd_groups_chunks(const struct conv_shape *s);
size_t winograd_group_floats(const struct conv_shape *s, int channels, int nc);

/* y[chunk] (cout, ...) = conv(x[chunk]) with U from winograd_transform_filter, for
 * each chunk of the group (count <= WINOGRAD_MAX_GROUP); y's row stride per channel
 * is s->n * ho * wo. `out`: all zero, and left so. */
void winograd_forward(const struct conv_shape *s, const float *u, const float *x,
                      const struct wino_chunk *group, int count, float *y, float *work, float *out);

/* dx[chunk] (cin, ...) = (or +=, accumulate) the input gradient for dy[chunk], with U
 * from winograd_transform_filter_flipped, for each chunk of the group. `out`: all
 * zero, and left so. */
void winograd_backward_data(const struct conv_shape *s, const float *u_flipped, const float *dy,
                            const struct wino_chunk *group, int count, float *dx, bool accumulate,
                            float *work, float *out);

/* du (a^2, cout, cin) = (beta 0) or += (beta 1) the weight gradient of the chunk in the
 * transformed domain; winograd_filter_gradient turns the sum into (cout, cin, 3, 3). */
void winograd_backward_filter(const struct conv_shape *s, const float *x, const float *dy, int n0,
                              int nc, float beta, float *du, float *work);

/* dw (cout, cin, 3, 3) = G^T du G. */
void winograd_filter_gradient(const struct conv_shape *s, const float *du, float *dw);

#endif
