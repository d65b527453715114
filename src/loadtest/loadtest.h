/* loadtest.h - the SSE load generator behind `ragd loadtest`.
 *
 * Drives any HTTP server that streams Server-Sent Events (OpenAI chat/completions, the seed
 * tool's {"text": ...} format, or a custom body template) with closed-loop virtual users
 * (count or duration mode, think time, ramp-up) or an open-loop arrival process (Poisson or
 * gamma inter-arrival times on an absolute schedule, optional max concurrency), and records
 * one ragd_lt_record per request: start, TTFT, the arrival time of every content event,
 * tokens, status and error kind. report.c turns the records into the text summary, JSON and
 * HTML reports.
 *
 * Engine: a few worker threads (default 1), each running one libcurl multi handle with the
 * socket API on its own epoll set plus a timerfd; users are spread over the workers; there is
 * never a thread per user. Event times are taken in the libcurl write callback when the
 * bytes arrive, before any SSE or JSON parsing.
 *
 * Called by cli/cmd_loadtest.c. Depends only on util/ (and libcurl, cJSON, libyaml).
 * Thread-safety: ragd_lt_run blocks the calling thread (which runs the progress callback);
 * the config must not change while it runs.
 */
#ifndef RAGD_LOADTEST_LOADTEST_H
#define RAGD_LOADTEST_LOADTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/str.h"

typedef enum {
    RAGD_LT_API_OPENAI_CHAT = 0,
    RAGD_LT_API_OPENAI_COMPLETIONS,
    RAGD_LT_API_SEED,
    RAGD_LT_API_TEMPLATE, /* body from --body-template */
} ragd_lt_api;

/* Outcome of one request. Everything but OK and CUT is a failure of that kind. */
typedef enum {
    RAGD_LT_OK = 0,
    RAGD_LT_ERR_HTTP,         /* HTTP status >= 400 ("http_<code>") */
    RAGD_LT_ERR_CONNECT,      /* could not connect / resolve */
    RAGD_LT_ERR_TIMEOUT,      /* --timeout passed */
    RAGD_LT_ERR_DISCONNECT,   /* connection closed or reset mid-stream */
    RAGD_LT_ERR_INCOMPLETE,   /* stream ended cleanly but without [DONE] */
    RAGD_LT_ERR_STREAM_ERROR, /* an `event: error` or a {"error": ...} event */
    RAGD_LT_ERR_OTHER,        /* any other transfer error */
    RAGD_LT_CUT,              /* still running when the grace period ended (or interrupted) */
    RAGD_LT_N_STATUS
} ragd_lt_status;

/* Short name of a status: "ok", "http_status", "connect", "timeout", "disconnect",
 * "incomplete_stream", "stream_error", "other", "cut". */
const char *ragd_lt_status_name(int status);

/* Optional exact token counter (e.g. the project tokenizer): returns the number of tokens
 * in text[0..len). When set, output tokens are counted on the concatenated content text of
 * each request instead of taken from `usage` / the number of content events. */
typedef long (*ragd_lt_count_tokens_fn)(void *ctx, const char *text, size_t len);

typedef struct ragd_lt_progress {
    double elapsed_s;
    uint64_t done, failed, in_flight;
    uint64_t output_tokens; /* of successful requests */
    double ttft_p50_ms;     /* approximate (log histogram), 0 when none yet */
} ragd_lt_progress;
typedef void (*ragd_lt_progress_fn)(void *ctx, const ragd_lt_progress *p);

typedef struct ragd_lt_config {
    char *url;
    int api;
    char *model;         /* "model" field; NULL omits it */
    int max_tokens;      /* 0 omits max_tokens */
    char *body_template; /* template text (RAGD_LT_API_TEMPLATE) */
    char **headers;      /* "Key: Value" */
    size_t n_headers;
    char **questions; /* at least one */
    size_t n_questions;
    uint64_t seed;
    int num_user_ids; /* seed api user_id range 1..num_user_ids */
    /* closed loop (rate == 0) */
    int users;
    int loops;         /* count mode when > 0 */
    double duration_s; /* duration mode when > 0 (also bounds the open loop) */
    double grace_s;    /* after duration: running requests are cut after this */
    double interval_s; /* think time between a user's requests */
    double ramp_up_s;  /* users (closed) / rate (open) ramp linearly over this */
    /* open loop (rate > 0) */
    double rate;         /* requests per second */
    double burstiness;   /* gamma shape; 1 = Poisson */
    int max_concurrency; /* 0 = unlimited */
    int requests;        /* open loop: number of arrivals (0 = bounded by duration) */
    /* both */
    int warmup;       /* requests run before the measured phase, excluded from results */
    double timeout_s; /* per request, 0 = none */
    double connect_timeout_s;
    int threads;           /* worker threads (>= 1) */
    bool keep_event_times; /* store per-event times in records (default true) */
    ragd_lt_count_tokens_fn count_tokens;
    void *count_tokens_ctx;
    ragd_lt_progress_fn progress; /* called about once a second on the calling thread */
    void *progress_ctx;
    volatile int *stop; /* when *stop becomes non-zero: stop starting, cut running requests */
} ragd_lt_config;

/* Fill defaults: openai-chat, 1 user, 1 loop, grace 30 s, timeout 600 s, connect 10 s,
 * burstiness 1, 1 thread, num_user_ids 1000, max_tokens 256, keep_event_times. */
void ragd_lt_config_init(ragd_lt_config *c);
void ragd_lt_config_free(ragd_lt_config *c);
/* Check consistency (url, questions, one load shape); RAGD_EINVAL with a message. */
int ragd_lt_config_check(const ragd_lt_config *c, ragd_err *err);

/* Apply one option by its long name ("users", "rate", "url" ... or a seed YAML key such as
 * "num-queues", "target-url", "mode", "limit", "data-filename") with a string value.
 * `mode`/`limit` are resolved by ragd_lt_config_finish. Returns RAGD_EINVAL on a bad value
 * or unknown key. Files (questions, body template) are loaded by ragd_lt_config_finish. */
typedef struct ragd_lt_options {
    ragd_lt_config *cfg;
    char *questions_path;
    char *template_path;
    char *mode;   /* "count" | "duration" (seed YAML) */
    double limit; /* seed YAML limit: loops or seconds */
    bool have_limit;
    /* report options (the CLI acts on them; accepted in YAML too) */
    char *json_path, *html_path, *slo, *tokenizer_dir;
    bool quiet;
} ragd_lt_options;
int ragd_lt_option_set(ragd_lt_options *o, const char *key, const char *value, ragd_err *err);
/* Load a YAML config file (a flat mapping of option names to scalars). RAGD_EFORMAT with
 * "file:line: ..." on malformed YAML, RAGD_EINVAL on unknown keys or bad values, RAGD_EIO
 * when unreadable. */
int ragd_lt_load_yaml(ragd_lt_options *o, const char *path, ragd_err *err);
/* Resolve mode/limit, load the questions file and template, then ragd_lt_config_check. */
int ragd_lt_config_finish(ragd_lt_options *o, ragd_err *err);
void ragd_lt_options_free(ragd_lt_options *o);

/* Questions: a JSON array of strings, or JSONL lines with a "text" (or "question"/"prompt")
 * field. */
int ragd_lt_load_questions(const char *path, char ***out, size_t *n, ragd_err *err);

typedef struct ragd_lt_record {
    uint64_t id;       /* request index in the measured phase */
    int user;          /* closed loop: user index; open loop: -1 */
    double sched_s;    /* open loop: scheduled start offset from run start; closed: = start_s */
    double start_s;    /* actual send offset from run start */
    double ttft_ms;    /* first content event; < 0 when none */
    double e2e_ms;     /* until the end of the transfer (or the cut) */
    uint32_t n_events; /* content events */
    float *event_ms;   /* n_events arrival times relative to start (NULL unless kept) */
    long output_tokens;
    long prompt_tokens; /* from usage; -1 when unknown */
    bool tokens_from_usage;
    int http_status;
    int status;  /* ragd_lt_status */
    char *error; /* message / truncated body, NULL when ok */
} ragd_lt_record;

typedef struct ragd_lt_result {
    double total_s; /* measured phase: start until the last request ended or was cut */
    ragd_lt_record *records;
    size_t n_records;
    int users;                     /* closed loop users (0 in open loop) */
    long *user_done, *user_failed; /* per closed-loop user: ok / failed (cut not counted) */
    uint64_t n_warmup;
    double cpu_user_s, cpu_sys_s; /* process CPU time during the measured phase */
} ragd_lt_result;

/* Run the warm-up phase (if any) and the measured phase. Returns RAGD_OK even when requests
 * fail (failures are in the records); an error only when the engine cannot run. */
int ragd_lt_run(const ragd_lt_config *cfg, ragd_lt_result *res, ragd_err *err);
void ragd_lt_result_free(ragd_lt_result *res);

/* ---- reports (report.c) ---- */

/* Service-level objectives for goodput; a field <= 0 is not checked. */
typedef struct ragd_lt_slo {
    double ttft_ms, tpot_ms, itl_ms, e2e_ms;
    bool any;
} ragd_lt_slo;
/* Parse "ttft=500ms,tpot=50ms,e2e=10s" (units ms or s; bare numbers are ms). */
int ragd_lt_slo_parse(const char *s, ragd_lt_slo *slo, ragd_err *err);

/* Seed-style lines plus the table. */
int ragd_lt_report_text(const ragd_lt_config *cfg, const ragd_lt_result *res,
                        const ragd_lt_slo *slo, ragd_buf *out);
int ragd_lt_report_json(const ragd_lt_config *cfg, const ragd_lt_result *res,
                        const ragd_lt_slo *slo, ragd_buf *out);
int ragd_lt_report_html(const ragd_lt_config *cfg, const ragd_lt_result *res,
                        const ragd_lt_slo *slo, ragd_buf *out);

#endif
