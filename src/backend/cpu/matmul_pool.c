/* matmul_pool.c - see matmul_pool.h. */
#include "backend/cpu/matmul_pool.h"

#include "backend/cpu/kernels.h"

typedef struct mp_ctx {
    const float *A;
    const void *W;
    float *C;
    size_t lda, ldc, M, N, row_chunk, n_row_chunks;
    ragd_dtype dt;
    int K;
} mp_ctx;

static void mp_task(void *vctx, size_t i, int tid) {
    (void)tid;
    const mp_ctx *c = vctx;
    const size_t rc = i % c->n_row_chunks, tc = i / c->n_row_chunks;
    const size_t r0 = rc * c->row_chunk, r1 = r0 + c->row_chunk < c->N ? r0 + c->row_chunk : c->N;
    const size_t t0 = tc * RAGD_K_FEW_MAX,
                 t1 = t0 + RAGD_K_FEW_MAX < c->M ? t0 + RAGD_K_FEW_MAX : c->M;
    /* the pointers move to the tile, so the kernel's int indices stay small for any M, N */
    ragd_k_matmul_rows(c->A + t0 * c->lda, c->lda, 0, (int)(t1 - t0), c->W, c->dt, c->K, (int)r0,
                       (int)r1, NULL, c->C + t0 * c->ldc, c->ldc, 0, NULL);
}

void ragd_matmul_pool(ragd_pool *pool, const float *A, size_t lda, size_t M, const void *W,
                      ragd_dtype dt, int K, size_t N, float *C, size_t ldc) {
    if (M == 0 || N == 0) return;
    mp_ctx c = {.A = A, .W = W, .C = C, .lda = lda, .ldc = ldc, .M = M, .N = N, .dt = dt, .K = K};
    const size_t n_tok = (M + RAGD_K_FEW_MAX - 1) / RAGD_K_FEW_MAX;
    const size_t threads = (size_t)ragd_pool_size(pool);
    /* enough tasks for load balance; row chunks a multiple of 24 (whole 6- and 8-row tiles) */
    size_t want = threads * 8 / n_tok;
    if (want < threads) want = threads;
    c.row_chunk = ((N + want - 1) / want + 23) / 24 * 24;
    c.n_row_chunks = (N + c.row_chunk - 1) / c.row_chunk;
    ragd_pool_run(pool, c.n_row_chunks * n_tok, mp_task, &c);
}
