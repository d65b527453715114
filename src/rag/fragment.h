/* fragment.h - SSE fragment buffering for the seed users' /text-generation stream: tokens'
 * text is collected and released as natural fragments instead of one event per token.
 *
 * Rule: a fragment is released as soon as the pending text holds a punctuation character
 * from the configured set (everything up to and including the last such character), or at
 * least min_chars characters (code points; then all complete characters are released).
 * ragd_fragbuf_flush releases what is left at the end of the stream. A fragment never
 * splits a UTF-8 character: incomplete trailing bytes wait for the rest of the character.
 * Concatenating every fragment gives back exactly the pushed text.
 * Used by the /text-generation handler and `ragd ask`.
 * Thread-safety: one buffer per stream; not thread-safe.
 */
#ifndef RAGD_RAG_FRAGMENT_H
#define RAGD_RAG_FRAGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/str.h"

/* Default --stream-min-chars and --stream-punct. */
#define RAGD_FRAG_DEFAULT_MIN_CHARS 5
#define RAGD_FRAG_DEFAULT_PUNCT     "，。！？；：、,.!?;:\n"

typedef struct ragd_fragbuf {
    size_t min_chars;
    uint32_t *punct; /* code points of the punctuation set */
    size_t n_punct;
    ragd_buf pending;
} ragd_fragbuf;

/* punct: UTF-8 string whose characters all count as punctuation (NULL = default; "" =
 * none). min_chars 0 releases every complete character at once. Invalid UTF-8 in punct ->
 * RAGD_EINVAL. */
int ragd_fragbuf_init(ragd_fragbuf *f, size_t min_chars, const char *punct, ragd_err *err);
/* Add n bytes of text. When a fragment is ready it is appended to out and *ready is set to
 * its length (else 0). */
int ragd_fragbuf_push(ragd_fragbuf *f, const char *s, size_t n, ragd_buf *out, size_t *ready);
/* Append everything pending (possibly nothing) to out; the buffer becomes empty. Incomplete
 * trailing UTF-8 bytes are released as they are (the stream ended inside a character). */
int ragd_fragbuf_flush(ragd_fragbuf *f, ragd_buf *out, size_t *ready);
void ragd_fragbuf_free(ragd_fragbuf *f);

#endif
