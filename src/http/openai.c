/* openai.c - see openai.h. Request bodies are parsed with cJSON and validated field by field;
 * generation runs in the engine, whose callbacks (engine thread) detokenize, apply stop
 * strings, format the OpenAI JSON and push it into the HTTP stream or the deferred reply. */
#include "http/openai.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sampler.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/str.h"

#define MAX_STOP    16
#define MAX_PROMPTS 64

enum { K_CHAT, K_COMPL, K_TEXT };

typedef struct perr {
    int status;
    const char *param;
    const char *code;
    char msg[600];
} perr;

static int fail(perr *e, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(perr *e, int status, const char *param, const char *fmt, ...) {
    e->status = status;
    e->param = param;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

static void reply_perr(ragd_http_req *req, const perr *e) {
    const char *type = e->status == 503   ? "server_error"
                       : e->status == 404 ? "invalid_request_error"
                       : e->status >= 500 ? "server_error"
                                          : "invalid_request_error";
    ragd_http_reply_error(req, e->status, type, e->param, e->code, "%s", e->msg);
}

/* --- field access: 0 absent/null, 1 present, -1 error (e filled) ------------------------ */

static int get_num(const cJSON *o, const char *key, double lo, double hi, double *out, perr *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v)) return fail(e, 400, key, "'%s' must be a number", key);
    double d = v->valuedouble;
    if (!isfinite(d) || d < lo || d > hi)
        return fail(e, 400, key, "'%s' must be between %g and %g, got %g", key, lo, hi, d);
    *out = d;
    return 1;
}

static int get_int(const cJSON *o, const char *key, long long lo, long long hi, long long *out,
                   perr *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble != floor(v->valuedouble))
        return fail(e, 400, key, "'%s' must be an integer", key);
    double d = v->valuedouble;
    if (d < (double)lo || d > (double)hi)
        return fail(e, 400, key, "'%s' must be between %lld and %lld", key, lo, hi);
    *out = (long long)d;
    return 1;
}

static int get_bool(const cJSON *o, const char *key, bool *out, perr *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) return fail(e, 400, key, "'%s' must be a boolean", key);
    *out = cJSON_IsTrue(v);
    return 1;
}

static bool str_ok(const char *s) {
    return s && ragd_utf8_valid(s, strlen(s));
}

/* --- generation state -------------------------------------------------------------------- */

typedef struct lp_entry {
    int32_t tok;
    float lp;
    bool null_lp; /* first echoed prompt token */
    int n_top;
    int32_t top_ids[RAGD_MAX_TOP_LOGPROBS];
    float top_lp[RAGD_MAX_TOP_LOGPROBS];
} lp_entry;

typedef struct gen gen;

typedef struct choice {
    gen *g;
    int index, prompt_idx;
    ragd_detok detok;
    ragd_buf text;  /* generated text (stop strings cut off) */
    size_t emitted; /* bytes of text already streamed */
    size_t scan;    /* bytes of text already searched for stop strings */
    bool stop_hit;
    lp_entry *lps;
    int n_lps, cap_lps;
    size_t lp_sent; /* streamed logprob entries */
    int n_prompt_lp;
    int n_gen, finish;
    bool done;
} choice;

struct gen {
    ragd_serve_app *app;
    int kind;
    ragd_openai_chat_opts o;
    char *first_event, *extra_fields, *flush_chars;
    bool stream, include_usage, echo, chat_logprobs;
    bool tokens_as_ids; /* vLLM's return_tokens_as_token_ids: "token_id:N" token strings */
    int logprobs;       /* -1: none */
    char *stop[MAX_STOP];
    int n_stop;
    ragd_req_params gp;
    int n;
    char id[64];
    long long created;
    ragd_http_stream *sh;
    ragd_http_deferred *def;
    _Atomic bool cancel;
    pthread_mutex_t mu;
    int n_choices, n_submitted, n_done;
    choice *choices;
    int n_prompts;
    int32_t *prompts[MAX_PROMPTS];
    int prompt_lens[MAX_PROMPTS];
    char *prompt_text[MAX_PROMPTS]; /* for echo */
    long prompt_tokens, completion_tokens;
    int fail_reason; /* timeout / error seen */
    char fail_msg[RAGD_ERR_MSG_MAX];
    ragd_buf frag; /* TEXT format: pending fragment */
};

static void gen_free(gen *g) {
    if (!g) return;
    for (int i = 0; i < g->n_choices; i++) {
        choice *c = &g->choices[i];
        ragd_detok_free(&c->detok);
        ragd_buf_free(&c->text);
        free(c->lps);
    }
    free(g->choices);
    for (int i = 0; i < g->n_stop; i++) free(g->stop[i]);
    for (int i = 0; i < g->n_prompts; i++) {
        free(g->prompts[i]);
        free(g->prompt_text[i]);
    }
    free(g->first_event);
    free(g->extra_fields);
    free(g->flush_chars);
    ragd_buf_free(&g->frag);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

static gen *gen_new(ragd_serve_app *app, int kind) {
    gen *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->app = app;
    g->kind = kind;
    g->logprobs = -1;
    g->n = 1;
    pthread_mutex_init(&g->mu, NULL);
    ragd_req_params *p = &g->gp;
    p->sampling.temperature = 1.0f;
    p->sampling.top_p = 1.0f;
    p->sampling.top_k = 0;
    p->sampling.min_p = 0;
    p->sampling.repetition_penalty = 1.0f;
    p->sampling.logprobs = -1;
    p->timeout_s = app->request_timeout_s;
    uint64_t r = ragd_now_ns() ^ ((uint64_t)(uintptr_t)g << 17);
    snprintf(g->id, sizeof g->id, "%s-%016llx", kind == K_COMPL ? "cmpl" : "chatcmpl",
             (unsigned long long)(r * 0x9e3779b97f4a7c15ull));
    g->created = (long long)ragd_wall_s();
    return g;
}

/* Token text for logprobs (special tokens included). */
static void token_text(gen *g, int32_t id, ragd_buf *out) {
    ragd_buf_clear(out);
    if (g->tokens_as_ids) {
        ragd_buf_printf(out, "token_id:%d", id);
        return;
    }
    ragd_tokenizer_decode(g->app->tok, &id, 1, false, out, NULL);
    if (!out->data) ragd_buf_append(out, "", 0);
}

static void json_str(ragd_buf *b, const char *s, size_t n) {
    ragd_buf_json_str(b, s, n);
}

static void put_bytes(ragd_buf *b, const ragd_buf *t) {
    ragd_buf_putc(b, '[');
    for (size_t i = 0; i < t->len; i++)
        ragd_buf_printf(b, "%s%u", i ? "," : "", (unsigned)(unsigned char)t->data[i]);
    ragd_buf_putc(b, ']');
}

static void put_float(ragd_buf *b, float v) {
    if (!isfinite(v))
        ragd_buf_puts(b, "-9999.0");
    else
        ragd_buf_printf(b, "%.7g", (double)v);
}

/* Render logprob entries [from, to) of c. */
static void render_logprobs(gen *g, choice *c, size_t from, size_t to, ragd_buf *b) {
    ragd_buf t = {0};
    if (g->kind == K_COMPL) {
        ragd_buf_puts(b, "{\"tokens\":[");
        for (size_t i = from; i < to; i++) {
            token_text(g, c->lps[i].tok, &t);
            if (i > from) ragd_buf_putc(b, ',');
            json_str(b, t.data, t.len);
        }
        ragd_buf_puts(b, "],\"token_logprobs\":[");
        for (size_t i = from; i < to; i++) {
            if (i > from) ragd_buf_putc(b, ',');
            if (c->lps[i].null_lp)
                ragd_buf_puts(b, "null");
            else
                put_float(b, c->lps[i].lp);
        }
        ragd_buf_puts(b, "],\"top_logprobs\":[");
        for (size_t i = from; i < to; i++) {
            if (i > from) ragd_buf_putc(b, ',');
            if (c->lps[i].null_lp) {
                ragd_buf_puts(b, "null");
                continue;
            }
            ragd_buf_putc(b, '{');
            for (int k = 0; k < c->lps[i].n_top; k++) {
                token_text(g, c->lps[i].top_ids[k], &t);
                if (k) ragd_buf_putc(b, ',');
                json_str(b, t.data, t.len);
                ragd_buf_putc(b, ':');
                put_float(b, c->lps[i].top_lp[k]);
            }
            ragd_buf_putc(b, '}');
        }
        ragd_buf_puts(b, "],\"text_offset\":[");
        size_t off = 0;
        for (size_t i = 0; i < to; i++) {
            if (i >= from) ragd_buf_printf(b, "%s%zu", i > from ? "," : "", off);
            token_text(g, c->lps[i].tok, &t);
            off += t.len;
        }
        ragd_buf_puts(b, "]}");
    } else {
        ragd_buf_puts(b, "{\"content\":[");
        for (size_t i = from; i < to; i++) {
            if (i > from) ragd_buf_putc(b, ',');
            token_text(g, c->lps[i].tok, &t);
            ragd_buf_puts(b, "{\"token\":");
            json_str(b, t.data, t.len);
            ragd_buf_puts(b, ",\"logprob\":");
            put_float(b, c->lps[i].lp);
            ragd_buf_puts(b, ",\"bytes\":");
            put_bytes(b, &t);
            ragd_buf_puts(b, ",\"top_logprobs\":[");
            for (int k = 0; k < c->lps[i].n_top; k++) {
                token_text(g, c->lps[i].top_ids[k], &t);
                ragd_buf_printf(b, "%s{\"token\":", k ? "," : "");
                json_str(b, t.data, t.len);
                ragd_buf_puts(b, ",\"logprob\":");
                put_float(b, c->lps[i].top_lp[k]);
                ragd_buf_puts(b, ",\"bytes\":");
                put_bytes(b, &t);
                ragd_buf_putc(b, '}');
            }
            ragd_buf_puts(b, "]}");
        }
        ragd_buf_puts(b, "]}");
    }
    ragd_buf_free(&t);
}

static int push_lp(choice *c, int32_t tok, float lp, bool null_lp, int n_top, const int32_t *ids,
                   const float *vals) {
    if (c->n_lps == c->cap_lps) {
        int nc = c->cap_lps ? c->cap_lps * 2 : 32;
        lp_entry *n = realloc(c->lps, sizeof(lp_entry) * (size_t)nc);
        if (!n) return RAGD_ENOMEM;
        c->lps = n;
        c->cap_lps = nc;
    }
    lp_entry *e = &c->lps[c->n_lps++];
    e->tok = tok;
    e->lp = lp;
    e->null_lp = null_lp;
    e->n_top = n_top > RAGD_MAX_TOP_LOGPROBS ? RAGD_MAX_TOP_LOGPROBS : n_top < 0 ? 0 : n_top;
    for (int k = 0; k < e->n_top; k++) {
        e->top_ids[k] = ids[k];
        e->top_lp[k] = vals[k];
    }
    return RAGD_OK;
}

static const char *finish_name(int reason) {
    return reason == RAGD_FINISH_LENGTH ? "length" : "stop";
}

static void chunk_head(gen *g, ragd_buf *b) {
    ragd_buf_printf(b, "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%lld,\"model\":", g->id,
                    g->kind == K_COMPL ? "text_completion" : "chat.completion.chunk", g->created);
    json_str(b, g->app->model_name, strlen(g->app->model_name));
    ragd_buf_puts(b, ",\"choices\":[");
}

static void chunk_tail(gen *g, ragd_buf *b) {
    ragd_buf_puts(b, "]");
    if (g->include_usage) ragd_buf_puts(b, ",\"usage\":null");
    ragd_buf_puts(b, "}");
}

static void on_client_gone(void *ctx);

/* Streams start lazily (headers go out with the first bytes): turn the deferred reply into
 * the event stream. */
static void ensure_stream(gen *g) {
    if (g->sh || !g->def || !g->stream) return;
    g->sh = ragd_http_deferred_stream(g->def, NULL);
    g->def = NULL;
    if (!g->sh) return;
    ragd_http_stream_on_close(g->sh, on_client_gone, g);
    if (g->first_event) ragd_http_stream_sse(g->sh, g->first_event, strlen(g->first_event));
}

/* Stream text (and the logprob entries not yet sent) for one choice. */
static int stream_piece(gen *g, choice *c, const char *text, size_t len, const char *finish) {
    if (!g->stream) return 0;
    bool has_lp0 = (g->logprobs >= 0 || g->chat_logprobs) && c->lp_sent < (size_t)c->n_lps;
    if (!g->sh && (len || has_lp0 || finish)) ensure_stream(g);
    if (!g->sh) return 0;
    bool has_lp = (g->logprobs >= 0 || g->chat_logprobs) && c->lp_sent < (size_t)c->n_lps;
    if (g->kind == K_TEXT) {
        /* seed format: {"text": ...} fragments */
        ragd_buf_append(&g->frag, text, len);
        if (!g->frag.len) return 0;
        bool flush = finish != NULL || g->o.min_chars <= 0;
        if (!flush) {
            size_t nchars = 0;
            for (size_t i = 0; i < g->frag.len; i++)
                if (((unsigned char)g->frag.data[i] & 0xC0) != 0x80) nchars++;
            if (nchars >= (size_t)g->o.min_chars) flush = true;
            if (!flush && g->flush_chars && len) {
                uint32_t cp;
                size_t i = 0;
                while (i < len && !flush) {
                    int k = ragd_utf8_decode(text + i, len - i, &cp);
                    char enc[5] = {0};
                    ragd_utf8_encode(cp, enc);
                    if (strstr(g->flush_chars, enc)) flush = true;
                    i += (size_t)k;
                }
            }
        }
        if (!flush) return 0;
        ragd_buf b = {0};
        ragd_buf_puts(&b, "{\"text\":");
        json_str(&b, g->frag.data, g->frag.len);
        ragd_buf_putc(&b, '}');
        ragd_buf_clear(&g->frag);
        int rc = ragd_http_stream_sse(g->sh, b.data, b.len);
        ragd_buf_free(&b);
        return rc;
    }
    if (!len && !has_lp && !finish) return 0;
    ragd_buf b = {0};
    chunk_head(g, &b);
    ragd_buf_printf(&b, "{\"index\":%d,", c->index);
    if (g->kind == K_COMPL) {
        ragd_buf_puts(&b, "\"text\":");
        json_str(&b, text, len);
    } else {
        ragd_buf_puts(&b, "\"delta\":{");
        if (len) {
            ragd_buf_puts(&b, "\"content\":");
            json_str(&b, text, len);
        }
        ragd_buf_putc(&b, '}');
    }
    ragd_buf_puts(&b, ",\"logprobs\":");
    if (has_lp) {
        render_logprobs(g, c, c->lp_sent, (size_t)c->n_lps, &b);
        c->lp_sent = (size_t)c->n_lps;
    } else {
        ragd_buf_puts(&b, "null");
    }
    ragd_buf_puts(&b, ",\"finish_reason\":");
    if (finish)
        ragd_buf_printf(&b, "\"%s\"", finish);
    else
        ragd_buf_puts(&b, "null");
    ragd_buf_putc(&b, '}');
    chunk_tail(g, &b);
    int rc = ragd_http_stream_sse(g->sh, b.data, b.len);
    ragd_buf_free(&b);
    return rc;
}

/* Stop strings (engine/sampler.h's scanner): cut c->text at the first match; returns how many
 * bytes of c->text may be streamed now (a tail that could still become a stop string waits). */
static size_t check_stop(gen *g, choice *c, bool final) {
    if (c->stop_hit || !g->n_stop || !c->text.len) return c->text.len;
    size_t end = c->text.len;
    if (ragd_stop_scan(c->text.data, c->text.len, c->scan, (const char *const *)g->stop, g->n_stop,
                       &end)) {
        c->text.len = end;
        c->text.data[end] = 0;
        c->stop_hit = true;
        return end;
    }
    c->scan = c->text.len;
    if (final) return c->text.len;
    return end < c->emitted ? c->emitted : end;
}

static void finalize(gen *g);

static int on_event(void *ctx, const ragd_engine_event *ev) {
    choice *c = ctx;
    gen *g = c->g;
    pthread_mutex_lock(&g->mu);
    int ret = RAGD_CB_CONTINUE;
    if (ev->type == RAGD_EV_PROMPT_LOGPROB) {
        push_lp(c, ev->token, ev->logprob, false, ev->n_top, ev->top_ids, ev->top_logprobs);
        c->n_prompt_lp++;
    } else if (ev->type == RAGD_EV_TOKEN) {
        c->n_gen++;
        if (!c->stop_hit) {
            if (g->logprobs >= 0 || g->chat_logprobs)
                push_lp(c, ev->token, ev->logprob, false, ev->n_top, ev->top_ids, ev->top_logprobs);
            ragd_detok_push(&c->detok, ev->token, &c->text, NULL);
            size_t end = check_stop(g, c, false);
            if (stream_piece(g, c, c->text.data ? c->text.data + c->emitted : "", end - c->emitted,
                             NULL) == RAGD_ECANCELLED)
                ret = RAGD_CB_ABORT;
            c->emitted = end;
            if (c->stop_hit) ret = RAGD_CB_STOP;
        }
    } else if (ev->type == RAGD_EV_FINISH) {
        c->done = true;
        c->finish = ev->finish_reason;
        g->n_done++;
        g->completion_tokens += ev->n_generated;
        if (ev->finish_reason == RAGD_FINISH_TIMEOUT || ev->finish_reason == RAGD_FINISH_ERROR) {
            g->fail_reason = ev->finish_reason;
            snprintf(g->fail_msg, sizeof g->fail_msg, "%s",
                     ev->finish_reason == RAGD_FINISH_TIMEOUT ? "the request timed out"
                     : ev->error                              ? ev->error
                                                              : "generation failed");
        }
        if (!c->stop_hit) {
            ragd_detok_flush(&c->detok, &c->text);
            check_stop(g, c, true);
        }
        if (ev->finish_reason == RAGD_FINISH_STOP || ev->finish_reason == RAGD_FINISH_LENGTH) {
            size_t end = c->text.len;
            stream_piece(g, c, c->text.data ? c->text.data + c->emitted : "", end - c->emitted,
                         g->kind == K_TEXT ? "" : finish_name(ev->finish_reason));
            c->emitted = end;
        }
        if (g->n_done == g->n_submitted) {
            finalize(g); /* frees g */
            return 0;
        }
    }
    pthread_mutex_unlock(&g->mu);
    return ret;
}

static void put_usage(gen *g, ragd_buf *b) {
    ragd_buf_printf(b,
                    "\"usage\":{\"prompt_tokens\":%ld,\"completion_tokens\":%ld,"
                    "\"total_tokens\":%ld}",
                    g->prompt_tokens, g->completion_tokens,
                    g->prompt_tokens + g->completion_tokens);
}

/* Called with g->mu held when every choice has finished: send the rest and free g. */
static void finalize(gen *g) {
    ragd_buf b = {0};
    if (g->stream && !g->sh && !g->fail_reason) ensure_stream(g);
    if (g->sh) {
        if (g->fail_reason) {
            char *ej = ragd_http_error_json(
                g->fail_msg, g->fail_reason == RAGD_FINISH_TIMEOUT ? "timeout" : "server_error",
                NULL, NULL);
            if (ej) ragd_http_stream_sse(g->sh, ej, strlen(ej));
            free(ej);
        }
        if (g->include_usage && g->kind != K_TEXT) {
            chunk_head(g, &b);
            ragd_buf_puts(&b, "],");
            put_usage(g, &b);
            ragd_buf_putc(&b, '}');
            ragd_http_stream_sse(g->sh, b.data, b.len);
        }
        ragd_http_stream_sse(g->sh, "[DONE]", 6);
        ragd_http_stream_end(g->sh);
        g->sh = NULL;
    } else if (g->def) {
        if (g->fail_reason) {
            char *ej = ragd_http_error_json(
                g->fail_msg, g->fail_reason == RAGD_FINISH_TIMEOUT ? "timeout" : "server_error",
                NULL, NULL);
            int st = g->fail_reason == RAGD_FINISH_TIMEOUT ? 504 : 500;
            ragd_http_deferred_reply(g->def, st, "application/json", ej ? ej : "{}",
                                     ej ? strlen(ej) : 2);
            free(ej);
        } else if (g->kind == K_TEXT) {
            ragd_buf_puts(&b, "{\"text\":");
            choice *c = &g->choices[0];
            json_str(&b, c->text.data ? c->text.data : "", c->text.len);
            ragd_buf_putc(&b, '}');
            ragd_http_deferred_reply(g->def, 200, "application/json", b.data, b.len);
        } else {
            ragd_buf_printf(&b,
                            "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%lld,\"model\":", g->id,
                            g->kind == K_COMPL ? "text_completion" : "chat.completion", g->created);
            json_str(&b, g->app->model_name, strlen(g->app->model_name));
            ragd_buf_puts(&b, ",\"choices\":[");
            for (int i = 0; i < g->n_submitted; i++) {
                choice *c = &g->choices[i];
                ragd_buf_printf(&b, "%s{\"index\":%d,", i ? "," : "", c->index);
                const char *pt = g->prompt_text[c->prompt_idx];
                if (g->kind == K_COMPL) {
                    ragd_buf_puts(&b, "\"text\":");
                    ragd_buf tx = {0};
                    if (g->echo && pt) ragd_buf_puts(&tx, pt);
                    if (c->text.len) ragd_buf_append(&tx, c->text.data, c->text.len);
                    json_str(&b, tx.data ? tx.data : "", tx.len);
                    ragd_buf_free(&tx);
                } else {
                    ragd_buf_puts(&b, "\"message\":{\"role\":\"assistant\",\"content\":");
                    json_str(&b, c->text.data ? c->text.data : "", c->text.len);
                    ragd_buf_putc(&b, '}');
                }
                ragd_buf_puts(&b, ",\"logprobs\":");
                if ((g->logprobs >= 0 || g->chat_logprobs) && c->n_lps >= 0)
                    render_logprobs(g, c, 0, (size_t)c->n_lps, &b);
                else
                    ragd_buf_puts(&b, "null");
                ragd_buf_printf(&b, ",\"finish_reason\":\"%s\"}", finish_name(c->finish));
            }
            ragd_buf_puts(&b, "],");
            put_usage(g, &b);
            if (g->extra_fields && g->extra_fields[0]) {
                ragd_buf_putc(&b, ',');
                ragd_buf_puts(&b, g->extra_fields);
            }
            ragd_buf_putc(&b, '}');
            ragd_http_deferred_reply(g->def, 200, "application/json", b.data, b.len);
        }
        g->def = NULL;
    }
    ragd_buf_free(&b);
    pthread_mutex_unlock(&g->mu);
    gen_free(g);
}

static void on_client_gone(void *ctx) {
    gen *g = ctx;
    atomic_store(&g->cancel, true);
    ragd_engine_wake(g->app->engine);
}

/* --- request parsing --------------------------------------------------------------------- */

static int parse_stop(gen *g, const cJSON *body, perr *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, "stop");
    if (!v || cJSON_IsNull(v)) return 0;
    const cJSON *items[MAX_STOP];
    int n = 0;
    if (cJSON_IsString(v)) {
        items[n++] = v;
    } else if (cJSON_IsArray(v)) {
        const cJSON *it;
        cJSON_ArrayForEach(it, v) {
            if (n >= MAX_STOP) return fail(e, 400, "stop", "at most %d stop strings", MAX_STOP);
            if (!cJSON_IsString(it)) return fail(e, 400, "stop", "'stop' items must be strings");
            items[n++] = it;
        }
    } else {
        return fail(e, 400, "stop", "'stop' must be a string or an array of strings");
    }
    for (int i = 0; i < n; i++) {
        const char *s = items[i]->valuestring;
        if (!s[0]) return fail(e, 400, "stop", "stop strings must not be empty");
        if (!str_ok(s)) return fail(e, 400, "stop", "stop strings must be valid UTF-8");
        if (strlen(s) > 512) return fail(e, 400, "stop", "stop strings are limited to 512 bytes");
        g->stop[g->n_stop] = strdup(s);
        if (!g->stop[g->n_stop]) return fail(e, 500, NULL, "out of memory");
        g->n_stop++;
    }
    return 0;
}

static int32_t stop_ids_buf[1]; /* placeholder for an empty list */

static int parse_common(gen *g, const cJSON *body, perr *e, long long *max_tokens,
                        int32_t **stop_ids) {
    ragd_req_params *p = &g->gp;
    double d = 0;
    long long i = 0;
    bool b = false;
    const ragd_serve_app *app = g->app;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(body, "model");
    if (model && !cJSON_IsNull(model)) {
        if (!cJSON_IsString(model)) return fail(e, 400, "model", "'model' must be a string");
        if (strcmp(model->valuestring, app->model_name)) {
            e->code = "model_not_found";
            return fail(e, 404, "model", "The model '%.200s' does not exist (this server has '%s')",
                        model->valuestring, app->model_name);
        }
    }
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(body, "user");
    if (user && !cJSON_IsNull(user) && !cJSON_IsString(user))
        return fail(e, 400, "user", "'user' must be a string");
    *max_tokens = -1;
    int r;
    if ((r = get_int(body, "max_tokens", 1, 1 << 30, max_tokens, e)) < 0) return -1;
    if ((r = get_int(body, "max_completion_tokens", 1, 1 << 30, &i, e)) < 0) return -1;
    if (r > 0) *max_tokens = i;
    if ((r = get_num(body, "temperature", 0, 2, &d, e)) < 0) return -1;
    if (r) p->sampling.temperature = (float)d;
    if ((r = get_num(body, "top_p", 0, 1, &d, e)) < 0) return -1;
    if (r) {
        if (d <= 0) return fail(e, 400, "top_p", "'top_p' must be in (0, 1]");
        p->sampling.top_p = (float)d;
    }
    if ((r = get_int(body, "top_k", -1, 1 << 30, &i, e)) < 0) return -1;
    if (r) p->sampling.top_k = i < 0 ? 0 : (int)i;
    if ((r = get_num(body, "min_p", 0, 1, &d, e)) < 0) return -1;
    if (r) p->sampling.min_p = (float)d;
    if ((r = get_num(body, "repetition_penalty", 0, 10, &d, e)) < 0) return -1;
    if (r) {
        if (d <= 0) return fail(e, 400, "repetition_penalty", "'repetition_penalty' must be > 0");
        p->sampling.repetition_penalty = (float)d;
    }
    if ((r = get_num(body, "presence_penalty", -2, 2, &d, e)) < 0) return -1;
    if (r) p->sampling.presence_penalty = (float)d;
    if ((r = get_num(body, "frequency_penalty", -2, 2, &d, e)) < 0) return -1;
    if (r) p->sampling.frequency_penalty = (float)d;
    if ((r = get_int(body, "seed", -9007199254740991LL, 9007199254740991LL, &i, e)) < 0) return -1;
    if (r) {
        p->sampling.seed = (uint64_t)i;
        p->sampling.has_seed = true;
    }
    if ((r = get_int(body, "n", 1, app->max_n > 0 ? app->max_n : 16, &i, e)) < 0) return -1;
    if (r) g->n = (int)i;
    if ((r = get_bool(body, "ignore_eos", &b, e)) < 0) return -1;
    if (r) p->ignore_eos = b;
    if ((r = get_int(body, "min_tokens", 0, 1 << 30, &i, e)) < 0) return -1;
    if (r) p->min_tokens = (int)i;
    if (parse_stop(g, body, e)) return -1;
    const cJSON *sti = cJSON_GetObjectItemCaseSensitive(body, "stop_token_ids");
    if (sti && !cJSON_IsNull(sti)) {
        if (!cJSON_IsArray(sti))
            return fail(e, 400, "stop_token_ids", "'stop_token_ids' must be an array of integers");
        int n = cJSON_GetArraySize(sti);
        if (n > 256) return fail(e, 400, "stop_token_ids", "at most 256 stop_token_ids");
        *stop_ids = calloc((size_t)n + 1, sizeof(int32_t));
        if (!*stop_ids) return fail(e, 500, NULL, "out of memory");
        int k = 0;
        const cJSON *it;
        int vocab = ragd_engine_vocab_size(app->engine);
        cJSON_ArrayForEach(it, sti) {
            if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) ||
                it->valuedouble < 0 || it->valuedouble >= vocab)
                return fail(e, 400, "stop_token_ids",
                            "'stop_token_ids' must hold token ids in [0, %d)", vocab);
            (*stop_ids)[k++] = (int32_t)it->valuedouble;
        }
        p->stop_token_ids = *stop_ids;
        p->n_stop_token_ids = k;
    }
    if ((r = get_bool(body, "stream", &b, e)) < 0) return -1;
    if (r) g->stream = b;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(body, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so))
            return fail(e, 400, "stream_options", "'stream_options' must be an object");
        if (!g->stream)
            return fail(e, 400, "stream_options", "'stream_options' needs \"stream\": true");
        if ((r = get_bool(so, "include_usage", &b, e)) < 0) {
            e->param = "stream_options.include_usage";
            return -1;
        }
        if (r) g->include_usage = b;
    }
    if ((r = get_bool(body, "return_tokens_as_token_ids", &b, e)) < 0) return -1;
    if (r) g->tokens_as_ids = b;
    bool beam = false;
    long long width = 0, best_of = 0;
    if ((r = get_bool(body, "use_beam_search", &b, e)) < 0) return -1;
    if (r) beam = b;
    if ((r = get_int(body, "num_beams", 1, 32, &width, e)) < 0) return -1;
    if (r && width > 1) beam = true;
    if ((r = get_int(body, "best_of", 1, 32, &best_of, e)) < 0) return -1;
    if ((r = get_num(body, "length_penalty", -10, 10, &d, e)) < 0) return -1;
    p->length_penalty = r ? (float)d : 1.0f;
    p->early_stopping = 0;
    const cJSON *es = cJSON_GetObjectItemCaseSensitive(body, "early_stopping");
    if (es && !cJSON_IsNull(es)) {
        if (cJSON_IsBool(es))
            p->early_stopping = cJSON_IsTrue(es) ? 1 : 0;
        else if (cJSON_IsString(es) && !strcmp(es->valuestring, "never"))
            p->early_stopping = -1;
        else
            return fail(e, 400, "early_stopping",
                        "'early_stopping' must be true, false or \"never\"");
    }
    if (beam) {
        if (g->stream)
            return fail(e, 400, "use_beam_search", "beam search is not available when streaming");
        if (g->n > 1)
            return fail(e, 400, "n", "beam search returns the best hypothesis only: use n = 1");
        if (width <= 1) width = best_of > 1 ? best_of : 4;
        p->num_beams = (int)width;
    }
    (void)stop_ids_buf;
    return 0;
}

/* Validate lengths, submit every choice, then stream or defer. Takes ownership of g. */
static void run(gen *g, ragd_http_req *req, long long max_tokens, perr *e) {
    ragd_serve_app *app = g->app;
    int max_len = ragd_engine_max_model_len(app->engine);
    const char *pparam = g->kind == K_COMPL ? "prompt" : "messages";
    int mt_global = (int)max_tokens;
    for (int i = 0; i < g->n_prompts; i++) {
        int pl = g->prompt_lens[i];
        if (pl <= 0) {
            fail(e, 400, pparam, "the prompt is empty");
            goto err;
        }
        if (max_tokens > 0 && (long long)pl + max_tokens > max_len) {
            fail(e, 400, pparam,
                 "This model's maximum context length is %d tokens. However, you requested "
                 "%lld tokens (%d in the %s, %lld in the completion). Please reduce the length "
                 "of the %s or completion.",
                 max_len, pl + max_tokens, pl, pparam, max_tokens, pparam);
            goto err;
        }
        if (pl >= max_len) {
            fail(e, 400, pparam,
                 "This model's maximum context length is %d tokens. However, your %s has %d "
                 "tokens.",
                 max_len, pparam, pl);
            goto err;
        }
        g->prompt_tokens += pl;
    }
    if (g->gp.min_tokens > 0 && max_tokens > 0 && g->gp.min_tokens > max_tokens) {
        fail(e, 400, "min_tokens", "'min_tokens' must not exceed max_tokens");
        goto err;
    }
    if (g->gp.num_beams > 1 && g->logprobs > 0) {
        fail(e, 400, "logprobs", "beam search reports the chosen tokens' logprobs only (0)");
        goto err;
    }
    if (g->gp.num_beams > 1 && g->echo && g->logprobs >= 0) {
        fail(e, 400, "echo", "prompt logprobs are not available with beam search");
        goto err;
    }
    if (g->logprobs >= 0) g->gp.sampling.logprobs = g->logprobs;
    if (g->echo && g->logprobs >= 0) g->gp.prompt_logprobs = true;
    g->n_choices = g->n_prompts * g->n;
    g->choices = calloc((size_t)g->n_choices, sizeof(choice));
    if (!g->choices) {
        fail(e, 500, NULL, "out of memory");
        goto err;
    }
    for (int i = 0; i < g->n_choices; i++) {
        choice *c = &g->choices[i];
        c->g = g;
        c->index = i;
        c->prompt_idx = i / g->n;
        ragd_detok_init(&c->detok, app->tok, true);
        if (g->gp.prompt_logprobs) /* first prompt token has no logprob */
            push_lp(c, g->prompts[c->prompt_idx][0], 0, true, 0, NULL, NULL);
    }
    pthread_mutex_lock(&g->mu);
    for (int i = 0; i < g->n_choices; i++) {
        choice *c = &g->choices[i];
        ragd_req_params p = g->gp;
        int pl = g->prompt_lens[c->prompt_idx];
        p.max_tokens = mt_global > 0 ? mt_global : max_len - pl;
        if (g->kind == K_COMPL && mt_global <= 0)
            p.max_tokens = p.max_tokens < 16 ? p.max_tokens : 16;
        if (p.sampling.has_seed) p.sampling.seed += (uint64_t)(i % g->n);
        ragd_err err = {0};
        int rc = ragd_engine_submit(app->engine, g->prompts[c->prompt_idx], pl, &p, on_event, c,
                                    &g->cancel, &err);
        if (rc) {
            if (g->n_submitted == 0) {
                pthread_mutex_unlock(&g->mu);
                if (rc == RAGD_EBUSY) {
                    ragd_http_reply_header(req, "Retry-After", "1");
                    fail(e, 503, NULL, "%s", err.msg);
                } else {
                    fail(e, 400, pparam, "%s", err.msg);
                }
                goto err;
            }
            atomic_store(&g->cancel, true); /* partial: cancel what was queued */
            g->fail_reason = RAGD_FINISH_ERROR;
            snprintf(g->fail_msg, sizeof g->fail_msg, "%s", err.msg);
            ragd_engine_wake(app->engine);
            break;
        }
        g->n_submitted++;
    }
    g->def = ragd_http_defer(req);
    if (g->stream && (g->first_event || g->kind == K_CHAT || g->echo)) ensure_stream(g);
    if (g->sh) {
        {
            for (int i = 0; i < g->n_submitted && g->kind != K_TEXT; i++) {
                choice *c = &g->choices[i];
                ragd_buf b = {0};
                if (g->kind == K_CHAT) {
                    chunk_head(g, &b);
                    ragd_buf_printf(&b,
                                    "{\"index\":%d,\"delta\":{\"role\":\"assistant\",\"content\":"
                                    "\"\"},\"logprobs\":null,\"finish_reason\":null}",
                                    c->index);
                    chunk_tail(g, &b);
                    ragd_http_stream_sse(g->sh, b.data, b.len);
                } else if (g->echo) {
                    const char *pt = g->prompt_text[c->prompt_idx];
                    size_t n_lp = g->gp.prompt_logprobs ? 1 : 0;
                    chunk_head(g, &b);
                    ragd_buf_printf(&b, "{\"index\":%d,\"text\":", c->index);
                    json_str(&b, pt ? pt : "", pt ? strlen(pt) : 0);
                    ragd_buf_puts(&b, ",\"logprobs\":null,\"finish_reason\":null}");
                    chunk_tail(g, &b);
                    ragd_http_stream_sse(g->sh, b.data, b.len);
                    (void)n_lp;
                }
                ragd_buf_free(&b);
            }
        }
    }
    if (!g->n_submitted) { /* nothing queued (cannot happen: first failure returns above) */
        pthread_mutex_unlock(&g->mu);
        gen_free(g);
        return;
    }
    pthread_mutex_unlock(&g->mu);
    return;
err:
    reply_perr(req, e);
    gen_free(g);
}

/* Encode text into a prompt slot. */
static int encode_prompt(gen *g, int slot, const char *text, bool add_bos, perr *e,
                         const char *param) {
    int32_t *ids = NULL;
    size_t n = 0;
    ragd_err err = {0};
    if (ragd_tokenizer_encode(g->app->tok, text, strlen(text), &ids, &n, &err))
        return fail(e, 400, param, "cannot tokenize: %s", err.msg);
    int32_t bos = ragd_tokenizer_bos_id(g->app->tok);
    if (add_bos && bos >= 0 && (n == 0 || ids[0] != bos)) {
        int32_t *m = malloc(sizeof(int32_t) * (n + 1));
        if (!m) {
            free(ids);
            return fail(e, 500, NULL, "out of memory");
        }
        m[0] = bos;
        if (n) memcpy(m + 1, ids, sizeof(int32_t) * n);
        free(ids);
        ids = m;
        n++;
    }
    if (n > (size_t)1 << 24) {
        free(ids);
        return fail(e, 400, param, "prompt too long");
    }
    g->prompts[slot] = ids;
    g->prompt_lens[slot] = (int)n;
    return 0;
}

static int parse_messages(gen *g, const cJSON *body, perr *e) {
    const ragd_serve_app *app = g->app;
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(body, "messages");
    if (!msgs) return fail(e, 400, "messages", "'messages' is required");
    if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0)
        return fail(e, 400, "messages", "'messages' must be a non-empty array");
    if (!app->tmpl)
        return fail(e, 400, "messages",
                    "this model has no chat template; use /v1/completions instead");
    int n = cJSON_GetArraySize(msgs);
    ragd_chat_msg *cm = calloc((size_t)n, sizeof *cm);
    char **owned = calloc((size_t)n, sizeof(char *));
    int rc = 0;
    if (!cm || !owned) {
        rc = fail(e, 500, NULL, "out of memory");
        goto out;
    }
    int k = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role)) {
            rc = fail(e, 400, "messages", "messages[%d] must be an object with a string 'role'", k);
            goto out;
        }
        const char *rs = role->valuestring;
        if (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant") &&
            strcmp(rs, "tool") && strcmp(rs, "developer")) {
            rc = fail(e, 400, "messages", "messages[%d].role '%.40s' is not supported", k, rs);
            goto out;
        }
        if (cJSON_IsString(content)) {
            cm[k].content = content->valuestring;
        } else if (cJSON_IsArray(content)) {
            ragd_buf t = {0};
            const cJSON *part;
            cJSON_ArrayForEach(part, content) {
                const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
                const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
                if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") ||
                    !cJSON_IsString(text)) {
                    ragd_buf_free(&t);
                    rc = fail(e, 400, "messages",
                              "messages[%d].content parts must be {\"type\":\"text\",\"text\":...}",
                              k);
                    goto out;
                }
                ragd_buf_puts(&t, text->valuestring);
            }
            owned[k] = t.data ? ragd_buf_steal(&t) : strdup("");
            cm[k].content = owned[k];
        } else if (cJSON_IsNull(content) && !strcmp(rs, "assistant")) {
            cm[k].content = "";
        } else {
            rc = fail(e, 400, "messages", "messages[%d].content must be a string", k);
            goto out;
        }
        if (!cm[k].content || !str_ok(cm[k].content)) {
            rc = fail(e, 400, "messages", "messages[%d].content is not valid UTF-8", k);
            goto out;
        }
        cm[k].role = !strcmp(rs, "developer") ? "system" : rs;
        k++;
    }
    ragd_buf prompt = {0};
    ragd_err err = {0};
    if (ragd_chat_render(app->tmpl, cm, (size_t)n, true, &prompt, &err)) {
        ragd_buf_free(&prompt);
        rc = fail(e, 400, "messages", "%s", err.msg);
        goto out;
    }
    g->n_prompts = 1;
    rc = encode_prompt(g, 0, prompt.data ? prompt.data : "", false, e, "messages");
    ragd_buf_free(&prompt);
out:
    if (owned)
        for (int i = 0; i < n; i++) free(owned[i]);
    free(owned);
    free(cm);
    return rc;
}

static int parse_prompt(gen *g, const cJSON *body, perr *e) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(body, "prompt");
    if (!p || cJSON_IsNull(p)) return fail(e, 400, "prompt", "'prompt' is required");
    int vocab = ragd_engine_vocab_size(g->app->engine);
    if (cJSON_IsString(p)) {
        if (!str_ok(p->valuestring)) return fail(e, 400, "prompt", "'prompt' is not valid UTF-8");
        g->n_prompts = 1;
        g->prompt_text[0] = strdup(p->valuestring);
        return encode_prompt(g, 0, p->valuestring, true, e, "prompt");
    }
    if (!cJSON_IsArray(p) || cJSON_GetArraySize(p) == 0)
        return fail(e, 400, "prompt",
                    "'prompt' must be a string, an array of strings, an array of token ids or an "
                    "array of token-id arrays");
    const cJSON *first = cJSON_GetArrayItem(p, 0);
    if (cJSON_IsNumber(first)) {
        /* one prompt of token ids */
        int n = cJSON_GetArraySize(p);
        int32_t *ids = malloc(sizeof(int32_t) * (size_t)n);
        if (!ids) return fail(e, 500, NULL, "out of memory");
        int k = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, p) {
            if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) ||
                it->valuedouble < 0 || it->valuedouble >= vocab) {
                free(ids);
                return fail(e, 400, "prompt", "token ids must be integers in [0, %d)", vocab);
            }
            ids[k++] = (int32_t)it->valuedouble;
        }
        g->n_prompts = 1;
        g->prompts[0] = ids;
        g->prompt_lens[0] = n;
        ragd_buf t = {0};
        ragd_tokenizer_decode(g->app->tok, ids, (size_t)n, false, &t, NULL);
        g->prompt_text[0] = t.data ? ragd_buf_steal(&t) : strdup("");
        return 0;
    }
    int n = cJSON_GetArraySize(p);
    if (n > MAX_PROMPTS)
        return fail(e, 400, "prompt", "at most %d prompts per request", MAX_PROMPTS);
    const cJSON *it;
    cJSON_ArrayForEach(it, p) {
        int slot = g->n_prompts;
        if (cJSON_IsString(it)) {
            if (!str_ok(it->valuestring))
                return fail(e, 400, "prompt", "prompt %d is not valid UTF-8", slot);
            g->n_prompts++;
            g->prompt_text[slot] = strdup(it->valuestring);
            if (encode_prompt(g, slot, it->valuestring, true, e, "prompt")) return -1;
        } else if (cJSON_IsArray(it)) {
            int m = cJSON_GetArraySize(it);
            int32_t *ids = malloc(sizeof(int32_t) * (size_t)(m > 0 ? m : 1));
            if (!ids) return fail(e, 500, NULL, "out of memory");
            g->n_prompts++;
            g->prompts[slot] = ids;
            g->prompt_lens[slot] = m;
            int k = 0;
            const cJSON *t2;
            cJSON_ArrayForEach(t2, it) {
                if (!cJSON_IsNumber(t2) || t2->valuedouble != floor(t2->valuedouble) ||
                    t2->valuedouble < 0 || t2->valuedouble >= vocab)
                    return fail(e, 400, "prompt", "token ids must be integers in [0, %d)", vocab);
                ids[k++] = (int32_t)t2->valuedouble;
            }
            ragd_buf t = {0};
            ragd_tokenizer_decode(g->app->tok, ids, (size_t)m, false, &t, NULL);
            g->prompt_text[slot] = t.data ? ragd_buf_steal(&t) : strdup("");
        } else {
            return fail(e, 400, "prompt", "prompt items must be strings or token-id arrays");
        }
    }
    return 0;
}

/* --- handlers ---------------------------------------------------------------------------- */

static bool check_ready(ragd_serve_app *app, ragd_http_req *req) {
    int st = atomic_load(&app->state);
    if (st == 1) return true;
    ragd_http_reply_header(req, "Retry-After", "5");
    if (st < 0)
        ragd_http_reply_error(req, 503, "server_error", NULL, "model_load_failed",
                              "the model failed to load: %s", app->load_error);
    else
        ragd_http_reply_error(req, 503, "server_error", NULL, "model_loading",
                              "the model is still loading");
    return false;
}

static cJSON *parse_body(ragd_http_req *req) {
    size_t n;
    const char *body = ragd_http_req_body(req, &n);
    if (!ragd_utf8_valid(body, n)) {
        ragd_http_reply_error(req, 400, "invalid_request_error", NULL, "invalid_utf8",
                              "the request body is not valid UTF-8");
        return NULL;
    }
    cJSON *j = cJSON_ParseWithLength(body, n);
    if (!j) {
        ragd_http_reply_error(req, 400, "invalid_request_error", NULL, "invalid_json",
                              "the request body is not valid JSON");
        return NULL;
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        ragd_http_reply_error(req, 400, "invalid_request_error", NULL, "invalid_json",
                              "the request body must be a JSON object");
        return NULL;
    }
    return j;
}

static void chat_impl(ragd_serve_app *app, ragd_http_req *req, const cJSON *body, int kind,
                      const ragd_openai_chat_opts *o) {
    perr e = {0};
    long long max_tokens = -1;
    int32_t *stop_ids = NULL;
    gen *g = gen_new(app, kind);
    if (!g) {
        ragd_http_reply_error(req, 500, "server_error", NULL, NULL, "out of memory");
        return;
    }
    if (o) {
        g->o = *o;
        g->first_event = o->first_event ? strdup(o->first_event) : NULL;
        g->extra_fields = o->extra_fields ? strdup(o->extra_fields) : NULL;
        g->flush_chars = o->flush_chars ? strdup(o->flush_chars) : NULL;
    }
    if (kind == K_TEXT) g->stream = true; /* the seed endpoint streams unless told otherwise */
    if (parse_common(g, body, &e, &max_tokens, &stop_ids)) goto err;
    if (kind == K_CHAT || kind == K_TEXT) {
        bool b = false;
        long long i = 0;
        int r;
        if ((r = get_bool(body, "logprobs", &b, &e)) < 0) goto err;
        if (r) g->chat_logprobs = b;
        if ((r = get_int(body, "top_logprobs", 0, RAGD_MAX_TOP_LOGPROBS, &i, &e)) < 0) goto err;
        if (r) {
            if (!g->chat_logprobs) {
                fail(&e, 400, "top_logprobs", "'top_logprobs' needs \"logprobs\": true");
                goto err;
            }
            g->logprobs = (int)i;
        }
        if (g->chat_logprobs && g->logprobs < 0) g->logprobs = 0;
        if (kind == K_TEXT) g->chat_logprobs = false, g->logprobs = -1;
        if (parse_messages(g, body, &e)) goto err;
    } else {
        bool b = false;
        long long i = 0;
        int r;
        if ((r = get_int(body, "logprobs", 0, RAGD_MAX_TOP_LOGPROBS, &i, &e)) < 0) goto err;
        if (r) g->logprobs = (int)i;
        if ((r = get_bool(body, "echo", &b, &e)) < 0) goto err;
        if (r) g->echo = b;
        if (parse_prompt(g, body, &e)) goto err;
    }
    run(g, req, max_tokens, &e); /* owns g from here */
    free(stop_ids);
    return;
err:
    free(stop_ids);
    if (!e.status) fail(&e, 500, NULL, "internal error");
    reply_perr(req, &e);
    gen_free(g);
}

void ragd_openai_chat(ragd_serve_app *app, ragd_http_req *req, const cJSON *body,
                      const ragd_openai_chat_opts *opts) {
    if (!check_ready(app, req)) return;
    chat_impl(app, req, body, opts && opts->format == RAGD_OPENAI_FORMAT_TEXT ? K_TEXT : K_CHAT,
              opts);
}

static void h_chat(void *ctx, ragd_http_req *req) {
    ragd_serve_app *app = ctx;
    if (!check_ready(app, req)) return;
    cJSON *j = parse_body(req);
    if (!j) return;
    chat_impl(app, req, j, K_CHAT, NULL);
    cJSON_Delete(j);
}

static void h_completions(void *ctx, ragd_http_req *req) {
    ragd_serve_app *app = ctx;
    if (!check_ready(app, req)) return;
    cJSON *j = parse_body(req);
    if (!j) return;
    chat_impl(app, req, j, K_COMPL, NULL);
    cJSON_Delete(j);
}

static void h_text_generation(void *ctx, ragd_http_req *req) {
    ragd_serve_app *app = ctx;
    if (!check_ready(app, req)) return;
    cJSON *j = parse_body(req);
    if (!j) return;
    ragd_openai_chat_opts o = {0};
    o.format = RAGD_OPENAI_FORMAT_TEXT;
    chat_impl(app, req, j, K_TEXT, &o);
    cJSON_Delete(j);
}

static void h_models(void *ctx, ragd_http_req *req) {
    ragd_serve_app *app = ctx;
    if (!check_ready(app, req)) return;
    ragd_buf b = {0};
    ragd_buf_puts(&b, "{\"object\":\"list\",\"data\":[{\"id\":");
    json_str(&b, app->model_name, strlen(app->model_name));
    ragd_buf_printf(&b,
                    ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"ragd\","
                    "\"max_model_len\":%d}]}",
                    (long long)ragd_wall_s(), ragd_engine_max_model_len(app->engine));
    ragd_http_reply_json(req, 200, b.data);
    ragd_buf_free(&b);
}

static void h_health(void *ctx, ragd_http_req *req) {
    ragd_serve_app *app = ctx;
    int st = atomic_load(&app->state);
    if (st == 1)
        ragd_http_reply_json(req, 200, "{\"status\":\"ok\"}");
    else if (st == 0)
        ragd_http_reply_json(req, 503, "{\"status\":\"loading\"}");
    else
        ragd_http_reply_json(req, 503, "{\"status\":\"failed\"}");
}

static void h_metrics(void *ctx, ragd_http_req *req) {
    ragd_serve_app *app = ctx;
    ragd_buf b = {0};
    ragd_metrics_render(app->metrics, &b);
    ragd_http_reply(req, 200, "text/plain; version=0.0.4", b.data ? b.data : "", b.len);
    ragd_buf_free(&b);
}

static void h_tokenize(void *ctx, ragd_http_req *req) {
    ragd_serve_app *app = ctx;
    if (!check_ready(app, req)) return;
    cJSON *j = parse_body(req);
    if (!j) return;
    gen *g = gen_new(app, K_COMPL);
    perr e = {0};
    if (!g) {
        cJSON_Delete(j);
        ragd_http_reply_error(req, 500, "server_error", NULL, NULL, "out of memory");
        return;
    }
    int rc;
    if (cJSON_GetObjectItemCaseSensitive(j, "messages")) {
        rc = parse_messages(g, j, &e);
    } else {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "prompt");
        if (!cJSON_IsString(p))
            rc = fail(&e, 400, "prompt", "'prompt' (a string) or 'messages' is required");
        else if (!str_ok(p->valuestring))
            rc = fail(&e, 400, "prompt", "'prompt' is not valid UTF-8");
        else {
            bool add = true;
            if (get_bool(j, "add_special_tokens", &add, &e) < 0)
                rc = -1;
            else {
                g->n_prompts = 1;
                rc = encode_prompt(g, 0, p->valuestring, add, &e, "prompt");
            }
        }
    }
    if (rc) {
        reply_perr(req, &e);
    } else {
        ragd_buf b = {0};
        ragd_buf_printf(&b, "{\"count\":%d,\"max_model_len\":%d,\"tokens\":[", g->prompt_lens[0],
                        ragd_engine_max_model_len(app->engine));
        for (int i = 0; i < g->prompt_lens[0]; i++)
            ragd_buf_printf(&b, "%s%d", i ? "," : "", g->prompts[0][i]);
        ragd_buf_puts(&b, "]}");
        ragd_http_reply_json(req, 200, b.data);
        ragd_buf_free(&b);
    }
    gen_free(g);
    cJSON_Delete(j);
}

static void h_detokenize(void *ctx, ragd_http_req *req) {
    ragd_serve_app *app = ctx;
    if (!check_ready(app, req)) return;
    cJSON *j = parse_body(req);
    if (!j) return;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "tokens");
    int vocab = ragd_tokenizer_vocab_size(app->tok);
    if (!cJSON_IsArray(t)) {
        ragd_http_reply_error(req, 400, "invalid_request_error", "tokens", NULL,
                              "'tokens' must be an array of token ids");
        cJSON_Delete(j);
        return;
    }
    int n = cJSON_GetArraySize(t);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
    int k = 0;
    const cJSON *it;
    bool bad = !ids;
    cJSON_ArrayForEach(it, t) {
        if (bad) break;
        if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) ||
            it->valuedouble < 0 || it->valuedouble >= vocab)
            bad = true;
        else
            ids[k++] = (int32_t)it->valuedouble;
    }
    if (bad) {
        ragd_http_reply_error(req, 400, "invalid_request_error", "tokens", NULL,
                              "'tokens' must hold integers in [0, %d)", vocab);
    } else {
        ragd_buf text = {0}, b = {0};
        ragd_tokenizer_decode(app->tok, ids, (size_t)k, false, &text, NULL);
        ragd_buf_puts(&b, "{\"prompt\":");
        json_str(&b, text.data ? text.data : "", text.len);
        ragd_buf_putc(&b, '}');
        ragd_http_reply_json(req, 200, b.data);
        ragd_buf_free(&b);
        ragd_buf_free(&text);
    }
    free(ids);
    cJSON_Delete(j);
}

void ragd_serve_app_set_ready(ragd_serve_app *app, ragd_engine *engine, const ragd_tokenizer *tok,
                              const ragd_chat_template *tmpl, const char *model_name) {
    app->engine = engine;
    app->tok = tok;
    app->tmpl = tmpl;
    snprintf(app->model_name, sizeof app->model_name, "%s", model_name);
    atomic_store(&app->state, 1);
}

void ragd_serve_app_set_failed(ragd_serve_app *app, const char *msg) {
    snprintf(app->load_error, sizeof app->load_error, "%s", msg);
    atomic_store(&app->state, -1);
}

int ragd_openai_register(ragd_http_server *srv, ragd_serve_app *app) {
    int rc = 0;
    rc |= ragd_http_route(srv, "POST", "/v1/chat/completions", h_chat, app, RAGD_HTTP_AUTH);
    rc |= ragd_http_route(srv, "POST", "/v1/completions", h_completions, app, RAGD_HTTP_AUTH);
    rc |= ragd_http_route(srv, "GET", "/v1/models", h_models, app, RAGD_HTTP_AUTH);
    rc |= ragd_http_route(srv, "POST", "/tokenize", h_tokenize, app, RAGD_HTTP_AUTH);
    rc |= ragd_http_route(srv, "POST", "/detokenize", h_detokenize, app, RAGD_HTTP_AUTH);
    rc |= ragd_http_route(srv, "GET", "/health", h_health, app, RAGD_HTTP_PUBLIC);
    rc |= ragd_http_route(srv, "GET", "/metrics", h_metrics, app, RAGD_HTTP_PUBLIC);
    /* The RAG layer may have registered its own /text-generation already. */
    ragd_http_route(srv, "POST", "/text-generation", h_text_generation, app, RAGD_HTTP_AUTH);
    return rc ? RAGD_EINVAL : RAGD_OK;
}
