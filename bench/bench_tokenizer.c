/* bench_tokenizer: encode throughput of the Qwen2.5 tokenizer on the CMRC 2018 corpus.
 *
 *   bench_tokenizer [MODEL_DIR] [CORPUS_JSONL] [PASSES]
 *
 * Reports, for the same text in the same run: the floor set by the pre-tokenizer regex alone
 * (PCRE2 JIT scanning the text with the tokenizer.json pattern), full encode (added tokens,
 * NFC, regex, BPE) over every passage, 2,000-token RAG-sized prompts, decode, and encode
 * with 2 threads. Figures are the best of PASSES passes.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <cjson/cJSON.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tokenizer/tokenizer.h"
#include "util/clock.h"
#include "util/str.h"

typedef struct corpus {
    char **text;
    size_t *len;
    size_t n, bytes;
} corpus;

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double now_s(void) {
    return (double)ragd_now_ns() * 1e-9;
}

static int load_corpus(const char *path, corpus *c) {
    char *data;
    size_t len;
    ragd_err err = {0};
    if (ragd_read_file(path, &data, &len, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    memset(c, 0, sizeof *c);
    for (char *line = strtok(data, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *t = cJSON_GetObjectItem(j, "text");
        if (cJSON_IsString(t)) {
            c->text = realloc(c->text, (c->n + 1) * sizeof *c->text);
            c->len = realloc(c->len, (c->n + 1) * sizeof *c->len);
            c->text[c->n] = strdup(t->valuestring);
            c->len[c->n] = strlen(t->valuestring);
            c->bytes += c->len[c->n];
            c->n++;
        }
        cJSON_Delete(j);
    }
    free(data);
    return c->n ? 0 : -1;
}

static pcre2_code *load_regex(const char *dir) {
    char path[4096], *data;
    size_t len;
    ragd_err err = {0};
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (ragd_read_file(path, &data, &len, &err)) return NULL;
    cJSON *root = cJSON_Parse(data);
    free(data);
    const cJSON *seq =
        cJSON_GetObjectItem(cJSON_GetObjectItem(root, "pre_tokenizer"), "pretokenizers");
    const cJSON *pat =
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(seq, 0), "pattern"), "Regex");
    pcre2_code *re = NULL;
    if (cJSON_IsString(pat)) {
        int ec;
        PCRE2_SIZE eo;
        re = pcre2_compile((PCRE2_SPTR)pat->valuestring, PCRE2_ZERO_TERMINATED,
                           PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
        if (re) pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    }
    cJSON_Delete(root);
    return re;
}

typedef struct job {
    const ragd_tokenizer *tok;
    const corpus *c;
    size_t first, step, tokens;
} job;

static void *encode_job(void *arg) {
    job *j = arg;
    for (size_t i = j->first; i < j->c->n; i += j->step) {
        int32_t *ids;
        size_t n;
        ragd_err err = {0};
        if (ragd_tokenizer_encode(j->tok, j->c->text[i], j->c->len[i], &ids, &n, &err)) abort();
        j->tokens += n;
        free(ids);
    }
    return NULL;
}

int main(int argc, char **argv) {
    char dflt_model[4096], dflt_corpus[4096];
    const char *model =
        argc > 1 ? argv[1] : ragd_shared_path(dflt_model, sizeof dflt_model, "models/qwen2-tiny");
    const char *cpath =
        argc > 2 ? argv[2]
                 : ragd_shared_path(dflt_corpus, sizeof dflt_corpus, "data/cmrc2018/corpus.jsonl");
    int passes = argc > 3 ? atoi(argv[3]) : 5;
    if (passes < 1) passes = 1;
    corpus c;
    if (load_corpus(cpath, &c)) {
        fprintf(stderr, "cannot read corpus %s\n", cpath);
        return 1;
    }
    double t0 = now_s();
    ragd_tokenizer *tok;
    ragd_err err = {0};
    if (ragd_tokenizer_load(model, &tok, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double t_load = now_s() - t0;
    pcre2_code *re = load_regex(model);
    if (!re) {
        fprintf(stderr, "cannot compile the pre-tokenizer regex\n");
        return 1;
    }
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);

    double la0[3] = {0}, la1[3] = {0};
    getloadavg(la0, 3);
    double cpu_enc = 1e30, cpu_prompt = 1e30;
    double best_re = 1e30, best_enc = 1e30, best_dec = 1e30, best_prompt = 1e30, best_mt = 1e30;
    size_t tokens = 0, words = 0;
    /* 2,000-token prompts: passages concatenated until the prompt has >= 2000 tokens */
    ragd_buf prompt = {0};
    size_t prompt_tokens = 0;
    for (size_t i = 0; i < c.n && prompt_tokens < 2000; i++) {
        ragd_buf_append(&prompt, c.text[i], c.len[i]);
        ragd_buf_putc(&prompt, '\n');
        int32_t *ids;
        size_t n;
        ragd_tokenizer_encode(tok, prompt.data, prompt.len, &ids, &n, &err);
        prompt_tokens = n;
        free(ids);
    }
    for (int p = 0; p < passes; p++) {
        double t = now_s();
        words = 0;
        for (size_t i = 0; i < c.n; i++) {
            size_t pos = 0;
            while (pos < c.len[i] && pcre2_match(re, (PCRE2_SPTR)c.text[i], c.len[i], pos,
                                                 PCRE2_NO_UTF_CHECK, md, NULL) > 0) {
                pos = pcre2_get_ovector_pointer(md)[1];
                words++;
            }
        }
        t = now_s() - t;
        if (t < best_re) best_re = t;

        /* encode every passage (timed alone), then decode them (timed alone) */
        int32_t **all = calloc(c.n, sizeof *all);
        size_t *cnt = calloc(c.n, sizeof *cnt);
        t = now_s();
        double cpu = cpu_s();
        tokens = 0;
        for (size_t i = 0; i < c.n; i++) {
            if (ragd_tokenizer_encode(tok, c.text[i], c.len[i], &all[i], &cnt[i], &err)) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
            tokens += cnt[i];
        }
        t = now_s() - t;
        cpu = cpu_s() - cpu;
        if (t < best_enc) best_enc = t;
        if (cpu < cpu_enc) cpu_enc = cpu;
        ragd_buf *outs = calloc(c.n, sizeof *outs);
        t = now_s();
        for (size_t i = 0; i < c.n; i++)
            ragd_tokenizer_decode(tok, all[i], cnt[i], false, &outs[i], &err);
        t = now_s() - t;
        if (t < best_dec) best_dec = t;
        size_t differ = 0;
        for (size_t i = 0; i < c.n; i++) {
            if (outs[i].len != c.len[i] || memcmp(outs[i].data, c.text[i], c.len[i]) != 0) differ++;
            ragd_buf_free(&outs[i]);
            free(all[i]);
        }
        if (p == 0 && differ)
            printf("note: %zu passages decode to their NFC form, not byte-identical\n", differ);
        free(outs);
        free(all);
        free(cnt);

        t = now_s();
        cpu = cpu_s();
        for (int r = 0; r < 20; r++) {
            int32_t *ids;
            size_t n;
            ragd_tokenizer_encode(tok, prompt.data, prompt.len, &ids, &n, &err);
            free(ids);
        }
        t = (now_s() - t) / 20;
        cpu = (cpu_s() - cpu) / 20;
        if (t < best_prompt) best_prompt = t;
        if (cpu < cpu_prompt) cpu_prompt = cpu;

        job jobs[2] = {{tok, &c, 0, 2, 0}, {tok, &c, 1, 2, 0}};
        pthread_t th[2];
        t = now_s();
        for (int k = 0; k < 2; k++) pthread_create(&th[k], NULL, encode_job, &jobs[k]);
        for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
        t = now_s() - t;
        if (t < best_mt) best_mt = t;
    }
    getloadavg(la1, 3);
    double mb = (double)c.bytes / 1e6;
    printf("load average (1 min) before/after: %.2f / %.2f on %ld online CPUs\n", la0[0], la1[0],
           sysconf(_SC_NPROCESSORS_ONLN));
    printf("corpus: %zu passages, %.2f MB, %zu tokens (%.2f bytes/token), %zu regex words\n", c.n,
           mb, tokens, (double)c.bytes / (double)tokens, words);
    printf("tokenizer load:           %8.1f ms\n", t_load * 1e3);
    printf("regex split only (floor): %8.2f MB/s\n", mb / best_re);
    printf("encode, 1 thread:         %8.2f MB/s  %10.0f tokens/s  (%.2fx the regex-only time)\n",
           mb / best_enc, (double)tokens / best_enc, best_enc / best_re);
    printf("encode, 1 thread, CPU time: %6.2f MB/s  %10.0f tokens/s\n", mb / cpu_enc,
           (double)tokens / cpu_enc);
    printf("encode, 2 threads:        %8.2f MB/s  %10.0f tokens/s  (%.2fx 1 thread)\n",
           mb / best_mt, (double)tokens / best_mt, best_enc / best_mt);
    printf("2000-token prompt (%zu tokens, %zu bytes): %.3f ms per encode (%.3f ms CPU time)\n",
           prompt_tokens, prompt.len, best_prompt * 1e3, cpu_prompt * 1e3);
    printf("decode:                   %8.2f MB/s  %10.0f tokens/s\n", mb / best_dec,
           (double)tokens / best_dec);
    ragd_buf_free(&prompt);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    ragd_tokenizer_destroy(tok);
    for (size_t i = 0; i < c.n; i++) free(c.text[i]);
    free(c.text);
    free(c.len);
    return 0;
}
