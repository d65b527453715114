/* bert_cuda.h - the BERT encoder (model/bert.c) on an NVIDIA GPU: weights uploaded once as
 * bf16 (GEMMs through cuBLAS, bf16 inputs, f32 accumulation), f32 residual stream and
 * LayerNorm, packed variable-length sequences (no padding), one warp per (token, head) with
 * an online softmax for attention, CLS or mean pooling + L2 normalisation on the device.
 * Called only by model/bert.c (ragd_bert_set_device). Thread-safety: one forward at a time
 * per object (bert.c serialises them).
 */
#ifndef RAGD_BACKEND_CUDA_BERT_CUDA_H
#define RAGD_BACKEND_CUDA_BERT_CUDA_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "util/err.h"

typedef struct ragd_bert_cuda ragd_bert_cuda;

typedef struct ragd_bert_cuda_layer {
    const float *wqkv, *bqkv, *wo, *bo, *ln1_g, *ln1_b, *w1, *b1, *w2, *b2, *ln2_g, *ln2_b;
} ragd_bert_cuda_layer;

/* Host f32 weights (copied; the caller keeps ownership). */
typedef struct ragd_bert_cuda_weights {
    int hidden, layers, heads, ffn, vocab, max_pos;
    float ln_eps;
    const float *word, *pos, *type, *emb_g, *emb_b;
    const ragd_bert_cuda_layer *layer; /* layers entries */
} ragd_bert_cuda_weights;

int ragd_bert_cuda_create(const ragd_bert_cuda_weights *w, ragd_bert_cuda **out, ragd_err *err);
void ragd_bert_cuda_destroy(ragd_bert_cuda *g);
/* ids/lens as ragd_bert_forward (already validated); out: n_seq x hidden floats (host). */
int ragd_bert_cuda_forward(ragd_bert_cuda *g, const int32_t *ids, const int32_t *lens, int n_seq,
                           int total_tokens, int mean_pool, int normalize, float *out,
                           ragd_err *err);

#ifdef __cplusplus
}
#endif

#endif
