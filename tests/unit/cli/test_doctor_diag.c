/* twoway doctor's diagnosis table: each row is reachable from the facts it names, a precise
 * finding silences a vaguer one, and only fatal findings fail the run. The integration tests
 * drive the same rows with real servers; here the facts are built by hand, including the
 * ones hard to provoke on loopback (timeouts, unreachable hosts, decrypt errors). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "cli/doctor.h"

struct fixture {
    struct tlsx_probe p;
    struct tlsx_file_check mine;
    struct doctor_facts f;
    struct doctor_diagnosis d;
};

/* A probe of a healthy two-way handshake, to be spoiled by each test. */
static struct fixture *healthy(void)
{
    struct fixture *x = calloc(1, sizeof(*x));
    assert_non_null(x);
    struct tlsx_probe *p = &x->p;
    snprintf(p->address, sizeof(p->address), "127.0.0.1:8443");
    snprintf(p->server_name, sizeof(p->server_name), "localhost");
    p->tcp_ok = p->hello_sent = p->server_hello = p->server_cert_seen = true;
    p->nserver_chain = 1;
    snprintf(p->server_chain[0].subject, TLSX_PROBE_NAME_MAX, "CN=localhost");
    snprintf(p->server_chain[0].issuer, TLSX_PROBE_NAME_MAX, "CN=Inter");
    snprintf(p->server_chain[0].sans, sizeof(p->server_chain[0].sans), "dns:localhost");
    p->server_chain[0].not_before = time(NULL) - 3600;
    p->server_chain[0].not_after = time(NULL) + 3600;
    p->server_chain[0].has_eku = p->server_chain[0].eku_server = true;
    p->chain_err = p->name_err = X509_V_OK;
    p->cert_requested = true;
    p->nca_names = p->nca_names_total = 1;
    snprintf(p->ca_names[0], TLSX_PROBE_NAME_MAX, "CN=Inter");
    p->client_cert_msg = p->client_cert_sent = true;
    p->client_certs_sent = 1;
    p->alert_received = p->alert_sent = -1;
    p->handshake_done = p->accepted = true;
    p->reason = TLSX_R_OK;
    struct tlsx_file_check *m = &x->mine;
    snprintf(m->leaf.subject, TLSX_PROBE_NAME_MAX, "CN=alice");
    snprintf(m->leaf.issuer, TLSX_PROBE_NAME_MAX, "CN=Inter");
    m->role = TLSX_ROLE_CLIENT;
    m->key_checked = m->key_match = m->eku_ok = true;
    m->leaf.has_eku = m->leaf.eku_client = true;
    m->validity = TLSX_R_OK;
    x->f = (struct doctor_facts){.online = true,
                                 .target = "localhost:8443",
                                 .probe = p,
                                 .mine = m,
                                 .cert_file = "alice.pem",
                                 .key_file = "alice.key",
                                 .ca_file = "chain.pem",
                                 .now = time(NULL)};
    return x;
}

static void refuse(struct fixture *x, int alert)
{
    x->p.accepted = false;
    x->p.alert_received = alert;
    x->p.alert_after_handshake = true;
    x->p.reason = tlsx_reason_from_alert(alert);
}

/* Diagnose and expect exactly the codes listed (NULL-terminated), in order. */
static void expect(struct fixture *x, bool ok, const char *const *codes)
{
    doctor_diagnose(&x->f, &x->d);
    size_t n = 0;
    for (; codes[n] != NULL; n++) {
        if (n >= x->d.n)
            fail_msg("missing finding %s (only %zu)", codes[n], x->d.n);
        if (strcmp(x->d.f[n].code, codes[n]) != 0)
            fail_msg("finding %zu is %s (%s), want %s", n, x->d.f[n].code, x->d.f[n].problem,
                     codes[n]);
        assert_true(x->d.f[n].problem[0] != '\0' && x->d.f[n].fix[0] != '\0');
    }
    if (x->d.n != n)
        fail_msg("unexpected extra finding %s: %s", x->d.f[n].code, x->d.f[n].problem);
    assert_int_equal(x->d.ok, ok);
    free(x);
}

#define EXPECT(x, ok, ...) expect(x, ok, (const char *const[]){__VA_ARGS__, NULL})

static void test_healthy(void **state)
{
    (void)state;
    struct fixture *x = healthy();
    doctor_diagnose(&x->f, &x->d);
    assert_int_equal(x->d.n, 0);
    assert_true(x->d.ok);
    free(x);
}

static void test_reaching(void **state)
{
    (void)state;
    struct fixture *x = healthy();
    memset(&x->p, 0, sizeof(x->p));
    x->p.connect_errno = ECONNREFUSED;
    EXPECT(x, false, "not-listening");
    x = healthy();
    memset(&x->p, 0, sizeof(x->p));
    x->p.connect_errno = ETIMEDOUT;
    x->p.timed_out = true;
    EXPECT(x, false, "unreachable");
    x = healthy();
    x->p.server_hello = x->p.handshake_done = x->p.accepted = x->p.server_cert_seen = false;
    x->p.reason = TLSX_R_NOT_TLS;
    EXPECT(x, false, "not-tls");
    x = healthy();
    x->p.handshake_done = x->p.accepted = false;
    x->p.timed_out = true;
    x->p.reason = TLSX_R_OTHER;
    EXPECT(x, false, "timeout");
}

static void test_negotiation(void **state)
{
    (void)state;
    struct fixture *x = healthy();
    x->p.server_hello = x->p.handshake_done = x->p.server_cert_seen = false;
    refuse(x, SSL_AD_PROTOCOL_VERSION);
    EXPECT(x, false, "protocol");
    x = healthy();
    x->p.server_hello = x->p.handshake_done = x->p.server_cert_seen = false;
    refuse(x, SSL_AD_HANDSHAKE_FAILURE);
    x->p.reason = TLSX_R_CIPHER;
    EXPECT(x, false, "cipher");
}

static void test_our_certificate(void **state)
{
    (void)state;
    struct fixture *x = healthy();
    x->mine.key_match = false;
    x->f.key_unusable = true;
    x->p.client_cert_sent = false;
    refuse(x, 116 /* certificate_required */);
    EXPECT(x, false, "key-mismatch", "no-client-cert");
    x = healthy();
    x->mine.validity = TLSX_R_EXPIRED;
    snprintf(x->mine.validity_subject, TLSX_PROBE_NAME_MAX, "CN=alice");
    refuse(x, SSL_AD_CERTIFICATE_EXPIRED);
    EXPECT(x, false, "expired"); /* the server's alert says the same: one finding */
    x = healthy();
    x->mine.validity = TLSX_R_NOT_YET_VALID;
    EXPECT(x, false, "not-yet-valid");
    x = healthy();
    x->mine.eku_ok = false;
    refuse(x, SSL_AD_UNSUPPORTED_CERTIFICATE);
    EXPECT(x, false, "wrong-eku");
}

static void test_server_verdicts(void **state)
{
    (void)state;
    struct fixture *x = healthy();
    refuse(x, SSL_AD_CERTIFICATE_REVOKED);
    EXPECT(x, false, "revoked");
    x = healthy();
    refuse(x, SSL_AD_HANDSHAKE_FAILURE);
    EXPECT(x, false, "policy");
    x = healthy();
    refuse(x, SSL_AD_ACCESS_DENIED);
    EXPECT(x, false, "policy");
    x = healthy();
    refuse(x, SSL_AD_UNKNOWN_CA); /* listed issuer: the server still could not chain it */
    EXPECT(x, false, "unknown-ca");
    x = healthy();
    refuse(x, SSL_AD_DECRYPT_ERROR);
    EXPECT(x, false, "bad-signature");
    x = healthy();
    x->p.client_cert_sent = false;
    x->f.mine = NULL;
    x->f.cert_file = NULL;
    refuse(x, SSL_AD_HANDSHAKE_FAILURE); /* TLS 1.2: no certificate, handshake_failure */
    EXPECT(x, false, "no-client-cert");
    x = healthy();
    x->p.accepted = true;
    x->p.client_cert_sent = false;
    EXPECT(x, false, "no-client-cert"); /* optional client auth is not two-way TLS */
}

static void test_ca_lists(void **state)
{
    (void)state;
    struct fixture *x = healthy();
    snprintf(x->mine.leaf.issuer, TLSX_PROBE_NAME_MAX, "CN=Other");
    refuse(x, SSL_AD_UNKNOWN_CA);
    EXPECT(x, false, "ca-not-listed");
    x = healthy();
    snprintf(x->p.ca_names[0], TLSX_PROBE_NAME_MAX, "CN=Root");
    x->mine.missing_intermediate = true;
    snprintf(x->mine.intermediate_subject, TLSX_PROBE_NAME_MAX, "CN=Inter");
    snprintf(x->mine.intermediate_issuer, TLSX_PROBE_NAME_MAX, "CN=Root");
    refuse(x, SSL_AD_UNKNOWN_CA);
    EXPECT(x, false, "missing-intermediate");
}

static void test_server_certificate(void **state)
{
    (void)state;
    struct fixture *x = healthy();
    x->p.server_chain[0].not_after = time(NULL) - 60;
    x->p.chain_err = X509_V_ERR_CERT_HAS_EXPIRED;
    EXPECT(x, false, "server-expired");
    x = healthy();
    x->p.server_chain[0].not_before = time(NULL) + 60;
    EXPECT(x, false, "server-not-yet-valid");
    x = healthy();
    x->p.server_chain[0].eku_server = false;
    x->p.server_chain[0].eku_client = true;
    x->p.chain_err = X509_V_ERR_INVALID_PURPOSE;
    EXPECT(x, false, "server-wrong-eku");
    x = healthy();
    x->p.chain_err = X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY;
    EXPECT(x, false, "server-missing-intermediate");
    x = healthy();
    x->p.chain_err = X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN;
    x->p.nserver_chain = 2;
    x->p.server_chain[1] = x->p.server_chain[0];
    snprintf(x->p.server_chain[1].subject, TLSX_PROBE_NAME_MAX, "CN=Other Root");
    EXPECT(x, false, "server-untrusted");
    x = healthy();
    x->p.name_err = X509_V_ERR_HOSTNAME_MISMATCH;
    EXPECT(x, false, "server-name-mismatch");
}

static void test_outcomes(void **state)
{
    (void)state;
    struct fixture *x = healthy();
    x->p.cert_requested = false;
    x->p.client_cert_msg = x->p.client_cert_sent = false;
    EXPECT(x, false, "not-mutual");
    x = healthy();
    x->p.server_closed = true;
    EXPECT(x, true, "closed-after-handshake"); /* a warning: exit 0 */
    x = healthy();
    x->p.accepted = false;
    x->p.reason = TLSX_R_CLOSED;
    EXPECT(x, false, "tls-error");
}

static void test_offline(void **state)
{
    (void)state;
    struct fixture *x = healthy();
    x->f.online = false;
    x->f.probe = NULL;
    x->mine.chain_checked = true;
    x->mine.missing_intermediate = true;
    EXPECT(x, true, "missing-intermediate"); /* offline it is a warning */
    x = healthy();
    x->f.online = false;
    x->mine.chain_checked = true;
    x->mine.chain_err = X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY;
    EXPECT(x, false, "issuer-unknown");
    x = healthy();
    x->f.online = false;
    x->mine.chain_checked = true;
    x->mine.chain_err = X509_V_ERR_CERT_REVOKED;
    doctor_diagnose(&x->f, &x->d);
    assert_non_null(strstr(x->d.f[0].problem, "revoked"));
    EXPECT(x, false, "chain");
}

static void test_json(void **state)
{
    (void)state;
    struct fixture *x = healthy();
    refuse(x, SSL_AD_CERTIFICATE_REVOKED);
    doctor_diagnose(&x->f, &x->d);
    json_t *j = doctor_json(&x->f, &x->d);
    assert_non_null(j);
    assert_false(json_is_true(json_object_get(j, "ok")));
    json_t *h = json_object_get(j, "handshake");
    assert_string_equal(json_string_value(json_object_get(h, "alert_received")),
                        "certificate revoked");
    assert_string_equal(json_string_value(json_object_get(h, "reason")), "revoked");
    json_t *d0 = json_array_get(json_object_get(j, "diagnosis"), 0);
    assert_string_equal(json_string_value(json_object_get(d0, "code")), "revoked");
    json_decref(j);
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_healthy),
        cmocka_unit_test(test_reaching),
        cmocka_unit_test(test_negotiation),
        cmocka_unit_test(test_our_certificate),
        cmocka_unit_test(test_server_verdicts),
        cmocka_unit_test(test_ca_lists),
        cmocka_unit_test(test_server_certificate),
        cmocka_unit_test(test_outcomes),
        cmocka_unit_test(test_offline),
        cmocka_unit_test(test_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
