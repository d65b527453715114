#include "engine/beam.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sampler.h"
#include "util/clock.h"

#define BEAM_BLOCK 16

typedef struct hyp {
    double score;
    int32_t *ids; /* generated ids */
    float *lps;
    int n;
} hyp;

typedef struct hyps {
    hyp *h;
    int n, cap; /* cap = num_beams */
    double worst;
    float lp;
} hyps;

static void hyps_add(hyps *H, const int32_t *ids, const float *lps, int n, double sum_lp,
                     int gen_len) {
    double score = sum_lp / pow((double)gen_len, (double)H->lp);
    if (H->n < H->cap || score > H->worst) {
        hyp *slot;
        if (H->n < H->cap) {
            slot = &H->h[H->n++];
        } else {
            /* replace the worst */
            int wi = 0;
            for (int i = 1; i < H->n; i++)
                if (H->h[i].score < H->h[wi].score) wi = i;
            slot = &H->h[wi];
        }
        slot->score = score;
        slot->n = n;
        memcpy(slot->ids, ids, sizeof(int32_t) * (size_t)n);
        memcpy(slot->lps, lps, sizeof(float) * (size_t)n);
        H->worst = INFINITY;
        for (int i = 0; i < H->n; i++)
            if (H->h[i].score < H->worst) H->worst = H->h[i].score;
    }
}

static bool hyps_done(const hyps *H, double best_sum, int cur_len, int max_len, int early) {
    if (H->n < H->cap) return false;
    if (early == 1) return true;
    double denom_len = cur_len;
    if (early < 0 && H->lp > 0) denom_len = max_len;
    double best = best_sum / pow(denom_len, (double)H->lp);
    return H->worst >= best;
}

typedef struct cand {
    double score;
    float lp;
    int beam;
    int32_t tok;
} cand;

static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? 1 : -1;
    if (x->beam != y->beam) return x->beam - y->beam;
    return x->tok - y->tok;
}

int ragd_beam_generate(ragd_backend *be, const int32_t *prompt, int n_prompt,
                       const ragd_gen_params *p, ragd_gen_cb cb, void *ud, ragd_gen_result *res,
                       ragd_err *err) {
    const ragd_llm_config *cfg = &be->cfg;
    const int B = p->num_beams, V = cfg->vocab_size;
    if (B > 64) return ragd_err_set(err, RAGD_EINVAL, "num_beams must be <= 64");
    if (!be->ops->copy_blocks)
        return ragd_err_set(err, RAGD_EUNSUPPORTED, "backend %s cannot copy KV blocks", be->name);
    int max_new = p->max_tokens;
    if (max_new > cfg->max_pos - n_prompt) max_new = cfg->max_pos - n_prompt;
    const int total = n_prompt + max_new;
    const int nbb = (total + BEAM_BLOCK - 1) / BEAM_BLOCK; /* blocks per beam */
    int n_eos = 0;
    if (!p->ignore_eos) n_eos += cfg->n_eos;
    n_eos += p->n_stop_ids;
    const int K = (n_eos + 1 > 2 ? n_eos + 1 : 2) * B;
    int rc = be->ops->kv_init(be, BEAM_BLOCK, 2 * B * nbb, err);
    if (rc) return rc;
    /* two sets of block tables: beams of the current step live in set `cur` */
    int32_t *bt = malloc(sizeof(int32_t) * (size_t)(2 * B * nbb));
    float *logits = malloc(sizeof(float) * (size_t)V * B);
    double *bscore = calloc((size_t)B, sizeof(double)), *nscore = calloc((size_t)B, sizeof(double));
    int32_t *seq = malloc(sizeof(int32_t) * (size_t)B * max_new);
    int32_t *nseq = malloc(sizeof(int32_t) * (size_t)B * max_new);
    float *slp = malloc(sizeof(float) * (size_t)B * max_new);
    float *nslp = malloc(sizeof(float) * (size_t)B * max_new);
    cand *cands = malloc(sizeof(cand) * (size_t)K * B);
    cand *picked = malloc(sizeof(cand) * (size_t)B);
    int32_t *src = malloc(sizeof(int32_t) * (size_t)B * nbb),
            *dst = malloc(sizeof(int32_t) * (size_t)B * nbb);
    int32_t *hist = malloc(sizeof(int32_t) * (size_t)(n_prompt + max_new));
    ragd_batch_seq *seqs = calloc((size_t)B, sizeof *seqs);
    int32_t *step_tok = malloc(sizeof(int32_t) * (size_t)B);
    int32_t *kid = malloc(sizeof(int32_t) * (size_t)K);
    float *kval = malloc(sizeof(float) * (size_t)K);
    hyps H = {.h = calloc((size_t)B, sizeof(hyp)), .cap = B, .worst = 1e9, .lp = p->length_penalty};
    ragd_sampler smp;
    memset(&smp, 0, sizeof smp);
    memset(res, 0, sizeof *res);
    res->n_prompt = n_prompt;
    if (!bt || !logits || !bscore || !nscore || !seq || !nseq || !slp || !nslp || !cands ||
        !picked || !src || !dst || !hist || !seqs || !step_tok || !kid || !kval || !H.h) {
        rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < B; i++) {
        H.h[i].ids = malloc(sizeof(int32_t) * (size_t)max_new + 4);
        H.h[i].lps = malloc(sizeof(float) * (size_t)max_new + 4);
        if (!H.h[i].ids || !H.h[i].lps) {
            rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
            goto out;
        }
    }
    for (int i = 0; i < 2 * B * nbb; i++) bt[i] = i;
    int cur = 0;
#define BT(set, b) (bt + ((size_t)(set)*B + (size_t)(b)) * nbb)
    ragd_sampling_params sp;
    ragd_sampling_defaults(&sp);
    sp.temperature = 0;
    sp.repetition_penalty = p->sampling.repetition_penalty;
    if ((rc = ragd_sampler_init(&smp, &sp, V, err))) goto out;
    /* prefill beam 0 */
    double t0 = ragd_now_s();
    int chunk = p->prefill_chunk > 0 ? p->prefill_chunk : 512;
    for (int p0 = 0; p0 < n_prompt; p0 += chunk) {
        int m = n_prompt - p0 < chunk ? n_prompt - p0 : chunk;
        ragd_batch_seq s = {.tokens = prompt + p0,
                            .n_new = m,
                            .n_past = p0,
                            .block_table = BT(cur, 0),
                            .n_blocks = nbb,
                            .want_logits = p0 + m == n_prompt};
        ragd_batch b = {1, &s};
        if ((rc = be->ops->forward(be, &b, logits, err))) goto out;
    }
    double t1 = ragd_now_s();
    res->prefill_s = t1 - t0;
    int n_live = 1; /* beams with meaningful logits rows at step 0 */
    for (int i = 1; i < B; i++) bscore[i] = -1e9;
    int gen = 0;
    bool done = false;
    int32_t sup[RAGD_MAX_EOS + 64];
    int n_sup = 0;
    for (int i = 0; i < cfg->n_eos && n_sup < RAGD_MAX_EOS; i++) sup[n_sup++] = cfg->eos_ids[i];
    for (int i = 0; i < p->n_stop_ids && n_sup < RAGD_MAX_EOS + 64; i++)
        sup[n_sup++] = p->stop_ids[i];
    while (!done && gen < max_new) {
        /* candidates: per beam its best K tokens by processed log-softmax */
        int nc = 0;
        for (int b = 0; b < B; b++) {
            float *row = logits + (size_t)(b < n_live ? b : 0) * V;
            float *tmp = smp.work;
            /* as transformers' beam search: log-softmax of the raw logits first, then the
             * processors on those log-probabilities, without renormalising */
            const double lse = ragd_logsumexp(row, V);
            for (int v = 0; v < V; v++) tmp[v] = (float)((double)row[v] - lse);
            /* processors: repetition penalty over prompt + this beam (log-probs are <= 0, so
             * the rule multiplies), min_tokens */
            if (sp.repetition_penalty != 1.0f) {
                memcpy(hist, prompt, sizeof(int32_t) * (size_t)n_prompt);
                memcpy(hist + n_prompt, seq + (size_t)b * max_new, sizeof(int32_t) * (size_t)gen);
                for (int i = 0; i < n_prompt + gen; i++) {
                    int32_t id = hist[i];
                    float l = (float)((double)row[id] - lse);
                    tmp[id] = l > 0 ? l / sp.repetition_penalty : l * sp.repetition_penalty;
                }
            }
            if (gen < p->min_tokens)
                for (int i = 0; i < n_sup; i++)
                    if (sup[i] >= 0 && sup[i] < V) tmp[sup[i]] = -INFINITY;
            int m = ragd_topk(tmp, V, K, kid, kval);
            if (m < 0) {
                rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
                goto out;
            }
            for (int j = 0; j < m; j++) {
                float lp = kval[j];
                if (!isfinite(lp)) continue;
                cands[nc++] = (cand){bscore[b] + lp, lp, b, kid[j]};
            }
        }
        qsort(cands, (size_t)nc, sizeof *cands, cand_cmp);
        if (nc > K) nc = K;
        int np = 0;
        for (int r = 0; r < nc && np < B; r++) {
            cand *c = &cands[r];
            if (ragd_gen_is_stop(be, p, c->tok)) {
                if (r >= B) continue;
                int32_t *ids = seq + (size_t)c->beam * max_new;
                float *lps = slp + (size_t)c->beam * max_new;
                /* stored with the EOS appended; gen_len counts it */
                memcpy(nseq, ids, sizeof(int32_t) * (size_t)gen);
                memcpy(nslp, lps, sizeof(float) * (size_t)gen);
                nseq[gen] = c->tok;
                nslp[gen] = c->lp;
                hyps_add(&H, nseq, nslp, gen + 1, c->score, gen + 1);
            } else {
                picked[np++] = *c;
            }
        }
        if (np < B) { /* fewer live candidates than beams (tiny vocab): duplicate the last */
            if (np == 0) {
                done = true;
                break;
            }
            while (np < B) {
                picked[np] = picked[np - 1];
                picked[np].score = -1e9;
                np++;
            }
        }
        done = hyps_done(&H, cands[0].score, gen + 1, max_new, p->early_stopping);
        /* new beams: sequences, scores, KV (copy the source beam's blocks to set 1-cur) */
        int nb_used = (n_prompt + gen + BEAM_BLOCK - 1) / BEAM_BLOCK;
        int ncopy = 0;
        for (int i = 0; i < B; i++) {
            const cand *c = &picked[i];
            memcpy(nseq + (size_t)i * max_new, seq + (size_t)c->beam * max_new,
                   sizeof(int32_t) * (size_t)gen);
            memcpy(nslp + (size_t)i * max_new, slp + (size_t)c->beam * max_new,
                   sizeof(float) * (size_t)gen);
            nseq[(size_t)i * max_new + gen] = c->tok;
            nslp[(size_t)i * max_new + gen] = c->lp;
            nscore[i] = c->score;
            for (int k = 0; k < nb_used; k++) {
                src[ncopy] = BT(cur, c->beam)[k];
                dst[ncopy] = BT(1 - cur, i)[k];
                ncopy++;
            }
        }
        if ((rc = be->ops->copy_blocks(be, src, dst, ncopy, err))) goto out;
        cur = 1 - cur;
        int32_t *ts = seq;
        seq = nseq, nseq = ts;
        float *tl = slp;
        slp = nslp, nslp = tl;
        double *td = bscore;
        bscore = nscore, nscore = td;
        gen++;
        if (done || gen >= max_new) break;
        for (int i = 0; i < B; i++) {
            step_tok[i] = seq[(size_t)i * max_new + gen - 1];
            seqs[i] = (ragd_batch_seq){.tokens = &step_tok[i],
                                       .n_new = 1,
                                       .n_past = n_prompt + gen - 1,
                                       .block_table = BT(cur, i),
                                       .n_blocks = nbb,
                                       .want_logits = true};
        }
        ragd_batch b = {B, seqs};
        if ((rc = be->ops->forward(be, &b, logits, err))) goto out;
        n_live = B;
    }
    if (!done)
        for (int i = 0; i < B; i++)
            hyps_add(&H, seq + (size_t)i * max_new, slp + (size_t)i * max_new, gen, bscore[i],
                     gen > 0 ? gen : 1);
    int best = -1;
    for (int i = 0; i < H.n; i++)
        if (best < 0 || H.h[i].score >= H.h[best].score) best = i;
    if (best < 0) {
        rc = ragd_err_set(err, RAGD_EINTERNAL, "beam search produced no hypothesis");
        goto out;
    }
    res->n = H.h[best].n;
    res->ids = malloc(sizeof(int32_t) * (size_t)(res->n + 1));
    res->logprobs = malloc(sizeof(float) * (size_t)(res->n + 1));
    if (!res->ids || !res->logprobs) {
        rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        goto out;
    }
    memcpy(res->ids, H.h[best].ids, sizeof(int32_t) * (size_t)res->n);
    memcpy(res->logprobs, H.h[best].lps, sizeof(float) * (size_t)res->n);
    res->finish_reason =
        res->n > 0 && ragd_gen_is_stop(be, p, res->ids[res->n - 1]) ? "stop" : "length";
    for (int i = 0; i < res->n && cb; i++)
        if (cb(ud, res->ids[i], res->logprobs[i])) break;
    res->decode_s = ragd_now_s() - t1;
#undef BT
out:
    ragd_sampler_free(&smp);
    if (H.h)
        for (int i = 0; i < B; i++) free(H.h[i].ids), free(H.h[i].lps);
    free(H.h);
    free(bt), free(logits), free(bscore), free(nscore), free(seq), free(nseq), free(slp),
        free(nslp), free(cands), free(picked), free(src), free(dst), free(hist), free(seqs),
        free(step_tok), free(kid), free(kval);
    if (rc) ragd_gen_result_free(res);
    return rc;
}
