/* matmul_pool.h - C = A . W^T on the thread pool through the weight-streaming kernels
 * (kernels.h): tasks of up to RAGD_K_FEW_MAX rows of A x a chunk of W's rows. Every element is
 * one dot product whose summation order depends only on K, so a row of C is bitwise the same
 * whatever M is and wherever the row falls in A (BLAS sgemm/sgemv do not promise that). Used by
 * the BERT encoder's f32 GEMMs and the knowledge base's exact f32 vector search.
 * Thread-safety: one call runs on the pool; callers serialise as ragd_pool_run does.
 */
#ifndef RAGD_BACKEND_CPU_MATMUL_POOL_H
#define RAGD_BACKEND_CPU_MATMUL_POOL_H

#include <stddef.h>

#include "model/dtype.h"
#include "util/threadpool.h"

/* C[M][ldc] (cols [0, N)) = A[M][lda] (cols [0, K)) . W[N][K]^T, W of dtype dt (F32/F16/BF16).
 * pool may be NULL (runs on the calling thread). */
void ragd_matmul_pool(ragd_pool *pool, const float *A, size_t lda, size_t M, const void *W,
                      ragd_dtype dt, int K, size_t N, float *C, size_t ldc);

#endif
