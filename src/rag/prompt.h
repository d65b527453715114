/* prompt.h - RAG prompt assembly: numbered sources plus the question, rendered through the
 * model's chat template, within a token budget.
 *
 * Messages: a system message with the instruction (answer only from the numbered sources,
 * cite them as [1], [2], ...; say so when they do not hold the answer), the conversation's
 * earlier turns unchanged, and the last user message rewritten as
 *
 *     参考资料：\n\n[1] 《title》\n<text>\n\n[2] ...\n\n问题：<question>
 *
 * ("《title》\n" only when the source has a title). Sources are taken in rank order while the
 * whole rendered prompt fits max_prompt_tokens; a source that does not fit is skipped and
 * the ones after it are still tried; numbering follows the sources actually used.
 * Called by the RAG pipeline. Thread-safety: reentrant.
 */
#ifndef RAGD_RAG_PROMPT_H
#define RAGD_RAG_PROMPT_H

#include <stdbool.h>
#include <stddef.h>

#include "rag/rerank.h"
#include "tokenizer/chat_template.h"
#include "util/err.h"
#include "util/str.h"

#define RAGD_RAG_DEFAULT_SYSTEM                                                                                                                  \
    "你是一个知识库问答助手。请只根据用户消息中编号的参考资料回答问题，并在用到资料的句子后用方括" \
    "号"                                                                                                                                        \
    "标注资料编号，例如 "                                                                                                               \
    "[1]、[2]。如果参考资料中没有答案，请直接说明资料中没有相关信息，不要编造。"

typedef struct ragd_prompt_opts {
    const char *system;       /* NULL = RAGD_RAG_DEFAULT_SYSTEM */
    size_t max_prompt_tokens; /* budget for the whole rendered prompt */
    /* Render messages with the model's chat template (generation prompt added). */
    int (*render)(void *ctx, const ragd_chat_msg *msgs, size_t n, ragd_buf *out, ragd_err *err);
    void *render_ctx;
    /* Number of model tokens of text (n bytes). */
    int (*count_tokens)(void *ctx, const char *text, size_t n, size_t *n_tokens, ragd_err *err);
    void *count_ctx;
} ragd_prompt_opts;

/* msgs[0..n) is the conversation; its last message must be the user's question. On success
 * prompt holds the rendered text, *n_tokens its token count, and used[i] (n_sources
 * entries) is true for the sources that went in (in order: [1], [2], ...). A conversation
 * that alone exceeds the budget -> RAGD_EINVAL. */
int ragd_prompt_build(const ragd_prompt_opts *opts, const ragd_chat_msg *msgs, size_t n_msgs,
                      const ragd_rag_source *sources, size_t n_sources, ragd_buf *prompt,
                      size_t *n_tokens, bool *used, ragd_err *err);

/* The rewritten user message for the given sources (the part the budget loop varies). */
int ragd_prompt_user_message(const char *question, const ragd_rag_source *const *sources, size_t n,
                             ragd_buf *out);

#endif
