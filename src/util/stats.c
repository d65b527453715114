#include "util/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void ragd_sort_doubles(double *x, size_t n) {
    if (n > 1) qsort(x, n, sizeof *x, cmp_double);
}

double ragd_percentile_sorted(const double *s, size_t n, double q) {
    if (n == 0) return 0;
    if (q <= 0) return s[0];
    if (q >= 100) return s[n - 1];
    double pos = q / 100.0 * (double)(n - 1);
    size_t i = (size_t)pos;
    double f = pos - (double)i;
    if (i + 1 >= n) return s[n - 1];
    return s[i] + (s[i + 1] - s[i]) * f;
}

int ragd_summarize(const double *x, size_t n, ragd_summary *out) {
    memset(out, 0, sizeof *out);
    if (n == 0) return RAGD_OK;
    double *s = malloc(n * sizeof *s);
    if (!s) return RAGD_ENOMEM;
    memcpy(s, x, n * sizeof *s);
    ragd_sort_doubles(s, n);
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += s[i];
    out->n = n;
    out->mean = sum / (double)n;
    out->min = s[0];
    out->max = s[n - 1];
    out->p50 = ragd_percentile_sorted(s, n, 50);
    out->p90 = ragd_percentile_sorted(s, n, 90);
    out->p95 = ragd_percentile_sorted(s, n, 95);
    out->p99 = ragd_percentile_sorted(s, n, 99);
    free(s);
    return RAGD_OK;
}

int ragd_hist_init(ragd_hist *h, double lo, double hi, int per_decade) {
    memset(h, 0, sizeof *h);
    if (!(lo > 0) || !(hi > lo) || per_decade < 1) return RAGD_EINVAL;
    h->lo = lo;
    h->growth = pow(10.0, 1.0 / per_decade);
    h->log_growth = log(h->growth);
    h->n_buckets = (int)ceil(log(hi / lo) / h->log_growth - 1e-9) + 2;
    h->counts = calloc((size_t)h->n_buckets, sizeof *h->counts);
    if (!h->counts) return RAGD_ENOMEM;
    h->min = INFINITY;
    h->max = -INFINITY;
    return RAGD_OK;
}

void ragd_hist_free(ragd_hist *h) {
    free(h->counts);
    memset(h, 0, sizeof *h);
}

void ragd_hist_reset(ragd_hist *h) {
    if (h->counts) memset(h->counts, 0, (size_t)h->n_buckets * sizeof *h->counts);
    h->total = 0;
    h->sum = 0;
    h->min = INFINITY;
    h->max = -INFINITY;
}

static int bucket_of(const ragd_hist *h, double v) {
    if (!(v > h->lo)) return 0;
    double b = ceil(log(v / h->lo) / h->log_growth - 1e-12);
    if (b >= h->n_buckets - 1) return h->n_buckets - 1;
    return b < 1 ? 1 : (int)b;
}

void ragd_hist_add(ragd_hist *h, double v) {
    if (!h->counts || isnan(v)) return;
    h->counts[bucket_of(h, v)]++;
    h->total++;
    h->sum += v;
    if (v < h->min) h->min = v;
    if (v > h->max) h->max = v;
}

int ragd_hist_merge(ragd_hist *dst, const ragd_hist *src) {
    if (dst->n_buckets != src->n_buckets || dst->lo != src->lo || dst->growth != src->growth)
        return RAGD_EINVAL;
    for (int i = 0; i < dst->n_buckets; i++) dst->counts[i] += src->counts[i];
    dst->total += src->total;
    dst->sum += src->sum;
    if (src->min < dst->min) dst->min = src->min;
    if (src->max > dst->max) dst->max = src->max;
    return RAGD_OK;
}

double ragd_hist_upper(const ragd_hist *h, int i) {
    if (i >= h->n_buckets - 1) return INFINITY;
    return h->lo * pow(h->growth, i);
}

double ragd_hist_quantile(const ragd_hist *h, double q) {
    if (!h->total) return 0;
    if (q <= 0) return h->min;
    if (q >= 1) return h->max;
    double target = q * (double)h->total;
    uint64_t cum = 0;
    for (int i = 0; i < h->n_buckets; i++) {
        if (!h->counts[i]) continue;
        if ((double)(cum + h->counts[i]) >= target) {
            double lo = i == 0 ? h->min : ragd_hist_upper(h, i - 1);
            double hi = i == h->n_buckets - 1 ? h->max : ragd_hist_upper(h, i);
            if (lo < h->min) lo = h->min;
            if (hi > h->max) hi = h->max;
            double f = (target - (double)cum) / (double)h->counts[i];
            return lo + (hi - lo) * f;
        }
        cum += h->counts[i];
    }
    return h->max;
}
