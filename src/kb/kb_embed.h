/* kb_embed.h - embedders for the knowledge base (the ragd_kb_embedder vtable of kb.h).
 *
 * ragd_kb_embedder_open(spec):
 *   "hash:DIM"  a deterministic lexical embedder: the analysed terms of the text (analyzer.h)
 *               hashed into DIM buckets with signs, L2-normalised. No model needed; useful
 *               for tests and demos of the vector path (it is a bag-of-bigrams, not semantic).
 *   DIR         a BERT-family model directory through the embedding engine (embed/embed.h).
 * Thread-safety: embed() may be called from several threads.
 */
#ifndef RAGD_KB_KB_EMBED_H
#define RAGD_KB_KB_EMBED_H

#include "kb/kb.h"
#include "util/threadpool.h"

int ragd_kb_embedder_open(const char *spec, ragd_pool *pool, ragd_kb_embedder **out, ragd_err *err);
/* The same with the embedding engine's device for a model directory ("cpu" or "cuda"; NULL =
 * cpu); ignored for hash:DIM. */
int ragd_kb_embedder_open_on(const char *spec, const char *device, ragd_pool *pool,
                             ragd_kb_embedder **out, ragd_err *err);
/* ... and the engine's CPU GEMM precision ("f32" or "bf16"; NULL = f32). */
int ragd_kb_embedder_open_ex(const char *spec, const char *device, const char *precision,
                             ragd_pool *pool, ragd_kb_embedder **out, ragd_err *err);
void ragd_kb_embedder_close(ragd_kb_embedder *e);

/* The hash embedder directly (dim 8..4096). */
int ragd_kb_hash_embedder_create(int dim, ragd_kb_embedder **out, ragd_err *err);

/* Wrap an embedding engine the caller already has (the server's): model name and dim from
 * the engine, chunk token counts from the model's WordPiece tokenizer in model_dir (NULL:
 * the approximation). The engine stays the caller's; close the wrapper with
 * ragd_kb_embedder_close before destroying the engine. RAGD_EUNSUPPORTED in a build without
 * the embedding engine. */
struct ragd_embedder;
int ragd_kb_embedder_from_engine(struct ragd_embedder *engine, const char *model_dir,
                                 ragd_kb_embedder **out, ragd_err *err);

#endif
