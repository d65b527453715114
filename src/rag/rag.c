/* rag.c - the RAG pipeline; see rag.h. */
#include "rag/rag.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kb/analyzer.h"
#include "rag/prompt.h"
#include "util/clock.h"

struct ragd_rag {
    ragd_rag_opts o;
    const ragd_chat_template *tmpl;
    ragd_chat_template *own_tmpl;
    ragd_metric *h_stage[6];
};

static const char *const stage_names[6] = {"keywords", "embed", "search",
                                           "prompt",   "ttft",  "generation"};

int ragd_rag_create(const ragd_rag_opts *opts, ragd_rag **out, ragd_err *err) {
    *out = NULL;
    if (!opts || !opts->kb || !opts->tok)
        return ragd_err_set(err, RAGD_EINVAL,
                            "the RAG pipeline needs a knowledge base and a tokenizer");
    ragd_rag *r = calloc(1, sizeof(*r));
    if (!r) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    r->o = *opts;
    if (r->o.top_k <= 0) r->o.top_k = 10;
    if (!r->o.reranker) r->o.reranker = &ragd_reranker_fused;
    const char *ts = ragd_tokenizer_chat_template(opts->tok);
    if (!ts) {
        free(r);
        return ragd_err_set(err, RAGD_EUNSUPPORTED,
                            "the model has no chat template (tokenizer_config.json)");
    }
    int rc = ragd_chat_template_create(ts, &r->own_tmpl, err);
    if (rc) {
        free(r);
        return rc;
    }
    r->tmpl = r->own_tmpl;
    for (int i = 0; i < 6; i++) {
        char labels[64];
        snprintf(labels, sizeof(labels), "stage=\"%s\"", stage_names[i]);
        r->h_stage[i] = opts->metrics
                            ? ragd_metrics_histogram(opts->metrics, "ragd_rag_stage_seconds",
                                                     "RAG request time per stage", labels,
                                                     ragd_metrics_latency_buckets,
                                                     ragd_metrics_latency_nbuckets)
                            : NULL;
    }
    *out = r;
    return RAGD_OK;
}

void ragd_rag_destroy(ragd_rag *r) {
    if (!r) return;
    ragd_chat_template_destroy(r->own_tmpl);
    free(r);
}

const ragd_tokenizer *ragd_rag_tokenizer(const ragd_rag *r) {
    return r->o.tok;
}
ragd_kb *ragd_rag_kb(const ragd_rag *r) {
    return r->o.kb;
}

void ragd_rag_observe(ragd_rag *r, const ragd_rag_timings *t) {
    const double v[6] = {t->keywords_ms, t->embed_ms, t->search_ms,
                         t->prompt_ms,   t->ttft_ms,  t->generation_ms};
    for (int i = 0; i < 6; i++) ragd_metric_observe(r->h_stage[i], v[i] / 1000.0);
}

/* --- prompt callbacks --- */
static int render_cb(void *ctx, const ragd_chat_msg *msgs, size_t n, ragd_buf *out, ragd_err *err) {
    return ragd_chat_render(ctx, msgs, n, true, out, err);
}

static int count_cb(void *ctx, const char *text, size_t n, size_t *n_tokens, ragd_err *err) {
    int32_t *ids = NULL;
    int rc = ragd_tokenizer_encode(ctx, text, n, &ids, n_tokens, err);
    free(ids);
    return rc;
}

static double ms_since(uint64_t t0) {
    return (double)(ragd_now_ns() - t0) / 1e6;
}

void ragd_rag_prepared_free(ragd_rag_prepared *p) {
    ragd_keywords_free(&p->keywords);
    ragd_rag_sources_free(&p->sources);
    ragd_buf_free(&p->prompt);
    free(p->ids);
    memset(p, 0, sizeof(*p));
}

int ragd_rag_submit(ragd_rag *r, const ragd_rag_prepared *p, const ragd_req_params *params,
                    ragd_engine_cb cb, void *ctx, const _Atomic bool *cancel, ragd_err *err) {
    if (!r->o.engine) return ragd_err_set(err, RAGD_EUNSUPPORTED, "no language model is loaded");
    return ragd_engine_submit(r->o.engine, p->ids, (int)p->n_ids, params, cb, ctx, cancel, err);
}

void ragd_rag_wake(ragd_rag *r) {
    if (r->o.engine) ragd_engine_wake(r->o.engine);
}

int ragd_rag_indexes_json(ragd_kb *kb, ragd_buf *out, ragd_err *err) {
    ragd_store_index *ix = NULL;
    size_t n = 0;
    int rc = ragd_kb_list(kb, &ix, &n, err);
    if (rc) return rc;
    rc |= ragd_buf_puts(out, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < n; i++) {
        rc |= ragd_buf_puts(out, i ? ",{\"name\":" : "{\"name\":");
        rc |= ragd_buf_json_str(out, ix[i].name, strlen(ix[i].name));
        rc |= ragd_buf_printf(
            out, ",\"documents\":%lld,\"chunks\":%lld,\"vectors\":%lld,\"embed_model\":",
            (long long)ix[i].n_docs, (long long)ix[i].n_chunks, (long long)ix[i].n_vectors);
        rc |= ragd_buf_json_str(out, ix[i].embed_model, strlen(ix[i].embed_model));
        rc |= ragd_buf_printf(out, ",\"dim\":%d}", ix[i].dim);
    }
    rc |= ragd_buf_puts(out, "]}");
    free(ix);
    return rc ? ragd_err_set(err, RAGD_ENOMEM, "out of memory") : RAGD_OK;
}

/* --- keywords: TF-IDF against the searched indexes' own statistics --- */

typedef struct df_ctx {
    ragd_kb *kb;
    const char *const *indexes;
    size_t n_indexes;
} df_ctx;

static int df_cb(void *vctx, const char *const *terms, const size_t *lens, size_t n, int64_t *df,
                 int64_t *n_docs, ragd_err *err) {
    df_ctx *c = vctx;
    /* the kb wants NUL-terminated terms */
    char **t = calloc(n ? n : 1, sizeof(*t));
    int64_t *d = calloc(n ? n : 1, sizeof(*d));
    int rc = (!t || !d) ? ragd_err_set(err, RAGD_ENOMEM, "out of memory") : RAGD_OK;
    for (size_t i = 0; i < n && !rc; i++)
        if (!(t[i] = strndup(terms[i], lens[i])))
            rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    *n_docs = 0;
    for (size_t i = 0; i < n; i++) df[i] = 0;
    for (size_t x = 0; x < c->n_indexes && !rc; x++) {
        int64_t nd = 0;
        rc = ragd_kb_term_stats(c->kb, c->indexes[x], (const char *const *)t, n, d, &nd, err);
        for (size_t i = 0; i < n && !rc; i++) df[i] += d[i];
        *n_docs += nd;
    }
    for (size_t i = 0; t && i < n; i++) free(t[i]);
    free(t);
    free(d);
    return rc;
}

static int analyze_cb(const char *text, size_t len, ragd_kw_term_fn fn, void *ctx) {
    return ragd_kb_analyze(text, len, fn, ctx);
}

int ragd_rag_prepare(ragd_rag *r, const ragd_rag_query *q, ragd_rag_prepared *out, ragd_err *err) {
    memset(out, 0, sizeof(*out));
    if (!q->n_msgs || strcmp(q->msgs[q->n_msgs - 1].role, "user"))
        return ragd_err_set(err, RAGD_EINVAL, "the last message must be the user's question");
    const char *question = q->msgs[q->n_msgs - 1].content;
    size_t qlen = strlen(question);
    int top_k = q->top_k > 0 ? q->top_k : r->o.top_k;
    ragd_kb_mode mode = RAGD_KB_HYBRID;
    if (q->mode && ragd_kb_parse_mode(q->mode, &mode))
        return ragd_err_set(err, RAGD_EINVAL, "unknown search mode '%s' (hybrid, bm25, vector)",
                            q->mode);
    if (!r->o.emb) {
        if (mode == RAGD_KB_VECTOR)
            return ragd_err_set(err, RAGD_EINVAL,
                                "vector search needs an embedding model (--embed-model)");
        mode = RAGD_KB_BM25;
    }

    /* Which indexes: the request's, else all. An empty knowledge base is the caller's error. */
    ragd_store_index *all = NULL;
    size_t n_all = 0;
    int rc = ragd_kb_list(r->o.kb, &all, &n_all, err);
    if (rc) return rc;
    const char **names = calloc(n_all + q->n_indexes + 1, sizeof(*names));
    int64_t total_chunks = 0;
    if (!names) {
        free(all);
        return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    }
    size_t n_names = 0;
    if (q->n_indexes) {
        for (size_t i = 0; i < q->n_indexes; i++) {
            size_t k = 0;
            while (k < n_all && strcmp(all[k].name, q->indexes[i])) k++;
            if (k == n_all) {
                rc = ragd_err_set(err, RAGD_ENOTFOUND,
                                  "index '%s' does not exist in the knowledge base", q->indexes[i]);
                goto done;
            }
            bool dup = false;
            for (size_t m = 0; m < n_names; m++) dup |= !strcmp(names[m], all[k].name);
            if (dup) continue;
            names[n_names++] = all[k].name;
            total_chunks += all[k].n_chunks;
        }
    } else {
        for (size_t k = 0; k < n_all; k++) {
            names[n_names++] = all[k].name;
            total_chunks += all[k].n_chunks;
        }
    }
    if (!n_all) {
        rc = ragd_err_set(err, RAGD_EINVAL,
                          "the knowledge base is empty: ingest documents first (ragd ingest)");
        goto done;
    }
    if (!total_chunks) {
        rc = ragd_err_set(err, RAGD_EINVAL, "the selected indexes hold no documents");
        goto done;
    }

    /* 1. keywords */
    uint64_t t0 = ragd_now_ns();
    df_ctx dc = {r->o.kb, names, n_names};
    ragd_kw_opts ko = {.analyze = analyze_cb, .df = df_cb, .df_ctx = &dc};
    if ((rc = ragd_keywords_extract(&ko, question, qlen, &out->keywords, err))) goto done;
    out->timings.keywords_ms = ms_since(t0);

    /* 2 + 3. embed and search: the full question and its keywords, one batch, indexes in
     * parallel (the kb embeds the distinct queries together and reports both times) */
    const char *queries[2] = {question, out->keywords.phrases.data};
    size_t n_q = out->keywords.phrases.len && strcmp(out->keywords.phrases.data, question) ? 2 : 1;
    ragd_kb_search_opts so = {0};
    so.indexes = names;
    so.n_indexes = n_names;
    so.k = r->o.candidates > 0 ? r->o.candidates : 3 * top_k;
    so.mode = mode;
    ragd_kb_results res = {0};
    t0 = ragd_now_ns();
    rc = ragd_kb_search(r->o.kb, mode == RAGD_KB_BM25 ? NULL : r->o.emb, queries, n_q, &so, &res,
                        err);
    double search_total = ms_since(t0);
    if (rc) goto done;
    out->timings.embed_ms = res.embed_ms;
    out->timings.search_ms = search_total - res.embed_ms;
    for (size_t qi = 0; qi < n_q && !rc; qi++) {
        for (size_t h = 0; h < res.n_hits[qi] && !rc; h++) {
            const ragd_kb_hit *x = &res.hits[qi][h];
            rc = ragd_rag_sources_add(&out->sources, x->index, x->source, x->title, x->chunk_id,
                                      x->score, x->text, x->text ? strlen(x->text) : 0);
        }
    }
    ragd_kb_results_free(&res);
    if (rc) {
        rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        goto done;
    }

    /* 4. rerank, top-k */
    t0 = ragd_now_ns();
    if ((rc = r->o.reranker->rerank(r->o.reranker->ctx, question, out->sources.items,
                                    out->sources.len, err)))
        goto done;
    ragd_rag_sources_truncate(&out->sources, (size_t)top_k);

    /* 5. prompt within the budget, then its token ids */
    int max_len = r->o.engine ? ragd_engine_max_model_len(r->o.engine) : 32768;
    int budget = max_len - (q->max_tokens > 0 ? q->max_tokens : 256);
    if (r->o.max_prompt_tokens > 0 && r->o.max_prompt_tokens < budget)
        budget = r->o.max_prompt_tokens;
    if (budget < 1) {
        rc = ragd_err_set(err, RAGD_EINVAL,
                          "max_tokens %d leaves no room for a prompt (model length %d)",
                          q->max_tokens, max_len);
        goto done;
    }
    ragd_prompt_opts po = {.system = r->o.system_prompt,
                           .max_prompt_tokens = (size_t)budget,
                           .render = render_cb,
                           .render_ctx = (void *)r->tmpl,
                           .count_tokens = count_cb,
                           .count_ctx = (void *)r->o.tok};
    bool *used = calloc(out->sources.len + 1, sizeof(*used));
    if (!used) {
        rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        goto done;
    }
    size_t n_tokens = 0;
    rc = ragd_prompt_build(&po, q->msgs, q->n_msgs, out->sources.items, out->sources.len,
                           &out->prompt, &n_tokens, used, err);
    if (!rc) {
        /* keep exactly the sources that went in, in prompt order */
        size_t k = 0;
        for (size_t i = 0; i < out->sources.len; i++) {
            if (used[i]) {
                ragd_rag_source tmp = out->sources.items[k];
                out->sources.items[k] = out->sources.items[i];
                out->sources.items[i] = tmp;
                k++;
            }
        }
        ragd_rag_sources_truncate(&out->sources, k);
        rc = ragd_tokenizer_encode(r->o.tok, out->prompt.data, out->prompt.len, &out->ids,
                                   &out->n_ids, err);
    }
    free(used);
    out->timings.prompt_ms = ms_since(t0);
    out->timings.prompt_tokens = (int)out->n_ids;
done:
    free(names);
    free(all);
    if (rc) ragd_rag_prepared_free(out);
    return rc;
}
