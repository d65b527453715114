/* test_http.c - the HTTP layer on its own: routing (404/405), bodies and the size limit (413),
 * Bearer auth (401 in OpenAI's error shape), deferred replies answered from another thread,
 * SSE streams written from another thread, client disconnects reported through on_close,
 * and the Prometheus registry. Client: libcurl on loopback. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "http/server.h"
#include "testutil.h"
#include "util/clock.h"
#include "util/metrics.h"
#include "util/str.h"

static ragd_http_server *g_srv;
static int g_port;
static atomic_int g_closed;

static void h_echo(void *ctx, ragd_http_req *req) {
    (void)ctx;
    size_t n;
    const char *b = ragd_http_req_body(req, &n);
    ragd_http_reply(req, 200, "text/plain", b, n);
}

static void *defer_thread(void *arg) {
    ragd_sleep_ns(20 * 1000000);
    ragd_http_deferred_reply(arg, 201, "application/json", "{\"late\":true}", 13);
    return NULL;
}

static void h_defer(void *ctx, ragd_http_req *req) {
    (void)ctx;
    ragd_http_deferred *d = ragd_http_defer(req);
    pthread_t t;
    pthread_create(&t, NULL, defer_thread, d);
    pthread_detach(t);
}

typedef struct stream_job {
    ragd_http_stream *s;
    ragd_http_deferred *d;
    int n;
} stream_job;

static void on_close(void *ctx) {
    (void)ctx;
    atomic_fetch_add(&g_closed, 1);
}

static void *stream_thread(void *arg) {
    stream_job *j = arg;
    if (j->d) { /* lazily started stream */
        ragd_sleep_ns(10 * 1000000);
        j->s = ragd_http_deferred_stream(j->d, NULL);
        ragd_http_stream_on_close(j->s, on_close, NULL);
    }
    for (int i = 0; i < j->n; i++) {
        char ev[64];
        int len = snprintf(ev, sizeof ev, "{\"i\":%d}", i);
        if (ragd_http_stream_sse(j->s, ev, (size_t)len) == RAGD_ECANCELLED) break;
        ragd_sleep_ns(1000000);
    }
    ragd_http_stream_sse(j->s, "[DONE]", 6);
    ragd_http_stream_end(j->s);
    free(j);
    return NULL;
}

static void h_stream(void *ctx, ragd_http_req *req) {
    (void)ctx;
    stream_job *j = calloc(1, sizeof *j);
    const char *n = ragd_http_req_query(req, "n");
    j->n = n ? atoi(n) : 5;
    if (ragd_http_req_query(req, "lazy")) {
        j->d = ragd_http_defer(req);
    } else {
        j->s = ragd_http_reply_stream(req, NULL);
        ragd_http_stream_on_close(j->s, on_close, NULL);
    }
    pthread_t t;
    pthread_create(&t, NULL, stream_thread, j);
    pthread_detach(t);
}

static void h_err(void *ctx, ragd_http_req *req) {
    (void)ctx;
    ragd_http_reply_header(req, "Retry-After", "3");
    ragd_http_reply_error(req, 503, "server_error", "x", NULL, "busy \"now\"");
}

typedef struct resp {
    long code;
    ragd_buf body, headers;
    int abort_after; /* bytes: abort the transfer */
} resp;

static size_t wr(char *p, size_t sz, size_t n, void *ud) {
    resp *r = ud;
    ragd_buf_append(&r->body, p, sz * n);
    if (r->abort_after && r->body.len >= (size_t)r->abort_after) return 0;
    return sz * n;
}

static size_t hd(char *p, size_t sz, size_t n, void *ud) {
    resp *r = ud;
    ragd_buf_append(&r->headers, p, sz * n);
    return sz * n;
}

static void do_req(const char *method, const char *path, const char *body, size_t blen,
                   const char *auth, resp *r) {
    CURL *c = curl_easy_init();
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", g_port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    struct curl_slist *h = NULL;
    if (auth) h = curl_slist_append(h, auth);
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)blen);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, wr);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, hd);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->code);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (!r->body.data) ragd_buf_append(&r->body, "", 0);
}

static void resp_free(resp *r) {
    ragd_buf_free(&r->body);
    ragd_buf_free(&r->headers);
}

static int setup(void **state) {
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    ragd_http_opts o = {0};
    o.port = 0;
    o.max_body = 1000;
    o.api_key = "k3y";
    ragd_err err = {0};
    assert_int_equal(ragd_http_server_create(&o, &g_srv, &err), 0);
    assert_int_equal(ragd_http_route(g_srv, "POST", "/echo", h_echo, NULL, RAGD_HTTP_PUBLIC), 0);
    assert_int_equal(ragd_http_route(g_srv, "POST", "/echo", h_echo, NULL, RAGD_HTTP_PUBLIC),
                     RAGD_EINVAL); /* duplicate */
    assert_int_equal(ragd_http_route(g_srv, "GET", "/defer", h_defer, NULL, RAGD_HTTP_PUBLIC), 0);
    assert_int_equal(ragd_http_route(g_srv, "GET", "/stream", h_stream, NULL, RAGD_HTTP_PUBLIC), 0);
    assert_int_equal(ragd_http_route(g_srv, "GET", "/secret", h_err, NULL, RAGD_HTTP_AUTH), 0);
    assert_int_equal(ragd_http_server_start(g_srv, &err), 0);
    g_port = ragd_http_server_port(g_srv);
    assert_true(g_port > 0);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    ragd_http_server_destroy(g_srv);
    curl_global_cleanup();
    return 0;
}

static void test_routes_and_bodies(void **state) {
    (void)state;
    resp r = {0};
    do_req("POST", "/echo", "hello", 5, NULL, &r);
    assert_int_equal(r.code, 200);
    assert_string_equal(r.body.data, "hello");
    resp_free(&r);
    memset(&r, 0, sizeof r);
    do_req("GET", "/echo", NULL, 0, NULL, &r);
    assert_int_equal(r.code, 405);
    assert_non_null(strstr(r.body.data, "\"type\":\"invalid_request_error\""));
    resp_free(&r);
    memset(&r, 0, sizeof r);
    do_req("GET", "/nope", NULL, 0, NULL, &r);
    assert_int_equal(r.code, 404);
    resp_free(&r);
    memset(&r, 0, sizeof r);
    char big[3000];
    memset(big, 'x', sizeof big);
    do_req("POST", "/echo", big, sizeof big, NULL, &r);
    assert_int_equal(r.code, 413);
    assert_non_null(strstr(r.body.data, "\"code\":\"request_too_large\""));
    resp_free(&r);
    /* the server still works after the 413 */
    memset(&r, 0, sizeof r);
    do_req("POST", "/echo", "again", 5, NULL, &r);
    assert_int_equal(r.code, 200);
    resp_free(&r);
}

static void test_auth_and_errors(void **state) {
    (void)state;
    resp r = {0};
    do_req("GET", "/secret", NULL, 0, NULL, &r);
    assert_int_equal(r.code, 401);
    assert_non_null(strstr(r.body.data, "\"code\":\"invalid_api_key\""));
    resp_free(&r);
    memset(&r, 0, sizeof r);
    do_req("GET", "/secret", NULL, 0, "Authorization: Bearer k3", &r);
    assert_int_equal(r.code, 401);
    resp_free(&r);
    memset(&r, 0, sizeof r);
    do_req("GET", "/secret", NULL, 0, "Authorization: Bearer k3y", &r);
    assert_int_equal(r.code, 503);
    assert_string_equal(r.body.data, "{\"error\":{\"message\":\"busy \\\"now\\\"\",\"type\":"
                                     "\"server_error\",\"param\":\"x\",\"code\":null}}");
    assert_non_null(strstr(r.headers.data, "Retry-After: 3"));
    resp_free(&r);
}

static void test_deferred(void **state) {
    (void)state;
    for (int i = 0; i < 20; i++) {
        resp r = {0};
        do_req("GET", "/defer", NULL, 0, NULL, &r);
        assert_int_equal(r.code, 201);
        assert_string_equal(r.body.data, "{\"late\":true}");
        resp_free(&r);
    }
}

static void test_streams(void **state) {
    (void)state;
    const char *paths[] = {"/stream?n=30", "/stream?n=30&lazy=1"};
    for (int k = 0; k < 2; k++) {
        resp r = {0};
        do_req("GET", paths[k], NULL, 0, NULL, &r);
        assert_int_equal(r.code, 200);
        assert_non_null(strstr(r.headers.data, "text/event-stream"));
        ragd_buf want = {0};
        for (int i = 0; i < 30; i++) ragd_buf_printf(&want, "data: {\"i\":%d}\n\n", i);
        ragd_buf_puts(&want, "data: [DONE]\n\n");
        assert_string_equal(r.body.data, want.data);
        ragd_buf_free(&want);
        resp_free(&r);
    }
    /* a client that goes away mid-stream is reported once */
    int before = atomic_load(&g_closed);
    resp r = {0};
    r.abort_after = 50;
    do_req("GET", "/stream?n=100000", NULL, 0, NULL, &r);
    resp_free(&r);
    for (int i = 0; i < 10000 && atomic_load(&g_closed) == before; i++) ragd_sleep_ns(1000000);
    assert_int_equal(atomic_load(&g_closed), before + 1);
}

static void test_metrics_render(void **state) {
    (void)state;
    ragd_metrics *m = ragd_metrics_create();
    ragd_metric *c = ragd_metrics_counter(m, "x_total", "things", "k=\"a\"");
    ragd_metric *c2 = ragd_metrics_counter(m, "x_total", "things", "k=\"b\"");
    ragd_metric *g = ragd_metrics_gauge(m, "y", "level", NULL);
    double b[] = {0.1, 1};
    ragd_metric *h = ragd_metrics_histogram(m, "z_seconds", "lat", NULL, b, 2);
    assert_ptr_equal(ragd_metrics_counter(m, "x_total", "things", "k=\"a\""), c);
    ragd_metric_inc(c);
    ragd_metric_add(c2, 2.5);
    ragd_metric_set(g, 7);
    ragd_metric_observe(h, 0.05);
    ragd_metric_observe(h, 0.5);
    ragd_metric_observe(h, 5);
    ragd_buf out = {0};
    assert_int_equal(ragd_metrics_render(m, &out), 0);
    assert_string_equal(out.data, "# HELP x_total things\n# TYPE x_total counter\n"
                                  "x_total{k=\"a\"} 1\nx_total{k=\"b\"} 2.5\n"
                                  "# HELP y level\n# TYPE y gauge\ny 7\n"
                                  "# HELP z_seconds lat\n# TYPE z_seconds histogram\n"
                                  "z_seconds_bucket{le=\"0.1\"} 1\nz_seconds_bucket{le=\"1\"} 2\n"
                                  "z_seconds_bucket{le=\"+Inf\"} 3\nz_seconds_sum 5.55\n"
                                  "z_seconds_count 3\n");
    ragd_buf_free(&out);
    ragd_metrics_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes_and_bodies), cmocka_unit_test(test_auth_and_errors),
        cmocka_unit_test(test_deferred),          cmocka_unit_test(test_streams),
        cmocka_unit_test(test_metrics_render),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
