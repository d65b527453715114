/* bench_kb - knowledge-base benchmarks:
 *   1. vectors: exact query latency p50/p99 on synthetic clustered vectors (n x dim,
 *      L2-normalised) over f32 (BLAS) and f16 (own kernel; --exact-dtype), 50 queries batched
 *      against one at a time, HNSW (f32 or --hnsw-f16 node vectors) build time with progress
 *      on stderr, recall@10 against exact f32 search and latency;
 *   2. kb: ingest throughput (chunks/s) of synthetic Chinese passages (sentences of the
 *      CMRC2018 corpus recombined) with the hash:DIM embedder, then latency p50/p99 of
 *      ragd_kb_search in bm25 / vector-exact / vector-HNSW / hybrid mode, and the gain of one
 *      batched call for 50 queries with 50% duplicates over 50 one-at-a-time calls.
 * usage: bench_kb [--n N] [--dim D] [--queries Q] [--kb-n N] [--no-kb] [--no-vec] [--no-kb-hnsw]
 *                 [--no-hnsw] [--kb-db FILE] [--exact-dtype f32|f16|both] [--hnsw-f16]
 *                 [--kb-dtype f32|f16] [--bm25-max-df X] [--kb-modes bm25,vector_exact,...]
 *                 [--threads T] [--M 16] [--efc 200] [--ef 64]
 * --kb-db FILE keeps the kb benchmark's database in FILE; when FILE already holds the index
 * "bench" the ingest is skipped and the searches run on it (measure search changes at 1M
 * without re-ingesting for ten minutes).
 * Prints one JSON object per measurement line ("bench":...). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kb/kb.h"
#include "kb/kb_embed.h"
#include "kb/vecsearch.h"
#include "util/clock.h"
#include "util/str.h"
#include "util/vec.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static const char *g_modes; /* --kb-modes: kb search modes to run (NULL: all) */
static double urand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}
static double nrand(void) {
    double u = urand() + 1e-12, v = urand();
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

/* the generator of tests/unit/test_kb_vector.c: centres + r-dim cluster subspace + noise */
static float *clustered(size_t n, int d, int k, int r, double sigma) {
    float *c = malloc((size_t)k * d * sizeof *c), *b = malloc((size_t)k * r * d * sizeof *b);
    float *v = malloc(n * (size_t)d * sizeof *v);
    if (!c || !b || !v) abort();
    for (size_t i = 0; i < (size_t)k * d; i++) c[i] = (float)nrand();
    for (size_t i = 0; i < (size_t)k * r * d; i++) b[i] = (float)(nrand() / sqrt(r));
    for (size_t i = 0; i < n; i++) {
        int cl = (int)(urand() * k);
        float *x = v + i * d;
        for (int j = 0; j < d; j++) x[j] = c[(size_t)cl * d + j] + (float)(sigma * nrand());
        for (int t = 0; t < r; t++) {
            float z = (float)nrand();
            const float *bv = b + ((size_t)cl * r + t) * d;
            for (int j = 0; j < d; j++) x[j] += z * bv[j];
        }
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)x[j] * x[j];
        for (int j = 0; j < d; j++) x[j] = (float)(x[j] / sqrt(s));
    }
    free(c);
    free(b);
    return v;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double pct(double *v, size_t n, double p) {
    qsort(v, n, sizeof *v, cmp_d);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

/* exact top-10 over the f32 base, or the f16 copy when base16 is set */
static void topk(const float *base, const uint16_t *base16, size_t n, int dim, const float *q,
                 size_t m, ragd_pool *pool, int64_t *idx, float *sc) {
    int rc = base16 ? ragd_vec_exact_topk_f16(base16, n, dim, q, m, 10, pool, idx, sc, NULL)
                    : ragd_vec_exact_topk(base, n, dim, q, m, 10, pool, idx, sc, NULL);
    if (rc) abort();
}

/* exact search one query at a time (p50/p99) and 50 queries batched vs 50 single calls */
static void bench_exact(const float *base, const uint16_t *base16, size_t n, int dim,
                        const float *q, size_t nq, ragd_pool *pool, int64_t *ei, float *es,
                        const int64_t *ref_idx) {
    const char *dt = base16 ? "f16" : "f32";
    double *lat = malloc(nq * sizeof *lat);
    for (size_t i = 0; i < nq; i++) {
        uint64_t s = ragd_now_ns();
        topk(base, base16, n, dim, q + i * dim, 1, pool, ei + i * 10, es + i * 10);
        lat[i] = (double)(ragd_now_ns() - s) / 1e6;
    }
    double overlap = 1.0;
    if (ref_idx) { /* top-10 overlap with the f32 search */
        size_t hit = 0;
        for (size_t i = 0; i < nq; i++)
            for (int a = 0; a < 10; a++)
                for (int c = 0; c < 10; c++) hit += ei[i * 10 + a] == ref_idx[i * 10 + c];
        overlap = (double)hit / (double)(nq * 10);
    }
    printf("{\"bench\":\"exact_single\",\"dtype\":\"%s\",\"n\":%zu,\"dim\":%d,"
           "\"vectors_mb\":%.0f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"top10_overlap_vs_f32\":%.4f}\n",
           dt, n, dim, (double)n * dim * (base16 ? 2 : 4) / 1e6, pct(lat, nq, 0.5),
           pct(lat, nq, 0.99), overlap);
    size_t b = nq < 50 ? nq : 50;
    int64_t *bi = malloc(b * 10 * sizeof *bi);
    float *bs = malloc(b * 10 * sizeof *bs);
    double best_batch = 1e30, best_single = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        uint64_t s = ragd_now_ns();
        topk(base, base16, n, dim, q, b, pool, bi, bs);
        double tb = (double)(ragd_now_ns() - s) / 1e6;
        s = ragd_now_ns();
        for (size_t i = 0; i < b; i++) topk(base, base16, n, dim, q + i * dim, 1, pool, bi, bs);
        double ts = (double)(ragd_now_ns() - s) / 1e6;
        if (tb < best_batch) best_batch = tb;
        if (ts < best_single) best_single = ts;
    }
    printf("{\"bench\":\"exact_batch\",\"dtype\":\"%s\",\"n\":%zu,\"queries\":%zu,"
           "\"batched_ms\":%.2f,\"one_at_a_time_ms\":%.2f,\"speedup\":%.2f}\n",
           dt, n, b, best_batch, best_single, best_single / best_batch);
    free(bi);
    free(bs);
    free(lat);
}

static void bench_vectors(size_t n, int dim, size_t nq, ragd_pool *pool, int M, int efc, int ef,
                          int hnsw, int hnsw_f16, int exact_dtypes) {
    uint64_t t0 = ragd_now_ns();
    float *all = clustered(n + nq, dim, 1000, 32, 0.02);
    float *base = all, *q = all + n * (size_t)dim;
    fprintf(stderr, "generated %zu x %d in %.1f s\n", n, dim, (double)(ragd_now_ns() - t0) / 1e9);
    double *lat = malloc(nq * sizeof *lat);
    int64_t *ei = malloc(nq * 10 * sizeof *ei);
    float *es = malloc(nq * 10 * sizeof *es);
    uint16_t *base16 = NULL;
    if (exact_dtypes & 2 || hnsw_f16) {
        base16 = malloc(n * (size_t)dim * sizeof *base16);
        if (!base16) abort();
        ragd_vec_to_f16(base16, base, n * (size_t)dim);
    }
    /* f32 first: its top-10 is the reference (also for HNSW recall) */
    bench_exact(base, NULL, n, dim, q, nq, pool, ei, es, NULL);
    if (exact_dtypes & 2) {
        int64_t *fi = malloc(nq * 10 * sizeof *fi);
        float *fs = malloc(nq * 10 * sizeof *fs);
        bench_exact(base, base16, n, dim, q, nq, pool, fi, fs, ei);
        free(fi);
        free(fs);
    }
    if (!hnsw) {
        free(base16);
        free(ei);
        free(es);
        free(lat);
        free(all);
        return;
    }
    /* HNSW */
    ragd_hnsw *h;
    ragd_hnsw_params p = {M, efc, 42, hnsw_f16};
    ragd_hnsw_create(dim, &p, &h, NULL);
    int64_t *labels = malloc(n * sizeof *labels);
    for (size_t i = 0; i < n; i++) labels[i] = (int64_t)i;
    t0 = ragd_now_ns();
    /* inserted in slices (the same incremental algorithm) to report progress */
    size_t slice = n / 20 > 5000 ? n / 20 : 5000;
    for (size_t i0 = 0; i0 < n; i0 += slice) {
        size_t m = n - i0 < slice ? n - i0 : slice;
        const void *src = hnsw_f16 ? (const void *)(base16 + i0 * (size_t)dim)
                                   : (const void *)(base + i0 * (size_t)dim);
        if (ragd_hnsw_add_batch(h, src, labels + i0, m, pool, NULL)) abort();
        double el = (double)(ragd_now_ns() - t0) / 1e9;
        fprintf(stderr, "hnsw build: %zu/%zu vectors, %.0f s elapsed, ~%.0f s left\n", i0 + m, n,
                el, el / (double)(i0 + m) * (double)(n - i0 - m));
    }
    double build_s = (double)(ragd_now_ns() - t0) / 1e9;
    ragd_buf blob = {0};
    ragd_hnsw_save(h, &blob);
    for (int e = ef / 2; e <= ef * 2; e *= 2) {
        size_t hit = 0;
        for (size_t i = 0; i < nq; i++) {
            int64_t hl[10];
            float hs[10];
            size_t nh;
            uint64_t s = ragd_now_ns();
            ragd_hnsw_search(h, q + i * dim, 10, e, hl, hs, &nh);
            lat[i] = (double)(ragd_now_ns() - s) / 1e6;
            for (size_t a = 0; a < nh; a++)
                for (int c = 0; c < 10; c++) hit += hl[a] == ei[i * 10 + c];
        }
        printf("{\"bench\":\"hnsw\",\"dtype\":\"%s\",\"n\":%zu,\"dim\":%d,\"M\":%d,"
               "\"ef_construction\":%d,\"ef_search\":%d,\"build_s\":%.1f,\"threads\":%d,"
               "\"graph_mb\":%.0f,\"recall@10\":%.4f,\"p50_ms\":%.3f,\"p99_ms\":%.3f}\n",
               hnsw_f16 ? "f16" : "f32", n, dim, M, efc, e, build_s, ragd_pool_size(pool),
               (double)blob.len / 1e6, (double)hit / (double)(nq * 10), pct(lat, nq, 0.5),
               pct(lat, nq, 0.99));
        fflush(stdout);
    }
    ragd_buf_free(&blob);
    ragd_hnsw_destroy(h);
    free(labels);
    free(base16);
    free(ei);
    free(es);
    free(lat);
    free(all);
}

/* ---- kb ---- */

typedef RAGD_VEC(char *) strv;

static void load_sentences(strv *sent, strv *questions) {
    char path[4096], *data = NULL;
    size_t len = 0;
    ragd_shared_path(path, sizeof path, "data/cmrc2018/corpus.jsonl");
    if (ragd_read_file(path, &data, &len, NULL)) {
        fprintf(stderr, "bench_kb: %s missing (set RAGD_SHARED)\n", path);
        exit(1);
    }
    /* crude: split the text fields on 。 */
    char *p = data;
    while ((p = strstr(p, "\"text\": \""))) {
        p += 9;
        char *end = strchr(p, '"');
        if (!end) break;
        *end = 0;
        char *s = p;
        for (;;) {
            char *dot = strstr(s, "。");
            size_t n = dot ? (size_t)(dot - s) + 3 : strlen(s);
            if (n > 12) RAGD_VEC_PUSH(sent, strndup(s, n));
            if (!dot) break;
            s = dot + 3;
        }
        p = end + 1;
    }
    free(data);
    ragd_shared_path(path, sizeof path, "data/cmrc2018/queries.jsonl");
    if (ragd_read_file(path, &data, &len, NULL)) exit(1);
    p = data;
    while ((p = strstr(p, "\"text\": \""))) {
        p += 9;
        char *end = strchr(p, '"');
        if (!end) break;
        RAGD_VEC_PUSH(questions, strndup(p, (size_t)(end - p)));
        p = end + 1;
    }
    free(data);
}

/* n passages of 2-5 random corpus sentences -> corpus (jsonl) -> ingest into index "bench" */
static void ingest_synthetic(ragd_kb *kb, const ragd_kb_embedder *emb, const strv *sent,
                             const char *corpus, size_t n, const char *dtype,
                             ragd_kb_ingest_stats *st) {
    FILE *f = fopen(corpus, "w");
    ragd_buf line = {0};
    for (size_t i = 0; i < n; i++) {
        ragd_buf_clear(&line);
        int ns = 2 + (int)(urand() * 4);
        for (int s = 0; s < ns; s++)
            ragd_buf_puts(&line, sent->data[(size_t)(urand() * sent->len)]);
        fprintf(f, "{\"id\":\"p%zu\",\"text\":", i);
        ragd_buf tmp = {0};
        ragd_buf_json_str(&tmp, line.data, line.len);
        fprintf(f, "%s}\n", tmp.data);
        ragd_buf_free(&tmp);
    }
    fclose(f);
    ragd_buf_free(&line);
    const char *paths[] = {corpus};
    ragd_err err = {0};
    ragd_kb_ingest_opts io = {"bench", emb, 0, 0, NULL, 256, NULL, NULL, dtype};
    if (ragd_kb_ingest(kb, paths, 1, &io, st, &err)) {
        fprintf(stderr, "ingest: %s\n", err.msg);
        exit(1);
    }
    printf("{\"bench\":\"ingest\",\"chunks\":%zu,\"embedder\":\"%s\",\"vector_dtype\":\"%s\","
           "\"seconds\":%.1f,\"chunks_per_s\":%.0f}\n",
           st->chunks, emb->model_name, dtype ? dtype : "f32", st->seconds,
           (double)st->chunks / st->seconds);
    fflush(stdout);
}

/* BM25 with common terms left out of the MATCH (--bm25-max-df) against all query terms (a
 * second handle with the default, every term): latency of both and top-10 agreement */
static void bench_bm25_pruning(ragd_kb *kb, const char *db, ragd_pool *pool, const strv *qs,
                               size_t nq, double *lat) {
    ragd_kb *all;
    ragd_kb_opts o = {.path = db, .pool = pool};
    if (ragd_kb_open(&o, &all, NULL)) abort();
    const char *ix[] = {"bench"};
    ragd_kb_search_opts so = {.indexes = ix, .n_indexes = 1, .k = 10, .mode = RAGD_KB_BM25};
    double *lat_all = malloc(nq * sizeof *lat_all);
    size_t same = 0, total = 0;
    for (size_t i = 0; i < nq; i++) {
        const char *q = qs->data[(i * 7919) % qs->len];
        ragd_kb_results a, b;
        uint64_t s = ragd_now_ns();
        if (ragd_kb_search(all, NULL, &q, 1, &so, &a, NULL)) abort();
        lat_all[i] = (double)(ragd_now_ns() - s) / 1e6;
        s = ragd_now_ns();
        if (ragd_kb_search(kb, NULL, &q, 1, &so, &b, NULL)) abort();
        lat[i] = (double)(ragd_now_ns() - s) / 1e6;
        for (size_t x = 0; x < a.n_hits[0]; x++) {
            total++;
            for (size_t y = 0; y < b.n_hits[0]; y++)
                same += a.hits[0][x].chunk_id == b.hits[0][y].chunk_id;
        }
        ragd_kb_results_free(&a);
        ragd_kb_results_free(&b);
    }
    printf("{\"bench\":\"bm25_common_terms\",\"all_terms_p50_ms\":%.3f,\"all_terms_p99_ms\":%.3f,"
           "\"pruned_p50_ms\":%.3f,\"pruned_p99_ms\":%.3f,\"top10_overlap\":%.4f}\n",
           pct(lat_all, nq, 0.5), pct(lat_all, nq, 0.99), pct(lat, nq, 0.5), pct(lat, nq, 0.99),
           total ? (double)same / (double)total : 1.0);
    free(lat_all);
    ragd_kb_close(all);
}

static void bench_kb(size_t n, int dim, size_t nq, ragd_pool *pool, int ef, int kb_hnsw,
                     const char *keep_db, const char *dtype, double bm25_max_df) {
    strv sent = {0}, qs = {0};
    load_sentences(&sent, &qs);
    char dir[] = "/tmp/bench_kb_XXXXXX";
    if (!mkdtemp(dir)) abort();
    char corpus[256], db[4096];
    snprintf(corpus, sizeof corpus, "%s/corpus.jsonl", dir);
    snprintf(db, sizeof db, "%s", keep_db ? keep_db : "");
    if (!keep_db) snprintf(db, sizeof db, "%s/kb.db", dir);
    ragd_kb *kb;
    ragd_kb_opts o = {.path = db,
                      .pool = pool,
                      .hnsw_threshold = (size_t)-1,
                      .hnsw_ef_search = ef,
                      .bm25_max_df = bm25_max_df};
    if (ragd_kb_open(&o, &kb, NULL)) abort();
    ragd_kb_embedder *emb;
    ragd_kb_hash_embedder_create(dim, &emb, NULL);
    ragd_kb_ingest_stats st = {0};
    ragd_err err = {0};
    ragd_store_index have;
    ragd_store *store = ragd_kb_store(kb);
    if (keep_db && store->ops->get_index(store, "bench", &have, NULL) == RAGD_OK) {
        /* --kb-db with an existing index: measure searches on it, no new ingest */
        int64_t df = 0, nd = 0;
        const char *none[] = {"x"};
        ragd_kb_term_stats(kb, "bench", none, 1, &df, &nd, NULL);
        st.chunks = (size_t)nd;
        fprintf(stderr, "bench_kb: reusing %s (%zu chunks)\n", db, st.chunks);
    } else {
        ingest_synthetic(kb, emb, &sent, corpus, n, dtype, &st);
    }
    const char *ix[] = {"bench"};
    double *lat = malloc(nq * sizeof *lat);
    struct {
        const char *name;
        ragd_kb_mode mode;
        ragd_kb_vec_algo algo;
    } modes[] = {{"bm25", RAGD_KB_BM25, RAGD_KB_VEC_EXACT},
                 {"vector_exact", RAGD_KB_VECTOR, RAGD_KB_VEC_EXACT},
                 {"vector_hnsw", RAGD_KB_VECTOR, RAGD_KB_VEC_HNSW},
                 {"hybrid_exact", RAGD_KB_HYBRID, RAGD_KB_VEC_EXACT}};
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        if (!kb_hnsw && modes[m].algo == RAGD_KB_VEC_HNSW) continue;
        if (g_modes && !strstr(g_modes, modes[m].name)) continue;
        ragd_kb_search_opts so = {.indexes = ix,
                                  .n_indexes = 1,
                                  .k = 10,
                                  .mode = modes[m].mode,
                                  .vec_algo = modes[m].algo};
        ragd_kb_results r;
        uint64_t w = ragd_now_ns();
        if (ragd_kb_search(kb, emb, (const char *const *)qs.data, 1, &so, &r, &err)) { /* warm */
            fprintf(stderr, "search: %s\n", err.msg);
            exit(1);
        }
        double warm_s = (double)(ragd_now_ns() - w) / 1e9;
        ragd_kb_results_free(&r);
        for (size_t i = 0; i < nq; i++) {
            const char *q = qs.data[(i * 7919) % qs.len];
            uint64_t s = ragd_now_ns();
            ragd_kb_search(kb, emb, &q, 1, &so, &r, NULL);
            lat[i] = (double)(ragd_now_ns() - s) / 1e6;
            ragd_kb_results_free(&r);
        }
        printf("{\"bench\":\"kb_search\",\"mode\":\"%s\",\"chunks\":%zu,\"first_call_s\":%.2f,"
               "\"p50_ms\":%.3f,\"p99_ms\":%.3f}\n",
               modes[m].name, st.chunks, warm_s, pct(lat, nq, 0.5), pct(lat, nq, 0.99));
        fflush(stdout);
    }
    if (bm25_max_df > 0 && (!g_modes || strstr(g_modes, "bm25")))
        bench_bm25_pruning(kb, db, pool, &qs, nq, lat);
    /* 50 queries, 25 distinct (each twice), batched vs one at a time */
    const char *batch[50];
    for (int i = 0; i < 50; i++) batch[i] = qs.data[((size_t)(i % 25) * 104729) % qs.len];
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        if (!kb_hnsw && modes[m].algo == RAGD_KB_VEC_HNSW) continue;
        if (g_modes && !strstr(g_modes, modes[m].name)) continue;
        ragd_kb_search_opts so = {.indexes = ix,
                                  .n_indexes = 1,
                                  .k = 10,
                                  .mode = modes[m].mode,
                                  .vec_algo = modes[m].algo};
        double tb = 1e30, ts = 1e30;
        for (int rep = 0; rep < 3; rep++) {
            ragd_kb_results r;
            uint64_t s = ragd_now_ns();
            ragd_kb_search(kb, emb, batch, 50, &so, &r, NULL);
            double b = (double)(ragd_now_ns() - s) / 1e6;
            ragd_kb_results_free(&r);
            s = ragd_now_ns();
            for (int i = 0; i < 50; i++) {
                ragd_kb_search(kb, emb, &batch[i], 1, &so, &r, NULL);
                ragd_kb_results_free(&r);
            }
            double t = (double)(ragd_now_ns() - s) / 1e6;
            if (b < tb) tb = b;
            if (t < ts) ts = t;
        }
        printf("{\"bench\":\"kb_batch50_dup50\",\"mode\":\"%s\",\"chunks\":%zu,\"batched_ms\":%.2f,"
               "\"one_at_a_time_ms\":%.2f,\"speedup\":%.2f}\n",
               modes[m].name, st.chunks, tb, ts, ts / tb);
        fflush(stdout);
    }
    free(lat);
    ragd_kb_embedder_close(emb);
    ragd_kb_close(kb);
    if (keep_db) fprintf(stderr, "bench_kb: kept %s\n", db);
    for (size_t i = 0; i < sent.len; i++) free(sent.data[i]);
    for (size_t i = 0; i < qs.len; i++) free(qs.data[i]);
    RAGD_VEC_FREE(&sent);
    RAGD_VEC_FREE(&qs);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
}

int main(int argc, char **argv) {
    size_t n = 100000, nq = 200, kb_n = 100000;
    const char *kb_db = NULL, *kb_dtype = NULL;
    double bm25_max_df = 0;             /* kb default */
    int hnsw_f16 = 0, exact_dtypes = 3; /* bit 1: f32 (always, the reference), bit 2: f16 */
    int dim = 512, threads = 0, M = 16, efc = 200, ef = 64, do_kb = 1, do_vec = 1, kb_hnsw = 1,
        hnsw = 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "0";
        if (!strcmp(a, "--n"))
            n = strtoull(v, NULL, 10), i++;
        else if (!strcmp(a, "--kb-n"))
            kb_n = strtoull(v, NULL, 10), i++;
        else if (!strcmp(a, "--dim"))
            dim = atoi(v), i++;
        else if (!strcmp(a, "--queries"))
            nq = strtoull(v, NULL, 10), i++;
        else if (!strcmp(a, "--threads"))
            threads = atoi(v), i++;
        else if (!strcmp(a, "--M"))
            M = atoi(v), i++;
        else if (!strcmp(a, "--efc"))
            efc = atoi(v), i++;
        else if (!strcmp(a, "--ef"))
            ef = atoi(v), i++;
        else if (!strcmp(a, "--kb-db"))
            kb_db = v, i++;
        else if (!strcmp(a, "--no-kb"))
            do_kb = 0;
        else if (!strcmp(a, "--no-vec"))
            do_vec = 0;
        else if (!strcmp(a, "--no-kb-hnsw"))
            kb_hnsw = 0;
        else if (!strcmp(a, "--no-hnsw"))
            hnsw = kb_hnsw = 0;
        else if (!strcmp(a, "--bm25-max-df"))
            bm25_max_df = atof(v), i++;
        else if (!strcmp(a, "--kb-modes"))
            g_modes = v, i++;
        else if (!strcmp(a, "--hnsw-f16"))
            hnsw_f16 = 1;
        else if (!strcmp(a, "--exact-dtype") &&
                 (!strcmp(v, "f32") || !strcmp(v, "f16") || !strcmp(v, "both")))
            exact_dtypes = !strcmp(v, "f32") ? 1 : 3, i++;
        else if (!strcmp(a, "--kb-dtype") && (!strcmp(v, "f32") || !strcmp(v, "f16")))
            kb_dtype = v, i++;
        else {
            fprintf(stderr,
                    "usage: bench_kb [--n N] [--kb-n N] [--dim D] [--queries Q] "
                    "[--threads T] [--M M] [--efc E] [--ef E] [--no-kb] [--no-vec] "
                    "[--no-kb-hnsw] [--no-hnsw] [--kb-db FILE] [--exact-dtype f32|f16|both] "
                    "[--hnsw-f16] [--kb-dtype f32|f16] [--bm25-max-df X] [--kb-modes LIST]\n");
            return 2;
        }
    }
    if (n < 100 || nq < 10 || dim < 8) return 2;
    ragd_pool *pool = ragd_pool_create(threads);
    printf("{\"bench\":\"machine\",\"threads\":%d,\"cpus\":%ld}\n", ragd_pool_size(pool),
           sysconf(_SC_NPROCESSORS_ONLN));
    if (do_vec) bench_vectors(n, dim, nq, pool, M, efc, ef, hnsw, hnsw_f16, exact_dtypes);
    if (do_kb) bench_kb(kb_n, dim, nq, pool, ef, kb_hnsw, kb_db, kb_dtype, bm25_max_df);
    ragd_pool_destroy(pool);
    return 0;
}
