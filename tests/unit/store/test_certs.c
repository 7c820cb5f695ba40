#include "testutil.h"

static void put_then_get_round_trips_every_field(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct store_cert c;
    make_cert(&c, "00ab12", "alice");
    snprintf(c.sans, sizeof(c.sans), "dns:alice.example,ip:127.0.0.1");
    snprintf(c.profile, sizeof(c.profile), "server");
    put_ok(s, &c);

    struct store_cert got;
    struct tw_err err;
    assert_int_equal(store_cert_get(s, "AB12", &got, &err), 0);
    assert_string_equal(got.serial, "AB12");
    assert_string_equal(got.name, "alice");
    assert_string_equal(got.subject, "CN=alice");
    assert_string_equal(got.sans, "dns:alice.example,ip:127.0.0.1");
    assert_string_equal(got.profile, "server");
    assert_string_equal(got.issuer, "CN=Test Intermediate");
    assert_string_equal(got.sha256, c.sha256);
    assert_int_equal(got.not_before, c.not_before);
    assert_int_equal(got.not_after, c.not_after);
    assert_int_equal(got.issued_at, c.issued_at);
    assert_int_equal(got.status, STORE_VALID);
    assert_int_equal(got.revoked_at, 0);
    assert_int_equal(got.revoke_reason, -1);
    assert_string_equal(got.pem, c.pem);
    store_cert_clear(&got);
    /* Case and leading zeros do not matter on lookup either. */
    assert_int_equal(store_cert_get(s, "000ab12", &got, &err), 0);
    store_cert_clear(&got);
    store_free(s);
}

static void put_without_issued_at_or_pem_uses_now_and_null(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct store_cert c;
    make_cert(&c, "C0", "carol");
    c.issued_at = 0;
    c.pem = NULL;
    int64_t before = (int64_t)time(NULL);
    put_ok(s, &c);
    struct store_cert got;
    struct tw_err err;
    assert_int_equal(store_cert_get(s, "c0", &got, &err), 0);
    assert_true(got.issued_at >= before && got.issued_at <= before + 5);
    assert_null(got.pem);
    store_cert_clear(&got);
    store_free(s);
}

static void put_duplicate_serial_is_exists(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct store_cert c;
    make_cert(&c, "ABCD", "alice");
    put_ok(s, &c);
    make_cert(&c, "00abcd", "mallory"); /* same serial, spelt differently */
    struct tw_err err;
    assert_int_equal(store_cert_put(s, &c, &err), -1);
    assert_int_equal(err.code, TW_ERR_EXISTS);
    assert_non_null(strstr(err.msg, "ABCD"));
    struct store_cert got;
    assert_int_equal(store_cert_get(s, "ABCD", &got, &err), 0);
    assert_string_equal(got.name, "alice"); /* not overwritten */
    store_cert_clear(&got);
    store_free(s);
}

static void put_invalid_serial_is_internal(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct store_cert c;
    make_cert(&c, "not-hex", "alice");
    struct tw_err err;
    assert_int_equal(store_cert_put(s, &c, &err), -1);
    assert_int_equal(err.code, TW_ERR_INTERNAL);
    make_cert(&c, "", "alice");
    assert_int_equal(store_cert_put(s, &c, &err), -1);
    assert_int_equal(err.code, TW_ERR_INTERNAL);
    store_free(s);
}

static void get_unknown_or_malformed_is_notfound(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct store_cert got;
    struct tw_err err;
    assert_int_equal(store_cert_get(s, "DEAD", &got, &err), -1);
    assert_int_equal(err.code, TW_ERR_NOTFOUND);
    assert_non_null(strstr(err.msg, "DEAD"));
    assert_int_equal(store_cert_get(s, "zz-top", &got, &err), -1);
    assert_int_equal(err.code, TW_ERR_NOTFOUND);
    assert_non_null(strstr(err.msg, "zz-top"));
    assert_int_equal(store_cert_get(s, NULL, &got, &err), -1);
    assert_int_equal(err.code, TW_ERR_NOTFOUND);
    store_free(s);
}

static void newest_picks_latest_issue(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct store_cert c;
    make_cert(&c, "01", "alice");
    c.issued_at = 1000;
    put_ok(s, &c);
    make_cert(&c, "03", "alice");
    c.issued_at = 3000;
    put_ok(s, &c);
    make_cert(&c, "02", "alice");
    c.issued_at = 2000;
    put_ok(s, &c);
    make_cert(&c, "04", "bob");
    c.issued_at = 4000;
    put_ok(s, &c);
    struct store_cert got;
    struct tw_err err;
    assert_int_equal(store_cert_newest(s, "alice", &got, &err), 0);
    assert_string_equal(got.serial, "3");
    store_cert_clear(&got);
    assert_int_equal(store_cert_newest(s, "carol", &got, &err), -1);
    assert_int_equal(err.code, TW_ERR_NOTFOUND);
    assert_non_null(strstr(err.msg, "carol"));
    assert_int_equal(store_cert_newest(s, NULL, &got, &err), -1);
    assert_int_equal(err.code, TW_ERR_NOTFOUND);
    store_free(s);
}

struct seen {
    int n;
    char serials[16][STORE_SERIAL_MAX];
    int stop_after;
};

static int collect(const struct store_cert *c, void *ctx)
{
    struct seen *seen = ctx;
    if (seen->n < 16)
        snprintf(seen->serials[seen->n], STORE_SERIAL_MAX, "%s", c->serial);
    seen->n++;
    return seen->stop_after > 0 && seen->n >= seen->stop_after;
}

/* Rows: 1 alice client valid; 2 bob server valid expiring soon; 3 carol client expired;
 * 4 alice-2 client revoked. Issued in that order. */
static struct store *inventory(void)
{
    struct store *s = open_ok();
    int64_t now = (int64_t)time(NULL);
    struct store_cert c;
    make_cert(&c, "1", "alice");
    c.issued_at = now - 40;
    c.not_after = now + 90 * 86400;
    put_ok(s, &c);
    make_cert(&c, "2", "bob");
    snprintf(c.profile, sizeof(c.profile), "server");
    c.issued_at = now - 30;
    c.not_after = now + 3600;
    put_ok(s, &c);
    make_cert(&c, "3", "carol");
    c.issued_at = now - 20;
    c.not_after = now - 10;
    put_ok(s, &c);
    make_cert(&c, "4", "alice-2");
    c.issued_at = now - 10;
    put_ok(s, &c);
    struct tw_err err;
    assert_int_equal(store_cert_revoke(s, "4", 1, 0, &err), 0);
    return s;
}

static void list_filters(struct store *s, const struct store_filter *f, const char *expect)
{
    struct seen seen;
    memset(&seen, 0, sizeof(seen));
    struct tw_err err;
    assert_int_equal(store_cert_list(s, f, collect, &seen, &err), 0);
    char got[64] = "";
    for (int i = 0; i < seen.n && i < 16; i++) {
        size_t used = strlen(got);
        snprintf(got + used, sizeof(got) - used, "%s%s", i ? "," : "", seen.serials[i]);
    }
    assert_string_equal(got, expect);
}

static void list_everything_oldest_first(void **state)
{
    (void)state;
    struct store *s = inventory();
    list_filters(s, NULL, "1,2,3,4");
    struct store_filter any = {.status = -1};
    list_filters(s, &any, "1,2,3,4");
    store_free(s);
}

static void list_by_status_derives_expired(void **state)
{
    (void)state;
    struct store *s = inventory();
    struct store_filter f = {.status = STORE_VALID};
    list_filters(s, &f, "1,2");
    f.status = STORE_EXPIRED;
    list_filters(s, &f, "3");
    f.status = STORE_REVOKED;
    list_filters(s, &f, "4");
    store_free(s);
}

static void list_expiring_glob_profile(void **state)
{
    (void)state;
    struct store *s = inventory();
    struct store_filter f = {.status = -1, .expiring_within = 86400};
    list_filters(s, &f, "2");
    struct store_filter g = {.status = -1, .name_glob = "alice*"};
    list_filters(s, &g, "1,4");
    struct store_filter p = {.status = -1, .profile = "server"};
    list_filters(s, &p, "2");
    struct store_filter both = {.status = STORE_VALID, .profile = "client"};
    list_filters(s, &both, "1");
    /* A "now" far in the future makes everything unrevoked expired. */
    struct store_filter later = {.status = STORE_EXPIRED, .now = (int64_t)time(NULL) + 400 * 86400};
    list_filters(s, &later, "1,2,3");
    store_free(s);
}

static void list_stops_when_callback_says_so(void **state)
{
    (void)state;
    struct store *s = inventory();
    struct seen seen;
    memset(&seen, 0, sizeof(seen));
    seen.stop_after = 2;
    struct tw_err err;
    assert_int_equal(store_cert_list(s, NULL, collect, &seen, &err), 0);
    assert_int_equal(seen.n, 2);
    store_free(s);
}

static void revoke_records_reason_and_time(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct store_cert c;
    make_cert(&c, "0A", "alice");
    put_ok(s, &c);
    struct tw_err err;
    assert_int_equal(store_cert_revoke(s, "a", 4, 12345, &err), 0);
    struct store_cert got;
    assert_int_equal(store_cert_get(s, "A", &got, &err), 0);
    assert_int_equal(got.status, STORE_REVOKED);
    assert_int_equal(got.revoke_reason, 4);
    assert_int_equal(got.revoked_at, 12345);
    store_cert_clear(&got);
    store_free(s);
}

static void revoke_twice_is_exists_and_keeps_first(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct store_cert c;
    make_cert(&c, "B", "bob");
    put_ok(s, &c);
    struct tw_err err;
    assert_int_equal(store_cert_revoke(s, "B", 1, 100, &err), 0);
    assert_int_equal(store_cert_revoke(s, "0b", 5, 200, &err), -1);
    assert_int_equal(err.code, TW_ERR_EXISTS);
    assert_non_null(strstr(err.msg, "already revoked"));
    struct store_cert got;
    assert_int_equal(store_cert_get(s, "B", &got, &err), 0);
    assert_int_equal(got.revoke_reason, 1);
    assert_int_equal(got.revoked_at, 100);
    store_cert_clear(&got);
    store_free(s);
}

static void revoke_errors_have_their_codes(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct store_cert c;
    make_cert(&c, "C", "carol");
    put_ok(s, &c);
    struct tw_err err;
    assert_int_equal(store_cert_revoke(s, "FFFF", 0, 0, &err), -1);
    assert_int_equal(err.code, TW_ERR_NOTFOUND);
    assert_non_null(strstr(err.msg, "FFFF"));
    assert_int_equal(store_cert_revoke(s, "nothex", 0, 0, &err), -1);
    assert_int_equal(err.code, TW_ERR_NOTFOUND);
    assert_int_equal(store_cert_revoke(s, "C", 7, 0, &err), -1); /* 7 is unused in RFC 5280 */
    assert_int_equal(err.code, TW_ERR_USAGE);
    assert_int_equal(store_cert_revoke(s, "C", 11, 0, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
    assert_int_equal(store_cert_revoke(s, "C", -1, 0, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
    for (int reason = 0; reason <= 10; reason++) { /* every valid code is accepted */
        if (reason == 7)
            continue;
        char serial[8];
        snprintf(serial, sizeof(serial), "E%d", reason);
        make_cert(&c, serial, "eve");
        put_ok(s, &c);
        assert_int_equal(store_cert_revoke(s, serial, reason, 0, &err), 0);
    }
    store_free(s);
}

static void revoked_list_by_issuer(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct store_cert c;
    make_cert(&c, "1", "a");
    put_ok(s, &c);
    make_cert(&c, "2", "b");
    snprintf(c.issuer, sizeof(c.issuer), "CN=Other CA");
    put_ok(s, &c);
    make_cert(&c, "3", "c");
    put_ok(s, &c);
    make_cert(&c, "4", "d");
    c.not_after = 10; /* expired long ago: still listed for the CRL */
    put_ok(s, &c);
    struct tw_err err;
    assert_int_equal(store_cert_revoke(s, "4", 1, 50, &err), 0);
    assert_int_equal(store_cert_revoke(s, "2", 1, 60, &err), 0);
    assert_int_equal(store_cert_revoke(s, "1", 1, 70, &err), 0);
    struct seen seen;
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(store_revoked_list(s, "CN=Test Intermediate", collect, &seen, &err), 0);
    assert_int_equal(seen.n, 2);
    assert_string_equal(seen.serials[0], "4");
    assert_string_equal(seen.serials[1], "1");
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(store_revoked_list(s, NULL, collect, &seen, &err), 0);
    assert_int_equal(seen.n, 3);
    int64_t n = -1;
    assert_int_equal(store_revoked_count(s, "CN=Test Intermediate", &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(store_revoked_count(s, NULL, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(store_revoked_count(s, "CN=Nobody", &n, &err), 0);
    assert_int_equal(n, 0);
    store_free(s);
}

static void two_handles_see_each_others_writes(void **state)
{
    (void)state;
    struct store *a = open_ok();
    struct store *b = open_ok();
    struct store_cert c;
    make_cert(&c, "AA", "alice");
    put_ok(a, &c);
    struct store_cert got;
    struct tw_err err;
    assert_int_equal(store_cert_get(b, "AA", &got, &err), 0);
    store_cert_clear(&got);
    assert_int_equal(store_cert_revoke(b, "AA", 1, 0, &err), 0);
    assert_int_equal(store_cert_get(a, "AA", &got, &err), 0);
    assert_int_equal(got.status, STORE_REVOKED);
    store_cert_clear(&got);
    assert_int_equal(store_cert_revoke(a, "AA", 1, 0, &err), -1);
    assert_int_equal(err.code, TW_ERR_EXISTS);
    store_free(a);
    store_free(b);
}

static void clear_accepts_zeroed_row(void **state)
{
    (void)state;
    struct store_cert c;
    memset(&c, 0, sizeof(c));
    store_cert_clear(&c);
    store_cert_clear(NULL);
    store_free(NULL);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, tmp_setup, tmp_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(put_then_get_round_trips_every_field),
        T(put_without_issued_at_or_pem_uses_now_and_null),
        T(put_duplicate_serial_is_exists),
        T(put_invalid_serial_is_internal),
        T(get_unknown_or_malformed_is_notfound),
        T(newest_picks_latest_issue),
        T(list_everything_oldest_first),
        T(list_by_status_derives_expired),
        T(list_expiring_glob_profile),
        T(list_stops_when_callback_says_so),
        T(revoke_records_reason_and_time),
        T(revoke_twice_is_exists_and_keeps_first),
        T(revoke_errors_have_their_codes),
        T(revoked_list_by_issuer),
        T(two_handles_see_each_others_writes),
        cmocka_unit_test(clear_accepts_zeroed_row),
    };
    return RUN_BOTH(tests);
}
