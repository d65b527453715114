/* keywords.h - TF-IDF keyword extraction from a question, against the knowledge base's own
 * statistics and with the knowledge base's own analysis (the analyzer that feeds the BM25
 * index: CJK bigrams + words), so a keyword is exactly a term the index knows.
 *
 * Each distinct term t of the question gets tf(t) * idf(t) with the BM25 idf
 * ln(1 + (N - df + 0.5) / (df + 0.5)) over the N chunks of the searched indexes. The best
 * terms are kept (at most max_terms; those scoring below min_ratio of the best are dropped),
 * then mapped back to the question: overlapping or touching byte ranges of kept terms are
 * merged, so the bigrams 范廷 / 廷颂 become the phrase 范廷颂. The keyword string (phrases in
 * question order, separated by spaces) is searched and embedded beside the full question.
 * Called by the RAG pipeline. Thread-safety: reentrant.
 */
#ifndef RAGD_RAG_KEYWORDS_H
#define RAGD_RAG_KEYWORDS_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/str.h"

/* Same shape as the knowledge base's analyzer (kb/analyzer.h: ragd_kb_analyze). */
typedef int (*ragd_kw_term_fn)(void *ctx, const char *term, size_t term_len, size_t start,
                               size_t end);
typedef int (*ragd_kw_analyze_fn)(const char *text, size_t len, ragd_kw_term_fn fn, void *ctx);

/* Document frequency of n terms (df[i] for terms[i], term_lens[i] bytes) and the number of
 * documents (chunks) they are counted over. */
typedef int (*ragd_kw_df_fn)(void *ctx, const char *const *terms, const size_t *term_lens, size_t n,
                             int64_t *df, int64_t *n_docs, ragd_err *err);

typedef struct ragd_kw_opts {
    ragd_kw_analyze_fn analyze;
    ragd_kw_df_fn df;
    void *df_ctx;
    size_t max_terms; /* 0 = 8 */
    double min_ratio; /* 0 = 0.3 */
} ragd_kw_opts;

typedef struct ragd_keyword {
    char *term; /* the analysed term, NUL-terminated */
    int64_t df;
    double score; /* tf * idf */
} ragd_keyword;

typedef struct ragd_keywords {
    ragd_keyword *terms; /* kept terms, best first */
    size_t n_terms;
    ragd_buf phrases; /* merged question spans, space-separated, question order */
} ragd_keywords;

int ragd_keywords_extract(const ragd_kw_opts *opts, const char *question, size_t len,
                          ragd_keywords *out, ragd_err *err);
void ragd_keywords_free(ragd_keywords *kw);

#endif
