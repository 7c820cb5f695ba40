/* doctor's tlsx half: certificate summaries, the offline file check (every fact it records
 * and every error it returns), names of signature algorithms and alerts, and a probe against
 * nothing listening / an unresolvable host. Real handshakes are in tests/integration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "tlsx/testpki.h"

static struct tp_cert root, inter, leaf, srv, noeku, expired, future, stranger_root, stranger;
static const char *root_pem, *chain_pem, *leaf_pem, *leaf_chain_pem, *leaf_key, *srv_pem,
    *noeku_pem, *expired_pem, *future_pem, *stranger_pem, *other_key, *crl_pem;

static int setup(void **state)
{
    (void)state;
    tp_dir_init();
    struct tp_opts ca = {.ca = 1};
    root = tp_make("Root", NULL, &ca);
    inter = tp_make("Inter", &root, &ca);
    leaf =
        tp_make("alice", &inter,
                &(struct tp_opts){.eku = "clientAuth",
                                  .sans = "DNS:a.example,IP:127.0.0.1,URI:spiffe://x/a,email:a@b"});
    srv = tp_make("srv", &inter, &(struct tp_opts){.eku = "serverAuth"});
    noeku = tp_make("noeku", &inter, NULL);
    expired =
        tp_make("old", &inter, &(struct tp_opts){.eku = "clientAuth", .from = -7200, .to = -3600});
    future =
        tp_make("new", &inter, &(struct tp_opts){.eku = "clientAuth", .from = 3600, .to = 7200});
    stranger_root = tp_make("Other Root", NULL, &ca);
    stranger = tp_make("stranger", &stranger_root, &(struct tp_opts){.eku = "clientAuth"});
    root_pem = tp_write_cert("root.pem", root.cert);
    X509 *chain[] = {inter.cert, root.cert, NULL};
    chain_pem = tp_write_certs("chain.pem", chain);
    leaf_pem = tp_write_cert("leaf.pem", leaf.cert);
    X509 *lc[] = {leaf.cert, inter.cert, NULL};
    leaf_chain_pem = tp_write_certs("leaf-chain.pem", lc);
    leaf_key = tp_write_key("leaf.key", leaf.key, 0600);
    other_key = tp_write_key("other.key", srv.key, 0600);
    srv_pem = tp_write_cert("srv.pem", srv.cert);
    noeku_pem = tp_write_cert("noeku.pem", noeku.cert);
    expired_pem = tp_write_cert("expired.pem", expired.cert);
    future_pem = tp_write_cert("future.pem", future.cert);
    stranger_pem = tp_write_cert("stranger.pem", stranger.cert);
    long serial = tp_serial(&leaf);
    X509_CRL *crl = tp_crl(&inter, &serial, 1, 86400);
    crl_pem = tp_write_crl("crl.pem", crl, 0);
    X509_CRL_free(crl);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    struct tp_cert *all[] = {&root,    &inter,  &leaf,          &srv,     &noeku,
                             &expired, &future, &stranger_root, &stranger};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        tp_free(all[i]);
    tp_dir_cleanup();
    return 0;
}

static int check(const char *cert, const char *key, const char *ca, const char *crl,
                 enum tlsx_cert_role role, struct tlsx_file_check *r, struct tw_err *err)
{
    struct tlsx_file_check_opts o = {
        .cert_file = cert, .key_file = key, .ca_file = ca, .crl_file = crl, .role = role};
    tw_err_clear(err);
    return tlsx_file_check(&o, r, err);
}

static void test_cert_info(void **state)
{
    (void)state;
    struct tlsx_cert_info i;
    tlsx_cert_info_fill(leaf.cert, &i);
    assert_string_equal(i.subject, "CN=alice");
    assert_string_equal(i.issuer, "CN=Inter");
    assert_string_equal(i.sans, "dns:a.example, ip:127.0.0.1, uri:spiffe://x/a, email:a@b");
    assert_true(i.has_eku && i.eku_client && !i.eku_server);
    assert_false(i.self_signed || i.is_ca);
    assert_true(i.not_after > i.not_before);
    tlsx_cert_info_fill(root.cert, &i);
    assert_true(i.self_signed && i.is_ca);
    tlsx_cert_info_fill(NULL, &i);
    assert_string_equal(i.subject, "");
}

static void test_file_ok(void **state)
{
    (void)state;
    struct tlsx_file_check r;
    struct tw_err err;
    assert_int_equal(check(leaf_chain_pem, leaf_key, root_pem, NULL, TLSX_ROLE_AUTO, &r, &err), 0);
    assert_int_equal(r.role, TLSX_ROLE_CLIENT);
    assert_true(r.key_checked && r.key_match && r.eku_ok);
    assert_int_equal(r.validity, TLSX_R_OK);
    assert_true(r.chain_checked);
    assert_int_equal(r.chain_err, X509_V_OK);
    assert_false(r.missing_intermediate);
    assert_int_equal(r.nchain, 1);
    assert_int_equal(r.npath, 2);
    assert_string_equal(r.path[1].subject, "CN=Root");
}

static void test_file_facts(void **state)
{
    (void)state;
    struct tlsx_file_check r;
    struct tw_err err;
    /* Leaf alone, intermediate only in --ca: verifies, flagged. */
    assert_int_equal(check(leaf_pem, NULL, chain_pem, NULL, TLSX_ROLE_AUTO, &r, &err), 0);
    assert_int_equal(r.chain_err, X509_V_OK);
    assert_true(r.missing_intermediate);
    assert_string_equal(r.intermediate_subject, "CN=Inter");
    assert_string_equal(r.intermediate_issuer, "CN=Root");
    assert_false(r.key_checked);
    /* Leaf alone against the root: the issuer is nowhere. */
    assert_int_equal(check(leaf_pem, NULL, root_pem, NULL, TLSX_ROLE_AUTO, &r, &err), 0);
    assert_int_equal(r.chain_err, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
    /* Another PKI. */
    assert_int_equal(check(stranger_pem, NULL, chain_pem, NULL, TLSX_ROLE_AUTO, &r, &err), 0);
    assert_int_not_equal(r.chain_err, X509_V_OK);
    /* Key mismatch. */
    assert_int_equal(check(leaf_pem, other_key, NULL, NULL, TLSX_ROLE_AUTO, &r, &err), 0);
    assert_true(r.key_checked && !r.key_match);
    assert_false(r.chain_checked);
    /* Roles and EKU. */
    assert_int_equal(check(srv_pem, NULL, NULL, NULL, TLSX_ROLE_AUTO, &r, &err), 0);
    assert_int_equal(r.role, TLSX_ROLE_SERVER);
    assert_true(r.eku_ok);
    assert_int_equal(check(srv_pem, NULL, NULL, NULL, TLSX_ROLE_CLIENT, &r, &err), 0);
    assert_false(r.eku_ok);
    assert_int_equal(check(noeku_pem, NULL, NULL, NULL, TLSX_ROLE_AUTO, &r, &err), 0);
    assert_false(r.eku_ok);
    /* Validity. */
    assert_int_equal(check(expired_pem, NULL, chain_pem, NULL, TLSX_ROLE_AUTO, &r, &err), 0);
    assert_int_equal(r.validity, TLSX_R_EXPIRED);
    assert_string_equal(r.validity_subject, "CN=old");
    assert_int_equal(r.chain_err, X509_V_OK); /* time is reported separately */
    assert_int_equal(check(future_pem, NULL, NULL, NULL, TLSX_ROLE_AUTO, &r, &err), 0);
    assert_int_equal(r.validity, TLSX_R_NOT_YET_VALID);
    /* Revoked by the CRL. */
    assert_int_equal(check(leaf_chain_pem, NULL, chain_pem, crl_pem, TLSX_ROLE_AUTO, &r, &err), 0);
    assert_int_equal(r.chain_err, X509_V_ERR_CERT_REVOKED);
}

static void test_file_errors(void **state)
{
    (void)state;
    struct tlsx_file_check r;
    struct tw_err err;
    assert_int_equal(check("/nonexistent.pem", NULL, NULL, NULL, 0, &r, &err), -1);
    assert_int_equal(err.code, TW_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent.pem"));
    assert_int_equal(check(leaf_key, NULL, NULL, NULL, 0, &r, &err), -1);
    assert_int_equal(err.code, TW_ERR_CONFIG); /* a key file holds no certificate */
    assert_int_equal(check(leaf_pem, "/nonexistent.key", NULL, NULL, 0, &r, &err), -1);
    assert_int_equal(err.code, TW_ERR_IO);
    const char *loose = tp_write_key("loose.key", leaf.key, 0644);
    assert_int_equal(check(leaf_pem, loose, NULL, NULL, 0, &r, &err), -1);
    assert_int_equal(err.code, TW_ERR_IO);
    assert_int_equal(check(leaf_pem, NULL, "/nonexistent-ca.pem", NULL, 0, &r, &err), -1);
    assert_int_equal(err.code, TW_ERR_IO);
    assert_int_equal(check(leaf_pem, NULL, chain_pem, leaf_pem, 0, &r, &err), -1);
    assert_int_equal(err.code, TW_ERR_CONFIG); /* not a CRL */
}

static void test_names(void **state)
{
    (void)state;
    char buf[32];
    assert_string_equal(tlsx_sigalg_name(0x0403, buf, sizeof(buf)), "ecdsa_secp256r1_sha256");
    assert_string_equal(tlsx_sigalg_name(0x0807, buf, sizeof(buf)), "ed25519");
    assert_string_equal(tlsx_sigalg_name(0xfefe, buf, sizeof(buf)), "0xfefe");
    assert_string_equal(tlsx_alert_name(116), "certificate required");
    assert_string_equal(tlsx_alert_name(SSL_AD_UNKNOWN_CA), "unknown CA");
}

static void test_probe_nothing_listening(void **state)
{
    (void)state;
    /* A port that was free a moment ago. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    close(s);
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)ntohs(a.sin_port));
    struct tlsx_probe_opts o = {
        .host = "127.0.0.1", .port = port, .ca_file = chain_pem, .timeout_ms = 2000};
    struct tlsx_probe *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    struct tw_err err;
    tw_err_clear(&err);
    assert_int_equal(tlsx_probe_run(&o, p, &err), 0);
    assert_false(p->tcp_ok);
    assert_int_equal(p->connect_errno, ECONNREFUSED);
    assert_false(p->accepted);
    /* Setup failures are errors, not outcomes. */
    o.host = "no-such-host.invalid";
    assert_int_equal(tlsx_probe_run(&o, p, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
    o.host = "127.0.0.1";
    o.ca_file = "/nonexistent-ca.pem";
    assert_int_equal(tlsx_probe_run(&o, p, &err), -1);
    assert_int_equal(err.code, TW_ERR_IO);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cert_info),  cmocka_unit_test(test_file_ok),
        cmocka_unit_test(test_file_facts), cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_names),      cmocka_unit_test(test_probe_nothing_listening),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
