/* The RAG pipeline up to the prompt, on a real knowledge base (BM25) and the real Qwen2.5
 * tokenizer and chat template: keywords, retrieval, rerank, golden prompt text, budget, and
 * the clear errors for a missing index and an empty knowledge base. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kb/kb.h"
#include "rag/prompt.h"
#include "rag/rag.h"
#include "testutil.h"

typedef struct fixture {
    char *dir;
    ragd_kb *kb;
    ragd_tokenizer *tok;
    ragd_rag *rag;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof(*f));
    f->dir = tu_tmpdir();
    char path[1024], kbpath[1024];
    snprintf(path, sizeof(path), "%s/docs.jsonl", f->dir);
    FILE *fp = fopen(path, "w");
    fputs("{\"id\":\"a\",\"title\":\"甲\",\"text\":\"范廷颂于1963年被任为主教。\"}\n"
          "{\"id\":\"b\",\"title\":\"乙\",\"text\":\"主教是天主教的神职。\"}\n"
          "{\"id\":\"c\",\"title\":\"丙\",\"text\":\"长江是中国最长的河流。\"}\n",
          fp);
    fclose(fp);
    snprintf(kbpath, sizeof(kbpath), "%s/t.kb", f->dir);
    ragd_err err = {0};
    ragd_kb_opts ko = {.path = kbpath};
    assert_int_equal(ragd_kb_open(&ko, &f->kb, &err), RAGD_OK);
    const char *paths[] = {path};
    ragd_kb_ingest_opts io = {.index = "t"};
    ragd_kb_ingest_stats st;
    assert_int_equal(ragd_kb_ingest(f->kb, paths, 1, &io, &st, &err), RAGD_OK);
    assert_int_equal(st.docs, 3);
    char *model = tu_shared("models/qwen2-tiny");
    assert_int_equal(ragd_tokenizer_load(model, &f->tok, &err), RAGD_OK);
    free(model);
    ragd_rag_opts ro = {.kb = f->kb, .tok = f->tok};
    assert_int_equal(ragd_rag_create(&ro, &f->rag, &err), RAGD_OK);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    ragd_rag_destroy(f->rag);
    ragd_tokenizer_destroy(f->tok);
    ragd_kb_close(f->kb);
    tu_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static const char *Q = "范廷颂是什么时候被任为主教的？";

static void test_golden_prompt(void **state) {
    fixture *f = *state;
    ragd_chat_msg msgs[] = {{"user", Q}};
    ragd_rag_query q = {.msgs = msgs, .n_msgs = 1, .mode = "bm25"};
    ragd_rag_prepared p;
    ragd_err err = {0};
    assert_int_equal(ragd_rag_prepare(f->rag, &q, &p, &err), RAGD_OK);
    /* TF-IDF over the index: the terms the index holds (范廷 廷颂 被任 任为 为主 in a, 主教 in a
     * and b, 教的 in b), merged back into the question's phrases */
    assert_string_equal(p.keywords.phrases.data, "范廷颂 被任为主教的");
    /* BM25: a holds the answer, b shares 主教, c nothing */
    assert_int_equal(p.sources.len, 2);
    assert_string_equal(p.sources.items[0].title, "甲");
    assert_string_equal(p.sources.items[1].title, "乙");
    assert_string_equal(p.sources.items[0].index, "t");
    assert_true(p.sources.items[0].score > p.sources.items[1].score);
    const char *golden = "<|im_start|>system\n" RAGD_RAG_DEFAULT_SYSTEM "<|im_end|>\n"
                         "<|im_start|>user\n"
                         "参考资料：\n\n"
                         "[1] 《甲》\n范廷颂于1963年被任为主教。\n\n"
                         "[2] 《乙》\n主教是天主教的神职。\n\n"
                         "问题：范廷颂是什么时候被任为主教的？<|im_end|>\n"
                         "<|im_start|>assistant\n";
    assert_string_equal(p.prompt.data, golden);
    /* the ids are the prompt's tokens, specials included */
    ragd_buf dec = {0};
    assert_int_equal(ragd_tokenizer_decode(f->tok, p.ids, p.n_ids, false, &dec, &err), RAGD_OK);
    assert_string_equal(dec.data, golden);
    assert_int_equal(p.ids[0], ragd_tokenizer_token_id(f->tok, "<|im_start|>"));
    assert_int_equal(p.timings.prompt_tokens, (int)p.n_ids);
    ragd_buf_free(&dec);
    ragd_rag_prepared_free(&p);

    /* top_k 1: only the best source, numbered [1] */
    q.top_k = 1;
    assert_int_equal(ragd_rag_prepare(f->rag, &q, &p, &err), RAGD_OK);
    assert_int_equal(p.sources.len, 1);
    assert_non_null(strstr(p.prompt.data, "[1] 《甲》"));
    assert_null(strstr(p.prompt.data, "[2] 《"));
    ragd_rag_prepared_free(&p);
}

static void test_errors(void **state) {
    fixture *f = *state;
    ragd_chat_msg msgs[] = {{"user", Q}};
    const char *missing[] = {"t", "nope"};
    ragd_rag_query q = {.msgs = msgs, .n_msgs = 1, .indexes = missing, .n_indexes = 2};
    ragd_rag_prepared p;
    ragd_err err = {0};
    assert_int_equal(ragd_rag_prepare(f->rag, &q, &p, &err), RAGD_ENOTFOUND);
    assert_non_null(strstr(err.msg, "'nope'"));
    /* vector mode without an embedding model */
    q.n_indexes = 1;
    q.mode = "vector";
    assert_int_equal(ragd_rag_prepare(f->rag, &q, &p, &err), RAGD_EINVAL);
    q.mode = "fuzzy";
    assert_int_equal(ragd_rag_prepare(f->rag, &q, &p, &err), RAGD_EINVAL);
    /* an empty knowledge base */
    char path[1024];
    snprintf(path, sizeof(path), "%s/empty.kb", f->dir);
    ragd_kb *empty;
    ragd_kb_opts ko = {.path = path};
    assert_int_equal(ragd_kb_open(&ko, &empty, &err), RAGD_OK);
    ragd_rag *r2;
    ragd_rag_opts ro = {.kb = empty, .tok = f->tok};
    assert_int_equal(ragd_rag_create(&ro, &r2, &err), RAGD_OK);
    q.mode = NULL;
    q.n_indexes = 0;
    assert_int_equal(ragd_rag_prepare(r2, &q, &p, &err), RAGD_EINVAL);
    assert_non_null(strstr(err.msg, "empty"));
    ragd_rag_destroy(r2);
    ragd_kb_close(empty);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_prompt),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
