/* log.h - leveled logging to stderr with timestamps.
 * Level from ragd_log_set_level() or the RAGD_LOG environment variable
 * (debug|info|warn|error|off; default info). Thread-safe: one line is written atomically.
 */
#ifndef RAGD_UTIL_LOG_H
#define RAGD_UTIL_LOG_H

enum { RAGD_LOG_DEBUG = 0, RAGD_LOG_INFO, RAGD_LOG_WARN, RAGD_LOG_ERROR, RAGD_LOG_OFF };

void ragd_log_set_level(int level);
int ragd_log_get_level(void);
/* Parse "debug", "info", ...; returns -1 when unknown. */
int ragd_log_parse_level(const char *name);
void ragd_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG_DEBUG(...) ragd_log(RAGD_LOG_DEBUG, __VA_ARGS__)
#define LOG_INFO(...)  ragd_log(RAGD_LOG_INFO, __VA_ARGS__)
#define LOG_WARN(...)  ragd_log(RAGD_LOG_WARN, __VA_ARGS__)
#define LOG_ERROR(...) ragd_log(RAGD_LOG_ERROR, __VA_ARGS__)

#endif
