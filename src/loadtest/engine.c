/* engine.c - the event-driven SSE client: worker threads, each with one libcurl multi handle
 * driven through the socket API on an epoll set and a timerfd for its own schedule. */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "loadtest/loadtest.h"
#include "loadtest/sse.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/stats.h"
#include "util/vec.h"

#define ERR_BODY_MAX 1024

const char *ragd_lt_status_name(int s) {
    static const char *names[] = {"ok",           "http_status", "connect",
                                  "timeout",      "disconnect",  "incomplete_stream",
                                  "stream_error", "other",       "cut"};
    return s >= 0 && s < RAGD_LT_N_STATUS ? names[s] : "?";
}

/* ---- random numbers (splitmix64; deterministic from --seed) ---- */

static uint64_t mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}
static uint64_t rng_next(uint64_t *s) {
    *s += 0x9E3779B97F4A7C15ULL;
    uint64_t x = *s;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}
static double rng_unit(uint64_t *s) { /* (0,1) */
    return ((double)(rng_next(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}
static double rng_normal(uint64_t *s) {
    double u1 = rng_unit(s), u2 = rng_unit(s);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
/* Gamma(shape k, scale 1) by Marsaglia-Tsang (k < 1 via the boost u^(1/k)). */
static double rng_gamma(uint64_t *s, double k) {
    if (k < 1) return rng_gamma(s, k + 1) * pow(rng_unit(s), 1.0 / k);
    double d = k - 1.0 / 3, c = 1.0 / sqrt(9 * d);
    for (;;) {
        double x = rng_normal(s), v = 1 + c * x;
        if (v <= 0) continue;
        v = v * v * v;
        double u = rng_unit(s);
        if (log(u) < 0.5 * x * x + d - d * v + d * log(v)) return d * v;
    }
}

/* ---- data structures ---- */

typedef struct worker worker;

typedef struct slot {
    worker *w;
    CURL *easy;
    int index; /* slot index in its worker */
    int user;  /* closed loop: global user index; open loop: -1 */
    int quota; /* closed loop: requests left for this user (-1 unlimited) */
    bool busy;
    uint64_t rng;
    ragd_sse_parser sse;
    ragd_buf body, errbody, text;
    RAGD_VEC(float) ev;
    uint64_t now_ns;  /* arrival time of the bytes being parsed */
    uint64_t last_ns; /* arrival time of the last bytes received */
    uint64_t start_ns, sched_ns, req_id;
    double ttft_ms;
    long n_content, usage_out, usage_in;
    bool have_usage, done_seen, stream_err, status_known;
    long http_status;
    char *stream_err_msg;
} slot;

typedef struct timer_ent {
    uint64_t at;
    int slot;
} timer_ent;

typedef struct run_state {
    const ragd_lt_config *cfg;
    bool warmup;
    int n_users;                    /* closed loop users in this phase */
    int *quota;                     /* per user, closed loop; NULL = unlimited (duration) */
    uint64_t t0_ns, end_ns, cut_ns; /* end/cut 0 = none */
    long open_requests;             /* open loop: arrivals (0 = until end) */
    double rate;
    atomic_ullong next_id;
    atomic_ullong done, failed, tokens, in_flight;
    atomic_int workers_left;
    pthread_mutex_t mu;
    ragd_hist ttft_hist;
    struct curl_slist *headers;
} run_state;

struct worker {
    run_state *run;
    int wid, n_workers;
    CURLM *multi;
    int epfd, tfd;
    int64_t curl_deadline; /* ns, -1 none */
    slot *slots;
    int n_slots, cap_slots;
    RAGD_VEC(int) idle; /* open loop: indices of initialised slots not in use */
    int active;
    RAGD_VEC(timer_ent) heap;
    /* open loop */
    bool open, arrivals_done;
    uint64_t arr_rng;
    double arr_unit; /* cumulative unit-rate time */
    long arr_j;
    uint64_t next_arrival_ns;
    RAGD_VEC(timer_ent) backlog; /* (sched_ns, arrival index) */
    size_t backlog_head;
    int max_active;
    RAGD_VEC(ragd_lt_record) records;
    uint64_t end_ns;
    int err;
    char errmsg[256];
};

/* ---- timer heap ---- */

static int heap_push(worker *w, uint64_t at, int s) {
    if (RAGD_VEC_PUSH(&w->heap, ((timer_ent){at, s}))) return RAGD_ENOMEM;
    size_t i = w->heap.len - 1;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (w->heap.data[p].at <= w->heap.data[i].at) break;
        timer_ent t = w->heap.data[p];
        w->heap.data[p] = w->heap.data[i];
        w->heap.data[i] = t;
        i = p;
    }
    return RAGD_OK;
}

static timer_ent heap_pop(worker *w) {
    timer_ent top = w->heap.data[0];
    w->heap.data[0] = w->heap.data[--w->heap.len];
    size_t i = 0, n = w->heap.len;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && w->heap.data[l].at < w->heap.data[m].at) m = l;
        if (r < n && w->heap.data[r].at < w->heap.data[m].at) m = r;
        if (m == i) break;
        timer_ent t = w->heap.data[m];
        w->heap.data[m] = w->heap.data[i];
        w->heap.data[i] = t;
        i = m;
    }
    return top;
}

/* ---- request bodies ---- */

static int append_escaped(ragd_buf *b, const char *s) {
    size_t at = b->len;
    if (ragd_buf_json_str(b, s, strlen(s))) return RAGD_ENOMEM;
    /* drop the quotes: placeholders sit inside the template's own quotes */
    memmove(b->data + at, b->data + at + 1, b->len - at - 2);
    b->len -= 2;
    b->data[b->len] = '\0';
    return RAGD_OK;
}

static int build_body(const ragd_lt_config *c, ragd_buf *b, const char *q, long user_id,
                      uint64_t req_id) {
    ragd_buf_clear(b);
    int rc = 0;
    switch (c->api) {
        case RAGD_LT_API_OPENAI_CHAT:
        case RAGD_LT_API_OPENAI_COMPLETIONS:
            rc |= ragd_buf_puts(b, "{");
            if (c->model) {
                rc |= ragd_buf_puts(b, "\"model\":");
                rc |= ragd_buf_json_str(b, c->model, strlen(c->model));
                rc |= ragd_buf_puts(b, ",");
            }
            if (c->api == RAGD_LT_API_OPENAI_CHAT) {
                rc |= ragd_buf_puts(b, "\"messages\":[{\"role\":\"user\",\"content\":");
                rc |= ragd_buf_json_str(b, q, strlen(q));
                rc |= ragd_buf_puts(b, "}],");
            } else {
                rc |= ragd_buf_puts(b, "\"prompt\":");
                rc |= ragd_buf_json_str(b, q, strlen(q));
                rc |= ragd_buf_puts(b, ",");
            }
            if (c->max_tokens > 0) rc |= ragd_buf_printf(b, "\"max_tokens\":%d,", c->max_tokens);
            rc |= ragd_buf_puts(b, "\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
            break;
        case RAGD_LT_API_SEED:
            rc |= ragd_buf_printf(b,
                                  "{\"recommend\":0,\"user_id\":%ld,\"us_id\":\"\",\"messages\":"
                                  "[{\"role\":\"user\",\"content\":",
                                  user_id);
            rc |= ragd_buf_json_str(b, q, strlen(q));
            rc |= ragd_buf_puts(b, "}]}");
            break;
        default: {
            const char *t = c->body_template;
            while (*t) {
                const char *open = strstr(t, "{{");
                if (!open) {
                    rc |= ragd_buf_puts(b, t);
                    break;
                }
                rc |= ragd_buf_append(b, t, (size_t)(open - t));
                if (!strncmp(open, "{{question}}", 12)) {
                    rc |= append_escaped(b, q);
                    t = open + 12;
                } else if (!strncmp(open, "{{user_id}}", 11)) {
                    rc |= ragd_buf_printf(b, "%ld", user_id);
                    t = open + 11;
                } else if (!strncmp(open, "{{request_id}}", 14)) {
                    rc |= ragd_buf_printf(b, "%llu", (unsigned long long)req_id);
                    t = open + 14;
                } else {
                    rc |= ragd_buf_append(b, open, 2);
                    t = open + 2;
                }
            }
        }
    }
    return rc ? RAGD_ENOMEM : RAGD_OK;
}

/* ---- SSE / response handling ---- */

static void set_stream_error(slot *s, const char *msg, size_t len) {
    if (s->stream_err) return;
    s->stream_err = true;
    if (len > ERR_BODY_MAX) len = ERR_BODY_MAX;
    s->stream_err_msg = strndup(msg, len);
}

static int on_sse_event(void *ud, const ragd_sse_event *ev) {
    slot *s = ud;
    const run_state *run = s->w->run;
    if (ev->data_len == 6 && !memcmp(ev->data, "[DONE]", 6)) {
        s->done_seen = true;
        return 0;
    }
    if (ev->type_len == 5 && !memcmp(ev->type, "error", 5)) {
        set_stream_error(s, ev->data, ev->data_len);
        return 0;
    }
    const char *content = NULL;
    size_t content_len = 0;
    cJSON *obj = NULL;
    if (ev->data_len && (ev->data[0] == '{' || ev->data[0] == '[' || ev->data[0] == ' '))
        obj = cJSON_ParseWithLength(ev->data, ev->data_len);
    if (!obj) {
        /* plain-text event stream: the data is the content */
        content = ev->data;
        content_len = ev->data_len;
    } else if (cJSON_IsObject(obj)) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(obj, "error");
        if (e && !cJSON_IsNull(e)) {
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
            if (cJSON_IsString(m))
                set_stream_error(s, m->valuestring, strlen(m->valuestring));
            else
                set_stream_error(s, ev->data, ev->data_len);
        }
        const cJSON *choices = cJSON_GetObjectItemCaseSensitive(obj, "choices");
        const cJSON *c = NULL;
        if (cJSON_IsArray(choices)) {
            const cJSON *c0 = cJSON_GetArrayItem(choices, 0);
            const cJSON *delta = cJSON_GetObjectItemCaseSensitive(c0, "delta");
            if (delta) {
                c = cJSON_GetObjectItemCaseSensitive(delta, "content");
                if (!cJSON_IsString(c) || !c->valuestring[0])
                    c = cJSON_GetObjectItemCaseSensitive(delta, "reasoning_content");
            } else {
                c = cJSON_GetObjectItemCaseSensitive(c0, "text");
            }
        } else {
            c = cJSON_GetObjectItemCaseSensitive(obj, "text");
        }
        if (cJSON_IsString(c)) {
            content = c->valuestring;
            content_len = strlen(content);
        }
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(obj, "usage");
        if (cJSON_IsObject(u)) {
            const cJSON *ct = cJSON_GetObjectItemCaseSensitive(u, "completion_tokens");
            const cJSON *pt = cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens");
            if (cJSON_IsNumber(ct)) {
                s->have_usage = true;
                s->usage_out = (long)ct->valuedouble;
            }
            if (cJSON_IsNumber(pt)) s->usage_in = (long)pt->valuedouble;
        }
    }
    if (content && content_len) {
        float t_ms = (float)((double)(s->now_ns - s->start_ns) / 1e6);
        if (s->n_content == 0) s->ttft_ms = (double)(s->now_ns - s->start_ns) / 1e6;
        s->n_content++;
        if (RAGD_VEC_PUSH(&s->ev, t_ms)) {
            cJSON_Delete(obj);
            return RAGD_ENOMEM;
        }
        if (run->cfg->count_tokens && ragd_buf_append(&s->text, content, content_len)) {
            cJSON_Delete(obj);
            return RAGD_ENOMEM;
        }
    }
    cJSON_Delete(obj);
    return 0;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *ud) {
    uint64_t t = ragd_now_ns(); /* before anything else: when the bytes arrived */
    slot *s = ud;
    size_t n = size * nmemb;
    if (!s->status_known) {
        curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &s->http_status);
        s->status_known = true;
    }
    if (s->http_status >= 400) {
        size_t room = s->errbody.len < ERR_BODY_MAX ? ERR_BODY_MAX - s->errbody.len : 0;
        if (room && ragd_buf_append(&s->errbody, ptr, n < room ? n : room)) return 0;
        return n;
    }
    s->now_ns = s->last_ns = t;
    if (ragd_sse_feed(&s->sse, ptr, n) == RAGD_ENOMEM) return 0;
    return n;
}

/* ---- curl socket API glue ---- */

static int on_socket(CURL *e, curl_socket_t fd, int what, void *uw, void *sockp) {
    worker *w = uw;
    (void)e;
    struct epoll_event ev = {0};
    ev.data.fd = fd;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(w->epfd, EPOLL_CTL_DEL, fd, NULL);
        curl_multi_assign(w->multi, fd, NULL);
        return 0;
    }
    ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
    if (sockp) {
        epoll_ctl(w->epfd, EPOLL_CTL_MOD, fd, &ev);
    } else {
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) && errno == EEXIST)
            epoll_ctl(w->epfd, EPOLL_CTL_MOD, fd, &ev);
        curl_multi_assign(w->multi, fd, w);
    }
    return 0;
}

static int on_timer(CURLM *m, long timeout_ms, void *uw) {
    worker *w = uw;
    (void)m;
    if (timeout_ms < 0)
        w->curl_deadline = -1;
    else
        w->curl_deadline = (int64_t)(ragd_now_ns() + (uint64_t)timeout_ms * 1000000ULL);
    return 0;
}

/* ---- requests ---- */

static int slot_init(worker *w, slot *s, int index, int user) {
    memset(s, 0, sizeof *s);
    s->w = w;
    s->index = index;
    s->user = user;
    s->quota = -1;
    s->easy = curl_easy_init();
    if (!s->easy) return RAGD_ENOMEM;
    ragd_sse_init(&s->sse, on_sse_event, NULL, s);
    return RAGD_OK;
}

static void slot_free(slot *s) {
    if (s->easy) curl_easy_cleanup(s->easy);
    ragd_sse_free(&s->sse);
    ragd_buf_free(&s->body);
    ragd_buf_free(&s->errbody);
    ragd_buf_free(&s->text);
    RAGD_VEC_FREE(&s->ev);
    free(s->stream_err_msg);
}

static int start_request(worker *w, slot *s, uint64_t sched_ns, uint64_t req_id, uint64_t qrng) {
    run_state *run = w->run;
    const ragd_lt_config *c = run->cfg;
    uint64_t r = qrng;
    const char *q = c->questions[rng_next(&r) % c->n_questions];
    long user_id = (long)(rng_next(&r) % (uint64_t)c->num_user_ids) + 1;
    if (build_body(c, &s->body, q, user_id, req_id)) return RAGD_ENOMEM;
    ragd_sse_reset(&s->sse);
    ragd_buf_clear(&s->errbody);
    ragd_buf_clear(&s->text);
    s->ev.len = 0;
    free(s->stream_err_msg);
    s->stream_err_msg = NULL;
    s->ttft_ms = -1;
    s->n_content = s->usage_out = 0;
    s->usage_in = -1;
    s->have_usage = s->done_seen = s->stream_err = s->status_known = false;
    s->http_status = 0;
    s->req_id = req_id;
    s->sched_ns = sched_ns;
    s->last_ns = 0;
    CURL *e = s->easy;
    curl_easy_setopt(e, CURLOPT_URL, c->url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, s->body.data);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)s->body.len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, run->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(e, CURLOPT_PRIVATE, s);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(c->timeout_s * 1000));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(c->connect_timeout_s * 1000));
    s->busy = true;
    w->active++;
    atomic_fetch_add(&run->in_flight, 1);
    s->start_ns = ragd_now_ns();
    CURLMcode mc = curl_multi_add_handle(w->multi, e);
    if (mc != CURLM_OK) {
        snprintf(w->errmsg, sizeof w->errmsg, "curl_multi_add_handle: %s", curl_multi_strerror(mc));
        return RAGD_EINTERNAL;
    }
    return RAGD_OK;
}

static int classify(slot *s, CURLcode cc, char **msg) {
    *msg = NULL;
    if (s->http_status >= 400) {
        ragd_buf m = {0};
        ragd_buf_printf(&m, "HTTP %ld: ", s->http_status);
        ragd_buf_append(&m, s->errbody.data ? s->errbody.data : "", s->errbody.len);
        *msg = ragd_buf_steal(&m);
        return RAGD_LT_ERR_HTTP;
    }
    if (s->stream_err) {
        *msg = s->stream_err_msg;
        s->stream_err_msg = NULL;
        return RAGD_LT_ERR_STREAM_ERROR;
    }
    if (cc == CURLE_OK || s->done_seen) {
        if (s->done_seen) return RAGD_LT_OK;
        *msg = strdup(ragd_sse_finish(&s->sse) ? "stream ended inside an event without [DONE]"
                                               : "stream ended without [DONE]");
        return RAGD_LT_ERR_INCOMPLETE;
    }
    *msg = strdup(curl_easy_strerror(cc));
    switch (cc) {
        case CURLE_OPERATION_TIMEDOUT:
            return RAGD_LT_ERR_TIMEOUT;
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
        case CURLE_SSL_CONNECT_ERROR:
            return RAGD_LT_ERR_CONNECT;
        case CURLE_PARTIAL_FILE:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_GOT_NOTHING:
            return RAGD_LT_ERR_DISCONNECT;
        default:
            return RAGD_LT_ERR_OTHER;
    }
}

static void schedule_user(worker *w, slot *s, uint64_t now);

/* The request in s ended (status computed by classify, or RAGD_LT_CUT). */
static int finish_request(worker *w, slot *s, int status, char *msg, uint64_t now) {
    run_state *run = w->run;
    const ragd_lt_config *c = run->cfg;
    curl_multi_remove_handle(w->multi, s->easy);
    s->busy = false;
    w->active--;
    atomic_fetch_sub(&run->in_flight, 1);
    ragd_lt_record r = {0};
    r.id = s->req_id;
    r.user = s->user;
    r.sched_s = (double)((int64_t)s->sched_ns - (int64_t)run->t0_ns) / 1e9;
    r.start_s = (double)((int64_t)s->start_ns - (int64_t)run->t0_ns) / 1e9;
    r.ttft_ms = s->ttft_ms;
    /* a complete stream ends with its last bytes; failures and cuts when they were noticed */
    uint64_t end = status == RAGD_LT_OK && s->last_ns ? s->last_ns : now;
    r.e2e_ms = (double)(end - s->start_ns) / 1e6;
    r.n_events = (uint32_t)s->ev.len;
    if (s->ev.len) {
        r.event_ms = malloc(s->ev.len * sizeof(float));
        if (!r.event_ms) return RAGD_ENOMEM;
        memcpy(r.event_ms, s->ev.data, s->ev.len * sizeof(float));
    }
    if (c->count_tokens)
        r.output_tokens =
            c->count_tokens(c->count_tokens_ctx, s->text.data ? s->text.data : "", s->text.len);
    else if (s->have_usage)
        r.output_tokens = s->usage_out;
    else
        r.output_tokens = s->n_content;
    r.tokens_from_usage = !c->count_tokens && s->have_usage;
    r.prompt_tokens = s->usage_in;
    r.http_status = (int)s->http_status;
    r.status = status;
    r.error = msg;
    if (status == RAGD_LT_OK) {
        atomic_fetch_add(&run->done, 1);
        atomic_fetch_add(&run->tokens,
                         (unsigned long long)(r.output_tokens > 0 ? r.output_tokens : 0));
        if (r.ttft_ms >= 0) {
            pthread_mutex_lock(&run->mu);
            ragd_hist_add(&run->ttft_hist, r.ttft_ms);
            pthread_mutex_unlock(&run->mu);
        }
    } else if (status != RAGD_LT_CUT) {
        atomic_fetch_add(&run->failed, 1);
    }
    if (run->warmup) {
        free(r.event_ms);
        free(r.error);
    } else if (RAGD_VEC_PUSH(&w->records, r)) {
        free(r.event_ms);
        free(r.error);
        return RAGD_ENOMEM;
    }
    if (!w->open && status != RAGD_LT_CUT) schedule_user(w, s, now);
    if (w->open && RAGD_VEC_PUSH(&w->idle, s->index)) return RAGD_ENOMEM;
    return RAGD_OK;
}

static void schedule_user(worker *w, slot *s, uint64_t now) {
    run_state *run = w->run;
    if (s->quota == 0) return;
    uint64_t at = now + (uint64_t)(run->cfg->interval_s * 1e9);
    if (run->end_ns && at >= run->end_ns) return;
    heap_push(w, at, s->index);
}

/* ---- open loop arrivals ---- */

static void next_arrival(worker *w) {
    run_state *run = w->run;
    const ragd_lt_config *c = run->cfg;
    for (;;) {
        if (run->open_requests > 0 && w->arr_j >= run->open_requests) {
            w->arrivals_done = true;
            return;
        }
        double k = c->burstiness > 0 ? c->burstiness : 1;
        /* mean-1 gaps: exponential (Poisson arrivals) or gamma with shape k */
        w->arr_unit += k == 1 ? -log(rng_unit(&w->arr_rng)) : rng_gamma(&w->arr_rng, k) / k;
        /* map unit-rate time through the (ramped) intensity */
        double R = run->rate, T = c->ramp_up_s, U = w->arr_unit, t;
        if (T > 0 && U < R * T / 2)
            t = sqrt(2 * T * U / R);
        else if (T > 0)
            t = T + (U - R * T / 2) / R;
        else
            t = U / R;
        long j = w->arr_j++;
        uint64_t at = run->t0_ns + (uint64_t)(t * 1e9);
        if (run->end_ns && at >= run->end_ns) {
            w->arrivals_done = true;
            return;
        }
        if (j % w->n_workers == w->wid) {
            w->next_arrival_ns = at;
            return;
        }
    }
}

static slot *free_slot(worker *w) {
    if (w->idle.len) return &w->slots[w->idle.data[--w->idle.len]];
    if (w->n_slots == w->cap_slots) return NULL;
    slot *s = &w->slots[w->n_slots];
    if (slot_init(w, s, w->n_slots, -1)) return NULL;
    w->n_slots++;
    return s;
}

static int start_arrival(worker *w, uint64_t sched_ns, long j) {
    slot *s = free_slot(w);
    if (!s) return RAGD_ENOMEM;
    return start_request(w, s, sched_ns, (uint64_t)j,
                         mix64(w->run->cfg->seed ^ mix64((uint64_t)j + 0x5eed)));
}

/* ---- the loop ---- */

/* Arrivals still waiting for a free slot when the run ends were never sent: report them as
 * cut, and stop generating arrivals. */
static void cut_backlog(worker *w) {
    for (size_t i = w->backlog_head; i < w->backlog.len; i++) {
        if (w->run->warmup) continue;
        ragd_lt_record r = {0};
        r.id = (uint64_t)w->backlog.data[i].slot;
        r.user = -1;
        r.sched_s = (double)((int64_t)w->backlog.data[i].at - (int64_t)w->run->t0_ns) / 1e9;
        r.start_s = r.sched_s;
        r.ttft_ms = -1;
        r.prompt_tokens = -1;
        r.status = RAGD_LT_CUT;
        r.error = strdup("cut: not started (waiting for --max-concurrency) when the run ended");
        if (RAGD_VEC_PUSH(&w->records, r)) free(r.error);
    }
    w->backlog.len = w->backlog_head = 0;
    w->arrivals_done = true;
}

static void cut_all(worker *w, uint64_t now) {
    for (int i = 0; i < w->n_slots; i++)
        if (w->slots[i].busy)
            finish_request(w, &w->slots[i], RAGD_LT_CUT,
                           strdup("cut: still running when the run ended"), now);
    w->heap.len = 0;
    cut_backlog(w);
}

static void drain_done(worker *w) {
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(w->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        slot *s = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
        CURLcode cc = m->data.result;
        uint64_t now = ragd_now_ns();
        if (!s->status_known) curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &s->http_status);
        char *msg;
        int st = classify(s, cc, &msg);
        if (finish_request(w, s, st, msg, now)) w->err = RAGD_ENOMEM;
        if (w->open && w->backlog_head < w->backlog.len && w->active < w->max_active) {
            timer_ent b = w->backlog.data[w->backlog_head++];
            if (start_arrival(w, b.at, b.slot)) w->err = RAGD_ENOMEM;
        }
    }
}

static void *worker_main(void *arg) {
    worker *w = arg;
    run_state *run = w->run;
    const ragd_lt_config *c = run->cfg;
    struct epoll_event evs[256];
    bool stopping = false;
    while (!w->err) {
        uint64_t now = ragd_now_ns();
        if (!stopping && c->stop && *c->stop) {
            stopping = true;
            cut_all(w, now);
        }
        if (run->cut_ns && now >= run->cut_ns) cut_all(w, now);
        if (run->end_ns && now >= run->end_ns) {
            /* no new requests after the end; queued open-loop arrivals were never sent */
            w->heap.len = 0;
            cut_backlog(w);
        }
        while (w->heap.len && w->heap.data[0].at <= now && !w->err) {
            timer_ent t = heap_pop(w);
            slot *s = &w->slots[t.slot];
            if (s->quota > 0) s->quota--;
            uint64_t id = atomic_fetch_add(&run->next_id, 1);
            if (start_request(w, s, t.at, id, rng_next(&s->rng))) w->err = RAGD_EINTERNAL;
        }
        if (w->open) {
            while (!w->arrivals_done && w->next_arrival_ns <= now && !w->err) {
                long j = w->arr_j - 1;
                if (w->active < w->max_active) {
                    if (start_arrival(w, w->next_arrival_ns, j)) w->err = RAGD_ENOMEM;
                } else if (RAGD_VEC_PUSH(&w->backlog, ((timer_ent){w->next_arrival_ns, (int)j}))) {
                    w->err = RAGD_ENOMEM;
                }
                next_arrival(w);
            }
        }
        bool pending =
            w->heap.len || (w->open && (!w->arrivals_done || w->backlog_head < w->backlog.len));
        if (!w->active && !pending) break;
        /* next wake-up */
        uint64_t wake = now + 200000000ULL; /* re-check the stop flag at least 5x a second */
        if (w->heap.len && w->heap.data[0].at < wake) wake = w->heap.data[0].at;
        if (w->open && !w->arrivals_done && w->next_arrival_ns < wake) wake = w->next_arrival_ns;
        if (w->curl_deadline >= 0 && (uint64_t)w->curl_deadline < wake)
            wake = (uint64_t)w->curl_deadline;
        if (run->cut_ns && w->active && run->cut_ns < wake) wake = run->cut_ns;
        if (run->end_ns && run->end_ns > now && run->end_ns < wake) wake = run->end_ns;
        int timeout = -1;
        if (wake <= now) {
            timeout = 0;
        } else {
            struct itimerspec its = {0};
            its.it_value.tv_sec = (time_t)(wake / 1000000000ULL);
            its.it_value.tv_nsec = (long)(wake % 1000000000ULL);
            timerfd_settime(w->tfd, TFD_TIMER_ABSTIME, &its, NULL);
        }
        int n = epoll_wait(w->epfd, evs, 256, timeout);
        if (n < 0 && errno != EINTR) {
            snprintf(w->errmsg, sizeof w->errmsg, "epoll_wait: %s", strerror(errno));
            w->err = RAGD_EIO;
            break;
        }
        int running;
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == w->tfd) {
                uint64_t x;
                if (read(w->tfd, &x, sizeof x) < 0) { /* EAGAIN: fine */
                }
                continue;
            }
            int flags = 0;
            if (evs[i].events & EPOLLIN) flags |= CURL_CSELECT_IN;
            if (evs[i].events & EPOLLOUT) flags |= CURL_CSELECT_OUT;
            if (evs[i].events & (EPOLLERR | EPOLLHUP)) flags |= CURL_CSELECT_ERR;
            curl_multi_socket_action(w->multi, fd, flags, &running);
        }
        if (w->curl_deadline >= 0 && (uint64_t)w->curl_deadline <= ragd_now_ns()) {
            w->curl_deadline = -1;
            curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        }
        drain_done(w);
    }
    w->end_ns = ragd_now_ns();
    atomic_fetch_sub(&run->workers_left, 1);
    return NULL;
}

/* ---- phases ---- */

static void curl_global_init_default(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* One socket per stream: raise the soft descriptor limit as far as the hard one allows. */
static void raise_nofile(size_t need) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl)) return;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        rlim_t want = (rlim_t)need;
        if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max) want = rl.rlim_max;
        rl.rlim_cur = want;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (want < need)
            LOG_WARN("loadtest: the open-file limit (%llu) is below the %zu descriptors this run "
                     "needs; streams beyond it fail as connect errors (raise the hard limit)",
                     (unsigned long long)want, need);
    }
}

static double cpu_seconds(double *user, double *sys) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
    *sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    return *user + *sys;
}

static void worker_free(worker *w) {
    for (int i = 0; i < w->n_slots; i++) {
        if (w->slots[i].busy) curl_multi_remove_handle(w->multi, w->slots[i].easy);
        slot_free(&w->slots[i]);
    }
    free(w->slots);
    if (w->multi) curl_multi_cleanup(w->multi);
    if (w->epfd >= 0) close(w->epfd);
    if (w->tfd >= 0) close(w->tfd);
    RAGD_VEC_FREE(&w->heap);
    RAGD_VEC_FREE(&w->backlog);
    RAGD_VEC_FREE(&w->idle);
    for (size_t i = 0; i < w->records.len; i++) {
        free(w->records.data[i].event_ms);
        free(w->records.data[i].error);
    }
    RAGD_VEC_FREE(&w->records);
}

static int record_cmp(const void *a, const void *b) {
    const ragd_lt_record *x = a, *y = b;
    if (x->sched_s != y->sched_s) return x->sched_s < y->sched_s ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Run one phase. warmup: closed loop of cfg->warmup requests, results dropped. */
static int run_phase(const ragd_lt_config *c, bool warmup, ragd_lt_result *res, ragd_err *err) {
    bool open = !warmup && c->rate > 0;
    int n_users = 0;
    int *quota = NULL;
    if (warmup) {
        int conc =
            c->rate > 0 ? (c->max_concurrency > 0 ? c->max_concurrency : c->warmup) : c->users;
        n_users = conc < c->warmup ? conc : c->warmup;
        if (n_users < 1) n_users = 1;
    } else if (!open) {
        n_users = c->users;
    }
    if (n_users) {
        quota = calloc((size_t)n_users, sizeof *quota);
        if (!quota) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        for (int u = 0; u < n_users; u++) {
            if (warmup)
                quota[u] = c->warmup / n_users + (u < c->warmup % n_users);
            else
                quota[u] = c->loops > 0 ? c->loops : -1;
        }
    }
    int W = c->threads;
    if (!open && W > n_users) W = n_users;
    if (W < 1) W = 1;
    int max_conc = open ? (c->max_concurrency > 0 ? c->max_concurrency : 1 << 20) : n_users;
    raise_nofile((size_t)(open ? (c->max_concurrency > 0 ? c->max_concurrency : 4096) : n_users) +
                 256);

    run_state run;
    memset(&run, 0, sizeof run);
    run.cfg = c;
    run.warmup = warmup;
    run.n_users = n_users;
    run.quota = quota;
    run.rate = c->rate;
    run.open_requests = open ? c->requests : 0;
    atomic_init(&run.workers_left, W);
    pthread_mutex_init(&run.mu, NULL);
    int rc = ragd_hist_init(&run.ttft_hist, 0.01, 1e7, 20);
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Accept: text/event-stream");
    h = curl_slist_append(h, "Expect:");
    for (size_t i = 0; i < c->n_headers && h; i++) h = curl_slist_append(h, c->headers[i]);
    run.headers = h;
    worker *ws = calloc((size_t)W, sizeof *ws);
    if (rc || !h || !ws) {
        rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < W; i++) {
        worker *w = &ws[i];
        w->run = &run;
        w->wid = i;
        w->n_workers = W;
        w->epfd = w->tfd = -1;
        w->curl_deadline = -1;
        w->open = open;
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        w->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        w->multi = curl_multi_init();
        if (w->epfd < 0 || w->tfd < 0 || !w->multi) {
            rc = ragd_err_set(err, RAGD_EIO, "cannot create epoll/timerfd/curl multi: %s",
                              strerror(errno));
            goto done;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = w->tfd};
        epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->tfd, &ev);
        curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
        curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
        curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, on_timer);
        curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);
        int mine = open ? (max_conc + W - 1) / W : (n_users - i + W - 1) / W;
        w->cap_slots = open ? (mine < 16384 ? mine : 16384) : mine;
        w->max_active = open ? w->cap_slots : n_users; /* arrivals beyond it wait */
        curl_multi_setopt(w->multi, CURLMOPT_MAXCONNECTS,
                          (long)(open ? (mine < 65536 ? mine : 65536) : mine) + 8);
        w->slots = calloc((size_t)w->cap_slots, sizeof *w->slots);
        if (!w->slots) {
            rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
            goto done;
        }
        if (open) {
            w->arr_rng = mix64(c->seed ^ 0xA11A11ULL);
        }
    }
    uint64_t t0 = ragd_now_ns() + 2000000ULL;
    run.t0_ns = t0;
    if (!warmup && c->duration_s > 0) {
        run.end_ns = t0 + (uint64_t)(c->duration_s * 1e9);
        run.cut_ns = run.end_ns + (uint64_t)(c->grace_s * 1e9);
    }
    if (open) {
        for (int i = 0; i < W; i++) next_arrival(&ws[i]);
    } else {
        for (int u = 0; u < n_users; u++) {
            worker *w = &ws[u % W];
            slot *s = &w->slots[w->n_slots];
            if (slot_init(w, s, w->n_slots, u)) {
                rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
                goto done;
            }
            w->n_slots++;
            s->quota = quota[u];
            s->rng = mix64(c->seed ^ mix64((uint64_t)u + 1 + (warmup ? 0x77777 : 0)));
            uint64_t at = t0;
            if (!warmup && c->ramp_up_s > 0) at += (uint64_t)(c->ramp_up_s * 1e9 * u / n_users);
            if (s->quota != 0 && heap_push(w, at, s->index)) {
                rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
                goto done;
            }
        }
    }
    double cu0, cs0, cu1, cs1;
    cpu_seconds(&cu0, &cs0);
    pthread_t *th = calloc((size_t)W, sizeof *th);
    if (!th) {
        rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        goto done;
    }
    int started = 0;
    for (; started < W; started++)
        if (pthread_create(&th[started], NULL, worker_main, &ws[started])) break;
    if (started < W) {
        /* cannot happen in practice; stop the ones that started */
        atomic_fetch_sub(&run.workers_left, W - started);
    }
    uint64_t last_progress = ragd_now_ns();
    while (atomic_load(&run.workers_left) > 0) {
        ragd_sleep_ns(50000000ULL);
        uint64_t now = ragd_now_ns();
        if (c->progress && now - last_progress >= 1000000000ULL) {
            last_progress = now;
            ragd_lt_progress p = {0};
            p.elapsed_s = now > t0 ? (double)(now - t0) / 1e9 : 0;
            p.done = atomic_load(&run.done);
            p.failed = atomic_load(&run.failed);
            p.in_flight = atomic_load(&run.in_flight);
            p.output_tokens = atomic_load(&run.tokens);
            pthread_mutex_lock(&run.mu);
            p.ttft_p50_ms = ragd_hist_quantile(&run.ttft_hist, 0.5);
            pthread_mutex_unlock(&run.mu);
            c->progress(c->progress_ctx, &p);
        }
    }
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    free(th);
    cpu_seconds(&cu1, &cs1);
    if (started < W) {
        rc = ragd_err_set(err, RAGD_EINTERNAL, "cannot start worker threads");
        goto done;
    }
    for (int i = 0; i < W; i++) {
        if (ws[i].err) {
            rc = ragd_err_set(err, ws[i].err, "load generator: %s",
                              ws[i].errmsg[0] ? ws[i].errmsg : ragd_err_name(ws[i].err));
            goto done;
        }
    }
    if (!warmup) {
        uint64_t end = t0;
        size_t total = 0;
        for (int i = 0; i < W; i++) {
            if (ws[i].end_ns > end) end = ws[i].end_ns;
            total += ws[i].records.len;
        }
        res->total_s = (double)(end - t0) / 1e9;
        res->cpu_user_s = cu1 - cu0;
        res->cpu_sys_s = cs1 - cs0;
        res->records = calloc(total ? total : 1, sizeof *res->records);
        res->users = open ? 0 : n_users;
        res->user_done = calloc((size_t)(n_users ? n_users : 1), sizeof(long));
        res->user_failed = calloc((size_t)(n_users ? n_users : 1), sizeof(long));
        if (!res->records || !res->user_done || !res->user_failed) {
            rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
            goto done;
        }
        for (int i = 0; i < W; i++) {
            memcpy(res->records + res->n_records, ws[i].records.data,
                   ws[i].records.len * sizeof *res->records);
            res->n_records += ws[i].records.len;
            ws[i].records.len = 0; /* ownership moved */
        }
        qsort(res->records, res->n_records, sizeof *res->records, record_cmp);
        for (size_t i = 0; i < res->n_records; i++) {
            const ragd_lt_record *r = &res->records[i];
            if (r->user < 0 || r->user >= n_users) continue;
            if (r->status == RAGD_LT_OK)
                res->user_done[r->user]++;
            else if (r->status != RAGD_LT_CUT)
                res->user_failed[r->user]++;
        }
    }
done:
    if (ws)
        for (int i = 0; i < W; i++) worker_free(&ws[i]);
    free(ws);
    curl_slist_free_all(h);
    ragd_hist_free(&run.ttft_hist);
    pthread_mutex_destroy(&run.mu);
    free(quota);
    return rc;
}

int ragd_lt_run(const ragd_lt_config *c, ragd_lt_result *res, ragd_err *err) {
    memset(res, 0, sizeof *res);
    int rc = ragd_lt_config_check(c, err);
    if (rc) return rc;
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, curl_global_init_default);
    if (c->warmup > 0) {
        ragd_lt_result dummy = {0};
        if ((rc = run_phase(c, true, &dummy, err))) return rc;
        res->n_warmup = (uint64_t)c->warmup;
        if (c->stop && *c->stop) return RAGD_OK;
    }
    rc = run_phase(c, false, res, err);
    res->n_warmup = (uint64_t)c->warmup;
    if (rc) ragd_lt_result_free(res);
    return rc;
}

void ragd_lt_result_free(ragd_lt_result *res) {
    for (size_t i = 0; i < res->n_records; i++) {
        free(res->records[i].event_ms);
        free(res->records[i].error);
    }
    free(res->records);
    free(res->user_done);
    free(res->user_failed);
    memset(res, 0, sizeof *res);
}
