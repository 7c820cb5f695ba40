/* Throwaway PKI and in-memory handshakes for tlsx unit tests. Header-only (static functions):
 * each test_*.c is its own executable. Keys are P-256 (fast); everything is made with OpenSSL
 * APIs in-process. */
#ifndef TW_TESTS_TLSX_TESTPKI_H
#define TW_TESTS_TLSX_TESTPKI_H

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tlsx/tlsx.h"

/* Not every test uses every helper. */
#define TP_FN static __attribute__((unused))

struct tp_cert {
    X509 *cert;
    EVP_PKEY *key;
};

struct tp_opts {
    const char *o;
    const char *ou;
    const char *sans; /* "DNS:a.example,URI:spiffe://x/y,email:a@b" */
    const char *eku;  /* "clientAuth", "serverAuth", "clientAuth,serverAuth"; NULL: none */
    int ca;           /* basicConstraints CA:TRUE */
    long from;        /* notBefore offset from now, seconds */
    long to;          /* notAfter offset from now; 0: one day */
    long serial;      /* 0: random-ish counter */
};

TP_FN void tp_die(const char *what)
{
    fprintf(stderr, "testpki: %s failed\n", what);
    ERR_print_errors_fp(stderr);
    abort();
}

TP_FN EVP_PKEY *tp_key(void)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (k == NULL)
        tp_die("keygen");
    return k;
}

TP_FN void tp_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer != NULL ? issuer : cert, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL || X509_add_ext(cert, ext, -1) != 1)
        tp_die(value);
    X509_EXTENSION_free(ext);
}

/* A certificate for cn signed by issuer (NULL: self-signed). */
TP_FN struct tp_cert tp_make(const char *cn, const struct tp_cert *issuer, const struct tp_opts *o)
{
    static long counter = 0x1000;
    struct tp_opts none = {0};
    if (o == NULL)
        o = &none;
    struct tp_cert c = {X509_new(), tp_key()};
    X509 *x = c.cert;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), o->serial != 0 ? o->serial : ++counter);
    X509_NAME *name = X509_get_subject_name(x);
    if (o->o != NULL)
        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)o->o, -1, -1,
                                   0);
    if (o->ou != NULL)
        X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_UTF8, (const unsigned char *)o->ou, -1, -1,
                                   0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer->cert) : name);
    X509_gmtime_adj(X509_getm_notBefore(x), o->from != 0 ? o->from : -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), o->to != 0 ? o->to : 86400);
    X509_set_pubkey(x, c.key);
    X509 *icert = issuer != NULL ? issuer->cert : x;
    tp_ext(x, icert, NID_subject_key_identifier, "hash");
    tp_ext(x, icert, NID_authority_key_identifier, "keyid:always");
    if (o->ca) {
        tp_ext(x, icert, NID_basic_constraints, "critical,CA:TRUE");
        tp_ext(x, icert, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        tp_ext(x, icert, NID_basic_constraints, "critical,CA:FALSE");
        tp_ext(x, icert, NID_key_usage, "critical,digitalSignature");
    }
    if (o->eku != NULL)
        tp_ext(x, icert, NID_ext_key_usage, o->eku);
    if (o->sans != NULL)
        tp_ext(x, icert, NID_subject_alt_name, o->sans);
    if (X509_sign(x, issuer != NULL ? issuer->key : c.key, EVP_sha256()) <= 0)
        tp_die("sign");
    return c;
}

TP_FN void tp_free(struct tp_cert *c)
{
    X509_free(c->cert);
    EVP_PKEY_free(c->key);
    c->cert = NULL;
    c->key = NULL;
}

/* A CRL from issuer revoking the given serials; next_update seconds from now (may be < 0). */
TP_FN X509_CRL *tp_crl(const struct tp_cert *issuer, const long *serials, size_t n,
                       long next_update)
{
    X509_CRL *crl = X509_CRL_new();
    X509_CRL_set_version(crl, 1);
    X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer->cert));
    ASN1_TIME *t = ASN1_TIME_new();
    X509_gmtime_adj(t, next_update < 0 ? next_update - 3600 : -60);
    X509_CRL_set1_lastUpdate(crl, t);
    X509_gmtime_adj(t, next_update);
    X509_CRL_set1_nextUpdate(crl, t);
    for (size_t i = 0; i < n; i++) {
        X509_REVOKED *r = X509_REVOKED_new();
        ASN1_INTEGER *s = ASN1_INTEGER_new();
        ASN1_INTEGER_set(s, serials[i]);
        X509_REVOKED_set_serialNumber(r, s);
        X509_gmtime_adj(t, -120);
        X509_REVOKED_set_revocationDate(r, t);
        X509_CRL_add0_revoked(crl, r);
        ASN1_INTEGER_free(s);
    }
    ASN1_TIME_free(t);
    X509_CRL_sort(crl);
    if (X509_CRL_sign(crl, issuer->key, EVP_sha256()) <= 0)
        tp_die("crl sign");
    return crl;
}

TP_FN long tp_serial(const struct tp_cert *c)
{
    return ASN1_INTEGER_get(X509_get0_serialNumber(c->cert));
}

/* A private temp dir; paths inside via tp_path. */
static char tp_dir[256];

TP_FN void tp_dir_init(void)
{
    snprintf(tp_dir, sizeof(tp_dir), "/tmp/tlsx-test-XXXXXX");
    if (mkdtemp(tp_dir) == NULL)
        tp_die("mkdtemp");
}

TP_FN int tp_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

TP_FN void tp_dir_cleanup(void)
{
    if (strncmp(tp_dir, "/tmp/tlsx-test-", 15) == 0)
        nftw(tp_dir, tp_rm, 8, FTW_DEPTH | FTW_PHYS);
}

TP_FN const char *tp_path(const char *name)
{
    static char paths[16][PATH_MAX];
    static int next = 0;
    char *p = paths[next++ % 16];
    snprintf(p, PATH_MAX, "%s/%s", tp_dir, name);
    return p;
}

/* Write certs (NULL-terminated) as one PEM bundle; returns the path. */
TP_FN const char *tp_write_certs(const char *name, X509 *const *certs)
{
    const char *path = tp_path(name);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        tp_die(path);
    for (; *certs != NULL; certs++)
        PEM_write_X509(f, *certs);
    fclose(f);
    return path;
}

TP_FN const char *tp_write_cert(const char *name, X509 *cert)
{
    X509 *certs[] = {cert, NULL};
    return tp_write_certs(name, certs);
}

TP_FN const char *tp_write_key(const char *name, EVP_PKEY *key, mode_t mode)
{
    const char *path = tp_path(name);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        tp_die(path);
    PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    chmod(path, mode);
    return path;
}

TP_FN const char *tp_write_crl(const char *name, X509_CRL *crl, int der)
{
    const char *path = tp_path(name);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        tp_die(path);
    if (der)
        i2d_X509_CRL_fp(f, crl);
    else
        PEM_write_X509_CRL(f, crl);
    fclose(f);
    return path;
}

/* What the last tp_handshake saw: the server's failure reason (TLSX_R_OK when it completed)
 * with its detail, and the last alert the client received (-1 if none). */
static enum tlsx_reason tp_server_reason;
static char tp_server_detail[200];
static int tp_client_alert;
/* When set, tp_handshake calls tlsx_client_ssl_setup with it (SNI + name check). */
static const char *tp_verify_name;

/* An in-memory handshake between two fresh SSLs over a BIO pair, then one byte of data each
 * way (so TLS 1.3 tickets and post-handshake alerts reach the client). Returns 1 when both
 * sides completed. s_out and c_out (may be NULL) receive the SSLs; the caller frees them. */
TP_FN int tp_handshake(SSL_CTX *sctx, SSL_CTX *cctx, SSL_SESSION *resume, const char *sni,
                       SSL **s_out, SSL **c_out)
{
    SSL *s = SSL_new(sctx), *c = SSL_new(cctx);
    BIO *sb = NULL, *cb = NULL;
    if (s == NULL || c == NULL || BIO_new_bio_pair(&sb, 0, &cb, 0) != 1)
        tp_die("ssl setup");
    SSL_set_bio(s, sb, sb);
    SSL_set_bio(c, cb, cb);
    SSL_set_accept_state(s);
    SSL_set_connect_state(c);
    if (sni != NULL)
        SSL_set_tlsext_host_name(c, sni);
    if (tp_verify_name != NULL && tlsx_client_ssl_setup(c, tp_verify_name, NULL) != 0)
        tp_die("client ssl setup");
    if (resume != NULL) {
        if (SSL_set_session(c, resume) != 1)
            tp_die("set session");
    }
    if (tlsx_ssl_watch_alerts(c, NULL) != 0 || tlsx_ssl_watch_alerts(s, NULL) != 0)
        tp_die("watch alerts");
    tp_server_reason = TLSX_R_OK;
    tp_server_detail[0] = '\0';
    int sdone = 0, cdone = 0, sfail = 0, cfail = 0;
    for (int i = 0; i < 200 && !(sdone || sfail); i++) {
        if (!cdone && !cfail) {
            int r = SSL_do_handshake(c);
            if (r == 1)
                cdone = 1;
            else if (SSL_get_error(c, r) != SSL_ERROR_WANT_READ)
                cfail = 1;
        }
        ERR_clear_error(); /* so a server failure leaves only its own errors queued */
        int r = SSL_do_handshake(s);
        if (r == 1) {
            sdone = 1;
        } else if (SSL_get_error(s, r) != SSL_ERROR_WANT_READ) {
            sfail = 1;
            tp_server_reason = tlsx_handshake_reason(s, tp_server_detail, sizeof(tp_server_detail));
        }
    }
    int ok = 0;
    if (sdone) {
        /* Let the client finish, read tickets and the server's byte. */
        char byte = 's';
        if (SSL_write(s, &byte, 1) == 1) {
            for (int i = 0; i < 50 && !cdone && !cfail; i++) {
                int r = SSL_do_handshake(c);
                if (r == 1)
                    cdone = 1;
                else if (SSL_get_error(c, r) != SSL_ERROR_WANT_READ)
                    cfail = 1;
            }
            char got = 0;
            ok = cdone && SSL_read(c, &got, 1) == 1 && got == 's';
            if (ok) {
                byte = 'c';
                ok = SSL_write(c, &byte, 1) == 1 && SSL_read(s, &got, 1) == 1 && got == 'c';
            }
        }
    } else if (!cdone && !cfail) {
        SSL_do_handshake(c); /* TLS 1.2: read the server's alert */
    } else if (cdone) {
        /* TLS 1.3: the client finished first; its read surfaces the server's alert. */
        char got;
        SSL_read(c, &got, 1);
    }
    /* A client SSL freed without close_notify marks its session not resumable. */
    if (ok)
        SSL_shutdown(c);
    ERR_clear_error();
    tp_client_alert = tlsx_ssl_alert_received(c);
    if (s_out != NULL)
        *s_out = s;
    else
        SSL_free(s);
    if (c_out != NULL)
        *c_out = c;
    else
        SSL_free(c);
    return ok;
}

#endif
