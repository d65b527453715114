/* Unit tests for the CPU matrix-product kernels: for F32/F16/BF16 weights, K with and without a
 * 16-column tail, row ranges that leave partial tiles, and every path by token count (gemv,
 * few-token groups, panels), the product of many tokens is bitwise equal to computing each
 * token alone, matches a double-precision reference, and honours bias, accumulate and
 * sub-ranges of tokens and rows; the attention P V kernel equals its axpy loop bitwise; the
 * attention scores of many query rows equal each row's sequential fused multiply-adds, and
 * paged keys and values give the same bits as contiguous ones; the
 * vectorised bf16 rounding equals the scalar one; the bf16-activation GEMM matches its
 * double-precision reference. */
#include "testutil.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/kernels.h"
#include "model/dtype.h"

static uint32_t rng = 12345;
static float frand(void) {
    rng = rng * 1664525u + 1013904223u;
    return (float)((rng >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

/* weights of dtype dt and their exact f32 values */
static void *make_w(ragd_dtype dt, int R, int K, float *wf) {
    size_t n = (size_t)R * (size_t)K;
    void *w = malloc(n * (dt == RAGD_DT_F32 ? 4 : 2));
    for (size_t i = 0; i < n; i++) {
        float v = frand();
        if (dt == RAGD_DT_F32) {
            ((float *)w)[i] = v;
            wf[i] = v;
        } else if (dt == RAGD_DT_BF16) {
            uint16_t h = ragd_f32_to_bf16(v);
            ((uint16_t *)w)[i] = h;
            wf[i] = ragd_bf16_to_f32(h);
        } else {
            uint16_t h = ragd_f32_to_f16(v);
            ((uint16_t *)w)[i] = h;
            wf[i] = ragd_f16_to_f32(h);
        }
    }
    return w;
}

static void check_case(ragd_dtype dt, int K, int R, int T) {
    const int ldx = K + 3, ldy = R + 5; /* padded strides */
    float *wf = malloc(sizeof(float) * (size_t)R * (size_t)K);
    void *w = make_w(dt, R, K, wf);
    float *X = malloc(sizeof(float) * (size_t)T * (size_t)ldx);
    float *bias = malloc(sizeof(float) * (size_t)R);
    float *Y = malloc(sizeof(float) * (size_t)T * (size_t)ldy);
    float *Y1 = malloc(sizeof(float) * (size_t)T * (size_t)ldy);
    float *Y0 = malloc(sizeof(float) * (size_t)T * (size_t)ldy);
    float *scratch = malloc(sizeof(float) * 4 * (size_t)K);
    for (int i = 0; i < T * ldx; i++) X[i] = frand();
    for (int i = 0; i < R; i++) bias[i] = frand();
    for (int i = 0; i < T * ldy; i++) Y0[i] = frand();
    /* a sub-range of rows and tokens when there is room: the kernels index from r0 and t0 */
    const int r0 = R > 9 ? 3 : 0, r1 = R > 9 ? R - 1 : R;
    const int t0 = T > 5 ? 2 : 0, t1 = T;
    for (int accumulate = 0; accumulate < 2; accumulate++) {
        memcpy(Y, Y0, sizeof(float) * (size_t)T * (size_t)ldy);
        memcpy(Y1, Y0, sizeof(float) * (size_t)T * (size_t)ldy);
        const float *b = accumulate ? NULL : bias;
        ragd_k_matmul_rows(X, (size_t)ldx, t0, t1, w, dt, K, r0, r1, b, Y, (size_t)ldy, accumulate,
                           scratch);
        for (int t = t0; t < t1; t++)
            ragd_k_matmul_rows(X, (size_t)ldx, t, t + 1, w, dt, K, r0, r1, b, Y1, (size_t)ldy,
                               accumulate, scratch);
        for (int t = 0; t < T; t++)
            for (int r = 0; r < R; r++) {
                const size_t o = (size_t)t * (size_t)ldy + (size_t)r;
                if (t < t0 || r < r0 || r >= r1) {
                    /* outside the ranges: untouched */
                    assert_memory_equal(&Y[o], &Y0[o], sizeof(float));
                    continue;
                }
                if (memcmp(&Y[o], &Y1[o], sizeof(float))) {
                    fail_msg("dt=%d K=%d R=%d T=%d acc=%d: token %d row %d batched %.9g alone %.9g",
                             (int)dt, K, R, T, accumulate, t, r, (double)Y[o], (double)Y1[o]);
                }
                double ref = accumulate ? Y0[o] : bias[r], mag = fabs(ref);
                for (int k = 0; k < K; k++) {
                    double p = (double)wf[(size_t)r * (size_t)K + (size_t)k] *
                               (double)X[(size_t)t * (size_t)ldx + (size_t)k];
                    ref += p;
                    mag += fabs(p);
                }
                if (fabs(Y[o] - ref) > 1e-5 * mag + 1e-6)
                    fail_msg("dt=%d K=%d R=%d T=%d: token %d row %d got %.9g want %.9g", (int)dt, K,
                             R, T, t, r, (double)Y[o], ref);
            }
    }
    free(wf), free(w), free(X), free(bias), free(Y), free(Y1), free(Y0), free(scratch);
}

static void test_matmul_batched_equals_alone(void **state) {
    (void)state;
    const ragd_dtype dts[] = {RAGD_DT_BF16, RAGD_DT_F16, RAGD_DT_F32};
    /* K: below one vector, tails of 5 / 8 / 3 columns, exact multiples; R: 1 row, partial
     * tiles of every size for the 6-, 7- and 8-row tiles, and for one token 3 row streams of
     * 2 to 66 rows with remainders */
    const int Ks[] = {5, 37, 200, 256, 899};
    const int Rs[] = {1, 7, 13, 61, 203};
    for (size_t d = 0; d < sizeof dts / sizeof *dts; d++)
        for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++)
            for (size_t ri = 0; ri < sizeof Rs / sizeof *Rs; ri++)
                for (int T = 1; T <= 20; T++) check_case(dts[d], Ks[ki], Rs[ri], T);
}

static void test_matmul_token_count_paths(void **state) {
    (void)state;
    /* the largest few-token count, the first count past it, and a full prefill tile */
    const int Ts[] = {RAGD_K_FEW_MAX - 1, RAGD_K_FEW_MAX, RAGD_K_FEW_MAX + 1,
                      2 * RAGD_K_FEW_MAX + 3};
    for (size_t i = 0; i < sizeof Ts / sizeof *Ts; i++) {
        check_case(RAGD_DT_BF16, 131, 29, Ts[i]);
        check_case(RAGD_DT_F32, 64, 9, Ts[i]);
    }
}

/* P V for attention: bitwise the same as the key-by-key axpy loop it replaces, for row counts
 * on both sides of the 8 held in registers and head dims with and without a 16-lane tail. */
static void test_attn_pv_equals_axpy(void **state) {
    (void)state;
    const int ds[] = {16, 37, 64, 128};
    for (size_t di = 0; di < sizeof ds / sizeof *ds; di++)
        for (int rows = 1; rows <= 10; rows++)
            for (int n = 1; n <= 40; n += 13) {
                const int d = ds[di], ldv = d + 5, ldp = n + 2;
                float *v = malloc(sizeof(float) * (size_t)n * (size_t)ldv);
                float *p = malloc(sizeof(float) * (size_t)rows * (size_t)ldp);
                float *a = malloc(sizeof(float) * (size_t)rows * (size_t)d);
                float *b = malloc(sizeof(float) * (size_t)rows * (size_t)d);
                for (int i = 0; i < n * ldv; i++) v[i] = frand();
                for (int i = 0; i < rows * ldp; i++) p[i] = frand();
                for (int i = 0; i < rows * d; i++) a[i] = b[i] = frand();
                const ragd_k_pages V = {v, NULL, 0, n};
                ragd_k_attn_pv(a, (size_t)d, p, (size_t)ldp, rows, &V, (size_t)ldv, n, d);
                for (int r = 0; r < rows; r++)
                    for (int j = 0; j < n; j++)
                        ragd_k_axpy(b + (size_t)r * d, p[(size_t)r * ldp + j], v + (size_t)j * ldv,
                                    d);
                assert_memory_equal(a, b, sizeof(float) * (size_t)rows * (size_t)d);
                free(v), free(p), free(a), free(b);
            }
}

/* scores: for row counts on both sides of the 8-row tile and key counts around the 16/32-key
 * steps, every score equals the one-row fused multiply-add chain over d (bitwise), row by row
 * as well as in one call, and is within f32 rounding of a double-precision dot product. */
static void test_scores_rows(void **state) {
    (void)state;
    const int ds[] = {1, 17, 64};
    const int ns[] = {1, 15, 16, 17, 31, 32, 33, 48, 70};
    for (size_t di = 0; di < sizeof ds / sizeof *ds; di++)
        for (int rows = 1; rows <= 19; rows += 3)
            for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++) {
                const int d = ds[di], n = ns[ni], ld = n + 3, ldq = d + 2, lds = n + 1;
                const float scale = 0.125f;
                float *kt = malloc(sizeof(float) * (size_t)d * (size_t)ld);
                float *q = malloc(sizeof(float) * (size_t)rows * (size_t)ldq);
                float *s = malloc(sizeof(float) * (size_t)rows * (size_t)lds);
                float *one = malloc(sizeof(float) * (size_t)lds);
                for (int i = 0; i < d * ld; i++) kt[i] = frand();
                for (int i = 0; i < rows * ldq; i++) q[i] = frand();
                for (int i = 0; i < rows * lds; i++) s[i] = 7.0f;
                const ragd_k_pages K = {kt, NULL, 0, ld};
                ragd_k_scores(s, (size_t)lds, q, (size_t)ldq, rows, &K, d, n, scale);
                for (int r = 0; r < rows; r++) {
                    one[n] = 7.0f;
                    ragd_k_scores(one, (size_t)lds, q + (size_t)r * ldq, (size_t)ldq, 1, &K, d, n,
                                  scale);
                    assert_memory_equal(one, s + (size_t)r * lds, sizeof(float) * (size_t)n);
                    assert_true(one[n] == 7.0f && s[(size_t)r * lds + n] == 7.0f); /* no spill */
                    for (int j = 0; j < n; j++) {
                        float a = 0;
                        double ref = 0, mag = 0;
                        for (int k = 0; k < d; k++) {
                            a = fmaf(q[(size_t)r * ldq + k], kt[(size_t)k * ld + j], a);
                            ref += (double)q[(size_t)r * ldq + k] * kt[(size_t)k * ld + j];
                            mag += fabs((double)q[(size_t)r * ldq + k] * kt[(size_t)k * ld + j]);
                        }
                        assert_true(s[(size_t)r * lds + j] == a * scale);
                        assert_true(fabs(s[(size_t)r * lds + j] - ref * scale) <=
                                    1e-6 * (mag + 1e-30) * scale * d);
                    }
                }
                free(kt), free(q), free(s), free(one);
            }
}

/* paged keys and values (a shuffled block table, blocks of 16 - steps across blocks - and of
 * 5 - block by block): scores and P V bitwise equal to the same keys stored contiguously */
static void test_attention_paged(void **state) {
    (void)state;
    const int bss[] = {16, 5, 32};
    for (size_t bi = 0; bi < sizeof bss / sizeof *bss; bi++)
        for (int n = 1; n <= 90; n += 11) {
            const int bs = bss[bi], d = 24, rows = 7, nb = (n + bs - 1) / bs, slots = nb + 3;
            const int ldv = d + 4;
            const size_t kblk = (size_t)d * (size_t)bs, vblk = (size_t)bs * (size_t)ldv;
            float *kt = malloc(sizeof(float) * (size_t)d * (size_t)n); /* contiguous [d][n] */
            float *v = malloc(sizeof(float) * (size_t)n * (size_t)ldv);
            float *kp = malloc(sizeof(float) * kblk * (size_t)slots);
            float *vp = malloc(sizeof(float) * vblk * (size_t)slots);
            float *q = malloc(sizeof(float) * (size_t)rows * (size_t)d);
            float *s0 = malloc(sizeof(float) * (size_t)rows * (size_t)n);
            float *s1 = malloc(sizeof(float) * (size_t)rows * (size_t)n);
            float *o0 = calloc((size_t)rows * (size_t)d, sizeof(float));
            float *o1 = calloc((size_t)rows * (size_t)d, sizeof(float));
            int32_t *table = malloc(sizeof(int32_t) * (size_t)nb);
            for (int b = 0; b < nb; b++) table[b] = slots - 1 - b; /* distinct, out of order */
            for (int i = 0; i < d * n; i++) kt[i] = frand();
            for (int i = 0; i < n * ldv; i++) v[i] = frand();
            for (int i = 0; i < rows * d; i++) q[i] = frand();
            for (int j = 0; j < n; j++) {
                float *kb = kp + (size_t)table[j / bs] * kblk,
                      *vb = vp + (size_t)table[j / bs] * vblk;
                for (int k = 0; k < d; k++) kb[(size_t)k * bs + j % bs] = kt[(size_t)k * n + j];
                memcpy(vb + (size_t)(j % bs) * ldv, v + (size_t)j * ldv, sizeof(float) * (size_t)d);
            }
            const ragd_k_pages Kc = {kt, NULL, 0, n}, Vc = {v, NULL, 0, n};
            const ragd_k_pages Kp = {kp, table, kblk, bs}, Vp = {vp, table, vblk, bs};
            ragd_k_scores(s0, (size_t)n, q, (size_t)d, rows, &Kc, d, n, 0.5f);
            ragd_k_scores(s1, (size_t)n, q, (size_t)d, rows, &Kp, d, n, 0.5f);
            assert_memory_equal(s0, s1, sizeof(float) * (size_t)rows * (size_t)n);
            ragd_k_attn_pv(o0, (size_t)d, s0, (size_t)n, rows, &Vc, (size_t)ldv, n, d);
            ragd_k_attn_pv(o1, (size_t)d, s0, (size_t)n, rows, &Vp, (size_t)ldv, n, d);
            assert_memory_equal(o0, o1, sizeof(float) * (size_t)rows * (size_t)d);
            free(kt), free(v), free(kp), free(vp), free(q), free(s0), free(s1), free(o0), free(o1),
                free(table);
        }
}

static void test_max_and_scale(void **state) {
    (void)state;
    float x[53];
    for (int n = 1; n <= 53; n++) {
        for (int i = 0; i < n; i++) x[i] = frand();
        float m = x[0];
        for (int i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
        assert_true(ragd_k_max(x, n) == m);
        float y[53];
        memcpy(y, x, sizeof(float) * (size_t)n);
        ragd_k_scale(y, 0.3f, n);
        for (int i = 0; i < n; i++) assert_true(y[i] == x[i] * 0.3f);
    }
}

/* bf16-activation GEMM (the optional prefill path, vdpbf16ps where the CPU has it): against a
 * double-precision product of the bf16 values, for K below a vector, with a tail, and long
 * enough for the K ranges (the last range short or long), partial row and token tiles, bias,
 * accumulate and sub-ranges; rows and tokens outside the ranges stay untouched. */
static void check_bf16_case(int K, int R, int T) {
    const size_t ldxb = ((size_t)K + 31) / 32 * 32, ldy = (size_t)R + 3;
    uint16_t *W = malloc(sizeof(uint16_t) * (size_t)R * (size_t)K);
    uint16_t *Xb = malloc(sizeof(uint16_t) * (size_t)T * ldxb);
    float *xf = malloc(sizeof(float) * (size_t)K);
    float *bias = malloc(sizeof(float) * (size_t)R);
    float *Y = malloc(sizeof(float) * (size_t)T * ldy),
          *Y0 = malloc(sizeof(float) * (size_t)T * ldy);
    for (int i = 0; i < R * K; i++) W[i] = ragd_f32_to_bf16(frand());
    for (int t = 0; t < T; t++) {
        for (int k = 0; k < K; k++) xf[k] = frand();
        ragd_k_to_bf16(Xb + (size_t)t * ldxb, xf, K, (int)ldxb);
    }
    for (int i = 0; i < R; i++) bias[i] = frand();
    for (size_t i = 0; i < (size_t)T * ldy; i++) Y0[i] = frand();
    const int r0 = R > 9 ? 2 : 0, r1 = R, t0 = T > 5 ? 1 : 0, t1 = T > 6 ? T - 1 : T;
    for (int accumulate = 0; accumulate < 2; accumulate++) {
        memcpy(Y, Y0, sizeof(float) * (size_t)T * ldy);
        const float *b = accumulate ? NULL : bias;
        ragd_k_matmul_rows_bf16(Xb, ldxb, t0, t1, W, K, r0, r1, b, Y, ldy, accumulate);
        for (int t = 0; t < T; t++)
            for (int r = 0; r < R; r++) {
                const size_t o = (size_t)t * ldy + (size_t)r;
                if (t < t0 || t >= t1 || r < r0 || r >= r1) {
                    assert_memory_equal(&Y[o], &Y0[o], sizeof(float));
                    continue;
                }
                double ref = accumulate ? Y0[o] : bias[r], mag = fabs(ref);
                for (int k = 0; k < K; k++) {
                    double p = (double)ragd_bf16_to_f32(W[(size_t)r * K + k]) *
                               ragd_bf16_to_f32(Xb[(size_t)t * ldxb + k]);
                    ref += p;
                    mag += fabs(p);
                }
                if (fabs(Y[o] - ref) > 1e-5 * mag + 1e-6)
                    fail_msg("bf16 K=%d R=%d T=%d acc=%d: token %d row %d got %.9g want %.9g", K, R,
                             T, accumulate, t, r, (double)Y[o], ref);
            }
    }
    free(W), free(Xb), free(xf), free(bias), free(Y), free(Y0);
}

static void test_matmul_bf16(void **state) {
    (void)state;
    const int Ks[] = {7, 96, 899, 3073, 4864, 5000};
    const int Rs[] = {1, 5, 13, 20};
    const int Ts[] = {1, 4, 9};
    for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++)
        for (size_t ri = 0; ri < sizeof Rs / sizeof *Rs; ri++)
            for (size_t ti = 0; ti < sizeof Ts / sizeof *Ts; ti++)
                check_bf16_case(Ks[ki], Rs[ri], Ts[ti]);
}

/* the vectorised f32 -> bf16 rounding equals ragd_f32_to_bf16 for ordinary values, ties, the
 * largest finite values, infinities, NaNs and denormals, and zero-fills the padding */
static void test_to_bf16(void **state) {
    (void)state;
    const uint32_t special[] = {0x3f808000u, 0x3f818000u, 0x3f80ffffu, 0x7f7fffffu, 0xff7fffffu,
                                0x7f800000u, 0xff800000u, 0x7fc00001u, 0x7f800001u, 0xffbfffffu,
                                0x00000001u, 0x807fffffu, 0x00000000u, 0x80000000u, 0x3f7fff80u};
    enum { N = 83, PAD = 96 };
    float src[N];
    uint16_t got[PAD];
    for (int i = 0; i < N; i++) {
        uint32_t u;
        if (i < (int)(sizeof special / sizeof *special))
            u = special[i];
        else {
            rng = rng * 1664525u + 1013904223u;
            u = rng;
        }
        memcpy(&src[i], &u, 4);
    }
    for (int n = 0; n <= N; n += 7) {
        memset(got, 0xAB, sizeof got);
        ragd_k_to_bf16(got, src, n, PAD);
        for (int i = 0; i < n; i++) assert_int_equal(got[i], ragd_f32_to_bf16(src[i]));
        for (int i = n; i < PAD; i++) assert_int_equal(got[i], 0);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_batched_equals_alone),
        cmocka_unit_test(test_matmul_token_count_paths),
        cmocka_unit_test(test_attn_pv_equals_axpy),
        cmocka_unit_test(test_scores_rows),
        cmocka_unit_test(test_attention_paged),
        cmocka_unit_test(test_max_and_scale),
        cmocka_unit_test(test_to_bf16),
        cmocka_unit_test(test_matmul_bf16),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
