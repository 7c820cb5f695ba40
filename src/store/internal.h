/* Private to src/store: the SQLite handle, statement helpers, error mapping, transactions. */
#ifndef TW_STORE_INTERNAL_H
#define TW_STORE_INTERNAL_H

#include <limits.h>
#include <sqlite3.h>

#include "store/store.h"

/* How long a writer waits for another process (`ca serve` and a CLI `ca revoke` on one db)
 * before giving up with "locked by another process". */
#define STORE_BUSY_TIMEOUT_MS 10000

struct store {
    sqlite3 *db;
    int txn_depth; /* 0: autocommit; 1: BEGIN IMMEDIATE; >1: nested SAVEPOINTs */
    char path[PATH_MAX];
};

/* One schema step: SQL run inside its own transaction, then recorded in schema_version. */
struct store_migration {
    int version;
    const char *what;
    const char *sql;
};

/* The migrations this build knows, in order; versions are 1..count. */
extern const struct store_migration store_migrations[];
extern const size_t store_migration_count;

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

/* Transactions that nest: the outermost is BEGIN IMMEDIATE (takes the write lock up front so
 * two processes never deadlock upgrading a read lock), inner ones are SAVEPOINTs. */
int store_txn_begin(struct store *s, struct tw_err *err) TW_MUST_CHECK;
int store_txn_commit(struct store *s, struct tw_err *err) TW_MUST_CHECK;
void store_txn_rollback(struct store *s);

/* Normalise a hex serial: upper case, leading zeros stripped ("0" stays "0"). Returns -1 when
 * text is empty, not hex, or longer than STORE_SERIAL_MAX - 1 digits. */
int store_serial_normalise(const char *text, char out[STORE_SERIAL_MAX]);

static inline void store_stmt_cleanup(sqlite3_stmt **st)
{
    sqlite3_finalize(*st); /* accepts NULL */
}
#define STORE_AUTO_STMT __attribute__((cleanup(store_stmt_cleanup))) sqlite3_stmt

#endif
