/* wordpiece.h - the BERT tokenizer (bge-small-zh-v1.5 and other BERT-family models).
 *
 * Loads <dir>/tokenizer.json (BertNormalizer + BertPreTokenizer + WordPiece model) or, when
 * that file is absent, <dir>/vocab.txt + tokenizer_config.json (do_lower_case,
 * strip_accents, tokenize_chinese_chars). Encoding follows Hugging Face tokenizers:
 * added special tokens ([CLS], [SEP], ...) are matched in the raw text first; the rest is
 * cleaned (NUL, U+FFFD and control characters dropped, whitespace -> ' '), CJK ideographs
 * are split apart, accents stripped / lower-cased only when the config asks, split on
 * whitespace and punctuation (ASCII punctuation + Unicode P* categories), then WordPiece
 * greedy longest match with the "##" continuation prefix; a word that cannot be covered, or
 * longer than max_input_chars_per_word characters, becomes [UNK]. [CLS] ... [SEP] wrap the
 * result, truncated to max_len tokens (the truncation is reported).
 * Used by the BERT model / embedding engine (src/embed). Thread-safety: a loaded tokenizer
 * is immutable; encode may run concurrently from many threads.
 */
#ifndef RAGD_TOKENIZER_WORDPIECE_H
#define RAGD_TOKENIZER_WORDPIECE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

typedef struct ragd_wordpiece ragd_wordpiece;

typedef struct ragd_wordpiece_info {
    bool lowercase, strip_accents, handle_chinese_chars, clean_text;
    int max_input_chars_per_word;
    int32_t cls_id, sep_id, pad_id, unk_id;
} ragd_wordpiece_info;

int ragd_wordpiece_load(const char *model_dir, ragd_wordpiece **out, ragd_err *err);
void ragd_wordpiece_destroy(ragd_wordpiece *wp);

int ragd_wordpiece_vocab_size(const ragd_wordpiece *wp);
void ragd_wordpiece_get_info(const ragd_wordpiece *wp, ragd_wordpiece_info *info);
/* Token string of an id, NULL when out of range. */
const char *ragd_wordpiece_token(const ragd_wordpiece *wp, int32_t id);
/* Id of an exact token string; -1 when absent. */
int32_t ragd_wordpiece_token_id(const ragd_wordpiece *wp, const char *token, size_t len);

/* Encode UTF-8 text (len bytes) to [CLS] tokens [SEP], at most max_len ids (>= 2; the
 * content is cut, [SEP] kept). *ids is malloc'd; *truncated (optional) is set when tokens
 * were dropped. Invalid UTF-8 -> RAGD_EINVAL. */
int ragd_wordpiece_encode(const ragd_wordpiece *wp, const char *text, size_t len, size_t max_len,
                          int32_t **ids, size_t *n_ids, bool *truncated, ragd_err *err);

#endif
