/* embed_api.h - OpenAI's POST /v1/embeddings, transport-free: the HTTP server (and tests)
 * hand the request body in and get the response JSON and status code back.
 *
 * Request: {"input": string | [string, ...] | [int, ...] | [[int, ...], ...],
 *           "model": string (optional; the response names the loaded model),
 *           "encoding_format": "float" (default) | "base64", "dimensions": the model's
 *           dimension only, "user": ignored}.
 * Token arrays are the content tokens (like tokenizer.encode(add_special_tokens=False));
 * [CLS] and [SEP] are added. Text longer than the model's 512 tokens is truncated.
 * Response: {"object":"list","data":[{"object":"embedding","index":i,"embedding":[...] or
 * "<base64 of little-endian float32>"}],"model":..., "usage":{"prompt_tokens":N,
 * "total_tokens":N}} where N counts every token the model processed ([CLS]/[SEP] included).
 * Errors: 400 with {"error":{"message","type":"invalid_request_error","param","code"}} for
 * malformed JSON, a missing/empty input, an empty string, non-string items, mixed item types,
 * invalid UTF-8, out-of-range token ids, more than RAGD_EMBED_API_MAX_INPUTS inputs, an
 * unknown encoding_format or dimensions; 500 ("server_error") when the engine fails.
 * Thread-safety: may be called from many threads at once (the engine batches them).
 */
#ifndef RAGD_EMBED_EMBED_API_H
#define RAGD_EMBED_EMBED_API_H

#include <stddef.h>

#include "embed/embed.h"
#include "util/str.h"

#define RAGD_EMBED_API_MAX_INPUTS 2048

/* Fills out_json (appended) and *http_status; returns RAGD_OK when a response (success or
 * an error response) was produced, RAGD_ENOMEM when not even that was possible. */
int ragd_embed_api_handle(ragd_embedder *e, const char *body, size_t len, ragd_buf *out_json,
                          int *http_status);

/* Write an OpenAI-style error object: {"error":{"message":...,"type":...,"param":...|null,
 * "code":...|null}}. Exposed for the HTTP layer's own 4xx answers. */
int ragd_openai_error_json(ragd_buf *out, const char *message, const char *type, const char *param,
                           const char *code);

#endif
