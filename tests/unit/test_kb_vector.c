/* Vector search: exact BLAS top-k against a brute-force reference, HNSW recall@10 against
 * exact search on clustered synthetic vectors, HNSW persistence and incremental sync; f16:
 * exact search against a brute-force reference on the same f16-rounded vectors (SIMD and
 * portable kernels, one query and batches), f16 vs f32 top-10 overlap, HNSW over f16. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kb/vecsearch.h"
#include "model/dtype.h"
#include "testutil.h"

static uint64_t rng_state = 12345;
static double urand(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}
static double nrand(void) {
    double u = urand() + 1e-12, v = urand();
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

static void normalize(float *v, int d) {
    double s = 0;
    for (int i = 0; i < d; i++) s += (double)v[i] * v[i];
    float inv = (float)(1 / sqrt(s));
    for (int i = 0; i < d; i++) v[i] *= inv;
}

/* n vectors in n_clusters clusters, L2-normalised: centre ~ N(0, I_d), plus a displacement
 * in the cluster's own random r-dimensional subspace (norm ~1), plus isotropic noise of
 * sigma per coordinate. Embeddings look like this (clustered, low intrinsic dimension);
 * with r = d the data is isotropic noise around centres, on which every HNSW (hnswlib
 * included) needs a much larger ef for the same recall. */
static float *clustered_r(size_t n, int d, int n_clusters, int r, double sigma) {
    float *c = malloc((size_t)n_clusters * d * sizeof *c);
    float *basis = malloc((size_t)n_clusters * r * d * sizeof *basis);
    float *v = malloc(n * d * sizeof *v);
    for (size_t i = 0; i < (size_t)n_clusters * d; i++) c[i] = (float)nrand();
    for (size_t i = 0; i < (size_t)n_clusters * r * d; i++) basis[i] = (float)(nrand() / sqrt(r));
    for (size_t i = 0; i < n; i++) {
        int k = (int)(urand() * n_clusters);
        float *x = v + i * d;
        for (int j = 0; j < d; j++) x[j] = c[k * d + j] + (float)(sigma * nrand());
        for (int t = 0; t < r; t++) {
            float z = (float)nrand();
            const float *bv = basis + ((size_t)k * r + t) * d;
            for (int j = 0; j < d; j++) x[j] += z * bv[j];
        }
        normalize(x, d);
    }
    free(c);
    free(basis);
    return v;
}

static float *clustered(size_t n, int d, int n_clusters, double sigma) {
    return clustered_r(n, d, n_clusters, 0, sigma);
}

static int sanitized(void) {
    return getenv("RAGD_SANITIZED") != NULL;
}

static void test_exact_matches_bruteforce(void **state) {
    (void)state;
    const size_t n = 3000, m = 7;
    const int d = 48, k = 10;
    float *base = clustered(n, d, 20, 0.3), *q = clustered(m, d, 5, 0.5);
    int64_t idx[7 * 10];
    float sc[7 * 10];
    ragd_pool *pool = ragd_pool_create(2);
    for (int single = 0; single < 2; single++) {
        size_t mm = single ? 1 : m; /* sgemv path and sgemm path */
        assert_int_equal(ragd_vec_exact_topk(base, n, d, q, mm, k, pool, idx, sc, NULL), 0);
        for (size_t qi = 0; qi < mm; qi++) {
            /* reference: double-precision dot products, full sort by selection */
            double *ref = malloc(n * sizeof *ref);
            for (size_t i = 0; i < n; i++) {
                double s = 0;
                for (int j = 0; j < d; j++) s += (double)base[i * d + j] * q[qi * d + j];
                ref[i] = s;
            }
            for (int r = 0; r < k; r++) {
                size_t best = 0;
                for (size_t i = 1; i < n; i++)
                    if (ref[i] > ref[best]) best = i;
                assert_true(fabs(ref[best] - sc[qi * k + r]) < 1e-4);
                /* same element, or an exact tie within float precision */
                if ((size_t)idx[qi * k + r] != best)
                    assert_true(fabs(ref[idx[qi * k + r]] - ref[best]) < 1e-5);
                ref[idx[qi * k + r]] = -1e30;
            }
            free(ref);
        }
    }
    /* k larger than n: the rest is -1 */
    int64_t idx2[5];
    float sc2[5];
    assert_int_equal(ragd_vec_exact_topk(base, 3, d, q, 1, 5, pool, idx2, sc2, NULL), 0);
    assert_true(idx2[0] >= 0 && idx2[2] >= 0);
    assert_int_equal(idx2[3], -1);
    assert_int_equal(idx2[4], -1);
    ragd_pool_destroy(pool);
    free(base);
    free(q);
}

static double recall_vs_exact(ragd_hnsw *h, const float *base, const int64_t *labels, size_t n,
                              int d, const float *q, size_t m, int ef, ragd_pool *pool) {
    const int k = 10;
    int64_t *ei = malloc(m * k * sizeof *ei);
    float *es = malloc(m * k * sizeof *es);
    assert_int_equal(ragd_vec_exact_topk(base, n, d, q, m, k, pool, ei, es, NULL), 0);
    size_t hit = 0;
    for (size_t i = 0; i < m; i++) {
        int64_t hl[10];
        float hs[10];
        size_t nh = 0;
        assert_int_equal(ragd_hnsw_search(h, q + i * d, k, ef, hl, hs, &nh), 0);
        assert_int_equal(nh, k);
        for (int a = 0; a < k; a++)
            for (int b = 0; b < k; b++)
                if (hl[a] == labels[ei[i * k + b]]) {
                    hit++;
                    break;
                }
        for (int a = 1; a < k; a++) assert_true(hs[a - 1] >= hs[a]);
    }
    free(ei);
    free(es);
    return (double)hit / (double)(m * k);
}

static void test_hnsw_recall(void **state) {
    (void)state;
    size_t n = sanitized() ? 3000 : 20000;
    const int d = 64;
    const size_t m = 200;
    /* base and queries from one draw so queries fall in the same clusters */
    float *all = clustered_r(n + m, d, 100, 16, 0.15);
    float *base = all, *q = all + n * d;
    int64_t *labels = malloc(n * sizeof *labels);
    for (size_t i = 0; i < n; i++) labels[i] = (int64_t)(1000 + 3 * i);
    ragd_pool *pool = ragd_pool_create(2);
    ragd_hnsw *h;
    ragd_hnsw_params p = {16, 100, 7, 0};
    assert_int_equal(ragd_hnsw_create(d, &p, &h, NULL), 0);
    /* built incrementally: two batches */
    assert_int_equal(ragd_hnsw_add_batch(h, base, labels, n / 2, pool, NULL), 0);
    assert_int_equal(
        ragd_hnsw_add_batch(h, base + (n / 2) * d, labels + n / 2, n - n / 2, pool, NULL), 0);
    assert_int_equal(ragd_hnsw_size(h), n);
    double r = recall_vs_exact(h, base, labels, n, d, q, m, 64, pool);
    print_message("HNSW n=%zu recall@10 = %.4f (ef 64)\n", n, r);
    assert_true(r >= 0.95);

    /* save / load gives the same answers */
    ragd_buf b = {0};
    assert_int_equal(ragd_hnsw_save(h, &b), 0);
    ragd_hnsw *h2;
    assert_int_equal(ragd_hnsw_load(b.data, b.len, &h2, NULL), 0);
    for (size_t i = 0; i < 20; i++) {
        int64_t l1[10], l2[10];
        float s1[10], s2[10];
        size_t n1, n2;
        ragd_hnsw_search(h, q + i * d, 10, 64, l1, s1, &n1);
        ragd_hnsw_search(h2, q + i * d, 10, 64, l2, s2, &n2);
        assert_int_equal(n1, n2);
        assert_memory_equal(l1, l2, n1 * sizeof *l1);
    }
    /* corrupt blobs are rejected, never crash */
    ragd_hnsw *bad = NULL;
    assert_int_equal(ragd_hnsw_load(b.data, b.len / 2, &bad, NULL), RAGD_EFORMAT);
    ((int32_t *)(b.data + b.len - 8))[0] = 0x7fffffff;
    int rc = ragd_hnsw_load(b.data, b.len, &bad, NULL);
    if (rc == RAGD_OK) ragd_hnsw_destroy(bad); /* the poked word may be padding-free data */
    ragd_buf_free(&b);

    /* sync: drop every other label, add a new one; deleted labels never come back */
    size_t keep = 0;
    int64_t *live = malloc((n / 2 + 2) * sizeof *live);
    for (size_t i = 0; i < n; i += 2) live[keep++] = labels[i];
    live[keep++] = labels[n - 1] + 1; /* new, sorted last */
    size_t *miss = NULL, nm = 0;
    assert_int_equal(ragd_hnsw_sync(h2, live, keep, &miss, &nm), 0);
    assert_int_equal(nm, 1);
    assert_int_equal(miss[0], keep - 1);
    assert_int_equal(ragd_hnsw_add(h2, q, live[keep - 1], NULL), 0);
    int64_t l[10];
    float s[10];
    size_t nn;
    assert_int_equal(ragd_hnsw_search(h2, q, 10, 64, l, s, &nn), 0);
    assert_int_equal(l[0], live[keep - 1]); /* the query itself */
    for (size_t i = 0; i < nn; i++) assert_true((l[i] - 1000) % 6 == 0 || l[i] == live[keep - 1]);
    free(miss);
    free(live);
    ragd_hnsw_destroy(h2);
    ragd_hnsw_destroy(h);
    ragd_pool_destroy(pool);
    free(labels);
    free(all);
}

/* f16 exact search = brute force (double precision) over the same f16-rounded vectors;
 * dim 50 leaves a tail after the SIMD blocks; 70 queries cross the 64-query block */
static void test_f16_exact_matches_bruteforce(void **state) {
    (void)state;
    const size_t n = 2000, m = 70;
    const int d = 50, k = 10;
    float *base = clustered(n, d, 20, 0.3), *q = clustered(m, d, 5, 0.5);
    uint16_t *b16 = malloc(n * d * sizeof *b16);
    ragd_vec_to_f16(b16, base, n * d);
    for (size_t i = 0; i < n * d; i++) assert_int_equal(b16[i], ragd_f32_to_f16(base[i]));
    float *back = malloc(n * d * sizeof *back);
    ragd_vec_from_f16(back, b16, n * d);
    for (size_t i = 0; i < n * d; i++) assert_true(back[i] == ragd_f16_to_f32(b16[i]));
    int64_t *idx = malloc(m * k * sizeof *idx), *idx1 = malloc(k * sizeof *idx1);
    float *sc = malloc(m * k * sizeof *sc), *sc1 = malloc(k * sizeof *sc1);
    double *ref = malloc(n * sizeof *ref);
    ragd_pool *pool = ragd_pool_create(2);
    for (int portable = 0; portable < 2; portable++) {
        ragd_vec_set_portable(portable);
        for (int batch = 0; batch < 3; batch++) {
            size_t mm = batch == 0 ? 1 : batch == 1 ? 3 : m; /* direct and widened paths */
            assert_int_equal(ragd_vec_exact_topk_f16(b16, n, d, q, mm, k, pool, idx, sc, NULL), 0);
            for (size_t qi = 0; qi < mm; qi++) {
                for (size_t i = 0; i < n; i++) {
                    double s = 0;
                    for (int j = 0; j < d; j++) s += (double)back[i * d + j] * q[qi * d + j];
                    ref[i] = s;
                }
                for (int r = 0; r < k; r++) {
                    size_t best = 0;
                    for (size_t i = 1; i < n; i++)
                        if (ref[i] > ref[best]) best = i;
                    assert_true(fabs(ref[best] - sc[qi * k + r]) < 1e-4);
                    if ((size_t)idx[qi * k + r] != best)
                        assert_true(fabs(ref[idx[qi * k + r]] - ref[best]) < 1e-5);
                    ref[idx[qi * k + r]] = -1e30;
                }
                /* a query alone gets bit-identical scores and the same order */
                assert_int_equal(
                    ragd_vec_exact_topk_f16(b16, n, d, q + qi * d, 1, k, NULL, idx1, sc1, NULL), 0);
                assert_memory_equal(idx1, idx + qi * k, k * sizeof *idx1);
                assert_memory_equal(sc1, sc + qi * k, k * sizeof *sc1);
                /* ragd_vec_dot_f16 is the same arithmetic */
                assert_true(ragd_vec_dot_f16(q + qi * d, b16 + idx1[0] * d, d) == sc1[0]);
            }
        }
    }
    ragd_vec_set_portable(0);
    /* k larger than n: the rest is -1 */
    assert_int_equal(ragd_vec_exact_topk_f16(b16, 3, d, q, 1, 5, pool, idx, sc, NULL), 0);
    assert_true(idx[0] >= 0 && idx[2] >= 0);
    assert_int_equal(idx[3], -1);
    assert_int_equal(idx[4], -1);
    ragd_pool_destroy(pool);
    free(ref);
    free(idx);
    free(idx1);
    free(sc);
    free(sc1);
    free(back);
    free(b16);
    free(base);
    free(q);
}

/* f16 storage keeps the top-10 of f32 search on clustered data; HNSW over f16 vectors keeps
 * its recall and survives save / load */
static void test_f16_vs_f32_and_hnsw(void **state) {
    (void)state;
    size_t n = sanitized() ? 2000 : 10000;
    const int d = 64, k = 10;
    const size_t m = 100;
    float *all = clustered_r(n + m, d, 100, 16, 0.15);
    float *base = all, *q = all + n * d;
    uint16_t *b16 = malloc(n * d * sizeof *b16);
    ragd_vec_to_f16(b16, base, n * d);
    int64_t *e32 = malloc(m * k * sizeof *e32), *e16 = malloc(m * k * sizeof *e16);
    float *s32 = malloc(m * k * sizeof *s32), *s16 = malloc(m * k * sizeof *s16);
    ragd_pool *pool = ragd_pool_create(2);
    assert_int_equal(ragd_vec_exact_topk(base, n, d, q, m, k, pool, e32, s32, NULL), 0);
    assert_int_equal(ragd_vec_exact_topk_f16(b16, n, d, q, m, k, pool, e16, s16, NULL), 0);
    size_t hit = 0;
    for (size_t i = 0; i < m; i++)
        for (int a = 0; a < k; a++) {
            for (int b = 0; b < k; b++) hit += e16[i * k + a] == e32[i * k + b];
            /* f16 rounding moves a unit-vector score by well under 1e-2 */
            assert_true(fabs(s16[i * k + a] - s32[i * k + a]) < 1e-2);
        }
    double overlap = (double)hit / (double)(m * k);
    print_message("f16 vs f32 exact top-10 overlap = %.4f (n=%zu)\n", overlap, n);
    assert_true(overlap >= 0.95);

    int64_t *labels = malloc(n * sizeof *labels);
    for (size_t i = 0; i < n; i++) labels[i] = (int64_t)i;
    ragd_hnsw *h;
    ragd_hnsw_params p = {16, 100, 7, 1};
    assert_int_equal(ragd_hnsw_create(d, &p, &h, NULL), 0);
    assert_int_equal(ragd_hnsw_add_batch(h, b16, labels, n, pool, NULL), 0);
    assert_true(ragd_hnsw_is_f16(h));
    hit = 0;
    for (size_t i = 0; i < m; i++) {
        int64_t hl[10];
        float hs[10];
        size_t nh = 0;
        assert_int_equal(ragd_hnsw_search(h, q + i * d, k, 64, hl, hs, &nh), 0);
        assert_int_equal(nh, k);
        for (int a = 0; a < k; a++) {
            for (int b = 0; b < k; b++) hit += hl[a] == e16[i * k + b];
            /* distances are computed on the f16 data: the same scores as exact f16 search */
            assert_true(hs[a] == ragd_vec_dot_f16(q + i * d, b16 + hl[a] * d, d));
        }
    }
    double r = (double)hit / (double)(m * k);
    print_message("HNSW f16 n=%zu recall@10 vs exact f16 = %.4f (ef 64)\n", n, r);
    assert_true(r >= 0.95);
    ragd_buf b = {0};
    assert_int_equal(ragd_hnsw_save(h, &b), 0);
    ragd_hnsw *h2;
    assert_int_equal(ragd_hnsw_load(b.data, b.len, &h2, NULL), 0);
    assert_true(ragd_hnsw_is_f16(h2));
    for (size_t i = 0; i < 10; i++) {
        int64_t l1[10], l2[10];
        float x1[10], x2[10];
        size_t n1, n2;
        ragd_hnsw_search(h, q + i * d, 10, 64, l1, x1, &n1);
        ragd_hnsw_search(h2, q + i * d, 10, 64, l2, x2, &n2);
        assert_int_equal(n1, n2);
        assert_memory_equal(l1, l2, n1 * sizeof *l1);
    }
    ragd_hnsw *bad = NULL;
    assert_int_equal(ragd_hnsw_load(b.data, b.len - 100, &bad, NULL), RAGD_EFORMAT);
    ragd_buf_free(&b);
    ragd_hnsw_destroy(h2);
    ragd_hnsw_destroy(h);
    ragd_pool_destroy(pool);
    free(labels);
    free(e32);
    free(e16);
    free(s32);
    free(s16);
    free(b16);
    free(all);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_matches_bruteforce),
        cmocka_unit_test(test_hnsw_recall),
        cmocka_unit_test(test_f16_exact_matches_bruteforce),
        cmocka_unit_test(test_f16_vs_f32_and_hnsw),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
