/* bench_sampler: host-side sampling cost per logits row (engine/sampler.h), the step that runs
 * once per sequence per decode step after the forward pass.
 *
 *   bench_sampler [--vocab 151936] [--reps 200]
 *
 * One logits row of `vocab` entries (Gaussian, sd 3, with a few tokens 8-12 above the rest, the
 * shape of a language model's logits), then for each parameter set the median over reps of
 * ragd_sampler_sample (the row is restored before every call, outside the timing; the prompt
 * has 600 ids for the penalties). Reference in the same run: one copy of the row (memcpy), the
 * floor for any pass over the logits.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sampler.h"
#include "util/clock.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int V = 151936, reps = 200;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--vocab") && i + 1 < argc)
            V = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_sampler [--vocab N] [--reps N]\n");
            return 2;
        }
    }
    if (V < 16 || reps < 3) {
        fprintf(stderr, "bench_sampler: bad sizes\n");
        return 2;
    }
    float *row = malloc(sizeof(float) * (size_t)V), *work = malloc(sizeof(float) * (size_t)V);
    double *t = malloc(sizeof(double) * (size_t)reps);
    if (!row || !work || !t) return 1;
    ragd_rng r;
    ragd_rng_seed(&r, 7);
    for (int i = 0; i < V; i++) {
        double u1 = ragd_rng_uniform(&r) + 1e-12, u2 = ragd_rng_uniform(&r);
        row[i] = (float)(3.0 * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
    for (int i = 0; i < 8; i++) row[(i * 7919) % V] += 8.0f + (float)i * 0.5f;
    int32_t prompt[600];
    for (int i = 0; i < 600; i++) prompt[i] = (int32_t)((i * 104729) % V);

    /* reference: one copy of the row */
    for (int k = 0; k < reps; k++) {
        double t0 = ragd_now_s();
        memcpy(work, row, sizeof(float) * (size_t)V);
        t[k] = ragd_now_s() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    printf("vocab %d, median of %d calls\n", V, reps);
    printf("  %-52s %8.1f us\n", "reference: one copy of the row (memcpy)", t[reps / 2] * 1e6);

    struct {
        const char *name;
        float temp, top_p;
        int top_k;
        float min_p, rep;
        int logprobs;
    } cs[] = {
        {"greedy", 0, 1, 0, 0, 1, -1},
        {"greedy + logprobs (top 5)", 0, 1, 0, 0, 1, 5},
        {"temperature 1 (OpenAI default)", 1, 1, 0, 0, 1, -1},
        {"temperature 0.7, top_p 0.8", 0.7f, 0.8f, 0, 0, 1, -1},
        {"Qwen2.5 generation_config (t .7 p .8 k 20 rep 1.05)", 0.7f, 0.8f, 20, 0, 1.05f, -1},
        {"temperature 1, min_p 0.05", 1, 1, 0, 0.05f, 1, -1},
        {"temperature 1 + logprobs (top 5)", 1, 1, 0, 0, 1, 5},
    };
    for (size_t c = 0; c < sizeof cs / sizeof *cs; c++) {
        ragd_sampling_params p;
        ragd_sampling_defaults(&p);
        p.temperature = cs[c].temp;
        p.top_p = cs[c].top_p;
        p.top_k = cs[c].top_k;
        p.min_p = cs[c].min_p;
        p.repetition_penalty = cs[c].rep;
        p.logprobs = cs[c].logprobs;
        p.seed = 1;
        p.has_seed = true;
        ragd_sampler s;
        ragd_err e = {0};
        if (ragd_sampler_init(&s, &p, V, &e)) {
            fprintf(stderr, "bench_sampler: %s\n", e.msg);
            return 1;
        }
        for (int k = 0; k < reps; k++) {
            memcpy(work, row, sizeof(float) * (size_t)V);
            ragd_sample_out o;
            double t0 = ragd_now_s();
            if (ragd_sampler_sample(&s, work, prompt, 600, NULL, 0, NULL, 0, &o, &e)) {
                fprintf(stderr, "bench_sampler: %s\n", e.msg);
                return 1;
            }
            t[k] = ragd_now_s() - t0;
        }
        qsort(t, (size_t)reps, sizeof *t, cmp_double);
        printf("  %-52s %8.1f us\n", cs[c].name, t[reps / 2] * 1e6);
        ragd_sampler_free(&s);
    }
    free(row), free(work), free(t);
    return 0;
}
