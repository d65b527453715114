#include "engine/generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/beam.h"
#include "engine/sampler.h"
#include "util/clock.h"

#define GEN_BLOCK 16

void ragd_gen_defaults(ragd_gen_params *p) {
    memset(p, 0, sizeof *p);
    ragd_sampling_defaults(&p->sampling);
    p->sampling.logprobs = 0;
    p->max_tokens = 16;
    p->num_beams = 1;
    p->length_penalty = 1.0f;
    p->early_stopping = 0;
}

void ragd_gen_result_free(ragd_gen_result *r) {
    free(r->ids);
    free(r->logprobs);
    memset(r, 0, sizeof *r);
}

bool ragd_gen_is_stop(const ragd_backend *be, const ragd_gen_params *p, int32_t t) {
    if (!p->ignore_eos)
        for (int i = 0; i < be->cfg.n_eos; i++)
            if (be->cfg.eos_ids[i] == t) return true;
    for (int i = 0; i < p->n_stop_ids; i++)
        if (p->stop_ids[i] == t) return true;
    return false;
}

int ragd_generate(ragd_backend *be, const int32_t *prompt, int n_prompt, const ragd_gen_params *p,
                  ragd_gen_cb cb, void *ud, ragd_gen_result *res, ragd_err *err) {
    memset(res, 0, sizeof *res);
    res->n_prompt = n_prompt;
    const ragd_llm_config *cfg = &be->cfg;
    if (n_prompt < 1) return ragd_err_set(err, RAGD_EINVAL, "empty prompt");
    if (n_prompt >= cfg->max_pos)
        return ragd_err_set(err, RAGD_EINVAL, "prompt of %d tokens does not fit the context (%d)",
                            n_prompt, cfg->max_pos);
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= cfg->vocab_size)
            return ragd_err_set(err, RAGD_EINVAL, "prompt token id %d out of range (vocab %d)",
                                prompt[i], cfg->vocab_size);
    if (p->max_tokens < 1) return ragd_err_set(err, RAGD_EINVAL, "max_tokens must be >= 1");
    if (p->min_tokens < 0) return ragd_err_set(err, RAGD_EINVAL, "min_tokens must be >= 0");
    if (p->num_beams > 1) return ragd_beam_generate(be, prompt, n_prompt, p, cb, ud, res, err);
    int max_new = p->max_tokens;
    if (max_new > cfg->max_pos - n_prompt) max_new = cfg->max_pos - n_prompt;
    int total = n_prompt + max_new;
    int nb = (total + GEN_BLOCK - 1) / GEN_BLOCK;
    int rc = be->ops->kv_init(be, GEN_BLOCK, nb, err);
    if (rc) return rc;
    int32_t *bt = malloc(sizeof(int32_t) * (size_t)nb);
    float *logits = malloc(sizeof(float) * (size_t)cfg->vocab_size);
    res->ids = malloc(sizeof(int32_t) * (size_t)max_new);
    res->logprobs = malloc(sizeof(float) * (size_t)max_new);
    int32_t *suppress = malloc(sizeof(int32_t) * (size_t)(RAGD_MAX_EOS + p->n_stop_ids + 1));
    ragd_sampler smp;
    memset(&smp, 0, sizeof smp);
    if (!bt || !logits || !res->ids || !res->logprobs || !suppress) {
        rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < nb; i++) bt[i] = i;
    ragd_sampling_params sp = p->sampling;
    if (sp.logprobs < 0) sp.logprobs = 0;
    if ((rc = ragd_sampler_init(&smp, &sp, cfg->vocab_size, err))) goto out;
    int n_sup = 0;
    for (int i = 0; i < cfg->n_eos; i++) suppress[n_sup++] = cfg->eos_ids[i];
    for (int i = 0; i < p->n_stop_ids; i++) suppress[n_sup++] = p->stop_ids[i];
    /* prefill in chunks; logits only for the last prompt token */
    int chunk = p->prefill_chunk > 0 ? p->prefill_chunk : 512;
    double t0 = ragd_now_s();
    for (int p0 = 0; p0 < n_prompt; p0 += chunk) {
        int m = n_prompt - p0 < chunk ? n_prompt - p0 : chunk;
        ragd_batch_seq s = {.tokens = prompt + p0,
                            .n_new = m,
                            .n_past = p0,
                            .block_table = bt,
                            .n_blocks = nb,
                            .want_logits = p0 + m == n_prompt};
        ragd_batch b = {1, &s};
        if ((rc = be->ops->forward(be, &b, logits, err))) goto out;
    }
    double t1 = ragd_now_s();
    res->prefill_s = t1 - t0;
    res->finish_reason = "length";
    for (int step = 0; step < max_new; step++) {
        ragd_sample_out so;
        if ((rc = ragd_sampler_sample(&smp, logits, prompt, n_prompt, res->ids, res->n, suppress,
                                      res->n < p->min_tokens ? n_sup : 0, &so, err)))
            goto out;
        res->ids[res->n] = so.token;
        res->logprobs[res->n] = so.logprob;
        res->n++;
        int stop = cb ? cb(ud, so.token, so.logprob) : 0;
        if (ragd_gen_is_stop(be, p, so.token) || stop) {
            res->finish_reason = "stop";
            break;
        }
        if (res->n == max_new) break;
        ragd_batch_seq s = {.tokens = &so.token,
                            .n_new = 1,
                            .n_past = n_prompt + res->n - 1,
                            .block_table = bt,
                            .n_blocks = nb,
                            .want_logits = true};
        ragd_batch b = {1, &s};
        if ((rc = be->ops->forward(be, &b, logits, err))) goto out;
    }
    res->decode_s = ragd_now_s() - t1;
out:
    ragd_sampler_free(&smp);
    free(bt);
    free(logits);
    free(suppress);
    if (rc) ragd_gen_result_free(res);
    return rc;
}
