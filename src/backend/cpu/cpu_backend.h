/* cpu_backend.h - the CPU implementation of engine/backend.h for Qwen2 / Llama decoders:
 * weights memory-mapped from safetensors (bf16/f16 used in place, f32 compute), GEMMs through
 * OpenBLAS or own AVX-512 kernels, paged KV cache, multi-threaded with the process pool.
 * Thread-safety: as engine/backend.h (one caller at a time).
 */
#ifndef RAGD_BACKEND_CPU_CPU_BACKEND_H
#define RAGD_BACKEND_CPU_CPU_BACKEND_H

#include "engine/backend.h"
#include "util/threadpool.h"

int ragd_cpu_backend_create(const char *model_dir, ragd_pool *pool, ragd_backend **out,
                            ragd_err *err);

#endif
