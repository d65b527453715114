/* embed_internal.h - test and benchmark hooks of the embedding engine (not for production
 * callers): pause the worker so a test can queue requests deterministically, and read how
 * many requests were merged into how many batches.
 * Thread-safety: as embed.h.
 */
#ifndef RAGD_EMBED_EMBED_INTERNAL_H
#define RAGD_EMBED_EMBED_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "embed/embed.h"

typedef struct ragd_embedder_stats {
    uint64_t requests;  /* embed / embed_ids calls that reached the queue */
    uint64_t batches;   /* forward passes run by the worker */
    uint64_t sequences; /* texts embedded */
    uint64_t tokens;    /* tokens embedded */
    size_t queued;      /* requests waiting now */
} ragd_embedder_stats;

void ragd_embedder_get_stats(ragd_embedder *e, ragd_embedder_stats *st);
/* While paused the worker takes nothing from the queue. */
void ragd_embedder_pause(ragd_embedder *e, int paused);

#endif
