/* Helpers shared by the pki unit tests: temp dirs and a small in-memory CA. */
#ifndef TW_TEST_PKI_UTIL_H
#define TW_TEST_PKI_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pki/pki.h"

/* Make a fresh temp dir into buf (at least 64 bytes). */
static inline void tmpdir_make(char *buf, size_t cap)
{
    snprintf(buf, cap, "/tmp/tw-pki-XXXXXX");
    assert_non_null(mkdtemp(buf));
}

static inline void tmpdir_remove(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* A root and an intermediate made with pki_cert_make, and a signer for the intermediate. */
struct test_ca {
    EVP_PKEY *root_key, *int_key;
    X509 *root, *intermediate;
    struct pki_signer *signer;
};

static inline X509 *test_make(struct pki_signer *s, enum pki_profile p, const char *cn,
                              EVP_PKEY *key, int64_t lifetime, const struct pki_sans *sans)
{
    struct pki_cert_request req = {
        .profile = p, .cn = cn, .pubkey = key, .lifetime = lifetime, .sans = sans};
    struct tw_err err;
    X509 *cert = pki_cert_make(s, &req, time(NULL), &err);
    if (cert == NULL)
        fail_msg("pki_cert_make %s: %s", cn, err.msg);
    return cert;
}

static inline void test_ca_make(struct test_ca *ca, enum pki_key_type type)
{
    struct tw_err err;
    memset(ca, 0, sizeof(*ca));
    ca->root_key = pki_key_generate(type, &err);
    ca->int_key = pki_key_generate(type, &err);
    assert_non_null(ca->root_key);
    assert_non_null(ca->int_key);
    struct pki_signer *self = pki_signer_new(ca->root_key, NULL, &err);
    assert_non_null(self);
    ca->root = test_make(self, PKI_PROFILE_ROOT, "T Root", ca->root_key, 3650L * 86400, NULL);
    pki_signer_free(self);
    struct pki_signer *rs = pki_signer_new(ca->root_key, ca->root, &err);
    assert_non_null(rs);
    ca->intermediate =
        test_make(rs, PKI_PROFILE_INTERMEDIATE, "T Intermediate", ca->int_key, 365L * 86400, NULL);
    pki_signer_free(rs);
    ca->signer = pki_signer_new(ca->int_key, ca->intermediate, &err);
    assert_non_null(ca->signer);
}

static inline void test_ca_free(struct test_ca *ca)
{
    pki_signer_free(ca->signer);
    X509_free(ca->root);
    X509_free(ca->intermediate);
    EVP_PKEY_free(ca->root_key);
    EVP_PKEY_free(ca->int_key);
}

#endif
