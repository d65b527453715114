/* embed.c - the embedding engine: BERT model + WordPiece tokenizer behind a queue whose
 * worker thread merges whatever requests are waiting into packed batches of at most
 * max_batch_tokens tokens (see embed.h). Callers tokenize in their own threads, queue their
 * sequences and sleep until the worker has written every vector. A request larger than one
 * batch is spread over several; a batch can hold sequences of many requests. */
#include "embed/embed.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embed/embed_internal.h"
#include "model/bert.h"
#include "tokenizer/wordpiece.h"
#include "util/log.h"
#include "util/str.h"

#define EMBED_DEFAULT_BATCH_TOKENS 16384

typedef struct emb_req {
    int32_t **ids; /* n sequences, [CLS] ... [SEP] */
    int32_t *lens;
    size_t n;
    size_t next; /* first sequence not yet taken by the worker */
    size_t done; /* sequences written */
    float *out;
    int rc;
    ragd_err err;
    struct emb_req *link;
} emb_req;

struct ragd_embedder {
    ragd_bert *model;
    ragd_wordpiece *tok;
    ragd_wordpiece_info tinfo;
    ragd_pool *pool;
    int dim, max_tokens, max_batch_tokens;
    char name[256];
    pthread_t worker;
    bool worker_started;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    emb_req *head, *tail;
    bool stop, paused;
    ragd_embedder_stats stats;
    /* worker-owned batch buffers */
    int32_t *b_ids, *b_lens;
    size_t b_ids_cap, b_lens_cap;
    float *b_out;
    size_t b_out_cap;
    struct {
        emb_req *r;
        size_t first, count;
    } * b_parts;
    size_t b_parts_cap;
};

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return RAGD_OK;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, nc * elem);
    if (!q) return RAGD_ENOMEM;
    *p = q;
    *cap = nc;
    return RAGD_OK;
}

/* Take sequences from the queue front into one batch (called with mu held). Returns the
 * number of parts (request slices) or -1 on allocation failure. */
static int take_batch(ragd_embedder *e, size_t *n_seq, size_t *n_tok) {
    size_t ns = 0, nt = 0;
    int parts = 0;
    for (emb_req *r = e->head; r; r = r->link) {
        if (r->next >= r->n) continue;
        size_t first = r->next, cnt = 0;
        while (r->next < r->n) {
            size_t len = (size_t)r->lens[r->next];
            if (ns > 0 && nt + len > (size_t)e->max_batch_tokens) break;
            if (grow((void **)&e->b_ids, &e->b_ids_cap, nt + len, sizeof *e->b_ids) ||
                grow((void **)&e->b_lens, &e->b_lens_cap, ns + 1, sizeof *e->b_lens))
                return -1;
            memcpy(e->b_ids + nt, r->ids[r->next], len * sizeof *e->b_ids);
            e->b_lens[ns++] = (int32_t)len;
            nt += len;
            r->next++;
            cnt++;
        }
        if (cnt) {
            if (grow((void **)&e->b_parts, &e->b_parts_cap, (size_t)parts + 1, sizeof *e->b_parts))
                return -1;
            e->b_parts[parts].r = r;
            e->b_parts[parts].first = first;
            e->b_parts[parts].count = cnt;
            parts++;
        }
        if (r->next < r->n) break; /* batch full */
    }
    *n_seq = ns;
    *n_tok = nt;
    return parts;
}

static bool has_work(const ragd_embedder *e) {
    for (emb_req *r = e->head; r; r = r->link)
        if (r->next < r->n) return true;
    return false;
}

static void unlink_finished(ragd_embedder *e) {
    emb_req **pp = &e->head;
    e->tail = NULL;
    while (*pp) {
        emb_req *r = *pp;
        if (r->done >= r->n) {
            *pp = r->link;
        } else {
            e->tail = r;
            pp = &r->link;
        }
    }
}

static void *worker_main(void *arg) {
    ragd_embedder *e = arg;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (!e->stop && (e->paused || !has_work(e))) pthread_cond_wait(&e->cv_work, &e->mu);
        if (e->stop) break;
        size_t ns = 0, nt = 0;
        int parts = take_batch(e, &ns, &nt);
        int rc = RAGD_OK;
        ragd_err err = {0};
        if (parts < 0 ||
            grow((void **)&e->b_out, &e->b_out_cap, ns * (size_t)e->dim, sizeof *e->b_out))
            rc = ragd_err_set(&err, RAGD_ENOMEM, "out of memory assembling an embedding batch");
        pthread_mutex_unlock(&e->mu);
        if (rc == RAGD_OK)
            rc = ragd_bert_forward(e->model, e->pool, e->b_ids, e->b_lens, (int)ns,
                                   RAGD_BERT_POOL_MODEL, -1, e->b_out, &err);
        pthread_mutex_lock(&e->mu);
        if (parts < 0) {
            /* nothing is known about which sequences were taken: fail all queued work */
            for (emb_req *r = e->head; r; r = r->link) {
                r->rc = rc;
                r->err = err;
                r->next = r->done = r->n;
            }
        } else {
            size_t row = 0;
            for (int p = 0; p < parts; p++) {
                emb_req *r = e->b_parts[p].r;
                if (rc) {
                    r->rc = rc;
                    r->err = err;
                } else {
                    memcpy(r->out + e->b_parts[p].first * (size_t)e->dim,
                           e->b_out + row * (size_t)e->dim,
                           e->b_parts[p].count * (size_t)e->dim * sizeof(float));
                }
                row += e->b_parts[p].count;
                r->done += e->b_parts[p].count;
            }
            e->stats.batches++;
            e->stats.sequences += ns;
            e->stats.tokens += nt;
        }
        unlink_finished(e);
        pthread_cond_broadcast(&e->cv_done);
    }
    /* shutting down: fail whatever is still queued */
    for (emb_req *r = e->head; r; r = r->link) {
        r->rc = ragd_err_set(&r->err, RAGD_ECANCELLED, "embedding engine shut down");
        r->done = r->n;
    }
    e->head = e->tail = NULL;
    pthread_cond_broadcast(&e->cv_done);
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

int ragd_embedder_create(const ragd_embedder_opts *opts, ragd_embedder **out, ragd_err *err) {
    *out = NULL;
    if (!opts || !opts->model_dir)
        return ragd_err_set(err, RAGD_EINVAL, "embedder: no model directory given");
    const char *dev = opts->device ? opts->device : "cpu";
    if (strcmp(dev, "cpu") != 0 && strcmp(dev, "cuda") != 0)
        return ragd_err_set(err, RAGD_EINVAL, "embedder: unknown device '%s' (cpu or cuda)", dev);
    if (opts->max_batch_tokens < 0)
        return ragd_err_set(err, RAGD_EINVAL, "embedder: max_batch_tokens must be >= 0");
    ragd_embedder *e = calloc(1, sizeof *e);
    if (!e) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv_work, NULL);
    pthread_cond_init(&e->cv_done, NULL);
    e->pool = opts->pool;
    int rc = ragd_bert_load(opts->model_dir, &e->model, err);
    if (!rc) rc = ragd_wordpiece_load(opts->model_dir, &e->tok, err);
    if (!rc && strcmp(dev, "cuda") == 0) {
        rc = ragd_bert_set_device(e->model, "cuda", err);
        if (rc) ragd_err_prefix(err, "embedder");
    }
    if (!rc && opts->precision && strcmp(opts->precision, "f32") != 0 && strcmp(dev, "cpu") == 0) {
        if (strcmp(opts->precision, "bf16") == 0)
            rc = ragd_bert_set_precision(e->model, RAGD_BERT_BF16, err);
        else
            rc = ragd_err_set(err, RAGD_EINVAL, "embedder: unknown precision '%s' (f32 or bf16)",
                              opts->precision);
    }
    if (rc) {
        ragd_embedder_destroy(e);
        return rc;
    }
    const ragd_bert_config *c = ragd_bert_get_config(e->model);
    ragd_wordpiece_get_info(e->tok, &e->tinfo);
    if (ragd_wordpiece_vocab_size(e->tok) > c->vocab) {
        ragd_embedder_destroy(e);
        return ragd_err_set(err, RAGD_EFORMAT,
                            "embedder %s: tokenizer has %d tokens, the model only %d",
                            opts->model_dir, ragd_wordpiece_vocab_size(e->tok), c->vocab);
    }
    e->dim = c->hidden;
    e->max_tokens = c->max_pos < 512 ? c->max_pos : 512;
    e->max_batch_tokens =
        opts->max_batch_tokens ? opts->max_batch_tokens : EMBED_DEFAULT_BATCH_TOKENS;
    if (e->max_batch_tokens < e->max_tokens) e->max_batch_tokens = e->max_tokens;
    /* the model's name: the directory's last component */
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", opts->model_dir);
    size_t l = strlen(tmp);
    while (l > 1 && tmp[l - 1] == '/') tmp[--l] = '\0';
    const char *base = strrchr(tmp, '/');
    base = base ? base + 1 : tmp;
    size_t bl = strlen(base);
    if (bl >= sizeof e->name) bl = sizeof e->name - 1;
    memcpy(e->name, base, bl);
    e->name[bl] = '\0';
    if (pthread_create(&e->worker, NULL, worker_main, e) != 0) {
        ragd_embedder_destroy(e);
        return ragd_err_set(err, RAGD_EINTERNAL, "embedder: cannot start the worker thread");
    }
    e->worker_started = true;
    LOG_INFO("embedder: %s, dim %d, %d layers, %s pooling%s, %s, max %d tokens per batch", e->name,
             e->dim, c->layers,
             ragd_bert_model_pooling(e->model) == RAGD_BERT_POOL_CLS ? "CLS" : "mean",
             ragd_bert_model_normalize(e->model) ? " + L2" : "",
             ragd_bert_on_gpu(e->model)                            ? "cuda (bf16 GEMMs)"
             : ragd_bert_get_precision(e->model) == RAGD_BERT_BF16 ? "bf16 AMX GEMMs"
                                                                   : "f32",
             e->max_batch_tokens);
    *out = e;
    return RAGD_OK;
}

void ragd_embedder_destroy(ragd_embedder *e) {
    if (!e) return;
    if (e->worker_started) {
        pthread_mutex_lock(&e->mu);
        e->stop = true;
        pthread_cond_broadcast(&e->cv_work);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->worker, NULL);
    }
    ragd_bert_destroy(e->model);
    ragd_wordpiece_destroy(e->tok);
    free(e->b_ids);
    free(e->b_lens);
    free(e->b_out);
    free(e->b_parts);
    pthread_cond_destroy(&e->cv_work);
    pthread_cond_destroy(&e->cv_done);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

int ragd_embedder_dim(const ragd_embedder *e) {
    return e->dim;
}
const char *ragd_embedder_model_name(const ragd_embedder *e) {
    return e->name;
}
int ragd_embedder_max_tokens(const ragd_embedder *e) {
    return e->max_tokens;
}

/* Queue one request and wait until the worker has done all of it. */
static int submit_and_wait(ragd_embedder *e, emb_req *r, ragd_err *err) {
    if (r->n == 0) return RAGD_OK;
    pthread_mutex_lock(&e->mu);
    if (e->stop) {
        pthread_mutex_unlock(&e->mu);
        return ragd_err_set(err, RAGD_ECANCELLED, "embedding engine shut down");
    }
    r->link = NULL;
    if (e->tail)
        e->tail->link = r;
    else
        e->head = r;
    e->tail = r;
    e->stats.requests++;
    pthread_cond_signal(&e->cv_work);
    while (r->done < r->n) pthread_cond_wait(&e->cv_done, &e->mu);
    pthread_mutex_unlock(&e->mu);
    if (r->rc) {
        if (err) *err = r->err;
        return r->rc;
    }
    return RAGD_OK;
}

static void free_seqs(emb_req *r) {
    if (r->ids)
        for (size_t i = 0; i < r->n; i++) free(r->ids[i]);
    free(r->ids);
    free(r->lens);
}

int ragd_embedder_embed(ragd_embedder *e, const char *const *texts, const size_t *lens, size_t n,
                        float *out, int *n_tokens, uint8_t *truncated, ragd_err *err) {
    emb_req r = {.n = n, .out = out};
    if (n == 0) return RAGD_OK;
    r.ids = calloc(n, sizeof *r.ids);
    r.lens = calloc(n, sizeof *r.lens);
    if (!r.ids || !r.lens) {
        free_seqs(&r);
        return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        size_t nb = lens ? lens[i] : strlen(texts[i]);
        size_t nid = 0;
        bool tr = false;
        int rc = ragd_wordpiece_encode(e->tok, texts[i], nb, (size_t)e->max_tokens, &r.ids[i], &nid,
                                       &tr, err);
        if (rc) {
            ragd_err_prefix(err, "input %zu", i);
            free_seqs(&r);
            return rc;
        }
        r.lens[i] = (int32_t)nid;
        if (n_tokens) n_tokens[i] = (int)nid;
        if (truncated) truncated[i] = tr ? 1 : 0;
    }
    int rc = submit_and_wait(e, &r, err);
    free_seqs(&r);
    return rc;
}

int ragd_embedder_embed_ids(ragd_embedder *e, const int32_t *const *ids, const size_t *n_ids,
                            size_t n, float *out, ragd_err *err) {
    emb_req r = {.n = n, .out = out};
    if (n == 0) return RAGD_OK;
    const int vocab = ragd_bert_get_config(e->model)->vocab;
    for (size_t i = 0; i < n; i++) {
        if (n_ids[i] + 2 > (size_t)e->max_tokens)
            return ragd_err_set(err, RAGD_EINVAL,
                                "input %zu: %zu tokens; at most %d fit with [CLS] and [SEP]", i,
                                n_ids[i], e->max_tokens - 2);
        for (size_t j = 0; j < n_ids[i]; j++)
            if (ids[i][j] < 0 || ids[i][j] >= vocab)
                return ragd_err_set(err, RAGD_EINVAL, "input %zu: token id %d out of range [0, %d)",
                                    i, (int)ids[i][j], vocab);
    }
    r.ids = calloc(n, sizeof *r.ids);
    r.lens = calloc(n, sizeof *r.lens);
    if (!r.ids || !r.lens) {
        free_seqs(&r);
        return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        r.ids[i] = malloc((n_ids[i] + 2) * sizeof(int32_t));
        if (!r.ids[i]) {
            free_seqs(&r);
            return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        }
        r.ids[i][0] = e->tinfo.cls_id;
        if (n_ids[i]) memcpy(r.ids[i] + 1, ids[i], n_ids[i] * sizeof(int32_t));
        r.ids[i][n_ids[i] + 1] = e->tinfo.sep_id;
        r.lens[i] = (int32_t)(n_ids[i] + 2);
    }
    int rc = submit_and_wait(e, &r, err);
    free_seqs(&r);
    return rc;
}

void ragd_embedder_get_stats(ragd_embedder *e, ragd_embedder_stats *st) {
    pthread_mutex_lock(&e->mu);
    *st = e->stats;
    st->queued = 0;
    for (emb_req *r = e->head; r; r = r->link) st->queued++;
    pthread_mutex_unlock(&e->mu);
}

void ragd_embedder_pause(ragd_embedder *e, int paused) {
    pthread_mutex_lock(&e->mu);
    e->paused = paused != 0;
    pthread_cond_broadcast(&e->cv_work);
    pthread_mutex_unlock(&e->mu);
}
