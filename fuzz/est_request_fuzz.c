/* Fuzz the EST request path of `twoway ca serve`: the first byte picks the
 * Content-Transfer-Encoding (none, base64, binary, something else), the rest is the body:
 * base64 with arbitrary line breaks -> DER -> PKCS#10 parse and signature check -> subject.
 * The same bytes are also tried as an Authorization header and as a server URL. Nothing may
 * crash or leak, and every failure must come with a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "est/est.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must_have_message(const struct tw_err *err)
{
    if (err->msg[0] == '\0')
        abort();
}

static void body_path(const uint8_t *data, size_t size)
{
    static const char *const ctes[] = {NULL, "base64", "binary", "quoted-printable"};
    if (size == 0)
        return;
    const char *cte = ctes[data[0] % 4];
    struct tw_err err;
    unsigned char *der = NULL;
    size_t len = 0;
    if (est_csr_body_decode(data + 1, size - 1, cte, &der, &len, &err) != 0) {
        must_have_message(&err);
        return;
    }
    struct pki_csr *csr = pki_csr_parse(der, len, "CSR", &err);
    if (csr == NULL)
        must_have_message(&err);
    X509_NAME *subject = pki_csr_subject(der, len, "CSR", &err);
    X509_NAME_free(subject);
    pki_csr_free(csr);
    free(der);
}

static void text_paths(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        return;
    memcpy(text, data, size);
    text[size] = '\0';
    struct tw_err err;
    char user[65], pass[65];
    if (est_basic_auth_parse(text, user, sizeof(user), pass, sizeof(pass), &err) != 0)
        must_have_message(&err);
    struct est_url url;
    if (est_url_parse(text, &url, &err) != 0)
        must_have_message(&err);
    unsigned char *raw = NULL;
    size_t len = 0;
    if (est_b64_decode(text, size, "fuzz", &raw, &len, &err) == 0) {
        size_t elen = 0;
        char *again = est_b64_encode(raw, len, &elen, &err);
        free(again);
        free(raw);
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    body_path(data, size);
    text_paths(data, size);
    return 0;
}
