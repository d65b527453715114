/* The CJK analyzer (bigrams, lone characters, folded words), FTS query construction and
 * the chunker. */
#include <stdlib.h>
#include <string.h>

#include "kb/analyzer.h"
#include "kb/chunker.h"
#include "testutil.h"

typedef struct {
    char terms[64][64];
    size_t start[64], end[64];
    int n;
} collected;

static int collect(void *ctx, const char *t, size_t n, size_t s, size_t e) {
    collected *c = ctx;
    if (c->n < 64 && n < 64) {
        memcpy(c->terms[c->n], t, n);
        c->terms[c->n][n] = 0;
        c->start[c->n] = s;
        c->end[c->n] = e;
        c->n++;
    }
    return 0;
}

static collected analyze(const char *s) {
    collected c;
    memset(&c, 0, sizeof c);
    assert_int_equal(ragd_kb_analyze(s, strlen(s), collect, &c), 0);
    return c;
}

static void test_bigrams(void **state) {
    (void)state;
    collected c = analyze("战国无双");
    assert_int_equal(c.n, 3);
    assert_string_equal(c.terms[0], "战国");
    assert_string_equal(c.terms[1], "国无");
    assert_string_equal(c.terms[2], "无双");
    assert_int_equal(c.start[1], 3);
    assert_int_equal(c.end[1], 9);
    /* a lone CJK character between non-CJK text is a unigram */
    c = analyze("2018年 是");
    assert_int_equal(c.n, 3);
    assert_string_equal(c.terms[0], "2018");
    assert_string_equal(c.terms[1], "年");
    assert_string_equal(c.terms[2], "是");
    /* punctuation splits runs */
    c = analyze("中国，人民");
    assert_int_equal(c.n, 2);
    assert_string_equal(c.terms[0], "中国");
    assert_string_equal(c.terms[1], "人民");
}

static void test_words_folded(void **state) {
    (void)state;
    collected c = analyze("Hello WORLD, Ｆｕｌｌ café ω-Force");
    assert_int_equal(c.n, 6);
    assert_string_equal(c.terms[0], "hello");
    assert_string_equal(c.terms[1], "world");
    assert_string_equal(c.terms[2], "full");
    assert_string_equal(c.terms[3], "cafe");
    assert_string_equal(c.terms[4], "ω");
    assert_string_equal(c.terms[5], "force");
    /* mixed: latin word then CJK run */
    c = analyze("GPU显卡");
    assert_int_equal(c.n, 2);
    assert_string_equal(c.terms[0], "gpu");
    assert_string_equal(c.terms[1], "显卡");
    /* invalid UTF-8 bytes are separators, not crashes */
    c = analyze("ab\xff\xfe"
                "cd");
    assert_int_equal(c.n, 2);
    c = analyze("");
    assert_int_equal(c.n, 0);
}

static void test_fts_query(void **state) {
    (void)state;
    ragd_buf b = {0};
    size_t n = 0;
    assert_int_equal(ragd_kb_fts_query("中国中国 AND", strlen("中国中国 AND"), 0, &b, &n), 0);
    /* distinct terms, quoted, OR-ed (the FTS5 keyword AND is quoted as a term) */
    assert_int_equal(n, 3);
    assert_non_null(strstr(b.data, "\"中国\" OR \"国中\""));
    assert_non_null(strstr(b.data, "\"and\""));
    ragd_buf_free(&b);
    memset(&b, 0, sizeof b);
    assert_int_equal(ragd_kb_fts_query("，。！", strlen("，。！"), 0, &b, &n), 0);
    assert_int_equal(n, 0);
    ragd_buf_free(&b);
}

static void test_chunker(void **state) {
    (void)state;
    const char *t = "第一句话。第二句话！第三句话？Fourth sentence here. 第五句；最后";
    ragd_kb_span *sp = NULL;
    size_t n = 0;
    assert_int_equal(ragd_kb_chunk(t, strlen(t), 8, 3, NULL, &sp, &n, NULL), 0);
    assert_true(n >= 3);
    for (size_t i = 0; i < n; i++) {
        assert_true(sp[i].tokens <= 8);
        assert_true(sp[i].end > sp[i].start);
        if (i) /* overlapping, or separated by whitespace only */
            for (size_t j = sp[i - 1].end; j < sp[i].start; j++) assert_true(t[j] == ' ');
    }
    /* chunks cut at sentence ends: the first ends right after 。 or ！ */
    const char *e = t + sp[0].end;
    assert_true(!strncmp(e - 3, "。", 3) || !strncmp(e - 3, "！", 3));
    assert_int_equal(sp[n - 1].end, strlen(t));
    free(sp);
    /* whole-document mode and whitespace-only text */
    assert_int_equal(ragd_kb_chunk("  abc  ", 7, 0, 0, NULL, &sp, &n, NULL), 0);
    assert_int_equal(n, 1);
    assert_int_equal(sp[0].start, 2);
    assert_int_equal(sp[0].end, 5);
    free(sp);
    assert_int_equal(ragd_kb_chunk(" \n\t ", 4, 16, 2, NULL, &sp, &n, NULL), 0);
    assert_int_equal(n, 0);
    free(sp);
    /* overlap must be smaller than the chunk */
    assert_int_equal(ragd_kb_chunk("abc", 3, 4, 4, NULL, &sp, &n, NULL), RAGD_EINVAL);
}

static void test_chunker_long_line(void **state) {
    (void)state;
    /* 2 MB without a sentence end: hard cuts at the budget, linear time, full coverage */
    size_t len = 2u << 20;
    char *s = malloc(len + 1);
    for (size_t i = 0; i < len; i++) s[i] = (char)('a' + (i % 7 == 6 ? ' ' - 'a' : (int)(i % 26)));
    s[len] = 0;
    ragd_kb_span *sp = NULL;
    size_t n = 0;
    assert_int_equal(ragd_kb_chunk(s, len, 256, 0, NULL, &sp, &n, NULL), 0);
    assert_true(n > 100);
    for (size_t i = 0; i < n; i++) {
        assert_true(sp[i].tokens <= 256);
        if (i) assert_int_equal(sp[i].start, sp[i - 1].end);
    }
    assert_int_equal(sp[0].start, 0);
    assert_int_equal(sp[n - 1].end, len);
    free(sp);
    free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bigrams),           cmocka_unit_test(test_words_folded),
        cmocka_unit_test(test_fts_query),         cmocka_unit_test(test_chunker),
        cmocka_unit_test(test_chunker_long_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
