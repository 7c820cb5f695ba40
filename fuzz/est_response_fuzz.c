/* Fuzz what `twoway enroll` reads from a server it does not trust yet (the bootstrap fetch of
 * /cacerts happens before the server is verified): the HTTP response parser, then the body as
 * base64 and as a certs-only PKCS#7. Nothing may crash or leak; failures carry a message. */
#include <stdint.h>
#include <stdlib.h>

#include <openssl/x509.h>

#include "est/est.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tw_err err;
    struct est_response r;
    if (est_http_response_parse(data, size, "https://fuzz", &r, &err) != 0) {
        if (err.msg[0] == '\0')
            abort();
        return 0;
    }
    unsigned char *der = NULL;
    size_t len = 0;
    if (est_b64_decode(r.body, r.len, "cacerts", &der, &len, &err) == 0) {
        STACK_OF(X509) *certs = pki_p7_certs_parse(der, len, "cacerts", &err);
        sk_X509_pop_free(certs, X509_free);
        free(der);
    }
    STACK_OF(X509) *raw = pki_p7_certs_parse(r.body, r.len, "cacerts", &err);
    sk_X509_pop_free(raw, X509_free);
    est_response_clear(&r);
    return 0;
}
