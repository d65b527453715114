/* wordpiece: the BERT tokenizer reproduces the reference ids of all golden strings (from
 * tokenizer.json and from vocab.txt + tokenizer_config.json), truncates to max_len with the
 * truncation reported, and rejects invalid UTF-8. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/wordpiece.h"
#include "util/str.h"

static int check_golden(const ragd_wordpiece *wp, const cJSON *cases) {
    int bad = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const cJSON *text = cJSON_GetObjectItem(c, "text");
        const cJSON *ref = cJSON_GetObjectItem(c, "ids");
        int32_t *ids = NULL;
        size_t n = 0;
        bool trunc = false;
        ragd_err e = {0};
        assert_int_equal(ragd_wordpiece_encode(wp, text->valuestring, strlen(text->valuestring),
                                               512, &ids, &n, &trunc, &e),
                         0);
        int ok = (int)n == cJSON_GetArraySize(ref);
        for (size_t i = 0; ok && i < n; i++)
            ok = ids[i] == cJSON_GetArrayItem(ref, (int)i)->valueint;
        if (!ok) {
            if (bad < 5) {
                print_message("mismatch for %.80s\n got:", text->valuestring);
                for (size_t i = 0; i < n && i < 40; i++) print_message(" %d", ids[i]);
                print_message("\n");
            }
            bad++;
        }
        free(ids);
    }
    return bad;
}

static void test_golden_tokenizer_json(void **state) {
    (void)state;
    char *dir = tu_shared("models/bert-tiny");
    char *gpath = tu_shared("golden/bert_tokenizer_public.json");
    TU_REQUIRE_SHARED(dir);
    TU_REQUIRE_SHARED(gpath);
    ragd_wordpiece *wp = NULL;
    ragd_err e = {0};
    assert_int_equal(ragd_wordpiece_load(dir, &wp, &e), 0);
    assert_int_equal(ragd_wordpiece_vocab_size(wp), 21128);
    ragd_wordpiece_info in;
    ragd_wordpiece_get_info(wp, &in);
    assert_false(in.lowercase);
    assert_true(in.handle_chinese_chars);
    assert_int_equal(in.cls_id, 101);
    assert_int_equal(in.sep_id, 102);
    assert_int_equal(in.unk_id, 100);
    cJSON *g = tu_load_json(gpath);
    assert_int_equal(cJSON_GetArraySize(g), 253);
    assert_int_equal(check_golden(wp, g), 0);
    cJSON_Delete(g);
    ragd_wordpiece_destroy(wp);
    free(dir);
    free(gpath);
}

/* The same tokenizer from vocab.txt + tokenizer_config.json only (do_lower_case false). */
static void test_golden_vocab_txt(void **state) {
    (void)state;
    char *src = tu_shared("models/bert-tiny");
    char *gpath = tu_shared("golden/bert_tokenizer_public.json");
    TU_REQUIRE_SHARED(src);
    TU_REQUIRE_SHARED(gpath);
    char *tmp = tu_tmpdir();
    char from[4096], to[4096];
    const char *files[] = {"vocab.txt", "tokenizer_config.json"};
    for (int i = 0; i < 2; i++) {
        char *data = NULL;
        size_t len = 0;
        snprintf(from, sizeof from, "%s/%s", src, files[i]);
        snprintf(to, sizeof to, "%s/%s", tmp, files[i]);
        assert_int_equal(ragd_read_file(from, &data, &len, NULL), 0);
        assert_int_equal(ragd_write_file(to, data, len, NULL), 0);
        free(data);
    }
    ragd_wordpiece *wp = NULL;
    ragd_err e = {0};
    assert_int_equal(ragd_wordpiece_load(tmp, &wp, &e), 0);
    cJSON *g = tu_load_json(gpath);
    assert_int_equal(check_golden(wp, g), 0);
    cJSON_Delete(g);
    ragd_wordpiece_destroy(wp);
    tu_rmtree(tmp);
    free(tmp);
    free(src);
    free(gpath);
}

static void test_basic_behaviour(void **state) {
    (void)state;
    char *dir = tu_shared("models/bert-tiny");
    TU_REQUIRE_SHARED(dir);
    ragd_wordpiece *wp = NULL;
    ragd_err e = {0};
    assert_int_equal(ragd_wordpiece_load(dir, &wp, &e), 0);
    int32_t *ids = NULL;
    size_t n = 0;
    bool trunc = false;
    /* CJK split apart, punctuation isolated, control chars dropped */
    const char *t = "中医\x01[SEP]治疗，好!";
    assert_int_equal(ragd_wordpiece_encode(wp, t, strlen(t), 512, &ids, &n, &trunc, &e), 0);
    const char *want[] = {"[CLS]", "中", "医", "[SEP]", "治", "疗", "，", "好", "!", "[SEP]"};
    assert_int_equal(n, 10);
    for (size_t i = 0; i < n; i++) assert_string_equal(ragd_wordpiece_token(wp, ids[i]), want[i]);
    assert_false(trunc);
    free(ids);
    /* truncation: 1000 CJK chars -> 512 ids ending in [SEP], reported */
    ragd_buf b = {0};
    for (int i = 0; i < 1000; i++) ragd_buf_puts(&b, "药");
    assert_int_equal(ragd_wordpiece_encode(wp, b.data, b.len, 512, &ids, &n, &trunc, &e), 0);
    assert_int_equal(n, 512);
    assert_true(trunc);
    assert_int_equal(ids[0], 101);
    assert_int_equal(ids[511], 102);
    free(ids);
    assert_int_equal(ragd_wordpiece_encode(wp, b.data, b.len, 8, &ids, &n, &trunc, &e), 0);
    assert_int_equal(n, 8);
    free(ids);
    ragd_buf_free(&b);
    /* a word longer than 100 characters is [UNK] */
    char longw[202];
    memset(longw, 'a', 201);
    longw[201] = 0;
    assert_int_equal(ragd_wordpiece_encode(wp, longw, 201, 512, &ids, &n, &trunc, &e), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ids[1], 100);
    free(ids);
    /* invalid UTF-8 */
    assert_int_equal(ragd_wordpiece_encode(wp, "a\xff", 2, 512, &ids, &n, &trunc, &e), RAGD_EINVAL);
    assert_null(ids);
    assert_non_null(strstr(e.msg, "UTF-8"));
    ragd_wordpiece_destroy(wp);
    /* missing files */
    assert_int_equal(ragd_wordpiece_load("/nonexistent-dir", &wp, &e), RAGD_ENOTFOUND);
    assert_null(wp);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_tokenizer_json),
        cmocka_unit_test(test_golden_vocab_txt),
        cmocka_unit_test(test_basic_behaviour),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
