/* Tokenizer: golden ids and decodes for the real Qwen2.5 tokenizer, streaming detokenizer,
 * invalid input, and small hand-built tokenizer.json files for the format variants. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "testutil.h"
#include "tokenizer/tokenizer.h"

static ragd_tokenizer *qwen;

static int setup(void **state) {
    (void)state;
    char *dir = tu_shared("models/qwen2-tiny");
    ragd_err err = {0};
    if (tu_exists(dir) && ragd_tokenizer_load(dir, &qwen, &err) != 0) {
        fprintf(stderr, "load: %s\n", err.msg);
        free(dir);
        return -1;
    }
    free(dir);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    ragd_tokenizer_destroy(qwen);
    return 0;
}

#define REQUIRE_QWEN()                                                                             \
    do {                                                                                           \
        if (!qwen) {                                                                               \
            print_message("qwen2-tiny tokenizer missing\n");                                       \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

static void test_golden_encode_decode(void **state) {
    (void)state;
    REQUIRE_QWEN();
    char *path = tu_shared("golden/qwen2_tokenizer_public.json");
    cJSON *cases = tu_load_json(path);
    free(path);
    int n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        const char *decoded = cJSON_GetObjectItem(c, "decoded")->valuestring;
        const cJSON *ref = cJSON_GetObjectItem(c, "ids");
        int32_t *ids = NULL;
        size_t n_ids = 0;
        ragd_err err = {0};
        assert_int_equal(ragd_tokenizer_encode(qwen, text, strlen(text), &ids, &n_ids, &err), 0);
        size_t want = (size_t)cJSON_GetArraySize(ref);
        if (n_ids != want) fail_msg("case %d %s: %zu ids, want %zu", n, text, n_ids, want);
        for (size_t i = 0; i < n_ids; i++) {
            int32_t r = (int32_t)cJSON_GetArrayItem(ref, (int)i)->valuedouble;
            if (ids[i] != r) fail_msg("case %d %s: id[%zu]=%d want %d", n, text, i, ids[i], r);
        }
        /* decode(reference ids) == decoded */
        int32_t *rids = malloc((want + 1) * sizeof *rids);
        for (size_t i = 0; i < want; i++)
            rids[i] = (int32_t)cJSON_GetArrayItem(ref, (int)i)->valuedouble;
        ragd_buf out = {0};
        assert_int_equal(ragd_tokenizer_decode(qwen, rids, want, false, &out, &err), 0);
        assert_non_null(out.data);
        if (strcmp(out.data, decoded) != 0) fail_msg("case %d: decode mismatch", n);
        /* streaming, one id at a time: concatenation equals decode() and every piece is
           complete UTF-8 */
        ragd_detok d;
        ragd_detok_init(&d, qwen, false);
        ragd_buf acc = {0};
        for (size_t i = 0; i < want; i++) {
            ragd_buf piece = {0};
            assert_int_equal(ragd_detok_push(&d, rids[i], &piece, &err), 0);
            assert_true(ragd_utf8_valid(piece.data ? piece.data : "", piece.len));
            ragd_buf_append(&acc, piece.data ? piece.data : "", piece.len);
            ragd_buf_free(&piece);
        }
        assert_int_equal(ragd_detok_flush(&d, &acc), 0);
        ragd_detok_free(&d);
        assert_int_equal(acc.len, out.len);
        assert_memory_equal(acc.data ? acc.data : "", out.data, out.len);
        ragd_buf_free(&acc);
        ragd_buf_free(&out);
        free(rids);
        free(ids);
        n++;
    }
    assert_int_equal(n, 253);
    cJSON_Delete(cases);
}

static void test_special_tokens(void **state) {
    (void)state;
    REQUIRE_QWEN();
    int32_t im_end = ragd_tokenizer_token_id(qwen, "<|im_end|>");
    assert_int_equal(im_end, 151645);
    assert_int_equal(ragd_tokenizer_eos_id(qwen), 151645);
    assert_int_equal(ragd_tokenizer_pad_id(qwen), 151643);
    assert_int_equal(ragd_tokenizer_bos_id(qwen), -1);
    assert_true(ragd_tokenizer_is_special(qwen, im_end));
    assert_false(ragd_tokenizer_is_special(qwen, 9707));
    assert_int_equal(ragd_tokenizer_token_id(qwen, "Hello"), 9707);
    assert_int_equal(ragd_tokenizer_token_id(qwen, "no such token at all"), -1);
    assert_true(ragd_tokenizer_vocab_size(qwen) >= 151665);
    assert_non_null(ragd_tokenizer_chat_template(qwen));
    /* skip_special drops the added special tokens only */
    const char *text = "<|im_start|>user\nhi<|im_end|>";
    int32_t *ids;
    size_t n;
    ragd_err err = {0};
    assert_int_equal(ragd_tokenizer_encode(qwen, text, strlen(text), &ids, &n, &err), 0);
    ragd_buf out = {0};
    assert_int_equal(ragd_tokenizer_decode(qwen, ids, n, true, &out, &err), 0);
    assert_string_equal(out.data, "user\nhi");
    ragd_buf_free(&out);
    /* the streaming detokenizer skips them too */
    ragd_detok d;
    ragd_detok_init(&d, qwen, true);
    for (size_t i = 0; i < n; i++) assert_int_equal(ragd_detok_push(&d, ids[i], &out, &err), 0);
    ragd_detok_flush(&d, &out);
    ragd_detok_free(&d);
    assert_string_equal(out.data, "user\nhi");
    ragd_buf_free(&out);
    free(ids);
}

static void test_invalid_input(void **state) {
    (void)state;
    REQUIRE_QWEN();
    static const char *bad[] = {"\xff", "abc\xc3", "\xed\xa0\x80", "\xc0\xaf",
                                "ok\xf4\x90\x80\x80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int32_t *ids = (int32_t *)1;
        size_t n = 7;
        ragd_err err = {0};
        assert_int_equal(ragd_tokenizer_encode(qwen, bad[i], strlen(bad[i]), &ids, &n, &err),
                         RAGD_EINVAL);
        assert_null(ids);
        assert_int_equal(n, 0);
        assert_non_null(strstr(err.msg, "UTF-8"));
    }
    ragd_buf out = {0};
    ragd_err err = {0};
    int32_t bad_ids[] = {9707, -1};
    assert_int_equal(ragd_tokenizer_decode(qwen, bad_ids, 2, false, &out, &err), RAGD_EINVAL);
    bad_ids[1] = 1 << 30;
    assert_int_equal(ragd_tokenizer_decode(qwen, bad_ids, 2, false, &out, &err), RAGD_EINVAL);
    /* the streaming detokenizer of a generation skips ids past the tokenizer (a model's padded
     * vocabulary rows, which a sampler can pick) instead of failing the stream; negative ids
     * still fail */
    ragd_detok d;
    ragd_detok_init(&d, qwen, false);
    ragd_buf s = {0};
    assert_int_equal(ragd_detok_push(&d, 9707, &s, &err), 0);
    const size_t len1 = s.len;
    assert_true(len1 > 0);
    assert_int_equal(ragd_detok_push(&d, 152000, &s, &err), 0);
    assert_int_equal(ragd_detok_push(&d, 1 << 30, &s, &err), 0);
    assert_int_equal(s.len, len1);
    assert_int_equal(ragd_detok_push(&d, 9707, &s, &err), 0);
    assert_int_equal(s.len, 2 * len1);
    assert_int_equal(ragd_detok_push(&d, -1, &s, &err), RAGD_EINVAL);
    ragd_detok_free(&d);
    ragd_buf_free(&s);
    ragd_buf_free(&out);
}

/* Byte tokens that split a character: decode gives U+FFFD like from_utf8_lossy; the stream
 * holds incomplete bytes back and flushes the same replacement. */
static void test_partial_utf8(void **state) {
    (void)state;
    REQUIRE_QWEN();
    /* "你" = E4 BD A0: find the single-byte tokens of its bytes */
    const char *ch = "你好";
    int32_t *ids;
    size_t n;
    ragd_err err = {0};
    assert_int_equal(ragd_tokenizer_encode(qwen, ch, strlen(ch), &ids, &n, &err), 0);
    free(ids);
    /* ByteLevel symbols of E4, BD: U+00E4 'ä' and U+00BD '½' are themselves */
    int32_t e4 = ragd_tokenizer_token_id(qwen, "\xc3\xa4"),
            bd = ragd_tokenizer_token_id(qwen, "\xc2\xbd");
    int32_t a0 = ragd_tokenizer_token_id(qwen, "\xc5\x82"); /* byte A0 -> U+0142 */
    assert_true(e4 >= 0 && bd >= 0 && a0 >= 0);
    size_t len;
    const char *b = ragd_tokenizer_token_bytes(qwen, a0, &len);
    assert_int_equal(len, 1);
    assert_int_equal((unsigned char)b[0], 0xA0);
    int32_t seq[] = {e4, bd, a0, e4, bd};
    ragd_buf out = {0}, s = {0};
    assert_int_equal(ragd_tokenizer_decode(qwen, seq, 5, false, &out, &err), 0);
    assert_string_equal(out.data, "你\xEF\xBF\xBD");
    ragd_detok d;
    ragd_detok_init(&d, qwen, false);
    assert_int_equal(ragd_detok_push(&d, e4, &s, &err), 0);
    assert_int_equal(s.len, 0);
    assert_int_equal(ragd_detok_push(&d, bd, &s, &err), 0);
    assert_int_equal(s.len, 0);
    assert_int_equal(ragd_detok_push(&d, a0, &s, &err), 0);
    assert_string_equal(s.data, "你");
    assert_int_equal(ragd_detok_push(&d, e4, &s, &err), 0);
    assert_int_equal(ragd_detok_push(&d, bd, &s, &err), 0);
    assert_string_equal(s.data, "你");
    ragd_detok_flush(&d, &s);
    assert_string_equal(s.data, out.data);
    /* an invalid byte in the middle of the stream is replaced at once */
    int32_t ff = ragd_tokenizer_token_id(qwen, "\xc3\xbf"); /* byte FF -> U+00FF */
    assert_true(ff >= 0);
    ragd_buf_clear(&s);
    assert_int_equal(ragd_detok_push(&d, ff, &s, &err), 0);
    assert_string_equal(s.data, "\xEF\xBF\xBD");
    ragd_detok_free(&d);
    ragd_buf_free(&s);
    ragd_buf_free(&out);
}

/* Long inputs: whitespace runs (regex backtracking), a long CJK run (one big BPE word), NFC. */
static void test_long_and_nfc(void **state) {
    (void)state;
    REQUIRE_QWEN();
    size_t n = getenv("RAGD_SANITIZED") ? 20000 : 200000;
    char *sp = malloc(n + 2);
    memset(sp, ' ', n);
    sp[n] = 'x';
    sp[n + 1] = 0;
    int32_t *ids;
    size_t k;
    ragd_err err = {0};
    assert_int_equal(ragd_tokenizer_encode(qwen, sp, n + 1, &ids, &k, &err), 0);
    ragd_buf out = {0};
    assert_int_equal(ragd_tokenizer_decode(qwen, ids, k, false, &out, &err), 0);
    assert_int_equal(out.len, n + 1);
    assert_memory_equal(out.data, sp, n + 1);
    free(ids);
    free(sp);
    ragd_buf_free(&out);
    ragd_buf cjk = {0};
    for (int i = 0; i < 3000; i++) ragd_buf_puts(&cjk, i % 7 ? "中医药" : "桂枝汤");
    assert_int_equal(ragd_tokenizer_encode(qwen, cjk.data, cjk.len, &ids, &k, &err), 0);
    assert_int_equal(ragd_tokenizer_decode(qwen, ids, k, false, &out, &err), 0);
    assert_string_equal(out.data, cjk.data);
    assert_true(k < cjk.len / 3);
    free(ids);
    ragd_buf_free(&out);
    ragd_buf_free(&cjk);
    /* "e" + combining acute is NFC-composed to U+00E9 before BPE: same ids as "é" */
    int32_t *a, *b;
    size_t na, nb;
    assert_int_equal(ragd_tokenizer_encode(qwen, "caf\x65\xcc\x81", 6, &a, &na, &err), 0);
    assert_int_equal(ragd_tokenizer_encode(qwen, "caf\xc3\xa9", 5, &b, &nb, &err), 0);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na * sizeof *a);
    free(a);
    free(b);
    /* U+180E is not White_Space for the tokenizer regex (it is for PCRE2's \s) */
    assert_int_equal(ragd_tokenizer_encode(qwen, "a\xe1\xa0\x8e b", 6, &a, &na, &err), 0);
    assert_int_equal(ragd_tokenizer_decode(qwen, a, na, false, &out, &err), 0);
    assert_string_equal(out.data, "a\xe1\xa0\x8e b");
    free(a);
    ragd_buf_free(&out);
}

/* The NFC quick check never skips a needed normalisation: sweep code points alone and after
 * a base letter, compare decode(encode(x)) with utf8proc's NFC of x. */
static void test_nfc_sweep(void **state) {
    (void)state;
    REQUIRE_QWEN();
    uint32_t step = getenv("RAGD_SANITIZED") ? 7 : 1, bad = 0;
    for (uint32_t cp = 0x2F0; cp < 0x30000; cp += (cp < 0x10000 ? step : 13 * step)) {
        if ((cp >= 0xD800 && cp <= 0xDFFF) || (cp >= 0x3400 && cp < 0x4DC0) ||
            (cp >= 0x4E00 && cp < 0xA000) || (cp >= 0xAC00 && cp < 0xD7A4))
            continue; /* big blocks of plain ideographs/syllables: sampled by the golden set */
        char s[16];
        size_t n = 0;
        s[n++] = 'e';
        n += (size_t)ragd_utf8_encode(cp, s + n);
        n += (size_t)ragd_utf8_encode(0x301, s + n);
        s[n] = 0;
        for (int variant = 0; variant < 2; variant++) {
            const char *x = variant ? s + 1 : s;
            size_t xn = variant ? n - 1 : n;
            int32_t *ids;
            size_t k;
            ragd_err err = {0};
            assert_int_equal(ragd_tokenizer_encode(qwen, x, xn, &ids, &k, &err), 0);
            ragd_buf out = {0};
            assert_int_equal(ragd_tokenizer_decode(qwen, ids, k, false, &out, &err), 0);
            char *nfc = (char *)utf8proc_NFC((const utf8proc_uint8_t *)x);
            if (strcmp(nfc, out.data) != 0 && bad++ < 5) print_message("U+%04X differs\n", cp);
            free(nfc);
            free(ids);
            ragd_buf_free(&out);
        }
    }
    assert_int_equal(bad, 0);
}

/* A hand-built byte-level tokenizer: every byte + a few merges, merges in "a b" or [a,b] form,
 * added tokens with lstrip/rstrip/single_word/normalized flags. */
static char *mini_json(bool pair_merges, const char *added) {
    ragd_buf b = {0};
    ragd_buf_puts(&b, "{\"model\":{\"type\":\"BPE\",\"vocab\":{");
    /* ByteLevel alphabet */
    int n = 0;
    for (int x = 0; x < 256; x++) {
        bool keep = (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174);
        uint32_t cp = keep ? (uint32_t)x : 256 + (uint32_t)n++;
        char u[4];
        int k = ragd_utf8_encode(cp, u);
        ragd_buf_json_str(&b, u, (size_t)k);
        ragd_buf_printf(&b, ":%d,", x);
    }
    ragd_buf_puts(
        &b, "\"ab\":256,\"abc\":257,\"\xc4\xa0\x61\":258,\"\xc4\xa0\x61\x62\":259},\"merges\":");
    if (pair_merges)
        ragd_buf_puts(
            &b, "[[\"a\",\"b\"],[\"ab\",\"c\"],[\"\xc4\xa0\",\"a\"],[\"\xc4\xa0\x61\",\"b\"]]");
    else
        ragd_buf_puts(&b, "[\"a b\",\"ab c\",\"\xc4\xa0 a\",\"\xc4\xa0\x61 b\"]");
    ragd_buf_printf(&b,
                    "},\"added_tokens\":[%s],\"normalizer\":{\"type\":\"NFC\"},"
                    "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
                    "\"use_regex\":true},\"decoder\":{\"type\":\"ByteLevel\"}}",
                    added);
    return ragd_buf_steal(&b);
}

static void expect_ids(ragd_tokenizer *t, const char *text, const int32_t *want, size_t nwant) {
    int32_t *ids;
    size_t n;
    ragd_err err = {0};
    assert_int_equal(ragd_tokenizer_encode(t, text, strlen(text), &ids, &n, &err), 0);
    if (n != nwant) {
        for (size_t i = 0; i < n; i++) print_message("%d ", ids[i]);
        fail_msg("'%s': %zu ids, want %zu", text, n, nwant);
    }
    for (size_t i = 0; i < n; i++)
        if (ids[i] != want[i]) fail_msg("'%s': id[%zu]=%d want %d", text, i, ids[i], want[i]);
    free(ids);
}

static void test_mini_formats(void **state) {
    (void)state;
    for (int pm = 0; pm < 2; pm++) {
        char *js = mini_json(pm, "");
        ragd_tokenizer *t;
        ragd_err err = {0};
        if (ragd_tokenizer_load_json(js, strlen(js), &t, &err)) fail_msg("%s", err.msg);
        free(js);
        /* rank order: "a b" (rank 0) beats "Ġ a" (rank 2), so " ab" is Ġ + ab */
        expect_ids(t, "abc ab abd", (int32_t[]){257, 32, 256, 32, 256, 'd'}, 6);
        expect_ids(t, " a", (int32_t[]){258}, 1);
        expect_ids(t, " ac", (int32_t[]){258, 'c'}, 2);
        expect_ids(t, "", NULL, 0);
        ragd_tokenizer_destroy(t);
    }
}

static void test_mini_added_flags(void **state) {
    (void)state;
    const char *added =
        "{\"id\":300,\"content\":\"<s>\",\"special\":true,\"normalized\":false},"
        "{\"id\":301,\"content\":\"[L]\",\"lstrip\":true,\"special\":true,\"normalized\":false},"
        "{\"id\":302,\"content\":\"[R]\",\"rstrip\":true,\"special\":true,\"normalized\":false},"
        "{\"id\":303,\"content\":\"tok\",\"single_word\":true,\"special\":false,\"normalized\":"
        "true},"
        "{\"id\":304,\"content\":\"<s>x\",\"special\":false,\"normalized\":false},"
        "{\"id\":305,\"content\":\"\xc3\xa9\",\"special\":false,\"normalized\":true}";
    char *js = mini_json(false, added);
    ragd_tokenizer *t;
    ragd_err err = {0};
    if (ragd_tokenizer_load_json(js, strlen(js), &t, &err)) fail_msg("%s", err.msg);
    free(js);
    /* longest match wins: "<s>x" over "<s>" */
    expect_ids(t, "<s>x<s>", (int32_t[]){304, 300}, 2);
    /* lstrip eats the spaces before, rstrip the spaces after */
    expect_ids(t, "a  [L]a", (int32_t[]){'a', 301, 'a'}, 3);
    expect_ids(t, "a[R]  a", (int32_t[]){'a', 302, 'a'}, 3);
    /* single_word: only as a whole word */
    expect_ids(t, "tok", (int32_t[]){303}, 1);
    expect_ids(t, "a tok", (int32_t[]){'a', ' ', 303}, 3);
    expect_ids(t, "atok", (int32_t[]){'a', 't', 'o', 'k'}, 4);
    expect_ids(t, "tok1", (int32_t[]){'t', 'o', 'k', '1'}, 4);
    expect_ids(t, "tok_", (int32_t[]){'t', 'o', 'k', '_'}, 4);
    expect_ids(t, "tok!", (int32_t[]){303, '!'}, 2);
    /* normalized added tokens match after NFC: e + U+0301 becomes U+00E9 */
    expect_ids(t, "ab\x65\xcc\x81", (int32_t[]){256, 305}, 2);
    ragd_tokenizer_destroy(t);
}

/* tokenizer_config.json: special tokens as strings or AddedToken objects, a list of named
 * chat templates, and no config at all. */
static void test_config_forms(void **state) {
    (void)state;
    const char *added = "{\"id\":300,\"content\":\"<s>\",\"special\":true,\"normalized\":false},"
                        "{\"id\":301,\"content\":\"</s>\",\"special\":true,\"normalized\":false}";
    char *js = mini_json(false, added);
    char *dir = tu_tmpdir();
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    ragd_err err = {0};
    assert_int_equal(ragd_write_file(path, js, strlen(js), &err), 0);
    free(js);
    ragd_tokenizer *t;
    assert_int_equal(ragd_tokenizer_load(dir, &t, &err), 0);
    assert_int_equal(ragd_tokenizer_eos_id(t), -1);
    assert_null(ragd_tokenizer_chat_template(t));
    ragd_tokenizer_destroy(t);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    const char *cfg = "{\"bos_token\":\"<s>\",\"eos_token\":{\"__type\":\"AddedToken\","
                      "\"content\":\"</s>\",\"special\":true},\"pad_token\":null,"
                      "\"chat_template\":[{\"name\":\"tool_use\",\"template\":\"x\"},"
                      "{\"name\":\"default\",\"template\":\"T\"}]}";
    assert_int_equal(ragd_write_file(path, cfg, strlen(cfg), &err), 0);
    assert_int_equal(ragd_tokenizer_load(dir, &t, &err), 0);
    assert_int_equal(ragd_tokenizer_bos_id(t), 300);
    assert_int_equal(ragd_tokenizer_eos_id(t), 301);
    assert_int_equal(ragd_tokenizer_pad_id(t), -1);
    assert_string_equal(ragd_tokenizer_chat_template(t), "T");
    ragd_tokenizer_destroy(t);
    assert_int_equal(ragd_write_file(path, "{oops", 5, &err), 0);
    assert_int_equal(ragd_tokenizer_load(dir, &t, &err), RAGD_EFORMAT);
    assert_null(t);
    assert_non_null(strstr(err.msg, "tokenizer_config.json"));
    tu_rmtree(dir);
    free(dir);
}

/* A loaded tokenizer is shared by threads: concurrent encodes give the reference ids. */
typedef struct conc_arg {
    const cJSON *cases;
    int first, bad;
} conc_arg;

static void *conc_worker(void *p) {
    conc_arg *a = p;
    for (int i = a->first; i < cJSON_GetArraySize(a->cases); i += 2) {
        const cJSON *c = cJSON_GetArrayItem(a->cases, i);
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        const cJSON *ref = cJSON_GetObjectItem(c, "ids");
        int32_t *ids;
        size_t n;
        ragd_err err = {0};
        if (ragd_tokenizer_encode(qwen, text, strlen(text), &ids, &n, &err) != 0 ||
            n != (size_t)cJSON_GetArraySize(ref)) {
            a->bad++;
            continue;
        }
        for (size_t k = 0; k < n; k++)
            if (ids[k] != (int32_t)cJSON_GetArrayItem(ref, (int)k)->valuedouble) a->bad++;
        free(ids);
    }
    return NULL;
}

static void test_concurrent(void **state) {
    (void)state;
    REQUIRE_QWEN();
    char *path = tu_shared("golden/qwen2_tokenizer_public.json");
    cJSON *cases = tu_load_json(path);
    free(path);
    conc_arg a[2] = {{cases, 0, 0}, {cases, 1, 0}};
    pthread_t th[2];
    for (int r = 0; r < 3; r++) {
        for (int k = 0; k < 2; k++)
            assert_int_equal(pthread_create(&th[k], NULL, conc_worker, &a[k]), 0);
        for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
    }
    assert_int_equal(a[0].bad + a[1].bad, 0);
    cJSON_Delete(cases);
}

static void test_bad_json(void **state) {
    (void)state;
    static const char *bad[] = {
        "",
        "{",
        "[]",
        "{\"model\":{}}",
        "{\"model\":{\"type\":\"WordPiece\"}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a b\"]}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":99999999},\"merges\":[]}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},"
        "\"pre_tokenizer\":{\"type\":\"ByteLevel\"}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},"
        "\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(\"},\"behavior\":"
        "\"Isolated\"}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ragd_tokenizer *t = (ragd_tokenizer *)1;
        ragd_err err = {0};
        assert_int_not_equal(ragd_tokenizer_load_json(bad[i], strlen(bad[i]), &t, &err), 0);
        assert_null(t);
        assert_true(strlen(err.msg) > 0);
    }
    ragd_tokenizer *t;
    ragd_err err = {0};
    assert_int_not_equal(ragd_tokenizer_load("/nonexistent/dir", &t, &err), 0);
    assert_non_null(strstr(err.msg, "/nonexistent/dir"));
    assert_null(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_encode_decode),
        cmocka_unit_test(test_special_tokens),
        cmocka_unit_test(test_invalid_input),
        cmocka_unit_test(test_partial_utf8),
        cmocka_unit_test(test_long_and_nfc),
        cmocka_unit_test(test_nfc_sweep),
        cmocka_unit_test(test_mini_formats),
        cmocka_unit_test(test_mini_added_flags),
        cmocka_unit_test(test_config_forms),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_bad_json),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
