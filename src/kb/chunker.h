/* chunker.h - split document text into overlapping chunks measured in model tokens, cutting
 * at sentence ends (。！？；.!?; and newlines) where possible and inside a sentence only
 * when it alone exceeds the budget (then preferably at a comma or space).
 *
 * Token counting is a small interface so ingest can use the embedding model's own
 * tokenizer (WordPiece) when it has one, and otherwise ragd_kb_approx_tokens: one token per
 * CJK character or punctuation mark, about 1.3 per word of other scripts (English BERT
 * WordPiece averages ~1.3 pieces per word).
 * Thread-safety: reentrant (the counter must be too).
 */
#ifndef RAGD_KB_CHUNKER_H
#define RAGD_KB_CHUNKER_H

#include <stddef.h>

#include "util/err.h"

typedef struct ragd_kb_token_counter {
    const char *name;
    void *ctx;
    size_t (*count)(void *ctx, const char *text, size_t len);
} ragd_kb_token_counter;

extern const ragd_kb_token_counter ragd_kb_approx_tokens;

typedef struct ragd_kb_span {
    size_t start, end; /* byte range in the text */
    size_t tokens;     /* as counted */
} ragd_kb_span;

/* Chunk text (valid UTF-8). chunk_tokens 0 = the whole (trimmed) text is one chunk.
 * overlap < chunk_tokens. Whitespace-only text gives no chunks. *spans is malloc'd. */
int ragd_kb_chunk(const char *text, size_t len, int chunk_tokens, int overlap,
                  const ragd_kb_token_counter *tc, ragd_kb_span **spans, size_t *n, ragd_err *err);

#endif
