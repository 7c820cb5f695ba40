/* Certificate revocation lists: RFC 5280 §5, version 2, signed through the signer. */
#include <string.h>
#include <strings.h>

#include <openssl/err.h>

#include "pki/internal.h"
#include "util/cleanup.h"

/* RFC 5280 §5.3.1 CRLReason; 7 is not used. */
static const char *const reasons[PKI_REASON_COUNT] = {
    "unspecified",   "keyCompromise",        "cACompromise",    "affiliationChanged",
    "superseded",    "cessationOfOperation", "certificateHold", NULL,
    "removeFromCRL", "privilegeWithdrawn",   "aACompromise",
};

int pki_reason_parse(const char *name, int *code, struct tw_err *err)
{
    for (int i = 0; i < PKI_REASON_COUNT; i++) {
        if (reasons[i] != NULL && strcasecmp(name, reasons[i]) == 0) {
            *code = i;
            return 0;
        }
    }
    return tw_err_set(err, TW_ERR_USAGE,
                      "unknown reason '%s' (use unspecified, keyCompromise, cACompromise, "
                      "affiliationChanged, superseded, cessationOfOperation, certificateHold, "
                      "removeFromCRL, privilegeWithdrawn or aACompromise)",
                      name);
}

const char *pki_reason_name(int code)
{
    if (code < 0 || code >= PKI_REASON_COUNT || reasons[code] == NULL)
        return "unknown";
    return reasons[code];
}

static int add_entry(X509_CRL *crl, const struct pki_crl_entry *e, struct tw_err *err)
{
    TW_AUTO(BIGNUM) *bn = NULL;
    TW_ENSURE(BN_hex2bn(&bn, e->serial_hex) > 0 && bn != NULL, err, TW_ERR_PKI,
              "revoked serial '%s' is not hex", e->serial_hex);
    TW_AUTO(ASN1_INTEGER) *serial = BN_to_ASN1_INTEGER(bn, NULL);
    TW_AUTO(ASN1_TIME) *when = ASN1_TIME_new();
    TW_AUTO(X509_REVOKED) *rev = X509_REVOKED_new();
    TW_ENSURE_OSSL(serial != NULL && when != NULL && rev != NULL, err, TW_ERR_INTERNAL,
                   "out of memory");
    TW_GUARD(time_set(when, e->revoked_at, err));
    TW_GUARD_OSSL(X509_REVOKED_set_serialNumber(rev, serial), err, TW_ERR_PKI, "bad serial");
    TW_GUARD_OSSL(X509_REVOKED_set_revocationDate(rev, when), err, TW_ERR_PKI, "bad date");
    /* RFC 5280 §5.3.1: omit the reason code rather than say "unspecified". */
    if (e->reason > 0) {
        TW_ENSURE(e->reason < PKI_REASON_COUNT && reasons[e->reason] != NULL, err, TW_ERR_PKI,
                  "serial %s has unknown reason %d", e->serial_hex, e->reason);
        ASN1_ENUMERATED *code = ASN1_ENUMERATED_new();
        int ok = code != NULL && ASN1_ENUMERATED_set(code, e->reason) == 1 &&
                 X509_REVOKED_add1_ext_i2d(rev, NID_crl_reason, code, 0, 0) == 1;
        ASN1_ENUMERATED_free(code);
        TW_ENSURE_OSSL(ok, err, TW_ERR_PKI, "cannot add the reason code");
    }
    TW_GUARD_OSSL(X509_CRL_add0_revoked(crl, rev), err, TW_ERR_PKI, "cannot add a CRL entry");
    rev = NULL; /* the CRL owns it now */
    return 0;
}

static int add_crl_extensions(X509_CRL *crl, X509 *issuer, int64_t number, struct tw_err *err)
{
    TW_AUTO(ASN1_INTEGER) *num = ASN1_INTEGER_new();
    TW_ENSURE_OSSL(num != NULL && ASN1_INTEGER_set_int64(num, number) == 1, err, TW_ERR_INTERNAL,
                   "cannot encode CRL number");
    TW_GUARD_OSSL(X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0), err, TW_ERR_PKI,
                  "cannot add the CRL number");
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, NULL, NULL, crl, 0);
    TW_AUTO(X509_EXTENSION) *aki =
        X509V3_EXT_nconf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid:always");
    TW_ENSURE_OSSL(aki != NULL, err, TW_ERR_PKI, "cannot make the CRL's authority key id");
    TW_GUARD_OSSL(X509_CRL_add_ext(crl, aki, -1), err, TW_ERR_PKI, "cannot add the AKI");
    return 0;
}

X509_CRL *pki_crl_make(struct pki_signer *signer, const struct pki_crl_entry *entries, size_t n,
                       int64_t number, time_t now, int64_t next_update, struct tw_err *err)
{
    X509 *issuer = pki_signer_cert(signer);
    TW_ENSURE_PTR(issuer != NULL, err, TW_ERR_INTERNAL, "CRL signer without a certificate");
    TW_ENSURE_PTR(number > 0 && next_update > 0, err, TW_ERR_PKI,
                  "CRL number and next update must be positive");
    TW_AUTO(X509_CRL) *crl = X509_CRL_new();
    TW_AUTO(ASN1_TIME) *t = ASN1_TIME_new();
    TW_ENSURE_PTR(crl != NULL && t != NULL, err, TW_ERR_INTERNAL, "out of memory");
    TW_ENSURE_PTR(X509_CRL_set_version(crl, X509_CRL_VERSION_2) == 1 &&
                      X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer)) == 1,
                  err, TW_ERR_PKI, "cannot start the CRL");
    TW_GUARD_PTR(time_set(t, (int64_t)now, err));
    TW_ENSURE_PTR(X509_CRL_set1_lastUpdate(crl, t) == 1, err, TW_ERR_PKI, "bad thisUpdate");
    TW_GUARD_PTR(time_set(t, (int64_t)now + next_update, err));
    TW_ENSURE_PTR(X509_CRL_set1_nextUpdate(crl, t) == 1, err, TW_ERR_PKI, "bad nextUpdate");
    for (size_t i = 0; i < n; i++)
        TW_GUARD_PTR(add_entry(crl, &entries[i], err));
    TW_ENSURE_PTR(X509_CRL_sort(crl) == 1, err, TW_ERR_PKI, "cannot sort the CRL");
    TW_GUARD_PTR(add_crl_extensions(crl, issuer, number, err));
    TW_GUARD_PTR(pki_signer_sign_crl(signer, crl, err));
    return TW_TAKE(crl);
}
