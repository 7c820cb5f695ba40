/* Private to src/store: the back-end table (SQLite, PostgreSQL), the SQLite handle and its
 * statement helpers, error mapping, transactions, and the helpers both back ends share. */
#ifndef TW_STORE_INTERNAL_H
#define TW_STORE_INTERNAL_H

#include <limits.h>
#include <sqlite3.h>

#include "store/store.h"

/* How long a writer waits for another process (`ca serve` and a CLI `ca revoke` on one db)
 * before giving up with "locked by another process". */
#define STORE_BUSY_TIMEOUT_MS 10000

struct pg_conn; /* PGconn, kept opaque here so only pg_*.c include libpq */

/* One back end: the public API one to one (store.c dispatches), plus what store_copy needs. */
#define STORE_OPS_LIST(X)                                                                          \
    X(int, schema_version, (struct store * s, int *version, struct tw_err *err))                  \
    X(int, cert_put, (struct store * s, const struct store_cert *c, struct tw_err *err))          \
    X(int, cert_get,                                                                               \
      (struct store * s, const char *serial, struct store_cert *out, struct tw_err *err))         \
    X(int, cert_newest,                                                                            \
      (struct store * s, const char *name, struct store_cert *out, struct tw_err *err))           \
    X(int, cert_list,                                                                              \
      (struct store * s, const struct store_filter *f, store_cert_fn fn, void *ctx,               \
       struct tw_err *err))                                                                        \
    X(int, cert_revoke,                                                                            \
      (struct store * s, const char *serial, int reason, int64_t when, struct tw_err *err))       \
    X(int, revoked_list,                                                                           \
      (struct store * s, const char *issuer, store_cert_fn fn, void *ctx, struct tw_err *err))    \
    X(int, crl_number_next, (struct store * s, int64_t *number, struct tw_err *err))              \
    X(int, revoked_count,                                                                          \
      (struct store * s, const char *issuer, int64_t *count, struct tw_err *err))                 \
    X(int, audit_add,                                                                              \
      (struct store * s, const char *action, const char *subject, const char *serial,             \
       const char *result, struct tw_err *err))                                                    \
    X(int, audit_list, (struct store * s, store_audit_fn fn, void *ctx, struct tw_err *err))      \
    X(int, token_put, (struct store * s, const struct store_token *t, struct tw_err *err))        \
    X(int, token_get,                                                                              \
      (struct store * s, const char *hash, struct store_token *out, struct tw_err *err))          \
    X(int, token_use, (struct store * s, const char *hash, int64_t now, struct tw_err *err))      \
    X(int, token_set_serial,                                                                       \
      (struct store * s, const char *hash, const char *serial, struct tw_err *err))               \
    X(int, token_list, (struct store * s, store_token_fn fn, void *ctx, struct tw_err *err))      \
    X(int, txn_begin, (struct store * s, struct tw_err *err))                                     \
    X(int, txn_commit, (struct store * s, struct tw_err *err))                                    \
    X(void, txn_rollback, (struct store * s))                                                     \
    X(void, close, (struct store * s))                                                            \
    X(int, crl_counter, (struct store * s, int64_t *last, struct tw_err *err))                    \
    X(int, crl_counter_set, (struct store * s, int64_t last, struct tw_err *err))                 \
    X(int, token_import, (struct store * s, const struct store_token *t, struct tw_err *err))     \
    X(int, audit_import, (struct store * s, const struct store_audit *a, struct tw_err *err))

#define STORE_OP_FIELD(ret, name, args) ret(*name) args;
struct store_ops {
    const char *name; /* "sqlite", "postgresql" */
    STORE_OPS_LIST(STORE_OP_FIELD)
};

/* Each back end's functions: store_sq_<op> (db.c, certs.c, tokens.c, audit.c) and
 * store_pg_<op> (pg_*.c). */
#define STORE_OP_SQ(ret, name, args) ret store_sq_##name args;
#define STORE_OP_PG(ret, name, args) ret store_pg_##name args;
STORE_OPS_LIST(STORE_OP_SQ)
STORE_OPS_LIST(STORE_OP_PG)

extern const struct store_ops store_sqlite_ops;
extern const struct store_ops store_pg_ops;

struct store {
    const struct store_ops *ops;
    sqlite3 *db;        /* SQLite back end */
    struct pg_conn *pg; /* PostgreSQL back end */
    int txn_depth;      /* 0: autocommit; 1: BEGIN (IMMEDIATE); >1: nested SAVEPOINTs */
    sqlite3_stmt *cert_get; /* SQLite: the lookup by serial, prepared once (OCSP runs it for
                             * every answer); reset after each use, finalized by close */
    char path[PATH_MAX]; /* for messages: the file, or the URI without its password */
};

/* One schema step: SQL run inside its own transaction, then recorded in schema_version.
 * sql is SQLite's dialect, pg_sql PostgreSQL's: the same tables, columns and rules. */
struct store_migration {
    int version;
    const char *what;
    const char *sql;
    const char *pg_sql;
};

/* The migrations this build knows, in order; versions are 1..count. */
extern const struct store_migration store_migrations[];
extern const size_t store_migration_count;

/* Open a back end: path is a file (SQLite) or a postgres:// URI. */
int store_sqlite_open(const char *path, struct store **out, struct tw_err *err) TW_MUST_CHECK;
int store_pg_open(const char *uri, struct store **out, struct tw_err *err) TW_MUST_CHECK;

/* Turn an SQLite result code into a plain TW_ERR_STORE message naming the database file:
 * "disk full writing /d/ca.db", "... is locked by another process", "... is corrupt".
 * what says what the caller was doing ("saving certificate 1A2B"). Always returns -1. */
int store_sql_fail(struct store *s, int rc, const char *what, struct tw_err *err);

/* Prepare sql; on failure fills err via store_sql_fail. */
int store_prepare(struct store *s, const char *sql, sqlite3_stmt **stmt, const char *what,
                  struct tw_err *err) TW_MUST_CHECK;

/* Run SQL with no result rows (several statements allowed). */
int store_exec(struct store *s, const char *sql, const char *what,
               struct tw_err *err) TW_MUST_CHECK;

/* Bind text of at most cap-1 bytes (the struct field's limit), or NULL when text is NULL. */
int store_bind_text(sqlite3_stmt *st, int idx, const char *text, size_t cap);

/* Copy column col into out (truncating to cap, always NUL-terminated; "" for NULL). */
void store_column_copy(sqlite3_stmt *st, int col, char *out, size_t cap);

/* Transactions that nest, through the back end: the outermost takes the write lock (SQLite
 * BEGIN IMMEDIATE) or opens a transaction (PostgreSQL BEGIN), inner ones are SAVEPOINTs. */
int store_txn_begin(struct store *s, struct tw_err *err) TW_MUST_CHECK;
int store_txn_commit(struct store *s, struct tw_err *err) TW_MUST_CHECK;
void store_txn_rollback(struct store *s);

/* Normalise a hex serial: upper case, leading zeros stripped ("0" stays "0"). Returns -1 when
 * text is empty, not hex, or longer than STORE_SERIAL_MAX - 1 digits. */
int store_serial_normalise(const char *text, char out[STORE_SERIAL_MAX]);

/* Shared by both back ends. */
int64_t store_now_or(int64_t now);
int store_filter_matches(const struct store_filter *f, const struct store_cert *c, int64_t now);
int store_token_hash_ok(const char *hash);

/* For store_copy (pending.c, one SQL for both back ends): every pending_requests row with its
 * CSR, ordered by id (the row and its CSR valid only during fn); and inserting one row as it
 * was read, state, decision and serial kept. TW_ERR_EXISTS when the id is taken. */
int store_pending_export(struct store *s, store_pending_fn fn, void *ctx,
                         struct tw_err *err) TW_MUST_CHECK;
int store_pending_import(struct store *s, const struct store_pending *p,
                         struct tw_err *err) TW_MUST_CHECK;

static inline void store_stmt_cleanup(sqlite3_stmt **st)
{
    sqlite3_finalize(*st); /* accepts NULL */
}
#define STORE_AUTO_STMT __attribute__((cleanup(store_stmt_cleanup))) sqlite3_stmt

/* A statement kept across calls: reset (which ends its read transaction, so the next use sees
 * the database as it is then) and unbound when the variable leaves scope. */
static inline void store_stmt_reset(sqlite3_stmt **st)
{
    if (*st != NULL) {
        sqlite3_reset(*st);
        sqlite3_clear_bindings(*st);
    }
}
#define STORE_REUSED_STMT __attribute__((cleanup(store_stmt_reset))) sqlite3_stmt

#endif
