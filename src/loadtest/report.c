/* report.c - aggregate load-test records into the text summary, JSON and HTML reports. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loadtest/loadtest.h"
#include "util/stats.h"

/* ---- SLO ---- */

int ragd_lt_slo_parse(const char *s, ragd_lt_slo *slo, ragd_err *err) {
    memset(slo, 0, sizeof *slo);
    char *copy = strdup(s);
    if (!copy) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    int rc = RAGD_OK;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) {
            rc = ragd_err_set(err, RAGD_EINVAL, "--slo: expected name=value, got '%s'", tok);
            break;
        }
        *eq = '\0';
        char *name = ragd_trim(tok), *val = ragd_trim(eq + 1), *end;
        double v = strtod(val, &end);
        if (end == val || v <= 0) {
            rc = ragd_err_set(err, RAGD_EINVAL, "--slo %s: expected a positive time, got '%s'",
                              name, val);
            break;
        }
        if (!strcmp(end, "s"))
            v *= 1000;
        else if (*end && strcmp(end, "ms")) {
            rc = ragd_err_set(err, RAGD_EINVAL, "--slo %s: unit must be ms or s, got '%s'", name,
                              end);
            break;
        }
        if (!strcmp(name, "ttft"))
            slo->ttft_ms = v;
        else if (!strcmp(name, "tpot"))
            slo->tpot_ms = v;
        else if (!strcmp(name, "itl"))
            slo->itl_ms = v;
        else if (!strcmp(name, "e2e") || !strcmp(name, "e2el"))
            slo->e2e_ms = v;
        else {
            rc = ragd_err_set(err, RAGD_EINVAL,
                              "--slo: unknown metric '%s' (use ttft, tpot, itl, e2e)", name);
            break;
        }
        slo->any = true;
    }
    free(copy);
    return rc;
}

/* ---- aggregation ---- */

#define MAX_KINDS 64
typedef struct agg {
    size_t ok, failed, cut;
    double *ttft, *tpot, *itl, *e2e, *rate;
    size_t n_ttft, n_tpot, n_itl, n_e2e, n_rate;
    ragd_summary s_ttft, s_tpot, s_itl, s_e2e, s_rate;
    double out_tokens, in_tokens;
    bool in_known;
    char kind[MAX_KINDS][32]; /* failure kinds (ragd_lt_status_name) */
    long kind_n[MAX_KINDS];
    int n_kinds;
    int code[MAX_KINDS]; /* HTTP error statuses seen */
    long code_n[MAX_KINDS];
    int n_codes;
    size_t good;
} agg;

static double tpot_of(const ragd_lt_record *r) {
    if (r->ttft_ms < 0 || r->output_tokens < 2) return -1;
    return (r->e2e_ms - r->ttft_ms) / (double)(r->output_tokens - 1);
}

static void add_code(agg *a, int code) {
    for (int i = 0; i < a->n_codes; i++)
        if (a->code[i] == code) {
            a->code_n[i]++;
            return;
        }
    if (a->n_codes == MAX_KINDS) return;
    a->code[a->n_codes] = code;
    a->code_n[a->n_codes++] = 1;
}

static void add_kind(agg *a, const char *k) {
    for (int i = 0; i < a->n_kinds; i++)
        if (!strcmp(a->kind[i], k)) {
            a->kind_n[i]++;
            return;
        }
    if (a->n_kinds == MAX_KINDS) return;
    snprintf(a->kind[a->n_kinds], sizeof a->kind[0], "%s", k);
    a->kind_n[a->n_kinds++] = 1;
}

static bool meets_slo(const ragd_lt_record *r, const ragd_lt_slo *slo) {
    if (slo->ttft_ms > 0 && !(r->ttft_ms >= 0 && r->ttft_ms <= slo->ttft_ms)) return false;
    double tp = tpot_of(r);
    if (slo->tpot_ms > 0 && tp > slo->tpot_ms) return false;
    if (slo->e2e_ms > 0 && r->e2e_ms > slo->e2e_ms) return false;
    if (slo->itl_ms > 0 && r->event_ms)
        for (uint32_t k = 1; k < r->n_events; k++)
            if (r->event_ms[k] - r->event_ms[k - 1] > slo->itl_ms) return false;
    return true;
}

static void agg_free(agg *a);
static int agg_fill(const ragd_lt_result *res, const ragd_lt_slo *slo, agg *a);

/* Aggregate the records; on failure everything is freed already. */
static int agg_build(const ragd_lt_result *res, const ragd_lt_slo *slo, agg *a) {
    int rc = agg_fill(res, slo, a);
    if (rc) agg_free(a);
    return rc;
}

static int agg_fill(const ragd_lt_result *res, const ragd_lt_slo *slo, agg *a) {
    memset(a, 0, sizeof *a);
    size_t n = res->n_records, n_itl = 0;
    for (size_t i = 0; i < n; i++)
        if (res->records[i].status == RAGD_LT_OK && res->records[i].n_events > 1)
            n_itl += res->records[i].n_events - 1;
    a->ttft = malloc((n + 1) * sizeof(double));
    a->tpot = malloc((n + 1) * sizeof(double));
    a->e2e = malloc((n + 1) * sizeof(double));
    a->rate = malloc((n + 1) * sizeof(double));
    a->itl = malloc((n_itl + 1) * sizeof(double));
    if (!a->ttft || !a->tpot || !a->e2e || !a->rate || !a->itl) return RAGD_ENOMEM;
    a->in_known = n > 0;
    for (size_t i = 0; i < n; i++) {
        const ragd_lt_record *r = &res->records[i];
        if (r->status == RAGD_LT_CUT) {
            a->cut++;
            continue;
        }
        if (r->status != RAGD_LT_OK) {
            a->failed++;
            add_kind(a, ragd_lt_status_name(r->status));
            if (r->status == RAGD_LT_ERR_HTTP) add_code(a, r->http_status);
            continue;
        }
        a->ok++;
        if (r->ttft_ms >= 0) a->ttft[a->n_ttft++] = r->ttft_ms;
        double tp = tpot_of(r);
        if (tp >= 0) a->tpot[a->n_tpot++] = tp;
        a->e2e[a->n_e2e++] = r->e2e_ms;
        if (r->e2e_ms > 0 && r->output_tokens > 0)
            a->rate[a->n_rate++] = (double)r->output_tokens / (r->e2e_ms / 1000.0);
        if (r->event_ms)
            for (uint32_t k = 1; k < r->n_events; k++)
                a->itl[a->n_itl++] = (double)(r->event_ms[k] - r->event_ms[k - 1]);
        a->out_tokens += (double)(r->output_tokens > 0 ? r->output_tokens : 0);
        if (r->prompt_tokens >= 0)
            a->in_tokens += (double)r->prompt_tokens;
        else
            a->in_known = false;
        if (slo && slo->any && meets_slo(r, slo)) a->good++;
    }
    if (ragd_summarize(a->ttft, a->n_ttft, &a->s_ttft) ||
        ragd_summarize(a->tpot, a->n_tpot, &a->s_tpot) ||
        ragd_summarize(a->itl, a->n_itl, &a->s_itl) ||
        ragd_summarize(a->e2e, a->n_e2e, &a->s_e2e) ||
        ragd_summarize(a->rate, a->n_rate, &a->s_rate))
        return RAGD_ENOMEM;
    return RAGD_OK;
}

static void agg_free(agg *a) {
    free(a->ttft);
    free(a->tpot);
    free(a->itl);
    free(a->e2e);
    free(a->rate);
}

static double per_s(double x, double t) {
    return t > 0 ? x / t : 0;
}

static const char *api_name(int api) {
    switch (api) {
        case RAGD_LT_API_OPENAI_CHAT:
            return "openai-chat";
        case RAGD_LT_API_OPENAI_COMPLETIONS:
            return "openai-completions";
        case RAGD_LT_API_SEED:
            return "seed";
        default:
            return "body-template";
    }
}

static void shape_desc(const ragd_lt_config *c, ragd_buf *b) {
    if (c->rate > 0) {
        ragd_buf_printf(b, "open loop, %g req/s (%s, burstiness %g)", c->rate,
                        c->burstiness == 1 ? "Poisson" : "gamma", c->burstiness);
        if (c->requests > 0) ragd_buf_printf(b, ", %d requests", c->requests);
        if (c->duration_s > 0) ragd_buf_printf(b, ", duration %g s", c->duration_s);
        if (c->max_concurrency > 0) ragd_buf_printf(b, ", max concurrency %d", c->max_concurrency);
    } else if (c->loops > 0) {
        ragd_buf_printf(b, "closed loop, count mode: %d users x %d loops", c->users, c->loops);
    } else {
        ragd_buf_printf(b, "closed loop, duration mode: %d users for %g s (grace %g s)", c->users,
                        c->duration_s, c->grace_s);
    }
    if (c->interval_s > 0) ragd_buf_printf(b, ", interval %g s", c->interval_s);
    if (c->ramp_up_s > 0) ragd_buf_printf(b, ", ramp-up %g s", c->ramp_up_s);
    if (c->warmup > 0) ragd_buf_printf(b, ", warm-up %d", c->warmup);
}

/* ---- text ---- */

static void text_row(ragd_buf *b, const char *name, const ragd_summary *s) {
    if (!s->n) {
        ragd_buf_printf(b, "%-14s %10s\n", name, "-");
        return;
    }
    ragd_buf_printf(b, "%-14s %10.2f %10.2f %10.2f %10.2f %10.2f %8zu\n", name, s->mean, s->p50,
                    s->p90, s->p99, s->max, s->n);
}

int ragd_lt_report_text(const ragd_lt_config *c, const ragd_lt_result *res, const ragd_lt_slo *slo,
                        ragd_buf *b) {
    agg a;
    int rc = agg_build(res, slo, &a);
    if (rc) return rc;
    for (int u = 0; u < res->users; u++) {
        if (res->user_failed[u])
            ragd_buf_printf(b, "Queue %d completed %ld tasks (%ld failed)\n", u, res->user_done[u],
                            res->user_failed[u]);
        else
            ragd_buf_printf(b, "Queue %d completed %ld tasks\n", u, res->user_done[u]);
    }
    ragd_buf_printf(b, "Total run time: %.3f seconds\n\n", res->total_s);
    ragd_buf_printf(b, "load           ");
    shape_desc(c, b);
    ragd_buf_printf(b, "\ntarget         %s (%s)\n", c->url, api_name(c->api));
    ragd_buf_printf(b,
                    "settings       seed %llu, %zu question%s, max_tokens %d, timeout %g s, %d "
                    "worker thread%s\n",
                    (unsigned long long)c->seed, c->n_questions, c->n_questions == 1 ? "" : "s",
                    c->max_tokens, c->timeout_s, c->threads, c->threads == 1 ? "" : "s");
    ragd_buf_printf(b, "requests       ok %zu, failed %zu, cut %zu", a.ok, a.failed, a.cut);
    if (res->n_warmup)
        ragd_buf_printf(b, " (+%llu warm-up, excluded)", (unsigned long long)res->n_warmup);
    ragd_buf_printf(b, "\nthroughput     %.2f req/s, output %.1f tok/s, total %.1f tok/s%s\n",
                    per_s((double)a.ok, res->total_s), per_s(a.out_tokens, res->total_s),
                    per_s(a.out_tokens + a.in_tokens, res->total_s),
                    a.in_known ? "" : " (prompt tokens unknown: no usage)");
    ragd_buf_printf(b, "\n%-14s %10s %10s %10s %10s %10s %8s\n", "latency (ms)", "mean", "p50",
                    "p90", "p99", "max", "n");
    text_row(b, "TTFT", &a.s_ttft);
    text_row(b, "TPOT", &a.s_tpot);
    text_row(b, "ITL", &a.s_itl);
    text_row(b, "E2E", &a.s_e2e);
    text_row(b, "stream tok/s", &a.s_rate);
    if (a.n_kinds) {
        ragd_buf_printf(b, "\nerrors        ");
        for (int i = 0; i < a.n_kinds; i++)
            ragd_buf_printf(b, "%s %s %ld", i ? "," : "", a.kind[i], a.kind_n[i]);
        for (int i = 0; i < a.n_codes; i++)
            ragd_buf_printf(b, "%sHTTP %d x%ld", i ? ", " : " (", a.code[i], a.code_n[i]);
        ragd_buf_puts(b, a.n_codes ? ")\n" : "\n");
        /* one example message per kind helps more than a count */
        for (int i = 0; i < a.n_kinds; i++) {
            for (size_t k = 0; k < res->n_records; k++) {
                const ragd_lt_record *r = &res->records[k];
                const char *key = ragd_lt_status_name(r->status);
                if (r->status == RAGD_LT_OK || r->status == RAGD_LT_CUT) continue;
                if (strcmp(key, a.kind[i])) continue;
                ragd_buf_printf(b, "  %-20s e.g. %.160s\n", key, r->error ? r->error : "");
                break;
            }
        }
    }
    if (slo && slo->any)
        ragd_buf_printf(b, "\ngoodput        %.2f req/s (%zu of %zu requests met the SLO)\n",
                        per_s((double)a.good, res->total_s), a.good, a.ok + a.failed);
    double cpu = res->cpu_user_s + res->cpu_sys_s;
    ragd_buf_printf(b, "client CPU     %.2f s (%.1f%% of one core)\n", cpu,
                    res->total_s > 0 ? 100 * cpu / res->total_s : 0);
    agg_free(&a);
    return RAGD_OK;
}

/* ---- JSON ---- */

static void json_num(ragd_buf *b, double v) {
    if (!isfinite(v))
        ragd_buf_puts(b, "null");
    else
        ragd_buf_printf(b, "%.3f", v);
}

static void json_summary(ragd_buf *b, const char *key, const ragd_summary *s) {
    ragd_buf_printf(b, "\"%s\":{\"mean\":", key);
    json_num(b, s->n ? s->mean : NAN);
    ragd_buf_puts(b, ",\"p50\":");
    json_num(b, s->n ? s->p50 : NAN);
    ragd_buf_puts(b, ",\"p90\":");
    json_num(b, s->n ? s->p90 : NAN);
    ragd_buf_puts(b, ",\"p99\":");
    json_num(b, s->n ? s->p99 : NAN);
    ragd_buf_puts(b, ",\"max\":");
    json_num(b, s->n ? s->max : NAN);
    ragd_buf_printf(b, ",\"n\":%zu}", s->n);
}

int ragd_lt_report_json(const ragd_lt_config *c, const ragd_lt_result *res, const ragd_lt_slo *slo,
                        ragd_buf *b) {
    agg a;
    int rc = agg_build(res, slo, &a);
    if (rc) return rc;
    ragd_buf_puts(b, "{\"total_s\":");
    json_num(b, res->total_s);
    ragd_buf_printf(b, ",\"requests\":{\"completed\":%zu,\"failed\":%zu,\"cut\":%zu}", a.ok,
                    a.failed, a.cut);
    ragd_buf_puts(b, ",\"per_user\":[");
    for (int u = 0; u < res->users; u++) {
        double tok = 0, busy = 0;
        for (size_t i = 0; i < res->n_records; i++) {
            const ragd_lt_record *r = &res->records[i];
            if (r->user != u || r->status != RAGD_LT_OK) continue;
            tok += (double)r->output_tokens;
            busy += r->e2e_ms / 1000.0;
        }
        ragd_buf_printf(b, "%s{\"completed\":%ld,\"failed\":%ld,\"output_tokens_per_s\":",
                        u ? "," : "", res->user_done[u], res->user_failed[u]);
        json_num(b, per_s(tok, busy));
        ragd_buf_puts(b, "}");
    }
    ragd_buf_puts(b, "],\"throughput\":{\"requests_per_s\":");
    json_num(b, per_s((double)a.ok, res->total_s));
    ragd_buf_puts(b, ",\"output_tokens_per_s\":");
    json_num(b, per_s(a.out_tokens, res->total_s));
    ragd_buf_puts(b, ",\"total_tokens_per_s\":");
    json_num(b, per_s(a.out_tokens + a.in_tokens, res->total_s));
    ragd_buf_puts(b, "},");
    json_summary(b, "ttft_ms", &a.s_ttft);
    ragd_buf_puts(b, ",");
    json_summary(b, "tpot_ms", &a.s_tpot);
    ragd_buf_puts(b, ",");
    json_summary(b, "itl_ms", &a.s_itl);
    ragd_buf_puts(b, ",");
    json_summary(b, "e2e_ms", &a.s_e2e);
    ragd_buf_puts(b, ",\"errors\":{");
    for (int i = 0; i < a.n_kinds; i++)
        ragd_buf_printf(b, "%s\"%s\":%ld", i ? "," : "", a.kind[i], a.kind_n[i]);
    ragd_buf_puts(b, "},\"goodput\":");
    if (slo && slo->any) {
        ragd_buf_puts(b, "{\"slo\":{");
        int k = 0;
        if (slo->ttft_ms > 0) ragd_buf_printf(b, "%s\"ttft_ms\":%g", k++ ? "," : "", slo->ttft_ms);
        if (slo->tpot_ms > 0) ragd_buf_printf(b, "%s\"tpot_ms\":%g", k++ ? "," : "", slo->tpot_ms);
        if (slo->itl_ms > 0) ragd_buf_printf(b, "%s\"itl_ms\":%g", k++ ? "," : "", slo->itl_ms);
        if (slo->e2e_ms > 0) ragd_buf_printf(b, "%s\"e2e_ms\":%g", k++ ? "," : "", slo->e2e_ms);
        ragd_buf_printf(b, "},\"good_requests\":%zu,\"requests_per_s\":", a.good);
        json_num(b, per_s((double)a.good, res->total_s));
        ragd_buf_puts(b, ",\"fraction\":");
        json_num(b, a.ok + a.failed ? (double)a.good / (double)(a.ok + a.failed) : 0);
        ragd_buf_puts(b, "}");
    } else {
        ragd_buf_puts(b, "null");
    }
    ragd_buf_puts(b, ",\"records\":[");
    for (size_t i = 0; i < res->n_records; i++) {
        const ragd_lt_record *r = &res->records[i];
        ragd_buf_printf(b, "%s{\"id\":%llu,\"user\":%d,\"scheduled_s\":", i ? ",\n" : "\n",
                        (unsigned long long)r->id, r->user);
        json_num(b, r->sched_s);
        ragd_buf_puts(b, ",\"start_s\":");
        json_num(b, r->start_s);
        ragd_buf_puts(b, ",\"ttft_ms\":");
        json_num(b, r->ttft_ms >= 0 ? r->ttft_ms : NAN);
        ragd_buf_puts(b, ",\"e2e_ms\":");
        json_num(b, r->e2e_ms);
        ragd_buf_printf(b, ",\"output_tokens\":%ld,\"prompt_tokens\":", r->output_tokens);
        if (r->prompt_tokens >= 0)
            ragd_buf_printf(b, "%ld", r->prompt_tokens);
        else
            ragd_buf_puts(b, "null");
        ragd_buf_printf(b,
                        ",\"tokens_from_usage\":%s,\"events\":%u,\"http_status\":%d,\"status\":"
                        "\"%s\",\"error\":",
                        r->tokens_from_usage ? "true" : "false", r->n_events, r->http_status,
                        ragd_lt_status_name(r->status));
        if (r->error)
            ragd_buf_json_str(b, r->error, strlen(r->error));
        else
            ragd_buf_puts(b, "null");
        if (c->keep_event_times) {
            ragd_buf_puts(b, ",\"event_ms\":[");
            for (uint32_t k = 0; k < r->n_events && r->event_ms; k++)
                ragd_buf_printf(b, "%s%.3f", k ? "," : "", (double)r->event_ms[k]);
            ragd_buf_puts(b, "]");
        }
        ragd_buf_puts(b, "}");
    }
    rc = ragd_buf_puts(b, "\n]}\n");
    agg_free(&a);
    return rc;
}

/* ---- HTML (self-contained, inline SVG) ---- */

static void html_esc(ragd_buf *b, const char *s) {
    for (; *s; s++) {
        switch (*s) {
            case '<':
                ragd_buf_puts(b, "&lt;");
                break;
            case '>':
                ragd_buf_puts(b, "&gt;");
                break;
            case '&':
                ragd_buf_puts(b, "&amp;");
                break;
            case '"':
                ragd_buf_puts(b, "&quot;");
                break;
            default:
                ragd_buf_putc(b, *s);
        }
    }
}

typedef struct series {
    const char *name, *color;
    const double *x, *y;
    size_t n;
    bool scatter;
} series;

static double nice_step(double range) {
    if (!(range > 0)) return 1;
    double raw = range / 5, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

#define CW 600
#define CH 300
#define ML 64
#define MR 16
#define MT 28
#define MB 44

static void svg_chart(ragd_buf *b, const char *title, const char *xl, const char *yl,
                      const series *s, int ns, double xmax_clip) {
    double x0 = INFINITY, x1 = -INFINITY, y0 = 0, y1 = -INFINITY;
    for (int k = 0; k < ns; k++)
        for (size_t i = 0; i < s[k].n; i++) {
            if (s[k].x[i] < x0) x0 = s[k].x[i];
            if (s[k].x[i] > x1) x1 = s[k].x[i];
            if (s[k].y[i] > y1) y1 = s[k].y[i];
            if (s[k].y[i] < y0) y0 = s[k].y[i];
        }
    if (xmax_clip > 0 && x1 > xmax_clip) x1 = xmax_clip;
    ragd_buf_printf(b,
                    "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
                    "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" "
                    "font-size=\"11\">\n",
                    CW, CH, CW, CH);
    ragd_buf_printf(b, "<text x=\"%d\" y=\"16\" font-size=\"13\" font-weight=\"bold\">", ML);
    html_esc(b, title);
    ragd_buf_puts(b, "</text>\n");
    if (!isfinite(x0) || !isfinite(x1)) {
        ragd_buf_printf(b, "<text x=\"%d\" y=\"%d\">no data</text></svg></figure>\n", CW / 2 - 20,
                        CH / 2);
        return;
    }
    if (x0 > 0 && x0 < (x1 - x0) * 0.5) x0 = 0;
    if (x1 <= x0) x1 = x0 + 1;
    if (y1 <= y0) y1 = y0 + 1;
    double xs = nice_step(x1 - x0), ys = nice_step(y1 - y0);
    x0 = floor(x0 / xs) * xs;
    x1 = ceil(x1 / xs) * xs;
    y1 = ceil(y1 / ys) * ys;
    double pw = CW - ML - MR, ph = CH - MT - MB;
#define PX(v) (ML + ((v)-x0) / (x1 - x0) * pw)
#define PY(v) (MT + ph - ((v)-y0) / (y1 - y0) * ph)
    ragd_buf_printf(b,
                    "<rect x=\"%d\" y=\"%d\" width=\"%.0f\" height=\"%.0f\" fill=\"#fafafa\" "
                    "stroke=\"#999\"/>\n",
                    ML, MT, pw, ph);
    for (double v = x0; v <= x1 + xs * 0.01; v += xs)
        ragd_buf_printf(b,
                        "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#e0e0e0\"/>"
                        "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%g</text>\n",
                        PX(v), MT, PX(v), MT + ph, PX(v), MT + ph + 14, v);
    for (double v = y0; v <= y1 + ys * 0.01; v += ys)
        ragd_buf_printf(b,
                        "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>"
                        "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                        ML, PY(v), ML + pw, PY(v), ML - 4, PY(v) + 4, v);
    ragd_buf_printf(b, "<text x=\"%.0f\" y=\"%d\" text-anchor=\"middle\">", ML + pw / 2, CH - 6);
    html_esc(b, xl);
    ragd_buf_printf(b,
                    "</text><text transform=\"translate(14,%.0f) rotate(-90)\" "
                    "text-anchor=\"middle\">",
                    MT + ph / 2);
    html_esc(b, yl);
    ragd_buf_puts(b, "</text>\n");
    for (int k = 0; k < ns; k++) {
        const series *r = &s[k];
        size_t step = r->n > 2000 ? r->n / 2000 : 1;
        if (r->scatter) {
            ragd_buf_printf(b, "<g fill=\"%s\" fill-opacity=\"0.6\">", r->color);
            for (size_t i = 0; i < r->n; i += step)
                if (r->x[i] <= x1)
                    ragd_buf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2\"/>", PX(r->x[i]),
                                    PY(r->y[i]));
            ragd_buf_puts(b, "</g>\n");
        } else {
            ragd_buf_printf(b,
                            "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" "
                            "points=\"",
                            r->color);
            for (size_t i = 0; i < r->n; i += step) {
                if (r->x[i] > x1) break;
                ragd_buf_printf(b, "%.1f,%.1f ", PX(r->x[i]), PY(r->y[i]));
            }
            if (r->n && r->x[r->n - 1] <= x1)
                ragd_buf_printf(b, "%.1f,%.1f", PX(r->x[r->n - 1]), PY(r->y[r->n - 1]));
            ragd_buf_puts(b, "\"/>\n");
        }
        ragd_buf_printf(b,
                        "<rect x=\"%.0f\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/>"
                        "<text x=\"%.0f\" y=\"%d\">",
                        ML + pw - 150, MT + 8 + 14 * k, r->color, ML + pw - 136, MT + 17 + 14 * k);
        html_esc(b, r->name);
        ragd_buf_puts(b, "</text>\n");
    }
#undef PX
#undef PY
    ragd_buf_puts(b, "</svg></figure>\n");
}

/* CDF series of the (unsorted) samples v[0..n): x sorted values, y ranks. */
static int cdf_series(const double *v, size_t n, double **xs, double **ys) {
    *xs = malloc((n + 1) * sizeof(double));
    *ys = malloc((n + 1) * sizeof(double));
    if (!*xs || !*ys) return RAGD_ENOMEM;
    memcpy(*xs, v, n * sizeof(double));
    ragd_sort_doubles(*xs, n);
    for (size_t i = 0; i < n; i++) (*ys)[i] = (double)(i + 1) / (double)n;
    return RAGD_OK;
}

static void html_row(ragd_buf *b, const char *name, const ragd_summary *s) {
    ragd_buf_printf(b, "<tr><td>%s</td>", name);
    if (!s->n)
        ragd_buf_puts(b, "<td colspan=6>-</td></tr>\n");
    else
        ragd_buf_printf(b,
                        "<td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td>"
                        "<td>%zu</td></tr>\n",
                        s->mean, s->p50, s->p90, s->p99, s->max, s->n);
}

int ragd_lt_report_html(const ragd_lt_config *c, const ragd_lt_result *res, const ragd_lt_slo *slo,
                        ragd_buf *b) {
    agg a;
    int rc = agg_build(res, slo, &a);
    if (rc) return rc;
    double *cx[4] = {0}, *cy[4] = {0}, *tx = NULL, *ty = NULL, *bx = NULL, *btok = NULL,
           *breq = NULL;
    char when[64];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime(&now));
    ragd_buf_puts(b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>ragd loadtest "
                     "report</title>\n<style>body{font-family:sans-serif;margin:24px;max-width:"
                     "1280px}table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid "
                     "#ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-"
                     "align:left}figure{display:inline-block;margin:6px}</style></head><body>\n");
    ragd_buf_printf(b, "<h1>ragd loadtest</h1><p>%s</p>\n<h2>Settings</h2><table>\n", when);
    ragd_buf_puts(b, "<tr><td>target</td><td>");
    html_esc(b, c->url);
    ragd_buf_printf(b, "</td></tr><tr><td>api</td><td>%s</td></tr><tr><td>load</td><td>",
                    api_name(c->api));
    ragd_buf shape = {0};
    shape_desc(c, &shape);
    html_esc(b, shape.data ? shape.data : "");
    ragd_buf_free(&shape);
    ragd_buf_puts(b, "</td></tr><tr><td>model</td><td>");
    html_esc(b, c->model ? c->model : "(none)");
    ragd_buf_printf(b,
                    "</td></tr><tr><td>max tokens</td><td>%d</td></tr><tr><td>questions</td>"
                    "<td>%zu</td></tr><tr><td>seed</td><td>%llu</td></tr><tr><td>timeout</td>"
                    "<td>%g s</td></tr><tr><td>worker threads</td><td>%d</td></tr></table>\n",
                    c->max_tokens, c->n_questions, (unsigned long long)c->seed, c->timeout_s,
                    c->threads);
    ragd_buf_printf(b,
                    "<h2>Summary</h2><table><tr><td>total time</td><td>%.3f s</td></tr>"
                    "<tr><td>requests ok / failed / cut</td><td>%zu / %zu / %zu</td></tr>"
                    "<tr><td>requests/s</td><td>%.2f</td></tr><tr><td>output tokens/s</td>"
                    "<td>%.1f</td></tr><tr><td>total tokens/s</td><td>%.1f</td></tr>",
                    res->total_s, a.ok, a.failed, a.cut, per_s((double)a.ok, res->total_s),
                    per_s(a.out_tokens, res->total_s),
                    per_s(a.out_tokens + a.in_tokens, res->total_s));
    if (slo && slo->any)
        ragd_buf_printf(b, "<tr><td>goodput</td><td>%.2f req/s (%zu good)</td></tr>",
                        per_s((double)a.good, res->total_s), a.good);
    for (int i = 0; i < a.n_kinds; i++)
        ragd_buf_printf(b, "<tr><td>errors: %s</td><td>%ld</td></tr>", a.kind[i], a.kind_n[i]);
    for (int i = 0; i < a.n_codes; i++)
        ragd_buf_printf(b, "<tr><td>HTTP %d</td><td>%ld</td></tr>", a.code[i], a.code_n[i]);
    ragd_buf_puts(b, "</table>\n<table><tr><th>latency (ms)</th><th>mean</th><th>p50</th><th>p90"
                     "</th><th>p99</th><th>max</th><th>n</th></tr>\n");
    html_row(b, "TTFT", &a.s_ttft);
    html_row(b, "TPOT", &a.s_tpot);
    html_row(b, "ITL", &a.s_itl);
    html_row(b, "E2E", &a.s_e2e);
    html_row(b, "stream tok/s", &a.s_rate);
    ragd_buf_puts(b, "</table>\n<h2>Latency CDFs</h2>\n<p>x axes end at the 99.5th "
                     "percentile.</p>\n");
    const double *src[4] = {a.ttft, a.tpot, a.itl, a.e2e};
    size_t srcn[4] = {a.n_ttft, a.n_tpot, a.n_itl, a.n_e2e};
    const char *names[4] = {"TTFT", "TPOT", "ITL", "E2E"};
    const char *colors[4] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"};
    for (int k = 0; k < 4; k++) {
        if ((rc = cdf_series(src[k], srcn[k], &cx[k], &cy[k]))) goto out;
        series s = {names[k], colors[k], cx[k], cy[k], srcn[k], false};
        char title[64];
        snprintf(title, sizeof title, "%s CDF", names[k]);
        svg_chart(b, title, "milliseconds", "fraction of requests", &s, 1,
                  srcn[k] ? ragd_percentile_sorted(cx[k], srcn[k], 99.5) : 0);
    }
    /* time series */
    double span = res->total_s > 0 ? res->total_s : 1;
    double bw = span > 100 ? span / 100 : 1;
    size_t nb = (size_t)ceil(span / bw) + 1;
    bx = calloc(nb, sizeof(double));
    btok = calloc(nb, sizeof(double));
    breq = calloc(nb, sizeof(double));
    tx = malloc((res->n_records + 1) * sizeof(double));
    ty = malloc((res->n_records + 1) * sizeof(double));
    if (!bx || !btok || !breq || !tx || !ty) {
        rc = RAGD_ENOMEM;
        goto out;
    }
    size_t nt = 0;
    for (size_t i = 0; i < res->n_records; i++) {
        const ragd_lt_record *r = &res->records[i];
        if (r->status != RAGD_LT_OK) continue;
        double done = r->start_s + r->e2e_ms / 1000;
        size_t bi = (size_t)(done > 0 ? done / bw : 0);
        if (bi < nb) breq[bi] += 1 / bw;
        if (r->ttft_ms >= 0) {
            tx[nt] = r->start_s;
            ty[nt++] = r->ttft_ms;
        }
        double wgt = r->n_events ? (double)r->output_tokens / r->n_events : 0;
        for (uint32_t k = 0; k < r->n_events && r->event_ms; k++) {
            double t = r->start_s + r->event_ms[k] / 1000.0;
            size_t bj = (size_t)(t > 0 ? t / bw : 0);
            if (bj < nb) btok[bj] += wgt / bw;
        }
    }
    for (size_t i = 0; i < nb; i++) bx[i] = ((double)i + 0.5) * bw;
    ragd_buf_puts(b, "<h2>Over time</h2>\n");
    series st = {"output tokens/s", "#9467bd", bx, btok, nb, false};
    svg_chart(b, "Output throughput over time", "seconds since start", "tokens/s", &st, 1, 0);
    series sr = {"requests completed/s", "#8c564b", bx, breq, nb, false};
    svg_chart(b, "Completed requests over time", "seconds since start", "requests/s", &sr, 1, 0);
    series sttft = {"TTFT (by request start)", "#1f77b4", tx, ty, nt, true};
    svg_chart(b, "TTFT over time", "request start (s)", "TTFT (ms)", &sttft, 1, 0);
    rc = ragd_buf_puts(b, "</body></html>\n");
out:
    for (int k = 0; k < 4; k++) {
        free(cx[k]);
        free(cy[k]);
    }
    free(tx);
    free(ty);
    free(bx);
    free(btok);
    free(breq);
    agg_free(&a);
    return rc;
}
