#include "model/dtype.h"

#include <string.h>

static const struct {
    const char *name;
    size_t size;
} g_dtypes[RAGD_DT_COUNT] = {
    [RAGD_DT_F32] = {"F32", 4},   [RAGD_DT_F16] = {"F16", 2}, [RAGD_DT_BF16] = {"BF16", 2},
    [RAGD_DT_F64] = {"F64", 8},   [RAGD_DT_I64] = {"I64", 8}, [RAGD_DT_I32] = {"I32", 4},
    [RAGD_DT_I16] = {"I16", 2},   [RAGD_DT_I8] = {"I8", 1},   [RAGD_DT_U8] = {"U8", 1},
    [RAGD_DT_BOOL] = {"BOOL", 1},
};

size_t ragd_dtype_size(ragd_dtype dt) {
    return dt < RAGD_DT_COUNT ? g_dtypes[dt].size : 0;
}

const char *ragd_dtype_name(ragd_dtype dt) {
    return dt < RAGD_DT_COUNT ? g_dtypes[dt].name : "?";
}

int ragd_dtype_from_name(const char *name) {
    for (int i = 0; i < RAGD_DT_COUNT; i++)
        if (strcmp(g_dtypes[i].name, name) == 0) return i;
    return -1;
}

float ragd_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t ragd_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000;
    int32_t exp = (int32_t)((u >> 23) & 0xff) - 127 + 15;
    uint32_t man = u & 0x7fffff;
    if (((u >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
    if (exp >= 31) return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half = 1u << (shift - 1);
        uint32_t r = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = ((uint32_t)exp << 10) | (man >> 13);
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
    return (uint16_t)(sign | r);
}

void ragd_to_f32(float *dst, const void *src, ragd_dtype dt, size_t n) {
    switch (dt) {
        case RAGD_DT_F32:
            memcpy(dst, src, n * 4);
            break;
        case RAGD_DT_BF16: {
            const uint16_t *s = src;
            for (size_t i = 0; i < n; i++) dst[i] = ragd_bf16_to_f32(s[i]);
            break;
        }
        case RAGD_DT_F16: {
            const uint16_t *s = src;
            for (size_t i = 0; i < n; i++) dst[i] = ragd_f16_to_f32(s[i]);
            break;
        }
        case RAGD_DT_F64: {
            const double *s = src;
            for (size_t i = 0; i < n; i++) dst[i] = (float)s[i];
            break;
        }
        default:
            memset(dst, 0, n * 4);
            break;
    }
}
