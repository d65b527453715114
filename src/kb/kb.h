/* kb.h - the knowledge base: named indexes of chunked documents with BM25 (FTS5, CJK
 * bigrams) and vector search (exact BLAS or HNSW), hybrid fusion, batched de-duplicated
 * queries, ingestion and retrieval evaluation. Storage goes through store.h (embedded
 * SQLite by default).
 *
 * Callers: the CLI (ingest, kb, search, eval-retrieval), the HTTP server (/v1/search via
 * search_api.h) and the RAG pipeline (ragd_kb_search, ragd_kb_term_stats, and the analyzer
 * in analyzer.h for TF-IDF keyword extraction).
 * Thread-safety: a ragd_kb may be used from many threads at once (search, term stats);
 * ingest and deletions may run concurrently with searches (SQLite WAL; searches see the
 * last committed state).
 */
#ifndef RAGD_KB_KB_H
#define RAGD_KB_KB_H

#include <stddef.h>
#include <stdint.h>

#include "kb/chunker.h"
#include "kb/store.h"
#include "util/arena.h"
#include "util/err.h"
#include "util/threadpool.h"

typedef struct ragd_kb ragd_kb;

/* The embedding function the kb uses (ingest and queries): a small vtable so the kb does
 * not depend on how embeddings are computed. ragd_kb_embedder_from_engine (kb_embed.h)
 * wraps the embedding engine of embed/embed.h; tests use deterministic fakes. Vectors must
 * be L2-normalised (inner product = cosine). embed must be thread-safe. */
typedef struct ragd_kb_embedder {
    void *ctx;
    const char *model_name; /* recorded per index; mixing models in one index is an error */
    int dim;
    int (*embed)(void *ctx, const char *const *texts, const size_t *lens, size_t n, float *out,
                 ragd_err *err);
    /* optional: the model's tokenizer for chunk budgets (NULL = approximation) */
    const ragd_kb_token_counter *tokens;
} ragd_kb_embedder;

typedef struct ragd_kb_opts {
    const char *path;         /* database file */
    int readonly;             /* open an existing kb read-only */
    ragd_pool *pool;          /* worker threads (not owned; may be NULL) */
    size_t hnsw_threshold;    /* vector mode "auto" uses HNSW at >= this many vectors (0: 50000) */
    int hnsw_M;               /* 0: 16 */
    int hnsw_ef_construction; /* 0: 200 */
    int hnsw_ef_search;       /* 0: 64 */
    /* BM25 common terms: query terms found in more than this share (0..1] of an index's
     * chunks are left out of the MATCH when a rarer term remains; <= 0 (default): keep every
     * term. Faster on large indexes, but changes the ranking (docs/PERFORMANCE.md). */
    double bm25_max_df;
} ragd_kb_opts;

int ragd_kb_open(const ragd_kb_opts *opts, ragd_kb **out, ragd_err *err);
void ragd_kb_close(ragd_kb *kb);
ragd_store *ragd_kb_store(ragd_kb *kb);

/* ---- indexes ---- */
int ragd_kb_list(ragd_kb *kb, ragd_store_index **out, size_t *n, ragd_err *err);
int ragd_kb_delete_index(ragd_kb *kb, const char *name, ragd_err *err);
/* Delete a document by source, or every document of an ingested file path. */
int ragd_kb_delete_doc(ragd_kb *kb, const char *index, const char *source, size_t *n_deleted,
                       ragd_err *err);

/* ---- ingest (ingest.c) ---- */
typedef struct ragd_kb_ingest_opts {
    const char *index;
    const ragd_kb_embedder *emb; /* NULL: BM25 only */
    int chunk_tokens;            /* 0: whole documents; default in the CLI 256 */
    int overlap;                 /* tokens repeated between consecutive chunks */
    const char *text_column;     /* CSV text column (default "text") */
    int embed_batch;             /* chunks per embedding call (0: 64) */
    /* progress callback after each file and embedding batch (may be NULL) */
    void (*progress)(void *ctx, size_t files_done, size_t files_total, size_t chunks,
                     double seconds);
    void *progress_ctx;
    /* "f32" or "f16": how the index stores its vectors, fixed when the index gets its first
     * chunks (re-ingesting with the other one is an error). NULL: the index's, f32 for a new
     * index. f16 halves memory and disk; exact search reads halves directly. */
    const char *vector_dtype;
} ragd_kb_ingest_opts;

typedef struct ragd_kb_ingest_stats {
    size_t files, files_unchanged, files_ingested, files_failed, files_empty;
    size_t docs, chunks, chunks_embedded;
    size_t tokens_embedded; /* model tokens of the embedded chunks ([CLS]/[SEP] included) */
    double seconds;
    double embed_seconds; /* inside the embedder */
    double store_seconds; /* inside the store's write transactions */
} ragd_kb_ingest_stats;

/* Ingest files and directories (recursively: .txt .md .jsonl .csv). Each file is one
 * transaction: unchanged files are skipped, changed files replace their documents. A file
 * that fails (unreadable, invalid UTF-8, bad JSON) is reported through LOG_ERROR, counted
 * in files_failed and leaves nothing behind; the others still go in. Returns an error only
 * for problems that stop everything (no such index model, database errors). */
int ragd_kb_ingest(ragd_kb *kb, const char *const *paths, size_t n_paths,
                   const ragd_kb_ingest_opts *opts, ragd_kb_ingest_stats *stats, ragd_err *err);

/* ---- search ---- */
typedef enum { RAGD_KB_BM25 = 0, RAGD_KB_VECTOR, RAGD_KB_HYBRID } ragd_kb_mode;
typedef enum { RAGD_KB_RRF = 0, RAGD_KB_WEIGHTED } ragd_kb_fusion;
typedef enum { RAGD_KB_VEC_AUTO = 0, RAGD_KB_VEC_EXACT, RAGD_KB_VEC_HNSW } ragd_kb_vec_algo;

int ragd_kb_parse_mode(const char *s, ragd_kb_mode *out);
int ragd_kb_parse_fusion(const char *s, ragd_kb_fusion *out);
const char *ragd_kb_mode_name(ragd_kb_mode m);

typedef struct ragd_kb_search_opts {
    const char *const *indexes;
    size_t n_indexes;
    int k;                 /* results per query (default 10, max 1000) */
    ragd_kb_mode mode;     /* hybrid falls back to BM25 for indexes without vectors */
    ragd_kb_fusion fusion; /* hybrid: RRF (k = 60) or weighted */
    double vector_weight;  /* weighted fusion: w*cosine + (1-w)*bm25/max_bm25 (default 0.5) */
    ragd_kb_vec_algo vec_algo;
    int ef_search; /* 0: the kb default */
    int no_text;   /* skip loading chunk text/document fields */
} ragd_kb_search_opts;

typedef struct ragd_kb_hit {
    const char *index;
    int64_t chunk_id, doc_id;
    const char *source, *ext_id, *title, *text, *metadata; /* NULL with no_text */
    int64_t start, end;
    double score; /* fused score (bm25 score / cosine in single modes) */
    double bm25_score, vector_score;
    int bm25_rank, vector_rank; /* 1-based within its index; 0 = not retrieved by it */
} ragd_kb_hit;

typedef struct ragd_kb_results {
    size_t n_queries;   /* as given */
    size_t n_distinct;  /* after de-duplication */
    size_t *n_hits;     /* per query */
    ragd_kb_hit **hits; /* per query, best first (queries with equal text share hits) */
    double embed_ms, search_ms, fetch_ms;
    ragd_arena arena;
} ragd_kb_results;

/* Search n queries: duplicates are removed, distinct queries embedded in one batch and
 * searched in one pass per index (one matrix-matrix product for exact vector search),
 * indexes in parallel; results are mapped back to every query in order. emb may be NULL
 * for BM25. Unknown index -> RAGD_ENOTFOUND; vector mode without vectors or embedder, or a
 * model mismatch -> RAGD_EINVAL. */
int ragd_kb_search(ragd_kb *kb, const ragd_kb_embedder *emb, const char *const *queries,
                   size_t n_queries, const ragd_kb_search_opts *opts, ragd_kb_results *out,
                   ragd_err *err);
void ragd_kb_results_free(ragd_kb_results *r);

/* Make the index's vector structures current now (load vectors; build or update and persist
 * the HNSW graph when the index is at or above the threshold, or always with force_hnsw). */
int ragd_kb_prepare_vectors(ragd_kb *kb, const char *index, int force_hnsw, ragd_err *err);

/* ---- statistics for TF-IDF ---- */
/* Document frequency (counted in chunks) of analysed terms (as ragd_kb_analyze emits them)
 * and the number of chunks in the index. */
int ragd_kb_term_stats(ragd_kb *kb, const char *index, const char *const *terms, size_t n,
                       int64_t *df, int64_t *n_docs, ragd_err *err);

/* ---- evaluation ---- */
typedef struct ragd_kb_eval {
    size_t n_queries, n_judged;
    double recall1, recall5, recall10, mrr10, ndcg10;
    double seconds;
} ragd_kb_eval;

/* queries.jsonl: {"_id" or "id", "text"}; qrels.tsv: query-id, corpus-id, score (header line
 * allowed). A hit matches a corpus id through its document's ext_id. */
int ragd_kb_eval_retrieval(ragd_kb *kb, const ragd_kb_embedder *emb, const char *queries_path,
                           const char *qrels_path, const ragd_kb_search_opts *opts, size_t batch,
                           ragd_kb_eval *out, ragd_err *err);

#endif
