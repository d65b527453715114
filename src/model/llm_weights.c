#include "model/llm_weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int bind(const ragd_st *st, const char *name, int ndim, int64_t d0, int64_t d1,
                const ragd_tensor **out, ragd_err *err) {
    int64_t shape[2] = {d0, d1};
    int rc = ragd_st_expect(st, name, ndim, shape, out, err);
    if (rc) return rc;
    ragd_dtype dt = (*out)->dtype;
    if (dt != RAGD_DT_F32 && dt != RAGD_DT_F16 && dt != RAGD_DT_BF16)
        return ragd_err_set(err, RAGD_EUNSUPPORTED,
                            "%s: tensor %s has dtype %s (supported: F32, F16, BF16)", (*out)->file,
                            name, ragd_dtype_name(dt));
    return RAGD_OK;
}

int ragd_llm_weights_bind(const ragd_st *st, const ragd_llm_config *c, ragd_llm_weights *w,
                          ragd_err *err) {
    memset(w, 0, sizeof *w);
    w->layers = calloc((size_t)c->n_layers, sizeof *w->layers);
    if (!w->layers) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    w->n_layers = c->n_layers;
    int rc;
    int64_t H = c->hidden, V = c->vocab_size, F = c->ffn;
    int64_t QD = (int64_t)c->n_heads * c->head_dim, KD = (int64_t)c->n_kv_heads * c->head_dim;
    if ((rc = bind(st, "model.embed_tokens.weight", 2, V, H, &w->embed, err)) ||
        (rc = bind(st, "model.norm.weight", 1, H, 0, &w->norm, err)))
        goto fail;
    if (c->tie_embeddings && !ragd_st_find(st, "lm_head.weight")) {
        w->lm_head = w->embed;
    } else if ((rc = bind(st, "lm_head.weight", 2, V, H, &w->lm_head, err))) {
        goto fail;
    }
    char n[256];
    for (int l = 0; l < c->n_layers; l++) {
        ragd_llm_layer_w *L = &w->layers[l];
#define B(field, suffix, nd, a, b)                                                                 \
    snprintf(n, sizeof n, "model.layers.%d.%s", l, suffix);                                        \
    if ((rc = bind(st, n, nd, a, b, &L->field, err))) goto fail;
        B(attn_norm, "input_layernorm.weight", 1, H, 0)
        B(q, "self_attn.q_proj.weight", 2, QD, H)
        B(k, "self_attn.k_proj.weight", 2, KD, H)
        B(v, "self_attn.v_proj.weight", 2, KD, H)
        B(o, "self_attn.o_proj.weight", 2, H, QD)
        B(mlp_norm, "post_attention_layernorm.weight", 1, H, 0)
        B(gate, "mlp.gate_proj.weight", 2, F, H)
        B(up, "mlp.up_proj.weight", 2, F, H)
        B(down, "mlp.down_proj.weight", 2, H, F)
        if (c->qkv_bias) {
            B(q_bias, "self_attn.q_proj.bias", 1, QD, 0)
            B(k_bias, "self_attn.k_proj.bias", 1, KD, 0)
            B(v_bias, "self_attn.v_proj.bias", 1, KD, 0)
        }
#undef B
    }
    return RAGD_OK;
fail:
    ragd_llm_weights_free(w);
    return rc;
}

void ragd_llm_weights_free(ragd_llm_weights *w) {
    free(w->layers);
    memset(w, 0, sizeof *w);
}
