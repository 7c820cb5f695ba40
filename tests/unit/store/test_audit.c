#include "testutil.h"

#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/pg_internal.h"

/* Raw SQL through the store's own connection, whichever the back end. */
static int raw_exec(struct store *s, const char *sql, struct tw_err *err)
{
    if (strcmp(store_backend(s), "postgresql") == 0)
        return store_pg_command(s, sql, NULL, "tampering", err);
    return store_exec(s, sql, "tampering", err);
}

struct audit_seen {
    int n;
    struct store_audit rows[8];
};

static int collect_audit(const struct store_audit *a, void *ctx)
{
    struct audit_seen *seen = ctx;
    if (seen->n < 8)
        seen->rows[seen->n] = *a;
    seen->n++;
    return 0;
}

static void audit_rows_append_in_order(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct tw_err err;
    int64_t before = (int64_t)time(NULL);
    assert_int_equal(store_audit_add(s, "init", "CN=Root", NULL, "ok", &err), 0);
    assert_int_equal(store_audit_add(s, "issue", "CN=alice", "00ab", "ok", &err), 0);
    assert_int_equal(store_audit_add(s, "revoke", NULL, "ZZ", "no such serial", &err), 0);
    struct audit_seen seen;
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(store_audit_list(s, collect_audit, &seen, &err), 0);
    assert_int_equal(seen.n, 3);
    assert_string_equal(seen.rows[0].action, "init");
    assert_string_equal(seen.rows[0].subject, "CN=Root");
    assert_string_equal(seen.rows[0].serial, "");
    assert_string_equal(seen.rows[1].serial, "AB"); /* normalised like inventory serials */
    assert_string_equal(seen.rows[2].subject, "");
    assert_string_equal(seen.rows[2].serial, "ZZ"); /* not hex: kept as given */
    assert_string_equal(seen.rows[2].result, "no such serial");
    assert_true(seen.rows[0].id < seen.rows[1].id && seen.rows[1].id < seen.rows[2].id);
    assert_true(seen.rows[0].at >= before && seen.rows[0].at <= before + 5);
    store_free(s);
}

static void audit_without_action_is_internal(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct tw_err err;
    assert_int_equal(store_audit_add(s, NULL, NULL, NULL, "ok", &err), -1);
    assert_int_equal(err.code, TW_ERR_INTERNAL);
    assert_int_equal(store_audit_add(s, "issue", NULL, NULL, NULL, &err), -1);
    assert_int_equal(err.code, TW_ERR_INTERNAL);
    store_free(s);
}

static void audit_rows_cannot_be_changed(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct tw_err err;
    assert_int_equal(store_audit_add(s, "issue", "CN=alice", "1", "ok", &err), 0);
    assert_int_equal(raw_exec(s, "UPDATE audit SET result = 'forged'", &err), -1);
    assert_int_equal(err.code, TW_ERR_STORE);
    assert_non_null(strstr(err.msg, "append-only"));
    assert_int_equal(raw_exec(s, "DELETE FROM audit", &err), -1);
    assert_int_equal(err.code, TW_ERR_STORE);
    assert_non_null(strstr(err.msg, "append-only"));
    if (t_pg_base != NULL) {
        /* TRUNCATE skips row triggers: a statement trigger refuses it too. */
        assert_int_equal(raw_exec(s, "TRUNCATE audit", &err), -1);
        assert_non_null(strstr(err.msg, "append-only"));
    } else {
        /* Also through a plain SQLite connection, as an operator's sqlite3 shell would be. */
        sqlite3 *db = NULL;
        assert_int_equal(sqlite3_open(tdb, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "DELETE FROM audit", NULL, NULL, NULL) & 0xff,
                         SQLITE_CONSTRAINT);
        sqlite3_close(db);
    }
    struct audit_seen seen;
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(store_audit_list(s, collect_audit, &seen, &err), 0);
    assert_int_equal(seen.n, 1);
    assert_string_equal(seen.rows[0].result, "ok");
    store_free(s);
}

static void crl_numbers_grow_across_handles(void **state)
{
    (void)state;
    struct store *a = open_ok();
    struct store *b = open_ok();
    struct tw_err err;
    int64_t last = 0;
    for (int i = 0; i < 10; i++) {
        int64_t n = 0;
        assert_int_equal(store_crl_number_next(i % 2 ? a : b, &n, &err), 0);
        assert_true(n > last);
        last = n;
    }
    assert_int_equal(last, 10);
    store_free(a);
    store_free(b);
    struct store *c = open_ok(); /* and across reopening */
    int64_t n = 0;
    assert_int_equal(store_crl_number_next(c, &n, &err), 0);
    assert_int_equal(n, 11);
    store_free(c);
}

/* Two processes racing for numbers never get the same one. */
static void crl_numbers_unique_across_processes(void **state)
{
    (void)state;
    store_free(open_ok());
    enum { PER_CHILD = 15, CHILDREN = 2 };
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    for (int c = 0; c < CHILDREN; c++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            struct store *s = NULL;
            struct tw_err err;
            if (store_open(tdb, &s, &err) != 0)
                _exit(2);
            for (int i = 0; i < PER_CHILD; i++) {
                int64_t n = 0;
                if (store_crl_number_next(s, &n, &err) != 0 ||
                    write(fds[1], &n, sizeof(n)) != (ssize_t)sizeof(n))
                    _exit(3);
            }
            store_free(s);
            _exit(0);
        }
    }
    close(fds[1]);
    int seen[CHILDREN * PER_CHILD + 1];
    memset(seen, 0, sizeof(seen));
    int64_t n;
    int count = 0;
    while (read(fds[0], &n, sizeof(n)) == (ssize_t)sizeof(n)) {
        assert_true(n >= 1 && n <= CHILDREN * PER_CHILD);
        assert_int_equal(seen[n], 0);
        seen[n] = 1;
        count++;
    }
    close(fds[0]);
    for (int c = 0; c < CHILDREN; c++) {
        int status = 0;
        assert_true(wait(&status) > 0);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    assert_int_equal(count, CHILDREN * PER_CHILD);
}

static int count_certs(const struct store_cert *c, void *ctx)
{
    (void)c;
    (*(int *)ctx)++;
    return 0;
}

static int certs_in(struct store *s)
{
    int n = 0;
    struct tw_err err;
    assert_int_equal(store_cert_list(s, NULL, count_certs, &n, &err), 0);
    return n;
}

struct txn_plan {
    const char *serials[3];
    int fail_after; /* fail once this many rows were put; 0: never */
};

static int put_rows(struct store *s, void *ctx, struct tw_err *err)
{
    struct txn_plan *plan = ctx;
    for (int i = 0; i < 3 && plan->serials[i] != NULL; i++) {
        if (plan->fail_after > 0 && i == plan->fail_after)
            return tw_err_set(err, TW_ERR_PKI, "step %d failed", i);
        struct store_cert c;
        make_cert(&c, plan->serials[i], "txn");
        TW_GUARD(store_cert_put(s, &c, err));
    }
    return 0;
}

static void transaction_commits_all(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct tw_err err;
    struct txn_plan plan = {{"1", "2", "3"}, 0};
    assert_int_equal(store_transaction(s, put_rows, &plan, &err), 0);
    assert_int_equal(certs_in(s), 3);
    store_free(s);
}

static void transaction_rolls_back_and_keeps_error(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct tw_err err;
    struct txn_plan plan = {{"1", "2", "3"}, 2};
    assert_int_equal(store_transaction(s, put_rows, &plan, &err), -1);
    assert_int_equal(err.code, TW_ERR_PKI);
    assert_string_equal(err.msg, "step 2 failed");
    assert_int_equal(certs_in(s), 0);
    /* A failure from the store itself (duplicate serial) rolls back too, keeping its code. */
    struct txn_plan dup = {{"5", "5", NULL}, 0};
    assert_int_equal(store_transaction(s, put_rows, &dup, &err), -1);
    assert_int_equal(err.code, TW_ERR_EXISTS);
    assert_int_equal(certs_in(s), 0);
    store_free(s);
}

static int fail_silently(struct store *s, void *ctx, struct tw_err *err)
{
    (void)s, (void)ctx, (void)err;
    return -1;
}

static void transaction_step_failing_without_error_is_internal(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct tw_err err;
    assert_int_equal(store_transaction(s, fail_silently, NULL, &err), -1);
    assert_int_equal(err.code, TW_ERR_INTERNAL);
    store_free(s);
}

/* Outer puts "A", inner transaction fails after "B": B is undone alone, A and the CRL number
 * taken inside commit with the outer transaction. */
static int nested(struct store *s, void *ctx, struct tw_err *err)
{
    int64_t *crl = ctx;
    struct store_cert c;
    make_cert(&c, "A", "outer");
    TW_GUARD(store_cert_put(s, &c, err));
    struct txn_plan inner = {{"B", "C", NULL}, 1};
    if (store_transaction(s, put_rows, &inner, err) == 0)
        return tw_err_set(err, TW_ERR_INTERNAL, "inner transaction should have failed");
    TW_GUARD(store_crl_number_next(s, crl, err));
    return store_cert_revoke(s, "A", 0, 0, err);
}

static void nested_transactions_use_savepoints(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct tw_err err;
    int64_t crl = 0;
    assert_int_equal(store_transaction(s, nested, &crl, &err), 0);
    assert_int_equal(crl, 1);
    assert_int_equal(certs_in(s), 1);
    struct store_cert got;
    assert_int_equal(store_cert_get(s, "A", &got, &err), 0);
    assert_int_equal(got.status, STORE_REVOKED);
    store_cert_clear(&got);
    assert_int_equal(store_cert_get(s, "B", &got, &err), -1);
    assert_int_equal(err.code, TW_ERR_NOTFOUND);
    store_free(s);
}

static int put_one_then_fail(struct store *s, void *ctx, struct tw_err *err)
{
    (void)ctx;
    struct store_cert c;
    make_cert(&c, "F", "freed");
    TW_GUARD(store_cert_put(s, &c, err));
    int64_t n = 0;
    TW_GUARD(store_crl_number_next(s, &n, err));
    return tw_err_set(err, TW_ERR_IO, "cannot write F.pem");
}

static void failed_transaction_leaves_nothing_behind(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct tw_err err;
    assert_int_equal(store_transaction(s, put_one_then_fail, NULL, &err), -1);
    assert_int_equal(err.code, TW_ERR_IO);
    assert_int_equal(certs_in(s), 0);
    int64_t n = 0;
    assert_int_equal(store_crl_number_next(s, &n, &err), 0);
    assert_int_equal(n, 1); /* the number taken inside was rolled back too */
    store_free(s);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, tmp_setup, tmp_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(audit_rows_append_in_order),
        T(audit_without_action_is_internal),
        T(audit_rows_cannot_be_changed),
        T(crl_numbers_grow_across_handles),
        T(crl_numbers_unique_across_processes),
        T(transaction_commits_all),
        T(transaction_rolls_back_and_keeps_error),
        T(transaction_step_failing_without_error_is_internal),
        T(nested_transactions_use_savepoints),
        T(failed_transaction_leaves_nothing_behind),
    };
    return RUN_BOTH(tests);
}
