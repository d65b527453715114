/* openai.h - the OpenAI-compatible API of `ragd serve` on top of the engine:
 * POST /v1/chat/completions, POST /v1/completions (streaming and not), GET /v1/models,
 * GET /health, GET /metrics, POST /tokenize, POST /detokenize and the seed users'
 * POST /text-generation (`data: {"text": ...}` events, then `data: [DONE]`).
 *
 * The CLI (cmd_serve.c) creates a ragd_serve_app, registers these routes, binds, then loads
 * the model in the background and publishes it with ragd_serve_app_set_ready(); until then
 * /health answers 503 and generation endpoints 503 "loading".
 *
 * Other subsystems (RAG) generate through the same code path with ragd_openai_chat(): it takes
 * a parsed chat request body (messages already assembled by the caller), validates it exactly
 * like /v1/chat/completions and answers on req in the chat or the seed ("text") format.
 * Thread-safety: handlers run on MHD threads; the app is read-only after set_ready.
 */
#ifndef RAGD_HTTP_OPENAI_H
#define RAGD_HTTP_OPENAI_H

#include <stdatomic.h>
#include <stdbool.h>

#include <cjson/cJSON.h>

#include "engine/engine.h"
#include "http/server.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "util/metrics.h"

typedef struct ragd_serve_app {
    /* set before the routes are registered */
    ragd_metrics *metrics;
    double request_timeout_s; /* 0 = none */
    int max_n;                /* largest n accepted (default 16) */
    /* published by ragd_serve_app_set_ready */
    ragd_engine *engine;
    const ragd_tokenizer *tok;
    const ragd_chat_template *tmpl; /* NULL: chat endpoints answer 400 */
    char model_name[256];
    _Atomic int state; /* 0 loading, 1 ready, -1 failed */
    char load_error[512];
} ragd_serve_app;

void ragd_serve_app_set_ready(ragd_serve_app *app, ragd_engine *engine, const ragd_tokenizer *tok,
                              const ragd_chat_template *tmpl, const char *model_name);
void ragd_serve_app_set_failed(ragd_serve_app *app, const char *msg);

/* Register every route listed above. */
int ragd_openai_register(ragd_http_server *srv, ragd_serve_app *app);

enum { RAGD_OPENAI_FORMAT_CHAT = 0, RAGD_OPENAI_FORMAT_TEXT = 1 };
typedef struct ragd_openai_chat_opts {
    int format;               /* CHAT: chat.completion(.chunk); TEXT: data: {"text":...} */
    const char *first_event;  /* streams: JSON sent as the first data: event (e.g. sources) */
    const char *extra_fields; /* non-stream CHAT: `"key":value,...` added to the response */
    int min_chars;            /* TEXT streams: buffer fragments to >= this many characters */
    const char *flush_chars;  /* TEXT streams: ...or up to one of these (UTF-8) characters */
} ragd_openai_chat_opts;
/* Answer a chat request (body: parsed JSON, not owned) on req. */
void ragd_openai_chat(ragd_serve_app *app, ragd_http_req *req, const cJSON *body,
                      const ragd_openai_chat_opts *opts);

#endif
