/* sse.h - incremental Server-Sent Events parser (WHATWG HTML "event stream" interpretation).
 *
 * Feed bytes as they arrive, in any split; complete events are reported through a callback.
 * Handles LF, CRLF and CR line ends (a CRLF split across two reads counts once), a leading
 * UTF-8 BOM, `data:` lines joined with "\n", `event:`, `id:` (ignored when it contains NUL),
 * `retry:`, `:` comments, a field name without colon, one optional space after the colon, and
 * UTF-8 characters split across reads (bytes are only interpreted at line ends). Invalid UTF-8
 * in a dispatched event's type/data is replaced by U+FFFD as the spec's decoder does. An
 * unfinished event at end of stream is discarded (ragd_sse_finish reports whether one was).
 * Used by loadtest/ (the SSE client). Thread-safety: one parser per stream.
 */
#ifndef RAGD_LOADTEST_SSE_H
#define RAGD_LOADTEST_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "util/str.h"

typedef struct ragd_sse_event {
    const char *type; /* "message" when no event: field was given */
    size_t type_len;
    const char *data; /* data lines joined with "\n", NUL-terminated */
    size_t data_len;
    const char *last_id; /* last event ID (persists across events), "" when none */
} ragd_sse_event;

/* Return non-zero to stop parsing (ragd_sse_feed then returns that value). */
typedef int (*ragd_sse_event_fn)(void *ud, const ragd_sse_event *ev);
typedef void (*ragd_sse_comment_fn)(void *ud, const char *text, size_t len);

typedef struct ragd_sse_parser {
    ragd_sse_event_fn on_event;
    ragd_sse_comment_fn on_comment; /* may be NULL */
    void *ud;
    ragd_buf line;     /* partial line carried over between feeds */
    ragd_buf data;     /* data buffer of the event being built */
    ragd_buf type;     /* event type buffer */
    ragd_buf last_id;  /* last event ID */
    ragd_buf scratch;  /* U+FFFD repair */
    long retry_ms;     /* last valid retry: value, -1 when none */
    bool have_data;    /* at least one data: line since the last dispatch */
    bool skip_lf;      /* previous byte was CR: a following LF belongs to it */
    bool started;      /* first line seen (BOM handling) */
    unsigned bom_left; /* BOM bytes matched so far at stream start */
    size_t n_events, n_comments;
} ragd_sse_parser;

void ragd_sse_init(ragd_sse_parser *p, ragd_sse_event_fn on_event, ragd_sse_comment_fn on_comment,
                   void *ud);
void ragd_sse_free(ragd_sse_parser *p);
/* Forget all state (keeps buffers' memory) to parse a new stream. */
void ragd_sse_reset(ragd_sse_parser *p);
/* Parse len bytes. Returns 0, RAGD_ENOMEM, or the callback's non-zero value. */
int ragd_sse_feed(ragd_sse_parser *p, const char *buf, size_t len);
/* End of stream: returns true when an incomplete event (or partial line) was discarded. */
bool ragd_sse_finish(ragd_sse_parser *p);

#endif
