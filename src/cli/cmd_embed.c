/* ragd embed: sentence embeddings of texts given on the command line or in a file (one text
 * per line), printed as text or as the /v1/embeddings JSON response. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "embed/embed.h"
#include "util/str.h"
#include "util/threadpool.h"
#include "util/vec.h"

static const char *usage_text =
    "usage: ragd embed --model DIR (--text T ... | --file F) [--json] [--threads N]\n"
    "                  [--device cpu] [--precision f32|bf16] [--max-batch-tokens N]\n"
    "  --model DIR           BERT-family model directory (config.json, safetensors,\n"
    "                        tokenizer.json or vocab.txt, sentence-transformers files)\n"
    "  --text T              a text to embed (repeatable)\n"
    "  --file F              one text per line ('-' = stdin); empty lines are skipped\n"
    "  --json                print the OpenAI /v1/embeddings response shape\n"
    "  --threads N           CPU threads (default: all online CPUs)\n"
    "  --device D            cpu (default) or cuda\n"
    "  --precision P         f32 (default, exact) or bf16 (AMX GEMMs: faster, cosine\n"
    "                        >= 0.999 to f32; needs a CPU with AMX)\n"
    "  --max-batch-tokens N  tokens per forward pass (default 16384)\n"
    "Text output: one line per text: index, token count, then the vector.\n";

typedef RAGD_VEC(char *) str_vec;

static int read_lines(const char *path, str_vec *texts, char **owned) {
    char *data = NULL;
    size_t len = 0;
    ragd_err err = {0};
    if (strcmp(path, "-") == 0) {
        ragd_buf b = {0};
        char chunk[65536];
        size_t k;
        while ((k = fread(chunk, 1, sizeof chunk, stdin)) > 0)
            if (ragd_buf_append(&b, chunk, k)) return RAGD_ENOMEM;
        len = b.len;
        data = ragd_buf_steal(&b);
    } else if (ragd_read_file(path, &data, &len, &err)) {
        fprintf(stderr, "ragd embed: %s\n", err.msg);
        return RAGD_EIO;
    }
    *owned = data;
    char *p = data, *end = data + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        if (e > p && e[-1] == '\r') e[-1] = '\0';
        *e = '\0';
        if (*p && RAGD_VEC_PUSH(texts, p)) return RAGD_ENOMEM;
        p = e + 1;
    }
    return RAGD_OK;
}

static int run_embed(int argc, char **argv) {
    const char *model = NULL, *file = NULL, *device = "cpu", *precision = "f32";
    int json = 0, threads = 0, max_batch = 0;
    str_vec texts = {0};
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"text", required_argument, 0, 't'},
                                         {"file", required_argument, 0, 'f'},
                                         {"json", no_argument, 0, 'j'},
                                         {"threads", required_argument, 0, 'n'},
                                         {"device", required_argument, 0, 'd'},
                                         {"max-batch-tokens", required_argument, 0, 'b'},
                                         {"precision", required_argument, 0, 'p'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
            case 'm':
                model = optarg;
                break;
            case 't':
                if (RAGD_VEC_PUSH(&texts, optarg)) return 1;
                break;
            case 'f':
                file = optarg;
                break;
            case 'j':
                json = 1;
                break;
            case 'n':
                threads = (int)strtol(optarg, &end, 10);
                if (*end || threads < 1 || threads > 1024) {
                    fprintf(stderr, "ragd embed: --threads wants 1..1024\n");
                    RAGD_VEC_FREE(&texts);
                    return 2;
                }
                break;
            case 'd':
                device = optarg;
                break;
            case 'p':
                precision = optarg;
                break;
            case 'b':
                max_batch = (int)strtol(optarg, &end, 10);
                if (*end || max_batch < 1) {
                    fprintf(stderr, "ragd embed: --max-batch-tokens wants a positive number\n");
                    RAGD_VEC_FREE(&texts);
                    return 2;
                }
                break;
            case 'h':
                fputs(usage_text, stdout);
                RAGD_VEC_FREE(&texts);
                return 0;
            default:
                fputs(usage_text, stderr);
                RAGD_VEC_FREE(&texts);
                return 2;
        }
    }
    if (optind < argc || !model || (texts.len == 0) == (file == NULL)) {
        if (optind < argc)
            fprintf(stderr, "ragd embed: unexpected argument '%s'\n", argv[optind]);
        else if (!model)
            fprintf(stderr, "ragd embed: --model is required\n");
        else
            fprintf(stderr, "ragd embed: give either --text (repeatable) or --file\n");
        fputs(usage_text, stderr);
        RAGD_VEC_FREE(&texts);
        return 2;
    }
    char *owned = NULL;
    if (file && read_lines(file, &texts, &owned)) {
        free(owned);
        RAGD_VEC_FREE(&texts);
        return 1;
    }
    int rc = 1;
    ragd_pool *pool = ragd_pool_create(threads);
    ragd_embedder *e = NULL;
    ragd_err err = {0};
    float *vecs = NULL;
    int *ntok = NULL;
    uint8_t *trunc = NULL;
    if (!pool) {
        fprintf(stderr, "ragd embed: cannot start threads\n");
        goto out;
    }
    ragd_embedder_opts eo = {.model_dir = model,
                             .device = device,
                             .pool = pool,
                             .max_batch_tokens = max_batch,
                             .precision = precision};
    if (ragd_embedder_create(&eo, &e, &err)) {
        fprintf(stderr, "ragd embed: %s\n", err.msg);
        goto out;
    }
    const int dim = ragd_embedder_dim(e);
    const size_t n = texts.len;
    vecs = malloc((n ? n : 1) * (size_t)dim * sizeof(float));
    ntok = calloc(n ? n : 1, sizeof(int));
    trunc = calloc(n ? n : 1, 1);
    if (!vecs || !ntok || !trunc) {
        fprintf(stderr, "ragd embed: out of memory\n");
        goto out;
    }
    /* chunks of 256 texts so a TTY sees progress on long files */
    const bool progress = isatty(STDERR_FILENO) && n > 256;
    for (size_t i = 0; i < n; i += 256) {
        size_t k = n - i < 256 ? n - i : 256;
        if (ragd_embedder_embed(e, (const char *const *)texts.data + i, NULL, k,
                                vecs + i * (size_t)dim, ntok + i, trunc + i, &err)) {
            fprintf(stderr, "\nragd embed: %s\n", err.msg);
            goto out;
        }
        if (progress) fprintf(stderr, "\rembedded %zu/%zu", i + k, n);
    }
    if (progress) fprintf(stderr, "\n");
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += (size_t)ntok[i];
        if (trunc[i])
            fprintf(stderr, "ragd embed: text %zu truncated to %d tokens\n", i,
                    ragd_embedder_max_tokens(e));
    }
    ragd_buf o = {0};
    if (json) {
        ragd_buf_puts(&o, "{\"object\":\"list\",\"data\":[");
        for (size_t i = 0; i < n; i++) {
            ragd_buf_printf(&o, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":[",
                            i ? "," : "", i);
            for (int d = 0; d < dim; d++)
                ragd_buf_printf(&o, d ? ",%.9g" : "%.9g", (double)vecs[i * (size_t)dim + d]);
            ragd_buf_puts(&o, "]}");
        }
        ragd_buf_puts(&o, "],\"model\":");
        const char *name = ragd_embedder_model_name(e);
        ragd_buf_json_str(&o, name, strlen(name));
        ragd_buf_printf(&o, ",\"usage\":{\"prompt_tokens\":%zu,\"total_tokens\":%zu}}\n", total,
                        total);
    } else {
        for (size_t i = 0; i < n; i++) {
            ragd_buf_printf(&o, "%zu\t%d\t", i, ntok[i]);
            for (int d = 0; d < dim; d++)
                ragd_buf_printf(&o, d ? " %.7g" : "%.7g", (double)vecs[i * (size_t)dim + d]);
            ragd_buf_putc(&o, '\n');
        }
    }
    if (o.len && fwrite(o.data, 1, o.len, stdout) != o.len) {
        ragd_buf_free(&o);
        fprintf(stderr, "ragd embed: write error\n");
        goto out;
    }
    ragd_buf_free(&o);
    rc = 0;
out:
    free(vecs);
    free(ntok);
    free(trunc);
    ragd_embedder_destroy(e);
    ragd_pool_destroy(pool);
    free(owned);
    RAGD_VEC_FREE(&texts);
    return rc;
}

RAGD_COMMAND(embed, 30, "sentence embeddings (BERT / bge) of texts or a file", run_embed)
