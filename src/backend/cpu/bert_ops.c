/* bert_ops.c - fused BERT kernels (see bert_ops.h). */
#include "backend/cpu/bert_ops.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "model/dtype.h"

#include "backend/cpu/amx_gemm.h"
#include "backend/cpu/vmath.h"

#if defined(__AVX512F__) && defined(RAGD_VMATH)
#define BERT_OPS_AVX512 1
#endif

/* erf as x * P(x^2) / Q(x^2) on [-4, 4] (odd rational minimax fit, float accuracy); outside
 * that range erf is +-1 in float. Only mul/add/div: vectorises. */
static inline float erf_r(float x) {
    x = x < -4.0f ? -4.0f : (x > 4.0f ? 4.0f : x);
    const float x2 = x * x;
    float p = -2.72614225801306e-10f;
    p = p * x2 + 2.77068142495902e-08f;
    p = p * x2 + -2.10102402082508e-06f;
    p = p * x2 + -5.69250639462346e-05f;
    p = p * x2 + -7.34990630326855e-04f;
    p = p * x2 + -2.95459980854025e-03f;
    p = p * x2 + -1.60960333262415e-02f;
    float q = -1.45660718464996e-05f;
    q = q * x2 + -2.13374055278905e-04f;
    q = q * x2 + -1.68282697438203e-03f;
    q = q * x2 + -7.37332916720468e-03f;
    q = q * x2 + -1.42647390514189e-02f;
    return x * p / q;
}

float ragd_erf_approx(float x) {
    return erf_r(x);
}

void ragd_bias_gelu(float *restrict y, const float *restrict b, size_t n) {
#ifdef BERT_OPS_AVX512
    /* every element through the same vector code (masked tail), as the AMX epilogue does */
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        const __m512 x =
            _mm512_add_ps(_mm512_maskz_loadu_ps(k, y + i), _mm512_maskz_loadu_ps(k, b + i));
        _mm512_mask_storeu_ps(y + i, k, ragd_gelu16(x));
    }
    return;
#endif
    const float inv_sqrt2 = 0.70710678118654752f;
    for (size_t i = 0; i < n; i++) {
        float x = y[i] + b[i];
        y[i] = 0.5f * x * (1.0f + erf_r(x * inv_sqrt2));
    }
}

void ragd_softmax_row(float *restrict x, int n) {
    float mx = x[0];
    for (int j = 1; j < n; j++) mx = x[j] > mx ? x[j] : mx;
    float sum = 0.0f;
    for (int j = 0; j < n; j++) {
        x[j] = expf(x[j] - mx);
        sum += x[j];
    }
    const float inv = 1.0f / sum;
    for (int j = 0; j < n; j++) x[j] *= inv;
}

void ragd_add_bias(float *restrict y, const float *restrict b, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += b[i];
}

#ifdef BERT_OPS_AVX512
/* n % 16 == 0: the same LayerNorm with 16-lane sums, optionally storing a bf16 copy. */
__attribute__((target("avx512f,avx512bf16,avx512vl"))) static void
layernorm16(float *restrict x, const float *restrict r, const float *restrict bias,
            const float *restrict g, const float *restrict beta, size_t n, float eps,
            uint16_t *restrict xb) {
    __m512 s = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        if (r) v = _mm512_add_ps(v, _mm512_loadu_ps(r + i));
        if (bias) v = _mm512_add_ps(v, _mm512_loadu_ps(bias + i));
        _mm512_storeu_ps(x + i, v);
        s = _mm512_add_ps(s, v);
    }
    const __m512 mean = _mm512_set1_ps(_mm512_reduce_add_ps(s) / (float)n);
    __m512 s2 = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += 16) {
        const __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x + i), mean);
        s2 = _mm512_fmadd_ps(d, d, s2);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / sqrtf(_mm512_reduce_add_ps(s2) / (float)n + eps));
    for (size_t i = 0; i < n; i += 16) {
        const __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), mean), inv);
        const __m512 y = _mm512_fmadd_ps(d, _mm512_loadu_ps(g + i), _mm512_loadu_ps(beta + i));
        _mm512_storeu_ps(x + i, y);
        if (xb) _mm256_storeu_si256((__m256i *)(xb + i), (__m256i)_mm512_cvtneps_pbh(y));
    }
}
#endif

void ragd_bf16_store(uint16_t *restrict dst, const float *restrict src, size_t n) {
    size_t i = 0;
#if defined(BERT_OPS_AVX512) && defined(__AVX512BF16__)
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i),
                            (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src + i)));
#endif
    for (; i < n; i++) dst[i] = ragd_f32_to_bf16(src[i]);
}

void ragd_add_layernorm_bf16(float *restrict x, const float *restrict r, const float *restrict bias,
                             const float *restrict g, const float *restrict beta, size_t n,
                             float eps, uint16_t *xb) {
#ifdef BERT_OPS_AVX512
    if (n % 16 == 0) {
        layernorm16(x, r, bias, g, beta, n, eps, xb);
        return;
    }
#endif
    ragd_add_layernorm(x, r, bias, g, beta, n, eps);
    if (xb)
        for (size_t i = 0; i < n; i++) xb[i] = ragd_f32_to_bf16(x[i]);
}

void ragd_add_layernorm(float *restrict x, const float *restrict r, const float *restrict bias,
                        const float *restrict g, const float *restrict beta, size_t n, float eps) {
#ifdef BERT_OPS_AVX512
    if (n % 16 == 0) {
        layernorm16(x, r, bias, g, beta, n, eps, NULL);
        return;
    }
#endif
    if (r && bias) {
        for (size_t i = 0; i < n; i++) x[i] += r[i] + bias[i];
    } else if (r) {
        for (size_t i = 0; i < n; i++) x[i] += r[i];
    } else if (bias) {
        for (size_t i = 0; i < n; i++) x[i] += bias[i];
    }
    /* 16 partial sums so the reduction vectorises without -ffast-math */
    float s[16] = {0}, s2[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) s[j] += x[i + j];
    float mean = 0;
    for (int j = 0; j < 16; j++) mean += s[j];
    for (; i < n; i++) mean += x[i];
    mean /= (float)n;
    i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) {
            float d = x[i + j] - mean;
            s2[j] += d * d;
        }
    float var = 0;
    for (int j = 0; j < 16; j++) var += s2[j];
    for (; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= (float)n;
    const float inv = 1.0f / sqrtf(var + eps);
    for (i = 0; i < n; i++) x[i] = (x[i] - mean) * inv * g[i] + beta[i];
}

size_t ragd_attention_scratch_floats(int L, int D) {
    const size_t Lp = ((size_t)L + 15) / 16 * 16;
    const size_t generic = (size_t)L * (size_t)D + (size_t)L;
    const size_t fast = Lp * (size_t)D + 4 * Lp;
    return (generic > fast ? generic : fast) + 16;
}

#ifdef BERT_OPS_AVX512
#define ATT_INLINE __attribute__((always_inline)) static inline

/* Lanes [0, n) of a vector (n in 1..16). */
ATT_INLINE __mmask16 lanes(int n) {
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
}

/* In place: s[j] = exp(s[j] - max) for j < L, 0 for L <= j < NV * 16; returns 1 / sum. */
ATT_INLINE float softmax_unnorm(float *s, int L, int NV) {
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int v = 0; v < NV; v++)
        mx = _mm512_mask_max_ps(mx, lanes(L - 16 * v), mx, _mm512_loadu_ps(s + 16 * v));
    const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m512 sum = _mm512_setzero_ps();
    for (int v = 0; v < NV; v++) {
        __m512 e = _mm512_maskz_mov_ps(lanes(L - 16 * v),
                                       ragd_exp16(_mm512_sub_ps(_mm512_loadu_ps(s + 16 * v), m)));
        _mm512_storeu_ps(s + 16 * v, e);
        sum = _mm512_add_ps(sum, e);
    }
    return 1.0f / _mm512_reduce_add_ps(sum);
}

/* In-register transpose of a 16 x 16 block of floats (r[i] = row i on entry, column i on
 * exit). */
ATT_INLINE void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_castpd_ps(
            _mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        r[i + 1] = _mm512_castpd_ps(
            _mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        r[i + 2] = _mm512_castpd_ps(
            _mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
        r[i + 3] = _mm512_castpd_ps(
            _mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
    }
    /* r[4 b + c]: in 128-bit lane l, column 4 l + c of rows 4 b .. 4 b + 3; a 4 x 4 transpose
     * of the lanes across b gives column 4 l + c in t[4 l + c] */
    for (int c = 0; c < 4; c++) {
        const __m512 a = r[c], b = r[4 + c], e = r[8 + c], f = r[12 + c];
        const __m512 ab_lo = _mm512_shuffle_f32x4(a, b, 0x44),
                     ab_hi = _mm512_shuffle_f32x4(a, b, 0xee);
        const __m512 ef_lo = _mm512_shuffle_f32x4(e, f, 0x44),
                     ef_hi = _mm512_shuffle_f32x4(e, f, 0xee);
        t[c] = _mm512_shuffle_f32x4(ab_lo, ef_lo, 0x88);
        t[4 + c] = _mm512_shuffle_f32x4(ab_lo, ef_lo, 0xdd);
        t[8 + c] = _mm512_shuffle_f32x4(ab_hi, ef_hi, 0x88);
        t[12 + c] = _mm512_shuffle_f32x4(ab_hi, ef_hi, 0xdd);
    }
    for (int i = 0; i < 16; i++) r[i] = t[i];
}

/* Scores of 4 query rows against NV * 16 keys; kt is K transposed (D rows of Lp). */
ATT_INLINE void scores4(const float *const q[4], const float *kt, int Lp, int D, int NV,
                        float scale, float *sc) {
    __m512 acc[4][4];
    for (int r = 0; r < 4; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
    for (int d = 0; d < D; d++) {
        __m512 kv[4];
        for (int v = 0; v < NV; v++) kv[v] = _mm512_loadu_ps(kt + (size_t)d * Lp + 16 * v);
        for (int r = 0; r < 4; r++) {
            const __m512 qd = _mm512_set1_ps(q[r][d]);
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(qd, kv[v], acc[r][v]);
        }
    }
    const __m512 sv = _mm512_set1_ps(scale);
    for (int r = 0; r < 4; r++)
        for (int v = 0; v < NV; v++)
            _mm512_storeu_ps(sc + (size_t)r * Lp + 16 * v, _mm512_mul_ps(acc[r][v], sv));
}

/* out rows (nr of 4 valid) = (sum_j p[r][j] v_j) * inv[r] over ND * 16 values. */
ATT_INLINE void pv4(const float *sc, int Lp, const float inv[4], const float *v, size_t kv_stride,
                    int L, int ND, float *const out[4], int nr) {
    __m512 acc[4][4];
    for (int r = 0; r < 4; r++)
        for (int e = 0; e < ND; e++) acc[r][e] = _mm512_setzero_ps();
    for (int j = 0; j < L; j++) {
        __m512 vv[4];
        for (int e = 0; e < ND; e++) vv[e] = _mm512_loadu_ps(v + (size_t)j * kv_stride + 16 * e);
        for (int r = 0; r < 4; r++) {
            const __m512 p = _mm512_set1_ps(sc[(size_t)r * Lp + j]);
            for (int e = 0; e < ND; e++) acc[r][e] = _mm512_fmadd_ps(p, vv[e], acc[r][e]);
        }
    }
    for (int r = 0; r < nr; r++) {
        const __m512 iv = _mm512_set1_ps(inv[r]);
        for (int e = 0; e < ND; e++)
            _mm512_storeu_ps(out[r] + 16 * e, _mm512_mul_ps(acc[r][e], iv));
    }
}

/* Short sequences (L <= 64), D = 16 * ND with ND <= 4, no biases: K transposed once, then 4
 * query rows at a time with their scores in registers. */
ATT_INLINE void attention_short(const float *q, size_t q_stride, int Lq, const float *k,
                                const float *v, size_t kv_stride, int L, float *out,
                                size_t out_stride, int D, float scale, float *scratch, int NV,
                                int ND) {
    const int Lp = NV * 16;
    float *kt = scratch, *sc = kt + (size_t)Lp * D;
    /* K transposed in 16 x 16 blocks (keys past L read as zeros) */
    for (int j0 = 0; j0 < Lp; j0 += 16)
        for (int d0 = 0; d0 < D; d0 += 16) {
            __m512 r[16];
            for (int j = 0; j < 16; j++)
                r[j] =
                    _mm512_maskz_loadu_ps(j0 + j < L ? (__mmask16)0xffff : 0,
                                          k + (size_t)(j0 + j < L ? j0 + j : 0) * kv_stride + d0);
            transpose16(r);
            for (int d = 0; d < 16; d++) _mm512_storeu_ps(kt + (size_t)(d0 + d) * Lp + j0, r[d]);
        }
    for (int i0 = 0; i0 < Lq; i0 += 4) {
        const int nr = Lq - i0 < 4 ? Lq - i0 : 4;
        const float *qr[4];
        float *orow[4];
        for (int r = 0; r < 4; r++) {
            const int i = i0 + (r < nr ? r : nr - 1);
            qr[r] = q + (size_t)i * q_stride;
            orow[r] = out + (size_t)i * out_stride;
        }
        scores4(qr, kt, Lp, D, NV, scale, sc);
        float inv[4];
        for (int r = 0; r < 4; r++) inv[r] = softmax_unnorm(sc + (size_t)r * Lp, L, NV);
        pv4(sc, Lp, inv, v, kv_stride, L, ND, orow, nr);
    }
}

/* One query row (the [CLS] row of the last layer), any L: dot products, softmax, sum. */
static void attention_one(const float *q, const float *k, const float *v, size_t kv_stride, int L,
                          float *out, int D, float scale, float *sc) {
    const int ND = D / 16;
    __m512 qv[8];
    for (int e = 0; e < ND; e++)
        qv[e] = _mm512_mul_ps(_mm512_loadu_ps(q + 16 * e), _mm512_set1_ps(scale));
    for (int j = 0; j < L; j++) {
        const float *kr = k + (size_t)j * kv_stride;
        __m512 acc = _mm512_mul_ps(qv[0], _mm512_loadu_ps(kr));
        for (int e = 1; e < ND; e++)
            acc = _mm512_fmadd_ps(qv[e], _mm512_loadu_ps(kr + 16 * e), acc);
        sc[j] = _mm512_reduce_add_ps(acc);
    }
    const int NV = (L + 15) / 16;
    const float inv = softmax_unnorm(sc, L, NV);
    __m512 a0[8], a1[8];
    for (int e = 0; e < ND; e++) a0[e] = a1[e] = _mm512_setzero_ps();
    int j = 0;
    for (; j + 2 <= L; j += 2) {
        const __m512 p0 = _mm512_set1_ps(sc[j]), p1 = _mm512_set1_ps(sc[j + 1]);
        const float *v0 = v + (size_t)j * kv_stride, *v1 = v0 + kv_stride;
        for (int e = 0; e < ND; e++) {
            a0[e] = _mm512_fmadd_ps(p0, _mm512_loadu_ps(v0 + 16 * e), a0[e]);
            a1[e] = _mm512_fmadd_ps(p1, _mm512_loadu_ps(v1 + 16 * e), a1[e]);
        }
    }
    if (j < L) {
        const __m512 p0 = _mm512_set1_ps(sc[j]);
        for (int e = 0; e < ND; e++)
            a0[e] = _mm512_fmadd_ps(p0, _mm512_loadu_ps(v + (size_t)j * kv_stride + 16 * e), a0[e]);
    }
    for (int e = 0; e < ND; e++)
        _mm512_storeu_ps(out + 16 * e,
                         _mm512_mul_ps(_mm512_add_ps(a0[e], a1[e]), _mm512_set1_ps(inv)));
}

/* The vector paths; false when the shape or the biases need the generic code. */
static bool attention_fast(const float *q, size_t q_stride, int Lq, const float *k, const float *v,
                           size_t kv_stride, int L, const float *qb, const float *kb,
                           const float *vb, float *out, size_t out_stride, int D, float scale,
                           float *scratch) {
    if (qb || kb || vb || D % 16 != 0 || D > 128) return false;
    if (Lq == 1) {
        attention_one(q, k, v, kv_stride, L, out, D, scale, scratch);
        return true;
    }
    const int NV = (L + 15) / 16, ND = D / 16;
    if (NV > 4 || ND > 4) return false;
#define ATT_CASE(nv, nd)                                                                           \
    case nv * 8 + nd:                                                                              \
        attention_short(q, q_stride, Lq, k, v, kv_stride, L, out, out_stride, D, scale, scratch,   \
                        nv, nd);                                                                   \
        return true;
    switch (NV * 8 + ND) {
        ATT_CASE(1, 1)
        ATT_CASE(1, 2)
        ATT_CASE(1, 3)
        ATT_CASE(1, 4)
        ATT_CASE(2, 1)
        ATT_CASE(2, 2)
        ATT_CASE(2, 3)
        ATT_CASE(2, 4)
        ATT_CASE(3, 1)
        ATT_CASE(3, 2)
        ATT_CASE(3, 3) ATT_CASE(3, 4) ATT_CASE(4, 1) ATT_CASE(4, 2) ATT_CASE(4, 3) ATT_CASE(4, 4)
    }
#undef ATT_CASE
    return false;
}

#if defined(__AVX512BF16__)
#define ATT_BF16 1
#endif
#endif

void ragd_attention_head(const float *q, size_t q_stride, int Lq, const float *k, const float *v,
                         size_t kv_stride, int L, const float *qb, const float *kb, const float *vb,
                         float *out, size_t out_stride, int D, float scale, float *scratch) {
#ifdef BERT_OPS_AVX512
    if (attention_fast(q, q_stride, Lq, k, v, kv_stride, L, qb, kb, vb, out, out_stride, D, scale,
                       scratch))
        return;
#endif
    float *restrict kt = scratch;            /* D x L: K transposed (bias added) */
    float *restrict sc = kt + (size_t)L * D; /* one row of scores */
    for (int j = 0; j < L; j++) {
        const float *kr = k + (size_t)j * kv_stride;
        for (int d = 0; d < D; d++) kt[(size_t)d * L + j] = kr[d] + (kb ? kb[d] : 0.0f);
    }
    for (int i = 0; i < Lq; i++) {
        const float *qr = q + (size_t)i * q_stride;
        for (int j = 0; j < L; j++) sc[j] = 0.0f;
        for (int d = 0; d < D; d++) {
            const float qd = (qr[d] + (qb ? qb[d] : 0.0f)) * scale;
            const float *restrict kd = kt + (size_t)d * L;
            for (int j = 0; j < L; j++) sc[j] += qd * kd[j];
        }
        float mx = sc[0];
        for (int j = 1; j < L; j++) mx = sc[j] > mx ? sc[j] : mx;
        float sum = 0.0f;
        for (int j = 0; j < L; j++) {
            sc[j] = expf(sc[j] - mx);
            sum += sc[j];
        }
        const float inv = 1.0f / sum;
        float *restrict o = out + (size_t)i * out_stride;
        for (int d = 0; d < D; d++) o[d] = 0.0f;
        for (int j = 0; j < L; j++) {
            const float p = sc[j] * inv;
            const float *restrict vr = v + (size_t)j * kv_stride;
            for (int d = 0; d < D; d++) o[d] += p * vr[d];
        }
        if (vb)
            for (int d = 0; d < D; d++) o[d] += vb[d]; /* sum of p is 1 */
    }
}

#ifdef ATT_BF16
typedef struct __attribute__((packed)) att_tilecfg {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} att_tilecfg;

/* The same on AMX tiles, 16 query rows at a time: S = Q K^T with K as pair-words transposed
 * (kt2, the B layout AMX wants), softmax in AVX-512, O = P V with V's rows interleaved in
 * pairs (v2). Keys are padded to 32 with zeros. */
__attribute__((target("amx-tile,amx-bf16,avx512f,avx512bf16,avx512bw,avx512vl"))) static void
attention_amx(const uint16_t *q, size_t q_stride, int Lq, const uint16_t *k, const uint16_t *v,
              size_t kv_stride, int L, float *out, size_t out_stride, int D, float scale,
              float *scratch) {
    const int NV = (L + 15) / 16, Lp = NV * 16, DP = D / 2, ND = D / 16;
    const int pitch = (Lp + 31) / 32 * 16;               /* key pairs, padded to 16 */
    uint32_t *kt2 = (uint32_t *)scratch;                 /* DP x Lp */
    float *sc = (float *)(kt2 + (size_t)DP * Lp);        /* 16 x Lp */
    uint32_t *pb = (uint32_t *)(sc + 16 * Lp);           /* 16 x pitch */
    uint32_t *v2 = pb + 16 * pitch;                      /* pitch x D */
    uint16_t *qb = (uint16_t *)(v2 + (size_t)pitch * D); /* 16 x D */
    float *ob = (float *)(qb + 16 * D);                  /* 16 x D */
    for (int j0 = 0; j0 < Lp; j0 += 16)
        for (int p0 = 0; p0 < DP; p0 += 16) {
            __m512 r[16];
            for (int j = 0; j < 16; j++)
                r[j] = _mm512_maskz_loadu_ps(j0 + j < L ? (__mmask16)0xffff : 0,
                                             k + (size_t)(j0 + j < L ? j0 + j : 0) * kv_stride +
                                                 2 * p0);
            transpose16(r);
            for (int i = 0; i < 16; i++)
                _mm512_storeu_ps((float *)(kt2 + (size_t)(p0 + i) * Lp + j0), r[i]);
        }
    const __m512i lo_idx =
        _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7, 38, 6,
                         37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
    const __m512i hi_idx = _mm512_add_epi16(lo_idx, _mm512_set1_epi16(16));
    for (int jp = 0; jp < pitch; jp++) {
        uint32_t *o = v2 + (size_t)jp * D;
        const uint16_t *a = 2 * jp < L ? v + (size_t)(2 * jp) * kv_stride : NULL;
        const uint16_t *b = 2 * jp + 1 < L ? v + (size_t)(2 * jp + 1) * kv_stride : NULL;
        for (int d0 = 0; d0 < D; d0 += 32) {
            const __m512i av =
                a ? _mm512_loadu_si512((const void *)(a + d0)) : _mm512_setzero_si512();
            const __m512i bv =
                b ? _mm512_loadu_si512((const void *)(b + d0)) : _mm512_setzero_si512();
            _mm512_storeu_si512((void *)(o + d0), _mm512_permutex2var_epi16(av, lo_idx, bv));
            _mm512_storeu_si512((void *)(o + d0 + 16), _mm512_permutex2var_epi16(av, hi_idx, bv));
        }
    }
    att_tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    _tile_loadconfig(&cfg);
    const size_t kts = (size_t)Lp * 4, scs = (size_t)Lp * 4, v2s = (size_t)D * 4;
    for (int i0 = 0; i0 < Lq; i0 += 16) {
        const int nr = Lq - i0 < 16 ? Lq - i0 : 16;
        for (int r = 0; r < 16; r++)
            for (int d = 0; d < D; d += 32)
                _mm512_storeu_si512(
                    (void *)(qb + (size_t)r * D + d),
                    r < nr ? _mm512_loadu_si512((const void *)(q + (size_t)(i0 + r) * q_stride + d))
                           : _mm512_setzero_si512());
        /* scores, 4 key blocks (64 keys) at a time */
        for (int j0 = 0; j0 < Lp; j0 += 64) {
            const int nb = (Lp - j0) / 16 < 4 ? (Lp - j0) / 16 : 4;
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (int p0 = 0; p0 < DP; p0 += 16) {
                _tile_loadd(4, qb + 2 * p0, (size_t)D * 2);
                const uint32_t *bt = kt2 + (size_t)p0 * Lp + j0;
                _tile_loadd(5, bt, kts);
                _tile_dpbf16ps(0, 4, 5);
                if (nb > 1) {
                    _tile_loadd(6, bt + 16, kts);
                    _tile_dpbf16ps(1, 4, 6);
                }
                if (nb > 2) {
                    _tile_loadd(5, bt + 32, kts);
                    _tile_dpbf16ps(2, 4, 5);
                }
                if (nb > 3) {
                    _tile_loadd(6, bt + 48, kts);
                    _tile_dpbf16ps(3, 4, 6);
                }
            }
            _tile_stored(0, sc + j0, scs);
            if (nb > 1) _tile_stored(1, sc + j0 + 16, scs);
            if (nb > 2) _tile_stored(2, sc + j0 + 32, scs);
            if (nb > 3) _tile_stored(3, sc + j0 + 48, scs);
        }
        float inv[16];
        const __m512 sv = _mm512_set1_ps(scale);
        for (int r = 0; r < 16; r++) {
            float *row = sc + (size_t)r * Lp;
            uint32_t *prow = pb + (size_t)r * pitch;
            if (r >= nr) {
                for (int j = 0; j < pitch; j += 16)
                    _mm512_storeu_si512((void *)(prow + j), _mm512_setzero_si512());
                continue;
            }
            for (int j = 0; j < Lp; j += 16)
                _mm512_storeu_ps(row + j, _mm512_mul_ps(_mm512_loadu_ps(row + j), sv));
            inv[r] = softmax_unnorm(row, L, NV);
            for (int j = 0; j < 2 * pitch; j += 32)
                _mm512_storeu_si512(
                    (void *)(prow + j / 2),
                    (__m512i)_mm512_cvtne2ps_pbh(
                        j + 16 < Lp ? _mm512_loadu_ps(row + j + 16) : _mm512_setzero_ps(),
                        j < Lp ? _mm512_loadu_ps(row + j) : _mm512_setzero_ps()));
        }
        /* O = P V, all ND column blocks at once */
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (int jp0 = 0; jp0 < pitch; jp0 += 16) {
            _tile_loadd(4, pb + jp0, (size_t)pitch * 4);
            const uint32_t *bt = v2 + (size_t)jp0 * D;
            _tile_loadd(5, bt, v2s);
            _tile_dpbf16ps(0, 4, 5);
            _tile_loadd(6, bt + 16, v2s);
            _tile_dpbf16ps(1, 4, 6);
            if (ND > 2) {
                _tile_loadd(5, bt + 32, v2s);
                _tile_dpbf16ps(2, 4, 5);
                _tile_loadd(6, bt + 48, v2s);
                _tile_dpbf16ps(3, 4, 6);
            }
        }
        _tile_stored(0, ob, v2s);
        _tile_stored(1, ob + 16, v2s);
        if (ND > 2) {
            _tile_stored(2, ob + 32, v2s);
            _tile_stored(3, ob + 48, v2s);
        }
        for (int r = 0; r < nr; r++) {
            const __m512 iv = _mm512_set1_ps(inv[r]);
            for (int e = 0; e < ND; e++)
                _mm512_storeu_ps(out + (size_t)(i0 + r) * out_stride + 16 * e,
                                 _mm512_mul_ps(_mm512_loadu_ps(ob + (size_t)r * D + 16 * e), iv));
        }
    }
    _tile_release();
}
#endif

size_t ragd_attention_bf16_scratch_floats(int L, int D) {
    const size_t Lp = ((size_t)L + 15) / 16 * 16;
    const size_t pitch = (Lp + 31) / 32 * 16;
    /* kt2, sc, pb, v2, qb, ob of attention_amx */
    return (size_t)D / 2 * Lp + 16 * Lp + 16 * pitch + pitch * (size_t)D + 8 * (size_t)D +
           16 * (size_t)D + 64;
}

bool ragd_attention_bf16_supported(int D) {
#ifdef ATT_BF16
    return D % 32 == 0 && D >= 32 && D <= 64 && ragd_amx_available();
#else
    return D < 0;
#endif
}

void ragd_attention_head_bf16(const uint16_t *q, size_t q_stride, int Lq, const uint16_t *k,
                              const uint16_t *v, size_t kv_stride, int L, float *out,
                              size_t out_stride, int D, float scale, float *scratch) {
#ifdef ATT_BF16
    if (D == 64 || D == 32)
        attention_amx(q, q_stride, Lq, k, v, kv_stride, L, out, out_stride, D, scale, scratch);
#else
    (void)q, (void)q_stride, (void)Lq, (void)k, (void)v, (void)kv_stride, (void)L, (void)out;
    (void)out_stride, (void)D, (void)scale, (void)scratch;
#endif
}
