/* llm_weights.h - bind the tensors of a Qwen2 / Llama checkpoint (Hugging Face names) to a
 * per-layer table, checking every shape against the config and the dtype (F32/F16/BF16).
 * Used by the CPU and CUDA backends; the tensors point into the safetensors mappings.
 * Errors name the tensor and the file. Thread-safety: immutable after binding.
 */
#ifndef RAGD_MODEL_LLM_WEIGHTS_H
#define RAGD_MODEL_LLM_WEIGHTS_H

#include "model/llm_config.h"
#include "model/safetensors.h"
#include "util/err.h"

typedef struct ragd_llm_layer_w {
    const ragd_tensor *attn_norm, *q, *k, *v, *q_bias, *k_bias, *v_bias, *o;
    const ragd_tensor *mlp_norm, *gate, *up, *down;
} ragd_llm_layer_w;

typedef struct ragd_llm_weights {
    const ragd_tensor *embed;   /* [vocab, hidden] */
    const ragd_tensor *norm;    /* [hidden] */
    const ragd_tensor *lm_head; /* [vocab, hidden]; == embed when tied */
    ragd_llm_layer_w *layers;   /* n_layers entries */
    int n_layers;
} ragd_llm_weights;

int ragd_llm_weights_bind(const ragd_st *st, const ragd_llm_config *cfg, ragd_llm_weights *w,
                          ragd_err *err);
void ragd_llm_weights_free(ragd_llm_weights *w);

#endif
