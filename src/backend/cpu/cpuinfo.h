/* cpuinfo.h - CPU feature detection and machine probes (sgemm peak, read bandwidth).
 * Used by the CLI at start-up and by benchmarks, which report results next to these ceilings.
 * Thread-safety: the probes use the whole machine; run them alone.
 */
#ifndef RAGD_BACKEND_CPU_CPUINFO_H
#define RAGD_BACKEND_CPU_CPUINFO_H

#include <stdbool.h>

#include "util/threadpool.h"

typedef struct ragd_cpu_features {
    bool avx2, fma, avx512f, avx512bw, avx512vl, avx512_bf16, avx512_fp16, avx512_vnni;
    int n_cpus;
    char model_name[128];
} ragd_cpu_features;

void ragd_cpu_detect(ragd_cpu_features *f);

/* If the CPU has avx512f and OPENBLAS_CORETYPE is unset, set it to SkylakeX and return true:
 * the caller must re-exec (OpenBLAS reads the variable when the library loads). Sets
 * RAGD_OPENBLAS_FIXED=1 so the re-exec'd process does not loop. */
bool ragd_cpu_fix_openblas_env(void);

/* Measured single-precision GEMM rate (GFLOP/s) with n_threads BLAS threads, square n. */
double ragd_probe_sgemm_gflops(int n_threads, int n);
/* Measured read bandwidth (GB/s) with n_threads threads over a buffer of mb megabytes. */
double ragd_probe_read_gbps(int n_threads, int mb);

/* The same reader as a reusable probe, for benchmarks that interleave single passes with the
 * work they measure (this machine's bandwidth drifts by +-15% within seconds): create fills a
 * buffer of mb megabytes once; run reads it with every thread of pool, once per reader pattern
 * (one stream per task, 8 interleaved streams per task, each prefetched 1 KB ahead), and
 * returns the GB/s of the pattern that has been faster over the passes so far (which pattern
 * wins depends on the machine). */
typedef struct ragd_read_probe ragd_read_probe;
ragd_read_probe *ragd_read_probe_create(int mb);
double ragd_read_probe_run(ragd_read_probe *p, ragd_pool *pool);
void ragd_read_probe_destroy(ragd_read_probe *p);

#endif
