/* dtype.h - tensor element types and scalar conversions (bf16/f16 <-> f32).
 * Pure functions; thread-safe.
 */
#ifndef RAGD_MODEL_DTYPE_H
#define RAGD_MODEL_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum {
    RAGD_DT_F32 = 0,
    RAGD_DT_F16,
    RAGD_DT_BF16,
    RAGD_DT_F64,
    RAGD_DT_I64,
    RAGD_DT_I32,
    RAGD_DT_I16,
    RAGD_DT_I8,
    RAGD_DT_U8,
    RAGD_DT_BOOL,
    RAGD_DT_COUNT
} ragd_dtype;

/* Bytes per element. */
size_t ragd_dtype_size(ragd_dtype dt);
/* Safetensors name ("F32", "BF16", ...) -> dtype; returns -1 when unknown. */
int ragd_dtype_from_name(const char *name);
const char *ragd_dtype_name(ragd_dtype dt);

static inline float ragd_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Round to nearest even; NaN stays NaN. */
static inline uint16_t ragd_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float ragd_f16_to_f32(uint16_t h);
uint16_t ragd_f32_to_f16(float f);

/* Convert n elements of src (dtype dt) to f32. */
void ragd_to_f32(float *dst, const void *src, ragd_dtype dt, size_t n);

#endif
