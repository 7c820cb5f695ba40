/* Private to src/pki: the CA's in-memory state, its settings file and shared helpers. */
#ifndef TW_PKI_INTERNAL_H
#define TW_PKI_INTERNAL_H

#include <limits.h>

#include <openssl/x509v3.h>

#include "pki/pki.h"

/* Names inside the data dir. */
#define PKI_DIR_CA "ca"
#define PKI_DIR_INIT_PREFIX ".ca-init."
#define PKI_FILE_DB "ca.db"
#define PKI_FILE_CONF "ca.conf"
#define PKI_FILE_ROOT_CRT "root.crt"
#define PKI_FILE_ROOT_KEY "root.key"
#define PKI_FILE_INT_CRT "intermediate.crt"
#define PKI_FILE_INT_KEY "intermediate.key"
#define PKI_FILE_OCSP_CRT "ocsp.crt"
#define PKI_FILE_OCSP_KEY "ocsp.key"
#define PKI_FILE_CHAIN "chain.pem"
#define PKI_FILE_CRL_PEM "crl.pem"
#define PKI_FILE_CRL_DER "crl.der"

#define PKI_CONF_MAX (16u * 1024) /* bytes of ca.conf */
#define PKI_STORE_URI_MAX 1024    /* bytes of a store URI */
#define PKI_CA_NAME_MAX 48        /* so "NAME Intermediate" fits a 64-character CN */
#define PKI_CRL_DAYS_DEFAULT 7
#define PKI_LISTEN_MAX 272 /* bytes of "http-listen =" ([IPv6 or name]:port) */

/* Settings chosen at `ca init`, kept in ca/ca.conf (INI, section [ca]). */
struct pki_ca_conf {
    char name[PKI_CA_NAME_MAX + 1];
    char key[16];
    char base_url[PKI_URL_MAX];
    int encrypted;
    int crl_days;
    char store[PKI_STORE_URI_MAX]; /* "store = URI" (issue 7); "" when absent */
    char http_listen[PKI_LISTEN_MAX];  /* "http-listen = ADDR:PORT" for `ca serve`; "" when absent */
};

/* The inventory the CA in dir uses (issue 7), first that is set: $TWOWAY_STORE (also what
 * `twoway ca --store URI` sets), conf_store (ca.conf "store ="), else dir/ca.db. *is_default
 * is 1 for the last. TW_ERR_USAGE when the result does not fit. */
int pki_store_uri(const char *dir, const char *conf_store, char *out, size_t cap, int *is_default,
                  struct tw_err *err) TW_MUST_CHECK;

struct pki_ca {
    char dir[PATH_MAX];
    char cadir[PATH_MAX];
    struct pki_ca_conf conf;
    X509 *root;
    X509 *intermediate;
    X509 *ocsp;
    struct store *store;
    struct pki_signer *signer; /* intermediate, after pki_ca_unlock */
};

/* ca.conf: write (atomically, 0600) and read back. Unknown keys are refused (TW_ERR_CONFIG). */
int conf_write(const char *path, const struct pki_ca_conf *conf, struct tw_err *err) TW_MUST_CHECK;
int conf_read(const char *path, struct pki_ca_conf *conf, struct tw_err *err) TW_MUST_CHECK;

/* Validate a base URL: http(s)://, printable, no spaces or commas. TW_ERR_USAGE otherwise. */
int conf_check_base_url(const char *url, struct tw_err *err) TW_MUST_CHECK;

/* Collect the SANs of names into sans. A kind outside allowed_mask (bit per pki_san_type),
 * or one twoway does not handle, fails with TW_ERR_PKI starting with label. */
int sans_from_general_names(const GENERAL_NAMES *names, unsigned allowed_mask, const char *label,
                            struct pki_sans *sans, struct tw_err *err) TW_MUST_CHECK;

/* The SAN extension of cert as pki_sans (empty when it has none). */
int sans_from_cert(const X509 *cert, struct pki_sans *sans, struct tw_err *err) TW_MUST_CHECK;

/* SANs as a GENERAL_NAMES for a certificate extension. */
GENERAL_NAMES *sans_to_general_names(const struct pki_sans *sans, struct tw_err *err);

/* Extension table of a profile. */
struct profile_def {
    const char *name;
    int default_days;
    const char *basic_constraints;
    const char *key_usage;
    const char *key_usage_rsa; /* when the subject key is RSA; NULL: same as key_usage */
    const char *ext_key_usage; /* NULL: none */
    int ocsp_nocheck;
    int revocation_pointers; /* CRL DP + OCSP AIA when the CA has a base URL */
    unsigned san_mask;       /* bit (1u << pki_san_type) per allowed kind */
    int san_required;
};
const struct profile_def *profile_get(enum pki_profile p);

/* The EC curves accepted for keys (keys.c), also announced to EST clients (csrattrs.c). */
#define KEY_EC_CURVES 3
extern const int key_ec_curve_nids[KEY_EC_CURVES];

/* Path of name inside dir into out (PATH_MAX). */
int ca_path(const struct pki_ca *ca, const char *name, char *out, struct tw_err *err) TW_MUST_CHECK;

/* Unix seconds to a fresh ASN1_TIME on target (X509 fields). */
int time_set(ASN1_TIME *target, int64_t when, struct tw_err *err) TW_MUST_CHECK;

/* Write crl as cadir/crl.pem and cadir/crl.der (atomically), and to extra_out when non-NULL
 * (DER when it ends in ".der", else PEM). */
int crl_write_files(const char *cadir, X509_CRL *crl, const char *extra_out,
                    struct tw_err *err) TW_MUST_CHECK;

/* After pki_ca_open found the files and opened the inventory: when the inventory lacks the
 * root's row, finish the `ca init` that was killed between its rename and its commit (rows,
 * CRL counter, "init recovered" audit row, one log line), or fail with TW_ERR_PKI saying why
 * the files cannot be trusted to do so. ca_recover.c. */
int ca_recover_init(struct pki_ca *ca, struct tw_err *err) TW_MUST_CHECK;

/* Test-only crash injection (ca_init.c): with TWOWAY_FAULT_INIT=point, SIGKILL this process
 * here. Points are named in docs/internals/ca.md. */
void ca_fault_point(const char *point);

/* 1 when cid's issuerNameHash and issuerKeyHash (under digest md_nid) are those of issuer.
 * The hashes are computed once per digest and kept in the signer (signer.c), which answers
 * for one issuer: the intermediate. */
int signer_ocsp_issued_by(struct pki_signer *s, X509 *issuer, const OCSP_CERTID *cid, int md_nid);

#endif
