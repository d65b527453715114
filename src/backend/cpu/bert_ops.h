/* bert_ops.h - fused CPU kernels of the BERT encoder (src/model/bert.c): bias + exact (erf)
 * GELU, bias + residual + LayerNorm (optionally with a bf16 copy), bf16 stores, and one
 * attention head of one packed sequence (scores, softmax, weighted sum) in f32 or, for the
 * bf16 mode, with bf16 inputs on AMX tiles. AVX-512 paths where the build has it (the same
 * arithmetic element by element whatever the position), plain C otherwise.
 * Thread-safety: pure functions on caller-owned memory (the bf16 attention loads and releases
 * the calling thread's tile configuration).
 */
#ifndef RAGD_BACKEND_CPU_BERT_OPS_H
#define RAGD_BACKEND_CPU_BERT_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* erf(x) for float, max abs error ~1e-7 (rational approximation on [-4, 4]). */
float ragd_erf_approx(float x);

/* y[i] = gelu(y[i] + b[i]) for i < n, gelu(x) = 0.5 x (1 + erf(x / sqrt 2)). */
void ragd_bias_gelu(float *y, const float *b, size_t n);

/* x = LayerNorm(x + r + bias) * g + beta over one row of n values (r, bias may be NULL). */
void ragd_add_layernorm(float *x, const float *r, const float *bias, const float *g,
                        const float *beta, size_t n, float eps);

/* The same, also storing the result rounded to bf16 (nearest even) in xb when xb != NULL. */
void ragd_add_layernorm_bf16(float *x, const float *r, const float *bias, const float *g,
                             const float *beta, size_t n, float eps, uint16_t *xb);

/* dst[i] = src[i] rounded to bf16 (nearest even), i < n. */
void ragd_bf16_store(uint16_t *dst, const float *src, size_t n);

/* In-place softmax of one row of n values. */
void ragd_softmax_row(float *x, int n);

/* In-place y[i] += b[i]. */
void ragd_add_bias(float *y, const float *b, size_t n);

/* One head of self-attention over a sequence of L tokens (no mask: packed sequences), for
 * the first Lq query rows (Lq = L normally, 1 when only [CLS] is needed). Query row i at
 * q + i * q_stride, key/value row j at k/v + j * kv_stride (head_dim D values each); the
 * biases qb/kb/vb (D values, may be NULL) are added on the fly. Output row i at
 * out + i * out_stride. scratch: ragd_attention_scratch_floats(L, D) floats. scale multiplies
 * the scores (1/sqrt D). With AVX-512 and no biases, head_dim a multiple of 16: one query row
 * (any L) or L <= 64 (D <= 64) take vector paths with the scores in registers. */
void ragd_attention_head(const float *q, size_t q_stride, int Lq, const float *k, const float *v,
                         size_t kv_stride, int L, const float *qb, const float *kb, const float *vb,
                         float *out, size_t out_stride, int D, float scale, float *scratch);

/* The same with q, k, v in bf16 (row strides in elements, even), on AMX tiles: 16 query
 * rows at a time, S = Q K^T and O = P V as tile products with f32 accumulation (the softmax
 * weights P are rounded to bf16), softmax in AVX-512; no biases; any L. Only where
 * ragd_attention_bf16_supported(D) (head dim 32 or 64, AVX512-BF16 build, AMX granted);
 * loads and releases the calling thread's tile configuration.
 * scratch: ragd_attention_bf16_scratch_floats(L, D) floats. */
void ragd_attention_head_bf16(const uint16_t *q, size_t q_stride, int Lq, const uint16_t *k,
                              const uint16_t *v, size_t kv_stride, int L, float *out,
                              size_t out_stride, int D, float scale, float *scratch);
bool ragd_attention_bf16_supported(int D);
size_t ragd_attention_bf16_scratch_floats(int L, int D);

/* Scratch floats ragd_attention_head needs for L keys of head_dim D. */
size_t ragd_attention_scratch_floats(int L, int D);

#endif
