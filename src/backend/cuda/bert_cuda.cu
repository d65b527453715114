/* bert_cuda.cu - BERT encoder forward on the GPU (see bert_cuda.h). */
#include "backend/cuda/bert_cuda.h"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <stdlib.h>
#include <string.h>

struct gpu_layer {
    __nv_bfloat16 *wqkv, *wo, *w1, *w2;
    float *bqkv, *bo, *ln1_g, *ln1_b, *b1, *b2, *ln2_g, *ln2_b;
};

struct ragd_bert_cuda {
    int H, L, NH, F, V, P;
    float eps;
    float *word, *pos, *type, *emb_g, *emb_b;
    gpu_layer *layers; /* L entries */
    cublasHandle_t blas;
    cudaStream_t stream;
    /* activations, grown on demand */
    size_t cap_tokens, cap_seqs, cap_scores;
    int32_t *ids, *tpos, *tseq, *offs, *lens;
    float *x, *qkv, *tmp, *h, *out, *scores;
    int32_t *h_host; /* host staging: tpos, tseq, offs */
    size_t h_cap;
    __nv_bfloat16 *xb, *ctx, *hb;
};

#define CK(call, what)                                                                             \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess)                                                                     \
            return ragd_err_set(err, RAGD_EDEVICE, "cuda %s: %s", what, cudaGetErrorString(e_));   \
    } while (0)
#define CB(call, what)                                                                             \
    do {                                                                                           \
        cublasStatus_t s_ = (call);                                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                           \
            return ragd_err_set(err, RAGD_EDEVICE, "cublas %s: status %d", what, (int)s_);         \
    } while (0)

static int up_f32(float **dst, const float *src, size_t n, ragd_err *err) {
    CK(cudaMalloc((void **)dst, n * sizeof(float)), "malloc");
    CK(cudaMemcpy(*dst, src, n * sizeof(float), cudaMemcpyHostToDevice), "upload");
    return RAGD_OK;
}

static int up_bf16(__nv_bfloat16 **dst, const float *src, size_t n, ragd_err *err) {
    __nv_bfloat16 *tmp = (__nv_bfloat16 *)malloc(n * sizeof(__nv_bfloat16));
    if (!tmp) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) tmp[i] = __float2bfloat16(src[i]);
    cudaError_t e = cudaMalloc((void **)dst, n * sizeof(__nv_bfloat16));
    if (e == cudaSuccess)
        e = cudaMemcpy(*dst, tmp, n * sizeof(__nv_bfloat16), cudaMemcpyHostToDevice);
    free(tmp);
    if (e != cudaSuccess)
        return ragd_err_set(err, RAGD_EDEVICE, "cuda upload: %s", cudaGetErrorString(e));
    return RAGD_OK;
}

extern "C" int ragd_bert_cuda_create(const ragd_bert_cuda_weights *w, ragd_bert_cuda **out,
                                     ragd_err *err) {
    *out = NULL;
    int n_dev = 0;
    if (cudaGetDeviceCount(&n_dev) != cudaSuccess || n_dev == 0)
        return ragd_err_set(err, RAGD_EDEVICE, "cuda: no GPU available");
    const int D = w->hidden / w->heads;
    if (D > 64 || D % 32 != 0)
        return ragd_err_set(err, RAGD_EUNSUPPORTED, "cuda bert: head size %d (32 or 64 only)", D);
    if (w->hidden > 4096)
        return ragd_err_set(err, RAGD_EUNSUPPORTED, "cuda bert: hidden size %d too large",
                            w->hidden);
    ragd_bert_cuda *g = (ragd_bert_cuda *)calloc(1, sizeof *g);
    if (!g) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    g->H = w->hidden, g->L = w->layers, g->NH = w->heads, g->F = w->ffn, g->V = w->vocab;
    g->P = w->max_pos, g->eps = w->ln_eps;
    *out = g; /* destroy() copes with a partly built object */
    const size_t H = (size_t)g->H, F = (size_t)g->F;
    int rc = up_f32(&g->word, w->word, (size_t)g->V * H, err);
    if (!rc) rc = up_f32(&g->pos, w->pos, (size_t)g->P * H, err);
    if (!rc) rc = up_f32(&g->type, w->type, H, err);
    if (!rc) rc = up_f32(&g->emb_g, w->emb_g, H, err);
    if (!rc) rc = up_f32(&g->emb_b, w->emb_b, H, err);
    g->layers = (gpu_layer *)calloc((size_t)g->L, sizeof(gpu_layer));
    if (!g->layers) rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    for (int l = 0; l < g->L && !rc; l++) {
        const ragd_bert_cuda_layer *s = &w->layer[l];
        gpu_layer *d = &g->layers[l];
        memset(d, 0, sizeof *d);
        rc = up_bf16(&d->wqkv, s->wqkv, 3 * H * H, err);
        if (!rc) rc = up_bf16(&d->wo, s->wo, H * H, err);
        if (!rc) rc = up_bf16(&d->w1, s->w1, F * H, err);
        if (!rc) rc = up_bf16(&d->w2, s->w2, H * F, err);
        if (!rc) rc = up_f32(&d->bqkv, s->bqkv, 3 * H, err);
        if (!rc) rc = up_f32(&d->bo, s->bo, H, err);
        if (!rc) rc = up_f32(&d->ln1_g, s->ln1_g, H, err);
        if (!rc) rc = up_f32(&d->ln1_b, s->ln1_b, H, err);
        if (!rc) rc = up_f32(&d->b1, s->b1, F, err);
        if (!rc) rc = up_f32(&d->b2, s->b2, H, err);
        if (!rc) rc = up_f32(&d->ln2_g, s->ln2_g, H, err);
        if (!rc) rc = up_f32(&d->ln2_b, s->ln2_b, H, err);
    }
    if (!rc && cudaStreamCreate(&g->stream) != cudaSuccess)
        rc = ragd_err_set(err, RAGD_EDEVICE, "cuda: cannot create a stream");
    if (!rc && cublasCreate(&g->blas) != CUBLAS_STATUS_SUCCESS)
        rc = ragd_err_set(err, RAGD_EDEVICE, "cublas: cannot create a handle");
    if (!rc) cublasSetStream(g->blas, g->stream);
    if (rc) {
        ragd_bert_cuda_destroy(g);
        *out = NULL;
    }
    return rc;
}

static void free_acts(ragd_bert_cuda *g) {
    void *p[] = {g->ids, g->tpos, g->tseq, g->offs, g->lens, g->x,  g->qkv,
                 g->tmp, g->h,    g->out,  g->xb,   g->ctx,  g->hb, g->scores};
    for (void *q : p)
        if (q) cudaFree(q);
    g->ids = g->tpos = g->tseq = g->offs = g->lens = NULL;
    g->x = g->qkv = g->tmp = g->h = g->out = g->scores = NULL;
    g->xb = g->ctx = g->hb = NULL;
    g->cap_tokens = g->cap_seqs = g->cap_scores = 0;
}

extern "C" void ragd_bert_cuda_destroy(ragd_bert_cuda *g) {
    if (!g) return;
    free_acts(g);
    float *f[] = {g->word, g->pos, g->type, g->emb_g, g->emb_b};
    for (float *q : f)
        if (q) cudaFree(q);
    for (int l = 0; g->layers && l < g->L; l++) {
        gpu_layer &d = g->layers[l];
        void *p[] = {d.wqkv,  d.wo,    d.w1, d.w2, d.bqkv,  d.bo,
                     d.ln1_g, d.ln1_b, d.b1, d.b2, d.ln2_g, d.ln2_b};
        for (void *q : p)
            if (q) cudaFree(q);
    }
    free(g->layers);
    free(g->h_host);
    if (g->blas) cublasDestroy(g->blas);
    if (g->stream) cudaStreamDestroy(g->stream);
    free(g);
}

static int grow(ragd_bert_cuda *g, size_t T, size_t n, ragd_err *err) {
    if (T <= g->cap_tokens && n <= g->cap_seqs) return RAGD_OK;
    free_acts(g);
    g->cap_scores = (size_t)g->NH * g->P * g->P;
    CK(cudaMalloc((void **)&g->scores, g->cap_scores * 4), "malloc");
    T = T < 4096 ? 4096 : T;
    n = n < 256 ? 256 : n;
    const size_t H = (size_t)g->H, F = (size_t)g->F;
    CK(cudaMalloc((void **)&g->ids, T * 4), "malloc");
    CK(cudaMalloc((void **)&g->tpos, T * 4), "malloc");
    CK(cudaMalloc((void **)&g->tseq, T * 4), "malloc");
    CK(cudaMalloc((void **)&g->offs, (n + 1) * 4), "malloc");
    CK(cudaMalloc((void **)&g->lens, n * 4), "malloc");
    CK(cudaMalloc((void **)&g->x, T * H * 4), "malloc");
    CK(cudaMalloc((void **)&g->qkv, T * 3 * H * 4), "malloc");
    CK(cudaMalloc((void **)&g->tmp, T * H * 4), "malloc");
    CK(cudaMalloc((void **)&g->h, T * F * 4), "malloc");
    CK(cudaMalloc((void **)&g->out, n * H * 4), "malloc");
    CK(cudaMalloc((void **)&g->xb, T * H * 2), "malloc");
    CK(cudaMalloc((void **)&g->ctx, T * H * 2), "malloc");
    CK(cudaMalloc((void **)&g->hb, T * F * 2), "malloc");
    g->cap_tokens = T;
    g->cap_seqs = n;
    return RAGD_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* kernels                                                                                    */

/* Internal linkage: the kernels must not collide with other translation units of ragd_cuda. */
namespace {

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* block-wide sum (blockDim.x multiple of 32, <= 1024) */
__device__ float block_sum(float v, float *sh) {
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    float t = threadIdx.x < (blockDim.x >> 5) ? sh[threadIdx.x] : 0.0f;
    if (w == 0) t = warp_sum(t);
    if (threadIdx.x == 0) sh[0] = t;
    __syncthreads();
    return sh[0];
}

/* One block per row: x = LN(a (+ r) (+ bias)) * g + b; writes x (f32) and xb (bf16).
 * Embedding mode (word != NULL): a = word[id] + pos[p] + type[0]. */
__global__ void k_add_ln(float *x, const float *r, const float *bias, const float *gam,
                         const float *bet, __nv_bfloat16 *xb, int H, float eps, const float *word,
                         const float *pos, const float *type, const int32_t *ids,
                         const int32_t *tpos) {
    extern __shared__ float sm[]; /* H floats + 32 */
    float *row = sm, *red = sm + H;
    const size_t t = blockIdx.x;
    float s = 0.0f;
    for (int d = threadIdx.x; d < H; d += blockDim.x) {
        float v;
        if (word)
            v = word[(size_t)ids[t] * H + d] + pos[(size_t)tpos[t] * H + d] + type[d];
        else
            v = x[t * H + d] + (r ? r[t * H + d] : 0.0f) + (bias ? bias[d] : 0.0f);
        row[d] = v;
        s += v;
    }
    const float mean = block_sum(s, red) / (float)H;
    float q = 0.0f;
    for (int d = threadIdx.x; d < H; d += blockDim.x) {
        float c = row[d] - mean;
        q += c * c;
    }
    const float inv = rsqrtf(block_sum(q, red) / (float)H + eps);
    for (int d = threadIdx.x; d < H; d += blockDim.x) {
        float v = (row[d] - mean) * inv * gam[d] + bet[d];
        x[t * H + d] = v;
        xb[t * H + d] = __float2bfloat16(v);
    }
}

/* hb = bf16(gelu(h + b)), exact erf GELU. */
__global__ void k_bias_gelu(const float *h, const float *b, __nv_bfloat16 *hb, size_t n, int F) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float v = h[i] + b[i % F];
    hb[i] = __float2bfloat16(0.5f * v * (1.0f + erff(v * 0.70710678118654752f)));
}

/* qkv[t][j] += b[j] for all T x 3H entries. */
__global__ void k_add_bias(float *y, const float *b, size_t n, int cols) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] += b[i % cols];
}

/* One warp per row of n scores: in-place softmax. */
__global__ void k_softmax_rows(float *s, int rows, int n) {
    const int row = (int)((blockIdx.x * (size_t)blockDim.x + threadIdx.x) >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= rows) return;
    float *r = s + (size_t)row * n;
    float m = -1e30f;
    for (int j = lane; j < n; j += 32) m = fmaxf(m, r[j]);
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    float sum = 0.0f;
    for (int j = lane; j < n; j += 32) {
        float e = __expf(r[j] - m);
        r[j] = e;
        sum += e;
    }
    const float inv = 1.0f / warp_sum(sum);
    for (int j = lane; j < n; j += 32) r[j] *= inv;
}

/* ctx (bf16) = src (f32) for the tokens of sequences of at least min_len tokens. */
__global__ void k_long_rows_to_bf16(const float *src, __nv_bfloat16 *ctx, const int32_t *tseq,
                                    const int32_t *lens, int min_len, size_t n, int H) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    if (lens[tseq[i / H]] >= min_len) ctx[i] = __float2bfloat16(src[i]);
}

/* One warp per (token, head): online-softmax attention over the token's own sequence.
 * qkv rows: [q | k | v] (f32, biases added here); ctx: bf16 [T x H]. D = 32 or 64. */
__global__ void k_attention(const float *qkv, const float *bqkv, __nv_bfloat16 *ctx,
                            const int32_t *tseq, const int32_t *offs, const int32_t *lens, int T,
                            int H, int NH, float scale, int min_len) {
    const int warp = (int)((blockIdx.x * (size_t)blockDim.x + threadIdx.x) >> 5);
    const int lane = threadIdx.x & 31;
    if (warp >= T * NH) return;
    const int t = warp / NH, h = warp % NH, D = H / NH;
    const int s = tseq[t], off = offs[s], L = lens[s];
    if (L >= min_len) return; /* done with cuBLAS */
    const size_t rs = (size_t)3 * H;
    const int d0 = h * D + lane, d1 = d0 + 32;
    const bool two = D == 64;
    const float *qr = qkv + (size_t)t * rs;
    const float q0 = qr[d0] * scale;
    const float q1 = two ? qr[d1] * scale : 0.0f;
    const float bk0 = 0.0f, bk1 = 0.0f, bv0 = 0.0f, bv1 = 0.0f; /* biases already added */
    (void)bqkv;
    float m = -1e30f, l = 0.0f, a0 = 0.0f, a1 = 0.0f;
    for (int j = 0; j < L; j++) {
        const float *kr = qkv + (size_t)(off + j) * rs + H;
        float p = q0 * (kr[d0] + bk0);
        if (two) p += q1 * (kr[d1] + bk1);
        p = warp_sum(p);
        const float mn = fmaxf(m, p);
        const float c = __expf(m - mn), e = __expf(p - mn);
        const float *vr = kr + H;
        a0 = a0 * c + e * (vr[d0] + bv0);
        if (two) a1 = a1 * c + e * (vr[d1] + bv1);
        l = l * c + e;
        m = mn;
    }
    const float inv = 1.0f / l;
    ctx[(size_t)t * H + d0] = __float2bfloat16(a0 * inv);
    if (two) ctx[(size_t)t * H + d1] = __float2bfloat16(a1 * inv);
}

/* One block per sequence: CLS or mean pooling, optional L2 normalisation. */
__global__ void k_pool(const float *x, const int32_t *offs, const int32_t *lens, float *out, int H,
                       int mean, int norm) {
    extern __shared__ float sm[];
    float *row = sm, *red = sm + H;
    const int s = blockIdx.x, off = offs[s], L = lens[s];
    float ss = 0.0f;
    for (int d = threadIdx.x; d < H; d += blockDim.x) {
        float v;
        if (mean) {
            v = 0.0f;
            for (int j = 0; j < L; j++) v += x[(size_t)(off + j) * H + d];
            v /= (float)L;
        } else {
            v = x[(size_t)off * H + d];
        }
        row[d] = v;
        ss += v * v;
    }
    const float tot = block_sum(ss, red);
    const float inv = norm ? (tot > 0.0f ? rsqrtf(tot) : 0.0f) : 1.0f;
    for (int d = threadIdx.x; d < H; d += blockDim.x) out[(size_t)s * H + d] = row[d] * inv;
}

} // namespace

/* Sequences at least this long use cuBLAS attention; shorter ones the warp kernel. */
#define ATTN_GEMM_MIN 64

/* C[M x N] (f32, row stride ldc) = A[M x K] (bf16) . W[N x K]^T (bf16) */
static int gemm(ragd_bert_cuda *g, int M, int N, int K, const __nv_bfloat16 *A,
                const __nv_bfloat16 *W, float *C, int ldc, ragd_err *err) {
    const float one = 1.0f, zero = 0.0f;
    CB(cublasGemmEx(g->blas, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, W, CUDA_R_16BF, K, A,
                    CUDA_R_16BF, K, &zero, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                    CUBLAS_GEMM_DEFAULT),
       "gemm");
    return RAGD_OK;
}

extern "C" int ragd_bert_cuda_forward(ragd_bert_cuda *g, const int32_t *ids, const int32_t *lens,
                                      int n_seq, int total_tokens, int mean_pool, int normalize,
                                      float *out, ragd_err *err) {
    const int T = total_tokens, H = g->H, F = g->F, NH = g->NH;
    int rc = grow(g, (size_t)T, (size_t)n_seq, err);
    if (rc) return rc;
    const size_t need = 2 * (size_t)T + (size_t)n_seq + 1;
    if (need > g->h_cap) {
        free(g->h_host);
        g->h_host = (int32_t *)malloc(need * sizeof(int32_t));
        g->h_cap = g->h_host ? need : 0;
        if (!g->h_host) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    }
    int32_t *tpos = g->h_host, *tseq = tpos + T, *offs = tseq + T;
    int o = 0;
    for (int s = 0; s < n_seq; s++) {
        offs[s] = o;
        for (int j = 0; j < lens[s]; j++) {
            tpos[o + j] = j;
            tseq[o + j] = s;
        }
        o += lens[s];
    }
    offs[n_seq] = o;
    cudaStream_t st = g->stream;
    CK(cudaMemcpyAsync(g->ids, ids, (size_t)T * 4, cudaMemcpyHostToDevice, st), "copy");
    CK(cudaMemcpyAsync(g->tpos, tpos, (size_t)T * 4, cudaMemcpyHostToDevice, st), "copy");
    CK(cudaMemcpyAsync(g->tseq, tseq, (size_t)T * 4, cudaMemcpyHostToDevice, st), "copy");
    CK(cudaMemcpyAsync(g->offs, offs, (size_t)(n_seq + 1) * 4, cudaMemcpyHostToDevice, st), "copy");
    CK(cudaMemcpyAsync(g->lens, lens, (size_t)n_seq * 4, cudaMemcpyHostToDevice, st), "copy");
    const int ln_threads = H >= 1024 ? 1024 : (H + 31) / 32 * 32;
    const size_t ln_sh = ((size_t)H + 32) * sizeof(float);
    k_add_ln<<<T, ln_threads, ln_sh, st>>>(g->x, NULL, NULL, g->emb_g, g->emb_b, g->xb, H, g->eps,
                                           g->word, g->pos, g->type, g->ids, g->tpos);
    const float scale = 1.0f / sqrtf((float)(H / NH));
    for (int l = 0; l < g->L; l++) {
        const gpu_layer &w = g->layers[l];
        if ((rc = gemm(g, T, 3 * H, H, g->xb, w.wqkv, g->qkv, 3 * H, err))) return rc;
        const size_t nq = (size_t)T * 3 * H;
        k_add_bias<<<(unsigned)((nq + 255) / 256), 256, 0, st>>>(g->qkv, w.bqkv, nq, 3 * H);
        const size_t warps = (size_t)T * NH;
        k_attention<<<(unsigned)((warps * 32 + 255) / 256), 256, 0, st>>>(
            g->qkv, w.bqkv, g->ctx, g->tseq, g->offs, g->lens, T, H, NH, scale, ATTN_GEMM_MIN);
        /* sequences of ATTN_GEMM_MIN+ tokens: S = Q K^T and O = softmax(S) V per head with
         * strided-batched cuBLAS (TF32); O (f32, in tmp) is then converted to the bf16 ctx */
        bool any_long = false;
        for (int s = 0; s < n_seq; s++) {
            const int L = lens[s];
            if (L < ATTN_GEMM_MIN) continue;
            any_long = true;
            const float *q = g->qkv + (size_t)offs[s] * 3 * H;
            const float zero = 0.0f, one = 1.0f;
            const int D = H / NH;
            CB(cublasGemmStridedBatchedEx(g->blas, CUBLAS_OP_T, CUBLAS_OP_N, L, L, D, &scale, q + H,
                                          CUDA_R_32F, 3 * H, D, q, CUDA_R_32F, 3 * H, D, &zero,
                                          g->scores, CUDA_R_32F, L, (long long)L * L, NH,
                                          CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT),
               "attention scores");
            const int rows = NH * L;
            k_softmax_rows<<<(unsigned)((rows * 32 + 255) / 256), 256, 0, st>>>(g->scores, rows, L);
            CB(cublasGemmStridedBatchedEx(g->blas, CUBLAS_OP_N, CUBLAS_OP_N, D, L, L, &one,
                                          q + 2 * H, CUDA_R_32F, 3 * H, D, g->scores, CUDA_R_32F, L,
                                          (long long)L * L, &zero, g->tmp + (size_t)offs[s] * H,
                                          CUDA_R_32F, H, D, NH, CUBLAS_COMPUTE_32F_FAST_TF32,
                                          CUBLAS_GEMM_DEFAULT),
               "attention values");
        }
        if (any_long) {
            const size_t nh = (size_t)T * H;
            k_long_rows_to_bf16<<<(unsigned)((nh + 255) / 256), 256, 0, st>>>(
                g->tmp, g->ctx, g->tseq, g->lens, ATTN_GEMM_MIN, nh, H);
        }
        if ((rc = gemm(g, T, H, H, g->ctx, w.wo, g->tmp, H, err))) return rc;
        k_add_ln<<<T, ln_threads, ln_sh, st>>>(g->x, g->tmp, w.bo, w.ln1_g, w.ln1_b, g->xb, H,
                                               g->eps, NULL, NULL, NULL, NULL, NULL);
        if ((rc = gemm(g, T, F, H, g->xb, w.w1, g->h, F, err))) return rc;
        const size_t n = (size_t)T * F;
        k_bias_gelu<<<(unsigned)((n + 255) / 256), 256, 0, st>>>(g->h, w.b1, g->hb, n, F);
        if ((rc = gemm(g, T, H, F, g->hb, w.w2, g->tmp, H, err))) return rc;
        k_add_ln<<<T, ln_threads, ln_sh, st>>>(g->x, g->tmp, w.b2, w.ln2_g, w.ln2_b, g->xb, H,
                                               g->eps, NULL, NULL, NULL, NULL, NULL);
    }
    k_pool<<<n_seq, ln_threads, ln_sh, st>>>(g->x, g->offs, g->lens, g->out, H, mean_pool,
                                             normalize);
    CK(cudaGetLastError(), "kernel launch");
    CK(cudaMemcpyAsync(out, g->out, (size_t)n_seq * H * sizeof(float), cudaMemcpyDeviceToHost, st),
       "copy back");
    CK(cudaStreamSynchronize(st), "forward");
    return RAGD_OK;
}
