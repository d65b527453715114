/* Chat templates: the Qwen2.5 golden renders, family recognition, tool and system-message
 * paths, plain ChatML, unknown templates. */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

static char *qwen_template(void) {
    char *path = tu_shared("models/qwen2-tiny/tokenizer_config.json");
    if (!tu_exists(path)) {
        free(path);
        return NULL;
    }
    cJSON *cfg = tu_load_json(path);
    free(path);
    char *t = strdup(cJSON_GetObjectItem(cfg, "chat_template")->valuestring);
    cJSON_Delete(cfg);
    return t;
}

static void render(const ragd_chat_template *t, const ragd_chat_msg *m, size_t n, bool agp,
                   const char *want) {
    ragd_buf out = {0};
    ragd_err err = {0};
    assert_int_equal(ragd_chat_render(t, m, n, agp, &out, &err), 0);
    if (strcmp(out.data, want) != 0) fail_msg("rendered:\n%s\nwant:\n%s", out.data, want);
    ragd_buf_free(&out);
}

static void test_golden(void **state) {
    (void)state;
    char *tmpl = qwen_template();
    if (!tmpl) skip();
    ragd_chat_template *t;
    ragd_err err = {0};
    assert_int_equal(ragd_chat_template_create(tmpl, &t, &err), 0);
    assert_string_equal(ragd_chat_template_family(t), "qwen2.5-chatml");
    char *path = tu_shared("golden/qwen2_chat_template.json");
    cJSON *cases = tu_load_json(path);
    free(path);
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, cases) {
        const cJSON *msgs = cJSON_GetObjectItem(c, "messages");
        size_t nm = (size_t)cJSON_GetArraySize(msgs);
        ragd_chat_msg *m = calloc(nm, sizeof *m);
        for (size_t i = 0; i < nm; i++) {
            const cJSON *mi = cJSON_GetArrayItem(msgs, (int)i);
            m[i].role = cJSON_GetObjectItem(mi, "role")->valuestring;
            m[i].content = cJSON_GetObjectItem(mi, "content")->valuestring;
        }
        render(t, m, nm, cJSON_IsTrue(cJSON_GetObjectItem(c, "add_generation_prompt")),
               cJSON_GetObjectItem(c, "text")->valuestring);
        free(m);
        n++;
    }
    assert_true(n >= 4);
    cJSON_Delete(cases);
    ragd_chat_template_destroy(t);
    free(tmpl);
}

/* Paths of the template the golden file does not cover, rendered by the rules the template
 * text states (system only first, tool messages grouped into one user turn). */
static void test_qwen25_paths(void **state) {
    (void)state;
    char *tmpl = qwen_template();
    if (!tmpl) skip();
    ragd_chat_template *t;
    ragd_err err = {0};
    assert_int_equal(ragd_chat_template_create(tmpl, &t, &err), 0);
    ragd_chat_msg m[] = {{"user", "q"},           {"assistant", "a"}, {"tool", "r1"},
                         {"tool", "r2"},          {"system", "s2"},   {"tool", "r3"},
                         {"developer", "ignored"}};
    render(t, m, 7, false,
           "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
           "assistant.<|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"
           "a<|im_end|>\n<|im_start|>user\n<tool_response>\nr1\n</tool_response>\n"
           "<tool_response>\nr2\n</tool_response><|im_end|>\n<|im_start|>system\ns2<|im_end|>\n"
           "<|im_start|>user\n<tool_response>\nr3\n</tool_response><|im_end|>\n");
    ragd_chat_msg s[] = {{"system", ""}, {"user", "x"}};
    render(t, s, 2, true,
           "<|im_start|>system\n<|im_end|>\n<|im_start|>user\nx<|im_end|>\n"
           "<|im_start|>assistant\n");
    ragd_buf out = {0};
    assert_int_equal(ragd_chat_render(t, NULL, 0, true, &out, &err), RAGD_EINVAL);
    ragd_chat_msg bad[] = {{"user", NULL}};
    assert_int_equal(ragd_chat_render(t, bad, 1, true, &out, &err), RAGD_EINVAL);
    ragd_buf_free(&out);
    ragd_chat_template_destroy(t);
    /* a different default prompt is taken from the template text */
    const char *key = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
    char *p = strstr(tmpl, "system\\nYou are Qwen");
    assert_non_null(p);
    ragd_buf alt = {0};
    ragd_buf_append(&alt, tmpl, (size_t)(p - tmpl) + 8);
    ragd_buf_puts(&alt, "Be brief.");
    ragd_buf_puts(&alt, p + 8 + strlen(key));
    assert_int_equal(ragd_chat_template_create(alt.data, &t, &err), 0);
    ragd_chat_msg u[] = {{"user", "hi"}};
    render(t, u, 1, true,
           "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
           "<|im_start|>assistant\n");
    ragd_chat_template_destroy(t);
    ragd_buf_free(&alt);
    /* a reasoning variant is not this family */
    ragd_buf think = {0};
    ragd_buf_puts(&think, tmpl);
    ragd_buf_puts(&think, "{%- if enable_thinking %}<think>{%- endif %}");
    t = (ragd_chat_template *)1;
    assert_int_equal(ragd_chat_template_create(think.data, &t, &err), RAGD_EUNSUPPORTED);
    assert_null(t);
    ragd_buf_free(&think);
    free(tmpl);
}

static void test_plain_and_qwen2(void **state) {
    (void)state;
    ragd_chat_template *t;
    ragd_err err = {0};
    const char *chatml =
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
        "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt "
        "%}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    assert_int_equal(ragd_chat_template_create(chatml, &t, &err), 0);
    assert_string_equal(ragd_chat_template_family(t), "chatml");
    ragd_chat_msg m[] = {{"user", "hi"}, {"assistant", "yo"}};
    render(t, m, 2, true,
           "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|>\n"
           "<|im_start|>assistant\n");
    render(t, m, 1, false, "<|im_start|>user\nhi<|im_end|>\n");
    ragd_chat_template_destroy(t);
    const char *qwen2 =
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
        "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
        "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
        "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
        "{% endif %}";
    assert_int_equal(ragd_chat_template_create(qwen2, &t, &err), 0);
    assert_string_equal(ragd_chat_template_family(t), "qwen2-chatml");
    render(t, m, 1, true,
           "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nhi"
           "<|im_end|>\n<|im_start|>assistant\n");
    ragd_chat_msg s[] = {{"system", "S"}, {"user", "hi"}};
    render(t, s, 2, false, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n");
    ragd_chat_template_destroy(t);
}

static void test_unknown(void **state) {
    (void)state;
    static const char *bad[] = {
        "",
        "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] "
        "+ '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}",
        /* ChatML without the generation prompt branch */
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
        "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ragd_chat_template *t = (ragd_chat_template *)1;
        ragd_err err = {0};
        assert_int_equal(ragd_chat_template_create(bad[i], &t, &err), RAGD_EUNSUPPORTED);
        assert_null(t);
        assert_true(strlen(err.msg) > 10);
    }
    ragd_chat_template *t = (ragd_chat_template *)1;
    ragd_err err = {0};
    assert_int_equal(ragd_chat_template_create(NULL, &t, &err), RAGD_EUNSUPPORTED);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_qwen25_paths),
        cmocka_unit_test(test_plain_and_qwen2),
        cmocka_unit_test(test_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
