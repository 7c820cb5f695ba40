/* Wire helpers: base64 as EST sends it (any line breaks), CSR bodies, HTTP Basic credentials.
 * Every input here comes from the network; each is bounded and checked byte by byte. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "est/internal.h"

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

static int is_space(unsigned char c)
{
    return c == '\r' || c == '\n' || c == ' ' || c == '\t';
}

int est_b64_decode(const void *in, size_t len, const char *what, unsigned char **out,
                   size_t *out_len, struct tw_err *err)
{
    const unsigned char *p = in;
    unsigned char *buf = malloc(len / 4 * 3 + 3);
    TW_ENSURE(buf != NULL, err, TW_ERR_INTERNAL, "out of memory");
    uint32_t acc = 0;
    size_t n = 0, quads = 0, pad = 0, o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = p[i];
        if (is_space(c))
            continue;
        int v = c == '=' ? 0 : b64_value(c);
        if (v < 0 || (pad > 0 && c != '=')) {
            free(buf);
            return tw_err_set(err, TW_ERR_PKI, "%s: not base64 (byte 0x%02x at offset %zu)", what,
                              c, i);
        }
        if (c == '=')
            pad++;
        acc = (acc << 6) | (uint32_t)v;
        if (++n % 4 == 0) {
            quads++;
            buf[o++] = (unsigned char)(acc >> 16);
            buf[o++] = (unsigned char)(acc >> 8);
            buf[o++] = (unsigned char)acc;
            acc = 0;
        }
    }
    /* Padding only at the very end, at most two characters, and "x===" is never valid. */
    if (n % 4 != 0 || n == 0 || pad > 2 || (pad > 0 && quads == 0)) {
        free(buf);
        return tw_err_set(err, TW_ERR_PKI, "%s: base64 is %s", what,
                          n == 0 ? "empty" : "truncated or badly padded");
    }
    *out = buf;
    *out_len = o - pad;
    return 0;
}

/* RFC 8951 §3 makes EST bodies base64 as in RFC 4648 §4, which has no line feeds (RFC 4648
 * §3.1); some clients refuse any whitespace in them, so none is sent. Input keeps accepting
 * any (est_b64_decode). */
char *est_b64_encode(const void *in, size_t len, size_t *out_len, struct tw_err *err)
{
    TW_ENSURE_PTR(len <= (size_t)INT_MAX / 4 * 3, err, TW_ERR_INTERNAL,
                  "%zu bytes are too many to encode", len);
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    TW_ENSURE_PTR(out != NULL, err, TW_ERR_INTERNAL, "out of memory");
    int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    out[n] = '\0';
    if (out_len != NULL)
        *out_len = (size_t)n;
    return out;
}

int est_csr_body_decode(const void *body, size_t len, const char *cte, unsigned char **der,
                        size_t *der_len, struct tw_err *err)
{
    TW_ENSURE(len > 0, err, TW_ERR_PKI, "empty request body (expected a base64 PKCS#10 CSR)");
    static const char pem[] = "-----BEGIN ";
    int raw = (cte != NULL && strcasecmp(cte, "binary") == 0) ||
              (len >= sizeof(pem) - 1 && memmem(body, len, pem, sizeof(pem) - 1) != NULL);
    if (raw) {
        TW_ENSURE(len <= PKI_CSR_MAX, err, TW_ERR_PKI, "CSR larger than %u bytes", PKI_CSR_MAX);
        unsigned char *copy = malloc(len);
        TW_ENSURE(copy != NULL, err, TW_ERR_INTERNAL, "out of memory");
        memcpy(copy, body, len);
        *der = copy;
        *der_len = len;
        return 0;
    }
    TW_ENSURE(cte == NULL || strcasecmp(cte, "base64") == 0, err, TW_ERR_PKI,
              "unsupported Content-Transfer-Encoding '%.32s' (use base64)", cte);
    TW_GUARD(est_b64_decode(body, len, "CSR body", der, der_len, err));
    if (*der_len > PKI_CSR_MAX) {
        free(*der);
        *der = NULL;
        return tw_err_set(err, TW_ERR_PKI, "CSR larger than %u bytes", PKI_CSR_MAX);
    }
    return 0;
}

int est_basic_auth_parse(const char *header, char *user, size_t user_cap, char *pass,
                         size_t pass_cap, struct tw_err *err)
{
    static const char scheme[] = "Basic ";
    TW_ENSURE(header != NULL, err, TW_ERR_VERIFY, "no credentials (HTTP Basic: NAME:TOKEN)");
    TW_ENSURE(strncasecmp(header, scheme, sizeof(scheme) - 1) == 0, err, TW_ERR_VERIFY,
              "credentials must be HTTP Basic (NAME:TOKEN)");
    const char *b64 = header + sizeof(scheme) - 1;
    while (*b64 == ' ')
        b64++;
    size_t blen = strlen(b64);
    TW_ENSURE(blen <= 1024, err, TW_ERR_VERIFY, "credentials too long");
    unsigned char *raw = NULL;
    size_t rlen = 0;
    if (est_b64_decode(b64, blen, "credentials", &raw, &rlen, err) != 0)
        return tw_err_set(err, TW_ERR_VERIFY, "credentials are not valid base64");
    unsigned char *colon = memchr(raw, ':', rlen);
    size_t ulen = colon != NULL ? (size_t)(colon - raw) : 0;
    size_t plen = colon != NULL ? rlen - ulen - 1 : 0;
    int ok = colon != NULL && ulen > 0 && ulen < user_cap && plen > 0 && plen < pass_cap &&
             memchr(raw, '\0', rlen) == NULL;
    if (ok) {
        memcpy(user, raw, ulen);
        user[ulen] = '\0';
        memcpy(pass, colon + 1, plen);
        pass[plen] = '\0';
    }
    OPENSSL_cleanse(raw, rlen);
    free(raw);
    TW_ENSURE(ok, err, TW_ERR_VERIFY, "credentials must be NAME:TOKEN");
    return 0;
}
