/* CPU backend: see cpu_backend.h. Layout of the KV cache: block-major, each block holds for
 * every layer K then V as [block_size][n_kv_heads * head_dim] f32, so one block is one
 * contiguous range (copy_blocks = memcpy). */
#include "backend/cpu/cpu_backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "backend/cpu/kernels.h"
#include "model/llm_weights.h"
#include "model/safetensors.h"

typedef struct cpu_lin {
    const void *w;
    ragd_dtype dt;
    int rows, cols;
    float *bias; /* f32 copy or NULL */
} cpu_lin;

typedef struct cpu_layer {
    float *attn_norm, *mlp_norm;
    cpu_lin q, k, v, o, gate, up, down;
} cpu_layer;

typedef struct cpu_impl {
    ragd_st *st;
    ragd_llm_weights w;
    ragd_pool *pool;
    int n_threads;
    cpu_layer *layers;
    float *final_norm;
    cpu_lin embed, lm_head;
    /* RoPE tables: rope_n positions x head_dim/2 */
    float *inv_freq, *rope_cos, *rope_sin;
    int rope_n;
    /* KV cache */
    float *kv;
    int block_size, n_blocks;
    size_t block_floats, layer_floats; /* per block; per layer within a block (K+V) */
    /* scratch, grown on demand */
    size_t cap_tokens;
    float *x, *h, *q, *k, *v, *att, *g, *u;
    uint16_t *xb;
    size_t xb_cap;
    float *attn_scratch;
    size_t attn_cap; /* floats per thread */
    int32_t *tok_seq, *tok_pos;
    bool bf16_prefill;
    int bf16_min_tokens;
    int amx;
    float *panel; /* per thread: 4 widened weight rows */
    int max_cols;
    void *wcopy; /* weights copied to huge-page memory (see copy_weights), or NULL */
    size_t wcopy_bytes;
} cpu_impl;

static int lin_from(cpu_lin *l, const ragd_tensor *t, const ragd_tensor *bias, ragd_err *err) {
    l->w = t->data;
    l->dt = t->dtype;
    l->rows = (int)t->shape[0];
    l->cols = (int)t->shape[1];
    l->bias = NULL;
    if (bias) {
        l->bias = malloc((size_t)bias->numel * 4);
        if (!l->bias) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        ragd_to_f32(l->bias, bias->data, bias->dtype, (size_t)bias->numel);
    }
    return RAGD_OK;
}

static float *vec_from(const ragd_tensor *t) {
    float *v = malloc((size_t)t->numel * 4);
    if (v) ragd_to_f32(v, t->data, t->dtype, (size_t)t->numel);
    return v;
}

/* ---------------------------------------------------------------------------------------- */
/* matrix products over the pool                                                            */

#define MM_MAX 3

/* One pool run covering up to MM_MAX linears that share the input X. */
typedef struct mm_ctx {
    const float *X;
    const uint16_t *Xb;
    int amx;
    size_t ldx, ldxb;
    int T, n_lin;
    const cpu_lin *L[MM_MAX];
    float *Y[MM_MAX];
    size_t ldy[MM_MAX];
    int row_chunk[MM_MAX], n_row_chunks[MM_MAX];
    size_t first_task[MM_MAX + 1];
    int accumulate, tok_tile;
    struct cpu_impl *m;
} mm_ctx;

static void mm_task(void *vctx, size_t i, int tid) {
    mm_ctx *c = vctx;
    int w = 0;
    while (i >= c->first_task[w + 1]) w++;
    i -= c->first_task[w];
    const cpu_lin *L = c->L[w];
    int rc = (int)(i % (size_t)c->n_row_chunks[w]), tc = (int)(i / (size_t)c->n_row_chunks[w]);
    int r0 = rc * c->row_chunk[w], r1 = r0 + c->row_chunk[w];
    if (r1 > L->rows) r1 = L->rows;
    int t0 = tc * c->tok_tile, t1 = t0 + c->tok_tile;
    if (t1 > c->T) t1 = c->T;
    if (c->amx)
        ragd_k_amx_matmul(c->Xb, t0, t1, c->T, L->cols, L->w, r0, r1, L->bias, c->Y[w], c->ldy[w],
                          c->accumulate);
    else if (c->Xb)
        ragd_k_matmul_rows_bf16(c->Xb, c->ldxb, t0, t1, L->w, L->cols, r0, r1, L->bias, c->Y[w],
                                c->ldy[w], c->accumulate);
    else
        ragd_k_matmul_rows(c->X, c->ldx, t0, t1, L->w, L->dt, L->cols, r0, r1, L->bias, c->Y[w],
                           c->ldy[w], c->accumulate,
                           c->m->panel + (size_t)tid * 4 * (size_t)c->m->max_cols);
}

typedef struct cvt_ctx {
    const float *X;
    size_t ldx;
    uint16_t *Xb;
    size_t ldxb;
    int K, T;
} cvt_ctx;

static void amx_pack_task(void *vctx, size_t i, int tid) {
    (void)tid;
    cvt_ctx *c = vctx;
    int t0 = (int)i * 16, t1 = t0 + 16 < c->T ? t0 + 16 : c->T;
    ragd_k_amx_pack_x(c->X, c->ldx, t0, t1, c->K, c->Xb);
}

static void cvt_task(void *vctx, size_t i, int tid) {
    (void)tid;
    cvt_ctx *c = vctx;
    ragd_k_to_bf16(c->Xb + i * c->ldxb, c->X + i * c->ldx, c->K, (int)c->ldxb);
}

/* A scratch buffer of at least `bytes` (old contents dropped). From 2 MB up: 2 MB aligned and
 * advised as transparent huge pages - a prefill's activation rows (one 4 KB page each at
 * these widths) otherwise cost a TLB miss per row the GEMM tiles touch. */
static void *scratch_alloc(void *old, size_t bytes) {
    free(old);
    const size_t huge = (size_t)2 << 20;
    if (bytes < huge) return malloc(bytes ? bytes : 1);
    size_t n = (bytes + huge - 1) / huge * huge;
    void *p = aligned_alloc(huge, n);
    if (p) madvise(p, n, MADV_HUGEPAGE);
    return p;
}

static int ensure_xb(cpu_impl *m, size_t need, ragd_err *err) {
    if (need <= m->xb_cap) return RAGD_OK;
    uint16_t *nb = scratch_alloc(m->xb, need * 2);
    if (!nb) {
        m->xb = NULL;
        m->xb_cap = 0;
        return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    }
    m->xb = nb;
    m->xb_cap = need;
    return RAGD_OK;
}

/* Y_i[T][rows_i] (+)= X[T][cols] W_i^T + bias_i for n linears sharing X, in one pool run. */
static int matmul_n(cpu_impl *m, const float *X, size_t ldx, int T, int n, const cpu_lin **Ls,
                    float **Ys, const size_t *ldys, int accumulate, ragd_err *err) {
    mm_ctx c = {.X = X, .ldx = ldx, .T = T, .n_lin = n, .accumulate = accumulate, .m = m};
    const int nt = m->n_threads, K = Ls[0]->cols;
    bool all_bf16 = true, amx_shapes = K % 32 == 0;
    for (int i = 0; i < n; i++) {
        c.L[i] = Ls[i], c.Y[i] = Ys[i], c.ldy[i] = ldys[i];
        all_bf16 = all_bf16 && Ls[i]->dt == RAGD_DT_BF16;
        amx_shapes = amx_shapes && Ls[i]->rows % 16 == 0;
    }
    bool fast = m->bf16_prefill && all_bf16 && T >= m->bf16_min_tokens;
    int rc, rows_align, tasks_per_thread;
    if (fast && m->amx && amx_shapes) {
        size_t n_tb = ((size_t)T + 15) / 16;
        if ((rc = ensure_xb(m, n_tb * 16 * (size_t)K, err))) return rc;
        cvt_ctx cc = {X, ldx, m->xb, 0, K, T};
        ragd_pool_run(m->pool, n_tb, amx_pack_task, &cc);
        c.Xb = m->xb;
        c.amx = 1;
        c.tok_tile = T <= 128 ? (T + 31) / 32 * 32 : 128;
        rows_align = 32;
        tasks_per_thread = 4;
    } else {
        if (fast) {
            size_t ldxb = ((size_t)K + 31) / 32 * 32;
            if ((rc = ensure_xb(m, ldxb * (size_t)T, err))) return rc;
            cvt_ctx cc = {X, ldx, m->xb, ldxb, K, T};
            ragd_pool_run(m->pool, (size_t)T, cvt_task, &cc);
            c.Xb = m->xb;
            c.ldxb = ldxb;
        }
        /* bf16 activations: 128-token tiles (each 6-row weight tile in L1 serves 32 token
         * groups; +13% over 64 on the 2-core Zen 5 VM, 256 spills the L2) */
        c.tok_tile = T <= 64 ? T : fast ? 128 : 64;
        rows_align = T > 1 ? 32 : 16;     /* 16: rows in flight of the decode GEMV */
        tasks_per_thread = T > 1 ? 8 : 2; /* decode: longer contiguous row ranges (+0-3%) */
    }
    int n_tok_tiles = (T + c.tok_tile - 1) / c.tok_tile;
    long total_rows = 0;
    for (int i = 0; i < n; i++) total_rows += Ls[i]->rows;
    /* enough row chunks over all linears for load balance */
    long want = (long)nt * tasks_per_thread / n_tok_tiles;
    if (want < nt) want = nt;
    long chunk = (total_rows + want - 1) / want;
    chunk = (chunk + rows_align - 1) / rows_align * rows_align;
    size_t task = 0;
    for (int i = 0; i < n; i++) {
        c.row_chunk[i] = (int)chunk;
        c.n_row_chunks[i] = (int)((Ls[i]->rows + chunk - 1) / chunk);
        c.first_task[i] = task;
        task += (size_t)c.n_row_chunks[i] * (size_t)n_tok_tiles;
    }
    c.first_task[n] = task;
    ragd_pool_run(m->pool, task, mm_task, &c);
    return RAGD_OK;
}

/* Y[T][rows] (+)= X[T][cols] W^T + bias */
static int matmul(cpu_impl *m, const float *X, size_t ldx, int T, const cpu_lin *L, float *Y,
                  size_t ldy, int accumulate, ragd_err *err) {
    return matmul_n(m, X, ldx, T, 1, &L, &Y, &ldy, accumulate, err);
}

/* ---------------------------------------------------------------------------------------- */

static int ensure_rope(cpu_impl *m, const ragd_llm_config *cfg, int n_pos, ragd_err *err) {
    if (n_pos <= m->rope_n) return RAGD_OK;
    int hd2 = cfg->head_dim / 2;
    int n = m->rope_n ? m->rope_n : 256;
    while (n < n_pos) n *= 2;
    float *c = realloc(m->rope_cos, (size_t)n * hd2 * 4);
    if (!c) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    m->rope_cos = c;
    float *s = realloc(m->rope_sin, (size_t)n * hd2 * 4);
    if (!s) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    m->rope_sin = s;
    /* as transformers: angle = f32(pos * inv_freq) with f32 inv_freq, cos/sin of that angle */
    for (int p = m->rope_n; p < n; p++)
        for (int i = 0; i < hd2; i++) {
            float a = (float)p * m->inv_freq[i];
            m->rope_cos[(size_t)p * hd2 + i] = (float)cos((double)a);
            m->rope_sin[(size_t)p * hd2 + i] = (float)sin((double)a);
        }
    m->rope_n = n;
    return RAGD_OK;
}

static int ensure_scratch(cpu_impl *m, const ragd_llm_config *cfg, size_t n_tok, ragd_err *err) {
    if (n_tok <= m->cap_tokens) return RAGD_OK;
    size_t H = (size_t)cfg->hidden, QD = (size_t)cfg->n_heads * cfg->head_dim,
           KD = (size_t)cfg->n_kv_heads * cfg->head_dim, F = (size_t)cfg->ffn;
    float **bufs[] = {&m->x, &m->h, &m->q, &m->k, &m->v, &m->att, &m->g, &m->u};
    size_t widths[] = {H, H > QD ? H : QD, QD, KD, KD, QD, F, F};
    for (size_t i = 0; i < 8; i++) {
        float *p = scratch_alloc(*bufs[i], n_tok * widths[i] * 4);
        *bufs[i] = p;
        if (!p) {
            m->cap_tokens = 0; /* the others are still valid but smaller: grow all next time */
            return ragd_err_set(err, RAGD_ENOMEM, "out of memory (%zu tokens)", n_tok);
        }
    }
    int32_t *a = realloc(m->tok_seq, n_tok * 4);
    if (!a) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    m->tok_seq = a;
    a = realloc(m->tok_pos, n_tok * 4);
    if (!a) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    m->tok_pos = a;
    m->cap_tokens = n_tok;
    return RAGD_OK;
}

/* Layer `layer` of block `block`: K^T [kv_dim][block_size] then V [block_size][kv_dim]. */
static inline float *kv_base(cpu_impl *m, int layer, int block) {
    return m->kv + (size_t)block * m->block_floats + (size_t)layer * m->layer_floats;
}

/* ---------------------------------------------------------------------------------------- */
/* attention                                                                                */

typedef struct attn_ctx {
    cpu_impl *m;
    const ragd_llm_config *cfg;
    const ragd_batch *b;
    int layer;
} attn_ctx;

/* One (token, kv head) pair: the rep query heads of the group attend to positions 0..pos.
 * Scores of the rep heads together from the transposed K (each sequential over head_dim per
 * key), so every score - and so every output - is computed the same way whatever the
 * chunking. */
static void attn_task(void *vctx, size_t i, int tid) {
    attn_ctx *c = vctx;
    cpu_impl *m = c->m;
    const ragd_llm_config *cfg = c->cfg;
    const int nkv = cfg->n_kv_heads, hd = cfg->head_dim, rep = cfg->n_heads / nkv;
    const int kvd = nkv * hd, qd = cfg->n_heads * hd, bs = m->block_size;
    int t = (int)(i / (size_t)nkv), g = (int)(i % (size_t)nkv);
    const ragd_batch_seq *s = &c->b->seqs[m->tok_seq[t]];
    int pos = m->tok_pos[t], n = pos + 1;
    float *sc = m->attn_scratch + (size_t)tid * m->attn_cap; /* rep x n scores */
    const float scale = 1.0f / sqrtf((float)hd);
    const float *q = m->q + (size_t)t * qd + (size_t)g * rep * hd;
    const float *layer0 = kv_base(m, c->layer, 0);
    const ragd_k_pages K = {layer0 + (size_t)g * hd * bs, s->block_table, m->block_floats, bs};
    const ragd_k_pages V = {layer0 + (size_t)kvd * bs + (size_t)g * hd, s->block_table,
                            m->block_floats, bs};
    ragd_k_scores(sc, (size_t)n, q, (size_t)hd, rep, &K, hd, n, scale);
    float *out = m->att + (size_t)t * qd + (size_t)g * rep * hd;
    for (int r = 0; r < rep; r++) {
        float *row = sc + (size_t)r * n;
        float sum = ragd_k_exp_sub_sum(row, n, ragd_k_max(row, n));
        ragd_k_scale(row, 1.0f / sum, n);
        memset(out + r * hd, 0, (size_t)hd * 4);
    }
    /* out += P V over the blocks (keys in order, so the sums match a key-by-key loop) */
    ragd_k_attn_pv(out, (size_t)hd, sc, (size_t)n, rep, &V, (size_t)kvd, n, hd);
}

/* ---------------------------------------------------------------------------------------- */
/* per-token elementwise work                                                               */

typedef struct rows_ctx {
    cpu_impl *m;
    const ragd_llm_config *cfg;
    const float *w;
    int op; /* 0 = rmsnorm x->h, 1 = rope q,k, 2 = swiglu */
} rows_ctx;

static void rows_task(void *vctx, size_t i, int tid) {
    (void)tid;
    rows_ctx *c = vctx;
    cpu_impl *m = c->m;
    const ragd_llm_config *cfg = c->cfg;
    size_t H = (size_t)cfg->hidden;
    if (c->op == 0) {
        ragd_k_rmsnorm(m->h + i * H, m->x + i * H, c->w, (int)H, cfg->rms_eps);
    } else if (c->op == 1) {
        int hd = cfg->head_dim, hd2 = hd / 2;
        const float *cs = m->rope_cos + (size_t)m->tok_pos[i] * hd2;
        const float *sn = m->rope_sin + (size_t)m->tok_pos[i] * hd2;
        float *q = m->q + i * (size_t)cfg->n_heads * hd;
        float *k = m->k + i * (size_t)cfg->n_kv_heads * hd;
        for (int h = 0; h < cfg->n_heads; h++) ragd_k_rope(q + h * hd, cs, sn, hd);
        for (int h = 0; h < cfg->n_kv_heads; h++) ragd_k_rope(k + h * hd, cs, sn, hd);
    } else {
        size_t F = (size_t)cfg->ffn;
        ragd_k_swiglu(m->g + i * F, m->g + i * F, m->u + i * F, (int)F);
    }
}

static void run_rows(cpu_impl *m, const ragd_llm_config *cfg, int op, const float *w, size_t n) {
    rows_ctx c = {m, cfg, w, op};
    ragd_pool_run(n > 1 ? m->pool : NULL, n, rows_task, &c);
}

/* ---------------------------------------------------------------------------------------- */

static int cpu_forward(ragd_backend *be, const ragd_batch *b, float *logits, ragd_err *err) {
    cpu_impl *m = be->impl;
    const ragd_llm_config *cfg = &be->cfg;
    if (!m->kv) return ragd_err_set(err, RAGD_EINVAL, "cpu backend: kv_init was not called");
    if (!b || b->n_seqs < 0 || (b->n_seqs > 0 && !b->seqs))
        return ragd_err_set(err, RAGD_EINVAL, "cpu backend: empty batch");
    size_t N = 0, n_rows = 0;
    int max_pos = 0;
    for (int s = 0; s < b->n_seqs; s++) {
        const ragd_batch_seq *q = &b->seqs[s];
        if (q->n_new < 1 || q->n_past < 0 || !q->tokens || !q->block_table)
            return ragd_err_set(err, RAGD_EINVAL, "cpu backend: sequence %d: bad n_new/n_past", s);
        int64_t end = (int64_t)q->n_past + q->n_new;
        if (end > cfg->max_pos)
            return ragd_err_set(err, RAGD_EINVAL,
                                "cpu backend: sequence %d: %lld positions exceed the model's "
                                "context (%d)",
                                s, (long long)end, cfg->max_pos);
        if ((int64_t)q->n_blocks * m->block_size < end)
            return ragd_err_set(err, RAGD_EINVAL,
                                "cpu backend: sequence %d: block table (%d blocks) does not cover "
                                "%lld positions",
                                s, q->n_blocks, (long long)end);
        int need_blocks = (int)((end + m->block_size - 1) / m->block_size);
        for (int j = 0; j < need_blocks; j++)
            if (q->block_table[j] < 0 || q->block_table[j] >= m->n_blocks)
                return ragd_err_set(err, RAGD_EINVAL, "cpu backend: sequence %d: bad block id %d",
                                    s, q->block_table[j]);
        for (int j = 0; j < q->n_new; j++)
            if (q->tokens[j] < 0 || q->tokens[j] >= cfg->vocab_size)
                return ragd_err_set(err, RAGD_EINVAL,
                                    "cpu backend: token id %d out of range (vocab %d)",
                                    q->tokens[j], cfg->vocab_size);
        N += (size_t)q->n_new;
        n_rows += q->want_all_logits ? (size_t)q->n_new : q->want_logits ? 1 : 0;
        if (end > max_pos) max_pos = (int)end;
    }
    if (N == 0) return RAGD_OK;
    if (n_rows && !logits) return ragd_err_set(err, RAGD_EINVAL, "cpu backend: logits is NULL");
    int rc;
    if ((rc = ensure_scratch(m, cfg, N, err)) || (rc = ensure_rope(m, cfg, max_pos, err)))
        return rc;
    int nkv = cfg->n_kv_heads, hd = cfg->head_dim, rep = cfg->n_heads / nkv;
    size_t need_attn = (size_t)rep * (size_t)max_pos + 16;
    if (need_attn > m->attn_cap) {
        float *p = realloc(m->attn_scratch, need_attn * (size_t)m->n_threads * 4);
        if (!p) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        m->attn_scratch = p;
        m->attn_cap = need_attn;
    }
    size_t H = (size_t)cfg->hidden, QD = (size_t)cfg->n_heads * hd, KD = (size_t)nkv * hd,
           F = (size_t)cfg->ffn;
    /* token rows, embeddings */
    size_t t = 0;
    for (int s = 0; s < b->n_seqs; s++) {
        const ragd_batch_seq *q = &b->seqs[s];
        for (int j = 0; j < q->n_new; j++, t++) {
            m->tok_seq[t] = s;
            m->tok_pos[t] = q->n_past + j;
            size_t es = ragd_dtype_size(m->embed.dt);
            ragd_to_f32(m->x + t * H, (const char *)m->embed.w + (size_t)q->tokens[j] * H * es,
                        m->embed.dt, H);
        }
    }
    int T = (int)N;
    for (int l = 0; l < cfg->n_layers; l++) {
        cpu_layer *L = &m->layers[l];
        run_rows(m, cfg, 0, L->attn_norm, N);
        const cpu_lin *qkv[3] = {&L->q, &L->k, &L->v};
        float *qkv_out[3] = {m->q, m->k, m->v};
        const size_t qkv_ld[3] = {QD, KD, KD};
        if ((rc = matmul_n(m, m->h, H, T, 3, qkv, qkv_out, qkv_ld, 0, err))) return rc;
        run_rows(m, cfg, 1, NULL, N);
        /* write K/V of the new tokens into their cache slots */
        for (size_t i = 0; i < N; i++) {
            const ragd_batch_seq *q = &b->seqs[m->tok_seq[i]];
            int pos = m->tok_pos[i];
            int bsz = m->block_size, slot = pos % bsz;
            float *base = kv_base(m, l, q->block_table[pos / bsz]);
            const float *kr = m->k + i * KD;
            for (size_t d = 0; d < KD; d++) base[d * (size_t)bsz + (size_t)slot] = kr[d];
            memcpy(base + KD * (size_t)bsz + (size_t)slot * KD, m->v + i * KD, KD * 4);
        }
        attn_ctx ac = {m, cfg, b, l};
        ragd_pool_run(m->pool, N * (size_t)nkv, attn_task, &ac);
        if ((rc = matmul(m, m->att, QD, T, &L->o, m->x, H, 1, err))) return rc;
        run_rows(m, cfg, 0, L->mlp_norm, N);
        const cpu_lin *gu[2] = {&L->gate, &L->up};
        float *gu_out[2] = {m->g, m->u};
        const size_t gu_ld[2] = {F, F};
        if ((rc = matmul_n(m, m->h, H, T, 2, gu, gu_out, gu_ld, 0, err))) return rc;
        run_rows(m, cfg, 2, NULL, N);
        if ((rc = matmul(m, m->g, F, T, &L->down, m->x, H, 1, err))) return rc;
    }
    if (!n_rows) return RAGD_OK;
    /* final norm only for rows that need logits, gathered into h */
    size_t r = 0;
    t = 0;
    for (int s = 0; s < b->n_seqs; s++) {
        const ragd_batch_seq *q = &b->seqs[s];
        for (int j = 0; j < q->n_new; j++, t++) {
            if (q->want_all_logits || (q->want_logits && j == q->n_new - 1)) {
                ragd_k_rmsnorm(m->h + r * H, m->x + t * H, m->final_norm, (int)H, cfg->rms_eps);
                r++;
            }
        }
    }
    /* the LM head stays on the exact path: logits feed logprobs */
    bool saved = m->bf16_prefill;
    m->bf16_prefill = false;
    rc = matmul(m, m->h, H, (int)n_rows, &m->lm_head, logits, (size_t)cfg->vocab_size, 0, err);
    m->bf16_prefill = saved;
    return rc;
}

static int cpu_kv_init(ragd_backend *be, int block_size, int n_blocks, ragd_err *err) {
    cpu_impl *m = be->impl;
    if (block_size < 1 || n_blocks < 1 || block_size > 4096)
        return ragd_err_set(err, RAGD_EINVAL, "cpu backend: bad KV geometry %d x %d", n_blocks,
                            block_size);
    size_t kvd = (size_t)be->cfg.n_kv_heads * be->cfg.head_dim;
    size_t layer = 2 * (size_t)block_size * kvd;
    size_t blockf = layer * (size_t)be->cfg.n_layers;
    size_t bytes = blockf * (size_t)n_blocks * 4;
    m->kv = scratch_alloc(m->kv, (bytes + 63) / 64 * 64); /* huge pages: attention walks blocks */
    if (!m->kv)
        return ragd_err_set(err, RAGD_ENOMEM, "cpu backend: cannot allocate %zu MB of KV cache",
                            bytes >> 20);
    m->block_size = block_size;
    m->n_blocks = n_blocks;
    m->layer_floats = layer;
    m->block_floats = blockf;
    return RAGD_OK;
}

static size_t cpu_kv_block_bytes(const ragd_backend *be, int block_size) {
    return 2 * (size_t)block_size * be->cfg.n_kv_heads * be->cfg.head_dim * be->cfg.n_layers * 4;
}

static int cpu_copy_blocks(ragd_backend *be, const int32_t *src, const int32_t *dst, int n,
                           ragd_err *err) {
    cpu_impl *m = be->impl;
    for (int i = 0; i < n; i++) {
        if (src[i] < 0 || src[i] >= m->n_blocks || dst[i] < 0 || dst[i] >= m->n_blocks)
            return ragd_err_set(err, RAGD_EINVAL, "cpu backend: copy_blocks: bad block id");
        if (src[i] != dst[i])
            memcpy(m->kv + (size_t)dst[i] * m->block_floats,
                   m->kv + (size_t)src[i] * m->block_floats, m->block_floats * 4);
    }
    return RAGD_OK;
}

static size_t cpu_kv_budget(const ragd_backend *be) {
    (void)be;
    return 0;
}

static void cpu_destroy(ragd_backend *be) {
    if (!be) return;
    cpu_impl *m = be->impl;
    if (m) {
        if (m->layers) {
            for (int l = 0; l < be->cfg.n_layers; l++) {
                cpu_layer *L = &m->layers[l];
                free(L->attn_norm), free(L->mlp_norm);
                free(L->q.bias), free(L->k.bias), free(L->v.bias);
            }
            free(m->layers);
        }
        free(m->final_norm);
        free(m->inv_freq), free(m->rope_cos), free(m->rope_sin);
        free(m->kv);
        free(m->x), free(m->h), free(m->q), free(m->k), free(m->v), free(m->att), free(m->g),
            free(m->u);
        free(m->xb), free(m->attn_scratch), free(m->panel), free(m->tok_seq), free(m->tok_pos);
        free(m->wcopy);
        ragd_llm_weights_free(&m->w);
        ragd_st_close(m->st);
        free(m);
    }
    free(be);
}

static const ragd_backend_ops cpu_ops = {
    .kv_init = cpu_kv_init,
    .kv_block_bytes = cpu_kv_block_bytes,
    .forward = cpu_forward,
    .forward_sample = NULL,
    .copy_blocks = cpu_copy_blocks,
    .kv_budget_bytes = cpu_kv_budget,
    .destroy = cpu_destroy,
};

/* Weight placement. By default the weights are used in place from the safetensors mmap (4 KB
 * page-cache pages). Decode streams every weight once per token, and on the dev VM a core reads
 * ~10% faster from 2 MB transparent huge pages (fewer TLB misses, longer hardware prefetch
 * runs) than from the file mapping; ext4 page cache cannot be mapped with huge pages
 * (MADV_COLLAPSE is refused). So small models (linear weights <= 2 GiB: Qwen2.5-0.5B/1.5B
 * class) are copied once into anonymous 2 MB-aligned THP memory; big ones (7B: 15 GB) stay in
 * place - a second full copy of the model would cost as much RAM as the model itself.
 * RAGD_CPU_WEIGHTS=mmap / =copy overrides the size rule. Same bytes either way: results are
 * bitwise identical. */
#define RAGD_CPU_COPY_MAX ((size_t)2 << 30)

static void copy_weights(cpu_impl *m, int n_layers) {
    const char *env = getenv("RAGD_CPU_WEIGHTS");
    bool force = env && !strcmp(env, "copy");
    if (env && !strcmp(env, "mmap")) return;
    enum { PER_LAYER = 7 };
    size_t n_lin = (size_t)n_layers * PER_LAYER + 2;
    cpu_lin **lins = malloc(n_lin * sizeof *lins);
    if (!lins) return;
    size_t k = 0;
    for (int l = 0; l < n_layers; l++) {
        cpu_layer *L = &m->layers[l];
        cpu_lin *ls[PER_LAYER] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
        for (int i = 0; i < PER_LAYER; i++) lins[k++] = ls[i];
    }
    lins[k++] = &m->lm_head;
    lins[k++] = &m->embed;
    size_t total = 0;
    for (size_t i = 0; i < n_lin; i++) {
        bool dup = false; /* tied embeddings: lm_head and embed share one tensor */
        for (size_t j = 0; j < i && !dup; j++) dup = lins[j]->w == lins[i]->w;
        if (!dup)
            total += ((size_t)lins[i]->rows * lins[i]->cols * ragd_dtype_size(lins[i]->dt) + 63) /
                     64 * 64;
    }
    const size_t huge = (size_t)2 << 20;
    size_t bytes = (total + huge - 1) / huge * huge;
    if (!total || (!force && total > RAGD_CPU_COPY_MAX)) {
        free(lins);
        return;
    }
    char *dst = aligned_alloc(huge, bytes);
    if (!dst) {
        free(lins);
        return; /* stay in place */
    }
    madvise(dst, bytes, MADV_HUGEPAGE);
    size_t off = 0;
    for (size_t i = 0; i < n_lin; i++) {
        const char *src = lins[i]->w;
        if (src >= dst && src < dst + bytes) continue; /* a shared tensor, already copied */
        size_t nb = (size_t)lins[i]->rows * lins[i]->cols * ragd_dtype_size(lins[i]->dt);
        memcpy(dst + off, src, nb);
        for (size_t j = i; j < n_lin; j++)
            if (lins[j]->w == src) lins[j]->w = dst + off;
        off += (nb + 63) / 64 * 64;
    }
    free(lins);
    m->wcopy = dst;
    m->wcopy_bytes = bytes;
}

int ragd_cpu_backend_create(const char *model_dir, ragd_pool *pool, ragd_backend **out,
                            ragd_err *err) {
    *out = NULL;
    ragd_backend *be = calloc(1, sizeof *be);
    cpu_impl *m = calloc(1, sizeof *m);
    if (!be || !m) {
        free(be), free(m);
        return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    }
    be->ops = &cpu_ops;
    be->name = "cpu";
    be->impl = m;
    m->pool = pool;
    m->n_threads = ragd_pool_size(pool);
    int rc = ragd_llm_config_load(model_dir, &be->cfg, err);
    if (rc) goto fail;
    const ragd_llm_config *cfg = &be->cfg;
    if ((rc = ragd_st_open_dir(model_dir, &m->st, err))) goto fail;
    if ((rc = ragd_llm_weights_bind(m->st, cfg, &m->w, err))) goto fail;
    m->layers = calloc((size_t)cfg->n_layers, sizeof *m->layers);
    m->final_norm = vec_from(m->w.norm);
    m->inv_freq = malloc((size_t)cfg->head_dim / 2 * 4);
    if (!m->layers || !m->final_norm || !m->inv_freq) {
        rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < cfg->head_dim / 2; i++) {
        float e = (float)(2 * i) / (float)cfg->head_dim;
        float p = (float)pow((double)cfg->rope_theta, (double)e);
        m->inv_freq[i] = 1.0f / p;
    }
    for (int l = 0; l < cfg->n_layers; l++) {
        const ragd_llm_layer_w *W = &m->w.layers[l];
        cpu_layer *L = &m->layers[l];
        L->attn_norm = vec_from(W->attn_norm);
        L->mlp_norm = vec_from(W->mlp_norm);
        if (!L->attn_norm || !L->mlp_norm) {
            rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
            goto fail;
        }
        if ((rc = lin_from(&L->q, W->q, W->q_bias, err)) ||
            (rc = lin_from(&L->k, W->k, W->k_bias, err)) ||
            (rc = lin_from(&L->v, W->v, W->v_bias, err)) ||
            (rc = lin_from(&L->o, W->o, NULL, err)) ||
            (rc = lin_from(&L->gate, W->gate, NULL, err)) ||
            (rc = lin_from(&L->up, W->up, NULL, err)) ||
            (rc = lin_from(&L->down, W->down, NULL, err)))
            goto fail;
    }
    m->max_cols = cfg->hidden > cfg->ffn ? cfg->hidden : cfg->ffn;
    if (cfg->n_heads * cfg->head_dim > m->max_cols) m->max_cols = cfg->n_heads * cfg->head_dim;
    m->panel = malloc(sizeof(float) * 4 * (size_t)m->max_cols * (size_t)m->n_threads);
    if (!m->panel) {
        rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        goto fail;
    }
    lin_from(&m->embed, m->w.embed, NULL, err);
    lin_from(&m->lm_head, m->w.lm_head, NULL, err);
    copy_weights(m, cfg->n_layers);
    const char *env = getenv("RAGD_CPU_BF16");
    m->bf16_min_tokens = 16;
    if (env && *env && strcmp(env, "0")) ragd_cpu_backend_set_bf16_prefill(be, true);
    *out = be;
    return RAGD_OK;
fail:
    cpu_destroy(be);
    return rc;
}

bool ragd_cpu_backend_set_bf16_prefill(ragd_backend *be, bool on) {
    cpu_impl *m = be->impl;
    m->bf16_prefill = on && ragd_k_have_bf16_dot();
    m->amx = m->bf16_prefill && !getenv("RAGD_CPU_NO_AMX") ? ragd_k_amx_init() : 0;
    return m->bf16_prefill;
}
