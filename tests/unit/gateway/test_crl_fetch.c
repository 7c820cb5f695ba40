/* The gateway's HTTP fetcher (crl_fetch_http.c) against an in-process evhttp server on
 * loopback: a 200 with ETag / Last-Modified / Cache-Control, a conditional 304, a body over the
 * limit, a refused connection, and the error codes of requests that cannot start. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gateway/revocation.h"

struct result {
    int calls;
    int status;
    char error[200];
    char body[64];
    char etag[64];
    char last_modified[64];
    int64_t max_age;
};

static void on_result(const struct gw_fetch_res *res, void *arg)
{
    struct result *r = arg;
    r->calls++;
    r->status = res->status;
    snprintf(r->error, sizeof(r->error), "%s", res->error);
    size_t n = res->len < sizeof(r->body) - 1 ? res->len : sizeof(r->body) - 1;
    if (res->body != NULL)
        memcpy(r->body, res->body, n);
    r->body[n] = '\0';
    snprintf(r->etag, sizeof(r->etag), "%s", res->etag != NULL ? res->etag : "");
    snprintf(r->last_modified, sizeof(r->last_modified), "%s",
             res->last_modified != NULL ? res->last_modified : "");
    r->max_age = res->max_age;
}

/* The peer: "hello" with validators, or 304 when the client already holds "v1". */
static void serve(struct evhttp_request *req, void *arg)
{
    (void)arg;
    const char *inm = evhttp_find_header(evhttp_request_get_input_headers(req), "If-None-Match");
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    if (inm != NULL && strcmp(inm, "\"v1\"") == 0) {
        evhttp_send_reply(req, 304, "Not Modified", NULL);
        return;
    }
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, "hello", 5);
    evhttp_add_header(out, "ETag", "\"v1\"");
    evhttp_add_header(out, "Last-Modified", "Fri, 27 Nov 2026 20:00:00 GMT");
    evhttp_add_header(out, "Cache-Control", "public, max-age=42, must-revalidate");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

struct peer {
    struct event_base *base;
    struct evhttp *http;
    struct gw_fetcher *f;
    char url[64];
};

static int setup(void **state)
{
    struct peer *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    p->base = event_base_new();
    p->http = evhttp_new(p->base);
    struct evhttp_bound_socket *s = evhttp_bind_socket_with_handle(p->http, "127.0.0.1", 0);
    assert_non_null(s);
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    assert_int_equal(getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&sin, &len),
                     0);
    snprintf(p->url, sizeof(p->url), "http://127.0.0.1:%u/crl", (unsigned)ntohs(sin.sin_port));
    evhttp_set_gencb(p->http, serve, NULL);
    struct tw_err err;
    p->f = gw_fetcher_new(p->base, &err);
    assert_non_null(p->f);
    *state = p;
    return 0;
}

static int teardown(void **state)
{
    struct peer *p = *state;
    gw_fetcher_free(p->f);
    evhttp_free(p->http);
    event_base_free(p->base);
    free(p);
    return 0;
}

static void run_until(struct peer *p, const struct result *r)
{
    for (int i = 0; i < 10000 && r->calls == 0; i++)
        assert_true(event_base_loop(p->base, EVLOOP_ONCE) >= 0);
    assert_int_equal(r->calls, 1);
}

static void get(struct peer *p, const char *url, const char *inm, size_t max, struct result *r)
{
    struct gw_fetch_req q = {.url = url, .if_none_match = inm, .max_body = max};
    struct tw_err err;
    memset(r, 0, sizeof(*r));
    assert_int_equal(gw_fetch_start(p->f, &q, on_result, r, &err), 0);
    assert_int_equal(r->calls, 0); /* never called from inside gw_fetch_start */
    run_until(p, r);
}

static void test_ok_with_validators(void **state)
{
    struct peer *p = *state;
    struct result r;
    get(p, p->url, NULL, 1024, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello");
    assert_string_equal(r.etag, "\"v1\"");
    assert_string_equal(r.last_modified, "Fri, 27 Nov 2026 20:00:00 GMT");
    assert_int_equal(r.max_age, 42);
    assert_string_equal(r.error, "");
}

static void test_conditional_304(void **state)
{
    struct peer *p = *state;
    struct result r;
    get(p, p->url, "\"v1\"", 1024, &r);
    assert_int_equal(r.status, 304);
    assert_string_equal(r.body, "");
}

static void test_body_over_limit(void **state)
{
    struct peer *p = *state;
    struct result r;
    get(p, p->url, NULL, 3, &r);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.error, "larger than 3 bytes"));
}

static void test_connection_refused(void **state)
{
    struct peer *p = *state;
    /* A port that was just free: bind, read it, close. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    close(fd);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/crl", (unsigned)ntohs(sin.sin_port));
    struct result r;
    get(p, url, NULL, 1024, &r);
    assert_int_equal(r.status, 0);
    assert_true(r.error[0] != '\0');
}

static void test_cannot_start(void **state)
{
    struct peer *p = *state;
    struct result r = {0};
    struct tw_err err;
    static const char *const bad[] = {"ftp://127.0.0.1/crl", "not a url", "https:///crl"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct gw_fetch_req q = {.url = bad[i], .max_body = 10};
        assert_int_equal(gw_fetch_start(p->f, &q, on_result, &r, &err), -1);
        assert_int_equal(err.code, TW_ERR_CONFIG);
    }
    struct gw_fetch_req q = {
        .url = "https://127.0.0.1:1/crl", .ca_file = "/nonexistent/ca.pem", .max_body = 10};
    assert_int_equal(gw_fetch_start(p->f, &q, on_result, &r, &err), -1);
    assert_int_equal(err.code, TW_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/ca.pem"));
    assert_int_equal(r.calls, 0);
}

static void test_free_in_flight(void **state)
{
    struct peer *p = *state;
    struct result r = {0};
    struct tw_err err;
    struct gw_fetch_req q = {.url = p->url, .max_body = 10};
    assert_int_equal(gw_fetch_start(p->f, &q, on_result, &r, &err), 0);
    gw_fetcher_free(p->f); /* cancels: no callback, nothing leaked */
    p->f = gw_fetcher_new(p->base, &err);
    assert_non_null(p->f);
    assert_int_equal(r.calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ok_with_validators, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conditional_304, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_over_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cannot_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_in_flight, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
