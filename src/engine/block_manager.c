/* block_manager.c - see block_manager.h. The free list is a doubly linked list over block
 * ids: uncached blocks are reused first (pushed at the head), cached ones are appended at the
 * tail so the prefix cache keeps the most recently used prefixes longest. */
#include "engine/block_manager.h"

#include <stdlib.h>
#include <string.h>

struct ragd_block_manager {
    int n_blocks, block_size;
    int *ref;
    int *prev, *next; /* free list links, -1 terminated */
    bool *in_free;
    int head, tail, n_free, n_cached;
    /* prefix cache */
    bool *cached;
    uint64_t *hash, *parent;
    int32_t *tokens; /* n_blocks * block_size */
    int *chain;      /* next block in the same bucket */
    int *bucket;     /* n_buckets heads */
    int n_buckets;
};

int ragd_bm_create(int n_blocks, int block_size, ragd_block_manager **out, ragd_err *err) {
    if (n_blocks <= 0 || block_size <= 0)
        return ragd_err_set(err, RAGD_EINVAL, "block manager: %d blocks of %d tokens", n_blocks,
                            block_size);
    ragd_block_manager *bm = calloc(1, sizeof *bm);
    if (!bm) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    bm->n_blocks = n_blocks;
    bm->block_size = block_size;
    bm->n_buckets = 1;
    while (bm->n_buckets < 2 * n_blocks) bm->n_buckets <<= 1;
    size_t n = (size_t)n_blocks;
    bm->ref = calloc(n, sizeof(int));
    bm->prev = malloc(n * sizeof(int));
    bm->next = malloc(n * sizeof(int));
    bm->in_free = calloc(n, sizeof(bool));
    bm->cached = calloc(n, sizeof(bool));
    bm->hash = calloc(n, sizeof(uint64_t));
    bm->parent = calloc(n, sizeof(uint64_t));
    bm->tokens = malloc(n * (size_t)block_size * sizeof(int32_t));
    bm->chain = malloc(n * sizeof(int));
    bm->bucket = malloc((size_t)bm->n_buckets * sizeof(int));
    if (!bm->ref || !bm->prev || !bm->next || !bm->in_free || !bm->cached || !bm->hash ||
        !bm->parent || !bm->tokens || !bm->chain || !bm->bucket) {
        ragd_bm_destroy(bm);
        return ragd_err_set(err, RAGD_ENOMEM, "out of memory for %d KV blocks", n_blocks);
    }
    for (int i = 0; i < bm->n_buckets; i++) bm->bucket[i] = -1;
    for (int i = 0; i < n_blocks; i++) {
        bm->prev[i] = i - 1;
        bm->next[i] = i + 1 < n_blocks ? i + 1 : -1;
        bm->in_free[i] = true;
        bm->chain[i] = -1;
    }
    bm->head = 0;
    bm->tail = n_blocks - 1;
    bm->n_free = n_blocks;
    *out = bm;
    return RAGD_OK;
}

void ragd_bm_destroy(ragd_block_manager *bm) {
    if (!bm) return;
    free(bm->ref);
    free(bm->prev);
    free(bm->next);
    free(bm->in_free);
    free(bm->cached);
    free(bm->hash);
    free(bm->parent);
    free(bm->tokens);
    free(bm->chain);
    free(bm->bucket);
    free(bm);
}

int ragd_bm_n_blocks(const ragd_block_manager *bm) {
    return bm->n_blocks;
}
int ragd_bm_block_size(const ragd_block_manager *bm) {
    return bm->block_size;
}
int ragd_bm_n_free(const ragd_block_manager *bm) {
    return bm->n_free;
}
int ragd_bm_n_used(const ragd_block_manager *bm) {
    return bm->n_blocks - bm->n_free;
}
int ragd_bm_n_cached(const ragd_block_manager *bm) {
    return bm->n_cached;
}
int ragd_bm_refcount(const ragd_block_manager *bm, int32_t id) {
    return bm->ref[id];
}

static void unlink_free(ragd_block_manager *bm, int id) {
    int p = bm->prev[id], n = bm->next[id];
    if (p >= 0)
        bm->next[p] = n;
    else
        bm->head = n;
    if (n >= 0)
        bm->prev[n] = p;
    else
        bm->tail = p;
    bm->in_free[id] = false;
    bm->n_free--;
    if (bm->cached[id]) bm->n_cached--;
}

static void uncache(ragd_block_manager *bm, int id) {
    if (!bm->cached[id]) return;
    int *pp = &bm->bucket[bm->hash[id] & (uint64_t)(bm->n_buckets - 1)];
    while (*pp >= 0 && *pp != id) pp = &bm->chain[*pp];
    if (*pp == id) *pp = bm->chain[id];
    bm->chain[id] = -1;
    bm->cached[id] = false;
}

int32_t ragd_bm_alloc(ragd_block_manager *bm) {
    int id = bm->head;
    if (id < 0) return -1;
    unlink_free(bm, id);
    uncache(bm, id);
    bm->ref[id] = 1;
    return id;
}

void ragd_bm_incref(ragd_block_manager *bm, int32_t id) {
    if (bm->in_free[id]) unlink_free(bm, id);
    bm->ref[id]++;
}

void ragd_bm_release(ragd_block_manager *bm, int32_t id) {
    if (bm->ref[id] <= 0) return;
    if (--bm->ref[id] > 0) return;
    bm->in_free[id] = true;
    bm->n_free++;
    if (bm->cached[id]) {
        bm->n_cached++;
        bm->next[id] = -1;
        bm->prev[id] = bm->tail;
        if (bm->tail >= 0)
            bm->next[bm->tail] = id;
        else
            bm->head = id;
        bm->tail = id;
    } else {
        bm->prev[id] = -1;
        bm->next[id] = bm->head;
        if (bm->head >= 0)
            bm->prev[bm->head] = id;
        else
            bm->tail = id;
        bm->head = id;
    }
}

uint64_t ragd_bm_hash(uint64_t parent, const int32_t *tokens, int n) {
    /* FNV-1a over the parent hash and the token ids, then a final avalanche (splitmix64). */
    uint64_t h = 1469598103934665603ull ^ parent;
    h *= 1099511628211ull;
    for (int i = 0; i < n; i++) {
        uint32_t t = (uint32_t)tokens[i];
        for (int b = 0; b < 4; b++) {
            h ^= (t >> (8 * b)) & 0xff;
            h *= 1099511628211ull;
        }
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

static int find(const ragd_block_manager *bm, uint64_t hash, uint64_t parent,
                const int32_t *tokens) {
    int bs = bm->block_size;
    for (int id = bm->bucket[hash & (uint64_t)(bm->n_buckets - 1)]; id >= 0; id = bm->chain[id])
        if (bm->hash[id] == hash && bm->parent[id] == parent &&
            !memcmp(bm->tokens + (size_t)id * (size_t)bs, tokens, (size_t)bs * sizeof(int32_t)))
            return id;
    return -1;
}

int32_t ragd_bm_lookup(ragd_block_manager *bm, uint64_t hash, uint64_t parent,
                       const int32_t *tokens) {
    int id = find(bm, hash, parent, tokens);
    if (id >= 0) ragd_bm_incref(bm, id);
    return id;
}

void ragd_bm_register(ragd_block_manager *bm, int32_t id, uint64_t hash, uint64_t parent,
                      const int32_t *tokens) {
    if (bm->cached[id] || find(bm, hash, parent, tokens) >= 0) return;
    int bs = bm->block_size;
    memcpy(bm->tokens + (size_t)id * (size_t)bs, tokens, (size_t)bs * sizeof(int32_t));
    bm->hash[id] = hash;
    bm->parent[id] = parent;
    bm->cached[id] = true;
    int *head = &bm->bucket[hash & (uint64_t)(bm->n_buckets - 1)];
    bm->chain[id] = *head;
    *head = id;
}

void ragd_bm_reset_cache(ragd_block_manager *bm) {
    for (int i = 0; i < bm->n_blocks; i++) {
        bm->cached[i] = false;
        bm->chain[i] = -1;
    }
    for (int i = 0; i < bm->n_buckets; i++) bm->bucket[i] = -1;
    bm->n_cached = 0;
}
