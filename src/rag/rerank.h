/* rerank.h - the RAG pipeline's retrieved passages ("sources"), their merge across indexes
 * and queries, and the pluggable reranker.
 *
 * Merge: every (index, query) search returns hits with the knowledge base's fused score
 * (reciprocal-rank or weighted, comparable across indexes). A chunk found by several queries
 * (the full question and its keywords) is kept once, with the sum of its scores. Then the
 * reranker orders the candidates; the default one sorts by that fused score (ties: index
 * name, then chunk id, so the order is deterministic). A cross-encoder can implement
 * ragd_reranker later without touching the pipeline.
 * Thread-safety: a source list belongs to one request; the default reranker is stateless.
 */
#ifndef RAGD_RAG_RERANK_H
#define RAGD_RAG_RERANK_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

typedef struct ragd_rag_source {
    char *index;    /* index name */
    char *document; /* document path / id */
    char *title;    /* may be NULL */
    int64_t chunk_id;
    double score; /* fused score (after the reranker: its score) */
    char *text;   /* the chunk text */
} ragd_rag_source;

typedef struct ragd_rag_sources {
    ragd_rag_source *items;
    size_t len, cap;
} ragd_rag_sources;

/* Add one hit (strings are copied). A chunk already present (same index and chunk id) gets
 * `score` added to its score instead. */
int ragd_rag_sources_add(ragd_rag_sources *s, const char *index, const char *document,
                         const char *title, int64_t chunk_id, double score, const char *text,
                         size_t text_len);
/* Keep the first n (frees the rest). */
void ragd_rag_sources_truncate(ragd_rag_sources *s, size_t n);
void ragd_rag_sources_free(ragd_rag_sources *s);

typedef struct ragd_reranker {
    const char *name;
    /* Reorder (and optionally rescore) src[0..n) in place, best first. */
    int (*rerank)(void *ctx, const char *question, ragd_rag_source *src, size_t n, ragd_err *err);
    void *ctx;
} ragd_reranker;

/* The default reranker: order by fused score. */
extern const ragd_reranker ragd_reranker_fused;

#endif
