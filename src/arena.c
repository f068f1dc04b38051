/* arena: two-pass bump allocator; see arena.h. */
#include "arena.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

#define ARENA_ALIGN 64

void arena_begin_sizing(struct arena *a)
{
    a->base = NULL;
    a->used = 0;
    a->size = 0;
}

void arena_allocate(struct arena *a)
{
    a->size = a->used;
    a->base = xcalloc(1, a->size ? a->size : ARENA_ALIGN);
    a->used = 0;
}

void *arena_take(struct arena *a, size_t bytes)
{
    size_t rounded = (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    void *p = a->base ? a->base + a->used : NULL;
    a->used += rounded;
    if (a->base) CHECK(a->used <= a->size, "arena plan changed between passes");
    return p;
}

void arena_free(struct arena *a)
{
    free(a->base);
    memset(a, 0, sizeof *a);
}
