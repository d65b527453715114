/* sampling.h - sampling parameters and the host-side sampler.
 *
 * Semantics follow the reference implementations users compare against:
 *  - repetition_penalty: transformers (logit > 0 ? logit / p : logit * p) over every token id
 *    present in prompt + output;
 *  - presence_penalty / frequency_penalty: OpenAI (subtract presence if count > 0 and
 *    frequency * count, counting generated tokens only);
 *  - then temperature, then top-k, top-p, min-p filtering, then a draw from the seeded RNG.
 *  - temperature == 0 means greedy (argmax after penalties).
 * Thread-safety: a ragd_sampler belongs to one sequence.
 */
#ifndef RAGD_ENGINE_SAMPLING_H
#define RAGD_ENGINE_SAMPLING_H

#include <stdbool.h>
#include <stdint.h>

#define RAGD_MAX_TOP_LOGPROBS 20

typedef struct ragd_sampling_params {
    float temperature;        /* 0 = greedy */
    float top_p;              /* 1 = off */
    int top_k;                /* 0 = off */
    float min_p;              /* 0 = off */
    float repetition_penalty; /* 1 = off */
    float presence_penalty;   /* 0 = off */
    float frequency_penalty;  /* 0 = off */
    uint64_t seed;
    bool has_seed;
    int logprobs; /* number of top logprobs to return (0..20); -1 = none */
} ragd_sampling_params;

void ragd_sampling_defaults(ragd_sampling_params *p);

#endif
