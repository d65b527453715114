/* libFuzzer target: loading tokenizer.json text (ragd_tokenizer_load_json) and recognising
 * chat templates from arbitrary bytes. A file that loads must then encode and decode a fixed
 * mixed-script text without failing; a failure must carry a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ragd_tokenizer *t = NULL;
    ragd_err err = {0};
    int rc = ragd_tokenizer_load_json((const char *)data, size, &t, &err);
    if (rc == 0) {
        static const char text[] = "Hello  world\n\t<s>x 中文 café 123 <|im_end|>";
        int32_t *ids = NULL;
        size_t n = 0;
        if (ragd_tokenizer_encode(t, text, sizeof text - 1, &ids, &n, &err) != 0) abort();
        ragd_buf out = {0};
        if (ragd_tokenizer_decode(t, ids, n, false, &out, &err) != 0) abort();
        ragd_buf_free(&out);
        free(ids);
        ragd_tokenizer_destroy(t);
    } else if (!err.msg[0] || t) {
        abort();
    }
    /* the same bytes as a chat template */
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    ragd_chat_template *ct = NULL;
    ragd_err e2 = {0};
    if (ragd_chat_template_create(s, &ct, &e2) == 0) {
        ragd_chat_msg m[] = {{"user", "q"}, {"tool", "r"}};
        ragd_buf out = {0};
        if (ragd_chat_render(ct, m, 2, true, &out, &e2) != 0) abort();
        ragd_buf_free(&out);
        ragd_chat_template_destroy(ct);
    } else if (!e2.msg[0]) {
        abort();
    }
    free(s);
    return 0;
}
