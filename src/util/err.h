/* err.h - error codes and caller-owned error messages.
 *
 * Every fallible library function returns an int status (0 = RAGD_OK) and, when it fails,
 * writes a human-readable message into a ragd_err the caller owns. Nothing in the library
 * calls exit(). A NULL ragd_err is allowed: the message is then dropped.
 * Thread-safety: a ragd_err belongs to one thread at a time.
 */
#ifndef RAGD_UTIL_ERR_H
#define RAGD_UTIL_ERR_H

#include <stddef.h>

enum {
    RAGD_OK = 0,
    RAGD_EINVAL,       /* bad argument or bad input */
    RAGD_EIO,          /* read/write/open failure */
    RAGD_ENOMEM,       /* allocation failure */
    RAGD_EFORMAT,      /* malformed file or data */
    RAGD_ENOTFOUND,    /* missing file, key, tensor, index ... */
    RAGD_EUNSUPPORTED, /* valid but not supported (architecture, dtype ...) */
    RAGD_EBUSY,        /* capacity exhausted, try again later */
    RAGD_ETIMEOUT,     /* deadline passed */
    RAGD_ECANCELLED,   /* cancelled by caller or client */
    RAGD_EINTERNAL,    /* bug or unexpected state */
    RAGD_EDEVICE,      /* GPU / accelerator error */
};

#define RAGD_ERR_MSG_MAX 512

typedef struct ragd_err {
    int code;
    char msg[RAGD_ERR_MSG_MAX];
} ragd_err;

/* Record an error and return its code (so callers can `return ragd_err_set(...)`). */
int ragd_err_set(ragd_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefix the existing message with more context: "ctx: old message". Returns err->code. */
int ragd_err_prefix(ragd_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ragd_err_clear(ragd_err *err);
/* Short name of a code, e.g. "EINVAL". */
const char *ragd_err_name(int code);

#endif
