/* config.c - load-test options: defaults, name=value setters shared by the CLI and the YAML
 * file, the YAML loader (libyaml), the questions file loader and the final consistency check. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "loadtest/loadtest.h"

void ragd_lt_config_init(ragd_lt_config *c) {
    memset(c, 0, sizeof *c);
    c->api = RAGD_LT_API_OPENAI_CHAT;
    c->users = 1;
    c->loops = 1;
    c->grace_s = 30;
    c->timeout_s = 600;
    c->connect_timeout_s = 10;
    c->burstiness = 1;
    c->threads = 1;
    c->num_user_ids = 1000;
    c->max_tokens = 256;
    c->keep_event_times = true;
}

void ragd_lt_config_free(ragd_lt_config *c) {
    free(c->url);
    free(c->model);
    free(c->body_template);
    for (size_t i = 0; i < c->n_headers; i++) free(c->headers[i]);
    free(c->headers);
    for (size_t i = 0; i < c->n_questions; i++) free(c->questions[i]);
    free(c->questions);
    memset(c, 0, sizeof *c);
}

void ragd_lt_options_free(ragd_lt_options *o) {
    free(o->questions_path);
    free(o->template_path);
    free(o->mode);
    free(o->json_path);
    free(o->html_path);
    free(o->slo);
    free(o->tokenizer_dir);
    ragd_lt_config *c = o->cfg;
    memset(o, 0, sizeof *o);
    o->cfg = c;
}

static int set_str(char **dst, const char *v) {
    char *s = strdup(v);
    if (!s) return RAGD_ENOMEM;
    free(*dst);
    *dst = s;
    return RAGD_OK;
}

static int parse_long(const char *key, const char *v, long lo, long hi, long *out, ragd_err *err) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    while (*end && isspace((unsigned char)*end)) end++;
    if (errno || end == v || *end || x < lo || x > hi)
        return ragd_err_set(err, RAGD_EINVAL, "%s: expected an integer in [%ld, %ld], got '%s'",
                            key, lo, hi, v);
    *out = x;
    return RAGD_OK;
}

static int parse_double(const char *key, const char *v, double lo, double hi, double *out,
                        ragd_err *err) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    while (*end && isspace((unsigned char)*end)) end++;
    if (errno || end == v || *end || !isfinite(x) || x < lo || x > hi)
        return ragd_err_set(err, RAGD_EINVAL, "%s: expected a number in [%g, %g], got '%s'", key,
                            lo, hi, v);
    *out = x;
    return RAGD_OK;
}

/* "1.5", "1.5s", "250ms", "2m", "1h" -> seconds */
static int parse_secs(const char *key, const char *v, double *out, ragd_err *err) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    double mul = 1;
    if (end != v) {
        if (!strcmp(end, "ms"))
            mul = 1e-3, end += 2;
        else if (!strcmp(end, "s"))
            end += 1;
        else if (!strcmp(end, "m"))
            mul = 60, end += 1;
        else if (!strcmp(end, "h"))
            mul = 3600, end += 1;
    }
    if (errno || end == v || *end || !isfinite(x) || x < 0)
        return ragd_err_set(err, RAGD_EINVAL,
                            "%s: expected a duration such as 30, 30s, 500ms or 2m, got '%s'", key,
                            v);
    *out = x * mul;
    return RAGD_OK;
}

static int parse_bool(const char *key, const char *v, bool *out, ragd_err *err) {
    if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcmp(v, "1") || !strcasecmp(v, "on"))
        *out = true;
    else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcmp(v, "0") ||
             !strcasecmp(v, "off"))
        *out = false;
    else
        return ragd_err_set(err, RAGD_EINVAL, "%s: expected true or false, got '%s'", key, v);
    return RAGD_OK;
}

int ragd_lt_option_set(ragd_lt_options *o, const char *key, const char *v, ragd_err *err) {
    ragd_lt_config *c = o->cfg;
    double d;
    int rc = RAGD_OK;
    /* plain integer and duration options */
    const struct {
        const char *name;
        long lo, hi;
        int *dst;
    } ints[] = {{"num-users", 1, 2000000000L, &c->num_user_ids},
                {"users", 1, 1000000, &c->users},
                {"num-queues", 1, 1000000, &c->users},
                {"max-tokens", 0, 10000000, &c->max_tokens},
                {"max-concurrency", 0, 1000000, &c->max_concurrency},
                {"requests", 1, 2000000000L, &c->requests},
                {"warmup", 0, 100000000, &c->warmup},
                {"threads", 1, 256, &c->threads}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (strcmp(key, ints[i].name)) continue;
        long l;
        if ((rc = parse_long(key, v, ints[i].lo, ints[i].hi, &l, err))) return rc;
        *ints[i].dst = (int)l;
        return RAGD_OK;
    }
    const struct {
        const char *name;
        double *dst;
    } secs[] = {{"grace", &c->grace_s},
                {"interval", &c->interval_s},
                {"ramp-up", &c->ramp_up_s},
                {"timeout", &c->timeout_s},
                {"connect-timeout", &c->connect_timeout_s}};
    for (size_t i = 0; i < sizeof secs / sizeof secs[0]; i++)
        if (!strcmp(key, secs[i].name)) return parse_secs(key, v, secs[i].dst, err);
    if (!strcmp(key, "url") || !strcmp(key, "target-url")) {
        if (strncmp(v, "http://", 7) && strncmp(v, "https://", 8))
            return ragd_err_set(err, RAGD_EINVAL,
                                "%s: expected an http:// or https:// URL, got '%s'", key, v);
        return set_str(&c->url, v);
    }
    if (!strcmp(key, "api")) {
        if (!strcmp(v, "openai-chat"))
            c->api = RAGD_LT_API_OPENAI_CHAT;
        else if (!strcmp(v, "openai-completions"))
            c->api = RAGD_LT_API_OPENAI_COMPLETIONS;
        else if (!strcmp(v, "seed"))
            c->api = RAGD_LT_API_SEED;
        else
            return ragd_err_set(err, RAGD_EINVAL,
                                "api: expected openai-chat, openai-completions or seed, got '%s'",
                                v);
        return RAGD_OK;
    }
    if (!strcmp(key, "model")) return set_str(&c->model, v);
    if (!strcmp(key, "body-template")) return set_str(&o->template_path, v);
    if (!strcmp(key, "header")) {
        const char *colon = strchr(v, ':');
        if (!colon || colon == v)
            return ragd_err_set(err, RAGD_EINVAL, "header: expected 'Name: value', got '%s'", v);
        char **h = realloc(c->headers, (c->n_headers + 1) * sizeof *h);
        if (!h) return RAGD_ENOMEM;
        c->headers = h;
        if (!(h[c->n_headers] = strdup(v))) return RAGD_ENOMEM;
        c->n_headers++;
        return RAGD_OK;
    }
    if (!strcmp(key, "questions") || !strcmp(key, "data-filename"))
        return set_str(&o->questions_path, v);
    if (!strcmp(key, "seed")) {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(v, &end, 10);
        if (errno || end == v || *end || v[0] == '-')
            return ragd_err_set(err, RAGD_EINVAL, "seed: expected a non-negative integer, got '%s'",
                                v);
        c->seed = s;
        return RAGD_OK;
    }
    if (!strcmp(key, "loops")) {
        long l;
        if ((rc = parse_long(key, v, 1, 1000000000L, &l, err))) return rc;
        c->loops = (int)l;
        c->duration_s = 0;
        free(o->mode);
        o->mode = NULL;
        o->have_limit = false;
        return RAGD_OK;
    }
    if (!strcmp(key, "duration")) {
        if ((rc = parse_secs(key, v, &d, err))) return rc;
        if (d <= 0) return ragd_err_set(err, RAGD_EINVAL, "duration: must be > 0");
        c->duration_s = d;
        c->loops = 0;
        free(o->mode);
        o->mode = NULL;
        o->have_limit = false;
        return RAGD_OK;
    }
    if (!strcmp(key, "mode")) {
        if (strcmp(v, "count") && strcmp(v, "duration"))
            return ragd_err_set(err, RAGD_EINVAL, "mode: expected count or duration, got '%s'", v);
        return set_str(&o->mode, v);
    }
    if (!strcmp(key, "limit")) {
        if ((rc = parse_double(key, v, 0, 1e12, &d, err))) return rc;
        o->limit = d;
        o->have_limit = true;
        return RAGD_OK;
    }
    if (!strcmp(key, "rate")) return parse_double(key, v, 0, 1e7, &c->rate, err);
    if (!strcmp(key, "burstiness")) return parse_double(key, v, 1e-3, 1e3, &c->burstiness, err);
    if (!strcmp(key, "event-times")) return parse_bool(key, v, &c->keep_event_times, err);
    if (!strcmp(key, "json")) return set_str(&o->json_path, v);
    if (!strcmp(key, "html")) return set_str(&o->html_path, v);
    if (!strcmp(key, "slo")) return set_str(&o->slo, v);
    if (!strcmp(key, "tokenizer")) return set_str(&o->tokenizer_dir, v);
    if (!strcmp(key, "quiet")) return parse_bool(key, v, &o->quiet, err);
    return ragd_err_set(err, RAGD_EINVAL, "unknown option '%s'", key);
}

/* ---- YAML ---- */

int ragd_lt_load_yaml(ragd_lt_options *o, const char *path, ragd_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return ragd_err_set(err, RAGD_EIO, "cannot read config file %s: %s", path, strerror(errno));
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        fclose(f);
        return ragd_err_set(err, RAGD_ENOMEM, "libyaml: cannot initialise parser");
    }
    yaml_parser_set_input_file(&p, f);
    int rc = RAGD_OK;
    /* states: 0 before mapping, 1 expecting key, 2 expecting value, 3 in value sequence */
    int state = 0, depth = 0;
    char key[128] = "";
    bool done = false, seen_map = false;
    ragd_buf pairs = {0}; /* line NUL key NUL value NUL ... */
    while (!done && rc == RAGD_OK) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = ragd_err_set(err, RAGD_EFORMAT, "%s:%zu:%zu: malformed YAML: %s", path,
                              p.problem_mark.line + 1, p.problem_mark.column + 1,
                              p.problem ? p.problem : "parse error");
            break;
        }
        size_t line = ev.start_mark.line + 1;
        switch (ev.type) {
            case YAML_STREAM_START_EVENT:
            case YAML_DOCUMENT_START_EVENT:
            case YAML_DOCUMENT_END_EVENT:
                break;
            case YAML_STREAM_END_EVENT:
                done = true;
                break;
            case YAML_MAPPING_START_EVENT:
                if (state == 0 && depth == 0) {
                    state = 1;
                    depth = 1;
                    seen_map = true;
                } else {
                    rc = ragd_err_set(err, RAGD_EFORMAT,
                                      "%s:%zu: '%s': nested mappings are not supported", path, line,
                                      key);
                }
                break;
            case YAML_MAPPING_END_EVENT:
                state = 0;
                depth = 0;
                break;
            case YAML_SEQUENCE_START_EVENT:
                if (state == 2)
                    state = 3;
                else
                    rc = ragd_err_set(err, RAGD_EFORMAT,
                                      "%s:%zu: expected a mapping of option names to values", path,
                                      line);
                break;
            case YAML_SEQUENCE_END_EVENT:
                state = 1;
                break;
            case YAML_SCALAR_EVENT: {
                const char *val = (const char *)ev.data.scalar.value;
                if (state == 1) {
                    snprintf(key, sizeof key, "%s", val);
                    state = 2;
                } else if (state == 2 || state == 3) {
                    /* applied once the whole file parsed: syntax errors come first */
                    if (ragd_buf_printf(&pairs, "%zu", line) || ragd_buf_putc(&pairs, 0) ||
                        ragd_buf_puts(&pairs, key) || ragd_buf_putc(&pairs, 0) ||
                        ragd_buf_puts(&pairs, val) || ragd_buf_putc(&pairs, 0))
                        rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
                    if (state == 2) state = 1;
                } else {
                    rc = ragd_err_set(err, RAGD_EFORMAT,
                                      "%s:%zu: expected a mapping of option names to values", path,
                                      line);
                }
                break;
            }
            case YAML_ALIAS_EVENT:
                rc = ragd_err_set(err, RAGD_EFORMAT, "%s:%zu: YAML aliases are not supported", path,
                                  line);
                break;
            default:
                break;
        }
        yaml_event_delete(&ev);
    }
    if (rc == RAGD_OK && !seen_map)
        rc = ragd_err_set(err, RAGD_EFORMAT, "%s: expected a mapping of option names to values",
                          path);
    for (size_t at = 0; rc == RAGD_OK && at < pairs.len;) {
        const char *ln = pairs.data + at;
        const char *k = ln + strlen(ln) + 1;
        const char *v = k + strlen(k) + 1;
        at = (size_t)(v + strlen(v) + 1 - pairs.data);
        if ((rc = ragd_lt_option_set(o, k, v, err))) ragd_err_prefix(err, "%s:%s", path, ln);
    }
    ragd_buf_free(&pairs);
    yaml_parser_delete(&p);
    fclose(f);
    return rc;
}

/* ---- questions ---- */

static int push_question(char ***qs, size_t *n, size_t *cap, const char *s) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        char **p = realloc(*qs, nc * sizeof *p);
        if (!p) return RAGD_ENOMEM;
        *qs = p;
        *cap = nc;
    }
    if (!((*qs)[*n] = strdup(s))) return RAGD_ENOMEM;
    (*n)++;
    return RAGD_OK;
}

static const char *question_text(const cJSON *item) {
    if (cJSON_IsString(item)) return item->valuestring;
    static const char *keys[] = {"text", "question", "prompt"};
    for (size_t k = 0; k < 3 && cJSON_IsObject(item); k++) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(item, keys[k]);
        if (cJSON_IsString(t)) return t->valuestring;
    }
    return NULL;
}

int ragd_lt_load_questions(const char *path, char ***out, size_t *n_out, ragd_err *err) {
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    *n_out = 0;
    if (ragd_read_file(path, &text, &len, err))
        return ragd_err_set(err, RAGD_EIO, "cannot read questions file %s: %s", path,
                            err ? err->msg : "read error");
    char **qs = NULL;
    size_t n = 0, cap = 0;
    int rc = RAGD_OK;
    const char *s = text;
    while (*s && isspace((unsigned char)*s)) s++;
    if (*s == '[') {
        cJSON *arr = cJSON_ParseWithLength(text, len);
        if (!cJSON_IsArray(arr)) {
            rc = ragd_err_set(err, RAGD_EFORMAT, "questions file %s: not a valid JSON array", path);
        } else {
            int i = 0;
            const cJSON *it;
            cJSON_ArrayForEach(it, arr) {
                const char *q = question_text(it);
                if (!q) {
                    rc = ragd_err_set(err, RAGD_EFORMAT,
                                      "questions file %s: element %d is not a string (or object "
                                      "with a \"text\" field)",
                                      path, i);
                    break;
                }
                if ((rc = push_question(&qs, &n, &cap, q))) break;
                i++;
            }
        }
        cJSON_Delete(arr);
    } else {
        size_t lineno = 0;
        char *line = text;
        while (line && *line && rc == RAGD_OK) {
            lineno++;
            char *nl = strchr(line, '\n');
            if (nl) *nl = '\0';
            char *t = ragd_trim(line);
            if (*t) {
                cJSON *obj = cJSON_Parse(t);
                const char *q = obj ? question_text(obj) : NULL;
                if (!q)
                    rc = ragd_err_set(err, RAGD_EFORMAT,
                                      "questions file %s:%zu: expected a JSON array of strings or "
                                      "JSONL objects with a \"text\" field",
                                      path, lineno);
                else
                    rc = push_question(&qs, &n, &cap, q);
                cJSON_Delete(obj);
            }
            line = nl ? nl + 1 : NULL;
        }
    }
    free(text);
    if (rc == RAGD_OK && n == 0)
        rc = ragd_err_set(err, RAGD_EFORMAT, "questions file %s: no questions", path);
    if (rc) {
        for (size_t i = 0; i < n; i++) free(qs[i]);
        free(qs);
        return rc;
    }
    *out = qs;
    *n_out = n;
    return RAGD_OK;
}

/* ---- finish / check ---- */

int ragd_lt_config_finish(ragd_lt_options *o, ragd_err *err) {
    ragd_lt_config *c = o->cfg;
    int rc;
    if (o->mode || o->have_limit) {
        const char *mode = o->mode ? o->mode : "count";
        if (!o->have_limit) return ragd_err_set(err, RAGD_EINVAL, "mode %s needs a limit", mode);
        if (!strcmp(mode, "count")) {
            if (o->limit < 1 || o->limit != floor(o->limit) || o->limit > 1e9)
                return ragd_err_set(err, RAGD_EINVAL,
                                    "limit: count mode needs a whole number of loops >= 1, got %g",
                                    o->limit);
            c->loops = (int)o->limit;
            c->duration_s = 0;
        } else {
            if (o->limit <= 0)
                return ragd_err_set(err, RAGD_EINVAL,
                                    "limit: duration mode needs a number of seconds > 0");
            c->duration_s = o->limit;
            c->loops = 0;
        }
    }
    if (o->questions_path) {
        for (size_t i = 0; i < c->n_questions; i++) free(c->questions[i]);
        free(c->questions);
        c->questions = NULL;
        c->n_questions = 0;
        if ((rc = ragd_lt_load_questions(o->questions_path, &c->questions, &c->n_questions, err)))
            return rc;
    }
    if (o->template_path) {
        char *t = NULL;
        size_t tl = 0;
        if (ragd_read_file(o->template_path, &t, &tl, err))
            return ragd_err_set(err, RAGD_EIO, "cannot read body template %s: %s", o->template_path,
                                err ? err->msg : "read error");
        free(c->body_template);
        c->body_template = t;
        c->api = RAGD_LT_API_TEMPLATE;
    }
    if (!c->n_questions) {
        /* no file: one built-in question so a quick smoke test needs no file */
        c->questions = malloc(sizeof *c->questions);
        if (!c->questions || !(c->questions[0] = strdup("What is retrieval-augmented generation?")))
            return RAGD_ENOMEM;
        c->n_questions = 1;
    }
    return ragd_lt_config_check(c, err);
}

int ragd_lt_config_check(const ragd_lt_config *c, ragd_err *err) {
    if (!c->url) return ragd_err_set(err, RAGD_EINVAL, "no target URL (--url or target-url)");
    if (!c->n_questions) return ragd_err_set(err, RAGD_EINVAL, "no questions");
    if (c->api == RAGD_LT_API_TEMPLATE && !c->body_template)
        return ragd_err_set(err, RAGD_EINVAL, "body template missing");
    if (c->users < 1 || c->threads < 1) return ragd_err_set(err, RAGD_EINVAL, "users >= 1 needed");
    if (c->rate > 0) {
        if (c->requests <= 0 && c->duration_s <= 0)
            return ragd_err_set(err, RAGD_EINVAL,
                                "open loop (--rate) needs --requests N or --duration S");
    } else {
        if ((c->loops > 0) == (c->duration_s > 0))
            return ragd_err_set(err, RAGD_EINVAL,
                                "closed loop needs exactly one of --loops N (count mode) or "
                                "--duration S (duration mode)");
        if (c->requests > 0 || c->max_concurrency > 0)
            return ragd_err_set(err, RAGD_EINVAL,
                                "--requests and --max-concurrency apply to the open loop (--rate)");
    }
    return RAGD_OK;
}
