/* cuda_backend.c - the CUDA backend's host glue: reads config.json and the safetensors files,
 * hands the weights to the device layer (cuda_model.cu, interface cuda_impl.h) and exposes it
 * through the engine/backend.h ops table. Without nvcc at build time the two entry points
 * report that the backend is not built.
 */
#include "backend/cuda/cuda_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

#ifndef RAGD_HAVE_CUDA

int ragd_cuda_available(void) {
    return 0;
}

int ragd_cuda_backend_create(const char *model_dir, const ragd_cuda_opts *opts, ragd_backend **out,
                             ragd_err *err) {
    (void)model_dir;
    (void)opts;
    *out = NULL;
    return ragd_err_set(err, RAGD_EUNSUPPORTED,
                        "this ragd was built without CUDA (nvcc not found at build time)");
}

#else

#include "backend/cuda/cuda_impl.h"
#include "model/llm_config.h"
#include "model/safetensors.h"
#include "util/log.h"

int ragd_cuda_available(void) {
    return rc_device_count() > 0;
}

/* ---- weights ---- */
static int take(const ragd_st *st, const char *name, int ndim, int64_t d0, int64_t d1,
                rc_host_tensor *t, ragd_err *err) {
    const int64_t shape[2] = {d0, d1};
    const ragd_tensor *x;
    if (ragd_st_expect(st, name, ndim, shape, &x, err)) return err ? err->code : RAGD_EFORMAT;
    if (x->dtype != RAGD_DT_BF16 && x->dtype != RAGD_DT_F16 && x->dtype != RAGD_DT_F32)
        return ragd_err_set(err, RAGD_EUNSUPPORTED, "tensor %s in %s: dtype %s not supported", name,
                            x->file, ragd_dtype_name(x->dtype));
    t->data = x->data;
    t->dtype = (int)x->dtype;
    t->numel = x->numel;
    return RAGD_OK;
}

typedef struct cuda_be {
    rc_model *m;
} cuda_be;

static int wrap(int rc, const char *msg, ragd_err *err) {
    if (rc == RAGD_OK) return RAGD_OK;
    return ragd_err_set(err, rc, "cuda: %s", msg);
}

static int be_kv_init(ragd_backend *be, int block_size, int n_blocks, ragd_err *err) {
    char msg[RC_MSG] = "";
    return wrap(rc_kv_init(((cuda_be *)be->impl)->m, block_size, n_blocks, msg), msg, err);
}
static size_t be_kv_block_bytes(const ragd_backend *be, int block_size) {
    return rc_kv_block_bytes(((const cuda_be *)be->impl)->m, block_size);
}
static int be_forward(ragd_backend *be, const ragd_batch *batch, float *logits, ragd_err *err) {
    char msg[RC_MSG] = "";
    return wrap(rc_forward(((cuda_be *)be->impl)->m, batch, logits, NULL, msg), msg, err);
}
static int be_forward_sample(ragd_backend *be, const ragd_batch *batch, ragd_sample_out *out,
                             ragd_err *err) {
    char msg[RC_MSG] = "";
    return wrap(rc_forward(((cuda_be *)be->impl)->m, batch, NULL, out, msg), msg, err);
}
static int be_copy_blocks(ragd_backend *be, const int32_t *src, const int32_t *dst, int n,
                          ragd_err *err) {
    char msg[RC_MSG] = "";
    return wrap(rc_copy_blocks(((cuda_be *)be->impl)->m, src, dst, n, msg), msg, err);
}
static size_t be_kv_budget(const ragd_backend *be) {
    return rc_kv_budget(((const cuda_be *)be->impl)->m);
}
static void be_destroy(ragd_backend *be) {
    if (!be) return;
    cuda_be *c = be->impl;
    if (c) rc_destroy(c->m);
    free(c);
    free(be);
}

static const ragd_backend_ops k_cuda_ops = {
    .kv_init = be_kv_init,
    .kv_block_bytes = be_kv_block_bytes,
    .forward = be_forward,
    .forward_sample = be_forward_sample,
    .copy_blocks = be_copy_blocks,
    .kv_budget_bytes = be_kv_budget,
    .destroy = be_destroy,
};

int ragd_cuda_backend_create(const char *model_dir, const ragd_cuda_opts *opts, ragd_backend **out,
                             ragd_err *err) {
    *out = NULL;
    ragd_cuda_opts o = {0, 0.90f, 256, 4096};
    if (opts) o = *opts;
    if (o.gpu_memory_utilization <= 0.f) o.gpu_memory_utilization = 0.90f;
    if (rc_device_count() <= 0)
        return ragd_err_set(err, RAGD_EDEVICE, "cuda: no CUDA device found");
    ragd_llm_config cfg;
    int rc = ragd_llm_config_load(model_dir, &cfg, err);
    if (rc) return rc;
    ragd_st *st = NULL;
    if ((rc = ragd_st_open_dir(model_dir, &st, err))) return rc;
    rc_layer_src *layers = calloc((size_t)cfg.n_layers, sizeof(*layers));
    if (!layers) {
        ragd_st_close(st);
        return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    }
    rc_model_src src;
    memset(&src, 0, sizeof src);
    src.cfg = cfg;
    src.layers = layers;
    const int64_t H = cfg.hidden, V = cfg.vocab_size, F = cfg.ffn, hd = cfg.head_dim;
    const int64_t QD = cfg.n_heads * hd, KD = cfg.n_kv_heads * hd;
    rc = take(st, "model.embed_tokens.weight", 2, V, H, &src.embed, err);
    if (!rc) rc = take(st, "model.norm.weight", 1, H, 0, &src.final_norm, err);
    if (!rc && ragd_st_find(st, "lm_head.weight"))
        rc = take(st, "lm_head.weight", 2, V, H, &src.lm_head, err);
    else if (!rc && !cfg.tie_embeddings)
        rc = ragd_err_set(err, RAGD_ENOTFOUND,
                          "lm_head.weight missing and tie_word_embeddings is false");
    char nm[256];
#define T1(field, suffix, d0)                                                                      \
    if (!rc) {                                                                                     \
        snprintf(nm, sizeof nm, "model.layers.%d.%s", l, suffix);                                  \
        rc = take(st, nm, 1, d0, 0, &L->field, err);                                               \
    }
#define T2(field, suffix, d0, d1)                                                                  \
    if (!rc) {                                                                                     \
        snprintf(nm, sizeof nm, "model.layers.%d.%s", l, suffix);                                  \
        rc = take(st, nm, 2, d0, d1, &L->field, err);                                              \
    }
    for (int l = 0; l < cfg.n_layers && !rc; ++l) {
        rc_layer_src *L = &layers[l];
        T1(ln1, "input_layernorm.weight", H)
        T2(wq, "self_attn.q_proj.weight", QD, H)
        T2(wk, "self_attn.k_proj.weight", KD, H)
        T2(wv, "self_attn.v_proj.weight", KD, H)
        if (cfg.qkv_bias) {
            T1(bq, "self_attn.q_proj.bias", QD)
            T1(bk, "self_attn.k_proj.bias", KD)
            T1(bv, "self_attn.v_proj.bias", KD)
        }
        T2(wo, "self_attn.o_proj.weight", H, QD)
        T1(ln2, "post_attention_layernorm.weight", H)
        T2(wg, "mlp.gate_proj.weight", F, H)
        T2(wu, "mlp.up_proj.weight", F, H)
        T2(wd, "mlp.down_proj.weight", H, F)
    }
#undef T1
#undef T2
    rc_model *m = NULL;
    if (!rc) {
        char msg[RC_MSG] = "";
        rc = wrap(rc_create(&src, o.device, o.gpu_memory_utilization, o.max_num_seqs,
                            o.max_num_batched_tokens, &m, msg),
                  msg, err);
    }
    free(layers);
    ragd_st_close(st); /* the weights now live on the GPU */
    if (rc) return rc;
    ragd_backend *be = calloc(1, sizeof(*be));
    cuda_be *cb = calloc(1, sizeof(*cb));
    if (!be || !cb) {
        free(be);
        free(cb);
        rc_destroy(m);
        return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    }
    cb->m = m;
    be->ops = &k_cuda_ops;
    be->name = "cuda";
    be->cfg = cfg;
    be->impl = cb;
    *out = be;
    char dev[256] = "";
    rc_device_name(o.device, dev, sizeof dev);
    LOG_INFO("cuda backend: %s on %s, %d layers, KV budget %.2f GiB", cfg.model_name, dev,
             cfg.n_layers, (double)rc_kv_budget(m) / (1024.0 * 1024.0 * 1024.0));
    return RAGD_OK;
}

#endif
