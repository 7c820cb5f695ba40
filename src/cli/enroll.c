/* `twoway enroll`: first enrollment over EST with a one-time token. The key pair is made here
 * and never leaves this machine; only a CSR (public key + proof of possession) is sent. Trust
 * in the CA starts from the root fingerprint `ca init` / `ca token` printed (or --ca FILE). */
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "cli/ca_common.h"
#include "cli/cli.h"
#include "cli/flags.h"
#include "est/est.h"
#include "tlsx/tlsx.h"
#include "util/buf.h"
#include "util/cleanup.h"
#include "util/clock.h"
#include "util/fs.h"

static const char usage[] =
    "usage: twoway enroll URL --name N (--token T | --token-file F | --wait DURATION)\n"
    "                     (--ca-fingerprint SHA256 | --ca FILE) [--key TYPE] [--san LIST]\n"
    "                     [--key-store STORE] [--out DIR] [--force]\n"
    "                     [--p12 [--p12-legacy] [--p12-pass-file F]]\n"
    "\n"
    "Get a certificate from `twoway ca serve` at URL (https://HOST:PORT; add\n"
    "/.well-known/est/server for a server certificate). A key is generated here, a CSR is sent\n"
    "with the token (HTTP Basic, over TLS), and N.key (0600), N.crt, N.chain.pem (certificate\n"
    "then intermediate) and ca.pem (the root) are written to DIR.\n"
    "\n"
    "  --token T            the one-time token from `twoway ca token N` (last line)\n"
    "  --token-file F       read the token from F's first line instead (keeps it out of ps)\n"
    "  --wait DURATION      wait up to DURATION for an operator to approve the request\n"
    "                       (`ca serve --approval manual`, `ca approve`), asking again when\n"
    "                       the server's Retry-After says; no token needed then\n"
    "  --ca-fingerprint FP  SHA-256 of the CA root, as `ca init`/`ca token` print it: the CA\n"
    "                       certificates are fetched and accepted only if the root matches\n"
    "  --ca FILE            trust the CA certificates in FILE instead\n"
    "  --key TYPE           ec:P-256 (default), ec:P-384, ed25519, rsa:2048, rsa:3072, rsa:4096\n"
    "  --key-store STORE    make the key inside a PKCS#11 token (a pkcs11: URI naming the\n"
    "                       token, with pin-source=file:... and module-path=...) or the TPM\n"
    "                       (tpm2:); N.key then names the key instead of holding it\n"
    "  --pin-file F         PIN of keys in a PKCS#11 token (0600 file, first line), for\n"
    "                       pkcs11: references without pin-source=\n"
    "  --pkcs11-module M    the PKCS#11 module (.so) when the reference names none\n"
    "  --san LIST           SANs to ask for (must be among those the token allows)\n"
    "  --out DIR            where to write (default .)\n"
    "  --force              overwrite existing files\n"
    "  --p12                also write N.p12 (needs --p12-pass-file or $TWOWAY_P12_PASS_FILE)\n"
    "\n"
    "Examples:\n"
    "  twoway enroll https://ca.example.com:8443 --name alice --token 3f9c... \\\n"
    "      --ca-fingerprint 1a2b...\n"
    "  twoway enroll https://ca:8443/.well-known/est/server --name web1 --token-file t.txt \\\n"
    "      --ca ca.pem --out /etc/web1/tls\n";

static const char cmd[] = "enroll";

struct enroll_args {
    struct flags_p12 p12;
    const char *url, *name, *token, *token_file, *fingerprint, *ca_file, *out, *key_store;
    struct ca_key_flag key;
    struct pki_sans sans;
    bool force;
    int64_t wait; /* --wait: seconds to wait for approval; 0: do not wait */
};

#define AT(field) offsetof(struct enroll_args, field)

static const struct flag flags[] = {
    {.kind = FLAG_GROUP, .off = AT(p12), .group = flags_p12_group},
    {.kind = FLAG_GROUP, .off = 0, .group = flags_hw_group},
    {.name = "token", .kind = FLAG_STRING, .off = AT(token)},
    {.name = "token-file", .kind = FLAG_STRING, .off = AT(token_file)},
    {.name = "name", .kind = FLAG_STRING, .off = AT(name)},
    {.name = "key", .kind = FLAG_CALL, .off = AT(key), .call = ca_flag_key},
    {.name = "out", .kind = FLAG_STRING, .off = AT(out)},
    {.name = "key-store", .kind = FLAG_STRING, .off = AT(key_store)},
    {.name = "ca-fingerprint", .kind = FLAG_STRING, .off = AT(fingerprint)},
    {.name = "ca", .kind = FLAG_STRING, .off = AT(ca_file)},
    {.name = "san", .kind = FLAG_CALL, .off = AT(sans), .call = ca_flag_sans},
    {.name = "force", .kind = FLAG_BOOL, .off = AT(force)},
    {.name = "wait",
     .kind = FLAG_DURATION,
     .off = AT(wait),
     .min = 1,
     .max = 30 * 86400,
     .bad = "expected a duration up to 30d (90s, 15m, 12h)"},
    {.kind = FLAG_END},
};

static const struct flag_set flag_set = {.cmd = cmd,
                                         .usage = usage,
                                         .flags = flags,
                                         .nargs = 1,
                                         .nargs_error =
                                             "expected the CA server URL (https://HOST:PORT)"};

static int parse(int argc, char **argv, struct enroll_args *a)
{
    int rc = flags_parse(&flag_set, a, argc, argv, NULL);
    if (rc != FLAGS_GO_ON)
        return rc;
    a->url = argv[1];
    if (a->name == NULL)
        return cli_usage_error(cmd, "--name N is required");
    struct tw_err err;
    if (pki_name_check(a->name, &err) != 0)
        return cli_usage_error(cmd, "%s", err.msg);
    if (a->token != NULL && a->token_file != NULL)
        return cli_usage_error(cmd, "give the token with --token T or --token-file F, not both");
    if (a->token == NULL && a->token_file == NULL && a->wait == 0)
        return cli_usage_error(cmd, "give the token with --token T or --token-file F (or --wait "
                                    "DURATION for a CA that approves requests by hand)");
    if (a->token != NULL && a->token[0] == '\0')
        return cli_usage_error(cmd, "--token is empty");
    if ((a->fingerprint == NULL) == (a->ca_file == NULL))
        return cli_usage_error(cmd, "trust the CA with --ca-fingerprint SHA256 (printed by 'ca "
                                    "init' and 'ca token') or --ca FILE");
    if (a->p12.p12 && a->key_store != NULL)
        return cli_usage_error(cmd, "--p12 needs the private key, and a key made with "
                                    "--key-store never leaves its token or TPM");
    return flags_p12_check(cmd, &a->p12);
}

struct paths {
    char key[PATH_MAX], crt[PATH_MAX], chain[PATH_MAX], root[PATH_MAX], p12[PATH_MAX];
    /* Without a token: the request waiting for approval, kept until it is decided. */
    char pending_key[PATH_MAX], pending_csr[PATH_MAX];
};

static int plan(const struct enroll_args *a, struct paths *p, struct tw_err *err)
{
    const char *dir = a->out != NULL ? a->out : ".";
    TW_GUARD(fs_mkdir_private(dir, err));
    const struct {
        char *path;
        const char *base;
        const char *ext;
        int wanted;
    } files[] = {{p->key, a->name, ".key", 1},
                 {p->crt, a->name, ".crt", 1},
                 {p->chain, a->name, ".chain.pem", 1},
                 {p->root, "ca", ".pem", 1},
                 {p->p12, a->name, ".p12", a->p12.p12}};
    p->pending_key[0] = p->pending_csr[0] = '\0';
    int manual = a->token == NULL && a->token_file == NULL;
    if (manual &&
        (snprintf(p->pending_key, PATH_MAX, "%s/%s.pending.key", dir, a->name) >= PATH_MAX ||
         snprintf(p->pending_csr, PATH_MAX, "%s/%s.pending.csr", dir, a->name) >= PATH_MAX))
        return tw_err_set(err, TW_ERR_USAGE, "path too long: %s", dir);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        files[i].path[0] = '\0';
        if (!files[i].wanted)
            continue;
        TW_ENSURE(snprintf(files[i].path, PATH_MAX, "%s/%s%s", dir, files[i].base, files[i].ext) <
                      PATH_MAX,
                  err, TW_ERR_USAGE, "path too long: %s", dir);
        /* ca.pem may be shared by several enrollments into one directory. */
        TW_ENSURE(a->force || files[i].path == p->root || !fs_exists(files[i].path), err,
                  TW_ERR_EXISTS, "%s already exists (use --force to overwrite it)", files[i].path);
    }
    return 0;
}

/* Write ca.pem unless it already holds exactly this root. */
static int write_root(const char *path, X509 *root, int force, struct tw_err *err)
{
    size_t len = 0;
    TW_AUTO(charp) *pem = pki_cert_to_pem(root, &len, err);
    if (pem == NULL)
        return -1;
    char *old = NULL;
    size_t olen = 0;
    if (fs_exists(path) && fs_read_file(path, 1u << 20, &old, &olen, NULL) == 0) {
        int same = olen == len && memcmp(old, pem, len) == 0;
        free(old);
        if (same)
            return 0;
        TW_ENSURE(force, err, TW_ERR_EXISTS,
                  "%s already exists and holds another CA (use --force to overwrite it)", path);
    }
    return fs_write_atomic(path, pem, len, 0644, err);
}

/* Trust: the pinned fingerprint (bootstrap) or the given CA file; then *tls verifies the
 * server against it. */
static int trust(const struct enroll_args *a, const struct est_url *u, const struct paths *p,
                 struct tlsx_client_opts *tls, STACK_OF(X509) * *cacerts, struct tw_err *err)
{
    TW_AUTO(X509) *root = NULL;
    if (a->fingerprint != NULL) {
        TW_GUARD(est_client_bootstrap(u, a->fingerprint, &root, cacerts, err));
        TW_GUARD(write_root(p->root, root, a->force, err));
    }
    tlsx_client_opts_init(tls);
    tls->ca_file = a->ca_file != NULL ? a->ca_file : p->root;
    if (a->ca_file == NULL)
        return 0;
    if ((*cacerts = est_client_cacerts(tls, u, err)) == NULL)
        return -1;
    for (int i = 0; i < sk_X509_num(*cacerts) && root == NULL; i++) {
        X509 *c = sk_X509_value(*cacerts, i);
        if (X509_check_issued(c, c) == X509_V_OK && X509_up_ref(c) == 1)
            root = c;
    }
    TW_ENSURE(root != NULL, err, TW_ERR_PKI, "%s: cacerts holds no root certificate", u->origin);
    return write_root(p->root, root, a->force, err);
}

/* Certificate, then every CA certificate of cacerts below the root (the intermediate). */
static int write_outputs(const struct enroll_args *a, const struct paths *p, EVP_PKEY *key,
                         const char *kfile, size_t klen, X509 *cert, STACK_OF(X509) * cacerts,
                         struct tw_err *err)
{
    TW_GUARD(ca_write_output(p->key, kfile, klen, 0600, a->force, err));
    int rc;
    size_t clen = 0;
    TW_AUTO(charp) *cpem = pki_cert_to_pem(cert, &clen, err);
    if (cpem == NULL)
        return -1;
    TW_GUARD(ca_write_output(p->crt, cpem, clen, 0644, a->force, err));
    struct tw_buf chain;
    tw_buf_init(&chain, 1u << 20);
    rc = tw_buf_append(&chain, cpem, clen, err);
    for (int i = 0; rc == 0 && i < sk_X509_num(cacerts); i++) {
        X509 *c = sk_X509_value(cacerts, i);
        if (X509_check_issued(c, c) == X509_V_OK)
            continue;
        size_t len = 0;
        char *pem = pki_cert_to_pem(c, &len, err);
        rc = pem != NULL ? tw_buf_append(&chain, pem, len, err) : -1;
        free(pem);
    }
    if (rc == 0)
        rc = ca_write_output(p->chain, chain.data, chain.len, 0644, a->force, err);
    tw_buf_free(&chain);
    TW_GUARD(rc);
    if (!a->p12.p12)
        return 0;
    struct pki_secret pass;
    TW_GUARD(ca_p12_password(a->p12.pass_file, &pass, err));
    unsigned char *der = NULL;
    size_t dlen = 0;
    rc = pki_p12_make(key, cert, cacerts, a->name, &pass, a->p12.legacy, &der, &dlen, err);
    pki_secret_wipe(&pass);
    if (rc == 0)
        rc = ca_write_output(p->p12, der, dlen, 0600, a->force, err);
    OPENSSL_clear_free(der, dlen);
    return rc;
}

/* The issued certificate must chain to the CA root we trust (belt and braces: the TLS session
 * was already verified), so a confused server cannot hand out something unusable. */
static int verify_issued(X509 *cert, STACK_OF(X509) * cacerts, const char *origin,
                         struct tw_err *err)
{
    TW_AUTO(X509_STORE) *store = X509_STORE_new();
    TW_AUTO(X509_STORE_CTX) *vctx = X509_STORE_CTX_new();
    TW_AUTO(X509_STACK) *untrusted = sk_X509_new_null();
    TW_ENSURE(store != NULL && vctx != NULL && untrusted != NULL, err, TW_ERR_INTERNAL,
              "out of memory");
    for (int i = 0; i < sk_X509_num(cacerts); i++) {
        X509 *c = sk_X509_value(cacerts, i);
        int ok = X509_check_issued(c, c) == X509_V_OK ? X509_STORE_add_cert(store, c) == 1
                                                      : sk_X509_push(untrusted, c) > 0;
        TW_ENSURE(ok, err, TW_ERR_INTERNAL, "out of memory");
        if (X509_check_issued(c, c) != X509_V_OK)
            X509_up_ref(c);
    }
    TW_GUARD_OSSL(X509_STORE_CTX_init(vctx, store, cert, untrusted), err, TW_ERR_INTERNAL,
                  "cannot verify the new certificate");
    int ok = X509_verify_cert(vctx);
    ERR_clear_error();
    TW_ENSURE(ok == 1, err, TW_ERR_VERIFY,
              "%s returned a certificate that does not chain to the CA: %s", origin,
              X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx)));
    return 0;
}

static void print_result(const struct paths *p, X509 *cert, const char *name)
{
    char serial[STORE_SERIAL_MAX] = "?", sha[65] = "?", when[32] = "?";
    int64_t na = 0;
    if (pki_cert_serial_hex(cert, serial, sizeof(serial), NULL) != 0 ||
        pki_cert_fingerprint(cert, sha, NULL, NULL) != 0 ||
        pki_time_to_unix(X509_get0_notAfter(cert), &na, NULL) != 0)
        fprintf(stderr, "twoway: warning: cannot describe the certificate\n");
    printf("Enrolled %s\n", name);
    printf("serial: %s\n", serial);
    printf("not_after: %s\n", clock_iso8601((time_t)na, when, sizeof(when)));
    printf("sha256: %s\n", sha);
    printf("cert: %s\nkey: %s\nchain: %s\nca: %s\n", p->crt, p->key, p->chain, p->root);
    if (p->p12[0] != '\0')
        printf("p12: %s\n", p->p12);
}

/* Send the CSR; with --wait, send the very same CSR again (the server knows it by its hash)
 * when the server says when (Retry-After on 202 "waiting for approval", 503, 429) until it
 * answers with a certificate or a refusal, or --wait is used up (RFC 7030 §4.2.3). */
static int post_until_done(const struct enroll_args *a, const struct tlsx_client_opts *tls,
                           const struct est_url *u,
                           const char *token, const unsigned char *csr, size_t csr_len,
                           X509 **cert, struct tw_err *err)
{
    const char *user = token != NULL ? a->name : NULL;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        long retry = -1;
        if (est_client_enroll(tls, u, 0, user, token, csr, csr_len, cert, &retry, err) == 0)
            return 0;
        if (a->wait == 0 || retry < 0)
            return -1;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t left = a->wait - (int64_t)(now.tv_sec - start.tv_sec);
        if (left <= 0) {
            char last[TW_ERR_MSG_MAX];
            snprintf(last, sizeof(last), "%s", err->msg);
            return tw_err_set(err, TW_ERR_IO, "no decision within --wait %llds (%s)",
                              (long long)a->wait, last);
        }
        int64_t delay = retry < 1 ? 1 : retry;
        if (delay > left)
            delay = left;
        fprintf(stderr, "twoway enroll: %s; asking again in %lld s\n", err->msg,
                (long long)delay);
        struct timespec step = {(time_t)delay, 0};
        while (nanosleep(&step, &step) != 0)
            ;
    }
}

/* The key, its key file (*kfile: PEM, or what names a key in a token or TPM) and the CSR to
 * send. Without a token they are kept in DIR/N.pending.key (0600) and DIR/N.pending.csr until
 * the request is decided: the CA knows a request by its CSR's hash, so a later run (after
 * --wait ran out, after a reboot) asks about the same request instead of queueing a new one. */
static int request_make(const struct enroll_args *a, const struct paths *p, EVP_PKEY **key,
                        char **kfile, size_t *klen, unsigned char **csr, size_t *csr_len,
                        struct tw_err *err)
{
    if (p->pending_key[0] != '\0' && fs_exists(p->pending_key) && fs_exists(p->pending_csr)) {
        if ((*key = pki_key_load(p->pending_key, NULL, err)) == NULL)
            return -1;
        TW_GUARD(fs_read_file(p->pending_key, PKI_CSR_MAX, kfile, klen, err));
        TW_AUTO(charp) *data = NULL;
        size_t len = 0;
        TW_GUARD(fs_read_file(p->pending_csr, PKI_CSR_MAX, &data, &len, err));
        struct pki_csr *parsed = pki_csr_parse(data, len, p->pending_csr, err);
        if (parsed == NULL)
            return -1;
        int same = EVP_PKEY_eq(pki_csr_pubkey(parsed), *key) == 1;
        pki_csr_free(parsed);
        TW_ENSURE(same, err, TW_ERR_PKI, "%s is not for the key in %s (remove both to start over)",
                  p->pending_csr, p->pending_key);
        TW_ENSURE((*csr = OPENSSL_memdup(data, len)) != NULL, err, TW_ERR_INTERNAL,
                  "out of memory");
        *csr_len = len;
        fprintf(stderr, "twoway enroll: asking again about the request in %s\n", p->pending_csr);
        return 0;
    }
    if ((*key = ca_key_make(a->key_store, a->name, a->key.type, kfile, klen, err)) == NULL)
        return -1;
    TW_GUARD(pki_csr_make(*key, a->name, &a->sans, NULL, csr, csr_len, err));
    if (p->pending_key[0] == '\0')
        return 0;
    TW_GUARD(fs_write_atomic(p->pending_key, *kfile, *klen, 0600, err));
    return fs_write_atomic(p->pending_csr, *csr, *csr_len, 0644, err);
}

static int enroll(const struct enroll_args *a, const char *token, struct tw_err *err)
{
    struct est_url u;
    struct paths p;
    TW_GUARD(est_url_parse(a->url, &u, err));
    TW_GUARD(plan(a, &p, err));
    TW_AUTO(EVP_PKEY) *key = NULL;
    unsigned char *csr = NULL;
    size_t csr_len = 0;
    char *kfile = NULL;
    size_t klen = 0;
    if (request_make(a, &p, &key, &kfile, &klen, &csr, &csr_len, err) != 0) {
        OPENSSL_free(csr);
        pki_pem_free(kfile, klen);
        return -1;
    }
    STACK_OF(X509) *cacerts = NULL;
    struct tlsx_client_opts tls;
    X509 *cert = NULL;
    int rc = trust(a, &u, &p, &tls, &cacerts, err);
    if (rc == 0)
        rc = post_until_done(a, &tls, &u, token, csr, csr_len, &cert, err);
    if (rc == 0 && !pki_key_matches_cert(key, cert))
        rc = tw_err_set(err, TW_ERR_PKI, "%s returned a certificate for another key", u.origin);
    if (rc == 0)
        rc = verify_issued(cert, cacerts, u.origin, err);
    if (rc == 0)
        rc = write_outputs(a, &p, key, kfile, klen, cert, cacerts, err);
    if (rc == 0)
        print_result(&p, cert, a->name);
    /* Decided (issued, or refused with 403): a new run starts a new request. */
    if (p.pending_key[0] != '\0' && (rc == 0 || err->code == TW_ERR_POLICY)) {
        (void)unlink(p.pending_key);
        (void)unlink(p.pending_csr);
    }
    X509_free(cert);
    sk_X509_pop_free(cacerts, X509_free);
    OPENSSL_free(csr);
    pki_pem_free(kfile, klen);
    return rc;
}

int cli_enroll(int argc, char **argv)
{
    struct enroll_args a;
    memset(&a, 0, sizeof(a));
    a.key.type = PKI_KEY_EC_P256;
    int rc = parse(argc, argv, &a);
    if (rc != FLAGS_GO_ON)
        return rc;
    struct tw_err err;
    tw_err_clear(&err);
    struct pki_secret token;
    memset(&token, 0, sizeof(token));
    rc = 0;
    if (a.token_file != NULL)
        rc = pki_secret_read_file(a.token_file, &token, &err);
    else if (a.token != NULL)
        rc = pki_secret_set(&token, a.token, &err);
    if (rc == 0)
        rc = enroll(&a, a.token != NULL || a.token_file != NULL ? token.data : NULL, &err);
    pki_secret_wipe(&token);
    if (rc != 0)
        return err.code == TW_ERR_USAGE ? cli_usage_error(cmd, "%s", err.msg) : cli_fail(&err);
    return 0;
}
