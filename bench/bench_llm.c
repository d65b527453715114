/* bench_llm: CPU decoder speed next to the machine's ceilings, measured in the same run.
 *
 *   bench_llm [--model DIR] [--threads 1,2] [--prompt 512] [--decode 64] [--reps 2]
 *             [--batch 1,2,4,8,16]
 *
 * For each thread count: read bandwidth (ragd_probe_read_gbps) and sgemm peak
 * (ragd_probe_sgemm_gflops), then batch-1 decode tok/s (after a 16-token prompt; forward +
 * argmax per token) and prompt tok/s for a 512-token prompt (one forward, logits for the last
 * position only), exact f32-activation path and bf16-activation prefill path; with --batch,
 * batched decode steps (B sequences of 16 + 64 tokens of context, one token each per step,
 * one forward call, argmax per sequence; the argmax is the sampler's greedy pass): ms per step and
 * tok/s against B = 1. The decode roofline is read bandwidth / bytes of weights streamed per token
 * (all linear layers + the LM head); decode runs in rounds of one read-probe pass then 8 tokens,
 * and the median of the rounds' (weight bytes per second / probe bandwidth) is reported next to it,
 * since this machine's bandwidth drifts by +-15% between the start-up probe and the decode.
 * Generate the model with
 *   python3 ../shared/tools/make_random_model.py --arch qwen2 --preset qwen2.5-0.5b \
 *       --dtype bf16 --out /tmp/q05b
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpuinfo.h"
#include "engine/sampler.h"
#include "model/dtype.h"
#include "model/safetensors.h"
#include "util/clock.h"
#include "util/threadpool.h"

static double weight_bytes_per_token(const char *dir, const ragd_llm_config *cfg) {
    ragd_st *st = NULL;
    ragd_err e = {0};
    if (ragd_st_open_dir(dir, &st, &e)) return 0;
    double b = 0;
    for (size_t i = 0; i < ragd_st_count(st); i++) {
        const ragd_tensor *t = ragd_st_at(st, i);
        if (t->ndim != 2) continue;
        if (!strcmp(t->name, "model.embed_tokens.weight")) {
            if (cfg->tie_embeddings) b += (double)t->nbytes; /* read as the LM head */
            continue;
        }
        b += (double)t->nbytes;
    }
    ragd_st_close(st);
    return b;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* median of n values (sorts them); 0 when n == 0 */
static double median(double *v, int n) {
    if (n == 0) return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Batched decode: for each B in the list, B sequences (16-token prompts, then 64 decode steps
 * to warm up the context) step together, one token each, in one forward call. Best of reps. */
static int batch_decode(ragd_backend *be, const char *list, int n_decode, int reps, ragd_err *e) {
    const int V = be->cfg.vocab_size, warm = 16, ctx = 16 + warm + n_decode;
    const int nb = (ctx + 15) / 16;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", list);
    double base = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int B = atoi(tok);
        if (B < 1 || B > 256) continue;
        if (be->ops->kv_init(be, 16, nb * B, e)) return 1;
        int32_t *bt = malloc(sizeof(int32_t) * (size_t)nb * (size_t)B);
        int32_t *toks = malloc(sizeof(int32_t) * (size_t)B * 16);
        int32_t *next = malloc(sizeof(int32_t) * (size_t)B);
        float *logits = malloc(sizeof(float) * (size_t)V * (size_t)B);
        ragd_batch_seq *q = calloc((size_t)B, sizeof *q);
        if (!bt || !toks || !next || !logits || !q) return 1;
        for (int i = 0; i < nb * B; i++) bt[i] = i;
        uint32_t s = 7;
        for (int i = 0; i < B * 16; i++) {
            s = s * 1664525u + 1013904223u;
            toks[i] = (int32_t)((s >> 8) % 150000u);
        }
        double best = 1e30;
        for (int r = 0; r < reps; r++) {
            for (int b = 0; b < B; b++)
                q[b] = (ragd_batch_seq){.tokens = toks + b * 16,
                                        .n_new = 16,
                                        .block_table = bt + b * nb,
                                        .n_blocks = nb,
                                        .want_logits = true};
            ragd_batch pb = {B, q};
            if (be->ops->forward(be, &pb, logits, e)) return 1;
            double t0 = 0;
            for (int i = 0; i < warm + n_decode; i++) {
                if (i == warm) t0 = ragd_now_s();
                for (int b = 0; b < B; b++) {
                    next[b] = ragd_argmax(logits + (size_t)b * V, V);
                    q[b].tokens = next + b;
                    q[b].n_past = 16 + i;
                    q[b].n_new = 1;
                }
                ragd_batch db = {B, q};
                if (be->ops->forward(be, &db, logits, e)) return 1;
            }
            double ms = (ragd_now_s() - t0) * 1e3 / n_decode;
            if (ms < best) best = ms;
        }
        if (B == 1 || base == 0) base = best / B;
        printf("  batch %3d decode: %.2f ms/step, %.1f tok/s (%.2fx the tok/s of batch 1)\n", B,
               best, B * 1e3 / best, (B * 1e3 / best) / (1e3 / (base)));
        fflush(stdout);
        free(bt), free(toks), free(next), free(logits), free(q);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (ragd_cpu_fix_openblas_env()) execv("/proc/self/exe", argv);
    const char *model = "/tmp/q05b", *threads = "1,2", *batches = NULL;
    int n_prompt = 512, n_decode = 64, reps = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = argv[++i];
        else if (!strcmp(argv[i], "--prompt") && i + 1 < argc)
            n_prompt = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--decode") && i + 1 < argc)
            n_decode = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batches = argv[++i];
        else {
            fprintf(stderr, "usage: bench_llm [--model DIR] [--threads 1,2] [--prompt N] "
                            "[--decode N] [--reps N] [--batch 1,2,4,8]\n");
            return 2;
        }
    }
    if (n_prompt < 16 || n_decode < 2 || reps < 1) {
        fprintf(stderr, "bench_llm: bad sizes\n");
        return 2;
    }
    ragd_cpu_features f;
    ragd_cpu_detect(&f);
    printf("machine: %s, %d CPUs, avx512_bf16=%d\nmodel: %s\n", f.model_name, f.n_cpus,
           f.avx512_bf16, model);
    char buf[64];
    snprintf(buf, sizeof buf, "%s", threads);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int nt = atoi(tok);
        if (nt < 1) continue;
        double bw = ragd_probe_read_gbps(nt, 1024);
        double gf = ragd_probe_sgemm_gflops(nt, 2048);
        ragd_pool *pool = ragd_pool_create(nt);
        ragd_backend *be = NULL;
        ragd_err e = {0};
        if (ragd_cpu_backend_create(model, pool, &be, &e)) {
            fprintf(stderr, "bench_llm: %s\n", e.msg);
            return 1;
        }
        const ragd_llm_config *cfg = &be->cfg;
        double wb = weight_bytes_per_token(model, cfg);
        int V = cfg->vocab_size;
        int total = n_prompt + n_decode + 16;
        int nb = (total + 15) / 16;
        if (be->ops->kv_init(be, 16, nb, &e)) {
            fprintf(stderr, "bench_llm: %s\n", e.msg);
            return 1;
        }
        int32_t *bt = malloc(sizeof(int32_t) * (size_t)nb);
        int32_t *toks = malloc(sizeof(int32_t) * (size_t)total);
        float *logits = malloc(sizeof(float) * (size_t)V);
        for (int i = 0; i < nb; i++) bt[i] = i;
        uint32_t s = 1;
        for (int i = 0; i < total; i++) {
            s = s * 1664525u + 1013904223u;
            toks[i] = (int32_t)((s >> 8) % 150000u);
        }
        /* decode, in rounds of one read-probe pass over 512 MB and then DEC_CHUNK tokens: the
         * bandwidth here drifts by +-15% within seconds, so each round's tokens are set against
         * the bandwidth of the same moment (the median of those ratios is the robust figure) */
        enum { DEC_CHUNK = 8 };
        ragd_read_probe *probe = ragd_read_probe_create(512);
        double best_dec = 0, ratios[512], probes[512];
        int n_rounds = 0;
        for (int r = 0; r < reps; r++) {
            ragd_batch_seq q = {.tokens = toks,
                                .n_new = 16,
                                .block_table = bt,
                                .n_blocks = nb,
                                .want_logits = true};
            ragd_batch b = {1, &q};
            if (be->ops->forward(be, &b, logits, &e)) goto fail;
            int32_t t = ragd_argmax(logits, V);
            double busy = 0;
            for (int i = 0; i < n_decode;) {
                double pb = probe ? ragd_read_probe_run(probe, pool) : 0;
                int n = n_decode - i < DEC_CHUNK ? n_decode - i : DEC_CHUNK;
                double t0 = ragd_now_s();
                for (int j = 0; j < n; j++, i++) {
                    ragd_batch_seq d = {.tokens = &t,
                                        .n_new = 1,
                                        .n_past = 16 + i,
                                        .block_table = bt,
                                        .n_blocks = nb,
                                        .want_logits = true};
                    ragd_batch db = {1, &d};
                    if (be->ops->forward(be, &db, logits, &e)) goto fail;
                    t = ragd_argmax(logits, V);
                }
                double dt = ragd_now_s() - t0;
                busy += dt;
                if (pb > 0 && n == DEC_CHUNK && n_rounds < 512) {
                    probes[n_rounds] = pb;
                    ratios[n_rounds++] = n * wb / dt * 1e-9 / pb;
                }
            }
            double tps = n_decode / busy;
            if (tps > best_dec) best_dec = tps;
        }
        ragd_read_probe_destroy(probe);
        double med_ratio = median(ratios, n_rounds), med_probe = median(probes, n_rounds);
        /* prefill, exact then bf16 activations */
        double best_pf[2] = {0, 0};
        for (int mode = 0; mode < 2; mode++) {
            if (mode == 1 && !ragd_cpu_backend_set_bf16_prefill(be, true)) break;
            for (int r = 0; r < reps; r++) {
                ragd_batch_seq q = {.tokens = toks,
                                    .n_new = n_prompt,
                                    .block_table = bt,
                                    .n_blocks = nb,
                                    .want_logits = true};
                ragd_batch b = {1, &q};
                double t0 = ragd_now_s();
                if (be->ops->forward(be, &b, logits, &e)) goto fail;
                double tps = n_prompt / (ragd_now_s() - t0);
                if (tps > best_pf[mode]) best_pf[mode] = tps;
            }
            ragd_cpu_backend_set_bf16_prefill(be, false);
        }
        double roof = bw * 1e9 / wb;
        printf("threads=%d read_bw=%.1f GB/s sgemm=%.0f GFLOP/s weights/token=%.0f MB "
               "roofline=%.1f tok/s\n",
               nt, bw, gf, wb / 1e6, roof);
        printf("  decode: %.1f tok/s (%.0f%% of roofline); %.1f%% of the same-moment roofline "
               "(median of %d rounds of %d tokens, read probe median %.1f GB/s)\n",
               best_dec, 100 * best_dec / roof, 100 * med_ratio, n_rounds, (int)DEC_CHUNK,
               med_probe);
        printf("  prefill %d tokens: exact f32 %.0f tok/s; bf16-activation %.0f tok/s\n", n_prompt,
               best_pf[0], best_pf[1]);
        if (batches && batch_decode(be, batches, n_decode, reps, &e)) goto fail;
        fflush(stdout);
        free(bt), free(toks), free(logits);
        be->ops->destroy(be);
        ragd_pool_destroy(pool);
        continue;
    fail:
        fprintf(stderr, "bench_llm: %s\n", e.msg);
        return 1;
    }
    return 0;
}
