#include "loadtest/sse.h"

#include <stdlib.h>
#include <string.h>

#include "util/err.h"

void ragd_sse_init(ragd_sse_parser *p, ragd_sse_event_fn on_event, ragd_sse_comment_fn on_comment,
                   void *ud) {
    memset(p, 0, sizeof *p);
    p->on_event = on_event;
    p->on_comment = on_comment;
    p->ud = ud;
    p->retry_ms = -1;
}

void ragd_sse_free(ragd_sse_parser *p) {
    ragd_buf_free(&p->line);
    ragd_buf_free(&p->data);
    ragd_buf_free(&p->type);
    ragd_buf_free(&p->last_id);
    ragd_buf_free(&p->scratch);
}

void ragd_sse_reset(ragd_sse_parser *p) {
    ragd_buf_clear(&p->line);
    ragd_buf_clear(&p->data);
    ragd_buf_clear(&p->type);
    ragd_buf_clear(&p->last_id);
    p->retry_ms = -1;
    p->have_data = p->skip_lf = p->started = false;
    p->bom_left = 0;
    p->n_events = p->n_comments = 0;
}

/* Replace invalid UTF-8 in s[0..n) by U+FFFD into scratch (offset start). */
static int repair_utf8(ragd_buf *out, const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int k = ragd_utf8_decode(s + i, n - i, &cp);
        if (k < 1) k = 1;
        if (cp == 0xFFFD && !(k == 3 && (unsigned char)s[i] == 0xEF)) {
            if (ragd_buf_append(out, "\xEF\xBF\xBD", 3)) return RAGD_ENOMEM;
        } else if (ragd_buf_append(out, s + i, (size_t)k)) {
            return RAGD_ENOMEM;
        }
        i += (size_t)k;
    }
    return RAGD_OK;
}

static int dispatch(ragd_sse_parser *p) {
    if (!p->have_data) {
        ragd_buf_clear(&p->type);
        return 0;
    }
    /* drop the trailing LF appended after the last data line */
    if (p->data.len && p->data.data[p->data.len - 1] == '\n') p->data.data[--p->data.len] = '\0';
    ragd_sse_event ev;
    if (p->type.len) {
        ev.type = p->type.data;
        ev.type_len = p->type.len;
    } else {
        ev.type = "message";
        ev.type_len = 7;
    }
    ev.data = p->data.len ? p->data.data : "";
    ev.data_len = p->data.len;
    ev.last_id = p->last_id.len ? p->last_id.data : "";
    if (!ragd_utf8_valid(ev.data, ev.data_len) || !ragd_utf8_valid(ev.type, ev.type_len)) {
        ragd_buf_clear(&p->scratch);
        if (repair_utf8(&p->scratch, ev.data, ev.data_len) || ragd_buf_putc(&p->scratch, '\0') ||
            repair_utf8(&p->scratch, ev.type, ev.type_len))
            return RAGD_ENOMEM;
        size_t dl = strlen(p->scratch.data);
        ev.data = p->scratch.data;
        ev.data_len = dl;
        ev.type = p->scratch.data + dl + 1;
        ev.type_len = p->scratch.len - dl - 1;
    }
    p->n_events++;
    int rc = p->on_event(p->ud, &ev);
    ragd_buf_clear(&p->data);
    ragd_buf_clear(&p->type);
    p->have_data = false;
    return rc;
}

static int process_line(ragd_sse_parser *p, const char *s, size_t n) {
    if (!p->started) {
        p->started = true;
        if (n >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) {
            s += 3;
            n -= 3;
        }
    }
    if (n == 0) return dispatch(p);
    if (s[0] == ':') {
        p->n_comments++;
        if (p->on_comment) p->on_comment(p->ud, s + 1, n - 1);
        return 0;
    }
    const char *colon = memchr(s, ':', n);
    size_t flen = colon ? (size_t)(colon - s) : n;
    const char *val = colon ? colon + 1 : s + n;
    size_t vlen = colon ? n - flen - 1 : 0;
    if (vlen && val[0] == ' ') {
        val++;
        vlen--;
    }
    if (flen == 4 && !memcmp(s, "data", 4)) {
        if (ragd_buf_append(&p->data, val, vlen) || ragd_buf_putc(&p->data, '\n'))
            return RAGD_ENOMEM;
        p->have_data = true;
    } else if (flen == 5 && !memcmp(s, "event", 5)) {
        ragd_buf_clear(&p->type);
        if (ragd_buf_append(&p->type, val, vlen)) return RAGD_ENOMEM;
    } else if (flen == 2 && !memcmp(s, "id", 2)) {
        if (!memchr(val, '\0', vlen)) {
            ragd_buf_clear(&p->last_id);
            if (ragd_buf_append(&p->last_id, val, vlen)) return RAGD_ENOMEM;
        }
    } else if (flen == 5 && !memcmp(s, "retry", 5)) {
        long v = 0;
        size_t i = 0;
        for (; i < vlen && val[i] >= '0' && val[i] <= '9'; i++)
            if (v < 1000000000L) v = v * 10 + (val[i] - '0');
        if (vlen && i == vlen) p->retry_ms = v;
    }
    /* other fields are ignored */
    return 0;
}

int ragd_sse_feed(ragd_sse_parser *p, const char *buf, size_t len) {
    size_t i = 0;
    while (i < len) {
        if (p->skip_lf) {
            p->skip_lf = false;
            if (buf[i] == '\n') {
                i++;
                continue;
            }
        }
        /* find the next CR or LF */
        size_t j = i;
        while (j < len && buf[j] != '\n' && buf[j] != '\r') j++;
        if (j == len) {
            /* partial line: keep it for the next feed */
            if (ragd_buf_append(&p->line, buf + i, len - i)) return RAGD_ENOMEM;
            return 0;
        }
        int rc;
        if (p->line.len) {
            if (ragd_buf_append(&p->line, buf + i, j - i)) return RAGD_ENOMEM;
            rc = process_line(p, p->line.data, p->line.len);
            ragd_buf_clear(&p->line);
        } else {
            rc = process_line(p, buf + i, j - i);
        }
        if (buf[j] == '\r') p->skip_lf = true;
        i = j + 1;
        if (rc) return rc;
    }
    return 0;
}

bool ragd_sse_finish(ragd_sse_parser *p) {
    bool lost = p->line.len > 0 || p->have_data;
    ragd_buf_clear(&p->line);
    ragd_buf_clear(&p->data);
    ragd_buf_clear(&p->type);
    p->have_data = false;
    return lost;
}
