/* store_sqlite.c - the embedded SQLite backend of store.h: one database file in WAL mode,
 * one FTS5 table (tokenizer ragd_cjk) per index, vectors as little-endian f32 or f16 blobs
 * (per index: indexes.vec_dtype).
 * Connections are pooled so that several threads can read at once; every write is one
 * IMMEDIATE transaction, so a crash at any point leaves the previous committed state. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kb/analyzer.h"
#include "kb/store.h"
#include "kb/vecsearch.h"
#include "model/dtype.h"
#include "util/clock.h"

#define MAX_CONNS 32

typedef struct {
    ragd_store base;
    char *path;
    int readonly;
    pthread_mutex_t mu;
    sqlite3 *idle[MAX_CONNS];
    int n_idle;
    const char *dtcol; /* "vec_dtype", or "'f32'" for a read-only pre-f16 database */
} sq_store;

static const char *SCHEMA =
    "BEGIN IMMEDIATE;"
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);"
    "INSERT OR IGNORE INTO meta VALUES('schema','1');"
    "CREATE TABLE IF NOT EXISTS indexes(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL,"
    " embed_model TEXT NOT NULL DEFAULT '', dim INTEGER NOT NULL DEFAULT 0,"
    " generation INTEGER NOT NULL DEFAULT 0, created REAL,"
    " vec_dtype TEXT NOT NULL DEFAULT 'f32');"
    "CREATE TABLE IF NOT EXISTS files(id INTEGER PRIMARY KEY, index_id INTEGER NOT NULL,"
    " path TEXT NOT NULL, checksum TEXT NOT NULL, ingested REAL, UNIQUE(index_id, path));"
    "CREATE TABLE IF NOT EXISTS documents(id INTEGER PRIMARY KEY, index_id INTEGER NOT NULL,"
    " file_id INTEGER NOT NULL, source TEXT NOT NULL, ext_id TEXT NOT NULL DEFAULT '',"
    " title TEXT NOT NULL DEFAULT '', metadata TEXT NOT NULL DEFAULT '{}',"
    " UNIQUE(index_id, source));"
    "CREATE INDEX IF NOT EXISTS documents_file ON documents(file_id);"
    "CREATE TABLE IF NOT EXISTS chunks(id INTEGER PRIMARY KEY, index_id INTEGER NOT NULL,"
    " hash TEXT NOT NULL, title TEXT NOT NULL DEFAULT '', text TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS chunks_hash ON chunks(index_id, hash);"
    "CREATE TABLE IF NOT EXISTS chunk_refs(doc_id INTEGER NOT NULL, seq INTEGER NOT NULL,"
    " chunk_id INTEGER NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL,"
    " PRIMARY KEY(doc_id, seq)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS chunk_refs_chunk ON chunk_refs(chunk_id);"
    "CREATE TABLE IF NOT EXISTS vectors(chunk_id INTEGER PRIMARY KEY, index_id INTEGER NOT NULL,"
    " vec BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS vectors_index ON vectors(index_id);"
    "CREATE TABLE IF NOT EXISTS blobs(index_id INTEGER NOT NULL, name TEXT NOT NULL,"
    " generation INTEGER NOT NULL, data BLOB, PRIMARY KEY(index_id, name));"
    "COMMIT;";

static int db_err(ragd_err *err, sqlite3 *db, const char *what) {
    int code = sqlite3_errcode(db);
    int rc = (code == SQLITE_BUSY || code == SQLITE_LOCKED)      ? RAGD_EBUSY
             : (code == SQLITE_NOMEM)                            ? RAGD_ENOMEM
             : (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) ? RAGD_EFORMAT
                                                                 : RAGD_EIO;
    return ragd_err_set(err, rc, "%s: %s", what, sqlite3_errmsg(db));
}

static int exec(sqlite3 *db, const char *sql, ragd_err *err) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = ragd_err_set(err, RAGD_EIO, "sqlite: %s (in: %.80s)", msg ? msg : "?", sql);
        sqlite3_free(msg);
        return rc;
    }
    return RAGD_OK;
}

static int open_conn(sq_store *s, sqlite3 **out, ragd_err *err) {
    sqlite3 *db = NULL;
    int flags = s->readonly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    flags |= SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(s->path, &db, flags, NULL) != SQLITE_OK) {
        int rc = ragd_err_set(err, RAGD_EIO, "cannot open knowledge base %s: %s", s->path,
                              db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return rc;
    }
    sqlite3_busy_timeout(db, 30000);
    int rc = ragd_kb_register_tokenizer(db, err);
    if (rc) {
        sqlite3_close(db);
        return rc;
    }
    *out = db;
    return RAGD_OK;
}

static int conn_get(sq_store *s, sqlite3 **db, ragd_err *err) {
    pthread_mutex_lock(&s->mu);
    if (s->n_idle > 0) {
        *db = s->idle[--s->n_idle];
        pthread_mutex_unlock(&s->mu);
        return RAGD_OK;
    }
    pthread_mutex_unlock(&s->mu);
    return open_conn(s, db, err);
}

static void conn_put(sq_store *s, sqlite3 *db) {
    if (!db) return;
    pthread_mutex_lock(&s->mu);
    if (s->n_idle < MAX_CONNS) {
        s->idle[s->n_idle++] = db;
        db = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    if (db) sqlite3_close(db);
}

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st, ragd_err *err) {
    if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK) return db_err(err, db, "prepare");
    return RAGD_OK;
}

/* Run a one-shot statement with ?1 = index id and ?2 = text; `what` names it in errors. */
static int exec_id_text(sqlite3 *db, const char *sql, int64_t index_id, const char *text,
                        const char *what, ragd_err *err) {
    sqlite3_stmt *st;
    int rc = prep(db, sql, &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, index_id);
    sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) rc = db_err(err, db, what);
    sqlite3_finalize(st);
    return rc;
}

static void sq_close(ragd_store *bs) {
    sq_store *s = (sq_store *)bs;
    if (!s) return;
    for (int i = 0; i < s->n_idle; i++) sqlite3_close(s->idle[i]);
    pthread_mutex_destroy(&s->mu);
    free(s->path);
    free(s);
}

static void copy_str(char *dst, size_t cap, const unsigned char *src) {
    snprintf(dst, cap, "%s", src ? (const char *)src : "");
}

int ragd_kb_parse_vec_dtype(const char *s) {
    return !s ? -1 : !strcmp(s, "f32") ? RAGD_DT_F32 : !strcmp(s, "f16") ? RAGD_DT_F16 : -1;
}

const char *ragd_kb_vec_dtype_name(int dtype) {
    return dtype == RAGD_DT_F16 ? "f16" : "f32";
}

static int read_index(sq_store *s, sqlite3 *db, const char *name, ragd_store_index *out,
                      ragd_err *err) {
    sqlite3_stmt *st;
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT id, name, embed_model, dim, generation, %s FROM indexes WHERE name=?1",
             s->dtcol);
    int rc = prep(db, sql, &st, err);
    if (rc) return rc;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        memset(out, 0, sizeof *out);
        out->id = sqlite3_column_int64(st, 0);
        copy_str(out->name, sizeof out->name, sqlite3_column_text(st, 1));
        copy_str(out->embed_model, sizeof out->embed_model, sqlite3_column_text(st, 2));
        out->dim = sqlite3_column_int(st, 3);
        out->generation = sqlite3_column_int64(st, 4);
        out->vec_dtype = ragd_kb_parse_vec_dtype((const char *)sqlite3_column_text(st, 5));
        rc = out->vec_dtype < 0
                 ? ragd_err_set(err, RAGD_EFORMAT, "index '%s': unknown vector dtype", name)
                 : RAGD_OK;
    } else if (r == SQLITE_DONE) {
        rc = ragd_err_set(err, RAGD_ENOTFOUND, "no index named '%s'", name);
    } else {
        rc = db_err(err, db, "read index");
    }
    sqlite3_finalize(st);
    return rc;
}

static int sq_get_index(ragd_store *bs, const char *name, ragd_store_index *out, ragd_err *err) {
    sq_store *s = (sq_store *)bs;
    sqlite3 *db;
    int rc = conn_get(s, &db, err);
    if (rc) return rc;
    rc = read_index(s, db, name, out, err);
    conn_put(s, db);
    return rc;
}

static int64_t count_q(sqlite3 *db, const char *sql, int64_t id) {
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int sq_ensure_index(ragd_store *bs, const char *name, const char *model, int dim,
                           int vec_dtype, ragd_store_index *out, ragd_err *err) {
    sq_store *s = (sq_store *)bs;
    if (!name || !*name || strlen(name) >= sizeof out->name)
        return ragd_err_set(err, RAGD_EINVAL, "index name must be 1..127 bytes");
    if (vec_dtype != -1 && vec_dtype != RAGD_DT_F32 && vec_dtype != RAGD_DT_F16)
        return ragd_err_set(err, RAGD_EINVAL, "vector dtype must be f32 or f16");
    if (!model) model = "";
    sqlite3 *db;
    int rc = conn_get(s, &db, err);
    if (rc) return rc;
    if ((rc = exec(db, "BEGIN IMMEDIATE", err))) goto done;
    rc = read_index(s, db, name, out, err);
    if (rc == RAGD_ENOTFOUND) {
        ragd_err_clear(err);
        sqlite3_stmt *st;
        if ((rc = prep(db,
                       "INSERT INTO indexes(name, embed_model, dim, created, vec_dtype)"
                       " VALUES(?1,?2,?3,?4,?5)",
                       &st, err)))
            goto rollback;
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, model, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, dim);
        sqlite3_bind_double(st, 4, ragd_wall_s_f());
        sqlite3_bind_text(st, 5, ragd_kb_vec_dtype_name(vec_dtype < 0 ? RAGD_DT_F32 : vec_dtype),
                          -1, SQLITE_STATIC);
        int r = sqlite3_step(st);
        sqlite3_finalize(st);
        if (r != SQLITE_DONE) {
            rc = db_err(err, db, "create index");
            goto rollback;
        }
        int64_t id = sqlite3_last_insert_rowid(db);
        char sql[512];
        snprintf(sql, sizeof sql,
                 "CREATE VIRTUAL TABLE fts_%lld USING fts5(title, text, content='',"
                 " tokenize='ragd_cjk');"
                 "CREATE VIRTUAL TABLE fts_%lld_v USING fts5vocab(fts_%lld, 'row');",
                 (long long)id, (long long)id, (long long)id);
        if ((rc = exec(db, sql, err))) goto rollback;
        if ((rc = read_index(s, db, name, out, err))) goto rollback;
    } else if (rc == RAGD_OK) {
        if (vec_dtype < 0) vec_dtype = out->vec_dtype;
        if (strcmp(out->embed_model, model) || out->dim != dim || out->vec_dtype != vec_dtype) {
            int64_t n = count_q(db, "SELECT count(*) FROM chunks WHERE index_id=?1", out->id);
            if (n != 0 && out->vec_dtype != vec_dtype && dim > 0 && out->dim > 0) {
                rc = ragd_err_set(
                    err, RAGD_EINVAL,
                    "index '%s' stores its vectors as %s; cannot add %s vectors"
                    " (--vector-dtype %s): use --vector-dtype %s or another index",
                    name, ragd_kb_vec_dtype_name(out->vec_dtype), ragd_kb_vec_dtype_name(vec_dtype),
                    ragd_kb_vec_dtype_name(vec_dtype), ragd_kb_vec_dtype_name(out->vec_dtype));
                goto rollback;
            }
            if (n != 0 && (strcmp(out->embed_model, model) || out->dim != dim)) {
                rc = ragd_err_set(err, RAGD_EINVAL,
                                  "index '%s' holds %lld chunks embedded with %s%s (dim %d); "
                                  "cannot add chunks %s%s (dim %d): use another index",
                                  name, (long long)n, *out->embed_model ? "model " : "",
                                  *out->embed_model ? out->embed_model : "no model", out->dim,
                                  *model ? "embedded with model " : "without embeddings", model,
                                  dim);
                goto rollback;
            }
            /* an empty index adopts model and dtype; a non-empty one gets here only when it
             * has no vectors and just the (unused) dtype differs: nothing to record */
            if (n == 0) {
                sqlite3_stmt *st;
                if ((rc = prep(
                         db, "UPDATE indexes SET embed_model=?2, dim=?3, vec_dtype=?4 WHERE id=?1",
                         &st, err)))
                    goto rollback;
                sqlite3_bind_int64(st, 1, out->id);
                sqlite3_bind_text(st, 2, model, -1, SQLITE_STATIC);
                sqlite3_bind_int(st, 3, dim);
                sqlite3_bind_text(st, 4, ragd_kb_vec_dtype_name(vec_dtype), -1, SQLITE_STATIC);
                int r = sqlite3_step(st);
                sqlite3_finalize(st);
                if (r != SQLITE_DONE) {
                    rc = db_err(err, db, "update index");
                    goto rollback;
                }
                snprintf(out->embed_model, sizeof out->embed_model, "%s", model);
                out->dim = dim;
                out->vec_dtype = vec_dtype;
            }
        }
    } else {
        goto rollback;
    }
    rc = exec(db, "COMMIT", err);
    if (rc) goto rollback;
    goto done;
rollback:
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
done:
    conn_put(s, db);
    return rc;
}

static int sq_list_indexes(ragd_store *bs, ragd_store_index **out, size_t *n, ragd_err *err) {
    sq_store *s = (sq_store *)bs;
    *out = NULL;
    *n = 0;
    sqlite3 *db;
    int rc = conn_get(s, &db, err);
    if (rc) return rc;
    sqlite3_stmt *st;
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT id, name, embed_model, dim, generation, %s FROM indexes ORDER BY name",
             s->dtcol);
    if ((rc = prep(db, sql, &st, err))) {
        conn_put(s, db);
        return rc;
    }
    size_t cap = 0;
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            ragd_store_index *p = realloc(*out, cap * sizeof **out);
            if (!p) {
                rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
                break;
            }
            *out = p;
        }
        ragd_store_index *x = &(*out)[(*n)++];
        memset(x, 0, sizeof *x);
        x->id = sqlite3_column_int64(st, 0);
        copy_str(x->name, sizeof x->name, sqlite3_column_text(st, 1));
        copy_str(x->embed_model, sizeof x->embed_model, sqlite3_column_text(st, 2));
        x->dim = sqlite3_column_int(st, 3);
        x->generation = sqlite3_column_int64(st, 4);
        x->vec_dtype = ragd_kb_parse_vec_dtype((const char *)sqlite3_column_text(st, 5));
        if (x->vec_dtype < 0) x->vec_dtype = RAGD_DT_F32;
    }
    if (!rc && r != SQLITE_DONE) rc = db_err(err, db, "list indexes");
    sqlite3_finalize(st);
    for (size_t i = 0; !rc && i < *n; i++) {
        ragd_store_index *x = &(*out)[i];
        x->n_files = count_q(db, "SELECT count(*) FROM files WHERE index_id=?1", x->id);
        x->n_docs = count_q(db, "SELECT count(*) FROM documents WHERE index_id=?1", x->id);
        x->n_chunks = count_q(db, "SELECT count(*) FROM chunks WHERE index_id=?1", x->id);
        x->n_vectors = count_q(db, "SELECT count(*) FROM vectors WHERE index_id=?1", x->id);
    }
    if (rc) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    conn_put(s, db);
    return rc;
}

static int bump_generation(sqlite3 *db, int64_t index_id, ragd_err *err) {
    sqlite3_stmt *st;
    int rc = prep(db, "UPDATE indexes SET generation=generation+1 WHERE id=?1", &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, index_id);
    if (sqlite3_step(st) != SQLITE_DONE) rc = db_err(err, db, "bump generation");
    sqlite3_finalize(st);
    return rc;
}

static int sq_delete_index(ragd_store *bs, const char *name, ragd_err *err) {
    sq_store *s = (sq_store *)bs;
    sqlite3 *db;
    int rc = conn_get(s, &db, err);
    if (rc) return rc;
    ragd_store_index ix;
    if ((rc = exec(db, "BEGIN IMMEDIATE", err))) goto done;
    if ((rc = read_index(s, db, name, &ix, err))) goto rollback;
    char sql[1024];
    long long id = (long long)ix.id;
    snprintf(
        sql, sizeof sql,
        "DROP TABLE IF EXISTS fts_%lld_v; DROP TABLE IF EXISTS fts_%lld;"
        "DELETE FROM chunk_refs WHERE doc_id IN (SELECT id FROM documents WHERE index_id=%lld);"
        "DELETE FROM documents WHERE index_id=%lld; DELETE FROM files WHERE index_id=%lld;"
        "DELETE FROM vectors WHERE index_id=%lld; DELETE FROM chunks WHERE index_id=%lld;"
        "DELETE FROM blobs WHERE index_id=%lld; DELETE FROM indexes WHERE id=%lld;",
        id, id, id, id, id, id, id, id, id);
    if ((rc = exec(db, sql, err))) goto rollback;
    rc = exec(db, "COMMIT", err);
    if (!rc) goto done;
rollback:
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
done:
    conn_put(s, db);
    return rc;
}

static int sq_file_checksum(ragd_store *bs, int64_t index_id, const char *path, char *checksum,
                            size_t cap, int *found, ragd_err *err) {
    sq_store *s = (sq_store *)bs;
    sqlite3 *db;
    *found = 0;
    int rc = conn_get(s, &db, err);
    if (rc) return rc;
    sqlite3_stmt *st;
    if (!(rc = prep(db, "SELECT checksum FROM files WHERE index_id=?1 AND path=?2", &st, err))) {
        sqlite3_bind_int64(st, 1, index_id);
        sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW) {
            *found = 1;
            copy_str(checksum, cap, sqlite3_column_text(st, 0));
        } else if (r != SQLITE_DONE) {
            rc = db_err(err, db, "file lookup");
        }
        sqlite3_finalize(st);
    }
    conn_put(s, db);
    return rc;
}

static int sq_chunks_exist(ragd_store *bs, int64_t index_id, const uint64_t (*hashes)[2], size_t n,
                           uint8_t *exists, ragd_err *err) {
    sq_store *s = (sq_store *)bs;
    sqlite3 *db;
    int rc = conn_get(s, &db, err);
    if (rc) return rc;
    sqlite3_stmt *st;
    if (!(rc = prep(db, "SELECT 1 FROM chunks WHERE index_id=?1 AND hash=?2 LIMIT 1", &st, err))) {
        for (size_t i = 0; i < n && !rc; i++) {
            char hex[33];
            ragd_kb_hash_hex(hashes[i], hex);
            sqlite3_bind_int64(st, 1, index_id);
            sqlite3_bind_text(st, 2, hex, 32, SQLITE_TRANSIENT);
            int r = sqlite3_step(st);
            if (r == SQLITE_ROW)
                exists[i] = 1;
            else if (r == SQLITE_DONE)
                exists[i] = 0;
            else
                rc = db_err(err, db, "chunk lookup");
            sqlite3_reset(st);
        }
        sqlite3_finalize(st);
    }
    conn_put(s, db);
    return rc;
}

/* Delete the documents selected by `where_sql` (binding ?1 = index, ?2 = text) and their
 * refs, remembering their chunks in temp.doomed_chunks for gc_chunks. */
static int delete_docs_where(sqlite3 *db, int64_t index_id, const char *where_sql, const char *arg,
                             int64_t arg_i, size_t *n_deleted, ragd_err *err) {
    char sql[1024];
    int rc;
    /* gather candidate chunks of the doomed documents */
    if ((rc = exec(db,
                   "CREATE TEMP TABLE IF NOT EXISTS doomed_docs(id INTEGER PRIMARY KEY);"
                   "CREATE TEMP TABLE IF NOT EXISTS doomed_chunks(id INTEGER PRIMARY KEY);"
                   "DELETE FROM doomed_docs; DELETE FROM doomed_chunks;",
                   err)))
        return rc;
    snprintf(sql, sizeof sql,
             "INSERT INTO doomed_docs SELECT id FROM documents WHERE index_id=?1 AND (%s)",
             where_sql);
    sqlite3_stmt *st;
    if ((rc = prep(db, sql, &st, err))) return rc;
    sqlite3_bind_int64(st, 1, index_id);
    if (arg)
        sqlite3_bind_text(st, 2, arg, -1, SQLITE_STATIC);
    else
        sqlite3_bind_int64(st, 2, arg_i);
    if (sqlite3_step(st) != SQLITE_DONE) rc = db_err(err, db, "select documents");
    sqlite3_finalize(st);
    if (rc) return rc;
    if (n_deleted) *n_deleted = (size_t)sqlite3_changes(db);
    if ((rc =
             exec(db,
                  "INSERT OR IGNORE INTO doomed_chunks SELECT chunk_id FROM chunk_refs WHERE doc_id"
                  " IN (SELECT id FROM doomed_docs);"
                  "DELETE FROM chunk_refs WHERE doc_id IN (SELECT id FROM doomed_docs);"
                  "DELETE FROM documents WHERE id IN (SELECT id FROM doomed_docs);",
                  err)))
        return rc;
    return RAGD_OK;
}

/* Second phase: chunks of the deleted documents that nothing references any more go, with
 * their FTS rows (external content: 'delete' needs the old text) and vectors. */
static int gc_chunks(sqlite3 *db, int64_t index_id, ragd_err *err) {
    char sql[1024];
    int rc =
        exec(db, "DELETE FROM doomed_chunks WHERE id IN (SELECT chunk_id FROM chunk_refs);", err);
    if (rc) return rc;
    snprintf(sql, sizeof sql,
             "INSERT INTO fts_%lld(fts_%lld, rowid, title, text) SELECT 'delete', c.id, c.title,"
             " c.text FROM"
             " chunks c WHERE c.id IN (SELECT id FROM doomed_chunks);"
             "DELETE FROM vectors WHERE chunk_id IN (SELECT id FROM doomed_chunks);"
             "DELETE FROM chunks WHERE id IN (SELECT id FROM doomed_chunks);",
             (long long)index_id, (long long)index_id);
    return exec(db, sql, err);
}

static int sq_replace_file(ragd_store *bs, int64_t index_id, const char *path, const char *checksum,
                           const ragd_store_doc *docs, size_t n_docs, ragd_err *err) {
    sq_store *s = (sq_store *)bs;
    sqlite3 *db;
    int rc = conn_get(s, &db, err);
    if (rc) return rc;
    sqlite3_stmt *st_file = NULL, *st_doc = NULL, *st_find = NULL, *st_chunk = NULL, *st_fts = NULL,
                 *st_vec = NULL, *st_ref = NULL, *st_dim = NULL;
    uint16_t *half = NULL;
    if ((rc = exec(db, "BEGIN IMMEDIATE", err))) goto done;
    int dim = 0, f16 = 0;
    if ((rc = prep(db, "SELECT dim, vec_dtype='f16' FROM indexes WHERE id=?1", &st_dim, err)))
        goto rollback;
    sqlite3_bind_int64(st_dim, 1, index_id);
    if (sqlite3_step(st_dim) != SQLITE_ROW) {
        rc = ragd_err_set(err, RAGD_ENOTFOUND, "index was deleted during ingest");
        goto rollback;
    }
    dim = sqlite3_column_int(st_dim, 0);
    f16 = sqlite3_column_int(st_dim, 1);
    if (f16 && dim > 0 && !(half = malloc((size_t)dim * sizeof *half))) {
        rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        goto rollback;
    }
    /* 1. old documents of this file */
    if ((rc = delete_docs_where(db, index_id,
                                "file_id IN (SELECT id FROM files WHERE index_id=?1 AND path=?2)",
                                path, 0, NULL, err)))
        goto rollback;
    /* 2. the file row (chunks of the old documents are collected after step 3, so chunks the
     * new version still contains keep their ids and vectors) */
    if ((rc = prep(db,
                   "INSERT INTO files(index_id, path, checksum, ingested) VALUES(?1,?2,?3,?4)"
                   " ON CONFLICT(index_id, path) DO UPDATE SET checksum=excluded.checksum,"
                   " ingested=excluded.ingested RETURNING id",
                   &st_file, err)))
        goto rollback;
    sqlite3_bind_int64(st_file, 1, index_id);
    sqlite3_bind_text(st_file, 2, path, -1, SQLITE_STATIC);
    sqlite3_bind_text(st_file, 3, checksum, -1, SQLITE_STATIC);
    sqlite3_bind_double(st_file, 4, ragd_wall_s_f());
    if (sqlite3_step(st_file) != SQLITE_ROW) {
        rc = db_err(err, db, "record file");
        goto rollback;
    }
    int64_t file_id = sqlite3_column_int64(st_file, 0);
    sqlite3_finalize(st_file);
    st_file = NULL;
    /* 3. new documents, chunks (stored once per index), refs, FTS rows, vectors */
    char sql[256];
    snprintf(sql, sizeof sql, "INSERT INTO fts_%lld(rowid, title, text) VALUES(?1, ?2, ?3)",
             (long long)index_id);
    if ((rc = prep(db,
                   "INSERT INTO documents(index_id, file_id, source, ext_id, title, metadata)"
                   " VALUES(?1,?2,?3,?4,?5,?6)",
                   &st_doc, err)) ||
        (rc = prep(db, "SELECT id, text FROM chunks WHERE index_id=?1 AND hash=?2", &st_find,
                   err)) ||
        (rc = prep(db, "INSERT INTO chunks(index_id, hash, title, text) VALUES(?1,?2,?3,?4)",
                   &st_chunk, err)) ||
        (rc = prep(db, sql, &st_fts, err)) ||
        (rc = prep(db, "INSERT INTO vectors(chunk_id, index_id, vec) VALUES(?1,?2,?3)", &st_vec,
                   err)) ||
        (rc = prep(
             db, "INSERT INTO chunk_refs(doc_id, seq, chunk_id, start, end) VALUES(?1,?2,?3,?4,?5)",
             &st_ref, err)))
        goto rollback;
    for (size_t d = 0; d < n_docs; d++) {
        const ragd_store_doc *doc = &docs[d];
        sqlite3_bind_int64(st_doc, 1, index_id);
        sqlite3_bind_int64(st_doc, 2, file_id);
        sqlite3_bind_text(st_doc, 3, doc->source, -1, SQLITE_STATIC);
        sqlite3_bind_text(st_doc, 4, doc->ext_id ? doc->ext_id : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(st_doc, 5, doc->title ? doc->title : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(st_doc, 6, doc->metadata_json ? doc->metadata_json : "{}", -1,
                          SQLITE_STATIC);
        int r = sqlite3_step(st_doc);
        sqlite3_reset(st_doc);
        if (r != SQLITE_DONE) {
            if (sqlite3_extended_errcode(db) == SQLITE_CONSTRAINT_UNIQUE)
                rc = ragd_err_set(err, RAGD_EINVAL,
                                  "document '%s' already exists in this index (from another file"
                                  " or a repeated id)",
                                  doc->source);
            else
                rc = db_err(err, db, "insert document");
            goto rollback;
        }
        int64_t doc_id = sqlite3_last_insert_rowid(db);
        for (size_t c = 0; c < doc->n_chunks; c++) {
            const ragd_store_chunk *ch = &doc->chunks[c];
            char hex[33];
            ragd_kb_hash_hex(ch->hash, hex);
            int64_t chunk_id = -1;
            sqlite3_bind_int64(st_find, 1, index_id);
            sqlite3_bind_text(st_find, 2, hex, 32, SQLITE_TRANSIENT);
            while ((r = sqlite3_step(st_find)) == SQLITE_ROW) {
                const char *t = (const char *)sqlite3_column_text(st_find, 1);
                size_t tl = (size_t)sqlite3_column_bytes(st_find, 1);
                if (tl == ch->len && !memcmp(t, ch->text, tl)) {
                    chunk_id = sqlite3_column_int64(st_find, 0);
                    break;
                }
            }
            sqlite3_reset(st_find);
            if (r != SQLITE_ROW && r != SQLITE_DONE) {
                rc = db_err(err, db, "find chunk");
                goto rollback;
            }
            if (chunk_id < 0) {
                if (dim > 0 && !ch->vec) {
                    rc = ragd_err_set(err, RAGD_EINTERNAL, "new chunk without a vector");
                    goto rollback;
                }
                sqlite3_bind_int64(st_chunk, 1, index_id);
                sqlite3_bind_text(st_chunk, 2, hex, 32, SQLITE_TRANSIENT);
                const char *title = doc->title ? doc->title : "";
                sqlite3_bind_text(st_chunk, 3, title, -1, SQLITE_STATIC);
                sqlite3_bind_text(st_chunk, 4, ch->text, (int)ch->len, SQLITE_STATIC);
                r = sqlite3_step(st_chunk);
                sqlite3_reset(st_chunk);
                if (r != SQLITE_DONE) {
                    rc = db_err(err, db, "insert chunk");
                    goto rollback;
                }
                chunk_id = sqlite3_last_insert_rowid(db);
                sqlite3_bind_int64(st_fts, 1, chunk_id);
                sqlite3_bind_text(st_fts, 2, title, -1, SQLITE_STATIC);
                sqlite3_bind_text(st_fts, 3, ch->text, (int)ch->len, SQLITE_STATIC);
                r = sqlite3_step(st_fts);
                sqlite3_reset(st_fts);
                if (r != SQLITE_DONE) {
                    rc = db_err(err, db, "index chunk text");
                    goto rollback;
                }
                if (dim > 0) {
                    sqlite3_bind_int64(st_vec, 1, chunk_id);
                    sqlite3_bind_int64(st_vec, 2, index_id);
                    if (f16) {
                        ragd_vec_to_f16(half, ch->vec, (size_t)dim);
                        sqlite3_bind_blob(st_vec, 3, half, dim * (int)sizeof *half, SQLITE_STATIC);
                    } else {
                        sqlite3_bind_blob(st_vec, 3, ch->vec, dim * (int)sizeof(float),
                                          SQLITE_STATIC);
                    }
                    r = sqlite3_step(st_vec);
                    sqlite3_reset(st_vec);
                    if (r != SQLITE_DONE) {
                        rc = db_err(err, db, "insert vector");
                        goto rollback;
                    }
                }
            }
            sqlite3_bind_int64(st_ref, 1, doc_id);
            sqlite3_bind_int64(st_ref, 2, (int64_t)c);
            sqlite3_bind_int64(st_ref, 3, chunk_id);
            sqlite3_bind_int64(st_ref, 4, ch->start);
            sqlite3_bind_int64(st_ref, 5, ch->end);
            r = sqlite3_step(st_ref);
            sqlite3_reset(st_ref);
            if (r != SQLITE_DONE) {
                rc = db_err(err, db, "insert chunk ref");
                goto rollback;
            }
        }
    }
    if ((rc = gc_chunks(db, index_id, err))) goto rollback;
    if ((rc = bump_generation(db, index_id, err))) goto rollback;
    rc = exec(db, "COMMIT", err);
    if (!rc) goto done;
rollback:
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
done:
    sqlite3_finalize(st_file);
    sqlite3_finalize(st_doc);
    sqlite3_finalize(st_find);
    sqlite3_finalize(st_chunk);
    sqlite3_finalize(st_fts);
    sqlite3_finalize(st_vec);
    sqlite3_finalize(st_ref);
    sqlite3_finalize(st_dim);
    free(half);
    conn_put(s, db);
    return rc;
}

static int sq_delete_doc(ragd_store *bs, int64_t index_id, const char *source, size_t *n_deleted,
                         ragd_err *err) {
    sq_store *s = (sq_store *)bs;
    sqlite3 *db;
    int rc = conn_get(s, &db, err);
    if (rc) return rc;
    size_t n = 0;
    if ((rc = exec(db, "BEGIN IMMEDIATE", err))) goto done;
    /* a file that loses some documents no longer matches its checksum: the next ingest of it
     * restores them */
    if ((rc = exec_id_text(db,
                           "UPDATE files SET checksum='' WHERE index_id=?1 AND id IN (SELECT"
                           " file_id FROM documents WHERE index_id=?1 AND source=?2)",
                           index_id, source, "mark file", err)))
        goto rollback;
    if ((rc = delete_docs_where(db, index_id,
                                "source=?2 OR file_id IN (SELECT id FROM files WHERE index_id=?1"
                                " AND path=?2)",
                                source, 0, &n, err)) ||
        (rc = gc_chunks(db, index_id, err)))
        goto rollback;
    if ((rc = exec_id_text(db,
                           "DELETE FROM files WHERE index_id=?1 AND (path=?2 OR id NOT IN"
                           " (SELECT file_id FROM documents WHERE index_id=?1))",
                           index_id, source, "delete file", err)))
        goto rollback;
    if ((rc = bump_generation(db, index_id, err))) goto rollback;
    if ((rc = exec(db, "COMMIT", err))) goto rollback;
    if (n_deleted) *n_deleted = n;
    goto done;
rollback:
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
done:
    conn_put(s, db);
    return rc;
}

static int sq_bm25(ragd_store *bs, int64_t index_id, const char *match, int k, ragd_store_hit *hits,
                   size_t *n_hits, ragd_err *err) {
    sq_store *s = (sq_store *)bs;
    *n_hits = 0;
    sqlite3 *db;
    int rc = conn_get(s, &db, err);
    if (rc) return rc;
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT rowid, ragd_bm25(fts_%lld) AS s FROM fts_%lld WHERE fts_%lld MATCH ?1"
             " ORDER BY s DESC, rowid LIMIT ?2",
             (long long)index_id, (long long)index_id, (long long)index_id);
    sqlite3_stmt *st;
    if (!(rc = prep(db, sql, &st, err))) {
        sqlite3_bind_text(st, 1, match, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, k);
        int r;
        while ((r = sqlite3_step(st)) == SQLITE_ROW) {
            hits[*n_hits].chunk_id = sqlite3_column_int64(st, 0);
            hits[*n_hits].score = sqlite3_column_double(st, 1);
            (*n_hits)++;
        }
        if (r != SQLITE_DONE) rc = db_err(err, db, "bm25 search");
        sqlite3_finalize(st);
    }
    conn_put(s, db);
    return rc;
}

static int sq_term_df(ragd_store *bs, int64_t index_id, const char *const *terms, size_t n,
                      int64_t *df, int64_t *n_docs, ragd_err *err) {
    sq_store *s = (sq_store *)bs;
    sqlite3 *db;
    int rc = conn_get(s, &db, err);
    if (rc) return rc;
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT doc FROM fts_%lld_v WHERE term=?1", (long long)index_id);
    sqlite3_stmt *st;
    if (!(rc = prep(db, sql, &st, err))) {
        for (size_t i = 0; i < n && !rc; i++) {
            sqlite3_bind_text(st, 1, terms[i], -1, SQLITE_STATIC);
            int r = sqlite3_step(st);
            if (r == SQLITE_ROW)
                df[i] = sqlite3_column_int64(st, 0);
            else if (r == SQLITE_DONE)
                df[i] = 0;
            else
                rc = db_err(err, db, "term statistics");
            sqlite3_reset(st);
        }
        sqlite3_finalize(st);
    }
    if (!rc && n_docs) {
        *n_docs = count_q(db, "SELECT count(*) FROM chunks WHERE index_id=?1", index_id);
        if (*n_docs < 0) rc = db_err(err, db, "count chunks");
    }
    conn_put(s, db);
    return rc;
}

static int sq_load_vectors(ragd_store *bs, int64_t index_id, int64_t **ids, void **vecs, int *dtype,
                           size_t *n, int64_t *generation, ragd_err *err) {
    sq_store *s = (sq_store *)bs;
    *ids = NULL;
    *vecs = NULL;
    *n = 0;
    *dtype = RAGD_DT_F32;
    sqlite3 *db;
    int rc = conn_get(s, &db, err);
    if (rc) return rc;
    /* one read transaction so count, generation and rows agree */
    if ((rc = exec(db, "BEGIN", err))) {
        conn_put(s, db);
        return rc;
    }
    int dim = (int)count_q(db, "SELECT dim FROM indexes WHERE id=?1", index_id);
    int64_t gen = count_q(db, "SELECT generation FROM indexes WHERE id=?1", index_id);
    int64_t cnt = count_q(db, "SELECT count(*) FROM vectors WHERE index_id=?1", index_id);
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT %s='f16' FROM indexes WHERE id=?1", s->dtcol);
    if (count_q(db, sql, index_id) == 1) *dtype = RAGD_DT_F16;
    size_t esz = *dtype == RAGD_DT_F16 ? 2 : 4;
    sqlite3_stmt *st = NULL;
    if (dim <= 0 || cnt < 0) {
        rc = cnt < 0 ? db_err(err, db, "count vectors") : RAGD_OK;
        goto out;
    }
    *ids = malloc(((size_t)cnt + 1) * sizeof **ids);
    *vecs = malloc(((size_t)cnt * (size_t)dim + 1) * esz);
    if (!*ids || !*vecs) {
        rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory loading %lld vectors", (long long)cnt);
        goto out;
    }
    if ((rc = prep(db, "SELECT chunk_id, vec FROM vectors WHERE index_id=?1 ORDER BY chunk_id", &st,
                   err)))
        goto out;
    sqlite3_bind_int64(st, 1, index_id);
    int r;
    size_t i = 0;
    while ((r = sqlite3_step(st)) == SQLITE_ROW && i < (size_t)cnt) {
        if ((size_t)sqlite3_column_bytes(st, 1) != (size_t)dim * esz) {
            rc = ragd_err_set(err, RAGD_EFORMAT, "vector of chunk %lld has the wrong size",
                              (long long)sqlite3_column_int64(st, 0));
            goto out;
        }
        (*ids)[i] = sqlite3_column_int64(st, 0);
        memcpy((char *)*vecs + i * (size_t)dim * esz, sqlite3_column_blob(st, 1),
               (size_t)dim * esz);
        i++;
    }
    if (r != SQLITE_DONE && r != SQLITE_ROW) rc = db_err(err, db, "load vectors");
    *n = i;
    if (generation) *generation = gen;
out:
    sqlite3_finalize(st);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc) {
        free(*ids);
        free(*vecs);
        *ids = NULL;
        *vecs = NULL;
        *n = 0;
    } else if (generation) {
        *generation = gen;
    }
    conn_put(s, db);
    return rc;
}

static char *dup_col(sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    return strdup(t ? (const char *)t : "");
}

static int sq_chunk_info(ragd_store *bs, int64_t chunk_id, ragd_store_chunk_info *out,
                         ragd_err *err) {
    sq_store *s = (sq_store *)bs;
    memset(out, 0, sizeof *out);
    sqlite3 *db;
    int rc = conn_get(s, &db, err);
    if (rc) return rc;
    sqlite3_stmt *st;
    if (!(rc = prep(db,
                    "SELECT c.text, r.doc_id, r.start, r.end, d.source, d.ext_id, d.title,"
                    " d.metadata FROM chunks c JOIN chunk_refs r ON r.chunk_id=c.id JOIN documents"
                    " d ON d.id=r.doc_id WHERE c.id=?1 ORDER BY r.doc_id, r.seq LIMIT 1",
                    &st, err))) {
        sqlite3_bind_int64(st, 1, chunk_id);
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW) {
            out->chunk_id = chunk_id;
            out->text = dup_col(st, 0);
            out->doc_id = sqlite3_column_int64(st, 1);
            out->start = sqlite3_column_int64(st, 2);
            out->end = sqlite3_column_int64(st, 3);
            out->source = dup_col(st, 4);
            out->ext_id = dup_col(st, 5);
            out->title = dup_col(st, 6);
            out->metadata = dup_col(st, 7);
            if (!out->text || !out->source || !out->ext_id || !out->title || !out->metadata) {
                ragd_store_chunk_info_free(out);
                rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
            }
        } else if (r == SQLITE_DONE) {
            rc = ragd_err_set(err, RAGD_ENOTFOUND, "chunk %lld not found", (long long)chunk_id);
        } else {
            rc = db_err(err, db, "chunk info");
        }
        sqlite3_finalize(st);
    }
    conn_put(s, db);
    return rc;
}

static int sq_get_blob(ragd_store *bs, int64_t index_id, const char *name, void **data, size_t *len,
                       int64_t *generation, ragd_err *err) {
    sq_store *s = (sq_store *)bs;
    *data = NULL;
    *len = 0;
    sqlite3 *db;
    int rc = conn_get(s, &db, err);
    if (rc) return rc;
    sqlite3_stmt *st;
    if (!(rc = prep(db, "SELECT data, generation FROM blobs WHERE index_id=?1 AND name=?2", &st,
                    err))) {
        sqlite3_bind_int64(st, 1, index_id);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW) {
            size_t n = (size_t)sqlite3_column_bytes(st, 0);
            *data = malloc(n ? n : 1);
            if (!*data) {
                rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
            } else {
                if (n) memcpy(*data, sqlite3_column_blob(st, 0), n);
                *len = n;
                *generation = sqlite3_column_int64(st, 1);
            }
        } else if (r == SQLITE_DONE) {
            rc = ragd_err_set(err, RAGD_ENOTFOUND, "no blob %s", name);
        } else {
            rc = db_err(err, db, "get blob");
        }
        sqlite3_finalize(st);
    }
    conn_put(s, db);
    return rc;
}

static int sq_put_blob(ragd_store *bs, int64_t index_id, const char *name, const void *data,
                       size_t len, int64_t generation, ragd_err *err) {
    sq_store *s = (sq_store *)bs;
    sqlite3 *db;
    int rc = conn_get(s, &db, err);
    if (rc) return rc;
    sqlite3_stmt *st;
    if (!(rc = prep(db,
                    "INSERT OR REPLACE INTO blobs(index_id, name, generation, data)"
                    " SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM indexes WHERE id=?1)",
                    &st, err))) {
        sqlite3_bind_int64(st, 1, index_id);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, generation);
        sqlite3_bind_blob64(st, 4, data, len, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) rc = db_err(err, db, "put blob");
        sqlite3_finalize(st);
    }
    conn_put(s, db);
    return rc;
}

static int sq_check(ragd_store *bs, ragd_buf *report, size_t *problems, ragd_err *err) {
    sq_store *s = (sq_store *)bs;
    *problems = 0;
    sqlite3 *db;
    int rc = conn_get(s, &db, err);
    if (rc) return rc;
    static const char *const checks[][2] = {
        {"chunks referenced by no document",
         "SELECT count(*) FROM chunks c WHERE NOT EXISTS (SELECT 1 FROM chunk_refs r WHERE"
         " r.chunk_id=c.id)"},
        {"chunk refs to missing chunks",
         "SELECT count(*) FROM chunk_refs r WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE"
         " c.id=r.chunk_id)"},
        {"chunk refs to missing documents",
         "SELECT count(*) FROM chunk_refs r WHERE NOT EXISTS (SELECT 1 FROM documents d WHERE"
         " d.id=r.doc_id)"},
        {"documents of missing files",
         "SELECT count(*) FROM documents d WHERE NOT EXISTS (SELECT 1 FROM files f WHERE"
         " f.id=d.file_id)"},
        {"rows of missing indexes",
         "SELECT (SELECT count(*) FROM files WHERE index_id NOT IN (SELECT id FROM indexes)) +"
         " (SELECT count(*) FROM documents WHERE index_id NOT IN (SELECT id FROM indexes)) +"
         " (SELECT count(*) FROM chunks WHERE index_id NOT IN (SELECT id FROM indexes))"},
        {"vectors without a chunk",
         "SELECT count(*) FROM vectors v WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE"
         " c.id=v.chunk_id)"},
        {"chunks without a vector in an index with embeddings",
         "SELECT count(*) FROM chunks c JOIN indexes i ON i.id=c.index_id WHERE i.dim>0 AND NOT"
         " EXISTS (SELECT 1 FROM vectors v WHERE v.chunk_id=c.id)"},
        {"duplicate chunks (same text twice in one index)",
         "SELECT count(*) FROM (SELECT 1 FROM chunks GROUP BY index_id, hash, text HAVING"
         " count(*)>1)"},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0] && !rc; i++) {
        int64_t n = count_q(db, checks[i][1], 0);
        if (n < 0)
            rc = db_err(err, db, "check");
        else if (n > 0) {
            (*problems)++;
            ragd_buf_printf(report, "%s: %lld\n", checks[i][0], (long long)n);
        }
    }
    /* FTS rows (one docsize row per indexed chunk) must equal chunks, per index */
    sqlite3_stmt *st;
    if (!rc && !(rc = prep(db, "SELECT id, name FROM indexes", &st, err))) {
        while (sqlite3_step(st) == SQLITE_ROW && !rc) {
            int64_t id = sqlite3_column_int64(st, 0);
            char sql[160];
            snprintf(sql, sizeof sql, "SELECT count(*) FROM fts_%lld_docsize WHERE ?1=?1",
                     (long long)id);
            int64_t nf = count_q(db, sql, 0);
            int64_t nc = count_q(db, "SELECT count(*) FROM chunks WHERE index_id=?1", id);
            if (nf != nc) {
                (*problems)++;
                ragd_buf_printf(report, "index %s: %lld FTS rows for %lld chunks\n",
                                (const char *)sqlite3_column_text(st, 1), (long long)nf,
                                (long long)nc);
            }
        }
        sqlite3_finalize(st);
    }
    if (!rc) {
        int64_t ok = count_q(db,
                             "SELECT count(*) FROM pragma_integrity_check WHERE"
                             " integrity_check<>'ok' AND ?1=?1",
                             0);
        if (ok != 0) {
            (*problems)++;
            ragd_buf_printf(report, "sqlite integrity_check failed\n");
        }
    }
    conn_put(s, db);
    return rc;
}

static const ragd_store_ops SQ_OPS = {
    sq_close,        sq_get_index,     sq_ensure_index, sq_list_indexes,
    sq_delete_index, sq_file_checksum, sq_chunks_exist, sq_replace_file,
    sq_delete_doc,   sq_bm25,          sq_term_df,      sq_load_vectors,
    sq_chunk_info,   sq_get_blob,      sq_put_blob,     sq_check,
};

int ragd_store_sqlite_open(const char *path, int readonly, ragd_store **out, ragd_err *err) {
    *out = NULL;
    if (readonly && !ragd_file_exists(path))
        return ragd_err_set(err, RAGD_ENOTFOUND, "knowledge base %s does not exist", path);
    sq_store *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    }
    s->base.ops = &SQ_OPS;
    s->readonly = readonly;
    s->dtcol = "vec_dtype";
    pthread_mutex_init(&s->mu, NULL);
    sqlite3 *db;
    int rc = open_conn(s, &db, err);
    if (rc) {
        sq_close(&s->base);
        return rc;
    }
    if (!readonly) {
        rc = exec(db, "PRAGMA journal_mode=WAL", err);
        if (!rc) rc = exec(db, "PRAGMA synchronous=NORMAL", err);
        if (!rc) rc = exec(db, SCHEMA, err);
        /* databases from before per-index vector dtypes: every vector there is f32 */
        if (!rc && count_q(db,
                           "SELECT count(*) FROM pragma_table_info('indexes') WHERE"
                           " name='vec_dtype' AND ?1=?1",
                           0) == 0)
            rc = exec(db, "ALTER TABLE indexes ADD COLUMN vec_dtype TEXT NOT NULL DEFAULT 'f32'",
                      err);
        if (rc) {
            /* not a database, or unwritable */
            ragd_err_prefix(err, "knowledge base %s", path);
            sqlite3_close(db);
            sq_close(&s->base);
            return rc;
        }
    } else {
        int64_t v = count_q(db, "SELECT count(*) FROM indexes WHERE ?1=?1", 0);
        if (v < 0 && count_q(db, "SELECT count(*) FROM sqlite_master WHERE ?1=?1", 0) == 0) {
            rc = ragd_err_set(err, RAGD_ENOTFOUND,
                              "knowledge base %s is empty (nothing ingested yet)", path);
            sqlite3_close(db);
            sq_close(&s->base);
            return rc;
        }
        if (v < 0) {
            rc = ragd_err_set(err, RAGD_EFORMAT, "%s is not a ragd knowledge base: %s", path,
                              sqlite3_errmsg(db));
            sqlite3_close(db);
            sq_close(&s->base);
            return rc;
        }
        if (count_q(db,
                    "SELECT count(*) FROM pragma_table_info('indexes') WHERE name='vec_dtype' AND"
                    " ?1=?1",
                    0) == 0)
            s->dtcol = "'f32'";
    }
    conn_put(s, db);
    *out = &s->base;
    return RAGD_OK;
}

void ragd_store_chunk_info_free(ragd_store_chunk_info *ci) {
    free(ci->text);
    free(ci->source);
    free(ci->ext_id);
    free(ci->title);
    free(ci->metadata);
    memset(ci, 0, sizeof *ci);
}

/* Two independent 64-bit hashes (FNV-1a and a multiply-xorshift mix): identical chunks are
 * found by hash and confirmed by comparing text, so collisions cannot merge chunks. */
void ragd_kb_hash128(const void *data, size_t len, uint64_t out[2]) {
    const unsigned char *p = data;
    uint64_t a = 0xcbf29ce484222325ull, b = 0x9e3779b97f4a7c15ull ^ len;
    for (size_t i = 0; i < len; i++) {
        a = (a ^ p[i]) * 0x100000001b3ull;
        b = (b ^ p[i]) * 0xff51afd7ed558ccdull;
        b ^= b >> 29;
    }
    b ^= b >> 33;
    b *= 0xc4ceb9fe1a85ec53ull;
    b ^= b >> 33;
    out[0] = a;
    out[1] = b;
}

void ragd_kb_hash_hex(const uint64_t h[2], char out[33]) {
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)h[0], (unsigned long long)h[1]);
}
