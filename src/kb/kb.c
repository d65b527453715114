/* kb.c - knowledge base handle: vector snapshots (exact matrix + HNSW), batched hybrid
 * search with fusion, term statistics. Ingest is in ingest.c, evaluation in eval.c. */
#include "kb/kb.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kb/analyzer.h"
#include "kb/vecsearch.h"
#include "model/dtype.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/str.h"

#define RRF_K 60.0
#define MAX_K 1000

/* An immutable view of one index's vectors at a generation, shared by searches. */
typedef struct vsnap {
    int refs;
    int64_t index_id, generation;
    int dim;
    size_t n;
    int64_t *ids; /* sorted ascending (chunk ids) */
    void *vecs;   /* n x dim floats, or halves when f16 */
    int f16;
    ragd_hnsw *hnsw;
} vsnap;

typedef struct vcache {
    int64_t index_id;
    vsnap *snap;
    struct vcache *next;
} vcache;

struct ragd_kb {
    ragd_store *st;
    ragd_kb_opts opts;
    pthread_mutex_t mu;      /* cache list and refcounts */
    pthread_mutex_t load_mu; /* one loader at a time */
    vcache *cache;
};

int ragd_kb_open(const ragd_kb_opts *opts, ragd_kb **out, ragd_err *err) {
    *out = NULL;
    if (!opts || !opts->path || !*opts->path)
        return ragd_err_set(err, RAGD_EINVAL, "no knowledge base path (--kb FILE)");
    ragd_kb *kb = calloc(1, sizeof *kb);
    if (!kb) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    kb->opts = *opts;
    if (!kb->opts.hnsw_threshold) kb->opts.hnsw_threshold = 50000;
    if (!kb->opts.hnsw_M) kb->opts.hnsw_M = 16;
    if (!kb->opts.hnsw_ef_construction) kb->opts.hnsw_ef_construction = 200;
    if (!kb->opts.hnsw_ef_search) kb->opts.hnsw_ef_search = 64;
    int rc = ragd_store_sqlite_open(opts->path, opts->readonly, &kb->st, err);
    if (rc) {
        free(kb);
        return rc;
    }
    pthread_mutex_init(&kb->mu, NULL);
    pthread_mutex_init(&kb->load_mu, NULL);
    *out = kb;
    return RAGD_OK;
}

static void snap_unref(ragd_kb *kb, vsnap *s) {
    if (!s) return;
    pthread_mutex_lock(&kb->mu);
    int last = --s->refs == 0;
    pthread_mutex_unlock(&kb->mu);
    if (last) {
        free(s->ids);
        free(s->vecs);
        ragd_hnsw_destroy(s->hnsw);
        free(s);
    }
}

void ragd_kb_close(ragd_kb *kb) {
    if (!kb) return;
    for (vcache *c = kb->cache; c;) {
        vcache *nx = c->next;
        snap_unref(kb, c->snap);
        free(c);
        c = nx;
    }
    kb->st->ops->close(kb->st);
    pthread_mutex_destroy(&kb->mu);
    pthread_mutex_destroy(&kb->load_mu);
    free(kb);
}

ragd_store *ragd_kb_store(ragd_kb *kb) {
    return kb->st;
}

int ragd_kb_list(ragd_kb *kb, ragd_store_index **out, size_t *n, ragd_err *err) {
    return kb->st->ops->list_indexes(kb->st, out, n, err);
}

int ragd_kb_delete_index(ragd_kb *kb, const char *name, ragd_err *err) {
    return kb->st->ops->delete_index(kb->st, name, err);
}

int ragd_kb_delete_doc(ragd_kb *kb, const char *index, const char *source, size_t *n_deleted,
                       ragd_err *err) {
    ragd_store_index ix;
    int rc = kb->st->ops->get_index(kb->st, index, &ix, err);
    if (rc) return rc;
    return kb->st->ops->delete_doc(kb->st, ix.id, source, n_deleted, err);
}

int ragd_kb_term_stats(ragd_kb *kb, const char *index, const char *const *terms, size_t n,
                       int64_t *df, int64_t *n_docs, ragd_err *err) {
    ragd_store_index ix;
    int rc = kb->st->ops->get_index(kb->st, index, &ix, err);
    if (rc) return rc;
    return kb->st->ops->term_df(kb->st, ix.id, terms, n, df, n_docs, err);
}

int ragd_kb_parse_mode(const char *s, ragd_kb_mode *out) {
    if (!strcmp(s, "bm25"))
        *out = RAGD_KB_BM25;
    else if (!strcmp(s, "vector"))
        *out = RAGD_KB_VECTOR;
    else if (!strcmp(s, "hybrid"))
        *out = RAGD_KB_HYBRID;
    else
        return RAGD_EINVAL;
    return RAGD_OK;
}

int ragd_kb_parse_fusion(const char *s, ragd_kb_fusion *out) {
    if (!strcmp(s, "rrf"))
        *out = RAGD_KB_RRF;
    else if (!strcmp(s, "weighted"))
        *out = RAGD_KB_WEIGHTED;
    else
        return RAGD_EINVAL;
    return RAGD_OK;
}

const char *ragd_kb_mode_name(ragd_kb_mode m) {
    return m == RAGD_KB_BM25 ? "bm25" : m == RAGD_KB_VECTOR ? "vector" : "hybrid";
}

/* ---- vector snapshots ---- */

/* Load or update the HNSW graph for snapshot s (from the persisted blob when possible). */
static int build_hnsw(ragd_kb *kb, vsnap *s, ragd_err *err) {
    ragd_store *st = kb->st;
    void *blob = NULL;
    size_t blen = 0;
    int64_t bgen = -1;
    ragd_hnsw *h = NULL;
    ragd_err e2 = {0};
    int changed = 0, rc;
    if (st->ops->get_blob(st, s->index_id, "hnsw", &blob, &blen, &bgen, &e2) == RAGD_OK) {
        if (ragd_hnsw_load(blob, blen, &h, &e2) != RAGD_OK || ragd_hnsw_dim(h) != s->dim ||
            ragd_hnsw_is_f16(h) != s->f16) {
            LOG_WARN("kb: persisted HNSW graph unusable (%s); rebuilding", e2.msg);
            ragd_hnsw_destroy(h);
            h = NULL;
        }
    }
    free(blob);
    if (h && bgen != s->generation) {
        size_t *miss = NULL, nm = 0;
        if ((rc = ragd_hnsw_sync(h, s->ids, s->n, &miss, &nm))) {
            ragd_hnsw_destroy(h);
            return ragd_err_set(err, rc, "out of memory syncing HNSW");
        }
        if (ragd_hnsw_deleted(h) > (ragd_hnsw_size(h) + nm) * 3 / 10) {
            /* too many tombstones: rebuild from scratch */
            ragd_hnsw_destroy(h);
            h = NULL;
        } else if (nm) {
            size_t vb = (size_t)s->dim * (s->f16 ? 2 : 4);
            char *v = malloc(nm * vb);
            int64_t *l = malloc(nm * sizeof *l);
            if (!v || !l) {
                free(v);
                free(l);
                free(miss);
                ragd_hnsw_destroy(h);
                return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
            }
            for (size_t i = 0; i < nm; i++) {
                memcpy(v + i * vb, (const char *)s->vecs + miss[i] * vb, vb);
                l[i] = s->ids[miss[i]];
            }
            rc = ragd_hnsw_add_batch(h, v, l, nm, kb->opts.pool, err);
            free(v);
            free(l);
            if (rc) {
                free(miss);
                ragd_hnsw_destroy(h);
                return rc;
            }
        }
        free(miss);
        changed = 1;
    }
    if (!h) {
        ragd_hnsw_params p = {kb->opts.hnsw_M, kb->opts.hnsw_ef_construction, 42, s->f16};
        if ((rc = ragd_hnsw_create(s->dim, &p, &h, err))) return rc;
        uint64_t t0 = ragd_now_ns();
        if ((rc = ragd_hnsw_add_batch(h, s->vecs, s->ids, s->n, kb->opts.pool, err))) {
            ragd_hnsw_destroy(h);
            return rc;
        }
        LOG_INFO("kb: built HNSW graph over %zu vectors in %.1f s", s->n,
                 (double)(ragd_now_ns() - t0) / 1e9);
        changed = 1;
    }
    if (changed && !kb->opts.readonly) {
        ragd_buf b = {0};
        if (ragd_hnsw_save(h, &b) == RAGD_OK) {
            ragd_err e3 = {0};
            if (st->ops->put_blob(st, s->index_id, "hnsw", b.data, b.len, s->generation, &e3))
                LOG_WARN("kb: could not persist HNSW graph: %s", e3.msg);
        }
        ragd_buf_free(&b);
    }
    s->hnsw = h;
    return RAGD_OK;
}

static int get_snap(ragd_kb *kb, const ragd_store_index *ix, int want_hnsw, vsnap **out,
                    ragd_err *err) {
    *out = NULL;
    for (int pass = 0; pass < 2; pass++) {
        pthread_mutex_lock(&kb->mu);
        vcache *c = kb->cache;
        while (c && c->index_id != ix->id) c = c->next;
        if (c && c->snap && c->snap->generation >= ix->generation &&
            (!want_hnsw || c->snap->hnsw)) {
            c->snap->refs++;
            *out = c->snap;
            pthread_mutex_unlock(&kb->mu);
            if (pass == 1) pthread_mutex_unlock(&kb->load_mu);
            return RAGD_OK;
        }
        pthread_mutex_unlock(&kb->mu);
        if (pass == 0) pthread_mutex_lock(&kb->load_mu);
    }
    /* load under load_mu */
    int rc;
    vsnap *s = calloc(1, sizeof *s);
    if (!s) {
        pthread_mutex_unlock(&kb->load_mu);
        return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    }
    s->refs = 1;
    s->index_id = ix->id;
    s->dim = ix->dim;
    int dt = 0;
    rc = kb->st->ops->load_vectors(kb->st, ix->id, &s->ids, &s->vecs, &dt, &s->n, &s->generation,
                                   err);
    s->f16 = dt == RAGD_DT_F16;
    if (!rc && want_hnsw) rc = build_hnsw(kb, s, err);
    if (rc) {
        snap_unref(kb, s);
        pthread_mutex_unlock(&kb->load_mu);
        return rc;
    }
    pthread_mutex_lock(&kb->mu);
    vcache *c = kb->cache;
    while (c && c->index_id != ix->id) c = c->next;
    if (!c && (c = calloc(1, sizeof *c))) {
        c->index_id = ix->id;
        c->next = kb->cache;
        kb->cache = c;
    }
    vsnap *old = NULL;
    if (c) {
        old = c->snap;
        c->snap = s;
        s->refs++; /* the cache's reference */
    }
    pthread_mutex_unlock(&kb->mu);
    snap_unref(kb, old);
    pthread_mutex_unlock(&kb->load_mu);
    *out = s;
    return RAGD_OK;
}

int ragd_kb_prepare_vectors(ragd_kb *kb, const char *index, int force_hnsw, ragd_err *err) {
    ragd_store_index ix;
    int rc = kb->st->ops->get_index(kb->st, index, &ix, err);
    if (rc || ix.dim <= 0) return rc;
    vsnap *s = NULL;
    if ((rc = get_snap(kb, &ix, 0, &s, err))) return rc;
    int want = force_hnsw || s->n >= kb->opts.hnsw_threshold;
    snap_unref(kb, s);
    if (!want) return RAGD_OK;
    rc = get_snap(kb, &ix, 1, &s, err);
    snap_unref(kb, s);
    return rc;
}

/* ---- search ---- */

typedef struct cand {
    int64_t chunk_id;
    int index_no;
    double score, bm25, vec;
    int bm25_rank, vec_rank;
} cand;

typedef struct idx_task {
    ragd_kb *kb;
    const ragd_kb_search_opts *o;
    int index_no;
    ragd_store_index ix;
    const char *const *dq; /* distinct queries */
    size_t nd;
    const float *qvec; /* nd x dim or NULL */
    int use_bm25, use_vec, kc, k;
    cand *out;     /* nd x k fused candidates */
    size_t *n_out; /* nd */
    ragd_err err;
    int rc;
} idx_task;

static int cmp_cand(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    if (x->index_no != y->index_no) return x->index_no - y->index_no;
    return x->chunk_id < y->chunk_id ? -1 : x->chunk_id > y->chunk_id;
}

static cand *find_cand(cand *c, size_t n, int64_t id) {
    for (size_t i = 0; i < n; i++)
        if (c[i].chunk_id == id) return &c[i];
    return NULL;
}

/* The BM25 MATCH expression for one query: the OR of its distinct analysed terms, leaving
 * out the common ones - terms in more than bm25_max_df of the index's chunks - as long as a
 * rarer term remains (the idea of Lucene's common-terms query: frequent terms carry little
 * BM25 weight, idf = ln(1 + (N - n + 0.5) / (n + 0.5)) <= 4.6 at 1%, but make FTS5 visit
 * and score every row they occur in). Terms absent from the index go too (they match
 * nothing). A query without a rarer term keeps all its terms. */
static int bm25_match(ragd_kb *kb, int64_t index_id, const char *query, ragd_buf *out,
                      size_t *n_terms, ragd_err *err) {
    if (kb->opts.bm25_max_df <= 0) { /* the default: every term */
        if (ragd_kb_fts_query(query, strlen(query), 0, out, n_terms))
            return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        return RAGD_OK;
    }
    ragd_buf terms = {0};
    size_t n = 0, kept = 0;
    *n_terms = 0;
    int rc = ragd_kb_query_terms(query, strlen(query), 0, &terms, &n);
    const char **tv = n ? malloc(n * sizeof *tv) : NULL;
    int64_t *df = n ? calloc(n, sizeof *df) : NULL;
    if (rc || (n && (!tv || !df))) {
        rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0, off = 0; i < n; i++) {
        tv[i] = terms.data + off;
        off += strlen(tv[i]) + 1;
    }
    double cutoff = -1;
    if (n > 1) {
        int64_t n_docs = 0;
        if ((rc = kb->st->ops->term_df(kb->st, index_id, tv, n, df, &n_docs, err))) goto out;
        cutoff = kb->opts.bm25_max_df * (double)n_docs;
        for (size_t i = 0; i < n; i++) kept += df[i] > 0 && (double)df[i] <= cutoff;
        if (!kept) cutoff = -1;
    }
    for (size_t i = 0; i < n && !rc; i++) {
        if (cutoff >= 0 && (df[i] == 0 || (double)df[i] > cutoff)) continue;
        if (*n_terms && ragd_buf_puts(out, " OR ")) rc = RAGD_ENOMEM;
        if (!rc) rc = ragd_kb_fts_quote(out, tv[i], strlen(tv[i]));
        (*n_terms)++;
    }
    if (rc) rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
out:
    ragd_buf_free(&terms);
    free(tv);
    free(df);
    return rc;
}

static void *idx_task_run(void *arg) {
    idx_task *t = arg;
    ragd_kb *kb = t->kb;
    const ragd_kb_search_opts *o = t->o;
    size_t kc = (size_t)t->kc;
    ragd_store_hit *bh = malloc(kc * sizeof *bh);
    int64_t *vi = NULL;
    float *vs = NULL;
    cand *cs = malloc(2 * kc * sizeof *cs);
    vsnap *snap = NULL;
    ragd_buf q = {0};
    if (!bh || !cs) {
        t->rc = ragd_err_set(&t->err, RAGD_ENOMEM, "out of memory");
        goto out;
    }
    if (t->use_vec) {
        int use_hnsw = o->vec_algo == RAGD_KB_VEC_HNSW;
        if (o->vec_algo == RAGD_KB_VEC_AUTO) {
            /* the count is known once loaded; the snapshot tells */
            if ((t->rc = get_snap(kb, &t->ix, 0, &snap, &t->err))) goto out;
            if (snap->n >= kb->opts.hnsw_threshold) {
                use_hnsw = 1;
                snap_unref(kb, snap);
                snap = NULL;
            }
        }
        if (!snap && (t->rc = get_snap(kb, &t->ix, use_hnsw, &snap, &t->err))) goto out;
        vi = malloc(t->nd * kc * sizeof *vi);
        vs = malloc(t->nd * kc * sizeof *vs);
        if (!vi || !vs) {
            t->rc = ragd_err_set(&t->err, RAGD_ENOMEM, "out of memory");
            goto out;
        }
        if (use_hnsw) {
            int ef = o->ef_search > 0 ? o->ef_search : kb->opts.hnsw_ef_search;
            for (size_t d = 0; d < t->nd; d++) {
                size_t nh = 0;
                if ((t->rc = ragd_hnsw_search(snap->hnsw, t->qvec + d * (size_t)t->ix.dim, (int)kc,
                                              ef, vi + d * kc, vs + d * kc, &nh))) {
                    ragd_err_set(&t->err, t->rc, "HNSW search failed");
                    goto out;
                }
                for (size_t j = nh; j < kc; j++) vi[d * kc + j] = -1;
            }
        } else {
            if (snap->f16)
                t->rc = ragd_vec_exact_topk_f16(snap->vecs, snap->n, snap->dim, t->qvec, t->nd,
                                                (int)kc, kb->opts.pool, vi, vs, &t->err);
            else
                t->rc = ragd_vec_exact_topk(snap->vecs, snap->n, snap->dim, t->qvec, t->nd, (int)kc,
                                            kb->opts.pool, vi, vs, &t->err);
            if (t->rc) goto out;
            for (size_t j = 0; j < t->nd * kc; j++)
                if (vi[j] >= 0) vi[j] = snap->ids[vi[j]];
        }
    }
    for (size_t d = 0; d < t->nd; d++) {
        size_t nc = 0, nb = 0;
        if (t->use_bm25) {
            ragd_buf_clear(&q);
            size_t nterms = 0;
            if ((t->rc = bm25_match(kb, t->ix.id, t->dq[d], &q, &nterms, &t->err))) goto out;
            if (nterms &&
                (t->rc = kb->st->ops->bm25(kb->st, t->ix.id, q.data, (int)kc, bh, &nb, &t->err)))
                goto out;
            for (size_t j = 0; j < nb; j++)
                cs[nc++] = (cand){bh[j].chunk_id, t->index_no, 0, bh[j].score, 0, (int)j + 1, 0};
        }
        if (t->use_vec) {
            for (size_t j = 0; j < kc && vi[d * kc + j] >= 0; j++) {
                cand *c = find_cand(cs, nc, vi[d * kc + j]);
                if (!c) {
                    c = &cs[nc++];
                    *c = (cand){vi[d * kc + j], t->index_no, 0, 0, 0, 0, 0};
                }
                c->vec = vs[d * kc + j];
                c->vec_rank = (int)j + 1;
            }
        }
        double max_bm25 = nb ? bh[0].score : 1.0;
        if (max_bm25 <= 0) max_bm25 = 1.0;
        for (size_t j = 0; j < nc; j++) {
            cand *c = &cs[j];
            if (t->use_bm25 && t->use_vec) {
                if (o->fusion == RAGD_KB_RRF)
                    c->score = (c->bm25_rank ? 1.0 / (RRF_K + c->bm25_rank) : 0) +
                               (c->vec_rank ? 1.0 / (RRF_K + c->vec_rank) : 0);
                else
                    c->score =
                        o->vector_weight * c->vec + (1.0 - o->vector_weight) * c->bm25 / max_bm25;
            } else {
                c->score = t->use_bm25 ? c->bm25 : c->vec;
            }
        }
        qsort(cs, nc, sizeof *cs, cmp_cand);
        size_t keep = nc < (size_t)t->k ? nc : (size_t)t->k;
        memcpy(t->out + d * (size_t)t->k, cs, keep * sizeof *cs);
        t->n_out[d] = keep;
    }
out:
    ragd_buf_free(&q);
    snap_unref(kb, snap);
    free(bh);
    free(vi);
    free(vs);
    free(cs);
    return NULL;
}

static int cmp_strp(const void *a, const void *b) {
    const char *const *x = a, *const *y = b;
    return strcmp(*x, *y);
}

void ragd_kb_results_free(ragd_kb_results *r) {
    if (!r) return;
    free(r->n_hits);
    free(r->hits);
    ragd_arena_free(&r->arena);
    memset(r, 0, sizeof *r);
}

static const char *arena_str(ragd_arena *a, const char *s) {
    return ragd_arena_strdup(a, s ? s : "");
}

int ragd_kb_search(ragd_kb *kb, const ragd_kb_embedder *emb, const char *const *queries,
                   size_t n_queries, const ragd_kb_search_opts *o, ragd_kb_results *out,
                   ragd_err *err) {
    memset(out, 0, sizeof *out);
    ragd_arena_init(&out->arena, 0);
    if (!o || o->n_indexes == 0) return ragd_err_set(err, RAGD_EINVAL, "no index given");
    if (n_queries == 0) return ragd_err_set(err, RAGD_EINVAL, "no query given");
    int k = o->k > 0 ? o->k : 10;
    if (k > MAX_K) return ragd_err_set(err, RAGD_EINVAL, "k must be at most %d", MAX_K);
    for (size_t i = 0; i < n_queries; i++) {
        if (!queries[i]) return ragd_err_set(err, RAGD_EINVAL, "query %zu is missing", i);
        if (!ragd_utf8_valid(queries[i], strlen(queries[i])))
            return ragd_err_set(err, RAGD_EINVAL, "query %zu is not valid UTF-8", i);
    }
    int rc = RAGD_OK;
    size_t ni = o->n_indexes, nq = n_queries;
    idx_task *tasks = calloc(ni, sizeof *tasks);
    const char **sorted = malloc(nq * sizeof *sorted);
    const char **dq = malloc(nq * sizeof *dq);
    size_t *map = malloc(nq * sizeof *map);
    float *qvec = NULL;
    out->n_hits = calloc(nq, sizeof *out->n_hits);
    out->hits = calloc(nq, sizeof *out->hits);
    if (!tasks || !sorted || !dq || !map || !out->n_hits || !out->hits) {
        rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        goto done;
    }
    out->n_queries = nq;
    /* 1. de-duplicate */
    memcpy(sorted, queries, nq * sizeof *sorted);
    qsort(sorted, nq, sizeof *sorted, cmp_strp);
    size_t nd = 0;
    for (size_t i = 0; i < nq; i++)
        if (i == 0 || strcmp(sorted[i], sorted[i - 1])) dq[nd++] = sorted[i];
    for (size_t i = 0; i < nq; i++) {
        const char **f = bsearch(&queries[i], dq, nd, sizeof *dq, cmp_strp);
        map[i] = (size_t)(f - dq);
    }
    out->n_distinct = nd;
    /* 2. resolve indexes, decide methods */
    int need_vec = 0;
    for (size_t i = 0; i < ni; i++) {
        idx_task *t = &tasks[i];
        if ((rc = kb->st->ops->get_index(kb->st, o->indexes[i], &t->ix, err))) goto done;
        t->use_bm25 = o->mode != RAGD_KB_VECTOR;
        t->use_vec = o->mode != RAGD_KB_BM25 && t->ix.dim > 0 && emb;
        if (o->mode == RAGD_KB_VECTOR) {
            if (t->ix.dim <= 0) {
                rc = ragd_err_set(err, RAGD_EINVAL,
                                  "index '%s' has no vectors (ingested without --embed-model);"
                                  " use mode bm25",
                                  t->ix.name);
                goto done;
            }
            if (!emb) {
                rc = ragd_err_set(err, RAGD_EINVAL, "vector search needs an embedding model");
                goto done;
            }
        }
        if (t->use_vec) {
            if (strcmp(emb->model_name, t->ix.embed_model) || emb->dim != t->ix.dim) {
                rc = ragd_err_set(err, RAGD_EINVAL,
                                  "index '%s' was embedded with %s (dim %d) but the query "
                                  "embedder is %s (dim %d)",
                                  t->ix.name, t->ix.embed_model, t->ix.dim, emb->model_name,
                                  emb->dim);
                goto done;
            }
            need_vec = 1;
        }
    }
    /* 3. embed the distinct queries in one batch */
    if (need_vec) {
        uint64_t t0 = ragd_now_ns();
        qvec = malloc(nd * (size_t)emb->dim * sizeof *qvec);
        size_t *lens = malloc(nd * sizeof *lens);
        if (!qvec || !lens) {
            free(lens);
            rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
            goto done;
        }
        for (size_t d = 0; d < nd; d++) lens[d] = strlen(dq[d]);
        rc = emb->embed(emb->ctx, dq, lens, nd, qvec, err);
        free(lens);
        if (rc) {
            ragd_err_prefix(err, "embedding queries");
            goto done;
        }
        out->embed_ms = (double)(ragd_now_ns() - t0) / 1e6;
    }
    /* 4. search every index (in parallel when there are several) */
    uint64_t t1 = ragd_now_ns();
    int hybrid = o->mode == RAGD_KB_HYBRID;
    for (size_t i = 0; i < ni; i++) {
        idx_task *t = &tasks[i];
        t->kb = kb;
        t->o = o;
        t->index_no = (int)i;
        t->dq = dq;
        t->nd = nd;
        t->qvec = qvec;
        t->k = k;
        t->kc = hybrid && t->use_bm25 && t->use_vec ? (k * 2 > 50 ? k * 2 : 50) : k;
        t->out = malloc(nd * (size_t)k * sizeof *t->out);
        t->n_out = calloc(nd, sizeof *t->n_out);
        if (!t->out || !t->n_out) {
            rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
            goto done;
        }
    }
    pthread_t *th = calloc(ni, sizeof *th);
    int *started = calloc(ni, sizeof *started);
    if (!th || !started) {
        free(th);
        free(started);
        rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 1; i < ni; i++)
        started[i] = !pthread_create(&th[i], NULL, idx_task_run, &tasks[i]);
    idx_task_run(&tasks[0]);
    for (size_t i = 1; i < ni; i++) {
        if (started[i])
            pthread_join(th[i], NULL);
        else
            idx_task_run(&tasks[i]);
    }
    free(th);
    free(started);
    for (size_t i = 0; i < ni; i++)
        if (tasks[i].rc) {
            rc = tasks[i].rc;
            if (err) *err = tasks[i].err;
            ragd_err_prefix(err, "index '%s'", tasks[i].ix.name);
            goto done;
        }
    out->search_ms = (double)(ragd_now_ns() - t1) / 1e6;
    /* 5. merge indexes by score, fetch chunk data, map back to the original queries */
    uint64_t t2 = ragd_now_ns();
    cand *all = malloc(ni * (size_t)k * sizeof *all);
    ragd_kb_hit **dhits = calloc(nd, sizeof *dhits);
    size_t *dn = calloc(nd, sizeof *dn);
    if (!all || !dhits || !dn) {
        free(all);
        free(dhits);
        free(dn);
        rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t d = 0; d < nd && !rc; d++) {
        size_t na = 0;
        for (size_t i = 0; i < ni; i++)
            for (size_t j = 0; j < tasks[i].n_out[d]; j++)
                all[na++] = tasks[i].out[d * (size_t)k + j];
        if (ni > 1) qsort(all, na, sizeof *all, cmp_cand);
        size_t keep = na < (size_t)k ? na : (size_t)k;
        ragd_kb_hit *hs = ragd_arena_alloc(&out->arena, (keep + 1) * sizeof *hs);
        if (!hs) {
            rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
            break;
        }
        for (size_t j = 0; j < keep; j++) {
            cand *c = &all[j];
            ragd_kb_hit *h = &hs[j];
            h->index = tasks[c->index_no].ix.name;
            h->chunk_id = c->chunk_id;
            h->score = c->score;
            h->bm25_score = c->bm25;
            h->vector_score = c->vec;
            h->bm25_rank = c->bm25_rank;
            h->vector_rank = c->vec_rank;
            h->doc_id = -1;
            if (!o->no_text) {
                ragd_store_chunk_info ci;
                ragd_err e2 = {0};
                int r2 = kb->st->ops->chunk_info(kb->st, c->chunk_id, &ci, &e2);
                if (r2 == RAGD_OK) {
                    h->doc_id = ci.doc_id;
                    h->start = ci.start;
                    h->end = ci.end;
                    h->text = arena_str(&out->arena, ci.text);
                    h->source = arena_str(&out->arena, ci.source);
                    h->ext_id = arena_str(&out->arena, ci.ext_id);
                    h->title = arena_str(&out->arena, ci.title);
                    h->metadata = arena_str(&out->arena, ci.metadata);
                    ragd_store_chunk_info_free(&ci);
                    if (!h->text || !h->source || !h->ext_id || !h->title || !h->metadata)
                        rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
                } else if (r2 != RAGD_ENOTFOUND) { /* deleted meanwhile: keep bare hit */
                    rc = r2;
                    if (err) *err = e2;
                }
            }
        }
        dhits[d] = hs;
        dn[d] = keep;
    }
    /* index names must outlive the tasks */
    for (size_t d = 0; d < nd && !rc; d++)
        for (size_t j = 0; j < dn[d]; j++) {
            dhits[d][j].index = arena_str(&out->arena, dhits[d][j].index);
            if (!dhits[d][j].index) rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        }
    for (size_t i = 0; i < nq && !rc; i++) {
        out->hits[i] = dhits[map[i]];
        out->n_hits[i] = dn[map[i]];
    }
    free(all);
    free(dhits);
    free(dn);
    out->fetch_ms = (double)(ragd_now_ns() - t2) / 1e6;
done:
    if (tasks)
        for (size_t i = 0; i < ni; i++) {
            free(tasks[i].out);
            free(tasks[i].n_out);
        }
    free(tasks);
    free(sorted);
    free(dq);
    free(map);
    free(qvec);
    if (rc) {
        ragd_kb_results_free(out);
        ragd_arena_init(&out->arena, 0);
    }
    return rc;
}
