/* test_engine.c - block manager and scheduler tests with the deterministic mock backend:
 * batched = alone, preemption under a tiny KV budget, prefix caching, chunked prefill,
 * cancellation, timeouts, stop conditions, the bounded queue. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine/block_manager.h"
#include "engine/engine.h"
#include "mock_backend.h"
#include "testutil.h"
#include "util/clock.h"

#define V 64

typedef struct out {
    pthread_mutex_t *mu;
    pthread_cond_t *cv;
    int *n_done;
    int32_t toks[512];
    int n, finish, n_cached, n_gen, n_preempted;
    int stop_after; /* callback returns STOP after this many tokens (0 = never) */
    int n_prompt_lp;
    float lp_sum;
    _Atomic bool cancel;
    int order; /* finish order */
} out;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_done;

static int cb(void *ctx, const ragd_engine_event *ev) {
    out *o = ctx;
    if (ev->type == RAGD_EV_TOKEN) {
        if (o->n < 512) o->toks[o->n] = ev->token;
        o->n++;
        o->lp_sum += ev->logprob;
        if (o->stop_after && o->n >= o->stop_after) return RAGD_CB_STOP;
        return RAGD_CB_CONTINUE;
    }
    if (ev->type == RAGD_EV_PROMPT_LOGPROB) {
        o->n_prompt_lp++;
        return 0;
    }
    pthread_mutex_lock(&g_mu);
    o->finish = ev->finish_reason;
    o->n_cached = ev->n_cached;
    o->n_gen = ev->n_generated;
    o->n_preempted = ev->n_preempted;
    o->order = ++g_done;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    return 0;
}

static void wait_done(int n) {
    pthread_mutex_lock(&g_mu);
    while (g_done < n) pthread_cond_wait(&g_cv, &g_mu);
    pthread_mutex_unlock(&g_mu);
}

static void reset_done(void) {
    pthread_mutex_lock(&g_mu);
    g_done = 0;
    pthread_mutex_unlock(&g_mu);
}

static ragd_req_params greedy(int max_tokens) {
    ragd_req_params p;
    memset(&p, 0, sizeof p);
    p.sampling.temperature = 0;
    p.sampling.top_p = 1;
    p.sampling.repetition_penalty = 1;
    p.sampling.logprobs = -1;
    p.max_tokens = max_tokens;
    return p;
}

static void make_prompt(int32_t *p, int n, int seed) {
    for (int i = 0; i < n; i++) p[i] = (int32_t)((seed * 31 + i * 7 + (i * i) % 13) % (V - 1));
}

static ragd_engine *mk(ragd_backend *be, int n_blocks, int max_seqs, int max_batched) {
    ragd_engine_opts o;
    memset(&o, 0, sizeof o);
    o.n_blocks = n_blocks;
    o.block_size = 4;
    o.max_num_seqs = max_seqs;
    o.max_num_batched_tokens = max_batched;
    o.max_model_len = 256;
    ragd_engine *e = NULL;
    ragd_err err = {0};
    int rc = ragd_engine_create(be, &o, &e, &err);
    if (rc) print_message("engine: %s\n", err.msg);
    assert_int_equal(rc, 0);
    return e;
}

static void test_block_manager(void **state) {
    (void)state;
    ragd_block_manager *bm;
    assert_int_equal(ragd_bm_create(4, 2, &bm, NULL), 0);
    int32_t a = ragd_bm_alloc(bm), b = ragd_bm_alloc(bm);
    assert_true(a >= 0 && b >= 0 && a != b);
    assert_int_equal(ragd_bm_n_used(bm), 2);
    int32_t t1[2] = {5, 6}, t2[2] = {7, 8}, t3[2] = {7, 9};
    uint64_t h1 = ragd_bm_hash(0, t1, 2), h2 = ragd_bm_hash(h1, t2, 2);
    ragd_bm_register(bm, a, h1, 0, t1);
    ragd_bm_register(bm, b, h2, h1, t2);
    ragd_bm_release(bm, a);
    ragd_bm_release(bm, b);
    assert_int_equal(ragd_bm_n_used(bm), 0);
    assert_int_equal(ragd_bm_n_cached(bm), 2);
    /* cached blocks are found again, with the same ids */
    assert_int_equal(ragd_bm_lookup(bm, h1, 0, t1), a);
    assert_int_equal(ragd_bm_lookup(bm, h2, h1, t2), b);
    assert_int_equal(ragd_bm_refcount(bm, b), 1);
    /* same hash, different tokens: never shared */
    assert_int_equal(ragd_bm_lookup(bm, h2, h1, t3), -1);
    /* wrong parent: no hit */
    assert_int_equal(ragd_bm_lookup(bm, h2, 0, t2), -1);
    ragd_bm_incref(bm, b);
    assert_int_equal(ragd_bm_refcount(bm, b), 2);
    ragd_bm_release(bm, b);
    ragd_bm_release(bm, b);
    ragd_bm_release(bm, a);
    /* uncached free blocks are used before cached ones; then cached ones are evicted */
    int32_t c = ragd_bm_alloc(bm), d = ragd_bm_alloc(bm);
    assert_true(c != a && c != b && d != a && d != b);
    int32_t x = ragd_bm_alloc(bm), y = ragd_bm_alloc(bm);
    assert_true(x >= 0 && y >= 0);
    assert_int_equal(ragd_bm_alloc(bm), -1);
    assert_int_equal(ragd_bm_n_free(bm), 0);
    assert_int_equal(ragd_bm_lookup(bm, h1, 0, t1), -1); /* evicted */
    ragd_bm_release(bm, c);
    ragd_bm_release(bm, d);
    ragd_bm_release(bm, x);
    ragd_bm_release(bm, y);
    assert_int_equal(ragd_bm_n_free(bm), 4);
    ragd_bm_destroy(bm);
}

/* Run each request alone and then all together; the tokens must be identical. */
static void batched_equals_alone(bool with_sample, int n_blocks, bool expect_preempt) {
    enum { N = 32 };
    ragd_backend *be = mock_backend_create(V, 512, with_sample);
    ragd_engine *e = mk(be, n_blocks, 16, 24);
    static int32_t prompts[N][200];
    int lens[N];
    out *alone = calloc(N, sizeof(out)), *together = calloc(N, sizeof(out));
    for (int i = 0; i < N; i++) {
        lens[i] = 1 + (i * 37) % 150;
        make_prompt(prompts[i], lens[i], i % 5); /* shared prefixes among requests */
    }
    ragd_req_params p = greedy(40);
    p.ignore_eos = (bool)0;
    reset_done();
    for (int i = 0; i < N; i++) {
        assert_int_equal(ragd_engine_submit(e, prompts[i], lens[i], &p, cb, &alone[i], NULL, NULL),
                         0);
        wait_done(i + 1);
    }
    reset_done();
    for (int i = 0; i < N; i++)
        assert_int_equal(
            ragd_engine_submit(e, prompts[i], lens[i], &p, cb, &together[i], NULL, NULL), 0);
    wait_done(N);
    int preempted = 0, total = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(alone[i].finish, together[i].finish);
        assert_int_equal(alone[i].n, together[i].n);
        total += alone[i].n;
        assert_memory_equal(alone[i].toks, together[i].toks, sizeof(int32_t) * (size_t)alone[i].n);
        preempted += together[i].n_preempted;
    }
    assert_true(total > N * 10); /* mostly real continuations, not instant EOS */
    ragd_engine_stats st;
    ragd_engine_get_stats(e, &st);
    assert_int_equal(st.blocks_used, 0);
    assert_int_equal(st.running, 0);
    assert_int_equal(st.waiting, 0);
    if (expect_preempt) {
        assert_true(preempted > 0);
        assert_true(st.preemptions > 0);
    }
    mock_stats *ms = mock_backend_stats(be);
    assert_true(ms->max_batch > 1);            /* really batched */
    assert_true(ms->max_tokens_in_step <= 24); /* token budget respected */
    ragd_engine_destroy(e);
    be->ops->destroy(be);
    free(alone);
    free(together);
}

static void test_batched_equals_alone(void **state) {
    (void)state;
    batched_equals_alone(false, 1024, false);
}

static void test_batched_equals_alone_device_sampling(void **state) {
    (void)state;
    batched_equals_alone(true, 1024, false);
}

static void test_preemption_tiny_kv(void **state) {
    (void)state;
    /* 64 blocks x 4 tokens = one max-length sequence: heavy preemption, no failures */
    batched_equals_alone(false, 64, true);
}

static void test_prefix_cache(void **state) {
    (void)state;
    ragd_backend *be = mock_backend_create(V, 512, false);
    ragd_engine *e = mk(be, 256, 8, 64);
    int32_t p1[100];
    make_prompt(p1, 100, 3);
    ragd_req_params p = greedy(10);
    p.ignore_eos = true;
    out a = {0}, b = {0}, c = {0};
    reset_done();
    assert_int_equal(ragd_engine_submit(e, p1, 100, &p, cb, &a, NULL, NULL), 0);
    wait_done(1);
    assert_int_equal(a.n_cached, 0);
    assert_int_equal(ragd_engine_submit(e, p1, 100, &p, cb, &b, NULL, NULL), 0);
    wait_done(2);
    assert_int_equal(b.n_cached, 96); /* 24 full blocks; the last token is recomputed */
    assert_memory_equal(a.toks, b.toks, sizeof(int32_t) * 10);
    /* a prompt differing in token 50 shares only the blocks before it */
    p1[50] = (p1[50] + 1) % (V - 1);
    assert_int_equal(ragd_engine_submit(e, p1, 100, &p, cb, &c, NULL, NULL), 0);
    wait_done(3);
    assert_int_equal(c.n_cached, 48);
    ragd_engine_stats st;
    ragd_engine_get_stats(e, &st);
    assert_int_equal(st.blocks_used, 0);
    assert_true(st.blocks_cached > 0);
    ragd_engine_destroy(e);
    be->ops->destroy(be);
}

static void test_chunked_prefill_keeps_decoding(void **state) {
    (void)state;
    ragd_backend *be = mock_backend_create(V, 1024, false);
    ragd_engine_opts o;
    memset(&o, 0, sizeof o);
    o.n_blocks = 512;
    o.block_size = 16;
    o.max_num_seqs = 4;
    o.max_num_batched_tokens = 32;
    o.max_model_len = 1024;
    ragd_engine *e;
    assert_int_equal(ragd_engine_create(be, &o, &e, NULL), 0);
    int32_t shortp[4] = {1, 2, 3, 4};
    static int32_t longp[800];
    make_prompt(longp, 800, 9);
    ragd_req_params p = greedy(20);
    p.ignore_eos = true;
    out s = {0}, l = {0};
    reset_done();
    assert_int_equal(ragd_engine_submit(e, shortp, 4, &p, cb, &s, NULL, NULL), 0);
    assert_int_equal(ragd_engine_submit(e, longp, 800, &p, cb, &l, NULL, NULL), 0);
    wait_done(2);
    /* 800 prompt tokens at <= 32 per step take >= 25 steps; the short request's 20 decode
     * steps run alongside, so it finishes first. */
    assert_int_equal(s.order, 1);
    assert_int_equal(s.n, 20);
    assert_int_equal(l.n, 20);
    assert_true(mock_backend_stats(be)->max_tokens_in_step <= 32);
    ragd_engine_destroy(e);
    be->ops->destroy(be);
}

static void test_cancel_and_timeout(void **state) {
    (void)state;
    ragd_backend *be = mock_backend_create(V, 4096, false);
    ragd_engine_opts o;
    memset(&o, 0, sizeof o);
    o.n_blocks = 1024;
    o.block_size = 4;
    o.max_model_len = 4096;
    ragd_engine *e;
    assert_int_equal(ragd_engine_create(be, &o, &e, NULL), 0);
    int32_t pr[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    ragd_req_params p = greedy(4000);
    p.ignore_eos = true;
    out a = {0}, b = {0};
    reset_done();
    a.cancel = true; /* cancelled before it runs */
    assert_int_equal(ragd_engine_submit(e, pr, 8, &p, cb, &a, &a.cancel, NULL), 0);
    wait_done(1);
    assert_int_equal(a.finish, RAGD_FINISH_ABORT);
    p.timeout_s = 0.05;
    assert_int_equal(ragd_engine_submit(e, pr, 8, &p, cb, &b, NULL, NULL), 0);
    wait_done(2);
    assert_true(b.finish == RAGD_FINISH_TIMEOUT || b.finish == RAGD_FINISH_LENGTH);
    /* a running request cancelled from another thread frees its blocks */
    out c = {0};
    p.timeout_s = 0;
    p.max_tokens = 3000;
    assert_int_equal(ragd_engine_submit(e, pr, 8, &p, cb, &c, &c.cancel, NULL), 0);
    for (;;) {
        pthread_mutex_lock(&g_mu);
        int n = c.n;
        pthread_mutex_unlock(&g_mu);
        if (n > 5 || g_done >= 3) break;
        ragd_sleep_ns(1000000);
    }
    atomic_store(&c.cancel, true);
    ragd_engine_wake(e);
    wait_done(3);
    ragd_engine_stats st;
    ragd_engine_get_stats(e, &st);
    assert_int_equal(st.blocks_used, 0);
    assert_true(c.finish == RAGD_FINISH_ABORT || c.finish == RAGD_FINISH_LENGTH);
    ragd_engine_destroy(e);
    be->ops->destroy(be);
}

static void test_stop_conditions(void **state) {
    (void)state;
    ragd_backend *be = mock_backend_create(V, 512, false);
    ragd_engine *e = mk(be, 512, 8, 64);
    int32_t pr[5] = {3, 1, 4, 1, 5};
    reset_done();
    /* reference run without stops */
    ragd_req_params p = greedy(60);
    p.ignore_eos = true;
    out ref = {0};
    assert_int_equal(ragd_engine_submit(e, pr, 5, &p, cb, &ref, NULL, NULL), 0);
    wait_done(1);
    assert_int_equal(ref.n, 60);
    assert_int_equal(ref.finish, RAGD_FINISH_LENGTH);
    /* stop token id = the 7th generated token: 6 tokens delivered, finish stop */
    out st = {0};
    int32_t stop_id = ref.toks[6];
    int first = 0;
    while (ref.toks[first] != stop_id) first++;
    p.stop_token_ids = &stop_id;
    p.n_stop_token_ids = 1;
    assert_int_equal(ragd_engine_submit(e, pr, 5, &p, cb, &st, NULL, NULL), 0);
    wait_done(2);
    assert_int_equal(st.finish, RAGD_FINISH_STOP);
    assert_int_equal(st.n, first);
    /* callback stop (stop strings) */
    out cs = {0};
    cs.stop_after = 3;
    p.n_stop_token_ids = 0;
    assert_int_equal(ragd_engine_submit(e, pr, 5, &p, cb, &cs, NULL, NULL), 0);
    wait_done(3);
    assert_int_equal(cs.n, 3);
    assert_int_equal(cs.finish, RAGD_FINISH_STOP);
    /* prompt logprobs: one per prompt token after the first; logprobs <= 0 */
    out lp = {0};
    p.prompt_logprobs = true;
    p.sampling.logprobs = 2;
    p.max_tokens = 4;
    assert_int_equal(ragd_engine_submit(e, pr, 5, &p, cb, &lp, NULL, NULL), 0);
    wait_done(4);
    assert_int_equal(lp.n_prompt_lp, 4);
    assert_true(lp.lp_sum <= 0);
    assert_memory_equal(lp.toks, ref.toks, sizeof(int32_t) * 4);
    /* bad requests */
    ragd_err err = {0};
    int32_t bad = V + 5;
    assert_int_equal(ragd_engine_submit(e, &bad, 1, &p, cb, &lp, NULL, &err), RAGD_EINVAL);
    static int32_t huge[300];
    assert_int_equal(ragd_engine_submit(e, huge, 300, &p, cb, &lp, NULL, &err), RAGD_EINVAL);
    assert_non_null(strstr(err.msg, "maximum context length"));
    ragd_engine_destroy(e);
    be->ops->destroy(be);
}

static void test_eos_and_min_tokens(void **state) {
    (void)state;
    ragd_backend *be = mock_backend_create(V, 512, false);
    ragd_engine *e = mk(be, 512, 8, 64);
    reset_done();
    /* find a prompt whose greedy continuation hits EOS within 200 tokens */
    int32_t pr[3];
    out o = {0};
    ragd_req_params p = greedy(200);
    int found = -1;
    for (int s = 0; s < 40 && found < 0; s++) {
        pr[0] = s;
        pr[1] = s + 1;
        pr[2] = 2;
        memset(&o, 0, sizeof o);
        assert_int_equal(ragd_engine_submit(e, pr, 3, &p, cb, &o, NULL, NULL), 0);
        wait_done(s + 1);
        if (o.finish == RAGD_FINISH_STOP && o.n < 150) found = s;
    }
    assert_true(found >= 0);
    int n_eos = o.n;
    int done = g_done;
    /* ignore_eos continues past it; min_tokens suppresses it */
    out ig = {0}, mn = {0};
    p.ignore_eos = true;
    p.max_tokens = n_eos + 5;
    assert_int_equal(ragd_engine_submit(e, pr, 3, &p, cb, &ig, NULL, NULL), 0);
    wait_done(done + 1);
    assert_int_equal(ig.n, n_eos + 5);
    assert_int_equal(ig.toks[n_eos], V - 1);
    p.ignore_eos = false;
    p.min_tokens = n_eos + 2;
    assert_int_equal(ragd_engine_submit(e, pr, 3, &p, cb, &mn, NULL, NULL), 0);
    wait_done(done + 2);
    assert_true(mn.n >= n_eos + 2);
    assert_memory_equal(mn.toks, o.toks, sizeof(int32_t) * (size_t)n_eos);
    assert_true(mn.toks[n_eos] != V - 1);
    ragd_engine_destroy(e);
    be->ops->destroy(be);
}

static int slow_cb(void *ctx, const ragd_engine_event *ev) {
    return cb(ctx, ev);
}

static void test_queue_bound(void **state) {
    (void)state;
    ragd_backend *be = mock_backend_create(V, 512, false);
    ragd_engine_opts o;
    memset(&o, 0, sizeof o);
    o.n_blocks = 512;
    o.block_size = 4;
    o.max_num_seqs = 1;
    o.max_waiting = 3;
    o.max_model_len = 512;
    ragd_engine *e;
    assert_int_equal(ragd_engine_create(be, &o, &e, NULL), 0);
    int32_t pr[2] = {1, 2};
    ragd_req_params p = greedy(400);
    p.ignore_eos = true;
    out os[64];
    memset(os, 0, sizeof os);
    reset_done();
    int busy = 0, ok = 0;
    for (int i = 0; i < 64; i++) {
        ragd_err err = {0};
        int rc = ragd_engine_submit(e, pr, 2, &p, slow_cb, &os[i], &os[i].cancel, &err);
        if (rc == RAGD_EBUSY)
            busy++;
        else if (rc == 0)
            ok++;
    }
    assert_true(busy > 0);
    for (int i = 0; i < 64; i++) atomic_store(&os[i].cancel, true);
    ragd_engine_wake(e);
    wait_done(ok);
    ragd_engine_destroy(e);
    be->ops->destroy(be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block_manager),
        cmocka_unit_test(test_batched_equals_alone),
        cmocka_unit_test(test_batched_equals_alone_device_sampling),
        cmocka_unit_test(test_preemption_tiny_kv),
        cmocka_unit_test(test_prefix_cache),
        cmocka_unit_test(test_chunked_prefill_keeps_decoding),
        cmocka_unit_test(test_cancel_and_timeout),
        cmocka_unit_test(test_stop_conditions),
        cmocka_unit_test(test_eos_and_min_tokens),
        cmocka_unit_test(test_queue_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
