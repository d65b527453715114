/* libFuzzer target: the Qwen2.5 tokenizer (shared/models/qwen2-tiny) on arbitrary bytes.
 *  - as text: invalid UTF-8 must be rejected with RAGD_EINVAL; valid text must encode, and
 *    (without added-token markers) decode(encode(x)) must equal NFC(x);
 *  - as ids (little-endian u32 modulo the vocabulary): decode() must equal the concatenated
 *    streaming detokenizer output, every streamed piece being valid UTF-8.
 * Also renders the input as a chat message through the model's template. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "util/str.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ragd_tokenizer *tok;
static ragd_chat_template *tmpl;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    char dir[4096];
    ragd_shared_path(dir, sizeof dir, "models/qwen2-tiny");
    ragd_err err = {0};
    if (ragd_tokenizer_load(dir, &tok, &err) != 0) {
        fprintf(stderr, "fuzz_tokenizer: %s (set RAGD_SHARED)\n", err.msg);
        exit(1);
    }
    if (ragd_chat_template_create(ragd_tokenizer_chat_template(tok), &tmpl, &err) != 0) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", err.msg);
        exit(1);
    }
    return 0;
}

static void check_text(const char *s, size_t n) {
    int32_t *ids = NULL;
    size_t k = 0;
    ragd_err err = {0};
    int rc = ragd_tokenizer_encode(tok, s, n, &ids, &k, &err);
    bool valid = ragd_utf8_valid(s, n) && !memchr(s, 0, n);
    if (!valid) {
        if (rc != RAGD_EINVAL || ids) abort();
        return;
    }
    if (rc != 0 || k > 3 * n) abort(); /* NFC may expand the text (at most 3x) */
    ragd_buf out = {0};
    if (ragd_tokenizer_decode(tok, ids, k, false, &out, &err) != 0) abort();
    if (!memmem(s, n, "<|", 2)) {
        char *z = malloc(n + 1);
        memcpy(z, s, n);
        z[n] = 0;
        char *nfc = (char *)utf8proc_NFC((const utf8proc_uint8_t *)z);
        if (nfc && (strlen(nfc) != out.len || memcmp(nfc, out.data, out.len) != 0)) abort();
        free(nfc);
        free(z);
    }
    ragd_buf_free(&out);
    free(ids);
    /* the chat template takes any valid text */
    char *msg = strndup(s, n);
    ragd_chat_msg m[2] = {{"system", "s"}, {"user", msg}};
    if (ragd_chat_render(tmpl, m + (n & 1), 2 - (n & 1), true, &out, &err) != 0) abort();
    ragd_buf_free(&out);
    free(msg);
}

static void check_ids(const uint8_t *d, size_t n) {
    size_t k = n / 4;
    int32_t *ids = malloc((k + 1) * sizeof *ids);
    int32_t vs = ragd_tokenizer_vocab_size(tok);
    for (size_t i = 0; i < k; i++) {
        uint32_t v;
        memcpy(&v, d + 4 * i, 4);
        ids[i] = (int32_t)(v % (uint32_t)vs);
    }
    bool skip = n & 1;
    ragd_buf full = {0}, acc = {0};
    ragd_err err = {0};
    if (ragd_tokenizer_decode(tok, ids, k, skip, &full, &err) != 0) abort();
    ragd_detok dt;
    ragd_detok_init(&dt, tok, skip);
    for (size_t i = 0; i < k; i++) {
        size_t before = acc.len;
        if (ragd_detok_push(&dt, ids[i], &acc, &err) != 0) abort();
        if (!ragd_utf8_valid(acc.data + before, acc.len - before)) abort();
    }
    ragd_detok_flush(&dt, &acc);
    ragd_detok_free(&dt);
    if (acc.len != full.len || (acc.len && memcmp(acc.data, full.data, acc.len) != 0)) abort();
    ragd_buf_free(&full);
    ragd_buf_free(&acc);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    check_text((const char *)data, size);
    check_ids(data, size);
    return 0;
}
