/* Enrollment tokens (issue 4): stored as hashes, used once. Single use rests on one
 * conditional UPDATE ... WHERE used_at IS NULL and its change count, which SQLite serialises
 * across processes; callers wrap it in store_transaction with the issuance it pays for. */
#include "store/internal.h"

#include <stdio.h>
#include <string.h>

int store_sq_token_put(struct store *s, const struct store_token *t, struct tw_err *err)
{
    TW_ENSURE(store_token_hash_ok(t->hash), err, TW_ERR_INTERNAL, "store: token hash is not SHA-256 hex");
    const char *what = "saving an enrollment token";
    STORE_AUTO_STMT *st = NULL;
    TW_GUARD(store_prepare(s,
                           "INSERT INTO tokens (hash, name, sans, profile, lifetime, created_at, "
                           "expires_at, used_at, serial) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                           &st, what, err));
    sqlite3_bind_text(st, 1, t->hash, -1, SQLITE_TRANSIENT);
    store_bind_text(st, 2, t->name, sizeof(t->name));
    store_bind_text(st, 3, t->sans, sizeof(t->sans));
    store_bind_text(st, 4, t->profile, sizeof(t->profile));
    sqlite3_bind_int64(st, 5, t->lifetime);
    sqlite3_bind_int64(st, 6, t->created_at != 0 ? t->created_at : (int64_t)time(NULL));
    sqlite3_bind_int64(st, 7, t->expires_at);
    int rc = sqlite3_step(st);
    if ((rc & 0xff) == SQLITE_CONSTRAINT)
        return tw_err_set(err, TW_ERR_EXISTS, "an enrollment token with this hash exists");
    if (rc != SQLITE_DONE)
        return store_sql_fail(s, rc, what, err);
    return 0;
}

int store_sq_token_get(struct store *s, const char *hash, struct store_token *out, struct tw_err *err)
{
    memset(out, 0, sizeof(*out));
    const char *what = "reading an enrollment token";
    STORE_AUTO_STMT *st = NULL;
    TW_GUARD(store_prepare(s,
                           "SELECT hash, name, sans, profile, lifetime, created_at, expires_at, "
                           "used_at, serial FROM tokens WHERE hash = ?",
                           &st, what, err));
    sqlite3_bind_text(st, 1, hash != NULL ? hash : "", -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return tw_err_set(err, TW_ERR_NOTFOUND, "unknown enrollment token");
    if (rc != SQLITE_ROW)
        return store_sql_fail(s, rc, what, err);
    store_column_copy(st, 0, out->hash, sizeof(out->hash));
    store_column_copy(st, 1, out->name, sizeof(out->name));
    store_column_copy(st, 2, out->sans, sizeof(out->sans));
    store_column_copy(st, 3, out->profile, sizeof(out->profile));
    out->lifetime = sqlite3_column_int64(st, 4);
    out->created_at = sqlite3_column_int64(st, 5);
    out->expires_at = sqlite3_column_int64(st, 6);
    out->used_at = sqlite3_column_int64(st, 7);
    store_column_copy(st, 8, out->serial, sizeof(out->serial));
    return 0;
}

int store_sq_token_use(struct store *s, const char *hash, int64_t now, struct tw_err *err)
{
    const char *what = "using an enrollment token";
    STORE_AUTO_STMT *st = NULL;
    TW_GUARD(store_prepare(s,
                           "UPDATE tokens SET used_at = ? "
                           "WHERE hash = ? AND used_at IS NULL AND expires_at > ?",
                           &st, what, err));
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_text(st, 2, hash != NULL ? hash : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, now);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return store_sql_fail(s, rc, what, err);
    if (sqlite3_changes(s->db) == 1)
        return 0;
    /* Nothing changed: say why, from the row as it is now. */
    struct store_token t;
    TW_GUARD(store_sq_token_get(s, hash, &t, err));
    if (t.used_at != 0)
        return tw_err_set(err, TW_ERR_EXISTS, "the enrollment token for '%s' was already used",
                          t.name);
    return tw_err_set(err, TW_ERR_VERIFY, "the enrollment token for '%s' has expired", t.name);
}

int store_sq_token_set_serial(struct store *s, const char *hash, const char *serial,
                           struct tw_err *err)
{
    char norm[STORE_SERIAL_MAX];
    TW_ENSURE(serial != NULL && store_serial_normalise(serial, norm) == 0, err, TW_ERR_INTERNAL,
              "store: invalid serial for a token");
    const char *what = "recording the token's certificate";
    STORE_AUTO_STMT *st = NULL;
    TW_GUARD(store_prepare(s, "UPDATE tokens SET serial = ? WHERE hash = ?", &st, what, err));
    sqlite3_bind_text(st, 1, norm, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, hash != NULL ? hash : "", -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return store_sql_fail(s, rc, what, err);
    TW_ENSURE(sqlite3_changes(s->db) == 1, err, TW_ERR_NOTFOUND, "unknown enrollment token");
    return 0;
}

static void token_row(sqlite3_stmt *st, struct store_token *out)
{
    memset(out, 0, sizeof(*out));
    store_column_copy(st, 0, out->hash, sizeof(out->hash));
    store_column_copy(st, 1, out->name, sizeof(out->name));
    store_column_copy(st, 2, out->sans, sizeof(out->sans));
    store_column_copy(st, 3, out->profile, sizeof(out->profile));
    out->lifetime = sqlite3_column_int64(st, 4);
    out->created_at = sqlite3_column_int64(st, 5);
    out->expires_at = sqlite3_column_int64(st, 6);
    out->used_at = sqlite3_column_int64(st, 7);
    store_column_copy(st, 8, out->serial, sizeof(out->serial));
}

int store_sq_token_list(struct store *s, store_token_fn fn, void *ctx, struct tw_err *err)
{
    const char *what = "listing enrollment tokens";
    STORE_AUTO_STMT *st = NULL;
    TW_GUARD(store_prepare(s,
                           "SELECT hash, name, sans, profile, lifetime, created_at, expires_at, "
                           "used_at, serial FROM tokens ORDER BY hash",
                           &st, what, err));
    for (;;) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            return 0;
        if (rc != SQLITE_ROW)
            return store_sql_fail(s, rc, what, err);
        struct store_token t;
        token_row(st, &t);
        if (fn(&t, ctx) != 0)
            return 0;
    }
}

int store_sq_token_import(struct store *s, const struct store_token *t, struct tw_err *err)
{
    const char *what = "copying an enrollment token";
    STORE_AUTO_STMT *st = NULL;
    TW_GUARD(store_prepare(s,
                           "INSERT INTO tokens (hash, name, sans, profile, lifetime, created_at, "
                           "expires_at, used_at, serial) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           &st, what, err));
    store_bind_text(st, 1, t->hash, sizeof(t->hash));
    store_bind_text(st, 2, t->name, sizeof(t->name));
    store_bind_text(st, 3, t->sans, sizeof(t->sans));
    store_bind_text(st, 4, t->profile, sizeof(t->profile));
    sqlite3_bind_int64(st, 5, t->lifetime);
    sqlite3_bind_int64(st, 6, t->created_at);
    sqlite3_bind_int64(st, 7, t->expires_at);
    if (t->used_at != 0)
        sqlite3_bind_int64(st, 8, t->used_at);
    store_bind_text(st, 9, t->serial[0] != '\0' ? t->serial : NULL, sizeof(t->serial));
    int rc = sqlite3_step(st);
    if ((rc & 0xff) == SQLITE_CONSTRAINT)
        return tw_err_set(err, TW_ERR_EXISTS, "an enrollment token with this hash exists");
    if (rc != SQLITE_DONE)
        return store_sql_fail(s, rc, what, err);
    return 0;
}
