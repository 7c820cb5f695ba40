/* The OCSP responder's core (RFC 6960): parse a request with limits, look each certificate up
 * in the inventory as it is right now, and sign a BasicOCSPResponse with the OCSP signing
 * certificate. No caching of answers: a revocation is visible in the very next one. What does
 * not depend on the request (the intermediate's CertID hashes, the signing context) is
 * prepared once in the signer (signer.c). */
#include <string.h>

#include <openssl/err.h>

#include "pki/internal.h"
#include "util/cleanup.h"

static int serial_hex(const ASN1_INTEGER *serial, char out[STORE_SERIAL_MAX], struct tw_err *err)
{
    TW_AUTO(BIGNUM) *bn = ASN1_INTEGER_to_BN(serial, NULL);
    TW_ENSURE_OSSL(bn != NULL, err, TW_ERR_PKI, "OCSP request: unreadable serial number");
    TW_ENSURE(!BN_is_negative(bn), err, TW_ERR_PKI, "OCSP request: negative serial number");
    TW_ENSURE(BN_num_bytes(bn) <= (STORE_SERIAL_MAX - 2) / 2, err, TW_ERR_PKI,
              "OCSP request: serial number longer than %d bytes", (STORE_SERIAL_MAX - 2) / 2);
    char *hex = BN_bn2hex(bn);
    TW_ENSURE_OSSL(hex != NULL, err, TW_ERR_INTERNAL, "out of memory");
    const char *digits = hex;
    while (digits[0] == '0' && digits[1] != '\0')
        digits++;
    snprintf(out, STORE_SERIAL_MAX, "%s", digits);
    OPENSSL_free(hex);
    return 0;
}

static OCSP_REQUEST *decode(const void *der, size_t len, struct tw_err *err)
{
    TW_ENSURE_PTR(len > 0, err, TW_ERR_PKI, "OCSP request: empty");
    TW_ENSURE_PTR(len <= PKI_OCSP_REQUEST_MAX, err, TW_ERR_PKI,
                  "OCSP request: larger than %u bytes", PKI_OCSP_REQUEST_MAX);
    const unsigned char *p = der;
    OCSP_REQUEST *req = d2i_OCSP_REQUEST(NULL, &p, (long)len);
    if (req == NULL) {
        tw_err_ossl(err, TW_ERR_PKI, "OCSP request: not DER OCSPRequest");
        return NULL;
    }
    if (p != (const unsigned char *)der + len) {
        OCSP_REQUEST_free(req);
        tw_err_set(err, TW_ERR_PKI, "OCSP request: trailing data");
        return NULL;
    }
    return req;
}

/* Fill q from a decoded request. */
static int query_from(OCSP_REQUEST *req, struct pki_ocsp_query *q, struct tw_err *err)
{
    memset(q, 0, sizeof(*q));
    int n = OCSP_request_onereq_count(req);
    TW_ENSURE(n > 0, err, TW_ERR_PKI, "OCSP request: asks about no certificate");
    TW_ENSURE(n <= PKI_OCSP_IDS_MAX, err, TW_ERR_PKI,
              "OCSP request: asks about %d certificates (at most %d)", n, PKI_OCSP_IDS_MAX);
    for (int i = 0; i < n; i++) {
        OCSP_CERTID *cid = OCSP_onereq_get0_id(OCSP_request_onereq_get0(req, i));
        ASN1_OBJECT *md = NULL;
        ASN1_INTEGER *serial = NULL;
        TW_GUARD_OSSL(OCSP_id_get0_info(NULL, &md, NULL, &serial, cid), err, TW_ERR_PKI,
                      "OCSP request: malformed CertID");
        q->ids[i].md_nid = OBJ_obj2nid(md);
        TW_GUARD(serial_hex(serial, q->ids[i].serial, err));
    }
    q->count = (size_t)n;
    q->has_nonce = OCSP_REQUEST_get_ext_by_NID(req, NID_id_pkix_OCSP_Nonce, -1) >= 0;
    return 0;
}

int pki_ocsp_request_parse(const void *der, size_t len, struct pki_ocsp_query *out,
                           struct tw_err *err)
{
    TW_AUTO(OCSP_REQUEST) *req = decode(der, len, err);
    if (req == NULL)
        return -1;
    return query_from(req, out, err);
}

static int add_status(struct pki_ca *ca, OCSP_BASICRESP *bs, OCSP_CERTID *cid, const char *serial,
                      ASN1_TIME *this_upd, ASN1_TIME *next_upd, struct tw_err *err)
{
    struct store_cert row;
    memset(&row, 0, sizeof(row));
    int rc = store_cert_get(ca->store, serial, &row, err);
    if (rc != 0 && (err == NULL || err->code != TW_ERR_NOTFOUND))
        return -1;
    int status = V_OCSP_CERTSTATUS_UNKNOWN, reason = -1;
    TW_AUTO(ASN1_TIME) *revoked_at = NULL;
    if (rc == 0 && row.status == STORE_REVOKED) {
        status = V_OCSP_CERTSTATUS_REVOKED;
        reason = row.revoke_reason >= 0 ? row.revoke_reason : OCSP_REVOKED_STATUS_UNSPECIFIED;
        revoked_at = ASN1_TIME_new();
        if (revoked_at == NULL || time_set(revoked_at, row.revoked_at, err) != 0) {
            store_cert_clear(&row);
            return tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
        }
    } else if (rc == 0) {
        status = V_OCSP_CERTSTATUS_GOOD; /* expired ones too: RFC 6960 §2.2 "not revoked" */
    }
    store_cert_clear(&row);
    tw_err_clear(err);
    TW_ENSURE_OSSL(
        OCSP_basic_add1_status(bs, cid, status, reason, revoked_at, this_upd, next_upd) != NULL,
        err, TW_ERR_PKI, "cannot add an OCSP status");
    return 0;
}

/* The successful answer; a request about another issuer yields *unauthorized instead. */
static OCSP_BASICRESP *answer(struct pki_ca *ca, struct pki_signer *signer, OCSP_REQUEST *req,
                              const struct pki_ocsp_query *q, time_t now, int64_t validity,
                              int *unauthorized, struct tw_err *err)
{
    for (size_t i = 0; i < q->count; i++) {
        OCSP_CERTID *cid = OCSP_onereq_get0_id(OCSP_request_onereq_get0(req, (int)i));
        if (!signer_ocsp_issued_by(signer, ca->intermediate, cid, q->ids[i].md_nid)) {
            *unauthorized = 1;
            return NULL;
        }
    }
    TW_AUTO(OCSP_BASICRESP) *bs = OCSP_BASICRESP_new();
    TW_AUTO(ASN1_TIME) *this_upd = ASN1_TIME_new();
    TW_AUTO(ASN1_TIME) *next_upd = ASN1_TIME_new();
    TW_ENSURE_PTR(bs != NULL && this_upd != NULL && next_upd != NULL, err, TW_ERR_INTERNAL,
                  "out of memory");
    TW_GUARD_PTR(time_set(this_upd, (int64_t)now, err));
    TW_GUARD_PTR(time_set(next_upd, (int64_t)now + validity, err));
    for (size_t i = 0; i < q->count; i++) {
        OCSP_CERTID *cid = OCSP_onereq_get0_id(OCSP_request_onereq_get0(req, (int)i));
        TW_GUARD_PTR(add_status(ca, bs, cid, q->ids[i].serial, this_upd, next_upd, err));
    }
    /* RFC 6960 §4.4.1 / RFC 8954: echo the nonce so the client can tell replays apart. */
    TW_ENSURE_PTR(OCSP_copy_nonce(bs, req) > 0, err, TW_ERR_PKI, "cannot echo the OCSP nonce");
    TW_GUARD_PTR(pki_signer_sign_ocsp(signer, bs, NULL, err));
    return TW_TAKE(bs);
}

static int encode(int status, OCSP_BASICRESP *bs, unsigned char **der, size_t *len,
                  struct tw_err *err)
{
    TW_AUTO(OCSP_RESPONSE) *resp = OCSP_response_create(status, bs);
    TW_ENSURE_OSSL(resp != NULL, err, TW_ERR_INTERNAL, "cannot build the OCSP response");
    unsigned char *buf = NULL;
    int n = i2d_OCSP_RESPONSE(resp, &buf);
    TW_ENSURE_OSSL(n > 0, err, TW_ERR_INTERNAL, "cannot encode the OCSP response");
    *der = buf;
    *len = (size_t)n;
    return 0;
}

int pki_ocsp_respond(struct pki_ca *ca, struct pki_signer *signer, const void *req, size_t len,
                     time_t now, int64_t validity, unsigned char **der, size_t *der_len,
                     int *status, struct tw_err *err)
{
    struct pki_ocsp_query q;
    int code = OCSP_RESPONSE_STATUS_SUCCESSFUL, unauthorized = 0;
    TW_AUTO(OCSP_BASICRESP) *bs = NULL;
    TW_AUTO(OCSP_REQUEST) *r = decode(req, len, err);
    if (r == NULL || query_from(r, &q, err) != 0) {
        code = OCSP_RESPONSE_STATUS_MALFORMEDREQUEST;
    } else {
        bs = answer(ca, signer, r, &q, now, validity > 0 ? validity : PKI_OCSP_VALIDITY,
                    &unauthorized, err);
        if (unauthorized) {
            code = OCSP_RESPONSE_STATUS_UNAUTHORIZED;
            tw_err_set(err, TW_ERR_POLICY, "OCSP request about a certificate another CA issued");
        } else if (bs == NULL) {
            code = OCSP_RESPONSE_STATUS_INTERNALERROR;
        }
    }
    if (status != NULL)
        *status = code;
    struct tw_err eerr;
    if (encode(code, code == OCSP_RESPONSE_STATUS_SUCCESSFUL ? bs : NULL, der, der_len, &eerr) !=
        0) {
        if (err != NULL)
            *err = eerr;
        return -1;
    }
    return 0;
}
