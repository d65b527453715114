/* ragd search: query one or more knowledge-base indexes. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/kb_cli.h"
#include "kb/search_api.h"
#include "util/str.h"

static const char *USAGE =
    "usage: ragd search --kb FILE --index A[,B,...] --query Q [--query Q2 ...] [options]\n"
    "  --k N                results per query (default 10)\n"
    "  --mode M             bm25 | vector | hybrid (default: hybrid with --embed-model,\n"
    "                       else bm25)\n"
    "  --fusion F           rrf (reciprocal rank, k=60; default) | weighted\n"
    "  --vector-weight W    weighted fusion: W*cosine + (1-W)*bm25/max (default 0.5)\n"
    "  --embed-model SPEC   the index's embedding model (directory, or hash:DIM)\n"
    "  --vector-search A    auto (HNSW at >= 50000 vectors) | exact | hnsw\n"
    "  --ef-search N        HNSW search breadth (default 64)\n"
    "  --bm25-max-df X      leave query terms found in more than X (0..1) of the chunks out\n"
    "                       of BM25 when a rarer term remains (faster on large indexes, ranks\n"
    "                       slightly differently; default: keep every term)\n"
    "  --json               the /v1/search response body\n"
    "Several --query options are one batched, de-duplicated search.\n";

static int run_search(int argc, char **argv) {
    const char *kb_path = NULL, *embed = NULL;
    char *indexes = NULL;
    int json = 0, mode_set = 0;
    const char **queries = calloc((size_t)argc + 1, sizeof *queries);
    size_t nq = 0;
    ragd_kb_search_opts so = {0};
    ragd_kb_opts ko = {0};
    so.k = 10;
    so.vector_weight = 0.5;
    static const struct option opts[] = {{"kb", required_argument, 0, 'K'},
                                         {"index", required_argument, 0, 'i'},
                                         {"query", required_argument, 0, 'q'},
                                         {"k", required_argument, 0, 'k'},
                                         {"mode", required_argument, 0, 'm'},
                                         {"fusion", required_argument, 0, 'f'},
                                         {"vector-weight", required_argument, 0, 'w'},
                                         {"embed-model", required_argument, 0, 'e'},
                                         {"vector-search", required_argument, 0, 'v'},
                                         {"ef-search", required_argument, 0, 'E'},
                                         {"bm25-max-df", required_argument, 0, 'D'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c, bad = 0;
    optind = 1;
    char *end;
    if (!queries) return 1;
    while (!bad && (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case 'K':
                kb_path = optarg;
                break;
            case 'i':
                indexes = optarg;
                break;
            case 'q':
                queries[nq++] = optarg;
                break;
            case 'e':
                embed = optarg;
                break;
            case 'j':
                json = 1;
                break;
            case 'k':
                so.k = (int)strtol(optarg, &end, 10);
                bad = *end || so.k < 1 || so.k > 1000;
                break;
            case 'D':
                ko.bm25_max_df = strtod(optarg, &end);
                bad = *end || !(ko.bm25_max_df > 0 && ko.bm25_max_df <= 1);
                break;
            case 'E':
                so.ef_search = (int)strtol(optarg, &end, 10);
                bad = *end || so.ef_search < 1 || so.ef_search > 10000;
                break;
            case 'w':
                so.vector_weight = strtod(optarg, &end);
                bad = *end || so.vector_weight < 0 || so.vector_weight > 1;
                break;
            case 'm':
                bad = ragd_kb_parse_mode(optarg, &so.mode) != 0;
                mode_set = 1;
                break;
            case 'f':
                bad = ragd_kb_parse_fusion(optarg, &so.fusion) != 0;
                break;
            case 'v':
                if (!strcmp(optarg, "exact"))
                    so.vec_algo = RAGD_KB_VEC_EXACT;
                else if (!strcmp(optarg, "hnsw"))
                    so.vec_algo = RAGD_KB_VEC_HNSW;
                else
                    bad = strcmp(optarg, "auto") != 0;
                break;
            case 'h':
                printf("%s", USAGE);
                free(queries);
                return 0;
            default:
                bad = 1;
        }
    }
    if (bad || !kb_path || !indexes || !nq || optind < argc) {
        fprintf(stderr, "ragd search: %s\n%s",
                bad ? "bad option value" : "--kb, --index and --query are required", USAGE);
        free(queries);
        return 2;
    }
    if (!mode_set) so.mode = embed ? RAGD_KB_HYBRID : RAGD_KB_BM25;
    const char *ix[64];
    so.n_indexes = kb_cli_split(indexes, ix, 64);
    so.indexes = ix;
    kb_cli k;
    if (kb_cli_open(&k, kb_path, 1, embed, &ko)) {
        free(queries);
        return 1;
    }
    ragd_kb_results res;
    ragd_err err = {0};
    int rc = ragd_kb_search(k.kb, k.emb, queries, nq, &so, &res, &err);
    if (rc) {
        fprintf(stderr, "ragd search: %s\n", err.msg);
        kb_cli_close(&k);
        free(queries);
        return 1;
    }
    if (json) {
        ragd_buf b = {0};
        ragd_buf_printf(&b,
                        "{\"object\":\"list\",\"mode\":\"%s\",\"k\":%d,\"distinct_queries\":%zu,"
                        "\"data\":",
                        ragd_kb_mode_name(so.mode), so.k, res.n_distinct);
        ragd_kb_results_json(&res, queries, 1, &b);
        ragd_buf_printf(&b,
                        ",\"timings\":{\"embed_ms\":%.3f,\"search_ms\":%.3f,\"fetch_ms\":%.3f}}",
                        res.embed_ms, res.search_ms, res.fetch_ms);
        printf("%s\n", b.data);
        ragd_buf_free(&b);
    } else {
        for (size_t i = 0; i < nq; i++) {
            if (nq > 1) printf("== query %zu: %s\n", i + 1, queries[i]);
            for (size_t j = 0; j < res.n_hits[i]; j++) {
                const ragd_kb_hit *h = &res.hits[i][j];
                printf("%2zu. [%s] %.4f  %s", j + 1, h->index, h->score,
                       h->source ? h->source : "");
                if (h->bm25_rank || h->vector_rank)
                    printf("  (bm25 #%d, vector #%d)", h->bm25_rank, h->vector_rank);
                printf("\n");
                if (h->text) {
                    size_t n = strlen(h->text),
                           cut = n > 160 ? ragd_utf8_complete_prefix(h->text, 160) : n;
                    printf("    %.*s%s\n", (int)cut, h->text, cut < n ? "..." : "");
                }
            }
            if (!res.n_hits[i]) printf("(no results)\n");
        }
    }
    ragd_kb_results_free(&res);
    kb_cli_close(&k);
    free(queries);
    return 0;
}

RAGD_COMMAND(search, 44, "search kb indexes: bm25, vector or hybrid; batched queries", run_search)
