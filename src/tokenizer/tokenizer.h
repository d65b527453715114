/* tokenizer.h - byte-level BPE tokenizers from Hugging Face tokenizer.json (Qwen2, Llama-3
 * style), with added/special tokens, incremental (streaming) decoding.
 *
 * Loading reads <dir>/tokenizer.json and, when present, <dir>/tokenizer_config.json
 * (chat_template, eos/pad/bos tokens). Encoding follows tokenizers' semantics with
 * split_special_tokens=false: added tokens are matched in the raw text first, the rest is
 * NFC-normalised, pre-tokenized with the file's Split regex (PCRE2, JIT, UTF+UCP), mapped
 * through the ByteLevel byte->unicode table and merged by rank.
 * Thread-safety: a loaded tokenizer is immutable; encode/decode may run concurrently.
 */
#ifndef RAGD_TOKENIZER_TOKENIZER_H
#define RAGD_TOKENIZER_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/str.h"

typedef struct ragd_tokenizer ragd_tokenizer;

int ragd_tokenizer_load(const char *model_dir, ragd_tokenizer **out, ragd_err *err);
void ragd_tokenizer_destroy(ragd_tokenizer *tok);
/* Load from the text of a tokenizer.json held in memory (no tokenizer_config.json). */
int ragd_tokenizer_load_json(const char *json, size_t len, ragd_tokenizer **out, ragd_err *err);

int ragd_tokenizer_vocab_size(const ragd_tokenizer *tok); /* including added tokens */
/* Encode UTF-8 text (len bytes). Invalid UTF-8 -> RAGD_EINVAL. *ids is malloc'd. */
int ragd_tokenizer_encode(const ragd_tokenizer *tok, const char *text, size_t len, int32_t **ids,
                          size_t *n_ids, ragd_err *err);
/* Decode ids to text (appended to out). skip_special drops added special tokens. */
int ragd_tokenizer_decode(const ragd_tokenizer *tok, const int32_t *ids, size_t n,
                          bool skip_special, ragd_buf *out, ragd_err *err);
/* Token id of an exact token string (added or regular); -1 when absent. */
int32_t ragd_tokenizer_token_id(const ragd_tokenizer *tok, const char *token);
bool ragd_tokenizer_is_special(const ragd_tokenizer *tok, int32_t id);
/* The raw bytes one id decodes to (may be part of a UTF-8 character); NULL for a bad id. */
const char *ragd_tokenizer_token_bytes(const ragd_tokenizer *tok, int32_t id, size_t *len);
/* Special ids from tokenizer_config.json; -1 when absent. */
int32_t ragd_tokenizer_eos_id(const ragd_tokenizer *tok);
int32_t ragd_tokenizer_pad_id(const ragd_tokenizer *tok);
int32_t ragd_tokenizer_bos_id(const ragd_tokenizer *tok);
/* The chat_template string from tokenizer_config.json, or NULL. */
const char *ragd_tokenizer_chat_template(const ragd_tokenizer *tok);

/* Streaming detokenizer: feed ids one at a time, get text that never splits a UTF-8
 * character; the concatenation of all pieces plus ragd_detok_flush equals decode(). */
typedef struct ragd_detok {
    const ragd_tokenizer *tok;
    bool skip_special;
    ragd_buf pending; /* bytes not yet emitted (incomplete UTF-8) */
} ragd_detok;

void ragd_detok_init(ragd_detok *d, const ragd_tokenizer *tok, bool skip_special);
/* Append the text that became complete after `id` to out (possibly nothing). Ids the tokenizer
 * has no string for (a model's padded vocabulary rows) add nothing, as in transformers;
 * negative ids are an error. */
int ragd_detok_push(ragd_detok *d, int32_t id, ragd_buf *out, ragd_err *err);
/* Append whatever is left (invalid trailing bytes become U+FFFD, as decode() does). */
int ragd_detok_flush(ragd_detok *d, ragd_buf *out);
void ragd_detok_free(ragd_detok *d);

#endif
