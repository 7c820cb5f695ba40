/* doctor, offline half: a certificate file checked the way a peer would check it (key match,
 * EKU for its role, validity of every certificate on its path, chain to a CA bundle,
 * revocation), recorded as facts for the CLI's diagnosis table. Also the one-certificate
 * summary (subject, issuer, SANs, validity) the probe shows for each chain. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "tlsx/internal.h"
#include "tlsx/probe_internal.h"
#include "util/cleanup.h"

void tlsx_probe_name_text(const X509_NAME *name, char *out, size_t cap)
{
    out[0] = '\0';
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == NULL)
        return;
    if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
        int n = BIO_read(bio, out, (int)cap - 1);
        out[n > 0 ? n : 0] = '\0';
    }
    BIO_free(bio);
}

/* Append "kind:value" to out, printable ASCII only (a SAN is outside input). */
static void san_append(char *out, size_t cap, const char *kind, const unsigned char *v, int len)
{
    size_t used = strlen(out);
    if (used + 8 >= cap)
        return;
    int n = snprintf(out + used, cap - used, "%s%s:", used > 0 ? ", " : "", kind);
    used += n > 0 ? (size_t)n : 0;
    for (int i = 0; i < len && used + 4 < cap; i++)
        out[used++] = (v[i] >= 0x20 && v[i] < 0x7f) ? (char)v[i] : '?';
    if (used + 4 >= cap)
        memcpy(out + cap - 4, "...", 4);
    else
        out[used] = '\0';
}

static void sans_text(X509 *cert, char *out, size_t cap)
{
    out[0] = '\0';
    GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        const ASN1_STRING *s = NULL;
        const char *kind = NULL;
        switch (g->type) {
        case GEN_DNS:
            kind = "dns", s = g->d.dNSName;
            break;
        case GEN_EMAIL:
            kind = "email", s = g->d.rfc822Name;
            break;
        case GEN_URI:
            kind = "uri", s = g->d.uniformResourceIdentifier;
            break;
        case GEN_IPADD: {
            char ip[INET6_ADDRSTRLEN] = "?";
            int len = ASN1_STRING_length(g->d.iPAddress);
            const unsigned char *d = ASN1_STRING_get0_data(g->d.iPAddress);
            if (len == 4 || len == 16)
                inet_ntop(len == 4 ? AF_INET : AF_INET6, d, ip, sizeof(ip));
            san_append(out, cap, "ip", (const unsigned char *)ip, (int)strlen(ip));
            continue;
        }
        default:
            continue;
        }
        san_append(out, cap, kind, ASN1_STRING_get0_data(s), ASN1_STRING_length(s));
    }
    GENERAL_NAMES_free(gens);
}

void tlsx_cert_info_fill(X509 *cert, struct tlsx_cert_info *out)
{
    memset(out, 0, sizeof(*out));
    if (cert == NULL)
        return;
    tlsx_probe_name_text(X509_get_subject_name(cert), out->subject, sizeof(out->subject));
    tlsx_probe_name_text(X509_get_issuer_name(cert), out->issuer, sizeof(out->issuer));
    sans_text(cert, out->sans, sizeof(out->sans));
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
    snprintf(out->serial_hex, sizeof(out->serial_hex), "%s", hex != NULL ? hex : "?");
    OPENSSL_free(hex);
    BN_free(bn);
    out->not_before = tlsx_asn1_time_unix(X509_get0_notBefore(cert));
    out->not_after = tlsx_asn1_time_unix(X509_get0_notAfter(cert));
    out->self_signed = X509_self_signed(cert, 1) == 1;
    out->is_ca = X509_check_ca(cert) > 0;
    uint32_t flags = X509_get_extension_flags(cert);
    out->has_eku = (flags & EXFLAG_XKUSAGE) != 0;
    uint32_t xku = X509_get_extended_key_usage(cert);
    out->eku_server = out->has_eku && (xku & XKU_SSL_SERVER);
    out->eku_client = out->has_eku && (xku & XKU_SSL_CLIENT);
    ERR_clear_error();
}

static enum tlsx_cert_role resolve_role(const struct tlsx_cert_info *leaf, enum tlsx_cert_role r)
{
    if (r != TLSX_ROLE_AUTO)
        return r;
    return leaf->eku_server && !leaf->eku_client ? TLSX_ROLE_SERVER : TLSX_ROLE_CLIENT;
}

/* Record the first certificate outside its validity window. */
static void check_validity(struct tlsx_file_check *r, const struct tlsx_cert_info *c, int64_t now)
{
    if (r->validity != TLSX_R_OK)
        return;
    if (c->not_after != 0 && c->not_after < now) {
        r->validity = TLSX_R_EXPIRED;
        r->validity_time = c->not_after;
    } else if (c->not_before > now) {
        r->validity = TLSX_R_NOT_YET_VALID;
        r->validity_time = c->not_before;
    } else {
        return;
    }
    snprintf(r->validity_subject, sizeof(r->validity_subject), "%s", c->subject);
}

static int build_store(const struct tlsx_file_check_opts *o, X509_STORE **out,
                       STACK_OF(X509) * *cas, struct tw_err *err)
{
    TW_AUTO(X509_STORE) *store = X509_STORE_new();
    TW_ENSURE_OSSL(store != NULL, err, TW_ERR_INTERNAL, "out of memory");
    TW_GUARD(tlsx_certs_load(o->ca_file, cas, err));
    for (int i = 0; i < sk_X509_num(*cas); i++)
        TW_GUARD_OSSL(X509_STORE_add_cert(store, sk_X509_value(*cas, i)), err, TW_ERR_CONFIG,
                      "%s: cannot use CA certificate", o->ca_file);
    if (o->crl_file != NULL) {
        struct tlsx_crl_set *set = tlsx_crl_set_new(err);
        if (set == NULL)
            return -1;
        int rc = tlsx_crl_set_add_file(set, o->crl_file, err);
        if (rc == 0)
            rc = tlsx_crl_set_to_store(set, store, err);
        tlsx_crl_set_free(set);
        TW_GUARD(rc);
    }
    *out = TW_TAKE(store);
    return 0;
}

/* True when x is one of the certificates of the file. */
static bool in_stack(STACK_OF(X509) * sk, X509 *x)
{
    for (int i = 0; i < sk_X509_num(sk); i++)
        if (X509_cmp(sk_X509_value(sk, i), x) == 0)
            return true;
    return false;
}

struct verify_note {
    long err;
    X509 *cert;
};

static int note_first_error(int ok, X509_STORE_CTX *x)
{
    struct verify_note *n = X509_STORE_CTX_get_app_data(x);
    if (!ok && n->err == X509_V_OK) {
        n->err = X509_STORE_CTX_get_error(x);
        n->cert = X509_STORE_CTX_get_current_cert(x);
        if (n->cert != NULL)
            X509_up_ref(n->cert);
    }
    return 1; /* keep going: every certificate of the path is shown */
}

/* Verify leaf against ca_file with the file's chain as untrusted helpers. Time is not checked
 * here (check_validity reports it per certificate, with dates). */
static int check_chain(const struct tlsx_file_check_opts *o, X509 *leaf, STACK_OF(X509) * chain,
                       struct tlsx_file_check *r, int64_t now, struct tw_err *err)
{
    TW_AUTO(X509_STORE) *store = NULL;
    TW_AUTO(X509_STACK) *cas = NULL;
    TW_GUARD(build_store(o, &store, &cas, err));
    TW_AUTO(X509_STORE_CTX) *ctx = X509_STORE_CTX_new();
    TW_ENSURE_OSSL(ctx != NULL && X509_STORE_CTX_init(ctx, store, leaf, chain) == 1, err,
                   TW_ERR_INTERNAL, "cannot start verification");
    X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
    unsigned long flags = X509_V_FLAG_PARTIAL_CHAIN | X509_V_FLAG_NO_CHECK_TIME;
    if (o->crl_file != NULL)
        flags |= X509_V_FLAG_CRL_CHECK;
    X509_VERIFY_PARAM_set_flags(param, flags);
    struct verify_note note = {X509_V_OK, NULL};
    X509_STORE_CTX_set_app_data(ctx, &note);
    X509_STORE_CTX_set_verify_cb(ctx, note_first_error);
    (void)X509_verify_cert(ctx);
    ERR_clear_error();
    r->chain_checked = true;
    r->chain_err = note.err;
    if (note.cert != NULL) {
        struct tlsx_cert_info info;
        tlsx_cert_info_fill(note.cert, &info);
        snprintf(r->chain_err_subject, sizeof(r->chain_err_subject), "%s", info.subject);
        X509_free(note.cert);
    }
    STACK_OF(X509) *path = X509_STORE_CTX_get0_chain(ctx);
    for (int i = 1; i < sk_X509_num(path) && r->npath < TLSX_PROBE_MAX_CHAIN; i++) {
        X509 *c = sk_X509_value(path, i);
        struct tlsx_cert_info *info = &r->path[r->npath++];
        tlsx_cert_info_fill(c, info);
        check_validity(r, info, now);
        /* An intermediate that only --ca supplied: servers trusting just the root would not
         * find it. */
        if (note.err == X509_V_OK && !info->self_signed && !in_stack(chain, c) &&
            !r->missing_intermediate) {
            r->missing_intermediate = true;
            snprintf(r->intermediate_subject, sizeof(r->intermediate_subject), "%s", info->subject);
            snprintf(r->intermediate_issuer, sizeof(r->intermediate_issuer), "%s", info->issuer);
        }
    }
    return 0;
}

int tlsx_file_check(const struct tlsx_file_check_opts *o, struct tlsx_file_check *r,
                    struct tw_err *err)
{
    memset(r, 0, sizeof(*r));
    int64_t now = o->now != 0 ? o->now : (int64_t)time(NULL);
    TW_AUTO(X509) *leaf = NULL;
    TW_AUTO(X509_STACK) *chain = NULL;
    TW_GUARD(tlsx_cert_chain_load(o->cert_file, &leaf, &chain, err));
    tlsx_cert_info_fill(leaf, &r->leaf);
    check_validity(r, &r->leaf, now);
    for (int i = 0; i < sk_X509_num(chain) && r->nchain < TLSX_PROBE_MAX_CHAIN; i++) {
        tlsx_cert_info_fill(sk_X509_value(chain, i), &r->chain[r->nchain]);
        check_validity(r, &r->chain[r->nchain++], now);
    }
    if (o->key_file != NULL) {
        TW_AUTO(EVP_PKEY) *key = NULL;
        TW_GUARD(tlsx_key_load(o->key_file, &key, err));
        r->key_checked = true;
        r->key_match = X509_check_private_key(leaf, key) == 1;
        ERR_clear_error();
    }
    r->role = resolve_role(&r->leaf, o->role);
    r->eku_ok = r->role == TLSX_ROLE_CLIENT ? r->leaf.eku_client : r->leaf.eku_server;
    if (o->ca_file != NULL)
        TW_GUARD(check_chain(o, leaf, chain, r, now, err));
    return 0;
}

/* TLS SignatureScheme names (RFC 8446 §4.2.3), for showing a CertificateRequest. */
static const struct {
    unsigned code;
    const char *name;
} sigalgs[] = {
    {0x0401, "rsa_pkcs1_sha256"},
    {0x0501, "rsa_pkcs1_sha384"},
    {0x0601, "rsa_pkcs1_sha512"},
    {0x0403, "ecdsa_secp256r1_sha256"},
    {0x0503, "ecdsa_secp384r1_sha384"},
    {0x0603, "ecdsa_secp521r1_sha512"},
    {0x0804, "rsa_pss_rsae_sha256"},
    {0x0805, "rsa_pss_rsae_sha384"},
    {0x0806, "rsa_pss_rsae_sha512"},
    {0x0807, "ed25519"},
    {0x0808, "ed448"},
    {0x0809, "rsa_pss_pss_sha256"},
    {0x080a, "rsa_pss_pss_sha384"},
    {0x080b, "rsa_pss_pss_sha512"},
    {0x0201, "rsa_pkcs1_sha1"},
    {0x0203, "ecdsa_sha1"},
    {0x0303, "ecdsa_sha224"},
    {0x0301, "rsa_sha224"},
};

const char *tlsx_sigalg_name(unsigned code, char *buf, size_t cap)
{
    for (size_t i = 0; i < sizeof(sigalgs) / sizeof(sigalgs[0]); i++)
        if (sigalgs[i].code == code)
            return sigalgs[i].name;
    snprintf(buf, cap, "0x%04x", code & 0xffff);
    return buf;
}

/* RFC 8446 §6 alerts OpenSSL 3.0 does not name. */
static const struct {
    int alert;
    const char *name;
} alerts[] = {
    {109, "missing extension"},
    {116, "certificate required"},
    {120, "no application protocol"},
};

const char *tlsx_alert_name(int alert)
{
    for (size_t i = 0; i < sizeof(alerts) / sizeof(alerts[0]); i++)
        if (alerts[i].alert == alert)
            return alerts[i].name;
    return SSL_alert_desc_string_long(alert);
}
