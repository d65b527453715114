/* wordpiece.c - BERT basic tokenizer + WordPiece (see wordpiece.h). */
#include "tokenizer/wordpiece.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <utf8proc.h>

#include "util/str.h"
#include "util/vec.h"

#define WP_MAX_ADDED 64

typedef struct wp_added {
    char *content;
    size_t len;
    int32_t id;
} wp_added;

struct ragd_wordpiece {
    char **tokens; /* id -> token (NULL for holes) */
    size_t *token_len;
    int32_t n_tokens;
    int32_t *table; /* open addressing: token ids, -1 empty */
    size_t table_mask;
    wp_added added[WP_MAX_ADDED];
    int n_added;
    bool added_first[256]; /* first bytes of added tokens */
    char prefix[16];       /* continuing subword prefix, "##" */
    size_t prefix_len;
    ragd_wordpiece_info info;
};

/* ---------------------------------------------------------------------------------------- */
/* vocabulary hash map                                                                        */

static uint64_t wp_hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

int32_t ragd_wordpiece_token_id(const ragd_wordpiece *wp, const char *token, size_t len) {
    size_t i = (size_t)wp_hash(token, len) & wp->table_mask;
    for (;;) {
        int32_t id = wp->table[i];
        if (id < 0) return -1;
        if (wp->token_len[id] == len && memcmp(wp->tokens[id], token, len) == 0) return id;
        i = (i + 1) & wp->table_mask;
    }
}

static int wp_set_token(ragd_wordpiece *wp, int32_t id, const char *tok, size_t len,
                        ragd_err *err) {
    if (id < 0 || id >= wp->n_tokens)
        return ragd_err_set(err, RAGD_EFORMAT, "token id %d out of range", (int)id);
    if (wp->tokens[id]) return RAGD_OK; /* duplicate id: keep the first */
    wp->tokens[id] = malloc(len + 1);
    if (!wp->tokens[id]) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    memcpy(wp->tokens[id], tok, len);
    wp->tokens[id][len] = '\0';
    wp->token_len[id] = len;
    return RAGD_OK;
}

static int wp_build_table(ragd_wordpiece *wp, ragd_err *err) {
    size_t cap = 16;
    while (cap < (size_t)wp->n_tokens * 2) cap <<= 1;
    wp->table = malloc(cap * sizeof *wp->table);
    if (!wp->table) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    memset(wp->table, 0xff, cap * sizeof *wp->table);
    wp->table_mask = cap - 1;
    for (int32_t id = 0; id < wp->n_tokens; id++) {
        if (!wp->tokens[id]) continue;
        if (ragd_wordpiece_token_id(wp, wp->tokens[id], wp->token_len[id]) >= 0) continue;
        size_t i = (size_t)wp_hash(wp->tokens[id], wp->token_len[id]) & wp->table_mask;
        while (wp->table[i] >= 0) i = (i + 1) & wp->table_mask;
        wp->table[i] = id;
    }
    return RAGD_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* loading                                                                                    */

static int wp_alloc_vocab(ragd_wordpiece *wp, int32_t n, ragd_err *err) {
    wp->n_tokens = n;
    wp->tokens = calloc((size_t)n, sizeof *wp->tokens);
    wp->token_len = calloc((size_t)n, sizeof *wp->token_len);
    if (!wp->tokens || !wp->token_len) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    return RAGD_OK;
}

static int wp_add_added(ragd_wordpiece *wp, const char *content, int32_t id, ragd_err *err) {
    if (!content || !*content) return RAGD_OK;
    for (int i = 0; i < wp->n_added; i++)
        if (strcmp(wp->added[i].content, content) == 0) return RAGD_OK;
    if (wp->n_added >= WP_MAX_ADDED)
        return ragd_err_set(err, RAGD_EUNSUPPORTED, "more than %d added tokens", WP_MAX_ADDED);
    wp->added[wp->n_added].content = strdup(content);
    if (!wp->added[wp->n_added].content) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    wp->added[wp->n_added].len = strlen(content);
    wp->added[wp->n_added].id = id;
    wp->added_first[(unsigned char)content[0]] = true;
    wp->n_added++;
    return RAGD_OK;
}

static bool json_bool(const cJSON *o, const char *key, bool dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return dflt;
}

static int wp_load_tokenizer_json(ragd_wordpiece *wp, const char *path, ragd_err *err) {
    char *text = NULL;
    size_t len = 0;
    int rc = ragd_read_file(path, &text, &len, err);
    if (rc) return rc;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root) return ragd_err_set(err, RAGD_EFORMAT, "%s: invalid JSON", path);
    rc = RAGD_OK;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "WordPiece") != 0 ||
        !cJSON_IsObject(vocab)) {
        rc = ragd_err_set(err, RAGD_EUNSUPPORTED, "%s: model is not WordPiece", path);
        goto out;
    }
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    const cJSON *ntype = cJSON_GetObjectItemCaseSensitive(norm, "type");
    if (cJSON_IsNull(norm) || !norm) {
        wp->info.clean_text = wp->info.handle_chinese_chars = false;
        wp->info.lowercase = wp->info.strip_accents = false;
    } else if (!cJSON_IsString(ntype) || strcmp(ntype->valuestring, "BertNormalizer") != 0) {
        rc = ragd_err_set(err, RAGD_EUNSUPPORTED, "%s: normalizer is not BertNormalizer", path);
        goto out;
    } else {
        wp->info.clean_text = json_bool(norm, "clean_text", true);
        wp->info.handle_chinese_chars = json_bool(norm, "handle_chinese_chars", true);
        wp->info.lowercase = json_bool(norm, "lowercase", true);
        /* strip_accents: null means "follow lowercase" */
        wp->info.strip_accents = json_bool(norm, "strip_accents", wp->info.lowercase);
    }
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    const cJSON *ptype = cJSON_GetObjectItemCaseSensitive(pre, "type");
    if (pre && !cJSON_IsNull(pre) &&
        (!cJSON_IsString(ptype) || strcmp(ptype->valuestring, "BertPreTokenizer") != 0)) {
        rc =
            ragd_err_set(err, RAGD_EUNSUPPORTED, "%s: pre_tokenizer is not BertPreTokenizer", path);
        goto out;
    }
    const cJSON *mic = cJSON_GetObjectItemCaseSensitive(model, "max_input_chars_per_word");
    wp->info.max_input_chars_per_word = cJSON_IsNumber(mic) ? mic->valueint : 100;
    const cJSON *pfx = cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix");
    const char *p = cJSON_IsString(pfx) ? pfx->valuestring : "##";
    if (strlen(p) >= sizeof wp->prefix) {
        rc = ragd_err_set(err, RAGD_EFORMAT, "%s: continuing_subword_prefix too long", path);
        goto out;
    }
    strcpy(wp->prefix, p);
    int32_t max_id = -1;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > 1e8) {
            rc = ragd_err_set(err, RAGD_EFORMAT, "%s: bad vocab entry", path);
            goto out;
        }
        if (it->valueint > max_id) max_id = it->valueint;
    }
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    cJSON_ArrayForEach(it, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (cJSON_IsNumber(id) && id->valueint > max_id && id->valuedouble < 1e8)
            max_id = id->valueint;
    }
    if (max_id < 0) {
        rc = ragd_err_set(err, RAGD_EFORMAT, "%s: empty vocabulary", path);
        goto out;
    }
    if ((rc = wp_alloc_vocab(wp, max_id + 1, err))) goto out;
    cJSON_ArrayForEach(it, vocab) {
        if ((rc = wp_set_token(wp, it->valueint, it->string, strlen(it->string), err))) goto out;
    }
    cJSON_ArrayForEach(it, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (!cJSON_IsNumber(id) || !cJSON_IsString(content) || id->valuedouble < 0) {
            rc = ragd_err_set(err, RAGD_EFORMAT, "%s: bad added_tokens entry", path);
            goto out;
        }
        if ((rc = wp_set_token(wp, id->valueint, content->valuestring, strlen(content->valuestring),
                               err)))
            goto out;
        if ((rc = wp_add_added(wp, content->valuestring, id->valueint, err))) goto out;
    }
    if ((rc = wp_build_table(wp, err))) goto out;
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    const char *unk_s = cJSON_IsString(unk) ? unk->valuestring : "[UNK]";
    wp->info.unk_id = ragd_wordpiece_token_id(wp, unk_s, strlen(unk_s));
out:
    cJSON_Delete(root);
    return rc;
}

static const char *cfg_str(const cJSON *cfg, const char *key, const char *dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsString(v)) return v->valuestring;
    /* newer configs: {"content": "[CLS]", ...} */
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
    if (cJSON_IsString(c)) return c->valuestring;
    return dflt;
}

static int wp_load_vocab_txt(ragd_wordpiece *wp, const char *path, const cJSON *cfg,
                             ragd_err *err) {
    char *text = NULL;
    size_t len = 0;
    int rc = ragd_read_file(path, &text, &len, err);
    if (rc) return rc;
    int32_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (text[i] == '\n') n++;
    if (len && text[len - 1] != '\n') n++;
    if (n == 0) {
        free(text);
        return ragd_err_set(err, RAGD_EFORMAT, "%s: empty vocabulary", path);
    }
    if ((rc = wp_alloc_vocab(wp, n, err))) {
        free(text);
        return rc;
    }
    size_t start = 0;
    int32_t id = 0;
    for (size_t i = 0; i <= len && id < n; i++) {
        if (i == len || text[i] == '\n') {
            size_t e = i;
            if (e > start && text[e - 1] == '\r') e--;
            if ((rc = wp_set_token(wp, id++, text + start, e - start, err))) break;
            start = i + 1;
        }
    }
    free(text);
    if (rc) return rc;
    if ((rc = wp_build_table(wp, err))) return rc;
    wp->info.clean_text = true;
    wp->info.handle_chinese_chars = json_bool(cfg, "tokenize_chinese_chars", true);
    wp->info.lowercase = json_bool(cfg, "do_lower_case", true);
    wp->info.strip_accents = json_bool(cfg, "strip_accents", wp->info.lowercase);
    wp->info.max_input_chars_per_word = 100;
    strcpy(wp->prefix, "##");
    static const char *keys[] = {"pad_token", "unk_token", "cls_token", "sep_token", "mask_token"};
    static const char *dflt[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    for (int k = 0; k < 5; k++) {
        const char *s = cfg_str(cfg, keys[k], dflt[k]);
        int32_t tid = ragd_wordpiece_token_id(wp, s, strlen(s));
        if (tid >= 0 && (rc = wp_add_added(wp, s, tid, err))) return rc;
    }
    const char *unk = cfg_str(cfg, "unk_token", "[UNK]");
    wp->info.unk_id = ragd_wordpiece_token_id(wp, unk, strlen(unk));
    return RAGD_OK;
}

int ragd_wordpiece_load(const char *model_dir, ragd_wordpiece **out, ragd_err *err) {
    *out = NULL;
    ragd_wordpiece *wp = calloc(1, sizeof *wp);
    if (!wp) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    char path[4096];
    cJSON *cfg = NULL;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", model_dir);
    if (ragd_file_exists(path)) {
        char *text = NULL;
        size_t len = 0;
        if (ragd_read_file(path, &text, &len, NULL) == RAGD_OK) {
            cfg = cJSON_ParseWithLength(text, len);
            free(text);
        }
    }
    int rc;
    snprintf(path, sizeof path, "%s/tokenizer.json", model_dir);
    if (ragd_file_exists(path)) {
        rc = wp_load_tokenizer_json(wp, path, err);
    } else {
        snprintf(path, sizeof path, "%s/vocab.txt", model_dir);
        if (!ragd_file_exists(path)) {
            cJSON_Delete(cfg);
            ragd_wordpiece_destroy(wp);
            return ragd_err_set(err, RAGD_ENOTFOUND, "%s: no tokenizer.json or vocab.txt",
                                model_dir);
        }
        rc = wp_load_vocab_txt(wp, path, cfg, err);
    }
    if (rc == RAGD_OK) {
        const char *cls = cfg_str(cfg, "cls_token", "[CLS]");
        const char *sep = cfg_str(cfg, "sep_token", "[SEP]");
        const char *pad = cfg_str(cfg, "pad_token", "[PAD]");
        wp->info.cls_id = ragd_wordpiece_token_id(wp, cls, strlen(cls));
        wp->info.sep_id = ragd_wordpiece_token_id(wp, sep, strlen(sep));
        wp->info.pad_id = ragd_wordpiece_token_id(wp, pad, strlen(pad));
        if (wp->info.pad_id < 0) wp->info.pad_id = 0;
        wp->prefix_len = strlen(wp->prefix);
        if (wp->info.cls_id < 0 || wp->info.sep_id < 0 || wp->info.unk_id < 0)
            rc = ragd_err_set(err, RAGD_EFORMAT, "%s: vocabulary lacks [CLS], [SEP] or [UNK]",
                              model_dir);
    }
    cJSON_Delete(cfg);
    if (rc) {
        ragd_err_prefix(err, "tokenizer");
        ragd_wordpiece_destroy(wp);
        return rc;
    }
    *out = wp;
    return RAGD_OK;
}

void ragd_wordpiece_destroy(ragd_wordpiece *wp) {
    if (!wp) return;
    if (wp->tokens)
        for (int32_t i = 0; i < wp->n_tokens; i++) free(wp->tokens[i]);
    free(wp->tokens);
    free(wp->token_len);
    free(wp->table);
    for (int i = 0; i < wp->n_added; i++) free(wp->added[i].content);
    free(wp);
}

int ragd_wordpiece_vocab_size(const ragd_wordpiece *wp) {
    return wp->n_tokens;
}
void ragd_wordpiece_get_info(const ragd_wordpiece *wp, ragd_wordpiece_info *info) {
    *info = wp->info;
}
const char *ragd_wordpiece_token(const ragd_wordpiece *wp, int32_t id) {
    if (id < 0 || id >= wp->n_tokens) return NULL;
    return wp->tokens[id];
}

/* ---------------------------------------------------------------------------------------- */
/* character classes (the definitions of BERT / Hugging Face tokenizers)                      */

/* Unicode White_Space (Rust char::is_whitespace), which includes \t \n \r. */
static bool wp_is_whitespace(uint32_t c) {
    if (c == ' ' || (c >= 0x09 && c <= 0x0D)) return true;
    if (c < 0x80) return false;
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
           c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* "Other" categories (Cc, Cf, Cs, Co, Cn) except \t \n \r, which count as whitespace. */
static bool wp_is_control(uint32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return false;
    if (c < 0x20 || c == 0x7F) return true;
    if (c < 0x80) return false;
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
    return cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF ||
           cat == UTF8PROC_CATEGORY_CS || cat == UTF8PROC_CATEGORY_CO ||
           cat == UTF8PROC_CATEGORY_CN;
}

/* ASCII punctuation (all non-alphanumeric printable ASCII) + Unicode P* categories. */
static bool wp_is_punct(uint32_t c) {
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
        (c >= 123 && c <= 126))
        return true;
    if (c < 0x80) return false;
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
    return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

/* The CJK Unified Ideographs blocks BERT treats as single-character words. */
static bool wp_is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* ---------------------------------------------------------------------------------------- */
/* encoding                                                                                   */

typedef RAGD_VEC(int32_t) wp_ids;
typedef RAGD_VEC(uint32_t) wp_cps;

typedef struct wp_state {
    const ragd_wordpiece *wp;
    wp_ids *ids;
    wp_cps word;  /* code points of the current word */
    ragd_buf key; /* scratch: UTF-8 of a candidate piece */
    size_t *offs; /* scratch: byte offsets of the word's characters */
    size_t offs_cap;
    ragd_buf word_utf8; /* the current word in UTF-8 */
} wp_state;

/* WordPiece of one pre-tokenized word. */
static int wp_flush_word(wp_state *s) {
    const ragd_wordpiece *wp = s->wp;
    size_t nch = s->word.len;
    if (nch == 0) return RAGD_OK;
    s->word.len = 0;
    if ((int)nch > wp->info.max_input_chars_per_word) return RAGD_VEC_PUSH(s->ids, wp->info.unk_id);
    if (nch + 1 > s->offs_cap) {
        size_t *n = realloc(s->offs, (nch + 1) * 2 * sizeof *n);
        if (!n) return RAGD_ENOMEM;
        s->offs = n;
        s->offs_cap = (nch + 1) * 2;
    }
    ragd_buf_clear(&s->word_utf8);
    for (size_t i = 0; i < nch; i++) {
        char u[4];
        s->offs[i] = s->word_utf8.len;
        int k = ragd_utf8_encode(s->word.data[i], u);
        if (ragd_buf_append(&s->word_utf8, u, (size_t)k)) return RAGD_ENOMEM;
    }
    s->offs[nch] = s->word_utf8.len;
    size_t mark = s->ids->len;
    size_t start = 0;
    while (start < nch) {
        int32_t found = -1;
        size_t end = nch;
        for (; end > start; end--) {
            const char *piece = s->word_utf8.data + s->offs[start];
            size_t plen = s->offs[end] - s->offs[start];
            if (start > 0) {
                ragd_buf_clear(&s->key);
                if (ragd_buf_append(&s->key, wp->prefix, wp->prefix_len) ||
                    ragd_buf_append(&s->key, piece, plen))
                    return RAGD_ENOMEM;
                found = ragd_wordpiece_token_id(wp, s->key.data, s->key.len);
            } else {
                found = ragd_wordpiece_token_id(wp, piece, plen);
            }
            if (found >= 0) break;
        }
        if (found < 0) {
            s->ids->len = mark; /* the whole word becomes [UNK] */
            return RAGD_VEC_PUSH(s->ids, wp->info.unk_id);
        }
        if (RAGD_VEC_PUSH(s->ids, found)) return RAGD_ENOMEM;
        start = end;
    }
    return RAGD_OK;
}

/* Pre-tokenize + WordPiece one already-normalised character. */
static int wp_feed(wp_state *s, uint32_t c) {
    if (wp_is_whitespace(c)) return wp_flush_word(s);
    if (wp_is_punct(c)) {
        if (wp_flush_word(s)) return RAGD_ENOMEM;
        if (RAGD_VEC_PUSH(&s->word, c)) return RAGD_ENOMEM;
        return wp_flush_word(s);
    }
    return RAGD_VEC_PUSH(&s->word, c);
}

/* Normalise one input character (BertNormalizer) and feed the result. */
static int wp_normalize_feed(wp_state *s, uint32_t c) {
    const ragd_wordpiece_info *in = &s->wp->info;
    if (in->clean_text) {
        if (c == 0 || c == 0xFFFD || wp_is_control(c)) return RAGD_OK;
        if (wp_is_whitespace(c)) c = ' ';
    }
    if (in->handle_chinese_chars && wp_is_cjk(c)) {
        /* " c " : a word of its own */
        if (wp_flush_word(s)) return RAGD_ENOMEM;
        if (RAGD_VEC_PUSH(&s->word, c)) return RAGD_ENOMEM;
        return wp_flush_word(s);
    }
    if (!in->strip_accents && !in->lowercase) return wp_feed(s, c);
    utf8proc_int32_t buf[32];
    utf8proc_ssize_t n = 1;
    buf[0] = (utf8proc_int32_t)c;
    if (in->strip_accents) {
        int last = 0;
        n = utf8proc_decompose_char((utf8proc_int32_t)c, buf, 32, UTF8PROC_DECOMPOSE, &last);
        if (n < 0 || n > 32) {
            n = 1;
            buf[0] = (utf8proc_int32_t)c;
        }
    }
    for (utf8proc_ssize_t i = 0; i < n; i++) {
        utf8proc_int32_t d = buf[i];
        if (in->strip_accents && utf8proc_category(d) == UTF8PROC_CATEGORY_MN) continue;
        if (in->lowercase) d = utf8proc_tolower(d);
        if (wp_feed(s, (uint32_t)d)) return RAGD_ENOMEM;
    }
    return RAGD_OK;
}

/* Tokenize text[0..n) that contains no added tokens. */
static int wp_encode_plain(wp_state *s, const char *text, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int k = ragd_utf8_decode(text + i, n - i, &cp);
        if (wp_normalize_feed(s, cp)) return RAGD_ENOMEM;
        i += (size_t)k;
    }
    return wp_flush_word(s);
}

int ragd_wordpiece_encode(const ragd_wordpiece *wp, const char *text, size_t len, size_t max_len,
                          int32_t **ids_out, size_t *n_out, bool *truncated, ragd_err *err) {
    *ids_out = NULL;
    *n_out = 0;
    if (truncated) *truncated = false;
    if (max_len < 2) return ragd_err_set(err, RAGD_EINVAL, "max_len %zu < 2", max_len);
    if (len && !ragd_utf8_valid(text, len))
        return ragd_err_set(err, RAGD_EINVAL, "input is not valid UTF-8");
    wp_ids ids = {0};
    wp_state s = {.wp = wp, .ids = &ids};
    int rc = RAGD_VEC_PUSH(&ids, wp->info.cls_id);
    /* Split on added (special) tokens, leftmost-longest, matched on the raw text. */
    size_t seg = 0, i = 0;
    while (rc == RAGD_OK && i < len) {
        int best = -1;
        if (wp->added_first[(unsigned char)text[i]]) {
            for (int a = 0; a < wp->n_added; a++) {
                const wp_added *ad = &wp->added[a];
                if (ad->len <= len - i && memcmp(text + i, ad->content, ad->len) == 0 &&
                    (best < 0 || ad->len > wp->added[best].len))
                    best = a;
            }
        }
        if (best < 0) {
            i++;
            continue;
        }
        rc = wp_encode_plain(&s, text + seg, i - seg);
        if (rc == RAGD_OK) rc = RAGD_VEC_PUSH(&ids, wp->added[best].id);
        i += wp->added[best].len;
        seg = i;
    }
    if (rc == RAGD_OK) rc = wp_encode_plain(&s, text + seg, len - seg);
    RAGD_VEC_FREE(&s.word);
    ragd_buf_free(&s.key);
    ragd_buf_free(&s.word_utf8);
    free(s.offs);
    if (rc == RAGD_OK && ids.len + 1 > max_len) {
        ids.len = max_len - 1;
        if (truncated) *truncated = true;
    }
    if (rc == RAGD_OK) rc = RAGD_VEC_PUSH(&ids, wp->info.sep_id);
    if (rc) {
        RAGD_VEC_FREE(&ids);
        return ragd_err_set(err, RAGD_ENOMEM, "out of memory while tokenizing");
    }
    *ids_out = ids.data;
    *n_out = ids.len;
    return RAGD_OK;
}
