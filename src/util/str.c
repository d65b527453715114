#include "util/str.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int ragd_buf_reserve(ragd_buf *b, size_t extra) {
    size_t need = b->len + extra + 1;
    if (need < b->len) return RAGD_ENOMEM;
    if (need <= b->cap) return RAGD_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) return RAGD_ENOMEM;
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p) return RAGD_ENOMEM;
    b->data = p;
    b->cap = cap;
    return RAGD_OK;
}

int ragd_buf_append(ragd_buf *b, const void *p, size_t n) {
    if (ragd_buf_reserve(b, n)) return RAGD_ENOMEM;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return RAGD_OK;
}

int ragd_buf_puts(ragd_buf *b, const char *s) {
    return ragd_buf_append(b, s, strlen(s));
}

int ragd_buf_putc(ragd_buf *b, char c) {
    return ragd_buf_append(b, &c, 1);
}

int ragd_buf_printf(ragd_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || ragd_buf_reserve(b, (size_t)n)) {
        va_end(ap2);
        return RAGD_ENOMEM;
    }
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
    return RAGD_OK;
}

int ragd_buf_json_str(ragd_buf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    if (ragd_buf_reserve(b, n + 2)) return RAGD_ENOMEM;
    ragd_buf_putc(b, '"');
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            char esc[7];
            const char *out = NULL;
            size_t olen = 0;
            switch (c) {
                case '"':
                    out = "\\\"";
                    olen = 2;
                    break;
                case '\\':
                    out = "\\\\";
                    olen = 2;
                    break;
                case '\n':
                    out = "\\n";
                    olen = 2;
                    break;
                case '\r':
                    out = "\\r";
                    olen = 2;
                    break;
                case '\t':
                    out = "\\t";
                    olen = 2;
                    break;
                case '\b':
                    out = "\\b";
                    olen = 2;
                    break;
                case '\f':
                    out = "\\f";
                    olen = 2;
                    break;
                default:
                    if (c < 0x20) {
                        memcpy(esc, "\\u00", 4);
                        esc[4] = hex[c >> 4];
                        esc[5] = hex[c & 15];
                        out = esc;
                        olen = 6;
                    }
            }
            if (out) {
                if (ragd_buf_append(b, out, olen)) return RAGD_ENOMEM;
            } else if (ragd_buf_putc(b, (char)c)) {
                return RAGD_ENOMEM;
            }
            i++;
            continue;
        }
        uint32_t cp;
        int k = ragd_utf8_decode(s + i, n - i, &cp);
        if (cp == 0xFFFD && !(k == 3 && (unsigned char)s[i] == 0xEF)) {
            if (ragd_buf_append(b, "\xEF\xBF\xBD", 3)) return RAGD_ENOMEM;
        } else if (ragd_buf_append(b, s + i, (size_t)k)) {
            return RAGD_ENOMEM;
        }
        i += (size_t)k;
    }
    return ragd_buf_putc(b, '"');
}

void ragd_buf_clear(ragd_buf *b) {
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

void ragd_buf_free(ragd_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *ragd_buf_steal(ragd_buf *b) {
    char *p = b->data;
    if (!p) p = calloc(1, 1);
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

int ragd_read_file(const char *path, char **out, size_t *out_len, ragd_err *err) {
    *out = NULL;
    if (out_len) *out_len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ragd_err_set(err, errno == ENOENT ? RAGD_ENOTFOUND : RAGD_EIO, "cannot open %s: %s",
                            path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
        close(fd);
        return ragd_err_set(err, RAGD_EIO, "cannot read %s: not a regular file", path);
    }
    ragd_buf b = {0};
    if (ragd_buf_reserve(&b, st.st_size > 0 ? (size_t)st.st_size : 4096)) {
        close(fd);
        return ragd_err_set(err, RAGD_ENOMEM, "out of memory reading %s", path);
    }
    for (;;) {
        if (ragd_buf_reserve(&b, 65536)) {
            ragd_buf_free(&b);
            close(fd);
            return ragd_err_set(err, RAGD_ENOMEM, "out of memory reading %s", path);
        }
        ssize_t r = read(fd, b.data + b.len, b.cap - b.len - 1);
        if (r < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            ragd_buf_free(&b);
            close(fd);
            return ragd_err_set(err, RAGD_EIO, "read error on %s: %s", path, strerror(e));
        }
        if (r == 0) break;
        b.len += (size_t)r;
    }
    close(fd);
    b.data[b.len] = '\0';
    if (out_len) *out_len = b.len;
    *out = b.data;
    return RAGD_OK;
}

int ragd_write_file(const char *path, const void *data, size_t len, ragd_err *err) {
    FILE *f = fopen(path, "wb");
    if (!f) return ragd_err_set(err, RAGD_EIO, "cannot write %s: %s", path, strerror(errno));
    size_t w = fwrite(data, 1, len, f);
    int rc = fclose(f);
    if (w != len || rc != 0) return ragd_err_set(err, RAGD_EIO, "write error on %s", path);
    return RAGD_OK;
}

bool ragd_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

bool ragd_dir_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int ragd_utf8_decode(const char *s, size_t n, uint32_t *cp) {
    const unsigned char *u = (const unsigned char *)s;
    if (n == 0) {
        *cp = 0xFFFD;
        return 1;
    }
    unsigned char c = u[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        v = c & 0x1F;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        v = c & 0x0F;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        v = c & 0x07;
        min = 0x10000;
    } else {
        *cp = 0xFFFD;
        return 1;
    }
    if ((size_t)len > n) {
        *cp = 0xFFFD;
        return 1;
    }
    for (int i = 1; i < len; i++) {
        if ((u[i] & 0xC0) != 0x80) {
            *cp = 0xFFFD;
            return 1;
        }
        v = (v << 6) | (u[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
        *cp = 0xFFFD;
        return 1;
    }
    *cp = v;
    return len;
}

int ragd_utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

bool ragd_utf8_valid(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if ((unsigned char)s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        int k = ragd_utf8_decode(s + i, n - i, &cp);
        if (cp == 0xFFFD && k == 1) return false;
        i += (size_t)k;
    }
    return true;
}

size_t ragd_utf8_complete_prefix(const char *s, size_t n) {
    /* look back at most 3 bytes for an unfinished lead byte */
    size_t i = n;
    int back = 0;
    while (i > 0 && back < 4) {
        unsigned char c = (unsigned char)s[i - 1];
        if ((c & 0xC0) != 0x80) {
            int need = c < 0x80 ? 1 : (c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1);
            if (back + 1 < need) return i - 1; /* incomplete sequence starts at i-1 */
            return n;
        }
        i--;
        back++;
    }
    return n;
}

const char *ragd_shared_path(char *out, size_t outlen, const char *rel) {
    const char *env = getenv("RAGD_SHARED");
    if (env && *env) {
        snprintf(out, outlen, "%s/%s", env, rel);
    } else {
#ifdef RAGD_SOURCE_DIR
        snprintf(out, outlen, "%s/../shared/%s", RAGD_SOURCE_DIR, rel);
#else
        snprintf(out, outlen, "../shared/%s", rel);
#endif
    }
    return out;
}

char *ragd_trim(char *s) {
    while (*s && isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

bool ragd_str_starts_with(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool ragd_str_ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}
