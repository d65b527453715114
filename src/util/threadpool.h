/* threadpool.h - a fixed pool of worker threads for data-parallel loops.
 *
 * One pool per process, created by the CLI and passed to whatever needs it (model forward
 * passes, embedding, vector search). ragd_pool_run(pool, n, fn, ctx) calls fn(ctx, i, tid)
 * for every i in [0, n) spread over the workers plus the calling thread and returns when all
 * are done. tid is in [0, ragd_pool_size(pool)) and unique among concurrent calls of one run,
 * so callers can keep per-thread scratch buffers indexed by tid.
 * Thread-safety: ragd_pool_run may be called from several threads; runs are serialised.
 * A NULL pool runs everything on the calling thread (tid 0).
 */
#ifndef RAGD_UTIL_THREADPOOL_H
#define RAGD_UTIL_THREADPOOL_H

#include <stddef.h>

typedef struct ragd_pool ragd_pool;
typedef void (*ragd_pool_fn)(void *ctx, size_t i, int tid);

/* n_threads <= 0: use the number of online CPUs. Returns NULL on failure. */
ragd_pool *ragd_pool_create(int n_threads);
void ragd_pool_destroy(ragd_pool *pool);
int ragd_pool_size(const ragd_pool *pool);
void ragd_pool_run(ragd_pool *pool, size_t n, ragd_pool_fn fn, void *ctx);

#endif
