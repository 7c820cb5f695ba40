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

#include <unistd.h>
#include <libpq-fe.h>

#include "store/store.h"

/* Each test gets a fresh store: a file in a temp directory (SQLite), or, in the PostgreSQL
 * pass (TWOWAY_TEST_PG_URI set), a fresh schema in that database selected through the URI's
 * search_path, dropped afterwards. tdb is what store_open gets either way. */
static char tdir[64];
static char tdb[1024];
static const char *t_pg_base; /* NULL: SQLite pass */
static char t_pg_schema[64];

/* Run SQL on the PostgreSQL test database directly (not through the store). */
__attribute__((unused)) static int pg_admin(const char *sql)
{
    PGconn *c = PQconnectdb(t_pg_base);
    int ok = PQstatus(c) == CONNECTION_OK;
    if (ok) {
        PGresult *r = PQexec(c, sql);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
        if (!ok)
            fprintf(stderr, "pg_admin %s: %s", sql, PQerrorMessage(c));
        PQclear(r);
    } else {
        fprintf(stderr, "pg_admin: %s", PQerrorMessage(c));
    }
    PQfinish(c);
    return ok ? 0 : -1;
}

static int tmp_setup(void **state)
{
    (void)state;
    snprintf(tdir, sizeof(tdir), "/tmp/tw-store-XXXXXX");
    if (mkdtemp(tdir) == NULL)
        return -1;
    snprintf(tdb, sizeof(tdb), "%s/ca.db", tdir);
    if (t_pg_base == NULL)
        return 0;
    static int n;
    snprintf(t_pg_schema, sizeof(t_pg_schema), "tw_test_%d_%d", (int)getpid(), ++n);
    char sql[128];
    snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", t_pg_schema);
    if (pg_admin(sql) != 0)
        return -1;
    snprintf(tdb, sizeof(tdb), "%s%soptions=-csearch_path%%3D%s", t_pg_base,
             strchr(t_pg_base, '?') != NULL ? "&" : "?", t_pg_schema);
    return 0;
}

static int tmp_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tdir);
    int rc = system(cmd) == 0 ? 0 : -1; /* checksrc only scans src/ */
    if (t_pg_base != NULL) {
        snprintf(cmd, sizeof(cmd), "SET client_min_messages = warning; DROP SCHEMA %s CASCADE",
                 t_pg_schema);
        if (pg_admin(cmd) != 0)
            rc = -1;
    }
    return rc;
}

/* Run the group on SQLite, then again on PostgreSQL when TWOWAY_TEST_PG_URI is set (else the
 * PostgreSQL pass is skipped with a note). */
__attribute__((unused)) static int run_both(const char *name, const struct CMUnitTest *tests,
                                            size_t count)
{
    int failed = _cmocka_run_group_tests(name, tests, count, NULL, NULL);
    const char *uri = getenv("TWOWAY_TEST_PG_URI");
    if (uri == NULL || uri[0] == '\0') {
        printf("[  SKIPPED ] %s on PostgreSQL: TWOWAY_TEST_PG_URI is not set\n", name);
        return failed;
    }
    t_pg_base = uri;
    printf("[==========] %s: the same tests on postgresql\n", name);
    fflush(stdout);
    char pgname[128];
    snprintf(pgname, sizeof(pgname), "%s (postgresql)", name);
    failed += _cmocka_run_group_tests(pgname, tests, count, NULL, NULL);
    t_pg_base = NULL;
    return failed;
}
#define RUN_BOTH(tests) run_both(__FILE__, tests, sizeof(tests) / sizeof((tests)[0]))

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
