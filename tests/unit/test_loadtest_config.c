/* Unit tests for loadtest/ configuration (options, YAML, questions, SLO) and the JSON report
 * built from synthetic records. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadtest/loadtest.h"

static char *g_dir;

static char *write_tmp(const char *name, const char *text) {
    char *p = malloc(strlen(g_dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", g_dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return p;
}

static void test_options(void **state) {
    (void)state;
    ragd_lt_config c;
    ragd_lt_config_init(&c);
    ragd_lt_options o = {.cfg = &c};
    ragd_err err = {0};
    assert_int_equal(ragd_lt_option_set(&o, "url", "http://127.0.0.1:1/x", &err), 0);
    assert_int_equal(ragd_lt_option_set(&o, "url", "ftp://x", &err), RAGD_EINVAL);
    assert_non_null(strstr(err.msg, "URL"));
    assert_int_equal(ragd_lt_option_set(&o, "users", "0", &err), RAGD_EINVAL);
    assert_int_equal(ragd_lt_option_set(&o, "users", "12", &err), 0);
    assert_int_equal(c.users, 12);
    assert_int_equal(ragd_lt_option_set(&o, "duration", "1.5m", &err), 0);
    assert_true(c.duration_s == 90 && c.loops == 0);
    assert_int_equal(ragd_lt_option_set(&o, "interval", "250ms", &err), 0);
    assert_true(fabs(c.interval_s - 0.25) < 1e-12);
    assert_int_equal(ragd_lt_option_set(&o, "interval", "abc", &err), RAGD_EINVAL);
    assert_int_equal(ragd_lt_option_set(&o, "header", "no colon", &err), RAGD_EINVAL);
    assert_int_equal(ragd_lt_option_set(&o, "header", "Authorization: Bearer x", &err), 0);
    assert_int_equal(c.n_headers, 1);
    assert_int_equal(ragd_lt_option_set(&o, "api", "grpc", &err), RAGD_EINVAL);
    assert_int_equal(ragd_lt_option_set(&o, "api", "seed", &err), 0);
    assert_int_equal(ragd_lt_option_set(&o, "bogus", "1", &err), RAGD_EINVAL);
    assert_non_null(strstr(err.msg, "bogus"));
    assert_int_equal(ragd_lt_config_finish(&o, &err), 0); /* built-in question */
    assert_int_equal(c.n_questions, 1);
    /* the seed tool's mode/limit */
    assert_int_equal(ragd_lt_option_set(&o, "mode", "count", &err), 0);
    assert_int_equal(ragd_lt_option_set(&o, "limit", "4", &err), 0);
    assert_int_equal(ragd_lt_config_finish(&o, &err), 0);
    assert_true(c.loops == 4 && c.duration_s == 0);
    assert_int_equal(ragd_lt_option_set(&o, "mode", "forever", &err), RAGD_EINVAL);
    /* closed loop needs exactly one of loops/duration; open loop needs a bound */
    c.loops = 0;
    c.duration_s = 0;
    ragd_lt_options_free(&o);
    assert_int_equal(ragd_lt_config_check(&c, &err), RAGD_EINVAL);
    c.rate = 5;
    assert_int_equal(ragd_lt_config_check(&c, &err), RAGD_EINVAL);
    c.requests = 10;
    assert_int_equal(ragd_lt_config_check(&c, &err), 0);
    ragd_lt_options_free(&o);
    ragd_lt_config_free(&c);
}

static void test_yaml(void **state) {
    (void)state;
    char *qs = write_tmp("q.json", "[\"\xe4\xbd\xa0\xe5\xa5\xbd\", \"two\"]");
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "# the seed tool's config\ntarget-url: http://127.0.0.1:9/chat\nnum-queues: 8\n"
             "mode: duration\nlimit: 30\ninterval: 0.5\nnum-users: 77\ndata-filename: %s\n"
             "header:\n  - 'Authorization: Bearer k'\n  - 'X-A: b'\n",
             qs);
    char *y = write_tmp("c.yaml", yaml);
    ragd_lt_config c;
    ragd_lt_config_init(&c);
    ragd_lt_options o = {.cfg = &c};
    ragd_err err = {0};
    assert_int_equal(ragd_lt_load_yaml(&o, y, &err), 0);
    /* the command line overrides the file */
    assert_int_equal(ragd_lt_option_set(&o, "users", "3", &err), 0);
    assert_int_equal(ragd_lt_config_finish(&o, &err), 0);
    assert_string_equal(c.url, "http://127.0.0.1:9/chat");
    assert_int_equal(c.users, 3);
    assert_true(c.duration_s == 30 && c.loops == 0 && c.interval_s == 0.5);
    assert_int_equal(c.num_user_ids, 77);
    assert_int_equal(c.n_questions, 2);
    assert_string_equal(c.questions[0], "\xe4\xbd\xa0\xe5\xa5\xbd");
    assert_int_equal(c.n_headers, 2);
    ragd_lt_options_free(&o);
    ragd_lt_config_free(&c);

    /* malformed YAML, unknown key, bad value, unreadable file, wrong shape */
    const char *bad[] = {"target-url: [unclosed\n", "num-queues: 3\nfrobnicate: 1\n",
                         "num-queues: many\n", "- a\n- b\n", "a:\n  b: c\n"};
    const int codes[] = {RAGD_EFORMAT, RAGD_EINVAL, RAGD_EINVAL, RAGD_EFORMAT, RAGD_EFORMAT};
    for (int i = 0; i < 5; i++) {
        char *p = write_tmp("bad.yaml", bad[i]);
        ragd_lt_config_init(&c);
        o = (ragd_lt_options){.cfg = &c};
        assert_int_equal(ragd_lt_load_yaml(&o, p, &err), codes[i]);
        assert_non_null(strstr(err.msg, "bad.yaml")); /* the message names the file */
        ragd_lt_options_free(&o);
        ragd_lt_config_free(&c);
        free(p);
    }
    ragd_lt_config_init(&c);
    o = (ragd_lt_options){.cfg = &c};
    assert_int_equal(ragd_lt_load_yaml(&o, "/nonexistent/x.yaml", &err), RAGD_EIO);
    ragd_lt_options_free(&o);
    ragd_lt_config_free(&c);
    free(y);
    free(qs);
}

static void test_questions(void **state) {
    (void)state;
    char **q;
    size_t n;
    ragd_err err = {0};
    char *p = write_tmp("q.jsonl", "{\"text\": \"a\"}\n\n{\"question\": \"b\", \"x\": 1}\n");
    assert_int_equal(ragd_lt_load_questions(p, &q, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(q[1], "b");
    for (size_t i = 0; i < n; i++) free(q[i]);
    free(q);
    free(p);
    const char *bad[] = {"[1, 2]", "[\"a\", ", "[]", "{\"nope\": 1}\n", "not json\n"};
    for (int i = 0; i < 5; i++) {
        p = write_tmp("bad.json", bad[i]);
        assert_int_equal(ragd_lt_load_questions(p, &q, &n, &err), RAGD_EFORMAT);
        assert_non_null(strstr(err.msg, "bad.json"));
        free(p);
    }
    assert_int_equal(ragd_lt_load_questions("/nonexistent.json", &q, &n, &err), RAGD_EIO);
    /* the shared CMRC questions file, when present */
    char *shared = tu_shared("data/cmrc2018/questions.json");
    if (tu_exists(shared)) {
        assert_int_equal(ragd_lt_load_questions(shared, &q, &n, &err), 0);
        assert_int_equal(n, 500);
        for (size_t i = 0; i < n; i++) free(q[i]);
        free(q);
    }
    free(shared);
}

static void test_slo(void **state) {
    (void)state;
    ragd_lt_slo s;
    ragd_err err = {0};
    assert_int_equal(ragd_lt_slo_parse("ttft=500ms,tpot=50ms,e2e=2s", &s, &err), 0);
    assert_true(s.any && s.ttft_ms == 500 && s.tpot_ms == 50 && s.e2e_ms == 2000);
    assert_int_equal(ragd_lt_slo_parse("ttft=fast", &s, &err), RAGD_EINVAL);
    assert_int_equal(ragd_lt_slo_parse("latency=5", &s, &err), RAGD_EINVAL);
    assert_int_equal(ragd_lt_slo_parse("ttft=5us", &s, &err), RAGD_EINVAL);
}

/* Synthetic records -> JSON with exactly the documented keys and the right numbers. */
static void test_report_json(void **state) {
    (void)state;
    ragd_lt_config c;
    ragd_lt_config_init(&c);
    c.url = strdup("http://x/");
    c.users = 2;
    ragd_lt_result r = {0};
    r.total_s = 2;
    r.users = 2;
    r.n_records = 4;
    r.records = calloc(4, sizeof *r.records);
    r.user_done = calloc(2, sizeof(long));
    r.user_failed = calloc(2, sizeof(long));
    for (int i = 0; i < 3; i++) {
        ragd_lt_record *x = &r.records[i];
        x->id = (uint64_t)i;
        x->user = i % 2;
        x->ttft_ms = 100 + 100 * i; /* 100, 200, 300 */
        x->n_events = 3;
        x->event_ms = malloc(3 * sizeof(float));
        for (int k = 0; k < 3; k++) x->event_ms[k] = (float)(x->ttft_ms + 10 * k);
        x->e2e_ms = x->ttft_ms + 20;
        x->output_tokens = 3;
        x->prompt_tokens = 5;
        x->http_status = 200;
        r.user_done[x->user]++;
    }
    ragd_lt_record *f = &r.records[3];
    f->id = 3;
    f->user = 1;
    f->ttft_ms = -1;
    f->status = RAGD_LT_ERR_HTTP;
    f->http_status = 503;
    f->prompt_tokens = -1;
    f->error = strdup("HTTP 503: busy");
    r.user_failed[1]++;
    ragd_lt_slo slo;
    ragd_err err = {0};
    assert_int_equal(ragd_lt_slo_parse("ttft=250ms", &slo, &err), 0);
    ragd_buf b = {0};
    assert_int_equal(ragd_lt_report_json(&c, &r, &slo, &b), 0);
    cJSON *j = cJSON_Parse(b.data);
    assert_non_null(j);
    const char *keys[] = {"total_s", "requests", "per_user", "throughput", "ttft_ms", "tpot_ms",
                          "itl_ms",  "e2e_ms",   "errors",   "goodput",    "records"};
    int nkeys = 0;
    for (cJSON *it = j->child; it; it = it->next) nkeys++;
    assert_int_equal(nkeys, 11);
    for (int i = 0; i < 11; i++) assert_non_null(cJSON_GetObjectItem(j, keys[i]));
    cJSON *req = cJSON_GetObjectItem(j, "requests");
    assert_int_equal(cJSON_GetObjectItem(req, "completed")->valueint, 3);
    assert_int_equal(cJSON_GetObjectItem(req, "failed")->valueint, 1);
    cJSON *ttft = cJSON_GetObjectItem(j, "ttft_ms");
    assert_true(fabs(cJSON_GetObjectItem(ttft, "p50")->valuedouble - 200) < 1e-6);
    assert_true(fabs(cJSON_GetObjectItem(ttft, "max")->valuedouble - 300) < 1e-6);
    cJSON *tpot = cJSON_GetObjectItem(j, "tpot_ms"); /* (e2e - ttft) / (3 - 1) = 10 */
    assert_true(fabs(cJSON_GetObjectItem(tpot, "mean")->valuedouble - 10) < 1e-6);
    cJSON *itl = cJSON_GetObjectItem(j, "itl_ms");
    assert_int_equal(cJSON_GetObjectItem(itl, "n")->valueint, 6);
    cJSON *tp = cJSON_GetObjectItem(j, "throughput");
    assert_true(fabs(cJSON_GetObjectItem(tp, "requests_per_s")->valuedouble - 1.5) < 1e-6);
    assert_true(fabs(cJSON_GetObjectItem(tp, "output_tokens_per_s")->valuedouble - 4.5) < 1e-6);
    assert_true(fabs(cJSON_GetObjectItem(tp, "total_tokens_per_s")->valuedouble - 12) < 1e-6);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "errors"), "http_status")->valueint,
                     1);
    cJSON *gp = cJSON_GetObjectItem(j, "goodput");
    assert_int_equal(cJSON_GetObjectItem(gp, "good_requests")->valueint, 2);
    cJSON *pu = cJSON_GetObjectItem(j, "per_user");
    assert_int_equal(cJSON_GetArraySize(pu), 2);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(pu, 1), "failed")->valueint, 1);
    cJSON *recs = cJSON_GetObjectItem(j, "records");
    assert_int_equal(cJSON_GetArraySize(recs), 4);
    cJSON *r3 = cJSON_GetArrayItem(recs, 3);
    assert_string_equal(cJSON_GetObjectItem(r3, "status")->valuestring, "http_status");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(r3, "ttft_ms")));
    cJSON_Delete(j);
    /* text and HTML render */
    ragd_buf_clear(&b);
    assert_int_equal(ragd_lt_report_text(&c, &r, &slo, &b), 0);
    assert_non_null(strstr(b.data, "Queue 0 completed 2 tasks\n"));
    assert_non_null(strstr(b.data, "Queue 1 completed 1 tasks (1 failed)\n"));
    assert_non_null(strstr(b.data, "Total run time: 2.000 seconds\n"));
    assert_non_null(strstr(b.data, "http_status 1 (HTTP 503 x1)"));
    ragd_buf_clear(&b);
    assert_int_equal(ragd_lt_report_html(&c, &r, &slo, &b), 0);
    assert_non_null(strstr(b.data, "<svg"));
    assert_null(strstr(b.data, "src=\"http")); /* self-contained */
    ragd_buf_free(&b);
    ragd_lt_result_free(&r);
    ragd_lt_config_free(&c);
}

static int setup(void **state) {
    (void)state;
    g_dir = tu_tmpdir();
    return 0;
}
static int teardown(void **state) {
    (void)state;
    tu_rmtree(g_dir);
    free(g_dir);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options),     cmocka_unit_test(test_yaml),
        cmocka_unit_test(test_questions),   cmocka_unit_test(test_slo),
        cmocka_unit_test(test_report_json),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
