/* EST wire helpers: base64 with any line breaks, CSR bodies, Basic credentials, server URLs,
 * HTTP dates, and the per-address rate limiter. Each failure path checks its error code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "est/internal.h"

static void b64_decodes_across_any_whitespace(void **state)
{
    (void)state;
    struct tw_err err;
    unsigned char *out = NULL;
    size_t len = 0;
    const char *in = " aGVs\r\nbG8s\tIHdv\ncmxk\r\n";
    assert_int_equal(est_b64_decode(in, strlen(in), "t", &out, &len, &err), 0);
    assert_int_equal(len, 12);
    assert_memory_equal(out, "hello, world", 12);
    free(out);
    assert_int_equal(est_b64_decode("YQ==", 4, "t", &out, &len, &err), 0);
    assert_int_equal(len, 1);
    assert_int_equal(out[0], 'a');
    free(out);
}

static void b64_rejects_bad_input_with_pki_error(void **state)
{
    (void)state;
    /* '-' would end OpenSSL's decoder early ("-----END"): the junk after it must not pass. */
    static const char *const bad[] = {"",     "   ",      "YQ=",      "Y===",        "YQ==YQ==",
                                      "YQ!=", "YWJj\x80", "YWJj-xx!", "YQ==\n-----", "YWJj\v"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct tw_err err;
        unsigned char *out = NULL;
        size_t len = 0;
        assert_int_equal(est_b64_decode(bad[i], strlen(bad[i]), "body", &out, &len, &err), -1);
        assert_int_equal(err.code, TW_ERR_PKI);
        assert_non_null(strstr(err.msg, "body"));
        assert_null(out);
    }
}

static void b64_encode_one_unbroken_line(void **state)
{
    (void)state;
    unsigned char data[100];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)i;
    struct tw_err err;
    size_t len = 0;
    char *text = est_b64_encode(data, sizeof(data), &len, &err);
    assert_non_null(text);
    assert_int_equal(len, 136);
    assert_int_equal(strlen(text), len);
    assert_int_equal(strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="),
                     len);
    unsigned char *back = NULL;
    size_t blen = 0;
    assert_int_equal(est_b64_decode(text, len, "t", &back, &blen, &err), 0);
    assert_int_equal(blen, sizeof(data));
    assert_memory_equal(back, data, sizeof(data));
    free(back);
    free(text);
}

static void csr_body_modes(void **state)
{
    (void)state;
    struct tw_err err;
    unsigned char *der = NULL;
    size_t len = 0;
    assert_int_equal(est_csr_body_decode("MAMCAQA=", 8, NULL, &der, &len, &err), 0);
    assert_int_equal(len, 5);
    free(der);
    assert_int_equal(est_csr_body_decode("MAMCAQA=", 8, "BASE64", &der, &len, &err), 0);
    free(der);
    assert_int_equal(est_csr_body_decode("\x30\x03", 2, "binary", &der, &len, &err), 0);
    assert_int_equal(len, 2);
    free(der);
    const char *pem = "-----BEGIN CERTIFICATE REQUEST-----\nxx\n";
    assert_int_equal(est_csr_body_decode(pem, strlen(pem), NULL, &der, &len, &err), 0);
    assert_int_equal(len, strlen(pem));
    free(der);
    assert_int_equal(est_csr_body_decode("MAMCAQA=", 8, "7bit", &der, &len, &err), -1);
    assert_int_equal(err.code, TW_ERR_PKI);
    assert_int_equal(est_csr_body_decode("", 0, NULL, &der, &len, &err), -1);
    assert_int_equal(err.code, TW_ERR_PKI);
}

static void csr_body_limit(void **state)
{
    (void)state;
    size_t n = (PKI_CSR_MAX + 3) / 3 * 4 + 8;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, 'A', n);
    struct tw_err err;
    unsigned char *der = NULL;
    size_t len = 0;
    assert_int_equal(est_csr_body_decode(big, n, NULL, &der, &len, &err), -1);
    assert_int_equal(err.code, TW_ERR_PKI);
    assert_non_null(strstr(err.msg, "larger"));
    free(big);
}

static void basic_auth(void **state)
{
    (void)state;
    struct tw_err err;
    char user[65], pass[65];
    /* "alice:s3cr:et" */
    assert_int_equal(est_basic_auth_parse("Basic YWxpY2U6czNjcjpldA==", user, sizeof(user), pass,
                                          sizeof(pass), &err),
                     0);
    assert_string_equal(user, "alice");
    assert_string_equal(pass, "s3cr:et");
    static const char *const bad[] = {
        NULL, "Bearer abc", "Basic !!!!", "Basic YWxpY2U=", "Basic OnBhc3M=", "Basic dXNlcjo="};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(est_basic_auth_parse(bad[i], user, sizeof(user), pass, sizeof(pass), &err),
                         -1);
        assert_int_equal(err.code, TW_ERR_VERIFY);
    }
}

static void url_parse(void **state)
{
    (void)state;
    struct tw_err err;
    struct est_url u;
    assert_int_equal(est_url_parse("https://ca.example.com", &u, &err), 0);
    assert_string_equal(u.host, "ca.example.com");
    assert_string_equal(u.port, "443");
    assert_string_equal(u.est_base, "/.well-known/est");
    assert_int_equal(est_url_parse("https://[::1]:8443/.well-known/est/server/", &u, &err), 0);
    assert_string_equal(u.host, "[::1]");
    assert_string_equal(u.port, "8443");
    assert_string_equal(u.est_base, "/.well-known/est/server");
    assert_int_equal(est_url_parse("https://10.0.0.1:9/pki", &u, &err), 0);
    assert_string_equal(u.est_base, "/pki/.well-known/est");
    static const char *const bad[] = {"http://x",        "https://",      "https://h:0",
                                      "https://h:99999", "https://h:80x", "https://h/a b",
                                      "https://h/?q",    "ftp:"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(est_url_parse(bad[i], &u, &err), -1);
        assert_int_equal(err.code, TW_ERR_USAGE);
    }
    /* Hosts the HTTP library would read differently from the name check. */
    static const char *const hosts[] = {"https://evil@ca.example.com", "https://ca%2eexample.com",
                                        "https://[::1%eth0]:8443",     "https://[]:8443",
                                        "https://ca_example.com"};
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        assert_int_equal(est_url_parse(hosts[i], &u, &err), -1);
        assert_int_equal(err.code, TW_ERR_USAGE);
        assert_non_null(strstr(err.msg, "not a DNS name or an IP address"));
    }
}

static void http_dates(void **state)
{
    (void)state;
    char buf[40];
    assert_string_equal(est_http_date(784111777, buf, sizeof(buf)),
                        "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_int_equal(est_http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
    assert_int_equal(est_http_date_parse("yesterday"), -1);
    assert_int_equal(est_http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT trailing"), -1);
}

static void rate_limit_buckets(void **state)
{
    (void)state;
    struct est_ratelimit *rl = malloc(sizeof(*rl));
    assert_non_null(rl);
    est_ratelimit_init(rl, 1, 2);
    long retry = 0;
    assert_int_equal(est_ratelimit_take(rl, "10.0.0.1", 100.0, &retry), 1);
    assert_int_equal(est_ratelimit_take(rl, "10.0.0.1", 100.0, &retry), 1);
    assert_int_equal(est_ratelimit_take(rl, "10.0.0.1", 100.0, &retry), 0);
    assert_true(retry >= 1);
    /* Another address has its own bucket; time refills. */
    assert_int_equal(est_ratelimit_take(rl, "10.0.0.2", 100.0, &retry), 1);
    assert_int_equal(est_ratelimit_take(rl, "10.0.0.1", 101.1, &retry), 1);
    /* Many addresses never grow the table; an evicted one starts with a full bucket. */
    char addr[32];
    for (int i = 0; i < 3 * EST_RATE_SLOTS; i++) {
        snprintf(addr, sizeof(addr), "192.0.2.%d", i);
        assert_int_equal(est_ratelimit_take(rl, addr, 200.0 + i, &retry), 1);
    }
    free(rl);
}

static void rate_limit_forgets_the_least_recently_seen(void **state)
{
    (void)state;
    struct est_ratelimit *rl = malloc(sizeof(*rl));
    assert_non_null(rl);
    est_ratelimit_init(rl, 0.0001, 1); /* one request, then practically no refill */
    long retry = 0;
    char addr[32];
    for (int i = 0; i < EST_RATE_SLOTS; i++) { /* a full table, every bucket empty */
        snprintf(addr, sizeof(addr), "198.51.100.%d", i);
        assert_int_equal(est_ratelimit_take(rl, addr, 1000.0 + i, &retry), 1);
    }
    /* Seen again: still tracked (refused), and now the most recently seen. */
    assert_int_equal(est_ratelimit_take(rl, "198.51.100.0", 3000.0, &retry), 0);
    /* A new address takes the slot of the least recently seen one: .1, not .0. */
    assert_int_equal(est_ratelimit_take(rl, "203.0.113.1", 3001.0, &retry), 1);
    assert_int_equal(est_ratelimit_take(rl, "198.51.100.0", 3002.0, &retry), 0);
    assert_int_equal(est_ratelimit_take(rl, "198.51.100.1", 3003.0, &retry), 1); /* forgotten */
    assert_int_equal(est_ratelimit_take(rl, "198.51.100.3", 3004.0, &retry), 0); /* kept */
    assert_int_equal(est_ratelimit_take(rl, "203.0.113.1", 3005.0, &retry), 0);
    free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(b64_decodes_across_any_whitespace),
        cmocka_unit_test(b64_rejects_bad_input_with_pki_error),
        cmocka_unit_test(b64_encode_one_unbroken_line),
        cmocka_unit_test(csr_body_modes),
        cmocka_unit_test(csr_body_limit),
        cmocka_unit_test(basic_auth),
        cmocka_unit_test(url_parse),
        cmocka_unit_test(http_dates),
        cmocka_unit_test(rate_limit_buckets),
        cmocka_unit_test(rate_limit_forgets_the_least_recently_seen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
