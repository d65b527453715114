/* bert: the bert-tiny forward pass reproduces the reference CLS and mean embeddings of every
 * golden case within 1e-5, one text at a time and as one packed batch of mixed lengths (with
 * and without threads); the kernels match libm; bad input is rejected. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/amx_gemm.h"
#include "backend/cpu/bert_ops.h"
#include "model/dtype.h"
#include "model/bert.h"
#include "util/threadpool.h"

typedef struct golden {
    int n;
    int32_t *ids, *lens;
    size_t total;
    float *cls, *mean;
    int dim;
} golden;

static void load_golden(golden *g, int dim) {
    char *path = tu_shared("golden/bert-tiny_golden.json");
    cJSON *j = tu_load_json(path);
    free(path);
    const cJSON *cases = cJSON_GetObjectItem(j, "cases");
    g->n = cJSON_GetArraySize(cases);
    g->dim = dim;
    g->lens = calloc((size_t)g->n, sizeof *g->lens);
    g->cls = calloc((size_t)g->n * dim, sizeof(float));
    g->mean = calloc((size_t)g->n * dim, sizeof(float));
    g->total = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) g->total +=
        (size_t)cJSON_GetArraySize(cJSON_GetObjectItem(c, "ids"));
    g->ids = calloc(g->total, sizeof *g->ids);
    size_t t = 0;
    int i = 0;
    cJSON_ArrayForEach(c, cases) {
        const cJSON *id;
        g->lens[i] = cJSON_GetArraySize(cJSON_GetObjectItem(c, "ids"));
        cJSON_ArrayForEach(id, cJSON_GetObjectItem(c, "ids")) g->ids[t++] = id->valueint;
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(c, "cls_normalized")), dim);
        for (int d = 0; d < dim; d++) {
            g->cls[(size_t)i * dim + d] =
                (float)cJSON_GetArrayItem(cJSON_GetObjectItem(c, "cls_normalized"), d)->valuedouble;
            g->mean[(size_t)i * dim + d] =
                (float)cJSON_GetArrayItem(cJSON_GetObjectItem(c, "mean_normalized"), d)
                    ->valuedouble;
        }
        i++;
    }
    cJSON_Delete(j);
}

static void free_golden(golden *g) {
    free(g->ids);
    free(g->lens);
    free(g->cls);
    free(g->mean);
}

static double max_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static ragd_bert *load_tiny(void) {
    char *dir = tu_shared("models/bert-tiny");
    if (!tu_exists(dir)) {
        free(dir);
        return NULL;
    }
    ragd_bert *m = NULL;
    ragd_err e = {0};
    int rc = ragd_bert_load(dir, &m, &e);
    if (rc) print_message("load: %s\n", e.msg);
    assert_int_equal(rc, 0);
    free(dir);
    return m;
}

static void test_golden_one_at_a_time(void **state) {
    (void)state;
    ragd_bert *m = load_tiny();
    if (!m) skip();
    assert_int_equal(ragd_bert_model_pooling(m), RAGD_BERT_POOL_CLS);
    assert_true(ragd_bert_model_normalize(m));
    const int H = ragd_bert_get_config(m)->hidden;
    golden g;
    load_golden(&g, H);
    assert_int_equal(g.n, 253);
    float *o = malloc((size_t)H * sizeof(float));
    double worst_c = 0, worst_m = 0;
    size_t off = 0;
    ragd_err e = {0};
    for (int i = 0; i < g.n; i++) {
        assert_int_equal(
            ragd_bert_forward(m, NULL, g.ids + off, &g.lens[i], 1, RAGD_BERT_POOL_MODEL, -1, o, &e),
            0);
        worst_c = fmax(worst_c, max_diff(o, g.cls + (size_t)i * H, (size_t)H));
        assert_int_equal(
            ragd_bert_forward(m, NULL, g.ids + off, &g.lens[i], 1, RAGD_BERT_POOL_MEAN, 1, o, &e),
            0);
        worst_m = fmax(worst_m, max_diff(o, g.mean + (size_t)i * H, (size_t)H));
        off += (size_t)g.lens[i];
    }
    print_message("max abs diff: cls %.3g mean %.3g\n", worst_c, worst_m);
    assert_true(worst_c <= 1e-5);
    assert_true(worst_m <= 1e-5);
    free(o);
    free_golden(&g);
    ragd_bert_destroy(m);
}

/* All 253 cases (2..407 tokens) packed into batches, with a 2-thread pool. */
static void test_golden_packed_batch(void **state) {
    (void)state;
    ragd_bert *m = load_tiny();
    if (!m) skip();
    const int H = ragd_bert_get_config(m)->hidden;
    golden g;
    load_golden(&g, H);
    ragd_pool *pool = ragd_pool_create(2);
    assert_non_null(pool);
    float *cls = malloc((size_t)g.n * H * sizeof(float));
    float *mean = malloc((size_t)g.n * H * sizeof(float));
    ragd_err e = {0};
    assert_int_equal(ragd_bert_forward(m, pool, g.ids, g.lens, g.n, RAGD_BERT_POOL_CLS, 1, cls, &e),
                     0);
    assert_int_equal(
        ragd_bert_forward(m, pool, g.ids, g.lens, g.n, RAGD_BERT_POOL_MEAN, 1, mean, &e), 0);
    double dc = max_diff(cls, g.cls, (size_t)g.n * H);
    double dm = max_diff(mean, g.mean, (size_t)g.n * H);
    print_message("packed batch max abs diff: cls %.3g mean %.3g\n", dc, dm);
    assert_true(dc <= 1e-5);
    assert_true(dm <= 1e-5);
    /* a sub-batch in another order gives the same vectors as one at a time */
    int pick[5] = {208, 3, 55, 17, 240};
    int32_t lens[5];
    int32_t *ids = malloc(g.total * sizeof *ids);
    size_t t = 0;
    for (int k = 0; k < 5; k++) {
        size_t off = 0;
        for (int i = 0; i < pick[k]; i++) off += (size_t)g.lens[i];
        lens[k] = g.lens[pick[k]];
        memcpy(ids + t, g.ids + off, (size_t)lens[k] * sizeof *ids);
        t += (size_t)lens[k];
    }
    float out[5 * 64];
    assert_int_equal(H, 64);
    assert_int_equal(ragd_bert_forward(m, pool, ids, lens, 5, RAGD_BERT_POOL_CLS, 1, out, &e), 0);
    for (int k = 0; k < 5; k++)
        assert_true(max_diff(out + k * H, cls + (size_t)pick[k] * H, (size_t)H) <= 1e-6);
    free(ids);
    free(cls);
    free(mean);
    ragd_pool_destroy(pool);
    free_golden(&g);
    ragd_bert_destroy(m);
}

/* bf16 (AMX) mode: close to the f32 reference (cosine >= 0.999 for every case), refused
 * cleanly where AMX is missing. */
static void test_bf16_mode(void **state) {
    (void)state;
    ragd_bert *m = load_tiny();
    if (!m) skip();
    ragd_err e = {0};
    if (!ragd_amx_available()) {
        assert_int_equal(ragd_bert_set_precision(m, RAGD_BERT_BF16, &e), RAGD_EUNSUPPORTED);
        assert_non_null(strstr(e.msg, "AMX"));
        ragd_bert_destroy(m);
        return;
    }
    assert_int_equal(ragd_bert_set_precision(m, RAGD_BERT_BF16, &e), 0);
    assert_int_equal(ragd_bert_get_precision(m), RAGD_BERT_BF16);
    const int H = ragd_bert_get_config(m)->hidden;
    golden g;
    load_golden(&g, H);
    ragd_pool *pool = ragd_pool_create(2);
    float *cls = malloc((size_t)g.n * H * sizeof(float));
    float *mean = malloc((size_t)g.n * H * sizeof(float));
    assert_int_equal(ragd_bert_forward(m, pool, g.ids, g.lens, g.n, RAGD_BERT_POOL_CLS, 1, cls, &e),
                     0);
    assert_int_equal(
        ragd_bert_forward(m, pool, g.ids, g.lens, g.n, RAGD_BERT_POOL_MEAN, 1, mean, &e), 0);
    double worst_cos = 1, worst_abs = 0;
    for (int i = 0; i < g.n; i++)
        for (int which = 0; which < 2; which++) {
            const float *a = (which ? mean : cls) + (size_t)i * H;
            const float *b = (which ? g.mean : g.cls) + (size_t)i * H;
            double dot = 0;
            for (int d = 0; d < H; d++) dot += (double)a[d] * b[d];
            worst_cos = fmin(worst_cos, dot);
            worst_abs = fmax(worst_abs, max_diff(a, b, (size_t)H));
        }
    print_message("bf16 vs f32 reference: min cosine %.6f, max abs diff %.3g\n", worst_cos,
                  worst_abs);
    assert_true(worst_cos >= 0.999);
    assert_true(worst_abs > 0); /* it really ran in bf16 */
    /* back to f32: exact again */
    assert_int_equal(ragd_bert_set_precision(m, RAGD_BERT_F32, &e), 0);
    assert_int_equal(ragd_bert_forward(m, pool, g.ids, g.lens, g.n, RAGD_BERT_POOL_CLS, 1, cls, &e),
                     0);
    assert_true(max_diff(cls, g.cls, (size_t)g.n * H) <= 1e-5);
    free(cls);
    free(mean);
    ragd_pool_destroy(pool);
    free_golden(&g);
    ragd_bert_destroy(m);
}

static void test_bad_input(void **state) {
    (void)state;
    ragd_bert *m = load_tiny();
    if (!m) skip();
    float o[64];
    ragd_err e = {0};
    int32_t ids[3] = {101, 21128, 102};
    int32_t len = 3;
    assert_int_equal(ragd_bert_forward(m, NULL, ids, &len, 1, RAGD_BERT_POOL_CLS, 1, o, &e),
                     RAGD_EINVAL);
    assert_non_null(strstr(e.msg, "out of range"));
    len = 0;
    assert_int_equal(ragd_bert_forward(m, NULL, ids, &len, 1, RAGD_BERT_POOL_CLS, 1, o, &e),
                     RAGD_EINVAL);
    len = 513;
    assert_int_equal(ragd_bert_forward(m, NULL, ids, &len, 1, RAGD_BERT_POOL_CLS, 1, o, &e),
                     RAGD_EINVAL);
    ragd_bert_destroy(m);
    ragd_bert *m2 = NULL;
    assert_int_not_equal(ragd_bert_load("/nonexistent-model", &m2, &e), 0);
    assert_null(m2);
    assert_non_null(strstr(e.msg, "config.json"));
}

static void test_kernels(void **state) {
    (void)state;
    double worst = 0;
    for (int i = -100000; i <= 100000; i++) {
        float x = (float)i * 1e-4f;
        worst = fmax(worst, fabs((double)ragd_erf_approx(x) - erf((double)x)));
    }
    print_message("erf approx max abs error %.3g\n", worst);
    assert_true(worst < 5e-7);
    float y[3] = {-1.0f, 0.0f, 2.0f}, b[3] = {0.5f, 0.0f, -0.5f};
    ragd_bias_gelu(y, b, 3);
    assert_true(fabs(y[0] - (-0.5 * 0.5 * (1 + erf(-0.5 / sqrt(2))))) < 1e-6);
    assert_true(fabs(y[1]) < 1e-7);
    assert_true(fabs(y[2] - 1.5 * 0.5 * (1 + erf(1.5 / sqrt(2)))) < 1e-6);
}

/* One attention head against a double-precision reference: every path of
 * ragd_attention_head (short sequences with 1-4 vectors of keys and head dims of 16-64, one
 * query row of a long sequence, biases and wide heads through the generic code). */
static void test_attention_head(void **state) {
    (void)state;
    const int Ls[] = {1, 2, 5, 16, 17, 20, 33, 48, 63, 64, 100, 300};
    const int Ds[] = {16, 32, 48, 64, 128, 24};
    uint32_t s = 11;
    double worst = 0;
    for (size_t li = 0; li < sizeof Ls / sizeof *Ls; li++)
        for (size_t di = 0; di < sizeof Ds / sizeof *Ds; di++)
            for (int variant = 0; variant < 3; variant++) {
                const int L = Ls[li], D = Ds[di], stride = 3 * D + 5;
                const int Lq = variant == 1 ? 1 : L;
                const bool bias = variant == 2;
                if (L > 64 && variant == 0 && D != 64) continue; /* keep it quick */
                float *qkv = malloc((size_t)L * stride * sizeof(float));
                float *b = malloc((size_t)3 * D * sizeof(float));
                float *out = malloc((size_t)L * (D + 3) * sizeof(float));
                float *scratch = malloc(ragd_attention_scratch_floats(L, D) * sizeof(float));
                for (int i = 0; i < L * stride; i++) {
                    s = s * 1664525u + 1013904223u;
                    qkv[i] = (float)(s >> 8) / 16777216.0f * 4.0f - 2.0f;
                }
                for (int i = 0; i < 3 * D; i++) b[i] = 0.01f * (float)(i % 17) - 0.08f;
                const float *q = qkv, *k = qkv + D, *v = qkv + 2 * D;
                const float *qb = bias ? b : NULL, *kb = bias ? b + D : NULL,
                            *vb = bias ? b + 2 * D : NULL;
                const float scale = 1.0f / sqrtf((float)D);
                ragd_attention_head(q, (size_t)stride, Lq, k, v, (size_t)stride, L, qb, kb, vb, out,
                                    (size_t)D + 3, D, scale, scratch);
                double *sc = malloc((size_t)L * sizeof(double));
                for (int i = 0; i < Lq; i++) {
                    double mx = -1e300, sum = 0;
                    for (int j = 0; j < L; j++) {
                        double dot = 0;
                        for (int d = 0; d < D; d++)
                            dot += ((double)q[i * stride + d] + (qb ? qb[d] : 0)) *
                                   ((double)k[j * stride + d] + (kb ? kb[d] : 0));
                        sc[j] = dot * scale;
                        mx = fmax(mx, sc[j]);
                    }
                    for (int j = 0; j < L; j++) sum += sc[j] = exp(sc[j] - mx);
                    for (int d = 0; d < D; d++) {
                        double o = 0;
                        for (int j = 0; j < L; j++)
                            o += sc[j] / sum * ((double)v[j * stride + d] + (vb ? vb[d] : 0));
                        worst = fmax(worst, fabs(o - out[(size_t)i * (D + 3) + d]));
                    }
                }
                free(sc), free(qkv), free(b), free(out), free(scratch);
            }
    print_message("attention head max abs error %.3g\n", worst);
    assert_true(worst < 2e-5);
}

/* The bf16 attention head (q, k, v rounded to bf16) against a double-precision reference
 * on the same rounded inputs: short and long sequences, one query row or all. */
static void test_attention_head_bf16(void **state) {
    (void)state;
    if (!ragd_attention_bf16_supported(64)) {
        print_message("no AVX512-BF16 build: the bf16 attention is not used\n");
        return;
    }
    const int Ls[] = {1, 2, 5, 16, 17, 20, 31, 33, 48, 63, 64, 100, 300, 511};
    const int Ds[] = {32, 64};
    uint32_t s = 5;
    double worst = 0;
    for (size_t li = 0; li < sizeof Ls / sizeof *Ls; li++)
        for (size_t di = 0; di < sizeof Ds / sizeof *Ds; di++)
            for (int one = 0; one < 2; one++) {
                const int L = Ls[li], D = Ds[di], stride = 3 * D + 6, Lq = one ? 1 : L;
                uint16_t *qkv = malloc((size_t)L * stride * sizeof(uint16_t));
                float *out = malloc((size_t)L * (D + 3) * sizeof(float));
                float *scratch = malloc(ragd_attention_bf16_scratch_floats(L, D) * sizeof(float));
                for (int i = 0; i < L * stride; i++) {
                    s = s * 1664525u + 1013904223u;
                    qkv[i] = ragd_f32_to_bf16((float)(s >> 8) / 16777216.0f * 4.0f - 2.0f);
                }
                const uint16_t *q = qkv, *k = qkv + D, *v = qkv + 2 * D;
                const float scale = 1.0f / sqrtf((float)D);
                ragd_attention_head_bf16(q, (size_t)stride, Lq, k, v, (size_t)stride, L, out,
                                         (size_t)D + 3, D, scale, scratch);
                double *sc = malloc((size_t)L * sizeof(double));
                for (int i = 0; i < Lq; i++) {
                    double mx = -1e300, sum = 0;
                    for (int j = 0; j < L; j++) {
                        double dot = 0;
                        for (int d = 0; d < D; d++)
                            dot += (double)ragd_bf16_to_f32(q[i * stride + d]) *
                                   ragd_bf16_to_f32(k[j * stride + d]);
                        sc[j] = dot * scale;
                        mx = fmax(mx, sc[j]);
                    }
                    for (int j = 0; j < L; j++) sum += sc[j] = exp(sc[j] - mx);
                    for (int d = 0; d < D; d++) {
                        double o = 0;
                        for (int j = 0; j < L; j++)
                            o += sc[j] / sum * ragd_bf16_to_f32(v[j * stride + d]);
                        worst = fmax(worst, fabs(o - out[(size_t)i * (D + 3) + d]));
                    }
                }
                free(sc), free(qkv), free(out), free(scratch);
            }
    print_message("bf16 attention head max abs error %.3g\n", worst);
    assert_true(worst < 1e-2); /* the softmax weights are rounded to bf16 (2^-9 relative) */
}

/* rows_fn of the AMX GEMM: copies the finished rows (they must be complete) and counts them. */
typedef struct rows_probe {
    const float *C;
    float *copy;
    int N, calls, rows;
} rows_probe;

static void probe_rows(void *ctx, int r0, int n) {
    rows_probe *p = ctx;
    memcpy(p->copy + (size_t)r0 * p->N, p->C + (size_t)r0 * p->N, (size_t)n * p->N * sizeof(float));
    __atomic_add_fetch(&p->calls, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&p->rows, n, __ATOMIC_RELAXED);
}

/* Both ways rows_fn runs: inside the GEMM tasks (a task owns whole rows) and as a second pass
 * (small M: tasks split the columns). */
static void test_amx_rows_fn(void **state) {
    (void)state;
    if (!ragd_amx_available()) skip();
    ragd_pool *pool = ragd_pool_create(2);
    const int shapes[2][3] = {{45, 512, 64}, {300, 64, 96}};
    for (int s = 0; s < 2; s++) {
        const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *A = malloc((size_t)M * K * sizeof(float)),
              *W = malloc((size_t)N * K * sizeof(float));
        float *C = malloc((size_t)M * N * sizeof(float)),
              *C2 = malloc((size_t)M * N * sizeof(float));
        float *copy = calloc((size_t)M * N, sizeof(float));
        for (int i = 0; i < M * K; i++) A[i] = (float)((i * 37) % 101) / 101.0f - 0.5f;
        for (int i = 0; i < N * K; i++) W[i] = (float)((i * 53) % 89) / 89.0f - 0.5f;
        ragd_amx_weight w;
        assert_int_equal(ragd_amx_pack(W, N, K, &w), 0);
        void *scratch = aligned_alloc(64, (ragd_amx_scratch_bytes(M, K) + 63) / 64 * 64);
        ragd_amx_gemm(pool, M, A, K, &w, C, N, scratch);
        rows_probe pr = {.C = C2, .copy = copy, .N = N};
        ragd_amx_gemm_ex(pool, M, A, K, NULL, &w, NULL, 0, C2, N, NULL, probe_rows, &pr, scratch);
        assert_int_equal(pr.rows, M);
        assert_int_equal(pr.calls, (M + 31) / 32);
        assert_true(max_diff(copy, C, (size_t)M * N) == 0);
        ragd_amx_free(&w);
        free(scratch), free(A), free(W), free(C), free(C2), free(copy);
    }
    ragd_pool_destroy(pool);
}

/* AMX bf16 GEMM == a double-precision GEMM of the bf16-rounded inputs (ragged M). */
static void test_amx_gemm(void **state) {
    (void)state;
    if (!ragd_amx_available()) {
        print_message("no AMX on this CPU: the bf16 path must refuse\n");
        ragd_amx_weight w;
        float W[32 * 32] = {0};
        assert_int_equal(ragd_amx_pack(W, 32, 32, &w), 0); /* packing is portable */
        ragd_amx_free(&w);
        return;
    }
    /* M 45: one ragged row group; M 200 x K 2048: several groups and column slices */
    for (int big = 1; big >= 0; big--) {
        const int M = big ? 200 : 45, N = big ? 128 : 96, K = big ? 2048 : 160;
        float *A = malloc((size_t)M * K * sizeof(float)),
              *W = malloc((size_t)N * K * sizeof(float));
        float *C = malloc((size_t)M * N * sizeof(float));
        uint32_t s = 7;
        for (int i = 0; i < M * K; i++) {
            s = s * 1664525u + 1013904223u;
            A[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
        }
        for (int i = 0; i < N * K; i++) {
            s = s * 1664525u + 1013904223u;
            W[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
        }
        ragd_amx_weight w;
        assert_int_equal(ragd_amx_pack(W, N, K, &w), 0);
        assert_int_equal(ragd_amx_pack(W, N, 48, &(ragd_amx_weight){0}), -1);
        void *scratch = aligned_alloc(64, (ragd_amx_scratch_bytes(M, K) + 63) / 64 * 64);
        ragd_pool *pool = ragd_pool_create(2);
        ragd_amx_weight sub = ragd_amx_rows(&w, 32, 64);
        for (int pass = 0; pass < 2; pass++) {
            const ragd_amx_weight *ww = pass ? &sub : &w;
            const int n_off = pass ? 32 : 0, nn = pass ? 64 : N;
            ragd_amx_gemm(pool, M, A, K, ww, C, nn, scratch);
            double worst = 0;
            for (int i = 0; i < M; i++)
                for (int j = 0; j < nn; j++) {
                    double ref = 0;
                    for (int k = 0; k < K; k++)
                        ref += (double)ragd_bf16_to_f32(ragd_f32_to_bf16(A[i * K + k])) *
                               ragd_bf16_to_f32(ragd_f32_to_bf16(W[(j + n_off) * K + k]));
                    worst = fmax(worst, fabs(ref - C[i * nn + j]));
                }
            print_message("amx gemm max abs error %.3g\n", worst);
            assert_true(worst < 1e-4);
        }
        /* epilogue: + bias, GELU, f32 and bf16 outputs; bf16 A input gives the same result */
        float *bias = malloc((size_t)N * sizeof(float)),
              *C2 = malloc((size_t)M * N * sizeof(float));
        const int Mp = (M + 31) / 32 * 32;
        uint16_t *Cb = malloc((size_t)Mp * N * sizeof(uint16_t));
        uint16_t *Ab = malloc((size_t)Mp * K * sizeof(uint16_t));
        for (int j = 0; j < N; j++) bias[j] = 0.01f * (float)(j % 13) - 0.05f;
        for (int i = 0; i < Mp * K; i++) Ab[i] = i < M * K ? ragd_f32_to_bf16(A[i]) : 0x7fc0;
        ragd_amx_gemm(pool, M, A, K, &w, C, N, scratch);
        for (int i = 0; i < M; i++) ragd_bias_gelu(C + (size_t)i * N, bias, (size_t)N);
        ragd_amx_gemm_ex(pool, M, A, K, NULL, &w, bias, true, C2, N, NULL, NULL, NULL, scratch);
        assert_true(max_diff(C, C2, (size_t)M * N) <= 1e-6);
        ragd_amx_gemm_ex(pool, M, NULL, 0, Ab, &w, bias, true, NULL, 0, Cb, NULL, NULL, scratch);
        for (int i = 0; i < Mp; i++)
            for (int j = 0; j < N; j++) {
                uint16_t want = i < M ? ragd_f32_to_bf16(C[(size_t)i * N + j]) : 0;
                assert_int_equal(Cb[(size_t)i * N + j], want);
            }
        /* RAGD_AMX_ACC: C += A . W^T (+ bias), the ragged bottom block included */
        float *C3 = malloc((size_t)M * N * sizeof(float)),
              *C0 = malloc((size_t)M * N * sizeof(float));
        for (int i = 0; i < M * N; i++) C0[i] = C3[i] = 0.5f - 0.01f * (float)(i % 37);
        ragd_amx_gemm(pool, M, A, K, &w, C, N, scratch);
        ragd_amx_gemm_ex(pool, M, A, K, NULL, &w, bias, RAGD_AMX_ACC, C3, N, NULL, NULL, NULL,
                         scratch);
        for (int i = 0; i < M * N; i++) C0[i] += C[i] + bias[i % N];
        assert_true(max_diff(C0, C3, (size_t)M * N) <= 1e-5);
        ragd_amx_gemm_ex(pool, M, A, K, NULL, &w, NULL, RAGD_AMX_ACC, C3, N, NULL, NULL, NULL,
                         scratch);
        for (int i = 0; i < M * N; i++) C0[i] += C[i];
        assert_true(max_diff(C0, C3, (size_t)M * N) <= 4e-5); /* |C| ~ 10 here: float rounding */
        free(C3);
        free(C0);
        free(bias);
        free(C2);
        free(Cb);
        free(Ab);
        ragd_pool_destroy(pool);
        ragd_amx_free(&w);
        free(scratch);
        free(A);
        free(W);
        free(C);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernels),
        cmocka_unit_test(test_attention_head),
        cmocka_unit_test(test_attention_head_bf16),
        cmocka_unit_test(test_amx_gemm),
        cmocka_unit_test(test_amx_rows_fn),
        cmocka_unit_test(test_golden_one_at_a_time),
        cmocka_unit_test(test_golden_packed_batch),
        cmocka_unit_test(test_bf16_mode),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
