/* Allow-policy: rule parsing errors, every matcher, globs, case rules, no CN fallback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tlsx/testpki.h"

static struct tp_cert ca, alice, cnonly;
static struct tlsx_identity *id_alice, *id_cnonly;

static int setup(void **state)
{
    (void)state;
    ca = tp_make("Policy CA", NULL, &(struct tp_opts){.ca = 1});
    alice = tp_make("alice.example", &ca,
                    &(struct tp_opts){.eku = "clientAuth",
                                      .o = "Example Corp",
                                      .ou = "payments",
                                      .serial = 0x0A1B2C,
                                      .sans = "DNS:API.Example.com,email:Alice@Example.com,"
                                              "URI:spiffe://example.org/ns/prod/sa/web"});
    /* A CN that looks like a host name but no SAN: dns: must not match it. */
    cnonly = tp_make("host.example.com", &ca, &(struct tp_opts){.eku = "clientAuth"});
    struct tw_err err;
    id_alice = tlsx_identity_new(alice.cert, &err);
    id_cnonly = tlsx_identity_new(cnonly.cert, &err);
    return id_alice != NULL && id_cnonly != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tlsx_identity_free(id_alice);
    tlsx_identity_free(id_cnonly);
    tp_free(&ca);
    tp_free(&alice);
    tp_free(&cnonly);
    return 0;
}

/* 1 if a policy of just `rule` allows id. */
static int allows(const char *rule, const struct tlsx_identity *id)
{
    struct tw_err err;
    struct tlsx_policy *p = tlsx_policy_new(&err);
    if (tlsx_policy_add(p, rule, &err) != 0)
        fail_msg("rule '%s' rejected: %s", rule, err.msg);
    const char *matched = NULL;
    int ok = tlsx_policy_check(p, id, &matched);
    if (ok)
        assert_string_equal(matched, rule);
    else
        assert_null(matched);
    tlsx_policy_free(p);
    return ok;
}

static void matchers_exact_and_glob(void **state)
{
    (void)state;
    const char *yes[] = {
        "cn:alice.example",
        "cn:*.example",
        "o:Example Corp",
        "ou:payments",
        "ou:pay*",
        "dns:api.example.com",
        "dns:*.EXAMPLE.COM",
        "email:alice@example.com",
        "email:*@example.com",
        "uri:spiffe://example.org/ns/prod/sa/web",
        "uri:spiffe://example.org/ns/*/sa/web",
        "serial:0A1B2C",
        "serial:0a:1b:2c",
        "serial:0A1B*",
        "sha256:*",
    };
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        if (!allows(yes[i], id_alice))
            fail_msg("'%s' should allow", yes[i]);
    const char *no[] = {
        "cn:Alice.example", /* CN is case-sensitive */
        "cn:bob",
        "o:Example",
        "ou:Payments",
        "dns:example.com",
        "email:bob@example.com",
        "uri:spiffe://example.org/ns/prod",
        "uri:SPIFFE://example.org/ns/prod/sa/web",
        "serial:0A1B2D",
        "serial:1B2C",
        "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "cn:alice.exampl?", /* only * is special */
        "cn:[a]lice.example",
    };
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        if (allows(no[i], id_alice))
            fail_msg("'%s' should deny", no[i]);
}

static void sha256_rule_matches_fingerprint_any_case_with_colons(void **state)
{
    (void)state;
    char rule[7 + 64 + 31 + 1] = "sha256:";
    size_t used = 7;
    /* upper-case with colons, as `openssl x509 -fingerprint -sha256` prints it */
    for (int i = 0; i < 32; i++)
        used += (size_t)snprintf(rule + used, sizeof(rule) - used, "%s%02X", i ? ":" : "",
                                 id_alice->sha256[i]);
    assert_true(allows(rule, id_alice));
    char lower[80];
    snprintf(lower, sizeof(lower), "sha256:%s", id_alice->sha256_hex);
    assert_true(allows(lower, id_alice));
    assert_false(allows(lower, id_cnonly));
}

static void dns_has_no_cn_fallback(void **state)
{
    (void)state;
    assert_false(allows("dns:host.example.com", id_cnonly));
    assert_false(allows("dns:*", id_cnonly));
    assert_true(allows("cn:host.example.com", id_cnonly));
}

static void any_rule_allows_and_empty_policy_allows_all(void **state)
{
    (void)state;
    struct tw_err err;
    struct tlsx_policy *p = tlsx_policy_new(&err);
    const char *matched = NULL;
    assert_int_equal(tlsx_policy_check(p, id_alice, &matched), 1);
    assert_string_equal(matched, "");
    assert_int_equal(tlsx_policy_check(NULL, id_alice, &matched), 1);
    char out[64];
    assert_string_equal(tlsx_policy_render(p, out, sizeof(out)), "(any)");

    assert_int_equal(tlsx_policy_add(p, "cn:bob", &err), 0);
    assert_int_equal(tlsx_policy_add(p, "uri:spiffe://example.org/*", &err), 0);
    assert_int_equal(tlsx_policy_count(p), 2);
    assert_int_equal(tlsx_policy_check(p, id_alice, &matched), 1);
    assert_string_equal(matched, "uri:spiffe://example.org/*");
    assert_int_equal(tlsx_policy_check(p, id_cnonly, &matched), 0);
    assert_null(matched);
    assert_string_equal(tlsx_policy_render(p, out, sizeof(out)),
                        "cn:bob, uri:spiffe://example.org/*");
    assert_string_equal(tlsx_policy_render(p, out, 12), "cn:bob...");
    tlsx_policy_free(p);
}

static void parse_errors_are_clear(void **state)
{
    (void)state;
    struct {
        const char *rule;
        const char *msg;
    } bad[] = {
        {"xx:foo", "allow rule 'xx:foo': unknown type 'xx'; use cn:, ou:, o:, dns:, email:, uri:, "
                   "serial:, sha256:"},
        {"alice", "allow rule 'alice': missing type; use cn:"},
        {"cn:", "allow rule 'cn:': empty cn value"},
        {"", "allow rule is empty"},
        {"serial:0x12", "allow rule 'serial:0x12': serial: expects hex digits"},
        {"sha256:abcd", "allow rule 'sha256:abcd': sha256: expects 64 hex digits, got 4"},
    };
    struct tw_err err;
    struct tlsx_policy *p = tlsx_policy_new(&err);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tw_err_clear(&err);
        assert_int_equal(tlsx_policy_add(p, bad[i].rule, &err), -1);
        assert_int_equal(err.code, TW_ERR_CONFIG);
        if (strncmp(err.msg, bad[i].msg, strlen(bad[i].msg)) != 0)
            fail_msg("rule '%s': got '%s'", bad[i].rule, err.msg);
    }
    char longrule[1200];
    memset(longrule, 'a', sizeof(longrule) - 1);
    longrule[sizeof(longrule) - 1] = '\0';
    memcpy(longrule, "cn:", 3);
    assert_int_equal(tlsx_policy_add(p, longrule, &err), -1);
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_int_equal(tlsx_policy_count(p), 0);
    /* Type names are case-insensitive. */
    assert_int_equal(tlsx_policy_add(p, "CN:alice.example", &err), 0);
    assert_int_equal(tlsx_policy_check(p, id_alice, NULL), 1);
    tlsx_policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(matchers_exact_and_glob),
        cmocka_unit_test(sha256_rule_matches_fingerprint_any_case_with_colons),
        cmocka_unit_test(dns_has_no_cn_fallback),
        cmocka_unit_test(any_rule_allows_and_empty_policy_allows_all),
        cmocka_unit_test(parse_errors_are_clear),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
