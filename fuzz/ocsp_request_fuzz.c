/* Fuzz the OCSP responder core: arbitrary bytes as a DER OCSPRequest, parsed with limits and
 * answered by a real CA (made once in a temporary directory) from its inventory. Every input
 * must get an encodable OCSPResponse (malformedRequest, unauthorized or successful) and
 * nothing may crash or leak. */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/ocsp.h>

#include "pki/pki.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static struct pki_ca *ca;
static struct pki_signer *signer;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void cleanup(void)
{
    pki_signer_free(signer);
    pki_ca_free(ca);
    if (dir[0] != '\0')
        nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int setup(void)
{
    if (ca != NULL)
        return 0;
    snprintf(dir, sizeof(dir), "/tmp/tw-ocsp-fuzz-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    atexit(cleanup);
    struct tw_err err;
    struct pki_ca_options opt = {.dir = dir, .key_type = PKI_KEY_EC_P256};
    struct pki_ca_created created;
    if (pki_ca_init(&opt, &created, &err) != 0 || pki_ca_open(dir, &ca, &err) != 0 ||
        (signer = pki_ca_ocsp_signer(ca, NULL, &err)) == NULL) {
        fprintf(stderr, "ocsp fuzz setup: %s\n", err.msg);
        abort();
    }
    return 0;
}

/* A well-formed request about this CA's intermediate for a serial made of the input's first
 * bytes, so the inventory lookup and the signing path run too. */
static void known_issuer(const uint8_t *data, size_t size)
{
    unsigned char serial[20];
    size_t n = size < sizeof(serial) ? size : sizeof(serial);
    memcpy(serial, data, n);
    ASN1_INTEGER *sn = ASN1_INTEGER_new();
    BIGNUM *bn = BN_bin2bn(serial, (int)n, NULL);
    X509 *issuer = pki_ca_intermediate_cert(ca);
    OCSP_REQUEST *req = OCSP_REQUEST_new();
    OCSP_CERTID *id = NULL;
    if (sn != NULL && bn != NULL && BN_to_ASN1_INTEGER(bn, sn) != NULL && req != NULL)
        id = OCSP_cert_id_new(EVP_sha1(), X509_get_subject_name(issuer),
                              X509_get0_pubkey_bitstr(issuer), sn);
    unsigned char *der = NULL;
    int len = 0;
    if (id != NULL && OCSP_request_add0_id(req, id) != NULL) {
        id = NULL;
        if (size % 2 == 1)
            OCSP_request_add1_nonce(req, NULL, -1);
        len = i2d_OCSP_REQUEST(req, &der);
    }
    if (len > 0) {
        unsigned char *resp = NULL;
        size_t rlen = 0;
        int status = -1;
        struct tw_err err;
        if (pki_ocsp_respond(ca, signer, der, (size_t)len, 1800000000, 3600, &resp, &rlen, &status,
                             &err) != 0 ||
            status != OCSP_RESPONSE_STATUS_SUCCESSFUL)
            abort();
        OPENSSL_free(resp);
    }
    OPENSSL_free(der);
    OCSP_CERTID_free(id);
    OCSP_REQUEST_free(req);
    BN_free(bn);
    ASN1_INTEGER_free(sn);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (setup() != 0)
        return 0;
    struct tw_err err;
    struct pki_ocsp_query q;
    if (pki_ocsp_request_parse(data, size, &q, &err) == 0 && q.count == 0)
        abort();
    unsigned char *der = NULL;
    size_t len = 0;
    int status = -1;
    if (pki_ocsp_respond(ca, signer, data, size, 1800000000, 3600, &der, &len, &status, &err) !=
            0 ||
        der == NULL || len == 0)
        abort();
    OPENSSL_free(der);
    known_issuer(data, size);
    return 0;
}
