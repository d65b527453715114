/* ragd tokenize: text -> token ids (and back) with a model directory's tokenizer.json. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "tokenizer/tokenizer.h"
#include "util/str.h"
#include "util/vec.h"

static const char USAGE[] =
    "usage: ragd tokenize --model DIR (--text T | --file F | --decode IDS) [--json] "
    "[--skip-special]\n"
    "  --model DIR       model directory with tokenizer.json (+ tokenizer_config.json)\n"
    "  --text T          encode the UTF-8 text T\n"
    "  --file F          encode the contents of file F ('-' reads stdin)\n"
    "  --decode IDS      decode comma-separated ids, e.g. 9707,1879\n"
    "  --json            print {\"ids\":[...]} (or {\"text\":\"...\"} with --decode)\n"
    "  --skip-special    with --decode: drop special tokens\n";

static int read_stdin(char **out, size_t *len) {
    ragd_buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
        if (ragd_buf_append(&b, chunk, n)) {
            ragd_buf_free(&b);
            return RAGD_ENOMEM;
        }
    if (ferror(stdin)) {
        ragd_buf_free(&b);
        return RAGD_EIO;
    }
    *len = b.len;
    *out = ragd_buf_steal(&b);
    return RAGD_OK;
}

/* "1,2, 3" -> ids; returns 0 or -1 on a malformed list. */
typedef RAGD_VEC(int32_t) id_vec;

static int parse_ids(const char *s, id_vec *ids) {
    const char *p = s;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < -2147483647L || v > 2147483647L) return -1;
        if (*end && *end != ',' && *end != ' ') return -1;
        if (RAGD_VEC_PUSH(ids, (int32_t)v)) return -1;
        p = end;
    }
    return ids->len ? 0 : -1;
}

static int run_tokenize(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *file = NULL, *decode = NULL;
    int json = 0, skip_special = 0;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"text", required_argument, 0, 't'},
        {"file", required_argument, 0, 'f'},  {"decode", required_argument, 0, 'd'},
        {"json", no_argument, 0, 'j'},        {"skip-special", no_argument, 0, 's'},
        {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case 'm':
                model = optarg;
                break;
            case 't':
                text = optarg;
                break;
            case 'f':
                file = optarg;
                break;
            case 'd':
                decode = optarg;
                break;
            case 'j':
                json = 1;
                break;
            case 's':
                skip_special = 1;
                break;
            case 'h':
                fputs(USAGE, stdout);
                return 0;
            default:
                fputs(USAGE, stderr);
                return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ragd tokenize: unexpected argument '%s'\n%s", argv[optind], USAGE);
        return 2;
    }
    if (!model || (!!text + !!file + !!decode) != 1) {
        fprintf(stderr,
                "ragd tokenize: need --model and exactly one of --text, --file, --decode\n%s",
                USAGE);
        return 2;
    }
    id_vec dids = {0};
    if (decode && parse_ids(decode, &dids) != 0) {
        fprintf(stderr, "ragd tokenize: --decode wants comma-separated integer ids, got '%s'\n",
                decode);
        RAGD_VEC_FREE(&dids);
        return 2;
    }
    ragd_err err = {0};
    ragd_tokenizer *tok = NULL;
    char *data = NULL;
    int32_t *ids = NULL;
    size_t len = 0, n = 0;
    ragd_buf out = {0};
    int rc = ragd_tokenizer_load(model, &tok, &err);
    if (rc) goto fail;
    if (decode) {
        rc = ragd_tokenizer_decode(tok, dids.data, dids.len, skip_special, &out, &err);
        if (rc) goto fail;
        if (json) {
            ragd_buf j = {0};
            ragd_buf_puts(&j, "{\"text\":");
            ragd_buf_json_str(&j, out.data, out.len);
            ragd_buf_puts(&j, "}\n");
            fwrite(j.data, 1, j.len, stdout);
            ragd_buf_free(&j);
        } else {
            fwrite(out.data, 1, out.len, stdout);
            fputc('\n', stdout);
        }
    } else {
        if (text) {
            len = strlen(text);
            rc = ragd_tokenizer_encode(tok, text, len, &ids, &n, &err);
        } else {
            if (strcmp(file, "-") == 0) {
                rc = read_stdin(&data, &len);
                if (rc) ragd_err_set(&err, rc, "cannot read stdin");
            } else {
                rc = ragd_read_file(file, &data, &len, &err);
            }
            if (!rc) rc = ragd_tokenizer_encode(tok, data, len, &ids, &n, &err);
        }
        if (rc) goto fail;
        ragd_buf_puts(&out, json ? "{\"ids\":[" : "");
        for (size_t i = 0; i < n; i++)
            ragd_buf_printf(&out, i ? (json ? ",%d" : " %d") : "%d", ids[i]);
        ragd_buf_puts(&out, json ? "]}\n" : "\n");
        fwrite(out.data, 1, out.len, stdout);
    }
    if (fflush(stdout) != 0) {
        ragd_err_set(&err, RAGD_EIO, "cannot write to stdout");
        rc = RAGD_EIO;
        goto fail;
    }
    goto done;
fail:
    fprintf(stderr, "ragd tokenize: %s\n", err.msg[0] ? err.msg : ragd_err_name(rc));
done:
    ragd_buf_free(&out);
    free(ids);
    free(data);
    RAGD_VEC_FREE(&dids);
    ragd_tokenizer_destroy(tok);
    return rc ? 1 : 0;
}

RAGD_COMMAND(tokenize, 20, "text <-> token ids with a model's tokenizer", run_tokenize)
