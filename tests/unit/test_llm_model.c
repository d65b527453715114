/* Model loading: config.json parsing (Qwen2 / Llama, head_dim, eos lists, generation
 * defaults) and bad input - unknown architecture, missing tensor, wrong shape, unsupported
 * dtype, corrupt safetensors, missing shard - each a clear error naming file and tensor. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_backend.h"
#include "model/llm_config.h"
#include "util/str.h"

static void write_text(const char *dir, const char *name, const char *text) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    ragd_err e = {0};
    if (ragd_write_file(path, text, strlen(text), &e)) fail_msg("%s", e.msg);
}

static const char *LLAMA_CFG =
    "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":16,\"intermediate_size\":8,"
    "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"num_key_value_heads\":1,"
    "\"vocab_size\":10,\"rms_norm_eps\":1e-5,\"rope_theta\":10000.0,\"eos_token_id\":[3,4],"
    "\"tie_word_embeddings\":false}";

typedef struct tdesc {
    const char *name;
    const char *dtype;
    int64_t d0, d1; /* d1 = 0: 1-D */
} tdesc;

/* Write a safetensors file with the given tensors (zero-filled data except small ramps). */
static void write_st(const char *dir, const char *file, const tdesc *t, int n) {
    ragd_buf h = {0};
    size_t off = 0;
    ragd_buf_putc(&h, '{');
    for (int i = 0; i < n; i++) {
        size_t es = !strcmp(t[i].dtype, "F32") || !strcmp(t[i].dtype, "I32") ? 4 : 2;
        size_t numel = (size_t)t[i].d0 * (size_t)(t[i].d1 ? t[i].d1 : 1);
        if (t[i].d1)
            ragd_buf_printf(&h, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld,%lld],", i ? "," : "",
                            t[i].name, t[i].dtype, (long long)t[i].d0, (long long)t[i].d1);
        else
            ragd_buf_printf(&h, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld],", i ? "," : "",
                            t[i].name, t[i].dtype, (long long)t[i].d0);
        ragd_buf_printf(&h, "\"data_offsets\":[%zu,%zu]}", off, off + numel * es);
        off += numel * es;
    }
    ragd_buf_putc(&h, '}');
    while (h.len % 8) ragd_buf_putc(&h, ' ');
    size_t total = 8 + h.len + off;
    unsigned char *buf = calloc(1, total);
    uint64_t hl = h.len;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(hl >> (8 * i));
    memcpy(buf + 8, h.data, h.len);
    /* norm weights 1.0f for F32 tensors would need per-tensor data; small values suffice */
    float *f = (float *)(buf + 8 + h.len);
    for (size_t i = 0; i < off / 4; i++) f[i] = (float)((i % 7) - 3) * 0.01f;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    ragd_err e = {0};
    if (ragd_write_file(path, buf, total, &e)) fail_msg("%s", e.msg);
    free(buf);
    ragd_buf_free(&h);
}

static tdesc LLAMA_TENSORS[] = {
    {"model.embed_tokens.weight", "F32", 10, 16},
    {"model.norm.weight", "F32", 16, 0},
    {"lm_head.weight", "F32", 10, 16},
    {"model.layers.0.input_layernorm.weight", "F32", 16, 0},
    {"model.layers.0.post_attention_layernorm.weight", "F32", 16, 0},
    {"model.layers.0.self_attn.q_proj.weight", "F32", 16, 16},
    {"model.layers.0.self_attn.k_proj.weight", "F32", 8, 16},
    {"model.layers.0.self_attn.v_proj.weight", "F32", 8, 16},
    {"model.layers.0.self_attn.o_proj.weight", "F32", 16, 16},
    {"model.layers.0.mlp.gate_proj.weight", "F32", 8, 16},
    {"model.layers.0.mlp.up_proj.weight", "F32", 8, 16},
    {"model.layers.0.mlp.down_proj.weight", "F32", 16, 8},
};
#define N_LT (int)(sizeof LLAMA_TENSORS / sizeof LLAMA_TENSORS[0])

static int try_load(const char *dir, ragd_err *e) {
    ragd_backend *be = NULL;
    int rc = ragd_cpu_backend_create(dir, NULL, &be, e);
    if (!rc) {
        /* a working model must also run */
        int32_t toks[3] = {1, 2, 9}, bt[1] = {0};
        float logits[10];
        assert_int_equal(be->ops->kv_init(be, 16, 1, e), 0);
        ragd_batch_seq s = {
            .tokens = toks, .n_new = 3, .block_table = bt, .n_blocks = 1, .want_logits = true};
        ragd_batch b = {1, &s};
        assert_int_equal(be->ops->forward(be, &b, logits, e), 0);
        be->ops->destroy(be);
    }
    return rc;
}

static void test_config(void **state) {
    (void)state;
    char *dir = tu_tmpdir();
    ragd_llm_config c;
    ragd_err e = {0};
    assert_int_equal(ragd_llm_config_load(dir, &c, &e), RAGD_ENOTFOUND);
    write_text(dir, "config.json", LLAMA_CFG);
    assert_int_equal(ragd_llm_config_load(dir, &c, &e), 0);
    assert_int_equal(c.arch, RAGD_ARCH_LLAMA);
    assert_int_equal(c.head_dim, 8);
    assert_int_equal(c.n_eos, 2);
    assert_false(c.qkv_bias);
    assert_false(c.tie_embeddings);
    write_text(dir, "generation_config.json",
               "{\"eos_token_id\":[5,6,7],\"temperature\":0.7,\"top_k\":20,\"top_p\":0.8,"
               "\"repetition_penalty\":1.1}");
    assert_int_equal(ragd_llm_config_load(dir, &c, &e), 0);
    assert_int_equal(c.n_eos, 3);
    assert_int_equal(c.eos_ids[0], 5);
    assert_int_equal(c.gen_top_k, 20);
    assert_float_equal(c.gen_temperature, 0.7f, 1e-6);
    /* head_dim from config */
    write_text(dir, "config.json",
               "{\"architectures\":[\"Qwen2ForCausalLM\"],\"hidden_size\":16,\"intermediate_size\":"
               "8,\"num_hidden_layers\":1,\"num_attention_heads\":2,\"num_key_value_heads\":1,"
               "\"vocab_size\":10,\"head_dim\":4}");
    assert_int_equal(ragd_llm_config_load(dir, &c, &e), 0);
    assert_int_equal(c.arch, RAGD_ARCH_QWEN2);
    assert_true(c.qkv_bias);
    assert_int_equal(c.head_dim, 4);
    write_text(dir, "config.json",
               "{\"architectures\":[\"MistralForCausalLM\"],\"hidden_size\":16}");
    assert_int_equal(ragd_llm_config_load(dir, &c, &e), RAGD_EUNSUPPORTED);
    assert_non_null(strstr(e.msg, "MistralForCausalLM"));
    write_text(dir, "config.json", "{\"architectures\":[\"LlamaForCausalLM\"]}");
    assert_int_equal(ragd_llm_config_load(dir, &c, &e), RAGD_EFORMAT);
    assert_non_null(strstr(e.msg, "vocab_size"));
    write_text(dir, "config.json", "not json");
    assert_int_equal(ragd_llm_config_load(dir, &c, &e), RAGD_EFORMAT);
    assert_non_null(strstr(e.msg, "config.json"));
    tu_rmtree(dir);
    free(dir);
}

static void test_weights(void **state) {
    (void)state;
    char *dir = tu_tmpdir();
    ragd_err e = {0};
    write_text(dir, "config.json", LLAMA_CFG);
    write_st(dir, "model.safetensors", LLAMA_TENSORS, N_LT);
    assert_int_equal(try_load(dir, &e), 0);
    /* missing tensor */
    write_st(dir, "model.safetensors", LLAMA_TENSORS, N_LT - 1);
    assert_int_equal(try_load(dir, &e), RAGD_ENOTFOUND);
    assert_non_null(strstr(e.msg, "model.layers.0.mlp.down_proj.weight"));
    assert_non_null(strstr(e.msg, "model.safetensors"));
    /* wrong shape */
    tdesc t[N_LT];
    memcpy(t, LLAMA_TENSORS, sizeof t);
    t[6].d0 = 16; /* k_proj as if there were 2 KV heads */
    write_st(dir, "model.safetensors", t, N_LT);
    assert_int_equal(try_load(dir, &e), RAGD_EFORMAT);
    assert_non_null(strstr(e.msg, "k_proj"));
    assert_non_null(strstr(e.msg, "model.safetensors"));
    /* unsupported dtype */
    memcpy(t, LLAMA_TENSORS, sizeof t);
    t[1].dtype = "I32";
    write_st(dir, "model.safetensors", t, N_LT);
    assert_int_equal(try_load(dir, &e), RAGD_EUNSUPPORTED);
    assert_non_null(strstr(e.msg, "model.norm.weight"));
    /* bf16 / f16 weights load and run */
    memcpy(t, LLAMA_TENSORS, sizeof t);
    for (int i = 0; i < N_LT; i++) t[i].dtype = i % 2 ? "BF16" : "F16";
    write_st(dir, "model.safetensors", t, N_LT);
    assert_int_equal(try_load(dir, &e), 0);
    /* corrupt header */
    write_text(dir, "model.safetensors", "\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":");
    assert_int_not_equal(try_load(dir, &e), 0);
    assert_non_null(strstr(e.msg, "model.safetensors"));
    /* header length past the end of the file */
    write_text(dir, "model.safetensors", "\xff\xff\x00\x00\x00\x00\x00\x00{}");
    assert_int_not_equal(try_load(dir, &e), 0);
    /* missing shard */
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    remove(path);
    write_text(dir, "model.safetensors.index.json",
               "{\"weight_map\":{\"model.norm.weight\":\"model-00001-of-00002.safetensors\","
               "\"lm_head.weight\":\"model-00002-of-00002.safetensors\"}}");
    write_st(dir, "model-00001-of-00002.safetensors", LLAMA_TENSORS, 6);
    assert_int_not_equal(try_load(dir, &e), 0);
    assert_non_null(strstr(e.msg, "model-00002-of-00002.safetensors"));
    /* both shards present: loads */
    write_text(dir, "model.safetensors.index.json",
               "{\"weight_map\":{\"model.norm.weight\":\"model-00001-of-00002.safetensors\","
               "\"model.layers.0.mlp.up_proj.weight\":\"model-00002-of-00002.safetensors\"}}");
    write_st(dir, "model-00002-of-00002.safetensors", LLAMA_TENSORS + 6, N_LT - 6);
    assert_int_equal(try_load(dir, &e), 0);
    tu_rmtree(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_weights),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
