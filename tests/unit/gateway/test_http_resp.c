/* The HTTP/1.1 response reader behind HTTP/2 clients: what a backend answers becomes a status,
 * a safe header list, body bytes, trailers and an end, whatever the chunk splits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/http_resp.h"

struct got {
    int status, heads, ends;
    char fields[1024];
    char trailers[256];
    char body[256];
    size_t body_len;
    int stop_in_head;
};

static void list(char *out, size_t cap, const struct gw_hdr *h, size_t n)
{
    size_t used = strlen(out);
    for (size_t i = 0; i < n; i++)
        used += (size_t)snprintf(out + used, cap - used, "%.*s=%.*s;", (int)h[i].name_len,
                                 h[i].name, (int)h[i].value_len, h[i].value);
}

static int on_head(void *arg, int status, const struct gw_hdr *h, size_t n)
{
    struct got *g = arg;
    g->status = status;
    g->heads++;
    list(g->fields, sizeof(g->fields), h, n);
    return g->stop_in_head ? -1 : 0;
}

static int on_body(void *arg, const uint8_t *d, size_t n)
{
    struct got *g = arg;
    assert_true(g->body_len + n < sizeof(g->body));
    memcpy(g->body + g->body_len, d, n);
    g->body_len += n;
    return 0;
}

static int on_trailers(void *arg, const struct gw_hdr *h, size_t n)
{
    struct got *g = arg;
    list(g->trailers, sizeof(g->trailers), h, n);
    return 0;
}

static int on_end(void *arg)
{
    ((struct got *)arg)->ends++;
    return 0;
}

static const struct gw_http_resp_cb cb = {on_head, on_body, on_trailers, on_end};

/* Feed text in pieces of `step` bytes; returns the first non-zero feed result, or 0. */
static int feed(struct gw_http_resp *r, const char *text, size_t step)
{
    size_t len = strlen(text);
    for (size_t i = 0; i < len; i += step) {
        size_t n = len - i < step ? len - i : step;
        if (gw_http_resp_feed(r, text + i, n) != 0)
            return -1;
    }
    return 0;
}

static struct gw_http_resp *reader(struct got *g, bool head)
{
    memset(g, 0, sizeof(*g));
    struct tw_err err;
    struct gw_http_resp *r = gw_http_resp_new(&cb, g, head, &err);
    assert_non_null(r);
    return r;
}

static void test_fields_lower_cased_and_hop_by_hop_removed(void **state)
{
    (void)state;
    for (size_t step = 1; step <= 64; step *= 4) {
        struct got g;
        struct gw_http_resp *r = reader(&g, false);
        assert_int_equal(feed(r,
                              "HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\n"
                              "Connection: keep-alive, X-Hop\r\nX-Hop: secret\r\n"
                              "Keep-Alive: timeout=5\r\nProxy-Connection: x\r\nUpgrade: h2c\r\n"
                              "X-Kept:  yes  \r\nContent-Length: 3\r\n\r\nabc",
                              step),
                         0);
        assert_int_equal(g.status, 201);
        assert_string_equal(g.fields, "content-type=text/plain;x-kept=yes;content-length=3;");
        assert_int_equal(g.body_len, 3);
        assert_memory_equal(g.body, "abc", 3);
        assert_int_equal(g.ends, 1);
        assert_true(gw_http_resp_done(r));
        gw_http_resp_free(r);
    }
}

static void test_interim_skipped_and_chunked_trailers(void **state)
{
    (void)state;
    struct got g;
    struct gw_http_resp *r = reader(&g, false);
    assert_int_equal(feed(r,
                          "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n4\r\none-\r\n3\r\ntwo\r\n"
                          "0\r\nGrpc-Status: 0\r\nContent-Length: 9\r\n\r\n",
                          5),
                     0);
    assert_int_equal(g.heads, 1);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.fields, "");
    assert_int_equal(g.body_len, 7);
    assert_memory_equal(g.body, "one-two", 7);
    assert_string_equal(g.trailers, "grpc-status=0;"); /* framing fields dropped */
    assert_int_equal(g.ends, 1);
    gw_http_resp_free(r);
}

static void test_head_request_and_close_delimited_body(void **state)
{
    (void)state;
    struct got g;
    struct gw_http_resp *r = reader(&g, true);
    assert_int_equal(feed(r, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", 7), 0);
    assert_int_equal(g.ends, 1);
    assert_int_equal(g.body_len, 0);
    gw_http_resp_free(r);

    r = reader(&g, false);
    assert_int_equal(feed(r, "HTTP/1.1 200 OK\r\n\r\nuntil the close", 3), 0);
    assert_int_equal(g.ends, 0);
    assert_int_equal(gw_http_resp_eof(r), 0);
    assert_int_equal(g.ends, 1);
    assert_int_equal(g.body_len, 15);
    gw_http_resp_free(r);
}

static void test_failures_name_their_reason(void **state)
{
    (void)state;
    struct got g;
    struct gw_http_resp *r = reader(&g, false);
    assert_int_equal(feed(r, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", 64), -1);
    assert_string_equal(gw_http_resp_reason(r), "unexpected 101 response");
    assert_int_equal(g.heads, 0);
    gw_http_resp_free(r);

    r = reader(&g, false);
    assert_int_equal(feed(r, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 64), 0);
    assert_int_equal(gw_http_resp_eof(r), -1);
    assert_string_equal(gw_http_resp_reason(r), "response cut short");
    assert_true(gw_http_resp_started(r));
    assert_false(gw_http_resp_done(r));
    gw_http_resp_free(r);

    /* A status below 100 is no interim answer: the "response" after it is never taken as
     * the final one (found by fuzz/http_resp_fuzz.c). */
    r = reader(&g, false);
    assert_int_equal(feed(r, "HTTP/1.1 099 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", 64), -1);
    assert_string_equal(gw_http_resp_reason(r), "malformed status code");
    assert_int_equal(g.heads, 0);
    assert_int_equal(g.body_len, 0);
    gw_http_resp_free(r);

    r = reader(&g, false);
    assert_int_equal(feed(r, "SMTP ready\r\n", 64), -1);
    assert_string_equal(gw_http_resp_reason(r), "malformed response");
    gw_http_resp_free(r);

    r = reader(&g, false);
    g.stop_in_head = 1;
    assert_int_equal(feed(r, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 64), -1);
    assert_string_equal(gw_http_resp_reason(r), "stopped");
    gw_http_resp_free(r);

    r = reader(&g, false);
    static char big[GW_HTTP_RESP_MAX_BYTES + 200];
    memset(big, 'a', sizeof(big) - 1);
    memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
    assert_int_equal(feed(r, big, 4096), -1);
    assert_string_equal(gw_http_resp_reason(r), "response head too large");
    gw_http_resp_free(r);
}

/* A reader started over (an HTTP/2 stream reused for the next request) reads the next
 * response as a new one: nothing of the last one's state, failure or head size carries over. */
static void test_reset_reader_starts_over(void **state)
{
    (void)state;
    struct got g;
    struct gw_http_resp *r = reader(&g, true);
    assert_int_equal(feed(r, "HTTP/1.1 404 Not Found\r\nX-Old: 1\r\nConnection: close\r\n"
                             "Content-Length: 5\r\n\r\n", 64),
                     0);
    assert_false(gw_http_resp_keep_alive(r));

    struct got g2 = {0};
    gw_http_resp_reset(r, &cb, &g2, false);
    assert_false(gw_http_resp_started(r));
    assert_false(gw_http_resp_done(r));
    assert_int_equal(feed(r, "HTTP/1.1 200 OK\r\nX-New: 2\r\nContent-Length: 3\r\n\r\nabc", 7),
                     0);
    assert_int_equal(g2.status, 200);
    assert_string_equal(g2.fields, "x-new=2;content-length=3;");
    assert_int_equal(g2.body_len, 3); /* not a HEAD request any more */
    assert_int_equal(g2.ends, 1);
    assert_true(gw_http_resp_keep_alive(r));
    assert_int_equal(g.heads, 1); /* the first callbacks' argument is not used again */

    /* After a failure, and after a head bigger than what is kept between responses. */
    static char big[GW_HTTP_RESP_MAX_BYTES + 200];
    memset(big, 'a', sizeof(big) - 1);
    memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
    gw_http_resp_reset(r, &cb, &g2, false);
    assert_int_equal(feed(r, big, 4096), -1);
    assert_string_equal(gw_http_resp_reason(r), "response head too large");
    memset(&g2, 0, sizeof(g2));
    gw_http_resp_reset(r, &cb, &g2, false);
    assert_string_equal(gw_http_resp_reason(r), "");
    assert_int_equal(feed(r, "HTTP/1.1 204 No Content\r\n\r\n", 3), 0);
    assert_int_equal(g2.status, 204);
    assert_int_equal(g2.ends, 1);
    gw_http_resp_free(r);
}

/* A connection that sent more than the response cannot carry the next request: the extra
 * bytes would be taken for its answer. */
static void test_bytes_after_the_end_forbid_reuse(void **state)
{
    (void)state;
    const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    struct got g;
    struct gw_http_resp *r = reader(&g, false);
    assert_int_equal(feed(r, resp, 64), 0);
    assert_true(gw_http_resp_keep_alive(r));
    gw_http_resp_free(r);

    r = reader(&g, false);
    assert_int_equal(feed(r, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1", 64), 0);
    assert_int_equal(g.ends, 1);
    assert_false(gw_http_resp_keep_alive(r));
    gw_http_resp_free(r);

    r = reader(&g, false);
    assert_int_equal(feed(r, resp, 64), 0);
    assert_int_equal(gw_http_resp_feed(r, "x", 1), 0); /* in a later read */
    assert_false(gw_http_resp_keep_alive(r));
    gw_http_resp_reset(r, &cb, &g, false);
    assert_int_equal(feed(r, resp, 64), 0);
    assert_true(gw_http_resp_keep_alive(r));
    gw_http_resp_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_lower_cased_and_hop_by_hop_removed),
        cmocka_unit_test(test_interim_skipped_and_chunked_trailers),
        cmocka_unit_test(test_head_request_and_close_delimited_body),
        cmocka_unit_test(test_failures_name_their_reason),
        cmocka_unit_test(test_reset_reader_starts_over),
        cmocka_unit_test(test_bytes_after_the_end_forbid_reuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
