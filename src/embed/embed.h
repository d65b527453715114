/* embed.h - the sentence-embedding engine: a BERT-family model (bge-small-zh-v1.5 and kin)
 * behind a queue that batches concurrent requests dynamically (up to max_batch_tokens).
 * The HTTP /v1/embeddings endpoint, `ragd embed` and knowledge-base ingestion all use it.
 * Thread-safety: ragd_embedder_embed may be called from many threads at once; requests are
 * merged into batches by the engine's worker.
 */
#ifndef RAGD_EMBED_EMBED_H
#define RAGD_EMBED_EMBED_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/threadpool.h"

typedef struct ragd_embedder ragd_embedder;

typedef struct ragd_embedder_opts {
    const char *model_dir;
    const char *device;    /* "cpu" (default) or "cuda" */
    ragd_pool *pool;       /* CPU threads (not owned) */
    int max_batch_tokens;  /* 0 = default (16384) */
    const char *precision; /* CPU GEMMs: "f32" (default, matches the reference) or "bf16"
                              (AMX tiles, much faster, cosine >= 0.999 to f32) */
} ragd_embedder_opts;

int ragd_embedder_create(const ragd_embedder_opts *opts, ragd_embedder **out, ragd_err *err);
void ragd_embedder_destroy(ragd_embedder *e);
int ragd_embedder_dim(const ragd_embedder *e);
const char *ragd_embedder_model_name(const ragd_embedder *e);
int ragd_embedder_max_tokens(const ragd_embedder *e); /* e.g. 512 */

/* Embed n texts (UTF-8; lens[i] bytes, or NUL-terminated when lens is NULL) into out
 * (n x dim floats, pooled and normalised as the model asks). n_tokens (optional, n entries)
 * receives each text's token count after truncation; truncated (optional) gets 1 where the
 * text was cut to max tokens. Blocks until done. */
int ragd_embedder_embed(ragd_embedder *e, const char *const *texts, const size_t *lens, size_t n,
                        float *out, int *n_tokens, uint8_t *truncated, ragd_err *err);
/* Same from token ids (OpenAI's token-array input). */
int ragd_embedder_embed_ids(ragd_embedder *e, const int32_t *const *ids, const size_t *n_ids,
                            size_t n, float *out, ragd_err *err);

#endif
