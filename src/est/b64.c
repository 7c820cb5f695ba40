/* Wire helpers: base64 as EST sends it (any line breaks), CSR bodies, HTTP Basic credentials.
 * Every input here comes from the network; each is bounded and checked byte by byte. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "est/internal.h"

/* OpenSSL's decoder (EVP_DecodeUpdate) skips CR, LF, space and tab anywhere, refuses other
 * bytes and data after padding, and checks whole quanta in EVP_DecodeFinal. One quirk is
 * refused first: it takes '-' as the end of the data ("-----END" of PEM) and ignores
 * whatever follows, which would let trailing junk through. */
int est_b64_decode(const void *in, size_t len, const char *what, unsigned char **out,
                   size_t *out_len, struct tw_err *err)
{
    *out = NULL;
    const unsigned char *dash = memchr(in, '-', len);
    TW_ENSURE(dash == NULL, err, TW_ERR_PKI, "%s: not base64 (byte 0x2d at offset %zu)", what,
              (size_t)(dash - (const unsigned char *)in));
    TW_ENSURE(len <= INT_MAX, err, TW_ERR_PKI, "%s: base64 too long", what);
    EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
    unsigned char *buf = malloc(len / 4 * 3 + 3);
    int n = 0, last = 0, nomem = ctx == NULL || buf == NULL, ok = !nomem;
    if (ok) {
        EVP_DecodeInit(ctx);
        ok = EVP_DecodeUpdate(ctx, buf, &n, in, (int)len) >= 0 &&
             EVP_DecodeFinal(ctx, buf + n, &last) == 1;
    }
    EVP_ENCODE_CTX_free(ctx);
    if (!ok || n + last == 0) {
        free(buf);
        TW_ENSURE(!nomem, err, TW_ERR_INTERNAL, "out of memory");
        return tw_err_set(err, TW_ERR_PKI, "%s: %s", what,
                          ok ? "base64 is empty" : "not base64 (bad character, padding or length)");
    }
    *out = buf;
    *out_len = (size_t)(n + last);
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
