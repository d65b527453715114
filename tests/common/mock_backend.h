/* mock_backend.h - a deterministic test double for engine/backend.h. Its "KV cache" stores
 * the token id written at every slot; the next-token distribution for a position is a hash
 * of every token READ BACK from the paged cache through the block table (positions 0..pos),
 * so wrong block tables, lost prefix blocks or unwritten slots change the output or fail the
 * step - exactly what scheduler/cache tests need to detect. No math, so it also measures the
 * server's own overhead. Thread-safety: as backend.h. */
#ifndef RAGD_TEST_MOCK_BACKEND_H
#define RAGD_TEST_MOCK_BACKEND_H

#include <stdbool.h>

#include "engine/backend.h"

typedef struct mock_stats {
    int steps, max_batch, max_tokens_in_step;
    long tokens_fed;
} mock_stats;

/* vocab >= 8; eos = vocab - 1. with_sample: also implement forward_sample. */
ragd_backend *mock_backend_create(int vocab, int max_pos, bool with_sample);
mock_stats *mock_backend_stats(ragd_backend *be);

#endif
