/* Building a certificate from a request and a profile, signed through the signer. */
#include <string.h>

#include <openssl/err.h>
#include <openssl/rand.h>

#include "keystore/keystore.h"
#include "pki/internal.h"
#include "util/cleanup.h"

#define SERIAL_BYTES 16 /* 128 random bits; CA/B Forum asks for at least 64 */

/* RFC 5280 §4.1.2.2: a positive integer of at most 20 octets, never zero. */
static int random_serial(X509 *cert, struct tw_err *err)
{
    unsigned char raw[SERIAL_BYTES];
    int nonzero = 0;
    while (!nonzero) {
        TW_GUARD_OSSL(RAND_bytes(raw, sizeof(raw)), err, TW_ERR_PKI, "no randomness for a serial");
        raw[0] &= 0x7f; /* positive even in the DER two's complement encoding */
        for (size_t i = 0; i < sizeof(raw); i++)
            nonzero |= raw[i] != 0;
    }
    TW_AUTO(BIGNUM) *bn = BN_bin2bn(raw, sizeof(raw), NULL);
    TW_ENSURE_OSSL(bn != NULL, err, TW_ERR_INTERNAL, "out of memory");
    TW_AUTO(ASN1_INTEGER) *serial = BN_to_ASN1_INTEGER(bn, NULL);
    TW_ENSURE_OSSL(serial != NULL, err, TW_ERR_INTERNAL, "out of memory");
    TW_GUARD_OSSL(X509_set_serialNumber(cert, serial), err, TW_ERR_INTERNAL, "cannot set serial");
    return 0;
}

int time_set(ASN1_TIME *target, int64_t when, struct tw_err *err)
{
    TW_ENSURE_OSSL(ASN1_TIME_set(target, (time_t)when) != NULL, err, TW_ERR_PKI,
                   "cannot encode time %lld", (long long)when);
    return 0;
}

static int add_conf_ext(X509 *cert, X509V3_CTX *ctx, int nid, const char *value, struct tw_err *err)
{
    TW_AUTO(X509_EXTENSION) *ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
    TW_ENSURE_OSSL(ext != NULL, err, TW_ERR_PKI, "cannot make extension %s = %s", OBJ_nid2sn(nid),
                   value);
    TW_GUARD_OSSL(X509_add_ext(cert, ext, -1), err, TW_ERR_PKI, "cannot add extension %s",
                  OBJ_nid2sn(nid));
    return 0;
}

static int add_sans(X509 *cert, const struct pki_sans *sans, struct tw_err *err)
{
    TW_AUTO(GENERAL_NAMES) *names = sans_to_general_names(sans, err);
    if (names == NULL)
        return -1;
    TW_GUARD_OSSL(X509_add1_ext_i2d(cert, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT), err,
                  TW_ERR_PKI, "cannot add the subjectAltName extension");
    return 0;
}

static int add_revocation_pointers(X509 *cert, X509V3_CTX *ctx, const char *base_url,
                                   struct tw_err *err)
{
    char value[2 * PKI_URL_MAX + 64];
    snprintf(value, sizeof(value), "URI:%s/crl", base_url);
    TW_GUARD(add_conf_ext(cert, ctx, NID_crl_distribution_points, value, err));
    /* RFC 5280 §4.2.2.1: caIssuers lets a relying party that lacks the intermediate fetch it
     * (DER, application/pkix-cert) and build the path itself. */
    snprintf(value, sizeof(value), "OCSP;URI:%s/ocsp,caIssuers;URI:%s/ca.crt", base_url,
             base_url);
    return add_conf_ext(cert, ctx, NID_info_access, value, err);
}

static int add_extensions(X509 *cert, X509 *issuer, const struct profile_def *def,
                          const struct pki_cert_request *req, struct tw_err *err)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer != NULL ? issuer : cert, cert, NULL, NULL, 0);
    const char *ku = def->key_usage;
    if (def->key_usage_rsa != NULL && EVP_PKEY_is_a(req->pubkey, "RSA"))
        ku = def->key_usage_rsa;
    TW_GUARD(add_conf_ext(cert, &ctx, NID_basic_constraints, def->basic_constraints, err));
    TW_GUARD(add_conf_ext(cert, &ctx, NID_key_usage, ku, err));
    if (def->ext_key_usage != NULL)
        TW_GUARD(add_conf_ext(cert, &ctx, NID_ext_key_usage, def->ext_key_usage, err));
    /* The SKI goes first: a self-signed root's AKI is computed from it. */
    TW_GUARD(add_conf_ext(cert, &ctx, NID_subject_key_identifier, "hash", err));
    TW_GUARD(add_conf_ext(cert, &ctx, NID_authority_key_identifier, "keyid:always", err));
    if (def->ocsp_nocheck) /* RFC 6960 §4.2.2.2.1: do not check the responder's own status */
        TW_GUARD(add_conf_ext(cert, &ctx, NID_id_pkix_OCSP_noCheck, "ignored", err));
    if (req->sans != NULL && req->sans->count > 0)
        TW_GUARD(add_sans(cert, req->sans, err));
    if (def->revocation_pointers && req->base_url != NULL && req->base_url[0] != '\0')
        TW_GUARD(add_revocation_pointers(cert, &ctx, req->base_url, err));
    return 0;
}

static int check_request(const struct profile_def *def, const struct pki_cert_request *req,
                         struct tw_err *err)
{
    TW_ENSURE(def != NULL, err, TW_ERR_INTERNAL, "unknown profile %d", (int)req->profile);
    TW_ENSURE(req->cn != NULL && req->cn[0] != '\0' && strlen(req->cn) <= PKI_NAME_MAX, err,
              TW_ERR_PKI, "a certificate needs a name of 1 to %d characters", PKI_NAME_MAX);
    TW_ENSURE(req->pubkey != NULL, err, TW_ERR_PKI, "no public key for %s", req->cn);
    TW_ENSURE(req->lifetime > 0 && req->lifetime <= (int64_t)100 * 365 * 86400, err, TW_ERR_PKI,
              "validity for %s must be between 1 second and 100 years", req->cn);
    size_t nsans = req->sans != NULL ? req->sans->count : 0;
    TW_ENSURE(!def->san_required || nsans > 0, err, TW_ERR_PKI,
              "a %s certificate needs at least one SAN", def->name);
    for (size_t i = 0; i < nsans; i++)
        TW_ENSURE((def->san_mask & (1u << req->sans->items[i].type)) != 0, err, TW_ERR_PKI,
                  "SAN %s:%s is not allowed in a %s certificate",
                  pki_san_type_name(req->sans->items[i].type), req->sans->items[i].value,
                  def->name);
    return 0;
}

/* The subject key exactly as the CSR encoded it: algorithm, parameters and key bits copied.
 * X509_set_pubkey would encode the key and decode it again, and OpenSSL 3.0 builds an
 * encoder and a decoder chain for that each time: about a quarter of an enrollment's CPU.
 * The key was decoded, its signature verified and its type and curve vetted with the CSR. */
static int copy_spki(X509 *cert, const X509_PUBKEY *from, struct tw_err *err)
{
    ASN1_OBJECT *oid = NULL;
    const unsigned char *bits = NULL;
    int nbits = 0;
    X509_ALGOR *from_alg = NULL, *to_alg = NULL;
    TW_GUARD_OSSL(X509_PUBKEY_get0_param(&oid, &bits, &nbits, &from_alg, from), err, TW_ERR_PKI,
                  "unreadable public key in the request");
    TW_ENSURE(bits != NULL && nbits > 0, err, TW_ERR_PKI, "empty public key in the request");
    X509_PUBKEY *to = X509_get_X509_PUBKEY(cert);
    unsigned char *enc = OPENSSL_memdup(bits, (size_t)nbits);
    TW_ENSURE_OSSL(enc != NULL, err, TW_ERR_INTERNAL, "out of memory");
    /* The algorithm given here is replaced by the full copy (with its parameters) below. */
    if (X509_PUBKEY_set0_param(to, OBJ_dup(oid), V_ASN1_UNDEF, NULL, enc, nbits) != 1) {
        OPENSSL_free(enc);
        return tw_err_ossl(err, TW_ERR_INTERNAL, "cannot set the key");
    }
    TW_GUARD_OSSL(X509_PUBKEY_get0_param(NULL, NULL, NULL, &to_alg, to), err, TW_ERR_INTERNAL,
                  "cannot set the key");
    TW_GUARD_OSSL(X509_ALGOR_copy(to_alg, from_alg), err, TW_ERR_INTERNAL, "cannot set the key");
    return 0;
}

static int set_names_and_times(X509 *cert, X509 *issuer, const struct pki_cert_request *req,
                               time_t now, struct tw_err *err)
{
    X509_NAME *subject = X509_get_subject_name(cert);
    TW_GUARD_OSSL(X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                                             (const unsigned char *)req->cn, -1, -1, 0),
                  err, TW_ERR_PKI, "cannot use '%s' as a common name", req->cn);
    TW_GUARD_OSSL(
        X509_set_issuer_name(cert, issuer != NULL ? X509_get_subject_name(issuer) : subject), err,
        TW_ERR_PKI, "cannot set the issuer");
    int64_t not_before = (int64_t)now - PKI_BACKDATE_SECS;
    int64_t not_after = (int64_t)now + req->lifetime;
    if (issuer != NULL) { /* a certificate never outlives the CA that vouches for it */
        int64_t cap;
        TW_GUARD(pki_time_to_unix(X509_get0_notAfter(issuer), &cap, err));
        if (not_after > cap)
            not_after = cap;
    }
    TW_ENSURE(not_after > (int64_t)now, err, TW_ERR_PKI,
              "the issuing CA has expired; no certificate can be issued");
    TW_GUARD(time_set(X509_getm_notBefore(cert), not_before, err));
    TW_GUARD(time_set(X509_getm_notAfter(cert), not_after, err));
    if (req->spki != NULL)
        return copy_spki(cert, req->spki, err);
    TW_AUTO(EVP_PKEY) *pub = keystore_public(req->pubkey, err); /* a token key: its public half */
    if (pub == NULL)
        return -1;
    TW_GUARD_OSSL(X509_set_pubkey(cert, pub), err, TW_ERR_PKI, "cannot set the key");
    return 0;
}

X509 *pki_cert_make(struct pki_signer *signer, const struct pki_cert_request *req, time_t now,
                    struct tw_err *err)
{
    const struct profile_def *def = profile_get(req->profile);
    TW_GUARD_PTR(check_request(def, req, err));
    X509 *issuer = pki_signer_cert(signer);
    TW_AUTO(X509) *cert = X509_new();
    TW_ENSURE_PTR(cert != NULL, err, TW_ERR_INTERNAL, "out of memory");
    TW_ENSURE_PTR(X509_set_version(cert, X509_VERSION_3) == 1, err, TW_ERR_INTERNAL,
                  "cannot set version");
    TW_GUARD_PTR(random_serial(cert, err));
    TW_GUARD_PTR(set_names_and_times(cert, issuer, req, now, err));
    TW_GUARD_PTR(add_extensions(cert, issuer, def, req, err));
    TW_GUARD_PTR(pki_signer_sign_cert(signer, cert, err));
    return TW_TAKE(cert);
}
