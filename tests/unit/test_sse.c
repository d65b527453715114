/* Unit tests for loadtest/sse: WHATWG event-stream parsing under every split of the input. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadtest/sse.h"

/* Collected events rendered as "type|data|id;" for easy comparison. */
typedef struct sink {
    ragd_buf out;
    ragd_buf comments;
    int stop_after;
} sink;

static int on_ev(void *ud, const ragd_sse_event *ev) {
    sink *s = ud;
    ragd_buf_append(&s->out, ev->type, ev->type_len);
    ragd_buf_putc(&s->out, '|');
    assert_int_equal(strlen(ev->data), ev->data_len); /* NUL-terminated */
    ragd_buf_append(&s->out, ev->data, ev->data_len);
    ragd_buf_putc(&s->out, '|');
    ragd_buf_puts(&s->out, ev->last_id);
    ragd_buf_putc(&s->out, ';');
    if (s->stop_after > 0 && --s->stop_after == 0) return 99;
    return 0;
}

static void on_comment(void *ud, const char *t, size_t n) {
    sink *s = ud;
    ragd_buf_append(&s->comments, t, n);
    ragd_buf_putc(&s->comments, ';');
}

static char *parse_whole(const char *in, size_t n) {
    sink s = {0};
    ragd_sse_parser p;
    ragd_sse_init(&p, on_ev, on_comment, &s);
    assert_int_equal(ragd_sse_feed(&p, in, n), 0);
    ragd_sse_finish(&p);
    ragd_sse_free(&p);
    ragd_buf_free(&s.comments);
    ragd_buf_putc(&s.out, 0);
    return ragd_buf_steal(&s.out);
}

/* Parse in pieces given by cut points; returns the rendered events. */
static char *parse_pieces(const char *in, size_t n, const size_t *cuts, size_t ncuts) {
    sink s = {0};
    ragd_sse_parser p;
    ragd_sse_init(&p, on_ev, on_comment, &s);
    size_t at = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : n;
        assert_int_equal(ragd_sse_feed(&p, in + at, end - at), 0);
        at = end;
    }
    ragd_sse_finish(&p);
    ragd_sse_free(&p);
    ragd_buf_free(&s.comments);
    ragd_buf_putc(&s.out, 0);
    return ragd_buf_steal(&s.out);
}

static void expect(const char *in, const char *want) {
    size_t n = strlen(in);
    char *whole = parse_whole(in, n);
    if (strcmp(whole, want)) print_message("input: %s\n", in);
    assert_string_equal(whole, want);
    /* byte by byte */
    size_t *cuts = malloc((n + 1) * sizeof *cuts);
    for (size_t i = 0; i < n; i++) cuts[i] = i + 1;
    char *bb = parse_pieces(in, n, cuts, n ? n - 1 : 0);
    assert_string_equal(bb, want);
    free(bb);
    /* every single split point */
    for (size_t k = 0; k <= n; k++) {
        char *sp = parse_pieces(in, n, &k, 1);
        assert_string_equal(sp, want);
        free(sp);
    }
    /* random splits */
    unsigned seed = 12345;
    for (int r = 0; r < 200; r++) {
        size_t nc = 0;
        for (size_t i = 1; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            if ((seed >> 16) % 4 == 0) cuts[nc++] = i;
        }
        char *sp = parse_pieces(in, n, cuts, nc);
        assert_string_equal(sp, want);
        free(sp);
    }
    free(cuts);
    free(whole);
}

static void test_basic(void **state) {
    (void)state;
    expect("data: hello\n\n", "message|hello|;");
    expect("data:hello\n\n", "message|hello|;");      /* no space */
    expect("data:  two\n\n", "message| two|;");       /* only one space stripped */
    expect("data: a\ndata: b\n\n", "message|a\nb|;"); /* multi-line data */
    expect("data\n\n", "message||;");                 /* field without colon */
    expect("data:\n\n", "message||;");                /* empty data still dispatches */
    expect("event: x\n\n", "");                       /* no data: no dispatch */
    expect("event: x\n\ndata: y\n\n", "message|y|;"); /* type resets after a blank line */
    expect("event: error\ndata: boom\n\n", "error|boom|;");
    expect("id: 7\ndata: a\n\ndata: b\n\n", "message|a|7;message|b|7;"); /* id persists */
    expect("id: 1\nid\ndata: a\n\n", "message|a|;");                     /* empty id resets */
    expect("data: a\nfoo: bar\nretry: 10\n\n", "message|a|;"); /* unknown fields ignored */
    expect("data: no end", "");                                /* unterminated: dropped */
    expect("data: x\n", "");                                   /* no blank line: dropped */
    expect("\n\n\ndata: a\n\n", "message|a|;");
    expect("data: {\"a\":1}\n\ndata: [DONE]\n\n", "message|{\"a\":1}|;message|[DONE]|;");
}

static void test_line_ends(void **state) {
    (void)state;
    expect("data: a\r\n\r\ndata: b\r\n\r\n", "message|a|;message|b|;");
    expect("data: a\r\rdata: b\r\r", "message|a|;message|b|;");
    expect("data: a\rdata: b\n\r\n", "message|a\nb|;");
    expect("data: a\r\n\rdata: b\n\n", "message|a|;message|b|;");
    /* CR LF split exactly between the reads must count as one line end */
    const char *in = "data: a\r\ndata: b\r\n\r\n";
    size_t cut = 8; /* after the first \r */
    char *s = parse_pieces(in, strlen(in), &cut, 1);
    assert_string_equal(s, "message|a\nb|;");
    free(s);
}

static void test_comments_bom_utf8(void **state) {
    (void)state;
    expect(": keep-alive\n\ndata: x\n\n", "message|x|;");
    expect("\xEF\xBB\xBF"
           "data: bom\n\n",
           "message|bom|;");
    /* a BOM later in the stream is not stripped: the field name no longer matches */
    expect("data: a\n\n\xEF\xBB\xBF"
           "data: b\n\n",
           "message|a|;");
    /* multi-byte characters split at every byte (expect() tries every split point) */
    expect("data: \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80\n\n",
           "message|\xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80|;");
    /* invalid UTF-8 becomes U+FFFD */
    expect("data: a\xff"
           "b\n\n",
           "message|a\xEF\xBF\xBD"
           "b|;");
    sink s = {0};
    ragd_sse_parser p;
    ragd_sse_init(&p, on_ev, on_comment, &s);
    const char *in = ": one\n:two\ndata: x\n\n";
    for (size_t i = 0; in[i]; i++) assert_int_equal(ragd_sse_feed(&p, in + i, 1), 0);
    assert_string_equal(s.comments.data, " one;two;");
    assert_int_equal(p.n_comments, 2);
    assert_int_equal(p.n_events, 1);
    assert_false(ragd_sse_finish(&p));
    assert_int_equal(ragd_sse_feed(&p, "data: half", 10), 0);
    assert_true(ragd_sse_finish(&p)); /* reports the discarded partial event */
    ragd_sse_free(&p);
    ragd_buf_free(&s.out);
    ragd_buf_free(&s.comments);
}

static void test_retry_and_stop(void **state) {
    (void)state;
    sink s = {0};
    ragd_sse_parser p;
    ragd_sse_init(&p, on_ev, NULL, &s);
    assert_int_equal(ragd_sse_feed(&p, "retry: 1500\n\nretry: 1x\n\n", 24), 0);
    assert_int_equal(p.retry_ms, 1500);
    s.stop_after = 1;
    assert_int_equal(ragd_sse_feed(&p, "data: 1\n\ndata: 2\n\n", 18), 99);
    ragd_sse_reset(&p);
    assert_int_equal(p.retry_ms, -1);
    ragd_sse_free(&p);
    ragd_buf_free(&s.out);
}

/* A long OpenAI-style stream fed in random pieces gives the same events as one feed. */
static void test_long_random(void **state) {
    (void)state;
    ragd_buf in = {0};
    for (int i = 0; i < 300; i++) {
        ragd_buf_printf(&in,
                        "%sdata: {\"choices\":[{\"delta\":{\"content\":\"\xe5\xad\x97%d\"}}]}%s%s",
                        i % 7 == 0 ? ": ping\r\n" : "", i, i % 3 == 0 ? "\r\n" : "\n",
                        i % 3 == 0   ? "\r\n"
                        : i % 3 == 1 ? "\n"
                                     : "\r");
    }
    ragd_buf_puts(&in, "data: [DONE]\n\n");
    char *want = parse_whole(in.data, in.len);
    int count = 0;
    for (char *p = want; (p = strchr(p, ';')); p++) count++;
    assert_int_equal(count, 301);
    unsigned seed = 99;
    size_t *cuts = malloc(in.len * sizeof *cuts);
    for (int r = 0; r < 100; r++) {
        size_t nc = 0;
        for (size_t i = 1; i < in.len; i++) {
            seed = seed * 1103515245u + 12345u;
            if ((seed >> 16) % 13 == 0) cuts[nc++] = i;
        }
        char *got = parse_pieces(in.data, in.len, cuts, nc);
        assert_string_equal(got, want);
        free(got);
    }
    free(cuts);
    free(want);
    ragd_buf_free(&in);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_line_ends),
        cmocka_unit_test(test_comments_bom_utf8),
        cmocka_unit_test(test_retry_and_stop),
        cmocka_unit_test(test_long_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
