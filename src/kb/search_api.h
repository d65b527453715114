/* search_api.h - the /v1/search endpoint as a transport-free function, and the JSON form of
 * search results (shared with `ragd search --json`).
 *
 * Request: {"indexes":["A","B"] (or "index":"A"), "query":"..." or "queries":["...",...],
 *           "k":10, "mode":"bm25"|"vector"|"hybrid" (default hybrid), "fusion":"rrf"|"weighted",
 *           "vector_weight":0.5, "ef_search":64, "vector_search":"auto"|"exact"|"hnsw",
 *           "with_text":true}
 * Response 200: {"object":"list","model":<embedder or null>,"mode":..,"distinct_queries":n,
 *   "data":[{"object":"search.result","query_index":i,"query":"...","results":[{"index",
 *   "document","document_id","title","chunk_id","score","ranks":{"bm25","vector"},
 *   "scores":{"bm25","vector"},"start","end","text","metadata"}]}],
 *   "timings":{"embed_ms","search_ms","fetch_ms","total_ms"}}
 * Errors: OpenAI-style {"error":{"message","type","param","code"}} with 400 (bad request),
 *   404 (unknown index), 413 (too many queries) or 500.
 * Thread-safety: reentrant; call from any number of server threads.
 */
#ifndef RAGD_KB_SEARCH_API_H
#define RAGD_KB_SEARCH_API_H

#include <stddef.h>

#include "kb/kb.h"
#include "util/str.h"

#define RAGD_KB_API_MAX_QUERIES 1024

/* emb may be NULL (then "hybrid" degrades to BM25 and "vector" is a 400). Always fills
 * out_json and *http_status; returns RAGD_OK unless out of memory. */
int ragd_kb_search_api_handle(ragd_kb *kb, const ragd_kb_embedder *emb, const char *body,
                              size_t len, ragd_buf *out_json, int *http_status);

/* Append results as the "data" array elements (without brackets handling: writes the whole
 * array). */
int ragd_kb_results_json(const ragd_kb_results *r, const char *const *queries, int with_text,
                         ragd_buf *out);

/* OpenAI-style error body. */
int ragd_kb_api_error(ragd_buf *out, const char *message, const char *type, const char *param,
                      const char *code);

#endif
