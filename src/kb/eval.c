/* eval.c - retrieval evaluation against qrels: recall@1/5/10, MRR@10, nDCG@10. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kb/kb.h"
#include "util/clock.h"
#include "util/str.h"
#include "util/vec.h"

typedef struct qrel {
    char *qid, *did;
    double grade;
} qrel;

static int cmp_qrel(const void *a, const void *b) {
    return strcmp(((const qrel *)a)->qid, ((const qrel *)b)->qid);
}

int ragd_kb_eval_retrieval(ragd_kb *kb, const ragd_kb_embedder *emb, const char *queries_path,
                           const char *qrels_path, const ragd_kb_search_opts *opts, size_t batch,
                           ragd_kb_eval *out, ragd_err *err) {
    memset(out, 0, sizeof *out);
    char *qd = NULL, *rd = NULL;
    size_t ql = 0, rl = 0;
    int rc = ragd_read_file(queries_path, &qd, &ql, err);
    if (rc) return rc;
    if ((rc = ragd_read_file(qrels_path, &rd, &rl, err))) {
        free(qd);
        return rc;
    }
    RAGD_VEC(qrel) qr = {0};
    RAGD_VEC(char *) qids = {0};
    RAGD_VEC(char *) qtexts = {0};
    /* qrels: qid \t did \t grade ; a header line is skipped */
    for (char *save = NULL, *line = strtok_r(rd, "\n", &save); line && !rc;
         line = strtok_r(NULL, "\n", &save)) {
        char *f[3] = {0};
        char *s2 = NULL;
        int nf = 0;
        for (char *t = strtok_r(line, "\t\r", &s2); t && nf < 3; t = strtok_r(NULL, "\t\r", &s2))
            f[nf++] = t;
        if (nf < 2) continue;
        char *end = NULL;
        double g = nf == 3 ? strtod(f[2], &end) : 1.0;
        if (nf == 3 && (end == f[2] || *end)) continue; /* header */
        if (g <= 0) continue;
        if (RAGD_VEC_PUSH(&qr, ((qrel){f[0], f[1], g}))) rc = ragd_err_set(err, RAGD_ENOMEM, "oom");
    }
    if (!rc) qsort(qr.data, qr.len, sizeof *qr.data, cmp_qrel);
    size_t line_no = 0;
    for (char *save = NULL, *line = strtok_r(qd, "\n", &save); line && !rc;
         line = strtok_r(NULL, "\n", &save)) {
        line_no++;
        if (!*ragd_trim(line)) continue;
        cJSON *o = cJSON_Parse(line);
        cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "_id");
        if (!id) id = cJSON_GetObjectItemCaseSensitive(o, "id");
        cJSON *tx = cJSON_GetObjectItemCaseSensitive(o, "text");
        if (!cJSON_IsString(tx)) tx = cJSON_GetObjectItemCaseSensitive(o, "query");
        if (!cJSON_IsString(id) || !cJSON_IsString(tx)) {
            cJSON_Delete(o);
            rc = ragd_err_set(err, RAGD_EFORMAT, "%s line %zu: want {\"_id\"|\"id\", \"text\"}",
                              queries_path, line_no);
            break;
        }
        qrel key = {id->valuestring, NULL, 0};
        if (bsearch(&key, qr.data, qr.len, sizeof *qr.data, cmp_qrel)) {
            char *a = strdup(id->valuestring), *b = strdup(tx->valuestring);
            if (!a || !b || RAGD_VEC_PUSH(&qids, a) || RAGD_VEC_PUSH(&qtexts, b)) {
                free(a);
                free(b);
                rc = ragd_err_set(err, RAGD_ENOMEM, "oom");
            }
        }
        out->n_queries++;
        cJSON_Delete(o);
    }
    if (!rc && qids.len == 0)
        rc = ragd_err_set(err, RAGD_EINVAL, "no query of %s has a judgement in %s", queries_path,
                          qrels_path);
    uint64_t t0 = ragd_now_ns();
    ragd_kb_search_opts so = *opts;
    so.k = 30; /* chunks; distinct documents are cut to 10 */
    if (!batch) batch = 256;
    double r1 = 0, r5 = 0, r10 = 0, mrr = 0, ndcg = 0;
    for (size_t b0 = 0; b0 < qids.len && !rc; b0 += batch) {
        size_t nb = qids.len - b0 < batch ? qids.len - b0 : batch;
        ragd_kb_results res;
        if ((rc = ragd_kb_search(kb, emb, (const char *const *)qtexts.data + b0, nb, &so, &res,
                                 err)))
            break;
        for (size_t i = 0; i < nb; i++) {
            qrel key = {qids.data[b0 + i], NULL, 0};
            qrel *lo = bsearch(&key, qr.data, qr.len, sizeof *qr.data, cmp_qrel);
            while (lo > qr.data && !strcmp(lo[-1].qid, key.qid)) lo--;
            size_t nrel = 0;
            while (lo + nrel < qr.data + qr.len && !strcmp(lo[nrel].qid, key.qid)) nrel++;
            /* distinct documents in rank order, up to 10 */
            const char *docs[10];
            size_t nd = 0;
            for (size_t j = 0; j < res.n_hits[i] && nd < 10; j++) {
                const char *d = res.hits[i][j].ext_id;
                if (!d) continue;
                int seen = 0;
                for (size_t t = 0; t < nd; t++) seen |= !strcmp(docs[t], d);
                if (!seen) docs[nd++] = d;
            }
            double g[10] = {0};
            for (size_t t = 0; t < nd; t++)
                for (size_t r = 0; r < nrel; r++)
                    if (!strcmp(lo[r].did, docs[t])) g[t] = lo[r].grade;
            size_t found1 = 0, found5 = 0, found10 = 0;
            int first = 0;
            double dcg = 0;
            for (size_t t = 0; t < nd; t++) {
                if (g[t] <= 0) continue;
                if (!first) first = (int)t + 1;
                found10++;
                if (t < 5) found5++;
                if (t < 1) found1++;
                dcg += g[t] / log2((double)t + 2.0);
            }
            /* ideal DCG: grades sorted descending */
            double grades[64];
            size_t ng = nrel < 64 ? nrel : 64;
            for (size_t r = 0; r < ng; r++) grades[r] = lo[r].grade;
            for (size_t a = 0; a < ng; a++)
                for (size_t c = a + 1; c < ng; c++)
                    if (grades[c] > grades[a]) {
                        double tmp = grades[a];
                        grades[a] = grades[c];
                        grades[c] = tmp;
                    }
            double idcg = 0;
            for (size_t r = 0; r < ng && r < 10; r++) idcg += grades[r] / log2((double)r + 2.0);
            r1 += (double)found1 / (double)nrel;
            r5 += (double)found5 / (double)nrel;
            r10 += (double)found10 / (double)nrel;
            mrr += first ? 1.0 / first : 0;
            ndcg += idcg > 0 ? dcg / idcg : 0;
        }
        ragd_kb_results_free(&res);
    }
    if (!rc) {
        double n = (double)qids.len;
        out->n_judged = qids.len;
        out->recall1 = r1 / n;
        out->recall5 = r5 / n;
        out->recall10 = r10 / n;
        out->mrr10 = mrr / n;
        out->ndcg10 = ndcg / n;
        out->seconds = (double)(ragd_now_ns() - t0) / 1e9;
    }
    for (size_t i = 0; i < qids.len; i++) {
        free(qids.data[i]);
        free(qtexts.data[i]);
    }
    RAGD_VEC_FREE(&qids);
    RAGD_VEC_FREE(&qtexts);
    RAGD_VEC_FREE(&qr);
    free(qd);
    free(rd);
    return rc;
}
