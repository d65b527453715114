/* Beam search: against an independent, naive implementation of transformers' rules over a
 * fake backend whose logits depend on the whole sequence as read back from its paged "KV"
 * (so block tables and copy_blocks are exercised); exhaustive optimality when the beam is
 * wide enough; and consistency on the real qwen2-tiny model. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_backend.h"
#include "engine/beam.h"
#include "engine/generate.h"
#include "engine/sampler.h"
#include "util/str.h"

/* ---- fake backend: KV stores token ids; logits = hash of the stored prefix ---- */
typedef struct fake {
    int32_t *kv;
    int bs, nb;
    int V;
} fake;

static void fake_logits(const int32_t *toks, int n, int V, float *out) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < n; i++) h = (h ^ (uint64_t)toks[i]) * 1099511628211ull;
    for (int v = 0; v < V; v++) {
        uint64_t x = (h ^ (uint64_t)(v + 1) * 0x9e3779b97f4a7c15ull) * 0xbf58476d1ce4e5b9ull;
        x ^= x >> 29;
        out[v] = (float)((double)(x >> 40) / (double)(1ull << 24) * 4.0 - 2.0);
    }
}

static int f_kv_init(ragd_backend *be, int bs, int nb, ragd_err *e) {
    fake *f = be->impl;
    free(f->kv);
    f->kv = calloc((size_t)bs * nb, sizeof(int32_t));
    f->bs = bs, f->nb = nb;
    return f->kv ? 0 : ragd_err_set(e, RAGD_ENOMEM, "oom");
}

static size_t f_bytes(const ragd_backend *be, int bs) {
    (void)be;
    return (size_t)bs * 4;
}

static int f_forward(ragd_backend *be, const ragd_batch *b, float *logits, ragd_err *e) {
    fake *f = be->impl;
    int row = 0;
    for (int s = 0; s < b->n_seqs; s++) {
        const ragd_batch_seq *q = &b->seqs[s];
        for (int j = 0; j < q->n_new; j++) {
            int pos = q->n_past + j;
            int blk = q->block_table[pos / f->bs];
            if (blk < 0 || blk >= f->nb) return ragd_err_set(e, RAGD_EINVAL, "bad block");
            f->kv[blk * f->bs + pos % f->bs] = q->tokens[j];
        }
        int last = q->n_past + q->n_new;
        int32_t *seq = malloc(sizeof(int32_t) * (size_t)last);
        for (int p = 0; p < last; p++)
            seq[p] = f->kv[q->block_table[p / f->bs] * f->bs + p % f->bs];
        if (q->want_logits) fake_logits(seq, last, f->V, logits + (size_t)row++ * f->V);
        free(seq);
    }
    return 0;
}

static int f_copy(ragd_backend *be, const int32_t *src, const int32_t *dst, int n, ragd_err *e) {
    (void)e;
    fake *f = be->impl;
    for (int i = 0; i < n; i++)
        memcpy(f->kv + dst[i] * f->bs, f->kv + src[i] * f->bs, sizeof(int32_t) * (size_t)f->bs);
    return 0;
}

static size_t f_budget(const ragd_backend *be) {
    (void)be;
    return 0;
}

static void f_destroy(ragd_backend *be) {
    fake *f = be->impl;
    free(f->kv);
}

static const ragd_backend_ops fake_ops = {f_kv_init, f_bytes,  f_forward, NULL,
                                          f_copy,    f_budget, f_destroy};

static void fake_init(ragd_backend *be, fake *f, int V, int eos) {
    memset(be, 0, sizeof *be);
    memset(f, 0, sizeof *f);
    f->V = V;
    be->ops = &fake_ops;
    be->name = "fake";
    be->impl = f;
    be->cfg.vocab_size = V;
    be->cfg.max_pos = 1000;
    be->cfg.n_eos = eos >= 0 ? 1 : 0;
    be->cfg.eos_ids[0] = eos;
}

/* ---- naive reference of transformers' beam search (legacy BeamSearchScorer rules) ---- */
typedef struct rseq {
    int32_t t[64];
    int n;
    double s;
} rseq;

static void log_softmax(float *x, int V) {
    double lse = ragd_logsumexp(x, V);
    for (int v = 0; v < V; v++) x[v] = (float)((double)x[v] - lse);
}

static rseq ref_beam(const int32_t *prompt, int np, int V, int eos, int B, int max_new, float lp,
                     int early) {
    rseq beams[64], hyp[64];
    int nh = 0;
    double worst = 1e9;
    for (int b = 0; b < B; b++) beams[b] = (rseq){.n = 0, .s = b ? -1e9 : 0};
    bool done = false;
    int gen = 0;
    int n_eos = eos >= 0 ? 1 : 0;
    int K = (1 + n_eos > 2 ? 1 + n_eos : 2) * B;
    float *lg = malloc(sizeof(float) * (size_t)V);
    while (!done && gen < max_new) {
        rseq cand[4096];
        int nc = 0;
        for (int b = 0; b < B; b++) {
            int32_t full[128];
            memcpy(full, prompt, sizeof(int32_t) * (size_t)np);
            memcpy(full + np, beams[b].t, sizeof(int32_t) * (size_t)gen);
            fake_logits(full, np + gen, V, lg);
            log_softmax(lg, V);
            for (int v = 0; v < V; v++) {
                cand[nc] = beams[b];
                cand[nc].t[gen] = v;
                cand[nc].n = gen + 1;
                cand[nc].s = beams[b].s + lg[v];
                nc++;
            }
        }
        /* sort descending (stable: beam then token order on ties) */
        for (int i = 1; i < nc; i++)
            for (int j = i; j > 0 && cand[j].s > cand[j - 1].s; j--) {
                rseq t = cand[j];
                cand[j] = cand[j - 1];
                cand[j - 1] = t;
            }
        int np2 = 0;
        rseq next[64];
        for (int r = 0; r < K && r < nc && np2 < B; r++) {
            if (cand[r].t[gen] == eos) {
                if (r >= B) continue;
                double sc = cand[r].s / pow(gen + 1, lp);
                if (nh < B || sc > worst) {
                    if (nh < B) {
                        hyp[nh] = cand[r];
                        hyp[nh++].s = sc;
                    } else {
                        int wi = 0;
                        for (int i = 1; i < nh; i++)
                            if (hyp[i].s < hyp[wi].s) wi = i;
                        hyp[wi] = cand[r];
                        hyp[wi].s = sc;
                    }
                    worst = 1e9;
                    for (int i = 0; i < nh; i++) worst = hyp[i].s < worst ? hyp[i].s : worst;
                }
            } else {
                next[np2++] = cand[r];
            }
        }
        if (nh >= B) {
            if (early == 1)
                done = true;
            else {
                double len = (early < 0 && lp > 0) ? max_new : gen + 1;
                done = worst >= cand[0].s / pow(len, lp);
            }
        }
        memcpy(beams, next, sizeof(rseq) * (size_t)B);
        gen++;
    }
    if (!done)
        for (int b = 0; b < B; b++) {
            double sc = beams[b].s / pow(gen, lp);
            if (nh < B || sc > worst) {
                rseq h = beams[b];
                h.s = sc;
                if (nh < B)
                    hyp[nh++] = h;
                else {
                    int wi = 0;
                    for (int i = 1; i < nh; i++)
                        if (hyp[i].s < hyp[wi].s) wi = i;
                    hyp[wi] = h;
                }
                worst = 1e9;
                for (int i = 0; i < nh; i++) worst = hyp[i].s < worst ? hyp[i].s : worst;
            }
        }
    int best = 0;
    for (int i = 1; i < nh; i++)
        if (hyp[i].s >= hyp[best].s) best = i;
    free(lg);
    return hyp[best];
}

static void test_beam_vs_reference(void **state) {
    (void)state;
    int cases = 0;
    for (int V = 5; V <= 9; V += 2)
        for (int B = 2; B <= 5; B++)
            for (int early = -1; early <= 1; early++)
                for (int li = 0; li < 3; li++) {
                    static const float lps[3] = {1.0f, 0.0f, 2.5f};
                    ragd_backend be;
                    fake f;
                    int eos = V - 1;
                    fake_init(&be, &f, V, eos);
                    int32_t prompt[3] = {1, (int32_t)(B % 4), (int32_t)li};
                    ragd_gen_params p;
                    ragd_gen_defaults(&p);
                    p.num_beams = B;
                    p.max_tokens = 7;
                    p.length_penalty = lps[li];
                    p.early_stopping = early;
                    p.prefill_chunk = 2;
                    ragd_gen_result res;
                    ragd_err e = {0};
                    if (ragd_generate(&be, prompt, 3, &p, NULL, NULL, &res, &e))
                        fail_msg("%s", e.msg);
                    rseq ref = ref_beam(prompt, 3, V, eos, B, 7, lps[li], early);
                    if (res.n != ref.n || memcmp(res.ids, ref.t, sizeof(int32_t) * (size_t)ref.n))
                        fail_msg("V=%d B=%d early=%d lp=%g: beam result differs (len %d vs %d)", V,
                                 B, early, lps[li], res.n, ref.n);
                    ragd_gen_result_free(&res);
                    be.ops->destroy(&be);
                    cases++;
                }
    assert_int_equal(cases, 3 * 4 * 3 * 3);
}

/* No EOS, beam >= V^(L-1): beam search is exhaustive and must find the best sequence. */
static void test_beam_exhaustive(void **state) {
    (void)state;
    enum { V = 3, L = 4, B = 27 };
    ragd_backend be;
    fake f;
    fake_init(&be, &f, V, -1);
    int32_t prompt[2] = {2, 1};
    ragd_gen_params p;
    ragd_gen_defaults(&p);
    p.num_beams = B;
    p.max_tokens = L;
    ragd_gen_result res;
    ragd_err e = {0};
    assert_int_equal(ragd_generate(&be, prompt, 2, &p, NULL, NULL, &res, &e), 0);
    double best = -1e30;
    int32_t best_seq[L];
    float lg[V];
    for (int code = 0; code < 81; code++) {
        int32_t full[2 + L] = {2, 1};
        int c = code;
        for (int i = 0; i < L; i++, c /= V) full[2 + i] = c % V;
        double s = 0;
        for (int i = 0; i < L; i++) {
            fake_logits(full, 2 + i, V, lg);
            log_softmax(lg, V);
            s += lg[full[2 + i]];
        }
        if (s > best) {
            best = s;
            memcpy(best_seq, full + 2, sizeof best_seq);
        }
    }
    assert_int_equal(res.n, L);
    assert_memory_equal(res.ids, best_seq, sizeof best_seq);
    double sum = 0;
    for (int i = 0; i < L; i++) sum += res.logprobs[i];
    assert_true(fabs(sum - best) < 1e-4);
    ragd_gen_result_free(&res);
    be.ops->destroy(&be);
}

/* Real model: the beam's per-token logprobs equal a fresh forward over the final sequence. */
static void test_beam_qwen2_tiny(void **state) {
    (void)state;
    char *dir = tu_shared("models/qwen2-tiny");
    if (!tu_exists(dir)) {
        print_message("shared file missing: %s\n", dir);
        free(dir);
        skip();
    }
    ragd_pool *pool = ragd_pool_create(2);
    ragd_backend *be = NULL;
    ragd_err e = {0};
    assert_int_equal(ragd_cpu_backend_create(dir, pool, &be, &e), 0);
    int32_t prompt[5] = {9707, 11, 1879, 0, 220};
    ragd_gen_params p;
    ragd_gen_defaults(&p);
    p.num_beams = 3;
    p.max_tokens = 12;
    ragd_gen_result res;
    assert_int_equal(ragd_generate(be, prompt, 5, &p, NULL, NULL, &res, &e), 0);
    assert_true(res.n >= 1);
    int V = be->cfg.vocab_size, n = 5 + res.n;
    int32_t *all = malloc(sizeof(int32_t) * (size_t)n);
    memcpy(all, prompt, sizeof prompt);
    memcpy(all + 5, res.ids, sizeof(int32_t) * (size_t)res.n);
    int nb = (n + 15) / 16;
    assert_int_equal(be->ops->kv_init(be, 16, nb, &e), 0);
    int32_t bt[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    float *lg = malloc(sizeof(float) * (size_t)V * n);
    ragd_batch_seq s = {
        .tokens = all, .n_new = n, .block_table = bt, .n_blocks = nb, .want_all_logits = true};
    ragd_batch b = {1, &s};
    assert_int_equal(be->ops->forward(be, &b, lg, &e), 0);
    for (int i = 0; i < res.n; i++) {
        const float *row = lg + (size_t)(4 + i) * V;
        double lp = row[res.ids[i]] - ragd_logsumexp(row, V);
        if (fabs(lp - res.logprobs[i]) > 1e-4)
            fail_msg("step %d: beam logprob %.6f, recomputed %.6f", i, res.logprobs[i], lp);
    }
    /* one beam = greedy */
    ragd_gen_params g;
    ragd_gen_defaults(&g);
    g.sampling.temperature = 0;
    g.max_tokens = 12;
    ragd_gen_result gr, br;
    assert_int_equal(ragd_generate(be, prompt, 5, &g, NULL, NULL, &gr, &e), 0);
    g.num_beams = 1;
    assert_int_equal(ragd_beam_generate(be, prompt, 5, &g, NULL, NULL, &br, &e), 0);
    assert_int_equal(gr.n, br.n);
    assert_memory_equal(gr.ids, br.ids, sizeof(int32_t) * (size_t)gr.n);
    ragd_gen_result_free(&gr);
    ragd_gen_result_free(&br);
    free(lg);
    free(all);
    ragd_gen_result_free(&res);
    be->ops->destroy(be);
    ragd_pool_destroy(pool);
    free(dir);
}

/* Against transformers 5.17 itself: tests/data/beam_ref_llama-small.json holds generate(
 * num_beams in {2, 3, 4}, length_penalty {1, 0.5, 2}, early_stopping {true, false, "never"},
 * one case with repetition_penalty 1.3) on llama-small in float32 for 8 golden prompts, 12 new
 * tokens, with the 4th greedy token of each prompt as the end-of-sequence id (made by
 * tests/tools/make_beam_ref.py on the device machine). The ids must be equal and the score
 * (sum of the processed logprobs / length^length_penalty) within 1e-4. */
static void test_beam_transformers(void **state) {
    (void)state;
    char *dir = tu_shared("models/llama-small");
    if (!tu_exists(dir)) {
        print_message("shared file missing: %s\n", dir);
        free(dir);
        skip();
    }
    char *raw = NULL;
    size_t len = 0;
    ragd_err e = {0};
    assert_int_equal(
        ragd_read_file(RAGD_SOURCE_DIR "/tests/data/beam_ref_llama-small.json", &raw, &len, &e), 0);
    cJSON *j = cJSON_Parse(raw);
    assert_non_null(j);
    ragd_pool *pool = ragd_pool_create(2);
    ragd_backend *be = NULL;
    assert_int_equal(ragd_cpu_backend_create(dir, pool, &be, &e), 0);
    const cJSON *cases = cJSON_GetObjectItem(j, "cases");
    int n_cases = cJSON_GetArraySize(cases), ok = 0, early = 0;
    const int step = getenv("RAGD_SANITIZED") ? 5 : 1; /* a subset under ASan */
    for (int c = 0; c < n_cases; c += step) {
        const cJSON *cs = cJSON_GetArrayItem(cases, c);
        const cJSON *pr = cJSON_GetObjectItem(cs, "prompt"), *want = cJSON_GetObjectItem(cs, "ids");
        int np = cJSON_GetArraySize(pr), nw = cJSON_GetArraySize(want);
        int32_t prompt[64];
        assert_true(np <= 64);
        for (int i = 0; i < np; i++) prompt[i] = cJSON_GetArrayItem(pr, i)->valueint;
        int32_t stop = cJSON_GetObjectItem(cs, "extra_eos")->valueint;
        const cJSON *es = cJSON_GetObjectItem(cs, "early_stopping");
        ragd_gen_params p;
        ragd_gen_defaults(&p);
        p.num_beams = cJSON_GetObjectItem(cs, "num_beams")->valueint;
        p.length_penalty = (float)cJSON_GetObjectItem(cs, "length_penalty")->valuedouble;
        p.early_stopping = cJSON_IsString(es) ? -1 : cJSON_IsTrue(es) ? 1 : 0;
        p.sampling.repetition_penalty =
            (float)cJSON_GetObjectItem(cs, "repetition_penalty")->valuedouble;
        p.max_tokens = cJSON_GetObjectItem(cs, "max_new_tokens")->valueint;
        p.stop_ids = &stop;
        p.n_stop_ids = 1;
        ragd_gen_result res;
        assert_int_equal(ragd_beam_generate(be, prompt, np, &p, NULL, NULL, &res, &e), 0);
        int same = res.n == nw;
        for (int i = 0; same && i < nw; i++)
            same = res.ids[i] == cJSON_GetArrayItem(want, i)->valueint;
        if (!same) {
            fail_msg("case %d (beams %d, lp %.1f, early_stopping %d): %d ids, transformers %d; "
                     "first ids %d / %d",
                     c, p.num_beams, (double)p.length_penalty, p.early_stopping, res.n, nw,
                     res.n ? res.ids[0] : -1, nw ? cJSON_GetArrayItem(want, 0)->valueint : -1);
        }
        double sum = 0;
        for (int i = 0; i < res.n; i++) sum += res.logprobs[i];
        double score = sum / pow((double)res.n, (double)p.length_penalty);
        double ref = cJSON_GetObjectItem(cs, "score")->valuedouble;
        if (fabs(score - ref) > 1e-4 * fmax(1.0, fabs(ref)))
            fail_msg("case %d: score %.6f, transformers %.6f", c, score, ref);
        early += nw < p.max_tokens;
        ok++;
        ragd_gen_result_free(&res);
    }
    print_message("beam vs transformers: %d cases equal (%d ended by EOS)\n", ok, early);
    assert_true(early > 0 && early < ok);
    be->ops->destroy(be);
    ragd_pool_destroy(pool);
    cJSON_Delete(j);
    free(raw);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_beam_vs_reference),
        cmocka_unit_test(test_beam_exhaustive),
        cmocka_unit_test(test_beam_qwen2_tiny),
        cmocka_unit_test(test_beam_transformers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
