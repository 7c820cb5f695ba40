/* Reading facts out of certificates: serial, fingerprint, names, times, PEM, inventory rows. */
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "pki/internal.h"
#include "util/cleanup.h"
#include "util/fs.h"

#define CERT_FILE_MAX (256u * 1024)

int pki_cert_serial_hex(const X509 *cert, char *out, size_t cap, struct tw_err *err)
{
    TW_AUTO(BIGNUM) *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    TW_ENSURE_OSSL(bn != NULL, err, TW_ERR_PKI, "certificate serial unreadable");
    char *hex = BN_bn2hex(bn);
    TW_ENSURE_OSSL(hex != NULL, err, TW_ERR_INTERNAL, "out of memory");
    /* BN_bn2hex prints whole bytes ("05..."); the inventory drops leading zeros. */
    const char *digits = hex;
    while (digits[0] == '0' && digits[1] != '\0')
        digits++;
    int n = snprintf(out, cap, "%s", digits);
    OPENSSL_free(hex);
    TW_ENSURE(n >= 0 && (size_t)n < cap, err, TW_ERR_PKI, "certificate serial too long");
    return 0;
}

int pki_cert_fingerprint(const X509 *cert, char hex[65], char *colon, struct tw_err *err)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    TW_GUARD_OSSL(X509_digest(cert, EVP_sha256(), md, &len), err, TW_ERR_PKI,
                  "cannot hash the certificate");
    static const char lower[] = "0123456789abcdef", upper[] = "0123456789ABCDEF";
    for (unsigned int i = 0; i < len; i++) {
        hex[2 * i] = lower[md[i] >> 4];
        hex[2 * i + 1] = lower[md[i] & 15];
        if (colon != NULL) {
            colon[3 * i] = upper[md[i] >> 4];
            colon[3 * i + 1] = upper[md[i] & 15];
            colon[3 * i + 2] = i + 1 < len ? ':' : '\0';
        }
    }
    hex[2 * len] = '\0';
    return 0;
}

char *pki_cert_to_pem(const X509 *cert, size_t *len, struct tw_err *err)
{
    TW_AUTO(BIO) *bio = BIO_new(BIO_s_mem());
    TW_ENSURE_PTR(bio != NULL, err, TW_ERR_INTERNAL, "out of memory");
    if (PEM_write_bio_X509(bio, cert) != 1) {
        tw_err_ossl(err, TW_ERR_PKI, "cannot encode the certificate");
        return NULL;
    }
    char *mem;
    long n = BIO_get_mem_data(bio, &mem);
    char *out = malloc((size_t)n + 1);
    TW_ENSURE_PTR(out != NULL, err, TW_ERR_INTERNAL, "out of memory");
    memcpy(out, mem, (size_t)n);
    out[n] = '\0';
    if (len != NULL)
        *len = (size_t)n;
    return out;
}

X509 *pki_cert_from_pem(const char *pem, size_t len, const char *label, struct tw_err *err)
{
    TW_ENSURE_PTR(len <= CERT_FILE_MAX, err, TW_ERR_PKI, "%s: too large for a certificate", label);
    TW_AUTO(BIO) *bio = BIO_new_mem_buf(pem, (int)len);
    TW_ENSURE_PTR(bio != NULL, err, TW_ERR_INTERNAL, "out of memory");
    X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if (cert == NULL)
        tw_err_ossl(err, TW_ERR_PKI, "%s: not a PEM certificate", label);
    return cert;
}

X509 *pki_cert_load(const char *path, struct tw_err *err)
{
    char *data = NULL;
    size_t len = 0;
    TW_GUARD_PTR(fs_read_file(path, CERT_FILE_MAX, &data, &len, err));
    X509 *cert = pki_cert_from_pem(data, len, path, err);
    free(data);
    return cert;
}

int pki_time_to_unix(const ASN1_TIME *t, int64_t *out, struct tw_err *err)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    TW_GUARD_OSSL(ASN1_TIME_to_tm(t, &tm), err, TW_ERR_PKI, "unreadable certificate time");
    *out = (int64_t)timegm(&tm);
    return 0;
}

int pki_name_to_text(const X509_NAME *name, char *out, size_t cap, struct tw_err *err)
{
    TW_AUTO(BIO) *bio = BIO_new(BIO_s_mem());
    TW_ENSURE(bio != NULL, err, TW_ERR_INTERNAL, "out of memory");
    TW_ENSURE_OSSL(X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0, err, TW_ERR_PKI,
                   "cannot print a name");
    char *mem;
    long n = BIO_get_mem_data(bio, &mem);
    TW_ENSURE(n >= 0 && (size_t)n < cap, err, TW_ERR_PKI, "distinguished name too long");
    memcpy(out, mem, (size_t)n);
    out[n] = '\0';
    return 0;
}

int pki_cert_to_row(const X509 *cert, const char *name, enum pki_profile p, int64_t issued_at,
                    struct store_cert *row, struct tw_err *err)
{
    memset(row, 0, sizeof(*row));
    TW_ENSURE(strlen(name) < sizeof(row->name), err, TW_ERR_PKI, "name too long");
    snprintf(row->name, sizeof(row->name), "%s", name);
    snprintf(row->profile, sizeof(row->profile), "%s", pki_profile_name(p));
    TW_GUARD(pki_cert_serial_hex(cert, row->serial, sizeof(row->serial), err));
    TW_GUARD(pki_cert_fingerprint(cert, row->sha256, NULL, err));
    TW_GUARD(
        pki_name_to_text(X509_get_subject_name(cert), row->subject, sizeof(row->subject), err));
    TW_GUARD(pki_name_to_text(X509_get_issuer_name(cert), row->issuer, sizeof(row->issuer), err));
    struct pki_sans sans;
    TW_GUARD(sans_from_cert(cert, &sans, err));
    TW_GUARD(pki_sans_format(&sans, row->sans, sizeof(row->sans), err));
    TW_GUARD(pki_time_to_unix(X509_get0_notBefore(cert), &row->not_before, err));
    TW_GUARD(pki_time_to_unix(X509_get0_notAfter(cert), &row->not_after, err));
    row->issued_at = issued_at;
    row->status = STORE_VALID;
    row->revoke_reason = -1;
    row->pem = pki_cert_to_pem(cert, NULL, err);
    return row->pem != NULL ? 0 : -1;
}
