/* ragd kb: inspect and maintain a knowledge base. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "cli/kb_cli.h"
#include "kb/analyzer.h"
#include "util/str.h"

static const char *USAGE =
    "usage: ragd kb --kb FILE list|stats [--json]\n"
    "       ragd kb --kb FILE delete-index NAME\n"
    "       ragd kb --kb FILE delete-doc PATH|SOURCE [--index NAME]\n"
    "       ragd kb --kb FILE df --index NAME TEXT...\n"
    "       ragd kb --kb FILE check\n"
    "  list          indexes with their embedding model and counts\n"
    "  stats         the same plus database size\n"
    "  delete-index  remove an index and everything in it\n"
    "  delete-doc    remove a document (by source, e.g. file.jsonl#id) or every document of\n"
    "                an ingested file, from one index or all\n"
    "  df            document frequency (in chunks) of the analysed terms of TEXT\n"
    "  check         verify the database invariants (exit 1 when violated)\n";

typedef struct {
    ragd_buf *b;
} df_terms;

static int collect_term(void *ctx, const char *t, size_t n, size_t s, size_t e) {
    (void)s;
    (void)e;
    ragd_buf *b = ctx;
    return ragd_buf_append(b, t, n) || ragd_buf_putc(b, '\0');
}

static int run_kb(int argc, char **argv) {
    const char *kb_path = NULL, *index = NULL;
    int json = 0;
    static const struct option opts[] = {{"kb", required_argument, 0, 'k'},
                                         {"index", required_argument, 0, 'i'},
                                         {"json", no_argument, 0, 'j'},
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
            case 'j':
                json = 1;
                break;
            case 'h':
                printf("%s", USAGE);
                return 0;
            default:
                fprintf(stderr, "%s", USAGE);
                return 2;
        }
    }
    if (!kb_path || optind >= argc) {
        fprintf(stderr, "ragd kb: --kb and an action are required\n%s", USAGE);
        return 2;
    }
    const char *act = argv[optind++];
    int nargs = argc - optind;
    int is_list = !strcmp(act, "list") || !strcmp(act, "stats") || !strcmp(act, "check");
    if ((is_list && nargs) || (!strcmp(act, "delete-index") && nargs != 1) ||
        (!strcmp(act, "delete-doc") && nargs != 1) || (!strcmp(act, "df") && (!nargs || !index)) ||
        (!is_list && strcmp(act, "delete-index") && strcmp(act, "delete-doc") &&
         strcmp(act, "df"))) {
        fprintf(stderr, "ragd kb: bad action or arguments\n%s", USAGE);
        return 2;
    }
    kb_cli k;
    /* check opens read-write: a file whose first ingest was interrupted before the schema
     * was committed is then an empty, consistent knowledge base */
    int ro = (is_list && strcmp(act, "check")) || !strcmp(act, "df");
    if (kb_cli_open(&k, kb_path, ro, NULL, NULL)) return 1;
    ragd_err err = {0};
    int rc = 0;
    ragd_store_index *ix = NULL;
    size_t n = 0;
    if (!strcmp(act, "check")) {
        ragd_buf rep = {0};
        size_t problems = 0;
        ragd_store *st = ragd_kb_store(k.kb);
        if (st->ops->check(st, &rep, &problems, &err)) {
            ragd_buf_free(&rep);
            goto fail;
        }
        if (problems) {
            fprintf(stderr, "ragd kb check: %zu problems\n%s", problems, rep.data);
            rc = 1;
        } else {
            printf("ok\n");
        }
        ragd_buf_free(&rep);
    } else if (is_list) {
        if (ragd_kb_list(k.kb, &ix, &n, &err)) goto fail;
        struct stat st;
        long long size = stat(kb_path, &st) == 0 ? (long long)st.st_size : -1;
        if (json) {
            printf("{\"kb\":");
            ragd_buf b = {0};
            ragd_buf_json_str(&b, kb_path, strlen(kb_path));
            printf("%s,\"bytes\":%lld,\"indexes\":[", b.data, size);
            for (size_t i = 0; i < n; i++) {
                ragd_buf_clear(&b);
                ragd_buf_json_str(&b, ix[i].name, strlen(ix[i].name));
                ragd_buf_puts(&b, ",\"embed_model\":");
                ragd_buf_json_str(&b, ix[i].embed_model, strlen(ix[i].embed_model));
                printf("%s{\"name\":%s,\"dim\":%d,\"vector_dtype\":\"%s\",\"files\":%lld,"
                       "\"documents\":%lld,\"chunks\":%lld,\"vectors\":%lld}",
                       i ? "," : "", b.data, ix[i].dim, ragd_kb_vec_dtype_name(ix[i].vec_dtype),
                       (long long)ix[i].n_files, (long long)ix[i].n_docs, (long long)ix[i].n_chunks,
                       (long long)ix[i].n_vectors);
            }
            printf("]}\n");
            ragd_buf_free(&b);
        } else {
            printf("%-24s %-28s %5s %5s %8s %10s %10s %10s\n", "index", "embedding model", "dim",
                   "dtype", "files", "documents", "chunks", "vectors");
            for (size_t i = 0; i < n; i++)
                printf("%-24s %-28s %5d %5s %8lld %10lld %10lld %10lld\n", ix[i].name,
                       *ix[i].embed_model ? ix[i].embed_model : "(bm25 only)", ix[i].dim,
                       ix[i].dim ? ragd_kb_vec_dtype_name(ix[i].vec_dtype) : "-",
                       (long long)ix[i].n_files, (long long)ix[i].n_docs, (long long)ix[i].n_chunks,
                       (long long)ix[i].n_vectors);
            if (!strcmp(act, "stats"))
                printf("%zu indexes, database %s: %lld bytes\n", n, kb_path, size);
        }
    } else if (!strcmp(act, "delete-index")) {
        if (ragd_kb_delete_index(k.kb, argv[optind], &err)) goto fail;
        printf("deleted index %s\n", argv[optind]);
    } else if (!strcmp(act, "delete-doc")) {
        /* ingest records absolute paths: resolve a path that exists */
        char real[PATH_MAX];
        const char *src = argv[optind];
        if (realpath(src, real)) src = real;
        if (ragd_kb_list(k.kb, &ix, &n, &err)) goto fail;
        size_t total = 0, found_ix = 0;
        for (size_t i = 0; i < n; i++) {
            if (index && strcmp(index, ix[i].name)) continue;
            found_ix++;
            size_t d = 0;
            if (ragd_kb_delete_doc(k.kb, ix[i].name, src, &d, &err)) goto fail;
            total += d;
        }
        if (index && !found_ix) {
            ragd_err_set(&err, RAGD_ENOTFOUND, "no index named '%s'", index);
            goto fail;
        }
        if (!total) {
            ragd_err_set(&err, RAGD_ENOTFOUND, "no document or file '%s' in the knowledge base",
                         src);
            goto fail;
        }
        printf("deleted %zu documents\n", total);
    } else { /* df */
        ragd_buf terms = {0};
        for (int i = optind; i < argc; i++)
            ragd_kb_analyze(argv[i], strlen(argv[i]), collect_term, &terms);
        size_t nt = 0;
        for (size_t i = 0; i < terms.len; i++) nt += terms.data[i] == 0;
        const char **tv = calloc(nt + 1, sizeof *tv);
        int64_t *df = calloc(nt + 1, sizeof *df);
        int64_t nd = 0;
        size_t j = 0;
        for (size_t i = 0; tv && i < terms.len; i += strlen(terms.data + i) + 1)
            tv[j++] = terms.data + i;
        if (!tv || !df || ragd_kb_term_stats(k.kb, index, tv, nt, df, &nd, &err)) {
            if (!tv || !df) ragd_err_set(&err, RAGD_ENOMEM, "out of memory");
            free(tv);
            free(df);
            ragd_buf_free(&terms);
            goto fail;
        }
        printf("N %lld\n", (long long)nd);
        for (size_t i = 0; i < nt; i++) printf("%s\t%lld\n", tv[i], (long long)df[i]);
        free(tv);
        free(df);
        ragd_buf_free(&terms);
    }
    goto done;
fail:
    fprintf(stderr, "ragd kb %s: %s\n", act, err.msg);
    rc = 1;
done:
    free(ix);
    kb_cli_close(&k);
    return rc;
}

RAGD_COMMAND(kb, 42, "list, stats, delete-index, delete-doc, df on a knowledge base", run_kb)
