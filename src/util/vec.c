#include "util/vec.h"

#include "util/err.h"

#include <stdint.h>
#include <stdlib.h>

int ragd_vec_reserve_raw(void **data, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return RAGD_OK;
    size_t ncap = *cap ? *cap : 8;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2) return RAGD_ENOMEM;
        ncap *= 2;
    }
    if (elem && ncap > SIZE_MAX / elem) return RAGD_ENOMEM;
    void *p = realloc(*data, ncap * elem);
    if (!p) return RAGD_ENOMEM;
    *data = p;
    *cap = ncap;
    return RAGD_OK;
}
