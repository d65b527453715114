/* tokenizer.c - byte-level BPE (Hugging Face tokenizer.json), see tokenizer.h.
 *
 * Encode pipeline for one text (tokenizers semantics, split_special_tokens=false):
 *   1. added tokens with normalized=false are found in the raw text (leftmost-longest, with
 *      their lstrip/rstrip/single_word flags); they become ids directly;
 *   2. every other piece is NFC-normalised (skipped when a quick check proves it a no-op) and
 *      split again on added tokens with normalized=true;
 *   3. the pre-tokenizer regex (PCRE2 JIT) cuts the piece into words;
 *   4. each word's bytes become initial symbols (the ByteLevel alphabet maps each byte to one
 *      vocabulary entry) and are merged by rank with a binary heap over a linked list.
 * Decoding maps ids to their bytes (precomputed at load) and repairs invalid UTF-8 exactly as
 * Rust's String::from_utf8_lossy (one U+FFFD per maximal invalid subpart).
 */
#include "tokenizer/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <cjson/cJSON.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer/tokenizer_internal.h"
#include "util/vec.h"

/* ---------------------------------------------------------------------------------------- */
/* small hash helpers                                                                        */

static uint64_t hash_bytes(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

enum { SPLIT_ISOLATED, SPLIT_REMOVED };

static void nfc_init(void);

typedef struct added_token {
    char *content;
    size_t len;
    int32_t id;
    bool special, lstrip, rstrip, single_word, normalized;
} added_token;

/* Merge table slot, 8 bytes so the whole table stays small (cache): left id (20 bits),
 * right id (20 bits), rank (24 bits); MERGE_EMPTY marks a free slot. The merged id is
 * merge_id[rank]. */
#define MERGE_ID_BITS   20
#define MERGE_MAX_ID    ((1 << MERGE_ID_BITS) - 2)
#define MERGE_MAX_RANK  ((1u << 24) - 1)
#define MERGE_PAIR_MASK ((1ull << (2 * MERGE_ID_BITS)) - 1)
#define MERGE_EMPTY     UINT64_MAX
typedef uint64_t merge_slot;

struct ragd_tokenizer {
    int32_t n_ids;     /* max id + 1 */
    char **tok_str;    /* per id: vocabulary string (byte-level alphabet), NULL for gaps */
    uint32_t *tok_len; /* per id */
    uint8_t *flags;    /* per id: 1 = added, 2 = special */
    /* decoded bytes per id */
    char *dec;
    uint64_t *dec_off; /* n_ids + 1 offsets */
    /* string -> id */
    int32_t *vmap;
    size_t vmap_cap;
    /* merges */
    merge_slot *merges;
    int32_t *merge_id; /* per rank */
    size_t merges_cap;
    size_t n_merges;
    int32_t byte_id[256];
    uint32_t cp_of_byte[256]; /* ByteLevel alphabet */
    uint32_t *byte_pair_rank; /* [a << 8 | b]: rank of merging the symbols of bytes a, b */
    bool ignore_merges;
    /* added tokens, split into raw-text and normalized-text sets */
    added_token *added;
    size_t n_added;
    uint8_t first_raw[256], first_norm[256];
    bool any_norm_added;
    /* normalizer / pre-tokenizer */
    bool nfc;
    pcre2_code *re;
    int split_behavior;
    bool prefix_space;
    bool re_jit; /* JIT code available: use pcre2_jit_match (no per-call option checks) */
    /* tokenizer_config.json */
    int32_t eos, pad, bos;
    char *chat_template;
};

/* ---------------------------------------------------------------------------------------- */
/* ByteLevel alphabet (GPT-2): printable bytes map to themselves, the others to U+0100..     */

static void byte_level_table(uint32_t cp_of_byte[256]) {
    uint32_t n = 0;
    for (int b = 0; b < 256; b++) {
        bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        cp_of_byte[b] = keep ? (uint32_t)b : 256 + n++;
    }
}

/* Inverse: code point -> byte, -1 when the code point is not in the alphabet. The alphabet
 * lives in U+0000..U+0143, so a 324-entry table covers it. */
#define BYTE_LEVEL_CPS (256 + 68)
static void byte_level_inverse(const uint32_t cp_of_byte[256], int16_t inv[BYTE_LEVEL_CPS]) {
    for (int i = 0; i < BYTE_LEVEL_CPS; i++) inv[i] = -1;
    for (int b = 0; b < 256; b++) inv[cp_of_byte[b]] = (int16_t)b;
}

/* ---------------------------------------------------------------------------------------- */
/* UTF-8 steps with from_utf8_lossy semantics                                                */

int ragd_tok_utf8_step(const unsigned char *s, size_t n, size_t *len) {
    unsigned char b0 = s[0];
    if (b0 < 0x80) {
        *len = 1;
        return UTF8_VALID;
    }
    int need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        need = 1;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        need = 2;
        if (b0 == 0xE0) lo = 0xA0;
        if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        need = 3;
        if (b0 == 0xF0) lo = 0x90;
        if (b0 == 0xF4) hi = 0x8F;
    } else {
        *len = 1;
        return UTF8_INVALID;
    }
    for (int i = 1; i <= need; i++) {
        if ((size_t)i >= n) {
            *len = (size_t)i;
            return UTF8_INCOMPLETE;
        }
        unsigned char c = s[i];
        unsigned char l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (c < l || c > h) {
            *len = (size_t)i;
            return UTF8_INVALID;
        }
    }
    *len = (size_t)need + 1;
    return UTF8_VALID;
}

size_t ragd_tok_utf8_lossy(const char *s, size_t n, bool final, ragd_buf *out, int *rc) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0; /* run: start of pending valid bytes */
    *rc = RAGD_OK;
    while (i < n) {
        size_t k;
        int st = ragd_tok_utf8_step(u + i, n - i, &k);
        if (st == UTF8_VALID) {
            i += k;
            continue;
        }
        if (st == UTF8_INCOMPLETE && !final) break;
        if (ragd_buf_append(out, s + run, i - run) || ragd_buf_append(out, "\xEF\xBF\xBD", 3)) {
            *rc = RAGD_ENOMEM;
            return run;
        }
        i += k;
        run = i;
    }
    if (ragd_buf_append(out, s + run, i - run)) *rc = RAGD_ENOMEM;
    return i;
}

/* ---------------------------------------------------------------------------------------- */
/* vocabulary map                                                                            */

static int32_t vmap_find(const ragd_tokenizer *t, const char *s, size_t n) {
    if (!t->vmap) return -1;
    size_t mask = t->vmap_cap - 1, i = hash_bytes(s, n) & mask;
    for (;;) {
        int32_t id = t->vmap[i];
        if (id < 0) return -1;
        if (t->tok_len[id] == n && memcmp(t->tok_str[id], s, n) == 0) return id;
        i = (i + 1) & mask;
    }
}

static void vmap_insert(ragd_tokenizer *t, int32_t id) {
    size_t mask = t->vmap_cap - 1, i = hash_bytes(t->tok_str[id], t->tok_len[id]) & mask;
    while (t->vmap[i] >= 0) {
        int32_t o = t->vmap[i];
        if (t->tok_len[o] == t->tok_len[id] &&
            memcmp(t->tok_str[o], t->tok_str[id], t->tok_len[id]) == 0)
            return; /* duplicate string: keep the first id */
        i = (i + 1) & mask;
    }
    t->vmap[i] = id;
}

static inline uint64_t merge_pair(int32_t a, int32_t b) {
    return (uint64_t)(uint32_t)a | ((uint64_t)(uint32_t)b << MERGE_ID_BITS);
}

/* Rank of the merge (a, b), or -1. */
static inline int64_t merge_find(const ragd_tokenizer *t, int32_t a, int32_t b) {
    uint64_t pair = merge_pair(a, b);
    size_t mask = t->merges_cap - 1, i = hash_u64(pair) & mask;
    for (;;) {
        merge_slot s = t->merges[i];
        if ((s & MERGE_PAIR_MASK) == pair && s != MERGE_EMPTY)
            return (int64_t)(s >> (2 * MERGE_ID_BITS));
        if (s == MERGE_EMPTY) return -1;
        i = (i + 1) & mask;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* loading                                                                                   */

static bool json_bool(const cJSON *o, const char *k, bool dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return dflt;
}

static const char *json_str(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Oniguruma/Rust regex differ from PCRE2 in what \s means under Unicode: they use the
 * White_Space property, PCRE2 (UCP) adds U+180E. Spell the class out so both agree. */
#define WS_CLASS_ITEMS                                                                             \
    "\\t\\n\\x0B\\f\\r\\x20\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}"  \
    "\\x{205F}\\x{3000}"

static int translate_regex(const char *pat, ragd_buf *out) {
    bool in_class = false;
    for (size_t i = 0; pat[i]; i++) {
        char c = pat[i];
        if (c == '\\' && pat[i + 1]) {
            char e = pat[i + 1];
            int rc;
            if (e == 's' && in_class) {
                rc = ragd_buf_puts(out, WS_CLASS_ITEMS);
            } else if (e == 's') {
                rc = ragd_buf_puts(out, "[" WS_CLASS_ITEMS "]");
            } else if (e == 'S' && !in_class) {
                rc = ragd_buf_puts(out, "[^" WS_CLASS_ITEMS "]");
            } else {
                rc = ragd_buf_append(out, pat + i, 2);
            }
            if (rc) return rc;
            i++;
            continue;
        }
        if (c == '[' && !in_class) {
            in_class = true;
            if (ragd_buf_putc(out, c)) return RAGD_ENOMEM;
            /* a ']' right after '[' or '[^' is a literal */
            if (pat[i + 1] == '^') {
                if (ragd_buf_putc(out, '^')) return RAGD_ENOMEM;
                i++;
            }
            if (pat[i + 1] == ']') {
                if (ragd_buf_putc(out, ']')) return RAGD_ENOMEM;
                i++;
            }
            continue;
        }
        if (c == ']' && in_class) in_class = false;
        if (ragd_buf_putc(out, c)) return RAGD_ENOMEM;
    }
    return RAGD_OK;
}

static int compile_regex(ragd_tokenizer *t, const char *pat, ragd_err *err) {
    ragd_buf tr = {0};
    if (translate_regex(pat, &tr)) {
        ragd_buf_free(&tr);
        return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    }
    int ecode;
    PCRE2_SIZE eoff;
    t->re = pcre2_compile((PCRE2_SPTR)tr.data, tr.len, PCRE2_UTF | PCRE2_UCP, &ecode, &eoff, NULL);
    ragd_buf_free(&tr);
    if (!t->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ecode, msg, sizeof msg);
        return ragd_err_set(err, RAGD_EFORMAT, "pre-tokenizer regex /%s/ rejected by PCRE2: %s",
                            pat, (const char *)msg);
    }
    /* Without JIT (e.g. no executable memory) the interpreter gives the same results. */
    t->re_jit = pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE) == 0;
    return RAGD_OK;
}

static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static int load_pre_tokenizer(ragd_tokenizer *t, const cJSON *pt, ragd_err *err) {
    if (!cJSON_IsObject(pt))
        return ragd_err_set(err, RAGD_EUNSUPPORTED, "tokenizer.json: pre_tokenizer missing");
    const cJSON *list[8];
    size_t n = 0;
    const char *type = json_str(pt, "type");
    if (type && strcmp(type, "Sequence") == 0) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(pt, "pretokenizers");
        const cJSON *it;
        cJSON_ArrayForEach(it, arr) {
            if (n == 8) return ragd_err_set(err, RAGD_EUNSUPPORTED, "pre_tokenizer too long");
            list[n++] = it;
        }
    } else {
        list[n++] = pt;
    }
    bool byte_level = false;
    for (size_t i = 0; i < n; i++) {
        const char *ty = json_str(list[i], "type");
        if (!ty)
            return ragd_err_set(err, RAGD_EFORMAT, "tokenizer.json: pre_tokenizer without type");
        if (strcmp(ty, "Split") == 0) {
            if (t->re)
                return ragd_err_set(err, RAGD_EUNSUPPORTED, "more than one Split pre-tokenizer");
            const cJSON *pat = cJSON_GetObjectItemCaseSensitive(list[i], "pattern");
            const char *rx = json_str(pat, "Regex");
            const char *lit = json_str(pat, "String");
            if (!rx && !lit)
                return ragd_err_set(err, RAGD_EFORMAT, "Split pre-tokenizer without a pattern");
            const char *beh = json_str(list[i], "behavior");
            if (beh && strcmp(beh, "Isolated") == 0)
                t->split_behavior = SPLIT_ISOLATED;
            else if (beh && strcmp(beh, "Removed") == 0)
                t->split_behavior = SPLIT_REMOVED;
            else
                return ragd_err_set(err, RAGD_EUNSUPPORTED, "Split behavior '%s' not supported",
                                    beh ? beh : "(none)");
            if (json_bool(list[i], "invert", false))
                return ragd_err_set(err, RAGD_EUNSUPPORTED, "Split with invert=true not supported");
            if (rx) {
                int rc = compile_regex(t, rx, err);
                if (rc) return rc;
            } else {
                ragd_buf q = {0};
                if (ragd_buf_puts(&q, "\\Q") || ragd_buf_puts(&q, lit) ||
                    ragd_buf_puts(&q, "\\E")) {
                    ragd_buf_free(&q);
                    return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
                }
                int rc = compile_regex(t, q.data, err);
                ragd_buf_free(&q);
                if (rc) return rc;
            }
        } else if (strcmp(ty, "ByteLevel") == 0) {
            byte_level = true;
            t->prefix_space = json_bool(list[i], "add_prefix_space", false);
            if (json_bool(list[i], "use_regex", true)) {
                if (t->re)
                    return ragd_err_set(err, RAGD_EUNSUPPORTED,
                                        "ByteLevel(use_regex) after a Split is not supported");
                t->split_behavior = SPLIT_ISOLATED;
                int rc = compile_regex(t, GPT2_PATTERN, err);
                if (rc) return rc;
            }
        } else {
            return ragd_err_set(err, RAGD_EUNSUPPORTED, "pre-tokenizer type '%s' not supported",
                                ty);
        }
    }
    if (!byte_level)
        return ragd_err_set(err, RAGD_EUNSUPPORTED,
                            "only byte-level BPE tokenizers are supported (no ByteLevel "
                            "pre-tokenizer found)");
    return RAGD_OK;
}

static int load_normalizer(ragd_tokenizer *t, const cJSON *nm, ragd_err *err) {
    if (!nm || cJSON_IsNull(nm)) return RAGD_OK;
    const char *ty = json_str(nm, "type");
    if (!ty) return ragd_err_set(err, RAGD_EFORMAT, "tokenizer.json: normalizer without type");
    if (strcmp(ty, "NFC") == 0) {
        t->nfc = true;
        return RAGD_OK;
    }
    if (strcmp(ty, "Sequence") == 0) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(nm, "normalizers")) {
            int rc = load_normalizer(t, it, err);
            if (rc) return rc;
        }
        return RAGD_OK;
    }
    return ragd_err_set(err, RAGD_EUNSUPPORTED, "normalizer '%s' not supported", ty);
}

static int set_token(ragd_tokenizer *t, int32_t id, const char *s, size_t n) {
    if (t->tok_str[id]) {
        if (t->tok_len[id] == n && memcmp(t->tok_str[id], s, n) == 0) return RAGD_OK;
        return RAGD_EFORMAT;
    }
    t->tok_str[id] = malloc(n + 1);
    if (!t->tok_str[id]) return RAGD_ENOMEM;
    memcpy(t->tok_str[id], s, n);
    t->tok_str[id][n] = '\0';
    t->tok_len[id] = (uint32_t)n;
    return RAGD_OK;
}

static int load_merges(ragd_tokenizer *t, const cJSON *merges, ragd_err *err) {
    size_t n = (size_t)cJSON_GetArraySize(merges);
    if (n >= MERGE_MAX_RANK || t->n_ids > MERGE_MAX_ID)
        return ragd_err_set(err, RAGD_EUNSUPPORTED,
                            "tokenizer.json: %zu merges / %d ids is too large", n, t->n_ids);
    t->merges_cap = pow2_at_least(n + n / 4 + 16); /* load <= 0.8: 8-byte slots, few lines */
    t->merges = malloc(t->merges_cap * sizeof *t->merges);
    t->merge_id = malloc((n + 1) * sizeof *t->merge_id);
    if (!t->merges || !t->merge_id)
        return ragd_err_set(err, RAGD_ENOMEM, "out of memory for merges");
    for (size_t i = 0; i < t->merges_cap; i++) t->merges[i] = MERGE_EMPTY;
    ragd_buf cat = {0};
    uint32_t rank = 0;
    const cJSON *it;
    int rc = RAGD_OK;
    cJSON_ArrayForEach(it, merges) {
        const char *a, *b;
        size_t la, lb;
        if (cJSON_IsString(it)) {
            const char *s = it->valuestring, *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                rc = ragd_err_set(err, RAGD_EFORMAT, "tokenizer.json: bad merge \"%s\"", s);
                break;
            }
            a = s;
            la = (size_t)(sp - s);
            b = sp + 1;
            lb = strlen(b);
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
            a = cJSON_GetArrayItem(it, 0)->valuestring;
            b = cJSON_GetArrayItem(it, 1)->valuestring;
            la = strlen(a);
            lb = strlen(b);
        } else {
            rc = ragd_err_set(err, RAGD_EFORMAT,
                              "tokenizer.json: merge %u is neither \"a b\" nor [a,b]", rank);
            break;
        }
        int32_t ia = vmap_find(t, a, la), ib = vmap_find(t, b, lb);
        ragd_buf_clear(&cat);
        if (ragd_buf_append(&cat, a, la) || ragd_buf_append(&cat, b, lb)) {
            rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
            break;
        }
        int32_t ic = vmap_find(t, cat.data, cat.len);
        if (ia < 0 || ib < 0 || ic < 0) {
            rc = ragd_err_set(err, RAGD_EFORMAT,
                              "tokenizer.json: merge %u (%.*s %.*s) uses a token "
                              "missing from the vocabulary",
                              rank, (int)la, a, (int)lb, b);
            break;
        }
        uint64_t pair = merge_pair(ia, ib);
        size_t mask = t->merges_cap - 1, j = hash_u64(pair) & mask;
        while (t->merges[j] != MERGE_EMPTY && (t->merges[j] & MERGE_PAIR_MASK) != pair)
            j = (j + 1) & mask;
        t->merge_id[rank] = ic;
        if (t->merges[j] == MERGE_EMPTY) { /* the first (lowest rank) occurrence wins */
            t->merges[j] = pair | ((uint64_t)rank << (2 * MERGE_ID_BITS));
            t->n_merges++;
        }
        rank++;
    }
    ragd_buf_free(&cat);
    return rc;
}

static int load_added(ragd_tokenizer *t, const cJSON *arr, ragd_err *err) {
    size_t n = (size_t)cJSON_GetArraySize(arr);
    t->added = calloc(n ? n : 1, sizeof *t->added);
    if (!t->added) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        const char *content = json_str(it, "content");
        const cJSON *idj = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (!content || !cJSON_IsNumber(idj) || idj->valuedouble < 0 ||
            idj->valuedouble >= t->n_ids)
            return ragd_err_set(err, RAGD_EFORMAT, "tokenizer.json: bad added_tokens entry");
        if (!*content) continue;
        added_token *a = &t->added[t->n_added++];
        a->len = strlen(content);
        a->content = strdup(content);
        if (!a->content) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        a->id = (int32_t)idj->valuedouble;
        a->special = json_bool(it, "special", false);
        a->lstrip = json_bool(it, "lstrip", false);
        a->rstrip = json_bool(it, "rstrip", false);
        a->single_word = json_bool(it, "single_word", false);
        a->normalized = json_bool(it, "normalized", !a->special);
        unsigned char f = (unsigned char)content[0];
        if (a->normalized) {
            t->first_norm[f] = 1;
            t->any_norm_added = true;
        } else {
            t->first_raw[f] = 1;
        }
        int rc = set_token(t, a->id, content, a->len);
        if (rc == RAGD_ENOMEM) return ragd_err_set(err, rc, "out of memory");
        t->flags[a->id] |= 1 | (a->special ? 2 : 0);
    }
    return RAGD_OK;
}

static int build_decode_table(ragd_tokenizer *t, ragd_err *err) {
    uint32_t *cp_of_byte = t->cp_of_byte;
    int16_t inv[BYTE_LEVEL_CPS];
    byte_level_table(cp_of_byte);
    byte_level_inverse(cp_of_byte, inv);
    size_t total = 0;
    for (int32_t i = 0; i < t->n_ids; i++) total += t->tok_str[i] ? t->tok_len[i] : 0;
    t->dec = malloc(total + 1);
    t->dec_off = malloc(((size_t)t->n_ids + 1) * sizeof *t->dec_off);
    if (!t->dec || !t->dec_off) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    size_t o = 0;
    for (int32_t i = 0; i < t->n_ids; i++) {
        t->dec_off[i] = o;
        const char *s = t->tok_str[i];
        if (!s) continue;
        size_t n = t->tok_len[i], j = 0, start = o;
        bool ok = true;
        while (j < n) {
            uint32_t cp;
            int k = ragd_utf8_decode(s + j, n - j, &cp);
            int b = cp < BYTE_LEVEL_CPS ? inv[cp] : -1;
            if (b < 0) {
                ok = false;
                break;
            }
            t->dec[o++] = (char)b;
            j += (size_t)k;
        }
        if (!ok) { /* not in the alphabet: the token's own UTF-8 bytes (ByteLevel decoder) */
            o = start;
            memcpy(t->dec + o, s, n);
            o += n;
        }
    }
    t->dec_off[t->n_ids] = o;
    for (int b = 0; b < 256; b++) {
        char u[4];
        int k = ragd_utf8_encode(cp_of_byte[b], u);
        t->byte_id[b] = vmap_find(t, u, (size_t)k);
    }
    return RAGD_OK;
}

static int32_t config_token(const ragd_tokenizer *t, const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    const char *s = NULL;
    if (cJSON_IsString(v))
        s = v->valuestring;
    else if (cJSON_IsObject(v))
        s = json_str(v, "content");
    return s ? ragd_tokenizer_token_id(t, s) : -1;
}

static int load_config(ragd_tokenizer *t, const char *dir, ragd_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    if (!ragd_file_exists(path)) return RAGD_OK;
    char *text = NULL;
    int rc = ragd_read_file(path, &text, NULL, err);
    if (rc) return rc;
    cJSON *cfg = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        return ragd_err_set(err, RAGD_EFORMAT, "%s: not a JSON object", path);
    }
    t->eos = config_token(t, cfg, "eos_token");
    t->pad = config_token(t, cfg, "pad_token");
    t->bos = config_token(t, cfg, "bos_token");
    const char *ct = json_str(cfg, "chat_template");
    if (!ct) { /* some files carry a list of named templates: take "default" */
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(cfg, "chat_template")) {
            const char *name = json_str(it, "name");
            if (name && strcmp(name, "default") == 0) ct = json_str(it, "template");
        }
    }
    if (ct && !(t->chat_template = strdup(ct)))
        rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    cJSON_Delete(cfg);
    return rc;
}

static int load_json(ragd_tokenizer *t, const cJSON *root, ragd_err *err) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const char *mtype = json_str(model, "type");
    if (!cJSON_IsObject(model) || (mtype && strcmp(mtype, "BPE") != 0))
        return ragd_err_set(err, RAGD_EUNSUPPORTED, "tokenizer model '%s' not supported (BPE only)",
                            mtype ? mtype : "(missing)");
    if (json_bool(model, "byte_fallback", false))
        return ragd_err_set(err, RAGD_EUNSUPPORTED, "BPE byte_fallback not supported");
    const char *csp = json_str(model, "continuing_subword_prefix");
    const char *eow = json_str(model, "end_of_word_suffix");
    if ((csp && *csp) || (eow && *eow))
        return ragd_err_set(err, RAGD_EUNSUPPORTED, "BPE subword prefix/suffix not supported");
    const cJSON *drop = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (cJSON_IsNumber(drop) && drop->valuedouble > 0)
        return ragd_err_set(err, RAGD_EUNSUPPORTED, "BPE dropout not supported");
    t->ignore_merges = json_bool(model, "ignore_merges", false);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges))
        return ragd_err_set(err, RAGD_EFORMAT, "tokenizer.json: model.vocab/model.merges missing");
    /* id space */
    double max_id = -1;
    const cJSON *it;
    size_t n_vocab = 0;
    cJSON_ArrayForEach(it, vocab) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > 1e8 || !it->string)
            return ragd_err_set(err, RAGD_EFORMAT, "tokenizer.json: bad vocab entry");
        if (it->valuedouble > max_id) max_id = it->valuedouble;
        n_vocab++;
    }
    cJSON_ArrayForEach(it, added) {
        const cJSON *idj = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (cJSON_IsNumber(idj) && idj->valuedouble <= 1e8 && idj->valuedouble > max_id)
            max_id = idj->valuedouble;
    }
    if (max_id >= MERGE_MAX_ID) /* also bounds what a corrupt file can make us allocate */
        return ragd_err_set(err, RAGD_EUNSUPPORTED,
                            "tokenizer.json: token id %.0f too large (limit %d)", max_id,
                            MERGE_MAX_ID - 1);
    t->n_ids = (int32_t)max_id + 1;
    t->tok_str = calloc((size_t)t->n_ids + 1, sizeof *t->tok_str);
    t->tok_len = calloc((size_t)t->n_ids + 1, sizeof *t->tok_len);
    t->flags = calloc((size_t)t->n_ids + 1, 1);
    t->vmap_cap = pow2_at_least(((size_t)t->n_ids + 32) * 2);
    t->vmap = malloc(t->vmap_cap * sizeof *t->vmap);
    if (!t->tok_str || !t->tok_len || !t->flags || !t->vmap)
        return ragd_err_set(err, RAGD_ENOMEM, "out of memory for the vocabulary");
    memset(t->vmap, 0xff, t->vmap_cap * sizeof *t->vmap);
    cJSON_ArrayForEach(it, vocab) {
        int32_t id = (int32_t)it->valuedouble;
        int rc = set_token(t, id, it->string, strlen(it->string));
        if (rc == RAGD_ENOMEM) return ragd_err_set(err, rc, "out of memory");
        if (rc) return ragd_err_set(err, rc, "tokenizer.json: id %d used twice in the vocab", id);
    }
    int rc = load_added(t, added, err);
    if (rc) return rc;
    for (int32_t i = 0; i < t->n_ids; i++)
        if (t->tok_str[i]) vmap_insert(t, i);
    if ((rc = load_merges(t, merges, err))) return rc;
    if ((rc = load_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), err)))
        return rc;
    if ((rc = load_pre_tokenizer(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), err)))
        return rc;
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    const char *dty = json_str(dec, "type");
    if (dty && strcmp(dty, "ByteLevel") != 0)
        return ragd_err_set(err, RAGD_EUNSUPPORTED, "decoder '%s' not supported (ByteLevel only)",
                            dty);
    if ((rc = build_decode_table(t, err))) return rc;
    for (int b = 0; b < 256; b++)
        if (t->byte_id[b] < 0)
            return ragd_err_set(
                err, RAGD_EFORMAT,
                "tokenizer.json: vocabulary lacks the ByteLevel symbol of byte 0x%02x", b);
    t->byte_pair_rank = malloc(65536 * sizeof *t->byte_pair_rank);
    if (!t->byte_pair_rank) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    for (int a = 0; a < 256; a++)
        for (int b = 0; b < 256; b++) {
            int64_t r = merge_find(t, t->byte_id[a], t->byte_id[b]);
            t->byte_pair_rank[a << 8 | b] = r < 0 ? UINT32_MAX : (uint32_t)r;
        }
    return RAGD_OK;
}

int ragd_tokenizer_load_json(const char *json, size_t len, ragd_tokenizer **out, ragd_err *err) {
    *out = NULL;
    nfc_init();
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return ragd_err_set(err, RAGD_EFORMAT, "tokenizer.json is not valid JSON");
    }
    ragd_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        cJSON_Delete(root);
        return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    }
    t->eos = t->pad = t->bos = -1;
    int rc = load_json(t, root, err);
    cJSON_Delete(root);
    if (rc) {
        ragd_tokenizer_destroy(t);
        return rc;
    }
    *out = t;
    return RAGD_OK;
}

int ragd_tokenizer_load(const char *model_dir, ragd_tokenizer **out, ragd_err *err) {
    *out = NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", model_dir);
    char *text = NULL;
    size_t len = 0;
    int rc = ragd_read_file(path, &text, &len, err);
    if (rc) return rc;
    rc = ragd_tokenizer_load_json(text, len, out, err);
    free(text);
    if (rc) return ragd_err_prefix(err, "%s", path);
    rc = load_config(*out, model_dir, err);
    if (rc) {
        ragd_tokenizer_destroy(*out);
        *out = NULL;
    }
    return rc;
}

void ragd_tokenizer_destroy(ragd_tokenizer *t) {
    if (!t) return;
    if (t->tok_str)
        for (int32_t i = 0; i < t->n_ids; i++) free(t->tok_str[i]);
    free(t->tok_str);
    free(t->tok_len);
    free(t->flags);
    free(t->dec);
    free(t->dec_off);
    free(t->vmap);
    free(t->merges);
    free(t->merge_id);
    free(t->byte_pair_rank);
    for (size_t i = 0; i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    if (t->re) pcre2_code_free(t->re);
    free(t->chat_template);
    free(t);
}

/* ---------------------------------------------------------------------------------------- */
/* accessors                                                                                 */

int ragd_tokenizer_vocab_size(const ragd_tokenizer *t) {
    return t->n_ids;
}

int32_t ragd_tokenizer_token_id(const ragd_tokenizer *t, const char *token) {
    size_t n = strlen(token);
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == n && memcmp(t->added[i].content, token, n) == 0)
            return t->added[i].id;
    return vmap_find(t, token, n);
}

bool ragd_tokenizer_is_special(const ragd_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_ids && (t->flags[id] & 2);
}

int32_t ragd_tokenizer_eos_id(const ragd_tokenizer *t) {
    return t->eos;
}
int32_t ragd_tokenizer_pad_id(const ragd_tokenizer *t) {
    return t->pad;
}
int32_t ragd_tokenizer_bos_id(const ragd_tokenizer *t) {
    return t->bos;
}
const char *ragd_tokenizer_chat_template(const ragd_tokenizer *t) {
    return t->chat_template;
}

const char *ragd_tokenizer_token_bytes(const ragd_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_ids || !t->tok_str[id]) {
        *len = 0;
        return NULL;
    }
    *len = (size_t)(t->dec_off[id + 1] - t->dec_off[id]);
    return t->dec + t->dec_off[id];
}

/* ---------------------------------------------------------------------------------------- */
/* encoding                                                                                  */

typedef RAGD_VEC(int32_t) ivec;

typedef struct sym {
    int32_t id, prev, next;
} sym;

typedef struct hent {
    uint32_t rank;
    int32_t pos, left, right, merged;
} hent;

typedef struct enc_ctx {
    const ragd_tokenizer *t;
    ivec *out;
    RAGD_VEC(sym) syms;
    RAGD_VEC(hent) heap;
    ragd_buf tmp;
    pcre2_match_data *md;
    pcre2_jit_stack *jstack;
    pcre2_match_context *mctx;
} enc_ctx;

static bool hless(const hent *a, const hent *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(enc_ctx *c, hent e) {
    hent *h = c->heap.data;
    size_t i = c->heap.len++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!hless(&e, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static hent heap_pop(enc_ctx *c) {
    hent *h = c->heap.data, top = h[0], last = h[--c->heap.len];
    size_t n = c->heap.len, i = 0;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= n) break;
        size_t m = (l + 1 < n && hless(&h[l + 1], &h[l])) ? l + 1 : l;
        if (!hless(&h[m], &last)) break;
        h[i] = h[m];
        i = m;
    }
    if (n) h[i] = last;
    return top;
}

static inline uint32_t pair_rank(enc_ctx *c, int32_t a, int32_t b);

static void try_pair(enc_ctx *c, int32_t pos) {
    sym *s = c->syms.data;
    int32_t nx = s[pos].next;
    if (nx < 0) return;
    uint32_t r = pair_rank(c, s[pos].id, s[nx].id);
    if (r != UINT32_MAX) heap_push(c, (hent){r, pos, s[pos].id, s[nx].id, c->t->merge_id[r]});
}

/* Short words: a linear scan for the lowest-rank pair beats heap bookkeeping. Same order
 * as the heap (lowest rank, then leftmost). */
#define SMALL_WORD 48

static inline uint32_t pair_rank(enc_ctx *c, int32_t a, int32_t b) {
    int64_t r = merge_find(c->t, a, b);
    return r < 0 ? UINT32_MAX : (uint32_t)r;
}

static int bpe_small(enc_ctx *c, const unsigned char *w, size_t n) {
    const ragd_tokenizer *t = c->t;
    int32_t ids[SMALL_WORD];
    uint32_t rk[SMALL_WORD];
    size_t m = n;
    for (size_t i = 0; i < n; i++) ids[i] = t->byte_id[w[i]];
    for (size_t i = 0; i + 1 < m; i++) rk[i] = t->byte_pair_rank[(size_t)w[i] << 8 | w[i + 1]];
    for (;;) {
        uint32_t best = UINT32_MAX;
        size_t bi = 0;
        for (size_t i = 0; i + 1 < m; i++)
            if (rk[i] < best) {
                best = rk[i];
                bi = i;
            }
        if (best == UINT32_MAX) break;
        ids[bi] = t->merge_id[best];
        memmove(&ids[bi + 1], &ids[bi + 2], (m - bi - 2) * sizeof ids[0]);
        memmove(&rk[bi], &rk[bi + 1], (m - bi - 2) * sizeof rk[0]);
        m--;
        if (bi > 0) rk[bi - 1] = pair_rank(c, ids[bi - 1], ids[bi]);
        if (bi + 1 < m) rk[bi] = pair_rank(c, ids[bi], ids[bi + 1]);
    }
    if (RAGD_VEC_RESERVE(c->out, c->out->len + m)) return RAGD_ENOMEM;
    memcpy(c->out->data + c->out->len, ids, m * sizeof ids[0]);
    c->out->len += m;
    return RAGD_OK;
}

/* BPE over the bytes of one pre-tokenized word. */
static int bpe_word(enc_ctx *c, const unsigned char *w, size_t n) {
    const ragd_tokenizer *t = c->t;
    if (n == 0) return RAGD_OK;
    if (n == 1) return RAGD_VEC_PUSH(c->out, t->byte_id[w[0]]);
    if (t->ignore_merges) { /* whole word in the vocabulary: take it as is */
        ragd_buf_clear(&c->tmp);
        for (size_t i = 0; i < n; i++) {
            char u[4];
            int k = ragd_utf8_encode(t->cp_of_byte[w[i]], u);
            if (ragd_buf_append(&c->tmp, u, (size_t)k)) return RAGD_ENOMEM;
        }
        int32_t id = vmap_find(t, c->tmp.data, c->tmp.len);
        if (id >= 0) return RAGD_VEC_PUSH(c->out, id);
    }
    if (n <= SMALL_WORD) return bpe_small(c, w, n);
    if (RAGD_VEC_RESERVE(&c->syms, n) || RAGD_VEC_RESERVE(&c->heap, 2 * n + 2)) return RAGD_ENOMEM;
    sym *s = c->syms.data;
    for (size_t i = 0; i < n; i++)
        s[i] = (sym){t->byte_id[w[i]], (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1};
    c->heap.len = 0;
    for (size_t i = 0; i + 1 < n; i++) try_pair(c, (int32_t)i);
    while (c->heap.len) {
        hent e = heap_pop(c);
        sym *a = &s[e.pos];
        if (a->id != e.left || a->next < 0) continue;
        sym *b = &s[a->next];
        if (b->id != e.right) continue;
        a->id = e.merged;
        int32_t dead = a->next;
        a->next = b->next;
        if (a->next >= 0) s[a->next].prev = e.pos;
        s[dead].id = -1;
        s[dead].next = s[dead].prev = -1;
        /* each merge adds at most 2 heap entries; capacity 2n+2 stays enough because
           every pop removes one and there are at most n-1 merges */
        if (c->heap.len + 2 > c->heap.cap && RAGD_VEC_RESERVE(&c->heap, c->heap.len + 2))
            return RAGD_ENOMEM;
        if (a->prev >= 0) try_pair(c, a->prev);
        try_pair(c, e.pos);
    }
    if (RAGD_VEC_RESERVE(c->out, c->out->len + n)) return RAGD_ENOMEM;
    for (int32_t i = 0; i >= 0; i = s[i].next) c->out->data[c->out->len++] = s[i].id;
    return RAGD_OK;
}

static int word(enc_ctx *c, const char *w, size_t n) {
    if (c->t->prefix_space && n && w[0] != ' ') {
        ragd_buf tmp = {0};
        int rc = ragd_buf_putc(&tmp, ' ') || ragd_buf_append(&tmp, w, n) ? RAGD_ENOMEM : 0;
        if (!rc) rc = bpe_word(c, (const unsigned char *)tmp.data, tmp.len);
        ragd_buf_free(&tmp);
        return rc;
    }
    return bpe_word(c, (const unsigned char *)w, n);
}

static int pretokenize(enc_ctx *c, const char *s, size_t n, ragd_err *err) {
    const ragd_tokenizer *t = c->t;
    if (!t->re) return word(c, s, n);
    size_t pos = 0, last = 0;
    while (pos <= n) {
        int rc = t->re_jit ? pcre2_jit_match(t->re, (PCRE2_SPTR)s, n, pos, 0, c->md, c->mctx)
                           : pcre2_match(t->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, c->md,
                                         c->mctx);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !c->jstack) {
            c->jstack = pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, NULL);
            c->mctx = pcre2_match_context_create(NULL);
            if (!c->jstack || !c->mctx) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
            pcre2_jit_stack_assign(c->mctx, NULL, c->jstack);
            continue;
        }
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return ragd_err_set(err, RAGD_EINTERNAL, "pre-tokenizer regex failed: %s",
                                (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) { /* empty match: step one character */
            if (ms >= n) break;
            size_t k;
            ragd_tok_utf8_step((const unsigned char *)s + ms, n - ms, &k);
            pos = ms + k;
            continue;
        }
        if (ms > last && (rc = word(c, s + last, ms - last))) return rc;
        if (t->split_behavior == SPLIT_ISOLATED && (rc = word(c, s + ms, me - ms))) return rc;
        last = pos = me;
    }
    if (last < n) return word(c, s + last, n - last);
    return RAGD_OK;
}

/* NFC quick check. A code point >= U+0300 is "unsafe" when NFC could change text containing
 * it: it has a non-zero combining class (reordering), it is not NFC-stable on its own
 * (singletons, exclusions, non-starter decompositions), it is the second element of a
 * canonical composition (checked via the last element of every canonical decomposition),
 * or it is a conjoining Hangul jamo. Text without unsafe code points is already NFC. The
 * bitmap is built once per process from utf8proc's tables (immutable afterwards). */
static uint8_t nfc_unsafe[0x110000 / 8];
static pthread_once_t nfc_once = PTHREAD_ONCE_INIT;

static void nfc_mark(uint32_t cp) {
    if (cp < 0x110000) nfc_unsafe[cp >> 3] |= (uint8_t)(1u << (cp & 7));
}

static void nfc_build(void) {
    for (uint32_t cp = 0x300; cp < 0x110000; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)cp);
        if (p->combining_class || (cp >= 0x1100 && cp <= 0x11FF)) nfc_mark(cp);
        if (p->decomp_seqindex == UINT16_MAX || p->decomp_type != 0) continue;
        utf8proc_int32_t d[8];
        int last = 0;
        utf8proc_ssize_t n =
            utf8proc_decompose_char((utf8proc_int32_t)cp, d, 8, UTF8PROC_DECOMPOSE, &last);
        if (n >= 2 && n <= 8) nfc_mark((uint32_t)d[n - 1]);
        char u[5] = {0};
        int k = ragd_utf8_encode(cp, u);
        char *nfc = (char *)utf8proc_NFC((const utf8proc_uint8_t *)u);
        if (!nfc || strlen(nfc) != (size_t)k || memcmp(nfc, u, (size_t)k) != 0) nfc_mark(cp);
        free(nfc);
    }
}

static void nfc_init(void) {
    pthread_once(&nfc_once, nfc_build);
}

static bool nfc_quick_yes(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (u[i] < 0xCC) { /* < U+0300 (lead bytes up to 0xCB) */
            i += u[i] < 0x80 ? 1 : 2;
            continue;
        }
        uint32_t cp;
        int k = ragd_utf8_decode(s + i, n - i, &cp);
        i += (size_t)k;
        if (nfc_unsafe[cp >> 3] & (1u << (cp & 7))) return false;
    }
    return true;
}

/* Added-token matching, leftmost-longest, with lstrip/rstrip/single_word (tokenizers'
 * AddedVocabulary::find_matches). Calls piece() for the text between tokens. */
/* Rust regex \w: letters, marks, decimal digits, letter numbers, connector punctuation,
 * joiners. */
static bool is_word_cp(uint32_t cp) {
    if (cp == 0x200C || cp == 0x200D) return true;
    int cat = utf8proc_category((utf8proc_int32_t)cp);
    return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_ND) ||
           cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_PC;
}

static bool ends_with_word(const char *s, size_t n) {
    if (!n) return false;
    size_t i = n - 1;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
    uint32_t cp;
    ragd_utf8_decode(s + i, n - i, &cp);
    return is_word_cp(cp);
}

static bool starts_with_word(const char *s, size_t n) {
    if (!n) return false;
    uint32_t cp;
    ragd_utf8_decode(s, n, &cp);
    return is_word_cp(cp);
}

static bool is_ws_cp(uint32_t cp) {
    return (cp >= 9 && cp <= 13) || cp == ' ' || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

typedef int (*piece_fn)(enc_ctx *c, const char *s, size_t n, ragd_err *err);

static int split_added(enc_ctx *c, const char *s, size_t n, bool normalized, piece_fn piece,
                       ragd_err *err) {
    const ragd_tokenizer *t = c->t;
    const uint8_t *first = normalized ? t->first_norm : t->first_raw;
    size_t start_off = 0, i = 0;
    int rc;
    while (i < n) {
        if (!first[(unsigned char)s[i]]) {
            i++;
            continue;
        }
        const added_token *best = NULL;
        for (size_t k = 0; k < t->n_added; k++) {
            const added_token *a = &t->added[k];
            if (a->normalized != normalized || a->len > n - i || (best && a->len <= best->len))
                continue;
            if (memcmp(s + i, a->content, a->len) == 0) best = a;
        }
        if (!best) {
            i++;
            continue;
        }
        size_t ms = i, me = i + best->len;
        if (best->single_word &&
            ((ms > 0 && ends_with_word(s, ms)) || (me < n && starts_with_word(s + me, n - me)))) {
            i = me; /* a discarded match still consumes its span (non-overlapping search) */
            continue;
        }
        if (best->lstrip) {
            size_t j = ms;
            while (j > start_off) {
                size_t b = j - 1;
                while (b > 0 && ((unsigned char)s[b] & 0xC0) == 0x80) b--;
                uint32_t cp;
                ragd_utf8_decode(s + b, j - b, &cp);
                if (!is_ws_cp(cp)) break;
                j = b;
            }
            ms = j;
        }
        if (best->rstrip) {
            while (me < n) {
                uint32_t cp;
                int k = ragd_utf8_decode(s + me, n - me, &cp);
                if (!is_ws_cp(cp)) break;
                me += (size_t)k;
            }
        }
        if (ms > start_off && (rc = piece(c, s + start_off, ms - start_off, err))) return rc;
        if ((rc = RAGD_VEC_PUSH(c->out, best->id))) return rc;
        start_off = i = me;
    }
    if (start_off < n) return piece(c, s + start_off, n - start_off, err);
    return RAGD_OK;
}

static int normalized_piece(enc_ctx *c, const char *s, size_t n, ragd_err *err) {
    return pretokenize(c, s, n, err);
}

static int raw_piece(enc_ctx *c, const char *s, size_t n, ragd_err *err) {
    const ragd_tokenizer *t = c->t;
    char *norm = NULL;
    if (t->nfc && !nfc_quick_yes(s, n)) {
        ragd_buf tmp = {0};
        if (ragd_buf_append(&tmp, s, n)) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        norm = (char *)utf8proc_NFC((const utf8proc_uint8_t *)tmp.data);
        ragd_buf_free(&tmp);
        if (!norm) return ragd_err_set(err, RAGD_ENOMEM, "NFC normalisation failed");
        s = norm;
        n = strlen(norm);
    }
    int rc = t->any_norm_added ? split_added(c, s, n, true, normalized_piece, err)
                               : pretokenize(c, s, n, err);
    free(norm);
    return rc;
}

int ragd_tokenizer_encode(const ragd_tokenizer *t, const char *text, size_t len, int32_t **ids,
                          size_t *n_ids, ragd_err *err) {
    *ids = NULL;
    *n_ids = 0;
    if (!ragd_utf8_valid(text, len) || memchr(text, 0, len))
        return ragd_err_set(err, RAGD_EINVAL, "text is not valid UTF-8 (or contains NUL bytes)");
    ivec out = {0};
    enc_ctx c = {.t = t, .out = &out};
    int rc = RAGD_OK;
    if (t->re && !(c.md = pcre2_match_data_create_from_pattern(t->re, NULL)))
        rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    if (!rc) rc = split_added(&c, text, len, false, raw_piece, err);
    if (rc == RAGD_ENOMEM && (!err || err->code != RAGD_ENOMEM))
        ragd_err_set(err, RAGD_ENOMEM, "out of memory while encoding");
    if (c.md) pcre2_match_data_free(c.md);
    if (c.mctx) pcre2_match_context_free(c.mctx);
    if (c.jstack) pcre2_jit_stack_free(c.jstack);
    RAGD_VEC_FREE(&c.syms);
    RAGD_VEC_FREE(&c.heap);
    ragd_buf_free(&c.tmp);
    if (rc) {
        RAGD_VEC_FREE(&out);
        return rc;
    }
    if (!out.data && !(out.data = malloc(sizeof(int32_t))))
        return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    *ids = out.data;
    *n_ids = out.len;
    return RAGD_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* decoding                                                                                  */

/* lenient: ids the tokenizer has no string for (a model's padded vocabulary rows, e.g.
 * Qwen2.5's 152,064 logits over 151,665 tokens) decode to nothing, as in transformers, instead
 * of failing - a sampler can pick them. Negative ids are always an error. */
static int gather(const ragd_tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
                  bool lenient, ragd_buf *raw, ragd_err *err) {
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (lenient && id >= 0 && (id >= t->n_ids || !t->tok_str[id])) continue;
        if (id < 0 || id >= t->n_ids || !t->tok_str[id])
            return ragd_err_set(err, RAGD_EINVAL, "token id %d out of range (vocabulary %d)", id,
                                t->n_ids);
        if (skip_special && (t->flags[id] & 2)) continue;
        if (ragd_buf_append(raw, t->dec + t->dec_off[id],
                            (size_t)(t->dec_off[id + 1] - t->dec_off[id])))
            return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    }
    return RAGD_OK;
}

int ragd_tokenizer_decode(const ragd_tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
                          ragd_buf *out, ragd_err *err) {
    ragd_buf raw = {0};
    int rc = gather(t, ids, n, skip_special, false, &raw, err);
    if (!rc) {
        ragd_tok_utf8_lossy(raw.data ? raw.data : "", raw.len, true, out, &rc);
        if (rc)
            ragd_err_set(err, rc, "out of memory");
        else if (!out->data && ragd_buf_reserve(out, 0) == RAGD_OK)
            out->data[0] = '\0';
    }
    ragd_buf_free(&raw);
    return rc;
}

void ragd_detok_init(ragd_detok *d, const ragd_tokenizer *tok, bool skip_special) {
    d->tok = tok;
    d->skip_special = skip_special;
    d->pending = (ragd_buf){0};
}

int ragd_detok_push(ragd_detok *d, int32_t id, ragd_buf *out, ragd_err *err) {
    int rc = gather(d->tok, &id, 1, d->skip_special, true, &d->pending, err);
    if (rc) return rc;
    size_t used = ragd_tok_utf8_lossy(d->pending.data ? d->pending.data : "", d->pending.len, false,
                                      out, &rc);
    if (rc) return ragd_err_set(err, rc, "out of memory");
    size_t left = d->pending.len - used;
    if (left) memmove(d->pending.data, d->pending.data + used, left);
    d->pending.len = left;
    if (d->pending.data) d->pending.data[left] = '\0';
    return RAGD_OK;
}

int ragd_detok_flush(ragd_detok *d, ragd_buf *out) {
    int rc = RAGD_OK;
    if (d->pending.len) ragd_tok_utf8_lossy(d->pending.data, d->pending.len, true, out, &rc);
    ragd_buf_clear(&d->pending);
    return rc;
}

void ragd_detok_free(ragd_detok *d) {
    ragd_buf_free(&d->pending);
}
