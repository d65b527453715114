/* Unit tests for util/stats: exact percentiles and log-bucket histograms. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>

#include "util/err.h"
#include "util/stats.h"

static void test_percentiles(void **state) {
    (void)state;
    double x[] = {5, 1, 4, 2, 3};
    ragd_summary s;
    assert_int_equal(ragd_summarize(x, 5, &s), 0);
    assert_int_equal(s.n, 5);
    assert_true(fabs(s.mean - 3) < 1e-12);
    assert_true(s.min == 1 && s.max == 5 && s.p50 == 3);
    assert_true(fabs(s.p90 - 4.6) < 1e-12); /* linear interpolation, numpy default */
    assert_true(fabs(s.p99 - 4.96) < 1e-12);
    assert_true(x[0] == 5); /* input untouched */
    assert_int_equal(ragd_summarize(x, 0, &s), 0);
    assert_int_equal(s.n, 0);
    assert_true(s.p99 == 0);
    double one = 7;
    ragd_summarize(&one, 1, &s);
    assert_true(s.p50 == 7 && s.p99 == 7 && s.mean == 7);
    double big[1001];
    for (int i = 0; i <= 1000; i++) big[i] = 1000 - i;
    ragd_summarize(big, 1001, &s);
    assert_true(fabs(s.p90 - 900) < 1e-9 && fabs(s.p99 - 990) < 1e-9 && s.p50 == 500);
}

static void test_hist(void **state) {
    (void)state;
    ragd_hist h, h2;
    assert_int_equal(ragd_hist_init(&h, 0.1, 1e5, 20), 0);
    assert_int_equal(ragd_hist_init(&h2, 0.1, 1e5, 20), 0);
    assert_true(ragd_hist_quantile(&h, 0.5) == 0);
    srand(1);
    double *v = malloc(20000 * sizeof *v);
    for (int i = 0; i < 20000; i++) {
        v[i] = exp((double)rand() / RAND_MAX * 8); /* 1 .. 3000, log-uniform */
        ragd_hist_add(i % 2 ? &h : &h2, v[i]);
    }
    assert_int_equal(ragd_hist_merge(&h, &h2), 0);
    assert_int_equal(h.total, 20000);
    ragd_summary s;
    ragd_summarize(v, 20000, &s);
    /* 20 buckets per decade: bucket width ~12%, so quantiles within ~12% */
    double q50 = ragd_hist_quantile(&h, 0.5), q99 = ragd_hist_quantile(&h, 0.99);
    assert_true(fabs(q50 - s.p50) / s.p50 < 0.12);
    assert_true(fabs(q99 - s.p99) / s.p99 < 0.12);
    assert_true(ragd_hist_quantile(&h, 1) == s.max);
    assert_true(ragd_hist_quantile(&h, 0) == s.min);
    /* bucket bounds grow geometrically and end at +inf */
    assert_true(fabs(ragd_hist_upper(&h, 0) - 0.1) < 1e-12);
    assert_true(isinf(ragd_hist_upper(&h, h.n_buckets - 1)));
    /* values beyond the range land in the end buckets */
    ragd_hist_add(&h2, 1e9);
    ragd_hist_add(&h2, 0);
    assert_int_equal(h2.counts[h2.n_buckets - 1], 1);
    ragd_hist h3;
    ragd_hist_init(&h3, 1, 10, 5);
    assert_int_equal(ragd_hist_merge(&h, &h3), RAGD_EINVAL);
    ragd_hist_reset(&h);
    assert_int_equal(h.total, 0);
    ragd_hist_free(&h3);
    assert_int_equal(ragd_hist_init(&h3, 0, 10, 5), RAGD_EINVAL);
    free(v);
    ragd_hist_free(&h);
    ragd_hist_free(&h2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percentiles),
        cmocka_unit_test(test_hist),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
