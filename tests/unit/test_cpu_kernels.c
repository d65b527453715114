/* Unit tests for the CPU matrix-product kernels: for F32/F16/BF16 weights, K with and without a
 * 16-column tail, row ranges that leave partial tiles, and every path by token count (gemv,
 * few-token groups, panels), the product of many tokens is bitwise equal to computing each
 * token alone, matches a double-precision reference, and honours bias, accumulate and
 * sub-ranges of tokens and rows; the attention P V kernel equals its axpy loop bitwise. */
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
     * tiles of every size for the 6-, 7- and 8-row tiles */
    const int Ks[] = {5, 37, 200, 256, 899};
    const int Rs[] = {1, 7, 13, 61};
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
                ragd_k_attn_pv(a, (size_t)d, p, (size_t)ldp, rows, v, (size_t)ldv, n, d);
                for (int r = 0; r < rows; r++)
                    for (int j = 0; j < n; j++)
                        ragd_k_axpy(b + (size_t)r * d, p[(size_t)r * ldp + j], v + (size_t)j * ldv,
                                    d);
                assert_memory_equal(a, b, sizeof(float) * (size_t)rows * (size_t)d);
                free(v), free(p), free(a), free(b);
            }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_batched_equals_alone),
        cmocka_unit_test(test_matmul_token_count_paths),
        cmocka_unit_test(test_attn_pv_equals_axpy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
