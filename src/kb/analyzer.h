/* analyzer.h - the knowledge base's text analysis: CJK character bigrams (as Lucene's
 * CJKAnalyzer: a run of Han/Hiragana/Katakana/Hangul characters gives its overlapping
 * bigrams, or the lone character when the run has length 1) and unicode61-style words for
 * every other script (letters, digits and marks; NFKC case-folded, diacritics removed).
 *
 * The same analysis feeds the FTS5 index (tokenizer "ragd_cjk", registered on each SQLite
 * connection through fts5_api), BM25 query construction and the RAG pipeline's TF-IDF
 * keyword extraction, so terms always agree.
 * Thread-safety: all functions are reentrant.
 */
#ifndef RAGD_KB_ANALYZER_H
#define RAGD_KB_ANALYZER_H

#include <stddef.h>

#include "util/err.h"
#include "util/str.h"

/* Called once per term: term (UTF-8, not NUL-terminated), and the byte range [start, end)
 * of the source text it came from. Return non-zero to stop. */
typedef int (*ragd_analyze_fn)(void *ctx, const char *term, size_t term_len, size_t start,
                               size_t end);

/* Analyse text (len bytes). Invalid UTF-8 bytes act as separators. Returns 0, the
 * callback's non-zero value, or RAGD_ENOMEM. */
int ragd_kb_analyze(const char *text, size_t len, ragd_analyze_fn fn, void *ctx);

/* Build an FTS5 MATCH expression: the OR of the distinct analysed terms of text, each
 * quoted (at most max_terms; 0 = 256). Appends to out; sets *n_terms (may be NULL).
 * An empty result (no terms) leaves out untouched and *n_terms = 0. */
int ragd_kb_fts_query(const char *text, size_t len, size_t max_terms, ragd_buf *out,
                      size_t *n_terms);

/* The distinct analysed terms of text in order of first occurrence (at most max_terms; 0 =
 * 256), each followed by a NUL byte, appended to out; *n_terms set. */
int ragd_kb_query_terms(const char *text, size_t len, size_t max_terms, ragd_buf *out,
                        size_t *n_terms);
/* Append term (n bytes) as a quoted FTS5 string. */
int ragd_kb_fts_quote(ragd_buf *out, const char *term, size_t n);

/* Register the "ragd_cjk" FTS5 tokenizer on a SQLite connection (sqlite3 *). */
int ragd_kb_register_tokenizer(void *sqlite_db, ragd_err *err);

#endif
