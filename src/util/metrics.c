/* metrics.c - see metrics.h. Values are doubles stored in atomic 64-bit words. */
#include "util/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

enum { M_COUNTER, M_GAUGE, M_HIST };

struct ragd_metric {
    int kind;
    char *name, *help, *labels;
    _Atomic uint64_t bits; /* double: counter/gauge value, histogram sum */
    _Atomic uint64_t count;
    int n_bounds;
    double *bounds;
    _Atomic uint64_t *buckets; /* n_bounds + 1 (non-cumulative) */
    ragd_metric *next;
};

struct ragd_metrics {
    pthread_mutex_t mu; /* guards the list (creation, lookup, render), not the values */
    ragd_metric *head, *tail;
};

const double ragd_metrics_latency_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                               0.5,   1,      2.5,   5,    10,    30,   60};
const int ragd_metrics_latency_nbuckets =
    (int)(sizeof ragd_metrics_latency_buckets / sizeof ragd_metrics_latency_buckets[0]);
const double ragd_metrics_token_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.04,
                                             0.08,   0.16,  0.32,   0.64,  1.25, 2.5};
const int ragd_metrics_token_nbuckets =
    (int)(sizeof ragd_metrics_token_buckets / sizeof ragd_metrics_token_buckets[0]);

static double from_bits(uint64_t b) {
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}
static uint64_t to_bits(double d) {
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

static void atomic_add_double(_Atomic uint64_t *p, double v) {
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(p, &old, to_bits(from_bits(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

ragd_metrics *ragd_metrics_create(void) {
    ragd_metrics *m = calloc(1, sizeof(ragd_metrics));
    if (m) pthread_mutex_init(&m->mu, NULL);
    return m;
}

void ragd_metrics_destroy(ragd_metrics *m) {
    if (!m) return;
    ragd_metric *c = m->head;
    while (c) {
        ragd_metric *n = c->next;
        free(c->name);
        free(c->help);
        free(c->labels);
        free(c->bounds);
        free(c->buckets);
        free(c);
        c = n;
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static ragd_metric *find_locked(ragd_metrics *m, const char *name, const char *labels) {
    for (ragd_metric *c = m->head; c; c = c->next)
        if (!strcmp(c->name, name) && !strcmp(c->labels, labels ? labels : "")) return c;
    return NULL;
}

ragd_metric *ragd_metrics_find(ragd_metrics *m, const char *name, const char *labels) {
    if (!m) return NULL;
    pthread_mutex_lock(&m->mu);
    ragd_metric *c = find_locked(m, name, labels);
    pthread_mutex_unlock(&m->mu);
    return c;
}

static ragd_metric *add_locked(ragd_metrics *m, int kind, const char *name, const char *help,
                               const char *labels) {
    ragd_metric *c = find_locked(m, name, labels);
    if (c) return c->kind == kind ? c : NULL;
    c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->kind = kind;
    c->name = strdup(name);
    c->help = strdup(help ? help : "");
    c->labels = strdup(labels ? labels : "");
    if (!c->name || !c->help || !c->labels) {
        free(c->name);
        free(c->help);
        free(c->labels);
        free(c);
        return NULL;
    }
    /* Keep a family's series adjacent: insert after the last metric with the same name. */
    ragd_metric *after = NULL;
    for (ragd_metric *p = m->head; p; p = p->next)
        if (!strcmp(p->name, name)) after = p;
    if (after) {
        c->next = after->next;
        after->next = c;
        if (m->tail == after) m->tail = c;
    } else {
        if (m->tail)
            m->tail->next = c;
        else
            m->head = c;
        m->tail = c;
    }
    return c;
}

static ragd_metric *add(ragd_metrics *m, int kind, const char *name, const char *help,
                        const char *labels, const double *bounds, int n) {
    if (!m) return NULL;
    pthread_mutex_lock(&m->mu);
    ragd_metric *c = add_locked(m, kind, name, help, labels);
    if (c && kind == M_HIST && !c->bounds) {
        c->bounds = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
        c->buckets = calloc((size_t)n + 1, sizeof(_Atomic uint64_t));
        if (c->bounds && c->buckets) {
            memcpy(c->bounds, bounds, sizeof(double) * (size_t)n);
            c->n_bounds = n;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return c;
}

ragd_metric *ragd_metrics_counter(ragd_metrics *m, const char *name, const char *help,
                                  const char *labels) {
    return add(m, M_COUNTER, name, help, labels, NULL, 0);
}

ragd_metric *ragd_metrics_gauge(ragd_metrics *m, const char *name, const char *help,
                                const char *labels) {
    return add(m, M_GAUGE, name, help, labels, NULL, 0);
}

ragd_metric *ragd_metrics_histogram(ragd_metrics *m, const char *name, const char *help,
                                    const char *labels, const double *bounds, int n) {
    return add(m, M_HIST, name, help, labels, bounds, n);
}

void ragd_metric_add(ragd_metric *c, double v) {
    if (c) atomic_add_double(&c->bits, v);
}
void ragd_metric_inc(ragd_metric *c) {
    ragd_metric_add(c, 1.0);
}
void ragd_metric_set(ragd_metric *g, double v) {
    if (g) atomic_store_explicit(&g->bits, to_bits(v), memory_order_relaxed);
}

void ragd_metric_observe(ragd_metric *h, double v) {
    if (!h || !h->buckets) return;
    int i = 0;
    while (i < h->n_bounds && v > h->bounds[i]) i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_add_double(&h->bits, v);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

double ragd_metric_value(const ragd_metric *c) {
    if (!c) return 0;
    if (c->kind == M_HIST) return (double)atomic_load(&((ragd_metric *)c)->count);
    return from_bits(atomic_load(&((ragd_metric *)c)->bits));
}

double ragd_metric_sum(const ragd_metric *h) {
    return h ? from_bits(atomic_load(&((ragd_metric *)h)->bits)) : 0;
}

static void put_num(ragd_buf *out, double v) {
    if (isinf(v))
        ragd_buf_puts(out, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 1e15)
        ragd_buf_printf(out, "%.0f", v);
    else
        ragd_buf_printf(out, "%.9g", v);
}

static void put_series(ragd_buf *out, const char *name, const char *suffix, const char *labels,
                       const char *extra) {
    ragd_buf_puts(out, name);
    ragd_buf_puts(out, suffix);
    if (labels[0] || extra) {
        ragd_buf_putc(out, '{');
        ragd_buf_puts(out, labels);
        if (extra) {
            if (labels[0]) ragd_buf_putc(out, ',');
            ragd_buf_puts(out, extra);
        }
        ragd_buf_putc(out, '}');
    }
    ragd_buf_putc(out, ' ');
}

int ragd_metrics_render(ragd_metrics *m, ragd_buf *out) {
    static const char *types[] = {"counter", "gauge", "histogram"};
    const char *prev = NULL;
    if (!m) return RAGD_OK;
    pthread_mutex_lock(&m->mu);
    for (ragd_metric *c = m->head; c; c = c->next) {
        if (!prev || strcmp(prev, c->name)) {
            ragd_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", c->name, c->help, c->name,
                            types[c->kind]);
            prev = c->name;
        }
        if (c->kind != M_HIST) {
            put_series(out, c->name, "", c->labels, NULL);
            put_num(out, from_bits(atomic_load(&c->bits)));
            ragd_buf_putc(out, '\n');
            continue;
        }
        uint64_t cum = 0;
        char le[64];
        for (int i = 0; i <= c->n_bounds; i++) {
            cum += atomic_load(&c->buckets[i]);
            if (i < c->n_bounds)
                snprintf(le, sizeof le, "le=\"%g\"", c->bounds[i]);
            else
                snprintf(le, sizeof le, "le=\"+Inf\"");
            put_series(out, c->name, "_bucket", c->labels, le);
            ragd_buf_printf(out, "%llu\n", (unsigned long long)cum);
        }
        put_series(out, c->name, "_sum", c->labels, NULL);
        put_num(out, from_bits(atomic_load(&c->bits)));
        ragd_buf_putc(out, '\n');
        put_series(out, c->name, "_count", c->labels, NULL);
        ragd_buf_printf(out, "%llu\n", (unsigned long long)atomic_load(&c->count));
    }
    pthread_mutex_unlock(&m->mu);
    return out->data || !m->head ? RAGD_OK : RAGD_ENOMEM;
}
