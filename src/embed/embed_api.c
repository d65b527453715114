/* embed_api.c - /v1/embeddings request parsing and response writing (see embed_api.h). */
#include "embed/embed_api.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

int ragd_openai_error_json(ragd_buf *out, const char *message, const char *type, const char *param,
                           const char *code) {
    int rc = ragd_buf_puts(out, "{\"error\":{\"message\":");
    if (!rc) rc = ragd_buf_json_str(out, message, strlen(message));
    if (!rc) rc = ragd_buf_puts(out, ",\"type\":");
    if (!rc) rc = ragd_buf_json_str(out, type, strlen(type));
    if (!rc) rc = ragd_buf_puts(out, ",\"param\":");
    if (!rc) rc = param ? ragd_buf_json_str(out, param, strlen(param)) : ragd_buf_puts(out, "null");
    if (!rc) rc = ragd_buf_puts(out, ",\"code\":");
    if (!rc) rc = code ? ragd_buf_json_str(out, code, strlen(code)) : ragd_buf_puts(out, "null");
    if (!rc) rc = ragd_buf_puts(out, "}}");
    return rc ? RAGD_ENOMEM : RAGD_OK;
}

static int bad_request(ragd_buf *out, int *status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int bad_request(ragd_buf *out, int *status, const char *param, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    *status = 400;
    return ragd_openai_error_json(out, msg, "invalid_request_error", param, NULL);
}

static int base64_append(ragd_buf *b, const unsigned char *p, size_t n) {
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (ragd_buf_reserve(b, (n + 2) / 3 * 4 + 1)) return RAGD_ENOMEM;
    char *o = b->data + b->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = tbl[v >> 18];
        *o++ = tbl[(v >> 12) & 63];
        *o++ = tbl[(v >> 6) & 63];
        *o++ = tbl[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        *o++ = tbl[v >> 18];
        *o++ = tbl[(v >> 12) & 63];
        *o++ = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
    return RAGD_OK;
}

static bool is_token_id(const cJSON *v) {
    return cJSON_IsNumber(v) && v->valuedouble == (double)(int64_t)v->valuedouble;
}

typedef struct api_req {
    size_t n;
    bool tokens;        /* token-array inputs */
    const char **texts; /* n (text inputs) */
    size_t *lens;       /* n */
    int32_t **ids;      /* n (token inputs) */
    int *n_tokens;
    float *vecs;
} api_req;

static void api_req_free(api_req *r) {
    if (r->ids)
        for (size_t i = 0; i < r->n; i++) free(r->ids[i]);
    free(r->ids);
    free(r->texts);
    free(r->lens);
    free(r->n_tokens);
    free(r->vecs);
}

/* Parse one token array into r->ids[i]; returns 0 or writes a 400. */
static int parse_ids(api_req *r, size_t i, const cJSON *arr, ragd_buf *out, int *status,
                     bool *failed) {
    size_t m = (size_t)cJSON_GetArraySize(arr);
    r->ids[i] = malloc((m ? m : 1) * sizeof(int32_t));
    if (!r->ids[i]) return RAGD_ENOMEM;
    r->lens[i] = m;
    size_t j = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, arr) {
        if (!is_token_id(v) || v->valuedouble < 0 || v->valuedouble > INT32_MAX) {
            *failed = true;
            return bad_request(out, status, "input",
                               "input[%zu][%zu] is not a valid token id (a non-negative "
                               "integer)",
                               i, j);
        }
        r->ids[i][j++] = (int32_t)v->valuedouble;
    }
    return RAGD_OK;
}

int ragd_embed_api_handle(ragd_embedder *e, const char *body, size_t len, ragd_buf *out,
                          int *status) {
    *status = 200;
    cJSON *root = cJSON_ParseWithLength(body ? body : "", len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return bad_request(out, status, NULL,
                           "the request body is not a JSON object (expected {\"input\": ...})");
    }
    api_req r = {0};
    int rc = RAGD_OK;
    bool failed = false;
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(root, "input");
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "encoding_format");
    const cJSON *dims = cJSON_GetObjectItemCaseSensitive(root, "dimensions");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    bool b64 = false;
    const int dim = ragd_embedder_dim(e);
#define FAIL(param, ...)                                                                           \
    do {                                                                                           \
        rc = bad_request(out, status, param, __VA_ARGS__);                                         \
        goto done;                                                                                 \
    } while (0)
    if (model && !cJSON_IsString(model) && !cJSON_IsNull(model))
        FAIL("model", "'model' must be a string");
    if (fmt && !cJSON_IsNull(fmt)) {
        if (!cJSON_IsString(fmt) ||
            (strcmp(fmt->valuestring, "float") != 0 && strcmp(fmt->valuestring, "base64") != 0))
            FAIL("encoding_format", "'encoding_format' must be \"float\" or \"base64\"");
        b64 = strcmp(fmt->valuestring, "base64") == 0;
    }
    if (dims && !cJSON_IsNull(dims) && (!is_token_id(dims) || (int)dims->valuedouble != dim))
        FAIL("dimensions", "'dimensions' must be %d for this model (it cannot be shortened)", dim);
    if (!input) FAIL("input", "'input' is required");
    if (cJSON_IsString(input)) {
        r.n = 1;
    } else if (cJSON_IsArray(input)) {
        r.n = (size_t)cJSON_GetArraySize(input);
        if (r.n == 0) FAIL("input", "'input' must not be an empty list");
        const cJSON *first = cJSON_GetArrayItem(input, 0);
        if (is_token_id(first)) {
            r.tokens = true;
            r.n = 1; /* one token array */
        } else if (cJSON_IsArray(first)) {
            r.tokens = true;
        } else if (!cJSON_IsString(first)) {
            FAIL("input", "input[0] must be a string, a token id or an array of token ids");
        }
    } else {
        FAIL("input", "'input' must be a string, an array of strings or token arrays");
    }
    if (r.n > RAGD_EMBED_API_MAX_INPUTS)
        FAIL("input", "too many inputs: %zu (at most %d per request)", r.n,
             RAGD_EMBED_API_MAX_INPUTS);
    r.texts = calloc(r.n, sizeof *r.texts);
    r.lens = calloc(r.n, sizeof *r.lens);
    r.n_tokens = calloc(r.n, sizeof *r.n_tokens);
    r.vecs = malloc(r.n * (size_t)dim * sizeof(float));
    if (r.tokens) r.ids = calloc(r.n, sizeof *r.ids);
    if (!r.texts || !r.lens || !r.n_tokens || !r.vecs || (r.tokens && !r.ids)) {
        rc = RAGD_ENOMEM;
        goto done;
    }
    if (cJSON_IsString(input)) {
        r.texts[0] = input->valuestring;
        r.lens[0] = strlen(input->valuestring);
    } else if (r.tokens && r.n == 1 && !cJSON_IsArray(cJSON_GetArrayItem(input, 0))) {
        rc = parse_ids(&r, 0, input, out, status, &failed);
        if (rc || failed) goto done;
    } else {
        size_t i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, input) {
            if (r.tokens) {
                if (!cJSON_IsArray(it))
                    FAIL("input", "input[%zu] must be an array of token ids like input[0]", i);
                if (cJSON_GetArraySize(it) == 0)
                    FAIL("input", "input[%zu] must not be an empty token array", i);
                rc = parse_ids(&r, i, it, out, status, &failed);
                if (rc || failed) goto done;
            } else {
                if (!cJSON_IsString(it))
                    FAIL("input", "input[%zu] must be a string like input[0]", i);
                r.texts[i] = it->valuestring;
                r.lens[i] = strlen(it->valuestring);
            }
            i++;
        }
    }
    if (r.tokens && r.lens[0] == 0) FAIL("input", "input must not be an empty token array");
    if (!r.tokens) {
        for (size_t i = 0; i < r.n; i++) {
            if (r.lens[i] == 0) FAIL("input", "input[%zu] must not be an empty string", i);
            if (!ragd_utf8_valid(r.texts[i], r.lens[i]))
                FAIL("input", "input[%zu] is not valid UTF-8", i);
        }
    }
    ragd_err err = {0};
    int erc;
    if (r.tokens) {
        erc = ragd_embedder_embed_ids(e, (const int32_t *const *)r.ids, r.lens, r.n, r.vecs, &err);
        for (size_t i = 0; i < r.n; i++) r.n_tokens[i] = (int)r.lens[i] + 2;
    } else {
        erc = ragd_embedder_embed(e, r.texts, r.lens, r.n, r.vecs, r.n_tokens, NULL, &err);
    }
    if (erc == RAGD_EINVAL) FAIL("input", "%s", err.msg);
    if (erc == RAGD_ENOMEM) {
        rc = RAGD_ENOMEM;
        goto done;
    }
    if (erc) {
        *status = erc == RAGD_ECANCELLED ? 503 : 500;
        rc = ragd_openai_error_json(out, err.msg, "server_error", NULL, NULL);
        goto done;
    }
    /* response */
    size_t total = 0;
    for (size_t i = 0; i < r.n; i++) total += (size_t)r.n_tokens[i];
    if (ragd_buf_reserve(out, r.n * (size_t)dim * (b64 ? 6 : 16) + 256)) {
        rc = RAGD_ENOMEM;
        goto done;
    }
    int wrc = ragd_buf_puts(out, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < r.n && !wrc; i++) {
        wrc = ragd_buf_printf(
            out, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":", i ? "," : "", i);
        const float *v = r.vecs + i * (size_t)dim;
        if (b64) {
            unsigned char bytes[4];
            ragd_buf tmp = {0};
            for (int d = 0; d < dim && !wrc; d++) {
                uint32_t u;
                memcpy(&u, &v[d], 4);
                for (int k = 0; k < 4; k++) bytes[k] = (unsigned char)(u >> (8 * k));
                wrc = ragd_buf_append(&tmp, bytes, 4);
            }
            if (!wrc) wrc = ragd_buf_putc(out, '"');
            if (!wrc) wrc = base64_append(out, (const unsigned char *)tmp.data, tmp.len);
            if (!wrc) wrc = ragd_buf_putc(out, '"');
            ragd_buf_free(&tmp);
        } else {
            wrc = ragd_buf_putc(out, '[');
            for (int d = 0; d < dim && !wrc; d++)
                wrc = ragd_buf_printf(out, d ? ",%.9g" : "%.9g", (double)v[d]);
            if (!wrc) wrc = ragd_buf_putc(out, ']');
        }
        if (!wrc) wrc = ragd_buf_putc(out, '}');
    }
    if (!wrc) wrc = ragd_buf_puts(out, "],\"model\":");
    const char *name = ragd_embedder_model_name(e);
    if (!wrc) wrc = ragd_buf_json_str(out, name, strlen(name));
    if (!wrc)
        wrc = ragd_buf_printf(out, ",\"usage\":{\"prompt_tokens\":%zu,\"total_tokens\":%zu}}",
                              total, total);
    if (wrc) rc = RAGD_ENOMEM;
#undef FAIL
done:
    api_req_free(&r);
    cJSON_Delete(root);
    return rc;
}
