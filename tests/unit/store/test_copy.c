/* Back-end choice, PostgreSQL specifics (URI with a masked password, reconnecting after the
 * server dropped the connection) and store_copy between back ends with its checks. */
#include "testutil.h"

#include "store/pg_internal.h"

static void unreachable_postgres_is_store_error_without_password(void **state)
{
    (void)state;
    struct store *s = NULL;
    struct tw_err err;
    assert_int_equal(
        store_open("postgresql://ca:hunter2@127.0.0.1:1/ca?connect_timeout=2", &s, &err), -1);
    assert_null(s);
    assert_int_equal(err.code, TW_ERR_STORE);
    assert_non_null(strstr(err.msg, "127.0.0.1:1/ca"));
    assert_null(strstr(err.msg, "hunter2"));
    assert_int_equal(
        store_open("postgres://127.0.0.1:1/ca?password=hunter2&connect_timeout=2", &s, &err), -1);
    assert_null(strstr(err.msg, "hunter2"));
    assert_int_equal(store_open("mysql://db/ca", &s, &err), -1);
    assert_int_equal(err.code, TW_ERR_STORE);
    assert_non_null(strstr(err.msg, "mysql://db/ca"));
}

static void backend_is_named(void **state)
{
    (void)state;
    struct store *s = open_ok();
    assert_string_equal(store_backend(s), t_pg_base != NULL ? "postgresql" : "sqlite");
    assert_non_null(strstr(store_where(s), t_pg_base != NULL ? "postgresql://" : tdir));
    store_free(s);
}

static const unsigned char csr_bytes[] = {0x30, 0x82, 0x00, 0x00, 0x7f};

/* Enrollment requests: waiting, approved with its certificate, rejected with a reason. */
static void fill_pending(struct store *s)
{
    struct tw_err err;
    const char *names[] = {"waiting", "approved", "rejected"};
    for (int i = 0; i < 3; i++) {
        struct store_pending p;
        memset(&p, 0, sizeof(p));
        snprintf(p.id, sizeof(p.id), "%c%063d", 'a' + i, 0);
        snprintf(p.name, sizeof(p.name), "%s", names[i]);
        snprintf(p.subject, sizeof(p.subject), "CN=%s", names[i]);
        snprintf(p.sans, sizeof(p.sans), "dns:%s.example", names[i]);
        snprintf(p.profile, sizeof(p.profile), "client");
        snprintf(p.peer, sizeof(p.peer), "::1");
        p.created_at = 1700000000 + i;
        p.csr = (unsigned char *)csr_bytes;
        p.csr_len = sizeof(csr_bytes);
        assert_int_equal(store_pending_add(s, &p, 0, &err), 0);
    }
    char id[65];
    snprintf(id, sizeof(id), "b%063d", 0);
    assert_int_equal(store_pending_decide(s, id, 1, 3600, NULL, 1700000050, &err), 0);
    assert_int_equal(store_pending_set_serial(s, id, "1A", &err), 0);
    snprintf(id, sizeof(id), "c%063d", 0);
    assert_int_equal(store_pending_decide(s, id, 0, 0, "not ours", 1700000060, &err), 0);
}

static void same_pending(struct store *a, struct store *b)
{
    struct tw_err err;
    for (int i = 0; i < 3; i++) {
        char id[65];
        snprintf(id, sizeof(id), "%c%063d", 'a' + i, 0);
        struct store_pending x, y;
        assert_int_equal(store_pending_get(a, id, &x, &err), 0);
        assert_int_equal(store_pending_get(b, id, &y, &err), 0);
        assert_int_equal(x.csr_len, y.csr_len);
        assert_memory_equal(x.csr, y.csr, x.csr_len);
        unsigned char *xc = x.csr, *yc = y.csr;
        x.csr = y.csr = NULL;
        assert_memory_equal(&x, &y, sizeof(x)); /* every column, byte for byte */
        free(xc);
        free(yc);
    }
}

/* Fill a store with a bit of everything: valid and revoked certificates, used and unused
 * tokens, audit rows, enrollment requests, CRL numbers. */
static void fill(struct store *s)
{
    struct tw_err err;
    const char *serials[] = {"1A", "2B", "3C", "4D"};
    for (int i = 0; i < 4; i++) {
        struct store_cert c;
        char name[16];
        snprintf(name, sizeof(name), "host%d", i);
        make_cert(&c, serials[i], name);
        c.issued_at = 1700000000 + i;
        if (i == 3)
            c.pem = NULL;
        put_ok(s, &c);
    }
    assert_int_equal(store_cert_revoke(s, "2B", 1, 1700000100, &err), 0);
    for (int i = 0; i < 3; i++) {
        struct store_token t;
        memset(&t, 0, sizeof(t));
        snprintf(t.hash, sizeof(t.hash), "%064d", i);
        snprintf(t.name, sizeof(t.name), "dev%d", i);
        snprintf(t.profile, sizeof(t.profile), "client");
        t.expires_at = (int64_t)time(NULL) + 3600;
        assert_int_equal(store_token_put(s, &t, &err), 0);
    }
    char h[STORE_TOKEN_HASH_MAX];
    snprintf(h, sizeof(h), "%064d", 1);
    assert_int_equal(store_token_use(s, h, (int64_t)time(NULL), &err), 0);
    assert_int_equal(store_token_set_serial(s, h, "3C", &err), 0);
    assert_int_equal(store_audit_add(s, "issue", "CN=host0", "1A", "ok", &err), 0);
    assert_int_equal(store_audit_add(s, "revoke", NULL, "2B", "ok", &err), 0);
    int64_t n;
    for (int i = 0; i < 3; i++)
        assert_int_equal(store_crl_number_next(s, &n, &err), 0);
    fill_pending(s);
}

static void copy_and_compare(struct store *from, struct store *to)
{
    struct store_copy_report rep, src;
    struct tw_err err;
    int rc = store_copy(from, to, &rep, &err);
    if (rc != 0)
        fprintf(stderr, "store_copy: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(store_checksum(from, &src, &err), 0);
    int64_t want[] = {4, 3, 2, 3, 1};
    for (int i = 0; i < STORE_COPY_TABLES; i++) {
        assert_int_equal(rep.tables[i].rows, want[i]);
        assert_string_equal(rep.tables[i].sha256, src.tables[i].sha256);
    }
    /* The copy works on: numbers continue, the used token stays used, revocation kept. */
    int64_t n = 0;
    assert_int_equal(store_crl_number_next(to, &n, &err), 0);
    assert_int_equal(n, 4);
    char h[STORE_TOKEN_HASH_MAX];
    snprintf(h, sizeof(h), "%064d", 1);
    assert_int_equal(store_token_use(to, h, (int64_t)time(NULL), &err), -1);
    assert_int_equal(err.code, TW_ERR_EXISTS);
    struct store_cert c;
    assert_int_equal(store_cert_get(to, "2B", &c, &err), 0);
    assert_int_equal(c.status, STORE_REVOKED);
    assert_int_equal(c.revoked_at, 1700000100);
    store_cert_clear(&c);
    assert_int_equal(store_audit_add(to, "after", NULL, NULL, "ok", &err), 0);
    /* Requests keep their state: the waiting one can be decided, the others not again. */
    same_pending(from, to);
    char id[65];
    snprintf(id, sizeof(id), "b%063d", 0);
    assert_int_equal(store_pending_set_serial(to, id, "2B", &err), -1);
    assert_int_equal(err.code, TW_ERR_EXISTS);
    snprintf(id, sizeof(id), "a%063d", 0);
    assert_int_equal(store_pending_decide(to, id, 1, 0, NULL, 0, &err), 0);
}

/* SQLite file -> the store under test (SQLite or PostgreSQL) -> another SQLite file. */
static void copy_round_trip(void **state)
{
    (void)state;
    char a[128], b[128];
    snprintf(a, sizeof(a), "%s/a.db", tdir);
    snprintf(b, sizeof(b), "%s/b.db", tdir);
    struct store *sa = NULL, *sb = NULL;
    struct tw_err err;
    assert_int_equal(store_open(a, &sa, &err), 0);
    fill(sa);
    struct store *mid = open_ok();
    copy_and_compare(sa, mid);
    store_free(mid);
    mid = open_ok();
    assert_int_equal(store_open(b, &sb, &err), 0);
    struct store_copy_report r1, r2;
    assert_int_equal(store_copy(mid, sb, &r1, &err), 0);
    assert_int_equal(store_checksum(mid, &r2, &err), 0);
    for (int i = 0; i < STORE_COPY_TABLES; i++)
        assert_string_equal(r1.tables[i].sha256, r2.tables[i].sha256);
    assert_string_equal(r1.tables[3].table, "pending_requests");
    assert_int_equal(r1.tables[3].rows, 3);
    same_pending(mid, sb);
    store_free(mid);
    store_free(sa);
    store_free(sb);
}

static void copy_into_non_empty_is_refused(void **state)
{
    (void)state;
    char a[128];
    snprintf(a, sizeof(a), "%s/a.db", tdir);
    struct store *sa = NULL;
    struct tw_err err;
    assert_int_equal(store_open(a, &sa, &err), 0);
    fill(sa);
    struct store *dst = open_ok();
    assert_int_equal(store_audit_add(dst, "init", NULL, NULL, "ok", &err), 0);
    struct store_copy_report rep;
    assert_int_equal(store_copy(sa, dst, &rep, &err), -1);
    assert_int_equal(err.code, TW_ERR_EXISTS);
    assert_non_null(strstr(err.msg, "not empty"));
    struct store_cert c;
    assert_int_equal(store_cert_get(dst, "1A", &c, &err), -1); /* nothing copied */
    store_free(dst);
    store_free(sa);
}

/* The server ends our session (as a restart would): the next call outside a transaction
 * connects again; a call inside a transaction fails cleanly and nothing is half-written. */
static void reconnects_after_the_server_dropped_us(void **state)
{
    (void)state;
    if (t_pg_base == NULL)
        skip();
    struct store *s = open_ok();
    struct tw_err err;
    assert_int_equal(pg_admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE application_name = 'twoway' AND pid <> pg_backend_pid()"),
                     0);
    struct store_cert c;
    make_cert(&c, "77", "again");
    put_ok(s, &c);
    assert_int_equal(store_txn_begin(s, &err), 0);
    make_cert(&c, "78", "half");
    put_ok(s, &c);
    assert_int_equal(pg_admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE application_name = 'twoway' AND pid <> pg_backend_pid()"),
                     0);
    assert_int_equal(store_txn_commit(s, &err), -1);
    assert_int_equal(err.code, TW_ERR_STORE);
    struct store_cert got;
    assert_int_equal(store_cert_get(s, "78", &got, &err), -1);
    assert_int_equal(err.code, TW_ERR_NOTFOUND);
    assert_int_equal(store_cert_get(s, "77", &got, &err), 0);
    store_cert_clear(&got);
    store_free(s);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, tmp_setup, tmp_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unreachable_postgres_is_store_error_without_password),
        T(backend_is_named),
        T(copy_round_trip),
        T(copy_into_non_empty_is_refused),
        T(reconnects_after_the_server_dropped_us),
    };
    return RUN_BOTH(tests);
}
