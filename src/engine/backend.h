/* backend.h - the interface between the serving engine and a compute backend (CPU, CUDA).
 *
 * The engine (scheduler + paged KV block manager) decides WHAT runs in a step: a batch of
 * sequences, each feeding n_new tokens (a prompt chunk, or 1 token when decoding) on top of
 * n_past tokens already in the KV cache, with a block table mapping logical KV blocks to
 * physical block ids. The backend owns the weights and the KV memory (n_blocks blocks of
 * block_size tokens for every layer) and does the math. Block ids are the engine's business;
 * the backend never allocates or frees blocks on its own.
 *
 * Contract for forward():
 *  - For each sequence, tokens at positions n_past .. n_past+n_new-1 are processed; their K/V
 *    are written into the blocks given by the block table (slot = position % block_size of
 *    block block_table[position / block_size]); attention covers positions 0..pos (causal).
 *  - KV entries for positions < n_past must already be in the cache (written by earlier steps,
 *    or shared prefix blocks written by another sequence).
 *  - Logit rows are written to `logits` (row-major, vocab_size floats per row) in sequence order:
 *    one row (the last new token) for each sequence with want_logits, or n_new rows with
 *    want_all_logits (prompt logprobs / echo). Sequences with neither produce no row.
 *  - The backend may run the sequences in any grouping; results must not depend on which other
 *    sequences share the batch beyond floating-point reassociation documented by the backend.
 * Thread-safety: one engine thread calls a backend; no concurrent calls.
 */
#ifndef RAGD_ENGINE_BACKEND_H
#define RAGD_ENGINE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/sampling.h"
#include "model/llm_config.h"
#include "util/err.h"

typedef struct ragd_batch_seq {
    const int32_t *tokens;      /* n_new token ids */
    int32_t n_new;              /* tokens fed this step (>= 1) */
    int32_t n_past;             /* tokens already in the KV cache (= first new position) */
    const int32_t *block_table; /* physical block ids, covering n_past + n_new positions */
    int32_t n_blocks;           /* entries in block_table */
    bool want_logits;           /* one logits row: the last new token */
    bool want_all_logits;       /* n_new logits rows: every new token */
    /* Optional on-device sampling (backends that implement sample()): */
    const ragd_sampling_params *sampling; /* NULL: engine samples on the host from logits */
    const int32_t *history;               /* prompt + generated ids so far, for penalties */
    int32_t n_history;
    int32_t n_prompt; /* leading history entries that are prompt: presence/frequency penalties
                         count only the generated ones after them (0 = count all) */
} ragd_batch_seq;

typedef struct ragd_batch {
    int n_seqs;
    const ragd_batch_seq *seqs;
} ragd_batch;

/* Per-sequence result of an on-device sampling step. */
typedef struct ragd_sample_out {
    int32_t token;
    float logprob; /* log-softmax of the chosen token */
    int n_top;     /* entries filled in top_ids / top_logprobs */
    int32_t top_ids[RAGD_MAX_TOP_LOGPROBS];
    float top_logprobs[RAGD_MAX_TOP_LOGPROBS];
} ragd_sample_out;

typedef struct ragd_backend ragd_backend;

typedef struct ragd_backend_ops {
    /* Allocate the KV cache: n_blocks blocks of block_size tokens for all layers. */
    int (*kv_init)(ragd_backend *be, int block_size, int n_blocks, ragd_err *err);
    /* Bytes one KV block takes (all layers, K and V) - lets the engine size the cache. */
    size_t (*kv_block_bytes)(const ragd_backend *be, int block_size);
    /* Run one step; see the contract above. logits may be NULL when no row is wanted. */
    int (*forward)(ragd_backend *be, const ragd_batch *batch, float *logits, ragd_err *err);
    /* Optional: forward + sampling on the device for sequences whose `sampling` is set and
     * want_logits is true; out[i] for each such sequence in order. NULL when unsupported. */
    int (*forward_sample)(ragd_backend *be, const ragd_batch *batch, ragd_sample_out *out,
                          ragd_err *err);
    /* Copy whole KV blocks (copy-on-write for beam search / prefix sharing). */
    int (*copy_blocks)(ragd_backend *be, const int32_t *src, const int32_t *dst, int n,
                       ragd_err *err);
    /* Bytes of memory available for KV blocks after weights (CUDA: from
     * --gpu-memory-utilization; CPU: 0 = no limit known). */
    size_t (*kv_budget_bytes)(const ragd_backend *be);
    void (*destroy)(ragd_backend *be);
} ragd_backend_ops;

struct ragd_backend {
    const ragd_backend_ops *ops;
    const char *name; /* "cpu", "cuda" */
    ragd_llm_config cfg;
    void *impl;
};

#endif
