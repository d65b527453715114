#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int ragd_err_set(ragd_err *err, int code, const char *fmt, ...) {
    if (!err) return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

int ragd_err_prefix(ragd_err *err, const char *fmt, ...) {
    if (!err) return RAGD_EINTERNAL;
    char prefix[RAGD_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[RAGD_ERR_MSG_MAX];
    memcpy(old, err->msg, sizeof old);
    old[sizeof old - 1] = '\0';
    size_t pl = strlen(prefix), ol = strlen(old), cap = sizeof err->msg - 1;
    size_t n = 0;
    memcpy(err->msg, prefix, pl > cap ? cap : pl);
    n = pl > cap ? cap : pl;
    if (n + 2 <= cap) {
        memcpy(err->msg + n, ": ", 2);
        n += 2;
    }
    size_t take = ol > cap - n ? cap - n : ol;
    memcpy(err->msg + n, old, take);
    err->msg[n + take] = '\0';
    return err->code;
}

void ragd_err_clear(ragd_err *err) {
    if (!err) return;
    err->code = RAGD_OK;
    err->msg[0] = '\0';
}

const char *ragd_err_name(int code) {
    static const char *names[] = {"OK",       "EINVAL",     "EIO",          "ENOMEM",
                                  "EFORMAT",  "ENOTFOUND",  "EUNSUPPORTED", "EBUSY",
                                  "ETIMEOUT", "ECANCELLED", "EINTERNAL",    "EDEVICE"};
    if (code < 0 || code >= (int)(sizeof names / sizeof names[0])) return "EUNKNOWN";
    return names[code];
}
