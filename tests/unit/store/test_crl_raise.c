/* store_crl_number_raise: the counter becomes max(counter, at_least), never lower, all or
 * nothing inside an outer transaction; on both back ends (RUN_BOTH). */
#include "testutil.h"

static int64_t next_ok(struct store *s)
{
    struct tw_err err;
    int64_t n = 0;
    assert_int_equal(store_crl_number_next(s, &n, &err), 0);
    return n;
}

static void raise_lifts_a_fresh_counter(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct tw_err err;
    assert_int_equal(store_crl_number_raise(s, 5, &err), 0);
    assert_int_equal(next_ok(s), 6);
    store_free(s);
}

static void raise_never_lowers(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct tw_err err;
    for (int i = 0; i < 3; i++)
        (void)next_ok(s);
    assert_int_equal(store_crl_number_raise(s, 1, &err), 0);
    assert_int_equal(next_ok(s), 4);
    assert_int_equal(store_crl_number_raise(s, 4, &err), 0); /* equal: unchanged */
    assert_int_equal(next_ok(s), 5);
    assert_int_equal(store_crl_number_raise(s, 0, &err), 0);
    assert_int_equal(next_ok(s), 6);
    store_free(s);
}

static void raise_is_seen_by_another_handle(void **state)
{
    (void)state;
    struct store *a = open_ok();
    struct store *b = open_ok();
    struct tw_err err;
    assert_int_equal(store_crl_number_raise(a, 41, &err), 0);
    assert_int_equal(next_ok(b), 42);
    assert_int_equal(next_ok(a), 43);
    store_free(a);
    store_free(b);
}

static void negative_is_usage_and_changes_nothing(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct tw_err err;
    (void)next_ok(s);
    assert_int_equal(store_crl_number_raise(s, -1, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
    assert_non_null(strstr(err.msg, "negative"));
    assert_int_equal(next_ok(s), 2);
    store_free(s);
}

static int raise_then_fail(struct store *s, void *ctx, struct tw_err *err)
{
    (void)ctx;
    TW_GUARD(store_crl_number_raise(s, 100, err));
    return tw_err_set(err, TW_ERR_PKI, "step after the raise failed");
}

static void raise_rolls_back_with_the_outer_transaction(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct tw_err err;
    assert_int_equal(store_transaction(s, raise_then_fail, NULL, &err), -1);
    assert_int_equal(err.code, TW_ERR_PKI);
    assert_int_equal(next_ok(s), 1);
    store_free(s);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, tmp_setup, tmp_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(raise_lifts_a_fresh_counter),
        T(raise_never_lowers),
        T(raise_is_seen_by_another_handle),
        T(negative_is_usage_and_changes_nothing),
        T(raise_rolls_back_with_the_outer_transaction),
    };
    return RUN_BOTH(tests);
}
