/* bert.c - BertModel forward on the CPU over packed sequences (see bert.h). */
#include "model/bert.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <cjson/cJSON.h>

#include "backend/cpu/amx_gemm.h"
#include "backend/cpu/bert_ops.h"
#include "backend/cpu/matmul_pool.h"
#ifdef RAGD_HAVE_CUDA
#include "backend/cuda/bert_cuda.h"
#endif
#include "model/dtype.h"
#include "model/safetensors.h"
#include "util/clock.h"
#include "util/str.h"

typedef struct bert_layer {
    float *wqkv, *bqkv; /* [3H x H], [3H]: query, key, value stacked */
    const float *wo, *bo, *ln1_g, *ln1_b;
    const float *w1, *b1, *w2, *b2, *ln2_g, *ln2_b;
    ragd_amx_weight aqkv, ao, a1, a2; /* bf16 mode: packed copies */
} bert_layer;

struct ragd_bert {
    ragd_bert_config cfg;
    ragd_st *st;
    const float *word, *pos, *type, *emb_g, *emb_b;
    bert_layer *layers;
    float **owned; /* converted or fused copies */
    size_t n_owned, cap_owned;
    ragd_bert_pooling pooling;
    bool normalize;
    ragd_bert_precision precision;
    void *gpu; /* ragd_bert_cuda when the device is cuda */
    pthread_mutex_t mu;
    /* scratch, grown on demand (under mu) */
    float *buf;
    size_t buf_cap;
    ragd_bert_stats stats;
};

/* ---------------------------------------------------------------------------------------- */
/* loading                                                                                    */

static float *bert_own(ragd_bert *m, size_t n) {
    if (m->n_owned == m->cap_owned) {
        size_t nc = m->cap_owned ? m->cap_owned * 2 : 64;
        float **p = realloc(m->owned, nc * sizeof *p);
        if (!p) return NULL;
        m->owned = p;
        m->cap_owned = nc;
    }
    /* 64-byte aligned: the GEMM kernels' vector loads then never straddle cache lines */
    float *f = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    if (f) m->owned[m->n_owned++] = f;
    return f;
}

/* The tensor `name` (tried as is and with the "bert." prefix) as f32 with the given shape. */
static int bert_tensor(ragd_bert *m, const char *name, int ndim, int64_t d0, int64_t d1,
                       const float **out, ragd_err *err) {
    char full[256];
    const ragd_tensor *t = ragd_st_find(m->st, name);
    if (!t) {
        snprintf(full, sizeof full, "bert.%s", name);
        t = ragd_st_find(m->st, full);
    } else {
        snprintf(full, sizeof full, "%s", name);
    }
    if (!t) return ragd_err_set(err, RAGD_ENOTFOUND, "tensor %s not found", name);
    int64_t shape[2] = {d0, d1};
    int rc = ragd_st_expect(m->st, full, ndim, shape, &t, err);
    if (rc) return rc;
    if (t->dtype == RAGD_DT_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) {
        *out = t->data;
        return RAGD_OK;
    }
    if (t->dtype != RAGD_DT_F32 && t->dtype != RAGD_DT_BF16 && t->dtype != RAGD_DT_F16)
        return ragd_err_set(err, RAGD_EUNSUPPORTED, "tensor %s: dtype %s not supported", full,
                            ragd_dtype_name(t->dtype));
    float *f = bert_own(m, (size_t)t->numel);
    if (!f) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    if (t->dtype == RAGD_DT_F32)
        memcpy(f, t->data, (size_t)t->numel * sizeof(float));
    else
        ragd_to_f32(f, t->data, t->dtype, (size_t)t->numel);
    *out = f;
    return RAGD_OK;
}

static int json_int(const cJSON *o, const char *key, int dflt, bool required, int *out,
                    ragd_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) {
        if (required) return ragd_err_set(err, RAGD_EFORMAT, "config.json: %s missing", key);
        *out = dflt;
        return RAGD_OK;
    }
    if (v->valuedouble < 1 || v->valuedouble > 1e7)
        return ragd_err_set(err, RAGD_EFORMAT, "config.json: %s out of range", key);
    *out = v->valueint;
    return RAGD_OK;
}

static cJSON *load_json(const char *path, ragd_err *err) {
    char *text = NULL;
    size_t len = 0;
    if (ragd_read_file(path, &text, &len, err)) return NULL;
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    if (!j) ragd_err_set(err, RAGD_EFORMAT, "%s: invalid JSON", path);
    return j;
}

static int bert_load_config(ragd_bert *m, const char *dir, ragd_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *j = load_json(path, err);
    if (!j) return err ? err->code : RAGD_EFORMAT;
    ragd_bert_config *c = &m->cfg;
    int rc = RAGD_OK;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(j, "model_type");
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(j, "hidden_act");
    const cJSON *pet = cJSON_GetObjectItemCaseSensitive(j, "position_embedding_type");
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(j, "layer_norm_eps");
    if (cJSON_IsString(mt) && strcmp(mt->valuestring, "bert") != 0) {
        rc = ragd_err_set(err, RAGD_EUNSUPPORTED, "%s: model_type %s is not bert", path,
                          mt->valuestring);
    } else if (cJSON_IsString(act) && strcmp(act->valuestring, "gelu") != 0) {
        rc = ragd_err_set(err, RAGD_EUNSUPPORTED, "%s: hidden_act %s not supported (gelu only)",
                          path, act->valuestring);
    } else if (cJSON_IsString(pet) && strcmp(pet->valuestring, "absolute") != 0) {
        rc = ragd_err_set(err, RAGD_EUNSUPPORTED, "%s: position_embedding_type %s not supported",
                          path, pet->valuestring);
    }
    if (!rc) rc = json_int(j, "hidden_size", 0, true, &c->hidden, err);
    if (!rc) rc = json_int(j, "num_hidden_layers", 0, true, &c->layers, err);
    if (!rc) rc = json_int(j, "num_attention_heads", 0, true, &c->heads, err);
    if (!rc) rc = json_int(j, "intermediate_size", 0, true, &c->ffn, err);
    if (!rc) rc = json_int(j, "vocab_size", 0, true, &c->vocab, err);
    if (!rc) rc = json_int(j, "max_position_embeddings", 512, false, &c->max_pos, err);
    if (!rc) rc = json_int(j, "type_vocab_size", 2, false, &c->type_vocab, err);
    c->ln_eps = cJSON_IsNumber(eps) ? (float)eps->valuedouble : 1e-12f;
    if (!rc && c->hidden % c->heads != 0)
        rc = ragd_err_set(err, RAGD_EFORMAT, "%s: hidden_size %d not divisible by %d heads", path,
                          c->hidden, c->heads);
    if (!rc && c->layers > 1000)
        rc = ragd_err_set(err, RAGD_EFORMAT, "%s: %d layers", path, c->layers);
    cJSON_Delete(j);
    return rc;
}

/* Pooling rule (see bert.h). */
static int bert_load_pooling(ragd_bert *m, const char *dir, ragd_err *err) {
    char path[4096];
    m->pooling = RAGD_BERT_POOL_CLS;
    m->normalize = true;
    snprintf(path, sizeof path, "%s/modules.json", dir);
    if (!ragd_file_exists(path)) return RAGD_OK; /* bge convention */
    cJSON *mods = load_json(path, err);
    if (!mods) return err ? err->code : RAGD_EFORMAT;
    m->normalize = false;
    int rc = RAGD_OK;
    const cJSON *it;
    cJSON_ArrayForEach(it, mods) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(it, "type");
        const cJSON *mpath = cJSON_GetObjectItemCaseSensitive(it, "path");
        if (!cJSON_IsString(type)) continue;
        if (ragd_str_ends_with(type->valuestring, ".Normalize")) m->normalize = true;
        if (ragd_str_ends_with(type->valuestring, ".Pooling") && cJSON_IsString(mpath)) {
            char pc[4096];
            snprintf(pc, sizeof pc, "%s/%s/config.json", dir, mpath->valuestring);
            if (!ragd_file_exists(pc)) continue; /* sentence-transformers default: mean */
            cJSON *pj = load_json(pc, err);
            if (!pj) {
                rc = err ? err->code : RAGD_EFORMAT;
                break;
            }
            bool cls = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pj, "pooling_mode_cls_token"));
            bool mean =
                cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pj, "pooling_mode_mean_tokens"));
            bool other =
                cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pj, "pooling_mode_max_tokens")) ||
                cJSON_IsTrue(
                    cJSON_GetObjectItemCaseSensitive(pj, "pooling_mode_mean_sqrt_len_tokens"));
            cJSON_Delete(pj);
            if (cls + mean + other != 1) {
                rc = ragd_err_set(err, RAGD_EUNSUPPORTED,
                                  "%s: exactly one of CLS or mean pooling is supported", pc);
                break;
            }
            if (other) {
                rc = ragd_err_set(err, RAGD_EUNSUPPORTED,
                                  "%s: max / mean_sqrt_len pooling not supported", pc);
                break;
            }
            m->pooling = cls ? RAGD_BERT_POOL_CLS : RAGD_BERT_POOL_MEAN;
        }
    }
    cJSON_Delete(mods);
    return rc;
}

static int bert_load_weights(ragd_bert *m, ragd_err *err) {
    const ragd_bert_config *c = &m->cfg;
    const int64_t H = c->hidden, F = c->ffn;
    int rc = bert_tensor(m, "embeddings.word_embeddings.weight", 2, c->vocab, H, &m->word, err);
    if (!rc)
        rc =
            bert_tensor(m, "embeddings.position_embeddings.weight", 2, c->max_pos, H, &m->pos, err);
    if (!rc)
        rc = bert_tensor(m, "embeddings.token_type_embeddings.weight", 2, c->type_vocab, H,
                         &m->type, err);
    if (!rc) rc = bert_tensor(m, "embeddings.LayerNorm.weight", 1, H, 0, &m->emb_g, err);
    if (!rc) rc = bert_tensor(m, "embeddings.LayerNorm.bias", 1, H, 0, &m->emb_b, err);
    if (rc) return rc;
    m->layers = calloc((size_t)c->layers, sizeof *m->layers);
    if (!m->layers) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    for (int l = 0; l < c->layers && !rc; l++) {
        bert_layer *L = &m->layers[l];
        char n[160];
#define T1(field, suffix, d0)                                                                      \
    do {                                                                                           \
        snprintf(n, sizeof n, "encoder.layer.%d.%s", l, suffix);                                   \
        if (!rc) rc = bert_tensor(m, n, 1, d0, 0, &L->field, err);                                 \
    } while (0)
#define T2(field, suffix, d0, d1)                                                                  \
    do {                                                                                           \
        snprintf(n, sizeof n, "encoder.layer.%d.%s", l, suffix);                                   \
        if (!rc) rc = bert_tensor(m, n, 2, d0, d1, &L->field, err);                                \
    } while (0)
        T2(wo, "attention.output.dense.weight", H, H);
        T1(bo, "attention.output.dense.bias", H);
        T1(ln1_g, "attention.output.LayerNorm.weight", H);
        T1(ln1_b, "attention.output.LayerNorm.bias", H);
        T2(w1, "intermediate.dense.weight", F, H);
        T1(b1, "intermediate.dense.bias", F);
        T2(w2, "output.dense.weight", H, F);
        T1(b2, "output.dense.bias", H);
        T1(ln2_g, "output.LayerNorm.weight", H);
        T1(ln2_b, "output.LayerNorm.bias", H);
        /* query, key, value stacked into one [3H x H] weight: one GEMM */
        L->wqkv = bert_own(m, (size_t)(3 * H * H));
        L->bqkv = bert_own(m, (size_t)(3 * H));
        if (!L->wqkv || !L->bqkv) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        static const char *qkv[3] = {"query", "key", "value"};
        for (int k = 0; k < 3 && !rc; k++) {
            const float *w = NULL, *b = NULL;
            char s[96];
            snprintf(s, sizeof s, "attention.self.%s.weight", qkv[k]);
            snprintf(n, sizeof n, "encoder.layer.%d.%s", l, s);
            rc = bert_tensor(m, n, 2, H, H, &w, err);
            snprintf(n, sizeof n, "encoder.layer.%d.attention.self.%s.bias", l, qkv[k]);
            if (!rc) rc = bert_tensor(m, n, 1, H, 0, &b, err);
            if (!rc) {
                memcpy(L->wqkv + k * H * H, w, (size_t)(H * H) * sizeof(float));
                memcpy(L->bqkv + k * H, b, (size_t)H * sizeof(float));
            }
        }
#undef T1
#undef T2
    }
    return rc;
}

int ragd_bert_load(const char *model_dir, ragd_bert **out, ragd_err *err) {
    *out = NULL;
    ragd_bert *m = calloc(1, sizeof *m);
    if (!m) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    pthread_mutex_init(&m->mu, NULL);
    int rc = bert_load_config(m, model_dir, err);
    if (!rc) rc = bert_load_pooling(m, model_dir, err);
    if (!rc) rc = ragd_st_open_dir(model_dir, &m->st, err);
    if (!rc) rc = bert_load_weights(m, err);
    if (rc) {
        ragd_err_prefix(err, "bert model %s", model_dir);
        ragd_bert_destroy(m);
        return rc;
    }
    *out = m;
    return RAGD_OK;
}

void ragd_bert_destroy(ragd_bert *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    if (m->layers)
        for (int l = 0; l < m->cfg.layers; l++) {
            ragd_amx_free(&m->layers[l].aqkv);
            ragd_amx_free(&m->layers[l].ao);
            ragd_amx_free(&m->layers[l].a1);
            ragd_amx_free(&m->layers[l].a2);
        }
    free(m->layers);
    free(m->buf);
#ifdef RAGD_HAVE_CUDA
    ragd_bert_cuda_destroy(m->gpu);
#endif
    ragd_st_close(m->st);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

const ragd_bert_config *ragd_bert_get_config(const ragd_bert *m) {
    return &m->cfg;
}
ragd_bert_pooling ragd_bert_model_pooling(const ragd_bert *m) {
    return m->pooling;
}
bool ragd_bert_model_normalize(const ragd_bert *m) {
    return m->normalize;
}

int ragd_bert_set_precision(ragd_bert *m, ragd_bert_precision p, ragd_err *err) {
    if (p != RAGD_BERT_F32 && p != RAGD_BERT_BF16)
        return ragd_err_set(err, RAGD_EINVAL, "unknown precision %d", (int)p);
    const int H = m->cfg.hidden, F = m->cfg.ffn;
    if (p == RAGD_BERT_BF16) {
        if (!ragd_amx_available())
            return ragd_err_set(err, RAGD_EUNSUPPORTED,
                                "bf16 embeddings need a CPU with AMX-BF16 (Sapphire Rapids or "
                                "later) and a kernel that grants the tile state");
        if (H % 32 || F % 32)
            return ragd_err_set(err, RAGD_EUNSUPPORTED,
                                "bf16 embeddings need hidden and ffn sizes divisible by 32");
        if (!ragd_attention_bf16_supported(H / m->cfg.heads))
            return ragd_err_set(err, RAGD_EUNSUPPORTED,
                                "bf16 embeddings need a head size of 32 or 64 (this one: %d) "
                                "and a build with AVX512-BF16",
                                H / m->cfg.heads);
    }
    pthread_mutex_lock(&m->mu);
    int rc = RAGD_OK;
    for (int l = 0; l < m->cfg.layers; l++) {
        bert_layer *L = &m->layers[l];
        ragd_amx_free(&L->aqkv);
        ragd_amx_free(&L->ao);
        ragd_amx_free(&L->a1);
        ragd_amx_free(&L->a2);
        if (p == RAGD_BERT_BF16 &&
            (ragd_amx_pack(L->wqkv, 3 * H, H, &L->aqkv) || ragd_amx_pack(L->wo, H, H, &L->ao) ||
             ragd_amx_pack(L->w1, F, H, &L->a1) || ragd_amx_pack(L->w2, H, F, &L->a2))) {
            rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory packing bf16 weights");
            p = RAGD_BERT_F32;
            l = -1; /* free what was packed, fall back to f32 */
            continue;
        }
    }
    m->precision = p;
    pthread_mutex_unlock(&m->mu);
    return rc;
}

ragd_bert_precision ragd_bert_get_precision(const ragd_bert *m) {
    return m->precision;
}

int ragd_bert_set_device(ragd_bert *m, const char *device, ragd_err *err) {
    if (!device || strcmp(device, "cpu") == 0) {
        pthread_mutex_lock(&m->mu);
#ifdef RAGD_HAVE_CUDA
        ragd_bert_cuda_destroy(m->gpu);
#endif
        m->gpu = NULL;
        pthread_mutex_unlock(&m->mu);
        return RAGD_OK;
    }
    if (strcmp(device, "cuda") != 0)
        return ragd_err_set(err, RAGD_EINVAL, "unknown device '%s' (cpu or cuda)", device);
#ifndef RAGD_HAVE_CUDA
    return ragd_err_set(err, RAGD_EUNSUPPORTED,
                        "device cuda is not available: this build has no CUDA support (nvcc was "
                        "not found when it was configured)");
#else
    const ragd_bert_config *c = &m->cfg;
    ragd_bert_cuda_layer *ls = calloc((size_t)c->layers, sizeof *ls);
    if (!ls) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    for (int l = 0; l < c->layers; l++) {
        const bert_layer *L = &m->layers[l];
        ls[l] = (ragd_bert_cuda_layer){L->wqkv, L->bqkv, L->wo, L->bo, L->ln1_g, L->ln1_b,
                                       L->w1,   L->b1,   L->w2, L->b2, L->ln2_g, L->ln2_b};
    }
    ragd_bert_cuda_weights w = {.hidden = c->hidden,
                                .layers = c->layers,
                                .heads = c->heads,
                                .ffn = c->ffn,
                                .vocab = c->vocab,
                                .max_pos = c->max_pos,
                                .ln_eps = c->ln_eps,
                                .word = m->word,
                                .pos = m->pos,
                                .type = m->type,
                                .emb_g = m->emb_g,
                                .emb_b = m->emb_b,
                                .layer = ls};
    ragd_bert_cuda *g = NULL;
    int rc = ragd_bert_cuda_create(&w, &g, err);
    free(ls);
    if (rc) return rc;
    pthread_mutex_lock(&m->mu);
    ragd_bert_cuda_destroy(m->gpu);
    m->gpu = g;
    pthread_mutex_unlock(&m->mu);
    return RAGD_OK;
#endif
}

bool ragd_bert_on_gpu(const ragd_bert *m) {
    return m->gpu != NULL;
}

void ragd_bert_get_stats(ragd_bert *m, ragd_bert_stats *st) {
    pthread_mutex_lock(&m->mu);
    *st = m->stats;
    pthread_mutex_unlock(&m->mu);
}

void ragd_bert_reset_stats(ragd_bert *m) {
    pthread_mutex_lock(&m->mu);
    memset(&m->stats, 0, sizeof m->stats);
    pthread_mutex_unlock(&m->mu);
}

/* ---------------------------------------------------------------------------------------- */
/* forward                                                                                    */

typedef struct fwd {
    ragd_bert *m;
    const int32_t *ids, *lens;
    int n_seq, T, max_len, n_threads;
    int *offs;                   /* first token of each sequence */
    int *tpos;                   /* position of each token within its sequence */
    float *x;                    /* T x H hidden states */
    float *qkv;                  /* T x 3H */
    float *ctx;                  /* T x H attention output */
    float *tmp;                  /* T x H */
    float *ffn;                  /* T x F */
    float *xc, *qc, *ctxc;       /* n_seq x H: [CLS] rows of the last layer */
    float *att;                  /* n_threads x att_stride: attention scratch */
    size_t att_stride, att_need; /* per thread; att_need: ragd_attention_head's part */
    float *scores;               /* heads x max_len x max_len: scores of long sequences */
    int cur_seq;                 /* the sequence whose scores are being normalised */
    /* per-stage arguments */
    ragd_pool *pool;
    void *amx_scratch;
    uint16_t *xb, *fb; /* bf16 mode: bf16 copies of the hidden states / FFN activations */
    uint16_t *cb;      /* bf16 mode: attention output (ctx or ctxc) in bf16, the o-proj input */
    uint16_t *qkvb;    /* bf16 mode: Q, K, V (T x 3H; the [CLS] layer: K, V as T x 2H) */
    uint16_t *qcb;     /* bf16 mode, [CLS] layer: the queries (n_seq x H) */
    const bert_layer *layer;
    float *rows; /* x or xc */
    float *add;  /* tmp */
    int n_rows, rows_per_task;
    bool cls_only;
} fwd;

/* C[M x N] = A[M x K] . W[N x K]^T. bf16 mode: through AMX, A may come pre-converted (Ab),
 * with the bias / GELU epilogue and optionally bf16 output (Cb); f32 mode: ragd_matmul_pool (the
 * epilogue arguments must be unused: callers run separate passes). */
static void gemm(fwd *f, int M, int N, int K, const float *A, int lda, const uint16_t *Ab,
                 const float *W, const ragd_amx_weight *aw, const float *bias, unsigned flags,
                 float *C, int ldc, uint16_t *Cb, ragd_amx_rows_fn rows_fn) {
    uint64_t t0 = ragd_now_ns();
    if (f->m->precision == RAGD_BERT_BF16)
        ragd_amx_gemm_ex(f->pool, M, A, lda, Ab, aw, bias, flags, C, ldc, Cb, rows_fn, f,
                         f->amx_scratch);
    else
        /* batch-invariant: a text's vector does not depend on its neighbours in the batch */
        ragd_matmul_pool(f->pool, A, (size_t)lda, (size_t)M, W, RAGD_DT_F32, K, (size_t)N, C,
                         (size_t)ldc);
    f->m->stats.gemm_ns += ragd_now_ns() - t0;
    f->m->stats.gemm_flops += 2.0 * M * N * K;
}

static void task_embed(void *ctx, size_t i, int tid) {
    fwd *f = ctx;
    const ragd_bert *m = f->m;
    const int H = m->cfg.hidden;
    int r0 = (int)i * f->rows_per_task, r1 = r0 + f->rows_per_task;
    if (r1 > f->T) r1 = f->T;
    for (int t = r0; t < r1; t++) {
        float *x = f->x + (size_t)t * H;
        const float *w = m->word + (size_t)f->ids[t] * H;
        const float *p = m->pos + (size_t)f->tpos[t] * H;
        for (int d = 0; d < H; d++) x[d] = w[d] + p[d] + m->type[d];
        ragd_add_layernorm_bf16(x, NULL, NULL, m->emb_g, m->emb_b, (size_t)H, m->cfg.ln_eps,
                                f->xb ? f->xb + (size_t)t * H : NULL);
    }
}

/* Sequences at least this long use GEMM attention (scores through OpenBLAS). */
#define BERT_GEMM_ATTN_MIN_LEN 64

static void task_attention(void *ctx, size_t i, int tid) {
    fwd *f = ctx;
    const ragd_bert_config *c = &f->m->cfg;
    const int H = c->hidden, nh = c->heads, D = H / nh;
    const int s = (int)i / nh, h = (int)i % nh;
    const int off = f->offs[s], L = f->lens[s];
    float *scratch = f->att + (size_t)tid * f->att_stride;
    const float scale = 1.0f / sqrtf((float)D);
    if (f->qkvb) {
        /* bf16 mode: Q, K, V come in bf16 (any length); the output goes to this thread's
         * buffer and only its bf16 copy (the o-projection's input) to memory */
        float *obuf = scratch + f->att_need;
        if (f->cls_only) {
            const uint16_t *k = f->qkvb + (size_t)off * 2 * H + h * D;
            ragd_attention_head_bf16(f->qcb + (size_t)s * H + h * D, (size_t)H, 1, k, k + H,
                                     (size_t)2 * H, L, obuf, (size_t)D, D, scale, scratch);
            ragd_bf16_store(f->cb + (size_t)s * H + h * D, obuf, (size_t)D);
        } else {
            const uint16_t *q = f->qkvb + (size_t)off * 3 * H + h * D;
            ragd_attention_head_bf16(q, (size_t)3 * H, L, q + H, q + 2 * H, (size_t)3 * H, L, obuf,
                                     (size_t)D, D, scale, scratch);
            for (int j = 0; j < L; j++)
                ragd_bf16_store(f->cb + (size_t)(off + j) * H + h * D, obuf + (size_t)j * D,
                                (size_t)D);
        }
        return;
    }
    if (!f->cls_only && L >= BERT_GEMM_ATTN_MIN_LEN) return; /* done with GEMMs */
    const float *k = f->qkv + (size_t)off * 3 * H + H + h * D;
    const float *v = k + H;
    if (f->cls_only) {
        ragd_attention_head(f->qc + (size_t)s * H + h * D, (size_t)H, 1, k, v, (size_t)3 * H, L,
                            NULL, NULL, NULL, f->ctxc + (size_t)s * H + h * D, (size_t)H, D, scale,
                            scratch);
    } else {
        ragd_attention_head(f->qkv + (size_t)off * 3 * H + h * D, (size_t)3 * H, L, k, v,
                            (size_t)3 * H, L, NULL, NULL, NULL, f->ctx + (size_t)off * H + h * D,
                            (size_t)H, D, scale, scratch);
    }
}

/* Softmax of score rows (heads x L rows of L) of sequence cur_seq. */
static void task_softmax(void *ctx, size_t i, int tid) {
    fwd *f = ctx;
    const int L = f->lens[f->cur_seq];
    int r0 = (int)i * f->rows_per_task, r1 = r0 + f->rows_per_task;
    if (r1 > f->n_rows) r1 = f->n_rows;
    for (int r = r0; r < r1; r++) ragd_softmax_row(f->scores + (size_t)r * L, L);
}

/* Add the query/key/value biases to the projections (before attention). */
static void task_qkv_bias(void *ctx, size_t i, int tid) {
    fwd *f = ctx;
    const int H = f->m->cfg.hidden;
    int r0 = (int)i * f->rows_per_task, r1 = r0 + f->rows_per_task;
    if (r1 > f->n_rows) r1 = f->n_rows;
    for (int r = r0; r < r1; r++) {
        if (f->cls_only) {
            ragd_add_bias(f->qkv + (size_t)r * 3 * H + H, f->layer->bqkv + H, (size_t)2 * H);
            if (r < f->n_seq) ragd_add_bias(f->qc + (size_t)r * H, f->layer->bqkv, (size_t)H);
        } else {
            ragd_add_bias(f->qkv + (size_t)r * 3 * H, f->layer->bqkv, (size_t)3 * H);
        }
    }
}

static void task_ln1(void *ctx, size_t i, int tid) {
    fwd *f = ctx;
    const int H = f->m->cfg.hidden;
    int r0 = (int)i * f->rows_per_task, r1 = r0 + f->rows_per_task;
    if (r1 > f->n_rows) r1 = f->n_rows;
    for (int r = r0; r < r1; r++) {
        ragd_add_layernorm_bf16(f->rows + (size_t)r * H, f->add ? f->add + (size_t)r * H : NULL,
                                f->layer->bo, f->layer->ln1_g, f->layer->ln1_b, (size_t)H,
                                f->m->cfg.ln_eps, f->xb ? f->xb + (size_t)r * H : NULL);
    }
}

static void task_ln2(void *ctx, size_t i, int tid) {
    fwd *f = ctx;
    const int H = f->m->cfg.hidden;
    int r0 = (int)i * f->rows_per_task, r1 = r0 + f->rows_per_task;
    if (r1 > f->n_rows) r1 = f->n_rows;
    for (int r = r0; r < r1; r++) {
        ragd_add_layernorm_bf16(f->rows + (size_t)r * H, f->add ? f->add + (size_t)r * H : NULL,
                                f->layer->b2, f->layer->ln2_g, f->layer->ln2_b, (size_t)H,
                                f->m->cfg.ln_eps, f->xb ? f->xb + (size_t)r * H : NULL);
    }
}

static void task_gelu(void *ctx, size_t i, int tid) {
    fwd *f = ctx;
    const int F = f->m->cfg.ffn;
    int r0 = (int)i * f->rows_per_task, r1 = r0 + f->rows_per_task;
    if (r1 > f->n_rows) r1 = f->n_rows;
    for (int r = r0; r < r1; r++) ragd_bias_gelu(f->ffn + (size_t)r * F, f->layer->b1, (size_t)F);
}

static size_t n_tasks(fwd *f, int rows) {
    int per = rows / (f->n_threads * 4);
    if (per < 1) per = 1;
    f->rows_per_task = per;
    f->n_rows = rows;
    return (size_t)((rows + per - 1) / per);
}

/* bf16 mode: residual + bias + LayerNorm on rows the AMX GEMM just finished (its epilogue). */
static void rows_ln1(void *ctx, int r0, int n) {
    fwd *f = ctx;
    const int H = f->m->cfg.hidden;
    for (int r = r0; r < r0 + n; r++) {
        ragd_add_layernorm_bf16(f->rows + (size_t)r * H, f->add ? f->add + (size_t)r * H : NULL,
                                f->layer->bo, f->layer->ln1_g, f->layer->ln1_b, (size_t)H,
                                f->m->cfg.ln_eps, f->xb ? f->xb + (size_t)r * H : NULL);
    }
}

static void rows_ln2(void *ctx, int r0, int n) {
    fwd *f = ctx;
    const int H = f->m->cfg.hidden;
    for (int r = r0; r < r0 + n; r++) {
        ragd_add_layernorm_bf16(f->rows + (size_t)r * H, f->add ? f->add + (size_t)r * H : NULL,
                                f->layer->b2, f->layer->ln2_g, f->layer->ln2_b, (size_t)H,
                                f->m->cfg.ln_eps, f->xb ? f->xb + (size_t)r * H : NULL);
    }
}

static void run_layer(fwd *f, ragd_pool *pool, const bert_layer *ly, bool cls_only) {
    const ragd_bert_config *c = &f->m->cfg;
    const int H = c->hidden, F = c->ffn, T = f->T, n = f->n_seq;
    const bool bf = f->m->precision == RAGD_BERT_BF16;
    f->layer = ly;
    f->cls_only = cls_only;
    /* bf16: the biases ride in the GEMM epilogues, inputs come as bf16 copies (f->xb) */
    if (!cls_only) {
        gemm(f, T, 3 * H, H, f->x, H, f->xb, ly->wqkv, &ly->aqkv, bf ? ly->bqkv : NULL, 0, f->qkv,
             3 * H, f->qkvb, NULL);
    } else {
        /* only [CLS] needs a query and everything after attention */
        const ragd_amx_weight q_rows = ragd_amx_rows(&ly->aqkv, 0, H);
        const ragd_amx_weight kv_rows = ragd_amx_rows(&ly->aqkv, H, 2 * H);
        for (int s = 0; s < n; s++) {
            memcpy(f->xc + (size_t)s * H, f->x + (size_t)f->offs[s] * H, (size_t)H * sizeof(float));
            if (bf) /* the Q GEMM's bf16 input: the same rows of xb, gathered */
                memcpy(f->cb + (size_t)s * H, f->xb + (size_t)f->offs[s] * H,
                       (size_t)H * sizeof(uint16_t));
        }
        gemm(f, n, H, H, f->xc, H, f->cb, ly->wqkv, &q_rows, bf ? ly->bqkv : NULL, 0, f->qc, H,
             f->qcb, NULL);
        gemm(f, T, 2 * H, H, f->x, H, f->xb, ly->wqkv + (size_t)H * H, &kv_rows,
             bf ? ly->bqkv + H : NULL, 0, f->qkv + H, 3 * H, f->qkvb, NULL);
    }
    if (!bf) ragd_pool_run(pool, n_tasks(f, T), task_qkv_bias, f);
    const uint64_t ta = ragd_now_ns();
    ragd_pool_run(pool, (size_t)n * c->heads, task_attention, f);
    if (!cls_only && !bf) {
        /* long sequences: S = Q K^T / sqrt(D) and O = softmax(S) V per head through sgemm */
        const int D = H / c->heads;
        const float scale = 1.0f / sqrtf((float)D);
        for (int s = 0; s < n; s++) {
            const int L = f->lens[s];
            if (L < BERT_GEMM_ATTN_MIN_LEN) continue;
            const float *q = f->qkv + (size_t)f->offs[s] * 3 * H;
            uint64_t t0 = ragd_now_ns();
            for (int h = 0; h < c->heads; h++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, D, scale, q + h * D,
                            3 * H, q + H + h * D, 3 * H, 0.0f, f->scores + (size_t)h * L * L, L);
            f->m->stats.gemm_ns += ragd_now_ns() - t0;
            f->cur_seq = s;
            ragd_pool_run(pool, n_tasks(f, c->heads * L), task_softmax, f);
            t0 = ragd_now_ns();
            for (int h = 0; h < c->heads; h++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, D, L, 1.0f,
                            f->scores + (size_t)h * L * L, L, q + 2 * H + h * D, 3 * H, 0.0f,
                            f->ctx + (size_t)f->offs[s] * H + h * D, H);
            f->m->stats.gemm_ns += ragd_now_ns() - t0;
            f->m->stats.gemm_flops += 4.0 * c->heads * (double)L * L * D;
        }
    }
    f->m->stats.attn_ns += ragd_now_ns() - ta;
    const int rows = cls_only ? n : T;
    f->rows = cls_only ? f->xc : f->x;
    f->add = f->tmp;
    const float *ctx = cls_only ? f->ctxc : f->ctx;
    if (bf) {
        /* residual + LayerNorm run in the epilogues of the output and FFN-down GEMMs */
        /* residual + LayerNorm: the output and FFN-down GEMMs accumulate onto the hidden
         * states (their tiles start from them) and LayerNorm runs in their epilogues */
        f->add = NULL;
        gemm(f, rows, H, H, ctx, H, f->cb, ly->wo, &ly->ao, NULL, RAGD_AMX_ACC, f->rows, H, NULL,
             rows_ln1);
        gemm(f, rows, F, H, NULL, 0, f->xb, ly->w1, &ly->a1, ly->b1, RAGD_AMX_GELU, NULL, 0, f->fb,
             NULL);
        gemm(f, rows, H, F, NULL, 0, f->fb, ly->w2, &ly->a2, NULL, RAGD_AMX_ACC, f->rows, H, NULL,
             rows_ln2);
    } else {
        gemm(f, rows, H, H, ctx, H, NULL, ly->wo, &ly->ao, NULL, 0, f->tmp, H, NULL, NULL);
        ragd_pool_run(pool, n_tasks(f, rows), task_ln1, f);
        gemm(f, rows, F, H, f->rows, H, NULL, ly->w1, &ly->a1, NULL, 0, f->ffn, F, NULL, NULL);
        ragd_pool_run(pool, n_tasks(f, rows), task_gelu, f);
        gemm(f, rows, H, F, f->ffn, F, NULL, ly->w2, &ly->a2, NULL, 0, f->tmp, H, NULL, NULL);
        ragd_pool_run(pool, n_tasks(f, rows), task_ln2, f);
    }
}

int ragd_bert_forward(ragd_bert *m, ragd_pool *pool, const int32_t *ids, const int32_t *lens,
                      int n_seq, ragd_bert_pooling pooling, int normalize, float *out,
                      ragd_err *err) {
    const ragd_bert_config *c = &m->cfg;
    if (n_seq <= 0) return ragd_err_set(err, RAGD_EINVAL, "no sequences");
    size_t T = 0;
    int max_len = 0;
    for (int s = 0; s < n_seq; s++) {
        if (lens[s] < 1 || lens[s] > c->max_pos)
            return ragd_err_set(err, RAGD_EINVAL, "sequence %d has %d tokens (1..%d allowed)", s,
                                (int)lens[s], c->max_pos);
        T += (size_t)lens[s];
        if (lens[s] > max_len) max_len = lens[s];
    }
    if (T > (size_t)1 << 24) return ragd_err_set(err, RAGD_EINVAL, "batch too large");
    for (size_t t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= c->vocab)
            return ragd_err_set(err, RAGD_EINVAL, "token id %d out of range [0, %d)", (int)ids[t],
                                c->vocab);
    if (pooling == RAGD_BERT_POOL_MODEL) pooling = m->pooling;
    bool norm = normalize < 0 ? m->normalize : normalize > 0;
    const size_t H = (size_t)c->hidden, F = (size_t)c->ffn, D = H / (size_t)c->heads;
    const int n_threads = pool ? ragd_pool_size(pool) : 1;

    pthread_mutex_lock(&m->mu);
    uint64_t t0 = ragd_now_ns();
#ifdef RAGD_HAVE_CUDA
    if (m->gpu) {
        int rc = ragd_bert_cuda_forward(m->gpu, ids, lens, n_seq, (int)T,
                                        pooling == RAGD_BERT_POOL_MEAN, norm, out, err);
        m->stats.forward_ns += ragd_now_ns() - t0;
        m->stats.tokens += T;
        m->stats.sequences += (uint64_t)n_seq;
        m->stats.calls++;
        pthread_mutex_unlock(&m->mu);
        return rc;
    }
#endif
    /* one scratch block: x, qkv, ctx, tmp, ffn, xc, qc, ctxc, att, offs, tpos */
    const bool bf = m->precision == RAGD_BERT_BF16;
    const size_t att_need = ((bf ? ragd_attention_bf16_scratch_floats(max_len, (int)D)
                                 : ragd_attention_scratch_floats(max_len, (int)D)) +
                             15) /
                            16 * 16;
    const size_t att_stride =
        att_need + (m->precision == RAGD_BERT_BF16 ? (size_t)max_len * D + 16 : 0);
    size_t nf = T * H * 4 + T * 3 * H + T * F + 3 * (size_t)n_seq * H +
                (size_t)n_threads * att_stride +
                (size_t)c->heads * (size_t)max_len * (size_t)max_len + (size_t)n_seq + T + 64;
    const size_t amx_bytes =
        m->precision == RAGD_BERT_BF16 ? ragd_amx_scratch_bytes((int)T, c->ffn) : 0;
    const size_t Tp = (T + 31) / 32 * 32;
    const size_t bf_floats = m->precision == RAGD_BERT_BF16
                                 ? (2 * Tp * H + Tp * F + Tp * 3 * H + ((size_t)n_seq + 32) * H) *
                                           sizeof(uint16_t) / sizeof(float) +
                                       32
                                 : 0;
    nf += amx_bytes / sizeof(float) + 32 + bf_floats;
    if (nf > m->buf_cap) {
        free(m->buf);
        m->buf = aligned_alloc(64, (nf * sizeof(float) + 63) / 64 * 64);
        m->buf_cap = m->buf ? nf : 0;
        if (!m->buf) {
            pthread_mutex_unlock(&m->mu);
            return ragd_err_set(err, RAGD_ENOMEM, "out of memory (%zu tokens)", T);
        }
    }
    fwd f = {.m = m,
             .ids = ids,
             .lens = lens,
             .n_seq = n_seq,
             .T = (int)T,
             .max_len = max_len,
             .n_threads = n_threads,
             .pool = pool};
    float *p = m->buf;
    f.x = p, p += T * H;
    f.qkv = p, p += T * 3 * H;
    f.ctx = p, p += T * H;
    f.tmp = p, p += T * H;
    f.ffn = p, p += T * F;
    f.xc = p, p += (size_t)n_seq * H;
    f.qc = p, p += (size_t)n_seq * H;
    f.ctxc = p, p += (size_t)n_seq * H;
    f.att = p, p += (size_t)n_threads * att_stride;
    f.att_stride = att_stride;
    f.att_need = att_need;
    f.scores = p, p += (size_t)c->heads * (size_t)max_len * (size_t)max_len;
    f.amx_scratch = p, p += amx_bytes / sizeof(float) + 16;
    if (bf_floats) {
        f.xb = (uint16_t *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
        f.fb = f.xb + Tp * H;
        f.cb = f.fb + Tp * F;
        f.qkvb = f.cb + Tp * H;
        f.qcb = f.qkvb + Tp * 3 * H;
        p += bf_floats;
    }
    f.offs = (int *)p, p += n_seq;
    f.tpos = (int *)p;
    int off = 0;
    for (int s = 0; s < n_seq; s++) {
        f.offs[s] = off;
        for (int j = 0; j < lens[s]; j++) f.tpos[off + j] = j;
        off += lens[s];
    }
    ragd_pool_run(pool, n_tasks(&f, (int)T), task_embed, &f);
    for (int l = 0; l < c->layers; l++)
        run_layer(&f, pool, &m->layers[l], l == c->layers - 1 && pooling == RAGD_BERT_POOL_CLS);
    for (int s = 0; s < n_seq; s++) {
        float *o = out + (size_t)s * H;
        if (pooling == RAGD_BERT_POOL_CLS) {
            const float *src = c->layers > 0 ? f.xc + (size_t)s * H : f.x + (size_t)f.offs[s] * H;
            memcpy(o, src, H * sizeof(float));
        } else {
            for (size_t d = 0; d < H; d++) o[d] = 0.0f;
            for (int j = 0; j < lens[s]; j++) {
                const float *r = f.x + (size_t)(f.offs[s] + j) * H;
                for (size_t d = 0; d < H; d++) o[d] += r[d];
            }
            for (size_t d = 0; d < H; d++) o[d] /= (float)lens[s];
        }
        if (norm) {
            double ss = 0;
            for (size_t d = 0; d < H; d++) ss += (double)o[d] * o[d];
            float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
            for (size_t d = 0; d < H; d++) o[d] *= inv;
        }
    }
    m->stats.forward_ns += ragd_now_ns() - t0;
    m->stats.tokens += T;
    m->stats.sequences += (uint64_t)n_seq;
    m->stats.calls++;
    pthread_mutex_unlock(&m->mu);
    return RAGD_OK;
}
