/* bench_embed - CPU embedding throughput next to the machine's sgemm peak (same run).
 *
 *   bench_embed --model /tmp/bge [--threads N] [--reps R] [--passages N]
 *
 * (a) 50 CMRC questions of about 20 tokens as one request: ms per batch (end to end through
 *     the engine: tokenize, queue, forward, pool, normalise), median and best of R;
 * (b) N CMRC passages (corpus.jsonl cycled to N, truncated at 512 tokens): tokens/s.
 * For both, the BERT forward is also run directly to split time into GEMM and the rest;
 * the GEMM GFLOP/s are reported as a fraction of the sgemm peak measured first.
 * Model: make_random_model.py --arch bert --preset bge-small-zh --dtype f32 plus the
 * bert-tiny tokenizer files (see docs/PERFORMANCE.md). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "backend/cpu/amx_gemm.h"
#include "backend/cpu/cpuinfo.h"
#include "embed/embed.h"
#include "model/bert.h"
#include "tokenizer/wordpiece.h"
#include "util/clock.h"
#include "util/str.h"
#include "util/threadpool.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Texts from a JSONL file's "text" field. */
static char **load_jsonl(const char *rel, size_t *n) {
    char path[4096];
    ragd_shared_path(path, sizeof path, rel);
    char *data = NULL;
    size_t len = 0;
    ragd_err err = {0};
    if (ragd_read_file(path, &data, &len, &err)) {
        fprintf(stderr, "bench_embed: %s\n", err.msg);
        exit(1);
    }
    size_t cap = 1024, k = 0;
    char **out = malloc(cap * sizeof *out);
    for (char *line = strtok(data, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *t = cJSON_GetObjectItem(j, "text");
        if (cJSON_IsString(t)) {
            if (k == cap) out = realloc(out, (cap *= 2) * sizeof *out);
            out[k++] = strdup(t->valuestring);
        }
        cJSON_Delete(j);
    }
    free(data);
    *n = k;
    return out;
}

typedef struct run_stats {
    double forward_ms, gemm_ms, gemm_gflops, gemm_share, attn_ms;
} run_stats;

/* Forward of the already tokenized batch directly, to split GEMM time from the rest. */
static run_stats direct_forward(ragd_bert *m, ragd_pool *pool, int32_t *ids, int32_t *lens, int n,
                                int reps) {
    float *out = malloc((size_t)n * ragd_bert_get_config(m)->hidden * sizeof(float));
    ragd_err err = {0};
    ragd_bert_forward(m, pool, ids, lens, n, RAGD_BERT_POOL_MODEL, -1, out, &err); /* warm */
    ragd_bert_reset_stats(m);
    for (int r = 0; r < reps; r++)
        if (ragd_bert_forward(m, pool, ids, lens, n, RAGD_BERT_POOL_MODEL, -1, out, &err)) {
            fprintf(stderr, "bench_embed: %s\n", err.msg);
            exit(1);
        }
    ragd_bert_stats st;
    ragd_bert_get_stats(m, &st);
    free(out);
    run_stats rs;
    rs.forward_ms = (double)st.forward_ns / 1e6 / reps;
    rs.gemm_ms = (double)st.gemm_ns / 1e6 / reps;
    rs.attn_ms = (double)st.attn_ns / 1e6 / reps;
    rs.gemm_gflops = st.gemm_flops / ((double)st.gemm_ns * 1e-9) * 1e-9;
    rs.gemm_share = (double)st.gemm_ns / (double)st.forward_ns;
    return rs;
}

static void tokenize_all(ragd_wordpiece *tok, char **texts, size_t n, int32_t **ids_out,
                         int32_t **lens_out, size_t *total) {
    size_t cap = 1 << 16, t = 0;
    int32_t *ids = malloc(cap * sizeof *ids), *lens = malloc(n * sizeof *lens);
    for (size_t i = 0; i < n; i++) {
        int32_t *one;
        size_t k;
        ragd_err err = {0};
        if (ragd_wordpiece_encode(tok, texts[i], strlen(texts[i]), 512, &one, &k, NULL, &err)) {
            fprintf(stderr, "bench_embed: %s\n", err.msg);
            exit(1);
        }
        while (t + k > cap) ids = realloc(ids, (cap *= 2) * sizeof *ids);
        memcpy(ids + t, one, k * sizeof *ids);
        t += k;
        lens[i] = (int32_t)k;
        free(one);
    }
    *ids_out = ids;
    *lens_out = lens;
    *total = t;
}

/* bf16 AMX GEMM rate on a square n^3 problem (the ceiling of the bf16 mode). */
static double probe_amx_gflops(ragd_pool *pool, int n) {
    float *a = malloc((size_t)n * n * sizeof(float)), *w = malloc((size_t)n * n * sizeof(float));
    float *c = malloc((size_t)n * n * sizeof(float));
    void *scratch = aligned_alloc(64, (ragd_amx_scratch_bytes(n, n) + 63) / 64 * 64);
    for (size_t i = 0; i < (size_t)n * n; i++) a[i] = w[i] = (float)(i % 7) * 0.1f;
    ragd_amx_weight pw;
    double best = 0;
    if (ragd_amx_pack(w, n, n, &pw) == 0) {
        ragd_amx_gemm(pool, n, a, n, &pw, c, n, scratch);
        for (int r = 0; r < 5; r++) {
            double t0 = ragd_now_s();
            ragd_amx_gemm(pool, n, a, n, &pw, c, n, scratch);
            double g = 2.0 * n * (double)n * n / (ragd_now_s() - t0) * 1e-9;
            if (g > best) best = g;
        }
        ragd_amx_free(&pw);
    }
    free(a), free(w), free(c), free(scratch);
    return best;
}

static int run_precision(const char *model, const char *prec, ragd_pool *pool, int reps, int n_pass,
                         double peak) {
    ragd_embedder_opts eo = {.model_dir = model, .pool = pool, .precision = prec};
    ragd_embedder *e = NULL;
    ragd_bert *m = NULL;
    ragd_wordpiece *tok = NULL;
    ragd_err err = {0};
    if (ragd_embedder_create(&eo, &e, &err) || ragd_bert_load(model, &m, &err) ||
        ragd_wordpiece_load(model, &tok, &err) ||
        ragd_bert_set_precision(m, strcmp(prec, "bf16") ? RAGD_BERT_F32 : RAGD_BERT_BF16, &err)) {
        fprintf(stderr, "bench_embed: %s\n", err.msg);
        return 1;
    }
    const ragd_bert_config *cfg = ragd_bert_get_config(m);
    printf("--- precision %s (GEMM ceiling %.1f GFLOP/s) ---\n", prec, peak);

    /* (a) 50 questions of ~20 tokens */
    size_t nq = 0;
    char **qs = load_jsonl("data/cmrc2018/queries.jsonl", &nq);
    char *pick[50];
    size_t np = 0;
    for (size_t i = 0; i < nq && np < 50; i++) {
        int32_t *ids;
        size_t k;
        ragd_wordpiece_encode(tok, qs[i], strlen(qs[i]), 512, &ids, &k, NULL, &err);
        free(ids);
        if (k >= 19 && k <= 21) pick[np++] = qs[i];
    }
    int32_t *ids, *lens;
    size_t total;
    tokenize_all(tok, pick, np, &ids, &lens, &total);
    float *out = malloc(1000 * (size_t)cfg->hidden * sizeof(float));
    double *ms = malloc((size_t)reps * sizeof(double));
    for (int r = -2; r < reps; r++) {
        double t0 = ragd_now_s();
        if (ragd_embedder_embed(e, (const char *const *)pick, NULL, np, out, NULL, NULL, &err)) {
            fprintf(stderr, "bench_embed: %s\n", err.msg);
            return 1;
        }
        if (r >= 0) ms[r] = (ragd_now_s() - t0) * 1e3;
    }
    qsort(ms, (size_t)reps, sizeof *ms, cmp_double);
    run_stats ra = direct_forward(m, pool, ids, lens, (int)np, reps);
    printf("(a) %zu texts, %zu tokens (%.1f per text): %.2f ms per batch median, %.2f best "
           "(end to end, %d reps); %.0f texts/s\n",
           np, total, (double)total / np, ms[reps / 2], ms[0], reps, np / (ms[reps / 2] / 1e3));
    printf("    forward %.2f ms: GEMMs %.2f ms (%.0f%% of forward) at %.1f GFLOP/s = %.0f%% of "
           "the ceiling; attention stage %.2f ms\n",
           ra.forward_ms, ra.gemm_ms, 100 * ra.gemm_share, ra.gemm_gflops,
           100 * ra.gemm_gflops / peak, ra.attn_ms);
    fflush(stdout);
    free(ids);
    free(lens);

    /* (b) passages */
    size_t nc = 0;
    char **ps = load_jsonl("data/cmrc2018/corpus.jsonl", &nc);
    char **pass = malloc((size_t)n_pass * sizeof *pass);
    for (int i = 0; i < n_pass; i++) pass[i] = ps[(size_t)i % nc];
    tokenize_all(tok, pass, (size_t)n_pass, &ids, &lens, &total);
    float *pout = malloc((size_t)n_pass * cfg->hidden * sizeof(float));
    double t0 = ragd_now_s();
    if (ragd_embedder_embed(e, (const char *const *)pass, NULL, (size_t)n_pass, pout, NULL, NULL,
                            &err)) {
        fprintf(stderr, "bench_embed: %s\n", err.msg);
        return 1;
    }
    double dt = ragd_now_s() - t0;
    run_stats rb = direct_forward(m, pool, ids, lens, n_pass < 64 ? n_pass : 64, 1);
    printf("(b) %d passages (%zu distinct), %zu tokens (%.0f per passage): %.2f s, %.0f "
           "tokens/s, %.1f passages/s (end to end)\n",
           n_pass, nc, total, (double)total / n_pass, dt, total / dt, n_pass / dt);
    printf("    forward of 64 passages: GEMMs %.0f%% of forward at %.1f GFLOP/s = %.0f%% of the "
           "ceiling; attention stage %.0f%% of forward\n",
           100 * rb.gemm_share, rb.gemm_gflops, 100 * rb.gemm_gflops / peak,
           100 * rb.attn_ms / rb.forward_ms);
    fflush(stdout);
    free(ids);
    free(lens);
    free(pout);
    free(pass);
    for (size_t i = 0; i < nc; i++) free(ps[i]);
    free(ps);
    for (size_t i = 0; i < nq; i++) free(qs[i]);
    free(qs);
    free(out);
    free(ms);
    ragd_wordpiece_destroy(tok);
    ragd_bert_destroy(m);
    ragd_embedder_destroy(e);
    return 0;
}

int main(int argc, char **argv) {
    if (ragd_cpu_fix_openblas_env()) execv("/proc/self/exe", argv);
    const char *model = "/tmp/bge", *prec_arg = "both";
    int threads = 0, reps = 20, n_pass = 1000;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},     {"threads", required_argument, 0, 't'},
        {"reps", required_argument, 0, 'r'},      {"passages", required_argument, 0, 'p'},
        {"precision", required_argument, 0, 'x'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'm')
            model = optarg;
        else if (c == 't')
            threads = atoi(optarg);
        else if (c == 'r')
            reps = atoi(optarg);
        else if (c == 'p')
            n_pass = atoi(optarg);
        else if (c == 'x')
            prec_arg = optarg;
        else {
            fprintf(stderr, "usage: bench_embed [--model DIR] [--threads N] [--reps R] "
                            "[--passages N] [--precision f32|bf16|both]\n");
            return 2;
        }
    }
    if (reps < 1 || n_pass < 1) return 2;
    ragd_cpu_features f;
    ragd_cpu_detect(&f);
    if (threads <= 0) threads = f.n_cpus;
    /* the ceilings, measured first with the same thread count (this also fixes OpenBLAS's
     * thread count for the rest of the run) */
    double peak = ragd_probe_sgemm_gflops(threads, 2048);
    ragd_pool *pool = ragd_pool_create(threads);
    const bool amx = ragd_amx_available();
    double amx_peak = amx ? probe_amx_gflops(pool, 2048) : 0;
    printf("machine: %s, %d CPUs, %d threads; OPENBLAS_CORETYPE=%s; AMX %s\n", f.model_name,
           f.n_cpus, threads, getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "(auto)",
           amx ? "yes" : "no");
    printf("model: %s\n", model);
    printf("sgemm f32 peak (OpenBLAS, 2048^3): %.1f GFLOP/s; bf16 AMX GEMM (ours, 2048^3): %.1f "
           "GFLOP/s\n",
           peak, amx_peak);
    fflush(stdout);
    int rc = 0;
    if (!strcmp(prec_arg, "f32") || !strcmp(prec_arg, "both"))
        rc |= run_precision(model, "f32", pool, reps, n_pass, peak);
    if ((!strcmp(prec_arg, "bf16") || !strcmp(prec_arg, "both")) && amx)
        rc |= run_precision(model, "bf16", pool, reps, n_pass, amx_peak);
    ragd_pool_destroy(pool);
    return rc;
}
