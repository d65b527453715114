/* safetensors: the shared test models open and validate; corrupt files give clear errors. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/dtype.h"
#include "model/safetensors.h"
#include "util/str.h"

static void test_open_models(void **state) {
    (void)state;
    char *dir = tu_shared("models/qwen2-tiny");
    TU_REQUIRE_SHARED(dir);
    ragd_st *st = NULL;
    ragd_err e = {0};
    assert_int_equal(ragd_st_open_dir(dir, &st, &e), 0);
    const ragd_tensor *t = ragd_st_find(st, "model.embed_tokens.weight");
    assert_non_null(t);
    assert_int_equal(t->dtype, RAGD_DT_BF16);
    assert_int_equal(t->shape[0], 151936);
    assert_int_equal(t->shape[1], 64);
    int64_t shape[2] = {151936, 64};
    assert_int_equal(ragd_st_expect(st, "model.embed_tokens.weight", 2, shape, NULL, &e), 0);
    shape[1] = 65;
    assert_int_equal(ragd_st_expect(st, "model.embed_tokens.weight", 2, shape, NULL, &e),
                     RAGD_EFORMAT);
    assert_non_null(strstr(e.msg, "model.embed_tokens.weight"));
    assert_non_null(strstr(e.msg, "model.safetensors"));
    assert_int_equal(ragd_st_expect(st, "nope.weight", 1, shape, NULL, &e), RAGD_ENOTFOUND);
    assert_non_null(strstr(e.msg, "nope.weight"));
    ragd_st_close(st);
    free(dir);
}

static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static int parse_str(const char *hdr, size_t data_len, ragd_err *e) {
    size_t hl = strlen(hdr);
    unsigned char *buf = calloc(1, 8 + hl + data_len);
    put_u64(buf, hl);
    memcpy(buf + 8, hdr, hl);
    ragd_st *st = ragd_st_new();
    int rc = ragd_st_parse(st, buf, 8 + hl + data_len, "mem", e);
    ragd_st_close(st);
    free(buf);
    return rc;
}

static void test_corrupt_headers(void **state) {
    (void)state;
    ragd_err e = {0};
    assert_int_equal(
        parse_str("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, &e), 0);
    /* offsets past the end */
    assert_int_equal(
        parse_str("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}", 8, &e),
        RAGD_EFORMAT);
    assert_non_null(strstr(e.msg, "'a'"));
    /* size mismatch */
    assert_int_equal(
        parse_str("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, &e),
        RAGD_EFORMAT);
    /* unknown dtype */
    assert_int_equal(
        parse_str("{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, &e),
        RAGD_EUNSUPPORTED);
    /* overlap */
    assert_int_equal(parse_str("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                               8, &e),
                     RAGD_EFORMAT);
    /* not JSON, truncated, negative */
    assert_int_equal(parse_str("{\"a\":", 0, &e), RAGD_EFORMAT);
    assert_int_equal(parse_str("[1,2]", 0, &e), RAGD_EFORMAT);
    assert_int_equal(
        parse_str("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, &e),
        RAGD_EFORMAT);
    /* header length larger than the file */
    unsigned char small[16] = {0};
    put_u64(small, 1000);
    ragd_st *st = ragd_st_new();
    assert_int_equal(ragd_st_parse(st, small, sizeof small, "mem", &e), RAGD_EFORMAT);
    assert_int_equal(ragd_st_parse(st, small, 4, "mem", &e), RAGD_EFORMAT);
    ragd_st_close(st);
}

static void test_sharded_and_missing(void **state) {
    (void)state;
    char *dir = tu_tmpdir();
    char path[4200];
    /* two shards + index */
    const char *h1 = "{\"x\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}";
    const char *h2 = "{\"y\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]}}";
    const char *hs[2] = {h1, h2};
    size_t dl[2] = {4, 2};
    for (int i = 0; i < 2; i++) {
        size_t hl = strlen(hs[i]);
        unsigned char buf[256] = {0};
        put_u64(buf, hl);
        memcpy(buf + 8, hs[i], hl);
        snprintf(path, sizeof path, "%s/model-0000%d-of-00002.safetensors", dir, i + 1);
        FILE *f = fopen(path, "wb");
        fwrite(buf, 1, 8 + hl + dl[i], f);
        fclose(f);
    }
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    const char *idx = "{\"metadata\":{},\"weight_map\":{\"x\":\"model-00001-of-00002.safetensors\","
                      "\"y\":\"model-00002-of-00002.safetensors\"}}";
    ragd_err e = {0};
    assert_int_equal(ragd_write_file(path, idx, strlen(idx), &e), 0);
    ragd_st *st = NULL;
    assert_int_equal(ragd_st_open_dir(dir, &st, &e), 0);
    assert_int_equal(ragd_st_count(st), 2);
    assert_int_equal(ragd_st_find(st, "y")->dtype, RAGD_DT_F16);
    ragd_st_close(st);
    /* a missing shard is named in the error */
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    remove(path);
    assert_int_not_equal(ragd_st_open_dir(dir, &st, &e), 0);
    assert_non_null(strstr(e.msg, "model-00002-of-00002.safetensors"));
    assert_null(st);
    tu_rmtree(dir);
    free(dir);
}

static void test_dtype_conv(void **state) {
    (void)state;
    float vals[] = {0.f, 1.f, -2.5f, 65504.f, 1e-7f, 3.14159f};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        float h = ragd_f16_to_f32(ragd_f32_to_f16(vals[i]));
        float b = ragd_bf16_to_f32(ragd_f32_to_bf16(vals[i]));
        assert_true(h == vals[i] || (vals[i] != 0 && fabsf(h - vals[i]) / fabsf(vals[i]) < 1e-3f) ||
                    fabsf(vals[i]) < 6e-5f);
        assert_true(b == vals[i] || fabsf(b - vals[i]) / fabsf(vals[i]) < 1e-2f);
    }
    assert_int_equal(ragd_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(ragd_f32_to_bf16(1.0f), 0x3f80);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_models),
        cmocka_unit_test(test_corrupt_headers),
        cmocka_unit_test(test_sharded_and_missing),
        cmocka_unit_test(test_dtype_conv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
