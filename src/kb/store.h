/* store.h - the knowledge base's storage backend interface.
 *
 * The kb layer (kb.h) talks to storage only through this table of operations, so other
 * backends (a server database, a remote vector store) can be added beside the embedded
 * SQLite one (store_sqlite.c, ragd_store_sqlite_open). A store holds named indexes; each
 * index has files (ingest units with a checksum), documents (source, external id, title,
 * metadata JSON), chunks (text stored once per index however many documents contain it,
 * with per-document offsets), a BM25 full-text index over chunks and one vector per chunk
 * when the index has an embedding model.
 *
 * Thread-safety: every operation may be called from several threads at once (the SQLite
 * store keeps one connection per concurrent caller); writes are serialised by the backend.
 * Every write operation is atomic: it commits completely or not at all, also across a crash.
 */
#ifndef RAGD_KB_STORE_H
#define RAGD_KB_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/str.h"

typedef struct ragd_store ragd_store;

typedef struct ragd_store_index {
    int64_t id;
    char name[128];
    char embed_model[256];                        /* "" when the index has no vectors */
    int dim;                                      /* 0 when the index has no vectors */
    int vec_dtype;                                /* RAGD_DT_F32 or RAGD_DT_F16 (dtype.h) */
    int64_t generation;                           /* bumped by every write to the index */
    int64_t n_files, n_docs, n_chunks, n_vectors; /* filled by list_indexes */
} ragd_store_index;

/* One chunk of a document to store. */
typedef struct ragd_store_chunk {
    const char *text;
    size_t len;
    uint64_t hash[2];   /* 128-bit content hash (ragd_kb_hash128) */
    int64_t start, end; /* byte offsets in the document text */
    const float *vec;   /* dim floats (stored in the index's vector dtype); NULL when the
                           chunk already exists in the index */
} ragd_store_chunk;

typedef struct ragd_store_doc {
    const char *source;        /* unique within the index, e.g. "dir/a.jsonl#id-17" */
    const char *ext_id;        /* id from the input ("" when none) */
    const char *title;         /* may be "" */
    const char *metadata_json; /* JSON object text, "{}" when none */
    const ragd_store_chunk *chunks;
    size_t n_chunks;
} ragd_store_doc;

typedef struct ragd_store_hit {
    int64_t chunk_id;
    double score;
} ragd_store_hit;

typedef struct ragd_store_chunk_info {
    int64_t chunk_id, doc_id;
    int64_t start, end;
    char *text, *source, *ext_id, *title, *metadata; /* malloc'd; free with ..._free */
} ragd_store_chunk_info;

typedef struct ragd_store_ops {
    void (*close)(ragd_store *s);
    /* Look up an index by name: RAGD_ENOTFOUND when absent. */
    int (*get_index)(ragd_store *s, const char *name, ragd_store_index *out, ragd_err *err);
    /* Create the index, or check that an existing one matches the embedding model
     * (model "" / dim 0 for BM25 only) and the vector dtype (RAGD_DT_F32 / RAGD_DT_F16; -1:
     * keep the index's, f32 for a new one). An empty existing index adopts both. */
    int (*ensure_index)(ragd_store *s, const char *name, const char *model, int dim, int vec_dtype,
                        ragd_store_index *out, ragd_err *err);
    int (*list_indexes)(ragd_store *s, ragd_store_index **out, size_t *n, ragd_err *err);
    int (*delete_index)(ragd_store *s, const char *name, ragd_err *err);
    /* Checksum recorded for a file path in an index: *found = 0 when never ingested. */
    int (*file_checksum)(ragd_store *s, int64_t index_id, const char *path, char *checksum,
                         size_t cap, int *found, ragd_err *err);
    /* Which chunk hashes are already stored in the index (exists[i] = 0/1). */
    int (*chunks_exist)(ragd_store *s, int64_t index_id, const uint64_t (*hashes)[2], size_t n,
                        uint8_t *exists, ragd_err *err);
    /* Atomically replace everything previously ingested from `path` with docs. */
    int (*replace_file)(ragd_store *s, int64_t index_id, const char *path, const char *checksum,
                        const ragd_store_doc *docs, size_t n_docs, ragd_err *err);
    /* Delete documents by source (or by file path: all its documents); *n_deleted set. */
    int (*delete_doc)(ragd_store *s, int64_t index_id, const char *source, size_t *n_deleted,
                      ragd_err *err);
    /* BM25 over the index's chunks for an FTS5 MATCH expression: up to k hits, best first. */
    int (*bm25)(ragd_store *s, int64_t index_id, const char *match, int k, ragd_store_hit *hits,
                size_t *n_hits, ragd_err *err);
    /* Document frequency (in chunks) of analysed terms, and the number of chunks. */
    int (*term_df)(ragd_store *s, int64_t index_id, const char *const *terms, size_t n, int64_t *df,
                   int64_t *n_docs, ragd_err *err);
    /* All vectors of the index: ids (n) and vecs (n x dim elements of *dtype: float for
     * RAGD_DT_F32, uint16_t halves for RAGD_DT_F16), malloc'd; *generation is the index
     * generation they belong to. */
    int (*load_vectors)(ragd_store *s, int64_t index_id, int64_t **ids, void **vecs, int *dtype,
                        size_t *n, int64_t *generation, ragd_err *err);
    /* Chunk text and its (first) document. RAGD_ENOTFOUND when gone. */
    int (*chunk_info)(ragd_store *s, int64_t chunk_id, ragd_store_chunk_info *out, ragd_err *err);
    /* Named per-index blobs (e.g. a persisted HNSW graph) tagged with a generation. */
    int (*get_blob)(ragd_store *s, int64_t index_id, const char *name, void **data, size_t *len,
                    int64_t *generation, ragd_err *err);
    int (*put_blob)(ragd_store *s, int64_t index_id, const char *name, const void *data, size_t len,
                    int64_t generation, ragd_err *err);
    /* Consistency check: appends one line per violated invariant (orphan chunks, refs to
     * missing chunks or documents, FTS rows != chunks, vectors != chunks ...) to report and
     * sets *problems. */
    int (*check)(ragd_store *s, ragd_buf *report, size_t *problems, ragd_err *err);
} ragd_store_ops;

struct ragd_store {
    const ragd_store_ops *ops;
};

void ragd_store_chunk_info_free(ragd_store_chunk_info *ci);

/* "f32" / "f16" <-> RAGD_DT_F32 / RAGD_DT_F16; parse returns -1 for anything else. */
int ragd_kb_parse_vec_dtype(const char *s);
const char *ragd_kb_vec_dtype_name(int dtype);

/* Open (creating when absent, unless readonly) an SQLite knowledge base file. */
int ragd_store_sqlite_open(const char *path, int readonly, ragd_store **out, ragd_err *err);

/* 128-bit content hash (two independent 64-bit hashes) and its 32-char hex form. */
void ragd_kb_hash128(const void *data, size_t len, uint64_t out[2]);
void ragd_kb_hash_hex(const uint64_t h[2], char out[33]);

#endif
