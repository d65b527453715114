/* beam.h - beam search on a ragd_backend, following transformers' generate(num_beams=B,
 * do_sample=False) rules:
 *  - each step ranks beam_score + log_softmax(logits) over all beams x vocab and looks at the
 *    best max(2, 1 + n_eos) * B candidates in order; a candidate ending in EOS becomes a
 *    finished hypothesis only if its rank is < B, scored sum_logprobs / gen_len^length_penalty
 *    (gen_len counts the EOS); the best B non-EOS candidates continue;
 *  - the finished set keeps the B best hypotheses; the search is done when B are finished and
 *    early_stopping is true, or (false) the best running score / cur_len^lp cannot beat the
 *    worst finished one, or ("never") the same bound computed at max_length when lp > 0;
 *  - at max_tokens the running beams are added as hypotheses (unless done) and the best
 *    hypothesis is returned (its EOS included when it ended with one).
 * The first step expands beam 0 only (the others start at -1e9 as in transformers). Each
 * beam has its own block table; reordering copies KV blocks with backend copy_blocks.
 * As in transformers' beam search, the repetition penalty and min_tokens apply to the
 * log-softmax of the raw logits (processors on log-probabilities, not renormalised);
 * temperature/top-k/top-p do not apply (greedy beams). Per-token logprobs are those processed
 * values. Checked against transformers 5.17 outputs (tests/data/beam_ref_llama-small.json).
 */
#ifndef RAGD_ENGINE_BEAM_H
#define RAGD_ENGINE_BEAM_H

#include "engine/generate.h"

int ragd_beam_generate(ragd_backend *be, const int32_t *prompt, int n_prompt,
                       const ragd_gen_params *p, ragd_gen_cb cb, void *ud, ragd_gen_result *res,
                       ragd_err *err);

#endif
