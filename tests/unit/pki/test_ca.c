#include "pki_test_util.h"

#include <sys/stat.h>
#include <unistd.h>

#include "util/fs.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    tmpdir_make(dir, sizeof(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unsetenv("TWOWAY_FAULT_WRITE");
    tmpdir_remove(dir);
    return 0;
}

static void init_ok(const struct pki_secret *pass)
{
    struct pki_ca_options opt = {.dir = dir,
                                 .name = "Unit CA",
                                 .key_type = PKI_KEY_EC_P256,
                                 .base_url = "http://127.0.0.1:8080",
                                 .passphrase = pass};
    struct pki_ca_created made;
    struct tw_err err;
    if (pki_ca_init(&opt, &made, &err) != 0)
        fail_msg("init: %s", err.msg);
    assert_int_equal(strlen(made.root_sha256), 64);
    assert_int_equal(strlen(made.root_sha256_colon), 95);
}

static struct pki_ca *open_unlocked(const struct pki_secret *pass)
{
    struct pki_ca *ca = NULL;
    struct tw_err err;
    if (pki_ca_open(dir, &ca, &err) != 0)
        fail_msg("open: %s", err.msg);
    if (pki_ca_unlock(ca, pass, &err) != 0)
        fail_msg("unlock: %s", err.msg);
    return ca;
}

static X509 *issue(struct pki_ca *ca, const char *name, struct tw_err *err)
{
    EVP_PKEY *k = pki_key_generate(PKI_KEY_EC_P256, err);
    struct pki_cert_request req = {
        .profile = PKI_PROFILE_CLIENT, .cn = name, .pubkey = k, .lifetime = 86400};
    X509 *cert = NULL;
    int rc = pki_ca_issue(ca, &req, &cert, err);
    EVP_PKEY_free(k);
    return rc == 0 ? cert : NULL;
}

static int count_audit(const struct store_audit *a, void *ctx)
{
    (void)a;
    (*(int *)ctx)++;
    return 0;
}

static void init_layout_and_refusal(void **state)
{
    (void)state;
    init_ok(NULL);
    char path[256];
    struct stat st;
    snprintf(path, sizeof(path), "%s/ca/intermediate.key", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(path, sizeof(path), "%s/ca", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    struct pki_ca_options opt = {.dir = dir, .key_type = PKI_KEY_ED25519};
    struct pki_ca_created made;
    struct tw_err err;
    assert_int_equal(pki_ca_init(&opt, &made, &err), -1);
    assert_int_equal(err.code, TW_ERR_EXISTS);
    assert_non_null(strstr(err.msg, "refusing to overwrite"));
}

static void issue_revoke_crl(void **state)
{
    (void)state;
    init_ok(NULL);
    struct pki_ca *ca = open_unlocked(NULL);
    struct tw_err err;
    X509 *cert = issue(ca, "alice", &err);
    assert_non_null(cert);
    assert_true(X509_get_ext_by_NID(cert, NID_crl_distribution_points, -1) >= 0);
    char serial[STORE_SERIAL_MAX];
    assert_int_equal(pki_cert_serial_hex(cert, serial, sizeof(serial), &err), 0);
    struct store_cert row;
    assert_int_equal(pki_ca_find(ca, "alice", &row, &err), 0);
    assert_string_equal(row.serial, serial);
    store_cert_clear(&row);
    assert_int_equal(pki_ca_find(ca, "nobody", &row, &err), -1);
    assert_int_equal(err.code, TW_ERR_NOTFOUND);

    assert_int_equal(pki_ca_revoke(ca, serial, 1, time(NULL), &err), 0);
    assert_int_equal(pki_ca_revoke(ca, serial, 1, time(NULL), &err), -1);
    assert_int_equal(err.code, TW_ERR_EXISTS);
    assert_int_equal(pki_ca_revoke(ca, "ABCDEF", 1, time(NULL), &err), -1);
    assert_int_equal(err.code, TW_ERR_NOTFOUND);
    assert_int_equal(pki_ca_revoke(ca, serial, 7, time(NULL), &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
    char root_serial[STORE_SERIAL_MAX];
    assert_int_equal(
        pki_cert_serial_hex(pki_ca_root_cert(ca), root_serial, sizeof(root_serial), &err), 0);
    assert_int_equal(pki_ca_revoke(ca, root_serial, 2, time(NULL), &err), -1);
    assert_int_equal(err.code, TW_ERR_PKI);

    int64_t n1 = 0, n2 = 0, next = 0;
    size_t entries = 0;
    assert_int_equal(pki_ca_crl_write(ca, 0, NULL, &n1, &entries, &next, &err), 0);
    assert_int_equal(entries, 1);
    assert_int_equal(pki_ca_crl_write(ca, 1, NULL, &n2, &entries, &next, &err), 0);
    assert_true(n2 > n1);
    int audits = 0;
    assert_int_equal(store_audit_list(pki_ca_store(ca), count_audit, &audits, &err), 0);
    /* init, issue, revoke ok, 4 revoke failures, 2 crl */
    assert_int_equal(audits, 9);
    X509_free(cert);
    pki_ca_free(ca);
}

static void crl_write_failure_keeps_revocation(void **state)
{
    (void)state;
    init_ok(NULL);
    struct pki_ca *ca = open_unlocked(NULL);
    struct tw_err err;
    X509 *cert = issue(ca, "bob", &err);
    char serial[STORE_SERIAL_MAX];
    assert_int_equal(pki_cert_serial_hex(cert, serial, sizeof(serial), &err), 0);
    assert_int_equal(pki_ca_revoke(ca, serial, 4, time(NULL), &err), 0);
    setenv("TWOWAY_FAULT_WRITE", "crl.der", 1);
    assert_int_equal(pki_ca_crl_write(ca, 0, NULL, NULL, NULL, NULL, &err), -1);
    assert_int_equal(err.code, TW_ERR_IO);
    assert_non_null(strstr(err.msg, "crl.der"));
    unsetenv("TWOWAY_FAULT_WRITE");
    struct store_cert row;
    assert_int_equal(pki_ca_find(ca, serial, &row, &err), 0);
    assert_int_equal(row.status, STORE_REVOKED);
    assert_int_equal(row.revoke_reason, 4);
    store_cert_clear(&row);
    X509_free(cert);
    pki_ca_free(ca);
}

static void missing_half_written_and_broken(void **state)
{
    (void)state;
    struct pki_ca *ca = NULL;
    struct tw_err err;
    assert_int_equal(pki_ca_open(dir, &ca, &err), -1);
    assert_int_equal(err.code, TW_ERR_NOTFOUND);
    /* an init that dies while writing a key leaves nothing behind */
    setenv("TWOWAY_FAULT_WRITE", "intermediate.key", 1);
    struct pki_ca_options opt = {.dir = dir, .key_type = PKI_KEY_EC_P256};
    struct pki_ca_created made;
    assert_int_equal(pki_ca_init(&opt, &made, &err), -1);
    assert_int_equal(err.code, TW_ERR_IO);
    unsetenv("TWOWAY_FAULT_WRITE");
    assert_int_equal(pki_ca_open(dir, &ca, &err), -1);
    assert_int_equal(err.code, TW_ERR_NOTFOUND);
    /* a leftover temp dir (a killed init) is reported as half-written */
    char path[256];
    snprintf(path, sizeof(path), "%s/.ca-init.abc123", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(pki_ca_open(dir, &ca, &err), -1);
    assert_int_equal(err.code, TW_ERR_PKI);
    assert_non_null(strstr(err.msg, "half-written"));
    assert_int_equal(rmdir(path), 0);
    init_ok(NULL);
    snprintf(path, sizeof(path), "%s/ca/ocsp.crt", dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(pki_ca_open(dir, &ca, &err), -1);
    assert_int_equal(err.code, TW_ERR_PKI);
    assert_non_null(strstr(err.msg, "ocsp.crt"));
}

static void swapped_certificate_detected(void **state)
{
    (void)state;
    init_ok(NULL);
    char from[256], to[256];
    snprintf(from, sizeof(from), "%s/ca/ocsp.crt", dir);
    snprintf(to, sizeof(to), "%s/ca/intermediate.crt", dir);
    assert_int_equal(rename(from, to), 0);
    assert_int_equal(link(to, from), 0);
    struct pki_ca *ca = NULL;
    struct tw_err err;
    assert_int_equal(pki_ca_open(dir, &ca, &err), -1);
    assert_int_equal(err.code, TW_ERR_PKI);
    assert_non_null(strstr(err.msg, "do not chain"));
}

static void encrypted_ca(void **state)
{
    (void)state;
    struct pki_secret pass, wrong;
    struct tw_err err;
    assert_int_equal(pki_secret_set(&pass, "long enough pass", &err), 0);
    assert_int_equal(pki_secret_set(&wrong, "not the passphrase", &err), 0);
    init_ok(&pass);
    struct pki_ca *ca = NULL;
    assert_int_equal(pki_ca_open(dir, &ca, &err), 0);
    assert_int_equal(pki_ca_unlock(ca, NULL, &err), -1);
    assert_int_equal(err.code, TW_ERR_PKI);
    assert_non_null(strstr(err.msg, "is encrypted"));
    assert_int_equal(pki_ca_unlock(ca, &wrong, &err), -1);
    assert_int_equal(err.code, TW_ERR_PKI);
    assert_non_null(strstr(err.msg, "wrong passphrase for"));
    X509 *cert = issue(ca, "locked", &err);
    assert_null(cert);
    assert_int_equal(err.code, TW_ERR_INTERNAL);
    assert_int_equal(pki_ca_unlock(ca, &pass, &err), 0);
    cert = issue(ca, "carol", &err);
    assert_non_null(cert);
    X509_free(cert);
    struct pki_signer *ocsp = pki_ca_ocsp_signer(ca, &pass, &err);
    assert_non_null(ocsp);
    pki_signer_free(ocsp);
    pki_ca_free(ca);
    pki_secret_wipe(&pass);
    pki_secret_wipe(&wrong);
}

static void init_rejects_bad_options(void **state)
{
    (void)state;
    struct pki_secret shortpass;
    struct tw_err err;
    assert_int_equal(pki_secret_set(&shortpass, "short", &err), 0);
    struct pki_ca_created made;
    struct pki_ca_options opts[] = {
        {.dir = dir, .base_url = "ftp://x"},
        {.dir = dir, .base_url = "https://x/"},
        {.dir = dir, .base_url = "https://a b"},
        {.dir = dir, .passphrase = &shortpass},
        {.dir = dir, .name = "this name is far too long for the CN of an intermediate CA"},
        {.dir = dir, .root_days = 40000},
    };
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        assert_int_equal(pki_ca_init(&opts[i], &made, &err), -1);
        assert_int_equal(err.code, TW_ERR_USAGE);
    }
    char path[256];
    snprintf(path, sizeof(path), "%s/ca", dir);
    assert_false(fs_exists(path));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(init_layout_and_refusal, setup, teardown),
        cmocka_unit_test_setup_teardown(issue_revoke_crl, setup, teardown),
        cmocka_unit_test_setup_teardown(crl_write_failure_keeps_revocation, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_half_written_and_broken, setup, teardown),
        cmocka_unit_test_setup_teardown(swapped_certificate_detected, setup, teardown),
        cmocka_unit_test_setup_teardown(encrypted_ca, setup, teardown),
        cmocka_unit_test_setup_teardown(init_rejects_bad_options, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
