/* response.c - see response.h. */
#include "rag/response.h"

#include <inttypes.h>
#include <string.h>

double ragd_rag_tokens_per_s(const ragd_rag_timings *t) {
    if (t->completion_tokens < 2 || t->generation_ms <= 0) return 0;
    return (t->completion_tokens - 1) * 1000.0 / t->generation_ms;
}

/* Byte length of the first max_chars characters of s (n bytes). */
static size_t prefix_chars(const char *s, size_t n, size_t max_chars) {
    size_t i = 0, k = 0;
    while (i < n && k < max_chars) {
        uint32_t cp;
        i += (size_t)ragd_utf8_decode(s + i, n - i, &cp);
        k++;
    }
    return i;
}

int ragd_rag_sources_json(ragd_buf *out, const ragd_rag_source *src, size_t n,
                          size_t excerpt_chars) {
    int rc = ragd_buf_putc(out, '[');
    for (size_t i = 0; i < n && !rc; i++) {
        const ragd_rag_source *s = &src[i];
        if (i) rc |= ragd_buf_putc(out, ',');
        rc |= ragd_buf_puts(out, "{\"index\":");
        rc |= ragd_buf_json_str(out, s->index, strlen(s->index));
        rc |= ragd_buf_puts(out, ",\"document\":");
        rc |= ragd_buf_json_str(out, s->document, strlen(s->document));
        rc |= ragd_buf_puts(out, ",\"title\":");
        rc |= ragd_buf_json_str(out, s->title ? s->title : "", s->title ? strlen(s->title) : 0);
        rc |= ragd_buf_printf(
            out, ",\"chunk_id\":%" PRId64 ",\"score\":%.6g,\"text\":", s->chunk_id, s->score);
        size_t len = strlen(s->text), cut = prefix_chars(s->text, len, excerpt_chars);
        if (cut < len) {
            ragd_buf t = {0};
            rc |= ragd_buf_append(&t, s->text, cut);
            rc |= ragd_buf_puts(&t, "…");
            rc |= ragd_buf_json_str(out, t.data, t.len);
            ragd_buf_free(&t);
        } else {
            rc |= ragd_buf_json_str(out, s->text, len);
        }
        rc |= ragd_buf_putc(out, '}');
    }
    rc |= ragd_buf_putc(out, ']');
    return rc ? RAGD_ENOMEM : RAGD_OK;
}

int ragd_rag_timings_json(ragd_buf *out, const ragd_rag_timings *t) {
    int rc = ragd_buf_printf(
        out,
        "{\"keywords_ms\":%.3f,\"embed_ms\":%.3f,\"search_ms\":%.3f,\"prompt_ms\":%.3f,"
        "\"ttft_ms\":%.3f,\"generation_ms\":%.3f,\"prompt_tokens\":%d,\"completion_tokens\":%d,"
        "\"tokens_per_s\":%.3f}",
        t->keywords_ms, t->embed_ms, t->search_ms, t->prompt_ms, t->ttft_ms, t->generation_ms,
        t->prompt_tokens, t->completion_tokens, ragd_rag_tokens_per_s(t));
    return rc ? RAGD_ENOMEM : RAGD_OK;
}
