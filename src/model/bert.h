/* bert.h - BertModel (bge-small-zh-v1.5 and kin) on the CPU: weights from a Hugging Face
 * directory (config.json + safetensors, tensor names with or without the "bert." prefix;
 * f32 used in place from the mmap, bf16/f16 converted once at load), the pooling rule from
 * the sentence-transformers files, and a batched forward over packed variable-length
 * sequences (no padding: every sequence attends only to itself).
 *
 * Pooling rule: modules.json present -> its Pooling module's config.json picks CLS or mean
 * (pooling_mode_cls_token / pooling_mode_mean_tokens), and the output is L2-normalised iff a
 * sentence_transformers Normalize module is listed. No modules.json -> bge's convention:
 * CLS pooling, L2-normalised.
 *
 * Called by the embedding engine (src/embed). Thread-safety: a loaded model is immutable
 * except for its scratch buffers; ragd_bert_forward calls are serialised by an internal
 * mutex (the parallelism is inside one call: OpenBLAS GEMMs + the ragd_pool).
 */
#ifndef RAGD_MODEL_BERT_H
#define RAGD_MODEL_BERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/threadpool.h"

typedef struct ragd_bert_config {
    int hidden, layers, heads, ffn, vocab, max_pos, type_vocab;
    float ln_eps;
} ragd_bert_config;

typedef enum ragd_bert_pooling {
    RAGD_BERT_POOL_MODEL = 0, /* what the model directory asks for */
    RAGD_BERT_POOL_CLS,
    RAGD_BERT_POOL_MEAN,
} ragd_bert_pooling;

typedef enum ragd_bert_precision {
    RAGD_BERT_F32 = 0, /* float32 everywhere (matches the reference within 1e-5) */
    RAGD_BERT_BF16,    /* the four weight GEMMs of each layer in bf16 on AMX tiles (f32
                          accumulation; everything else f32): about 1e-3 off, much faster */
} ragd_bert_precision;

typedef struct ragd_bert ragd_bert;

/* Time and work of the forward passes so far (benchmarks report GEMM efficiency). */
typedef struct ragd_bert_stats {
    uint64_t forward_ns, gemm_ns;
    uint64_t attn_ns; /* the attention stage (f32: includes the long sequences' sgemms) */
    double gemm_flops;
    uint64_t tokens, sequences, calls;
} ragd_bert_stats;

int ragd_bert_load(const char *model_dir, ragd_bert **out, ragd_err *err);
void ragd_bert_destroy(ragd_bert *m);
const ragd_bert_config *ragd_bert_get_config(const ragd_bert *m);
ragd_bert_pooling ragd_bert_model_pooling(const ragd_bert *m); /* CLS or MEAN */
bool ragd_bert_model_normalize(const ragd_bert *m);

/* Switch the GEMM precision (bf16 packs the weights once; EUNSUPPORTED without AMX). Not
 * concurrent with ragd_bert_forward's callers' expectations: call before serving. */
int ragd_bert_set_precision(ragd_bert *m, ragd_bert_precision p, ragd_err *err);
ragd_bert_precision ragd_bert_get_precision(const ragd_bert *m);

/* Run the forward on "cpu" (default) or "cuda" (weights uploaded as bf16; EUNSUPPORTED when
 * the build has no CUDA, EDEVICE when no GPU is usable). Call before serving. */
int ragd_bert_set_device(ragd_bert *m, const char *device, ragd_err *err);
bool ragd_bert_on_gpu(const ragd_bert *m);

/* Embed n_seq packed sequences: ids holds them back to back, lens[i] tokens each
 * (1..max_pos, ids in [0, vocab)). out receives n_seq x hidden floats, pooled by `pooling`
 * and L2-normalised when normalize > 0 (normalize < 0: as the model asks). */
int ragd_bert_forward(ragd_bert *m, ragd_pool *pool, const int32_t *ids, const int32_t *lens,
                      int n_seq, ragd_bert_pooling pooling, int normalize, float *out,
                      ragd_err *err);

void ragd_bert_get_stats(ragd_bert *m, ragd_bert_stats *st);
void ragd_bert_reset_stats(ragd_bert *m);

#endif
