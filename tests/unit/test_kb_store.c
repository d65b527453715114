/* Knowledge base through the library API: ingest of every format, idempotent re-ingest,
 * changed-file replacement, chunk de-duplication, batched == one-at-a-time search, bad
 * input leaves nothing behind, model mixing is refused, term statistics, /v1/search. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kb/analyzer.h"
#include "kb/kb.h"
#include "kb/kb_embed.h"
#include "kb/search_api.h"
#include "model/dtype.h"
#include "testutil.h"

typedef struct {
    char *dir, *db;
    ragd_pool *pool;
    ragd_kb *kb;
    ragd_kb_embedder *emb;
    const char *dtype; /* vector dtype for ingest (NULL: default) */
} fx;

static void put(const char *dir, const char *name, const char *text, size_t len) {
    ragd_buf p = {0};
    ragd_buf_printf(&p, "%s/%s", dir, name);
    FILE *f = fopen(p.data, "wb");
    assert_non_null(f);
    fwrite(text, 1, len, f);
    fclose(f);
    ragd_buf_free(&p);
}
#define PUT(dir, name, text) put(dir, name, text, strlen(text))

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    f->dir = tu_tmpdir();
    char p[1024];
    snprintf(p, sizeof p, "%s/kb.db", f->dir);
    f->db = strdup(p);
    snprintf(p, sizeof p, "%s/docs", f->dir);
    mkdir(p, 0755);
    f->pool = ragd_pool_create(2);
    ragd_kb_opts o = {.path = f->db, .pool = f->pool};
    assert_int_equal(ragd_kb_open(&o, &f->kb, NULL), 0);
    assert_int_equal(ragd_kb_hash_embedder_create(64, &f->emb, NULL), 0);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    ragd_kb_embedder_close(f->emb);
    ragd_kb_close(f->kb);
    ragd_pool_destroy(f->pool);
    tu_rmtree(f->dir);
    free(f->dir);
    free(f->db);
    free(f);
    return 0;
}

static char *docs_dir(fx *f) {
    static char p[1024];
    snprintf(p, sizeof p, "%s/docs", f->dir);
    return p;
}

static ragd_kb_ingest_stats ingest(fx *f, const char *index, int with_emb, int chunk_tokens) {
    ragd_kb_ingest_opts o = {index,        with_emb ? f->emb : NULL,
                             chunk_tokens, chunk_tokens ? 4 : 0,
                             "body",       8,
                             NULL,         NULL,
                             f->dtype};
    ragd_kb_ingest_stats st;
    ragd_err err = {0};
    const char *paths[] = {docs_dir(f)};
    int rc = ragd_kb_ingest(f->kb, paths, 1, &o, &st, &err);
    if (rc) print_message("ingest: %s\n", err.msg);
    assert_int_equal(rc, 0);
    return st;
}

static void check_consistent(fx *f) {
    ragd_buf rep = {0};
    size_t problems = 99;
    ragd_store *st = ragd_kb_store(f->kb);
    assert_int_equal(st->ops->check(st, &rep, &problems, NULL), 0);
    if (problems) print_message("%s", rep.data);
    assert_int_equal(problems, 0);
    ragd_buf_free(&rep);
}

static ragd_store_index index_info(fx *f, const char *name) {
    ragd_store_index *ix = NULL;
    size_t n = 0;
    assert_int_equal(ragd_kb_list(f->kb, &ix, &n, NULL), 0);
    ragd_store_index r = {0};
    for (size_t i = 0; i < n; i++)
        if (!strcmp(ix[i].name, name)) r = ix[i];
    free(ix);
    return r;
}

static void write_corpus(fx *f) {
    char *d = docs_dir(f);
    PUT(d, "a.txt", "中医认为人参大补元气。人参可以复脉固脱，补脾益肺。\n生津养血，安神益智。");
    PUT(d, "b.md", "# 黄芪\n黄芪补气升阳，固表止汗，利水消肿。用于气虚乏力，食少便溏。");
    PUT(d, "c.jsonl",
        "{\"id\":\"h1\",\"title\":\"当归\",\"text\":\"当归补血活血，调经止痛，润肠通便。\","
        "\"source\":\"本草\"}\n"
        "\n"
        "{\"id\":\"h2\",\"title\":\"甘草\",\"text\":\"甘草补脾益气，清热解毒，祛痰止咳。\"}\n"
        "{\"id\":\"h3\",\"title\":\"重复\",\"text\":\"当归补血活血，调经止痛，润肠通便。\"}\n");
    PUT(d, "d.csv",
        "id,title,body,extra\n"
        "r1,枸杞,\"枸杞子滋补肝肾，益精明目。\",x\n"
        "r2,\"菊花, 白\",\"菊花散风清热，平肝明目，\"\"清热解毒\"\"。\",y\n");
    PUT(d, "ignored.bin", "\x01\x02");
}

static void test_ingest_idempotent_and_dedupe(void **state) {
    fx *f = *state;
    write_corpus(f);
    ragd_kb_ingest_stats st = ingest(f, "herbs", 1, 0);
    assert_int_equal(st.files, 4); /* .bin skipped when walking a directory */
    assert_int_equal(st.files_ingested, 4);
    assert_int_equal(st.docs, 1 + 1 + 3 + 2);
    ragd_store_index ix = index_info(f, "herbs");
    assert_int_equal(ix.n_docs, 7);
    assert_int_equal(ix.n_chunks, 6); /* h1 and h3 share one chunk */
    assert_int_equal(ix.n_vectors, 6);
    assert_string_equal(ix.embed_model, "hash:64");
    check_consistent(f);
    /* unchanged: nothing happens */
    st = ingest(f, "herbs", 1, 0);
    assert_int_equal(st.files_unchanged, 4);
    assert_int_equal(st.files_ingested, 0);
    assert_int_equal(st.chunks_embedded, 0);
    ragd_store_index ix2 = index_info(f, "herbs");
    assert_int_equal(ix2.n_chunks, 6);
    assert_int_equal(ix2.generation, ix.generation);
    /* metadata and title survive */
    const char *idx[] = {"herbs"};
    ragd_kb_search_opts so = {.indexes = idx, .n_indexes = 1, .k = 3, .mode = RAGD_KB_BM25};
    const char *q[] = {"菊花清热"};
    ragd_kb_results r;
    assert_int_equal(ragd_kb_search(f->kb, NULL, q, 1, &so, &r, NULL), 0);
    assert_true(r.n_hits[0] >= 1);
    assert_string_equal(r.hits[0][0].title, "菊花, 白");
    assert_string_equal(r.hits[0][0].ext_id, "r2");
    assert_non_null(strstr(r.hits[0][0].metadata, "\"extra\":\"y\""));
    assert_non_null(strstr(r.hits[0][0].text, "\"清热解毒\""));
    ragd_kb_results_free(&r);
}

static void test_changed_file_replaced(void **state) {
    fx *f = *state;
    write_corpus(f);
    ingest(f, "herbs", 1, 12);
    ragd_store_index before = index_info(f, "herbs");
    /* change one document of the jsonl and drop another */
    PUT(docs_dir(f), "c.jsonl",
        "{\"id\":\"h1\",\"title\":\"当归\",\"text\":\"当归补血活血，调经止痛，润肠通便。\"}\n"
        "{\"id\":\"h4\",\"title\":\"丹参\",\"text\":\"丹参活血祛瘀，通经止痛，清心除烦。\"}\n");
    ragd_kb_ingest_stats st = ingest(f, "herbs", 1, 12);
    assert_int_equal(st.files_ingested, 1);
    assert_int_equal(st.files_unchanged, 3);
    ragd_store_index after = index_info(f, "herbs");
    assert_int_equal(after.n_docs, before.n_docs - 1);
    check_consistent(f);
    /* old text is gone from BM25, new text is found */
    const char *idx[] = {"herbs"};
    ragd_kb_search_opts so = {.indexes = idx, .n_indexes = 1, .k = 5, .mode = RAGD_KB_BM25};
    const char *q[] = {"甘草祛痰", "丹参清心除烦"};
    ragd_kb_results r;
    assert_int_equal(ragd_kb_search(f->kb, NULL, q, 2, &so, &r, NULL), 0);
    for (size_t j = 0; j < r.n_hits[0]; j++) assert_null(strstr(r.hits[0][j].text, "甘草"));
    assert_true(r.n_hits[1] >= 1);
    assert_string_equal(r.hits[1][0].ext_id, "h4");
    ragd_kb_results_free(&r);
    /* delete a document, then a whole file */
    char src[1200];
    char real[1024];
    assert_non_null(realpath(docs_dir(f), real));
    snprintf(src, sizeof src, "%s/c.jsonl#h4", real);
    size_t nd = 0;
    assert_int_equal(ragd_kb_delete_doc(f->kb, "herbs", src, &nd, NULL), 0);
    assert_int_equal(nd, 1);
    snprintf(src, sizeof src, "%s/d.csv", real);
    assert_int_equal(ragd_kb_delete_doc(f->kb, "herbs", src, &nd, NULL), 0);
    assert_int_equal(nd, 2);
    check_consistent(f);
    assert_int_equal(index_info(f, "herbs").n_docs, after.n_docs - 3);
    /* the deleted file comes back on the next ingest */
    st = ingest(f, "herbs", 1, 12);
    assert_int_equal(st.files_ingested, 2);
    check_consistent(f);
    assert_int_equal(ragd_kb_delete_index(f->kb, "herbs", NULL), 0);
    assert_int_equal(index_info(f, "herbs").id, 0);
    check_consistent(f);
}

static void batched_equals_single(fx *f) {
    write_corpus(f);
    ingest(f, "herbs", 1, 10);
    ingest(f, "other", 1, 0);
    const char *idx[] = {"herbs", "other"};
    const char *qs[] = {"补气", "清热解毒", "补气", "明目", "活血止痛", "清热解毒", "补气", "x"};
    size_t nq = sizeof qs / sizeof qs[0];
    for (int mode = 0; mode < 3; mode++)
        for (int fusion = 0; fusion < 2; fusion++) {
            ragd_kb_search_opts so = {.indexes = idx,
                                      .n_indexes = 2,
                                      .k = 4,
                                      .mode = (ragd_kb_mode)mode,
                                      .fusion = (ragd_kb_fusion)fusion,
                                      .vector_weight = 0.5,
                                      .vec_algo = RAGD_KB_VEC_EXACT};
            ragd_kb_results all;
            assert_int_equal(ragd_kb_search(f->kb, f->emb, qs, nq, &so, &all, NULL), 0);
            assert_int_equal(all.n_distinct, 5);
            for (size_t i = 0; i < nq; i++) {
                ragd_kb_results one;
                assert_int_equal(ragd_kb_search(f->kb, f->emb, &qs[i], 1, &so, &one, NULL), 0);
                assert_int_equal(one.n_hits[0], all.n_hits[i]);
                for (size_t j = 0; j < one.n_hits[0]; j++) {
                    assert_int_equal(one.hits[0][j].chunk_id, all.hits[i][j].chunk_id);
                    assert_string_equal(one.hits[0][j].index, all.hits[i][j].index);
                    assert_true(one.hits[0][j].score == all.hits[i][j].score);
                    assert_int_equal(one.hits[0][j].bm25_rank, all.hits[i][j].bm25_rank);
                    assert_int_equal(one.hits[0][j].vector_rank, all.hits[i][j].vector_rank);
                }
                ragd_kb_results_free(&one);
            }
            if (mode == RAGD_KB_HYBRID && all.n_hits[0]) {
                /* hybrid hits carry both ranks where both methods found them */
                int both = 0;
                for (size_t j = 0; j < all.n_hits[0]; j++)
                    both |= all.hits[0][j].bm25_rank && all.hits[0][j].vector_rank;
                assert_true(both);
            }
            ragd_kb_results_free(&all);
        }
    /* HNSW (forced) on this tiny index finds the same top hit as exact search */
    ragd_kb_search_opts so = {.indexes = idx,
                              .n_indexes = 1,
                              .k = 3,
                              .mode = RAGD_KB_VECTOR,
                              .vec_algo = RAGD_KB_VEC_HNSW};
    ragd_kb_results a, b;
    assert_int_equal(ragd_kb_search(f->kb, f->emb, qs, 2, &so, &a, NULL), 0);
    so.vec_algo = RAGD_KB_VEC_EXACT;
    assert_int_equal(ragd_kb_search(f->kb, f->emb, qs, 2, &so, &b, NULL), 0);
    assert_int_equal(a.hits[0][0].chunk_id, b.hits[0][0].chunk_id);
    assert_int_equal(a.hits[1][0].chunk_id, b.hits[1][0].chunk_id);
    ragd_kb_results_free(&a);
    ragd_kb_results_free(&b);
}

static void test_batched_equals_single(void **state) {
    batched_equals_single(*state);
}

/* the same with f16 vectors: exact search on halves, HNSW over halves */
static void test_batched_equals_single_f16(void **state) {
    fx *f = *state;
    f->dtype = "f16";
    batched_equals_single(f);
    assert_int_equal(index_info(f, "herbs").vec_dtype, RAGD_DT_F16);
}

/* f16 indexes: dtype recorded, scores are those of the f16-rounded vectors, the other dtype
 * is refused with a clear error, an unspecified dtype keeps the index's */
static void test_f16_index(void **state) {
    fx *f = *state;
    write_corpus(f);
    f->dtype = "f16";
    ingest(f, "h16", 1, 0);
    f->dtype = NULL;
    ingest(f, "h32", 1, 0);
    ragd_store_index a = index_info(f, "h16"), b = index_info(f, "h32");
    assert_int_equal(a.vec_dtype, RAGD_DT_F16);
    assert_int_equal(b.vec_dtype, RAGD_DT_F32);
    assert_int_equal(a.n_vectors, b.n_vectors);
    check_consistent(f);
    /* the top vector hit's score is the dot product with the f16-rounded chunk vector */
    const char *q[] = {"清热解毒"};
    const char *ix[] = {"h16"};
    ragd_kb_search_opts so = {.indexes = ix,
                              .n_indexes = 1,
                              .k = 3,
                              .mode = RAGD_KB_VECTOR,
                              .vec_algo = RAGD_KB_VEC_EXACT};
    ragd_kb_results r;
    assert_int_equal(ragd_kb_search(f->kb, f->emb, q, 1, &so, &r, NULL), 0);
    assert_true(r.n_hits[0] > 0);
    float qv[64], cv[64];
    size_t ql = strlen(q[0]), cl = strlen(r.hits[0][0].text);
    const char *ct = r.hits[0][0].text;
    assert_int_equal(f->emb->embed(f->emb->ctx, q, &ql, 1, qv, NULL), 0);
    assert_int_equal(f->emb->embed(f->emb->ctx, &ct, &cl, 1, cv, NULL), 0);
    double ref = 0;
    for (int i = 0; i < 64; i++) ref += (double)qv[i] * ragd_f16_to_f32(ragd_f32_to_f16(cv[i]));
    assert_true(fabs(ref - r.hits[0][0].vector_score) < 1e-5);
    ragd_kb_results_free(&r);
    /* build and persist the f16 HNSW graph now, so the re-ingest below syncs it */
    so.vec_algo = RAGD_KB_VEC_HNSW;
    assert_int_equal(ragd_kb_search(f->kb, f->emb, q, 1, &so, &r, NULL), 0);
    ragd_kb_results_free(&r);
    /* changed file re-ingested with the other dtype: refused, nothing written */
    PUT(docs_dir(f), "a.txt", "人参大补元气，复脉固脱。");
    ragd_kb_ingest_opts o = {"h16", f->emb, 0, 0, "body", 8, NULL, NULL, "f32"};
    ragd_kb_ingest_stats st;
    ragd_err err = {0};
    const char *paths[] = {docs_dir(f)};
    assert_int_equal(ragd_kb_ingest(f->kb, paths, 1, &o, &st, &err), RAGD_EINVAL);
    assert_non_null(strstr(err.msg, "stores its vectors as f16"));
    assert_int_equal(index_info(f, "h16").n_chunks, a.n_chunks);
    o.vector_dtype = "f8";
    assert_int_equal(ragd_kb_ingest(f->kb, paths, 1, &o, &st, &err), RAGD_EINVAL);
    /* no dtype given: the index keeps f16 */
    o.vector_dtype = NULL;
    assert_int_equal(ragd_kb_ingest(f->kb, paths, 1, &o, &st, &err), 0);
    assert_int_equal(st.files_ingested, 1);
    assert_int_equal(index_info(f, "h16").vec_dtype, RAGD_DT_F16);
    check_consistent(f);
    /* the persisted f16 graph, brought up to date, finds the new chunk as exact search does */
    const char *q3[] = {"人参大补元气，复脉固脱。"};
    ragd_kb_results h, e;
    assert_int_equal(ragd_kb_search(f->kb, f->emb, q3, 1, &so, &h, NULL), 0);
    so.vec_algo = RAGD_KB_VEC_EXACT;
    assert_int_equal(ragd_kb_search(f->kb, f->emb, q3, 1, &so, &e, NULL), 0);
    assert_true(h.n_hits[0] > 0 && e.n_hits[0] > 0);
    assert_int_equal(h.hits[0][0].chunk_id, e.hits[0][0].chunk_id);
    assert_true(h.hits[0][0].vector_score == e.hits[0][0].vector_score);
    ragd_kb_results_free(&h);
    ragd_kb_results_free(&e);
}

static void test_bad_input(void **state) {
    fx *f = *state;
    char *d = docs_dir(f);
    PUT(d, "good.txt", "好的文档。");
    put(d, "bad.txt", "前半部分\xff\xfe后半部分", strlen("前半部分\xff\xfe后半部分"));
    PUT(d, "empty.txt", "  \n\n ");
    PUT(d, "badjson.jsonl", "{\"text\":\"一\"}\n{not json}\n");
    PUT(d, "notext.jsonl", "{\"title\":\"no text\"}\n");
    PUT(d, "badcsv.csv", "id,text\n1,\"unterminated\n");
    /* a 10 MB single line */
    size_t big = 10u << 20;
    char *s = malloc(big);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < big; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        s[i] = (char)('a' + (int)(x % 26));
    }
    for (size_t i = 7; i < big; i += 8) s[i] = ' ';
    put(d, "big.txt", s, big);
    free(s);
    char missing[1100];
    snprintf(missing, sizeof missing, "%s/does-not-exist.txt", d);
    char unsupported[1100];
    snprintf(unsupported, sizeof unsupported, "%s/x.pdf", d);
    PUT(d, "x.pdf", "%PDF");
    const char *paths[] = {d, missing, unsupported};
    ragd_kb_ingest_opts o = {"docs", NULL, 512, 32, "text", 0, NULL, NULL, NULL};
    ragd_kb_ingest_stats st;
    ragd_err err = {0};
    assert_int_equal(ragd_kb_ingest(f->kb, paths, 3, &o, &st, &err), 0);
    /* bad, badjson, notext, badcsv, missing, x.pdf fail; good, big and empty go in */
    assert_int_equal(st.files_failed, 6);
    assert_int_equal(st.files_ingested, 3);
    assert_int_equal(st.files_empty, 1);
    check_consistent(f);
    ragd_store_index ix = index_info(f, "docs");
    assert_int_equal(ix.n_docs, 2);  /* good.txt and big.txt */
    assert_true(ix.n_chunks > 2000); /* 10 MB in <= 512-token chunks */
    /* nothing from the failed files is searchable */
    const char *idx[] = {"docs"};
    ragd_kb_search_opts so = {.indexes = idx, .n_indexes = 1, .k = 5, .mode = RAGD_KB_BM25};
    const char *q[] = {"后半部分", "前半部分"};
    ragd_kb_results r;
    assert_int_equal(ragd_kb_search(f->kb, NULL, q, 2, &so, &r, NULL), 0);
    assert_int_equal(r.n_hits[0], 0);
    assert_int_equal(r.n_hits[1], 0);
    ragd_kb_results_free(&r);
    /* invalid UTF-8 in a query, unknown index, vector mode without vectors */
    const char *badq[] = {"\xff"};
    assert_int_equal(ragd_kb_search(f->kb, NULL, badq, 1, &so, &r, NULL), RAGD_EINVAL);
    const char *noidx[] = {"nope"};
    so.indexes = noidx;
    assert_int_equal(ragd_kb_search(f->kb, NULL, q, 1, &so, &r, NULL), RAGD_ENOTFOUND);
    so.indexes = idx;
    so.mode = RAGD_KB_VECTOR;
    assert_int_equal(ragd_kb_search(f->kb, f->emb, q, 1, &so, &r, &err), RAGD_EINVAL);
    /* hybrid on a BM25-only index degrades to BM25 */
    so.mode = RAGD_KB_HYBRID;
    const char *q2[] = {"好的文档"};
    assert_int_equal(ragd_kb_search(f->kb, f->emb, q2, 1, &so, &r, NULL), 0);
    assert_int_equal(r.n_hits[0], 1);
    ragd_kb_results_free(&r);
    /* mixing embedding models in one index is refused */
    o.emb = f->emb;
    assert_int_equal(ragd_kb_ingest(f->kb, paths, 1, &o, &st, &err), RAGD_EINVAL);
    assert_non_null(strstr(err.msg, "embedded with"));
    check_consistent(f);
}

/* BM25 common terms: with bm25_max_df 0.5, a term in every chunk leaves the MATCH when a
 * rarer term remains, stays when it is the only kind; the default keeps every term */
static void test_bm25_common_terms(void **state) {
    fx *f = *state;
    ragd_buf b = {0};
    for (int i = 0; i < 30; i++)
        ragd_buf_printf(&b, "{\"id\":\"d%d\",\"text\":\"中医第%d篇。\"}\n", i, i);
    ragd_buf_puts(&b, "{\"id\":\"hq\",\"text\":\"中医说黄芪补气。\"}\n");
    put(docs_dir(f), "c.jsonl", b.data, b.len);
    ragd_buf_free(&b);
    ingest(f, "tcm", 0, 0);
    const char *ix[] = {"tcm"}, *q1[] = {"中医 黄芪"}, *q2[] = {"中医"};
    ragd_kb_search_opts so = {.indexes = ix, .n_indexes = 1, .k = 5, .mode = RAGD_KB_BM25};
    for (int prune = 0; prune < 2; prune++) {
        ragd_kb *kb;
        ragd_kb_opts o = {.path = f->db, .bm25_max_df = prune ? 0.5 : 0};
        assert_int_equal(ragd_kb_open(&o, &kb, NULL), 0);
        ragd_kb_results r;
        assert_int_equal(ragd_kb_search(kb, NULL, q1, 1, &so, &r, NULL), 0);
        assert_int_equal(r.n_hits[0], prune ? 1 : 5);
        assert_string_equal(r.hits[0][0].ext_id, "hq"); /* best either way */
        ragd_kb_results_free(&r);
        assert_int_equal(ragd_kb_search(kb, NULL, q2, 1, &so, &r, NULL), 0);
        assert_int_equal(r.n_hits[0], 5);
        ragd_kb_results_free(&r);
        ragd_kb_close(kb);
    }
}

static void test_term_stats_and_api(void **state) {
    fx *f = *state;
    write_corpus(f);
    ingest(f, "herbs", 0, 0);
    const char *terms[] = {"补血", "明目", "不存在"};
    int64_t df[3], n = 0;
    assert_int_equal(ragd_kb_term_stats(f->kb, "herbs", terms, 3, df, &n, NULL), 0);
    assert_int_equal(n, 6);
    assert_int_equal(df[0], 1); /* the shared 当归 chunk counts once */
    assert_int_equal(df[1], 2);
    assert_int_equal(df[2], 0);

    ragd_buf out = {0};
    int status = 0;
    const char *ok = "{\"indexes\":[\"herbs\"],\"queries\":[\"明目\",\"补血\",\"明目\"],\"k\":2,"
                     "\"mode\":\"bm25\"}";
    assert_int_equal(ragd_kb_search_api_handle(f->kb, NULL, ok, strlen(ok), &out, &status), 0);
    assert_int_equal(status, 200);
    cJSON *j = cJSON_Parse(out.data);
    assert_non_null(j);
    assert_int_equal(cJSON_GetObjectItem(j, "distinct_queries")->valueint, 2);
    cJSON *data = cJSON_GetObjectItem(j, "data");
    assert_int_equal(cJSON_GetArraySize(data), 3);
    cJSON *r0 = cJSON_GetObjectItem(cJSON_GetArrayItem(data, 0), "results");
    cJSON *r2 = cJSON_GetObjectItem(cJSON_GetArrayItem(data, 2), "results");
    assert_int_equal(cJSON_GetArraySize(r0), 2);
    char *a = cJSON_PrintUnformatted(r0), *b = cJSON_PrintUnformatted(r2);
    assert_string_equal(a, b);
    free(a);
    free(b);
    cJSON *first = cJSON_GetArrayItem(r0, 0);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(first, "ranks"), "bm25")->valueint, 1);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(first, "ranks"), "vector")));
    cJSON_Delete(j);

    struct {
        const char *body;
        int status;
        const char *param;
    } bad[] = {
        {"not json", 400, NULL},
        {"{\"query\":\"x\"}", 400, "indexes"},
        {"{\"indexes\":[\"herbs\"]}", 400, "query"},
        {"{\"indexes\":[\"herbs\"],\"query\":\"x\",\"k\":0}", 400, "k"},
        {"{\"indexes\":[\"herbs\"],\"query\":\"x\",\"mode\":\"magic\"}", 400, "mode"},
        {"{\"indexes\":[\"herbs\"],\"query\":\"x\",\"queries\":[\"y\"]}", 400, "queries"},
        {"{\"indexes\":[7],\"query\":\"x\"}", 400, "indexes"},
        {"{\"indexes\":[\"nope\"],\"query\":\"x\"}", 404, "indexes"},
        {"{\"indexes\":[\"herbs\"],\"query\":\"x\",\"mode\":\"vector\"}", 400, NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(
            ragd_kb_search_api_handle(f->kb, NULL, bad[i].body, strlen(bad[i].body), &out, &status),
            0);
        assert_int_equal(status, bad[i].status);
        j = cJSON_Parse(out.data);
        cJSON *e = cJSON_GetObjectItem(j, "error");
        assert_non_null(e);
        assert_true(cJSON_IsString(cJSON_GetObjectItem(e, "message")));
        assert_string_equal(cJSON_GetObjectItem(e, "type")->valuestring, "invalid_request_error");
        cJSON *p = cJSON_GetObjectItem(e, "param");
        if (bad[i].param) assert_string_equal(p->valuestring, bad[i].param);
        cJSON_Delete(j);
    }
    ragd_buf_free(&out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ingest_idempotent_and_dedupe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changed_file_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batched_equals_single, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batched_equals_single_f16, setup, teardown),
        cmocka_unit_test_setup_teardown(test_f16_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bm25_common_terms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_term_stats_and_api, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
