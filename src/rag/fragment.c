/* fragment.c - see fragment.h for the release rule. */
#include "rag/fragment.h"

#include <stdlib.h>
#include <string.h>

int ragd_fragbuf_init(ragd_fragbuf *f, size_t min_chars, const char *punct, ragd_err *err) {
    memset(f, 0, sizeof(*f));
    f->min_chars = min_chars;
    if (!punct) punct = RAGD_FRAG_DEFAULT_PUNCT;
    size_t n = strlen(punct);
    if (!ragd_utf8_valid(punct, n))
        return ragd_err_set(err, RAGD_EINVAL, "punctuation set is not valid UTF-8");
    if (n) {
        f->punct = malloc(n * sizeof(*f->punct));
        if (!f->punct) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += (size_t)ragd_utf8_decode(punct + i, n - i, &cp);
        f->punct[f->n_punct++] = cp;
    }
    return RAGD_OK;
}

static int is_punct(const ragd_fragbuf *f, uint32_t cp) {
    for (size_t i = 0; i < f->n_punct; i++)
        if (f->punct[i] == cp) return 1;
    return 0;
}

static int release(ragd_fragbuf *f, size_t n, ragd_buf *out, size_t *ready) {
    if (ragd_buf_append(out, f->pending.data, n)) return RAGD_ENOMEM;
    memmove(f->pending.data, f->pending.data + n, f->pending.len - n);
    f->pending.len -= n;
    f->pending.data[f->pending.len] = '\0';
    if (ready) *ready = n;
    return RAGD_OK;
}

int ragd_fragbuf_push(ragd_fragbuf *f, const char *s, size_t n, ragd_buf *out, size_t *ready) {
    if (ready) *ready = 0;
    if (n && ragd_buf_append(&f->pending, s, n)) return RAGD_ENOMEM;
    if (!f->pending.len) return RAGD_OK;
    const char *p = f->pending.data;
    size_t complete = ragd_utf8_complete_prefix(p, f->pending.len);
    size_t chars = 0, cut = 0; /* cut: end of the last punctuation character */
    for (size_t i = 0; i < complete;) {
        uint32_t cp;
        i += (size_t)ragd_utf8_decode(p + i, complete - i, &cp);
        chars++;
        if (is_punct(f, cp)) cut = i;
    }
    if (cut) return release(f, cut, out, ready);
    if (complete && chars >= f->min_chars) return release(f, complete, out, ready);
    return RAGD_OK;
}

int ragd_fragbuf_flush(ragd_fragbuf *f, ragd_buf *out, size_t *ready) {
    if (ready) *ready = 0;
    if (!f->pending.len) return RAGD_OK;
    return release(f, f->pending.len, out, ready);
}

void ragd_fragbuf_free(ragd_fragbuf *f) {
    free(f->punct);
    ragd_buf_free(&f->pending);
    memset(f, 0, sizeof(*f));
}
