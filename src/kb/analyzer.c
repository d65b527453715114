/* analyzer.c - CJK bigram + folded-word analysis and the "ragd_cjk" FTS5 tokenizer. */
#include "kb/analyzer.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static int is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) ||   /* CJK unified ideographs */
           (c >= 0x3400 && c <= 0x4DBF) ||   /* extension A */
           (c >= 0x20000 && c <= 0x3134F) || /* extensions B..G */
           (c >= 0xF900 && c <= 0xFAFF) ||   /* compatibility ideographs */
           (c >= 0x3040 && c <= 0x30FF) ||   /* hiragana, katakana */
           (c >= 0x31F0 && c <= 0x31FF) ||   /* katakana phonetic extensions */
           (c >= 0xFF66 && c <= 0xFF9F) ||   /* halfwidth katakana */
           (c >= 0xAC00 && c <= 0xD7AF) ||   /* hangul syllables */
           (c >= 0x1100 && c <= 0x11FF) ||   /* hangul jamo */
           (c >= 0x3130 && c <= 0x318F) ||   /* hangul compatibility jamo */
           c == 0x3005 || c == 0x3007;       /* 々 〇 */
}

static int is_word(uint32_t c) {
    if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    switch (utf8proc_category((utf8proc_int32_t)c)) {
        case UTF8PROC_CATEGORY_LU:
        case UTF8PROC_CATEGORY_LL:
        case UTF8PROC_CATEGORY_LT:
        case UTF8PROC_CATEGORY_LM:
        case UTF8PROC_CATEGORY_LO:
        case UTF8PROC_CATEGORY_ND:
        case UTF8PROC_CATEGORY_NL:
        case UTF8PROC_CATEGORY_NO:
        case UTF8PROC_CATEGORY_MN:
        case UTF8PROC_CATEGORY_MC:
        case UTF8PROC_CATEGORY_ME:
            return 1;
        default:
            return 0;
    }
}

/* Decode one code point; invalid bytes give cp = 0xFFFFFFFF (a separator). */
static size_t next_cp(const char *s, size_t n, size_t i, uint32_t *cp) {
    utf8proc_int32_t c;
    utf8proc_ssize_t k =
        utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &c);
    if (k <= 0) {
        *cp = 0xFFFFFFFFu;
        return 1;
    }
    *cp = (uint32_t)c;
    return (size_t)k;
}

static int emit_word(const char *text, size_t start, size_t end, ragd_analyze_fn fn, void *ctx) {
    size_t n = end - start;
    int ascii = 1;
    for (size_t i = start; i < end; i++)
        if ((unsigned char)text[i] >= 0x80) ascii = 0;
    if (ascii && n <= 256) {
        char tmp[256];
        for (size_t i = 0; i < n; i++) {
            char c = text[start + i];
            tmp[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
        }
        return fn(ctx, tmp, n, start, end);
    }
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t m =
        utf8proc_map((const utf8proc_uint8_t *)text + start, (utf8proc_ssize_t)n, &dst,
                     UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD |
                         UTF8PROC_STRIPMARK | UTF8PROC_IGNORE);
    if (m < 0) return RAGD_ENOMEM;
    int rc = m > 0 ? fn(ctx, (const char *)dst, (size_t)m, start, end) : 0;
    free(dst);
    return rc;
}

int ragd_kb_analyze(const char *text, size_t len, ragd_analyze_fn fn, void *ctx) {
    size_t i = 0;
    while (i < len) {
        uint32_t c;
        size_t k = next_cp(text, len, i, &c);
        if (c != 0xFFFFFFFFu && is_cjk(c)) {
            /* a CJK run: bigrams, or the single character */
            size_t p0 = i, p1 = i + k; /* previous char [p0,p1) */
            size_t j = p1, count = 1;
            while (j < len) {
                uint32_t d;
                size_t kk = next_cp(text, len, j, &d);
                if (d == 0xFFFFFFFFu || !is_cjk(d)) break;
                int rc = fn(ctx, text + p0, j + kk - p0, p0, j + kk);
                if (rc) return rc;
                p0 = j;
                j += kk;
                count++;
            }
            if (count == 1) {
                int rc = fn(ctx, text + i, k, i, i + k);
                if (rc) return rc;
            }
            i = j;
        } else if (c != 0xFFFFFFFFu && is_word(c)) {
            size_t j = i + k;
            while (j < len) {
                uint32_t d;
                size_t kk = next_cp(text, len, j, &d);
                if (d == 0xFFFFFFFFu || is_cjk(d) || !is_word(d)) break;
                j += kk;
            }
            int rc = emit_word(text, i, j, fn, ctx);
            if (rc) return rc;
            i = j;
        } else {
            i += k;
        }
    }
    return 0;
}

/* ---- FTS5 query construction ---- */

typedef struct {
    ragd_buf *out;
    size_t max_terms, n;
    ragd_buf seen; /* "\x01term\x01term..." small-set membership */
    int oom;
    int terms_only; /* NUL-terminated terms instead of a MATCH expression */
} q_ctx;

static int q_term(void *vctx, const char *t, size_t n, size_t s, size_t e) {
    q_ctx *q = vctx;
    (void)s;
    (void)e;
    if (q->n >= q->max_terms) return 1;
    /* distinct terms only: linear scan is fine for query-sized text */
    const char *h = q->seen.data;
    size_t hl = q->seen.len, pos = 0;
    while (h && pos < hl) {
        const char *nx = memchr(h + pos, '\x01', hl - pos);
        size_t tl = (nx ? (size_t)(nx - h) : hl) - pos;
        if (tl == n && !memcmp(h + pos, t, n)) return 0;
        pos += tl + 1;
    }
    if (ragd_buf_append(&q->seen, t, n) || ragd_buf_putc(&q->seen, '\x01')) {
        q->oom = 1;
        return 1;
    }
    ragd_buf *o = q->out;
    int rc = 0;
    if (q->terms_only) {
        rc = ragd_buf_append(o, t, n) || ragd_buf_putc(o, '\0');
    } else {
        if (q->n) rc |= ragd_buf_puts(o, " OR ");
        rc |= ragd_kb_fts_quote(o, t, n);
    }
    if (rc) {
        q->oom = 1;
        return 1;
    }
    q->n++;
    return 0;
}

int ragd_kb_fts_quote(ragd_buf *o, const char *t, size_t n) {
    int rc = ragd_buf_putc(o, '"');
    for (size_t i = 0; i < n; i++) {
        if (t[i] == '"') rc |= ragd_buf_putc(o, '"');
        rc |= ragd_buf_putc(o, t[i]);
    }
    rc |= ragd_buf_putc(o, '"');
    return rc ? RAGD_ENOMEM : RAGD_OK;
}

static int query_run(const char *text, size_t len, size_t max_terms, int terms_only, ragd_buf *out,
                     size_t *n_terms) {
    q_ctx q = {out, max_terms ? max_terms : 256, 0, {0}, 0, terms_only};
    size_t mark = out->len;
    int rc = ragd_kb_analyze(text, len, q_term, &q);
    ragd_buf_free(&q.seen);
    if (q.oom || rc == RAGD_ENOMEM) {
        out->len = mark;
        if (out->data) out->data[mark] = 0;
        return RAGD_ENOMEM;
    }
    if (n_terms) *n_terms = q.n;
    return RAGD_OK;
}

int ragd_kb_fts_query(const char *text, size_t len, size_t max_terms, ragd_buf *out,
                      size_t *n_terms) {
    return query_run(text, len, max_terms, 0, out, n_terms);
}

int ragd_kb_query_terms(const char *text, size_t len, size_t max_terms, ragd_buf *out,
                        size_t *n_terms) {
    return query_run(text, len, max_terms, 1, out, n_terms);
}

/* ---- FTS5 tokenizer ---- */

typedef struct {
    void *pctx;
    int (*xToken)(void *, int, const char *, int, int, int);
} tok_ctx;

static int tok_term(void *vctx, const char *t, size_t n, size_t s, size_t e) {
    tok_ctx *c = vctx;
    int rc = c->xToken(c->pctx, 0, t, (int)n, (int)s, (int)e);
    return rc == SQLITE_OK ? 0 : rc;
}

static int tk_create(void *unused, const char **argv, int argc, Fts5Tokenizer **out) {
    (void)unused;
    (void)argv;
    (void)argc;
    static int dummy;
    *out = (Fts5Tokenizer *)&dummy;
    return SQLITE_OK;
}

static void tk_delete(Fts5Tokenizer *t) {
    (void)t;
}

static int tk_tokenize(Fts5Tokenizer *t, void *pctx, int flags, const char *text, int n,
                       int (*xToken)(void *, int, const char *, int, int, int)) {
    (void)t;
    (void)flags;
    tok_ctx c = {pctx, xToken};
    int rc = ragd_kb_analyze(text, (size_t)n, tok_term, &c);
    if (rc == RAGD_ENOMEM) return SQLITE_NOMEM;
    return rc;
}

int ragd_kb_register_rank(void *fts5_api_ptr); /* fts5_rank.c */

static fts5_api *get_fts5(sqlite3 *db) {
    fts5_api *api = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &st, NULL) != SQLITE_OK) return NULL;
    sqlite3_bind_pointer(st, 1, (void *)&api, "fts5_api_ptr", NULL);
    sqlite3_step(st);
    sqlite3_finalize(st);
    return api;
}

int ragd_kb_register_tokenizer(void *sqlite_db, ragd_err *err) {
    sqlite3 *db = sqlite_db;
    fts5_api *api = get_fts5(db);
    if (!api) return ragd_err_set(err, RAGD_EUNSUPPORTED, "SQLite was built without FTS5");
    static fts5_tokenizer tk = {tk_create, tk_delete, tk_tokenize};
    if (api->xCreateTokenizer(api, "ragd_cjk", NULL, &tk, NULL) != SQLITE_OK ||
        ragd_kb_register_rank(api) != SQLITE_OK)
        return ragd_err_set(err, RAGD_EINTERNAL, "cannot register FTS5 tokenizer: %s",
                            sqlite3_errmsg(db));
    return RAGD_OK;
}
