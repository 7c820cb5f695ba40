/* Fuzzes what a TLS client and a CRL source can send to tlsx: the first byte picks the target.
 *   'H' + bytes: a ClientHello (and whatever follows) fed to a server ctx with an SNI table,
 *                CRLs, an allow-policy and ticket keys (SNI parsing, ticket decryption, verify).
 *   'C' + bytes: a CRL (PEM or DER) added to a CRL set, then looked up.
 *   'P' + lines: allow rules parsed and checked against a fixed identity, then rendered. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <openssl/err.h>

#include "../tests/unit/tlsx/testpki.h"
#include "tlsx/tlsx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct {
    struct tp_cert root, server, client;
    struct tlsx_identity *id;
    struct tlsx_crl_set *crls;
    struct tlsx_policy *policy;
    struct tlsx_ticket_keys *keys;
    struct tlsx_sni_table *sni;
    SSL_CTX *a, *b;
} f;

static SSL_CTX *server(const char *name)
{
    struct tlsx_server_opts o;
    tlsx_server_opts_init(&o);
    o.name = name;
    o.cert = f.server.cert;
    o.key = f.server.key;
    o.client_ca_file = tp_write_cert("ca.pem", f.root.cert);
    o.crls = f.crls;
    o.policy = f.policy;
    o.ticket_keys = f.keys;
    struct tw_err err;
    SSL_CTX *ctx = tlsx_server_ctx_new(&o, &err);
    if (ctx == NULL)
        tp_die(err.msg);
    return ctx;
}

/* Built once per process; freed by the process exit (the replay driver and libFuzzer both
 * run many inputs against it). */
static void init(void)
{
    struct tw_err err;
    tp_dir_init();
    f.root = tp_make("Fuzz Root", NULL, &(struct tp_opts){.ca = 1});
    f.server = tp_make("server", &f.root, &(struct tp_opts){.eku = "serverAuth"});
    f.client = tp_make("client", &f.root,
                       &(struct tp_opts){.eku = "clientAuth", .sans = "DNS:c.example,URI:x:y"});
    f.id = tlsx_identity_new(f.client.cert, &err);
    f.crls = tlsx_crl_set_new(&err);
    long serial = 7;
    X509_CRL *crl = tp_crl(&f.root, &serial, 1, 3600);
    unsigned char *der = NULL;
    int len = i2d_X509_CRL(crl, &der);
    if (tlsx_crl_set_add_mem(f.crls, der, (size_t)len, "fuzz", &err) != 0)
        tp_die(err.msg);
    OPENSSL_free(der);
    X509_CRL_free(crl);
    f.policy = tlsx_policy_new(&err);
    if (tlsx_policy_add(f.policy, "dns:*.example", &err) != 0)
        tp_die(err.msg);
    f.keys = tlsx_ticket_keys_new(0, &err);
    f.a = server("a");
    f.b = server("b");
    f.sni = tlsx_sni_table_new(&err);
    if (tlsx_sni_table_add(f.sni, "a.example", f.a, &err) != 0 ||
        tlsx_sni_table_add(f.sni, "*.b.example", f.b, &err) != 0 ||
        tlsx_sni_table_install(f.sni, f.a, &err) != 0)
        tp_die(err.msg);
    tp_dir_cleanup();
}

static void hello(const uint8_t *data, size_t size)
{
    SSL *s = SSL_new(f.a);
    BIO *sb = NULL, *cb = NULL;
    if (s == NULL || BIO_new_bio_pair(&sb, 0, &cb, 0) != 1) {
        SSL_free(s);
        return;
    }
    SSL_set_bio(s, sb, sb);
    if (tlsx_ssl_watch_alerts(s, NULL) == 0 && size > 0 && size < 65536 &&
        BIO_write(cb, data, (int)size) == (int)size) {
        BIO_shutdown_wr(cb);
        if (SSL_accept(s) <= 0) {
            char detail[160];
            (void)tlsx_handshake_reason(s, detail, sizeof(detail));
        }
    }
    SSL_free(s);
    BIO_free(cb);
}

static void crl(const uint8_t *data, size_t size)
{
    struct tw_err err;
    struct tlsx_crl_set *set = tlsx_crl_set_new(&err);
    if (set == NULL)
        return;
    if (size > 0 && tlsx_crl_set_add_mem(set, data, size, "fuzz", &err) == 0) {
        (void)tlsx_crl_set_cert_is_revoked(set, f.client.cert);
        (void)tlsx_crl_set_next_update(set);
        (void)tlsx_crl_set_expired(set, 0);
    }
    tlsx_crl_set_free(set);
}

static void policy(const uint8_t *data, size_t size)
{
    struct tw_err err;
    struct tlsx_policy *p = tlsx_policy_new(&err);
    if (p == NULL)
        return;
    char line[2048];
    size_t start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i < size && data[i] != '\n')
            continue;
        size_t n = i - start < sizeof(line) - 1 ? i - start : sizeof(line) - 1;
        memcpy(line, data + start, n);
        line[n] = '\0';
        if (tlsx_policy_add(p, line, &err) != 0)
            tw_err_clear(&err);
        start = i + 1;
    }
    (void)tlsx_policy_check(p, f.id, NULL);
    char out[256];
    tlsx_policy_render(p, out, sizeof(out));
    tlsx_policy_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready = 0;
    if (!ready) {
        init();
        ready = 1;
    }
    if (size == 0)
        return 0;
    switch (data[0]) {
    case 'H':
        hello(data + 1, size - 1);
        break;
    case 'C':
        crl(data + 1, size - 1);
        break;
    case 'P':
        policy(data + 1, size - 1);
        break;
    default:
        break;
    }
    ERR_clear_error();
    return 0;
}
