/* ragd ingest: add files and directories to a knowledge-base index. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/kb_cli.h"

static const char *USAGE =
    "usage: ragd ingest --kb FILE --index NAME [options] PATH...\n"
    "  PATH                 .txt .md .jsonl (text, title, id; other fields -> metadata) .csv\n"
    "                       files, or directories (recursively)\n"
    "  --kb FILE            knowledge base (SQLite; created when absent)\n"
    "  --index NAME         index to add to (created when absent)\n"
    "  --embed-model SPEC   embedding model directory, or hash:DIM (lexical test embedder);\n"
    "                       without it the index is BM25 only\n"
    "  --chunk-tokens N     chunk size in model tokens (default 256; 0 = whole documents)\n"
    "  --overlap N          tokens shared by consecutive chunks (default 32)\n"
    "  --text-column NAME   CSV column holding the text (default text)\n"
    "  --embed-batch N      chunks per embedding call (default 128)\n"
    "  --embed-device D     cpu (default) or cuda: where the embedding model runs\n"
    "  --embed-precision P  embedding engine CPU GEMMs: f32 (default) or bf16 (AMX; faster,\n"
    "                       cosine >= 0.999 to f32)\n"
    "  --vector-dtype T     f32 or f16: how a new index stores its vectors (default f32;\n"
    "                       f16 halves memory and disk); an existing index keeps its own and\n"
    "                       refuses the other\n"
    "  --quiet              no progress bar\n"
    "Unchanged files are skipped; changed files replace their chunks; each file is one\n"
    "transaction, so an interrupted run is finished by running it again.\n";

typedef struct {
    int tty;
} prog;

static void progress(void *ctx, size_t done, size_t total, size_t chunks, double secs) {
    prog *p = ctx;
    if (!p->tty) return;
    int width = 30, fill = total ? (int)((double)done / (double)total * width) : 0;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "\r[%s] files %zu/%zu  chunks %zu  %.0f chunks/s ", bar, done, total, chunks,
            secs > 0 ? (double)chunks / secs : 0.0);
    fflush(stderr);
}

static int run_ingest(int argc, char **argv) {
    const char *kb_path = NULL, *index = NULL, *embed = NULL, *text_col = "text", *device = "cpu";
    const char *vdt = NULL, *precision = NULL;
    int chunk_tokens = 256, overlap = 32, batch = 128, quiet = 0;
    static const struct option opts[] = {{"kb", required_argument, 0, 'k'},
                                         {"index", required_argument, 0, 'i'},
                                         {"embed-model", required_argument, 0, 'e'},
                                         {"chunk-tokens", required_argument, 0, 'c'},
                                         {"overlap", required_argument, 0, 'o'},
                                         {"text-column", required_argument, 0, 't'},
                                         {"embed-batch", required_argument, 0, 'b'},
                                         {"embed-device", required_argument, 0, 'd'},
                                         {"vector-dtype", required_argument, 0, 'v'},
                                         {"embed-precision", required_argument, 0, 'p'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    char *end;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case 'k':
                kb_path = optarg;
                break;
            case 'i':
                index = optarg;
                break;
            case 'e':
                embed = optarg;
                break;
            case 't':
                text_col = optarg;
                break;
            case 'p':
                if (strcmp(optarg, "f32") && strcmp(optarg, "bf16")) {
                    fprintf(stderr, "ragd ingest: --embed-precision must be f32 or bf16\n%s",
                            USAGE);
                    return 2;
                }
                precision = optarg;
                break;
            case 'v':
                if (ragd_kb_parse_vec_dtype(optarg) < 0) {
                    fprintf(stderr, "ragd ingest: --vector-dtype must be f32 or f16\n%s", USAGE);
                    return 2;
                }
                vdt = optarg;
                break;
            case 'd':
                if (strcmp(optarg, "cpu") && strcmp(optarg, "cuda")) {
                    fprintf(stderr, "ragd ingest: --embed-device must be cpu or cuda\n");
                    return 2;
                }
                device = optarg;
                break;
            case 'q':
                quiet = 1;
                break;
            case 'c':
            case 'o':
            case 'b': {
                long v = strtol(optarg, &end, 10);
                if (*end || v < 0 || v > 100000 || (c == 'b' && v == 0)) {
                    fprintf(stderr, "ragd ingest: bad number '%s'\n%s", optarg, USAGE);
                    return 2;
                }
                if (c == 'c')
                    chunk_tokens = (int)v;
                else if (c == 'o')
                    overlap = (int)v;
                else
                    batch = (int)v;
                break;
            }
            case 'h':
                printf("%s", USAGE);
                return 0;
            default:
                fprintf(stderr, "%s", USAGE);
                return 2;
        }
    }
    if (!kb_path || !index || optind >= argc) {
        fprintf(stderr, "ragd ingest: --kb, --index and at least one PATH are required\n%s", USAGE);
        return 2;
    }
    if (chunk_tokens == 0) overlap = 0;
    if (chunk_tokens > 0 && overlap >= chunk_tokens) {
        fprintf(stderr, "ragd ingest: --overlap must be smaller than --chunk-tokens\n");
        return 2;
    }
    kb_cli k;
    kb_cli_set_embed_device(device);
    kb_cli_set_embed_precision(precision);
    if (kb_cli_open(&k, kb_path, 0, embed, NULL)) return 1;
    prog p = {!quiet && isatty(2)};
    ragd_kb_ingest_opts io = {index, k.emb,    chunk_tokens, overlap, text_col,
                              batch, progress, &p,           vdt};
    ragd_kb_ingest_stats st;
    ragd_err err = {0};
    int rc = ragd_kb_ingest(k.kb, (const char *const *)argv + optind, (size_t)(argc - optind), &io,
                            &st, &err);
    if (p.tty) fprintf(stderr, "\n");
    if (rc) {
        fprintf(stderr, "ragd ingest: %s\n", err.msg);
        kb_cli_close(&k);
        return 1;
    }
    printf("ingest: %zu files: %zu ingested, %zu unchanged, %zu empty, %zu failed; %zu documents, "
           "%zu chunks (%zu embedded) in %.2f s (%.0f chunks/s)\n",
           st.files, st.files_ingested, st.files_unchanged, st.files_empty, st.files_failed,
           st.docs, st.chunks, st.chunks_embedded, st.seconds,
           st.seconds > 0 ? (double)st.chunks / st.seconds : 0.0);
    if (st.chunks_embedded)
        printf("ingest: embedding %.2f s (%.0f%%, %zu tokens, %.0f tokens/s), store writes %.2f s "
               "(%.0f%%), the rest (read, parse, chunk, vectors) %.2f s\n",
               st.embed_seconds, st.seconds > 0 ? 100 * st.embed_seconds / st.seconds : 0.0,
               st.tokens_embedded,
               st.embed_seconds > 0 ? (double)st.tokens_embedded / st.embed_seconds : 0.0,
               st.store_seconds, st.seconds > 0 ? 100 * st.store_seconds / st.seconds : 0.0,
               st.seconds - st.embed_seconds - st.store_seconds);
    kb_cli_close(&k);
    return st.files_failed ? 1 : 0;
}

RAGD_COMMAND(ingest, 40, "add documents (.txt .md .jsonl .csv, directories) to a kb index",
             run_ingest)
