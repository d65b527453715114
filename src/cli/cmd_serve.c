/* ragd serve: the OpenAI-compatible server. Binds first (so /health answers 503 while the
 * model loads), loads backend + tokenizer + engine on a background thread, then serves until
 * SIGINT/SIGTERM: the engine is stopped first (open requests finish with "abort"), then HTTP. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/cpu/cpu_backend.h"
#ifdef RAGD_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif
#include "cli/commands.h"
#include "embed/embed.h"
#include "embed/embed_api.h"
#include "engine/engine.h"
#include "http/openai.h"
#include "http/rag_routes.h"
#include "http/server.h"
#include "kb/kb.h"
#include "kb/kb_embed.h"
#include "kb/search_api.h"
#include "rag/fragment.h"
#include "rag/rag.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/str.h"
#include "util/threadpool.h"

static const char *USAGE =
    "usage: ragd serve --model DIR [options]\n"
    "  --model DIR                  Hugging Face model directory (Qwen2 / Llama)\n"
    "  --served-model-name NAME     model id in the API (default: directory name)\n"
    "  --device cpu|cuda            compute backend (default cpu)\n"
    "  --threads N                  CPU worker threads (default: all CPUs)\n"
    "  --host H                     bind address (default 127.0.0.1)\n"
    "  --port P                     TCP port (default 8080; 0 = any free port)\n"
    "  --api-key KEY                require 'Authorization: Bearer KEY' on /v1/* and friends\n"
    "  --max-num-seqs N             running sequences at most (default 64)\n"
    "  --max-num-batched-tokens N   tokens per engine step (default 2048)\n"
    "  --max-model-len N            prompt + output tokens (default: the model's maximum)\n"
    "  --kv-blocks N | --kv-cache-mb N   KV cache size (default: backend budget or 512 MiB)\n"
    "  --block-size N               tokens per KV block (default 16)\n"
    "  --max-waiting N              waiting-queue bound; beyond it 503 (default 1024)\n"
    "  --request-timeout S          seconds before a request is cancelled (default 600)\n"
    "  --max-body-mb N              request body limit (default 8)\n"
    "  --http-threads N             HTTP worker threads (default 4)\n"
    "  --no-prefix-caching          do not share KV blocks between equal prompt prefixes\n"
    "  --gpu-memory-utilization F   CUDA: fraction of GPU memory to use (default 0.90)\n"
    "  --bf16-prefill               CPU: bf16 activations for prompt chunks of 16+ tokens (AMX\n"
    "                               or AVX512-BF16: 4x faster prefill where AMX is; logits move\n"
    "                               ~1e-2; decode and the LM head stay f32)\n"
    "  --embed-model DIR            serve /v1/embeddings; with --kb also the query embedder\n"
    "                               of hybrid / vector search and RAG\n"
    "  --kb FILE                    knowledge base: /v1/search, RAG answers (/v1/rag/chat,\n"
    "                               /text-generation\n"
    "                               through RAG, GET /v1/indexes) and the chat page at GET /\n"
    "  --rag-top-k N                sources per RAG answer (default 10)\n"
    "  --stream-min-chars N         /text-generation fragments of at least N characters\n"
    "                               (default 5) ...\n"
    "  --stream-punct CHARS         ... or up to one of these characters (default\n"
    "                               ，。！？；：、,.!?;: and newline)\n"
    "  --port-file FILE             write the bound port here once listening\n";

typedef struct serve_cfg {
    const char *model, *device, *served_name;
    int threads;
    /* RAG (with --kb) */
    ragd_kb *kb;
    const ragd_kb_embedder *kb_emb;
    ragd_rag_http *rag_http;
    ragd_metrics *metrics;
    int rag_top_k;
    ragd_engine_opts eo;
    float gpu_util;
    bool bf16_prefill;
} serve_cfg;

/* /v1/embeddings and /v1/search: the embeddings and knowledge-base modules' transport-free
 * handlers behind our router; answered once the model is loaded (503 until then). */
typedef struct extras {
    ragd_serve_app *app;
    ragd_embedder *emb;           /* --embed-model: one engine shared with search and RAG */
    ragd_kb *kb;                  /* --kb */
    const ragd_kb_embedder *kemb; /* the kb's view of emb (NULL: BM25 only) */
} extras;

static void reply_buf(ragd_http_req *req, int status, ragd_buf *out) {
    if (!out->data)
        ragd_http_reply_error(req, 500, "server_error", NULL, NULL, "out of memory");
    else
        ragd_http_reply_json(req, status, out->data);
    ragd_buf_free(out);
}

static bool extras_ready(extras *x, ragd_http_req *req) {
    if (atomic_load(&x->app->state) == 1) return true;
    ragd_http_reply_header(req, "Retry-After", "5");
    ragd_http_reply_error(req, 503, "server_error", NULL, "model_loading",
                          "the models are still loading");
    return false;
}

static void h_embeddings(void *ctx, ragd_http_req *req) {
    extras *x = ctx;
    if (!extras_ready(x, req)) return;
    size_t n;
    const char *body = ragd_http_req_body(req, &n);
    ragd_buf out = {0};
    int status = 500;
    ragd_embed_api_handle(x->emb, body, n, &out, &status);
    reply_buf(req, status, &out);
}

static void h_search(void *ctx, ragd_http_req *req) {
    extras *x = ctx;
    if (!extras_ready(x, req)) return;
    size_t n;
    const char *body = ragd_http_req_body(req, &n);
    ragd_buf out = {0};
    int status = 500;
    ragd_kb_search_api_handle(x->kb, x->kemb, body, n, &out, &status);
    reply_buf(req, status, &out);
}

typedef struct loader {
    serve_cfg *cfg;
    ragd_serve_app *app;
    ragd_pool *pool;
    ragd_backend *be;
    ragd_tokenizer *tok;
    ragd_chat_template *tmpl;
    ragd_engine *engine;
    ragd_rag *rag;
    int failed;
} loader;

static void *load_main(void *arg) {
    loader *L = arg;
    serve_cfg *c = L->cfg;
    ragd_err err = {0};
    int rc;
    if (!strcmp(c->device, "cuda")) {
#ifdef RAGD_HAVE_CUDA
        ragd_cuda_opts co = {0};
        co.gpu_memory_utilization = c->gpu_util;
        co.max_num_seqs = c->eo.max_num_seqs > 0 ? c->eo.max_num_seqs : 64;
        co.max_num_batched_tokens =
            c->eo.max_num_batched_tokens > 0 ? c->eo.max_num_batched_tokens : 2048;
        rc = ragd_cuda_backend_create(c->model, &co, &L->be, &err);
#else
        rc = ragd_err_set(&err, RAGD_EUNSUPPORTED,
                          "this ragd was built without CUDA (nvcc not found at build time)");
#endif
    } else {
        rc = ragd_cpu_backend_create(c->model, L->pool, &L->be, &err);
        if (!rc && c->bf16_prefill && !ragd_cpu_backend_set_bf16_prefill(L->be, true))
            LOG_WARN("serve: --bf16-prefill unavailable (this CPU lacks avx512_bf16): exact "
                     "f32 prefill");
    }
    if (!rc) rc = ragd_tokenizer_load(c->model, &L->tok, &err);
    if (!rc) {
        const char *ts = ragd_tokenizer_chat_template(L->tok);
        if (ts) {
            ragd_err terr = {0};
            if (ragd_chat_template_create(ts, &L->tmpl, &terr))
                LOG_WARN("serve: chat template not supported (%s); chat endpoints disabled",
                         terr.msg);
        } else {
            LOG_WARN("serve: the model has no chat template; chat endpoints disabled");
        }
    }
    if (!rc) rc = ragd_engine_create(L->be, &c->eo, &L->engine, &err);
    if (rc) {
        LOG_ERROR("serve: cannot load %s: %s", c->model, err.msg);
        ragd_serve_app_set_failed(L->app, err.msg);
        L->failed = 1;
        kill(getpid(), SIGTERM);
        return NULL;
    }
    ragd_engine_stats st;
    ragd_engine_get_stats(L->engine, &st);
    const char *name = c->served_name ? c->served_name : L->be->cfg.model_name;
    if (c->kb) {
        ragd_rag_opts ro = {.kb = c->kb,
                            .emb = c->kb_emb,
                            .engine = L->engine,
                            .tok = L->tok,
                            .top_k = c->rag_top_k,
                            .metrics = c->metrics};
        if (ragd_rag_create(&ro, &L->rag, &err)) {
            LOG_ERROR("serve: RAG disabled: %s", err.msg);
        } else {
            ragd_rag_http_set_ready(c->rag_http, L->rag, name);
        }
    }
    ragd_serve_app_set_ready(L->app, L->engine, L->tok, L->tmpl, name);
    LOG_INFO("serve: model '%s' ready on %s: %d KV blocks x %d tokens, max model len %d", name,
             L->be->name, st.blocks_total, st.block_size, st.max_model_len);
    return NULL;
}

static int int_arg(const char *name, const char *v, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < lo || x > hi) {
        fprintf(stderr, "ragd serve: %s must be an integer in [%ld, %ld], got '%s'\n", name, lo, hi,
                v);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int run_serve(int argc, char **argv) {
    serve_cfg cfg = {0};
    cfg.device = "cpu";
    cfg.gpu_util = 0.90f;
    ragd_http_opts ho = {0};
    ho.host = "127.0.0.1";
    ho.port = 8080;
    int kv_mb = 0, max_body_mb = 8, timeout_s = 600;
    const char *embed_model = NULL, *kb = NULL, *port_file = NULL, *stream_punct = NULL;
    int stream_min_chars = RAGD_FRAG_DEFAULT_MIN_CHARS;
    enum {
        O_MODEL = 256,
        O_DEVICE,
        O_THREADS,
        O_HOST,
        O_PORT,
        O_KEY,
        O_SEQS,
        O_BATCHED,
        O_LEN,
        O_BLOCKS,
        O_KVMB,
        O_BS,
        O_WAIT,
        O_TIMEOUT,
        O_BODY,
        O_HTHREADS,
        O_NOPC,
        O_GPU,
        O_BF16,
        O_EMBED,
        O_KB,
        O_NAME,
        O_PORTFILE,
        O_RAGK,
        O_SMIN,
        O_SPUNCT
    };
    static const struct option opts[] = {
        {"model", required_argument, 0, O_MODEL},
        {"device", required_argument, 0, O_DEVICE},
        {"threads", required_argument, 0, O_THREADS},
        {"host", required_argument, 0, O_HOST},
        {"port", required_argument, 0, O_PORT},
        {"api-key", required_argument, 0, O_KEY},
        {"max-num-seqs", required_argument, 0, O_SEQS},
        {"max-num-batched-tokens", required_argument, 0, O_BATCHED},
        {"max-model-len", required_argument, 0, O_LEN},
        {"kv-blocks", required_argument, 0, O_BLOCKS},
        {"kv-cache-mb", required_argument, 0, O_KVMB},
        {"block-size", required_argument, 0, O_BS},
        {"max-waiting", required_argument, 0, O_WAIT},
        {"request-timeout", required_argument, 0, O_TIMEOUT},
        {"max-body-mb", required_argument, 0, O_BODY},
        {"http-threads", required_argument, 0, O_HTHREADS},
        {"no-prefix-caching", no_argument, 0, O_NOPC},
        {"gpu-memory-utilization", required_argument, 0, O_GPU},
        {"bf16-prefill", no_argument, 0, O_BF16},
        {"embed-model", required_argument, 0, O_EMBED},
        {"kb", required_argument, 0, O_KB},
        {"served-model-name", required_argument, 0, O_NAME},
        {"port-file", required_argument, 0, O_PORTFILE},
        {"rag-top-k", required_argument, 0, O_RAGK},
        {"stream-min-chars", required_argument, 0, O_SMIN},
        {"stream-punct", required_argument, 0, O_SPUNCT},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int c, bad = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case O_MODEL:
                cfg.model = optarg;
                break;
            case O_DEVICE:
                cfg.device = optarg;
                break;
            case O_THREADS:
                bad |= int_arg("--threads", optarg, 1, 1024, &cfg.threads);
                break;
            case O_HOST:
                ho.host = optarg;
                break;
            case O_PORT:
                bad |= int_arg("--port", optarg, 0, 65535, &ho.port);
                break;
            case O_KEY:
                ho.api_key = optarg;
                break;
            case O_SEQS:
                bad |= int_arg("--max-num-seqs", optarg, 1, 4096, &cfg.eo.max_num_seqs);
                break;
            case O_BATCHED:
                bad |= int_arg("--max-num-batched-tokens", optarg, 1, 1 << 20,
                               &cfg.eo.max_num_batched_tokens);
                break;
            case O_LEN:
                bad |= int_arg("--max-model-len", optarg, 2, 1 << 22, &cfg.eo.max_model_len);
                break;
            case O_BLOCKS:
                bad |= int_arg("--kv-blocks", optarg, 1, 1 << 26, &cfg.eo.n_blocks);
                break;
            case O_KVMB:
                bad |= int_arg("--kv-cache-mb", optarg, 1, 1 << 24, &kv_mb);
                break;
            case O_BS:
                bad |= int_arg("--block-size", optarg, 1, 1024, &cfg.eo.block_size);
                break;
            case O_WAIT:
                bad |= int_arg("--max-waiting", optarg, 1, 1 << 20, &cfg.eo.max_waiting);
                break;
            case O_TIMEOUT:
                bad |= int_arg("--request-timeout", optarg, 0, 1 << 24, &timeout_s);
                break;
            case O_BODY:
                bad |= int_arg("--max-body-mb", optarg, 1, 4096, &max_body_mb);
                break;
            case O_HTHREADS:
                bad |= int_arg("--http-threads", optarg, 1, 256, &ho.threads);
                break;
            case O_NOPC:
                cfg.eo.no_prefix_caching = true;
                break;
            case O_BF16:
                cfg.bf16_prefill = true;
                break;
            case O_GPU: {
                char *end;
                double d = strtod(optarg, &end);
                if (end == optarg || *end || !(d > 0 && d <= 1)) {
                    fprintf(stderr, "ragd serve: --gpu-memory-utilization must be in (0, 1]\n");
                    bad = 1;
                }
                cfg.gpu_util = (float)d;
                break;
            }
            case O_EMBED:
                embed_model = optarg;
                break;
            case O_KB:
                kb = optarg;
                break;
            case O_NAME:
                cfg.served_name = optarg;
                break;
            case O_PORTFILE:
                port_file = optarg;
                break;
            case O_RAGK:
                bad |= int_arg("--rag-top-k", optarg, 1, 100, &cfg.rag_top_k);
                break;
            case O_SMIN:
                bad |= int_arg("--stream-min-chars", optarg, 0, 1 << 20, &stream_min_chars);
                break;
            case O_SPUNCT:
                stream_punct = optarg;
                break;
            case 'h':
                fputs(USAGE, stdout);
                return 0;
            default:
                fputs(USAGE, stderr);
                return 2;
        }
    }
    if (bad) return 2;
    if (optind < argc) {
        fprintf(stderr, "ragd serve: unexpected argument '%s'\n%s", argv[optind], USAGE);
        return 2;
    }
    if (!cfg.model) {
        fprintf(stderr, "ragd serve: --model DIR is required\n%s", USAGE);
        return 2;
    }
    if (strcmp(cfg.device, "cpu") && strcmp(cfg.device, "cuda")) {
        fprintf(stderr, "ragd serve: --device must be cpu or cuda\n");
        return 2;
    }
    if (cfg.bf16_prefill && strcmp(cfg.device, "cpu")) {
        fprintf(stderr, "ragd serve: --bf16-prefill is a CPU option (CUDA computes in bf16)\n");
        return 2;
    }
#ifndef RAGD_HAVE_CUDA
    if (!strcmp(cfg.device, "cuda")) {
        fprintf(stderr, "ragd serve: --device cuda: this ragd was built without CUDA "
                        "(nvcc was not found at build time)\n");
        return 2;
    }
#endif
    if (embed_model && !ragd_dir_exists(embed_model)) {
        fprintf(stderr, "ragd serve: embedding model directory '%s' not found\n", embed_model);
        return 1;
    }
    if (!ragd_dir_exists(cfg.model)) {
        fprintf(stderr, "ragd serve: model directory '%s' not found\n", cfg.model);
        return 1;
    }
    if (kv_mb) cfg.eo.kv_cache_bytes = (size_t)kv_mb << 20;
    ho.max_body = (size_t)max_body_mb << 20;

    /* Signals are taken by sigwait() in this thread only. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    ragd_metrics *metrics = ragd_metrics_create();
    ragd_serve_app app;
    memset(&app, 0, sizeof app);
    app.metrics = metrics;
    app.request_timeout_s = timeout_s;
    app.max_n = 16;
    cfg.eo.metrics = metrics;
    ho.metrics = metrics;
    ragd_http_server *srv = NULL;
    ragd_err err = {0};
    int exit_code = 0;
    ragd_pool *pool = NULL;
    ragd_kb_embedder *kb_emb = NULL;
    extras x = {.app = &app};
    pool = ragd_pool_create(cfg.threads);
    cfg.metrics = metrics;
    if (embed_model) {
        ragd_embedder_opts eo = {.model_dir = embed_model, .device = cfg.device, .pool = pool};
        if (ragd_embedder_create(&eo, &x.emb, &err)) {
            fprintf(stderr, "ragd serve: --embed-model %s: %s\n", embed_model, err.msg);
            ragd_pool_destroy(pool);
            ragd_metrics_destroy(metrics);
            return 1;
        }
    }
    if (kb) {
        /* RAG: the knowledge base (created empty when absent: the endpoints then say so),
         * its query embedder, and the routes; the pipeline is published once the model is
         * loaded (until then 503 "loading"). Registered before the OpenAI routes so that
         * /text-generation answers through RAG. */
        ragd_kb_opts ko = {.path = kb, .pool = pool};
        ragd_rag_http_opts rho = {.stream_min_chars = (size_t)stream_min_chars,
                                  .stream_punct = stream_punct};
        if (ragd_kb_open(&ko, &cfg.kb, &err) ||
            (x.emb && ragd_kb_embedder_from_engine(x.emb, embed_model, &kb_emb, &err))) {
            fprintf(stderr, "ragd serve: %s\n", err.msg);
            ragd_kb_embedder_close(kb_emb);
            ragd_kb_close(cfg.kb);
            ragd_embedder_destroy(x.emb);
            ragd_pool_destroy(pool);
            ragd_metrics_destroy(metrics);
            return 1;
        }
        cfg.kb_emb = kb_emb;
        rho.kb = cfg.kb;
        if (ragd_http_server_create(&ho, &srv, &err) ||
            ragd_rag_http_register(srv, &rho, &cfg.rag_http, &err)) {
            fprintf(stderr, "ragd serve: %s\n", err.msg);
            ragd_http_server_destroy(srv);
            ragd_kb_embedder_close(kb_emb);
            ragd_kb_close(cfg.kb);
            ragd_embedder_destroy(x.emb);
            ragd_pool_destroy(pool);
            ragd_metrics_destroy(metrics);
            return err.code == RAGD_EINVAL ? 2 : 1;
        }
    }
    x.kb = cfg.kb;
    x.kemb = kb_emb;
    bool routes_ok = srv || !ragd_http_server_create(&ho, &srv, &err);
    if (routes_ok) routes_ok = ragd_openai_register(srv, &app) == RAGD_OK;
    if (routes_ok && x.emb)
        routes_ok = ragd_http_route(srv, "POST", "/v1/embeddings", h_embeddings, &x,
                                    RAGD_HTTP_AUTH) == RAGD_OK;
    if (routes_ok && x.kb)
        routes_ok =
            ragd_http_route(srv, "POST", "/v1/search", h_search, &x, RAGD_HTTP_AUTH) == RAGD_OK;
    if (!routes_ok || ragd_http_server_start(srv, &err)) {
        fprintf(stderr, "ragd serve: %s\n", err.msg[0] ? err.msg : "cannot start the server");
        ragd_http_server_destroy(srv);
        ragd_rag_http_destroy(cfg.rag_http);
        ragd_kb_embedder_close(kb_emb);
        ragd_kb_close(cfg.kb);
        ragd_embedder_destroy(x.emb);
        ragd_pool_destroy(pool);
        ragd_metrics_destroy(metrics);
        return 1;
    }
    int port = ragd_http_server_port(srv);
    LOG_INFO("serve: listening on http://%s:%d (loading %s)", ho.host, port, cfg.model);
    if (port_file) {
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%d\n", port);
        ragd_write_file(port_file, buf, (size_t)n, NULL);
    }
    loader L = {.cfg = &cfg, .app = &app, .pool = pool};
    pthread_t lt;
    if (pthread_create(&lt, NULL, load_main, &L)) {
        fprintf(stderr, "ragd serve: cannot start the loader thread\n");
        exit_code = 1;
    } else {
        int sig = 0;
        sigwait(&set, &sig);
        pthread_join(lt, NULL);
        if (L.failed)
            exit_code = 1;
        else
            LOG_INFO("serve: signal %d, shutting down", sig);
    }
    ragd_engine_destroy(L.engine); /* aborts open requests; their replies go out */
    ragd_http_server_destroy(srv);
    ragd_rag_http_destroy(cfg.rag_http);
    ragd_rag_destroy(L.rag);
    ragd_kb_embedder_close(kb_emb);
    ragd_kb_close(cfg.kb);
    ragd_embedder_destroy(x.emb);
    if (L.be) L.be->ops->destroy(L.be);
    ragd_chat_template_destroy(L.tmpl);
    ragd_tokenizer_destroy(L.tok);
    ragd_pool_destroy(pool);
    ragd_metrics_destroy(metrics);
    return exit_code;
}

RAGD_COMMAND(serve, 30, "OpenAI-compatible API server with continuous batching", run_serve)
