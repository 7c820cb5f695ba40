/* CRL sets: CRLs from files or memory, kept newest-per-issuer, for the verify store (full
 * handshakes) and for cheap serial lookups (resumed sessions, sweeping live connections). */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "tlsx/internal.h"
#include "util/cleanup.h"
#include "util/fs.h"

/* What is known of who signed each CRL (signer[] parallels crls, set by tlsx_crl_set_verify). */
enum signer { SIGNER_UNKNOWN = 0, SIGNER_VERIFIED = 1 };

struct tlsx_crl_set {
    atomic_int refs;
    STACK_OF(X509_CRL) *crls;
    atomic_int *signer; /* enum signer per CRL; NULL until verified (then all unknown) */
    int nsigner;        /* CRLs signer[] covers: added later, they count as unknown */
};

struct tlsx_crl_set *tlsx_crl_set_new(struct tw_err *err)
{
    struct tlsx_crl_set *set = calloc(1, sizeof(*set));
    TW_ENSURE_PTR(set != NULL, err, TW_ERR_INTERNAL, "out of memory");
    atomic_init(&set->refs, 1);
    set->crls = sk_X509_CRL_new_null();
    if (set->crls == NULL) {
        free(set);
        tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    return set;
}

int tlsx_crl_set_up_ref(struct tlsx_crl_set *set)
{
    atomic_fetch_add(&set->refs, 1);
    return 1;
}

void tlsx_crl_set_free(struct tlsx_crl_set *set)
{
    if (set == NULL || atomic_fetch_sub(&set->refs, 1) > 1)
        return;
    sk_X509_CRL_pop_free(set->crls, X509_CRL_free);
    free(set->signer);
    free(set);
}

size_t tlsx_crl_set_count(const struct tlsx_crl_set *set)
{
    return set != NULL ? (size_t)sk_X509_CRL_num(set->crls) : 0;
}

static int find_issuer(const struct tlsx_crl_set *set, const X509_NAME *issuer)
{
    for (int i = 0; i < sk_X509_CRL_num(set->crls); i++)
        if (X509_NAME_cmp(X509_CRL_get_issuer(sk_X509_CRL_value(set->crls, i)), issuer) == 0)
            return i;
    return -1;
}

/* Keep one CRL per issuer: the one issued last. Ownership of crl passes to the set. */
static int add_crl(struct tlsx_crl_set *set, X509_CRL *crl, const char *source,
                   struct tw_err *err)
{
    /* Sort the revoked list now, single-threaded, so lookups never take OpenSSL's lock. */
    X509_REVOKED *ignored = NULL;
    ASN1_INTEGER *zero = ASN1_INTEGER_new();
    if (zero != NULL) {
        X509_CRL_get0_by_serial(crl, &ignored, zero);
        ASN1_INTEGER_free(zero);
    }
    int at = find_issuer(set, X509_CRL_get_issuer(crl));
    if (at >= 0) {
        X509_CRL *old = sk_X509_CRL_value(set->crls, at);
        if (ASN1_TIME_compare(X509_CRL_get0_lastUpdate(old), X509_CRL_get0_lastUpdate(crl)) > 0) {
            X509_CRL_free(crl);
            return 0;
        }
        sk_X509_CRL_set(set->crls, at, crl);
        X509_CRL_free(old);
        return 0;
    }
    if (sk_X509_CRL_num(set->crls) >= TLSX_MAX_CRLS || !sk_X509_CRL_push(set->crls, crl)) {
        X509_CRL_free(crl);
        return tw_err_set(err, TW_ERR_CONFIG, "%s: too many CRLs (limit %d)", source,
                          TLSX_MAX_CRLS);
    }
    return 0;
}

static int add_pem(struct tlsx_crl_set *set, const void *data, size_t len, const char *source,
                   struct tw_err *err)
{
    TW_AUTO(BIO) *bio = BIO_new_mem_buf(data, (int)len);
    TW_ENSURE_OSSL(bio != NULL, err, TW_ERR_INTERNAL, "%s: out of memory", source);
    int n = 0;
    X509_CRL *crl;
    ERR_clear_error(); /* the end of the loop is judged by the queue */
    while ((crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL)) != NULL) {
        TW_GUARD(add_crl(set, crl, source, err));
        n++;
    }
    unsigned long e = ERR_peek_last_error();
    if (e != 0 && ERR_GET_REASON(e) != PEM_R_NO_START_LINE)
        return tw_err_ossl(err, TW_ERR_CONFIG, "%s: malformed CRL", source);
    ERR_clear_error();
    TW_ENSURE(n > 0, err, TW_ERR_CONFIG,
              "%s: no CRL found (expected -----BEGIN X509 CRL----- or DER)", source);
    return 0;
}

int tlsx_crl_set_add_mem(struct tlsx_crl_set *set, const void *data, size_t len,
                         const char *source, struct tw_err *err)
{
    TW_ENSURE(len > 0 && len <= FS_READ_LIMIT_DEFAULT, err, TW_ERR_CONFIG,
              "%s: CRL is empty or too large", source);
    /* DER starts with a SEQUENCE tag; anything else is treated as PEM. */
    if (((const unsigned char *)data)[0] != 0x30)
        return add_pem(set, data, len, source, err);
    const unsigned char *p = data;
    X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)len);
    TW_ENSURE_OSSL(crl != NULL, err, TW_ERR_CONFIG, "%s: malformed DER CRL", source);
    if (p != (const unsigned char *)data + len) {
        X509_CRL_free(crl);
        return tw_err_set(err, TW_ERR_CONFIG, "%s: trailing bytes after the DER CRL", source);
    }
    return add_crl(set, crl, source, err);
}

int tlsx_crl_set_add_file(struct tlsx_crl_set *set, const char *path, struct tw_err *err)
{
    TW_AUTO(charp) *data = NULL;
    size_t len = 0;
    TW_GUARD(fs_read_file(path, FS_READ_LIMIT_DEFAULT, &data, &len, err));
    return tlsx_crl_set_add_mem(set, data, len, path, err);
}

int tlsx_crl_set_verify(const struct tlsx_crl_set *set, STACK_OF(X509) *cas, struct tw_err *err)
{
    int n = set != NULL ? sk_X509_CRL_num(set->crls) : 0;
    /* Allocated by the first call, before the set is shared; later calls (one per ctx built
     * from the set, possibly while older ctxs use it) only mark more CRLs verified. */
    atomic_int *signer = set != NULL ? set->signer : NULL;
    bool fresh = signer == NULL && n > 0;
    if (fresh)
        signer = calloc((size_t)n, sizeof(*signer));
    TW_ENSURE(n == 0 || signer != NULL, err, TW_ERR_INTERNAL, "out of memory");
    for (int i = 0; i < n; i++) {
        X509_CRL *crl = sk_X509_CRL_value(set->crls, i);
        const X509_NAME *issuer = X509_CRL_get_issuer(crl);
        int named = 0, signed_ok = 0;
        for (int j = 0; !signed_ok && j < sk_X509_num(cas); j++) {
            X509 *ca = sk_X509_value(cas, j);
            if (X509_NAME_cmp(X509_get_subject_name(ca), issuer) == 0) {
                named = 1;
                signed_ok = X509_CRL_verify(crl, X509_get0_pubkey(ca)) == 1;
            }
        }
        ERR_clear_error();
        /* A CRL from a CA that client-ca does not hold (an intermediate the clients present
         * when client-ca holds only the root) is checked against that CA when it is known:
         * by OpenSSL at every full handshake, by tlsx_crl_set_check at resumption. One that
         * names a CA of client-ca must be signed by it. */
        if (named && !signed_ok) {
            if (fresh)
                free(signer);
            char name[200];
            X509_NAME_oneline(issuer, name, sizeof(name));
            return tw_err_set(err, TW_ERR_CONFIG,
                              "CRL from '%s' is not signed by any CA in client-ca", name);
        }
        if (fresh)
            atomic_init(&signer[i], signed_ok ? SIGNER_VERIFIED : SIGNER_UNKNOWN);
        else if (signed_ok && i < set->nsigner)
            atomic_store(&signer[i], SIGNER_VERIFIED);
    }
    if (fresh) { /* first call: not shared yet */
        ((struct tlsx_crl_set *)set)->signer = signer;
        ((struct tlsx_crl_set *)set)->nsigner = n;
    }
    return 0;
}

int tlsx_crl_set_same_outside(const struct tlsx_crl_set *set, const struct tlsx_crl_set *held,
                              STACK_OF(X509) *cas, struct tw_err *err)
{
    for (int i = 0; set != NULL && held != NULL && i < sk_X509_CRL_num(set->crls); i++) {
        const X509_NAME *issuer = X509_CRL_get_issuer(sk_X509_CRL_value(set->crls, i));
        int known = find_issuer(held, issuer) >= 0;
        for (int j = 0; !known && j < sk_X509_num(cas); j++)
            known = X509_NAME_cmp(X509_get_subject_name(sk_X509_value(cas, j)), issuer) == 0;
        if (!known) {
            char name[200];
            X509_NAME_oneline(issuer, name, sizeof(name));
            return tw_err_set(err, TW_ERR_VERIFY,
                              "CRL from '%s', neither a CA in client-ca nor the issuer of the "
                              "CRL held",
                              name);
        }
    }
    return 0;
}

int tlsx_crl_set_check(const struct tlsx_crl_set *set, X509 *cert, X509 *issuer)
{
    int at = set != NULL && cert != NULL ? find_issuer(set, X509_get_issuer_name(cert)) : -1;
    if (at < 0)
        return 0;
    X509_CRL *crl = sk_X509_CRL_value(set->crls, at);
    X509_REVOKED *rev = NULL;
    /* 1: revoked; 2: removeFromCRL (delta CRLs), i.e. no longer revoked. */
    if (X509_CRL_get0_by_serial(crl, &rev, (ASN1_INTEGER *)X509_get0_serialNumber(cert)) == 1)
        return 1; /* revoked, whoever signed the list: never more lenient than it says */
    if (issuer == NULL || set->signer == NULL ||
        (at < set->nsigner && atomic_load(&set->signer[at]) == SIGNER_VERIFIED))
        return 0;
    /* Not revoked by a list nobody checked yet: only if the issuer really signed it. */
    int ok = X509_NAME_cmp(X509_get_subject_name(issuer), X509_CRL_get_issuer(crl)) == 0 &&
             X509_CRL_verify(crl, X509_get0_pubkey(issuer)) == 1;
    ERR_clear_error();
    if (!ok)
        return -1;
    if (at < set->nsigner)
        atomic_store(&set->signer[at], SIGNER_VERIFIED);
    return 0;
}

int tlsx_crl_set_is_revoked(const struct tlsx_crl_set *set, const X509_NAME *issuer,
                            const ASN1_INTEGER *serial)
{
    if (set == NULL || issuer == NULL || serial == NULL)
        return 0;
    int at = find_issuer(set, issuer);
    if (at < 0)
        return 0;
    X509_REVOKED *rev = NULL;
    /* 1: revoked; 2: removeFromCRL (delta CRLs), i.e. no longer revoked. */
    return X509_CRL_get0_by_serial(sk_X509_CRL_value(set->crls, at), &rev,
                                   (ASN1_INTEGER *)serial) == 1;
}

int tlsx_crl_set_cert_is_revoked(const struct tlsx_crl_set *set, X509 *cert)
{
    return cert != NULL && tlsx_crl_set_is_revoked(set, X509_get_issuer_name(cert),
                                                   X509_get0_serialNumber(cert));
}

int tlsx_crl_set_has_issuer(const struct tlsx_crl_set *set, const X509_NAME *issuer)
{
    return set != NULL && issuer != NULL && find_issuer(set, issuer) >= 0;
}

int tlsx_crl_set_issuer_expired(const struct tlsx_crl_set *set, const X509_NAME *issuer,
                                int64_t now)
{
    int at = set != NULL && issuer != NULL ? find_issuer(set, issuer) : -1;
    if (at < 0)
        return 0;
    int64_t u = tlsx_asn1_time_unix(X509_CRL_get0_nextUpdate(sk_X509_CRL_value(set->crls, at)));
    return u != 0 && u < now;
}

int64_t tlsx_crl_set_next_update(const struct tlsx_crl_set *set)
{
    int64_t min = 0;
    for (int i = 0; set != NULL && i < sk_X509_CRL_num(set->crls); i++) {
        const ASN1_TIME *t = X509_CRL_get0_nextUpdate(sk_X509_CRL_value(set->crls, i));
        int64_t u = tlsx_asn1_time_unix(t);
        if (u != 0 && (min == 0 || u < min))
            min = u;
    }
    return min;
}

size_t tlsx_crl_set_expired(const struct tlsx_crl_set *set, int64_t now)
{
    size_t n = 0;
    for (int i = 0; set != NULL && i < sk_X509_CRL_num(set->crls); i++) {
        int64_t u = tlsx_asn1_time_unix(X509_CRL_get0_nextUpdate(sk_X509_CRL_value(set->crls, i)));
        n += u != 0 && u < now;
    }
    return n;
}

int tlsx_crl_set_to_store(const struct tlsx_crl_set *set, X509_STORE *store, struct tw_err *err)
{
    for (int i = 0; set != NULL && i < sk_X509_CRL_num(set->crls); i++)
        TW_GUARD_OSSL(X509_STORE_add_crl(store, sk_X509_CRL_value(set->crls, i)), err,
                      TW_ERR_INTERNAL, "cannot add CRL to the verify store");
    return 0;
}
