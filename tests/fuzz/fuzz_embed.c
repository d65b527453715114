/* libFuzzer target: the BERT WordPiece tokenizer and the /v1/embeddings handler
 * (shared/models/bert-tiny) on arbitrary bytes.
 *  - as text: invalid UTF-8 must be rejected with RAGD_EINVAL; valid text must encode to
 *    [CLS] ... [SEP], at most 512 ids, all in the vocabulary;
 *  - as a request body: the answer is 200 or 400 with a JSON body (an embedding list or an
 *    OpenAI error object), never a crash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "embed/embed.h"
#include "embed/embed_api.h"
#include "tokenizer/wordpiece.h"
#include "util/str.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ragd_wordpiece *wp;
static ragd_embedder *emb;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    char dir[4096];
    ragd_shared_path(dir, sizeof dir, "models/bert-tiny");
    ragd_err err = {0};
    ragd_embedder_opts o = {.model_dir = dir};
    if (ragd_wordpiece_load(dir, &wp, &err) != 0 || ragd_embedder_create(&o, &emb, &err) != 0) {
        fprintf(stderr, "fuzz_embed: %s (set RAGD_SHARED)\n", err.msg);
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    ragd_wordpiece_info in;
    ragd_wordpiece_get_info(wp, &in);
    int32_t *ids = NULL;
    size_t n = 0;
    bool trunc = false;
    ragd_err err = {0};
    int rc = ragd_wordpiece_encode(wp, s, size, 512, &ids, &n, &trunc, &err);
    if (!ragd_utf8_valid(s, size)) {
        if (rc != RAGD_EINVAL || ids) abort();
    } else {
        if (rc != 0 || n < 2 || n > 512 || ids[0] != in.cls_id || ids[n - 1] != in.sep_id) abort();
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= ragd_wordpiece_vocab_size(wp)) abort();
    }
    free(ids);
    ragd_buf out = {0};
    int status = 0;
    if (ragd_embed_api_handle(emb, s, size, &out, &status) != 0) abort();
    if (status != 200 && status != 400) abort();
    cJSON *j = cJSON_ParseWithLength(out.data, out.len);
    if (!j) abort();
    if (status == 400 && !cJSON_IsObject(cJSON_GetObjectItem(j, "error"))) abort();
    if (status == 200 && !cJSON_IsArray(cJSON_GetObjectItem(j, "data"))) abort();
    cJSON_Delete(j);
    ragd_buf_free(&out);
    return 0;
}
