/* generate.h - single-request generation on a backend: prefill (in chunks) + decode loop with
 * a trivial block allocation (the whole KV cache belongs to this request), host sampling,
 * a streaming callback per token. Used by `ragd generate` and tests; the serving engine has
 * its own scheduler. num_beams > 1 runs beam search (engine/beam.h).
 * Thread-safety: one call at a time per backend.
 */
#ifndef RAGD_ENGINE_GENERATE_H
#define RAGD_ENGINE_GENERATE_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/backend.h"
#include "engine/sampling.h"
#include "util/err.h"

typedef struct ragd_gen_params {
    ragd_sampling_params sampling;
    int max_tokens;          /* >= 1; clamped to the model's context */
    int min_tokens;          /* EOS / stop ids are suppressed before this many tokens */
    bool ignore_eos;         /* do not stop on the model's EOS ids */
    const int32_t *stop_ids; /* extra stop token ids */
    int n_stop_ids;
    int prefill_chunk;    /* tokens per prefill step; 0 = 512 */
    int num_beams;        /* > 1: beam search (sampling params except penalties ignored) */
    float length_penalty; /* beam: score = sum logprobs / len^length_penalty (default 1) */
    int early_stopping;   /* beam: 1 = true, 0 = false (heuristic), -1 = "never" */
} ragd_gen_params;

void ragd_gen_defaults(ragd_gen_params *p);
/* True when t ends generation: a model EOS id (unless ignore_eos) or one of p->stop_ids. */
bool ragd_gen_is_stop(const ragd_backend *be, const ragd_gen_params *p, int32_t t);

/* Called for each generated token; return nonzero to stop (e.g. a stop string matched). */
typedef int (*ragd_gen_cb)(void *ud, int32_t token, float logprob);

typedef struct ragd_gen_result {
    int32_t *ids;    /* generated ids (the stop token included when it was generated) */
    float *logprobs; /* log-softmax of each chosen token (raw logits) */
    int n;
    const char *finish_reason; /* "stop" (EOS / stop id / callback) or "length" */
    double prefill_s, decode_s;
    int n_prompt;
} ragd_gen_result;

int ragd_generate(ragd_backend *be, const int32_t *prompt, int n_prompt, const ragd_gen_params *p,
                  ragd_gen_cb cb, void *ud, ragd_gen_result *res, ragd_err *err);
void ragd_gen_result_free(ragd_gen_result *r);

#endif
