/* rag_routes.c - the RAG endpoints; see rag_routes.h. */
#include "http/rag_routes.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "rag/fragment.h"
#include "rag/response.h"
#include "rag/web_assets.h"
#include "util/clock.h"
#include "util/log.h"

struct ragd_rag_http {
    ragd_rag_http_opts o;
    ragd_rag *_Atomic rag; /* NULL while loading */
    char model_name[256];
    char *punct;
    _Atomic uint64_t next_id;
};

enum { JOB_CHAT_STREAM = 1, JOB_CHAT_FULL, JOB_SEED };

typedef struct rag_job {
    ragd_rag_http *h;
    int kind;
    bool include_usage;
    char id[48];
    int64_t created;
    ragd_rag_prepared prep;
    ragd_http_stream *stream;
    ragd_http_deferred *deferred;
    _Atomic bool cancel;
    ragd_detok detok;
    ragd_fragbuf frag;
    ragd_buf piece;  /* scratch: newly decoded text */
    ragd_buf answer; /* JOB_CHAT_FULL: the whole answer */
    ragd_buf ev;     /* scratch: event JSON */
    uint64_t t_arrival, t_first;
} rag_job;

/* --- static files ------------------------------------------------------------------------ */

static void handle_static(void *ctx, ragd_http_req *req) {
    (void)ctx;
    const ragd_web_asset *a = ragd_web_asset_find(ragd_http_req_path(req));
    if (!a) {
        ragd_http_reply_error(req, 404, "invalid_request_error", NULL, "not_found", "no such page");
        return;
    }
    ragd_http_reply_header(req, "Cache-Control", "no-cache");
    ragd_http_reply(req, 200, a->content_type, (const char *)a->data, a->len);
}

/* --- /v1/indexes ------------------------------------------------------------------------- */

static void handle_indexes(void *ctx, ragd_http_req *req) {
    ragd_rag_http *h = ctx;
    ragd_err err = {0};
    ragd_buf out = {0};
    if (ragd_rag_indexes_json(h->o.kb, &out, &err)) {
        ragd_http_reply_error(req, 500, "server_error", NULL, NULL, "%s", err.msg);
    } else {
        ragd_http_reply_json(req, 200, out.data);
    }
    ragd_buf_free(&out);
}

/* --- request parsing ----------------------------------------------------------------------- */

typedef struct parsed {
    ragd_chat_msg *msgs;
    size_t n_msgs;
    const char **indexes;
    size_t n_indexes;
    int top_k;
    const char *mode;
    bool stream, include_usage;
    ragd_req_params gen;
} parsed;

static void parsed_free(parsed *p) {
    free(p->msgs);
    free(p->indexes);
}

/* Fill p from the JSON body (strings point into j). On error: HTTP status, param, message. */
static int parse_request(ragd_rag_http *h, cJSON *j, parsed *p, bool seed, const char **param,
                         char *msg, size_t msg_cap) {
    memset(p, 0, sizeof(*p));
    ragd_sampling_defaults(&p->gen.sampling);
    p->gen.max_tokens = h->o.default_max_tokens;
    p->stream = seed;
#define BAD(PARAM, ...)                                                                            \
    do {                                                                                           \
        *param = PARAM;                                                                            \
        snprintf(msg, msg_cap, __VA_ARGS__);                                                       \
        return 400;                                                                                \
    } while (0)
    if (!cJSON_IsObject(j)) BAD(NULL, "the request body must be a JSON object");
    cJSON *m = cJSON_GetObjectItem(j, "messages");
    if (!cJSON_IsArray(m) || !cJSON_GetArraySize(m))
        BAD("messages", "'messages' must be a non-empty array");
    p->n_msgs = (size_t)cJSON_GetArraySize(m);
    p->msgs = calloc(p->n_msgs, sizeof(*p->msgs));
    if (!p->msgs) BAD(NULL, "out of memory");
    size_t i = 0;
    cJSON *it;
    cJSON_ArrayForEach(it, m) {
        cJSON *role = cJSON_GetObjectItem(it, "role"),
              *content = cJSON_GetObjectItem(it, "content");
        if (!cJSON_IsString(role) || !cJSON_IsString(content))
            BAD("messages", "messages[%zu] needs string 'role' and 'content'", i);
        const char *r = role->valuestring;
        if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant"))
            BAD("messages", "messages[%zu].role must be system, user or assistant", i);
        if (!ragd_utf8_valid(content->valuestring, strlen(content->valuestring)))
            BAD("messages", "messages[%zu].content is not valid UTF-8", i);
        p->msgs[i++] = (ragd_chat_msg){r, content->valuestring};
    }
    if (strcmp(p->msgs[p->n_msgs - 1].role, "user"))
        BAD("messages", "the last message must be the user's question");
    if (!p->msgs[p->n_msgs - 1].content[0]) BAD("messages", "the question is empty");
    cJSON *x;
    if ((x = cJSON_GetObjectItem(j, "indexes")) && !cJSON_IsNull(x)) {
        if (cJSON_IsString(x)) {
            p->indexes = calloc(1, sizeof(*p->indexes));
            if (!p->indexes) BAD(NULL, "out of memory");
            p->indexes[p->n_indexes++] = x->valuestring;
        } else if (cJSON_IsArray(x)) {
            p->indexes = calloc((size_t)cJSON_GetArraySize(x) + 1, sizeof(*p->indexes));
            if (!p->indexes) BAD(NULL, "out of memory");
            cJSON_ArrayForEach(it, x) {
                if (!cJSON_IsString(it) || !it->valuestring[0])
                    BAD("indexes", "'indexes' must be an array of index names");
                p->indexes[p->n_indexes++] = it->valuestring;
            }
        } else {
            BAD("indexes", "'indexes' must be an array of index names");
        }
    }
    if ((x = cJSON_GetObjectItem(j, "top_k")) && !cJSON_IsNull(x)) {
        if (!cJSON_IsNumber(x) || x->valuedouble != (double)(int)x->valuedouble ||
            x->valuedouble < 1 || x->valuedouble > 100)
            BAD("top_k", "'top_k' must be an integer from 1 to 100");
        p->top_k = x->valueint;
    }
    if ((x = cJSON_GetObjectItem(j, "mode")) && !cJSON_IsNull(x)) {
        if (!cJSON_IsString(x) ||
            (strcmp(x->valuestring, "hybrid") && strcmp(x->valuestring, "bm25") &&
             strcmp(x->valuestring, "vector")))
            BAD("mode", "'mode' must be hybrid, bm25 or vector");
        p->mode = x->valuestring;
    }
    if (!seed && (x = cJSON_GetObjectItem(j, "stream")) && !cJSON_IsNull(x)) {
        if (!cJSON_IsBool(x)) BAD("stream", "'stream' must be a boolean");
        p->stream = cJSON_IsTrue(x);
    }
    if ((x = cJSON_GetObjectItem(j, "stream_options")) && cJSON_IsObject(x)) {
        cJSON *u = cJSON_GetObjectItem(x, "include_usage");
        p->include_usage = cJSON_IsTrue(u);
    }
    const char *mt_name = "max_completion_tokens";
    if (!(x = cJSON_GetObjectItem(j, mt_name)) || cJSON_IsNull(x)) {
        mt_name = "max_tokens";
        x = cJSON_GetObjectItem(j, mt_name);
    }
    if (x && !cJSON_IsNull(x)) {
        if (!cJSON_IsNumber(x) || x->valuedouble != (double)(int)x->valuedouble ||
            x->valuedouble < 1 || x->valuedouble > 1e6)
            BAD(mt_name, "'%s' must be a positive integer", mt_name);
        p->gen.max_tokens = x->valueint;
    }
    if ((x = cJSON_GetObjectItem(j, "temperature")) && !cJSON_IsNull(x)) {
        if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 2)
            BAD("temperature", "'temperature' must be a number from 0 to 2");
        p->gen.sampling.temperature = (float)x->valuedouble;
    }
    if ((x = cJSON_GetObjectItem(j, "top_p")) && !cJSON_IsNull(x)) {
        if (!cJSON_IsNumber(x) || x->valuedouble <= 0 || x->valuedouble > 1)
            BAD("top_p", "'top_p' must be a number in (0, 1]");
        p->gen.sampling.top_p = (float)x->valuedouble;
    }
    if ((x = cJSON_GetObjectItem(j, "ignore_eos")) && !cJSON_IsNull(x)) {
        if (!cJSON_IsBool(x)) BAD("ignore_eos", "'ignore_eos' must be a boolean");
        p->gen.ignore_eos = cJSON_IsTrue(x);
    }
    if ((x = cJSON_GetObjectItem(j, "seed")) && !cJSON_IsNull(x)) {
        if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 1.8e19)
            BAD("seed", "'seed' must be a non-negative integer");
        p->gen.sampling.seed = (uint64_t)x->valuedouble;
        p->gen.sampling.has_seed = true;
    }
#undef BAD
    return 0;
}

/* --- events -------------------------------------------------------------------------------- */

static void chunk_head(rag_job *j) {
    ragd_buf_clear(&j->ev);
    ragd_buf_printf(&j->ev,
                    "{\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":%" PRId64
                    ",\"model\":",
                    j->id, j->created);
    ragd_buf_json_str(&j->ev, j->h->model_name, strlen(j->h->model_name));
}

static int send_ev(rag_job *j) {
    return ragd_http_stream_sse(j->stream, j->ev.data, j->ev.len);
}

static void send_text(rag_job *j, const char *text, size_t len) {
    ragd_buf_clear(&j->ev);
    if (j->kind == JOB_SEED) {
        ragd_buf_puts(&j->ev, "{\"text\":");
        ragd_buf_json_str(&j->ev, text, len);
        ragd_buf_putc(&j->ev, '}');
    } else {
        chunk_head(j);
        ragd_buf_puts(&j->ev, ",\"choices\":[{\"index\":0,\"delta\":{\"content\":");
        ragd_buf_json_str(&j->ev, text, len);
        ragd_buf_puts(&j->ev, "},\"logprobs\":null,\"finish_reason\":null}]}");
    }
    send_ev(j);
}

static void usage_json(ragd_buf *b, const ragd_rag_timings *t) {
    ragd_buf_printf(b, "{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d}",
                    t->prompt_tokens, t->completion_tokens,
                    t->prompt_tokens + t->completion_tokens);
}

static void job_free(rag_job *j) {
    ragd_rag_prepared_free(&j->prep);
    ragd_detok_free(&j->detok);
    ragd_fragbuf_free(&j->frag);
    ragd_buf_free(&j->piece);
    ragd_buf_free(&j->answer);
    ragd_buf_free(&j->ev);
    free(j);
}

static void finish(rag_job *j, const ragd_engine_event *ev) {
    ragd_rag_timings *t = &j->prep.timings;
    uint64_t now = ragd_now_ns();
    t->prompt_tokens = ev->n_prompt;
    t->completion_tokens = ev->n_generated;
    if (j->t_first) {
        t->ttft_ms = (double)(j->t_first - j->t_arrival) / 1e6;
        t->generation_ms = (double)(now - j->t_first) / 1e6;
    }
    ragd_buf_clear(&j->piece);
    ragd_detok_flush(&j->detok, &j->piece);
    const char *reason = ragd_finish_reason_name(ev->finish_reason);
    bool failed = ev->finish_reason == RAGD_FINISH_ERROR;
    if (j->kind == JOB_CHAT_FULL) {
        ragd_buf_append(&j->answer, j->piece.data, j->piece.len);
        if (failed) {
            char *e = ragd_http_error_json(ev->error ? ev->error : "generation failed",
                                           "server_error", NULL, NULL);
            ragd_http_deferred_reply(j->deferred, 500, "application/json", e, strlen(e));
            free(e);
        } else {
            ragd_buf b = {0};
            ragd_buf_printf(&b,
                            "{\"id\":\"%s\",\"object\":\"chat.completion\",\"created\":%" PRId64
                            ",\"model\":",
                            j->id, j->created);
            ragd_buf_json_str(&b, j->h->model_name, strlen(j->h->model_name));
            ragd_buf_puts(
                &b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
            ragd_buf_json_str(&b, j->answer.data ? j->answer.data : "", j->answer.len);
            ragd_buf_printf(&b,
                            "},\"logprobs\":null,\"finish_reason\":\"%s\"}],\"usage\":", reason);
            usage_json(&b, t);
            ragd_buf_puts(&b, ",\"sources\":");
            ragd_rag_sources_json(&b, j->prep.sources.items, j->prep.sources.len,
                                  RAGD_RAG_EXCERPT_CHARS);
            ragd_buf_puts(&b, ",\"timings\":");
            ragd_rag_timings_json(&b, t);
            ragd_buf_putc(&b, '}');
            ragd_http_deferred_reply(j->deferred, 200, "application/json", b.data, b.len);
            ragd_buf_free(&b);
        }
    } else {
        if (j->kind == JOB_SEED) {
            size_t ready = 0;
            ragd_buf frag = {0};
            ragd_fragbuf_push(&j->frag, j->piece.data, j->piece.len, &frag, &ready);
            ragd_fragbuf_flush(&j->frag, &frag, &ready);
            if (frag.len) send_text(j, frag.data, frag.len);
            ragd_buf_free(&frag);
        } else if (j->piece.len) {
            send_text(j, j->piece.data, j->piece.len);
        }
        if (failed) {
            char *e = ragd_http_error_json(ev->error ? ev->error : "generation failed",
                                           "server_error", NULL, NULL);
            ragd_http_stream_sse(j->stream, e, strlen(e));
            free(e);
        } else if (j->kind == JOB_CHAT_STREAM) {
            chunk_head(j);
            ragd_buf_printf(&j->ev,
                            ",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
                            "\"finish_reason\":\"%s\"}],\"timings\":",
                            reason);
            ragd_rag_timings_json(&j->ev, t);
            ragd_buf_putc(&j->ev, '}');
            send_ev(j);
            if (j->include_usage) {
                chunk_head(j);
                ragd_buf_puts(&j->ev, ",\"choices\":[],\"usage\":");
                usage_json(&j->ev, t);
                ragd_buf_putc(&j->ev, '}');
                send_ev(j);
            }
        }
        ragd_http_stream_sse(j->stream, "[DONE]", 6);
        ragd_http_stream_end(j->stream);
    }
    if (ev->finish_reason != RAGD_FINISH_ABORT && !failed)
        ragd_rag_observe(atomic_load(&j->h->rag), t);
    job_free(j);
}

static int on_event(void *ctx, const ragd_engine_event *ev) {
    rag_job *j = ctx;
    if (ev->type == RAGD_EV_FINISH) {
        finish(j, ev);
        return RAGD_CB_CONTINUE;
    }
    if (ev->type != RAGD_EV_TOKEN) return RAGD_CB_CONTINUE;
    if (!j->t_first) j->t_first = ragd_now_ns();
    ragd_buf_clear(&j->piece);
    if (ragd_detok_push(&j->detok, ev->token, &j->piece, NULL)) return RAGD_CB_ABORT;
    if (j->kind == JOB_CHAT_FULL) {
        ragd_buf_append(&j->answer, j->piece.data, j->piece.len);
        return RAGD_CB_CONTINUE;
    }
    if (ragd_http_stream_closed(j->stream)) return RAGD_CB_ABORT;
    if (!j->piece.len) return RAGD_CB_CONTINUE;
    if (j->kind == JOB_SEED) {
        ragd_buf frag = {0};
        size_t ready = 0;
        ragd_fragbuf_push(&j->frag, j->piece.data, j->piece.len, &frag, &ready);
        if (ready) send_text(j, frag.data, frag.len);
        ragd_buf_free(&frag);
    } else {
        send_text(j, j->piece.data, j->piece.len);
    }
    return RAGD_CB_CONTINUE;
}

static void on_client_gone(void *ctx) {
    rag_job *j = ctx;
    atomic_store(&j->cancel, true);
    ragd_rag_wake(atomic_load(&j->h->rag));
}

static int status_for(int code) {
    switch (code) {
        case RAGD_EINVAL:
            return 400;
        case RAGD_ENOTFOUND:
            return 404;
        case RAGD_EBUSY:
            return 503;
        case RAGD_EUNSUPPORTED:
            return 501;
        default:
            return 500;
    }
}

static void handle_rag(ragd_rag_http *h, ragd_http_req *req, bool seed) {
    uint64_t t_arrival = ragd_now_ns();
    ragd_rag *rag = atomic_load(&h->rag);
    if (!rag) {
        ragd_http_reply_header(req, "Retry-After", "5");
        ragd_http_reply_error(req, 503, "server_error", NULL, "loading",
                              "the model is still loading");
        return;
    }
    size_t len = 0;
    const char *body = ragd_http_req_body(req, &len);
    cJSON *json = cJSON_ParseWithLength(body, len);
    if (!json) {
        ragd_http_reply_error(req, 400, "invalid_request_error", NULL, "invalid_json",
                              "the request body is not valid JSON");
        return;
    }
    parsed p;
    const char *param = NULL;
    char msg[256];
    int status = parse_request(h, json, &p, seed, &param, msg, sizeof(msg));
    if (status) {
        ragd_http_reply_error(req, status, "invalid_request_error", param, NULL, "%s", msg);
        goto out;
    }
    rag_job *j = calloc(1, sizeof(*j));
    if (!j) {
        ragd_http_reply_error(req, 500, "server_error", NULL, NULL, "out of memory");
        goto out;
    }
    j->h = h;
    j->kind = seed ? JOB_SEED : p.stream ? JOB_CHAT_STREAM : JOB_CHAT_FULL;
    j->include_usage = p.include_usage;
    j->t_arrival = t_arrival;
    j->created = ragd_wall_s();
    snprintf(j->id, sizeof(j->id), "chatcmpl-rag-%" PRIu64, atomic_fetch_add(&h->next_id, 1));
    ragd_err err = {0};
    ragd_rag_query q = {p.msgs,  p.n_msgs, p.indexes,       p.n_indexes,
                        p.top_k, p.mode,   p.gen.max_tokens};
    int rc = ragd_rag_prepare(rag, &q, &j->prep, &err);
    if (rc) {
        const char *code = rc == RAGD_ENOTFOUND ? "index_not_found" : NULL;
        ragd_http_reply_error(req, status_for(rc),
                              rc == RAGD_EINVAL || rc == RAGD_ENOTFOUND ? "invalid_request_error"
                                                                        : "server_error",
                              rc == RAGD_ENOTFOUND ? "indexes" : NULL, code, "%s", err.msg);
        job_free(j);
        goto out;
    }
    ragd_detok_init(&j->detok, ragd_rag_tokenizer(rag), true);
    ragd_fragbuf_init(&j->frag, h->o.stream_min_chars, h->punct, NULL);
    /* Check the generation parameters against the engine before any byte is sent. */
    if (j->kind == JOB_CHAT_FULL) {
        j->deferred = ragd_http_defer(req);
    } else {
        j->stream = ragd_http_reply_stream(req, NULL);
        ragd_http_stream_on_close(j->stream, on_client_gone, j);
        if (j->kind == JOB_CHAT_STREAM) {
            /* the first event: the role and the sources, before any answer text */
            chunk_head(j);
            ragd_buf_puts(&j->ev, ",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
                                  "\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}],"
                                  "\"sources\":");
            ragd_rag_sources_json(&j->ev, j->prep.sources.items, j->prep.sources.len,
                                  RAGD_RAG_EXCERPT_CHARS);
            ragd_buf_putc(&j->ev, '}');
            send_ev(j);
        }
    }
    rc = ragd_rag_submit(rag, &j->prep, &p.gen, on_event, j, &j->cancel, &err);
    if (rc) {
        /* never submitted: no FINISH will come */
        char *e = ragd_http_error_json(
            err.msg, rc == RAGD_EBUSY ? "server_busy" : "invalid_request_error", NULL, NULL);
        if (j->deferred) {
            ragd_http_deferred_reply(j->deferred, status_for(rc), "application/json", e, strlen(e));
        } else {
            ragd_http_stream_sse(j->stream, e, strlen(e));
            ragd_http_stream_sse(j->stream, "[DONE]", 6);
            ragd_http_stream_end(j->stream);
        }
        free(e);
        job_free(j);
    }
out:
    parsed_free(&p);
    cJSON_Delete(json);
}

static void handle_chat(void *ctx, ragd_http_req *req) {
    handle_rag(ctx, req, false);
}
static void handle_seed(void *ctx, ragd_http_req *req) {
    handle_rag(ctx, req, true);
}

int ragd_rag_http_register(ragd_http_server *srv, const ragd_rag_http_opts *opts,
                           ragd_rag_http **out, ragd_err *err) {
    *out = NULL;
    ragd_rag_http *h = calloc(1, sizeof(*h));
    if (!h) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    h->o = *opts;
    if (h->o.default_max_tokens <= 0) h->o.default_max_tokens = 256;
    snprintf(h->model_name, sizeof(h->model_name), "ragd");
    h->punct = strdup(opts->stream_punct ? opts->stream_punct : RAGD_FRAG_DEFAULT_PUNCT);
    ragd_fragbuf probe;
    int rc = ragd_fragbuf_init(&probe, 1, h->punct, err);
    ragd_fragbuf_free(&probe);
    if (rc || !h->punct) {
        ragd_rag_http_destroy(h);
        return rc ? rc : ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    }
    static const char *const pages[] = {"/", "/index.html", "/app.js", "/style.css"};
    for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]) && !rc; i++)
        rc = ragd_http_route(srv, "GET", pages[i], handle_static, h, RAGD_HTTP_PUBLIC);
    if (!rc) rc = ragd_http_route(srv, "GET", "/v1/indexes", handle_indexes, h, RAGD_HTTP_AUTH);
    if (!rc) rc = ragd_http_route(srv, "POST", "/v1/rag/chat", handle_chat, h, RAGD_HTTP_AUTH);
    if (!rc) rc = ragd_http_route(srv, "POST", "/text-generation", handle_seed, h, RAGD_HTTP_AUTH);
    if (rc) {
        ragd_rag_http_destroy(h);
        return ragd_err_set(err, RAGD_EINVAL, "cannot register the RAG routes (already taken?)");
    }
    *out = h;
    return RAGD_OK;
}

void ragd_rag_http_set_ready(ragd_rag_http *h, ragd_rag *rag, const char *model_name) {
    snprintf(h->model_name, sizeof(h->model_name), "%s", model_name ? model_name : "ragd");
    atomic_store(&h->rag, rag);
}

void ragd_rag_http_destroy(ragd_rag_http *h) {
    if (!h) return;
    free(h->punct);
    free(h);
}
