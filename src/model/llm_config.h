/* llm_config.h - decoder-only language model configuration (config.json of Qwen2 / Llama)
 * and generation defaults (generation_config.json).
 * Pure data; thread-safe after loading.
 */
#ifndef RAGD_MODEL_LLM_CONFIG_H
#define RAGD_MODEL_LLM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

typedef enum { RAGD_ARCH_QWEN2 = 1, RAGD_ARCH_LLAMA = 2 } ragd_arch;

#define RAGD_MAX_EOS 8

typedef struct ragd_llm_config {
    ragd_arch arch;
    int vocab_size;
    int hidden;
    int n_layers;
    int n_heads;
    int n_kv_heads;
    int head_dim;
    int ffn;
    int max_pos;
    float rope_theta;
    float rms_eps;
    bool tie_embeddings;
    bool qkv_bias;
    int bos_id; /* -1 if none */
    int eos_ids[RAGD_MAX_EOS];
    int n_eos;
    /* generation_config.json defaults (0 / 1 when absent) */
    float gen_temperature, gen_top_p, gen_repetition_penalty;
    int gen_top_k;
    char model_name[256]; /* directory basename, reported by /v1/models */
} ragd_llm_config;

/* Read config.json (+ generation_config.json when present) from a model directory. */
int ragd_llm_config_load(const char *dir, ragd_llm_config *cfg, ragd_err *err);

#endif
