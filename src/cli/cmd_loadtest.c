/* ragd loadtest: SSE pressure test against any streaming HTTP endpoint (see loadtest/loadtest.h).
 * Options come from an optional YAML file (--config, the seed tool's keys accepted) and then
 * the command line, which overrides the file. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "loadtest/loadtest.h"
#include "tokenizer/tokenizer.h"
#include "util/str.h"

/* --tokenizer: output tokens counted exactly with the project tokenizer (the loadtest library
 * itself stays independent of it through the ragd_lt_config.count_tokens hook). */
static long count_with_tokenizer(void *ctx, const char *text, size_t len) {
    int32_t *ids = NULL;
    size_t n = 0;
    ragd_err err = {0};
    if (ragd_tokenizer_encode(ctx, text, len, &ids, &n, &err)) return -1;
    free(ids);
    return (long)n;
}

static volatile int g_stop;
static void on_sigint(int sig) {
    (void)sig;
    g_stop = 1;
    signal(SIGINT, SIG_DFL); /* a second Ctrl-C kills at once */
}

static void on_progress(void *ctx, const ragd_lt_progress *p) {
    (void)ctx;
    double t = p->elapsed_s > 0 ? p->elapsed_s : 1e-9;
    fprintf(stderr,
            "\r\033[K[%7.1fs] done %llu  failed %llu  running %llu | %.2f req/s  %.1f tok/s | "
            "TTFT p50 %.1f ms",
            p->elapsed_s, (unsigned long long)p->done, (unsigned long long)p->failed,
            (unsigned long long)p->in_flight, (double)p->done / t, (double)p->output_tokens / t,
            p->ttft_p50_ms);
    fflush(stderr);
}

static void usage(FILE *f) {
    fprintf(
        f, "usage: ragd loadtest --url URL [options]\n"
           "       ragd loadtest --config FILE.yaml [options]   (command line overrides the file)\n"
           "\nrequests:\n"
           "  --url URL               endpoint, e.g. http://127.0.0.1:8080/v1/chat/completions\n"
           "  --api KIND              openai-chat (default) | openai-completions | seed\n"
           "  --body-template FILE    body with {{question}} {{user_id}} {{request_id}}\n"
           "  --header 'K: V'         extra header (repeatable), e.g. Authorization\n"
           "  --model NAME            \"model\" field (openai APIs)\n"
           "  --max-tokens N          max_tokens (openai APIs; default 256, 0 omits it)\n"
           "  --questions FILE        JSON array of strings, or JSONL with a \"text\" field\n"
           "  --seed N                random question / user_id picks (default: from the clock)\n"
           "  --num-users N           seed api user_id range 1..N (default 1000)\n"
           "  --timeout S             per-request timeout (default 600, 0 = none)\n"
           "  --connect-timeout S     (default 10)\n"
           "\nclosed loop (virtual users, each one request after another):\n"
           "  --users N               number of users / queues (default 1)\n"
           "  --loops N               count mode: requests per user (default 1)\n"
           "  --duration S            duration mode: start requests for S seconds\n"
           "  --grace S               then let running requests finish for S s (default 30),\n"
           "                          cut the rest and report them as cut\n"
           "  --interval S            think time between a user's requests\n"
           "  --ramp-up S             start users evenly over S seconds\n"
           "\nopen loop (arrivals on an absolute schedule, no coordinated omission):\n"
           "  --rate R                requests per second (Poisson)\n"
           "  --burstiness K          gamma shape of inter-arrival times (1 = Poisson)\n"
           "  --requests N | --duration S   how many arrivals / for how long\n"
           "  --max-concurrency N     cap on requests in flight (arrivals wait)\n"
           "  --ramp-up S             rate ramps linearly from 0 over S seconds\n"
           "\nboth:\n"
           "  --warmup N              N requests first, excluded from the statistics\n"
           "  --threads N             worker threads, each with its own event loop (default 1)\n"
           "\noutput:\n"
           "  --json FILE             full report with per-request records ('-' = stdout)\n"
           "  --html FILE             self-contained HTML report (inline SVG charts)\n"
           "  --slo ttft=500ms,tpot=50ms[,itl=..,e2e=..]   goodput\n"
           "  --no-event-times        leave per-event times out of the JSON records\n"
           "  --tokenizer DIR         count output tokens with the project tokenizer\n"
           "  --quiet                 no progress line (it is only shown on a terminal anyway)\n"
           "\nYAML keys: every long option name, plus the seed tool's target-url, num-queues,\n"
           "mode (count|duration), limit, interval, num-users, data-filename.\n"
           "Exit status: 0 run completed (see the report for failed requests), 1 runtime error,\n"
           "2 usage or configuration error.\n");
}

enum { OPT_BASE = 1000 };
static const struct option g_opts[] = {{"url", required_argument, 0, 0},
                                       {"config", required_argument, 0, 0},
                                       {"api", required_argument, 0, 0},
                                       {"model", required_argument, 0, 0},
                                       {"max-tokens", required_argument, 0, 0},
                                       {"body-template", required_argument, 0, 0},
                                       {"header", required_argument, 0, 0},
                                       {"questions", required_argument, 0, 0},
                                       {"seed", required_argument, 0, 0},
                                       {"num-users", required_argument, 0, 0},
                                       {"users", required_argument, 0, 0},
                                       {"loops", required_argument, 0, 0},
                                       {"duration", required_argument, 0, 0},
                                       {"grace", required_argument, 0, 0},
                                       {"interval", required_argument, 0, 0},
                                       {"ramp-up", required_argument, 0, 0},
                                       {"rate", required_argument, 0, 0},
                                       {"burstiness", required_argument, 0, 0},
                                       {"max-concurrency", required_argument, 0, 0},
                                       {"requests", required_argument, 0, 0},
                                       {"warmup", required_argument, 0, 0},
                                       {"timeout", required_argument, 0, 0},
                                       {"connect-timeout", required_argument, 0, 0},
                                       {"threads", required_argument, 0, 0},
                                       {"json", required_argument, 0, 0},
                                       {"html", required_argument, 0, 0},
                                       {"slo", required_argument, 0, 0},
                                       {"tokenizer", required_argument, 0, 0},
                                       {"quiet", no_argument, 0, 0},
                                       {"no-event-times", no_argument, 0, 0},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};

static int write_out(const char *path, const ragd_buf *b, ragd_err *err) {
    if (!strcmp(path, "-")) {
        fwrite(b->data, 1, b->len, stdout);
        return RAGD_OK;
    }
    return ragd_write_file(path, b->data, b->len, err);
}

static int run_loadtest(int argc, char **argv) {
    ragd_lt_config cfg;
    ragd_lt_config_init(&cfg);
    cfg.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    ragd_lt_options o = {.cfg = &cfg};
    ragd_err err = {0};
    int rc = 2, c, li;
    const char *config = NULL;
    /* pass 1: usage errors, --help and --config */
    optind = 1;
    opterr = 1;
    while ((c = getopt_long(argc, argv, "h", g_opts, &li)) != -1) {
        if (c == 'h') {
            usage(stdout);
            ragd_lt_config_free(&cfg);
            return 0;
        }
        if (c != 0) {
            usage(stderr);
            ragd_lt_config_free(&cfg);
            return 2;
        }
        if (!strcmp(g_opts[li].name, "config")) config = optarg;
    }
    if (optind < argc) {
        fprintf(stderr, "ragd loadtest: unexpected argument '%s'\n", argv[optind]);
        ragd_lt_config_free(&cfg);
        return 2;
    }
    if (config && ragd_lt_load_yaml(&o, config, &err)) {
        fprintf(stderr, "ragd loadtest: %s\n", err.msg);
        goto out;
    }
    /* pass 2: the command line overrides the file */
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", g_opts, &li)) != -1) {
        const char *name = g_opts[li].name;
        if (!strcmp(name, "config")) continue;
        int r;
        if (!strcmp(name, "quiet"))
            r = ragd_lt_option_set(&o, "quiet", "true", &err);
        else if (!strcmp(name, "no-event-times"))
            r = ragd_lt_option_set(&o, "event-times", "false", &err);
        else
            r = ragd_lt_option_set(&o, name, optarg, &err);
        if (r) {
            fprintf(stderr, "ragd loadtest: --%s\n", err.msg);
            goto out;
        }
    }
    if (ragd_lt_config_finish(&o, &err)) {
        fprintf(stderr, "ragd loadtest: %s\n", err.msg);
        goto out;
    }
    ragd_lt_slo slo = {0};
    if (o.slo && ragd_lt_slo_parse(o.slo, &slo, &err)) {
        fprintf(stderr, "ragd loadtest: %s\n", err.msg);
        goto out;
    }
    ragd_tokenizer *tok = NULL;
    if (o.tokenizer_dir) {
        if (ragd_tokenizer_load(o.tokenizer_dir, &tok, &err)) {
            fprintf(stderr, "ragd loadtest: --tokenizer %s: %s\n", o.tokenizer_dir, err.msg);
            goto out;
        }
        cfg.count_tokens = count_with_tokenizer;
        cfg.count_tokens_ctx = tok;
    }
    bool tty = isatty(STDERR_FILENO) && !o.quiet;
    if (tty) cfg.progress = on_progress;
    cfg.stop = &g_stop;
    signal(SIGINT, on_sigint);
    signal(SIGPIPE, SIG_IGN);
    ragd_lt_result res;
    rc = 1;
    if (ragd_lt_run(&cfg, &res, &err)) {
        if (tty) fprintf(stderr, "\n");
        fprintf(stderr, "ragd loadtest: %s\n", err.msg);
        if (tok) ragd_tokenizer_destroy(tok);
        goto out;
    }
    signal(SIGINT, SIG_DFL);
    if (tty) fprintf(stderr, "\r\033[K");
    if (g_stop) fprintf(stderr, "ragd loadtest: interrupted; running requests were cut\n");
    bool json_stdout = o.json_path && !strcmp(o.json_path, "-");
    ragd_buf b = {0};
    rc = 0;
    if (ragd_lt_report_text(&cfg, &res, &slo, &b) == RAGD_OK) {
        fwrite(b.data, 1, b.len, json_stdout ? stderr : stdout);
        fflush(json_stdout ? stderr : stdout);
    }
    const char *paths[2] = {o.json_path, o.html_path};
    for (int k = 0; k < 2; k++) {
        if (!paths[k]) continue;
        ragd_buf_clear(&b);
        int r = k == 0 ? ragd_lt_report_json(&cfg, &res, &slo, &b)
                       : ragd_lt_report_html(&cfg, &res, &slo, &b);
        if (r || write_out(paths[k], &b, &err)) {
            fprintf(stderr, "ragd loadtest: cannot write %s: %s\n", paths[k],
                    r ? "out of memory" : err.msg);
            rc = 1;
        }
    }
    ragd_buf_free(&b);
    ragd_lt_result_free(&res);
    if (tok) ragd_tokenizer_destroy(tok);
out:
    ragd_lt_options_free(&o);
    ragd_lt_config_free(&cfg);
    return rc;
}

RAGD_COMMAND(loadtest, 60, "SSE pressure test: closed/open-loop load, TTFT/ITL/E2E, JSON/HTML",
             run_loadtest)
