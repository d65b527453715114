/* server.c - see server.h. libmicrohttpd does all HTTP parsing; this file routes requests,
 * accumulates bodies, checks auth and implements deferred replies and streams on top of
 * MHD's suspend/resume. */
#include "http/server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "util/log.h"
#include "util/str.h"

#define MAX_ROUTES        64
#define MAX_EXTRA_HEADERS 8

typedef struct route {
    char *method, *path;
    ragd_http_handler fn;
    void *ctx;
    int auth;
} route;

struct ragd_http_server {
    ragd_http_opts opts;
    char *host, *api_key;
    route routes[MAX_ROUTES];
    int n_routes;
    struct MHD_Daemon *daemon;
    int port;
};

enum { MODE_NONE, MODE_REPLIED, MODE_DEFERRED };

struct ragd_http_deferred {
    pthread_mutex_t mu;
    bool ready, suspended;
    ragd_http_stream *stream; /* ready as a stream (ragd_http_deferred_stream) */
    char *stream_ctype;
    int status;
    char *ctype;
    char *body;
    size_t len;
};

struct ragd_http_req {
    ragd_http_server *srv;
    struct MHD_Connection *conn;
    const char *method, *url;
    const route *rt;
    ragd_buf body;
    bool too_large;
    int mode;
    char *hdr_name[MAX_EXTRA_HEADERS], *hdr_value[MAX_EXTRA_HEADERS];
    int n_hdr;
    ragd_http_deferred def;
};

struct ragd_http_stream {
    pthread_mutex_t mu;
    ragd_buf buf;
    size_t off;
    bool done, closed, suspended;
    int refs;
    struct MHD_Connection *conn;
    void (*on_close)(void *);
    void *on_close_ctx;
};

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max);
static void stream_free_cb(void *cls);
static void stream_release(ragd_http_stream *s);

/* ------------------------------------------------------------------------------------------ */

static void count_status(ragd_http_req *r, int status) {
    ragd_metrics *m = r->srv->opts.metrics;
    if (!m) return;
    char labels[512];
    snprintf(labels, sizeof labels, "path=\"%s\",code=\"%d\"", r->rt ? r->rt->path : "other",
             status);
    ragd_metric_inc(ragd_metrics_counter(m, "ragd_http_requests_total",
                                         "HTTP requests by route and status code", labels));
}

static void add_common_headers(ragd_http_req *r, struct MHD_Response *resp) {
    for (int i = 0; i < r->n_hdr; i++)
        MHD_add_response_header(resp, r->hdr_name[i], r->hdr_value[i]);
}

static void queue(ragd_http_req *r, int status, const char *ctype, const char *body, size_t len) {
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp) return; /* MHD closes the connection */
    MHD_add_response_header(resp, "Content-Type", ctype ? ctype : "application/json");
    add_common_headers(r, resp);
    MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    count_status(r, status);
}

void ragd_http_reply_header(ragd_http_req *r, const char *name, const char *value) {
    if (r->n_hdr >= MAX_EXTRA_HEADERS) return;
    r->hdr_name[r->n_hdr] = strdup(name);
    r->hdr_value[r->n_hdr] = strdup(value);
    if (!r->hdr_name[r->n_hdr] || !r->hdr_value[r->n_hdr]) {
        free(r->hdr_name[r->n_hdr]);
        free(r->hdr_value[r->n_hdr]);
        return;
    }
    r->n_hdr++;
}

void ragd_http_reply(ragd_http_req *r, int status, const char *content_type, const char *body,
                     size_t len) {
    if (r->mode != MODE_NONE) return;
    r->mode = MODE_REPLIED;
    queue(r, status, content_type, body, len);
}

void ragd_http_reply_json(ragd_http_req *r, int status, const char *json) {
    ragd_http_reply(r, status, "application/json", json, strlen(json));
}

char *ragd_http_error_json(const char *message, const char *type, const char *param,
                           const char *code) {
    ragd_buf b = {0};
    ragd_buf_puts(&b, "{\"error\":{\"message\":");
    ragd_buf_json_str(&b, message, strlen(message));
    ragd_buf_puts(&b, ",\"type\":");
    ragd_buf_json_str(&b, type, strlen(type));
    ragd_buf_puts(&b, ",\"param\":");
    if (param)
        ragd_buf_json_str(&b, param, strlen(param));
    else
        ragd_buf_puts(&b, "null");
    ragd_buf_puts(&b, ",\"code\":");
    if (code)
        ragd_buf_json_str(&b, code, strlen(code));
    else
        ragd_buf_puts(&b, "null");
    ragd_buf_puts(&b, "}}");
    return ragd_buf_steal(&b);
}

void ragd_http_reply_error(ragd_http_req *r, int status, const char *type, const char *param,
                           const char *code, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *json = ragd_http_error_json(msg, type, param, code);
    if (!json) {
        ragd_http_reply(r, 500, "application/json", "{}", 2);
        return;
    }
    ragd_http_reply_json(r, status, json);
    free(json);
}

/* ------------------------------------------------------------------------------------------ */

ragd_http_deferred *ragd_http_defer(ragd_http_req *r) {
    if (r->mode != MODE_NONE) return NULL;
    r->mode = MODE_DEFERRED;
    return &r->def;
}

void ragd_http_deferred_reply(ragd_http_deferred *d, int status, const char *content_type,
                              const char *body, size_t len) {
    char *copy = malloc(len + 1);
    char *ct = strdup(content_type ? content_type : "application/json");
    pthread_mutex_lock(&d->mu);
    if (!d->ready) {
        d->ready = true;
        if (copy && ct) {
            memcpy(copy, body, len);
            copy[len] = 0;
            d->status = status;
            d->body = copy;
            d->ctype = ct;
            d->len = len;
            copy = NULL;
            ct = NULL;
        } else {
            d->status = 500;
        }
        if (d->suspended) {
            d->suspended = false;
            ragd_http_req *r = (ragd_http_req *)((char *)d - offsetof(ragd_http_req, def));
            MHD_resume_connection(r->conn);
        }
    }
    pthread_mutex_unlock(&d->mu);
    free(copy);
    free(ct);
}

/* ------------------------------------------------------------------------------------------ */

static void stream_release(ragd_http_stream *s) {
    pthread_mutex_lock(&s->mu);
    int left = --s->refs;
    pthread_mutex_unlock(&s->mu);
    if (left) return;
    ragd_buf_free(&s->buf);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max) {
    (void)pos;
    ragd_http_stream *s = cls;
    pthread_mutex_lock(&s->mu);
    if (s->off < s->buf.len) {
        size_t n = s->buf.len - s->off;
        if (n > max) n = max;
        memcpy(out, s->buf.data + s->off, n);
        s->off += n;
        if (s->off == s->buf.len) {
            s->off = 0;
            s->buf.len = 0;
        }
        pthread_mutex_unlock(&s->mu);
        return (ssize_t)n;
    }
    if (s->done) {
        pthread_mutex_unlock(&s->mu);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    s->suspended = true;
    MHD_suspend_connection(s->conn);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static void stream_free_cb(void *cls) {
    ragd_http_stream *s = cls;
    pthread_mutex_lock(&s->mu);
    s->closed = true;
    s->suspended = false;
    /* Under the lock: once ragd_http_stream_end() has returned the callback never runs. */
    if (!s->done && s->on_close) s->on_close(s->on_close_ctx);
    s->on_close = NULL;
    pthread_mutex_unlock(&s->mu);
    stream_release(s);
}

static ragd_http_stream *stream_new(struct MHD_Connection *conn) {
    ragd_http_stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    pthread_mutex_init(&s->mu, NULL);
    s->refs = 2; /* producer + MHD response */
    s->conn = conn;
    return s;
}

/* Queue the chunked response of stream s on r (from the access handler). On failure the
 * stream is closed and MHD's reference dropped, so the producer's writes fail cleanly. */
static void queue_stream(ragd_http_req *r, ragd_http_stream *s, const char *content_type) {
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, s, stream_free_cb);
    if (!resp) {
        stream_free_cb(s);
        return;
    }
    MHD_add_response_header(resp, "Content-Type",
                            content_type ? content_type : "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    add_common_headers(r, resp);
    MHD_queue_response(r->conn, 200, resp);
    MHD_destroy_response(resp);
    count_status(r, 200);
}

ragd_http_stream *ragd_http_reply_stream(ragd_http_req *r, const char *content_type) {
    if (r->mode != MODE_NONE) return NULL;
    ragd_http_stream *s = stream_new(r->conn);
    if (!s) return NULL;
    r->mode = MODE_REPLIED;
    queue_stream(r, s, content_type);
    return s;
}

ragd_http_stream *ragd_http_deferred_stream(ragd_http_deferred *d, const char *content_type) {
    ragd_http_req *r = (ragd_http_req *)((char *)d - offsetof(ragd_http_req, def));
    pthread_mutex_lock(&d->mu);
    ragd_http_stream *s = NULL;
    if (!d->ready && (s = stream_new(r->conn))) {
        d->ready = true;
        d->stream = s;
        d->stream_ctype = content_type ? strdup(content_type) : NULL;
        if (d->suspended) {
            d->suspended = false;
            MHD_resume_connection(r->conn);
        }
    }
    pthread_mutex_unlock(&d->mu);
    return s;
}

int ragd_http_stream_write(ragd_http_stream *s, const char *data, size_t len) {
    pthread_mutex_lock(&s->mu);
    if (s->closed) {
        pthread_mutex_unlock(&s->mu);
        return RAGD_ECANCELLED;
    }
    int rc = ragd_buf_append(&s->buf, data, len);
    if (s->suspended) {
        s->suspended = false;
        MHD_resume_connection(s->conn);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int ragd_http_stream_sse(ragd_http_stream *s, const char *data, size_t len) {
    pthread_mutex_lock(&s->mu);
    if (s->closed) {
        pthread_mutex_unlock(&s->mu);
        return RAGD_ECANCELLED;
    }
    int rc = ragd_buf_append(&s->buf, "data: ", 6);
    if (!rc) rc = ragd_buf_append(&s->buf, data, len);
    if (!rc) rc = ragd_buf_append(&s->buf, "\n\n", 2);
    if (s->suspended) {
        s->suspended = false;
        MHD_resume_connection(s->conn);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

bool ragd_http_stream_closed(ragd_http_stream *s) {
    pthread_mutex_lock(&s->mu);
    bool c = s->closed;
    pthread_mutex_unlock(&s->mu);
    return c;
}

void ragd_http_stream_on_close(ragd_http_stream *s, void (*fn)(void *ctx), void *ctx) {
    pthread_mutex_lock(&s->mu);
    s->on_close = fn;
    s->on_close_ctx = ctx;
    pthread_mutex_unlock(&s->mu);
}

void ragd_http_stream_end(ragd_http_stream *s) {
    pthread_mutex_lock(&s->mu);
    s->done = true;
    s->on_close = NULL;
    if (s->suspended && !s->closed) {
        s->suspended = false;
        MHD_resume_connection(s->conn);
    }
    pthread_mutex_unlock(&s->mu);
    stream_release(s);
}

/* ------------------------------------------------------------------------------------------ */

const char *ragd_http_req_method(const ragd_http_req *r) {
    return r->method;
}
const char *ragd_http_req_path(const ragd_http_req *r) {
    return r->url;
}
const char *ragd_http_req_body(const ragd_http_req *r, size_t *len) {
    if (len) *len = r->body.len;
    return r->body.data ? r->body.data : "";
}
const char *ragd_http_req_header(const ragd_http_req *r, const char *name) {
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}
const char *ragd_http_req_query(const ragd_http_req *r, const char *key) {
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

static bool auth_ok(ragd_http_req *r) {
    const char *key = r->srv->api_key;
    if (!key || !key[0] || !r->rt || r->rt->auth != RAGD_HTTP_AUTH) return true;
    const char *h = ragd_http_req_header(r, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7)) return false;
    h += 7;
    while (*h == ' ') h++;
    /* constant-time compare over the key's length */
    size_t kl = strlen(key), hl = strlen(h);
    unsigned diff = (unsigned)(kl ^ hl);
    for (size_t i = 0; i < kl; i++)
        diff |= (unsigned char)key[i] ^ (unsigned char)(i < hl ? h[i] : 0);
    return diff == 0;
}

static void dispatch(ragd_http_req *r) {
    ragd_http_server *s = r->srv;
    bool path_known = false;
    const char *path = r->url;
    for (int i = 0; i < s->n_routes; i++) {
        if (strcmp(s->routes[i].path, path)) continue;
        path_known = true;
        r->rt = &s->routes[i];
        if (!strcmp(s->routes[i].method, r->method)) break;
        r->rt = NULL;
    }
    if (!r->rt) {
        if (path_known) {
            ragd_http_reply_error(r, 405, "invalid_request_error", NULL, "method_not_allowed",
                                  "method %s is not allowed on %s", r->method, path);
        } else {
            ragd_http_reply_error(r, 404, "invalid_request_error", NULL, "not_found",
                                  "no route for %s %s", r->method, path);
        }
        return;
    }
    if (!auth_ok(r)) {
        ragd_http_reply_header(r, "WWW-Authenticate", "Bearer");
        ragd_http_reply_error(r, 401, "invalid_request_error", NULL, "invalid_api_key",
                              "missing or invalid API key (send Authorization: Bearer <key>)");
        return;
    }
    if (r->too_large) {
        ragd_http_reply_error(r, 413, "invalid_request_error", NULL, "request_too_large",
                              "request body exceeds the limit of %zu bytes", s->opts.max_body);
        return;
    }
    r->rt->fn(r->rt->ctx, r);
    if (r->mode == MODE_NONE)
        ragd_http_reply_error(r, 500, "server_error", NULL, NULL, "handler sent no reply");
}

static void queue_deferred(ragd_http_req *r) {
    r->mode = MODE_REPLIED;
    if (r->def.stream) {
        ragd_http_stream *s = r->def.stream;
        r->def.stream = NULL;
        queue_stream(r, s, r->def.stream_ctype);
    } else {
        queue(r, r->def.status, r->def.ctype, r->def.body ? r->def.body : "", r->def.len);
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    (void)version;
    ragd_http_server *s = cls;
    ragd_http_req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        r->srv = s;
        r->conn = conn;
        r->url = url;
        r->method = method;
        pthread_mutex_init(&r->def.mu, NULL);
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->opts.max_body) r->too_large = true;
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!r->too_large) {
            if (r->body.len + *upload_data_size > s->opts.max_body) {
                r->too_large = true;
                ragd_buf_free(&r->body);
            } else if (ragd_buf_append(&r->body, upload_data, *upload_data_size)) {
                r->too_large = true; /* out of memory: refuse like an oversized body */
                ragd_buf_free(&r->body);
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->mode == MODE_DEFERRED) {
        /* resumed: the reply is ready */
        pthread_mutex_lock(&r->def.mu);
        bool ready = r->def.ready;
        pthread_mutex_unlock(&r->def.mu);
        if (ready) queue_deferred(r);
        return MHD_YES;
    }
    if (r->mode != MODE_NONE) return MHD_YES;
    if (!r->body.data) ragd_buf_append(&r->body, "", 0);
    dispatch(r);
    if (r->mode == MODE_DEFERRED) {
        pthread_mutex_lock(&r->def.mu);
        if (r->def.ready) {
            pthread_mutex_unlock(&r->def.mu);
            queue_deferred(r);
            return MHD_YES;
        }
        r->def.suspended = true;
        MHD_suspend_connection(conn);
        pthread_mutex_unlock(&r->def.mu);
    }
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)conn;
    (void)toe;
    ragd_http_req *r = *con_cls;
    if (!r) return;
    *con_cls = NULL;
    ragd_buf_free(&r->body);
    for (int i = 0; i < r->n_hdr; i++) {
        free(r->hdr_name[i]);
        free(r->hdr_value[i]);
    }
    free(r->def.body);
    free(r->def.ctype);
    free(r->def.stream_ctype);
    if (r->def.stream) stream_free_cb(r->def.stream); /* never queued (daemon stopping) */
    pthread_mutex_destroy(&r->def.mu);
    free(r);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n') msg[--n] = 0;
    LOG_DEBUG("http: %s", msg);
}

/* ------------------------------------------------------------------------------------------ */

int ragd_http_server_create(const ragd_http_opts *opts, ragd_http_server **out, ragd_err *err) {
    ragd_http_server *s = calloc(1, sizeof *s);
    if (!s) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    if (opts) s->opts = *opts;
    if (!s->opts.host || !s->opts.host[0]) s->opts.host = "127.0.0.1";
    if (s->opts.port < 0 || s->opts.port > 65535) {
        int port = s->opts.port;
        free(s);
        return ragd_err_set(err, RAGD_EINVAL, "invalid port %d", port);
    }
    if (s->opts.threads <= 0) s->opts.threads = 4;
    if (!s->opts.max_body) s->opts.max_body = 8u << 20;
    if (s->opts.conn_timeout_s <= 0) s->opts.conn_timeout_s = 60;
    s->host = strdup(s->opts.host);
    s->api_key = s->opts.api_key && s->opts.api_key[0] ? strdup(s->opts.api_key) : NULL;
    s->opts.host = s->host;
    s->opts.api_key = s->api_key;
    *out = s;
    return RAGD_OK;
}

int ragd_http_route(ragd_http_server *s, const char *method, const char *path, ragd_http_handler fn,
                    void *ctx, int auth) {
    if (s->n_routes >= MAX_ROUTES || s->daemon) return RAGD_EINVAL;
    for (int i = 0; i < s->n_routes; i++)
        if (!strcmp(s->routes[i].method, method) && !strcmp(s->routes[i].path, path))
            return RAGD_EINVAL;
    route *r = &s->routes[s->n_routes];
    r->method = strdup(method);
    r->path = strdup(path);
    if (!r->method || !r->path) {
        free(r->method);
        free(r->path);
        return RAGD_ENOMEM;
    }
    r->fn = fn;
    r->ctx = ctx;
    r->auth = auth;
    s->n_routes++;
    return RAGD_OK;
}

int ragd_http_server_start(ragd_http_server *s, ragd_err *err) {
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port[16];
    snprintf(port, sizeof port, "%d", s->opts.port);
    int gai = getaddrinfo(s->opts.host, port, &hints, &ai);
    if (gai || !ai)
        return ragd_err_set(err, RAGD_EINVAL, "cannot resolve host '%s': %s", s->opts.host,
                            gai_strerror(gai));
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)s->opts.port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->opts.threads, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)s->opts.conn_timeout_s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s, MHD_OPTION_CONNECTION_LIMIT, 4096u, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->daemon)
        return ragd_err_set(err, RAGD_EIO, "cannot listen on %s:%d (port in use?)", s->opts.host,
                            s->opts.port);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : s->opts.port;
    return RAGD_OK;
}

int ragd_http_server_port(const ragd_http_server *s) {
    return s->port;
}

void ragd_http_server_destroy(ragd_http_server *s) {
    if (!s) return;
    if (s->daemon) MHD_stop_daemon(s->daemon);
    for (int i = 0; i < s->n_routes; i++) {
        free(s->routes[i].method);
        free(s->routes[i].path);
    }
    free(s->host);
    free(s->api_key);
    free(s);
}
