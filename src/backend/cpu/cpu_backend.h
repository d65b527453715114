/* cpu_backend.h - the CPU implementation of engine/backend.h for Qwen2 / Llama decoders:
 * weights memory-mapped from safetensors (bf16/f16 used in place, f32 compute; models with
 * <= 2 GiB of linear weights are copied once into huge-page memory, RAGD_CPU_WEIGHTS=mmap|copy
 * overrides), own AVX-512 kernels, paged KV cache, multi-threaded with the process pool.
 * Thread-safety: as engine/backend.h (one caller at a time).
 */
#ifndef RAGD_BACKEND_CPU_CPU_BACKEND_H
#define RAGD_BACKEND_CPU_CPU_BACKEND_H

#include <stdbool.h>

#include "engine/backend.h"
#include "util/threadpool.h"

int ragd_cpu_backend_create(const char *model_dir, ragd_pool *pool, ragd_backend **out,
                            ragd_err *err);

/* Optional fast path (off by default; also enabled by RAGD_CPU_BF16=1 in the environment):
 * steps with >= 16 tokens (prefill) round the activations to bf16 and use AVX512-BF16 dot
 * products for the bf16 weight matrices (2x the f32 FMA rate). Not exact: logits move by
 * ~1e-2 relative, so it is never on for the golden tests; decode steps and the LM head stay
 * exact. Returns whether it is on (false when the CPU lacks avx512_bf16). */
bool ragd_cpu_backend_set_bf16_prefill(ragd_backend *be, bool on);

#endif
