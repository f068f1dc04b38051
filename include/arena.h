/* arena: one allocation for many buffers, planned before it is made.
 *
 * A plan is run twice: first with no memory, to add up the sizes, then over the one
 * allocation, handing out 64-byte-aligned pieces in the same order. Nothing is
 * allocated later, so a training step never calls malloc. */
#ifndef RESNET_DDP_ARENA_H
#define RESNET_DDP_ARENA_H

#include <stddef.h>

struct arena {
    char *base;   /* NULL while sizing */
    size_t used;  /* bytes handed out so far */
    size_t size;  /* bytes allocated (0 while sizing) */
    void *map;    /* the mapping base lies in, and its size */
    size_t map_size;
};

/* Start a sizing pass. */
void arena_begin_sizing(struct arena *a);
/* Allocate what the sizing pass counted and start the handing-out pass. */
void arena_allocate(struct arena *a);
/* A zeroed piece of `bytes` (NULL during sizing). */
void *arena_take(struct arena *a, size_t bytes);
/* Return the pages to the system without unmapping: between training steps, when
 * nothing in the arena is live (checkpoint writing), so the peak stays the step's. */
void arena_release(struct arena *a);
void arena_free(struct arena *a);

/* A mapping of its own, zero-filled: its pages take no memory until written (the
 * momentum buffer of a run without momentum is never written). */
void *zeroed_pages(size_t bytes);
void free_pages(void *p, size_t bytes);

#endif
