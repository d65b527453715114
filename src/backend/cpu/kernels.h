/* kernels.h - CPU compute kernels of the decoder forward pass (AVX-512 where the build
 * allows, scalar fallback otherwise): weight-streaming matrix products for F32/F16/BF16
 * weights, an AVX512-BF16 dot-product GEMM for the optional bf16-activation prefill path,
 * RMSNorm, RoPE, SwiGLU, a vectorised exp.
 *
 * Numerics: every output element of ragd_k_matmul is one dot product whose summation order
 * depends only on K (16-lane accumulation in k order, then a fixed reduction tree), never on
 * how many tokens or rows are computed together: results are bitwise identical whether a
 * token is computed alone, in a batch, or in a prefill chunk.
 * Thread-safety: pure functions on caller buffers; the row-range functions are called from
 * pool workers on disjoint outputs.
 */
#ifndef RAGD_BACKEND_CPU_KERNELS_H
#define RAGD_BACKEND_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "model/dtype.h"

/* Token counts from 2 up to this take the few-token path (decode batches): weights widened in
 * registers once per group of tokens while the weight stream is prefetched like the gemv's. */
#ifndef RAGD_K_FEW_MAX
#define RAGD_K_FEW_MAX 64
#endif

/* Y[t][r] (+)= dot(X[t][0..K), W[r][0..K)) + bias[r] for t in [t0,t1), r in [r0,r1).
 * W is row-major [rows][K] of dtype dt (F32/F16/BF16). accumulate: add to Y.
 * scratch: 4*K floats of the calling thread (panel widening for many tokens) or NULL. */
void ragd_k_matmul_rows(const float *X, size_t ldx, int t0, int t1, const void *W, ragd_dtype dt,
                        int K, int r0, int r1, const float *bias, float *Y, size_t ldy,
                        int accumulate, float *scratch);

/* The same with bf16 activations Xb ([T][ldxb] bf16, zero padded to a multiple of 32 columns)
 * and bf16 weights, using vdpbf16ps (f32 accumulation). Not exact: activations are rounded. */
void ragd_k_matmul_rows_bf16(const uint16_t *Xb, size_t ldxb, int t0, int t1, const uint16_t *W,
                             int K, int r0, int r1, const float *bias, float *Y, size_t ldy,
                             int accumulate);
/* Round n floats to bf16 (round to nearest even), zero-filling up to n_pad. */
void ragd_k_to_bf16(uint16_t *dst, const float *src, int n, int n_pad);
/* 1 when the CPU and the build support the bf16 dot-product kernel. */
int ragd_k_have_bf16_dot(void);

/* AMX bf16 tiles (bf16-activation prefill path). ragd_k_amx_init requests the tile-data
 * permission from the kernel once; 0 when AMX is unavailable (CPU, kernel, VM or build).
 * Requirements: K % 32 == 0, rows a multiple of 16. Xp holds X as bf16 VNNI tiles of 16
 * tokens x 32 k (ceil(T/16) * K/32 tiles of 512 bf16); pack_x fills token blocks from t0
 * (a multiple of 16) to T. matmul computes tokens [t0, t1) (t0 % 16 == 0) and rows
 * [r0, r1) (multiples of 16), loading its tile configuration on the calling thread. */
int ragd_k_amx_init(void);
void ragd_k_amx_pack_x(const float *X, size_t ldx, int t0, int T, int K, uint16_t *Xp);
void ragd_k_amx_matmul(const uint16_t *Xp, int t0, int t1, int T, int K, const uint16_t *W, int r0,
                       int r1, const float *bias, float *Y, size_t ldy, int accumulate);

/* y = x / sqrt(mean(x^2) + eps) * w  (n elements; y may alias x). */
void ragd_k_rmsnorm(float *y, const float *x, const float *w, int n, float eps);
/* Rotate one head in place (HF rotate_half): x[i], x[i+d/2] by angle with cos/sin[i]. */
void ragd_k_rope(float *x, const float *cos_, const float *sin_, int d);
/* out[i] = silu(g[i]) * u[i]  (out may alias g). */
void ragd_k_swiglu(float *out, const float *g, const float *u, int n);
/* x[i] = exp(x[i] - max), returns the sum (in index order of 16-lane blocks). */
float ragd_k_exp_sub_sum(float *x, int n, float max);
/* dot product with 16-lane accumulation (same order as the matmul kernels). */
float ragd_k_dot(const float *a, const float *b, int n);
/* Keys or values in the blocks of a paged cache: block b (of bs keys) at
 * base + table[b] * stride floats, or base + b * stride when table is NULL (one contiguous
 * array is one block with bs >= n). */
typedef struct ragd_k_pages {
    const float *base;
    const int32_t *table;
    size_t stride;
    int bs;
} ragd_k_pages;

static inline const float *ragd_k_page(const ragd_k_pages *P, int b) {
    return P->base + (size_t)(P->table ? P->table[b] : b) * P->stride;
}

/* s[r*lds + j] = scale * dot(q[r*ldq ..], K[:, j]) for r < rows, j < n, with each block of K
 * stored transposed, [d][bs] (keys contiguous): each score accumulated sequentially over d
 * (fused multiply-adds from zero, then one multiply by scale), the same whatever rows, n and
 * the blocking - the rows (query heads sharing a key head) share every key load and run as
 * independent chains, across blocks when bs is a multiple of 16. */
void ragd_k_scores(float *s, size_t lds, const float *q, size_t ldq, int rows,
                   const ragd_k_pages *K, int d, int n, float scale);
/* max of x[0..n), n >= 1 */
float ragd_k_max(const float *x, int n);
/* x[i] *= a */
void ragd_k_scale(float *x, float a, int n);
/* y += a * x */
void ragd_k_axpy(float *y, float a, const float *x, int n);
/* out[r][0..d) += sum_j p[r*ldp + j] * V[j][0..d) for r < rows, j < n, value row j at
 * ragd_k_page(V, j / bs) + (j % bs) * ldv (in j order: the same result as rows x n
 * ragd_k_axpy calls). */
void ragd_k_attn_pv(float *out, size_t ldo, const float *p, size_t ldp, int rows,
                    const ragd_k_pages *V, size_t ldv, int n, int d);

#endif
