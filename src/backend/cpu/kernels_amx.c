/* AMX (Intel Advanced Matrix Extensions) bf16 GEMM for the optional bf16-activation prefill
 * path: C^T = W . X^T with W tiles loaded straight from the (mmap'd, row-major) weights and
 * X packed once per matmul into the VNNI pair layout AMX wants for the B operand. */
#include <stdint.h>
#include <string.h>

#include "backend/cpu/kernels.h"

#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && defined(__AVX512F__)
#include <immintrin.h>

#include "backend/cpu/amx_gemm.h"

typedef struct tilecfg {
    uint8_t palette, start;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tilecfg;

int ragd_k_amx_init(void) {
    return ragd_amx_available(); /* asks the kernel for the tile state once per process */
}

void ragd_k_amx_pack_x(const float *X, size_t ldx, int t0, int T, int K, uint16_t *Xp) {
    int KB = K / 32;
    for (int tb = t0 / 16; tb * 16 < T; tb++)
        for (int kb = 0; kb < KB; kb++) {
            uint16_t *dst = Xp + ((size_t)tb * KB + kb) * 512;
            for (int t = 0; t < 16; t++) {
                int tok = tb * 16 + t;
                for (int kk = 0; kk < 16; kk++)
                    for (int e = 0; e < 2; e++) {
                        float v = tok < T ? X[(size_t)tok * ldx + (size_t)kb * 32 + 2 * kk + e] : 0;
                        dst[kk * 32 + t * 2 + e] = ragd_f32_to_bf16(v);
                    }
            }
        }
}

static void store_tile(const float *c, int r, int tb, int T, const float *bias, float *Y,
                       size_t ldy, int accumulate) {
    /* c[16 rows][16 tokens] -> Y[token][row] */
    for (int t = 0; t < 16; t++) {
        int tok = tb + t;
        if (tok >= T) break;
        float *y = Y + (size_t)tok * ldy + r;
        for (int i = 0; i < 16; i++) {
            float s = c[i * 16 + t] + (bias ? bias[r + i] : 0.0f);
            y[i] = accumulate ? y[i] + s : s;
        }
    }
}

void ragd_k_amx_matmul(const uint16_t *Xp, int t0, int t1, int T, int K, const uint16_t *W, int r0,
                       int r1, const float *bias, float *Y, size_t ldy, int accumulate) {
    tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int i = 0; i < 8; i++) {
        cfg.rows[i] = 16;
        cfg.colsb[i] = 64;
    }
    _tile_loadconfig(&cfg);
    const int KB = K / 32;
    const size_t wstride = (size_t)K * 2;
    float c[4][256] __attribute__((aligned(64)));
    for (int r = r0; r < r1; r += 32) {
        int two_r = r + 32 <= r1;
        const uint16_t *w0 = W + (size_t)r * K, *w1 = W + (size_t)(r + 16) * K;
        for (int tb = t0; tb < t1; tb += 32) {
            int two_t = tb + 16 < t1;
            const uint16_t *x0 = Xp + (size_t)(tb / 16) * KB * 512;
            const uint16_t *x1 = x0 + (size_t)KB * 512;
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (int kb = 0; kb < KB; kb++) {
                _tile_loadd(4, w0 + kb * 32, wstride);
                _tile_loadd(6, x0 + (size_t)kb * 512, 64);
                _tile_dpbf16ps(0, 4, 6);
                if (two_t) {
                    _tile_loadd(7, x1 + (size_t)kb * 512, 64);
                    _tile_dpbf16ps(1, 4, 7);
                }
                if (two_r) {
                    _tile_loadd(5, w1 + kb * 32, wstride);
                    _tile_dpbf16ps(2, 5, 6);
                    if (two_t) _tile_dpbf16ps(3, 5, 7);
                }
            }
            _tile_stored(0, c[0], 64);
            store_tile(c[0], r, tb, t1, bias, Y, ldy, accumulate);
            if (two_t) {
                _tile_stored(1, c[1], 64);
                store_tile(c[1], r, tb + 16, t1, bias, Y, ldy, accumulate);
            }
            if (two_r) {
                _tile_stored(2, c[2], 64);
                store_tile(c[2], r + 16, tb, t1, bias, Y, ldy, accumulate);
                if (two_t) {
                    _tile_stored(3, c[3], 64);
                    store_tile(c[3], r + 16, tb + 16, t1, bias, Y, ldy, accumulate);
                }
            }
        }
    }
    _tile_release();
}

#else

int ragd_k_amx_init(void) {
    return 0;
}

void ragd_k_amx_pack_x(const float *X, size_t ldx, int t0, int T, int K, uint16_t *Xp) {
    (void)X, (void)ldx, (void)t0, (void)T, (void)K, (void)Xp;
}

void ragd_k_amx_matmul(const uint16_t *Xp, int t0, int t1, int T, int K, const uint16_t *W, int r0,
                       int r1, const float *bias, float *Y, size_t ldy, int accumulate) {
    (void)Xp, (void)t0, (void)t1, (void)T, (void)K, (void)W, (void)r0, (void)r1, (void)bias,
        (void)Y, (void)ldy, (void)accumulate;
}

#endif
