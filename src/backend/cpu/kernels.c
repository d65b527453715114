#include "backend/cpu/kernels.h"

#include <math.h>
#include <string.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#define RAGD_K_AVX512 1
#endif

#define FORCE_INLINE static inline __attribute__((always_inline))

#ifdef RAGD_K_AVX512

/* e^x for x <= 0 mostly (softmax, silu); ~1 ulp over the f32 range. */
FORCE_INLINE __m512 exp512(__m512 x) {
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.3762626647949f)), _mm512_set1_ps(-103.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

FORCE_INLINE __m512 ldw(const void *w, ragd_dtype dt, size_t off) {
    if (dt == RAGD_DT_BF16) {
        __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)w + off));
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    if (dt == RAGD_DT_F16) {
        __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)w + off));
        return _mm512_cvtph_ps(h);
    }
    return _mm512_loadu_ps((const float *)w + off);
}

FORCE_INLINE __m512 ldw_mask(const void *w, ragd_dtype dt, size_t off, __mmask16 m) {
    if (dt == RAGD_DT_BF16) {
        __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)w + off);
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    if (dt == RAGD_DT_F16) {
        __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)w + off);
        return _mm512_cvtph_ps(h);
    }
    return _mm512_maskz_loadu_ps(m, (const float *)w + off);
}

/* nr rows x nt tokens block; every (row, token) accumulates in k order in its own register. */
FORCE_INLINE void kern(int nr, int nt, const float *X, size_t ldx, const void *W, ragd_dtype dt,
                       size_t ldw_, int K, const float *bias, float *Y, size_t ldy,
                       int accumulate) {
    __m512 acc[8][6];
    _Pragma("GCC unroll 8") for (int i = 0; i < nr; i++)
        _Pragma("GCC unroll 8") for (int j = 0; j < nt; j++) acc[i][j] = _mm512_setzero_ps();
    int k = 0;
    for (; k + 16 <= K; k += 16) {
        __m512 x[6];
        _Pragma("GCC unroll 8") for (int j = 0; j < nt; j++) x[j] =
            _mm512_loadu_ps(X + (size_t)j * ldx + k);
        _Pragma("GCC unroll 8") for (int i = 0; i < nr; i++) {
            __m512 w = ldw(W, dt, (size_t)i * ldw_ + (size_t)k);
            _Pragma("GCC unroll 8") for (int j = 0; j < nt; j++) acc[i][j] =
                _mm512_fmadd_ps(w, x[j], acc[i][j]);
        }
    }
    if (k < K) {
        __mmask16 m = (__mmask16)((1u << (K - k)) - 1u);
        __m512 x[6];
        _Pragma("GCC unroll 8") for (int j = 0; j < nt; j++) x[j] =
            _mm512_maskz_loadu_ps(m, X + (size_t)j * ldx + k);
        _Pragma("GCC unroll 8") for (int i = 0; i < nr; i++) {
            __m512 w = ldw_mask(W, dt, (size_t)i * ldw_ + (size_t)k, m);
            _Pragma("GCC unroll 8") for (int j = 0; j < nt; j++) acc[i][j] =
                _mm512_fmadd_ps(w, x[j], acc[i][j]);
        }
    }
    _Pragma("GCC unroll 8") for (int i = 0; i < nr; i++)
        _Pragma("GCC unroll 8") for (int j = 0; j < nt; j++) {
        float s = _mm512_reduce_add_ps(acc[i][j]);
        if (bias) s += bias[i];
        float *y = Y + (size_t)j * ldy + i;
        *y = accumulate ? *y + s : s;
    }
}

/* One token, nr rows: the same per-row arithmetic as kern(nr, 1, ...) (16-lane accumulation in k
 * order, masked tail, the same reduction), so decode results stay bitwise equal to the batched
 * path. Row i starts at W + i * rs bytes and writes y[i * ys] (bias[i * ys]); with pf_step,
 * each row prefetches pf_step bytes ahead of itself every 32 columns (see gemv_dt). */
FORCE_INLINE void gemv_kern(int nr, const float *x, const void *W, size_t rs, ragd_dtype dt, int K,
                            const float *bias, float *y, size_t ys, int accumulate,
                            size_t pf_step) {
    __m512 acc[16];
    _Pragma("GCC unroll 16") for (int i = 0; i < nr; i++) acc[i] = _mm512_setzero_ps();
    const size_t es = dt == RAGD_DT_F32 ? 4 : 2, rse = rs / es;
    const char *Wc = W;
    int k = 0;
    for (; k + 16 <= K; k += 16) {
        if (pf_step && (k & 31) == 0)
            _Pragma("GCC unroll 16") for (int i = 0; i < nr; i++)
                _mm_prefetch(Wc + (size_t)i * rs + (size_t)k * es + pf_step, _MM_HINT_T0);
        __m512 xv = _mm512_loadu_ps(x + k);
        _Pragma("GCC unroll 16") for (int i = 0; i < nr; i++) acc[i] =
            _mm512_fmadd_ps(ldw(W, dt, (size_t)i * rse + (size_t)k), xv, acc[i]);
    }
    if (k < K) {
        __mmask16 m = (__mmask16)((1u << (K - k)) - 1u);
        __m512 xv = _mm512_maskz_loadu_ps(m, x + k);
        _Pragma("GCC unroll 16") for (int i = 0; i < nr; i++) acc[i] =
            _mm512_fmadd_ps(ldw_mask(W, dt, (size_t)i * rse + (size_t)k, m), xv, acc[i]);
    }
    _Pragma("GCC unroll 16") for (int i = 0; i < nr; i++) {
        float s = _mm512_reduce_add_ps(acc[i]);
        if (bias) s += bias[(size_t)i * ys];
        float *yi = y + (size_t)i * ys;
        *yi = accumulate ? *yi + s : s;
    }
}

/* Memory side of the decode GEMV. A core reaches its streaming bandwidth only with long
 * sequential streams prefetched ahead in software (the hardware prefetchers alone reach half of
 * it). The row range is cut into RAGD_GEMV_STREAMS equal contiguous parts; a step computes one
 * row of every part (one accumulator each, one shared x vector), so each part is read front to
 * back as one stream that runs across row ends, whatever K is. The earlier layout - 16 adjacent
 * rows at a time, every row a stream of its own - broke each stream every K * 2 bytes, which
 * cost short rows (K = 896 bf16: 1792 bytes) ~15% of the bandwidth. Stream count and prefetch
 * distance from interleaved A/B rounds of whole 0.5B-shaped bf16 decode steps against the
 * same-moment read probe on the 2-core Intel VM (2 threads): 3 streams 2 KB ahead 95.7-96.7%,
 * 12 streams 1 KB ahead 91.6-94.2%, 16 streams 96% of the 8-stream probe alone; 2 or 4 streams
 * and other distances (1 to 4 KB) lower; a second, L2 prefetch further ahead lower. One thread:
 * 97.6% against 95.1% for 12 streams. Fewer streams read faster there as long as each runs far
 * enough ahead (a plain one-stream reader beats 8 or 12 streams by 6-9%), and three
 * accumulator chains still outpace the memory. */
#define RAGD_GEMV_STREAMS 3
#define RAGD_GEMV_PF      2048

FORCE_INLINE void gemv_dt(ragd_dtype dt, const float *x, const void *W, int K, int r0, int r1,
                          const float *bias, float *y, int acc) {
    const size_t es = dt == RAGD_DT_F32 ? 4 : 2, row = (size_t)K * es;
    const int NS = RAGD_GEMV_STREAMS, C = (r1 - r0) / NS;
    const char *Wb = W;
    /* the last rows' prefetches run up to 2 KB past their part: prefetches never fault */
    for (int c = 0; c < C; c++) {
        const int r = r0 + c;
        gemv_kern(NS, x, Wb + (size_t)r * row, (size_t)C * row, dt, K, bias ? bias + r : NULL,
                  y + r, (size_t)C, acc, RAGD_GEMV_PF);
    }
    /* the rows left over (fewer than NS): the last stream's prefetches ran into them; they go
     * on prefetching ahead of themselves */
    for (int r = r0 + NS * C; r < r1; r++)
        gemv_kern(1, x, Wb + (size_t)r * row, row, dt, K, bias ? bias + r : NULL, y + r, 1, acc,
                  RAGD_GEMV_PF);
}

/* ---- few tokens (decode batches): rows_few ---------------------------------------------
 * 2..RAGD_K_FEW_MAX tokens over many rows. Tokens are cut into balanced groups of at most
 * FEW_GROUP; a tile is nr rows x nt tokens of 16-lane accumulators (nr*nt accumulators + nr
 * widened weight vectors + 1 activation vector fit the 32 registers). Each weight vector is
 * loaded and widened once per group, in a register (no panel: a store and reload of the
 * widened rows costs as much as the arithmetic at these token counts), and each group after
 * the first finds the tile's rows in L1. As in gemv_dt, the row range is cut into nr contiguous
 * streams and tile row i is the next row of stream i, prefetched RAGD_FEW_PF bytes ahead on
 * its stream by the first group (adjacent-row tiles broke every stream at each row end: on the
 * 2-core Intel VM, 0.5B-shaped bf16, 2 threads, a batch-2 step took 37.1 ms and now 31-32 ms
 * against 29-30 ms for one token; batch 4 40.1 -> 32.5-34 ms, batch 8 58.5 -> 48-50 ms;
 * 1 / 2 / 3 KB ahead alike). Every (row, token) accumulates the same products in the same k
 * order into the same lanes, with the same masked tail and reduction, as gemv_kern and kern:
 * results are bitwise equal to computing the token alone. Measured on the 2-core AMD Zen 5 VM
 * (bf16, K=896, one thread, weights in L3): 4 tokens per group reach 150-190 GFLOP/s (the f32
 * FMA peak is 222), 8 tokens per group 110-150. */

#define FEW_GROUP   4
#define RAGD_FEW_PF 2048

FORCE_INLINE void few_tile(int nr, int nt, const float *X, size_t ldx, const void *W, size_t rs,
                           ragd_dtype dt, int K, const float *bias, float *Y, size_t ys, size_t ldy,
                           int accumulate, size_t pf_step) {
    __m512 acc[8][8];
    _Pragma("GCC unroll 8") for (int i = 0; i < nr; i++)
        _Pragma("GCC unroll 8") for (int j = 0; j < nt; j++) acc[i][j] = _mm512_setzero_ps();
    const size_t es = dt == RAGD_DT_F32 ? 4 : 2;
    const char *Wc = W;
    int k = 0;
    for (; k + 16 <= K; k += 16) {
        if (pf_step && (k & 31) == 0)
            _Pragma("GCC unroll 8") for (int i = 0; i < nr; i++)
                _mm_prefetch(Wc + ((size_t)i * rs + (size_t)k) * es + pf_step, _MM_HINT_T0);
        __m512 w[8];
        _Pragma("GCC unroll 8") for (int i = 0; i < nr; i++) w[i] =
            ldw(W, dt, (size_t)i * rs + (size_t)k);
        _Pragma("GCC unroll 8") for (int j = 0; j < nt; j++) {
            __m512 x = _mm512_loadu_ps(X + (size_t)j * ldx + k);
            _Pragma("GCC unroll 8") for (int i = 0; i < nr; i++) acc[i][j] =
                _mm512_fmadd_ps(w[i], x, acc[i][j]);
        }
    }
    if (k < K) {
        __mmask16 m = (__mmask16)((1u << (K - k)) - 1u);
        __m512 w[8];
        _Pragma("GCC unroll 8") for (int i = 0; i < nr; i++) w[i] =
            ldw_mask(W, dt, (size_t)i * rs + (size_t)k, m);
        _Pragma("GCC unroll 8") for (int j = 0; j < nt; j++) {
            __m512 x = _mm512_maskz_loadu_ps(m, X + (size_t)j * ldx + k);
            _Pragma("GCC unroll 8") for (int i = 0; i < nr; i++) acc[i][j] =
                _mm512_fmadd_ps(w[i], x, acc[i][j]);
        }
    }
    _Pragma("GCC unroll 8") for (int i = 0; i < nr; i++)
        _Pragma("GCC unroll 8") for (int j = 0; j < nt; j++) {
        float s = _mm512_reduce_add_ps(acc[i][j]);
        if (bias) s += bias[(size_t)i * ys];
        float *y = Y + (size_t)j * ldy + (size_t)i * ys;
        *y = accumulate ? *y + s : s;
    }
}

/* One tile call with compile-time shapes: nr rows per tile for groups of up to ntmax tokens
 * (nr*nt accumulators + nr widened weights + 1 activation <= 32 registers); groups are
 * balanced, so a call has nt == ntmax or ntmax - 1. */
typedef void (*few_fn)(const float *X, size_t ldx, const void *W, size_t rs, ragd_dtype dt, int K,
                       const float *bias, float *Y, size_t ys, size_t ldy, int accumulate, int pf);
#define FEW_ARGS                                                                                   \
    const float *X, size_t ldx, const void *W, size_t rs, ragd_dtype dt, int K, const float *bias, \
        float *Y, size_t ys, size_t ldy, int accumulate, int pf
#define FEW_BODY(NR, NT)                                                                           \
    few_tile(NR, NT, X, ldx, W, rs, dt, K, bias, Y, ys, ldy, accumulate, pf ? RAGD_FEW_PF : 0)
static void few_8_1(FEW_ARGS) {
    FEW_BODY(8, 1);
}
static void few_8_2(FEW_ARGS) {
    FEW_BODY(8, 2);
}
static void few_7_2(FEW_ARGS) {
    FEW_BODY(7, 2);
}
static void few_7_3(FEW_ARGS) {
    FEW_BODY(7, 3);
}
static void few_6_3(FEW_ARGS) {
    FEW_BODY(6, 3);
}
static void few_6_4(FEW_ARGS) {
    FEW_BODY(6, 4);
}
#undef FEW_BODY
#undef FEW_ARGS

/* the rows left after the last full tile (fewer than 8): tiles of 4, 2 and 1 rows (few
 * shapes keep the code - and the sanitizer builds' compile time - small) */
FORCE_INLINE void few_rest_nt(int nt, int nr, const float *X, size_t ldx, const char *W, size_t row,
                              ragd_dtype dt, int K, const float *bias, float *Y, size_t ldy,
                              int accumulate) {
    if (nr & 4) {
        few_tile(4, nt, X, ldx, W, (size_t)K, dt, K, bias, Y, 1, ldy, accumulate, 0);
        W += 4 * row, Y += 4;
        if (bias) bias += 4;
    }
    if (nr & 2) {
        few_tile(2, nt, X, ldx, W, (size_t)K, dt, K, bias, Y, 1, ldy, accumulate, 0);
        W += 2 * row, Y += 2;
        if (bias) bias += 2;
    }
    if (nr & 1) few_tile(1, nt, X, ldx, W, (size_t)K, dt, K, bias, Y, 1, ldy, accumulate, 0);
}

static void few_rest(int nr, int nt, const float *X, size_t ldx, const void *W, ragd_dtype dt,
                     int K, const float *bias, float *Y, size_t ldy, int accumulate) {
    const size_t row = (size_t)K * (dt == RAGD_DT_F32 ? 4 : 2);
    switch (nt) {
        case 1:
            few_rest_nt(1, nr, X, ldx, W, row, dt, K, bias, Y, ldy, accumulate);
            break;
        case 2:
            few_rest_nt(2, nr, X, ldx, W, row, dt, K, bias, Y, ldy, accumulate);
            break;
        case 3:
            few_rest_nt(3, nr, X, ldx, W, row, dt, K, bias, Y, ldy, accumulate);
            break;
        default:
            few_rest_nt(4, nr, X, ldx, W, row, dt, K, bias, Y, ldy, accumulate);
            break;
    }
}

/* by the largest group's size: rows per tile, and the tiles for a group of that size less one
 * and of that size (balanced groups differ by at most one token) */
static const int few_rows[FEW_GROUP + 1] = {8, 8, 8, 7, 6};
static const few_fn few_tab[FEW_GROUP + 1][2] = {
    {NULL, NULL}, {NULL, few_8_1}, {few_8_1, few_8_2}, {few_7_2, few_7_3}, {few_6_3, few_6_4}};

FORCE_INLINE void rows_few(ragd_dtype dt, const float *X, size_t ldx, int t0, int t1, const void *W,
                           int K, int r0, int r1, const float *bias, float *Y, size_t ldy,
                           int accumulate) {
    const int T = t1 - t0, ng = (T + FEW_GROUP - 1) / FEW_GROUP, ntmax = (T + ng - 1) / ng;
    const int NR = few_rows[ntmax], C = (r1 - r0) / NR;
    const size_t es = dt == RAGD_DT_F32 ? 4 : 2, row = (size_t)K * es;
    const char *Wb = W;
    /* tile row i is row c of stream i (the range cut into NR contiguous parts, as gemv_dt) */
    for (int c = 0; c < C; c++) {
        const int r = r0 + c;
        const char *blk = Wb + (size_t)r * row;
        for (int g = 0; g < ng; g++) {
            const int ga = t0 + g * T / ng, gb = t0 + (g + 1) * T / ng;
            /* the first group prefetches ahead on the streams; the others find the rows in L1 */
            few_tab[ntmax][gb - ga == ntmax](X + (size_t)ga * ldx, ldx, blk, (size_t)C * K, dt, K,
                                             bias ? bias + r : NULL, Y + (size_t)ga * ldy + r,
                                             (size_t)C, ldy, accumulate, g == 0);
        }
    }
    const int r = r0 + NR * C;
    if (r < r1)
        for (int g = 0; g < ng; g++) {
            const int ga = t0 + g * T / ng, gb = t0 + (g + 1) * T / ng;
            few_rest(r1 - r, gb - ga, X + (size_t)ga * ldx, ldx, Wb + (size_t)r * row, dt, K,
                     bias ? bias + r : NULL, Y + (size_t)ga * ldy + r, ldy, accumulate);
        }
}

FORCE_INLINE void rows_dt(ragd_dtype dt, const float *X, size_t ldx, int t0, int t1, const void *W,
                          int K, int r0, int r1, const float *bias, float *Y, size_t ldy, int acc,
                          float *scratch) {
    size_t es = dt == RAGD_DT_F32 ? 4 : 2;
    const char *Wb = W;
    if (t1 - t0 == 1) {
        gemv_dt(dt, X + (size_t)t0 * ldx, W, K, r0, r1, bias, Y + (size_t)t0 * ldy, acc);
        return;
    }
    if (t1 - t0 <= RAGD_K_FEW_MAX) {
        rows_few(dt, X, ldx, t0, t1, W, K, r0, r1, bias, Y, ldy, acc);
        return;
    }
    for (int r = r0; r < r1; r += 4) {
        int nr = r1 - r < 4 ? r1 - r : 4;
        const void *wr = Wb + (size_t)r * K * es;
        const float *br = bias ? bias + r : NULL;
        int t = t0;
        if (nr == 4 && scratch && t1 - t0 >= 6) {
            /* widen the 4-row panel once, then 4 rows x 6 tokens per pass: the same
             * per-element arithmetic as the other paths (exact widening, same k order) */
            if (dt == RAGD_DT_F32) {
                memcpy(scratch, wr, (size_t)4 * K * 4);
            } else {
                for (int i = 0; i < 4; i++) {
                    int k = 0;
                    const size_t ro = (size_t)i * K;
                    for (; k + 16 <= K; k += 16)
                        _mm512_storeu_ps(scratch + ro + k, ldw(wr, dt, ro + (size_t)k));
                    if (k < K) {
                        __mmask16 m = (__mmask16)((1u << (K - k)) - 1u);
                        _mm512_mask_storeu_ps(scratch + ro + k, m,
                                              ldw_mask(wr, dt, ro + (size_t)k, m));
                    }
                }
            }
            for (; t + 6 <= t1; t += 6)
                kern(4, 6, X + (size_t)t * ldx, ldx, scratch, RAGD_DT_F32, (size_t)K, K, br,
                     Y + (size_t)t * ldy + r, ldy, acc);
            for (; t < t1; t++)
                kern(4, 1, X + (size_t)t * ldx, ldx, scratch, RAGD_DT_F32, (size_t)K, K, br,
                     Y + (size_t)t * ldy + r, ldy, acc);
        } else if (nr == 4) {
            for (; t + 4 <= t1; t += 4)
                kern(4, 4, X + (size_t)t * ldx, ldx, wr, dt, (size_t)K, K, br,
                     Y + (size_t)t * ldy + r, ldy, acc);
            for (; t < t1; t++)
                kern(4, 1, X + (size_t)t * ldx, ldx, wr, dt, (size_t)K, K, br,
                     Y + (size_t)t * ldy + r, ldy, acc);
        } else {
            for (; t < t1; t++)
                for (int i = 0; i < nr; i++)
                    kern(1, 1, X + (size_t)t * ldx, ldx, (const char *)wr + (size_t)i * K * es, dt,
                         (size_t)K, K, br ? br + i : NULL, Y + (size_t)t * ldy + r + i, ldy, acc);
        }
    }
}

void ragd_k_matmul_rows(const float *X, size_t ldx, int t0, int t1, const void *W, ragd_dtype dt,
                        int K, int r0, int r1, const float *bias, float *Y, size_t ldy,
                        int accumulate, float *scratch) {
    switch (dt) {
        case RAGD_DT_BF16:
            rows_dt(RAGD_DT_BF16, X, ldx, t0, t1, W, K, r0, r1, bias, Y, ldy, accumulate, scratch);
            break;
        case RAGD_DT_F16:
            rows_dt(RAGD_DT_F16, X, ldx, t0, t1, W, K, r0, r1, bias, Y, ldy, accumulate, scratch);
            break;
        default:
            rows_dt(RAGD_DT_F32, X, ldx, t0, t1, W, K, r0, r1, bias, Y, ldy, accumulate, scratch);
            break;
    }
}

float ragd_k_dot(const float *a, const float *b, int n) {
    __m512 acc = _mm512_setzero_ps();
    int k = 0;
    for (; k + 16 <= n; k += 16)
        acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + k), _mm512_loadu_ps(b + k), acc);
    if (k < n) {
        __mmask16 m = (__mmask16)((1u << (n - k)) - 1u);
        acc =
            _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + k), _mm512_maskz_loadu_ps(m, b + k), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

/* key j of a paged K^T: block j / bs, column j % bs of its [d][bs] */
FORCE_INLINE const float *key_at(const ragd_k_pages *P, int j) {
    return ragd_k_page(P, j / P->bs) + j % P->bs;
}

/* nr query rows x (16 * nk) keys (kt0: keys 0..15, kt1: 16..31, rows of ld floats): every
 * score is one lane accumulating q[k] * K[k][j] in k order (fused multiply-adds from zero),
 * then one multiply by scale - whatever nr, nk or the mask, so a score does not depend on how
 * rows and keys are tiled. Rows share each key load and give nr * nk independent chains (one
 * row alone is bound by the FMA latency). */
FORCE_INLINE void scores_tile(int nr, int nk, float *s, size_t lds, const float *q, size_t ldq,
                              const float *kt0, const float *kt1, int d, int ld, __mmask16 m1,
                              float scale) {
    __m512 acc[8][2];
    _Pragma("GCC unroll 8") for (int i = 0; i < nr; i++)
        _Pragma("GCC unroll 2") for (int c = 0; c < nk; c++) acc[i][c] = _mm512_setzero_ps();
    for (int k = 0; k < d; k++) {
        __m512 kv[2];
        kv[0] = nk == 2 ? _mm512_loadu_ps(kt0 + (size_t)k * ld)
                        : _mm512_maskz_loadu_ps(m1, kt0 + (size_t)k * ld);
        if (nk == 2) kv[1] = _mm512_maskz_loadu_ps(m1, kt1 + (size_t)k * ld);
        _Pragma("GCC unroll 8") for (int i = 0; i < nr; i++) {
            __m512 qk = _mm512_set1_ps(q[(size_t)i * ldq + k]);
            _Pragma("GCC unroll 2") for (int c = 0; c < nk; c++) acc[i][c] =
                _mm512_fmadd_ps(qk, kv[c], acc[i][c]);
        }
    }
    const __m512 sc = _mm512_set1_ps(scale);
    _Pragma("GCC unroll 8") for (int i = 0; i < nr; i++) {
        float *o = s + (size_t)i * lds;
        if (nk == 2) {
            _mm512_storeu_ps(o, _mm512_mul_ps(acc[i][0], sc));
            _mm512_mask_storeu_ps(o + 16, m1, _mm512_mul_ps(acc[i][1], sc));
        } else {
            _mm512_mask_storeu_ps(o, m1, _mm512_mul_ps(acc[i][0], sc));
        }
    }
}

/* nr (compile-time after inlining) rows over all n keys, 32 keys a step and a masked tail.
 * With bs a multiple of 16 no 16-key vector straddles two blocks, so the steps run across
 * blocks (two 16-key blocks make one 32-key step); otherwise block by block. */
FORCE_INLINE void scores_rows(int nr, float *s, size_t lds, const float *q, size_t ldq,
                              const ragd_k_pages *K, int d, int n, float scale) {
    const int seg = K->bs % 16 == 0 ? n : K->bs, ld = K->bs;
    for (int j0 = 0; j0 < n; j0 += seg) {
        const int ns = n - j0 < seg ? n - j0 : seg;
        int j = 0;
        for (; j + 32 <= ns; j += 32)
            scores_tile(nr, 2, s + j0 + j, lds, q, ldq, key_at(K, j0 + j), key_at(K, j0 + j + 16),
                        d, ld, 0xFFFF, scale);
        if (ns - j > 16) {
            scores_tile(nr, 2, s + j0 + j, lds, q, ldq, key_at(K, j0 + j), key_at(K, j0 + j + 16),
                        d, ld, (__mmask16)((1u << (ns - j - 16)) - 1u), scale);
        } else if (ns > j) {
            __mmask16 m = ns - j == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (ns - j)) - 1u);
            scores_tile(nr, 1, s + j0 + j, lds, q, ldq, key_at(K, j0 + j), NULL, d, ld, m, scale);
        }
    }
}

void ragd_k_scores(float *s, size_t lds, const float *q, size_t ldq, int rows,
                   const ragd_k_pages *K, int d, int n, float scale) {
    int r = 0;
    for (; r + 8 <= rows; r += 8)
        scores_rows(8, s + (size_t)r * lds, lds, q + (size_t)r * ldq, ldq, K, d, n, scale);
    const int left = rows - r;
    float *sr = s + (size_t)r * lds;
    const float *qr = q + (size_t)r * ldq;
    switch (left) { /* 7..1 rows: one tile (rep = 7 query heads per key head is common) */
        case 7:
            scores_rows(7, sr, lds, qr, ldq, K, d, n, scale);
            break;
        case 6:
            scores_rows(6, sr, lds, qr, ldq, K, d, n, scale);
            break;
        case 5:
            scores_rows(5, sr, lds, qr, ldq, K, d, n, scale);
            break;
        case 4:
            scores_rows(4, sr, lds, qr, ldq, K, d, n, scale);
            break;
        case 3:
            scores_rows(3, sr, lds, qr, ldq, K, d, n, scale);
            break;
        case 2:
            scores_rows(2, sr, lds, qr, ldq, K, d, n, scale);
            break;
        case 1:
            scores_rows(1, sr, lds, qr, ldq, K, d, n, scale);
            break;
        default:
            break;
    }
}

float ragd_k_max(const float *x, int n) {
    __m512 mv = _mm512_set1_ps(-INFINITY);
    int k = 0;
    for (; k + 16 <= n; k += 16) mv = _mm512_max_ps(mv, _mm512_loadu_ps(x + k));
    if (k < n)
        mv = _mm512_mask_max_ps(mv, (__mmask16)((1u << (n - k)) - 1u), mv,
                                _mm512_maskz_loadu_ps((__mmask16)((1u << (n - k)) - 1u), x + k));
    return _mm512_reduce_max_ps(mv);
}

void ragd_k_scale(float *x, float a, int n) {
    const __m512 va = _mm512_set1_ps(a);
    int k = 0;
    for (; k + 16 <= n; k += 16) _mm512_storeu_ps(x + k, _mm512_mul_ps(_mm512_loadu_ps(x + k), va));
    for (; k < n; k++) x[k] *= a;
}

/* out[r][0..d) += sum over j < n of p[r*ldp + j] * V[j][0..d), for r < rows, j in order
 * across the blocks: the same fused multiply-adds in the same order as rows x n ragd_k_axpy
 * calls, with up to 8 output rows of one 16-lane column block held in registers while the
 * value rows of every block stream by. */
FORCE_INLINE void attn_pv_rows(int nr, float *out, size_t ldo, const float *p, size_t ldp,
                               const ragd_k_pages *V, size_t ldv, int n, int d) {
    for (int c = 0; c < d; c += 16) {
        const __mmask16 m = d - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (d - c)) - 1u);
        __m512 acc[8];
        _Pragma("GCC unroll 8") for (int i = 0; i < nr; i++) acc[i] =
            _mm512_maskz_loadu_ps(m, out + (size_t)i * ldo + c);
        for (int j0 = 0, b = 0; j0 < n; j0 += V->bs, b++) {
            const float *vb = ragd_k_page(V, b) + c;
            const int nb = n - j0 < V->bs ? n - j0 : V->bs;
            const float *pb = p + j0;
            for (int j = 0; j < nb; j++) {
                const __m512 x = _mm512_maskz_loadu_ps(m, vb + (size_t)j * ldv);
                _Pragma("GCC unroll 8") for (int i = 0; i < nr; i++) acc[i] =
                    _mm512_fmadd_ps(_mm512_set1_ps(pb[(size_t)i * ldp + j]), x, acc[i]);
            }
        }
        _Pragma("GCC unroll 8") for (int i = 0; i < nr; i++)
            _mm512_mask_storeu_ps(out + (size_t)i * ldo + c, m, acc[i]);
    }
}

void ragd_k_attn_pv(float *out, size_t ldo, const float *p, size_t ldp, int rows,
                    const ragd_k_pages *V, size_t ldv, int n, int d) {
    int r = 0;
    for (; r + 8 <= rows; r += 8)
        attn_pv_rows(8, out + (size_t)r * ldo, ldo, p + (size_t)r * ldp, ldp, V, ldv, n, d);
    float *o = out + (size_t)r * ldo;
    const float *pr = p + (size_t)r * ldp;
    switch (rows - r) { /* compile-time row counts keep the accumulators in registers */
        case 7:
            attn_pv_rows(7, o, ldo, pr, ldp, V, ldv, n, d);
            break;
        case 6:
            attn_pv_rows(6, o, ldo, pr, ldp, V, ldv, n, d);
            break;
        case 5:
            attn_pv_rows(5, o, ldo, pr, ldp, V, ldv, n, d);
            break;
        case 4:
            attn_pv_rows(4, o, ldo, pr, ldp, V, ldv, n, d);
            break;
        case 3:
            attn_pv_rows(3, o, ldo, pr, ldp, V, ldv, n, d);
            break;
        case 2:
            attn_pv_rows(2, o, ldo, pr, ldp, V, ldv, n, d);
            break;
        case 1:
            attn_pv_rows(1, o, ldo, pr, ldp, V, ldv, n, d);
            break;
        default:
            break;
    }
}

void ragd_k_axpy(float *y, float a, const float *x, int n) {
    __m512 va = _mm512_set1_ps(a);
    int k = 0;
    for (; k + 16 <= n; k += 16)
        _mm512_storeu_ps(y + k,
                         _mm512_fmadd_ps(va, _mm512_loadu_ps(x + k), _mm512_loadu_ps(y + k)));
    for (; k < n; k++) y[k] = fmaf(a, x[k], y[k]);
}

float ragd_k_exp_sub_sum(float *x, int n, float max) {
    __m512 vm = _mm512_set1_ps(max), s = _mm512_setzero_ps();
    int k = 0;
    for (; k + 16 <= n; k += 16) {
        __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + k), vm));
        _mm512_storeu_ps(x + k, e);
        s = _mm512_add_ps(s, e);
    }
    if (k < n) {
        __mmask16 m = (__mmask16)((1u << (n - k)) - 1u);
        __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + k), vm));
        e = _mm512_maskz_mov_ps(m, e);
        _mm512_mask_storeu_ps(x + k, m, e);
        s = _mm512_add_ps(s, e);
    }
    return _mm512_reduce_add_ps(s);
}

void ragd_k_swiglu(float *out, const float *g, const float *u, int n) {
    int k = 0;
    const __m512 one = _mm512_set1_ps(1.0f);
    for (; k + 16 <= n; k += 16) {
        __m512 vg = _mm512_loadu_ps(g + k);
        __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), vg));
        __m512 s = _mm512_div_ps(vg, _mm512_add_ps(one, e));
        _mm512_storeu_ps(out + k, _mm512_mul_ps(s, _mm512_loadu_ps(u + k)));
    }
    for (; k < n; k++) out[k] = g[k] / (1.0f + expf(-g[k])) * u[k];
}

#else /* scalar fallback */

void ragd_k_matmul_rows(const float *X, size_t ldx, int t0, int t1, const void *W, ragd_dtype dt,
                        int K, int r0, int r1, const float *bias, float *Y, size_t ldy,
                        int accumulate, float *scratch) {
    (void)scratch;
    for (int t = t0; t < t1; t++)
        for (int r = r0; r < r1; r++) {
            float s = 0;
            for (int k = 0; k < K; k++) {
                size_t o = (size_t)r * K + k;
                float w = dt == RAGD_DT_BF16  ? ragd_bf16_to_f32(((const uint16_t *)W)[o])
                          : dt == RAGD_DT_F16 ? ragd_f16_to_f32(((const uint16_t *)W)[o])
                                              : ((const float *)W)[o];
                s += w * X[(size_t)t * ldx + k];
            }
            if (bias) s += bias[r];
            float *y = Y + (size_t)t * ldy + r;
            *y = accumulate ? *y + s : s;
        }
}

float ragd_k_dot(const float *a, const float *b, int n) {
    float s = 0;
    for (int k = 0; k < n; k++) s += a[k] * b[k];
    return s;
}

void ragd_k_axpy(float *y, float a, const float *x, int n) {
    for (int k = 0; k < n; k++) y[k] += a * x[k];
}

void ragd_k_attn_pv(float *out, size_t ldo, const float *p, size_t ldp, int rows,
                    const ragd_k_pages *V, size_t ldv, int n, int d) {
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < n; j++)
            ragd_k_axpy(out + (size_t)r * ldo, p[(size_t)r * ldp + j],
                        ragd_k_page(V, j / V->bs) + (size_t)(j % V->bs) * ldv, d);
}

void ragd_k_scores(float *s, size_t lds, const float *q, size_t ldq, int rows,
                   const ragd_k_pages *K, int d, int n, float scale) {
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < n; j++) {
            const float *kt = ragd_k_page(K, j / K->bs) + j % K->bs;
            float a = 0;
            for (int k = 0; k < d; k++) a = fmaf(q[(size_t)r * ldq + k], kt[(size_t)k * K->bs], a);
            s[(size_t)r * lds + j] = a * scale;
        }
}

float ragd_k_max(const float *x, int n) {
    float m = -INFINITY;
    for (int k = 0; k < n; k++) m = x[k] > m ? x[k] : m;
    return m;
}

void ragd_k_scale(float *x, float a, int n) {
    for (int k = 0; k < n; k++) x[k] *= a;
}

float ragd_k_exp_sub_sum(float *x, int n, float max) {
    float s = 0;
    for (int k = 0; k < n; k++) {
        x[k] = expf(x[k] - max);
        s += x[k];
    }
    return s;
}

void ragd_k_swiglu(float *out, const float *g, const float *u, int n) {
    for (int k = 0; k < n; k++) out[k] = g[k] / (1.0f + expf(-g[k])) * u[k];
}

#endif

#if defined(RAGD_K_AVX512) && defined(__AVX512BF16__)

int ragd_k_have_bf16_dot(void) {
    return 1;
}

/* The 16 lane sums of v[0..15] in one vector, by a tree of 4 levels (each halves the lane span
 * and pairs up the vectors): 15 adds and 30 shuffles instead of 16 separate reductions. With
 * v[4 * i + j] = (row i, token j) the 128-bit quarter j holds rows 0..3 of token j. */
FORCE_INLINE __m512 reduce16(__m512 v0, __m512 v1, __m512 v2, __m512 v3, __m512 v4, __m512 v5,
                             __m512 v6, __m512 v7, __m512 v8, __m512 v9, __m512 v10, __m512 v11,
                             __m512 v12, __m512 v13, __m512 v14, __m512 v15) {
#define R1(a, b) _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE))
#define R2(a, b) _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x88), _mm512_shuffle_f32x4(a, b, 0xDD))
#define R3(a, b) _mm512_add_ps(_mm512_shuffle_ps(a, b, 0x44), _mm512_shuffle_ps(a, b, 0xEE))
#define R4(a, b) _mm512_add_ps(_mm512_shuffle_ps(a, b, 0x88), _mm512_shuffle_ps(a, b, 0xDD))
    /* level 1: halves (8 partials of two vectors); 2: quarters of v[4k..4k+3]; 3 and 4 inside
     * each 128-bit lane: quarter q ends as [v_q, v_(4+q), v_(8+q), v_(12+q)] */
    __m512 x0 = R2(R1(v0, v1), R1(v2, v3)), x1 = R2(R1(v4, v5), R1(v6, v7));
    __m512 x2 = R2(R1(v8, v9), R1(v10, v11)), x3 = R2(R1(v12, v13), R1(v14, v15));
    return R4(R3(x0, x1), R3(x2, x3));
#undef R1
#undef R2
#undef R3
#undef R4
}

/* quarter j of z = rows 0..3 of token j: (+ bias) stored (or added) to Y[j * ldy + 0..3] */
FORCE_INLINE void store_sums_4x4(__m512 z, const float *bias, float *Y, size_t ldy,
                                 int accumulate) {
    if (bias) z = _mm512_add_ps(z, _mm512_broadcast_f32x4(_mm_loadu_ps(bias)));
    __m128 q[4] = {_mm512_castps512_ps128(z), _mm512_extractf32x4_ps(z, 1),
                   _mm512_extractf32x4_ps(z, 2), _mm512_extractf32x4_ps(z, 3)};
    _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) {
        float *y = Y + (size_t)j * ldy;
        _mm_storeu_ps(y, accumulate ? _mm_add_ps(_mm_loadu_ps(y), q[j]) : q[j]);
    }
}

/* nr rows x nt tokens with the nr weight vectors in registers and one activation vector at a
 * time: 6 x 4 = 24 accumulators + 6 + 1 registers, 10 loads per 24 dot products. */
FORCE_INLINE void kern_bf16w(int nr, int nt, const uint16_t *X, size_t ldx, const uint16_t *W,
                             size_t ldw_, int K, const float *bias, float *Y, size_t ldy,
                             int accumulate) {
    __m512 acc[6][4];
    _Pragma("GCC unroll 8") for (int i = 0; i < nr; i++)
        _Pragma("GCC unroll 8") for (int j = 0; j < nt; j++) acc[i][j] = _mm512_setzero_ps();
    int k = 0;
    for (; k + 32 <= K; k += 32) {
        __m512i w[6];
        _Pragma("GCC unroll 8") for (int i = 0; i < nr; i++) w[i] =
            _mm512_loadu_si512(W + (size_t)i * ldw_ + k);
        _Pragma("GCC unroll 8") for (int j = 0; j < nt; j++) {
            __m512i x = _mm512_loadu_si512(X + (size_t)j * ldx + k);
            _Pragma("GCC unroll 8") for (int i = 0; i < nr; i++) acc[i][j] =
                _mm512_dpbf16_ps(acc[i][j], (__m512bh)x, (__m512bh)w[i]);
        }
    }
    if (k < K) {
        __mmask32 m = (__mmask32)((1ull << (K - k)) - 1ull);
        __m512i w[6];
        _Pragma("GCC unroll 8") for (int i = 0; i < nr; i++) w[i] =
            _mm512_maskz_loadu_epi16(m, W + (size_t)i * ldw_ + k);
        _Pragma("GCC unroll 8") for (int j = 0; j < nt; j++) {
            __m512i x = _mm512_loadu_si512(X + (size_t)j * ldx + k);
            _Pragma("GCC unroll 8") for (int i = 0; i < nr; i++) acc[i][j] =
                _mm512_dpbf16_ps(acc[i][j], (__m512bh)x, (__m512bh)w[i]);
        }
    }
    int i0 = 0;
    if (nr >= 4 && nt == 4) { /* rows 0..3 x 4 tokens in one reduction tree */
        store_sums_4x4(reduce16(acc[0][0], acc[0][1], acc[0][2], acc[0][3], acc[1][0], acc[1][1],
                                acc[1][2], acc[1][3], acc[2][0], acc[2][1], acc[2][2], acc[2][3],
                                acc[3][0], acc[3][1], acc[3][2], acc[3][3]),
                       bias, Y, ldy, accumulate);
        i0 = 4;
    }
    _Pragma("GCC unroll 8") for (int i = i0; i < nr; i++)
        _Pragma("GCC unroll 8") for (int j = 0; j < nt; j++) {
        float s = _mm512_reduce_add_ps(acc[i][j]);
        if (bias) s += bias[i];
        float *y = Y + (size_t)j * ldy + i;
        *y = accumulate ? *y + s : s;
    }
}

/* tokens [t0, t1) against nr rows (compile-time nr after inlining): tiles of 4 tokens, then 1.
 * The rows stay in L1 across the token tiles; meanwhile the K range of the next n_next rows
 * (at next, or NULL) is prefetched a slice per tile, so their first tile does not wait on
 * memory. */
FORCE_INLINE void rows_bf16(int nr, const uint16_t *Xb, size_t ldxb, int t0, int t1,
                            const uint16_t *wr, size_t ldw, int K, const float *br, float *Y,
                            size_t ldy, int r, int accumulate, const char *next, int n_next) {
    int t = t0;
    const size_t bytes = (size_t)K * 2, total = next ? (size_t)n_next * bytes : 0;
    const size_t n_tiles = (size_t)(t1 - t0) / 4, slice = n_tiles ? total / n_tiles + 64 : 0;
    size_t pf = 0, col = 0; /* bytes prefetched; position in the current row */
    for (; t + 4 <= t1; t += 4) {
        for (size_t e = pf + slice < total ? pf + slice : total; pf < e; pf += 64, col += 64) {
            if (col >= bytes) next += ldw * 2, col -= bytes;
            _mm_prefetch(next + col, _MM_HINT_T0);
        }
        kern_bf16w(nr, 4, Xb + (size_t)t * ldxb, ldxb, wr, ldw, K, br, Y + (size_t)t * ldy + r, ldy,
                   accumulate);
    }
    for (; t < t1; t++)
        kern_bf16w(nr, 1, Xb + (size_t)t * ldxb, ldxb, wr, ldw, K, br, Y + (size_t)t * ldy + r, ldy,
                   accumulate);
}

/* one K range [k0, k0 + kc) of rows [r0, r1): row tiles of 6, each over all the tokens */
static void matmul_bf16_k(const uint16_t *Xb, size_t ldxb, int t0, int t1, const uint16_t *W,
                          size_t ldw, int kc, int r0, int r1, const float *bias, float *Y,
                          size_t ldy, int accumulate) {
    int r = r0;
    for (; r + 6 <= r1; r += 6) {
        const int nn = r1 - (r + 6) < 6 ? r1 - (r + 6) : 6; /* rows of the next tile */
        rows_bf16(6, Xb, ldxb, t0, t1, W + (size_t)r * ldw, ldw, kc, bias ? bias + r : NULL, Y, ldy,
                  r, accumulate, nn > 0 ? (const char *)(W + (size_t)(r + 6) * ldw) : NULL, nn);
    }
    /* the rest (< 6 rows) as 4-, 2- and 1-row tiles, as rows_few does */
    if ((r1 - r) & 4) {
        rows_bf16(4, Xb, ldxb, t0, t1, W + (size_t)r * ldw, ldw, kc, bias ? bias + r : NULL, Y, ldy,
                  r, accumulate, NULL, 0);
        r += 4;
    }
    if ((r1 - r) & 2) {
        rows_bf16(2, Xb, ldxb, t0, t1, W + (size_t)r * ldw, ldw, kc, bias ? bias + r : NULL, Y, ldy,
                  r, accumulate, NULL, 0);
        r += 2;
    }
    if (r < r1)
        rows_bf16(1, Xb, ldxb, t0, t1, W + (size_t)r * ldw, ldw, kc, bias ? bias + r : NULL, Y, ldy,
                  r, accumulate, NULL, 0);
}

/* Long rows (K > 3072: the MLP down projection) go in K ranges of 2048, so a 6-row tile
 * (24 KB) stays in L1 while the token tiles pass; the ranges after the first accumulate. */
#define BF16_KC 2048

void ragd_k_matmul_rows_bf16(const uint16_t *Xb, size_t ldxb, int t0, int t1, const uint16_t *W,
                             int K, int r0, int r1, const float *bias, float *Y, size_t ldy,
                             int accumulate) {
    if (K <= BF16_KC * 3 / 2) {
        matmul_bf16_k(Xb, ldxb, t0, t1, W, (size_t)K, K, r0, r1, bias, Y, ldy, accumulate);
        return;
    }
    for (int k0 = 0; k0 < K; k0 += BF16_KC) {
        const int kc = K - k0 < BF16_KC ? K - k0 : BF16_KC;
        matmul_bf16_k(Xb + k0, ldxb, t0, t1, W + k0, (size_t)K, kc, r0, r1, k0 ? NULL : bias, Y,
                      ldy, k0 ? 1 : accumulate);
    }
}

#else

int ragd_k_have_bf16_dot(void) {
    return 0;
}

void ragd_k_matmul_rows_bf16(const uint16_t *Xb, size_t ldxb, int t0, int t1, const uint16_t *W,
                             int K, int r0, int r1, const float *bias, float *Y, size_t ldy,
                             int accumulate) {
    for (int t = t0; t < t1; t++)
        for (int r = r0; r < r1; r++) {
            float s = 0;
            for (int k = 0; k < K; k++)
                s += ragd_bf16_to_f32(Xb[(size_t)t * ldxb + k]) *
                     ragd_bf16_to_f32(W[(size_t)r * K + k]);
            if (bias) s += bias[r];
            float *y = Y + (size_t)t * ldy + r;
            *y = accumulate ? *y + s : s;
        }
}

#endif

void ragd_k_to_bf16(uint16_t *dst, const float *src, int n, int n_pad) {
    int i = 0;
#ifdef RAGD_K_AVX512
    /* ragd_f32_to_bf16 16 at a time: round to nearest even, NaNs kept quiet */
    const __m512i one = _mm512_set1_epi32(1), bias = _mm512_set1_epi32(0x7fff),
                  abs_mask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000),
                  quiet = _mm512_set1_epi32(0x400000);
    for (; i + 16 <= n; i += 16) {
        __m512i u = _mm512_castps_si512(_mm512_loadu_ps(src + i));
        __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs_mask), inf);
        __m512i r = _mm512_add_epi32(
            u, _mm512_add_epi32(bias, _mm512_and_si512(_mm512_srli_epi32(u, 16), one)));
        r = _mm512_mask_or_epi32(r, nan, u, quiet);
        _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16)));
    }
#endif
    for (; i < n; i++) dst[i] = ragd_f32_to_bf16(src[i]);
    for (int i = n; i < n_pad; i++) dst[i] = 0;
}

void ragd_k_rmsnorm(float *y, const float *x, const float *w, int n, float eps) {
    float ss = ragd_k_dot(x, x, n);
    float r = 1.0f / sqrtf(ss / (float)n + eps);
    for (int i = 0; i < n; i++) y[i] = w[i] * (x[i] * r);
}

void ragd_k_rope(float *x, const float *c, const float *s, int d) {
    int h = d / 2;
    for (int i = 0; i < h; i++) {
        float a = x[i], b = x[i + h];
        x[i] = a * c[i] - b * s[i];
        x[i + h] = b * c[i] + a * s[i];
    }
}
