/* kb_embed.c - the hash embedder and the model-directory embedder adapter. */
#include "kb/kb_embed.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kb/analyzer.h"
#include "util/str.h"

/* Every embedder here starts with this header so ragd_kb_embedder_close can dispose of it. */
typedef struct emb_head {
    ragd_kb_embedder base;
    void (*destroy)(struct emb_head *h);
} emb_head;

typedef struct hash_emb {
    emb_head head;
    char name[32];
} hash_emb;

typedef struct {
    float *v;
    int dim;
} hash_ctx;

static int hash_term(void *vctx, const char *t, size_t n, size_t s, size_t e) {
    (void)s;
    (void)e;
    hash_ctx *c = vctx;
    uint64_t h[2];
    ragd_kb_hash128(t, n, h);
    c->v[h[0] % (uint64_t)c->dim] += (h[1] & 1) ? 1.0f : -1.0f;
    return 0;
}

static int hash_embed(void *ctx, const char *const *texts, const size_t *lens, size_t n, float *out,
                      ragd_err *err) {
    int dim = ((hash_emb *)ctx)->head.base.dim;
    for (size_t i = 0; i < n; i++) {
        float *v = out + i * (size_t)dim;
        memset(v, 0, (size_t)dim * sizeof *v);
        hash_ctx c = {v, dim};
        size_t len = lens ? lens[i] : strlen(texts[i]);
        if (ragd_kb_analyze(texts[i], len, hash_term, &c))
            return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        double s = 0;
        for (int j = 0; j < dim; j++) s += (double)v[j] * v[j];
        if (s > 0) {
            float inv = (float)(1.0 / sqrt(s));
            for (int j = 0; j < dim; j++) v[j] *= inv;
        } else {
            v[0] = 1.0f; /* no terms: a fixed unit vector */
        }
    }
    return RAGD_OK;
}

static void hash_destroy(emb_head *h) {
    free(h);
}

int ragd_kb_hash_embedder_create(int dim, ragd_kb_embedder **out, ragd_err *err) {
    *out = NULL;
    if (dim < 8 || dim > 4096)
        return ragd_err_set(err, RAGD_EINVAL, "hash embedder dimension must be 8..4096");
    hash_emb *h = calloc(1, sizeof *h);
    if (!h) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    snprintf(h->name, sizeof h->name, "hash:%d", dim);
    h->head.base = (ragd_kb_embedder){h, h->name, dim, hash_embed, NULL};
    h->head.destroy = hash_destroy;
    *out = &h->head.base;
    return RAGD_OK;
}

#if __has_include("tokenizer/wordpiece.h")
/* The embedding engine (embed/embed.h) and the model's WordPiece tokenizer for chunk sizes. */
#include "embed/embed.h"
#include "tokenizer/wordpiece.h"

typedef struct model_emb {
    emb_head head;
    ragd_embedder *engine;
    int owns_engine;
    ragd_wordpiece *wp;
    ragd_kb_token_counter tc;
} model_emb;

static int model_embed(void *ctx, const char *const *texts, const size_t *lens, size_t n,
                       float *out, ragd_err *err) {
    model_emb *m = ctx;
    return ragd_embedder_embed(m->engine, texts, lens, n, out, NULL, NULL, err);
}

static size_t wp_count(void *ctx, const char *text, size_t len) {
    model_emb *m = ctx;
    int32_t *ids = NULL;
    size_t n = 0;
    if (ragd_wordpiece_encode(m->wp, text, len, (size_t)1 << 30, &ids, &n, NULL, NULL)) {
        free(ids);
        return ragd_kb_approx_tokens.count(NULL, text, len);
    }
    free(ids);
    return n >= 2 ? n - 2 : 0; /* without [CLS] and [SEP] */
}

static void model_destroy(emb_head *h) {
    model_emb *m = (model_emb *)h;
    if (m->owns_engine) ragd_embedder_destroy(m->engine);
    ragd_wordpiece_destroy(m->wp);
    free(m);
}

static int wrap_engine(ragd_embedder *engine, int owns, const char *model_dir,
                       ragd_kb_embedder **out, ragd_err *err) {
    model_emb *m = calloc(1, sizeof *m);
    if (!m) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    m->engine = engine;
    m->owns_engine = owns;
    if (model_dir) {
        int rc = ragd_wordpiece_load(model_dir, &m->wp, err);
        if (rc) {
            free(m);
            return rc;
        }
        m->tc = (ragd_kb_token_counter){"wordpiece", m, wp_count};
    }
    m->head.base =
        (ragd_kb_embedder){m, ragd_embedder_model_name(engine), ragd_embedder_dim(engine),
                           model_embed, m->wp ? &m->tc : NULL};
    m->head.destroy = model_destroy;
    *out = &m->head.base;
    return RAGD_OK;
}

int ragd_kb_embedder_from_engine(struct ragd_embedder *engine, const char *model_dir,
                                 ragd_kb_embedder **out, ragd_err *err) {
    *out = NULL;
    return wrap_engine(engine, 0, model_dir, out, err);
}

static int open_model(const char *dir, const char *device, const char *precision, ragd_pool *pool,
                      ragd_kb_embedder **out, ragd_err *err) {
    ragd_embedder_opts o = {
        .model_dir = dir, .device = device, .pool = pool, .precision = precision};
    ragd_embedder *e = NULL;
    int rc = ragd_embedder_create(&o, &e, err);
    if (rc) return rc;
    rc = wrap_engine(e, 1, dir, out, err);
    if (rc) ragd_embedder_destroy(e);
    return rc;
}
#else
int ragd_kb_embedder_from_engine(struct ragd_embedder *engine, const char *model_dir,
                                 ragd_kb_embedder **out, ragd_err *err) {
    (void)engine;
    (void)model_dir;
    *out = NULL;
    return ragd_err_set(err, RAGD_EUNSUPPORTED, "this build has no embedding engine");
}

static int open_model(const char *dir, const char *device, const char *precision, ragd_pool *pool,
                      ragd_kb_embedder **out, ragd_err *err) {
    (void)dir;
    (void)device;
    (void)precision;
    (void)pool;
    (void)out;
    return ragd_err_set(err, RAGD_EUNSUPPORTED,
                        "embedding models are not available in this build yet (the embedding "
                        "engine is not merged); use --embed-model hash:DIM or BM25 only");
}
#endif

int ragd_kb_embedder_open(const char *spec, ragd_pool *pool, ragd_kb_embedder **out,
                          ragd_err *err) {
    return ragd_kb_embedder_open_on(spec, NULL, pool, out, err);
}

int ragd_kb_embedder_open_on(const char *spec, const char *device, ragd_pool *pool,
                             ragd_kb_embedder **out, ragd_err *err) {
    return ragd_kb_embedder_open_ex(spec, device, NULL, pool, out, err);
}

int ragd_kb_embedder_open_ex(const char *spec, const char *device, const char *precision,
                             ragd_pool *pool, ragd_kb_embedder **out, ragd_err *err) {
    *out = NULL;
    if (!strncmp(spec, "hash:", 5)) {
        char *end;
        long d = strtol(spec + 5, &end, 10);
        if (*end || end == spec + 5)
            return ragd_err_set(err, RAGD_EINVAL, "bad embedder '%s' (want hash:DIM)", spec);
        return ragd_kb_hash_embedder_create((int)d, out, err);
    }
    if (!ragd_dir_exists(spec))
        return ragd_err_set(err, RAGD_ENOTFOUND, "no model directory %s", spec);
    return open_model(spec, device, precision, pool, out, err);
}

void ragd_kb_embedder_close(ragd_kb_embedder *e) {
    if (!e) return;
    emb_head *h = (emb_head *)e; /* base is the first member */
    h->destroy(h);
}
