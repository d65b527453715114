#include "util/arena.h"

#include <stdlib.h>
#include <string.h>

struct ragd_arena_chunk {
    ragd_arena_chunk *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

void ragd_arena_init(ragd_arena *a, size_t chunk_size) {
    a->head = NULL;
    a->chunk_size = chunk_size ? chunk_size : 64 * 1024;
    a->total = 0;
}

void ragd_arena_free(ragd_arena *a) {
    ragd_arena_chunk *c = a->head;
    while (c) {
        ragd_arena_chunk *n = c->next;
        free(c);
        c = n;
    }
    a->head = NULL;
    a->total = 0;
}

void ragd_arena_reset(ragd_arena *a) {
    if (!a->head) return;
    /* keep the oldest chunk (the tail of the list), free the rest */
    ragd_arena_chunk *c = a->head;
    while (c->next) {
        ragd_arena_chunk *n = c->next;
        free(c);
        c = n;
    }
    c->used = 0;
    a->head = c;
    a->total = 0;
}

void *ragd_arena_alloc(ragd_arena *a, size_t size) {
    size_t need = (size + 15) & ~(size_t)15;
    if (need < size) return NULL;
    ragd_arena_chunk *c = a->head;
    if (!c || c->size - c->used < need) {
        size_t cap = need > a->chunk_size ? need : a->chunk_size;
        c = malloc(sizeof(ragd_arena_chunk) + cap);
        if (!c) return NULL;
        c->size = cap;
        c->used = 0;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += need;
    a->total += need;
    memset(p, 0, size);
    return p;
}

char *ragd_arena_strndup(ragd_arena *a, const char *s, size_t n) {
    char *p = ragd_arena_alloc(a, n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *ragd_arena_strdup(ragd_arena *a, const char *s) {
    return ragd_arena_strndup(a, s, strlen(s));
}
