/* kb_cli.h - helpers shared by the knowledge-base subcommands (ingest, kb, search,
 * eval-retrieval): opening the kb, the thread pool and the embedder, splitting lists. */
#ifndef RAGD_CLI_KB_CLI_H
#define RAGD_CLI_KB_CLI_H

#include "kb/kb.h"
#include "kb/kb_embed.h"

typedef struct kb_cli {
    ragd_pool *pool;
    ragd_kb *kb;
    ragd_kb_embedder *emb;
} kb_cli;

/* Open everything; prints the error and returns 1 on failure. embed_spec may be NULL. */
int kb_cli_open(kb_cli *c, const char *kb_path, int readonly, const char *embed_spec,
                const ragd_kb_opts *extra);
void kb_cli_close(kb_cli *c);
/* Device of the embedding engine for the next kb_cli_open ("cpu" or "cuda"; NULL = cpu). */
void kb_cli_set_embed_device(const char *device);
/* CPU GEMM precision of the embedding engine for the next kb_cli_open ("f32" or "bf16";
 * NULL = f32). */
void kb_cli_set_embed_precision(const char *precision);
/* Split "a,b,c" in place into at most max names. */
size_t kb_cli_split(char *s, const char **out, size_t max);

#endif
