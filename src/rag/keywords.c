/* keywords.c - TF-IDF keyword extraction; see keywords.h. */
#include "rag/keywords.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/vec.h"

typedef struct term_occ {
    size_t term_start, term_len; /* into the term text arena */
    size_t start, end;           /* byte range in the question */
} term_occ;

typedef struct collect_ctx {
    ragd_buf text; /* concatenated term bytes */
    RAGD_VEC(term_occ) occ;
    int oom;
} collect_ctx;

static int collect(void *vctx, const char *term, size_t term_len, size_t start, size_t end) {
    collect_ctx *c = vctx;
    term_occ o = {c->text.len, term_len, start, end};
    if (ragd_buf_append(&c->text, term, term_len) || RAGD_VEC_PUSH(&c->occ, o)) {
        c->oom = 1;
        return RAGD_ENOMEM;
    }
    return 0;
}

typedef struct distinct {
    size_t first; /* index of its first occurrence */
    int tf;
    int64_t df;
    double score;
    int kept;
} distinct;

static int by_score(const void *a, const void *b) {
    const distinct *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->first < y->first ? -1 : x->first > y->first; /* earlier term first on ties */
}

typedef struct span {
    size_t start, end;
} span;

static int by_start(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

int ragd_keywords_extract(const ragd_kw_opts *opts, const char *q, size_t len, ragd_keywords *out,
                          ragd_err *err) {
    memset(out, 0, sizeof(*out));
    if (!opts || !opts->analyze || !opts->df)
        return ragd_err_set(err, RAGD_EINVAL, "keyword extraction needs an analyzer and df");
    size_t max_terms = opts->max_terms ? opts->max_terms : 8;
    double min_ratio = opts->min_ratio > 0 ? opts->min_ratio : 0.3;
    collect_ctx c = {0};
    int rc = opts->analyze(q, len, collect, &c);
    distinct *d = NULL;
    const char **terms = NULL;
    size_t *lens = NULL;
    int64_t *df = NULL;
    span *spans = NULL;
    if (rc || c.oom) {
        rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory analysing the question");
        goto done;
    }
    size_t n_occ = c.occ.len, n_d = 0;
    if (!n_occ) goto done; /* nothing searchable: no keywords */
    d = calloc(n_occ, sizeof(*d));
    terms = calloc(n_occ, sizeof(*terms));
    lens = calloc(n_occ, sizeof(*lens));
    df = calloc(n_occ, sizeof(*df));
    spans = calloc(n_occ, sizeof(*spans));
    if (!d || !terms || !lens || !df || !spans) {
        rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        goto done;
    }
    /* distinct terms with their tf (questions are short: quadratic is fine) */
    for (size_t i = 0; i < n_occ; i++) {
        const term_occ *o = &c.occ.data[i];
        size_t j = 0;
        for (; j < n_d; j++) {
            const term_occ *f = &c.occ.data[d[j].first];
            if (f->term_len == o->term_len &&
                !memcmp(c.text.data + f->term_start, c.text.data + o->term_start, o->term_len))
                break;
        }
        if (j == n_d) {
            d[n_d].first = i;
            terms[n_d] = c.text.data + o->term_start;
            lens[n_d] = o->term_len;
            n_d++;
        }
        d[j].tf++;
    }
    int64_t n_docs = 0;
    if ((rc = opts->df(opts->df_ctx, terms, lens, n_d, df, &n_docs, err))) goto done;
    for (size_t j = 0; j < n_d; j++) {
        d[j].df = df[j];
        double N = (double)(n_docs > 0 ? n_docs : 0), f = (double)(df[j] > 0 ? df[j] : 0);
        if (f > N) f = N;
        d[j].score = d[j].tf * log(1.0 + (N - f + 0.5) / (f + 0.5));
    }
    qsort(d, n_d, sizeof(*d), by_score);
    /* a term no chunk contains cannot help retrieval: it is neither kept nor the reference */
    double best = 0;
    for (size_t j = 0; j < n_d; j++)
        if (d[j].df > 0 && d[j].score > best) best = d[j].score;
    size_t keep = 0;
    for (size_t j = 0; j < n_d && keep < max_terms; j++) {
        if (d[j].df <= 0 || d[j].score < min_ratio * best) continue;
        d[j].kept = 1;
        keep++;
    }
    out->terms = calloc(keep ? keep : 1, sizeof(*out->terms));
    if (!out->terms) {
        rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        goto done;
    }
    size_t n_spans = 0;
    for (size_t j = 0; j < n_d; j++) {
        if (!d[j].kept) continue;
        const term_occ *f = &c.occ.data[d[j].first];
        ragd_keyword *k = &out->terms[out->n_terms++];
        k->term = strndup(c.text.data + f->term_start, f->term_len);
        k->df = d[j].df;
        k->score = d[j].score;
        if (!k->term) {
            rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
            goto done;
        }
        /* every occurrence of a kept term marks its span */
        for (size_t i = 0; i < n_occ; i++) {
            const term_occ *o = &c.occ.data[i];
            if (o->term_len == f->term_len &&
                !memcmp(c.text.data + o->term_start, c.text.data + f->term_start, f->term_len))
                spans[n_spans++] = (span){o->start, o->end};
        }
    }
    qsort(spans, n_spans, sizeof(*spans), by_start);
    for (size_t i = 0; i < n_spans;) {
        size_t s = spans[i].start, e = spans[i].end;
        for (i++; i < n_spans && spans[i].start <= e; i++)
            if (spans[i].end > e) e = spans[i].end;
        if (out->phrases.len && ragd_buf_putc(&out->phrases, ' ')) rc = RAGD_ENOMEM;
        if (ragd_buf_append(&out->phrases, q + s, e - s)) rc = RAGD_ENOMEM;
        if (rc) {
            ragd_err_set(err, RAGD_ENOMEM, "out of memory");
            goto done;
        }
    }
done:
    if (rc) ragd_keywords_free(out);
    free(d);
    free(terms);
    free(lens);
    free(df);
    free(spans);
    ragd_buf_free(&c.text);
    RAGD_VEC_FREE(&c.occ);
    return rc;
}

void ragd_keywords_free(ragd_keywords *kw) {
    for (size_t i = 0; i < kw->n_terms; i++) free(kw->terms[i].term);
    free(kw->terms);
    ragd_buf_free(&kw->phrases);
    memset(kw, 0, sizeof(*kw));
}
