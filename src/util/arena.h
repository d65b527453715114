/* arena.h - bump allocator for many small allocations freed together.
 * Allocations are 16-byte aligned; nothing is freed individually. ragd_arena_reset keeps the
 * first chunk for reuse. Not thread-safe: one arena per thread or per request.
 */
#ifndef RAGD_UTIL_ARENA_H
#define RAGD_UTIL_ARENA_H

#include <stddef.h>

typedef struct ragd_arena_chunk ragd_arena_chunk;
typedef struct ragd_arena {
    ragd_arena_chunk *head;
    size_t chunk_size;
    size_t total; /* bytes handed out since create/reset */
} ragd_arena;

/* chunk_size 0 picks 64 KiB. */
void ragd_arena_init(ragd_arena *a, size_t chunk_size);
void ragd_arena_free(ragd_arena *a);
void ragd_arena_reset(ragd_arena *a);
/* Returns NULL only on allocation failure. Memory is zeroed. */
void *ragd_arena_alloc(ragd_arena *a, size_t size);
char *ragd_arena_strdup(ragd_arena *a, const char *s);
char *ragd_arena_strndup(ragd_arena *a, const char *s, size_t n);

#endif
