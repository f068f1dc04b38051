/* conv: 2-D convolution with bias over channel-major tensors, as im2col + sgemm.
 *
 * Layout is (C, N, H, W): channel-major, so one sgemm per chunk of samples computes
 *   y[Cout, n*Ho*Wo] = w[Cout, Cin*k*k] . col[Cin*k*k, n*Ho*Wo]
 * and the result is already in the output layout. A 1x1 stride-1 convolution without
 * padding needs no im2col at all. The batch is cut into chunks so that the column
 * buffer stays within the workspace the caller planned (conv2d_col_floats).
 *
 * Chunks never cross a multiple of a block of samples, so that a sample's arithmetic
 * does not depend on which other samples a rank holds: GEMMs round each element
 * according to the shape of the call and the element's place in it, so the same
 * sample cut into chunks differently comes out different in its last bits, and the
 * backward pass through batch-norm amplifies that (docs/DESIGN.md "Numerics").
 * - Micro-shards (`shard` samples, [dist] shard_size): every GEMM covers samples of one
 *   shard only, and the weight gradient of each shard is computed alone in float and
 *   added to a double accumulator. The result then does not depend on how many shards
 *   a process holds, which makes N ranks compute what one process computes, bit for
 *   bit.
 * - Otherwise chunks are cut at multiples of `align` samples, and the weight gradient
 *   is one float sum over the whole batch. Ranks whose slices start at multiples of
 *   `align` then compute every activation and activation gradient exactly as one
 *   process does; only the weight gradients' sums differ in their order.
 * In both cases the im2col and direct GEMMs are cut into fixed tiles (gemm_tiled), so
 * that the number of threads changes nothing either.
 * Semantics are PyTorch's nn.Conv2d (cross-correlation, zero padding). */
#ifndef RESNET_DDP_CONV_H
#define RESNET_DDP_CONV_H

#include <stdbool.h>
#include <stddef.h>

#include "grad.h"

#define CONV_MAX_K 7

/* How a convolution is computed. */
enum conv_algo {
    CONV_IM2COL,   /* columns of the live taps, one GEMM per chunk of samples */
    CONV_DIRECT,   /* one live tap reading the input at the output's own position (1x1
                    * stride 1, or the centre of a 3x3 on a 1x1 map): the GEMM reads x */
    CONV_TINYMAP,  /* one GEMM per real (output position, tap) pair (tinymap.h) */
    CONV_WINOGRAD, /* F(m x m, 3x3) (winograd.h) */
};

struct conv_shape {
    int cin, cout, k, stride, pad;
    int n, h, w;   /* input batch and spatial size */
    int ho, wo;    /* output spatial size, filled by conv_shape_init */
    /* Live taps, filled by conv_shape_init: the kernel positions (ky*k + kx, ascending)
     * that read the input at some output position. On small maps the others only ever
     * multiply padding (a 3x3 pad-1 conv on a 1x1 map has one live tap, the centre),
     * so the GEMMs leave them out and their weight gradient stays exactly zero. */
    int ntaps;
    unsigned char taps[CONV_MAX_K * CONV_MAX_K];
    /* (output position, live tap) pairs that read a real input pixel: tinymap's
     * GEMMs per sample, the multiplications per channel pair without padding. */
    int live_pairs;
    enum conv_algo algo; /* how it is computed: conv_plan's choice */
};

#define CONV_TINY_OUTPUTS 49

/* The geometry, live taps and conv_plan(s, false). */
void conv_shape_init(struct conv_shape *s, int cin, int cout, int k, int stride, int pad, int n,
                     int h, int w);
/* The one choice of algorithm, from the layer's shape alone (so that every rank count
 * and batch computes a layer the same way): direct where one live tap reads the input
 * in place; Winograd (when allowed) for 3x3 stride-1 layers with at least 64 input
 * channels whose tiles need at most half im2col's multiplications and, on tiny maps, at
 * most 0.6x tinymap's (docs/DESIGN.md "Convolution algorithms"); tinymap on output maps
 * of at most CONV_TINY_OUTPUTS positions where im2col would multiply padding; im2col
 * otherwise. */
enum conv_algo conv_plan(const struct conv_shape *s, bool winograd);
/* True when the convolution reads its input directly (1x1, stride 1, no padding). */
bool conv_is_pointwise(const struct conv_shape *s);
/* Floats of column workspace needed to process at least one sample (0 if direct;
 * Winograd's transformed tiles, tinymap's transposed tensors). */
size_t conv2d_col_floats(const struct conv_shape *s);
/* Floats of the live-tap copy of the weights (0 when every tap is live and the
 * convolution is not tiny). */
size_t conv2d_tap_weight_floats(const struct conv_shape *s);
/* Floats of Winograd filter workspace (one transformed filter bank; 0 if not). */
size_t conv2d_winograd_floats(const struct conv_shape *s);
/* Floats of Winograd's products buffer (0 if not Winograd). */
size_t conv2d_winograd_out_floats(const struct conv_shape *s);

/* Floats of the pieces of the weight gradient's GEMM where the im2col or direct path
 * cuts its K (gemm_splits_k) for some chunk of up to `samples` samples; 0 if never. */
size_t conv2d_dw_pieces_floats(const struct conv_shape *s, int samples);

/* Seconds inside convolutions, by part (filled when a workspace carries one). */
struct conv_timing {
    double im2col, col2im, gemm, transform; /* transform: Winograd's and tinymap's weight transforms */
};

/* Workspace shared by all convolutions of a model. */
struct conv_workspace {
    float *col;        /* (col_floats) im2col columns */
    size_t col_floats;
    float *dw;         /* (largest cout * cin * k * k) one shard's weight gradient */
    int shard;         /* samples per micro-shard; 0 = none */
    int align;         /* without micro-shards: chunks do not cross multiples of this (0: none) */
    struct conv_timing *timing; /* NULL: not profiling */
    float *wtap;       /* (largest conv2d_tap_weight_floats) live-tap weights (tiny: tap-major) */
    float *wino;       /* (largest conv2d_winograd_floats) transformed filters */
    float *wino_out;   /* (wino_out_floats, the largest conv2d_winograd_out_floats) Winograd's
                        * products: all zero between calls (winograd.h) */
    size_t wino_out_floats;
    float *dw_pieces;  /* (largest conv2d_dw_pieces_floats) a long-K weight gradient's pieces
                        * (gemm_tiled_long_k); NULL: never cut */
};

/* y (cout, n, ho, wo) = conv(x (cin, n, h, w), w (cout, cin, k, k)) + b (cout). */
void conv2d_forward(const struct conv_shape *s, const float *x, const float *w, const float *b,
                    float *y, const struct conv_workspace *ws);

/* Given dy (cout, n, ho, wo): dw (cout, cin, k, k) += dL/dw, db (cout) += dL/db (db
 * with neither pointer set: no bias), and, if dx != NULL, dx (cin, n, h, w) = dL/dx
 * (or += when accumulate_dx). */
void conv2d_backward(const struct conv_shape *s, const float *x, const float *w, const float *dy,
                     struct grad dw, struct grad db, float *dx, bool accumulate_dx,
                     const struct conv_workspace *ws);

#endif
