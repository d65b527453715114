/* kb_embed.c - the hash embedder and the model-directory embedder adapter. */
#include "kb/kb_embed.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kb/analyzer.h"

typedef struct hash_emb {
    ragd_kb_embedder base;
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
    int dim = ((hash_emb *)ctx)->base.dim;
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

int ragd_kb_hash_embedder_create(int dim, ragd_kb_embedder **out, ragd_err *err) {
    *out = NULL;
    if (dim < 8 || dim > 4096)
        return ragd_err_set(err, RAGD_EINVAL, "hash embedder dimension must be 8..4096");
    hash_emb *h = calloc(1, sizeof *h);
    if (!h) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    snprintf(h->name, sizeof h->name, "hash:%d", dim);
    h->base = (ragd_kb_embedder){h, h->name, dim, hash_embed, NULL};
    *out = &h->base;
    return RAGD_OK;
}

int ragd_kb_embedder_open(const char *spec, ragd_pool *pool, ragd_kb_embedder **out,
                          ragd_err *err) {
    (void)pool;
    *out = NULL;
    if (!strncmp(spec, "hash:", 5)) {
        char *end;
        long d = strtol(spec + 5, &end, 10);
        if (*end || end == spec + 5)
            return ragd_err_set(err, RAGD_EINVAL, "bad embedder '%s' (want hash:DIM)", spec);
        return ragd_kb_hash_embedder_create((int)d, out, err);
    }
    return ragd_err_set(err, RAGD_EUNSUPPORTED,
                        "embedding models are not available in this build yet (the embedding "
                        "engine is not merged); use --embed-model hash:DIM or BM25 only");
}

void ragd_kb_embedder_close(ragd_kb_embedder *e) {
    if (!e) return;
    free(e->ctx); /* the hash embedder's ctx is itself */
}
