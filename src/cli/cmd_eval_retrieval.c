/* ragd eval-retrieval: recall@1/5/10, MRR@10, nDCG@10 of an index against qrels. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/kb_cli.h"

static const char *USAGE =
    "usage: ragd eval-retrieval --kb FILE --index NAME --queries Q.jsonl --qrels QRELS.tsv\n"
    "                           [--mode bm25|vector|hybrid] [--fusion rrf|weighted]\n"
    "                           [--embed-model SPEC] [--vector-search auto|exact|hnsw] [--json]\n"
    "                           [--bm25-max-df X]\n"
    "  queries: one JSON object per line with \"_id\" (or \"id\") and \"text\"\n"
    "  qrels:   query-id <TAB> corpus-id <TAB> grade (header allowed); corpus ids are the\n"
    "           documents' ids from ingest (jsonl id/_id, csv id column)\n"
    "  --bm25-max-df X: leave query terms in more than X (0..1) of the chunks out of BM25\n"
    "           when a rarer term remains (see ragd search --help; default: keep all)\n";

static int run_eval(int argc, char **argv) {
    const char *kb_path = NULL, *index = NULL, *queries = NULL, *qrels = NULL, *embed = NULL;
    int json = 0;
    ragd_kb_search_opts so = {0};
    ragd_kb_opts ko = {0};
    so.mode = RAGD_KB_BM25;
    so.vector_weight = 0.5;
    static const struct option opts[] = {{"kb", required_argument, 0, 'k'},
                                         {"index", required_argument, 0, 'i'},
                                         {"queries", required_argument, 0, 'q'},
                                         {"qrels", required_argument, 0, 'r'},
                                         {"mode", required_argument, 0, 'm'},
                                         {"fusion", required_argument, 0, 'f'},
                                         {"embed-model", required_argument, 0, 'e'},
                                         {"vector-search", required_argument, 0, 'v'},
                                         {"json", no_argument, 0, 'j'},
                                         {"bm25-max-df", required_argument, 0, 'D'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case 'k':
                kb_path = optarg;
                break;
            case 'i':
                index = optarg;
                break;
            case 'q':
                queries = optarg;
                break;
            case 'r':
                qrels = optarg;
                break;
            case 'e':
                embed = optarg;
                break;
            case 'D': {
                char *end;
                ko.bm25_max_df = strtod(optarg, &end);
                if (*end || !(ko.bm25_max_df > 0 && ko.bm25_max_df <= 1)) {
                    fprintf(stderr, "ragd eval-retrieval: --bm25-max-df must be in (0, 1]\n%s",
                            USAGE);
                    return 2;
                }
                break;
            }
            case 'j':
                json = 1;
                break;
            case 'm':
                if (ragd_kb_parse_mode(optarg, &so.mode)) {
                    fprintf(stderr, "ragd eval-retrieval: bad --mode '%s'\n", optarg);
                    return 2;
                }
                break;
            case 'f':
                if (ragd_kb_parse_fusion(optarg, &so.fusion)) {
                    fprintf(stderr, "ragd eval-retrieval: bad --fusion '%s'\n", optarg);
                    return 2;
                }
                break;
            case 'v':
                if (!strcmp(optarg, "exact"))
                    so.vec_algo = RAGD_KB_VEC_EXACT;
                else if (!strcmp(optarg, "hnsw"))
                    so.vec_algo = RAGD_KB_VEC_HNSW;
                else if (strcmp(optarg, "auto")) {
                    fprintf(stderr, "ragd eval-retrieval: bad --vector-search '%s'\n", optarg);
                    return 2;
                }
                break;
            case 'h':
                printf("%s", USAGE);
                return 0;
            default:
                fprintf(stderr, "%s", USAGE);
                return 2;
        }
    }
    if (!kb_path || !index || !queries || !qrels || optind < argc) {
        fprintf(stderr,
                "ragd eval-retrieval: --kb, --index, --queries and --qrels are required\n%s",
                USAGE);
        return 2;
    }
    kb_cli k;
    if (kb_cli_open(&k, kb_path, 1, embed, &ko)) return 1;
    const char *ix[1] = {index};
    so.indexes = ix;
    so.n_indexes = 1;
    ragd_kb_eval ev;
    ragd_err err = {0};
    int rc = ragd_kb_eval_retrieval(k.kb, k.emb, queries, qrels, &so, 256, &ev, &err);
    kb_cli_close(&k);
    if (rc) {
        fprintf(stderr, "ragd eval-retrieval: %s\n", err.msg);
        return 1;
    }
    if (json)
        printf("{\"index\":\"%s\",\"mode\":\"%s\",\"queries\":%zu,\"judged\":%zu,\"recall@1\":%.4f,"
               "\"recall@5\":%.4f,\"recall@10\":%.4f,\"mrr@10\":%.4f,\"ndcg@10\":%.4f,"
               "\"seconds\":%.3f}\n",
               index, ragd_kb_mode_name(so.mode), ev.n_queries, ev.n_judged, ev.recall1, ev.recall5,
               ev.recall10, ev.mrr10, ev.ndcg10, ev.seconds);
    else
        printf("index %s, mode %s: %zu judged queries (of %zu)\n"
               "recall@1  %.4f\nrecall@5  %.4f\nrecall@10 %.4f\nMRR@10    %.4f\nnDCG@10   %.4f\n"
               "(%.2f s, %.0f queries/s)\n",
               index, ragd_kb_mode_name(so.mode), ev.n_judged, ev.n_queries, ev.recall1, ev.recall5,
               ev.recall10, ev.mrr10, ev.ndcg10, ev.seconds,
               ev.seconds > 0 ? (double)ev.n_judged / ev.seconds : 0.0);
    return 0;
}

/* RAGD_COMMAND builds identifiers from the name, so a hyphenated name registers by hand. */
static const ragd_command ragd_cmd_eval_retrieval = {
    "eval-retrieval", "recall@k, MRR@10, nDCG@10 of a kb index against qrels", 46, run_eval};
__attribute__((constructor)) static void ragd_register_eval_retrieval(void) {
    ragd_command_register(&ragd_cmd_eval_retrieval);
}
