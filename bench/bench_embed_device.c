/* bench_embed_device - `ragd`'s own embedding engine on a chosen device (cpu or cuda), end to
 * end through ragd_embedder_embed (tokenize, batch, forward, pooling, L2): texts/s in calls of
 * --batch texts (default 64, the GPU figure) for two sets - short CMRC2018 questions and
 * CMRC2018 passages - plus the seed's case (50 questions of ~20 tokens as one call, ms).
 * The GPU reference (sentence-transformers fp16, same GPU, same run) comes from
 * bench/embed_gpu.sh; this program measures ragd itself.
 *   bench_embed_device --model DIR [--device cuda] [--batch 64] [--n 1024] [--reps 5]
 */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embed/embed.h"
#include "util/clock.h"
#include "util/str.h"
#include "util/threadpool.h"

static char **load_jsonl(const char *rel, size_t *n) {
    char path[4096];
    ragd_shared_path(path, sizeof path, rel);
    char *data = NULL;
    size_t len = 0;
    ragd_err err = {0};
    if (ragd_read_file(path, &data, &len, &err)) {
        fprintf(stderr, "bench_embed_device: %s\n", err.msg);
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

/* n texts (cycled from the set) in calls of `batch`; best of reps; returns texts/s. */
static double run_set(ragd_embedder *e, char **set, size_t nset, size_t n, size_t batch, int reps,
                      float *out, long *tokens) {
    const char **texts = malloc(n * sizeof *texts);
    for (size_t i = 0; i < n; i++) texts[i] = set[i % nset];
    int *nt = malloc(batch * sizeof *nt);
    double best = 1e30;
    ragd_err err = {0};
    for (int r = -1; r < reps; r++) {
        long tok = 0;
        double t0 = ragd_now_s();
        for (size_t i = 0; i < n; i += batch) {
            size_t k = n - i < batch ? n - i : batch;
            if (ragd_embedder_embed(e, texts + i, NULL, k, out, nt, NULL, &err)) {
                fprintf(stderr, "bench_embed_device: %s\n", err.msg);
                exit(1);
            }
            for (size_t j = 0; j < k; j++) tok += nt[j];
        }
        double dt = ragd_now_s() - t0;
        if (r >= 0 && dt < best) best = dt, *tokens = tok;
    }
    free(texts);
    free(nt);
    return (double)n / best;
}

int main(int argc, char **argv) {
    const char *model = NULL, *device = "cpu", *precision = "f32";
    int batch = 64, n = 1024, reps = 5, threads = 0;
    static struct option opts[] = {
        {"model", required_argument, 0, 'm'},     {"device", required_argument, 0, 'd'},
        {"precision", required_argument, 0, 'p'}, {"batch", required_argument, 0, 'b'},
        {"n", required_argument, 0, 'n'},         {"reps", required_argument, 0, 'r'},
        {"threads", required_argument, 0, 't'},   {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case 'm':
                model = optarg;
                break;
            case 'd':
                device = optarg;
                break;
            case 'p':
                precision = optarg;
                break;
            case 'b':
                batch = atoi(optarg);
                break;
            case 'n':
                n = atoi(optarg);
                break;
            case 'r':
                reps = atoi(optarg);
                break;
            case 't':
                threads = atoi(optarg);
                break;
            default:
                fprintf(stderr, "usage: bench_embed_device --model DIR [--device cpu|cuda] "
                                "[--precision f32|bf16] [--batch 64] [--n 1024] [--reps 5] "
                                "[--threads N]\n");
                return 2;
        }
    }
    if (!model || batch < 1 || n < 1 || reps < 1) {
        fprintf(stderr, "bench_embed_device: --model DIR is required (and positive sizes)\n");
        return 2;
    }
    ragd_pool *pool = ragd_pool_create(threads);
    ragd_embedder_opts eo = {
        .model_dir = model, .device = device, .pool = pool, .precision = precision};
    ragd_embedder *e = NULL;
    ragd_err err = {0};
    double t0 = ragd_now_s();
    if (ragd_embedder_create(&eo, &e, &err)) {
        fprintf(stderr, "bench_embed_device: %s\n", err.msg);
        return 1;
    }
    printf("model %s on %s, loaded in %.2f s; calls of %d texts, best of %d\n", model, device,
           ragd_now_s() - t0, batch, reps);
    size_t nq = 0, np = 0;
    char **qs = load_jsonl("data/cmrc2018/queries.jsonl", &nq);
    char **ps = load_jsonl("data/cmrc2018/corpus.jsonl", &np);
    float *out = malloc((size_t)(batch > 50 ? batch : 50) * ragd_embedder_dim(e) * sizeof(float));
    long tq = 0, tp = 0;
    double q = run_set(e, qs, nq, (size_t)n, (size_t)batch, reps, out, &tq);
    double p = run_set(e, ps, np, (size_t)n, (size_t)batch, reps, out, &tp);
    printf("EMBED %s questions: %.0f texts/s (%.0f tokens/s, %.1f tokens per text)\n", device, q,
           q * (double)tq / n, (double)tq / n);
    printf("EMBED %s passages: %.0f texts/s (%.0f tokens/s, %.1f tokens per text)\n", device, p,
           p * (double)tp / n, (double)tp / n);
    /* the seed's case: 50 questions as one call (the first 50; median of reps) */
    double best = 1e30;
    for (int r = -1; r < 3 * reps; r++) {
        double t1 = ragd_now_s();
        if (ragd_embedder_embed(e, (const char *const *)qs, NULL, nq < 50 ? nq : 50, out, NULL,
                                NULL, &err)) {
            fprintf(stderr, "bench_embed_device: %s\n", err.msg);
            return 1;
        }
        double dt = ragd_now_s() - t1;
        if (r >= 0 && dt < best) best = dt;
    }
    printf("EMBED %s 50 questions in one call: %.2f ms (best of %d)\n", device, best * 1e3,
           3 * reps);
    ragd_embedder_destroy(e);
    ragd_pool_destroy(pool);
    free(out);
    return 0;
}
