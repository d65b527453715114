/* embed: the engine reproduces the golden bert-tiny vectors (also when a request spans many
 * batches and from token ids), 64 concurrent /v1/embeddings callers get the same vectors as
 * sequential ones and are merged into fewer batches, base64 output decodes to the float
 * output, and bad requests get OpenAI-style 400 errors. */
#include "testutil.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "embed/embed.h"
#include "embed/embed_api.h"
#include "embed/embed_internal.h"
#include "util/clock.h"
#include "util/str.h"
#include "util/threadpool.h"

static ragd_pool *g_pool;

static ragd_embedder *make(int max_batch_tokens) {
    char *dir = tu_shared("models/bert-tiny");
    if (!tu_exists(dir)) {
        free(dir);
        return NULL;
    }
    ragd_embedder_opts o = {.model_dir = dir, .pool = g_pool, .max_batch_tokens = max_batch_tokens};
    ragd_embedder *e = NULL;
    ragd_err err = {0};
    int rc = ragd_embedder_create(&o, &e, &err);
    if (rc) print_message("create: %s\n", err.msg);
    assert_int_equal(rc, 0);
    free(dir);
    return e;
}

static cJSON *golden(void) {
    char *p = tu_shared("golden/bert-tiny_golden.json");
    cJSON *j = tu_load_json(p);
    free(p);
    return j;
}

static double max_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static void check_against_golden(ragd_embedder *e) {
    cJSON *g = golden();
    const cJSON *cases = cJSON_GetObjectItem(g, "cases");
    const int n = cJSON_GetArraySize(cases), dim = ragd_embedder_dim(e);
    assert_int_equal(dim, 64);
    const char **texts = calloc((size_t)n, sizeof *texts);
    float *out = calloc((size_t)n * dim, sizeof(float));
    int *ntok = calloc((size_t)n, sizeof(int));
    uint8_t *tr = calloc((size_t)n, 1);
    for (int i = 0; i < n; i++)
        texts[i] = cJSON_GetObjectItem(cJSON_GetArrayItem(cases, i), "text")->valuestring;
    ragd_err err = {0};
    assert_int_equal(ragd_embedder_embed(e, texts, NULL, (size_t)n, out, ntok, tr, &err), 0);
    double worst = 0;
    for (int i = 0; i < n; i++) {
        const cJSON *c = cJSON_GetArrayItem(cases, i);
        assert_int_equal(ntok[i], cJSON_GetArraySize(cJSON_GetObjectItem(c, "ids")));
        assert_int_equal(tr[i], 0);
        const cJSON *ref = cJSON_GetObjectItem(c, "cls_normalized");
        for (int d = 0; d < dim; d++)
            worst = fmax(worst,
                         fabs(out[(size_t)i * dim + d] - cJSON_GetArrayItem(ref, d)->valuedouble));
    }
    print_message("engine vs golden: max abs diff %.3g\n", worst);
    assert_true(worst <= 1e-5);
    free(texts);
    free(out);
    free(ntok);
    free(tr);
    cJSON_Delete(g);
}

static void test_engine_golden(void **state) {
    (void)state;
    ragd_embedder *e = make(0);
    if (!e) skip();
    assert_int_equal(ragd_embedder_max_tokens(e), 512);
    assert_string_equal(ragd_embedder_model_name(e), "bert-tiny");
    check_against_golden(e);
    ragd_embedder_stats st;
    ragd_embedder_get_stats(e, &st);
    assert_int_equal(st.requests, 1);
    assert_true(st.batches >= 1);
    ragd_embedder_destroy(e);
}

/* A small token budget: the 253 texts (~16k tokens) need dozens of batches. */
static void test_engine_small_batches(void **state) {
    (void)state;
    ragd_embedder *e = make(600);
    if (!e) skip();
    check_against_golden(e);
    ragd_embedder_stats st;
    ragd_embedder_get_stats(e, &st);
    assert_true(st.batches >= 20);
    assert_int_equal(st.sequences, 253);
    ragd_embedder_destroy(e);
}

static void test_engine_ids(void **state) {
    (void)state;
    ragd_embedder *e = make(0);
    if (!e) skip();
    cJSON *g = golden();
    const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(g, "cases"), 30);
    const cJSON *ids = cJSON_GetObjectItem(c, "ids");
    size_t n = (size_t)cJSON_GetArraySize(ids) - 2;
    int32_t *content = malloc(n * sizeof *content);
    for (size_t i = 0; i < n; i++) content[i] = cJSON_GetArrayItem(ids, (int)i + 1)->valueint;
    float a[64], b[64];
    ragd_err err = {0};
    const int32_t *pp = content;
    assert_int_equal(ragd_embedder_embed_ids(e, &pp, &n, 1, a, &err), 0);
    const char *t = cJSON_GetObjectItem(c, "text")->valuestring;
    assert_int_equal(ragd_embedder_embed(e, &t, NULL, 1, b, NULL, NULL, &err), 0);
    assert_true(max_diff(a, b, 64) <= 1e-6);
    content[0] = 99999;
    assert_int_equal(ragd_embedder_embed_ids(e, &pp, &n, 1, a, &err), RAGD_EINVAL);
    assert_non_null(strstr(err.msg, "out of range"));
    free(content);
    cJSON_Delete(g);
    ragd_embedder_destroy(e);
}

/* device cuda: without CUDA in the build or without a GPU a clear error; with a GPU the
 * golden texts embed within bf16 accuracy (cosine >= 0.999) and a packed batch matches one
 * text at a time. */
static void test_devices(void **state) {
    (void)state;
    char *dir = tu_shared("models/bert-tiny");
    TU_REQUIRE_SHARED(dir);
    ragd_embedder_opts o = {.model_dir = dir, .device = "cuda", .pool = g_pool};
    ragd_embedder *e = NULL;
    ragd_err err = {0};
    int rc = ragd_embedder_create(&o, &e, &err);
    if (rc) {
        print_message("cuda: %s\n", err.msg);
        assert_true(rc == RAGD_EUNSUPPORTED || rc == RAGD_EDEVICE);
        assert_non_null(strstr(err.msg, "cuda"));
        assert_null(e);
    } else {
        cJSON *g = golden();
        const cJSON *cases = cJSON_GetObjectItem(g, "cases");
        const int n = cJSON_GetArraySize(cases), dim = ragd_embedder_dim(e);
        const char **texts = calloc((size_t)n, sizeof *texts);
        float *out = calloc((size_t)n * dim, sizeof(float));
        float one[64];
        for (int i = 0; i < n; i++)
            texts[i] = cJSON_GetObjectItem(cJSON_GetArrayItem(cases, i), "text")->valuestring;
        assert_int_equal(ragd_embedder_embed(e, texts, NULL, (size_t)n, out, NULL, NULL, &err), 0);
        double worst_cos = 1, worst_batch = 0;
        for (int i = 0; i < n; i++) {
            const cJSON *ref = cJSON_GetObjectItem(cJSON_GetArrayItem(cases, i), "cls_normalized");
            double dot = 0;
            for (int d = 0; d < dim; d++)
                dot += out[(size_t)i * dim + d] * cJSON_GetArrayItem(ref, d)->valuedouble;
            worst_cos = fmin(worst_cos, dot);
            if (i % 16 == 0) {
                assert_int_equal(ragd_embedder_embed(e, &texts[i], NULL, 1, one, NULL, NULL, &err),
                                 0);
                worst_batch = fmax(worst_batch, max_diff(one, out + (size_t)i * dim, (size_t)dim));
            }
        }
        print_message("cuda vs f32 golden: min cosine %.6f; batch vs single max diff %.3g\n",
                      worst_cos, worst_batch);
        assert_true(worst_cos >= 0.999);
        assert_true(worst_batch <= 2e-3);
        free(texts);
        free(out);
        cJSON_Delete(g);
        ragd_embedder_destroy(e);
    }
    o.device = "tpu";
    assert_int_equal(ragd_embedder_create(&o, &e, &err), RAGD_EINVAL);
    o.device = NULL;
    o.model_dir = "/nonexistent-model";
    assert_int_not_equal(ragd_embedder_create(&o, &e, &err), 0);
    assert_null(e);
    free(dir);
}

/* --- /v1/embeddings ------------------------------------------------------------------ */

static float *parse_vectors(const char *json, int *n_out) {
    cJSON *j = cJSON_Parse(json);
    assert_non_null(j);
    const cJSON *data = cJSON_GetObjectItem(j, "data");
    int n = cJSON_GetArraySize(data);
    float *v = calloc((size_t)n * 64, sizeof(float));
    for (int i = 0; i < n; i++) {
        const cJSON *it = cJSON_GetArrayItem(data, i);
        assert_int_equal(cJSON_GetObjectItem(it, "index")->valueint, i);
        const cJSON *emb = cJSON_GetObjectItem(it, "embedding");
        assert_int_equal(cJSON_GetArraySize(emb), 64);
        for (int d = 0; d < 64; d++) v[i * 64 + d] = (float)cJSON_GetArrayItem(emb, d)->valuedouble;
    }
    cJSON_Delete(j);
    *n_out = n;
    return v;
}

#define N_CALLERS 64

typedef struct caller {
    ragd_embedder *e;
    char body[2048];
    ragd_buf out;
    int status;
} caller;

static void *caller_main(void *arg) {
    caller *c = arg;
    ragd_embed_api_handle(c->e, c->body, strlen(c->body), &c->out, &c->status);
    return NULL;
}

static void make_bodies(caller *cs, ragd_embedder *e) {
    cJSON *g = golden();
    const cJSON *cases = cJSON_GetObjectItem(g, "cases");
    for (int i = 0; i < N_CALLERS; i++) {
        cs[i].e = e;
        ragd_buf b = {0};
        const char *t1 =
            cJSON_GetObjectItem(cJSON_GetArrayItem(cases, 12 + i), "text")->valuestring;
        const char *t2 =
            cJSON_GetObjectItem(cJSON_GetArrayItem(cases, 100 + i), "text")->valuestring;
        if (i % 3 == 0) { /* a single string */
            ragd_buf_puts(&b, "{\"model\":\"x\",\"input\":");
            ragd_buf_json_str(&b, t1, strlen(t1));
            ragd_buf_puts(&b, "}");
        } else { /* two strings */
            ragd_buf_puts(&b, "{\"input\":[");
            ragd_buf_json_str(&b, t1, strlen(t1));
            ragd_buf_puts(&b, ",");
            ragd_buf_json_str(&b, t2, strlen(t2));
            ragd_buf_puts(&b, "]}");
        }
        assert_true(b.len < sizeof cs[i].body);
        memcpy(cs[i].body, b.data, b.len + 1);
        ragd_buf_free(&b);
    }
    cJSON_Delete(g);
}

static void test_api_concurrent(void **state) {
    (void)state;
    ragd_embedder *e = make(0);
    if (!e) skip();
    static caller seq[N_CALLERS], con[N_CALLERS];
    make_bodies(seq, e);
    make_bodies(con, e);
    for (int i = 0; i < N_CALLERS; i++) {
        caller_main(&seq[i]);
        assert_int_equal(seq[i].status, 200);
    }
    ragd_embedder_stats s0, s1;
    /* round 1: worker paused until all 64 are queued -> they must be merged */
    ragd_embedder_get_stats(e, &s0);
    ragd_embedder_pause(e, 1);
    pthread_t th[N_CALLERS];
    for (int i = 0; i < N_CALLERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, caller_main, &con[i]), 0);
    for (;;) {
        ragd_embedder_get_stats(e, &s1);
        if (s1.queued == N_CALLERS) break;
        ragd_sleep_ns(1000000);
    }
    ragd_embedder_pause(e, 0);
    for (int i = 0; i < N_CALLERS; i++) pthread_join(th[i], NULL);
    ragd_embedder_get_stats(e, &s1);
    print_message("64 queued requests -> %llu batches\n",
                  (unsigned long long)(s1.batches - s0.batches));
    assert_int_equal(s1.requests - s0.requests, N_CALLERS);
    assert_true(s1.batches - s0.batches < 8);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N_CALLERS; i++) {
            assert_int_equal(con[i].status, 200);
            int na, nb;
            float *a = parse_vectors(seq[i].out.data, &na);
            float *b = parse_vectors(con[i].out.data, &nb);
            assert_int_equal(na, nb);
            assert_int_equal(na, i % 3 == 0 ? 1 : 2);
            assert_true(max_diff(a, b, (size_t)na * 64) <= 1e-5);
            free(a);
            free(b);
            ragd_buf_free(&con[i].out);
        }
        if (round == 1) break;
        /* round 2: free-running, all started at once */
        for (int i = 0; i < N_CALLERS; i++)
            assert_int_equal(pthread_create(&th[i], NULL, caller_main, &con[i]), 0);
        for (int i = 0; i < N_CALLERS; i++) pthread_join(th[i], NULL);
    }
    for (int i = 0; i < N_CALLERS; i++) ragd_buf_free(&seq[i].out);
    ragd_embedder_destroy(e);
}

static void test_api_shapes(void **state) {
    (void)state;
    ragd_embedder *e = make(0);
    if (!e) skip();
    ragd_buf a = {0}, b = {0}, c = {0};
    int st;
    const char *ba = "{\"input\":\"中医治疗\",\"encoding_format\":\"float\"}";
    assert_int_equal(ragd_embed_api_handle(e, ba, strlen(ba), &a, &st), 0);
    assert_int_equal(st, 200);
    cJSON *j = cJSON_Parse(a.data);
    assert_string_equal(cJSON_GetObjectItem(j, "object")->valuestring, "list");
    assert_string_equal(cJSON_GetObjectItem(j, "model")->valuestring, "bert-tiny");
    const cJSON *u = cJSON_GetObjectItem(j, "usage");
    assert_int_equal(cJSON_GetObjectItem(u, "prompt_tokens")->valueint, 6);
    assert_int_equal(cJSON_GetObjectItem(u, "total_tokens")->valueint, 6);
    cJSON_Delete(j);
    /* base64 decodes to the same floats */
    const char *bb = "{\"input\":[\"中医治疗\"],\"encoding_format\":\"base64\"}";
    assert_int_equal(ragd_embed_api_handle(e, bb, strlen(bb), &b, &st), 0);
    assert_int_equal(st, 200);
    j = cJSON_Parse(b.data);
    const char *s =
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "data"), 0), "embedding")
            ->valuestring;
    assert_int_equal(strlen(s), (64 * 4 + 2) / 3 * 4);
    unsigned char bytes[256];
    size_t nb = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (const char *p = s; *p && *p != '='; p++) {
        const char *tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        acc = (acc << 6) | (uint32_t)(strchr(tbl, *p) - tbl);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            bytes[nb++] = (unsigned char)(acc >> bits);
        }
    }
    assert_int_equal(nb, 256);
    int nf;
    float *fv = parse_vectors(a.data, &nf);
    for (int d = 0; d < 64; d++) {
        uint32_t w = (uint32_t)bytes[4 * d] | (uint32_t)bytes[4 * d + 1] << 8 |
                     (uint32_t)bytes[4 * d + 2] << 16 | (uint32_t)bytes[4 * d + 3] << 24;
        float f;
        memcpy(&f, &w, 4);
        assert_true(f == fv[d]);
    }
    free(fv);
    cJSON_Delete(j);
    /* token arrays: [101? no: content ids] -> same as the text */
    const char *bc = "{\"input\":[[704, 1278, 3780, 4545]]}";
    assert_int_equal(ragd_embed_api_handle(e, bc, strlen(bc), &c, &st), 0);
    assert_int_equal(st, 200);
    float *tv = parse_vectors(c.data, &nf);
    fv = parse_vectors(a.data, &nf);
    assert_true(max_diff(tv, fv, 64) <= 1e-6);
    free(tv);
    free(fv);
    ragd_buf_clear(&c);
    const char *bd = "{\"input\":[704, 1278, 3780, 4545]}";
    assert_int_equal(ragd_embed_api_handle(e, bd, strlen(bd), &c, &st), 0);
    assert_int_equal(st, 200);
    tv = parse_vectors(c.data, &nf);
    assert_int_equal(nf, 1);
    fv = parse_vectors(a.data, &nf);
    assert_true(max_diff(tv, fv, 64) <= 1e-6);
    free(tv);
    free(fv);
    ragd_buf_free(&a);
    ragd_buf_free(&b);
    ragd_buf_free(&c);
    ragd_embedder_destroy(e);
}

static void test_api_bad_input(void **state) {
    (void)state;
    ragd_embedder *e = make(0);
    if (!e) skip();
    ragd_buf many = {0};
    ragd_buf_puts(&many, "{\"input\":[");
    for (int i = 0; i < RAGD_EMBED_API_MAX_INPUTS + 1; i++)
        ragd_buf_puts(&many, i ? ",\"a\"" : "\"a\"");
    ragd_buf_puts(&many, "]}");
    struct {
        const char *body;
        const char *param;
        const char *needle;
    } cases[] = {
        {"", NULL, "JSON"},
        {"{\"input\":", NULL, "JSON"},
        {"[1,2]", NULL, "JSON object"},
        {"{}", "input", "required"},
        {"{\"input\":[]}", "input", "empty"},
        {"{\"input\":\"\"}", "input", "empty"},
        {"{\"input\":[\"a\", 3]}", "input", "input[1]"},
        {"{\"input\":[\"a\", null]}", "input", "input[1]"},
        {"{\"input\":[true]}", "input", "input[0]"},
        {"{\"input\":{\"a\":1}}", "input", "input"},
        {"{\"input\":42}", "input", "input"},
        {"{\"input\":[1, \"a\"]}", "input", "token id"},
        {"{\"input\":[1.5]}", "input", "input[0]"},
        {"{\"input\":[-1]}", "input", "token id"},
        {"{\"input\":[[1],[]]}", "input", "empty"},
        {"{\"input\":[[1], \"a\"]}", "input", "input[1]"},
        {"{\"input\":[21128]}", "input", "out of range"},
        {"{\"input\":\"a\xff\"}", "input", "UTF-8"},
        {"{\"input\":[\"ok\", \"\xc3\"]}", "input", "UTF-8"},
        {"{\"input\":\"a\",\"encoding_format\":\"int8\"}", "encoding_format", "base64"},
        {"{\"input\":\"a\",\"dimensions\":32}", "dimensions", "64"},
        {"{\"input\":\"a\",\"model\":7}", "model", "string"},
        {many.data, "input", "too many"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ragd_buf out = {0};
        int st = 0;
        assert_int_equal(ragd_embed_api_handle(e, cases[i].body, strlen(cases[i].body), &out, &st),
                         0);
        if (st != 400) print_message("case %zu: status %d body %s\n", i, st, out.data);
        assert_int_equal(st, 400);
        cJSON *j = cJSON_Parse(out.data);
        assert_non_null(j);
        const cJSON *er = cJSON_GetObjectItem(j, "error");
        assert_non_null(er);
        assert_string_equal(cJSON_GetObjectItem(er, "type")->valuestring, "invalid_request_error");
        const char *msg = cJSON_GetObjectItem(er, "message")->valuestring;
        if (!strstr(msg, cases[i].needle)) print_message("case %zu: message %s\n", i, msg);
        assert_non_null(strstr(msg, cases[i].needle));
        const cJSON *param = cJSON_GetObjectItem(er, "param");
        if (cases[i].param)
            assert_string_equal(param->valuestring, cases[i].param);
        else
            assert_true(cJSON_IsNull(param));
        assert_true(cJSON_IsNull(cJSON_GetObjectItem(er, "code")));
        cJSON_Delete(j);
        ragd_buf_free(&out);
    }
    ragd_buf_free(&many);
    ragd_embedder_destroy(e);
}

static int setup(void **state) {
    (void)state;
    g_pool = ragd_pool_create(2);
    return g_pool ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    ragd_pool_destroy(g_pool);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_golden), cmocka_unit_test(test_engine_small_batches),
        cmocka_unit_test(test_engine_ids),    cmocka_unit_test(test_devices),
        cmocka_unit_test(test_api_shapes),    cmocka_unit_test(test_api_concurrent),
        cmocka_unit_test(test_api_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
