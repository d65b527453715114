#include "util/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static atomic_int g_level = -1;

int ragd_log_parse_level(const char *name) {
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    if (!name) return -1;
    for (int i = 0; i < 5; i++)
        if (strcasecmp(name, names[i]) == 0) return i;
    return -1;
}

int ragd_log_get_level(void) {
    int lv = atomic_load(&g_level);
    if (lv < 0) {
        lv = ragd_log_parse_level(getenv("RAGD_LOG"));
        if (lv < 0) lv = RAGD_LOG_INFO;
        atomic_store(&g_level, lv);
    }
    return lv;
}

void ragd_log_set_level(int level) {
    atomic_store(&g_level, level);
}

void ragd_log(int level, const char *fmt, ...) {
    if (level < ragd_log_get_level()) return;
    static const char *tags[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, tags[level < 4 ? level : 3]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2) len = sizeof line - 2;
    line[len++] = '\n';
    fwrite(line, 1, len, stderr); /* one write per line: stdio locks the stream */
}
