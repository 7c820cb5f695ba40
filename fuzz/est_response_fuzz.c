/* Fuzz what `twoway enroll` reads from a server it does not trust yet (the bootstrap fetch of
 * /cacerts happens before the server is verified). libcurl parses the HTTP; twoway parses the
 * body: base64 with any whitespace, or raw DER, as a certs-only PKCS#7. The first byte picks
 * the Content-Transfer-Encoding. Nothing may crash or leak; failures carry a message. */
#include <stdint.h>
#include <stdlib.h>

#include <openssl/x509.h>

#include "est/est.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *cte = (data[0] & 1) != 0 ? "base64" : "";
    struct tw_err err;
    tw_err_clear(&err);
    STACK_OF(X509) *certs = est_certs_body_parse(data + 1, size - 1, cte, "cacerts", &err);
    if (certs == NULL && err.msg[0] == '\0')
        abort();
    sk_X509_pop_free(certs, X509_free);
    return 0;
}
