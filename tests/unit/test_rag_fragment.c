/* Fragment buffering of the /text-generation stream and the embedded chat page table. */
#include <stdlib.h>
#include <string.h>

#include "rag/fragment.h"
#include "rag/web_assets.h"
#include "testutil.h"

/* Push pieces one by one; record every released fragment (joined with '|'). */
static void run(size_t min_chars, const char *punct, const char *const *pieces, size_t n,
                const char *want) {
    ragd_fragbuf f;
    ragd_err err = {0};
    assert_int_equal(ragd_fragbuf_init(&f, min_chars, punct, &err), RAGD_OK);
    ragd_buf got = {0}, all = {0};
    for (size_t i = 0; i <= n; i++) {
        ragd_buf frag = {0};
        size_t ready = 0;
        if (i < n)
            assert_int_equal(ragd_fragbuf_push(&f, pieces[i], strlen(pieces[i]), &frag, &ready), 0);
        else
            assert_int_equal(ragd_fragbuf_flush(&f, &frag, &ready), 0);
        assert_int_equal(ready, frag.len);
        if (ready) {
            /* a fragment is always whole UTF-8 unless the stream ended mid-character */
            if (i < n) assert_true(ragd_utf8_valid(frag.data, frag.len));
            if (got.len) ragd_buf_putc(&got, '|');
            ragd_buf_append(&got, frag.data, frag.len);
            ragd_buf_append(&all, frag.data, frag.len);
        }
        ragd_buf_free(&frag);
    }
    assert_string_equal(got.data ? got.data : "", want);
    /* concatenation equals the input */
    ragd_buf in = {0};
    for (size_t i = 0; i < n; i++) ragd_buf_puts(&in, pieces[i]);
    assert_int_equal(all.len, in.len);
    if (in.len) assert_memory_equal(all.data, in.data, in.len);
    ragd_buf_free(&in);
    ragd_buf_free(&all);
    ragd_buf_free(&got);
    ragd_fragbuf_free(&f);
}

static void test_min_chars(void **state) {
    (void)state;
    const char *p[] = {"ab", "c", "de", "fgh", "ij", "k"};
    /* 5 characters needed before a release; the rest at flush */
    run(5, "", p, 6, "abcde|fghij|k");
}

static void test_punctuation_releases_early(void **state) {
    (void)state;
    const char *p[] = {"你", "好。", "今天", "天气", "很好", "，我们", "去"};
    /* "你好。" is released at the full stop although it has only 3 characters; "今天天气很"
     * is not 5 characters until "很好" arrives; the comma releases up to itself */
    run(5, NULL, p, 7, "你好。|今天天气很好|，|我们去");
}

static void test_never_splits_utf8(void **state) {
    (void)state;
    /* "中文字符测试" fed one byte at a time */
    const char *text = "中文字符测试";
    size_t n = strlen(text);
    char bytes[32][2];
    const char *p[32];
    for (size_t i = 0; i < n; i++) {
        bytes[i][0] = text[i];
        bytes[i][1] = 0;
        p[i] = bytes[i];
    }
    run(5, "", p, n, "中文字符测|试");
    run(0, "", p, n, "中|文|字|符|测|试");
}

static void test_punct_set_configurable(void **state) {
    (void)state;
    const char *p[] = {"a-b", "-c", "defgh"};
    run(100, "-", p, 3, "a-|b-|cdefgh");
    run(3, "", p, 3, "a-b|-cdefgh");
}

static void test_flush_mid_character(void **state) {
    (void)state;
    const char *p[] = {"ab", "\xe4\xb8"}; /* the stream ends inside 中 */
    run(5, "", p, 2, "ab\xe4\xb8");
}

static void test_bad_punct(void **state) {
    (void)state;
    ragd_fragbuf f;
    ragd_err err = {0};
    assert_int_equal(ragd_fragbuf_init(&f, 5, "\xff", &err), RAGD_EINVAL);
    assert_non_null(strstr(err.msg, "UTF-8"));
    ragd_fragbuf_free(&f);
}

static void test_web_assets(void **state) {
    (void)state;
    const ragd_web_asset *a = ragd_web_asset_find("/");
    assert_non_null(a);
    assert_string_equal(a->path, "/index.html");
    assert_non_null(strstr(a->content_type, "text/html"));
    assert_non_null(strstr((const char *)a->data, "/app.js"));
    assert_int_equal(strlen((const char *)a->data), a->len);
    assert_ptr_equal(ragd_web_asset_find("/?q=1"), a);
    const ragd_web_asset *js = ragd_web_asset_find("/app.js");
    assert_non_null(js);
    assert_non_null(strstr(js->content_type, "javascript"));
    assert_non_null(strstr((const char *)js->data, "/v1/rag/chat"));
    assert_non_null(ragd_web_asset_find("/style.css"));
    assert_null(ragd_web_asset_find("/nope.js"));
    assert_null(ragd_web_asset_find("/app.js/"));
    assert_null(ragd_web_asset_find("app.js"));
    /* no external assets: the page loads nothing from another origin */
    for (const ragd_web_asset *w = ragd_web_assets; w->path; w++) {
        assert_null(strstr((const char *)w->data, "http://"));
        assert_null(strstr((const char *)w->data, "https://"));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_min_chars),
        cmocka_unit_test(test_punctuation_releases_early),
        cmocka_unit_test(test_never_splits_utf8),
        cmocka_unit_test(test_punct_set_configurable),
        cmocka_unit_test(test_flush_mid_character),
        cmocka_unit_test(test_bad_punct),
        cmocka_unit_test(test_web_assets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
