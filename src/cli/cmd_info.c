/* ragd info: build configuration, CPU features, models found in shared/, and with --bench the
 * machine's measured ceilings (sgemm GFLOP/s, read bandwidth) that benchmarks compare against. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpuinfo.h"
#include "cli/commands.h"
#include "util/str.h"

static int run_info(int argc, char **argv) {
    int bench = 0, json = 0;
    static const struct option opts[] = {{"bench", no_argument, 0, 'b'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case 'b':
                bench = 1;
                break;
            case 'j':
                json = 1;
                break;
            case 'h':
                printf("usage: ragd info [--bench] [--json]\n"
                       "  --bench  measure sgemm GFLOP/s and memory read bandwidth (1 and all "
                       "threads)\n"
                       "  --json   machine-readable output\n");
                return 0;
            default:
                fprintf(stderr, "usage: ragd info [--bench] [--json]\n");
                return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ragd info: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    ragd_cpu_features f;
    ragd_cpu_detect(&f);
#ifdef RAGD_HAVE_CUDA
    const int cuda = 1;
#else
    const int cuda = 0;
#endif
    const char *coretype = getenv("OPENBLAS_CORETYPE");
    double g1 = 0, gn = 0, b1 = 0, bn = 0;
    if (bench) {
        g1 = ragd_probe_sgemm_gflops(1, 1536);
        gn = ragd_probe_sgemm_gflops(f.n_cpus, 2048);
        b1 = ragd_probe_read_gbps(1, 1024);
        bn = ragd_probe_read_gbps(f.n_cpus, 1024);
    }
    char path[4096];
    if (json) {
        printf("{\"version\":\"%s\",\"cpu\":\"%s\",\"n_cpus\":%d,\"avx512f\":%s,\"avx512_bf16\":%s,"
               "\"openblas_coretype\":\"%s\",\"cuda_built\":%s",
               RAGD_VERSION, f.model_name, f.n_cpus, f.avx512f ? "true" : "false",
               f.avx512_bf16 ? "true" : "false", coretype ? coretype : "", cuda ? "true" : "false");
        if (bench)
            printf(",\"sgemm_gflops_1t\":%.1f,\"sgemm_gflops_all\":%.1f,\"read_gbps_1t\":%.1f,"
                   "\"read_gbps_all\":%.1f",
                   g1, gn, b1, bn);
        printf("}\n");
        return 0;
    }
    printf("ragd %s\n", RAGD_VERSION);
    printf("cpu:        %s (%d online)\n", f.model_name, f.n_cpus);
    printf("features:   avx2=%d fma=%d avx512f=%d avx512bw=%d avx512_bf16=%d avx512_fp16=%d\n",
           f.avx2, f.fma, f.avx512f, f.avx512bw, f.avx512_bf16, f.avx512_fp16);
    printf("openblas:   OPENBLAS_CORETYPE=%s\n", coretype ? coretype : "(auto)");
    printf("cuda:       %s\n", cuda ? "backend built" : "not built");
    ragd_shared_path(path, sizeof path, "");
    printf("shared dir: %s (%s)\n", path, ragd_dir_exists(path) ? "found" : "missing");
    static const char *models[] = {"models/qwen2-tiny", "models/llama-small", "models/bert-tiny"};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        ragd_shared_path(path, sizeof path, models[i]);
        printf("  %-20s %s\n", models[i], ragd_dir_exists(path) ? "present" : "missing");
    }
    if (bench) {
        printf("sgemm:      %.1f GFLOP/s (1 thread), %.1f GFLOP/s (%d threads)\n", g1, gn,
               f.n_cpus);
        printf("read bw:    %.1f GB/s (1 thread), %.1f GB/s (%d threads)\n", b1, bn, f.n_cpus);
    }
    return 0;
}

RAGD_COMMAND(info, 90, "build configuration, CPU features; --bench measures sgemm and bandwidth",
             run_info)
