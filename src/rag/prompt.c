/* prompt.c - see prompt.h. */
#include "rag/prompt.h"

#include <stdlib.h>
#include <string.h>

static int source_block(ragd_buf *b, size_t num, const ragd_rag_source *s) {
    int rc = ragd_buf_printf(b, "[%zu] ", num);
    if (!rc && s->title && *s->title) rc = ragd_buf_printf(b, "《%s》\n", s->title);
    if (!rc) rc = ragd_buf_puts(b, s->text);
    if (!rc) rc = ragd_buf_puts(b, "\n\n");
    return rc;
}

int ragd_prompt_user_message(const char *question, const ragd_rag_source *const *sources, size_t n,
                             ragd_buf *out) {
    int rc = RAGD_OK;
    if (n) rc = ragd_buf_puts(out, "参考资料：\n\n");
    for (size_t i = 0; i < n && !rc; i++) rc = source_block(out, i + 1, sources[i]);
    if (!rc) rc = ragd_buf_puts(out, "问题：");
    if (!rc) rc = ragd_buf_puts(out, question);
    return rc ? RAGD_ENOMEM : RAGD_OK;
}

/* Render the conversation with the given sources; count its tokens. */
static int render(const ragd_prompt_opts *o, const ragd_chat_msg *msgs, size_t n_msgs,
                  const ragd_rag_source *const *sel, size_t n_sel, ragd_chat_msg *work,
                  ragd_buf *out, size_t *n_tokens, ragd_err *err) {
    ragd_buf user = {0};
    int rc = ragd_prompt_user_message(msgs[n_msgs - 1].content, sel, n_sel, &user);
    if (rc) return ragd_err_set(err, rc, "out of memory");
    work[0] = (ragd_chat_msg){"system", o->system ? o->system : RAGD_RAG_DEFAULT_SYSTEM};
    size_t k = 1;
    for (size_t i = 0; i + 1 < n_msgs; i++) {
        if (!strcmp(msgs[i].role, "system")) continue; /* our instruction replaces it */
        work[k++] = msgs[i];
    }
    work[k++] = (ragd_chat_msg){"user", user.data};
    ragd_buf_clear(out);
    rc = o->render(o->render_ctx, work, k, out, err);
    if (!rc) rc = o->count_tokens(o->count_ctx, out->data, out->len, n_tokens, err);
    ragd_buf_free(&user);
    return rc;
}

int ragd_prompt_build(const ragd_prompt_opts *o, const ragd_chat_msg *msgs, size_t n_msgs,
                      const ragd_rag_source *sources, size_t n_sources, ragd_buf *prompt,
                      size_t *n_tokens, bool *used, ragd_err *err) {
    if (!o || !o->render || !o->count_tokens)
        return ragd_err_set(err, RAGD_EINVAL, "prompt assembly needs a renderer and a tokenizer");
    if (!n_msgs || strcmp(msgs[n_msgs - 1].role, "user"))
        return ragd_err_set(err, RAGD_EINVAL, "the last message must be the user's question");
    for (size_t i = 0; i < n_sources; i++) used[i] = false;
    const ragd_rag_source **sel = calloc(n_sources + 1, sizeof(*sel));
    ragd_chat_msg *work = calloc(n_msgs + 1, sizeof(*work));
    size_t n_sel = 0, tokens = 0;
    int rc = RAGD_OK;
    if (!sel || !work) {
        rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = render(o, msgs, n_msgs, sel, 0, work, prompt, &tokens, err))) goto done;
    if (tokens > o->max_prompt_tokens) {
        rc = ragd_err_set(err, RAGD_EINVAL,
                          "the conversation alone is %zu tokens, over the prompt budget of %zu",
                          tokens, o->max_prompt_tokens);
        goto done;
    }
    /* Fast path: the tokens of a source's block are (almost always) additive, because the
     * blocks are separated by newlines where the pre-tokenizer splits anyway. Choose by the
     * block counts, then check the exact rendered length once. */
    size_t base = tokens, est = base, n_est = 0;
    for (size_t i = 0; i < n_sources; i++) {
        ragd_buf blk = {0};
        size_t t = 0;
        if (source_block(&blk, n_est + 1, &sources[i])) rc = RAGD_ENOMEM;
        if (!rc) rc = o->count_tokens(o->count_ctx, blk.data, blk.len, &t, err);
        ragd_buf_free(&blk);
        if (rc) {
            if (rc == RAGD_ENOMEM) ragd_err_set(err, rc, "out of memory");
            goto done;
        }
        if (est + t <= o->max_prompt_tokens) {
            used[i] = true;
            sel[n_est++] = &sources[i];
            est += t;
        }
    }
    if ((rc = render(o, msgs, n_msgs, sel, n_est, work, prompt, &tokens, err))) goto done;
    if (tokens <= o->max_prompt_tokens) goto done;
    /* Slow path (the estimate was short): add sources in rank order, each checked against the
     * exact rendered length. */
    for (size_t i = 0; i < n_sources; i++) used[i] = false;
    tokens = base;
    for (size_t i = 0; i < n_sources; i++) {
        sel[n_sel] = &sources[i];
        size_t t = 0;
        if ((rc = render(o, msgs, n_msgs, sel, n_sel + 1, work, prompt, &t, err))) goto done;
        if (t <= o->max_prompt_tokens) {
            used[i] = true;
            n_sel++;
            tokens = t;
        }
    }
    rc = render(o, msgs, n_msgs, sel, n_sel, work, prompt, &tokens, err);
done:
    if (!rc && n_tokens) *n_tokens = tokens;
    free(sel);
    free(work);
    return rc;
}
