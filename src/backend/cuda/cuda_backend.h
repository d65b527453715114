/* cuda_backend.h - the CUDA (Hopper, sm_90a) implementation of engine/backend.h: bf16 weights
 * uploaded from the safetensors files, cuBLASLt GEMMs, fused kernels, paged attention, on-GPU
 * sampling, CUDA graphs for decode. Built only when nvcc is found (RAGD_HAVE_CUDA).
 * Thread-safety: as engine/backend.h.
 */
#ifndef RAGD_BACKEND_CUDA_CUDA_BACKEND_H
#define RAGD_BACKEND_CUDA_CUDA_BACKEND_H

#include "engine/backend.h"

typedef struct ragd_cuda_opts {
    int device;                   /* CUDA device ordinal */
    float gpu_memory_utilization; /* fraction of total memory ragd may use (default 0.90) */
    int max_num_seqs;             /* largest decode batch (sizes CUDA graphs and scratch) */
    int max_num_batched_tokens;   /* largest tokens per step (sizes activations) */
} ragd_cuda_opts;

int ragd_cuda_backend_create(const char *model_dir, const ragd_cuda_opts *opts, ragd_backend **out,
                             ragd_err *err);
/* 1 when a usable CUDA device is present at run time. */
int ragd_cuda_available(void);

#endif
