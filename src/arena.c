/* arena: two-pass bump allocator; see arena.h. */
/* MAP_ANONYMOUS and madvise are not POSIX. */
#define _DEFAULT_SOURCE
#include "arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "error.h"

#define ARENA_ALIGN 64

void arena_begin_sizing(struct arena *a)
{
    memset(a, 0, sizeof *a);
}

#define HUGE_PAGE ((size_t)2 << 20)

void arena_allocate(struct arena *a)
{
    a->size = a->used ? a->used : ARENA_ALIGN;
    /* Its own mapping, so arena_release can hand the pages back, starting on a 2 MiB
     * boundary and advised into transparent huge pages (Debian's default THP mode is
     * madvise): a Winograd chunk reads and writes 36 position matrices at once, and
     * with huge pages their TLB misses go (about 5% on 96x96's first stage). */
    a->map_size = a->size + HUGE_PAGE;
    void *p = mmap(NULL, a->map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) error_exit(EXIT_CODE_INTERNAL, "out of memory (%zu bytes)", a->size);
    a->map = p;
    a->base = (char *)(((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    madvise(a->base, a->size, MADV_HUGEPAGE); /* advice only: without THP it fails harmlessly */
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
    if (a->map) munmap(a->map, a->map_size);
    memset(a, 0, sizeof *a);
}

void *zeroed_pages(size_t bytes)
{
    void *p = mmap(NULL, bytes ? bytes : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (p == MAP_FAILED) error_exit(EXIT_CODE_INTERNAL, "out of memory (%zu bytes)", bytes);
    return p;
}

void free_pages(void *p, size_t bytes)
{
    if (p) munmap(p, bytes ? bytes : 1);
}
