/* RAG pipeline pieces without models: TF-IDF keywords, source merge + rerank, prompt
 * assembly against a golden text and the token budget. */
#include <stdlib.h>
#include <string.h>

#include "rag/keywords.h"
#include "rag/prompt.h"
#include "rag/rerank.h"
#include "rag/response.h"
#include "tokenizer/tokenizer.h"
#include "testutil.h"

/* --- keywords ------------------------------------------------------------------------- */

/* A small analyzer in the knowledge base's style: each run of non-ASCII characters gives
 * its overlapping character bigrams (a lone character alone), ASCII letters/digits words. */
static int bigrams(const char *t, size_t len, ragd_kw_term_fn fn, void *ctx) {
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)t[i];
        if (c >= 0x80) {
            size_t starts[256], n = 0, j = i;
            while (j < len && (unsigned char)t[j] >= 0x80 && n < 255) {
                uint32_t cp;
                starts[n++] = j;
                j += (size_t)ragd_utf8_decode(t + j, len - j, &cp);
            }
            starts[n] = j;
            if (n == 1) fn(ctx, t + i, j - i, i, j);
            for (size_t k = 0; k + 1 < n; k++)
                fn(ctx, t + starts[k], starts[k + 2] - starts[k], starts[k], starts[k + 2]);
            i = j;
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            size_t j = i;
            while (j < len && ((t[j] >= 'a' && t[j] <= 'z') || (t[j] >= '0' && t[j] <= '9'))) j++;
            fn(ctx, t + i, j - i, i, j);
            i = j;
        } else {
            i++;
        }
    }
    return 0;
}

/* df table: common bigrams are in many chunks, the name in few */
static int table_df(void *ctx, const char *const *terms, const size_t *lens, size_t n, int64_t *df,
                    int64_t *n_docs, ragd_err *err) {
    (void)ctx, (void)err;
    static const struct {
        const char *t;
        int64_t df;
    } tab[] = {{"范廷", 2},   {"廷颂", 2},   {"颂是", 1},  {"是什", 300}, {"什么", 400},
               {"么时", 200}, {"时候", 250}, {"候被", 20}, {"被任", 15},  {"任为", 30},
               {"为主", 60},  {"主教", 5},   {"教的", 40}};
    *n_docs = 1000;
    for (size_t i = 0; i < n; i++) {
        df[i] = 0;
        for (size_t k = 0; k < sizeof(tab) / sizeof(tab[0]); k++)
            if (strlen(tab[k].t) == lens[i] && !memcmp(tab[k].t, terms[i], lens[i]))
                df[i] = tab[k].df;
    }
    return 0;
}

static void test_keywords_tfidf(void **state) {
    (void)state;
    ragd_kw_opts o = {.analyze = bigrams, .df = table_df, .max_terms = 5};
    ragd_keywords kw;
    ragd_err err = {0};
    const char *q = "范廷颂是什么时候被任为主教的？";
    assert_int_equal(ragd_keywords_extract(&o, q, strlen(q), &kw, &err), RAGD_OK);
    /* rarest first: 颂是 (df 1), then 范廷 / 廷颂 (df 2, question order), 主教, 被任 */
    assert_int_equal(kw.n_terms, 5);
    assert_string_equal(kw.terms[0].term, "颂是");
    assert_string_equal(kw.terms[1].term, "范廷");
    assert_string_equal(kw.terms[2].term, "廷颂");
    assert_string_equal(kw.terms[3].term, "主教");
    assert_string_equal(kw.terms[4].term, "被任");
    assert_true(kw.terms[0].score > kw.terms[4].score);
    /* bigrams merged back into the question's phrases, in question order */
    assert_string_equal(kw.phrases.data, "范廷颂是 被任 主教");
    ragd_keywords_free(&kw);

    /* min_ratio drops weak terms; unknown terms (df 0) are never keywords */
    o.max_terms = 0;
    o.min_ratio = 0.9;
    const char *q2 = "范廷颂 xyz";
    assert_int_equal(ragd_keywords_extract(&o, q2, strlen(q2), &kw, &err), RAGD_OK);
    assert_int_equal(kw.n_terms, 2);
    assert_string_equal(kw.phrases.data, "范廷颂");
    ragd_keywords_free(&kw);

    /* a question with no searchable terms has no keywords */
    assert_int_equal(ragd_keywords_extract(&o, "？！", strlen("？！"), &kw, &err), RAGD_OK);
    assert_int_equal(kw.n_terms, 0);
    assert_int_equal(kw.phrases.len, 0);
    ragd_keywords_free(&kw);
}

/* --- merge + rerank ------------------------------------------------------------------- */

static void test_merge_rerank(void **state) {
    (void)state;
    ragd_rag_sources s = {0};
    /* query 1 (question) over two indexes, query 2 (keywords) over the same */
    assert_int_equal(ragd_rag_sources_add(&s, "books", "a.txt", NULL, 7, 0.016, "seven", 5), 0);
    assert_int_equal(ragd_rag_sources_add(&s, "herbs", "h.md", "Herbs", 7, 0.015, "h7", 2), 0);
    assert_int_equal(ragd_rag_sources_add(&s, "books", "b.txt", NULL, 3, 0.020, "three", 5), 0);
    assert_int_equal(ragd_rag_sources_add(&s, "books", "a.txt", NULL, 7, 0.016, "seven", 5), 0);
    assert_int_equal(ragd_rag_sources_add(&s, "herbs", "h.md", "Herbs", 9, 0.015, "h9", 2), 0);
    assert_int_equal(s.len, 4); /* books/7 merged */
    ragd_err err = {0};
    assert_int_equal(ragd_reranker_fused.rerank(NULL, "q", s.items, s.len, &err), 0);
    assert_string_equal(s.items[0].index, "books");
    assert_int_equal(s.items[0].chunk_id, 7);
    assert_true(s.items[0].score > 0.0319 && s.items[0].score < 0.0321);
    assert_int_equal(s.items[1].chunk_id, 3);
    /* equal scores: by index then chunk id */
    assert_string_equal(s.items[2].index, "herbs");
    assert_int_equal(s.items[2].chunk_id, 7);
    assert_string_equal(s.items[2].title, "Herbs");
    assert_int_equal(s.items[3].chunk_id, 9);
    ragd_rag_sources_truncate(&s, 2);
    assert_int_equal(s.len, 2);
    ragd_rag_sources_free(&s);
}

/* --- prompt --------------------------------------------------------------------------- */

/* ChatML as Qwen2.5 renders it (system message given, generation prompt added). */
static int chatml(void *ctx, const ragd_chat_msg *m, size_t n, ragd_buf *out, ragd_err *err) {
    (void)ctx, (void)err;
    for (size_t i = 0; i < n; i++)
        ragd_buf_printf(out, "<|im_start|>%s\n%s<|im_end|>\n", m[i].role, m[i].content);
    ragd_buf_puts(out, "<|im_start|>assistant\n");
    return 0;
}

/* one "token" per code point */
static int count_cp(void *ctx, const char *t, size_t n, size_t *n_tokens, ragd_err *err) {
    (void)ctx, (void)err;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)t[i] & 0xC0) != 0x80;
    *n_tokens = k;
    return 0;
}

/* a counter whose block counts underestimate the whole: forces the exact slow path */
static int count_cp_short(void *ctx, const char *t, size_t n, size_t *n_tokens, ragd_err *err) {
    count_cp(ctx, t, n, n_tokens, err);
    *n_tokens = *n_tokens > 40 ? *n_tokens - 40 : 0;
    return 0;
}

static void test_prompt_golden(void **state) {
    (void)state;
    ragd_rag_source src[3] = {
        {"cmrc", "corpus.jsonl", "范廷颂", 11, 0.03,
         "范廷颂枢机（1919年6月15日－2009年2月22日）。"},
        {"cmrc", "corpus.jsonl", NULL, 12, 0.02, "1963年被任为主教。"},
        {"cmrc", "corpus.jsonl", "x", 13, 0.01, "third"},
    };
    ragd_chat_msg msgs[] = {{"system", "ignored"},
                            {"user", "早先的问题"},
                            {"assistant", "早先的回答"},
                            {"user", "范廷颂是什么时候被任为主教的？"}};
    ragd_prompt_opts o = {.max_prompt_tokens = 100000, .render = chatml, .count_tokens = count_cp};
    ragd_buf p = {0};
    size_t nt = 0;
    bool used[3];
    ragd_err err = {0};
    assert_int_equal(ragd_prompt_build(&o, msgs, 4, src, 2, &p, &nt, used, &err), 0);
    const char *golden =
        "<|im_start|>system\n"
        "你是一个知识库问答助手。请只根据用户消息中编号的参考资料回答问题，并在用到资料的句子后用方"
        "括号"
        "标注资料编号，例如 "
        "[1]、[2]。如果参考资料中没有答案，请直接说明资料中没有相关信息，不要编造。"
        "<|im_end|>\n"
        "<|im_start|>user\n早先的问题<|im_end|>\n"
        "<|im_start|>assistant\n早先的回答<|im_end|>\n"
        "<|im_start|>user\n"
        "参考资料：\n\n"
        "[1] 《范廷颂》\n范廷颂枢机（1919年6月15日－2009年2月22日）。\n\n"
        "[2] 1963年被任为主教。\n\n"
        "问题：范廷颂是什么时候被任为主教的？<|im_end|>\n"
        "<|im_start|>assistant\n";
    assert_string_equal(p.data, golden);
    size_t want = 0;
    count_cp(NULL, golden, strlen(golden), &want, NULL);
    assert_int_equal(nt, want);
    assert_true(used[0] && used[1]);

    /* budget: exactly the prompt with sources 1 and 3 (3 is shorter than 2) */
    ragd_buf p13 = {0};
    const ragd_rag_source *s13[] = {&src[0], &src[2]};
    ragd_buf user = {0};
    assert_int_equal(ragd_prompt_user_message(msgs[3].content, s13, 2, &user), 0);
    ragd_chat_msg m13[] = {
        {"system", RAGD_RAG_DEFAULT_SYSTEM}, msgs[1], msgs[2], {"user", user.data}};
    chatml(NULL, m13, 4, &p13, NULL);
    size_t budget = 0;
    count_cp(NULL, p13.data, p13.len, &budget, NULL);
    o.max_prompt_tokens = budget;
    assert_int_equal(ragd_prompt_build(&o, msgs, 4, src, 3, &p, &nt, used, &err), 0);
    assert_true(used[0] && !used[1] && used[2]);
    assert_int_equal(nt, budget);
    assert_string_equal(p.data, p13.data);
    assert_non_null(strstr(p.data, "[2] 《x》\nthird"));

    /* the same choice when the block estimates are short (exact fallback) */
    o.count_tokens = count_cp_short;
    count_cp_short(NULL, p13.data, p13.len, &budget, NULL);
    o.max_prompt_tokens = budget;
    assert_int_equal(ragd_prompt_build(&o, msgs, 4, src, 3, &p, &nt, used, &err), 0);
    assert_true(used[0] && !used[1] && used[2]);
    assert_int_equal(nt, budget);
    assert_string_equal(p.data, p13.data);
    o.count_tokens = count_cp;

    /* a budget smaller than the bare conversation is a clear error */
    o.max_prompt_tokens = 10;
    assert_int_equal(ragd_prompt_build(&o, msgs, 4, src, 3, &p, &nt, used, &err), RAGD_EINVAL);
    assert_non_null(strstr(err.msg, "prompt budget"));
    /* the last message must be the user's */
    o.max_prompt_tokens = 100000;
    assert_int_equal(ragd_prompt_build(&o, msgs, 3, src, 3, &p, &nt, used, &err), RAGD_EINVAL);
    ragd_buf_free(&user);
    ragd_buf_free(&p13);
    ragd_buf_free(&p);
}

/* The same assembly through the real Qwen2.5 tokenizer and chat template. */
static int real_render(void *ctx, const ragd_chat_msg *m, size_t n, ragd_buf *out, ragd_err *err) {
    return ragd_chat_render(ctx, m, n, true, out, err);
}

static int real_count(void *ctx, const char *t, size_t n, size_t *n_tokens, ragd_err *err) {
    int32_t *ids = NULL;
    int rc = ragd_tokenizer_encode(ctx, t, n, &ids, n_tokens, err);
    free(ids);
    return rc;
}

static void test_prompt_qwen_template(void **state) {
    (void)state;
    char *dir = tu_shared("models/qwen2-tiny");
    TU_REQUIRE_SHARED(dir);
    ragd_tokenizer *tok;
    ragd_chat_template *tmpl;
    ragd_err err = {0};
    assert_int_equal(ragd_tokenizer_load(dir, &tok, &err), RAGD_OK);
    assert_int_equal(ragd_chat_template_create(ragd_tokenizer_chat_template(tok), &tmpl, &err), 0);
    ragd_rag_source src[2] = {
        {"cmrc", "corpus.jsonl#CTX_0", "战国无双3", 1, 0.5,
         "《战国无双3》是由光荣和ω-force开发的。"},
        {"cmrc", "corpus.jsonl#CTX_1", "", 2, 0.25, "锣鼓经是戏曲的打击乐。"},
    };
    ragd_chat_msg msgs[] = {{"user", "《战国无双3》是由哪两个公司合作开发的？"}};
    ragd_prompt_opts o = {.max_prompt_tokens = 4096,
                          .render = real_render,
                          .render_ctx = tmpl,
                          .count_tokens = real_count,
                          .count_ctx = tok};
    ragd_buf p = {0};
    size_t nt = 0;
    bool used[2];
    assert_int_equal(ragd_prompt_build(&o, msgs, 1, src, 2, &p, &nt, used, &err), RAGD_OK);
    const char *golden = "<|im_start|>system\n" RAGD_RAG_DEFAULT_SYSTEM "<|im_end|>\n"
                         "<|im_start|>user\n"
                         "参考资料：\n\n"
                         "[1] 《战国无双3》\n《战国无双3》是由光荣和ω-force开发的。\n\n"
                         "[2] 锣鼓经是戏曲的打击乐。\n\n"
                         "问题：《战国无双3》是由哪两个公司合作开发的？<|im_end|>\n"
                         "<|im_start|>assistant\n";
    assert_string_equal(p.data, golden);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    assert_int_equal(ragd_tokenizer_encode(tok, golden, strlen(golden), &ids, &n_ids, &err), 0);
    assert_int_equal(nt, n_ids);
    /* a budget one token short of the full prompt drops the source that no longer fits */
    o.max_prompt_tokens = n_ids - 1;
    assert_int_equal(ragd_prompt_build(&o, msgs, 1, src, 2, &p, &nt, used, &err), RAGD_OK);
    assert_true(used[0] && !used[1]);
    assert_true(nt <= n_ids - 1);
    assert_null(strstr(p.data, "锣鼓经"));
    free(ids);
    ragd_buf_free(&p);
    ragd_chat_template_destroy(tmpl);
    ragd_tokenizer_destroy(tok);
    free(dir);
}

/* --- response JSON -------------------------------------------------------------------- */

static void test_response_json(void **state) {
    (void)state;
    ragd_rag_source src[2] = {
        {"cmrc", "a.jsonl#1", "标题", 5, 0.25, "一二三四五六"},
        {"cmrc", "b \"q\"", NULL, 6, 0.125, "abc"},
    };
    ragd_buf b = {0};
    assert_int_equal(ragd_rag_sources_json(&b, src, 2, 4), 0);
    assert_string_equal(b.data,
                        "[{\"index\":\"cmrc\",\"document\":\"a.jsonl#1\",\"title\":\"标题\","
                        "\"chunk_id\":5,\"score\":0.25,\"text\":\"一二三四…\"},"
                        "{\"index\":\"cmrc\",\"document\":\"b \\\"q\\\"\",\"title\":\"\","
                        "\"chunk_id\":6,\"score\":0.125,\"text\":\"abc\"}]");
    ragd_buf_free(&b);
    ragd_rag_timings t = {1, 2, 3, 4, 50, 1000, 100, 11};
    assert_true(ragd_rag_tokens_per_s(&t) > 9.999 && ragd_rag_tokens_per_s(&t) < 10.001);
    assert_int_equal(ragd_rag_timings_json(&b, &t), 0);
    cJSON *j = cJSON_Parse(b.data);
    assert_non_null(j);
    assert_true(cJSON_GetObjectItem(j, "ttft_ms")->valuedouble == 50);
    assert_true(cJSON_GetObjectItem(j, "tokens_per_s")->valuedouble == 10);
    assert_int_equal(cJSON_GetObjectItem(j, "completion_tokens")->valueint, 11);
    cJSON_Delete(j);
    ragd_buf_free(&b);
    t.completion_tokens = 1;
    assert_true(ragd_rag_tokens_per_s(&t) == 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keywords_tfidf), cmocka_unit_test(test_merge_rerank),
        cmocka_unit_test(test_prompt_golden),  cmocka_unit_test(test_prompt_qwen_template),
        cmocka_unit_test(test_response_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
