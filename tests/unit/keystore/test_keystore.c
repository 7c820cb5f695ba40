/* keystore's dispatch and file backend: what a key file may hold, and the errors for what it
 * may not; generation refused for key types no token or TPM makes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "keystore/keystore.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/tw-keystore-XXXXXX");
    return mkdtemp(dir) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *name, const char *text, mode_t mode, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static void references_are_told_from_paths(void **state)
{
    (void)state;
    assert_true(keystore_is_ref("pkcs11:token=t"));
    assert_true(keystore_is_ref("tpm2:handle:0x81000001"));
    assert_false(keystore_is_ref("/etc/twoway/server.key"));
    assert_false(keystore_is_ref("pkcs11"));
    assert_false(keystore_is_ref(NULL));
    static const char ref[] = "pkcs11:token=t;object=k\n";
    static const char tss2[] = "-----BEGIN TSS2 PRIVATE KEY-----\nAAAA\n";
    static const char pem[] = "-----BEGIN PRIVATE KEY-----\nAAAA\n";
    assert_true(keystore_text_is_hw(ref, strlen(ref)));
    assert_true(keystore_text_is_hw(tss2, strlen(tss2)));
    assert_false(keystore_text_is_hw(pem, strlen(pem)));
}

static void file_key_loads_and_bad_files_are_named(void **state)
{
    (void)state;
    char path[256];
    struct tw_err err;
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(k);
    BIO *b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
    char *pem = NULL;
    long n = BIO_get_mem_data(b, &pem);
    char text[4096];
    snprintf(text, sizeof(text), "%.*s", (int)n, pem);
    BIO_free(b);

    write_file("good.key", text, 0600, path, sizeof(path));
    EVP_PKEY *got = keystore_load(path, &err);
    assert_non_null(got);
    assert_int_equal(EVP_PKEY_eq(got, k), 1);
    assert_false(keystore_key_is_hardware(got));
    EVP_PKEY *pub = keystore_public(got, &err);
    assert_ptr_equal(pub, got); /* a file key is its own public half */
    EVP_PKEY_free(pub);
    EVP_PKEY_free(got);
    EVP_PKEY_free(k);

    write_file("open.key", text, 0644, path, sizeof(path));
    assert_null(keystore_load(path, &err));
    assert_int_equal(err.code, TW_ERR_IO);

    write_file("enc.key", "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n", 0600, path,
               sizeof(path));
    assert_null(keystore_load(path, &err));
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "the private key is encrypted"));

    write_file("junk.key", "not a key\n", 0600, path, sizeof(path));
    assert_null(keystore_load(path, &err));
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "no usable PEM private key"));

    /* A reference file is followed: here to a module that does not exist. */
    write_file("ref.key", "pkcs11:token=t;object=k?pin-source=file:/nonexistent&"
               "module-path=/nonexistent/p11.so\n", 0600, path, sizeof(path));
    assert_null(keystore_load(path, &err));
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "cannot load PKCS#11 module /nonexistent/p11.so"));

    assert_null(keystore_load("tpm2:/some/file", &err));
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "use tpm2:handle:0x81XXXXXX"));
}

static void module_is_required(void **state)
{
    (void)state;
    struct tw_err err;
    unsetenv("TWOWAY_PKCS11_MODULE");
    assert_null(keystore_load("pkcs11:token=t;object=k", &err));
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "no PKCS#11 module"));
}

static void generation_refuses_types_and_stores(void **state)
{
    (void)state;
    struct tw_err err;
    char *file = NULL;
    size_t len = 0;
    static const struct keystore_keyspec bad[] = {
        {"ED25519", NULL, 0}, {"RSA", NULL, 4096}, {"EC", "P-521", 0}, {"EC", NULL, 0}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_null(keystore_generate("pkcs11:token=t", "x", &bad[i], &file, &len, &err));
        assert_int_equal(err.code, TW_ERR_USAGE);
        assert_non_null(strstr(err.msg, "ec:P-256, ec:P-384, rsa:2048 or rsa:3072"));
        assert_null(file);
    }
    static const struct keystore_keyspec ok = {"EC", "P-256", 0};
    assert_null(keystore_generate("/var/keys", "x", &ok, &file, &len, &err));
    assert_int_equal(err.code, TW_ERR_USAGE);
    assert_non_null(strstr(err.msg, "--key-store must be a pkcs11: URI or tpm2:"));
}

static void store_of_follows_the_key_file(void **state)
{
    (void)state;
    char path[256], store[KEYSTORE_REF_MAX];
    struct tw_err err;
    write_file("r.key", "pkcs11:token=t;object=k;type=private?pin-source=file:/p\n", 0600, path,
               sizeof(path));
    assert_int_equal(keystore_store_of(path, store, sizeof(store), &err), 0);
    assert_string_equal(store, "pkcs11:token=t;object=k;type=private?pin-source=file:/p");
    write_file("t.key", "-----BEGIN TSS2 PRIVATE KEY-----\nAAAA\n", 0600, path, sizeof(path));
    assert_int_equal(keystore_store_of(path, store, sizeof(store), &err), 0);
    assert_string_equal(store, "tpm2:");
    write_file("p.key", "-----BEGIN PRIVATE KEY-----\nAAAA\n", 0600, path, sizeof(path));
    assert_int_equal(keystore_store_of(path, store, sizeof(store), &err), 0);
    assert_string_equal(store, "");
    assert_int_equal(keystore_store_of("tpm2:handle:0x81000001", store, sizeof(store), &err), 0);
    assert_string_equal(store, "tpm2:");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(references_are_told_from_paths),
        cmocka_unit_test(file_key_loads_and_bad_files_are_named),
        cmocka_unit_test(module_is_required),
        cmocka_unit_test(generation_refuses_types_and_stores),
        cmocka_unit_test(store_of_follows_the_key_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
