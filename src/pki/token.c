/* Enrollment tokens (issue 4): made here, stored only as a SHA-256 hash, spent once on a first
 * EST enrollment. Spending the token, issuing the certificate and auditing both happen in one
 * store transaction, so a token is never used up by a failed issuance and never buys two
 * certificates, even when several `ca serve` processes share the inventory. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>

#include "pki/internal.h"
#include "util/cleanup.h"

#define TOKEN_TTL_MAX ((int64_t)366 * 86400)

int pki_token_generate(char out[PKI_TOKEN_TEXT_MAX], struct tw_err *err)
{
    unsigned char raw[PKI_TOKEN_BYTES];
    TW_GUARD_OSSL(RAND_priv_bytes(raw, sizeof(raw)), err, TW_ERR_INTERNAL,
                  "no random bytes for a token");
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof(raw); i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * sizeof(raw)] = '\0';
    OPENSSL_cleanse(raw, sizeof(raw));
    return 0;
}

int pki_token_hash(const char *token, size_t len, char hex[65], struct tw_err *err)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    TW_GUARD_OSSL(EVP_Digest(token, len, md, &n, EVP_sha256(), NULL), err, TW_ERR_INTERNAL,
                  "SHA-256 unavailable");
    static const char digits[] = "0123456789abcdef";
    for (unsigned int i = 0; i < n; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[2 * n] = '\0';
    return 0;
}

/* Server certificates always name themselves: NAME goes first, as ca issue does it. */

/* Keep the message, change the category (e.g. a SAN the profile refuses becomes a 403). */
static int recode(struct tw_err *err, enum tw_errc code)
{
    if (err != NULL)
        err->code = code;
    return -1;
}
static int token_sans(const struct pki_token_spec *spec, struct pki_sans *out, struct tw_err *err)
{
    memset(out, 0, sizeof(*out));
    if (spec->profile == PKI_PROFILE_SERVER) {
        unsigned char addr[16];
        int ip =
            inet_pton(AF_INET, spec->name, addr) == 1 || inet_pton(AF_INET6, spec->name, addr) == 1;
        if (pki_sans_add(out, ip ? PKI_SAN_IP : PKI_SAN_DNS, spec->name, err) != 0)
            return tw_err_set(err, TW_ERR_USAGE,
                              "server NAME '%s' must be a DNS name or an IP address", spec->name);
    }
    for (size_t i = 0; spec->sans != NULL && i < spec->sans->count; i++) {
        const struct pki_san *s = &spec->sans->items[i];
        TW_ENSURE(pki_profile_allows_san(spec->profile, s->type), err, TW_ERR_USAGE,
                  "--san %s:%s is not allowed in a %s certificate", pki_san_type_name(s->type),
                  s->value, pki_profile_name(spec->profile));
        TW_GUARD(pki_sans_add(out, s->type, s->value, err));
    }
    return 0;
}

int pki_ca_token_create(struct pki_ca *ca, const struct pki_token_spec *spec,
                        char token[PKI_TOKEN_TEXT_MAX], int64_t *expires_at, struct tw_err *err)
{
    TW_GUARD(pki_name_check(spec->name, err));
    TW_ENSURE(spec->profile == PKI_PROFILE_CLIENT || spec->profile == PKI_PROFILE_SERVER, err,
              TW_ERR_USAGE, "a token enrolls a client or server certificate, not %s",
              pki_profile_name(spec->profile));
    TW_ENSURE(spec->ttl > 0 && spec->ttl <= TOKEN_TTL_MAX, err, TW_ERR_USAGE,
              "--ttl must be between 1 second and 366 days");
    TW_ENSURE(spec->lifetime >= 0, err, TW_ERR_USAGE, "negative certificate lifetime");
    struct pki_sans sans;
    TW_GUARD(token_sans(spec, &sans, err));
    struct store_token row;
    memset(&row, 0, sizeof(row));
    snprintf(row.name, sizeof(row.name), "%s", spec->name);
    snprintf(row.profile, sizeof(row.profile), "%s", pki_profile_name(spec->profile));
    TW_GUARD(pki_sans_format(&sans, row.sans, sizeof(row.sans), err));
    row.lifetime = spec->lifetime;
    row.created_at = (int64_t)time(NULL);
    row.expires_at = row.created_at + spec->ttl;
    TW_GUARD(pki_token_generate(token, err));
    int rc = pki_token_hash(token, strlen(token), row.hash, err);
    if (rc == 0)
        rc = store_token_put(ca->store, &row, err);
    char subject[STORE_SUBJECT_MAX];
    snprintf(subject, sizeof(subject), "CN=%s", spec->name);
    char result[TW_ERR_MSG_MAX];
    snprintf(result, sizeof(result), "%s", rc == 0 ? "ok" : err != NULL ? err->msg : "failed");
    struct tw_err aerr;
    if (store_audit_add(ca->store, "token", subject, NULL, result, &aerr) != 0 && rc == 0) {
        if (err != NULL)
            *err = aerr;
        rc = -1;
    }
    if (rc != 0) {
        OPENSSL_cleanse(token, PKI_TOKEN_TEXT_MAX);
        return -1;
    }
    if (expires_at != NULL)
        *expires_at = row.expires_at;
    return 0;
}

/* 1 when every SAN of want is in have. */
static int sans_subset(const struct pki_sans *want, const struct pki_sans *have,
                       const struct pki_san **missing)
{
    for (size_t i = 0; i < want->count; i++) {
        int found = 0;
        for (size_t j = 0; j < have->count && !found; j++)
            found = want->items[i].type == have->items[j].type &&
                    strcmp(want->items[i].value, have->items[j].value) == 0;
        if (!found) {
            *missing = &want->items[i];
            return 0;
        }
    }
    return 1;
}

struct enroll_ctx {
    struct pki_ca *ca;
    const char *name;
    const struct pki_csr *csr;
    int label;
    char hash[65];
    X509 *cert;
};

/* Everything the token allows is checked before it is spent; the conditional UPDATE in
 * store_token_use is still the final word against a concurrent enrollment. */
static int enroll_txn(struct store *s, void *arg, struct tw_err *err)
{
    struct enroll_ctx *c = arg;
    struct store_token tok;
    if (store_token_get(s, c->hash, &tok, err) != 0)
        return err != NULL && err->code == TW_ERR_NOTFOUND
                   ? tw_err_set(err, TW_ERR_VERIFY, "unknown enrollment token for '%s'", c->name)
                   : -1;
    TW_ENSURE(strcmp(tok.name, c->name) == 0, err, TW_ERR_VERIFY,
              "the enrollment token is not for '%s'", c->name);
    enum pki_profile profile;
    TW_ENSURE(pki_profile_parse(tok.profile, &profile, NULL) == 0, err, TW_ERR_INTERNAL,
              "token for '%s' has an unknown profile '%s'", tok.name, tok.profile);
    TW_ENSURE(c->label < 0 || c->label == (int)profile, err, TW_ERR_POLICY,
              "the token for '%s' enrolls a %s certificate, not %s", tok.name, tok.profile,
              pki_profile_name((enum pki_profile)c->label));
    struct pki_sans allowed, asked;
    memset(&allowed, 0, sizeof(allowed));
    memset(&asked, 0, sizeof(asked));
    if (tok.sans[0] != '\0')
        TW_GUARD(pki_sans_parse(&allowed, tok.sans, err));
    if (pki_csr_take_sans(c->csr, profile, &asked, err) != 0)
        return recode(err, TW_ERR_POLICY);
    const struct pki_san *missing = NULL;
    TW_ENSURE(sans_subset(&asked, &allowed, &missing), err, TW_ERR_POLICY,
              "the CSR asks for SAN %s:%s, which the token for '%s' does not allow",
              pki_san_type_name(missing->type), missing->value, tok.name);
    if (store_token_use(s, c->hash, (int64_t)time(NULL), err) != 0)
        return err != NULL && err->code == TW_ERR_EXISTS ? recode(err, TW_ERR_VERIFY) : -1;
    int64_t lifetime =
        tok.lifetime > 0 ? tok.lifetime : (int64_t)pki_profile_default_days(profile) * 86400;
    struct pki_cert_request req = {.profile = profile,
                                   .cn = tok.name,
                                   .sans = &allowed,
                                   .pubkey = pki_csr_pubkey(c->csr),
                                   .spki = pki_csr_spki(c->csr),
                                   .lifetime = lifetime};
    TW_GUARD(pki_ca_issue(c->ca, &req, &c->cert, err));
    char serial[STORE_SERIAL_MAX], subject[STORE_SUBJECT_MAX];
    TW_GUARD(pki_cert_serial_hex(c->cert, serial, sizeof(serial), err));
    TW_GUARD(store_token_set_serial(s, c->hash, serial, err));
    snprintf(subject, sizeof(subject), "CN=%s", tok.name);
    return store_audit_add(s, "enroll", subject, serial, "ok: token", err);
}

int pki_ca_enroll_token(struct pki_ca *ca, const char *name, const char *token,
                        const struct pki_csr *csr, int label, X509 **out, struct tw_err *err)
{
    struct enroll_ctx c = {.ca = ca, .name = name, .csr = csr, .label = label};
    struct tw_err local;
    tw_err_clear(&local);
    int rc = -1;
    if (ca->signer == NULL)
        tw_err_set(&local, TW_ERR_INTERNAL, "the CA is locked (pki_ca_unlock first)");
    else if (pki_token_hash(token, strlen(token), c.hash, &local) == 0)
        rc = store_transaction(ca->store, enroll_txn, &c, &local);
    if (rc != 0) {
        X509_free(c.cert); /* issued inside the rolled-back transaction: never handed out */
        char subject[STORE_SUBJECT_MAX];
        snprintf(subject, sizeof(subject), "CN=%.*s", PKI_NAME_MAX, name);
        struct tw_err ignored;
        if (store_audit_add(ca->store, "enroll", subject, NULL, local.msg, &ignored) != 0)
            tw_err_clear(&ignored);
        if (err != NULL)
            *err = local;
        return -1;
    }
    *out = c.cert;
    return 0;
}
