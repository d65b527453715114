/* safetensors.h - memory-mapped safetensors files and sharded model directories.
 *
 * ragd_st_open_dir() opens a Hugging Face model directory: model.safetensors, or the shards
 * listed in model.safetensors.index.json. Every file is mmap'd read-only; tensor data pointers
 * point into the mappings and stay valid until ragd_st_close(). Header parsing validates
 * dtypes, shapes, offsets (in range, sizes matching shape x dtype, no overlap with the header).
 * Thread-safety: immutable after open; lookups may run concurrently.
 */
#ifndef RAGD_MODEL_SAFETENSORS_H
#define RAGD_MODEL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "model/dtype.h"
#include "util/err.h"

#define RAGD_ST_MAX_DIMS 8

typedef struct ragd_tensor {
    const char *name;
    ragd_dtype dtype;
    int ndim;
    int64_t shape[RAGD_ST_MAX_DIMS];
    int64_t numel;
    const void *data; /* into the mmap'd file */
    size_t nbytes;
    const char *file; /* path of the file it lives in */
} ragd_tensor;

typedef struct ragd_st ragd_st;

int ragd_st_open_dir(const char *dir, ragd_st **out, ragd_err *err);
int ragd_st_open_file(const char *path, ragd_st **out, ragd_err *err);
void ragd_st_close(ragd_st *st);

size_t ragd_st_count(const ragd_st *st);
const ragd_tensor *ragd_st_at(const ragd_st *st, size_t i);
/* NULL when absent. */
const ragd_tensor *ragd_st_find(const ragd_st *st, const char *name);

/* Find `name` and check its shape (ndim entries; -1 = any). On failure the error names the
 * tensor and the file. */
int ragd_st_expect(const ragd_st *st, const char *name, int ndim, const int64_t *shape,
                   const ragd_tensor **out, ragd_err *err);

/* Parse one safetensors image held in memory (used by open_file and the fuzzer). Tensors are
 * appended to st; `file` is the name used in messages. */
int ragd_st_parse(ragd_st *st, const uint8_t *buf, size_t len, const char *file, ragd_err *err);
ragd_st *ragd_st_new(void);

#endif
