/* arena: two-pass bump allocator; see arena.h. */
/* MAP_ANONYMOUS and madvise are not POSIX. */
#define _DEFAULT_SOURCE
#include "arena.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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
    a->size = a->used ? a->used : ARENA_ALIGN;
    /* Its own mapping, page-aligned, so arena_release can hand the pages back. */
    void *p = mmap(NULL, a->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) error_exit(EXIT_CODE_INTERNAL, "out of memory (%zu bytes)", a->size);
    a->base = p;
    a->used = 0;
}

void arena_release(struct arena *a)
{
    /* The pages come back zero-filled when touched again, as calloc'ed memory. */
    if (a->base) madvise(a->base, a->size, MADV_DONTNEED);
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
    if (a->base) munmap(a->base, a->size);
    memset(a, 0, sizeof *a);
}
