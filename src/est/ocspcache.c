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

TW_DEFINE_CLEANUP(OCSP_SINGLERESP, OCSP_SINGLERESP_free)

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

/* A span of DER being walked. */
struct der {
    const unsigned char *p, *end;
};

/* Read one element of d (OpenSSL's ASN1_get_object checks its length against what is left):
 * *inner spans its contents, d moves past it. Indefinite lengths are not DER: refused. */
static int next(struct der *d, int *tag, int *cls, struct der *inner)
{
    long len = 0;
    const unsigned char *q = d->p;
    if (q >= d->end)
        return -1;
    int ret = ASN1_get_object(&q, &len, tag, cls, d->end - q);
    if ((ret & 0x80) != 0 || ret == (V_ASN1_CONSTRUCTED | 1))
        return -1;
    inner->p = q;
    inner->end = q + len;
    d->p = inner->end;
    return 0;
}

static int expect(struct der *d, int tag, int cls, struct der *inner)
{
    int t = 0, c = 0;
    return next(d, &t, &c, inner) == 0 && t == tag && c == cls ? 0 : -1;
}

/* The `responses` of a successful OCSPResponse (RFC 6960 §4.2.1), found without decoding the
 * whole BasicOCSPResponse: that decodes the signer's certificate, and OpenSSL 3 decoding its
 * public key cost twice as much as signing the answer did. */
static int responses_of(const unsigned char *der, size_t len, struct der *out)
{
    struct der d = {der, der + len}, resp, y, rb, basic, tbs;
    const ASN1_OBJECT *want = OBJ_nid2obj(NID_id_pkix_OCSP_basic);
    int tag = 0, cls = 0;
    if (expect(&d, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &resp) != 0 ||
        expect(&resp, V_ASN1_ENUMERATED, V_ASN1_UNIVERSAL, &y) != 0 || y.end - y.p != 1 ||
        y.p[0] != OCSP_RESPONSE_STATUS_SUCCESSFUL ||
        expect(&resp, 0, V_ASN1_CONTEXT_SPECIFIC, &y) != 0 || /* responseBytes [0] EXPLICIT */
        expect(&y, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &rb) != 0 ||
        expect(&rb, V_ASN1_OBJECT, V_ASN1_UNIVERSAL, &y) != 0 || want == NULL ||
        (size_t)(y.end - y.p) != OBJ_length(want) ||
        memcmp(y.p, OBJ_get0_data(want), (size_t)OBJ_length(want)) != 0 ||
        expect(&rb, V_ASN1_OCTET_STRING, V_ASN1_UNIVERSAL, &y) != 0 ||
        expect(&y, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &basic) != 0 ||
        expect(&basic, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &tbs) != 0 ||
        next(&tbs, &tag, &cls, &y) != 0) /* version [0] (optional) or responderID */
        return -1;
    if (tag == 0 && cls == V_ASN1_CONTEXT_SPECIFIC && next(&tbs, &tag, &cls, &y) != 0)
        return -1;
    if (expect(&tbs, V_ASN1_GENERALIZEDTIME, V_ASN1_UNIVERSAL, &y) != 0) /* producedAt */
        return -1;
    return expect(&tbs, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, out);
}

void est_ocsp_remember(const unsigned char *der, size_t len)
{
    struct der list;
    if (responses_of(der, len, &list) != 0) {
        ERR_clear_error();
        return;
    }
    while (list.p < list.end) {
        const unsigned char *q = list.p;
        TW_AUTO(OCSP_SINGLERESP) *one = d2i_OCSP_SINGLERESP(NULL, &q, list.end - list.p);
        if (one == NULL)
            break;
        list.p = q;
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
