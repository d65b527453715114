/* bench_serve_null: `ragd serve` with a backend that does no math, to measure the server's own
 * per-token cost (scheduler step + detokenizer + JSON + SSE + HTTP) with `ragd loadtest`.
 * Everything but the backend is the real server code (http/openai.c, engine/engine.c); the
 * backend's forward_sample returns a cheap deterministic token per position (never EOS).
 * usage: bench_serve_null TOKENIZER_DIR PORT_FILE  (serves on a free port until SIGTERM) */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "http/openai.h"
#include "http/server.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "util/metrics.h"
#include "util/str.h"

static int kv_init(ragd_backend *be, int bs, int n, ragd_err *err) {
    (void)be, (void)bs, (void)n, (void)err;
    return RAGD_OK;
}
static size_t kv_block_bytes(const ragd_backend *be, int bs) {
    (void)be;
    return (size_t)bs * 64;
}
static size_t kv_budget(const ragd_backend *be) {
    (void)be;
    return 0;
}
static int forward(ragd_backend *be, const ragd_batch *b, float *logits, ragd_err *err) {
    (void)be, (void)b, (void)logits;
    return ragd_err_set(err, RAGD_EUNSUPPORTED, "null backend: sampling on the device only");
}
static int forward_sample(ragd_backend *be, const ragd_batch *b, ragd_sample_out *out,
                          ragd_err *err) {
    (void)be, (void)err;
    int k = 0;
    for (int i = 0; i < b->n_seqs; i++) {
        const ragd_batch_seq *s = &b->seqs[i];
        if (!s->want_logits || !s->sampling) continue;
        int pos = s->n_past + s->n_new;
        memset(&out[k], 0, sizeof out[k]);
        out[k].token = 1000 + (pos * 7919) % 20000; /* ordinary vocabulary pieces */
        out[k].logprob = -1.0f;
        k++;
    }
    return RAGD_OK;
}
static int copy_blocks(ragd_backend *be, const int32_t *a, const int32_t *b, int n, ragd_err *e) {
    (void)be, (void)a, (void)b, (void)n, (void)e;
    return RAGD_OK;
}
static void destroy(ragd_backend *be) {
    (void)be;
}

static const ragd_backend_ops OPS = {kv_init,     kv_block_bytes, forward, forward_sample,
                                     copy_blocks, kv_budget,      destroy};

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: bench_serve_null TOKENIZER_DIR PORT_FILE\n");
        return 2;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    ragd_err err = {0};
    ragd_tokenizer *tok = NULL;
    ragd_chat_template *tmpl = NULL;
    if (ragd_tokenizer_load(argv[1], &tok, &err) ||
        ragd_chat_template_create(ragd_tokenizer_chat_template(tok), &tmpl, &err)) {
        fprintf(stderr, "bench_serve_null: %s\n", err.msg);
        return 1;
    }
    ragd_backend be = {0};
    be.ops = &OPS;
    be.name = "null";
    be.cfg.vocab_size = ragd_tokenizer_vocab_size(tok);
    be.cfg.max_pos = 32768;
    be.cfg.n_eos = 0;
    snprintf(be.cfg.model_name, sizeof be.cfg.model_name, "null");
    ragd_metrics *m = ragd_metrics_create();
    ragd_engine_opts eo = {0};
    eo.metrics = m;
    eo.n_blocks = 65536;
    eo.max_num_seqs = 256;
    ragd_engine *eng = NULL;
    if (ragd_engine_create(&be, &eo, &eng, &err)) {
        fprintf(stderr, "bench_serve_null: %s\n", err.msg);
        return 1;
    }
    ragd_serve_app app;
    memset(&app, 0, sizeof app);
    app.metrics = m;
    app.max_n = 16;
    ragd_http_opts ho = {0};
    ho.port = 0;
    ho.metrics = m;
    ragd_http_server *srv = NULL;
    if (ragd_http_server_create(&ho, &srv, &err) || ragd_openai_register(srv, &app) ||
        ragd_http_server_start(srv, &err)) {
        fprintf(stderr, "bench_serve_null: %s\n", err.msg);
        return 1;
    }
    ragd_serve_app_set_ready(&app, eng, tok, tmpl, "null");
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%d\n", ragd_http_server_port(srv));
    ragd_write_file(argv[2], buf, (size_t)n, NULL);
    int sig;
    sigwait(&set, &sig);
    ragd_engine_destroy(eng);
    ragd_http_server_destroy(srv);
    ragd_chat_template_destroy(tmpl);
    ragd_tokenizer_destroy(tok);
    ragd_metrics_destroy(m);
    return 0;
}
