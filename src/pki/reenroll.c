/* Re-enrollment (RFC 7030 §4.2.2): a certificate renews itself. The TLS layer proved the
 * client holds the current certificate's key and that it chains to the CA; here the inventory
 * decides whether that certificate may still be renewed, and the CSR must ask for exactly what
 * the certificate already has. */
#include <stdio.h>
#include <string.h>

#include "pki/internal.h"
#include "util/cleanup.h"
#include "util/clock.h"

/* Same set of SANs, order ignored. */

/* Keep the message, change the category (e.g. a SAN the profile refuses becomes a 403). */
static int recode(struct tw_err *err, enum tw_errc code)
{
    if (err != NULL)
        err->code = code;
    return -1;
}
static int sans_equal(const struct pki_sans *a, const struct pki_sans *b)
{
    if (a->count != b->count)
        return 0;
    for (size_t i = 0; i < a->count; i++) {
        int found = 0;
        for (size_t j = 0; j < b->count && !found; j++)
            found = a->items[i].type == b->items[j].type &&
                    strcmp(a->items[i].value, b->items[j].value) == 0;
        if (!found)
            return 0;
    }
    return 1;
}

/* The inventory's view of the presented certificate: ours, the same bytes, still good. */
static int check_current(struct pki_ca *ca, X509 *current, struct store_cert *row,
                         enum pki_profile *profile, struct tw_err *err)
{
    char serial[STORE_SERIAL_MAX], sha[65];
    TW_GUARD(pki_cert_serial_hex(current, serial, sizeof(serial), err));
    TW_GUARD(pki_cert_fingerprint(current, sha, NULL, err));
    if (store_cert_get(ca->store, serial, row, err) != 0)
        return err != NULL && err->code == TW_ERR_NOTFOUND
                   ? tw_err_set(err, TW_ERR_POLICY, "certificate %s was not issued by this CA",
                                serial)
                   : -1;
    TW_ENSURE(strcmp(row->sha256, sha) == 0, err, TW_ERR_POLICY,
              "certificate %s is not the one this CA issued under that serial", serial);
    char when[32];
    TW_ENSURE(row->status != STORE_REVOKED, err, TW_ERR_POLICY,
              "certificate %s (%s) is revoked (%s) and cannot be renewed", serial, row->name,
              pki_reason_name(row->revoke_reason));
    TW_ENSURE(row->status != STORE_EXPIRED && row->not_after > (int64_t)time(NULL), err,
              TW_ERR_POLICY, "certificate %s (%s) expired at %s; enroll again with a new token",
              serial, row->name, clock_iso8601((time_t)row->not_after, when, sizeof(when)));
    TW_ENSURE(pki_profile_parse(row->profile, profile, NULL) == 0 &&
                  (*profile == PKI_PROFILE_CLIENT || *profile == PKI_PROFILE_SERVER),
              err, TW_ERR_POLICY,
              "certificate %s is a %s certificate; only client and server "
              "certificates re-enroll",
              serial, row->profile);
    return 0;
}

/* RFC 7030 §4.2.2: the re-enroll subject and SANs must match the current certificate. */
static int check_request(X509 *current, const struct pki_csr *csr, const X509_NAME *csr_subject,
                         enum pki_profile profile, struct pki_sans *sans, struct tw_err *err)
{
    char want[STORE_SUBJECT_MAX] = "?", got[STORE_SUBJECT_MAX] = "(empty)";
    const X509_NAME *subject = X509_get_subject_name(current);
    if (csr_subject == NULL || X509_NAME_cmp(csr_subject, subject) != 0) {
        if (pki_name_to_text(subject, want, sizeof(want), NULL) != 0)
            snprintf(want, sizeof(want), "?");
        if (csr_subject != NULL && pki_name_to_text(csr_subject, got, sizeof(got), NULL) != 0)
            snprintf(got, sizeof(got), "?");
        return tw_err_set(err, TW_ERR_POLICY,
                          "CSR subject '%s' does not match the certificate's subject '%s' "
                          "(RFC 7030 4.2.2)",
                          got, want);
    }
    struct pki_sans asked;
    memset(&asked, 0, sizeof(asked));
    memset(sans, 0, sizeof(*sans));
    TW_GUARD(sans_from_cert(current, sans, err));
    if (pki_csr_take_sans(csr, profile, &asked, err) != 0)
        return recode(err, TW_ERR_POLICY);
    if (!sans_equal(&asked, sans)) {
        char a[STORE_SANS_MAX] = "?", h[STORE_SANS_MAX] = "?";
        if (pki_sans_format(&asked, a, sizeof(a), NULL) != 0 ||
            pki_sans_format(sans, h, sizeof(h), NULL) != 0)
            snprintf(a, sizeof(a), "?");
        return tw_err_set(err, TW_ERR_POLICY,
                          "CSR SANs '%s' do not match the certificate's SANs '%s' "
                          "(RFC 7030 4.2.2)",
                          a[0] ? a : "(none)", h[0] ? h : "(none)");
    }
    return 0;
}

struct reenroll_ctx {
    struct pki_ca *ca;
    const struct pki_cert_request *req;
    const char *old_serial;
    const char *subject;
    X509 *cert;
};

static int reenroll_txn(struct store *s, void *arg, struct tw_err *err)
{
    struct reenroll_ctx *c = arg;
    TW_GUARD(pki_ca_issue(c->ca, c->req, &c->cert, err));
    char serial[STORE_SERIAL_MAX], result[96];
    TW_GUARD(pki_cert_serial_hex(c->cert, serial, sizeof(serial), err));
    snprintf(result, sizeof(result), "ok: renews %s", c->old_serial);
    return store_audit_add(s, "reenroll", c->subject, serial, result, err);
}

static int reenroll(struct pki_ca *ca, X509 *current, const struct pki_csr *csr,
                    const X509_NAME *csr_subject, int label, X509 **out, struct store_cert *row,
                    struct tw_err *err)
{
    TW_ENSURE(ca->signer != NULL, err, TW_ERR_INTERNAL, "the CA is locked (pki_ca_unlock first)");
    enum pki_profile profile;
    TW_GUARD(check_current(ca, current, row, &profile, err));
    TW_ENSURE(label < 0 || label == (int)profile, err, TW_ERR_POLICY,
              "certificate %s is a %s certificate, not %s", row->serial, row->profile,
              pki_profile_name((enum pki_profile)label));
    struct pki_sans sans;
    TW_GUARD(check_request(current, csr, csr_subject, profile, &sans, err));
    /* Same validity period as the certificate it replaces (without the backdating). */
    int64_t lifetime = row->not_after - row->not_before - PKI_BACKDATE_SECS;
    if (lifetime < 1)
        lifetime = row->not_after - row->not_before;
    if (lifetime < 1)
        lifetime = (int64_t)pki_profile_default_days(profile) * 86400;
    struct pki_cert_request req = {.profile = profile,
                                   .cn = row->name,
                                   .sans = &sans,
                                   .pubkey = pki_csr_pubkey(csr),
                                   .spki = pki_csr_spki(csr),
                                   .lifetime = lifetime};
    struct reenroll_ctx c = {ca, &req, row->serial, row->subject, NULL};
    if (store_transaction(ca->store, reenroll_txn, &c, err) != 0) {
        X509_free(c.cert);
        return -1;
    }
    *out = c.cert;
    return 0;
}

int pki_ca_reenroll(struct pki_ca *ca, X509 *current, const struct pki_csr *csr,
                    const X509_NAME *csr_subject, int label, X509 **out, struct tw_err *err)
{
    struct store_cert row;
    memset(&row, 0, sizeof(row));
    struct tw_err local;
    tw_err_clear(&local);
    int rc = reenroll(ca, current, csr, csr_subject, label, out, &row, &local);
    if (rc != 0) {
        struct tw_err ignored;
        if (store_audit_add(ca->store, "reenroll", row.subject[0] ? row.subject : NULL,
                            row.serial[0] ? row.serial : NULL, local.msg, &ignored) != 0)
            tw_err_clear(&ignored);
        if (err != NULL)
            *err = local;
    }
    store_cert_clear(&row);
    return rc;
}
