/* The HTTP request-stream processor: identity headers, framing, smuggling defences, limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "gateway/http.h"

#define INJECT "Client-Cert: :AAAA:\r\n"

static const char *const hosts[] = {"api.example.com", "*.svc.example.com"};
static const char *const strip[] = {"X-Client-Verified"};

static struct gw_http *new_proc(void)
{
    struct gw_http_params p = {
        .hosts = hosts,
        .n_hosts = 2,
        .strip = strip,
        .n_strip = 1,
        .inject = INJECT,
        .inject_len = strlen(INJECT),
    };
    struct tw_err err;
    struct gw_http *h = gw_http_new(&p, &err);
    assert_non_null(h);
    return h;
}

/* Feed s in pieces of `step` bytes (0: all at once); return the output as a string. */
static char *feed(struct gw_http *h, const char *s, size_t step, enum gw_http_result *res,
                  size_t *used_total)
{
    struct evbuffer *out = evbuffer_new();
    size_t len = strlen(s), pos = 0;
    enum gw_http_result r = GW_HTTP_OK;
    while (pos < len) {
        size_t n = step == 0 || step > len - pos ? len - pos : step;
        size_t used = 0;
        r = gw_http_feed(h, s + pos, n, out, &used);
        pos += used;
        if (r != GW_HTTP_OK)
            break;
        assert_int_equal(used, n);
    }
    size_t olen = evbuffer_get_length(out);
    char *o = malloc(olen + 1);
    evbuffer_remove(out, o, olen);
    o[olen] = '\0';
    evbuffer_free(out);
    if (res != NULL)
        *res = r;
    if (used_total != NULL)
        *used_total = pos;
    return o;
}

/* Output for s must be want, whatever the chunk split. */
static void expect_output(const char *s, const char *want)
{
    static const size_t steps[] = {0, 1, 2, 3, 7, 64};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        struct gw_http *h = new_proc();
        enum gw_http_result r;
        char *o = feed(h, s, steps[i], &r, NULL);
        assert_int_equal(r, GW_HTTP_OK);
        assert_string_equal(o, want);
        free(o);
        gw_http_free(h);
    }
}

/* s must be rejected with status, whatever the split. */
static void expect_reject(const char *s, int status)
{
    static const size_t steps[] = {0, 1, 5};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        struct gw_http *h = new_proc();
        enum gw_http_result r;
        char *o = feed(h, s, steps[i], &r, NULL);
        if (r != GW_HTTP_REJECT)
            fail_msg("not rejected (step %zu): %s", steps[i], s);
        assert_int_equal(gw_http_status(h), status);
        assert_true(strlen(gw_http_reason(h)) > 0);
        /* Once rejected, always rejected. */
        size_t used;
        struct evbuffer *out = evbuffer_new();
        assert_int_equal(gw_http_feed(h, "x", 1, out, &used), GW_HTTP_REJECT);
        evbuffer_free(out);
        free(o);
        gw_http_free(h);
    }
}

static void test_injects_and_strips(void **state)
{
    (void)state;
    expect_output("GET /a?b=1 HTTP/1.1\r\nHost: api.example.com\r\nclient-cert: :Zm9v:\r\n"
                  "CLIENT-CERT-CHAIN: :Zm9v:\r\nX-Forwarded-Client-Cert: Hash=abc\r\n"
                  "x-client-verified: yes\r\nAccept:  */*  \r\n\r\n",
                  "GET /a?b=1 HTTP/1.1\r\nHost: api.example.com\r\nAccept: */*\r\n" INJECT "\r\n");
}

static void test_pipelined_each_request_gets_headers(void **state)
{
    (void)state;
    expect_output("GET /1 HTTP/1.1\r\nHost: api.example.com\r\n\r\n"
                  "\r\n" /* a stray CRLF between requests is tolerated */
                  "POST /2 HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 5\r\n"
                  "Client-Cert: :x:\r\n\r\nhello"
                  "HEAD /3 HTTP/1.1\r\nHost: a.svc.example.com:8443\r\n\r\n",
                  "GET /1 HTTP/1.1\r\nHost: api.example.com\r\n" INJECT "\r\n"
                  "POST /2 HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 5\r\n" INJECT
                  "\r\nhello"
                  "HEAD /3 HTTP/1.1\r\nHost: a.svc.example.com:8443\r\n" INJECT "\r\n");
    struct gw_http *h = new_proc();
    char *o = feed(h,
                   "GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n"
                   "GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
                   0, NULL, NULL);
    assert_int_equal(gw_http_requests(h), 2);
    assert_true(gw_http_idle(h));
    free(o);
    gw_http_free(h);
}

static void test_body_that_looks_like_a_request_is_body(void **state)
{
    (void)state;
    /* A Content-Length body is data, even when it spells a spoofed header. */
    expect_output("POST / HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 16\r\n\r\n"
                  "Client-Cert: x\r\n",
                  "POST / HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 16\r\n" INJECT
                  "\r\nClient-Cert: x\r\n");
}

static void test_chunked_reframed_with_trailers(void **state)
{
    (void)state;
    expect_output("POST /up HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n"
                  "\r\n5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nChecksum: 1\r\n"
                  "Client-Cert: :spoof:\r\nContent-Length: 3\r\n\r\n"
                  "GET /next HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
                  "POST /up HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n" INJECT
                  "\r\n5\r\nhello\r\na\r\n0123456789\r\n0\r\nChecksum: 1\r\n\r\n"
                  "GET /next HTTP/1.1\r\nHost: api.example.com\r\n" INJECT "\r\n");
}

static void test_expect_continue_passes(void **state)
{
    (void)state;
    expect_output("PUT /f HTTP/1.1\r\nHost: api.example.com\r\nExpect: 100-continue\r\n"
                  "Content-Length: 3\r\n\r\nabc",
                  "PUT /f HTTP/1.1\r\nHost: api.example.com\r\nExpect: 100-continue\r\n"
                  "Content-Length: 3\r\n" INJECT "\r\nabc");
}

static void test_websocket_upgrade_tunnels(void **state)
{
    (void)state;
    const char *req = "GET /ws HTTP/1.1\r\nHost: api.example.com\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n";
    char in[512];
    snprintf(in, sizeof(in), "%s%s", req, "\x81\x05hello");
    static const size_t steps[] = {0, 1, 9};
    for (size_t i = 0; i < 3; i++) {
        struct gw_http *h = new_proc();
        enum gw_http_result r;
        size_t used;
        char *o = feed(h, in, steps[i], &r, &used);
        assert_int_equal(r, GW_HTTP_TUNNEL);
        assert_int_equal(used, strlen(req));
        assert_non_null(strstr(o, "Upgrade: websocket\r\n"));
        assert_non_null(strstr(o, INJECT "\r\n"));
        free(o);
        /* Feeding after the tunnel began is a bug in the caller. */
        struct evbuffer *out = evbuffer_new();
        assert_int_equal(gw_http_feed(h, "x", 1, out, &used), GW_HTTP_REJECT);
        assert_int_equal(gw_http_status(h), 500);
        evbuffer_free(out);
        gw_http_free(h);
    }
}

static void test_process_leaves_tunnel_bytes(void **state)
{
    (void)state;
    struct gw_http *h = new_proc();
    struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
    evbuffer_add_printf(in, "GET /ws HTTP/1.1\r\nHost: api.example.com\r\nUpgrade: WebSocket\r\n"
                            "Connection: keep-alive, Upgrade\r\n\r\nRAW");
    assert_int_equal(gw_http_process(h, in, out), GW_HTTP_TUNNEL);
    assert_int_equal(evbuffer_get_length(in), 3);
    evbuffer_free(in);
    evbuffer_free(out);
    gw_http_free(h);
}

static void test_other_upgrade_is_removed(void **state)
{
    (void)state;
    expect_output("GET / HTTP/1.1\r\nHost: api.example.com\r\nUpgrade: h2c\r\n"
                  "Connection: Upgrade\r\n\r\nGET /2 HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
                  "GET / HTTP/1.1\r\nHost: api.example.com\r\nConnection: Upgrade\r\n" INJECT
                  "\r\nGET /2 HTTP/1.1\r\nHost: api.example.com\r\n" INJECT "\r\n");
    /* Upgrade without Connection: upgrade is not an upgrade: the header goes. */
    expect_output("GET / HTTP/1.1\r\nHost: api.example.com\r\nUpgrade: websocket\r\n\r\n",
                  "GET / HTTP/1.1\r\nHost: api.example.com\r\n" INJECT "\r\n");
}

static void test_connection_close_discards_rest(void **state)
{
    (void)state;
    expect_output("GET / HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n"
                  "GET /smuggled HTTP/1.1\r\nHost: api.example.com\r\nClient-Cert: :x:\r\n\r\n",
                  "GET / HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n" INJECT "\r\n");
    expect_output("GET / HTTP/1.0\r\nHost: api.example.com\r\n\r\nGET /2 HTTP/1.0\r\n\r\n",
                  "GET / HTTP/1.0\r\nHost: api.example.com\r\n" INJECT "\r\n");
}

static void test_http10_keep_alive(void **state)
{
    (void)state;
    expect_output("GET /1 HTTP/1.0\r\nHost: api.example.com\r\nConnection: keep-alive\r\n\r\n"
                  "GET /2 HTTP/1.0\r\nHost: api.example.com\r\n\r\n"
                  "GET /3 HTTP/1.0\r\nHost: api.example.com\r\n\r\n",
                  "GET /1 HTTP/1.0\r\nHost: api.example.com\r\nConnection: keep-alive\r\n" INJECT
                  "\r\nGET /2 HTTP/1.0\r\nHost: api.example.com\r\n" INJECT "\r\n");
}

static void test_http10_without_host_when_unchecked(void **state)
{
    (void)state;
    struct gw_http_params p = {0};
    struct tw_err err;
    struct gw_http *h = gw_http_new(&p, &err);
    assert_non_null(h);
    char *o = feed(h, "GET / HTTP/1.0\r\nClient-Cert: :x:\r\n\r\n", 0, NULL, NULL);
    assert_string_equal(o, "GET / HTTP/1.0\r\n\r\n");
    free(o);
    gw_http_free(h);
}

static void test_reject_400(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "garbage\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 3\r\n"
        "Transfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n"
        "Content-Length: 3\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 3\r\n"
        "Content-Length: 4\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 3\r\n"
        "Content-Length: 3\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: api.example.com\r\nX-A: 1\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: api.example.com\r\nX-A: 1\r\n\tfolded\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: api.example.com\r\nBad Name: 1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: api.example.com\r\nBad(Name): 1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: api.example.com\r\nX: a\x01" "b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: api.example.com\r\nX: a\rb\r\n\r\n",
        /* http-parser alone would end the head at the bare CR and read "e.co" as body. */
        "PUT / HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 4\r\n\re.com\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: api.example.com\r\nHost: api.example.com\r\n\r\n",
        "CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
        "POST / HTTP/1.0\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: identity\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: api.example.com\r\nConnection: close, Client-Cert\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "POST / HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: -1\r\n\r\n",
        "GET / HTTP/2.0\r\nHost: api.example.com\r\n\r\n",
        "GET http://[::1/ HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
        /* http-parser 2.9 backends read any name starting so as Transfer-Encoding; with a
         * refused (non-websocket) upgrade the gateway's own parse skips that check. */
        "GET / HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encodingx: y\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: api.example.com\r\ntransfer-encoding-x: y\r\n"
        "Upgrade: a\r\nUpgrade: b\r\nConnection: Upgrade\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_reject(bad[i], 400);
}

static void test_reject_400_after_good_request(void **state)
{
    (void)state;
    struct gw_http *h = new_proc();
    enum gw_http_result r;
    char *o = feed(h,
                   "GET /ok HTTP/1.1\r\nHost: api.example.com\r\n\r\n"
                   "GET /bad HTTP/1.1\r\nHost: api.example.com\r\nA: 1\r\n b\r\n\r\n",
                   0, &r, NULL);
    assert_int_equal(r, GW_HTTP_REJECT);
    assert_int_equal(gw_http_status(h), 400);
    assert_string_equal(o, "GET /ok HTTP/1.1\r\nHost: api.example.com\r\n" INJECT "\r\n");
    free(o);
    gw_http_free(h);
}

static void test_reject_431(void **state)
{
    (void)state;
    size_t big = GW_HTTP_MAX_HEADER_BYTES + 10;
    char *s = malloc(big + 100);
    int n = snprintf(s, 100, "GET / HTTP/1.1\r\nHost: api.example.com\r\nX-Big: ");
    memset(s + n, 'a', big);
    s[n + big] = '\0';
    expect_reject(s, 431);
    free(s);

    char *many = malloc((GW_HTTP_MAX_HEADERS + 2) * 16 + 100);
    size_t pos = (size_t)snprintf(many, 100, "GET / HTTP/1.1\r\nHost: api.example.com\r\n");
    for (int i = 0; i <= GW_HTTP_MAX_HEADERS; i++)
        pos += (size_t)snprintf(many + pos, 16, "X-%d: 1\r\n", i);
    snprintf(many + pos, 3, "\r\n");
    expect_reject(many, 431);
    free(many);

    /* A smaller configured limit applies too. */
    struct gw_http_params p = {.max_header_bytes = 64, .max_headers = 2};
    struct tw_err err;
    struct gw_http *h = gw_http_new(&p, &err);
    enum gw_http_result r;
    char *o = feed(h, "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\nY: 2\r\n\r\n", 0, &r, NULL);
    assert_int_equal(r, GW_HTTP_REJECT);
    assert_int_equal(gw_http_status(h), 431);
    free(o);
    gw_http_free(h);
}

static void test_reject_421(void **state)
{
    (void)state;
    expect_reject("GET / HTTP/1.1\r\nHost: other.example.com\r\n\r\n", 421);
    expect_reject("GET / HTTP/1.1\r\nHost: a.b.svc.example.com\r\n\r\n", 421);
    expect_reject("GET / HTTP/1.1\r\nHost: api.example.com:x\r\n\r\n", 421);
    expect_reject("GET http://other.example.com/ HTTP/1.1\r\nHost: api.example.com\r\n\r\n", 421);
    expect_output("GET http://API.example.com:8443/x HTTP/1.1\r\nHost: Api.Example.Com.\r\n\r\n",
                  "GET http://API.example.com:8443/x HTTP/1.1\r\nHost: Api.Example.Com.\r\n" INJECT
                  "\r\n");
}

static void test_host_allowed(void **state)
{
    (void)state;
    static const char *const h[] = {"example.com", "::1", "*.w.example.com"};
#define ALLOWED(s) gw_http_host_allowed(h, 3, s, strlen(s))
    assert_true(ALLOWED("example.com"));
    assert_true(ALLOWED("EXAMPLE.com:443"));
    assert_true(ALLOWED("example.com."));
    assert_true(ALLOWED("[::1]:8443"));
    assert_true(ALLOWED("[::1]"));
    assert_true(ALLOWED("x.w.example.com"));
    assert_false(ALLOWED("w.example.com"));
    assert_false(ALLOWED(".w.example.com"));
    assert_false(ALLOWED("x.y.w.example.com"));
    assert_false(ALLOWED("example.com:"));
    assert_false(ALLOWED("example.com:123456"));
    assert_false(ALLOWED("::1"));
    assert_false(ALLOWED("[::1"));
    assert_false(ALLOWED("[::1]x"));
    assert_false(ALLOWED(""));
    assert_false(ALLOWED("example.org"));
    assert_false(gw_http_host_allowed(h, 0, "example.com", 11));
#undef ALLOWED
}

static void test_new_rejects_bad_inject(void **state)
{
    (void)state;
    struct tw_err err;
    static const char *const bad[] = {"Client-Cert: x", "Client-Cert: x\n", "NoColon\r\n",
                                      "\r\n", "A: b\r\n\r\n", "A: b\rc\r\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct gw_http_params p = {.inject = bad[i], .inject_len = strlen(bad[i])};
        assert_null(gw_http_new(&p, &err));
        assert_int_equal(err.code, TW_ERR_CONFIG);
    }
    struct gw_http_params p = {.inject = "A: b\r\n", .inject_len = GW_HTTP_MAX_INJECT + 1};
    assert_null(gw_http_new(&p, &err));
    assert_int_equal(err.code, TW_ERR_CONFIG);
    gw_http_free(NULL);
}

static void test_error_responses(void **state)
{
    (void)state;
    static const int codes[] = {400, 403, 421, 431, 500, 502, 503, 504};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        size_t len;
        const char *r = gw_http_error_response(codes[i], &len);
        char line[32];
        snprintf(line, sizeof(line), "HTTP/1.1 %d ", codes[i]);
        assert_int_equal(strncmp(r, line, strlen(line)), 0);
        assert_int_equal(strlen(r), len);
        assert_non_null(strstr(r, "\r\nConnection: close\r\n"));
        const char *body = strstr(r, "\r\n\r\n") + 4;
        const char *cl = strstr(r, "Content-Length: ");
        assert_non_null(cl);
        assert_int_equal(strtoul(cl + 16, NULL, 10), strlen(body));
    }
    size_t len;
    assert_int_equal(strncmp(gw_http_error_response(999, &len), "HTTP/1.1 500 ", 13), 0);
}

static void test_upgrade_accepted(void **state)
{
    (void)state;
    assert_int_equal(gw_http_upgrade_accepted("HTTP/1.1 101 Switching Protocols\r\n", 34), 1);
    assert_int_equal(gw_http_upgrade_accepted("HTTP/1.1 101\r\n", 14), 1);
    assert_int_equal(gw_http_upgrade_accepted("HTTP/1.1 10", 11), -1);
    assert_int_equal(gw_http_upgrade_accepted("HTTP/1.1 101", 12), -1);
    assert_int_equal(gw_http_upgrade_accepted("", 0), -1);
    assert_int_equal(gw_http_upgrade_accepted("HTTP/1.1 200 OK\r\n", 17), 0);
    assert_int_equal(gw_http_upgrade_accepted("HTTP/1.1 1010 \r\n", 16), 0);
    assert_int_equal(gw_http_upgrade_accepted("HTTP/1.0 101 x\r\n", 16), 0);
    assert_int_equal(gw_http_upgrade_accepted("X", 1), 0);
}

static void test_idle(void **state)
{
    (void)state;
    struct gw_http *h = new_proc();
    assert_true(gw_http_idle(h));
    char *o = feed(h, "GET / HTTP/1.1\r\nHo", 0, NULL, NULL);
    assert_false(gw_http_idle(h));
    free(o);
    o = feed(h, "st: api.example.com\r\n\r\n", 0, NULL, NULL);
    assert_true(gw_http_idle(h));
    free(o);
    o = feed(h, "POST / HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 2\r\n\r\n1", 0, NULL,
             NULL);
    assert_false(gw_http_idle(h));
    free(o);
    gw_http_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_injects_and_strips),
        cmocka_unit_test(test_pipelined_each_request_gets_headers),
        cmocka_unit_test(test_body_that_looks_like_a_request_is_body),
        cmocka_unit_test(test_chunked_reframed_with_trailers),
        cmocka_unit_test(test_expect_continue_passes),
        cmocka_unit_test(test_websocket_upgrade_tunnels),
        cmocka_unit_test(test_process_leaves_tunnel_bytes),
        cmocka_unit_test(test_other_upgrade_is_removed),
        cmocka_unit_test(test_connection_close_discards_rest),
        cmocka_unit_test(test_http10_keep_alive),
        cmocka_unit_test(test_http10_without_host_when_unchecked),
        cmocka_unit_test(test_reject_400),
        cmocka_unit_test(test_reject_400_after_good_request),
        cmocka_unit_test(test_reject_431),
        cmocka_unit_test(test_reject_421),
        cmocka_unit_test(test_host_allowed),
        cmocka_unit_test(test_new_rejects_bad_inject),
        cmocka_unit_test(test_error_responses),
        cmocka_unit_test(test_upgrade_accepted),
        cmocka_unit_test(test_idle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
