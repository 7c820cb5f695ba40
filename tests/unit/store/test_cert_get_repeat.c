/* store_cert_get called again and again on one handle, as the OCSP responder does for every
 * answer (SQLite keeps that lookup prepared between calls): each call sees the inventory as
 * it is at that moment, inside and outside transactions, after errors, and on both back ends.
 * Closing a handle that used it leaves nothing behind (LSan). */
#include "testutil.h"

#include "store/internal.h" /* store_txn_begin and friends */

static void get_status(struct store *s, const char *serial, enum store_status want)
{
    struct store_cert got;
    struct tw_err err;
    int rc = store_cert_get(s, serial, &got, &err);
    if (rc != 0)
        fprintf(stderr, "store_cert_get %s: %s\n", serial, err.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(got.status, want);
    store_cert_clear(&got);
}

static void get_notfound(struct store *s, const char *serial)
{
    struct store_cert got;
    struct tw_err err;
    assert_int_equal(store_cert_get(s, serial, &got, &err), -1);
    assert_int_equal(err.code, TW_ERR_NOTFOUND);
    assert_non_null(strstr(err.msg, "no certificate with serial"));
}

static void each_get_sees_the_other_handles_latest_write(void **state)
{
    (void)state;
    struct store *a = open_ok(), *b = open_ok();
    struct store_cert c;
    make_cert(&c, "A1", "alice");
    put_ok(a, &c);
    struct tw_err err;
    /* The responder's loop: ask, another process revokes or issues, ask again. */
    for (int i = 0; i < 3; i++) {
        get_status(a, "A1", STORE_VALID);
        get_status(a, "A1", STORE_VALID);
    }
    assert_int_equal(store_cert_revoke(b, "A1", 1, 1700000000, &err), 0);
    struct store_cert got;
    assert_int_equal(store_cert_get(a, "a1", &got, &err), 0);
    assert_int_equal(got.status, STORE_REVOKED);
    assert_int_equal(got.revoke_reason, 1);
    assert_int_equal(got.revoked_at, 1700000000);
    store_cert_clear(&got);
    get_notfound(a, "B2");
    make_cert(&c, "B2", "bob");
    put_ok(b, &c);
    get_status(a, "B2", STORE_VALID);
    get_status(a, "A1", STORE_REVOKED);
    store_free(a);
    store_free(b);
}

static void get_inside_a_transaction_and_after_rollback(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct store_cert c;
    make_cert(&c, "C3", "carol");
    struct tw_err err;
    get_notfound(s, "C3");
    assert_int_equal(store_txn_begin(s, &err), 0);
    put_ok(s, &c);
    get_status(s, "C3", STORE_VALID);
    store_txn_rollback(s);
    get_notfound(s, "C3");
    assert_int_equal(store_txn_begin(s, &err), 0);
    put_ok(s, &c);
    assert_int_equal(store_txn_commit(s, &err), 0);
    get_status(s, "C3", STORE_VALID);
    store_free(s);
}

static void a_refused_serial_does_not_disturb_the_next_lookup(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct store_cert c;
    make_cert(&c, "D4", "dave");
    put_ok(s, &c);
    get_notfound(s, "not-hex");
    get_notfound(s, NULL);
    get_status(s, "D4", STORE_VALID);
    get_notfound(s, "D5");
    get_status(s, "0d4", STORE_VALID);
    store_free(s);
}

static void many_lookups_then_close(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct store_cert c;
    make_cert(&c, "E5", "erin");
    put_ok(s, &c);
    for (int i = 0; i < 200; i++)
        get_status(s, "E5", STORE_VALID);
    store_free(s); /* the prepared lookup is finalized: LSan finds nothing */
    s = open_ok(); /* and the file opens again at once */
    get_status(s, "E5", STORE_VALID);
    store_free(s);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, tmp_setup, tmp_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(each_get_sees_the_other_handles_latest_write),
        T(get_inside_a_transaction_and_after_rollback),
        T(a_refused_serial_does_not_disturb_the_next_lookup),
        T(many_lookups_then_close),
    };
    return RUN_BOTH(tests);
}
