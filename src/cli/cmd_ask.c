/* ragd ask: one RAG question from the terminal. The answer streams as it is generated, then
 * the sources (index, document, chunk, score, excerpt) and the stage timings are listed.
 * Locally (--kb FILE --model DIR [--embed-model DIR]) it loads the models and runs the
 * pipeline in-process on the CPU; with --url it asks a running `ragd serve`
 * (POST /v1/rag/chat, stream=true). */
#include <curl/curl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "backend/cpu/cpu_backend.h"
#include "cli/commands.h"
#include "engine/engine.h"
#include "kb/kb.h"
#include "kb/kb_embed.h"
#include "rag/rag.h"
#include "util/clock.h"
#include "util/str.h"

static const char *ask_usage =
    "usage: ragd ask --kb FILE --model DIR [--embed-model DIR] [options] \"question\"\n"
    "       ragd ask --url URL [options] \"question\"\n"
    "  --kb FILE          knowledge base (local mode)\n"
    "  --model DIR        chat model, Hugging Face layout (local mode, CPU)\n"
    "  --embed-model DIR  embedding model for vector / hybrid search (local mode; without it "
    "BM25)\n"
    "  --threads N        CPU threads (local mode; default: all)\n"
    "  --url URL          a running `ragd serve` (e.g. http://127.0.0.1:8080)\n"
    "  --index A[,B,...]  indexes to search (default: the server's default, all)\n"
    "  --top-k N          sources in the prompt (default 10)\n"
    "  --mode M           hybrid (default), bm25 or vector\n"
    "  --max-tokens N     answer length limit (default 256)\n"
    "  --api-key KEY      Bearer key of the server\n"
    "  --json             print the final response object instead of streaming text\n";

typedef struct ask_state {
    ragd_buf pending; /* SSE bytes not yet split into events */
    ragd_buf body;    /* the whole body (for error replies / --json) */
    cJSON *sources, *timings, *usage, *error;
    int streamed_any, json;
    long status;
    CURL *curl;
} ask_state;

static void handle_event(ask_state *st, const char *data) {
    if (!strcmp(data, "[DONE]")) return;
    cJSON *ev = cJSON_Parse(data);
    if (!ev) return;
    cJSON *x;
    if ((x = cJSON_GetObjectItem(ev, "error")) && !st->error) st->error = cJSON_Duplicate(x, 1);
    if ((x = cJSON_GetObjectItem(ev, "sources")) && cJSON_IsArray(x)) {
        cJSON_Delete(st->sources);
        st->sources = cJSON_Duplicate(x, 1);
    }
    if ((x = cJSON_GetObjectItem(ev, "timings")) && cJSON_IsObject(x)) {
        cJSON_Delete(st->timings);
        st->timings = cJSON_Duplicate(x, 1);
    }
    if ((x = cJSON_GetObjectItem(ev, "usage")) && cJSON_IsObject(x)) {
        cJSON_Delete(st->usage);
        st->usage = cJSON_Duplicate(x, 1);
    }
    cJSON *choices = cJSON_GetObjectItem(ev, "choices"), *c;
    cJSON_ArrayForEach(c, choices) {
        cJSON *delta = cJSON_GetObjectItem(c, "delta");
        cJSON *content = delta ? cJSON_GetObjectItem(delta, "content") : NULL;
        if (cJSON_IsString(content) && content->valuestring[0]) {
            fputs(content->valuestring, stdout);
            fflush(stdout);
            st->streamed_any = 1;
        }
    }
    cJSON_Delete(ev);
}

static size_t on_data(char *p, size_t size, size_t n, void *ctx) {
    ask_state *st = ctx;
    size_t len = size * n;
    if (!st->status) curl_easy_getinfo(st->curl, CURLINFO_RESPONSE_CODE, &st->status);
    if (ragd_buf_append(&st->body, p, len)) return 0;
    if (st->status != 200 || st->json) return len;
    if (ragd_buf_append(&st->pending, p, len)) return 0;
    /* events end with a blank line; each data: line of an event is one JSON payload here */
    char *ev;
    while ((ev = strstr(st->pending.data, "\n\n"))) {
        *ev = '\0';
        for (char *line = st->pending.data; line && *line;) {
            char *nl = strchr(line, '\n');
            if (nl) *nl = '\0';
            if (ragd_str_starts_with(line, "data:")) {
                const char *d = line + 5;
                if (*d == ' ') d++;
                handle_event(st, d);
            }
            line = nl ? nl + 1 : NULL;
        }
        size_t used = (size_t)(ev - st->pending.data) + 2;
        memmove(st->pending.data, st->pending.data + used, st->pending.len - used + 1);
        st->pending.len -= used;
    }
    return len;
}

static void print_sources(const cJSON *sources) {
    const cJSON *s;
    int i = 0;
    if (!cJSON_GetArraySize(sources)) {
        printf("\n(no sources)\n");
        return;
    }
    printf("\nSources:\n");
    cJSON_ArrayForEach(s, sources) {
        const cJSON *ix = cJSON_GetObjectItem(s, "index"),
                    *doc = cJSON_GetObjectItem(s, "document");
        const cJSON *title = cJSON_GetObjectItem(s, "title"),
                    *cid = cJSON_GetObjectItem(s, "chunk_id");
        const cJSON *score = cJSON_GetObjectItem(s, "score"),
                    *text = cJSON_GetObjectItem(s, "text");
        printf("[%d] %s · %s", ++i, cJSON_IsString(ix) ? ix->valuestring : "?",
               cJSON_IsString(doc) ? doc->valuestring : "?");
        if (cJSON_IsString(title) && title->valuestring[0]) printf(" · %s", title->valuestring);
        printf(" · chunk %.0f · score %.4f\n", cJSON_IsNumber(cid) ? cid->valuedouble : -1.0,
               cJSON_IsNumber(score) ? score->valuedouble : 0.0);
        if (cJSON_IsString(text)) {
            /* an excerpt: the first ~160 bytes, cut on a character boundary */
            const char *t = text->valuestring;
            size_t n = strlen(t), cut = n > 160 ? ragd_utf8_complete_prefix(t, 160) : n;
            printf("    %.*s%s\n", (int)cut, t, cut < n ? "…" : "");
        }
    }
}

static void print_timings(const cJSON *t, const cJSON *usage) {
    if (!t) return;
    static const char *keys[] = {"keywords_ms", "embed_ms", "search_ms",
                                 "prompt_ms",   "ttft_ms",  "generation_ms"};
    fprintf(stderr, "timings:");
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const cJSON *v = cJSON_GetObjectItem(t, keys[i]);
        if (cJSON_IsNumber(v))
            fprintf(stderr, " %.*s %.1f ms", (int)(strlen(keys[i]) - 3), keys[i], v->valuedouble);
    }
    const cJSON *tps = cJSON_GetObjectItem(t, "tokens_per_s");
    if (cJSON_IsNumber(tps)) fprintf(stderr, " · %.1f tok/s", tps->valuedouble);
    const cJSON *ct = usage ? cJSON_GetObjectItem(usage, "completion_tokens") : NULL;
    if (cJSON_IsNumber(ct)) fprintf(stderr, " · %d tokens", ct->valueint);
    fprintf(stderr, "\n");
}

static int ask_remote(const char *url, const char *api_key, const char *indexes, int top_k,
                      const char *mode, int max_tokens, int json, const char *question) {
    cJSON *req = cJSON_CreateObject(), *msgs = cJSON_AddArrayToObject(req, "messages");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "user");
    cJSON_AddStringToObject(m, "content", question);
    cJSON_AddItemToArray(msgs, m);
    cJSON_AddBoolToObject(req, "stream", !json);
    if (!json) {
        cJSON *so = cJSON_AddObjectToObject(req, "stream_options");
        cJSON_AddBoolToObject(so, "include_usage", 1);
    }
    if (top_k > 0) cJSON_AddNumberToObject(req, "top_k", top_k);
    if (mode) cJSON_AddStringToObject(req, "mode", mode);
    cJSON_AddNumberToObject(req, "max_tokens", max_tokens);
    if (indexes) {
        cJSON *arr = cJSON_AddArrayToObject(req, "indexes");
        char *copy = strdup(indexes), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
            cJSON_AddItemToArray(arr, cJSON_CreateString(t));
        free(copy);
    }
    char *body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);

    ragd_buf endpoint = {0}, auth = {0};
    size_t ul = strlen(url);
    while (ul && url[ul - 1] == '/') ul--;
    ragd_buf_printf(&endpoint, "%.*s/v1/rag/chat", (int)ul, url);
    ask_state st = {0};
    st.json = json;
    st.curl = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    if (api_key) {
        ragd_buf_printf(&auth, "Authorization: Bearer %s", api_key);
        hdr = curl_slist_append(hdr, auth.data);
    }
    curl_easy_setopt(st.curl, CURLOPT_URL, endpoint.data);
    curl_easy_setopt(st.curl, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(st.curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(st.curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(st.curl, CURLOPT_WRITEDATA, &st);
    curl_easy_setopt(st.curl, CURLOPT_NOSIGNAL, 1L);
    CURLcode cc = curl_easy_perform(st.curl);
    curl_easy_getinfo(st.curl, CURLINFO_RESPONSE_CODE, &st.status);
    int rc = 0;
    if (cc != CURLE_OK) {
        fprintf(stderr, "ragd ask: %s: %s\n", endpoint.data, curl_easy_strerror(cc));
        rc = 1;
    } else if (st.status != 200) {
        cJSON *e = cJSON_Parse(st.body.data ? st.body.data : "");
        cJSON *err = e ? cJSON_GetObjectItem(e, "error") : NULL;
        cJSON *msg = err ? cJSON_GetObjectItem(err, "message") : NULL;
        fprintf(stderr, "ragd ask: HTTP %ld: %s\n", st.status,
                cJSON_IsString(msg) ? msg->valuestring : (st.body.data ? st.body.data : ""));
        cJSON_Delete(e);
        rc = 1;
    } else if (json) {
        fwrite(st.body.data, 1, st.body.len, stdout);
        putchar('\n');
    } else if (st.error) {
        cJSON *msg = cJSON_GetObjectItem(st.error, "message");
        fprintf(stderr, "%sragd ask: %s\n", st.streamed_any ? "\n" : "",
                cJSON_IsString(msg) ? msg->valuestring : "server error");
        rc = 1;
    } else {
        putchar('\n');
        print_sources(st.sources);
        print_timings(st.timings, st.usage);
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(st.curl);
    cJSON_Delete(st.sources);
    cJSON_Delete(st.timings);
    cJSON_Delete(st.usage);
    cJSON_Delete(st.error);
    ragd_buf_free(&st.pending);
    ragd_buf_free(&st.body);
    ragd_buf_free(&endpoint);
    ragd_buf_free(&auth);
    free(body);
    return rc;
}

/* --- local mode ---------------------------------------------------------------------------- */

typedef struct local_gen {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    ragd_detok detok;
    ragd_buf piece, answer;
    int quiet; /* --json: collect, print once at the end */
    uint64_t t_arrival, t_first;
    ragd_rag_timings *t;
    const char *finish;
    char error[256];
} local_gen;

static int on_local_event(void *ctx, const ragd_engine_event *ev) {
    local_gen *g = ctx;
    if (ev->type == RAGD_EV_TOKEN) {
        if (!g->t_first) g->t_first = ragd_now_ns();
        ragd_buf_clear(&g->piece);
        ragd_detok_push(&g->detok, ev->token, &g->piece, NULL);
        ragd_buf_append(&g->answer, g->piece.data ? g->piece.data : "", g->piece.len);
        if (!g->quiet) {
            fwrite(g->piece.data ? g->piece.data : "", 1, g->piece.len, stdout);
            fflush(stdout);
        }
    } else if (ev->type == RAGD_EV_FINISH) {
        uint64_t now = ragd_now_ns();
        ragd_buf_clear(&g->piece);
        ragd_detok_flush(&g->detok, &g->piece);
        ragd_buf_append(&g->answer, g->piece.data ? g->piece.data : "", g->piece.len);
        if (!g->quiet) fwrite(g->piece.data ? g->piece.data : "", 1, g->piece.len, stdout);
        g->t->prompt_tokens = ev->n_prompt;
        g->t->completion_tokens = ev->n_generated;
        if (g->t_first) {
            g->t->ttft_ms = (double)(g->t_first - g->t_arrival) / 1e6;
            g->t->generation_ms = (double)(now - g->t_first) / 1e6;
        }
        g->finish = ragd_finish_reason_name(ev->finish_reason);
        if (ev->finish_reason == RAGD_FINISH_ERROR)
            snprintf(g->error, sizeof(g->error), "%s", ev->error ? ev->error : "generation failed");
        pthread_mutex_lock(&g->mu);
        g->done = 1;
        pthread_cond_signal(&g->cv);
        pthread_mutex_unlock(&g->mu);
    }
    return RAGD_CB_CONTINUE;
}

static int ask_local(const char *kb_path, const char *model, const char *embed_model, int threads,
                     const char *indexes, int top_k, const char *mode, int max_tokens, int json,
                     const char *question) {
    ragd_err err = {0};
    ragd_pool *pool = ragd_pool_create(threads);
    ragd_backend *be = NULL;
    ragd_engine *engine = NULL;
    ragd_tokenizer *tok = NULL;
    ragd_kb *kb = NULL;
    ragd_kb_embedder *emb = NULL;
    ragd_rag *rag = NULL;
    ragd_rag_prepared prep = {0};
    const char **ix = NULL;
    size_t n_ix = 0;
    char *ix_copy = NULL;
    int rc = 1;
    ragd_kb_opts ko = {.path = kb_path, .readonly = 1, .pool = pool};
    if (!ragd_file_exists(kb_path)) {
        ragd_err_set(&err, RAGD_ENOTFOUND, "knowledge base '%s' not found", kb_path);
        goto out;
    }
    if (ragd_kb_open(&ko, &kb, &err)) goto out;
    if (embed_model && ragd_kb_embedder_open(embed_model, pool, &emb, &err)) goto out;
    if (ragd_tokenizer_load(model, &tok, &err)) goto out;
    if (ragd_cpu_backend_create(model, pool, &be, &err)) goto out;
    ragd_engine_opts eo = {0};
    if (ragd_engine_create(be, &eo, &engine, &err)) goto out;
    ragd_rag_opts ro = {.kb = kb, .emb = emb, .engine = engine, .tok = tok};
    if (ragd_rag_create(&ro, &rag, &err)) goto out;
    if (indexes) {
        ix_copy = strdup(indexes);
        ix = calloc(strlen(indexes) + 1, sizeof(*ix));
        char *save = NULL;
        for (char *t = strtok_r(ix_copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
            ix[n_ix++] = t;
    }
    ragd_chat_msg msg = {"user", question};
    uint64_t t_arrival = ragd_now_ns(); /* the models are loaded: the request starts now */
    ragd_rag_query q = {&msg, 1, ix, n_ix, top_k, mode, max_tokens};
    if (ragd_rag_prepare(rag, &q, &prep, &err)) goto out;
    local_gen g = {.t_arrival = t_arrival, .t = &prep.timings, .quiet = json};
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    ragd_detok_init(&g.detok, tok, true);
    ragd_req_params gp = {0};
    ragd_sampling_defaults(&gp.sampling);
    gp.max_tokens = max_tokens;
    if (!ragd_rag_submit(rag, &prep, &gp, on_local_event, &g, NULL, &err)) {
        pthread_mutex_lock(&g.mu);
        while (!g.done) pthread_cond_wait(&g.cv, &g.mu);
        pthread_mutex_unlock(&g.mu);
        if (g.error[0]) {
            ragd_err_set(&err, RAGD_EINTERNAL, "%s", g.error);
        } else {
            ragd_buf b = {0};
            ragd_rag_sources_json(&b, prep.sources.items, prep.sources.len, RAGD_RAG_EXCERPT_CHARS);
            cJSON *sources = cJSON_Parse(b.data);
            ragd_buf_clear(&b);
            ragd_rag_timings_json(&b, &prep.timings);
            cJSON *timings = cJSON_Parse(b.data);
            ragd_buf_free(&b);
            if (json) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "answer", g.answer.data ? g.answer.data : "");
                cJSON_AddStringToObject(o, "finish_reason", g.finish ? g.finish : "");
                cJSON_AddItemToObject(o, "sources", sources);
                cJSON_AddItemToObject(o, "timings", timings);
                sources = timings = NULL;
                char *text = cJSON_PrintUnformatted(o);
                puts(text);
                free(text);
                cJSON_Delete(o);
            } else {
                putchar('\n');
                print_sources(sources);
                print_timings(timings, NULL);
            }
            cJSON_Delete(sources);
            cJSON_Delete(timings);
            rc = 0;
        }
    }
    ragd_detok_free(&g.detok);
    ragd_buf_free(&g.piece);
    ragd_buf_free(&g.answer);
    pthread_mutex_destroy(&g.mu);
    pthread_cond_destroy(&g.cv);
out:
    if (rc && err.msg[0]) fprintf(stderr, "ragd ask: %s\n", err.msg);
    ragd_rag_prepared_free(&prep);
    ragd_rag_destroy(rag);
    ragd_engine_destroy(engine);
    if (be) be->ops->destroy(be);
    ragd_tokenizer_destroy(tok);
    ragd_kb_embedder_close(emb);
    ragd_kb_close(kb);
    ragd_pool_destroy(pool);
    free(ix);
    free(ix_copy);
    return rc;
}

static int run_ask(int argc, char **argv) {
    const char *url = NULL, *indexes = NULL, *mode = NULL, *api_key = NULL;
    const char *kb = NULL, *model = NULL, *embed_model = NULL;
    int top_k = 0, max_tokens = 256, json = 0, threads = 0;
    static const struct option opts[] = {{"url", required_argument, 0, 'u'},
                                         {"kb", required_argument, 0, 'b'},
                                         {"model", required_argument, 0, 'M'},
                                         {"embed-model", required_argument, 0, 'e'},
                                         {"threads", required_argument, 0, 't'},
                                         {"index", required_argument, 0, 'i'},
                                         {"top-k", required_argument, 0, 'k'},
                                         {"mode", required_argument, 0, 'm'},
                                         {"max-tokens", required_argument, 0, 'n'},
                                         {"api-key", required_argument, 0, 'a'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    char *end;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case 'u':
                url = optarg;
                break;
            case 'b':
                kb = optarg;
                break;
            case 'M':
                model = optarg;
                break;
            case 'e':
                embed_model = optarg;
                break;
            case 't': {
                long v = strtol(optarg, &end, 10);
                if (*end || v < 1 || v > 1024) {
                    fprintf(stderr, "ragd ask: --threads needs a positive integer\n");
                    return 2;
                }
                threads = (int)v;
                break;
            }
            case 'i':
                indexes = optarg;
                break;
            case 'm':
                mode = optarg;
                break;
            case 'a':
                api_key = optarg;
                break;
            case 'j':
                json = 1;
                break;
            case 'k':
            case 'n': {
                long v = strtol(optarg, &end, 10);
                if (*end || v < 1 || v > 100000) {
                    fprintf(stderr, "ragd ask: --%s needs a positive integer\n",
                            c == 'k' ? "top-k" : "max-tokens");
                    return 2;
                }
                if (c == 'k')
                    top_k = (int)v;
                else
                    max_tokens = (int)v;
                break;
            }
            case 'h':
                fputs(ask_usage, stdout);
                return 0;
            default:
                fputs(ask_usage, stderr);
                return 2;
        }
    }
    if (optind != argc - 1 || !argv[optind][0]) {
        fprintf(stderr, "ragd ask: give exactly one question (quote it)\n%s", ask_usage);
        return 2;
    }
    if (!url && (!kb || !model)) {
        fprintf(stderr, "ragd ask: give --kb FILE and --model DIR, or --url URL\n%s", ask_usage);
        return 2;
    }
    if (url && (kb || model || embed_model)) {
        fprintf(stderr,
                "ragd ask: --url asks a server; --kb / --model / --embed-model are local\n");
        return 2;
    }
    if (mode && strcmp(mode, "hybrid") && strcmp(mode, "bm25") && strcmp(mode, "vector")) {
        fprintf(stderr, "ragd ask: --mode must be hybrid, bm25 or vector\n");
        return 2;
    }
    const char *q = argv[optind];
    if (!ragd_utf8_valid(q, strlen(q))) {
        fprintf(stderr, "ragd ask: the question is not valid UTF-8\n");
        return 2;
    }
    if (!url)
        return ask_local(kb, model, embed_model, threads, indexes, top_k, mode, max_tokens, json,
                         q);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = ask_remote(url, api_key, indexes, top_k, mode, max_tokens, json, q);
    curl_global_cleanup();
    return rc;
}

RAGD_COMMAND(ask, 60, "ask a question over a knowledge base (RAG), answer streamed", run_ask)
