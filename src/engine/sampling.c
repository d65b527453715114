#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/sampler.h"
#include "engine/sampling.h"
#include "util/clock.h"
#include "util/str.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#define SAMPLER_SIMD 1
#endif

typedef struct ragd_sampler_cand {
    float v;
    int32_t id;
} vi;

void ragd_sampling_defaults(ragd_sampling_params *p) {
    memset(p, 0, sizeof *p);
    p->temperature = 1.0f;
    p->top_p = 1.0f;
    p->top_k = 0;
    p->min_p = 0.0f;
    p->repetition_penalty = 1.0f;
    p->logprobs = -1;
}

/* ---------------------------------------------------------------------------------------- */
/* xoshiro256** seeded through splitmix64                                                   */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void ragd_rng_seed(ragd_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

uint64_t ragd_rng_next(ragd_rng *r) {
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double ragd_rng_uniform(ragd_rng *r) {
    return (double)(ragd_rng_next(r) >> 11) * 0x1.0p-53;
}

/* ---------------------------------------------------------------------------------------- */

int ragd_sampling_validate(const ragd_sampling_params *p, ragd_err *err) {
#define BAD(field, cond, msg)                                                                      \
    if (!(cond)) return ragd_err_set(err, RAGD_EINVAL, "%s " msg, field)
    BAD("temperature", isfinite(p->temperature) && p->temperature >= 0 && p->temperature <= 100,
        "must be between 0 and 100");
    BAD("top_p", isfinite(p->top_p) && p->top_p > 0 && p->top_p <= 1, "must be in (0, 1]");
    BAD("top_k", p->top_k >= 0, "must be >= 0 (0 = off)");
    BAD("min_p", isfinite(p->min_p) && p->min_p >= 0 && p->min_p <= 1, "must be in [0, 1]");
    BAD("repetition_penalty",
        isfinite(p->repetition_penalty) && p->repetition_penalty > 0 &&
            p->repetition_penalty <= 100,
        "must be > 0");
    BAD("presence_penalty", isfinite(p->presence_penalty) && fabsf(p->presence_penalty) <= 2,
        "must be between -2 and 2");
    BAD("frequency_penalty", isfinite(p->frequency_penalty) && fabsf(p->frequency_penalty) <= 2,
        "must be between -2 and 2");
    BAD("top_logprobs", p->logprobs >= -1 && p->logprobs <= RAGD_MAX_TOP_LOGPROBS,
        "must be between 0 and 20");
#undef BAD
    return RAGD_OK;
}

int ragd_sampler_init(ragd_sampler *s, const ragd_sampling_params *p, int vocab, ragd_err *err) {
    memset(s, 0, sizeof *s);
    int rc = ragd_sampling_validate(p, err);
    if (rc) return rc;
    if (vocab <= 0) return ragd_err_set(err, RAGD_EINVAL, "sampler: vocab size %d", vocab);
    s->p = *p;
    s->vocab = vocab;
    uint64_t seed = p->has_seed ? p->seed : (ragd_now_ns() ^ ((uint64_t)(uintptr_t)s << 16));
    ragd_rng_seed(&s->rng, seed);
    s->work = malloc(sizeof(float) * (size_t)vocab);
    s->cand = malloc(sizeof(*s->cand) * (size_t)vocab);
    if (!s->work || !s->cand) {
        ragd_sampler_free(s);
        return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    }
    return RAGD_OK;
}

void ragd_sampler_free(ragd_sampler *s) {
    free(s->work);
    free(s->cand);
    free(s->sort);
    memset(s, 0, sizeof *s);
}

/* ---------------------------------------------------------------------------------------- */
/* passes over a whole logits row (151,936 entries for Qwen2): AVX-512 when the build has it.
 * A scalar pass with libm's exp costs ~1 ms per row, as much as 3% of a CPU decode step per
 * sequence; these take tens of microseconds. Results: the max and argmax are exact; sums of
 * exponentials are double precision (an 8-lane double exp within ~2 ulp), as the scalar code. */

#ifdef SAMPLER_SIMD
/* exp(x) for x <= 0, 8 doubles, within ~2 ulp; -inf, NaN and x < -745 give 0 */
static inline __m512d exp8d(__m512d x) {
    x = _mm512_max_pd(x, _mm512_set1_pd(-745.0)); /* NaN: max returns the second operand */
    const __m512d n = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(1.4426950408889634)),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512d r = _mm512_fnmadd_pd(n, _mm512_set1_pd(6.93147180369123816490e-01), x);
    r = _mm512_fnmadd_pd(n, _mm512_set1_pd(1.90821492927058770002e-10), r);
    /* |r| <= 0.35: Taylor to r^13 (truncation < 2e-16 relative) */
    static const double inv_fact[] = {1.0 / 6227020800.0,
                                      1.0 / 479001600.0,
                                      1.0 / 39916800.0,
                                      1.0 / 3628800.0,
                                      1.0 / 362880.0,
                                      1.0 / 40320.0,
                                      1.0 / 5040.0,
                                      1.0 / 720.0,
                                      1.0 / 120.0,
                                      1.0 / 24.0,
                                      1.0 / 6.0,
                                      0.5,
                                      1.0,
                                      1.0};
    __m512d p = _mm512_set1_pd(inv_fact[0]);
    for (int i = 1; i < 14; i++) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(inv_fact[i]));
    return _mm512_scalef_pd(p, n);
}

static inline __mmask8 tail8(int left) {
    return left >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << left) - 1u);
}
#endif

/* max of x[0..n), NaN ignored; -inf when there is none */
static float row_max(const float *x, int n) {
    int i = 0;
    float mx = -INFINITY;
#ifdef SAMPLER_SIMD
    __m512 m = _mm512_set1_ps(-INFINITY);
    for (; i + 16 <= n; i += 16) m = _mm512_max_ps(_mm512_loadu_ps(x + i), m); /* NaN -> m */
    mx = _mm512_reduce_max_ps(m);
#endif
    for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    return mx;
}

int ragd_argmax(const float *x, int n) {
    int i = 0, best = -1;
    float bv = -INFINITY;
#ifdef SAMPLER_SIMD
    __m512 v = _mm512_set1_ps(-INFINITY);
    __m512i vi_ = _mm512_set1_epi32(-1),
            idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i step = _mm512_set1_epi32(16);
    for (; i + 16 <= n; i += 16) {
        __m512 xv = _mm512_loadu_ps(x + i);
        __mmask16 gt = _mm512_cmp_ps_mask(xv, v, _CMP_GT_OQ); /* strict: a lane keeps its first */
        v = _mm512_mask_mov_ps(v, gt, xv);
        vi_ = _mm512_mask_mov_epi32(vi_, gt, idx);
        idx = _mm512_add_epi32(idx, step);
    }
    bv = _mm512_reduce_max_ps(v);
    if (bv > -INFINITY) /* the lowest index among the lanes holding the maximum */
        best = _mm512_mask_reduce_min_epi32(_mm512_cmp_ps_mask(v, _mm512_set1_ps(bv), _CMP_EQ_OQ),
                                            vi_);
#endif
    for (; i < n; i++)
        if (x[i] > bv) {
            bv = x[i];
            best = i;
        }
    return best;
}

/* top-p histogram: HIST_NB bins over the first HIST_RANGE nats below the max (d = max - logit);
 * further tokens (and NaN) share the last bin - the same rule as the vector pass (min, then
 * truncate) */
enum { HIST_NB = 1024 };
#define HIST_RANGE 40.0
static inline int hist_bin(double d) {
    const double t = d * (HIST_NB / HIST_RANGE);
    return t < HIST_NB - 1 ? (int)t : HIST_NB - 1;
}

/* sum over x_i >= cut of exp(x_i - mx), in double */
static double sum_exp(const float *x, int n, double mx, double cut) {
    double z = 0;
    int i = 0;
#ifdef SAMPLER_SIMD
    const __m512d vmx = _mm512_set1_pd(mx), vcut = _mm512_set1_pd(cut);
    __m512d acc = _mm512_setzero_pd();
    for (; i < n; i += 8) {
        const __mmask8 t = tail8(n - i);
        const __m512d v = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(t, x + i));
        const __mmask8 keep = t & _mm512_cmp_pd_mask(v, vcut, _CMP_GE_OQ);
        acc = _mm512_mask_add_pd(acc, keep, acc, exp8d(_mm512_sub_pd(v, vmx)));
    }
    z = _mm512_reduce_add_pd(acc);
#endif
    for (; i < n; i++)
        if ((double)x[i] >= cut) z += exp((double)x[i] - mx);
    return z;
}

/* Inverse-CDF draw over x[0..n) with weights exp(x_i - mx) (x_i >= cut, others 0): the first i
 * whose running sum exceeds u; past the end (rounding), the last i with a positive weight. */
static int draw_exp(const float *x, int n, double mx, double cut, double u) {
    double acc = 0;
    int tok = -1, i = 0;
#ifdef SAMPLER_SIMD
    const __m512d vmx = _mm512_set1_pd(mx), vcut = _mm512_set1_pd(cut);
    for (; i < n; i += 8) {
        const __mmask8 t = tail8(n - i);
        const __m512d v = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(t, x + i));
        const __mmask8 keep = t & _mm512_cmp_pd_mask(v, vcut, _CMP_GE_OQ);
        const __m512d w = _mm512_maskz_mov_pd(keep, exp8d(_mm512_sub_pd(v, vmx)));
        const double bs = _mm512_reduce_add_pd(w);
        if (bs <= 0) continue;
        if (acc + bs <= u) { /* not in this block: remember its last positive weight */
            acc += bs;
            const unsigned pos = _mm512_cmp_pd_mask(w, _mm512_setzero_pd(), _CMP_GT_OQ);
            tok = i + 31 - __builtin_clz(pos); /* pos != 0: bs > 0 */
            continue;
        }
        double ws[8];
        _mm512_storeu_pd(ws, w);
        for (int j = 0; j < 8; j++) {
            if (ws[j] <= 0) continue;
            acc += ws[j];
            tok = i + j;
            if (u < acc) return tok;
        }
    }
#endif
    for (; i < n; i++) {
        if ((double)x[i] < cut) continue;
        double w = exp((double)x[i] - mx);
        if (w <= 0) continue;
        acc += w;
        tok = i;
        if (u < acc) break;
    }
    return tok;
}

double ragd_logsumexp(const float *x, int n) {
    float mx = row_max(x, n);
    if (!isfinite(mx)) return mx;
    return mx + log(sum_exp(x, n, mx, -INFINITY));
}

/* min-heap of (value, id) keeping the k largest; ties broken towards the lower id */

static int vi_less(vi a, vi b) { /* a ranks below b */
    return a.v < b.v || (a.v == b.v && a.id > b.id);
}

static void heap_down(vi *h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && vi_less(h[l], h[m])) m = l;
        if (r < n && vi_less(h[r], h[m])) m = r;
        if (m == i) return;
        vi t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* Top-k of x[ids[0..n)] (or of 0..n when ids NULL) into out (descending); returns count. */
static int top_k_select(const float *x, const int32_t *ids, int n, int k, vi *out) {
    if (k > n) k = n;
    int m = 0;
    for (int j = 0; j < n; j++) {
#ifdef SAMPLER_SIMD
        /* heap full: skip 16 at a time while none beats its minimum (later ids rank below on
         * ties, and NaN never enters, as the scalar test) */
        if (!ids && m == k && k > 0)
            while (j + 16 <= n && !_mm512_cmp_ps_mask(_mm512_loadu_ps(x + j),
                                                      _mm512_set1_ps(out[0].v), _CMP_GT_OQ))
                j += 16;
        if (j >= n) break;
#endif
        int32_t id = ids ? ids[j] : j;
        vi e = {x[id], id};
        if (isnan(e.v)) continue; /* never ranked */
        if (m < k) {
            out[m++] = e;
            if (m == k)
                for (int i = k / 2 - 1; i >= 0; i--) heap_down(out, k, i);
        } else if (vi_less(out[0], e)) {
            out[0] = e;
            heap_down(out, k, 0);
        }
    }
    if (m < k)
        for (int i = m / 2 - 1; i >= 0; i--) heap_down(out, m, i);
    /* heap sort: pop the minimum to the end */
    for (int end = m - 1; end > 0; end--) {
        vi t = out[0];
        out[0] = out[end];
        out[end] = t;
        heap_down(out, end, 0);
    }
    return m;
}

int ragd_top_logprobs(const float *logits, int vocab, double lse, int n, int32_t *ids, float *lps) {
    if (n <= 0) return 0;
    if (n > RAGD_MAX_TOP_LOGPROBS) n = RAGD_MAX_TOP_LOGPROBS;
    vi tmp[RAGD_MAX_TOP_LOGPROBS];
    int m = top_k_select(logits, NULL, vocab, n, tmp);
    for (int i = 0; i < m; i++) {
        ids[i] = tmp[i].id;
        lps[i] = (float)((double)tmp[i].v - lse);
    }
    return m;
}

int ragd_topk(const float *x, int n, int k, int32_t *ids, float *vals) {
    if (k <= 0) return 0;
    vi *tmp = malloc(sizeof(vi) * (size_t)(k < n ? k : n));
    if (!tmp) return -1;
    int m = top_k_select(x, NULL, n, k, tmp);
    for (int i = 0; i < m; i++) {
        ids[i] = tmp[i].id;
        vals[i] = tmp[i].v;
    }
    free(tmp);
    return m;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static int cmp_vi_desc(const void *a, const void *b) {
    vi x = *(const vi *)a, y = *(const vi *)b;
    return vi_less(x, y) ? 1 : vi_less(y, x) ? -1 : 0;
}

static int sorted_copy(ragd_sampler *s, const int32_t *a, int na, const int32_t *b, int nb,
                       ragd_err *err) {
    size_t n = (size_t)na + (size_t)nb;
    if (n > s->sort_cap) {
        int32_t *p = realloc(s->sort, n * sizeof *p);
        if (!p) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        s->sort = p;
        s->sort_cap = n;
    }
    if (na) memcpy(s->sort, a, (size_t)na * sizeof *a);
    if (nb) memcpy(s->sort + na, b, (size_t)nb * sizeof *b);
    qsort(s->sort, n, sizeof *s->sort, cmp_i32);
    return RAGD_OK;
}

static int apply_penalties(ragd_sampler *s, float *lg, const int32_t *prompt, int n_prompt,
                           const int32_t *gen, int n_gen, ragd_err *err) {
    const ragd_sampling_params *p = &s->p;
    int rc;
    int V = s->vocab;
    if (p->repetition_penalty != 1.0f && n_prompt + n_gen > 0) {
        if ((rc = sorted_copy(s, prompt, n_prompt, gen, n_gen, err))) return rc;
        int n = n_prompt + n_gen;
        for (int i = 0; i < n; i++) {
            int32_t id = s->sort[i];
            if ((i > 0 && id == s->sort[i - 1]) || id < 0 || id >= V) continue;
            float l = lg[id];
            lg[id] = l > 0 ? l / p->repetition_penalty : l * p->repetition_penalty;
        }
    }
    if ((p->presence_penalty != 0 || p->frequency_penalty != 0) && n_gen > 0) {
        if ((rc = sorted_copy(s, gen, n_gen, NULL, 0, err))) return rc;
        for (int i = 0; i < n_gen;) {
            int j = i;
            while (j < n_gen && s->sort[j] == s->sort[i]) j++;
            int32_t id = s->sort[i];
            if (id >= 0 && id < V)
                lg[id] -= p->presence_penalty + p->frequency_penalty * (float)(j - i);
            i = j;
        }
    }
    return RAGD_OK;
}

/* transformers' top-p over candidates sorted descending: keep while the mass ranked above is
 * < top_p (at least one). z: the normaliser over all candidates. */
static int top_p_keep(const vi *c, int n, double mx, double z, double top_p) {
    double cum = 0;
    int keep = 0;
    while (keep < n && (keep == 0 || cum < top_p)) {
        cum += exp((double)c[keep].v - mx) / z;
        keep++;
    }
    return keep;
}

int ragd_sampler_sample(ragd_sampler *s, float *lg, const int32_t *prompt, int n_prompt,
                        const int32_t *gen, int n_gen, const int32_t *suppress, int n_suppress,
                        ragd_sample_out *out, ragd_err *err) {
    const ragd_sampling_params *p = &s->p;
    const int V = s->vocab;
    memset(out, 0, sizeof *out);
    double lse = 0;
    bool want_lp = p->logprobs >= 0;
    if (want_lp) {
        lse = ragd_logsumexp(lg, V);
        out->n_top = ragd_top_logprobs(lg, V, lse, p->logprobs, out->top_ids, out->top_logprobs);
        memcpy(s->work, lg, sizeof(float) * (size_t)V); /* raw logits for the chosen logprob */
    }
    int rc = apply_penalties(s, lg, prompt, n_prompt, gen, n_gen, err);
    if (rc) return rc;
    for (int i = 0; i < n_suppress; i++)
        if (suppress[i] >= 0 && suppress[i] < V) lg[suppress[i]] = -INFINITY;
    int32_t tok = -1;
    if (p->temperature == 0.0f) {
        tok = ragd_argmax(lg, V);
    } else {
        const float inv_t = 1.0f / p->temperature;
        for (int i = 0; i < V; i++) lg[i] *= inv_t;
        vi *c = s->cand;
        int n;
        int k = p->top_k > 0 && p->top_k < V ? p->top_k : 0;
        if (k) {
            n = top_k_select(lg, NULL, V, k, c);
            if (p->top_p < 1.0f) {
                double mx = c[0].v, z = 0;
                for (int i = 0; i < n; i++) z += exp((double)c[i].v - mx);
                n = top_p_keep(c, n, mx, z, p->top_p);
            }
        } else if (p->top_p < 1.0f) {
            /* Histogram of the probability mass by distance below the max logit: every
             * token of a bin whose cumulative mass (bins before it included) stays below
             * top_p is kept for sure, so only the bins up to the crossing one are sorted.
             * Exact, O(V) plus a sort of the (usually small) kept set. */
            enum { NB = HIST_NB };
            double mass[NB] = {0};
            double mx = row_max(lg, V), z = 0;
            int i0 = 0;
#ifdef SAMPLER_SIMD
            {
                const __m512d vmx = _mm512_set1_pd(mx),
                              scale = _mm512_set1_pd(HIST_NB / HIST_RANGE),
                              top = _mm512_set1_pd(NB - 1);
                __m512d zacc = _mm512_setzero_pd();
                for (; i0 + 8 <= V; i0 += 8) {
                    const __m512d d = _mm512_sub_pd(vmx, _mm512_cvtps_pd(_mm256_loadu_ps(lg + i0)));
                    const __m512d w = exp8d(_mm512_sub_pd(_mm512_setzero_pd(), d));
                    /* NaN d: min returns its second operand, the last bin (weight 0) */
                    int32_t b[8];
                    double ws[8];
                    _mm256_storeu_si256((__m256i *)b, _mm512_cvttpd_epi32(_mm512_min_pd(
                                                          _mm512_mul_pd(d, scale), top)));
                    _mm512_storeu_pd(ws, w);
                    for (int j = 0; j < 8; j++) mass[b[j]] += ws[j];
                    zacc = _mm512_add_pd(zacc, w);
                }
                z = _mm512_reduce_add_pd(zacc);
            }
#endif
            for (int i = i0; i < V; i++) {
                double d = mx - (double)lg[i];
                int b = hist_bin(d);
                double w = exp(-d);
                mass[b] += w;
                z += w;
            }
            int last = NB - 1;
            double cum = 0;
            for (int b = 0; b < NB; b++) {
                if (cum >= p->top_p * z) {
                    last = b - 1;
                    break;
                }
                cum += mass[b];
            }
            n = 0;
            for (int i = 0; i < V; i++) {
                double d = mx - (double)lg[i];
                int b = hist_bin(d);
                if (b <= last) c[n++] = (vi){lg[i], i};
            }
            qsort(c, (size_t)n, sizeof *c, cmp_vi_desc);
            n = top_p_keep(c, n, mx, z, p->top_p);
        } else {
            /* no top-k / top-p: min-p and the draw straight over the row, in id order */
            float mx = row_max(lg, V);
            if (!isfinite(mx))
                return ragd_err_set(err, RAGD_EINVAL, "sampler: every token is masked");
            double cut = p->min_p > 0 ? (double)mx + log((double)p->min_p) : -INFINITY;
            double z = sum_exp(lg, V, mx, cut);
            tok = draw_exp(lg, V, mx, cut, ragd_rng_uniform(&s->rng) * z);
            n = 0;
        }
        if (n > 0) {
            float mx = -INFINITY;
            for (int i = 0; i < n; i++) mx = c[i].v > mx ? c[i].v : mx;
            if (!isfinite(mx))
                return ragd_err_set(err, RAGD_EINVAL, "sampler: every token is masked");
            /* min-p: p_i < min_p * p_max  <=>  logit_i < logit_max + log(min_p) */
            double cut = p->min_p > 0 ? (double)mx + log((double)p->min_p) : -INFINITY;
            double z = 0;
            for (int i = 0; i < n; i++)
                if ((double)c[i].v >= cut) z += exp((double)c[i].v - mx);
            double u = ragd_rng_uniform(&s->rng) * z, acc = 0;
            for (int i = 0; i < n; i++) {
                if ((double)c[i].v < cut) continue;
                double w = exp((double)c[i].v - mx);
                if (w <= 0) continue;
                acc += w;
                tok = c[i].id;
                if (u < acc) break;
            }
        }
    }
    if (tok < 0) return ragd_err_set(err, RAGD_EINVAL, "sampler: every token is masked");
    out->token = tok;
    out->logprob = want_lp ? (float)((double)s->work[tok] - lse) : 0.0f;
    return RAGD_OK;
}

bool ragd_stop_scan(const char *text, size_t len, size_t from, const char *const *stops,
                    int n_stops, size_t *end) {
    size_t maxl = 0;
    for (int i = 0; i < n_stops; i++) {
        size_t l = strlen(stops[i]);
        if (l > maxl) maxl = l;
    }
    /* a match must end after `from`, so it starts after from - maxl */
    size_t start = from > maxl ? from - maxl : 0;
    bool found = false;
    size_t best = len;
    for (int i = 0; i < n_stops; i++) {
        size_t l = strlen(stops[i]);
        if (!l || l > len) continue;
        for (size_t p = start; p + l <= len && p < best; p++)
            if (!memcmp(text + p, stops[i], l)) {
                best = p;
                found = true;
                break;
            }
    }
    if (found) {
        *end = best;
        return true;
    }
    /* hold back the longest tail that is a proper prefix of some stop string */
    size_t hold = 0;
    for (int i = 0; i < n_stops; i++) {
        size_t l = strlen(stops[i]);
        if (!l) continue;
        for (size_t h = l - 1 < len ? l - 1 : len; h > hold; h--)
            if (!memcmp(text + len - h, stops[i], h)) {
                hold = h;
                break;
            }
    }
    *end = ragd_utf8_complete_prefix(text, len - hold);
    return false;
}
