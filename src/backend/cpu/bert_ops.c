/* bert_ops.c - fused BERT kernels (see bert_ops.h). */
#include "backend/cpu/bert_ops.h"

#include <math.h>

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

void ragd_add_layernorm(float *restrict x, const float *restrict r, const float *restrict bias,
                        const float *restrict g, const float *restrict beta, size_t n, float eps) {
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

void ragd_attention_head(const float *q, size_t q_stride, int Lq, const float *k, const float *v,
                         size_t kv_stride, int L, const float *qb, const float *kb, const float *vb,
                         float *out, size_t out_stride, int D, float scale, float *scratch) {
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
