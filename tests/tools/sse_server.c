/* sse_server - scripted Server-Sent Events server for the loadtest tests and benchmark.
 *
 *   sse_server --port P [--threads-stack KB]
 *
 * Every POST streams a scripted response chosen by the query string (all optional):
 *   fmt=openai|completions|seed   event format (default: openai for paths containing
 *                                 "chat/completions", completions for "/completions", else seed)
 *   n=N            content events (default 5)
 *   ttft_ms=D      delay before the first content event
 *   gap_ms=G       delay between content events
 *   role=1         OpenAI role-only chunk at once (must not count as the first token)
 *   keepalive=1    ": keep-alive" comments at once and in the middle of every wait
 *   split=1        every event is written in two pieces 3 ms apart, split inside a UTF-8
 *                  character
 *   eol=lf|crlf|cr line ends
 *   usage=T        final usage chunk with completion_tokens=T (openai formats)
 *   status=C       answer HTTP C (e.g. 500) with a JSON error body instead of a stream
 *   close_after=K  close the connection abruptly after K content events
 *   error_after=K  after K content events send `event: error` (or with error_json=1 a
 *                  data: {"error":...} chunk), then end the stream without [DONE]
 *   nodone=1       end the stream cleanly without [DONE]
 *   batch=B        write B events per write (benchmark: cheap server side)
 * GET /health -> "ok"; GET /stats -> {"requests":N,"last_body":...,"last_authorization":...,
 * "ttft_ms":[...],"gap_ms":[...]}: the server-side truth of every finished stream (headers
 * received -> first content event handed to the socket; gaps between content events), so
 * tests can compare the client's measurements with what really happened; GET /reset clears
 * those logs.
 * One thread per connection (the scripted sleeps are plain clock_nanosleep calls).
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/str.h"

static atomic_long g_requests;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static ragd_buf g_last_body, g_last_auth;

typedef struct action {
    uint64_t due_ns; /* relative to stream start */
    size_t off, len; /* into script text */
    bool close;      /* abort the connection here */
    bool content;    /* completes a content event (server-side timing log) */
} action;

typedef struct stream {
    ragd_buf text;
    action *acts;
    size_t n_acts, cap_acts, cur, cur_off;
    uint64_t t0, t_hdr;
    ragd_buf sent; /* uint64 ns at which each content event was handed to MHD */
} stream;

typedef struct conn_ctx {
    ragd_buf body;
    uint64_t t_hdr; /* when the request headers arrived */
} conn_ctx;

/* Server-side truth for the timing tests: actual TTFT (headers received -> first content
 * event handed to the socket) and actual gaps, in ms. */
static ragd_buf g_log_ttft, g_log_gaps;

static long qint(struct MHD_Connection *c, const char *k, long def) {
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, k);
    return v ? strtol(v, NULL, 10) : def;
}

static int add_act(stream *s, uint64_t due_ms_x1000, size_t off, size_t len, bool close,
                   bool content) {
    if (s->n_acts == s->cap_acts) {
        size_t nc = s->cap_acts ? s->cap_acts * 2 : 64;
        action *a = realloc(s->acts, nc * sizeof *a);
        if (!a) return -1;
        s->acts = a;
        s->cap_acts = nc;
    }
    s->acts[s->n_acts++] = (action){due_ms_x1000, off, len, close, content};
    return 0;
}

/* Append an event (written with "\n" line ends) converted to the chosen eol. */
static void put_event(ragd_buf *t, const char *ev, const char *eol) {
    for (const char *p = ev; *p; p++) {
        if (*p == '\n')
            ragd_buf_puts(t, eol);
        else
            ragd_buf_putc(t, *p);
    }
}

static void content_event(ragd_buf *ev, const char *fmt, int i) {
    char text[64];
    snprintf(text, sizeof text, "t%d\xe4\xbd\xa0 ", i); /* "t<i>你 " */
    ragd_buf_clear(ev);
    if (!strcmp(fmt, "openai"))
        ragd_buf_printf(ev,
                        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\","
                        "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"%s\"},"
                        "\"finish_reason\":null}]}\n\n",
                        text);
    else if (!strcmp(fmt, "completions"))
        ragd_buf_printf(ev,
                        "data: {\"id\":\"c1\",\"object\":\"text_completion\",\"choices\":[{"
                        "\"index\":0,\"text\":\"%s\",\"finish_reason\":null}]}\n\n",
                        text);
    else
        ragd_buf_printf(ev, "data: {\"text\": \"%s\"}\n\n", text);
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream *s = cls;
    if (s->cur >= s->n_acts) return MHD_CONTENT_READER_END_OF_STREAM;
    action *a = &s->acts[s->cur];
    if (s->cur_off == 0) ragd_sleep_until_ns(s->t0 + a->due_ns);
    if (a->close) return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = a->len - s->cur_off;
    if (n > max) n = max;
    memcpy(buf, s->text.data + a->off + s->cur_off, n);
    s->cur_off += n;
    if (s->cur_off == a->len && a->content) {
        uint64_t now = ragd_now_ns();
        ragd_buf_append(&s->sent, &now, sizeof now);
    }
    if (s->cur_off == a->len) {
        s->cur++;
        s->cur_off = 0;
    }
    return (ssize_t)n;
}

static void stream_free(void *cls) {
    stream *s = cls;
    size_t n = s->sent.len / sizeof(uint64_t);
    if (n) {
        uint64_t *t = (uint64_t *)(void *)s->sent.data;
        pthread_mutex_lock(&g_mu);
        ragd_buf_printf(&g_log_ttft, "%s%.3f", g_log_ttft.len ? "," : "",
                        (double)(t[0] - s->t_hdr) / 1e6);
        for (size_t i = 1; i < n; i++)
            ragd_buf_printf(&g_log_gaps, "%s%.3f", g_log_gaps.len ? "," : "",
                            (double)(t[i] - t[i - 1]) / 1e6);
        pthread_mutex_unlock(&g_mu);
    }
    ragd_buf_free(&s->sent);
    ragd_buf_free(&s->text);
    free(s->acts);
    free(s);
}

static stream *build_stream(struct MHD_Connection *c, const char *url) {
    stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    const char *fmt = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "fmt");
    if (!fmt)
        fmt = strstr(url, "chat/completions") ? "openai"
              : strstr(url, "/completions")   ? "completions"
                                              : "seed";
    long n = qint(c, "n", 5), ttft = qint(c, "ttft_ms", 0), gap = qint(c, "gap_ms", 0);
    bool role = qint(c, "role", 0), ka = qint(c, "keepalive", 0), split = qint(c, "split", 0);
    long usage = qint(c, "usage", -1), close_after = qint(c, "close_after", -1);
    long error_after = qint(c, "error_after", -1), batch = qint(c, "batch", 1);
    bool error_json = qint(c, "error_json", 0), nodone = qint(c, "nodone", 0);
    const char *eolq = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "eol");
    const char *eol = !eolq                   ? "\n"
                      : !strcmp(eolq, "crlf") ? "\r\n"
                      : !strcmp(eolq, "cr")   ? "\r"
                                              : "\n";
    if (batch < 1) batch = 1;
    ragd_buf ev = {0};
    uint64_t ms = 1000000ULL;
    uint64_t t = 0;
    /* helper: emit text now-ish at time t as one action (or split into two) */
#define EMIT(at, str, dosplit, isc)                                                                \
    do {                                                                                           \
        size_t off_ = s->text.len;                                                                 \
        put_event(&s->text, (str), eol);                                                           \
        size_t len_ = s->text.len - off_;                                                          \
        const char *z_ = strstr(s->text.data + off_, "\xe4\xbd\xa0");                              \
        if ((dosplit) && z_ && (size_t)(z_ - (s->text.data + off_)) + 1 < len_) {                  \
            size_t cut_ = (size_t)(z_ - (s->text.data + off_)) + 1;                                \
            add_act(s, (at), off_, cut_, false, false);                                            \
            add_act(s, (at) + 3 * ms, off_ + cut_, len_ - cut_, false, (isc));                     \
        } else {                                                                                   \
            add_act(s, (at), off_, len_, false, (isc));                                            \
        }                                                                                          \
    } while (0)
    if (ka) EMIT(0, ": keep-alive\n\n", false, false);
    if (role && !strcmp(fmt, "openai"))
        EMIT(0,
             "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
             "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
             false, false);
    if (ka && ttft > 1) EMIT((uint64_t)ttft * ms / 2, ": keep-alive\n\n", false, false);
    t = (uint64_t)ttft * ms;
    bool ended = false;
    for (long i = 0; i < n && !ended; i += batch) {
        if (i > 0) {
            if (ka && gap > 1) EMIT(t + (uint64_t)gap * ms / 2, ": ping\n\n", false, false);
            t += (uint64_t)gap * ms;
        }
        ragd_buf all = {0};
        for (long k = i; k < i + batch && k < n; k++) {
            content_event(&ev, fmt, (int)k);
            ragd_buf_append(&all, ev.data, ev.len);
        }
        EMIT(t, all.data, split, true);
        ragd_buf_free(&all);
        long sent = i + batch < n ? i + batch : n;
        if (close_after >= 0 && sent >= close_after) {
            add_act(s, t + 2 * ms, 0, 0, true, false);
            ended = true;
        } else if (error_after >= 0 && sent >= error_after) {
            if (error_json)
                EMIT(
                    t + 2 * ms,
                    "data: {\"error\":{\"message\":\"scripted failure\",\"type\":\"server_error\"}}"
                    "\n\n",
                    false, false);
            else
                EMIT(t + 2 * ms, "event: error\ndata: scripted failure\n\n", false, false);
            ended = true;
        }
    }
    if (!ended) {
        if (!strcmp(fmt, "openai") || !strcmp(fmt, "completions")) {
            EMIT(t,
                 "data: "
                 "{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}"
                 "]}\n\n",
                 false, false);
            if (usage >= 0) {
                ragd_buf_clear(&ev);
                ragd_buf_printf(
                    &ev,
                    "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,"
                    "\"completion_tokens\":%ld,\"total_tokens\":%ld}}\n\n",
                    usage, usage + 7);
                EMIT(t, ev.data, false, false);
            }
        }
        if (!nodone) EMIT(t, "data: [DONE]\n\n", false, false);
    }
#undef EMIT
    ragd_buf_free(&ev);
    return s;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls) {
    (void)cls;
    (void)version;
    if (!*con_cls) {
        conn_ctx *cc = calloc(1, sizeof *cc);
        if (!cc) return MHD_NO;
        cc->t_hdr = ragd_now_ns();
        *con_cls = cc;
        return MHD_YES;
    }
    conn_ctx *cc = *con_cls;
    if (*upload_size) {
        ragd_buf_append(&cc->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    struct MHD_Response *r;
    enum MHD_Result ret;
    if (!strcmp(method, "GET")) {
        ragd_buf out = {0};
        if (!strcmp(url, "/stats")) {
            pthread_mutex_lock(&g_mu);
            ragd_buf_printf(&out, "{\"requests\":%ld,\"last_body\":", atomic_load(&g_requests));
            ragd_buf_json_str(&out, g_last_body.data ? g_last_body.data : "", g_last_body.len);
            ragd_buf_puts(&out, ",\"last_authorization\":");
            ragd_buf_json_str(&out, g_last_auth.data ? g_last_auth.data : "", g_last_auth.len);
            ragd_buf_printf(&out, ",\"ttft_ms\":[%s],\"gap_ms\":[%s]}",
                            g_log_ttft.data ? g_log_ttft.data : "",
                            g_log_gaps.data ? g_log_gaps.data : "");
            pthread_mutex_unlock(&g_mu);
        } else if (!strcmp(url, "/reset")) {
            pthread_mutex_lock(&g_mu);
            ragd_buf_clear(&g_log_ttft);
            ragd_buf_clear(&g_log_gaps);
            pthread_mutex_unlock(&g_mu);
            ragd_buf_puts(&out, "ok");
        } else {
            ragd_buf_puts(&out, "ok");
        }
        r = MHD_create_response_from_buffer(out.len, out.data, MHD_RESPMEM_MUST_COPY);
        ragd_buf_free(&out);
        ret = MHD_queue_response(c, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return ret;
    }
    atomic_fetch_add(&g_requests, 1);
    pthread_mutex_lock(&g_mu);
    ragd_buf_clear(&g_last_body);
    ragd_buf_append(&g_last_body, cc->body.data ? cc->body.data : "", cc->body.len);
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    ragd_buf_clear(&g_last_auth);
    ragd_buf_puts(&g_last_auth, auth ? auth : "");
    pthread_mutex_unlock(&g_mu);
    long status = qint(c, "status", 200);
    if (status != 200) {
        static const char body[] =
            "{\"error\":{\"message\":\"scripted status\",\"type\":\"server_error\",\"param\":null,"
            "\"code\":null}}";
        r = MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
        MHD_add_response_header(r, "Content-Type", "application/json");
        ret = MHD_queue_response(c, (unsigned)status, r);
        MHD_destroy_response(r);
        return ret;
    }
    stream *s = build_stream(c, url);
    if (!s) return MHD_NO;
    s->t0 = ragd_now_ns();
    s->t_hdr = cc->t_hdr;
    r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, reader, s, stream_free);
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)c;
    (void)toe;
    conn_ctx *cc = *con_cls;
    if (cc) {
        ragd_buf_free(&cc->body);
        free(cc);
        *con_cls = NULL;
    }
}

static volatile sig_atomic_t g_quit;
static void on_sig(int s) {
    (void)s;
    g_quit = 1;
}

int main(int argc, char **argv) {
    int port = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc) port = atoi(argv[++i]);
    }
    if (port <= 0 || port > 65535) {
        fprintf(stderr, "usage: sse_server --port P\n");
        return 2;
    }
    struct rlimit rl;
    if (!getrlimit(RLIMIT_NOFILE, &rl)) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
            MHD_USE_ERROR_LOG,
        (uint16_t)port, NULL, NULL, handler, NULL, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
        MHD_OPTION_CONNECTION_LIMIT, 30000u, MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096u,
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)(256 * 1024), MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&sa, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "sse_server: cannot listen on port %d\n", port);
        return 1;
    }
    signal(SIGINT, on_sig);
    signal(SIGTERM, on_sig);
    while (!g_quit) pause();
    MHD_stop_daemon(d);
    ragd_buf_free(&g_last_body);
    ragd_buf_free(&g_last_auth);
    ragd_buf_free(&g_log_ttft);
    ragd_buf_free(&g_log_gaps);
    return 0;
}
