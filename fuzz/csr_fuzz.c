/* Fuzzes the CSR intake path: pki_csr_parse (PEM or DER, signature check, key check, SANs)
 * and pki_csr_take_sans for both profiles, exactly as `ca issue --csr` and EST feed them. */
#include <stddef.h>
#include <stdint.h>

#include <openssl/err.h>

#include "pki/pki.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tw_err err;
    struct pki_csr *csr = pki_csr_parse(data, size, "fuzz.csr", &err);
    if (csr != NULL) {
        struct pki_sans client = {0}, server = {0};
        if (pki_csr_take_sans(csr, PKI_PROFILE_CLIENT, &client, &err) != 0)
            tw_err_clear(&err);
        if (pki_csr_take_sans(csr, PKI_PROFILE_SERVER, &server, &err) != 0)
            tw_err_clear(&err);
        char text[STORE_SANS_MAX];
        if (pki_sans_format(&client, text, sizeof(text), &err) != 0)
            tw_err_clear(&err);
        pki_csr_free(csr);
    }
    ERR_clear_error();
    return 0;
}
