/* mock_backend.c - see mock_backend.h. */
#include "mock_backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct mock {
    int32_t *kv;
    int block_size, n_blocks;
    mock_stats st;
} mock;

static int kv_init(ragd_backend *be, int block_size, int n_blocks, ragd_err *err) {
    mock *m = be->impl;
    free(m->kv);
    m->kv = malloc(sizeof(int32_t) * (size_t)block_size * (size_t)n_blocks);
    if (!m->kv) return ragd_err_set(err, RAGD_ENOMEM, "mock kv");
    for (long i = 0; i < (long)block_size * n_blocks; i++) m->kv[i] = -1;
    m->block_size = block_size;
    m->n_blocks = n_blocks;
    return RAGD_OK;
}

static size_t kv_block_bytes(const ragd_backend *be, int block_size) {
    (void)be;
    return (size_t)block_size * 64;
}

static size_t kv_budget(const ragd_backend *be) {
    (void)be;
    return 0;
}

static int32_t *slot(mock *m, const ragd_batch_seq *s, int pos) {
    int b = pos / m->block_size;
    if (b >= s->n_blocks) return NULL;
    int32_t id = s->block_table[b];
    if (id < 0 || id >= m->n_blocks) return NULL;
    return &m->kv[(size_t)id * (size_t)m->block_size + (size_t)(pos % m->block_size)];
}

/* Distribution over the vocab for the position pos of seq s (after writes). */
static int row(ragd_backend *be, const ragd_batch_seq *s, int pos, float *out, ragd_err *err) {
    mock *m = be->impl;
    int V = be->cfg.vocab_size;
    uint64_t h = 1469598103934665603ull;
    for (int p = 0; p <= pos; p++) {
        int32_t *k = slot(m, s, p);
        if (!k || *k < 0) return ragd_err_set(err, RAGD_EINTERNAL, "mock: KV slot %d unset", p);
        h = (h ^ (uint64_t)(uint32_t)*k) * 1099511628211ull;
    }
    h ^= h >> 29;
    int target = (int)(h % (uint64_t)(V - 1));
    if ((h >> 40) % 23 == 0) target = V - 1; /* EOS now and then */
    for (int i = 0; i < V; i++) {
        int d = (i - target + V) % V;
        out[i] = 8.0f - 0.5f * (float)d - (float)((h >> (i % 48)) & 1) * 0.01f;
    }
    return RAGD_OK;
}

static int do_forward(ragd_backend *be, const ragd_batch *batch, float *logits,
                      ragd_sample_out *outs, ragd_err *err) {
    mock *m = be->impl;
    int V = be->cfg.vocab_size;
    m->st.steps++;
    if (batch->n_seqs > m->st.max_batch) m->st.max_batch = batch->n_seqs;
    int step_tokens = 0;
    size_t r = 0;
    int k = 0;
    float *tmp = malloc(sizeof(float) * (size_t)V);
    if (!tmp) return ragd_err_set(err, RAGD_ENOMEM, "mock");
    for (int i = 0; i < batch->n_seqs; i++) {
        const ragd_batch_seq *s = &batch->seqs[i];
        step_tokens += s->n_new;
        for (int j = 0; j < s->n_new; j++) {
            int32_t *k2 = slot(m, s, s->n_past + j);
            if (!k2) {
                free(tmp);
                return ragd_err_set(err, RAGD_EINTERNAL, "mock: no block for position %d",
                                    s->n_past + j);
            }
            *k2 = s->tokens[j];
        }
        /* every earlier position must be readable */
        for (int p = 0; p < s->n_past; p++) {
            int32_t *k2 = slot(m, s, p);
            if (!k2 || *k2 < 0) {
                free(tmp);
                return ragd_err_set(err, RAGD_EINTERNAL, "mock: KV position %d missing", p);
            }
        }
    }
    for (int i = 0; i < batch->n_seqs; i++) {
        const ragd_batch_seq *s = &batch->seqs[i];
        int first = s->want_all_logits ? 0 : s->n_new - 1;
        if (!s->want_all_logits && !s->want_logits) continue;
        for (int j = first; j < s->n_new; j++) {
            float *dst = logits ? logits + r * (size_t)V : tmp;
            int rc = row(be, s, s->n_past + j, dst, err);
            if (rc) {
                free(tmp);
                return rc;
            }
            r++;
            if (outs && j == s->n_new - 1 && s->sampling) {
                int best = 0;
                for (int v = 1; v < V; v++)
                    if (dst[v] > dst[best]) best = v;
                float mx = dst[best];
                double sum = 0;
                for (int v = 0; v < V; v++) sum += exp((double)(dst[v] - mx));
                ragd_sample_out *o = &outs[k++];
                memset(o, 0, sizeof *o);
                o->token = best;
                o->logprob = (float)(-log(sum));
            }
        }
    }
    m->st.tokens_fed += step_tokens;
    if (step_tokens > m->st.max_tokens_in_step) m->st.max_tokens_in_step = step_tokens;
    free(tmp);
    return RAGD_OK;
}

static int forward(ragd_backend *be, const ragd_batch *batch, float *logits, ragd_err *err) {
    return do_forward(be, batch, logits, NULL, err);
}

static int forward_sample(ragd_backend *be, const ragd_batch *batch, ragd_sample_out *out,
                          ragd_err *err) {
    return do_forward(be, batch, NULL, out, err);
}

static int copy_blocks(ragd_backend *be, const int32_t *src, const int32_t *dst, int n,
                       ragd_err *err) {
    mock *m = be->impl;
    (void)err;
    for (int i = 0; i < n; i++)
        memcpy(m->kv + (size_t)dst[i] * (size_t)m->block_size,
               m->kv + (size_t)src[i] * (size_t)m->block_size,
               sizeof(int32_t) * (size_t)m->block_size);
    return RAGD_OK;
}

static void destroy(ragd_backend *be) {
    mock *m = be->impl;
    free(m->kv);
    free(m);
    free((void *)be->ops);
    free(be);
}

ragd_backend *mock_backend_create(int vocab, int max_pos, bool with_sample) {
    ragd_backend *be = calloc(1, sizeof *be);
    mock *m = calloc(1, sizeof *m);
    ragd_backend_ops *ops = calloc(1, sizeof *ops);
    ops->kv_init = kv_init;
    ops->kv_block_bytes = kv_block_bytes;
    ops->forward = forward;
    ops->forward_sample = with_sample ? forward_sample : NULL;
    ops->copy_blocks = copy_blocks;
    ops->kv_budget_bytes = kv_budget;
    ops->destroy = destroy;
    be->ops = ops;
    be->name = "mock";
    be->impl = m;
    be->cfg.vocab_size = vocab;
    be->cfg.max_pos = max_pos;
    be->cfg.eos_ids[0] = vocab - 1;
    be->cfg.n_eos = 1;
    be->cfg.bos_id = -1;
    snprintf(be->cfg.model_name, sizeof be->cfg.model_name, "mock");
    return be;
}

mock_stats *mock_backend_stats(ragd_backend *be) {
    return &((mock *)be->impl)->st;
}
