/* chunker.c - sentence-aware token-budget chunking. */
#include "kb/chunker.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/str.h"
#include "util/vec.h"

static int is_cjk_or_punct(uint32_t c) {
    return (c >= 0x2E80 && c <= 0x9FFF) || (c >= 0xAC00 && c <= 0xD7AF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0xFF00 && c <= 0xFFEF) || c >= 0x20000;
}

static int is_alnum_ascii(uint32_t c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static size_t approx_count(void *ctx, const char *s, size_t n) {
    (void)ctx;
    size_t i = 0, ones = 0, words = 0;
    int in_word = 0;
    while (i < n) {
        uint32_t c;
        i += (size_t)ragd_utf8_decode(s + i, n - i, &c);
        if (c < 0x80 && is_alnum_ascii(c)) {
            if (!in_word) words++;
            in_word = 1;
        } else if (c >= 0x80 && !is_cjk_or_punct(c) && c != 0x3000) {
            /* letters of other scripts: part of a word */
            if (!in_word) words++;
            in_word = 1;
        } else {
            in_word = 0;
            if (c > 0x20 && c != 0x3000) ones++;
        }
    }
    return ones + (words * 13 + 9) / 10;
}

const ragd_kb_token_counter ragd_kb_approx_tokens = {"approx (CJK char = 1, word ~ 1.3)", NULL,
                                                     approx_count};

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Byte length of a sentence terminator at s (0 when none). */
static size_t terminator(const char *s, size_t n, size_t i) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\n' || c == '!' || c == '?' || c == ';') return 1;
    if (c == '.') return (i + 1 == n || is_space(s[i + 1])) ? 1 : 0;
    if (c == 0xE3 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 &&
        (unsigned char)s[i + 2] == 0x82) /* 。 */
        return 3;
    if (c == 0xEF && i + 2 < n && (unsigned char)s[i + 1] == 0xBC) {
        unsigned char d = (unsigned char)s[i + 2];
        if (d == 0x81 || d == 0x9F || d == 0x9B) return 3; /* ！ ？ ； */
    }
    return 0;
}

/* A soft cut point (after a comma, 、 or whitespace) at or before `limit`, after `from`. */
static size_t soft_cut(const char *s, size_t from, size_t limit) {
    for (size_t i = limit; i > from + (limit - from) / 2; i--) {
        unsigned char c = (unsigned char)s[i - 1];
        if (c == ',' || is_space((char)c)) return i;
        if (i >= 3 && (unsigned char)s[i - 3] == 0xEF && (unsigned char)s[i - 2] == 0xBC &&
            (unsigned char)s[i - 1] == 0x8C) /* ， */
            return i;
        if (i >= 3 && (unsigned char)s[i - 3] == 0xE3 && (unsigned char)s[i - 2] == 0x80 &&
            (unsigned char)s[i - 1] == 0x81) /* 、 */
            return i;
    }
    return limit;
}

typedef RAGD_VEC(ragd_kb_span) span_vec;

static void trim(const char *s, size_t *a, size_t *b) {
    while (*a < *b && is_space(s[*a])) (*a)++;
    while (*b > *a && is_space(s[*b - 1])) (*b)--;
}

/* Split [a, b) into pieces of at most budget tokens (character boundaries). */
static int split_long(const char *s, size_t a, size_t b, size_t budget,
                      const ragd_kb_token_counter *tc, span_vec *out) {
    /* look at a bounded window at a time so a 10 MB line stays linear */
    size_t window = budget * 32 > 4096 ? budget * 32 : 4096;
    while (a < b) {
        size_t wb = b - a > window ? a + ragd_utf8_complete_prefix(s + a, window) : b;
        if (wb <= a) wb = b;
        size_t t = tc->count(tc->ctx, s + a, wb - a);
        if (t <= budget) {
            size_t cut = wb == b ? b : soft_cut(s, a, wb);
            if (RAGD_VEC_PUSH(out, ((ragd_kb_span){a, cut, tc->count(tc->ctx, s + a, cut - a)})))
                return RAGD_ENOMEM;
            a = cut;
            continue;
        }
        /* estimate the byte length of `budget` tokens, then shrink until it fits */
        size_t guess = (size_t)((double)(wb - a) * (double)budget / (double)t);
        if (guess < 1) guess = 1;
        size_t cut = a + guess;
        for (;;) {
            cut = a + ragd_utf8_complete_prefix(s + a, cut - a);
            if (cut <= a) { /* at least one character */
                uint32_t cp;
                cut = a + (size_t)ragd_utf8_decode(s + a, b - a, &cp);
                break;
            }
            size_t c2 = soft_cut(s, a, cut);
            size_t tt = tc->count(tc->ctx, s + a, c2 - a);
            if (tt <= budget) {
                cut = c2;
                break;
            }
            cut = a + (cut - a) * 9 / 10;
        }
        size_t t2 = tc->count(tc->ctx, s + a, cut - a);
        if (RAGD_VEC_PUSH(out, ((ragd_kb_span){a, cut, t2}))) return RAGD_ENOMEM;
        a = cut;
    }
    return RAGD_OK;
}

int ragd_kb_chunk(const char *text, size_t len, int chunk_tokens, int overlap,
                  const ragd_kb_token_counter *tc, ragd_kb_span **spans, size_t *n, ragd_err *err) {
    *spans = NULL;
    *n = 0;
    if (!tc) tc = &ragd_kb_approx_tokens;
    if (chunk_tokens < 0 || overlap < 0 || (chunk_tokens > 0 && overlap >= chunk_tokens))
        return ragd_err_set(err, RAGD_EINVAL,
                            "--overlap (%d) must be smaller than --chunk-tokens (%d)", overlap,
                            chunk_tokens);
    span_vec out = {0};
    if (chunk_tokens == 0) {
        size_t a = 0, b = len;
        trim(text, &a, &b);
        if (a < b) {
            if (RAGD_VEC_PUSH(&out, ((ragd_kb_span){a, b, tc->count(tc->ctx, text + a, b - a)})))
                return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        }
        *spans = out.data;
        *n = out.len;
        return RAGD_OK;
    }
    /* 1. sentences (and pieces of over-long sentences) */
    span_vec pieces = {0};
    size_t start = 0;
    int rc = RAGD_OK;
    for (size_t i = 0; i <= len && !rc; i++) {
        size_t tl = i < len ? terminator(text, len, i) : 0;
        if (i < len && !tl) continue;
        size_t a = start, b = i < len ? i + tl : len;
        start = b;
        trim(text, &a, &b);
        if (a < b) rc = split_long(text, a, b, (size_t)chunk_tokens, tc, &pieces);
        if (tl) i += tl - 1;
    }
    /* 2. pack pieces greedily, repeating trailing pieces up to `overlap` tokens */
    size_t p = 0;
    while (!rc && p < pieces.len) {
        size_t q = p, tok = 0;
        while (q < pieces.len && (q == p || tok + pieces.data[q].tokens <= (size_t)chunk_tokens))
            tok += pieces.data[q++].tokens;
        ragd_kb_span ch = {pieces.data[p].start, pieces.data[q - 1].end, 0};
        ch.tokens = tc->count(tc->ctx, text + ch.start, ch.end - ch.start);
        if (RAGD_VEC_PUSH(&out, ch)) rc = RAGD_ENOMEM;
        if (q >= pieces.len) break;
        /* next chunk starts with the last pieces of this one that fit in the overlap */
        size_t back = q, ov = 0;
        while (back > p + 1 && ov + pieces.data[back - 1].tokens <= (size_t)overlap)
            ov += pieces.data[--back].tokens;
        p = back;
    }
    RAGD_VEC_FREE(&pieces);
    if (rc) {
        RAGD_VEC_FREE(&out);
        return ragd_err_set(err, RAGD_ENOMEM, "out of memory chunking");
    }
    *spans = out.data;
    *n = out.len;
    return RAGD_OK;
}
