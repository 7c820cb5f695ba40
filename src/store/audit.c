/* The append-only audit trail, CRL numbers, and caller-driven transactions. */
#include "store/internal.h"

#include <stdio.h>
#include <string.h>

int store_sq_audit_add(struct store *s, const char *action, const char *subject, const char *serial,
                    const char *result, struct tw_err *err)
{
    struct store_audit row; /* only for its field sizes: stored text reads back whole */
    TW_ENSURE(action != NULL && result != NULL, err, TW_ERR_INTERNAL,
              "store: audit entry without action or result");
    char norm[STORE_SERIAL_MAX];
    if (serial != NULL && store_serial_normalise(serial, norm) == 0)
        serial = norm;
    const char *what = "writing the audit trail";
    STORE_AUTO_STMT *st = NULL;
    TW_GUARD(store_prepare(s,
                           "INSERT INTO audit (at, action, subject, serial, result) "
                           "VALUES (?, ?, ?, ?, ?)",
                           &st, what, err));
    sqlite3_bind_int64(st, 1, (sqlite3_int64)time(NULL));
    store_bind_text(st, 2, action, sizeof(row.action));
    store_bind_text(st, 3, subject, sizeof(row.subject));
    store_bind_text(st, 4, serial, sizeof(row.serial));
    store_bind_text(st, 5, result, sizeof(row.result));
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return store_sql_fail(s, rc, what, err);
    return 0;
}

int store_sq_audit_list(struct store *s, store_audit_fn fn, void *ctx, struct tw_err *err)
{
    const char *what = "reading the audit trail";
    STORE_AUTO_STMT *st = NULL;
    TW_GUARD(store_prepare(s,
                           "SELECT id, at, action, subject, serial, result FROM audit "
                           "ORDER BY id",
                           &st, what, err));
    for (;;) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            return 0;
        if (rc != SQLITE_ROW)
            return store_sql_fail(s, rc, what, err);
        struct store_audit a;
        memset(&a, 0, sizeof(a));
        a.id = sqlite3_column_int64(st, 0);
        a.at = sqlite3_column_int64(st, 1);
        store_column_copy(st, 2, a.action, sizeof(a.action));
        store_column_copy(st, 3, a.subject, sizeof(a.subject));
        store_column_copy(st, 4, a.serial, sizeof(a.serial));
        store_column_copy(st, 5, a.result, sizeof(a.result));
        if (fn(&a, ctx) != 0)
            return 0;
    }
}

static int crl_bump(struct store *s, int64_t *number, struct tw_err *err)
{
    const char *what = "taking the next CRL number";
    TW_GUARD(store_exec(s, "UPDATE crl_counter SET last = last + 1 WHERE id = 1", what, err));
    STORE_AUTO_STMT *st = NULL;
    TW_GUARD(store_prepare(s, "SELECT last FROM crl_counter WHERE id = 1", &st, what, err));
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return tw_err_set(err, TW_ERR_STORE, "%s: the CRL counter row is missing", s->path);
    if (rc != SQLITE_ROW)
        return store_sql_fail(s, rc, what, err);
    *number = sqlite3_column_int64(st, 0);
    return 0;
}

int store_sq_crl_number_next(struct store *s, int64_t *number, struct tw_err *err)
{
    /* BEGIN IMMEDIATE holds the write lock across read-increment-read, so two processes
     * can never be handed the same number. */
    TW_GUARD(store_txn_begin(s, err));
    if (crl_bump(s, number, err) != 0) {
        store_txn_rollback(s);
        return -1;
    }
    return store_txn_commit(s, err);
}


int store_sq_crl_counter(struct store *s, int64_t *last, struct tw_err *err)
{
    const char *what = "reading the CRL counter";
    STORE_AUTO_STMT *st = NULL;
    TW_GUARD(store_prepare(s, "SELECT last FROM crl_counter WHERE id = 1", &st, what, err));
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return tw_err_set(err, TW_ERR_STORE, "%s: the CRL counter row is missing", s->path);
    if (rc != SQLITE_ROW)
        return store_sql_fail(s, rc, what, err);
    *last = sqlite3_column_int64(st, 0);
    return 0;
}

int store_sq_crl_counter_set(struct store *s, int64_t last, struct tw_err *err)
{
    const char *what = "setting the CRL counter";
    STORE_AUTO_STMT *st = NULL;
    TW_GUARD(store_prepare(s, "UPDATE crl_counter SET last = ? WHERE id = 1", &st, what, err));
    sqlite3_bind_int64(st, 1, last);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return store_sql_fail(s, rc, what, err);
    return 0;
}

int store_sq_audit_import(struct store *s, const struct store_audit *a, struct tw_err *err)
{
    const char *what = "copying the audit trail";
    STORE_AUTO_STMT *st = NULL;
    TW_GUARD(store_prepare(s,
                           "INSERT INTO audit (id, at, action, subject, serial, result) "
                           "VALUES (?, ?, ?, ?, ?, ?)",
                           &st, what, err));
    sqlite3_bind_int64(st, 1, a->id);
    sqlite3_bind_int64(st, 2, a->at);
    store_bind_text(st, 3, a->action, sizeof(a->action));
    store_bind_text(st, 4, a->subject[0] != '\0' ? a->subject : NULL, sizeof(a->subject));
    store_bind_text(st, 5, a->serial[0] != '\0' ? a->serial : NULL, sizeof(a->serial));
    store_bind_text(st, 6, a->result, sizeof(a->result));
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return store_sql_fail(s, rc, what, err);
    return 0;
}
