#include "model/llm_config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/str.h"

static int get_int(const cJSON *root, const char *key, int def, int *out, const char *file,
                   ragd_err *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it || cJSON_IsNull(it)) {
        if (def < -1) return ragd_err_set(err, RAGD_EFORMAT, "%s: missing \"%s\"", file, key);
        *out = def;
        return RAGD_OK;
    }
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) ||
        fabs(it->valuedouble) > 1e9)
        return ragd_err_set(err, RAGD_EFORMAT, "%s: \"%s\" must be an integer", file, key);
    *out = (int)it->valuedouble;
    return RAGD_OK;
}

static int get_num(const cJSON *root, const char *key, double def, double *out, const char *file,
                   ragd_err *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it || cJSON_IsNull(it)) {
        *out = def;
        return RAGD_OK;
    }
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble))
        return ragd_err_set(err, RAGD_EFORMAT, "%s: \"%s\" must be a number", file, key);
    *out = it->valuedouble;
    return RAGD_OK;
}

/* eos_token_id: an int or a list of ints; appended to cfg->eos_ids without duplicates. */
static void add_eos(ragd_llm_config *cfg, const cJSON *it) {
    if (!it) return;
    if (cJSON_IsNumber(it)) {
        int id = (int)it->valuedouble;
        for (int i = 0; i < cfg->n_eos; i++)
            if (cfg->eos_ids[i] == id) return;
        if (cfg->n_eos < RAGD_MAX_EOS && id >= 0) cfg->eos_ids[cfg->n_eos++] = id;
    } else if (cJSON_IsArray(it)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, it) add_eos(cfg, e);
    }
}

static int load_object(const char *path, cJSON **out, ragd_err *err) {
    char *text = NULL;
    size_t len = 0;
    int rc = ragd_read_file(path, &text, &len, err);
    if (rc) return rc;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return ragd_err_set(err, RAGD_EFORMAT, "%s: not a JSON object", path);
    }
    *out = root;
    return RAGD_OK;
}

static int parse_config(const char *path, ragd_llm_config *cfg, ragd_err *err) {
    cJSON *root = NULL;
    int rc = load_object(path, &root, err);
    if (rc) return rc;
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    const char *arch = cJSON_IsString(a0) ? a0->valuestring : NULL;
    if (!arch && cJSON_IsString(mt)) {
        if (!strcmp(mt->valuestring, "qwen2")) arch = "Qwen2ForCausalLM";
        if (!strcmp(mt->valuestring, "llama")) arch = "LlamaForCausalLM";
    }
    if (arch && !strcmp(arch, "Qwen2ForCausalLM")) {
        cfg->arch = RAGD_ARCH_QWEN2;
        cfg->qkv_bias = true;
    } else if (arch && !strcmp(arch, "LlamaForCausalLM")) {
        cfg->arch = RAGD_ARCH_LLAMA;
        cfg->qkv_bias = false;
    } else {
        rc = ragd_err_set(err, RAGD_EUNSUPPORTED,
                          "%s: unsupported architecture \"%s\" (supported: Qwen2ForCausalLM, "
                          "LlamaForCausalLM)",
                          path, arch ? arch : "(none)");
        goto out;
    }
    if ((rc = get_int(root, "vocab_size", -2, &cfg->vocab_size, path, err)) ||
        (rc = get_int(root, "hidden_size", -2, &cfg->hidden, path, err)) ||
        (rc = get_int(root, "num_hidden_layers", -2, &cfg->n_layers, path, err)) ||
        (rc = get_int(root, "num_attention_heads", -2, &cfg->n_heads, path, err)) ||
        (rc = get_int(root, "intermediate_size", -2, &cfg->ffn, path, err)) ||
        (rc = get_int(root, "num_key_value_heads", cfg->n_heads, &cfg->n_kv_heads, path, err)) ||
        (rc = get_int(root, "max_position_embeddings", 32768, &cfg->max_pos, path, err)) ||
        (rc = get_int(root, "bos_token_id", -1, &cfg->bos_id, path, err)))
        goto out;
    if (cfg->vocab_size <= 0 || cfg->hidden <= 0 || cfg->n_layers <= 0 || cfg->n_heads <= 0 ||
        cfg->ffn <= 0 || cfg->n_kv_heads <= 0 || cfg->max_pos <= 0) {
        rc = ragd_err_set(err, RAGD_EFORMAT, "%s: sizes must be positive", path);
        goto out;
    }
    if (cfg->n_heads % cfg->n_kv_heads) {
        rc = ragd_err_set(err, RAGD_EFORMAT,
                          "%s: num_attention_heads (%d) is not a multiple of num_key_value_heads "
                          "(%d)",
                          path, cfg->n_heads, cfg->n_kv_heads);
        goto out;
    }
    int def_hd = cfg->hidden / cfg->n_heads;
    if ((rc = get_int(root, "head_dim", def_hd, &cfg->head_dim, path, err))) goto out;
    if (cfg->head_dim <= 0 || cfg->head_dim % 2) {
        rc = ragd_err_set(err, RAGD_EFORMAT, "%s: head_dim %d must be positive and even", path,
                          cfg->head_dim);
        goto out;
    }
    double theta = 10000.0, eps = 1e-6;
    /* transformers >= 4.5x may nest rope_theta in rope_parameters */
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    if ((rc = get_num(root, "rope_theta", 10000.0, &theta, path, err))) goto out;
    if (cJSON_IsObject(rp) && (rc = get_num(rp, "rope_theta", theta, &theta, path, err))) goto out;
    if ((rc = get_num(root, "rms_norm_eps", 1e-6, &eps, path, err))) goto out;
    cfg->rope_theta = (float)theta;
    cfg->rms_eps = (float)eps;
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (!cJSON_IsObject(rs) && cJSON_IsObject(rp)) rs = rp;
    if (cJSON_IsObject(rs)) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
        if (!t) t = cJSON_GetObjectItemCaseSensitive(rs, "type");
        if (cJSON_IsString(t) && strcmp(t->valuestring, "default")) {
            rc = ragd_err_set(err, RAGD_EUNSUPPORTED, "%s: rope scaling \"%s\" is not supported",
                              path, t->valuestring);
            goto out;
        }
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (cJSON_IsString(act) && strcmp(act->valuestring, "silu")) {
        rc = ragd_err_set(err, RAGD_EUNSUPPORTED, "%s: hidden_act \"%s\" is not supported", path,
                          act->valuestring);
        goto out;
    }
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
    cfg->tie_embeddings = cJSON_IsBool(tie) ? cJSON_IsTrue(tie) : false;
    if (cfg->arch == RAGD_ARCH_LLAMA) {
        const cJSON *ab = cJSON_GetObjectItemCaseSensitive(root, "attention_bias");
        cfg->qkv_bias = cJSON_IsTrue(ab);
    }
    add_eos(cfg, cJSON_GetObjectItemCaseSensitive(root, "eos_token_id"));
out:
    cJSON_Delete(root);
    return rc;
}

static int parse_generation(const char *path, ragd_llm_config *cfg, ragd_err *err) {
    cJSON *root = NULL;
    int rc = load_object(path, &root, err);
    if (rc) return rc;
    double t = 1, p = 1, r = 1;
    int k = 0;
    if ((rc = get_num(root, "temperature", 1.0, &t, path, err)) ||
        (rc = get_num(root, "top_p", 1.0, &p, path, err)) ||
        (rc = get_num(root, "repetition_penalty", 1.0, &r, path, err)) ||
        (rc = get_int(root, "top_k", 0, &k, path, err)))
        goto out;
    cfg->gen_temperature = (float)t;
    cfg->gen_top_p = (float)p;
    cfg->gen_repetition_penalty = (float)r;
    cfg->gen_top_k = k;
    /* generation_config's eos list is what generate() stops on: it takes precedence */
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(root, "eos_token_id");
    if (eos) {
        cfg->n_eos = 0;
        add_eos(cfg, eos);
    }
out:
    cJSON_Delete(root);
    return rc;
}

int ragd_llm_config_load(const char *dir, ragd_llm_config *cfg, ragd_err *err) {
    memset(cfg, 0, sizeof *cfg);
    cfg->gen_temperature = 1.0f;
    cfg->gen_top_p = 1.0f;
    cfg->gen_repetition_penalty = 1.0f;
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (!ragd_file_exists(path))
        return ragd_err_set(err, RAGD_ENOTFOUND, "%s: no config.json (not a model directory?)",
                            dir);
    int rc = parse_config(path, cfg, err);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    if (ragd_file_exists(path) && (rc = parse_generation(path, cfg, err))) return rc;
    /* basename of the directory, without trailing slashes */
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && dir[b - 1] != '/') b--;
    size_t bl = n - b < sizeof cfg->model_name - 1 ? n - b : sizeof cfg->model_name - 1;
    memcpy(cfg->model_name, dir + b, bl);
    cfg->model_name[bl] = 0;
    return RAGD_OK;
}
