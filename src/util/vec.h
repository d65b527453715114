/* vec.h - typed growable arrays.
 *
 *   RAGD_VEC(int) v = {0};
 *   if (RAGD_VEC_PUSH(&v, 42)) return RAGD_ENOMEM;
 *   ... v.data[i], v.len ...
 *   RAGD_VEC_FREE(&v);
 *
 * A zero-initialised vec is empty and valid. Not thread-safe.
 */
#ifndef RAGD_UTIL_VEC_H
#define RAGD_UTIL_VEC_H

#include <stddef.h>
#include <stdlib.h>

#include "util/err.h"

#define RAGD_VEC(T)                                                                                \
    struct {                                                                                       \
        T *data;                                                                                   \
        size_t len, cap;                                                                           \
    }

/* Grow *data so it holds at least `need` elements of `elem` bytes. Returns 0 or RAGD_ENOMEM. */
int ragd_vec_reserve_raw(void **data, size_t *cap, size_t need, size_t elem);

#define RAGD_VEC_RESERVE(v, n)                                                                     \
    ragd_vec_reserve_raw((void **)&(v)->data, &(v)->cap, (n), sizeof(*(v)->data))
/* Evaluates to 0 on success, RAGD_ENOMEM on failure. */
#define RAGD_VEC_PUSH(v, x)                                                                        \
    (RAGD_VEC_RESERVE((v), (v)->len + 1) ? RAGD_ENOMEM : ((v)->data[(v)->len++] = (x), 0))
#define RAGD_VEC_FREE(v)                                                                           \
    do {                                                                                           \
        free((v)->data);                                                                           \
        (v)->data = NULL;                                                                          \
        (v)->len = (v)->cap = 0;                                                                   \
    } while (0)

#endif
