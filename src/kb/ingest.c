/* ingest.c - files -> documents -> chunks -> embeddings -> one store transaction per file. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>

#include "kb/kb.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/str.h"
#include "util/vec.h"

typedef RAGD_VEC(char *) str_vec;

typedef struct doc_in {
    char *source, *ext_id, *title, *meta;
    char *text; /* owned */
    size_t len;
} doc_in;
typedef RAGD_VEC(doc_in) doc_vec;

static void docs_free(doc_vec *v) {
    for (size_t i = 0; i < v->len; i++) {
        free(v->data[i].source);
        free(v->data[i].ext_id);
        free(v->data[i].title);
        free(v->data[i].meta);
        free(v->data[i].text);
    }
    RAGD_VEC_FREE(v);
}

static int supported(const char *p) {
    return ragd_str_ends_with(p, ".txt") || ragd_str_ends_with(p, ".md") ||
           ragd_str_ends_with(p, ".jsonl") || ragd_str_ends_with(p, ".csv");
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Collect files under path (recursively, sorted). Explicit files are kept whatever their
 * extension (and fail later if unsupported); directory walks keep supported ones only. */
static int collect(const char *path, int explicit_arg, str_vec *out, ragd_err *err) {
    struct stat st;
    if (stat(path, &st) != 0) {
        /* keep it: the per-file step reports the error and counts it failed */
        char *d = strdup(path);
        return d && !RAGD_VEC_PUSH(out, d) ? RAGD_OK : ragd_err_set(err, RAGD_ENOMEM, "oom");
    }
    if (S_ISDIR(st.st_mode)) {
        DIR *dir = opendir(path);
        if (!dir) {
            LOG_ERROR("ingest: cannot open directory %s: %s", path, strerror(errno));
            return RAGD_OK;
        }
        str_vec names = {0};
        struct dirent *de;
        while ((de = readdir(dir))) {
            if (de->d_name[0] == '.') continue;
            char *d = strdup(de->d_name);
            if (!d || RAGD_VEC_PUSH(&names, d)) {
                free(d);
                closedir(dir);
                return ragd_err_set(err, RAGD_ENOMEM, "oom");
            }
        }
        closedir(dir);
        qsort(names.data, names.len, sizeof *names.data, cmp_str);
        int rc = RAGD_OK;
        for (size_t i = 0; i < names.len; i++) {
            ragd_buf p = {0};
            if (!rc && !ragd_buf_printf(&p, "%s/%s", path, names.data[i])) {
                struct stat s2;
                if (stat(p.data, &s2) == 0 && (S_ISDIR(s2.st_mode) || supported(p.data)))
                    rc = collect(p.data, 0, out, err);
            }
            ragd_buf_free(&p);
            free(names.data[i]);
        }
        RAGD_VEC_FREE(&names);
        return rc;
    }
    if (!explicit_arg && !supported(path)) return RAGD_OK;
    char *d = strdup(path);
    if (!d || RAGD_VEC_PUSH(out, d)) {
        free(d);
        return ragd_err_set(err, RAGD_ENOMEM, "oom");
    }
    return RAGD_OK;
}

static size_t line_of(const char *s, size_t off) {
    size_t l = 1;
    for (size_t i = 0; i < off; i++) l += s[i] == '\n';
    return l;
}

static size_t first_invalid_utf8(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if ((unsigned char)s[i] < 0x80) {
            i++;
            continue;
        }
        utf8proc_int32_t cp;
        utf8proc_ssize_t k =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) return i;
        i += (size_t)k;
    }
    return n;
}

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) return 0;
    return 1;
}

static int push_doc(doc_vec *docs, const char *source, const char *ext_id, const char *title,
                    const char *meta, const char *text, size_t len) {
    doc_in d = {strdup(source), strdup(ext_id), strdup(title), strdup(meta), malloc(len + 1), len};
    if (!d.source || !d.ext_id || !d.title || !d.meta || !d.text || RAGD_VEC_PUSH(docs, d)) {
        free(d.source);
        free(d.ext_id);
        free(d.title);
        free(d.meta);
        free(d.text);
        return RAGD_ENOMEM;
    }
    memcpy(d.text, text, len);
    d.text[len] = 0;
    return RAGD_OK;
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* ---- parsers ---- */

static int parse_jsonl(const char *path, const char *data, size_t len, doc_vec *docs,
                       ragd_err *err) {
    size_t pos = 0, line = 0;
    int rc = RAGD_OK;
    while (pos < len && !rc) {
        line++;
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - data) : len;
        size_t ll = end - pos;
        const char *l = data + pos;
        pos = end + 1;
        if (is_blank(l, ll)) continue;
        cJSON *o = cJSON_ParseWithLength(l, ll);
        if (!o || !cJSON_IsObject(o)) {
            cJSON_Delete(o);
            return ragd_err_set(err, RAGD_EFORMAT, "line %zu: not a JSON object", line);
        }
        cJSON *text = cJSON_GetObjectItemCaseSensitive(o, "text");
        if (!cJSON_IsString(text)) {
            cJSON_Delete(o);
            return ragd_err_set(err, RAGD_EFORMAT, "line %zu: no \"text\" string field", line);
        }
        cJSON *title = cJSON_GetObjectItemCaseSensitive(o, "title");
        cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
        if (!id) id = cJSON_GetObjectItemCaseSensitive(o, "_id");
        char idbuf[64] = "";
        const char *ids = "";
        if (cJSON_IsString(id))
            ids = id->valuestring;
        else if (cJSON_IsNumber(id)) {
            snprintf(idbuf, sizeof idbuf, "%.17g", id->valuedouble);
            ids = idbuf;
        }
        /* metadata: every other field */
        cJSON *meta = cJSON_CreateObject();
        for (cJSON *f = o->child; f && meta; f = f->next) {
            if (!strcmp(f->string, "text") || !strcmp(f->string, "title") ||
                !strcmp(f->string, "id") || !strcmp(f->string, "_id"))
                continue;
            cJSON_AddItemToObject(meta, f->string, cJSON_Duplicate(f, 1));
        }
        char *ms = meta ? cJSON_PrintUnformatted(meta) : NULL;
        ragd_buf src = {0};
        if (*ids)
            rc = ragd_buf_printf(&src, "%s#%s", path, ids);
        else
            rc = ragd_buf_printf(&src, "%s#L%zu", path, line);
        if (!ms || rc) {
            rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        } else {
            const char *t = text->valuestring;
            if (!ragd_utf8_valid(t, strlen(t)))
                rc = ragd_err_set(err, RAGD_EFORMAT, "line %zu: text is not valid UTF-8", line);
            else if (is_blank(t, strlen(t)))
                LOG_WARN("ingest: %s line %zu: empty text, skipped", path, line);
            else if (push_doc(docs, src.data, ids, cJSON_IsString(title) ? title->valuestring : "",
                              ms, t, strlen(t)))
                rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        }
        ragd_buf_free(&src);
        free(ms);
        cJSON_Delete(meta);
        cJSON_Delete(o);
    }
    return rc;
}

/* RFC 4180 CSV: fields separated by commas, optionally quoted ("" escapes a quote).
 * Fills row (pointers into buf, which is rewritten in place); returns 0 at end of input. */
typedef RAGD_VEC(char *) field_vec;

static int csv_row(char *buf, size_t len, size_t *pos, field_vec *row, int *bad) {
    row->len = 0;
    *bad = 0;
    if (*pos >= len) return 0;
    size_t i = *pos;
    for (;;) {
        char *w = buf + i, *f = w;
        if (i < len && buf[i] == '"') {
            i++;
            for (;;) {
                if (i >= len) {
                    *bad = 1;
                    break;
                }
                if (buf[i] == '"') {
                    if (i + 1 < len && buf[i + 1] == '"') {
                        *w++ = '"';
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                *w++ = buf[i++];
            }
            if (i < len && buf[i] != ',' && buf[i] != '\n' && buf[i] != '\r') *bad = 1;
            while (i < len && buf[i] != ',' && buf[i] != '\n') i++;
        } else {
            while (i < len && buf[i] != ',' && buf[i] != '\n') *w++ = buf[i++];
            if (w > f && w[-1] == '\r') w--;
        }
        char sep = i < len ? buf[i] : '\n';
        *w = 0;
        if (RAGD_VEC_PUSH(row, f)) return -1;
        i++;
        if (sep == '\n') break;
    }
    *pos = i;
    return 1;
}

static int parse_csv(const char *path, char *data, size_t len, const char *text_col, doc_vec *docs,
                     ragd_err *err) {
    field_vec hdr = {0}, row = {0};
    char **names = NULL;
    size_t pos = 0, line = 1;
    int bad, rc = RAGD_OK;
    if (len >= 3 && !memcmp(data, "\xEF\xBB\xBF", 3)) pos = 3;
    int r = csv_row(data, len, &pos, &hdr, &bad);
    if (r <= 0 || bad) {
        rc = ragd_err_set(err, RAGD_EFORMAT, "no CSV header line");
        goto out;
    }
    names = malloc(hdr.len * sizeof *names);
    if (!names) {
        rc = ragd_err_set(err, RAGD_ENOMEM, "oom");
        goto out;
    }
    int ti = -1, tt = -1, id = -1;
    for (size_t i = 0; i < hdr.len; i++) {
        names[i] = hdr.data[i];
        if (!strcmp(names[i], text_col)) ti = (int)i;
        if (!strcmp(names[i], "title")) tt = (int)i;
        if (!strcmp(names[i], "id") || (id < 0 && !strcmp(names[i], "_id"))) id = (int)i;
    }
    if (ti < 0) {
        rc = ragd_err_set(err, RAGD_EINVAL,
                          "no column named '%s' in the CSV header (use --text-column)", text_col);
        goto out;
    }
    while ((r = csv_row(data, len, &pos, &row, &bad)) > 0) {
        line++;
        if (row.len == 1 && !*row.data[0]) continue;
        if (bad || row.len != hdr.len) {
            if (bad)
                rc = ragd_err_set(err, RAGD_EFORMAT, "CSV record %zu: bad or unterminated quotes",
                                  line);
            else
                rc =
                    ragd_err_set(err, RAGD_EFORMAT, "CSV record %zu has %zu fields, header has %zu",
                                 line, row.len, hdr.len);
            goto out;
        }
        cJSON *meta = cJSON_CreateObject();
        for (size_t i = 0; i < row.len && meta; i++)
            if ((int)i != ti && (int)i != tt && (int)i != id)
                cJSON_AddStringToObject(meta, names[i], row.data[i]);
        char *ms = meta ? cJSON_PrintUnformatted(meta) : NULL;
        cJSON_Delete(meta);
        ragd_buf src = {0};
        const char *ids = id >= 0 ? row.data[id] : "";
        int e = *ids ? ragd_buf_printf(&src, "%s#%s", path, ids)
                     : ragd_buf_printf(&src, "%s#R%zu", path, line);
        const char *t = row.data[ti];
        if (!ms || e)
            rc = ragd_err_set(err, RAGD_ENOMEM, "oom");
        else if (is_blank(t, strlen(t)))
            LOG_WARN("ingest: %s record %zu: empty text, skipped", path, line);
        else if (push_doc(docs, src.data, ids, tt >= 0 ? row.data[tt] : "", ms, t, strlen(t)))
            rc = ragd_err_set(err, RAGD_ENOMEM, "oom");
        free(ms);
        ragd_buf_free(&src);
        if (rc) goto out;
    }
    if (r < 0) rc = ragd_err_set(err, RAGD_ENOMEM, "oom");
out:
    free(names);
    RAGD_VEC_FREE(&hdr);
    RAGD_VEC_FREE(&row);
    return rc;
}

/* ---- one file ---- */

typedef struct chunk_w {
    size_t doc;
    ragd_store_chunk c;
    int need_vec;
    size_t tokens;
} chunk_w;
typedef RAGD_VEC(chunk_w) chunk_vec;

static int ingest_file(ragd_kb *kb, const ragd_store_index *ix, const char *path,
                       const ragd_kb_ingest_opts *o, ragd_kb_ingest_stats *stats, size_t files_done,
                       size_t files_total, uint64_t t_start, ragd_err *err) {
    ragd_store *st = ragd_kb_store(kb);
    char real[PATH_MAX];
    if (!realpath(path, real)) return ragd_err_set(err, RAGD_EIO, "%s", strerror(errno));
    if (!supported(real))
        return ragd_err_set(err, RAGD_EUNSUPPORTED,
                            "unsupported file type (want .txt, .md, .jsonl or .csv)");
    char *data = NULL;
    size_t len = 0;
    int rc = ragd_read_file(real, &data, &len, err);
    if (rc) return rc;
    /* checksum covers the content and everything that shapes chunks and vectors */
    const ragd_kb_embedder *emb = o->emb;
    uint64_t h[2];
    char hex[33], sum[512];
    ragd_kb_hash128(data, len, h);
    ragd_kb_hash_hex(h, hex);
    snprintf(sum, sizeof sum, "%s:%d:%d:%s:%s:%s", hex, o->chunk_tokens, o->overlap,
             o->text_column ? o->text_column : "text", emb ? emb->model_name : "",
             emb && emb->tokens ? emb->tokens->name : ragd_kb_approx_tokens.name);
    char old[512];
    int found = 0;
    if ((rc = st->ops->file_checksum(st, ix->id, real, old, sizeof old, &found, err))) goto out;
    if (found && !strcmp(old, sum)) {
        stats->files_unchanged++;
        goto out;
    }
    size_t bad = first_invalid_utf8(data, len);
    if (bad < len) {
        rc = ragd_err_set(err, RAGD_EFORMAT, "invalid UTF-8 at byte %zu (line %zu)", bad,
                          line_of(data, bad));
        goto out;
    }
    doc_vec docs = {0};
    chunk_vec chunks = {0};
    ragd_store_doc *sdocs = NULL;
    ragd_store_chunk *sch = NULL;
    float *vecs = NULL;
    uint64_t(*hashes)[2] = NULL;
    uint8_t *exists = NULL;
    if (ragd_str_ends_with(real, ".jsonl")) {
        rc = parse_jsonl(real, data, len, &docs, err);
    } else if (ragd_str_ends_with(real, ".csv")) {
        rc = parse_csv(real, data, len, o->text_column ? o->text_column : "text", &docs, err);
    } else if (!is_blank(data, len)) {
        const char *title = base_name(real);
        if (ragd_str_ends_with(real, ".md") && data[0] == '#') {
            /* markdown: the first heading is the title */
            size_t e = 0;
            while (e < len && data[e] != '\n') e++;
            char *t = strndup(data, e);
            if (t) {
                char *s = t;
                while (*s == '#' || *s == ' ') s++;
                rc = push_doc(&docs, real, "", ragd_trim(s), "{}", data, len);
                free(t);
            } else {
                rc = RAGD_ENOMEM;
            }
        } else {
            rc = push_doc(&docs, real, "", title, "{}", data, len);
        }
        if (rc) ragd_err_set(err, rc, "out of memory");
    }
    if (rc) goto out2;
    if (docs.len == 0) {
        LOG_WARN("ingest: %s: empty document, nothing to index", path);
        stats->files_empty++;
    }
    /* chunk */
    const ragd_kb_token_counter *tc = emb && emb->tokens ? emb->tokens : &ragd_kb_approx_tokens;
    for (size_t d = 0; d < docs.len && !rc; d++) {
        ragd_kb_span *sp = NULL;
        size_t ns = 0;
        if ((rc = ragd_kb_chunk(docs.data[d].text, docs.data[d].len, o->chunk_tokens, o->overlap,
                                tc, &sp, &ns, err)))
            break;
        for (size_t j = 0; j < ns && !rc; j++) {
            chunk_w w = {d,
                         {docs.data[d].text + sp[j].start,
                          sp[j].end - sp[j].start,
                          {0, 0},
                          (int64_t)sp[j].start,
                          (int64_t)sp[j].end,
                          NULL},
                         0,
                         sp[j].tokens};
            ragd_kb_hash128(w.c.text, w.c.len, w.c.hash);
            if (RAGD_VEC_PUSH(&chunks, w)) rc = ragd_err_set(err, RAGD_ENOMEM, "oom");
        }
        free(sp);
    }
    if (rc) goto out2;
    /* which chunks need an embedding: not yet in the index, first occurrence in this file */
    size_t n_need = 0;
    if (emb && chunks.len) {
        hashes = malloc(chunks.len * sizeof *hashes);
        exists = malloc(chunks.len);
        if (!hashes || !exists) {
            rc = ragd_err_set(err, RAGD_ENOMEM, "oom");
            goto out2;
        }
        for (size_t i = 0; i < chunks.len; i++) memcpy(hashes[i], chunks.data[i].c.hash, 16);
        if ((rc = st->ops->chunks_exist(st, ix->id, (const uint64_t(*)[2])hashes, chunks.len,
                                        exists, err)))
            goto out2;
        /* a chunk repeated inside the file is embedded twice; the store keeps one copy */
        for (size_t i = 0; i < chunks.len; i++) {
            if (exists[i]) continue;
            chunks.data[i].need_vec = 1;
            n_need++;
        }
        vecs = malloc((n_need ? n_need : 1) * (size_t)emb->dim * sizeof *vecs);
        if (!vecs) {
            rc = ragd_err_set(err, RAGD_ENOMEM, "oom");
            goto out2;
        }
        size_t batch = o->embed_batch > 0 ? (size_t)o->embed_batch : 64;
        const char **bt = malloc(batch * sizeof *bt);
        size_t *bl = malloc(batch * sizeof *bl);
        if (!bt || !bl) {
            free(bt);
            free(bl);
            rc = ragd_err_set(err, RAGD_ENOMEM, "oom");
            goto out2;
        }
        size_t vi = 0, nb = 0, i = 0;
        while (i <= chunks.len && !rc) {
            if (i < chunks.len && chunks.data[i].need_vec) {
                stats->tokens_embedded += chunks.data[i].tokens + 2;
                bt[nb] = chunks.data[i].c.text;
                bl[nb] = chunks.data[i].c.len;
                chunks.data[i].c.vec = vecs + (vi + nb) * (size_t)emb->dim;
                nb++;
            }
            i++;
            if (nb == batch || (i > chunks.len && nb)) {
                uint64_t te = ragd_now_ns();
                rc = emb->embed(emb->ctx, bt, bl, nb, vecs + vi * (size_t)emb->dim, err);
                stats->embed_seconds += (double)(ragd_now_ns() - te) / 1e9;
                vi += nb;
                stats->chunks_embedded += nb;
                nb = 0;
                if (o->progress)
                    o->progress(o->progress_ctx, files_done, files_total, stats->chunks + vi,
                                (double)(ragd_now_ns() - t_start) / 1e9);
            }
        }
        free(bt);
        free(bl);
        if (rc) {
            ragd_err_prefix(err, "embedding");
            goto out2;
        }
    }
    /* one transaction for the whole file */
    sdocs = calloc(docs.len + 1, sizeof *sdocs);
    sch = malloc((chunks.len + 1) * sizeof *sch);
    if (!sdocs || !sch) {
        rc = ragd_err_set(err, RAGD_ENOMEM, "oom");
        goto out2;
    }
    for (size_t i = 0; i < chunks.len; i++) sch[i] = chunks.data[i].c;
    for (size_t d = 0, c = 0; d < docs.len; d++) {
        sdocs[d] = (ragd_store_doc){docs.data[d].source,
                                    docs.data[d].ext_id,
                                    docs.data[d].title,
                                    docs.data[d].meta,
                                    sch + c,
                                    0};
        while (c < chunks.len && chunks.data[c].doc == d) {
            sdocs[d].n_chunks++;
            c++;
        }
    }
    uint64_t tw = ragd_now_ns();
    rc = st->ops->replace_file(st, ix->id, real, sum, sdocs, docs.len, err);
    stats->store_seconds += (double)(ragd_now_ns() - tw) / 1e9;
    if (rc) goto out2;
    stats->files_ingested++;
    stats->docs += docs.len;
    stats->chunks += chunks.len;
out2:
    docs_free(&docs);
    RAGD_VEC_FREE(&chunks);
    free(sdocs);
    free(sch);
    free(vecs);
    free(hashes);
    free(exists);
out:
    free(data);
    return rc;
}

int ragd_kb_ingest(ragd_kb *kb, const char *const *paths, size_t n_paths,
                   const ragd_kb_ingest_opts *o, ragd_kb_ingest_stats *stats, ragd_err *err) {
    memset(stats, 0, sizeof *stats);
    if (!o || !o->index) return ragd_err_set(err, RAGD_EINVAL, "no index name (--index)");
    if (o->chunk_tokens < 0 || o->overlap < 0 ||
        (o->chunk_tokens > 0 && o->overlap >= o->chunk_tokens))
        return ragd_err_set(err, RAGD_EINVAL,
                            "--overlap (%d) must be smaller than --chunk-tokens (%d)", o->overlap,
                            o->chunk_tokens);
    ragd_store *st = ragd_kb_store(kb);
    ragd_store_index ix;
    int dt = -1;
    if (o->vector_dtype && (dt = ragd_kb_parse_vec_dtype(o->vector_dtype)) < 0)
        return ragd_err_set(err, RAGD_EINVAL, "--vector-dtype must be f32 or f16, not '%s'",
                            o->vector_dtype);
    int rc = st->ops->ensure_index(st, o->index, o->emb ? o->emb->model_name : "",
                                   o->emb ? o->emb->dim : 0, dt, &ix, err);
    if (rc) return rc;
    str_vec files = {0};
    for (size_t i = 0; i < n_paths && !rc; i++) rc = collect(paths[i], 1, &files, err);
    uint64_t t0 = ragd_now_ns();
    stats->files = files.len;
    for (size_t i = 0; i < files.len && !rc; i++) {
        ragd_err fe = {0};
        int r = ingest_file(kb, &ix, files.data[i], o, stats, i, files.len, t0, &fe);
        if (r == RAGD_EBUSY || r == RAGD_ENOMEM || (r == RAGD_EIO && strstr(fe.msg, "sqlite")) ||
            r == RAGD_ENOTFOUND) {
            rc = r;
            if (err) *err = fe;
            ragd_err_prefix(err, "%s", files.data[i]);
        } else if (r) {
            LOG_ERROR("ingest: %s: %s", files.data[i], fe.msg);
            stats->files_failed++;
        }
        if (o->progress)
            o->progress(o->progress_ctx, i + 1, files.len, stats->chunks,
                        (double)(ragd_now_ns() - t0) / 1e9);
    }
    stats->seconds = (double)(ragd_now_ns() - t0) / 1e9;
    for (size_t i = 0; i < files.len; i++) free(files.data[i]);
    RAGD_VEC_FREE(&files);
    if (!rc && o->emb) rc = ragd_kb_prepare_vectors(kb, o->index, 0, err);
    return rc;
}
