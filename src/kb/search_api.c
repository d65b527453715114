/* search_api.c - JSON request/response for knowledge-base search. */
#include "kb/search_api.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"

int ragd_kb_api_error(ragd_buf *out, const char *message, const char *type, const char *param,
                      const char *code) {
    ragd_buf_clear(out);
    int rc = ragd_buf_puts(out, "{\"error\":{\"message\":");
    rc |= ragd_buf_json_str(out, message, strlen(message));
    rc |= ragd_buf_puts(out, ",\"type\":");
    rc |= ragd_buf_json_str(out, type, strlen(type));
    rc |= ragd_buf_puts(out, ",\"param\":");
    if (param)
        rc |= ragd_buf_json_str(out, param, strlen(param));
    else
        rc |= ragd_buf_puts(out, "null");
    rc |= ragd_buf_puts(out, ",\"code\":");
    if (code)
        rc |= ragd_buf_json_str(out, code, strlen(code));
    else
        rc |= ragd_buf_puts(out, "null");
    rc |= ragd_buf_puts(out, "}}");
    return rc ? RAGD_ENOMEM : RAGD_OK;
}

static int jstr(ragd_buf *b, const char *s) {
    if (!s) return ragd_buf_puts(b, "null");
    return ragd_buf_json_str(b, s, strlen(s));
}

int ragd_kb_results_json(const ragd_kb_results *r, const char *const *queries, int with_text,
                         ragd_buf *b) {
    int rc = ragd_buf_putc(b, '[');
    for (size_t i = 0; i < r->n_queries && !rc; i++) {
        if (i) rc |= ragd_buf_putc(b, ',');
        rc |= ragd_buf_printf(b, "{\"object\":\"search.result\",\"query_index\":%zu,\"query\":", i);
        rc |= jstr(b, queries[i]);
        rc |= ragd_buf_puts(b, ",\"results\":[");
        for (size_t j = 0; j < r->n_hits[i]; j++) {
            const ragd_kb_hit *h = &r->hits[i][j];
            if (j) rc |= ragd_buf_putc(b, ',');
            rc |= ragd_buf_puts(b, "{\"index\":");
            rc |= jstr(b, h->index);
            rc |= ragd_buf_puts(b, ",\"document\":");
            rc |= jstr(b, h->source);
            rc |= ragd_buf_puts(b, ",\"document_id\":");
            rc |= jstr(b, h->ext_id);
            rc |= ragd_buf_puts(b, ",\"title\":");
            rc |= jstr(b, h->title);
            rc |= ragd_buf_printf(b, ",\"chunk_id\":%lld,\"score\":%.6g,\"ranks\":{\"bm25\":",
                                  (long long)h->chunk_id, h->score);
            rc |= h->bm25_rank ? ragd_buf_printf(b, "%d", h->bm25_rank) : ragd_buf_puts(b, "null");
            rc |= ragd_buf_puts(b, ",\"vector\":");
            rc |= h->vector_rank ? ragd_buf_printf(b, "%d", h->vector_rank)
                                 : ragd_buf_puts(b, "null");
            rc |= ragd_buf_puts(b, "},\"scores\":{\"bm25\":");
            rc |=
                h->bm25_rank ? ragd_buf_printf(b, "%.6g", h->bm25_score) : ragd_buf_puts(b, "null");
            rc |= ragd_buf_puts(b, ",\"vector\":");
            rc |= h->vector_rank ? ragd_buf_printf(b, "%.6g", h->vector_score)
                                 : ragd_buf_puts(b, "null");
            rc |= ragd_buf_printf(b, "},\"start\":%lld,\"end\":%lld", (long long)h->start,
                                  (long long)h->end);
            if (with_text) {
                rc |= ragd_buf_puts(b, ",\"text\":");
                rc |= jstr(b, h->text);
                rc |= ragd_buf_puts(b, ",\"metadata\":");
                rc |= ragd_buf_puts(b, h->metadata && *h->metadata ? h->metadata : "{}");
            }
            rc |= ragd_buf_putc(b, '}');
        }
        rc |= ragd_buf_puts(b, "]}");
    }
    rc |= ragd_buf_putc(b, ']');
    return rc ? RAGD_ENOMEM : RAGD_OK;
}

#define BAD(msg, param)                                                                            \
    do {                                                                                           \
        *http_status = 400;                                                                        \
        rc = ragd_kb_api_error(out, msg, "invalid_request_error", param, NULL);                    \
        goto done;                                                                                 \
    } while (0)

int ragd_kb_search_api_handle(ragd_kb *kb, const ragd_kb_embedder *emb, const char *body,
                              size_t len, ragd_buf *out, int *http_status) {
    uint64_t t0 = ragd_now_ns();
    int rc = RAGD_OK;
    const char **idx = NULL, **qs = NULL;
    size_t ni = 0, nq = 0;
    ragd_kb_results res = {0};
    int have_res = 0;
    ragd_buf_clear(out);
    cJSON *j = body ? cJSON_ParseWithLength(body, len) : NULL;
    if (!j || !cJSON_IsObject(j)) BAD("request body must be a JSON object", NULL);
    ragd_kb_search_opts o = {0};
    o.k = 10;
    o.mode = RAGD_KB_HYBRID;
    o.vector_weight = 0.5;
    cJSON *ix = cJSON_GetObjectItemCaseSensitive(j, "indexes");
    cJSON *one = cJSON_GetObjectItemCaseSensitive(j, "index");
    if (ix) {
        if (!cJSON_IsArray(ix) || cJSON_GetArraySize(ix) == 0)
            BAD("'indexes' must be a non-empty array of index names", "indexes");
        ni = (size_t)cJSON_GetArraySize(ix);
        if (ni > 64) BAD("at most 64 indexes per request", "indexes");
        idx = calloc(ni, sizeof *idx);
        if (!idx) goto oom;
        size_t i = 0;
        for (cJSON *e = ix->child; e; e = e->next, i++) {
            if (!cJSON_IsString(e) || !*e->valuestring)
                BAD("'indexes' must contain index names (strings)", "indexes");
            idx[i] = e->valuestring;
        }
    } else if (cJSON_IsString(one) && *one->valuestring) {
        ni = 1;
        idx = calloc(1, sizeof *idx);
        if (!idx) goto oom;
        idx[0] = one->valuestring;
    } else {
        BAD("missing 'indexes' (array of index names)", "indexes");
    }
    cJSON *q = cJSON_GetObjectItemCaseSensitive(j, "query");
    cJSON *qa = cJSON_GetObjectItemCaseSensitive(j, "queries");
    if (q && qa) BAD("give either 'query' or 'queries', not both", "queries");
    if (q) {
        if (!cJSON_IsString(q)) BAD("'query' must be a string", "query");
        nq = 1;
        qs = calloc(1, sizeof *qs);
        if (!qs) goto oom;
        qs[0] = q->valuestring;
    } else if (qa) {
        if (!cJSON_IsArray(qa) || cJSON_GetArraySize(qa) == 0)
            BAD("'queries' must be a non-empty array of strings", "queries");
        nq = (size_t)cJSON_GetArraySize(qa);
        if (nq > RAGD_KB_API_MAX_QUERIES) {
            *http_status = 413;
            rc = ragd_kb_api_error(out, "too many queries in one request (max 1024)",
                                   "invalid_request_error", "queries", "too_many_queries");
            goto done;
        }
        qs = calloc(nq, sizeof *qs);
        if (!qs) goto oom;
        size_t i = 0;
        for (cJSON *e = qa->child; e; e = e->next, i++) {
            if (!cJSON_IsString(e)) BAD("'queries' must contain strings", "queries");
            qs[i] = e->valuestring;
        }
    } else {
        BAD("missing 'query' or 'queries'", "query");
    }
    for (size_t i = 0; i < nq; i++)
        if (strlen(qs[i]) > 65536) BAD("a query is longer than 64 KiB", "query");
    cJSON *k = cJSON_GetObjectItemCaseSensitive(j, "k");
    if (!k) k = cJSON_GetObjectItemCaseSensitive(j, "top_k");
    if (k) {
        if (!cJSON_IsNumber(k) || k->valuedouble < 1 || k->valuedouble > 1000 ||
            k->valuedouble != (double)(int)k->valuedouble)
            BAD("'k' must be an integer from 1 to 1000", "k");
        o.k = k->valueint;
    }
    cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "mode");
    if (m && (!cJSON_IsString(m) || ragd_kb_parse_mode(m->valuestring, &o.mode)))
        BAD("'mode' must be \"bm25\", \"vector\" or \"hybrid\"", "mode");
    cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "fusion");
    if (f && (!cJSON_IsString(f) || ragd_kb_parse_fusion(f->valuestring, &o.fusion)))
        BAD("'fusion' must be \"rrf\" or \"weighted\"", "fusion");
    cJSON *w = cJSON_GetObjectItemCaseSensitive(j, "vector_weight");
    if (w) {
        if (!cJSON_IsNumber(w) || w->valuedouble < 0 || w->valuedouble > 1)
            BAD("'vector_weight' must be a number in [0, 1]", "vector_weight");
        o.vector_weight = w->valuedouble;
    }
    cJSON *ef = cJSON_GetObjectItemCaseSensitive(j, "ef_search");
    if (ef) {
        if (!cJSON_IsNumber(ef) || ef->valuedouble < 1 || ef->valuedouble > 10000)
            BAD("'ef_search' must be an integer from 1 to 10000", "ef_search");
        o.ef_search = ef->valueint;
    }
    cJSON *vs = cJSON_GetObjectItemCaseSensitive(j, "vector_search");
    if (vs) {
        if (!cJSON_IsString(vs))
            BAD("'vector_search' must be auto, exact or hnsw", "vector_search");
        if (!strcmp(vs->valuestring, "exact"))
            o.vec_algo = RAGD_KB_VEC_EXACT;
        else if (!strcmp(vs->valuestring, "hnsw"))
            o.vec_algo = RAGD_KB_VEC_HNSW;
        else if (strcmp(vs->valuestring, "auto"))
            BAD("'vector_search' must be auto, exact or hnsw", "vector_search");
    }
    cJSON *wt = cJSON_GetObjectItemCaseSensitive(j, "with_text");
    int with_text = !(wt && cJSON_IsFalse(wt));
    o.no_text = !with_text;
    o.indexes = idx;
    o.n_indexes = ni;
    ragd_err err = {0};
    int r = ragd_kb_search(kb, emb, qs, nq, &o, &res, &err);
    if (r) {
        if (r == RAGD_ENOMEM) goto oom;
        *http_status = r == RAGD_ENOTFOUND ? 404 : (r == RAGD_EINVAL ? 400 : 500);
        rc = ragd_kb_api_error(
            out, err.msg, *http_status == 500 ? "server_error" : "invalid_request_error",
            r == RAGD_ENOTFOUND ? "indexes" : NULL, r == RAGD_ENOTFOUND ? "index_not_found" : NULL);
        goto done;
    }
    have_res = 1;
    rc = ragd_buf_puts(out, "{\"object\":\"list\",\"model\":");
    rc |= jstr(out, emb ? emb->model_name : NULL);
    rc |= ragd_buf_printf(out, ",\"mode\":\"%s\",\"k\":%d,\"distinct_queries\":%zu,\"data\":",
                          ragd_kb_mode_name(o.mode), o.k, res.n_distinct);
    rc |= ragd_kb_results_json(&res, qs, with_text, out);
    rc |= ragd_buf_printf(out,
                          ",\"timings\":{\"embed_ms\":%.3f,\"search_ms\":%.3f,\"fetch_ms\":%.3f,"
                          "\"total_ms\":%.3f}}",
                          res.embed_ms, res.search_ms, res.fetch_ms,
                          (double)(ragd_now_ns() - t0) / 1e6);
    if (rc) goto oom;
    *http_status = 200;
    goto done;
oom:
    *http_status = 500;
    rc = ragd_kb_api_error(out, "out of memory", "server_error", NULL, NULL);
    if (!rc) rc = RAGD_ENOMEM;
done:
    if (have_res) ragd_kb_results_free(&res);
    free(idx);
    free(qs);
    cJSON_Delete(j);
    return rc;
}
