/* Pending enrollment requests (manual EST approval): add, get, find by prefix, list, decide
 * once, serial once; every failure path's error code. Runs on SQLite, then PostgreSQL. */
#include "testutil.h"

#include "store/internal.h"

static const unsigned char csr_bytes[] = {0x30, 0x82, 0x00, 0x01, 0xff, 0x00, 0x7f};

static void make_pending(struct store_pending *p, const char *id, const char *name)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->id, sizeof(p->id), "%s", id);
    snprintf(p->name, sizeof(p->name), "%s", name);
    snprintf(p->subject, sizeof(p->subject), "CN=%s", name);
    snprintf(p->sans, sizeof(p->sans), "dns:%s.example", name);
    snprintf(p->profile, sizeof(p->profile), "client");
    snprintf(p->peer, sizeof(p->peer), "127.0.0.1");
    p->csr = (unsigned char *)csr_bytes;
    p->csr_len = sizeof(csr_bytes);
}

/* A 64-digit id: prefix then zeros. */
static const char *id_of(const char *prefix, char out[65])
{
    snprintf(out, 65, "%s%0*d", prefix, (int)(64 - strlen(prefix)), 0);
    return out;
}

static void add_ok(struct store *s, const char *prefix, const char *name)
{
    char id[65];
    struct store_pending p;
    make_pending(&p, id_of(prefix, id), name);
    struct tw_err err;
    int rc = store_pending_add(s, &p, 0, &err);
    if (rc != 0)
        fprintf(stderr, "store_pending_add: %s\n", err.msg);
    assert_int_equal(rc, 0);
}

static void add_get_roundtrip(void **state)
{
    (void)state;
    struct store *s = open_ok();
    add_ok(s, "ab12", "dev1");
    char id[65];
    struct store_pending got;
    struct tw_err err;
    /* Upper-case ids are the same request. */
    assert_int_equal(store_pending_get(s, id_of("AB12", id), &got, &err), 0);
    assert_string_equal(got.id, id_of("ab12", id));
    assert_string_equal(got.name, "dev1");
    assert_string_equal(got.subject, "CN=dev1");
    assert_string_equal(got.sans, "dns:dev1.example");
    assert_string_equal(got.profile, "client");
    assert_string_equal(got.peer, "127.0.0.1");
    assert_string_equal(got.state, "pending");
    assert_string_equal(got.serial, "");
    assert_true(got.created_at > 0);
    assert_int_equal(got.csr_len, sizeof(csr_bytes));
    assert_memory_equal(got.csr, csr_bytes, sizeof(csr_bytes));
    store_pending_clear(&got);
    assert_null(got.csr);
    store_pending_clear(NULL);
    store_free(s);
}

static void add_refuses_duplicates_bad_ids_and_a_full_queue(void **state)
{
    (void)state;
    struct store *s = open_ok();
    add_ok(s, "01", "a");
    struct store_pending p;
    char id[65];
    struct tw_err err;
    make_pending(&p, id_of("01", id), "a");
    assert_int_equal(store_pending_add(s, &p, 0, &err), -1);
    assert_int_equal(err.code, TW_ERR_EXISTS);
    make_pending(&p, "xyz", "a");
    assert_int_equal(store_pending_add(s, &p, 0, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
    make_pending(&p, id_of("02", id), "b");
    p.csr = NULL;
    assert_int_equal(store_pending_add(s, &p, 0, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
    make_pending(&p, id_of("02", id), "b");
    p.csr_len = STORE_PENDING_CSR_MAX + 1;
    assert_int_equal(store_pending_add(s, &p, 0, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
    /* One waits; at most one may: the second is refused, and nothing was added. */
    make_pending(&p, id_of("02", id), "b");
    assert_int_equal(store_pending_add(s, &p, 1, &err), -1);
    assert_int_equal(err.code, TW_ERR_POLICY);
    struct store_pending got;
    assert_int_equal(store_pending_get(s, id, &got, &err), -1);
    assert_int_equal(err.code, TW_ERR_NOTFOUND);
    /* Decided requests do not count. */
    assert_int_equal(store_pending_decide(s, id_of("01", id), 0, 0, "no", 0, &err), 0);
    make_pending(&p, id_of("02", id), "b");
    assert_int_equal(store_pending_add(s, &p, 1, &err), 0);
    store_free(s);
}

static void find_by_unique_prefix(void **state)
{
    (void)state;
    struct store *s = open_ok();
    add_ok(s, "aa11", "one");
    add_ok(s, "aa22", "two");
    struct store_pending got;
    struct tw_err err;
    assert_int_equal(store_pending_find(s, "AA2", &got, &err), 0);
    assert_string_equal(got.name, "two");
    assert_null(got.csr);
    assert_int_equal(store_pending_find(s, "aa", &got, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
    assert_non_null(strstr(err.msg, "ambiguous"));
    assert_int_equal(store_pending_find(s, "bb", &got, &err), -1);
    assert_int_equal(err.code, TW_ERR_NOTFOUND);
    assert_int_equal(store_pending_find(s, "a%", &got, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
    assert_int_equal(store_pending_find(s, "", &got, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
    assert_int_equal(store_pending_find(s, NULL, &got, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
    store_free(s);
}

struct seen {
    int n;
    char names[4][STORE_NAME_MAX];
};

static int collect(const struct store_pending *p, void *ctx)
{
    struct seen *seen = ctx;
    if (seen->n < 4)
        snprintf(seen->names[seen->n], sizeof(seen->names[0]), "%s", p->name);
    seen->n++;
    return 0;
}

static int stop_at_first(const struct store_pending *p, void *ctx)
{
    (void)p;
    (*(int *)ctx)++;
    return 1;
}

static void list_filters_by_state(void **state)
{
    (void)state;
    struct store *s = open_ok();
    add_ok(s, "c1", "first");
    add_ok(s, "c2", "second");
    add_ok(s, "c3", "third");
    char id[65];
    struct tw_err err;
    assert_int_equal(store_pending_decide(s, id_of("c2", id), 1, 3600, NULL, 0, &err), 0);
    struct seen all = {0}, waiting = {0}, approved = {0};
    assert_int_equal(store_pending_list(s, NULL, collect, &all, &err), 0);
    assert_int_equal(all.n, 3);
    assert_int_equal(store_pending_list(s, "pending", collect, &waiting, &err), 0);
    assert_int_equal(waiting.n, 2);
    assert_string_equal(waiting.names[0], "first");
    assert_string_equal(waiting.names[1], "third");
    assert_int_equal(store_pending_list(s, "approved", collect, &approved, &err), 0);
    assert_int_equal(approved.n, 1);
    assert_string_equal(approved.names[0], "second");
    int calls = 0;
    assert_int_equal(store_pending_list(s, NULL, stop_at_first, &calls, &err), 0);
    assert_int_equal(calls, 1);
    store_free(s);
}

static void decide_once_then_serial_once(void **state)
{
    (void)state;
    struct store *s = open_ok();
    add_ok(s, "d1", "dev");
    add_ok(s, "d2", "other");
    char id[65], id2[65];
    id_of("d1", id);
    id_of("d2", id2);
    struct tw_err err;
    /* No serial before approval. */
    assert_int_equal(store_pending_set_serial(s, id, "0A", &err), -1);
    assert_int_equal(err.code, TW_ERR_EXISTS);
    assert_int_equal(store_pending_decide(s, id, 1, 86400, NULL, 1000, &err), 0);
    assert_int_equal(store_pending_decide(s, id, 0, 0, "late", 0, &err), -1);
    assert_int_equal(err.code, TW_ERR_EXISTS);
    assert_non_null(strstr(err.msg, "already approved"));
    assert_int_equal(store_pending_decide(s, id_of("ee", id2), 1, 0, NULL, 0, &err), -1);
    assert_int_equal(err.code, TW_ERR_NOTFOUND);
    assert_int_equal(store_pending_decide(s, id, 1, -1, NULL, 0, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
    assert_int_equal(store_pending_set_serial(s, id, "00ab12", &err), 0);
    assert_int_equal(store_pending_set_serial(s, id, "CD", &err), -1);
    assert_int_equal(err.code, TW_ERR_EXISTS);
    assert_int_equal(store_pending_set_serial(s, id, "not hex", &err), -1);
    assert_int_equal(err.code, TW_ERR_INTERNAL);
    struct store_pending got;
    assert_int_equal(store_pending_get(s, id, &got, &err), 0);
    assert_string_equal(got.state, "approved");
    assert_string_equal(got.serial, "AB12");
    assert_int_equal(got.lifetime, 86400);
    assert_int_equal(got.decided_at, 1000);
    store_pending_clear(&got);
    /* A rejection keeps its reason; a rejected request gets no serial. */
    assert_int_equal(store_pending_decide(s, id_of("d2", id2), 0, 99, "unknown device", 0, &err),
                     0);
    assert_int_equal(store_pending_get(s, id2, &got, &err), 0);
    assert_string_equal(got.state, "rejected");
    assert_string_equal(got.reason, "unknown device");
    assert_int_equal(got.lifetime, 0);
    store_pending_clear(&got);
    assert_int_equal(store_pending_set_serial(s, id2, "01", &err), -1);
    assert_int_equal(err.code, TW_ERR_EXISTS);
    store_free(s);
}

static int add_in_txn(struct store *s, void *ctx, struct tw_err *err)
{
    (void)ctx;
    char id[65];
    struct store_pending p;
    make_pending(&p, id_of("f1", id), "txn");
    if (store_pending_add(s, &p, 0, err) != 0)
        return -1;
    return tw_err_set(err, TW_ERR_PKI, "issuance failed");
}

static void add_inside_a_failed_transaction_leaves_nothing(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct tw_err err;
    assert_int_equal(store_transaction(s, add_in_txn, NULL, &err), -1);
    assert_int_equal(err.code, TW_ERR_PKI);
    struct seen all = {0};
    assert_int_equal(store_pending_list(s, NULL, collect, &all, &err), 0);
    assert_int_equal(all.n, 0);
    store_free(s);
}

/* store_copy's pair: a row imported as it was read comes back with every column, decision
 * and serial included; the imported rows behave as decided (or waiting) ones. */
static void import_keeps_every_column(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct tw_err err;
    char id[65];
    struct store_pending rows[3];
    make_pending(&rows[0], id_of("a1", id), "waiting");
    rows[0].created_at = 1700000001;
    snprintf(rows[0].state, sizeof(rows[0].state), "pending");
    make_pending(&rows[1], id_of("b2", id), "approved");
    rows[1].created_at = 1700000002;
    snprintf(rows[1].state, sizeof(rows[1].state), "approved");
    rows[1].decided_at = 1700000100;
    rows[1].lifetime = 86400;
    snprintf(rows[1].serial, sizeof(rows[1].serial), "1A2B");
    snprintf(rows[1].peer, sizeof(rows[1].peer), "::1");
    make_pending(&rows[2], id_of("c3", id), "rejected");
    rows[2].created_at = 1700000003;
    snprintf(rows[2].state, sizeof(rows[2].state), "rejected");
    rows[2].decided_at = 1700000200;
    snprintf(rows[2].reason, sizeof(rows[2].reason), "not ours");
    for (int i = 0; i < 3; i++) {
        int rc = store_pending_import(s, &rows[i], &err);
        if (rc != 0)
            fprintf(stderr, "store_pending_import: %s\n", err.msg);
        assert_int_equal(rc, 0);
    }
    for (int i = 0; i < 3; i++) {
        struct store_pending got;
        assert_int_equal(store_pending_get(s, rows[i].id, &got, &err), 0);
        assert_string_equal(got.id, rows[i].id);
        assert_string_equal(got.name, rows[i].name);
        assert_string_equal(got.subject, rows[i].subject);
        assert_string_equal(got.sans, rows[i].sans);
        assert_string_equal(got.profile, rows[i].profile);
        assert_string_equal(got.peer, rows[i].peer);
        assert_int_equal(got.created_at, rows[i].created_at);
        assert_string_equal(got.state, rows[i].state);
        assert_int_equal(got.decided_at, rows[i].decided_at);
        assert_int_equal(got.lifetime, rows[i].lifetime);
        assert_string_equal(got.reason, rows[i].reason);
        assert_string_equal(got.serial, rows[i].serial);
        assert_int_equal(got.csr_len, sizeof(csr_bytes));
        assert_memory_equal(got.csr, csr_bytes, sizeof(csr_bytes));
        store_pending_clear(&got);
    }
    /* Decisions and serials carried over: decided once, one certificate. */
    assert_int_equal(store_pending_set_serial(s, rows[1].id, "33", &err), -1);
    assert_int_equal(err.code, TW_ERR_EXISTS);
    assert_int_equal(store_pending_decide(s, rows[2].id, 1, 0, NULL, 0, &err), -1);
    assert_int_equal(err.code, TW_ERR_EXISTS);
    assert_int_equal(store_pending_decide(s, rows[0].id, 0, 0, "late", 0, &err), 0);
    /* Failures: a taken id, a bad id, no CSR, a state the schema does not know. */
    assert_int_equal(store_pending_import(s, &rows[1], &err), -1);
    assert_int_equal(err.code, TW_ERR_EXISTS);
    struct store_pending bad;
    make_pending(&bad, "zz", "bad");
    snprintf(bad.state, sizeof(bad.state), "pending");
    assert_int_equal(store_pending_import(s, &bad, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
    make_pending(&bad, id_of("d4", id), "bad");
    snprintf(bad.state, sizeof(bad.state), "pending");
    bad.csr = NULL;
    assert_int_equal(store_pending_import(s, &bad, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
    make_pending(&bad, id_of("d4", id), "bad");
    snprintf(bad.state, sizeof(bad.state), "lost");
    assert_int_equal(store_pending_import(s, &bad, &err), -1);
    struct seen all = {0};
    assert_int_equal(store_pending_list(s, NULL, collect, &all, &err), 0);
    assert_int_equal(all.n, 3);
    store_free(s);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, tmp_setup, tmp_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(add_get_roundtrip),
        T(add_refuses_duplicates_bad_ids_and_a_full_queue),
        T(find_by_unique_prefix),
        T(list_filters_by_state),
        T(decide_once_then_serial_once),
        T(add_inside_a_failed_transaction_leaves_nothing),
        T(import_keeps_every_column),
    };
    return RUN_BOTH(tests);
}
