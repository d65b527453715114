/* kb_cli.c - shared setup for the knowledge-base subcommands. */
#include "cli/kb_cli.h"

#include <stdio.h>
#include <string.h>

static const char *g_embed_device;    /* NULL: cpu */
static const char *g_embed_precision; /* NULL: f32 */

void kb_cli_set_embed_device(const char *device) {
    g_embed_device = device;
}

void kb_cli_set_embed_precision(const char *precision) {
    g_embed_precision = precision;
}

int kb_cli_open(kb_cli *c, const char *kb_path, int readonly, const char *embed_spec,
                const ragd_kb_opts *extra) {
    memset(c, 0, sizeof *c);
    ragd_err err = {0};
    c->pool = ragd_pool_create(0);
    ragd_kb_opts o = extra ? *extra : (ragd_kb_opts){0};
    o.path = kb_path;
    o.readonly = readonly;
    o.pool = c->pool;
    if (ragd_kb_open(&o, &c->kb, &err)) {
        fprintf(stderr, "ragd: %s\n", err.msg);
        kb_cli_close(c);
        return 1;
    }
    if (embed_spec && ragd_kb_embedder_open_ex(embed_spec, g_embed_device, g_embed_precision,
                                               c->pool, &c->emb, &err)) {
        fprintf(stderr, "ragd: --embed-model %s: %s\n", embed_spec, err.msg);
        kb_cli_close(c);
        return 1;
    }
    return 0;
}

void kb_cli_close(kb_cli *c) {
    ragd_kb_embedder_close(c->emb);
    ragd_kb_close(c->kb);
    ragd_pool_destroy(c->pool);
    memset(c, 0, sizeof *c);
}

size_t kb_cli_split(char *s, const char **out, size_t max) {
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(s, ",", &save); t && n < max;
         t = strtok_r(NULL, ",", &save))
        if (*t) out[n++] = t;
    return n;
}
