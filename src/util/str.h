/* str.h - growable byte/string buffer, file reading, UTF-8 checks, JSON string escaping.
 * A zero-initialised ragd_buf is empty and valid; data is always NUL-terminated once
 * anything was appended. Not thread-safe.
 */
#ifndef RAGD_UTIL_STR_H
#define RAGD_UTIL_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

typedef struct ragd_buf {
    char *data;
    size_t len, cap;
} ragd_buf;

int ragd_buf_reserve(ragd_buf *b, size_t extra);
int ragd_buf_append(ragd_buf *b, const void *p, size_t n);
int ragd_buf_puts(ragd_buf *b, const char *s);
int ragd_buf_putc(ragd_buf *b, char c);
int ragd_buf_printf(ragd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s (n bytes) as a JSON string literal, quotes included. Invalid UTF-8 becomes U+FFFD. */
int ragd_buf_json_str(ragd_buf *b, const char *s, size_t n);
void ragd_buf_clear(ragd_buf *b);
void ragd_buf_free(ragd_buf *b);
/* Hand the data over to the caller (who frees it); the buffer becomes empty. */
char *ragd_buf_steal(ragd_buf *b);

/* Read a whole file into a NUL-terminated malloc'd buffer. */
int ragd_read_file(const char *path, char **out, size_t *out_len, ragd_err *err);
int ragd_write_file(const char *path, const void *data, size_t len, ragd_err *err);
bool ragd_file_exists(const char *path);
bool ragd_dir_exists(const char *path);

/* UTF-8 */
bool ragd_utf8_valid(const char *s, size_t n);
/* Length of the longest prefix of s[0..n) that ends on a complete UTF-8 character. */
size_t ragd_utf8_complete_prefix(const char *s, size_t n);
/* Decode one code point at s; returns bytes consumed (>=1) and sets *cp (U+FFFD on error). */
int ragd_utf8_decode(const char *s, size_t n, uint32_t *cp);
int ragd_utf8_encode(uint32_t cp, char out[4]);

/* Path of a file under the shared/ folder: $RAGD_SHARED, else <source dir>/../shared.
 * Returns out. */
const char *ragd_shared_path(char *out, size_t outlen, const char *rel);

/* Trim ASCII whitespace in place; returns s. */
char *ragd_trim(char *s);
bool ragd_str_starts_with(const char *s, const char *prefix);
bool ragd_str_ends_with(const char *s, const char *suffix);

#endif
