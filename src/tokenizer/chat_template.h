/* chat_template.h - render chat messages into a prompt exactly as transformers'
 * apply_chat_template does for the supported template families (ChatML / Qwen2.5 first).
 * The template string is recognised (not executed as arbitrary Jinja); an unknown template
 * gives RAGD_EUNSUPPORTED with a clear message.
 * Thread-safety: pure functions.
 */
#ifndef RAGD_TOKENIZER_CHAT_TEMPLATE_H
#define RAGD_TOKENIZER_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"
#include "util/str.h"

typedef struct ragd_chat_msg {
    const char *role;    /* "system", "user", "assistant", "tool" */
    const char *content; /* UTF-8, NUL-terminated */
} ragd_chat_msg;

typedef struct ragd_chat_template ragd_chat_template;

/* template_str: the chat_template from tokenizer_config.json. */
int ragd_chat_template_create(const char *template_str, ragd_chat_template **out, ragd_err *err);
void ragd_chat_template_destroy(ragd_chat_template *t);
const char *ragd_chat_template_family(const ragd_chat_template *t); /* e.g. "qwen2.5-chatml" */
int ragd_chat_render(const ragd_chat_template *t, const ragd_chat_msg *msgs, size_t n_msgs,
                     bool add_generation_prompt, ragd_buf *out, ragd_err *err);

#endif
