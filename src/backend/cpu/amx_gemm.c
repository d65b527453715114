/* amx_gemm.c - bf16 AMX GEMM (see amx_gemm.h). Tiles: 4 accumulators (a 32 x 32 block of C),
 * 2 A tiles (16 rows x 32 bf16) and 2 B tiles (16 k-pairs x 16 columns x 2) per K step. */
#include "backend/cpu/amx_gemm.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "backend/cpu/vmath.h"
#include "model/dtype.h"

#if defined(__x86_64__) && defined(__GNUC__) && (__GNUC__ >= 11)
#define RAGD_AMX_BUILD 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define RAGD_AMX_BUILD 0
#endif

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA  18

static pthread_once_t amx_once = PTHREAD_ONCE_INIT;
static bool amx_ok;

static void amx_probe(void) {
#if RAGD_AMX_BUILD
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return;
    const bool amx_bf16 = (d >> 22) & 1, amx_tile = (d >> 24) & 1;
    if (!amx_bf16 || !amx_tile) return;
    /* avx512_bf16 (the A conversion): leaf 7 sub-leaf 1, eax bit 5 */
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d) || !((a >> 5) & 1)) return;
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0) return;
    amx_ok = true;
#endif
}

bool ragd_amx_available(void) {
    pthread_once(&amx_once, amx_probe);
    return amx_ok;
}

int ragd_amx_pack(const float *W, int N, int K, ragd_amx_weight *out) {
    memset(out, 0, sizeof *out);
    if (N <= 0 || K <= 0 || N % 32 || K % 32) return -1;
    const int KB = K / 32;
    uint16_t *p = aligned_alloc(64, (size_t)N * K * sizeof(uint16_t));
    if (!p) return -1;
    for (int nb = 0; nb < N / 16; nb++)
        for (int kb = 0; kb < KB; kb++) {
            uint16_t *t = p + ((size_t)nb * KB + kb) * 512;
            for (int r = 0; r < 16; r++)
                for (int n = 0; n < 16; n++) {
                    const float *w = W + (size_t)(nb * 16 + n) * K + kb * 32 + 2 * r;
                    t[r * 32 + n * 2] = ragd_f32_to_bf16(w[0]);
                    t[r * 32 + n * 2 + 1] = ragd_f32_to_bf16(w[1]);
                }
        }
    out->N = N;
    out->K = K;
    out->packed = p;
    out->owned = true;
    return 0;
}

void ragd_amx_free(ragd_amx_weight *w) {
    if (w->owned) free(w->packed);
    memset(w, 0, sizeof *w);
}

ragd_amx_weight ragd_amx_rows(const ragd_amx_weight *w, int n0, int n) {
    ragd_amx_weight v = {.N = n, .K = w->K, .owned = false};
    v.packed = w->packed ? w->packed + (size_t)(n0 / 16) * (w->K / 32) * 512 : NULL;
    return v;
}

size_t ragd_amx_scratch_bytes(int M, int K) {
    size_t mp = ((size_t)M + 31) / 32 * 32;
    return mp * (size_t)K * sizeof(uint16_t) + 64;
}

#if RAGD_AMX_BUILD

typedef struct __attribute__((packed)) tilecfg {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tilecfg;

typedef struct amx_ctx {
    int M, Mp, N, K, lda, ldc, n_chunk, n_chunks, inner;
    const float *A;
    uint16_t *Ab;
    const ragd_amx_weight *W;
    float *C;
    const float *bias;
    bool gelu, acc;
    uint16_t *Cb;
    ragd_amx_rows_fn rows_fn;
    void *rows_ctx;
} amx_ctx;

/* A (f32) -> Ab (bf16, round to nearest even), rows >= M zero; 32 rows per task. */
__attribute__((target("avx512f,avx512bf16"))) static void task_convert(void *vctx, size_t i,
                                                                       int tid) {
    amx_ctx *x = vctx;
    for (int r = (int)i * 32; r < (int)i * 32 + 32; r++) {
        uint16_t *dst = x->Ab + (size_t)r * x->K;
        if (r >= x->M) {
            memset(dst, 0, (size_t)x->K * sizeof(uint16_t));
            continue;
        }
        const float *src = x->A + (size_t)r * x->lda;
        for (int k = 0; k < x->K; k += 32) {
            __m512 lo = _mm512_loadu_ps(src + k), hi = _mm512_loadu_ps(src + k + 16);
            __m512bh v = _mm512_cvtne2ps_pbh(hi, lo);
            _mm512_storeu_si512((void *)(dst + k), (__m512i)v);
        }
    }
}

/* A finished 32 x 32 block of C waiting in tmp for its epilogue. */
typedef struct pending {
    float tmp[32 * 32] __attribute__((aligned(64)));
    int m0, n0, rows, done; /* rows valid (< 32 at the bottom edge), rows done */
    bool active;
} pending;

/* Epilogue rows [p->done, upto) of a pending block: + bias, GELU, store f32 or bf16. */
__attribute__((target("avx512f,avx512vl,avx512bf16"), always_inline)) static inline void
epilogue(const amx_ctx *x, pending *p, int upto) {
    if (upto > p->rows) upto = p->rows;
    if (p->done >= upto) return;
    const __m512 bias0 = x->bias ? _mm512_loadu_ps(x->bias + p->n0) : _mm512_setzero_ps();
    const __m512 bias1 = x->bias ? _mm512_loadu_ps(x->bias + p->n0 + 16) : _mm512_setzero_ps();
    for (int r = p->done; r < upto; r++) {
        /* the same arithmetic as ragd_bias_gelu / ragd_add_bias */
        __m512 lo = _mm512_load_ps(p->tmp + r * 32), hi = _mm512_load_ps(p->tmp + r * 32 + 16);
        if (x->bias || x->gelu) {
            lo = _mm512_add_ps(lo, bias0);
            hi = _mm512_add_ps(hi, bias1);
        }
        if (x->gelu) {
            lo = ragd_gelu16(lo);
            hi = ragd_gelu16(hi);
        }
        if (x->Cb) {
            __m512bh v = _mm512_cvtne2ps_pbh(hi, lo);
            _mm512_storeu_si512((void *)(x->Cb + (size_t)(p->m0 + r) * x->N + p->n0), (__m512i)v);
        } else {
            float *c = x->C + (size_t)(p->m0 + r) * x->ldc + p->n0;
            _mm512_storeu_ps(c, lo);
            _mm512_storeu_ps(c + 16, hi);
        }
    }
    p->done = upto;
}

/* Rows of 32 per A block; a task takes up to GEMM_GROUP blocks so that each 32-column panel
 * of W, once in L1, serves all of them. */
#define GEMM_GROUP 4

/* One task: row blocks [g * GEMM_GROUP, ...) x one chunk of columns. Per 32 x 32 block of C:
 * 4 accumulator tiles over the K loop; the epilogue of the previous block (held in a
 * pending buffer) runs a few rows per K step, interleaved with this block's tile products,
 * so the vector units work while the tile unit multiplies. */
__attribute__((target("amx-tile,amx-bf16,avx512f,avx512vl,avx512bf16"))) static void
task_gemm(void *vctx, size_t i, int tid) {
    amx_ctx *x = vctx;
    const int g = (int)i / x->n_chunks, nc = (int)i % x->n_chunks;
    const int mblocks = x->Mp / 32;
    const int mb0 = g * GEMM_GROUP, mb1 = mb0 + GEMM_GROUP < mblocks ? mb0 + GEMM_GROUP : mblocks;
    const int KB = x->K / 32;
    const int n_begin = nc * x->n_chunk;
    int n_end = n_begin + x->n_chunk;
    if (n_end > x->N) n_end = x->N;
    tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    _tile_loadconfig(&cfg);
    const size_t astride = (size_t)x->K * sizeof(uint16_t);
    const bool epi = x->bias || x->gelu || x->Cb;
    /* rows of the pending epilogue to do per K step (all of them by the end of the loop) */
    const int per_step = (32 + KB - 1) / KB;
    pending pend[2];
    pend[0].active = pend[1].active = false;
    int cur = 0;
    for (int c0 = n_begin; c0 < n_end; c0 += x->inner) {
        const int c1 = c0 + x->inner < n_end ? c0 + x->inner : n_end;
        for (int mb = mb0; mb < mb1; mb++) {
            for (int n0 = c0; n0 < c1; n0 += 32) {
                const uint16_t *b0 = x->W->packed + (size_t)(n0 / 16) * KB * 512;
                const uint16_t *b1 = b0 + (size_t)KB * 512;
                const int m0 = mb * 32;
                const uint16_t *a0 = x->Ab + (size_t)m0 * x->K, *a1 = a0 + (size_t)16 * x->K;
                pending *prev = &pend[cur ^ 1];
                if (!x->acc) {
                    _tile_zero(0);
                    _tile_zero(1);
                    _tile_zero(2);
                    _tile_zero(3);
                } else {
                    /* start from C; a ragged bottom block goes through the (free) buffer */
                    const float *c = x->C + (size_t)m0 * x->ldc + n0;
                    size_t cs = (size_t)x->ldc * sizeof(float);
                    if (m0 + 32 > x->M) {
                        float *t = pend[cur].tmp;
                        for (int r = 0; r < 32; r++)
                            if (m0 + r < x->M)
                                memcpy(t + r * 32, c + (size_t)r * x->ldc, 32 * sizeof(float));
                            else
                                memset(t + r * 32, 0, 32 * sizeof(float));
                        c = t;
                        cs = 128;
                    }
                    _tile_loadd(0, c, cs);
                    _tile_loadd(1, c + 16, cs);
                    _tile_loadd(2, (const char *)c + 16 * cs, cs);
                    _tile_loadd(3, (const char *)c + 16 * cs + 64, cs);
                }
                int upto = 0;
                for (int kb = 0; kb < KB; kb++) {
                    _tile_loadd(4, a0 + kb * 32, astride);
                    _tile_loadd(6, b0 + (size_t)kb * 512, 64);
                    _tile_dpbf16ps(0, 4, 6);
                    _tile_loadd(7, b1 + (size_t)kb * 512, 64);
                    _tile_dpbf16ps(1, 4, 7);
                    _tile_loadd(5, a1 + kb * 32, astride);
                    _tile_dpbf16ps(2, 5, 6);
                    _tile_dpbf16ps(3, 5, 7);
                    if (prev->active) epilogue(x, prev, upto += per_step);
                }
                prev->active = false;
                const bool full = m0 + 32 <= x->M;
                if (full && !epi) {
                    float *c = x->C + (size_t)m0 * x->ldc + n0;
                    const size_t cs = (size_t)x->ldc * sizeof(float);
                    _tile_stored(0, c, cs);
                    _tile_stored(1, c + 16, cs);
                    _tile_stored(2, c + (size_t)16 * x->ldc, cs);
                    _tile_stored(3, c + (size_t)16 * x->ldc + 16, cs);
                    continue;
                }
                pending *p = &pend[cur];
                _tile_stored(0, p->tmp, 128);
                _tile_stored(1, p->tmp + 16, 128);
                _tile_stored(2, p->tmp + 16 * 32, 128);
                _tile_stored(3, p->tmp + 16 * 32 + 16, 128);
                p->m0 = m0;
                p->n0 = n0;
                p->rows = x->M - m0 < 32 ? x->M - m0 : 32;
                p->done = 0;
                p->active = true;
                if (x->Cb)
                    for (int r = p->rows; r < 32; r++)
                        memset(x->Cb + (size_t)(m0 + r) * x->N + n0, 0, 32 * sizeof(uint16_t));
                cur ^= 1;
            }
        }
    }
    for (int k = 0; k < 2; k++)
        if (pend[k].active) epilogue(x, &pend[k], 32);
    _tile_release();
    if (x->rows_fn && x->n_chunks == 1)
        for (int mb = mb0; mb < mb1; mb++)
            x->rows_fn(x->rows_ctx, mb * 32, mb * 32 + 32 <= x->M ? 32 : x->M - mb * 32);
}

static void task_rows(void *vctx, size_t i, int tid) {
    amx_ctx *x = vctx;
    const int m0 = (int)i * 32;
    x->rows_fn(x->rows_ctx, m0, m0 + 32 <= x->M ? 32 : x->M - m0);
}

void ragd_amx_gemm_ex(ragd_pool *pool, int M, const float *A, int lda, const uint16_t *Ab,
                      const ragd_amx_weight *W, const float *bias, unsigned flags, float *C,
                      int ldc, uint16_t *Cb, ragd_amx_rows_fn rows_fn, void *rows_ctx,
                      void *scratch) {
    if (M <= 0) return;
    amx_ctx x = {.M = M,
                 .Mp = (M + 31) / 32 * 32,
                 .N = W->N,
                 .K = W->K,
                 .lda = lda,
                 .ldc = ldc,
                 .A = A,
                 .W = W,
                 .C = C,
                 .bias = bias,
                 .gelu = (flags & RAGD_AMX_GELU) != 0,
                 .acc = (flags & RAGD_AMX_ACC) != 0 && !Cb,
                 .Cb = Cb,
                 .rows_fn = rows_fn,
                 .rows_ctx = rows_ctx};
    if (Ab) {
        x.Ab = (uint16_t *)Ab;
    } else {
        x.Ab = (uint16_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
        ragd_pool_run(pool, (size_t)x.Mp / 32, task_convert, &x);
    }
    /* tasks: GEMM_GROUP row blocks of 32 x n_chunk columns; enough tasks for the threads
     * (at least 2 each), chunks of >= 128 columns */
    const int mblocks = x.Mp / 32, groups = (mblocks + GEMM_GROUP - 1) / GEMM_GROUP;
    const int threads = pool ? ragd_pool_size(pool) : 1;
    int chunk = x.N;
    while (chunk > 128 && groups * (x.N / chunk) < threads * 2) chunk /= 2;
    chunk = (chunk + 31) / 32 * 32;
    x.n_chunk = chunk;
    x.n_chunks = (x.N + chunk - 1) / chunk;
    /* inside a task, columns go in slices of ~256 KB of W (L2-resident while the task's
     * row blocks pass over them) */
    const int inner = 256 * 1024 / (x.K * 2) / 32 * 32;
    x.inner = inner < 32 ? 32 : inner;
    ragd_pool_run(pool, (size_t)groups * x.n_chunks, task_gemm, &x);
    if (rows_fn && x.n_chunks > 1) ragd_pool_run(pool, (size_t)((M + 31) / 32), task_rows, &x);
}

#else

void ragd_amx_gemm_ex(ragd_pool *pool, int M, const float *A, int lda, const uint16_t *Ab,
                      const ragd_amx_weight *W, const float *bias, unsigned flags, float *C,
                      int ldc, uint16_t *Cb, ragd_amx_rows_fn rows_fn, void *rows_ctx,
                      void *scratch) {
    (void)pool, (void)M, (void)A, (void)lda, (void)Ab, (void)W, (void)bias, (void)flags;
    (void)C, (void)ldc, (void)Cb, (void)rows_fn, (void)rows_ctx, (void)scratch;
    abort(); /* callers check ragd_amx_available() first */
}

#endif

void ragd_amx_gemm(ragd_pool *pool, int M, const float *A, int lda, const ragd_amx_weight *W,
                   float *C, int ldc, void *scratch) {
    ragd_amx_gemm_ex(pool, M, A, lda, NULL, W, NULL, 0, C, ldc, NULL, NULL, NULL, scratch);
}
