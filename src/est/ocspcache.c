/* OCSP while the inventory is unreachable (issue 7: PostgreSQL down). Every successful answer
 * leaves each certificate's status (good or revoked, with the answer's thisUpdate and
 * nextUpdate) in a fixed table; when the inventory fails, a request is answered from that
 * table while the remembered answer is current, else from the CRL being served (a serial on
 * it is revoked, as of the CRL's thisUpdate), and freshly signed with the request's nonce.
 * A certificate neither remembered nor on the CRL cannot be vouched for: tryLater
 * (RFC 6960 §2.3). The server is single-threaded, so one table per process. */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ocsp.h>

#include "est/internal.h"
#include "util/cleanup.h"

#define OCSP_SEEN_SLOTS 4096

struct seen {
    char serial[STORE_SERIAL_MAX]; /* "" when the slot is free */
    int status;                    /* V_OCSP_CERTSTATUS_GOOD / _REVOKED */
    int reason;
    int64_t revoked_at, this_update, next_update;
};

static struct seen seen_table[OCSP_SEEN_SLOTS];

static struct seen *slot_of(const char *serial)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = serial; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return &seen_table[h % OCSP_SEEN_SLOTS];
}

static int cid_serial(OCSP_CERTID *cid, char out[STORE_SERIAL_MAX])
{
    ASN1_INTEGER *serial = NULL;
    if (OCSP_id_get0_info(NULL, NULL, NULL, &serial, cid) != 1 || serial == NULL)
        return -1;
    TW_AUTO(BIGNUM) *bn = ASN1_INTEGER_to_BN(serial, NULL);
    char *hex = bn != NULL && !BN_is_negative(bn) ? BN_bn2hex(bn) : NULL;
    if (hex == NULL)
        return -1;
    const char *digits = hex;
    while (digits[0] == '0' && digits[1] != '\0')
        digits++;
    int ok = strlen(digits) < STORE_SERIAL_MAX;
    if (ok)
        snprintf(out, STORE_SERIAL_MAX, "%s", digits);
    OPENSSL_free(hex);
    return ok ? 0 : -1;
}

static int64_t unix_of(const ASN1_GENERALIZEDTIME *t)
{
    int64_t v = 0;
    if (t == NULL || pki_time_to_unix(t, &v, NULL) != 0)
        return 0;
    return v;
}

void est_ocsp_remember(const unsigned char *der, size_t len)
{
    const unsigned char *p = der;
    TW_AUTO(OCSP_RESPONSE) *resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
    TW_AUTO(OCSP_BASICRESP) *bs = resp != NULL ? OCSP_response_get1_basic(resp) : NULL;
    for (int i = 0; bs != NULL && i < OCSP_resp_count(bs); i++) {
        OCSP_SINGLERESP *one = OCSP_resp_get0(bs, i);
        int reason = -1;
        ASN1_GENERALIZEDTIME *rev = NULL, *thisupd = NULL, *nextupd = NULL;
        int status = OCSP_single_get0_status(one, &reason, &rev, &thisupd, &nextupd);
        char serial[STORE_SERIAL_MAX];
        if ((status != V_OCSP_CERTSTATUS_GOOD && status != V_OCSP_CERTSTATUS_REVOKED) ||
            cid_serial((OCSP_CERTID *)OCSP_SINGLERESP_get0_id(one), serial) != 0)
            continue;
        struct seen *s = slot_of(serial);
        snprintf(s->serial, sizeof(s->serial), "%s", serial);
        s->status = status;
        s->reason = reason;
        s->revoked_at = unix_of(rev);
        s->this_update = unix_of(thisupd);
        s->next_update = unix_of(nextupd);
    }
    ERR_clear_error();
}

/* The status of one certificate from memory or the CRL; -1 when neither knows it. */
static int status_of(struct est_server *srv, X509_CRL *crl, OCSP_CERTID *cid, time_t now,
                     struct seen *out)
{
    char serial[STORE_SERIAL_MAX];
    if (cid_serial(cid, serial) != 0)
        return -1;
    const struct seen *s = slot_of(serial);
    if (strcmp(s->serial, serial) == 0 && s->next_update > (int64_t)now) {
        *out = *s;
        return 0;
    }
    ASN1_INTEGER *asn = NULL;
    X509_REVOKED *rev = NULL;
    if (crl == NULL || OCSP_id_get0_info(NULL, NULL, NULL, &asn, cid) != 1 ||
        X509_CRL_get0_by_serial(crl, &rev, asn) != 1 || rev == NULL)
        return -1;
    memset(out, 0, sizeof(*out));
    out->status = V_OCSP_CERTSTATUS_REVOKED;
    ASN1_ENUMERATED *reason = X509_REVOKED_get_ext_d2i(rev, NID_crl_reason, NULL, NULL);
    out->reason = reason != NULL ? (int)ASN1_ENUMERATED_get(reason) : -1;
    ASN1_ENUMERATED_free(reason);
    out->revoked_at = unix_of(X509_REVOKED_get0_revocationDate(rev));
    out->this_update = srv->crl.this_update;
    out->next_update = srv->crl.next_update;
    return 0;
}

static int add_one(OCSP_BASICRESP *bs, OCSP_CERTID *cid, const struct seen *s)
{
    TW_AUTO(ASN1_TIME) *thisupd = ASN1_TIME_set(NULL, (time_t)s->this_update);
    TW_AUTO(ASN1_TIME) *nextupd =
        s->next_update != 0 ? ASN1_TIME_set(NULL, (time_t)s->next_update) : NULL;
    TW_AUTO(ASN1_TIME) *rev =
        s->status == V_OCSP_CERTSTATUS_REVOKED ? ASN1_TIME_set(NULL, (time_t)s->revoked_at) : NULL;
    if (thisupd == NULL || (s->status == V_OCSP_CERTSTATUS_REVOKED && rev == NULL))
        return -1;
    return OCSP_basic_add1_status(bs, cid, s->status, s->reason, rev, thisupd, nextupd) != NULL
               ? 0
               : -1;
}

static int encode(OCSP_RESPONSE *resp, unsigned char **der, size_t *len)
{
    unsigned char *buf = NULL;
    int n = resp != NULL ? i2d_OCSP_RESPONSE(resp, &buf) : -1;
    if (n <= 0)
        return -1;
    *der = buf;
    *len = (size_t)n;
    return 0;
}

int est_ocsp_fallback(struct est_server *srv, const unsigned char *req, size_t len, time_t now,
                      unsigned char **der, size_t *dlen, int *status)
{
    const unsigned char *p = req;
    TW_AUTO(OCSP_REQUEST) *r = d2i_OCSP_REQUEST(NULL, &p, (long)len);
    const unsigned char *c = srv->crl.der;
    TW_AUTO(X509_CRL) *crl = c != NULL ? d2i_X509_CRL(NULL, &c, (long)srv->crl.len) : NULL;
    TW_AUTO(OCSP_BASICRESP) *bs = OCSP_BASICRESP_new();
    int n = r != NULL ? OCSP_request_onereq_count(r) : 0;
    int ok = bs != NULL && n > 0;
    for (int i = 0; ok && i < n; i++) {
        OCSP_CERTID *cid = OCSP_onereq_get0_id(OCSP_request_onereq_get0(r, i));
        struct seen s;
        ok = status_of(srv, crl, cid, now, &s) == 0 && add_one(bs, cid, &s) == 0;
    }
    struct tw_err err;
    ok = ok && OCSP_copy_nonce(bs, r) > 0 &&
         pki_signer_sign_ocsp(srv->opts->ocsp_signer, bs, NULL, &err) == 0;
    ERR_clear_error();
    *status = ok ? OCSP_RESPONSE_STATUS_SUCCESSFUL : OCSP_RESPONSE_STATUS_TRYLATER;
    TW_AUTO(OCSP_RESPONSE) *resp = OCSP_response_create(*status, ok ? bs : NULL);
    return encode(resp, der, dlen);
}
