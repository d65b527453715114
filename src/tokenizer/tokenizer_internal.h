/* tokenizer_internal.h - helpers shared by the tokenizer module's own files (not a public API).
 * Thread-safety: pure functions.
 */
#ifndef RAGD_TOKENIZER_INTERNAL_H
#define RAGD_TOKENIZER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "util/str.h"

enum { UTF8_VALID, UTF8_INVALID, UTF8_INCOMPLETE };

/* Classify the UTF-8 sequence at s (n >= 1 bytes): a valid character, an invalid maximal
 * subpart, or a valid prefix cut off by the end of the buffer. *len gets its length. */
int ragd_tok_utf8_step(const unsigned char *s, size_t n, size_t *len);

/* Append s[0..n) to out with invalid sequences replaced by U+FFFD exactly as Rust's
 * String::from_utf8_lossy does. When !final, an incomplete character at the end is left
 * out. Returns the number of input bytes consumed; *rc gets RAGD_OK or RAGD_ENOMEM. */
size_t ragd_tok_utf8_lossy(const char *s, size_t n, bool final, ragd_buf *out, int *rc);

#endif
