/* chat_template.c - recognise ChatML-family chat templates and render them the way
 * transformers' apply_chat_template (Jinja) does. See docs/ARCHITECTURE.md, "Chat templates".
 *
 * Recognition works on a normal form of the template text: whitespace and Jinja's '-'
 * trim markers dropped, double quotes turned into single ones, message['x'] written as
 * message.x, adjacent string literals joined ('a'+'b' -> 'ab'). The default system prompt
 * (when the template has one) is read from the template itself and replaced by a placeholder
 * before the comparison, so variants that differ only in that prompt are recognised too.
 */
#include "tokenizer/chat_template.h"

#include <stdlib.h>
#include <string.h>

enum family { FAM_QWEN25, FAM_QWEN2, FAM_CHATML };

struct ragd_chat_template {
    enum family fam;
    char *default_system; /* NULL when the family has none */
};

/* ---------------------------------------------------------------------------------------- */
/* normal form                                                                               */

static int normalise(const char *s, ragd_buf *out) {
    ragd_buf a = {0};
    int rc = RAGD_OK;
    /* 1. drop whitespace outside string literals, unify quotes */
    char q = 0;
    for (const char *p = s; *p && !rc; p++) {
        char c = *p;
        if (q) {
            if (c == '\\' && p[1]) {
                rc = ragd_buf_append(&a, p, 2);
                p++;
                continue;
            }
            if (c == q) {
                q = 0;
                c = '\'';
            }
            rc = ragd_buf_putc(&a, c);
            continue;
        }
        if (c == '\'' || c == '"') {
            q = c;
            rc = ragd_buf_putc(&a, '\'');
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
        rc = ragd_buf_putc(&a, c);
    }
    if (rc) {
        ragd_buf_free(&a);
        return rc;
    }
    /* 2. token rewrites */
    static const char *const rw[][2] = {
        {"{%-", "{%"},
        {"-%}", "%}"},
        {"{{-", "{{"},
        {"-}}", "}}"},
        {"'+'", ""},
        {"['role']", ".role"},
        {"['content']", ".content"},
    };
    const char *p = a.data ? a.data : "";
    while (*p && !rc) {
        size_t k;
        for (k = 0; k < sizeof rw / sizeof rw[0]; k++) {
            size_t n = strlen(rw[k][0]);
            if (strncmp(p, rw[k][0], n) == 0) {
                rc = ragd_buf_puts(out, rw[k][1]);
                p += n;
                break;
            }
        }
        if (k == sizeof rw / sizeof rw[0]) rc = ragd_buf_putc(out, *p++);
    }
    ragd_buf_free(&a);
    return rc;
}

/* The default system prompt: the literal after '<|im_start|>system\n inside one string
 * literal (not followed by the closing quote), up to <|im_end|>. Jinja escapes unescaped. */
static char *find_default_system(const char *tmpl, const char **lit_start, size_t *lit_len) {
    static const char key[] = "<|im_start|>system\\n";
    const char *p = tmpl;
    while ((p = strstr(p, key)) != NULL) {
        const char *b = p + sizeof key - 1;
        const char *e = strstr(b, "<|im_end|>");
        if (*b != '\'' && *b != '"' && e) {
            const char *stop = b;
            while (stop < e && *stop != '\'' && *stop != '"') stop++;
            if (stop == e) {
                ragd_buf out = {0};
                for (const char *c = b; c < e; c++) {
                    if (*c == '\\' && c + 1 < e) {
                        c++;
                        char r = *c == 'n' ? '\n' : *c == 't' ? '\t' : *c;
                        ragd_buf_putc(&out, r);
                    } else {
                        ragd_buf_putc(&out, *c);
                    }
                }
                *lit_start = b;
                *lit_len = (size_t)(e - b);
                return ragd_buf_steal(&out);
            }
        }
        p = b;
    }
    return NULL;
}

/* Plain ChatML and the Qwen2/Qwen1.5 form with a default system message, in normal form
 * (@SYS@ stands for the default system prompt). */
static const char CHATML_NF[] =
    "{%formessageinmessages%}{{'<|im_start|>'+message.role+'\\n'+message.content+"
    "'<|im_end|>\\n'}}{%endfor%}{%ifadd_generation_prompt%}{{'<|im_start|>assistant\\n'}}"
    "{%endif%}";
static const char QWEN2_NF[] =
    "{%formessageinmessages%}{%ifloop.firstandmessages[0].role!='system'%}{{'<|im_start|>"
    "system\\n@SYS@<|im_end|>\\n'}}{%endif%}{{'<|im_start|>'+message.role+'\\n'+message.content+"
    "'<|im_end|>\\n'}}{%endfor%}{%ifadd_generation_prompt%}{{'<|im_start|>assistant\\n'}}"
    "{%endif%}";

/* Qwen2.5 (tool-aware) family: every one of these pieces, none of the reasoning ones. */
static const char *const QWEN25_REQUIRED[] = {
    "{%iftools%}",
    "{%ifmessages[0].role=='system'%}",
    "{{'<|im_start|>system\\n'+messages[0].content+'<|im_end|>\\n'}}",
    "{{'<|im_start|>system\\n@SYS@<|im_end|>\\n'}}",
    "{%formessageinmessages%}",
    "{%if(message.role=='user')or(message.role=='system'andnotloop.first)or(message.role=="
    "'assistant'andnotmessage.tool_calls)%}{{'<|im_start|>'+message.role+'\\n'+message.content+"
    "'<|im_end|>\\n'}}",
    "{%elifmessage.role=='tool'%}",
    "{%if(loop.index0==0)or(messages[loop.index0-1].role!='tool')%}{{'<|im_start|>user'}}",
    "{{'\\n<tool_response>\\n'}}{{message.content}}{{'\\n</tool_response>'}}",
    "{%ifloop.lastor(messages[loop.index0+1].role!='tool')%}{{'<|im_end|>\\n'}}",
    "{%endfor%}{%ifadd_generation_prompt%}{{'<|im_start|>assistant\\n'}}{%endif%}",
};
static const char *const QWEN25_FORBIDDEN[] = {"<think>", "reasoning_content", "enable_thinking"};

int ragd_chat_template_create(const char *template_str, ragd_chat_template **out, ragd_err *err) {
    *out = NULL;
    if (!template_str || !*template_str)
        return ragd_err_set(err, RAGD_EUNSUPPORTED, "the model has no chat_template");
    const char *lit = NULL;
    size_t lit_len = 0;
    char *sys = find_default_system(template_str, &lit, &lit_len);
    ragd_buf src = {0}, nf = {0};
    int rc = RAGD_OK;
    if (sys) { /* replace the prompt literal by a placeholder (it has spaces we'd drop) */
        rc = ragd_buf_append(&src, template_str, (size_t)(lit - template_str)) ||
             ragd_buf_puts(&src, "@SYS@") || ragd_buf_puts(&src, lit + lit_len);
    } else {
        rc = ragd_buf_puts(&src, template_str);
    }
    if (!rc) rc = normalise(src.data, &nf);
    ragd_buf_free(&src);
    if (rc) {
        free(sys);
        ragd_buf_free(&nf);
        return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    }
    const char *n = nf.data ? nf.data : "";
    int fam = -1;
    if (strcmp(n, CHATML_NF) == 0) {
        fam = FAM_CHATML;
    } else if (sys && strcmp(n, QWEN2_NF) == 0) {
        fam = FAM_QWEN2;
    } else if (sys) {
        bool ok = true;
        for (size_t i = 0; ok && i < sizeof QWEN25_REQUIRED / sizeof QWEN25_REQUIRED[0]; i++)
            ok = strstr(n, QWEN25_REQUIRED[i]) != NULL;
        for (size_t i = 0; ok && i < sizeof QWEN25_FORBIDDEN / sizeof QWEN25_FORBIDDEN[0]; i++)
            ok = strstr(template_str, QWEN25_FORBIDDEN[i]) == NULL;
        if (ok) fam = FAM_QWEN25;
    }
    ragd_buf_free(&nf);
    if (fam < 0) {
        free(sys);
        return ragd_err_set(err, RAGD_EUNSUPPORTED,
                            "chat template not recognised (supported: Qwen2.5 ChatML with tools, "
                            "Qwen2 ChatML with a default system prompt, plain ChatML)");
    }
    ragd_chat_template *t = calloc(1, sizeof *t);
    if (!t) {
        free(sys);
        return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    }
    t->fam = (enum family)fam;
    if (fam == FAM_CHATML) {
        free(sys);
        sys = NULL;
    }
    t->default_system = sys;
    *out = t;
    return RAGD_OK;
}

void ragd_chat_template_destroy(ragd_chat_template *t) {
    if (!t) return;
    free(t->default_system);
    free(t);
}

const char *ragd_chat_template_family(const ragd_chat_template *t) {
    switch (t->fam) {
        case FAM_QWEN25:
            return "qwen2.5-chatml";
        case FAM_QWEN2:
            return "qwen2-chatml";
        case FAM_CHATML:
            return "chatml";
    }
    return "?";
}

static bool is(const char *role, const char *name) {
    return strcmp(role, name) == 0;
}

static int block(ragd_buf *o, const char *role, const char *content) {
    return ragd_buf_puts(o, "<|im_start|>") || ragd_buf_puts(o, role) || ragd_buf_putc(o, '\n') ||
                   ragd_buf_puts(o, content) || ragd_buf_puts(o, "<|im_end|>\n")
               ? RAGD_ENOMEM
               : RAGD_OK;
}

static int render_qwen25(const ragd_chat_template *t, const ragd_chat_msg *m, size_t n,
                         ragd_buf *o) {
    int rc = is(m[0].role, "system") ? block(o, "system", m[0].content)
                                     : block(o, "system", t->default_system);
    for (size_t i = 0; i < n && !rc; i++) {
        const char *r = m[i].role;
        if (is(r, "user") || (is(r, "system") && i > 0) || is(r, "assistant")) {
            rc = block(o, r, m[i].content);
        } else if (is(r, "tool")) {
            if (i == 0 || !is(m[i - 1].role, "tool")) rc = ragd_buf_puts(o, "<|im_start|>user");
            if (!rc)
                rc = ragd_buf_puts(o, "\n<tool_response>\n") || ragd_buf_puts(o, m[i].content) ||
                     ragd_buf_puts(o, "\n</tool_response>");
            if (!rc && (i + 1 == n || !is(m[i + 1].role, "tool")))
                rc = ragd_buf_puts(o, "<|im_end|>\n");
        } /* other roles render nothing, as in the template */
    }
    return rc;
}

int ragd_chat_render(const ragd_chat_template *t, const ragd_chat_msg *msgs, size_t n_msgs,
                     bool add_generation_prompt, ragd_buf *out, ragd_err *err) {
    if (n_msgs == 0 && t->fam != FAM_CHATML)
        return ragd_err_set(err, RAGD_EINVAL, "chat: at least one message is required");
    for (size_t i = 0; i < n_msgs; i++)
        if (!msgs[i].role || !msgs[i].content)
            return ragd_err_set(err, RAGD_EINVAL, "chat: message %zu has no %s", i,
                                msgs[i].role ? "content" : "role");
    int rc = RAGD_OK;
    switch (t->fam) {
        case FAM_QWEN25:
            rc = render_qwen25(t, msgs, n_msgs, out);
            break;
        case FAM_QWEN2:
            if (!is(msgs[0].role, "system")) rc = block(out, "system", t->default_system);
            /* fallthrough */
        case FAM_CHATML:
            for (size_t i = 0; i < n_msgs && !rc; i++)
                rc = block(out, msgs[i].role, msgs[i].content);
            break;
    }
    if (!rc && add_generation_prompt) rc = ragd_buf_puts(out, "<|im_start|>assistant\n");
    if (rc) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    if (!out->data) rc = ragd_buf_reserve(out, 0);
    if (out->data) out->data[out->len] = '\0';
    return rc;
}
