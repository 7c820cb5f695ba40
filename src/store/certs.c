/* Inventory rows: insert, look up, list with filters, revoke. */
#include "store/internal.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CERT_COLUMNS                                                                               \
    "serial, name, subject, sans, profile, issuer, sha256, not_before, not_after, issued_at, "    \
    "status, revoked_at, revoke_reason, pem"

/* Fill c from a row selected with CERT_COLUMNS; "expired" is derived here, against now. */
static int row_read(struct store *s, sqlite3_stmt *st, int64_t now, struct store_cert *c,
                    struct tw_err *err)
{
    memset(c, 0, sizeof(*c));
    store_column_copy(st, 0, c->serial, sizeof(c->serial));
    store_column_copy(st, 1, c->name, sizeof(c->name));
    store_column_copy(st, 2, c->subject, sizeof(c->subject));
    store_column_copy(st, 3, c->sans, sizeof(c->sans));
    store_column_copy(st, 4, c->profile, sizeof(c->profile));
    store_column_copy(st, 5, c->issuer, sizeof(c->issuer));
    store_column_copy(st, 6, c->sha256, sizeof(c->sha256));
    c->not_before = sqlite3_column_int64(st, 7);
    c->not_after = sqlite3_column_int64(st, 8);
    c->issued_at = sqlite3_column_int64(st, 9);
    const unsigned char *status = sqlite3_column_text(st, 10);
    int revoked = status != NULL && strcmp((const char *)status, "revoked") == 0;
    c->revoked_at = revoked ? sqlite3_column_int64(st, 11) : 0;
    c->revoke_reason = revoked ? sqlite3_column_int(st, 12) : -1;
    if (revoked)
        c->status = STORE_REVOKED;
    else
        c->status = c->not_after < now ? STORE_EXPIRED : STORE_VALID;
    const unsigned char *pem = sqlite3_column_text(st, 13);
    if (pem != NULL) {
        c->pem = strdup((const char *)pem);
        if (c->pem == NULL)
            return tw_err_set(err, TW_ERR_STORE, "out of memory reading %s", s->path);
    }
    return 0;
}

int store_sq_cert_put(struct store *s, const struct store_cert *c, struct tw_err *err)
{
    char serial[STORE_SERIAL_MAX];
    TW_ENSURE(memchr(c->serial, '\0', sizeof(c->serial)) != NULL &&
                  store_serial_normalise(c->serial, serial) == 0,
              err, TW_ERR_INTERNAL, "invalid certificate serial '%.*s'", STORE_SERIAL_MAX - 1,
              c->serial);
    char what[96];
    snprintf(what, sizeof(what), "saving certificate %s", serial);
    STORE_AUTO_STMT *st = NULL;
    TW_GUARD(store_prepare(s,
                           "INSERT INTO certs (" CERT_COLUMNS ") "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'valid', NULL, NULL, ?)",
                           &st, what, err));
    sqlite3_bind_text(st, 1, serial, -1, SQLITE_TRANSIENT);
    store_bind_text(st, 2, c->name, sizeof(c->name));
    store_bind_text(st, 3, c->subject, sizeof(c->subject));
    store_bind_text(st, 4, c->sans, sizeof(c->sans));
    store_bind_text(st, 5, c->profile, sizeof(c->profile));
    store_bind_text(st, 6, c->issuer, sizeof(c->issuer));
    store_bind_text(st, 7, c->sha256, sizeof(c->sha256));
    sqlite3_bind_int64(st, 8, c->not_before);
    sqlite3_bind_int64(st, 9, c->not_after);
    sqlite3_bind_int64(st, 10, store_now_or(c->issued_at));
    if (c->pem != NULL)
        sqlite3_bind_text(st, 11, c->pem, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        return tw_err_set(err, TW_ERR_EXISTS, "serial %s is already in the inventory", serial);
    if (rc != SQLITE_DONE)
        return store_sql_fail(s, rc, what, err);
    return 0;
}

/* Run a query expected to produce at most one row; TW_ERR_NOTFOUND with notfound otherwise. */
static int select_one(struct store *s, sqlite3_stmt *st, const char *what, const char *notfound,
                      struct store_cert *out, struct tw_err *err)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return tw_err_set(err, TW_ERR_NOTFOUND, "%s", notfound);
    if (rc != SQLITE_ROW)
        return store_sql_fail(s, rc, what, err);
    if (row_read(s, st, store_now_or(0), out, err) != 0) {
        store_cert_clear(out);
        return -1;
    }
    return 0;
}

int store_sq_cert_get(struct store *s, const char *serial, struct store_cert *out,
                   struct tw_err *err)
{
    char norm[STORE_SERIAL_MAX];
    char notfound[STORE_SERIAL_MAX + 64];
    snprintf(notfound, sizeof(notfound), "no certificate with serial %.*s",
             STORE_SERIAL_MAX - 1, serial != NULL ? serial : "(none)");
    memset(out, 0, sizeof(*out));
    if (serial == NULL || store_serial_normalise(serial, norm) != 0)
        return tw_err_set(err, TW_ERR_NOTFOUND, "%s", notfound);
    if (s->cert_get == NULL)
        TW_GUARD(store_prepare(s, "SELECT " CERT_COLUMNS " FROM certs WHERE serial = ?",
                               &s->cert_get, "looking up a certificate", err));
    STORE_REUSED_STMT *st = s->cert_get;
    sqlite3_bind_text(st, 1, norm, -1, SQLITE_TRANSIENT);
    return select_one(s, st, "looking up a certificate", notfound, out, err);
}

int store_sq_cert_newest(struct store *s, const char *name, struct store_cert *out,
                      struct tw_err *err)
{
    char notfound[STORE_NAME_MAX + 64];
    snprintf(notfound, sizeof(notfound), "no certificate issued to %.*s", STORE_NAME_MAX - 1,
             name != NULL ? name : "(none)");
    memset(out, 0, sizeof(*out));
    if (name == NULL)
        return tw_err_set(err, TW_ERR_NOTFOUND, "%s", notfound);
    STORE_AUTO_STMT *st = NULL;
    TW_GUARD(store_prepare(s,
                           "SELECT " CERT_COLUMNS " FROM certs WHERE name = ? "
                           "ORDER BY issued_at DESC, not_before DESC, rowid DESC LIMIT 1",
                           &st, "looking up a certificate", err));
    store_bind_text(st, 1, name, STORE_NAME_MAX);
    return select_one(s, st, "looking up a certificate", notfound, out, err);
}

/* Step through st, calling fn for rows that pass f (NULL: all). */
static int each_row(struct store *s, sqlite3_stmt *st, const struct store_filter *f,
                    store_cert_fn fn, void *ctx, const char *what, struct tw_err *err)
{
    int64_t now = store_now_or(f != NULL ? f->now : 0);
    for (;;) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            return 0;
        if (rc != SQLITE_ROW)
            return store_sql_fail(s, rc, what, err);
        struct store_cert c;
        if (row_read(s, st, now, &c, err) != 0) {
            store_cert_clear(&c);
            return -1;
        }
        int stop = store_filter_matches(f, &c, now) ? fn(&c, ctx) : 0;
        store_cert_clear(&c);
        if (stop)
            return 0;
    }
}

int store_sq_cert_list(struct store *s, const struct store_filter *f, store_cert_fn fn, void *ctx,
                    struct tw_err *err)
{
    STORE_AUTO_STMT *st = NULL;
    TW_GUARD(store_prepare(s,
                           "SELECT " CERT_COLUMNS " FROM certs "
                           "WHERE (?1 IS NULL OR profile = ?1) "
                           "ORDER BY issued_at, not_before, rowid",
                           &st, "listing certificates", err));
    store_bind_text(st, 1, f != NULL ? f->profile : NULL, STORE_PROFILE_MAX);
    return each_row(s, st, f, fn, ctx, "listing certificates", err);
}

int store_sq_revoked_list(struct store *s, const char *issuer, store_cert_fn fn, void *ctx,
                       struct tw_err *err)
{
    STORE_AUTO_STMT *st = NULL;
    TW_GUARD(store_prepare(s,
                           "SELECT " CERT_COLUMNS " FROM certs "
                           "WHERE status = 'revoked' AND (?1 IS NULL OR issuer = ?1) "
                           "ORDER BY revoked_at, rowid",
                           &st, "listing revoked certificates", err));
    store_bind_text(st, 1, issuer, STORE_SUBJECT_MAX);
    return each_row(s, st, NULL, fn, ctx, "listing revoked certificates", err);
}

/* RFC 5280 §5.3.1 CRLReason: 0..10, 7 is unused. */
static int reason_valid(int reason)
{
    return reason >= 0 && reason <= 10 && reason != 7;
}

static int revoke_in_txn(struct store *s, const char *serial, int reason, int64_t when,
                         struct tw_err *err)
{
    const char *what = "revoking a certificate";
    STORE_AUTO_STMT *get = NULL;
    TW_GUARD(store_prepare(s, "SELECT status FROM certs WHERE serial = ?", &get, what, err));
    sqlite3_bind_text(get, 1, serial, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(get);
    if (rc == SQLITE_DONE)
        return tw_err_set(err, TW_ERR_NOTFOUND, "no certificate with serial %s", serial);
    if (rc != SQLITE_ROW)
        return store_sql_fail(s, rc, what, err);
    const unsigned char *status = sqlite3_column_text(get, 0);
    if (status != NULL && strcmp((const char *)status, "revoked") == 0)
        return tw_err_set(err, TW_ERR_EXISTS, "certificate %s is already revoked", serial);

    STORE_AUTO_STMT *upd = NULL;
    TW_GUARD(store_prepare(s,
                           "UPDATE certs SET status = 'revoked', revoked_at = ?, "
                           "revoke_reason = ? WHERE serial = ?",
                           &upd, what, err));
    sqlite3_bind_int64(upd, 1, store_now_or(when));
    sqlite3_bind_int(upd, 2, reason);
    sqlite3_bind_text(upd, 3, serial, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(upd);
    if (rc != SQLITE_DONE)
        return store_sql_fail(s, rc, what, err);
    return 0;
}

int store_sq_cert_revoke(struct store *s, const char *serial, int reason, int64_t when,
                      struct tw_err *err)
{
    char norm[STORE_SERIAL_MAX];
    TW_ENSURE(reason_valid(reason), err, TW_ERR_USAGE,
              "invalid revocation reason %d (RFC 5280: 0-6, 8-10)", reason);
    if (serial == NULL || store_serial_normalise(serial, norm) != 0)
        return tw_err_set(err, TW_ERR_NOTFOUND, "no certificate with serial %.*s",
                          STORE_SERIAL_MAX - 1, serial != NULL ? serial : "(none)");
    TW_GUARD(store_txn_begin(s, err));
    if (revoke_in_txn(s, norm, reason, when, err) != 0) {
        store_txn_rollback(s);
        return -1;
    }
    return store_txn_commit(s, err);
}

int store_sq_revoked_count(struct store *s, const char *issuer, int64_t *count, struct tw_err *err)
{
    const char *what = "counting revoked certificates";
    STORE_AUTO_STMT *st = NULL;
    TW_GUARD(store_prepare(s,
                           "SELECT COUNT(*) FROM certs "
                           "WHERE status = 'revoked' AND (?1 IS NULL OR issuer = ?1)",
                           &st, what, err));
    store_bind_text(st, 1, issuer, STORE_SUBJECT_MAX);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        return store_sql_fail(s, rc, what, err);
    *count = sqlite3_column_int64(st, 0);
    return 0;
}
