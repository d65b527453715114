/* metrics.h - a small Prometheus metrics registry: counters, gauges and histograms with fixed
 * buckets, each optionally with one fixed label set, rendered in the text exposition format.
 *
 * Metrics are created once at start-up (ragd_metrics_counter / _gauge / _histogram return a
 * handle owned by the registry) and then updated from any thread with lock-free atomics
 * (histogram observations take a per-histogram spin of atomics, no lock).
 * The same name may be registered several times with different label strings ("reason=\"stop\"");
 * they render as one family. Rendering (/metrics) may run concurrently with updates.
 * Thread-safety: create from one thread before use; update/render from any thread.
 */
#ifndef RAGD_UTIL_METRICS_H
#define RAGD_UTIL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "util/str.h"

typedef struct ragd_metrics ragd_metrics;
typedef struct ragd_metric ragd_metric;

ragd_metrics *ragd_metrics_create(void);
void ragd_metrics_destroy(ragd_metrics *m);

/* labels: NULL or a Prometheus label list without braces, e.g. "code=\"200\"". */
ragd_metric *ragd_metrics_counter(ragd_metrics *m, const char *name, const char *help,
                                  const char *labels);
ragd_metric *ragd_metrics_gauge(ragd_metrics *m, const char *name, const char *help,
                                const char *labels);
/* bounds: n ascending upper bounds (the +Inf bucket is implicit). */
ragd_metric *ragd_metrics_histogram(ragd_metrics *m, const char *name, const char *help,
                                    const char *labels, const double *bounds, int n);
/* Find an already registered metric (same name and labels); NULL when absent. */
ragd_metric *ragd_metrics_find(ragd_metrics *m, const char *name, const char *labels);

/* All update functions accept NULL (no-op) so optional metrics need no checks. */
void ragd_metric_add(ragd_metric *c, double v); /* counter or gauge */
void ragd_metric_inc(ragd_metric *c);
void ragd_metric_set(ragd_metric *g, double v);     /* gauge */
void ragd_metric_observe(ragd_metric *h, double v); /* histogram */
double ragd_metric_value(const ragd_metric *c);     /* counter/gauge value; histogram count */
double ragd_metric_sum(const ragd_metric *h);       /* histogram sum */

/* Append the text exposition of every metric to out. */
int ragd_metrics_render(ragd_metrics *m, ragd_buf *out);

/* Common bucket sets (seconds). */
extern const double ragd_metrics_latency_buckets[]; /* 1 ms .. 60 s */
extern const int ragd_metrics_latency_nbuckets;
extern const double ragd_metrics_token_buckets[]; /* 0.5 ms .. 2.5 s (inter-token) */
extern const int ragd_metrics_token_nbuckets;

#endif
