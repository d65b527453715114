/* Sampler: seeded reproducibility, filters never pick excluded tokens (property tests over
 * random logits), empirical frequencies match the filtered softmax (chi-square, fixed seeds),
 * penalty semantics, logprobs, parameter validation and the stop-string helper. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sampler.h"

static void rand_logits(ragd_rng *r, float *x, int n, float scale) {
    for (int i = 0; i < n; i++) x[i] = (float)((ragd_rng_uniform(r) * 2 - 1) * scale);
}

static int draw(ragd_sampler *s, const float *logits, int V) {
    float *tmp = malloc(sizeof(float) * (size_t)V);
    memcpy(tmp, logits, sizeof(float) * (size_t)V);
    ragd_sample_out o;
    ragd_err e = {0};
    if (ragd_sampler_sample(s, tmp, NULL, 0, NULL, 0, NULL, 0, &o, &e)) fail_msg("%s", e.msg);
    free(tmp);
    return o.token;
}

static void test_reproducible(void **state) {
    (void)state;
    enum { V = 1000, N = 200 };
    ragd_rng r;
    ragd_rng_seed(&r, 1);
    float *lg = malloc(sizeof(float) * V);
    rand_logits(&r, lg, V, 3);
    ragd_sampling_params p;
    ragd_sampling_defaults(&p);
    p.temperature = 0.9f;
    p.top_p = 0.95f;
    p.has_seed = true;
    p.seed = 42;
    int a[N], b[N], c[N];
    ragd_sampler s;
    ragd_err e = {0};
    assert_int_equal(ragd_sampler_init(&s, &p, V, &e), 0);
    for (int i = 0; i < N; i++) a[i] = draw(&s, lg, V);
    ragd_sampler_free(&s);
    assert_int_equal(ragd_sampler_init(&s, &p, V, &e), 0);
    for (int i = 0; i < N; i++) b[i] = draw(&s, lg, V);
    ragd_sampler_free(&s);
    p.seed = 43;
    assert_int_equal(ragd_sampler_init(&s, &p, V, &e), 0);
    for (int i = 0; i < N; i++) c[i] = draw(&s, lg, V);
    ragd_sampler_free(&s);
    assert_memory_equal(a, b, sizeof a);
    assert_true(memcmp(a, c, sizeof a) != 0);
    free(lg);
}

static int cmp_desc(const void *x, const void *y) {
    float a = *(const float *)x, b = *(const float *)y;
    return (a < b) - (a > b);
}

/* Property: over many random logit vectors, the chosen token is inside the kept set computed
 * independently from the definitions. */
static void test_filters_exclude(void **state) {
    (void)state;
    enum { V = 64 };
    ragd_rng r;
    ragd_rng_seed(&r, 7);
    float lg[V], sorted[V];
    for (int trial = 0; trial < 600; trial++) {
        rand_logits(&r, lg, V, 4);
        ragd_sampling_params p;
        ragd_sampling_defaults(&p);
        p.has_seed = true;
        p.seed = (uint64_t)trial;
        p.temperature = 0.5f + (float)ragd_rng_uniform(&r);
        int mode = trial % 3;
        if (mode == 0) p.top_k = 1 + (int)(ragd_rng_uniform(&r) * 10);
        if (mode == 1) p.top_p = 0.05f + 0.9f * (float)ragd_rng_uniform(&r);
        if (mode == 2) p.min_p = 0.05f + 0.5f * (float)ragd_rng_uniform(&r);
        ragd_sampler s;
        ragd_err e = {0};
        assert_int_equal(ragd_sampler_init(&s, &p, V, &e), 0);
        for (int d = 0; d < 20; d++) {
            int t = draw(&s, lg, V);
            memcpy(sorted, lg, sizeof lg);
            qsort(sorted, V, sizeof(float), cmp_desc);
            if (mode == 0) {
                assert_true(lg[t] >= sorted[p.top_k - 1]);
            } else if (mode == 1) {
                /* kept iff the mass of strictly better tokens is < top_p */
                double z = 0, above = 0;
                for (int i = 0; i < V; i++) z += exp((lg[i] - sorted[0]) / p.temperature);
                for (int i = 0; i < V; i++)
                    if (lg[i] > lg[t]) above += exp((lg[i] - sorted[0]) / p.temperature) / z;
                assert_true(above < p.top_p + 1e-6);
            } else {
                double ratio = exp((lg[t] - sorted[0]) / p.temperature);
                assert_true(ratio >= p.min_p - 1e-6);
            }
        }
        ragd_sampler_free(&s);
    }
}

/* top-p over a large, flat vocabulary (the kept set is thousands of tokens): the chosen
 * token is kept by transformers' rule, and the cut is tight (a token just past it exists). */
static void test_top_p_large_vocab(void **state) {
    (void)state;
    enum { V = 5000 };
    ragd_rng r;
    ragd_rng_seed(&r, 99);
    float *lg = malloc(sizeof(float) * V);
    for (int trial = 0; trial < 6; trial++) {
        rand_logits(&r, lg, V, trial < 3 ? 1.0f : 12.0f);
        ragd_sampling_params p;
        ragd_sampling_defaults(&p);
        p.has_seed = true;
        p.seed = 5 + (uint64_t)trial;
        p.top_p = 0.5f + 0.08f * (float)trial;
        ragd_sampler s;
        ragd_err e = {0};
        assert_int_equal(ragd_sampler_init(&s, &p, V, &e), 0);
        double mx = -1e30, z = 0;
        for (int i = 0; i < V; i++) mx = lg[i] > mx ? lg[i] : mx;
        for (int i = 0; i < V; i++) z += exp(lg[i] - mx);
        for (int d = 0; d < 50; d++) {
            int t = draw(&s, lg, V);
            double above = 0;
            for (int i = 0; i < V; i++)
                if (lg[i] > lg[t]) above += exp(lg[i] - mx) / z;
            assert_true(above < p.top_p + 1e-9);
        }
        ragd_sampler_free(&s);
    }
    free(lg);
}

/* Chi-square goodness of fit of the empirical frequencies against the filtered softmax. */
static void chi_square(const float *lg, int V, ragd_sampling_params *p, const double *expect,
                       int draws) {
    ragd_sampler s;
    ragd_err e = {0};
    assert_int_equal(ragd_sampler_init(&s, p, V, &e), 0);
    int *cnt = calloc((size_t)V, sizeof(int));
    for (int i = 0; i < draws; i++) cnt[draw(&s, lg, V)]++;
    double chi = 0;
    int df = -1;
    for (int i = 0; i < V; i++) {
        if (expect[i] == 0) {
            assert_int_equal(cnt[i], 0);
            continue;
        }
        double ex = expect[i] * draws;
        chi += (cnt[i] - ex) * (cnt[i] - ex) / ex;
        df++;
    }
    /* 99.9% quantile of chi-square with df <= 9 is < 27.9 */
    assert_true(df <= 9);
    if (chi > 27.9) fail_msg("chi-square %.2f with %d degrees of freedom", chi, df);
    free(cnt);
    ragd_sampler_free(&s);
}

static void test_frequencies(void **state) {
    (void)state;
    enum { V = 10 };
    const float lg[V] = {1.0f, 0.5f, 2.0f, -1.0f, 0.0f, 1.5f, -0.5f, 0.7f, 0.2f, -2.0f};
    double ex[V];
    ragd_sampling_params p;
    ragd_sampling_defaults(&p);
    p.has_seed = true;
    p.seed = 2024;
    p.temperature = 0.8f;
    double z = 0;
    for (int i = 0; i < V; i++) z += exp(lg[i] / 0.8);
    for (int i = 0; i < V; i++) ex[i] = exp(lg[i] / 0.8) / z;
    chi_square(lg, V, &p, ex, 40000);
    /* top-k 4: ids 2, 5, 0, 7 renormalised */
    p.top_k = 4;
    z = 0;
    const int keep[4] = {2, 5, 0, 7};
    memset(ex, 0, sizeof ex);
    for (int i = 0; i < 4; i++) z += exp(lg[keep[i]] / 0.8);
    for (int i = 0; i < 4; i++) ex[keep[i]] = exp(lg[keep[i]] / 0.8) / z;
    chi_square(lg, V, &p, ex, 40000);
    /* min-p 0.3 at T=1: keep p >= 0.3 p_max, i.e. logit >= 2 + ln 0.3 = 0.796 -> 2, 5, 0 */
    p.top_k = 0;
    p.temperature = 1.0f;
    p.min_p = 0.3f;
    memset(ex, 0, sizeof ex);
    z = exp(2.0) + exp(1.5) + exp(1.0);
    ex[2] = exp(2.0) / z, ex[5] = exp(1.5) / z, ex[0] = exp(1.0) / z;
    chi_square(lg, V, &p, ex, 40000);
}

static void test_penalties_and_logprobs(void **state) {
    (void)state;
    enum { V = 6 };
    ragd_sampling_params p;
    ragd_sampling_defaults(&p);
    p.temperature = 0;
    p.repetition_penalty = 1.5f;
    p.logprobs = 3;
    ragd_sampler s;
    ragd_err e = {0};
    assert_int_equal(ragd_sampler_init(&s, &p, V, &e), 0);
    float lg[V] = {2.0f, 1.9f, -0.5f, -0.6f, -3.0f, -3.0f};
    float raw[V];
    memcpy(raw, lg, sizeof lg);
    int32_t prompt[3] = {0, 0, 2};
    ragd_sample_out o;
    assert_int_equal(ragd_sampler_sample(&s, lg, prompt, 3, NULL, 0, NULL, 0, &o, &e), 0);
    /* 2.0 / 1.5 < 1.9: token 1; -0.5 * 1.5 = -0.75 < -0.6 */
    assert_int_equal(o.token, 1);
    assert_float_equal(lg[0], 2.0f / 1.5f, 1e-6);
    assert_float_equal(lg[2], -0.75f, 1e-6);
    assert_float_equal(lg[3], -0.6f, 1e-6);
    /* logprobs come from the raw logits */
    double lse = ragd_logsumexp(raw, V);
    assert_float_equal(o.logprob, raw[1] - lse, 1e-5);
    assert_int_equal(o.n_top, 3);
    assert_int_equal(o.top_ids[0], 0);
    assert_int_equal(o.top_ids[1], 1);
    assert_int_equal(o.top_ids[2], 2);
    assert_float_equal(o.top_logprobs[0], raw[0] - lse, 1e-5);
    ragd_sampler_free(&s);
    /* presence / frequency: generated ids only */
    ragd_sampling_defaults(&p);
    p.temperature = 0;
    p.presence_penalty = 0.5f;
    p.frequency_penalty = 0.25f;
    assert_int_equal(ragd_sampler_init(&s, &p, V, &e), 0);
    float lg2[V] = {1.0f, 0.9f, 0.0f, 0.0f, 0.0f, 0.0f};
    int32_t gen[3] = {0, 0, 1};
    int32_t pr[2] = {1, 1};
    assert_int_equal(ragd_sampler_sample(&s, lg2, pr, 2, gen, 3, NULL, 0, &o, &e), 0);
    assert_float_equal(lg2[0], 1.0f - 0.5f - 0.5f, 1e-6);
    assert_float_equal(lg2[1], 0.9f - 0.5f - 0.25f, 1e-6);
    assert_int_equal(o.token, 1);
    /* suppressed ids are never picked */
    float lg3[V] = {5, 4, 3, 2, 1, 0};
    int32_t sup[2] = {0, 1};
    assert_int_equal(ragd_sampler_sample(&s, lg3, NULL, 0, NULL, 0, sup, 2, &o, &e), 0);
    assert_int_equal(o.token, 2);
    ragd_sampler_free(&s);
}

/* The row passes (vectorised where the build has AVX-512) against plain loops: argmax is the
 * first index of the maximum (NaN never, -1 when nothing is above -inf), log-sum-exp and the
 * top-k agree, for every length 1..70 (vector tails) and a full 151,936-entry row. */
static void test_row_passes(void **state) {
    (void)state;
    ragd_rng r;
    ragd_rng_seed(&r, 4242);
    enum { BIG = 151936 };
    float *x = malloc(sizeof(float) * BIG);
    for (int n = 1; n <= 71; n++) {
        int len = n == 71 ? BIG : n;
        for (int variant = 0; variant < 4; variant++) {
            rand_logits(&r, x, len, 8.0f);
            if (variant == 1) /* ties: coarse values, the first must win */
                for (int i = 0; i < len; i++) x[i] = floorf(x[i] / 4.0f);
            if (variant == 2) /* NaN and -inf sprinkled, one NaN larger than anything */
                for (int i = 0; i < len; i += 3) x[i] = i % 2 ? NAN : -INFINITY;
            if (variant == 3) /* nothing above -inf */
                for (int i = 0; i < len; i++) x[i] = i % 5 ? -INFINITY : NAN;
            int want = -1;
            float best = -INFINITY;
            double mx = -INFINITY;
            for (int i = 0; i < len; i++)
                if (x[i] > best) best = x[want = i];
            mx = best;
            assert_int_equal(ragd_argmax(x, len), want);
            double lse = ragd_logsumexp(x, len);
            if (want < 0) {
                assert_true(isinf(lse) && lse < 0);
                continue;
            }
            double z = 0;
            for (int i = 0; i < len; i++)
                if (!isnan(x[i])) z += exp((double)x[i] - mx);
            assert_true(fabs(lse - (mx + log(z))) <= 1e-12 * fmax(1.0, fabs(lse)));
            int32_t ids[5];
            float vals[5];
            int k = ragd_topk(x, len, 5, ids, vals);
            int32_t rid[5];
            int m = 0; /* reference: repeated scans, ties to the lower id */
            for (; m < 5 && m < len; m++) {
                int b = -1;
                for (int i = 0; i < len; i++) {
                    bool used = false;
                    for (int j = 0; j < m; j++) used = used || rid[j] == i;
                    if (used || isnan(x[i])) continue;
                    if (b < 0 || x[i] > x[b]) b = i;
                }
                if (b < 0) break;
                rid[m] = b;
            }
            assert_int_equal(k >= m ? m : k, m);
            for (int j = 0; j < m; j++) assert_int_equal(ids[j], rid[j]);
        }
    }
    free(x);
}

static void test_validate(void **state) {
    (void)state;
    ragd_sampling_params p;
    ragd_err e = {0};
    ragd_sampling_defaults(&p);
    assert_int_equal(ragd_sampling_validate(&p, &e), 0);
    p.top_p = 0;
    assert_int_equal(ragd_sampling_validate(&p, &e), RAGD_EINVAL);
    assert_non_null(strstr(e.msg, "top_p"));
    ragd_sampling_defaults(&p);
    p.temperature = -1;
    assert_int_equal(ragd_sampling_validate(&p, &e), RAGD_EINVAL);
    ragd_sampling_defaults(&p);
    p.temperature = NAN;
    assert_int_equal(ragd_sampling_validate(&p, &e), RAGD_EINVAL);
    ragd_sampling_defaults(&p);
    p.logprobs = 21;
    assert_int_equal(ragd_sampling_validate(&p, &e), RAGD_EINVAL);
    ragd_sampling_defaults(&p);
    p.repetition_penalty = 0;
    assert_int_equal(ragd_sampling_validate(&p, &e), RAGD_EINVAL);
}

static void test_stop_strings(void **state) {
    (void)state;
    const char *stops[2] = {"world", "\n\n"};
    size_t end;
    const char *t1 = "Hello wor";
    assert_false(ragd_stop_scan(t1, strlen(t1), 0, stops, 2, &end));
    assert_int_equal(end, 6); /* "wor" may still become "world" */
    const char *t2 = "Hello world and more";
    assert_true(ragd_stop_scan(t2, strlen(t2), 6, stops, 2, &end));
    assert_int_equal(end, 6);
    const char *t3 = "a\n";
    assert_false(ragd_stop_scan(t3, strlen(t3), 0, stops, 2, &end));
    assert_int_equal(end, 1);
    const char *t4 = "x\n\ny";
    assert_true(ragd_stop_scan(t4, strlen(t4), 0, stops, 2, &end));
    assert_int_equal(end, 1);
    /* never emit half a UTF-8 character */
    const char t5[] = "ab\xe4\xb8";
    assert_false(ragd_stop_scan(t5, 4, 0, stops, 2, &end));
    assert_int_equal(end, 2);
    /* no stop strings: everything complete may go */
    assert_false(ragd_stop_scan("abc", 3, 0, NULL, 0, &end));
    assert_int_equal(end, 3);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reproducible),           cmocka_unit_test(test_filters_exclude),
        cmocka_unit_test(test_top_p_large_vocab),      cmocka_unit_test(test_frequencies),
        cmocka_unit_test(test_penalties_and_logprobs), cmocka_unit_test(test_validate),
        cmocka_unit_test(test_stop_strings),           cmocka_unit_test(test_row_passes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
