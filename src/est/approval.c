/* EST enrollment with manual approval (RFC 7030 §4.2.3), `ca serve --approval manual`.
 *
 * A simpleenroll without credentials is kept as a pending request whose id is the SHA-256 of
 * the CSR's DER, and answered 202 with Retry-After. The client sends the same CSR again later:
 * while pending it gets 202 again (same id, no new row); once an operator ran `ca approve` the
 * certificate is issued on that request (the CA key lives in the server) and recorded on the
 * request, so every later POST of the same CSR gets that same certificate (a client that lost
 * the answer asks again); once rejected it gets 403 with the reason. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <openssl/evp.h>
#include <openssl/objects.h>

#include "est/internal.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/cleanup.h"
#include "util/log.h"

/* One request as sent: the DER, its id, the parsed CSR (signature verified) and subject. */
struct incoming {
    unsigned char *der;
    size_t len;
    char id[STORE_PENDING_ID_MAX];
    struct pki_csr *csr;
    X509_NAME *subject;
};

static void incoming_clear(struct incoming *in)
{
    free(in->der);
    pki_csr_free(in->csr);
    X509_NAME_free(in->subject);
    memset(in, 0, sizeof(*in));
}

static int incoming_read(struct est_req *r, struct incoming *in, struct tw_err *err)
{
    size_t len = 0;
    TW_AUTO(charp) *body = (char *)est_body(r, &len);
    TW_ENSURE(body != NULL, err, TW_ERR_INTERNAL, "out of memory");
    const char *cte =
        evhttp_find_header(evhttp_request_get_input_headers(r->req), "Content-Transfer-Encoding");
    TW_GUARD(est_csr_body_decode(body, len, cte, &in->der, &in->len, err));
    TW_ENSURE(in->len <= STORE_PENDING_CSR_MAX, err, TW_ERR_PKI, "CSR: larger than %u bytes",
              STORE_PENDING_CSR_MAX);
    if ((in->csr = pki_csr_parse(in->der, in->len, "CSR", err)) == NULL ||
        (in->subject = pki_csr_subject(in->der, in->len, "CSR", err)) == NULL)
        return -1;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    TW_ENSURE(EVP_Digest(in->der, in->len, md, &mdlen, EVP_sha256(), NULL) == 1 && mdlen == 32,
              err, TW_ERR_INTERNAL, "SHA-256 failed");
    tw_hex_encode(md, mdlen, in->id);
    return 0;
}

/* The CSR's CN: the NAME the certificate is issued to. */
static int csr_name(const X509_NAME *subject, char *out, size_t cap, struct tw_err *err)
{
    int idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    X509_NAME_ENTRY *e = idx >= 0 ? X509_NAME_get_entry(subject, idx) : NULL;
    unsigned char *utf8 = NULL;
    int n = e != NULL ? ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e)) : -1;
    if (n <= 0) {
        OPENSSL_free(utf8); /* an empty CN still allocates */
        return tw_err_set(err, TW_ERR_PKI, "CSR: the subject needs a CN (the certificate's name)");
    }
    /* A NUL inside the CN, or one longer than out, would be cut by snprintf and checked short. */
    int whole = memchr(utf8, '\0', (size_t)n) == NULL && (size_t)n < cap;
    snprintf(out, cap, "%.*s", n, (const char *)utf8);
    OPENSSL_free(utf8);
    TW_ENSURE(whole, err, TW_ERR_PKI,
              "CSR: subject CN: a NUL byte or more than %d characters (not a certificate NAME)",
              PKI_NAME_MAX);
    struct tw_err why;
    tw_err_clear(&why);
    TW_ENSURE(pki_name_check(out, &why) == 0, err, TW_ERR_PKI, "CSR: subject CN: %s", why.msg);
    return 0;
}

static long retry_after(const struct est_req *r)
{
    long v = r->srv->opts->retry_after;
    return v > 0 ? v : EST_RETRY_AFTER_DEFAULT;
}

static void reply_pending(struct est_req *r, const char *id)
{
    char secs[24], msg[TW_ERR_MSG_MAX];
    long after = retry_after(r);
    snprintf(secs, sizeof(secs), "%ld", after);
    snprintf(msg, sizeof(msg),
             "enrollment request %.16s is waiting for approval (twoway ca approve %.12s); "
             "retry after %ld s",
             id, id, after);
    snprintf(r->detail, sizeof(r->detail), "pending %.16s", id);
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Retry-After", secs);
    est_reply_text(r, 202, msg);
}

/* First sight of this CSR: check it can become a certificate, then store it. */
static int submit(struct est_req *r, const struct incoming *in, struct tw_err *err)
{
    struct store_pending p;
    memset(&p, 0, sizeof(p));
    enum pki_profile profile = r->label >= 0 ? (enum pki_profile)r->label : PKI_PROFILE_CLIENT;
    struct pki_sans sans;
    memset(&sans, 0, sizeof(sans));
    TW_GUARD(csr_name(in->subject, p.name, sizeof(p.name), err));
    TW_GUARD(pki_csr_take_sans(in->csr, profile, &sans, err));
    TW_ENSURE(profile != PKI_PROFILE_SERVER || sans.count > 0, err, TW_ERR_PKI,
              "CSR: a server certificate needs at least one SAN");
    TW_GUARD(pki_sans_format(&sans, p.sans, sizeof(p.sans), err));
    TW_GUARD(pki_name_to_text(in->subject, p.subject, sizeof(p.subject), err));
    snprintf(p.id, sizeof(p.id), "%s", in->id);
    snprintf(p.profile, sizeof(p.profile), "%s", pki_profile_name(profile));
    snprintf(p.peer, sizeof(p.peer), "%s", r->peer);
    p.csr = in->der;
    p.csr_len = in->len;
    long max = r->srv->opts->max_pending > 0 ? r->srv->opts->max_pending : EST_PENDING_MAX_DEFAULT;
    struct store *s = pki_ca_store(r->srv->opts->ca);
    TW_GUARD(store_pending_add(s, &p, max, err));
    struct tw_err aerr;
    char result[128];
    snprintf(result, sizeof(result), "pending %.16s from %s", p.id, p.peer);
    if (store_audit_add(s, "request", p.subject, NULL, result, &aerr) != 0)
        log_warnx("ca serve: audit of request %.16s: %s", p.id, aerr.msg);
    return 0;
}

struct issue_ctx {
    struct pki_ca *ca;
    const struct store_pending *p;
    const struct pki_csr *csr;
    X509 *cert;
};

/* In one transaction: the certificate, its row, the request's serial and the audit row, so an
 * approval buys exactly one certificate even with several servers on one inventory. */
static int issue_txn(struct store *s, void *ctx, struct tw_err *err)
{
    struct issue_ctx *c = ctx;
    enum pki_profile profile;
    struct pki_sans sans;
    memset(&sans, 0, sizeof(sans));
    TW_GUARD(pki_profile_parse(c->p->profile, &profile, err));
    if (c->p->sans[0] != '\0')
        TW_GUARD(pki_sans_parse(&sans, c->p->sans, err));
    int64_t lifetime = c->p->lifetime > 0 ? c->p->lifetime
                                          : (int64_t)pki_profile_default_days(profile) * 86400;
    struct pki_cert_request req = {.profile = profile,
                                   .cn = c->p->name,
                                   .sans = &sans,
                                   .pubkey = pki_csr_pubkey(c->csr),
                                   .lifetime = lifetime};
    TW_GUARD(pki_ca_issue(c->ca, &req, &c->cert, err));
    char serial[STORE_SERIAL_MAX];
    TW_GUARD(pki_cert_serial_hex(c->cert, serial, sizeof(serial), err));
    TW_GUARD(store_pending_set_serial(s, c->p->id, serial, err));
    char result[64];
    snprintf(result, sizeof(result), "ok: approved request %.16s", c->p->id);
    return store_audit_add(s, "enroll", c->p->subject, serial, result, err);
}

/* The certificate an approved request already got, from the inventory. */
static X509 *issued_cert(struct store *s, const char *serial, struct tw_err *err)
{
    struct store_cert row;
    if (store_cert_get(s, serial, &row, err) != 0)
        return NULL;
    X509 *cert = row.pem != NULL ? pki_cert_from_pem(row.pem, strlen(row.pem), serial, err) : NULL;
    if (row.pem == NULL)
        tw_err_set(err, TW_ERR_STORE, "certificate %s has no PEM in the inventory", serial);
    store_cert_clear(&row);
    return cert;
}

static void answer_known(struct est_req *r, const struct incoming *in, struct store_pending *p)
{
    struct tw_err err;
    struct store *s = pki_ca_store(r->srv->opts->ca);
    /* RFC 7030 §3.2.2: a profile named in the URL must be the one the request was made for. */
    if (r->label >= 0 && strcmp(p->profile, pki_profile_name((enum pki_profile)r->label)) != 0) {
        tw_err_set(&err, TW_ERR_POLICY, "enrollment request %.16s is for a %s certificate, not %s",
                   p->id, p->profile, pki_profile_name((enum pki_profile)r->label));
        est_fail(r, &err, 403);
        return;
    }
    if (strcmp(p->state, "pending") == 0) {
        reply_pending(r, p->id);
        return;
    }
    if (strcmp(p->state, "rejected") == 0) {
        tw_err_set(&err, TW_ERR_POLICY, "enrollment request %.16s was rejected%s%s", p->id,
                   p->reason[0] != '\0' ? ": " : "", p->reason);
        est_fail(r, &err, 403);
        return;
    }
    X509 *cert = NULL;
    if (p->serial[0] != '\0') {
        cert = issued_cert(s, p->serial, &err);
    } else {
        struct issue_ctx c = {r->srv->opts->ca, p, in->csr, NULL};
        if (store_transaction(s, issue_txn, &c, &err) != 0) {
            X509_free(c.cert);
            c.cert = NULL;
            /* Another server issued it meanwhile: hand out that one. */
            struct store_pending now;
            if (err.code == TW_ERR_EXISTS && store_pending_get(s, p->id, &now, &err) == 0) {
                if (now.serial[0] != '\0')
                    c.cert = issued_cert(s, now.serial, &err);
                store_pending_clear(&now);
            }
        }
        cert = c.cert;
    }
    if (cert == NULL) {
        est_fail(r, &err, 403);
        return;
    }
    est_send_cert(r, cert);
    X509_free(cert);
}

void est_approval_enroll(struct est_req *r)
{
    struct tw_err err;
    tw_err_clear(&err);
    struct incoming in;
    memset(&in, 0, sizeof(in));
    if (incoming_read(r, &in, &err) != 0) {
        est_fail(r, &err, 400);
        incoming_clear(&in);
        return;
    }
    struct store *s = pki_ca_store(r->srv->opts->ca);
    struct store_pending p;
    int rc = store_pending_get(s, in.id, &p, &err);
    if (rc != 0 && err.code == TW_ERR_NOTFOUND) {
        rc = submit(r, &in, &err);
        if (rc == 0) {
            reply_pending(r, in.id);
        } else if (err.code == TW_ERR_EXISTS) {
            rc = store_pending_get(s, in.id, &p, &err); /* sent twice at once */
            if (rc == 0) {
                answer_known(r, &in, &p);
                store_pending_clear(&p);
            }
        } else if (err.code == TW_ERR_POLICY) {
            /* Bounded queue: the client may come back once an operator worked through it. */
            char secs[24];
            snprintf(secs, sizeof(secs), "%ld", retry_after(r));
            evhttp_add_header(evhttp_request_get_output_headers(r->req), "Retry-After", secs);
            snprintf(r->detail, sizeof(r->detail), "%s", err.msg);
            est_reply_text(r, 503, err.msg);
            rc = 0;
        }
        if (rc != 0)
            est_fail(r, &err, 400);
        incoming_clear(&in);
        return;
    }
    if (rc != 0)
        est_fail(r, &err, 400);
    else
        answer_known(r, &in, &p);
    store_pending_clear(&p);
    incoming_clear(&in);
}
