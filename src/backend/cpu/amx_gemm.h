/* amx_gemm.h - bf16 GEMM on Intel AMX tiles (Sapphire Rapids and later): C = A . W^T (or
 * C += A . W^T) with A in bf16 (or f32, converted first), W pre-packed once into the tile (VNNI)
 * layout, f32 accumulation, f32 or bf16 output with a bias / GELU epilogue and a per-row-block
 * callback. Used by the BERT encoder's optional bf16 mode (model/bert.h).
 * Needs N % 32 == 0 and K % 32 == 0 (true for BERT shapes); any M.
 * Thread-safety: packed weights are immutable; ragd_amx_gemm calls run on the pool (each
 * task configures the tiles of the thread it runs on).
 */
#ifndef RAGD_BACKEND_CPU_AMX_GEMM_H
#define RAGD_BACKEND_CPU_AMX_GEMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/threadpool.h"

/* True when the CPU has AMX-BF16 and the kernel granted this process the tile state (asked
 * once, thread-safe). */
bool ragd_amx_available(void);

typedef struct ragd_amx_weight {
    int N, K;
    uint16_t *packed; /* [N/16][K/32][16 rows][16 cols][2] bf16 */
    bool owned;
} ragd_amx_weight;

/* Pack W (N x K row-major f32) for ragd_amx_gemm. Returns 0, or -1 (bad shape / no memory). */
int ragd_amx_pack(const float *W, int N, int K, ragd_amx_weight *out);
void ragd_amx_free(ragd_amx_weight *w);
/* Rows [n0, n0 + n) of a packed weight (n0, n multiples of 32), sharing its memory. */
ragd_amx_weight ragd_amx_rows(const ragd_amx_weight *w, int n0, int n);

/* Bytes of scratch ragd_amx_gemm needs for M rows of K. */
size_t ragd_amx_scratch_bytes(int M, int K);
/* C[M x N] (row stride ldc floats) = A[M x K] (row stride lda floats) . W^T. scratch: at least
 * ragd_amx_scratch_bytes(M, K) bytes, 64-byte aligned. */
void ragd_amx_gemm(ragd_pool *pool, int M, const float *A, int lda, const ragd_amx_weight *W,
                   float *C, int ldc, void *scratch);

/* Called with whole rows [row0, row0 + n) of C finished (all N columns, epilogue applied). */
typedef void (*ragd_amx_rows_fn)(void *ctx, int row0, int n);

/* flags of ragd_amx_gemm_ex */
#define RAGD_AMX_GELU 1u /* exact GELU after the bias */
#define RAGD_AMX_ACC  2u /* C += A . W^T: the accumulators start from C (f32 output only) */

/* The general form. Ab (optional): A already in bf16, row stride K elements, with at least
 * roundup(M, 32) rows (rows past M may hold anything; their results are discarded); A is then
 * unused. Epilogue on each output block: + bias[n] (optional), then exact GELU when flags has
 * RAGD_AMX_GELU. Cb (optional): write the result as bf16 (row stride N elements,
 * roundup(M, 32) rows; rows past M get zeros) instead of C. rows_fn (optional) runs on every
 * block of finished rows, in the pool, while they are still in cache when one task owns whole
 * rows. (flags was a bool gelu: true still means GELU.) */
void ragd_amx_gemm_ex(ragd_pool *pool, int M, const float *A, int lda, const uint16_t *Ab,
                      const ragd_amx_weight *W, const float *bias, unsigned flags, float *C,
                      int ldc, uint16_t *Cb, ragd_amx_rows_fn rows_fn, void *rows_ctx,
                      void *scratch);

#endif
