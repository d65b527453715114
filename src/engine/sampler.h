/* sampler.h - the host-side sampler (semantics in engine/sampling.h), its seeded PRNG and the
 * text-level stop-string helper.
 *
 * Order of operations in ragd_sampler_sample():
 *   1. logprobs (when params.logprobs >= 0): log-softmax of the RAW logits (what the model
 *      says, before penalties and temperature - as the golden greedy_logprobs and vLLM's
 *      default); the chosen token's logprob and the top-n.
 *   2. repetition_penalty over every id in prompt + generated (each id once, transformers);
 *      presence/frequency penalties over generated ids (OpenAI);
 *   3. suppressed ids (EOS before min_tokens) are masked out;
 *   4. temperature 0: argmax (lowest id on ties, like torch.argmax);
 *      otherwise logits / temperature, then top-k, top-p (transformers' rule: a token is kept
 *      while the mass of the tokens ranked above it is < top_p; at least one token), min-p
 *      (drop p < min_p * p_max), then one draw from the seeded xoshiro256** stream.
 * Thread-safety: a ragd_sampler belongs to one sequence.
 */
#ifndef RAGD_ENGINE_SAMPLER_H
#define RAGD_ENGINE_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/backend.h"
#include "engine/sampling.h"
#include "util/err.h"

typedef struct ragd_rng {
    uint64_t s[4];
} ragd_rng;

void ragd_rng_seed(ragd_rng *r, uint64_t seed);
uint64_t ragd_rng_next(ragd_rng *r);
/* Uniform double in [0, 1) with 53 random bits. */
double ragd_rng_uniform(ragd_rng *r);

typedef struct ragd_sampler {
    ragd_sampling_params p;
    ragd_rng rng;
    int vocab;
    float *work;                    /* vocab floats: raw logits copy */
    struct ragd_sampler_cand *cand; /* vocab candidates */
    int32_t *sort;                  /* scratch for penalties */
    size_t sort_cap;
} ragd_sampler;

/* Range checks with messages naming the field (temperature >= 0, 0 < top_p <= 1, top_k >= 0,
 * 0 <= min_p <= 1, repetition_penalty > 0, |presence|,|frequency| <= 2, logprobs <= 20). */
int ragd_sampling_validate(const ragd_sampling_params *p, ragd_err *err);

/* Seeds from p->seed when has_seed, else from the clock. */
int ragd_sampler_init(ragd_sampler *s, const ragd_sampling_params *p, int vocab, ragd_err *err);
void ragd_sampler_free(ragd_sampler *s);

/* Pick the next token from one logits row (modified in place). prompt/gen: the sequence so far
 * (penalties); suppress: ids that must not be picked this step. */
int ragd_sampler_sample(ragd_sampler *s, float *logits, const int32_t *prompt, int n_prompt,
                        const int32_t *gen, int n_gen, const int32_t *suppress, int n_suppress,
                        ragd_sample_out *out, ragd_err *err);

/* log-softmax helpers over a logits row: log-sum-exp, and the top-n (ids and logprobs,
 * descending; n <= RAGD_MAX_TOP_LOGPROBS). */
double ragd_logsumexp(const float *logits, int n);
int ragd_top_logprobs(const float *logits, int vocab, double lse, int n, int32_t *ids, float *lps);

/* The first index of the maximum of x[0..n) (as torch.argmax on finite rows; NaN is never
 * picked), -1 when no entry is above -inf. */
int ragd_argmax(const float *x, int n);

/* The k largest of x[0..n) (descending; ties: lower id first; NaN never). Returns the count, -1
 * on OOM. */
int ragd_topk(const float *x, int n, int k, int32_t *ids, float *vals);

/* Stop strings in a decoded stream. text[0..len) is everything generated so far.
 * Returns true when a stop string occurs: *end = offset where it starts (the text to return
 * is text[0..*end), the stop string excluded, as OpenAI). Otherwise *end = how many bytes may
 * be emitted now: up to the longest tail that could still become a stop string, and never
 * inside a UTF-8 character. `from`: bytes already checked (search restarts a little before). */
bool ragd_stop_scan(const char *text, size_t len, size_t from, const char *const *stops,
                    int n_stops, size_t *end);

#endif
