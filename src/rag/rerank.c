/* rerank.c - source merge and the fused-score reranker; see rerank.h. */
#include "rag/rerank.h"

#include <stdlib.h>
#include <string.h>

static void source_free(ragd_rag_source *x) {
    free(x->index);
    free(x->document);
    free(x->title);
    free(x->text);
}

int ragd_rag_sources_add(ragd_rag_sources *s, const char *index, const char *document,
                         const char *title, int64_t chunk_id, double score, const char *text,
                         size_t text_len) {
    for (size_t i = 0; i < s->len; i++) {
        if (s->items[i].chunk_id == chunk_id && !strcmp(s->items[i].index, index)) {
            s->items[i].score += score;
            return RAGD_OK;
        }
    }
    if (s->len == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        ragd_rag_source *p = realloc(s->items, cap * sizeof(*p));
        if (!p) return RAGD_ENOMEM;
        s->items = p;
        s->cap = cap;
    }
    ragd_rag_source x = {0};
    x.index = strdup(index);
    x.document = strdup(document ? document : "");
    x.title = title ? strdup(title) : NULL;
    x.text = strndup(text ? text : "", text ? text_len : 0);
    x.chunk_id = chunk_id;
    x.score = score;
    if (!x.index || !x.document || (title && !x.title) || !x.text) {
        source_free(&x);
        return RAGD_ENOMEM;
    }
    s->items[s->len++] = x;
    return RAGD_OK;
}

void ragd_rag_sources_truncate(ragd_rag_sources *s, size_t n) {
    for (size_t i = n; i < s->len; i++) source_free(&s->items[i]);
    if (n < s->len) s->len = n;
}

void ragd_rag_sources_free(ragd_rag_sources *s) {
    ragd_rag_sources_truncate(s, 0);
    free(s->items);
    memset(s, 0, sizeof(*s));
}

static int by_fused(const void *a, const void *b) {
    const ragd_rag_source *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    int c = strcmp(x->index, y->index);
    if (c) return c;
    return x->chunk_id < y->chunk_id ? -1 : x->chunk_id > y->chunk_id;
}

static int rerank_fused(void *ctx, const char *question, ragd_rag_source *src, size_t n,
                        ragd_err *err) {
    (void)ctx, (void)question, (void)err;
    if (n > 1) qsort(src, n, sizeof(*src), by_fused);
    return RAGD_OK;
}

const ragd_reranker ragd_reranker_fused = {"fused", rerank_fused, NULL};
