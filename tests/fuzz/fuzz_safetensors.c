/* libFuzzer target: the safetensors header parser (ragd_st_parse) on arbitrary bytes.
 * Every tensor it accepts must lie inside the buffer, and its byte size must match
 * shape x dtype - touched here so ASan reports any out-of-range pointer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* a private copy so ASan knows the exact bounds */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    ragd_st *st = ragd_st_new();
    if (!st) {
        free(buf);
        return 0;
    }
    ragd_err err = {0};
    if (ragd_st_parse(st, buf, size, "fuzz.safetensors", &err) == 0) {
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < ragd_st_count(st); i++) {
            const ragd_tensor *t = ragd_st_at(st, i);
            const uint8_t *p = t->data;
            if (t->nbytes) {
                if (p < buf || p + t->nbytes > buf + size) abort();
                sink ^= p[0];
                sink ^= p[t->nbytes - 1];
            }
            if (!t->name || ragd_st_find(st, t->name) == NULL) abort();
        }
        (void)sink;
    } else if (err.msg[0] == '\0') {
        abort(); /* every failure must explain itself */
    }
    ragd_st_close(st);
    free(buf);
    return 0;
}
