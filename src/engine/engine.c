/* engine.c - see engine.h. */
#include "engine/engine.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/beam.h"
#include "engine/block_manager.h"
#include "engine/sampler.h"
#include "util/clock.h"
#include "util/log.h"

typedef struct req {
    int32_t *tokens; /* prompt + generated */
    int n_tokens, cap;
    int n_prompt, n_generated, n_computed, n_cached_hit;
    int32_t *blocks;
    int n_blocks, blocks_cap;
    int n_registered; /* leading full blocks registered in / taken from the prefix cache */
    uint64_t last_hash;
    ragd_req_params p;
    int32_t *stop_ids;
    ragd_engine_cb cb;
    void *ctx;
    const _Atomic bool *cancel;
    int prompt_lp_next; /* next prompt position whose logprob is due */
    ragd_rng rng;
    int n_preempted;
    uint64_t t_arrival, t_sched, t_first, t_last, deadline;
    struct req *next; /* inbox / waiting links */
} req;

struct ragd_engine {
    ragd_backend *be;
    ragd_engine_opts o;
    ragd_block_manager *bm;
    int vocab;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, started;
    /* under mu */
    req *inbox_head, *inbox_tail;
    int n_inbox;
    int n_queued; /* inbox + waiting list (preempted included): the waiting-queue bound */
    ragd_engine_stats st;
    /* engine thread only */
    req *wait_head, *wait_tail;
    int n_waiting;
    req **running;
    int n_running;
    float *logits;
    size_t logits_cap;
    ragd_batch_seq *bseqs;
    req **sched;
    int *sched_new;
    ragd_sample_out *souts;
    int sched_cap;
    uint64_t seed_state;
    ragd_sampler smp; /* host sampler shared by all requests (params + RNG swapped in) */
    bool smp_init;
    /* metrics */
    ragd_metric *m_running, *m_waiting, *m_blocks_used, *m_blocks_total, *m_prompt, *m_gen,
        *m_preempt, *m_ttft, *m_itl, *m_e2e, *m_queue, *m_finish[6], *m_prefix_hits;
};

const char *ragd_finish_reason_name(int reason) {
    switch (reason) {
        case RAGD_FINISH_STOP:
            return "stop";
        case RAGD_FINISH_LENGTH:
            return "length";
        case RAGD_FINISH_ABORT:
            return "abort";
        case RAGD_FINISH_TIMEOUT:
            return "timeout";
        default:
            return "error";
    }
}

/* ------------------------------------------------------------------------------------------ */
/* seeds for requests without one */

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ------------------------------------------------------------------------------------------ */

static void req_free(req *r) {
    if (!r) return;
    free(r->tokens);
    free(r->blocks);
    free(r->stop_ids);
    free(r);
}

static int push_token(req *r, int32_t t) {
    if (r->n_tokens == r->cap) {
        int nc = r->cap ? r->cap * 2 : 64;
        int32_t *nt = realloc(r->tokens, sizeof(int32_t) * (size_t)nc);
        if (!nt) return RAGD_ENOMEM;
        r->tokens = nt;
        r->cap = nc;
    }
    r->tokens[r->n_tokens++] = t;
    return RAGD_OK;
}

static void release_blocks(ragd_engine *e, req *r) {
    for (int i = 0; i < r->n_blocks; i++) ragd_bm_release(e->bm, r->blocks[i]);
    r->n_blocks = 0;
    r->n_computed = 0;
    r->n_registered = 0;
    r->last_hash = 0;
}

static void publish(ragd_engine *e) {
    pthread_mutex_lock(&e->mu);
    e->st.running = e->n_running;
    e->st.waiting = e->n_queued;
    e->st.blocks_used = ragd_bm_n_used(e->bm);
    e->st.blocks_total = ragd_bm_n_blocks(e->bm);
    e->st.blocks_cached = ragd_bm_n_cached(e->bm);
    pthread_mutex_unlock(&e->mu);
    ragd_metric_set(e->m_running, e->n_running);
    ragd_metric_set(e->m_waiting, e->st.waiting);
    ragd_metric_set(e->m_blocks_used, e->st.blocks_used);
}

static void remove_running(ragd_engine *e, int i) {
    memmove(e->running + i, e->running + i + 1, sizeof(req *) * (size_t)(e->n_running - i - 1));
    e->n_running--;
}

/* The last thing that happens to a request: it leaves the running set, its blocks are freed
 * and published (so a FINISH observer sees the stats already updated), then the callback. */
static void finish(ragd_engine *e, req *r, int reason, const char *error) {
    for (int i = 0; i < e->n_running; i++)
        if (e->running[i] == r) {
            remove_running(e, i);
            break;
        }
    release_blocks(e, r);
    publish(e);
    uint64_t now = ragd_now_ns();
    ragd_metric_inc(e->m_finish[reason]);
    ragd_metric_observe(e->m_e2e, (double)(now - r->t_arrival) * 1e-9);
    if (!r->t_sched) ragd_metric_observe(e->m_queue, (double)(now - r->t_arrival) * 1e-9);
    ragd_engine_event ev = {0};
    ev.type = RAGD_EV_FINISH;
    ev.finish_reason = reason;
    ev.n_prompt = r->n_prompt;
    ev.n_generated = r->n_generated;
    ev.n_cached = r->n_cached_hit;
    ev.n_preempted = r->n_preempted;
    ev.error = error;
    r->cb(r->ctx, &ev);
    req_free(r);
}

static void queued_add(ragd_engine *e, int d) {
    pthread_mutex_lock(&e->mu);
    e->n_queued += d;
    pthread_mutex_unlock(&e->mu);
}

static void waiting_push_front(ragd_engine *e, req *r) {
    queued_add(e, 1);
    r->next = e->wait_head;
    e->wait_head = r;
    if (!e->wait_tail) e->wait_tail = r;
    e->n_waiting++;
}

static void waiting_push_back(ragd_engine *e, req *r) {
    r->next = NULL;
    if (e->wait_tail)
        e->wait_tail->next = r;
    else
        e->wait_head = r;
    e->wait_tail = r;
    e->n_waiting++;
}

static req *waiting_pop(ragd_engine *e) {
    req *r = e->wait_head;
    if (!r) return NULL;
    e->wait_head = r->next;
    if (!e->wait_head) e->wait_tail = NULL;
    r->next = NULL;
    e->n_waiting--;
    queued_add(e, -1);
    return r;
}

/* Make sure r has blocks for n tokens. */
static bool ensure_blocks(ragd_engine *e, req *r, int n) {
    int bs = e->o.block_size;
    int need = (n + bs - 1) / bs - r->n_blocks;
    if (need <= 0) return true;
    if (need > ragd_bm_n_free(e->bm)) return false;
    if (r->n_blocks + need > r->blocks_cap) {
        int nc = r->blocks_cap ? r->blocks_cap : 8;
        while (nc < r->n_blocks + need) nc *= 2;
        int32_t *nb = realloc(r->blocks, sizeof(int32_t) * (size_t)nc);
        if (!nb) return false;
        r->blocks = nb;
        r->blocks_cap = nc;
    }
    for (int i = 0; i < need; i++) r->blocks[r->n_blocks++] = ragd_bm_alloc(e->bm);
    return true;
}

static void preempt(ragd_engine *e, int i) {
    req *r = e->running[i];
    remove_running(e, i);
    release_blocks(e, r);
    r->n_preempted++;
    e->st.preemptions++;
    ragd_metric_inc(e->m_preempt);
    LOG_DEBUG("engine: preempted a sequence (%d tokens) for lack of KV blocks", r->n_tokens);
    waiting_push_front(e, r);
}

/* Attach cached prefix blocks to a request that has no blocks yet. */
static void attach_prefix(ragd_engine *e, req *r) {
    if (e->o.no_prefix_caching || r->n_blocks ||
        (r->p.prompt_logprobs && r->prompt_lp_next < r->n_prompt))
        return;
    int bs = e->o.block_size;
    int max_full = (r->n_tokens - 1) / bs; /* keep >= 1 token to compute */
    uint64_t parent = 0;
    for (int b = 0; b < max_full; b++) {
        const int32_t *t = r->tokens + (size_t)b * (size_t)bs;
        uint64_t h = ragd_bm_hash(parent, t, bs);
        int32_t id = ragd_bm_lookup(e->bm, h, parent, t);
        if (id < 0) break;
        if (r->n_blocks == r->blocks_cap) {
            int nc = r->blocks_cap ? r->blocks_cap * 2 : 8;
            int32_t *nb = realloc(r->blocks, sizeof(int32_t) * (size_t)nc);
            if (!nb) {
                ragd_bm_release(e->bm, id);
                break;
            }
            r->blocks = nb;
            r->blocks_cap = nc;
        }
        r->blocks[r->n_blocks++] = id;
        parent = h;
    }
    r->n_registered = r->n_blocks;
    r->last_hash = parent;
    r->n_computed = r->n_blocks * bs;
    int hit = r->n_computed < r->n_prompt ? r->n_computed : r->n_prompt;
    if (!r->n_preempted && hit > r->n_cached_hit) {
        e->st.prefix_hit_tokens += (uint64_t)(hit - r->n_cached_hit);
        ragd_metric_add(e->m_prefix_hits, hit - r->n_cached_hit);
        r->n_cached_hit = hit;
    }
}

static void register_blocks(ragd_engine *e, req *r) {
    if (e->o.no_prefix_caching) return;
    int bs = e->o.block_size;
    while ((r->n_registered + 1) * bs <= r->n_computed) {
        const int32_t *t = r->tokens + (size_t)r->n_registered * (size_t)bs;
        uint64_t h = ragd_bm_hash(r->last_hash, t, bs);
        ragd_bm_register(e->bm, r->blocks[r->n_registered], h, r->last_hash, t);
        r->last_hash = h;
        r->n_registered++;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* host-side sampling (engine/sampler.h) */

static bool is_eos(const ragd_engine *e, int32_t t) {
    for (int i = 0; i < e->be->cfg.n_eos; i++)
        if (e->be->cfg.eos_ids[i] == t) return true;
    return false;
}

static bool is_stop_id(const req *r, int32_t t) {
    for (int i = 0; i < r->p.n_stop_token_ids; i++)
        if (r->stop_ids[i] == t) return true;
    return false;
}

/* Sample r's next token from its logits row (modified in place). */
static int host_sample(ragd_engine *e, req *r, float *logits, ragd_sample_out *out, ragd_err *err) {
    int32_t suppress[RAGD_MAX_EOS + 64];
    int n_sup = 0;
    if (r->n_generated < r->p.min_tokens) {
        for (int i = 0; i < e->be->cfg.n_eos; i++) suppress[n_sup++] = e->be->cfg.eos_ids[i];
        for (int i = 0; i < r->p.n_stop_token_ids && n_sup < (int)(sizeof suppress / 4); i++)
            suppress[n_sup++] = r->stop_ids[i];
    }
    e->smp.p = r->p.sampling;
    e->smp.rng = r->rng;
    int rc = ragd_sampler_sample(&e->smp, logits, r->tokens, r->n_prompt, r->tokens + r->n_prompt,
                                 r->n_generated, suppress, n_sup, out, err);
    r->rng = e->smp.rng;
    return rc;
}

static void prompt_logprob_events(ragd_engine *e, req *r, int n_past, int n_new,
                                  const float *rows) {
    int V = e->vocab;
    for (int j = 0; j < n_new; j++) {
        int pos = n_past + j + 1; /* row j predicts the token at this position */
        if (pos >= r->n_prompt || pos < r->prompt_lp_next) continue;
        const float *l = rows + (size_t)j * (size_t)V;
        double lse = ragd_logsumexp(l, V);
        int32_t ids[RAGD_MAX_TOP_LOGPROBS];
        float vals[RAGD_MAX_TOP_LOGPROBS];
        int k = r->p.sampling.logprobs > RAGD_MAX_TOP_LOGPROBS ? RAGD_MAX_TOP_LOGPROBS
                                                               : r->p.sampling.logprobs;
        ragd_engine_event ev = {0};
        ev.type = RAGD_EV_PROMPT_LOGPROB;
        ev.pos = pos;
        ev.token = r->tokens[pos];
        ev.logprob = (float)((double)l[r->tokens[pos]] - lse);
        ev.n_top = k > 0 ? ragd_top_logprobs(l, V, lse, k, ids, vals) : 0;
        ev.top_ids = ids;
        ev.top_logprobs = vals;
        r->cb(r->ctx, &ev);
        r->prompt_lp_next = pos + 1;
    }
}

/* ------------------------------------------------------------------------------------------ */

static bool cancelled(const req *r, uint64_t now, int *reason) {
    if (r->cancel && atomic_load(r->cancel)) {
        *reason = RAGD_FINISH_ABORT;
        return true;
    }
    if (r->deadline && now > r->deadline) {
        *reason = RAGD_FINISH_TIMEOUT;
        return true;
    }
    return false;
}

static int grow_sched(ragd_engine *e, int n) {
    if (n <= e->sched_cap) return RAGD_OK;
    int nc = e->sched_cap ? e->sched_cap * 2 : 64;
    while (nc < n) nc *= 2;
    void *a = realloc(e->bseqs, sizeof(ragd_batch_seq) * (size_t)nc);
    if (a) e->bseqs = a;
    void *b = realloc(e->sched, sizeof(req *) * (size_t)nc);
    if (b) e->sched = b;
    void *c = realloc(e->sched_new, sizeof(int) * (size_t)nc);
    if (c) e->sched_new = c;
    void *d = realloc(e->souts, sizeof(ragd_sample_out) * (size_t)nc);
    if (d) e->souts = d;
    if (!a || !b || !c || !d) return RAGD_ENOMEM;
    e->sched_cap = nc;
    return RAGD_OK;
}

/* Deliver a sampled token; returns true when the request finished (and was freed). */
static bool accept_token(ragd_engine *e, req *r, const ragd_sample_out *so, uint64_t now) {
    int32_t t = so->token;
    bool early = r->n_generated < r->p.min_tokens;
    if (push_token(r, t)) {
        finish(e, r, RAGD_FINISH_ERROR, "out of memory");
        return true;
    }
    r->n_generated++;
    e->st.generated_tokens++;
    ragd_metric_inc(e->m_gen);
    if (r->n_generated == 1) {
        r->t_first = now;
        ragd_metric_observe(e->m_ttft, (double)(now - r->t_arrival) * 1e-9);
    } else {
        ragd_metric_observe(e->m_itl, (double)(now - r->t_last) * 1e-9);
    }
    r->t_last = now;
    if (!early && ((!r->p.ignore_eos && is_eos(e, t)) || is_stop_id(r, t))) {
        finish(e, r, RAGD_FINISH_STOP, NULL);
        return true;
    }
    ragd_engine_event ev = {0};
    ev.type = RAGD_EV_TOKEN;
    ev.token = t;
    ev.pos = r->n_generated - 1;
    ev.logprob = so->logprob;
    ev.n_top = so->n_top;
    ev.top_ids = so->top_ids;
    ev.top_logprobs = so->top_logprobs;
    int act = r->cb(r->ctx, &ev);
    if (act == RAGD_CB_STOP) {
        finish(e, r, RAGD_FINISH_STOP, NULL);
        return true;
    }
    if (act == RAGD_CB_ABORT) {
        finish(e, r, RAGD_FINISH_ABORT, NULL);
        return true;
    }
    if (r->n_generated >= r->p.max_tokens || r->n_tokens >= e->o.max_model_len) {
        finish(e, r, RAGD_FINISH_LENGTH, NULL);
        return true;
    }
    return false;
}

/* A beam-search request, run alone on the engine thread (see engine.h). */
static void run_beam(ragd_engine *e, req *r) {
    ragd_gen_params gp;
    ragd_gen_defaults(&gp);
    gp.sampling = r->p.sampling;
    gp.sampling.logprobs = 0;
    gp.max_tokens = r->p.max_tokens;
    if (gp.max_tokens > e->o.max_model_len - r->n_prompt)
        gp.max_tokens = e->o.max_model_len - r->n_prompt;
    gp.min_tokens = r->p.min_tokens;
    gp.ignore_eos = r->p.ignore_eos;
    gp.stop_ids = r->stop_ids;
    gp.n_stop_ids = r->p.n_stop_token_ids;
    gp.num_beams = r->p.num_beams;
    gp.length_penalty = r->p.length_penalty;
    gp.early_stopping = r->p.early_stopping;
    r->t_sched = ragd_now_ns();
    ragd_metric_observe(e->m_queue, (double)(r->t_sched - r->t_arrival) * 1e-9);
    ragd_gen_result res = {0};
    ragd_err err = {0}, kerr = {0};
    int rc = ragd_beam_generate(e->be, r->tokens, r->n_prompt, &gp, NULL, NULL, &res, &err);
    /* the search laid out the KV memory its own way: restore the engine's */
    if (e->be->ops->kv_init(e->be, e->o.block_size, e->o.n_blocks, &kerr))
        LOG_ERROR("engine: cannot restore the KV cache after beam search: %s", kerr.msg);
    ragd_bm_reset_cache(e->bm);
    if (rc) {
        finish(e, r, RAGD_FINISH_ERROR, err.msg);
        ragd_gen_result_free(&res);
        return;
    }
    e->st.prompt_tokens += (uint64_t)r->n_prompt;
    ragd_metric_add(e->m_prompt, r->n_prompt);
    uint64_t now = ragd_now_ns();
    bool done = false;
    for (int i = 0; i < res.n && !done; i++) {
        ragd_sample_out so;
        memset(&so, 0, sizeof so);
        so.token = res.ids[i];
        so.logprob = res.logprobs[i];
        done = accept_token(e, r, &so, now); /* finishes on EOS / stop / max_tokens */
    }
    if (!done) finish(e, r, RAGD_FINISH_LENGTH, NULL);
    ragd_gen_result_free(&res);
}

/* One scheduler iteration. Returns false when there was nothing to do. */
static bool step(ragd_engine *e) {
    uint64_t now = ragd_now_ns();
    /* 1. cancellations and timeouts */
    for (int i = 0; i < e->n_running;) {
        int reason;
        if (cancelled(e->running[i], now, &reason)) {
            req *r = e->running[i];
            remove_running(e, i);
            finish(e, r, reason, NULL);
        } else {
            i++;
        }
    }
    for (req **pp = &e->wait_head; *pp;) {
        int reason;
        req *r = *pp;
        if (cancelled(r, now, &reason)) {
            *pp = r->next;
            e->n_waiting--;
            queued_add(e, -1);
            finish(e, r, reason, NULL);
        } else {
            pp = &r->next;
        }
    }
    e->wait_tail = NULL;
    for (req *r = e->wait_head; r; r = r->next) e->wait_tail = r;
    if (!e->n_running && !e->n_waiting) {
        publish(e);
        return false;
    }

    /* a beam search waits for the running batch to drain, then runs alone */
    bool hold = e->wait_head && e->wait_head->p.num_beams > 1;
    if (hold && !e->n_running) {
        run_beam(e, waiting_pop(e));
        publish(e);
        return true;
    }

    /* 2. running sequences, oldest first */
    int budget = e->o.max_num_batched_tokens, n_sched = 0;
    bool preempted = hold;
    if (grow_sched(e, e->n_running + e->o.max_num_seqs + 1)) return false;
    for (int i = 0; i < e->n_running && budget > 0; i++) {
        req *r = e->running[i];
        int n_new = r->n_tokens - r->n_computed;
        if (n_new > budget) n_new = budget;
        bool ok = true;
        while (!ensure_blocks(e, r, r->n_computed + n_new)) {
            int victim = e->n_running - 1;
            preempt(e, victim);
            preempted = true;
            if (victim == i) {
                ok = false;
                break;
            }
        }
        if (!ok) break;
        e->sched[n_sched] = r;
        e->sched_new[n_sched++] = n_new;
        budget -= n_new;
    }
    /* 3. admit waiting requests */
    while (!preempted && e->wait_head && budget > 0 && e->n_running < e->o.max_num_seqs) {
        req *r = e->wait_head;
        attach_prefix(e, r);
        int n_new = r->n_tokens - r->n_computed;
        if (n_new > budget) n_new = budget;
        if (r->p.prompt_logprobs && r->prompt_lp_next < r->n_prompt && n_new > 512) n_new = 512;
        if (!ensure_blocks(e, r, r->n_computed + n_new)) {
            release_blocks(e, r); /* give the cached prefix back; retry next step */
            break;
        }
        waiting_pop(e);
        if (!r->t_sched) {
            r->t_sched = now;
            ragd_metric_observe(e->m_queue, (double)(now - r->t_arrival) * 1e-9);
        }
        e->running[e->n_running++] = r;
        e->sched[n_sched] = r;
        e->sched_new[n_sched++] = n_new;
        budget -= n_new;
    }
    if (!n_sched) {
        publish(e);
        return false;
    }

    /* 4. one forward for the whole batch */
    bool all_logits = false;
    size_t rows = 0;
    for (int i = 0; i < n_sched; i++) {
        req *r = e->sched[i];
        ragd_batch_seq *s = &e->bseqs[i];
        memset(s, 0, sizeof *s);
        s->tokens = r->tokens + r->n_computed;
        s->n_new = e->sched_new[i];
        s->n_past = r->n_computed;
        s->block_table = r->blocks;
        s->n_blocks = r->n_blocks;
        s->want_logits = r->n_computed + s->n_new == r->n_tokens;
        s->want_all_logits =
            r->p.prompt_logprobs && r->prompt_lp_next < r->n_prompt && r->n_computed < r->n_prompt;
        if (s->want_all_logits) all_logits = true;
        rows += s->want_all_logits ? (size_t)s->n_new : s->want_logits ? 1 : 0;
        if (r->n_computed < r->n_prompt) {
            int pn = r->n_prompt - r->n_computed;
            if (pn > s->n_new) pn = s->n_new;
            if (!r->n_preempted) {
                e->st.prompt_tokens += (uint64_t)pn;
                ragd_metric_add(e->m_prompt, pn);
            }
        }
    }
    ragd_batch batch = {n_sched, e->bseqs};
    ragd_err err = {0};
    int rc;
    bool device_sampling = e->be->ops->forward_sample && !all_logits;
    if (device_sampling) {
        for (int i = 0; i < n_sched; i++) {
            if (!e->bseqs[i].want_logits) continue;
            e->bseqs[i].sampling = &e->sched[i]->p.sampling;
            e->bseqs[i].history = e->sched[i]->tokens;
            e->bseqs[i].n_history = e->sched[i]->n_tokens;
            e->bseqs[i].n_prompt = e->sched[i]->n_prompt;
        }
        rc = e->be->ops->forward_sample(e->be, &batch, e->souts, &err);
    } else {
        size_t need = rows * (size_t)e->vocab;
        if (need > e->logits_cap) {
            float *nl = realloc(e->logits, need * sizeof(float));
            if (!nl) {
                rc = ragd_err_set(&err, RAGD_ENOMEM, "out of memory for logits");
                goto failed;
            }
            e->logits = nl;
            e->logits_cap = need;
        }
        rc = e->be->ops->forward(e->be, &batch, rows ? e->logits : NULL, &err);
    }
failed:
    e->st.steps++;
    if (rc) {
        LOG_ERROR("engine: backend step failed: %s", err.msg);
        for (int i = 0; i < n_sched; i++) finish(e, e->sched[i], RAGD_FINISH_ERROR, err.msg);
        publish(e);
        return true;
    }

    /* 5. outputs */
    now = ragd_now_ns();
    size_t row = 0;
    int k = 0;
    for (int i = 0; i < n_sched; i++) {
        req *r = e->sched[i];
        ragd_batch_seq *s = &e->bseqs[i];
        r->n_computed += s->n_new;
        register_blocks(e, r);
        float *last = NULL;
        if (!device_sampling) {
            if (s->want_all_logits) {
                prompt_logprob_events(e, r, s->n_past, s->n_new,
                                      e->logits + row * (size_t)e->vocab);
                row += (size_t)s->n_new;
                last = e->logits + (row - 1) * (size_t)e->vocab;
            } else if (s->want_logits) {
                last = e->logits + row * (size_t)e->vocab;
                row++;
            }
        }
        if (!s->want_logits) continue;
        ragd_sample_out so;
        if (device_sampling) {
            so = e->souts[k++];
        } else {
            ragd_err serr = {0};
            if (host_sample(e, r, last, &so, &serr)) {
                finish(e, r, RAGD_FINISH_ERROR, serr.msg);
                continue;
            }
        }
        accept_token(e, r, &so, now); /* may finish and free r */
    }
    publish(e);
    return true;
}

static void *engine_main(void *arg) {
    ragd_engine *e = arg;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->stop && !e->inbox_head && !e->n_running && !e->n_waiting)
            pthread_cond_wait(&e->cv, &e->mu);
        bool stop = e->stop;
        req *in = e->inbox_head;
        e->inbox_head = e->inbox_tail = NULL;
        e->n_inbox = 0;
        pthread_mutex_unlock(&e->mu);
        while (in) {
            req *n = in->next;
            waiting_push_back(e, in);
            in = n;
        }
        if (stop) break;
        if (!step(e)) {
            /* nothing schedulable: wait for new work or a cancel */
            pthread_mutex_lock(&e->mu);
            if (!e->stop && !e->inbox_head) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 50 * 1000000;
                if (ts.tv_nsec >= 1000000000) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000;
                }
                if (e->n_running || e->n_waiting) pthread_cond_timedwait(&e->cv, &e->mu, &ts);
            }
            pthread_mutex_unlock(&e->mu);
        }
    }
    /* shutdown: abort everything */
    while (e->n_running) {
        req *r = e->running[e->n_running - 1];
        e->n_running--;
        finish(e, r, RAGD_FINISH_ABORT, NULL);
    }
    req *r;
    while ((r = waiting_pop(e))) finish(e, r, RAGD_FINISH_ABORT, NULL);
    publish(e);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */

int ragd_engine_create(ragd_backend *be, const ragd_engine_opts *opts, ragd_engine **out,
                       ragd_err *err) {
    ragd_engine *e = calloc(1, sizeof *e);
    if (!e) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    e->be = be;
    if (opts) e->o = *opts;
    ragd_engine_opts *o = &e->o;
    if (o->max_num_seqs <= 0) o->max_num_seqs = 64;
    if (o->max_num_batched_tokens <= 0) o->max_num_batched_tokens = 2048;
    if (o->block_size <= 0) o->block_size = 16;
    if (o->max_waiting <= 0) o->max_waiting = 1024;
    int max_pos = be->cfg.max_pos > 0 ? be->cfg.max_pos : 4096;
    if (o->max_model_len <= 0) o->max_model_len = max_pos;
    if (o->max_model_len > max_pos) {
        free(e);
        return ragd_err_set(err, RAGD_EINVAL,
                            "--max-model-len %d exceeds the model's max_position_embeddings %d",
                            opts->max_model_len, max_pos);
    }
    if (o->max_num_batched_tokens < o->max_num_seqs) o->max_num_batched_tokens = o->max_num_seqs;
    e->vocab = be->cfg.vocab_size;
    size_t bb = be->ops->kv_block_bytes(be, o->block_size);
    if (o->n_blocks <= 0) {
        size_t bytes = o->kv_cache_bytes;
        if (!bytes && be->ops->kv_budget_bytes) bytes = be->ops->kv_budget_bytes(be);
        if (!bytes) bytes = (size_t)512 << 20;
        o->n_blocks = bb ? (int)(bytes / bb) : 0;
    }
    int min_blocks = (o->max_model_len + o->block_size - 1) / o->block_size;
    if (o->n_blocks < min_blocks) {
        int n = o->n_blocks, bs = o->block_size, len = o->max_model_len;
        free(e);
        return ragd_err_set(err, RAGD_EINVAL,
                            "KV cache of %d blocks x %d tokens cannot hold one sequence of "
                            "--max-model-len %d (need %d blocks, %zu bytes each): raise the KV "
                            "cache size or lower --max-model-len",
                            n, bs, len, min_blocks, bb);
    }
    int rc = ragd_bm_create(o->n_blocks, o->block_size, &e->bm, err);
    if (rc) {
        free(e);
        return rc;
    }
    rc = be->ops->kv_init(be, o->block_size, o->n_blocks, err);
    if (rc) {
        ragd_bm_destroy(e->bm);
        free(e);
        return rc;
    }
    e->running = calloc((size_t)o->max_num_seqs + 1, sizeof(req *));
    ragd_sampling_params sp;
    ragd_sampling_defaults(&sp);
    e->smp_init = ragd_sampler_init(&e->smp, &sp, e->vocab, NULL) == RAGD_OK;
    if (!e->running || !e->smp_init || grow_sched(e, o->max_num_seqs + 1)) {
        ragd_engine_destroy(e);
        return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    }
    e->seed_state = ragd_now_ns() ^ (uint64_t)(uintptr_t)e;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    e->st.max_model_len = o->max_model_len;
    e->st.block_size = o->block_size;
    e->st.blocks_total = o->n_blocks;
    ragd_metrics *m = o->metrics;
    if (m) {
        e->m_running =
            ragd_metrics_gauge(m, "ragd_requests_running", "sequences in the running batch", NULL);
        e->m_waiting = ragd_metrics_gauge(m, "ragd_requests_waiting",
                                          "requests waiting to be scheduled", NULL);
        e->m_blocks_used =
            ragd_metrics_gauge(m, "ragd_kv_blocks_used", "KV cache blocks in use", NULL);
        e->m_blocks_total =
            ragd_metrics_gauge(m, "ragd_kv_blocks_total", "KV cache blocks in all", NULL);
        ragd_metric_set(e->m_blocks_total, o->n_blocks);
        e->m_prompt =
            ragd_metrics_counter(m, "ragd_prompt_tokens_total", "prompt tokens processed", NULL);
        e->m_gen =
            ragd_metrics_counter(m, "ragd_generation_tokens_total", "tokens generated", NULL);
        e->m_preempt = ragd_metrics_counter(m, "ragd_preemptions_total",
                                            "sequences preempted for lack of KV blocks", NULL);
        e->m_prefix_hits = ragd_metrics_counter(m, "ragd_prefix_cache_hit_tokens_total",
                                                "prompt tokens served from the prefix cache", NULL);
        const char *reasons[] = {"", "stop", "length", "abort", "timeout", "error"};
        for (int i = 1; i < 6; i++) {
            char l[64];
            snprintf(l, sizeof l, "finish_reason=\"%s\"", reasons[i]);
            e->m_finish[i] = ragd_metrics_counter(m, "ragd_requests_finished_total",
                                                  "finished requests by finish reason", l);
        }
        const double *lb = ragd_metrics_latency_buckets;
        int ln = ragd_metrics_latency_nbuckets;
        e->m_ttft = ragd_metrics_histogram(m, "ragd_time_to_first_token_seconds",
                                           "time to first token", NULL, lb, ln);
        e->m_itl = ragd_metrics_histogram(m, "ragd_inter_token_latency_seconds",
                                          "time between output tokens", NULL,
                                          ragd_metrics_token_buckets, ragd_metrics_token_nbuckets);
        e->m_e2e = ragd_metrics_histogram(m, "ragd_e2e_request_latency_seconds",
                                          "request latency from arrival to finish", NULL, lb, ln);
        e->m_queue = ragd_metrics_histogram(m, "ragd_request_queue_time_seconds",
                                            "time waiting before first scheduled", NULL, lb, ln);
    }
    if (pthread_create(&e->thread, NULL, engine_main, e)) {
        ragd_engine_destroy(e);
        return ragd_err_set(err, RAGD_EINTERNAL, "cannot start the engine thread");
    }
    e->started = true;
    publish(e);
    *out = e;
    return RAGD_OK;
}

void ragd_engine_destroy(ragd_engine *e) {
    if (!e) return;
    if (e->started) {
        pthread_mutex_lock(&e->mu);
        e->stop = true;
        pthread_cond_broadcast(&e->cv);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->thread, NULL);
        pthread_mutex_destroy(&e->mu);
        pthread_cond_destroy(&e->cv);
    }
    ragd_bm_destroy(e->bm);
    free(e->running);
    free(e->logits);
    free(e->bseqs);
    free(e->sched);
    free(e->sched_new);
    free(e->souts);
    if (e->smp_init) ragd_sampler_free(&e->smp);
    free(e);
}

int ragd_engine_submit(ragd_engine *e, const int32_t *prompt, int n_prompt,
                       const ragd_req_params *params, ragd_engine_cb cb, void *ctx,
                       const _Atomic bool *cancel, ragd_err *err) {
    if (n_prompt <= 0) return ragd_err_set(err, RAGD_EINVAL, "the prompt is empty");
    if (n_prompt >= e->o.max_model_len)
        return ragd_err_set(err, RAGD_EINVAL,
                            "the prompt has %d tokens; this model's maximum context length is "
                            "%d tokens (prompt + at least 1 output token)",
                            n_prompt, e->o.max_model_len);
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= e->vocab)
            return ragd_err_set(err, RAGD_EINVAL, "token id %d is out of range [0, %d)", prompt[i],
                                e->vocab);
    if (params->max_tokens < 1) return ragd_err_set(err, RAGD_EINVAL, "max_tokens must be >= 1");
    req *r = calloc(1, sizeof *r);
    if (!r) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    r->cap = n_prompt + (params->max_tokens < 256 ? params->max_tokens : 256) + 1;
    r->tokens = malloc(sizeof(int32_t) * (size_t)r->cap);
    if (params->n_stop_token_ids > 0)
        r->stop_ids = malloc(sizeof(int32_t) * (size_t)params->n_stop_token_ids);
    if (!r->tokens || (params->n_stop_token_ids > 0 && !r->stop_ids)) {
        req_free(r);
        return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    }
    memcpy(r->tokens, prompt, sizeof(int32_t) * (size_t)n_prompt);
    r->n_tokens = r->n_prompt = n_prompt;
    r->p = *params;
    if (params->n_stop_token_ids > 0)
        memcpy(r->stop_ids, params->stop_token_ids,
               sizeof(int32_t) * (size_t)params->n_stop_token_ids);
    r->p.stop_token_ids = NULL;
    r->cb = cb;
    r->ctx = ctx;
    r->cancel = cancel;
    r->prompt_lp_next = 1;
    r->t_arrival = ragd_now_ns();
    if (params->timeout_s > 0) r->deadline = r->t_arrival + (uint64_t)(params->timeout_s * 1e9);
    pthread_mutex_lock(&e->mu);
    if (e->n_queued >= e->o.max_waiting || e->stop) {
        pthread_mutex_unlock(&e->mu);
        req_free(r);
        return ragd_err_set(err, RAGD_EBUSY, "the server is at capacity (%d requests waiting)",
                            e->o.max_waiting);
    }
    uint64_t seed = params->sampling.has_seed ? params->sampling.seed : splitmix(&e->seed_state);
    ragd_rng_seed(&r->rng, seed);
    if (e->inbox_tail)
        e->inbox_tail->next = r;
    else
        e->inbox_head = r;
    e->inbox_tail = r;
    e->n_inbox++;
    e->n_queued++;
    e->st.waiting = e->n_queued;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    ragd_metric_set(e->m_waiting, e->st.waiting);
    return RAGD_OK;
}

void ragd_engine_wake(ragd_engine *e) {
    pthread_mutex_lock(&e->mu);
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void ragd_engine_get_stats(ragd_engine *e, ragd_engine_stats *st) {
    pthread_mutex_lock(&e->mu);
    *st = e->st;
    pthread_mutex_unlock(&e->mu);
}

int ragd_engine_max_model_len(const ragd_engine *e) {
    return e->o.max_model_len;
}
int ragd_engine_vocab_size(const ragd_engine *e) {
    return e->vocab;
}
