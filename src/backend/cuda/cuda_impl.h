/* cuda_impl.h - private C interface of the CUDA device layer (cuda_model.cu) used by the C glue
 * (cuda_backend.c: config, safetensors, ops table) and by bench/cuda_bench.c.
 * Every function returns RAGD_OK or a ragd error code and writes a message into `msg`
 * (RC_MSG bytes). Thread-safety: one thread drives an rc_model at a time.
 */
#ifndef RAGD_BACKEND_CUDA_CUDA_IMPL_H
#define RAGD_BACKEND_CUDA_CUDA_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/backend.h"
#include "model/llm_config.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RC_MSG 512

/* One host tensor handed to the device layer (data points into the mmap'd safetensors). */
typedef struct rc_host_tensor {
    const void *data;
    int dtype; /* ragd_dtype: BF16, F16 or F32 */
    int64_t numel;
} rc_host_tensor;

typedef struct rc_layer_src {
    rc_host_tensor ln1, wq, wk, wv, bq, bk, bv, wo, ln2, wg, wu, wd;
} rc_layer_src;

typedef struct rc_model_src {
    ragd_llm_config cfg;
    rc_host_tensor embed, final_norm, lm_head; /* lm_head.data == NULL: tied to embed */
    const rc_layer_src *layers;                /* cfg.n_layers entries */
} rc_model_src;

typedef struct rc_model rc_model;

int rc_device_count(void);
int rc_create(const rc_model_src *src, int device, float gpu_mem_util, int max_seqs, int max_tokens,
              rc_model **out, char *msg);
void rc_destroy(rc_model *m);
size_t rc_kv_block_bytes(const rc_model *m, int block_size);
size_t rc_kv_budget(const rc_model *m);
int rc_kv_init(rc_model *m, int block_size, int n_blocks, char *msg);
int rc_forward(rc_model *m, const ragd_batch *b, float *logits, ragd_sample_out *out, char *msg);
int rc_copy_blocks(rc_model *m, const int32_t *src, const int32_t *dst, int n, char *msg);
/* Disable / enable CUDA graphs for decode steps (default on; RAGD_CUDA_GRAPHS=0 disables). */
void rc_set_graphs(rc_model *m, int on);
/* Tensor-core prefill attention (k_fattn) for steps with prefill rows (default on;
 * RAGD_CUDA_FATTN=0 disables): off = the CUDA-core k_attn for every step. */
void rc_set_flash_attn(rc_model *m, int on);
/* Kernel-level check of k_fattn against k_attn on random data (several shapes: GQA, partial
 * tiles, n_past > 0, several sequences, split-K); prints one line per case to stdout and the
 * prefill timing of both; fails with RAGD_EINTERNAL when the error exceeds bf16 tolerance. */
int rc_attn_check(int device, char *msg);

/* Benchmark helpers: device-to-device copy bandwidth (GB/s counting bytes read + written) over
 * `bytes`, and a one-line device description. */
int rc_copy_bandwidth(int device, size_t bytes, double *gbps, char *msg);
int rc_device_name(int device, char *name, size_t len);
/* Start / stop the profiler's collection (ncu --profile-from-start off). */
void rc_profiler(int on);
/* Seconds since an arbitrary point after synchronizing the device (for timing). */
double rc_sync_time(rc_model *m);

#ifdef __cplusplus
}
#endif

#endif
