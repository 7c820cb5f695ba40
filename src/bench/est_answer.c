/* twoway bench --est: is an answer to simpleenroll a certificate for the CSR's key? The HTTP
 * framing is read here (status line, Content-Length); the base64, PKCS#7 and certificate are
 * OpenSSL's to decode (RFC 7030 §4.2.3: a certs-only CMC Simple PKI Response). */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>

#include "bench/bench.h"

#define DETAIL_BODY_MAX 160 /* characters of a refusal's text quoted in the detail */

static const char *headers_end(const char *resp, size_t len)
{
    const char *e = memmem(resp, len, "\r\n\r\n", 4);
    return e != NULL ? e + 4 : NULL;
}

/* Content-Length's value in the headers [h, end), or -1 when absent or malformed. */
static long long content_length(const char *h, const char *end)
{
    static const char name[] = "\r\ncontent-length:";
    for (const char *p = h; p + sizeof(name) - 1 <= end; p++) {
        if (strncasecmp(p, name, sizeof(name) - 1) != 0)
            continue;
        p += sizeof(name) - 1;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        long long v = 0;
        const char *d = p;
        while (p < end && isdigit((unsigned char)*p) && v <= BENCH_EST_RESPONSE_MAX)
            v = v * 10 + (*p++ - '0');
        return p > d && p < end && *p == '\r' ? v : -1;
    }
    return -1;
}

int bench_est_answer_length(const char *resp, size_t len, size_t *total)
{
    const char *body = headers_end(resp, len);
    if (body == NULL)
        return len >= BENCH_EST_RESPONSE_MAX ? -1 : 0;
    long long cl = content_length(resp, body - 2);
    if (cl < 0 || (size_t)(body - resp) + (size_t)cl > BENCH_EST_RESPONSE_MAX)
        return cl < 0 ? 0 : -1; /* without a length the answer ends at EOF */
    *total = (size_t)(body - resp) + (size_t)cl;
    return 1;
}

static int fail(char code[32], const char *c, char *detail, size_t cap, const char *d)
{
    snprintf(code, 32, "%s", c);
    snprintf(detail, cap, "%s", d);
    ERR_clear_error();
    return -1;
}

/* The server's reason in a refusal's body, printable and short. */
static void quote_body(const char *b, size_t n, int status, char *detail, size_t cap)
{
    char text[DETAIL_BODY_MAX + 1];
    size_t k = 0;
    for (size_t i = 0; i < n && k < DETAIL_BODY_MAX; i++)
        text[k++] = isprint((unsigned char)b[i]) ? b[i] : ' ';
    while (k > 0 && text[k - 1] == ' ')
        k--;
    text[k] = '\0';
    snprintf(detail, cap, "HTTP %d%s%s", status, k ? ": " : "", text);
}

/* The body's base64, decoded (EVP_Decode* skips the line breaks RFC 7030 §4.2.3 allows
 * anywhere); NULL when it is not base64. */
static unsigned char *unbase64(const char *b, size_t n, int *len)
{
    unsigned char *der = malloc(n / 4 * 3 + 3);
    EVP_ENCODE_CTX *ectx = EVP_ENCODE_CTX_new();
    int dlen = 0, tail = 0;
    bool decoded = false;
    if (der != NULL && ectx != NULL) {
        EVP_DecodeInit(ectx);
        decoded = EVP_DecodeUpdate(ectx, der, &dlen, (const unsigned char *)b, (int)n) >= 0 &&
                  EVP_DecodeFinal(ectx, der + dlen, &tail) == 1;
    }
    EVP_ENCODE_CTX_free(ectx);
    if (!decoded) {
        free(der);
        return NULL;
    }
    *len = dlen + tail;
    return der;
}

/* Whether cert's SubjectPublicKeyInfo is spki, byte for byte. */
static bool cert_has_spki(X509 *cert, const unsigned char *spki, size_t spki_len)
{
    unsigned char *der = NULL;
    int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
    bool same = n > 0 && (size_t)n == spki_len && memcmp(der, spki, spki_len) == 0;
    OPENSSL_free(der);
    return same;
}

/* The first certificate of the certs-only PKCS#7 der holds spki: its serial. */
static int cert_matches(const unsigned char *der, int dlen, const unsigned char *spki,
                        size_t spki_len, char serial[BENCH_EST_SERIAL_MAX], char code[32],
                        char *detail, size_t cap)
{
    const unsigned char *p = der;
    PKCS7 *p7 = d2i_PKCS7(NULL, &p, dlen);
    if (p7 == NULL)
        return fail(code, "bad-answer", detail, cap, "the body is not base64 of a PKCS#7");
    int rc = 0;
    STACK_OF(X509) *certs = PKCS7_type_is_signed(p7) && p7->d.sign != NULL ? p7->d.sign->cert
                                                                            : NULL;
    X509 *cert = certs != NULL && sk_X509_num(certs) > 0 ? sk_X509_value(certs, 0) : NULL;
    if (cert == NULL)
        rc = fail(code, "bad-answer", detail, cap, "the PKCS#7 holds no certificate");
    else if (!cert_has_spki(cert, spki, spki_len))
        rc = fail(code, "wrong-key", detail, cap, "the certificate is not for the CSR's key");
    BIGNUM *bn = rc == 0 ? ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL) : NULL;
    char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
    if (rc == 0 && (hex == NULL || strlen(hex) >= BENCH_EST_SERIAL_MAX))
        rc = fail(code, "bad-answer", detail, cap, "the certificate's serial is unreadable");
    if (rc == 0) {
        const char *h = hex;
        while (h[0] == '0' && h[1] != '\0')
            h++; /* the form `ca list` shows */
        snprintf(serial, BENCH_EST_SERIAL_MAX, "%s", h);
    }
    OPENSSL_free(hex);
    BN_free(bn);
    PKCS7_free(p7);
    return rc;
}

static int body_matches(const char *b, size_t n, const unsigned char *spki, size_t spki_len,
                        char serial[BENCH_EST_SERIAL_MAX], char code[32], char *detail,
                        size_t cap)
{
    int dlen = 0;
    unsigned char *der = unbase64(b, n, &dlen);
    if (der == NULL)
        return fail(code, "bad-answer", detail, cap, "the body is not base64 of a PKCS#7");
    int rc = 0;
    if (serial != NULL)
        rc = cert_matches(der, dlen, spki, spki_len, serial, code, detail, cap);
    else if (memmem(der, (size_t)dlen, spki, spki_len) == NULL)
        rc = fail(code, "wrong-key", detail, cap, "the answer does not carry the CSR's key");
    free(der);
    return rc;
}

int bench_est_answer_check(const char *resp, size_t len, const unsigned char *spki,
                           size_t spki_len, char serial[BENCH_EST_SERIAL_MAX], char code[32],
                           char *detail, size_t detail_cap)
{
    if (serial != NULL)
        serial[0] = '\0';
    int major = 0, minor = 0, status = 0, used = 0;
    if (len < 12 || memcmp(resp, "HTTP/", 5) != 0 ||
        sscanf(resp, "HTTP/%1d.%1d %3d%n", &major, &minor, &status, &used) != 3 || used != 12)
        return fail(code, "bad-answer", detail, detail_cap, "no HTTP status line");
    const char *body = headers_end(resp, len);
    if (body == NULL)
        return fail(code, "truncated", detail, detail_cap,
                    "the connection ended inside the headers");
    size_t blen = len - (size_t)(body - resp);
    long long cl = content_length(resp, body - 2);
    if (cl >= 0 && (size_t)cl > blen)
        return fail(code, "truncated", detail, detail_cap,
                    "the connection ended before Content-Length bytes");
    if (cl >= 0)
        blen = (size_t)cl;
    if (status != 200) {
        snprintf(code, 32, "http-%d", status);
        quote_body(body, blen, status, detail, detail_cap);
        return -1;
    }
    return body_matches(body, blen, spki, spki_len, serial, code, detail, detail_cap);
}
