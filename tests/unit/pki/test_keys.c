#include "pki_test_util.h"

#include <sys/stat.h>

#include <openssl/evp.h>

#include "util/fs.h"

static void key_types_parse_and_reject(void **state)
{
    (void)state;
    struct tw_err err;
    enum pki_key_type t;
    static const char *const ok[] = {"ec:P-256", "ec:P-384", "ed25519", "rsa:2048",
                                     "rsa:3072", "rsa:4096", "EC:p-256"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        assert_int_equal(pki_key_type_parse(ok[i], &t, &err), 0);
    assert_string_equal(pki_key_type_name(PKI_KEY_EC_P384), "ec:P-384");
    assert_int_equal(pki_key_type_parse("rsa:1024", &t, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
    assert_non_null(strstr(err.msg, "rsa:1024"));
    assert_int_equal(pki_key_type_parse("", &t, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
}

static void generate_each_type(void **state)
{
    (void)state;
    struct tw_err err;
    static const struct {
        enum pki_key_type t;
        const char *alg;
        int bits;
    } cases[] = {{PKI_KEY_EC_P256, "EC", 256},
                 {PKI_KEY_EC_P384, "EC", 384},
                 {PKI_KEY_ED25519, "ED25519", 256},
                 {PKI_KEY_RSA2048, "RSA", 2048}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        EVP_PKEY *k = pki_key_generate(cases[i].t, &err);
        assert_non_null(k);
        assert_true(EVP_PKEY_is_a(k, cases[i].alg));
        assert_int_equal(EVP_PKEY_get_bits(k), cases[i].bits);
        assert_int_equal(pki_key_check_public(k, "k", &err), 0);
        EVP_PKEY_free(k);
    }
    assert_null(pki_key_generate((enum pki_key_type)99, &err));
    assert_int_equal(err.code, TW_ERR_INTERNAL);
}

static void pem_round_trip_plain_and_encrypted(void **state)
{
    (void)state;
    struct tw_err err;
    EVP_PKEY *k = pki_key_generate(PKI_KEY_EC_P256, &err);
    assert_non_null(k);
    char *pem = NULL;
    size_t len = 0;
    assert_int_equal(pki_key_to_pem(k, NULL, &pem, &len, &err), 0);
    assert_non_null(strstr(pem, "BEGIN PRIVATE KEY"));
    EVP_PKEY *back = pki_key_from_pem(pem, len, NULL, "plain", &err);
    assert_non_null(back);
    assert_int_equal(EVP_PKEY_eq(k, back), 1);
    EVP_PKEY_free(back);
    pki_pem_free(pem, len);

    struct pki_secret pass, wrong;
    assert_int_equal(pki_secret_set(&pass, "correct horse", &err), 0);
    assert_int_equal(pki_secret_set(&wrong, "wrong horse", &err), 0);
    assert_int_equal(pki_key_to_pem(k, &pass, &pem, &len, &err), 0);
    assert_non_null(strstr(pem, "BEGIN ENCRYPTED PRIVATE KEY"));
    back = pki_key_from_pem(pem, len, &pass, "enc", &err);
    assert_non_null(back);
    assert_int_equal(EVP_PKEY_eq(k, back), 1);
    EVP_PKEY_free(back);

    assert_null(pki_key_from_pem(pem, len, &wrong, "enc.key", &err));
    assert_int_equal(err.code, TW_ERR_PKI);
    assert_string_equal(err.msg, "wrong passphrase for enc.key");
    assert_null(pki_key_from_pem(pem, len, NULL, "enc.key", &err));
    assert_int_equal(err.code, TW_ERR_PKI);
    assert_non_null(strstr(err.msg, "enc.key is encrypted"));
    pki_pem_free(pem, len);
    pki_secret_wipe(&pass);
    assert_int_equal(pass.len, 0);
    EVP_PKEY_free(k);

    assert_null(pki_key_from_pem("garbage", 7, NULL, "junk.key", &err));
    assert_int_equal(err.code, TW_ERR_PKI);
    assert_non_null(strstr(err.msg, "junk.key"));
}

static void load_refuses_open_permissions(void **state)
{
    (void)state;
    char dir[64], path[128];
    tmpdir_make(dir, sizeof(dir));
    struct tw_err err;
    EVP_PKEY *k = pki_key_generate(PKI_KEY_ED25519, &err);
    char *pem = NULL;
    size_t len = 0;
    assert_int_equal(pki_key_to_pem(k, NULL, &pem, &len, &err), 0);
    snprintf(path, sizeof(path), "%s/k.key", dir);
    assert_int_equal(fs_write_atomic(path, pem, len, 0600, &err), 0);
    EVP_PKEY *back = pki_key_load(path, NULL, &err);
    assert_non_null(back);
    EVP_PKEY_free(back);
    assert_int_equal(chmod(path, 0644), 0);
    assert_null(pki_key_load(path, NULL, &err));
    assert_int_equal(err.code, TW_ERR_IO);
    snprintf(path, sizeof(path), "%s/missing.key", dir);
    assert_null(pki_key_load(path, NULL, &err));
    assert_int_equal(err.code, TW_ERR_IO);
    pki_pem_free(pem, len);
    EVP_PKEY_free(k);
    tmpdir_remove(dir);
}

static void check_public_rejects_weak_keys(void **state)
{
    (void)state;
    struct tw_err err;
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    assert_non_null(rsa);
    assert_int_equal(pki_key_check_public(rsa, "weak.csr", &err), -1);
    assert_int_equal(err.code, TW_ERR_PKI);
    assert_non_null(strstr(err.msg, "weak.csr: RSA key of 1024 bits"));
    EVP_PKEY_free(rsa);
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp256k1");
    assert_non_null(k);
    assert_int_equal(pki_key_check_public(k, "k1", &err), -1);
    assert_int_equal(err.code, TW_ERR_PKI);
    EVP_PKEY_free(k);
    k = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    assert_non_null(k);
    assert_int_equal(pki_key_check_public(k, "x", &err), -1);
    assert_int_equal(err.code, TW_ERR_PKI);
    EVP_PKEY_free(k);
    assert_int_equal(pki_key_check_public(NULL, "none", &err), -1);
    assert_int_equal(err.code, TW_ERR_PKI);
}

static void secret_files(void **state)
{
    (void)state;
    char dir[64], path[128];
    tmpdir_make(dir, sizeof(dir));
    struct tw_err err;
    struct pki_secret s;
    snprintf(path, sizeof(path), "%s/p", dir);
    assert_int_equal(fs_write_atomic(path, "hunter22\r\nsecond line\n", 22, 0600, &err), 0);
    assert_int_equal(pki_secret_read_file(path, &s, &err), 0);
    assert_int_equal(s.len, 8);
    assert_memory_equal(s.data, "hunter22", 8);
    assert_int_equal(fs_write_atomic(path, "\nx\n", 3, 0600, &err), 0);
    assert_int_equal(pki_secret_read_file(path, &s, &err), -1);
    assert_int_equal(err.code, TW_ERR_PKI);
    assert_non_null(strstr(err.msg, path));
    snprintf(path, sizeof(path), "%s/none", dir);
    assert_int_equal(pki_secret_read_file(path, &s, &err), -1);
    assert_int_equal(err.code, TW_ERR_IO);
    assert_int_equal(pki_secret_set(&s, "", &err), -1);
    assert_int_equal(err.code, TW_ERR_PKI);
    pki_secret_wipe(&s);
    pki_secret_wipe(NULL);
    tmpdir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(key_types_parse_and_reject),
        cmocka_unit_test(generate_each_type),
        cmocka_unit_test(pem_round_trip_plain_and_encrypted),
        cmocka_unit_test(load_refuses_open_permissions),
        cmocka_unit_test(check_public_rejects_weak_keys),
        cmocka_unit_test(secret_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
