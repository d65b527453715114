/* cuda_kernels.cuh - device kernels of the CUDA backend (included by cuda_model.cu only).
 * Layouts: activations row-major [tokens][features]; the residual stream is f32, GEMM inputs
 * and outputs bf16; the KV cache of one layer is [n_blocks + 1][block_size][n_kv][head_dim] bf16
 * (the extra block is a scratch target for padded graph rows). A KV "slot" is
 * block * block_size + position % block_size.
 */
#ifndef RAGD_BACKEND_CUDA_CUDA_KERNELS_CUH
#define RAGD_BACKEND_CUDA_CUDA_KERNELS_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "engine/backend.h"

typedef __nv_bfloat16 bf16;
typedef __nv_bfloat162 bf162;

/* Attention tiling. */
#define ATT_THREADS 128
#define ATT_KT 64   /* keys per shared-memory tile */
#define ATT_RMAX 32   /* query rows (tokens x heads of one KV group) per block: prefill variant */
#define ATT_RMAX_DEC 8 /* decode variant (one token x G <= 8 heads): less shared memory, more blocks */
#define ATT_NSMAX 32 /* most split-K partitions */

/* Per-row sampling parameters on the device. */
typedef struct rc_sp {
    float temp, top_p, min_p, rep, pres, freq, u;
    int top_k, nlp, hist_off, hist_len, n_prompt;
} rc_sp;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Block-wide sum / max (blockDim.x a multiple of 32, <= 1024). `red` holds 33 floats. */
__device__ float block_sum(float v, float *red) {
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) red[w] = v;
    __syncthreads();
    if (w == 0) {
        float x = lane < nw ? red[lane] : 0.f;
        x = warp_sum(x);
        if (lane == 0) red[32] = x;
    }
    __syncthreads();
    return red[32];
}
__device__ float block_max(float v, float *red) {
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) red[w] = v;
    __syncthreads();
    if (w == 0) {
        float x = lane < nw ? red[lane] : -INFINITY;
        x = warp_max(x);
        if (lane == 0) red[32] = x;
    }
    __syncthreads();
    return red[32];
}
/* Block-wide argmax, ties to the smaller index. `rv`/`ri` hold 33 entries. */
__device__ int block_argmax(float v, int i, float *rv, int *ri) {
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, v, o);
        int oi = __shfl_xor_sync(0xffffffffu, i, o);
        if (ov > v || (ov == v && oi < i)) v = ov, i = oi;
    }
    __syncthreads();
    if (lane == 0) rv[w] = v, ri[w] = i;
    __syncthreads();
    if (w == 0) {
        v = lane < nw ? rv[lane] : -INFINITY;
        i = lane < nw ? ri[lane] : 0x7fffffff;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            float ov = __shfl_xor_sync(0xffffffffu, v, o);
            int oi = __shfl_xor_sync(0xffffffffu, i, o);
            if (ov > v || (ov == v && oi < i)) v = ov, i = oi;
        }
        if (lane == 0) ri[32] = i;
    }
    __syncthreads();
    return ri[32];
}

/* Programmatic dependent launch (sm_90+): a kernel launched with the programmatic-serialization
 * attribute may start while its predecessor finishes. Every kernel here lets its dependents
 * launch at once (pdl_launch) and waits for its predecessor's completion and memory
 * (pdl_wait) before touching activations; only reads of immutable data (weights) may come
 * before pdl_wait. Both are no-ops on older GPUs and for ordinary launches. */
__device__ __forceinline__ void pdl_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

/* h[t] = embed[tok[t]] (f32). grid = T. */
__global__ void k_embed(const int *tok, const bf16 *emb, float *h, int H, int V) {
    pdl_launch();
    pdl_wait();
    const int t = blockIdx.x;
    int id = tok[t];
    if (id < 0 || id >= V) id = 0;
    const bf16 *e = emb + (size_t)id * H;
    for (int i = threadIdx.x; i < H; i += blockDim.x) h[(size_t)t * H + i] = __bfloat162float(e[i]);
}

/* Row r: x = h[src] (+ delta[src]); if write_h, h[src] = x; out[r] = rmsnorm(x) * w (bf16).
 * src = rows ? rows[r] : r. grid = n_rows, block = NORM_THREADS, H <= NORM_THREADS * NORM_VPT. */
#define NORM_THREADS 512
#define NORM_VPT 16
__global__ void __launch_bounds__(NORM_THREADS) k_rmsnorm(float *h, const bf16 *delta, const float *w, bf16 *out,
                                                          const int *rows, int H, float eps, int write_h) {
    pdl_launch();
    pdl_wait();
    __shared__ float red[33];
    const int r = blockIdx.x;
    const int src = rows ? rows[r] : r;
    float *hr = h + (size_t)src * H;
    const bf16 *dr = delta ? delta + (size_t)src * H : NULL;
    float v[NORM_VPT];
    float ss = 0.f;
#pragma unroll
    for (int k = 0; k < NORM_VPT; ++k) {
        const int i = threadIdx.x + k * NORM_THREADS;
        v[k] = i < H ? hr[i] : 0.f;
    }
    if (dr) {
#pragma unroll
        for (int k = 0; k < NORM_VPT; ++k) {
            const int i = threadIdx.x + k * NORM_THREADS;
            if (i < H) v[k] += __bfloat162float(dr[i]);
        }
    }
#pragma unroll
    for (int k = 0; k < NORM_VPT; ++k) {
        const int i = threadIdx.x + k * NORM_THREADS;
        if (i < H && write_h && dr) hr[i] = v[k];
        ss += v[k] * v[k];
    }
    ss = block_sum(ss, red);
    const float inv = rsqrtf(ss / (float)H + eps);
#pragma unroll
    for (int k = 0; k < NORM_VPT; ++k) {
        const int i = threadIdx.x + k * NORM_THREADS;
        if (i < H) out[(size_t)r * H + i] = __float2bfloat16(v[k] * inv * w[i]);
    }
}

/* QKV bias + RoPE (rotate-half) + KV-cache write. qkv row: [q (nh*hd) | k (nkv*hd) | v].
 * rope: [max_pos][hd/2] (cos, sin). grid = (items / blockDim, T), one item per thread. */
__global__ void k_qkv_rope(const bf16 *qkv, const float *bias, const float2 *rope, const int *pos,
                           const int *slot, bf16 *q, bf16 *kc, bf16 *vc, int nh, int nkv, int hd) {
    pdl_launch();
    pdl_wait();
    const int t = blockIdx.y;
    const int half = hd / 2, W = (nh + 2 * nkv) * hd;
    const bf16 *row = qkv + (size_t)t * W;
    const float2 *rp = rope + (size_t)pos[t] * half;
    const size_t s = (size_t)slot[t];
    const int nq = nh * half, nk = nkv * half;
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < nq + nk + nkv * hd) {
        if (i < nq + nk) {
            const int hh = i / half, j = i % half; /* head among q heads then k heads */
            const int c0 = hh * hd + j, c1 = c0 + half;
            float x0 = __bfloat162float(row[c0]), x1 = __bfloat162float(row[c1]);
            if (bias) x0 += bias[c0], x1 += bias[c1];
            const float2 cs = rp[j];
            const float y0 = x0 * cs.x - x1 * cs.y, y1 = x1 * cs.x + x0 * cs.y;
            if (hh < nh) {
                bf16 *qo = q + (size_t)t * nh * hd + hh * hd;
                qo[j] = __float2bfloat16(y0);
                qo[j + half] = __float2bfloat16(y1);
            } else {
                bf16 *ko = kc + (s * nkv + (hh - nh)) * hd;
                ko[j] = __float2bfloat16(y0);
                ko[j + half] = __float2bfloat16(y1);
            }
        } else {
            const int i2 = i - nq - nk; /* v element */
            const int c = (nh + nkv) * hd + i2;
            float x = __bfloat162float(row[c]);
            if (bias) x += bias[c];
            vc[s * nkv * hd + i2] = __float2bfloat16(x);
        }
    }
}

/* Paged causal attention. One block = one query tile (cnt consecutive new tokens of one
 * sequence) x one KV head (all its G query heads) x one split of the key range.
 * tiles[4*i] = {first token row, cnt, position of first token, offset into bt}.
 * split[0] = partitions in use, split[1] = keys per partition.
 * use_part: write normalised partial outputs + (max, sum) for k_attn_reduce; else final. */
template <int HD, int RMX>
__global__ void __launch_bounds__(ATT_THREADS)
    k_attn(const bf16 *__restrict__ q, const bf16 *__restrict__ kc, const bf16 *__restrict__ vc,
           bf16 *out, float *po, float *pml, const int *tiles, const int *bt, const int *split, int G,
           int nh, int nkv, int bs, float scale, int use_part) {
    pdl_launch();
    pdl_wait();
    constexpr int RS = ATT_THREADS / HD;  /* row groups */
    constexpr int RPT = RMX / RS;         /* rows per thread */
    constexpr int KP = HD + 2;            /* padded K row (bank-conflict free) */
    extern __shared__ float smem[];
    float *Qs = smem;                      /* [RMX][HD] */
    float *S = Qs + RMX * HD;              /* [RMX][KT] */
    float *ms = S + RMX * ATT_KT;          /* [RMX] */
    float *ls = ms + RMX;
    float *as = ls + RMX;
    bf16 *Ks = (bf16 *)(as + RMX);         /* [KT][KP] */
    bf16 *Vs = Ks + ATT_KT * KP;           /* [KT][HD] */
    const int tile = blockIdx.x, kvh = blockIdx.y, sp = blockIdx.z;
    const int tok0 = tiles[tile * 4], cnt = tiles[tile * 4 + 1], pos0 = tiles[tile * 4 + 2];
    const int *btab = bt + tiles[tile * 4 + 3];
    if (cnt <= 0) return;
    const int nsplit = split[0], slen = split[1];
    if (sp >= nsplit) return;
    const int R = cnt * G;
    const int kbeg = sp * slen;
    const int kend = min(pos0 + cnt, kbeg + slen);
    const int tid = threadIdx.x;
    for (int i = tid; i < R * HD; i += ATT_THREADS) {
        const int r = i / HD, d = i % HD, t = r / G, g = r % G;
        Qs[i] = __bfloat162float(q[(size_t)(tok0 + t) * nh * HD + (kvh * G + g) * HD + d]) * scale;
    }
    for (int r = tid; r < RMX; r += ATT_THREADS) ms[r] = -INFINITY, ls[r] = 0.f, as[r] = 1.f;
    float acc[RPT];
#pragma unroll
    for (int k = 0; k < RPT; ++k) acc[k] = 0.f;
    const int d_own = tid % HD, rg = tid / HD;
    __syncthreads();
    for (int k0 = kbeg; k0 < kend; k0 += ATT_KT) {
        constexpr int NLD = ATT_KT * (HD / 8) / ATT_THREADS;
#pragma unroll
        for (int ci = 0; ci < NLD; ++ci) {
            const int c = tid + ci * ATT_THREADS;
            const int j = c / (HD / 8), d8 = (c % (HD / 8)) * 8, kp = k0 + j;
            uint4 k4 = make_uint4(0, 0, 0, 0), v4 = make_uint4(0, 0, 0, 0);
            if (kp < kend) {
                const size_t slot = (size_t)btab[kp / bs] * bs + kp % bs;
                const size_t off = (slot * nkv + kvh) * HD + d8;
                k4 = *(const uint4 *)(kc + off);
                v4 = *(const uint4 *)(vc + off);
            }
            uint32_t *kd = (uint32_t *)(Ks + j * KP + d8);
            kd[0] = k4.x, kd[1] = k4.y, kd[2] = k4.z, kd[3] = k4.w;
            *(uint4 *)(Vs + j * HD + d8) = v4;
        }
        __syncthreads();
        {
            const int j = tid % ATT_KT, kp = k0 + j;
            const bf162 *kr = (const bf162 *)(Ks + j * KP);
            for (int r = tid / ATT_KT; r < R; r += ATT_THREADS / ATT_KT) {
                float s = -INFINITY;
                if (kp < kend && kp <= pos0 + r / G) {
                    const float2 *qr = (const float2 *)(Qs + r * HD);
                    float a = 0.f;
#pragma unroll 8
                    for (int d2 = 0; d2 < HD / 2; ++d2) {
                        const float2 qq = qr[d2];
                        const float2 kk = __bfloat1622float2(kr[d2]);
                        a = fmaf(qq.x, kk.x, a);
                        a = fmaf(qq.y, kk.y, a);
                    }
                    s = a;
                }
                S[r * ATT_KT + j] = s;
            }
        }
        __syncthreads();
        {
            const int w = tid >> 5, lane = tid & 31;
            for (int r = w; r < R; r += ATT_THREADS / 32) {
                const float v0 = S[r * ATT_KT + lane], v1 = S[r * ATT_KT + lane + 32];
                const float mx = warp_max(fmaxf(v0, v1));
                const float mo = ms[r], mn = fmaxf(mo, mx);
                float p0 = 0.f, p1 = 0.f, alpha = 1.f;
                if (mn != -INFINITY) {
                    p0 = __expf(v0 - mn);
                    p1 = __expf(v1 - mn);
                    alpha = __expf(mo - mn);
                }
                S[r * ATT_KT + lane] = p0;
                S[r * ATT_KT + lane + 32] = p1;
                const float sum = warp_sum(p0 + p1);
                if (lane == 0) {
                    ms[r] = mn;
                    ls[r] = ls[r] * alpha + sum;
                    as[r] = alpha;
                }
            }
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < RPT; ++k) {
            const int r = rg + k * RS;
            if (r >= R) break;
            acc[k] *= as[r];
        }
        /* j stays rolled: a fully unrolled j x k nest (64 x 64 bodies) overflows the
         * instruction cache */
#pragma unroll 2
        for (int j = 0; j < ATT_KT; ++j) {
            const float v = __bfloat162float(Vs[j * HD + d_own]);
#pragma unroll
            for (int k = 0; k < RPT; ++k) {
                const int r = rg + k * RS;
                if (r >= R) break;
                acc[k] = fmaf(S[r * ATT_KT + j], v, acc[k]);
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int k = 0; k < RPT; ++k) {
        const int r = rg + k * RS;
        if (r >= R) continue;
        const int t = r / G, head = kvh * G + r % G;
        const float l = ls[r];
        const float o = l > 0.f ? acc[k] / l : 0.f;
        if (!use_part) {
            out[(size_t)(tok0 + t) * nh * HD + head * HD + d_own] = __float2bfloat16(o);
        } else {
            const size_t idx = ((size_t)(tok0 + t) * nh + head) * ATT_NSMAX + sp;
            po[idx * HD + d_own] = o;
            if (d_own == 0) pml[idx * 2] = ms[r], pml[idx * 2 + 1] = l;
        }
    }
}

/* Tensor-core flash attention for prefill / chunked prefill (mma.sync m16n8k16 bf16, f32
 * accumulate). Same block mapping and tile list format as k_attn: one block = one query tile
 * (cnt consecutive new tokens of one sequence, cnt * G <= FA_ROWS rows, row r = token r / G,
 * head kvh * G + r % G) x one KV head x one split. 4 warps of 16 rows each; keys stream through
 * shared memory in tiles of FA_KT (K and V, double-buffered with cp.async, rows looked up
 * through the block table); S = Q K^T and O += P V on the tensor cores, online softmax in
 * registers (base 2). Partials (use_part) are written in k_attn's format (max in natural units). */
#define FA_ROWS 64
#define FA_KT 64
#define FA_THREADS 128

static __host__ __device__ inline size_t fa_smem_bytes(int hd) {
    return (size_t)4 * FA_KT * (hd + 8) * sizeof(bf16);
}

__device__ __forceinline__ void fa_mma(float *c, const uint32_t *a, uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
                 "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t fa_pack(float lo, float hi) {
    bf162 v = __floats2bfloat162_rn(lo, hi);
    return *(uint32_t *)&v;
}

template <int HD, bool DEC>
__global__ void __launch_bounds__(FA_THREADS)
    k_fattn(const bf16 *__restrict__ q, const bf16 *__restrict__ kc, const bf16 *__restrict__ vc,
            bf16 *out, float *po, float *pml, const int *tiles, const int *bt, const int *split,
            int G, int nh, int nkv, int bs, float scale_log2, int use_part) {
    pdl_launch();
    pdl_wait();
    constexpr int KS = HD + 8; /* padded row (bf16): conflict-free fragment loads */
    constexpr int NK = HD / 16, NO = HD / 8;
    constexpr int KW = DEC ? FA_KT / 4 : FA_KT; /* keys of a tile per warp */
    constexpr int NS = KW / 8;
    extern __shared__ __align__(16) unsigned char fa_sm[];
    bf16 *Ks = (bf16 *)fa_sm; /* [2][FA_KT][KS] */
    bf16 *Vs = Ks + 2 * FA_KT * KS;
    const int tile = blockIdx.x, kvh = blockIdx.y, sp = blockIdx.z;
    const int tok0 = tiles[tile * 4], cnt = tiles[tile * 4 + 1], pos0 = tiles[tile * 4 + 2];
    const int *btab = bt + tiles[tile * 4 + 3];
    if (cnt <= 0) return;
    const int nsplit = split[0], slen = split[1];
    if (sp >= nsplit) return;
    const int R = cnt * G;
    const int kbeg = sp * slen;
    const int kend = min(pos0 + cnt, kbeg + slen);
    const int tid = threadIdx.x, w = tid >> 5, lane = tid & 31, g = lane >> 2, qd = lane & 3;
    const int rw = DEC ? 0 : w * 16, kw = DEC ? w * KW : 0;
    const int r0 = rw + g, r1 = r0 + 8;
    const int lim0 = r0 < R ? pos0 + r0 / G : -1, lim1 = r1 < R ? pos0 + r1 / G : -1;
    const int wlim = rw < R ? pos0 + min(R - 1, rw + 15) / G : -1; /* warp's last key */
    /* Q fragments (A operand), straight from global memory */
    uint32_t qa[NK][4];
    {
        const bf16 *q0 = r0 < R ? q + (size_t)(tok0 + r0 / G) * nh * HD + (kvh * G + r0 % G) * HD
                                : NULL;
        const bf16 *q1 = r1 < R ? q + (size_t)(tok0 + r1 / G) * nh * HD + (kvh * G + r1 % G) * HD
                                : NULL;
#pragma unroll
        for (int kk = 0; kk < NK; ++kk) {
            const int c = kk * 16 + 2 * qd;
            qa[kk][0] = q0 ? *(const uint32_t *)(q0 + c) : 0u;
            qa[kk][1] = q1 ? *(const uint32_t *)(q1 + c) : 0u;
            qa[kk][2] = q0 ? *(const uint32_t *)(q0 + c + 8) : 0u;
            qa[kk][3] = q1 ? *(const uint32_t *)(q1 + c + 8) : 0u;
        }
    }
    float o[NO][4];
#pragma unroll
    for (int n = 0; n < NO; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
    const int ntile = kend > kbeg ? (kend - kbeg + FA_KT - 1) / FA_KT : 0;
    auto load = [&](int buf, int k0) {
        constexpr int NLD = FA_KT * (HD / 8) / FA_THREADS;
#pragma unroll
        for (int ci = 0; ci < NLD; ++ci) {
            const int c = tid + ci * FA_THREADS;
            const int j = c / (HD / 8), d8 = (c % (HD / 8)) * 8, kp = k0 + j;
            size_t off = 0;
            int nbytes = 0;
            if (kp < kend) {
                const size_t slot = (size_t)btab[kp / bs] * bs + kp % bs;
                off = (slot * nkv + kvh) * HD + d8;
                nbytes = 16;
            }
            const unsigned ks = (unsigned)__cvta_generic_to_shared(Ks + (buf * FA_KT + j) * KS + d8);
            const unsigned vs = (unsigned)__cvta_generic_to_shared(Vs + (buf * FA_KT + j) * KS + d8);
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(ks), "l"(kc + off),
                         "r"(nbytes));
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(vs), "l"(vc + off),
                         "r"(nbytes));
        }
        asm volatile("cp.async.commit_group;\n" ::);
    };
    if (ntile > 0) load(0, kbeg);
    for (int it = 0; it < ntile; ++it) {
        const int k0 = kbeg + it * FA_KT, buf = it & 1;
        if (it + 1 < ntile) {
            load(buf ^ 1, k0 + FA_KT);
            asm volatile("cp.async.wait_group 1;\n" ::);
        } else {
            asm volatile("cp.async.wait_group 0;\n" ::);
        }
        __syncthreads();
        if (k0 + kw <= wlim) {
            const bf16 *Kb = Ks + buf * FA_KT * KS, *Vb = Vs + buf * FA_KT * KS;
            float s[NS][4];
#pragma unroll
            for (int n = 0; n < NS; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
            for (int kk = 0; kk < NK; ++kk) {
#pragma unroll
                for (int n = 0; n < NS; ++n) {
                    const bf16 *kr = Kb + (kw + n * 8 + g) * KS + kk * 16 + 2 * qd;
                    fa_mma(s[n], qa[kk], *(const uint32_t *)kr, *(const uint32_t *)(kr + 8));
                }
            }
            float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
            for (int n = 0; n < NS; ++n) {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int key = k0 + kw + n * 8 + 2 * qd + (e & 1);
                    const int lim = e < 2 ? lim0 : lim1;
                    const float v = (key <= lim && key < kend) ? s[n][e] * scale_log2 : -INFINITY;
                    s[n][e] = v;
                }
                mx0 = fmaxf(mx0, fmaxf(s[n][0], s[n][1]));
                mx1 = fmaxf(mx1, fmaxf(s[n][2], s[n][3]));
            }
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
            const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
            const float a0 = mn0 == -INFINITY ? 1.f : exp2f(m0 - mn0);
            const float a1 = mn1 == -INFINITY ? 1.f : exp2f(m1 - mn1);
            const float b0 = mn0 == -INFINITY ? 0.f : mn0, b1 = mn1 == -INFINITY ? 0.f : mn1;
            m0 = mn0, m1 = mn1;
            float ps0 = 0.f, ps1 = 0.f;
#pragma unroll
            for (int n = 0; n < NS; ++n) {
                s[n][0] = exp2f(s[n][0] - b0);
                s[n][1] = exp2f(s[n][1] - b0);
                s[n][2] = exp2f(s[n][2] - b1);
                s[n][3] = exp2f(s[n][3] - b1);
                ps0 += s[n][0] + s[n][1];
                ps1 += s[n][2] + s[n][3];
            }
            l0 = l0 * a0 + ps0;
            l1 = l1 * a1 + ps1;
#pragma unroll
            for (int n = 0; n < NO; ++n) o[n][0] *= a0, o[n][1] *= a0, o[n][2] *= a1, o[n][3] *= a1;
#pragma unroll
            for (int kk = 0; kk < KW / 16; ++kk) {
                uint32_t pa[4];
                pa[0] = fa_pack(s[2 * kk][0], s[2 * kk][1]);
                pa[1] = fa_pack(s[2 * kk][2], s[2 * kk][3]);
                pa[2] = fa_pack(s[2 * kk + 1][0], s[2 * kk + 1][1]);
                pa[3] = fa_pack(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
                for (int dn = 0; dn < HD / 16; ++dn) {
                    const bf16 *vr = Vb + (kw + kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * KS +
                                     dn * 16 + (lane >> 4) * 8;
                    const unsigned va = (unsigned)__cvta_generic_to_shared(vr);
                    uint32_t v0, v1, v2, v3;
                    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, "
                                 "[%4];\n"
                                 : "=r"(v0), "=r"(v1), "=r"(v2), "=r"(v3)
                                 : "r"(va));
                    fa_mma(o[2 * dn], pa, v0, v1);
                    fa_mma(o[2 * dn + 1], pa, v2, v3);
                }
            }
        }
        __syncthreads();
    }
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    if (DEC) {
        /* each warp covered a quarter of every key tile: combine the 4 partial (m, l, o) */
        float *red = (float *)fa_sm; /* [4][16][HD] (the tiles are no longer needed) */
        float *rml = red + 4 * 16 * HD;
#pragma unroll
        for (int n = 0; n < NO; ++n) {
            *(float2 *)(red + (w * 16 + g) * HD + n * 8 + 2 * qd) = make_float2(o[n][0], o[n][1]);
            *(float2 *)(red + (w * 16 + g + 8) * HD + n * 8 + 2 * qd) = make_float2(o[n][2], o[n][3]);
        }
        if (qd == 0) {
            rml[(w * 16 + g) * 2] = m0, rml[(w * 16 + g) * 2 + 1] = l0;
            rml[(w * 16 + g + 8) * 2] = m1, rml[(w * 16 + g + 8) * 2 + 1] = l1;
        }
        __syncthreads();
        for (int i = tid; i < R * HD; i += FA_THREADS) {
            const int r = i / HD, d = i % HD;
            float M = -INFINITY;
#pragma unroll
            for (int ww = 0; ww < 4; ++ww) M = fmaxf(M, rml[(ww * 16 + r) * 2]);
            float acc = 0.f, L = 0.f;
            if (M != -INFINITY) {
#pragma unroll
                for (int ww = 0; ww < 4; ++ww) {
                    const float f = exp2f(rml[(ww * 16 + r) * 2] - M);
                    acc += f * red[(ww * 16 + r) * HD + d];
                    L += f * rml[(ww * 16 + r) * 2 + 1];
                }
            }
            const float ov = L > 0.f ? acc / L : 0.f;
            const int t = r / G, head = kvh * G + r % G;
            if (!use_part) {
                out[(size_t)(tok0 + t) * nh * HD + head * HD + d] = __float2bfloat16(ov);
            } else {
                const size_t idx = ((size_t)(tok0 + t) * nh + head) * ATT_NSMAX + sp;
                po[idx * HD + d] = ov;
                if (d == 0) pml[idx * 2] = M * 0.69314718f, pml[idx * 2 + 1] = L;
            }
        }
        return;
    }
    const float i0 = l0 > 0.f ? 1.f / l0 : 0.f, i1 = l1 > 0.f ? 1.f / l1 : 0.f;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int r = h ? r1 : r0;
        if (r >= R) continue;
        const float inv = h ? i1 : i0;
        const int t = r / G, head = kvh * G + r % G;
        if (!use_part) {
            bf16 *orow = out + (size_t)(tok0 + t) * nh * HD + head * HD;
#pragma unroll
            for (int n = 0; n < NO; ++n)
                *(bf162 *)(orow + n * 8 + 2 * qd) =
                    __floats2bfloat162_rn(o[n][2 * h] * inv, o[n][2 * h + 1] * inv);
        } else {
            const size_t idx = ((size_t)(tok0 + t) * nh + head) * ATT_NSMAX + sp;
            float *prow = po + idx * HD;
#pragma unroll
            for (int n = 0; n < NO; ++n)
                *(float2 *)(prow + n * 8 + 2 * qd) =
                    make_float2(o[n][2 * h] * inv, o[n][2 * h + 1] * inv);
            if (qd == 0) {
                const float mm = h ? m1 : m0, ll = h ? l1 : l0;
                pml[idx * 2] = mm * 0.69314718f; /* back to natural-log units */
                pml[idx * 2 + 1] = ll;
            }
        }
    }
}

/* Combine split partials. grid = (T, nh), block = HD. */
template <int HD>
__global__ void k_attn_reduce(const float *po, const float *pml, const int *split, bf16 *out, int nh) {
    pdl_launch();
    pdl_wait();
    const int t = blockIdx.x, head = blockIdx.y, d = threadIdx.x;
    const int ns = split[0];
    const size_t base = ((size_t)t * nh + head) * ATT_NSMAX;
    float M = -INFINITY;
    for (int s = 0; s < ns; ++s)
        if (pml[(base + s) * 2 + 1] > 0.f) M = fmaxf(M, pml[(base + s) * 2]);
    float num = 0.f, den = 0.f;
    if (M != -INFINITY) {
        for (int s = 0; s < ns; ++s) {
            const float l = pml[(base + s) * 2 + 1];
            if (!(l > 0.f)) continue;
            const float wgt = l * __expf(pml[(base + s) * 2] - M);
            num += wgt * po[(base + s) * HD + d];
            den += wgt;
        }
    }
    out[(size_t)t * nh * HD + head * HD + d] = __float2bfloat16(den > 0.f ? num / den : 0.f);
}

/* act[t][i] = silu(gu[t][i]) * gu[t][ffn + i]. grid covers T*ffn/2 pairs. */
__global__ void k_swiglu(const bf16 *gu, bf16 *act, int T, int ffn) {
    pdl_launch();
    pdl_wait();
    const size_t n2 = (size_t)T * ffn / 2;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n2; i += (size_t)gridDim.x * blockDim.x) {
        const size_t e = i * 2, t = e / ffn, c = e % ffn;
        const float2 g = __bfloat1622float2(*(const bf162 *)(gu + t * 2 * ffn + c));
        const float2 u = __bfloat1622float2(*(const bf162 *)(gu + t * 2 * ffn + ffn + c));
        const float a = g.x / (1.f + __expf(-g.x)) * u.x, b = g.y / (1.f + __expf(-g.y)) * u.y;
        *(bf162 *)(act + e) = __floats2bfloat162_rn(a, b);
    }
}

__device__ __forceinline__ void dot8(float &acc, const uint4 a, const uint4 b) {
    const bf162 *x = (const bf162 *)&a, *y = (const bf162 *)&b;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const float2 p = __bfloat1622float2(x[i]), q2 = __bfloat1622float2(y[i]);
        acc = fmaf(p.x, q2.x, acc);
        acc = fmaf(p.y, q2.y, acc);
    }
}

/* Skinny GEMM for M <= 8 tokens: Y[M][N] = X[M][K] * W[N][K]^T. One block of GEMV_WARPS warps
 * computes RW output rows; all its threads stride over K with U 16-byte streaming loads of W per
 * row in flight before use, then the warps' partial sums meet in shared memory. K % 8 == 0. */
#define GEMV_WARPS 4
template <int M, int RW, bool F32OUT>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
    k_gemv(const bf16 *__restrict__ X, const bf16 *__restrict__ W, void *Y, int N, int K) {
    constexpr int U = 8 / RW;
    constexpr int NT = GEMV_WARPS * 32;
    __shared__ float red[GEMV_WARPS][RW * M];
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int n0 = blockIdx.x * RW;
    const int K8 = K / 8;
    const uint4 *x = (const uint4 *)X;
    const uint4 *w[RW];
#pragma unroll
    for (int r = 0; r < RW; ++r) w[r] = (const uint4 *)(W + (size_t)(n0 + r < N ? n0 + r : n0) * K);
    float acc[RW][M];
#pragma unroll
    for (int r = 0; r < RW; ++r)
#pragma unroll
        for (int m = 0; m < M; ++m) acc[r][m] = 0.f;
    /* the first weight tiles are loaded before waiting for the previous kernel (PDL): weights do
     * not depend on it, so their fetch overlaps its tail */
    uint4 wv[U][RW];
    pdl_launch();
#pragma unroll
    for (int u = 0; u < U; ++u) {
        const int k = tid + u * NT;
#pragma unroll
        for (int r = 0; r < RW; ++r) wv[u][r] = k < K8 ? __ldcs(w[r] + k) : make_uint4(0, 0, 0, 0);
    }
    pdl_wait();
    for (int k0 = tid; k0 < K8; k0 += NT * U) {
        if (k0 != tid) {
#pragma unroll
            for (int u = 0; u < U; ++u) {
                const int k = k0 + u * NT;
#pragma unroll
                for (int r = 0; r < RW; ++r)
                    wv[u][r] = k < K8 ? __ldcs(w[r] + k) : make_uint4(0, 0, 0, 0);
            }
        }
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int k = k0 + u * NT;
            if (k >= K8) break;
#pragma unroll
            for (int m = 0; m < M; ++m) {
                const uint4 xv = __ldg(x + (size_t)m * K8 + k);
#pragma unroll
                for (int r = 0; r < RW; ++r) dot8(acc[r][m], wv[u][r], xv);
            }
        }
    }
#pragma unroll
    for (int r = 0; r < RW; ++r)
#pragma unroll
        for (int m = 0; m < M; ++m) {
            const float sres = warp_sum(acc[r][m]);
            if (lane == 0) red[warp][r * M + m] = sres;
        }
    __syncthreads();
    for (int i = tid; i < RW * M; i += NT) {
        const int r = i / M, m = i % M, n = n0 + r;
        if (n >= N) continue;
        float sres = 0.f;
#pragma unroll
        for (int wi = 0; wi < GEMV_WARPS; ++wi) sres += red[wi][i];
        if (F32OUT)
            ((float *)Y)[(size_t)m * N + n] = sres;
        else
            ((bf16 *)Y)[(size_t)m * N + n] = __float2bfloat16(sres);
    }
}

/* ---------------- sampling: one block of 1024 threads per logits row ---------------- */
#define SAMPLE_THREADS 512

/* Apply f(value, index) to every logit of a row: float4 loads when V % 4 == 0. */
template <typename F>
__device__ __forceinline__ void row_foreach(const float *lg, int V, F f) {
    if ((V & 3) == 0) {
        const float4 *l4 = (const float4 *)lg;
        const int V4 = V >> 2;
#pragma unroll 4
        for (int i = threadIdx.x; i < V4; i += blockDim.x) {
            const float4 q = l4[i];
            f(q.x, 4 * i), f(q.y, 4 * i + 1), f(q.z, 4 * i + 2), f(q.w, 4 * i + 3);
        }
    } else {
        for (int i = threadIdx.x; i < V; i += blockDim.x) f(lg[i], i);
    }
}

__device__ float count_ge(const float *lg, int V, float m, float invT, float tau, float *red) {
    float c = 0.f;
    row_foreach(lg, V, [&](float x, int) { c += ((x - m) * invT >= tau) ? 1.f : 0.f; });
    return block_sum(c, red);
}
__device__ float mass_ge(const float *lg, int V, float m, float invT, float tau, float *red) {
    float c = 0.f;
    row_foreach(lg, V, [&](float x, int) {
        const float z = (x - m) * invT;
        if (z >= tau) c += __expf(z);
    });
    return block_sum(c, red);
}
#define SAMPLE_BISECT 28

/* ---- exact top-k without bisection (the fast path of k_sample for 0 < top_k <= blockDim.x) --
 * Every thread already knows the maximum of the logits it visited in the max/log-sum-exp pass.
 * The k-th largest of those per-thread maxima is a lower bound of the row's k-th largest value
 * (k maxima are >= it), so one more pass gathers every logit >= it - normally a few dozen - into
 * shared memory; sorted there, they give the exact k-th value, and the top-k set with its ties
 * (transformers' top-k keeps ties). Top-p, min-p and the draw then work on those values instead
 * of bisecting over the whole vocabulary (2 x 28 passes). */
#define SAMPLE_CAND 1024

__device__ __forceinline__ unsigned sample_key(float x) {
    const unsigned b = __float_as_uint(x);
    if (x != x) return 0u; /* NaN sorts below everything */
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

typedef struct sample_smem {
    unsigned long long cand[SAMPLE_CAND];
    float ez[SAMPLE_CAND];
    int ncand, pick;
} sample_smem;

/* In-place bitonic sort of n (a power of two <= SAMPLE_CAND) keys, descending or ascending. */
__device__ void sample_bitonic(unsigned long long *a, int n, bool desc) {
    for (int size = 2; size <= n; size <<= 1)
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            __syncthreads();
            for (int i = threadIdx.x; i < n; i += blockDim.x) {
                const int j = i ^ stride;
                if (j <= i) continue;
                const bool d = ((i & size) == 0) == desc;
                const unsigned long long x = a[i], y = a[j];
                if (d ? x < y : x > y) a[i] = y, a[j] = x;
            }
        }
    __syncthreads();
}

/* Returns false (block-uniformly) when the candidates do not fit in SAMPLE_CAND (e.g. huge ties
 * or a flat row): the caller then takes the bisection path. Otherwise *token is the draw.
 * `tmax` is this thread's maximum over the logits it visited in the max pass. */
__device__ bool sample_topk_fast(const float *lg, int V, float m, float invT, const rc_sp &p,
                                 float tmax, sample_smem &S, int *token) {
    const int tid = threadIdx.x, nt = blockDim.x; /* nt: a power of two >= top_k */
    __syncthreads();
    S.cand[tid] = ((unsigned long long)sample_key(tmax) << 32) | (unsigned)tid;
    sample_bitonic(S.cand, nt, true);
    const unsigned bound = (unsigned)(S.cand[p.top_k - 1] >> 32);
    __syncthreads();
    if (tid == 0) S.ncand = 0;
    __syncthreads();
    row_foreach(lg, V, [&](float x, int i) {
        const unsigned key = sample_key(x);
        if (key >= bound) {
            const int pos = atomicAdd(&S.ncand, 1);
            if (pos < SAMPLE_CAND)
                S.cand[pos] = ((unsigned long long)key << 32) | (0xffffffffu - (unsigned)i);
        }
    });
    __syncthreads();
    const int ng = S.ncand;
    if (ng > SAMPLE_CAND || ng < p.top_k) return false;
    int n2 = 1;
    while (n2 < ng) n2 <<= 1;
    for (int i = ng + tid; i < n2; i += nt) S.cand[i] = 0ull;
    /* descending by value, ascending index among equal values */
    sample_bitonic(S.cand, n2, true);
    /* the exact k-th largest value, and every logit tied with it */
    int nc = p.top_k;
    const unsigned long long kth = S.cand[p.top_k - 1] >> 32;
    while (nc < ng && (S.cand[nc] >> 32) == kth) ++nc;
    for (int i = tid; i < nc; i += blockDim.x) {
        const int idx = (int)(0xffffffffu - (unsigned)(S.cand[i] & 0xffffffffu));
        S.ez[i] = __expf((lg[idx] - m) * invT);
    }
    __syncthreads();
    if (tid == 0) {
        /* top-p over the top-k mass: the shortest prefix whose mass reaches top_p of it, with
         * every value tied to its last element; then min-p relative to the largest */
        int keep = nc;
        if (p.top_p > 0.f && p.top_p < 1.f) {
            float tot = 0.f;
            for (int i = 0; i < nc; ++i) tot += S.ez[i];
            const float target = p.top_p * tot;
            float acc = 0.f;
            int j = nc - 1;
            for (int i = 0; i < nc; ++i) {
                acc += S.ez[i];
                if (acc >= target) {
                    j = i;
                    break;
                }
            }
            while (j + 1 < nc && (S.cand[j + 1] >> 32) == (S.cand[j] >> 32)) ++j;
            keep = j + 1;
        }
        if (p.min_p > 0.f && p.min_p <= 1.f) {
            const float lm = logf(p.min_p);
            int k = 0;
            while (k < keep) {
                const int idx = (int)(0xffffffffu - (unsigned)(S.cand[k] & 0xffffffffu));
                if ((lg[idx] - m) * invT < lm) break;
                ++k;
            }
            keep = k > 0 ? k : 1;
        }
        S.ncand = keep;
        /* re-key the kept entries by index (ascending) for the draw in index order */
        for (int i = 0; i < keep; ++i) {
            const unsigned idx = 0xffffffffu - (unsigned)(S.cand[i] & 0xffffffffu);
            S.cand[i] = ((unsigned long long)idx << 32) | __float_as_uint(S.ez[i]);
        }
    }
    __syncthreads();
    const int keep = S.ncand;
    int k2 = 1;
    while (k2 < keep) k2 <<= 1;
    for (int i = keep + tid; i < k2; i += blockDim.x) S.cand[i] = ~0ull;
    sample_bitonic(S.cand, k2, false);
    if (tid == 0) {
        float tot = 0.f;
        for (int i = 0; i < keep; ++i) tot += __uint_as_float((unsigned)(S.cand[i] & 0xffffffffu));
        const float target = p.u * tot;
        float acc = 0.f;
        int pick = (int)(S.cand[keep - 1] >> 32);
        for (int i = 0; i < keep; ++i) {
            acc += __uint_as_float((unsigned)(S.cand[i] & 0xffffffffu));
            if (target < acc) {
                pick = (int)(S.cand[i] >> 32);
                break;
            }
        }
        S.pick = pick;
    }
    __syncthreads();
    *token = S.pick;
    return true;
}

__global__ void __launch_bounds__(SAMPLE_THREADS)
    k_sample(float *logits, int V, const rc_sp *sps, const int *hist, ragd_sample_out *outs,
             int fast) {
    __shared__ float red[33];
    __shared__ int redi[33];
    __shared__ float chunk_mass[SAMPLE_THREADS];
    __shared__ int found;
    __shared__ sample_smem fs;
    pdl_launch();
    pdl_wait();
    const int row = blockIdx.x, tid = threadIdx.x;
    float *lg = logits + (size_t)row * V;
    const rc_sp p = sps[row];
    if ((p.rep != 1.f || p.pres != 0.f || p.freq != 0.f) && p.hist_len > 0) {
        const int *hs = hist + p.hist_off;
        for (int i = tid; i < p.hist_len; i += blockDim.x) {
            const int id = hs[i];
            if (id < 0 || id >= V) continue;
            bool first = true;
            for (int j = 0; j < i && first; ++j) first = hs[j] != id;
            if (!first) continue;
            int cnt = 0;
            for (int j = p.n_prompt > 0 ? p.n_prompt : 0; j < p.hist_len; ++j) cnt += hs[j] == id;
            float x = lg[id];
            if (p.rep != 1.f && p.rep > 0.f) x = x > 0.f ? x / p.rep : x * p.rep;
            x -= (cnt > 0 ? p.pres : 0.f) + p.freq * (float)cnt;
            lg[id] = x;
        }
        __syncthreads();
    }
    /* max, argmax and log-sum-exp in one pass (online rescaling) */
    float bv = -INFINITY, se = 0.f;
    int bi = 0x7fffffff;
    row_foreach(lg, V, [&](float x, int i) {
        if (x == -INFINITY) return;
        if (x > bv) {
            se = se * __expf(bv - x) + 1.f;
            bv = x, bi = i;
        } else {
            se += __expf(x - bv);
        }
    });
    const int amax = block_argmax(bv, bi, red, redi);
    const float m = lg[amax];
    const float lse = m + logf(block_sum(bv == -INFINITY ? 0.f : se * __expf(bv - m), red));
    int token = amax;
    if (p.temp > 0.f && fast && p.top_k > 0 && p.top_k < V && p.top_k <= (int)blockDim.x &&
        sample_topk_fast(lg, V, m, 1.f / p.temp, p, bv, fs, &token)) {
        /* drawn by the exact top-k path */
    } else if (p.temp > 0.f) {
        const float invT = 1.f / p.temp;
        float tau = -INFINITY;
        if (p.top_k > 0 && p.top_k < V) {
            if (count_ge(lg, V, m, invT, 0.f, red) >= (float)p.top_k) {
                tau = 0.f;
            } else {
                float mn = INFINITY;
                row_foreach(lg, V, [&](float x, int) { mn = fminf(mn, (x - m) * invT); });
                float lo = -block_max(-mn, red);
                float hi = 0.f;
                for (int it = 0; it < SAMPLE_BISECT; ++it) {
                    const float mid = 0.5f * (lo + hi);
                    if (count_ge(lg, V, m, invT, mid, red) >= (float)p.top_k)
                        lo = mid;
                    else
                        hi = mid;
                }
                tau = lo;
            }
        }
        if (p.top_p > 0.f && p.top_p < 1.f) {
            float lo = tau;
            if (lo == -INFINITY) {
                float mn = INFINITY;
                row_foreach(lg, V, [&](float x, int) { mn = fminf(mn, (x - m) * invT); });
                lo = -block_max(-mn, red);
            }
            const float target = p.top_p * mass_ge(lg, V, m, invT, lo, red);
            if (mass_ge(lg, V, m, invT, 0.f, red) >= target) {
                lo = 0.f;
            } else {
                float hi = 0.f;
                for (int it = 0; it < SAMPLE_BISECT; ++it) {
                    const float mid = 0.5f * (lo + hi);
                    if (mass_ge(lg, V, m, invT, mid, red) >= target)
                        lo = mid;
                    else
                        hi = mid;
                }
            }
            tau = fmaxf(tau, lo);
        }
        if (p.min_p > 0.f && p.min_p <= 1.f) tau = fmaxf(tau, logf(p.min_p));
        /* inverse CDF over the kept set, in index order */
        const int C = (V + blockDim.x - 1) / blockDim.x;
        const int b0 = tid * C, b1 = min(V, b0 + C);
        float own = 0.f;
        for (int i = b0; i < b1; ++i) {
            const float z = (lg[i] - m) * invT;
            if (z >= tau) own += __expf(z);
        }
        chunk_mass[tid] = own;
        if (tid == 0) found = -1;
        __syncthreads();
        if (tid == 0) {
            float tot = 0.f;
            for (int i = 0; i < (int)blockDim.x; ++i) {
                const float c = chunk_mass[i];
                chunk_mass[i] = tot;
                tot += c;
            }
            red[0] = tot;
        }
        __syncthreads();
        const float target = p.u * red[0];
        const float start = chunk_mass[tid];
        if (own > 0.f && target >= start && target < start + own) {
            float acc = start;
            int pick = -1, last = -1;
            for (int i = b0; i < b1; ++i) {
                const float z = (lg[i] - m) * invT;
                if (z < tau) continue;
                last = i;
                acc += __expf(z);
                if (target < acc) {
                    pick = i;
                    break;
                }
            }
            found = pick >= 0 ? pick : last;
        }
        __syncthreads();
        if (found >= 0) token = found;
    }
    __syncthreads();
    ragd_sample_out *o = outs + row;
    if (tid == 0) {
        o->token = token;
        o->logprob = lg[token] - lse;
        o->n_top = 0;
    }
    const int nlp = p.nlp < RAGD_MAX_TOP_LOGPROBS ? p.nlp : RAGD_MAX_TOP_LOGPROBS;
    for (int k = 0; k < nlp; ++k) {
        float v = -INFINITY;
        int idx = 0x7fffffff;
        for (int i = tid; i < V; i += blockDim.x) {
            const float x = lg[i];
            if (x > v) v = x, idx = i;
        }
        const int best = block_argmax(v, idx, red, redi);
        if (tid == 0) {
            o->top_ids[k] = best;
            o->top_logprobs[k] = lg[best] - lse;
            o->n_top = k + 1;
            lg[best] = -INFINITY;
        }
        __syncthreads();
    }
}

#endif
