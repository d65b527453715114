/* block_manager.h - the paged KV cache's bookkeeping: n_blocks fixed-size blocks, reference
 * counts, a free list, and prefix caching (full blocks registered under a hash of their token
 * ids chained with the previous block's hash; a later sequence with the same prefix reuses
 * them). Free blocks that still hold a cached prefix are reclaimed least-recently-freed first.
 * Lookups verify the stored token ids and parent hash, so a hash collision never shares a
 * wrong block. The KV memory itself belongs to the backend; this only hands out block ids.
 * Thread-safety: none; owned by the engine thread.
 */
#ifndef RAGD_ENGINE_BLOCK_MANAGER_H
#define RAGD_ENGINE_BLOCK_MANAGER_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

typedef struct ragd_block_manager ragd_block_manager;

int ragd_bm_create(int n_blocks, int block_size, ragd_block_manager **out, ragd_err *err);
void ragd_bm_destroy(ragd_block_manager *bm);

int ragd_bm_n_blocks(const ragd_block_manager *bm);
int ragd_bm_block_size(const ragd_block_manager *bm);
/* Blocks allocatable now (refcount 0, cached or not). */
int ragd_bm_n_free(const ragd_block_manager *bm);
/* Blocks with refcount > 0. */
int ragd_bm_n_used(const ragd_block_manager *bm);
/* Free blocks that still hold a cached prefix. */
int ragd_bm_n_cached(const ragd_block_manager *bm);

/* A fresh block (refcount 1), evicting a cached one if needed; -1 when none is free. */
int32_t ragd_bm_alloc(ragd_block_manager *bm);
void ragd_bm_incref(ragd_block_manager *bm, int32_t id);
/* Drop one reference; at 0 the block becomes free (keeping its cached contents). */
void ragd_bm_release(ragd_block_manager *bm, int32_t id);
int ragd_bm_refcount(const ragd_block_manager *bm, int32_t id);

/* Hash of a full block: parent hash (0 for the first block) + block_size token ids. */
uint64_t ragd_bm_hash(uint64_t parent, const int32_t *tokens, int n);
/* Block holding exactly these tokens after this parent; the caller gets a reference.
 * -1 when not cached. */
int32_t ragd_bm_lookup(ragd_block_manager *bm, uint64_t hash, uint64_t parent,
                       const int32_t *tokens);
/* Record that block `id` (held by the caller, completely written) holds `tokens` after
 * `parent`. No-op when an identical block is already registered. */
void ragd_bm_register(ragd_block_manager *bm, int32_t id, uint64_t hash, uint64_t parent,
                      const int32_t *tokens);

/* Forget every cached prefix (the backend's KV memory was reinitialised). */
void ragd_bm_reset_cache(ragd_block_manager *bm);

#endif
