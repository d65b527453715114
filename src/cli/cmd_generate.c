/* ragd generate: one prompt through the CPU backend with streaming output and tok/s on
 * stderr; --json prints {"prompt_ids","ids","text","logprobs"}. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/cuda_backend.h"
#include "cli/commands.h"
#include "engine/generate.h"
#include "engine/sampler.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "util/str.h"
#include "util/threadpool.h"

static const char *USAGE =
    "usage: ragd generate --model DIR (--prompt T | --chat T | --ids 1,2,3) [options]\n"
    "  --model DIR               Hugging Face model directory (Qwen2 / Llama)\n"
    "  --ids LIST                prompt as comma-separated token ids\n"
    "  --max-tokens N            tokens to generate (default 64)\n"
    "  --min-tokens N            no EOS before N tokens (default 0)\n"
    "  --temperature X           0 = greedy (default 0)\n"
    "  --top-k K --top-p P --min-p P\n"
    "  --repetition-penalty R    transformers semantics (default 1)\n"
    "  --presence-penalty X --frequency-penalty X   OpenAI semantics (default 0)\n"
    "  --seed S                  reproducible sampling\n"
    "  --num-beams B             beam search (with --length-penalty X, --early-stopping\n"
    "                            true|false|never)\n"
    "  --ignore-eos              keep going past EOS\n"
    "  --stop STR                stop at this text (not included; repeatable, up to 8)\n"
    "  --device cpu|cuda         compute backend (default cpu)\n"
    "  --threads N               worker threads (default: all CPUs)\n"
    "  --bf16-prefill            bf16 activations for prefill GEMMs (faster, not exact)\n"
    "  --json                    print one JSON object instead of streaming text\n";

static int parse_ids(const char *s, int32_t **out, int *n) {
    int cap = 16, m = 0;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)cap);
    if (!ids) return -1;
    while (*s) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < 0 || v > INT32_MAX) {
            free(ids);
            return -1;
        }
        if (m == cap) {
            cap *= 2;
            int32_t *p = realloc(ids, sizeof(int32_t) * (size_t)cap);
            if (!p) {
                free(ids);
                return -1;
            }
            ids = p;
        }
        ids[m++] = (int32_t)v;
        s = end;
        while (*s == ' ') s++;
        if (*s == ',')
            s++;
        else if (*s) {
            free(ids);
            return -1;
        }
    }
    if (!m) {
        free(ids);
        return -1;
    }
    *out = ids;
    *n = m;
    return 0;
}

static int num_arg(const char *name, const char *v, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || *end || errno || !isfinite(d) || d < lo || d > hi) {
        fprintf(stderr, "ragd generate: %s must be a number in [%g, %g], got '%s'\n", name, lo, hi,
                v);
        return -1;
    }
    *out = d;
    return 0;
}

#define MAX_STOPS 8

typedef struct stream_ctx {
    bool json;
    int n;
    ragd_detok *detok; /* NULL: no tokenizer, print ids */
    ragd_buf text;     /* everything decoded so far */
    size_t emitted;    /* bytes of text already printed */
    size_t cut;        /* end of the text to keep (a stop string starts there) */
    bool stopped;
    const char *stops[MAX_STOPS];
    int n_stops;
} stream_ctx;

/* Scan the decoded text for stop strings; print what is safe (streaming mode). final: no more
 * text will come, so nothing needs to be held back. Returns 1 when a stop string matched. */
static int stream_scan(stream_ctx *c, bool final) {
    size_t end;
    size_t from = c->emitted;
    bool hit = ragd_stop_scan(c->text.data ? c->text.data : "", c->text.len, from, c->stops,
                              c->n_stops, &end);
    if (!hit && final) end = c->text.len;
    if (!c->json && end > c->emitted) {
        fwrite(c->text.data + c->emitted, 1, end - c->emitted, stdout);
        fflush(stdout);
    }
    if (end > c->emitted) c->emitted = end;
    c->cut = hit ? end : c->text.len;
    if (hit) c->stopped = true;
    return hit;
}

static int on_token(void *ud, int32_t tok, float lp) {
    (void)lp;
    stream_ctx *c = ud;
    c->n++;
    if (!c->detok) {
        if (!c->json) {
            printf("%s%d", c->n > 1 ? " " : "", tok);
            fflush(stdout);
        }
        return 0;
    }
    ragd_err e = {0};
    if (ragd_detok_push(c->detok, tok, &c->text, &e)) return 1;
    return stream_scan(c, false);
}

/* Prompt ids from --prompt (raw text) or --chat (one user message through the model's chat
 * template, generation prompt added). */
static int encode_prompt(const ragd_tokenizer *tok, const char *prompt, const char *chat,
                         int32_t **ids, int *n, ragd_err *err) {
    ragd_buf text = {0};
    int rc = 0;
    if (chat) {
        const char *tmpl = ragd_tokenizer_chat_template(tok);
        if (!tmpl) return ragd_err_set(err, RAGD_ENOTFOUND, "the model has no chat_template");
        ragd_chat_template *t = NULL;
        if ((rc = ragd_chat_template_create(tmpl, &t, err))) return rc;
        ragd_chat_msg msg = {"user", chat};
        rc = ragd_chat_render(t, &msg, 1, true, &text, err);
        ragd_chat_template_destroy(t);
        if (rc) {
            ragd_buf_free(&text);
            return rc;
        }
    } else {
        ragd_buf_puts(&text, prompt);
    }
    size_t nn = 0;
    rc = ragd_tokenizer_encode(tok, text.data ? text.data : "", text.len, ids, &nn, err);
    ragd_buf_free(&text);
    if (!rc && nn == 0) {
        free(*ids);
        *ids = NULL;
        return ragd_err_set(err, RAGD_EINVAL, "the prompt encodes to no tokens");
    }
    *n = (int)nn;
    return rc;
}

static int run_generate(int argc, char **argv) {
    enum {
        O_MODEL = 1000,
        O_PROMPT,
        O_CHAT,
        O_IDS,
        O_MAX,
        O_MIN,
        O_TEMP,
        O_TOPK,
        O_TOPP,
        O_MINP,
        O_REP,
        O_PRES,
        O_FREQ,
        O_SEED,
        O_BEAMS,
        O_LP,
        O_ES,
        O_IGN,
        O_THREADS,
        O_DEVICE,
        O_BF16,
        O_JSON,
        O_STOP,
        O_HELP
    };
    static const struct option opts[] = {{"model", required_argument, 0, O_MODEL},
                                         {"prompt", required_argument, 0, O_PROMPT},
                                         {"chat", required_argument, 0, O_CHAT},
                                         {"ids", required_argument, 0, O_IDS},
                                         {"max-tokens", required_argument, 0, O_MAX},
                                         {"min-tokens", required_argument, 0, O_MIN},
                                         {"temperature", required_argument, 0, O_TEMP},
                                         {"top-k", required_argument, 0, O_TOPK},
                                         {"top-p", required_argument, 0, O_TOPP},
                                         {"min-p", required_argument, 0, O_MINP},
                                         {"repetition-penalty", required_argument, 0, O_REP},
                                         {"presence-penalty", required_argument, 0, O_PRES},
                                         {"frequency-penalty", required_argument, 0, O_FREQ},
                                         {"seed", required_argument, 0, O_SEED},
                                         {"num-beams", required_argument, 0, O_BEAMS},
                                         {"length-penalty", required_argument, 0, O_LP},
                                         {"early-stopping", required_argument, 0, O_ES},
                                         {"ignore-eos", no_argument, 0, O_IGN},
                                         {"threads", required_argument, 0, O_THREADS},
                                         {"device", required_argument, 0, O_DEVICE},
                                         {"bf16-prefill", no_argument, 0, O_BF16},
                                         {"json", no_argument, 0, O_JSON},
                                         {"stop", required_argument, 0, O_STOP},
                                         {"help", no_argument, 0, O_HELP},
                                         {0, 0, 0, 0}};
    const char *model = NULL, *prompt = NULL, *chat = NULL, *ids_arg = NULL;
    const char *stops[MAX_STOPS] = {0};
    int n_stops = 0;
    ragd_gen_params gp;
    ragd_gen_defaults(&gp);
    gp.sampling.temperature = 0;
    gp.max_tokens = 64;
    int threads = 0;
    const char *device = "cpu";
    bool json = false, bf16 = false;
    double d;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case O_MODEL:
                model = optarg;
                break;
            case O_PROMPT:
                prompt = optarg;
                break;
            case O_CHAT:
                chat = optarg;
                break;
            case O_IDS:
                ids_arg = optarg;
                break;
            case O_MAX:
                if (num_arg("--max-tokens", optarg, 1, 1e7, &d)) return 2;
                gp.max_tokens = (int)d;
                break;
            case O_MIN:
                if (num_arg("--min-tokens", optarg, 0, 1e7, &d)) return 2;
                gp.min_tokens = (int)d;
                break;
            case O_TEMP:
                if (num_arg("--temperature", optarg, 0, 100, &d)) return 2;
                gp.sampling.temperature = (float)d;
                break;
            case O_TOPK:
                if (num_arg("--top-k", optarg, 0, 1e9, &d)) return 2;
                gp.sampling.top_k = (int)d;
                break;
            case O_TOPP:
                if (num_arg("--top-p", optarg, 1e-9, 1, &d)) return 2;
                gp.sampling.top_p = (float)d;
                break;
            case O_MINP:
                if (num_arg("--min-p", optarg, 0, 1, &d)) return 2;
                gp.sampling.min_p = (float)d;
                break;
            case O_REP:
                if (num_arg("--repetition-penalty", optarg, 1e-6, 100, &d)) return 2;
                gp.sampling.repetition_penalty = (float)d;
                break;
            case O_PRES:
                if (num_arg("--presence-penalty", optarg, -2, 2, &d)) return 2;
                gp.sampling.presence_penalty = (float)d;
                break;
            case O_FREQ:
                if (num_arg("--frequency-penalty", optarg, -2, 2, &d)) return 2;
                gp.sampling.frequency_penalty = (float)d;
                break;
            case O_SEED:
                if (num_arg("--seed", optarg, 0, 1.8e19, &d)) return 2;
                gp.sampling.seed = strtoull(optarg, NULL, 10);
                gp.sampling.has_seed = true;
                break;
            case O_BEAMS:
                if (num_arg("--num-beams", optarg, 1, 64, &d)) return 2;
                gp.num_beams = (int)d;
                break;
            case O_LP:
                if (num_arg("--length-penalty", optarg, -100, 100, &d)) return 2;
                gp.length_penalty = (float)d;
                break;
            case O_ES:
                if (!strcmp(optarg, "true"))
                    gp.early_stopping = 1;
                else if (!strcmp(optarg, "false"))
                    gp.early_stopping = 0;
                else if (!strcmp(optarg, "never"))
                    gp.early_stopping = -1;
                else {
                    fprintf(stderr,
                            "ragd generate: --early-stopping must be true, false or never\n");
                    return 2;
                }
                break;
            case O_IGN:
                gp.ignore_eos = true;
                break;
            case O_THREADS:
                if (num_arg("--threads", optarg, 1, 1024, &d)) return 2;
                threads = (int)d;
                break;
            case O_DEVICE:
                if (strcmp(optarg, "cpu") && strcmp(optarg, "cuda")) {
                    fprintf(stderr, "ragd generate: --device must be cpu or cuda\n");
                    return 2;
                }
                device = optarg;
                break;
            case O_BF16:
                bf16 = true;
                break;
            case O_STOP:
                if (n_stops == MAX_STOPS || !*optarg) {
                    fprintf(stderr, "ragd generate: at most %d non-empty --stop strings\n",
                            MAX_STOPS);
                    return 2;
                }
                stops[n_stops++] = optarg;
                break;
            case O_JSON:
                json = true;
                break;
            case O_HELP:
                fputs(USAGE, stdout);
                return 0;
            default:
                fputs(USAGE, stderr);
                return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ragd generate: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!model || (!!prompt + !!chat + !!ids_arg) != 1) {
        fprintf(stderr, "ragd generate: need --model and exactly one of --prompt, --chat, --ids\n");
        fputs(USAGE, stderr);
        return 2;
    }
    int32_t *ids = NULL;
    int n_ids = 0;
    if (ids_arg && parse_ids(ids_arg, &ids, &n_ids)) {
        fprintf(stderr, "ragd generate: --ids must be comma-separated non-negative integers\n");
        return 2;
    }
    ragd_err err = {0};
    /* the tokenizer is optional with --ids (models without tokenizer.json print ids) */
    ragd_tokenizer *tok = NULL;
    char tpath[4096];
    snprintf(tpath, sizeof tpath, "%s/tokenizer.json", model);
    if (prompt || chat || ragd_file_exists(tpath)) {
        if (ragd_tokenizer_load(model, &tok, &err)) {
            fprintf(stderr, "ragd generate: %s\n", err.msg);
            free(ids);
            return 1;
        }
    }
    if ((prompt || chat) && encode_prompt(tok, prompt, chat, &ids, &n_ids, &err)) {
        fprintf(stderr, "ragd generate: %s\n", err.msg);
        ragd_tokenizer_destroy(tok);
        return err.code == RAGD_EINVAL ? 2 : 1;
    }
    if (ragd_sampling_validate(&gp.sampling, &err)) {
        fprintf(stderr, "ragd generate: %s\n", err.msg);
        free(ids);
        return 2;
    }
    ragd_detok dt;
    stream_ctx sc = {.json = json, .n_stops = n_stops};
    memcpy(sc.stops, stops, sizeof stops);
    if (n_stops && !tok) {
        fprintf(stderr, "ragd generate: --stop needs a model with tokenizer.json\n");
        free(ids);
        return 2;
    }
    ragd_pool *pool = ragd_pool_create(threads);
    ragd_backend *be = NULL;
    int rc = 1;
    if (!strcmp(device, "cuda")) {
        ragd_cuda_opts co = {0, 0.90f, 8, 4096};
        if (ragd_cuda_backend_create(model, &co, &be, &err)) {
            fprintf(stderr, "ragd generate: %s\n", err.msg);
            goto out;
        }
    } else if (!pool || ragd_cpu_backend_create(model, pool, &be, &err)) {
        fprintf(stderr, "ragd generate: %s\n", pool ? err.msg : "cannot create threads");
        goto out;
    }
    if (bf16 && !strcmp(device, "cpu") && !ragd_cpu_backend_set_bf16_prefill(be, true))
        fprintf(stderr, "ragd generate: --bf16-prefill unavailable (no avx512_bf16); exact path\n");
    if (tok) {
        ragd_detok_init(&dt, tok, true);
        sc.detok = &dt;
    }
    ragd_gen_result res;
    if (ragd_generate(be, ids, n_ids, &gp, on_token, &sc, &res, &err)) {
        if (!json && sc.n) printf("\n");
        fprintf(stderr, "ragd generate: %s\n", err.msg);
        goto out;
    }
    if (sc.detok && !sc.stopped) {
        ragd_detok_flush(sc.detok, &sc.text);
        stream_scan(&sc, true);
        if (sc.stopped) res.finish_reason = "stop";
    }
    if (json) {
        ragd_buf b = {0};
        ragd_buf_puts(&b, "{\"prompt_ids\":[");
        for (int i = 0; i < n_ids; i++) ragd_buf_printf(&b, "%s%d", i ? "," : "", ids[i]);
        ragd_buf_puts(&b, "],\"ids\":[");
        for (int i = 0; i < res.n; i++) ragd_buf_printf(&b, "%s%d", i ? "," : "", res.ids[i]);
        ragd_buf_puts(&b, "],\"text\":");
        ragd_buf_json_str(&b, sc.text.data ? sc.text.data : "", sc.cut);
        ragd_buf_puts(&b, ",\"logprobs\":[");
        for (int i = 0; i < res.n; i++)
            ragd_buf_printf(&b, "%s%.9g", i ? "," : "", (double)res.logprobs[i]);
        ragd_buf_printf(&b, "],\"finish_reason\":\"%s\"}\n", res.finish_reason);
        fputs(b.data, stdout);
        ragd_buf_free(&b);
    } else {
        printf("\n");
    }
    fprintf(stderr,
            "prompt: %d tokens in %.3f s (%.1f tok/s); decode: %d tokens in %.3f s (%.1f tok/s)\n",
            n_ids, res.prefill_s, res.prefill_s > 0 ? n_ids / res.prefill_s : 0.0, res.n,
            res.decode_s, res.decode_s > 0 && res.n > 1 ? (res.n - 1) / res.decode_s : 0.0);
    ragd_gen_result_free(&res);
    rc = 0;
out:
    if (sc.detok) ragd_detok_free(sc.detok);
    ragd_buf_free(&sc.text);
    ragd_tokenizer_destroy(tok);
    if (be) be->ops->destroy(be);
    ragd_pool_destroy(pool);
    free(ids);
    return rc;
}

RAGD_COMMAND(generate, 30, "generate text with a Qwen2 / Llama model on the CPU", run_generate)
