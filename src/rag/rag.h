/* rag.h - the RAG pipeline: question -> keywords -> embedding -> parallel hybrid search over
 * the chosen indexes -> merge + rerank -> top-k sources within a prompt token budget ->
 * prompt through the model's chat template -> token ids for the serving engine.
 *
 * ragd_rag_prepare() runs every stage up to the prompt (on the calling thread; the
 * per-index searches fan out over threads) and times each one; the caller submits the
 * prompt ids to the engine (ragd_rag_submit: continuous batching with all other traffic)
 * and streams the answer. ragd_rag_observe() records a finished request's stage timings in
 * the /metrics histograms ragd_rag_stage_seconds{stage=...}.
 * Called by the HTTP RAG handlers (http/rag_routes.c) and `ragd ask`.
 * Thread-safety: a ragd_rag is immutable after creation; prepare / submit / observe may run
 * on many threads at once.
 */
#ifndef RAGD_RAG_RAG_H
#define RAGD_RAG_RAG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "kb/kb.h"
#include "rag/keywords.h"
#include "rag/rerank.h"
#include "rag/response.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "util/err.h"
#include "util/metrics.h"

typedef struct ragd_rag ragd_rag;

typedef struct ragd_rag_opts {
    ragd_kb *kb;                   /* required (not owned) */
    const ragd_kb_embedder *emb;   /* query embeddings; NULL: BM25 only (not owned) */
    ragd_engine *engine;           /* NULL: retrieval and prompt only (not owned) */
    const ragd_tokenizer *tok;     /* required for prompts (not owned) */
    const ragd_reranker *reranker; /* NULL = ragd_reranker_fused */
    const char *system_prompt;     /* NULL = RAGD_RAG_DEFAULT_SYSTEM */
    int top_k;                     /* default 10 */
    int max_prompt_tokens;         /* 0: max_model_len - max_tokens */
    int candidates;                /* hits per query and index before rerank (0: 3 x top_k) */
    ragd_metrics *metrics;         /* optional */
} ragd_rag_opts;

int ragd_rag_create(const ragd_rag_opts *opts, ragd_rag **out, ragd_err *err);
void ragd_rag_destroy(ragd_rag *r);

typedef struct ragd_rag_query {
    const ragd_chat_msg *msgs; /* the conversation; the last message is the question */
    size_t n_msgs;
    const char *const *indexes; /* NULL / 0: every index of the knowledge base */
    size_t n_indexes;
    int top_k;        /* 0 = default */
    const char *mode; /* "hybrid" (default), "bm25", "vector" */
    int max_tokens;   /* answer budget, to size the prompt budget */
} ragd_rag_query;

typedef struct ragd_rag_prepared {
    ragd_keywords keywords;
    ragd_rag_sources sources; /* the sources in the prompt, [1] first */
    ragd_buf prompt;          /* rendered prompt text */
    int32_t *ids;             /* prompt token ids (malloc'd) */
    size_t n_ids;
    ragd_rag_timings timings; /* keywords, embed, search, prompt filled */
} ragd_rag_prepared;

/* Errors: RAGD_ENOTFOUND (an index does not exist), RAGD_EINVAL (bad query, empty
 * knowledge base, prompt over budget); err->msg says which. */
int ragd_rag_prepare(ragd_rag *r, const ragd_rag_query *q, ragd_rag_prepared *out, ragd_err *err);
void ragd_rag_prepared_free(ragd_rag_prepared *p);

/* Submit the prepared prompt to the engine (see ragd_engine_submit). */
int ragd_rag_submit(ragd_rag *r, const ragd_rag_prepared *p, const ragd_req_params *params,
                    ragd_engine_cb cb, void *ctx, const _Atomic bool *cancel, ragd_err *err);

/* Record a finished request's timings in /metrics. */
void ragd_rag_observe(ragd_rag *r, const ragd_rag_timings *t);

/* Wake the engine (after setting a request's cancel flag). */
void ragd_rag_wake(ragd_rag *r);
/* {"object":"list","data":[{"name","documents","chunks","vectors","embed_model","dim"}]} */
int ragd_rag_indexes_json(ragd_kb *kb, ragd_buf *out, ragd_err *err);

const ragd_tokenizer *ragd_rag_tokenizer(const ragd_rag *r);
ragd_kb *ragd_rag_kb(const ragd_rag *r);

#endif
