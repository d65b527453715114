/* vecsearch.h - vector search primitives of the knowledge base: exact top-k by inner
 * product (one BLAS matrix-matrix product for a whole batch of queries, blocked over the
 * base so memory stays bounded; top-k selection spread over the thread pool), the same over
 * f16 (IEEE half) vectors with our own kernels (AVX-512 / F16C, portable C fallback; one
 * pass over the vectors for a whole batch of queries, never widened to an f32 matrix) and
 * an HNSW graph (own implementation: M, ef_construction, ef_search; f32 or f16 node
 * vectors; built incrementally, parallel insertion, serialisable so the kb can persist it
 * in its database).
 *
 * Scores are inner products: with L2-normalised embeddings (what the embedder returns)
 * that is cosine similarity, higher is better.
 * Thread-safety: exact search is reentrant. An HNSW graph allows concurrent searches;
 * adding (ragd_hnsw_add_batch inserts in parallel internally, locking per node), marking
 * and syncing need exclusive access.
 */
#ifndef RAGD_KB_VECSEARCH_H
#define RAGD_KB_VECSEARCH_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/str.h"
#include "util/threadpool.h"

float ragd_vec_dot(const float *a, const float *b, int dim);

/* ---- f16 vectors ---- */
/* a . b with b in IEEE half precision (products and sums in f32). The score of one row is
 * computed the same way whatever the batch (bit-identical for one query or many). */
float ragd_vec_dot_f16(const float *a, const uint16_t *b, int dim);
/* f32 -> f16 (round to nearest even) and back (exact). */
void ragd_vec_to_f16(uint16_t *dst, const float *src, size_t n);
void ragd_vec_from_f16(float *dst, const uint16_t *src, size_t n);
/* Exact top-k over f16 base vectors (n x dim) for m f32 queries; outputs as
 * ragd_vec_exact_topk. Rows are split over the pool; each task reads its rows once for all
 * queries (in blocks of up to 64 queries, which stay in cache), so the batched search is one
 * pass over the vectors. */
int ragd_vec_exact_topk_f16(const uint16_t *base, size_t n, int dim, const float *queries, size_t m,
                            int k, ragd_pool *pool, int64_t *out_idx, float *out_score,
                            ragd_err *err);
/* Tests: force the portable C kernels (1) or use the SIMD ones where compiled in (0). */
void ragd_vec_set_portable(int on);

/* Exact top-k: for each of the m queries (m x dim, row-major) the k best rows of base
 * (n x dim). out_idx / out_score are m x k; entries past min(k, n) get idx -1. */
int ragd_vec_exact_topk(const float *base, size_t n, int dim, const float *queries, size_t m, int k,
                        ragd_pool *pool, int64_t *out_idx, float *out_score, ragd_err *err);

typedef struct ragd_hnsw ragd_hnsw;

typedef struct ragd_hnsw_params {
    int M;               /* links per node on upper levels (level 0 has 2M); default 16 */
    int ef_construction; /* default 200 */
    uint64_t seed;       /* level generator seed; default 42 */
    int f16;             /* store node vectors as f16 (half the memory; distances on f16) */
} ragd_hnsw_params;

int ragd_hnsw_create(int dim, const ragd_hnsw_params *p, ragd_hnsw **out, ragd_err *err);
void ragd_hnsw_destroy(ragd_hnsw *h);
size_t ragd_hnsw_size(const ragd_hnsw *h);    /* nodes, deleted included */
size_t ragd_hnsw_deleted(const ragd_hnsw *h); /* nodes marked deleted */
int ragd_hnsw_dim(const ragd_hnsw *h);
int ragd_hnsw_is_f16(const ragd_hnsw *h);
/* Add one vector (copied) with a caller label. vec is in the graph's element type: float,
 * or uint16_t halves for an f16 graph. */
int ragd_hnsw_add(ragd_hnsw *h, const void *vec, int64_t label, ragd_err *err);
/* Add n vectors (the graph's element type) using the pool (parallel insertion). */
int ragd_hnsw_add_batch(ragd_hnsw *h, const void *vecs, const int64_t *labels, size_t n,
                        ragd_pool *pool, ragd_err *err);
/* Mark the node with this label deleted (kept for navigation, never returned). Returns 1
 * if found. Not thread-safe against add/search. */
int ragd_hnsw_mark_deleted(ragd_hnsw *h, int64_t label);
/* Bring the graph in line with the live label set ids (sorted ascending, n): nodes whose
 * label is not in ids are marked deleted; *missing (malloc'd, *n_missing entries) receives
 * the positions in ids of labels the graph lacks, for the caller to add. */
int ragd_hnsw_sync(ragd_hnsw *h, const int64_t *ids, size_t n, size_t **missing, size_t *n_missing);
/* Labels of all live nodes, in node order (malloc'd). */
int ragd_hnsw_labels(const ragd_hnsw *h, int64_t **labels, size_t *n);
/* Top-k by inner product (f32 query, for f16 graphs too); ef = max(ef, k). Writes up to k
 * results, best first. */
int ragd_hnsw_search(const ragd_hnsw *h, const float *q, int k, int ef, int64_t *labels,
                     float *scores, size_t *n_out);
/* Serialise / load (little-endian, versioned). */
int ragd_hnsw_save(const ragd_hnsw *h, ragd_buf *out);
int ragd_hnsw_load(const void *data, size_t len, ragd_hnsw **out, ragd_err *err);

#endif
