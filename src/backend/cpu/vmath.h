/* vmath.h - 16-lane AVX-512 versions of the scalar math in the BERT kernels: exp (~2 ulp)
 * and the exact-erf GELU (the rational erf of bert_ops.c with the division done as a
 * reciprocal estimate + one Newton step, ~1 ulp). Used by bert_ops.c (when the build targets
 * AVX-512) and the AMX GEMM epilogue (always AVX-512: AMX implies it). Header-only, inline,
 * pure functions: thread-safe. Callers must themselves be compiled for AVX-512F.
 */
#ifndef RAGD_BACKEND_CPU_VMATH_H
#define RAGD_BACKEND_CPU_VMATH_H

#if defined(__x86_64__) && defined(__GNUC__) && (__GNUC__ >= 11)
#define RAGD_VMATH 1
#include <immintrin.h>

#define RAGD_VMATH_FN __attribute__((target("avx512f"), always_inline)) static inline

/* exp(x), x clamped to [-87.3, 88.7] (so the result is a normal float). */
RAGD_VMATH_FN __m512 ragd_exp16(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.7f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

/* gelu(x) = 0.5 x (1 + erf(x / sqrt 2)), erf as in bert_ops.c (x * P(x^2) / Q(x^2) on
 * [-4, 4], +-1 outside). */
RAGD_VMATH_FN __m512 ragd_gelu16(__m512 x) {
    __m512 t = _mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752f));
    t = _mm512_min_ps(_mm512_max_ps(t, _mm512_set1_ps(-4.0f)), _mm512_set1_ps(4.0f));
    const __m512 x2 = _mm512_mul_ps(t, t);
    __m512 p = _mm512_set1_ps(-2.72614225801306e-10f);
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(2.77068142495902e-08f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-2.10102402082508e-06f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-5.69250639462346e-05f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-7.34990630326855e-04f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-2.95459980854025e-03f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-1.60960333262415e-02f));
    __m512 q = _mm512_set1_ps(-1.45660718464996e-05f);
    q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-2.13374055278905e-04f));
    q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-1.68282697438203e-03f));
    q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-7.37332916720468e-03f));
    q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-1.42647390514189e-02f));
    /* 1/q: 14-bit estimate refined by one Newton step */
    __m512 iq = _mm512_rcp14_ps(q);
    iq = _mm512_mul_ps(iq, _mm512_fnmadd_ps(q, iq, _mm512_set1_ps(2.0f)));
    const __m512 erf = _mm512_mul_ps(_mm512_mul_ps(t, p), iq);
    const __m512 hx = _mm512_mul_ps(x, _mm512_set1_ps(0.5f));
    return _mm512_fmadd_ps(hx, erf, hx);
}

#endif
#endif
