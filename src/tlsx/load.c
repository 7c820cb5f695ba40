/* Loading certificates, bundles and private keys from PEM files, with clear errors. */
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "keystore/keystore.h"
#include "tlsx/internal.h"
#include "util/cleanup.h"
#include "util/fs.h"

/* Read a whole PEM file into a memory BIO (the file is read once; OpenSSL parses from memory). */
static BIO *file_bio(const char *path, char **data, struct tw_err *err)
{
    size_t len = 0;
    if (fs_read_file(path, FS_READ_LIMIT_DEFAULT, data, &len, err) != 0)
        return NULL;
    BIO *bio = BIO_new_mem_buf(*data, (int)len);
    if (bio == NULL)
        tw_err_ossl(err, TW_ERR_INTERNAL, "%s: out of memory", path);
    return bio;
}

static int read_certs(const char *path, STACK_OF(X509) **out, struct tw_err *err)
{
    TW_AUTO(charp) *data = NULL;
    TW_AUTO(BIO) *bio = file_bio(path, &data, err);
    if (bio == NULL)
        return -1;
    TW_AUTO(X509_STACK) *certs = sk_X509_new_null();
    TW_ENSURE_OSSL(certs != NULL, err, TW_ERR_INTERNAL, "%s: out of memory", path);
    ERR_clear_error(); /* the end of the loop is judged by the queue */
    for (;;) {
        X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (cert == NULL)
            break;
        if (sk_X509_num(certs) >= TLSX_MAX_CERTS || !sk_X509_push(certs, cert)) {
            X509_free(cert);
            return tw_err_set(err, TW_ERR_CONFIG, "%s: more than %d certificates", path,
                              TLSX_MAX_CERTS);
        }
    }
    /* The loop ends on "no start line" at EOF; anything else is a broken PEM block. */
    unsigned long e = ERR_peek_last_error();
    if (e != 0 && ERR_GET_REASON(e) != PEM_R_NO_START_LINE)
        return tw_err_ossl(err, TW_ERR_CONFIG, "%s: malformed certificate", path);
    ERR_clear_error();
    TW_ENSURE(sk_X509_num(certs) > 0, err, TW_ERR_CONFIG,
              "%s: no PEM certificate found (expected -----BEGIN CERTIFICATE-----)", path);
    *out = TW_TAKE(certs);
    return 0;
}

int tlsx_certs_load(const char *path, STACK_OF(X509) **out, struct tw_err *err)
{
    return read_certs(path, out, err);
}

int tlsx_cert_chain_load(const char *path, X509 **leaf, STACK_OF(X509) **chain,
                         struct tw_err *err)
{
    TW_AUTO(X509_STACK) *certs = NULL;
    TW_GUARD(read_certs(path, &certs, err));
    *leaf = sk_X509_shift(certs);
    if (chain != NULL)
        *chain = TW_TAKE(certs);
    return 0;
}

/* A key file, or a key in a token or TPM: keystore/ knows which. */
int tlsx_key_load(const char *path, EVP_PKEY **out, struct tw_err *err)
{
    *out = keystore_load(path, err);
    return *out != NULL ? 0 : -1;
}
