/* server.h - the HTTP layer of `ragd serve`: a libmicrohttpd daemon (epoll, internal thread
 * pool, suspend/resume), a router (method + exact path -> handler), request bodies accumulated
 * up to a size limit (413), Bearer API-key auth (401), OpenAI-style error JSON, server-sent
 * event streams and deferred replies for requests that wait on the engine.
 *
 * Route registration (other subsystems: embeddings, search, RAG):
 *
 *   static void handle_search(void *ctx, ragd_http_req *req) {
 *       size_t n; const char *body = ragd_http_req_body(req, &n);
 *       ... ragd_http_reply_json(req, 200, json) or ragd_http_reply_error(req, 400, ...) ...
 *   }
 *   ragd_http_route(srv, "POST", "/v1/search", handle_search, kb, RAGD_HTTP_AUTH);
 *
 * A handler runs on an MHD worker thread and must answer exactly once, either before it
 * returns (ragd_http_reply*), or later from any thread: ragd_http_defer() returns a handle
 * answered with ragd_http_deferred_reply(); ragd_http_reply_stream() starts a chunked stream
 * (sent with its first bytes) written with ragd_http_stream_write()/_sse() and finished with
 * ragd_http_stream_end(). Streams and deferred replies suspend the connection while they wait,
 * so a waiting request holds no thread. A handler may block briefly (e.g. run an embedding
 * batch) but long waits should defer.
 * Thread-safety: routes are added before ragd_http_server_start(); everything else is
 * thread-safe as documented per function.
 */
#ifndef RAGD_HTTP_SERVER_H
#define RAGD_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"
#include "util/metrics.h"

typedef struct ragd_http_server ragd_http_server;
typedef struct ragd_http_req ragd_http_req;
typedef struct ragd_http_stream ragd_http_stream;
typedef struct ragd_http_deferred ragd_http_deferred;

typedef void (*ragd_http_handler)(void *ctx, ragd_http_req *req);

enum { RAGD_HTTP_PUBLIC = 0, RAGD_HTTP_AUTH = 1 };

typedef struct ragd_http_opts {
    const char *host;      /* default "127.0.0.1" */
    int port;              /* default 8080; 0 = any free port (see ragd_http_server_port) */
    int threads;           /* MHD worker threads (default 4) */
    size_t max_body;       /* bytes; larger bodies get 413 (default 8 MiB) */
    int conn_timeout_s;    /* idle connection timeout (default 60 s) */
    const char *api_key;   /* NULL/"": no auth */
    ragd_metrics *metrics; /* optional: ragd_http_requests_total{path,code} */
} ragd_http_opts;

int ragd_http_server_create(const ragd_http_opts *opts, ragd_http_server **out, ragd_err *err);
/* auth: RAGD_HTTP_AUTH routes need "Authorization: Bearer <api_key>" when a key is set. */
int ragd_http_route(ragd_http_server *s, const char *method, const char *path, ragd_http_handler fn,
                    void *ctx, int auth);
/* Bind and start serving. */
int ragd_http_server_start(ragd_http_server *s, ragd_err *err);
int ragd_http_server_port(const ragd_http_server *s);
/* Stop the daemon (waits for worker threads), then free. Streams still held by producers
 * stay valid until they call ragd_http_stream_end(). */
void ragd_http_server_destroy(ragd_http_server *s);

/* --- request accessors (valid during the handler call) --- */
const char *ragd_http_req_method(const ragd_http_req *r);
const char *ragd_http_req_path(const ragd_http_req *r);
const char *ragd_http_req_body(const ragd_http_req *r, size_t *len); /* NUL-terminated */
const char *ragd_http_req_header(const ragd_http_req *r, const char *name);
const char *ragd_http_req_query(const ragd_http_req *r, const char *key);

/* --- immediate replies (from the handler) --- */
/* Add a header to the reply (e.g. Retry-After); call before the reply function. */
void ragd_http_reply_header(ragd_http_req *r, const char *name, const char *value);
void ragd_http_reply(ragd_http_req *r, int status, const char *content_type, const char *body,
                     size_t len);
void ragd_http_reply_json(ragd_http_req *r, int status, const char *json);
/* OpenAI error shape: {"error":{"message","type","param","code"}}; param/code may be NULL. */
void ragd_http_reply_error(ragd_http_req *r, int status, const char *type, const char *param,
                           const char *code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* The same JSON text (for streams that fail after starting). Caller frees. */
char *ragd_http_error_json(const char *message, const char *type, const char *param,
                           const char *code);

/* --- deferred replies --- */
ragd_http_deferred *ragd_http_defer(ragd_http_req *r);
/* From any thread, exactly once; copies body. */
void ragd_http_deferred_reply(ragd_http_deferred *d, int status, const char *content_type,
                              const char *body, size_t len);

/* From any thread, instead of deferred_reply: start the 200 stream now (headers go out with
 * the first bytes written). For streams whose first bytes come later (e.g. a queued request):
 * defer in the handler, then call this when there is something to send. NULL when the
 * deferred reply was already given. */
ragd_http_stream *ragd_http_deferred_stream(ragd_http_deferred *d, const char *content_type);

/* --- streams --- */
/* Start a 200 chunked response ("text/event-stream" when content_type is NULL). The producer
 * owns one reference until ragd_http_stream_end(). */
ragd_http_stream *ragd_http_reply_stream(ragd_http_req *r, const char *content_type);
/* Queue bytes (any thread). RAGD_ECANCELLED once the client has gone. */
int ragd_http_stream_write(ragd_http_stream *s, const char *data, size_t len);
/* "data: <json>\n\n" */
int ragd_http_stream_sse(ragd_http_stream *s, const char *data, size_t len);
bool ragd_http_stream_closed(ragd_http_stream *s);
/* fn(ctx) runs once (on an MHD thread) if the client disconnects before the stream ends;
 * set it before writing. */
void ragd_http_stream_on_close(ragd_http_stream *s, void (*fn)(void *ctx), void *ctx);
/* Finish the stream and drop the producer's reference; s must not be used afterwards. */
void ragd_http_stream_end(ragd_http_stream *s);

#endif
