/* renew_swap: the certificate (and key) replacement of `twoway renew`, and the recovery of a
 * swap interrupted between its two renames. */
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

#include "cli/renew_swap.h"
#include "pki/pki.h"
#include "util/fs.h"

struct pair {
    char *cert, *key;
    size_t cert_len, key_len;
};

static void pair_make(struct pair *p)
{
    struct tw_err err;
    EVP_PKEY *key = pki_key_generate(PKI_KEY_EC_P256, &err);
    assert_non_null(key);
    struct pki_signer *self = pki_signer_new(key, NULL, &err);
    struct pki_cert_request req = {
        .profile = PKI_PROFILE_CLIENT, .cn = "swap", .pubkey = key, .lifetime = 3600};
    X509 *cert = pki_cert_make(self, &req, time(NULL), &err);
    assert_non_null(cert);
    p->cert = pki_cert_to_pem(cert, &p->cert_len, &err);
    assert_int_equal(pki_key_to_pem(key, NULL, &p->key, &p->key_len, &err), 0);
    X509_free(cert);
    pki_signer_free(self);
    EVP_PKEY_free(key);
}

static void pair_free(struct pair *p)
{
    free(p->cert);
    pki_pem_free(p->key, p->key_len);
}

struct fixture {
    char dir[64], crt[128], key[128], crt_new[140], key_old[140], key_new[140];
    struct pair a, b;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/tw-swap-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->crt, sizeof(f->crt), "%s/c.crt", f->dir);
    snprintf(f->key, sizeof(f->key), "%s/c.key", f->dir);
    snprintf(f->crt_new, sizeof(f->crt_new), "%s.new", f->crt);
    snprintf(f->key_new, sizeof(f->key_new), "%s.new", f->key);
    snprintf(f->key_old, sizeof(f->key_old), "%s.old", f->key);
    pair_make(&f->a);
    pair_make(&f->b);
    struct tw_err err;
    assert_int_equal(fs_write_atomic(f->crt, f->a.cert, f->a.cert_len, 0644, &err), 0);
    assert_int_equal(fs_write_atomic(f->key, f->a.key, f->a.key_len, 0600, &err), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    const char *files[] = {f->crt, f->key, f->crt_new, f->key_new, f->key_old};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        unlink(files[i]);
    rmdir(f->dir);
    pair_free(&f->a);
    pair_free(&f->b);
    free(f);
    return 0;
}

static void assert_file(const char *path, const char *data, size_t len)
{
    char *got = NULL;
    size_t n = 0;
    struct tw_err err;
    assert_int_equal(fs_read_file(path, 1u << 20, &got, &n, &err), 0);
    assert_int_equal(n, len);
    assert_memory_equal(got, data, len);
    free(got);
}

static void swap_certificate_only(void **state)
{
    struct fixture *f = *state;
    struct tw_err err;
    assert_int_equal(renew_swap(f->crt, f->key, f->b.cert, f->b.cert_len, NULL, 0, &err), 0);
    assert_file(f->crt, f->b.cert, f->b.cert_len);
    assert_file(f->key, f->a.key, f->a.key_len);
    assert_false(fs_exists(f->crt_new));
}

static void swap_key_and_certificate(void **state)
{
    struct fixture *f = *state;
    struct tw_err err;
    assert_int_equal(
        renew_swap(f->crt, f->key, f->b.cert, f->b.cert_len, f->b.key, f->b.key_len, &err), 0);
    assert_file(f->crt, f->b.cert, f->b.cert_len);
    assert_file(f->key, f->b.key, f->b.key_len);
    struct stat st;
    assert_int_equal(stat(f->key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_false(fs_exists(f->key_old) || fs_exists(f->key_new) || fs_exists(f->crt_new));
}

static void recover_finishes_from_cert_new(void **state)
{
    struct fixture *f = *state;
    struct tw_err err;
    /* Crash after KEY.new -> KEY, before CERT.new -> CERT. */
    assert_int_equal(fs_write_atomic(f->key, f->b.key, f->b.key_len, 0600, &err), 0);
    assert_int_equal(fs_write_atomic(f->key_old, f->a.key, f->a.key_len, 0600, &err), 0);
    assert_int_equal(fs_write_atomic(f->crt_new, f->b.cert, f->b.cert_len, 0644, &err), 0);
    const char *note = NULL;
    assert_int_equal(renew_swap_recover(f->crt, f->key, &note, &err), 0);
    assert_non_null(strstr(note, "finished"));
    assert_file(f->crt, f->b.cert, f->b.cert_len);
    assert_false(fs_exists(f->key_old) || fs_exists(f->crt_new));
}

static void recover_restores_the_old_key(void **state)
{
    struct fixture *f = *state;
    struct tw_err err;
    assert_int_equal(fs_write_atomic(f->key, f->b.key, f->b.key_len, 0600, &err), 0);
    assert_int_equal(fs_write_atomic(f->key_old, f->a.key, f->a.key_len, 0600, &err), 0);
    const char *note = NULL;
    assert_int_equal(renew_swap_recover(f->crt, f->key, &note, &err), 0);
    assert_non_null(strstr(note, "restored"));
    assert_file(f->key, f->a.key, f->a.key_len);
    assert_false(fs_exists(f->key_old));
}

static void recover_with_nothing_to_do(void **state)
{
    struct fixture *f = *state;
    struct tw_err err;
    /* Leftovers of a swap that never reached its renames are dropped; the pair stays. */
    assert_int_equal(fs_write_atomic(f->key_new, f->b.key, f->b.key_len, 0600, &err), 0);
    const char *note = NULL;
    assert_int_equal(renew_swap_recover(f->crt, f->key, &note, &err), 0);
    assert_string_equal(note, "");
    assert_false(fs_exists(f->key_new));
    assert_file(f->key, f->a.key, f->a.key_len);
}

static void swap_into_missing_dir_is_io_error(void **state)
{
    struct fixture *f = *state;
    struct tw_err err;
    char crt[200], key[200];
    snprintf(crt, sizeof(crt), "%s/c.crt/x.crt", f->dir); /* under a regular file: ENOTDIR */
    snprintf(key, sizeof(key), "%s/c.crt/x.key", f->dir);
    assert_int_equal(renew_swap(crt, key, f->b.cert, f->b.cert_len, NULL, 0, &err), -1);
    assert_int_equal(err.code, TW_ERR_IO);
    assert_file(f->crt, f->a.cert, f->a.cert_len);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(swap_certificate_only, setup, teardown),
        cmocka_unit_test_setup_teardown(swap_key_and_certificate, setup, teardown),
        cmocka_unit_test_setup_teardown(recover_finishes_from_cert_new, setup, teardown),
        cmocka_unit_test_setup_teardown(recover_restores_the_old_key, setup, teardown),
        cmocka_unit_test_setup_teardown(recover_with_nothing_to_do, setup, teardown),
        cmocka_unit_test_setup_teardown(swap_into_missing_dir_is_io_error, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
