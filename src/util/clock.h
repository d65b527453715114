/* clock.h - monotonic and wall clocks.
 * Durations are always measured with the monotonic clock; wall time only for display and
 * API timestamps ("created"). Thread-safe.
 */
#ifndef RAGD_UTIL_CLOCK_H
#define RAGD_UTIL_CLOCK_H

#include <stdint.h>

uint64_t ragd_now_ns(void); /* CLOCK_MONOTONIC in nanoseconds */
double ragd_now_s(void);    /* CLOCK_MONOTONIC in seconds */
int64_t ragd_wall_s(void);  /* unix time in seconds */
double ragd_wall_s_f(void); /* unix time with sub-second precision */
void ragd_sleep_ns(uint64_t ns);
/* Sleep until an absolute CLOCK_MONOTONIC time (ns); returns at once when in the past. */
void ragd_sleep_until_ns(uint64_t deadline_ns);

#endif
