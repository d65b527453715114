#include "model/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/str.h"
#include "util/vec.h"

typedef struct {
    void *addr;
    size_t len;
    char *path;
} st_map;

struct ragd_st {
    ragd_tensor *tensors;
    size_t n, cap;
    st_map *maps;
    size_t n_maps;
    /* sorted index for lookups */
    size_t *order;
    int sorted;
};

ragd_st *ragd_st_new(void) {
    return calloc(1, sizeof(ragd_st));
}

void ragd_st_close(ragd_st *st) {
    if (!st) return;
    for (size_t i = 0; i < st->n; i++) free((char *)st->tensors[i].name);
    free(st->tensors);
    for (size_t i = 0; i < st->n_maps; i++) {
        if (st->maps[i].addr) munmap(st->maps[i].addr, st->maps[i].len);
        free(st->maps[i].path);
    }
    free(st->maps);
    free(st->order);
    free(st);
}

size_t ragd_st_count(const ragd_st *st) {
    return st->n;
}
const ragd_tensor *ragd_st_at(const ragd_st *st, size_t i) {
    return i < st->n ? &st->tensors[i] : NULL;
}

static int cmp_off(const void *a, const void *b) {
    const size_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

int ragd_st_parse(ragd_st *st, const uint8_t *buf, size_t len, const char *file, ragd_err *err) {
    if (len < 8)
        return ragd_err_set(err, RAGD_EFORMAT, "%s: file too short for a safetensors header", file);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];
    if (hlen < 2 || hlen > len - 8 || hlen > 100u * 1024 * 1024)
        return ragd_err_set(err, RAGD_EFORMAT,
                            "%s: header length %llu out of range (file is %zu bytes)", file,
                            (unsigned long long)hlen, len);
    cJSON *root = cJSON_ParseWithLength((const char *)buf + 8, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return ragd_err_set(err, RAGD_EFORMAT, "%s: safetensors header is not a JSON object", file);
    }
    size_t data_start = 8 + (size_t)hlen;
    size_t data_len = len - data_start;
    size_t first = st->n;
    int rc = RAGD_OK;
    cJSON *item;
    cJSON_ArrayForEach(item, root) {
        if (strcmp(item->string, "__metadata__") == 0) continue;
        if (!cJSON_IsObject(item)) {
            rc = ragd_err_set(err, RAGD_EFORMAT, "%s: tensor '%s': entry is not an object", file,
                              item->string);
            break;
        }
        cJSON *jdt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
        cJSON *jshape = cJSON_GetObjectItemCaseSensitive(item, "shape");
        cJSON *joff = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
        if (!cJSON_IsString(jdt) || !cJSON_IsArray(jshape) || !cJSON_IsArray(joff) ||
            cJSON_GetArraySize(joff) != 2) {
            rc = ragd_err_set(err, RAGD_EFORMAT,
                              "%s: tensor '%s': missing dtype, shape or data_offsets", file,
                              item->string);
            break;
        }
        int dt = ragd_dtype_from_name(jdt->valuestring);
        if (dt < 0) {
            rc = ragd_err_set(err, RAGD_EUNSUPPORTED, "%s: tensor '%s': unsupported dtype %s", file,
                              item->string, jdt->valuestring);
            break;
        }
        int nd = cJSON_GetArraySize(jshape);
        if (nd > RAGD_ST_MAX_DIMS) {
            rc = ragd_err_set(err, RAGD_EFORMAT, "%s: tensor '%s': %d dimensions", file,
                              item->string, nd);
            break;
        }
        ragd_tensor t = {0};
        t.dtype = (ragd_dtype)dt;
        t.ndim = nd;
        t.numel = 1;
        for (int d = 0; d < nd && rc == RAGD_OK; d++) {
            cJSON *jd = cJSON_GetArrayItem(jshape, d);
            if (!cJSON_IsNumber(jd) || jd->valuedouble < 0 || jd->valuedouble > 1e15 ||
                jd->valuedouble != (double)(int64_t)jd->valuedouble) {
                rc = ragd_err_set(err, RAGD_EFORMAT, "%s: tensor '%s': bad shape", file,
                                  item->string);
                break;
            }
            t.shape[d] = (int64_t)jd->valuedouble;
            if (t.shape[d] && t.numel > INT64_MAX / t.shape[d]) {
                rc = ragd_err_set(err, RAGD_EFORMAT, "%s: tensor '%s': shape overflows", file,
                                  item->string);
                break;
            }
            t.numel *= t.shape[d];
        }
        if (rc) break;
        cJSON *j0 = cJSON_GetArrayItem(joff, 0), *j1 = cJSON_GetArrayItem(joff, 1);
        if (!cJSON_IsNumber(j0) || !cJSON_IsNumber(j1) || j0->valuedouble < 0 ||
            j1->valuedouble < j0->valuedouble || j1->valuedouble > (double)data_len) {
            rc = ragd_err_set(
                err, RAGD_EFORMAT,
                "%s: tensor '%s': data offsets [%.0f, %.0f] outside the %zu data bytes", file,
                item->string, cJSON_IsNumber(j0) ? j0->valuedouble : -1.0,
                cJSON_IsNumber(j1) ? j1->valuedouble : -1.0, data_len);
            break;
        }
        size_t o0 = (size_t)j0->valuedouble, o1 = (size_t)j1->valuedouble;
        size_t esz = ragd_dtype_size(t.dtype);
        if ((uint64_t)t.numel > SIZE_MAX / esz || (size_t)t.numel * esz != o1 - o0) {
            rc = ragd_err_set(err, RAGD_EFORMAT,
                              "%s: tensor '%s': %zu data bytes do not match shape x %s", file,
                              item->string, o1 - o0, ragd_dtype_name(t.dtype));
            break;
        }
        t.data = buf + data_start + o0;
        t.nbytes = o1 - o0;
        t.file = file;
        t.name = strdup(item->string);
        if (!t.name || ragd_vec_reserve_raw((void **)&st->tensors, &st->cap, st->n + 1, sizeof t)) {
            free((char *)t.name);
            rc = ragd_err_set(err, RAGD_ENOMEM, "out of memory");
            break;
        }
        st->tensors[st->n++] = t;
    }
    cJSON_Delete(root);
    if (rc == RAGD_OK && st->n > first) {
        /* tensors of one file must not overlap */
        size_t k = st->n - first;
        size_t *iv = malloc(k * 2 * sizeof(size_t));
        if (!iv) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
        for (size_t i = 0; i < k; i++) {
            const ragd_tensor *t = &st->tensors[first + i];
            iv[2 * i] = (size_t)((const uint8_t *)t->data - buf);
            iv[2 * i + 1] = iv[2 * i] + t->nbytes;
        }
        qsort(iv, k, 2 * sizeof(size_t), cmp_off);
        for (size_t i = 1; i < k; i++)
            if (iv[2 * i] < iv[2 * i - 1]) {
                rc = ragd_err_set(err, RAGD_EFORMAT, "%s: tensor data regions overlap", file);
                break;
            }
        free(iv);
    }
    if (rc) { /* roll back this file's tensors */
        for (size_t i = first; i < st->n; i++) free((char *)st->tensors[i].name);
        st->n = first;
    }
    st->sorted = 0;
    return rc;
}

static int add_file(ragd_st *st, const char *path, ragd_err *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ragd_err_set(err, errno == ENOENT ? RAGD_ENOTFOUND : RAGD_EIO, "cannot open %s: %s",
                            path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return ragd_err_set(err, RAGD_EIO, "%s is not a regular file", path);
    }
    size_t len = (size_t)sb.st_size;
    if (len < 8) {
        close(fd);
        return ragd_err_set(err, RAGD_EFORMAT, "%s: file too short for a safetensors header", path);
    }
    void *addr = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (addr == MAP_FAILED)
        return ragd_err_set(err, RAGD_EIO, "cannot mmap %s: %s", path, strerror(errno));
    st_map *nm = realloc(st->maps, (st->n_maps + 1) * sizeof *nm);
    if (!nm) {
        munmap(addr, len);
        return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    }
    st->maps = nm;
    st_map *m = &st->maps[st->n_maps++];
    m->addr = addr;
    m->len = len;
    m->path = strdup(path);
    if (!m->path) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    return ragd_st_parse(st, addr, len, m->path, err);
}

static int cmp_name(const void *a, const void *b, void *ctx) {
    const ragd_st *st = ctx;
    return strcmp(st->tensors[*(const size_t *)a].name, st->tensors[*(const size_t *)b].name);
}

static int build_index(ragd_st *st, ragd_err *err) {
    free(st->order);
    st->order = malloc((st->n ? st->n : 1) * sizeof(size_t));
    if (!st->order) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    for (size_t i = 0; i < st->n; i++) st->order[i] = i;
    qsort_r(st->order, st->n, sizeof(size_t), cmp_name, st);
    for (size_t i = 1; i < st->n; i++)
        if (strcmp(st->tensors[st->order[i]].name, st->tensors[st->order[i - 1]].name) == 0)
            return ragd_err_set(err, RAGD_EFORMAT, "tensor '%s' appears twice (%s and %s)",
                                st->tensors[st->order[i]].name, st->tensors[st->order[i - 1]].file,
                                st->tensors[st->order[i]].file);
    st->sorted = 1;
    return RAGD_OK;
}

int ragd_st_open_file(const char *path, ragd_st **out, ragd_err *err) {
    *out = NULL;
    ragd_st *st = ragd_st_new();
    if (!st) return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    int rc = add_file(st, path, err);
    if (!rc) rc = build_index(st, err);
    if (rc) {
        ragd_st_close(st);
        return rc;
    }
    *out = st;
    return RAGD_OK;
}

int ragd_st_open_dir(const char *dir, ragd_st **out, ragd_err *err) {
    *out = NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (ragd_file_exists(path)) return ragd_st_open_file(path, out, err);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (!ragd_file_exists(path))
        return ragd_err_set(err, RAGD_ENOTFOUND,
                            "%s: no model.safetensors or model.safetensors.index.json", dir);
    char *text = NULL;
    int rc = ragd_read_file(path, &text, NULL, err);
    if (rc) return rc;
    cJSON *root = cJSON_Parse(text);
    free(text);
    cJSON *wm = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(wm)) {
        cJSON_Delete(root);
        return ragd_err_set(err, RAGD_EFORMAT, "%s: no weight_map object", path);
    }
    ragd_st *st = ragd_st_new();
    if (!st) {
        cJSON_Delete(root);
        return ragd_err_set(err, RAGD_ENOMEM, "out of memory");
    }
    /* distinct shard names, in order of first appearance */
    cJSON *item;
    cJSON_ArrayForEach(item, wm) {
        if (!cJSON_IsString(item) || strchr(item->valuestring, '/')) {
            rc = ragd_err_set(err, RAGD_EFORMAT, "%s: bad shard name for '%s'", path, item->string);
            break;
        }
        int seen = 0;
        for (size_t i = 0; i < st->n_maps; i++) {
            const char *base = strrchr(st->maps[i].path, '/');
            if (base && strcmp(base + 1, item->valuestring) == 0) seen = 1;
        }
        if (seen) continue;
        char shard[4096];
        snprintf(shard, sizeof shard, "%s/%s", dir, item->valuestring);
        rc = add_file(st, shard, err);
        if (rc) break;
    }
    if (!rc) {
        rc = build_index(st, err);
        /* every tensor named by the index must be in the shard it names */
        cJSON_ArrayForEach(item, wm) {
            if (rc) break;
            const ragd_tensor *t = ragd_st_find(st, item->string);
            if (!t) {
                rc = ragd_err_set(err, RAGD_ENOTFOUND,
                                  "%s: tensor '%s' listed in the index is missing from %s", dir,
                                  item->string, item->valuestring);
            }
        }
    }
    cJSON_Delete(root);
    if (rc) {
        ragd_st_close(st);
        return rc;
    }
    *out = st;
    return RAGD_OK;
}

const ragd_tensor *ragd_st_find(const ragd_st *st, const char *name) {
    if (!st->sorted) {
        for (size_t i = 0; i < st->n; i++)
            if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i];
        return NULL;
    }
    size_t lo = 0, hi = st->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(st->tensors[st->order[mid]].name, name);
        if (c == 0) return &st->tensors[st->order[mid]];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int ragd_st_expect(const ragd_st *st, const char *name, int ndim, const int64_t *shape,
                   const ragd_tensor **out, ragd_err *err) {
    const ragd_tensor *t = ragd_st_find(st, name);
    if (!t) {
        const char *f = st->n_maps ? st->maps[0].path : "model";
        return ragd_err_set(err, RAGD_ENOTFOUND, "missing tensor '%s' (looked in %s%s)", name, f,
                            st->n_maps > 1 ? " and the other shards" : "");
    }
    int ok = t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++)
        if (shape[d] >= 0 && t->shape[d] != shape[d]) ok = 0;
    if (!ok) {
        char want[128] = "", got[128] = "";
        size_t wl = 0, gl = 0;
        for (int d = 0; d < ndim; d++)
            wl += (size_t)snprintf(want + wl, sizeof want - wl, "%s%lld", d ? "," : "",
                                   (long long)shape[d]);
        for (int d = 0; d < t->ndim; d++)
            gl += (size_t)snprintf(got + gl, sizeof got - gl, "%s%lld", d ? "," : "",
                                   (long long)t->shape[d]);
        return ragd_err_set(err, RAGD_EFORMAT, "%s: tensor '%s' has shape [%s], expected [%s]",
                            t->file, name, got, want);
    }
    if (out) *out = t;
    return RAGD_OK;
}
