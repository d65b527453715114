/* stats.h - summary statistics for latency-style samples.
 *
 * Exact percentiles from a sample array (copied and sorted; linear interpolation between
 * closest ranks, like numpy's default), and log-bucket histograms for cheap approximate
 * quantiles of unbounded streams (progress lines, server /metrics).
 * Used by loadtest/ (reports) and meant for the server's /metrics.
 * Thread-safety: none; a ragd_hist belongs to one thread (merge per-thread histograms with
 * ragd_hist_merge) or is protected by the caller's lock.
 */
#ifndef RAGD_UTIL_STATS_H
#define RAGD_UTIL_STATS_H

#include <stddef.h>
#include <stdint.h>

typedef struct ragd_summary {
    size_t n;
    double mean, min, max;
    double p50, p90, p95, p99;
} ragd_summary;

/* Sort doubles ascending in place (NaNs must not be present). */
void ragd_sort_doubles(double *x, size_t n);
/* Percentile q in [0,100] of an ascending array; 0 for n == 0. */
double ragd_percentile_sorted(const double *sorted, size_t n, double q);
/* Summary of x[0..n) (x is not modified). All fields 0 when n == 0.
 * Returns RAGD_OK or RAGD_ENOMEM. */
int ragd_summarize(const double *x, size_t n, ragd_summary *out);

/* Log-bucket histogram: bucket 0 holds values <= lo, bucket i (1..nb-2) holds values in
 * (lo*g^(i-1), lo*g^i], the last bucket everything above. g = 10^(1/per_decade). */
typedef struct ragd_hist {
    double lo, growth, log_growth;
    int n_buckets;
    uint64_t *counts;
    uint64_t total;
    double sum, min, max;
} ragd_hist;

/* Buckets from lo up to at least hi with per_decade buckets per factor of 10. */
int ragd_hist_init(ragd_hist *h, double lo, double hi, int per_decade);
void ragd_hist_free(ragd_hist *h);
void ragd_hist_reset(ragd_hist *h);
void ragd_hist_add(ragd_hist *h, double v);
/* Both histograms must have the same layout; returns RAGD_EINVAL otherwise. */
int ragd_hist_merge(ragd_hist *dst, const ragd_hist *src);
/* Upper bound of bucket i (+inf for the last one). */
double ragd_hist_upper(const ragd_hist *h, int i);
/* Approximate quantile q in [0,1]: interpolated inside the bucket, clamped to [min,max]. */
double ragd_hist_quantile(const ragd_hist *h, double q);

#endif
