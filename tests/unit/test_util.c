/* Unit tests for util/: arena, vec, buf, UTF-8, JSON escaping, errors, thread pool, clocks. */
#include "testutil.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/arena.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/log.h"
#include "util/str.h"
#include "util/threadpool.h"
#include "util/vec.h"

static void test_arena(void **state) {
    (void)state;
    ragd_arena a;
    ragd_arena_init(&a, 128);
    char *s = ragd_arena_strdup(&a, "hello");
    assert_string_equal(s, "hello");
    for (int i = 0; i < 1000; i++) {
        unsigned char *p = ragd_arena_alloc(&a, (size_t)(i % 300) + 1);
        assert_non_null(p);
        assert_int_equal(((uintptr_t)p) % 16, 0);
        for (int k = 0; k < i % 300 + 1; k++) assert_int_equal(p[k], 0);
        memset(p, 0xAB, (size_t)(i % 300) + 1);
    }
    void *big = ragd_arena_alloc(&a, 1 << 20);
    assert_non_null(big);
    ragd_arena_reset(&a);
    assert_int_equal(a.total, 0);
    assert_non_null(ragd_arena_alloc(&a, 10));
    ragd_arena_free(&a);
}

static void test_vec(void **state) {
    (void)state;
    RAGD_VEC(int) v = {0};
    for (int i = 0; i < 10000; i++) assert_int_equal(RAGD_VEC_PUSH(&v, i * 3), 0);
    assert_int_equal(v.len, 10000);
    for (int i = 0; i < 10000; i++) assert_int_equal(v.data[i], i * 3);
    RAGD_VEC_FREE(&v);
    assert_null(v.data);
    assert_int_equal(v.len, 0);
}

static void test_buf_and_json(void **state) {
    (void)state;
    ragd_buf b = {0};
    ragd_buf_printf(&b, "%d-%s", 42, "x");
    assert_string_equal(b.data, "42-x");
    ragd_buf_clear(&b);
    const char in[] = "a\"b\\c\n\t\x01\xe4\xb8\xad\xff";
    ragd_buf_json_str(&b, in, sizeof in - 1);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\t\\u0001\xe4\xb8\xad\xef\xbf\xbd\"");
    cJSON *j = cJSON_Parse(b.data);
    assert_non_null(j);
    assert_true(cJSON_IsString(j));
    cJSON_Delete(j);
    char *s = ragd_buf_steal(&b);
    assert_null(b.data);
    free(s);
}

static void test_utf8(void **state) {
    (void)state;
    assert_true(ragd_utf8_valid("abc\xe4\xb8\xad", 6));
    assert_false(ragd_utf8_valid("\xe4\xb8", 2));
    assert_false(ragd_utf8_valid("\xc0\x80", 2));     /* overlong */
    assert_false(ragd_utf8_valid("\xed\xa0\x80", 3)); /* surrogate */
    assert_false(ragd_utf8_valid("\xf5\x80\x80\x80", 4));
    assert_int_equal(ragd_utf8_complete_prefix("ab\xe4\xb8", 4), 2);
    assert_int_equal(ragd_utf8_complete_prefix("ab\xe4\xb8\xad", 5), 5);
    assert_int_equal(ragd_utf8_complete_prefix("\xf0\x9f\x98", 3), 0);
    char out[4];
    uint32_t cp;
    for (uint32_t c = 1; c < 0x110000; c += 97) {
        if (c >= 0xD800 && c <= 0xDFFF) continue;
        int n = ragd_utf8_encode(c, out);
        assert_int_equal(ragd_utf8_decode(out, (size_t)n, &cp), n);
        assert_int_equal(cp, c);
    }
}

static void test_err(void **state) {
    (void)state;
    ragd_err e = {0};
    assert_int_equal(ragd_err_set(&e, RAGD_EIO, "cannot open %s", "x"), RAGD_EIO);
    ragd_err_prefix(&e, "loading %d", 3);
    assert_string_equal(e.msg, "loading 3: cannot open x");
    assert_string_equal(ragd_err_name(RAGD_EIO), "EIO");
    assert_int_equal(ragd_err_set(NULL, RAGD_EINVAL, "ignored"), RAGD_EINVAL);
}

static void count_fn(void *ctx, size_t i, int tid) {
    atomic_long *sum = ctx;
    atomic_fetch_add(sum, (long)i + 1);
    (void)tid;
}

static void test_pool(void **state) {
    (void)state;
    ragd_pool *p = ragd_pool_create(3);
    assert_non_null(p);
    assert_int_equal(ragd_pool_size(p), 3);
    for (int r = 0; r < 200; r++) {
        atomic_long sum = 0;
        size_t n = (size_t)(r * 7 % 101);
        ragd_pool_run(p, n, count_fn, &sum);
        assert_int_equal(atomic_load(&sum), (long)(n * (n + 1) / 2));
    }
    ragd_pool_destroy(p);
    atomic_long sum = 0;
    ragd_pool_run(NULL, 10, count_fn, &sum);
    assert_int_equal(atomic_load(&sum), 55);
}

static void test_clock(void **state) {
    (void)state;
    uint64_t t0 = ragd_now_ns();
    ragd_sleep_ns(2000000);
    uint64_t t1 = ragd_now_ns();
    assert_true(t1 - t0 >= 2000000);
    ragd_sleep_until_ns(t1 - 5); /* in the past: returns at once */
    assert_true(ragd_wall_s() > 1700000000);
}

static void test_log_levels(void **state) {
    (void)state;
    assert_int_equal(ragd_log_parse_level("WARN"), RAGD_LOG_WARN);
    assert_int_equal(ragd_log_parse_level("nope"), -1);
    int old = ragd_log_get_level();
    ragd_log_set_level(RAGD_LOG_ERROR);
    LOG_INFO("suppressed");
    ragd_log_set_level(old);
}

static void test_read_file(void **state) {
    (void)state;
    char *dir = tu_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/f.txt", dir);
    ragd_err e = {0};
    assert_int_equal(ragd_write_file(path, "abc", 3, &e), 0);
    char *data;
    size_t n;
    assert_int_equal(ragd_read_file(path, &data, &n, &e), 0);
    assert_int_equal(n, 3);
    assert_string_equal(data, "abc");
    free(data);
    snprintf(path, sizeof path, "%s/missing", dir);
    assert_int_equal(ragd_read_file(path, &data, &n, &e), RAGD_ENOTFOUND);
    assert_non_null(strstr(e.msg, "missing"));
    assert_int_equal(ragd_read_file(dir, &data, &n, &e), RAGD_EIO);
    tu_rmtree(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena),        cmocka_unit_test(test_vec),
        cmocka_unit_test(test_buf_and_json), cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_err),          cmocka_unit_test(test_pool),
        cmocka_unit_test(test_clock),        cmocka_unit_test(test_log_levels),
        cmocka_unit_test(test_read_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
