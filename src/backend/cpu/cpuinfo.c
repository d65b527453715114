#include "backend/cpu/cpuinfo.h"

#include <cblas.h>
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/threadpool.h"

void ragd_cpu_detect(ragd_cpu_features *f) {
    memset(f, 0, sizeof *f);
    __builtin_cpu_init();
    f->avx2 = __builtin_cpu_supports("avx2");
    f->fma = __builtin_cpu_supports("fma");
    f->avx512f = __builtin_cpu_supports("avx512f");
    f->avx512bw = __builtin_cpu_supports("avx512bw");
    f->avx512vl = __builtin_cpu_supports("avx512vl");
    f->avx512_vnni = __builtin_cpu_supports("avx512vnni");
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    f->n_cpus = n > 0 ? (int)n : 1;
    FILE *fp = fopen("/proc/cpuinfo", "r");
    if (!fp) return;
    char line[4096];
    while (fgets(line, sizeof line, fp)) {
        if (!f->model_name[0] && !strncmp(line, "model name", 10)) {
            char *c = strchr(line, ':');
            if (c) {
                snprintf(f->model_name, sizeof f->model_name, "%s", c + 2);
                f->model_name[strcspn(f->model_name, "\n")] = 0;
            }
        }
        if (!strncmp(line, "flags", 5)) {
            f->avx512_bf16 = strstr(line, " avx512_bf16") != NULL;
            f->avx512_fp16 = strstr(line, " avx512_fp16") != NULL;
            break;
        }
    }
    fclose(fp);
}

bool ragd_cpu_fix_openblas_env(void) {
    if (getenv("OPENBLAS_CORETYPE") || getenv("RAGD_OPENBLAS_FIXED")) return false;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f")) return false;
    setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
    setenv("RAGD_OPENBLAS_FIXED", "1", 1);
    return true;
}

double ragd_probe_sgemm_gflops(int n_threads, int n) {
    openblas_set_num_threads(n_threads);
    size_t nn = (size_t)n * (size_t)n;
    float *a = malloc(nn * 4), *b = malloc(nn * 4), *c = malloc(nn * 4);
    if (!a || !b || !c) {
        free(a), free(b), free(c);
        return 0;
    }
    uint32_t s = 12345;
    for (size_t i = 0; i < nn; i++) {
        s = s * 1664525u + 1013904223u;
        a[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
        b[i] = a[(i * 7) % nn];
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double best = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = ragd_now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c,
                    n);
        double dt = ragd_now_s() - t0;
        double g = 2.0 * n * (double)n * n / dt * 1e-9;
        if (g > best) best = g;
    }
    free(a), free(b), free(c);
    return best;
}

typedef struct {
    const float *buf;
    size_t n_per;
    int streams;
    double sums[64];
} bw_ctx;

/* The reader: `streams` interleaved streams over the task's range, each prefetched 1 KB ahead.
 * Which pattern reads fastest depends on the machine (on the AMD Zen 5 VM 8 streams beat one
 * by ~10%; on the 2-core Intel VM one stream beats 8 or 12 by 6-9%), so a probe pass runs
 * both and keeps the faster: the probe is the roofline's denominator and must measure what a
 * good reader attains on this machine. */
static void bw_read(void *vctx, size_t i, int tid) {
    bw_ctx *ctx = vctx;
    const float *p = ctx->buf + i * ctx->n_per;
#if defined(__AVX512F__)
    enum { PF = 1024 / 4 };
    if (ctx->streams == 1) {
        __m512 s0 = _mm512_setzero_ps();
        for (size_t k = 0; k < ctx->n_per; k += 16) {
            _mm_prefetch((const char *)(p + k + PF), _MM_HINT_T0);
            s0 = _mm512_add_ps(s0, _mm512_loadu_ps(p + k));
        }
        ctx->sums[tid & 63] += _mm512_reduce_add_ps(s0);
        return;
    }
    enum { S = 8 };
    const size_t per = ctx->n_per / S / 16 * 16;
    __m512 s[S];
    for (int j = 0; j < S; j++) s[j] = _mm512_setzero_ps();
    for (size_t k = 0; k < per; k += 16)
        for (int j = 0; j < S; j++) {
            const float *q = p + (size_t)j * per + k;
            _mm_prefetch((const char *)(q + PF), _MM_HINT_T0);
            s[j] = _mm512_add_ps(s[j], _mm512_loadu_ps(q));
        }
    __m512 t = s[0];
    for (int j = 1; j < S; j++) t = _mm512_add_ps(t, s[j]);
    ctx->sums[tid & 63] += _mm512_reduce_add_ps(t);
#else
    float s = 0;
    for (size_t k = 0; k < ctx->n_per; k++) s += p[k];
    ctx->sums[tid & 63] += s;
#endif
}

struct ragd_read_probe {
    float *buf;
    size_t n, bytes;
    double sum1, sum8; /* GB/s summed over the passes of each reader pattern */
};

ragd_read_probe *ragd_read_probe_create(int mb) {
    ragd_read_probe *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = (size_t)mb * 1024 * 1024 / 4;
    /* 2 MB aligned + transparent huge pages: the hardware prefetcher stops at 4 KB page
     * boundaries, which made the probe under-read the machine's streaming bandwidth */
    p->bytes = (p->n * 4 + (2u << 20) - 1) / (2u << 20) * (2u << 20);
    p->buf = aligned_alloc(2u << 20, p->bytes);
    if (!p->buf) {
        free(p);
        return NULL;
    }
    madvise(p->buf, p->bytes, MADV_HUGEPAGE);
    for (size_t i = 0; i < p->n; i++) p->buf[i] = (float)(i & 1023);
    return p;
}

/* One pass over the buffer with `streams` streams per task; GB/s */
static double probe_pass(ragd_read_probe *p, ragd_pool *pool, int streams) {
    bw_ctx ctx = {.buf = p->buf, .streams = streams};
    size_t parts = (size_t)ragd_pool_size(pool) * 16;
    ctx.n_per = p->n / parts / 128 * 128; /* 8 streams of whole vectors */
    double t0 = ragd_now_s();
    ragd_pool_run(pool, parts, bw_read, &ctx);
    double dt = ragd_now_s() - t0;
    return (double)(ctx.n_per * parts * 4) / dt * 1e-9;
}

/* Both patterns every time; the figure returned is this pass's figure of the pattern that has
 * been faster on average over all passes so far (the larger of two noisy samples of the same
 * bandwidth would be biased upwards). */
double ragd_read_probe_run(ragd_read_probe *p, ragd_pool *pool) {
    double a = probe_pass(p, pool, 1), b = probe_pass(p, pool, 8);
    p->sum1 += a, p->sum8 += b;
    return p->sum1 >= p->sum8 ? a : b;
}

void ragd_read_probe_destroy(ragd_read_probe *p) {
    if (!p) return;
    free(p->buf);
    free(p);
}

double ragd_probe_read_gbps(int n_threads, int mb) {
    ragd_read_probe *p = ragd_read_probe_create(mb);
    ragd_pool *pool = p ? ragd_pool_create(n_threads) : NULL;
    double best = 0;
    for (int r = 0; pool && r < 6; r++) {
        double g = ragd_read_probe_run(p, pool);
        if (r > 0 && g > best) best = g;
    }
    ragd_pool_destroy(pool);
    ragd_read_probe_destroy(p);
    return best;
}
