/* twoway bench --est, the parts without sockets: the tokens file (every refusal with its
 * code and line), the answer framing and check (a certificate for the CSR's key, another key,
 * refusals with the server's reason, truncation), and bench_est_run's refusals before it
 * opens a connection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>

#include "bench/bench.h"

static int parse(const char *text, struct bench_token **t, size_t *n, struct tw_err *err)
{
    tw_err_clear(err);
    return bench_tokens_parse("tokens.txt", text, strlen(text), t, n, err);
}

static void test_tokens_parse(void **state)
{
    (void)state;
    struct bench_token *t = NULL;
    size_t n = 0;
    struct tw_err err;
    const char *text = "# twoway enrollment tokens\n"
                       "dev-1 0123abcd\n"
                       "\n"
                       "  dev-2\t\tffee99  \r\n"
                       "living room lamp  a.b_c-d@e\n"
                       "dev-4 last-without-newline";
    assert_int_equal(parse(text, &t, &n, &err), 0);
    assert_int_equal(n, 4);
    assert_string_equal(t[0].name, "dev-1");
    assert_string_equal(t[0].token, "0123abcd");
    assert_string_equal(t[1].name, "dev-2");
    assert_string_equal(t[1].token, "ffee99");
    assert_string_equal(t[2].name, "living room lamp"); /* a NAME may hold spaces */
    assert_string_equal(t[2].token, "a.b_c-d@e");
    assert_string_equal(t[3].token, "last-without-newline");
    bench_tokens_free(t, n);
    bench_tokens_free(NULL, 0);
}

static void expect_refused(const char *text, const char *needle)
{
    struct bench_token *t = (struct bench_token *)1;
    size_t n = 7;
    struct tw_err err;
    assert_int_equal(parse(text, &t, &n, &err), -1);
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_null(t);
    assert_int_equal(n, 0);
    if (strstr(err.msg, needle) == NULL)
        fail_msg("'%s' not in '%s'", needle, err.msg);
}

static void test_tokens_refused(void **state)
{
    (void)state;
    expect_refused("", "no tokens");
    expect_refused("# only a comment\n\n", "no tokens");
    expect_refused("dev-1 aa\nlonely\n", "tokens.txt line 2: expected NAME TOKEN");
    expect_refused("dev:1 aa\n", "line 1: the name holds ':'");
    expect_refused("dev-1 a:b\n", "line 1: the token holds ':'");
    expect_refused("dev-1 a\x01" "b\n", "the token holds '?'");
    char longtok[200];
    snprintf(longtok, sizeof(longtok), "dev %065d\n", 0);
    expect_refused(longtok, "token longer than 64");
    char longname[200];
    memset(longname, 'n', 65);
    snprintf(longname + 65, sizeof(longname) - 65, " tok\n");
    expect_refused(longname, "name longer than 64");
}

static void test_tokens_too_many(void **state)
{
    (void)state;
    size_t cap = (size_t)(BENCH_EST_MAX_ENROLLMENTS + 1) * 8;
    char *text = malloc(cap + 1);
    assert_non_null(text);
    size_t len = 0;
    for (int i = 0; i <= BENCH_EST_MAX_ENROLLMENTS; i++)
        len += (size_t)snprintf(text + len, cap + 1 - len, "a %d\n", i % 1000);
    struct bench_token *t = NULL;
    size_t n = 0;
    struct tw_err err;
    tw_err_clear(&err);
    assert_int_equal(bench_tokens_parse("big", text, len, &t, &n, &err), -1);
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "more than 100000 tokens"));
    free(text);
}

static void test_tokens_load_missing(void **state)
{
    (void)state;
    struct bench_token *t = NULL;
    size_t n = 0;
    struct tw_err err;
    tw_err_clear(&err);
    assert_int_equal(bench_tokens_load("/nonexistent/tokens.txt", &t, &n, &err), -1);
    assert_int_equal(err.code, TW_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/tokens.txt"));
}

/* A base64 certs-only PKCS#7 holding a self-signed certificate for key, 64 characters a line
 * as `ca serve` sends it. */
static char *p7_b64_for(EVP_PKEY *key)
{
    X509 *cert = X509_new();
    assert_non_null(cert);
    assert_int_equal(X509_set_version(cert, X509_VERSION_3), 1);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_UTF8,
                               (const unsigned char *)"t", -1, -1, 0);
    X509_set_issuer_name(cert, X509_get_subject_name(cert));
    assert_int_equal(X509_set_pubkey(cert, key), 1);
    assert_true(X509_sign(cert, key, EVP_sha256()) > 0);
    PKCS7 *p7 = PKCS7_new();
    assert_int_equal(PKCS7_set_type(p7, NID_pkcs7_signed), 1);
    assert_int_equal(PKCS7_content_new(p7, NID_pkcs7_data), 1);
    assert_int_equal(PKCS7_add_certificate(p7, cert), 1);
    unsigned char *der = NULL;
    int dlen = i2d_PKCS7(p7, &der);
    assert_true(dlen > 0);
    char *flat = malloc((size_t)dlen * 2 + 8);
    int blen = EVP_EncodeBlock((unsigned char *)flat, der, dlen);
    char *out = malloc((size_t)blen * 2 + 8);
    size_t k = 0;
    for (int i = 0; i < blen; i++) {
        out[k++] = flat[i];
        if (i % 64 == 63)
            out[k++] = '\n';
    }
    out[k] = '\0';
    free(flat);
    OPENSSL_free(der);
    PKCS7_free(p7);
    X509_free(cert);
    return out;
}

static char *http(int status, const char *body, bool with_length)
{
    size_t cap = strlen(body) + 256;
    char *r = malloc(cap);
    char len[64] = "";
    if (with_length)
        snprintf(len, sizeof(len), "Content-Length: %zu\r\n", strlen(body));
    snprintf(r, cap, "HTTP/1.1 %d X\r\nContent-Type: application/pkcs7-mime\r\n%s\r\n%s", status,
             len, body);
    return r;
}

/* The full check (the PKCS#7 decoded, the serial read) when with_serial, else the byte
 * search the throughput runs use. */
static int check_mode(const char *resp, size_t len, EVP_PKEY *key, char code[32],
                      char detail[200], bool with_serial)
{
    char serial[BENCH_EST_SERIAL_MAX];
    unsigned char *spki = NULL;
    int n = i2d_PUBKEY(key, &spki);
    assert_true(n > 0);
    code[0] = detail[0] = '\0';
    int rc = bench_est_answer_check(resp, len, spki, (size_t)n, with_serial ? serial : NULL,
                                    code, detail, 200);
    OPENSSL_free(spki);
    if (with_serial && rc == 0)
        assert_string_equal(serial, "1"); /* p7_b64_for's certificate */
    else if (with_serial)
        assert_string_equal(serial, "");
    return rc;
}

static int check(const char *resp, size_t len, EVP_PKEY *key, char code[32], char detail[200])
{
    return check_mode(resp, len, key, code, detail, true);
}

static int check_fast(const char *resp, size_t len, EVP_PKEY *key, char code[32],
                      char detail[200])
{
    return check_mode(resp, len, key, code, detail, false);
}

static void test_answer_check(void **state)
{
    (void)state;
    EVP_PKEY *key = EVP_EC_gen("P-256"), *other = EVP_EC_gen("P-256");
    assert_non_null(key);
    assert_non_null(other);
    char *b64 = p7_b64_for(key);
    char code[32], detail[200];
    char *ok = http(200, b64, true);
    assert_int_equal(check(ok, strlen(ok), key, code, detail), 0);
    size_t total = 0;
    assert_int_equal(bench_est_answer_length(ok, strlen(ok), &total), 1);
    assert_int_equal(total, strlen(ok));
    assert_int_equal(bench_est_answer_length(ok, 20, &total), 0); /* headers not complete */
    /* Another key's certificate. */
    assert_int_equal(check(ok, strlen(ok), other, code, detail), -1);
    assert_string_equal(code, "wrong-key");
    /* The same two answers through the byte search of the throughput runs. */
    assert_int_equal(check_fast(ok, strlen(ok), key, code, detail), 0);
    assert_int_equal(check_fast(ok, strlen(ok), other, code, detail), -1);
    assert_string_equal(code, "wrong-key");
    /* Cut short before Content-Length bytes. */
    assert_int_equal(check(ok, strlen(ok) - 10, key, code, detail), -1);
    assert_string_equal(code, "truncated");
    assert_int_equal(check(ok, 30, key, code, detail), -1);
    assert_string_equal(code, "truncated");
    /* Without Content-Length the answer ends at EOF: still checked. */
    char *eof = http(200, b64, false);
    assert_int_equal(bench_est_answer_length(eof, strlen(eof), &total), 0);
    assert_int_equal(check(eof, strlen(eof), key, code, detail), 0);
    /* A refusal: the tally name and the server's reason. */
    char *refused = http(401, "token already used\n", true);
    assert_int_equal(check(refused, strlen(refused), key, code, detail), -1);
    assert_string_equal(code, "http-401");
    assert_string_equal(detail, "HTTP 401: token already used");
    /* Not a PKCS#7, not HTTP. */
    char *junk = http(200, "bm90IGEgcGtjczc=", true);
    assert_int_equal(check(junk, strlen(junk), key, code, detail), -1);
    assert_string_equal(code, "bad-answer");
    assert_int_equal(check_fast(junk, strlen(junk), key, code, detail), -1);
    assert_string_equal(code, "wrong-key");
    assert_int_equal(check_fast(refused, strlen(refused), key, code, detail), -1);
    assert_string_equal(code, "http-401");
    assert_int_equal(check("SSH-2.0-x\r\n\r\n", 13, key, code, detail), -1);
    assert_string_equal(code, "bad-answer");
    assert_non_null(strstr(detail, "status line"));
    /* Headers that never end within the limit. */
    char *big = calloc(1, BENCH_EST_RESPONSE_MAX + 1);
    memset(big, 'h', BENCH_EST_RESPONSE_MAX);
    assert_int_equal(bench_est_answer_length(big, BENCH_EST_RESPONSE_MAX, &total), -1);
    free(big);
    free(ok);
    free(eof);
    free(refused);
    free(junk);
    free(b64);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other);
}

static void test_run_refusals(void **state)
{
    (void)state;
    struct bench_est_opts o;
    struct bench_est_result *res = calloc(1, sizeof(*res));
    struct tw_err err;
    bench_est_opts_init(&o);
    o.host = "127.0.0.1";
    o.port = "1";
    tw_err_clear(&err);
    assert_int_equal(bench_est_run(&o, res, &err), -1); /* no --tokens */
    assert_int_equal(err.code, TW_ERR_USAGE);
    assert_non_null(strstr(err.msg, "--tokens"));
    char path[] = "/tmp/tw-est-tokensXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "a-1 aa\na-2 bb\n", 14), 14);
    close(fd);
    o.tokens_file = path;
    o.enrollments = 3;
    assert_int_equal(bench_est_run(&o, res, &err), -1);
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "holds 2 tokens; --enrollments 3"));
    o.enrollments = 0;
    o.rate = -1;
    assert_int_equal(bench_est_run(&o, res, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
    o.rate = 0;
    o.clients = BENCH_MAX_CONNS + 1;
    assert_int_equal(bench_est_run(&o, res, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
    /* Nothing listens on port 1: every enrollment fails as "connect", counted, not an error. */
    o.clients = 0;
    assert_int_equal(bench_est_run(&o, res, &err), 0);
    assert_int_equal(res->r.ok, 0);
    assert_int_equal(res->r.failed, 2);
    assert_int_equal(res->r.nerrors, 1);
    assert_string_equal(res->r.errors[0].code, "connect");
    assert_non_null(strstr(res->r.first_error, "connect: "));
    unlink(path);
    free(res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens_parse),        cmocka_unit_test(test_tokens_refused),
        cmocka_unit_test(test_tokens_too_many),     cmocka_unit_test(test_tokens_load_missing),
        cmocka_unit_test(test_answer_check),        cmocka_unit_test(test_run_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
