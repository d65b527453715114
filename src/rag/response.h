/* response.h - the JSON the RAG endpoints send: the sources array, the stage timings and the
 * chat.completion(.chunk) objects that carry them. Shared by the HTTP handlers and tests.
 *
 * Sources: [{"index","document","title","chunk_id","score","text"}], text cut to
 * excerpt_chars characters (never inside a UTF-8 character; "…" marks a cut).
 * Timings: {"keywords_ms","embed_ms","search_ms","prompt_ms","ttft_ms","generation_ms",
 * "prompt_tokens","completion_tokens","tokens_per_s"}; ttft is measured from the request's
 * arrival, generation from the first to the last token, tokens_per_s over the tokens after
 * the first (the decode rate; 0 with fewer than two tokens).
 * Thread-safety: pure functions.
 */
#ifndef RAGD_RAG_RESPONSE_H
#define RAGD_RAG_RESPONSE_H

#include <stddef.h>

#include "rag/rerank.h"
#include "util/str.h"

typedef struct ragd_rag_timings {
    double keywords_ms, embed_ms, search_ms, prompt_ms, ttft_ms, generation_ms;
    int prompt_tokens, completion_tokens;
} ragd_rag_timings;

double ragd_rag_tokens_per_s(const ragd_rag_timings *t);

#define RAGD_RAG_EXCERPT_CHARS 1000

int ragd_rag_sources_json(ragd_buf *out, const ragd_rag_source *src, size_t n,
                          size_t excerpt_chars);
int ragd_rag_timings_json(ragd_buf *out, const ragd_rag_timings *t);

#endif
