/* engine.h - the serving engine: requests, a paged KV cache (block_manager.h) and one
 * scheduler thread doing iteration-level (continuous) batching over a backend (backend.h).
 *
 * Every step the scheduler (1) drops cancelled / timed-out requests and frees their blocks,
 * (2) gives each running sequence its next tokens (1 when decoding, a prompt chunk when still
 * prefilling) within --max-num-batched-tokens, preempting the newest sequence when KV blocks
 * run out (its blocks are freed and it is recomputed later, from the prefix cache when still
 * there), (3) admits waiting requests into the remaining budget (long prompts are chunked so
 * running streams keep decoding), (4) runs ONE backend forward (or forward_sample) for the
 * whole batch, samples, and reports tokens through the request's callback.
 *
 * Callbacks run on the engine thread, so they must be quick (format + queue bytes). The
 * FINISH event is the last call for a request; after it the engine never touches the request's
 * ctx or cancel flag again.
 * Thread-safety: submit / wake / stats / destroy from any thread; everything else is internal.
 */
#ifndef RAGD_ENGINE_ENGINE_H
#define RAGD_ENGINE_ENGINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/backend.h"
#include "engine/sampling.h"
#include "util/err.h"
#include "util/metrics.h"

typedef struct ragd_engine ragd_engine;

typedef struct ragd_engine_opts {
    int max_num_seqs;           /* running sequences at most (default 64) */
    int max_num_batched_tokens; /* tokens per step (default 2048) */
    int max_model_len;          /* prompt + output tokens (default: model max_pos) */
    int block_size;             /* tokens per KV block (default 16) */
    int n_blocks;               /* KV blocks; 0: from kv_cache_bytes or the backend budget */
    size_t kv_cache_bytes;      /* used when n_blocks == 0 (0: backend budget, else 512 MiB) */
    int max_waiting;            /* bounded waiting queue (default 1024); full -> RAGD_EBUSY */
    bool no_prefix_caching;
    ragd_metrics *metrics; /* optional */
} ragd_engine_opts;

typedef enum {
    RAGD_FINISH_STOP = 1, /* EOS, stop token, or the callback asked to stop (stop string) */
    RAGD_FINISH_LENGTH,   /* max_tokens or max_model_len */
    RAGD_FINISH_ABORT,    /* cancelled (client gone, shutdown) */
    RAGD_FINISH_TIMEOUT,
    RAGD_FINISH_ERROR,
} ragd_finish_reason;

const char *ragd_finish_reason_name(int reason); /* "stop", "length", "abort", ... */

typedef struct ragd_req_params {
    ragd_sampling_params sampling; /* sampling.logprobs: -1 none, else top-N (0..20) */
    int max_tokens;                /* >= 1 */
    int min_tokens;                /* EOS / stop ids suppressed before this many tokens */
    bool ignore_eos;
    const int32_t *stop_token_ids; /* copied at submit */
    int n_stop_token_ids;
    bool prompt_logprobs; /* deliver RAGD_EV_PROMPT_LOGPROB for prompt tokens 1..n-1 */
    double timeout_s;     /* 0 = none; counted from submission */
    /* Beam search (engine/beam.h, transformers' rules) when num_beams > 1: such a request runs
     * exclusively - admission pauses, the running batch drains, the search runs with its own
     * KV layout, then the engine's KV cache is re-initialised (prefix cache emptied). Tokens
     * are delivered when the search ends; top logprobs are not available. */
    int num_beams;
    float length_penalty; /* default 1 */
    int early_stopping;   /* 1 true, 0 false (heuristic), -1 "never" */
} ragd_req_params;

enum { RAGD_EV_TOKEN = 1, RAGD_EV_PROMPT_LOGPROB, RAGD_EV_FINISH };

typedef struct ragd_engine_event {
    int type;
    /* TOKEN / PROMPT_LOGPROB */
    int32_t token;
    int pos; /* position in the sequence (PROMPT_LOGPROB) or index of the generated token */
    float logprob;
    int n_top;
    const int32_t *top_ids;
    const float *top_logprobs;
    /* FINISH */
    int finish_reason;
    int n_prompt, n_generated, n_cached; /* n_cached: prompt tokens served by the prefix cache */
    int n_preempted;
    const char *error; /* RAGD_FINISH_ERROR */
} ragd_engine_event;

/* Return RAGD_CB_CONTINUE, RAGD_CB_STOP (finish with "stop", e.g. a stop string matched) or
 * RAGD_CB_ABORT (client gone) from TOKEN events. The return value of other events is ignored. */
enum { RAGD_CB_CONTINUE = 0, RAGD_CB_STOP = 1, RAGD_CB_ABORT = 2 };
typedef int (*ragd_engine_cb)(void *ctx, const ragd_engine_event *ev);

/* Takes ownership of nothing; be must outlive the engine. Calls be->ops->kv_init. */
int ragd_engine_create(ragd_backend *be, const ragd_engine_opts *opts, ragd_engine **out,
                       ragd_err *err);
/* Stops the thread; unfinished requests get FINISH(abort) first. */
void ragd_engine_destroy(ragd_engine *e);

/* Queue a request. cancel (optional) is polled every step: set it to true (then call
 * ragd_engine_wake) to abort; it must stay valid until FINISH. Errors: RAGD_EINVAL (empty
 * or too long prompt, bad token id, bad params), RAGD_EBUSY (waiting queue full). */
int ragd_engine_submit(ragd_engine *e, const int32_t *prompt, int n_prompt,
                       const ragd_req_params *params, ragd_engine_cb cb, void *ctx,
                       const _Atomic bool *cancel, ragd_err *err);
void ragd_engine_wake(ragd_engine *e);

typedef struct ragd_engine_stats {
    int running, waiting;
    int blocks_used, blocks_total, blocks_cached;
    uint64_t steps, preemptions, prompt_tokens, generated_tokens, prefix_hit_tokens;
    int max_model_len, block_size;
} ragd_engine_stats;
void ragd_engine_get_stats(ragd_engine *e, ragd_engine_stats *st);
int ragd_engine_max_model_len(const ragd_engine *e);
int ragd_engine_vocab_size(const ragd_engine *e);

#endif
